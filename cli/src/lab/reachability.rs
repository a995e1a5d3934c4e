//! The reachability matrix, measured with real traffic: from every pod to every other pod a
//! TCP connection to the destination's listener (which must answer with the destination's
//! name) and one ICMP echo (`ping -c1`).
//!
//! Each source pod gets a thread that moves itself into the pod's network namespace
//! (`setns(2)`, [`enter_netns`]) and connects from there; pings run as `ip netns exec <pod>
//! ping` processes, all of one source at once.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::process::enter_netns;

/// How long one TCP connect or ping may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a probe found for one ordered pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The TCP connection reached the destination's listener.
    pub tcp: bool,
    /// The ICMP echo was answered.
    pub icmp: bool,
}

impl Cell {
    /// Both probes succeeded.
    pub fn ok(&self) -> bool {
        self.tcp && self.icmp
    }
}

/// A pod as the matrix sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Pod name (its namespace).
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// Results for every ordered pair of distinct pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// The pods, in row/column order.
    pub pods: Vec<Target>,
    /// `cells[from][to]`; `None` on the diagonal.
    pub cells: Vec<Vec<Option<Cell>>>,
}

impl Matrix {
    /// The cell for `from` → `to` by pod name.
    pub fn get(&self, from: &str, to: &str) -> Option<Cell> {
        let i = self.pods.iter().position(|p| p.name == from)?;
        let j = self.pods.iter().position(|p| p.name == to)?;
        self.cells[i][j]
    }

    /// (pairs where both probes succeeded, pairs measured).
    pub fn summary(&self) -> (usize, usize) {
        let all: Vec<Cell> = self.cells.iter().flatten().flatten().copied().collect();
        (all.iter().filter(|c| c.ok()).count(), all.len())
    }

    /// Whether every pair is reachable over TCP and ICMP.
    pub fn all_reachable(&self) -> bool {
        let (ok, total) = self.summary();
        ok == total
    }

    /// Ordered pairs (`from`, `to`) that failed a probe, with what failed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, row) in self.cells.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                if let Some(c) = cell
                    && !c.ok()
                {
                    out.push(format!(
                        "{} -> {} ({}):{}{}",
                        self.pods[i].name,
                        self.pods[j].name,
                        self.pods[j].ip,
                        if c.tcp { "" } else { " tcp" },
                        if c.icmp { "" } else { " icmp" }
                    ));
                }
            }
        }
        out
    }
}

/// One TCP probe from the current thread's namespace.
fn tcp_probe(to: &Target, port: u16) -> bool {
    let addr = SocketAddr::from((to.ip, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(_) => line.trim() == to.name,
        Err(_) => false,
    }
}

/// TCP probes from `from` (a namespace) to every target, in a thread inside that namespace.
fn tcp_row(from: &str, targets: &[Target], port: u16) -> anyhow::Result<Vec<bool>> {
    let from = from.to_string();
    let targets = targets.to_vec();
    std::thread::spawn(move || -> anyhow::Result<Vec<bool>> {
        enter_netns(&from)?;
        Ok(targets.iter().map(|t| tcp_probe(t, port)).collect())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the TCP probe thread panicked"))?
}

/// One ping from namespace `from` to every target at once.
fn icmp_row(from: &str, targets: &[Target]) -> anyhow::Result<Vec<bool>> {
    let timeout = PROBE_TIMEOUT.as_secs().max(1).to_string();
    let children = targets
        .iter()
        .map(|t| {
            Command::new("ip")
                .args(["netns", "exec", from, "ping", "-n", "-q", "-c", "1", "-W"])
                .arg(&timeout)
                .arg(t.ip.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("running ping (is iputils-ping installed? run `make deps`)")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(children
        .into_iter()
        .map(|mut c| c.wait().is_ok_and(|s| s.success()))
        .collect())
}

/// Measures every ordered pair of distinct `pods`; each pod's listener is on `port`.
pub fn measure(pods: &[Target], port: u16) -> anyhow::Result<Matrix> {
    let rows: Vec<anyhow::Result<Vec<Option<Cell>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, from)| {
                scope.spawn(move || -> anyhow::Result<Vec<Option<Cell>>> {
                    let tcp = tcp_row(&from.name, pods, port)?;
                    let icmp = icmp_row(&from.name, pods)?;
                    Ok((0..pods.len())
                        .map(|j| {
                            (i != j).then(|| Cell {
                                tcp: tcp[j],
                                icmp: icmp[j],
                            })
                        })
                        .collect())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a probe thread panicked"))?
            })
            .collect()
    });
    Ok(Matrix {
        pods: pods.to_vec(),
        cells: rows.into_iter().collect::<anyhow::Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, last: u8) -> Target {
        Target {
            name: name.into(),
            ip: Ipv4Addr::new(10, 244, 0, last),
        }
    }

    #[test]
    fn summary_counts_pairs_with_both_probes() {
        let ok = Some(Cell {
            tcp: true,
            icmp: true,
        });
        let half = Some(Cell {
            tcp: true,
            icmp: false,
        });
        let m = Matrix {
            pods: vec![target("a", 1), target("b", 2)],
            cells: vec![vec![None, ok], vec![half, None]],
        };
        assert_eq!(m.summary(), (1, 2));
        assert!(!m.all_reachable());
        assert_eq!(m.failures(), vec!["b -> a (10.244.0.1): icmp".to_string()]);
        assert_eq!(m.get("a", "b"), ok);
        assert_eq!(m.get("a", "a"), None);
    }
}
