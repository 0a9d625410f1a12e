//! Pod-level fixtures the runner's `create_fixtures` does not make itself: PersistentVolumeClaims
//! (bound at once by sgsim's local provisioner: the kubelet backs each claim with a node-local
//! Docker volume named after it) and PriorityClasses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams, PostParams};
use sgsim_core::Scenario;

/// The storage class sgsim's local provisioner claims volumes for.
pub const LOCAL_STORAGE_CLASS: &str = "sgsim-local";

/// Errors creating fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// An API call failed.
    #[error("{what}")]
    Api {
        /// What was being created.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Create the scenario's PersistentVolumeClaims (phase Bound, as a local provisioner binds them
/// immediately) and PriorityClasses. Objects that exist already are left as they are.
pub async fn create_pod_fixtures(client: &kube::Client, scenario: &Scenario) -> Result<(), FixtureError> {
    let objs = scenario.fixtures().k8s_objects(scenario.namespace());
    for mut pvc in objs.persistent_volume_claims {
        let ns = pvc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| scenario.namespace().to_string());
        let name = pvc.metadata.name.clone().unwrap_or_default();
        if let Some(spec) = pvc.spec.as_mut() {
            spec.storage_class_name = Some(LOCAL_STORAGE_CLASS.into());
            spec.volume_name = Some(format!("pvc-{ns}-{name}"));
        }
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let what = format!("create persistentvolumeclaim {ns}/{name}");
        match api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => continue,
            Err(source) => return Err(FixtureError::Api { what, source }),
        }
        let status = serde_json::json!({"status": {
            "phase": "Bound",
            "accessModes": ["ReadWriteOnce"],
            "capacity": BTreeMap::from([("storage", Quantity("1Gi".into()))]),
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|source| FixtureError::Api {
                what: format!("bind persistentvolumeclaim {ns}/{name}"),
                source,
            })?;
    }
    let api: Api<PriorityClass> = Api::all(client.clone());
    for pc in objs.priority_classes {
        let name = pc.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &pc).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(source) => {
                return Err(FixtureError::Api {
                    what: format!("create priorityclass {name}"),
                    source,
                });
            }
        }
    }
    Ok(())
}
