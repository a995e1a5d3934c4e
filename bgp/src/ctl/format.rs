//! Output formats of the control socket, pure: BIRD 2.0's (`nest/proto.c`, `nest/rt-show.c`,
//! `proto/bgp/bgp.c` format strings, reference/bgp.md §1.4) and, for `show protocols` and
//! `show route`, BIRD 1.6's layout that calicoctl parses. Times are UTC.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::backend::{DaemonInfo, Interface, PseudoProtocol};
use super::reply::{Reply, code};
use crate::fsm::State;
use crate::speaker::{PathDetail, PeerStatus, RouteDetail};
use crate::wire::{AsPathSegment, Origin, PathAttributes};

/// Which BIRD's output `show protocols` and `show route` imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// BIRD 2.0 (`Name Proto Table State Since Info`).
    #[default]
    Bird2,
    /// BIRD 1.6 (`name proto table state since info`), what calicoctl and Calico's status
    /// tools parse.
    Bird16,
}

/// Civil date and time (UTC) of `t`: (year, month, day, hour, minute, second, millisecond).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let n = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        year,
        n(month),
        n(day),
        n(rem / 3600),
        n(rem % 3600 / 60),
        n(rem % 60),
        d.subsec_millis(),
    )
}

/// `2026-11-23 03:04:32.016`.
pub fn datetime(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{ms:03}")
}

/// BIRD's short time: the time of day within the last 20 hours (`03:04:11.246`, 1.6 without
/// milliseconds), else the date.
pub fn short_time(t: SystemTime, now: SystemTime, layout: Layout) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    let recent = now
        .duration_since(t)
        .map_or(true, |age| age < Duration::from_secs(20 * 3600));
    match (recent, layout) {
        (true, Layout::Bird2) => format!("{h:02}:{mi:02}:{s:02}.{ms:03}"),
        (true, Layout::Bird16) => format!("{h:02}:{mi:02}:{s:02}"),
        (false, _) => format!("{y:04}-{mo:02}-{d:02}"),
    }
}

/// `show status`.
pub fn status(info: &DaemonInfo, now: SystemTime, speaker_up: bool) -> Reply {
    let mut r = Reply::new();
    r.row(code::VERSION, format!("{} {}", info.name, info.version));
    r.row(
        code::UPTIME,
        match info.router_id {
            Some(id) => format!("Router ID is {id}"),
            None => "Router ID is not known yet".to_string(),
        },
    );
    r.row(code::UPTIME, format!("Hostname is {}", info.hostname));
    r.row(
        code::UPTIME,
        format!("Current server time is {}", datetime(now)),
    );
    r.row(
        code::UPTIME,
        format!("Last reboot on {}", datetime(info.started)),
    );
    r.row(
        code::UPTIME,
        format!("Last reconfiguration on {}", datetime(info.reconfigured)),
    );
    if info.graceful_restart_recovery {
        r.row(code::GR_STATUS, "Graceful restart recovery in progress");
    }
    if speaker_up {
        r.finish(code::STATUS, "Daemon is up and running")
    } else {
        r.finish(
            code::STATUS,
            "Daemon is up and running; BGP is waiting for the datastore",
        )
    }
}

/// One row of `show protocols`, with the `all` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRow {
    /// Name.
    pub name: String,
    /// `BGP`, `Device`, …
    pub proto: String,
    /// Table (`---` in BIRD 2 for BGP).
    pub table: Option<String>,
    /// `up`, `start`, `down`.
    pub state: &'static str,
    /// Since.
    pub since: SystemTime,
    /// Info column.
    pub info: String,
    /// `show protocols all` lines.
    pub details: Vec<String>,
}

/// BIRD's error class and text for a speaker's last error (`Socket: Connection refused`,
/// `Received: Cease/Administrative Shutdown`, `BGP Error: Hold timer expired`).
pub fn bird_error(last_error: &str) -> Option<String> {
    let strip_os = |s: &str| match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    };
    let description = |s: &str| match (s.find('('), s.rfind(')')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s.to_string(),
    };
    if let Some(rest) = last_error.strip_prefix("connect: ") {
        let text = strip_os(rest);
        let text = if text.contains("timed out") || text.contains("deadline") {
            "Connection timed out".to_string()
        } else {
            text
        };
        return Some(format!("Socket: {text}"));
    }
    if let Some(rest) = last_error.strip_prefix("received notification ") {
        return Some(format!("Received: {}", description(rest)));
    }
    if let Some(rest) = last_error.strip_prefix("sent notification ") {
        return Some(format!("BGP Error: {}", description(rest)));
    }
    match last_error {
        "manual stop" => None,
        "hold timer expired" => Some("BGP Error: Hold timer expired".to_string()),
        "connection lost" => Some("Socket: Connection closed".to_string()),
        other => Some(format!("Error: {other}")),
    }
}

/// A BGP session as a protocol row.
pub fn bgp_row(peer: &PeerStatus, name: &str, local_asn: Option<u32>) -> ProtocolRow {
    let (state, info) = if peer.disabled {
        ("down", String::new())
    } else {
        let s = if peer.state == State::Established {
            "up"
        } else {
            "start"
        };
        let error = if peer.state == State::Established {
            None
        } else {
            peer.last_error.as_deref().and_then(bird_error)
        };
        (
            s,
            format!(
                "{:<14}{}",
                peer.state.to_string(),
                error.unwrap_or_default()
            ),
        )
    };
    let mut d = Vec::new();
    d.push(format!("  Description:    {}", peer.kind.description()));
    let bgp_state = if peer.disabled {
        "Down".to_string()
    } else {
        peer.state.to_string()
    };
    d.push(format!("  BGP state:          {bgp_state}"));
    d.push(format!("    Neighbor address: {}", peer.address));
    d.push(format!("    Neighbor AS:      {}", peer.remote_asn));
    let local = peer.context.as_ref().map(|c| c.local_asn).or(local_asn);
    if let Some(asn) = local {
        d.push(format!("    Local AS:         {asn}"));
    }
    if let Some(c) = &peer.context {
        d.push(format!("    Neighbor ID:      {}", c.remote_id));
        let mut session = if c.ibgp() { "internal" } else { "external" }.to_string();
        if c.four_octet_as {
            session.push_str(" AS4");
        }
        if !c.add_path_receive.is_empty() {
            session.push_str(" add-path-rx");
        }
        if !c.add_path_send.is_empty() {
            session.push_str(" add-path-tx");
        }
        d.push(format!("    Session:          {session}"));
        let mut caps = Vec::new();
        if c.route_refresh {
            caps.push("refresh");
        }
        if c.enhanced_route_refresh {
            caps.push("enhanced-refresh");
        }
        if c.graceful_restart.is_some() {
            caps.push("restart-aware");
        }
        if c.four_octet_as {
            caps.push("AS4");
        }
        if c.extended_message {
            caps.push("ext-messages");
        }
        d.push(format!("    Neighbor caps:    {}", caps.join(" ")));
        d.push(format!("    Hold time:        {}", c.hold_time));
        if let Some(k) = c.keepalive_interval() {
            d.push(format!("    Keepalive time:   {}", k.as_secs()));
        }
    } else if let Some(error) = peer.last_error.as_deref().and_then(bird_error) {
        d.push(format!("    Last error:       {error}"));
    }
    let families: Vec<&str> = match &peer.context {
        Some(c) => c
            .families
            .iter()
            .map(|f| match f {
                crate::wire::Family::Ipv4Unicast => "ipv4",
                crate::wire::Family::Ipv6Unicast => "ipv6",
            })
            .collect(),
        None => vec![if peer.address.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        }],
    };
    for family in families {
        d.push(format!("  Channel {family}"));
        let up = peer.state == State::Established && !peer.disabled;
        d.push(format!(
            "    State:          {}",
            if up { "UP" } else { "DOWN" }
        ));
        let table = if family == "ipv4" {
            "master4"
        } else {
            "master6"
        };
        d.push(format!("    Table:          {table}"));
        d.push("    Preference:     100".to_string());
        d.push("    Input filter:   ACCEPT".to_string());
        d.push("    Output filter:  ACCEPT".to_string());
        if up {
            d.push(format!(
                "    Routes:         {} imported, {} exported, {} stale",
                peer.routes_received, peer.routes_advertised, peer.routes_stale
            ));
        }
    }
    d.push(String::new());
    ProtocolRow {
        name: name.to_string(),
        proto: "BGP".to_string(),
        table: None,
        state,
        since: peer.since,
        info,
        details: d,
    }
}

/// A pseudo protocol as a row.
pub fn pseudo_row(p: &PseudoProtocol) -> ProtocolRow {
    let mut d = Vec::new();
    if let Some(table) = &p.table {
        d.push(format!(
            "  Channel {}",
            if table.ends_with('6') { "ipv6" } else { "ipv4" }
        ));
        d.push(format!(
            "    State:          {}",
            if p.up { "UP" } else { "DOWN" }
        ));
        d.push(format!("    Table:          {table}"));
        d.push(format!(
            "    Routes:         {} imported, {} exported",
            p.imported, p.exported
        ));
    }
    d.push(String::new());
    ProtocolRow {
        name: p.name.clone(),
        proto: p.kind.name().to_string(),
        table: p.table.clone(),
        state: if p.up { "up" } else { "down" },
        since: p.since,
        info: p.info.clone(),
        details: d,
    }
}

/// `show protocols [all]` over the selected rows (caller answers 8003 when empty).
pub fn protocols(rows: &[ProtocolRow], all: bool, layout: Layout, now: SystemTime) -> Reply {
    let mut r = Reply::new();
    match layout {
        Layout::Bird2 => r.row(
            code::PROTOCOL_HEADING,
            format!(
                "{:<10} {:<10} {:<10} {:<6} {:<12}  {}",
                "Name", "Proto", "Table", "State", "Since", "Info"
            ),
        ),
        Layout::Bird16 => r.row(
            code::PROTOCOL_HEADING,
            "name     proto    table    state  since       info",
        ),
    }
    for row in rows {
        let since = short_time(row.since, now, layout);
        let line = match layout {
            Layout::Bird2 => format!(
                "{:<10} {:<10} {:<10} {:<6} {:<12}  {}",
                row.name,
                row.proto,
                row.table.as_deref().unwrap_or("---"),
                row.state,
                since,
                row.info
            ),
            Layout::Bird16 => format!(
                "{:<8} {:<8} {:<8} {:<5}  {:<10}  {}",
                row.name, row.proto, "master", row.state, since, row.info
            ),
        };
        r.row(code::PROTOCOL, line);
        if all {
            for detail in &row.details {
                r.row(code::PROTOCOL_DETAILS, detail.clone());
            }
        }
    }
    r.finish(code::OK, "")
}

/// What a route row needs besides the route: protocol names and times of its sources.
#[derive(Debug, Clone)]
pub struct RouteContext {
    /// Protocol name and since of each peer address.
    pub peers: BTreeMap<IpAddr, (String, SystemTime)>,
    /// Name and since of the protocol of locally originated routes.
    pub local: (String, SystemTime),
    /// Interface names by the networks on them (for `via X on IF`).
    pub interfaces: Vec<(IpAddr, u8, String)>,
    /// Current time.
    pub now: Option<SystemTime>,
}

impl RouteContext {
    /// The protocol name of a path's source.
    pub fn protocol(&self, from: Option<IpAddr>) -> (String, SystemTime) {
        match from {
            None => self.local.clone(),
            Some(ip) => self
                .peers
                .get(&ip)
                .cloned()
                .unwrap_or_else(|| (ip.to_string(), self.local.1)),
        }
    }

    fn interface(&self, ip: IpAddr) -> Option<&str> {
        self.interfaces
            .iter()
            .filter(|(net, len, _)| {
                crate::wire::Prefix::new(*net, *len)
                    .zip(crate::wire::Prefix::new(ip, *len))
                    .is_some_and(|(a, b)| a == b)
            })
            .max_by_key(|(_, len, _)| *len)
            .map(|(_, _, name)| name.as_str())
    }
}

fn origin_letter(origin: Origin) -> char {
    match origin {
        Origin::Igp => 'i',
        Origin::Egp => 'e',
        Origin::Incomplete => '?',
    }
}

/// The rows of one prefix (`Table` heading is the caller's).
pub fn route_rows(
    route: &RouteDetail,
    ctx: &RouteContext,
    all: bool,
    layout: Layout,
    r: &mut Reply,
) {
    let now = ctx.now.unwrap_or(SystemTime::UNIX_EPOCH);
    for (i, path) in route.paths.iter().enumerate() {
        let net = if i == 0 {
            route.prefix.to_string()
        } else {
            String::new()
        };
        let (proto, since) = ctx.protocol(path.from);
        let since = short_time(since, now, layout);
        let primary = if path.best { " *" } else { "" };
        let a = &path.attributes;
        let hop = path.next_hop.filter(|nh| !nh.is_unspecified());
        let from = match (path.from, hop) {
            (Some(from), Some(nh)) if from != nh => format!(" from {from}"),
            _ => String::new(),
        };
        let (dest, pref, info) = if path.from.is_none() {
            ("blackhole".to_string(), 200, String::new())
        } else {
            let origin_as = a.as_path.segments.iter().rev().find_map(|s| match s {
                AsPathSegment::Sequence(v) => v.last().copied(),
                AsPathSegment::Set(_) => None,
            });
            let letter = origin_letter(a.origin);
            let info = match origin_as {
                Some(asn) => format!(" [AS{asn}{letter}]"),
                None => format!(" [{letter}]"),
            };
            ("unicast".to_string(), 100, info)
        };
        let via = hop.map(|nh| match ctx.interface(nh) {
            Some(iface) => format!("via {nh} on {iface}"),
            None => format!("via {nh}"),
        });
        match layout {
            Layout::Bird2 => {
                r.row(
                    code::ROUTE,
                    format!("{net:<20} {dest} [{proto} {since}{from}]{primary} ({pref}){info}"),
                );
                if let Some(via) = &via {
                    r.row(code::ROUTE, format!("\t{via}"));
                }
            }
            Layout::Bird16 => {
                let dest = match (&via, path.from) {
                    (Some(via), Some(_)) => via.clone(),
                    _ => dest,
                };
                r.row(
                    code::ROUTE,
                    format!("{net:<18} {dest} [{proto} {since}{from}]{primary} ({pref}/0){info}"),
                );
            }
        }
        if all {
            route_details(route, path, r);
        }
    }
}

fn route_details(route: &RouteDetail, path: &PathDetail, r: &mut Reply) {
    let kind = if path.from.is_none() { "static" } else { "BGP" };
    r.row(code::ROUTE_DETAILS, format!("\tType: {kind} univ"));
    let decision = match (path.best, route.step) {
        (true, Some(step)) => format!("best, decided by {step}"),
        (true, None) => "best".to_string(),
        (false, _) if path.multipath => "multipath (ECMP with the best)".to_string(),
        (false, _) => "not best".to_string(),
    };
    r.row(code::ROUTE_DETAILS, format!("\tSelection: {decision}"));
    if path.stale {
        r.row(code::ROUTE_DETAILS, "\tStale: kept for graceful restart");
    }
    if path.from.is_none() {
        return;
    }
    for line in attribute_lines(&path.attributes, path.next_hop) {
        r.row(code::ROUTE_ATTRIBUTES, format!("\t{line}"));
    }
}

/// `BGP.origin: IGP` … lines of `show route all`.
pub fn attribute_lines(a: &PathAttributes, next_hop: Option<IpAddr>) -> Vec<String> {
    let mut out = Vec::new();
    let origin = match a.origin {
        Origin::Igp => "IGP",
        Origin::Egp => "EGP",
        Origin::Incomplete => "Incomplete",
    };
    out.push(format!("BGP.origin: {origin}"));
    let path: Vec<String> = a
        .as_path
        .segments
        .iter()
        .map(|s| match s {
            AsPathSegment::Sequence(v) => join(v.iter()),
            AsPathSegment::Set(v) => format!("{{{}}}", join(v.iter())),
        })
        .collect();
    out.push(format!("BGP.as_path: {}", path.join(" ")));
    let hop = match (next_hop, a.mp_next_hop.and_then(|m| m.link_local)) {
        (Some(nh), Some(ll)) => format!("{nh} {ll}"),
        (Some(nh), None) => nh.to_string(),
        (None, _) => a.next_hop.map(|n| n.to_string()).unwrap_or_default(),
    };
    out.push(format!("BGP.next_hop: {hop}"));
    if let Some(med) = a.med {
        out.push(format!("BGP.med: {med}"));
    }
    if let Some(lp) = a.local_pref {
        out.push(format!("BGP.local_pref: {lp}"));
    }
    if a.atomic_aggregate {
        out.push("BGP.atomic_aggr: ".to_string());
    }
    if let Some(ag) = &a.aggregator {
        out.push(format!("BGP.aggregator: {} AS{}", ag.router_id, ag.asn));
    }
    if !a.communities.is_empty() {
        let c: Vec<String> = a
            .communities
            .iter()
            .map(|c| format!("({},{})", c >> 16, c & 0xffff))
            .collect();
        out.push(format!("BGP.community: {}", c.join(" ")));
    }
    if !a.extended_communities.is_empty() {
        let c: Vec<String> = a
            .extended_communities
            .iter()
            .map(|c| format!("(generic, 0x{:x}, 0x{:x})", c >> 32, c & 0xffff_ffff))
            .collect();
        out.push(format!("BGP.ext_community: {}", c.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a
            .large_communities
            .iter()
            .map(|c| format!("({}, {}, {})", c.global, c.local1, c.local2))
            .collect();
        out.push(format!("BGP.large_community: {}", c.join(" ")));
    }
    if let Some(id) = a.originator_id {
        out.push(format!("BGP.originator_id: {id}"));
    }
    if !a.cluster_list.is_empty() {
        out.push(format!("BGP.cluster_list: {}", join(a.cluster_list.iter())));
    }
    out
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

/// BIRD's size format: `2008.0  B`, `44.4 kB`.
pub fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    // Precision does not matter for display.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 10000.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {:>2}", units[unit])
}

/// `show memory` from (label, effective, overhead) rows; the total is added.
pub fn memory(rows: &[(&str, u64, u64)], total: (u64, u64)) -> Reply {
    let mut r = Reply::new();
    r.row(code::MEMORY, "vrouter memory usage");
    r.row(code::MEMORY, format!("{:18}Effective    Overhead", ""));
    let line =
        |label: &str, e: u64, o: u64| format!("{:<17} {:>9}   {:>9}", label, size(e), size(o));
    for (label, e, o) in rows {
        r.row(code::MEMORY, line(label, *e, *o));
    }
    r.row(code::MEMORY, line("Total:", total.0, total.1));
    r.finish(code::OK, "")
}

/// `show interfaces [summary]`.
pub fn interfaces(list: &[Interface], summary: bool) -> Reply {
    let mut r = Reply::new();
    if summary {
        r.row(
            1005,
            format!("{:<16} {:<6} {}", "Interface", "State", "IPv4 address"),
        );
        for i in list {
            let v4 = i
                .addresses
                .iter()
                .find(|(a, _)| a.is_ipv4())
                .map(|(a, l)| format!("{a}/{l}"))
                .unwrap_or_default();
            let state = if i.link_up { "up" } else { "down" };
            r.row(1005, format!("{:<16} {:<6} {v4}", i.name, state));
        }
        return r.finish(code::OK, "");
    }
    for i in list {
        let state = if i.link_up { "up" } else { "down" };
        r.row(
            code::INTERFACE,
            format!("{} {state} (index={})", i.name, i.index),
        );
        let mut flags = vec![if i.loopback {
            "Loopback"
        } else {
            "MultiAccess"
        }];
        flags.push(if i.admin_up { "AdminUp" } else { "AdminDown" });
        flags.push(if i.link_up { "LinkUp" } else { "LinkDown" });
        r.row(
            code::INTERFACE_FLAGS,
            format!("\t{} MTU={}", flags.join(" "), i.mtu),
        );
        for (n, (ip, len)) in i.addresses.iter().enumerate() {
            let scope = match ip {
                IpAddr::V4(v4) if v4.is_loopback() => "host",
                IpAddr::V6(v6) if v6.is_loopback() => "host",
                IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => "link",
                _ => "univ",
            };
            let preferred = if n == 0 { "Preferred, " } else { "" };
            r.row(
                code::INTERFACE_ADDRESS,
                format!("\t{ip}/{len} ({preferred}scope {scope})"),
            );
        }
    }
    r.finish(code::OK, "")
}

#[cfg(test)]
mod tests;
