use sgsim_core::{load, no_files, plan, render_pod};

#[test]
fn smoke() {
    let text = include_str!("fixtures/dind_pipeline.yaml");
    let s = load("fixtures/dind_pipeline.yaml", text, &no_files).unwrap_or_else(|e| panic!("{}", e.diagnostics().render_plain()));
    let pod = render_pod(&s);
    println!("{}", serde_json::to_string_pretty(&pod).unwrap());
    let p = plan(&s);
    println!("{}", serde_json::to_string_pretty(&p).unwrap());
}
