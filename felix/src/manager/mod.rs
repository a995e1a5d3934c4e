//! Managers: turn sequenced desired-state changes into driver calls.
//!
//! Every manager has `on_update` (cheap, no kernel I/O: records what is wanted) and `apply`
//! (programs the kernel through its driver and reports what it did); `set_in_sync` lifts the
//! hold on removing stale kernel state, `request_resync` makes the next `apply` read the
//! kernel back and repair drift. The agent applies them in dependency order: policy, then
//! endpoints (sysctls), then routes.
//!
//! - [`routes`]: [`routes::RouteManager`] over the protocol-80 [`crate::driver::routes::RouteTable`];
//! - [`endpoints`]: [`endpoints::EndpointManager`], per-veth sysctls;
//! - [`policy`]: [`policy::PolicyManager`], the seam to the nftables policy dataplane;
//! - [`mtu`]: [`mtu::MtuManager`], host veth MTU ceilings (underlay, VXLAN);
//! - [`vtep`]: [`vtep::VtepManager`], the VXLAN device and remote VTEPs.

pub mod endpoints;
pub mod mtu;
pub mod policy;
pub mod routes;
pub mod vtep;
