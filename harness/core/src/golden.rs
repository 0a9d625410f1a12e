//! Golden comparison: expected vs actual text per file, rendered as a unified diff with 4 lines
//! of context (plain or ANSI-colored; no terminal IO here).

use similar::{ChangeTag, TextDiff};

/// Lines of context around each change.
pub const CONTEXT: usize = 4;

/// How one golden file compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GoldenStatus {
    /// Identical.
    Match,
    /// Different.
    Mismatch,
    /// No golden file yet.
    MissingExpected,
}

/// Kind of a diff line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTag {
    /// Unchanged context.
    Equal,
    /// Only in the expected text.
    Delete,
    /// Only in the actual text.
    Insert,
}

/// One diff line (text without its newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    /// Kind.
    pub tag: LineTag,
    /// 1-based line in the expected text (Equal/Delete).
    pub old_line: Option<usize>,
    /// 1-based line in the actual text (Equal/Insert).
    pub new_line: Option<usize>,
    /// Text.
    pub text: String,
    /// Whether the source line had no trailing newline.
    pub missing_newline: bool,
}

/// A hunk: `@@ -a,b +c,d @@` and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// The `@@ ... @@` header.
    pub header: String,
    /// Lines.
    pub lines: Vec<DiffLine>,
}

/// The comparison of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoldenDiff {
    /// File name (e.g. `pod.yaml`).
    pub name: String,
    /// Status.
    pub status: GoldenStatus,
    /// Hunks (empty on Match).
    pub hunks: Vec<Hunk>,
}

/// Compare `expected` (None when there is no golden file) with `actual`.
pub fn compare(name: &str, expected: Option<&str>, actual: &str) -> GoldenDiff {
    let status = match expected {
        None => GoldenStatus::MissingExpected,
        Some(e) if e == actual => GoldenStatus::Match,
        Some(_) => GoldenStatus::Mismatch,
    };
    if status == GoldenStatus::Match {
        return GoldenDiff {
            name: name.into(),
            status,
            hunks: Vec::new(),
        };
    }
    let old = expected.unwrap_or("");
    let diff = TextDiff::from_lines(old, actual);
    let mut hunks = Vec::new();
    for group in diff.grouped_ops(CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_start = first.old_range().start;
        let old_len = last.old_range().end - old_start;
        let new_start = first.new_range().start;
        let new_len = last.new_range().end - new_start;
        let fmt = |start: usize, len: usize| {
            if len == 1 {
                format!("{}", start + 1)
            } else {
                format!("{},{}", if len == 0 { start } else { start + 1 }, len)
            }
        };
        let header = format!("@@ -{} +{} @@", fmt(old_start, old_len), fmt(new_start, new_len));
        let mut lines = Vec::new();
        for op in &group {
            for ch in diff.iter_changes(op) {
                let raw = ch.value();
                let missing_newline = !raw.ends_with('\n');
                let t = raw.strip_suffix('\n').unwrap_or(raw);
                let text = t.strip_suffix('\r').unwrap_or(t).to_string();
                lines.push(DiffLine {
                    tag: match ch.tag() {
                        ChangeTag::Equal => LineTag::Equal,
                        ChangeTag::Delete => LineTag::Delete,
                        ChangeTag::Insert => LineTag::Insert,
                    },
                    old_line: ch.old_index().map(|i| i + 1),
                    new_line: ch.new_index().map(|i| i + 1),
                    text,
                    missing_newline,
                });
            }
        }
        hunks.push(Hunk { header, lines });
    }
    GoldenDiff {
        name: name.into(),
        status,
        hunks,
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn paint(s: &str, code: &str, color: bool) -> String {
    if color {
        format!("{code}{s}{RESET}")
    } else {
        s.to_string()
    }
}

impl GoldenDiff {
    /// Whether the actual text equals the golden.
    pub fn is_match(&self) -> bool {
        self.status == GoldenStatus::Match
    }

    /// Unified diff (`--- expected/<name>`, `+++ actual/<name>`, hunks); empty on Match.
    /// With `color`, deletions are red, insertions green, hunk headers cyan, file headers bold.
    pub fn render(&self, color: bool) -> String {
        if self.is_match() {
            return String::new();
        }
        let mut out = String::new();
        let old_name = if self.status == GoldenStatus::MissingExpected {
            "/dev/null".to_string()
        } else {
            format!("expected/{}", self.name)
        };
        out.push_str(&paint(&format!("--- {old_name}"), BOLD, color));
        out.push('\n');
        out.push_str(&paint(&format!("+++ actual/{}", self.name), BOLD, color));
        out.push('\n');
        for h in &self.hunks {
            out.push_str(&paint(&h.header, CYAN, color));
            out.push('\n');
            for l in &h.lines {
                let (sign, code) = match l.tag {
                    LineTag::Equal => (' ', ""),
                    LineTag::Delete => ('-', RED),
                    LineTag::Insert => ('+', GREEN),
                };
                let line = format!("{sign}{}", l.text);
                if code.is_empty() {
                    out.push_str(&line)
                } else {
                    out.push_str(&paint(&line, code, color))
                }
                out.push('\n');
                if l.missing_newline {
                    out.push_str("\\ No newline at end of file\n");
                }
            }
        }
        out
    }
}

/// Compare several files at once: `(name, expected, actual)`.
pub fn compare_all<'a>(files: impl IntoIterator<Item = (&'a str, Option<&'a str>, &'a str)>) -> Vec<GoldenDiff> {
    files.into_iter().map(|(n, e, a)| compare(n, e, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_with_context() {
        let exp: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let act = exp.replace("line 10\n", "line ten\n");
        let d = compare("pod.yaml", Some(&exp), &act);
        assert_eq!(d.status, GoldenStatus::Mismatch);
        assert_eq!(d.hunks.len(), 1);
        assert_eq!(d.hunks[0].header, "@@ -6,9 +6,9 @@");
        let r = d.render(false);
        assert!(
            r.starts_with("--- expected/pod.yaml\n+++ actual/pod.yaml\n@@ -6,9 +6,9 @@\n line 6\n"),
            "{r}"
        );
        assert!(r.contains("-line 10\n+line ten\n"));
        let c = d.render(true);
        assert!(c.contains("\x1b[31m-line 10\x1b[0m"));
        assert!(c.contains("\x1b[32m+line ten\x1b[0m"));
        assert!(!r.contains('\x1b'));
        assert!(compare("x", Some("a\n"), "a\n").is_match());
        assert_eq!(compare("x", Some("a\n"), "a\n").render(true), "");
        let m = compare("x", None, "a\n");
        assert_eq!(m.status, GoldenStatus::MissingExpected);
        assert!(m.render(false).contains("--- /dev/null"));
        assert!(m.render(false).contains("+a\n"));
    }
}
