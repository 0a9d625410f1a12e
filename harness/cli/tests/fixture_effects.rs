//! Fixture settings whose effect the goldens normalize away must still be checked: the slow
//! registry's delay really happens (its Pulled event's duration holds it), and init-timeout fails
//! on the scenario's initTimeout, not the product's default (480 s).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn sgsim_run(scenario: &str) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_sgsim"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("NO_COLOR", "1")
        .env_remove("SGSIM_BLESS")
        .args(["run", scenario])
        .output()
        .expect("sgsim runs");
    (o, started.elapsed())
}

/// A Go duration as the kubelet prints it (`2.088443672s`, `196.01ms`, `1m2.5s`).
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[test]
fn go_durations_parse() {
    assert_eq!(go_duration("2.5s"), Some(Duration::from_millis(2500)));
    assert_eq!(go_duration("196ms"), Some(Duration::from_millis(196)));
    assert_eq!(go_duration("1m2s"), Some(Duration::from_secs(62)));
    assert_eq!(go_duration("soon"), None);
}

#[test]
fn the_slow_registry_delay_is_in_the_pulled_event() {
    let (o, _) = sgsim_run("scenarios/images-slow-registry");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    let prefix = "Successfully pulled image \"registry.slow.example/library/alpine:3.19\" in ";
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no Pulled event:\n{out}"));
    let pulled = go_duration(line[prefix.len()..].split(' ').next().unwrap_or_default())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    // fixtures.registries: delay 2s — the pull itself took at least that (not a timing of this
    // test: the kubelet's own measurement, as Kubernetes reports it).
    assert!(pulled >= Duration::from_secs(2), "{line}");
}

#[test]
fn init_timeout_fails_on_the_scenario_timeout_not_the_default() {
    let (o, took) = sgsim_run("scenarios/init-timeout");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the outcome is the expected one (Failed):\n{out}");
    assert!(
        out.contains("has failed to start on harness-delegate-ng namespace"),
        "{out}"
    );
    // The scenario's initTimeout is 5 s; the product's default is 480 s. Ending well before the
    // default could have passed is the evidence that the scenario's value was the one waited for.
    assert!(
        took < Duration::from_secs(240),
        "took {took:?}: the default initTimeout was used"
    );
}
