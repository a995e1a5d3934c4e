//! Running programs for the lab: short commands (`ip …`) whose failure is an error naming the
//! command and its stderr, and long-running daemons started in their own process group with
//! output to a log file, so they outlive `vrctl lab up` and a Ctrl-C in its terminal.
//!
//! Stopping is by recorded PID, and only if `/proc/<pid>/cmdline` still contains the lab's
//! marker (its state directory), so a reused PID is never signalled.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// `cmd` as one shell-like line, for error messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd`; fails with its stderr unless it exits 0. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{}`", command_line(cmd)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            command_line(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip args…` in the root namespace.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run_ok(Command::new("ip").args(args))
}

/// Runs `ip -n ns args…`.
pub fn ip_in(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    run_ok(Command::new("ip").args(["-n", ns]).args(args))
}

/// Moves the calling thread into network namespace `ns` (`setns(2)`); a child it spawns
/// afterwards starts there, with the host's mounts, as if started on that host.
pub fn enter_netns(ns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .with_context(|| format!("entering namespace {ns}"))
}

/// A command running `program` inside namespace `ns` (`ip netns exec` execs in place, so the
/// child's PID is the program's).
pub fn in_netns(ns: &str, program: &Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Spawns a daemon in its own process group, stdin from /dev/null, stdout and stderr appended
/// to `log`. The returned child is only for an early-exit check; the caller records its PID.
pub fn spawn_daemon(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = file.try_clone().context("cloning a log handle")?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting `{}`", command_line(cmd)))
}

/// Whether PID `pid` is alive and its command line contains `marker`.
pub fn is_ours(pid: u32, marker: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let text = String::from_utf8_lossy(&raw).replace('\0', " ");
            !text.is_empty() && text.contains(marker)
        }
        Err(_) => false,
    }
}

/// Whether `/proc/<pid>` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Every PID whose command line contains `marker`, except this process.
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && is_ours(pid, marker))
        .collect()
}

/// Sends `signal` (`TERM`, `KILL`, …) to `pid`. Errors (already gone) are ignored.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops `pid` if it is still ours: SIGTERM, then SIGKILL after `grace`. Returns whether it
/// had to be signalled at all.
pub fn stop(pid: u32, marker: &str, grace: Duration) -> bool {
    if !is_ours(pid, marker) {
        return false;
    }
    signal(pid, "TERM");
    let start = Instant::now();
    while start.elapsed() < grace {
        if !is_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_ours(pid, marker) {
        signal(pid, "KILL");
    }
    true
}

/// Waits until `log` contains `needle` after byte `offset` (earlier runs' lines do not
/// count), failing early if `child` exits.
pub fn wait_for_log(
    log: &Path,
    needle: &str,
    offset: usize,
    child: &mut Child,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.get(offset..).is_some_and(|t| t.contains(needle)) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{what} exited ({status}) before logging {needle:?}; log {}:\n{}",
                log.display(),
                tail(&text, 20)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{what} did not log {needle:?} within {timeout:?}; log {}:\n{}",
                log.display(),
                tail(&text, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Current size of file `path` (0 if missing): the offset for [`wait_for_log`].
pub fn file_len(path: &Path) -> usize {
    std::fs::metadata(path)
        .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
        .unwrap_or(0)
}
