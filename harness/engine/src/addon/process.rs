//! Running a step's processes: started in their own process group with stdout and stderr on one
//! pipe copied line by line to the addon's stdout, waited for until exit, timeout or SignalStop,
//! and the exit turned into the step's [`Outcome`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};

use super::remote_log::RemoteLog;
use super::script::{Plan, parse_outputs, plan_plugin, plan_run};
use super::{FailKind, Inner, Outcome, debug_enabled};
use crate::error::{EngineError, Result};
use crate::proto::engine::unit_step;

/// Writes whole lines to the addon's stdout (shared by all running steps), or to a test buffer,
/// and to the step's remote log when it has one.
#[derive(Clone, Default)]
pub(super) struct LineSink {
    lock: Arc<Mutex<()>>,
    remote: Option<Arc<RemoteLog>>,
    #[cfg(test)]
    captured: Option<Arc<Mutex<Vec<u8>>>>,
}

impl LineSink {
    /// This sink, also writing to `remote`.
    fn with_remote(&self, remote: Option<Arc<RemoteLog>>) -> LineSink {
        LineSink { remote, ..self.clone() }
    }

    fn write_line(&self, line: &[u8]) {
        if let Some(r) = &self.remote {
            let mut text = String::from_utf8_lossy(line).into_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            r.write_line(&text);
        }
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

pub(super) fn signal_group(pgid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, sig);
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

fn start(inner: &Inner, id: &str, plan: &Plan, log: Option<Arc<RemoteLog>>) -> Result<Started> {
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
    let sink = inner.sink.with_remote(log);
    std::thread::spawn(move || {
        copy_lines(reader, &sink);
        let _ = eof_tx.send(());
    });
    debug!("step {id}: started {:?} as pid {pid}", plan.argv);
    Ok(Started { child, pgid: pid, eof })
}

/// Runs `step` with its log sent to the log service (when the addon has a log proxy); the log of
/// a step that is not detached is closed when it ends, and a failed upload fails the step.
pub(super) async fn run_step(inner: &Arc<Inner>, step: crate::proto::engine::UnitStep, tmp: PathBuf) -> Outcome {
    let log = match &inner.config.log_proxy {
        Some(proxy) => Some(RemoteLog::start(proxy, &step.log_key).await),
        None => None,
    };
    let detach = matches!(&step.step, Some(unit_step::Step::Run(r)) if r.detach);
    let outcome = run_logged(inner, step, tmp, log.clone()).await;
    let Some(log) = log.filter(|_| !detach) else {
        return outcome;
    };
    match (log.close().await, outcome) {
        (Ok(()), o) => o,
        (Err(e), Outcome::Success { .. }) => Outcome::failure(e),
        (Err(e), Outcome::Failed { kind, message }) => Outcome::Failed {
            kind,
            message: format!("{message}\n{e}"),
        },
    }
}

async fn run_logged(
    inner: &Arc<Inner>,
    step: crate::proto::engine::UnitStep,
    tmp: PathBuf,
    log: Option<Arc<RemoteLog>>,
) -> Outcome {
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
        };
    }
    let started = match start(inner, &id, &plan, log) {
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
                // The product's addon: its context's error once the execution timeout passed.
                message: "context deadline exceeded".into(),
            };
        }
        End::Stopped => {
            return Outcome::Failed {
                kind: FailKind::Aborted,
                message: "step aborted: addon received SignalStop".into(),
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
            };
        }
    } else {
        let sig = status.signal().unwrap_or(0);
        return Outcome::Failed {
            kind: FailKind::Failure,
            message: format!("signal: {}", signal_name(sig)),
        };
    }
    if plan.output_vars.is_empty() {
        return Outcome::Success {
            outputs: BTreeMap::new(),
        };
    }
    match std::fs::read_to_string(&plan.output_file) {
        Ok(content) => Outcome::Success {
            outputs: parse_outputs(&content, &plan.output_vars),
        },
        Err(e) => Outcome::failure(format!(
            "cannot read output variables from {}: {e}",
            plan.output_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_copied_whole_and_long_ones_split() {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = LineSink {
            lock: Arc::default(),
            remote: None,
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
