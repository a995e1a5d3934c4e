//! BGP ingest benchmark: a GoBGP peer sends N prefixes (default 1,000,000; set
//! `BGP_INGEST_PREFIXES`) over one eBGP session; measured: time from the session's start
//! until the receiver's table holds all of them, and resident memory per route. Baseline in
//! the same run: BIRD 2 ingesting the same feed from the same GoBGP, one receiver at a time.
//!
//! ```text
//!   node 0: gobgpd AS 65000 (feed injected from a generated MRT dump)
//!      ├── eBGP ──▶ node 1: vrouter speaker (Loc-RIB only: counting FIB, no kernel)
//!      └── eBGP ──▶ node 2: BIRD 2 (no kernel protocol)
//! ```
//!
//! The feed: N distinct /24s from 16.0.0.0 upward, 1,000 distinct AS paths (groups of 1,000
//! consecutive prefixes share one), as GoBGP packs them. `gobgp mrt inject` drops a few
//! percent of a large dump; the feed is what gobgpd holds once it settles. Time runs from
//! the session reaching Established to the last prefix in the table (polled every 20 ms).
//! Needs root. Plain `std::time`.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use bgp::speaker::netns::{FibChoice, NetnsSpeaker};
use bgp::speaker::{CountingFib, PeerConfig, SpeakerConfig};
use test_support::bgp_config::bird_protocol_name;
use test_support::{BgpConfig, Bird, GoBgp, Lab, Node};

const FEED_AS: u32 = 65000;
const OUR_AS: u32 = 64512;
const TIMEOUT: Duration = Duration::from_secs(900);

fn prefix(i: u32) -> Ipv4Addr {
    Ipv4Addr::from((16u32 << 24) + (i << 8))
}

/// An MRT TABLE_DUMP_V2 file (RFC 6396) with `n` IPv4 /24 routes.
fn write_mrt(path: &Path, n: u32, next_hop: Ipv4Addr) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut record = |subtype: u16, body: &[u8]| -> std::io::Result<()> {
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(&0u32.to_be_bytes());
        header.extend_from_slice(&13u16.to_be_bytes());
        header.extend_from_slice(&subtype.to_be_bytes());
        header.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes());
        out.write_all(&header)?;
        out.write_all(body)
    };
    // PEER_INDEX_TABLE: collector id, empty view name, one peer (IPv4, 4-octet AS).
    let mut peers = Vec::new();
    peers.extend_from_slice(&next_hop.octets());
    peers.extend_from_slice(&0u16.to_be_bytes());
    peers.extend_from_slice(&1u16.to_be_bytes());
    peers.push(0x02);
    peers.extend_from_slice(&next_hop.octets());
    peers.extend_from_slice(&next_hop.octets());
    peers.extend_from_slice(&FEED_AS.to_be_bytes());
    record(1, &peers)?;
    for i in 0..n {
        let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
        let path_as = 65100 + (i / 1000) % 1000;
        attrs.extend_from_slice(&[0x40, 2, 10, 2, 2]); // AS_PATH: one sequence of two
        attrs.extend_from_slice(&65001u32.to_be_bytes());
        attrs.extend_from_slice(&path_as.to_be_bytes());
        attrs.extend_from_slice(&[0x40, 3, 4]);
        attrs.extend_from_slice(&next_hop.octets());
        let mut body = Vec::with_capacity(40);
        body.extend_from_slice(&i.to_be_bytes());
        body.push(24);
        body.extend_from_slice(&prefix(i).octets()[..3]);
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes()); // peer index
        body.extend_from_slice(&0u32.to_be_bytes()); // originated time
        body.extend_from_slice(&u16::try_from(attrs.len()).unwrap_or(0).to_be_bytes());
        body.extend_from_slice(&attrs);
        record(2, &body)?;
    }
    out.flush()
}

fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    eprintln!("bgp_ingest: waiting for {what}");
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < TIMEOUT,
            "{what} did not finish in {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// `Destination: N` from `gobgp global rib summary`.
fn destinations(gobgp: &GoBgp) -> u32 {
    gobgp
        .gobgp(&["global", "rib", "summary", "-a", "ipv4"])
        .unwrap_or_default()
        .split_whitespace()
        .skip_while(|w| *w != "Destination:")
        .nth(1)
        .and_then(|w| w.trim_end_matches(',').parse().ok())
        .unwrap_or(0)
}

fn add_neighbor(gobgp: &GoBgp, node: &Node) {
    gobgp
        .gobgp(&[
            "neighbor",
            "add",
            &node.ip().to_string(),
            "as",
            &OUR_AS.to_string(),
        ])
        .expect("gobgp neighbor add");
}

fn main() {
    let wanted: u32 = std::env::var("BGP_INGEST_PREFIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lab = Lab::star(3).expect("lab");
    let (g, v, b) = (lab.node(0), lab.node(1), lab.node(2));

    let gobgp = GoBgp::start(
        g,
        &BgpConfig::new(g.ip(), FEED_AS).to_gobgp().expect("config"),
    )
    .expect("gobgpd");
    let dir = std::env::temp_dir().join(format!("vrouter-bench-mrt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mrt = dir.join("feed.mrt");
    write_mrt(&mrt, wanted, g.ip()).expect("write MRT");
    let t = Instant::now();
    gobgp
        .gobgp(&["mrt", "inject", "global", &mrt.to_string_lossy()])
        .expect("gobgp mrt inject");
    let _ = std::fs::remove_dir_all(&dir);
    // The server keeps processing the stream after the CLI returns: wait for the count.
    // The server keeps processing the stream after the CLI returns, and `mrt inject` may
    // drop a few percent of a large dump: the feed is whatever gobgpd settles on.
    let mut last = (0, Instant::now());
    wait_for("gobgpd to settle", || {
        let have = destinations(&gobgp);
        if have != last.0 {
            last = (have, Instant::now());
        }
        have > 0 && last.1.elapsed() > Duration::from_secs(3)
    });
    let n = last.0;
    println!(
        "bgp_ingest: gobgpd holds {n} prefixes ({wanted} generated) after {:.1?}",
        t.elapsed()
    );

    // vrouter: eBGP from GoBGP, Loc-RIB only. Receivers connect (retry 1 s): gobgpd's own
    // connect retry after `neighbor add` is far longer.
    let me = "self";
    let rss_before = rss_kib(me);
    let mut config = SpeakerConfig::new(v.ip(), OUR_AS);
    config.connect_retry = Duration::from_secs(1);
    config
        .peers
        .push(PeerConfig::new(g.ip().into(), FEED_AS).passive(true));
    let fib = CountingFib::new();
    let path = format!("/var/run/netns/{}", v.name());
    let speaker = NetnsSpeaker::spawn(Path::new(&path), config, FibChoice::Counting(fib.clone()))
        .expect("speaker");
    add_neighbor(&gobgp, v);
    let handle = speaker.handle().clone();
    // Timing starts at Established: connection setup (and gobgpd's retry timers) is not ingest.
    wait_for("the vrouter session", || {
        runtime
            .block_on(handle.peer(g.ip().into()))
            .ok()
            .flatten()
            .is_some_and(|p| p.state == bgp::fsm::State::Established)
    });
    let ours = wait_for("vrouter ingest", || {
        runtime
            .block_on(handle.rib_summary())
            .is_ok_and(|s| s.prefixes >= n as usize)
    });
    let rss_ours = rss_kib(me).saturating_sub(rss_before);
    let summary = runtime.block_on(handle.rib_summary()).expect("summary");
    drop(speaker);

    // BIRD: the same feed, alone with GoBGP.
    let bird = Bird::start_with(
        b,
        &BgpConfig::new(b.ip(), OUR_AS).neighbor(g.ip().into(), FEED_AS),
    )
    .expect("bird");
    let bird_pid = bird.pid().expect("bird pid").to_string();
    let bird_before = rss_kib(&bird_pid);
    add_neighbor(&gobgp, b);
    wait_for("the BIRD session", || {
        bird.established(g.ip().into()).is_ok()
    });
    let query = format!(
        "show route protocol {} count",
        bird_protocol_name(g.ip().into())
    );
    let theirs = wait_for("BIRD ingest", || {
        bird.birdc(&query).is_ok_and(|out| {
            out.split_whitespace()
                .next()
                .and_then(|c| c.parse::<u32>().ok())
                .is_some_and(|c| c >= n)
        })
    });
    let rss_bird = rss_kib(&bird_pid).saturating_sub(bird_before);

    let per_route = |kib: u64| (kib as f64 * 1024.0) / f64::from(n);
    println!(
        "bgp_ingest: vrouter {:.2?} ({:.0} routes/s), +{} MiB RSS = {:.0} B/route; {} attribute sets; {} FIB routes",
        ours,
        f64::from(n) / ours.as_secs_f64(),
        rss_ours / 1024,
        per_route(rss_ours),
        summary.attribute_sets,
        fib.len()
    );
    println!(
        "bgp_ingest: BIRD    {:.2?} ({:.0} routes/s), +{} MiB RSS = {:.0} B/route",
        theirs,
        f64::from(n) / theirs.as_secs_f64(),
        rss_bird / 1024,
        per_route(rss_bird)
    );
    println!(
        "bgp_ingest: vrouter/BIRD time ratio {:.2}, memory ratio {:.2}",
        ours.as_secs_f64() / theirs.as_secs_f64(),
        per_route(rss_ours) / per_route(rss_bird).max(1.0)
    );
}
