//! How a run is judged: its outcome against the scenario's `expect:`, and the golden files it
//! produces (pod.yaml, initialize.log, steps/<id>.log, result.yaml, or error.txt for an invalid
//! input), normalized and with secrets masked. Reading and writing golden files is the caller's
//! (this crate does no IO); comparing texts is [`crate::golden`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::initialize;
use crate::normalize;
use crate::record::{Outcome, RunRecord};
use crate::scenario::ExpectedStatus;
use crate::{Scenario, ScenarioError};

/// A golden file set could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    /// pod.yaml or result.yaml could not be serialized.
    #[error("cannot serialize {0}")]
    Serialize(String),
}

/// The differences between a run and its scenario's expectations (empty: as expected).
pub fn expectation_mismatches(sc: &Scenario, rec: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let want = match sc.expect().status {
        ExpectedStatus::Success => Outcome::Success,
        ExpectedStatus::Failed => Outcome::Failed,
        ExpectedStatus::Skipped => Outcome::Skipped,
    };
    // An expected `Failed` also admits the product's other failed statuses (Expired, Aborted,
    // IgnoreFailed for a step); result.yaml holds the exact status.
    let admits = |want: Outcome, got: Outcome| {
        got == want
            || (want == Outcome::Failed && matches!(got, Outcome::Timeout | Outcome::Aborted | Outcome::IgnoreFailed))
    };
    if !admits(want, rec.status) {
        let why = rec.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        out.push(format!(
            "the step group ended {} but {} was expected{why}",
            rec.status.as_str(),
            want.as_str()
        ));
    }
    for (id, exp) in &sc.expect().steps {
        let Some(step) = rec.steps.iter().find(|s| &s.id == id) else {
            out.push(format!("step {id} is expected but did not exist"));
            continue;
        };
        if let Some(st) = exp.status {
            let want = match st {
                ExpectedStatus::Success => Outcome::Success,
                ExpectedStatus::Failed => Outcome::Failed,
                ExpectedStatus::Skipped => Outcome::Skipped,
            };
            if !admits(want, step.status) {
                out.push(format!(
                    "step {id} ended {} but {} was expected",
                    step.status.as_str(),
                    want.as_str()
                ));
            }
        }
        if let Some(code) = exp.exit_code
            && step.exit_code != Some(code)
        {
            out.push(format!(
                "step {id} exited with {:?} but {code} was expected",
                step.exit_code
            ));
        }
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultFile {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    steps: Vec<StepResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepResult {
    id: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    outputs: BTreeMap<String, String>,
    /// Executions (shown when a failure strategy retried the step).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    /// The failure strategy applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_strategy: Option<String>,
    /// reportPaths files collected: path → content.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    reports: BTreeMap<String, String>,
    /// The image the step's container ran as.
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageResult>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageResult {
    requested: String,
    ran_as: String,
    source: String,
}

/// The golden files of a run: pod.yaml, initialize.log, steps/<id>.log (not for Background
/// steps, whose log is live service output), result.yaml. All normalized, secrets masked.
pub fn golden_files(scenario: &Scenario, rec: &RunRecord) -> Result<BTreeMap<String, String>, VerdictError> {
    let secrets = &scenario.secrets;
    let mut files = BTreeMap::new();
    if let Some(pod) = &rec.pod {
        let y = normalize::pod_yaml(pod, secrets).map_err(|e| VerdictError::Serialize(format!("pod.yaml: {e}")))?;
        files.insert("pod.yaml".to_string(), y);
    }
    let init = initialize::format_log(&rec.initialize);
    files.insert("initialize.log".to_string(), normalize::normalize_log(&init, secrets));
    for s in &rec.steps {
        if s.background || s.status == Outcome::Skipped {
            continue;
        }
        files.insert(format!("steps/{}.log", s.id), normalize::normalize_log(&s.log, secrets));
    }
    let result = ResultFile {
        status: rec.status.as_str().to_string(),
        node: rec.node.clone(),
        error: rec.error.as_ref().map(|e| normalize::normalize_log(e, secrets)),
        steps: rec
            .steps
            .iter()
            .map(|s| StepResult {
                id: s.id.clone(),
                status: s.status.as_str().to_string(),
                exit_code: s.exit_code,
                error: s.error.as_ref().map(|e| normalize::normalize_log(e, secrets)),
                outputs: s
                    .outputs
                    .iter()
                    .map(|(k, v)| (k.clone(), normalize::mask_secrets(v, secrets)))
                    .collect(),
                attempts: (s.attempts > 1).then_some(s.attempts),
                failure_strategy: s.strategy.clone(),
                reports: s
                    .reports
                    .iter()
                    .map(|(k, v)| (k.clone(), normalize::normalize_log(v, secrets)))
                    .collect(),
                image: s.image.as_ref().map(|i| ImageResult {
                    requested: i.requested.clone(),
                    ran_as: i.ran_as.clone(),
                    source: i.source.clone(),
                }),
            })
            .collect(),
    };
    let y = serde_saphyr::to_string(&result).map_err(|e| VerdictError::Serialize(format!("result.yaml: {e}")))?;
    files.insert("result.yaml".to_string(), y);
    Ok(files)
}

/// The golden file of an invalid input: `error.txt`, every diagnostic as
/// `path:line:col: message` with its source line.
pub fn error_files(err: &ScenarioError) -> BTreeMap<String, String> {
    BTreeMap::from([("error.txt".to_string(), err.diagnostics().render_plain())])
}

/// What the fake runtime tier compares with the goldens (they are blessed on the Docker tier).
pub const FAKE_COMPARED: &str = "pod.yaml, initialize.log, result.yaml and the step logs given as fake data";

/// The part of a run's golden files the fake runtime tier can reproduce: everything but the logs of
/// steps whose `fake:` data prints nothing.
pub fn fake_compared(scenario: &Scenario, mut files: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let logged: Vec<String> = scenario
        .header
        .fake
        .steps
        .iter()
        .filter(|(_, s)| s.attempts.iter().any(|a| !a.log.is_empty()))
        .map(|(id, _)| format!("steps/{id}.log"))
        .collect();
    files.retain(|name, _| !name.starts_with("steps/") || logged.contains(name));
    files
}
