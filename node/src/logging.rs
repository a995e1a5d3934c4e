//! Logging: a `tracing` subscriber writing to standard error, human-readable (`pretty`) or one
//! JSON object per line (`json`), whose filter can be replaced at run time (SIGHUP reload).
//!
//! The filter is `--log-level` when given (a level or a full `EnvFilter` directive such as
//! `info,bgp=debug`), else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::LogFormat;

/// Replaces the log filter of the running subscriber.
#[derive(Debug, Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
}

/// Errors installing or changing the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Init(String),
    /// The filter could not be swapped.
    #[error("cannot change the log filter: {0}")]
    Reload(String),
}

/// The filter for `level` (see the module docs for the fallbacks).
pub fn filter(level: Option<&str>) -> EnvFilter {
    match level {
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<LogHandle, LoggingError> {
    let (layer, handle) = reload::Layer::new(filter(level));
    let registry = tracing_subscriber::registry().with(layer);
    let ansi = std::io::stderr().is_terminal();
    let result = match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| LoggingError::Init(e.to_string()))?;
    Ok(LogHandle { filter: handle })
}

impl LogHandle {
    /// Replaces the filter.
    pub fn set_level(&self, level: Option<&str>) -> Result<(), LoggingError> {
        self.filter
            .reload(filter(level))
            .map_err(|e| LoggingError::Reload(e.to_string()))
    }
}
