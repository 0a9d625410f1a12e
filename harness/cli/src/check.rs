//! The one run → verdict path: a loaded scenario runs on a [`Runtime`], its outcome is held against
//! `expect:` and its golden files against `golden/<scenario>/`. `sgsim run` (both runtimes) and both
//! conformance suites call [`run_and_check`]; they differ only in how they show the [`Verdict`].

use std::path::Path;

use sgsim_cluster::runner::RunEvent;
use sgsim_cluster::runtime::{RunOutput, RunSettings, Runtime, RuntimeError, StepImage};
use sgsim_core::verdict::{self, VerdictError};
use sgsim_core::{Scenario, ScenarioError};

use crate::golden_store::{self, BlessMode, GoldenError, GoldenReport};

/// Why a scenario could not be judged at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The scenario is invalid and does not expect to be (the diagnostics, rendered).
    #[error("the scenario is invalid:\n{0}")]
    Invalid(String),
    /// The scenario expects a validation error, but it validated.
    #[error("the scenario expects the error `{0}`, but it validated")]
    ExpectedError(String),
    /// The runtime failed (Docker, cluster, lite-engine).
    #[error("{}", .0.chain())]
    Runtime(#[from] RuntimeError),
    /// The run's golden files could not be produced.
    #[error(transparent)]
    Verdict(#[from] VerdictError),
    /// The golden store could not be read or written.
    #[error(transparent)]
    Golden(#[from] GoldenError),
}

/// How one scenario fared.
#[derive(Debug, Default)]
pub struct Verdict {
    /// What the runtime gave back (`None` for an input that is invalid, as expected).
    pub output: Option<RunOutput>,
    /// The differences between the outcome and `expect:` (empty: as expected).
    pub mismatches: Vec<String>,
    /// The golden comparison (`None` when there is no golden directory to compare with).
    pub golden: Option<GoldenReport>,
}

impl Verdict {
    /// Whether the outcome is the expected one and the goldens match.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.golden.as_ref().is_none_or(GoldenReport::ok)
    }

    /// The failure text of a conformance trial: the golden diff and every unexpected outcome.
    pub fn failure_text(&self, scenario: &str, color: bool) -> String {
        let mut out = String::new();
        if let Some(g) = self.golden.as_ref().filter(|g| !g.ok()) {
            out.push_str(&g.render(scenario, color));
        }
        for m in &self.mismatches {
            out.push_str(&format!("unexpected outcome: {m}\n"));
        }
        out
    }

    /// The images the steps ran as.
    pub fn images(&self) -> &[StepImage] {
        self.output.as_ref().map(|o| o.images.as_slice()).unwrap_or_default()
    }
}

/// Runs a loaded scenario (or checks the expected validation error of an invalid one) and judges
/// it. A runtime that may not write goldens (the fake tier) compares only what it reproduces and
/// never writes, whatever `mode` says.
pub async fn run_and_check(
    input: Result<&Scenario, &ScenarioError>,
    runtime: &dyn Runtime,
    golden_dir: Option<&Path>,
    mode: BlessMode,
    settings: &RunSettings,
    sink: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<Verdict, CheckError> {
    let sc = match input {
        Err(e) if e.is_expected() => {
            let golden = match golden_dir {
                Some(dir) => Some(golden_store::check(dir, &verdict::error_files(e), mode)?),
                None => None,
            };
            return Ok(Verdict {
                output: None,
                mismatches: Vec::new(),
                golden,
            });
        }
        Err(e) => return Err(CheckError::Invalid(e.diagnostics().render_plain())),
        Ok(sc) => sc,
    };
    if let Some(err) = &sc.expect().error {
        return Err(CheckError::ExpectedError(err.clone()));
    }
    let output = runtime.run(sc, settings, sink).await?;
    let mismatches = verdict::expectation_mismatches(sc, &output.record);
    let golden = match golden_dir {
        None => None,
        Some(dir) => {
            let files = verdict::golden_files(sc, &output.record)?;
            if runtime.writes_goldens() {
                Some(golden_store::check(dir, &files, mode)?)
            } else {
                let mut report = golden_store::check(dir, &runtime.compared(sc, files), BlessMode::Never)?;
                report.stale.clear();
                report.check_only = Some(
                    "the fake runtime never writes goldens (they come from real runs): fix the scenario's fake: data, \
                     or re-bless on the Docker runtime"
                        .into(),
                );
                Some(report)
            }
        }
    };
    Ok(Verdict {
        output: Some(output),
        mismatches,
        golden,
    })
}
