//! The static binaries in an otherwise empty busybox image (needs Docker and
//! `scripts/build-engine.sh` output). Ignored by default: `cargo test -p sgsim-engine --test
//! static_docker -- --ignored`. `SGSIM_ENGINE_STATIC_DIR` overrides where the binaries are.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sgsim_engine::delegate::{DelegateServer, LiteEngineClient, ShellType, Status, StepCommand, StepSpec};

struct Cleanup {
    container: Option<String>,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("docker").args(["rmi", "-f", &self.image]).output();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn static_dir() -> PathBuf {
    std::env::var_os("SGSIM_ENGINE_STATIC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/engine-static/x86_64-unknown-linux-gnu/release")
        })
}

fn run_step(id: &str, port: u16, shell: ShellType, command: &str, outs: &[&str]) -> StepSpec {
    StepSpec {
        id: id.into(),
        display_name: id.into(),
        container_port: port,
        kind: StepCommand::Run {
            command: command.into(),
            shell,
            env: BTreeMap::from([("GREETING".to_string(), "hello-from-busybox".to_string())]),
            image: "busybox".into(),
            entrypoint: vec![],
            detach: false,
            output_vars: outs.iter().map(|s| s.to_string()).collect(),
            reports: vec![],
        },
        timeout: Some(Duration::from_secs(30)),
        task_id: format!("docker-{id}"),
        callback_token: String::new(),
        log_key: id.into(),
        account_id: String::new(),
    }
}

#[tokio::test]
#[ignore = "needs docker and the static build (scripts/build-engine.sh)"]
async fn static_binaries_run_in_empty_busybox_image() {
    let bins = static_dir();
    let root = tempfile::tempdir().unwrap();
    let rootfs = root.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::create_dir_all(rootfs.join("harness")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static at /bin/busybox");
    for applet in ["sh", "echo", "uname", "sleep", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    for b in ["sgsim-addon", "sgsim-lite-engine", "sgsim-node-agent"] {
        std::fs::copy(bins.join(b), rootfs.join("bin").join(b)).unwrap_or_else(|e| panic!("{b}: {e}"));
    }
    let tarball = root.path().join("rootfs.tar");
    let st = Command::new("tar")
        .args(["-C", rootfs.to_str().unwrap(), "-cf", tarball.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    let image = format!("sgsim-engine-smoke:{}", std::process::id());
    let mut cleanup = Cleanup {
        container: None,
        image: image.clone(),
    };
    docker(&[
        "import",
        "--change",
        "LABEL dev.sgsim.managed=true",
        tarball.to_str().unwrap(),
        &image,
    ]);

    let run_dir = root.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let delegate = DelegateServer::new();
    let _serve = delegate.serve_unix(&run_dir.join("delegate.sock")).await.unwrap();
    // The lite-engine reaches the delegate and the log service through the node agent's relay.
    let script = format!(
        "sgsim-node-agent --listen 127.0.0.1:8080 & \
         cd /harness && sgsim-addon --port 20002 & \
         DELEGATE_SERVICE_ENDPOINT=delegate-service:8080 DELEGATE_SERVICE_TOKEN={token} \
         DELEGATE_SERVICE_ID={id} HARNESS_ACCOUNT_ID=acct HARNESS_LOG_SERVICE_TOKEN={token} \
         HARNESS_LOG_SERVICE_ENDPOINT=http://delegate-service:8080/log-service exec sgsim-lite-engine",
        token = delegate.token(),
        id = sgsim_engine::delegate::DELEGATE_SERVICE_ID,
    );
    let container = docker(&[
        "run",
        "-d",
        "--label",
        "dev.sgsim.managed=true",
        "--add-host",
        "delegate-service:127.0.0.1",
        "-v",
        &format!("{}:/run/sgsim", run_dir.display()),
        "-e",
        "PATH=/bin",
        &image,
        "/bin/sh",
        "-c",
        &script,
    ]);
    cleanup.container = Some(container.clone());

    let agent = run_dir.join("agent.sock");
    let end = Instant::now() + Duration::from_secs(30);
    let client = loop {
        if agent.exists()
            && let Ok(c) = LiteEngineClient::connect_via_agent(agent.clone(), "127.0.0.1".parse().unwrap()).await
            && c.ping().await.is_ok()
        {
            break c;
        }
        assert!(
            Instant::now() < end,
            "lite-engine not reachable: {}",
            docker(&["logs", &container])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let st = client
        .execute_step(
            &delegate,
            run_step(
                "hello",
                20002,
                ShellType::Sh,
                "echo \"$GREETING\"\nexport KERNEL=$(uname -s)",
                &["KERNEL"],
            ),
        )
        .await
        .unwrap();
    assert_eq!(st.status, Status::Success, "{st:?}");
    assert_eq!(st.outputs.get("KERNEL").map(String::as_str), Some("Linux"));
    // the step log went addon → LogProxy → node agent relay → the delegate's log service
    assert_eq!(delegate.logs().text("hello").as_deref(), Some("hello-from-busybox\n"));

    let st = client
        .execute_step(&delegate, run_step("nobash", 20002, ShellType::Bash, "echo hi", &[]))
        .await
        .unwrap();
    assert_eq!(st.status, Status::Failure);
    assert_eq!(
        st.error.as_deref(),
        Some("exec: \"bash\": executable file not found in $PATH")
    );

    let logs = Command::new("docker").args(["logs", &container]).output().unwrap();
    let stdout = String::from_utf8_lossy(&logs.stdout);
    assert!(stdout.lines().any(|l| l == "hello-from-busybox"), "{stdout}");
    let stderr = String::from_utf8_lossy(&logs.stderr);
    assert!(!stderr.contains("NSS") && !stderr.contains("dlopen"), "{stderr}");
}
