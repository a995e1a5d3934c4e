//! The kernel [`Fib`]: BGP-learned routes in the main table with protocol 81, over rtnetlink.
//!
//! Isolated here because felix's route driver (`felix/src/driver/routes.rs`, a `RouteTable`
//! owning one protocol number) only knows device and blackhole targets; BGP routes need a
//! gateway or a multipath set. Once `RouteTarget` grows a next-hop variant this sink should
//! become a thin adapter over `RouteTable::new(81)`. Until then the rules are the driver's:
//! this sink only ever writes, replaces, dumps and deletes routes whose protocol is
//! [`PROTOCOL`]; routes of every other protocol are never touched.
//!
//! Changes are coalesced per prefix (the last one wins) and written by a background task, so
//! [`Fib::install`] and [`Fib::withdraw`] never block the router. At start the task dumps the
//! protocol-81 routes already in the table (left by a previous instance during a graceful
//! restart); [`Fib::sync_done`] deletes those that were not installed again since.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use futures::future::BoxFuture;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};
use tokio::sync::{Notify, watch};

use super::fib::Fib;
use crate::wire::Prefix;

/// Route protocol number of BGP-learned routes (design.md §5: 80 is felix, 81 is BGP).
pub const PROTOCOL: u8 = 81;
/// The main routing table.
const MAIN_TABLE: u32 = 254;

#[derive(Debug, Default)]
struct Queue {
    changes: HashMap<Prefix, Option<Vec<IpAddr>>>,
    sync_done: bool,
    submitted: u64,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

/// The protocol-81 kernel route sink. Create it on a thread (and runtime) in the network
/// namespace to program: the netlink socket belongs to the namespace it is opened in.
#[derive(Debug)]
pub struct KernelRoutes {
    shared: Arc<Shared>,
    applied: watch::Receiver<u64>,
}

/// Errors opening the netlink connection.
#[derive(Debug, thiserror::Error)]
#[error("opening a netlink route socket: {0}")]
pub struct KernelRoutesError(#[from] std::io::Error);

impl KernelRoutes {
    /// Opens a netlink socket in the current thread's network namespace and starts the writer
    /// task on the current tokio runtime.
    pub fn new() -> Result<KernelRoutes, KernelRoutesError> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
        });
        let (applied_tx, applied) = watch::channel(0);
        tokio::spawn(writer(handle, Arc::clone(&shared), applied_tx));
        Ok(KernelRoutes { shared, applied })
    }

    fn submit(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            f(&mut queue);
            queue.submitted += 1;
        }
        self.shared.notify.notify_one();
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

async fn writer(handle: Handle, shared: Arc<Shared>, applied: watch::Sender<u64>) {
    let mut leftovers: HashSet<Prefix> = match dump(&handle).await {
        Ok(found) => found.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list existing protocol {PROTOCOL} routes");
            HashSet::new()
        }
    };
    if !leftovers.is_empty() {
        tracing::info!(
            routes = leftovers.len(),
            "protocol {PROTOCOL} routes from a previous instance kept until sync"
        );
    }
    loop {
        let (changes, sync_done, submitted) = match shared.queue.lock() {
            Ok(mut queue) => (
                std::mem::take(&mut queue.changes),
                std::mem::take(&mut queue.sync_done),
                queue.submitted,
            ),
            Err(_) => return,
        };
        for (prefix, change) in changes {
            match change {
                Some(hops) => {
                    leftovers.remove(&prefix);
                    if let Err(error) = replace(&handle, prefix, &hops).await {
                        tracing::warn!(%prefix, %error, "installing route failed");
                    }
                }
                None => {
                    leftovers.remove(&prefix);
                    delete(&handle, prefix).await;
                }
            }
        }
        if sync_done {
            for prefix in std::mem::take(&mut leftovers) {
                tracing::info!(%prefix, "removing route not learned again after restart");
                delete(&handle, prefix).await;
            }
        }
        if applied.send(submitted).is_err() {
            return;
        }
        shared.notify.notified().await;
    }
}

fn base(prefix: Prefix) -> Result<RouteMessageBuilder<IpAddr>, String> {
    Ok(RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(prefix.addr(), prefix.prefix_len())
        .map_err(|e| e.to_string())?
        .table_id(MAIN_TABLE)
        .protocol(RouteProtocol::Other(PROTOCOL)))
}

/// The route message for `prefix` via `hops` (multipath when there are several).
fn message(prefix: Prefix, hops: &[IpAddr]) -> Result<RouteMessage, String> {
    let builder = base(prefix)?;
    let builder = match hops {
        [one] => builder.gateway(*one).map_err(|e| e.to_string())?,
        many => {
            let family = if prefix.addr().is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let mut nexthops = Vec::new();
            for hop in many {
                let nh = RouteNextHopBuilder::new(family)
                    .via(*hop)
                    .map_err(|e| e.to_string())?
                    .build();
                nexthops.push(nh);
            }
            builder.multipath(nexthops)
        }
    };
    Ok(builder.build())
}

async fn replace(handle: &Handle, prefix: Prefix, hops: &[IpAddr]) -> Result<(), String> {
    let message = message(prefix, hops)?;
    handle
        .route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(|e| e.to_string())
}

async fn delete(handle: &Handle, prefix: Prefix) {
    let Ok(builder) = base(prefix) else { return };
    if let Err(error) = handle.route().del(builder.build()).execute().await {
        // Already gone is fine (ESRCH); anything else is worth a log line.
        let text = error.to_string();
        if !text.contains("No such process") {
            tracing::warn!(%prefix, error = %text, "deleting route failed");
        }
    }
}

/// The protocol-81 routes of the main table.
async fn dump(handle: &Handle) -> Result<Vec<Prefix>, rtnetlink::Error> {
    let mut found = Vec::new();
    for v4 in [true, false] {
        let filter = if v4 {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .table_id(MAIN_TABLE)
                .protocol(RouteProtocol::Other(PROTOCOL))
                .kind(RouteType::Unspec)
                .build()
        } else {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .table_id(MAIN_TABLE)
                .protocol(RouteProtocol::Other(PROTOCOL))
                .kind(RouteType::Unspec)
                .build()
        };
        let routes: Vec<RouteMessage> = handle.route().get(filter).execute().try_collect().await?;
        for route in routes {
            // Without strict checking the kernel may return every route: filter here too.
            if route.header.protocol != RouteProtocol::Other(PROTOCOL) {
                continue;
            }
            let len = route.header.destination_prefix_length;
            let addr = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
                RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            });
            if let Some(prefix) = addr.and_then(|a| Prefix::new(a, len)) {
                found.push(prefix);
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_protocol_81_and_multipath() {
        let prefix: Prefix = "10.244.1.0/26".parse().unwrap();
        let one = message(prefix, &["10.0.0.2".parse().unwrap()]).unwrap();
        assert_eq!(one.header.protocol, RouteProtocol::Other(PROTOCOL));
        assert_eq!(one.header.destination_prefix_length, 26);
        assert!(
            one.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_)))
        );
        let two = message(
            prefix,
            &["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
        )
        .unwrap();
        assert!(
            two.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::MultiPath(hops) if hops.len() == 2))
        );
        let v6: Prefix = "fd10::/64".parse().unwrap();
        assert!(message(v6, &["fd00::2".parse().unwrap()]).is_ok());
    }
}
