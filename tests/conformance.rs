//! The conformance suite: one trial per directory of `scenarios/`, named after it (filters work:
//! `cargo test --test conformance -- dind`). See docs/testing.md. With `SGSIM_BACKEND=kube` the
//! trials run on the cluster of `SGSIM_KUBECONFIG` (docs/kube-backend.md).

fn main() {
    // Before any thread exists: Docker API compatibility for testcontainers.
    sgsim_cli::prepare_process();
    let (args, filters) = sgsim_cli::conformance::arguments_from_env();
    let kind = match std::env::var("SGSIM_BACKEND").as_deref() {
        Ok("kube") => sgsim_cli::RuntimeKind::Kube,
        Ok("" | "docker") | Err(_) => sgsim_cli::RuntimeKind::Docker,
        Ok(other) => {
            eprintln!("error: SGSIM_BACKEND={other:?}: expected docker or kube");
            std::process::exit(2);
        }
    };
    let conclusion = sgsim_cli::conformance::run_filtered(&args, filters, kind);
    sgsim_cli::finish_process();
    conclusion.exit();
}
