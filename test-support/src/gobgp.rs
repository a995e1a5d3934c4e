//! [`GoBgp`]: a GoBGP daemon (`gobgpd`, tested with 3.10) running in a [`Netns`], its gRPC
//! API on `127.0.0.1:<port>` inside that namespace, driven through the `gobgp` CLI.
//!
//! Also renders [`BgpConfig`] into gobgpd TOML ([`BgpConfig::to_gobgp`]). gobgpd's config
//! file cannot originate prefixes, so [`GoBgp::start_with`] announces
//! [`BgpConfig::networks`] through the API once the daemon is up.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::bgp_config::BgpConfig;
use crate::error::{Result, io_err, not_ready};
use crate::netns::Netns;
use crate::process::{ChildGuard, run_ok};

/// How long gobgpd may take to answer on its API.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// First API port handed out. Each daemon runs in a test-owned namespace, so ports only have
/// to differ between daemons of one namespace, i.e. of one process: a counter suffices.
const FIRST_API_PORT: u16 = 50100;
const API_PORT_SPAN: u16 = 10_000;
static API_PORTS: AtomicU16 = AtomicU16::new(0);

fn next_api_port() -> u16 {
    FIRST_API_PORT + API_PORTS.fetch_add(1, Ordering::Relaxed) % API_PORT_SPAN
}

/// A running gobgpd; stopped (SIGTERM) and its temp dir removed on drop.
#[derive(Debug)]
pub struct GoBgp {
    // Field order is drop order: the daemon stops before its namespace and files go.
    child: ChildGuard,
    ns: Netns,
    api_port: u16,
    config_path: PathBuf,
    _dir: TempDir,
}

impl GoBgp {
    /// Starts `gobgpd -f <config> --api-hosts 127.0.0.1:<port>` inside `ns` (TOML config) and
    /// waits until `gobgp global` answers.
    pub fn start(ns: &Netns, config_toml: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vrouter-gobgp-")
            .tempdir()
            .map_err(io_err("create the GoBGP temp dir"))?;
        let config_path = dir.path().join("gobgpd.toml");
        std::fs::write(&config_path, config_toml)
            .map_err(io_err(format!("write {}", config_path.display())))?;
        let api_port = next_api_port();
        let log = dir.path().join("gobgpd.log");
        let mut cmd = ns.command("gobgpd");
        cmd.arg("-f")
            .arg(&config_path)
            .arg(format!("--api-hosts=127.0.0.1:{api_port}"))
            .args(["--log-plain", "--log-level=info", "--pprof-disable"]);
        let mut child = ChildGuard::spawn("gobgpd", &mut cmd, Some(&log))?;
        child.wait_until("gobgpd to answer `gobgp global`", START_TIMEOUT, || {
            run_ok(&mut cli(ns, api_port, &["global"]))
                .map(drop)
                .map_err(|e| e.to_string())
        })?;
        tracing::debug!(ns = %ns.name(), api_port, "gobgpd ready");
        Ok(Self {
            child,
            ns: ns.clone(),
            api_port,
            config_path,
            _dir: dir,
        })
    }

    /// Renders `config` with [`BgpConfig::to_gobgp`], starts gobgpd with it and announces
    /// every prefix in [`BgpConfig::networks`].
    pub fn start_with(ns: &Netns, config: &BgpConfig) -> Result<Self> {
        let gobgp = Self::start(ns, &config.to_gobgp()?)?;
        for net in &config.networks {
            gobgp.announce(net)?;
        }
        Ok(gobgp)
    }

    /// Runs `gobgp -u 127.0.0.1 -p <port> <args…>` inside the namespace; returns stdout.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        run_ok(&mut cli(&self.ns, self.api_port, args))
    }

    /// The namespace gobgpd runs in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The gRPC API port (on 127.0.0.1 inside the namespace).
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    /// The config file gobgpd was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The daemon's process id (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> Option<&Path> {
        self.child.log_path()
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// `Ok` while gobgpd runs; an error with its log tail once it has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.child.ensure_running()
    }

    /// Originates `prefix` (`global rib add <prefix> -a ipv4|ipv6`).
    pub fn announce(&self, prefix: &str) -> Result<()> {
        self.gobgp(&["global", "rib", "add", prefix, "-a", family(prefix)])
            .map(drop)
    }

    /// Withdraws a prefix announced with [`GoBgp::announce`].
    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        self.gobgp(&["global", "rib", "del", prefix, "-a", family(prefix)])
            .map(drop)
    }

    /// `Ok` if the session with neighbor `addr` is Established; otherwise
    /// [`HarnessError::NotReady`](crate::HarnessError::NotReady) with its current state. A probe for
    /// [`assert_eventually!`](crate::assert_eventually).
    pub fn established(&self, addr: std::net::IpAddr) -> Result<()> {
        let out = self.gobgp(&["neighbor", &addr.to_string()])?;
        let state = out
            .lines()
            .find(|l| l.contains("BGP state ="))
            .unwrap_or("no `BGP state` line")
            .trim()
            .to_string();
        if state.contains("BGP state = ESTABLISHED") {
            Ok(())
        } else {
            Err(not_ready(
                format!("GoBGP session with {addr} established"),
                state,
            ))
        }
    }

    /// The `global rib <prefix>` output when gobgpd's RIB holds exactly `prefix`;
    /// [`HarnessError::NotReady`](crate::HarnessError::NotReady) (with the whole RIB of that family) otherwise.
    pub fn route(&self, prefix: &str) -> Result<String> {
        let fam = family(prefix);
        let out = self.gobgp(&["global", "rib", "-a", fam, prefix])?;
        let found = out
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(prefix));
        if found {
            return Ok(out);
        }
        let rib = self
            .gobgp(&["global", "rib", "-a", fam])
            .unwrap_or_else(|e| e.to_string());
        Err(not_ready(
            format!("GoBGP route {prefix}"),
            format!("not in RIB; RIB is:\n{rib}"),
        ))
    }

    /// The IPv4 and IPv6 RIBs (`global rib -a ipv4`, `-a ipv6`).
    pub fn routes(&self) -> Result<String> {
        let v4 = self.gobgp(&["global", "rib", "-a", "ipv4"])?;
        let v6 = self.gobgp(&["global", "rib", "-a", "ipv6"])?;
        Ok(format!("{v4}{v6}"))
    }
}

fn cli(ns: &Netns, api_port: u16, args: &[&str]) -> Command {
    let mut cmd = ns.command("gobgp");
    cmd.args(["-u", "127.0.0.1", "-p", &api_port.to_string()])
        .args(args);
    cmd
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

impl BgpConfig {
    /// Renders this config as a gobgpd TOML file (originated prefixes are not part of it;
    /// see [`GoBgp::start_with`]).
    pub fn to_gobgp(&self) -> Result<String> {
        self.validate()?;
        let mut c = String::new();
        // `write!` into a String cannot fail.
        let _ = writeln!(c, "# rendered by test_support::BgpConfig");
        let _ = writeln!(c, "[global.config]");
        let _ = writeln!(c, "  as = {}", self.asn);
        let _ = writeln!(c, "  router-id = \"{}\"", self.router_id);
        for n in &self.neighbors {
            let afi_safi = if n.addr.is_ipv4() {
                "ipv4-unicast"
            } else {
                "ipv6-unicast"
            };
            let _ = writeln!(c, "[[neighbors]]");
            let _ = writeln!(c, "  [neighbors.config]");
            let _ = writeln!(c, "    neighbor-address = \"{}\"", n.addr);
            let _ = writeln!(c, "    peer-as = {}", n.asn);
            let _ = writeln!(c, "  [neighbors.timers.config]");
            let _ = writeln!(c, "    connect-retry = 1");
            let _ = writeln!(c, "    hold-time = {}", self.hold_time);
            let _ = writeln!(c, "    keepalive-interval = {}", self.keepalive());
            if n.passive {
                let _ = writeln!(c, "  [neighbors.transport.config]");
                let _ = writeln!(c, "    passive-mode = true");
            }
            if let (Some(id), true) = (self.rr_cluster_id, n.rr_client) {
                let _ = writeln!(c, "  [neighbors.route-reflector.config]");
                let _ = writeln!(c, "    route-reflector-client = true");
                let _ = writeln!(c, "    route-reflector-cluster-id = \"{id}\"");
            }
            let _ = writeln!(c, "  [[neighbors.afi-safis]]");
            let _ = writeln!(c, "    [neighbors.afi-safis.config]");
            let _ = writeln!(c, "      afi-safi-name = \"{afi_safi}\"");
            if self.add_paths {
                let _ = writeln!(c, "    [neighbors.afi-safis.add-paths.config]");
                let _ = writeln!(c, "      receive = true");
                let _ = writeln!(c, "      send-max = 8");
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn renders_toml_with_passive_and_v6() {
        let cfg = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 2), 64513)
            .passive_neighbor("10.0.0.1".parse().unwrap(), 64512)
            .neighbor("fd00::1".parse().unwrap(), 64512)
            .hold_time(9);
        let text = cfg.to_gobgp().unwrap();
        assert!(text.contains("router-id = \"10.0.0.2\""));
        assert!(text.contains("neighbor-address = \"10.0.0.1\"\n    peer-as = 64512"));
        assert_eq!(text.matches("passive-mode = true").count(), 1);
        assert!(text.contains("afi-safi-name = \"ipv6-unicast\""));
        assert!(text.contains("hold-time = 9\n    keepalive-interval = 3"));
    }

    #[test]
    fn renders_route_reflector_and_add_paths() {
        let text = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512)
            .rr_cluster_id(Ipv4Addr::new(10, 255, 0, 1))
            .add_paths(true)
            .rr_client("10.0.0.2".parse().unwrap(), 64512)
            .to_gobgp()
            .unwrap();
        assert!(text.contains("route-reflector-client = true"));
        assert!(text.contains("route-reflector-cluster-id = \"10.255.0.1\""));
        assert!(text.contains("send-max = 8"));
    }

    #[test]
    fn api_ports_are_distinct() {
        let a = next_api_port();
        let b = next_api_port();
        assert_ne!(a, b);
        assert!(a >= FIRST_API_PORT && b >= FIRST_API_PORT);
    }
}
