//! BGP speaker for vrouter (design.md §6).
//!
//! Layout (the pure, Sans-IO core is built; the async shell comes later):
//! - [`wire`]: our own message types over the `rustbgpd-wire` codec, RFC 7606 dispositions and
//!   the NOTIFICATION each error sends. Nothing outside `wire` names the codec crate.
//! - [`fsm`]: the RFC 4271 §8 session state machine, `Session::handle(now, input) -> outputs`,
//!   capability negotiation into a [`fsm::SessionContext`], collision detection, GR/ADD-PATH/
//!   route refresh.
//! - [`rib`]: Adj-RIB-In, Loc-RIB with explainable best path ([`rib::DecisionStep`]), ECMP,
//!   Adj-RIB-Out with update packing and End-of-RIB, GR stale marking and sweep.
//!
//! - [`speaker`] (feature `runtime`, on by default): the tokio shell, the only code owning TCP
//!   sockets and the clock: listener and connectors, one task per peer, the RIB task, the
//!   [`speaker::Fib`] sink (kernel routes, protocol 81), cluster behaviour from etcd.
//!
//! - [`rr`]: route reflection rules (RFC 4456): who a route is reflected to, ORIGINATOR_ID and
//!   CLUSTER_LIST, loop checks.
//!
//! - [`ctl`] (feature `runtime`): the control socket in BIRD's reply-code protocol (`birdc`,
//!   `vrouterc`, `vrctl node status`): pure parser and formatters, a [`ctl::ControlBackend`]
//!   over the speaker, the Unix-socket server.
//!
//! No module but `speaker` and the I/O shell of `ctl` reads the clock: every time value is
//! passed in.

#[cfg(feature = "runtime")]
pub mod ctl;
pub mod fsm;
pub mod rib;
pub mod rr;
#[cfg(feature = "runtime")]
pub mod speaker;
pub mod wire;
