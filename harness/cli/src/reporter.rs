//! The one reporter: every part of a run sends typed [`Event`]s here and this renders them (live
//! Initialize log and step logs on stdout; progress, spinners and notes on stderr).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use console::Style;
use indicatif::{ProgressBar, ProgressStyle};
use sgsim_cluster::images::{BuildEvent, PullEvent};
use sgsim_cluster::pool::SessionEvent;
use sgsim_cluster::runner::RunEvent;
use sgsim_core::initialize;
use sgsim_core::record::{Level, Outcome, StepRecord};

use crate::output;

/// Everything the reporter renders.
#[derive(Clone, Debug)]
pub enum Event {
    /// Session start-up (images, nodes).
    Session(SessionEvent),
    /// A run's progress.
    Run(RunEvent),
    /// A note for the user (stderr).
    Note(String),
    /// The end of a run.
    Summary {
        /// Scenario name.
        scenario: String,
        /// Outcome of the step group.
        status: Outcome,
        /// Whether it is what the scenario expects.
        as_expected: bool,
        /// Why not, when not.
        mismatch: Vec<String>,
        /// How long the whole run took.
        took: Duration,
    },
}

#[derive(Default)]
struct State {
    spinner: Option<ProgressBar>,
    in_init: bool,
    fallback_noted: bool,
}

/// Renders events.
pub struct Reporter {
    color: bool,
    progress: bool,
    state: Mutex<State>,
}

fn fmt_dur(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Reporter {
    /// A reporter; `color` for ANSI styles, `progress` for spinners (a terminal on stderr).
    pub fn new(color: bool, progress: bool) -> Self {
        Reporter {
            color,
            progress,
            state: Mutex::new(State::default()),
        }
    }

    /// Mask these Harness secret values (as `**************`) in every line printed from now on,
    /// on stdout and stderr ([`output::mask_secrets`]).
    pub fn mask_secrets(&self, secrets: &[String]) {
        output::mask_secrets(secrets);
    }

    /// A reporter configured from the terminal and `NO_COLOR`/`CI`.
    pub fn for_terminal() -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| v != "false" && v != "0");
        let color = output::color_stdout();
        let progress = console::Term::stderr().is_term() && !ci;
        Reporter::new(color, progress)
    }

    fn style(&self, s: Style) -> Style {
        if self.color { s } else { Style::new() }
    }

    fn out(&self, line: &str) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &st.spinner {
            Some(sp) => sp.suspend(|| output::out_line(line)),
            None => output::out_line(line),
        }
    }

    fn err(&self, line: &str) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &st.spinner {
            Some(sp) => sp.suspend(|| output::err_line(line)),
            None => output::err_line(line),
        }
    }

    fn spin(&self, msg: String) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.progress {
            drop(st);
            crate::output::err_line(&msg);
            return;
        }
        let sp = st.spinner.get_or_insert_with(|| {
            let sp = ProgressBar::new_spinner();
            sp.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            sp.enable_steady_tick(Duration::from_millis(120));
            sp
        });
        sp.set_message(msg);
    }

    fn spin_done(&self, msg: Option<String>) {
        let sp = self.state.lock().unwrap_or_else(|e| e.into_inner()).spinner.take();
        if let Some(sp) = sp {
            sp.finish_and_clear();
        }
        if let Some(m) = msg {
            crate::output::err_line(&m);
        }
    }

    /// Renders one event.
    pub fn event(&self, e: &Event) {
        let green = self.style(Style::new().green());
        let red = self.style(Style::new().red().bold());
        let yellow = self.style(Style::new().yellow());
        let dim = self.style(Style::new().dim());
        let bold = self.style(Style::new().bold());
        match e {
            Event::Session(s) => match s {
                SessionEvent::Image(BuildEvent::UpToDate) => {}
                SessionEvent::Image(BuildEvent::Building { reason }) => {
                    self.err(&format!(
                        "building sgsim images ({reason}); the first build takes a few minutes"
                    ));
                    self.spin("building images".into());
                }
                SessionEvent::Image(BuildEvent::Progress(line)) => {
                    if self.progress {
                        self.spin(format!("building images: {line}"))
                    } else {
                        crate::output::err_line(&format!("  {line}"))
                    }
                }
                SessionEvent::Image(BuildEvent::Finished { took }) => {
                    self.spin_done(Some(format!("images built in {}", fmt_dur(*took))))
                }
                SessionEvent::Reaped(what) => self.err(&format!("{}", yellow.apply_to(format!("cleanup: {what}")))),
                SessionEvent::NodeStarting(n) => self.spin(format!("starting node {n}")),
                SessionEvent::NodeReady { name, took, fallback } => {
                    self.spin_done(Some(format!("node {name} ready in {}", fmt_dur(*took))));
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if *fallback && !st.fallback_noted {
                        st.fallback_noted = true;
                        drop(st);
                        self.err(&format!(
                            "{}",
                            yellow.apply_to(
                                "note: this Docker daemon refuses --privileged (unable to apply caps); privileged containers run with every other capability, unconfined seccomp/apparmor/systempaths, all devices and a writable /sys/fs/cgroup instead"
                            )
                        ));
                    }
                }
                SessionEvent::Pull(p) => match p {
                    PullEvent::Started { image } => self.spin(format!("pulling {image}")),
                    PullEvent::Progress { image, status } => {
                        if self.progress {
                            self.spin(format!("pulling {image}: {status}"))
                        }
                    }
                    PullEvent::Done { image, took } => {
                        self.spin_done(Some(format!("pulled {image} in {}", fmt_dur(*took))))
                    }
                    PullEvent::Failed { image, reason } => {
                        self.spin_done(None);
                        self.err(&format!(
                            "{}",
                            yellow.apply_to(format!(
                                "warn: cannot pull {image}: {reason} (it runs as what this machine holds, else a stand-in; --pull never skips pulling)"
                            ))
                        ))
                    }
                },
                SessionEvent::ImageLoaded { image, took } => self.err(&format!("loaded {image} in {}", fmt_dur(*took))),
            },
            Event::Note(n) => self.err(n),
            Event::Run(r) => match r {
                RunEvent::Init(line) => {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    let first = !st.in_init;
                    st.in_init = true;
                    drop(st);
                    if first {
                        self.out(&format!("{}", bold.apply_to("── Initialize ──")));
                    }
                    let text = initialize::format_line(line.level, &line.text);
                    match line.level {
                        Level::Info => self.out(&text),
                        Level::Warn => self.out(&format!("{}", yellow.apply_to(text))),
                    }
                }
                RunEvent::StepStarted { id, name } => {
                    self.state.lock().unwrap_or_else(|e| e.into_inner()).in_init = false;
                    self.out(&format!("{}", bold.apply_to(format!("── Step {name} ({id}) ──"))));
                }
                RunEvent::StepFinished(rec) => self.step_finished(rec, &green, &red, &yellow, &dim),
            },
            Event::Summary {
                scenario,
                status,
                as_expected,
                mismatch,
                took,
            } => {
                let st = match status {
                    Outcome::Success => green.apply_to(status.as_str()),
                    Outcome::Skipped => yellow.apply_to(status.as_str()),
                    _ => red.apply_to(status.as_str()),
                };
                self.out(&format!(
                    "{} step group {st} in {}",
                    bold.apply_to(scenario),
                    fmt_dur(*took)
                ));
                if *as_expected {
                    self.out(&format!("{}", green.apply_to("outcome as expected")));
                } else {
                    for m in mismatch {
                        self.out(&format!("{}", red.apply_to(format!("unexpected: {m}"))));
                    }
                }
            }
        }
    }

    fn step_finished(&self, rec: &StepRecord, green: &Style, red: &Style, yellow: &Style, dim: &Style) {
        if rec.status == Outcome::Skipped {
            self.out(&format!(
                "{}",
                yellow.apply_to(format!("── Step {} ({}) skipped ──", rec.name, rec.id))
            ));
            return;
        }
        if rec.background {
            self.out(&format!(
                "{}",
                dim.apply_to("(background service started; its log is shown at the end)")
            ));
        } else {
            for l in rec.log.lines() {
                self.out(l);
            }
        }
        let exit = rec.exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default();
        let line = format!("{}{exit} in {}", rec.status.as_str(), fmt_dur(rec.took));
        match rec.status {
            Outcome::Success => self.out(&format!("{}", green.apply_to(line))),
            _ => {
                self.out(&format!("{}", red.apply_to(line)));
                if let Some(e) = &rec.error {
                    self.out(&format!("{}", red.apply_to(e)));
                }
            }
        }
    }

    /// A hint for the user (yellow `hint:` line).
    pub fn hint(&self, text: &str) {
        let yellow = self.style(Style::new().yellow());
        self.out(&format!("{}", yellow.apply_to(format!("hint: {text}"))));
    }

    /// After the run: each Background step's last [`BACKGROUND_TAIL`] log lines (service output,
    /// often long daemon start-up), with the whole log written to a file under `logs_dir` (secrets
    /// masked) whose path is shown.
    pub fn background_logs(&self, steps: &[StepRecord], logs_dir: &Path) {
        let bold = self.style(Style::new().bold());
        let dim = self.style(Style::new().dim());
        for s in steps.iter().filter(|s| s.background && !s.log.is_empty()) {
            self.out(&format!(
                "{}",
                bold.apply_to(format!("── Background {} ({}) log ──", s.name, s.id))
            ));
            let (tail, earlier) = log_tail(&s.log, BACKGROUND_TAIL);
            let path = logs_dir.join(format!("{}.log", s.id));
            let saved = std::fs::create_dir_all(logs_dir).and_then(|()| std::fs::write(&path, output::mask(&s.log)));
            if earlier > 0 {
                let whole = match &saved {
                    Ok(()) => format!("the whole log: {}", path.display()),
                    Err(e) => format!("the whole log could not be written to {}: {e}", path.display()),
                };
                self.out(&format!(
                    "{}",
                    dim.apply_to(format!("… {earlier} earlier line(s); {whole}"))
                ));
            }
            for l in tail {
                self.out(l);
            }
        }
    }
}

/// How many lines of a Background step's log `sgsim run` shows.
pub const BACKGROUND_TAIL: usize = 10;

/// The last `n` lines of `log` and how many come before them.
pub fn log_tail(log: &str, n: usize) -> (Vec<&str>, usize) {
    let lines: Vec<&str> = log.lines().collect();
    let earlier = lines.len().saturating_sub(n);
    (lines[earlier..].to_vec(), earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_log_is_shown_by_its_tail() {
        let log: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        let (tail, earlier) = log_tail(&log, 10);
        assert_eq!(earlier, 15);
        assert_eq!(tail.first(), Some(&"line 16"));
        assert_eq!(tail.last(), Some(&"line 25"));
        assert_eq!(log_tail("a\nb\n", 10), (vec!["a", "b"], 0));
        assert_eq!(log_tail("", 10), (Vec::<&str>::new(), 0));
    }
}
