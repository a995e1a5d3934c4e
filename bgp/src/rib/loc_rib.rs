//! Loc-RIB (RFC 4271 §3.2, §9.1): every usable route per prefix, the selected best route with
//! the step that decided it, and the ECMP set. Each change to a prefix's selection is reported
//! as a [`BestChange`] for the kernel installer and the Adj-RIBs-Out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Path;
use super::best_path::{BestPathConfig, DecisionStep, Selection, select};
use crate::wire::Prefix;

/// The selected route of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    /// The best route.
    pub path: Path,
    /// Why it won (the step that eliminated its last competitor).
    pub step: DecisionStep,
    /// The ECMP set, best first (just the best route when nothing ties).
    pub multipath: Vec<Path>,
}

/// A prefix whose selection changed: its new best route, or `None` if it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    /// The prefix.
    pub prefix: Prefix,
    /// The new selection.
    pub best: Option<BestRoute>,
    /// The best route itself changed (not only the ECMP set or another path): what a session
    /// without ADD-PATH send is told may be different.
    pub best_changed: bool,
}

/// All routes for one prefix.
#[derive(Debug, Clone, Default)]
pub struct Destination {
    paths: Vec<Path>,
    selection: Option<Selection>,
}

impl Destination {
    /// Every candidate route.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// The best route.
    pub fn best(&self) -> Option<&Path> {
        self.selection.as_ref().map(|s| &self.paths[s.best])
    }

    /// Every candidate route, the best first (what ADD-PATH advertises).
    pub fn paths_best_first(&self) -> impl Iterator<Item = &Path> {
        let best = self.selection.as_ref().map(|s| s.best);
        best.map(|b| &self.paths[b]).into_iter().chain(
            self.paths
                .iter()
                .enumerate()
                .filter(move |(i, _)| Some(*i) != best)
                .map(|(_, p)| p),
        )
    }

    /// The step that decided the best route.
    pub fn step(&self) -> Option<DecisionStep> {
        self.selection.as_ref().map(|s| s.step)
    }

    /// The ECMP set, best first.
    pub fn multipath(&self) -> Vec<&Path> {
        self.selection
            .as_ref()
            .map(|s| s.multipath.iter().map(|i| &self.paths[*i]).collect())
            .unwrap_or_default()
    }

    fn best_route(&self) -> Option<BestRoute> {
        let selection = self.selection.as_ref()?;
        Some(BestRoute {
            path: self.paths[selection.best].clone(),
            step: selection.step,
            multipath: selection
                .multipath
                .iter()
                .map(|i| self.paths[*i].clone())
                .collect(),
        })
    }
}

/// The Loc-RIB.
#[derive(Debug, Clone, Default)]
pub struct LocRib {
    destinations: BTreeMap<Prefix, Destination>,
    config: BestPathConfig,
    all_paths: bool,
}

impl LocRib {
    /// An empty Loc-RIB.
    pub fn new(config: BestPathConfig) -> LocRib {
        LocRib {
            destinations: BTreeMap::new(),
            config,
            all_paths: false,
        }
    }

    /// Reports a [`BestChange`] whenever any route of a prefix changes, not only its selection
    /// (a speaker that sends every path with ADD-PATH needs to hear about the others too).
    pub fn set_report_all_paths(&mut self, all: bool) {
        self.all_paths = all;
    }

    /// Adds a route, replacing the one with the same source and path id.
    pub fn upsert(&mut self, prefix: Prefix, path: Path) -> Option<BestChange> {
        let destination = self.destinations.entry(prefix).or_default();
        let key = (path.source.address(), path.path_id);
        let old = destination.best_route();
        match destination
            .paths
            .iter_mut()
            .find(|p| (p.source.address(), p.path_id) == key)
        {
            Some(existing) if *existing == path => return None,
            Some(existing) => *existing = path,
            None => destination.paths.push(path),
        }
        self.reselect(prefix, old)
    }

    /// Removes the route from `source` (None: local) with `path_id`.
    pub fn remove(
        &mut self,
        prefix: Prefix,
        source: Option<IpAddr>,
        path_id: u32,
    ) -> Option<BestChange> {
        let destination = self.destinations.get_mut(&prefix)?;
        let old = destination.best_route();
        let before = destination.paths.len();
        destination
            .paths
            .retain(|p| (p.source.address(), p.path_id) != (source, path_id));
        if destination.paths.len() == before {
            return None;
        }
        self.reselect(prefix, old)
    }

    /// Applies `f` to every route of `prefix` (e.g. a new IGP cost) and reselects.
    pub fn update_paths(
        &mut self,
        prefix: Prefix,
        f: impl Fn(&mut Path) -> bool,
    ) -> Option<BestChange> {
        let destination = self.destinations.get_mut(&prefix)?;
        let old = destination.best_route();
        let mut changed = false;
        for path in &mut destination.paths {
            changed |= f(path);
        }
        if changed {
            self.reselect(prefix, old)
        } else {
            None
        }
    }

    /// Recomputes the selection of `prefix`, whose selection before the change was `old`.
    fn reselect(&mut self, prefix: Prefix, old: Option<BestRoute>) -> Option<BestChange> {
        let destination = self.destinations.get_mut(&prefix)?;
        destination.selection = select(&destination.paths, &self.config);
        let new = destination.best_route();
        if destination.paths.is_empty() {
            self.destinations.remove(&prefix);
        }
        let (same, best_changed) = match (&old, &new) {
            (Some(o), Some(n)) => (
                o.path == n.path && o.multipath == n.multipath,
                o.path != n.path,
            ),
            (None, None) => (true, false),
            _ => (false, true),
        };
        (!same || self.all_paths).then_some(BestChange {
            prefix,
            best: new,
            best_changed,
        })
    }

    /// The routes of one prefix.
    pub fn get(&self, prefix: &Prefix) -> Option<&Destination> {
        self.destinations.get(prefix)
    }

    /// Every prefix, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Destination)> {
        self.destinations.iter()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.destinations.len()
    }

    /// Whether there are no prefixes.
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// The decision-process configuration.
    pub fn config(&self) -> &BestPathConfig {
        &self.config
    }
}
