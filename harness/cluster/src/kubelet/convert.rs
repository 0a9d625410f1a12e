//! Pod spec → Docker: names, container configs, volumes, environment.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use super::{CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, Shared};
use crate::k8s::resources::{milli, units};

/// Docker's smallest memory limit (bytes).
const DOCKER_MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Identity of a pod on the node.
#[derive(Debug, Clone)]
pub(crate) struct PodId {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl PodId {
    pub fn of(pod: &Pod) -> PodId {
        PodId {
            name: pod.metadata.name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Docker name of a container (`k8s_<container>_<pod>_<ns>_<uid>_0`, as dockershim named them;
    /// `POD` for the sandbox).
    pub fn container_name(&self, container: &str) -> String {
        format!("k8s_{container}_{}_{}_{}_0", self.name, self.namespace, self.uid)
    }

    /// Docker name of a pod volume.
    pub fn volume_name(&self, volume: &str) -> String {
        format!("sgsim_{}_{volume}", self.uid)
    }

    pub fn labels(&self, shared: &Shared, container: &str) -> HashMap<String, String> {
        let mut l = shared.resource_labels(&self.uid);
        l.insert(POD_NAME_LABEL.into(), self.name.clone());
        l.insert(POD_NAMESPACE_LABEL.into(), self.namespace.clone());
        l.insert("io.kubernetes.pod.uid".into(), self.uid.clone());
        l.insert(CONTAINER_NAME_LABEL.into(), container.into());
        l
    }
}

/// How a pod volume is realised on the node.
#[derive(Debug, Clone)]
pub(crate) enum NodeVolume {
    /// A Docker volume (emptyDir, or a populated configMap/secret copy).
    Docker { name: String },
    /// A bind of a node path (hostPath).
    Bind { path: String },
}

/// Expand `$(VAR)` references as Kubernetes does (`$$` escapes; unknown references stay).
pub(crate) fn expand(s: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '$' && i + 1 < bytes.len() {
            let n = bytes[i + 1];
            if n == '$' {
                out.push('$');
                i += 2;
                continue;
            }
            if n == '('
                && let Some(end) = bytes[i + 2..].iter().position(|&c| c == ')')
            {
                let name: String = bytes[i + 2..i + 2 + end].iter().collect();
                if let Some(v) = env.get(&name) {
                    out.push_str(v);
                } else {
                    out.push_str(&format!("$({name})"));
                }
                i += 3 + end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Build the Docker create body for a pod container.
pub(crate) fn container_body(
    shared: &Shared,
    pod: &Pod,
    id: &PodId,
    c: &Container,
    env: &[(String, String)],
    sandbox_id: &str,
    volumes: &HashMap<String, NodeVolume>,
) -> ContainerCreateBody {
    let spec = pod.spec.clone().unwrap_or_default();
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    let psc = spec.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();

    let mut hc = HostConfig {
        network_mode: Some(format!("container:{sandbox_id}")),
        ipc_mode: Some(format!("container:{sandbox_id}")),
        ..HostConfig::default()
    };
    // Volumes.
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    for vm in c.volume_mounts.iter().flatten() {
        let ro = vm.read_only.unwrap_or(false);
        match volumes.get(&vm.name) {
            // nocopy: Kubernetes never copies the image's content at the mount path into a volume
            // (Docker would, and would chmod an empty volume's root to the image directory's mode).
            Some(NodeVolume::Docker { name }) => mounts.push(Mount {
                target: Some(vm.mount_path.clone()),
                source: Some(name.clone()),
                typ: Some(MountType::VOLUME),
                read_only: Some(ro),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(true),
                    ..MountVolumeOptions::default()
                }),
                ..Mount::default()
            }),
            Some(NodeVolume::Bind { path }) => {
                binds.push(format!("{path}:{}{}", vm.mount_path, if ro { ":ro" } else { "" }));
            }
            None => {}
        }
    }
    if !mounts.is_empty() {
        hc.mounts = Some(mounts);
    }
    if !binds.is_empty() {
        hc.binds = Some(binds);
    }
    // Resources.
    const CFS_PERIOD_US: i128 = 100_000;
    const MIN_CFS_QUOTA_US: i128 = 1_000;
    if let Some(limits) = c.resources.as_ref().and_then(|r| r.limits.as_ref()) {
        // As the kubelet does: a CFS quota per 100ms period (milliCPU × 100 µs), not Docker's
        // NanoCpus, which Docker refuses above the host's CPU count (a pod's lite-engine limit is
        // the sum of its steps' and easily exceeds a small machine's cores).
        if let Some(cpu) = limits.get("cpu") {
            let quota = milli(cpu).saturating_mul(CFS_PERIOD_US) / 1000;
            if quota > 0 {
                hc.cpu_period = i64::try_from(CFS_PERIOD_US).ok();
                hc.cpu_quota = i64::try_from(quota.max(MIN_CFS_QUOTA_US)).ok();
            }
        }
        if let Some(mem) = limits.get("memory") {
            let bytes = i64::try_from(units(mem)).unwrap_or(i64::MAX);
            if bytes > 0 {
                hc.memory = Some(bytes.max(DOCKER_MIN_MEMORY));
            }
        }
    }
    // Security.
    let run_as_user = csc.run_as_user.or(psc.run_as_user);
    let run_as_group = csc.run_as_group.or(psc.run_as_group);
    let user = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    };
    let mut groups: Vec<String> = Vec::new();
    if let Some(fs) = psc.fs_group {
        groups.push(fs.to_string());
    }
    for g in psc.supplemental_groups.iter().flatten() {
        groups.push(g.to_string());
    }
    if !groups.is_empty() {
        hc.group_add = Some(groups);
    }
    if let Some(caps) = &csc.capabilities {
        if let Some(add) = &caps.add {
            hc.cap_add = Some(add.iter().map(|c| cap_name(c)).collect());
        }
        if let Some(drop) = &caps.drop {
            hc.cap_drop = Some(drop.iter().map(|c| cap_name(c)).collect());
        }
    }
    if csc.read_only_root_filesystem == Some(true) {
        hc.readonly_rootfs = Some(true);
    }
    let mut security_opt = Vec::new();
    if csc.allow_privilege_escalation == Some(false) {
        security_opt.push("no-new-privileges".to_string());
    }
    // procMount Unmasked: /proc without the runtime's masked and read-only paths.
    if csc.proc_mount.as_deref() == Some("Unmasked") {
        hc.masked_paths = Some(Vec::new());
        hc.readonly_paths = Some(Vec::new());
    }
    if !security_opt.is_empty() {
        hc.security_opt = Some(security_opt);
    }
    if csc.privileged == Some(true) {
        (shared.privileged)(&mut hc);
    }

    let command = c
        .command
        .as_ref()
        .map(|v| v.iter().map(|s| expand(s, &env_map)).collect());
    let args: Option<Vec<String>> = c.args.as_ref().map(|v| v.iter().map(|s| expand(s, &env_map)).collect());
    let (entrypoint, cmd) = match (command, args) {
        (Some(cmd), Some(args)) => (Some(cmd), Some(args)),
        // An explicit entrypoint without args drops the image's CMD (Docker does not merge it).
        (Some(cmd), None) => (Some(cmd), None),
        (None, Some(args)) => (None, Some(args)),
        (None, None) => (None, None),
    };

    ContainerCreateBody {
        image: Some(shared.images.local_ref(&c.image.clone().unwrap_or_default())),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: c.working_dir.clone(),
        user,
        tty: c.tty,
        open_stdin: c.stdin,
        stdin_once: c.stdin_once,
        labels: Some(id.labels(shared, &c.name)),
        host_config: Some(hc),
        ..ContainerCreateBody::default()
    }
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    up.strip_prefix("CAP_").map(str::to_string).unwrap_or(up)
}

/// The Docker create body of the sandbox container.
pub(crate) fn sandbox_body(shared: &Shared, pod: &Pod, id: &PodId) -> ContainerCreateBody {
    let spec = pod.spec.clone().unwrap_or_default();
    let sandbox = shared.images.sandbox();
    // `delegate-service` is the node agent's relay to sgsim's delegate, unless the pod names the
    // host itself (a run driven through `--backend kube` points it at its in-cluster relay).
    let own_delegate = spec
        .host_aliases
        .iter()
        .flatten()
        .any(|a| a.hostnames.iter().flatten().any(|h| h == "delegate-service"));
    let mut extra_hosts = Vec::new();
    if !own_delegate {
        extra_hosts.push(format!("delegate-service:{}", shared.gateway_ip));
    }
    for alias in spec.host_aliases.iter().flatten() {
        let ip = &alias.ip;
        for h in alias.hostnames.iter().flatten() {
            extra_hosts.push(format!("{h}:{ip}"));
        }
    }
    let hostname = spec.hostname.clone().unwrap_or_else(|| id.name.clone());
    let hostname: String = hostname.chars().take(63).collect();
    // dnsConfig: nameservers, searches and options go into the sandbox's /etc/resolv.conf, which
    // every container of the pod shares.
    let dns = spec.dns_config.clone().unwrap_or_default();
    let dns_options: Vec<String> = dns
        .options
        .iter()
        .flatten()
        .filter_map(|o| {
            let name = o.name.clone()?;
            Some(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            })
        })
        .collect();
    let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    ContainerCreateBody {
        image: Some(sandbox.image),
        entrypoint: if sandbox.command.is_empty() {
            None
        } else {
            Some(sandbox.command)
        },
        cmd: None,
        hostname: Some(hostname),
        labels: Some(id.labels(shared, "POD")),
        host_config: Some(HostConfig {
            network_mode: Some("bridge".into()),
            ipc_mode: Some("shareable".into()),
            extra_hosts: Some(extra_hosts),
            dns: nonempty(dns.nameservers.clone().unwrap_or_default()),
            dns_search: nonempty(dns.searches.clone().unwrap_or_default()),
            dns_options: nonempty(dns_options),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// The Docker volume options for an emptyDir (`medium: Memory` → tmpfs, shared by all containers).
pub(crate) fn empty_dir_opts(v: &Volume) -> Option<HashMap<String, String>> {
    let ed = v.empty_dir.as_ref()?;
    if ed.medium.as_deref() == Some("Memory") {
        let mut o = "mode=1777".to_string();
        if let Some(size) = &ed.size_limit {
            o.push_str(&format!(",size={}", units(size)));
        }
        Some(HashMap::from([
            ("type".to_string(), "tmpfs".to_string()),
            ("device".to_string(), "tmpfs".to_string()),
            ("o".to_string(), o),
        ]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::collections::HashMap;

    #[test]
    fn expansion() {
        let env = HashMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$", &env), "$");
    }
}
