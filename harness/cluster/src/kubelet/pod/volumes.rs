//! A pod's volumes on the node: hostPath binds, emptyDir and persistentVolumeClaim Docker volumes,
//! configMap, secret and projected (service-account token, downward API) contents written into
//! Docker volumes, and the `FailedMount` message while a source is missing.

use std::collections::{BTreeMap, HashMap};

use bollard::models::VolumeCreateRequest;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret, Volume};

use super::token::{pod_service_account, request_token, service_account_token};
use crate::k8s::messages;
use crate::kubelet::config::{self, secret_data};
use crate::kubelet::convert::{self, NodeVolume, PodId};
use crate::kubelet::upload::{TarEntry, upload_through_helper};
use crate::kubelet::{POD_UID_LABEL, Shared};

/// Files of a volume: (path inside the volume, content, mode).
type VolumeFiles = Vec<(String, Vec<u8>, u32)>;
/// A volume to populate: (Docker volume name, root mode, files).
type Populate = (String, u32, VolumeFiles);

async fn get_config_map(shared: &Shared, ns: &str, name: &str) -> Option<ConfigMap> {
    config::get_config_map(&shared.client, ns, name).await
}

async fn get_secret(shared: &Shared, ns: &str, name: &str) -> Option<Secret> {
    config::get_secret(&shared.client, ns, name).await
}

/// Create the pod's volumes on the node. Emits `FailedMount` and returns `Err` while a configMap
/// or secret is missing.
pub(super) async fn setup_volumes(
    shared: &Shared,
    id: &PodId,
    volumes: &[Volume],
) -> Result<HashMap<String, NodeVolume>, Option<String>> {
    let ns = id.namespace.clone();
    let mut out = HashMap::new();
    let mut to_populate: Vec<Populate> = Vec::new();
    for v in volumes {
        if let Some(hp) = &v.host_path {
            out.insert(v.name.clone(), NodeVolume::Bind { path: hp.path.clone() });
            continue;
        }
        // Content for configMap / secret volumes: (path, bytes, mode).
        let mut files: Option<Vec<(String, Vec<u8>, u32)>> = None;
        if let Some(cmv) = &v.config_map {
            match get_config_map(shared, &ns, &cmv.name).await {
                Some(cm) => {
                    let mut data: BTreeMap<String, Vec<u8>> = cm
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    for (k, b) in cm.binary_data.unwrap_or_default() {
                        data.insert(k, b.0);
                    }
                    files = Some(project(&data, cmv.items.as_deref(), cmv.default_mode));
                }
                None if cmv.optional == Some(true) => files = Some(Vec::new()),
                None => {
                    return Err(Some(messages::failed_mount(
                        &v.name,
                        &messages::configmap_not_found(&cmv.name),
                    )));
                }
            }
        } else if let Some(sv) = &v.secret {
            let name = sv.secret_name.clone().unwrap_or_default();
            match get_secret(shared, &ns, &name).await {
                Some(s) => files = Some(project(&secret_data(&s), sv.items.as_deref(), sv.default_mode)),
                None if sv.optional == Some(true) => files = Some(Vec::new()),
                None => {
                    return Err(Some(messages::failed_mount(
                        &v.name,
                        &messages::secret_not_found(&name),
                    )));
                }
            }
        }
        if let Some(pvc) = &v.persistent_volume_claim {
            // sgsim provisions every claim as a node-local Docker volume shared by the claim's pods;
            // one per cluster (trial), since parallel trials share the physical node.
            let cluster = shared
                .labels
                .get("dev.sgsim.trial")
                .map(|t| format!("{t}_"))
                .unwrap_or_default();
            let name = format!("sgsim_pvc_{cluster}{ns}_{}", pvc.claim_name);
            let mut labels = shared.resource_labels("");
            labels.remove(POD_UID_LABEL);
            let req = VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some("local".into()),
                labels: Some(labels),
                ..VolumeCreateRequest::default()
            };
            if let Err(e) = shared.docker.create_volume(req).await {
                tracing::warn!(error = %e, volume = %name, "could not create volume");
                return Err(None);
            }
            out.insert(v.name.clone(), NodeVolume::Docker { name });
            continue;
        }
        if let Some(pr) = &v.projected {
            let mut fs = Vec::new();
            let mode = u32::try_from(pr.default_mode.unwrap_or(0o644)).unwrap_or(0o644);
            for src in pr.sources.iter().flatten() {
                if let Some(t) = &src.service_account_token {
                    let sa = pod_service_account(shared, &id.namespace, &id.name).await;
                    let token =
                        match request_token(shared, &ns, &sa, id, t.expiration_seconds, t.audience.clone()).await {
                            Some(token) => token,
                            None => service_account_token(&ns, &sa, id),
                        };
                    fs.push((t.path.clone(), token.into_bytes(), mode));
                }
                if let Some(cm) = &src.config_map
                    && let Some(c) = get_config_map(shared, &ns, &cm.name).await
                {
                    let data: BTreeMap<String, Vec<u8>> = c
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    fs.extend(project(&data, cm.items.as_deref(), Some(mode as i32)));
                }
                if let Some(sec) = &src.secret
                    && let Some(s) = get_secret(shared, &ns, &sec.name).await
                {
                    fs.extend(project(&secret_data(&s), sec.items.as_deref(), Some(mode as i32)));
                }
                if let Some(d) = &src.downward_api {
                    for it in d.items.iter().flatten() {
                        if let Some(f) = &it.field_ref {
                            let v = match f.field_path.as_str() {
                                "metadata.namespace" => ns.clone(),
                                "metadata.name" => id.name.clone(),
                                "metadata.uid" => id.uid.clone(),
                                _ => String::new(),
                            };
                            fs.push((it.path.clone(), v.into_bytes(), mode));
                        }
                    }
                }
            }
            files = Some(fs);
        }
        let name = id.volume_name(&v.name);
        let req = VolumeCreateRequest {
            name: Some(name.clone()),
            driver: Some("local".into()),
            driver_opts: convert::empty_dir_opts(v),
            labels: Some(id.labels(shared, "")),
            ..VolumeCreateRequest::default()
        };
        if let Err(e) = shared.docker.create_volume(req).await {
            tracing::warn!(error = %e, volume = %name, "could not create volume");
            return Err(None);
        }
        // emptyDir roots are world-writable as in Kubernetes; configMap/secret roots 0755.
        let root_mode = if files.is_some() { 0o755 } else { 0o777 };
        to_populate.push((name.clone(), root_mode, files.unwrap_or_default()));
        out.insert(v.name.clone(), NodeVolume::Docker { name });
    }
    if !to_populate.is_empty()
        && let Err(e) = populate(shared, id, &to_populate).await
    {
        tracing::warn!(error = %e, pod = %id.name, "could not populate volumes");
        return Err(None);
    }
    Ok(out)
}

fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Vec<(String, Vec<u8>, u32)> {
    let mode = u32::try_from(default_mode.unwrap_or(0o644)).unwrap_or(0o644);
    match items {
        Some(items) => items
            .iter()
            .filter_map(|it| {
                let v = data.get(&it.key)?;
                let m = it.mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(mode);
                Some((it.path.clone(), v.clone(), m))
            })
            .collect(),
        None => data.iter().map(|(k, v)| (k.clone(), v.clone(), mode)).collect(),
    }
}

/// Set each volume's root mode and write its files, through one created (never started) helper
/// container that mounts volume i at `/sgsim-volume-<i>` (a tar entry for the mount point itself
/// sets the volume root's mode).
async fn populate(shared: &Shared, id: &PodId, volumes: &[Populate]) -> Result<(), bollard::errors::Error> {
    let mounts = volumes
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| bollard::models::Mount {
            target: Some(format!("/sgsim-volume-{i}")),
            source: Some(name.clone()),
            typ: Some(bollard::models::MountType::VOLUME),
            ..bollard::models::Mount::default()
        })
        .collect();
    let host_config = bollard::models::HostConfig {
        mounts: Some(mounts),
        ..bollard::models::HostConfig::default()
    };
    let mut entries: Vec<TarEntry> = Vec::new();
    for (i, (_, root_mode, files)) in volumes.iter().enumerate() {
        entries.push(TarEntry {
            path: format!("sgsim-volume-{i}/"),
            data: Vec::new(),
            mode: *root_mode,
            dir: true,
        });
        for (path, data, mode) in files {
            entries.push(TarEntry {
                path: format!("sgsim-volume-{i}/{}", path.trim_start_matches('/')),
                data: data.clone(),
                mode: *mode,
                dir: false,
            });
        }
    }
    let labels = id.labels(shared, "volume-populate");
    upload_through_helper(&shared.docker, shared.images.as_ref(), labels, host_config, &entries).await
}
