//! Felix-style node agent: turns the datastore into kernel state on one node and keeps it
//! there.
//!
//! # Layout (design.md §5)
//!
//! ```text
//! syncers (etcd) ─▶ calc (pure) ─▶ sequencer ─▶ managers ─▶ drivers ─▶ kernel
//!                   calc/          sequencer.rs  manager/    driver/routes.rs (rtnetlink)
//!                                                            driver/sysctl.rs (/proc/sys)
//!                                                            nft/ (nftables policy)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`ownership`] | every tag that marks kernel state as ours (route protocols, nft table, veth prefix) |
//! | [`calc`] | pure reduction of the cluster's datastore to this node's desired state |
//! | [`sequencer`] | coalescing per key, flush order, deletions held until the first InSync |
//! | [`manager`] | `on_update` (cheap, no I/O) and `apply` (kernel I/O) per concern |
//! | [`driver`] | the only code that talks netlink (routes, links) and `/proc/sys` |
//! | [`nft`] | the nftables policy dataplane and outbound NAT (`natOutgoing`) |
//! | [`agent`] | [`agent::Agent`]: the threads and channels wiring it all, optionally in a netns |
//! | [`metrics`] | Prometheus counters and histograms |
//!
//! Start reading at [`agent`]; kernel state is recognised after a restart only through
//! [`ownership`].

pub mod agent;
pub mod calc;
pub mod driver;
pub mod manager;
pub mod metrics;
pub mod nft;
pub mod ownership;
pub mod sequencer;
