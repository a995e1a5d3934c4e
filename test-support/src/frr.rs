//! [`Frr`]: FRR 8.4 `zebra` + `bgpd` running in a [`Netns`], each instance with its own state
//! directory (configs, PID files, vty sockets, zserv socket), driven through `vtysh`.
//!
//! What works on this machine, found by experiment (FRR 8.4.4, Debian 12):
//! - `--vty_socket <dir>` moves the vty sockets, `-z <dir>/zserv.api` the zebra API socket and
//!   `-i` the PID file, so instances never touch `/var/run/frr` and can run side by side.
//! - `-u root -g root` fails (`user(root) is not part of vty group specified(frrvty)`), so
//!   zebra runs as the packaged `frr` user (the state dir is made writable for it); bgpd runs
//!   as root with `-S` (skip privilege changes). zebra keeps `CAP_NET_ADMIN` and installs BGP
//!   routes into the namespace's kernel table (`proto bgp`).
//! - `-P 0` turns off the TCP vty listeners (2601/2605).
//! - `vtysh --vty_socket <dir>` reaches both daemons; no namespace switch is needed because
//!   vty sockets are files.
//!
//! Also renders [`BgpConfig`] into `bgpd.conf` ([`BgpConfig::to_frr`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::bgp_config::BgpConfig;
use crate::error::{HarnessError, Result, io_err, not_ready};
use crate::netns::Netns;
use crate::process::{ChildGuard, run_ok};

/// How long zebra and bgpd may take to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";

/// Running FRR `zebra` + `bgpd`; both stopped (bgpd first) and the state dir removed on drop.
#[derive(Debug)]
pub struct Frr {
    // Field order is drop order: bgpd, then zebra, then the namespace and the files.
    bgpd: ChildGuard,
    zebra: ChildGuard,
    ns: Netns,
    dir_path: PathBuf,
    _dir: TempDir,
}

impl Frr {
    /// Starts zebra and bgpd inside `ns` with `bgpd_conf` as bgpd's config, and waits until
    /// bgpd answers `vtysh` and is registered with zebra.
    pub fn start(ns: &Netns, bgpd_conf: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vrouter-frr-")
            .tempdir()
            .map_err(io_err("create the FRR temp dir"))?;
        let d = dir.path().to_path_buf();
        // zebra runs as user `frr` and writes its PID file and sockets here.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
            .map_err(io_err(format!("chmod {}", d.display())))?;
        let write = |name: &str, text: &str| {
            let path = d.join(name);
            std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))
        };
        write("zebra.conf", &format!("hostname {}\n", ns.name()))?;
        write("bgpd.conf", bgpd_conf)?;
        let zserv = d.join("zserv.api");

        let mut zebra_cmd = ns.command(ZEBRA);
        common_args(&mut zebra_cmd, &d, "zebra");
        let mut zebra = ChildGuard::spawn("zebra", &mut zebra_cmd, Some(&d.join("zebra.log")))?;
        zebra.wait_for_file(&zserv, START_TIMEOUT)?;
        zebra.wait_for_file(&d.join("zebra.vty"), START_TIMEOUT)?;

        let mut bgpd_cmd = ns.command(BGPD);
        common_args(&mut bgpd_cmd, &d, "bgpd");
        bgpd_cmd.arg("-S");
        let mut bgpd = ChildGuard::spawn("bgpd", &mut bgpd_cmd, Some(&d.join("bgpd.log")))?;
        bgpd.wait_for_file(&d.join("bgpd.vty"), START_TIMEOUT)?;
        bgpd.wait_until("bgpd to register with zebra", START_TIMEOUT, || {
            let out = run_ok(&mut vtysh_command(&d, "show zebra client summary"))
                .map_err(|e| e.to_string())?;
            if out.lines().any(|l| l.starts_with("bgp")) {
                Ok(())
            } else {
                Err(format!("zebra clients:\n{out}"))
            }
        })?;
        tracing::debug!(ns = %ns.name(), dir = %d.display(), "frr ready");
        Ok(Self {
            bgpd,
            zebra,
            ns: ns.clone(),
            dir_path: d,
            _dir: dir,
        })
    }

    /// Renders `config` with [`BgpConfig::to_frr`] and starts FRR with it.
    pub fn start_with(ns: &Netns, config: &BgpConfig) -> Result<Self> {
        Self::start(ns, &config.to_frr(ns.name())?)
    }

    /// Runs `vtysh --vty_socket <dir> -c <cmd>` and returns its output. Several commands
    /// can be given in one string separated by newlines (e.g. `"configure terminal\nrouter
    /// bgp 64512\n…"`).
    pub fn vtysh(&self, cmd: &str) -> Result<String> {
        run_ok(&mut vtysh_command(&self.dir_path, cmd))
    }

    /// Runs a `… json` show command through [`Frr::vtysh`] and parses the reply.
    pub fn vtysh_json(&self, cmd: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(cmd)?;
        serde_json::from_str(&out).map_err(|e| HarnessError::Invalid {
            what: format!("JSON from vtysh `{cmd}`"),
            reason: format!("{e}: {out}"),
        })
    }

    /// The namespace FRR runs in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The instance's state directory (configs, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Process ids of zebra and bgpd, in that order (`None` once stopped).
    pub fn pids(&self) -> [Option<u32>; 2] {
        [self.zebra.id(), self.bgpd.id()]
    }

    /// The last `lines` lines of bgpd's and zebra's logs.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- bgpd ---\n{}\n--- zebra ---\n{}",
            self.bgpd.log_tail(lines),
            self.zebra.log_tail(lines)
        )
    }

    /// `Ok` while both daemons run; an error with the log tail of the one that exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.zebra.ensure_running()?;
        self.bgpd.ensure_running()
    }

    /// `Ok` if the session with neighbor `addr` is Established; otherwise
    /// [`HarnessError::NotReady`] with its state. A probe for
    /// [`assert_eventually!`](crate::assert_eventually).
    pub fn established(&self, addr: IpAddr) -> Result<()> {
        let key = addr.to_string();
        let json = self.vtysh_json(&format!("show bgp neighbors {key} json"))?;
        let state = json
            .get(&key)
            .and_then(|n| n.get("bgpState"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown neighbor");
        if state == "Established" {
            Ok(())
        } else {
            Err(not_ready(
                format!("FRR session with {addr} established"),
                format!("bgpState {state}"),
            ))
        }
    }

    /// `show bgp <afi> unicast <prefix>` output when bgpd has a path for exactly `prefix`;
    /// [`HarnessError::NotReady`] (with the whole BGP table) otherwise.
    pub fn route(&self, prefix: &str) -> Result<String> {
        let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let json = self.vtysh_json(&format!("show bgp {afi} unicast {prefix} json"))?;
        let has_path = json
            .get("prefix")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|p| p == prefix)
            && json
                .get("paths")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|paths| !paths.is_empty());
        if has_path {
            return self.vtysh(&format!("show bgp {afi} unicast {prefix}"));
        }
        let table = self.routes().unwrap_or_else(|e| e.to_string());
        Err(not_ready(
            format!("FRR route {prefix}"),
            format!("not in BGP table; table is:\n{table}"),
        ))
    }

    /// The IPv4 and IPv6 BGP tables (`show bgp ipv4 unicast`, `show bgp ipv6 unicast`).
    pub fn routes(&self) -> Result<String> {
        let v4 = self.vtysh("show bgp ipv4 unicast")?;
        let v6 = self.vtysh("show bgp ipv6 unicast")?;
        Ok(format!("{v4}{v6}"))
    }
}

fn common_args(cmd: &mut Command, dir: &Path, daemon: &str) {
    cmd.arg("-f")
        .arg(dir.join(format!("{daemon}.conf")))
        .arg("-i")
        .arg(dir.join(format!("{daemon}.pid")))
        .arg("-z")
        .arg(dir.join("zserv.api"))
        .arg("--vty_socket")
        .arg(dir)
        .args(["-P", "0", "--log", "stdout"]);
}

fn vtysh_command(dir: &Path, cmd: &str) -> Command {
    let mut command = Command::new("vtysh");
    command
        .arg("--vty_socket")
        .arg(dir)
        .arg("--config_dir")
        .arg(dir)
        .arg("-c")
        .arg(cmd);
    command
}

impl BgpConfig {
    /// Renders this config as an FRR `bgpd.conf` (`hostname` is cosmetic). eBGP needs no
    /// policy (`no bgp ebgp-requires-policy`) and `network` statements originate without a
    /// matching IGP route (`no bgp network import-check`).
    pub fn to_frr(&self, hostname: &str) -> Result<String> {
        let prefixes = self.validate()?;
        let mut c = String::new();
        // `write!` into a String cannot fail.
        let _ = writeln!(c, "frr defaults traditional");
        let _ = writeln!(c, "hostname {hostname}");
        let _ = writeln!(c, "!");
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", self.router_id);
        let _ = writeln!(c, " no bgp ebgp-requires-policy");
        let _ = writeln!(c, " no bgp network import-check");
        let _ = writeln!(c, " no bgp default ipv4-unicast");
        let _ = writeln!(c, " timers bgp {} {}", self.keepalive(), self.hold_time);
        for n in &self.neighbors {
            let _ = writeln!(c, " neighbor {} remote-as {}", n.addr, n.asn);
            let _ = writeln!(c, " neighbor {} timers connect 1", n.addr);
            if n.passive {
                let _ = writeln!(c, " neighbor {} passive", n.addr);
            }
        }
        for (afi, v6) in [("ipv4", false), ("ipv6", true)] {
            let _ = writeln!(c, " address-family {afi} unicast");
            for net in prefixes.iter().filter(|p| p.is_ipv6() == v6) {
                let _ = writeln!(c, "  network {net}");
            }
            for n in self.neighbors.iter().filter(|n| n.addr.is_ipv6() == v6) {
                let _ = writeln!(c, "  neighbor {} activate", n.addr);
            }
            let _ = writeln!(c, " exit-address-family");
        }
        let _ = writeln!(c, "!");
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn renders_families_and_neighbors() {
        let cfg = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 3), 64512)
            .neighbor("10.0.0.1".parse().unwrap(), 64512)
            .passive_neighbor("fd00::1".parse().unwrap(), 64513)
            .network("10.244.3.0/26")
            .network("fd10:3::/64");
        let text = cfg.to_frr("h").unwrap();
        assert!(text.starts_with("frr defaults traditional\n"));
        assert!(text.contains(" neighbor 10.0.0.1 remote-as 64512\n"));
        assert!(text.contains(" neighbor fd00::1 passive\n"));
        assert!(!text.contains(" neighbor 10.0.0.1 passive"));
        let v4 = text.split(" address-family ipv6").next().unwrap();
        assert!(v4.contains("  network 10.244.3.0/26\n  neighbor 10.0.0.1 activate"));
        assert!(!v4.contains("fd10"));
        let v6 = text.split(" address-family ipv6").nth(1).unwrap();
        assert!(v6.contains("  network fd10:3::/64\n  neighbor fd00::1 activate"));
    }
}
