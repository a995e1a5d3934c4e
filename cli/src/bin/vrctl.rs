//! `vrctl`: the operator CLI. Each subcommand group lives in `cli::vrctl::<group>`; this file
//! only parses arguments and maps results to exit codes (errors: message on stderr, exit 1).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::vrctl;

/// vrouter operator CLI.
#[derive(Debug, Parser)]
#[command(name = "vrctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Policy tools: evaluate selectors, test flows against policies.
    Policy(vrctl::policy::PolicyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(args) => vrctl::policy::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
