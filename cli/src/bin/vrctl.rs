//! `vrctl`: the operator CLI. Each subcommand group lives in `cli::vrctl::<group>`; this file
//! only parses arguments and maps results to exit codes: 0 ok, 1 invalid input (usage errors
//! included) or rejected write, 2 datastore unreachable
//! (`cli::vrctl::connection::exit_code_for`), and whatever a group returns itself
//! (`policy test`: 3 = deny). Errors print as one `error: …` line.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use cli::vrctl;
use cli::vrctl::connection::{ConnectionArgs, EXIT_INVALID, error_line, exit_code_for};
use cli::vrctl::resources::{DeleteArgs, GetArgs, WriteArgs};
use datastore::resource_store::Verb;

const EXAMPLES: &str = "\
Examples:
  vrctl apply -f pools.yaml                     create or update what the file holds (one transaction)
  vrctl create -f policies/                     every *.yaml, *.yml, *.json in a directory
  cat np.yaml | vrctl replace -f -              read standard input
  vrctl get ippools -o wide                     table with kind-specific columns
  vrctl get gnp allow-dns -o yaml               YAML that `vrctl apply -f` accepts back
  vrctl get networkpolicy -A                    every namespace
  vrctl delete networkpolicy allow-web -n prod
  vrctl delete -f pools.yaml
  vrctl --etcd-endpoints http://10.0.0.1:2379 get nodes
  vrctl completion bash > /etc/bash_completion.d/vrctl

Connection: --etcd-endpoints / VROUTER_ETCD_ENDPOINTS, TLS via --etcd-cacert/--etcd-cert/--etcd-key,
or the config file /etc/vrouter/vrctl.yaml (keys etcdEndpoints, etcdCACert, etcdCert, etcdKey).
Exit codes: 0 ok, 1 invalid input or rejected write, 2 datastore unreachable, 3 denied (policy test).";

/// vrouter operator CLI: calicoctl-compatible resources over etcd, policy tools.
#[derive(Debug, Parser)]
#[command(name = "vrctl", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update resources from files; unchanged objects are left alone.
    Apply(WriteArgs),
    /// Create resources from files; fails (writing nothing) if any exists.
    Create(WriteArgs),
    /// Replace resources from files; fails (writing nothing) if any is missing.
    Replace(WriteArgs),
    /// Delete resources named by files, or by KIND NAME.
    Delete(DeleteArgs),
    /// Show resources as a table, YAML or JSON.
    Get(GetArgs),
    /// Policy tools: evaluate selectors, test flows against policies.
    Policy(vrctl::policy::PolicyArgs),
    /// IP address management: show usage, release addresses, check consistency.
    Ipam(vrctl::ipam::IpamArgs),
    /// BGP tools: decode a message.
    Bgp(vrctl::bgp::BgpArgs),
    /// A whole cluster on this machine: `lab up`, `lab status`, `lab down`.
    Lab(vrctl::lab::LabArgs),
    /// The local node: BGP session status from vrouterd's control socket.
    Node(vrctl::node::NodeArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    // Usage errors are invalid input (exit 1, not clap's 2, which means "etcd unreachable"
    // here); `--help` and `--version` exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Nothing useful is left to do if stderr itself is gone.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_INVALID } else { 0 });
        }
    };
    let connection = &cli.connection;
    let result = match cli.command {
        Command::Apply(args) => vrctl::resources::write_files(connection, Verb::Apply, &args),
        Command::Create(args) => vrctl::resources::write_files(connection, Verb::Create, &args),
        Command::Replace(args) => vrctl::resources::write_files(connection, Verb::Replace, &args),
        Command::Delete(args) => vrctl::resources::delete(connection, &args),
        Command::Get(args) => vrctl::resources::get(connection, &args),
        Command::Policy(args) => vrctl::policy::run(args, connection),
        Command::Ipam(args) => vrctl::ipam::run(args, connection),
        Command::Bgp(args) => vrctl::bgp::run(args),
        Command::Node(args) => vrctl::node::run(args),
        Command::Lab(args) => vrctl::lab::run(args),
        Command::Version => {
            vrctl::output::emit(&format!("vrctl {}\n", env!("CARGO_PKG_VERSION"))).map(|()| 0)
        }
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vrctl", &mut script);
            vrctl::output::emit(&String::from_utf8_lossy(&script)).map(|()| 0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(exit_code_for(&e))
        }
    }
}
