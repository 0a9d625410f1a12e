//! Reading what the user points sgsim at: a scenario directory, a scenario.yaml or a bare pipeline
//! YAML. Core is pure; this is where files are read.

use std::path::{Path, PathBuf};

use sgsim_core::{Scenario, ScenarioError};

/// A loaded input: the scenario (or why it is invalid) and where it came from.
#[derive(Debug)]
pub struct Input {
    /// The file that was read (scenario.yaml or the pipeline), as shown in messages.
    pub shown: String,
    /// The directory of that file.
    pub dir: PathBuf,
    /// The scenario, or its diagnostics.
    pub scenario: Result<Scenario, ScenarioError>,
}

/// Errors before core sees anything.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path does not exist or cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A directory without scenario.yaml.
    #[error("{0}: not a scenario directory (no scenario.yaml in it)")]
    NotScenarioDir(String),
}

/// The file to read for `arg`: `arg/scenario.yaml` for a directory, else `arg`.
pub fn resolve(arg: &Path) -> Result<PathBuf, InputError> {
    if arg.is_dir() {
        let f = arg.join("scenario.yaml");
        if f.is_file() {
            return Ok(f);
        }
        return Err(InputError::NotScenarioDir(arg.display().to_string()));
    }
    Ok(arg.to_path_buf())
}

/// Reads and validates the input at `arg` (a scenario dir, scenario.yaml or a pipeline); paths
/// appear in messages as given (relative paths stay relative).
pub fn load(arg: &Path, opts: &sgsim_core::scenario::LoadOptions) -> Result<Input, InputError> {
    load_in(Path::new(""), arg, opts)
}

/// Like [`load`] for `base/arg`, but messages show the path as `arg` (so goldens do not depend on
/// where the repository is checked out).
pub fn load_in(base: &Path, arg: &Path, opts: &sgsim_core::scenario::LoadOptions) -> Result<Input, InputError> {
    let rel = resolve(&base.join(arg))?;
    let shown_path = rel.strip_prefix(base).unwrap_or(&rel).to_path_buf();
    let shown = shown_path.display().to_string();
    let file = rel;
    let bytes = std::fs::read(&file).map_err(|source| InputError::Read {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let loader_dir = dir.clone();
    let loader = move |rel: &str| -> Result<String, String> {
        let p = loader_dir.join(rel);
        std::fs::read(&p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| e.to_string())
    };
    let scenario = sgsim_core::scenario::load_with_options(&shown, &text, &loader, opts);
    Ok(Input { shown, dir, scenario })
}

/// The repository root: `SGSIM_REPO`, else the nearest ancestor of the current directory holding
/// `scripts/build-images.sh`, else the source tree this binary was built from.
pub fn repo_root() -> PathBuf {
    if let Some(p) = std::env::var_os("SGSIM_REPO") {
        return PathBuf::from(p);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("scripts/build-images.sh").is_file() {
                return dir.to_path_buf();
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}
