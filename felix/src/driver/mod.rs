//! Drivers: the only code that talks to the kernel's routing configuration (the nftables
//! policy driver lives in [`crate::nft`]).
//!
//! - [`links`]: interface MTUs, the default route's interface.
//! - [`netlink`]: the blocking `NETLINK_ROUTE` socket with multi-message batches and dumps.
//! - [`routes`]: [`routes::RouteTable`], the routes of one protocol reconciled against the kernel.
//! - [`sysctl`]: per-veth `/proc/sys` settings.
//! - [`vxlan`]: [`vxlan::VtepTable`], the VXLAN device, its address, neighbours and FDB.
//!
//! Everything here runs on the agent's dataplane thread, inside the node's network
//! namespace; no async runtime is needed (rtnetlink requests complete inside `sendmsg`).

pub mod links;
pub mod netlink;
pub mod routes;
pub mod sysctl;
pub mod vxlan;
