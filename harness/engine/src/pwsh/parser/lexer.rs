//! Character-level scanning: blanks, comments, separators, words, keywords, and the line number
//! that parse errors name.

use super::Parser;
use crate::pwsh::error::ParseError;

impl Parser {
    pub(super) fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    pub(super) fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.i + n).copied()
    }
    pub(super) fn rest_starts(&self, w: &str) -> bool {
        let w: Vec<char> = w.chars().collect();
        self.s.len() >= self.i + w.len()
            && self.s[self.i..self.i + w.len()]
                .iter()
                .zip(&w)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
    pub(super) fn line(&self) -> usize {
        self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count()
            + 1
    }
    pub(super) fn err<T>(&self, m: &str) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line(),
            message: m.to_string(),
        })
    }

    /// Spaces, tabs, comments and line continuations (not newlines).
    pub(super) fn blank(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => self.i += 1,
                Some('`') if self.peek_at(1) == Some('\n') => self.i += 2,
                Some('<') if self.peek_at(1) == Some('#') => {
                    while self.i < self.s.len() && !(self.peek() == Some('#') && self.peek_at(1) == Some('>')) {
                        self.i += 1;
                    }
                    self.i = (self.i + 2).min(self.s.len());
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }
    /// Blanks and newlines/semicolons.
    pub(super) fn separators(&mut self) {
        loop {
            self.blank();
            match self.peek() {
                Some('\n' | ';') => self.i += 1,
                _ => return,
            }
        }
    }
    pub(super) fn eat(&mut self, c: char) -> bool {
        self.blank();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(&format!("expected `{c}`"))
        }
    }
    pub(super) fn word(&mut self) -> String {
        let st = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '\\' | ':'))
        {
            self.i += 1;
        }
        self.s[st..self.i].iter().collect()
    }
    pub(super) fn keyword(&mut self, kw: &str) -> bool {
        self.blank();
        let end = self.s.get(self.i + kw.len()).copied();
        if self.rest_starts(kw) && !end.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            self.i += kw.len();
            true
        } else {
            false
        }
    }
    pub(super) fn bare_is_number(&self) -> bool {
        let mut j = self.i;
        while self.s.get(j).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
            j += 1;
        }
        self.s
            .get(j)
            .is_none_or(|c| c.is_whitespace() || matches!(c, ';' | '}' | ')'))
    }
}
