//! [`check()`]: the IPAM consistency audit (`vrctl ipam check`, and the concurrency tests).
//!
//! It reads blocks, affinities, handles, IPPools, Nodes and WorkloadEndpoints at one moment
//! (separate listings, so a check that runs while pods start may see an ADD half-done and
//! report its address as leaked) and reports:
//! - **inconsistencies**, which vrouter's own writes must never produce: an address in two
//!   blocks (overlapping blocks), a block whose bookkeeping is broken, a block affine to a
//!   node without the matching confirmed affinity (or the reverse), a handle record whose
//!   counts disagree with the blocks;
//! - **leaks and orphans**, which follow from the world changing under IPAM: addresses whose
//!   WorkloadEndpoint no longer exists, blocks affine to a node that no longer exists, and
//!   pending affinities left by a crashed claim.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::block::AllocationBlock;
use super::client::decode_resource;
use super::record::{AffinityState, BlockAffinity, IpamHandle};
use super::{ATTR_ENDPOINT, ATTR_NAMESPACE, IpamError};
use crate::etcd::Store;
use crate::keys::{IPAM_AFFINITY, IPAM_BLOCKS, IPAM_HANDLES, parse_cidr_segment, resource_prefix};
use crate::resource::{Kind, Resource};

/// One thing [`check()`] found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// The same address is allocatable in two blocks.
    OverlappingBlocks {
        /// One block.
        a: IpNetwork,
        /// The other.
        b: IpNetwork,
    },
    /// A block's own bookkeeping is broken.
    BrokenBlock {
        /// The block.
        block: IpNetwork,
        /// What is wrong.
        problem: String,
    },
    /// A stored value cannot be decoded.
    Undecodable {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A block is affine to a node that has no confirmed affinity for it.
    MissingAffinity {
        /// The block.
        block: IpNetwork,
        /// The node in the block.
        node: String,
    },
    /// A confirmed affinity points at a block that is missing or affine elsewhere.
    DanglingAffinity {
        /// The node.
        node: String,
        /// The block.
        block: IpNetwork,
    },
    /// A handle record's count for a block differs from the block's allocations.
    HandleMismatch {
        /// The handle.
        handle: String,
        /// The block.
        block: IpNetwork,
        /// Count in the handle record.
        recorded: u32,
        /// Addresses the block holds for the handle.
        actual: u32,
    },
    /// An address is allocated to an endpoint that no longer exists (or no longer has it).
    LeakedAddress {
        /// The address.
        ip: IpAddr,
        /// Its handle.
        handle: Option<String>,
        /// `namespace/name` of the vanished WorkloadEndpoint.
        endpoint: String,
    },
    /// A block is affine to a node that no longer exists.
    OrphanedBlock {
        /// The block.
        block: IpNetwork,
        /// The vanished node.
        node: String,
        /// Addresses still allocated in it.
        in_use: usize,
    },
    /// A pending affinity whose claim never completed.
    StalePendingAffinity {
        /// The node.
        node: String,
        /// The block.
        block: IpNetwork,
    },
}

impl Finding {
    /// True for findings vrouter's own writes must never produce (as opposed to leaks and
    /// orphans that follow from endpoints or nodes disappearing).
    pub fn is_inconsistency(&self) -> bool {
        !matches!(
            self,
            Finding::LeakedAddress { .. }
                | Finding::OrphanedBlock { .. }
                | Finding::StalePendingAffinity { .. }
        )
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::OverlappingBlocks { a, b } => write!(f, "blocks {a} and {b} overlap"),
            Finding::BrokenBlock { block, problem } => write!(f, "block {block}: {problem}"),
            Finding::Undecodable { key, reason } => write!(f, "{key}: {reason}"),
            Finding::MissingAffinity { block, node } => write!(
                f,
                "block {block} is affine to {node} but {node} has no confirmed affinity for it"
            ),
            Finding::DanglingAffinity { node, block } => write!(
                f,
                "affinity of {node} points at block {block}, which is missing or not affine to it"
            ),
            Finding::HandleMismatch {
                handle,
                block,
                recorded,
                actual,
            } => write!(
                f,
                "handle {handle} records {recorded} addresses in {block}, the block holds {actual}"
            ),
            Finding::LeakedAddress {
                ip,
                handle,
                endpoint,
            } => write!(
                f,
                "{ip} (handle {}) belongs to WorkloadEndpoint {endpoint}, which does not exist",
                handle.as_deref().unwrap_or("-")
            ),
            Finding::OrphanedBlock {
                block,
                node,
                in_use,
            } => write!(
                f,
                "block {block} is affine to node {node}, which does not exist ({in_use} addresses in use)"
            ),
            Finding::StalePendingAffinity { node, block } => write!(
                f,
                "pending affinity of {node} for block {block} never completed"
            ),
        }
    }
}

/// What [`check()`] saw and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blocks examined.
    pub blocks: usize,
    /// Addresses allocated across all blocks.
    pub allocated: usize,
    /// Affinities examined.
    pub affinities: usize,
    /// Handles examined.
    pub handles: usize,
    /// Findings, sorted.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Findings that are inconsistencies (see [`Finding::is_inconsistency`]).
    pub fn inconsistencies(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.is_inconsistency())
            .collect()
    }

    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checked {} blocks ({} addresses allocated), {} affinities, {} handles",
            self.blocks, self.allocated, self.affinities, self.handles
        )?;
        if self.findings.is_empty() {
            return writeln!(f, "no problems found");
        }
        for finding in &self.findings {
            writeln!(f, "- {finding}")?;
        }
        Ok(())
    }
}

/// Audits the IPAM state in `store` (see the module documentation).
pub async fn check(store: &Store) -> Result<CheckReport, IpamError> {
    let mut report = CheckReport::default();
    let mut findings = Vec::new();

    let mut blocks: BTreeMap<IpNetwork, AllocationBlock> = BTreeMap::new();
    for kv in store.list(IPAM_BLOCKS).await?.kvs {
        match AllocationBlock::from_json(&kv.value) {
            Ok(block) => {
                blocks.insert(block.cidr, block);
            }
            Err(e) => findings.push(Finding::Undecodable {
                key: kv.key,
                reason: e.to_string(),
            }),
        }
    }
    let mut affinities: BTreeMap<(String, IpNetwork), AffinityState> = BTreeMap::new();
    for kv in store.list(IPAM_AFFINITY).await?.kvs {
        let rest = kv.key.strip_prefix(IPAM_AFFINITY).unwrap_or(&kv.key);
        let parsed = rest
            .rsplit_once('/')
            .and_then(|(node, seg)| Some((node.to_string(), parse_cidr_segment(seg)?)));
        match (parsed, BlockAffinity::from_json(&kv.value)) {
            (Some(id), Ok(affinity)) => {
                affinities.insert(id, affinity.state);
            }
            (None, _) => findings.push(Finding::Undecodable {
                key: kv.key,
                reason: "not an affinity key".to_string(),
            }),
            (_, Err(e)) => findings.push(Finding::Undecodable {
                key: kv.key,
                reason: e.to_string(),
            }),
        }
    }
    let mut handles: BTreeMap<String, IpamHandle> = BTreeMap::new();
    for kv in store.list(IPAM_HANDLES).await?.kvs {
        match IpamHandle::from_json(&kv.value) {
            Ok(h) => {
                handles.insert(h.handle_id.clone(), h);
            }
            Err(e) => findings.push(Finding::Undecodable {
                key: kv.key,
                reason: e.to_string(),
            }),
        }
    }
    let nodes: BTreeSet<String> = resource_names(store, Kind::Node).await?;
    let mut endpoints: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for kv in store
        .list(&resource_prefix(Kind::WorkloadEndpoint.plural()))
        .await?
        .kvs
    {
        if let Ok(Resource::WorkloadEndpoint(wep)) = decode_resource(&kv) {
            let ns = wep.metadata.namespace.clone().unwrap_or_default();
            let ips = wep
                .spec
                .ip_networks
                .iter()
                .filter_map(|n| n.parse::<IpNetwork>().ok())
                .map(|n| n.ip())
                .collect();
            endpoints.insert(format!("{ns}/{}", wep.metadata.name), ips);
        }
    }

    // Overlaps (sorted by network: an overlap is always with a neighbour's container).
    let cidrs: Vec<IpNetwork> = blocks.keys().copied().collect();
    for (i, a) in cidrs.iter().enumerate() {
        for b in &cidrs[i + 1..] {
            if a.contains(b.network()) || b.contains(a.network()) {
                findings.push(Finding::OverlappingBlocks { a: *a, b: *b });
            }
        }
    }

    let mut per_handle: BTreeMap<(String, IpNetwork), u32> = BTreeMap::new();
    for (cidr, block) in &blocks {
        for problem in block.problems() {
            findings.push(Finding::BrokenBlock {
                block: *cidr,
                problem,
            });
        }
        let allocated = block.allocated();
        report.allocated += allocated.len();
        for a in &allocated {
            if let Some(h) = &a.attribute.handle_id {
                *per_handle.entry((h.clone(), *cidr)).or_default() += 1;
            }
            if let (Some(ns), Some(name)) = (
                a.attribute.attrs.get(ATTR_NAMESPACE),
                a.attribute.attrs.get(ATTR_ENDPOINT),
            ) {
                let id = format!("{ns}/{name}");
                if !endpoints.get(&id).is_some_and(|ips| ips.contains(&a.ip)) {
                    findings.push(Finding::LeakedAddress {
                        ip: a.ip,
                        handle: a.attribute.handle_id.clone(),
                        endpoint: id,
                    });
                }
            }
        }
        if let Some(node) = block.affine_node() {
            if affinities.get(&(node.to_string(), *cidr)) != Some(&AffinityState::Confirmed) {
                findings.push(Finding::MissingAffinity {
                    block: *cidr,
                    node: node.to_string(),
                });
            }
            if !nodes.contains(node) {
                findings.push(Finding::OrphanedBlock {
                    block: *cidr,
                    node: node.to_string(),
                    in_use: block.in_use(),
                });
            }
        }
    }
    for ((node, cidr), state) in &affinities {
        let affine = blocks.get(cidr).is_some_and(|b| b.is_affine_to(node));
        match state {
            AffinityState::Confirmed if !affine => findings.push(Finding::DanglingAffinity {
                node: node.clone(),
                block: *cidr,
            }),
            AffinityState::Pending => findings.push(Finding::StalePendingAffinity {
                node: node.clone(),
                block: *cidr,
            }),
            AffinityState::Confirmed => {}
        }
    }
    for (id, handle) in &handles {
        for (segment, recorded) in &handle.blocks {
            let Some(cidr) = parse_cidr_segment(segment) else {
                continue;
            };
            let actual = per_handle.remove(&(id.clone(), cidr)).unwrap_or(0);
            if actual != *recorded {
                findings.push(Finding::HandleMismatch {
                    handle: id.clone(),
                    block: cidr,
                    recorded: *recorded,
                    actual,
                });
            }
        }
    }
    for ((handle, block), actual) in per_handle {
        findings.push(Finding::HandleMismatch {
            handle,
            block,
            recorded: 0,
            actual,
        });
    }

    report.blocks = blocks.len();
    report.affinities = affinities.len();
    report.handles = handles.len();
    findings.sort();
    report.findings = findings;
    Ok(report)
}

async fn resource_names(store: &Store, kind: Kind) -> Result<BTreeSet<String>, IpamError> {
    let prefix = resource_prefix(kind.plural());
    Ok(store
        .list(&prefix)
        .await?
        .kvs
        .into_iter()
        .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_string))
        .collect())
}
