//! Merging a cluster's entry into a user's kubeconfig and taking it out again, as `kind create
//! cluster` and `kind delete cluster` do: the cluster, user and context named `name` are added
//! (replacing same-named ones) and made current; removing them restores the previous current
//! context if ours is still current. Everything else in the file is kept as it is.
//!
//! Pure: callers read and write the file (as JSON values; YAML on disk).

use serde_json::{Map, Value, json};

/// The three lists of a kubeconfig that hold named entries.
const LISTS: [&str; 3] = ["clusters", "users", "contexts"];

/// What merging did, for taking it out again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The name of the cluster, user and context added.
    pub name: String,
    /// The current context before the merge (`None`: there was none).
    pub previous_context: Option<String>,
}

/// An error in the user's kubeconfig: it is not a mapping, or a list is not a list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the kubeconfig {0}")]
pub struct KubeconfigShapeError(String);

fn entries<'a>(doc: &'a mut Map<String, Value>, list: &str) -> Result<&'a mut Vec<Value>, KubeconfigShapeError> {
    let v = doc.entry(list).or_insert_with(|| json!([]));
    if v.is_null() {
        *v = json!([]);
    }
    v.as_array_mut()
        .ok_or_else(|| KubeconfigShapeError(format!("has `{list}` that is not a list")))
}

fn root(user: &mut Value) -> Result<&mut Map<String, Value>, KubeconfigShapeError> {
    if user.is_null() {
        *user = json!({});
    }
    user.as_object_mut()
        .ok_or_else(|| KubeconfigShapeError("is not a mapping".to_owned()))
}

/// Adds the entries of `ours` (a kubeconfig with one cluster, user and context, all named
/// `name`) to `user` (null for a missing or empty file) and makes the context current.
pub fn merge(user: &mut Value, ours: &Value, name: &str) -> Result<Merged, KubeconfigShapeError> {
    let doc = root(user)?;
    doc.entry("apiVersion").or_insert_with(|| json!("v1"));
    doc.entry("kind").or_insert_with(|| json!("Config"));
    for list in LISTS {
        let add: Vec<Value> = ours[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["name"] == name)
            .cloned()
            .collect();
        let items = entries(doc, list)?;
        items.retain(|e| e["name"] != name);
        items.extend(add);
    }
    let previous_context = doc
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && *c != name)
        .map(str::to_owned);
    doc.insert("current-context".to_owned(), json!(name));
    Ok(Merged {
        name: name.to_owned(),
        previous_context,
    })
}

/// Takes the entries `merged` added out of `user`; when its context is still current, the
/// previous one becomes current again (or none, if that one is gone too).
pub fn remove(user: &mut Value, merged: &Merged) -> Result<(), KubeconfigShapeError> {
    let doc = root(user)?;
    for list in LISTS {
        entries(doc, list)?.retain(|e| e["name"] != merged.name.as_str());
    }
    if doc.get("current-context").and_then(Value::as_str) == Some(merged.name.as_str()) {
        let back = merged.previous_context.as_ref().filter(|prev| {
            doc.get("contexts")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == prev.as_str()))
        });
        let value = back.map_or_else(|| json!(""), |p| json!(p));
        doc.insert("current-context".to_owned(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": "Q0E="}}],
            "users": [{"name": name, "user": {"token": "t"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        })
    }

    fn kind_user() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kind-kind", "cluster": {"server": "https://127.0.0.1:2"}}],
            "users": [{"name": "kind-kind", "user": {"client-certificate-data": "x"}}],
            "contexts": [{"name": "kind-kind", "context": {"cluster": "kind-kind", "user": "kind-kind"}}],
            "current-context": "kind-kind",
            "preferences": {"colors": true},
        })
    }

    #[test]
    fn merge_then_remove_gives_back_the_file() {
        let before = kind_user();
        let mut user = before.clone();
        let m = merge(&mut user, &ours("sgsim"), "sgsim").unwrap();
        assert_eq!(m.previous_context.as_deref(), Some("kind-kind"));
        assert_eq!(user["current-context"], "sgsim");
        for list in LISTS {
            assert_eq!(user[list].as_array().unwrap().len(), 2, "{list}");
        }
        assert_eq!(user["preferences"], json!({"colors": true}));
        remove(&mut user, &m).unwrap();
        assert_eq!(user, before);
    }

    #[test]
    fn merge_into_nothing_and_remove_leaves_no_context() {
        let mut user = Value::Null;
        let m = merge(&mut user, &ours("sgsim"), "sgsim").unwrap();
        assert_eq!(m.previous_context, None);
        assert_eq!(user["kind"], "Config");
        remove(&mut user, &m).unwrap();
        assert_eq!(user["current-context"], "");
        for list in LISTS {
            assert_eq!(user[list], json!([]), "{list}");
        }
    }

    #[test]
    fn merging_twice_replaces_and_a_context_switched_away_stays() {
        let mut user = kind_user();
        merge(&mut user, &ours("sgsim"), "sgsim").unwrap();
        let m = merge(&mut user, &ours("sgsim"), "sgsim").unwrap();
        assert_eq!(user["clusters"].as_array().unwrap().len(), 2);
        // The user switched back to kind meanwhile: removing ours does not touch that.
        user["current-context"] = json!("kind-kind");
        remove(&mut user, &m).unwrap();
        assert_eq!(user["current-context"], "kind-kind");
        assert_eq!(user["clusters"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_file_of_the_wrong_shape_is_an_error_not_a_panic() {
        assert!(merge(&mut json!([1, 2]), &ours("s"), "s").is_err());
        assert!(merge(&mut json!({"clusters": "x"}), &ours("s"), "s").is_err());
        let mut null_lists = json!({"clusters": null, "users": null, "contexts": null});
        assert!(merge(&mut null_lists, &ours("s"), "s").is_ok());
    }
}
