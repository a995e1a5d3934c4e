//! IP address management: per-node blocks with affinity, stored in etcd (design.md §4,
//! reference/calico.md §2.2).
//!
//! - [`block`]: the pure allocation core, [`AllocationBlock`] (ordinals, attributes, sequence
//!   numbers); no I/O.
//! - [`record`]: the other stored records, [`BlockAffinity`] (written confirmed; `pending`
//!   only from older versions) and [`IpamHandle`] (which blocks hold a handle's addresses).
//! - [`client`]: [`Ipam`], the etcd-backed driver: allocate, borrow, release. Every write is
//!   a compare-and-swap through [`crate::etcd::Store::commit`], retried on conflict; a block
//!   and its handle change in one transaction.
//! - [`claim`]: claiming a block for a node (block and confirmed affinity in one
//!   transaction; why that replaces Calico's two-phase claim), and settling the pending
//!   affinities older versions left.
//! - [`check`]: [`check()`], the consistency audit `vrctl ipam check` and the tests run.
//! - [`workload`]: the names shared by the CNI plugin and Felix: WorkloadEndpoint names,
//!   endpoint ids and the host-side veth name.
//!
//! Keys come from [`crate::keys`]; values are JSON.

pub mod block;
pub mod check;
pub mod claim;
pub mod client;
pub mod record;
pub mod workload;

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::etcd::DatastoreError;

pub use block::{AllocationAttribute, AllocationBlock};
pub use check::{CheckReport, Finding, check};
pub use client::{AssignArgs, AssignSnapshot, Assigned, Ipam, IpamSettings, PoolFilter};
pub use record::{AffinityState, BlockAffinity, IpamHandle};
pub use workload::{endpoint_id, host_veth_name, workload_endpoint_name};

/// Attribute key: node that requested the address.
pub const ATTR_NODE: &str = "node";
/// Attribute key: pod namespace.
pub const ATTR_NAMESPACE: &str = "namespace";
/// Attribute key: pod name.
pub const ATTR_POD: &str = "pod";
/// Attribute key: WorkloadEndpoint name (in [`ATTR_NAMESPACE`]) the address belongs to.
pub const ATTR_ENDPOINT: &str = "endpoint";
/// Attribute key: container id.
pub const ATTR_CONTAINER_ID: &str = "containerID";
/// Attribute key: what a non-workload address is for (Calico's `type`).
pub const ATTR_TYPE: &str = "type";
/// [`ATTR_TYPE`] of a node's VXLAN tunnel address (Calico's value).
pub const TYPE_VXLAN_TUNNEL: &str = "vxlanTunnelAddress";

/// The IPAM handle of node `node`'s IPv4 VXLAN tunnel address (Calico's
/// `vxlan-tunnel-addr-<node>`).
pub fn vxlan_tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// Address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of a network.
    pub fn of(net: &IpNetwork) -> Family {
        if net.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Errors from IPAM.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// etcd failed or refused a write.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
    /// No usable pool: none exists for the family, or every one is disabled or filtered out.
    #[error("no usable {family} IP pool (none exists, or all are disabled or not for this node)")]
    NoPools {
        /// The family asked for.
        family: Family,
    },
    /// The pools are full: no affine block has room, no block can be claimed, and no address
    /// could be borrowed.
    #[error(
        "{family} pools are exhausted: {assigned} of {requested} addresses available to node {node}"
    )]
    Exhausted {
        /// The family asked for.
        family: Family,
        /// Addresses asked for.
        requested: usize,
        /// Addresses that were free (already released again).
        assigned: usize,
        /// The node.
        node: String,
    },
    /// Writes kept conflicting with other writers.
    #[error("gave up {what} after {attempts} conflicting attempts")]
    TooManyRetries {
        /// What was being done.
        what: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A stored value is not what vrouter writes.
    #[error("cannot decode stored {what}: {reason}")]
    Decode {
        /// What was being decoded (`block`, `affinity`, `handle`, `IPPool`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A block would be too big to store as one value.
    #[error("block {cidr} is too large")]
    BlockTooLarge {
        /// The block.
        cidr: IpNetwork,
    },
    /// An address is not in the block it was looked up in.
    #[error("{ip} is not in block {cidr}")]
    NotInBlock {
        /// The address.
        ip: IpAddr,
        /// The block.
        cidr: IpNetwork,
    },
    /// An explicitly requested address is taken.
    #[error("{ip} is already allocated")]
    AlreadyAllocated {
        /// The address.
        ip: IpAddr,
    },
    /// A release named an allocation that has since been released and handed out again.
    #[error("{ip} was reallocated (sequence number {found}, release expected {expected})")]
    BadSequenceNumber {
        /// The address.
        ip: IpAddr,
        /// The sequence number the releaser expected.
        expected: u64,
        /// The one stored.
        found: u64,
    },
}

impl IpamError {
    /// True when the caller may succeed later without changing anything (pool exhausted, or
    /// contention): CNI's "try again later" (code 11).
    pub fn is_try_again(&self) -> bool {
        matches!(
            self,
            IpamError::Exhausted { .. } | IpamError::TooManyRetries { .. }
        )
    }
}
