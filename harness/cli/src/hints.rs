//! What `sgsim run` adds after a run about images: the `images:` line and hints for steps a
//! stand-in lacked a program for.

use sgsim_cluster::runtime::StepImage;
use sgsim_core::record::RunRecord;

/// Hints for steps that failed because their stand-in image lacks a program: the shell's exit
/// code 127 ("command not found").
pub fn standin_hints(rec: &RunRecord, images: &[StepImage]) -> Vec<String> {
    let mut out = Vec::new();
    for s in rec.steps.iter().filter(|s| s.exit_code == Some(127)) {
        // An image from the host is the real one: its exit code 127 is the product's too.
        let Some(si) = images
            .iter()
            .find(|x| x.step == s.id && x.source != "host" && x.source != "pulled")
        else {
            continue;
        };
        let missing = s
            .log
            .lines()
            .rev()
            .find_map(|l| {
                l.strip_suffix(": not found")
                    .or_else(|| l.strip_suffix(": command not found"))
            })
            .map(|l| l.rsplit(": ").next().unwrap_or(l).trim().to_string());
        let what = missing
            .map(|m| format!("has no `{m}`"))
            .unwrap_or_else(|| "lacks the program its command runs".into());
        out.push(format!(
            "step `{}` ran image `{}` as sgsim's `{}` stand-in, which {what} (exit code 127); \
             sgsim builds its images from Debian packages, not from the vendor's image: choose another \
             stand-in with fixtures.images (scripts/images/README.md lists them) or check that the \
             command does not depend on the vendor image's tools",
            s.id, si.requested, si.ran_as
        ));
    }
    out
}

/// One line saying what each step's image ran as, so a run never passes a stand-in off as the
/// real image: `images: build ran maven:3.9 (host daemon); test ran alpine:3.19 as stand-in busybox`.
pub fn images_line(images: &[StepImage]) -> Option<String> {
    if images.is_empty() {
        return None;
    }
    let parts: Vec<String> = images
        .iter()
        .map(|i| match i.source {
            "host" => format!("{} ran {} (host daemon)", i.step, i.requested),
            "pulled" => format!("{} ran {} (pulled)", i.step, i.requested),
            "fixtures.images" => format!(
                "{} ran {} as stand-in {} (fixtures.images)",
                i.step, i.requested, i.ran_as
            ),
            _ => format!("{} ran {} as stand-in {}", i.step, i.requested, i.ran_as),
        })
        .collect();
    Some(format!("images: {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgsim_core::record::{Outcome, StepRecord};
    use std::time::Duration;

    fn step(id: &str, exit: Option<i32>, log: &str) -> StepRecord {
        StepRecord {
            id: id.into(),
            name: id.into(),
            container: Some(format!("step-{id}")),
            status: if exit == Some(0) {
                Outcome::Success
            } else {
                Outcome::Failed
            },
            exit_code: exit,
            error: None,
            outputs: Default::default(),
            log: log.into(),
            background: false,
            took: Duration::ZERO,
            attempts: 1,
            strategy: None,
            reports: Default::default(),
            image: None,
        }
    }

    #[test]
    fn exit_127_names_the_stand_in_and_the_missing_program() {
        let rec = RunRecord {
            pod: None,
            initialize: Vec::new(),
            steps: vec![
                step("plan", Some(127), "init\nsh: terraform: not found\n"),
                step("ok", Some(0), ""),
                step("other", Some(127), "bash: line 1: helm: command not found\n"),
                step("bare", Some(127), ""),
            ],
            status: Outcome::Failed,
            error: None,
            node: None,
        };
        let si = |s: &str, i: &str| StepImage {
            step: s.into(),
            requested: i.into(),
            ran_as: "busybox".into(),
            source: "stand-in",
        };
        let hints = standin_hints(
            &rec,
            &[
                si("plan", "hashicorp/terraform:1.5"),
                si("ok", "alpine"),
                si("other", "alpine/helm:3"),
                si("bare", "x:1"),
            ],
        );
        assert_eq!(hints.len(), 3, "{hints:#?}");
        assert!(hints[0].starts_with("step `plan` ran image `hashicorp/terraform:1.5` as sgsim's `busybox` stand-in, which has no `terraform` (exit code 127)"), "{}", hints[0]);
        assert!(hints[1].contains("which has no `helm`"), "{}", hints[1]);
        assert!(
            hints[2].contains("which lacks the program its command runs"),
            "{}",
            hints[2]
        );
    }

    #[test]
    fn the_images_line_names_what_each_step_ran_as() {
        let img = |step: &str, requested: &str, ran_as: &str, source: &'static str| StepImage {
            step: step.into(),
            requested: requested.into(),
            ran_as: ran_as.into(),
            source,
        };
        assert_eq!(images_line(&[]), None);
        let line = images_line(&[
            img("build", "maven:3.9", "maven:3.9", "host"),
            img("test", "alpine:3.19", "busybox", "stand-in"),
            img("tf", "hashicorp/terraform:1.5", "bash", "fixtures.images"),
            img(
                "lint",
                "golangci/golangci-lint:v1",
                "golangci/golangci-lint:v1",
                "pulled",
            ),
        ])
        .expect("a line");
        assert_eq!(
            line,
            "images: build ran maven:3.9 (host daemon); test ran alpine:3.19 as stand-in busybox; \
             tf ran hashicorp/terraform:1.5 as stand-in bash (fixtures.images); \
             lint ran golangci/golangci-lint:v1 (pulled)"
        );
        // A real image's exit code 127 is not blamed on a stand-in.
        let rec = RunRecord {
            pod: None,
            initialize: Vec::new(),
            steps: vec![step("build", Some(127), "sh: mvn: not found\n")],
            status: Outcome::Failed,
            error: None,
            node: None,
        };
        assert!(standin_hints(&rec, &[img("build", "maven:3.9", "maven:3.9", "host")]).is_empty());
    }
}
