//! Expressions: operators by precedence (`,`, `-and`/`-or`, comparisons, `+ - * /`, `..`, unary),
//! members and indexes, variables, strings and numbers.

use super::Parser;
use crate::pwsh::ast::{Expr, Part};
use crate::pwsh::error::ParseError;
use crate::pwsh::value::Val;

const COMPARISON: &[&str] = &[
    "-eq",
    "-ne",
    "-gt",
    "-ge",
    "-lt",
    "-le",
    "-like",
    "-notlike",
    "-match",
    "-notmatch",
    "-contains",
    "-notcontains",
];

impl Parser {
    pub(super) fn expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.logic()?;
        self.blank();
        if self.peek() == Some(',') {
            let mut items = vec![first];
            while self.eat(',') {
                self.separators();
                items.push(self.logic()?);
            }
            return Ok(Expr::Array(items));
        }
        Ok(first)
    }

    fn logic(&mut self) -> Result<Expr, ParseError> {
        let mut a = self.comparison()?;
        loop {
            self.blank();
            let op = ["-and", "-or"].into_iter().find(|o| self.keyword(o));
            let Some(op) = op else { return Ok(a) };
            self.separators();
            let b = self.comparison()?;
            a = Expr::Bin(op.into(), Box::new(a), Box::new(b));
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut a = self.additive()?;
        loop {
            self.blank();
            // Case-insensitive `-ieq`/`-ceq` spellings compare as `-eq`.
            let op = COMPARISON.iter().find(|o| {
                let o = &o[1..];
                self.keyword(&format!("-{o}")) || self.keyword(&format!("-i{o}")) || self.keyword(&format!("-c{o}"))
            });
            let Some(op) = op else { return Ok(a) };
            let b = self.additive()?;
            a = Expr::Bin((*op).into(), Box::new(a), Box::new(b));
        }
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut a = self.range()?;
        loop {
            self.blank();
            let op = match self.peek() {
                Some('+') => "+",
                Some('-')
                    if self
                        .peek_at(1)
                        .is_some_and(|c| c == ' ' || c.is_ascii_digit() || c == '$' || c == '(') =>
                {
                    "-"
                }
                Some('*') => "*",
                Some('/') => "/",
                _ => return Ok(a),
            };
            self.i += 1;
            let b = self.range()?;
            a = Expr::Bin(op.into(), Box::new(a), Box::new(b));
        }
    }

    fn range(&mut self) -> Result<Expr, ParseError> {
        let a = self.unary()?;
        if self.peek() == Some('.') && self.peek_at(1) == Some('.') {
            self.i += 2;
            let b = self.unary()?;
            return Ok(Expr::Bin("..".into(), Box::new(a), Box::new(b)));
        }
        Ok(a)
    }

    pub(super) fn unary(&mut self) -> Result<Expr, ParseError> {
        self.blank();
        if self.keyword("-not") || self.eat('!') {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let mut e = self.primary()?;
        // Members, methods and indexes, directly after the value (no blank).
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1).is_some_and(|c| c.is_alphabetic()) => {
                    self.i += 1;
                    let st = self.i;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.i += 1;
                    }
                    let name: String = self.s[st..self.i].iter().collect();
                    let args = if self.peek() == Some('(') {
                        self.i += 1;
                        let mut args = Vec::new();
                        self.separators();
                        if !self.eat(')') {
                            loop {
                                args.push(self.logic()?);
                                self.separators();
                                if self.eat(')') {
                                    break;
                                }
                                self.expect(',')?;
                            }
                        }
                        Some(args)
                    } else {
                        None
                    };
                    e = Expr::Member(Box::new(e), name, args);
                }
                Some('[') => {
                    self.i += 1;
                    let ix = self.expr()?;
                    self.separators();
                    self.expect(']')?;
                    e = Expr::Index(Box::new(e), Box::new(ix));
                }
                _ => return Ok(e),
            }
        }
    }

    pub(super) fn variable(&mut self) -> Result<Expr, ParseError> {
        self.i += 1; // `$`
        match self.peek() {
            Some('{') => {
                self.i += 1;
                let st = self.i;
                while self.peek().is_some_and(|c| c != '}') {
                    self.i += 1;
                }
                let name: String = self.s[st..self.i].iter().collect();
                self.i += 1;
                Ok(var_expr(&name))
            }
            Some('(') => self.paren(),
            Some('?') => {
                self.i += 1;
                Ok(Expr::Var("?".into()))
            }
            _ => {
                let st = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                if self.peek() == Some(':') && self.peek_at(1).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.i += 1;
                    }
                }
                let name: String = self.s[st..self.i].iter().collect();
                if name.is_empty() {
                    return Ok(Expr::Lit(Val::Str("$".into())));
                }
                Ok(var_expr(&name))
            }
        }
    }

    /// `( expr )` or `( command )`, at the `(`.
    fn paren(&mut self) -> Result<Expr, ParseError> {
        self.i += 1;
        let e = self.expr_or_command()?;
        self.separators();
        self.expect(')')?;
        Ok(Expr::Sub(Box::new(e)))
    }

    pub(super) fn primary(&mut self) -> Result<Expr, ParseError> {
        self.blank();
        match self.peek() {
            Some('\'') => {
                self.i += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return self.err("missing closing `'`"),
                        Some('\'') if self.peek_at(1) == Some('\'') => {
                            s.push('\'');
                            self.i += 2;
                        }
                        Some('\'') => {
                            self.i += 1;
                            return Ok(Expr::Lit(Val::Str(s)));
                        }
                        Some(c) => {
                            s.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some('"') => {
                self.i += 1;
                let mut parts = Vec::new();
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => return self.err("missing closing `\"`"),
                        Some('"') if self.peek_at(1) == Some('"') => {
                            text.push('"');
                            self.i += 2;
                        }
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('`') => {
                            let c = self.peek_at(1).unwrap_or('`');
                            text.push(match c {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                c => c,
                            });
                            self.i += 2;
                        }
                        Some('$')
                            if self
                                .peek_at(1)
                                .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '{' | '(' | '?')) =>
                        {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(Part::Expr(self.variable()?));
                        }
                        Some(c) => {
                            text.push(c);
                            self.i += 1;
                        }
                    }
                }
                if !text.is_empty() || parts.is_empty() {
                    parts.push(Part::Text(text));
                }
                Ok(Expr::Expand(parts))
            }
            Some('$') => self.variable(),
            Some('(') => self.paren(),
            Some('@') if self.peek_at(1) == Some('(') => {
                self.i += 2;
                self.separators();
                if self.eat(')') {
                    return Ok(Expr::Array(Vec::new()));
                }
                let e = self.expr()?;
                self.separators();
                self.expect(')')?;
                Ok(match e {
                    Expr::Array(a) => Expr::Array(a),
                    e => Expr::Array(vec![e]),
                })
            }
            Some(c) if c.is_ascii_digit() || (c == '-' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) => {
                let st = self.i;
                self.i += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || (c == '.' && self.peek_at(1) != Some('.')))
                {
                    self.i += 1;
                }
                let t: String = self.s[st..self.i].iter().collect();
                t.parse()
                    .map(|n| Expr::Lit(Val::Num(n)))
                    .or_else(|_| self.err(&format!("bad number `{t}`")))
            }
            Some(c) => self.err(&format!("unexpected `{c}` (not supported by sgsim's pwsh stand-in)")),
            None => self.err("unexpected end of script"),
        }
    }
}

fn var_expr(name: &str) -> Expr {
    match name.split_once(':') {
        Some((scope, n)) if scope.eq_ignore_ascii_case("env") => Expr::Env(n.to_string()),
        Some((_, n)) => Expr::Var(n.to_string()),
        None => Expr::Var(name.to_string()),
    }
}
