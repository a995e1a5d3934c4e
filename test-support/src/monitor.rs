//! [`RouteMonitor`]: `ip monitor route` inside a namespace, to prove what a daemon did *not*
//! do (a restarted agent adopts its routes: no `Deleted` event, no rewrite).
//!
//! The monitor subscribes a moment after it starts and prints only what happens after that,
//! so both ends are fenced with marker routes (`/32`s in TEST-NET-2, 198.51.100.0/24, on a
//! device the test names): it is live once a marker shows up, and every earlier event has
//! been printed once a later marker shows up.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, not_ready};
use crate::eventually::eventually;
use crate::netns::Netns;
use crate::process::ChildGuard;

/// How long one marker may take to show up before [`RouteMonitor::start`] adds the next.
const MARKER_WAIT: Duration = Duration::from_millis(200);
/// How many markers [`RouteMonitor::start`] tries.
const MARKER_TRIES: u8 = 50;
/// How long the closing marker of [`RouteMonitor::assert_untouched`] may take.
const CLOSING_WAIT: Duration = Duration::from_secs(20);

/// `ip monitor route` running inside a namespace, its output in a log file.
#[derive(Debug)]
pub struct RouteMonitor {
    ns: Netns,
    dev: String,
    log: PathBuf,
    _child: ChildGuard,
}

impl RouteMonitor {
    /// Starts the monitor in `ns` and waits until it is live: marker routes
    /// `198.51.100.{first}/32`, `…{first + 1}/32`, … on `dev` until one is printed.
    pub fn start(ns: &Netns, dev: &str, first: u8) -> Result<RouteMonitor> {
        let child = ns.spawn(&["stdbuf", "-oL", "ip", "monitor", "route"])?;
        let log = child
            .log_path()
            .ok_or_else(|| not_ready("ip monitor route log", "the process has no log file"))?
            .to_path_buf();
        let monitor = RouteMonitor {
            ns: ns.clone(),
            dev: dev.to_string(),
            log,
            _child: child,
        };
        for i in first..first.saturating_add(MARKER_TRIES) {
            if monitor.marker_seen(Ipv4Addr::new(198, 51, 100, i), MARKER_WAIT)? {
                return Ok(monitor);
            }
        }
        Err(not_ready(
            "ip monitor route live",
            "no marker route was printed",
        ))
    }

    /// Everything printed so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Adds the marker route `marker/32` and waits up to `timeout` for it to be printed.
    fn marker_seen(&self, marker: Ipv4Addr, timeout: Duration) -> Result<bool> {
        self.ns
            .ip(&["route", "add", &format!("{marker}/32"), "dev", &self.dev])?;
        let marker = marker.to_string();
        Ok(eventually(timeout, || self.events().contains(&marker)))
    }

    /// Adds the closing marker route `198.51.100.{marker}/32` and, once it is printed (so
    /// every earlier event has been), asserts that no route was deleted and that no event
    /// mentions `untouched` (the routes that were to be kept as they are).
    ///
    /// # Panics
    /// When the marker never shows up or either check fails; the message lists the events.
    pub fn assert_untouched(&self, marker: u8, untouched: &str) {
        let seen = self.marker_seen(Ipv4Addr::new(198, 51, 100, marker), CLOSING_WAIT);
        assert!(
            matches!(seen, Ok(true)),
            "closing marker never printed ({seen:?})"
        );
        let events = self.events();
        let deleted: Vec<&str> = events
            .lines()
            .filter(|l| l.starts_with("Deleted"))
            .collect();
        assert!(deleted.is_empty(), "delete events: {deleted:?}");
        assert!(
            !events.contains(untouched),
            "routes with {untouched} rewritten: {events}"
        );
    }
}
