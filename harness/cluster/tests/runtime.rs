//! The one run path on the fake runtime (no Docker): [`FakeRuntime`] runs a scenario end to end
//! through the same runner as the Docker runtime, and what is not a Kubernetes or product message
//! comes back as sgsim's own error instead of a line of the Initialize log.

use sgsim_cluster::runner::RunError;
use sgsim_cluster::runtime::{FakeRuntime, RunSettings, Runtime, RuntimeError};
use sgsim_core::record::{Level, Outcome};

fn scenario(namespace: &str) -> sgsim_core::Scenario {
    let text = format!(
        "name: runtime-test
pipeline:
  pipeline:
    identifier: p
    name: p
    stages:
      - stage:
          identifier: s
          name: s
          type: Custom
          spec:
            execution:
              steps:
                - stepGroup:
                    identifier: sg
                    name: sg
                    stepGroupInfra:
                      type: KubernetesDirect
                      spec:
                        connectorRef: k8s
                        namespace: \"{namespace}\"
                    steps:
                      - step:
                          identifier: hello
                          name: hello
                          type: Run
                          spec:
                            image: alpine:3.20
                            command: echo hello
fixtures:
  namespaces: [apps]
  connectors:
    - {{identifier: k8s, type: KubernetesCluster}}
"
    );
    sgsim_core::load("scenario.yaml", &text, &sgsim_core::no_files).unwrap_or_else(|e| panic!("{}", e.diagnostics()))
}

#[tokio::test]
async fn fake_runtime_runs_a_scenario_through_the_runner() {
    let sc = scenario("apps");
    let lines = std::sync::Mutex::new(Vec::new());
    let out = FakeRuntime
        .run(&sc, &RunSettings::default(), &|e| {
            lines.lock().unwrap().push(format!("{e:?}"))
        })
        .await
        .expect("run");
    assert_eq!(out.record.status, Outcome::Success, "{:#?}", out.record);
    let init: Vec<&str> = out.record.initialize.iter().map(|l| l.text.as_str()).collect();
    assert!(init[0].starts_with("Starting job to create pod "), "{init:#?}");
    assert!(
        init.last()
            .unwrap()
            .ends_with(" is now in running status on apps namespace"),
        "{init:#?}"
    );
    assert!(!lines.lock().unwrap().is_empty(), "the sink hears the run");
    assert!(!FakeRuntime.writes_goldens());
    // Each step records the image the Docker tier runs for it (result.yaml's `image:`).
    assert_eq!(
        out.record.steps[0].image,
        Some(sgsim_core::record::ImageRecord {
            requested: "alpine:3.20".into(),
            ran_as: "busybox".into(),
            source: "stand-in".into(),
        })
    );
}

#[tokio::test]
async fn a_request_that_cannot_be_built_is_sgsims_error_not_a_log_line() {
    // A namespace with a space cannot even form a request URL: no API server ever answers, so
    // nothing Kubernetes or the product would write may appear in the Initialize log.
    let sc = scenario("bad ns");
    let err = FakeRuntime
        .run(&sc, &RunSettings::default(), &|_| {})
        .await
        .expect_err("no record");
    match &err {
        RuntimeError::Run(RunError::Kube { what, .. }) => {
            assert_eq!(*what, format!("create pod bad ns/{} and its secrets", pod_name(&sc)))
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(err.chain().contains("create pod bad ns/"), "{}", err.chain());
    // A namespace the API server refuses: the product logs nothing of it (it is no event, and its
    // initialize task streams no line on an API exception); the refusal is the group's error.
    let sc = scenario("missing");
    let out = FakeRuntime
        .run(&sc, &RunSettings::default(), &|_| {})
        .await
        .expect("record");
    assert_eq!(out.record.status, Outcome::Failed);
    let texts: Vec<&str> = out.record.initialize.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(texts[0].starts_with("Starting job to create pod"), "{texts:#?}");
    assert!(out.record.initialize.iter().all(|l| l.level == Level::Info));
    assert_eq!(out.record.error.as_deref(), Some("namespaces \"missing\" not found"));
}

fn pod_name(sc: &sgsim_core::Scenario) -> String {
    sgsim_core::render_pod(sc).metadata.name.unwrap_or_default()
}
