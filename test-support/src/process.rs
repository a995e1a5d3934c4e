//! Child processes owned by a test: [`ChildGuard`] terminates and reaps on drop, keeps the
//! path of the process's log for error messages, and offers readiness waits that fail fast
//! (with the log tail) when the process dies instead of waiting out the deadline.
//!
//! Also one-shot command helpers ([`run`], [`run_ok`]) whose errors carry the command line and
//! its stderr, and standalone readiness helpers ([`wait_for_file`], [`wait_for_port`]).

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{HarnessError, Result, io_err};
use crate::eventually::{Attempt, poll};

/// How long [`ChildGuard`] waits after SIGTERM before it sends SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// Renders a command line for messages: program and arguments, space-joined.
pub(crate) fn command_line(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` to completion and returns its output, whatever its exit status.
pub fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("run `{}`", command_line(cmd))))
}

/// Runs `cmd`; fails with [`HarnessError::CommandFailed`] (including stderr) unless it exits 0.
/// Returns standard output.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let output = run(cmd)?;
    check_output(&command_line(cmd), output)
}

/// Turns a finished command's output into its stdout, or an error carrying its stderr.
pub(crate) fn check_output(command: &str, output: Output) -> Result<String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let stderr = if stderr.is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    } else {
        stderr
    };
    Err(HarnessError::CommandFailed {
        command: command.to_string(),
        status: output.status.to_string(),
        stderr,
    })
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A long-running child process that is terminated (SIGTERM, then SIGKILL after a grace
/// period) and reaped when the guard is dropped, also during a panic.
///
/// Its stdout and stderr go to a log file; [`ChildGuard::log_path`] and
/// [`ChildGuard::log_tail`] make that log easy to put into assertion messages, and every
/// error about the process includes the tail.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: Option<PathBuf>,
    grace: Duration,
    // Declared last: removed after the child is gone. Holds the log when the guard chose it.
    _log_dir: Option<TempDir>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout + stderr appended to `log`. When `log` is
    /// `None` the guard creates a temporary log file that lives as long as the guard.
    ///
    /// `name` identifies the process in messages (e.g. `"bird"`).
    pub fn spawn(name: impl Into<String>, cmd: &mut Command, log: Option<&Path>) -> Result<Self> {
        let name = name.into();
        let (log_path, log_dir) = match log {
            Some(path) => (path.to_path_buf(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("vrouter-proc-")
                    .tempdir()
                    .map_err(io_err("create a temp dir for a process log"))?;
                (
                    dir.path().join(format!("{}.log", sanitize(&name))),
                    Some(dir),
                )
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("open log {}", log_path.display())))?;
        let file_err = file
            .try_clone()
            .map_err(io_err("duplicate the log handle"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file_err))
            .spawn()
            .map_err(io_err(format!("spawn `{}`", command_line(cmd))))?;
        tracing::debug!(%name, pid = child.id(), log = %log_path.display(), "process started");
        Ok(Self {
            name,
            child: Some(child),
            log: Some(log_path),
            grace: DEFAULT_GRACE,
            _log_dir: log_dir,
        })
    }

    /// Takes ownership of an already spawned child; `log` is where its output goes, if known.
    pub fn adopt(name: impl Into<String>, child: Child, log: Option<PathBuf>) -> Self {
        Self {
            name: name.into(),
            child: Some(child),
            log,
            grace: DEFAULT_GRACE,
            _log_dir: None,
        }
    }

    /// Sets how long to wait between SIGTERM and SIGKILL (default [`DEFAULT_GRACE`]).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, or `None` once the process has been stopped through this guard.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the process's stdout and stderr go.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The last `lines` lines of the process's log (empty if there is none).
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map(|p| file_tail(p, lines))
            .unwrap_or_default()
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.ensure_running().is_ok()
    }

    /// `Ok` while the process runs; [`HarnessError::ProcessExited`] with the log tail otherwise.
    pub fn ensure_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("stopped by the harness".to_string()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(self.exited(format!("unknown: {e}"))),
        }
    }

    fn exited(&self, status: String) -> HarnessError {
        HarnessError::ProcessExited {
            name: self.name.clone(),
            status,
            log: self.log.clone(),
            log_tail: self.log_tail(30),
        }
    }

    /// Polls `probe` until it returns `Ok`, failing early if the process exits and with the
    /// last probe error (plus the log tail) on timeout. `what` names the awaited condition.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> std::result::Result<T, String>,
    ) -> Result<T> {
        let outcome = poll(what, timeout, || {
            if let Err(e) = self.ensure_running() {
                return Attempt::Fatal(e);
            }
            match probe() {
                Ok(value) => Attempt::Done(value),
                Err(reason) => Attempt::Retry(reason),
            }
        });
        match outcome {
            Err(HarnessError::Timeout { what, waited, last }) => Err(HarnessError::Timeout {
                what: format!("{what} ({})", self.name),
                waited,
                last: format!("{last}; log tail:\n{}", self.log_tail(30)),
            }),
            other => other,
        }
    }

    /// Waits until `path` exists (e.g. a control socket), failing early if the process exits.
    pub fn wait_for_file(&mut self, path: &Path, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{} to exist", path.display()), timeout, || {
            file_exists(path)
        })
    }

    /// Waits until a TCP connect to `addr` succeeds (in the test's own network namespace),
    /// failing early if the process exits.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("{addr} to accept"), timeout, || port_accepts(addr))
    }

    /// Sends SIGTERM, waits up to the grace period, then SIGKILLs; reaps the process and
    /// returns its exit status. Idempotent: later calls return `Ok(None)`.
    pub fn terminate(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(status));
        }
        // `kill` the command, because sending a signal from Rust needs `unsafe` (forbidden here)
        // or an extra crate; the PID is ours and not yet reaped, so it cannot have been reused.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::debug!(name = %self.name, %status, "process terminated");
                    return Ok(Some(status));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        tracing::debug!(name = %self.name, "process ignored SIGTERM; killing");
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(io_err(format!("reap `{}`", self.name)))
    }

    /// SIGKILLs the process at once and reaps it, like a crash. Idempotent.
    pub fn kill(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let _ = child.kill();
        child
            .wait()
            .map(Some)
            .map_err(io_err(format!("reap `{}`", self.name)))
    }

    /// Disarms the guard and hands back the child; the caller must now stop and reap it.
    pub fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            tracing::warn!(name = %self.name, error = %e, "could not stop process");
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn file_exists(path: &Path) -> std::result::Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!("{} does not exist", path.display()))
    }
}

fn port_accepts(addr: SocketAddr) -> std::result::Result<(), String> {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map(drop)
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// Waits until `path` exists.
pub fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    poll(
        &format!("{} to exist", path.display()),
        timeout,
        || match file_exists(path) {
            Ok(()) => Attempt::Done(()),
            Err(reason) => Attempt::Retry(reason),
        },
    )
}

/// Waits until a TCP connect to `addr` succeeds. This connects from the test process's own
/// network namespace; for a port inside a [`crate::Netns`] use
/// [`Netns::wait_for_listen`](crate::Netns::wait_for_listen).
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    poll(
        &format!("{addr} to accept"),
        timeout,
        || match port_accepts(addr) {
            Ok(()) => Attempt::Done(()),
            Err(reason) => Attempt::Retry(reason),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_terminates_and_reaps() {
        let guard = ChildGuard::spawn("sleep", Command::new("sleep").arg("600"), None).unwrap();
        let pid = guard.id().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(guard);
        // Reaped, so the PID is gone (not a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn sigkill_after_grace_when_sigterm_is_ignored() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 0.05; done",
        ]);
        let mut guard = ChildGuard::spawn("stubborn", &mut cmd, None)
            .unwrap()
            .with_grace(Duration::from_millis(300));
        let log = guard.log_path().unwrap().to_path_buf();
        guard
            .wait_until("ready line", Duration::from_secs(5), || {
                if file_tail(&log, 5).contains("ready") {
                    Ok(())
                } else {
                    Err("no output".into())
                }
            })
            .unwrap();
        let status = guard.terminate().unwrap().unwrap();
        assert!(!status.success());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
        assert!(guard.terminate().unwrap().is_none());
    }

    #[test]
    fn early_exit_fails_fast_with_log_tail() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'config error: line 3' >&2; exit 2"]);
        let mut guard = ChildGuard::spawn("broken", &mut cmd, None).unwrap();
        let err = guard
            .wait_for_file(Path::new("/nonexistent/socket"), Duration::from_secs(60))
            .unwrap_err();
        // Fail-fast means the exit was noticed, not that the deadline ran out.
        assert!(matches!(err, HarnessError::ProcessExited { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("config error: line 3"), "{text}");
        assert!(text.contains("broken"), "{text}");
    }

    #[test]
    fn run_ok_reports_stderr() {
        let err = run_ok(Command::new("sh").args(["-c", "echo nope >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nope") && text.contains("sh -c"), "{text}");
        assert_eq!(run_ok(Command::new("echo").arg("hi")).unwrap(), "hi\n");
    }

    #[test]
    fn wait_for_port_sees_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_port(addr, Duration::from_secs(5)).unwrap();
        drop(listener);
        assert!(wait_for_port(addr, Duration::from_millis(120)).is_err());
    }

    #[test]
    fn wait_for_file_sees_a_late_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late");
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(path, b"x").unwrap();
            })
        };
        wait_for_file(&path, Duration::from_secs(5)).unwrap();
        writer.join().unwrap();
    }
}
