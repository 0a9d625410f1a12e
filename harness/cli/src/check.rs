//! The one run → verdict path: a loaded scenario runs on a [`Runtime`], its outcome is held against
//! `expect:` and its golden files against `golden/<scenario>/`. `sgsim run` (both runtimes) and both
//! conformance suites call [`run_and_check`]; they differ only in how they show the [`Verdict`].

use std::path::Path;

use sgsim_cluster::runner::RunEvent;
use sgsim_cluster::runtime::{RunOutput, RunSettings, Runtime, RuntimeError};
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
                // A run whose outcome is not the expected one never becomes the golden: blessing
                // it would record a failure (an image pull that failed, say) as the truth.
                let refused = mode == BlessMode::Always && !mismatches.is_empty();
                let mode = if refused { BlessMode::Pending } else { mode };
                let mut report = golden_store::check(dir, &files, mode)?;
                if refused {
                    report.check_only = Some(
                        "not blessed: the outcome differs from the scenario's expect: (see below); the actual files \
                         are pending as *.new for review"
                            .into(),
                    );
                }
                Some(report)
            } else {
                let mut report =
                    golden_store::check_with(dir, &runtime.compared(sc, files), BlessMode::Never, &|name, text| {
                        runtime.canonical(name, text)
                    })?;
                report.stale.clear();
                report.check_only = Some(runtime.compare_only_note().into());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use futures::future::BoxFuture;
    use sgsim_cluster::runtime::Sink;
    use sgsim_core::record::{Outcome, RunRecord, StepRecord};

    use super::*;

    /// A runtime that "runs" every scenario to the same record.
    struct Canned(Outcome);

    impl Runtime for Canned {
        fn name(&self) -> &'static str {
            "canned"
        }
        fn writes_goldens(&self) -> bool {
            true
        }
        fn run<'a>(
            &'a self,
            _: &'a Scenario,
            _: &'a RunSettings,
            _: Sink<'a>,
        ) -> BoxFuture<'a, Result<RunOutput, RuntimeError>> {
            let step = StepRecord {
                id: "run1".into(),
                name: "run1".into(),
                container: Some("step-run1".into()),
                status: self.0,
                exit_code: Some(if self.0 == Outcome::Success { 0 } else { 1 }),
                error: None,
                outputs: BTreeMap::new(),
                log: "hi\n".into(),
                background: false,
                took: Duration::ZERO,
                attempts: 1,
                strategy: None,
                reports: BTreeMap::new(),
                image: None,
            };
            let record = RunRecord {
                pod: None,
                initialize: Vec::new(),
                steps: vec![step],
                status: self.0,
                error: None,
                node: None,
            };
            Box::pin(async move {
                Ok(RunOutput {
                    record,
                    images: Vec::new(),
                })
            })
        }
        fn shutdown(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    const SCENARIO: &str = "name: canned
pipeline:
  pipeline:
    identifier: p
    name: p
    stages:
      - stage:
          identifier: s
          name: s
          type: Custom
          spec:
            execution:
              steps:
                - stepGroup:
                    identifier: sg
                    name: sg
                    stepGroupInfra:
                      type: KubernetesDirect
                      spec: {connectorRef: k8s, namespace: ns1}
                    steps:
                      - step: {identifier: run1, name: run1, type: Run, spec: {image: alpine, command: echo hi}}
fixtures:
  namespaces: [ns1]
  connectors: [{identifier: k8s, type: KubernetesCluster}]
expect:
  status: Success
";

    fn golden_dir(test: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sgsim-check-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn bless_refuses_a_run_whose_outcome_is_not_the_expected_one() {
        let sc = sgsim_core::load("scenario.yaml", SCENARIO, &sgsim_core::no_files).unwrap();
        let dir = golden_dir("refuse");
        let v = run_and_check(
            Ok(&sc),
            &Canned(Outcome::Failed),
            Some(&dir),
            BlessMode::Always,
            &RunSettings::default(),
            &|_| {},
        )
        .await
        .unwrap();
        assert!(!v.passed());
        assert_eq!(v.mismatches, ["the step group ended Failed but Success was expected"]);
        let g = v.golden.as_ref().unwrap();
        assert!(g.written.is_empty(), "{:?}", g.written);
        assert!(!dir.join("result.yaml").exists(), "a failed run was blessed");
        assert!(
            dir.join("result.yaml.new").exists(),
            "the actual files are pending for review"
        );
        assert!(
            v.failure_text("canned", false)
                .contains("not blessed: the outcome differs")
        );

        // The expected outcome is blessed.
        let v = run_and_check(
            Ok(&sc),
            &Canned(Outcome::Success),
            Some(&dir),
            BlessMode::Always,
            &RunSettings::default(),
            &|_| {},
        )
        .await
        .unwrap();
        assert!(v.passed(), "{}", v.failure_text("canned", false));
        assert!(
            std::fs::read_to_string(dir.join("result.yaml"))
                .unwrap()
                .contains("status: Success")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
