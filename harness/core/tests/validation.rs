//! Validation: every rule, with exact `file:line:col: message`.

use sgsim_core::scenario::{ScenarioError, load};
use sgsim_core::{Diagnostics, Scenario};

fn load_with(path: &str, text: &str, files: &[(&str, &str)]) -> Result<Scenario, ScenarioError> {
    let files: Vec<(String, String)> = files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let loader = move |p: &str| -> Result<String, String> {
        files
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| "no such file".to_string())
    };
    load(path, text, &loader)
}

fn errs(path: &str, text: &str, files: &[(&str, &str)]) -> Vec<String> {
    match load_with(path, text, files) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.diagnostics().errors().map(|d| d.to_string()).collect(),
    }
}

fn bare_errs(text: &str) -> Vec<String> {
    errs("p.yaml", text, &[])
}

/// A pipeline whose step group body (from `stepGroupInfra:` on, indented 18 spaces) is given.
/// Lines 1..=14 are fixed; the body starts at line 15.
fn pipeline(stage_type: &str, group_body: &str) -> String {
    let head = format!(
        "pipeline:
  name: p
  identifier: p1
  projectIdentifier: proj
  orgIdentifier: default
  stages:
    - stage:
        name: deploy
        identifier: deploy
        type: {stage_type}
        spec:
          execution:
            steps:
              - stepGroup:
"
    );
    let body: String = group_body
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("                  {l}\n")
            }
        })
        .collect();
    head + &body
}

const GOOD_BODY: &str = "identifier: sg
name: sg
stepGroupInfra:
  type: KubernetesDirect
  spec:
    connectorRef: k8s
    namespace: ns1
steps:
  - step:
      identifier: run1
      name: run1
      type: Run
      spec:
        image: alpine:3.20
        command: echo hi
";

#[test]
fn good_pipeline_loads_bare() {
    let s =
        load_with("p.yaml", &pipeline("Deployment", GOOD_BODY), &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.step_group.identifier, "sg");
    assert!(s.header.bare);
    assert_eq!(s.header.fixtures.namespaces, vec!["ns1".to_string()]);
    assert!(
        s.header
            .fixtures
            .connectors
            .iter()
            .any(|c| c.identifier == "k8s" && c.connector_type == "KubernetesCluster")
    );
    assert!(
        s.header
            .fixtures
            .connectors
            .iter()
            .any(|c| c.identifier == "account.harnessImage")
    );
    assert_eq!(s.header.expect.status, sgsim_core::scenario::ExpectedStatus::Success);
    assert!(s.warnings.is_empty(), "{}", s.warnings);
}

#[test]
fn custom_stage_is_supported() {
    assert!(load_with("p.yaml", &pipeline("Custom", GOOD_BODY), &[]).is_ok());
}

#[test]
fn yaml_syntax_error_has_position() {
    let e = bare_errs("pipeline:\n  identifier: [a, b\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.yaml:"), "{e:?}");
    assert!(e[0].contains("YAML syntax error"), "{e:?}");
}

#[test]
fn tab_indentation_is_a_syntax_error() {
    let e = bare_errs("pipeline:\n\tidentifier: x\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.yaml:2:"), "{e:?}");
}

#[test]
fn duplicate_keys_are_errors() {
    let e = bare_errs("pipeline:\n  identifier: a\n  identifier: b\n");
    assert!(e[0].starts_with("p.yaml:3:"), "{e:?}");
}

#[test]
fn unknown_infra_field_suggests() {
    let body = GOOD_BODY.replace("    namespace: ns1", "    namespace: ns1\n    namespce: ns2");
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:22:23: unknown field `namespce` in stepGroupInfra.spec, did you mean `namespace`?"]
    );
}

#[test]
fn unknown_run_spec_field_suggests() {
    let body = GOOD_BODY.replace(
        "        command: echo hi",
        "        command: echo hi\n        envVariabels: {A: b}",
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:30:27: unknown field `envVariabels` in Run step spec, did you mean `envVariables`?"]
    );
}

#[test]
fn stage_level_unknown_fields_are_tolerated() {
    let mut p = pipeline("Deployment", GOOD_BODY);
    p = p.replace(
        "        type: Deployment\n",
        "        type: Deployment\n        whatever: 1\n        tags: {a: b}\n        failureStrategies: []\n",
    );
    let p = p.replace("                  name: sg\n", "                  name: sg\n                  when: {stageStatus: Success}\n                  delegateSelectors: [x]\n");
    assert!(load_with("p.yaml", &p, &[]).is_ok());
}

#[test]
fn missing_required_fields() {
    let body = GOOD_BODY
        .replace("    connectorRef: k8s\n", "")
        .replace("        image: alpine:3.20\n", "");
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec![
            "p.yaml:19:21: missing required field `connectorRef` in stepGroupInfra.spec",
            "p.yaml:26:25: missing required field `image` in Run step `run1`",
        ]
    );
}

#[test]
fn missing_namespace() {
    let body = GOOD_BODY.replace("    namespace: ns1\n", "");
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:19:21: missing required field `namespace` in stepGroupInfra.spec"]
    );
}

#[test]
fn unsupported_stage_type() {
    let e = bare_errs(&pipeline("CI", GOOD_BODY));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("p.yaml:10:15: stage `deploy` of type `CI` holds a containerized step group (`sg`)"),
        "{e:?}"
    );
}

#[test]
fn unsupported_step_type_names_supported_types() {
    let body = GOOD_BODY.replace("      type: Run", "      type: ShellScript");
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("p.yaml:26:31: step type `ShellScript` is not supported in a containerized step group"),
        "{e:?}"
    );
    assert!(
        e[0].contains("supported types: Run, Background, Plugin, GitClone"),
        "{e:?}"
    );
}

#[test]
fn reserved_shared_paths() {
    let body = GOOD_BODY.replace(
        "stepGroupInfra:",
        "sharedPaths:\n  - /var/run\n  - /harness\n  - /addon/\nstepGroupInfra:",
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:19:23: shared path `/harness` is reserved"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("p.yaml:20:23: shared path `/addon/` is reserved"),
        "{e:?}"
    );
}

#[test]
fn duplicate_step_identifiers() {
    let body = format!(
        "{GOOD_BODY}  - parallel:
      - step:
          identifier: run1
          type: Run
          spec:
            image: alpine
            command: echo 2
"
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:32:29: duplicate step identifier `run1` (first defined at line 24)"]
    );
}

#[test]
fn one_volume_per_mount_path() {
    let body = GOOD_BODY.replace(
        "    namespace: ns1\n",
        "    namespace: ns1
    volumes:
      - mountPath: /data
        type: EmptyDir
        spec: {medium: Memory}
      - mountPath: /data
        type: HostPath
        spec:
          path: /tmp
",
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:26:38: only one volume per mount path: `/data` is already used by volume #0"]
    );
}

#[test]
fn shared_path_and_volume_on_same_path() {
    let body = GOOD_BODY
        .replace("stepGroupInfra:", "sharedPaths: [/cache]\nstepGroupInfra:")
        .replace(
            "    namespace: ns1\n",
            "    namespace: ns1\n    volumes:\n      - {mountPath: /cache, type: EmptyDir}\n",
        );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec!["p.yaml:24:39: only one volume per mount path: `/cache` is already used by shared path #0"]
    );
}

#[test]
fn config_map_volume_needs_feature_flag() {
    let body = GOOD_BODY.replace(
        "    namespace: ns1\n",
        "    namespace: ns1
    volumes:
      - mountPath: /dir
        type: ConfigMap
        spec:
          name: test_config
          optional: false
",
    );
    let text = pipeline("Deployment", &body);
    // A scenario without the flag fails; with it, it loads.
    let scen =
        |flags: &str| format!("name: t\npipeline: p.yaml\nfixtures:\n  namespaces: [ns1]\n  featureFlags: [{flags}]\n");
    let e = errs("s/scenario.yaml", &scen(""), &[("p.yaml", &text)]);
    assert_eq!(
        e,
        vec!["s/p.yaml:24:33: ConfigMap volumes require the feature flag CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME"]
    );
    let ok = load_with(
        "s/scenario.yaml",
        &scen("CDS_CONFIG_MAPS_AND_SECRETS_AS_VOLUME"),
        &[("p.yaml", &text)],
    );
    assert!(
        ok.is_ok(),
        "{}",
        ok.err().map(|e| e.diagnostics().to_string()).unwrap_or_default()
    );
}

#[test]
fn secret_volume_needs_feature_flag_in_bare_pipeline_too() {
    let body = GOOD_BODY.replace(
        "    namespace: ns1\n",
        "    namespace: ns1\n    volumes:\n      - mountPath: /dir/test\n        type: Secret\n        spec:\n          name: test\n",
    );
    // Bare pipelines infer every known feature flag, so this loads.
    assert!(load_with("p.yaml", &pipeline("Deployment", &body), &[]).is_ok());
}

#[test]
fn no_containerized_step_group() {
    let text = "pipeline:
  identifier: p
  stages:
    - stage:
        identifier: s
        type: Deployment
        spec:
          execution:
            steps:
              - step:
                  identifier: x
                  type: ShellScript
";
    let e = bare_errs(text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("p.yaml:2:3: the pipeline has no containerized step group"),
        "{e:?}"
    );
}

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
fn all_errors_at_once() {
    let body = "identifier: sg
sharedPaths: [/harness]
stepGroupInfra:
  type: KubernetesDirect
  spec:
    namespace: ns1
    nodeSelectr: {a: b}
steps:
  - step:
      identifier: a
      type: Run
      spec:
        command: x
  - step:
      identifier: a
      type: ShellScript
  - step:
      identifier: b
      type: Background
      spec:
        image: docker:dind
        privilegd: true
";
    let e = bare_errs(&pipeline("Deployment", body));
    assert_eq!(e.len(), 6, "{e:#?}");
    let lines: Vec<&str> = e.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        vec![
            "p.yaml:16:33",
            "p.yaml:19:21",
            "p.yaml:21:23",
            "p.yaml:26:25",
            "p.yaml:30:31",
            "p.yaml:36:27"
        ]
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
fn diagnostics_render_source_line() {
    let body = GOOD_BODY.replace("    namespace: ns1", "    namespace: ns1\n    namespce: ns2");
    let err = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_err();
    let d: &Diagnostics = err.diagnostics();
    let plain = d.render_plain();
    assert!(
        plain.contains("\n                          namespce: ns2\n                          ^"),
        "{plain}"
    );
    assert!(plain.contains("help: valid fields: connectorRef, namespace"), "{plain}");
    // miette view: the span points at the key.
    let item = &d.items[0];
    let text = pipeline("Deployment", &body);
    let off = item.span.offset();
    assert_eq!(&text[off..off + item.span.len()], "namespce");
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
fn miette_renders_source_and_label() {
    let body = GOOD_BODY.replace("    namespace: ns1", "    namespace: ns1\n    namespce: ns2");
    let err = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_err();
    let d = &err.diagnostics().items[0];
    let mut out = String::new();
    miette::NarratableReportHandler::new()
        .render_report(&mut out, d)
        .unwrap();
    assert!(out.contains("unknown field `namespce` in stepGroupInfra.spec"), "{out}");
    assert!(out.contains("namespce: ns2"), "{out}");
    assert!(out.contains("p.yaml:22:23"), "{out}");
    assert!(out.contains("did you mean") || out.contains("valid fields"), "{out}");
    // The whole set renders as related diagnostics.
    let mut all = String::new();
    miette::JSONReportHandler::new().render_report(&mut all, &err).unwrap();
    let v: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(v["related"].as_array().unwrap().len(), 1, "{all}");
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
fn kubernetes_label_syntax() {
    let body = GOOD_BODY.replace(
        "    namespace: ns1\n",
        "    namespace: ns1\n    labels:\n      good.example.com/app: web\n      \"bad key\": x\n      tier: \"front end\"\n    annotations:\n      note: \"any text is fine here\"\n",
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec![
            "p.yaml:24:25: `bad key` is not a valid Kubernetes label key: the name must consist of alphanumerics, `-`, `_` or `.`, and start and end with an alphanumeric",
            "p.yaml:25:31: `front end` is not a valid Kubernetes label value: alphanumerics, `-`, `_` or `.`, starting and ending with an alphanumeric",
        ]
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
    };
    let s = load_with_options("p.yaml", text, &sgsim_core::no_files, &opts)
        .unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(s.step_group.identifier, "aws_sam_rollback_step_group");
    assert_eq!(s.step_group.section, sgsim_core::model::Section::RollbackSteps);
    assert_eq!(s.seed(), 9);
    assert_eq!(s.step_group.infra.connector_ref, "sgsim_cluster");
}

#[test]
fn step_templates_are_reported() {
    let body = GOOD_BODY.replace(
        "      type: Run\n      spec:\n        image: alpine:3.20\n        command: echo hi\n",
        "      template:\n        templateRef: account.run_tpl\n        versionLabel: v1\n",
    );
    let e = bare_errs(&pipeline("Deployment", &body));
    assert_eq!(
        e,
        vec![
            "p.yaml:26:25: step `run1` uses the step template `account.run_tpl`; templates are not supported by sgsim, inline the step"
        ]
    );
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
fn looping_strategies_are_warned_about() {
    let body = GOOD_BODY.replace(
        "        command: echo hi\n",
        "        command: echo hi\n      strategy:\n        matrix:\n          v: [a, b]\n",
    );
    let text = pipeline("Deployment", &body);
    let s = load_with("p.yaml", &text, &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|l| l.starts_with("p.yaml:30:25: looping strategy (matrix) of step `run1` is not simulated by sgsim")),
        "{w:#?}"
    );
}

#[test]
fn invalid_namespace_name_is_warned_about_and_not_inferred() {
    let text = pipeline(
        "Deployment",
        &GOOD_BODY.replace("namespace: ns1", "namespace: NAMESPACE"),
    );
    let s = load_with("p.yaml", &text, &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    let w: Vec<String> = s.warnings.warnings().map(|d| d.to_string()).collect();
    assert!(
        w.contains(&"p.yaml:21:34: namespace `NAMESPACE` is not a valid Kubernetes namespace name (a lowercase RFC 1123 label); the pod will fail to be created".to_string()),
        "{w:#?}"
    );
    assert!(s.fixtures().namespaces.is_empty());
    let ok =
        load_with("p.yaml", &pipeline("Deployment", GOOD_BODY), &[]).unwrap_or_else(|e| panic!("{}", e.diagnostics()));
    assert_eq!(ok.fixtures().namespaces, vec!["ns1".to_string()]);
}
