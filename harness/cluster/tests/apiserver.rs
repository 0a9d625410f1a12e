//! Integration tests of the embedded API server through kube-rs (and raw HTTP for exact bodies).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Binding, Event, Namespace, ObjectReference, Pod, PodStatus};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use sgsim_cluster::apiserver::{
    ApiServer, ApiServerHandle, ApiServerOptions, LogError, LogOptions, LogStream, PodLogSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> (ApiServerHandle, kube::Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("server starts");
    let client = server.client().await.expect("client");
    (server, client)
}

/// Plain HTTP/1.1 request; returns status code and body.
async fn raw(
    server: &ApiServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (code, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}, {"name": "side", "image": "alpine"}]},
    }))
    .expect("pod")
}

async fn create_ns(client: &kube::Client, name: &str) -> Namespace {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace created")
}

#[tokio::test]
async fn namespace_and_pod_lifecycle() {
    let (server, client) = start().await;
    let ns = create_ns(&client, "team-a").await;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert!(ns.metadata.uid.is_some());

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team-a");
    let created = pods
        .create(&PostParams::default(), &pod("p1", json!({"app": "a", "tier": "web"})))
        .await
        .unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(spec.enable_service_links, Some(true));
    assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(spec.containers[1].image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        spec.containers[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    let status = created.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    assert!(created.metadata.creation_timestamp.is_some());

    let mut gen_pod = pod("", json!({"app": "b"}));
    gen_pod.metadata.name = None;
    gen_pod.metadata.generate_name = Some("gen-".into());
    let generated = pods.create(&PostParams::default(), &gen_pod).await.unwrap();
    let gname = generated.metadata.name.clone().unwrap();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");

    let got = pods.get("p1").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);

    let all = pods.list(&ListParams::default()).await.unwrap();
    let names: Vec<_> = all.items.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["p1".to_owned(), gname.clone()], "creation order");
    assert!(all.metadata.resource_version.is_some());

    let sel = |l: &str| ListParams::default().labels(l);
    let count = |l: kube::core::ObjectList<Pod>| l.items.len();
    assert_eq!(count(pods.list(&sel("app=a")).await.unwrap()), 1);
    assert_eq!(count(pods.list(&sel("app!=a")).await.unwrap()), 1);
    assert_eq!(count(pods.list(&sel("app in (a,b)")).await.unwrap()), 2);
    assert_eq!(count(pods.list(&sel("tier")).await.unwrap()), 1);
    assert_eq!(count(pods.list(&sel("!tier")).await.unwrap()), 1);
    let by_field = pods
        .list(&ListParams::default().fields("metadata.name=p1"))
        .await
        .unwrap();
    assert_eq!(count(by_field), 1);
    let pending = pods
        .list(&ListParams::default().fields("status.phase=Pending,spec.nodeName="))
        .await
        .unwrap();
    assert_eq!(count(pending), 2);

    let all_ns: Api<Pod> = Api::all(client.clone());
    assert_eq!(all_ns.list(&ListParams::default()).await.unwrap().items.len(), 2);

    pods.delete("p1", &DeleteParams::default()).await.unwrap();
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn error_bodies_are_kubernetes_status() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("dup", json!({})))
        .await
        .unwrap();
    let token = server.token().to_owned();

    let (code, body) = raw(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/nope",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"pods"},"code":404}"#
    );

    let dup = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dup"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(&token),
        Some(dup),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"dup\" already exists","reason":"AlreadyExists","details":{"name":"dup","kind":"pods"},"code":409}"#
    );

    let (code, body) = raw(
        &server,
        "POST",
        "/api/v1/namespaces/missing/pods",
        Some(&token),
        Some(dup),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"namespaces"},"code":404}"#
    );

    // Through kube-rs too.
    match pods.get("nope").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.reason, "NotFound");
            assert_eq!(s.message, "pods \"nope\" not found");
        }
        other => panic!("expected 404, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unauthorized_without_token() {
    let (server, _client) = start().await;
    let expected = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    let (code, body) = raw(&server, "GET", "/api/v1/pods", None, None).await;
    assert_eq!((code, body.as_str()), (401, expected));
    let (code, _) = raw(&server, "GET", "/api/v1/pods", Some("wrong"), None).await;
    assert_eq!(code, 401);
    let token = server.token().to_owned();
    let (code, _) = raw(&server, "GET", "/api/v1/pods", Some(&token), None).await;
    assert_eq!(code, 200);
    let (code, body) = raw(&server, "GET", "/version", None, None).await;
    assert_eq!(code, 200);
    assert!(body.contains("\"gitVersion\":\"v1.37.0-sgsim\""), "{body}");
    server.shutdown().await;
}

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
async fn binding_sets_node_name_and_status_patch_is_visible() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("b1", json!({})))
        .await
        .unwrap();
    let binding = Binding {
        metadata: kube::api::ObjectMeta {
            name: Some("b1".into()),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            api_version: Some("v1".into()),
            ..Default::default()
        },
    };
    let _: Value = pods
        .create_subresource("binding", "b1", &PostParams::default(), &binding)
        .await
        .unwrap();
    let p = pods.get("b1").await.unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let conds = p.status.unwrap().conditions.unwrap();
    assert!(conds.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"));

    // Binding twice conflicts.
    let again: Result<Value, _> = pods
        .create_subresource("binding", "b1", &PostParams::default(), &binding)
        .await;
    match again {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("expected conflict, got {other:?}"),
    }

    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 1);

    let patch = json!({"status": {"phase": "Running", "podIP": "10.244.1.5", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status("b1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let st = pods.get_status("b1").await.unwrap().status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.5"));
    let types: Vec<_> = st.conditions.unwrap().into_iter().map(|c| c.type_).collect();
    assert_eq!(
        types,
        vec!["PodScheduled".to_owned(), "Ready".to_owned()],
        "strategic merge by type"
    );

    // A merge patch of the status subresource cannot change the spec.
    let sneaky = json!({"spec": {"nodeName": "other"}, "status": {"phase": "Succeeded"}});
    pods.patch_status("b1", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    let p = pods.get("b1").await.unwrap();
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("node-1"));
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Succeeded"));
    let running = pods
        .list(&ListParams::default().fields("status.phase=Succeeded"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn events_field_selectors() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("ev", json!({})))
        .await
        .unwrap();
    let uid = p.metadata.uid.clone().unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    for (reason, ty, name) in [
        ("Scheduled", "Normal", "ev"),
        ("Pulled", "Normal", "ev"),
        ("FailedMount", "Warning", "other"),
    ] {
        let e: Event = serde_json::from_value(json!({
            "metadata": {"generateName": format!("{name}.")},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": "default", "uid": if name == "ev" { uid.as_str() } else { "x" }},
            "reason": reason, "type": ty, "message": format!("{reason} happened"),
            "source": {"component": "kubelet"},
        }))
        .unwrap();
        events.create(&PostParams::default(), &e).await.unwrap();
    }
    let q = |f: &str| ListParams::default().fields(f);
    let reasons = |l: kube::core::ObjectList<Event>| l.items.into_iter().map(|e| e.reason.unwrap()).collect::<Vec<_>>();
    assert_eq!(
        reasons(events.list(&q("involvedObject.name=ev")).await.unwrap()),
        vec!["Scheduled", "Pulled"]
    );
    assert_eq!(
        reasons(
            events
                .list(&q(&format!("involvedObject.uid={uid},involvedObject.kind=Pod")))
                .await
                .unwrap()
        ),
        vec!["Scheduled", "Pulled"]
    );
    assert_eq!(
        reasons(events.list(&q("type=Warning")).await.unwrap()),
        vec!["FailedMount"]
    );
    assert_eq!(reasons(events.list(&q("reason=Pulled")).await.unwrap()), vec!["Pulled"]);
    assert_eq!(
        reasons(events.list(&q("source=kubelet,type!=Warning")).await.unwrap()),
        vec!["Scheduled", "Pulled"]
    );
    let all: Api<Event> = Api::all(client.clone());
    assert_eq!(all.list(&ListParams::default()).await.unwrap().items.len(), 3);
    match events.list(&q("bogus=1")).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.message.as_str()), (400, "field label not supported: bogus")),
        other => panic!("expected 400, got {other:?}"),
    }
    // Patch an event (count bump, as the event recorder does).
    let name = events.list(&q("reason=Pulled")).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    events
        .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"count": 2})))
        .await
        .unwrap();
    assert_eq!(events.get(&name).await.unwrap().count, Some(2));
    server.shutdown().await;
}

/// A log source that emits numbered lines, one every few milliseconds, for every container.
struct FakeLogs {
    lines: usize,
}

impl PodLogSource for FakeLogs {
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        opts: LogOptions,
    ) -> futures::future::BoxFuture<'static, Result<LogStream, LogError>> {
        let n = self.lines;
        let prefix = format!("{namespace}/{pod}/{}", opts.container);
        Box::pin(async move {
            if opts.container == "side" {
                return Err(LogError::BadRequest(format!(
                    "container \"side\" in pod \"{}\" is waiting to start: PodInitializing",
                    prefix
                )));
            }
            let total = if opts.follow { n } else { n / 2 };
            let stream = futures::stream::iter(0..total).then(move |i| {
                let line = format!("{prefix} line {i}\n");
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok(bytes::Bytes::from(line))
                }
            });
            Ok(stream.boxed())
        })
    }
}

#[tokio::test]
async fn pod_logs_follow_from_node_source() {
    let (server, client) = start().await;
    server.register_node_logs("node-1", Arc::new(FakeLogs { lines: 6 }));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("lg", json!({})))
        .await
        .unwrap();

    // Not bound: empty log, like Kubernetes.
    let text = pods
        .logs(
            "lg",
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(text, "");

    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "lg"}, "target": {"kind": "Node", "name": "node-1"}});
    let _: Value = pods
        .create_subresource("binding", "lg", &PostParams::default(), &binding)
        .await
        .unwrap();

    let params = LogParams {
        container: Some("main".into()),
        follow: true,
        ..Default::default()
    };
    let lines: Vec<String> = futures::io::AsyncBufReadExt::lines(pods.log_stream("lg", &params).await.unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        lines,
        (0..6).map(|i| format!("default/lg/main line {i}")).collect::<Vec<_>>()
    );

    let text = pods
        .logs(
            "lg",
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 3);

    match pods.logs("lg", &LogParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(
                s.message,
                "a container name must be specified for pod lg, choose one of: [main side]"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    match pods
        .logs(
            "lg",
            &LogParams {
                container: Some("side".into()),
                ..Default::default()
            },
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains("is waiting to start: PodInitializing"),
            "{}",
            s.message
        ),
        other => panic!("expected 400, got {other:?}"),
    }
    match pods
        .logs(
            "lg",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.message, "container nope is not valid for pod lg"),
        other => panic!("expected 400, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn kube_runtime_recorder_events_are_core_events_too() {
    use kube::runtime::events::{Event as RtEvent, EventType, Recorder, Reporter};
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("rec", json!({})))
        .await
        .unwrap();
    let reporter = Reporter {
        controller: "sgsim-kubelet".into(),
        instance: Some("node-1".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: p.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = RtEvent {
        type_: EventType::Normal,
        reason: "Pulled".into(),
        note: Some("Container image \"busybox:1.36\" already present on machine".into()),
        action: "Pull".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    // The same event again becomes a series (a patch of the stored event).
    recorder.publish(&ev, &reference).await.unwrap();

    let core: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=rec,reason=Pulled"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(
        e.message.as_deref(),
        Some("Container image \"busybox:1.36\" already present on machine")
    );
    assert_eq!(e.reporting_component.as_deref(), Some("sgsim-kubelet"));
    assert_eq!(e.involved_object.uid, p.metadata.uid);
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));

    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let l = v1
        .list(&ListParams::default().fields("regarding.name=rec"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    assert_eq!(
        l.items[0].regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("rec")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn admission_and_validation_errors() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let api_err = |r: Result<Pod, kube::Error>| match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    };

    let mut p = pod("sa", json!({}));
    p.spec.as_mut().unwrap().service_account_name = Some("builder".into());
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &p).await),
        (403, "Forbidden".into(), "pods \"sa\" is forbidden: error looking up service account default/builder: serviceaccount \"builder\" not found".into())
    );

    let mut p = pod("prio", json!({}));
    p.spec.as_mut().unwrap().priority_class_name = Some("high".into());
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &p).await),
        (
            403,
            "Forbidden".into(),
            "pods \"prio\" is forbidden: no PriorityClass with name high was found".into()
        )
    );
    p.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
    let created = pods.create(&PostParams::default(), &p).await.unwrap();
    assert_eq!(created.spec.unwrap().priority, Some(2_000_001_000));

    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "mounts"},
        "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                {"name": "data", "mountPath": "/data"}, {"name": "data", "mountPath": "/data"}
            ]}],
        },
    }))
    .unwrap();
    assert_eq!(
        api_err(pods.create(&PostParams::default(), &p).await),
        (422, "Invalid".into(), "Pod \"mounts\" is invalid: spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique".into())
    );

    // Optimistic concurrency: a stale resourceVersion conflicts.
    let first = pods
        .create(&PostParams::default(), &pod("cas", json!({})))
        .await
        .unwrap();
    let mut changed = first.clone();
    changed.metadata.labels = Some([("v".to_owned(), "2".to_owned())].into());
    pods.replace("cas", &PostParams::default(), &changed).await.unwrap();
    let (code, reason, message) = api_err(pods.replace("cas", &PostParams::default(), &changed).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Operation cannot be fulfilled on pods \"cas\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // The default namespace is immortal.
    let nss: Api<Namespace> = Api::all(client.clone());
    match nss.delete("default", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(
            s.message,
            "namespaces \"default\" is forbidden: this namespace may not be deleted"
        ),
        other => panic!("expected 403, got {other:?}"),
    }
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

#[tokio::test]
async fn discovery_documents() {
    let (server, client) = start().await;
    let token = server.token().to_owned();
    let (code, body) = raw(&server, "GET", "/api/v1", Some(&token), None).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let pods = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert!(
        v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/log")
    );
    let (code, body) = raw(&server, "GET", "/apis", Some(&token), None).await;
    assert_eq!(code, 200);
    assert!(body.contains("events.k8s.io"), "{body}");
    for path in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(raw(&server, "GET", path, None, None).await, (200, "ok".to_owned()));
    }
    // The kubeconfig's server URL carries the token for clients that send no Authorization.
    let prefix = server.kubeconfig_server().trim_start_matches(&server.url()).to_owned();
    assert_eq!(
        raw(
            &server,
            "GET",
            &format!("{prefix}/api/v1/namespaces/default"),
            None,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(&server, "GET", "/sgsim/wrong/api/v1/namespaces/default", None, None)
            .await
            .0,
        401
    );
    let ver = client.apiserver_version().await.unwrap();
    assert_eq!(ver.git_version, "v1.37.0-sgsim");
    server.shutdown().await;
}

#[tokio::test]
async fn dry_run_does_not_persist_and_names_are_validated() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let p = pods.create(&dry, &pod("dry", json!({}))).await.unwrap();
    assert_eq!(
        p.spec.unwrap().scheduler_name.as_deref(),
        Some("default-scheduler"),
        "defaulted"
    );
    assert!(matches!(pods.get("dry").await, Err(kube::Error::Api(s)) if s.code == 404));

    pods.create(&PostParams::default(), &pod("real", json!({})))
        .await
        .unwrap();
    pods.delete(
        "real",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get("real").await.is_ok());

    match pods.create(&PostParams::default(), &pod("Bad_Name", json!({}))).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.starts_with("Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", s.message);
        }
        other => panic!("expected 422, got {other:?}"),
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

#[tokio::test]
async fn metadata_lists_and_delete_collection() {
    let (server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (n, app) in [("m1", "a"), ("m2", "a"), ("m3", "b")] {
        pods.create(&PostParams::default(), &pod(n, json!({"app": app})))
            .await
            .unwrap();
    }
    let meta = pods
        .list_metadata(&ListParams::default().labels("app=a"))
        .await
        .unwrap();
    let names: Vec<_> = meta.items.iter().map(|m| m.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["m1", "m2"]);
    let one = pods.get_metadata("m3").await.unwrap();
    assert_eq!(one.metadata.labels.unwrap()["app"], "b");

    let deleted = pods
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=a"))
        .await
        .unwrap();
    let gone = deleted.left().expect("list of deleted pods");
    assert_eq!(gone.items.len(), 2);
    let left: Vec<_> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["m3"]);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_pod_deletion_when_enabled() {
    let opts = ApiServerOptions {
        graceful_pod_deletion: true,
        ..Default::default()
    };
    let server = ApiServer::start(opts).await.unwrap();
    let client = server.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("unbound", json!({})))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("bound", json!({})))
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}});
    let _: Value = pods
        .create_subresource("binding", "bound", &PostParams::default(), &binding)
        .await
        .unwrap();

    // An unbound pod goes at once.
    pods.delete("unbound", &DeleteParams::default()).await.unwrap();
    assert!(matches!(pods.get("unbound").await, Err(kube::Error::Api(s)) if s.code == 404));

    // A bound pod is only marked; its kubelet finishes the deletion with grace 0.
    let marked = pods
        .delete("bound", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("pod returned");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    let still = pods.get("bound").await.unwrap();
    assert_eq!(still.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(pods.get("bound").await, Err(kube::Error::Api(s)) if s.code == 404));
    server.shutdown().await;
}

/// What real clients need beyond kube-rs: the Python client's `/version/`, and a 415 (which
/// client-go understands) rather than a decode error for a protobuf body it cannot decode.
#[tokio::test]
async fn version_with_slash_and_protobuf_body_is_415() {
    let (server, _client) = start().await;
    let (code, body) = raw(&server, "GET", "/version/", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"gitVersion\""), "{body}");

    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    // A Pod in protobuf: not one of the kinds the server decodes.
    let payload = b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod\x12\x05\x0a\x03\x0a\x01p";
    let head = format!(
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\n\r\n",
        server.token(),
        payload.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(payload).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 415"), "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let v: Value = serde_json::from_str(body).expect("Status body");
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "UnsupportedMediaType");
    assert_eq!(v["code"], 415);
    assert_eq!(
        v["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json"
    );
    server.shutdown().await;
}

/// `kubectl create namespace` sends a protobuf Namespace: the server decodes it.
#[tokio::test]
async fn protobuf_namespace_create() {
    let (server, client) = start().await;
    let name = format!("pb-{}", std::process::id());
    let mut meta = vec![0x0a, name.len() as u8];
    meta.extend_from_slice(name.as_bytes());
    let mut raw = vec![0x0a, meta.len() as u8];
    raw.extend(meta);
    let mut payload = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace".to_vec();
    payload.push(0x12);
    payload.push(raw.len() as u8);
    payload.extend(raw);
    let addr = server.url().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/namespaces HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\n\r\n",
        server.token(),
        payload.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&payload).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let ns: Api<Namespace> = Api::all(client);
    let got = ns.get(&name).await.expect("namespace exists");
    assert_eq!(got.metadata.name.as_deref(), Some(name.as_str()));
    server.shutdown().await;
}
