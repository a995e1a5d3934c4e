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
            self.on_policy((**p).clone());
        }
    }

    /// Takes the policy state (its parts are shared, not copied); the changes of a state
    /// not handed over yet carry over into this one.
    pub fn on_policy(&mut self, mut desired: PolicyDesired) {
        if let Some(previous) = self.pending.take() {
            let newer = std::mem::take(&mut desired.changes);
            desired.changes = previous.changes;
            desired.changes.merge(newer);
        }
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
            // A resync reads the kernel back and programs the full desired state.
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

/// The nftables policy dataplane ([`crate::nft`]) as the manager's [`PolicyPlane`].
mod nftables {
    use super::{PolicyDesired, PolicyPlane, PolicyPlaneError, PolicyReport};
    use crate::nft::{ApplyReport, NftError, PolicyDataplane};

    fn report(r: &ApplyReport) -> PolicyReport {
        PolicyReport {
            changes: r.chains_created
                + r.chains_rewritten
                + r.chains_deleted
                + r.rules_added
                + r.sets_created
                + r.sets_deleted
                + r.elements_added
                + r.elements_removed,
            repaired: 0,
        }
    }

    fn error(e: NftError) -> PolicyPlaneError {
        PolicyPlaneError(e.to_string())
    }

    impl PolicyPlane for PolicyDataplane {
        fn set_desired(&mut self, desired: PolicyDesired) {
            PolicyDataplane::set_desired(self, desired);
        }

        fn apply(&mut self) -> Result<PolicyReport, PolicyPlaneError> {
            PolicyDataplane::apply(self)
                .map(|r| report(&r))
                .map_err(error)
        }

        fn resync(&mut self) -> Result<PolicyReport, PolicyPlaneError> {
            let r = PolicyDataplane::resync(self).map_err(error)?;
            let mut out = report(&r);
            out.repaired = out.changes;
            Ok(out)
        }
    }

    /// Opens the nftables dataplane (adopting or creating table `inet vrouter`).
    pub(super) fn open() -> Result<Box<dyn PolicyPlane>, PolicyPlaneError> {
        Ok(Box::new(PolicyDataplane::new().map_err(error)?))
    }
}

/// The factory the agent uses for the nftables policy dataplane (see
/// [`crate::agent::AgentConfig::with_nftables`]); runs on the dataplane thread, inside the
/// node's namespace.
pub fn nftables_plane() -> crate::agent::PolicyPlaneFactory {
    Box::new(nftables::open)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records calls; fails `apply` while `fail` is set.
    #[derive(Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl PolicyPlane for Recorder {
        fn set_desired(&mut self, desired: PolicyDesired) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("set {}", desired.workloads.len()));
        }
        fn apply(&mut self) -> Result<PolicyReport, PolicyPlaneError> {
            self.calls.lock().unwrap().push("apply".into());
            if *self.fail.lock().unwrap() {
                return Err(PolicyPlaneError("kernel said no".into()));
            }
            Ok(PolicyReport {
                changes: 2,
                repaired: 0,
            })
        }
        fn resync(&mut self) -> Result<PolicyReport, PolicyPlaneError> {
            self.calls.lock().unwrap().push("resync".into());
            Ok(PolicyReport {
                changes: 1,
                repaired: 1,
            })
        }
    }

    fn desired() -> PolicyDesired {
        let model = policy::Model::new(policy::ModelParts::default()).unwrap();
        PolicyDesired::new(policy::compile::compile(&model), vec![])
    }

    #[test]
    fn hands_over_the_latest_state_and_retries_failures() {
        let recorder = Recorder::default();
        let calls = Arc::clone(&recorder.calls);
        let fail = Arc::clone(&recorder.fail);
        let mut manager = PolicyManager::new(Box::new(recorder));
        assert!(!manager.has_pending_work());
        manager.on_policy(desired());
        manager.on_policy(desired());
        *fail.lock().unwrap() = true;
        assert!(manager.apply().is_err());
        assert!(manager.has_pending_work(), "a failed apply stays pending");
        *fail.lock().unwrap() = false;
        assert_eq!(manager.apply().unwrap().changes, 2);
        assert!(!manager.has_pending_work());
        manager.request_resync();
        assert_eq!(manager.apply().unwrap().repaired, 1);
        assert_eq!(
            *calls.lock().unwrap(),
            ["set 0", "apply", "apply", "resync"],
            "coalesced to one hand-over; retry without re-sending; resync"
        );
    }
}
