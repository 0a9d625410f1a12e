//! Every input a fuzz run ever found a problem with (harness/fuzz/regressions/<target>/*.input)
//! runs again and must now hold every property; then a short, fixed-seed run of each target
//! (the long runs are `scripts/fuzz`).

use std::path::{Path, PathBuf};

use sgsim_fuzz::driver::{self, Options};
use sgsim_fuzz::targets;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_saved_finding_now_holds() {
    driver::install_quiet_hook();
    let mut replayed = 0;
    for name in targets::NAMES {
        let mut t = targets::by_name(name, &repo()).expect("known target");
        let dir = repo().join("harness/fuzz/regressions").join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "input")) {
            let input = std::fs::read(f).expect("readable regression input");
            if let Err(m) = driver::exec_one(t.as_mut(), &input) {
                panic!("{}: {m}", f.display());
            }
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression input was found under harness/fuzz/regressions"
    );
}

#[test]
fn a_short_run_of_every_target_finds_nothing() {
    driver::install_quiet_hook();
    let out = std::env::temp_dir().join(format!("sgsim-fuzz-test-{}", std::process::id()));
    for name in targets::NAMES {
        let mut t = targets::by_name(name, &repo()).expect("known target");
        let seeds = t.seeds().len();
        assert!(seeds > 0, "{name}: no seed corpus");
        let opts = Options {
            runs: 1_500,
            seed: 42,
            out: out.clone(),
            max_findings: 5,
        };
        let rep = driver::run(t.as_mut(), &opts, &mut |_| {});
        assert_eq!(rep.runs, 1_500 + seeds as u64, "{name}: stopped early");
        assert!(rep.signatures > 1, "{name}: every input had the same outcome");
        let found: Vec<String> = rep
            .findings
            .iter()
            .map(|f| format!("{} ({})", f.message, f.file.display()))
            .collect();
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broken_property_is_reported_with_its_input() {
    // A target whose property breaks on inputs holding "boom" and panics on "bang": the driver
    // must report both, save the inputs, and keep going.
    struct Fragile;
    impl targets::Target for Fragile {
        fn name(&self) -> &'static str {
            "fragile"
        }
        fn seeds(&self) -> Vec<Vec<u8>> {
            vec![b"boom".to_vec(), b"bang".to_vec(), b"fine".to_vec()]
        }
        fn dict(&self) -> &'static [&'static str] {
            &[]
        }
        fn exec(&mut self, input: &[u8]) -> targets::Exec {
            if input == b"bang" {
                panic!("bang happened");
            }
            if input == b"boom" {
                Err("boom is broken".into())
            } else {
                Ok(input.len() as u64)
            }
        }
    }
    driver::install_quiet_hook();
    let out = std::env::temp_dir().join(format!("sgsim-fuzz-fragile-{}", std::process::id()));
    let rep = driver::run(
        &mut Fragile,
        &Options {
            runs: 10,
            seed: 1,
            out: out.clone(),
            max_findings: 10,
        },
        &mut |_| {},
    );
    let msgs: Vec<&str> = rep.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(msgs.contains(&"boom is broken"), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("bang happened")), "{msgs:?}");
    for f in &rep.findings {
        assert!(f.file.is_file(), "{} was not saved", f.file.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}
