//! How a podSpecOverlay fragment merges into a PodSpec (as JSON): used by pipeline validation
//! (is the fragment a valid PodSpec?) and by pod rendering.

/// Merge a podSpecOverlay fragment into a PodSpec (as JSON): mappings merge recursively;
/// `containers`, `initContainers` and `volumes` merge by `name` (unknown names are appended);
/// other lists and scalars are replaced.
pub fn merge_overlay(base: &mut serde_json::Value, overlay: &serde_json::Value) {
    use serde_json::Value as J;
    match (base, overlay) {
        (J::Object(b), J::Object(o)) => {
            for (k, ov) in o {
                let by_name = matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "volumes" | "ephemeralContainers"
                );
                match b.get_mut(k) {
                    Some(J::Array(items)) if by_name && ov.is_array() => {
                        for oi in ov.as_array().into_iter().flatten() {
                            let name = oi.get("name").and_then(J::as_str);
                            match items
                                .iter_mut()
                                .find(|i| name.is_some() && i.get("name").and_then(J::as_str) == name)
                            {
                                Some(existing) => merge_overlay(existing, oi),
                                None => items.push(oi.clone()),
                            }
                        }
                    }
                    Some(bv) if bv.is_object() && ov.is_object() => merge_overlay(bv, ov),
                    _ => {
                        b.insert(k.clone(), ov.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}
