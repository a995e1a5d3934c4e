//! `vrctl node status`: the BGP sessions of the local vrouterd as `calicoctl node status`
//! prints them (calico.md §5). Reads `show protocols` from the control socket like calicoctl
//! reads BIRD's: rows of protocol `BGP` named `Mesh_<ip>`, `Node_<ip>` or `Global_<ip>` (either
//! BIRD 2 or BIRD 1.6 layout), one table per address family. Exit 1 with `vrouterd is not
//! running.` when nothing answers on the socket.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bgp::ctl::client::Client;
use bgp::speaker::PeerKind;
use clap::{Args, Subcommand};

use super::output::emit;

/// `vrctl node …`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// BGP sessions of the vrouterd on this host (like `calicoctl node status`).
    Status(StatusArgs),
}

/// `vrctl node status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's control socket.
    #[arg(long, default_value = bgp::ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// One BGP session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    /// Peer address.
    pub address: IpAddr,
    /// Mesh / node specific / global.
    pub kind: PeerKind,
    /// `up`, `start`, `down`.
    pub state: String,
    /// Since.
    pub since: String,
    /// Info (BGP state and error).
    pub info: String,
}

/// Runs `vrctl node …`.
pub fn run(args: NodeArgs) -> anyhow::Result<u8> {
    match args.command {
        NodeCommand::Status(args) => status(&args),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<u8> {
    let mut client = match Client::connect(&args.socket, Duration::from_secs(2)) {
        Ok(c) => c,
        Err(error) => {
            emit("vrouterd is not running.\n")?;
            eprintln!("(control socket {}: {error})", args.socket.display());
            return Ok(1);
        }
    };
    let daemon = client
        .welcome()
        .split_whitespace()
        .next()
        .unwrap_or("vrouterd")
        .to_string();
    let reply = client
        .command("show protocols")
        .with_context(|| format!("reading {}", args.socket.display()))?;
    if reply.is_error() {
        let text = reply
            .lines
            .last()
            .map(|l| l.text.clone())
            .unwrap_or_default();
        bail!("show protocols: {text}");
    }
    let lines: Vec<(u16, String)> = reply.lines.into_iter().map(|l| (l.code, l.text)).collect();
    let rows = parse_protocols(&lines)?;
    emit(&render(&daemon, &rows))?;
    Ok(0)
}

/// The BGP session rows of a `show protocols` reply (codes resolved).
pub fn parse_protocols(lines: &[(u16, String)]) -> anyhow::Result<Vec<PeerRow>> {
    let mut rows = Vec::new();
    let mut heading = false;
    for (code, text) in lines {
        match code {
            2002 => {
                let fields: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
                if fields != ["name", "proto", "table", "state", "since", "info"] {
                    bail!("unknown table output format: {text:?}");
                }
                heading = true;
            }
            1002 => {
                if !heading {
                    bail!("protocol row before the heading: {text:?}");
                }
                if let Some(row) = peer_row(text) {
                    rows.push(row);
                }
            }
            _ => {}
        }
    }
    Ok(rows)
}

fn peer_row(text: &str) -> Option<PeerRow> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 5 || fields[1] != "BGP" {
        return None;
    }
    let (prefix, ip) = fields[0].split_once('_')?;
    let kind = PeerKind::from_name_prefix(prefix)?;
    let address = ip
        .replace('_', ".")
        .parse()
        .or_else(|_| ip.replace('_', ":").parse())
        .ok()?;
    Some(PeerRow {
        address,
        kind,
        state: fields[3].to_string(),
        since: fields[4].to_string(),
        info: fields[5..].join(" "),
    })
}

/// calicoctl's output: the daemon line, then an IPv4 and an IPv6 table.
pub fn render(daemon: &str, rows: &[PeerRow]) -> String {
    let mut out = format!("{daemon} is running.\n");
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        out.push_str(&format!("\n{family} BGP status\n"));
        let rows: Vec<[String; 5]> = rows
            .iter()
            .filter(|r| r.address.is_ipv4() == v4)
            .map(|r| {
                [
                    r.address.to_string(),
                    r.kind.description().to_string(),
                    r.state.clone(),
                    r.since.clone(),
                    r.info.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            out.push_str(&format!("No {family} peers found.\n"));
        } else {
            out.push_str(&table(&rows));
        }
    }
    out.push('\n');
    out
}

/// A go-pretty style table: centred upper-case headers, left-aligned cells.
fn table(rows: &[[String; 5]]) -> String {
    let headers = ["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    let rule = format!("+{rule}+\n");
    let mut out = rule.clone();
    let header: Vec<String> = headers
        .iter()
        .zip(&widths)
        .map(|(h, w)| {
            let extra = w - h.len();
            let left = extra / 2;
            format!(" {}{h}{} ", " ".repeat(left), " ".repeat(extra - left))
        })
        .collect();
    out.push_str(&format!("|{}|\n", header.join("|")));
    out.push_str(&rule);
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        out.push_str(&format!("|{}|\n", cells.join("|")));
    }
    out.push_str(&rule);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_calicoctls_table() {
        let lines: Vec<(u16, String)> = vec![
            (
                2002,
                "name     proto    table    state  since       info".into(),
            ),
            (
                1002,
                "device1  Device   master   up     17:38:40    ".into(),
            ),
            (
                1002,
                "Mesh_172_31_40_217 BGP      master   up     17:38:47    Established   ".into(),
            ),
            (
                1002,
                "Mesh_172_31_40_30 BGP      master   up     17:40:09    Established   ".into(),
            ),
            (0, String::new()),
        ];
        let rows = parse_protocols(&lines).unwrap();
        assert_eq!(rows.len(), 2);
        let expected = "\
vrouterd is running.

IPv4 BGP status
+---------------+-------------------+-------+----------+-------------+
| PEER ADDRESS  |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+---------------+-------------------+-------+----------+-------------+
| 172.31.40.217 | node-to-node mesh | up    | 17:38:47 | Established |
| 172.31.40.30  | node-to-node mesh | up    | 17:40:09 | Established |
+---------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

";
        assert_eq!(render("vrouterd", &rows), expected);
    }

    #[test]
    fn reads_the_bird2_layout_kinds_and_ipv6() {
        let lines: Vec<(u16, String)> = vec![
            (2002, "Name       Proto      Table      State  Since         Info".into()),
            (1002, "Node_fd00__2 BGP        ---        start  03:04:51.425  Active        Socket: Connection refused".into()),
            (1002, "Global_10_0_0_9 BGP        ---        down   03:04:54.428  ".into()),
            (1002, "Peer_10_0_0_8 BGP        ---        up     03:04:54.428  Established".into()),
        ];
        let rows = parse_protocols(&lines).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].address, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(rows[0].kind, PeerKind::NodeSpecific);
        assert_eq!(rows[0].info, "Active Socket: Connection refused");
        assert_eq!(rows[1].kind, PeerKind::Global);
        assert_eq!(
            (rows[1].state.as_str(), rows[1].info.as_str()),
            ("down", "")
        );
        let text = render("vrouterd", &rows);
        assert!(
            text.contains("| fd00::2      | node specific | start |"),
            "{text}"
        );
        assert!(parse_protocols(&[(2002, "Name Proto".into())]).is_err());
    }
}
