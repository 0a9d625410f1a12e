//! Helpers shared by the test files: loading the fixture scenarios, reading pods, and collecting
//! the diagnostics of invalid inputs.

use k8s_openapi::api::core::v1::{Container, Pod};
use sgsim_core::scenario::{ScenarioError, load};
use sgsim_core::{Scenario, no_files};

pub fn dind() -> Scenario {
    load(
        "fixtures/dind_pipeline.yaml",
        include_str!("../fixtures/dind_pipeline.yaml"),
        &no_files,
    )
    .unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

pub fn full() -> Scenario {
    let loader = |p: &str| match p {
        "full_pipeline.yaml" => Ok(include_str!("../fixtures/full_pipeline.yaml").to_string()),
        _ => Err("no such file".to_string()),
    };
    load(
        "fixtures/full_scenario.yaml",
        include_str!("../fixtures/full_scenario.yaml"),
        &loader,
    )
    .unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

pub fn containers(p: &Pod) -> &[Container] {
    &p.spec.as_ref().unwrap().containers
}

pub fn find<'a>(p: &'a Pod, name: &str) -> &'a Container {
    containers(p)
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

pub fn env_of(c: &Container) -> Vec<(String, String)> {
    c.env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

pub fn q(c: &Container, which: &str, res: &str) -> String {
    let r = c.resources.as_ref().unwrap();
    let m = if which == "requests" {
        r.requests.as_ref()
    } else {
        r.limits.as_ref()
    };
    m.unwrap()[res].0.clone()
}

pub fn with_scenario(pipeline: &str, scenario: &str) -> Scenario {
    let p = pipeline.to_string();
    let loader = move |_: &str| Ok::<String, String>(p.clone());
    load("s/scenario.yaml", scenario, &loader).unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()))
}

pub fn init_image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0]
        .image
        .clone()
        .unwrap()
}

pub fn load_with(path: &str, text: &str, files: &[(&str, &str)]) -> Result<Scenario, ScenarioError> {
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

pub fn errs(path: &str, text: &str, files: &[(&str, &str)]) -> Vec<String> {
    match load_with(path, text, files) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.diagnostics().errors().map(|d| d.to_string()).collect(),
    }
}

pub fn bare_errs(text: &str) -> Vec<String> {
    errs("p.yaml", text, &[])
}

/// A pipeline whose step group body (from `stepGroupInfra:` on, indented 18 spaces) is given.
/// Lines 1..=14 are fixed; the body starts at line 15.
pub fn pipeline(stage_type: &str, group_body: &str) -> String {
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

pub const GOOD_BODY: &str = "identifier: sg
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
