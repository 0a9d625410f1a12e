//! Validation of pipelines: every rule, with exact `file:line:col: message`.

use common::*;

#[allow(dead_code, reason = "each test file uses a subset of the shared helpers")]
mod common;

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
