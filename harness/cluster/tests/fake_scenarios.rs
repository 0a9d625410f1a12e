//! Failure-mode scenarios on the fake runtime tier: each scenario's pod (rendered as `sgsim run`
//! renders it) and fixtures go to the real API server and scheduler with fake kubelets (no Docker),
//! and the pod's events, written as the Initialize log writes them, must equal the Kubernetes lines
//! of the scenario's golden initialize.log (blessed from the Docker-backed tier).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use sgsim_cluster::fake_runtime::FakeCluster;
use sgsim_core::initialize;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The golden Initialize log without the product's own lines (`Starting job ...`, `Pod ... is now
/// in running status ...`, `Pod ... has failed ...`): what Kubernetes wrote.
fn golden_kubernetes_lines(scenario: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("golden").join(scenario).join("initialize.log"))
        .unwrap_or_else(|e| panic!("golden/{scenario}/initialize.log: {e}"));
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !initialize::is_product_line(l))
        .map(str::to_string)
        .collect();
    assert!(!lines.is_empty(), "{scenario}: no Kubernetes line in the golden");
    lines
}

async fn run_on_fake_tier(scenario: &str) {
    let dir = repo().join("scenarios").join(scenario);
    let text = std::fs::read_to_string(dir.join("scenario.yaml")).expect("scenario.yaml");
    let loader = |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
    let sc = sgsim_core::load("scenario.yaml", &text, &loader).unwrap_or_else(|e| panic!("{scenario}: {e:?}"));

    // The scenario's nodes with fake kubelets (its `fake:` data), the scheduler, the API server.
    let cluster = FakeCluster::start(&sc).await.expect("fake cluster");
    let client = cluster.client();
    sgsim_cluster::runner::create_fixtures(&client, &sc)
        .await
        .expect("fixtures");
    let ns = sc.namespace().to_string();
    let pod = sgsim_core::render_pod(&sc);
    let name = pod.metadata.name.clone().unwrap_or_default();
    // The pull Secrets and the lite-engine's Secret come first, as the product creates them.
    let creds = sgsim_core::render::EngineCredentials {
        delegate_token: "t".into(),
        log_service_token: "t".into(),
        log_service_endpoint: sgsim_cluster::runner::LOG_SERVICE_ENDPOINT.into(),
    };
    sgsim_cluster::registry::create_pod_secrets(&client, &sc, &creds)
        .await
        .expect("create the pod's Secrets");
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");

    let want = golden_kubernetes_lines(scenario);
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=Pod"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let mut evs = events.list(&lp).await.expect("events").items;
        evs.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        let got: Vec<String> = evs
            .iter()
            .map(|e| {
                let msg = sgsim_core::normalize::normalize_text(e.message.as_deref().unwrap_or_default());
                initialize::format_line(initialize::event_level(e.type_.as_deref()), &msg)
            })
            .collect();
        if got == want || Instant::now() >= deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    cluster.shutdown().await;
    assert_eq!(got, want, "{scenario} on the fake tier");
}

#[tokio::test]
async fn k8s_unschedulable_taint() {
    run_on_fake_tier("k8s-unschedulable-taint").await;
}

#[tokio::test]
async fn k8s_unschedulable_resources() {
    run_on_fake_tier("k8s-unschedulable-resources").await;
}

#[tokio::test]
async fn node_selector_unschedulable() {
    run_on_fake_tier("node-selector-unschedulable").await;
}

#[tokio::test]
async fn volume_config_map_missing() {
    run_on_fake_tier("volume-config-map-missing").await;
}

#[tokio::test]
async fn volume_secret_missing() {
    run_on_fake_tier("volume-secret-missing").await;
}

#[tokio::test]
async fn security_run_as_non_root() {
    run_on_fake_tier("security-run-as-non-root").await;
}

#[tokio::test]
async fn k8s_active_deadline() {
    run_on_fake_tier("k8s-active-deadline").await;
}

/// A pod that starts: the whole Initialize log up to `Pod ... is now in running status`.
#[tokio::test]
async fn k8s_node_affinity() {
    run_on_fake_tier("k8s-node-affinity").await;
}

#[tokio::test]
async fn run_single() {
    run_on_fake_tier("run-single").await;
}

/// A step container stuck in CreateContainerConfigError (a secretKeyRef naming a missing key)
/// does not keep the kubelet from creating and starting the lite-engine after it: SyncPod starts
/// every container it can. The golden (from a real run) says so, and the fake kubelet does it too.
#[tokio::test]
async fn a_failing_step_container_does_not_keep_the_lite_engine_from_starting() {
    let want = golden_kubernetes_lines("k8s-secret-key-missing");
    let failed = want
        .iter()
        .position(|l| l.starts_with("Error: couldn't find key token in Secret"))
        .unwrap_or_else(|| panic!("no config error in the golden: {want:#?}"));
    let started = want
        .iter()
        .position(|l| l == "Started container lite-engine")
        .unwrap_or_else(|| panic!("the lite-engine never started in the golden: {want:#?}"));
    assert!(failed < started, "{want:#?}");
    run_on_fake_tier("k8s-secret-key-missing").await;
}
