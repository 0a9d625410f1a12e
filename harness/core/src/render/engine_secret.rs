//! The Secret the product creates beside the pod for the lite-engine's credentials
//! (harness-core `CIK8InitializeTaskHandler.createEnvVariablesSecrets`): named `<pod>-secret`
//! (`SecretSpecBuilder.getSecretName`), one key per variable (`DelegateServiceTokenHelper` keys
//! the token as `DELEGATE_SERVICE_TOKEN`), created before the pod. The lite-engine reads each
//! variable through `valueFrom.secretKeyRef`, and `HARNESS_SECRETS_LIST` names them
//! (`updateContainerWithEnvVariable`: the names joined with `,` in the order of a Java `HashSet`).
//! The container's plain variables come first, then the `secretKeyRef` ones
//! (`BaseContainerSpecBuilder.getContainerEnvVars`), each group in Java `HashMap` order.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Secret, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod_name;
use crate::scenario::Scenario;

/// The lite-engine's Secret-backed variables.
pub const ENGINE_SECRET_VARS: [&str; 3] = [
    "DELEGATE_SERVICE_TOKEN",
    "HARNESS_LOG_SERVICE_TOKEN",
    "HARNESS_LOG_SERVICE_ENDPOINT",
];

/// What the Secret holds, chosen by whoever plays the delegate (sgsim's run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineCredentials {
    /// DELEGATE_SERVICE_TOKEN: the delegate accepts step statuses only with it.
    pub delegate_token: String,
    /// HARNESS_LOG_SERVICE_TOKEN.
    pub log_service_token: String,
    /// HARNESS_LOG_SERVICE_ENDPOINT.
    pub log_service_endpoint: String,
}

/// `<pod>-secret`.
pub fn engine_secret_name(s: &Scenario) -> String {
    format!("{}-secret", pod_name(&s.step_group.identifier, s.seed()))
}

/// The variables in the order a Java `HashSet<String>` of default capacity iterates them: by
/// bucket (`(h ^ h >>> 16) & 15` of `String.hashCode`), then in insertion order.
pub fn java_hash_set_order<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let bucket = |s: &str| {
        let h = s
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        let h = h as u32;
        (h ^ (h >> 16)) & 15
    };
    let mut v: Vec<(u32, usize, &str)> = names.iter().enumerate().map(|(i, n)| (bucket(n), i, *n)).collect();
    v.sort();
    v.into_iter().map(|(_, _, n)| n).collect()
}

/// The lite-engine's env entries for the Secret: `HARNESS_SECRETS_LIST`, then each variable as a
/// `secretKeyRef`.
pub fn engine_secret_env(s: &Scenario) -> Vec<EnvVar> {
    let name = engine_secret_name(s);
    let order = java_hash_set_order(&ENGINE_SECRET_VARS);
    let mut out = vec![EnvVar {
        name: "HARNESS_SECRETS_LIST".into(),
        value: Some(order.join(",")),
        ..Default::default()
    }];
    out.extend(order.into_iter().map(|var| EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.clone(),
                key: var.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }));
    out
}

/// The Secret itself, in the step group's namespace: type `opaque` (lower case, the product's
/// `SecretSpecBuilder.OPAQUE_SECRET_TYPE`), no labels.
pub fn engine_secret(s: &Scenario, c: &EngineCredentials) -> Secret {
    let values = [
        c.delegate_token.as_str(),
        c.log_service_token.as_str(),
        c.log_service_endpoint.as_str(),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(engine_secret_name(s)),
            namespace: Some(s.namespace().to_string()),
            ..Default::default()
        },
        type_: Some("opaque".into()),
        data: Some(
            ENGINE_SECRET_VARS
                .iter()
                .zip(values)
                .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Every Secret the product creates before the pod, in its order: the image pull Secrets
/// ([`super::image_pull_secrets`]), then `<pod>-secret`.
pub fn pod_secrets(s: &Scenario, c: &EngineCredentials) -> Vec<Secret> {
    let mut out = super::image_pull_secrets(s);
    out.push(engine_secret(s, c));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_set_order_follows_string_hash_buckets() {
        // "a".hashCode() = 97 -> bucket 1, "b" = 98 -> 2, "q" = 113 -> 1: bucket 1 keeps insertion order.
        assert_eq!(java_hash_set_order(&["b", "q", "a"]), ["q", "a", "b"]);
        // Hashes that overflow i32 wrap as Java's do: buckets 13, 0 and 6 (computed apart from
        // this code, with Python's arbitrary-precision integers masked to 32 bits).
        assert_eq!(
            java_hash_set_order(&ENGINE_SECRET_VARS),
            [
                "HARNESS_LOG_SERVICE_TOKEN",
                "HARNESS_LOG_SERVICE_ENDPOINT",
                "DELEGATE_SERVICE_TOKEN"
            ]
        );
    }
}
