//! The harness error type shared by the namespace, process and BGP-peer launchers.
//!
//! Every variant carries enough context (the command line, the tail of a daemon's log, the
//! last failed probe) that a failing test explains itself without re-running it by hand.

use std::path::PathBuf;
use std::time::Duration;

/// Errors from the test harness (everything except [`crate::etcd`], which has its own).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An operating-system call failed (spawning, files, temp dirs).
    #[error("{action}")]
    Io {
        /// What the harness was doing, e.g. "spawn `bird`".
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, space-joined.
        command: String,
        /// The exit status as text ("exit status: 1", "signal: 9").
        status: String,
        /// Trimmed standard error (or standard output when stderr was empty).
        stderr: String,
    },
    /// A long-running process exited while the harness expected it to run.
    #[error(
        "process `{name}` exited early ({status}); log {}:\n{log_tail}",
        log.as_deref().map_or_else(|| "(none)".to_string(), |p| p.display().to_string())
    )]
    ProcessExited {
        /// The name the process was registered under.
        name: String,
        /// Its exit status as text.
        status: String,
        /// Where its output went, if anywhere.
        log: Option<PathBuf>,
        /// The last lines of that log.
        log_tail: String,
    },
    /// A condition did not hold before the deadline.
    #[error("timed out after {waited:?} waiting for {what}; last error: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last failure reason seen while polling.
        last: String,
    },
    /// A polled condition does not hold yet (returned by probes such as
    /// [`crate::Bird::established`]; [`crate::assert_eventually!`] retries on it).
    #[error("{what}: {detail}")]
    NotReady {
        /// The condition, e.g. "session with 10.0.0.2 established".
        what: String,
        /// What was seen instead.
        detail: String,
    },
    /// A caller passed something the harness cannot use (a bad prefix, an empty command).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Result alias used throughout the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// Builds a closure that wraps an [`std::io::Error`] with what the harness was doing.
pub(crate) fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let action = action.into();
    move |source| HarnessError::Io { action, source }
}

/// Shorthand for a [`HarnessError::NotReady`].
pub(crate) fn not_ready(what: impl Into<String>, detail: impl Into<String>) -> HarnessError {
    HarnessError::NotReady {
        what: what.into(),
        detail: detail.into(),
    }
}
