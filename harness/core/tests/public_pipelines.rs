//! Real public pipelines with containerized step groups (sources in each fixture's header
//! comment): they load as the product accepts them and render the expected step containers.

use k8s_openapi::api::core::v1::Pod;
use sgsim_core::{LoadOptions, Scenario, load_with_options, no_files, render_pod};

fn load_public(name: &str, text: &str, step_group: Option<&str>) -> Result<Scenario, String> {
    let opts = LoadOptions {
        step_group: step_group.map(str::to_string),
        ..Default::default()
    };
    load_with_options(&format!("fixtures/public/{name}"), text, &no_files, &opts)
        .map_err(|e| e.diagnostics().render_plain())
}

/// (container name, image, port) of each step container, in pod order.
fn steps(p: &Pod) -> Vec<(String, String, i32)> {
    p.spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .filter(|c| c.name.starts_with("step-"))
        .map(|c| {
            let port = c
                .ports
                .as_ref()
                .and_then(|ps| ps.first())
                .map(|p| p.container_port)
                .unwrap_or_default();
            (c.name.clone(), c.image.clone().unwrap_or_default(), port)
        })
        .collect()
}

fn check(name: &str, text: &str, step_group: Option<&str>, expected: &[(&str, &str)]) {
    let s = load_public(name, text, step_group).unwrap_or_else(|e| panic!("{name} should load:\n{e}"));
    assert!(!s.warnings.has_errors());
    let got = steps(&render_pod(&s));
    let want: Vec<(String, String, i32)> = expected
        .iter()
        .enumerate()
        .map(|(i, (n, img))| (n.to_string(), img.to_string(), 20002 + i as i32))
        .collect();
    assert_eq!(got, want, "{name}");
}

#[test]
fn aws_sam_provisioning() {
    check(
        "aws_sam_provisioning.yaml",
        include_str!("fixtures/public/aws_sam_provisioning.yaml"),
        None,
        &[
            ("step-dind", "docker:28-dind"),
            ("step-downloadmanifests", "harness/drone-git:1.3.4-rootless"),
            (
                "step-sambuild",
                "harness/aws-sam-plugin:nodejs20.x-1.120.0-1.0.1-beta-linux-amd64",
            ),
            (
                "step-samdeploy",
                "harness/aws-sam-plugin:nodejs20.x-1.120.0-1.0.1-beta-linux-amd64",
            ),
        ],
    );
}

#[test]
fn cloud_run_with_harness_approval() {
    let text = include_str!("fixtures/public/cloud_run_approval.yaml");
    // Two containerized step groups: the product runs each; sgsim needs one chosen.
    let err = load_public("cloud_run_approval.yaml", text, None).unwrap_err();
    assert!(err.contains("the pipeline has 2 containerized step groups"), "{err}");
    let run = "harness/google-cloud-run-plugin:1.0.9-linux-amd64";
    check(
        "cloud_run_approval.yaml",
        text,
        Some("Google_Cloud_Run_Step_Group"),
        &[
            ("step-downloadmanifests", "harness/drone-git:1.3.4-rootless"),
            ("step-googlecloudrunpreparerollbackdata", run),
            ("step-googlecloudrundeploy", run),
            // HarnessApproval_1 has no container.
            ("step-googlecloudruntrafficshift", run),
        ],
    );
    check(
        "cloud_run_approval.yaml",
        text,
        Some("Google_Cloud_Run_Rollback_Step_Group"),
        &[("step-googlecloudrunrollback", run)],
    );
}

#[test]
fn slack_notify() {
    check(
        "slack_notify.yaml",
        include_str!("fixtures/public/slack_notify.yaml"),
        None,
        &[("step-slacknotify1", "plugins/slack:1.4.1")],
    );
}

#[test]
fn db_schema_apply_infra_after_steps() {
    check(
        "db_schema_apply.yaml",
        include_str!("fixtures/public/db_schema_apply.yaml"),
        None,
        &[("step-applyschema", "harness/drone-liquibase:latest")],
    );
}

#[test]
fn slsa_provenance() {
    check(
        "slsa_provenance.yaml",
        include_str!("fixtures/public/slsa_provenance.yaml"),
        None,
        &[("step-slsagenerationcd", "harness/slsa-plugin:latest")],
    );
}

#[test]
fn wiz_scan_without_namespace_is_rejected() {
    let err = load_public(
        "wiz_no_namespace.yaml",
        include_str!("fixtures/public/wiz_no_namespace.yaml"),
        None,
    )
    .unwrap_err();
    // Only the missing namespace: the Wiz step itself (with its `image:` mapping) is accepted.
    assert!(
        err.contains(
            "fixtures/public/wiz_no_namespace.yaml:58:21: missing required field `namespace` in stepGroupInfra.spec"
        ),
        "{err}"
    );
    assert!(!err.contains("Wiz"), "{err}");
}

#[test]
fn ansible_step_group_template() {
    // A `template: {type: StepGroup}` file loads as a one-stage pipeline using it; its `<+input>`
    // connectorRef and namespace get the bare-pipeline defaults.
    let text = include_str!("fixtures/public/ansible_step_group_template.yaml");
    let s = load_public("ansible_step_group_template.yaml", text, None).unwrap();
    assert_eq!(s.namespace(), "default");
    assert_eq!(s.stage.identifier, "ansible_step_group");
    check(
        "ansible_step_group_template.yaml",
        text,
        None,
        &[
            ("step-clone", "harness/drone-git:1.3.4-rootless"),
            ("step-playbook", "pad92/ansible-alpine:9.1.0"),
        ],
    );
}

#[test]
fn dbops_preview_sql_without_namespace_is_rejected() {
    let text = include_str!("fixtures/public/dbops_preview_sql.yaml");
    for (group, line) in [("preview", 35), ("deploy", 68)] {
        let err = load_public("dbops_preview_sql.yaml", text, Some(group)).unwrap_err();
        let want = format!(
            "fixtures/public/dbops_preview_sql.yaml:{line}:21: missing required field `namespace` in stepGroupInfra.spec"
        );
        assert!(err.contains(&want), "{group}: {err}");
        // LiquibaseCommand and DBSchemaApply themselves are accepted.
        assert!(!err.contains("not supported"), "{err}");
    }
}

#[test]
fn ansible_custom_deployment_with_inputs() {
    // `<+input>` connectorRef/namespace of the group and of the steps; a looping `strategy` on a step.
    check(
        "ansible_custom_deployment.yaml",
        include_str!("fixtures/public/ansible_custom_deployment.yaml"),
        None,
        &[
            ("step-gitclone", "harness/drone-git:1.3.4-rootless"),
            ("step-run", "alpinelinux/ansible"),
        ],
    );
}

#[test]
fn dbops_groups_in_parallel_block() {
    let text = include_str!("fixtures/public/dbops_multi_env_parallel.yaml");
    let err = load_public("dbops_multi_env_parallel.yaml", text, None).unwrap_err();
    assert!(err.contains("the pipeline has 2 containerized step groups"), "{err}");
    let img = "harness/drone-liquibase:latest";
    check(
        "dbops_multi_env_parallel.yaml",
        text,
        Some("Liquibase_Update_staging"),
        &[("step-applytostaging", img)],
    );
    check(
        "dbops_multi_env_parallel.yaml",
        text,
        Some("Liquibase_Update_prod_us"),
        &[("step-applytoproductionus", img)],
    );
    let s = load_public("dbops_multi_env_parallel.yaml", text, Some("Liquibase_Update_staging")).unwrap();
    let pod = render_pod(&s);
    let c = pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == "step-applytostaging")
        .unwrap();
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(
        (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
        ("400m", "500Mi")
    );
}

#[test]
fn step_group_template_reference_is_named() {
    // A pipeline whose containerized step group comes from a template (as the ansible template
    // above is used): sgsim cannot fetch it and says so at the `template` key.
    let text = "pipeline:\n  identifier: p\n  stages:\n    - stage:\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n              - stepGroup:\n                  name: ansible\n                  identifier: ansible\n                  template:\n                    templateRef: ansible_step_group\n                    versionLabel: 1.0.0\n";
    let err = load_public("templated.yaml", text, None).unwrap_err();
    assert!(
        err.contains("templated.yaml:13:19: step group `ansible` uses the step group template `ansible_step_group`, which sgsim cannot fetch"),
        "{err}"
    );
}
