//! How the product names Kubernetes objects (pod names, step container names) and the
//! Kubernetes name syntax rules sgsim checks (label keys and values, namespace names).

use crate::rng::SplitMix64;

/// Alphabet of the pod-name suffix.
pub const POD_SUFFIX_ALPHABET: &str = "123456789bcdfghjklmnpqrstvwxyz";

/// `harnesscd-<identifier lowercased, alphanumerics only, first 15>-<8 chars>`.
pub fn pod_name(identifier: &str, seed: u64) -> String {
    let base: String = identifier
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(15)
        .collect();
    let suffix = SplitMix64::new(seed, 1).string(POD_SUFFIX_ALPHABET, 8);
    format!("harnesscd-{base}-{suffix}")
}

/// Container name of a step: `step-` + identifier without `_`, lowercased.
pub fn container_name(step_identifier: &str) -> String {
    format!("step-{}", step_identifier.replace('_', "").to_lowercase())
}

/// Whether a label value matches `^[a-z0-9A-Z][a-z0-9A-Z\-_.]*[a-z0-9A-Z]$` (checked by hand).
pub fn is_valid_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() < 2 {
        return false;
    }
    let edge = |c: u8| c.is_ascii_alphanumeric();
    let mid = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    edge(b[0]) && edge(b[b.len() - 1]) && b[1..b.len() - 1].iter().all(|&c| mid(c))
}

/// A Kubernetes RFC 1123 label (namespace names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[prefix/]name`: prefix a DNS subdomain (≤ 253), name ≤ 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub fn invalid_qualified_name(k: &str) -> Option<&'static str> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                let b = l.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            });
        if !ok {
            return Some("the prefix must be a lowercase DNS subdomain");
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Some("the name must be 1 to 63 characters");
    }
    if !is_name_part(name) {
        return Some("the name must consist of alphanumerics, `-`, `_` or `.`, and start and end with an alphanumeric");
    }
    None
}

/// Label values: empty, or ≤ 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn invalid_label_value(v: &str) -> Option<&'static str> {
    if v.is_empty() {
        return None;
    }
    if v.len() > 63 {
        return Some("at most 63 characters");
    }
    if !is_name_part(v) {
        return Some("alphanumerics, `-`, `_` or `.`, starting and ending with an alphanumeric");
    }
    None
}
