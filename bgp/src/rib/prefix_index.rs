//! Dense ids for the prefixes of a speaker, and sets of them as bitsets ([`IdSet`]).
//!
//! The Adj-RIB-Out of a session without ADD-PATH send is two bitsets over these ids
//! ([`super::AdjRibOutBits`]): what the peer holds from us and what changed since the last
//! flush, so a peer costs bits per prefix instead of a table entry (BIRD keeps the same kind
//! of per-channel export bitmap). The index is speaker-wide and owned by whoever owns the
//! Loc-RIB: an id stays allocated while its prefix is in the Loc-RIB ("live") or some peer
//! holds it (a reference per peer's `sent` bit); then it is freed and may be reused.

use foldhash::HashMap;

use crate::wire::{Family, Prefix};

/// A set of prefix ids: one bit per id, with its size kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    words: Vec<u64>,
    len: usize,
}

impl IdSet {
    /// Adds `id`; true if it was not there.
    pub fn insert(&mut self, id: u32) -> bool {
        let (word, bit) = Self::at(id);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(fresh);
        fresh
    }

    /// Removes `id`; true if it was there.
    pub fn remove(&mut self, id: u32) -> bool {
        let (word, bit) = Self::at(id);
        let Some(w) = self.words.get_mut(word) else {
            return false;
        };
        let present = *w & bit != 0;
        *w &= !bit;
        self.len -= usize::from(present);
        present
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u32) -> bool {
        let (word, bit) = Self::at(id);
        self.words.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the set (keeping its memory).
    pub fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.len = 0;
    }

    /// Adds every id of `other`.
    pub fn union_with(&mut self, other: &IdSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut len = 0;
        for (i, w) in self.words.iter_mut().enumerate() {
            *w |= other.words.get(i).copied().unwrap_or(0);
            len += w.count_ones() as usize;
        }
        self.len = len;
    }

    /// The ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let base = u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(64);
            Bits(w).map(move |b| base + b)
        })
    }

    fn at(id: u32) -> (usize, u64) {
        ((id / 64) as usize, 1u64 << (id % 64))
    }
}

/// The set bits of one word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// Prefix ↔ dense `u32` id, with the liveness and reference counts that decide when an id is
/// freed.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    ids: HashMap<Prefix, u32>,
    /// By id: the prefix (None: free), and how many peers hold it.
    slots: Vec<(Option<Prefix>, u32)>,
    /// Ids whose prefix is in the Loc-RIB, per family (what a new session is sent).
    live: [IdSet; 2],
    free: Vec<u32>,
}

fn family_slot(family: Family) -> usize {
    match family {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
    }
}

impl PrefixIndex {
    /// The id of `prefix`, allocated if it has none.
    pub fn insert(&mut self, prefix: Prefix) -> u32 {
        if let Some(id) = self.ids.get(&prefix) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push((None, 0));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = (Some(prefix), 0);
        }
        self.ids.insert(prefix, id);
        id
    }

    /// The id of `prefix`, if it has one.
    pub fn get(&self, prefix: &Prefix) -> Option<u32> {
        self.ids.get(prefix).copied()
    }

    /// The prefix of `id` (None: a free id).
    pub fn prefix(&self, id: u32) -> Option<Prefix> {
        self.slots.get(id as usize).and_then(|s| s.0)
    }

    /// Records whether `id`'s prefix is in the Loc-RIB; an id neither live nor held by a peer
    /// is freed.
    pub fn set_live(&mut self, id: u32, live: bool) {
        let Some(prefix) = self.prefix(id) else {
            return;
        };
        let set = &mut self.live[family_slot(prefix.family())];
        if live {
            set.insert(id);
        } else {
            set.remove(id);
            self.free_if_unused(id);
        }
    }

    /// The ids of `family` whose prefix is in the Loc-RIB.
    pub fn live(&self, family: Family) -> &IdSet {
        &self.live[family_slot(family)]
    }

    /// A peer now holds `id` (its `sent` bit was set).
    pub fn retain(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.1 += 1;
        }
    }

    /// A peer no longer holds `id`; freed if it is not live either.
    pub fn release(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.1 = slot.1.saturating_sub(1);
        }
        self.free_if_unused(id);
    }

    /// Number of ids allocated.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is allocated.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn free_if_unused(&mut self, id: u32) {
        let Some((Some(prefix), refs)) = self.slots.get(id as usize).copied() else {
            return;
        };
        if refs == 0 && !self.live[family_slot(prefix.family())].contains(id) {
            self.ids.remove(&prefix);
            if let Some(slot) = self.slots.get_mut(id as usize) {
                *slot = (None, 0);
            }
            self.free.push(id);
        }
    }
}
