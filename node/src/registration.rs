//! This node in the datastore: its `Node` resource and its liveness record.
//!
//! [`register`] creates or updates the Node, touching only the fields vrouterd owns —
//! `spec.bgp.ipv4Address` / `ipv6Address` (when known), `asNumber` and
//! `routeReflectorClusterID` (only when configured) — and never labels, annotations or any
//! other field an operator set. The write is a compare-and-swap on the revision read
//! (`resourceVersion`), re-read and retried when someone else wrote in between.
//!
//! [`Liveness`] keeps `/vrouter/status/<node>` alive under an etcd lease (TTL 30 s, renewed
//! every 10 s). When the lease is lost (etcd was unreachable longer than the TTL, or etcd
//! restarted) a new lease is granted and the record written again. Stopping it either leaves
//! the lease to expire (a restart) or revokes it (the node leaves on purpose); the Node
//! resource itself is never deleted here.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use datastore::etcd::{DatastoreError, Store};
use datastore::keys::status_key;
use datastore::resource::node::{NodeBgpSpec, NodeSpec};
use datastore::resource::numorstring::AsNumber;
use datastore::resource::{Kind, Node, ObjectMeta, Resource};
use datastore::resource_store::{ResourceError, ResourceStore, Verb};
use ipnetwork::IpNetwork;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// TTL of the liveness lease.
pub const LIVENESS_TTL: Duration = Duration::from_secs(30);
/// How many times a registration is re-planned after losing a race.
const RACE_RETRIES: usize = 10;

/// What vrouterd owns in its Node resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// The Node's name.
    pub node_name: String,
    /// `spec.bgp.ipv4Address`, when known.
    pub ipv4: Option<IpNetwork>,
    /// `spec.bgp.ipv6Address`, when known.
    pub ipv6: Option<IpNetwork>,
    /// `spec.bgp.asNumber`, when configured.
    pub asn: Option<u32>,
    /// `spec.bgp.routeReflectorClusterID`, when configured.
    pub rr_cluster_id: Option<Ipv4Addr>,
}

/// What [`register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The Node did not exist and was created.
    Created,
    /// Owned fields differed and were updated.
    Updated,
    /// Everything was already as wanted: nothing written.
    Unchanged,
}

/// Errors registering the node.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The datastore refused or failed the write.
    #[error("registering Node {node}")]
    Resource {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: ResourceError,
    },
    /// Other writers kept changing the Node.
    #[error("registering Node {node}: it kept changing concurrently")]
    Contended {
        /// The node.
        node: String,
    },
}

impl RegistrationError {
    /// True when etcd could not be reached (worth retrying later).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            RegistrationError::Resource {
                source: ResourceError::Datastore(DatastoreError::Unavailable { .. }),
                ..
            }
        )
    }
}

/// Sets the owned fields of `node`; true if anything changed. Pure.
pub fn apply_owned(node: &mut Node, registration: &Registration) -> bool {
    let before = node.spec.bgp.clone();
    let mut bgp = node.spec.bgp.clone().unwrap_or_default();
    if let Some(v4) = registration.ipv4 {
        bgp.ipv4_address = Some(v4.to_string());
    }
    if let Some(v6) = registration.ipv6 {
        bgp.ipv6_address = Some(v6.to_string());
    }
    if let Some(asn) = registration.asn
        && bgp.as_number.as_ref().map(AsNumber::get) != Some(asn)
    {
        bgp.as_number = Some(AsNumber::new(asn));
    }
    if let Some(id) = registration.rr_cluster_id {
        bgp.route_reflector_cluster_id = Some(id.to_string());
    }
    let after = (bgp != NodeBgpSpec::default()).then_some(bgp);
    node.spec.bgp = after;
    node.spec.bgp != before
}

/// Creates or updates this node's Node resource (owned fields only, compare-and-swap).
pub async fn register(
    store: &ResourceStore,
    registration: &Registration,
) -> Result<Registered, RegistrationError> {
    let node_name = &registration.node_name;
    let error = |source| RegistrationError::Resource {
        node: node_name.clone(),
        source,
    };
    for _ in 0..RACE_RETRIES {
        let current = store
            .get(Kind::Node, None, node_name)
            .await
            .map_err(error)?;
        let (verb, outcome, node) = match current {
            Some(Resource::Node(mut node)) => {
                if !apply_owned(&mut node, registration) {
                    return Ok(Registered::Unchanged);
                }
                // resourceVersion (filled in by get) makes the replace a compare-and-swap.
                (Verb::Replace, Registered::Updated, node)
            }
            Some(other) => {
                // The key holds something that is not a Node: refuse to overwrite it.
                return Err(error(ResourceError::Undecodable {
                    key: datastore::resource_store::key_of(&other),
                    message: "not a Node".to_string(),
                }));
            }
            None => {
                let mut node = Node {
                    metadata: ObjectMeta {
                        name: node_name.clone(),
                        ..ObjectMeta::default()
                    },
                    spec: NodeSpec::default(),
                    status: None,
                };
                apply_owned(&mut node, registration);
                (Verb::Create, Registered::Created, node)
            }
        };
        match store.write(verb, &[Resource::Node(node)]).await {
            Ok(_) => return Ok(outcome),
            Err(
                ResourceError::StaleVersion { .. }
                | ResourceError::AlreadyExists { .. }
                | ResourceError::NotFound { .. }
                | ResourceError::Contended,
            ) => {
                debug!(node = %node_name, "Node changed while registering; re-reading");
                continue;
            }
            Err(other) => return Err(error(other)),
        }
    }
    Err(RegistrationError::Contended {
        node: node_name.clone(),
    })
}

/// The value of `/vrouter/status/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivenessRecord {
    /// vrouterd's version.
    pub version: String,
    /// Start time, RFC 3339.
    pub started: String,
    /// Process id.
    pub pid: u32,
    /// The node's IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// The node's IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// Keeps the liveness record alive in a background task.
#[derive(Debug)]
pub struct Liveness {
    record: watch::Sender<LivenessRecord>,
    stop: Option<oneshot::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Liveness {
    /// Starts keeping `/vrouter/status/<node>` alive on the current runtime.
    pub fn spawn(store: Store, node: &str, record: LivenessRecord, ttl: Duration) -> Liveness {
        let (record_tx, record_rx) = watch::channel(record);
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(keep_alive(store, status_key(node), record_rx, stop_rx, ttl));
        Liveness {
            record: record_tx,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Replaces the record (addresses changed on reload); it is written at once.
    pub fn update(&self, record: LivenessRecord) {
        self.record.send_replace(record);
    }

    /// Stops renewing. `revoke`: delete the record now (the lease is revoked); otherwise it
    /// expires after the TTL.
    pub async fn stop(mut self, revoke: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(revoke);
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn keep_alive(
    store: Store,
    key: String,
    mut record: watch::Receiver<LivenessRecord>,
    mut stop: oneshot::Receiver<bool>,
    ttl: Duration,
) {
    let renew = ttl / 3;
    let mut lease: Option<i64> = None;
    let mut backoff = Duration::from_millis(200);
    let mut renewed = Instant::now();
    loop {
        let step = async {
            match lease {
                None => {
                    let id = store.grant_lease(ttl).await?;
                    let value =
                        serde_json::to_vec(&*record.borrow_and_update()).unwrap_or_default();
                    store.put_with_lease(&key, value, id).await?;
                    info!(%key, lease = id, ttl_s = ttl.as_secs(), "liveness record written");
                    Ok::<_, DatastoreError>(Some(id))
                }
                Some(id) => {
                    tokio::select! {
                        () = tokio::time::sleep(renew) => {
                            let remaining = match store.keep_alive(id).await {
                                Ok(remaining) => remaining,
                                // etcd forgot the lease (revoked, or expired during an outage).
                                Err(DatastoreError::Etcd(message)) if message.contains("lease not found") => 0,
                                Err(other) => return Err(other),
                            };
                            if remaining <= 0 {
                                warn!(%key, lease = id, "liveness lease lost; granting a new one");
                                return Ok(None);
                            }
                            Ok(Some(id))
                        }
                        changed = record.changed() => {
                            if changed.is_ok() {
                                let value = serde_json::to_vec(&*record.borrow_and_update())
                                    .unwrap_or_default();
                                store.put_with_lease(&key, value, id).await?;
                            }
                            Ok(Some(id))
                        }
                    }
                }
            }
        };
        tokio::select! {
            revoke = &mut stop => {
                if revoke.unwrap_or(false) && let Some(id) = lease {
                    match store.revoke_lease(id).await {
                        Ok(()) => info!(%key, "liveness lease revoked"),
                        Err(error) => warn!(%key, %error, "cannot revoke the liveness lease"),
                    }
                }
                return;
            }
            result = step => match result {
                Ok(next) => {
                    lease = next;
                    renewed = Instant::now();
                    backoff = Duration::from_millis(200);
                }
                Err(error) => {
                    // Unrenewed for longer than the TTL: the lease is gone whatever etcd says.
                    if lease.is_some() && renewed.elapsed() > ttl {
                        lease = None;
                    }
                    warn!(%key, %error, ?backoff, "liveness update failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn registration() -> Registration {
        Registration {
            node_name: "node-1".into(),
            ipv4: Some("10.0.0.5/24".parse().unwrap()),
            ipv6: None,
            asn: None,
            rr_cluster_id: None,
        }
    }

    #[test]
    fn owned_fields_only_and_unchanged_is_detected() {
        let mut node = Node {
            metadata: ObjectMeta {
                name: "node-1".into(),
                labels: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
                ..ObjectMeta::default()
            },
            spec: NodeSpec {
                bgp: Some(NodeBgpSpec {
                    as_number: Some(AsNumber::new(64600)),
                    ipv4_ipip_tunnel_addr: Some("10.65.0.1".into()),
                    ..NodeBgpSpec::default()
                }),
                ..NodeSpec::default()
            },
            status: None,
        };
        assert!(apply_owned(&mut node, &registration()));
        let bgp = node.spec.bgp.clone().unwrap();
        assert_eq!(bgp.ipv4_address.as_deref(), Some("10.0.0.5/24"));
        assert_eq!(
            bgp.as_number.map(|a| a.get()),
            Some(64600),
            "AS not given: kept"
        );
        assert_eq!(bgp.ipv4_ipip_tunnel_addr.as_deref(), Some("10.65.0.1"));
        assert_eq!(node.metadata.labels.len(), 1);
        assert!(
            !apply_owned(&mut node, &registration()),
            "second time: no change"
        );
        let with_asn = Registration {
            asn: Some(65000),
            rr_cluster_id: Some(Ipv4Addr::new(1, 0, 0, 1)),
            ..registration()
        };
        assert!(apply_owned(&mut node, &with_asn));
        let bgp = node.spec.bgp.unwrap();
        assert_eq!(bgp.as_number.map(|a| a.get()), Some(65000));
        assert_eq!(bgp.route_reflector_cluster_id.as_deref(), Some("1.0.0.1"));
    }

    #[test]
    fn nothing_known_leaves_no_empty_bgp_section() {
        let mut node = Node {
            metadata: ObjectMeta::default(),
            spec: NodeSpec::default(),
            status: None,
        };
        let nothing = Registration {
            ipv4: None,
            ..registration()
        };
        assert!(!apply_owned(&mut node, &nothing));
        assert_eq!(node.spec.bgp, None);
    }
}
