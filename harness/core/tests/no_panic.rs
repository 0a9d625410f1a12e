//! No input makes core panic: random bytes, random mutations of valid pipelines and scenarios,
//! and a few hand-picked nasty inputs. Fuzz-style, driven by sgsim's own deterministic PRNG so a
//! failure is reproducible from the printed seed.

use sgsim_core::rng::SplitMix64;
use sgsim_core::scenario::load;
use sgsim_core::{normalize, plan, render_pod};

const DIND: &str = include_str!("fixtures/dind_pipeline.yaml");
const FULL: &str = include_str!("fixtures/full_pipeline.yaml");
const FULL_SCENARIO: &str = include_str!("fixtures/full_scenario.yaml");

fn exercise(path: &str, text: &str) {
    let loader = |p: &str| match p {
        "full_pipeline.yaml" => Ok(FULL.to_string()),
        _ => Err("no such file".to_string()),
    };
    match load(path, text, &loader) {
        Ok(s) => {
            let pod = render_pod(&s);
            let _ = plan(&s);
            let _ = normalize::pod_yaml(&pod, &s.secrets);
            let _ = serde_json::to_string(&pod);
        }
        Err(e) => {
            let d = e.diagnostics();
            assert!(d.has_errors(), "an Err must hold at least one error");
            for item in &d.items {
                let s = item.to_string();
                assert!(s.starts_with(&format!("{}:", item.path)), "{s}");
                let _ = item.render_plain();
                // The span must lie inside the source text (miette would panic otherwise).
                let src = if item.path == path { Some(text) } else { None };
                if let Some(src) = src {
                    let end = item.span.offset() + item.span.len();
                    assert!(end <= src.len(), "span {end} beyond {} in {s}", src.len());
                    assert!(
                        src.is_char_boundary(item.span.offset()) && src.is_char_boundary(end),
                        "{s}"
                    );
                }
            }
            let _ = d.to_string();
        }
    }
    let _ = normalize::normalize_log(text, &["x".to_string(), String::new()]);
}

fn mutate(rng: &mut SplitMix64, base: &str) -> String {
    let mut b: Vec<u8> = base.as_bytes().to_vec();
    let n = 1 + (rng.next_u64() % 6) as usize;
    const PIECES: &[&str] = &[
        "\t",
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a ",
        "*a",
        "<<: *a",
        "~",
        "\n",
        "  ",
        "<+input>",
        "<+secrets.getValue(\"x\")>",
        "99999999999999999999999999999",
        "-1",
        "1e999",
        ".nan",
        "!!binary",
        "? ",
        "|",
        ">",
        "#",
        "%YAML 1.2\n---\n",
        "\u{feff}",
        "é",
        "type: ShellScript",
        "mountPath: /harness",
        "privileged: yes",
    ];
    for _ in 0..n {
        if b.is_empty() {
            b.push(b'a');
        }
        let pos = (rng.next_u64() % (b.len() as u64 + 1)) as usize;
        match rng.next_u64() % 5 {
            0 => {
                let len = (rng.next_u64() % 20) as usize;
                let end = (pos + len).min(b.len());
                b.drain(pos..end);
            }
            1 => {
                let p = PIECES[(rng.next_u64() % PIECES.len() as u64) as usize];
                b.splice(pos..pos, p.bytes());
            }
            2 => {
                if pos < b.len() {
                    b[pos] = (rng.next_u64() & 0xff) as u8;
                }
            }
            3 => {
                // duplicate a line
                let s = String::from_utf8_lossy(&b).into_owned();
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let i = (rng.next_u64() % lines.len() as u64) as usize;
                    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                    v.insert(i, lines[i].to_string());
                    b = v.join("\n").into_bytes();
                }
            }
            _ => {
                // swap two lines (breaks indentation structure)
                let s = String::from_utf8_lossy(&b).into_owned();
                let mut v: Vec<String> = s.lines().map(str::to_string).collect();
                if v.len() > 2 {
                    let i = (rng.next_u64() % v.len() as u64) as usize;
                    let j = (rng.next_u64() % v.len() as u64) as usize;
                    v.swap(i, j);
                    b = v.join("\n").into_bytes();
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn random_bytes() {
    let mut rng = SplitMix64::new(0xB17E5, 9);
    for _ in 0..1500 {
        let len = (rng.next_u64() % 400) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next_u64() & 0xff) as u8).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        exercise("junk.yaml", &text);
        // Also as printable-ish YAML alphabet soup.
        const SOUP: &[u8] = b" \n:-[]{}\"'#|>&*!?,ab1\t";
        let soup: String = (0..len)
            .map(|_| SOUP[(rng.next_u64() % SOUP.len() as u64) as usize] as char)
            .collect();
        exercise("soup.yaml", &soup);
    }
}

#[test]
fn mutations_of_valid_inputs() {
    for (seed, (path, base)) in [
        ("dind.yaml", DIND),
        ("full.yaml", FULL),
        ("scenario.yaml", FULL_SCENARIO),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = SplitMix64::new(seed as u64 + 100, 7);
        for i in 0..700 {
            let m = mutate(&mut rng, base);
            let r = std::panic::catch_unwind(|| exercise(path, &m));
            if r.is_err() {
                panic!("panic on mutation {i} of {path}:\n{m}");
            }
        }
    }
}

#[test]
fn nasty_inputs() {
    let deep_seq = "[".repeat(5000);
    let deep_map: String = (0..3000).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    let huge = format!("pipeline:\n  identifier: {}\n", "9".repeat(5000));
    let many_aliases = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    for t in [
        "",
        "\n\n",
        "---",
        "--- \n...\n---\n",
        "~",
        "pipeline:",
        "pipeline: ~",
        "pipeline: []",
        "pipeline: {stages: 5}",
        "pipeline: {identifier: p, stages: [{stage: {identifier: s, type: Deployment, spec: {execution: {steps: [{stepGroup: {identifier: g, stepGroupInfra: {type: KubernetesDirect}}}]}}}}]}",
        "pipeline: {identifier: p, stages: [{stage: {identifier: s, type: Deployment, spec: {execution: {steps: [{stepGroup: {identifier: g, stepGroupInfra: {type: KubernetesDirect, spec: 3}, steps: 4, sharedPaths: {a: b}}}]}}}}]}",
        "pipeline: p.yaml\nfixtures: []\nexpect: 3",
        "name: x\npipeline: {pipeline: 3}",
        "\u{feff}pipeline: {}",
        "a: b\na: c\n",
        "\t\t\t",
        "pipeline:\n  identifier: \"\u{0}\"\n",
        &deep_seq,
        &deep_map,
        &huge,
        many_aliases,
    ] {
        exercise("nasty.yaml", t);
    }
}
