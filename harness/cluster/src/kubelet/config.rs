//! A container's configuration as the kubelet checks it before creating the container
//! (kuberuntime's `generateContainerConfig`): `verifyRunAsNonRoot` and the environment
//! (`makeEnvironmentVariables`). Shared by the Docker-backed kubelet and the fake one, so both
//! fail with the same `CreateContainerConfigError` messages.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Client;
use kube::api::Api;

use crate::k8s::messages;

/// Whether [`run_as_non_root_error`] needs the image's USER: `runAsNonRoot` without `runAsUser`.
pub(crate) fn needs_image_user(pod: &Pod, c: &Container) -> bool {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    csc.run_as_non_root.or(psc.run_as_non_root) == Some(true) && csc.run_as_user.or(psc.run_as_user).is_none()
}

/// kuberuntime's `verifyRunAsNonRoot` (security_context_others.go): with `runAsNonRoot`, the
/// effective user must be known and non-zero. `image_user` is the image's USER (`""`: root),
/// used only when neither the container nor the pod sets `runAsUser`.
pub(crate) fn run_as_non_root_error(pod: &Pod, c: &Container, image_user: &str) -> Option<String> {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    if csc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
        return None;
    }
    let pod_fmt = messages::format_pod(
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    );
    let name = &c.name;
    if let Some(uid) = csc.run_as_user.or(psc.run_as_user) {
        return (uid == 0).then(|| messages::run_as_user_breaks_non_root(&pod_fmt, name));
    }
    let user = image_user.split(':').next().unwrap_or("");
    let as_root = || messages::run_as_non_root_image_root(&pod_fmt, name);
    if user.is_empty() {
        return Some(as_root());
    }
    match user.parse::<i64>() {
        Ok(0) => Some(as_root()),
        Ok(_) => None,
        Err(_) => Some(messages::run_as_non_root_non_numeric(user, &pod_fmt, name)),
    }
}

/// Environment of a container, as `makeEnvironmentVariables` builds it: `envFrom`, then `env`
/// (with `$(VAR)` expansion and `valueFrom`), then the `kubernetes` Service's variables
/// (`service_env`) unless the container defines them. `field` resolves a `fieldRef` path.
/// `Err` is the kubelet's message for a missing ConfigMap, Secret or key.
pub(crate) async fn resolve_env(
    client: &Client,
    pod: &Pod,
    c: &Container,
    field: impl Fn(&str) -> String,
    service_env: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut out: Vec<(String, String)> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    let set = |out: &mut Vec<(String, String)>, map: &mut HashMap<String, String>, k: String, v: String| {
        if let Some(pos) = out.iter().position(|(n, _)| *n == k) {
            out[pos].1 = v.clone();
        } else {
            out.push((k.clone(), v.clone()));
        }
        map.insert(k, v);
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match get_config_map(client, &ns, &r.name).await {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut out, &mut map, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(messages::configmap_not_found(&r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match get_secret(client, &ns, &r.name).await {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(
                            &mut out,
                            &mut map,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(messages::secret_not_found(&r.name)),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field(&f.field_path)
            } else if let Some(r) = &from.config_map_key_ref {
                match get_config_map(client, &ns, &r.name).await {
                    Some(cm) => match cm.data.unwrap_or_default().get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional == Some(true) => continue,
                        None => return Err(messages::configmap_key_not_found(&r.key, &ns, &r.name)),
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(messages::configmap_not_found(&r.name)),
                }
            } else if let Some(r) = &from.secret_key_ref {
                match get_secret(client, &ns, &r.name).await {
                    Some(s) => match secret_data(&s).get(&r.key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if r.optional == Some(true) => continue,
                        None => return Err(messages::secret_key_not_found(&r.key, &ns, &r.name)),
                    },
                    None if r.optional == Some(true) => continue,
                    None => return Err(messages::secret_not_found(&r.name)),
                }
            } else {
                String::new()
            }
        } else {
            super::convert::expand(&e.value.clone().unwrap_or_default(), &map)
        };
        set(&mut out, &mut map, e.name.clone(), value);
    }
    // kubelet_pods.go makeEnvironmentVariables: the `kubernetes` Service's variables are in every
    // container (also without enableServiceLinks), unless the container defines them itself.
    for (k, v) in service_env {
        if !map.contains_key(&k) {
            set(&mut out, &mut map, k, v);
        }
    }
    Ok(out)
}

pub(crate) async fn get_config_map(client: &Client, ns: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

pub(crate) async fn get_secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// A Secret's values: `data`, overridden by `stringData`.
pub(crate) fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in s.string_data.clone().unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};
    use kube::api::ObjectMeta;

    fn pod(psc: Option<PodSecurityContext>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                security_context: psc,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container(sc: Option<SecurityContext>) -> Container {
        Container {
            name: "step-a".into(),
            security_context: sc,
            ..Default::default()
        }
    }

    #[test]
    fn run_as_non_root() {
        let non_root = Some(SecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        });
        let (p, c) = (pod(None), container(non_root.clone()));
        assert!(needs_image_user(&p, &c));
        assert_eq!(
            run_as_non_root_error(&p, &c, "").as_deref(),
            Some(r#"container has runAsNonRoot and image will run as root (pod: "p_ns(u)", container: step-a)"#)
        );
        assert_eq!(
            run_as_non_root_error(&p, &c, "0:0").as_deref(),
            run_as_non_root_error(&p, &c, "").as_deref()
        );
        assert_eq!(run_as_non_root_error(&p, &c, "1000:1000"), None);
        assert_eq!(
            run_as_non_root_error(&p, &c, "app").as_deref(),
            Some(
                r#"container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: "p_ns(u)", container: step-a)"#
            )
        );
        // runAsUser from the pod decides without the image.
        let p0 = pod(Some(PodSecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        }));
        assert!(!needs_image_user(&p0, &c));
        assert_eq!(
            run_as_non_root_error(&p0, &c, "1000").as_deref(),
            Some(r#"container's runAsUser breaks non-root policy (pod: "p_ns(u)", container: step-a)"#)
        );
        let p1 = pod(Some(PodSecurityContext {
            run_as_user: Some(1),
            ..Default::default()
        }));
        assert_eq!(run_as_non_root_error(&p1, &c, ""), None);
        // Without runAsNonRoot nothing is checked.
        let plain = container(None);
        assert!(!needs_image_user(&p, &plain));
        assert_eq!(run_as_non_root_error(&p, &plain, ""), None);
        // The pod-level setting applies; the container's overrides it.
        let pn = pod(Some(PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        }));
        assert!(run_as_non_root_error(&pn, &plain, "").is_some());
        let off = container(Some(SecurityContext {
            run_as_non_root: Some(false),
            ..Default::default()
        }));
        assert_eq!(run_as_non_root_error(&pn, &off, ""), None);
    }

    #[test]
    fn secret_values() {
        use k8s_openapi::ByteString;
        let s = Secret {
            data: Some(BTreeMap::from([
                ("a".into(), ByteString(b"1".to_vec())),
                ("b".into(), ByteString(b"2".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([("b".into(), "3".into())])),
            ..Default::default()
        };
        assert_eq!(
            secret_data(&s),
            BTreeMap::from([("a".into(), b"1".to_vec()), ("b".into(), b"3".to_vec())])
        );
    }
}
