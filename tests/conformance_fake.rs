//! The conformance suite on the fake runtime tier (no containers, no Docker): one trial per
//! scenario, ignored when its `fake.skip` says it needs real containers. Compares pod.yaml,
//! initialize.log, result.yaml and the step logs given as fake data with the goldens blessed on
//! the Docker tier (`sgsim test --runtime fake` is the same). See docs/testing.md.

fn main() {
    let (args, filters) = sgsim_cli::conformance::arguments_from_env();
    let conclusion = sgsim_cli::conformance::run_filtered(&args, filters, sgsim_cli::RuntimeKind::Fake);
    sgsim_cli::finish_process();
    conclusion.exit();
}
