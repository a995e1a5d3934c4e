//! The small IPAM records next to the blocks: a node's affinity to a block
//! (`/vrouter/ipam/affinity/<node>/<cidr>`) and an allocation handle
//! (`/vrouter/ipam/handles/<id>`). Stored as JSON.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::IpamError;
use crate::keys::cidr_segment;

/// State of a block affinity (Calico's `BlockAffinity.state`, without `pendingDeletion`:
/// vrouter deletes an empty block and its affinity in one transaction instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// Written by older versions before the block was created: a claim in progress (or one
    /// that crashed). vrouter now writes the block and a confirmed affinity in one
    /// transaction and only reads and settles this state (`super::claim`). Not an
    /// ownership: routing and `check` treat it as absent.
    Pending,
    /// The block exists and is affine to this node.
    Confirmed,
}

/// A node's affinity to one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAffinity {
    /// Claim state.
    pub state: AffinityState,
}

impl BlockAffinity {
    /// An affinity in `state`.
    pub fn new(state: AffinityState) -> Self {
        Self { state }
    }

    /// Decodes a stored affinity.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IpamError> {
        serde_json::from_slice(bytes).map_err(|e| IpamError::Decode {
            what: "affinity",
            reason: e.to_string(),
        })
    }

    /// Encodes for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: an affinity always serializes")
    }
}

/// Which blocks hold a handle's addresses, and how many in each (Calico's `IPAMHandle`).
/// Written in the same transaction as the block it counts, so the two never disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamHandle {
    /// The handle id.
    #[serde(rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR (key segment form, `10.65.0.0-26`) → number of addresses.
    #[serde(rename = "block")]
    pub blocks: BTreeMap<String, u32>,
}

impl IpamHandle {
    /// An empty handle.
    pub fn new(handle_id: &str) -> Self {
        Self {
            handle_id: handle_id.to_string(),
            blocks: BTreeMap::new(),
        }
    }

    /// Adds `n` addresses in `block`.
    pub fn add(&mut self, block: &IpNetwork, n: u32) {
        *self.blocks.entry(cidr_segment(block)).or_default() += n;
    }

    /// Removes `n` addresses in `block` (saturating); drops the block at zero.
    pub fn remove(&mut self, block: &IpNetwork, n: u32) {
        let segment = cidr_segment(block);
        if let Some(count) = self.blocks.get_mut(&segment) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.blocks.remove(&segment);
            }
        }
    }

    /// Addresses held in total.
    pub fn total(&self) -> u32 {
        self.blocks.values().sum()
    }

    /// Decodes a stored handle.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IpamError> {
        serde_json::from_slice(bytes).map_err(|e| IpamError::Decode {
            what: "handle",
            reason: e.to_string(),
        })
    }

    /// Encodes for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: a handle always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_counts() {
        let a: IpNetwork = "10.0.0.0/26".parse().expect("cidr");
        let mut h = IpamHandle::new("net.c1");
        h.add(&a, 2);
        assert_eq!(h.total(), 2);
        let json = h.to_json();
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"handleID":"net.c1","block":{"10.0.0.0-26":2}}"#
        );
        assert_eq!(IpamHandle::from_json(&json).expect("decode"), h);
        h.remove(&a, 5);
        assert!(h.blocks.is_empty());
    }

    #[test]
    fn affinity_json() {
        let json = BlockAffinity::new(AffinityState::Confirmed).to_json();
        assert_eq!(String::from_utf8_lossy(&json), r#"{"state":"confirmed"}"#);
        assert!(BlockAffinity::from_json(b"{\"state\":\"bogus\"}").is_err());
    }
}
