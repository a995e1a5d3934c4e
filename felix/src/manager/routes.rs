//! [`RouteManager`]: local workload routes, IPAM block blackholes and routes to other nodes'
//! pods in VXLAN pools (calc's [`Output::Route`]) into the agent's [`RouteTable`] (protocol
//! [`ROUTE_PROTO_AGENT`]).

use crate::calc::{Output, RouteDesire};
use crate::driver::routes::{RouteError, RouteReport, RouteTable, RouteTarget};
use crate::ownership::{ROUTE_PROTO_AGENT, VXLAN_DEVICE};

/// The agent's routes.
#[derive(Debug)]
pub struct RouteManager {
    table: RouteTable,
}

impl RouteManager {
    /// A manager owning a new protocol-80 route table (netlink socket in the calling
    /// thread's namespace).
    pub fn new() -> Result<Self, RouteError> {
        Ok(Self {
            table: RouteTable::new(ROUTE_PROTO_AGENT)?,
        })
    }

    /// Records a route change; ignores other outputs. No I/O.
    pub fn on_update(&mut self, output: &Output) {
        if let Output::Route { dst, target } = output {
            match target {
                Some(RouteDesire::Workload(iface)) => {
                    self.table
                        .set_route(*dst, RouteTarget::Device(iface.clone()));
                }
                Some(RouteDesire::Blackhole) => self.table.set_route(*dst, RouteTarget::Blackhole),
                Some(RouteDesire::Tunnel(vtep)) => self.table.set_route(
                    *dst,
                    RouteTarget::OnlinkVia {
                        gateway: (*vtep).into(),
                        device: VXLAN_DEVICE.to_string(),
                    },
                ),
                Some(RouteDesire::Gateway(node)) => {
                    self.table.set_route(*dst, RouteTarget::Via(vec![*node]));
                }
                None => self.table.remove_route(*dst),
            }
        }
    }

    /// Stale routes may be removed from now on.
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

    /// Programs the kernel.
    pub fn apply(&mut self) -> Result<RouteReport, RouteError> {
        self.table.apply()
    }
}
