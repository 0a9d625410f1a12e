//! `sgsim repro`: a pipeline sgsim has never seen becomes a scenario that passes as a trial, and a
//! customer's Initialize log is aligned with sgsim's, naming the first line where they part.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::TempDir;

const PIPELINE: &str = r#"pipeline:
  name: Customer deploy
  identifier: customer_deploy
  projectIdentifier: payments
  orgIdentifier: default
  stages:
    - stage:
        name: deploy
        identifier: deploy
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  name: release
                  identifier: release
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: account.prod_cluster
                      namespace: payments
                  steps:
                    - step:
                        type: Run
                        name: announce
                        identifier: announce
                        spec:
                          connectorRef: account.harnessImage
                          image: alpine:3.19
                          shell: Sh
                          envVariables:
                            TARGET: <+input>
                          command: echo "releasing to $TARGET with <+secrets.getValue("deploy_token")>"
"#;

fn sgsim(args: &[&str], ci: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sgsim"));
    c.env("NO_COLOR", "1").env_remove("SGSIM_BLESS").args(args);
    if ci {
        c.env("CI", "true");
    } else {
        c.env_remove("CI");
    }
    c.output().expect("sgsim runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

#[test]
fn a_pasted_pipeline_becomes_a_passing_trial_and_a_customer_log_is_aligned() {
    let root = TempDir::new("trial");
    let pipeline = root.path().join("customer-deploy.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let inputs = root.path().join("inputs.yaml");
    std::fs::write(
        &inputs,
        "pipeline.stages.deploy.spec.execution.steps.release.steps.announce.spec.envVariables.TARGET: blue\n",
    )
    .unwrap();
    let name = format!("repro-t-{}", unique());
    let r = root.path().to_str().unwrap();
    // `sgsim repro` of the pipeline under `name`, with the inputs and, when given, a customer log.
    let repro = |name: &str, log: Option<&Path>| {
        let mut args = vec![
            "repro",
            pipeline.to_str().unwrap(),
            "--root",
            r,
            "--name",
            name,
            "--inputs",
            inputs.to_str().unwrap(),
        ];
        if let Some(l) = log {
            args.extend(["--log", l.to_str().unwrap()]);
        }
        sgsim(&args, false)
    };
    let o = repro(&name, None);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let dir = root.path().join("scenarios").join(&name);
    let golden = root.path().join("golden").join(&name);
    // The pipeline verbatim; each inferred fixture with its comment.
    assert_eq!(std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap(), PIPELINE);
    let scenario = std::fs::read_to_string(dir.join("scenario.yaml")).unwrap();
    for want in [
        "# the stepGroupInfra namespace",
        "- payments",
        "identifier: account.prod_cluster",
        "harnessSecrets:",
        "deploy_token:",
        "TARGET: blue",
        "status: Success",
    ] {
        assert!(scenario.contains(want), "no `{want}` in:\n{scenario}");
    }
    let log = std::fs::read_to_string(golden.join("steps/announce.log")).unwrap();
    assert!(log.contains("releasing to blue with"), "{log}");
    assert!(
        !log.contains("sgsim-secret-deploy_token"),
        "the secret is masked: {log}"
    );

    // An ordinary trial now: under CI=true (nothing written) the outcome and goldens hold.
    let o = sgsim(&["run", dir.to_str().unwrap()], true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The customer's log as copied from the UI, timestamps and all, with its third event changed.
    let ours = std::fs::read_to_string(golden.join("initialize.log")).unwrap();
    let lines: Vec<&str> = ours.lines().collect();
    assert!(lines.len() >= 4, "{ours}");
    let theirs: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == 2 {
                "Pulling image \"harness/ci-addon:1.14.0\""
            } else {
                l
            };
            format!("12/04/2026 10:22:{:02} AM {l}\n", 10 + i)
        })
        .collect();
    let log_file = root.path().join("customer-initialize.log");
    std::fs::write(&log_file, &theirs).unwrap();
    let name2 = format!("{name}-log");
    let o = repro(&name2, Some(&log_file));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("the Initialize logs part at line 3"), "{out}");
    assert!(
        out.contains("customer: Pulling image \"harness/ci-addon:1.14.0\""),
        "{out}"
    );
    assert!(out.contains(&format!("sgsim:    {}", lines[2])), "{out}");

    // The same log unchanged agrees.
    let same: String = lines.iter().map(|l| format!("2026-12-04T10:22:10Z {l}\n")).collect();
    std::fs::write(&log_file, &same).unwrap();
    let o = repro(&format!("{name}-same"), Some(&log_file));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("agree line for line"), "{out}");
}

#[test]
fn repro_refuses_what_it_would_overwrite_and_ci() {
    let root = TempDir::new("refuse");
    let pipeline = root.path().join("p.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    std::fs::create_dir_all(root.path().join("scenarios/taken")).unwrap();
    let r = root.path().to_str().unwrap();
    let o = sgsim(
        &["repro", pipeline.to_str().unwrap(), "--root", r, "--name", "taken"],
        false,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("exists already"), "{}", text(&o));
    let o = sgsim(
        &["repro", pipeline.to_str().unwrap(), "--root", r, "--name", "Bad Name"],
        false,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = sgsim(
        &["repro", pipeline.to_str().unwrap(), "--root", r, "--name", "ok-name"],
        true,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("CI=true"), "{}", text(&o));
    assert!(!Path::new(&root.path().join("scenarios/ok-name")).exists());
}
