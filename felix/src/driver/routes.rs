//! [`RouteTable`]: the routes of one route protocol in the main table, reconciled against the
//! kernel. The only code that programs routes: the agent's protocol 80 table (device and
//! blackhole routes) and the BGP speaker's protocol 81 table (gateway and ECMP multipath
//! routes, through `bgp::speaker::kernel_routes`).
//!
//! ```text
//!  set_route / remove_route ──▶ desired ──┐
//!                                         ├─ plan (pure, per dirty prefix) ─▶ batch ─▶ kernel
//!  dump (start, resync) ──────▶ kernel ───┘                                        │
//!          ▲                                                                       │
//!          └──────────────── answers update `kernel` ◀─────────────────────────────┘
//! ```
//!
//! Rules (calico.md §1.3, design.md §5):
//! - Only routes whose `rtm_protocol` is this table's protocol are read, changed or deleted;
//!   creating uses `NLM_F_EXCL`, so a route another owner installed for the same prefix is
//!   left alone (reported as a conflict). A conflicting prefix is retried on the next
//!   [`CONFLICT_RETRIES`] applies (a hand-over between owners, e.g. BGP giving a pool's routes
//!   to the VXLAN agent, finishes within seconds whichever side runs first), then only at
//!   the next resync.
//! - Start of day: the first `apply` dumps the kernel's routes of the protocol and *adopts*
//!   those that are already right: no delete and re-add, so no traffic blip on restart.
//! - Routes of the protocol that nobody wants are removed only after [`RouteTable::set_in_sync`]
//!   (the datastore has been read completely once; for BGP: the RIB is complete after a
//!   restart). A route this instance itself installed and no longer wants is removed at once.
//! - [`RouteTable::request_resync`] (periodic, default 90 s) re-reads the kernel and repairs
//!   drift (a route deleted or changed by hand); the number of repairs is reported.
//! - Work is proportional to what changed: only dirty prefixes are planned.
//! - An interface that does not exist yet (the CNI plugin is still creating it) leaves its
//!   routes pending; they are programmed by a later `apply` once the interface appears.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tracing::{debug, info, warn};

use super::netlink::{NetlinkSocket, Request};
use crate::ownership::ROUTE_TABLE_MAIN;

/// Errors of the route driver.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The netlink socket could not be opened or failed as a whole.
    #[error("netlink socket failed")]
    Socket(#[source] io::Error),
    /// Reading the kernel's routes or links failed.
    #[error("netlink dump of {what} failed")]
    Dump {
        /// `routes` or `links`.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Where a desired route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// Out of this interface, scope link (a workload's `/32` to its host veth).
    Device(String),
    /// Dropped (an IPAM block this node owns: addresses not in use must not leak out).
    Blackhole,
    /// Via these gateways (one: a gateway route; several: an ECMP multipath route), as BGP
    /// routes are. Order does not matter.
    Via(Vec<IpAddr>),
    /// Via `gateway` out of `device`, `onlink` (the gateway need not be on a connected
    /// subnet): a VXLAN route to a remote VTEP.
    OnlinkVia {
        /// The next hop (a remote VTEP's tunnel address).
        gateway: IpAddr,
        /// The interface.
        device: String,
    },
}

/// Applies a conflicting prefix is retried on before waiting for the next resync.
pub const CONFLICT_RETRIES: u8 = 20;

/// A route of ours as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KernelRoute {
    /// Unicast out of an interface index.
    Device(u32),
    /// Blackhole.
    Blackhole,
    /// Unicast via gateways (sorted, no duplicates; several: multipath).
    Via(Vec<IpAddr>),
    /// Unicast via a gateway out of an interface index with the `onlink` flag.
    Onlink(IpAddr, u32),
    /// Anything else carrying our protocol (wrong type, gateway, ...): to be replaced.
    Other,
}

/// What `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteReport {
    /// Routes created.
    pub added: usize,
    /// Routes of ours that were changed in place.
    pub replaced: usize,
    /// Stale routes of ours deleted.
    pub removed: usize,
    /// Routes adopted from a previous run without touching them.
    pub adopted: usize,
    /// Changes a resync found necessary (drift from the state last programmed).
    pub repaired: usize,
    /// Prefixes waiting for their interface to appear.
    pub pending: usize,
    /// Prefixes held by a route of another protocol.
    pub conflicts: usize,
    /// Requests the kernel refused for other reasons (retried on the next apply).
    pub errors: usize,
}

/// One kernel operation decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Create a route that does not exist.
    Create(IpNetwork, KernelRoute),
    /// Change our existing route.
    Replace(IpNetwork, KernelRoute),
    /// Delete our route.
    Delete(IpNetwork),
}

/// Outcome of planning one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Kernel already right.
    Nothing,
    /// Do this.
    Do(Operation),
    /// Cannot act yet (interface missing, or a deletion before InSync); keep the prefix dirty.
    Wait,
}

/// Decides what to do for one prefix. Pure.
///
/// `wanted` is the desired route with its interface resolved (`Err(())` when the interface
/// does not exist yet); `actual` is our route in the kernel, if any.
pub fn plan(
    dst: IpNetwork,
    wanted: Option<Result<KernelRoute, ()>>,
    actual: Option<KernelRoute>,
    in_sync: bool,
) -> Step {
    match (wanted, actual) {
        (Some(Ok(w)), Some(a)) if w == a => Step::Nothing,
        (Some(Ok(w)), Some(_)) => Step::Do(Operation::Replace(dst, w)),
        (Some(Ok(w)), None) => Step::Do(Operation::Create(dst, w)),
        // The interface is gone: a route of ours through a stale index is useless, but
        // deleting before InSync could remove a route that is still wanted.
        (Some(Err(())), Some(_)) if in_sync => Step::Do(Operation::Delete(dst)),
        (Some(Err(())), _) => Step::Wait,
        (None, Some(_)) if in_sync => Step::Do(Operation::Delete(dst)),
        (None, Some(_)) => Step::Wait,
        (None, None) => Step::Nothing,
    }
}

/// The routes of one protocol in the main table.
#[derive(Debug)]
pub struct RouteTable {
    protocol: u8,
    socket: NetlinkSocket,
    desired: HashMap<IpNetwork, RouteTarget>,
    kernel: HashMap<IpNetwork, KernelRoute>,
    dirty: HashSet<IpNetwork>,
    links: HashMap<String, u32>,
    /// Before in-sync: prefixes this instance wanted at some point (their removal need not
    /// wait: the route is ours from this run, not a leftover).
    wanted_before_sync: HashSet<IpNetwork>,
    /// Prefixes whose creation met another protocol's route, and how often in a row.
    conflicts: HashMap<IpNetwork, u8>,
    /// Prefixes the kernel refused (warned about once, until a change succeeds).
    refused: HashSet<IpNetwork>,
    in_sync: bool,
    resync_requested: bool,
    dumped_once: bool,
}

impl RouteTable {
    /// A table for routes of `protocol`, with a netlink socket in the calling thread's
    /// network namespace. Nothing is read or written until [`RouteTable::apply`].
    pub fn new(protocol: u8) -> Result<Self, RouteError> {
        Ok(Self {
            protocol,
            socket: NetlinkSocket::open().map_err(RouteError::Socket)?,
            desired: HashMap::new(),
            kernel: HashMap::new(),
            dirty: HashSet::new(),
            links: HashMap::new(),
            wanted_before_sync: HashSet::new(),
            conflicts: HashMap::new(),
            refused: HashSet::new(),
            in_sync: false,
            resync_requested: true,
            dumped_once: false,
        })
    }

    /// The protocol this table owns.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Wants a route to `dst` (replacing any earlier target). Cheap; no I/O.
    pub fn set_route(&mut self, dst: IpNetwork, target: RouteTarget) {
        let dst = canonical(dst);
        let target = match target {
            RouteTarget::Via(hops) => RouteTarget::Via(sorted(hops)),
            other => other,
        };
        if !self.in_sync {
            self.wanted_before_sync.insert(dst);
        }
        if self.desired.get(&dst) != Some(&target) {
            self.desired.insert(dst, target);
            self.dirty.insert(dst);
            self.conflicts.remove(&dst);
        }
    }

    /// No longer wants a route to `dst`. Cheap; no I/O.
    pub fn remove_route(&mut self, dst: IpNetwork) {
        let dst = canonical(dst);
        if self.desired.remove(&dst).is_some() {
            self.dirty.insert(dst);
            self.conflicts.remove(&dst);
            self.refused.remove(&dst);
        }
    }

    /// The datastore has been read completely: stale routes may now be deleted.
    pub fn set_in_sync(&mut self) {
        if !self.in_sync {
            self.in_sync = true;
            self.wanted_before_sync = HashSet::new();
            // Stale routes found by the start-of-day dump were held back; plan them now.
            self.dirty.extend(self.kernel.keys().copied());
        }
    }

    /// Re-read the kernel on the next `apply` and repair whatever drifted.
    pub fn request_resync(&mut self) {
        self.resync_requested = true;
    }

    /// Number of desired routes.
    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    /// True if a later `apply` has work to do even without new input (pending interfaces,
    /// held deletions, failed requests).
    pub fn has_pending_work(&self) -> bool {
        !self.dirty.is_empty() || self.resync_requested
    }

    /// Programs the kernel: dumps first if a resync is due, then creates, replaces and
    /// deletes what the dirty prefixes need, in multi-message batches.
    pub fn apply(&mut self) -> Result<RouteReport, RouteError> {
        let mut report = RouteReport::default();
        let resync = self.resync_requested;
        if resync {
            self.read_kernel(&mut report)?;
        }
        if self.dirty.is_empty() {
            return Ok(report);
        }
        if !resync {
            self.refresh_links()?;
        }
        let mut operations = Vec::new();
        let mut still_dirty = HashSet::new();
        for dst in std::mem::take(&mut self.dirty) {
            let wanted = self.desired.get(&dst).map(|t| self.resolve(t).ok_or(()));
            if matches!(wanted, Some(Err(()))) {
                report.pending += 1;
            }
            let may_delete = self.in_sync || self.wanted_before_sync.contains(&dst);
            match plan(dst, wanted, self.kernel.get(&dst).cloned(), may_delete) {
                Step::Nothing => {}
                Step::Do(op) => operations.push(op),
                Step::Wait => {
                    still_dirty.insert(dst);
                }
            }
        }
        self.dirty = still_dirty;
        if resync && self.dumped_once {
            report.repaired = operations.len();
        }
        self.dumped_once = true;
        self.execute(operations, &mut report)?;
        Ok(report)
    }

    /// Dumps our routes and the links, and marks every prefix whose kernel state might
    /// differ from the desired one.
    fn read_kernel(&mut self, report: &mut RouteReport) -> Result<(), RouteError> {
        let mut kernel = HashMap::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let answers = self
                .socket
                .dump(RouteNetlinkMessage::GetRoute(self.dump_filter(family)))
                .map_err(|source| RouteError::Dump {
                    what: "routes",
                    source,
                })?;
            for answer in answers {
                if let RouteNetlinkMessage::NewRoute(route) = answer
                    && let Some((dst, state)) = self.ours(&route)
                {
                    kernel.insert(dst, state);
                }
            }
        }
        self.refresh_links()?;
        if !self.dumped_once {
            report.adopted = self
                .desired
                .iter()
                .filter(|(dst, target)| {
                    kernel.get(*dst).cloned() == self.resolve(target) && kernel.contains_key(*dst)
                })
                .count();
            info!(
                protocol = self.protocol,
                found = kernel.len(),
                adopted = report.adopted,
                "route table read"
            );
        }
        self.dirty.extend(kernel.keys().copied());
        self.dirty.extend(self.kernel.keys().copied());
        self.dirty.extend(self.desired.keys().copied());
        self.kernel = kernel;
        self.resync_requested = false;
        // A resync gives conflicting prefixes another round of retries.
        self.conflicts.clear();
        Ok(())
    }

    fn resolve(&self, target: &RouteTarget) -> Option<KernelRoute> {
        match target {
            RouteTarget::Blackhole => Some(KernelRoute::Blackhole),
            RouteTarget::Device(name) => self.links.get(name).map(|&i| KernelRoute::Device(i)),
            RouteTarget::Via(hops) => Some(KernelRoute::Via(hops.clone())),
            RouteTarget::OnlinkVia { gateway, device } => self
                .links
                .get(device)
                .map(|&i| KernelRoute::Onlink(*gateway, i)),
        }
    }

    /// Re-reads interface names; routes through an interface whose index changed (deleted
    /// and recreated) are marked dirty.
    fn refresh_links(&mut self) -> Result<(), RouteError> {
        let answers = self
            .socket
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(|source| RouteError::Dump {
                what: "links",
                source,
            })?;
        let mut links = HashMap::with_capacity(answers.len());
        for answer in answers {
            if let RouteNetlinkMessage::NewLink(link) = answer {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                if let Some(name) = name {
                    links.insert(name, link.header.index);
                }
            }
        }
        let changed: HashSet<&String> = self
            .links
            .iter()
            .filter(|(name, index)| links.get(*name) != Some(*index))
            .map(|(name, _)| name)
            .chain(links.keys().filter(|n| !self.links.contains_key(*n)))
            .collect();
        if !changed.is_empty() {
            for (dst, target) in &self.desired {
                if let RouteTarget::Device(name) | RouteTarget::OnlinkVia { device: name, .. } =
                    target
                    && changed.contains(name)
                {
                    self.dirty.insert(*dst);
                }
            }
        }
        self.links = links;
        Ok(())
    }

    fn execute(
        &mut self,
        operations: Vec<Operation>,
        report: &mut RouteReport,
    ) -> Result<(), RouteError> {
        if operations.is_empty() {
            return Ok(());
        }
        let requests: Vec<Request> = operations.iter().map(|op| self.request(op)).collect();
        let failures = match self.socket.batch(requests) {
            Ok(failures) => failures,
            Err(e) => {
                // Answers lost: the outcome is unknown, so read the kernel back next time.
                self.resync_requested = true;
                return Err(RouteError::Socket(e));
            }
        };
        let mut failed = HashMap::with_capacity(failures.len());
        for (index, error) in failures {
            failed.insert(index, error);
        }
        for (index, op) in operations.into_iter().enumerate() {
            match (op, failed.remove(&index)) {
                (Operation::Create(dst, route), None) => {
                    self.kernel.insert(dst, route);
                    self.conflicts.remove(&dst);
                    self.refused.remove(&dst);
                    report.added += 1;
                }
                (Operation::Replace(dst, route), None) => {
                    self.kernel.insert(dst, route);
                    self.refused.remove(&dst);
                    report.replaced += 1;
                }
                (Operation::Delete(dst), None) => {
                    self.kernel.remove(&dst);
                    self.refused.remove(&dst);
                    report.removed += 1;
                }
                (Operation::Delete(dst), Some(e)) if e.raw_os_error() == Some(ESRCH) => {
                    self.kernel.remove(&dst);
                }
                (Operation::Create(dst, _), Some(e)) if e.raw_os_error() == Some(EEXIST) => {
                    debug!(%dst, protocol = self.protocol, "prefix held by a route of another protocol; leaving it");
                    report.conflicts += 1;
                    let attempts = self.conflicts.entry(dst).or_insert(0);
                    *attempts = attempts.saturating_add(1);
                    if *attempts < CONFLICT_RETRIES {
                        self.dirty.insert(dst);
                    }
                }
                (Operation::Create(dst, _) | Operation::Replace(dst, _), Some(e))
                    if e.raw_os_error() == Some(ENODEV) =>
                {
                    report.pending += 1;
                    self.dirty.insert(dst);
                }
                (op, Some(error)) => {
                    let dst = match op {
                        Operation::Create(d, _)
                        | Operation::Replace(d, _)
                        | Operation::Delete(d) => d,
                    };
                    if self.refused.insert(dst) {
                        warn!(%dst, protocol = self.protocol, %error, "kernel refused a route change");
                    } else {
                        debug!(%dst, protocol = self.protocol, %error, "kernel still refuses a route change");
                    }
                    report.errors += 1;
                    self.dirty.insert(dst);
                }
            }
        }
        Ok(())
    }

    fn request(&self, op: &Operation) -> Request {
        match op {
            Operation::Create(dst, route) => Request {
                message: RouteNetlinkMessage::NewRoute(self.message(*dst, route)),
                flags: NLM_F_CREATE | NLM_F_EXCL,
            },
            Operation::Replace(dst, route) => Request {
                message: RouteNetlinkMessage::NewRoute(self.message(*dst, route)),
                flags: NLM_F_CREATE | NLM_F_REPLACE,
            },
            Operation::Delete(dst) => {
                let mut message = self.base_message(*dst);
                // Match any scope and type, but only our protocol.
                message.header.scope = RouteScope::NoWhere;
                message.header.kind = RouteType::Unspec;
                Request {
                    message: RouteNetlinkMessage::DelRoute(message),
                    flags: 0,
                }
            }
        }
    }

    fn base_message(&self, dst: IpNetwork) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header.address_family = family_of(&dst);
        message.header.destination_prefix_length = dst.prefix();
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::from(self.protocol);
        message
            .attributes
            .push(RouteAttribute::Destination(match dst.network() {
                IpAddr::V4(v4) => RouteAddress::Inet(v4),
                IpAddr::V6(v6) => RouteAddress::Inet6(v6),
            }));
        message
    }

    fn message(&self, dst: IpNetwork, route: &KernelRoute) -> RouteMessage {
        let mut message = self.base_message(dst);
        match route {
            KernelRoute::Device(index) => {
                message.header.kind = RouteType::Unicast;
                message.header.scope = RouteScope::Link;
                message.attributes.push(RouteAttribute::Oif(*index));
            }
            KernelRoute::Via(hops) => {
                message.header.kind = RouteType::Unicast;
                message.header.scope = RouteScope::Universe;
                match hops.as_slice() {
                    [one] => message.attributes.push(gateway(dst, *one)),
                    many => message.attributes.push(RouteAttribute::MultiPath(
                        many.iter()
                            .map(|hop| {
                                let mut next_hop = RouteNextHop::default();
                                next_hop.attributes.push(gateway(dst, *hop));
                                next_hop
                            })
                            .collect(),
                    )),
                }
            }
            KernelRoute::Onlink(hop, index) => {
                message.header.kind = RouteType::Unicast;
                message.header.scope = RouteScope::Universe;
                message.header.flags |= RouteFlags::Onlink;
                message.attributes.push(gateway(dst, *hop));
                message.attributes.push(RouteAttribute::Oif(*index));
            }
            KernelRoute::Blackhole | KernelRoute::Other => {
                message.header.kind = RouteType::BlackHole;
                message.header.scope = RouteScope::Universe;
            }
        }
        message
    }

    fn dump_filter(&self, family: AddressFamily) -> RouteMessage {
        let mut filter = RouteMessage::default();
        filter.header.address_family = family;
        filter.header.table = RouteHeader::RT_TABLE_MAIN;
        filter.header.protocol = RouteProtocol::from(self.protocol);
        filter.header.scope = RouteScope::Universe;
        filter.header.kind = RouteType::Unspec;
        filter
    }

    /// Our route's prefix and state, or `None` for anything not ours (the kernel filters by
    /// protocol with strict checking; checked again here because older kernels do not).
    fn ours(&self, route: &RouteMessage) -> Option<(IpNetwork, KernelRoute)> {
        if u8::from(route.header.protocol) != self.protocol {
            return None;
        }
        let mut table = u32::from(route.header.table);
        let mut dst = None;
        let mut oif = None;
        let mut gateways = Vec::new();
        let mut other_hops = false;
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => {
                    match gateway_of(attribute) {
                        Some(g) => gateways.push(g),
                        None => other_hops = true,
                    }
                }
                RouteAttribute::MultiPath(hops) => {
                    for hop in hops {
                        match hop.attributes.iter().find_map(gateway_of) {
                            Some(g) => gateways.push(g),
                            None => other_hops = true,
                        }
                    }
                }
                _ => {}
            }
        }
        let gateway = !gateways.is_empty() || other_hops;
        if table != ROUTE_TABLE_MAIN {
            return None;
        }
        let dst = match (dst, route.header.address_family) {
            (Some(a), _) => a,
            (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            (None, _) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        };
        let net = IpNetwork::new(dst, route.header.destination_prefix_length).ok()?;
        let onlink = route.header.flags.contains(RouteFlags::Onlink);
        let state = match (route.header.kind, oif, gateway) {
            (RouteType::BlackHole, _, _) => KernelRoute::Blackhole,
            (RouteType::Unicast, Some(i), true) if onlink && !other_hops && gateways.len() == 1 => {
                KernelRoute::Onlink(gateways[0], i)
            }
            (RouteType::Unicast, _, true) if !other_hops => KernelRoute::Via(sorted(gateways)),
            (RouteType::Unicast, Some(i), false)
                if route.header.scope == RouteScope::Link
                    || route.header.address_family == AddressFamily::Inet6 =>
            {
                KernelRoute::Device(i)
            }
            _ => KernelRoute::Other,
        };
        Some((net, state))
    }
}

const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;

fn family_of(net: &IpNetwork) -> AddressFamily {
    if net.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Gateways in a canonical order (sorted, no duplicates).
fn sorted(mut hops: Vec<IpAddr>) -> Vec<IpAddr> {
    hops.sort();
    hops.dedup();
    hops
}

/// The gateway attribute for `hop`: `RTA_GATEWAY` in the route's own family, `RTA_VIA`
/// otherwise (an IPv4 route via an IPv6 next hop, RFC 5549).
fn gateway(dst: IpNetwork, hop: IpAddr) -> RouteAttribute {
    match (dst, hop) {
        (IpNetwork::V4(_), IpAddr::V4(a)) => RouteAttribute::Gateway(RouteAddress::Inet(a)),
        (IpNetwork::V6(_), IpAddr::V6(a)) => RouteAttribute::Gateway(RouteAddress::Inet6(a)),
        (_, IpAddr::V4(a)) => RouteAttribute::Via(RouteVia::Inet(a)),
        (_, IpAddr::V6(a)) => RouteAttribute::Via(RouteVia::Inet6(a)),
    }
}

/// The next-hop address of a gateway or via attribute.
fn gateway_of(attribute: &RouteAttribute) -> Option<IpAddr> {
    match attribute {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) | RouteAttribute::Via(RouteVia::Inet(a)) => {
            Some(IpAddr::V4(*a))
        }
        RouteAttribute::Gateway(RouteAddress::Inet6(a))
        | RouteAttribute::Via(RouteVia::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The network address with host bits cleared (`10.0.0.5/24` → `10.0.0.0/24`).
fn canonical(net: IpNetwork) -> IpNetwork {
    IpNetwork::new(net.network(), net.prefix()).unwrap_or(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn plan_keeps_routes_that_are_already_right() {
        let d = net("10.0.0.1/32");
        let r = KernelRoute::Device(7);
        assert_eq!(
            plan(d, Some(Ok(r.clone())), Some(r.clone()), false),
            Step::Nothing
        );
        assert_eq!(plan(d, Some(Ok(r.clone())), Some(r), true), Step::Nothing);
    }

    #[test]
    fn plan_creates_and_replaces_before_in_sync() {
        let d = net("10.0.0.1/32");
        assert_eq!(
            plan(d, Some(Ok(KernelRoute::Device(3))), None, false),
            Step::Do(Operation::Create(d, KernelRoute::Device(3)))
        );
        assert_eq!(
            plan(
                d,
                Some(Ok(KernelRoute::Device(3))),
                Some(KernelRoute::Device(4)),
                false
            ),
            Step::Do(Operation::Replace(d, KernelRoute::Device(3)))
        );
        assert_eq!(
            plan(
                d,
                Some(Ok(KernelRoute::Blackhole)),
                Some(KernelRoute::Other),
                false
            ),
            Step::Do(Operation::Replace(d, KernelRoute::Blackhole))
        );
    }

    #[test]
    fn plan_holds_deletions_until_in_sync() {
        let d = net("10.0.0.0/26");
        assert_eq!(
            plan(d, None, Some(KernelRoute::Blackhole), false),
            Step::Wait
        );
        assert_eq!(
            plan(d, None, Some(KernelRoute::Blackhole), true),
            Step::Do(Operation::Delete(d))
        );
        assert_eq!(plan(d, None, None, false), Step::Nothing);
    }

    #[test]
    fn plan_waits_for_missing_interfaces() {
        let d = net("fd00::1/128");
        assert_eq!(plan(d, Some(Err(())), None, true), Step::Wait);
        assert_eq!(
            plan(d, Some(Err(())), Some(KernelRoute::Device(9)), false),
            Step::Wait
        );
        assert_eq!(
            plan(d, Some(Err(())), Some(KernelRoute::Device(9)), true),
            Step::Do(Operation::Delete(d))
        );
    }

    #[test]
    fn canonical_clears_host_bits() {
        assert_eq!(canonical(net("10.0.0.5/24")), net("10.0.0.0/24"));
        assert_eq!(canonical(net("10.0.0.5/32")), net("10.0.0.5/32"));
    }
}
