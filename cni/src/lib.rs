//! `vrouter-cni` (veth, routes, WorkloadEndpoint) and `vrouter-ipam` (per-node blocks with
//! affinity in etcd) CNI 1.0/1.1 plugins. The binaries are added by the CNI and IPAM issue.
