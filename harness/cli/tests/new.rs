//! `sgsim new aws-sam|serverless`: the generated scenarios validate, are never overwritten, and
//! are the ones committed under scenarios/ (aws-sam-keys, aws-sam-service-account,
//! serverless-deploy were written by this command).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sgsim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sgsim"));
    c.env_remove("SGSIM_BLESS").env_remove("CI").env("NO_COLOR", "1");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A unique temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let p = std::env::temp_dir().join(format!("sgsim-new-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> (Output, String, String) {
    let o = sgsim().args(args).output().expect("run sgsim");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, out, err)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("<cannot read {}: {e}>", p.display()))
}

#[test]
fn aws_sam_scenario_is_written_and_validates() {
    let t = TempDir::new("sam");
    let dir = t.0.join("my-sam");
    let d = dir.to_str().expect("utf-8 path");
    let (o, out, err) = run(&["new", "aws-sam", "--output", d]);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("ok: "), "validated after writing: {out}");
    assert!(out.contains("step group aws_sam_step_group, 4 step(s)"), "{out}");
    let pipeline = read(&dir.join("pipeline.yaml"));
    for t in [
        "type: DownloadManifests",
        "type: Background",
        "type: AwsSamBuild",
        "type: AwsSamDeploy",
        "deploymentType: AWS_SAM",
    ] {
        assert!(pipeline.contains(t), "pipeline lacks {t}:\n{pipeline}");
    }
    let scenario = read(&dir.join("scenario.yaml"));
    assert!(scenario.contains("name: my-sam"), "{scenario}");
    assert!(
        scenario.contains("secretKeyRef: aws_secret_key") && scenario.contains("crossAccountRoleArn:"),
        "{scenario}"
    );
    // `validate` accepts it on its own too.
    let (o, out, err) = run(&["validate", d]);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    // A second run never overwrites.
    let before = read(&dir.join("scenario.yaml"));
    let (o, _, err) = run(&["new", "serverless", "--output", d]);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("exists; not overwriting it"), "{err}");
    assert_eq!(read(&dir.join("scenario.yaml")), before);
}

#[test]
fn serverless_and_service_account_variants_validate() {
    let t = TempDir::new("sls");
    let sls = t.0.join("sls");
    let (o, out, err) = run(&["new", "serverless", "--output", sls.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let pipeline = read(&sls.join("pipeline.yaml"));
    for t in [
        "type: DownloadManifests",
        "type: ServerlessAwsLambdaPrepareRollbackV2",
        "type: ServerlessAwsLambdaPackageV2",
        "type: ServerlessAwsLambdaDeployV2",
    ] {
        assert!(pipeline.contains(t), "pipeline lacks {t}:\n{pipeline}");
    }
    let sa = t.0.join("sa");
    let (o, out, err) = run(&[
        "new",
        "aws-sam",
        "--service-account",
        "builder",
        "--output",
        sa.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let scenario = read(&sa.join("scenario.yaml"));
    assert!(
        !scenario.contains("accessKey") && !scenario.contains("harnessSecrets"),
        "{scenario}"
    );
    assert!(scenario.contains("serviceAccounts: [builder]"), "{scenario}");
    assert!(read(&sa.join("pipeline.yaml")).contains("serviceAccountName: builder"));
}

#[test]
fn unknown_kind_is_a_usage_error() {
    let (o, _, err) = run(&["new", "cloudformation"]);
    assert_eq!(o.status.code(), Some(2), "{err}");
}

/// The committed scenarios are exactly what `sgsim new` writes (regenerate them when this fails).
#[test]
fn committed_scenarios_are_generated() {
    let t = TempDir::new("committed");
    for (name, args) in [
        ("aws-sam-keys", &["aws-sam"][..]),
        (
            "aws-sam-service-account",
            &["aws-sam", "--service-account", "sam-deployer"][..],
        ),
        ("serverless-deploy", &["serverless"][..]),
    ] {
        let dir = t.0.join(name);
        let mut a = vec!["new"];
        a.extend_from_slice(args);
        let d = dir.to_str().expect("utf-8 path");
        a.extend_from_slice(&["--output", d]);
        let (o, out, err) = run(&a);
        assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
        for f in ["scenario.yaml", "pipeline.yaml"] {
            assert_eq!(
                read(&dir.join(f)),
                read(&repo().join("scenarios").join(name).join(f)),
                "{name}/{f}"
            );
        }
    }
}
