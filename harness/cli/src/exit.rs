//! Documented exit codes of `sgsim` (also listed in `sgsim --help` and docs/cli.md).

/// Everything passed: the outcome matched the expected one, goldens matched.
pub const OK: i32 = 0;
/// The input is invalid (YAML, unknown field, missing step group, unreadable file, ...).
pub const INVALID_INPUT: i32 = 1;
/// Wrong command-line usage (clap's own code).
pub const USAGE: i32 = 2;
/// The step group ran but its outcome differs from the expected one, or a golden file differs.
pub const MISMATCH: i32 = 3;
/// The environment failed: Docker unreachable, images could not be built, cluster did not start.
pub const INFRASTRUCTURE: i32 = 4;
/// Interrupted (Ctrl-C); everything the run started was removed.
pub const INTERRUPTED: i32 = 130;
/// Standard output was closed (`sgsim run … | head`): the run stopped and everything it started
/// was removed (128 + SIGPIPE, the code of a program a closed pipe ends).
pub const OUTPUT_CLOSED: i32 = 141;
