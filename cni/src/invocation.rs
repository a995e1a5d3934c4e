//! Process glue shared by both binaries: read `CNI_*` from the environment and the
//! configuration from stdin, run the plugin on a current-thread runtime, print the result
//! (or the error document) on stdout and exit 0 (or 1). Logs go to stderr, filtered by
//! `VROUTER_LOG` (default `warn`).

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::spec::{CniError, Command, Environment, code, read_environment};

/// Which plugin a binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `vrouter-cni`.
    Cni,
    /// `vrouter-ipam`.
    Ipam,
}

async fn dispatch(
    plugin: Plugin,
    command: Command,
    env: &Environment,
    stdin: &[u8],
) -> Result<String, CniError> {
    match plugin {
        Plugin::Cni => crate::plugin::run(command, env, stdin).await,
        Plugin::Ipam => crate::ipam_plugin::run(command, env, stdin).await,
    }
}

fn invoke(plugin: Plugin) -> Result<String, CniError> {
    let (command, env) = read_environment(|name| std::env::var(name).ok())?;
    let mut stdin = Vec::new();
    if command != Command::Version || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        std::io::stdin()
            .read_to_end(&mut stdin)
            .map_err(|e| CniError::new(code::IO_FAILURE, format!("cannot read stdin: {e}")))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("cannot start runtime: {e}")))?;
    tracing::debug!(?plugin, ?command, "invoked");
    let result = runtime.block_on(dispatch(plugin, command, &env, &stdin));
    tracing::debug!(?plugin, ?command, ok = result.is_ok(), "finished");
    result
}

/// The whole process: returns the exit status.
pub fn main(plugin: Plugin) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VROUTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut stdout = std::io::stdout();
    match invoke(plugin) {
        Ok(output) => {
            if !output.is_empty() {
                let _written = writeln!(stdout, "{output}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(code = e.code, msg = %e.msg, details = %e.details, "CNI request failed");
            let _written = writeln!(stdout, "{}", e.to_json());
            ExitCode::FAILURE
        }
    }
}
