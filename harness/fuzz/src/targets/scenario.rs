//! Scenario and pipeline parsing, validation, rendering and pod normalization.
//!
//! Properties: nothing panics; an invalid input has at least one error, each naming its file and
//! pointing inside the text on character boundaries; a valid one renders the same pod twice, the
//! pod normalizes, and normalizing the normalized YAML changes nothing.

use std::collections::HashMap;
use std::path::Path;

use sgsim_core::scenario::{LoadOptions, load_with_options};
use sgsim_core::{normalize, plan, render_pod};

use super::{Exec, Target, files_under};
use crate::fnv64;

/// The path an input is loaded as.
const SHOWN: &str = "fuzz/scenario.yaml";

/// The scenario target.
#[derive(Debug)]
pub struct ScenarioTarget {
    seeds: Vec<Vec<u8>>,
    /// Files a scenario may reference (pipelines, templates, inputs), by file name.
    files: HashMap<String, String>,
}

impl ScenarioTarget {
    /// Seeds: every YAML file under scenarios/ (scenario.yaml files and the pipelines they name).
    pub fn new(repo: &Path) -> ScenarioTarget {
        let found = files_under(&repo.join("scenarios"), &|p| {
            p.extension().is_some_and(|e| e == "yaml" || e == "yml")
        });
        let mut files = HashMap::new();
        for (p, b) in &found {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                files
                    .entry(name.to_owned())
                    .or_insert_with(|| String::from_utf8_lossy(b).into_owned());
            }
        }
        ScenarioTarget {
            seeds: found.into_iter().map(|(_, b)| b).collect(),
            files,
        }
    }
}

impl Target for ScenarioTarget {
    fn name(&self) -> &'static str {
        "scenario"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn dict(&self) -> &'static [&'static str] {
        &[
            ": ",
            "- ",
            "\n  ",
            "{}",
            "[]",
            "~",
            "&a ",
            "*a",
            "<<: *a\n",
            "|\n",
            "\"",
            "<+input>",
            "<+pipeline.variables.x>",
            "<+secrets.getValue(\"k\")>",
            "<+execution.steps.g.steps.s.output.outputVariables.o>",
            "type: Run\n",
            "type: Background\n",
            "type: ShellScript\n",
            "type: Plugin\n",
            "stepGroup:\n",
            "parallel:\n",
            "stepGroupInfra:\n",
            "sharedPaths:\n",
            "privileged: true\n",
            "runAsUser: ",
            "limits:\n",
            "memory: 1Gi\n",
            "cpu: 500m\n",
            "timeout: 10s\n",
            "failureStrategies:\n",
            "when:\n",
            "fixtures:\n",
            "expect:\n",
            "identifier: ",
            "connectorRef: ",
            "image: ",
            "nodeSelector:\n",
            "tolerations:\n",
            "\u{feff}",
            "é",
            "\t",
            "\0",
        ]
    }

    fn exec(&mut self, input: &[u8]) -> Exec {
        let text = String::from_utf8_lossy(input);
        let files = &self.files;
        let loader = |rel: &str| -> Result<String, String> {
            let name = Path::new(rel).file_name().and_then(|n| n.to_str()).unwrap_or(rel);
            files.get(name).cloned().ok_or_else(|| format!("{rel}: no such file"))
        };
        match load_with_options(SHOWN, &text, &loader, &LoadOptions::default()) {
            Ok(sc) => {
                let pod = render_pod(&sc);
                let again = render_pod(&sc);
                let (a, b) = (
                    serde_json::to_string(&pod).map_err(|e| format!("pod does not serialize: {e}"))?,
                    serde_json::to_string(&again).map_err(|e| format!("pod does not serialize: {e}"))?,
                );
                if a != b {
                    return Err("rendering the same scenario twice gave two pods".into());
                }
                let _ = plan(&sc);
                let yaml = normalize::pod_yaml(&pod, &sc.secrets)
                    .map_err(|e| format!("a rendered pod does not normalize: {e}"))?;
                let once = normalize::normalize_text(&yaml);
                if normalize::normalize_text(&once) != once {
                    return Err("normalize_text is not idempotent on a rendered pod".into());
                }
                Ok(fnv64(
                    format!("ok {}", pod.spec.map_or(0, |s| s.containers.len())).as_bytes(),
                ))
            }
            Err(e) => {
                let d = e.diagnostics();
                if !d.has_errors() {
                    return Err("an invalid input carries no error".into());
                }
                let mut sig = String::new();
                for item in &d.items {
                    let s = item.to_string();
                    if !s.starts_with(&format!("{}:", item.path)) {
                        return Err(format!("diagnostic does not start with its file: {s}"));
                    }
                    let _ = item.render_plain();
                    if item.path == SHOWN {
                        let (start, end) = (item.span.offset(), item.span.offset() + item.span.len());
                        if end > text.len() || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                            return Err(format!(
                                "span {start}..{end} outside the text or off a char boundary: {s}"
                            ));
                        }
                    }
                    // The kind of message, without the values it quotes.
                    let kind: String = item.message.chars().take_while(|c| *c != '`' && *c != '"').collect();
                    sig.push_str(&kind);
                }
                Ok(fnv64(sig.as_bytes()))
            }
        }
    }
}
