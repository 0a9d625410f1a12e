//! Home of which registries a scenario calls for: [`RegistrySpec`]s from its fixtures (Docker
//! connectors, `fixtures.registries` conditions) and from the hosts its pod's images name.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{DOCKER_HUB, RegistrySpec, registry_host};

/// The registry host of a connector URL (`https://registry.x.io/v2/` → `registry.x.io`; Docker
/// Hub URLs → `docker.io`).
pub fn url_host(url: &str) -> String {
    let prefix = sgsim_core::render::registry_prefix(url);
    match prefix.split('/').next() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// The registries a scenario's fixtures call for: one per Docker connector URL (requiring the
/// connector's credentials when it has them), overridden by `fixtures.registries` (credentials the
/// registry accepts, delay, 429s, missing images).
pub fn specs_from_fixtures(f: &sgsim_core::scenario::Fixtures) -> Vec<RegistrySpec> {
    let mut out: BTreeMap<String, RegistrySpec> = BTreeMap::new();
    for c in &f.connectors {
        if c.connector_type != "DockerRegistry" {
            continue;
        }
        let Some(url) = &c.url else { continue };
        let host = url_host(url);
        let spec = out.entry(host.clone()).or_insert_with(|| RegistrySpec {
            host,
            ..Default::default()
        });
        if c.auth == "usernamePassword"
            && let (Some(u), Some(p)) = (
                &c.username,
                c.password_ref.as_ref().and_then(|r| f.harness_secrets.get(r)),
            )
            && spec.credentials.is_none()
        {
            spec.credentials = Some((u.clone(), p.clone()));
        }
    }
    for r in &f.registries {
        let host = url_host(&r.url);
        let spec = out.entry(host.clone()).or_insert_with(|| RegistrySpec {
            host,
            ..Default::default()
        });
        if let (Some(u), Some(p)) = (
            &r.username,
            r.password_ref.as_ref().and_then(|p| f.harness_secrets.get(p)),
        ) {
            spec.credentials = Some((u.clone(), p.clone()));
        }
        spec.delay = r
            .delay
            .as_deref()
            .and_then(sgsim_core::duration::parse_millis)
            .map(Duration::from_millis)
            .unwrap_or_default();
        spec.too_many_requests = r.too_many_requests;
        spec.missing.extend(r.missing_images.iter().cloned());
    }
    // Docker Hub is the mirror every trial shares: it never requires credentials.
    if let Some(hub) = out.get_mut(DOCKER_HUB) {
        hub.credentials = None;
    }
    out.into_values().collect()
}

/// The registries a scenario's run needs: [`specs_from_fixtures`], plus an anonymous registry for
/// every other host an image of the pod names (`mcr.microsoft.com/powershell`, `ghcr.io/...`,
/// `registry.k8s.io/...`): public registries serve them to anyone, as on a real cluster.
pub fn specs_for_scenario(s: &sgsim_core::Scenario) -> Vec<RegistrySpec> {
    let mut out = specs_from_fixtures(s.fixtures());
    let pod = sgsim_core::render::render_pod(s);
    let spec = pod.spec.unwrap_or_default();
    let images = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.image.clone());
    for image in images {
        let host = registry_host(&image);
        if host != DOCKER_HUB && !out.iter().any(|r| r.host == host) {
            out.push(RegistrySpec {
                host,
                ..Default::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn public_hosts_of_the_pod_get_anonymous_registries() {
        let pipeline = "pipeline:
  identifier: p
  stages:
    - stage:
        identifier: s
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: g
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec: {connectorRef: k8s, namespace: ns}
                  steps:
                    - step: {identifier: a, type: Run, spec: {image: mcr.microsoft.com/powershell:7.4, shell: Pwsh, command: x}}
                    - step: {identifier: b, type: Run, spec: {connectorRef: private, image: registry.acme.io/tools/ci:1, command: x}}
                    - step: {identifier: c, type: Run, spec: {image: alpine:3.19, command: x}}
";
        let scen = "pipeline: p.yaml
fixtures:
  namespaces: [ns]
  connectors:
    - {identifier: k8s, type: KubernetesCluster}
    - {identifier: private, type: DockerRegistry, url: https://registry.acme.io, auth: usernamePassword, username: u, passwordRef: pw}
  harnessSecrets: {pw: secret}
";
        let loader = |p: &str| {
            if p == "p.yaml" {
                Ok(pipeline.to_string())
            } else {
                Err("no such file".to_string())
            }
        };
        let s = sgsim_core::scenario::load("scenario.yaml", scen, &loader).expect("scenario");
        let specs = super::specs_for_scenario(&s);
        let hosts: Vec<(&str, bool)> = specs
            .iter()
            .map(|r| (r.host.as_str(), r.credentials.is_some()))
            .collect();
        assert_eq!(hosts, [("registry.acme.io", true), ("mcr.microsoft.com", false)]);
    }
}
