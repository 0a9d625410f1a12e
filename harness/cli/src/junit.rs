//! JUnit XML of a suite run, in the format CI systems read (Jenkins, GitLab, GitHub test
//! reporters, nextest's own): `testsuites` > `testsuite` > `testcase` with `failure` or
//! `skipped`. `docs/junit.xsd` is the schema it is checked against.

use std::fmt::Write as _;

/// How one trial ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "text", rename_all = "lowercase")]
pub enum TrialStatus {
    /// Passed.
    Pass,
    /// Failed, with the failure text (no color codes).
    Fail(String),
    /// Not run, and why.
    Skip(String),
}

/// One trial of a suite run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// The trial (scenario) name.
    pub name: String,
    /// How it ended.
    pub status: TrialStatus,
    /// How long it took, in seconds.
    pub secs: f64,
}

/// Counts of a suite run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Trials run.
    pub run: usize,
    /// Trials passed.
    pub passed: usize,
    /// Trials failed.
    pub failed: usize,
    /// Trials skipped.
    pub skipped: usize,
}

/// The counts of `records`.
pub fn counts(records: &[TrialRecord]) -> Counts {
    let mut c = Counts::default();
    for r in records {
        match r.status {
            TrialStatus::Pass => c.passed += 1,
            TrialStatus::Fail(_) => c.failed += 1,
            TrialStatus::Skip(_) => c.skipped += 1,
        }
    }
    c.run = c.passed + c.failed;
    c
}

/// `text` escaped for XML content and attributes; characters XML 1.0 cannot carry (control
/// characters other than tab, newline, carriage return; ANSI escapes among them) are dropped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // An ANSI escape sequence: ESC [ params final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
            }
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML of one suite run: `suite` names the suite (`conformance-docker`), `timestamp`
/// is when it started (RFC 3339), `secs` how long it took.
pub fn render(suite: &str, timestamp: &str, secs: f64, records: &[TrialRecord]) -> String {
    let c = counts(records);
    let total = records.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"sgsim\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{secs:.3}\" timestamp=\"{}\">",
        c.failed,
        c.skipped,
        escape(timestamp)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{secs:.3}\" timestamp=\"{}\">",
        escape(suite),
        c.failed,
        c.skipped,
        escape(timestamp)
    );
    let classname = format!("sgsim.{}", suite.replace('-', "."));
    for r in records {
        let head = format!(
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
            escape(&r.name),
            escape(&classname),
            r.secs
        );
        match &r.status {
            TrialStatus::Pass => {
                let _ = writeln!(out, "{head}/>");
            }
            TrialStatus::Fail(text) => {
                let message = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed");
                let _ = writeln!(out, "{head}>");
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"mismatch\">{}</failure>",
                    escape(message),
                    escape(text)
                );
                let _ = writeln!(out, "    </testcase>");
            }
            TrialStatus::Skip(why) => {
                let _ = writeln!(out, "{head}>");
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", escape(why));
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<TrialRecord> {
        vec![
            TrialRecord {
                name: "dind-basic".into(),
                status: TrialStatus::Pass,
                secs: 1.5,
            },
            TrialRecord {
                name: "step-fails".into(),
                status: TrialStatus::Fail("\u{1b}[31m- a\u{1b}[0m\n+ <b> & \"c\"\u{7}\n".into()),
                secs: 0.25,
            },
            TrialRecord {
                name: "dind-deep".into(),
                status: TrialStatus::Skip("needs containers".into()),
                secs: 0.0,
            },
        ]
    }

    #[test]
    fn counts_and_escaping() {
        let xml = render("conformance-docker", "2026-12-04T04:00:00Z", 2.0, &records());
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.000\""),
            "{xml}"
        );
        assert!(xml.contains("<testcase name=\"dind-basic\" classname=\"sgsim.conformance.docker\" time=\"1.500\"/>"));
        assert!(
            xml.contains("<failure message=\"- a\" type=\"mismatch\">- a\n+ &lt;b&gt; &amp; &quot;c&quot;\n</failure>"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"needs containers\"/>"));
        assert!(!xml.contains('\u{1b}') && !xml.contains('\u{7}'));
        assert_eq!(
            counts(&records()),
            Counts {
                run: 2,
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
    }
}
