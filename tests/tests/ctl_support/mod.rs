//! Shared helpers of the `ctl_*` tests: two vrouter speakers in a lab (node0 active, node1
//! passive, each originating one block), a control socket on node0's speaker, and a raw
//! client that reads BIRD replies byte by byte.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bgp::ctl::{CtlOptions, CtlServer, SpeakerBackend};
use test_support::{Lab, assert_eventually};

use crate::bgp_support::{CLUSTER_AS, Vrouter, config, peer, runtime};

/// A private directory for sockets, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two speakers peering, node0 with a control socket.
pub(crate) struct Pair {
    pub(crate) backend: Arc<SpeakerBackend>,
    pub(crate) server: Option<CtlServer>,
    pub(crate) socket: PathBuf,
    pub(crate) a: Vrouter,
    pub(crate) b: Vrouter,
    pub(crate) lab: Lab,
    pub(crate) dir: TempDir,
}

impl Pair {
    pub(crate) fn start(name: &str, options: CtlOptions) -> Pair {
        let lab = Lab::star(2).unwrap();
        let (n0, n1) = (lab.node(0), lab.node(1));
        let mut ca = config(n0, CLUSTER_AS);
        let mut pa = peer(n1.ip().into(), CLUSTER_AS, false);
        pa.kind = bgp::speaker::PeerKind::Mesh;
        ca.peers.push(pa);
        ca.originate.push("10.244.0.0/26".parse().unwrap());
        let mut cb = config(n1, CLUSTER_AS);
        let mut pb = peer(n0.ip().into(), CLUSTER_AS, true);
        pb.kind = bgp::speaker::PeerKind::Mesh;
        cb.peers.push(pb);
        cb.originate.push("10.244.1.0/26".parse().unwrap());
        let a = Vrouter::start_memory(n0, ca);
        let b = Vrouter::start_memory(n1, cb);
        let backend = Arc::new(SpeakerBackend::fixed(
            "vrouterd",
            "0.1.0",
            a.handle().clone(),
        ));
        backend.set_router_id(n0.ip());
        let dir = TempDir::new(name);
        let socket = dir.join("run/vrouter.ctl");
        let server = runtime()
            .block_on(bgp::ctl::serve(&socket, options, Arc::clone(&backend)))
            .unwrap();
        Pair {
            backend,
            server: Some(server),
            socket,
            a,
            b,
            lab,
            dir,
        }
    }

    /// node1's protocol name as node0 sees it.
    pub(crate) fn peer_name(&self) -> String {
        format!(
            "Mesh_{}",
            self.lab.node(1).ip().to_string().replace('.', "_")
        )
    }

    /// Waits until the session and node1's route are up.
    pub(crate) fn wait_established(&self) {
        let b = std::net::IpAddr::V4(self.lab.node(1).ip());
        assert_eventually!(self.a.established(b));
        assert_eventually!(self.a.route("10.244.1.0/26"));
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            runtime().block_on(server.shutdown());
        }
    }
}

/// A raw control-socket client.
pub(crate) struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// The welcome line.
    pub(crate) welcome: String,
}

impl Client {
    pub(crate) fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut welcome = String::new();
        reader.read_line(&mut welcome).unwrap();
        Client {
            reader,
            writer,
            welcome,
        }
    }

    /// Sends raw bytes.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one whole reply (through the first `DDDD ` line), bytes as received.
    pub(crate) fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "connection closed after {out:?}");
            let line = String::from_utf8(line).unwrap();
            let last = line.len() >= 5
                && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                && line.as_bytes()[4] == b' ';
            out.push_str(&line);
            if last {
                return out;
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub(crate) fn cmd(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes());
        self.reply()
    }

    /// True if the server closed the connection.
    pub(crate) fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}
