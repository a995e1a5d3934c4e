//! The command language of the control socket: BIRD's `birdc` commands that make sense for
//! vrouter, parsed into [`Command`]. Pure.
//!
//! Keywords may be abbreviated to any unique prefix (`sh pro` = `show protocols`), as
//! `birdc` users type them. Errors carry the 1-based column of the offending word and become
//! `9001` replies.

use std::fmt;
use std::net::IpAddr;

use crate::wire::Prefix;

/// Which protocols a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every protocol (`all`, or nothing given for `show protocols`).
    All,
    /// One protocol by name.
    Name(String),
    /// A `"pattern"` with `*` and `?` wildcards.
    Pattern(String),
}

impl Target {
    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Target::All => true,
            Target::Name(n) => n == name,
            Target::Pattern(p) => glob(p.as_bytes(), name.as_bytes()),
        }
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// What `show route` selects and prints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteQuery {
    /// `for <ip|prefix>`: the longest prefix covering it; a bare prefix: that network only.
    pub lookup: Option<Lookup>,
    /// `table master4|master6`.
    pub table: Option<String>,
    /// `protocol <name>`.
    pub protocol: Option<String>,
    /// `all`: attributes.
    pub all: bool,
    /// `count` / `stats`: numbers only.
    pub count: bool,
}

/// A network to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `for X`: the longest-matching prefix.
    Covering(Prefix),
    /// `X`: exactly this network.
    Exact(Prefix),
}

/// `reload` direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// `reload <p>`: both ways.
    Both,
    /// `reload in <p>`.
    In,
    /// `reload out <p>`.
    Out,
}

/// Enable, disable or restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    /// `enable`.
    Enable,
    /// `disable`.
    Disable,
    /// `restart`.
    Restart,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `show status`.
    ShowStatus,
    /// `show protocols [all] [target]`.
    ShowProtocols {
        /// Details.
        all: bool,
        /// Selection.
        target: Target,
    },
    /// `show route …`.
    ShowRoute(RouteQuery),
    /// `show memory`.
    ShowMemory,
    /// `show interfaces [summary]`.
    ShowInterfaces {
        /// One line per interface.
        summary: bool,
    },
    /// `enable|disable|restart <target>`.
    Toggle(Toggle, Target),
    /// `reload [in|out] <target>`.
    Reload(Reload, Target),
    /// `graceful restart`.
    GracefulRestart,
    /// `down`.
    Down,
    /// `restrict`.
    Restrict,
}

impl Command {
    /// Whether the command changes state (refused on a restricted session).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Toggle(..) | Command::Reload(..) | Command::GracefulRestart | Command::Down
        )
    }
}

/// A parse error: `9001` with the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column of the offending word (one past the end for a missing word).
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syntax error at column {}: {}",
            self.column, self.message
        )
    }
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    column: usize,
    quoted: bool,
}

fn tokenize(line: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let column = line[..start].chars().count() + 1;
        if c == '"' {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            for (_, c) in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                text.push(c);
            }
            if !closed {
                return Err(ParseError {
                    column,
                    message: "unterminated string".to_string(),
                });
            }
            tokens.push(Token {
                text,
                column,
                quoted: true,
            });
        } else {
            let mut text = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                text.push(c);
                chars.next();
            }
            tokens.push(Token {
                text,
                column,
                quoted: false,
            });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end_column: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            column: self.peek().map_or(self.end_column, |t| t.column),
            message,
        }
    }

    /// The next word as one of `keywords` (unique prefixes allowed).
    fn keyword(&mut self, keywords: &[&'static str]) -> Result<&'static str, ParseError> {
        let expected = keywords.join(", ");
        let Some(token) = self.peek() else {
            return Err(self.error(format!("unexpected end of command, expected {expected}")));
        };
        match match_keyword(&token.text, keywords).filter(|_| !token.quoted) {
            Some(Ok(k)) => {
                self.at += 1;
                Ok(k)
            }
            Some(Err(candidates)) => Err(self.error(format!(
                "'{}' is ambiguous ({})",
                token.text,
                candidates.join(", ")
            ))),
            None => Err(self.error(format!("unexpected '{}', expected {expected}", token.text))),
        }
    }

    /// The next word if it is one of `keywords`.
    fn optional(&mut self, keywords: &[&'static str]) -> Option<&'static str> {
        let token = self.peek()?;
        if token.quoted {
            return None;
        }
        let k = match_keyword(&token.text, keywords)?.ok()?;
        self.at += 1;
        Some(k)
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.error(format!("unexpected '{}', expected end of command", t.text))),
        }
    }

    fn word(&mut self, what: &str) -> Result<Token, ParseError> {
        match self.peek().cloned() {
            Some(t) => {
                self.at += 1;
                Ok(t)
            }
            None => Err(self.error(format!("unexpected end of command, expected {what}"))),
        }
    }

    fn target(&mut self) -> Result<Target, ParseError> {
        let token = self.word("a protocol name, \"pattern\" or all")?;
        Ok(if token.quoted {
            Target::Pattern(token.text)
        } else if token.text == "all" {
            Target::All
        } else {
            Target::Name(token.text)
        })
    }
}

fn match_keyword(
    word: &str,
    keywords: &[&'static str],
) -> Option<Result<&'static str, Vec<&'static str>>> {
    if word.is_empty() {
        return None;
    }
    if let Some(k) = keywords.iter().find(|k| **k == word) {
        return Some(Ok(k));
    }
    let candidates: Vec<&'static str> = keywords
        .iter()
        .copied()
        .filter(|k| k.starts_with(word))
        .collect();
    match candidates.len() {
        0 => None,
        1 => Some(Ok(candidates[0])),
        _ => Some(Err(candidates)),
    }
}

/// The first words of every command (for completion and errors).
pub const COMMANDS: &[&str] = &[
    "show", "enable", "disable", "restart", "reload", "graceful", "down", "restrict",
];
/// What may follow `show`.
pub const SHOW: &[&str] = &["status", "protocols", "route", "memory", "interfaces"];
/// Options of `show route`.
pub const ROUTE_OPTIONS: &[&str] = &["for", "table", "protocol", "all", "count", "stats"];

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let tokens = tokenize(line)?;
    let mut p = Parser {
        tokens,
        at: 0,
        end_column: line.chars().count() + 1,
    };
    let command = match p.keyword(COMMANDS)? {
        "show" => match p.keyword(SHOW)? {
            "status" => Command::ShowStatus,
            "protocols" => {
                let all = p.optional(&["all"]).is_some();
                let target = if p.peek().is_some() {
                    p.target()?
                } else {
                    Target::All
                };
                Command::ShowProtocols { all, target }
            }
            "route" => Command::ShowRoute(route_query(&mut p)?),
            "memory" => Command::ShowMemory,
            _ => Command::ShowInterfaces {
                summary: p.optional(&["summary"]).is_some(),
            },
        },
        "enable" => Command::Toggle(Toggle::Enable, p.target()?),
        "disable" => Command::Toggle(Toggle::Disable, p.target()?),
        "restart" => Command::Toggle(Toggle::Restart, p.target()?),
        "reload" => {
            let direction = match p.optional(&["in", "out"]) {
                Some("in") => Reload::In,
                Some(_) => Reload::Out,
                None => Reload::Both,
            };
            Command::Reload(direction, p.target()?)
        }
        "graceful" => {
            p.keyword(&["restart"])?;
            Command::GracefulRestart
        }
        "down" => Command::Down,
        _ => Command::Restrict,
    };
    p.end()?;
    Ok(command)
}

fn route_query(p: &mut Parser) -> Result<RouteQuery, ParseError> {
    let mut query = RouteQuery::default();
    while let Some(token) = p.peek().cloned() {
        if token.text.contains(['.', ':']) || token.text.starts_with(|c: char| c.is_ascii_digit()) {
            p.at += 1;
            query.lookup = Some(Lookup::Exact(network(&token)?));
            continue;
        }
        match p.keyword(ROUTE_OPTIONS)? {
            "for" => {
                let token = p.word("an address or prefix")?;
                query.lookup = Some(Lookup::Covering(network(&token)?));
            }
            "table" => query.table = Some(p.word("a table name")?.text),
            "protocol" => query.protocol = Some(p.word("a protocol name")?.text),
            "all" => query.all = true,
            _ => query.count = true,
        }
    }
    Ok(query)
}

fn network(token: &Token) -> Result<Prefix, ParseError> {
    let bad = || ParseError {
        column: token.column,
        message: format!("'{}' is not an IP address or prefix", token.text),
    };
    if let Ok(ip) = token.text.parse::<IpAddr>() {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        return Prefix::new(ip, len).ok_or_else(bad);
    }
    token.text.parse::<Prefix>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_abbreviations() {
        assert_eq!(parse("show status").unwrap(), Command::ShowStatus);
        assert_eq!(parse("  sh   st ").unwrap(), Command::ShowStatus);
        assert_eq!(
            parse("show protocols all \"Mesh_*\"").unwrap(),
            Command::ShowProtocols {
                all: true,
                target: Target::Pattern("Mesh_*".into())
            }
        );
        assert_eq!(
            parse("sh pro Mesh_10_0_0_2").unwrap(),
            Command::ShowProtocols {
                all: false,
                target: Target::Name("Mesh_10_0_0_2".into())
            }
        );
        assert_eq!(
            parse("show route for 10.244.2.7 all").unwrap(),
            Command::ShowRoute(RouteQuery {
                lookup: Some(Lookup::Covering("10.244.2.7/32".parse().unwrap())),
                all: true,
                ..RouteQuery::default()
            })
        );
        assert_eq!(
            parse("show route 10.244.2.0/26 table master4 protocol Mesh_1 count").unwrap(),
            Command::ShowRoute(RouteQuery {
                lookup: Some(Lookup::Exact("10.244.2.0/26".parse().unwrap())),
                table: Some("master4".into()),
                protocol: Some("Mesh_1".into()),
                all: false,
                count: true,
            })
        );
        assert_eq!(
            parse("reload in all").unwrap(),
            Command::Reload(Reload::In, Target::All)
        );
        assert_eq!(
            parse("disable c3").unwrap(),
            Command::Toggle(Toggle::Disable, Target::Name("c3".into()))
        );
        assert_eq!(parse("graceful restart").unwrap(), Command::GracefulRestart);
        assert_eq!(parse("down").unwrap(), Command::Down);
        assert_eq!(parse("restrict").unwrap(), Command::Restrict);
        assert!(parse("disable x").unwrap().is_write());
        assert!(!parse("show memory").unwrap().is_write());
    }

    #[test]
    fn errors_name_the_column() {
        let e = parse("show foo").unwrap_err();
        assert_eq!(e.column, 6);
        assert!(e.message.contains("unexpected 'foo'"), "{e}");
        let e = parse("re c1").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(e.message.contains("ambiguous"), "{e}");
        let e = parse("show").unwrap_err();
        assert_eq!(e.column, 5);
        let e = parse("show route for 10.0.0.300").unwrap_err();
        assert_eq!(e.column, 16);
        let e = parse("show status now").unwrap_err();
        assert_eq!(e.column, 13);
        assert!(parse("disable \"c").is_err());
        assert!(parse("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_line_parses_or_fails_cleanly(line in "\\PC{0,40}") {
            if let Err(e) = parse(&line) {
                proptest::prop_assert!(e.column >= 1 && e.column <= line.chars().count() + 1);
            }
        }

        #[test]
        fn command_words_parse_or_fail_cleanly(
            words in proptest::collection::vec("(show|route|protocols|for|all|count|table|protocol|\"x*\"|10\\.0\\.0\\.1|fd00::/8|in|out|reload|re|s|graceful|restart)", 0..6)
        ) {
            let line = words.join(" ");
            if let Err(e) = parse(&line) {
                proptest::prop_assert!(e.column >= 1 && e.column <= line.chars().count() + 1);
            }
        }
    }

    #[test]
    fn patterns_match_like_bird() {
        let t = Target::Pattern("Mesh_10_*".into());
        assert!(t.matches("Mesh_10_0_0_2"));
        assert!(!t.matches("Global_10_0_0_2"));
        assert!(Target::Pattern("c?".into()).matches("c3"));
        assert!(!Target::Pattern("c?".into()).matches("c33"));
        assert!(Target::All.matches("anything"));
    }
}
