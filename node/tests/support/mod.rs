//! Shared helpers of vrouterd's integration tests: a node namespace that reaches the test etcd
//! through a proxy listening inside it, the real `vrouterd` binary run in that namespace,
//! HTTP requests made from inside the namespace, and commands on the control socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use bgp::ctl::client::Client;
use datastore::etcd::{EtcdConfig, Store};
use test_support::etcd::Etcd;
use test_support::proxy::TcpProxy;
use test_support::{ChildGuard, Netns};

/// How long a test waits for anything.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A current-thread runtime and a store on the test etcd connected on it.
pub(crate) fn etcd_store(etcd: &Etcd) -> (tokio::runtime::Runtime, Store) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(Store::connect(&EtcdConfig::new([etcd.endpoint()])))
        .unwrap();
    (rt, store)
}

/// `command` over the control socket at `socket`: the reply's text, one line per line.
pub(crate) fn ctl(socket: &Path, command: &str) -> Result<String, String> {
    let mut client = Client::connect(socket, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let reply = client.command(command).map_err(|e| e.to_string())?;
    let text: Vec<String> = reply.lines.iter().map(|l| l.text.clone()).collect();
    Ok(text.join("\n"))
}

/// A proxy from `127.0.0.1:<port>` inside `ns` to the test etcd on the host's loopback.
pub(crate) fn etcd_in(ns: &Netns, etcd: &Etcd) -> TcpProxy {
    let listener = ns
        .run(|| TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap();
    TcpProxy::with_listener(listener, &etcd.endpoint()).unwrap()
}

/// `GET path` from inside `ns`; returns the whole response (status line, headers, body).
pub(crate) fn http_get(ns: &Netns, port: u16, path: &str) -> std::io::Result<String> {
    let path = path.to_string();
    ns.run(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    })
    .unwrap()
}

/// A vrouterd process inside a namespace, with its log file.
pub(crate) struct Vrouterd {
    pub(crate) child: ChildGuard,
    pub(crate) log: PathBuf,
}

impl Vrouterd {
    /// Starts `vrouterd args…` in `ns`, appending its output to `log`.
    pub(crate) fn start(ns: &Netns, args: &[String], log: &Path) -> Vrouterd {
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_vrouterd"));
        cmd.args(args).env_remove("RUST_LOG");
        for key in std::env::vars().map(|(k, _)| k) {
            if key.starts_with("VROUTER_") {
                cmd.env_remove(key);
            }
        }
        let child = ChildGuard::spawn("vrouterd", &mut cmd, Some(log))
            .unwrap()
            .with_grace(Duration::from_secs(20));
        Vrouterd {
            child,
            log: log.to_path_buf(),
        }
    }

    /// The log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `n` lines containing `needle`.
    pub(crate) fn wait_log(&mut self, needle: &str, n: usize) {
        let log = self.log.clone();
        let wanted = needle.to_string();
        let result = self
            .child
            .wait_until(&format!("{n}x {needle:?} in the log"), WAIT, || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let found = text.matches(wanted.as_str()).count();
                if found >= n {
                    Ok(())
                } else {
                    Err(format!("{found} found"))
                }
            });
        if let Err(e) = result {
            panic!("{e}\nlog:\n{}", self.log_text());
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM and wait; the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.child.terminate().unwrap().unwrap()
    }
}
