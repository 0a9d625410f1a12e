//! The conformance suite on `--backend kube`: every scenario (one trial each, named as in
//! tests/conformance.rs) against a cluster reached only through a kubeconfig.
//!
//! - With `SGSIM_KUBECONFIG` set (and `SGSIM_KUBE_CONTEXT`), that cluster: kind in the nightly
//!   workflow.
//! - Else an `sgsim cluster up` this binary starts in another process, removed at the end.
//!
//! Scenarios that need the embedded cluster are ignored, with the reason
//! (`sgsim_cluster::kube_runtime::not_applicable`); the goldens are compared with the allowed
//! differences of docs/kube-backend.md.

#[path = "common/cluster_up.rs"]
mod cluster_up;

use sgsim_cluster::kube_runtime::KubeTarget;

fn main() {
    sgsim_cli::prepare_process();
    let (args, filters) = sgsim_cli::conformance::arguments_from_env();
    let mut output = sgsim_cli::conformance::SuiteOutput::from_env();
    // A cluster of our own unless one is given; none just to list the trials.
    let up = (output.kube.kubeconfig.is_none() && !args.list).then(|| cluster_up::ClusterUp::start("kube-backend"));
    if let Some(up) = &up {
        output.kube = KubeTarget {
            kubeconfig: Some(up.kubeconfig.clone()),
            context: None,
        };
    }
    let conclusion = sgsim_cli::conformance::run_filtered_with(&args, filters, sgsim_cli::RuntimeKind::Kube, &output);
    if let Some(up) = &up
        && conclusion.has_failed()
    {
        eprintln!("--- sgsim cluster up's log ---\n{}", up.log());
    }
    drop(up);
    sgsim_cli::finish_process();
    conclusion.exit();
}
