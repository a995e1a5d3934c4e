//! [`EndpointManager`]: per-veth sysctls of local workloads (calc's [`Output::Endpoint`]).
//!
//! An interface that does not exist yet (the CNI plugin creates the veth and writes the
//! WorkloadEndpoint in either order) stays pending and is retried on every apply.

use std::collections::{BTreeMap, BTreeSet};

use policy::model::EndpointId;
use tracing::warn;

use crate::calc::Output;
use crate::driver::sysctl::{SysctlError, configure_workload_iface};

/// What one apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointReport {
    /// Interfaces checked.
    pub configured: usize,
    /// Sysctl values that had to be changed.
    pub changed: usize,
    /// Interfaces that do not exist yet.
    pub pending: usize,
    /// Writes that failed.
    pub errors: usize,
}

/// Per-veth sysctls.
#[derive(Debug, Default)]
pub struct EndpointManager {
    ifaces: BTreeMap<EndpointId, String>,
    dirty: BTreeSet<String>,
}

impl EndpointManager {
    /// A manager with no endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an endpoint change; ignores other outputs. No I/O.
    pub fn on_update(&mut self, output: &Output) {
        if let Output::Endpoint { id, endpoint } = output {
            match endpoint {
                Some(ep) => {
                    if self.ifaces.get(id) != Some(&ep.iface) {
                        self.dirty.insert(ep.iface.clone());
                    }
                    self.ifaces.insert(id.clone(), ep.iface.clone());
                }
                None => {
                    if let Some(iface) = self.ifaces.remove(id) {
                        self.dirty.remove(&iface);
                    }
                }
            }
        }
    }

    /// Re-check every interface on the next apply.
    pub fn request_resync(&mut self) {
        self.dirty.extend(self.ifaces.values().cloned());
    }

    /// True if some interface is still waiting to be configured.
    pub fn has_pending_work(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Writes the sysctls of every dirty interface.
    pub fn apply(&mut self) -> EndpointReport {
        let mut report = EndpointReport::default();
        let mut still = BTreeSet::new();
        for iface in std::mem::take(&mut self.dirty) {
            match configure_workload_iface(&iface) {
                Ok(changed) => {
                    report.configured += 1;
                    report.changed += changed;
                }
                Err(SysctlError::NoInterface { .. }) => {
                    report.pending += 1;
                    still.insert(iface);
                }
                Err(error) => {
                    warn!(%iface, %error, "cannot configure workload interface");
                    report.errors += 1;
                    still.insert(iface);
                }
            }
        }
        self.dirty = still;
        report
    }
}
