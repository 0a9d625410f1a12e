//! Building the Kubernetes objects (Namespaces, Nodes, ConfigMaps, Secrets, ServiceAccounts,
//! PVCs, PriorityClasses) that a scenario's fixtures describe.

use std::collections::BTreeMap;

use super::header::Fixtures;

/// The Kubernetes objects a scenario's fixtures describe, ready to create in the API server.
#[derive(Clone, Debug, Default)]
pub struct FixtureObjects {
    /// Namespaces.
    pub namespaces: Vec<k8s_openapi::api::core::v1::Namespace>,
    /// Nodes (labels, taints, capacity/allocatable; Ready condition).
    pub nodes: Vec<k8s_openapi::api::core::v1::Node>,
    /// ConfigMaps.
    pub config_maps: Vec<k8s_openapi::api::core::v1::ConfigMap>,
    /// Secrets (Opaque, `stringData` turned into `data`).
    pub secrets: Vec<k8s_openapi::api::core::v1::Secret>,
    /// ServiceAccounts.
    pub service_accounts: Vec<k8s_openapi::api::core::v1::ServiceAccount>,
    /// PersistentVolumeClaims (1Gi, ReadWriteOnce).
    pub persistent_volume_claims: Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    /// PriorityClasses.
    pub priority_classes: Vec<k8s_openapi::api::scheduling::v1::PriorityClass>,
}

impl Fixtures {
    /// Build the fixtures' Kubernetes objects; namespaced objects without a namespace go to
    /// `default_namespace` (the step group's).
    pub fn k8s_objects(&self, default_namespace: &str) -> FixtureObjects {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |name: &str, ns: Option<&str>| ObjectMeta {
            name: Some(name.to_string()),
            namespace: ns.map(str::to_string),
            ..Default::default()
        };
        let ns_of = |o: &Option<String>| o.clone().unwrap_or_else(|| default_namespace.to_string());
        let mut out = FixtureObjects::default();
        for n in &self.namespaces {
            out.namespaces.push(v1::Namespace {
                metadata: meta(n, None),
                ..Default::default()
            });
        }
        for n in &self.nodes {
            let cpu = n.cpu.clone().unwrap_or_else(|| "8".into());
            let mem = n.memory.clone().unwrap_or_else(|| "16Gi".into());
            let mut labels = BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), n.name.clone()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ]);
            labels.extend(n.labels.clone());
            let res = BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu)),
                ("memory".to_string(), Quantity(mem)),
                ("pods".to_string(), Quantity("110".into())),
            ]);
            out.nodes.push(v1::Node {
                metadata: ObjectMeta {
                    labels: Some(labels),
                    ..meta(&n.name, None)
                },
                spec: Some(v1::NodeSpec {
                    taints: (!n.taints.is_empty()).then(|| {
                        n.taints
                            .iter()
                            .map(|t| v1::Taint {
                                key: t.key.clone(),
                                value: t.value.clone(),
                                effect: t.effect.clone(),
                                ..Default::default()
                            })
                            .collect()
                    }),
                    ..Default::default()
                }),
                status: Some(v1::NodeStatus {
                    capacity: Some(res.clone()),
                    allocatable: Some(res),
                    conditions: Some(vec![v1::NodeCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            });
        }
        for c in &self.config_maps {
            out.config_maps.push(v1::ConfigMap {
                metadata: meta(&c.name, Some(&ns_of(&c.namespace))),
                data: Some(c.data.clone()),
                ..Default::default()
            });
        }
        for s in &self.secrets {
            out.secrets.push(v1::Secret {
                metadata: meta(&s.name, Some(&ns_of(&s.namespace))),
                type_: Some("Opaque".into()),
                data: Some(
                    s.data
                        .iter()
                        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                        .collect(),
                ),
                ..Default::default()
            });
        }
        for s in &self.service_accounts {
            out.service_accounts.push(v1::ServiceAccount {
                metadata: meta(&s.name, Some(&ns_of(&s.namespace))),
                ..Default::default()
            });
        }
        for p in &self.persistent_volume_claims {
            out.persistent_volume_claims.push(v1::PersistentVolumeClaim {
                metadata: meta(&p.name, Some(&ns_of(&p.namespace))),
                spec: Some(v1::PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(v1::VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_string(), Quantity("1Gi".into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for p in &self.priority_classes {
            out.priority_classes
                .push(k8s_openapi::api::scheduling::v1::PriorityClass {
                    metadata: meta(&p.name, None),
                    value: Some(p.value),
                    ..Default::default()
                });
        }
        out
    }
}
