//! Integration tests of nodes, images, the compat proxy and the reaper against the real Docker
//! daemon. They build the images themselves (`ensure_built`; the first run takes minutes).
//!
//! This test owns `main` (harness = false) so that `docker::prepare_process()` runs before any
//! thread exists. Every test uses its own run id, names and labels, and removes what it created
//! even when it fails.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StartContainerOptions,
};
use futures::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};
use sgsim_cluster::context::{self, RunContext};
use sgsim_cluster::docker;
use sgsim_cluster::images::{self, BuildEvent, BuiltImages, ImageCatalog};
use sgsim_cluster::node::{LoadOutcome, Node, NodeSpec};
use sgsim_cluster::reaper;
use testcontainers::core::ExecCommand;
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> ExitCode {
    let process = docker::prepare_process();
    eprintln!(
        "docker: real daemon {} (API {:?}), compat proxy {:?}",
        process.real.to_docker_host(),
        process.api_version,
        process.proxy_socket
    );
    let args = Arguments::from_args();
    let trials = vec![
        trial("compat_proxy_serves_testcontainers", compat_proxy_serves_testcontainers),
        trial("reap_stale_removes_dead_keeps_live", reap_stale_removes_dead_keeps_live),
        trial("node_runs_nested_dind", node_runs_nested_dind),
        trial("node_agent_tunnels_both_ways", node_agent_tunnels_both_ways),
        trial("node_drop_cleans_up", node_drop_cleans_up),
        trial("node_panic_cleans_up", node_panic_cleans_up),
        trial("registry_pulls_are_real", registry_pulls_are_real),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn trial<F, Fut>(name: &'static str, f: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>>,
{
    Trial::test(name, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(f()).map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn built() -> Result<BuiltImages> {
    let progress = |e: BuildEvent| match e {
        BuildEvent::Progress(line) => eprintln!("  {line}"),
        other => eprintln!("images: {other:?}"),
    };
    Ok(images::ensure_built(&repo_root(), &progress).await?)
}

/// Everything the host daemon holds of one run.
async fn run_leftovers(host: &Docker, run_id: &str) -> Result<(Vec<String>, Vec<String>)> {
    let filters = HashMap::from([("label".to_string(), vec![format!("dev.sgsim.run={run_id}")])]);
    let containers = host
        .list_containers(Some(
            ListContainersOptionsBuilder::new().all(true).filters(&filters).build(),
        ))
        .await?
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect();
    let volumes = host
        .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
        .await?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok((containers, volumes))
}

/// testcontainers (API v1.53) works against this daemon: create, logs, exec (an HTTP upgrade).
async fn compat_proxy_serves_testcontainers() -> Result<()> {
    let built = built().await?;
    let (repo, tag) = images::split_reference(built.require("busybox")?);
    let ctx = RunContext::new()?;
    let container = GenericImage::new(repo, tag)
        .with_wait_for(testcontainers::core::WaitFor::message_on_stdout("sgsim-proxy-test up"))
        .with_cmd(["sh", "-c", "echo sgsim-proxy-test up; exec sleep 300"])
        .with_labels(ctx.labels())
        .with_container_name(ctx.resource_name("proxy"))
        .start()
        .await
        .context("testcontainers could not start busybox")?;
    let mut exec = container
        .exec(ExecCommand::new(["sh", "-c", "echo exec-$((40 + 2))"]))
        .await?;
    let out = String::from_utf8(exec.stdout_to_vec().await?)?;
    ensure!(out.trim() == "exec-42", "exec output {out:?}");
    container.rm().await?;
    let host = docker::host_docker().await?;
    let (c, v) = run_leftovers(&host, &ctx.run_id).await?;
    ensure!(c.is_empty() && v.is_empty(), "left behind: {c:?} {v:?}");
    Ok(())
}

/// A pid that certainly belonged to a process that has exited.
fn dead_pid() -> Result<u32> {
    let mut child = std::process::Command::new("true").spawn()?;
    let pid = child.id();
    child.wait()?;
    ensure!(!reaper::pid_alive(pid), "pid {pid} still alive");
    Ok(pid)
}

async fn reap_stale_removes_dead_keeps_live() -> Result<()> {
    let built = built().await?;
    let host = docker::host_docker().await?;
    let run_id = format!("sgreap{}", context::random_suffix(6));
    let dead = dead_pid()?;
    let labels = |pid: u32| {
        HashMap::from([
            ("dev.sgsim.managed".to_string(), "true".to_string()),
            ("dev.sgsim.run".to_string(), run_id.clone()),
            ("dev.sgsim.pid".to_string(), pid.to_string()),
        ])
    };
    let mut names = Vec::new();
    for (suffix, pid) in [("dead", dead), ("live", std::process::id())] {
        let name = format!("sgsim-{run_id}-{suffix}");
        host.create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(built.require("busybox")?.to_string()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                labels: Some(labels(pid)),
                ..Default::default()
            },
        )
        .await?;
        host.create_volume(VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(labels(pid)),
            ..Default::default()
        })
        .await?;
        names.push(name);
    }
    let result = async {
        let reaped = reaper::reap_stale(&host).await?;
        let dead_gone = host.inspect_container(&names[0], None).await.is_err();
        let live_kept = host.inspect_container(&names[1], None).await.is_ok();
        let dead_vol_gone = host.inspect_volume(&names[0]).await.is_err();
        let live_vol_kept = host.inspect_volume(&names[1]).await.is_ok();
        ensure!(dead_gone && dead_vol_gone, "dead-pid resources not reaped: {reaped:?}");
        ensure!(live_kept && live_vol_kept, "live-pid resources were reaped: {reaped:?}");
        ensure!(reaped.volumes.contains(&names[0]));
        Ok(())
    }
    .await;
    for name in &names {
        let _ = host
            .remove_container(name, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
            .await;
        let _ = host
            .remove_volume(name, Some(RemoveVolumeOptionsBuilder::new().force(true).build()))
            .await;
    }
    result
}

/// Waits until the container's log contains `needle`; returns the log.
async fn wait_for_log(docker: &Docker, container: &str, needle: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut logs = docker.logs(
            container,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        );
        let mut text = String::new();
        while let Some(chunk) = logs.next().await {
            text.push_str(&chunk?.to_string());
        }
        if text.contains(needle) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{needle:?} not in the log of {container} after {timeout:?}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a command in a container, returns (exit code, stdout+stderr).
async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> Result<(i64, String)> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let mut text = String::new();
    match docker.start_exec(&created.id, None).await? {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(chunk) = output.next().await {
                text.push_str(&chunk?.to_string());
            }
        }
        StartExecResults::Detached => bail!("exec detached"),
    }
    let code = docker.inspect_exec(&created.id).await?.exit_code.unwrap_or(-1);
    Ok((code, text))
}

/// Runs `body` with a started node, then shuts the node down and checks the host holds nothing
/// of the run. The node is RAII, so a panic in `body` still removes it.
async fn with_node<F, Fut>(index: u8, body: F) -> Result<()>
where
    F: FnOnce(Node, BuiltImages, Docker) -> Fut,
    Fut: std::future::Future<Output = (Node, Result<()>)>,
{
    let built = built().await?;
    let host = docker::host_docker().await?;
    let ctx = RunContext::new()?;
    let t = Instant::now();
    let node = Node::start(
        &ctx,
        NodeSpec::new(format!("node-{}", context::random_suffix(5)), index),
        &built,
    )
    .await?;
    eprintln!(
        "node {} started in {:?} ({:?})",
        node.name(),
        t.elapsed(),
        node.privilege_mode()
    );
    let container_name = node.container_name().to_string();
    let (node, result) = body(node, built, host.clone()).await;
    node.shutdown().await;
    result?;
    assert_nothing_left(&host, &ctx.run_id, &container_name).await
}

/// The host daemon holds no container or volume of the run, and no cgroup of the node is left.
async fn assert_nothing_left(host: &Docker, run_id: &str, node_container: &str) -> Result<()> {
    let (containers, volumes) = run_leftovers(host, run_id).await?;
    ensure!(containers.is_empty(), "containers left on the host: {containers:?}");
    ensure!(volumes.is_empty(), "volumes left on the host: {volumes:?}");
    let cgroup = PathBuf::from("/sys/fs/cgroup/memory")
        .join(sgsim_cluster::cgroups::CGROUP_ROOT)
        .join(node_container);
    ensure!(!cgroup.exists(), "{} left behind", cgroup.display());
    Ok(())
}

/// Dropping a node without shutdown() removes its container, volume and cgroups too.
async fn node_drop_cleans_up() -> Result<()> {
    let built = built().await?;
    let host = docker::host_docker().await?;
    let ctx = RunContext::new()?;
    let node = Node::start(
        &ctx,
        NodeSpec::new(format!("node-{}", context::random_suffix(5)), 203),
        &built,
    )
    .await?;
    let container_name = node.container_name().to_string();
    let catalog = ImageCatalog::builtin(&built);
    let setup = async {
        node.ensure_image(&host, &catalog, "alpine:3.19").await?;
        let nd = node.docker();
        nd.create_container(
            Some(CreateContainerOptionsBuilder::new().name("sleeper").build()),
            ContainerCreateBody {
                image: Some("alpine:3.19".into()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                ..Default::default()
            },
        )
        .await?;
        nd.start_container("sleeper", None::<StartContainerOptions>).await?;
        anyhow::Ok(())
    }
    .await;
    let memory_cgroups = PathBuf::from("/sys/fs/cgroup/memory/sgsim").join(&container_name);
    let had_cgroup = memory_cgroups.is_dir();
    drop(node);
    setup?;
    ensure!(
        had_cgroup,
        "the node's containers were not under {}",
        memory_cgroups.display()
    );
    assert_nothing_left(&host, &ctx.run_id, &container_name).await
}

async fn node_runs_nested_dind() -> Result<()> {
    with_node(201, |node, built, host| async move {
        let r = nested_dind(&node, &built, &host).await;
        (node, r)
    })
    .await
}

async fn nested_dind(node: &Node, built: &BuiltImages, host: &Docker) -> Result<()> {
    let catalog = ImageCatalog::builtin(built);
    for vendor in ["docker:dind", "busybox"] {
        let outcome = node.ensure_image(host, &catalog, vendor).await?;
        eprintln!("{vendor}: {outcome:?}");
        ensure!(
            matches!(outcome, LoadOutcome::Loaded { .. }),
            "{vendor} was not loaded: {outcome:?}"
        );
        ensure!(node.ensure_image(host, &catalog, vendor).await? == LoadOutcome::AlreadyPresent);
    }
    let nd = node.docker();
    let mode = docker::detect_privilege_mode(nd, "busybox").await;
    eprintln!("privilege mode inside the node: {mode:?}");

    let volume = "dind-var-lib-docker";
    nd.create_volume(VolumeCreateRequest {
        name: Some(volume.into()),
        ..Default::default()
    })
    .await?;
    let mut hc = HostConfig {
        binds: Some(vec![format!("{volume}:/var/lib/docker")]),
        ..Default::default()
    };
    docker::apply_privileged(&mut hc, mode);
    nd.create_container(
        Some(CreateContainerOptionsBuilder::new().name("dind").build()),
        ContainerCreateBody {
            image: Some("docker:dind".into()),
            host_config: Some(hc),
            ..Default::default()
        },
    )
    .await?;
    nd.start_container("dind", None::<StartContainerOptions>).await?;
    let t = Instant::now();
    wait_for_log(nd, "dind", "sgsim-dind: ready", Duration::from_secs(90)).await?;
    eprintln!("dind ready in {:?}", t.elapsed());
    let (code, out) = exec(nd, "dind", &["docker", "run", "--rm", "alpine", "echo", "hello-nested"]).await?;
    ensure!(
        code == 0 && out.lines().any(|l| l.trim() == "hello-nested"),
        "exit {code}, output:\n{out}"
    );
    let (_, resolv) = exec(
        nd,
        "dind",
        &["docker", "run", "--rm", "alpine", "cat", "/etc/resolv.conf"],
    )
    .await?;
    let servers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    ensure!(
        servers == ["nameserver 127.0.0.1"],
        "nested container resolv.conf:\n{resolv}"
    );
    Ok(())
}

async fn node_agent_tunnels_both_ways() -> Result<()> {
    with_node(202, |node, built, host| async move {
        let r = tunnels(&node, &built, &host).await;
        (node, r)
    })
    .await
}

async fn tunnels(node: &Node, built: &BuiltImages, host: &Docker) -> Result<()> {
    let catalog = ImageCatalog::builtin(built);
    node.ensure_image(host, &catalog, "busybox:latest").await?;
    let nd = node.docker();

    // Host -> pod: an HTTP server in a container on the node's bridge, reached through agent.sock.
    nd.create_container(
        Some(CreateContainerOptionsBuilder::new().name("web").build()),
        ContainerCreateBody {
            image: Some("busybox:latest".into()),
            cmd: Some(
                [
                    "sh",
                    "-c",
                    "mkdir -p /www && echo hello-through-agent > /www/index.html && exec httpd -f -p 7777 -h /www",
                ]
                .map(String::from)
                .to_vec(),
            ),
            ..Default::default()
        },
    )
    .await?;
    nd.start_container("web", None::<StartContainerOptions>).await?;
    let inspect = nd.inspect_container("web", None).await?;
    let ip: IpAddr = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone()))
        .ok_or_else(|| anyhow!("no bridge IP for the web container"))?
        .parse()?;
    ensure!(
        matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == node.gateway_ip().octets()[..3]),
        "pod ip {ip} not on the node bridge {}",
        node.gateway_ip()
    );
    // The node has no network beyond loopback and its pod bridge: no route off the node.
    let node_inspect = host.inspect_container(node.container_id(), None).await?;
    let mode = node_inspect
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_default();
    ensure!(mode == "none", "node network mode {mode:?}");
    let (_, routes) = exec(host, node.container_id(), &["ip", "route", "show", "default"]).await?;
    ensure!(routes.trim().is_empty(), "the node has a default route: {routes}");
    // Pods get a local resolver only (no DNS traffic leaves the machine).
    let (_, resolv) = exec(nd, "web", &["cat", "/etc/resolv.conf"]).await?;
    let servers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    ensure!(servers == ["nameserver 127.0.0.1"], "pod resolv.conf:\n{resolv}");

    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match node.connect(ip, 7777).await {
            Ok(mut s) => {
                s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").await?;
                s.read_to_string(&mut body).await?;
                if body.contains("hello-through-agent") {
                    break;
                }
            }
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => {}
        }
        ensure!(Instant::now() < deadline, "no answer through the agent: {body:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Pod -> host: TCP 8080 on the node gateway reaches the host's delegate.sock.
    let listener = tokio::net::UnixListener::bind(node.delegate_socket())?;
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await?;
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await?;
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello-delegate\n")
            .await?;
        conn.shutdown().await?;
        anyhow::Ok(request)
    });
    let gw: Ipv4Addr = node.gateway_ip();
    nd.create_container(
        Some(CreateContainerOptionsBuilder::new().name("caller").build()),
        ContainerCreateBody {
            image: Some("busybox:latest".into()),
            cmd: Some(vec![
                "wget".into(),
                "-q".into(),
                "-O".into(),
                "-".into(),
                format!("http://{gw}:8080/status"),
            ]),
            ..Default::default()
        },
    )
    .await?;
    nd.start_container("caller", None::<StartContainerOptions>).await?;
    let log = wait_for_log(nd, "caller", "hello-delegate", Duration::from_secs(20)).await?;
    let request = tokio::time::timeout(Duration::from_secs(5), server).await???;
    ensure!(request.starts_with("GET /status"), "delegate saw {request:?}");
    ensure!(log.contains("hello-delegate"));
    Ok(())
}

/// A panic while a node is up still removes the node's container, volume and cgroups.
async fn node_panic_cleans_up() -> Result<()> {
    let built = built().await?;
    let host = docker::host_docker().await?;
    let ctx = RunContext::new()?;
    let run_id = ctx.run_id.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let spec = NodeSpec::new(format!("node-{}", context::random_suffix(5)), 204);
        let node = Node::start(&ctx, spec, &built).await.expect("the node starts");
        let _ = tx.send(node.container_name().to_string());
        panic!(
            "deliberate panic while node {} is up (expected by node_panic_cleans_up)",
            node.name()
        );
    });
    let err = task.await.expect_err("the task panics");
    ensure!(err.is_panic(), "task ended with {err}");
    let container_name = rx.await.context("the node did not start")?;
    assert_nothing_left(&host, &run_id, &container_name).await
}

/// The messages of the kubelet's events about `pod` (in creation order).
async fn pod_event_messages(client: &kube::Client, pod: &str) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Event;
    let api = kube::Api::<Event>::namespaced(client.clone(), "default");
    let mut evs = api.list(&kube::api::ListParams::default()).await?.items;
    evs.retain(|e| e.involved_object.name.as_deref() == Some(pod));
    evs.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(evs.into_iter().filter_map(|e| e.message).collect())
}

/// Creates a one-container pod with `image` (IfNotPresent) and waits until the kubelet reports
/// the image pulled or present; returns the pod's event messages.
async fn pull_in_pod(client: &kube::Client, pod: &str, image: &str) -> Result<Vec<String>> {
    use k8s_openapi::api::core::v1::Pod;
    let api = kube::Api::<Pod>::namespaced(client.clone(), "default");
    let obj: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": "default"},
        "spec": {"nodeName": "node-1", "restartPolicy": "Never", "containers": [
            {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "sleep 30"]}
        ]}
    }))?;
    api.create(&kube::api::PostParams::default(), &obj).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let msgs = pod_event_messages(client, pod).await?;
        if msgs
            .iter()
            .any(|m| m.starts_with("Successfully pulled") || m.contains("already present") || m.starts_with("Failed"))
        {
            let _ = api
                .delete(pod, &kube::api::DeleteParams::default().grace_period(0))
                .await;
            return Ok(msgs);
        }
        ensure!(Instant::now() < deadline, "no pull event for {pod}: {msgs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pull really goes through the run's registry (its own access log shows the manifest requests),
/// and `already present on machine` shows only when the (logical) node kept the image: a second
/// pod on the same node finds it, a fresh trial's node pulls again.
async fn registry_pulls_are_real() -> Result<()> {
    use sgsim_cluster::pool::{NodePool, PoolOptions};
    let pool = NodePool::start(
        &PoolOptions {
            repo_root: repo_root(),
            nodes: 1,
        },
        &|_| {},
    )
    .await?;
    let result = async {
        let hub = pool.registries().first().cloned().context("no registry hub")?;
        let fixtures = sgsim_core::scenario::Fixtures::default();
        let image = "alpine:3.18";
        let cluster = pool.cluster_for(&fixtures, &|_| {}).await?;
        let t = Instant::now();
        let first = pull_in_pod(&cluster.client(), "first", image).await?;
        eprintln!("first pull (seed + pull): {:?}: {first:?}", t.elapsed());
        ensure!(
            first.iter().any(|m| m == &format!("Pulling image \"{image}\"")),
            "first pod: {first:?}"
        );
        ensure!(
            first
                .iter()
                .any(|m| m.starts_with(&format!("Successfully pulled image \"{image}\" in "))),
            "first pod: {first:?}"
        );
        let log = hub.registry_log("docker.io").await;
        ensure!(
            log.contains("\"HEAD /v2/library/alpine/manifests/3.18 HTTP/1.1\" 200")
                && log.contains("\"GET /v2/library/alpine/manifests/sha256:"),
            "the registry's access log does not show the pull of {image}:\n{log}"
        );
        let second = pull_in_pod(&cluster.client(), "second", image).await?;
        ensure!(
            second
                .iter()
                .any(|m| m == &format!("Container image \"{image}\" already present on machine")),
            "second pod on the same node: {second:?}"
        );
        cluster.shutdown().await;
        let fresh = pool.cluster_for(&fixtures, &|_| {}).await?;
        let third = pull_in_pod(&fresh.client(), "third", image).await?;
        ensure!(
            !third.iter().any(|m| m.contains("already present")),
            "fresh node: {third:?}"
        );
        ensure!(
            third.iter().any(|m| m == &format!("Pulling image \"{image}\"")),
            "fresh node: {third:?}"
        );
        let heads = hub
            .registry_log("docker.io")
            .await
            .matches("\"HEAD /v2/library/alpine/manifests/3.18 HTTP/1.1\" 200")
            .count();
        ensure!(
            heads == 2,
            "expected two pulls of {image} in the registry's access log, found {heads}"
        );
        fresh.shutdown().await;
        Ok(())
    }
    .await;
    pool.shutdown().await;
    result
}
