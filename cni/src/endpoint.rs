//! The `WorkloadEndpoint` the plugin writes for each attachment (Felix's input), keyed
//! `/vrouter/resources/workloadendpoints/<namespace>/<name>`.
//!
//! Contents: node, orchestrator, pod (or the container id as `workload`), container id,
//! interface (`endpoint`), `ipNetworks` (`/32`, `/128`), the host veth (`interfaceName`),
//! the pod's MAC, the namespace profile `kns.<namespace>` and the labels of
//! [`crate::netconf`] plus Calico's namespace and orchestrator labels.

use std::net::IpAddr;

use datastore::etcd::{DatastoreError, Store};
use datastore::keys::{resource_key, resource_prefix};
use datastore::resource::endpoint::WorkloadEndpointSpec;
use datastore::resource::{Kind, ObjectMeta, Resource, WorkloadEndpoint};

use crate::gateway::host_prefix;
use crate::netconf::{LABEL_NAMESPACE, LABEL_ORCHESTRATOR, NetConf, Workload};
use crate::spec::{CniError, code};

/// Maps a datastore failure to its CNI code (unreachable: try again later).
pub fn datastore_error(e: &DatastoreError, version: &str) -> CniError {
    let code = match e {
        DatastoreError::Unavailable { .. } | DatastoreError::Conflict { .. } => {
            code::TRY_AGAIN_LATER
        }
        _ => code::IO_FAILURE,
    };
    CniError::new(code, e.to_string()).in_version(version)
}

/// The endpoint for an attachment.
pub fn build(conf: &NetConf, workload: &Workload, ips: &[IpAddr], mac: &str) -> WorkloadEndpoint {
    let mut metadata = ObjectMeta::named(&workload.endpoint_name);
    metadata.namespace = Some(workload.namespace.clone());
    metadata.labels = conf.labels();
    metadata
        .labels
        .insert(LABEL_NAMESPACE.to_string(), workload.namespace.clone());
    metadata.labels.insert(
        LABEL_ORCHESTRATOR.to_string(),
        workload.orchestrator.to_string(),
    );
    let spec = WorkloadEndpointSpec {
        orchestrator: Some(workload.orchestrator.to_string()),
        workload: workload
            .pod
            .is_none()
            .then(|| workload.container_id.clone()),
        node: Some(workload.node.clone()),
        container_id: Some(workload.container_id.clone()),
        pod: workload.pod.clone(),
        endpoint: Some(workload.ifname.clone()),
        ip_networks: ips
            .iter()
            .map(|ip| format!("{ip}/{}", host_prefix(*ip)))
            .collect(),
        profiles: vec![format!("kns.{}", workload.namespace)],
        interface_name: Some(workload.host_ifname.clone()),
        mac: Some(mac.to_string()),
        ..WorkloadEndpointSpec::default()
    };
    WorkloadEndpoint { metadata, spec }
}

fn key_of(workload: &Workload) -> String {
    resource_key(
        Kind::WorkloadEndpoint.plural(),
        Some(&workload.namespace),
        &workload.endpoint_name,
    )
}

/// Writes the endpoint (validated first: an invalid label is code 7), replacing one left
/// by an earlier sandbox of the same pod.
pub async fn write(
    store: &Store,
    endpoint: WorkloadEndpoint,
    workload: &Workload,
    version: &str,
) -> Result<(), CniError> {
    let resource = Resource::WorkloadEndpoint(endpoint);
    resource.validate().map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("invalid WorkloadEndpoint: {e}"),
        )
        .in_version(version)
    })?;
    let key = key_of(workload);
    let value = resource.to_json().into_bytes();
    match store.create(&key, value.clone()).await {
        Ok(_) => Ok(()),
        Err(DatastoreError::AlreadyExists { .. }) => {
            let current = store
                .get(&key)
                .await
                .map_err(|e| datastore_error(&e, version))?;
            let result = match current {
                Some(kv) => store.update(&key, value, kv.mod_revision).await,
                None => store.create(&key, value).await,
            };
            result.map(|_| ()).map_err(|e| datastore_error(&e, version))
        }
        Err(e) => Err(datastore_error(&e, version)),
    }
}

/// Reads the endpoint of `workload`.
pub async fn read(
    store: &Store,
    workload: &Workload,
) -> Result<Option<WorkloadEndpoint>, DatastoreError> {
    let Some(kv) = store.get(&key_of(workload)).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&kv.value);
    Ok(match Resource::from_json(&text) {
        Ok(Resource::WorkloadEndpoint(w)) => Some(w),
        _ => None,
    })
}

/// Deletes the endpoint of `workload` if it belongs to this container (a newer sandbox of
/// the same pod keeps its own). Idempotent; returns whether it deleted.
pub async fn delete(store: &Store, workload: &Workload) -> Result<bool, DatastoreError> {
    let key = key_of(workload);
    let Some(kv) = store.get(&key).await? else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&kv.value);
    if let Ok(Resource::WorkloadEndpoint(w)) = Resource::from_json(&text)
        && w.spec
            .container_id
            .as_deref()
            .is_some_and(|c| c != workload.container_id)
    {
        return Ok(false);
    }
    match store.delete(&key, kv.mod_revision).await {
        Ok(_) | Err(DatastoreError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Every endpoint on `node`: `(namespace, endpoint)`.
pub async fn on_node(store: &Store, node: &str) -> Result<Vec<WorkloadEndpoint>, DatastoreError> {
    let listing = store
        .list(&resource_prefix(Kind::WorkloadEndpoint.plural()))
        .await?;
    Ok(listing
        .kvs
        .iter()
        .filter_map(
            |kv| match Resource::from_json(&String::from_utf8_lossy(&kv.value)) {
                Ok(Resource::WorkloadEndpoint(w)) if w.spec.node.as_deref() == Some(node) => {
                    Some(w)
                }
                _ => None,
            },
        )
        .collect())
}

/// Deletes an endpoint found by [`on_node`] (GC), if unchanged since.
pub async fn delete_listed(
    store: &Store,
    endpoint: &WorkloadEndpoint,
) -> Result<(), DatastoreError> {
    let key = resource_key(
        Kind::WorkloadEndpoint.plural(),
        endpoint.metadata.namespace.as_deref(),
        &endpoint.metadata.name,
    );
    if let Some(kv) = store.get(&key).await? {
        match store.delete(&key, kv.mod_revision).await {
            Ok(_) | Err(DatastoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
