//! [`Bird`]: a BIRD 2 daemon (`/usr/sbin/bird`, tested with 2.0.12) running in a [`Netns`]
//! with its config, control socket and log in a private temp dir, driven through `birdc`.
//!
//! Also renders [`BgpConfig`] into BIRD syntax ([`BgpConfig::to_bird`]): `protocol device`,
//! `protocol direct` (connected routes, needed to resolve iBGP next hops), blackhole static
//! routes for the originated prefixes, an optional `protocol kernel`, and one
//! `protocol bgp` per neighbor named by [`bird_protocol_name`].

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tempfile::TempDir;

use crate::bgp_config::{BgpConfig, bird_protocol_name};
use crate::error::{HarnessError, Result, io_err, not_ready};
use crate::netns::Netns;
use crate::process::{ChildGuard, check_output, command_line, run};

/// How long BIRD may take to open its control socket and answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running BIRD; stopped (SIGTERM) and its temp dir removed on drop.
#[derive(Debug)]
pub struct Bird {
    // Field order is drop order: the daemon stops before its namespace and files go.
    child: ChildGuard,
    ns: Netns,
    socket: PathBuf,
    config_path: PathBuf,
    _dir: TempDir,
}

impl Bird {
    /// Starts `bird -f -c <config> -s <socket>` inside `ns` and waits until the control
    /// socket answers. Unless `config` has its own `log` statement, `log stderr all;` is
    /// prepended so the daemon's log lands in [`Bird::log_path`].
    pub fn start(ns: &Netns, config: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vrouter-bird-")
            .tempdir()
            .map_err(io_err("create the BIRD temp dir"))?;
        let config_path = dir.path().join("bird.conf");
        let socket = dir.path().join("bird.ctl");
        let pid_file = dir.path().join("bird.pid");
        let log = dir.path().join("bird.log");
        write_config(&config_path, config)?;
        let mut cmd = ns.command("bird");
        cmd.arg("-f")
            .arg("-c")
            .arg(&config_path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(&pid_file);
        let mut child = ChildGuard::spawn("bird", &mut cmd, Some(&log))?;
        child.wait_for_file(&socket, START_TIMEOUT)?;
        child.wait_until("BIRD to answer `show status`", START_TIMEOUT, || {
            let out = birdc_raw(&socket, "show status").map_err(|e| e.to_string())?;
            if out.contains("Daemon is up and running") {
                Ok(())
            } else {
                Err(out)
            }
        })?;
        tracing::debug!(ns = %ns.name(), socket = %socket.display(), "bird ready");
        Ok(Self {
            child,
            ns: ns.clone(),
            socket,
            config_path,
            _dir: dir,
        })
    }

    /// Renders `config` with [`BgpConfig::to_bird`] and starts BIRD with it.
    pub fn start_with(ns: &Netns, config: &BgpConfig) -> Result<Self> {
        Self::start(ns, &config.to_bird()?)
    }

    /// Runs `birdc -s <socket> <cmd>` and returns its output without the `BIRD … ready.`
    /// banner. Fails if birdc exits non-zero, which it does for error replies such as
    /// `Network not found` or a syntax error.
    pub fn birdc(&self, cmd: &str) -> Result<String> {
        birdc_raw(&self.socket, cmd)
    }

    /// The namespace BIRD runs in.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The control socket path (usable with a real `birdc -s`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The config file BIRD was started with.
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

    /// `Ok` while BIRD runs; an error with its log tail once it has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.child.ensure_running()
    }

    /// Replaces the config file with `config` and runs `configure`; fails with BIRD's reply
    /// unless it reconfigured.
    pub fn reconfigure(&self, config: &str) -> Result<()> {
        write_config(&self.config_path, config)?;
        let out = self.birdc("configure")?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(HarnessError::CommandFailed {
                command: "birdc configure".to_string(),
                status: "no `Reconfigured` reply".to_string(),
                stderr: out,
            })
        }
    }

    /// `Ok` if the BGP protocol named `protocol` is Established; otherwise
    /// [`HarnessError::NotReady`] with its current state. A probe for
    /// [`assert_eventually!`](crate::assert_eventually).
    pub fn protocol_established(&self, protocol: &str) -> Result<()> {
        let out = self.birdc(&format!("show protocols {protocol}"))?;
        let row = out
            .lines()
            .find(|line| line.split_whitespace().next() == Some(protocol))
            .unwrap_or("no such protocol row");
        if row.contains("Established") {
            Ok(())
        } else {
            Err(not_ready(
                format!("BIRD protocol {protocol} established"),
                row.trim().to_string(),
            ))
        }
    }

    /// `Ok` if the BGP session with neighbor `addr` is Established, whatever the protocol is
    /// called (found through `show protocols all`'s `Neighbor address:`).
    pub fn established(&self, addr: IpAddr) -> Result<()> {
        let out = self.birdc("show protocols all")?;
        let what = format!("BIRD session with {addr} established");
        match session_row(&out, addr) {
            Some(row) if row.contains("Established") => Ok(()),
            Some(row) => Err(not_ready(what, row.trim().to_string())),
            None => Err(not_ready(what, "no protocol has that neighbor address")),
        }
    }

    /// The `show route <prefix> all` output when BIRD has a route for exactly `prefix`;
    /// [`HarnessError::NotReady`] (with the whole table) when it has none.
    pub fn route(&self, prefix: &str) -> Result<String> {
        let mut cmd = birdc_command(&self.socket, &format!("show route {prefix} all"));
        let output = run(&mut cmd)?;
        let text = strip_banner(&String::from_utf8_lossy(&output.stdout));
        if output.status.success()
            && text
                .lines()
                .any(|l| l.split_whitespace().next() == Some(prefix))
        {
            return Ok(text);
        }
        if text.contains("Network not found") {
            let table = self.routes().unwrap_or_else(|e| e.to_string());
            return Err(not_ready(
                format!("BIRD route {prefix}"),
                format!("not in table; table is:\n{table}"),
            ));
        }
        check_output(&command_line(&cmd), output)
    }

    /// `show route` output (every table, best and alternative routes).
    pub fn routes(&self) -> Result<String> {
        self.birdc("show route")
    }
}

/// Finds the `show protocols all` row of the protocol whose neighbor address is `addr`.
fn session_row(show_protocols_all: &str, addr: IpAddr) -> Option<&str> {
    let mut row = None;
    for line in show_protocols_all.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            row = Some(line);
        } else if let Some(value) = line.trim().strip_prefix("Neighbor address:")
            && value.trim().parse::<IpAddr>().ok() == Some(addr)
        {
            return row;
        }
    }
    None
}

fn write_config(path: &Path, config: &str) -> Result<()> {
    let has_log = config.lines().any(|l| l.trim_start().starts_with("log "));
    let text = if has_log {
        config.to_string()
    } else {
        format!("log stderr all;\n{config}")
    };
    std::fs::write(path, text).map_err(io_err(format!("write {}", path.display())))
}

fn birdc_command(socket: &Path, cmd: &str) -> Command {
    let mut command = Command::new("birdc");
    command.arg("-s").arg(socket).arg(cmd);
    command
}

fn strip_banner(text: &str) -> String {
    text.lines()
        .filter(|l| !(l.starts_with("BIRD ") && l.ends_with(" ready.")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn birdc_raw(socket: &Path, cmd: &str) -> Result<String> {
    let mut command = birdc_command(socket, cmd);
    let output = run(&mut command)?;
    let line = command_line(&command);
    check_output(&line, output).map(|text| strip_banner(&text))
}

impl BgpConfig {
    /// Renders this config as a BIRD 2 configuration file.
    pub fn to_bird(&self) -> Result<String> {
        let prefixes = self.validate()?;
        let mut c = String::new();
        // `write!` into a String cannot fail.
        let _ = writeln!(c, "# rendered by test_support::BgpConfig");
        let _ = writeln!(c, "router id {};", self.router_id);
        let _ = writeln!(c, "protocol device {{ scan time 2; }}");
        let _ = writeln!(c, "protocol direct {{ ipv4; ipv6; }}");
        let v4: Vec<&IpNetwork> = prefixes.iter().filter(|p| p.is_ipv4()).collect();
        let v6: Vec<&IpNetwork> = prefixes.iter().filter(|p| p.is_ipv6()).collect();
        for (name, channel, nets) in [("static4", "ipv4", v4), ("static6", "ipv6", v6)] {
            if nets.is_empty() {
                continue;
            }
            let _ = write!(c, "protocol static {name} {{ {channel};");
            for net in nets {
                let _ = write!(c, " route {net} blackhole;");
            }
            let _ = writeln!(c, " }}");
        }
        if self.install_routes {
            for (name, channel) in [("kernel4", "ipv4"), ("kernel6", "ipv6")] {
                let _ = writeln!(
                    c,
                    "protocol kernel {name} {{ {channel} {{ import none; export where source = RTS_BGP; }}; }}"
                );
            }
        }
        for n in &self.neighbors {
            let channel = if n.addr.is_ipv4() { "ipv4" } else { "ipv6" };
            let _ = writeln!(c, "protocol bgp {} {{", bird_protocol_name(n.addr));
            let _ = writeln!(c, "  local as {};", self.asn);
            let _ = writeln!(c, "  neighbor {} as {};", n.addr, n.asn);
            if n.passive {
                let _ = writeln!(c, "  passive on;");
            }
            let _ = writeln!(
                c,
                "  hold time {}; keepalive time {};",
                self.hold_time,
                self.keepalive()
            );
            // BIRD's defaults (connect delay 5 s, error wait 60-300 s) make tests slow.
            let _ = writeln!(
                c,
                "  connect retry time 1; connect delay time 1; error wait time 1,5;"
            );
            let reflect = match self.rr_cluster_id {
                Some(id) if n.rr_client => {
                    let _ = writeln!(c, "  rr client; rr cluster id {id};");
                    true
                }
                _ => false,
            };
            let add_paths = if self.add_paths { " add paths on;" } else { "" };
            if reflect || self.rr_cluster_id.is_some() {
                // A reflector passes BGP routes on with the next hop kept (never its
                // connected routes: clients would install them over their own).
                let _ = writeln!(
                    c,
                    "  {channel} {{ import all; export where source ~ [RTS_BGP, RTS_STATIC];{add_paths} }};"
                );
            } else {
                let _ = writeln!(
                    c,
                    "  {channel} {{ import all; export where source = RTS_STATIC; next hop self;{add_paths} }};"
                );
            }
            let _ = writeln!(c, "}}");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn renders_neighbors_statics_and_kernel() {
        let cfg = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512)
            .neighbor("10.0.0.2".parse().unwrap(), 64513)
            .passive_neighbor("fd00::2".parse().unwrap(), 64512)
            .network("10.244.1.0/26")
            .network("fd10:244::/64")
            .install_routes(true);
        let text = cfg.to_bird().unwrap();
        assert!(text.contains("router id 10.0.0.1;"));
        assert!(text.contains("protocol static static4 { ipv4; route 10.244.1.0/26 blackhole; }"));
        assert!(text.contains("protocol static static6 { ipv6; route fd10:244::/64 blackhole; }"));
        assert!(text.contains("protocol kernel kernel4"));
        assert!(text.contains("protocol bgp peer_10_0_0_2 {"));
        assert!(text.contains("neighbor fd00::2 as 64512;\n  passive on;"));
        assert!(text.contains("  ipv6 { import all;"));
        assert_eq!(text.matches("passive on").count(), 1);
    }

    #[test]
    fn renders_route_reflector_clients_with_add_paths() {
        let text = BgpConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512)
            .rr_cluster_id(Ipv4Addr::new(10, 255, 0, 1))
            .add_paths(true)
            .rr_client("10.0.0.2".parse().unwrap(), 64512)
            .to_bird()
            .unwrap();
        assert!(
            text.contains("rr client; rr cluster id 10.255.0.1;"),
            "{text}"
        );
        assert!(text.contains("export where source ~ [RTS_BGP, RTS_STATIC]; add paths on;"));
        assert!(!text.contains("next hop self"));
    }

    #[test]
    fn session_row_found_by_neighbor_address() {
        let out = "Name       Proto      Table      State  Since         Info\n\
                   a          BGP        ---        start  09:00:00.000  Active\n  \
                   BGP state:          Active\n    Neighbor address: 10.0.0.3\n\
                   b          BGP        ---        up     09:00:00.000  Established\n  \
                   BGP state:          Established\n    Neighbor address: 10.0.0.2\n";
        let row = session_row(out, "10.0.0.2".parse().unwrap()).unwrap();
        assert!(row.starts_with('b') && row.contains("Established"));
        let row = session_row(out, "10.0.0.3".parse().unwrap()).unwrap();
        assert!(row.contains("Active"));
        assert!(session_row(out, "10.0.0.9".parse().unwrap()).is_none());
    }

    #[test]
    fn log_statement_added_only_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        write_config(&path, "router id 1.1.1.1;\n").unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("log stderr all;")
        );
        write_config(&path, "log \"/tmp/x\" all;\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "log \"/tmp/x\" all;\n"
        );
    }
}
