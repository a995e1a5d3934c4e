//! [`VtepTable`]: this node's VXLAN tunnel endpoint, reconciled against the kernel over
//! rtnetlink — the device [`VXLAN_DEVICE`] (VNI, UDP port, local underlay address, learning
//! off, MTU, MAC, up), its tunnel address (a /32), and per remote VTEP a permanent neighbour
//! entry (tunnel address → MAC) and a static FDB entry (MAC → underlay address).
//!
//! ```text
//!  set_desired ──▶ desired ──┐
//!                            ├─ plan (pure) ─▶ device batch ─▶ entry batch ─▶ kernel
//!  dump (start, resync) ─▶ kernel ┘
//! ```
//!
//! Everything on the device is ours (the name is the ownership tag, `crate::ownership`).
//! Rules, as for routes:
//! - start of day: the first `apply` reads the device, its addresses, neighbours and FDB and
//!   *adopts* what is right (nothing deleted and re-added: no traffic blip on restart);
//! - before [`VtepTable::set_in_sync`] only additive changes are made (create a missing device,
//!   add or correct wanted entries, MTU/MAC/up); deleting the device (also to re-create it
//!   with another VNI, port or local address) and removing stale addresses, neighbours and
//!   FDB entries wait for InSync;
//! - [`VtepTable::request_resync`] re-reads the kernel and repairs drift, reported as
//!   `repaired`.
//!
//! The device MTU is `vxlanMTU` when set, else the MTU of the interface holding the local
//! underlay address minus 50 (Calico's rule).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tracing::{info, warn};

use super::netlink::{NetlinkSocket, Request};
use crate::calc::vxlan::{VtepDevice, VxlanDesired};
use crate::ownership::VXLAN_DEVICE;
use datastore::ipam::workload::VXLAN_OVERHEAD;

/// MTU used when neither `vxlanMTU` nor the underlay interface's MTU is known.
const FALLBACK_MTU: u32 = 1450;
const EEXIST: i32 = 17;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EADDRNOTAVAIL: i32 = 99;

/// Errors of the VTEP driver.
#[derive(Debug, thiserror::Error)]
pub enum VtepError {
    /// The netlink socket could not be opened or failed as a whole.
    #[error("netlink socket failed")]
    Socket(#[source] io::Error),
    /// Reading the kernel's state failed.
    #[error("netlink dump of {what} failed")]
    Dump {
        /// `links`, `addresses`, `neighbours` or `fdb`.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The VTEP device as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelVtep {
    /// Interface index.
    pub index: u32,
    /// `vxlan` kind with these parameters (`None`: not a VXLAN device, or not reported).
    pub vni: Option<u32>,
    /// UDP destination port.
    pub port: Option<u16>,
    /// Local address.
    pub local: Option<Ipv4Addr>,
    /// Learning on.
    pub learning: Option<bool>,
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: Option<[u8; 6]>,
    /// Administratively up.
    pub up: bool,
    /// IPv4 addresses with prefix length.
    pub addresses: BTreeSet<(Ipv4Addr, u8)>,
    /// Permanent IPv4 neighbours: address → MAC.
    pub neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
    /// FDB entries with an IPv4 destination: (MAC, underlay address).
    pub fdb: BTreeSet<([u8; 6], Ipv4Addr)>,
}

/// One change decided by [`plan_device`] or [`plan_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VtepOp {
    /// Delete the device (with everything on it).
    DeleteDevice,
    /// Create the device (up, with MTU and MAC).
    CreateDevice(VtepDevice, u32),
    /// Change MTU, MAC or bring it up.
    SetLink {
        /// New MTU.
        mtu: Option<u32>,
        /// New MAC.
        mac: Option<[u8; 6]>,
        /// Set it up.
        up: bool,
    },
    /// Add the tunnel address (/32).
    AddAddress(Ipv4Addr),
    /// Remove an address.
    DelAddress(Ipv4Addr, u8),
    /// Add or correct a permanent neighbour.
    SetNeighbour(Ipv4Addr, [u8; 6]),
    /// Remove a neighbour.
    DelNeighbour(Ipv4Addr),
    /// Add or correct an FDB entry.
    SetFdb([u8; 6], Ipv4Addr),
    /// Remove an FDB entry.
    DelFdb([u8; 6], Ipv4Addr),
}

/// What `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VtepReport {
    /// Device created (or re-created).
    pub created: bool,
    /// Device deleted.
    pub deleted: bool,
    /// Entries adopted from a previous run without touching them (device, address,
    /// neighbours, FDB).
    pub adopted: usize,
    /// Changes made (device and entries).
    pub changes: usize,
    /// Stale entries removed.
    pub removed: usize,
    /// Changes a resync found necessary.
    pub repaired: usize,
    /// Requests the kernel refused (retried on the next apply).
    pub errors: usize,
}

/// Decides what to do with the device itself. Pure.
pub fn plan_device(
    desired: Option<&VtepDevice>,
    mtu: u32,
    kernel: Option<&KernelVtep>,
    in_sync: bool,
) -> Vec<VtepOp> {
    match (desired, kernel) {
        (None, Some(_)) if in_sync => vec![VtepOp::DeleteDevice],
        (None, _) => Vec::new(),
        (Some(d), None) => vec![VtepOp::CreateDevice(d.clone(), mtu)],
        (Some(d), Some(k)) => {
            let same = k.vni == Some(d.vni)
                && k.port == Some(d.port)
                && k.local == Some(d.local)
                && k.learning == Some(false);
            if !same {
                return if in_sync {
                    vec![VtepOp::DeleteDevice, VtepOp::CreateDevice(d.clone(), mtu)]
                } else {
                    Vec::new()
                };
            }
            let set_mtu = (k.mtu != mtu).then_some(mtu);
            let set_mac = (k.mac != Some(d.mac)).then_some(d.mac);
            if set_mtu.is_some() || set_mac.is_some() || !k.up {
                vec![VtepOp::SetLink {
                    mtu: set_mtu,
                    mac: set_mac,
                    up: !k.up,
                }]
            } else {
                Vec::new()
            }
        }
    }
}

/// Decides what to do with the address, neighbours and FDB of an existing device. Pure.
pub fn plan_entries(desired: &VxlanDesired, kernel: &KernelVtep, in_sync: bool) -> Vec<VtepOp> {
    let Some(device) = &desired.device else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    if !kernel.addresses.contains(&(device.addr, 32)) {
        ops.push(VtepOp::AddAddress(device.addr));
    }
    if in_sync {
        for (addr, len) in &kernel.addresses {
            if (*addr, *len) != (device.addr, 32) {
                ops.push(VtepOp::DelAddress(*addr, *len));
            }
        }
    }
    for (ip, peer) in &desired.peers {
        if kernel.neighbours.get(ip) != Some(&peer.mac) {
            ops.push(VtepOp::SetNeighbour(*ip, peer.mac));
        }
    }
    let wanted_fdb: BTreeSet<([u8; 6], Ipv4Addr)> = desired
        .peers
        .values()
        .map(|p| (p.mac, p.underlay))
        .collect();
    for entry in &wanted_fdb {
        if !kernel.fdb.contains(entry) {
            ops.push(VtepOp::SetFdb(entry.0, entry.1));
        }
    }
    if in_sync {
        for ip in kernel.neighbours.keys() {
            if !desired.peers.contains_key(ip) {
                ops.push(VtepOp::DelNeighbour(*ip));
            }
        }
        for entry in &kernel.fdb {
            // A wanted MAC with another destination was replaced by its SetFdb above.
            let replaced = wanted_fdb.iter().any(|w| w.0 == entry.0) && !wanted_fdb.contains(entry);
            if !wanted_fdb.contains(entry) && !replaced {
                ops.push(VtepOp::DelFdb(entry.0, entry.1));
            }
        }
    }
    ops
}

/// The VTEP of this node.
#[derive(Debug)]
pub struct VtepTable {
    socket: NetlinkSocket,
    desired: VxlanDesired,
    /// The kernel as last read or programmed.
    kernel: Option<KernelVtep>,
    /// MTU of the underlay interface (the one holding the local address), as last read.
    underlay_mtu: Option<u32>,
    in_sync: bool,
    resync_requested: bool,
    dirty: bool,
    dumped_once: bool,
}

impl VtepTable {
    /// A table with a netlink socket in the calling thread's network namespace. Nothing is
    /// read or written until [`VtepTable::apply`].
    pub fn new() -> Result<Self, VtepError> {
        Ok(Self {
            socket: NetlinkSocket::open().map_err(VtepError::Socket)?,
            desired: VxlanDesired::default(),
            kernel: None,
            underlay_mtu: None,
            in_sync: false,
            resync_requested: true,
            dirty: false,
            dumped_once: false,
        })
    }

    /// Wants this VTEP state. Cheap; no I/O.
    pub fn set_desired(&mut self, desired: VxlanDesired) {
        if desired != self.desired {
            self.desired = desired;
            self.dirty = true;
        }
    }

    /// The datastore has been read completely: stale state may now be removed.
    pub fn set_in_sync(&mut self) {
        if !self.in_sync {
            self.in_sync = true;
            self.dirty = true;
        }
    }

    /// Re-read the kernel on the next `apply` and repair whatever drifted.
    pub fn request_resync(&mut self) {
        self.resync_requested = true;
    }

    /// True if an apply has work to do.
    pub fn has_pending_work(&self) -> bool {
        self.dirty || self.resync_requested
    }

    fn mtu(&self, device: &VtepDevice) -> u32 {
        device.mtu.unwrap_or_else(|| {
            self.underlay_mtu
                .map_or(FALLBACK_MTU, |m| m.saturating_sub(VXLAN_OVERHEAD))
        })
    }

    /// Programs the kernel: reads it first when a resync is due (or after a failure), then
    /// changes the device, then its entries; removals only once in sync.
    pub fn apply(&mut self) -> Result<VtepReport, VtepError> {
        self.apply_with(true)
    }

    /// [`VtepTable::apply`] without any removal (the agent's pass before routes are
    /// programmed; removals follow after the routes, so no route is left pointing at a
    /// removed VTEP). Leaves the table dirty when removals may be due.
    pub fn apply_additions(&mut self) -> Result<VtepReport, VtepError> {
        let report = self.apply_with(false)?;
        self.dirty |= self.in_sync;
        Ok(report)
    }

    fn apply_with(&mut self, removals: bool) -> Result<VtepReport, VtepError> {
        let in_sync = self.in_sync && removals;
        let mut report = VtepReport::default();
        let resync = self.resync_requested || self.kernel.is_none();
        if resync {
            self.read_kernel()?;
        }
        let first = !self.dumped_once;
        self.dumped_once = true;
        self.dirty = false;
        let mtu = self.desired.device.as_ref().map(|d| self.mtu(d));
        let device_ops = plan_device(
            self.desired.device.as_ref(),
            mtu.unwrap_or(FALLBACK_MTU),
            self.kernel.as_ref(),
            in_sync,
        );
        let created = device_ops
            .iter()
            .any(|op| matches!(op, VtepOp::CreateDevice(..)));
        let mut changes = device_ops.len();
        self.execute(&device_ops, &mut report)?;
        if created || report.deleted {
            // The device is new (or gone): learn its index and state.
            self.read_kernel()?;
        }
        let mut entry_ops = Vec::new();
        if let Some(kernel) = &self.kernel {
            entry_ops = plan_entries(&self.desired, kernel, in_sync);
            if first && !created {
                report.adopted = adopted(&self.desired, kernel);
                info!(
                    device = VXLAN_DEVICE,
                    adopted = report.adopted,
                    changes = device_ops.len() + entry_ops.len(),
                    "VTEP read"
                );
            }
        }
        changes += entry_ops.len();
        self.execute(&entry_ops, &mut report)?;
        report.changes = changes;
        if resync && !first {
            report.repaired = changes;
        }
        if report.errors > 0 {
            // Read the kernel back next time: the outcome of what failed is unknown.
            self.resync_requested = true;
        }
        Ok(report)
    }

    /// Dumps links, addresses, neighbours and the FDB of the device.
    fn read_kernel(&mut self) -> Result<(), VtepError> {
        let dump = |socket: &mut NetlinkSocket, what: &'static str, request| {
            socket
                .dump(request)
                .map_err(|source| VtepError::Dump { what, source })
        };
        let links = dump(
            &mut self.socket,
            "links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        let mut address_request = AddressMessage::default();
        address_request.header.family = AddressFamily::Inet;
        let addresses = dump(
            &mut self.socket,
            "addresses",
            RouteNetlinkMessage::GetAddress(address_request),
        )?;
        let mut kernel = links.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) if link_name(l) == Some(VXLAN_DEVICE) => {
                Some(kernel_link(l))
            }
            _ => None,
        });
        // The underlay interface: the one holding the desired local address.
        let local = self.desired.device.as_ref().map(|d| d.local);
        let underlay_index = addresses.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a)
                if local.is_some() && address_of(a) == local.map(|l| (l, a.header.prefix_len)) =>
            {
                Some(a.header.index)
            }
            _ => None,
        });
        self.underlay_mtu = underlay_index.and_then(|index| {
            links.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == index => {
                    l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::Mtu(m) => Some(*m),
                        _ => None,
                    })
                }
                _ => None,
            })
        });
        if let Some(k) = &mut kernel {
            for m in &addresses {
                if let RouteNetlinkMessage::NewAddress(a) = m
                    && a.header.index == k.index
                    && let Some(addr) = address_of(a)
                {
                    k.addresses.insert(addr);
                }
            }
            let mut neighbour_request = NeighbourMessage::default();
            neighbour_request.header.family = AddressFamily::Inet;
            for m in dump(
                &mut self.socket,
                "neighbours",
                RouteNetlinkMessage::GetNeighbour(neighbour_request),
            )? {
                if let RouteNetlinkMessage::NewNeighbour(n) = m
                    && n.header.ifindex == k.index
                    && n.header.state == NeighbourState::Permanent
                    && let (Some(IpAddr::V4(ip)), Some(mac)) = neighbour_of(&n)
                {
                    k.neighbours.insert(ip, mac);
                }
            }
            let mut fdb_request = NeighbourMessage::default();
            fdb_request.header.family = AddressFamily::Bridge;
            for m in dump(
                &mut self.socket,
                "fdb",
                RouteNetlinkMessage::GetNeighbour(fdb_request),
            )? {
                if let RouteNetlinkMessage::NewNeighbour(n) = m
                    && n.header.ifindex == k.index
                    && let (Some(IpAddr::V4(dst)), Some(mac)) = neighbour_of(&n)
                {
                    k.fdb.insert((mac, dst));
                }
            }
        }
        self.kernel = kernel;
        self.resync_requested = false;
        Ok(())
    }

    fn execute(&mut self, ops: &[VtepOp], report: &mut VtepReport) -> Result<(), VtepError> {
        if ops.is_empty() {
            return Ok(());
        }
        let index = self.kernel.as_ref().map_or(0, |k| k.index);
        let requests: Vec<Request> = ops.iter().map(|op| request(op, index)).collect();
        let failures = match self.socket.batch(requests) {
            Ok(f) => f,
            Err(e) => {
                self.resync_requested = true;
                return Err(VtepError::Socket(e));
            }
        };
        let failed: BTreeMap<usize, io::Error> = failures.into_iter().collect();
        for (i, op) in ops.iter().enumerate() {
            let error = failed.get(&i);
            let benign = error.is_some_and(|e| match op {
                VtepOp::AddAddress(_) => e.raw_os_error() == Some(EEXIST),
                VtepOp::DelAddress(..) => e.raw_os_error() == Some(EADDRNOTAVAIL),
                VtepOp::DelNeighbour(_) | VtepOp::DelFdb(..) => {
                    matches!(e.raw_os_error(), Some(ENOENT | ESRCH))
                }
                _ => false,
            });
            if let Some(error) = error
                && !benign
            {
                warn!(?op, %error, device = VXLAN_DEVICE, "kernel refused a VTEP change");
                report.errors += 1;
                continue;
            }
            self.record(op, report);
        }
        Ok(())
    }

    /// Updates the cached kernel state after a successful operation.
    fn record(&mut self, op: &VtepOp, report: &mut VtepReport) {
        match op {
            VtepOp::DeleteDevice => {
                self.kernel = None;
                report.deleted = true;
            }
            VtepOp::CreateDevice(..) => report.created = true,
            VtepOp::DelAddress(..) | VtepOp::DelNeighbour(_) | VtepOp::DelFdb(..) => {
                report.removed += 1;
            }
            _ => {}
        }
        let Some(k) = &mut self.kernel else { return };
        match op {
            VtepOp::SetLink { mtu, mac, up } => {
                if let Some(m) = mtu {
                    k.mtu = *m;
                }
                if let Some(m) = mac {
                    k.mac = Some(*m);
                }
                k.up |= *up;
            }
            VtepOp::AddAddress(a) => {
                k.addresses.insert((*a, 32));
            }
            VtepOp::DelAddress(a, l) => {
                k.addresses.remove(&(*a, *l));
            }
            VtepOp::SetNeighbour(ip, mac) => {
                k.neighbours.insert(*ip, *mac);
            }
            VtepOp::DelNeighbour(ip) => {
                k.neighbours.remove(ip);
            }
            VtepOp::SetFdb(mac, dst) => {
                k.fdb.retain(|e| e.0 != *mac);
                k.fdb.insert((*mac, *dst));
            }
            VtepOp::DelFdb(mac, dst) => {
                k.fdb.remove(&(*mac, *dst));
            }
            VtepOp::DeleteDevice | VtepOp::CreateDevice(..) => {}
        }
    }
}

/// Entries of `kernel` that are already what `desired` wants.
fn adopted(desired: &VxlanDesired, kernel: &KernelVtep) -> usize {
    let Some(device) = &desired.device else {
        return 0;
    };
    usize::from(kernel.addresses.contains(&(device.addr, 32)))
        + desired
            .peers
            .iter()
            .filter(|(ip, p)| {
                kernel.neighbours.get(*ip) == Some(&p.mac)
                    && kernel.fdb.contains(&(p.mac, p.underlay))
            })
            .count()
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn kernel_link(link: &LinkMessage) -> KernelVtep {
    let mut k = KernelVtep {
        index: link.header.index,
        up: link.header.flags.contains(LinkFlags::Up),
        ..KernelVtep::default()
    };
    for a in &link.attributes {
        match a {
            LinkAttribute::Mtu(m) => k.mtu = *m,
            LinkAttribute::Address(bytes) => k.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                let vxlan = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
                for info in infos {
                    if let LinkInfo::Data(InfoData::Vxlan(data)) = info
                        && vxlan
                    {
                        for d in data {
                            match d {
                                InfoVxlan::Id(v) => k.vni = Some(*v),
                                InfoVxlan::Port(p) => k.port = Some(*p),
                                InfoVxlan::Local(l) => k.local = Some(*l),
                                InfoVxlan::Learning(l) => k.learning = Some(*l),
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    k
}

fn address_of(a: &AddressMessage) -> Option<(Ipv4Addr, u8)> {
    a.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, a.header.prefix_len)),
        _ => None,
    })
}

fn neighbour_of(n: &NeighbourMessage) -> (Option<IpAddr>, Option<[u8; 6]>) {
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4));
            }
            // AF_BRIDGE (FDB) entries carry the VXLAN destination as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                if let Ok(octets) = <[u8; 4]>::try_from(bytes.as_slice()) {
                    ip = Some(IpAddr::V4(Ipv4Addr::from(octets)));
                }
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
            }
            _ => {}
        }
    }
    (ip, mac)
}

fn request(op: &VtepOp, index: u32) -> Request {
    let neighbour = |family, ip: Ipv4Addr, mac: Option<[u8; 6]>| {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        if family == AddressFamily::Bridge {
            m.header.flags = NeighbourFlags::Own;
        }
        if let Some(mac) = mac {
            m.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        m
    };
    let address = |ip: Ipv4Addr, len: u8| {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = len;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        m
    };
    let (message, flags) = match op {
        VtepOp::DeleteDevice => {
            let mut m = LinkMessage::default();
            m.header.index = index;
            (RouteNetlinkMessage::DelLink(m), 0)
        }
        VtepOp::CreateDevice(d, mtu) => {
            let mut m = LinkMessage::default();
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            m.attributes
                .push(LinkAttribute::IfName(VXLAN_DEVICE.to_string()));
            m.attributes.push(LinkAttribute::Mtu(*mtu));
            m.attributes.push(LinkAttribute::Address(d.mac.to_vec()));
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(d.vni),
                    InfoVxlan::Local(d.local),
                    InfoVxlan::Port(d.port),
                    InfoVxlan::Learning(false),
                ])),
            ]));
            (RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
        }
        VtepOp::SetLink { mtu, mac, up } => {
            let mut m = LinkMessage::default();
            m.header.index = index;
            if *up {
                m.header.flags = LinkFlags::Up;
                m.header.change_mask = LinkFlags::Up;
            }
            if let Some(mtu) = mtu {
                m.attributes.push(LinkAttribute::Mtu(*mtu));
            }
            if let Some(mac) = mac {
                m.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
            (RouteNetlinkMessage::SetLink(m), 0)
        }
        VtepOp::AddAddress(ip) => (
            RouteNetlinkMessage::NewAddress(address(*ip, 32)),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        VtepOp::DelAddress(ip, len) => (RouteNetlinkMessage::DelAddress(address(*ip, *len)), 0),
        VtepOp::SetNeighbour(ip, mac) => (
            RouteNetlinkMessage::NewNeighbour(neighbour(AddressFamily::Inet, *ip, Some(*mac))),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        VtepOp::DelNeighbour(ip) => (
            RouteNetlinkMessage::DelNeighbour(neighbour(AddressFamily::Inet, *ip, None)),
            0,
        ),
        VtepOp::SetFdb(mac, dst) => (
            RouteNetlinkMessage::NewNeighbour(neighbour(AddressFamily::Bridge, *dst, Some(*mac))),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        VtepOp::DelFdb(mac, dst) => (
            RouteNetlinkMessage::DelNeighbour(neighbour(AddressFamily::Bridge, *dst, Some(*mac))),
            0,
        ),
    };
    Request { message, flags }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calc::vxlan::VtepPeer;

    fn device() -> VtepDevice {
        VtepDevice {
            vni: 4096,
            port: 4789,
            local: "10.1.0.10".parse().unwrap(),
            addr: "10.244.0.1".parse().unwrap(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: None,
        }
    }

    fn kernel() -> KernelVtep {
        KernelVtep {
            index: 5,
            vni: Some(4096),
            port: Some(4789),
            local: Some("10.1.0.10".parse().unwrap()),
            learning: Some(false),
            mtu: 1450,
            mac: Some([2, 0, 0, 0, 0, 1]),
            up: true,
            ..KernelVtep::default()
        }
    }

    fn peer(last: u8) -> (Ipv4Addr, VtepPeer) {
        (
            Ipv4Addr::new(10, 244, last, 1),
            VtepPeer {
                mac: [2, 0, 0, 0, 0, last],
                underlay: Ipv4Addr::new(10, 2, 0, last),
            },
        )
    }

    #[test]
    fn device_is_adopted_changed_in_place_or_recreated_after_in_sync() {
        let d = device();
        assert_eq!(
            plan_device(Some(&d), 1450, None, false),
            [VtepOp::CreateDevice(d.clone(), 1450)]
        );
        assert!(plan_device(Some(&d), 1450, Some(&kernel()), false).is_empty());
        let mut k = kernel();
        k.mtu = 1500;
        k.up = false;
        assert_eq!(
            plan_device(Some(&d), 1450, Some(&k), false),
            [VtepOp::SetLink {
                mtu: Some(1450),
                mac: None,
                up: true
            }]
        );
        let mut k = kernel();
        k.vni = Some(1);
        assert!(plan_device(Some(&d), 1450, Some(&k), false).is_empty());
        assert_eq!(
            plan_device(Some(&d), 1450, Some(&k), true),
            [VtepOp::DeleteDevice, VtepOp::CreateDevice(d.clone(), 1450)]
        );
        assert!(plan_device(None, 1450, Some(&kernel()), false).is_empty());
        assert_eq!(
            plan_device(None, 1450, Some(&kernel()), true),
            [VtepOp::DeleteDevice]
        );
    }

    #[test]
    fn entries_are_added_before_and_removed_only_after_in_sync() {
        let desired = VxlanDesired {
            device: Some(device()),
            peers: [peer(2), peer(3)].into(),
        };
        let mut k = kernel();
        k.addresses.insert(("10.244.0.1".parse().unwrap(), 32));
        k.addresses.insert(("10.244.9.9".parse().unwrap(), 32));
        let (ip2, p2) = peer(2);
        k.neighbours.insert(ip2, p2.mac);
        k.fdb.insert((p2.mac, p2.underlay));
        let (ip9, p9) = peer(9);
        k.neighbours.insert(ip9, p9.mac);
        k.fdb.insert((p9.mac, p9.underlay));
        let (ip3, p3) = peer(3);
        assert_eq!(
            plan_entries(&desired, &k, false),
            [
                VtepOp::SetNeighbour(ip3, p3.mac),
                VtepOp::SetFdb(p3.mac, p3.underlay)
            ]
        );
        assert_eq!(
            plan_entries(&desired, &k, true),
            [
                VtepOp::DelAddress("10.244.9.9".parse().unwrap(), 32),
                VtepOp::SetNeighbour(ip3, p3.mac),
                VtepOp::SetFdb(p3.mac, p3.underlay),
                VtepOp::DelNeighbour(ip9),
                VtepOp::DelFdb(p9.mac, p9.underlay),
            ]
        );
        assert_eq!(adopted(&desired, &k), 2);
        // A peer that moved: its FDB entry is replaced, not deleted.
        let mut moved = desired.clone();
        moved.peers.get_mut(&ip2).unwrap().underlay = "10.2.0.99".parse().unwrap();
        let ops = plan_entries(&moved, &k, true);
        assert!(ops.contains(&VtepOp::SetFdb(p2.mac, "10.2.0.99".parse().unwrap())));
        assert!(!ops.contains(&VtepOp::DelFdb(p2.mac, p2.underlay)));
    }
}
