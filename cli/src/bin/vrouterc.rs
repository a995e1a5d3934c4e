//! `vrouterc`: birdc-like shell on vrouter's control socket (`cli::vrouterc`). With a command
//! on the command line it runs it and exits (0 ok, 1 error reply, 2 cannot connect).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cli::vrouterc::{self, Options};

/// Interactive shell on the vrouterd / vrouter-reflector control socket (BIRD's protocol).
#[derive(Debug, Parser)]
#[command(
    name = "vrouterc",
    version,
    after_help = "Examples:
  vrouterc                             interactive (Tab completes, Up recalls)
  vrouterc show protocols              one command, codes stripped
  vrouterc -v show route for 10.244.1.7 all
  vrouterc -r                          read-only session (restrict)
Exit codes: 0 ok, 1 error reply, 2 cannot connect."
)]
struct Cli {
    /// Control socket.
    #[arg(short, long, default_value = bgp::ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Restricted (read-only) session: sends `restrict` first.
    #[arg(short, long)]
    restricted: bool,
    /// Show reply codes.
    #[arg(short, long)]
    verbose: bool,
    /// Do not read or write ~/.vrouterc_history.
    #[arg(long)]
    no_history: bool,
    /// A command to run instead of the shell (`show protocols all`).
    command: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let history = (!cli.no_history)
        .then(|| std::env::var_os("HOME"))
        .flatten()
        .map(|home| PathBuf::from(home).join(".vrouterc_history"));
    let options = Options {
        socket: cli.socket,
        restricted: cli.restricted,
        verbose: cli.verbose,
        history,
    };
    let code = if cli.command.is_empty() {
        vrouterc::interactive(&options)
    } else {
        vrouterc::one_shot(&options, &cli.command.join(" "))
    };
    ExitCode::from(code)
}
