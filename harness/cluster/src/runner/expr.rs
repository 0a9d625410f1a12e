//! Harness expressions the delegate resolves at run time (`<+pipeline.name>`,
//! `<+steps.x.output.outputVariables.y>`, ...) and `when.condition` evaluation.
//!
//! `<+input>` and `<+secrets.getValue("x")>` are resolved by sgsim-core when the scenario loads; what
//! is left here is what only exists during a run. Anything else is reported by name as unsupported.
//!
//! Conditions are the small JEXL subset real pipelines use: `true`/`false`, `==`, `!=`, `<`, `<=`,
//! `>`, `>=`, `&&`, `||`, `!`, parentheses, string/number/boolean/null literals and expressions.

use std::collections::BTreeMap;

/// Why an expression could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// sgsim does not know this expression.
    #[error("expression `<+{0}>` is not supported by sgsim; give its value under fixtures.expressions")]
    Unsupported(String),
    /// A known kind of expression without a value in this run.
    #[error("expression `<+{expr}>` could not be resolved: {why}")]
    Unresolved {
        /// The expression (without `<+` and `>`).
        expr: String,
        /// Why.
        why: String,
    },
    /// `<+` without its closing `>`.
    #[error("expression starting at `{0}` is not closed with `>`")]
    Unclosed(String),
    /// A condition sgsim cannot evaluate.
    #[error("condition `{condition}` cannot be evaluated: {why}")]
    Condition {
        /// The condition as written.
        condition: String,
        /// Why.
        why: String,
    },
}

/// A step that has run (for output-variable expressions).
#[derive(Clone, Debug, Default)]
pub struct StepValues {
    /// Harness FQN of the step (`pipeline.stages.s.spec.execution.steps.g.steps.id`).
    pub fqn: String,
    /// Exported output variables.
    pub outputs: BTreeMap<String, String>,
}

/// Values known during a run.
#[derive(Clone, Debug, Default)]
pub struct ExprEnv {
    /// `pipeline.name`.
    pub pipeline_name: String,
    /// `pipeline.identifier`.
    pub pipeline_identifier: String,
    /// `pipeline.sequenceId`.
    pub sequence_id: String,
    /// `pipeline.executionId`.
    pub execution_id: String,
    /// `stage.name`.
    pub stage_name: String,
    /// `stage.identifier`.
    pub stage_identifier: String,
    /// `pipeline.variables`.
    pub pipeline_variables: BTreeMap<String, String>,
    /// `env.variables` (from the scenario's fixtures).
    pub env_variables: BTreeMap<String, String>,
    /// `stage.variables`.
    pub stage_variables: BTreeMap<String, String>,
    /// Values the scenario gives for other expressions (`fixtures.expressions`), by expression.
    pub fixed: BTreeMap<String, String>,
    /// Steps that have run, by identifier.
    pub steps: BTreeMap<String, StepValues>,
    /// Every step's spec as the pipeline gives it (`<+input>` resolved), by FQN, for
    /// `<+execution.steps.g.steps.x.spec.field>` and the other step-path forms.
    pub specs: Vec<(String, serde_json::Value)>,
    /// Every step's name, by FQN (`<+execution.steps.g.steps.x.name>`).
    pub names: BTreeMap<String, String>,
}

const OUTPUT_INFIX: &str = ".output.outputVariables.";

impl ExprEnv {
    /// The value of one expression (`inner` is the text between `<+` and `>`).
    pub fn lookup(&self, inner: &str) -> Result<String, ExprError> {
        self.lookup_at(inner, 0)
    }

    /// [`Self::lookup`] inside `depth` variable values (cycle guard).
    fn lookup_at(&self, inner: &str, depth: u8) -> Result<String, ExprError> {
        let e = inner.trim();
        let simple = match e {
            "pipeline.name" => Some(&self.pipeline_name),
            "pipeline.identifier" => Some(&self.pipeline_identifier),
            "pipeline.sequenceId" => Some(&self.sequence_id),
            "pipeline.executionId" => Some(&self.execution_id),
            "stage.name" => Some(&self.stage_name),
            "stage.identifier" => Some(&self.stage_identifier),
            _ => None,
        };
        if let Some(v) = simple {
            return Ok(v.clone());
        }
        if let Some(v) = self.fixed.get(e) {
            return Ok(v.clone());
        }
        let unresolved = |why: String| ExprError::Unresolved {
            expr: e.to_string(),
            why,
        };
        let scopes = [("pipeline", &self.pipeline_variables), ("stage", &self.stage_variables)];
        for (scope, vars) in scopes {
            if let Some(name) = e.strip_prefix(scope).and_then(|r| r.strip_prefix(".variables.")) {
                let v = vars
                    .get(name)
                    .cloned()
                    .ok_or_else(|| unresolved(format!("the {scope} has no variable `{name}`")))?;
                return self.nested(e, v, depth);
            }
        }
        if let Some(name) = e.strip_prefix("env.variables.") {
            return self
                .env_variables
                .get(name)
                .cloned()
                .ok_or_else(|| unresolved(format!("fixtures.envVariables has no `{name}`")));
        }
        if let Some(r) = self.spec_lookup(e) {
            return r;
        }
        if let Some((path, var)) = e.rsplit_once(OUTPUT_INFIX)
            && is_name(var)
        {
            let step = if let Some(id) = path.strip_prefix("steps.").filter(|id| is_name(id)) {
                self.steps.get(id)
            } else if let Some(rest) = path.strip_prefix("execution.steps.") {
                let suffix = format!(".spec.execution.steps.{rest}");
                self.steps.values().find(|s| {
                    s.fqn.ends_with(&suffix)
                        && s.fqn
                            .starts_with(&format!("pipeline.stages.{}.", self.stage_identifier))
                })
            } else if path.starts_with("pipeline.stages.") {
                self.steps.values().find(|s| s.fqn == path)
            } else {
                return Err(ExprError::Unsupported(e.to_string()));
            };
            let Some(step) = step else {
                return Err(unresolved(format!("no step `{path}` has run before this point")));
            };
            return step
                .outputs
                .get(var)
                .cloned()
                .ok_or_else(|| unresolved(format!("step `{path}` exported no output variable `{var}`")));
        }
        Err(ExprError::Unsupported(e.to_string()))
    }

    /// A variable's value, with the expressions it holds resolved (`value: r-<+pipeline.variables.x>`).
    fn nested(&self, e: &str, v: String, depth: u8) -> Result<String, ExprError> {
        if !v.contains("<+") {
            return Ok(v);
        }
        if depth >= 8 {
            return Err(ExprError::Unresolved {
                expr: e.to_string(),
                why: "variables refer to each other in a cycle".into(),
            });
        }
        self.render_at(&v, depth + 1)
    }

    /// A step's `identifier`, `name` or spec field: `<step path>.spec.<field>[.<field>...]`, where the step path is the
    /// step's FQN, `steps.<id>` or `execution.steps.<group>.steps.<id>` (in this stage). `None`
    /// when `e` names no step of the group this way.
    fn spec_lookup(&self, e: &str) -> Option<Result<String, ExprError>> {
        let stage_prefix = format!("pipeline.stages.{}.spec.", self.stage_identifier);
        for (fqn, spec) in &self.specs {
            let id = fqn.rsplit('.').next().unwrap_or_default();
            let paths = [
                Some(fqn.clone()),
                Some(format!("steps.{id}")),
                fqn.strip_prefix(&stage_prefix).map(str::to_string),
            ];
            for path in paths.into_iter().flatten() {
                match e.strip_prefix(&path) {
                    Some(".identifier") => return Some(Ok(id.to_string())),
                    Some(".name") => {
                        let name = self.names.get(fqn).cloned().unwrap_or_else(|| id.to_string());
                        return Some(Ok(name));
                    }
                    _ => {}
                }
                let Some(field) = e.strip_prefix(&format!("{path}.spec.")) else {
                    continue;
                };
                let value = field.split('.').try_fold(spec, |v, k| v.get(k));
                let text = match value {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Null) | None => None,
                    Some(v) => Some(v.to_string()),
                };
                return Some(text.ok_or_else(|| ExprError::Unresolved {
                    expr: e.to_string(),
                    why: format!("step `{path}` has no value for spec field `{field}`"),
                }));
            }
        }
        if (e.starts_with("steps.") || e.starts_with("execution.steps."))
            && !e.contains(OUTPUT_INFIX)
            && let Some((path, _)) = e.split_once(".spec.")
        {
            return Some(Err(ExprError::Unresolved {
                expr: e.to_string(),
                why: format!("no step `{path}` in this step group"),
            }));
        }
        None
    }

    /// `s` with every `<+...>` expression replaced by its value.
    pub fn render(&self, s: &str) -> Result<String, ExprError> {
        self.render_at(s, 0)
    }

    fn render_at(&self, s: &str, depth: u8) -> Result<String, ExprError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("<+") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = expr_end(after).ok_or_else(|| ExprError::Unclosed(rest[i..].chars().take(40).collect()))?;
            out.push_str(&self.lookup_at(&after[..end], depth)?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Evaluates a `when.condition`.
    pub fn condition(&self, condition: &str) -> Result<bool, ExprError> {
        let cerr = |why: String| ExprError::Condition {
            condition: condition.to_string(),
            why,
        };
        let tokens = tokenize(condition).map_err(cerr)?;
        let mut p = Parser {
            toks: &tokens,
            at: 0,
            env: self,
        };
        let v = p.or().map_err(|e| match e {
            PErr::Expr(x) => x,
            PErr::Syntax(why) => cerr(why),
        })?;
        if p.at != tokens.len() {
            return Err(cerr(format!("unexpected `{}`", tokens[p.at].show())));
        }
        Ok(v.truthy())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Index of the `>` closing an expression body (quotes and parentheses skipped).
fn expr_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, '>') if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Expr(String),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Op(&'static str),
    LParen,
    RParen,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Expr(e) => format!("<+{e}>"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Num(n) => n.to_string(),
            Tok::Bool(b) => b.to_string(),
            Tok::Null => "null".into(),
            Tok::Op(o) => (*o).to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if let Some(body) = rest.strip_prefix("<+") {
            let end = expr_end(body).ok_or_else(|| "an expression is not closed with `>`".to_string())?;
            out.push(Tok::Expr(body[..end].to_string()));
            i += 2 + end + 1;
        } else if c == '"' || c == '\'' {
            let close = rest[1..]
                .find(c)
                .ok_or_else(|| "a string literal is not closed".to_string())?;
            out.push(Tok::Str(rest[1..1 + close].to_string()));
            i += close + 2;
        } else if let Some(op) = ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "!"]
            .into_iter()
            .find(|o| rest.starts_with(o))
        {
            out.push(Tok::Op(op));
            i += op.len();
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c.is_ascii_digit() || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let len = rest[1..]
                .find(|d: char| !(d.is_ascii_digit() || d == '.'))
                .map_or(rest.len(), |n| n + 1);
            let n: f64 = rest[..len]
                .parse()
                .map_err(|_| format!("`{}` is not a number", &rest[..len]))?;
            out.push(Tok::Num(n));
            i += len;
        } else if c.is_ascii_alphabetic() {
            let len = rest
                .find(|d: char| !(d.is_ascii_alphanumeric() || d == '_'))
                .unwrap_or(rest.len());
            match &rest[..len] {
                "true" => out.push(Tok::Bool(true)),
                "false" => out.push(Tok::Bool(false)),
                "null" => out.push(Tok::Null),
                "and" => out.push(Tok::Op("&&")),
                "or" => out.push(Tok::Op("||")),
                "not" => out.push(Tok::Op("!")),
                w => {
                    return Err(format!(
                        "`{w}` is not supported (only literals, expressions and ==, !=, <, <=, >, >=, &&, ||, !)"
                    ));
                }
            }
            i += len;
        } else {
            let ch = rest.chars().next().unwrap_or(c);
            return Err(format!(
                "`{ch}` is not supported (only literals, expressions and ==, !=, <, <=, >, >=, &&, ||, !)"
            ));
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Str(s) => s.trim() == "true",
            Val::Num(n) => *n != 0.0,
            Val::Null => false,
        }
    }
    fn as_text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(n) => n.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Null => "null".into(),
        }
    }
    fn as_num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

enum PErr {
    Expr(ExprError),
    Syntax(String),
}

struct Parser<'a> {
    toks: &'a [Tok],
    at: usize,
    env: &'a ExprEnv,
}

impl Parser<'_> {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.at), Some(Tok::Op(o)) if *o == op)
    }
    fn or(&mut self) -> Result<Val, PErr> {
        let mut v = self.and()?;
        while self.peek_op("||") {
            self.at += 1;
            let r = self.and()?;
            v = Val::Bool(v.truthy() || r.truthy());
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<Val, PErr> {
        let mut v = self.cmp()?;
        while self.peek_op("&&") {
            self.at += 1;
            let r = self.cmp()?;
            v = Val::Bool(v.truthy() && r.truthy());
        }
        Ok(v)
    }
    fn cmp(&mut self) -> Result<Val, PErr> {
        let l = self.unary()?;
        let Some(Tok::Op(op)) = self.toks.get(self.at) else {
            return Ok(l);
        };
        let op = *op;
        if !["==", "!=", "<", "<=", ">", ">="].contains(&op) {
            return Ok(l);
        }
        self.at += 1;
        let r = self.unary()?;
        let eq = match (l.as_num(), r.as_num()) {
            (Some(a), Some(b)) if matches!(l, Val::Num(_)) || matches!(r, Val::Num(_)) => a == b,
            _ => l.as_text() == r.as_text(),
        };
        let ord = || match (l.as_num(), r.as_num()) {
            (Some(a), Some(b)) => a.partial_cmp(&b),
            _ => Some(l.as_text().cmp(&r.as_text())),
        };
        use std::cmp::Ordering::*;
        Ok(Val::Bool(match op {
            "==" => eq,
            "!=" => !eq,
            "<" => ord() == Some(Less),
            "<=" => matches!(ord(), Some(Less | Equal)),
            ">" => ord() == Some(Greater),
            _ => matches!(ord(), Some(Greater | Equal)),
        }))
    }
    fn unary(&mut self) -> Result<Val, PErr> {
        if self.peek_op("!") {
            self.at += 1;
            return Ok(Val::Bool(!self.unary()?.truthy()));
        }
        let t = self
            .toks
            .get(self.at)
            .cloned()
            .ok_or_else(|| PErr::Syntax("the condition ends too early".into()))?;
        self.at += 1;
        Ok(match t {
            Tok::Expr(e) => {
                let v = self.env.lookup(&e).map_err(PErr::Expr)?;
                match v.trim() {
                    "true" => Val::Bool(true),
                    "false" => Val::Bool(false),
                    _ => Val::Str(v),
                }
            }
            Tok::Str(s) => Val::Str(s),
            Tok::Num(n) => Val::Num(n),
            Tok::Bool(b) => Val::Bool(b),
            Tok::Null => Val::Null,
            Tok::LParen => {
                let v = self.or()?;
                if self.toks.get(self.at) != Some(&Tok::RParen) {
                    return Err(PErr::Syntax("missing `)`".into()));
                }
                self.at += 1;
                v
            }
            other => return Err(PErr::Syntax(format!("unexpected `{}`", other.show()))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ExprEnv {
        let mut e = ExprEnv {
            pipeline_name: "My pipe".into(),
            pipeline_identifier: "my_pipe".into(),
            sequence_id: "1".into(),
            execution_id: "abc".into(),
            stage_name: "deploy".into(),
            stage_identifier: "deploy".into(),
            ..Default::default()
        };
        e.pipeline_variables.insert("target".into(), "prod".into());
        e.pipeline_variables.insert("count".into(), "3".into());
        e.env_variables.insert("region".into(), "eu".into());
        e.steps.insert(
            "build".into(),
            StepValues {
                fqn: "pipeline.stages.deploy.spec.execution.steps.sg.steps.build".into(),
                outputs: BTreeMap::from([("VERSION".into(), "1.2.3".into())]),
            },
        );
        e
    }

    #[test]
    fn renders_known_expressions() {
        let e = env();
        assert_eq!(
            e.render("<+pipeline.name>/<+pipeline.identifier>#<+pipeline.sequenceId>")
                .unwrap(),
            "My pipe/my_pipe#1"
        );
        assert_eq!(
            e.render("<+stage.identifier> <+env.variables.region> <+pipeline.variables.target>")
                .unwrap(),
            "deploy eu prod"
        );
        assert_eq!(
            e.render("v=<+steps.build.output.outputVariables.VERSION>").unwrap(),
            "v=1.2.3"
        );
        assert_eq!(
            e.render("<+execution.steps.sg.steps.build.output.outputVariables.VERSION>")
                .unwrap(),
            "1.2.3"
        );
        assert_eq!(
            e.render("<+pipeline.stages.deploy.spec.execution.steps.sg.steps.build.output.outputVariables.VERSION>")
                .unwrap(),
            "1.2.3"
        );
        assert_eq!(e.render("no expressions > here").unwrap(), "no expressions > here");
    }

    #[test]
    fn stage_variables_and_fixed_expressions() {
        let mut e = env();
        e.stage_variables.insert("tag".into(), "v7".into());
        e.stage_variables.insert(
            "full".into(),
            "<+pipeline.variables.target>-<+stage.variables.tag>".into(),
        );
        e.stage_variables
            .insert("loop".into(), "x<+stage.variables.loop>".into());
        assert_eq!(e.render("<+stage.variables.full>").unwrap(), "prod-v7");
        assert!(
            e.render("<+stage.variables.loop>")
                .unwrap_err()
                .to_string()
                .contains("cycle")
        );
        e.fixed.insert("infra.name".into(), "prod-cluster".into());
        assert_eq!(
            e.render("<+stage.variables.tag> on <+infra.name>").unwrap(),
            "v7 on prod-cluster"
        );
        assert_eq!(
            e.render("<+stage.variables.nope>").unwrap_err().to_string(),
            "expression `<+stage.variables.nope>` could not be resolved: the stage has no variable `nope`"
        );
        assert_eq!(
            e.render("<+artifact.image>").unwrap_err().to_string(),
            "expression `<+artifact.image>` is not supported by sgsim; give its value under fixtures.expressions"
        );
    }

    #[test]
    fn step_spec_fields() {
        let mut e = env();
        e.specs.push((
            "pipeline.stages.deploy.spec.execution.steps.sg.steps.clone".into(),
            serde_json::json!({"repoName": "app", "depth": 1, "build": {"type": "branch", "spec": {"branch": "main"}}, "unset": null}),
        ));
        e.names.insert(
            "pipeline.stages.deploy.spec.execution.steps.sg.steps.clone".into(),
            "Clone app".into(),
        );
        assert_eq!(
            e.render("<+execution.steps.sg.steps.clone.spec.repoName>").unwrap(),
            "app"
        );
        assert_eq!(
            e.render("<+execution.steps.sg.steps.clone.name>/<+steps.clone.identifier>")
                .unwrap(),
            "Clone app/clone"
        );
        assert_eq!(e.render("<+steps.clone.spec.build.spec.branch>").unwrap(), "main");
        assert_eq!(
            e.render("<+pipeline.stages.deploy.spec.execution.steps.sg.steps.clone.spec.depth>")
                .unwrap(),
            "1"
        );
        assert_eq!(
            e.render("<+execution.steps.sg.steps.clone.spec.unset>")
                .unwrap_err()
                .to_string(),
            "expression `<+execution.steps.sg.steps.clone.spec.unset>` could not be resolved: step `execution.steps.sg.steps.clone` has no value for spec field `unset`"
        );
        assert_eq!(
            e.render("<+execution.steps.other.steps.clone.spec.repoName>")
                .unwrap_err()
                .to_string(),
            "expression `<+execution.steps.other.steps.clone.spec.repoName>` could not be resolved: no step `execution.steps.other.steps.clone` in this step group"
        );
    }

    #[test]
    fn reports_unknown_and_unresolved_by_name() {
        let e = env();
        assert_eq!(
            e.render("<+trigger.branch>").unwrap_err().to_string(),
            "expression `<+trigger.branch>` is not supported by sgsim; give its value under fixtures.expressions"
        );
        assert!(
            e.render("<+pipeline.variables.nope>")
                .unwrap_err()
                .to_string()
                .contains("no variable `nope`")
        );
        assert!(
            e.render("<+steps.other.output.outputVariables.X>")
                .unwrap_err()
                .to_string()
                .contains("no step `steps.other`")
        );
        assert!(
            e.render("<+steps.build.output.outputVariables.X>")
                .unwrap_err()
                .to_string()
                .contains("no output variable `X`")
        );
        assert!(matches!(e.render("a <+pipeline.name"), Err(ExprError::Unclosed(_))));
    }

    #[test]
    fn conditions() {
        let e = env();
        assert!(e.condition("true").unwrap());
        assert!(!e.condition("false").unwrap());
        assert!(e.condition("<+pipeline.variables.target> == \"prod\"").unwrap());
        assert!(!e.condition("<+pipeline.variables.target> == 'dev'").unwrap());
        assert!(
            e.condition("<+pipeline.variables.target> != 'dev' && <+pipeline.variables.count> > 2")
                .unwrap()
        );
        assert!(
            e.condition("<+steps.build.output.outputVariables.VERSION> == \"1.2.3\"")
                .unwrap()
        );
        assert!(e.condition("!(1 == 2) || false").unwrap());
        assert!(e.condition("<+pipeline.variables.count> == 3").unwrap());
    }

    #[test]
    fn bad_conditions_are_errors_not_panics() {
        let e = env();
        for c in [
            "",
            "(",
            "1 ==",
            "\"open",
            "<+x",
            "a.contains(b)",
            "1 == 2)",
            "<+pipeline.variables.target>.startsWith('p')",
            "é",
            "-",
            "1..2 == 3",
        ] {
            assert!(e.condition(c).is_err(), "{c}");
        }
        assert!(
            e.condition("<+trigger.event> == 'PR'")
                .unwrap_err()
                .to_string()
                .contains("<+trigger.event>")
        );
    }
}
