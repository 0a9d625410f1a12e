//! Diagnostics: every problem found in an input file, as `path:line:col: message`.
//!
//! A [`Diagnostic`] carries its source text (a miette [`NamedSource`]) and a [`SourceSpan`], so
//! the CLI can render it with miette's fancy handler; its `Display` is the plain one-line form.

use miette::{LabeledSpan, NamedSource, SourceCode, SourceSpan};
use std::fmt;
use std::sync::Arc;

use crate::yaml::Pos;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The input is rejected.
    Error,
    /// The input is accepted; something looks off.
    Warning,
}

/// A source file, shared by all diagnostics pointing into it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as shown in messages.
    pub path: String,
    /// The text (lossy UTF-8 as handed in by the caller).
    pub text: String,
    named: Arc<NamedSource<String>>,
}

impl SourceFile {
    /// A new source file.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        let path = path.into();
        let text = text.into();
        let named = Arc::new(NamedSource::new(path.clone(), text.clone()).with_language("yaml"));
        Arc::new(SourceFile { path, text, named })
    }
}

/// One problem in one file.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File path as shown.
    pub path: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub col: u32,
    /// The message (no location).
    pub message: String,
    /// An optional hint (e.g. "did you mean `namespace`?").
    pub help: Option<String>,
    /// Byte span in the source.
    pub span: SourceSpan,
    source: Option<Arc<SourceFile>>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `file`.
    pub fn new(severity: Severity, file: &Arc<SourceFile>, pos: Pos, message: impl Into<String>) -> Self {
        let (line, col) = if pos.line == 0 {
            (1, 1)
        } else {
            (pos.line, pos.col.max(1))
        };
        let offset = pos.offset.min(file.text.len());
        let len = pos.len.min(file.text.len() - offset);
        Diagnostic {
            severity,
            path: file.path.clone(),
            line,
            col,
            message: message.into(),
            help: None,
            span: SourceSpan::new(offset.into(), len),
            source: Some(file.clone()),
        }
    }

    /// A diagnostic about a file as a whole (line 1, column 1), without source text.
    pub fn file_level(severity: Severity, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            path: path.into(),
            line: 1,
            col: 1,
            message: message.into(),
            help: None,
            span: SourceSpan::new(0.into(), 0),
            source: None,
        }
    }

    /// Attach a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The source line the diagnostic points at (without newline), if the text is known.
    pub fn source_line(&self) -> Option<&str> {
        let f = self.source.as_ref()?;
        f.text.lines().nth(self.line.saturating_sub(1) as usize)
    }

    /// Plain rendering: `path:line:col: message`, then the source line and a caret, then the help.
    pub fn render_plain(&self) -> String {
        let mut s = self.to_string();
        if self.severity == Severity::Warning {
            s = format!("{}:{}:{}: warning: {}", self.path, self.line, self.col, self.message);
        }
        if let Some(line) = self.source_line() {
            let line = line.replace('\t', " ");
            s.push_str(&format!(
                "\n    {line}\n    {}^",
                " ".repeat(self.col.saturating_sub(1) as usize)
            ));
        }
        if let Some(h) = &self.help {
            s.push_str(&format!("\n    help: {h}"));
        }
        s
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path, self.line, self.col, self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| &*s.named as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".into()),
            self.span,
        ))))
    }
}

/// All diagnostics of a load (errors and warnings), in the order found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    /// The diagnostics.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Add one.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }
    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }
    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Sort by file, line, column (stable), for reproducible output.
    pub fn sort(&mut self) {
        self.items
            .sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
    }
    /// Plain rendering of all, with source lines.
    pub fn render_plain(&self) -> String {
        self.items
            .iter()
            .map(Diagnostic::render_plain)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Diagnostics {
    /// One `path:line:col: message` per line (warnings included, marked `warning: `).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if d.is_error() {
                write!(f, "{d}")?;
            } else {
                write!(f, "{}:{}:{}: warning: {}", d.path, d.line, d.col, d.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl miette::Diagnostic for Diagnostics {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(self.items.iter().map(|d| d as &dyn miette::Diagnostic)))
    }
}

/// The closest candidate to `word` (Jaro-Winkler ≥ 0.8 or a small edit distance), for
/// "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lw = word.to_ascii_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let lc = c.to_ascii_lowercase();
        let mut score = strsim::jaro_winkler(&lw, &lc);
        let lev = strsim::levenshtein(&lw, &lc);
        if lev <= 2 && lw.len() > 2 {
            score = score.max(0.9 + 0.01 * (3 - lev) as f64);
        }
        if lw == lc {
            score = 1.0;
        }
        if score >= 0.8 && best.is_none_or(|(_, s)| score > s) {
            best = Some((c, score));
        }
    }
    best.map(|(c, _)| c)
}
