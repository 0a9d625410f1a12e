//! Helpers to read a [`Node`] tree strictly or tolerantly while collecting diagnostics, and the
//! resolution of `<+input>` and `<+secrets.getValue("x")>` expressions.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Severity, SourceFile, suggest};
use crate::yaml::{Node, Pos, Value};

/// Values for expressions, shared by every file of a load.
#[derive(Clone, Debug, Default)]
pub(crate) struct Resolver {
    /// Runtime inputs by field path.
    pub inputs: BTreeMap<String, Node>,
    /// Harness secrets by identifier.
    pub secrets: BTreeMap<String, String>,
    /// Bare pipeline: unknown secrets get a generated value and runtime inputs without a value an
    /// inferred one or none (with a warning) instead of an error.
    pub infer_secrets: bool,
    /// Secret values used (for masking), in first-use order.
    pub used_secrets: Vec<String>,
    /// Input keys used.
    pub used_inputs: std::collections::BTreeSet<String>,
    /// Values of the other expressions known before the pod exists, by expression without
    /// `<+` `>`: the scenario's `fixtures.expressions`, the pipeline's and the step group's stage's
    /// variables, `env.variables`, the pipeline's and stage's identifier and name
    /// ([`Resolver::set_known`]). The product resolves these before it creates the pod.
    pub known: BTreeMap<String, String>,
    /// Validation only (a step group other than the one that runs): a runtime input without a
    /// value and an unknown secret are no error (they are asked for, or exist, when that group
    /// runs), and a required field given as `<+input>` is present.
    pub validate_only: bool,
}

/// What an expression with no value in sgsim becomes in a field ([`Ctx::expand`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fallback<'a> {
    /// The field is this value when it is exactly one such expression; an expression inside a
    /// longer value becomes its last name segment.
    Whole(&'a str),
    /// Each such expression becomes its last name segment (`<+pipeline.variables.plugin_image>`
    /// → `plugin-image`).
    LastSegment,
    /// The field is unset.
    Unset,
}

impl Resolver {
    /// Sets [`Resolver::known`]: `pinned` (fixtures.expressions) wins over the pipeline's own
    /// values; variable values that hold expressions are expanded (8 levels at most).
    pub fn set_known(
        &mut self,
        pinned: &BTreeMap<String, String>,
        pipeline: &crate::model::Pipeline,
        stage: &crate::model::StageInfo,
        env_variables: &BTreeMap<String, String>,
    ) {
        let mut known = BTreeMap::new();
        known.insert("pipeline.identifier".to_string(), pipeline.identifier.clone());
        known.insert("pipeline.name".to_string(), pipeline.name.clone());
        known.insert("stage.identifier".to_string(), stage.identifier.clone());
        known.insert("stage.name".to_string(), stage.name.clone());
        for (k, v) in &pipeline.variables {
            known.insert(format!("pipeline.variables.{k}"), v.clone());
        }
        for (k, v) in &stage.variables {
            known.insert(format!("stage.variables.{k}"), v.clone());
            known.insert(format!("pipeline.stages.{}.variables.{k}", stage.identifier), v.clone());
        }
        for (k, v) in env_variables {
            known.insert(format!("env.variables.{k}"), v.clone());
        }
        for (k, v) in pinned {
            known.insert(k.clone(), v.clone());
        }
        for _ in 0..8 {
            let snapshot = known.clone();
            let mut changed = false;
            for v in known.values_mut() {
                for e in other_expressions(v) {
                    if let Some(x) = snapshot.get(expr_inner(&e)).filter(|x| !x.contains(&e)) {
                        *v = v.replace(&e, x);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        self.known = known;
    }
}

/// `<+pipeline.variables.x>` → `pipeline.variables.x`.
pub(crate) fn expr_inner(expr: &str) -> &str {
    expr.strip_prefix("<+")
        .and_then(|e| e.strip_suffix('>'))
        .unwrap_or(expr)
        .trim()
}

/// A reading context for one file.
pub(crate) struct Ctx<'a> {
    pub file: Arc<SourceFile>,
    pub diags: &'a mut Diagnostics,
    pub res: &'a mut Resolver,
}

impl Ctx<'_> {
    pub fn err(&mut self, pos: Pos, msg: impl Into<String>) {
        let d = Diagnostic::new(Severity::Error, &self.file, pos, msg);
        self.diags.push(d);
    }
    pub fn err_help(&mut self, pos: Pos, msg: impl Into<String>, help: impl Into<String>) {
        let d = Diagnostic::new(Severity::Error, &self.file, pos, msg).with_help(help);
        self.diags.push(d);
    }
    pub fn warn(&mut self, pos: Pos, msg: impl Into<String>) {
        let d = Diagnostic::new(Severity::Warning, &self.file, pos, msg);
        self.diags.push(d);
    }

    /// `value` of field `key` (at `pos`) with every expression other than inputs and secrets
    /// replaced by its value ([`Resolver::known`]); one without a value becomes what `fallback`
    /// says, with a warning naming the fixtures.expressions key that pins it, so no expression
    /// reaches Kubernetes raw. `None` when the field ends up unset.
    pub fn expand(&mut self, value: &str, pos: Pos, key: &str, fallback: Fallback<'_>) -> Option<String> {
        let exprs = other_expressions(value);
        if exprs.is_empty() {
            return Some(value.to_string());
        }
        let whole = exprs.len() == 1 && value.trim() == exprs[0];
        let mut out = value.to_string();
        for e in exprs {
            let name = expr_inner(&e).to_string();
            if let Some(v) = self.res.known.get(&name) {
                out = out.replace(&e, &v.clone());
                continue;
            }
            let (v, shown) = match fallback {
                Fallback::Whole(f) if whole => (Some(f.to_string()), format!("`{f}`")),
                Fallback::Unset if whole => (None, "nothing (the field is unset)".to_string()),
                _ => {
                    let v = name
                        .rsplit('.')
                        .next()
                        .unwrap_or(&name)
                        .to_ascii_lowercase()
                        .replace('_', "-");
                    let shown = format!("`{v}`");
                    (Some(v), shown)
                }
            };
            self.warn(
                pos,
                format!(
                    "expression `{e}` in `{key}` has no value in sgsim; using {shown} (pin it under \
                     fixtures.expressions: `{name}: <value>`)"
                ),
            );
            match v {
                Some(v) => out = out.replace(&e, &v),
                None => return None,
            }
        }
        Some(out)
    }

    /// Require a mapping; report unknown keys (with a suggestion) and duplicates. `what` names
    /// the place in messages (e.g. `stepGroupInfra.spec`). Returns false when not a mapping.
    pub fn strict_map(&mut self, node: &Node, at: Pos, allowed: &[&str], what: &str) -> bool {
        let Some(entries) = node.as_map() else {
            if !node.is_null() {
                self.err(
                    node.pos,
                    format!("{what} must be a mapping, found {}", node.kind_name()),
                );
            } else {
                self.err(at, format!("{what} must be a mapping, found null"));
            }
            return false;
        };
        for (k, _) in entries {
            let key = k.scalar_text().unwrap_or_default();
            if !allowed.contains(&key.as_str()) {
                match suggest(&key, allowed.iter().copied()) {
                    Some(s) => self.err_help(
                        k.pos,
                        format!("unknown field `{key}` in {what}, did you mean `{s}`?"),
                        format!("valid fields: {}", allowed.join(", ")),
                    ),
                    None => self.err_help(
                        k.pos,
                        format!("unknown field `{key}` in {what}"),
                        format!("valid fields: {}", allowed.join(", ")),
                    ),
                }
            }
        }
        true
    }

    /// Resolve `<+input>` / secrets in a node (a clone is returned).
    pub fn resolve(&mut self, node: &Node, fqn: &str) -> Node {
        // Inside mappings and sequences (plugin settings, a GitClone `build`) every value is
        // resolved, with the fqn of its own path.
        match &node.value {
            Value::Map(entries) => {
                let entries = entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k.scalar_text().unwrap_or_default();
                        (k.clone(), self.resolve(v, &format!("{fqn}.{key}")))
                    })
                    .collect();
                return Node {
                    value: Value::Map(entries),
                    pos: node.pos,
                    raw: node.raw.clone(),
                };
            }
            Value::Seq(items) => {
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.resolve(v, &format!("{fqn}.{i}")))
                    .collect();
                return Node {
                    value: Value::Seq(items),
                    pos: node.pos,
                    raw: node.raw.clone(),
                };
            }
            _ => {}
        }
        let Value::Str(s) = &node.value else {
            return node.clone();
        };
        let t = s.trim();
        if t.starts_with("<+input>") {
            if let Some(v) = self.res.inputs.get(fqn) {
                let mut v = v.clone();
                self.res.used_inputs.insert(fqn.to_string());
                reposition(&mut v, node.pos);
                return self.resolve_secrets_in(v);
            }
            if let Some(def) = input_default(t) {
                return Node {
                    value: Value::Str(def),
                    pos: node.pos,
                    raw: None,
                };
            }
            if self.res.validate_only {
                return Node {
                    value: Value::Null,
                    pos: node.pos,
                    raw: None,
                };
            }
            if self.res.infer_secrets {
                // Bare pipeline: infer a value for the fields sgsim needs, leave others unset.
                let last = fqn.rsplit('.').next().unwrap_or("");
                let inferred = if fqn.contains(".stepGroupInfra.spec.") {
                    match last {
                        "namespace" => Some("default"),
                        "connectorRef" => Some("sgsim_cluster"),
                        _ => None,
                    }
                } else {
                    None
                };
                let value = match inferred {
                    Some(v) => {
                        self.warn(
                            node.pos,
                            format!("runtime input `<+input>` of `{fqn}` has no value; using `{v}`"),
                        );
                        Node {
                            value: Value::Str(v.to_string()),
                            pos: node.pos,
                            raw: None,
                        }
                    }
                    None => {
                        self.warn(
                            node.pos,
                            format!("runtime input `<+input>` of `{fqn}` has no value; treated as unset"),
                        );
                        Node {
                            value: Value::Null,
                            pos: node.pos,
                            raw: None,
                        }
                    }
                };
                // Recorded, so the bare pipeline's inferred fixtures hold it (`sgsim repro`).
                self.res.inputs.insert(fqn.to_string(), value.clone());
                self.res.used_inputs.insert(fqn.to_string());
                return value;
            }
            let known: Vec<&str> = self.res.inputs.keys().map(String::as_str).collect();
            let help = match suggest(fqn, known.iter().copied()) {
                Some(s) => format!("fixtures.inputs has `{s}`; the key must be `{fqn}`"),
                None => format!("add `\"{fqn}\": <value>` under fixtures.inputs"),
            };
            self.err_help(
                node.pos,
                format!("runtime input `<+input>` of `{fqn}` has no value"),
                help,
            );
            return Node {
                value: Value::Null,
                pos: node.pos,
                raw: None,
            };
        }
        self.resolve_secrets_in(node.clone())
    }

    fn resolve_secrets_in(&mut self, mut node: Node) -> Node {
        if let Value::Str(s) = &node.value
            && s.contains("<+secrets.getValue(")
        {
            let out = self.substitute_secrets(s, node.pos);
            node.value = Value::Str(out);
        }
        node
    }

    fn substitute_secrets(&mut self, s: &str, pos: Pos) -> String {
        let mut out = String::new();
        let mut rest = s;
        const OPEN: &str = "<+secrets.getValue(";
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            let after = &rest[i + OPEN.len()..];
            let Some(end) = after.find(")>") else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let arg = after[..end].trim().trim_matches(|c| c == '"' || c == '\'');
            let value = match self.res.secrets.get(arg) {
                Some(v) => v.clone(),
                None if self.res.validate_only => format!("sgsim-secret-{arg}"),
                None if self.res.infer_secrets => {
                    let v = format!("sgsim-secret-{arg}");
                    self.warn(
                        pos,
                        format!("harness secret `{arg}` is not defined; using a generated value"),
                    );
                    self.res.secrets.insert(arg.to_string(), v.clone());
                    v
                }
                None => {
                    let known: Vec<&str> = self.res.secrets.keys().map(String::as_str).collect();
                    let help = match suggest(arg, known.iter().copied()) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => "add it under fixtures.harnessSecrets".to_string(),
                    };
                    self.err_help(
                        pos,
                        format!("harness secret `{arg}` is not defined in fixtures.harnessSecrets"),
                        help,
                    );
                    String::new()
                }
            };
            if !value.is_empty() && !self.res.used_secrets.contains(&value) {
                self.res.used_secrets.push(value.clone());
            }
            out.push_str(&value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// A resolved scalar as text; errors when it is a sequence/mapping. `None` when absent/null.
    pub fn scalar(&mut self, node: &Node, fqn: &str, what: &str) -> Option<String> {
        let n = self.resolve(node, fqn);
        match &n.value {
            Value::Null => None,
            Value::Seq(_) | Value::Map(_) => {
                self.err(n.pos, format!("{what} must be a scalar, found {}", n.kind_name()));
                None
            }
            _ => n.scalar_text(),
        }
    }

    /// Field `key` of mapping `map` as resolved text.
    pub fn str_field(&mut self, map: &Node, key: &str, fqn: &str) -> Option<String> {
        let v = map.get(key)?;
        self.scalar(v, &format!("{fqn}.{key}"), &format!("`{key}`"))
    }

    /// Required string field: error at `at` when missing or empty.
    pub fn req_str(&mut self, map: &Node, at: Pos, key: &str, fqn: &str, what: &str) -> Option<String> {
        match map.entry(key) {
            None => {
                self.err(at, format!("missing required field `{key}` in {what}"));
                None
            }
            Some((k, v)) => {
                let s = self.scalar(v, &format!("{fqn}.{key}"), &format!("`{key}`"));
                if s.is_none()
                    && self.res.validate_only
                    && v.scalar_text().is_some_and(|t| t.trim().starts_with("<+input>"))
                {
                    // A runtime input: given when that step group runs.
                    return None;
                }
                match s {
                    Some(s) if !s.trim().is_empty() => Some(s),
                    Some(_) | None => {
                        if !self.diags.items.iter().any(|d| d.line == v.pos.line && d.is_error()) {
                            self.err(k.pos, format!("required field `{key}` in {what} is empty"));
                        }
                        None
                    }
                }
            }
        }
    }

    /// Boolean field (accepts true/false and the strings "true"/"false").
    pub fn bool_field(&mut self, map: &Node, key: &str, fqn: &str) -> Option<bool> {
        let v = map.get(key)?;
        let n = self.resolve(v, &format!("{fqn}.{key}"));
        match &n.value {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            Value::Str(s) if s.contains("<+") => {
                self.warn(
                    n.pos,
                    format!("expression `{s}` in `{key}` is not supported by sgsim; treated as unset"),
                );
                None
            }
            _ => {
                self.err(n.pos, format!("`{key}` must be a boolean, found {}", n.kind_name()));
                None
            }
        }
    }

    /// Integer field (accepts numeric strings).
    pub fn int_field(&mut self, map: &Node, key: &str, fqn: &str) -> Option<i64> {
        let v = map.get(key)?;
        let n = self.resolve(v, &format!("{fqn}.{key}"));
        match &n.value {
            Value::Null => None,
            Value::Int(i) => match i64::try_from(*i) {
                Ok(i) => Some(i),
                Err(_) => {
                    self.err(n.pos, format!("`{key}` is out of range"));
                    None
                }
            },
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.err(n.pos, format!("`{key}` must be an integer, found `{s}`"));
                    None
                }
            },
            _ => {
                self.err(n.pos, format!("`{key}` must be an integer, found {}", n.kind_name()));
                None
            }
        }
    }

    /// A list of strings (a single scalar is accepted as a one-element list).
    pub fn str_list(&mut self, map: &Node, key: &str, fqn: &str) -> Vec<String> {
        let Some(v) = map.get(key) else { return Vec::new() };
        let fq = format!("{fqn}.{key}");
        let n = self.resolve(v, &fq);
        match &n.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    if let Some(s) = self.scalar(it, &format!("{fq}.{i}"), &format!("`{key}` item")) {
                        out.push(s);
                    }
                }
                out
            }
            Value::Map(_) => {
                self.err(n.pos, format!("`{key}` must be a list, found a mapping"));
                Vec::new()
            }
            _ => n.scalar_text().into_iter().collect(),
        }
    }

    /// A string→string mapping, in source order.
    pub fn str_map(&mut self, map: &Node, key: &str, fqn: &str) -> Vec<(String, String)> {
        let Some(v) = map.get(key) else { return Vec::new() };
        let fq = format!("{fqn}.{key}");
        let n = self.resolve(v, &fq);
        match &n.value {
            Value::Null => Vec::new(),
            Value::Map(entries) => {
                let mut out: Vec<(String, String)> = Vec::new();
                for (k, val) in entries {
                    let Some(kt) = k.scalar_text() else {
                        self.err(k.pos, format!("keys of `{key}` must be scalars"));
                        continue;
                    };
                    let s = self
                        .scalar(val, &format!("{fq}.{kt}"), &format!("`{key}.{kt}`"))
                        .unwrap_or_default();
                    out.push((kt, s));
                }
                out
            }
            _ => {
                self.err(n.pos, format!("`{key}` must be a mapping, found {}", n.kind_name()));
                Vec::new()
            }
        }
    }
}

/// `<+input>.default(x)` → `x` (quotes stripped).
fn input_default(expr: &str) -> Option<String> {
    let i = expr.find(".default(")?;
    let rest = &expr[i + ".default(".len()..];
    let mut depth = 0i32;
    let mut end = None;
    for (j, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => {
                end = Some(j);
                break;
            }
            ')' => depth -= 1,
            _ => {}
        }
    }
    let v = rest[..end?].trim();
    Some(v.trim_matches(|c| c == '"' || c == '\'').to_string())
}

fn reposition(n: &mut Node, pos: Pos) {
    n.pos = pos;
    match &mut n.value {
        Value::Seq(items) => items.iter_mut().for_each(|i| reposition(i, pos)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            reposition(k, pos);
            reposition(v, pos);
        }),
        _ => {}
    }
}

/// Every `<+...>` expression in `s` other than inputs and secrets (for "unsupported" notes).
pub(crate) fn other_expressions(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("<+") {
        let after = &rest[i..];
        let end = after.find('>').map(|e| {
            // expressions may contain `>` inside parentheses/quotes; take the first `>` that
            // closes at depth 0
            let mut depth = 0i32;
            for (j, c) in after.char_indices().skip(2) {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    '>' if depth <= 0 => return j,
                    _ => {}
                }
            }
            e
        });
        let Some(end) = end else { break };
        let expr = &after[..=end];
        if !expr.starts_with("<+input>") && !expr.starts_with("<+secrets.") {
            out.push(expr.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn defaults_and_expressions() {
        assert_eq!(input_default("<+input>.default(ns-1)"), Some("ns-1".into()));
        assert_eq!(
            input_default("<+input>.default('a').allowedValues(a,b)"),
            Some("a".into())
        );
        assert_eq!(input_default("<+input>"), None);
        assert_eq!(
            other_expressions("x <+env.name> y <+input> <+pipeline.variables.a>"),
            vec!["<+env.name>".to_string(), "<+pipeline.variables.a>".to_string()]
        );
    }
}
