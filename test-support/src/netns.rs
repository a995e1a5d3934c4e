//! Throwaway Linux network namespaces ([`Netns`]): unique names per process and per call,
//! deleted on drop (also during a panic), with helpers to run commands inside, to run Rust
//! code on a thread inside ([`run_in`], [`Netns::run`]) and to configure addresses, routes,
//! links and sysctls.
//!
//! Names look like `vt-{prefix}-{pid}-{n}`. The `vt-` marker and the owner's PID let
//! [`cleanup_stale`] delete what a crashed run left behind, and only that: a namespace is
//! removed only if its owning PID no longer exists.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::error::{HarnessError, Result, io_err};
use crate::eventually::{Attempt, poll};
use crate::process::{ChildGuard, check_output, command_line, run, run_ok};

/// Every namespace this harness creates starts with this marker.
pub const NAME_MARKER: &str = "vt-";

/// The longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest user prefix kept in a namespace name (the rest is cut).
const MAX_PREFIX_LEN: usize = 8;

static COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE_SWEEP: Once = Once::new();

/// A network namespace owned by the test. Cloning is cheap and shares the same namespace;
/// the namespace (and any process still inside it) is removed when the last clone is dropped.
///
/// Launchers such as [`crate::Bird`] keep a clone, so a namespace never disappears under a
/// daemon that still runs in it, whatever order a test drops things in.
#[derive(Debug, Clone)]
pub struct Netns {
    inner: Arc<NetnsInner>,
}

#[derive(Debug)]
struct NetnsInner {
    name: String,
}

impl Netns {
    /// Creates a namespace named `vt-{prefix}-{pid}-{n}` and brings `lo` up.
    ///
    /// `prefix` is a short human hint ("node", "rr"); non-alphanumerics are dropped and it is
    /// cut to eight characters. The first call in a process also runs [`cleanup_stale`].
    pub fn new(prefix: &str) -> Result<Self> {
        STALE_SWEEP.call_once(|| match cleanup_stale() {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "removed namespaces left by dead test processes");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not sweep stale namespaces"),
        });
        let hint: String = prefix
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(MAX_PREFIX_LEN)
            .collect();
        let hint = if hint.is_empty() {
            "ns".to_string()
        } else {
            hint
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAME_MARKER}{hint}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on the namespace is deleted on drop, also if bringing `lo` up fails.
        let ns = Self {
            inner: Arc::new(NetnsInner { name }),
        };
        ns.set_up("lo")?;
        tracing::debug!(name = %ns.name(), "namespace created");
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The namespace's file (see [`netns_path`]).
    pub fn path(&self) -> PathBuf {
        netns_path(self.name())
    }

    /// Runs `f` on a thread inside this namespace (see [`run_in`]).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        run_in(self.name(), f)
    }

    /// A [`Command`] that runs `program` inside the namespace (`ip netns exec NAME program`).
    /// `ip netns exec` execs in place, so the child's PID is the program's PID.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(), program]);
        cmd
    }

    fn command_for(&self, args: &[&str]) -> Result<Command> {
        let (program, rest) = args.split_first().ok_or_else(|| HarnessError::Invalid {
            what: "command".to_string(),
            reason: "no program given".to_string(),
        })?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        Ok(cmd)
    }

    /// Runs `args` (program first) inside the namespace and returns its output, whatever the
    /// exit status.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        run(&mut self.command_for(args)?)
    }

    /// Runs `args` inside the namespace; fails with its stderr unless it exits 0. Returns
    /// standard output.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        run_ok(&mut self.command_for(args)?)
    }

    /// Spawns a long-running process inside the namespace. Output goes to a temporary log
    /// (see [`ChildGuard::log_path`]); the guard stops the process when dropped. For a chosen
    /// log path or extra settings build the command with [`Netns::command`] and use
    /// [`ChildGuard::spawn`].
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard> {
        let mut cmd = self.command_for(args)?;
        let name = args.first().copied().unwrap_or("process");
        ChildGuard::spawn(name, &mut cmd, None)
    }

    /// Runs `ip -n NAME args…` and returns its stdout (fails with stderr on error).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", self.name()]).args(args);
        let output = run(&mut cmd)?;
        check_output(&command_line(&cmd), output)
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`) to `dev`. IPv6 addresses skip duplicate
    /// address detection, so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev])?;
        }
        Ok(())
    }

    /// Adds a route to `dst` (a prefix or `default`) via the gateway `via`.
    pub fn add_route(&self, dst: &str, via: &str) -> Result<()> {
        self.ip(&["route", "add", dst, "via", via]).map(drop)
    }

    /// Adds a route to `dst` straight out of `dev` (no gateway).
    pub fn add_dev_route(&self, dst: &str, dev: &str) -> Result<()> {
        self.ip(&["route", "add", dst, "dev", dev]).map(drop)
    }

    /// Sets link `dev` up.
    pub fn set_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Sets link `dev` down.
    pub fn set_down(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "down"]).map(drop)
    }

    /// Writes a sysctl inside the namespace, e.g. `sysctl("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec_ok(&["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Reads a sysctl inside the namespace.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        Ok(self.exec_ok(&["sysctl", "-n", key])?.trim().to_string())
    }

    /// Turns on IPv4 and IPv6 forwarding, as a router namespace needs.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward", "1")?;
        self.sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// The IPv4 routing table (`ip -4 route show`).
    pub fn routes(&self) -> Result<String> {
        self.ip(&["-4", "route", "show"])
    }

    /// The IPv6 routing table (`ip -6 route show`).
    pub fn routes6(&self) -> Result<String> {
        self.ip(&["-6", "route", "show"])
    }

    /// Sends one ICMP echo to `addr` from inside the namespace (1 s timeout).
    ///
    /// Network safety: only ping addresses that live in namespaces the test created.
    pub fn ping(&self, addr: IpAddr) -> Result<()> {
        self.exec_ok(&["ping", "-c", "1", "-W", "1", &addr.to_string()])
            .map(drop)
    }

    /// Whether a TCP socket inside the namespace listens on `port` (any address).
    pub fn is_listening(&self, port: u16) -> Result<bool> {
        let mut cmd = Command::new("ss");
        cmd.args(["-N", self.name(), "-Hltn"]);
        let out = run_ok(&mut cmd)?;
        let suffix = format!(":{port}");
        Ok(out.lines().any(|line| {
            line.split_whitespace()
                .nth(3)
                .is_some_and(|local| local.ends_with(&suffix))
        }))
    }

    /// Waits until a TCP socket inside the namespace listens on `port`.
    pub fn wait_for_listen(&self, port: u16, timeout: Duration) -> Result<()> {
        poll(
            &format!("port {port} to listen in {}", self.name()),
            timeout,
            || match self.is_listening(port) {
                Ok(true) => Attempt::Done(()),
                Ok(false) => Attempt::Retry(format!("nothing listens on {port}")),
                Err(e) => Attempt::Fatal(e),
            },
        )
    }

    /// PIDs of every process currently inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        netns_pids(self.name())
    }
}

impl Drop for NetnsInner {
    fn drop(&mut self) {
        delete_namespace(&self.name);
    }
}

/// Where `ip netns` keeps the namespace called `name`: the file `setns(2)` opens.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/netns/{name}"))
}

/// Runs `f` on a new thread that entered the namespace called `name` and returns its result.
/// Sockets `f` opens belong to that namespace, also when other threads use them later. A
/// panic in `f` is resumed in the caller.
pub fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = netns_path(name);
    let thread = std::thread::Builder::new()
        .name(format!("in-{name}"))
        .spawn(move || -> Result<T> {
            let file =
                std::fs::File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| io_err(format!("setns {}", path.display()))(e.into()))?;
            Ok(f())
        })
        .map_err(io_err("spawn a thread"))?;
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// SIGKILLs whatever still runs inside namespace `name`, then deletes it.
fn delete_namespace(name: &str) {
    let pids = netns_pids(name);
    if !pids.is_empty() {
        tracing::warn!(%name, ?pids, "killing processes left inside a namespace");
        let mut kill = Command::new("kill");
        kill.arg("-KILL").args(pids.iter().map(u32::to_string));
        let _ = run(&mut kill);
    }
    match run_ok(Command::new("ip").args(["netns", "del", name])) {
        Ok(_) => tracing::debug!(%name, "namespace deleted"),
        Err(e) => tracing::warn!(%name, error = %e, "could not delete namespace"),
    }
}

fn netns_pids(name: &str) -> Vec<u32> {
    run_ok(Command::new("ip").args(["netns", "pids", name]))
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of every namespace on the host (`ip netns list`), ours or not.
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = run_ok(Command::new("ip").args(["netns", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The PID that created namespace `name`, if `name` is one of ours (`vt-{prefix}-{pid}-{n}`).
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_MARKER)?;
    let mut parts = rest.rsplitn(3, '-');
    let n = parts.next()?;
    let pid = parts.next()?;
    let _prefix = parts.next()?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Deletes namespaces left by crashed test runs: only names made by this harness whose
/// owning process no longer exists. Processes still inside them are killed first.
/// Returns the names removed.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list_namespaces()? {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        delete_namespace(&name);
        removed.push(name);
    }
    Ok(removed)
}

/// Checks that `name` is a valid Linux interface name.
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(HarnessError::Invalid {
            what: format!("interface name {name:?}"),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return bad("longer than 15 bytes");
    }
    if name.contains(['/', ':']) || name.chars().any(char::is_whitespace) {
        return bad("contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("vt-node-1234-7"), Some(1234));
        assert_eq!(owner_pid("vt-ns-99-0"), Some(99));
        assert_eq!(owner_pid("node-1234-7"), None);
        assert_eq!(owner_pid("vt-1234-7"), None);
        assert_eq!(owner_pid("vt-node-x-7"), None);
        assert_eq!(owner_pid("vt-node-12-y"), None);
        assert_eq!(owner_pid("cni-1234-5678"), None);
    }

    #[test]
    fn ifname_rules() {
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert!(check_ifname("abcdefghijklmnop").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
    }
}
