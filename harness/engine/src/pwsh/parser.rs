//! The parser: a script's text to statements and commands (expressions in [`expr`], characters
//! in [`lexer`]).

mod expr;
mod lexer;

use super::ast::{Arg, Expr, Part, Stmt, Target};
use super::error::ParseError;

/// A recursive-descent parser over the script's characters.
pub(super) struct Parser {
    s: Vec<char>,
    i: usize,
}

impl Parser {
    pub(super) fn new(src: &str) -> Self {
        Parser {
            s: src.chars().collect(),
            i: 0,
        }
    }

    pub(super) fn script(&mut self) -> Result<Vec<Stmt>, ParseError> {
        let out = self.stmts()?;
        self.separators();
        if self.i < self.s.len() {
            return self.err(&format!("unexpected `{}`", self.s[self.i]));
        }
        Ok(out)
    }

    fn stmts(&mut self) -> Result<Vec<Stmt>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.separators();
            match self.peek() {
                None | Some('}') => return Ok(out),
                _ => out.push(self.stmt()?),
            }
            self.blank();
            if self.peek() == Some('|') {
                self.i += 1;
                if !self.keyword("Out-Null") {
                    return self
                        .err("pipelines (`|`) other than `| Out-Null` are not supported by sgsim's pwsh stand-in");
                }
                if let Some(last) = out.pop() {
                    out.push(Stmt::Quiet(Box::new(last)));
                }
                self.blank();
            }
            match self.peek() {
                None | Some('\n' | ';' | '}') => {}
                Some('|') => {
                    return self
                        .err("pipelines (`|`) other than `| Out-Null` are not supported by sgsim's pwsh stand-in");
                }
                Some(c) => return self.err(&format!("unexpected `{c}`")),
            }
        }
    }

    fn body(&mut self) -> Result<Vec<Stmt>, ParseError> {
        self.separators();
        self.expect('{')?;
        let b = self.stmts()?;
        self.separators();
        self.expect('}')?;
        Ok(b)
    }

    fn stmt(&mut self) -> Result<Stmt, ParseError> {
        self.blank();
        if self.keyword("if") {
            let mut branches = Vec::new();
            self.expect('(')?;
            let c = self.expr()?;
            self.expect(')')?;
            branches.push((c, self.body()?));
            let mut otherwise = None;
            loop {
                let save = self.i;
                self.separators();
                if self.keyword("elseif") {
                    self.expect('(')?;
                    let c = self.expr()?;
                    self.expect(')')?;
                    branches.push((c, self.body()?));
                } else if self.keyword("else") {
                    otherwise = Some(self.body()?);
                    break;
                } else {
                    self.i = save;
                    break;
                }
            }
            return Ok(Stmt::If(branches, otherwise));
        }
        if self.keyword("foreach") {
            self.expect('(')?;
            self.expect('$')?;
            let v = self.word();
            if !self.keyword("in") {
                return self.err("expected `in`");
            }
            let e = self.expr()?;
            self.expect(')')?;
            return Ok(Stmt::Foreach(v, e, self.body()?));
        }
        if self.keyword("exit") {
            self.blank();
            let e = if matches!(self.peek(), None | Some('\n' | ';' | '}')) {
                None
            } else {
                Some(self.expr()?)
            };
            return Ok(Stmt::Exit(e));
        }
        if self.keyword("throw") {
            self.blank();
            let e = if matches!(self.peek(), None | Some('\n' | ';' | '}')) {
                None
            } else {
                Some(self.expr()?)
            };
            return Ok(Stmt::Throw(e));
        }
        // Assignment: `$x = ...` / `$Env:X = ...`.
        if self.peek() == Some('$') {
            let save = self.i;
            self.i += 1;
            let name = self.word();
            self.blank();
            if !name.is_empty() && self.peek() == Some('=') && self.peek_at(1) != Some('=') {
                self.i += 1;
                let e = self.expr_or_command()?;
                let target = match name.split_once(':') {
                    Some((scope, n)) if scope.eq_ignore_ascii_case("env") => Target::Env(n.to_string()),
                    Some((_, n)) => Target::Var(n.to_string()),
                    None => Target::Var(name),
                };
                return Ok(Stmt::Assign(target, e));
            }
            self.i = save;
        }
        // A command: a bare word first (`Write-Host`, `ls`, `./run.sh`); `& "prog"` too.
        let c = self.peek().unwrap_or(' ');
        if c == '&' {
            self.i += 1;
            self.blank();
            let name = self.primary()?;
            let name = match name {
                Expr::Lit(v) => v.text(),
                Expr::Expand(p) if p.iter().all(|x| matches!(x, Part::Text(_))) => p
                    .iter()
                    .map(|x| {
                        if let Part::Text(t) = x {
                            t.clone()
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
                _ => return self.err("`&` needs a literal command name in sgsim's pwsh stand-in"),
            };
            return Ok(Stmt::Command(name, self.command_args()?));
        }
        if c.is_alphabetic() || c == '.' || c == '/' || c == '_' {
            let name = self.word();
            return Ok(Stmt::Command(name, self.command_args()?));
        }
        Ok(Stmt::Expr(self.expr()?))
    }

    fn command_args(&mut self) -> Result<Vec<Arg>, ParseError> {
        let mut args = Vec::new();
        loop {
            self.blank();
            match self.peek() {
                None | Some('\n' | ';' | '}' | ')' | '|') => return Ok(args),
                Some('-') if self.peek_at(1).is_some_and(|c| c.is_alphabetic()) => {
                    self.i += 1;
                    let mut p = self.word();
                    if let Some(stripped) = p.strip_suffix(':') {
                        p = stripped.to_string();
                    }
                    args.push(Arg::Param(p));
                }
                Some('"' | '\'' | '$' | '(' | '@') => args.push(Arg::Value(self.unary()?)),
                Some(c) if c.is_ascii_digit() && self.bare_is_number() => args.push(Arg::Value(self.unary()?)),
                Some(_) => {
                    // A bareword argument: up to a blank or separator, with `$var` expansion.
                    let mut parts = Vec::new();
                    let mut text = String::new();
                    while let Some(c) = self.peek() {
                        if c.is_whitespace() || matches!(c, ';' | '}' | ')' | '|') {
                            break;
                        }
                        if c == '$' {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(Part::Expr(self.variable()?));
                            continue;
                        }
                        text.push(c);
                        self.i += 1;
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(text));
                    }
                    args.push(Arg::Value(Expr::Expand(parts)));
                }
            }
        }
    }

    /// An expression, or a command when a bare word comes first (`$x = Get-Content f`,
    /// `(Test-Path x)`).
    fn expr_or_command(&mut self) -> Result<Expr, ParseError> {
        self.separators();
        if self
            .peek()
            .is_some_and(|c| c.is_alphabetic() || c == '.' || c == '/' || c == '_')
        {
            let name = self.word();
            return Ok(Expr::Cmd(name, self.command_args()?));
        }
        self.expr()
    }
}

#[cfg(test)]
mod tests {
    use crate::pwsh::run_test_script as run;

    #[test]
    fn no_panic_on_odd_input() {
        for s in [
            "",
            "$",
            "${",
            "$(",
            "@(",
            "$x.",
            "$x.Split(",
            "$x[",
            "$x[1",
            "1 | Out",
            "$x.Substring(9, 9)",
            "if",
            "if (",
            "if ($x) {",
            "foreach (",
            "\"$(\"",
            "'",
            "`",
            "1..",
            "-",
            "&",
            "& $x",
            "}",
            ")",
            "$x =",
            "<#",
            "exit (",
            "\"`",
        ] {
            let _ = run(s);
        }
    }
}
