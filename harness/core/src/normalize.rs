//! Normalization for goldens: volatile values become stable placeholders; secrets are masked.
//!
//! Text rules ([`normalize_text`]), applied in this order, each only at token boundaries
//! (the character before and after a match is not alphanumeric, and for numbers not a `.`):
//!
//! | what | example | placeholder |
//! |---|---|---|
//! | RFC 3339 timestamp | `2026-11-24T08:21:52.123456Z`, `...+02:00` | `<timestamp>` |
//! | container id (64 hex digits, optional `docker://`/`containerd://` kept) | `docker://3f4e...` | `docker://<container-id>` |
//! | uid (8-4-4-4-12 hex) | `0f8fad5b-d9cb-469f-a165-70867728950e` | `<uid>` |
//! | pod name suffix | `harnesscd-dindgroup-gb7mjhnr` | `harnesscd-dindgroup-<pod-suffix>` |
//! | IPv4 address | `10.244.0.5` | `<ip>` |
//! | Go-style duration | `437.806182ms`, `1.2s`, `2m3.5s`, `1h0m0s` | `<duration>` |
//! | resourceVersion value | `resourceVersion: "123"` | `resourceVersion: "<rv>"` |
//!
//! A single-component duration in minutes needs a fraction (`1.5m`), so CPU quantities like
//! `400m` stay. Node names are kept as given by the fixtures.
//!
//! [`normalize_pod`] works on the Pod object: metadata.uid → `<uid>`, resourceVersion → `<rv>`,
//! name suffix → `<pod-suffix>`, creationTimestamp, managedFields, status times dropped, podIP(s)
//! and hostIP(s) → `<ip>`, containerID → `<container-id>`, imageID → `<image-id>`. [`pod_yaml`]
//! serializes it with serde-saphyr (field order of the k8s types, maps sorted by key).

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod};

/// What masked secrets look like.
pub const MASK: &str = "**************";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// The Pod could not be serialized as YAML.
    #[error("cannot serialize the pod as YAML")]
    Serialize(#[from] serde_saphyr::SerializeError),
}

/// Replace every occurrence of every secret value by [`MASK`] (longest values first; empty
/// values ignored).
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    let mut vals: Vec<&str> = secrets.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    vals.sort_by_key(|s| std::cmp::Reverse(s.len()));
    vals.dedup();
    let mut out = text.to_string();
    for v in vals {
        if out.contains(v) {
            out = out.replace(v, MASK);
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Apply one matcher everywhere: `m(rest)` returns the length (bytes) of a match at the start of
/// `rest`, and the replacement. Matches must start at a boundary (previous char not alnum/`_`,
/// and not `.` when `no_dot_before`), and end at one.
fn replace_all(text: &str, no_dot_before: bool, m: impl Fn(&str) -> Option<(usize, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < text.len() {
        let rest = &text[i..];
        let boundary = prev.is_none_or(|p| !(is_word(p) || no_dot_before && p == '.'));
        if boundary
            && let Some((len, rep)) = m(rest)
            && len > 0
            && rest.is_char_boundary(len)
        {
            let next = rest[len..].chars().next();
            let end_ok = next.is_none_or(|n| {
                !(is_word(n) || no_dot_before && n == '.' && rest[len + 1..].starts_with(|c: char| c.is_ascii_digit()))
            });
            if end_ok {
                out.push_str(&rep);
                prev = rest[..len].chars().last();
                i += len;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

fn hex_run(s: &str) -> usize {
    s.bytes().take_while(|b| b.is_ascii_hexdigit()).count()
}

fn fixed_digits(s: &str, n: usize) -> bool {
    s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit)
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (also with a space or lowercase `t`).
fn match_timestamp(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !(fixed_digits(s, 4)
        && b.get(4) == Some(&b'-')
        && fixed_digits(&s[5..], 2)
        && b.get(7) == Some(&b'-')
        && fixed_digits(s.get(8..)?, 2))
    {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let t = s.get(11..)?;
    if !(fixed_digits(t, 2)
        && t.as_bytes().get(2) == Some(&b':')
        && fixed_digits(t.get(3..)?, 2)
        && t.as_bytes().get(5) == Some(&b':')
        && fixed_digits(t.get(6..)?, 2))
    {
        return None;
    }
    let mut i = 11 + 8;
    if b.get(i) == Some(&b'.') {
        let d = digits(s.get(i + 1..)?);
        if d == 0 {
            return None;
        }
        i += 1 + d;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => Some(i + 1),
        Some(b'+' | b'-') => {
            let z = s.get(i + 1..)?;
            if fixed_digits(z, 2) && z.as_bytes().get(2) == Some(&b':') && fixed_digits(z.get(3..)?, 2) {
                Some(i + 6)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn match_container_id(s: &str) -> Option<(usize, String)> {
    for scheme in ["docker://", "containerd://", "cri-o://", ""] {
        if let Some(rest) = s.strip_prefix(scheme)
            && hex_run(rest) == 64
        {
            return Some((scheme.len() + 64, format!("{scheme}<container-id>")));
        }
    }
    None
}

fn match_uid(s: &str) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (gi, n) in groups.iter().enumerate() {
        let part = s.get(i..)?;
        if hex_run(part) != *n {
            return None;
        }
        i += n;
        if gi < 4 {
            if s.as_bytes().get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

fn match_pod_name(s: &str) -> Option<(usize, String)> {
    let rest = s.strip_prefix("harnesscd-")?;
    let id_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        .count();
    if id_len == 0 || id_len > 15 || rest.as_bytes().get(id_len) != Some(&b'-') {
        return None;
    }
    let suf = &rest[id_len + 1..];
    let n = suf
        .bytes()
        .take_while(|b| crate::naming::POD_SUFFIX_ALPHABET.as_bytes().contains(b))
        .count();
    if n != 8 {
        return None;
    }
    let len = "harnesscd-".len() + id_len + 1 + 8;
    let name = format!("harnesscd-{}-<pod-suffix>", &rest[..id_len]);
    // The kubelet's pod full name `<pod>_<namespace>` (kubecontainer.GetPodFullName), as in
    // `container has runAsNonRoot ... (pod: "<pod>_<ns>(<uid>)", ...)`: `_` would otherwise stop
    // the match at a word boundary.
    let after = &s[len..];
    if let Some(ns) = after.strip_prefix('_') {
        let n = ns
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            .count();
        if n > 0 {
            return Some((len + 1 + n, format!("{name}_{}", &ns[..n])));
        }
    }
    Some((len, name))
}

/// `kube-api-access-<5 random chars>`: the projected service-account token volume the API server
/// adds to every pod (its suffix is random, as in Kubernetes).
fn match_token_volume(s: &str) -> Option<(usize, String)> {
    let rest = s.strip_prefix("kube-api-access-")?;
    let n = rest
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        .count();
    (n == 5).then(|| ("kube-api-access-".len() + 5, "kube-api-access-<suffix>".to_string()))
}

fn match_ipv4(s: &str) -> Option<usize> {
    let mut i = 0;
    for part in 0..4 {
        let d = digits(s.get(i..)?);
        if d == 0 || d > 3 {
            return None;
        }
        let v: u32 = s[i..i + d].parse().ok()?;
        if v > 255 {
            return None;
        }
        i += d;
        if part < 3 {
            if s.as_bytes().get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

/// Go-style durations: one or more `<number>[.<fraction>]<unit>` with units h, m, s, ms, us, µs,
/// ns. A single component with unit `m` needs a fraction (so `400m` stays).
fn match_duration(s: &str) -> Option<usize> {
    let mut i = 0;
    let mut comps = 0;
    let mut last_unit_m_int = false;
    loop {
        let rest = &s[i..];
        let d = digits(rest);
        if d == 0 {
            break;
        }
        let mut j = d;
        let mut frac = false;
        if rest.as_bytes().get(j) == Some(&b'.') {
            let f = digits(&rest[j + 1..]);
            if f == 0 {
                break;
            }
            j += 1 + f;
            frac = true;
        }
        let u = &rest[j..];
        let unit_len = if u.starts_with("ms") || u.starts_with("us") || u.starts_with("ns") {
            2
        } else if u.starts_with("µs") {
            "µs".len()
        } else if u.starts_with('h') || u.starts_with('m') || u.starts_with('s') {
            1
        } else {
            0
        };
        if unit_len == 0 {
            break;
        }
        last_unit_m_int = unit_len == 1 && u.starts_with('m') && !frac;
        i += j + unit_len;
        comps += 1;
    }
    if comps == 0 || (comps == 1 && last_unit_m_int) {
        return None;
    }
    Some(i)
}

fn replace_rv(text: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let _ = n;
        if let Some(i) = line.find("resourceVersion") {
            let after = &line[i + "resourceVersion".len()..];
            let sep_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(usize::MAX);
            if sep_len != usize::MAX
                && after[..sep_len]
                    .chars()
                    .all(|c| matches!(c, ':' | ' ' | '"' | '\'' | '='))
            {
                let d = digits(&after[sep_len..]);
                out.push_str(&line[..i + "resourceVersion".len() + sep_len]);
                out.push_str("<rv>");
                out.push_str(&after[sep_len + d..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// Apply every text rule (see the module docs), until nothing changes: a placeholder can give a
/// later rule the word boundary it needs (`resourceVersion=123kube-api-access-x7k2p` →
/// `…=<rv>kube-api-access-x7k2p` → `…=<rv>kube-api-access-<suffix>`), so one pass is not always
/// idempotent (found by the normalize fuzz target); the fixed point is.
pub fn normalize_text(text: &str) -> String {
    let mut t = one_pass(text);
    for _ in 0..8 {
        let next = one_pass(&t);
        if next == t {
            break;
        }
        t = next;
    }
    t
}

fn one_pass(text: &str) -> String {
    let t = replace_all(text, true, |s| {
        match_timestamp(s).map(|n| (n, "<timestamp>".to_string()))
    });
    let t = replace_all(&t, false, match_container_id);
    let t = replace_all(&t, false, |s| match_uid(s).map(|n| (n, "<uid>".to_string())));
    let t = replace_all(&t, false, match_pod_name);
    let t = replace_all(&t, false, match_token_volume);
    let t = replace_all(&t, true, |s| match_ipv4(s).map(|n| (n, "<ip>".to_string())));
    let t = replace_all(&t, true, |s| match_duration(s).map(|n| (n, "<duration>".to_string())));
    replace_rv(&t)
}

/// Normalize text and mask secrets (masking first, so a secret that looks like an IP is still
/// masked).
pub fn normalize_log(text: &str, secrets: &[String]) -> String {
    normalize_text(&mask_secrets(text, secrets))
}

fn norm_state(st: &mut Option<ContainerState>) {
    if let Some(s) = st {
        // Waiting/terminated messages may quote the pod as `name_namespace(uid)` (kubelet config
        // errors such as runAsNonRoot).
        if let Some(w) = &mut s.waiting
            && let Some(m) = &mut w.message
        {
            *m = normalize_text(m);
        }
        if let Some(r) = &mut s.running {
            r.started_at = None;
        }
        if let Some(t) = &mut s.terminated {
            t.started_at = None;
            t.finished_at = None;
            if t.container_id.is_some() {
                t.container_id = Some("<container-id>".into());
            }
        }
    }
}

fn norm_statuses(list: &mut Option<Vec<ContainerStatus>>) {
    if let Some(list) = list {
        for cs in list {
            if cs.container_id.is_some() {
                cs.container_id = Some("<container-id>".into());
            }
            cs.image_id = "<image-id>".into();
            norm_state(&mut cs.state);
            norm_state(&mut cs.last_state);
        }
    }
}

/// Normalize a Pod object (see the module docs).
pub fn normalize_pod(pod: &Pod) -> Pod {
    let mut p = pod.clone();
    let m = &mut p.metadata;
    if m.uid.is_some() {
        m.uid = Some("<uid>".into());
    }
    if m.resource_version.is_some() {
        m.resource_version = Some("<rv>".into());
    }
    m.creation_timestamp = None;
    m.managed_fields = None;
    m.generation = None;
    if let Some(n) = &m.name {
        m.name = Some(normalize_text(n));
    }
    if let Some(labels) = &mut m.labels {
        for v in labels.values_mut() {
            *v = normalize_text(v);
        }
    }
    if let Some(spec) = &mut p.spec
        && let Some(refs) = &mut spec.image_pull_secrets
    {
        for r in refs {
            r.name = normalize_text(&r.name);
        }
    }
    if let Some(st) = &mut p.status {
        if st.pod_ip.is_some() {
            st.pod_ip = Some("<ip>".into());
        }
        if let Some(ips) = &mut st.pod_ips {
            for ip in ips {
                ip.ip = "<ip>".into();
            }
        }
        if st.host_ip.is_some() {
            st.host_ip = Some("<ip>".into());
        }
        if let Some(ips) = &mut st.host_ips {
            for ip in ips {
                ip.ip = "<ip>".into();
            }
        }
        st.start_time = None;
        if let Some(conds) = &mut st.conditions {
            for c in conds {
                c.last_probe_time = None;
                c.last_transition_time = None;
            }
        }
        norm_statuses(&mut st.container_statuses);
        norm_statuses(&mut st.init_container_statuses);
        norm_statuses(&mut st.ephemeral_container_statuses);
    }
    p
}

/// The normalized pod as YAML (serde-saphyr), secrets masked. Masking happens on the object's
/// strings before serializing, so a masked value is quoted as YAML requires (`**************`
/// alone would read as an alias) and pod.yaml stays a valid Pod for schema checks.
pub fn pod_yaml(pod: &Pod, secrets: &[String]) -> Result<String, NormalizeError> {
    let p = normalize_pod(pod);
    let p = mask_pod(&p, secrets);
    let y = serde_saphyr::to_string(&p)?;
    Ok(replace_all(&y, false, match_token_volume))
}

/// Every string of the pod with the secrets masked (the pod unchanged if it cannot round-trip).
fn mask_pod(pod: &Pod, secrets: &[String]) -> Pod {
    fn walk(v: &mut serde_json::Value, secrets: &[String]) {
        match v {
            serde_json::Value::String(s) => *s = mask_secrets(s, secrets),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, secrets)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, secrets)),
            _ => {}
        }
    }
    if secrets.iter().all(|s| s.is_empty()) {
        return pod.clone();
    }
    let Ok(mut v) = serde_json::to_value(pod) else {
        return pod.clone();
    };
    walk(&mut v, secrets);
    serde_json::from_value(v).unwrap_or_else(|_| pod.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(
            normalize_text(
                "Successfully pulled image \"harness/ci-addon:1.16.8\" in 437.806182ms (437.815597ms including waiting)"
            ),
            "Successfully pulled image \"harness/ci-addon:1.16.8\" in <duration> (<duration> including waiting)"
        );
        assert_eq!(
            normalize_text("took 1.2s and 2m3.5s, 1h0m0s"),
            "took <duration> and <duration>, <duration>"
        );
        assert_eq!(normalize_text("cpu 400m 10m"), "cpu 400m 10m");
        assert_eq!(normalize_text("at 2026-11-24T08:21:52.123456Z ok"), "at <timestamp> ok");
        assert_eq!(normalize_text("at 2026-11-24T08:21:52+02:00"), "at <timestamp>");
        assert_eq!(normalize_text("pod ip 10.244.0.5:8080"), "pod ip <ip>:8080");
        assert_eq!(
            normalize_text("name: kube-api-access-hphzh"),
            "name: kube-api-access-<suffix>"
        );
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "env": [{"name": "TOKEN", "value": "s3cr3t"}, {"name": "URL", "value": "https://u:s3cr3t@h"}]}]}
        }))
        .unwrap();
        let y = pod_yaml(&pod, &["s3cr3t".to_string()]).unwrap();
        assert!(!y.contains("s3cr3t"), "{y}");
        let back: Pod = serde_saphyr::from_str(&y).expect("masked pod.yaml is valid YAML for a Pod");
        let env = back.spec.unwrap().containers[0].env.clone().unwrap();
        assert_eq!(env[0].value.as_deref(), Some(MASK));
        assert_eq!(env[1].value.as_deref(), Some("https://u:**************@h"));
        assert_eq!(normalize_text("kube-api-access-toolong1"), "kube-api-access-toolong1");
        assert_eq!(
            normalize_text("image harness/ci-addon:1.16.8"),
            "image harness/ci-addon:1.16.8"
        );
        let id = "a".repeat(64);
        assert_eq!(normalize_text(&format!("docker://{id}")), "docker://<container-id>");
        assert_eq!(normalize_text(&format!("id {id}.")), "id <container-id>.");
        assert_eq!(normalize_text("uid 0f8fad5b-d9cb-469f-a165-70867728950e"), "uid <uid>");
        assert_eq!(
            normalize_text("Successfully assigned ns/harnesscd-asdasd-89xlhk71 to node-1"),
            "Successfully assigned ns/harnesscd-asdasd-<pod-suffix> to node-1"
        );
        assert_eq!(
            normalize_text(
                r#"(pod: "harnesscd-nonrootgroup-fxnz3w26_harness-delegate-ng(0f8fad5b-d9cb-469f-a165-70867728950e)", container: step-x)"#
            ),
            r#"(pod: "harnesscd-nonrootgroup-<pod-suffix>_harness-delegate-ng(<uid>)", container: step-x)"#
        );
        assert_eq!(
            normalize_text("harnesscd-abc-fxnz3w26_x"),
            "harnesscd-abc-<pod-suffix>_x"
        );
        assert_eq!(normalize_text("harnesscd-abc-fxnz3w26_"), "harnesscd-abc-fxnz3w26_");
        assert_eq!(
            normalize_text("resourceVersion: \"123\"\n"),
            "resourceVersion: \"<rv>\"\n"
        );
        assert_eq!(
            normalize_text("\"resourceVersion\":\"77\""),
            "\"resourceVersion\":\"<rv>\""
        );
        assert_eq!(normalize_text("node-1 stays"), "node-1 stays");
    }

    #[test]
    fn masking() {
        let s = vec!["hunter2".to_string(), "".to_string(), "hunter2-long".to_string()];
        assert_eq!(
            mask_secrets("a hunter2 b hunter2-long", &s),
            format!("a {MASK} b {MASK}")
        );
        assert_eq!(normalize_log("pw=10.0.0.1", &["10.0.0.1".into()]), format!("pw={MASK}"));
    }
}
