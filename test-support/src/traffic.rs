//! Test traffic inside namespaces: TCP listeners that answer "ok", UDP echo servers, probes
//! that say whether a flow got through, and a [`SourceRecorder`] that notes the source
//! address of every connection it accepts (NAT: which address did the far end see?).
//!
//! Namespaces are named (`Netns::name`, or a name from `cli::lab`); everything runs on a
//! thread inside them ([`run_in`]). Servers run on detached threads for the life of the
//! test process. Traffic goes only to addresses the test put in its own namespaces.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Result, io_err, not_ready};
use crate::netns::run_in;

/// How long a connection may take in [`SourceRecorder::check_source`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often [`SourceRecorder`]'s accept loop looks for connections.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// TCP listeners on `addrs` inside namespace `ns` that write "ok" to every connection.
pub fn serve_tcp_ok(ns: &str, addrs: &[SocketAddr]) -> Result<()> {
    let addrs = addrs.to_vec();
    let listeners = run_in(ns, move || {
        addrs
            .iter()
            .map(|addr| TcpListener::bind(addr).map_err(io_err(format!("listen on {addr}"))))
            .collect::<Result<Vec<_>>>()
    })??;
    for listener in listeners {
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.write_all(b"ok");
            }
        });
    }
    Ok(())
}

/// A UDP socket on `addr` inside namespace `ns` that sends every datagram back.
pub fn serve_udp_echo(ns: &str, addr: SocketAddr) -> Result<()> {
    let socket = run_in(ns, move || {
        UdpSocket::bind(addr).map_err(io_err(format!("bind {addr}")))
    })??;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    Ok(())
}

/// Whether a TCP connection from namespace `ns` to `to` (a [`serve_tcp_ok`] listener) is
/// accepted and reads "ok" within `timeout`.
pub fn tcp_ok(ns: &str, to: SocketAddr, timeout: Duration) -> Result<bool> {
    run_in(ns, move || {
        let Ok(mut stream) = TcpStream::connect_timeout(&to, timeout) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).is_ok() && buf == b"ok"
    })
}

/// Whether a UDP "ping" from namespace `ns`, sent from address `from`, comes back from `to`
/// (a [`serve_udp_echo`] socket) within `timeout`.
pub fn udp_echo(ns: &str, from: IpAddr, to: SocketAddr, timeout: Duration) -> Result<bool> {
    run_in(ns, move || {
        let socket = UdpSocket::bind((from, 0)).map_err(io_err(format!("bind {from}")))?;
        let _ = socket.set_read_timeout(Some(timeout));
        if socket.send_to(b"ping", to).is_err() {
            return Ok(false);
        }
        let mut buf = [0u8; 16];
        Ok(matches!(socket.recv_from(&mut buf), Ok((4, _))))
    })?
}

/// Opens a TCP connection from namespace `ns` to `to` and closes it at once.
pub fn tcp_connect(ns: &str, to: SocketAddr, timeout: Duration) -> Result<()> {
    let action = format!("connect from {ns} to {to}");
    run_in(ns, move || TcpStream::connect_timeout(&to, timeout))?
        .map(drop)
        .map_err(io_err(action))
}

/// A TCP listener inside a namespace that records the source address of every connection
/// it accepts (IPv4-mapped addresses as IPv4). Stops when dropped.
#[derive(Debug)]
pub struct SourceRecorder {
    peers: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SourceRecorder {
    /// Listens on `addr` inside namespace `ns`.
    pub fn start(ns: &str, addr: SocketAddr) -> Result<SourceRecorder> {
        let listener = run_in(ns, move || {
            let listener = TcpListener::bind(addr).map_err(io_err(format!("listen on {addr}")))?;
            listener
                .set_nonblocking(true)
                .map_err(io_err("set the listener non-blocking"))?;
            Ok(listener)
        })??;
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (Arc::clone(&peers), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((_stream, peer)) => seen
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(peer.ip().to_canonical()),
                    Err(_) => std::thread::sleep(ACCEPT_POLL),
                }
            }
        });
        Ok(SourceRecorder {
            peers,
            stop,
            thread: Some(thread),
        })
    }

    /// The sources recorded since the last call.
    pub fn take(&self) -> Vec<IpAddr> {
        std::mem::take(&mut *self.peers.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Connects from namespace `from` to `to` (this listener) and checks that the listener
    /// saw the connection come from `source`.
    pub fn check_source(&self, from: &str, to: SocketAddr, source: IpAddr) -> Result<()> {
        self.take();
        tcp_connect(from, to, CONNECT_TIMEOUT)?;
        // The accept loop polls: give it a moment to record the peer.
        let seen = (0..50).find_map(|_| {
            let peers = self.take();
            if peers.is_empty() {
                std::thread::sleep(ACCEPT_POLL);
                None
            } else {
                Some(peers)
            }
        });
        match seen {
            Some(peers) if peers.iter().all(|p| *p == source) => Ok(()),
            other => Err(not_ready(
                format!("{to} sees {from}'s connection from {source}"),
                format!("saw {other:?}"),
            )),
        }
    }
}

impl Drop for SourceRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
