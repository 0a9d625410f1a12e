//! Scenario format v1 (`scenarios/<name>/scenario.yaml`) and bare pipeline files: loading,
//! validation, fixtures. See docs/scenarios.md.
//!
//! Core does no IO: the caller hands in the text of the file and a [`SourceLoader`] that returns
//! the text of files the scenario references (paths as written, relative to the scenario's
//! directory).

mod bare;
mod expect;
mod fixtures;
mod header;
mod k8s_objects;
mod loader;
mod rbac;
mod unmodelled;

use crate::diag::Diagnostics;
use crate::model::{Pipeline, StageInfo, StepGroup};

pub use crate::defaults::{DEFAULT_ACCOUNT_ID, DEFAULT_HARNESS_IMAGE_CONNECTOR, KNOWN_FEATURE_FLAGS};
pub use header::{
    Connector, DataObject, Expect, ExpectedStatus, FakeAttempt, FakeSpec, FakeStep, Fixtures, NamedObject, NodeFixture,
    PriorityClassFixture, RegistryFixture, ScenarioHeader, StepExpect, TaintFixture,
};
pub use k8s_objects::FixtureObjects;

/// Why a file a scenario references could not be read: a human-readable reason, shown as is
/// after ``cannot read pipeline file `<path>`: ``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SourceError {
    /// The reason.
    pub reason: String,
}

impl From<String> for SourceError {
    fn from(reason: String) -> Self {
        SourceError { reason }
    }
}

impl From<&str> for SourceError {
    fn from(reason: &str) -> Self {
        SourceError {
            reason: reason.to_string(),
        }
    }
}

impl From<std::io::Error> for SourceError {
    fn from(e: std::io::Error) -> Self {
        SourceError { reason: e.to_string() }
    }
}

/// Loads files referenced by a scenario. `path` is as written in scenario.yaml (relative to the
/// scenario directory).
pub trait SourceLoader {
    /// The file's text (lossy UTF-8 is fine).
    fn load(&self, path: &str) -> Result<String, SourceError>;
}

/// Any function from a path to the file's text or a reason (a `String`, an [`std::io::Error`], a
/// [`SourceError`]) is a loader.
impl<F, E> SourceLoader for F
where
    F: Fn(&str) -> Result<String, E>,
    E: Into<SourceError>,
{
    fn load(&self, path: &str) -> Result<String, SourceError> {
        self(path).map_err(Into::into)
    }
}

/// A loader for inputs that reference no file (bare pipelines, inline pipelines).
pub fn no_files(path: &str) -> Result<String, SourceError> {
    Err(format!("no file loader available for `{path}`").into())
}

/// Errors of [`load`].
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario or its pipeline is invalid; `header` holds what could be read of
    /// scenario.yaml (so `expect.error` can still be checked).
    #[error("{diagnostics}")]
    Invalid {
        /// The scenario header, when scenario.yaml itself was readable.
        header: Option<Box<ScenarioHeader>>,
        /// Every error (and warning) found.
        diagnostics: Diagnostics,
    },
}

impl ScenarioError {
    /// The diagnostics.
    pub fn diagnostics(&self) -> &Diagnostics {
        match self {
            ScenarioError::Invalid { diagnostics, .. } => diagnostics,
        }
    }
    /// The header, if scenario.yaml was readable.
    pub fn header(&self) -> Option<&ScenarioHeader> {
        match self {
            ScenarioError::Invalid { header, .. } => header.as_deref(),
        }
    }
    /// Whether the scenario expected exactly this failure (`expect.error` is a substring of
    /// one of the error lines).
    pub fn is_expected(&self) -> bool {
        self.header()
            .is_some_and(|h| h.expect.matches_error(self.diagnostics()))
    }
}

impl miette::Diagnostic for ScenarioError {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        miette::Diagnostic::related(self.diagnostics())
    }
}

/// The scenario-level data (everything but the pipeline).
/// A loaded, valid scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Scenario data.
    pub header: ScenarioHeader,
    /// Path of the pipeline file as shown in messages.
    pub pipeline_path: String,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The stage holding the selected step group.
    pub stage: StageInfo,
    /// The selected containerized step group.
    pub step_group: StepGroup,
    /// Every harness secret value, to mask in logs (those the step group uses first, in order of
    /// use, then the other values of fixtures.harnessSecrets).
    pub secrets: Vec<String>,
    /// Warnings (e.g. namespace not in fixtures).
    pub warnings: Diagnostics,
}

impl Scenario {
    /// Seed.
    pub fn seed(&self) -> u64 {
        self.header.seed
    }
    /// Fixtures.
    pub fn fixtures(&self) -> &Fixtures {
        &self.header.fixtures
    }
    /// Expected outcome.
    pub fn expect(&self) -> &Expect {
        &self.header.expect
    }
    /// The step group's namespace.
    pub fn namespace(&self) -> &str {
        &self.step_group.infra.namespace
    }
    /// A connector by identifier.
    pub fn connector(&self, identifier: &str) -> Option<&Connector> {
        self.header
            .fixtures
            .connectors
            .iter()
            .find(|c| c.identifier == identifier)
    }
}

/// Overrides for [`load_with_options`] (e.g. from CLI flags).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Select this step group (`group` or `stage.group`), overriding scenario.yaml's `stepGroup`;
    /// the only way to choose one in a bare pipeline with several.
    pub step_group: Option<String>,
    /// Use this seed instead of scenario.yaml's.
    pub seed: Option<u64>,
    /// Run a step group template under this identifier: the one it has in the customer's pipeline,
    /// so `<+execution.steps.<identifier>.…>` expressions in it resolve. Only for template files.
    pub identifier: Option<String>,
    /// Values of runtime inputs (`<+input>`), by field path, for a bare pipeline (`sgsim repro
    /// --inputs`); a scenario.yaml gives them under `fixtures.inputs`.
    pub inputs: Vec<(String, crate::yaml::Node)>,
}

/// Load a scenario.yaml or a bare pipeline YAML. `path` is the file's path as shown in
/// messages; `text` its content; `loader` returns referenced files (paths as written).
pub fn load(path: &str, text: &str, loader: &dyn SourceLoader) -> Result<Scenario, ScenarioError> {
    load_with_options(path, text, loader, &LoadOptions::default())
}

/// [`load`] with overrides.
pub fn load_with_options(
    path: &str,
    text: &str,
    loader: &dyn SourceLoader,
    opts: &LoadOptions,
) -> Result<Scenario, ScenarioError> {
    let mut r = loader::load_inner(path, text, loader, opts);
    if let (Some(seed), Ok(s)) = (opts.seed, &mut r) {
        s.header.seed = seed;
    }
    r
}
