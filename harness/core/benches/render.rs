//! Render throughput: how many Pods (and execution plans) per second core renders for a realistic
//! containerized step group (the dind fixture), and how fast a pipeline is loaded and validated.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const PIPELINE: &str = include_str!("../tests/fixtures/dind_pipeline.yaml");

fn bench(c: &mut Criterion) {
    let scenario = sgsim_core::load("dind_pipeline.yaml", PIPELINE, &sgsim_core::no_files).expect("fixture is valid");
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.bench_function("render_pod", |b| {
        b.iter(|| black_box(sgsim_core::render_pod(black_box(&scenario))))
    });
    g.bench_function("plan", |b| b.iter(|| black_box(sgsim_core::plan(black_box(&scenario)))));
    g.bench_function("load_and_validate", |b| {
        b.iter(|| black_box(sgsim_core::load("dind_pipeline.yaml", black_box(PIPELINE), &sgsim_core::no_files).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
