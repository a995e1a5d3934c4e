//! Carries out one command line of a control session against a [`ControlBackend`] and
//! builds the reply. Knows the per-session state (restricted or not); formatting is
//! [`super::format`]'s. The caller passes the time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use super::backend::{ControlBackend, PseudoProtocol};
use super::command::{self, Command, Lookup, Reload, RouteQuery, Target, Toggle};
use super::format::{self, Layout, ProtocolRow, RouteContext};
use super::reply::{Reply, code};
use crate::speaker::{
    NetworkMatch, PeerAction, PeerActionOutcome, PeerStatus, RefreshDirection, RouteDetail,
    RouteFilter, RouteSelection, Shutdown,
};
use crate::wire::Family;

/// State of one control connection.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// After `restrict`: only read commands.
    pub restricted: bool,
    /// Layout of `show protocols` / `show route`.
    pub layout: Layout,
}

/// The reply to `line`, and a shutdown to carry out once it is sent.
pub async fn execute<B: ControlBackend>(
    backend: &B,
    session: &mut Session,
    line: &str,
    now: SystemTime,
) -> (Reply, Option<Shutdown>) {
    let command = match command::parse(line) {
        Ok(c) => c,
        Err(e) => return (Reply::single(code::PARSE_ERROR, e.to_string()), None),
    };
    if session.restricted && command.is_write() {
        return (Reply::single(code::ACCESS_DENIED, "Access denied"), None);
    }
    let reply = match command {
        Command::Restrict => {
            session.restricted = true;
            Reply::single(code::RESTRICTED, "Access restricted")
        }
        Command::ShowStatus => {
            let up = backend.peers().await.is_some();
            format::status(&backend.daemon(), now, up)
        }
        Command::ShowProtocols { all, target } => {
            let rows = protocol_rows(backend).await;
            let rows: Vec<ProtocolRow> = rows
                .into_iter()
                .filter(|r| target.matches(&r.name))
                .collect();
            if rows.is_empty() {
                Reply::single(code::NO_PROTOCOLS, "No protocols match")
            } else {
                format::protocols(&rows, all, session.layout, now)
            }
        }
        Command::ShowRoute(query) => show_route(backend, &query, session.layout, now).await,
        Command::ShowMemory => memory(backend).await,
        Command::ShowInterfaces { summary } => {
            format::interfaces(&backend.interfaces().await, summary)
        }
        Command::Toggle(toggle, target) => {
            let action = match toggle {
                Toggle::Enable => PeerAction::Enable,
                Toggle::Disable => PeerAction::Disable,
                Toggle::Restart => PeerAction::Restart,
            };
            peer_actions(backend, &target, action).await
        }
        Command::Reload(direction, target) => {
            let direction = match direction {
                Reload::Both => RefreshDirection::Both,
                Reload::In => RefreshDirection::In,
                Reload::Out => RefreshDirection::Out,
            };
            peer_actions(backend, &target, PeerAction::Reload(direction)).await
        }
        Command::GracefulRestart => {
            return (
                Reply::single(code::GR_ORDERED, "Graceful restart requested"),
                Some(Shutdown::Restart),
            );
        }
        Command::Down => {
            return (
                Reply::single(code::SHUTDOWN, "Shutdown ordered"),
                Some(Shutdown::Stop),
            );
        }
    };
    (reply, None)
}

/// The protocol name of a peer.
pub fn peer_name(peer: &PeerStatus) -> String {
    peer.kind.protocol_name(peer.address)
}

async fn protocol_rows<B: ControlBackend>(backend: &B) -> Vec<ProtocolRow> {
    let pseudo: Vec<PseudoProtocol> = backend.protocols().await;
    let mut rows: Vec<ProtocolRow> = pseudo.iter().map(format::pseudo_row).collect();
    let peers = backend.peers().await.unwrap_or_default();
    let mut bgp: Vec<ProtocolRow> = peers
        .iter()
        .map(|p| format::bgp_row(p, &peer_name(p), None))
        .collect();
    bgp.sort_by(|a, b| a.name.cmp(&b.name));
    rows.extend(bgp);
    rows
}

async fn peer_actions<B: ControlBackend>(
    backend: &B,
    target: &Target,
    action: PeerAction,
) -> Reply {
    let peers = backend.peers().await.unwrap_or_default();
    let selected: Vec<(String, IpAddr)> = peers
        .iter()
        .map(|p| (peer_name(p), p.address))
        .filter(|(name, _)| target.matches(name))
        .collect();
    if selected.is_empty() {
        if let Target::Name(name) = target {
            let pseudo = backend.protocols().await;
            if pseudo.iter().any(|p| &p.name == name) {
                return Reply::single(
                    code::INVALID_SYMBOL,
                    format!("{name} is not a BGP protocol; only BGP sessions can be controlled"),
                );
            }
        }
        return Reply::single(code::NO_PROTOCOLS, "No protocols match");
    }
    let mut reply = Reply::new();
    for (name, address) in selected {
        let (c, text) = match backend.peer_action(address, action).await {
            Some(PeerActionOutcome::Enabled) => (code::ENABLED, "enabled"),
            Some(PeerActionOutcome::AlreadyEnabled) => (code::ALREADY_ENABLED, "already enabled"),
            Some(PeerActionOutcome::Disabled) => (code::DISABLED, "disabled"),
            Some(PeerActionOutcome::AlreadyDisabled) => {
                (code::ALREADY_DISABLED, "already disabled")
            }
            Some(PeerActionOutcome::Restarted) => (code::RESTARTED, "restarted"),
            Some(PeerActionOutcome::Reloading) => (code::RELOADING, "reloading"),
            Some(PeerActionOutcome::ReloadFailed) => (code::RELOAD_FAILED, "reload failed"),
            Some(PeerActionOutcome::NotFound) | None => (code::PROTOCOL_DOWN, "protocol is down"),
        };
        reply.row(c, format!("{name}: {text}"));
    }
    reply.finish(code::OK, "")
}

fn table_of(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "master4",
        Family::Ipv6Unicast => "master6",
    }
}

const TABLES: [&str; 2] = ["master4", "master6"];

async fn show_route<B: ControlBackend>(
    backend: &B,
    query: &RouteQuery,
    layout: Layout,
    now: SystemTime,
) -> Reply {
    let family = match query.table.as_deref() {
        None => None,
        Some("master4") => Some(Family::Ipv4Unicast),
        Some("master6") => Some(Family::Ipv6Unicast),
        Some(table) => {
            return Reply::single(
                code::PARSE_ERROR,
                format!("unknown table '{table}' (tables: master4, master6)"),
            );
        }
    };
    let peers = backend.peers().await.unwrap_or_default();
    let daemon = backend.daemon();
    let pseudo = backend.protocols().await;
    let local = pseudo
        .iter()
        .find(|p| p.kind == super::backend::ProtocolKind::Static)
        .map_or(("static1".to_string(), daemon.reconfigured), |p| {
            (p.name.clone(), p.since)
        });
    let ctx_peers: BTreeMap<IpAddr, (String, SystemTime)> = peers
        .iter()
        .map(|p| (p.address, (peer_name(p), p.since)))
        .collect();
    let source = match &query.protocol {
        None => None,
        Some(protocol) if *protocol == local.0 => Some(None),
        Some(protocol) => match ctx_peers.iter().find(|(_, (name, _))| name == protocol) {
            Some((address, _)) => Some(Some(*address)),
            None => return Reply::single(code::NO_PROTOCOLS, "No protocols match"),
        },
    };
    let filter = RouteFilter {
        family,
        network: query.lookup.map(|l| match l {
            Lookup::Covering(p) => NetworkMatch::Longest(p),
            Lookup::Exact(p) => NetworkMatch::Exact(p),
        }),
        source,
        count_only: query.count,
    };
    let selection = backend.select_routes(filter).await.unwrap_or_default();
    if query.count {
        return route_counts(&selection);
    }
    if selection.routes.is_empty() && query.lookup.is_some() {
        return Reply::single(code::NOT_FOUND, "Network not found");
    }
    let interfaces = backend
        .interfaces()
        .await
        .into_iter()
        .flat_map(|i| {
            let name = i.name;
            i.addresses
                .into_iter()
                .map(move |(a, l)| (a, l, name.clone()))
        })
        .collect();
    let ctx = RouteContext {
        peers: ctx_peers,
        local,
        interfaces,
        now: Some(now),
    };
    let mut reply = Reply::new();
    let mut first = true;
    for table in TABLES {
        let rows: Vec<&RouteDetail> = selection
            .routes
            .iter()
            .filter(|r| table_of(r.prefix.family()) == table)
            .collect();
        if rows.is_empty() {
            continue;
        }
        if !first {
            reply.row(code::ROUTE, "");
        }
        first = false;
        reply.row(code::ROUTE, format!("Table {table}:"));
        for route in rows {
            format::route_rows(route, &ctx, query.all, layout, &mut reply);
        }
    }
    reply.finish(code::OK, "")
}

/// `show route count`: one row per table, a `0014 Total` when there are several.
fn route_counts(selection: &RouteSelection) -> Reply {
    let mut reply = Reply::new();
    let (mut selected, mut total, mut networks) = (0, 0, 0);
    for c in &selection.counts {
        reply.row(
            code::ROUTE,
            format!(
                "{} of {} routes for {} networks in table {}",
                c.selected,
                c.total,
                c.networks,
                table_of(c.family)
            ),
        );
        selected += c.selected;
        total += c.total;
        networks += c.networks;
    }
    if selection.counts.len() > 1 {
        reply.finish(
            code::ROUTE_COUNT,
            format!(
                "Total: {selected} of {total} routes for {networks} networks in {} tables",
                selection.counts.len()
            ),
        )
    } else {
        reply.finish(code::OK, "")
    }
}

async fn memory<B: ControlBackend>(backend: &B) -> Reply {
    let summary = backend.summary().await;
    let peers = backend.peers().await.map_or(0, |p| p.len());
    // Estimates from the sizes of the structures that hold each category.
    let per_route = std::mem::size_of::<crate::rib::Path>()
        + std::mem::size_of::<crate::wire::Prefix>()
        + std::mem::size_of::<crate::rib::Destination>();
    let per_attributes = std::mem::size_of::<crate::wire::PathAttributes>() + 64;
    let per_peer = 64 * 1024; // buffers, Adj-RIB-Out bookkeeping, task
    let widen = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let (tables, attributes) = summary.map_or((0, 0), |s| {
        (
            widen((s.prefixes + s.received) * per_route),
            widen(s.attribute_sets * per_attributes),
        )
    });
    let protocols = widen(peers * per_peer);
    let counted = tables + attributes + protocols;
    let resident = resident_bytes().unwrap_or(counted);
    let rows = [
        ("Routing tables:", tables, 0),
        ("Route attributes:", attributes, 0),
        ("Protocols:", protocols, 0),
        ("Current config:", 0, 0),
        ("Standby memory:", 0, 0),
    ];
    format::memory(&rows, (counted, resident.saturating_sub(counted)))
}

/// Resident set size of this process (`/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests;
