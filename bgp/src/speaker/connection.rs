//! TCP plumbing: the listeners (one per node address, `listenPort`), the accept loop, outgoing
//! connects (source address = node IP, TCP-MD5, GTSM), and the reader task that cuts a
//! connection's byte stream into BGP messages for its peer task.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::socket_options::{set_md5_key, set_ttl_security};
use super::{Command, SpeakerConfig, SpeakerError};
use crate::wire::{CodecContext, MessageError, frame_length};

/// Backlog of each listening socket: a reflector's clients may all connect at once after a
/// restart (hundreds), and a full accept queue costs each dropped SYN a 1 s retransmit.
const BACKLOG: u32 = 1024;
/// Frames a reader may queue ahead of its peer task.
const FRAME_CAPACITY: usize = 64;

/// The listening sockets (kept so TCP-MD5 keys of peers added later can be set on them).
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    sockets: Vec<TcpListener>,
}

impl Listeners {
    /// Sets (Some) or clears (None) the TCP-MD5 key for connections from `peer`.
    pub(crate) fn set_md5(&self, peer: IpAddr, key: Option<&str>) {
        for socket in &self.sockets {
            let family_matches = socket
                .local_addr()
                .is_ok_and(|a| a.is_ipv4() == peer.is_ipv4());
            if !family_matches {
                continue;
            }
            let bytes = key.map(str::as_bytes).unwrap_or_default();
            if let Err(error) = set_md5_key(socket.as_fd(), peer, bytes) {
                tracing::warn!(%peer, %error, "setting the TCP-MD5 key on the listener failed");
            }
        }
    }
}

/// Binds the listeners: on each node address if configured (Calico's `bindMode: NodeIP`), else
/// on `0.0.0.0`; none when the listen port is `None`.
pub(crate) async fn listen(config: &SpeakerConfig) -> Result<Listeners, SpeakerError> {
    let Some(port) = config.listen_port else {
        return Ok(Listeners::default());
    };
    let mut addrs: Vec<IpAddr> = Vec::new();
    addrs.extend(config.node_ipv4.map(IpAddr::V4));
    addrs.extend(config.node_ipv6.map(IpAddr::V6));
    if addrs.is_empty() {
        addrs.push(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    }
    let mut sockets = Vec::new();
    for addr in addrs {
        let at = SocketAddr::new(addr, port);
        let io_err = |source| SpeakerError::Io {
            what: format!("listening on {at}"),
            source,
        };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(io_err)?;
        socket.set_reuseaddr(true).map_err(io_err)?;
        socket.bind(at).map_err(io_err)?;
        sockets.push(socket.listen(BACKLOG).map_err(io_err)?);
    }
    let listeners = Listeners { sockets };
    for peer in &config.peers {
        if let Some(password) = &peer.password {
            listeners.set_md5(peer.address, Some(password));
        }
    }
    Ok(listeners)
}

/// One accept loop per listener; accepted sockets go to the router, which hands them to the
/// peer task of that address. Loops end when the router has gone.
pub(crate) fn spawn_accept(
    listeners: &Arc<Listeners>,
    commands: &mpsc::Sender<Command>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for index in 0..listeners.sockets.len() {
        let listeners = Arc::clone(listeners);
        let commands = commands.clone();
        tasks.push(tokio::spawn(async move {
            let Some(socket) = listeners.sockets.get(index) else {
                return;
            };
            loop {
                match socket.accept().await {
                    Ok((stream, from)) => {
                        if commands
                            .send(Command::Accepted(stream, from))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                if commands.is_closed() {
                    return;
                }
            }
        }));
    }
    tasks
}

/// How to open a connection to a peer.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSpec {
    pub(crate) peer: SocketAddr,
    pub(crate) source: Option<IpAddr>,
    pub(crate) password: Option<String>,
    pub(crate) ttl_security: Option<u8>,
    pub(crate) timeout: Duration,
}

/// Opens a TCP connection as [`ConnectSpec`] says.
pub(crate) async fn connect(spec: ConnectSpec) -> io::Result<TcpStream> {
    let v6 = spec.peer.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(source) = spec.source.filter(|s| s.is_ipv6() == v6) {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    if let Some(password) = &spec.password {
        set_md5_key(socket.as_fd(), spec.peer.ip(), password.as_bytes())?;
    }
    if let Some(hops) = spec.ttl_security {
        set_ttl_security(socket.as_fd(), v6, hops)?;
    }
    let stream = tokio::time::timeout(spec.timeout, socket.connect(spec.peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Applies GTSM to an accepted connection.
pub(crate) fn secure_accepted(stream: &TcpStream, ttl_security: Option<u8>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(hops) = ttl_security {
        let v6 = stream.local_addr()?.is_ipv6();
        set_ttl_security(stream.as_fd(), v6, hops)?;
    }
    Ok(())
}

/// What connection plumbing tells a peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// An outgoing connect attempt finished.
    Connected {
        attempt: u64,
        result: io::Result<TcpStream>,
    },
    /// One whole BGP message arrived on connection `conn`.
    Frame { conn: u64, bytes: Vec<u8> },
    /// The connection broke: closed, failed, or a header error (with its NOTIFICATION).
    Broken {
        conn: u64,
        error: Option<MessageError>,
    },
}

/// Bytes one read takes from the socket (one maximum-size message).
const READ_CHUNK: usize = 4096;

/// Reads messages from `read` and sends them to the peer task, tagged with `conn`.
pub(crate) fn spawn_reader(
    conn: u64,
    read: OwnedReadHalf,
    tx: mpsc::Sender<ConnEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // We never negotiate extended messages, so framing needs no session context.
        let ctx = CodecContext::default();
        // Only a partial message waits here between reads: an idle connection holds no
        // buffer (with hundreds of sessions, per-connection read buffers were most of a
        // reflector's memory).
        let mut partial: Vec<u8> = Vec::new();
        loop {
            if read.readable().await.is_err() {
                let _ = tx.send(ConnEvent::Broken { conn, error: None }).await;
                return;
            }
            // The chunk lives only in this block (no await in it), so it is on the stack of
            // the poll, not in the task's future.
            let read_result = {
                let mut chunk = [0u8; READ_CHUNK];
                read.try_read(&mut chunk)
                    .inspect(|n| partial.extend_from_slice(&chunk[..*n]))
            };
            match read_result {
                Ok(0) => {
                    let _ = tx.send(ConnEvent::Broken { conn, error: None }).await;
                    return;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(_) => {
                    let _ = tx.send(ConnEvent::Broken { conn, error: None }).await;
                    return;
                }
            }
            let (frames, used, error) = cut_frames(&partial, &ctx);
            partial.drain(..used);
            if partial.is_empty() {
                partial = Vec::new();
            }
            for bytes in frames {
                if tx.send(ConnEvent::Frame { conn, bytes }).await.is_err() {
                    return;
                }
            }
            if let Some(error) = error {
                let error = Some(error);
                let _ = tx.send(ConnEvent::Broken { conn, error }).await;
                return;
            }
        }
    })
}

/// The whole messages at the front of `buf`, how many bytes they take, and the header error
/// that stopped the cutting, if one did.
fn cut_frames(buf: &[u8], ctx: &CodecContext) -> (Vec<Vec<u8>>, usize, Option<MessageError>) {
    let mut frames = Vec::new();
    let mut start = 0;
    loop {
        match frame_length(&buf[start..], ctx) {
            Ok(Some(len)) if buf.len() - start >= len => {
                frames.push(buf[start..start + len].to_vec());
                start += len;
            }
            Ok(_) => return (frames, start, None),
            Err(error) => return (frames, start, Some(error)),
        }
    }
}

/// The capacity of the channel readers and connectors share with their peer task.
pub(crate) fn channel() -> (mpsc::Sender<ConnEvent>, mpsc::Receiver<ConnEvent>) {
    mpsc::channel(FRAME_CAPACITY)
}
