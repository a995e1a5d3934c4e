//! `vrouterc` against a control socket served for a speaker on loopback (one peer,
//! `Global_127_0_0_2`, whose port is closed: Active/Connection refused):
//! - interactive, driven through tmux (private `-L` server, killed on drop): Tab completes
//!   commands and peer names, Up recalls history, the history file is written on quit;
//! - one-shot: output stable for scripts (codes stripped, `-v` keeps them), exit codes 0/1/2,
//!   `-r` makes writes fail.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bgp::ctl::{CtlOptions, CtlServer, SpeakerBackend};
use bgp::speaker::{MemoryFib, PeerConfig, Shutdown, Speaker, SpeakerConfig, SpeakerHandle};
use test_support::assert_eventually;

const VROUTERC: &str = env!("CARGO_BIN_EXE_vrouterc");

struct Daemon {
    runtime: tokio::runtime::Runtime,
    handle: SpeakerHandle,
    server: Option<CtlServer>,
}

impl Daemon {
    fn start(socket: &Path) -> Daemon {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // A port nothing listens on: bind, read it, close.
        let closed = std::net::TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = SpeakerConfig::new("127.0.0.1".parse().unwrap(), 64512);
        config.listen_port = None;
        config.connect_retry = Duration::from_secs(1);
        config.idle_hold = Duration::from_secs(1);
        let mut peer = PeerConfig::new("127.0.0.2".parse().unwrap(), 64512);
        peer.port = closed;
        config.peers.push(peer);
        config.originate.push("10.244.0.0/26".parse().unwrap());
        let handle = runtime
            .block_on(Speaker::start(config, Box::new(MemoryFib::new())))
            .unwrap();
        let backend = Arc::new(SpeakerBackend::fixed("vrouterd", "0.1.0", handle.clone()));
        let server = runtime
            .block_on(bgp::ctl::serve(socket, CtlOptions::default(), backend))
            .unwrap();
        Daemon {
            runtime,
            handle,
            server: Some(server),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
        let _ = self.runtime.block_on(self.handle.shutdown(Shutdown::Stop));
    }
}

/// A private tmux server, killed on drop.
struct Tmux {
    name: String,
    /// The server's socket file (tmux leaves it behind after kill-server).
    socket: Option<String>,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            name: format!("vt-{name}-{}", std::process::id()),
            socket: None,
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "shell"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "shell", "-S", "-200"])
    }

    /// Probe: the screen's last non-empty line is `line`.
    fn last_line(&self, line: &str) -> Result<String, String> {
        let screen = self.screen();
        let last = screen
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        if last.trim_end() == line {
            Ok(screen)
        } else {
            Err(format!(
                "last line {last:?}, want {line:?}; screen:\n{screen}"
            ))
        }
    }

    /// Probe: the screen contains `text`.
    fn shows(&self, text: &str) -> Result<String, String> {
        let screen = self.screen();
        if screen.contains(text) {
            Ok(screen)
        } else {
            Err(format!("screen lacks {text:?}:\n{screen}"))
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .output();
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

#[test]
fn shell_completes_recalls_and_writes_history() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vrouter.ctl");
    let _daemon = Daemon::start(&socket);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut tmux = Tmux::new("vrouterc");
    let command = format!(
        "env HOME={} TERM=xterm {VROUTERC} -s {}",
        home.display(),
        socket.display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "shell",
        "-x",
        "160",
        "-y",
        "50",
        &command,
    ]);
    let socket = tmux.run(&["display-message", "-p", "#{socket_path}"]);
    tmux.socket = Some(socket.trim().to_string());
    assert_eventually!(tmux.shows("vrouterd 0.1.0 ready."));
    assert_eventually!(tmux.last_line("vrouterc>"));

    // Tab completes a command word, then a subcommand.
    tmux.keys(&["sh", "Tab"]);
    assert_eventually!(tmux.last_line("vrouterc> show"));
    tmux.keys(&["pro", "Tab"]);
    assert_eventually!(tmux.last_line("vrouterc> show protocols"));
    tmux.keys(&["Enter"]);
    assert_eventually!(tmux.shows("Global_127_0_0_2 BGP        ---        start"));
    assert_eventually!(tmux.shows("Socket: Connection refused"));
    assert_eventually!(tmux.last_line("vrouterc>"));

    // Tab completes a peer name fetched from the daemon.
    tmux.keys(&["disable Glo", "Tab"]);
    assert_eventually!(tmux.last_line("vrouterc> disable Global_127_0_0_2"));
    tmux.keys(&["Enter"]);
    assert_eventually!(tmux.shows("Global_127_0_0_2: disabled"));
    assert_eventually!(tmux.last_line("vrouterc>"));

    // Up twice recalls `show protocols`; the peer is now down.
    tmux.keys(&["Up"]);
    assert_eventually!(tmux.last_line("vrouterc> disable Global_127_0_0_2"));
    tmux.keys(&["Up"]);
    assert_eventually!(tmux.last_line("vrouterc> show protocols"));
    tmux.keys(&["Enter"]);
    assert_eventually!(tmux.shows("Global_127_0_0_2 BGP        ---        down"));
    // Errors are shown without codes; help is local.
    tmux.keys(&["show foo", "Enter"]);
    assert_eventually!(tmux.shows("syntax error at column 6: unexpected 'foo'"));
    assert!(!tmux.screen().contains("9001"));
    tmux.keys(&["quit", "Enter"]);

    let history = home.join(".vrouterc_history");
    assert_eventually!(
        timeout = Duration::from_secs(10),
        std::fs::read_to_string(&history)
            .map_err(|e| e.to_string())
            .and_then(|h| {
                if h.contains("disable Global_127_0_0_2") && h.contains("show protocols") {
                    Ok(h)
                } else {
                    Err(format!("history: {h}"))
                }
            })
    );
}

fn one_shot(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(VROUTERC)
        .arg("-s")
        .arg(socket)
        .arg("--no-history")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_shot_output_is_stable_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vrouter.ctl");
    let _daemon = Daemon::start(&socket);

    let (code, out, _) = one_shot(&socket, &["show", "route"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Table master4:");
    assert!(
        lines[1].starts_with("10.244.0.0/26        blackhole [static1 "),
        "{out}"
    );
    assert_eq!(
        lines.last(),
        Some(&""),
        "the final `0000 ` line is empty text: {out}"
    );
    // Same command, same bytes (nothing changed in between).
    assert_eq!(one_shot(&socket, &["show", "route"]).1, out);

    let (code, out, _) = one_shot(&socket, &["-v", "show", "route", "count"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "1007-1 of 1 routes for 1 networks in table master4\n \
         0 of 0 routes for 0 networks in table master6\n\
         0014 Total: 1 of 1 routes for 1 networks in 2 tables\n"
    );

    let (code, out, _) = one_shot(&socket, &["show", "protocols", "all", "Global_127_0_0_2"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("  Description:    global\n  BGP state:          ")
            && out.contains("\n    Neighbor address: 127.0.0.2\n"),
        "{out}"
    );

    let (code, out, _) = one_shot(&socket, &["show", "route", "for", "192.0.2.1"]);
    assert_eq!((code, out.as_str()), (1, "Network not found\n"));
    let (code, _, _) = one_shot(&socket, &["show", "foo"]);
    assert_eq!(code, 1);
    let (code, out, _) = one_shot(&socket, &["-r", "disable", "all"]);
    assert_eq!((code, out.as_str()), (1, "Access denied\n"));
    let (code, out, _) = one_shot(&socket, &["-r", "show", "status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("vrouterd 0.1.0\nRouter ID is"), "{out}");

    let (code, out, err) = one_shot(&dir.path().join("absent.ctl"), &["show", "status"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains("Unable to connect to server control socket"),
        "{err}"
    );
}
