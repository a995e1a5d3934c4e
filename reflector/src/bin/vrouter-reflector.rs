//! `vrouter-reflector`: BGP route reflector for vrouter nodes (see `vrouter-reflector --help`
//! and the README's "Route reflectors").
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 1 on a configuration error, 2 when the speaker, the
//! metrics endpoint or the control socket cannot start.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bgp::ctl::{CtlOptions, SpeakerBackend};
use bgp::speaker::Shutdown;
use bgp::speaker::cluster::Launch;
use datastore::etcd::Store;
use reflector::config::{self, ConfigError, LogFormat};
use reflector::{Reflector, metrics};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let config = match config::load(&args) {
        Ok(config) => config,
        Err(ConfigError::Cli(error)) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(error) => {
            eprintln!("vrouter-reflector: error: {error}");
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vrouter-reflector")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vrouter-reflector: error: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(config));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "vrouter-reflector failed");
            eprintln!("vrouter-reflector: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let store = {
        let mut delay = Duration::from_millis(200);
        loop {
            tokio::select! {
                result = Store::connect(&config.etcd) => match result {
                    Ok(store) => break store,
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?delay, "etcd unreachable");
                    }
                },
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    };
    let reflector = Reflector::start(&config, store, Launch::Kernel)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let metrics = match config.metrics_listen {
        Some(at) => Some(
            metrics::serve(at, reflector.handle().clone())
                .await
                .with_context(|| format!("metrics endpoint on {at}"))?,
        ),
        None => None,
    };
    // The same BIRD-protocol control socket as vrouterd (`vrouterc -s`, `birdc -s`).
    let (_handles_tx, handles) = tokio::sync::watch::channel(Some(reflector.handle().clone()));
    let _control = match &config.control_socket {
        Some(path) => {
            let backend =
                SpeakerBackend::new("vrouter-reflector", env!("CARGO_PKG_VERSION"), handles);
            Some(
                bgp::ctl::serve(path, CtlOptions::default(), Arc::new(backend))
                    .await
                    .with_context(|| format!("control socket {}", path.display()))?,
            )
        }
        None => None,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    if let Some(task) = metrics {
        task.abort();
    }
    reflector.stop(Shutdown::Stop).await;
    Ok(())
}
