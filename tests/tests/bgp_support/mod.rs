//! Shared helpers of the `bgp_*` and `rr_*` tests: a vrouter speaker running in a lab node's
//! namespace ([`Vrouter`]), blocking wrappers over its async handle, probes in the shape
//! `assert_eventually!` wants (`Ok(value)` or a reason that explains the failure), the
//! cluster from etcd (resources, IPAM blocks, [`ClusterAgent`]s, a [`Reflector`]), and raw
//! BGP messages for the tests that play a misbehaving peer.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use bgp::fsm::State;
use bgp::speaker::cluster::{ClusterAgent, ClusterOptions, Launch};
use bgp::speaker::netns::{FibChoice, NetnsSpeaker};
use bgp::speaker::{
    MemoryFib, PeerConfig, PeerStatus, RouteStatus, Shutdown, SpeakerConfig, SpeakerHandle,
};
use bgp::wire::Prefix;
use datastore::etcd::{EtcdConfig, Store};
use datastore::ipam::block::AllocationBlock;
use datastore::keys::ipam_block_key;
use datastore::resource::document::parse_documents;
use datastore::resource_store::{ResourceStore, Verb};
use ipnetwork::IpNetwork;
use reflector::Reflector;
use reflector::config::{Cli, FileConfig, resolve};
use test_support::Node;
use test_support::etcd::Etcd;

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
        let speaker = NetnsSpeaker::spawn(&node.path(), config, FibChoice::Kernel).unwrap();
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
            NetnsSpeaker::spawn(&node.path(), config, FibChoice::Memory(memory.clone())).unwrap();
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
        no_kernel_route(&self.node, prefix)
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

/// Probe: `node`'s kernel has no protocol-81 route for `prefix`.
pub(crate) fn no_kernel_route(node: &Node, prefix: &str) -> Result<(), String> {
    match kernel_route(node, prefix) {
        Ok(line) => Err(format!("{} still has {line}", node.name())),
        Err(_) => Ok(()),
    }
}

/// A passive-or-active peering with `addr` in `asn`.
pub(crate) fn peer(addr: IpAddr, asn: u32, passive: bool) -> PeerConfig {
    PeerConfig::new(addr, asn).passive(passive)
}

/// A store on the test etcd, connected on [`runtime`].
pub(crate) fn etcd_store(etcd: &Etcd) -> Store {
    runtime()
        .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
        .unwrap()
}

/// Applies every resource of `yaml` in one transaction.
pub(crate) fn apply(store: &Store, yaml: &str) {
    let resources = parse_documents(yaml).unwrap();
    runtime()
        .block_on(ResourceStore::new(store.clone()).write(Verb::Apply, &resources))
        .unwrap();
}

/// The Node resource `name` with BGP address `ip`/24, one YAML document ending in `---`.
pub(crate) fn node_yaml(name: &str, ip: Ipv4Addr) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {name}}}\n\
         spec: {{bgp: {{ipv4Address: {ip}/24}}}}\n---\n"
    )
}

/// Writes the IPAM block `cidr`, affine to Node `node`.
pub(crate) fn claim_block(store: &Store, cidr: &str, node: &str) {
    let cidr: IpNetwork = cidr.parse().unwrap();
    let block = AllocationBlock::new(cidr, Some(node)).unwrap();
    runtime()
        .block_on(store.create(&ipam_block_key(&cidr), block.to_json()))
        .unwrap();
}

/// Deletes the IPAM block `cidr` (the node releases it).
pub(crate) fn release_block(store: &Store, cidr: &str) {
    let key = ipam_block_key(&cidr.parse().unwrap());
    let kv = runtime().block_on(store.get(&key)).unwrap().unwrap();
    runtime()
        .block_on(store.delete(&key, kv.mod_revision))
        .unwrap();
}

/// One [`ClusterAgent`] per node, Node `node{i}` for `nodes[i]`: a speaker in the node's
/// namespace programming its kernel, configured from `store`.
pub(crate) fn cluster_agents(store: &Store, nodes: &[Node]) -> Vec<ClusterAgent> {
    let _guard = runtime().enter();
    nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            ClusterAgent::spawn(
                store.clone(),
                ClusterOptions {
                    node_name: format!("node{i}"),
                    base: config(node, 0),
                    launch: Launch::Netns(node.path(), FibChoice::Kernel),
                    secrets: None,
                },
            )
        })
        .collect()
}

/// A vrouter-reflector in `node` (router id = its address) with `cluster_id`, its clients
/// the Nodes in `store`, routes into an in-memory FIB.
pub(crate) fn start_reflector(
    store: &Store,
    etcd: &Etcd,
    node: &Node,
    cluster_id: Ipv4Addr,
) -> Reflector {
    let cli = Cli {
        router_id: Some(node.ip().to_string()),
        cluster_id: Some(cluster_id.to_string()),
        etcd_endpoints: Some(etcd.endpoint()),
        ..Cli::default()
    };
    let config = resolve(cli, FileConfig::default()).unwrap();
    let launch = Launch::Netns(node.path(), FibChoice::Memory(MemoryFib::new()));
    runtime()
        .block_on(Reflector::start(&config, store.clone(), launch))
        .unwrap()
}

/// A raw BGP message (RFC 4271 §4.1): marker, length, `kind`, `body`.
pub(crate) fn raw_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// A raw OPEN from AS [`CLUSTER_AS`] with BGP identifier `id`, hold time 90 s, IPv4 unicast
/// and 4-octet AS capabilities.
pub(crate) fn raw_open(id: Ipv4Addr) -> Vec<u8> {
    let caps = [
        2, 6, 1, 4, 0, 1, 0, 1, // MP IPv4 unicast
        2, 6, 65, 4, 0, 0, 0xfc, 0, // 4-octet AS 64512
    ];
    let mut body = vec![4, 0xfc, 0, 0, 90];
    body.extend_from_slice(&id.octets());
    body.push(u8::try_from(caps.len()).unwrap());
    body.extend_from_slice(&caps);
    raw_message(1, &body)
}

/// Reads one raw message: (type, body); type 0 when the connection closed.
pub(crate) fn read_raw(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 19];
    if stream.read_exact(&mut header).is_err() {
        return (0, Vec::new());
    }
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut body = vec![0u8; len - 19];
    if stream.read_exact(&mut body).is_err() {
        return (0, Vec::new());
    }
    (header[18], body)
}
