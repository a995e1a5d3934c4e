//! Lab nodes' daemons: `vrouterd` inside each node namespace, started exactly as on a host
//! (`ip netns exec <node> vrouterd --node-name … --ipv4 … --etcd-endpoints …
//! --control-socket <state dir>/<node>.ctl`), ready once it logs `vrouterd ready`; route
//! reflectors run `vrouter-reflector` the same way.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::bail;

use super::process::{in_netns, spawn_daemon, wait_for_log};
use super::state::NodeRecord;

/// What `vrouterd` logs once it is in sync.
pub const READY_LINE: &str = "vrouterd ready";
/// What `vrouter-reflector` logs once its speaker runs.
pub const REFLECTOR_READY_LINE: &str = "route reflector started";
/// How long a daemon may take to get ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The node daemon's binary name.
pub const VROUTERD: &str = "vrouterd";
/// The route reflector's binary name.
pub const REFLECTOR: &str = "vrouter-reflector";

/// The record of node `name` at `ip`, with its files in `dir`.
pub fn plan(dir: &Path, name: &str, ip: Ipv4Addr, reflector: bool) -> NodeRecord {
    NodeRecord {
        name: name.to_string(),
        ip,
        reflector,
        control_socket: dir.join(format!("{name}.ctl")),
        log: dir.join(format!("{name}.log")),
    }
}

/// The binary a node runs.
pub fn binary(bin_dir: &Path, node: &NodeRecord) -> PathBuf {
    bin_dir.join(if node.reflector { REFLECTOR } else { VROUTERD })
}

/// Starts the daemon of `node` (not waiting for it); `extra` are more `vrouterd` flags.
pub fn spawn(
    bin_dir: &Path,
    node: &NodeRecord,
    etcd: &str,
    extra: &[String],
) -> anyhow::Result<Child> {
    let program = binary(bin_dir, node);
    if !program.is_file() {
        bail!(
            "{} not found (build the binaries first: `cargo build --bins`, or pass --bin-dir)",
            program.display()
        );
    }
    let mut cmd = in_netns(&node.name, &program);
    if node.reflector {
        // A dedicated reflector host: not a Node in etcd; every Node is its client.
        cmd.arg("--router-id")
            .arg(node.ip.to_string())
            .arg("--etcd-endpoints")
            .arg(etcd)
            .arg("--control-socket")
            .arg(&node.control_socket)
            .args(["--metrics-listen", "off"]);
    } else {
        cmd.arg("--node-name")
            .arg(&node.name)
            .arg("--ipv4")
            .arg(format!("{}/24", node.ip))
            .arg("--etcd-endpoints")
            .arg(etcd)
            .arg("--control-socket")
            .arg(&node.control_socket)
            .args(["--metrics-listen", "off"])
            .args(extra);
    }
    cmd.env("RUST_BACKTRACE", "1");
    spawn_daemon(&mut cmd, &node.log)
}

/// Waits until `node`'s daemon logged [`READY_LINE`] ([`REFLECTOR_READY_LINE`]) after byte `offset` of its log.
pub fn wait_ready(node: &NodeRecord, child: &mut Child, offset: usize) -> anyhow::Result<()> {
    let what = format!("{} on {}", binary(Path::new(""), node).display(), node.name);
    let line = if node.reflector {
        REFLECTOR_READY_LINE
    } else {
        READY_LINE
    };
    wait_for_log(&node.log, line, offset, child, READY_TIMEOUT, &what)
}
