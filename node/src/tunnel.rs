//! This node's VXLAN tunnel endpoint in the datastore: Calico's calico-node "allocate tunnel
//! addrs" loop. vrouterd (not the agent) owns it: the agent only reads the datastore, and this
//! is a write of the node's own identity, like its registration.
//!
//! While an enabled IPv4 IPPool with `vxlanMode` `Always` or `CrossSubnet` allows `Tunnel`
//! use and selects this node, the node holds one address from such a pool under the IPAM
//! handle `vxlan-tunnel-addr-<node>` and publishes it with its device MAC on its Node
//! (`spec.ipv4VXLANTunnelAddr`, `spec.vxlanTunnelMACAddr`; the MAC is derived from the node
//! name, so a restart changes nothing). When no such pool is left, the address is released and
//! both fields are cleared; the agent then removes the device. An address in a pool that is no
//! longer usable is replaced.
//!
//! [`next_step`] is the pure decision; [`TunnelAllocator`] runs it against etcd whenever pools
//! or this Node change (and every [`RECHECK`]), one step at a time until nothing is left to
//! do. Every write is a compare-and-swap (IPAM's, and the Node's `resourceVersion`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use datastore::etcd::Store;
use datastore::ipam::workload::vxlan_tunnel_mac;
use datastore::ipam::{
    ATTR_NODE, ATTR_TYPE, AssignArgs, Ipam, TYPE_VXLAN_TUNNEL, vxlan_tunnel_handle,
};
use datastore::keys::{resource_key, resource_prefix};
use datastore::resource::ippool::AllowedUse;
use datastore::resource::{IpPool, Kind, Resource};
use datastore::resource_store::{ResourceStore, Verb};
use datastore::syncer::{SyncEvent, Syncer};
use ipnetwork::IpNetwork;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How often the state is checked without a trigger (a handle released by hand, a failure).
pub const RECHECK: Duration = Duration::from_secs(30);
/// Pause after a failed step.
const RETRY: Duration = Duration::from_secs(2);
/// Most steps per reconciliation (each one is a CAS write; a race costs a step).
const MAX_STEPS: usize = 8;

/// What the datastore says now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelState {
    /// CIDRs of the pools a tunnel address may come from (IPv4, VXLAN, enabled, `Tunnel`
    /// use, selecting this node).
    pub usable_pools: Vec<IpNetwork>,
    /// IPv4 addresses held by the node's handle.
    pub held: Vec<Ipv4Addr>,
    /// The Node's `spec.ipv4VXLANTunnelAddr`.
    pub node_addr: Option<String>,
    /// The Node's `spec.vxlanTunnelMACAddr`.
    pub node_mac: Option<String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Done,
    /// Release every address of the handle.
    Release,
    /// Allocate one address from these pools.
    Allocate(Vec<IpNetwork>),
    /// Set (`Some`) or clear (`None`) the Node's tunnel address and MAC.
    WriteNode(Option<(Ipv4Addr, String)>),
}

/// The next step towards the wanted state. Pure.
pub fn next_step(state: &TunnelState, mac: &str) -> Step {
    if state.usable_pools.is_empty() {
        if !state.held.is_empty() {
            return Step::Release;
        }
        if state.node_addr.is_some() || state.node_mac.is_some() {
            return Step::WriteNode(None);
        }
        return Step::Done;
    }
    let in_pool = |ip: &Ipv4Addr| {
        state
            .usable_pools
            .iter()
            .any(|p| p.contains(IpAddr::V4(*ip)))
    };
    match state.held.as_slice() {
        [] => Step::Allocate(state.usable_pools.clone()),
        [one] if in_pool(one) => {
            let addr = one.to_string();
            if state.node_addr.as_deref() != Some(addr.as_str())
                || state.node_mac.as_deref() != Some(mac)
            {
                Step::WriteNode(Some((*one, mac.to_string())))
            } else {
                Step::Done
            }
        }
        // In a pool that no longer qualifies, or more than one: start over.
        _ => Step::Release,
    }
}

/// Whether `pool` may hold `node`'s tunnel address.
fn usable(pool: &IpPool, labels: &BTreeMap<String, String>) -> bool {
    let selected = match pool.spec.node_selector.as_deref() {
        None | Some("") => true,
        Some(text) => policy::Selector::parse(text).is_ok_and(|s| s.matches(labels)),
    };
    datastore::ipam::workload::pool_uses_vxlan(pool)
        && !pool.spec.is_disabled()
        && pool
            .spec
            .effective_allowed_uses()
            .contains(&AllowedUse::Tunnel)
        && matches!(pool.spec.network(), Some(IpNetwork::V4(_)))
        && selected
}

/// Errors of one reconciliation step.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// IPAM failed.
    #[error(transparent)]
    Ipam(#[from] datastore::ipam::IpamError),
    /// Reading or writing the Node failed.
    #[error(transparent)]
    Resource(#[from] datastore::resource_store::ResourceError),
    /// Steps kept being needed (other writers racing).
    #[error("tunnel address not settled after {MAX_STEPS} steps")]
    Unsettled,
}

/// Reads the current state.
async fn read(
    ipam: &Ipam,
    resources: &ResourceStore,
    node: &str,
) -> Result<TunnelState, TunnelError> {
    let me = match resources.get(Kind::Node, None, node).await? {
        Some(Resource::Node(n)) => Some(n),
        _ => None,
    };
    let labels = me
        .as_ref()
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let usable_pools = ipam
        .pools()
        .await?
        .iter()
        .filter(|p| usable(p, &labels))
        .filter_map(|p| p.spec.network())
        .collect();
    let held = ipam
        .ips_by_handle(&vxlan_tunnel_handle(node))
        .await?
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    Ok(TunnelState {
        usable_pools,
        held,
        node_addr: me
            .as_ref()
            .and_then(|n| n.spec.ipv4_vxlan_tunnel_addr.clone()),
        node_mac: me.and_then(|n| n.spec.vxlan_tunnel_mac_addr),
    })
}

/// Runs steps until the datastore is as wanted.
pub async fn reconcile(store: &Store, node: &str) -> Result<(), TunnelError> {
    let ipam = Ipam::new(store.clone());
    let resources = ResourceStore::new(store.clone());
    let mac = vxlan_tunnel_mac(node);
    let handle = vxlan_tunnel_handle(node);
    for _ in 0..MAX_STEPS {
        let state = read(&ipam, &resources, node).await?;
        match next_step(&state, &mac) {
            Step::Done => return Ok(()),
            Step::Release => {
                let released = ipam.release_by_handle(&handle).await?;
                info!(node, ?released, "VXLAN tunnel address released");
            }
            Step::Allocate(pools) => {
                let args = AssignArgs {
                    node: node.to_string(),
                    handle: handle.clone(),
                    attrs: BTreeMap::from([
                        (ATTR_NODE.to_string(), node.to_string()),
                        (ATTR_TYPE.to_string(), TYPE_VXLAN_TUNNEL.to_string()),
                    ]),
                    num_v4: 1,
                    pools,
                    ..AssignArgs::default()
                };
                let got = ipam.auto_assign_for(&args, AllowedUse::Tunnel).await?;
                info!(node, address = ?got.ips(), "VXLAN tunnel address allocated");
            }
            Step::WriteNode(vtep) => write_node(&resources, node, vtep.as_ref()).await?,
        }
    }
    Err(TunnelError::Unsettled)
}

/// Sets or clears the Node's VTEP fields (compare-and-swap on its `resourceVersion`; a lost
/// race is re-read by the next step).
async fn write_node(
    resources: &ResourceStore,
    node: &str,
    vtep: Option<&(Ipv4Addr, String)>,
) -> Result<(), TunnelError> {
    let Some(Resource::Node(mut n)) = resources.get(Kind::Node, None, node).await? else {
        // Registration creates the Node; nothing to publish on until then.
        return Ok(());
    };
    n.spec.ipv4_vxlan_tunnel_addr = vtep.map(|(a, _)| a.to_string());
    n.spec.vxlan_tunnel_mac_addr = vtep.map(|(_, m)| m.clone());
    match resources.write(Verb::Replace, &[Resource::Node(n)]).await {
        Ok(_) => {
            info!(node, vtep = ?vtep, "Node VXLAN tunnel fields written");
            Ok(())
        }
        Err(datastore::resource_store::ResourceError::StaleVersion { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The allocation loop, on the current tokio runtime.
#[derive(Debug)]
pub struct TunnelAllocator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TunnelAllocator {
    /// Starts the loop for node `node`.
    pub fn spawn(store: Store, node: String) -> TunnelAllocator {
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(store, node, stop_rx));
        TunnelAllocator {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the loop (the address stays allocated: a restart keeps it).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TunnelAllocator {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run(store: Store, node: String, mut stop: oneshot::Receiver<()>) {
    let mut pools = Syncer::spawn_raw(store.clone(), resource_prefix(Kind::IpPool.plural()));
    // A prefix: `nodes/<node>` also matches longer names; an extra check is harmless.
    let mut me = Syncer::spawn_raw(
        store.clone(),
        resource_key(Kind::Node.plural(), None, &node),
    );
    let mut timer = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = pools.next() => if event.is_none() { return },
            event = me.next() => if event.is_none() { return },
            _ = timer.tick() => {}
        }
        // Drain what else is queued: one reconciliation per burst.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), async {
            tokio::select! {
                e = pools.next() => e.map(drop_event),
                e = me.next() => e.map(drop_event),
            }
        })
        .await
        {}
        if let Err(error) = reconcile(&store, &node).await {
            warn!(%node, %error, "VXLAN tunnel address not settled; retrying");
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(RETRY) => {}
            }
            timer.reset_immediately();
        }
    }
}

fn drop_event(_: SyncEvent<Vec<u8>>) {}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: &str = "02:11:22:33:44:55";

    fn pools() -> Vec<IpNetwork> {
        vec!["10.244.0.0/16".parse().unwrap()]
    }

    #[test]
    fn allocates_publishes_and_then_rests() {
        let mut s = TunnelState {
            usable_pools: pools(),
            ..TunnelState::default()
        };
        assert_eq!(next_step(&s, MAC), Step::Allocate(pools()));
        s.held = vec!["10.244.3.1".parse().unwrap()];
        assert_eq!(
            next_step(&s, MAC),
            Step::WriteNode(Some(("10.244.3.1".parse().unwrap(), MAC.to_string())))
        );
        s.node_addr = Some("10.244.3.1".into());
        s.node_mac = Some(MAC.into());
        assert_eq!(next_step(&s, MAC), Step::Done);
    }

    #[test]
    fn releases_and_clears_when_no_pool_wants_vxlan() {
        let mut s = TunnelState {
            usable_pools: vec![],
            held: vec!["10.244.3.1".parse().unwrap()],
            node_addr: Some("10.244.3.1".into()),
            node_mac: Some(MAC.into()),
        };
        assert_eq!(next_step(&s, MAC), Step::Release);
        s.held.clear();
        assert_eq!(next_step(&s, MAC), Step::WriteNode(None));
        s.node_addr = None;
        s.node_mac = None;
        assert_eq!(next_step(&s, MAC), Step::Done);
    }

    #[test]
    fn an_address_outside_the_usable_pools_is_replaced() {
        let s = TunnelState {
            usable_pools: pools(),
            held: vec!["10.99.0.1".parse().unwrap()],
            ..TunnelState::default()
        };
        assert_eq!(next_step(&s, MAC), Step::Release);
        let two = TunnelState {
            usable_pools: pools(),
            held: vec!["10.244.0.1".parse().unwrap(), "10.244.0.2".parse().unwrap()],
            ..TunnelState::default()
        };
        assert_eq!(next_step(&two, MAC), Step::Release);
    }

    #[test]
    fn pools_qualify_by_mode_state_use_family_and_selector() {
        let pool =
            |yaml: &str| {
                match datastore::resource::document::parse_documents(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {yaml}\n"
        ))
        .unwrap()
        .remove(0)
        {
            Resource::IpPool(p) => p,
            other => panic!("{other:?}"),
        }
            };
        let labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        assert!(usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Always}"),
            &labels
        ));
        assert!(usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: CrossSubnet}"),
            &labels
        ));
        assert!(!usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Never}"),
            &labels
        ));
        assert!(!usable(&pool("{cidr: 10.0.0.0/16}"), &labels));
        assert!(!usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Always, disabled: true}"),
            &labels
        ));
        assert!(!usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Always, allowedUses: [Workload]}"),
            &labels
        ));
        assert!(!usable(
            &pool("{cidr: \"fd00::/48\", vxlanMode: Always}"),
            &labels
        ));
        assert!(usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Always, nodeSelector: \"zone == 'a'\"}"),
            &labels
        ));
        assert!(!usable(
            &pool("{cidr: 10.0.0.0/16, vxlanMode: Always, nodeSelector: \"zone == 'b'\"}"),
            &labels
        ));
    }
}
