//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): what we advertise to one peer, the changes not yet sent,
//! ADD-PATH path-id allocation on the send side (RFC 7911), and update packing: pending
//! announcements are grouped by family and attribute set and split so that no UPDATE exceeds
//! the session's maximum message size (4,096 bytes unless RFC 8654 applies). End-of-RIB
//! markers come from [`AdjRibOut::end_of_rib`].
//!
//! Two stores share the packer ([`pack`]): [`AdjRibOut`] keeps every advertised route with
//! its attribute set (needed for ADD-PATH path ids), and [`AdjRibOutBits`], for sessions
//! without ADD-PATH send, keeps only two bitsets over a speaker-wide [`PrefixIndex`] (what
//! the peer holds, what changed) and takes the attribute sets from export at flush time: a
//! route reflector's per-client memory.

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;

use super::prefix_index::{IdSet, PrefixIndex};
use crate::wire::{
    CodecContext, EncodeError, Family, HEADER_LEN, Nlri, PathAttributes, Prefix, Update,
    attributes_len,
};

/// Groups of one flush looked up linearly before a hash table is worth building.
const LINEAR_GROUPS: usize = 16;

/// Fixed UPDATE overhead: header plus the two section length fields.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 4;
/// MP_UNREACH_NLRI framing: flags, type, 2-octet length, AFI, SAFI.
const MP_UNREACH_OVERHEAD: usize = 7;

/// The routes of one UPDATE, packed but not yet built or encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// Withdrawals (one family).
    Withdraw(Vec<Nlri>),
    /// Announcements (one family) sharing one attribute set.
    Announce(Arc<PathAttributes>, Vec<Nlri>),
}

impl Packed {
    /// The UPDATE message.
    pub fn into_update(self) -> Update {
        match self {
            Packed::Withdraw(nlri) => Update::withdraw(nlri),
            Packed::Announce(attributes, nlri) => {
                Update::announce(Arc::unwrap_or_clone(attributes), nlri)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct OutEntry {
    attributes: Arc<PathAttributes>,
    sent: bool,
}

/// The routes advertised to one peer.
#[derive(Debug, Clone)]
pub struct AdjRibOut {
    ctx: CodecContext,
    entries: HashMap<Nlri, OutEntry>,
    ids: HashMap<Prefix, Vec<u32>>,
    announce: BTreeSet<Nlri>,
    withdraw: BTreeSet<Nlri>,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out for a session with context `ctx`.
    pub fn new(ctx: CodecContext) -> AdjRibOut {
        AdjRibOut {
            ctx,
            entries: HashMap::default(),
            ids: HashMap::default(),
            announce: BTreeSet::new(),
            withdraw: BTreeSet::new(),
        }
    }

    /// Sets what `prefix` should be advertised with: one attribute set per path (export policy
    /// already applied), best first. Without ADD-PATH send only the first is used; with it,
    /// each path keeps its path id for as long as its attributes stay the same. An empty slice
    /// withdraws the prefix.
    pub fn set(&mut self, prefix: Prefix, paths: &[Arc<PathAttributes>]) {
        let add_path = self.ctx.add_path_send.contains(prefix.family());
        if !add_path {
            self.set_single(prefix, paths.first());
            return;
        }
        let wanted: &[Arc<PathAttributes>] = if add_path {
            paths
        } else {
            &paths[..paths.len().min(1)]
        };
        let current: Vec<u32> = self.ids.remove(&prefix).unwrap_or_default();
        let mut assigned: Vec<(u32, Arc<PathAttributes>)> = Vec::new();
        let mut fresh = Vec::new();
        for attrs in wanted {
            let reuse = current.iter().copied().find(|id| {
                !assigned.iter().any(|(a, _)| a == id)
                    && self
                        .entries
                        .get(&Nlri::with_path_id(prefix, *id))
                        .is_some_and(|e| e.attributes == *attrs)
            });
            match reuse {
                Some(id) => assigned.push((id, Arc::clone(attrs))),
                None => fresh.push(Arc::clone(attrs)),
            }
        }
        for attrs in fresh {
            let id = if add_path {
                (1..)
                    .find(|id| !assigned.iter().any(|(a, _)| a == id))
                    .unwrap_or(u32::MAX)
            } else {
                0
            };
            assigned.push((id, attrs));
        }
        for id in current {
            if !assigned.iter().any(|(a, _)| *a == id) {
                let nlri = Nlri::with_path_id(prefix, id);
                if let Some(entry) = self.entries.remove(&nlri) {
                    self.announce.remove(&nlri);
                    if entry.sent {
                        self.withdraw.insert(nlri);
                    }
                }
            }
        }
        for (id, attributes) in &assigned {
            let nlri = Nlri::with_path_id(prefix, *id);
            let unchanged = self
                .entries
                .get(&nlri)
                .is_some_and(|e| e.attributes == *attributes);
            if !unchanged {
                self.entries.insert(
                    nlri,
                    OutEntry {
                        attributes: Arc::clone(attributes),
                        sent: false,
                    },
                );
                self.announce.insert(nlri);
                self.withdraw.remove(&nlri);
            }
        }
        if !assigned.is_empty() {
            self.ids
                .insert(prefix, assigned.into_iter().map(|(id, _)| id).collect());
        }
    }

    /// [`AdjRibOut::set`] without ADD-PATH: one route per prefix, path id 0, no id list
    /// (a reflector holds one Adj-RIB-Out per client, so this is its per-route memory).
    fn set_single(&mut self, prefix: Prefix, attributes: Option<&Arc<PathAttributes>>) {
        let nlri = Nlri::with_path_id(prefix, 0);
        match attributes {
            None => {
                if let Some(entry) = self.entries.remove(&nlri) {
                    self.announce.remove(&nlri);
                    if entry.sent {
                        self.withdraw.insert(nlri);
                    }
                }
            }
            Some(attributes) => {
                if self
                    .entries
                    .get(&nlri)
                    .is_some_and(|e| e.attributes == *attributes)
                {
                    return;
                }
                self.entries.insert(
                    nlri,
                    OutEntry {
                        attributes: Arc::clone(attributes),
                        sent: false,
                    },
                );
                self.announce.insert(nlri);
                self.withdraw.remove(&nlri);
            }
        }
    }

    /// Queues every advertised route of `family` again (answering a route refresh).
    pub fn refresh(&mut self, family: Family) {
        for (nlri, entry) in &mut self.entries {
            if nlri.prefix.family() == family {
                entry.sent = false;
                self.announce.insert(*nlri);
            }
        }
    }

    /// Whether changes are waiting to be sent.
    pub fn has_pending(&self) -> bool {
        !self.announce.is_empty() || !self.withdraw.is_empty()
    }

    /// The End-of-RIB marker for `family` (RFC 4724 §2), sent after the initial advertisement.
    pub fn end_of_rib(family: Family) -> Update {
        Update::end_of_rib(family)
    }

    /// Builds the UPDATEs carrying every pending change, withdrawals first, and marks them sent.
    pub fn flush(&mut self) -> Result<Vec<Update>, EncodeError> {
        Ok(self
            .flush_packed()?
            .into_iter()
            .map(Packed::into_update)
            .collect())
    }

    /// [`AdjRibOut::flush`] before the UPDATEs are built: each message's routes with the
    /// shared attribute set (so peers that get the same message can share its encoding).
    pub fn flush_packed(&mut self) -> Result<Vec<Packed>, EncodeError> {
        let withdraw: Vec<Nlri> = std::mem::take(&mut self.withdraw).into_iter().collect();
        let announce = std::mem::take(&mut self.announce);
        let mut routes = Vec::with_capacity(announce.len());
        for nlri in announce {
            if let Some(entry) = self.entries.get_mut(&nlri) {
                entry.sent = true;
                routes.push((nlri, Arc::clone(&entry.attributes)));
            }
        }
        pack(&self.ctx, &withdraw, routes)
    }

    /// The attributes advertised (or queued) for `nlri`.
    pub fn get(&self, nlri: &Nlri) -> Option<&Arc<PathAttributes>> {
        self.entries.get(nlri).map(|e| &e.attributes)
    }

    /// Number of routes advertised or queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is advertised or queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Packs withdrawals and announcements into UPDATEs for a session with context `ctx`:
/// withdrawals first, per family; then announcements grouped by family and attribute set
/// (by identity: export shares one `Arc` among the routes and peers that get the same set, and
/// comparing pointers is much cheaper than hashing attributes), every message within the
/// session's maximum size.
pub fn pack(
    ctx: &CodecContext,
    withdraw: &[Nlri],
    announce: Vec<(Nlri, Arc<PathAttributes>)>,
) -> Result<Vec<Packed>, EncodeError> {
    pack_with(ctx, withdraw, announce, |a, family| {
        attributes_len(a, family, ctx)
    })
}

/// [`pack`] with the encoded size of an attribute set taken from `attr_len` (a caller that
/// packs the same sets for many peers remembers them: the size is found by encoding).
pub fn pack_with(
    ctx: &CodecContext,
    withdraw: &[Nlri],
    announce: Vec<(Nlri, Arc<PathAttributes>)>,
    mut attr_len: impl FnMut(&Arc<PathAttributes>, Family) -> Result<usize, EncodeError>,
) -> Result<Vec<Packed>, EncodeError> {
    let mut updates = Vec::new();
    for family in Family::ALL {
        let nlri: Vec<Nlri> = withdraw
            .iter()
            .filter(|n| n.prefix.family() == family)
            .copied()
            .collect();
        let overhead = match family {
            Family::Ipv4Unicast => UPDATE_OVERHEAD,
            Family::Ipv6Unicast => UPDATE_OVERHEAD + MP_UNREACH_OVERHEAD,
        };
        for chunk in chunks(ctx, nlri, family, overhead)? {
            updates.push(Packed::Withdraw(chunk));
        }
    }

    type Key = (Family, usize);
    let mut groups: Vec<(Family, Arc<PathAttributes>, Vec<Nlri>)> = Vec::new();
    let mut index: Option<HashMap<Key, usize>> = None;
    for (nlri, attributes) in announce {
        let family = nlri.prefix.family();
        let key: Key = (family, Arc::as_ptr(&attributes) as usize);
        let slot = match &index {
            Some(index) => index.get(&key).copied(),
            None => groups
                .iter()
                .position(|(f, a, _)| (*f, Arc::as_ptr(a) as usize) == key),
        };
        match slot.and_then(|i| groups.get_mut(i)) {
            Some(group) => group.2.push(nlri),
            None => {
                groups.push((family, attributes, vec![nlri]));
                let at = groups.len() - 1;
                match &mut index {
                    Some(index) => {
                        index.insert(key, at);
                    }
                    None if groups.len() > LINEAR_GROUPS => {
                        index = Some(
                            groups
                                .iter()
                                .enumerate()
                                .map(|(i, (f, a, _))| ((*f, Arc::as_ptr(a) as usize), i))
                                .collect(),
                        );
                    }
                    None => {}
                }
            }
        }
    }
    for (family, attributes, nlri) in groups {
        // An extended-length MP_REACH needs one octet more than the empty one measured.
        let extra = usize::from(family == Family::Ipv6Unicast);
        let overhead = UPDATE_OVERHEAD + attr_len(&attributes, family)? + extra;
        for chunk in chunks(ctx, nlri, family, overhead)? {
            updates.push(Packed::Announce(Arc::clone(&attributes), chunk));
        }
    }
    Ok(updates)
}

/// Splits `nlri` into runs that fit in a message after `overhead` bytes.
fn chunks(
    ctx: &CodecContext,
    nlri: Vec<Nlri>,
    family: Family,
    overhead: usize,
) -> Result<Vec<Vec<Nlri>>, EncodeError> {
    let max = ctx.max_message_len();
    let path_id_len = if ctx.add_path_send.contains(family) {
        4
    } else {
        0
    };
    let mut out: Vec<Vec<Nlri>> = Vec::new();
    let mut current = Vec::new();
    let mut used = overhead;
    for n in nlri {
        let cost = n.prefix.nlri_len() + path_id_len;
        if overhead + cost > max {
            return Err(EncodeError::TooLong {
                size: overhead + cost,
                max,
            });
        }
        if used + cost > max {
            out.push(std::mem::take(&mut current));
            used = overhead;
        }
        used += cost;
        current.push(n);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The Adj-RIB-Out of a session without ADD-PATH send: which prefixes the peer holds from us
/// (`sent`) and which changed since the last flush (`pending`), as bitsets over the
/// speaker's [`PrefixIndex`]. What to announce is asked of export at flush time, so nothing
/// per route is stored; a `sent` bit holds a reference on its id in the index.
#[derive(Debug, Clone)]
pub struct AdjRibOutBits {
    ctx: CodecContext,
    sent: IdSet,
    pending: IdSet,
}

impl AdjRibOutBits {
    /// An empty Adj-RIB-Out for a session with context `ctx` (no ADD-PATH send).
    pub fn new(ctx: CodecContext) -> AdjRibOutBits {
        AdjRibOutBits {
            ctx,
            sent: IdSet::default(),
            pending: IdSet::default(),
        }
    }

    /// What the peer should be told about `id` may have changed.
    pub fn mark(&mut self, id: u32) {
        self.pending.insert(id);
    }

    /// Every id of `ids` may have changed (the initial advertisement: every live prefix).
    pub fn mark_all(&mut self, ids: &IdSet) {
        self.pending.union_with(ids);
    }

    /// Whether changes are waiting to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Queues every route of `family` the peer holds again (answering a route refresh).
    pub fn refresh(&mut self, family: Family, index: &PrefixIndex) {
        for id in self.sent.iter() {
            if index.prefix(id).is_some_and(|p| p.family() == family) {
                self.pending.insert(id);
            }
        }
    }

    /// Builds the UPDATEs for every pending id: `export(id, prefix)` gives the attribute set to
    /// announce (None: nothing to announce). An announced prefix becomes sent; one without
    /// an attribute set is withdrawn if it was sent, else nothing is said about it.
    pub fn flush_packed(
        &mut self,
        index: &mut PrefixIndex,
        export: impl FnMut(u32, Prefix) -> Option<Arc<PathAttributes>>,
    ) -> Result<Vec<Packed>, EncodeError> {
        let ctx = self.ctx;
        self.flush_packed_with(index, export, |a, family| attributes_len(a, family, &ctx))
    }

    /// [`AdjRibOutBits::flush_packed`] with attribute-set sizes from `attr_len`
    /// ([`pack_with`]).
    pub fn flush_packed_with(
        &mut self,
        index: &mut PrefixIndex,
        mut export: impl FnMut(u32, Prefix) -> Option<Arc<PathAttributes>>,
        attr_len: impl FnMut(&Arc<PathAttributes>, Family) -> Result<usize, EncodeError>,
    ) -> Result<Vec<Packed>, EncodeError> {
        let mut withdraw = Vec::new();
        let mut announce = Vec::new();
        for id in self.pending.iter() {
            let Some(prefix) = index.prefix(id) else {
                continue;
            };
            match export(id, prefix) {
                Some(attributes) => {
                    if self.sent.insert(id) {
                        index.retain(id);
                    }
                    announce.push((Nlri::new(prefix), attributes));
                }
                None => {
                    if self.sent.remove(id) {
                        withdraw.push(Nlri::new(prefix));
                        index.release(id);
                    }
                }
            }
        }
        self.pending.clear();
        pack_with(&self.ctx, &withdraw, announce, attr_len)
    }

    /// The session is gone: drops every reference this Adj-RIB-Out holds in `index`.
    pub fn release(&mut self, index: &mut PrefixIndex) {
        for id in self.sent.iter() {
            index.release(id);
        }
        self.sent.clear();
        self.pending.clear();
    }

    /// Whether the peer holds `id` from us.
    pub fn holds(&self, id: u32) -> bool {
        self.sent.contains(id)
    }

    /// Number of routes the peer holds from us.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether the peer holds nothing from us.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}
