//! Claiming a block for a node, and settling the claims older versions left half-done.
//!
//! A claim is **one etcd transaction**: `If(version(block) = 0 ∧ version(affinity) = 0)
//! Then(put block affine to the node, put the node's affinity as confirmed)`. Of two nodes
//! racing for one block exactly one transaction succeeds; the other fails as a whole, wrote
//! nothing, and moves on to the next candidate block.
//!
//! ## Why one transaction replaces Calico's two-phase claim
//!
//! Calico (libcalico-go `lib/ipam/ipam_block_reader_writer.go`: `getPendingAffinity`,
//! `claimAffineBlock`, `confirmAffinity`) claims in three writes: create the affinity
//! `pending`, create the block affine to the host, confirm the affinity. Its datastore
//! interface has single-object compare-and-swap only (it must also run over the Kubernetes
//! API, which has no multi-object transaction), so the order of writes and the pending state
//! stand in for atomicity. They protect against:
//! 1. **a crash between writes**: the affinity is written first, so a block affine to a host
//!    always has that host's affinity record to be found and cleaned up by; and a pending
//!    affinity whose block never appeared is resumed by the host's next claim or reported;
//! 2. **readers taking a half-done claim for ownership**: routing and the audits only count
//!    confirmed affinities, so a pending one (no block yet, or a block another host won) is
//!    never routed;
//! 3. **two hosts racing for one block**: the block create is the compare-and-swap that
//!    decides; the loser deletes its pending affinity.
//!
//! With one transaction none of the intermediate states exists. etcd applies a transaction's
//! compares and puts atomically at one revision, so: (1) a crash (of the plugin, mid-request,
//! or of etcd) leaves either both keys or neither, and a retried transaction whose first
//! attempt landed is recognised by [`crate::etcd::Store::commit`]; (2) no read and no watch
//! revision holds the block without its confirmed affinity or the reverse (Felix watches the
//! two prefixes with separate syncers and may see one a moment before the other, which is the
//! "not yet claimed" it already handles); (3) the loser's transaction fails on the block's
//! compare and wrote nothing, so there is nothing to undo. A claim is also one commit and one
//! WAL fsync instead of three, which is most of the time from CNI ADD to the block in etcd.
//!
//! ## Affinities left pending by older versions
//!
//! vrouter no longer writes `pending`, but a cluster upgraded mid-claim may hold some (and an
//! older plugin may still be running one during a rolling upgrade). They are settled as
//! Calico's protocol would have completed them, each write guarded by the affinity's
//! revision so a concurrent older claim loses cleanly:
//! - block absent: the next claim of that block by the node (its search starts at the same
//!   block every time) finds the affinity and completes the claim: one transaction creates the
//!   block and confirms the affinity;
//! - block present and affine to the node (the crash was before the confirm): the next
//!   assignment on the node confirms it and uses the block;
//! - block present and affine elsewhere (the crash was before the loser's cleanup): the next
//!   assignment on the node deletes it.
//!
//! `vrctl ipam check` still reports pending affinities ([`super::Finding::StalePendingAffinity`]).

use ipnetwork::IpNetwork;
use tracing::{debug, info};

use super::block::{AllocationBlock, block_count, nth_block};
use super::client::{Pool, conflicted, start_index};
use super::record::{AffinityState, BlockAffinity};
use super::{Ipam, IpamError};
use crate::etcd::{DatastoreError, KeyValue, Write};
use crate::keys::{ipam_affinity_key, ipam_block_key, parse_cidr_segment};

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

fn confirmed() -> Vec<u8> {
    BlockAffinity::new(AffinityState::Confirmed).to_json()
}

impl Ipam {
    /// The blocks affine to `node` inside `pools`, each with its current value (one request
    /// for all of them), in CIDR order. `affinities` is the node's affinity listing; pending
    /// ones are settled on the way (module documentation).
    pub(super) async fn affine_blocks(
        &self,
        node: &str,
        pools: &[Pool],
        affinities: &[KeyValue],
    ) -> Result<Vec<(IpNetwork, KeyValue)>, IpamError> {
        let mut confirmed_cidrs = Vec::new();
        let mut pending = Vec::new();
        for kv in affinities {
            let Some(cidr) = kv.key.rsplit('/').next().and_then(parse_cidr_segment) else {
                continue;
            };
            if !pools.iter().any(|p| p.cidr.contains(cidr.network())) {
                continue;
            }
            match BlockAffinity::from_json(&kv.value)?.state {
                AffinityState::Confirmed => confirmed_cidrs.push(cidr),
                AffinityState::Pending => pending.push((cidr, kv.clone())),
            }
        }
        let keys: Vec<String> = confirmed_cidrs
            .iter()
            .chain(pending.iter().map(|(cidr, _)| cidr))
            .map(ipam_block_key)
            .collect();
        let mut blocks = self.store().get_many(&keys).await?.into_iter();
        let mut affine = Vec::new();
        for cidr in confirmed_cidrs {
            // A confirmed affinity without its block is dangling (`check` reports it).
            if let Some(Some(kv)) = blocks.next() {
                affine.push((cidr, kv));
            }
        }
        for (cidr, affinity) in pending {
            let block = blocks.next().flatten();
            if let Some(kv) = self.settle_pending(node, cidr, &affinity, block).await? {
                affine.push((cidr, kv));
            }
        }
        affine.sort_by_key(|(cidr, _)| *cidr);
        Ok(affine)
    }

    /// Settles a pending affinity of `node` for `cidr` whose block exists (module
    /// documentation); returns the block when it is the node's.
    async fn settle_pending(
        &self,
        node: &str,
        cidr: IpNetwork,
        affinity: &KeyValue,
        block: Option<KeyValue>,
    ) -> Result<Option<KeyValue>, IpamError> {
        let Some(block) = block else {
            return Ok(None);
        };
        let ours = AllocationBlock::from_json(&block.value)?.is_affine_to(node);
        let write = if ours {
            Write::Update {
                key: affinity.key.clone(),
                value: confirmed(),
                mod_revision: affinity.mod_revision,
            }
        } else {
            Write::Delete {
                key: affinity.key.clone(),
                mod_revision: affinity.mod_revision,
            }
        };
        match self.store().commit(&[write]).await {
            Ok(_) => info!(%node, %cidr, ours, "settled a pending affinity"),
            Err(e) if conflicted(&e) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(ours.then_some(block))
    }

    /// Claims a free block of `pool` for `node` and returns it as written. `known` caches the
    /// CIDRs of the existing blocks (a keys-only listing, read on first use and kept up to
    /// date by the claims). `None` when the pool has no block left to claim.
    pub(super) async fn claim_block(
        &self,
        node: &str,
        pool: &Pool,
        known: &mut Option<Vec<IpNetwork>>,
    ) -> Result<Option<(IpNetwork, KeyValue)>, IpamError> {
        let Some(count) = block_count(&pool.cidr, pool.block_size) else {
            return Ok(None);
        };
        if known.is_none() {
            *known = Some(self.block_cidrs().await?);
        }
        let existing = known.get_or_insert_with(Vec::new);
        // Every candidate is either skipped (it exists) or tried once; a lost race moves on
        // to the next candidate, whose creation is itself a CAS.
        let start = start_index(node, count);
        for scanned in 0..count {
            let index = (start + scanned) % count;
            let Some(cidr) = nth_block(&pool.cidr, pool.block_size, index) else {
                break;
            };
            if existing.iter().any(|b| overlaps(b, &cidr)) {
                continue;
            }
            let claimed = self.claim(node, cidr).await?;
            existing.push(cidr);
            if let Some(kv) = claimed {
                return Ok(Some((cidr, kv)));
            }
        }
        Ok(None)
    }

    /// One claim of `cidr` for `node`: the block and its confirmed affinity in one
    /// transaction. Returns the block as stored, or `None` when another node has it.
    async fn claim(&self, node: &str, cidr: IpNetwork) -> Result<Option<KeyValue>, IpamError> {
        let block_key = ipam_block_key(&cidr);
        let affinity_key = ipam_affinity_key(node, &cidr);
        let block = AllocationBlock::new(cidr, Some(node))?.to_json();
        let create_block = Write::Create {
            key: block_key.clone(),
            value: block.clone(),
        };
        let writes = [
            create_block.clone(),
            Write::Create {
                key: affinity_key.clone(),
                value: confirmed(),
            },
        ];
        let mut result = self.store().commit(&writes).await;
        if matches!(&result, Err(DatastoreError::AlreadyExists { key }) if *key == affinity_key) {
            // The block is absent but our affinity exists: an older version's claim that
            // stopped after its first phase. Complete it.
            if let Some(affinity) = self.store().get(&affinity_key).await? {
                let complete = [
                    create_block,
                    Write::Update {
                        key: affinity_key,
                        value: confirmed(),
                        mod_revision: affinity.mod_revision,
                    },
                ];
                result = self.store().commit(&complete).await;
            }
        }
        match result {
            Ok(revision) => {
                info!(%node, %cidr, "claimed block");
                Ok(Some(KeyValue {
                    key: block_key,
                    value: block,
                    mod_revision: revision,
                    create_revision: revision,
                }))
            }
            Err(DatastoreError::AlreadyExists { key }) if key == block_key => {
                // Another process of this node may have claimed it a moment ago: then it is
                // ours to use (as in Calico).
                let Some(kv) = self.store().get(&block_key).await? else {
                    return Ok(None);
                };
                if AllocationBlock::from_json(&kv.value)?.is_affine_to(node) {
                    return Ok(Some(kv));
                }
                debug!(%node, %cidr, "another node claimed the block first");
                Ok(None)
            }
            Err(e) if conflicted(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::{EtcdConfig, Store};
    use crate::resource::IpPool;
    use test_support::etcd::Etcd;

    /// Two nodes race for the same block, each with one transaction: exactly one wins, the
    /// other takes the next block, and neither leaves a pending or dangling affinity.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_racing_for_one_block_exactly_one_wins_the_other_takes_the_next() {
        let etcd = Etcd::start().expect("etcd");
        let store = Store::connect(&EtcdConfig::new([etcd.endpoint()]))
            .await
            .expect("connect");
        let ipam = Ipam::new(store.clone());
        const COUNT: u128 = 4;
        // Two node names whose block searches start at the same block.
        let names: Vec<String> = (0..64).map(|i| format!("node-{i}")).collect();
        let (a, b) = names
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                let b = names[i + 1..]
                    .iter()
                    .find(|b| start_index(a, COUNT) == start_index(b, COUNT))?;
                Some((a.clone(), b.clone()))
            })
            .expect("two names with the same start");
        let start = start_index(&a, COUNT);
        for round in 0..5u8 {
            let network = format!("10.81.{round}.0/28");
            let cidr: IpNetwork = network.parse().expect("cidr");
            let pool = Pool {
                resource: IpPool::new(format!("race-{round}"), &network),
                cidr,
                block_size: 30,
            };
            // Both decide from the same view, taken before either wrote: no block exists.
            let (mut view_a, mut view_b) = (Some(Vec::new()), Some(Vec::new()));
            let (won_a, won_b) = tokio::join!(
                ipam.claim_block(&a, &pool, &mut view_a),
                ipam.claim_block(&b, &pool, &mut view_b)
            );
            let (cidr_a, _) = won_a.expect("claim a").expect("a got a block");
            let (cidr_b, _) = won_b.expect("claim b").expect("b got a block");
            let first = nth_block(&cidr, 30, start).expect("first");
            let next = nth_block(&cidr, 30, (start + 1) % COUNT).expect("next");
            let mut got = [cidr_a, cidr_b];
            got.sort();
            let mut wanted = [first, next];
            wanted.sort();
            assert_eq!(
                got, wanted,
                "one won the contested block, the other took the next"
            );

            let blocks: Vec<AllocationBlock> = ipam
                .blocks()
                .await
                .expect("blocks")
                .into_iter()
                .filter(|block| cidr.contains(block.cidr.network()))
                .collect();
            assert_eq!(blocks.len(), 2);
            assert!(
                blocks
                    .iter()
                    .any(|x| x.cidr == cidr_a && x.is_affine_to(&a))
            );
            assert!(
                blocks
                    .iter()
                    .any(|x| x.cidr == cidr_b && x.is_affine_to(&b))
            );
            let mut affinities: Vec<_> = ipam
                .affinities()
                .await
                .expect("affinities")
                .into_iter()
                .filter(|(_, block, _)| cidr.contains(block.network()))
                .collect();
            affinities.sort_by(|x, y| x.0.cmp(&y.0));
            let mut expected = vec![
                (a.clone(), cidr_a, AffinityState::Confirmed),
                (b.clone(), cidr_b, AffinityState::Confirmed),
            ];
            expected.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(affinities, expected);
        }
        // The nodes have no Node resource (orphaned blocks), but nothing is inconsistent and
        // no claim was left pending.
        let report = super::super::check(&store).await.expect("check");
        assert!(report.inconsistencies().is_empty(), "{report}");
        assert!(
            !report
                .findings
                .iter()
                .any(|f| matches!(f, super::super::Finding::StalePendingAffinity { .. })),
            "{report}"
        );
    }
}
