//! The allocation block: the unit of IPAM ownership and of compare-and-swap (Calico's
//! `AllocationBlock`, libcalico-go `lib/ipam/ipam_block.go`). Pure: no etcd, no clock.
//!
//! A block covers one CIDR (a /26 or /122 by default, 64 addresses). Each address is an
//! *ordinal* (its offset in the block). `allocations[ordinal]` points into `attributes` (who
//! holds it: handle and free-form attributes such as namespace and pod), `unallocated` is a
//! FIFO of free ordinals (allocation pops the head, release pushes the tail, so the address
//! free the longest is reused first), and every allocation records the block's
//! `sequenceNumber` at that moment in `sequenceNumberForAllocation`, so a release that names
//! a sequence number can tell "my address" from "the same address given to someone else since"
//! (the ABA problem).
//!
//! The stored JSON uses Calico's field names.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::IpamError;

/// Prefix of a block's `affinity` string for a node (`host:<node>`).
pub const HOST_AFFINITY_PREFIX: &str = "host:";

/// Who holds a group of addresses: a handle plus free-form attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationAttribute {
    /// The handle (`<network>.<containerID>`) that owns the addresses, if any.
    #[serde(rename = "handle_id", default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// Attributes (`namespace`, `pod`, `node`, ...).
    #[serde(
        rename = "secondary",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attrs: BTreeMap<String, String>,
}

/// One allocated address as reported by [`AllocationBlock::allocated`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The address.
    pub ip: IpAddr,
    /// Its ordinal in the block.
    pub ordinal: u32,
    /// Handle and attributes of the holder.
    pub attribute: AllocationAttribute,
    /// The block sequence number recorded when the address was allocated.
    pub sequence_number: u64,
}

/// A block of addresses and who holds each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationBlock {
    /// The block's CIDR.
    pub cidr: IpNetwork,
    /// `host:<node>` when a node owns the block; `None` for a block with no affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// Per ordinal: index into `attributes`, or `None` when free.
    pub allocations: Vec<Option<usize>>,
    /// Free ordinals, the next one to hand out first.
    pub unallocated: Vec<u32>,
    /// Holders referenced from `allocations`.
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    /// Incremented by every allocation.
    #[serde(default)]
    pub sequence_number: u64,
    /// Sequence number at which each allocated ordinal was handed out (keys are ordinals).
    #[serde(default)]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
}

/// Number of addresses in `cidr` as `u128` (saturating at `u128::MAX` for a v6 /0).
fn size_of(cidr: &IpNetwork) -> u128 {
    let bits = if cidr.is_ipv4() { 32 } else { 128 };
    let host_bits = bits - u32::from(cidr.prefix());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn u128_to_ip(v4: bool, value: u128) -> IpAddr {
    if v4 {
        // Callers only pass offsets inside an IPv4 network.
        IpAddr::V4(u32::try_from(value).unwrap_or(u32::MAX).into())
    } else {
        IpAddr::V6(value.into())
    }
}

/// The `index`-th block of prefix length `block_size` inside `pool`, if it exists.
pub fn nth_block(pool: &IpNetwork, block_size: u8, index: u128) -> Option<IpNetwork> {
    let count = block_count(pool, block_size)?;
    if index >= count {
        return None;
    }
    let bits = if pool.is_ipv4() { 32 } else { 128 };
    let step = 1u128.checked_shl(u32::from(bits - block_size))?;
    let base = ip_to_u128(pool.network());
    let addr = u128_to_ip(pool.is_ipv4(), base + index * step);
    IpNetwork::new(addr, block_size).ok()
}

/// How many blocks of prefix length `block_size` a pool holds (`None` if the block size does
/// not fit the pool).
pub fn block_count(pool: &IpNetwork, block_size: u8) -> Option<u128> {
    let bits = if pool.is_ipv4() { 32 } else { 128 };
    if block_size < pool.prefix() || block_size > bits {
        return None;
    }
    Some(
        1u128
            .checked_shl(u32::from(block_size - pool.prefix()))
            .unwrap_or(u128::MAX),
    )
}

/// The block of prefix length `block_size` that contains `ip`.
pub fn block_containing(ip: IpAddr, block_size: u8) -> Option<IpNetwork> {
    let net = IpNetwork::new(ip, block_size).ok()?;
    IpNetwork::new(net.network(), block_size).ok()
}

impl AllocationBlock {
    /// An empty block over `cidr`, affine to `node` when given. Fails for blocks bigger than
    /// 2^16 addresses (a block is one etcd value; Calico's limit is the same order).
    pub fn new(cidr: IpNetwork, node: Option<&str>) -> Result<Self, IpamError> {
        let size = size_of(&cidr);
        if size > 1 << 16 {
            return Err(IpamError::BlockTooLarge { cidr });
        }
        let cidr = IpNetwork::new(cidr.network(), cidr.prefix())
            .map_err(|_| IpamError::BlockTooLarge { cidr })?;
        let size = usize::try_from(size).map_err(|_| IpamError::BlockTooLarge { cidr })?;
        Ok(Self {
            cidr,
            affinity: node.map(|n| format!("{HOST_AFFINITY_PREFIX}{n}")),
            allocations: vec![None; size],
            unallocated: (0..u32::try_from(size).unwrap_or(u32::MAX)).collect(),
            attributes: Vec::new(),
            sequence_number: 0,
            sequence_number_for_allocation: BTreeMap::new(),
        })
    }

    /// The node this block is affine to, if any.
    pub fn affine_node(&self) -> Option<&str> {
        self.affinity.as_deref()?.strip_prefix(HOST_AFFINITY_PREFIX)
    }

    /// Whether the block is affine to `node`.
    pub fn is_affine_to(&self, node: &str) -> bool {
        self.affine_node() == Some(node)
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> usize {
        self.allocations.len()
    }

    /// Number of free addresses.
    pub fn free(&self) -> usize {
        self.unallocated.len()
    }

    /// Number of allocated addresses.
    pub fn in_use(&self) -> usize {
        self.size() - self.free()
    }

    /// True when no address is allocated.
    pub fn is_empty(&self) -> bool {
        self.in_use() == 0
    }

    /// The ordinal of `ip`, if it lies in this block.
    pub fn ordinal_of(&self, ip: IpAddr) -> Option<u32> {
        if !self.cidr.contains(ip) {
            return None;
        }
        let offset = ip_to_u128(ip) - ip_to_u128(self.cidr.network());
        u32::try_from(offset).ok()
    }

    /// The address of `ordinal`.
    pub fn ip_of(&self, ordinal: u32) -> IpAddr {
        u128_to_ip(
            self.cidr.is_ipv4(),
            ip_to_u128(self.cidr.network()) + u128::from(ordinal),
        )
    }

    /// Hands out up to `n` free addresses to `handle` with `attrs`, longest-free first, and
    /// returns them (fewer than `n`, possibly none, when the block runs out).
    pub fn allocate(
        &mut self,
        n: usize,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
    ) -> Vec<IpAddr> {
        let take = n.min(self.unallocated.len());
        if take == 0 {
            return Vec::new();
        }
        let attribute = AllocationAttribute {
            handle_id: handle.map(str::to_string),
            attrs: attrs.clone(),
        };
        let index = match self.attributes.iter().position(|a| *a == attribute) {
            Some(i) => i,
            None => {
                self.attributes.push(attribute);
                self.attributes.len() - 1
            }
        };
        self.sequence_number += 1;
        let ordinals: Vec<u32> = self.unallocated.drain(..take).collect();
        ordinals
            .into_iter()
            .map(|ordinal| {
                self.allocations[ordinal as usize] = Some(index);
                self.sequence_number_for_allocation
                    .insert(ordinal.to_string(), self.sequence_number);
                self.ip_of(ordinal)
            })
            .collect()
    }

    /// Allocates exactly `ip` if it is free (explicit assignment, `vrctl`-style).
    pub fn assign(
        &mut self,
        ip: IpAddr,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
    ) -> Result<(), IpamError> {
        let ordinal = self.ordinal_of(ip).ok_or(IpamError::NotInBlock {
            ip,
            cidr: self.cidr,
        })?;
        let Some(pos) = self.unallocated.iter().position(|&o| o == ordinal) else {
            return Err(IpamError::AlreadyAllocated { ip });
        };
        self.unallocated.remove(pos);
        self.unallocated.insert(0, ordinal);
        let got = self.allocate(1, handle, attrs);
        debug_assert_eq!(got, [ip]);
        Ok(())
    }

    /// Holder of `ip`, if allocated.
    pub fn holder(&self, ip: IpAddr) -> Option<&AllocationAttribute> {
        let ordinal = self.ordinal_of(ip)?;
        let index = (*self.allocations.get(ordinal as usize)?)?;
        self.attributes.get(index)
    }

    /// Sequence number recorded when `ip` was allocated.
    pub fn sequence_number_of(&self, ip: IpAddr) -> Option<u64> {
        let ordinal = self.ordinal_of(ip)?;
        self.sequence_number_for_allocation
            .get(&ordinal.to_string())
            .copied()
    }

    /// Every allocated address with its holder, in ordinal order.
    pub fn allocated(&self) -> Vec<Allocation> {
        self.allocations
            .iter()
            .enumerate()
            .filter_map(|(ordinal, index)| {
                let ordinal = u32::try_from(ordinal).ok()?;
                let attribute = self.attributes.get((*index)?)?.clone();
                Some(Allocation {
                    ip: self.ip_of(ordinal),
                    ordinal,
                    attribute,
                    sequence_number: self
                        .sequence_number_for_allocation
                        .get(&ordinal.to_string())
                        .copied()
                        .unwrap_or(0),
                })
            })
            .collect()
    }

    /// Addresses held by `handle`.
    pub fn ips_by_handle(&self, handle: &str) -> Vec<IpAddr> {
        self.allocated()
            .into_iter()
            .filter(|a| a.attribute.handle_id.as_deref() == Some(handle))
            .map(|a| a.ip)
            .collect()
    }

    /// Frees `ip`. With `sequence_number`, frees it only if it is still the allocation made
    /// at that sequence number (else [`IpamError::BadSequenceNumber`]). Returns the handle
    /// that held it, `Ok(None)` if the address was free already (release is idempotent).
    pub fn release(
        &mut self,
        ip: IpAddr,
        sequence_number: Option<u64>,
    ) -> Result<Option<Option<String>>, IpamError> {
        let ordinal = self.ordinal_of(ip).ok_or(IpamError::NotInBlock {
            ip,
            cidr: self.cidr,
        })?;
        let Some(index) = self.allocations[ordinal as usize] else {
            return Ok(None);
        };
        if let Some(expected) = sequence_number {
            let found = self.sequence_number_of(ip).unwrap_or(0);
            if found != expected {
                return Err(IpamError::BadSequenceNumber {
                    ip,
                    expected,
                    found,
                });
            }
        }
        let handle = self.attributes.get(index).and_then(|a| a.handle_id.clone());
        self.allocations[ordinal as usize] = None;
        self.unallocated.push(ordinal);
        self.sequence_number_for_allocation
            .remove(&ordinal.to_string());
        self.compact_attributes();
        Ok(Some(handle))
    }

    /// Frees every address held by `handle`; returns them.
    pub fn release_by_handle(&mut self, handle: &str) -> Vec<IpAddr> {
        let ips = self.ips_by_handle(handle);
        for ip in &ips {
            // Each address comes from this block and is allocated: release cannot fail.
            let _released = self.release(*ip, None);
        }
        ips
    }

    /// Drops attributes no allocation refers to and renumbers the rest.
    fn compact_attributes(&mut self) {
        let mut used = vec![false; self.attributes.len()];
        for index in self.allocations.iter().flatten() {
            if let Some(u) = used.get_mut(*index) {
                *u = true;
            }
        }
        if used.iter().all(|u| *u) {
            return;
        }
        let mut renumber = vec![None; self.attributes.len()];
        let mut kept = Vec::new();
        for (old, attribute) in self.attributes.drain(..).enumerate() {
            if used[old] {
                renumber[old] = Some(kept.len());
                kept.push(attribute);
            }
        }
        self.attributes = kept;
        for slot in &mut self.allocations {
            *slot = slot.and_then(|old| renumber[old]);
        }
    }

    /// Internal consistency: every ordinal is either allocated (pointing at an existing
    /// attribute, with a sequence number) or listed exactly once as free. Returns the
    /// problems found, empty when the block is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut free = vec![0u32; self.size()];
        for &ordinal in &self.unallocated {
            match free.get_mut(ordinal as usize) {
                Some(count) => *count += 1,
                None => problems.push(format!("free ordinal {ordinal} is outside the block")),
            }
        }
        for (ordinal, slot) in self.allocations.iter().enumerate() {
            let free_count = free[ordinal];
            match slot {
                Some(index) => {
                    if free_count > 0 {
                        problems.push(format!("ordinal {ordinal} is both allocated and free"));
                    }
                    if *index >= self.attributes.len() {
                        problems.push(format!(
                            "ordinal {ordinal} points at missing attribute {index}"
                        ));
                    }
                    if !self
                        .sequence_number_for_allocation
                        .contains_key(&ordinal.to_string())
                    {
                        problems.push(format!("ordinal {ordinal} has no sequence number"));
                    }
                }
                None if free_count != 1 => problems.push(format!(
                    "free ordinal {ordinal} is listed {free_count} times"
                )),
                None => {}
            }
        }
        problems
    }

    /// Decodes a stored block.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IpamError> {
        let block: Self = serde_json::from_slice(bytes).map_err(|e| IpamError::Decode {
            what: "block",
            reason: e.to_string(),
        })?;
        if block.allocations.len() as u128 != size_of(&block.cidr) {
            return Err(IpamError::Decode {
                what: "block",
                reason: format!(
                    "{} has {} allocation slots",
                    block.cidr,
                    block.allocations.len()
                ),
            });
        }
        Ok(block)
    }

    /// Encodes the block for storage.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: a block always serializes")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("cidr")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn no_attrs() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn allocates_in_order_and_reuses_the_longest_free_first() {
        let mut b = AllocationBlock::new(net("10.65.0.0/26"), Some("node-1")).expect("block");
        assert_eq!(b.size(), 64);
        assert!(b.is_affine_to("node-1"));
        let first = b.allocate(3, Some("h1"), &no_attrs());
        assert_eq!(first, [ip("10.65.0.0"), ip("10.65.0.1"), ip("10.65.0.2")]);
        assert_eq!(
            b.release(ip("10.65.0.1"), None).expect("release"),
            Some(Some("h1".into()))
        );
        // 10.65.0.1 went to the tail: the next allocation takes .3, not .1.
        assert_eq!(b.allocate(1, Some("h2"), &no_attrs()), [ip("10.65.0.3")]);
        assert_eq!(b.in_use(), 3);
        assert!(b.problems().is_empty(), "{:?}", b.problems());
    }

    #[test]
    fn exhaustion_returns_what_is_left() {
        let mut b = AllocationBlock::new(net("10.65.0.0/30"), None).expect("block");
        assert_eq!(b.allocate(3, Some("a"), &no_attrs()).len(), 3);
        assert_eq!(b.allocate(5, Some("b"), &no_attrs()), [ip("10.65.0.3")]);
        assert!(b.allocate(1, Some("c"), &no_attrs()).is_empty());
        assert_eq!(b.free(), 0);
    }

    #[test]
    fn release_by_handle_frees_only_that_handle_and_drops_its_attributes() {
        let mut b = AllocationBlock::new(net("fd00:10::/122"), Some("n")).expect("block");
        let attrs: BTreeMap<String, String> = [("pod".to_string(), "web-0".to_string())].into();
        let a = b.allocate(2, Some("net.a"), &attrs);
        let c = b.allocate(1, Some("net.c"), &no_attrs());
        assert_eq!(a, [ip("fd00:10::"), ip("fd00:10::1")]);
        assert_eq!(b.holder(a[0]).expect("held").attrs["pod"], "web-0");
        assert_eq!(b.release_by_handle("net.a"), a);
        assert_eq!(b.attributes.len(), 1, "attribute of net.a dropped");
        assert_eq!(b.ips_by_handle("net.c"), c);
        assert_eq!(
            b.holder(c[0]).expect("held").handle_id.as_deref(),
            Some("net.c")
        );
        assert!(b.problems().is_empty(), "{:?}", b.problems());
    }

    #[test]
    fn sequence_numbers_detect_a_reused_address() {
        let mut b = AllocationBlock::new(net("10.0.0.0/31"), None).expect("block");
        let [x] = b.allocate(1, Some("old"), &no_attrs())[..] else {
            panic!("one address")
        };
        let old_seq = b.sequence_number_of(x).expect("seq");
        b.release(x, Some(old_seq))
            .expect("release at the right seq");
        b.allocate(1, Some("filler"), &no_attrs());
        let again = b.allocate(1, Some("new"), &no_attrs());
        assert_eq!(again, [x], "the address came back to someone else");
        let err = b.release(x, Some(old_seq)).expect_err("stale release");
        assert!(matches!(err, IpamError::BadSequenceNumber { .. }), "{err}");
        assert_eq!(b.ips_by_handle("new"), [x], "still held by the new owner");
    }

    #[test]
    fn release_is_idempotent_and_rejects_foreign_addresses() {
        let mut b = AllocationBlock::new(net("10.0.0.0/29"), None).expect("block");
        assert_eq!(b.release(ip("10.0.0.3"), None).expect("free already"), None);
        let err = b.release(ip("10.0.1.3"), None).expect_err("outside");
        assert!(matches!(err, IpamError::NotInBlock { .. }), "{err}");
    }

    #[test]
    fn explicit_assignment() {
        let mut b = AllocationBlock::new(net("10.0.0.0/29"), None).expect("block");
        b.assign(ip("10.0.0.5"), Some("h"), &no_attrs())
            .expect("assign");
        let err = b
            .assign(ip("10.0.0.5"), Some("h2"), &no_attrs())
            .expect_err("taken");
        assert!(matches!(err, IpamError::AlreadyAllocated { .. }), "{err}");
        assert_eq!(b.allocate(1, None, &no_attrs()), [ip("10.0.0.0")]);
        assert!(b.problems().is_empty(), "{:?}", b.problems());
    }

    #[test]
    fn json_round_trip_and_size_check() {
        let mut b = AllocationBlock::new(net("10.65.0.64/26"), Some("node-1")).expect("block");
        b.allocate(2, Some("k8s-pod-network.abc"), &no_attrs());
        let json = b.to_json();
        let text = String::from_utf8(json.clone()).expect("utf8");
        assert!(text.contains("\"sequenceNumberForAllocation\""), "{text}");
        assert!(
            text.contains("\"handle_id\":\"k8s-pod-network.abc\""),
            "{text}"
        );
        assert_eq!(AllocationBlock::from_json(&json).expect("decode"), b);
        let truncated = text.replacen("[0,0,", "[0,", 1);
        assert!(AllocationBlock::from_json(truncated.as_bytes()).is_err());
        assert!(AllocationBlock::new(net("10.0.0.0/8"), None).is_err());
    }

    #[test]
    fn block_arithmetic() {
        let pool = net("10.65.0.0/24");
        assert_eq!(block_count(&pool, 26), Some(4));
        assert_eq!(nth_block(&pool, 26, 3), Some(net("10.65.0.192/26")));
        assert_eq!(nth_block(&pool, 26, 4), None);
        assert_eq!(block_count(&pool, 23), None);
        let v6 = net("fd00::/64");
        assert_eq!(block_count(&v6, 122), Some(1 << 58));
        assert_eq!(nth_block(&v6, 122, 1), Some(net("fd00::40/122")));
        assert_eq!(
            block_containing(ip("10.65.0.77"), 26),
            Some(net("10.65.0.64/26"))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate(usize, u8),
        Release(u8),
        ReleaseHandle(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..10, 0u8..4).prop_map(|(n, h)| Op::Allocate(n, h)),
            (0u8..64).prop_map(Op::Release),
            (0u8..4).prop_map(Op::ReleaseHandle),
        ]
    }

    proptest! {
        /// Against a model (a map from address to handle): no address is ever handed out
        /// twice, frees come back, and the block's bookkeeping stays sound.
        #[test]
        fn block_matches_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut b = AllocationBlock::new(net("10.1.0.0/26"), Some("n")).expect("block");
            let mut model: BTreeMap<IpAddr, String> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Allocate(n, h) => {
                        let handle = format!("h{h}");
                        let free_before = 64 - model.len();
                        let got = b.allocate(n, Some(&handle), &no_attrs());
                        prop_assert_eq!(got.len(), n.min(free_before));
                        for ip in got {
                            prop_assert!(model.insert(ip, handle.clone()).is_none(), "{} twice", ip);
                        }
                    }
                    Op::Release(o) => {
                        let ip = b.ip_of(u32::from(o));
                        let released = b.release(ip, None).expect("in block");
                        prop_assert_eq!(released.flatten(), model.remove(&ip));
                    }
                    Op::ReleaseHandle(h) => {
                        let handle = format!("h{h}");
                        let freed: BTreeSet<IpAddr> = b.release_by_handle(&handle).into_iter().collect();
                        let expected: BTreeSet<IpAddr> = model
                            .iter()
                            .filter(|(_, v)| **v == handle)
                            .map(|(k, _)| *k)
                            .collect();
                        prop_assert_eq!(&freed, &expected);
                        model.retain(|_, v| *v != handle);
                    }
                }
                prop_assert!(b.problems().is_empty(), "{:?}", b.problems());
                prop_assert_eq!(b.in_use(), model.len());
                for (ip, handle) in &model {
                    prop_assert_eq!(
                        b.holder(*ip).and_then(|a| a.handle_id.as_deref()),
                        Some(handle.as_str())
                    );
                }
            }
        }
    }
}
