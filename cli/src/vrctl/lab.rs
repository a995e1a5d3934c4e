//! `vrctl lab up|status|down` over [`crate::lab`]: a whole cluster on this machine (etcd,
//! node namespaces on a bridge, `vrouterd` in each, pods made through the CNI plugin).
//! `vrctl lab listen` is the hidden listener every lab pod runs.
//!
//! Exit codes: 0 ok; `up` and `status` 4 when the measured matrix is not complete
//! ([`EXIT_UNREACHABLE`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::output::emit;
use crate::lab::{self, Lab, LabSpec};

/// Exit code when some pod pair is unreachable.
pub const EXIT_UNREACHABLE: u8 = 4;

/// How long `lab up` waits for every pair to become reachable (BGP convergence).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `vrctl lab` arguments.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// Which lab and where its state lives.
#[derive(Debug, Args)]
pub struct LabSelect {
    /// Lab name (namespaces are `<name>-n<i>`, pods `<name>-n<i>-p<j>`).
    #[arg(long, default_value = "vl")]
    pub name: String,
    /// State directory (default /run/vrouter-lab/<name>).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// `vrctl lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start a lab: etcd, nodes running vrouterd, pods made through vrouter-cni; print the
    /// nodes, pods, BGP sessions and the measured reachability matrix.
    Up {
        /// Which lab.
        #[command(flatten)]
        select: LabSelect,
        /// Nodes running vrouterd.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Route reflectors (vrouter-reflector) besides the nodes.
        #[arg(long, default_value_t = 0)]
        reflectors: usize,
        /// Pods on every node.
        #[arg(long, default_value_t = 2)]
        pods_per_node: usize,
        /// Use this etcd (comma-separated URLs, reachable from the node namespaces) instead
        /// of starting one.
        #[arg(long)]
        etcd_endpoints: Option<String>,
        /// The IPPool CIDR the lab creates.
        #[arg(long, default_value = lab::DEFAULT_POOL)]
        pool: String,
        /// Directory holding vrouterd, vrouter-cni, vrouter-ipam (default: next to vrctl).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Underlay subnets: 2 puts the second half of the nodes on another /24 behind a
        /// router namespace that has no pod routes (try VXLAN CrossSubnet on it).
        #[arg(long, default_value_t = 1)]
        subnets: usize,
        /// Do not start node daemons (underlay, etcd and CNI pods only).
        #[arg(long, hide = true)]
        no_daemons: bool,
    },
    /// Show the lab's nodes, pods, BGP sessions and a freshly measured reachability matrix.
    Status {
        /// Which lab.
        #[command(flatten)]
        select: LabSelect,
    },
    /// Print the lab's etcd URL, for `vrctl --etcd-endpoints` or `VROUTER_ETCD_ENDPOINTS`.
    Etcd {
        /// Which lab.
        #[command(flatten)]
        select: LabSelect,
    },
    /// Remove every namespace, process and file the lab made (also after a crash).
    Down {
        /// Which lab.
        #[command(flatten)]
        select: LabSelect,
    },
    /// The TCP listener inside each lab pod (answers with the pod's name).
    #[command(hide = true)]
    Listen {
        /// Port.
        #[arg(long)]
        port: u16,
        /// The pod's name.
        #[arg(long)]
        pod: String,
        /// The lab's state directory (marks the process as the lab's).
        #[arg(long)]
        state_dir: PathBuf,
    },
}

fn dir_of(select: &LabSelect) -> anyhow::Result<PathBuf> {
    lab::validate_name(&select.name)?;
    Ok(lab::state_dir(&select.name, select.state_dir.as_deref()))
}

/// Runs a `vrctl lab` command; returns the exit code.
pub fn run(args: LabArgs) -> anyhow::Result<u8> {
    match args.command {
        LabCommand::Up {
            select,
            nodes,
            reflectors,
            pods_per_node,
            etcd_endpoints,
            pool,
            bin_dir,
            subnets,
            no_daemons,
        } => {
            let mut spec = LabSpec::new(&select.name, nodes, pods_per_node);
            spec.reflectors = reflectors;
            spec.state_dir = select.state_dir;
            spec.etcd_endpoints = etcd_endpoints;
            spec.pool = pool;
            spec.bin_dir = bin_dir;
            spec.daemons = !no_daemons;
            spec.subnets = subnets;
            eprintln!(
                "lab {}: starting {nodes} nodes, {reflectors} reflectors, {pods_per_node} pods per node",
                spec.name
            );
            let lab = Lab::up(&spec)?;
            let matrix = lab.wait_reachable(CONVERGE_TIMEOUT)?;
            emit(&lab.report(Some(&matrix)))?;
            emit(&format!(
                "\nstate: {}\n",
                lab.dir().join(lab::state::STATE_FILE).display()
            ))?;
            let complete = matrix.all_reachable();
            lab.persist();
            Ok(if complete { 0 } else { EXIT_UNREACHABLE })
        }
        LabCommand::Status { select } => {
            let lab = Lab::open(&dir_of(&select)?)?;
            let matrix = lab.measure()?;
            emit(&lab.report(Some(&matrix)))?;
            Ok(if matrix.all_reachable() {
                0
            } else {
                EXIT_UNREACHABLE
            })
        }
        LabCommand::Etcd { select } => {
            let lab = Lab::open(&dir_of(&select)?)?;
            emit(&format!("{}\n", lab.etcd_endpoint()?))?;
            Ok(0)
        }
        LabCommand::Down { select } => {
            let dir = dir_of(&select)?;
            lab::teardown(&dir)?;
            emit(&format!("lab {} removed\n", select.name))?;
            Ok(0)
        }
        LabCommand::Listen {
            port,
            pod,
            state_dir: _,
        } => {
            lab::pod::listen(port, &pod)?;
            Ok(0)
        }
    }
}
