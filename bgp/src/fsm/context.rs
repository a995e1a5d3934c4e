//! Session configuration, the OPEN we send, and the negotiation of the peer's OPEN into a
//! per-session [`SessionContext`] (RFC 4271 §6.2 checks, RFC 5492 capabilities, RFC 6286
//! identifiers, RFC 6793 4-octet AS, RFC 4724 GR, RFC 7911 ADD-PATH, RFC 2918 route refresh).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    AS_TRANS, AddPathMode, Capability, CodecContext, Family, FamilySet, GracefulRestartCap,
    Notification, Open,
};

/// Our graceful-restart settings (RFC 4724).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart time we advertise (seconds, at most 4095): how long peers keep our routes.
    pub restart_time: u16,
    /// How long we keep a restarted peer's stale routes waiting for its End-of-RIB.
    pub stale_time: Duration,
    /// We are restarting: set the R bit in the next OPEN (cleared once Established).
    pub restarting: bool,
    /// We preserved forwarding state across the restart: set the F bit for our families.
    pub forwarding_preserved: bool,
    /// Advertise the N bit (RFC 8538): GR also covers sessions closed by NOTIFICATION.
    pub notification: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        // BIRD defaults: restart time 120 s; stale time as Calico's `maxRestartTime` default.
        GracefulRestartConfig {
            restart_time: 120,
            stale_time: Duration::from_secs(120),
            restarting: false,
            forwarding_preserved: true,
            notification: false,
        }
    }
}

/// Static configuration of one peering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number.
    pub local_asn: u32,
    /// The AS the peer must announce (Bad Peer AS otherwise).
    pub remote_asn: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// Hold time we propose (0 disables keepalives, else at least 3).
    pub hold_time: u16,
    /// ConnectRetryTimer interval.
    pub connect_retry: Duration,
    /// Hold time while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// DelayOpen: wait this long after connecting before sending our OPEN.
    pub delay_open: Option<Duration>,
    /// Never connect; only accept (Calico: the higher address of a mesh pair is passive).
    pub passive: bool,
    /// Restart automatically this long after a failure (None: stay Idle until ManualStart).
    pub idle_hold: Option<Duration>,
    /// Families we offer.
    pub families: FamilySet,
    /// Offer route refresh (and enhanced route refresh).
    pub route_refresh: bool,
    /// Offer 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Families in which we can receive several paths (ADD-PATH).
    pub add_path_receive: FamilySet,
    /// Families in which we can send several paths (ADD-PATH).
    pub add_path_send: FamilySet,
    /// Graceful restart, if enabled.
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl SessionConfig {
    /// Defaults matching Calico's BIRD template: both families, route refresh, 4-octet AS,
    /// ADD-PATH both ways, graceful restart, hold 240 s, connect retry 5 s, error wait 5 s.
    pub fn new(local_asn: u32, remote_asn: u32, local_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_asn,
            remote_asn,
            local_id,
            hold_time: 240,
            connect_retry: Duration::from_secs(5),
            open_hold_time: Duration::from_secs(240),
            delay_open: None,
            passive: false,
            idle_hold: Some(Duration::from_secs(5)),
            families: FamilySet::of(&Family::ALL),
            route_refresh: true,
            four_octet_as: true,
            add_path_receive: FamilySet::of(&Family::ALL),
            add_path_send: FamilySet::of(&Family::ALL),
            graceful_restart: Some(GracefulRestartConfig::default()),
        }
    }

    /// Whether the peering is internal.
    pub fn ibgp(&self) -> bool {
        self.local_asn == self.remote_asn
    }

    /// The OPEN this configuration sends.
    pub fn open(&self) -> Open {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::MultiProtocol(f.afi_safi()))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
            caps.push(Capability::EnhancedRouteRefresh);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestartCap {
                restart_state: gr.restarting,
                notification: gr.notification,
                restart_time: gr.restart_time.min(4095),
                families: self
                    .families
                    .iter()
                    .map(|f| (f.afi_safi(), gr.forwarding_preserved))
                    .collect(),
            }));
        }
        if self.four_octet_as {
            caps.push(Capability::FourOctetAs(self.local_asn));
        }
        let add_path: Vec<_> = self
            .families
            .iter()
            .filter_map(|f| {
                let mode = match (
                    self.add_path_receive.contains(f),
                    self.add_path_send.contains(f),
                ) {
                    (true, true) => AddPathMode::Both,
                    (true, false) => AddPathMode::Receive,
                    (false, true) => AddPathMode::Send,
                    (false, false) => return None,
                };
                Some((f.afi_safi(), mode))
            })
            .collect();
        if !add_path.is_empty() {
            caps.push(Capability::AddPath(add_path));
        }
        // RFC 6793 §4.1: a 4-octet ASN travels as AS_TRANS in the 2-octet field.
        let my_as = u16::try_from(self.local_asn).unwrap_or(AS_TRANS);
        Open {
            my_as,
            hold_time: self.hold_time,
            router_id: self.local_id,
            capabilities: caps,
        }
    }
}

/// What the peer's graceful-restart capability told us (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// How long to keep its routes if the session drops.
    pub restart_time: Duration,
    /// R bit: the peer has just restarted.
    pub restart_state: bool,
    /// N bit negotiated by both sides (RFC 8538).
    pub notification: bool,
    /// Families (negotiated ones only) the peer covers with GR.
    pub families: FamilySet,
    /// Families whose forwarding state the peer preserved (F bit).
    pub forwarding_preserved: FamilySet,
}

/// The negotiated session: everything later stages need to parse, build and judge routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// Our AS.
    pub local_asn: u32,
    /// The peer's AS.
    pub remote_asn: u32,
    /// Our identifier.
    pub local_id: Ipv4Addr,
    /// The peer's identifier.
    pub remote_id: Ipv4Addr,
    /// Negotiated hold time in seconds (0: no hold or keepalive timer).
    pub hold_time: u16,
    /// Families both sides offered (IPv4 unicast implied when the peer offers none).
    pub families: FamilySet,
    /// 4-octet AS numbers on the wire.
    pub four_octet_as: bool,
    /// Both sides support route refresh.
    pub route_refresh: bool,
    /// Both sides support enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Families where the peer sends us path identifiers.
    pub add_path_receive: FamilySet,
    /// Families where we send path identifiers.
    pub add_path_send: FamilySet,
    /// Extended messages (RFC 8654) negotiated.
    pub extended_message: bool,
    /// Graceful restart in effect (both sides advertised it).
    pub graceful_restart: Option<PeerGracefulRestart>,
}

impl SessionContext {
    /// Whether the session is internal.
    pub fn ibgp(&self) -> bool {
        self.local_asn == self.remote_asn
    }

    /// Keepalive interval: a third of the hold time (None when the hold time is 0).
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time / 3).max(1)))
    }

    /// The codec context for this session.
    pub fn codec(&self) -> CodecContext {
        CodecContext {
            four_octet_as: self.four_octet_as,
            ibgp: self.ibgp(),
            add_path_receive: self.add_path_receive,
            add_path_send: self.add_path_send,
            extended_message: self.extended_message,
        }
    }
}

/// Checks the peer's OPEN against our configuration and negotiates the session, or returns
/// the NOTIFICATION RFC 4271 §6.2 prescribes.
pub fn negotiate(config: &SessionConfig, open: &Open) -> Result<SessionContext, Notification> {
    let remote_asn = open.asn();
    // RFC 4271 §6.2 / RFC 7607: Bad Peer AS (data: the 2-octet field) for a mismatch or AS 0.
    // RFC 6793 §4.1: a 4-octet speaker sending a non-mappable ASN must use AS_TRANS.
    let mismatched_trans = open.four_octet_as() && remote_asn > 0xffff && open.my_as != AS_TRANS;
    if remote_asn != config.remote_asn || remote_asn == 0 || mismatched_trans {
        return Err(Notification::open_error(
            Notification::BAD_PEER_AS,
            open.my_as.to_be_bytes().to_vec(),
        ));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(Notification::open_error(
            Notification::UNACCEPTABLE_HOLD_TIME,
            open.hold_time.to_be_bytes().to_vec(),
        ));
    }
    // RFC 6286 §2.2: the identifier must be non-zero, and unique within an AS.
    let ibgp = config.ibgp();
    if open.router_id.is_unspecified() || (ibgp && open.router_id == config.local_id) {
        return Err(Notification::open_error(
            Notification::BAD_BGP_IDENTIFIER,
            open.router_id.octets().to_vec(),
        ));
    }

    let mut peer_families = FamilySet::EMPTY;
    let mut any_mp = false;
    let mut peer_add_path: Vec<(Family, AddPathMode)> = Vec::new();
    let mut peer_gr = None;
    let mut route_refresh = false;
    let mut enhanced_route_refresh = false;
    for cap in &open.capabilities {
        match cap {
            Capability::MultiProtocol(afi_safi) => {
                any_mp = true;
                if let Some(f) = Family::from_afi_safi(*afi_safi) {
                    peer_families.insert(f);
                }
            }
            Capability::RouteRefresh => route_refresh = true,
            Capability::EnhancedRouteRefresh => enhanced_route_refresh = true,
            Capability::AddPath(list) => peer_add_path.extend(
                list.iter()
                    .filter_map(|(a, m)| Family::from_afi_safi(*a).map(|f| (f, *m))),
            ),
            Capability::GracefulRestart(gr) => peer_gr = Some(gr.clone()),
            // We do not offer extended messages, so the peer's offer is moot.
            Capability::ExtendedMessage | Capability::FourOctetAs(_) | Capability::Other(_) => {}
        }
    }
    // RFC 4760 §8: a peer that advertises no multiprotocol capability speaks IPv4 unicast.
    if !any_mp {
        peer_families.insert(Family::Ipv4Unicast);
    }
    let families = FamilySet::of(
        &config
            .families
            .iter()
            .filter(|f| peer_families.contains(*f))
            .collect::<Vec<_>>(),
    );
    if families.is_empty() {
        // RFC 5492 §3: Unsupported Capability, data = the capabilities we need.
        let data = config
            .families
            .iter()
            .flat_map(|f| Capability::MultiProtocol(f.afi_safi()).encode())
            .collect();
        return Err(Notification::open_error(
            Notification::UNSUPPORTED_CAPABILITY,
            data,
        ));
    }

    let mut add_path_receive = FamilySet::EMPTY;
    let mut add_path_send = FamilySet::EMPTY;
    for (family, mode) in peer_add_path {
        if !families.contains(family) {
            continue;
        }
        if mode.sends() && config.add_path_receive.contains(family) {
            add_path_receive.insert(family);
        }
        if mode.receives() && config.add_path_send.contains(family) {
            add_path_send.insert(family);
        }
    }

    let graceful_restart = match (&config.graceful_restart, peer_gr) {
        (Some(ours), Some(theirs)) => {
            let mut covered = FamilySet::EMPTY;
            let mut forwarding = FamilySet::EMPTY;
            for (afi_safi, f_bit) in &theirs.families {
                if let Some(family) =
                    Family::from_afi_safi(*afi_safi).filter(|f| families.contains(*f))
                {
                    covered.insert(family);
                    if *f_bit {
                        forwarding.insert(family);
                    }
                }
            }
            Some(PeerGracefulRestart {
                restart_time: Duration::from_secs(u64::from(theirs.restart_time)),
                restart_state: theirs.restart_state,
                notification: theirs.notification && ours.notification,
                families: covered,
                forwarding_preserved: forwarding,
            })
        }
        _ => None,
    };

    Ok(SessionContext {
        local_asn: config.local_asn,
        remote_asn,
        local_id: config.local_id,
        remote_id: open.router_id,
        hold_time: config.hold_time.min(open.hold_time),
        families,
        four_octet_as: config.four_octet_as && open.four_octet_as(),
        route_refresh: config.route_refresh && route_refresh,
        enhanced_route_refresh: config.route_refresh && enhanced_route_refresh,
        add_path_receive,
        add_path_send,
        extended_message: false,
        graceful_restart,
    })
}
