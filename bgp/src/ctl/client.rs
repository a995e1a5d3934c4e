//! A blocking client of the control socket (for `vrouterc` and `vrctl node status`): reads
//! the welcome, sends one command per line and collects the reply lines with their codes
//! (continuation lines take the code of the line before).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::reply::parse_line;

/// One line of a reply, code resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    /// The line's code (a continuation line's is the previous line's).
    pub code: u16,
    /// The text without code.
    pub text: String,
    /// The line as received (without newline).
    pub raw: String,
}

/// A whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReply {
    /// Every line, the final one last.
    pub lines: Vec<ReplyLine>,
}

impl ClientReply {
    /// The final line's code.
    pub fn code(&self) -> u16 {
        self.lines.last().map_or(0, |l| l.code)
    }

    /// An error reply (8xxx run-time or 9xxx parse errors).
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }
}

/// A connection to a control socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    welcome: String,
}

fn invalid(text: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, text)
}

impl Client {
    /// Connects and reads the welcome line; every later read waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<Client> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            welcome: String::new(),
        };
        let welcome = client.read_reply()?;
        client.welcome = welcome
            .lines
            .last()
            .map(|l| l.text.clone())
            .unwrap_or_default();
        Ok(client)
    }

    /// The welcome text (`vrouterd 0.1.0 ready.`).
    pub fn welcome(&self) -> &str {
        &self.welcome
    }

    /// Sends one command and reads its reply.
    pub fn command(&mut self, line: &str) -> std::io::Result<ClientReply> {
        if line.contains('\n') {
            return Err(invalid("a command is one line".to_string()));
        }
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<ClientReply> {
        let mut lines = Vec::new();
        let mut code = 0;
        loop {
            let mut raw = String::new();
            if self.reader.read_line(&mut raw)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ));
            }
            let raw = raw.trim_end_matches(['\n', '\r']).to_string();
            let line =
                parse_line(&raw).ok_or_else(|| invalid(format!("not a reply line: {raw:?}")))?;
            code = line.code.unwrap_or(code);
            lines.push(ReplyLine {
                code,
                text: line.text,
                raw,
            });
            if line.last {
                return Ok(ClientReply { lines });
            }
        }
    }
}
