//! Rendering the pod: labels, volumes and mounts, the setup-addon init container, one container
//! per step (image, resources, security context), the lite-engine container, scheduling fields
//! and the podSpecOverlay.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostAlias,
    HostPathVolumeSource, LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SecretVolumeSource, SecurityContext, Toleration as K8sToleration, Volume as K8sVolume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    ADDON_DIR, ADDON_IMAGE, DEFAULT_STEP_CPU, DEFAULT_STEP_MEMORY, DELEGATE_SERVICE_ENDPOINT, DELEGATE_SERVICE_ID,
    LITE_ENGINE_IMAGE, SETUP_ADDON_SCRIPT, WORKSPACE, container_name, container_steps, harness_image_prefix,
    image_pull_secret_names, is_valid_label_value, merge_overlay, run_ids, step_privileged,
};
use crate::model::{Step, VolumeSource};
use crate::quantity;
use crate::scenario::Scenario;
use crate::step_types;

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

fn res(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(req_cpu)),
            ("memory".into(), q(req_mem)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q(lim_cpu)),
            ("memory".into(), q(lim_mem)),
        ])),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// Render the pod the product would create for the scenario's step group (deterministic given
/// the scenario's seed).
pub fn render_pod(s: &Scenario) -> Pod {
    let g = &s.step_group;
    let infra = &g.infra;
    let ids = run_ids(s);
    let prefix = harness_image_prefix(s);

    // Labels.
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("accountID", &ids.account_id),
        ("orgID", &ids.org_id),
        ("projectID", &ids.project_id),
        ("pipelineID", &ids.pipeline_id),
        ("pipelineExecutionID", &ids.execution_id),
        ("stepID", &ids.step_id),
    ] {
        if is_valid_label_value(v) {
            labels.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in &infra.labels {
        labels.insert(k.clone(), v.clone());
    }

    // Volumes and mounts.
    let mut volumes = vec![
        K8sVolume {
            name: "harness".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        K8sVolume {
            name: "addon".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "harness".into(),
            mount_path: WORKSPACE.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "addon".into(),
            mount_path: ADDON_DIR.into(),
            ..Default::default()
        },
    ];
    for (i, p) in g.shared_paths.iter().enumerate() {
        let name = format!("shared-{i}");
        volumes.push(K8sVolume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: p.clone(),
            ..Default::default()
        });
    }
    for (i, v) in infra.volumes.iter().enumerate() {
        let name = format!("volume-{i}");
        let mut vol = K8sVolume {
            name: name.clone(),
            ..Default::default()
        };
        let mut read_only = None;
        match &v.source {
            VolumeSource::EmptyDir { medium, size } => {
                vol.empty_dir = Some(EmptyDirVolumeSource {
                    medium: medium.clone(),
                    size_limit: size.as_deref().map(q),
                    ..Default::default()
                });
            }
            VolumeSource::HostPath { path, path_type } => {
                vol.host_path = Some(HostPathVolumeSource {
                    path: path.clone(),
                    type_: path_type.clone(),
                });
            }
            VolumeSource::PersistentVolumeClaim {
                claim_name,
                read_only: ro,
            } => {
                vol.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name.clone(),
                    read_only: *ro,
                });
                read_only = *ro;
            }
            VolumeSource::ConfigMap { name: cm, optional } => {
                vol.config_map = Some(ConfigMapVolumeSource {
                    name: cm.clone(),
                    optional: *optional,
                    ..Default::default()
                });
            }
            VolumeSource::Secret { name: sec, optional } => {
                vol.secret = Some(SecretVolumeSource {
                    secret_name: Some(sec.clone()),
                    optional: *optional,
                    ..Default::default()
                });
            }
        }
        volumes.push(vol);
        mounts.push(VolumeMount {
            name,
            mount_path: v.mount_path.clone(),
            read_only,
            ..Default::default()
        });
    }

    // The stepGroupInfra container security context. The product gives it to setup-addon and the
    // lite-engine as it is (K8sPodInitUtils.getCtrSecurityContext); step containers add their
    // own privileged default and runAsUser below.
    let csc = infra.container_security_context.clone().unwrap_or_default();
    let caps = if csc.capabilities_add.is_empty() && csc.capabilities_drop.is_empty() {
        None
    } else {
        Some(Capabilities {
            add: (!csc.capabilities_add.is_empty()).then(|| csc.capabilities_add.clone()),
            drop: (!csc.capabilities_drop.is_empty()).then(|| csc.capabilities_drop.clone()),
        })
    };
    let infra_sc = SecurityContext {
        privileged: csc.privileged,
        allow_privilege_escalation: csc.allow_privilege_escalation,
        capabilities: caps.clone(),
        run_as_non_root: csc.run_as_non_root,
        read_only_root_filesystem: csc.read_only_root_filesystem,
        run_as_user: csc.run_as_user,
        run_as_group: csc.run_as_group,
        proc_mount: csc.proc_mount.clone(),
        ..Default::default()
    };
    let infra_sc = (infra_sc != SecurityContext::default()).then_some(infra_sc);

    // Init container: the product's script (harness-core ContainerExecutionConstants
    // UNIX_SETUP_ADDON_ARGS), its commands joined by `;`, so its exit status is the last one's.
    let setup_addon = Container {
        name: "setup-addon".into(),
        image: Some(format!("{prefix}{ADDON_IMAGE}")),
        image_pull_policy: infra.image_pull_policy.clone(),
        command: Some(vec!["sh".into(), "-c".into(), "--".into()]),
        args: Some(vec![SETUP_ADDON_SCRIPT.to_owned()]),
        env: Some(vec![env("HARNESS_WORKSPACE", WORKSPACE)]),
        resources: Some(res("100m", "100Mi", "100m", "100Mi")),
        security_context: infra_sc.clone(),
        volume_mounts: Some(mounts.clone()),
        working_dir: None,
        ..Default::default()
    };

    // The product's common variables (harness-core's step-container env): every step container
    // and the lite-engine get them.
    let log_prefix = format!(
        "{}/pipeline/{}/{}/-{}",
        ids.account_id, ids.pipeline_id, ids.build_id, ids.execution_id
    );
    let common = vec![
        env("HARNESS_WORKSPACE", WORKSPACE),
        env("HARNESS_ACCOUNT_ID", &ids.account_id),
        env("HARNESS_PROJECT_ID", &ids.project_id),
        env("HARNESS_ORG_ID", &ids.org_id),
        env("HARNESS_PIPELINE_ID", &ids.pipeline_id),
        env("HARNESS_BUILD_ID", &ids.build_id),
        env("HARNESS_STAGE_ID", &ids.stage_id),
        env("HARNESS_EXECUTION_ID", &ids.execution_id),
        env("HARNESS_LOG_PREFIX", &log_prefix),
    ];

    // Step containers.
    let mut containers = Vec::new();
    let mut cpu_sum: i128 = 0;
    let mut mem_sum: i128 = 0;
    for (step, port) in container_steps(g) {
        let cpu = step.cpu_limit.clone().unwrap_or_else(|| DEFAULT_STEP_CPU.into());
        let mem = step.memory_limit.clone().unwrap_or_else(|| DEFAULT_STEP_MEMORY.into());
        cpu_sum += quantity::parse(&cpu).unwrap_or(400);
        mem_sum += quantity::parse(&mem).unwrap_or(500 * 1024 * 1024 * 1000);
        let sc = SecurityContext {
            privileged: Some(step_privileged(g, step)),
            allow_privilege_escalation: csc.allow_privilege_escalation,
            capabilities: caps.clone(),
            run_as_non_root: csc.run_as_non_root,
            read_only_root_filesystem: csc.read_only_root_filesystem,
            run_as_user: step.run_as_user.or(csc.run_as_user),
            run_as_group: csc.run_as_group,
            proc_mount: csc.proc_mount.clone(),
            ..Default::default()
        };
        let image = step_image(step, &prefix);
        // The product copies its common HARNESS_* variables into every step container, before the
        // step's own (a step variable of the same name wins).
        let envs: Vec<EnvVar> = common
            .iter()
            .filter(|c| !step.env.iter().any(|(k, _)| *k == c.name))
            .cloned()
            .chain(step.env.iter().map(|(k, v)| env(k, v)))
            .collect();
        containers.push(Container {
            name: container_name(&step.identifier),
            image: Some(image),
            image_pull_policy: step.image_pull_policy.clone(),
            command: Some(vec![format!("{ADDON_DIR}/bin/ci-addon")]),
            args: Some(vec!["--port".into(), port.to_string()]),
            ports: Some(vec![ContainerPort {
                container_port: i32::from(port),
                ..Default::default()
            }]),
            working_dir: Some(WORKSPACE.into()),
            env: (!envs.is_empty()).then_some(envs),
            resources: Some(res("10m", "10Mi", &cpu, &mem)),
            security_context: Some(sc),
            volume_mounts: Some(mounts.clone()),
            ..Default::default()
        });
    }
    let le_cpu = quantity::format_cpu(cpu_sum + 100);
    let le_mem = quantity::format_memory(mem_sum + 100 * 1024 * 1024 * 1000);
    // The lite-engine: the delegate's endpoint and id among the common variables, the product's
    // feature switches; it serves gRPC on LITE_ENGINE_PORT but, like the product's, declares no port.
    let mut le_env = common.clone();
    le_env.insert(1, env("DELEGATE_SERVICE_ENDPOINT", DELEGATE_SERVICE_ENDPOINT));
    le_env.insert(2, env("DELEGATE_SERVICE_ID", DELEGATE_SERVICE_ID));
    le_env.push(env("CI_ENABLE_HARNESS_ANNOTATIONS", "true"));
    le_env.push(env("HARNESS_LE_STATUS_REST_ENABLED", "true"));
    // Its credentials come from the `<pod>-secret` Secret the product creates first.
    le_env.extend(super::engine_secret_env(s));
    containers.push(Container {
        name: "lite-engine".into(),
        image: Some(format!("{prefix}{LITE_ENGINE_IMAGE}")),
        image_pull_policy: infra.image_pull_policy.clone(),
        working_dir: Some(WORKSPACE.into()),
        env: Some(le_env),
        resources: Some(res(&le_cpu, &le_mem, &le_cpu, &le_mem)),
        security_context: infra_sc,
        volume_mounts: Some(mounts.clone()),
        ..Default::default()
    });

    let tolerations: Vec<K8sToleration> = infra
        .tolerations
        .iter()
        .map(|t| K8sToleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();
    let pull_secrets: Vec<LocalObjectReference> = image_pull_secret_names(s)
        .into_iter()
        .map(|(name, _)| LocalObjectReference { name })
        .collect();
    let spec = PodSpec {
        image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
        restart_policy: Some("Never".into()),
        active_deadline_seconds: Some(86400),
        init_containers: Some(vec![setup_addon]),
        containers,
        volumes: Some(volumes),
        service_account_name: infra.service_account_name.clone(),
        automount_service_account_token: infra.automount_service_account_token,
        priority_class_name: infra.priority_class_name.clone(),
        node_selector: (!infra.node_selector.is_empty()).then(|| infra.node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        security_context: infra.run_as_user.map(|u| PodSecurityContext {
            run_as_user: Some(u),
            ..Default::default()
        }),
        host_aliases: (!infra.host_names.is_empty()).then(|| {
            vec![HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(infra.host_names.clone()),
            }]
        }),
        ..Default::default()
    };
    let spec = match &infra.pod_spec_overlay_json {
        Some(ov) => {
            let mut v = serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null);
            // As Harness documents for the Pod Spec Overlay: `containers` entries apply to existing
            // containers only (others are dropped) and `initContainers` is ignored.
            let mut ov = ov.clone();
            if let Some(o) = ov.as_object_mut() {
                o.remove("initContainers");
                if let Some(serde_json::Value::Array(cs)) = o.get_mut("containers") {
                    cs.retain(|c| {
                        let name = c.get("name").and_then(serde_json::Value::as_str);
                        spec.containers.iter().any(|e| Some(e.name.as_str()) == name)
                    });
                }
            }
            merge_overlay(&mut v, &ov);
            serde_json::from_value(v).unwrap_or(spec)
        }
        None => spec,
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(ids.pod_name.clone()),
            namespace: Some(infra.namespace.clone()),
            labels: Some(labels),
            annotations: (!infra.annotations.is_empty()).then(|| infra.annotations.clone()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The image of a step's container: the one the step names; a product-managed step's default
/// image comes through the harness image connector (with its registry prefix).
fn step_image(step: &Step, prefix: &str) -> String {
    match step_types::by_type(&step.step_type) {
        Some(t) if !t.product_managed => step.image.clone().unwrap_or_default(),
        _ => match &step.image {
            Some(i) if step_types::is_product_image(i) => format!("{prefix}{i}"),
            Some(i) => i.clone(),
            None => String::new(),
        },
    }
}
