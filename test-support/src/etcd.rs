//! Real `etcd` servers for tests: one member ([`Etcd`]) or a small cluster ([`EtcdCluster`]) on
//! free loopback ports, each with its own temporary data directory.
//!
//! A server is killed and its data removed when the value is dropped, also when the test panics.
//! As a second line of defence every member is started under `setpriv --pdeathsig KILL`, so a
//! test process that dies without unwinding still takes its etcd with it.
//!
//! ```no_run
//! let etcd = test_support::etcd::Etcd::start().expect("etcd");
//! let endpoint = etcd.endpoint(); // "http://127.0.0.1:PORT"
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a member may take to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors starting or driving a test etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An I/O error (spawning, temp dirs, ports).
    #[error("etcd harness i/o: {context}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The member did not become healthy in time; the tail of its log is included.
    #[error("etcd member {name} not healthy after {waited:?}; log tail:\n{log_tail}")]
    NotHealthy {
        /// Member name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Last lines of the member's log.
        log_tail: String,
    },
    /// `etcdctl` failed.
    #[error("etcdctl {args:?} failed: {stderr}")]
    Etcdctl {
        /// The arguments passed.
        args: Vec<String>,
        /// Its standard error.
        stderr: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EtcdError {
    let context = context.into();
    move |source| EtcdError::Io { context, source }
}

/// Returns a loopback TCP port that was free a moment ago.
fn free_port() -> Result<u16, EtcdError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("read the free port"))?
        .port();
    Ok(port)
}

/// One member's fixed identity: name, ports and data directory survive a kill + restart.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn new(name: &str, root: &Path) -> Result<Self, EtcdError> {
        let data_dir = root.join(format!("{name}.etcd"));
        Ok(Self {
            name: name.to_string(),
            client_port: free_port()?,
            peer_port: free_port()?,
            log_path: root.join(format!("{name}.log")),
            data_dir,
            child: None,
        })
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn spawn(&mut self, initial_cluster: &str, state: &str) -> Result<(), EtcdError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io(format!("open {}", self.log_path.display())))?;
        let log_err = log.try_clone().map_err(io("clone the log handle"))?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "etcd"])
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(self.client_url())
            .arg("--advertise-client-urls")
            .arg(self.client_url())
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(format!("vrouter-test-{}", std::process::id()))
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            // One `vrctl apply` is one transaction; vrouter's deployment docs raise etcd's
            // default of 128 operations per transaction the same way.
            .args(["--max-txn-ops", "10000", "--max-request-bytes", "10485760"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(io("spawn etcd (is etcd-server installed? run `make deps`)"))?;
        self.child = Some(child);
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply.contains("\"health\":\"true\"")
    }

    fn wait_healthy(&mut self) -> Result<(), EtcdError> {
        let start = Instant::now();
        while start.elapsed() < START_TIMEOUT {
            if self.is_healthy() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_status)) = child.try_wait()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(EtcdError::NotHealthy {
            name: self.name.clone(),
            waited: start.elapsed(),
            log_tail: log_tail(&self.log_path),
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A single-member etcd on free loopback ports.
#[derive(Debug)]
pub struct Etcd {
    member: Member,
    // Declared last so the member is killed before its data directory is removed.
    _root: TempDir,
}

impl Etcd {
    /// Starts a fresh member and waits until it reports healthy.
    pub fn start() -> Result<Self, EtcdError> {
        let root = tempfile::Builder::new()
            .prefix("vrouter-etcd-")
            .tempdir()
            .map_err(io("create the etcd temp dir"))?;
        let mut member = Member::new("solo", root.path())?;
        let cluster = format!("{}={}", member.name, member.peer_url());
        member.spawn(&cluster, "new")?;
        member.wait_healthy()?;
        Ok(Self {
            member,
            _root: root,
        })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.member.client_url()
    }

    /// Kills the server (SIGKILL, like a crash). Its data stays for [`Etcd::restart`].
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// Starts the server again on the same ports and data, and waits until it is healthy.
    pub fn restart(&mut self) -> Result<(), EtcdError> {
        self.member.kill();
        let cluster = format!("{}={}", self.member.name, self.member.peer_url());
        self.member.spawn(&cluster, "existing")?;
        self.member.wait_healthy()
    }

    /// Runs `etcdctl` against this server and returns its standard output.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, EtcdError> {
        etcdctl(&[self.endpoint()], args)
    }
}

/// A multi-member etcd cluster on loopback, for tests of quorum and failover.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    _root: TempDir,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one reports healthy.
    pub fn start(size: usize) -> Result<Self, EtcdError> {
        let root = tempfile::Builder::new()
            .prefix("vrouter-etcd-cluster-")
            .tempdir()
            .map_err(io("create the etcd temp dir"))?;
        let mut members = (0..size)
            .map(|i| Member::new(&format!("m{i}"), root.path()))
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for member in &mut members {
            member.spawn(&cluster, "new")?;
        }
        for member in &mut members {
            member.wait_healthy()?;
        }
        Ok(Self {
            members,
            _root: root,
        })
    }

    /// Client URLs of every member, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Kills member `index` (SIGKILL). Out-of-range indexes are ignored.
    pub fn kill_member(&mut self, index: usize) {
        if let Some(member) = self.members.get_mut(index) {
            member.kill();
        }
    }

    /// Runs `etcdctl` against every member's endpoint and returns its standard output.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, EtcdError> {
        etcdctl(&self.endpoints(), args)
    }
}

fn etcdctl(endpoints: &[String], args: &[&str]) -> Result<String, EtcdError> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(args)
        .output()
        .map_err(io(
            "run etcdctl (is etcd-client installed? run `make deps`)",
        ))?;
    if !output.status.success() {
        return Err(EtcdError::Etcdctl {
            args: args.iter().map(|a| a.to_string()).collect(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
