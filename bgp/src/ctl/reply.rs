//! BIRD's reply encoding (`doc/reply_codes`, `nest/cli.c`): every line starts with a
//! four-digit code; `DDDD-text` means more lines follow, `DDDD text` ends the reply, and a
//! line with the same code as the one before it is sent as ` text` (leading space).

/// Reply codes used by the control socket (BIRD's numbers).
pub mod code {
    /// Command succeeded (end of a table or list).
    pub const OK: u16 = 0;
    /// Welcome banner.
    pub const WELCOME: u16 = 1;
    /// Shutdown ordered.
    pub const SHUTDOWN: u16 = 7;
    /// Protocol already disabled.
    pub const ALREADY_DISABLED: u16 = 8;
    /// Protocol disabled.
    pub const DISABLED: u16 = 9;
    /// Protocol already enabled.
    pub const ALREADY_ENABLED: u16 = 10;
    /// Protocol enabled.
    pub const ENABLED: u16 = 11;
    /// Protocol restarted.
    pub const RESTARTED: u16 = 12;
    /// Status report (`show status` end).
    pub const STATUS: u16 = 13;
    /// Route count total.
    pub const ROUTE_COUNT: u16 = 14;
    /// Reloading.
    pub const RELOADING: u16 = 15;
    /// Access restricted.
    pub const RESTRICTED: u16 = 16;
    /// Graceful restart status report.
    pub const GR_STATUS: u16 = 24;
    /// Graceful restart ordered.
    pub const GR_ORDERED: u16 = 25;
    /// Version line of `show status`.
    pub const VERSION: u16 = 1000;
    /// Interface list.
    pub const INTERFACE: u16 = 1001;
    /// Protocol list row.
    pub const PROTOCOL: u16 = 1002;
    /// Interface address.
    pub const INTERFACE_ADDRESS: u16 = 1003;
    /// Interface flags.
    pub const INTERFACE_FLAGS: u16 = 1004;
    /// Protocol details.
    pub const PROTOCOL_DETAILS: u16 = 1006;
    /// Route list.
    pub const ROUTE: u16 = 1007;
    /// Route details (`Type:`).
    pub const ROUTE_DETAILS: u16 = 1008;
    /// Uptime lines of `show status`.
    pub const UPTIME: u16 = 1011;
    /// Route attributes.
    pub const ROUTE_ATTRIBUTES: u16 = 1012;
    /// Memory usage.
    pub const MEMORY: u16 = 1018;
    /// Protocol table heading.
    pub const PROTOCOL_HEADING: u16 = 2002;
    /// Route (network) not found.
    pub const NOT_FOUND: u16 = 8001;
    /// No protocols match.
    pub const NO_PROTOCOLS: u16 = 8003;
    /// Protocol is down.
    pub const PROTOCOL_DOWN: u16 = 8005;
    /// Reload failed.
    pub const RELOAD_FAILED: u16 = 8006;
    /// Access denied (restricted session).
    pub const ACCESS_DENIED: u16 = 8007;
    /// Command too long.
    pub const TOO_LONG: u16 = 9000;
    /// Parse error.
    pub const PARSE_ERROR: u16 = 9001;
    /// Invalid symbol type.
    pub const INVALID_SYMBOL: u16 = 9002;
}

/// One reply: rows, then the final line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    rows: Vec<(u16, String)>,
}

impl Reply {
    /// An empty reply (rows are added, then [`Reply::finish`]).
    pub fn new() -> Reply {
        Reply::default()
    }

    /// A reply of one final line.
    pub fn single(code: u16, text: impl Into<String>) -> Reply {
        let mut reply = Reply::new();
        reply.row(code, text);
        reply
    }

    /// Adds a row; text with newlines becomes several rows of the same code.
    pub fn row(&mut self, code: u16, text: impl Into<String>) {
        let text = text.into();
        for line in text.split('\n') {
            self.rows.push((code, line.replace('\r', "")));
        }
    }

    /// Adds the final line and returns the reply.
    pub fn finish(mut self, code: u16, text: impl Into<String>) -> Reply {
        self.row(code, text);
        self
    }

    /// The rows (code, text), the last one being the final line.
    pub fn rows(&self) -> &[(u16, String)] {
        &self.rows
    }

    /// The code of the final line.
    pub fn final_code(&self) -> Option<u16> {
        self.rows.last().map(|(c, _)| *c)
    }

    /// The wire form: `DDDD-text`, ` text` for a repeated code, and `DDDD text` last.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut previous = None;
        for (i, (code, text)) in self.rows.iter().enumerate() {
            let last = i + 1 == self.rows.len();
            if last {
                out.push_str(&format!("{code:04} {text}\n"));
            } else if previous == Some(*code) {
                out.push_str(&format!(" {text}\n"));
            } else {
                out.push_str(&format!("{code:04}-{text}\n"));
            }
            previous = Some(*code);
        }
        out
    }
}

/// A reply line as a client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The code (`None` for a continuation line, which keeps the previous code).
    pub code: Option<u16>,
    /// The reply ends with this line.
    pub last: bool,
    /// The text, without code and separator.
    pub text: String,
}

/// Parses one received line (without its newline); `None` if it is not a reply line.
pub fn parse_line(line: &str) -> Option<Line> {
    if let Some(text) = line.strip_prefix(' ') {
        return Some(Line {
            code: None,
            last: false,
            text: text.to_string(),
        });
    }
    let bytes = line.as_bytes();
    if bytes.len() < 5 || !bytes[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..4].parse().ok()?;
    let last = match bytes[4] {
        b' ' => true,
        b'-' => false,
        _ => return None,
    };
    Some(Line {
        code: Some(code),
        last,
        text: line[5..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_use_a_leading_space() {
        let mut reply = Reply::new();
        reply.row(2002, "Name       Proto");
        reply.row(1002, "c1");
        reply.row(1002, "c2");
        let reply = reply.finish(0, "");
        assert_eq!(
            reply.encode(),
            "2002-Name       Proto\n1002-c1\n c2\n0000 \n"
        );
        assert_eq!(
            Reply::single(8003, "No protocols match").encode(),
            "8003 No protocols match\n"
        );
    }

    #[test]
    fn lines_parse_back() {
        let l = parse_line("1007-Table master4:").unwrap();
        assert_eq!(
            (l.code, l.last, l.text.as_str()),
            (Some(1007), false, "Table master4:")
        );
        let l = parse_line("0000 ").unwrap();
        assert_eq!((l.code, l.last, l.text.as_str()), (Some(0), true, ""));
        let l = parse_line(" \tvia 10.0.0.3").unwrap();
        assert_eq!((l.code, l.text.as_str()), (None, "\tvia 10.0.0.3"));
        assert!(parse_line("12ab-x").is_none());
        assert!(parse_line("1000").is_none());
    }

    #[test]
    fn embedded_newlines_become_rows() {
        let reply = Reply::new().finish(13, "a\nb");
        assert_eq!(reply.encode(), "0013-a\n0013 b\n");
    }
}
