//! Log normalization: what goldens are compared after.
//!
//! Properties: nothing panics; normalizing is idempotent (a normalized log normalizes to itself);
//! no secret survives masking.

use std::path::Path;

use sgsim_core::normalize::{normalize_log, normalize_text};

use super::{Exec, Target, files_under};
use crate::fnv64;

/// Secrets every input is masked with; the dictionary puts them into inputs.
const SECRETS: &[&str] = &["s3cr3t-v4lue", "hunter2", "AKIAFUZZKEY0001"];

/// The normalize target.
#[derive(Debug)]
pub struct NormalizeTarget {
    seeds: Vec<Vec<u8>>,
    secrets: Vec<String>,
}

impl NormalizeTarget {
    /// Seeds: every log under golden/ (Initialize logs and step logs).
    pub fn new(repo: &Path) -> NormalizeTarget {
        let seeds = files_under(&repo.join("golden"), &|p| p.extension().is_some_and(|e| e == "log"))
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        NormalizeTarget {
            seeds,
            secrets: SECRETS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

impl Target for NormalizeTarget {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        self.seeds.clone()
    }

    fn dict(&self) -> &'static [&'static str] {
        &[
            "s3cr3t-v4lue",
            "hunter2",
            "AKIAFUZZKEY0001",
            "2026-12-03T17:07:13Z",
            "2026-12-03T17:07:13.123456789+00:00",
            "10.244.0.17",
            "172.17.0.2:5000",
            "255.255.255.255",
            "1.234s",
            "12m3.5s",
            "(1.2s including waiting)",
            "docker://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "8f14e45f-ceea-467f-a2b6-3c1a8d6f0b21",
            "harnessci-deploy-group-abcde",
            "kube-api-access-x7k2p",
            "resourceVersion: \"123\"",
            "resourceVersion=456",
            "<timestamp>",
            "<ip>",
            "<duration>",
            "**************",
        ]
    }

    fn exec(&mut self, input: &[u8]) -> Exec {
        let text = String::from_utf8_lossy(input);
        let once = normalize_log(&text, &self.secrets);
        let twice = normalize_log(&once, &self.secrets);
        if twice != once {
            let at = once.chars().zip(twice.chars()).take_while(|(a, b)| a == b).count();
            let near: String = once.chars().skip(at.saturating_sub(30)).take(60).collect();
            return Err(format!(
                "normalize_log is not idempotent: a second pass changes the text near {near:?}"
            ));
        }
        if let Some(s) = self.secrets.iter().find(|s| once.contains(s.as_str())) {
            return Err(format!("secret {s:?} survived masking"));
        }
        let plain = normalize_text(&text);
        if normalize_text(&plain) != plain {
            return Err("normalize_text is not idempotent".into());
        }
        // Which placeholders appeared: the outcome's shape.
        let sig: String = [
            "<timestamp>",
            "<ip>",
            "<duration>",
            "<uid>",
            "<rv>",
            "<container-id>",
            "****",
        ]
        .iter()
        .map(|p| if once.contains(p) { '1' } else { '0' })
        .collect();
        Ok(fnv64(sig.as_bytes()))
    }
}
