//! The record of a run: what the runner observed (Initialize log lines, each step's outcome, log
//! and outputs, the stored Pod), as plain data. Both runtimes produce it; verdicts, golden files and
//! the reporter read it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// Level of an Initialize log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Normal events and the product's own lines.
    Info,
    /// Warning events.
    Warn,
}

/// One line of the Initialize step log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitLine {
    /// Level.
    pub level: Level,
    /// Text, verbatim.
    pub text: String,
}

/// Final status of a step or of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded.
    Success,
    /// Failed (non-zero exit or error).
    Failed,
    /// Killed by its timeout (the product's status EXPIRED).
    Timeout,
    /// Failed, and a failure strategy ignored it (the product's IGNORE_FAILED).
    IgnoreFailed,
    /// Aborted.
    Aborted,
    /// Not run.
    Skipped,
}

impl Outcome {
    /// As written in result.yaml and scenario expectations.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Failed => "Failed",
            Outcome::Timeout => "Expired",
            Outcome::IgnoreFailed => "IgnoreFailed",
            Outcome::Aborted => "Aborted",
            Outcome::Skipped => "Skipped",
        }
    }
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// Step identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Container the step ran in.
    pub container: Option<String>,
    /// Outcome.
    pub status: Outcome,
    /// Exit code of the command, when it ran.
    pub exit_code: Option<i32>,
    /// Error message, when it failed.
    pub error: Option<String>,
    /// Exported output variables.
    pub outputs: BTreeMap<String, String>,
    /// The step's log (its container's log). For a Background step, what the service printed
    /// until the group ended.
    pub log: String,
    /// Whether the step runs detached (Background): its log is live service output.
    pub background: bool,
    /// How long it took.
    pub took: Duration,
    /// How many times it was executed (retries included; 0 when it never ran).
    pub attempts: u32,
    /// The failure strategy that was applied, e.g. `Retry`, `Ignore`, `Retry, then Ignore`
    /// (with where it was declared).
    pub strategy: Option<String>,
    /// Report files (reportPaths) collected when the group ended: path → content.
    pub reports: BTreeMap<String, String>,
    /// The image the step's container ran as (None for steps without a container image, and
    /// before the runtime fills it in).
    pub image: Option<ImageRecord>,
}

/// The image a step's container ran as: result.yaml's `image: {requested, ranAs, source}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image as the step group names it.
    pub requested: String,
    /// What ran for it: a stand-in's name (`busybox`, `python`, ...), or the image itself when
    /// the real image ran.
    pub ran_as: String,
    /// Where it came from: `fixtures.images`, `host`, `pulled` or `stand-in`.
    pub source: String,
}

/// Everything a run observed.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The Pod as the API server stored it at the end of the run (before deletion).
    pub pod: Option<Pod>,
    /// The Initialize step log.
    pub initialize: Vec<InitLine>,
    /// Steps in plan order.
    pub steps: Vec<StepRecord>,
    /// Status of the step group.
    pub status: Outcome,
    /// Why the group failed, when it did before its steps (pod never ran).
    pub error: Option<String>,
    /// The node the pod ran on.
    pub node: Option<String>,
}
