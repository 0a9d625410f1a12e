//! Label and field selectors, as `labelSelector`/`fieldSelector` query parameters spell them.

use serde_json::Value;

use super::resources::ResourceDef;
use super::status::ApiError;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Splits at top-level commas (not inside parentheses).
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| ApiError::BadRequest(format!("unable to parse requirement: {part:?}"));
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let req = if let Some(key) = p.strip_prefix('!') {
                LabelReq::NotExists(key.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("!=") {
                LabelReq::NotEq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("==") {
                LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once('=') {
                LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some(i) = p.find(" notin ").or_else(|| p.find(" notin(")) {
                let set = parse_set(&p[i + 6..]).ok_or_else(|| bad(p))?;
                LabelReq::NotIn(p[..i].trim().to_owned(), set)
            } else if let Some(i) = p.find(" in ").or_else(|| p.find(" in(")) {
                let set = parse_set(&p[i + 3..]).ok_or_else(|| bad(p))?;
                LabelReq::In(p[..i].trim().to_owned(), set)
            } else if p.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
                return Err(bad(p));
            } else {
                LabelReq::Exists(p.to_owned())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        // Not `Value::pointer`: it allocates for every segment, and this runs for every object of
        // every list and every watch event.
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            LabelReq::NotIn(k, set) => get(k).is_none_or(|x| set.iter().all(|s| s != x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector (all terms must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `a=b,c!=d` and checks every field is supported by `def`.
    pub fn parse(s: &str, def: &ResourceDef) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{s}'; can't understand '{p}'"
                )));
            };
            let field = field.trim();
            let supported = field == "metadata.name"
                || (field == "metadata.namespace" && def.namespaced)
                || def.field_labels.contains(&field);
            if !supported {
                return Err(ApiError::BadRequest(format!("field label not supported: {field}")));
            }
            let stored_field = if def.is_view() {
                super::convert::events_v1_field(field)
            } else {
                field.to_owned()
            };
            terms.push((stored_field, eq, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// Whether the object satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, eq, value)| (field_value(obj, field) == value.as_str()) == *eq)
    }
}

/// The string value Kubernetes' field-set functions give a field (missing → empty).
fn field_value<'a>(obj: &'a Value, field: &str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    let path = match field {
        "source" => "source.component",
        "status.podIPs" => "status.podIP",
        f => f,
    };
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => {
                return match field {
                    "spec.hostNetwork" | "spec.unschedulable" => Cow::Borrowed("false"),
                    _ => Cow::Borrowed(""),
                };
            }
        }
    }
    match cur {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels() {
        let o = json!({"metadata": {"labels": {"app": "a", "tier": "web"}}});
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(t("app=a"));
        assert!(t("app==a,tier!=db"));
        assert!(!t("app!=a"));
        assert!(t("tier in (web, db)"));
        assert!(!t("tier notin (web)"));
        assert!(t("app,!missing"));
        assert!(!t("missing"));
        assert!(t("missing notin (x)"));
    }
}
