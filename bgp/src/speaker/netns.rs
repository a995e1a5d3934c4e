//! Running a speaker inside a network namespace, in-process (tests, benches, a node agent that
//! programs another namespace).
//!
//! Sockets (TCP and netlink) belong to the namespace of the thread that creates them, so
//! [`NetnsSpeaker::spawn`] starts a thread, moves it into the namespace with `setns(2)` (the
//! safe `rustix` wrapper, as the CNI plugin does), builds a current-thread tokio runtime there
//! and starts the [`Speaker`] on it. The caller talks to it through the [`SpeakerHandle`]
//! from any runtime; stopping (or dropping) the value ends the thread and everything on it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{
    CountingFib, Fib, KernelRoutes, MemoryFib, Speaker, SpeakerConfig, SpeakerError, SpeakerHandle,
};

/// Which FIB the speaker in the namespace programs.
#[derive(Debug, Clone)]
pub enum FibChoice {
    /// The namespace's kernel table (protocol 81), through [`KernelRoutes`].
    Kernel,
    /// An in-memory table the caller keeps a clone of.
    Memory(MemoryFib),
    /// Nothing installed, only counted (RIB benchmarks).
    Counting(CountingFib),
}

impl FibChoice {
    /// The FIB itself; `Kernel` opens a netlink socket in the calling thread's namespace.
    pub fn open(self) -> Result<Box<dyn Fib>, SpeakerError> {
        Ok(match self {
            FibChoice::Memory(memory) => Box::new(memory),
            FibChoice::Counting(counting) => Box::new(counting),
            FibChoice::Kernel => Box::new(KernelRoutes::new().map_err(|e| SpeakerError::Io {
                what: "netlink".to_string(),
                source: std::io::Error::other(e.to_string()),
            })?),
        })
    }
}

/// Starts a speaker with `config` programming `fib`: on the current runtime when `netns` is
/// `None`, else on a thread inside the namespace at `netns`, returned with the handle (dropping
/// it stops that speaker).
pub async fn start_speaker(
    netns: Option<&Path>,
    config: SpeakerConfig,
    fib: FibChoice,
) -> Result<(SpeakerHandle, Option<NetnsSpeaker>), SpeakerError> {
    let Some(path) = netns else {
        return Ok((Speaker::start(config, fib.open()?).await?, None));
    };
    let path = path.to_path_buf();
    let thread = tokio::task::spawn_blocking(move || NetnsSpeaker::spawn(&path, config, fib))
        .await
        .map_err(|_| SpeakerError::Stopped)??;
    Ok((thread.handle().clone(), Some(thread)))
}

/// A speaker running on its own thread inside a network namespace.
#[derive(Debug)]
pub struct NetnsSpeaker {
    handle: SpeakerHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl NetnsSpeaker {
    /// Starts a speaker inside the namespace at `netns_path` (`/var/run/netns/<name>`).
    pub fn spawn(
        netns_path: &Path,
        config: SpeakerConfig,
        fib: FibChoice,
    ) -> Result<NetnsSpeaker, SpeakerError> {
        let io = |what: String| move |source| SpeakerError::Io { what, source };
        let target =
            File::open(netns_path).map_err(io(format!("open {}", netns_path.display())))?;
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bgp-speaker".to_string())
            .spawn(move || {
                let run = || -> Result<tokio::runtime::Runtime, SpeakerError> {
                    rustix::thread::move_into_link_name_space(
                        target.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|e| SpeakerError::Io {
                        what: "setns".to_string(),
                        source: e.into(),
                    })?;
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(io("building the runtime".to_string()))
                };
                let runtime = match run() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started_tx.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let fib = match fib.open() {
                        Ok(fib) => fib,
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                            return;
                        }
                    };
                    match Speaker::start(config, fib).await {
                        Ok(handle) => {
                            let _ = started_tx.send(Ok(handle));
                            let _ = stop_rx.await;
                        }
                        Err(error) => {
                            let _ = started_tx.send(Err(error));
                        }
                    }
                });
            })
            .map_err(io("spawning the speaker thread".to_string()))?;
        let handle = started_rx.recv().map_err(|_| SpeakerError::Stopped)??;
        Ok(NetnsSpeaker {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The control handle.
    pub fn handle(&self) -> &SpeakerHandle {
        &self.handle
    }

    /// Ends the thread at once, like a crash: connections close without NOTIFICATION and
    /// kernel routes stay. Call [`SpeakerHandle::shutdown`] first for an orderly stop.
    pub fn kill(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NetnsSpeaker {
    fn drop(&mut self) {
        self.end();
    }
}
