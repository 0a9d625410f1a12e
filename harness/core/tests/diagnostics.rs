//! How diagnostics are found and shown: YAML errors with positions, every error at once, the
//! plain and miette renderings.

use common::*;
use sgsim_core::Diagnostics;

#[allow(dead_code, reason = "each test file uses a subset of the shared helpers")]
mod common;

#[test]
fn yaml_syntax_error_has_position() {
    let e = bare_errs("pipeline:\n  identifier: [a, b\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.yaml:"), "{e:?}");
    assert!(e[0].contains("YAML syntax error"), "{e:?}");
}

#[test]
fn tab_indentation_is_a_syntax_error() {
    let e = bare_errs("pipeline:\n\tidentifier: x\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.yaml:2:"), "{e:?}");
}

#[test]
fn duplicate_keys_are_errors() {
    let e = bare_errs("pipeline:\n  identifier: a\n  identifier: b\n");
    assert!(e[0].starts_with("p.yaml:3:"), "{e:?}");
}

#[test]
fn all_errors_at_once() {
    let body = "identifier: sg
sharedPaths: [/harness]
stepGroupInfra:
  type: KubernetesDirect
  spec:
    namespace: ns1
    nodeSelectr: {a: b}
steps:
  - step:
      identifier: a
      type: Run
      spec:
        command: x
  - step:
      identifier: a
      type: ShellScript
  - step:
      identifier: b
      type: Background
      spec:
        image: docker:dind
        privilegd: true
";
    let e = bare_errs(&pipeline("Deployment", body));
    assert_eq!(e.len(), 6, "{e:#?}");
    let lines: Vec<&str> = e.iter().map(|s| s.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        vec![
            "p.yaml:16:33",
            "p.yaml:19:21",
            "p.yaml:21:23",
            "p.yaml:26:25",
            "p.yaml:30:31",
            "p.yaml:36:27"
        ]
    );
}

#[test]
fn diagnostics_render_source_line() {
    let body = GOOD_BODY.replace("    namespace: ns1", "    namespace: ns1\n    namespce: ns2");
    let err = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_err();
    let d: &Diagnostics = err.diagnostics();
    let plain = d.render_plain();
    assert!(
        plain.contains("\n                          namespce: ns2\n                          ^"),
        "{plain}"
    );
    assert!(plain.contains("help: valid fields: connectorRef, namespace"), "{plain}");
    // miette view: the span points at the key.
    let item = &d.items[0];
    let text = pipeline("Deployment", &body);
    let off = item.span.offset();
    assert_eq!(&text[off..off + item.span.len()], "namespce");
}

#[test]
fn miette_renders_source_and_label() {
    let body = GOOD_BODY.replace("    namespace: ns1", "    namespace: ns1\n    namespce: ns2");
    let err = load_with("p.yaml", &pipeline("Deployment", &body), &[]).unwrap_err();
    let d = &err.diagnostics().items[0];
    let mut out = String::new();
    miette::NarratableReportHandler::new()
        .render_report(&mut out, d)
        .unwrap();
    assert!(out.contains("unknown field `namespce` in stepGroupInfra.spec"), "{out}");
    assert!(out.contains("namespce: ns2"), "{out}");
    assert!(out.contains("p.yaml:22:23"), "{out}");
    assert!(out.contains("did you mean") || out.contains("valid fields"), "{out}");
    // The whole set renders as related diagnostics.
    let mut all = String::new();
    miette::JSONReportHandler::new().render_report(&mut all, &err).unwrap();
    let v: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(v["related"].as_array().unwrap().len(), 1, "{all}");
}
