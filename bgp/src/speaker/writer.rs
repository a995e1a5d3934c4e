//! The write side of one BGP connection, shared by the peer task (OPEN, KEEPALIVE,
//! NOTIFICATION, ROUTE-REFRESH) and the router (UPDATEs, End-of-RIB).
//!
//! Every write goes through [`ConnWriter::write`], which keeps the byte order of the
//! connection: with an empty backlog it writes straight to the socket (`try_write`, never
//! waiting); whatever the socket does not take is appended to the backlog, and so is every
//! later write until the backlog is empty again. Only the peer task waits on the socket: its
//! [`ConnWriter::backlog_written`] drains the backlog as the socket becomes writable, and the
//! peer task then tells the router (`PeerEvent::Drained`), which has held back that peer's
//! changes meanwhile (they coalesce in its Adj-RIB-Out). A client that stops reading thus
//! holds at most one flush of memory and never makes the router wait.
//!
//! The router holds a `Weak` reference: when the peer task drops the connection the socket
//! closes at once, and the router's next flush finds nothing to write to.

use std::io::{self, IoSlice};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// How long a backlog may sit without the socket taking any of it before the connection is
/// considered dead.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages handed to one `writev` (Linux's IOV_MAX is 1024).
const MAX_SLICES: usize = 512;

#[derive(Debug, Default)]
struct State {
    /// Bytes accepted for the connection but not yet taken by the socket, in order.
    backlog: Vec<u8>,
    /// When the socket last took bytes while a backlog was waiting.
    progress: Option<Instant>,
    /// A NOTIFICATION went out (or the session ended): later writes are dropped.
    closed: bool,
    /// The socket failed (a write returned an error other than WouldBlock).
    error: Option<io::ErrorKind>,
}

/// The write half of a connection with its backlog.
#[derive(Debug)]
pub(crate) struct ConnWriter {
    stream: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes the peer task when a backlog appears or the socket failed.
    wake: Notify,
}

impl ConnWriter {
    pub(crate) fn new(stream: OwnedWriteHalf) -> ConnWriter {
        ConnWriter {
            stream,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        }
    }

    /// Whether the backlog is empty (the router flushes a peer only then).
    pub(crate) fn is_clear(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.backlog.is_empty() && s.error.is_none())
    }

    /// Writes `messages`, in order, after anything written before: as much as the socket
    /// takes now, the rest into the backlog for the peer task. Never waits. An error means
    /// the connection is dead (the peer task is woken to notice).
    pub(crate) fn write<B: AsRef<[u8]>>(&self, messages: &[B]) -> io::Result<()> {
        let Ok(mut state) = self.state.lock() else {
            return Err(io::Error::other("connection writer poisoned"));
        };
        if let Some(kind) = state.error {
            return Err(kind.into());
        }
        if state.closed {
            return Ok(());
        }
        if !state.backlog.is_empty() {
            for m in messages {
                state.backlog.extend_from_slice(m.as_ref());
            }
            return Ok(());
        }
        let mut done = 0; // messages fully written
        let mut offset = 0; // bytes of messages[done] written
        while done < messages.len() {
            let end = messages.len().min(done + MAX_SLICES);
            let result = match messages.get(done..end) {
                Some([one]) => self
                    .stream
                    .try_write(one.as_ref().get(offset..).unwrap_or(&[])),
                Some(batch) => {
                    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len());
                    for (i, m) in batch.iter().enumerate() {
                        let skip = if i == 0 { offset } else { 0 };
                        slices.push(IoSlice::new(m.as_ref().get(skip..).unwrap_or(&[])));
                    }
                    self.stream.try_write_vectored(&slices)
                }
                None => break,
            };
            match result {
                Ok(mut n) => {
                    while n > 0 && done < messages.len() {
                        let left = messages[done].as_ref().len() - offset;
                        if n >= left {
                            n -= left;
                            done += 1;
                            offset = 0;
                        } else {
                            offset += n;
                            n = 0;
                        }
                    }
                    // A message may be empty only by mistake; never loop on it.
                    while done < messages.len() && messages[done].as_ref().len() == offset {
                        done += 1;
                        offset = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    state.error = Some(e.kind());
                    drop(state);
                    self.wake.notify_one();
                    return Err(e);
                }
            }
        }
        if done < messages.len() {
            for (i, m) in messages[done..].iter().enumerate() {
                let skip = if i == 0 { offset } else { 0 };
                state
                    .backlog
                    .extend_from_slice(m.as_ref().get(skip..).unwrap_or(&[]));
            }
            state.progress = Some(Instant::now());
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Writes `bytes` (a NOTIFICATION) and drops every later write.
    pub(crate) fn write_final(&self, bytes: &[u8]) -> io::Result<()> {
        let result = self.write(&[bytes]);
        self.close();
        result
    }

    /// Drops every later write (the session is over).
    pub(crate) fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
    }

    /// Waits until there is a backlog (or the socket failed), then until it is written.
    /// `Ok` once a backlog has been written out; the peer task then tells the router.
    /// Cancel-safe: progress lives in the backlog.
    pub(crate) async fn backlog_written(&self) -> io::Result<()> {
        loop {
            let waiting = match self.state.lock() {
                Ok(s) => s.error.is_some() || !s.backlog.is_empty(),
                Err(_) => true,
            };
            if waiting {
                return self.drain().await;
            }
            self.wake.notified().await;
        }
    }

    /// Writes the backlog as the socket takes it; `Ok` when it is empty. Fails when the
    /// socket fails or takes nothing for [`WRITE_TIMEOUT`].
    pub(crate) async fn drain(&self) -> io::Result<()> {
        loop {
            let deadline = {
                let Ok(state) = self.state.lock() else {
                    return Err(io::Error::other("connection writer poisoned"));
                };
                if let Some(kind) = state.error {
                    return Err(kind.into());
                }
                if state.backlog.is_empty() {
                    return Ok(());
                }
                state.progress.unwrap_or_else(Instant::now) + WRITE_TIMEOUT
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, self.stream.writable()).await {
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer takes no data",
                    ));
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            self.write_some()?;
        }
    }

    /// Moves what the socket takes now from the backlog to the socket.
    fn write_some(&self) -> io::Result<()> {
        let Ok(mut state) = self.state.lock() else {
            return Err(io::Error::other("connection writer poisoned"));
        };
        let mut written = 0;
        while written < state.backlog.len() {
            match self.stream.try_write(&state.backlog[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    state.error = Some(e.kind());
                    return Err(e);
                }
            }
        }
        if written > 0 {
            state.backlog.drain(..written);
            state.progress = Some(Instant::now());
            if state.backlog.is_empty() && state.backlog.capacity() > 64 * 1024 {
                state.backlog = Vec::new();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (ConnWriter, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(at), listener.accept());
        let (read, write) = client.unwrap().into_split();
        std::mem::forget(read); // keep the connection open in both directions
        (ConnWriter::new(write), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn writes_go_straight_out_in_order() {
        let (writer, mut peer) = pair().await;
        writer.write(&[b"ab".as_slice(), b"cd".as_slice()]).unwrap();
        writer.write(&[b"e"]).unwrap();
        assert!(writer.is_clear());
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abcde");
    }

    #[tokio::test]
    async fn a_full_socket_queues_the_rest_and_the_backlog_keeps_the_order() {
        let (writer, mut peer) = pair().await;
        // Far more than the socket buffers hold while the peer does not read.
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while writer.is_clear() {
            writer.write(&[&chunk]).unwrap();
            sent += chunk.len();
        }
        writer.write(&[b"end".as_slice()]).unwrap();
        sent += 3;
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while all.len() < sent {
                let n = peer.read(&mut buf).await.unwrap();
                all.extend_from_slice(&buf[..n]);
            }
            all
        });
        writer.backlog_written().await.unwrap();
        assert!(writer.is_clear());
        let all = reader.await.unwrap();
        assert_eq!(all.len(), sent);
        assert!(all.ends_with(b"end"));
        assert!(all[..sent - 3].iter().all(|b| *b == 7));
    }

    #[tokio::test]
    async fn nothing_is_written_after_the_final_message() {
        let (writer, mut peer) = pair().await;
        writer.write_final(b"bye").unwrap();
        writer.write(&[b"more"]).unwrap();
        drop(writer);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
    }
}
