//! Validation of scenario.yaml (fixtures, inputs, secrets, expectations, the fake tier, step group
//! selection), with exact `file:line:col: message`.

use common::*;

#[allow(dead_code, reason = "each test file uses a subset of the shared helpers")]
mod common;

#[test]
fn step_group_not_found_lists_existing() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "name: t\npipeline: p.yaml\nstepGroup: sgg\nfixtures:\n  namespaces: [ns1]\n";
    let e = errs("dir/scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec![
            "dir/scenario.yaml:3:12: step group `sgg` not found (did you mean `sg`?); containerized step groups in the pipeline: deploy.sg"
        ]
    );
}

#[test]
fn scenario_unknown_field_suggests() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "name: t\npipeline: p.yaml\nfixture:\n  namespaces: [ns1]\n";
    let e = errs("scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec!["scenario.yaml:3:1: unknown field `fixture` in scenario.yaml, did you mean `fixtures`?"]
    );
    let scen = "name: t\npipeline: p.yaml\nfixtures:\n  namespace: [ns1]\n";
    let e = errs("scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec!["scenario.yaml:4:3: unknown field `namespace` in fixtures, did you mean `namespaces`?"]
    );
}

#[test]
fn namespace_not_in_fixtures_is_a_warning() {
    let text = pipeline("Deployment", GOOD_BODY);
    let s = load_with("scenario.yaml", "pipeline: p.yaml\nfixtures:\n  namespaces: [other]\n  connectors: [{identifier: k8s, type: KubernetesCluster}]\n", &[("p.yaml", &text)])
        .unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec!["p.yaml:21:34: namespace `ns1` is not in fixtures.namespaces; the pod will fail to be created"]
    );
}

#[test]
fn inputs_and_secrets_resolve() {
    let body = GOOD_BODY
        .replace("namespace: ns1", "namespace: <+input>")
        .replace("command: echo hi", "command: echo hi\n        envVariables:\n          TOKEN: <+secrets.getValue(\"tok\")>\n          MODE: <+input>.default(fast)");
    let text = pipeline("Deployment", &body);
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [from-input]
  harnessSecrets: {tok: s3cr3t}
  inputs:
    pipeline.stages.deploy.spec.execution.steps.sg.stepGroupInfra.spec.namespace: from-input
";
    let s = load_with("scenario.yaml", scen, &[("p.yaml", &text)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.namespace(), "from-input");
    let run = s.step_group.flat_steps()[0].clone();
    assert_eq!(
        run.env,
        vec![
            ("TOKEN".to_string(), "s3cr3t".to_string()),
            ("MODE".to_string(), "fast".to_string())
        ]
    );
    assert_eq!(s.secrets, vec!["s3cr3t".to_string()]);
}

#[test]
fn missing_input_and_secret_are_named() {
    let body = GOOD_BODY
        .replace("namespace: ns1", "namespace: <+input>")
        .replace("command: echo hi", "command: echo <+secrets.getValue(\"nope\")>");
    let text = pipeline("Deployment", &body);
    let e = errs("scenario.yaml", "pipeline: p.yaml\n", &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec![
            "p.yaml:21:34: runtime input `<+input>` of `pipeline.stages.deploy.spec.execution.steps.sg.stepGroupInfra.spec.namespace` has no value",
            "p.yaml:29:36: harness secret `nope` is not defined in fixtures.harnessSecrets",
        ]
    );
}

#[test]
fn inline_pipeline_and_expect() {
    let scen = format!(
        "name: inline
description: inline pipeline
seed: 7
stepGroup: deploy.sg
pipeline:
{}
fixtures:
  namespaces: [ns1]
  connectors:
    - {{identifier: k8s, type: KubernetesCluster}}
expect:
  status: Failed
  steps:
    run1: {{status: Failed, exitCode: 3}}
",
        pipeline("Deployment", GOOD_BODY)
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let s = load_with("scenario.yaml", &scen, &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.seed(), 7);
    assert_eq!(s.expect().steps["run1"].exit_code, Some(3));
    assert_eq!(s.pipeline_path, "scenario.yaml");
}

#[test]
fn expect_error_matches() {
    let body = GOOD_BODY.replace("      type: Run", "      type: ShellScript");
    let text = pipeline("Deployment", &body);
    let scen = "pipeline: p.yaml\nexpect:\n  error: \"p.yaml:26:31: step type `ShellScript`\"\n";
    let err = load_with("scenario.yaml", scen, &[("p.yaml", &text)]).unwrap_err();
    assert!(err.is_expected(), "{}", err.diagnostics());
    assert_eq!(
        err.header().unwrap().expect.status,
        sgsim_core::scenario::ExpectedStatus::Failed
    );
}

#[test]
fn missing_pipeline_file() {
    let e = errs("sc/scenario.yaml", "pipeline: nope.yaml\n", &[]);
    assert_eq!(
        e,
        vec!["sc/scenario.yaml:1:11: cannot read pipeline file `nope.yaml`: no such file"]
    );
}

#[test]
fn connector_secret_refs_must_exist() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns1]
  harnessSecrets: {reg_pass: x}
  connectors:
    - {identifier: reg, type: DockerRegistry, auth: usernamePassword, username: u, passwordRef: reg_pas}
    - {identifier: k8s, type: KubernetesClustr}
";
    let e = errs("scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec![
            "scenario.yaml:6:97: connector `passwordRef` names `reg_pas`, which is not in fixtures.harnessSecrets, did you mean `reg_pass`?",
            "scenario.yaml:7:31: unknown connector type `KubernetesClustr`: expected one of DockerRegistry, KubernetesCluster, Aws, Git, Github, Gitlab, Bitbucket, Gcp, Azure; did you mean `KubernetesCluster`?",
        ]
    );
}

#[test]
fn unused_input_is_a_warning() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns1]
  connectors: [{identifier: k8s, type: KubernetesCluster}]
  inputs:
    pipeline.stages.deploy.spec.execution.steps.sg.stepGroupInfra.spec.namespac: x
";
    let s = load_with("scenario.yaml", scen, &[("p.yaml", &text)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "scenario.yaml:6:5: input `pipeline.stages.deploy.spec.execution.steps.sg.stepGroupInfra.spec.namespac` is not used by step group `sg` (no `<+input>` at that field path)"
        ]
    );
}

#[test]
fn neither_scenario_nor_pipeline() {
    assert_eq!(
        bare_errs("template:\n  name: t\n"),
        vec![
            "p.yaml:1:1: expected a scenario (`name`, `pipeline`, `fixtures`, `expect`, ...) or a pipeline (a top-level `pipeline:` mapping), found `template`"
        ]
    );
    assert_eq!(
        bare_errs("- a\n- b\n"),
        vec!["p.yaml:1:1: expected a scenario or a pipeline (a mapping), found a sequence"]
    );
    assert_eq!(
        bare_errs(""),
        vec!["p.yaml:1:1: empty file: expected a scenario or a pipeline"]
    );
    assert_eq!(
        bare_errs("# only a comment\n"),
        vec!["p.yaml:1:1: empty file: expected a scenario or a pipeline"]
    );
}

#[test]
fn scenario_defaults_without_fixtures() {
    let text = pipeline("Deployment", GOOD_BODY);
    let s = load_with("scenario.yaml", "pipeline: p.yaml\n", &[("p.yaml", &text)]).unwrap();
    assert_eq!(s.fixtures().account_id, "sgsimAccount");
    assert_eq!(s.fixtures().nodes.len(), 1);
    assert_eq!(s.fixtures().nodes[0].name, "node-1");
    assert_eq!(s.seed(), 1);
    let s = load_with(
        "scenario.yaml",
        "pipeline: p.yaml\nfixtures:\n  nodes: []\n",
        &[("p.yaml", &text)],
    )
    .unwrap();
    assert!(s.fixtures().nodes.is_empty());
}

#[test]
fn bare_pipeline_infers_missing_inputs() {
    let body = GOOD_BODY
        .replace("connectorRef: k8s", "connectorRef: <+input>")
        .replace("namespace: ns1", "namespace: <+input>")
        .replace(
            "command: echo hi",
            "command: echo hi\n        envVariables: {A: <+input>}\n      timeout: <+input>.default(5m)",
        );
    let s = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.namespace(), "default");
    assert_eq!(s.step_group.infra.connector_ref, "sgsim_cluster");
    assert_eq!(s.fixtures().namespaces, vec!["default".to_string()]);
    let step = s.step_group.flat_steps()[0].clone();
    assert_eq!(step.env, vec![("A".to_string(), String::new())]);
    assert_eq!(step.timeout.as_deref(), Some("5m"));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].contains("has no value; using `sgsim_cluster`"), "{w:#?}");
}

#[test]
fn load_options_select_group_and_seed() {
    use sgsim_core::{LoadOptions, load_with_options};
    let text = include_str!("fixtures/sam_pipeline.yaml");
    let e = load_with("p.yaml", text, &[]).unwrap_err();
    assert!(e.diagnostics().to_string().contains("choose one with `stepGroup`"));
    let opts = LoadOptions {
        step_group: Some("aws_sam_rollback_step_group".into()),
        seed: Some(9),
        ..Default::default()
    };
    let s = load_with_options("p.yaml", text, &sgsim_core::no_files, &opts)
        .unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.step_group.identifier, "aws_sam_rollback_step_group");
    assert_eq!(s.step_group.section, sgsim_core::model::Section::RollbackSteps);
    assert_eq!(s.seed(), 9);
    assert_eq!(s.step_group.infra.connector_ref, "sgsim_cluster");
}

#[test]
fn fake_runtime_data_is_read() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "pipeline: p.yaml
fake:
  pull: 1500ms
  imageUsers: {alpine:3.20: 1000}
  exitCodes: {setup-addon: 1}
  steps:
    run1:
      attempts:
        - {exitCode: 3, duration: 2s, log: boom}
        - {outputs: {V: x}, oomKilled: true}
";
    let s = load_with("s/scenario.yaml", scen, &[("p.yaml", &text)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let f = &s.header.fake;
    assert_eq!(f.pull_millis, 1500);
    assert_eq!(f.image_users.get("alpine:3.20"), Some(&1000));
    assert_eq!(f.exit_codes.get("setup-addon"), Some(&1));
    let step = &f.steps["run1"];
    assert_eq!(step.attempt(0).exit_code, 3);
    assert_eq!(step.attempt(0).duration_millis, 2000);
    assert_eq!(step.attempt(0).log, "boom");
    assert_eq!(step.attempt(1).outputs.get("V").map(String::as_str), Some("x"));
    assert!(!step.attempt(0).oom_killed);
    assert!(step.attempt(1).oom_killed);
    // The last attempt repeats.
    assert_eq!(step.attempt(5).exit_code, 0);
    assert!(f.skip.is_none());
}

#[test]
fn fake_runtime_data_errors_have_positions() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "pipeline: p.yaml
fake:
  pull: soon
  steps:
    run2: {exitCode: 300}
    run1: {exitCod: 1}
";
    let e = errs("s/scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec![
            "s/scenario.yaml:3:9: `pull` `soon` is not a duration (e.g. 2s, 500ms)",
            "s/scenario.yaml:5:5: fake.steps names `run2`, which is not a step of `sg` (did you mean `run1`?)",
            "s/scenario.yaml:5:22: `exitCode` must be an integer between 0 and 255",
            "s/scenario.yaml:6:12: unknown field `exitCod` in fake step, did you mean `exitCode`?",
        ]
    );
}

#[test]
fn nested_inputs_have_their_own_paths() {
    let body = GOOD_BODY.replace(
        "      type: Run
      spec:
        image: alpine:3.20
        command: echo hi
",
        "      type: Plugin
      spec:
        image: plugins/x
        settings:
          target: {branch: <+input>, tags: [a, <+input>]}
",
    );
    let text = pipeline("Deployment", &body);
    let e = errs(
        "scenario.yaml",
        "pipeline: p.yaml\nfixtures:\n  namespaces: [ns1]\n",
        &[("p.yaml", &text)],
    );
    let f = "pipeline.stages.deploy.spec.execution.steps.sg.steps.run1.spec.settings.target";
    assert_eq!(
        e,
        vec![
            format!("p.yaml:30:46: runtime input `<+input>` of `{f}.branch` has no value"),
            format!("p.yaml:30:66: runtime input `<+input>` of `{f}.tags.1` has no value"),
        ]
    );
    let scen = format!(
        "pipeline: p.yaml\nfixtures:\n  namespaces: [ns1]\n  inputs:\n    {f}.branch: main\n    {f}.tags.1: b\n"
    );
    let s = load_with("scenario.yaml", &scen, &[("p.yaml", &text)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let st = s.step_group.flat_steps()[0].clone();
    assert_eq!(
        st.settings,
        vec![(
            "target".to_string(),
            serde_json::json!({"branch": "main", "tags": ["a", "b"]})
        )]
    );
    // A bare pipeline leaves them unset, with a warning each.
    let bare = load_with("p.yaml", &text, &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let st = bare.step_group.flat_steps()[0].clone();
    assert_eq!(
        st.settings,
        vec![(
            "target".to_string(),
            serde_json::json!({"branch": null, "tags": ["a", null]})
        )]
    );
}

#[test]
fn bare_pipeline_node_satisfies_selector_and_required_affinity() {
    let body = GOOD_BODY.replace(
        "    namespace: ns1\n",
        "    namespace: ns1\n    nodeSelector:\n      pool: builds\n    tolerations:\n      - key: dedicated\n        operator: Equal\n        value: ci\n        effect: NoSchedule\n    podSpecOverlay: |\n      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            nodeSelectorTerms:\n              - matchExpressions:\n                  - {key: zone, operator: In, values: [eu-1a, eu-1b]}\n                  - {key: gpu, operator: Exists}\n                  - {key: cores, operator: Gt, values: [\"8\"]}\n                  - {key: spot, operator: DoesNotExist}\n",
    );
    let s = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let node = &s.fixtures().nodes[0];
    let labels: Vec<(&str, &str)> = node.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        labels,
        [("cores", "9"), ("gpu", ""), ("pool", "builds"), ("zone", "eu-1a")]
    );
    assert!(node.taints.is_empty(), "a node without taints admits every toleration");
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    let inferred: Vec<&String> = w
        .iter()
        .filter(|d| d.contains("the inferred node `node-1` gets the labels"))
        .collect();
    assert_eq!(inferred.len(), 1, "{w:#?}");
    assert!(inferred[0].starts_with("p.yaml:"), "{}", inferred[0]);
    assert!(
        inferred[0].contains("pool=builds, zone=eu-1a, gpu=, cores=9"),
        "{}",
        inferred[0]
    );

    // Without a selector or affinity the inferred node has no labels.
    let plain = load_with("p.yaml", &pipeline("Deployment", GOOD_BODY), &[]).unwrap();
    assert!(plain.fixtures().nodes[0].labels.is_empty());
}

#[test]
fn unmodelled_infra_expressions_get_a_value_and_never_stay_raw() {
    // A bare pipeline: each expression becomes a value of its field, with a warning that says
    // how to pin it.
    let body = GOOD_BODY
        .replace("namespace: ns1", "namespace: <+infra.namespace>")
        .replace(
            "connectorRef: k8s",
            "connectorRef: <+env.variables.k8s_connector>\n    serviceAccountName: sa-<+env.name>",
        );
    let s = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.namespace(), "default");
    assert_eq!(s.step_group.infra.connector_ref, "sgsim_cluster");
    assert_eq!(s.step_group.infra.service_account_name.as_deref(), Some("sa-name"));
    assert_eq!(s.fixtures().namespaces, ["default"]);
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    let ns = w
        .iter()
        .find(|d| d.contains("`<+infra.namespace>`"))
        .unwrap_or_else(|| panic!("{w:#?}"));
    assert!(
        ns.starts_with("p.yaml:")
            && ns.contains(
                "has no value in sgsim; using `default` (pin it under fixtures.expressions: `infra.namespace: <value>`)"
            ),
        "{ns}"
    );
    assert!(
        w.iter().any(|d| d.contains("`<+env.name>` in `serviceAccountName`")),
        "{w:#?}"
    );

    // A scenario pins them under fixtures.expressions: no warning, the pinned values.
    let scen = format!(
        "name: pinned\npipeline:\n{}\nfixtures:\n  namespaces: [apps]\n  connectors:\n    - {{identifier: k8s, type: KubernetesCluster}}\n  serviceAccounts: [sa-prod]\n  expressions:\n    infra.namespace: apps\n    env.variables.k8s_connector: k8s\n    env.name: prod\n",
        pipeline("Deployment", &body)
            .lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let s = load_with("scenario.yaml", &scen, &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.namespace(), "apps");
    assert_eq!(s.step_group.infra.connector_ref, "k8s");
    assert_eq!(s.step_group.infra.service_account_name.as_deref(), Some("sa-prod"));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert!(w.iter().all(|d| !d.contains("has no value in sgsim")), "{w:#?}");
}

#[test]
fn rbac_fixtures_are_checked_where_they_are_written() {
    let text = pipeline("Deployment", GOOD_BODY);
    let scen = "name: t\npipeline: p.yaml\nfixtures:\n  namespaces: [ns1]\n  rbac:\n    - apiVersion: v1\n      kind: Role\n      metadata: {name: r}\n    - apiVersion: rbac.authorization.k8s.io/v1\n      kind: Rolebinding\n      metadata: {name: b}\n    - apiVersion: rbac.authorization.k8s.io/v1\n      kind: RoleBinding\n      metadata: {name: b}\n      roleRef: {kind: Secret, name: x}\n      subjects:\n        - {kind: Robot, name: r2}\n";
    let e = errs("scenario.yaml", scen, &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec![
            "scenario.yaml:6:19: rbac fixtures must have `apiVersion: rbac.authorization.k8s.io/v1`",
            "scenario.yaml:10:13: rbac fixture `kind` must be one of Role, ClusterRole, RoleBinding, ClusterRoleBinding",
            "scenario.yaml:15:16: `roleRef.kind` of a RoleBinding must be Role or ClusterRole",
            "scenario.yaml:17:11: subject `kind` must be one of ServiceAccount, User, Group",
        ]
    );
    let ok = "name: t\npipeline: p.yaml\nfixtures:\n  namespaces: [ns1]\n  rbac:\n    - apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRole\n      metadata: {name: r}\n      rules: [{apiGroups: [\"\"], resources: [pods], verbs: [list]}]\n";
    let sc = load_with("scenario.yaml", ok, &[("p.yaml", &text)]).expect("a valid rbac fixture");
    assert_eq!(sc.fixtures().rbac[0]["kind"], "ClusterRole");
    assert_eq!(sc.fixtures().rbac[0]["rules"][0]["verbs"][0], "list");
}

/// Two stages with one containerized step group each; `ns_b` is the second group's namespace
/// line (`None`: no namespace).
fn two_group_pipeline(ns_b: Option<&str>) -> String {
    let ns_b = ns_b
        .map(|n| format!("\n                      namespace: {n}"))
        .unwrap_or_default();
    format!(
        "pipeline:
  identifier: p
  stages:
    - stage:
        identifier: a
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: ga
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: k8s
                      namespace: ns1
                  steps:
                    - step: {{identifier: r, type: Run, spec: {{image: alpine, command: <+input>}}}}
    - stage:
        identifier: b
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: gb
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: <+input>{ns_b}
                  steps:
                    - step: {{identifier: x, type: Run, spec: {{image: <+input>, command: <+secrets.getValue(\"nope\")>}}}}
                    - step: {{identifier: y, type: Nope, spec: {{}}}}
"
    )
}

#[test]
fn every_containerized_step_group_of_the_pipeline_is_validated() {
    // The product validates the whole pipeline: with `ga` selected, `gb`'s errors are reported
    // too, at their own positions; its runtime inputs and secrets are no error (they are given
    // when `gb` runs).
    let scen = "name: t\npipeline: p.yaml\nstepGroup: ga\nfixtures:\n  namespaces: [ns1]\n  connectors: [{identifier: k8s, type: KubernetesCluster}]\n  inputs:\n    pipeline.stages.a.spec.execution.steps.ga.steps.r.spec.command: echo hi\n";
    let e = errs("scenario.yaml", scen, &[("p.yaml", &two_group_pipeline(None))]);
    assert_eq!(
        e,
        vec![
            "p.yaml:29:21: missing required field `namespace` in stepGroupInfra.spec".to_string(),
            "p.yaml:33:51: step type `Nope` is not supported in a containerized step group; supported types: "
                .to_string()
                + &sgsim_core::step_types::names().collect::<Vec<_>>().join(", "),
        ]
    );
    // With `gb` valid, `ga` loads, and nothing of `gb` is reported (not even warnings).
    let fixed = two_group_pipeline(Some("ns2")).replace("type: Nope", "type: Run, spec: {image: a, command: b}} #");
    let s = load_with("scenario.yaml", scen, &[("p.yaml", &fixed)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.step_group.identifier, "ga");
    assert!(s.warnings.is_empty(), "{}", s.warnings);
    // Selecting the invalid group reports the same errors, plus its own inputs and secrets.
    let scen_b = "name: t\npipeline: p.yaml\nstepGroup: gb\n";
    let e = errs("scenario.yaml", scen_b, &[("p.yaml", &two_group_pipeline(None))]);
    assert!(
        e.iter()
            .any(|d| d.starts_with("p.yaml:29:21: missing required field `namespace`")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|d| d.contains("harness secret `nope` is not defined")),
        "{e:#?}"
    );
    assert!(!e.iter().any(|d| d.contains(".ga.")), "{e:#?}");
}

#[test]
fn step_images_and_container_fields_resolve_their_expressions() {
    // `<+pipeline.variables.plugin_image>` (harness-community/cd-tidbit-custom-plugins): the
    // product resolves it before it creates the pod; so do stage variables, env.variables and
    // fixtures.expressions, in the image, the step's connectorRef, its resources and pull policy,
    // and the group's namespace.
    let p = "pipeline:
  identifier: p
  variables:
    - {name: plugin_image, type: String, value: myorg/plugin:<+pipeline.variables.tag>}
    - {name: tag, type: String, value: '1.2'}
    - {name: ns, type: String, value: apps}
  stages:
    - stage:
        identifier: s
        type: Custom
        variables:
          - {name: mem, type: String, value: 300Mi}
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: g
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: k8s
                      namespace: <+pipeline.variables.ns>
                  steps:
                    - step:
                        identifier: plug
                        type: Plugin
                        spec:
                          connectorRef: <+env.variables.registry>
                          image: <+pipeline.variables.plugin_image>
                          imagePullPolicy: <+infra.pull>
                          resources: {limits: {memory: <+stage.variables.mem>, cpu: <+infra.cpu>}}
                    - step:
                        identifier: other
                        type: Plugin
                        spec:
                          image: <+artifact.image>
";
    let scen = "name: t\npipeline: p.yaml\nfixtures:\n  namespaces: [apps]\n  envVariables: {registry: dockerhub}\n  connectors: [{identifier: k8s, type: KubernetesCluster}, {identifier: dockerhub, type: DockerRegistry, url: 'https://index.docker.io/v2/'}]\n  expressions:\n    infra.pull: IfNotPresent\n";
    let s = load_with("scenario.yaml", scen, &[("p.yaml", p)]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.namespace(), "apps");
    let steps = s.step_group.flat_steps();
    let plug = steps[0];
    assert_eq!(plug.image.as_deref(), Some("myorg/plugin:1.2"));
    assert_eq!(plug.connector_ref.as_deref(), Some("dockerhub"));
    assert_eq!(plug.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(plug.memory_limit.as_deref(), Some("300Mi"));
    // An expression sgsim has no value for never reaches Kubernetes raw: a resource limit is
    // unset, an image gets its last name segment, each with a file:line:col warning.
    assert_eq!(plug.cpu_limit, None);
    assert_eq!(steps[1].image.as_deref(), Some("image"));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "p.yaml:31:85: expression `<+infra.cpu>` in `cpu` has no value in sgsim; using nothing (the field is unset) (pin it under fixtures.expressions: `infra.cpu: <value>`)",
            "p.yaml:36:34: expression `<+artifact.image>` in `image` has no value in sgsim; using `image` (pin it under fixtures.expressions: `artifact.image: <value>`)",
        ]
    );
    let pod = sgsim_core::render_pod(&s);
    let images: Vec<String> = pod
        .spec
        .unwrap()
        .containers
        .iter()
        .filter_map(|c| c.image.clone())
        .collect();
    assert!(images.iter().all(|i| !i.contains("<+")), "{images:?}");
    assert!(images.contains(&"myorg/plugin:1.2".to_string()), "{images:?}");
}

#[test]
fn kubernetes_version_is_read_and_checked_where_it_is_written() {
    let text = pipeline("Deployment", GOOD_BODY);
    let fx = "  namespaces: [ns1]\n  connectors: [{identifier: k8s, type: KubernetesCluster}]\n";
    let s = load_with(
        "scenario.yaml",
        &format!("pipeline: p.yaml\nfixtures:\n  kubernetesVersion: v1.32.4\n{fx}"),
        &[("p.yaml", &text)],
    )
    .unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.fixtures().kubernetes_version.as_deref(), Some("v1.32.4"));
    let e = load_with(
        "scenario.yaml",
        &format!("pipeline: p.yaml\nfixtures:\n  kubernetesVersion: latest\n{fx}"),
        &[("p.yaml", &text)],
    )
    .unwrap_err();
    assert!(
        e.diagnostics()
            .to_string()
            .contains("scenario.yaml:3:22: kubernetesVersion `latest` is not a Kubernetes 1.x version"),
        "{}",
        e.diagnostics()
    );
}
