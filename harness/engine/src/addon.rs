//! The addon: runs one step's command inside the step's own container.
//!
//! How a Run step is executed (the product's behaviour, as documented in product-facts.md and
//! read from its addon, re-implemented here):
//! - The script is the command preceded by an early-exit line (`set -e` for sh/bash,
//!   `$ErrorActionPreference = 'Stop'` for PowerShell, nothing for Python) and followed by one
//!   line per output variable that appends `NAME value` to `<tmp>/<step id>.out` (`echo` for
//!   sh/bash, `Add-Content` for PowerShell, a `with open(...)` block for Python).
//! - It is run as `<shell> <flag> <script>`: `sh -c`, `bash -c`, `powershell -Command`,
//!   `pwsh -Command`, `python3 -c`, with the addon's environment plus the step's `environment`,
//!   in the addon's working directory (the container's workingDir, /harness), in a new process
//!   group.
//! - A non-empty `entrypoint` replaces all of that: it is run as is and `command` is ignored
//!   ("Entry Point arguments override the image ENTRYPOINT and any commands").
//! - stdout and stderr of the step share one pipe; every line is written to the addon's own
//!   stdout, so the container log is the step log. The addon writes nothing else to stdout
//!   (diagnostics go to stderr when `SGSIM_ADDON_DEBUG` is set).
//! - The execution timeout (default 4 h) sends SIGTERM to the process group, then SIGKILL after a
//!   grace period. A zero exit is success; otherwise the call fails with `exit status <n>` (the
//!   exit code is also in the `sgsim-exit-code` response metadata), `signal: killed`, or a
//!   timeout (gRPC DEADLINE_EXCEEDED).
//! - A detached (Background) step is started and reported successful at once; it keeps running
//!   with its output on the addon's stdout. Unlike the product, a detached step that cannot even
//!   be started (missing interpreter) is reported as failed.
//! - ExecuteStep is idempotent per step id: a repeated call waits for / returns the first call's
//!   result.
//! - SignalStop kills every process the addon started and then stops the addon.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::error::{EngineError, Result};
use crate::proto::addon::addon_server::{Addon, AddonServer};
use crate::proto::addon::{ExecuteStepRequest, ExecuteStepResponse, SignalStopRequest, SignalStopResponse};
use crate::proto::engine::{PluginStep, RunStep, ShellType, unit_step};

/// Response metadata key carrying the step process's exit code.
pub const META_EXIT_CODE: &str = "sgsim-exit-code";
/// Response metadata key carrying the outcome kind (`failure`, `timeout`, `aborted`).
pub const META_STEP_STATUS: &str = "sgsim-step-status";
/// Set (to anything) to get the addon's own diagnostics on stderr.
pub const DEBUG_ENV: &str = "SGSIM_ADDON_DEBUG";

/// The product's default execution timeout of a run step (4 hours).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(14_400);

/// Settings of the addon.
#[derive(Debug, Clone)]
pub struct AddonConfig {
    /// Address to serve on (`0.0.0.0:<port>`).
    pub listen: SocketAddr,
    /// Working directory of step processes; `None` inherits the addon's (the container's).
    pub workdir: Option<PathBuf>,
    /// Directory for output-variable files when the request names none.
    pub default_tmp_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub kill_grace: Duration,
}

impl AddonConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            workdir: None,
            default_tmp_dir: PathBuf::from("/addon/tmp"),
            kill_grace: Duration::from_secs(3),
        }
    }
}

fn debug_enabled() -> bool {
    std::env::var_os(DEBUG_ENV).is_some()
}

macro_rules! debug {
    ($($arg:tt)*) => {
        if debug_enabled() {
            eprintln!("sgsim-addon: {}", format!($($arg)*));
        }
    };
}

/// How a step ended, as the addon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success {
        outputs: BTreeMap<String, String>,
        exit_code: Option<i32>,
    },
    Failed {
        kind: FailKind,
        message: String,
        exit_code: Option<i32>,
    },
}

/// Kinds of unsuccessful outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    Failure,
    Timeout,
    Aborted,
}

impl FailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Failure => "failure",
            FailKind::Timeout => "timeout",
            FailKind::Aborted => "aborted",
        }
    }
}

impl Outcome {
    fn failure(message: impl Into<String>) -> Self {
        Outcome::Failed {
            kind: FailKind::Failure,
            message: message.into(),
            exit_code: None,
        }
    }

    fn into_response(self) -> Result<Response<ExecuteStepResponse>, Status> {
        match self {
            Outcome::Success { outputs, exit_code } => {
                let mut resp = Response::new(ExecuteStepResponse {
                    output: outputs.into_iter().collect(),
                    num_retries: 1,
                    artifact: None,
                });
                if let Some(c) = exit_code
                    && let Ok(v) = MetadataValue::try_from(c.to_string())
                {
                    resp.metadata_mut().insert(META_EXIT_CODE, v);
                }
                Ok(resp)
            }
            Outcome::Failed {
                kind,
                message,
                exit_code,
            } => {
                let code = match kind {
                    FailKind::Failure => tonic::Code::Unknown,
                    FailKind::Timeout => tonic::Code::DeadlineExceeded,
                    FailKind::Aborted => tonic::Code::Aborted,
                };
                let mut status = Status::new(code, message);
                let md = status.metadata_mut();
                md.insert(META_STEP_STATUS, MetadataValue::from_static(kind.as_str()));
                if let Some(c) = exit_code
                    && let Ok(v) = MetadataValue::try_from(c.to_string())
                {
                    md.insert(META_EXIT_CODE, v);
                }
                Err(status)
            }
        }
    }
}

/// Writes whole lines to the addon's stdout (shared by all running steps), or to a test buffer.
#[derive(Clone, Default)]
struct LineSink {
    lock: Arc<Mutex<()>>,
    #[cfg(test)]
    captured: Option<Arc<Mutex<Vec<u8>>>>,
}

impl LineSink {
    fn write_line(&self, line: &[u8]) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(test)]
        if let Some(c) = &self.captured {
            let mut c = c.lock().unwrap();
            c.extend_from_slice(line);
            if line.last() != Some(&b'\n') {
                c.push(b'\n');
            }
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line);
        if line.last() != Some(&b'\n') {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }
}

struct Inner {
    config: AddonConfig,
    steps: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    /// Process groups started by this addon and still running.
    groups: Mutex<HashMap<i32, String>>,
    stop: CancellationToken,
    sink: LineSink,
}

/// The Addon gRPC service.
#[derive(Clone)]
pub struct AddonService {
    inner: Arc<Inner>,
}

impl AddonService {
    pub fn new(config: AddonConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                steps: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                sink: LineSink::default(),
            }),
        }
    }

    /// Cancelled once SignalStop has been handled; the server shuts down on it.
    pub fn stopped(&self) -> CancellationToken {
        self.inner.stop.clone()
    }
}

/// Serves the addon until SignalStop (or `shutdown`) .
pub async fn serve(config: AddonConfig, shutdown: CancellationToken) -> Result<()> {
    let listen = config.listen;
    let svc = AddonService::new(config);
    let stop = svc.stopped();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| EngineError::Listen { addr: listen, source })?;
    debug!("serving on {listen}");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(AddonServer::new(svc))
        .serve_with_incoming_shutdown(incoming, async move {
            tokio::select! {
                _ = stop.cancelled() => {
                    // let the SignalStop response go out first
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = shutdown.cancelled() => {}
            }
        })
        .await
        .map_err(EngineError::Serve)
}

#[tonic::async_trait]
impl Addon for AddonService {
    async fn execute_step(
        &self,
        request: Request<ExecuteStepRequest>,
    ) -> Result<Response<ExecuteStepResponse>, Status> {
        let req = request.into_inner();
        let step = req
            .step
            .ok_or_else(|| Status::invalid_argument("ExecuteStep without a step"))?;
        if step.id.is_empty() {
            return Err(Status::invalid_argument("step id is empty"));
        }
        let tmp = if req.tmp_file_path.is_empty() {
            self.inner.config.default_tmp_dir.clone()
        } else {
            PathBuf::from(&req.tmp_file_path)
        };
        let mut rx = {
            let mut steps = self.inner.steps.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rx) = steps.get(&step.id) {
                debug!("step {} already known, joining it", step.id);
                rx.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                steps.insert(step.id.clone(), rx.clone());
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    let outcome = run_step(&inner, step, tmp).await;
                    let _ = tx.send(Some(outcome));
                });
                rx
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::internal("step runner vanished"))?
            .clone()
            .unwrap_or_else(|| Outcome::failure("no outcome"));
        outcome.into_response()
    }

    async fn signal_stop(&self, _request: Request<SignalStopRequest>) -> Result<Response<SignalStopResponse>, Status> {
        debug!("SignalStop");
        let groups: Vec<i32> = {
            let g = self.inner.groups.lock().unwrap_or_else(|e| e.into_inner());
            g.keys().copied().collect()
        };
        for pgid in &groups {
            signal_group(*pgid, Signal::TERM);
        }
        self.inner.stop.cancel();
        let grace = self.inner.config.kill_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for pgid in groups {
                signal_group(pgid, Signal::KILL);
            }
        });
        Ok(Response::new(SignalStopResponse {}))
    }
}

fn signal_group(pgid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, sig);
    }
}

/// What to start for a step.
struct Plan {
    argv: Vec<String>,
    env: HashMap<String, String>,
    timeout: Duration,
    detach: bool,
    output_vars: Vec<String>,
    output_file: PathBuf,
}

fn shell_of(shell: ShellType) -> (&'static str, &'static str) {
    match shell {
        ShellType::Sh => ("sh", "-c"),
        ShellType::Bash => ("bash", "-c"),
        ShellType::Powershell => ("powershell", "-Command"),
        ShellType::Pwsh => ("pwsh", "-Command"),
        ShellType::Python => ("python3", "-c"),
    }
}

/// The script run for a Run step (see the module docs).
pub fn build_script(
    shell: ShellType,
    command: &str,
    output_vars: &[String],
    output_file: &Path,
    detach: bool,
) -> String {
    let file = output_file.display();
    let prologue = match shell {
        ShellType::Sh | ShellType::Bash => "set -e\n",
        ShellType::Powershell | ShellType::Pwsh => "$ErrorActionPreference = 'Stop' \n",
        ShellType::Python => "",
    };
    let mut script = format!("{prologue}{command}");
    if detach {
        return script;
    }
    script.push(' ');
    match shell {
        ShellType::Powershell | ShellType::Pwsh => {
            script.push_str(&format!("\nNew-Item {file}"));
            for v in output_vars {
                script.push_str(&format!(
                    "\n$val = \"{v} $Env:{v}\" \nAdd-Content -Path {file} -Value $val"
                ));
            }
        }
        ShellType::Python => {
            script.push_str("\nimport os\n");
            for v in output_vars {
                script.push_str(&format!(
                    "with open('{file}', 'a') as out_file:\n\tout_file.write('{v} ' + os.getenv('{v}') + '\\n')\n"
                ));
            }
        }
        ShellType::Sh | ShellType::Bash => {
            for v in output_vars {
                script.push_str(&format!("\necho \"{v} ${v}\" >> {file}"));
            }
        }
    }
    script
}

fn plan_run(id: &str, r: RunStep, tmp: &Path) -> Result<Plan> {
    let shell = ShellType::try_from(r.shell_type).map_err(|_| EngineError::UnknownShell(r.shell_type))?;
    let output_file = tmp.join(format!("{id}.out"));
    let argv = if !r.entrypoint.is_empty() {
        r.entrypoint.clone()
    } else if !(r.detach && r.command.is_empty()) {
        let script = build_script(shell, &r.command, &r.env_var_outputs, &output_file, r.detach);
        let (sh, flag) = shell_of(shell);
        vec![sh.to_string(), flag.to_string(), script]
    } else {
        return Err(EngineError::NoCommand {
            step: id.to_string(),
            image: r.image,
        });
    };
    Ok(Plan {
        argv,
        env: r.environment.into_iter().collect(),
        timeout: timeout_of(r.context.map(|c| c.execution_timeout_secs)),
        detach: r.detach,
        output_vars: if r.detach { Vec::new() } else { r.env_var_outputs },
        output_file,
    })
}

fn plan_plugin(id: &str, p: PluginStep, tmp: &Path) -> Result<Plan> {
    if p.entrypoint.is_empty() {
        return Err(EngineError::PluginWithoutEntrypoint {
            step: id.to_string(),
            image: p.image,
        });
    }
    Ok(Plan {
        argv: p.entrypoint,
        env: p.environment.into_iter().collect(),
        timeout: timeout_of(p.context.map(|c| c.execution_timeout_secs)),
        detach: false,
        output_vars: Vec::new(),
        output_file: tmp.join(format!("{id}.out")),
    })
}

fn timeout_of(secs: Option<i64>) -> Duration {
    match secs {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        9 => "killed".into(),
        15 => "terminated".into(),
        2 => "interrupt".into(),
        6 => "aborted".into(),
        11 => "segmentation fault".into(),
        n => format!("signal {n}"),
    }
}

/// Longest line written in one piece; a longer one is split (a step printing binary data
/// must not make the addon buffer without bound).
const MAX_LINE: usize = 64 * 1024;

/// Copies `reader` to the sink line by line until EOF.
fn copy_lines(reader: impl std::io::Read, sink: &LineSink) {
    let mut r = BufReader::new(reader);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let room = MAX_LINE - line.len();
        let (take, complete) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len().min(room), line.len() + buf.len() >= MAX_LINE),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if complete {
            sink.write_line(&line);
            line.clear();
        }
    }
    if !line.is_empty() {
        sink.write_line(&line);
    }
}

struct Started {
    child: tokio::process::Child,
    pgid: i32,
    eof: tokio::sync::oneshot::Receiver<()>,
}

fn start(inner: &Inner, id: &str, plan: &Plan) -> Result<Started> {
    let program = plan.argv[0].clone();
    let (reader, writer) = std::io::pipe().map_err(EngineError::OutputPipe)?;
    let writer2 = writer.try_clone().map_err(EngineError::OutputPipe)?;
    let child = {
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&plan.argv[1..])
            .envs(&plan.env)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &inner.config.workdir {
            cmd.current_dir(dir);
        }
        cmd.spawn().map_err(|source| EngineError::Spawn {
            program: program.clone(),
            source,
        })?
        // `cmd` (holding the pipe's write ends) is dropped here, so EOF comes when the step's
        // processes are gone.
    };
    let pid = child.id().unwrap_or(0) as i32;
    inner
        .groups
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid, id.to_string());
    let (eof_tx, eof) = tokio::sync::oneshot::channel();
    let sink = inner.sink.clone();
    std::thread::spawn(move || {
        copy_lines(reader, &sink);
        let _ = eof_tx.send(());
    });
    debug!("step {id}: started {:?} as pid {pid}", plan.argv);
    Ok(Started { child, pgid: pid, eof })
}

async fn run_step(inner: &Arc<Inner>, step: crate::proto::engine::UnitStep, tmp: PathBuf) -> Outcome {
    let id = step.id.clone();
    let plan = match step.step {
        Some(unit_step::Step::Run(r)) => plan_run(&id, r, &tmp),
        Some(unit_step::Step::Plugin(p)) => plan_plugin(&id, p, &tmp),
        None => Err(EngineError::NoStepDefinition { step: id.clone() }),
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return Outcome::failure(e.to_string()),
    };
    if !plan.output_vars.is_empty() {
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            return Outcome::failure(format!("cannot create {}: {e}", tmp.display()));
        }
        let _ = std::fs::remove_file(&plan.output_file);
    }
    if inner.stop.is_cancelled() {
        return Outcome::Failed {
            kind: FailKind::Aborted,
            message: "addon is stopping".into(),
            exit_code: None,
        };
    }
    let started = match start(inner, &id, &plan) {
        Ok(s) => s,
        Err(e) => return Outcome::failure(e.to_string()),
    };
    if plan.detach {
        let inner = inner.clone();
        let Started { mut child, pgid, .. } = started;
        tokio::spawn(async move {
            let st = child.wait().await;
            debug!("detached step {id} ended: {st:?}");
            inner.groups.lock().unwrap_or_else(|e| e.into_inner()).remove(&pgid);
        });
        return Outcome::Success {
            outputs: BTreeMap::new(),
            exit_code: None,
        };
    }
    let Started { mut child, pgid, eof } = started;
    enum End {
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Stopped,
    }
    let end = tokio::select! {
        st = child.wait() => End::Exited(st),
        _ = tokio::time::sleep(plan.timeout) => End::TimedOut,
        _ = inner.stop.cancelled() => End::Stopped,
    };
    if !matches!(end, End::Exited(_)) {
        signal_group(pgid, Signal::TERM);
        if tokio::time::timeout(inner.config.kill_grace, child.wait())
            .await
            .is_err()
        {
            signal_group(pgid, Signal::KILL);
            let _ = child.wait().await;
        }
        // whatever is left of the group goes too
        signal_group(pgid, Signal::KILL);
    }
    // Give the output copier a moment to drain; processes the step left in the background may
    // keep the pipe open, their output keeps flowing to stdout regardless.
    let _ = tokio::time::timeout(Duration::from_secs(1), eof).await;
    inner.groups.lock().unwrap_or_else(|e| e.into_inner()).remove(&pgid);
    let status = match end {
        End::TimedOut => {
            return Outcome::Failed {
                kind: FailKind::Timeout,
                message: format!(
                    "step timed out after {}s (execution timeout reached; process group killed)",
                    plan.timeout.as_secs()
                ),
                exit_code: None,
            };
        }
        End::Stopped => {
            return Outcome::Failed {
                kind: FailKind::Aborted,
                message: "step aborted: addon received SignalStop".into(),
                exit_code: None,
            };
        }
        End::Exited(Err(e)) => return Outcome::failure(format!("waiting for the step process failed: {e}")),
        End::Exited(Ok(st)) => st,
    };
    if let Some(code) = status.code() {
        if code != 0 {
            return Outcome::Failed {
                kind: FailKind::Failure,
                message: format!("exit status {code}"),
                exit_code: Some(code),
            };
        }
    } else {
        let sig = status.signal().unwrap_or(0);
        return Outcome::Failed {
            kind: FailKind::Failure,
            message: format!("signal: {}", signal_name(sig)),
            exit_code: None,
        };
    }
    if plan.output_vars.is_empty() {
        return Outcome::Success {
            outputs: BTreeMap::new(),
            exit_code: Some(0),
        };
    }
    match std::fs::read_to_string(&plan.output_file) {
        Ok(content) => Outcome::Success {
            outputs: parse_outputs(&content, &plan.output_vars),
            exit_code: Some(0),
        },
        Err(e) => Outcome::failure(format!(
            "cannot read output variables from {}: {e}",
            plan.output_file.display()
        )),
    }
}

/// Parses `NAME value` lines; only the requested names are kept (last line wins).
pub fn parse_outputs(content: &str, wanted: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in content.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        if wanted.iter().any(|w| w == name) {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_script_has_set_e_and_output_capture() {
        let s = build_script(
            ShellType::Sh,
            "echo hi",
            &["A".into(), "B".into()],
            Path::new("/t/x.out"),
            false,
        );
        assert_eq!(
            s,
            "set -e\necho hi \necho \"A $A\" >> /t/x.out\necho \"B $B\" >> /t/x.out"
        );
        let d = build_script(ShellType::Bash, "sleep 1", &["A".into()], Path::new("/t/x.out"), true);
        assert_eq!(d, "set -e\nsleep 1");
    }

    #[test]
    fn python_script_writes_outputs() {
        let s = build_script(ShellType::Python, "x=1", &["V".into()], Path::new("/t/s.out"), false);
        assert!(s.starts_with("x=1 \nimport os\nwith open('/t/s.out', 'a') as out_file:\n"));
        assert!(s.contains("out_file.write('V ' + os.getenv('V') + '\\n')"));
    }

    #[test]
    fn outputs_parse() {
        let o = parse_outputs(
            "A 1\nB two words\nC\nZ no\nA 3\n",
            &["A".into(), "B".into(), "C".into()],
        );
        assert_eq!(o.get("A").map(String::as_str), Some("3"));
        assert_eq!(o.get("B").map(String::as_str), Some("two words"));
        assert_eq!(o.get("C").map(String::as_str), Some(""));
        assert!(!o.contains_key("Z"));
    }

    #[test]
    fn lines_are_copied_whole_and_long_ones_split() {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = LineSink {
            lock: Arc::default(),
            captured: Some(captured.clone()),
        };
        let mut input = b"a\n\nbc\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\nlast");
        copy_lines(&input[..], &sink);
        let out = captured.lock().unwrap().clone();
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0], b"a");
        assert_eq!(lines[1], b"");
        assert_eq!(lines[2], b"bc");
        assert_eq!(lines[3].len(), MAX_LINE);
        assert_eq!(lines[4].len(), 10);
        assert_eq!(lines[5], b"last");
        assert_eq!(lines[6], b"");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn go_style_spawn_errors() {
        let spawn = |program: &str| {
            EngineError::Spawn {
                program: program.into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }
            .to_string()
        };
        assert_eq!(spawn("bash"), "exec: \"bash\": executable file not found in $PATH");
        assert_eq!(spawn("/bin/nope"), "fork/exec /bin/nope: no such file or directory");
    }
}
