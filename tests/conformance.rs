//! The conformance suite: one trial per directory of `scenarios/`, named after it (filters work:
//! `cargo test --test conformance -- dind`). See docs/testing.md.

fn main() {
    // Before any thread exists: Docker API compatibility for testcontainers.
    sgsim_cli::prepare_process();
    let (args, filters) = sgsim_cli::conformance::arguments_from_env();
    let conclusion = sgsim_cli::conformance::run_filtered(&args, filters, sgsim_cli::RuntimeKind::Docker);
    sgsim_cli::finish_process();
    conclusion.exit();
}
