//! `vrouterc`: a `birdc`-like shell on vrouter's control socket. Interactive (rustyline:
//! line editing, history in `~/.vrouterc_history`, tab completion of commands and protocol
//! names) or one-shot (`vrouterc show protocols`). Reply codes are stripped like `birdc`
//! does unless `-v`. Exit codes: 0 ok, 1 the daemon answered with an error, 2 cannot connect.

pub mod completion;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bgp::ctl::client::{Client, ClientReply};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

/// Exit code: the daemon answered with an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the socket cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 2;

/// How a session runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Control socket.
    pub socket: PathBuf,
    /// Send `restrict` first.
    pub restricted: bool,
    /// Print reply codes.
    pub verbose: bool,
    /// History file (None: no history file).
    pub history: Option<PathBuf>,
}

/// A reply as printed: `birdc` strips codes (`-v` keeps the raw lines).
pub fn render(reply: &ClientReply, verbose: bool) -> String {
    let mut out = String::new();
    for line in &reply.lines {
        out.push_str(if verbose { &line.raw } else { &line.text });
        out.push('\n');
    }
    out
}

/// Connects (and restricts) or reports why not on stderr.
fn connect(options: &Options) -> Result<Client, u8> {
    let mut client = match Client::connect(&options.socket, Duration::from_secs(60)) {
        Ok(c) => c,
        Err(error) => {
            eprintln!(
                "Unable to connect to server control socket ({}): {error}",
                options.socket.display()
            );
            return Err(EXIT_UNREACHABLE);
        }
    };
    if options.restricted {
        match client.command("restrict") {
            Ok(reply) if reply.code() == 16 => {}
            Ok(reply) => {
                eprint!("{}", render(&reply, true));
                return Err(EXIT_ERROR);
            }
            Err(error) => {
                eprintln!("restrict: {error}");
                return Err(EXIT_UNREACHABLE);
            }
        }
    }
    Ok(client)
}

/// One command, printed; the exit code.
pub fn one_shot(options: &Options, command: &str) -> u8 {
    let mut client = match connect(options) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.command(command) {
        Ok(reply) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(render(&reply, options.verbose).as_bytes());
            if reply.is_error() { EXIT_ERROR } else { 0 }
        }
        Err(error) => {
            eprintln!("{}: {error}", options.socket.display());
            EXIT_UNREACHABLE
        }
    }
}

struct ShellHelper {
    names: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, candidates) = completion::complete(line, pos, &self.names);
        let pairs = candidates
            .into_iter()
            .map(|c| Pair {
                display: c.trim_end().to_string(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Protocol names for completion (`show protocols`, first column).
fn protocol_names(client: &mut Client) -> Vec<String> {
    match client.command("show protocols") {
        Ok(reply) => reply
            .lines
            .iter()
            .filter(|l| l.code == 1002)
            .filter_map(|l| l.text.split_whitespace().next().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

const HELP: &str = "\
show status                          daemon version, router id, times
show protocols [all] [name|\"pat*\"]   BGP sessions and route programming
show route [for ip|prefix] [table t] [protocol p] [all] [count]
show memory | show interfaces [summary]
enable|disable|restart name|\"pat*\"|all
reload [in|out] name|\"pat*\"|all      route refresh
graceful restart | down | restrict
quit | exit                          leave the shell (Tab completes, Up recalls)";

/// The interactive shell; the exit code.
pub fn interactive(options: &Options) -> u8 {
    let mut client = match connect(options) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut editor: Editor<ShellHelper, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(error) => {
            eprintln!("terminal: {error}");
            return EXIT_ERROR;
        }
    };
    let names = protocol_names(&mut client);
    editor.set_helper(Some(ShellHelper { names }));
    if let Some(path) = &options.history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
    }
    println!("{}", client.welcome());
    let mut code = 0;
    loop {
        let line = match editor.readline("vrouterc> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("terminal: {error}");
                code = EXIT_ERROR;
                break;
            }
        };
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(command);
        match command {
            "quit" | "exit" => break,
            "help" | "?" => {
                println!("{HELP}");
                continue;
            }
            _ => {}
        }
        match client.command(command) {
            Ok(reply) => print!("{}", render(&reply, options.verbose)),
            Err(error) => {
                eprintln!("{}: {error}", options.socket.display());
                code = EXIT_UNREACHABLE;
                break;
            }
        }
        let names = protocol_names(&mut client);
        if let Some(helper) = editor.helper_mut() {
            helper.names = names;
        }
    }
    if let Some(path) = &options.history {
        save_history(&mut editor, path);
    }
    code
}

fn save_history(editor: &mut Editor<ShellHelper, rustyline::history::DefaultHistory>, path: &Path) {
    if let Err(error) = editor.save_history(path) {
        eprintln!("history {}: {error}", path.display());
    }
}
