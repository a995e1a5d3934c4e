//! `vrouterd`: the vrouter node daemon (logic in the `node` crate; see `vrouterd --help`).
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 1 on a configuration error, 2 when etcd stayed
//! unreachable at start for longer than `--etcd-start-timeout`.

use std::process::ExitCode;

use node::config::{self, ConfigError};
use node::daemon::{self, EXIT_CONFIG};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match config::load(&args, config::hostname()) {
        Ok(config) => config,
        Err(ConfigError::Cli(error)) => {
            // --help and --version are "errors" that print and exit 0.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(error) => {
            eprintln!("vrouterd: error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let logs = match node::logging::init(config.log_format, config.log_level.as_deref()) {
        Ok(logs) => logs,
        Err(error) => {
            eprintln!("vrouterd: error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vrouterd")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vrouterd: error: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = runtime.block_on(daemon::run(args, config, logs));
    // Felix's threads and the speaker are stopped inside run(); do not wait for stray tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!(error = %message, "vrouterd failed");
            eprintln!("vrouterd: error: {message}");
            ExitCode::from(error.exit_code())
        }
    }
}
