//! [`Ipam`]: the etcd-backed IPAM driver over the pure [`AllocationBlock`].
//!
//! Allocation for a node (Calico's `autoAssign`, libcalico-go `lib/ipam/ipam.go`) starts from
//! one read, an [`AssignSnapshot`] (the `default` IPAMConfiguration, the IP pools and the
//! node's affinities in one etcd transaction), then:
//! 1. blocks affine to the node (confirmed affinities; all read in one request), in CIDR
//!    order;
//! 2. when those are full, claim a new block (up to `maxBlocksPerHost`): one transaction
//!    creates the block and the node's confirmed affinity together, each guarded by "absent",
//!    so of two nodes racing for one block exactly one wins and the other moves on to the next
//!    ([`super::claim`], which also says why this replaces Calico's two-phase claim). The
//!    addresses are then allocated in the block just claimed, without reading it again;
//! 3. unless `strictAffinity`, borrow addresses from any other block of the pools that has
//!    room.
//!
//! Every write is a CAS ([`Store::commit`]); on a conflict the writer re-reads and retries (up
//! to [`RETRIES`] times). An allocation updates the block and the handle record in one
//! transaction, so the two never disagree. A release that empties a block deletes the block
//! and its affinity in one transaction guarded by the block's revision: if anyone allocated
//! in it meanwhile, the block stays.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use tracing::{debug, info};

use super::block::AllocationBlock;
use super::record::{AffinityState, BlockAffinity, IpamHandle};
use super::{Family, IpamError};
use crate::etcd::{DatastoreError, KeyValue, Read, Store, Write};
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

/// The reads an assignment starts with, taken in one etcd transaction by [`Ipam::snapshot`]
/// (one round trip instead of one per read, all at one revision): the `default`
/// IPAMConfiguration, every IP pool, the node's block affinities, and any further keys the
/// caller asked for.
#[derive(Debug, Clone, Default)]
pub struct AssignSnapshot {
    node: String,
    settings: Option<KeyValue>,
    pools: Vec<KeyValue>,
    affinities: Vec<KeyValue>,
    /// The further keys asked for, in the order asked.
    pub extra: Vec<Option<KeyValue>>,
}

/// A usable pool with its parsed network and block size.
#[derive(Debug, Clone)]
pub(super) struct Pool {
    pub(super) resource: IpPool,
    pub(super) cidr: IpNetwork,
    pub(super) block_size: u8,
}

/// The IPAM driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ipam {
    store: Store,
}

pub(super) fn conflicted(e: &DatastoreError) -> bool {
    matches!(
        e,
        DatastoreError::Conflict { .. }
            | DatastoreError::AlreadyExists { .. }
            | DatastoreError::NotFound { .. }
    )
}

/// A starting index for a node's block search, so nodes do not all race for block 0.
pub(super) fn start_index(node: &str, count: u128) -> u128 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in node.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u128::from(hash) % count.max(1)
}

fn settings_key() -> String {
    resource_key(Kind::IpamConfiguration.plural(), None, "default")
}

/// The settings stored in the `default` IPAMConfiguration (defaults when absent).
fn settings_from(kv: Option<&KeyValue>) -> Result<IpamSettings, IpamError> {
    let Some(kv) = kv else {
        return Ok(IpamSettings::default());
    };
    let Resource::IpamConfiguration(IpamConfiguration { spec, .. }) = decode_resource(kv)? else {
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

fn decode_pool(kv: &KeyValue) -> Result<IpPool, IpamError> {
    match decode_resource(kv)? {
        Resource::IpPool(pool) => Ok(pool),
        _ => Err(IpamError::Decode {
            what: "IPPool",
            reason: format!("{} holds another kind", kv.key),
        }),
    }
}

/// The pools of `stored` that may serve `args` for `family` and `usage`, in CIDR order.
fn usable_pools(
    stored: &[KeyValue],
    args: &AssignArgs,
    family: Family,
    usage: AllowedUse,
) -> Result<Vec<Pool>, IpamError> {
    let mut usable = Vec::new();
    for kv in stored {
        let resource = decode_pool(kv)?;
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
        let kv = self.store.get(&settings_key()).await?;
        settings_from(kv.as_ref())
    }

    /// Every IPPool in etcd.
    pub async fn pools(&self) -> Result<Vec<IpPool>, IpamError> {
        let listing = self
            .store
            .list(&resource_prefix(Kind::IpPool.plural()))
            .await?;
        listing.kvs.iter().map(decode_pool).collect()
    }

    /// Takes the reads every assignment for `node` starts with, plus the keys in `extra`, in
    /// one etcd transaction (see [`AssignSnapshot`]).
    pub async fn snapshot(
        &self,
        node: &str,
        extra: &[String],
    ) -> Result<AssignSnapshot, IpamError> {
        let mut reads = vec![
            Read::Key(settings_key()),
            Read::Prefix(resource_prefix(Kind::IpPool.plural())),
            Read::Prefix(ipam_affinity_prefix(node)),
        ];
        reads.extend(extra.iter().cloned().map(Read::Key));
        let mut answers = self.store.read(&reads).await?.into_iter();
        let mut next = || answers.next().unwrap_or_default();
        let settings = next().into_iter().next();
        let pools = next();
        let affinities = next();
        let extra = extra.iter().map(|_| next().into_iter().next()).collect();
        Ok(AssignSnapshot {
            node: node.to_string(),
            settings,
            pools,
            affinities,
            extra,
        })
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
        let snapshot = self.snapshot(&args.node, &[]).await?;
        self.auto_assign_from(args, usage, &snapshot).await
    }

    /// [`Ipam::auto_assign_for`] starting from `snapshot` (taken for `args.node`; one taken for
    /// another node is taken again), so a caller that needs more keys before assigning (the
    /// CNI plugin: the handle and the Node) reads them in the same round trip.
    pub async fn auto_assign_from(
        &self,
        args: &AssignArgs,
        usage: AllowedUse,
        snapshot: &AssignSnapshot,
    ) -> Result<Assigned, IpamError> {
        let retaken;
        let snapshot = if snapshot.node == args.node {
            snapshot
        } else {
            retaken = self.snapshot(&args.node, &[]).await?;
            &retaken
        };
        let settings = match args.settings {
            Some(s) => s,
            None => settings_from(snapshot.settings.as_ref())?,
        };
        let mut assigned = Assigned::default();
        for (family, wanted) in [(Family::V4, args.num_v4), (Family::V6, args.num_v6)] {
            if wanted == 0 {
                continue;
            }
            let result = self
                .assign_family(args, &settings, family, wanted, usage, snapshot)
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
        snapshot: &AssignSnapshot,
    ) -> Result<Vec<(IpAddr, IpPool)>, IpamError> {
        let pools = usable_pools(&snapshot.pools, args, family, usage)?;
        if pools.is_empty() {
            return Err(IpamError::NoPools { family });
        }
        let mut got: Vec<(IpAddr, IpPool)> = Vec::new();

        // 1: blocks affine to the node.
        let affine = self
            .affine_blocks(&args.node, &pools, &snapshot.affinities)
            .await?;
        let mut owned = affine.len();
        for (cidr, kv) in affine {
            if AllocationBlock::from_json(&kv.value)?.free() == 0 {
                continue;
            }
            let need = wanted - got.len();
            let ips = self.allocate_in_block(&cidr, need, args, Some(kv)).await?;
            let pool = pool_of(&pools, &cidr);
            got.extend(ips.into_iter().map(|ip| (ip, pool.resource.clone())));
            if got.len() == wanted {
                return Ok(got);
            }
        }

        // 2: claim new blocks while allowed, allocating in each as it is claimed.
        let mut known_blocks = None;
        while settings.auto_allocate_blocks && got.len() < wanted {
            if settings
                .max_blocks_per_host
                .is_some_and(|max| owned >= max as usize)
            {
                debug!(node = %args.node, owned, "at maxBlocksPerHost, not claiming");
                break;
            }
            let mut claimed = None;
            for pool in &pools {
                if let Some(block) = self
                    .claim_block(&args.node, pool, &mut known_blocks)
                    .await?
                {
                    claimed = Some((pool, block));
                    break;
                }
            }
            let Some((pool, (cidr, kv))) = claimed else {
                break;
            };
            owned += 1;
            let need = wanted - got.len();
            let ips = self.allocate_in_block(&cidr, need, args, Some(kv)).await?;
            got.extend(ips.into_iter().map(|ip| (ip, pool.resource.clone())));
        }
        if got.len() == wanted {
            return Ok(got);
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
        let blocks = self.block_cidrs().await?;
        let mut by_block: BTreeMap<IpNetwork, Vec<IpAddr>> = BTreeMap::new();
        for ip in ips {
            let block = blocks.iter().find(|cidr| cidr.contains(*ip)).copied();
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
        let Some(kv) = self.store.get(&ipam_handle_key(handle)).await? else {
            return Ok(Vec::new());
        };
        let record = IpamHandle::from_json(&kv.value)?;
        let mut released = Vec::new();
        for segment in record.blocks.keys() {
            let Some(cidr) = parse_cidr_segment(segment) else {
                continue;
            };
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
        let record = self.store.get(&ipam_handle_key(handle)).await?;
        self.ips_of_handle(handle, record.as_ref()).await
    }

    /// [`Ipam::ips_by_handle`] from the handle's record as already read (`None`: there is no
    /// record), reading its blocks in one request.
    pub async fn ips_of_handle(
        &self,
        handle: &str,
        record: Option<&KeyValue>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let Some(kv) = record else {
            return Ok(Vec::new());
        };
        let record = IpamHandle::from_json(&kv.value)?;
        let keys: Vec<String> = record
            .blocks
            .keys()
            .filter_map(|segment| parse_cidr_segment(segment))
            .map(|cidr| ipam_block_key(&cidr))
            .collect();
        let mut ips = Vec::new();
        for block in self.store.get_many(&keys).await?.into_iter().flatten() {
            ips.extend(AllocationBlock::from_json(&block.value)?.ips_by_handle(handle));
        }
        Ok(ips)
    }

    /// The CIDRs of every block in etcd, in key order (a keys-only listing).
    pub(super) async fn block_cidrs(&self) -> Result<Vec<IpNetwork>, IpamError> {
        Ok(self
            .store
            .list_keys(IPAM_BLOCKS)
            .await?
            .iter()
            .filter_map(|key| key.strip_prefix(IPAM_BLOCKS).and_then(parse_cidr_segment))
            .collect())
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
