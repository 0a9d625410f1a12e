//! The fuzz targets: what each feeds an input to, and the properties it checks.

use std::path::Path;

pub mod apiserver;
pub mod normalize;
pub mod scenario;

/// What one input did: a signature of its outcome (new ones grow the corpus), or a broken property.
pub type Exec = Result<u64, String>;

/// A fuzz target.
pub trait Target {
    /// The name used on the command line and for finding directories.
    fn name(&self) -> &'static str;
    /// The seed corpus.
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Tokens the mutator inserts.
    fn dict(&self) -> &'static [&'static str];
    /// Runs one input and checks the target's properties (a panic is caught by the driver).
    fn exec(&mut self, input: &[u8]) -> Exec;
}

/// Every target's name.
pub const NAMES: &[&str] = &["scenario", "normalize", "apiserver"];

/// The target called `name`, seeded from the repository at `repo`.
pub fn by_name(name: &str, repo: &Path) -> Option<Box<dyn Target>> {
    match name {
        "scenario" => Some(Box::new(scenario::ScenarioTarget::new(repo))),
        "normalize" => Some(Box::new(normalize::NormalizeTarget::new(repo))),
        "apiserver" => Some(Box::new(apiserver::ApiServerTarget::new(repo))),
        _ => None,
    }
}

/// Files under `dir` (recursively) whose name satisfies `keep`, sorted, as bytes.
pub(crate) fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p)
                && let Ok(b) = std::fs::read(&p)
            {
                out.push((p, b));
            }
        }
    }
    out.sort();
    out
}
