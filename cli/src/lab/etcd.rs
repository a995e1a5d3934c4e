//! The lab's etcd: a single-member cluster in the root namespace, listening on loopback and on
//! the lab's host address on the underlay (so node namespaces reach it), with its data in the
//! lab's state directory. Started again on the same ports and data after a stop.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::process::{spawn_daemon, tail};
use super::state::EtcdRecord;

/// How long etcd may take to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr().context("reading a free port")?.port())
}

/// The record of an etcd to be started by the lab in `dir`, reachable at `host_ip`.
pub fn plan(dir: &Path, host_ip: Ipv4Addr) -> anyhow::Result<EtcdRecord> {
    let client_port = free_port()?;
    let peer_port = free_port()?;
    Ok(EtcdRecord {
        endpoint: format!("http://{host_ip}:{client_port}"),
        local_endpoint: format!("http://127.0.0.1:{client_port}"),
        owned: true,
        client_port,
        peer_port,
        data_dir: Some(dir.join("etcd")),
    })
}

/// The record of an existing etcd named by `--etcd-endpoints` (the first URL is used from
/// the root namespace, all of them from the nodes).
pub fn external(endpoints: &str) -> EtcdRecord {
    let first = endpoints.split(',').next().unwrap_or(endpoints).to_string();
    EtcdRecord {
        endpoint: endpoints.to_string(),
        local_endpoint: first,
        owned: false,
        client_port: 0,
        peer_port: 0,
        data_dir: None,
    }
}

/// Starts the etcd `record` describes (owned only) with its log in `log`; returns its PID
/// once it reports healthy. `existing` restarts on existing data.
pub fn start(
    record: &EtcdRecord,
    host_ip: Ipv4Addr,
    log: &Path,
    token: &str,
    existing: bool,
) -> anyhow::Result<u32> {
    let Some(data_dir) = &record.data_dir else {
        bail!("the lab does not own etcd {}", record.endpoint);
    };
    let client = format!(
        "http://127.0.0.1:{port},http://{host_ip}:{port}",
        port = record.client_port
    );
    let peer = format!("http://127.0.0.1:{}", record.peer_port);
    let mut cmd = Command::new("etcd");
    cmd.arg("--name")
        .arg("lab")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen-client-urls")
        .arg(&client)
        .arg("--advertise-client-urls")
        .arg(&record.endpoint)
        .arg("--listen-peer-urls")
        .arg(&peer)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer)
        .arg("--initial-cluster")
        .arg(format!("lab={peer}"))
        .arg("--initial-cluster-state")
        .arg(if existing { "existing" } else { "new" })
        .arg("--initial-cluster-token")
        .arg(token)
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        // One `vrctl apply` is one transaction (README: raise etcd's default of 128 ops).
        .args(["--max-txn-ops", "10000", "--max-request-bytes", "10485760"])
        .args(["--logger", "zap", "--log-level", "warn"]);
    let mut child = spawn_daemon(&mut cmd, log)
        .context("starting etcd (is etcd-server installed? run `make deps`)")?;
    let pid = child.id();
    let start = Instant::now();
    while start.elapsed() < START_TIMEOUT {
        if is_healthy(record.client_port) {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "etcd exited ({status}); log {}:\n{}",
                log.display(),
                tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    super::process::signal(pid, "KILL");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    bail!(
        "etcd not healthy after {START_TIMEOUT:?}; log {}:\n{}",
        log.display(),
        tail(&text, 20)
    )
}

/// Whether the etcd on loopback `port` answers `/health` with `true`.
pub fn is_healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.contains("\"health\":\"true\"")
}
