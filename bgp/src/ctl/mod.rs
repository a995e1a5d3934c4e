//! The control socket: BIRD's control protocol (reference/bgp.md §1) so that `birdc -s`,
//! `vrouterc`, `vrctl node status` and operators' scripts work against vrouter.
//!
//! Entry point for the daemons:
//!
//! ```text
//! let backend = Arc::new(SpeakerBackend::new("vrouterd", VERSION, agent.handles()));
//! let server = bgp::ctl::serve("/run/vrouter/vrouter.ctl", CtlOptions::default(), backend.clone()).await?;
//! // … on `down` / `graceful restart`: backend.shutdown_requests() yields the Shutdown
//! server.shutdown().await; // removes the socket file
//! ```
//!
//! Layout:
//! - [`command`]: the command language, parsed (pure; `9001` errors with the column);
//! - [`reply`]: BIRD's reply-code encoding (`DDDD-`, leading-space continuation, `DDDD `);
//! - [`format`]: output formats of BIRD 2 and BIRD 1.6 (pure);
//! - [`exec`]: one command against a [`ControlBackend`] and a [`exec::Session`] (restrict);
//! - [`backend`]: the [`ControlBackend`] trait and [`SpeakerBackend`] over a speaker handle;
//! - [`server`]: the tokio Unix-socket server and the socket file;
//! - [`client`]: a blocking client (`vrouterc`, `vrctl node status`).
//!
//! On connect the server sends `0001 <daemon> <version> ready.`; then one command per line.

pub mod backend;
pub mod client;
pub mod command;
pub mod exec;
pub mod format;
pub mod reply;
pub mod server;

use std::path::PathBuf;

pub use backend::{
    ControlBackend, DaemonInfo, Interface, ProtocolKind, PseudoProtocol, SpeakerBackend,
};
pub use format::Layout;
pub use server::{CtlServer, serve};

/// Where the daemons put the socket unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vrouter/vrouter.ctl";

/// Settings of the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlOptions {
    /// Output layout of `show protocols` / `show route`.
    pub layout: Layout,
    /// File mode of the socket (0660: root and the socket's group).
    pub mode: u32,
}

impl Default for CtlOptions {
    fn default() -> CtlOptions {
        CtlOptions {
            layout: Layout::Bird2,
            mode: 0o660,
        }
    }
}

/// Errors setting up the control socket.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A file-system or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process serves this socket.
    #[error("{} is in use by a running daemon", .0.display())]
    InUse(PathBuf),
}
