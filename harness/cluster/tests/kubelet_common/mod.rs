//! Shared by the Docker-backed kubelet tests (`tests/kubelet.rs`, `tests/kubelet_images_config.rs`):
//! a busybox image imported from the host's static busybox (content-addressed tag, labelled
//! `dev.sgsim.managed=true`, kept for reuse like the other content-hashed sgsim images), and a
//! cluster (embedded API server, scheduler, one kubelet on the host Docker daemon as its node).
//! Every container/volume a test creates carries a unique `dev.sgsim.run` label; a guard removes
//! them even when the test panics, and [`Cluster::finish`] asserts that nothing is left.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::Docker;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use sgsim_cluster::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use sgsim_cluster::kubelet::{KubeletConfig, KubeletHandle, LocalImages, SandboxSpec, start_kubelet};
use sgsim_cluster::scheduler::{SchedulerHandle, spawn_scheduler};

const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "nc", "grep", "seq", "ls", "mkdir", "test", "true", "false", "id", "wget", "env",
    "mount",
];

/// Import (once per process) a busybox image built from the host's static busybox.
pub fn busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let bb = std::fs::read("/bin/busybox").expect("static busybox at /bin/busybox");
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bb.hash(&mut h);
            BUSYBOX_APPLETS.hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let tag = format!("sgsim-test/busybox:{}", &hash[..12]);
        let present = Command::new("docker")
            .args(["image", "inspect", &tag])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if present {
            return tag;
        }
        let dir = std::env::temp_dir().join(format!("sgsim-bb-{}-{}", std::process::id(), &hash[..8]));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for a in BUSYBOX_APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        let tar = dir.join("rootfs.tar");
        let st = Command::new("tar")
            .args(["-C", root.to_str().unwrap(), "-cf", tar.to_str().unwrap(), "."])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("docker")
            .args([
                "import",
                "--change",
                "LABEL dev.sgsim.managed=true",
                "--change",
                "ENV PATH=/bin",
                tar.to_str().unwrap(),
                &tag,
            ])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        tag
    })
}

pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let s: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect();
    format!("{prefix}{s}")
}

/// Removes everything labelled with the test's run id, also when the test panics.
pub struct Guard {
    pub run: String,
}

impl Guard {
    pub fn leftovers(&self) -> (Vec<String>, Vec<String>) {
        let filter = format!("label=dev.sgsim.run={}", self.run);
        let out = |args: &[&str]| -> Vec<String> {
            let o = Command::new("docker").args(args).output().unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        };
        (
            out(&["ps", "-aq", "--filter", &filter]),
            out(&["volume", "ls", "-q", "--filter", &filter]),
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (containers, volumes) = self.leftovers();
        if !containers.is_empty() {
            let mut args = vec!["rm".to_string(), "-fv".to_string()];
            args.extend(containers);
            let _ = Command::new("docker").args(&args).output();
        }
        if !volumes.is_empty() {
            let mut args = vec!["volume".to_string(), "rm".to_string(), "-f".to_string()];
            args.extend(volumes);
            let _ = Command::new("docker").args(&args).output();
        }
    }
}

pub struct Cluster {
    pub api: ApiServerHandle,
    pub client: kube::Client,
    pub _scheduler: SchedulerHandle,
    pub kubelet: Option<KubeletHandle>,
    #[allow(
        dead_code,
        reason = "read by tests/kubelet.rs only; each test binary compiles this module"
    )]
    pub node: String,
    pub guard: Guard,
}

pub async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

pub async fn cluster() -> Cluster {
    cluster_with(Arc::new(sgsim_cluster::kubelet::privileged_flag)).await
}

pub async fn cluster_with(privileged: Arc<dyn Fn(&mut bollard::models::HostConfig) + Send + Sync>) -> Cluster {
    let image = busybox_image().to_string();
    let run = unique("sgt");
    let guard = Guard { run: run.clone() };
    let api = ApiServer::start(ApiServerOptions {
        service_account_admission: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = api.client().await.unwrap();
    let scheduler = spawn_scheduler(client.clone());
    let node = unique("node-");
    let docker = docker().await;
    let images = Arc::new(LocalImages {
        docker: docker.clone(),
        sandbox: SandboxSpec {
            image: image.clone(),
            command: vec!["sleep".into(), "2147483647".into()],
        },
        aliases: HashMap::new(),
    });
    let kubelet = start_kubelet(
        client.clone(),
        KubeletConfig {
            node_name: node.clone(),
            docker,
            gateway_ip: Ipv4Addr::new(172, 17, 0, 1),
            images,
            privileged,
            labels: HashMap::from([
                ("dev.sgsim.managed".to_string(), "true".to_string()),
                ("dev.sgsim.run".to_string(), run.clone()),
            ]),
            node_labels: BTreeMap::new(),
            taints: Vec::new(),
            capacity: BTreeMap::from([
                (
                    "cpu".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
                ),
                (
                    "memory".to_string(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("4Gi".into()),
                ),
            ]),
        },
    )
    .await
    .unwrap();
    api.register_node_logs(&node, kubelet.log_source());
    Cluster {
        api,
        client,
        _scheduler: scheduler,
        kubelet: Some(kubelet),
        node,
        guard,
    }
}

impl Cluster {
    pub async fn finish(mut self) {
        if let Some(k) = self.kubelet.take() {
            k.shutdown().await.unwrap();
        }
        let (c, v) = self.guard.leftovers();
        assert!(c.is_empty(), "containers left: {c:?}");
        assert!(v.is_empty(), "volumes left: {v:?}");
        self.api.shutdown().await;
    }

    pub async fn create(&self, pod: serde_json::Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    pub async fn wait_phase(&self, name: &str, phases: &[&str], timeout: Duration) -> Pod {
        let api = Api::<Pod>::namespaced(self.client.clone(), "default");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let p = api.get(name).await.unwrap();
            let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            if phases.contains(&phase.as_str()) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {name} still {phase}: {:#?}",
                p.status
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn event_messages(&self, pod: &str) -> Vec<(String, String, String)> {
        let api = Api::<Event>::namespaced(self.client.clone(), "default");
        let mut evs: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .collect();
        evs.sort_by_key(|e| (e.event_time.as_ref().map(|t| t.0), e.metadata.name.clone()));
        evs.into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect()
    }
}
