//! The reflector's metrics endpoint: `GET /metrics` in Prometheus text format with the same
//! `vrouter_bgp_*` names vrouterd exports (sessions by state, routes per peer, Loc-RIB and
//! Adj-RIB-In sizes, distinct attribute sets) plus `process_resident_memory_bytes`;
//! `GET /healthz` answers `ok` while the speaker runs.
//!
//! A minimal HTTP/1.1 responder on tokio, one request per connection, request heads over
//! 8 KiB or slower than 5 s dropped. (vrouterd's own endpoint was not in the tree when this
//! was written; this one is deliberately small.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bgp::speaker::SpeakerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders the metrics of a running speaker (None: the speaker has stopped).
pub async fn render(handle: &SpeakerHandle) -> Option<String> {
    let peers = handle.peers().await.ok()?;
    let summary = handle.rib_summary().await.ok()?;
    let mut out = String::new();
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for peer in &peers {
        *by_state.entry(peer.state.to_string()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_speaker_up Whether the BGP speaker runs."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_speaker_up gauge");
    let _ = writeln!(out, "vrouter_bgp_speaker_up 1");
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_sessions BGP sessions by FSM state."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_sessions gauge");
    for (state, n) in &by_state {
        let _ = writeln!(out, "vrouter_bgp_sessions{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_peer_routes_received Routes in a peer's Adj-RIB-In."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_peer_routes_received gauge");
    for peer in &peers {
        let _ = writeln!(
            out,
            "vrouter_bgp_peer_routes_received{{peer=\"{}\"}} {}",
            peer.address, peer.routes_received
        );
    }
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_loc_rib_prefixes Prefixes in the Loc-RIB."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_loc_rib_prefixes gauge");
    let _ = writeln!(out, "vrouter_bgp_loc_rib_prefixes {}", summary.prefixes);
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_adj_rib_in_routes Routes in all Adj-RIBs-In."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_adj_rib_in_routes gauge");
    let _ = writeln!(out, "vrouter_bgp_adj_rib_in_routes {}", summary.received);
    let _ = writeln!(
        out,
        "# HELP vrouter_bgp_attribute_sets Distinct path attribute sets held."
    );
    let _ = writeln!(out, "# TYPE vrouter_bgp_attribute_sets gauge");
    let _ = writeln!(out, "vrouter_bgp_attribute_sets {}", summary.attribute_sets);
    if let Some(rss) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    Some(out)
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Binds `at` and serves until the returned task is aborted.
pub async fn serve(at: SocketAddr, handle: SpeakerHandle) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(at).await?;
    tracing::info!(%at, "metrics endpoint listening");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = respond(stream, &handle).await;
            });
        }
    }))
}

async fn respond(mut stream: TcpStream, handle: &SpeakerHandle) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Err(std::io::Error::other("bad request head"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::other("slow request"))??;
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => match render(handle).await {
            Some(text) => ("200 OK", text),
            None => ("503 Service Unavailable", "speaker stopped\n".to_string()),
        },
        ("GET", "/healthz") => match handle.rib_summary().await {
            Ok(_) => ("200 OK", "ok\n".to_string()),
            Err(_) => ("503 Service Unavailable", "not ready\n".to_string()),
        },
        ("GET", _) => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "method not allowed\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
