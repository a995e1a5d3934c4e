//! A loopback TCP proxy that a test can cut and restore, to simulate a network partition
//! between a client and a server (e.g. the syncer and etcd) while the server keeps running.
//!
//! ```no_run
//! # let etcd = test_support::etcd::Etcd::start().expect("etcd");
//! let proxy = test_support::proxy::TcpProxy::start(&etcd.endpoint()).expect("proxy");
//! let endpoint = proxy.url(); // give this to the client under test
//! proxy.cut();     // existing connections are closed, new ones refused
//! proxy.restore(); // traffic flows again
//! ```

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug)]
struct State {
    target: SocketAddr,
    cut: AtomicBool,
    stopped: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
}

impl State {
    fn close_all(&self) {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for stream in connections.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A proxy from a free loopback port to `target`. Stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl TcpProxy {
    /// Starts proxying to `target` (`host:port`, optionally with an `http://` prefix).
    pub fn start(target: &str) -> io::Result<Self> {
        Self::with_listener(TcpListener::bind("127.0.0.1:0")?, target)
    }

    /// Proxies connections accepted on `listener` to `target`. The listener may belong to
    /// another network namespace (bound by a thread that entered it): clients there then
    /// reach a `target` of this namespace, e.g. a test etcd on the host's loopback. (Such a
    /// listener's accept thread is only woken by the next client after drop; it then ends.)
    pub fn with_listener(listener: TcpListener, target: &str) -> io::Result<Self> {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no target address"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            target,
            cut: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        thread::spawn(move || accept_loop(&listener, &accept_state));
        Ok(Self { addr, state })
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy as an `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every proxied connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.close_all();
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.state.close_all();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>) {
    for incoming in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else { continue };
        if state.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(state.target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(c_read), Ok(s_write), Ok(c_keep), Ok(s_keep)) = clones else {
            continue;
        };
        {
            let mut connections = state
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            connections.push(c_keep);
            connections.push(s_keep);
        }
        thread::spawn(move || pipe(c_read, s_write));
        thread::spawn(move || pipe(server, client));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
