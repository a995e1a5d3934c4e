//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): what we advertise to one peer, the changes not yet sent,
//! ADD-PATH path-id allocation on the send side (RFC 7911), and update packing: pending
//! announcements are grouped by family and attribute set and split so that no UPDATE exceeds
//! the session's maximum message size (4,096 bytes unless RFC 8654 applies). End-of-RIB
//! markers come from [`AdjRibOut::end_of_rib`].

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;

use crate::wire::{
    CodecContext, EncodeError, Family, HEADER_LEN, Nlri, PathAttributes, Prefix, Update,
    attributes_len,
};

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
        let mut updates = Vec::new();
        let withdraw = std::mem::take(&mut self.withdraw);
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
            for chunk in self.chunks(nlri, family, overhead)? {
                updates.push(Packed::Withdraw(chunk));
            }
        }

        let announce = std::mem::take(&mut self.announce);
        let mut groups: Vec<(Family, Arc<PathAttributes>, Vec<Nlri>)> = Vec::new();
        // Grouped by attribute set identity: export shares one `Arc` among the routes (and
        // peers) that get the same set, and hashing a pointer is much cheaper than hashing
        // the attributes.
        let mut index: HashMap<(Family, usize), usize> = HashMap::default();
        for nlri in announce {
            let Some(entry) = self.entries.get_mut(&nlri) else {
                continue;
            };
            entry.sent = true;
            let family = nlri.prefix.family();
            let key = (family, Arc::as_ptr(&entry.attributes) as usize);
            let slot = *index.entry(key).or_insert_with(|| {
                groups.push((family, Arc::clone(&entry.attributes), Vec::new()));
                groups.len() - 1
            });
            groups[slot].2.push(nlri);
        }
        for (family, attributes, nlri) in groups {
            // An extended-length MP_REACH needs one octet more than the empty one measured.
            let extra = usize::from(family == Family::Ipv6Unicast);
            let overhead =
                UPDATE_OVERHEAD + attributes_len(&attributes, family, &self.ctx)? + extra;
            for chunk in self.chunks(nlri, family, overhead)? {
                updates.push(Packed::Announce(Arc::clone(&attributes), chunk));
            }
        }
        Ok(updates)
    }

    /// Splits `nlri` into runs that fit in a message after `overhead` bytes.
    fn chunks(
        &self,
        nlri: Vec<Nlri>,
        family: Family,
        overhead: usize,
    ) -> Result<Vec<Vec<Nlri>>, EncodeError> {
        let max = self.ctx.max_message_len();
        let path_id_len = if self.ctx.add_path_send.contains(family) {
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
