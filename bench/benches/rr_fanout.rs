//! Route-reflector benchmark: vrouter's reflector against BIRD 2 as the reflector, in one run,
//! same topology, same simulated clients.
//!
//! ```text
//!   namespace vt-rrb-*, everything on lo (127.0.0.0/8):
//!     reflector 127.0.0.1:179  (vrouter: this binary re-executed as a child process running
//!                               bgp::speaker with a cluster id; BIRD: `bird -f`, rr client)
//!     N clients 127.1.x.y      (threads of this process, each a real TCP session from its own
//!                               loopback address, iBGP AS 64512, no ADD-PATH)
//! ```
//!
//! Measured (receive times are kernel timestamps, `SO_TIMESTAMPNS`, of the segment that
//! carried the UPDATE, so the clients' own processing does not count):
//! - (a) fan-out at N = 200 and 500 (`RR_FANOUT_SIZES`): one client announces a new /26;
//!   time from its `write` until the last other client received it; median, p90, max over
//!   `RR_FANOUT_ROUNDS` (25) rounds; withdraw likewise. The per-client cost is the spread
//!   between the first and the last receiver divided by N - 2, printed next to the cost of a
//!   bare loop of N `write`s of one small message to N loopback TCP sockets (the machine's
//!   floor for sending one UPDATE to N peers).
//! - (b) cold start: N = 200 clients with 4 blocks each connect at once; time until each
//!   client holds all routes of the others: median and last client.
//! - (c) resident memory of the reflector with 500 clients × 4 blocks (VmRSS of the process).
//!
//! The vrouter reflector here is the speaker with static peers (what `vrouter-reflector` runs
//! once it has read its clients from etcd), so etcd is not part of the timing. Needs root
//! (it makes a network namespace) and BIRD 2. Plain `std::time`.

use std::collections::HashSet;
use std::io::{IoSliceMut, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp::speaker::{CountingFib, PeerConfig, Speaker, SpeakerConfig};
use bgp::wire::{
    Capability, CodecContext, Family, Message, Nlri, Open, Origin, PathAttributes, Prefix, Update,
    decode_message, encode_message,
};
use nix::cmsg_space;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn, bind, connect,
    recvmsg, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeSpec;
use test_support::{Bird, ChildGuard, Netns};

const ASN: u32 = 64512;
const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const RR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const HOLD: u16 = 240;
/// How often the clients send KEEPALIVE (a third of the hold time would do; BIRD's cold start
/// can take minutes).
const KEEPALIVE: Duration = Duration::from_secs(30);
const ROLE_ENV: &str = "RR_FANOUT_ROLE";
const CLIENTS_ENV: &str = "RR_FANOUT_CHILD_CLIENTS";
/// How long a phase may take before the run fails (BIRD 2.0.12 accepts with a backlog of 8,
/// so some of N simultaneous connects wait for SYN retransmissions).
const WAIT: Duration = Duration::from_secs(120);

/// The next hop client `i` announces: on the namespace's `nh0` network (10.0.0.0/8), since
/// BGP rejects loopback next hops.
fn next_hop(i: usize) -> Ipv4Addr {
    let [_, _, c, d] = client_ip(i).octets();
    Ipv4Addr::new(10, 1, c, d)
}

fn client_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).unwrap_or(0);
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// Block `k` of client `i`: a /26 in 172.16.0.0/12.
fn block(i: usize, k: usize) -> Prefix {
    let n = u32::try_from(i * 4 + k).unwrap_or(0);
    let base = u32::from(Ipv4Addr::new(172, 16, 0, 0));
    Prefix::new(IpAddr::V4(Ipv4Addr::from(base + n * 64)), 26).expect("valid /26")
}

/// The /26 announced in fan-out round `r`.
fn round_prefix(r: usize) -> Prefix {
    let r = u32::try_from(r).unwrap_or(0);
    let base = u32::from(Ipv4Addr::new(10, 200, 0, 0));
    Prefix::new(IpAddr::V4(Ipv4Addr::from(base + r * 64)), 26).expect("valid /26")
}

/// Whether `prefix` is one of the fan-out rounds' (10.200.0.0/16), not a client's block.
fn is_round_prefix(prefix: &Prefix) -> bool {
    match prefix.addr() {
        IpAddr::V4(a) => a.octets()[..2] == [10, 200],
        IpAddr::V6(_) => false,
    }
}

fn ctx() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ibgp: true,
        ..CodecContext::default()
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The vrouter reflector, run as a child process (its RSS is then its own).

fn run_vrouter_child() {
    let n: usize = std::env::var(CLIENTS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init();
    }
    let mut config = SpeakerConfig::new(RR, ASN);
    config.cluster_id = Some(CLUSTER_ID);
    config.graceful_restart = None;
    config.hold_time = HOLD;
    for i in 0..n {
        let mut peer = PeerConfig::new(IpAddr::V4(client_ip(i)), ASN).passive(true);
        peer.route_reflector_client = true;
        config.peers.push(peer);
    }
    // The runtime `vrouter-reflector` runs on (one worker per core), or a single thread
    // (`RR_FANOUT_RUNTIME=current`) for comparison.
    let runtime = match std::env::var("RR_FANOUT_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
    .expect("runtime");
    runtime.block_on(async move {
        let _handle = Speaker::start(config, Box::new(CountingFib::new()))
            .await
            .expect("speaker starts");
        // Runs until the parent kills the process.
        std::future::pending::<()>().await;
    });
}

enum Reflector {
    Vrouter(ChildGuard),
    Bird(Bird),
}

impl Reflector {
    fn start(kind: Kind, ns: &Netns, n: usize) -> Reflector {
        let reflector = match kind {
            Kind::Vrouter => {
                let exe = std::env::current_exe().expect("current exe");
                let mut cmd = ns.command(&exe.to_string_lossy());
                cmd.env(ROLE_ENV, "vrouter").env(CLIENTS_ENV, n.to_string());
                let log = std::env::temp_dir().join("rr_fanout-vrouter.log");
                Reflector::Vrouter(
                    ChildGuard::spawn("rr-vrouter", &mut cmd, Some(&log)).expect("spawn child"),
                )
            }
            Kind::Bird => {
                let mut config = format!(
                    "log stderr {{ warning, error, fatal, bug }};\nrouter id {RR};\n\
                     protocol device {{ scan time 10; }}\n\
                     protocol direct {{ ipv4; interface \"nh0\"; }}\n\
                     template bgp rrc {{ local {RR} as {ASN}; passive on; rr client; \
                     rr cluster id {CLUSTER_ID}; hold time {HOLD}; \
                     ipv4 {{ import all; export where source = RTS_BGP; }}; }}\n"
                );
                for i in 0..n {
                    config.push_str(&format!(
                        "protocol bgp c{i} from rrc {{ neighbor {} as {ASN}; }}\n",
                        client_ip(i)
                    ));
                }
                let bird = Bird::start(ns, &config).expect("BIRD starts");
                // Every session waiting for its client, so no connect arrives before its
                // protocol is ready.
                let deadline = Instant::now() + WAIT;
                loop {
                    let protocols = bird.birdc("show protocols").unwrap_or_default();
                    let passive = protocols
                        .lines()
                        .filter(|l| l.contains(" BGP ") && l.contains("Passive"))
                        .count();
                    if passive == n {
                        break;
                    }
                    assert!(Instant::now() < deadline, "BIRD: {passive} of {n} passive");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Reflector::Bird(bird)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ns.is_listening(179).unwrap_or(false) {
            assert!(Instant::now() < deadline, "reflector does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        reflector
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Reflector::Vrouter(child) => child.id(),
            Reflector::Bird(bird) => bird.pid(),
        }
    }

    /// What the reflector says about its sessions (for a failed run).
    fn diagnose(&self) -> String {
        match self {
            Reflector::Vrouter(child) => child.log_tail(20),
            Reflector::Bird(bird) => {
                let protocols = bird.birdc("show protocols").unwrap_or_default();
                let mut states: std::collections::BTreeMap<String, usize> = Default::default();
                for line in protocols.lines().filter(|l| l.contains(" BGP ")) {
                    let state = line
                        .split_whitespace()
                        .skip(5)
                        .collect::<Vec<_>>()
                        .join(" ");
                    *states.entry(state).or_default() += 1;
                }
                format!("BIRD sessions by state: {states:?}\n{}", bird.log_tail(20))
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Simulated clients: non-blocking sockets driven by one epoll thread, reading with kernel
// timestamps. One thread (not one per client) so that the reflector's N sends do not each
// wake and get preempted by a client thread: a send then costs what it costs a real
// reflector whose clients are other machines.

#[derive(Debug)]
enum Event {
    Up,
    Route {
        client: usize,
        prefix: Prefix,
        announce: bool,
        at: Duration,
    },
    Complete {
        at: Duration,
    },
    Failed(usize, String),
}

/// Starts a non-blocking connect from `src` to the reflector.
fn connect_from(src: Ipv4Addr) -> std::io::Result<TcpStream> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(src, 0)))?;
    match connect(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(RR, 179)),
    ) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn send(stream: &mut TcpStream, message: &Message) -> std::io::Result<()> {
    let bytes = encode_message(message, &ctx()).map_err(std::io::Error::other)?;
    stream.write_all(&bytes)
}

/// Reads into `buf`, returning the byte count and the kernel receive timestamp.
fn read_stamped(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Duration)> {
    let mut space = cmsg_space!(TimeSpec);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        stream.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    let mut at = now();
    if let Ok(mut cmsgs) = msg.cmsgs()
        && let Some(ControlMessageOwned::ScmTimestampns(ts)) = cmsgs.next()
    {
        at = Duration::new(
            u64::try_from(ts.tv_sec()).unwrap_or(0),
            u32::try_from(ts.tv_nsec()).unwrap_or(0),
        );
    }
    Ok((msg.bytes, at))
}

struct Fleet {
    writers: Vec<TcpStream>,
    events: mpsc::Receiver<Event>,
    start: Duration,
}

/// Connects `n` clients at once, each announcing `blocks` prefixes once Established, and
/// waits until all are up. Each reports `Complete` when it holds `blocks * (n - 1)` routes.
fn fleet(n: usize, blocks: usize) -> Fleet {
    let (tx, events) = mpsc::channel();
    let (wtx, wrx) = mpsc::channel();
    let start = now();
    std::thread::Builder::new()
        .name("clients".to_string())
        .spawn(move || {
            if let Err(e) = reactor(n, blocks, &tx, &wtx) {
                let _ = tx.send(Event::Failed(usize::MAX, e.to_string()));
            }
        })
        .expect("spawn client thread");
    let mut writers: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    for _ in 0..n {
        let (i, w): (usize, TcpStream) = wrx.recv_timeout(WAIT).expect("client connected");
        writers[i] = Some(w);
    }
    Fleet {
        writers: writers.into_iter().map(|w| w.expect("writer")).collect(),
        events,
        start,
    }
}

/// Whether an I/O error means "the reflector dropped a connection it had not accepted as a
/// session yet" (BIRD resets connections that arrive before their protocol is ready).
fn is_early_drop(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::BrokenPipe
    )
}

/// One simulated client's session state.
struct Client {
    i: usize,
    stream: Option<TcpStream>,
    connecting: bool,
    established: bool,
    pending: Vec<u8>,
    held: HashSet<Prefix>,
    mine: HashSet<Prefix>,
    want: usize,
    complete: bool,
    /// When to connect again after the reflector dropped an early connection.
    retry_at: Option<Instant>,
}

/// Drives every client from one thread until the channel to the main thread closes or the
/// reflector ends the sessions. Clients connect again (after 50 ms, as a BGP speaker's
/// ConnectRetry would) while the reflector drops them before Established.
fn reactor(
    n: usize,
    blocks: usize,
    tx: &mpsc::Sender<Event>,
    wtx: &mpsc::Sender<(usize, TcpStream)>,
) -> std::io::Result<()> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let mut clients: Vec<Client> = (0..n)
        .map(|i| Client {
            i,
            stream: None,
            connecting: false,
            established: false,
            pending: Vec::new(),
            held: HashSet::new(),
            mine: (0..blocks).map(|k| block(i, k)).collect(),
            want: blocks * (n - 1),
            complete: blocks == 0,
            retry_at: Some(Instant::now()),
        })
        .collect();
    let mut buf = vec![0u8; 1 << 16];
    let mut ready = vec![EpollEvent::empty(); 256];
    let mut live = n;
    let mut keepalive_at = Instant::now() + KEEPALIVE;
    while live > 0 {
        let now_i = Instant::now();
        if now_i >= keepalive_at {
            keepalive_at = now_i + KEEPALIVE;
            for c in clients.iter_mut().filter(|c| c.established) {
                if let Some(stream) = c.stream.as_mut() {
                    // A full send buffer shows up as a read error soon enough.
                    let _ = send(stream, &Message::Keepalive);
                }
            }
        }
        for c in clients
            .iter_mut()
            .filter(|c| c.retry_at.is_some_and(|t| t <= now_i))
        {
            c.retry_at = None;
            let stream = connect_from(client_ip(c.i))?;
            let interest = EpollFlags::EPOLLOUT | EpollFlags::EPOLLIN;
            epoll.add(&stream, EpollEvent::new(interest, c.i as u64))?;
            c.stream = Some(stream);
            c.connecting = true;
        }
        let count = epoll.wait(&mut ready, 20u16)?;
        for event in &ready[..count] {
            let Some(c) = usize::try_from(event.data())
                .ok()
                .and_then(|i| clients.get_mut(i))
            else {
                continue;
            };
            match c.on_ready(&epoll, &mut buf, tx, wtx) {
                Ok(()) => {}
                Err(e) if !c.established && is_early_drop(&e) => {
                    if let Some(stream) = c.stream.take() {
                        let _ = epoll.delete(&stream);
                    }
                    c.pending.clear();
                    c.retry_at = Some(Instant::now() + Duration::from_millis(50));
                }
                Err(e) => {
                    if let Some(stream) = c.stream.take() {
                        let _ = epoll.delete(&stream);
                    }
                    live -= 1;
                    if tx.send(Event::Failed(c.i, e.to_string())).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

impl Client {
    fn on_ready(
        &mut self,
        epoll: &Epoll,
        buf: &mut [u8],
        tx: &mpsc::Sender<Event>,
        wtx: &mpsc::Sender<(usize, TcpStream)>,
    ) -> std::io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        if self.connecting {
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
            if stream.peer_addr().is_err() {
                return Ok(()); // still connecting
            }
            self.connecting = false;
            let me = client_ip(self.i);
            let caps = vec![
                Capability::MultiProtocol(Family::Ipv4Unicast.afi_safi()),
                Capability::FourOctetAs(ASN),
            ];
            send(stream, &Message::Open(Open::new(ASN, HOLD, me, caps)))?;
            let mut interest = EpollEvent::new(EpollFlags::EPOLLIN, self.i as u64);
            epoll.modify(&*stream, &mut interest)?;
        }
        loop {
            let Some(stream) = self.stream.as_ref() else {
                return Ok(());
            };
            let (len, at) = match read_stamped(stream, buf) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            if len == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "reflector closed the session",
                ));
            }
            self.pending.extend_from_slice(&buf[..len]);
            self.messages(at, tx, wtx)?;
        }
    }

    /// Handles every whole message in `pending`, received at `at`.
    fn messages(
        &mut self,
        at: Duration,
        tx: &mpsc::Sender<Event>,
        wtx: &mpsc::Sender<(usize, TcpStream)>,
    ) -> std::io::Result<()> {
        let mut offset = 0;
        while self.pending.len() - offset >= 19 {
            let head = &self.pending[offset..];
            let size = usize::from(u16::from_be_bytes([head[16], head[17]]));
            if size < 19 || head.len() < size {
                break;
            }
            let message = decode_message(&head[..size], &ctx()).map_err(std::io::Error::other)?;
            offset += size;
            self.message(message, at, tx, wtx)?;
        }
        self.pending.drain(..offset);
        Ok(())
    }

    fn message(
        &mut self,
        message: Message,
        at: Duration,
        tx: &mpsc::Sender<Event>,
        wtx: &mpsc::Sender<(usize, TcpStream)>,
    ) -> std::io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        match message {
            Message::Open(_) => send(stream, &Message::Keepalive)?,
            Message::Keepalive if !self.established => {
                self.established = true;
                if !self.mine.is_empty() {
                    let attrs = PathAttributes {
                        origin: Origin::Igp,
                        next_hop: Some(next_hop(self.i)),
                        local_pref: Some(100),
                        ..PathAttributes::default()
                    };
                    let nlri = self.mine.iter().map(|p| Nlri::new(*p)).collect();
                    send(stream, &Message::Update(Update::announce(attrs, nlri)))?;
                }
                let _ = wtx.send((self.i, stream.try_clone()?));
                let _ = tx.send(Event::Up);
            }
            Message::Update(update) => {
                for nlri in &update.announced {
                    if is_round_prefix(&nlri.prefix) {
                        let _ = tx.send(Event::Route {
                            client: self.i,
                            prefix: nlri.prefix,
                            announce: true,
                            at,
                        });
                    } else if !self.mine.contains(&nlri.prefix) {
                        self.held.insert(nlri.prefix);
                    }
                }
                for nlri in &update.withdrawn {
                    if is_round_prefix(&nlri.prefix) {
                        let _ = tx.send(Event::Route {
                            client: self.i,
                            prefix: nlri.prefix,
                            announce: false,
                            at,
                        });
                    }
                }
                if !self.complete && self.held.len() >= self.want {
                    self.complete = true;
                    let _ = tx.send(Event::Complete { at });
                }
            }
            Message::Notification(n) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    format!("notification {n}"),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vrouter,
    Bird,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Vrouter => "vrouter",
            Kind::Bird => "BIRD 2",
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    values: Vec<Duration>,
}

impl Stats {
    fn push(&mut self, d: Duration) {
        self.values.push(d);
    }
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.values.clone();
        v.sort();
        v
    }
    fn pct(&self, p: f64) -> Duration {
        let v = self.sorted();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((v.len() - 1) as f64 * p).round() as usize;
        v[idx.min(v.len() - 1)]
    }
    fn median(&self) -> Duration {
        self.pct(0.5)
    }
    fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[derive(Debug, Default)]
struct Fanout {
    announce: Stats,
    withdraw: Stats,
    per_client: Stats,
}

#[derive(Debug, Default)]
struct Run {
    cold_median: Duration,
    cold_last: Duration,
    fanout: Fanout,
    rss_kib: u64,
}

/// Waits until `n` clients reported `Complete` (or `Up` when `blocks == 0`); returns the
/// completion times relative to the fleet start.
fn wait_complete(fleet: &Fleet, n: usize, blocks: usize) -> Result<Vec<Duration>, String> {
    let mut ups = 0;
    let mut done = Vec::new();
    let deadline = Instant::now() + WAIT;
    while done.len() < n || ups < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = fleet.events.recv_timeout(left);
        if std::env::var_os("RR_FANOUT_DEBUG").is_some() {
            eprintln!("{event:?}");
        }
        match event {
            Ok(Event::Up) => ups += 1,
            Ok(Event::Complete { at, .. }) => done.push(at.saturating_sub(fleet.start)),
            Ok(Event::Failed(i, e)) => return Err(format!("client {i}: {e}")),
            Ok(Event::Route { .. }) => {}
            Err(_) => {
                return Err(format!(
                    "cold start: {} of {n} clients complete, {ups} up after {WAIT:?}",
                    done.len()
                ));
            }
        }
        if blocks == 0 && ups == n {
            break;
        }
    }
    done.sort();
    Ok(done)
}

/// One announce-or-withdraw round: returns (time until the last receiver, spread first→last).
fn round(fleet: &mut Fleet, n: usize, r: usize, announce: bool) -> (Duration, Duration) {
    let from = r % n;
    let prefix = round_prefix(r);
    let message = if announce {
        let attrs = PathAttributes {
            origin: Origin::Igp,
            next_hop: Some(next_hop(from)),
            local_pref: Some(100),
            ..PathAttributes::default()
        };
        Message::Update(Update::announce(attrs, vec![Nlri::new(prefix)]))
    } else {
        Message::Update(Update::withdraw(vec![Nlri::new(prefix)]))
    };
    let bytes = encode_message(&message, &ctx()).expect("encode");
    let sent = now();
    fleet.writers[from].write_all(&bytes).expect("send UPDATE");
    let mut got: Vec<Duration> = Vec::with_capacity(n);
    let mut seen: HashSet<usize> = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < n - 1 {
        let left = deadline.saturating_duration_since(Instant::now());
        match fleet.events.recv_timeout(left) {
            Ok(Event::Route {
                client,
                prefix: p,
                announce: a,
                at,
            }) if p == prefix && a == announce && client != from => {
                if seen.insert(client) {
                    got.push(at);
                }
            }
            Ok(Event::Failed(i, e)) => panic!("client {i}: {e}"),
            Ok(_) => {}
            Err(_) => panic!("round {r}: {} of {} clients received", seen.len(), n - 1),
        }
    }
    got.sort();
    let first = got.first().copied().unwrap_or(sent);
    let last = got.last().copied().unwrap_or(sent);
    (last.saturating_sub(sent), last.saturating_sub(first))
}

fn measure(kind: Kind, ns: &Netns, n: usize, blocks: usize, rounds: usize) -> Run {
    eprintln!(
        "rr_fanout: {} with {n} clients × {blocks} blocks",
        kind.name()
    );
    let reflector = Reflector::start(kind, ns, n);
    let mut fleet = fleet(n, blocks);
    let done = match wait_complete(&fleet, n, blocks) {
        Ok(done) => done,
        Err(e) => panic!("{}: {e}\n{}", kind.name(), reflector.diagnose()),
    };
    let mut run = Run {
        cold_median: done.get(done.len() / 2).copied().unwrap_or_default(),
        cold_last: done.last().copied().unwrap_or_default(),
        ..Run::default()
    };
    // Let initial chatter (End-of-RIB, keepalives) settle.
    std::thread::sleep(Duration::from_millis(500));
    while fleet.events.try_recv().is_ok() {}
    run.rss_kib = reflector.rss_kib();
    for r in 0..rounds {
        let (total, spread) = round(&mut fleet, n, r, true);
        run.fanout.announce.push(total);
        run.fanout
            .per_client
            .push(spread / u32::try_from(n.saturating_sub(2).max(1)).unwrap_or(1));
        std::thread::sleep(Duration::from_millis(20));
        let (total, _) = round(&mut fleet, n, r, false);
        run.fanout.withdraw.push(total);
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(fleet.writers);
    drop(reflector);
    // Client threads end when their sockets close.
    std::thread::sleep(Duration::from_millis(300));
    run
}

/// Cost of one `write` of a 23-byte message to each of `n` loopback TCP sockets, in a loop:
/// the floor for sending one small UPDATE to `n` peers. Median over 50 loops.
fn bare_send_loop(n: usize) -> Duration {
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(RR), 0)).expect("bind");
    let at = listener.local_addr().expect("addr");
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(at).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let (r, _) = listener.accept().expect("accept");
        senders.push(s);
        receivers.push(r);
    }
    let message = encode_message(&Message::Keepalive, &ctx()).expect("encode");
    let mut stats = Stats::default();
    let mut sink = vec![0u8; 4096];
    for _ in 0..50 {
        let start = Instant::now();
        for s in &mut senders {
            s.write_all(&message).expect("write");
        }
        stats.push(start.elapsed() / u32::try_from(n).unwrap_or(1));
        for r in &mut receivers {
            let _ = r.read(&mut sink);
        }
    }
    stats.median()
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("vrouter") {
        run_vrouter_child();
        return;
    }
    let sizes: Vec<usize> = std::env::var("RR_FANOUT_SIZES")
        .unwrap_or_else(|_| "200,500".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|n| *n >= 3)
        .collect();
    let rounds: usize = std::env::var("RR_FANOUT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let kinds: Vec<Kind> = std::env::var("RR_FANOUT_REFLECTORS")
        .unwrap_or_else(|_| "vrouter,bird".to_string())
        .split(',')
        .filter_map(|s| match s.trim() {
            "vrouter" => Some(Kind::Vrouter),
            "bird" => Some(Kind::Bird),
            _ => None,
        })
        .collect();
    let ns = Netns::new("rrb").expect("namespace");
    ns.set_up("lo").expect("lo up");
    // The clients' next hops live on 10.0.0.0/8, an up link of the namespace (a veth pair:
    // the `dummy` module is not always there).
    ns.ip(&["link", "add", "nh0", "type", "veth", "peer", "name", "nh1"])
        .expect("veth nh0");
    ns.add_addr("nh0", "10.0.0.1/8").expect("nh0 address");
    ns.set_up("nh0").expect("nh0 up");
    ns.set_up("nh1").expect("nh1 up");
    // Back home before the namespace is deleted (deleting it kills what runs inside).
    let home = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
    let target = std::fs::File::open(format!("/var/run/netns/{}", ns.name())).expect("netns");
    rustix::thread::move_into_link_name_space(
        target.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns");

    let mut results: Vec<(usize, Kind, Run)> = Vec::new();
    for &n in &sizes {
        for kind in kinds.iter().copied() {
            let run = measure(kind, &ns, n, 4, rounds);
            results.push((n, kind, run));
        }
    }
    println!(
        "\nrr_fanout: reflector fan-out, vrouter vs BIRD 2, {rounds} rounds, loopback, kernel receive timestamps"
    );
    for &n in &sizes {
        let floor = bare_send_loop(n);
        let get = |k: Kind| {
            results
                .iter()
                .find(|(m, kind, _)| *m == n && *kind == k)
                .map(|r| &r.2)
        };
        // A reflector left out (`RR_FANOUT_REFLECTORS`) shows as zeros.
        let none = Run::default();
        let v = get(Kind::Vrouter).unwrap_or(&none);
        let b = get(Kind::Bird).unwrap_or(&none);
        println!("\nN = {n} clients × 4 blocks");
        println!(
            "  {:<34} {:>12} {:>12} {:>8}",
            "", "vrouter", "BIRD 2", "ratio"
        );
        let row = |name: &str, a: Duration, b: Duration| {
            println!(
                "  {:<34} {:>12} {:>12} {:>7.2}x",
                name,
                ms(a),
                ms(b),
                a.as_secs_f64() / b.as_secs_f64().max(1e-9)
            );
        };
        row(
            "(a) announce fan-out median",
            v.fanout.announce.median(),
            b.fanout.announce.median(),
        );
        row(
            "(a) announce fan-out p90",
            v.fanout.announce.pct(0.9),
            b.fanout.announce.pct(0.9),
        );
        row(
            "(a) announce fan-out max",
            v.fanout.announce.max(),
            b.fanout.announce.max(),
        );
        row(
            "(a) withdraw fan-out median",
            v.fanout.withdraw.median(),
            b.fanout.withdraw.median(),
        );
        row(
            "(a) withdraw fan-out p90",
            v.fanout.withdraw.pct(0.9),
            b.fanout.withdraw.pct(0.9),
        );
        row(
            "(a) withdraw fan-out max",
            v.fanout.withdraw.max(),
            b.fanout.withdraw.max(),
        );
        println!(
            "  {:<34} {:>9.2} µs {:>9.2} µs   bare TCP send loop: {:.2} µs/socket",
            "(a) per-client cost (median)",
            v.fanout.per_client.median().as_secs_f64() * 1e6,
            b.fanout.per_client.median().as_secs_f64() * 1e6,
            floor.as_secs_f64() * 1e6
        );
        row(
            "(b) cold start, median client",
            v.cold_median,
            b.cold_median,
        );
        row("(b) cold start, last client", v.cold_last, b.cold_last);
        println!(
            "  {:<34} {:>9} KiB {:>9} KiB {:>7.2}x",
            "(c) reflector RSS",
            v.rss_kib,
            b.rss_kib,
            v.rss_kib as f64 / (b.rss_kib as f64).max(1.0)
        );
    }
    rustix::thread::move_into_link_name_space(
        home.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns back");
    drop(ns);
}
