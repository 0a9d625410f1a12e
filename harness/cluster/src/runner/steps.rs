//! Executing the plan's steps through the lite-engine: one step's attempts with its failure
//! strategy, its `when`, timeout and expressions, the step spec sent to the engine, and collecting
//! its log, output variables and report files.

use std::collections::BTreeMap;
use std::time::Duration;

// tokio's clock (the wall clock, or a paused test clock).
use tokio::time::Instant;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use sgsim_core::model;
use sgsim_core::record::{Outcome, StepRecord};
use sgsim_core::render::{ExecutionPlan, PlanNode, PlannedStep};
use sgsim_engine::delegate::{DelegateServer, LiteEngineClient, ShellType, Status, StepCommand, StepSpec};

use super::expr::{self, ExprEnv};
use super::strategy::{self, Action, FailureType};
use super::{Effect, GroupState, RunEvent, RunOptions, STEP_EXPIRED_MESSAGE, skipped};

pub(super) struct StepCtx<'a> {
    pub(super) engine: &'a LiteEngineClient,
    pub(super) delegate: &'a DelegateServer,
    pub(super) pods: &'a Api<Pod>,
    pub(super) pod: &'a str,
    pub(super) plan: &'a ExecutionPlan,
    pub(super) opts: &'a RunOptions,
    pub(super) sink: &'a (dyn Fn(RunEvent) + Send + Sync),
    pub(super) group_failure_strategies: Option<&'a serde_json::Value>,
    pub(super) stage_failure_strategies: Option<&'a serde_json::Value>,
}

/// Most report files collected per step.
const MAX_REPORTS: usize = 16;

/// How one attempt ended.
pub(super) struct Attempt {
    status: Outcome,
    exit_code: Option<i32>,
    error: Option<String>,
    outputs: BTreeMap<String, String>,
    /// The step container's log is at least this long now (the addon's count).
    log_bytes: Option<u64>,
}

impl StepCtx<'_> {
    /// Runs a plan node; a `Parallel` node runs its children concurrently, each seeing the group
    /// state from before the block. Returns each step's record, effect and FQN.
    pub(super) fn run_node<'b>(
        &'b self,
        node: &'b PlanNode,
        state: GroupState,
        env: &'b ExprEnv,
    ) -> BoxFuture<'b, Vec<(StepRecord, Effect, String)>> {
        Box::pin(async move {
            match node {
                PlanNode::Step(s) => {
                    let (r, e) = self.run_step(s, state, env).await;
                    vec![(r, e, s.fqn.clone())]
                }
                PlanNode::Parallel(children) => {
                    let runs = children.iter().map(|c| self.run_node(c, state, env));
                    futures::future::join_all(runs).await.into_iter().flatten().collect()
                }
            }
        })
    }

    fn finish_skipped(&self, s: &PlannedStep, why: Option<String>) -> (StepRecord, Effect) {
        let mut r = skipped(s);
        r.error = why;
        (self.sink)(RunEvent::StepFinished(Box::new(r.clone())));
        (r, Effect::None)
    }

    /// `when`, then the step with its failure strategy.
    async fn run_step(&self, s: &PlannedStep, state: GroupState, env: &ExprEnv) -> (StepRecord, Effect) {
        if state.aborted {
            return self.finish_skipped(s, None);
        }
        let when = match strategy::parse_when(s.when.as_ref()) {
            Ok(w) => w,
            Err(why) => return self.fail_without_running(s, why.to_string()),
        };
        if !when.stage_status.admits(state.failed) {
            return self.finish_skipped(s, None);
        }
        if let Some(c) = &when.condition {
            match env.condition(c) {
                Ok(true) => {}
                Ok(false) => return self.finish_skipped(s, None),
                Err(e) => return self.fail_without_running(s, e.to_string()),
            }
        }
        (self.sink)(RunEvent::StepStarted {
            id: s.id.clone(),
            name: s.name.clone(),
        });
        let started = Instant::now();
        let mut rec = skipped(s);
        let mut applied: Vec<String> = Vec::new();
        let mut attempt = self.attempt(s, env, 0).await;
        rec.attempts = 1;
        let mut effect = Effect::None;
        if let Some(ty) = failure_type(attempt.status) {
            let chosen = strategy::choose(
                ty,
                s.failure_strategies.as_ref(),
                self.group_failure_strategies,
                self.stage_failure_strategies,
            );
            let mut action = chosen
                .as_ref()
                .map(|c| c.action.clone())
                .unwrap_or(Action::MarkAsFailure);
            if let Some(c) = &chosen {
                let level = match c.level {
                    strategy::Level::Step => "step",
                    strategy::Level::StepGroup => "step group",
                    strategy::Level::Stage => "stage",
                };
                applied.push(format!("{} ({level})", c.action.name()));
            }
            if let Action::ManualIntervention { on_timeout } = action {
                applied.push(format!(
                    "{} (no manual intervention in sgsim: its onTimeout action)",
                    on_timeout.name()
                ));
                action = *on_timeout;
            }
            if let Action::Retry {
                count,
                intervals,
                on_retry_failure,
            } = action
            {
                for n in 1..=count {
                    tokio::time::sleep(strategy::retry_wait(&intervals, n)).await;
                    attempt = self.attempt(s, env, n).await;
                    rec.attempts += 1;
                    if failure_type(attempt.status).is_none() {
                        break;
                    }
                }
                action = if failure_type(attempt.status).is_some() {
                    applied.push(format!("{} (onRetryFailure)", on_retry_failure.name()));
                    match *on_retry_failure {
                        Action::ManualIntervention { on_timeout } => *on_timeout,
                        a => a,
                    }
                } else {
                    Action::MarkAsFailure // unused: the last attempt succeeded
                };
            }
            if failure_type(attempt.status).is_some() {
                match action {
                    Action::Ignore => attempt.status = Outcome::IgnoreFailed,
                    Action::MarkAsSuccess => attempt.status = Outcome::Success,
                    Action::Abort => effect = Effect::Abort,
                    _ => effect = Effect::Fail,
                }
            }
        }
        rec.status = attempt.status;
        rec.exit_code = attempt.exit_code;
        rec.error = attempt.error;
        rec.outputs = attempt.outputs;
        let log_bytes = attempt.log_bytes;
        rec.strategy = (!applied.is_empty()).then(|| applied.join(", then "));
        rec.took = started.elapsed();
        // A Background step keeps running: its log is read when the group ends.
        if let (Some(c), false) = (&s.container, s.detach) {
            rec.log = self.step_log(s, rec.attempts, c, log_bytes).await;
        } else if s.kind == model::StepKind::NoContainer && rec.status == Outcome::Success {
            rec.log = format!("{} approved by sgsim (no approver is simulated)\n", s.step_type);
        }
        (self.sink)(RunEvent::StepFinished(Box::new(rec.clone())));
        (rec, effect)
    }

    /// A step that fails before it runs (a `when` sgsim cannot evaluate): the product fails it.
    fn fail_without_running(&self, s: &PlannedStep, why: String) -> (StepRecord, Effect) {
        let mut r = skipped(s);
        r.status = Outcome::Failed;
        r.error = Some(why);
        (self.sink)(RunEvent::StepFinished(Box::new(r.clone())));
        (r, Effect::Fail)
    }

    /// One execution of the step (attempt 0, then retries 1..).
    async fn attempt(&self, s: &PlannedStep, env: &ExprEnv, n: u32) -> Attempt {
        let failed = |error: String| Attempt {
            status: Outcome::Failed,
            exit_code: None,
            error: Some(error),
            outputs: BTreeMap::new(),
            log_bytes: None,
        };
        let (kind, port) = (s.kind, s.port);
        if kind == model::StepKind::NoContainer {
            // Approval steps run in Harness, not in the pod: sgsim has no approver and approves.
            return Attempt {
                status: Outcome::Success,
                exit_code: None,
                error: None,
                outputs: BTreeMap::new(),
                log_bytes: None,
            };
        }
        let port = match (kind, port) {
            (model::StepKind::Run | model::StepKind::Background | model::StepKind::Plugin, Some(port)) => port,
            (kind, _) => {
                return failed(format!(
                    "step type {} ({kind:?}) is not supported by sgsim yet",
                    s.step_type
                ));
            }
        };
        let spec = match self.step_spec(s, port, env, n) {
            Ok(spec) => spec,
            Err(e) => return failed(e.to_string()),
        };
        let mut a = self.execute(spec).await;
        // A step whose container was OOM-killed fails without an exit code of its own (the addon
        // died with it) or with 137.
        if a.status != Outcome::Success
            && matches!(a.exit_code, None | Some(137))
            && a.status != Outcome::Timeout
            && let Some(c) = &s.container
            && self.oom_killed(c).await
        {
            a.status = Outcome::Failed;
            a.exit_code = Some(137);
            a.error = Some(format!(
                "OOMKilled: container {c} exceeded its memory limit (exit code 137)"
            ));
        }
        a
    }

    /// Whether the pod's status shows `container` terminated with reason `OOMKilled` (waits up
    /// to 5 s for the kubelet to record the exit: the step's status can arrive first).
    async fn oom_killed(&self, container: &str) -> bool {
        for _ in 0..25 {
            let Ok(p) = self.pods.get(self.pod).await else {
                return false;
            };
            let terminated = p
                .status
                .and_then(|st| st.container_statuses)
                .unwrap_or_default()
                .into_iter()
                .find(|cs| cs.name == container)
                .and_then(|cs| cs.state.and_then(|st| st.terminated));
            match terminated {
                Some(t) => return t.reason.as_deref() == Some("OOMKilled"),
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        false
    }

    /// Sends one UnitStep to the lite-engine and waits for its status.
    async fn execute(&self, spec: StepSpec) -> Attempt {
        let failed = |error: String| Attempt {
            status: Outcome::Failed,
            exit_code: None,
            error: Some(error),
            outputs: BTreeMap::new(),
            log_bytes: None,
        };
        match self.engine.execute_step(self.delegate, spec).await {
            Ok(st) => {
                let status = match st.status {
                    Status::Success => Outcome::Success,
                    Status::Failure => Outcome::Failed,
                    Status::Timeout => Outcome::Timeout,
                    Status::Aborted => Outcome::Aborted,
                    Status::Skipped => Outcome::Skipped,
                };
                let error = if status == Outcome::Timeout {
                    Some(STEP_EXPIRED_MESSAGE.to_string())
                } else {
                    st.error
                };
                Attempt {
                    status,
                    exit_code: st.exit_code,
                    error,
                    outputs: st.outputs,
                    log_bytes: st.log_bytes,
                }
            }
            Err(e) => failed(e.to_string()),
        }
    }

    /// The UnitStep of attempt `n` (retries get their own id: the lite-engine and the addon are
    /// idempotent per step id), with run-time expressions resolved.
    fn step_spec(&self, s: &PlannedStep, port: u16, env: &ExprEnv, n: u32) -> Result<StepSpec, expr::ExprError> {
        let shell = match s.shell {
            model::Shell::Sh => ShellType::Sh,
            model::Shell::Bash => ShellType::Bash,
            model::Shell::Powershell => ShellType::Powershell,
            model::Shell::Pwsh => ShellType::Pwsh,
            model::Shell::Python => ShellType::Python,
        };
        let id = attempt_id(s, n);
        let task_id = format!("{}-{}-{}", self.opts.task_prefix, self.pod, id);
        // A Background step with neither entrypoint nor command runs its image's own
        // ENTRYPOINT + CMD (what the product learns through GetImageEntrypoint).
        let mut entrypoint = s
            .entrypoint
            .iter()
            .map(|a| env.render(a))
            .collect::<Result<Vec<_>, _>>()?;
        let vars = s
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), env.render(v)?)))
            .collect::<Result<BTreeMap<_, _>, expr::ExprError>>()?;
        // A plugin step runs its image's ENTRYPOINT + CMD unless the step sets an entrypoint;
        // its settings arrive as PLUGIN_* variables.
        if s.kind == model::StepKind::Plugin {
            if entrypoint.is_empty()
                && let (Some(lookup), Some(image)) = (&self.opts.image_entrypoint, &s.image)
                && let Some((ep, cmd)) = lookup(image)
            {
                entrypoint = ep.into_iter().chain(cmd).collect();
            }
            return Ok(StepSpec {
                id: id.clone(),
                display_name: s.name.clone(),
                container_port: port,
                kind: StepCommand::Plugin {
                    image: s.image.clone().unwrap_or_default(),
                    entrypoint,
                    env: vars,
                    output_vars: s.output_variables.clone(),
                    reports: s.report_paths.clone(),
                    artifact_file_path: String::new(),
                },
                timeout: Some(Duration::from_secs(s.timeout_secs)),
                callback_token: format!("token-{task_id}"),
                log_key: self.log_key(&id),
                account_id: self.plan.ids.account_id.clone(),
                task_id,
            });
        }
        let no_command = s.command.as_deref().is_none_or(|c| c.trim().is_empty());
        if s.detach
            && entrypoint.is_empty()
            && no_command
            && let (Some(lookup), Some(image)) = (&self.opts.image_entrypoint, &s.image)
            && let Some((ep, cmd)) = lookup(image)
        {
            entrypoint = ep.into_iter().chain(cmd).collect();
        }
        let command = env.render(s.command.as_deref().unwrap_or_default())?;
        Ok(StepSpec {
            id: id.clone(),
            display_name: s.name.clone(),
            container_port: port,
            kind: StepCommand::Run {
                command,
                shell,
                env: vars,
                image: s.image.clone().unwrap_or_default(),
                entrypoint,
                detach: s.detach,
                output_vars: s.output_variables.clone(),
                reports: s.report_paths.clone(),
            },
            timeout: Some(Duration::from_secs(s.timeout_secs)),
            callback_token: format!("token-{task_id}"),
            log_key: self.log_key(&id),
            account_id: self.plan.ids.account_id.clone(),
            task_id,
        })
    }

    /// Reads the step's report files (reportPaths, globs expanded by the shell, relative to
    /// /harness) through a follow-up step in the same container that exports each file base64-encoded
    /// as an output variable (nothing is printed, so the step's log is untouched).
    pub(super) async fn collect_reports(&self, s: &PlannedStep) -> BTreeMap<String, String> {
        let Some(port) = s.port else {
            return BTreeMap::new();
        };
        let id = format!("{}_reports", s.id);
        let task_id = format!("{}-{}-{}", self.opts.task_prefix, self.pod, id);
        let vars: Vec<String> = (0..MAX_REPORTS).map(|i| format!("SGSIM_REPORT_{i}")).collect();
        let spec = StepSpec {
            id: id.clone(),
            display_name: format!("{} reports", s.name),
            container_port: port,
            kind: StepCommand::Run {
                command: report_script(&s.report_paths),
                shell: ShellType::Sh,
                env: BTreeMap::new(),
                image: s.image.clone().unwrap_or_default(),
                entrypoint: Vec::new(),
                detach: false,
                output_vars: vars.clone(),
                reports: Vec::new(),
            },
            timeout: Some(Duration::from_secs(60)),
            callback_token: format!("token-{task_id}"),
            log_key: self.log_key(&id),
            account_id: self.plan.ids.account_id.clone(),
            task_id,
        };
        let mut out = BTreeMap::new();
        match self.engine.execute_step(self.delegate, spec).await {
            Ok(st) if st.status == Status::Success => {
                for v in &vars {
                    let Some(val) = st.outputs.get(v).filter(|x| !x.is_empty()) else {
                        continue;
                    };
                    if let Some((path, b64)) = val.split_once(':') {
                        let content = sgsim_core::base64::decode(b64).map(|b| String::from_utf8_lossy(&b).into_owned());
                        out.insert(
                            path.to_string(),
                            content.unwrap_or_else(|| "<sgsim: report content is not valid base64>".into()),
                        );
                    }
                }
            }
            Ok(st) => {
                out.insert(
                    "<sgsim>".into(),
                    format!("could not collect reports: {}", st.error.unwrap_or_default()),
                );
            }
            Err(e) => {
                out.insert("<sgsim>".into(), format!("could not collect reports: {e}"));
            }
        }
        out
    }

    /// The log of a step's `attempts`: what its addon sent the log service under each attempt's
    /// log key, in order. When the log service got nothing for any of them (a step that never
    /// started, an addon that does not stream), the step container's log.
    pub(super) async fn step_log(
        &self,
        s: &PlannedStep,
        attempts: u32,
        container: &str,
        expect: Option<u64>,
    ) -> String {
        let logs = self.delegate.logs();
        let texts: Vec<String> = (0..attempts.max(1))
            .filter_map(|n| logs.text(&self.log_key(&attempt_id(s, n))))
            .collect();
        if texts.is_empty() {
            return self.container_log(container, expect).await;
        }
        texts.concat()
    }

    /// The log key of a step id (the UnitStep's `log_key`). Runs may share one delegate (and its
    /// log service) and scenarios may share a seed, so the run's task prefix makes it unique.
    fn log_key(&self, id: &str) -> String {
        log_key(&self.opts.task_prefix, &self.plan.ids.execution_id, id)
    }

    /// The step container's log (the addon prints exactly the step's output).
    ///
    /// The container runtime copies a container's output into its log asynchronously, so the last
    /// lines a step printed just before it ended may not be readable yet when its status arrives.
    /// With the addon's count (`expect`: the bytes it had written when the step ended) the log is
    /// complete as soon as it is that long; without one it is read until it has been the same for
    /// [`LOG_SETTLE`]. Either way at most [`LOG_SETTLE_MAX`].
    pub(super) async fn container_log(&self, container: &str, expect: Option<u64>) -> String {
        let params = LogParams {
            container: Some(container.to_string()),
            ..Default::default()
        };
        let deadline = Instant::now() + LOG_SETTLE_MAX;
        let mut last: Option<String> = None;
        loop {
            let now = match self.pods.logs(self.pod, &params).await {
                Ok(s) => s,
                Err(e) => return format!("<sgsim: could not read the log of container {container}: {e}>\n"),
            };
            let complete = match expect {
                Some(n) => now.len() as u64 >= n,
                None => last.as_deref() == Some(now.as_str()),
            };
            if complete || Instant::now() >= deadline {
                return now;
            }
            last = Some(now);
            tokio::time::sleep(if expect.is_some() { LOG_CATCH_UP } else { LOG_SETTLE }).await;
        }
    }
}

/// `<task prefix>/<execution id>/<step id>`.
fn log_key(task_prefix: &str, execution_id: &str, id: &str) -> String {
    format!("{task_prefix}/{execution_id}/{id}")
}

/// The step id of attempt `n` (retries get their own id: the lite-engine and the addon are
/// idempotent per step id).
fn attempt_id(s: &PlannedStep, n: u32) -> String {
    if n == 0 {
        s.id.clone()
    } else {
        format!("{}_retry_{n}", s.id)
    }
}

/// How often a log shorter than the addon's count is read again.
const LOG_CATCH_UP: Duration = Duration::from_millis(20);
/// How long a container log must stay unchanged to count as complete.
const LOG_SETTLE: Duration = Duration::from_millis(250);
/// The longest a runner waits for a container log to settle.
const LOG_SETTLE_MAX: Duration = Duration::from_secs(3);

/// The failure type of an attempt's outcome (None: it did not fail).
pub(super) fn failure_type(o: Outcome) -> Option<FailureType> {
    match o {
        Outcome::Failed | Outcome::Aborted => Some(FailureType::Unknown),
        Outcome::Timeout => Some(FailureType::Timeout),
        Outcome::Success | Outcome::Skipped | Outcome::IgnoreFailed => None,
    }
}

/// A POSIX sh script that exports `SGSIM_REPORT_<i>=<path>:<base64 content>` for each file the
/// report paths match (at most [`MAX_REPORTS`]).
pub(super) fn report_script(paths: &[String]) -> String {
    let mut script = String::from("cd /harness 2>/dev/null || true\nn=0\n");
    for p in paths {
        // Keep glob characters active, quote everything else.
        let quoted: String = p
            .chars()
            .map(|c| match c {
                '*' | '?' | '[' | ']' => c.to_string(),
                '\'' => "'\\''".to_string(),
                c => format!("'{c}'"),
            })
            .collect();
        script.push_str(&format!(
            "for f in {quoted}; do\n  [ -f \"$f\" ] || continue\n  [ \"$n\" -lt {MAX_REPORTS} ] || break\n  export SGSIM_REPORT_$n=\"$f:$(base64 < \"$f\" | tr -d '\\n')\"\n  n=$((n+1))\ndone\n"
        ));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_differ_between_runs_with_the_same_seed_and_step_ids() {
        // two scenarios with seed 1 and a step `SamBuild`, run at once against one delegate
        let a = log_key("run7-aws-sam-keys", "IetEUGUbQmCYwKbX0j9nsq", "SamBuild");
        let b = log_key("run7-aws-sam-service-account", "IetEUGUbQmCYwKbX0j9nsq", "SamBuild");
        assert_ne!(a, b);
        assert_eq!(a, "run7-aws-sam-keys/IetEUGUbQmCYwKbX0j9nsq/SamBuild");
    }

    #[test]
    fn report_script_quotes_all_but_globs() {
        let s = report_script(&["reports/*.xml".into(), "it's.xml".into()]);
        assert!(s.contains("for f in 'r''e''p''o''r''t''s''/'*'.''x''m''l'; do"), "{s}");
        assert!(s.contains("'i''t''\\'''s'"), "{s}");
    }

    #[test]
    fn failure_types() {
        assert_eq!(failure_type(Outcome::Timeout), Some(FailureType::Timeout));
        assert_eq!(failure_type(Outcome::Failed), Some(FailureType::Unknown));
        assert_eq!(failure_type(Outcome::IgnoreFailed), None);
    }
}
