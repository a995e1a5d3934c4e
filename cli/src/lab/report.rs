//! Text the lab prints: the node table, the pod table and the reachability matrix with its
//! summary line (`reachability: 30/30 pairs`).

use std::fmt::Write as _;

use super::reachability::Matrix;
use super::state::State;

/// The node table: name, underlay address, role, daemon state, control socket.
pub fn nodes(state: &State, running: &dyn Fn(&str) -> Option<u32>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<15} {:<10} {:<16} CONTROL SOCKET",
        "NODE", "ADDRESS", "ROLE", "DAEMON"
    );
    for node in &state.nodes {
        let daemon = match running(&node.name) {
            Some(pid) => format!("running {pid}"),
            None => "stopped".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:<15} {:<10} {:<16} {}",
            node.name,
            node.ip.to_string(),
            if node.reflector { "reflector" } else { "node" },
            daemon,
            node.control_socket.display()
        );
    }
    out
}

/// The pod table: name, node, address.
pub fn pods(state: &State) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<20} {:<16} ADDRESS", "POD", "NODE");
    for pod in &state.pods {
        let ip = pod.ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
        let _ = writeln!(out, "{:<20} {:<16} {ip}", pod.name, pod.node);
    }
    out
}

/// The matrix: rows are sources, columns destinations (numbered; the legend maps numbers to
/// pods). `✓` both TCP and ICMP, `T` only TCP, `I` only ICMP, `✗` neither, `·` self.
pub fn matrix(m: &Matrix) -> String {
    let mut out = String::new();
    let width = m
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = write!(out, "{:>w$}   ", "from\\to", w = width + 4);
    for j in 0..m.pods.len() {
        let _ = write!(out, "{:>3}", j + 1);
    }
    out.push('\n');
    for (i, row) in m.cells.iter().enumerate() {
        let _ = write!(out, "{:>2} {:<w$}   ", i + 1, m.pods[i].name, w = width + 1);
        for cell in row {
            let mark = match cell {
                None => "·",
                Some(c) if c.ok() => "✓",
                Some(c) if c.tcp => "T",
                Some(c) if c.icmp => "I",
                Some(_) => "✗",
            };
            let _ = write!(out, "  {mark}");
        }
        out.push('\n');
    }
    let (ok, total) = m.summary();
    let _ = writeln!(
        out,
        "reachability: {ok}/{total} pairs (✓ TCP and ICMP, T TCP only, I ICMP only, ✗ neither)"
    );
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::reachability::{Cell, Target};
    use super::*;

    #[test]
    fn matrix_has_summary_line() {
        let ok = Some(Cell {
            tcp: true,
            icmp: true,
        });
        let m = Matrix {
            pods: vec![
                Target {
                    name: "vl-n0-p0".into(),
                    ip: Ipv4Addr::new(10, 244, 0, 1),
                },
                Target {
                    name: "vl-n1-p0".into(),
                    ip: Ipv4Addr::new(10, 244, 1, 1),
                },
            ],
            cells: vec![vec![None, ok], vec![ok, None]],
        };
        let text = matrix(&m);
        assert!(text.contains("reachability: 2/2 pairs"), "{text}");
        assert!(text.contains(" 1 vl-n0-p0"), "{text}");
        assert_eq!(text.matches('✓').count(), 3, "{text}");
    }
}
