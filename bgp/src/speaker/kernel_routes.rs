//! The kernel [`Fib`]: BGP-learned routes in the main table with protocol 81, programmed by
//! felix's route driver ([`felix::driver::routes::RouteTable`] for protocol 81, gateway and
//! ECMP multipath targets). This file is only the adapter: one owner programs routes, with
//! the driver's rules (only protocol-81 routes are read, changed or deleted; a prefix held by
//! a route of another protocol is left alone; multi-message netlink batches; periodic resync
//! repairs drift).
//!
//! Changes are coalesced per prefix (the last one wins) and applied by a writer thread, so
//! [`Fib::install`] and [`Fib::withdraw`] never block the router. Graceful restart: protocol-81
//! routes already in the table at start (left by a previous instance) are adopted, not
//! flushed; one installed again with the same next hops is not touched, and those not
//! installed again are removed only after [`Fib::sync_done`] (the speaker's RIB is complete:
//! End-of-RIB from the peers or the restart timer). A route this instance installed and then
//! withdrew is removed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use felix::driver::routes::{RouteError, RouteTable, RouteTarget};
use futures::future::BoxFuture;
use ipnetwork::IpNetwork;
use tokio::sync::watch;

use super::fib::Fib;
use crate::wire::Prefix;

/// Route protocol number of BGP-learned routes (design.md §5: 80 is felix, 81 is BGP).
pub const PROTOCOL: u8 = 81;
/// Period of the kernel resync (as felix's route table).
const RESYNC_INTERVAL: Duration = Duration::from_secs(90);
/// Delay before retrying changes the kernel refused (a gateway not reachable yet, ...);
/// doubled while the kernel keeps refusing, up to [`RETRY_MAX`].
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Longest delay between retries of refused changes (a next hop that is not on a connected
/// subnet stays unreachable until the underlay changes).
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Queue {
    changes: HashMap<Prefix, Option<Vec<IpAddr>>>,
    sync_done: bool,
    submitted: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The protocol-81 kernel route sink. Create it on a thread in the network namespace to
/// program (the netlink socket belongs to the namespace it is opened in) and inside a tokio
/// runtime only if [`Fib::settled`] is awaited there.
#[derive(Debug)]
pub struct KernelRoutes {
    shared: Arc<Shared>,
    applied: watch::Receiver<u64>,
}

/// Errors opening the route table.
#[derive(Debug, thiserror::Error)]
pub enum KernelRoutesError {
    /// The netlink socket could not be opened.
    #[error("opening the protocol {PROTOCOL} route table: {0}")]
    Table(#[from] RouteError),
    /// The writer thread could not be started.
    #[error("starting the route writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl KernelRoutes {
    /// Opens felix's route table for protocol 81 in the current thread's network namespace
    /// and starts its writer thread.
    pub fn new() -> Result<KernelRoutes, KernelRoutesError> {
        let table = RouteTable::new(PROTOCOL)?;
        let shared = Arc::new(Shared::default());
        let (applied_tx, applied) = watch::channel(0);
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("bgp-kernel-routes".into())
            .spawn(move || writer(table, &writer_shared, &applied_tx))?;
        Ok(KernelRoutes { shared, applied })
    }

    fn submit(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            f(&mut queue);
            queue.submitted += 1;
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for KernelRoutes {
    /// Stops the writer thread; the routes stay in the kernel (graceful restart).
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.wake.notify_one();
    }
}

impl Fib for KernelRoutes {
    fn install(&mut self, prefix: Prefix, next_hops: &[IpAddr]) {
        let hops = next_hops.to_vec();
        self.submit(|q| {
            q.changes.insert(prefix, Some(hops));
        });
    }

    fn withdraw(&mut self, prefix: Prefix) {
        self.submit(|q| {
            q.changes.insert(prefix, None);
        });
    }

    fn sync_done(&mut self) {
        self.submit(|q| q.sync_done = true);
    }

    fn settled(&mut self) -> BoxFuture<'static, ()> {
        let target = self.shared.queue.lock().map(|q| q.submitted).unwrap_or(0);
        let mut applied = self.applied.clone();
        Box::pin(async move {
            let _ = applied.wait_for(|done| *done >= target).await;
        })
    }
}

fn network(prefix: Prefix) -> Option<IpNetwork> {
    IpNetwork::new(prefix.addr(), prefix.prefix_len()).ok()
}

/// Applies queued changes to the route table until the sink is dropped; resyncs
/// periodically and retries refused changes.
fn writer(mut table: RouteTable, shared: &Shared, applied: &watch::Sender<u64>) {
    let mut next_resync = Instant::now() + RESYNC_INTERVAL;
    // Set when the kernel refused something: apply again then even without news.
    let mut retry_at: Option<Instant> = None;
    let mut refused_delay = RETRY_INTERVAL;
    loop {
        let (changes, sync_done, submitted) = {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            loop {
                if queue.closed {
                    return;
                }
                if !queue.changes.is_empty() || queue.sync_done {
                    break;
                }
                let now = Instant::now();
                let deadline = retry_at.map_or(next_resync, |r| r.min(next_resync));
                if now >= deadline {
                    break;
                }
                queue = match shared.wake.wait_timeout(queue, deadline - now) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
            (
                std::mem::take(&mut queue.changes),
                std::mem::take(&mut queue.sync_done),
                queue.submitted,
            )
        };
        for (prefix, change) in changes {
            let Some(net) = network(prefix) else { continue };
            match change {
                Some(hops) => table.set_route(net, RouteTarget::Via(hops)),
                None => table.remove_route(net),
            }
        }
        if sync_done {
            tracing::info!("RIB complete: removing protocol {PROTOCOL} routes not learned again");
            table.set_in_sync();
        }
        if Instant::now() >= next_resync {
            table.request_resync();
            next_resync = Instant::now() + RESYNC_INTERVAL;
        }
        retry_at = None;
        match table.apply() {
            Ok(report) => {
                if report.adopted > 0 || report.removed > 0 || report.repaired > 0 {
                    tracing::info!(
                        adopted = report.adopted,
                        removed = report.removed,
                        repaired = report.repaired,
                        "protocol {PROTOCOL} routes"
                    );
                }
                if report.errors > 0 {
                    if refused_delay == RETRY_INTERVAL {
                        tracing::warn!(
                            errors = report.errors,
                            "the kernel refused protocol {PROTOCOL} routes; retrying"
                        );
                    } else {
                        tracing::debug!(
                            errors = report.errors,
                            retry = ?refused_delay,
                            "the kernel still refuses protocol {PROTOCOL} routes"
                        );
                    }
                    retry_at = Some(Instant::now() + refused_delay);
                    refused_delay = (refused_delay * 2).min(RETRY_MAX);
                } else {
                    refused_delay = RETRY_INTERVAL;
                }
                if report.conflicts > 0 {
                    tracing::warn!(
                        conflicts = report.conflicts,
                        "prefixes held by routes of another protocol; retrying shortly, then at resync"
                    );
                    if table.has_pending_work() {
                        retry_at = Some(Instant::now() + RETRY_INTERVAL);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "programming protocol {PROTOCOL} routes failed");
                retry_at = Some(Instant::now() + RETRY_INTERVAL);
            }
        }
        if applied.send(submitted).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_networks() {
        let p: Prefix = "10.244.1.0/26".parse().unwrap();
        assert_eq!(network(p), Some("10.244.1.0/26".parse().unwrap()));
        let v6: Prefix = "fd10::/64".parse().unwrap();
        assert_eq!(network(v6), Some("fd10::/64".parse().unwrap()));
    }
}
