//! The lab's state file (`<state dir>/state.json`): everything a lab creates — namespaces,
//! root-namespace links, processes, files — is recorded here *before* it is created, so
//! `vrctl lab down` can remove it all even after `lab up` (or a test) crashed half-way.
//!
//! The file is rewritten atomically (write to a temporary file, rename) after every change.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// A process the lab started: enough to find it again and to be sure it is still ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// What it is (`etcd`, `vrouterd vl-n0`, `listener vl-n0-p1`).
    pub role: String,
    /// Its PID.
    pub pid: u32,
    /// A string its `/proc/<pid>/cmdline` contains (the lab's state directory): a PID reused
    /// by an unrelated process is never killed.
    pub marker: String,
}

/// One node: a namespace with `eth0` on the underlay, running `vrouterd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name (also its namespace's name).
    pub name: String,
    /// Underlay address.
    pub ip: Ipv4Addr,
    /// Whether this is a route reflector (`vrouter-reflector`) rather than a `vrouterd` node.
    #[serde(default)]
    pub reflector: bool,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Log file of its daemon.
    pub log: PathBuf,
}

/// One pod: a namespace wired by `vrouter-cni` inside its node's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Pod name (also its namespace's name and CNI container id).
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// Its IPv4 address, once CNI ADD returned.
    pub ip: Option<Ipv4Addr>,
    /// Labels given to the workload.
    pub labels: Vec<(String, String)>,
}

/// The etcd the lab uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdRecord {
    /// Client URL reachable from node namespaces (`http://<host ip>:<port>`).
    pub endpoint: String,
    /// Client URL from the root namespace.
    pub local_endpoint: String,
    /// Whether the lab started it (false: `--etcd-endpoints` named an existing cluster).
    pub owned: bool,
    /// Client port (owned etcd only).
    pub client_port: u16,
    /// Peer port (owned etcd only).
    pub peer_port: u16,
    /// Data directory (owned etcd only).
    pub data_dir: Option<PathBuf>,
}

fn default_block_size() -> u8 {
    super::DEFAULT_BLOCK_SIZE
}

/// Everything `lab down` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Lab name.
    pub lab: String,
    /// Underlay subnet, first three octets of a /24.
    pub underlay: [u8; 3],
    /// The second underlay subnet, with two subnets (`lab::router`).
    #[serde(default)]
    pub underlay2: Option<[u8; 3]>,
    /// Namespaces, in creation order (deleted in reverse).
    pub namespaces: Vec<String>,
    /// Links in the root namespace.
    pub root_links: Vec<String>,
    /// Processes, in start order.
    pub processes: Vec<ProcessRecord>,
    /// etcd.
    pub etcd: Option<EtcdRecord>,
    /// Nodes.
    pub nodes: Vec<NodeRecord>,
    /// Pods.
    pub pods: Vec<PodRecord>,
    /// The IPPool CIDR the lab created.
    pub pool: String,
    /// The IPPool's block size.
    #[serde(default = "default_block_size")]
    pub block_size: u8,
    /// The directory the binaries came from.
    pub bin_dir: PathBuf,
    /// TCP port every pod's listener uses.
    pub listen_port: u16,
}

impl State {
    /// Path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Loads the state file from `dir`; `None` if there is none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<State>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("parsing the lab state file {}", path.display()))?;
        Ok(Some(state))
    }

    /// Writes the state file into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).context("encoding the lab state")?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// The host (root namespace) address on the underlay: `.1`.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.underlay;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The node record called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The pod record called `name`.
    pub fn pod(&self, name: &str) -> Option<&PodRecord> {
        self.pods.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(State::load(dir.path()).expect("load"), None);
        let state = State {
            lab: "vl".into(),
            underlay: [10, 250, 7],
            namespaces: vec!["vl-ul".into(), "vl-n0".into()],
            processes: vec![ProcessRecord {
                role: "etcd".into(),
                pid: 42,
                marker: "/run/vrouter-lab/vl".into(),
            }],
            pods: vec![PodRecord {
                name: "vl-n0-p0".into(),
                node: "vl-n0".into(),
                ip: Some(Ipv4Addr::new(10, 244, 0, 1)),
                labels: vec![("app".into(), "demo".into())],
            }],
            ..State::default()
        };
        state.save(dir.path()).expect("save");
        let back = State::load(dir.path()).expect("load").expect("present");
        assert_eq!(back, state);
        assert_eq!(back.host_ip(), Ipv4Addr::new(10, 250, 7, 1));
        assert!(back.pod("vl-n0-p0").is_some());
        assert!(back.node("vl-n0").is_none());
    }
}
