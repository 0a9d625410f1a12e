//! Just enough of Kubernetes' protobuf encoding to accept the bodies kubectl's typed clients send
//! with `Content-Type: application/vnd.kubernetes.protobuf` (`kubectl create namespace`,
//! `create configmap`, `create secret`, `create serviceaccount`): the `k8s\0` + `runtime.Unknown`
//! envelope and, inside it, Namespace, ConfigMap, Secret and ServiceAccount, turned into the JSON
//! object the rest of the server handles. Field numbers are those of the published
//! `k8s.io/api/core/v1` and `k8s.io/apimachinery/pkg/apis/meta/v1` protobuf schemas. Other kinds
//! (and fields not listed here) are not decoded: the caller answers 415 for them, and client-go
//! retries in JSON.

use serde_json::{Map, Value, json};

/// Media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\x00";

/// One field of a protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, in order; `None` on malformed input.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            5 => {
                pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                Field::Fixed
            }
            _ => return None,
        };
        out.push((num, f));
    }
    Some(out)
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// A map entry (`key` = 1, `value` = 2) as key and raw value bytes.
fn entry(b: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut k = String::new();
    let mut v = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Some((k, v))
}

fn string_map(target: &mut Map<String, Value>, key: &str, b: &[u8]) -> Option<()> {
    let (k, v) = entry(b)?;
    let m = target.entry(key).or_insert_with(|| json!({}));
    if let Value::Object(m) = m {
        m.insert(k, Value::String(text(&v)?));
    }
    Some(())
}

/// Bytes map values are base64 in JSON.
fn bytes_map(target: &mut Map<String, Value>, key: &str, b: &[u8]) -> Option<()> {
    let (k, v) = entry(b)?;
    let m = target.entry(key).or_insert_with(|| json!({}));
    if let Value::Object(m) = m {
        m.insert(k, Value::String(sgsim_core::base64::encode(&v)));
    }
    Some(())
}

fn push_string(target: &mut Map<String, Value>, key: &str, b: &[u8]) -> Option<()> {
    let s = text(b)?;
    let list = target.entry(key).or_insert_with(|| json!([]));
    if let Value::Array(l) = list {
        l.push(Value::String(s));
    }
    Some(())
}

/// ObjectMeta: name 1, generateName 2, namespace 3, labels 11, annotations 12, finalizers 14.
fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        // Go's protobuf encoder writes empty strings too; JSON would omit them.
        if matches!(f, Field::Bytes(x) if x.is_empty()) && matches!(n, 1..=3) {
            continue;
        }
        match (n, f) {
            (1, Field::Bytes(x)) => {
                m.insert("name".into(), Value::String(text(x)?));
            }
            (2, Field::Bytes(x)) => {
                m.insert("generateName".into(), Value::String(text(x)?));
            }
            (3, Field::Bytes(x)) => {
                m.insert("namespace".into(), Value::String(text(x)?));
            }
            (11, Field::Bytes(x)) => string_map(&mut m, "labels", x)?,
            (12, Field::Bytes(x)) => string_map(&mut m, "annotations", x)?,
            (14, Field::Bytes(x)) => push_string(&mut m, "finalizers", x)?,
            _ => {}
        }
    }
    Some(Value::Object(m))
}

/// LocalObjectReference / ObjectReference: name is field 1 in LocalObjectReference and 3 in
/// ObjectReference.
fn reference(b: &[u8], name_field: u64) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        if let (true, Field::Bytes(x)) = (n == name_field, f) {
            m.insert("name".into(), Value::String(text(x)?));
        }
    }
    Some(Value::Object(m))
}

fn object(kind: &str, raw: &[u8]) -> Option<Value> {
    let mut o = Map::new();
    o.insert("apiVersion".into(), json!("v1"));
    o.insert("kind".into(), json!(kind));
    for (n, f) in fields(raw)? {
        let Field::Bytes(x) = f else {
            match (kind, n, f) {
                ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                    o.insert("immutable".into(), json!(v != 0));
                }
                ("ServiceAccount", 4, Field::Varint(v)) => {
                    o.insert("automountServiceAccountToken".into(), json!(v != 0));
                }
                _ => {}
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            ("Namespace", 2) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(x)? {
                    if let (1, Field::Bytes(fx)) = (sn, sf) {
                        push_string(&mut spec, "finalizers", fx)?;
                    }
                }
                o.insert("spec".into(), Value::Object(spec));
            }
            ("ConfigMap", 2) => string_map(&mut o, "data", x)?,
            ("ConfigMap", 3) => bytes_map(&mut o, "binaryData", x)?,
            ("Secret", 2) => bytes_map(&mut o, "data", x)?,
            ("Secret", 3) if !x.is_empty() => {
                o.insert("type".into(), Value::String(text(x)?));
            }
            ("Secret", 4) => string_map(&mut o, "stringData", x)?,
            ("ServiceAccount", 2) => {
                let r = reference(x, 3)?;
                let l = o.entry("secrets").or_insert_with(|| json!([]));
                if let Value::Array(l) = l {
                    l.push(r);
                }
            }
            ("ServiceAccount", 3) => {
                let r = reference(x, 1)?;
                let l = o.entry("imagePullSecrets").or_insert_with(|| json!([]));
                if let Value::Array(l) = l {
                    l.push(r);
                }
            }
            _ => {}
        }
    }
    Some(Value::Object(o))
}

/// Decode a protobuf request body of one of the supported core/v1 kinds into its JSON object;
/// `None` for anything else (other kinds, other groups, malformed bytes).
pub fn decode(body: &[u8]) -> Option<Value> {
    let env = body.strip_prefix(MAGIC)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    for (n, f) in fields(env)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            (3, Field::Bytes(x)) => encoding = text(x)?,
            _ => {}
        }
    }
    if api_version != "v1" || !encoding.is_empty() {
        return None;
    }
    match kind.as_str() {
        "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount" => object(&kind, raw),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(num: u64, wire: u64) -> Vec<u8> {
        enc_varint((num << 3) | wire)
    }

    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(num: u64, data: &[u8]) -> Vec<u8> {
        let mut out = key(num, 2);
        out.extend(enc_varint(data.len() as u64));
        out.extend_from_slice(data);
        out
    }

    fn map_entry(num: u64, k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = bytes(1, k.as_bytes());
        e.extend(bytes(2, v));
        bytes(num, &e)
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = bytes(1, b"v1");
        tm.extend(bytes(2, kind.as_bytes()));
        let mut out = MAGIC.to_vec();
        out.extend(bytes(1, &tm));
        out.extend(bytes(2, raw));
        out.extend(bytes(4, b"application/vnd.kubernetes.protobuf"));
        out
    }

    #[test]
    fn namespace() {
        let mut meta = bytes(1, b"team-a");
        meta.extend(map_entry(11, "env", b"ci"));
        let raw = [bytes(1, &meta), bytes(2, &[]), bytes(3, &[])].concat();
        let v = decode(&envelope("Namespace", &raw)).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "ci"}}, "spec": {}})
        );
    }

    #[test]
    fn configmap_and_secret() {
        let meta = bytes(1, b"settings");
        let raw = [
            bytes(1, &meta),
            map_entry(2, "a", b"1"),
            map_entry(2, "b", b"2"),
            key(4, 0),
            vec![1],
        ]
        .concat();
        let v = decode(&envelope("ConfigMap", &raw)).expect("decodes");
        assert_eq!(v["data"], json!({"a": "1", "b": "2"}));
        assert_eq!(v["immutable"], json!(true));

        let raw = [
            bytes(1, &bytes(1, b"creds")),
            map_entry(2, "token", b"abc"),
            bytes(3, b"Opaque"),
        ]
        .concat();
        let v = decode(&envelope("Secret", &raw)).expect("decodes");
        assert_eq!(v["data"], json!({"token": "YWJj"}));
        assert_eq!(v["type"], json!("Opaque"));
        assert_eq!(v["metadata"]["name"], json!("creds"));
    }

    #[test]
    fn service_account() {
        let raw = [
            bytes(1, &bytes(1, b"builder")),
            bytes(3, &bytes(1, b"regcred")),
            key(4, 0),
            vec![0],
        ]
        .concat();
        let v = decode(&envelope("ServiceAccount", &raw)).expect("decodes");
        assert_eq!(v["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(v["automountServiceAccountToken"], json!(false));
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        assert_eq!(decode(&envelope("Pod", &bytes(1, &bytes(1, b"p")))), None);
        assert_eq!(decode(b"{\"kind\":\"Namespace\"}"), None);
        assert_eq!(decode(b"k8s\x00\x0a\xff\xff\xff"), None);
        assert_eq!(decode(b"k8s\x00\x0a\x80"), None);
        // Truncated length-delimited field.
        let mut e = envelope("Namespace", &bytes(1, &bytes(1, b"x")));
        e.truncate(e.len() - 3);
        assert_eq!(decode(&e), None);
        // Arbitrary bytes never panic.
        for n in 0..=255u8 {
            let _ = decode(&[b'k', b'8', b's', 0, n, n.wrapping_mul(7), 0x80, n]);
        }
    }
}
