//! Watches: resourceVersion order, kube-runtime watchers, selectors, timeouts and concurrent
//! writers.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodStatus};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::common::{create_ns, pod, start};

#[tokio::test]
async fn watch_from_resource_version_sees_changes_in_order() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();

    pods.create(&PostParams::default(), &pod("w1", json!({})))
        .await
        .unwrap();
    let mut status = pods.get_status("w1").await.unwrap();
    status.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    pods.replace_status("w1", &PostParams::default(), &status)
        .await
        .unwrap();
    pods.delete("w1", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(p) => seen.push(("ADDED", p.status.and_then(|s| s.phase))),
            WatchEvent::Modified(p) => seen.push(("MODIFIED", p.status.and_then(|s| s.phase))),
            WatchEvent::Deleted(p) => seen.push(("DELETED", p.status.and_then(|s| s.phase))),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", Some("Pending".to_owned())),
            ("MODIFIED", Some("Running".to_owned())),
            ("DELETED", Some("Running".to_owned())),
        ]
    );

    // Replaying from the same resourceVersion gives the same history.
    let replay: Vec<_> = pods
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .take(3)
        .map(|e| match e.unwrap() {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            _ => "OTHER",
        })
        .collect()
        .await;
    assert_eq!(replay, vec!["ADDED", "MODIFIED", "DELETED"]);
    server.shutdown().await;
}

#[tokio::test]
async fn runtime_watcher_gets_initial_and_live_objects() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .unwrap();
    let mut w = watcher(pods.clone(), watcher::Config::default()).boxed();
    let mut names = Vec::new();
    let creator = {
        let pods = pods.clone();
        async move {
            pods.create(&PostParams::default(), &pod("after", json!({})))
                .await
                .unwrap();
        }
    };
    let mut created = false;
    let mut creator = Some(Box::pin(creator));
    while !names.contains(&"after".to_owned()) {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => names.push(p.metadata.name.unwrap()),
            watcher::Event::InitDone if !created => {
                created = true;
                creator.take().unwrap().await;
            }
            _ => {}
        }
    }
    assert_eq!(names, vec!["before".to_owned(), "after".to_owned()]);

    // Streaming-list mode (sendInitialEvents) as well.
    let mut w = watcher(pods.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(p) => init.push(p.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(init, vec!["before".to_owned(), "after".to_owned()]);
    server.shutdown().await;
}

#[tokio::test]
async fn namespace_delete_removes_contents_and_watch_follows_selectors() {
    let (server, client) = start().await;
    create_ns(&client, "tmp").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "tmp");
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("app=x").timeout(30);
    let mut stream = pods.watch(&wp, &rv).await.unwrap().boxed();
    pods.create(&PostParams::default(), &pod("a", json!({"app": "x"})))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("b", json!({"app": "y"})))
        .await
        .unwrap();
    // a leaves the selector (DELETED for this watch), b enters it (ADDED).
    pods.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "z"}}})),
    )
    .await
    .unwrap();
    pods.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete("tmp", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        let (t, p) = match ev {
            WatchEvent::Added(p) => ("ADDED", p),
            WatchEvent::Modified(p) => ("MODIFIED", p),
            WatchEvent::Deleted(p) => ("DELETED", p),
            _ => continue,
        };
        seen.push(format!("{t} {}", p.metadata.name.unwrap()));
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED b", "DELETED b"]);
    assert!(matches!(pods.get("b").await, Err(kube::Error::Api(s)) if s.code == 404));
    assert!(matches!(nss.get("tmp").await, Err(kube::Error::Api(s)) if s.code == 404));
    server.shutdown().await;
}

#[tokio::test]
async fn watch_timeout_ends_stream_and_logs_without_node_source() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let started = std::time::Instant::now();
    let events: Vec<_> = pods
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(events.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));

    pods.create(&PostParams::default(), &pod("nolog", json!({})))
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "nolog"}, "target": {"kind": "Node", "name": "ghost"}});
    let _: Value = pods
        .create_subresource("binding", "nolog", &PostParams::default(), &binding)
        .await
        .unwrap();
    match pods
        .logs(
            "nolog",
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(
                (s.code, s.message.as_str()),
                (
                    400,
                    "container \"main\" in pod \"nolog\" is waiting to start: ContainerCreating"
                )
            )
        }
        other => panic!("expected 400, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_watch_sees_every_change_in_resource_version_order() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pods = pods.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let name = format!("w{w}-{i}");
                    pods.create(&PostParams::default(), &pod(&name, json!({"writer": w.to_string()})))
                        .await
                        .unwrap();
                    pods.patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"phase": "Running"}})),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let (mut added, mut modified, mut last_rv) = (0, 0, 0u64);
    while added + modified < 200 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        let p = match ev {
            WatchEvent::Added(p) => {
                added += 1;
                p
            }
            WatchEvent::Modified(p) => {
                modified += 1;
                assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
                continue;
            }
            other => panic!("unexpected {other:?}"),
        };
        let rv: u64 = p.metadata.resource_version.unwrap().parse().unwrap();
        assert!(rv > last_rv, "resourceVersions increase");
        last_rv = rv;
    }
    assert_eq!((added, modified), (100, 100));
    let by_writer = pods.list(&ListParams::default().labels("writer=2")).await.unwrap();
    assert_eq!(by_writer.items.len(), 25);
    server.shutdown().await;
}
