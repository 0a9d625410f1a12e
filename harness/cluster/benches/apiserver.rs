//! API-server cold start: time from `ApiServer::start` until a fresh `kube::Client` has listed
//! pods (what every conformance trial pays for its own cluster).

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerOptions};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("apiserver_cold_start_until_list_pods", |b| {
        b.to_async(&rt).iter(|| async {
            let api = ApiServer::start(ApiServerOptions::default()).await.expect("start");
            let client = api.client().await.expect("client");
            let pods: Api<Pod> = Api::all(client);
            let list = pods.list(&ListParams::default()).await.expect("list");
            assert!(list.items.is_empty());
            api.shutdown().await;
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
