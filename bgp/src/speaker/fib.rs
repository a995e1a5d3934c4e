//! Where best routes leave the speaker: the [`Fib`] trait (install/withdraw of a prefix with
//! its ECMP next hops) and [`MemoryFib`], an in-memory sink for tests.
//!
//! The router calls the trait from its own task, so implementations must not block: queue
//! the change and apply it elsewhere (the kernel sink coalesces per prefix and writes from a
//! separate task).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::wire::Prefix;

/// A forwarding table the speaker programs.
pub trait Fib: Send + 'static {
    /// Routes `prefix` via `next_hops` (one or more; several make a multipath route),
    /// replacing whatever this sink installed for it before.
    fn install(&mut self, prefix: Prefix, next_hops: &[IpAddr]);

    /// Removes the route for `prefix` that this sink installed.
    fn withdraw(&mut self, prefix: Prefix);

    /// Our own (re)start is complete: routes left over from a previous instance that were not
    /// installed again since are removed (RFC 4724 §4.1, the restarting speaker's sweep).
    fn sync_done(&mut self);

    /// Resolves once every change handed over so far is applied.
    fn settled(&mut self) -> BoxFuture<'static, ()>;
}

/// An in-memory [`Fib`]: clones share one table, so a test keeps a clone to inspect.
#[derive(Debug, Clone, Default)]
pub struct MemoryFib {
    table: Arc<Mutex<BTreeMap<Prefix, Vec<IpAddr>>>>,
}

impl MemoryFib {
    /// An empty table.
    pub fn new() -> MemoryFib {
        MemoryFib::default()
    }

    /// The installed routes.
    pub fn routes(&self) -> BTreeMap<Prefix, Vec<IpAddr>> {
        self.table.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The next hops installed for `prefix`.
    pub fn get(&self, prefix: &Prefix) -> Option<Vec<IpAddr>> {
        self.table.lock().ok().and_then(|t| t.get(prefix).cloned())
    }
}

impl Fib for MemoryFib {
    fn install(&mut self, prefix: Prefix, next_hops: &[IpAddr]) {
        if let Ok(mut table) = self.table.lock() {
            table.insert(prefix, next_hops.to_vec());
        }
    }

    fn withdraw(&mut self, prefix: Prefix) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&prefix);
        }
    }

    fn sync_done(&mut self) {}

    fn settled(&mut self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A [`Fib`] that only counts the routes it would have installed (benchmarks of the RIB
/// alone). Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct CountingFib {
    routes: Arc<Mutex<std::collections::HashSet<Prefix>>>,
}

impl CountingFib {
    /// A sink with nothing installed.
    pub fn new() -> CountingFib {
        CountingFib::default()
    }

    /// Number of prefixes currently installed.
    pub fn len(&self) -> usize {
        self.routes.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Fib for CountingFib {
    fn install(&mut self, prefix: Prefix, _next_hops: &[IpAddr]) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(prefix);
        }
    }

    fn withdraw(&mut self, prefix: Prefix) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&prefix);
        }
    }

    fn sync_done(&mut self) {}

    fn settled(&mut self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_fib_clones_share_the_table() {
        let fib = MemoryFib::new();
        let mut sink: Box<dyn Fib> = Box::new(fib.clone());
        let p: Prefix = "10.244.1.0/26".parse().unwrap();
        let nh: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        sink.install(p, &nh);
        assert_eq!(fib.get(&p), Some(nh));
        sink.withdraw(p);
        assert!(fib.routes().is_empty());
    }

    #[test]
    fn counting_fib_counts_distinct_prefixes() {
        let fib = CountingFib::new();
        let mut sink: Box<dyn Fib> = Box::new(fib.clone());
        let p: Prefix = "10.244.1.0/26".parse().unwrap();
        let nh: IpAddr = "10.0.0.1".parse().unwrap();
        sink.install(p, &[nh]);
        sink.install(p, &[nh]);
        assert_eq!(fib.len(), 1);
        sink.withdraw(p);
        assert!(fib.is_empty());
    }
}
