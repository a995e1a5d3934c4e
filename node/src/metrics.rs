//! vrouterd's own metrics, next to felix's registry: BGP (`vrouter_bgp_*`, read from the
//! speaker's handle at scrape time: sessions by state, routes received and advertised and
//! UPDATE messages received and sent per peer, Loc-RIB size, routes installed in the kernel,
//! graceful-restart recovery),
//! process (`process_resident_memory_bytes`, `process_start_time_seconds`, the names
//! Prometheus dashboards expect), readiness and `vrouter_build_info`.
//!
//! [`NodeMetrics::encode`] concatenates this registry and felix's into one exposition with a
//! single `# EOF`.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp::fsm::State;
use bgp::speaker::SpeakerHandle;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// How long a scrape waits for the speaker.
const SPEAKER_TIMEOUT: Duration = Duration::from_secs(1);

/// Label: a BGP session state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// Label: a peer address.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

/// Label set of `vrouter_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    node: String,
}

/// The node daemon's metrics.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    sessions: Family<StateLabel, Gauge>,
    peer_routes: Family<PeerLabel, Gauge>,
    peer_stale: Family<PeerLabel, Gauge>,
    peer_malformed: Family<PeerLabel, Gauge>,
    peer_advertised: Family<PeerLabel, Gauge>,
    updates_received: Family<PeerLabel, Counter>,
    updates_sent: Family<PeerLabel, Counter>,
    loc_rib_prefixes: Gauge,
    routes_installed: Gauge,
    restart_recovery: Gauge,
    adj_rib_in_routes: Gauge,
    speaker_up: Gauge,
    ready: Gauge,
    resident: Gauge,
    started: Gauge<f64, AtomicU64>,
}

impl NodeMetrics {
    /// Registers everything; `node` labels the build info.
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::default();
        let sessions = Family::<StateLabel, Gauge>::default();
        let peer_routes = Family::<PeerLabel, Gauge>::default();
        let peer_stale = Family::<PeerLabel, Gauge>::default();
        let peer_malformed = Family::<PeerLabel, Gauge>::default();
        let peer_advertised = Family::<PeerLabel, Gauge>::default();
        let updates_received = Family::<PeerLabel, Counter>::default();
        let updates_sent = Family::<PeerLabel, Counter>::default();
        let loc_rib_prefixes = Gauge::default();
        let routes_installed = Gauge::default();
        let restart_recovery = Gauge::default();
        let adj_rib_in_routes = Gauge::default();
        let speaker_up = Gauge::default();
        let ready = Gauge::default();
        let resident = Gauge::default();
        let started = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "vrouter_build",
            "vrouterd version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                node: node.to_string(),
            }),
        );
        registry.register(
            "vrouter_node_ready",
            "1 once the datastore is in sync and the dataplane applied",
            ready.clone(),
        );
        registry.register(
            "vrouter_bgp_speaker_up",
            "1 while the BGP speaker runs",
            speaker_up.clone(),
        );
        registry.register(
            "vrouter_bgp_sessions",
            "BGP sessions by FSM state",
            sessions.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_routes_received",
            "Routes in each peer's Adj-RIB-In",
            peer_routes.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_routes_stale",
            "Routes of each peer held stale for graceful restart",
            peer_stale.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_malformed_updates",
            "UPDATEs from each peer recovered from under RFC 7606 (since the session started)",
            peer_malformed.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_routes_advertised",
            "Routes in each peer's Adj-RIB-Out (advertised to it)",
            peer_advertised.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_updates_received",
            "UPDATE messages received from each peer, End-of-RIB included",
            updates_received.clone(),
        );
        registry.register(
            "vrouter_bgp_peer_updates_sent",
            "UPDATE messages sent to each peer, End-of-RIB included",
            updates_sent.clone(),
        );
        registry.register(
            "vrouter_bgp_routes_installed",
            "BGP-learned best routes handed to the kernel (protocol 81)",
            routes_installed.clone(),
        );
        registry.register(
            "vrouter_bgp_graceful_restart_recovery",
            "1 while a restarted speaker keeps the previous routes waiting for End-of-RIB",
            restart_recovery.clone(),
        );
        registry.register(
            "vrouter_bgp_loc_rib_prefixes",
            "Prefixes in the Loc-RIB",
            loc_rib_prefixes.clone(),
        );
        registry.register(
            "vrouter_bgp_adj_rib_in_routes",
            "Routes in all Adj-RIBs-In together",
            adj_rib_in_routes.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            resident.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            started.clone(),
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        started.set(now);
        Self {
            registry,
            sessions,
            peer_routes,
            peer_stale,
            peer_malformed,
            peer_advertised,
            updates_received,
            updates_sent,
            loc_rib_prefixes,
            routes_installed,
            restart_recovery,
            adj_rib_in_routes,
            speaker_up,
            ready,
            resident,
            started,
        }
    }

    /// Records readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Reads the speaker's peers and RIB sizes and the process's memory.
    pub async fn refresh(&self, speaker: Option<SpeakerHandle>) {
        if let Some(rss) = resident_bytes() {
            self.resident.set(rss);
        }
        self.sessions.clear();
        self.peer_routes.clear();
        self.peer_stale.clear();
        self.peer_malformed.clear();
        self.peer_advertised.clear();
        self.updates_received.clear();
        self.updates_sent.clear();
        let Some(speaker) = speaker else {
            self.speaker_up.set(0);
            return;
        };
        let read = async {
            let peers = speaker.peers().await.ok()?;
            let summary = speaker.rib_summary().await.ok()?;
            Some((peers, summary))
        };
        let Ok(Some((peers, summary))) = tokio::time::timeout(SPEAKER_TIMEOUT, read).await else {
            self.speaker_up.set(0);
            return;
        };
        self.speaker_up.set(1);
        for state in [
            State::Idle,
            State::Connect,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
        ] {
            let count = peers.iter().filter(|p| p.state == state).count();
            self.sessions
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(to_i64(count));
        }
        for peer in &peers {
            let label = PeerLabel {
                peer: peer.address.to_string(),
            };
            self.peer_routes
                .get_or_create(&label)
                .set(to_i64(peer.routes_received));
            self.peer_stale
                .get_or_create(&label)
                .set(to_i64(peer.routes_stale));
            self.peer_malformed
                .get_or_create(&label)
                .set(i64::try_from(peer.malformed_updates).unwrap_or(i64::MAX));
            self.peer_advertised
                .get_or_create(&label)
                .set(to_i64(peer.routes_advertised));
            // Counters are rebuilt from the speaker's totals at every scrape.
            self.updates_received
                .get_or_create(&label)
                .inc_by(peer.updates_received);
            self.updates_sent
                .get_or_create(&label)
                .inc_by(peer.updates_sent);
        }
        self.loc_rib_prefixes.set(to_i64(summary.prefixes));
        self.routes_installed.set(to_i64(summary.installed));
        self.restart_recovery
            .set(i64::from(summary.restart_recovery));
        self.adj_rib_in_routes.set(to_i64(summary.received));
    }

    /// This registry followed by `others` (felix's), with one `# EOF`.
    pub fn encode(&self, others: &[&Registry]) -> String {
        let mut out = String::new();
        let _ = encode_registry(&mut out, &self.registry);
        for registry in others {
            let _ = encode_registry(&mut out, registry);
        }
        let _ = encode_eof(&mut out);
        out
    }

    /// The start time recorded (seconds since the epoch).
    pub fn start_time(&self) -> f64 {
        self.started.get()
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exposition_has_process_build_and_felix_parts_and_one_eof() {
        let metrics = NodeMetrics::new("node-1");
        metrics.refresh(None).await;
        metrics.set_ready(true);
        let mut felix = Registry::default();
        felix.register(
            "vrouter_felix_test",
            "a felix metric",
            Gauge::<i64>::default(),
        );
        let text = metrics.encode(&[&felix]);
        assert!(text.contains("vrouter_build_info{version=\""), "{text}");
        assert!(text.contains("node=\"node-1\""));
        assert!(text.contains("vrouter_node_ready 1"));
        assert!(text.contains("vrouter_bgp_speaker_up 0"));
        assert!(text.contains("vrouter_bgp_routes_installed 0"), "{text}");
        assert!(text.contains("vrouter_bgp_graceful_restart_recovery 0"));
        assert!(text.contains("vrouter_felix_test 0"));
        let rss_line = text
            .lines()
            .find(|l| l.starts_with("process_resident_memory_bytes "))
            .unwrap();
        let rss: i64 = rss_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(rss > 0);
        assert!(metrics.start_time() > 1.0e9);
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
