//! The fake runtime tier end to end: a fresh fake cluster (API server, scheduler, fake kubelet,
//! fake lite-engine) runs `scenarios/step-fails` (three steps, one failing) through the same
//! runner as the Docker tier, until the step group's result.

use criterion::{Criterion, criterion_group, criterion_main};
use sgsim_cluster::fake_runtime::FakeCluster;
use sgsim_cluster::runner::{RunOptions, run};
use sgsim_core::record::Outcome;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/step-fails");
    let text = std::fs::read_to_string(dir.join("scenario.yaml")).expect("scenario.yaml");
    let loader = |p: &str| std::fs::read_to_string(dir.join(p)).map_err(|e| e.to_string());
    let sc = sgsim_core::load("scenario.yaml", &text, &loader).expect("valid scenario");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("fake_runtime");
    g.sample_size(10);
    g.bench_function("run_step_fails_scenario", |b| {
        b.to_async(&rt).iter(|| async {
            let cluster = FakeCluster::start(&sc).await.expect("fake cluster");
            let opts = RunOptions {
                task_prefix: "bench".into(),
                ..Default::default()
            };
            let rec = run(
                cluster.client(),
                cluster.dialer(),
                cluster.delegate(),
                &sc,
                &opts,
                &|_| {},
            )
            .await
            .expect("run");
            assert_eq!(rec.status, Outcome::Failed);
            cluster.shutdown().await;
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
