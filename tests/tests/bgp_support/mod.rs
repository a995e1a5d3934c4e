//! Shared helpers of the `bgp_*` interop tests: a vrouter speaker running in a lab node's
//! namespace ([`Vrouter`]), blocking wrappers over its async handle, and probes in the shape
//! `assert_eventually!` wants (`Ok(value)` or a reason that explains the failure).
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bgp::fsm::State;
use bgp::speaker::netns::{FibChoice, NetnsSpeaker};
use bgp::speaker::{
    MemoryFib, PeerConfig, PeerStatus, RouteStatus, Shutdown, SpeakerConfig, SpeakerHandle,
};
use bgp::wire::Prefix;
use test_support::Node;

/// The AS of a Calico cluster by default.
pub(crate) const CLUSTER_AS: u32 = 64512;

/// A runtime for blocking on handle calls from synchronous tests.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The `/var/run/netns` path of a lab node.
pub(crate) fn netns_path(node: &Node) -> PathBuf {
    PathBuf::from(format!("/var/run/netns/{}", node.name()))
}

/// A speaker configuration for `node` with short test timers.
pub(crate) fn config(node: &Node, asn: u32) -> SpeakerConfig {
    let mut config = SpeakerConfig::new(node.ip(), asn);
    config.node_ipv4 = Some(node.ip());
    config.node_ipv6 = Some(node.ip6());
    config.hold_time = 30;
    config.connect_retry = Duration::from_secs(1);
    config.idle_hold = Duration::from_secs(1);
    config
}

/// A vrouter BGP speaker inside a lab node.
pub(crate) struct Vrouter {
    pub(crate) speaker: Option<NetnsSpeaker>,
    pub(crate) node: Node,
    pub(crate) memory: Option<MemoryFib>,
}

impl Vrouter {
    /// Starts a speaker in `node` programming the node's kernel table.
    pub(crate) fn start(node: &Node, config: SpeakerConfig) -> Vrouter {
        test_support::trace_init();
        let speaker = NetnsSpeaker::spawn(&netns_path(node), config, FibChoice::Kernel).unwrap();
        Vrouter {
            speaker: Some(speaker),
            node: node.clone(),
            memory: None,
        }
    }

    /// Starts a speaker in `node` with an in-memory FIB.
    pub(crate) fn start_memory(node: &Node, config: SpeakerConfig) -> Vrouter {
        test_support::trace_init();
        let memory = MemoryFib::new();
        let speaker =
            NetnsSpeaker::spawn(&netns_path(node), config, FibChoice::Memory(memory.clone()))
                .unwrap();
        Vrouter {
            speaker: Some(speaker),
            node: node.clone(),
            memory: Some(memory),
        }
    }

    pub(crate) fn handle(&self) -> &SpeakerHandle {
        self.speaker.as_ref().unwrap().handle()
    }

    pub(crate) fn peer(&self, addr: IpAddr) -> Option<PeerStatus> {
        runtime().block_on(self.handle().peer(addr)).unwrap()
    }

    /// Probe: the session with `addr` is Established; yields its status.
    pub(crate) fn established(&self, addr: IpAddr) -> Result<PeerStatus, String> {
        match self.peer(addr) {
            Some(p) if p.state == State::Established => Ok(p),
            Some(p) => Err(format!(
                "vrouter session with {addr} is {} (last error: {:?})",
                p.state, p.last_error
            )),
            None => Err(format!("vrouter has no peer {addr}")),
        }
    }

    /// Probe: the Loc-RIB has `prefix`.
    pub(crate) fn route(&self, prefix: &str) -> Result<RouteStatus, String> {
        let p: Prefix = prefix.parse().unwrap();
        let routes = runtime().block_on(self.handle().routes()).unwrap();
        routes
            .iter()
            .find(|r| r.prefix == p)
            .cloned()
            .ok_or_else(|| {
                let have: Vec<String> = routes.iter().map(|r| r.prefix.to_string()).collect();
                format!("vrouter has no route {prefix}; Loc-RIB: {have:?}")
            })
    }

    /// Probe: the Loc-RIB does not have `prefix`.
    pub(crate) fn no_route(&self, prefix: &str) -> Result<(), String> {
        match self.route(prefix) {
            Ok(r) => Err(format!("vrouter still has {r:?}")),
            Err(_) => Ok(()),
        }
    }

    /// Probe: the node's kernel has `prefix` with protocol 81; yields the `ip route` line.
    pub(crate) fn kernel_route(&self, prefix: &str) -> Result<String, String> {
        kernel_route(&self.node, prefix)
    }

    /// Probe: the node's kernel has no protocol-81 route for `prefix`.
    pub(crate) fn no_kernel_route(&self, prefix: &str) -> Result<(), String> {
        match kernel_route(&self.node, prefix) {
            Ok(line) => Err(format!("kernel still has {line}")),
            Err(_) => Ok(()),
        }
    }

    pub(crate) fn originate(&self, prefix: &str) {
        runtime()
            .block_on(self.handle().originate(prefix.parse().unwrap()))
            .unwrap();
    }

    pub(crate) fn withdraw(&self, prefix: &str) {
        runtime()
            .block_on(self.handle().withdraw(prefix.parse().unwrap()))
            .unwrap();
    }

    pub(crate) fn add_peer(&self, peer: PeerConfig) {
        runtime().block_on(self.handle().add_peer(peer)).unwrap();
    }

    pub(crate) fn remove_peer(&self, addr: IpAddr) {
        runtime().block_on(self.handle().remove_peer(addr)).unwrap();
    }

    /// Orderly stop (`Stop`) or graceful restart (`Restart`), then the thread ends.
    pub(crate) fn shutdown(&mut self, how: Shutdown) {
        if let Some(speaker) = self.speaker.take() {
            runtime().block_on(speaker.handle().shutdown(how)).unwrap();
            speaker.kill();
        }
    }
}

impl Drop for Vrouter {
    fn drop(&mut self) {
        if let Some(speaker) = self.speaker.take() {
            let _ = runtime().block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    speaker.handle().shutdown(Shutdown::Stop),
                )
                .await
            });
            speaker.kill();
        }
    }
}

/// Probe: `node`'s kernel has a protocol-81 route for exactly `prefix`.
pub(crate) fn kernel_route(node: &Node, prefix: &str) -> Result<String, String> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = node
        .exec_ok(&[
            "ip", family, "route", "show", "exact", prefix, "proto", "81",
        ])
        .map_err(|e| e.to_string())?;
    if out.trim().is_empty() {
        let all = node
            .exec_ok(&["ip", family, "route", "show"])
            .unwrap_or_default();
        Err(format!("no proto 81 route {prefix}; table:\n{all}"))
    } else {
        Ok(out.trim().to_string())
    }
}

/// A passive-or-active peering with `addr` in `asn`.
pub(crate) fn peer(addr: IpAddr, asn: u32, passive: bool) -> PeerConfig {
    PeerConfig::new(addr, asn).passive(passive)
}
