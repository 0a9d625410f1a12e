//! `sgsim review`: the pending golden files (`*.new`) one by one, each with its colored diff, and
//! a choice per file, as `cargo insta review` offers: accept (the pending file replaces the
//! golden), reject (it is removed), skip (both stay). Also reports golden directories that no
//! scenario produces any more, and removes them with `--unreferenced=delete`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::{exit, golden_store, output};

/// What to do about golden directories that no scenario produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Unreferenced {
    /// Say nothing.
    Ignore,
    /// List them (the default).
    #[default]
    Warn,
    /// List them and exit 3 when there are any (for CI).
    Reject,
    /// Remove them.
    Delete,
}

/// One answer at the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Accept,
    Reject,
    Skip,
    Quit,
}

fn choice_of(c: char) -> Option<Choice> {
    match c.to_ascii_lowercase() {
        'a' => Some(Choice::Accept),
        'r' => Some(Choice::Reject),
        's' | ' ' => Some(Choice::Skip),
        'q' => Some(Choice::Quit),
        _ => None,
    }
}

/// Reads one choice: a key press on a terminal, else a line of stdin. `None` at end of input.
fn read_choice() -> Option<Choice> {
    let term = console::Term::stdout();
    if console::user_attended() && term.is_term() {
        loop {
            match term.read_key() {
                Ok(console::Key::Char(c)) => {
                    if let Some(ch) = choice_of(c) {
                        output::out_line(&c.to_string());
                        return Some(ch);
                    }
                }
                Ok(console::Key::Escape) => return Some(Choice::Quit),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                if let Some(ch) = line.trim().chars().next().and_then(choice_of) {
                    return Some(ch);
                }
                output::out("  a accept · r reject · s skip · q quit: ");
            }
        }
    }
}

/// Golden directories whose scenario directory is gone, sorted.
pub fn unreferenced(repo: &Path) -> Vec<PathBuf> {
    let scenarios: std::collections::BTreeSet<String> = crate::conformance::discover(repo).into_iter().collect();
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo.join("golden"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .filter(|e| !e.file_name().to_str().is_some_and(|n| scenarios.contains(n)))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn rel(repo: &Path, p: &Path) -> String {
    p.strip_prefix(repo).unwrap_or(p).display().to_string()
}

/// `sgsim review [FILTER] [--unreferenced …]`; returns the exit code.
pub fn cmd_review(filter: Option<&str>, unref: Unreferenced) -> i32 {
    let repo = crate::input::repo_root();
    let golden = repo.join("golden");
    let color = output::color_stdout();
    let bold = |s: String| {
        if color {
            console::Style::new().bold().force_styling(true).apply_to(s).to_string()
        } else {
            s
        }
    };
    let files: Vec<PathBuf> = golden_store::pending(&golden)
        .into_iter()
        .filter(|p| {
            filter.is_none_or(|f| {
                p.strip_prefix(&golden)
                    .ok()
                    .and_then(|r| r.components().next())
                    .is_some_and(|c| c.as_os_str().to_string_lossy().contains(f))
            })
        })
        .collect();
    let (mut accepted, mut rejected, mut skipped) = (0usize, 0usize, 0usize);
    let total = files.len();
    for (i, pending) in files.iter().enumerate() {
        let target = golden_store::golden_of(pending);
        let name = rel(&golden, &target);
        let old = std::fs::read_to_string(&target).ok();
        let new = match std::fs::read_to_string(pending) {
            Ok(t) => t,
            Err(e) => {
                output::err_line(&format!("error: reading {}: {e}", pending.display()));
                return exit::INFRASTRUCTURE;
            }
        };
        let what = if old.is_none() { " (new file)" } else { "" };
        output::out_line(&bold(format!("[{}/{total}] golden/{name}{what}", i + 1)));
        output::out(&sgsim_core::golden::compare(&name, old.as_deref(), &new).render(color));
        output::out("  a accept · r reject · s skip · q quit: ");
        let choice = read_choice();
        let result = match choice {
            Some(Choice::Accept) => golden_store::accept_one(pending).map(|_| {
                accepted += 1;
                output::out_line(&format!("  accepted golden/{name}"));
            }),
            Some(Choice::Reject) => golden_store::reject_one(pending).map(|()| {
                rejected += 1;
                output::out_line(&format!("  rejected: golden/{name} stays, the pending file is removed"));
            }),
            Some(Choice::Skip) => {
                skipped += 1;
                output::out_line("  skipped");
                Ok(())
            }
            Some(Choice::Quit) | None => {
                if choice.is_none() {
                    output::out_line("");
                }
                skipped += total - i;
                break;
            }
        };
        if let Err(e) = result {
            output::err_line(&format!("error: {e}"));
            return exit::INFRASTRUCTURE;
        }
    }
    if total == 0 {
        output::out_line("no pending golden files");
    } else {
        output::out_line(&format!(
            "review done: {accepted} accepted, {rejected} rejected, {skipped} skipped"
        ));
    }
    let orphans = unreferenced(&repo);
    match unref {
        Unreferenced::Ignore => {}
        _ if orphans.is_empty() => {}
        Unreferenced::Delete => {
            for dir in &orphans {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    output::err_line(&format!("error: removing {}: {e}", dir.display()));
                    return exit::INFRASTRUCTURE;
                }
                output::out_line(&format!("removed unreferenced {}", rel(&repo, dir)));
            }
        }
        Unreferenced::Warn | Unreferenced::Reject => {
            for dir in &orphans {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                output::out_line(&format!(
                    "unreferenced: {} (no scenario scenarios/{name}); remove with --unreferenced=delete",
                    rel(&repo, dir)
                ));
            }
            if unref == Unreferenced::Reject {
                return exit::MISMATCH;
            }
        }
    }
    exit::OK
}
