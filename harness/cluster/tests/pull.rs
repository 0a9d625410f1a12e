//! `--pull`: an image is pulled from its registry into the host Docker daemon. The upstream
//! registry here is a local registry container (sgsim's `registry` image, Debian's
//! docker-registry) on the host's loopback, holding an image this test built and pushed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use sgsim_cluster::images::{self, PullEvent, is_unreachable, pull_into_host};

/// Removes the test's registry container and images on drop (also when the test panics).
struct Cleanup {
    container: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.container])
            .output();
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_pulled_from_its_registry_into_the_host_daemon() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = images::ensure_built(&repo, &|_| {}).await.expect("images build");
    let unique = format!("{}-{:x}", std::process::id(), rand_suffix());
    let port = free_port();
    let container = format!("sgsim-test-upstream-{unique}");
    let image = format!("127.0.0.1:{port}/sgsim-test/tool:{unique}");
    let mut cleanup = Cleanup {
        container: container.clone(),
        images: vec![image.clone()],
    };
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--label",
        "dev.sgsim.test=pull",
        "--network",
        "host",
        "-e",
        &format!("REGISTRY_HTTP_ADDR=127.0.0.1:{port}"),
        built.get("registry").expect("registry image"),
    ]);
    // A locally built image with a file no stand-in has, pushed upstream and removed locally.
    let marker = format!("pulled from upstream {unique}");
    let dockerfile = format!(
        "FROM {}\nRUN echo '{marker}' > /marker\nLABEL dev.sgsim.managed=true\n",
        built.get("busybox").expect("busybox image")
    );
    let mut build = Command::new("docker")
        .args(["build", "-q", "-t", &image, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    std::io::Write::write_all(build.stdin.as_mut().unwrap(), dockerfile.as_bytes()).unwrap();
    drop(build.stdin.take());
    let out = build.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The registry takes a moment to listen.
    let mut pushed = false;
    for _ in 0..50 {
        if Command::new("docker")
            .args(["push", "-q", &image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            pushed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(pushed, "cannot push to the local registry at 127.0.0.1:{port}");
    docker(&["rmi", &image]);

    let host = sgsim_cluster::docker::host_docker().await.expect("host daemon");
    let events = Mutex::new(Vec::new());
    let record = |e: PullEvent| events.lock().unwrap().push(e);
    pull_into_host(&host, &image, None, &record).await.expect("pulled");
    let events = events.into_inner().unwrap();
    assert_eq!(events.first(), Some(&PullEvent::Started { image: image.clone() }));
    assert!(
        matches!(events.last(), Some(PullEvent::Done { image: i, .. }) if *i == image),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, PullEvent::Progress { .. })),
        "no progress reported: {events:?}"
    );
    // It is the upstream image: the marker file is in it.
    let cat = docker(&[
        "run",
        "--rm",
        "--label",
        "dev.sgsim.test=pull",
        &image,
        "cat",
        "/marker",
    ]);
    assert_eq!(cat, marker);

    // A tag the registry does not have: the registry's refusal, not "unreachable".
    let absent = format!("127.0.0.1:{port}/sgsim-test/tool:absent-{unique}");
    cleanup.images.push(absent.clone());
    let err = pull_into_host(&host, &absent, None, &|_| {})
        .await
        .expect_err("no such tag");
    assert!(!is_unreachable(&err), "{err}");
    assert!(err.contains("not found") || err.contains("unknown"), "{err}");

    // Nothing listens: unreachable.
    let closed = format!("127.0.0.1:{}/sgsim-test/tool:{unique}", free_port());
    let err = pull_into_host(&host, &closed, None, &|_| {})
        .await
        .expect_err("nothing listens");
    assert!(is_unreachable(&err), "{err}");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
}
