//! Writing to stdout and stderr without ever panicking: a closed pipe (`sgsim run … | head -3`)
//! is remembered instead, and [`closed`] completes, so the command removes everything it started
//! and ends quietly with [`crate::exit::OUTPUT_CLOSED`], as `git log | head` ends. Harness secret
//! values given to [`mask_secrets`] are masked here, where every line is produced, on both streams.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

static CLOSED: AtomicBool = AtomicBool::new(false);
/// `--color`: 0 auto, 1 always, 2 never.
static COLOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// When to color output (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When the stream is a terminal and `NO_COLOR` is unset.
    #[default]
    Auto,
    /// Always, also into pipes and files (`less -R`, CI logs that render ANSI).
    Always,
    /// Never.
    Never,
}

/// Sets the process-wide choice ([`color_stdout`], [`color_stderr`] follow it).
pub fn set_color(choice: ColorChoice) {
    let v = match choice {
        ColorChoice::Auto => 0,
        ColorChoice::Always => 1,
        ColorChoice::Never => 2,
    };
    COLOR.store(v, Ordering::SeqCst);
    if choice != ColorChoice::Auto {
        console::set_colors_enabled(choice == ColorChoice::Always);
        console::set_colors_enabled_stderr(choice == ColorChoice::Always);
    }
}

fn color_for(is_term: bool) -> bool {
    match COLOR.load(Ordering::SeqCst) {
        1 => true,
        2 => false,
        _ => is_term && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Whether what goes to stdout is colored: `--color`, else a terminal without `NO_COLOR`.
pub fn color_stdout() -> bool {
    color_for(console::Term::stdout().is_term())
}

/// Whether what goes to stderr is colored: `--color`, else a terminal without `NO_COLOR`.
pub fn color_stderr() -> bool {
    color_for(console::Term::stderr().is_term())
}
static NOTIFY: Notify = Notify::const_new();
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Masks these Harness secret values (as `**************`) in everything written from now on.
pub fn mask_secrets(secrets: &[String]) {
    *SECRETS.lock().unwrap_or_else(|e| e.into_inner()) = secrets.to_vec();
}

/// `text` with the Harness secret values masked (for what goes to files, such as logs).
pub fn mask(text: &str) -> String {
    masked(text)
}

fn masked(text: &str) -> String {
    sgsim_core::normalize::mask_secrets(text, &SECRETS.lock().unwrap_or_else(|e| e.into_inner()))
}

fn mark_closed() {
    if !CLOSED.swap(true, Ordering::SeqCst) {
        NOTIFY.notify_waiters();
    }
}

/// Whether stdout or stderr was found closed.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Watches stdout for its reader going away (`sgsim run … | head -1` while the run prints
/// nothing: a pod Pending until its timeout, a long pull), so the run stops then rather than at its
/// next line. A pipe's write end reports an error once its read end is closed; stdout that is a
/// terminal, a file or /dev/null cannot be watched and needs no watching. Call inside a tokio
/// runtime.
pub fn watch_stdout() {
    use std::os::fd::AsFd;
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return;
    };
    tokio::spawn(async move {
        if reader_gone(fd).await {
            mark_closed();
        }
    });
}

/// Waits until the read end of the pipe whose write end is `fd` is closed: true then, false at once
/// when `fd` cannot be watched (a terminal never reports it; a file or /dev/null cannot be polled).
#[allow(unsafe_code)]
async fn reader_gone(fd: std::os::fd::OwnedFd) -> bool {
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    // SAFETY: `fd` is an OwnedFd that the AsyncFd owns: it stays open and refers to the same file
    // description until the AsyncFd is dropped.
    let Ok(watched) = (unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }) else {
        return false;
    };
    loop {
        match watched.ready(Interest::ERROR).await {
            Ok(guard) if guard.ready().is_error() => return true,
            Ok(mut guard) => guard.clear_ready(),
            Err(_) => return false,
        }
    }
}

/// Completes once stdout or stderr is found closed.
pub async fn closed() {
    loop {
        let notified = NOTIFY.notified();
        if is_closed() {
            return;
        }
        notified.await;
    }
}

fn write_to(mut w: impl Write, text: &str) {
    if is_closed() {
        return;
    }
    if w.write_all(masked(text).as_bytes()).and_then(|()| w.flush()).is_err() {
        mark_closed();
    }
}

/// Prints `text` on stdout (no newline added).
pub fn out(text: &str) {
    write_to(std::io::stdout().lock(), text);
}

/// Prints a line on stdout.
pub fn out_line(line: &str) {
    out(&format!("{line}\n"));
}

/// Prints a line on stderr.
pub fn err_line(line: &str) {
    write_to(std::io::stderr().lock(), &format!("{line}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pipe_whose_reader_goes_away_is_noticed_without_a_write() {
        let (reader, writer) = std::io::pipe().unwrap();
        let watch = tokio::spawn(reader_gone(writer.into()));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!watch.is_finished(), "the reader is still there");
        drop(reader);
        let gone = tokio::time::timeout(std::time::Duration::from_secs(30), watch)
            .await
            .expect("noticed")
            .unwrap();
        assert!(gone);
        // A regular file cannot be watched: false at once.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!reader_gone(f.into()).await);
    }

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_remembered_and_wakes_the_waiter() {
        let waiter = tokio::spawn(closed());
        tokio::task::yield_now().await;
        assert!(!is_closed());
        write_to(Closed, "x\n");
        assert!(is_closed());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        // Later writes are dropped without an error.
        write_to(Closed, "y\n");
    }

    #[test]
    fn color_choice_overrides_the_terminal_check() {
        set_color(ColorChoice::Always);
        assert!(color_for(false));
        set_color(ColorChoice::Never);
        assert!(!color_for(true));
        set_color(ColorChoice::Auto);
        assert!(!color_for(false));
    }

    #[test]
    fn secrets_are_masked_in_what_is_written() {
        mask_secrets(&["hs-7f3k9-token".to_string()]);
        assert_eq!(masked("token=hs-7f3k9-token;"), "token=**************;");
        mask_secrets(&[]);
        assert_eq!(masked("token=hs-7f3k9-token;"), "token=hs-7f3k9-token;");
    }
}
