//! End-to-end tests of the `sgsim` binary on inputs that need no Docker: validation errors and exit
//! codes, rendering, the golden loop (diff, pending files, bless, CI refusal) and `cluster up` with
//! kubectl and kube-rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::TempDir;

fn sgsim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sgsim"));
    c.env_remove("SGSIM_BLESS").env_remove("CI").env("NO_COLOR", "1");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const GOOD: &str = r#"pipeline:
  name: p
  identifier: p
  projectIdentifier: proj
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
                  name: group one
                  identifier: group_one
                  sharedPaths: [/shared]
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: k8s
                      namespace: ns1
                  steps:
                    - step:
                        type: Run
                        name: a
                        identifier: step_a
                        spec:
                          connectorRef: account.harnessImage
                          image: alpine
                          command: echo a
"#;

#[test]
fn malformed_yaml_is_exit_1_with_position() {
    let t = TempDir::new("malformed");
    let f = write(t.path(), "p.yaml", b"pipeline:\n  name: [unclosed\n  identifier: x\n");
    let o = sgsim().arg("validate").arg(&f).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!("{}:", f.display());
    assert!(err.contains(&want) && err.contains("YAML syntax error"), "{err}");
    let pos = err.lines().next().unwrap().trim_start_matches(&want).to_string();
    let parts: Vec<&str> = pos.splitn(3, ':').collect();
    assert!(
        parts[0].parse::<u32>().is_ok() && parts[1].parse::<u32>().is_ok(),
        "no line:col in {err}"
    );
}

#[test]
fn unknown_field_suggests_the_closest_name() {
    let t = TempDir::new("unknown");
    let bad = GOOD.replace(
        "namespace: ns1",
        "namespace: ns1\n                      nodeSelectr: {disk: ssd}",
    );
    let f = write(t.path(), "p.yaml", bad.as_bytes());
    let o = sgsim().arg("validate").arg(&f).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:23:23:", f.display())), "{err}");
    assert!(err.contains("nodeSelectr") && err.contains("nodeSelector"), "{err}");
}

#[test]
fn missing_step_group_lists_the_existing_ones() {
    let t = TempDir::new("missing-group");
    write(t.path(), "p.yaml", GOOD.as_bytes());
    let sc = "name: x\npipeline: p.yaml\nstepGroup: nope\n";
    let f = write(t.path(), "scenario.yaml", sc.as_bytes());
    let o = sgsim().arg("validate").arg(&f).output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:3:", f.display())), "{err}");
    assert!(err.contains("nope") && err.contains("group_one"), "{err}");
}

#[test]
fn empty_and_binary_files_are_exit_1_without_panic() {
    let t = TempDir::new("junk");
    let empty = write(t.path(), "empty.yaml", b"");
    let binary = write(
        t.path(),
        "bin.yaml",
        &[0u8, 159, 146, 150, 255, 0, 1, 2, 3, b'\n', 0xC3, 0x28],
    );
    for f in [empty, binary] {
        let o = sgsim().arg("validate").arg(&f).output().unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", f.display());
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(&f.display().to_string()), "{err}");
    }
}

#[test]
fn missing_file_and_bad_usage() {
    let o = sgsim()
        .args(["validate", "/nonexistent/sgsim/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = sgsim().args(["render"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = sgsim().args(["--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("Exit codes"));
}

#[test]
fn render_json_of_a_pasted_pipeline_is_a_pod() {
    let t = TempDir::new("render");
    let f = write(t.path(), "pasted.yaml", GOOD.as_bytes());
    let o = sgsim().args(["render", "-o", "json"]).arg(&f).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_str(&out).expect("a Kubernetes Pod");
    let name = pod.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("harnesscd-groupone-") && name.len() == "harnesscd-groupone-".len() + 8,
        "{name}"
    );
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let init = &spec.init_containers.unwrap()[0];
    assert_eq!(init.name, "setup-addon");
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["step-stepa", "lite-engine"]);
    let step = &spec.containers[0];
    assert_eq!(step.command.as_deref(), Some(&["/addon/bin/ci-addon".to_string()][..]));
    assert_eq!(
        step.args.as_deref(),
        Some(&["--port".to_string(), "20002".to_string()][..])
    );
    let vols: Vec<&str> = spec.volumes.as_ref().unwrap().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vols, ["harness", "addon", "shared-0"]);
    for c in spec.containers.iter().chain([init]) {
        let mounts: Vec<(&str, &str)> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [("harness", "/harness"), ("addon", "/addon"), ("shared-0", "/shared")],
            "{}",
            c.name
        );
    }
    let yaml = sgsim().arg("render").arg(&f).output().unwrap();
    assert_eq!(yaml.status.code(), Some(0));
    assert!(text(&yaml).0.contains("kind: Pod"));
    assert!(!text(&yaml).0.contains("kind: Secret"));

    // --with-secrets: the lite-engine's `<pod>-secret` (which its env reads) comes first.
    let o = sgsim()
        .args(["render", "-o", "json", "--with-secrets"])
        .arg(&f)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("a v1 List");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Pod"]);
    assert_eq!(items[0]["metadata"]["name"], format!("{name}-secret"));
    assert_eq!(items[0]["type"], "opaque");
    let keys: Vec<&String> = items[0]["data"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "DELEGATE_SERVICE_TOKEN",
            "HARNESS_LOG_SERVICE_ENDPOINT",
            "HARNESS_LOG_SERVICE_TOKEN"
        ]
    );
    let yaml = sgsim().args(["render", "--with-secrets"]).arg(&f).output().unwrap();
    let yaml = text(&yaml).0;
    let docs: Vec<&str> = yaml.split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(docs[0].contains("kind: Secret") && docs[1].contains("kind: Pod"));
}

/// A copy of the invalid-yaml scenario and its golden in a throwaway repo.
fn scratch_repo(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    let src = repo();
    for sub in ["scenarios/invalid-yaml", "golden/invalid-yaml"] {
        let from = src.join(sub);
        let to = t.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    t
}

#[test]
fn golden_change_fails_with_diff_bless_restores_ci_refuses() {
    let t = scratch_repo("golden");
    let golden = t.path().join("golden/invalid-yaml/error.txt");
    let original = std::fs::read_to_string(&golden).unwrap();
    let changed = original.replacen("YAML syntax error", "YAML syntax eror", 1);
    assert_ne!(changed, original);
    std::fs::write(&golden, &changed).unwrap();

    // Outside CI: fails with a unified diff and writes a pending file.
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .args(["test", "invalid-yaml"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}{err}");
    assert!(
        out.contains("--- expected/error.txt") && out.contains("+++ actual/error.txt"),
        "{out}"
    );
    assert!(
        out.contains("-scenarios/invalid-yaml/pipeline.yaml") && out.contains("YAML syntax eror"),
        "{out}"
    );
    assert!(
        out.contains("SGSIM_BLESS=1 cargo test --test conformance -- --exact invalid-yaml"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(golden.with_extension("txt.new")).unwrap(),
        original
    );

    // In CI: blessing is refused, nothing is written.
    std::fs::remove_file(golden.with_extension("txt.new")).unwrap();
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .env("CI", "true")
        .env("SGSIM_BLESS", "1")
        .args(["test", "invalid-yaml"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("refusing to write goldens in CI"), "{out}{err}");
    assert_eq!(std::fs::read_to_string(&golden).unwrap(), changed);
    // CI without blessing: fails, writes no pending file.
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .env("CI", "true")
        .args(["test", "invalid-yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(!golden.with_extension("txt.new").exists());

    // SGSIM_BLESS=1 restores it.
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .env("SGSIM_BLESS", "1")
        .args(["test", "invalid-yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(std::fs::read_to_string(&golden).unwrap(), original);
}

#[test]
fn accept_applies_pending_files() {
    let t = scratch_repo("accept");
    let golden = t.path().join("golden/invalid-yaml/error.txt");
    let original = std::fs::read_to_string(&golden).unwrap();
    std::fs::write(&golden, "stale\n").unwrap();
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .args(["test", "invalid-yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let o = sgsim()
        .env("SGSIM_REPO", t.path())
        .args(["accept", "invalid"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("accepted"), "{:?}", text(&o));
    assert_eq!(std::fs::read_to_string(&golden).unwrap(), original);
}

#[test]
fn test_list_names_every_scenario() {
    let o = sgsim().args(["test", "--list"]).output().unwrap();
    let (out, _) = text(&o);
    for name in ["run-single", "shared-paths", "dind-basic", "step-fails", "invalid-yaml"] {
        assert!(out.contains(&format!("{name}: test")), "{out}");
    }
}

/// Kills the child on drop (also when the test panics).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cluster_up_serves_kubectl_and_kube_rs() {
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        missing_tool("kubectl");
        return;
    }
    let t = TempDir::new("cluster-up");
    let kc = t.path().join("kubeconfig");
    let child = Child(
        sgsim()
            .args(["cluster", "up", "--api-only", "--kubeconfig"])
            .arg(&kc)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !kc.exists() {
        assert!(std::time::Instant::now() < deadline, "no kubeconfig written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let text = std::fs::read_to_string(&kc).unwrap();
        let config: kube::config::Kubeconfig = serde_yaml_compat(&text);
        let cfg = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
        let nso: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "cli-test"}})).unwrap();
        ns.create(&Default::default(), &nso).await.unwrap();
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "cli-test");
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "made-by-kube-rs"},
            "spec": {"containers": [{"name": "c", "image": "alpine"}]}
        }))
        .unwrap();
        pods.create(&Default::default(), &pod).await.unwrap();
    });
    let o = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["get", "pods", "-A"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("cli-test") && out.contains("made-by-kube-rs"), "{out}");
    drop(child);
}

/// The kubeconfig is YAML.
fn serde_yaml_compat(text: &str) -> kube::config::Kubeconfig {
    serde_saphyr::from_str(text).expect("kubeconfig is YAML")
}

/// `cluster up --merge` puts its context into the user's kubeconfig ($KUBECONFIG) as the current
/// one, so plain `kubectl get ns` reaches it, and takes it out on Ctrl-C: the user's file is as
/// before (its own cluster, user, context and current context).
#[test]
fn cluster_up_merge_adds_and_removes_its_context() {
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        missing_tool("kubectl");
        return;
    }
    let t = TempDir::new("cluster-up-merge");
    let user = t.path().join("home/.kube/config");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    let original = "apiVersion: v1\nkind: Config\nclusters:\n- name: kind-kind\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: kind-kind\n  user:\n    token: abc\ncontexts:\n- name: kind-kind\n  context:\n    cluster: kind-kind\n    user: kind-kind\ncurrent-context: kind-kind\npreferences: {}\n";
    std::fs::write(&user, original).unwrap();
    let own = t.path().join("own.kubeconfig");
    let mut child = Child(
        sgsim()
            .args([
                "cluster",
                "up",
                "--api-only",
                "--merge",
                "--name",
                "sgsim-test",
                "--kubeconfig",
            ])
            .arg(&own)
            .env("KUBECONFIG", &user)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&user).unwrap().contains("sgsim-test") {
        assert!(std::time::Instant::now() < deadline, "context never merged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let merged: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&user).unwrap()).unwrap();
    assert_eq!(merged["current-context"], "sgsim-test");
    assert_eq!(merged["contexts"].as_array().unwrap().len(), 2, "{merged}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&user).unwrap().permissions().mode() & 0o777, 0o600);
    let o = Command::new("kubectl")
        .env("KUBECONFIG", &user)
        .env("HOME", t.path().join("home"))
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("namespace/kube-system"), "{out}");
    // Ctrl-C: the context goes away, the user's own entries stay.
    let _ = Command::new("kill").args(["-INT", &child.0.id().to_string()]).status();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let after: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&user).unwrap()).unwrap();
    let before: serde_json::Value = serde_saphyr::from_str(original).unwrap();
    assert_eq!(after, before);
    assert!(!user.with_extension("lock").exists());
}

#[test]
fn step_group_flag_selects_among_several() {
    let t = TempDir::new("two-groups");
    let second = GOOD.replace(
        "              - stepGroup:\n                  name: group one",
        "              - stepGroup:\n                  name: group two\n                  identifier: group_two\n                  stepGroupInfra:\n                    type: KubernetesDirect\n                    spec:\n                      connectorRef: k8s\n                      namespace: ns2\n                  steps:\n                    - step:\n                        type: Run\n                        name: b\n                        identifier: step_b\n                        spec:\n                          connectorRef: account.harnessImage\n                          image: alpine\n                          command: echo b\n              - stepGroup:\n                  name: group one",
    );
    assert_ne!(second, GOOD);
    let f = write(t.path(), "two.yaml", second.as_bytes());
    let o = sgsim().arg("render").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("group_one") && text(&o).1.contains("group_two"),
        "{:?}",
        text(&o)
    );
    let o = sgsim()
        .args(["render", "-o", "json", "--step-group", "group_two"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(pod.metadata.namespace.as_deref(), Some("ns2"));
    assert!(pod.metadata.name.unwrap().starts_with("harnesscd-grouptwo-"));
}

/// `sgsim run --runtime fake`: no Docker; a scenario's failure strategy and exit code come out
/// as the Docker-tier goldens say; a changed fake exit code is a mismatch (exit 3) with a diff,
/// and nothing is written into the golden directory.
#[test]
fn run_on_the_fake_runtime_checks_goldens_without_writing() {
    let src = repo().join("scenarios/step-fails");
    let o = sgsim().args(["run", "--runtime", "fake"]).arg(&src).output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("match (fake runtime"), "{out}");

    // The same scenario with another exit code: the result differs from the golden.
    let t = TempDir::new("fake-run");
    let dir = t.path().join("step-fails");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("pipeline.yaml"), dir.join("pipeline.yaml")).unwrap();
    let sc = std::fs::read_to_string(src.join("scenario.yaml"))
        .unwrap()
        .replace("deploy: {exitCode: 3}", "deploy: {exitCode: 9}");
    std::fs::write(dir.join("scenario.yaml"), sc).unwrap();
    let golden = repo().join("golden/step-fails");
    let before: Vec<_> = std::fs::read_dir(&golden)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let o = sgsim()
        .args(["run", "--runtime", "fake", "--golden"])
        .arg(&golden)
        .arg(&dir)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("-  exitCode: 3") && out.contains("+  exitCode: 9"),
        "{out}"
    );
    let after: Vec<_> = std::fs::read_dir(&golden)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "the fake runtime wrote into the golden directory");
}

/// `--identifier`: a step group template runs under the identifier it has in the customer's
/// pipeline, so its `<+execution.steps.<identifier>...>` expressions resolve (checked end to end on
/// the fake runtime: without the flag the expression names no step and the step fails).
#[test]
fn identifier_runs_a_template_under_the_customers_identifier() {
    let t = TempDir::new("template-identifier");
    let tpl = "template:
  name: ansible
  identifier: ansible_tpl
  versionLabel: v1
  type: StepGroup
  spec:
    stageType: Custom
    stepGroupInfra:
      type: KubernetesDirect
      spec:
        connectorRef: k8s
        namespace: ns1
    steps:
      - step:
          type: Run
          name: clone
          identifier: clone
          spec:
            image: alpine:3.20
            command: echo <+execution.steps.ansible.steps.clone.spec.image>
";
    let f = write(t.path(), "tpl.yaml", tpl.as_bytes());
    let render = |extra: &[&str]| {
        let o = sgsim()
            .args(["render", "-o", "json"])
            .args(extra)
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_str(&text(&o).0).unwrap();
        pod.metadata.name.unwrap()
    };
    assert!(render(&[]).starts_with("harnesscd-ansibletpl-"));
    assert!(render(&["--identifier", "ansible"]).starts_with("harnesscd-ansible-"));

    let run = |extra: &[&str]| {
        sgsim()
            .args(["run", "--runtime", "fake"])
            .args(extra)
            .arg(&f)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    let o = run(&["--identifier", "ansible"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));

    // On a file that is no template the flag is ignored, with a warning that says so.
    let p = write(t.path(), "p.yaml", GOOD.as_bytes());
    let o = sgsim()
        .args(["validate", "--identifier", "x"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).1.contains("identifier `x` is ignored"), "{:?}", text(&o));
}

/// A tool this test needs is missing: under `CI=true` that fails the test (set-up installs it),
/// elsewhere the test is skipped with the reason printed.
fn missing_tool(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{what} is not installed; under CI=true a missing tool fails the test (scripts/setup.sh installs it)"
    );
    println!("skipped: {what} is not installed");
}

/// `sgsim doctor`: every check on one line; an unreachable Docker Engine is a failure (exit 4) that
/// says what to do, and the other checks still run.
#[test]
fn doctor_reports_each_check_and_what_to_do() {
    let o = sgsim().arg("doctor").output().unwrap();
    let (out, err) = text(&o);
    // The checks read the machine (free disk space may really be short): the exit code follows
    // the lines, 4 when any check failed and 0 otherwise.
    let failed = out.lines().any(|l| l.starts_with("FAIL  "));
    assert_eq!(
        o.status.code(),
        Some(if failed { 4 } else { 0 }),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(err.is_empty() || !err.contains("panicked"), "stderr:\n{err}");
    for name in ["docker", "images", "disk (repo)", "kubectl", "python client"] {
        assert!(
            out.lines().any(|l| l.contains(&format!(" {name}: "))),
            "no `{name}` check in:\n{out}"
        );
    }
    assert!(out.starts_with("ok    docker: Docker Engine "), "{out}");

    let o = sgsim()
        .arg("doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with("FAIL  docker: cannot reach the Docker Engine at unix:///nonexistent/docker.sock"),
        "{out}"
    );
    assert!(
        out.contains("→ start it (scripts/setup.sh installs docker.io and starts dockerd)"),
        "{out}"
    );
    assert!(out.contains(" disk (repo): "), "the other checks still run:\n{out}");
}
