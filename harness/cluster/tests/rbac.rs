//! RBAC: a ServiceAccount token gets exactly what Roles, ClusterRoles and their bindings grant,
//! and a denial is Kubernetes' Forbidden word for word.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..Default::default()
    }
}

async fn client_with(api: &ApiServerHandle, token: &str) -> kube::Client {
    let mut kc = api.kubeconfig();
    for u in &mut kc.auth_infos {
        if let Some(a) = u.auth_info.as_mut() {
            a.token = Some(token.to_owned().into());
        }
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

async fn sa_token(admin: &kube::Client, ns: &str, sa: &str) -> String {
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(sa, Some(ns)),
                ..Default::default()
            },
        )
        .await
        .expect("create sa");
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tr: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_subresource("token", sa, &PostParams::default(), &req)
        .await
        .expect("token");
    tr.status.and_then(|s| s.token).expect("token issued")
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| (*s).into()).collect()),
        resources: Some(resources.iter().map(|s| (*s).into()).collect()),
        verbs: verbs.iter().map(|s| (*s).into()).collect(),
        ..Default::default()
    }
}

fn sa_subject(ns: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

fn forbidden(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert_eq!(s.reason, "Forbidden");
            s.message
        }
        other => panic!("expected a Forbidden status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_service_account_gets_what_its_bindings_grant() {
    let api = ApiServer::start(ApiServerOptions::default()).await.expect("api server");
    let admin = api.client().await.expect("admin client");
    let token = sa_token(&admin, "default", "deployer").await;
    let as_sa = client_with(&api, &token).await;
    let pods: Api<Pod> = Api::namespaced(as_sa.clone(), "default");

    // No Role: Forbidden, in Kubernetes' words.
    let msg = forbidden(pods.list(&ListParams::default()).await.expect_err("no role yet"));
    assert_eq!(
        msg,
        r#"pods is forbidden: User "system:serviceaccount:default:deployer" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    // Discovery stays open to every authenticated user (system:discovery).
    as_sa.apiserver_version().await.expect("version");

    // A RoleBinding to a Role that does not exist says so.
    let rbs: Api<RoleBinding> = Api::namespaced(admin.clone(), "default");
    rbs.create(
        &PostParams::default(),
        &RoleBinding {
            metadata: meta("read-pods", Some("default")),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: "pod-reader".into(),
            },
            subjects: Some(vec![sa_subject("default", "deployer")]),
        },
    )
    .await
    .expect("create rolebinding");
    let msg = forbidden(pods.list(&ListParams::default()).await.expect_err("role missing"));
    assert!(
        msg.ends_with(r#"in the namespace "default": RBAC: role.rbac.authorization.k8s.io "pod-reader" not found"#),
        "{msg}"
    );

    // The Role appears: list is granted, delete is not, other namespaces are not.
    Api::<Role>::namespaced(admin.clone(), "default")
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("pod-reader", Some("default")),
                rules: Some(vec![rule(&[""], &["pods", "pods/log"], &["get", "list", "watch"])]),
            },
        )
        .await
        .expect("create role");
    pods.list(&ListParams::default())
        .await
        .expect("granted by the RoleBinding");
    let msg = forbidden(
        Api::<Pod>::namespaced(as_sa.clone(), "kube-system")
            .list(&ListParams::default())
            .await
            .expect_err("other namespace"),
    );
    assert!(msg.contains(r#"in the namespace "kube-system""#), "{msg}");
    let msg = forbidden(
        Api::<ConfigMap>::namespaced(as_sa.clone(), "default")
            .get("x")
            .await
            .expect_err("configmaps not granted"),
    );
    assert_eq!(
        msg,
        r#"configmaps "x" is forbidden: User "system:serviceaccount:default:deployer" cannot get resource "configmaps" in API group "" in the namespace "default""#
    );

    // A ClusterRoleBinding to a ClusterRole grants cluster-scoped resources.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(as_sa.clone());
    let msg = forbidden(nodes.list(&ListParams::default()).await.expect_err("nodes not granted"));
    assert!(
        msg.ends_with(r#"cannot list resource "nodes" in API group "" at the cluster scope"#),
        "{msg}"
    );
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: meta("node-reader", None),
                rules: Some(vec![rule(&[""], &["nodes"], &["list"])]),
                ..Default::default()
            },
        )
        .await
        .expect("create clusterrole");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: meta("sa-node-reader", None),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "node-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: "system:serviceaccounts:default".into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("create clusterrolebinding");
    nodes
        .list(&ListParams::default())
        .await
        .expect("granted by the group binding");
    api.shutdown().await;
}
