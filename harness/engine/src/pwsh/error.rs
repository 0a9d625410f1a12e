//! Why a script stops: a parse error (the script does not run at all), or `exit`, `throw` and
//! terminating errors while it runs.

/// A script that cannot be parsed: the line and what is wrong there (printed after
/// `ParserError: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(super) struct ParseError {
    pub(super) line: usize,
    pub(super) message: String,
}

/// Why a script stopped early.
#[derive(Debug, PartialEq)]
pub(super) enum Stop {
    /// `exit n`.
    Exit(i32),
    /// A terminating error (message as pwsh prints it).
    Error(String),
}
