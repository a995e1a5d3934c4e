//! Adj-RIB-In (RFC 4271 §3.2): what one peer advertised, keyed by prefix and ADD-PATH path id,
//! with RFC 4724 stale marks. Attribute sets are interned so thousands of prefixes sharing one
//! UPDATE's attributes share one allocation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::wire::{FamilySet, Nlri, PathAttributes};

/// Shares identical attribute sets between routes (and between peers).
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<PathAttributes>>,
    /// Size after the last collection; the set is swept when it doubles.
    collected_at: usize,
}

impl Interner {
    /// The shared copy of `attributes`.
    pub fn intern(&mut self, attributes: PathAttributes) -> Arc<PathAttributes> {
        if let Some(existing) = self.set.get(&attributes) {
            return Arc::clone(existing);
        }
        if self.set.len() >= 2 * self.collected_at.max(512) {
            self.collect();
        }
        let shared = Arc::new(attributes);
        self.set.insert(Arc::clone(&shared));
        shared
    }

    /// Drops attribute sets no route uses any more.
    pub fn collect(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.collected_at = self.set.len();
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no attribute set is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// One route in an Adj-RIB-In.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjRibInEntry {
    /// The attributes as received (after RFC 7606 handling).
    pub attributes: Arc<PathAttributes>,
    /// Kept across a graceful restart and not yet refreshed.
    pub stale: bool,
}

/// The routes one peer advertised.
#[derive(Debug, Clone, Default)]
pub struct AdjRibIn {
    routes: HashMap<Nlri, AdjRibInEntry>,
}

impl AdjRibIn {
    /// Stores (or replaces: an implicit withdraw) a route; false if nothing changed.
    pub fn insert(&mut self, nlri: Nlri, attributes: Arc<PathAttributes>) -> bool {
        let entry = AdjRibInEntry {
            attributes,
            stale: false,
        };
        match self.routes.insert(nlri, entry.clone()) {
            Some(old) => old != entry,
            None => true,
        }
    }

    /// Removes a route; false if it was not there.
    pub fn remove(&mut self, nlri: &Nlri) -> bool {
        self.routes.remove(nlri).is_some()
    }

    /// The route for `nlri`.
    pub fn get(&self, nlri: &Nlri) -> Option<&AdjRibInEntry> {
        self.routes.get(nlri)
    }

    /// Marks every route of `families` stale (RFC 4724 §4.2, the peer went down).
    pub fn mark_stale(&mut self, families: FamilySet) {
        for (nlri, entry) in &mut self.routes {
            if families.contains(nlri.prefix.family()) {
                entry.stale = true;
            }
        }
    }

    /// Removes the stale routes of `families` and returns them.
    pub fn sweep_stale(&mut self, families: FamilySet) -> Vec<Nlri> {
        self.drain_where(|nlri, entry| entry.stale && families.contains(nlri.prefix.family()))
    }

    /// Removes every route of `families` and returns them.
    pub fn clear(&mut self, families: FamilySet) -> Vec<Nlri> {
        self.drain_where(|nlri, _| families.contains(nlri.prefix.family()))
    }

    fn drain_where(&mut self, pred: impl Fn(&Nlri, &AdjRibInEntry) -> bool) -> Vec<Nlri> {
        let mut gone: Vec<Nlri> = self
            .routes
            .iter()
            .filter(|(n, e)| pred(n, e))
            .map(|(n, _)| *n)
            .collect();
        gone.sort();
        for nlri in &gone {
            self.routes.remove(nlri);
        }
        gone
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Nlri, &AdjRibInEntry)> {
        self.routes.iter()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of stale routes.
    pub fn stale_count(&self) -> usize {
        self.routes.values().filter(|e| e.stale).count()
    }
}
