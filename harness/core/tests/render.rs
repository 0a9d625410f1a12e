//! Rendering the execution plan and what the product derives per step (plugin and AWS
//! variables, GitClone's drone-git variables, image pull secrets), golden-free.

use common::*;
use sgsim_core::render::container_name;
use sgsim_core::{PlanNode, load, plan, render_pod};

#[allow(dead_code, reason = "each test file uses a subset of the shared helpers")]
mod common;

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
