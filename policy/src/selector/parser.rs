//! Recursive-descent selector parser with Calico's precedence: `||` lowest, then `&&`, then
//! prefix `!` which applies to one operation (`!a == "b"` is `!(a == "b")`).
//!
//! ```text
//! selector  := <empty> | or EOF
//! or        := and ( "||" and )*
//! and       := operation ( "&&" operation )*
//! operation := "!"* ( "has(" label ")" | "all()" | "global()" | "(" or ")"
//!                   | label ( "==" | "!=" | "contains" | "starts with" | "ends with" ) string
//!                   | label ( "in" | "not in" ) "{" [ string ( "," string )* [","] ] "}" )
//! ```

use std::collections::BTreeSet;

use super::ast::Expr;
use super::error::{SelectorError, SelectorErrorKind};
use super::lexer::{Token, TokenKind, tokenize};

/// Deepest parenthesis nesting accepted (keeps recursion bounded on hostile input).
const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and the parser never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let tok = self.peek().clone();
        if tok.kind != TokenKind::Eof {
            self.pos += 1;
        }
        tok
    }

    fn expected(&self, expected: &'static str) -> SelectorError {
        let tok = self.peek();
        SelectorError::new(
            tok.offset,
            SelectorErrorKind::Expected {
                expected,
                found: tok.kind.describe(),
            },
        )
    }

    fn or(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let mut operands = vec![self.and(depth)?];
        while self.peek().kind == TokenKind::Or {
            self.advance();
            operands.push(self.and(depth)?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::Or(operands)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let mut operands = vec![self.operation(depth)?];
        while self.peek().kind == TokenKind::And {
            self.advance();
            operands.push(self.operation(depth)?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Expr::And(operands)
        })
    }

    fn operation(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let mut negated = false;
        while self.peek().kind == TokenKind::Not {
            self.advance();
            negated = !negated;
        }
        let tok = self.advance();
        let expr = match tok.kind {
            TokenKind::Has(label) => Expr::Has(label),
            TokenKind::All => Expr::All,
            TokenKind::Global => Expr::Global,
            TokenKind::LParen => {
                if depth >= MAX_DEPTH {
                    return Err(SelectorError::new(tok.offset, SelectorErrorKind::TooDeep));
                }
                let inner = self.or(depth + 1)?;
                if self.peek().kind != TokenKind::RParen {
                    return Err(self.expected("')' or an operator (&&, ||)"));
                }
                self.advance();
                inner
            }
            TokenKind::Label(label) => self.comparison(label)?,
            _ => {
                self.pos -= usize::from(tok.kind != TokenKind::Eof);
                return Err(self.expected("a label, has(), all(), global(), '!' or '('"));
            }
        };
        // `!(!x)` is `x`: folding it keeps the canonical form a fixed point of parsing.
        Ok(match (negated, expr) {
            (true, Expr::Not(inner)) => *inner,
            (true, expr) => Expr::Not(Box::new(expr)),
            (false, expr) => expr,
        })
    }

    fn comparison(&mut self, label: String) -> Result<Expr, SelectorError> {
        let op = self.advance();
        match op.kind {
            TokenKind::Eq
            | TokenKind::Ne
            | TokenKind::Contains
            | TokenKind::StartsWith
            | TokenKind::EndsWith => {
                let value = self.string()?;
                Ok(match op.kind {
                    TokenKind::Eq => Expr::Eq(label, value),
                    TokenKind::Ne => Expr::Ne(label, value),
                    TokenKind::Contains => Expr::Contains(label, value),
                    TokenKind::StartsWith => Expr::StartsWith(label, value),
                    _ => Expr::EndsWith(label, value),
                })
            }
            TokenKind::In | TokenKind::NotIn => {
                let set = self.set_literal()?;
                Ok(if op.kind == TokenKind::In {
                    Expr::In(label, set)
                } else {
                    Expr::NotIn(label, set)
                })
            }
            _ => {
                self.pos -= usize::from(op.kind != TokenKind::Eof);
                Err(self.expected("an operator after the label"))
            }
        }
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.peek().kind.clone() {
            TokenKind::Str(s) => {
                self.advance();
                Ok(s)
            }
            _ => Err(self.expected("a quoted string")),
        }
    }

    fn set_literal(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        if self.peek().kind != TokenKind::LBrace {
            return Err(self.expected("a set literal '{'"));
        }
        self.advance();
        let mut set = BTreeSet::new();
        while let TokenKind::Str(s) = self.peek().kind.clone() {
            self.advance();
            set.insert(s);
            if self.peek().kind == TokenKind::Comma {
                self.advance();
            } else {
                break;
            }
        }
        if self.peek().kind != TokenKind::RBrace {
            return Err(self.expected("a quoted string or '}'"));
        }
        self.advance();
        Ok(set)
    }
}

/// Parses selector text; the empty (or all-whitespace) selector is `all()`.
pub(crate) fn parse_expr(input: &str) -> Result<Expr, SelectorError> {
    let tokens = tokenize(input)?;
    let mut parser = Parser { tokens, pos: 0 };
    if parser.peek().kind == TokenKind::Eof {
        return Ok(Expr::All);
    }
    let expr = parser.or(0)?;
    if parser.peek().kind != TokenKind::Eof {
        return Err(parser.expected("'&&', '||' or end of selector"));
    }
    Ok(expr)
}
