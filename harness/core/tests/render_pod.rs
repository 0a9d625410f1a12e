//! Rendering the pod: names, containers, ports, volumes, labels, privilege, the infra settings,
//! fixture objects and the podSpecOverlay, golden-free.

use common::*;
use k8s_openapi::api::core::v1::Pod;
use sgsim_core::render::{image_needs_privileged, is_valid_label_value, pod_name};
use sgsim_core::{load, no_files, render_pod};

#[allow(dead_code, reason = "each test file uses a subset of the shared helpers")]
mod common;

#[test]
fn pod_name_shape_and_determinism() {
    let s = dind();
    let p1 = render_pod(&s);
    let p2 = render_pod(&s);
    assert_eq!(p1, p2, "same seed, same pod");
    let name = p1.metadata.name.clone().unwrap();
    let suffix = name.strip_prefix("harnesscd-dindgroup-").expect(&name);
    assert_eq!(suffix.len(), 8);
    assert!(
        suffix.chars().all(|c| "123456789bcdfghjklmnpqrstvwxyz".contains(c)),
        "{suffix}"
    );
    assert_ne!(pod_name("dind_group", 1), pod_name("dind_group", 2));
    assert!(pod_name("A_Very-Long_Identifier_Name", 3).starts_with("harnesscd-averylongidenti-"));
    assert_eq!(p1.metadata.namespace.as_deref(), Some("harness-delegate-ng"));
}

#[test]
fn containers_ports_and_commands() {
    let p = render_pod(&dind());
    let names: Vec<&str> = containers(&p).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["step-dind", "step-dockerversion", "lite-engine"]);
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.active_deadline_seconds, Some(86400));
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, "setup-addon");
    assert_eq!(init.image.as_deref(), Some("harness/ci-addon:1.16.8"));
    assert_eq!(init.command.clone().unwrap(), vec!["sh", "-c", "--"]);
    let script = &init.args.as_ref().unwrap()[0];
    // The product's script, `;`-joined (a failing command does not end it).
    assert!(script.starts_with("mkdir -p /addon/bin; mkdir -p /addon/tmp; chmod -R 776 /addon/tmp; "));
    assert!(script.contains(
        "if [ -e /usr/local/bin/ci-addon-linux-amd64 ];then cp /usr/local/bin/ci-addon-linux-amd64 /addon/bin/ci-addon;else cp /usr/local/bin/ci-addon-linux /addon/bin/ci-addon;fi;"
    ));
    assert!(!script.contains("&&"));
    assert_eq!(
        env_of(init),
        vec![("HARNESS_WORKSPACE".to_string(), "/harness".to_string())]
    );
    assert_eq!(q(init, "requests", "cpu"), "100m");
    assert_eq!(q(init, "limits", "memory"), "100Mi");
    for (name, port) in [("step-dind", 20002), ("step-dockerversion", 20003)] {
        let c = find(&p, name);
        assert_eq!(c.command.clone().unwrap(), vec!["/addon/bin/ci-addon"]);
        assert_eq!(c.args.clone().unwrap(), vec!["--port".to_string(), port.to_string()]);
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, port);
        assert_eq!(c.working_dir.as_deref(), Some("/harness"));
        assert_eq!(q(c, "requests", "cpu"), "10m");
        assert_eq!(q(c, "requests", "memory"), "10Mi");
        assert_eq!(q(c, "limits", "cpu"), "400m");
        assert_eq!(q(c, "limits", "memory"), "500Mi");
    }
    assert_eq!(find(&p, "step-dind").image.as_deref(), Some("docker:dind"));
    // Every step container gets the product's common HARNESS_* variables, then its own.
    let step_env = env_of(find(&p, "step-dockerversion"));
    let names: Vec<&str> = step_env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "HARNESS_WORKSPACE",
            "HARNESS_ACCOUNT_ID",
            "HARNESS_PROJECT_ID",
            "HARNESS_ORG_ID",
            "HARNESS_PIPELINE_ID",
            "HARNESS_BUILD_ID",
            "HARNESS_STAGE_ID",
            "HARNESS_EXECUTION_ID",
            "HARNESS_LOG_PREFIX",
            "DOCKER_HOST"
        ]
    );
    assert_eq!(step_env[0].1, "/harness");
    assert_eq!(step_env[9].1, "unix:///var/run/docker.sock");
    let le = find(&p, "lite-engine");
    assert_eq!(le.image.as_deref(), Some("harness/ci-lite-engine:1.16.8"));
    assert!(
        le.ports.is_none(),
        "the product's lite-engine declares no container port"
    );
    // The lite-engine has the same common variables as the steps.
    for (k, v) in &step_env[..9] {
        assert!(
            env_of(le).iter().any(|(lk, lv)| lk == k && lv == v),
            "{k} differs in the lite-engine"
        );
    }
    assert_eq!(le.working_dir.as_deref(), Some("/harness"));
    assert!(le.command.is_none(), "lite-engine uses the image entrypoint");
    assert_eq!(q(le, "limits", "cpu"), "900m");
    assert_eq!(q(le, "limits", "memory"), "1100Mi");
    assert_eq!(q(le, "requests", "cpu"), "900m");
    let env: Vec<String> = env_of(le).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        env,
        vec![
            "HARNESS_WORKSPACE",
            "DELEGATE_SERVICE_ENDPOINT",
            "DELEGATE_SERVICE_ID",
            "HARNESS_ACCOUNT_ID",
            "HARNESS_PROJECT_ID",
            "HARNESS_ORG_ID",
            "HARNESS_PIPELINE_ID",
            "HARNESS_BUILD_ID",
            "HARNESS_STAGE_ID",
            "HARNESS_EXECUTION_ID",
            "HARNESS_LOG_PREFIX",
            "CI_ENABLE_HARNESS_ANNOTATIONS",
            "HARNESS_LE_STATUS_REST_ENABLED",
            "HARNESS_SECRETS_LIST",
            "HARNESS_LOG_SERVICE_TOKEN",
            "HARNESS_LOG_SERVICE_ENDPOINT",
            "DELEGATE_SERVICE_TOKEN",
        ]
    );
    // The credentials come from the `<pod>-secret` Secret, never as values in the pod.
    let secret = format!("{}-secret", p.metadata.name.as_deref().unwrap());
    for var in [
        "HARNESS_LOG_SERVICE_TOKEN",
        "HARNESS_LOG_SERVICE_ENDPOINT",
        "DELEGATE_SERVICE_TOKEN",
    ] {
        let e = le.env.as_ref().unwrap().iter().find(|e| e.name == var).unwrap();
        assert!(e.value.is_none(), "{var} has a value in the pod");
        let r = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str()), (secret.as_str(), var));
    }
    let envm: std::collections::BTreeMap<String, String> = env_of(le).into_iter().collect();
    assert_eq!(envm["DELEGATE_SERVICE_ENDPOINT"], "delegate-service:8080");
    assert_eq!(envm["DELEGATE_SERVICE_ID"], "delegate-grpc-service");
    assert_eq!(
        envm["HARNESS_SECRETS_LIST"],
        "HARNESS_LOG_SERVICE_TOKEN,HARNESS_LOG_SERVICE_ENDPOINT,DELEGATE_SERVICE_TOKEN"
    );
    assert_eq!(envm["HARNESS_PROJECT_ID"], "CD_Docs");
    assert_eq!(envm["HARNESS_PIPELINE_ID"], "dind_deploy");
    assert_eq!(envm["HARNESS_STAGE_ID"], "deploy");
    assert_eq!(envm["HARNESS_EXECUTION_ID"].len(), 22);
}

#[test]
fn volumes_mounted_everywhere() {
    let p = render_pod(&dind());
    let spec = p.spec.as_ref().unwrap();
    let vols: Vec<&str> = spec.volumes.as_ref().unwrap().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vols, vec!["harness", "addon", "shared-0", "shared-1"]);
    for v in spec.volumes.as_ref().unwrap() {
        assert!(v.empty_dir.is_some());
    }
    let all = spec.init_containers.iter().flatten().chain(spec.containers.iter());
    for c in all {
        let m: Vec<(String, String)> = c
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect();
        assert_eq!(
            m,
            vec![
                ("harness".to_string(), "/harness".to_string()),
                ("addon".to_string(), "/addon".to_string()),
                ("shared-0".to_string(), "/var/run".to_string()),
                ("shared-1".to_string(), "/var/lib/docker".to_string()),
            ],
            "{}",
            c.name
        );
    }
}

#[test]
fn labels_follow_the_regex_rule() {
    let p = render_pod(&dind());
    let l = p.metadata.labels.clone().unwrap();
    let keys: Vec<&str> = l.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "accountID",
            "orgID",
            "pipelineExecutionID",
            "pipelineID",
            "projectID",
            "stepID"
        ]
    );
    // The group identifier with `_` removed, as the product passes it.
    assert_eq!(l["stepID"], "dindgroup");
    assert!(p.metadata.annotations.is_none());
    assert!(is_valid_label_value("a_b-c.d"));
    assert!(!is_valid_label_value("_a"));
    assert!(!is_valid_label_value("a b"));
    assert!(!is_valid_label_value("a"));
    assert!(!is_valid_label_value("a-"));
    assert!(!is_valid_label_value(""));
    // A project id with a space gets no label.
    let text = include_str!("fixtures/dind_pipeline.yaml")
        .replace("projectIdentifier: CD_Docs", "projectIdentifier: \"CD Docs\"");
    let s = load("p.yaml", &text, &no_files).unwrap();
    let l = render_pod(&s).metadata.labels.unwrap();
    assert!(!l.contains_key("projectID"));
    assert!(l.contains_key("orgID"));
}

#[test]
fn privileged_rule() {
    let p = render_pod(&dind());
    for c in ["step-dind", "step-dockerversion"] {
        assert_eq!(
            find(&p, c).security_context.as_ref().unwrap().privileged,
            Some(true),
            "{c}"
        );
    }
    assert!(image_needs_privileged("docker:dind"));
    assert!(image_needs_privileged("docker:24-dind-rootless"));
    assert!(image_needs_privileged("plugins/docker"));
    assert!(image_needs_privileged("plugins/ecr:1.2"));
    assert!(!image_needs_privileged("docker:24-cli"));
    assert!(!image_needs_privileged("myco/docker:dind"));
    assert!(!image_needs_privileged("harness/drone-git:1.3.4-rootless"));
    let s = full();
    let p = render_pod(&s);
    // explicit false on the step wins; product-managed git clone is not privileged;
    // Run/Plugin without a setting default to privileged.
    assert_eq!(
        find(&p, "step-unittests").security_context.as_ref().unwrap().privileged,
        Some(false)
    );
    assert_eq!(
        find(&p, "step-clonerepo").security_context.as_ref().unwrap().privileged,
        Some(false)
    );
    assert_eq!(
        find(&p, "step-notify").security_context.as_ref().unwrap().privileged,
        Some(true)
    );
    assert_eq!(
        find(&p, "step-deploystep")
            .security_context
            .as_ref()
            .unwrap()
            .privileged,
        Some(true)
    );
}

#[test]
fn full_infra_pass_through() {
    let s = full();
    let p = render_pod(&s);
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(p.metadata.namespace.as_deref(), Some("builds"));
    assert!(
        p.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("harnesscd-buildanddeployt-")
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.priority_class_name.as_deref(), Some("high-priority"));
    assert_eq!(spec.node_selector.as_ref().unwrap()["disktype"], "ssd");
    let tol = &spec.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (
            tol.key.as_deref(),
            tol.operator.as_deref(),
            tol.value.as_deref(),
            tol.effect.as_deref()
        ),
        (Some("dedicated"), Some("Equal"), Some("builds"), Some("NoSchedule"))
    );
    assert_eq!(spec.security_context.as_ref().unwrap().run_as_user, Some(1000));
    let ha = &spec.host_aliases.as_ref().unwrap()[0];
    assert_eq!(ha.ip, "127.0.0.1");
    assert_eq!(ha.hostnames.clone().unwrap(), vec!["db.local", "cache.local"]);
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["team"], "platform");
    assert_eq!(labels["app.kubernetes.io/name"], "sgsim");
    assert_eq!(labels["accountID"], "acct_123");
    assert_eq!(labels["projectID"], "sgsim_project");
    assert_eq!(
        p.metadata.annotations.as_ref().unwrap()["example.com/owner"],
        "platform"
    );
    // Harness images through the private registry; pull policy for the product's containers.
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.image.as_deref(),
        Some("registry.example.com/harness-mirror/harness/ci-addon:1.16.8")
    );
    assert_eq!(init.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let le = find(&p, "lite-engine");
    assert_eq!(
        le.image.as_deref(),
        Some("registry.example.com/harness-mirror/harness/ci-lite-engine:1.16.8")
    );
    assert_eq!(le.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        find(&p, "step-clonerepo").image.as_deref(),
        Some("registry.example.com/harness-mirror/harness/drone-git:1.3.4-rootless")
    );
    assert_eq!(find(&p, "step-unittests").image.as_deref(), Some("golang:1.22"));
    // Approval step: no container. Ports in step order.
    let names: Vec<&str> = containers(&p).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "step-clonerepo",
            "step-unittests",
            "step-notify",
            "step-deploystep",
            "lite-engine"
        ]
    );
    let ports: Vec<Option<i32>> = containers(&p)
        .iter()
        .map(|c| c.ports.as_ref().map(|p| p[0].container_port))
        .collect();
    assert_eq!(ports, vec![Some(20002), Some(20003), Some(20004), Some(20005), None]);
    // Limits from the step; lite-engine = sum + 100m/100Mi: 400m+1+400m+400m+100m = 2300m.
    let ut = find(&p, "step-unittests");
    assert_eq!(q(ut, "limits", "cpu"), "1");
    assert_eq!(q(ut, "limits", "memory"), "1Gi");
    assert_eq!(q(le, "limits", "cpu"), "2300m");
    assert_eq!(q(le, "limits", "memory"), "2624Mi");
    // Security context from containerSecurityContext; step runAsUser falls back to it.
    let sc = ut.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(false));
    assert_eq!(sc.run_as_user, Some(1001));
    assert_eq!(sc.run_as_group, Some(3000));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.add.clone().unwrap(), vec!["NET_ADMIN"]);
    assert_eq!(caps.drop.clone().unwrap(), vec!["CHOWN"]);
    // setup-addon and the lite-engine get the container security context as it is.
    let init = &spec.init_containers.as_ref().unwrap()[0];
    for other in [init, le] {
        let sc = other
            .security_context
            .as_ref()
            .unwrap_or_else(|| panic!("{} has the context", other.name));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(1001));
        assert_eq!(sc.run_as_group, Some(3000));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().add.clone().unwrap(),
            vec!["NET_ADMIN"]
        );
    }
    // User volumes of each type.
    let vols = spec.volumes.as_ref().unwrap();
    let names: Vec<&str> = vols.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "harness", "addon", "shared-0", "volume-0", "volume-1", "volume-2", "volume-3", "volume-4"
        ]
    );
    let ed = vols[3].empty_dir.as_ref().unwrap();
    assert_eq!(ed.medium.as_deref(), Some("Memory"));
    assert_eq!(ed.size_limit.as_ref().unwrap().0, "1Gi");
    let hp = vols[4].host_path.as_ref().unwrap();
    assert_eq!(
        (hp.path.as_str(), hp.type_.as_deref()),
        ("/tmp", Some("DirectoryOrCreate"))
    );
    let pvc = vols[5].persistent_volume_claim.as_ref().unwrap();
    assert_eq!((pvc.claim_name.as_str(), pvc.read_only), ("build-cache", Some(true)));
    let cm = vols[6].config_map.as_ref().unwrap();
    assert_eq!((cm.name.as_str(), cm.optional), ("test_config", Some(false)));
    let sec = vols[7].secret.as_ref().unwrap();
    assert_eq!((sec.secret_name.as_deref(), sec.optional), (Some("test"), Some(true)));
    let mounts: Vec<String> = le
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| m.mount_path)
        .collect();
    assert_eq!(
        mounts,
        vec![
            "/harness",
            "/addon",
            "/var/run",
            "/cache",
            "/host/tmp",
            "/pvc",
            "/dir",
            "/dir/test"
        ]
    );
    // Secrets used by the step group are known for masking.
    assert_eq!(
        s.secrets,
        vec![
            "ghp_secretvalue".to_string(),
            "https://hooks.example.com/xyz".to_string()
        ]
    );
    assert_eq!(s.step_group.infra.init_timeout_secs(), 600);
}

#[test]
fn json_round_trip_as_k8s_pod() {
    for s in [dind(), full()] {
        let p = render_pod(&s);
        let json = serde_json::to_string(&p).unwrap();
        let back: Pod = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Pod");
    }
}

#[test]
fn fixture_objects() {
    let s = full();
    let o = s.fixtures().k8s_objects(s.namespace());
    assert_eq!(o.namespaces.len(), 1);
    assert_eq!(o.nodes[0].metadata.name.as_deref(), Some("node-a"));
    assert_eq!(o.nodes[0].metadata.labels.as_ref().unwrap()["disktype"], "ssd");
    assert_eq!(
        o.nodes[0].spec.as_ref().unwrap().taints.as_ref().unwrap()[0].effect,
        "NoSchedule"
    );
    assert_eq!(o.config_maps[0].metadata.namespace.as_deref(), Some("builds"));
    assert_eq!(o.secrets[0].data.as_ref().unwrap()["token"].0, b"abc".to_vec());
    assert_eq!(o.service_accounts[0].metadata.name.as_deref(), Some("builder"));
    assert_eq!(
        o.persistent_volume_claims[0].metadata.name.as_deref(),
        Some("build-cache")
    );
    assert_eq!(o.priority_classes[0].value, Some(1000));
    assert_eq!(s.fixtures().images["alpine/k8s:1.29.2"], "busybox");
}

#[test]
fn pod_yaml_is_stable_and_masked() {
    let s = full();
    let y = sgsim_core::normalize::pod_yaml(&render_pod(&s), &s.secrets).unwrap();
    assert_eq!(y, sgsim_core::normalize::pod_yaml(&render_pod(&s), &s.secrets).unwrap());
    assert!(y.contains("harnesscd-buildanddeployt-<pod-suffix>"), "{y}");
    assert!(!y.contains("ghp_secretvalue"));
    assert!(y.contains("**************"));
    assert!(y.starts_with("apiVersion: v1\nkind: Pod\nmetadata:\n"), "{y}");
}

#[test]
fn pod_spec_overlay_is_merged() {
    let text = include_str!("fixtures/dind_pipeline.yaml").replace(
        "                      namespace: harness-delegate-ng\n",
        "                      namespace: harness-delegate-ng
                      podSpecOverlay: |
                        dnsPolicy: None
                        dnsConfig:
                          nameservers: [1.1.1.1]
                        containers:
                          - name: step-dind
                            stdin: true
",
    );
    let s = load("p.yaml", &text, &no_files).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let p = render_pod(&s);
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    assert_eq!(
        spec.dns_config.as_ref().unwrap().nameservers.clone().unwrap(),
        vec!["1.1.1.1"]
    );
    let dind = find(&p, "step-dind");
    assert_eq!(dind.stdin, Some(true));
    assert_eq!(
        dind.image.as_deref(),
        Some("docker:dind"),
        "merge keeps the rest of the container"
    );
    assert_eq!(containers(&p).len(), 3);
    // A broken overlay is a validation error at the field.
    let bad = include_str!("fixtures/dind_pipeline.yaml").replace(
        "                      namespace: harness-delegate-ng\n",
        "                      namespace: harness-delegate-ng\n                      podSpecOverlay: \"containers: 5\"\n",
    );
    let e = load("p.yaml", &bad, &no_files).unwrap_err();
    let msg = e.diagnostics().to_string();
    assert!(
        msg.starts_with("p.yaml:35:39: `podSpecOverlay` is not a valid PodSpec fragment"),
        "{msg}"
    );
}

/// The product applies podSpecOverlay in full only with the feature flag CI_K8S_OVERLAY_YAML;
/// without it, only the overlay's `topologySpreadConstraints` (with a warning naming the rest).
#[test]
fn pod_spec_overlay_needs_its_feature_flag() {
    let pipeline = include_str!("fixtures/dind_pipeline.yaml").replace(
        "                      namespace: harness-delegate-ng\n",
        "                      namespace: harness-delegate-ng
                      podSpecOverlay: |
                        dnsPolicy: None
                        dnsConfig:
                          nameservers: [1.1.1.1]
                        topologySpreadConstraints:
                          - maxSkew: 1
                            topologyKey: kubernetes.io/hostname
                            whenUnsatisfiable: ScheduleAnyway
",
    );
    let scenario = |flags: &str| {
        format!(
            "pipeline: p.yaml
fixtures:
  namespaces: [harness-delegate-ng]
  connectors:
    - {{identifier: k8s, type: KubernetesCluster}}
  featureFlags: [{flags}]
"
        )
    };
    let without = with_scenario(&pipeline, &scenario(""));
    let spec = render_pod(&without).spec.unwrap();
    assert_eq!(spec.dns_policy, None, "dnsPolicy applied without the flag");
    assert_eq!(spec.dns_config, None);
    assert_eq!(spec.topology_spread_constraints.unwrap()[0].max_skew, 1);
    let w: Vec<String> = without.warnings.warnings().map(|d| d.to_string()).collect();
    assert!(
        w.iter().any(|w| w.starts_with("s/p.yaml:36:25: ")
            && w.contains("without the feature flag CI_K8S_OVERLAY_YAML")
            && w.contains("sgsim ignores `dnsConfig`, `dnsPolicy` (add CI_K8S_OVERLAY_YAML")),
        "{w:?}"
    );

    let with = with_scenario(&pipeline, &scenario("CI_K8S_OVERLAY_YAML"));
    let spec = render_pod(&with).spec.unwrap();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
    assert_eq!(spec.dns_config.unwrap().nameservers.unwrap(), ["1.1.1.1"]);
    assert_eq!(spec.topology_spread_constraints.unwrap().len(), 1);
    assert_eq!(with.warnings.warnings().count(), 0);

    // The fragment may be written under `spec:`, as the product's documentation for the flag asks.
    let wrapped = include_str!("fixtures/dind_pipeline.yaml").replace(
        "                      namespace: harness-delegate-ng\n",
        "                      namespace: harness-delegate-ng
                      podSpecOverlay: |
                        spec:
                          dnsPolicy: None
",
    );
    let spec = render_pod(&with_scenario(&wrapped, &scenario("CI_K8S_OVERLAY_YAML")))
        .spec
        .unwrap();
    assert_eq!(spec.dns_policy.as_deref(), Some("None"));
}
