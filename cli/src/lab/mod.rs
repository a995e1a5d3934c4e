//! The lab: a whole vrouter cluster on one machine, for `vrctl lab`, `make demo`, the
//! end-to-end tests and the convergence benchmark.
//!
//! [`Lab::up`] starts a real etcd in the root namespace (or uses `--etcd-endpoints`), builds an
//! underlay (a bridge namespace, one namespace per node with `eth0` on it, the root namespace
//! joined as `.1`), runs `vrouterd` in every node namespace, creates pod namespaces through
//! `vrouter-cni` as a runtime would, and starts a TCP listener in each pod.
//! [`Lab::measure`] measures the reachability matrix with real connections.
//!
//! Everything is recorded in the state file ([`state`]) *before* it is created, so
//! [`teardown`] (`vrctl lab down`) removes it all also after a crash. A [`Lab`] value tears
//! its lab down when dropped unless [`Lab::persist`] was called (the CLI's `lab up`).
//!
//! | module | owns |
//! |---|---|
//! | [`state`] | the state file |
//! | [`process`] | commands, daemons, PID ownership checks |
//! | [`underlay`] | namespaces, bridge, veths, the underlay subnet |
//! | [`router`] | the optional second subnet and the router joining the two (no pod routes) |
//! | [`etcd`] | the lab's etcd |
//! | [`node`] | `vrouterd` / `vrouter-reflector` per node |
//! | [`pod`] | CNI ADD/DEL, the pod listener |
//! | [`reachability`] | the measured matrix |
//! | [`report`] | tables and the matrix as text |

pub mod etcd;
pub mod node;
pub mod pod;
pub mod process;
pub mod reachability;
pub mod report;
pub mod router;
pub mod state;
pub mod underlay;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datastore::etcd::{EtcdConfig, Store};
use datastore::resource::document::parse_documents;
use datastore::resource_store::{ResourceStore, Verb};

use reachability::{Matrix, Target};
use state::{NodeRecord, PodRecord, ProcessRecord, State};

/// Where lab state directories live by default: `/run/vrouter-lab/<lab>/`.
pub const DEFAULT_STATE_ROOT: &str = "/run/vrouter-lab";
/// The IPPool a lab creates by default.
pub const DEFAULT_POOL: &str = "10.244.0.0/16";
/// The lab IPPool's default block size (Calico's).
pub const DEFAULT_BLOCK_SIZE: u8 = 26;
/// The TCP port of every pod's listener.
pub const LISTEN_PORT: u16 = 7777;
/// Longest lab name (the root-namespace link `<lab>-host` must fit in 15 bytes).
pub const MAX_NAME_LEN: usize = 10;
/// The IPPool's name.
pub const POOL_NAME: &str = "lab-pool";

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Lab name: namespaces are `<name>-n<i>`, `<name>-n<i>-p<j>`, `<name>-ul`.
    pub name: String,
    /// Number of `vrouterd` nodes.
    pub nodes: usize,
    /// Number of route reflectors (`vrouter-reflector`), after the nodes.
    pub reflectors: usize,
    /// Pods created on every node.
    pub pods_per_node: usize,
    /// State directory (default `/run/vrouter-lab/<name>`).
    pub state_dir: Option<PathBuf>,
    /// Where the binaries are (default: next to the running executable).
    pub bin_dir: Option<PathBuf>,
    /// An existing etcd to use instead of starting one.
    pub etcd_endpoints: Option<String>,
    /// The IPPool CIDR.
    pub pool: String,
    /// Start `vrouterd` on the nodes (false: underlay, etcd and CNI pods only).
    pub daemons: bool,
    /// Resources (YAML) applied before the daemons start, e.g. a BGPConfiguration.
    pub bootstrap_yaml: Option<String>,
    /// Extra flags for every `vrouterd`.
    pub daemon_args: Vec<String>,
    /// The IPPool's block size (26 as in Calico; 32 gives every pod its own block).
    pub block_size: u8,
    /// Underlay subnets: 1, or 2 (the first half of the nodes on one, the rest on another,
    /// joined by a router namespace without pod routes; see [`router`]).
    pub subnets: usize,
}

impl LabSpec {
    /// A spec with defaults: `nodes` nodes, `pods_per_node` pods each, daemons on.
    pub fn new(name: &str, nodes: usize, pods_per_node: usize) -> Self {
        Self {
            name: name.to_string(),
            nodes,
            reflectors: 0,
            pods_per_node,
            state_dir: None,
            bin_dir: None,
            etcd_endpoints: None,
            pool: DEFAULT_POOL.to_string(),
            daemons: true,
            bootstrap_yaml: None,
            daemon_args: Vec::new(),
            block_size: DEFAULT_BLOCK_SIZE,
            subnets: 1,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        validate_name(&self.name)?;
        if self.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        if self.nodes + self.reflectors > 200 {
            bail!(
                "--nodes + --reflectors = {} is more than 200",
                self.nodes + self.reflectors
            );
        }
        if !(1..=2).contains(&self.subnets) {
            bail!("--subnets {} must be 1 or 2", self.subnets);
        }
        if self.pods_per_node > 200 {
            bail!("--pods-per-node {} is more than 200", self.pods_per_node);
        }
        if !(20..=32).contains(&self.block_size) {
            bail!("block size {} is not in 20..=32", self.block_size);
        }
        if self.pool.parse::<ipnetwork::Ipv4Network>().is_err() {
            bail!("pool {:?} is not an IPv4 CIDR", self.pool);
        }
        Ok(())
    }
}

/// Checks a lab name: 1–10 of `[a-z0-9-]`, starting with a letter.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "lab name {name:?}: use 1-{MAX_NAME_LEN} characters of a-z, 0-9 and '-', starting with a letter"
        );
    }
    Ok(())
}

/// The state directory of lab `name` under `root` (default [`DEFAULT_STATE_ROOT`]).
pub fn state_dir(name: &str, root: Option<&Path>) -> PathBuf {
    root.map_or_else(
        || Path::new(DEFAULT_STATE_ROOT).join(name),
        Path::to_path_buf,
    )
}

/// Where the binaries are: `explicit`, else the running executable's directory (for test
/// binaries in `target/<profile>/deps/`, its parent).
pub fn bin_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("finding the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no directory")?;
    Ok(if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

fn require_binaries(dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !dir.join(n).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found in {} (build them first: `cargo build --bins`, or pass --bin-dir)",
            missing.join(", "),
            dir.display()
        );
    }
    Ok(())
}

/// When a pod's CNI ADD ran (the pod's namespace already existed, as with a runtime).
#[derive(Debug, Clone, Copy)]
pub struct AddTimes {
    /// Just before `vrouter-cni` was started.
    pub started: Instant,
    /// When it had returned its result.
    pub returned: Instant,
}

/// A running lab. Dropping it tears everything down unless [`Lab::persist`] was called.
#[derive(Debug)]
pub struct Lab {
    dir: PathBuf,
    marker: String,
    state: State,
    children: BTreeMap<u32, Child>,
    persist: bool,
}

impl Lab {
    /// Builds the lab `spec` describes and waits until every daemon is ready and every pod has
    /// an address. On failure everything made so far is removed.
    pub fn up(spec: &LabSpec) -> anyhow::Result<Lab> {
        spec.validate()?;
        let dir = state_dir(&spec.name, spec.state_dir.as_deref());
        if State::path(&dir).exists() {
            bail!(
                "lab {:?} already exists (state in {}); run `vrctl lab down --name {}` first",
                spec.name,
                dir.display(),
                spec.name
            );
        }
        let bin_dir = bin_dir(spec.bin_dir.as_deref())?;
        let mut needed = vec!["vrouter-cni", "vrouter-ipam", "vrctl"];
        if spec.daemons {
            needed.push(node::VROUTERD);
        }
        if spec.daemons && spec.reflectors > 0 {
            needed.push(node::REFLECTOR);
        }
        require_binaries(&bin_dir, &needed)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut lab = Lab {
            marker: format!("{}/", dir.display()),
            dir,
            state: State {
                lab: spec.name.clone(),
                pool: spec.pool.clone(),
                block_size: spec.block_size,
                bin_dir,
                listen_port: LISTEN_PORT,
                ..State::default()
            },
            children: BTreeMap::new(),
            persist: false,
        };
        lab.save()?;
        lab.build(spec)?;
        Ok(lab)
    }

    fn build(&mut self, spec: &LabSpec) -> anyhow::Result<()> {
        let name = spec.name.clone();
        self.state.underlay = underlay::pick_subnet(&name, &underlay::root_routes()?)?;
        self.save()?;
        let ul = underlay::underlay_ns(&name);
        self.create_namespace(&ul)?;
        underlay::create_bridge(&ul)?;
        let host = underlay::host_link(&name);
        self.state.root_links.push(host.clone());
        self.save()?;
        underlay::attach_host(&ul, &host, self.state.host_ip())?;
        if spec.subnets == 2 {
            let second = underlay::pick_subnet(&format!("{name}-2"), &underlay::root_routes()?)?;
            self.state.underlay2 = Some(second);
            self.save()?;
            let rt = router::router_ns(&name);
            self.create_namespace(&rt)?;
            router::connect(&ul, &rt, &host, self.state.underlay, second)?;
        }

        // etcd
        let record = match &spec.etcd_endpoints {
            Some(endpoints) => etcd::external(endpoints),
            None => etcd::plan(&self.dir, self.state.host_ip())?,
        };
        self.state.etcd = Some(record);
        self.save()?;
        if spec.etcd_endpoints.is_none() {
            self.start_etcd_process(false)?;
        }
        self.apply_yaml(&pool_yaml(&spec.pool, spec.block_size))?;
        if let Some(yaml) = &spec.bootstrap_yaml {
            self.apply_yaml(yaml)?;
        }

        // nodes
        for i in 0..spec.nodes + spec.reflectors {
            let node_name = format!("{name}-n{i}");
            let (subnet, bridge) = match self.state.underlay2 {
                Some(second) if i >= router::first_subnet_nodes(spec.nodes) => {
                    (second, router::SECOND_BRIDGE)
                }
                _ => (self.state.underlay, underlay::BRIDGE),
            };
            let ip = underlay::node_ip(subnet, i)?;
            let record = node::plan(&self.dir, &node_name, ip, i >= spec.nodes);
            self.create_namespace(&node_name)?;
            self.state.nodes.push(record);
            self.save()?;
            underlay::attach_node_to(&ul, bridge, &underlay::node_port(i), &node_name, ip)?;
        }
        if spec.reflectors > 0 {
            self.apply_yaml(&reflector_yaml(&self.state.nodes))?;
        }
        if spec.daemons {
            let mut starting = Vec::new();
            for i in 0..self.state.nodes.len() {
                starting.push((i, self.spawn_daemon(i, &spec.daemon_args)?));
            }
            for (i, pid) in starting {
                self.wait_daemon_ready(i, pid, 0)?;
            }
        }

        // pods
        for i in 0..spec.nodes {
            for _ in 0..spec.pods_per_node {
                self.add_pod(i)?;
            }
        }
        Ok(())
    }

    /// Opens an existing lab from its state directory (for `vrctl lab status`).
    pub fn open(dir: &Path) -> anyhow::Result<Lab> {
        let state = State::load(dir)?.with_context(|| {
            format!(
                "no lab state in {} (is the lab up? `vrctl lab up`)",
                dir.display()
            )
        })?;
        Ok(Lab {
            marker: format!("{}/", dir.display()),
            dir: dir.to_path_buf(),
            state,
            children: BTreeMap::new(),
            persist: true,
        })
    }

    /// Leaves the lab running when this value is dropped (`vrctl lab up`).
    pub fn persist(mut self) {
        self.persist = true;
    }

    /// The recorded state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The etcd URL to use from the root namespace.
    pub fn etcd_endpoint(&self) -> anyhow::Result<String> {
        Ok(self
            .state
            .etcd
            .as_ref()
            .context("the lab has no etcd")?
            .local_endpoint
            .clone())
    }

    /// Names of the `vrouterd` nodes (reflectors excluded).
    pub fn node_names(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .filter(|n| !n.reflector)
            .map(|n| n.name.clone())
            .collect()
    }

    fn save(&self) -> anyhow::Result<()> {
        self.state.save(&self.dir)
    }

    fn create_namespace(&mut self, name: &str) -> anyhow::Result<()> {
        if underlay::namespace_exists(name) {
            bail!("network namespace {name} already exists (a lab with this name is up?)");
        }
        self.state.namespaces.push(name.to_string());
        self.save()?;
        underlay::add_namespace(name)
    }

    fn record_process(&mut self, role: &str, child: Child) -> anyhow::Result<u32> {
        let pid = child.id();
        self.children.insert(pid, child);
        self.state.processes.push(ProcessRecord {
            role: role.to_string(),
            pid,
            marker: self.marker.clone(),
        });
        self.save()?;
        Ok(pid)
    }

    fn forget_process(&mut self, pid: u32) -> anyhow::Result<()> {
        if let Some(mut child) = self.children.remove(&pid) {
            let _ = child.wait();
        }
        self.state.processes.retain(|p| p.pid != pid);
        self.save()
    }

    fn stop_process(&mut self, pid: u32, signal: &str) -> anyhow::Result<()> {
        if process::is_ours(pid, &self.marker) {
            if signal == "TERM" {
                process::stop(pid, &self.marker, Duration::from_secs(10));
            } else {
                process::signal(pid, signal);
            }
        }
        self.forget_process(pid)
    }

    /// PID of the recorded process with role `role`.
    pub fn pid_of(&self, role: &str) -> Option<u32> {
        self.state
            .processes
            .iter()
            .find(|p| p.role == role)
            .map(|p| p.pid)
    }

    // ---- etcd ----

    fn start_etcd_process(&mut self, existing: bool) -> anyhow::Result<()> {
        let record = self.state.etcd.clone().context("the lab has no etcd")?;
        let log = self.dir.join("etcd.log");
        let token = format!("vrouter-lab-{}", self.state.lab);
        // etcd's PID is recorded right after the spawn; its cmdline holds the marker, so a
        // crash in between is still cleaned up by the marker sweep in `teardown`.
        let pid = etcd::start(&record, self.state.host_ip(), &log, &token, existing)?;
        self.state.processes.push(ProcessRecord {
            role: "etcd".to_string(),
            pid,
            marker: self.marker.clone(),
        });
        self.save()
    }

    /// Stops the lab's etcd (SIGTERM); its data stays for [`Lab::start_etcd`].
    pub fn stop_etcd(&mut self) -> anyhow::Result<()> {
        let pid = self
            .pid_of("etcd")
            .context("the lab's etcd is not running")?;
        process::stop(pid, &self.marker, Duration::from_secs(10));
        self.state.processes.retain(|p| p.pid != pid);
        self.save()
    }

    /// Starts the lab's etcd again on the same ports and data.
    pub fn start_etcd(&mut self) -> anyhow::Result<()> {
        self.start_etcd_process(true)
    }

    /// Applies resources (YAML, one or more documents) in one transaction.
    pub fn apply_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        let resources = parse_documents(yaml).context("parsing lab resources")?;
        let endpoint = self.etcd_endpoint()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async {
            let store = Store::connect(&EtcdConfig::new([endpoint.clone()]))
                .await
                .with_context(|| format!("connecting to etcd at {endpoint}"))?;
            ResourceStore::new(store)
                .write(Verb::Apply, &resources)
                .await
                .context("applying lab resources")?;
            anyhow::Ok(())
        })
    }

    // ---- daemons ----

    fn daemon_role(node: &NodeRecord) -> String {
        format!("daemon {}", node.name)
    }

    fn spawn_daemon(&mut self, index: usize, extra: &[String]) -> anyhow::Result<u32> {
        let node = self.state.nodes.get(index).context("no such node")?.clone();
        let etcd = self
            .state
            .etcd
            .as_ref()
            .context("the lab has no etcd")?
            .endpoint
            .clone();
        let child = node::spawn(&self.state.bin_dir, &node, &etcd, extra)?;
        self.record_process(&Self::daemon_role(&node), child)
    }

    fn wait_daemon_ready(&mut self, index: usize, pid: u32, offset: usize) -> anyhow::Result<()> {
        let node = self.state.nodes.get(index).context("no such node")?.clone();
        let child = self
            .children
            .get_mut(&pid)
            .context("the daemon is not a child of this process")?;
        node::wait_ready(&node, child, offset)
    }

    /// PID of node `index`'s daemon, if it runs.
    pub fn daemon_pid(&self, index: usize) -> Option<u32> {
        let node = self.state.nodes.get(index)?;
        self.pid_of(&Self::daemon_role(node))
            .filter(|&pid| process::is_alive(pid))
    }

    /// Signals node `index`'s daemon (`KILL`: a crash; `TERM`: a graceful stop) and waits
    /// until it is gone.
    pub fn stop_daemon(&mut self, index: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .daemon_pid(index)
            .with_context(|| format!("node {index}'s daemon is not running"))?;
        self.stop_process(pid, signal)?;
        let start = Instant::now();
        while process::is_alive(pid) && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts node `index`'s daemon again and waits until it is ready.
    pub fn start_daemon(&mut self, index: usize, extra: &[String]) -> anyhow::Result<()> {
        let log = self
            .state
            .nodes
            .get(index)
            .context("no such node")?
            .log
            .clone();
        let offset = process::file_len(&log);
        let pid = self.spawn_daemon(index, extra)?;
        self.wait_daemon_ready(index, pid, offset)
    }

    // ---- pods ----

    /// Creates one more pod on node `index` through CNI ADD and starts its listener; returns
    /// its record.
    pub fn add_pod(&mut self, index: usize) -> anyhow::Result<PodRecord> {
        self.add_pod_with(index, true).map(|(record, _)| record)
    }

    /// Creates one more pod on node `index` through CNI ADD, with or without its listener;
    /// returns its record and when CNI ADD started and returned (the convergence
    /// benchmark's clock).
    pub fn add_pod_with(
        &mut self,
        index: usize,
        listener: bool,
    ) -> anyhow::Result<(PodRecord, AddTimes)> {
        let node = self
            .state
            .nodes
            .get(index)
            .context("no such node")?
            .name
            .clone();
        let existing = self
            .state
            .pods
            .iter()
            .filter(|p| p.node == node)
            .filter_map(|p| p.name.rsplit_once("-p")?.1.parse::<usize>().ok())
            .max();
        let j = existing.map_or(0, |m| m + 1);
        let name = format!("{node}-p{j}");
        let labels = vec![
            ("app".to_string(), "lab".to_string()),
            ("pod".to_string(), name.clone()),
            ("node".to_string(), node.clone()),
        ];
        self.create_namespace(&name)?;
        self.state.pods.push(PodRecord {
            name: name.clone(),
            node: node.clone(),
            ip: None,
            labels: labels.clone(),
        });
        self.save()?;
        let netconf = self.netconf(&node, &labels)?;
        let started = Instant::now();
        let result = pod::invoke(&self.state.bin_dir, "ADD", &node, &name, &netconf)?;
        let times = AddTimes {
            started,
            returned: Instant::now(),
        };
        let ip = pod::result_ipv4(&result)?;
        if let Some(p) = self.state.pods.iter_mut().find(|p| p.name == name) {
            p.ip = Some(ip);
        }
        self.save()?;
        if listener {
            self.start_listener(&name)?;
        }
        let record = self
            .state
            .pod(&name)
            .cloned()
            .context("the pod vanished from the state")?;
        Ok((record, times))
    }

    fn netconf(
        &self,
        node: &str,
        labels: &[(String, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let etcd = &self
            .state
            .etcd
            .as_ref()
            .context("the lab has no etcd")?
            .endpoint;
        Ok(pod::netconf(etcd, node, &self.state.pool, labels))
    }

    fn start_listener(&mut self, pod_name: &str) -> anyhow::Result<()> {
        let vrctl = self.state.bin_dir.join("vrctl");
        let mut cmd = process::in_netns(pod_name, &vrctl);
        cmd.args(["lab", "listen", "--port"])
            .arg(self.state.listen_port.to_string())
            .args(["--pod", pod_name, "--state-dir"])
            .arg(&self.marker);
        let log = self.dir.join(format!("{pod_name}.listener.log"));
        let child = process::spawn_daemon(&mut cmd, &log)?;
        let pid = self.record_process(&format!("listener {pod_name}"), child)?;
        let start = Instant::now();
        let suffix = format!(":{}", self.state.listen_port);
        loop {
            let listening =
                process::run_ok(std::process::Command::new("ss").args(["-N", pod_name, "-Hltn"]))
                    .is_ok_and(|out| {
                        out.lines().any(|l| {
                            l.split_whitespace()
                                .nth(3)
                                .is_some_and(|local| local.ends_with(&suffix))
                        })
                    });
            if listening {
                return Ok(());
            }
            if !process::is_alive(pid) || start.elapsed() > Duration::from_secs(10) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "the listener of pod {pod_name} is not listening; log {}:\n{}",
                    log.display(),
                    process::tail(&text, 10)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes pod `name` through CNI DEL, stops its listener and removes its namespace.
    pub fn delete_pod(&mut self, name: &str) -> anyhow::Result<()> {
        let record = self
            .state
            .pod(name)
            .cloned()
            .with_context(|| format!("no pod {name} in the lab"))?;
        pod::invoke(
            &self.state.bin_dir,
            "DEL",
            &record.node,
            name,
            &self.netconf(&record.node, &record.labels)?,
        )?;
        if let Some(pid) = self.pid_of(&format!("listener {name}")) {
            self.stop_process(pid, "KILL")?;
        }
        underlay::delete_namespace(name)?;
        self.state.pods.retain(|p| p.name != name);
        self.state.namespaces.retain(|n| n != name);
        self.save()
    }

    /// Cuts (`up == false`) or restores node `index`'s underlay link (its bridge port).
    pub fn set_underlay_link(&self, index: usize, up: bool) -> anyhow::Result<()> {
        underlay::set_port(
            &underlay::underlay_ns(&self.state.lab),
            &underlay::node_port(index),
            up,
        )
    }

    // ---- reachability ----

    /// The pods with addresses, as matrix targets.
    pub fn targets(&self) -> Vec<Target> {
        self.state
            .pods
            .iter()
            .filter_map(|p| {
                Some(Target {
                    name: p.name.clone(),
                    ip: p.ip?,
                })
            })
            .collect()
    }

    /// Measures the reachability matrix between every pair of pods.
    pub fn measure(&self) -> anyhow::Result<Matrix> {
        reachability::measure(&self.targets(), self.state.listen_port)
    }

    /// Measures until every pair is reachable or `timeout` passed; returns the last matrix.
    pub fn wait_reachable(&self, timeout: Duration) -> anyhow::Result<Matrix> {
        let start = Instant::now();
        loop {
            let m = self.measure()?;
            if m.all_reachable() || start.elapsed() > timeout {
                return Ok(m);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node table, pods, BGP sessions per node (`vrctl node status`), matrix.
    pub fn report(&self, matrix: Option<&Matrix>) -> String {
        let running = |name: &str| {
            self.state
                .nodes
                .iter()
                .position(|n| n.name == name)
                .and_then(|i| self.daemon_pid(i))
        };
        let mut out = String::new();
        out.push_str(&report::nodes(&self.state, &running));
        out.push('\n');
        out.push_str(&report::pods(&self.state));
        for node in &self.state.nodes {
            out.push_str(&format!("\nBGP sessions of {}:\n", node.name));
            out.push_str(&self.node_status(node));
        }
        if let Some(m) = matrix {
            out.push('\n');
            out.push_str(&report::matrix(m));
        }
        out
    }

    fn node_status(&self, node: &NodeRecord) -> String {
        let output = std::process::Command::new(self.state.bin_dir.join("vrctl"))
            .args(["node", "status", "--socket"])
            .arg(&node.control_socket)
            .output();
        match output {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => format!(
                "  (vrctl node status: {})\n",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("  (vrctl node status: {e})\n"),
        }
    }

    /// Tears the lab down now (what dropping it does, with the error reported).
    pub fn down(mut self) -> anyhow::Result<()> {
        self.persist = true;
        let children = std::mem::take(&mut self.children);
        let result = teardown(&self.dir);
        reap(children);
        result
    }
}

fn reap(children: BTreeMap<u32, Child>) {
    for (_, mut child) in children {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.persist {
            return;
        }
        if let Err(e) = teardown(&self.dir) {
            eprintln!("lab {}: teardown: {e:#}", self.state.lab);
        }
        reap(std::mem::take(&mut self.children));
    }
}

/// What every lab creates: its IPPool, and the Kubernetes namespace its pods are in (whose
/// `kns.default` profile allows everything until a policy selects a pod, as in a cluster).
pub fn pool_yaml(cidr: &str, block_size: u8) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {POOL_NAME}\nspec:\n  cidr: {cidr}\n  blockSize: {block_size}\n  ipipMode: Never\n  vxlanMode: Never\n  natOutgoing: false\n  nodeSelector: all()\n",
        ns = pod::POD_NAMESPACE
    )
}

/// With route reflectors: the node-to-node mesh off and every node peering with every
/// reflector (same AS, Calico's default 64512).
pub fn reflector_yaml(nodes: &[NodeRecord]) -> String {
    let mut yaml = String::from(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n",
    );
    for (i, rr) in nodes.iter().filter(|n| n.reflector).enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: lab-rr-{i}\nspec:\n  peerIP: {}\n  asNumber: 64512\n",
            rr.ip
        ));
    }
    yaml
}

/// Removes everything the lab in `dir` recorded: processes (only if their command line still
/// holds the lab's marker, plus any process carrying the marker), namespaces (with whatever
/// still runs in them), root-namespace links, and the state directory. Works on a lab whose
/// `up` crashed; a missing state file is not an error if nothing is left.
pub fn teardown(dir: &Path) -> anyhow::Result<()> {
    let marker = format!("{}/", dir.display());
    let state = State::load(dir)?;
    let mut errors = Vec::new();
    if let Some(state) = &state {
        // An external etcd keeps the lab's workloads unless they are deleted through CNI.
        if let Some(etcd) = &state.etcd
            && !etcd.owned
        {
            for p in &state.pods {
                let conf = pod::netconf(&etcd.endpoint, &p.node, &state.pool, &p.labels);
                if let Err(e) = pod::invoke(&state.bin_dir, "DEL", &p.node, &p.name, &conf) {
                    errors.push(format!("{e:#}"));
                }
            }
        }
        for p in state.processes.iter().rev() {
            process::stop(p.pid, &p.marker, Duration::from_secs(5));
        }
    }
    for pid in process::pids_with_marker(&marker) {
        process::stop(pid, &marker, Duration::from_secs(5));
    }
    if let Some(state) = &state {
        for ns in state.namespaces.iter().rev() {
            if let Err(e) = underlay::delete_namespace(ns) {
                errors.push(format!("{e:#}"));
            }
        }
        for link in &state.root_links {
            if underlay::root_link_exists(link)
                && let Err(e) = process::ip(&["link", "del", link])
            {
                errors.push(format!("{e:#}"));
            }
        }
    }
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        errors.push(format!("removing {}: {e}", dir.display()));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("lab teardown left problems:\n{}", errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("vl").is_ok());
        assert!(validate_name("vt-a123456").is_ok());
        assert!(validate_name("vt-a1234567").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("1ab").is_err());
        assert!(validate_name("Ab").is_err());
        assert!(validate_name("a_b").is_err());
    }

    #[test]
    fn pool_yaml_parses() {
        let resources = parse_documents(&pool_yaml(DEFAULT_POOL, 26)).expect("parses");
        assert_eq!(resources.len(), 2);
    }

    #[test]
    fn reflector_yaml_turns_the_mesh_off() {
        let rr = node::plan(
            Path::new("/x"),
            "vl-n3",
            "10.250.1.13".parse().expect("ip"),
            true,
        );
        let n0 = node::plan(
            Path::new("/x"),
            "vl-n0",
            "10.250.1.10".parse().expect("ip"),
            false,
        );
        let resources = parse_documents(&reflector_yaml(&[n0, rr])).expect("parses");
        assert_eq!(resources.len(), 2);
        assert!(reflector_yaml(&[]).contains("nodeToNodeMeshEnabled: false"));
    }

    #[test]
    fn bin_dir_prefers_explicit() {
        assert_eq!(
            bin_dir(Some(Path::new("/opt/x"))).expect("dir"),
            PathBuf::from("/opt/x")
        );
        let dir = bin_dir(None).expect("dir");
        assert_ne!(dir.file_name().and_then(|n| n.to_str()), Some("deps"));
    }
}
