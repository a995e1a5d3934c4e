//! vrouterd's control-socket backend: BGP state from [`SpeakerBackend`] (the speaker the
//! [`bgp::speaker::cluster::ClusterAgent`] runs), plus a `felix1` row for the dataplane agent
//! (`show protocols`: up once the datastore is in sync, its exported count the pod and block
//! routes it programmed, read from the kernel by protocol number 80).
//!
//! `down` and `graceful restart` from the socket are published by the speaker backend; the
//! daemon's main loop acts on them ([`NodeBackend::shutdown_requests`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bgp::ctl::{
    ControlBackend, DaemonInfo, Interface, ProtocolKind, PseudoProtocol, SpeakerBackend,
};
use bgp::speaker::{PeerAction, PeerActionOutcome, PeerStatus, RibSummary, RouteDetail, Shutdown};
use tokio::sync::watch;

/// The control backend of the node daemon.
#[derive(Debug)]
pub struct NodeBackend {
    speaker: SpeakerBackend,
    felix_in_sync: Arc<AtomicBool>,
    felix_since: std::sync::Mutex<SystemTime>,
}

impl NodeBackend {
    /// Wraps `speaker`; `felix_in_sync` is kept current by the daemon.
    pub fn new(speaker: SpeakerBackend, felix_in_sync: Arc<AtomicBool>) -> NodeBackend {
        NodeBackend {
            speaker,
            felix_in_sync,
            felix_since: std::sync::Mutex::new(SystemTime::UNIX_EPOCH),
        }
    }

    /// The BGP backend (router id, graceful-restart flag).
    pub fn speaker(&self) -> &SpeakerBackend {
        &self.speaker
    }

    /// Records when the dataplane agent got in sync (the `since` column).
    pub fn felix_synced_at(&self, at: SystemTime) {
        if let Ok(mut since) = self.felix_since.lock() {
            *since = at;
        }
    }

    /// `down` / `graceful restart` requests.
    pub fn shutdown_requests(&self) -> watch::Receiver<Option<Shutdown>> {
        self.speaker.shutdown_requests()
    }
}

impl ControlBackend for NodeBackend {
    fn daemon(&self) -> DaemonInfo {
        self.speaker.daemon()
    }

    async fn peers(&self) -> Option<Vec<PeerStatus>> {
        self.speaker.peers().await
    }

    async fn routes(&self) -> Option<Vec<RouteDetail>> {
        self.speaker.routes().await
    }

    async fn summary(&self) -> Option<RibSummary> {
        self.speaker.summary().await
    }

    async fn peer_action(&self, peer: IpAddr, action: PeerAction) -> Option<PeerActionOutcome> {
        self.speaker.peer_action(peer, action).await
    }

    async fn shutdown(&self, how: Shutdown) {
        self.speaker.shutdown(how).await;
    }

    async fn protocols(&self) -> Vec<PseudoProtocol> {
        let mut rows = self.speaker.protocols().await;
        let up = self.felix_in_sync.load(Ordering::Acquire);
        let since = self
            .felix_since
            .lock()
            .map(|s| *s)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let programmed = crate::kernel_state::routes_of(felix::ownership::ROUTE_PROTO_AGENT)
            .await
            .unwrap_or(0);
        rows.push(PseudoProtocol {
            name: "felix1".to_string(),
            kind: ProtocolKind::Kernel,
            table: Some("master4".to_string()),
            up,
            since,
            info: if up { "in sync" } else { "syncing" }.to_string(),
            imported: 0,
            exported: programmed,
        });
        rows
    }

    async fn interfaces(&self) -> Vec<Interface> {
        self.speaker.interfaces().await
    }
}
