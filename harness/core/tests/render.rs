//! Rendering: pod shape and execution plan, golden-free.

use k8s_openapi::api::core::v1::{Container, Pod};
use sgsim_core::render::{container_name, image_needs_privileged, is_valid_label_value, pod_name};
use sgsim_core::{PlanNode, Scenario, load, no_files, plan, render_pod};

fn dind() -> Scenario {
    load(
        "fixtures/dind_pipeline.yaml",
        include_str!("fixtures/dind_pipeline.yaml"),
        &no_files,
    )
    .unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

fn full() -> Scenario {
    let loader = |p: &str| match p {
        "full_pipeline.yaml" => Ok(include_str!("fixtures/full_pipeline.yaml").to_string()),
        _ => Err("no such file".to_string()),
    };
    load(
        "fixtures/full_scenario.yaml",
        include_str!("fixtures/full_scenario.yaml"),
        &loader,
    )
    .unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

fn containers(p: &Pod) -> &[Container] {
    &p.spec.as_ref().unwrap().containers
}

fn find<'a>(p: &'a Pod, name: &str) -> &'a Container {
    containers(p)
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_of(c: &Container) -> Vec<(String, String)> {
    c.env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

fn q(c: &Container, which: &str, res: &str) -> String {
    let r = c.resources.as_ref().unwrap();
    let m = if which == "requests" {
        r.requests.as_ref()
    } else {
        r.limits.as_ref()
    };
    m.unwrap()[res].0.clone()
}

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
    assert!(
        script.contains("mkdir -p /addon/bin")
            && script.contains("/addon/tmp")
            && script.contains("cp /usr/local/bin/ci-addon /addon/bin/ci-addon")
    );
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
    assert_eq!(
        env_of(find(&p, "step-dockerversion")),
        vec![("DOCKER_HOST".to_string(), "unix:///var/run/docker.sock".to_string())]
    );
    let le = find(&p, "lite-engine");
    assert_eq!(le.image.as_deref(), Some("harness/ci-lite-engine:1.16.8"));
    assert_eq!(le.ports.as_ref().unwrap()[0].container_port, 20001);
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
        ]
    );
    let envm: std::collections::BTreeMap<String, String> = env_of(le).into_iter().collect();
    assert_eq!(envm["DELEGATE_SERVICE_ENDPOINT"], "delegate-service:8080");
    assert_eq!(envm["DELEGATE_SERVICE_ID"], "delegate-grpc-service");
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
    assert_eq!(l["stepID"], "dind_group");
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
    let ports: Vec<i32> = containers(&p)
        .iter()
        .map(|c| c.ports.as_ref().unwrap()[0].container_port)
        .collect();
    assert_eq!(ports, vec![20002, 20003, 20004, 20005, 20001]);
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
fn plan_follows_steps() {
    let s = full();
    let pl = plan(&s);
    assert_eq!(pl.lite_engine_port, 20001);
    assert_eq!(pl.init_timeout_secs, 600);
    assert_eq!(pl.pod_name, render_pod(&s).metadata.name.unwrap());
    assert_eq!(pl.steps.len(), 4);
    let PlanNode::Parallel(par) = &pl.steps[1] else {
        panic!("expected parallel")
    };
    assert_eq!(par.len(), 2);
    let flat = pl.flat();
    let ids: Vec<&str> = flat.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["clone_repo", "unit_tests", "notify", "approve", "deploy_step"]
    );
    let ut = flat[1];
    assert_eq!(ut.container.as_deref(), Some("step-unittests"));
    assert_eq!(ut.port, Some(20003));
    assert_eq!(ut.shell, sgsim_core::model::Shell::Bash);
    assert_eq!(ut.command.as_deref(), Some("go test ./..."));
    assert_eq!(ut.timeout_secs, 1200);
    assert_eq!(ut.output_variables, vec!["COVERAGE"]);
    assert_eq!(ut.report_paths, vec!["/harness/report.xml"]);
    assert!(!ut.detach);
    assert!(ut.env.contains(&("TOKEN".to_string(), "ghp_secretvalue".to_string())));
    let notify = flat[2];
    assert!(
        notify
            .env
            .contains(&("PLUGIN_CHANNEL".to_string(), "builds".to_string()))
    );
    assert_eq!(notify.image.as_deref(), Some("plugins/slack:1.4"));
    let approve = flat[3];
    assert_eq!(approve.container, None);
    assert_eq!(approve.port, None);
    assert_eq!(approve.timeout_secs, 86400);
    let dep = flat[4];
    assert_eq!(dep.port, Some(20005));
    assert_eq!(dep.when.as_ref().unwrap()["stageStatus"], "Success");
    assert!(dep.failure_strategies.is_some());
    let d = plan(&dind());
    let bg = d.flat()[0];
    assert!(bg.detach);
    assert_eq!(bg.entrypoint, vec!["dockerd-entrypoint.sh", "--mtu=1450"]);
    assert_eq!(container_name("My_Step_1"), "step-mystep1");
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

fn with_scenario(pipeline: &str, scenario: &str) -> Scenario {
    let p = pipeline.to_string();
    let loader = move |_: &str| Ok::<String, String>(p.clone());
    load("s/scenario.yaml", scenario, &loader).unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

#[test]
fn image_pull_secrets_for_authenticated_connectors() {
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [harness-delegate-ng]
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
    - {identifier: account.harnessImage, type: DockerRegistry, url: \"https://registry.example.com/v2/\", auth: usernamePassword, username: bot, passwordRef: regpass}
  harnessSecrets: {regpass: hunter2}
";
    let s = with_scenario(include_str!("fixtures/dind_pipeline.yaml"), scen);
    let p = render_pod(&s);
    let pod = p.metadata.name.clone().unwrap();
    let refs: Vec<String> = p
        .spec
        .as_ref()
        .unwrap()
        .image_pull_secrets
        .clone()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        refs,
        vec![
            format!("{pod}-image-setup-addon"),
            format!("{pod}-image-step-dind"),
            format!("{pod}-image-step-dockerversion"),
            format!("{pod}-image-lite-engine"),
        ]
    );
    let secrets = sgsim_core::render::image_pull_secrets(&s);
    assert_eq!(secrets.len(), 4);
    assert_eq!(secrets[0].type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&secrets[0].data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(cfg["auths"]["registry.example.com"]["auth"], "Ym90Omh1bnRlcjI=");
    assert_eq!(init_image(&p), "registry.example.com/harness/ci-addon:1.16.8");
    assert!(
        s.secrets.contains(&"hunter2".to_string()),
        "every harness secret is masked"
    );
    assert_eq!(sgsim_core::base64::encode(b"ab"), "YWI=");
    assert_eq!(sgsim_core::base64::encode(b""), "");
    // Anonymous connectors: no pull secrets.
    assert!(render_pod(&dind()).spec.unwrap().image_pull_secrets.is_none());
}

fn init_image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0]
        .image
        .clone()
        .unwrap()
}

#[test]
fn aws_sam_steps_get_plugin_env() {
    let pipeline = "pipeline:
  identifier: sam
  stages:
    - stage:
        identifier: deploy
        type: Deployment
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: sam_group
                  sharedPaths: [/var/run, /var/lib/docker]
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec: {connectorRef: k8s, namespace: ns}
                  steps:
                    - step:
                        identifier: dind
                        type: Background
                        spec: {image: docker:dind}
                    - step:
                        identifier: SamBuild
                        type: AwsSamBuild
                        spec:
                          connectorRef: account.harnessImage
                          buildCommandOptions: [--use-container, --debug]
                          envVariables: {X: y}
                    - step:
                        identifier: SamDeploy
                        type: AwsSamDeploy
                        spec:
                          image: harnessdev/sam-deploy:1.82.0-latest
                          stackName: my-stack
";
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns]
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
    - {identifier: aws, type: Aws, accessKey: AKIA1, secretKeyRef: aws_secret, region: eu-west-1, crossAccountRoleArn: arn:aws:iam::1:role/r}
  harnessSecrets: {aws_secret: sekret}
";
    let s = with_scenario(pipeline, scen);
    let p = render_pod(&s);
    assert_eq!(
        find(&p, "step-sambuild").image.as_deref(),
        Some("harnessdev/sam-build:1.82.0-latest")
    );
    assert_eq!(
        find(&p, "step-samdeploy").security_context.as_ref().unwrap().privileged,
        Some(false)
    );
    assert_eq!(
        find(&p, "step-dind").security_context.as_ref().unwrap().privileged,
        Some(true)
    );
    let pl = plan(&s);
    let build = pl.flat()[1]
        .env
        .iter()
        .cloned()
        .collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(build["PLUGIN_BUILD_COMMAND_OPTIONS"], "--use-container --debug");
    assert_eq!(build["PLUGIN_AWS_ACCESS_KEY"], "AKIA1");
    assert_eq!(build["PLUGIN_AWS_SECRET_KEY"], "sekret");
    assert_eq!(build["PLUGIN_AWS_ROLE_ARN"], "arn:aws:iam::1:role/r");
    assert_eq!(build["PLUGIN_AWS_STS_EXTERNAL_ID"], "");
    assert_eq!(build["PLUGIN_REGION"], "eu-west-1");
    assert!(build.contains_key("PLUGIN_SAM_DIR"));
    assert!(build.contains_key("PLUGIN_SAM_TEMPLATE_FILE_PATH"));
    assert_eq!(build["X"], "y");
    let deploy = pl.flat()[2]
        .env
        .iter()
        .cloned()
        .collect::<std::collections::BTreeMap<_, _>>();
    assert_eq!(deploy["PLUGIN_STACK_NAME"], "my-stack");
    assert!(deploy.contains_key("PLUGIN_DEPLOY_COMMAND_OPTIONS"));
    assert!(s.secrets.contains(&"sekret".to_string()));
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

#[test]
fn aws_sam_pipeline_from_the_documentation() {
    let scen = "name: sam
pipeline: sam_pipeline.yaml
stepGroup: aws_sam_step_group
fixtures:
  namespaces: [harness-delegate-ng]
  connectors: [{identifier: k8s, type: KubernetesCluster}]
  inputs:
    pipeline.stages.deploy_sam.spec.execution.steps.aws_sam_step_group.stepGroupInfra.spec.connectorRef: k8s
";
    let s = with_scenario(include_str!("fixtures/sam_pipeline.yaml"), scen);
    assert!(s.warnings.is_empty(), "{}", s.warnings);
    let p = render_pod(&s);
    let names: Vec<&str> = containers(&p).iter().map(|c| c.name.as_str()).collect();
    // Container names as in the documentation's Initialize log.
    assert_eq!(
        names,
        vec![
            "step-downloadmanifests",
            "step-dind",
            "step-sambuild",
            "step-samdeploy",
            "lite-engine"
        ]
    );
    assert_eq!(
        find(&p, "step-sambuild").image.as_deref(),
        Some("harnessdev/sam-build:1.82.0-latest")
    );
    let pl = plan(&s);
    let build: std::collections::BTreeMap<_, _> = pl.flat()[2].env.iter().cloned().collect();
    assert_eq!(build["PLUGIN_BUILD_COMMAND_OPTIONS"], "--use-container");
    assert!(!build.contains_key("PLUGIN_DELEGATE_SELECTORS"));
    let deploy: std::collections::BTreeMap<_, _> = pl.flat()[3].env.iter().cloned().collect();
    assert_eq!(deploy["PLUGIN_DEPLOY_COMMAND_OPTIONS"], "--capabilities CAPABILITY_IAM");
    assert_eq!(deploy["PLUGIN_STACK_NAME"], "sam-hello");
    // The rollback group is selectable too, and the two groups are listed when none is chosen.
    let both = "pipeline: sam_pipeline.yaml\nfixtures: {namespaces: [harness-delegate-ng]}\n";
    let p2 = include_str!("fixtures/sam_pipeline.yaml").to_string();
    let e = load("s/scenario.yaml", both, &move |_: &str| {
        Ok::<String, String>(p2.clone())
    })
    .unwrap_err();
    let msg = e.diagnostics().to_string();
    assert!(
        msg.contains(
            "2 containerized step groups (deploy_sam.aws_sam_step_group, deploy_sam.aws_sam_rollback_step_group)"
        ),
        "{msg}"
    );
}

#[test]
fn git_clone_gets_the_drone_git_variables() {
    let pipeline = "pipeline:
  identifier: p
  stages:
    - stage:
        identifier: s
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: g
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec: {connectorRef: k8s, namespace: ns}
                  steps:
                    - step:
                        identifier: clone_app
                        type: GitClone
                        spec:
                          connectorRef: github
                          repoName: app.git
                          depth: 1
                          sslVerify: false
                          build: {type: branch, spec: {branch: main}}
                    - step:
                        identifier: clone_tag
                        type: GitClone
                        spec:
                          connectorRef: repo
                          cloneDirectory: /harness/src
                          build: {type: tag, spec: {tag: v1.2.0}}
";
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns]
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
    - {identifier: github, type: Github, url: 'https://github.com/acme/', auth: usernamePassword, username: bot, passwordRef: gh_token}
    - {identifier: repo, type: Git, url: 'git@gitlab.example.com:team/infra.git'}
  harnessSecrets: {gh_token: ghp-123}
";
    let s = with_scenario(pipeline, scen);
    let pl = plan(&s);
    let env = |i: usize| {
        pl.flat()[i]
            .env
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let a = env(0);
    assert_eq!(a["DRONE_REMOTE_URL"], "https://github.com/acme/app.git");
    assert_eq!(a["DRONE_NETRC_MACHINE"], "github.com");
    assert_eq!(a["DRONE_BUILD_EVENT"], "push");
    assert_eq!(a["DRONE_COMMIT_BRANCH"], "main");
    assert_eq!(a["PLUGIN_DEPTH"], "1");
    assert_eq!(a["DRONE_WORKSPACE"], "/harness/app");
    assert_eq!(a["GIT_SSL_NO_VERIFY"], "true");
    assert_eq!(a["DRONE_NETRC_USERNAME"], "bot");
    assert_eq!(a["DRONE_NETRC_PASSWORD"], "ghp-123");
    assert!(
        !a.keys().any(|k| k.starts_with("PLUGIN_REPO") || k == "PLUGIN_BUILD"),
        "{a:?}"
    );
    let b = env(1);
    assert_eq!(b["DRONE_REMOTE_URL"], "git@gitlab.example.com:team/infra.git");
    assert_eq!(b["DRONE_NETRC_MACHINE"], "gitlab.example.com");
    assert_eq!(b["DRONE_BUILD_EVENT"], "tag");
    assert_eq!(b["DRONE_TAG"], "v1.2.0");
    assert_eq!(b["DRONE_WORKSPACE"], "/harness/src");
    assert!(
        !b.contains_key("PLUGIN_DEPTH")
            && !b.contains_key("DRONE_NETRC_PASSWORD")
            && !b.contains_key("GIT_SSL_NO_VERIFY")
    );
    assert!(s.secrets.contains(&"ghp-123".to_string()));
}
