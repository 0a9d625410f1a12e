//! Failure strategies (`failureStrategies: - onFailure: {errors, action}`) and `when` as the
//! product applies them to a step of a containerized step group.
//!
//! - The first strategy whose `errors` contain `AllErrors` or the failure's type wins; the step's
//!   own list is searched first, then the step group's, then the stage's (the product's
//!   step → group → stage precedence). No match: the step fails and the group fails.
//! - Failure types: a command that exits non-zero (or cannot start) is `Unknown` in the
//!   product's error taxonomy; a step killed by its `timeout` is `Timeout`.
//! - `ManualIntervention` has nobody to answer it in sgsim: its `onTimeout` action applies at once
//!   (what the YAML says; `MarkAsFailure` when it says nothing usable). The result records both.
//! - `Retry` runs the step again `retryCount` times at most, waiting `retryIntervals[n-1]` (the
//!   last interval repeats), then applies `onRetryFailure`.

use std::time::Duration;

/// What kind of failure happened (the product's `errors` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureType {
    /// Non-zero exit, cannot start, ... (`Unknown`).
    Unknown,
    /// Step timeout (`Timeout`).
    Timeout,
}

impl FailureType {
    fn name(self) -> &'static str {
        match self {
            FailureType::Unknown => "Unknown",
            FailureType::Timeout => "Timeout",
        }
    }
}

/// An action of a failure strategy.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Ignore the failure (step IgnoreFailed, execution continues).
    Ignore,
    /// Mark the step as succeeded.
    MarkAsSuccess,
    /// Abort the execution.
    Abort,
    /// Roll back the stage (sgsim: the group fails, its remaining steps are skipped).
    StageRollback,
    /// Roll back the step group (as StageRollback in sgsim).
    StepGroupRollback,
    /// Fail (the default when nothing matches).
    MarkAsFailure,
    /// Run the step again.
    Retry {
        /// How many more times.
        count: u32,
        /// Waits between attempts (the last one repeats).
        intervals: Vec<Duration>,
        /// What to do when every attempt failed.
        on_retry_failure: Box<Action>,
    },
    /// Manual intervention: nobody answers, so `on_timeout` applies.
    ManualIntervention {
        /// The action after the intervention's timeout.
        on_timeout: Box<Action>,
    },
}

impl Action {
    /// The name as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ignore => "Ignore",
            Action::MarkAsSuccess => "MarkAsSuccess",
            Action::Abort => "Abort",
            Action::StageRollback => "StageRollback",
            Action::StepGroupRollback => "StepGroupRollback",
            Action::MarkAsFailure => "MarkAsFailure",
            Action::Retry { .. } => "Retry",
            Action::ManualIntervention { .. } => "ManualIntervention",
        }
    }
}

/// Where a matching strategy was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// On the step.
    Step,
    /// On the step group.
    StepGroup,
    /// On the stage.
    Stage,
}

/// A strategy that applies to a failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// Its action.
    pub action: Action,
    /// Where it was declared.
    pub level: Level,
}

/// The action for a failure of `ty`, searching step, group, then stage strategies (raw JSON).
/// Malformed entries are skipped (the product's schema validation would have rejected them).
pub fn choose(
    ty: FailureType,
    step: Option<&serde_json::Value>,
    group: Option<&serde_json::Value>,
    stage: Option<&serde_json::Value>,
) -> Option<Chosen> {
    for (level, list) in [(Level::Step, step), (Level::StepGroup, group), (Level::Stage, stage)] {
        let Some(items) = list.and_then(|l| l.as_array()) else {
            continue;
        };
        for it in items {
            let Some(on) = it.get("onFailure") else {
                continue;
            };
            let errors: Vec<&str> = on
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if !errors.iter().any(|e| *e == "AllErrors" || *e == ty.name()) {
                continue;
            }
            if let Some(action) = on.get("action").and_then(parse_action) {
                return Some(Chosen { action, level });
            }
        }
    }
    None
}

fn parse_action(a: &serde_json::Value) -> Option<Action> {
    let spec = a.get("spec");
    Some(match a.get("type")?.as_str()? {
        "Ignore" => Action::Ignore,
        "MarkAsSuccess" => Action::MarkAsSuccess,
        "Abort" => Action::Abort,
        "StageRollback" => Action::StageRollback,
        "StepGroupRollback" => Action::StepGroupRollback,
        "MarkAsFailure" => Action::MarkAsFailure,
        "Retry" => {
            let count = spec
                .and_then(|s| s.get("retryCount"))
                .and_then(number)
                .unwrap_or(1)
                .min(100) as u32;
            let intervals = spec
                .and_then(|s| s.get("retryIntervals"))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().and_then(sgsim_core::duration::parse_millis))
                        .map(Duration::from_millis)
                        .collect()
                })
                .unwrap_or_default();
            let on_retry_failure = spec
                .and_then(|s| s.get("onRetryFailure"))
                .and_then(|o| o.get("action"))
                .and_then(parse_action)
                .filter(|a| !matches!(a, Action::Retry { .. }))
                .unwrap_or(Action::MarkAsFailure);
            Action::Retry {
                count,
                intervals,
                on_retry_failure: Box::new(on_retry_failure),
            }
        }
        "ManualIntervention" => {
            let on_timeout = spec
                .and_then(|s| s.get("onTimeout"))
                .and_then(|o| o.get("action"))
                .and_then(parse_action)
                .filter(|a| !matches!(a, Action::ManualIntervention { .. } | Action::Retry { .. }))
                .unwrap_or(Action::MarkAsFailure);
            Action::ManualIntervention {
                on_timeout: Box::new(on_timeout),
            }
        }
        _ => return None,
    })
}

fn number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The wait before retry number `n` (1-based).
pub fn retry_wait(intervals: &[Duration], n: u32) -> Duration {
    let i = (n as usize).saturating_sub(1);
    intervals.get(i).or(intervals.last()).copied().unwrap_or(Duration::ZERO)
}

/// A step's `when`: `stageStatus` (Success, Failure, All; default Success) and an optional
/// `condition` (raw, unevaluated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct When {
    /// `stageStatus`.
    pub stage_status: StageStatus,
    /// `condition`.
    pub condition: Option<String>,
}

/// `when.stageStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageStatus {
    /// Run only while everything succeeded.
    Success,
    /// Run only after a failure.
    Failure,
    /// Always run.
    All,
}

/// A `when` that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// `stageStatus` is none of the product's values.
    #[error("when.stageStatus `{0}` is not one of Success, Failure, All")]
    StageStatus(String),
}

/// Parses a raw `when` (None: the default, Success without condition). An unknown
/// `stageStatus` is an error naming it.
pub fn parse_when(w: Option<&serde_json::Value>) -> Result<When, WhenError> {
    let mut out = When {
        stage_status: StageStatus::Success,
        condition: None,
    };
    let Some(w) = w else { return Ok(out) };
    if let Some(s) = w.get("stageStatus") {
        out.stage_status = match s.as_str() {
            Some("Success") => StageStatus::Success,
            Some("Failure") => StageStatus::Failure,
            Some("All") => StageStatus::All,
            _ => {
                return Err(WhenError::StageStatus(
                    s.as_str().map_or_else(|| s.to_string(), str::to_string),
                ));
            }
        };
    }
    out.condition = match w.get("condition") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(c)) => Some(c.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(out)
}

impl StageStatus {
    /// Whether a step with this stageStatus runs when the execution so far has `failed`.
    pub fn admits(self, failed: bool) -> bool {
        match self {
            StageStatus::Success => !failed,
            StageStatus::Failure => failed,
            StageStatus::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn step_overrides_group_overrides_stage() {
        let step = json!([{"onFailure": {"errors": ["Timeout"], "action": {"type": "Ignore"}}}]);
        let group = json!([{"onFailure": {"errors": ["AllErrors"], "action": {"type": "MarkAsSuccess"}}}]);
        let stage = json!([{"onFailure": {"errors": ["AllErrors"], "action": {"type": "StageRollback"}}}]);
        let c = choose(FailureType::Timeout, Some(&step), Some(&group), Some(&stage)).unwrap();
        assert_eq!((c.action, c.level), (Action::Ignore, Level::Step));
        let c = choose(FailureType::Unknown, Some(&step), Some(&group), Some(&stage)).unwrap();
        assert_eq!((c.action, c.level), (Action::MarkAsSuccess, Level::StepGroup));
        let c = choose(FailureType::Unknown, Some(&step), None, Some(&stage)).unwrap();
        assert_eq!((c.action, c.level), (Action::StageRollback, Level::Stage));
        assert_eq!(choose(FailureType::Unknown, Some(&step), None, None), None);
    }

    #[test]
    fn retry_and_manual_intervention() {
        let s = json!([{"onFailure": {"errors": ["AllErrors"], "action": {"type": "Retry", "spec": {
            "retryCount": 2, "retryIntervals": ["1s", "2s"], "onRetryFailure": {"action": {"type": "Ignore"}}}}}}]);
        let c = choose(FailureType::Unknown, Some(&s), None, None).unwrap();
        assert_eq!(
            c.action,
            Action::Retry {
                count: 2,
                intervals: vec![Duration::from_secs(1), Duration::from_secs(2)],
                on_retry_failure: Box::new(Action::Ignore)
            }
        );
        assert_eq!(
            retry_wait(&[Duration::from_secs(1), Duration::from_secs(2)], 5),
            Duration::from_secs(2)
        );
        assert_eq!(retry_wait(&[], 1), Duration::ZERO);
        let m = json!([{"onFailure": {"errors": ["AllErrors"], "action": {"type": "ManualIntervention", "spec": {
            "timeout": "1h", "onTimeout": {"action": {"type": "MarkAsSuccess"}}}}}}]);
        let c = choose(FailureType::Unknown, Some(&m), None, None).unwrap();
        assert_eq!(
            c.action,
            Action::ManualIntervention {
                on_timeout: Box::new(Action::MarkAsSuccess)
            }
        );
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let s = json!([{"x": 1}, {"onFailure": {"errors": "AllErrors"}}, {"onFailure": {"errors": ["AllErrors"], "action": {"type": "Nope"}}}, 3]);
        assert_eq!(choose(FailureType::Unknown, Some(&s), None, None), None);
        assert_eq!(choose(FailureType::Unknown, Some(&json!("str")), None, None), None);
    }

    #[test]
    fn when_parsing() {
        assert_eq!(parse_when(None).unwrap().stage_status, StageStatus::Success);
        let w = parse_when(Some(&json!({"stageStatus": "All", "condition": "<+a> == 'b'"}))).unwrap();
        assert_eq!(
            w,
            When {
                stage_status: StageStatus::All,
                condition: Some("<+a> == 'b'".into())
            }
        );
        assert_eq!(
            parse_when(Some(&json!({"condition": true})))
                .unwrap()
                .condition
                .as_deref(),
            Some("true")
        );
        assert!(
            parse_when(Some(&json!({"stageStatus": "Sometimes"})))
                .unwrap_err()
                .to_string()
                .contains("Sometimes")
        );
        assert!(
            StageStatus::Failure.admits(true) && !StageStatus::Failure.admits(false) && StageStatus::All.admits(false)
        );
    }
}
