//! Selector parse errors: where in the text (byte offset, shown as a 1-based column) and what
//! was expected there.

/// Why a selector did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorErrorKind {
    /// A quote was opened and never closed.
    #[error("unterminated string")]
    UnterminatedString,
    /// A character that cannot start any token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// Half of a two-character operator (`=`, `&`, `|`).
    #[error("expected {0:?}")]
    IncompleteOperator(&'static str),
    /// A label not followed by an operator.
    #[error(
        "expected an operator (==, !=, in, not in, contains, starts with, ends with) after label {label:?}"
    )]
    ExpectedOperator {
        /// The label that was left dangling.
        label: String,
    },
    /// `has(`, `all(` or `global(` without its `)`.
    #[error("expected ')' to close {function}(")]
    UnclosedCall {
        /// The function name.
        function: &'static str,
    },
    /// A label longer than Calico's 512-character limit.
    #[error("label is {len} characters long, the limit is 512")]
    LabelTooLong {
        /// Its length.
        len: usize,
    },
    /// The grammar wanted something else here.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows here.
        expected: &'static str,
        /// What was there.
        found: String,
    },
    /// Parentheses or negations nested beyond what the parser accepts.
    #[error("selector is nested too deeply")]
    TooDeep,
}

/// A selector parse error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector at column {}: {kind}", self.offset + 1)]
pub struct SelectorError {
    /// Byte offset into the selector text where the problem starts.
    pub offset: usize,
    /// What went wrong.
    pub kind: SelectorErrorKind,
}

impl SelectorError {
    pub(crate) fn new(offset: usize, kind: SelectorErrorKind) -> Self {
        SelectorError { offset, kind }
    }
}
