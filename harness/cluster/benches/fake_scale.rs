//! The fake tier at scale (kwok-like):
//! - `fake_scale/pods=N`: N pods on 100 fake nodes (the real API server and scheduler, one fake
//!   kubelet per node), created, scheduled and run to completion (each container runs 1 second,
//!   then the pod ends `Succeeded`), as the fake tier runs them: clients on the API server's local
//!   client, on the virtual clock (the pods' second is simulated time). Wall time, pods per second,
//!   and the process's resident memory afterwards and at its peak (API server, scheduler, kubelets
//!   and the client together: an upper bound for the API server's).
//! - `fake_steps/steps=N`: one fake-tier run of a step group of N Run steps through the runner.
//!
//! `cargo bench -p sgsim-cluster --bench fake_scale` prints one line per row; under `cargo test
//! --benches` (no `--bench` argument) it runs the smallest rows once as a smoke test.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use sgsim_cluster::apiserver::{ApiServer, ApiServerOptions};
use sgsim_cluster::fake_kubelet::{FakeProfile, spawn_fake_kubelet};
use sgsim_cluster::k8s::messages::DEFAULT;
use sgsim_cluster::runtime::{FakeRuntime, RunSettings, Runtime};
use sgsim_cluster::scheduler::spawn_scheduler_with;
use sgsim_core::record::Outcome;

const NODES: usize = 100;
const IMAGE: &str = "busybox:1.36";

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Creates `pods` pods on a fresh fake cluster of [`NODES`] nodes and waits until every one has
/// `Succeeded`; returns the wall time from the first create to the last completion.
async fn pods_to_completion(pods: usize) -> Duration {
    let api = ApiServer::start(ApiServerOptions {
        service_account_admission: false,
        ..Default::default()
    })
    .await
    .expect("api server");
    let client = api.local_client();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut kubelets = Vec::new();
    for i in 0..NODES {
        let name = format!("node-{i}");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name},
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .expect("node");
        nodes.create(&PostParams::default(), &node).await.expect("create node");
        let profile = FakeProfile {
            present: vec![IMAGE.to_string()],
            run_for: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        kubelets.push(spawn_fake_kubelet(client.clone(), &name, DEFAULT, profile));
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create ns");
    let scheduler = spawn_scheduler_with(client.clone(), DEFAULT);
    let api_pods: Api<Pod> = Api::namespaced(client.clone(), "bench");

    // Completions are counted from a watch, started before the first pod exists.
    let watch = {
        let api_pods = api_pods.clone();
        tokio::spawn(async move {
            let mut done = HashSet::new();
            let mut stream = watcher(api_pods, watcher::Config::default()).touched_objects().boxed();
            while let Ok(Some(p)) = stream.try_next().await {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded") {
                    done.insert(p.metadata.name.unwrap_or_default());
                    if done.len() == pods {
                        return;
                    }
                }
            }
            panic!("the pod watch ended before every pod completed");
        })
    };
    let started = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api_pods = api_pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i}"), "namespace": "bench"},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent"}],
                    },
                }))
                .expect("pod");
                api_pods.create(&PostParams::default(), &pod).await.expect("create pod");
            }
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
    watch.await.expect("every pod completed");
    let took = started.elapsed();
    for k in kubelets {
        k.shutdown().await;
    }
    scheduler.shutdown().await;
    api.shutdown().await;
    took
}

/// A scenario whose step group has `steps` Run steps.
fn step_group(steps: usize) -> sgsim_core::Scenario {
    let mut text = String::from(
        "name: bench-steps
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
                        namespace: apps
                    steps:
",
    );
    for i in 0..steps {
        text.push_str(&format!(
            "                      - step:
                          identifier: s{i}
                          name: s{i}
                          type: Run
                          spec:
                            image: alpine:3.20
                            shell: Sh
                            command: echo {i}
"
        ));
    }
    text.push_str(
        "fixtures:
  namespaces: [apps]
  # 50 step containers' default requests exceed the default node (8 CPUs, 16Gi).
  nodes:
    - {name: node-1, cpu: \"64\", memory: 256Gi}
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
",
    );
    sgsim_core::load("scenario.yaml", &text, &sgsim_core::no_files).unwrap_or_else(|e| panic!("{}", e.diagnostics()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The fake tier's clock: one thread, paused (timers jump ahead when every task waits).
fn virtual_clock() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (pod_rows, step_rows, samples): (&[usize], &[usize], usize) = if bench {
        (&[1, 10, 100, 1000], &[1, 10, 50], 5)
    } else {
        (&[10], &[1], 1)
    };
    for &n in pod_rows {
        let rt = virtual_clock();
        let took = rt.block_on(pods_to_completion(n));
        drop(rt);
        let (rss, hwm) = memory_mib();
        println!(
            "fake_scale/pods={n:<5} nodes={NODES}  {:>9.3} ms  {:>8.0} pods/s  RSS {rss:.0} MiB (peak {hwm:.0} MiB)",
            took.as_secs_f64() * 1000.0,
            n as f64 / took.as_secs_f64()
        );
    }
    for &n in step_rows {
        let sc = step_group(n);
        let times = (0..samples)
            .map(|_| {
                let rt = runtime();
                let started = Instant::now();
                let out = rt
                    .block_on(FakeRuntime.run(&sc, &RunSettings::default(), &|_| {}))
                    .expect("run");
                assert_eq!(out.record.status, Outcome::Success, "{:#?}", out.record);
                started.elapsed()
            })
            .collect();
        let m = median(times);
        println!(
            "fake_steps/steps={n:<3} one fake-tier run, median of {samples}: {:>9.3} ms",
            m.as_secs_f64() * 1000.0
        );
    }
}
