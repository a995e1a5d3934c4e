//! The selector tokenizer: turns selector text into positioned tokens, following Calico's
//! `libcalico-go/lib/selector/tokenizer` rules (whitespace is space or tab, strings are single- or
//! double-quoted with no escapes, label characters are `[a-zA-Z0-9_./-]`, at most 512 of them).

use super::error::{SelectorError, SelectorErrorKind};

/// The longest label name Calico accepts.
pub(crate) const MAX_LABEL_LEN: usize = 512;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A label name.
    Label(String),
    /// A quoted string literal (quotes removed).
    Str(String),
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `,`
    Comma,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `in`
    In,
    /// `not in` / `notin`
    NotIn,
    /// `!`
    Not,
    /// `contains`
    Contains,
    /// `starts with` / `startswith`
    StartsWith,
    /// `ends with` / `endswith`
    EndsWith,
    /// `all()`
    All,
    /// `global()`
    Global,
    /// `has(label)`
    Has(String),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `&&`
    And,
    /// `||`
    Or,
    /// End of input.
    Eof,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Label(l) => format!("label {l:?}"),
            TokenKind::Str(s) => format!("string {s:?}"),
            TokenKind::LBrace => "'{'".into(),
            TokenKind::RBrace => "'}'".into(),
            TokenKind::Comma => "','".into(),
            TokenKind::Eq => "'=='".into(),
            TokenKind::Ne => "'!='".into(),
            TokenKind::In => "'in'".into(),
            TokenKind::NotIn => "'not in'".into(),
            TokenKind::Not => "'!'".into(),
            TokenKind::Contains => "'contains'".into(),
            TokenKind::StartsWith => "'starts with'".into(),
            TokenKind::EndsWith => "'ends with'".into(),
            TokenKind::All => "'all()'".into(),
            TokenKind::Global => "'global()'".into(),
            TokenKind::Has(l) => format!("'has({l})'"),
            TokenKind::LParen => "'('".into(),
            TokenKind::RParen => "')'".into(),
            TokenKind::And => "'&&'".into(),
            TokenKind::Or => "'||'".into(),
            TokenKind::Eof => "end of selector".into(),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What it is.
    pub(crate) kind: TokenKind,
    /// Byte offset of its first character in the input.
    pub(crate) offset: usize,
}

/// True for the characters Calico allows in label names.
pub(crate) fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'/' | b'-')
}

/// True when `s` is a complete, valid label name (what Calico accepts as a label key).
pub fn is_valid_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LABEL_LEN && s.bytes().all(is_label_char)
}

struct Cursor<'a> {
    input: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn skip_ws(&mut self) {
        while matches!(self.input.as_bytes().get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    /// Consumes a keyword made of one or more words separated by optional whitespace, only if
    /// it ends at a word boundary.
    fn eat_keyword(&mut self, words: &[&str]) -> bool {
        let start = self.pos;
        for word in words {
            if !self.eat(word) {
                self.pos = start;
                return false;
            }
            self.skip_ws();
        }
        // `skip_ws` after the last word is harmless: the next token skips it anyway.
        let at_boundary = self
            .input
            .as_bytes()
            .get(self.pos)
            .is_none_or(|c| !is_label_char(*c));
        if !at_boundary {
            self.pos = start;
        }
        at_boundary
    }

    fn identifier(&mut self) -> Result<String, SelectorError> {
        let start = self.pos;
        let len = self
            .rest()
            .bytes()
            .take_while(|c| is_label_char(*c))
            .count();
        if len == 0 {
            return Err(SelectorError::new(start, self.unexpected_here()));
        }
        if len > MAX_LABEL_LEN {
            return Err(SelectorError::new(
                start,
                SelectorErrorKind::LabelTooLong { len },
            ));
        }
        self.pos += len;
        Ok(self.input[start..self.pos].to_string())
    }

    fn unexpected_here(&self) -> SelectorErrorKind {
        match self.rest().chars().next() {
            Some(c) => SelectorErrorKind::UnexpectedChar(c),
            None => SelectorErrorKind::Expected {
                expected: "label name",
                found: "end of selector".into(),
            },
        }
    }

    fn string(&mut self, quote: char) -> Result<String, SelectorError> {
        let start = self.pos;
        self.pos += 1;
        match self.rest().find(quote) {
            Some(end) => {
                let value = self.rest()[..end].to_string();
                self.pos += end + 1;
                Ok(value)
            }
            None => Err(SelectorError::new(
                start,
                SelectorErrorKind::UnterminatedString,
            )),
        }
    }

    /// `has(`, `all(` and `global(` have been consumed: reads up to the closing `)`.
    fn close_call(&mut self, function: &'static str) -> Result<(), SelectorError> {
        self.skip_ws();
        if self.eat(")") {
            Ok(())
        } else {
            Err(SelectorError::new(
                self.pos,
                SelectorErrorKind::UnclosedCall { function },
            ))
        }
    }
}

/// Splits `input` into tokens; the last token is always [`TokenKind::Eof`].
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, SelectorError> {
    let mut cur = Cursor { input, pos: 0 };
    let mut tokens: Vec<Token> = Vec::new();
    loop {
        cur.skip_ws();
        let offset = cur.pos;
        let Some(c) = cur.rest().chars().next() else {
            tokens.push(Token {
                kind: TokenKind::Eof,
                offset,
            });
            return Ok(tokens);
        };
        let after_label = matches!(
            tokens.last(),
            Some(Token {
                kind: TokenKind::Label(_),
                ..
            })
        );
        let kind = match c {
            '(' => {
                cur.pos += 1;
                TokenKind::LParen
            }
            ')' => {
                cur.pos += 1;
                TokenKind::RParen
            }
            '{' => {
                cur.pos += 1;
                TokenKind::LBrace
            }
            '}' => {
                cur.pos += 1;
                TokenKind::RBrace
            }
            ',' => {
                cur.pos += 1;
                TokenKind::Comma
            }
            '"' | '\'' => TokenKind::Str(cur.string(c)?),
            '=' => {
                if !cur.eat("==") {
                    return Err(SelectorError::new(
                        offset,
                        SelectorErrorKind::IncompleteOperator("=="),
                    ));
                }
                TokenKind::Eq
            }
            '!' => {
                if cur.eat("!=") {
                    TokenKind::Ne
                } else {
                    cur.pos += 1;
                    TokenKind::Not
                }
            }
            '&' => {
                if !cur.eat("&&") {
                    return Err(SelectorError::new(
                        offset,
                        SelectorErrorKind::IncompleteOperator("&&"),
                    ));
                }
                TokenKind::And
            }
            '|' => {
                if !cur.eat("||") {
                    return Err(SelectorError::new(
                        offset,
                        SelectorErrorKind::IncompleteOperator("||"),
                    ));
                }
                TokenKind::Or
            }
            _ if after_label => {
                if cur.eat_keyword(&["contains"]) {
                    TokenKind::Contains
                } else if cur.eat_keyword(&["starts", "with"]) {
                    TokenKind::StartsWith
                } else if cur.eat_keyword(&["ends", "with"]) {
                    TokenKind::EndsWith
                } else if cur.eat_keyword(&["not", "in"]) {
                    TokenKind::NotIn
                } else if cur.eat_keyword(&["in"]) {
                    TokenKind::In
                } else {
                    let label = match tokens.last() {
                        Some(Token {
                            kind: TokenKind::Label(l),
                            ..
                        }) => l.clone(),
                        _ => String::new(),
                    };
                    return Err(SelectorError::new(
                        offset,
                        SelectorErrorKind::ExpectedOperator { label },
                    ));
                }
            }
            _ => {
                if cur.eat("has(") {
                    cur.skip_ws();
                    let label = cur.identifier()?;
                    cur.close_call("has")?;
                    TokenKind::Has(label)
                } else if cur.eat("all(") {
                    cur.close_call("all")?;
                    TokenKind::All
                } else if cur.eat("global(") {
                    cur.close_call("global")?;
                    TokenKind::Global
                } else {
                    TokenKind::Label(cur.identifier()?)
                }
            }
        };
        tokens.push(Token { kind, offset });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s)
            .expect("tokenizes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn label(s: &str) -> TokenKind {
        TokenKind::Label(s.into())
    }

    fn string(s: &str) -> TokenKind {
        TokenKind::Str(s.into())
    }

    #[test]
    fn empty_input_is_just_eof() {
        assert_eq!(kinds(""), vec![TokenKind::Eof]);
        assert_eq!(kinds(" \t "), vec![TokenKind::Eof]);
    }

    #[test]
    fn comparison_operators() {
        use TokenKind::*;
        assert_eq!(kinds(r#"a == "b""#), vec![label("a"), Eq, string("b"), Eof]);
        assert_eq!(kinds("a!='b'"), vec![label("a"), Ne, string("b"), Eof]);
        assert_eq!(
            kinds(r#"a contains "x""#),
            vec![label("a"), Contains, string("x"), Eof]
        );
        assert_eq!(
            kinds(r#"a starts with "x""#),
            vec![label("a"), StartsWith, string("x"), Eof]
        );
        assert_eq!(
            kinds(r#"a startswith "x""#),
            vec![label("a"), StartsWith, string("x"), Eof]
        );
        assert_eq!(
            kinds(r#"a ends  with "x""#),
            vec![label("a"), EndsWith, string("x"), Eof]
        );
        assert_eq!(
            kinds(r#"a endswith "x""#),
            vec![label("a"), EndsWith, string("x"), Eof]
        );
    }

    #[test]
    fn set_operators() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#"a in {"x", 'y'}"#),
            vec![
                label("a"),
                In,
                LBrace,
                string("x"),
                Comma,
                string("y"),
                RBrace,
                Eof
            ]
        );
        assert_eq!(
            kinds(r#"a not in {}"#),
            vec![label("a"), NotIn, LBrace, RBrace, Eof]
        );
        assert_eq!(
            kinds(r#"a notin {}"#),
            vec![label("a"), NotIn, LBrace, RBrace, Eof]
        );
    }

    #[test]
    fn functions_and_logic() {
        use TokenKind::*;
        assert_eq!(
            kinds("!has( a/b.c-d_e ) && all() || global()"),
            vec![Not, Has("a/b.c-d_e".into()), And, All, Or, Global, Eof]
        );
        assert_eq!(kinds("(all( ))"), vec![LParen, All, RParen, Eof]);
    }

    #[test]
    fn keywords_need_a_word_boundary() {
        // `inx` is not the `in` operator.
        let err = tokenize("a inx {}").expect_err("no operator");
        assert_eq!(
            err.kind,
            SelectorErrorKind::ExpectedOperator { label: "a".into() }
        );
        assert_eq!(err.offset, 2);
    }

    #[test]
    fn string_with_other_quote_inside() {
        assert_eq!(kinds(r#"a == "it's""#)[2], string("it's"));
        assert_eq!(kinds(r#"a == 'say "hi"'"#)[2], string(r#"say "hi""#));
    }

    #[test]
    fn errors_are_positioned() {
        let cases: &[(&str, usize, SelectorErrorKind)] = &[
            (r#"a == "b"#, 5, SelectorErrorKind::UnterminatedString),
            ("'b", 0, SelectorErrorKind::UnterminatedString),
            ("a = 'b'", 2, SelectorErrorKind::IncompleteOperator("==")),
            (
                "has(a) & has(b)",
                7,
                SelectorErrorKind::IncompleteOperator("&&"),
            ),
            (
                "has(a) | has(b)",
                7,
                SelectorErrorKind::IncompleteOperator("||"),
            ),
            ("%", 0, SelectorErrorKind::UnexpectedChar('%')),
            (
                "has(a",
                5,
                SelectorErrorKind::UnclosedCall { function: "has" },
            ),
            (
                "all(x)",
                4,
                SelectorErrorKind::UnclosedCall { function: "all" },
            ),
            (
                "global(",
                7,
                SelectorErrorKind::UnclosedCall { function: "global" },
            ),
            ("has()", 4, SelectorErrorKind::UnexpectedChar(')')),
        ];
        for (input, offset, kind) in cases {
            let err = tokenize(input).expect_err(input);
            assert_eq!((&err.kind, err.offset), (kind, *offset), "{input}");
        }
    }

    #[test]
    fn label_length_limit() {
        let ok = "a".repeat(MAX_LABEL_LEN);
        assert!(tokenize(&format!("has({ok})")).is_ok());
        let long = "a".repeat(MAX_LABEL_LEN + 1);
        let err = tokenize(&format!("has({long})")).expect_err("too long");
        assert_eq!(
            err.kind,
            SelectorErrorKind::LabelTooLong {
                len: MAX_LABEL_LEN + 1
            }
        );
    }

    #[test]
    fn non_ascii_is_rejected_not_panicking() {
        let err = tokenize("é == 'x'").expect_err("non-ascii label");
        assert_eq!(err.kind, SelectorErrorKind::UnexpectedChar('é'));
        // Multi-byte characters inside strings are fine.
        assert_eq!(kinds("a == 'é'")[2], string("é"));
    }

    #[test]
    fn label_validity() {
        assert!(is_valid_label("k8s-app"));
        assert!(is_valid_label("projectcalico.org/namespace"));
        assert!(!is_valid_label(""));
        assert!(!is_valid_label("a b"));
        assert!(!is_valid_label(&"x".repeat(MAX_LABEL_LEN + 1)));
    }
}
