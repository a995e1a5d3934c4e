//! The Unix-socket server: one task accepting, one task per connection reading command
//! lines and writing replies ([`super::exec`]). Owns the socket file: creates its directory,
//! removes a stale file only when nothing listens on it, sets its mode, removes it on
//! shutdown.
#![allow(clippy::disallowed_methods)] // the I/O shell reads the clock for the commands

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use super::backend::ControlBackend;
use super::exec::{self, Session};
use super::reply::{Reply, code};
use super::{CtlError, CtlOptions};

/// Longest accepted command line (BIRD: `9000 Command too long`).
pub const MAX_COMMAND: usize = 4096;

/// A running control socket. [`CtlServer::shutdown`] (or drop) stops it and removes the
/// socket file.
#[derive(Debug)]
pub struct CtlServer {
    path: PathBuf,
    task: Option<JoinHandle<()>>,
}

impl CtlServer {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every connection and removes the socket file.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        remove(&self.path);
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            remove(&self.path);
        }
    }
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove control socket");
    }
}

/// Binds the socket at `path` and serves `backend` on the current runtime.
pub async fn serve<B: ControlBackend>(
    path: impl AsRef<Path>,
    options: CtlOptions,
    backend: Arc<B>,
) -> Result<CtlServer, CtlError> {
    let path = path.as_ref().to_path_buf();
    let io = |what: &str, source| CtlError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io("creating the directory of", e))?;
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(CtlError::InUse(path));
        }
        std::fs::remove_file(&path).map_err(|e| io("removing the stale socket", e))?;
    }
    let listener = UnixListener::bind(&path).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.mode))
        .map_err(|e| io("setting the mode of", e))?;
    tracing::info!(path = %path.display(), mode = format!("{:o}", options.mode), "control socket listening");
    let task = tokio::spawn(accept(listener, options, backend));
    Ok(CtlServer {
        path,
        task: Some(task),
    })
}

async fn accept<B: ControlBackend>(listener: UnixListener, options: CtlOptions, backend: Arc<B>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let backend = Arc::clone(&backend);
                    let options = options.clone();
                    connections.spawn(async move {
                        if let Err(error) = connection(stream, &options, &*backend).await {
                            tracing::debug!(%error, "control connection ended");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Reads one line of at most [`MAX_COMMAND`] bytes; `Ok(None)` at end of input, `Err` text
/// `too long` when the limit was passed (the rest of the line is skipped).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Result<String, ()>>> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                None
            } else {
                Some(finish(line, too_long))
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            line.extend_from_slice(chunk);
            if line.len() > MAX_COMMAND {
                too_long = true;
                line.clear();
            }
        }
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(finish(line, too_long)));
        }
    }
}

fn finish(line: Vec<u8>, too_long: bool) -> Result<String, ()> {
    if too_long {
        return Err(());
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string())
}

async fn connection<B: ControlBackend>(
    stream: UnixStream,
    options: &CtlOptions,
    backend: &B,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let info = backend.daemon();
    let welcome = Reply::single(
        code::WELCOME,
        format!("{} {} ready.", info.name, info.version),
    );
    write.write_all(welcome.encode().as_bytes()).await?;
    let mut session = Session {
        restricted: false,
        layout: options.layout,
    };
    while let Some(line) = read_line(&mut reader).await? {
        let (reply, after) = match line {
            Err(()) => (Reply::single(code::TOO_LONG, "Command too long"), None),
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => {
                tracing::debug!(command = %line.trim(), "control command");
                exec::execute(backend, &mut session, &line, std::time::SystemTime::now()).await
            }
        };
        write.write_all(reply.encode().as_bytes()).await?;
        write.flush().await?;
        if let Some(how) = after {
            tracing::info!(?how, "shutdown requested on the control socket");
            backend.shutdown(how).await;
        }
    }
    Ok(())
}
