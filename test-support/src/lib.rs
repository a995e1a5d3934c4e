//! Test harness shared by every crate's integration tests: a real `etcd` on free loopback
//! ports, throwaway network namespaces, BIRD 2 / GoBGP / FRR launchers, and `eventually()`.
//!
//! Everything a harness type starts (processes, namespaces, temp dirs) is removed when the
//! value is dropped, also when the test panics. Tests need root (they create namespaces).
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`netns`] | [`Netns`]: unique namespaces, commands and threads inside, addresses/routes/sysctls, stale sweep |
//! | [`link`] | [`veth_pair`] between namespaces, [`Bridge`] with generated port names |
//! | [`lab`] | [`Lab::star`]: switch namespace + N nodes on a per-process unique subnet |
//! | [`process`] | [`ChildGuard`] (SIGTERM → SIGKILL → reap on drop), readiness waits, [`run_ok`] |
//! | [`eventually`](mod@eventually) | [`eventually()`](fn@eventually), [`eventually_ok`], [`assert_eventually!`] |
//! | [`bgp_config`] | [`BgpConfig`]: one peer description rendered for BIRD, GoBGP and FRR |
//! | [`bird`], [`gobgp`], [`frr`] | [`Bird`], [`GoBgp`], [`Frr`] daemons inside a namespace |
//! | [`etcd`] | a real etcd server or cluster |
//! | [`proxy`] | a loopback TCP proxy that can be cut and restored (partition tests) |
//! | [`traffic`] | TCP "ok" listeners, UDP echo, probes, [`SourceRecorder`] (NAT: the source seen) |
//! | [`monitor`] | [`RouteMonitor`]: `ip monitor route` fenced by marker routes (no delete, no rewrite) |
//! | [`error`] | [`HarnessError`] |
//!
//! # Example: BIRD and GoBGP exchange a route over a two-node underlay
//!
//! ```no_run
//! use test_support::{assert_eventually, BgpConfig, Bird, GoBgp, Lab};
//!
//! test_support::trace_init();
//! let lab = Lab::star(2)?;                      // nodes 10.S.T.1 and 10.S.T.2 on one bridge
//! let (a, b) = (lab.node(0), lab.node(1));
//! let bird = Bird::start_with(
//!     a,
//!     &BgpConfig::new(a.ip(), 64512)
//!         .neighbor(b.ip().into(), 64513)
//!         .network("10.244.1.0/26"),
//! )?;
//! let gobgp = GoBgp::start_with(
//!     b,
//!     &BgpConfig::new(b.ip(), 64513).passive_neighbor(a.ip().into(), 64512),
//! )?;
//! assert_eventually!(bird.established(b.ip().into()));
//! let rib = assert_eventually!(gobgp.route("10.244.1.0/26")); // probes explain failures
//! assert!(rib.contains(&a.ip().to_string()));
//! a.ping(b.ip().into())?;                        // traffic only inside our namespaces
//! # Ok::<(), test_support::HarnessError>(())
//! ```
//!
//! Everything goes away at the end of scope: daemons are stopped, then the namespaces
//! deleted (each launcher holds a clone of its [`Netns`], so drop order does not matter).
//!
//! # Conventions
//! - Namespace names are `vt-{prefix}-{pid}-{n}`; [`netns::cleanup_stale`] (run once per
//!   process automatically) removes only namespaces whose creating process is gone.
//! - Probes (`established`, `route`) return `Ok` or a [`HarnessError::NotReady`] that says
//!   what was seen instead, so `assert_eventually!(probe)` failures explain themselves.
//! - Network safety: traffic goes only to addresses inside namespaces the test created.

pub mod bgp_config;
pub mod bird;
pub mod error;
pub mod etcd;
pub mod eventually;
pub mod frr;
pub mod gobgp;
pub mod lab;
pub mod link;
pub mod monitor;
pub mod netns;
pub mod process;
pub mod proxy;
pub mod traffic;

pub use bgp_config::{BgpConfig, Neighbor};
pub use bird::Bird;
pub use error::{HarnessError, Result};
pub use eventually::{eventually, eventually_ok};
pub use frr::Frr;
pub use gobgp::GoBgp;
pub use lab::{Lab, Node};
pub use link::{Bridge, veth_pair};
pub use monitor::RouteMonitor;
pub use netns::{Netns, run_in};
pub use process::{ChildGuard, run, run_ok};
pub use traffic::SourceRecorder;

use std::sync::Once;

static TRACE_INIT: Once = Once::new();

/// Installs a `tracing` subscriber that writes through the test harness's capture (so logs
/// show only for failing tests) and honours `RUST_LOG` (default `info`). Safe to call from
/// every test; only the first call in a process does anything, and it does not fight a
/// subscriber someone else installed.
pub fn trace_init() {
    TRACE_INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
