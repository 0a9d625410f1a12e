//! Image resolution of `sgsim run`: an image the host Docker daemon holds under its own name
//! runs as itself (exported into the run's registry and pulled by the node like any image), not
//! as a stand-in; the conformance suite's trials keep their stand-ins.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Removes the test's host image on drop (also when the test panics).
struct HostImage(String);

impl Drop for HostImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sgsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .args(args)
        .output()
        .expect("sgsim runs")
}

/// The tag of a built stand-in (`busybox=sgsim/busybox:…` in target/sgsim-images.env).
fn standin_tag(name: &str) -> String {
    let env = std::fs::read_to_string(repo().join("target/sgsim-images.env")).expect("images are built");
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
        .expect("stand-in in sgsim-images.env")
}

/// Builds `image` on the host daemon: busybox's tools plus `/vendor-marker` holding `marker` (a
/// file no stand-in has).
fn build_marker_image(image: &str, marker: &str) {
    let dockerfile = format!(
        "FROM {}\nRUN echo '{marker}' > /vendor-marker\nLABEL dev.sgsim.managed=true\n",
        standin_tag("busybox")
    );
    let mut build = Command::new("docker")
        .args(["build", "-q", "-t", image, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build");
    std::io::Write::write_all(build.stdin.as_mut().unwrap(), dockerfile.as_bytes()).unwrap();
    drop(build.stdin.take());
    let built = build.wait_with_output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
}

fn scenario(dir: &Path, image: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("scenario.yaml"),
        "name: host-image\npipeline: pipeline.yaml\nseed: 3\nfixtures:\n  namespaces: [harness-delegate-ng]\n  connectors:\n    - {identifier: k8s, type: KubernetesCluster}\n    - {identifier: account.harnessImage, type: DockerRegistry, url: https://index.docker.io/v2/}\nexpect:\n  status: Success\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pipeline.yaml"),
        format!(
            "pipeline:\n  name: p\n  identifier: p\n  projectIdentifier: sgsim\n  orgIdentifier: default\n  stages:\n    - stage:\n        name: s\n        identifier: s\n        type: Custom\n        spec:\n          execution:\n            steps:\n              - stepGroup:\n                  name: g\n                  identifier: g\n                  stepGroupInfra:\n                    type: KubernetesDirect\n                    spec: {{connectorRef: k8s, namespace: harness-delegate-ng}}\n                  steps:\n                    - step:\n                        type: Run\n                        name: tool\n                        identifier: tool\n                        spec:\n                          connectorRef: account.harnessImage\n                          image: {image}\n                          shell: Sh\n                          command: cat /vendor-marker\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_vendor_image_on_the_host_daemon_runs_as_itself() {
    let o = sgsim(&["images", "build"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unique = format!("{}-{}", std::process::id(), unique_suffix());
    let image = format!("sgsim-test/vendor-tool:{unique}");
    let marker = format!("the real vendor-tool image {unique}");
    // A locally built image tagged with a vendor name: busybox's tools plus a file no stand-in has.
    build_marker_image(&image, &marker);
    let _cleanup = HostImage(image.clone());

    let dir = std::env::temp_dir().join(format!("sgsim-host-image-{unique}"));
    scenario(&dir, &image);
    let o = sgsim(&["run", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&marker), "the step did not run the host's image:\n{out}");
    assert!(
        out.contains(&format!("images: tool ran {image} (host daemon)")),
        "{out}"
    );
}

#[test]
fn without_the_image_on_the_host_the_stand_in_runs_and_says_so() {
    let unique = format!("{}-{}", std::process::id(), unique_suffix());
    let image = format!("sgsim-test/absent-tool:{unique}");
    let dir = std::env::temp_dir().join(format!("sgsim-no-host-image-{unique}"));
    scenario(&dir, &image);
    let o = sgsim(&["run", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    // The stand-in has no /vendor-marker: the step fails (the scenario expected Success: exit 3).
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains(&format!("images: tool ran {image} as stand-in bash")),
        "{out}"
    );
}

/// A suffix unique within this process's tests.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos:x}{}", N.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn a_plugin_step_whose_image_nothing_models_is_refused_not_faked() {
    let unique = format!("{}-{}", std::process::id(), unique_suffix());
    let image = format!("harness/sgsim-test-plugin:{unique}");
    let dir = std::env::temp_dir().join(format!("sgsim-plugin-{unique}"));
    scenario(&dir, "alpine:3.19");
    // Swap the Run step for a Plugin step (no command: the image's entrypoint is the work).
    let p = dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text
        .replace("type: Run", "type: Plugin")
        .replace("image: alpine:3.19", &format!("image: {image}"));
    let text = text.replace(
        "                          shell: Sh\n                          command: cat /vendor-marker\n",
        "",
    );
    std::fs::write(&p, text).unwrap();
    let o = sgsim(&["run", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains(&format!(
            "step `tool` uses plugin image `{image}`: sgsim has no stand-in for it"
        )),
        "{out}"
    );
    assert!(
        out.contains("docker pull IMAGE") && out.contains("fixtures.images"),
        "{out}"
    );
    // Nothing ran: no step result, no images line.
    assert!(!out.contains("images: tool ran"), "{out}");
}

/// Removes the test's upstream registry container on drop (also when the test panics).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &self.0]).output();
    }
}

/// `sgsim run --pull missing`: an image the host daemon lacks is pulled from its registry (here a
/// local registry container standing in for the upstream one, on a port of the host's loopback)
/// and runs as itself, served to the node through the run's registry for that host and port.
#[test]
fn a_missing_image_is_pulled_from_its_registry_and_runs_as_itself() {
    let o = sgsim(&["images", "build"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unique = format!("{}-{}", std::process::id(), unique_suffix());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let registry = format!("sgsim-test-upstream-{unique}");
    let up = Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &registry,
            "--label",
            "dev.sgsim.test=pull",
            "--network",
            "host",
        ])
        .arg("-e")
        .arg(format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"))
        .arg(standin_tag("registry"))
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let _registry = Container(registry);
    let image = format!("127.0.0.1:{port}/sgsim-test/upstream-tool:{unique}");
    let _cleanup = HostImage(image.clone());
    let marker = format!("the upstream tool image {unique}");
    build_marker_image(&image, &marker);
    let pushed = (0..50).any(|_| {
        let ok = Command::new("docker")
            .args(["push", "-q", &image])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    });
    assert!(pushed, "cannot push to the local registry at 127.0.0.1:{port}");
    let rmi = Command::new("docker").args(["rmi", &image]).output().unwrap();
    assert!(rmi.status.success(), "{}", String::from_utf8_lossy(&rmi.stderr));

    let dir = std::env::temp_dir().join(format!("sgsim-pull-{unique}"));
    scenario(&dir, &image);
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(repo())
        .env("NO_COLOR", "1")
        .env("SGSIM_PULL", "missing")
        .env_remove("SGSIM_BLESS")
        .args(["run", dir.to_str().unwrap()])
        .output()
        .expect("sgsim runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("pulled {image} in ")), "{out}");
    assert!(out.contains(&marker), "the step did not run the pulled image:\n{out}");
    assert!(out.contains(&format!("images: tool ran {image} (pulled)")), "{out}");
}

#[test]
fn standins_name_the_local_image_of_every_pod_image() {
    let o = sgsim(&["images", "standins", "scenarios/dind-basic", "scenarios/shell-python"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    let local = |image: &str| rows.iter().find(|(i, _)| *i == image).map(|(_, l)| *l);
    assert_eq!(
        local("harness/ci-addon:1.16.8"),
        Some(standin_tag("addon").as_str()),
        "{out}"
    );
    assert_eq!(
        local("harness/ci-lite-engine:1.16.8"),
        Some(standin_tag("lite-engine").as_str()),
        "{out}"
    );
    assert_eq!(local("docker:dind"), Some(standin_tag("dind").as_str()), "{out}");
    let relay = standin_tag("relay");
    assert_eq!(
        local(&relay),
        Some(relay.as_str()),
        "the relay loads under its own name:\n{out}"
    );
    // An unknown scenario is an error, the others still listed.
    let o = sgsim(&[
        "images",
        "standins",
        "scenarios/dind-basic",
        "scenarios/no-such-scenario",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("docker:dind "));
}
