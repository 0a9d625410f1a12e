//! Validation on create: object names (RFC 1123 / RFC 1035 rules with Kubernetes' messages) and
//! the subset of pod spec validation sgsim relies on, as `Invalid` field errors.

use serde_json::Value;

use crate::apiserver::status::{ApiError, Cause};

pub(super) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

pub(super) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub(super) const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub(super) fn is_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (if first_alpha {
            b[0].is_ascii_lowercase()
        } else {
            b[0].is_ascii_alphanumeric()
        })
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Name rules of a kind: (max length, message, check).
#[derive(Debug, Clone, Copy)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces, container names).
    Label,
    /// RFC 1035 label (services).
    Dns1035,
}

/// Field-error details for a name breaking `rule` (empty when valid).
pub fn name_errors(name: &str, rule: NameRule) -> Vec<String> {
    let (max, ok, msg) = match rule {
        NameRule::Subdomain => (
            253,
            !name.is_empty() && name.split('.').all(|l| is_label(l, false)),
            DNS1123_SUBDOMAIN_MSG,
        ),
        NameRule::Label => (63, is_label(name, false), DNS1123_LABEL_MSG),
        NameRule::Dns1035 => (63, is_label(name, true), DNS1035_LABEL_MSG),
    };
    let mut out = Vec::new();
    if name.len() > max {
        out.push(format!("must be no more than {max} characters"));
    }
    if !ok {
        out.push(msg.to_owned());
    }
    out
}

/// Validates `metadata.name` of a new object of `kind`.
pub fn validate_name(group: &str, kind: &str, name: &str) -> Result<(), ApiError> {
    let rule = match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        _ => NameRule::Subdomain,
    };
    let causes: Vec<Cause> = name_errors(name, rule)
        .into_iter()
        .map(|d| {
            cause(
                "FieldValueInvalid",
                "metadata.name".into(),
                format!("Invalid value: {name:?}: {d}"),
            )
        })
        .collect();
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            group: group.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            causes,
        })
    }
}

pub(super) fn invalid(kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::Invalid {
        group: String::new(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        causes,
    }
}

pub(super) fn cause(reason: &str, field: String, detail: String) -> Cause {
    Cause {
        reason: reason.to_owned(),
        message: format!("{field}: {detail}"),
        field,
    }
}

/// Field errors of a pod spec that sgsim relies on (a subset of Kubernetes' validation).
pub(super) fn validate_pod(pod: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let mut volume_names = std::collections::HashSet::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let n = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let field = format!("spec.volumes[{i}].name");
        if n.is_empty() {
            errs.push(cause("FieldValueRequired", field, "Required value".into()));
        } else if !volume_names.insert(n.to_owned()) {
            errs.push(cause("FieldValueDuplicate", field, format!("Duplicate value: {n:?}")));
        }
    }
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errs.push(cause(
            "FieldValueRequired",
            "spec.containers".into(),
            "Required value".into(),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let base = format!("spec.{list}[{i}]");
            let n = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if n.is_empty() {
                errs.push(cause(
                    "FieldValueRequired",
                    format!("{base}.name"),
                    "Required value".into(),
                ));
            } else if !name_errors(n, NameRule::Label).is_empty() {
                for d in name_errors(n, NameRule::Label) {
                    errs.push(cause(
                        "FieldValueInvalid",
                        format!("{base}.name"),
                        format!("Invalid value: {n:?}: {d}"),
                    ));
                }
            } else if !names.insert(n.to_owned()) {
                errs.push(cause(
                    "FieldValueDuplicate",
                    format!("{base}.name"),
                    format!("Duplicate value: {n:?}"),
                ));
            }
            if c.get("image").and_then(Value::as_str).unwrap_or_default().is_empty() {
                errs.push(cause(
                    "FieldValueRequired",
                    format!("{base}.image"),
                    "Required value".into(),
                ));
            }
            let mut paths = std::collections::HashSet::new();
            for (j, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let mn = m.get("name").and_then(Value::as_str).unwrap_or_default();
                if !volume_names.contains(mn) {
                    errs.push(cause(
                        "FieldValueNotFound",
                        format!("{base}.volumeMounts[{j}].name"),
                        format!("Not found: {mn:?}"),
                    ));
                }
                let p = m.get("mountPath").and_then(Value::as_str).unwrap_or_default();
                if p.is_empty() {
                    errs.push(cause(
                        "FieldValueRequired",
                        format!("{base}.volumeMounts[{j}].mountPath"),
                        "Required value".into(),
                    ));
                } else if !paths.insert(p.to_owned()) {
                    errs.push(cause(
                        "FieldValueInvalid",
                        format!("{base}.volumeMounts[{j}].mountPath"),
                        format!("Invalid value: {p:?}: must be unique"),
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_errors("web-1.x", NameRule::Subdomain).is_empty());
        assert_eq!(name_errors("Bad_Name", NameRule::Subdomain).len(), 1);
        assert!(name_errors("a.b", NameRule::Label).len() == 1);
        assert!(name_errors("1abc", NameRule::Dns1035).len() == 1);
        assert!(name_errors(&"a".repeat(64), NameRule::Label).len() == 1);
    }
}
