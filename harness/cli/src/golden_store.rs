//! The golden store, modelled on insta: a run's golden files (computed by
//! [`sgsim_core::verdict::golden_files`]) are compared with `golden/<scenario>/`, and on a mismatch a pending `<file>.new` is written beside the golden (never
//! in CI) for review; `SGSIM_BLESS=1` (or `sgsim accept`) makes the actual files the goldens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sgsim_core::golden::{GoldenDiff, compare};

/// Suffix of pending (not yet accepted) golden files.
pub const PENDING_SUFFIX: &str = ".new";

/// What to do with actual output that differs from the goldens (read from the environment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlessMode {
    /// Compare only; write nothing (CI).
    Never,
    /// Compare; on a mismatch write `<file>.new` for review (default outside CI).
    Pending,
    /// Overwrite the goldens with the actual output (`SGSIM_BLESS=1`).
    Always,
}

/// Errors of the golden store.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// Blessing was asked for in CI.
    #[error("SGSIM_BLESS is set but CI=true: refusing to write goldens in CI")]
    BlessInCi,
    /// A golden file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false") && !v.eq_ignore_ascii_case("no"))
}

/// The mode from `SGSIM_BLESS` and `CI`.
pub fn bless_mode() -> Result<BlessMode, GoldenError> {
    bless_mode_from(std::env::var("SGSIM_BLESS").ok(), std::env::var("CI").ok())
}

/// The mode for the given values of `SGSIM_BLESS` and `CI`.
pub fn bless_mode_from(bless: Option<String>, ci: Option<String>) -> Result<BlessMode, GoldenError> {
    match (truthy(bless), truthy(ci)) {
        (true, true) => Err(GoldenError::BlessInCi),
        (true, false) => Ok(BlessMode::Always),
        (false, true) => Ok(BlessMode::Never),
        (false, false) => Ok(BlessMode::Pending),
    }
}

/// The outcome of checking one scenario's goldens.
#[derive(Debug, Default)]
pub struct GoldenReport {
    /// Per-file comparisons that did not match.
    pub diffs: Vec<GoldenDiff>,
    /// Golden files that the run no longer produces.
    pub stale: Vec<String>,
    /// Files written (blessed).
    pub written: Vec<String>,
    /// Pending `.new` files written for review.
    pub pending: Vec<String>,
    /// The run cannot bless (the fake runtime): say so instead of how to accept.
    pub check_only: Option<String>,
}

impl GoldenReport {
    /// Whether the goldens matched (or were blessed).
    pub fn ok(&self) -> bool {
        (self.diffs.is_empty() && self.stale.is_empty()) || !self.written.is_empty()
    }

    /// The failure text: a colored unified diff per file and how to accept.
    pub fn render(&self, scenario: &str, color: bool) -> String {
        let mut out = String::new();
        for d in &self.diffs {
            out.push_str(&d.render(color));
        }
        for s in &self.stale {
            out.push_str(&format!("golden file {s} is no longer produced by the run\n"));
        }
        if !self.pending.is_empty() {
            out.push_str(&format!("pending: {}\n", self.pending.join(", ")));
        }
        match &self.check_only {
            Some(why) => out.push_str(&format!("{why}\n")),
            None => out.push_str(&format!(
                "to accept the new output: SGSIM_BLESS=1 cargo test --test conformance -- --exact {scenario}\n   or review and accept the pending files: sgsim accept {scenario}\n"
            )),
        }
        out
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, GoldenError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GoldenError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write(path: &Path, text: &str) -> Result<(), GoldenError> {
    let io = |source| GoldenError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    write_atomically(path, text.as_bytes()).map_err(io)
}

pub use sgsim_cluster::files::write_atomically;

/// Every golden file under `dir` (relative paths, `/`-separated), pending files excluded.
pub fn list(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if !rel.ends_with(PENDING_SUFFIX) {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn pending_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(PENDING_SUFFIX);
    PathBuf::from(s)
}

/// Compares `actual` with the goldens in `dir`, and blesses or writes pending files per `mode`.
pub fn check(dir: &Path, actual: &BTreeMap<String, String>, mode: BlessMode) -> Result<GoldenReport, GoldenError> {
    check_with(dir, actual, mode, &|_, _| None)
}

/// [`check`] comparing both sides through `canonical` (file name, text → the text as compared;
/// `None`: as is): a runtime's allowed differences, e.g. the kube backend's image pull events.
/// What is written (with `mode` other than `Never`) is the actual text, never the canonical one.
pub fn check_with(
    dir: &Path,
    actual: &BTreeMap<String, String>,
    mode: BlessMode,
    canonical: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<GoldenReport, GoldenError> {
    let mut report = GoldenReport::default();
    for (name, text) in actual {
        let path = dir.join(name);
        let expected = read_opt(&path)?;
        let expected = expected.map(|e| canonical(name, &e).unwrap_or(e));
        let shown = canonical(name, text);
        let d = compare(name, expected.as_deref(), shown.as_deref().unwrap_or(text));
        let pending = pending_path(&path);
        if d.is_match() {
            if pending.exists() {
                let _ = std::fs::remove_file(&pending);
            }
            continue;
        }
        match mode {
            BlessMode::Always => {
                write(&path, text)?;
                let _ = std::fs::remove_file(&pending);
                report.written.push(name.clone());
            }
            BlessMode::Pending => {
                write(&pending, text)?;
                report.pending.push(format!("{}", pending.display()));
            }
            BlessMode::Never => {}
        }
        report.diffs.push(d);
    }
    for existing in list(dir) {
        if !actual.contains_key(&existing) {
            if mode == BlessMode::Always {
                let p = dir.join(&existing);
                std::fs::remove_file(&p).map_err(|source| GoldenError::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                report.written.push(format!("{existing} (removed)"));
            }
            report.stale.push(existing);
        }
    }
    if mode == BlessMode::Always && !report.written.is_empty() {
        report.diffs.clear();
        report.stale.clear();
    }
    Ok(report)
}

/// The pending files (`<file>.new`) under `dir`, sorted.
pub fn pending(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with(PENDING_SUFFIX) {
                out.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    found.sort();
    found
}

/// The golden file a pending file would replace.
pub fn golden_of(pending: &Path) -> PathBuf {
    let s = pending.to_string_lossy();
    PathBuf::from(s.strip_suffix(PENDING_SUFFIX).unwrap_or(&s))
}

/// Accepts one pending file: it replaces its golden file. Returns the golden file.
pub fn accept_one(pending: &Path) -> Result<PathBuf, GoldenError> {
    let target = golden_of(pending);
    std::fs::rename(pending, &target).map_err(|source| GoldenError::Io {
        path: pending.display().to_string(),
        source,
    })?;
    Ok(target)
}

/// Rejects one pending file: it is removed, the golden file stays.
pub fn reject_one(pending: &Path) -> Result<(), GoldenError> {
    std::fs::remove_file(pending).map_err(|source| GoldenError::Io {
        path: pending.display().to_string(),
        source,
    })
}

/// Accepts the pending files under `dir`: each `<file>.new` replaces `<file>`. Returns the
/// accepted golden files.
pub fn accept(dir: &Path) -> Result<Vec<String>, GoldenError> {
    pending(dir)
        .iter()
        .map(|p| accept_one(p).map(|t| t.display().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgsim-golden-test-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_suffix() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[test]
    fn writes_are_all_or_nothing() {
        let d = tmp();
        let f = d.join("pod.yaml");
        std::fs::write(&f, "old\n").unwrap();
        write_atomically(&f, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new\n");
        // A write that cannot complete (here: the target is a non-empty directory, so the final
        // rename fails) leaves what was there and no temporary file.
        let blocked = d.join("steps");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomically(&blocked, b"half").is_err());
        assert!(blocked.join("x").is_dir());
        let left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bless_mode_refuses_ci() {
        assert!(matches!(
            bless_mode_from(Some("1".into()), Some("true".into())),
            Err(GoldenError::BlessInCi)
        ));
        assert_eq!(bless_mode_from(Some("1".into()), None).unwrap(), BlessMode::Always);
        assert_eq!(bless_mode_from(None, Some("true".into())).unwrap(), BlessMode::Never);
        assert_eq!(bless_mode_from(Some("0".into()), None).unwrap(), BlessMode::Pending);
        assert_eq!(bless_mode_from(None, Some("false".into())).unwrap(), BlessMode::Pending);
    }

    #[test]
    fn mismatch_writes_pending_and_accept_applies_it() {
        let d = tmp();
        std::fs::write(d.join("a.log"), "one\ntwo\n").unwrap();
        std::fs::write(d.join("stale.log"), "x\n").unwrap();
        let actual = BTreeMap::from([("a.log".to_string(), "one\nthree\n".to_string())]);
        let r = check(&d, &actual, BlessMode::Pending).unwrap();
        assert!(!r.ok());
        assert_eq!(r.diffs.len(), 1);
        assert_eq!(r.stale, vec!["stale.log".to_string()]);
        let text = r.render("demo", false);
        assert!(text.contains("-two") && text.contains("+three"), "{text}");
        assert!(text.contains("SGSIM_BLESS=1 cargo test --test conformance -- --exact demo"));
        assert_eq!(std::fs::read_to_string(d.join("a.log.new")).unwrap(), "one\nthree\n");
        let acc = accept(&d).unwrap();
        assert_eq!(acc.len(), 1);
        assert_eq!(std::fs::read_to_string(d.join("a.log")).unwrap(), "one\nthree\n");
        assert!(!d.join("a.log.new").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn never_mode_writes_nothing() {
        let d = tmp();
        std::fs::write(d.join("a.log"), "one\n").unwrap();
        let actual = BTreeMap::from([("a.log".to_string(), "two\n".to_string())]);
        let r = check(&d, &actual, BlessMode::Never).unwrap();
        assert!(!r.ok());
        assert!(!d.join("a.log.new").exists());
        assert_eq!(std::fs::read_to_string(d.join("a.log")).unwrap(), "one\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn always_mode_blesses_and_removes_stale() {
        let d = tmp();
        std::fs::write(d.join("old.log"), "x\n").unwrap();
        let actual = BTreeMap::from([("steps/a.log".to_string(), "new\n".to_string())]);
        let r = check(&d, &actual, BlessMode::Always).unwrap();
        assert!(r.ok());
        assert_eq!(std::fs::read_to_string(d.join("steps/a.log")).unwrap(), "new\n");
        assert!(!d.join("old.log").exists());
        let again = check(&d, &actual, BlessMode::Never).unwrap();
        assert!(again.ok() && again.diffs.is_empty());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
