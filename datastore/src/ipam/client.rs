//! [`Ipam`]: the etcd-backed IPAM driver over the pure [`AllocationBlock`].
//!
//! Allocation for a node (Calico's `autoAssign`, libcalico-go `lib/ipam/ipam.go`):
//! 1. blocks affine to the node (confirmed affinities), in CIDR order;
//! 2. when those are full, claim a new block (up to `maxBlocksPerHost`) with the two-phase
//!    affinity: create the affinity `pending`, create the block affine to the node (a CAS
//!    create, so of two nodes racing for one block exactly one wins; the loser deletes its
//!    pending affinity and tries the next block), then confirm the affinity. A crash between
//!    the phases leaves a pending affinity that the next claim of that block by the same node
//!    resumes;
//! 3. unless `strictAffinity`, borrow addresses from any other block of the pools that has
//!    room.
//!
//! Every write is a CAS ([`Store::commit`]); on a conflict the writer re-reads and retries (up
//! to [`RETRIES`] times). An allocation updates the block and the handle record in one
//! transaction, so the two never disagree. A release that empties a block deletes the block
//! and its affinity in one transaction guarded by the block's revision: if anyone allocated
//! in it meanwhile, the block stays.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use tracing::{debug, info};

use super::block::{AllocationBlock, block_count, nth_block};
use super::record::{AffinityState, BlockAffinity, IpamHandle};
use super::{Family, IpamError};
use crate::etcd::{DatastoreError, KeyValue, Store, Write};
use crate::keys::{
    IPAM_AFFINITY, IPAM_BLOCKS, ipam_affinity_key, ipam_affinity_prefix, ipam_block_key,
    ipam_handle_key, parse_cidr_segment, resource_key, resource_prefix,
};
use crate::resource::ippool::AllowedUse;
use crate::resource::{IpPool, IpamConfiguration, Kind, Resource};

/// How many times a conflicting write is retried (Calico's `datastoreRetries`).
pub const RETRIES: u32 = 100;

/// Decides whether a pool may serve this request (e.g. its `nodeSelector` matches the node's
/// labels; the selector language lives in the `policy` crate, which depends on this one).
pub type PoolFilter = Arc<dyn Fn(&IpPool) -> bool + Send + Sync>;

/// Cluster IPAM settings (from the `IPAMConfiguration` named `default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpamSettings {
    /// Never borrow from another node's block.
    pub strict_affinity: bool,
    /// Most blocks one node may claim; `None` = unlimited.
    pub max_blocks_per_host: Option<u32>,
    /// Whether nodes may claim blocks at all.
    pub auto_allocate_blocks: bool,
}

impl Default for IpamSettings {
    fn default() -> Self {
        Self {
            strict_affinity: false,
            max_blocks_per_host: None,
            auto_allocate_blocks: true,
        }
    }
}

/// One allocation request.
#[derive(Clone, Default)]
pub struct AssignArgs {
    /// The requesting node (blocks are claimed for it).
    pub node: String,
    /// The handle that will own the addresses (`<network>.<containerID>`).
    pub handle: String,
    /// Attributes stored with the addresses (see the `ATTR_*` keys).
    pub attrs: BTreeMap<String, String>,
    /// IPv4 addresses wanted.
    pub num_v4: usize,
    /// IPv6 addresses wanted.
    pub num_v6: usize,
    /// Only these pool CIDRs (empty: every enabled pool of the family).
    pub pools: Vec<IpNetwork>,
    /// Extra pool filter (node selectors).
    pub pool_filter: Option<PoolFilter>,
    /// Settings; `None` reads the `default` IPAMConfiguration from etcd.
    pub settings: Option<IpamSettings>,
}

impl std::fmt::Debug for AssignArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssignArgs")
            .field("node", &self.node)
            .field("handle", &self.handle)
            .field("num_v4", &self.num_v4)
            .field("num_v6", &self.num_v6)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

/// Addresses handed out by [`Ipam::auto_assign`], each with the pool it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assigned {
    /// IPv4 addresses.
    pub v4: Vec<(IpAddr, IpPool)>,
    /// IPv6 addresses.
    pub v6: Vec<(IpAddr, IpPool)>,
}

impl Assigned {
    /// Every address, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.v4.iter().chain(&self.v6).map(|(ip, _)| *ip).collect()
    }
}

/// A usable pool with its parsed network and block size.
#[derive(Debug, Clone)]
struct Pool {
    resource: IpPool,
    cidr: IpNetwork,
    block_size: u8,
}

/// The IPAM driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ipam {
    store: Store,
}

/// Outcome of one CAS attempt that may conflict.
enum Attempt<T> {
    Done(T),
    Retry,
}

/// The CIDRs of the blocks in a listing of [`IPAM_BLOCKS`], by their keys.
fn block_cidrs(kvs: &[KeyValue]) -> impl Iterator<Item = IpNetwork> + '_ {
    kvs.iter().filter_map(|kv| {
        kv.key
            .strip_prefix(IPAM_BLOCKS)
            .and_then(parse_cidr_segment)
    })
}

fn conflicted(e: &DatastoreError) -> bool {
    matches!(
        e,
        DatastoreError::Conflict { .. }
            | DatastoreError::AlreadyExists { .. }
            | DatastoreError::NotFound { .. }
    )
}

/// A starting index for a node's block search, so nodes do not all race for block 0.
fn start_index(node: &str, count: u128) -> u128 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in node.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u128::from(hash) % count.max(1)
}

impl Ipam {
    /// IPAM over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads the `default` IPAMConfiguration (defaults when absent).
    pub async fn settings(&self) -> Result<IpamSettings, IpamError> {
        let key = resource_key(Kind::IpamConfiguration.plural(), None, "default");
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(IpamSettings::default());
        };
        let config = decode_resource(&kv)?;
        let Resource::IpamConfiguration(IpamConfiguration { spec, .. }) = config else {
            return Err(IpamError::Decode {
                what: "IPAMConfiguration",
                reason: format!("{} holds another kind", kv.key),
            });
        };
        Ok(IpamSettings {
            strict_affinity: spec.strict_affinity(),
            max_blocks_per_host: spec.max_blocks_per_host(),
            auto_allocate_blocks: spec.auto_allocate_blocks.unwrap_or(true),
        })
    }

    /// Every IPPool in etcd.
    pub async fn pools(&self) -> Result<Vec<IpPool>, IpamError> {
        let listing = self
            .store
            .list(&resource_prefix(Kind::IpPool.plural()))
            .await?;
        listing
            .kvs
            .iter()
            .map(|kv| match decode_resource(kv)? {
                Resource::IpPool(pool) => Ok(pool),
                _ => Err(IpamError::Decode {
                    what: "IPPool",
                    reason: format!("{} holds another kind", kv.key),
                }),
            })
            .collect()
    }

    async fn usable_pools(
        &self,
        args: &AssignArgs,
        family: Family,
        usage: AllowedUse,
    ) -> Result<Vec<Pool>, IpamError> {
        let mut usable = Vec::new();
        for resource in self.pools().await? {
            let (Some(cidr), Some(block_size)) = (
                resource.spec.network(),
                resource.spec.effective_block_size(),
            ) else {
                continue;
            };
            if Family::of(&cidr) != family
                || resource.spec.is_disabled()
                || !resource.spec.effective_allowed_uses().contains(&usage)
            {
                continue;
            }
            if !args.pools.is_empty() && !args.pools.contains(&cidr) {
                continue;
            }
            if args.pool_filter.as_ref().is_some_and(|f| !f(&resource)) {
                continue;
            }
            usable.push(Pool {
                resource,
                cidr,
                block_size,
            });
        }
        usable.sort_by_key(|p| p.cidr);
        Ok(usable)
    }

    /// Allocates `num_v4` IPv4 and `num_v6` IPv6 addresses to `handle` on `node`. All or
    /// nothing: when a family cannot be satisfied, whatever was taken is released again and
    /// [`IpamError::Exhausted`] is returned.
    pub async fn auto_assign(&self, args: &AssignArgs) -> Result<Assigned, IpamError> {
        self.auto_assign_for(args, AllowedUse::Workload).await
    }

    /// [`Ipam::auto_assign`] from the pools whose `allowedUses` include `usage` (a node's
    /// tunnel address: [`AllowedUse::Tunnel`]).
    pub async fn auto_assign_for(
        &self,
        args: &AssignArgs,
        usage: AllowedUse,
    ) -> Result<Assigned, IpamError> {
        let settings = match args.settings {
            Some(s) => s,
            None => self.settings().await?,
        };
        let mut assigned = Assigned::default();
        for (family, wanted) in [(Family::V4, args.num_v4), (Family::V6, args.num_v6)] {
            if wanted == 0 {
                continue;
            }
            let result = self
                .assign_family(args, &settings, family, wanted, usage)
                .await;
            let got = match result {
                Ok(got) => got,
                Err(e) => {
                    self.undo(&assigned.ips()).await;
                    return Err(e);
                }
            };
            if got.len() < wanted {
                let ips: Vec<IpAddr> = got.iter().map(|(ip, _)| *ip).collect();
                self.undo(&ips).await;
                self.undo(&assigned.ips()).await;
                return Err(IpamError::Exhausted {
                    family,
                    requested: wanted,
                    assigned: got.len(),
                    node: args.node.clone(),
                });
            }
            match family {
                Family::V4 => assigned.v4 = got,
                Family::V6 => assigned.v6 = got,
            }
        }
        Ok(assigned)
    }

    async fn undo(&self, ips: &[IpAddr]) {
        if ips.is_empty() {
            return;
        }
        if let Err(e) = self.release_ips(ips).await {
            tracing::warn!(error = %e, ?ips, "could not release addresses of a failed assignment");
        }
    }

    async fn assign_family(
        &self,
        args: &AssignArgs,
        settings: &IpamSettings,
        family: Family,
        wanted: usize,
        usage: AllowedUse,
    ) -> Result<Vec<(IpAddr, IpPool)>, IpamError> {
        let pools = self.usable_pools(args, family, usage).await?;
        if pools.is_empty() {
            return Err(IpamError::NoPools { family });
        }
        let mut got: Vec<(IpAddr, IpPool)> = Vec::new();
        let mut full: BTreeSet<IpNetwork> = BTreeSet::new();

        // 1 + 2: affine blocks, claiming new ones while allowed.
        'claiming: loop {
            let affine = self.affine_blocks(&args.node, &pools).await?;
            // One read for all of them: a node with many full blocks must not pay a round
            // trip per block on every assignment.
            let candidates: Vec<IpNetwork> = affine
                .iter()
                .filter(|c| !full.contains(c))
                .copied()
                .collect();
            let keys: Vec<String> = candidates.iter().map(ipam_block_key).collect();
            let reads = self.store.get_many(&keys).await?;
            for (cidr, kv) in candidates.iter().zip(reads) {
                let Some(kv) = kv else {
                    full.insert(*cidr);
                    continue;
                };
                if AllocationBlock::from_json(&kv.value)?.free() == 0 {
                    full.insert(*cidr);
                    continue;
                }
                let need = wanted - got.len();
                let ips = self.allocate_in_block(cidr, need, args, Some(kv)).await?;
                if ips.len() < need {
                    full.insert(*cidr);
                }
                let pool = pool_of(&pools, cidr);
                got.extend(ips.into_iter().map(|ip| (ip, pool.resource.clone())));
                if got.len() == wanted {
                    return Ok(got);
                }
            }
            if !settings.auto_allocate_blocks {
                break;
            }
            let owned = affine.len();
            if settings
                .max_blocks_per_host
                .is_some_and(|max| owned >= max as usize)
            {
                debug!(node = %args.node, owned, "at maxBlocksPerHost, not claiming");
                break;
            }
            for pool in &pools {
                if self.claim_block(&args.node, pool).await?.is_some() {
                    continue 'claiming;
                }
            }
            break;
        }

        // 3: borrow.
        if settings.strict_affinity {
            return Ok(got);
        }
        let listing = self.store.list(IPAM_BLOCKS).await?;
        for kv in &listing.kvs {
            let block = AllocationBlock::from_json(&kv.value)?;
            if block.free() == 0 || block.is_affine_to(&args.node) {
                continue;
            }
            let Some(pool) = pools.iter().find(|p| p.cidr.contains(block.cidr.network())) else {
                continue;
            };
            let need = wanted - got.len();
            let ips = self
                .allocate_in_block(&block.cidr, need, args, Some(kv.clone()))
                .await?;
            if !ips.is_empty() {
                debug!(node = %args.node, block = %block.cidr, n = ips.len(), "borrowed");
            }
            got.extend(ips.into_iter().map(|ip| (ip, pool.resource.clone())));
            if got.len() == wanted {
                break;
            }
        }
        Ok(got)
    }

    /// CIDRs of the blocks affine to `node` (confirmed affinity) inside `pools`, in order.
    /// Completes claims a crash left half-done.
    async fn affine_blocks(&self, node: &str, pools: &[Pool]) -> Result<Vec<IpNetwork>, IpamError> {
        let listing = self.store.list(&ipam_affinity_prefix(node)).await?;
        let mut cidrs = Vec::new();
        for kv in &listing.kvs {
            let Some(cidr) = kv.key.rsplit('/').next().and_then(parse_cidr_segment) else {
                continue;
            };
            if !pools.iter().any(|p| p.cidr.contains(cidr.network())) {
                continue;
            }
            let affinity = BlockAffinity::from_json(&kv.value)?;
            if affinity.state == AffinityState::Confirmed {
                cidrs.push(cidr);
            }
        }
        Ok(cidrs)
    }

    /// Claims a free block of `pool` for `node` (two-phase affinity). `None` when the pool has
    /// no unclaimed block.
    async fn claim_block(&self, node: &str, pool: &Pool) -> Result<Option<IpNetwork>, IpamError> {
        let Some(count) = block_count(&pool.cidr, pool.block_size) else {
            return Ok(None);
        };
        let listing = self.store.list(IPAM_BLOCKS).await?;
        let existing: Vec<IpNetwork> = block_cidrs(&listing.kvs).collect();
        // Every candidate is either skipped (it exists) or tried once; a lost race moves on
        // to the next candidate, whose creation is itself a CAS.
        let start = start_index(node, count);
        let mut scanned: u128 = 0;
        while scanned < count {
            let index = (start + scanned) % count;
            scanned += 1;
            let Some(cidr) = nth_block(&pool.cidr, pool.block_size, index) else {
                break;
            };
            if existing.iter().any(|b| overlaps(b, &cidr)) {
                continue;
            }
            if let Attempt::Done(()) = self.claim(node, cidr).await? {
                return Ok(Some(cidr));
            }
        }
        Ok(None)
    }

    /// The two phases for one candidate block.
    async fn claim(&self, node: &str, cidr: IpNetwork) -> Result<Attempt<()>, IpamError> {
        let affinity_key = ipam_affinity_key(node, &cidr);
        let block_key = ipam_block_key(&cidr);
        // Phase 1: pending affinity (or the leftover of our own crashed claim).
        let pending = BlockAffinity::new(AffinityState::Pending).to_json();
        let affinity_rev = match self.store.create(&affinity_key, pending).await {
            Ok(rev) => rev,
            Err(DatastoreError::AlreadyExists { .. }) => match self.store.get(&affinity_key).await?
            {
                Some(kv) => kv.mod_revision,
                None => return Ok(Attempt::Retry),
            },
            Err(e) => return Err(e.into()),
        };
        // Phase 2: the block, affine to us. Exactly one creator wins.
        let block = AllocationBlock::new(cidr, Some(node))?;
        match self.store.create(&block_key, block.to_json()).await {
            Ok(_) => {}
            Err(DatastoreError::AlreadyExists { .. }) => {
                let ours = match self.store.get(&block_key).await? {
                    Some(kv) => AllocationBlock::from_json(&kv.value)?.is_affine_to(node),
                    None => false,
                };
                if !ours {
                    debug!(%node, %cidr, "another node claimed the block first");
                    match self.store.delete(&affinity_key, affinity_rev).await {
                        Ok(_) => {}
                        Err(e) if conflicted(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                    return Ok(Attempt::Retry);
                }
            }
            Err(e) => return Err(e.into()),
        }
        // Phase 3: confirm.
        let confirmed = BlockAffinity::new(AffinityState::Confirmed).to_json();
        match self
            .store
            .update(&affinity_key, confirmed, affinity_rev)
            .await
        {
            Ok(_) => {
                info!(%node, %cidr, "claimed block");
                Ok(Attempt::Done(()))
            }
            // Someone else (our own concurrent claim) confirmed it: it is ours either way.
            Err(e) if conflicted(&e) => Ok(Attempt::Done(())),
            Err(e) => Err(e.into()),
        }
    }

    /// Allocates up to `n` addresses in block `cidr` for `args.handle` (block and handle in
    /// one transaction), retrying on conflict. `known` is a fresh read of the block, if any.
    async fn allocate_in_block(
        &self,
        cidr: &IpNetwork,
        n: usize,
        args: &AssignArgs,
        mut known: Option<KeyValue>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let block_key = ipam_block_key(cidr);
        let handle_key = ipam_handle_key(&args.handle);
        for _ in 0..RETRIES {
            let kv = match known.take() {
                Some(kv) => kv,
                None => match self.store.get(&block_key).await? {
                    Some(kv) => kv,
                    None => return Ok(Vec::new()),
                },
            };
            let mut block = AllocationBlock::from_json(&kv.value)?;
            if block.free() == 0 {
                return Ok(Vec::new());
            }
            let ips = block.allocate(n, Some(&args.handle), &args.attrs);
            let handle_kv = self.store.get(&handle_key).await?;
            let mut handle = match &handle_kv {
                Some(h) => IpamHandle::from_json(&h.value)?,
                None => IpamHandle::new(&args.handle),
            };
            handle.add(cidr, u32::try_from(ips.len()).unwrap_or(u32::MAX));
            let handle_write = match handle_kv {
                Some(h) => Write::Update {
                    key: handle_key.clone(),
                    value: handle.to_json(),
                    mod_revision: h.mod_revision,
                },
                None => Write::Create {
                    key: handle_key.clone(),
                    value: handle.to_json(),
                },
            };
            let writes = [
                Write::Update {
                    key: block_key.clone(),
                    value: block.to_json(),
                    mod_revision: kv.mod_revision,
                },
                handle_write,
            ];
            match self.store.commit(&writes).await {
                Ok(_) => return Ok(ips),
                Err(e) if conflicted(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::TooManyRetries {
            what: format!("allocating in block {cidr}"),
            attempts: RETRIES,
        })
    }

    /// Frees `ips` (those already free are skipped). Returns the addresses that were freed.
    /// A block left empty is deleted with its affinity (if it stays empty until that write).
    pub async fn release_ips(&self, ips: &[IpAddr]) -> Result<Vec<IpAddr>, IpamError> {
        let listing = self.store.list(IPAM_BLOCKS).await?;
        let mut by_block: BTreeMap<IpNetwork, Vec<IpAddr>> = BTreeMap::new();
        for ip in ips {
            let block = block_cidrs(&listing.kvs).find(|cidr| cidr.contains(*ip));
            if let Some(cidr) = block {
                by_block.entry(cidr).or_default().push(*ip);
            }
        }
        let mut released = Vec::new();
        for (cidr, ips) in by_block {
            released.extend(
                self.release_in_block(&cidr, |block| {
                    ips.iter()
                        .filter_map(|ip| match block.release(*ip, None) {
                            Ok(Some(handle)) => Some((*ip, handle)),
                            _ => None,
                        })
                        .collect()
                })
                .await?,
            );
        }
        Ok(released)
    }

    /// Frees every address held by `handle` and deletes the handle. Idempotent: an unknown
    /// handle frees nothing. Returns the addresses freed.
    pub async fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let Some(blocks) = self.handle_blocks(handle).await? else {
            return Ok(Vec::new());
        };
        let mut released = Vec::new();
        for cidr in blocks {
            released.extend(
                self.release_in_block(&cidr, |block| {
                    block
                        .release_by_handle(handle)
                        .into_iter()
                        .map(|ip| (ip, Some(handle.to_string())))
                        .collect()
                })
                .await?,
            );
        }
        // Drop a record that no block refers to any more (e.g. its block vanished).
        if let Some(kv) = self.store.get(&ipam_handle_key(handle)).await? {
            let record = IpamHandle::from_json(&kv.value)?;
            let mut stale = true;
            for segment in record.blocks.keys() {
                let Some(cidr) = parse_cidr_segment(segment) else {
                    continue;
                };
                if let Some(b) = self.store.get(&ipam_block_key(&cidr)).await? {
                    stale &= AllocationBlock::from_json(&b.value)?
                        .ips_by_handle(handle)
                        .is_empty();
                }
            }
            if stale {
                match self.store.delete(&kv.key, kv.mod_revision).await {
                    Ok(_) => {}
                    Err(e) if conflicted(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(released)
    }

    /// Applies `release` to block `cidr` and writes the block plus the affected handles in
    /// one transaction, retrying on conflict. Then deletes the block if it became empty.
    async fn release_in_block<F>(
        &self,
        cidr: &IpNetwork,
        release: F,
    ) -> Result<Vec<IpAddr>, IpamError>
    where
        F: Fn(&mut AllocationBlock) -> Vec<(IpAddr, Option<String>)>,
    {
        let block_key = ipam_block_key(cidr);
        for _ in 0..RETRIES {
            let Some(kv) = self.store.get(&block_key).await? else {
                return Ok(Vec::new());
            };
            let mut block = AllocationBlock::from_json(&kv.value)?;
            let freed = release(&mut block);
            if freed.is_empty() {
                return Ok(Vec::new());
            }
            let mut per_handle: BTreeMap<String, u32> = BTreeMap::new();
            for (_, handle) in &freed {
                if let Some(h) = handle {
                    *per_handle.entry(h.clone()).or_default() += 1;
                }
            }
            let mut writes = vec![Write::Update {
                key: block_key.clone(),
                value: block.to_json(),
                mod_revision: kv.mod_revision,
            }];
            for (handle, n) in &per_handle {
                let key = ipam_handle_key(handle);
                let Some(hkv) = self.store.get(&key).await? else {
                    continue;
                };
                let mut record = IpamHandle::from_json(&hkv.value)?;
                record.remove(cidr, *n);
                writes.push(if record.blocks.is_empty() {
                    Write::Delete {
                        key,
                        mod_revision: hkv.mod_revision,
                    }
                } else {
                    Write::Update {
                        key,
                        value: record.to_json(),
                        mod_revision: hkv.mod_revision,
                    }
                });
            }
            match self.store.commit(&writes).await {
                Ok(revision) => {
                    if block.is_empty() {
                        self.delete_empty_block(&block, revision).await?;
                    }
                    return Ok(freed.into_iter().map(|(ip, _)| ip).collect());
                }
                Err(e) if conflicted(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::TooManyRetries {
            what: format!("releasing in block {cidr}"),
            attempts: RETRIES,
        })
    }

    /// Deletes an empty block and its affinity in one transaction, only if the block is still
    /// at `revision` (nobody allocated since). Losing that race is fine: the block stays.
    async fn delete_empty_block(
        &self,
        block: &AllocationBlock,
        revision: i64,
    ) -> Result<(), IpamError> {
        let mut writes = vec![Write::Delete {
            key: ipam_block_key(&block.cidr),
            mod_revision: revision,
        }];
        if let Some(node) = block.affine_node() {
            let key = ipam_affinity_key(node, &block.cidr);
            if let Some(kv) = self.store.get(&key).await? {
                writes.push(Write::Delete {
                    key,
                    mod_revision: kv.mod_revision,
                });
            }
        }
        match self.store.commit(&writes).await {
            Ok(_) => {
                info!(block = %block.cidr, node = ?block.affine_node(), "released empty block");
                Ok(())
            }
            Err(e) if conflicted(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Addresses held by `handle`.
    pub async fn ips_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let Some(blocks) = self.handle_blocks(handle).await? else {
            return Ok(Vec::new());
        };
        let mut ips = Vec::new();
        for cidr in blocks {
            if let Some(b) = self.store.get(&ipam_block_key(&cidr)).await? {
                ips.extend(AllocationBlock::from_json(&b.value)?.ips_by_handle(handle));
            }
        }
        Ok(ips)
    }

    /// The blocks `handle` holds addresses in, by its record (`None`: no such handle).
    async fn handle_blocks(&self, handle: &str) -> Result<Option<Vec<IpNetwork>>, IpamError> {
        let Some(kv) = self.store.get(&ipam_handle_key(handle)).await? else {
            return Ok(None);
        };
        let record = IpamHandle::from_json(&kv.value)?;
        Ok(Some(
            record
                .blocks
                .keys()
                .filter_map(|s| parse_cidr_segment(s))
                .collect(),
        ))
    }

    /// Every block in etcd, decoded, in key order.
    pub async fn blocks(&self) -> Result<Vec<AllocationBlock>, IpamError> {
        let listing = self.store.list(IPAM_BLOCKS).await?;
        listing
            .kvs
            .iter()
            .map(|kv| AllocationBlock::from_json(&kv.value))
            .collect()
    }

    /// Every affinity: `(node, block, state)`.
    pub async fn affinities(&self) -> Result<Vec<(String, IpNetwork, AffinityState)>, IpamError> {
        let listing = self.store.list(IPAM_AFFINITY).await?;
        let mut out = Vec::new();
        for kv in &listing.kvs {
            let rest = kv.key.strip_prefix(IPAM_AFFINITY).unwrap_or(&kv.key);
            let Some((node, segment)) = rest.rsplit_once('/') else {
                continue;
            };
            let Some(cidr) = parse_cidr_segment(segment) else {
                continue;
            };
            out.push((
                node.to_string(),
                cidr,
                BlockAffinity::from_json(&kv.value)?.state,
            ));
        }
        Ok(out)
    }
}

fn pool_of<'a>(pools: &'a [Pool], cidr: &IpNetwork) -> &'a Pool {
    pools
        .iter()
        .find(|p| p.cidr.contains(cidr.network()))
        .unwrap_or(&pools[0])
}

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

pub(crate) fn decode_resource(kv: &KeyValue) -> Result<Resource, IpamError> {
    let text = std::str::from_utf8(&kv.value).map_err(|e| IpamError::Decode {
        what: "resource",
        reason: format!("{}: {e}", kv.key),
    })?;
    Resource::from_json(text).map_err(|e| IpamError::Decode {
        what: "resource",
        reason: format!("{}: {e}", kv.key),
    })
}
