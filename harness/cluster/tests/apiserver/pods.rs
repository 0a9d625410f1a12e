//! Pod subresources and events: binding, status, logs from a node source, and Events in both API
//! groups.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Binding, Event, ObjectReference, Pod};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sgsim_cluster::apiserver::{LogError, LogOptions, LogStream, PodLogSource};

use crate::common::{pod, start};

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

/// A node whose pods answer the first bytes of every connection with `<ip>:<port> says ` and
/// those bytes, then wait for the client to go.
struct EchoPorts;

impl sgsim_cluster::apiserver::PodPortSource for EchoPorts {
    fn connect(
        &self,
        ip: std::net::IpAddr,
        port: u16,
    ) -> futures::future::BoxFuture<'static, std::io::Result<tokio::net::UnixStream>> {
        Box::pin(async move {
            if port == 9 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ));
            }
            let (ours, mut pod) = tokio::net::UnixStream::pair()?;
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut got = vec![0u8; 256];
                let n = pod.read(&mut got).await.unwrap_or(0);
                let mut reply = format!("{ip}:{port} says ").into_bytes();
                reply.extend_from_slice(&got[..n]);
                let _ = pod.write_all(&reply).await;
                let _ = pod.read_to_end(&mut got).await;
            });
            Ok(ours)
        })
    }
}

#[tokio::test]
async fn portforward_reaches_the_pod_through_its_node_and_refuses_what_cannot_be_forwarded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, client) = start().await;
    server.register_node_ports("node-1", Arc::new(EchoPorts));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("pf", json!({})))
        .await
        .unwrap();

    // Not bound yet: no host to forward to (400, as kube-apiserver says).
    match pods.portforward("pf", &[8080]).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 400);
            assert_eq!(s.message, "pod pf does not have a host assigned");
        }
        Err(other) => panic!("expected 400, got {other:?}"),
        Ok(_) => panic!("expected 400, got an upgrade"),
    }
    match pods.portforward("nope", &[8080]).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        Err(other) => panic!("expected 404, got {other:?}"),
        Ok(_) => panic!("expected 404, got an upgrade"),
    }

    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "pf"}, "target": {"kind": "Node", "name": "node-1"}});
    let _: Value = pods
        .create_subresource("binding", "pf", &PostParams::default(), &binding)
        .await
        .unwrap();
    let running = json!({"status": {"phase": "Running", "podIP": "10.244.1.7"}});
    pods.patch_status("pf", &PatchParams::default(), &Patch::Merge(&running))
        .await
        .unwrap();

    // Two ports on one connection, each its own stream (v4 has no half close: the streams stay
    // open until the connection ends).
    let mut pf = pods.portforward("pf", &[8080, 20001]).await.unwrap();
    for port in [8080u16, 20001] {
        let mut s = pf.take_stream(port).unwrap();
        s.write_all(format!("hello {port}").as_bytes()).await.unwrap();
        let want = format!("10.244.1.7:{port} says hello {port}");
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
            .await
            .expect("the pod answers")
            .unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }
    pf.abort();

    // A port nothing listens on: the error channel says so.
    let mut pf = pods.portforward("pf", &[9]).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), pf.take_error(9).unwrap())
        .await
        .expect("an error message");
    let err = err.expect("the error channel carries the reason");
    assert!(
        err.contains("error forwarding port 9") && err.contains("connection refused"),
        "{err}"
    );
    server.shutdown().await;
}
