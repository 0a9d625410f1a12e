//! The driver: mutate, run under `catch_unwind`, check properties, grow the corpus on new outcome
//! signatures, save findings.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fnv64;
use crate::mutate::Mutator;
use crate::targets::Target;

/// The largest corpus kept per target.
const MAX_CORPUS: usize = 20_000;

/// How a target is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mutated inputs to run (the seeds run first, on top).
    pub runs: u64,
    /// Seed of the mutation engine.
    pub seed: u64,
    /// Where findings are written (`<out>/<target>/finding-<hash>.input` and `.txt`).
    pub out: PathBuf,
    /// Stop after this many distinct findings.
    pub max_findings: usize,
}

/// A broken property or a panic, and the file holding the input.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What went wrong.
    pub message: String,
    /// The saved input.
    pub file: PathBuf,
}

/// The result of fuzzing one target.
#[derive(Debug, Default)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Inputs run (seeds included).
    pub runs: u64,
    /// Corpus size at the end.
    pub corpus: usize,
    /// Distinct outcome signatures seen.
    pub signatures: usize,
    /// Distinct findings.
    pub findings: Vec<Finding>,
    /// Wall time.
    pub elapsed: Duration,
}

thread_local! {
    /// The message of the last panic on this thread (the quiet hook writes it). The API server
    /// target's tasks run on the thread that drives its current-thread runtime, so their panics
    /// land here too.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook by one that records the message instead of printing it (a panic is
/// a finding, reported once with its input).
pub fn install_quiet_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|slot| *slot.borrow_mut() = Some(format!("panicked: {msg}{at}")));
    }));
}

fn take_panic() -> Option<String> {
    LAST_PANIC.with(|slot| slot.borrow_mut().take())
}

/// Runs `input` on `target`: `Ok(signature)` or the finding's message.
pub fn exec_one(target: &mut dyn Target, input: &[u8]) -> Result<u64, String> {
    let _ = take_panic();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| target.exec(input)));
    let panicked = take_panic();
    match (r, panicked) {
        (Err(_), p) => Err(p.unwrap_or_else(|| "panicked".into())),
        (Ok(_), Some(p)) => Err(format!("a spawned task {p}")),
        (Ok(r), None) => r,
    }
}

/// Fuzzes `target`; `progress` is called about every second.
pub fn run(target: &mut dyn Target, opts: &Options, progress: &mut dyn FnMut(&Report)) -> Report {
    let start = Instant::now();
    let mut rep = Report {
        target: target.name(),
        ..Report::default()
    };
    let mut corpus = target.seeds();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut sigs = HashSet::new();
    let mut seen_findings = HashSet::new();
    let mut mutator = Mutator::new(opts.seed, target.dict());
    let mut last = Instant::now();
    let seeds = corpus.clone();
    let mut next_seed = seeds.iter();
    let mut i = 0u64;
    while i < opts.runs + seeds.len() as u64 {
        let input = match next_seed.next() {
            Some(s) => s.clone(),
            None => {
                let a = mutator.below(corpus.len());
                let b = mutator.below(corpus.len());
                mutator.mutate(&corpus[a], &corpus[b])
            }
        };
        i += 1;
        rep.runs = i;
        match exec_one(target, &input) {
            Ok(sig) => {
                if sigs.insert(sig) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(message) => {
                // Distinct by the message's shape (digits dropped).
                let key: String = message.chars().filter(|c| !c.is_ascii_digit()).take(160).collect();
                if seen_findings.insert(key) {
                    let file = save(&opts.out, rep.target, &input, &message);
                    rep.findings.push(Finding { message, file });
                    if rep.findings.len() >= opts.max_findings {
                        break;
                    }
                }
            }
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            rep.corpus = corpus.len();
            rep.signatures = sigs.len();
            rep.elapsed = start.elapsed();
            progress(&rep);
        }
    }
    rep.corpus = corpus.len();
    rep.signatures = sigs.len();
    rep.elapsed = start.elapsed();
    rep
}

/// Writes a finding's input and message; the path of the input (empty when writing failed: the
/// message is still reported).
fn save(out: &Path, target: &str, input: &[u8], message: &str) -> PathBuf {
    let dir = out.join(target);
    let base = dir.join(format!("finding-{:016x}", fnv64(input)));
    let input_path = base.with_extension("input");
    let ok = std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(&input_path, input).is_ok()
        && std::fs::write(base.with_extension("txt"), message).is_ok();
    if ok { input_path } else { PathBuf::new() }
}
