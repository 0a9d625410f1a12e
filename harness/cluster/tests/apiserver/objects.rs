//! The object verbs through kube-rs: create, get, list, update, patch, delete and deletecollection,
//! admission, validation, dry runs and graceful pod deletion.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use sgsim_cluster::apiserver::{ApiServer, ApiServerOptions};

use crate::common::{create_ns, pod, start};

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
