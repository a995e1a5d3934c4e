//! Local workload endpoints: which WorkloadEndpoints live on this node, and what the
//! dataplane needs to know about each (host interface, addresses, MAC).

use datastore::resource::WorkloadEndpoint;
use ipnetwork::IpNetwork;
use policy::model::EndpointId;

use crate::ownership::{endpoint_id, host_veth_name};

/// A workload endpoint on this node, as the dataplane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Identity (namespace, WorkloadEndpoint name), as in the policy model.
    pub id: EndpointId,
    /// Host-side interface: `spec.interfaceName`, or the name the CNI plugin derives from
    /// the endpoint id when the field is empty.
    pub iface: String,
    /// Addresses, as networks with host bits cleared (normally `/32` and `/128`), sorted.
    pub nets: Vec<IpNetwork>,
    /// The workload-side MAC, if known.
    pub mac: Option<String>,
}

/// The policy-model identity of a WorkloadEndpoint.
pub(crate) fn endpoint_id_of(w: &WorkloadEndpoint) -> EndpointId {
    EndpointId::new(
        w.metadata
            .namespace
            .as_deref()
            .unwrap_or(datastore::resource::DEFAULT_NAMESPACE),
        w.metadata.name.clone(),
    )
}

/// The local view of `w` if it lives on `node`; `None` for remote endpoints. Addresses that
/// do not parse are skipped (the policy model reports them).
pub fn local_endpoint(node: &str, w: &WorkloadEndpoint) -> Option<LocalEndpoint> {
    if w.spec.node.as_deref() != Some(node) {
        return None;
    }
    let id = endpoint_id_of(w);
    let iface = w
        .spec
        .interface_name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| host_veth_name(&endpoint_id(&id.namespace, &id.name)));
    let mut nets: Vec<IpNetwork> = w
        .spec
        .ip_networks
        .iter()
        .filter_map(|text| text.parse::<IpNetwork>().ok())
        .filter_map(|net| IpNetwork::new(net.network(), net.prefix()).ok())
        .collect();
    nets.sort();
    nets.dedup();
    Some(LocalEndpoint {
        id,
        iface,
        nets,
        mac: w.spec.mac.clone(),
    })
}
