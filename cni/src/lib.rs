//! `vrouter-cni` (veth, routes, WorkloadEndpoint) and `vrouter-ipam` (per-node blocks with
//! affinity in etcd): CNI 1.0.0/1.1.0 plugins. The binaries in `src/bin/` only call
//! [`invocation::main`]; everything else is here so it can be tested.
//!
//! | module | owns |
//! |---|---|
//! | [`spec`] | the CNI protocol: commands, environment, results, error codes, versions |
//! | [`netconf`] | the network configuration and the workload identity derived from it |
//! | [`ipam_plugin`] | `vrouter-ipam` over `datastore::ipam` |
//! | [`plugin`] | `vrouter-cni`: ADD/DEL/CHECK/STATUS/GC with undo on failure |
//! | [`delegate`] | running the IPAM plugin through `CNI_PATH` |
//! | [`dataplane`] | veth, addresses and routes via rtnetlink (pod side through `setns`) |
//! | [`gateway`] | the link-local gateway scheme (169.254.1.1, `ee:ee:ee:ee:ee:ee`) |
//! | [`mtu`] | the pod interface MTU: configured, or the underlay's (minus VXLAN overhead) |
//! | [`endpoint`] | the WorkloadEndpoint written to etcd |
//! | [`invocation`] | process glue: env + stdin in, JSON + exit status out |

pub mod dataplane;
pub mod delegate;
pub mod endpoint;
pub mod gateway;
pub mod invocation;
pub mod ipam_plugin;
pub mod mtu;
pub mod netconf;
pub mod plugin;
pub mod spec;
