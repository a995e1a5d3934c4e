//! [`VtepManager`]: calc's [`Output::Vtep`] (the VXLAN device and remote VTEPs) into the
//! [`VtepTable`] driver. Applied before the routes (a tunnel route never waits on a missing
//! device for long) and again after them when stale entries are left (route removals before
//! VTEP removals, calico.md §1.1).

use crate::calc::Output;
use crate::driver::vxlan::{VtepError, VtepReport, VtepTable};

/// The VTEP of this node.
#[derive(Debug)]
pub struct VtepManager {
    table: VtepTable,
}

impl VtepManager {
    /// A manager with a netlink socket in the calling thread's namespace.
    pub fn new() -> Result<Self, VtepError> {
        Ok(Self {
            table: VtepTable::new()?,
        })
    }

    /// Records a VTEP change; ignores other outputs. No I/O.
    pub fn on_update(&mut self, output: &Output) {
        if let Output::Vtep(desired) = output {
            self.table.set_desired(desired.clone());
        }
    }

    /// Stale VTEP state may be removed from now on.
    pub fn set_in_sync(&mut self) {
        self.table.set_in_sync();
    }

    /// Read the kernel back on the next apply.
    pub fn request_resync(&mut self) {
        self.table.request_resync();
    }

    /// True if an apply has work even without new input.
    pub fn has_pending_work(&self) -> bool {
        self.table.has_pending_work()
    }

    /// Programs what is missing or wrong, removing nothing (before the routes).
    pub fn apply_additions(&mut self) -> Result<VtepReport, VtepError> {
        self.table.apply_additions()
    }

    /// Programs the kernel, stale entries removed once in sync (after the routes).
    pub fn apply(&mut self) -> Result<VtepReport, VtepError> {
        self.table.apply()
    }
}
