//! The fake runtime tier end to end, as `sgsim run --runtime fake` runs it (`FakeRuntime`, on the
//! virtual clock): a fresh fake cluster (API server, scheduler, fake kubelet,
//! fake lite-engine) runs `scenarios/step-fails` (three steps, one failing) through the same
//! runner as the Docker tier, until the step group's result.

use criterion::{Criterion, criterion_group, criterion_main};
use sgsim_cluster::runtime::{FakeRuntime, RunSettings, Runtime};
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
        // The fake tier's one run path: a fresh fake cluster on the virtual clock.
        b.to_async(&rt).iter(|| async {
            let out = FakeRuntime
                .run(&sc, &RunSettings::default(), &|_| {})
                .await
                .expect("run");
            assert_eq!(out.record.status, Outcome::Failed);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
