//! [`PolicyManager`]: calc's [`Output::Policy`] into the policy dataplane.
//!
//! The dataplane sits behind the [`PolicyPlane`] trait: the nftables implementation
//! ([`crate::nft`]) in the agent, a recording fake in tests. `on_update` only keeps the
//! latest desired state; `apply` hands it over (`set_desired`, cheap) and programs it
//! (`apply`, one atomic batch with the minimal delta).

use crate::calc::{Output, PolicyDesired};

/// What a policy dataplane reports after applying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyReport {
    /// Kernel objects (rules, set elements, map entries, chains) changed.
    pub changes: usize,
    /// Of those, repairs of drift found by a resync.
    pub repaired: usize,
}

/// A policy dataplane error, as text (the dataplane logs its own details).
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy dataplane failed: {0}")]
pub struct PolicyPlaneError(pub String);

/// The interface the manager needs from a policy dataplane.
pub trait PolicyPlane: Send {
    /// Replaces the desired state (no I/O).
    fn set_desired(&mut self, desired: PolicyDesired);
    /// Programs the difference between the desired state and the kernel.
    fn apply(&mut self) -> Result<PolicyReport, PolicyPlaneError>;
    /// Reads the kernel back and repairs drift.
    fn resync(&mut self) -> Result<PolicyReport, PolicyPlaneError>;
}

/// The policy manager.
pub struct PolicyManager {
    plane: Box<dyn PolicyPlane>,
    pending: Option<PolicyDesired>,
    dirty: bool,
    resync: bool,
}

impl std::fmt::Debug for PolicyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyManager")
            .field("dirty", &self.dirty)
            .field("resync", &self.resync)
            .finish()
    }
}

impl PolicyManager {
    /// A manager over `plane`.
    pub fn new(plane: Box<dyn PolicyPlane>) -> Self {
        Self {
            plane,
            pending: None,
            dirty: false,
            resync: false,
        }
    }

    /// Keeps the latest policy state; ignores other outputs. No I/O.
    pub fn on_update(&mut self, output: &Output) {
        if let Output::Policy(p) = output {
            self.pending = Some((**p).clone());
            self.dirty = true;
        }
    }

    /// Takes the policy state by value (avoids a copy of the ruleset).
    pub fn on_policy(&mut self, desired: PolicyDesired) {
        self.pending = Some(desired);
        self.dirty = true;
    }

    /// Read the kernel back on the next apply.
    pub fn request_resync(&mut self) {
        self.resync = true;
    }

    /// True if an apply has work to do (including a retry after a failure).
    pub fn has_pending_work(&self) -> bool {
        self.dirty || self.resync
    }

    /// Hands over the latest state and programs it; on failure the work stays pending.
    pub fn apply(&mut self) -> Result<PolicyReport, PolicyPlaneError> {
        if let Some(desired) = self.pending.take() {
            self.plane.set_desired(desired);
        }
        let mut report = PolicyReport::default();
        if self.resync {
            report = self.plane.resync()?;
            self.resync = false;
            self.dirty = false;
        }
        if self.dirty {
            let applied = self.plane.apply()?;
            report.changes += applied.changes;
            self.dirty = false;
        }
        Ok(report)
    }
}
