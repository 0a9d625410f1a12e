//! `sgsim repro PIPELINE`: a customer's pipeline becomes a conformance scenario. It writes
//! `scenarios/<name>/` (the pipeline verbatim, a scenario.yaml whose fixtures are what sgsim
//! inferred, each with a comment saying what it stands for), runs it on real containers, writes
//! `golden/<name>/` from that run and, given the customer's Initialize log (`--log`, as copied from
//! the product's UI, timestamps and all), prints the first line where the two logs part.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sgsim_cluster::runtime::RunSettings;
use sgsim_core::scenario::Fixtures;
use sgsim_core::{Scenario, initialize, normalize, verdict};

use crate::golden_store::{self, BlessMode};
use crate::reporter::{Event, Reporter};
use crate::{PullArg, RuntimeKind, Select, exit, images_line, input, output};

/// What `sgsim repro` was asked for.
pub struct ReproArgs<'a> {
    /// The customer's pipeline (or step group template) file.
    pub pipeline: &'a Path,
    /// Which step group, and under which identifier.
    pub select: &'a Select,
    /// Runtime input values (`field.path: value`, YAML).
    pub inputs: Option<&'a Path>,
    /// The customer's Initialize log.
    pub log: Option<&'a Path>,
    /// The scenario's name (default: `repro-<file stem>`).
    pub name: Option<&'a str>,
    /// Where `scenarios/` and `golden/` are (default: this repository).
    pub root: Option<&'a Path>,
    /// `--pull`.
    pub pull: PullArg,
}

/// Where the customer's Initialize log and sgsim's part, after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based event number (line of the normalized logs).
    pub line: usize,
    /// The customer's line there (None: their log ended).
    pub theirs: Option<String>,
    /// sgsim's line there (None: sgsim's log ended).
    pub ours: Option<String>,
}

/// Is this token a part of a timestamp or a level, as the product's UI puts before each line?
fn is_prefix_token(t: &str) -> bool {
    let bare = t.trim_matches(|c| c == '[' || c == ']' || c == ',' || c == '|');
    if bare.is_empty() {
        return !t.is_empty();
    }
    let upper = bare.to_ascii_uppercase();
    if ["AM", "PM", "INFO", "WARN", "WARNING", "ERROR", "DEBUG", "UTC"].contains(&upper.as_str()) {
        return true;
    }
    bare.chars().any(|c| c.is_ascii_digit()) && bare.chars().all(|c| c.is_ascii_digit() || "/-:.TZ+".contains(c))
}

/// A line of a customer's log without the timestamp and level in front.
pub fn strip_prefix(line: &str) -> &str {
    let mut rest = line.trim_start();
    loop {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        if token.is_empty() || !is_prefix_token(token) || end == rest.len() {
            return rest.trim_end();
        }
        rest = rest[end..].trim_start();
    }
}

/// The first place where the customer's log (`theirs`, raw) and sgsim's (`ours`, as sgsim formats
/// it) differ once both are normalized (timestamps and levels dropped, pod names, durations, IPs
/// and secrets replaced); None when they agree line for line.
pub fn first_divergence(theirs: &str, ours: &str, secrets: &[String]) -> Option<Divergence> {
    let norm = |lines: Vec<&str>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| normalize::normalize_log(l, secrets).trim_end().to_string())
            .filter(|l| !l.trim().is_empty())
            .collect()
    };
    let a = norm(theirs.lines().map(strip_prefix).collect());
    let b = norm(ours.lines().map(strip_prefix).collect());
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| Divergence {
            line: i + 1,
            theirs: a.get(i).cloned(),
            ours: b.get(i).cloned(),
        })
}

/// What each fixture stands for, as the comment above it in scenario.yaml.
fn fixture_comment(key: &str) -> &'static str {
    match key {
        "accountId" => "the Harness account (sgsim's default; the pod's HARNESS_ACCOUNT_ID)",
        "namespaces" => "the stepGroupInfra namespace, which exists on the customer's cluster",
        "nodes" => "one node the pod fits on (labelled to satisfy its nodeSelector and required node affinity)",
        "connectors" => {
            "the connectors the group names: stepGroupInfra.connectorRef (the cluster) and the Docker \
             registries of harnessImageConnectorRef and the steps' connectorRef, all anonymous"
        }
        "configMaps" => "ConfigMaps the group's volumes mount (empty: give their data)",
        "secrets" => "Kubernetes Secrets the group's volumes mount (empty: give their data)",
        "serviceAccounts" => "the stepGroupInfra serviceAccountName",
        "persistentVolumeClaims" => "claims the group's volumes mount",
        "priorityClasses" => "the stepGroupInfra priorityClassName",
        "harnessSecrets" => "Harness secrets the pipeline reads (<+secrets.getValue(...)>), with stand-in values",
        "inputs" => "runtime input values: given with --inputs, else inferred (null: unset)",
        "expressions" => "values of expressions sgsim has no model for",
        "featureFlags" => "the account's feature flags: every one sgsim models is on",
        "images" => "stand-ins chosen for vendor images",
        "envVariables" => "environment variables of the pipeline's environment",
        "registries" => "conditions of the run's registries",
        "rbac" => "RBAC objects",
        _ => "inferred by sgsim",
    }
}

/// Drops empty lists, maps, strings and nulls (a field left out is the same as empty).
fn prune(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(prune).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(o) => {
            let o: serde_json::Map<String, Value> =
                o.into_iter().filter_map(|(k, v)| prune(v).map(|v| (k, v))).collect();
            (!o.is_empty()).then_some(Value::Object(o))
        }
        Value::Number(n) if n.as_u64() == Some(0) => None,
        other => Some(other),
    }
}

/// The scenario.yaml of a reproduction: the fixtures sgsim inferred, each key with its comment,
/// the warnings of the load (what it inferred for expressions) as comments, and the outcome the
/// run gave as `expect:`.
pub fn scenario_yaml(
    name: &str,
    source: &str,
    step_group: Option<&str>,
    fixtures: &Fixtures,
    warnings: &[String],
    status: &str,
) -> String {
    let mut y = format!(
        "# Written by `sgsim repro` from {source}. The pipeline is verbatim in pipeline.yaml; every fixture\n\
         # is what sgsim inferred for it: edit any to match the customer's cluster, then\n\
         # `sgsim run scenarios/{name}` (SGSIM_BLESS=1 to write the goldens again).\n\
         name: {name}\n\
         description: >-\n  Reproduction of {source} (sgsim repro).\n\
         pipeline: pipeline.yaml\n"
    );
    if let Some(g) = step_group {
        y.push_str(&format!("stepGroup: {}\n", yaml_scalar(g)));
    }
    y.push_str("seed: 1\nfixtures:\n");
    if !warnings.is_empty() {
        y.push_str("  # sgsim's warnings when it loaded the pipeline (what it inferred, and where):\n");
        for w in warnings {
            for l in w.lines().take(1) {
                y.push_str(&format!("  #   {l}\n"));
            }
        }
    }
    let value = serde_json::to_value(fixtures).ok().and_then(prune);
    let mut map: BTreeMap<String, serde_json::Value> = match value {
        Some(serde_json::Value::Object(o)) => o.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    // Inputs keep their nulls: an input given no value is unset, not missing.
    match serde_json::to_value(&fixtures.inputs) {
        Ok(v) if !fixtures.inputs.is_empty() => map.insert("inputs".into(), v),
        _ => map.remove("inputs"),
    };
    for (key, v) in &map {
        y.push_str(&format!("  # {}\n", fixture_comment(key)));
        let body = serde_saphyr::to_string(&BTreeMap::from([(key.clone(), v.clone())])).unwrap_or_default();
        for l in body.lines() {
            y.push_str(&format!("  {l}\n"));
        }
    }
    y.push_str(&format!(
        "expect:\n  # the outcome of the run that wrote golden/{name}/\n  status: {status}\n\
         fake:\n  skip: written by sgsim repro, without fake data\n"
    ));
    y
}

fn yaml_scalar(s: &str) -> String {
    serde_saphyr::to_string(&s)
        .map(|t| t.trim_end().to_string())
        .unwrap_or_else(|_| format!("{s:?}"))
}

/// `repro-<file stem>`, lower case, as a scenario name.
pub fn default_name(pipeline: &Path) -> String {
    let stem = pipeline
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("pipeline")
        .to_ascii_lowercase();
    let mut out = String::from("repro-");
    for c in stem.chars() {
        out.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    out.trim_end_matches('-').to_string()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.starts_with('-')
}

fn load_inputs(path: &Path) -> Result<Vec<(String, sgsim_core::yaml::Node)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let root = sgsim_core::yaml::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if root.as_map().is_none() && !text.trim().is_empty() {
        return Err(format!(
            "{}: expected a mapping of runtime input paths to values (`pipeline.stages.….image: alpine:3.19`)",
            path.display()
        ));
    }
    let entries = root
        .as_map()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(entries)
}

/// `sgsim repro`.
pub fn cmd_repro(args: &ReproArgs<'_>) -> i32 {
    let root = args.root.map(Path::to_path_buf).unwrap_or_else(input::repo_root);
    let name = args
        .name
        .map(str::to_string)
        .unwrap_or_else(|| default_name(args.pipeline));
    if !valid_name(&name) {
        output::err_line(&format!(
            "error: `{name}` is no scenario name (lower-case letters, digits, `-`, `_`); choose one with --name"
        ));
        return exit::USAGE;
    }
    let dir = root.join("scenarios").join(&name);
    let golden = root.join("golden").join(&name);
    if dir.exists() || golden.exists() {
        output::err_line(&format!(
            "error: {} or {} exists already; choose another --name (or remove them)",
            dir.display(),
            golden.display()
        ));
        return exit::USAGE;
    }
    if !matches!(golden_store::bless_mode(), Ok(BlessMode::Pending | BlessMode::Always)) {
        output::err_line("error: sgsim repro writes a scenario and its goldens, which CI=true forbids");
        return exit::USAGE;
    }
    let pipeline_text = match std::fs::read(args.pipeline) {
        Ok(t) => t,
        Err(e) => {
            output::err_line(&format!("error: cannot read {}: {e}", args.pipeline.display()));
            return exit::INVALID_INPUT;
        }
    };
    let inputs = match args.inputs.map(load_inputs).transpose() {
        Ok(i) => i.unwrap_or_default(),
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return exit::INVALID_INPUT;
        }
    };
    let their_log = match args.log.map(std::fs::read_to_string).transpose() {
        Ok(l) => l,
        Err(e) => {
            output::err_line(&format!("error: cannot read the log: {e}"));
            return exit::INVALID_INPUT;
        }
    };
    // The pipeline as a bare pipeline: fixtures inferred, warnings for what was.
    let mut opts = args.select.options();
    opts.inputs = inputs;
    let inferred = match input::load(args.pipeline, &opts) {
        Ok(i) => i,
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return exit::INVALID_INPUT;
        }
    };
    let sc = match inferred.scenario {
        Ok(sc) if sc.header.bare => sc,
        Ok(_) => {
            output::err_line(&format!(
                "error: {} is a scenario already: `sgsim run` it (repro takes a pipeline or step group template)",
                args.pipeline.display()
            ));
            return exit::USAGE;
        }
        Err(e) => {
            crate::print_diagnostics(&e);
            return exit::INVALID_INPUT;
        }
    };
    let warnings: Vec<String> = sc.warnings.items.iter().map(|w| w.render_plain()).collect();
    for w in &warnings {
        output::err_line(w);
    }
    let step_group = args.select.step_group.clone().or_else(|| sc.header.step_group.clone());

    // Write the pipeline first: the run is of the written scenario, so it is exactly what a trial
    // will run.
    let source = args
        .pipeline
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("pipeline.yaml"), &pipeline_text))
    {
        output::err_line(&format!("error: cannot write {}: {e}", dir.display()));
        return exit::INFRASTRUCTURE;
    }
    let write_scenario = |status: &str| {
        let y = scenario_yaml(&name, &source, step_group.as_deref(), sc.fixtures(), &warnings, status);
        std::fs::write(dir.join("scenario.yaml"), y)
    };
    if let Err(e) = write_scenario("Success") {
        output::err_line(&format!("error: cannot write {}: {e}", dir.display()));
        return exit::INFRASTRUCTURE;
    }
    let written = match input::load(&dir, &Default::default()).map(|i| i.scenario) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            crate::print_diagnostics(&e);
            output::err_line(&format!(
                "error: the scenario written to {} does not load (an sgsim bug: please report it)",
                dir.display()
            ));
            return exit::INFRASTRUCTURE;
        }
        Err(e) => {
            output::err_line(&format!("error: {e}"));
            return exit::INFRASTRUCTURE;
        }
    };
    output::err_line(&format!("wrote {}", dir.display()));
    run_and_write(
        &written,
        &name,
        &golden,
        args.pull,
        their_log.as_deref(),
        &write_scenario,
    )
}

fn run_and_write(
    sc: &Scenario,
    name: &str,
    golden: &Path,
    pull: PullArg,
    their_log: Option<&str>,
    write_scenario: &dyn Fn(&str) -> std::io::Result<()>,
) -> i32 {
    let reporter = Arc::new(Reporter::for_terminal());
    reporter.mask_secrets(&sc.secrets);
    let runtime = crate::new_runtime(RuntimeKind::Docker, &Default::default(), &reporter);
    let rt = crate::tokio_runtime();
    rt.block_on(async {
        output::watch_stdout();
        let settings = RunSettings {
            name: None,
            keep_pod: false,
            host_images: true,
            pull: pull.into(),
        };
        let sink = |e| reporter.event(&Event::Run(e));
        let started = std::time::Instant::now();
        let out = tokio::select! {
            o = runtime.run(sc, &settings, &sink) => o,
            () = crate::interrupted() => {
                output::err_line("interrupted: removing everything this run started");
                runtime.shutdown().await;
                return exit::INTERRUPTED;
            }
        };
        runtime.shutdown().await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                output::err_line(&format!("error: {}", e.chain()));
                return exit::INFRASTRUCTURE;
            }
        };
        if let Some(line) = images_line(&out.images) {
            reporter.hint(&line);
        }
        reporter.event(&Event::Summary {
            scenario: name.to_string(),
            status: out.record.status,
            as_expected: true,
            mismatch: Vec::new(),
            took: started.elapsed(),
        });
        // expect: admits Success, Skipped and Failed (which covers Expired, Aborted, IgnoreFailed).
        let status = match out.record.status {
            sgsim_core::record::Outcome::Success => "Success",
            sgsim_core::record::Outcome::Skipped => "Skipped",
            _ => "Failed",
        };
        if let Err(e) = write_scenario(status) {
            output::err_line(&format!("error: cannot write scenario.yaml: {e}"));
            return exit::INFRASTRUCTURE;
        }
        let files = match verdict::golden_files(sc, &out.record) {
            Ok(f) => f,
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                return exit::INFRASTRUCTURE;
            }
        };
        match golden_store::check(golden, &files, BlessMode::Always) {
            Ok(r) => output::out_line(&format!(
                "goldens written to {}: {}",
                golden.display(),
                r.written.join(", ")
            )),
            Err(e) => {
                output::err_line(&format!("error: {e}"));
                return exit::INFRASTRUCTURE;
            }
        }
        output::out_line(&format!(
            "scenario {name}: a conformance trial now (`sgsim test {name} --exact`, `cargo test --test conformance -- {name}`)"
        ));
        let Some(theirs) = their_log else { return exit::OK };
        let ours = initialize::format_log(&out.record.initialize);
        match first_divergence(theirs, &ours, &sc.secrets) {
            None => {
                output::out_line("the customer's Initialize log and sgsim's agree line for line (after normalization)");
                exit::OK
            }
            Some(d) => {
                let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "(the log ends here)".into());
                output::out_line(&format!(
                    "the Initialize logs part at line {} (after normalization):\n  customer: {}\n  sgsim:    {}",
                    d.line,
                    show(&d.theirs),
                    show(&d.ours)
                ));
                exit::MISMATCH
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_levels_are_stripped() {
        assert_eq!(
            strip_prefix("12/04/2026 10:22:31 AM  Starting job to create pod x on ns namespace"),
            "Starting job to create pod x on ns namespace"
        );
        assert_eq!(
            strip_prefix("2026-12-04T10:22:31.123Z INFO Pulling image \"a:1\""),
            "Pulling image \"a:1\""
        );
        assert_eq!(
            strip_prefix("[10:22:31] Created container step-a"),
            "Created container step-a"
        );
        assert_eq!(strip_prefix("Started container x"), "Started container x");
        assert_eq!(strip_prefix("10:22:31"), "10:22:31", "a line of digits only stays");
    }

    #[test]
    fn the_first_differing_line_is_named() {
        let ours = "Starting job to create pod harnesscd-g-ss6s73rx on ns namespace\n\
                    Successfully assigned ns/harnesscd-g-ss6s73rx to node-1\n\
                    Pulling image \"harness/ci-addon:1.16.8\"\n";
        let same = "10:00:01 AM Starting job to create pod harnesscd-g-x7bq2k9z on ns namespace\n\
                    10:00:02 AM Successfully assigned ns/harnesscd-g-x7bq2k9z to node-1\n\
                    10:00:02 AM Pulling image \"harness/ci-addon:1.16.8\"\n";
        assert_eq!(first_divergence(same, ours, &[]), None);
        let third = same.replace("1.16.8", "1.16.4");
        let d = first_divergence(&third, ours, &[]).expect("differs");
        assert_eq!(d.line, 3);
        assert_eq!(d.theirs.as_deref(), Some("Pulling image \"harness/ci-addon:1.16.4\""));
        assert_eq!(d.ours.as_deref(), Some("Pulling image \"harness/ci-addon:1.16.8\""));
        let shorter: String = same.lines().take(2).map(|l| format!("{l}\n")).collect();
        let d = first_divergence(&shorter, ours, &[]).expect("ends early");
        assert_eq!((d.line, d.theirs), (3, None));
    }

    /// A pipeline with volumes, a service account, a priority class, a Docker connector and a
    /// secret: the scenario.yaml repro writes loads back to the same fixtures.
    #[test]
    fn written_fixtures_load_back_the_same() {
        let pipeline = r#"pipeline:
  identifier: p
  name: p
  stages:
    - stage:
        identifier: s
        name: s
        type: Custom
        spec:
          execution:
            steps:
              - stepGroup:
                  identifier: g
                  name: g
                  stepGroupInfra:
                    type: KubernetesDirect
                    spec:
                      connectorRef: account.k8s
                      namespace: apps
                      serviceAccountName: deployer
                      priorityClassName: high
                      nodeSelector: {disktype: ssd}
                      volumes:
                        - {mountPath: /cfg, type: ConfigMap, spec: {name: app-config}}
                        - {mountPath: /data, type: PersistentVolumeClaim, spec: {claimName: data}}
                  steps:
                    - step:
                        identifier: a
                        name: a
                        type: Run
                        spec:
                          connectorRef: org.dockerhub
                          image: alpine:3.19
                          shell: Sh
                          command: echo <+secrets.getValue("token")> <+pipeline.variables.missing>
"#;
        let bare = sgsim_core::load("customer.yaml", pipeline, &sgsim_core::no_files).expect("loads");
        assert!(bare.header.bare);
        let warnings: Vec<String> = bare.warnings.items.iter().map(|w| w.render_plain()).collect();
        let y = scenario_yaml("r", "customer.yaml", None, bare.fixtures(), &warnings, "Success");
        let files = |p: &str| -> Result<String, String> {
            if p == "pipeline.yaml" {
                Ok(pipeline.to_string())
            } else {
                Err(format!("no {p}"))
            }
        };
        let back = sgsim_core::load("scenario.yaml", &y, &files).unwrap_or_else(|e| panic!("{}\n{y}", e.diagnostics()));
        assert!(!back.header.bare);
        assert_eq!(
            format!("{:?}", back.fixtures()),
            format!("{:?}", bare.fixtures()),
            "{y}"
        );
        assert_eq!(back.expect().status, sgsim_core::scenario::ExpectedStatus::Success);
    }

    #[test]
    fn names_and_fixture_comments() {
        assert_eq!(
            default_name(Path::new("/x/Customer Pipeline.v2.yaml")),
            "repro-customer-pipeline-v2"
        );
        assert!(valid_name("repro-a_b-1"));
        assert!(!valid_name("Repro"));
        assert!(!valid_name("a/b"));
        let fx = Fixtures {
            namespaces: vec!["apps".into()],
            inputs: BTreeMap::from([("pipeline.x".to_string(), serde_json::json!(1))]),
            ..Default::default()
        };
        let y = scenario_yaml("r", "p.yaml", Some("deploy.g"), &fx, &[], "Failed");
        assert!(y.contains("  # the stepGroupInfra namespace"), "{y}");
        assert!(y.contains("  namespaces:\n  - apps\n"), "{y}");
        assert!(y.contains("stepGroup: deploy.g\n"), "{y}");
        assert!(y.contains("  inputs:\n    pipeline.x: 1\n"), "{y}");
        assert!(
            y.contains("expect:\n  # the outcome of the run that wrote golden/r/\n  status: Failed\n"),
            "{y}"
        );
    }
}
