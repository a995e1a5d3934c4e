//! Delegating to the IPAM plugin as the CNI spec prescribes: find the executable named by
//! `ipam.type` in the `CNI_PATH` directories, run it with the same environment (except
//! `CNI_COMMAND`, which names the delegated operation) and the same stdin, and read its
//! result or error from stdout.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use crate::spec::{CniError, CniResult, Command, Environment, code};

fn command_name(command: Command) -> &'static str {
    match command {
        Command::Add => "ADD",
        Command::Del => "DEL",
        Command::Check => "CHECK",
        Command::Version => "VERSION",
        Command::Status => "STATUS",
        Command::Gc => "GC",
    }
}

/// Finds plugin `kind` in `CNI_PATH`.
pub fn find_plugin(kind: &str, env: &Environment) -> Result<PathBuf, CniError> {
    if kind.is_empty() || kind.contains('/') {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("ipam type {kind:?} is not a plugin name"),
        ));
    }
    env.path
        .iter()
        .map(|dir| PathBuf::from(dir).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("IPAM plugin {kind} not found in CNI_PATH"),
            )
            .with_details(format!("searched {}", env.path.join(":")))
        })
}

/// Runs the IPAM plugin `kind` for `command` with `stdin`; returns its parsed result (ADD)
/// or an empty one.
pub async fn run_ipam(
    kind: &str,
    command: Command,
    env: &Environment,
    stdin: &[u8],
) -> Result<CniResult, CniError> {
    let program = find_plugin(kind, env)?;
    let stdin = stdin.to_vec();
    let name = command_name(command);
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Process::new(&program)
            .env("CNI_COMMAND", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(&stdin)?;
        }
        child.wait_with_output()
    })
    .await
    .map_err(|e| CniError::new(code::IO_FAILURE, format!("IPAM plugin task failed: {e}")))?
    .map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("cannot run IPAM plugin {kind}: {e}"),
        )
    })?;
    if !output.status.success() {
        return Err(
            serde_json::from_slice::<CniError>(&output.stdout).unwrap_or_else(|_| {
                CniError::new(
                    code::IO_FAILURE,
                    format!("IPAM plugin {kind} failed ({})", output.status),
                )
                .with_details(String::from_utf8_lossy(&output.stdout).into_owned())
            }),
        );
    }
    if command != Command::Add {
        return Ok(CniResult::default());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        CniError::new(
            code::DECODE,
            format!("cannot decode the result of IPAM plugin {kind}"),
        )
        .with_details(e.to_string())
    })
}
