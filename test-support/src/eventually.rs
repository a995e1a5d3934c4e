//! Polling assertions: [`eventually`], [`eventually_ok`] and the [`assert_eventually!`] macro.
//!
//! Distributed behaviour (a BGP session coming up, a route reaching a kernel) is asserted by
//! polling a probe every [`POLL_INTERVAL`] until it holds or a deadline passes. A probe that
//! returns `Result<T, E>` explains itself: on timeout the last error is part of the failure, so
//! "route not found: table has 10.244.2.0/26 only" beats "assertion failed".
//!
//! [`assert_eventually!`]: crate::assert_eventually

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// How often probes are retried.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The deadline [`assert_eventually!`](crate::assert_eventually) uses when none is given.
///
/// Generous on purpose: CI machines have two cores and run many daemons at once; a passing
/// probe returns as soon as it holds, so a long deadline costs nothing on success.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Something a poll loop can check: `bool` or `Result<T, E: Display>`.
///
/// Implemented so that [`assert_eventually!`](crate::assert_eventually) accepts both a plain
/// condition and a self-explaining probe.
pub trait Probe {
    /// What a successful probe yields (`()` for `bool`).
    type Output;
    /// `Ok` when the condition holds, otherwise a reason worth printing.
    fn check(self) -> std::result::Result<Self::Output, String>;
}

impl Probe for bool {
    type Output = ();
    fn check(self) -> std::result::Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition was false".to_string())
        }
    }
}

impl<T, E: Display> Probe for std::result::Result<T, E> {
    type Output = T;
    fn check(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// One poll attempt inside the harness: done, worth retrying, or hopeless.
pub(crate) enum Attempt<T> {
    /// The condition holds.
    Done(T),
    /// Not yet; the reason is kept for the timeout message.
    Retry(String),
    /// Retrying cannot help (e.g. the daemon exited); fail now.
    Fatal(HarnessError),
}

/// Polls `attempt` until it is done, fatal, or `timeout` has passed.
pub(crate) fn poll<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match attempt() {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fatal(error) => return Err(error),
            Attempt::Retry(reason) => reason,
        };
        if start.elapsed() >= timeout {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `condition` until it returns `true` (then `true`) or `timeout` passes (then `false`).
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// assert!(test_support::eventually(Duration::from_secs(5), || { n += 1; n >= 3 }));
/// ```
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll("condition", timeout, || {
        if condition() {
            Attempt::Done(())
        } else {
            Attempt::Retry("condition was false".to_string())
        }
    })
    .is_ok()
}

/// Polls `probe` until it returns `Ok(value)` (then `Ok(value)`), or fails with
/// [`HarnessError::Timeout`] carrying the last error message once `timeout` has passed.
///
/// ```
/// use std::time::Duration;
/// let mut n = 0;
/// let got = test_support::eventually_ok(Duration::from_secs(5), || {
///     n += 1;
///     if n >= 3 { Ok(n) } else { Err(format!("only {n} attempts so far")) }
/// });
/// assert_eq!(got.unwrap(), 3);
/// ```
pub fn eventually_ok<T, E: Display>(
    timeout: Duration,
    mut probe: impl FnMut() -> std::result::Result<T, E>,
) -> Result<T> {
    poll_probe(timeout, &mut probe)
}

/// Polls any [`Probe`] (`bool` or `Result`); the engine behind
/// [`assert_eventually!`](crate::assert_eventually).
pub fn poll_probe<P: Probe>(timeout: Duration, mut probe: impl FnMut() -> P) -> Result<P::Output> {
    poll("condition", timeout, || match probe().check() {
        Ok(value) => Attempt::Done(value),
        Err(reason) => Attempt::Retry(reason),
    })
}

/// Asserts that a condition becomes true within a deadline (default [`DEFAULT_TIMEOUT`]),
/// polling every [`POLL_INTERVAL`].
///
/// The condition is an expression re-evaluated on every poll. It may be a `bool` or a
/// `Result<T, E: Display>`; for a `Result` the macro evaluates to the `T` of the first `Ok`, and
/// a timeout panics with the last error, so the failure says *why*.
///
/// ```
/// use std::time::Duration;
/// use test_support::assert_eventually;
/// let start = std::time::Instant::now();
/// assert_eventually!(start.elapsed() > Duration::from_millis(100));
/// let n: u32 = assert_eventually!(timeout = Duration::from_secs(5), "7".parse::<u32>());
/// assert_eventually!(n == 7, "n should be seven, was {}", n);
/// ```
#[macro_export]
macro_rules! assert_eventually {
    (timeout = $timeout:expr, $cond:expr $(,)?) => {
        match $crate::eventually::poll_probe($timeout, || $cond) {
            Ok(value) => value,
            Err(error) => panic!("assert_eventually!({}) failed: {}", stringify!($cond), error),
        }
    };
    (timeout = $timeout:expr, $cond:expr, $($msg:tt)+) => {
        match $crate::eventually::poll_probe($timeout, || $cond) {
            Ok(value) => value,
            Err(error) => panic!(
                "assert_eventually!({}) failed: {}: {}",
                stringify!($cond),
                format_args!($($msg)+),
                error
            ),
        }
    };
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!(timeout = $crate::eventually::DEFAULT_TIMEOUT, $cond)
    };
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!(timeout = $crate::eventually::DEFAULT_TIMEOUT, $cond, $($msg)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventually_true_after_some_polls() {
        let mut calls = 0;
        assert!(eventually(Duration::from_secs(5), || {
            calls += 1;
            calls == 4
        }));
        assert_eq!(calls, 4);
    }

    #[test]
    fn eventually_false_after_timeout_and_polls_more_than_once() {
        let mut calls = 0;
        assert!(!eventually(Duration::from_millis(200), || {
            calls += 1;
            false
        }));
        assert!(calls >= 2, "polled {calls} times");
    }

    #[test]
    fn eventually_ok_reports_last_error() {
        let mut calls = 0;
        let err = eventually_ok(
            Duration::from_millis(150),
            || -> std::result::Result<(), String> {
                calls += 1;
                Err(format!("attempt {calls} saw no route"))
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("attempt {calls} saw no route")),
            "{text}"
        );
        assert!(matches!(err, HarnessError::Timeout { .. }));
    }

    #[test]
    fn macro_returns_probe_value() {
        let mut n = 0;
        let value = assert_eventually!(timeout = Duration::from_secs(5), {
            n += 1;
            if n < 3 { Err("not yet") } else { Ok(n * 10) }
        });
        assert_eq!(value, 30);
    }

    #[test]
    fn macro_panics_with_probe_reason_and_message() {
        let result = std::panic::catch_unwind(|| {
            assert_eventually!(
                timeout = Duration::from_millis(100),
                Err::<(), _>("peer still Active"),
                "session with {}",
                "10.0.0.2"
            );
        });
        let payload = result.unwrap_err();
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("peer still Active"), "{text}");
        assert!(text.contains("session with 10.0.0.2"), "{text}");
    }
}
