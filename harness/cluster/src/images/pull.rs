//! `--pull missing|always|never`: images a run pulls from their real registry into the host Docker
//! daemon before it starts, so the real image runs (it then goes through the run's registries like
//! any host image: pulls, pull policies and events stay real). Only `sgsim run` pulls; the
//! conformance suite runs its pinned images and never pulls.
//!
//! Which images to pull is decided by [`images_to_pull`] (pure); [`pull_into_host`] does one pull
//! with the credentials of the scenario's Docker connector for that registry, reporting progress.
//! A registry that could not be reached is not asked again in the same run.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use futures::StreamExt;

/// When `sgsim run` pulls a step's image from its real registry into the host daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullMode {
    /// Never pull: host images, else stand-ins (the conformance suite, CI).
    #[default]
    Never,
    /// Pull the images the host daemon does not hold yet (`sgsim run`'s default).
    Missing,
    /// Pull every image again, also those the host holds (a moving tag such as `:latest`).
    Always,
}

/// Progress of the pulls before a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// A pull started.
    Started {
        /// The image as the step group names it.
        image: String,
    },
    /// What the registry or daemon reported (`Downloading [==>   ] 3MB/40MB`).
    Progress {
        /// The image.
        image: String,
        /// The status line.
        status: String,
    },
    /// The image is now on the host daemon.
    Done {
        /// The image.
        image: String,
        /// How long the pull took.
        took: Duration,
    },
    /// The pull failed: the step runs what the host holds, else a stand-in (`--pull missing`);
    /// with `--pull always` the run stops.
    Failed {
        /// The image.
        image: String,
        /// Why, as the daemon said it.
        reason: String,
    },
}

/// The images to pull, in order and without repeats: with `Missing` those `present` does not hold,
/// with `Always` all of them, with `Never` none. `wanted` are the images of the pod's containers;
/// `skip` says which of them sgsim provides itself or the scenario pins (its own addon,
/// lite-engine and sandbox, `fixtures.images` overrides, images a registry fixture declares
/// missing).
pub fn images_to_pull(
    mode: PullMode,
    wanted: &[String],
    present: &HashSet<String>,
    skip: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = HashSet::new();
    wanted
        .iter()
        .filter(|i| seen.insert(super::normalize_reference(i)))
        .filter(|i| !skip(i))
        .filter(|i| match mode {
            PullMode::Never => false,
            PullMode::Missing => !present.contains(&super::normalize_reference(i)),
            PullMode::Always => true,
        })
        .cloned()
        .collect()
}

/// How long a pull may take to say anything at all (an unreachable registry or DNS server).
pub const FIRST_ANSWER_LIMIT: Duration = Duration::from_secs(60);

/// Whether a daemon's pull error says the registry could not be reached (as opposed to an
/// image or credentials it refused).
pub fn is_unreachable(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "dial tcp",
        "lookup ",
        "no such host",
        "connection refused",
        "network is unreachable",
        "i/o timeout",
        "tls handshake timeout",
        "temporary failure in name resolution",
        "no answer from",
    ]
    .iter()
    .any(|p| r.contains(p))
}

/// Pulls `image` into the host daemon (with `credentials` when given), reporting progress.
pub async fn pull_into_host(
    host: &Docker,
    image: &str,
    credentials: Option<DockerCredentials>,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<Duration, String> {
    let started = Instant::now();
    progress(PullEvent::Started { image: image.into() });
    let (repo, tag) = super::split_reference(&super::normalize_reference(image));
    let opts = bollard::query_parameters::CreateImageOptionsBuilder::new()
        .from_image(&repo)
        .tag(&tag)
        .build();
    let mut stream = host.create_image(Some(opts), None, credentials);
    let mut answered = false;
    loop {
        let next = if answered {
            stream.next().await
        } else {
            match tokio::time::timeout(FIRST_ANSWER_LIMIT, stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(format!(
                        "no answer from the registry of {image} in {}s",
                        FIRST_ANSWER_LIMIT.as_secs()
                    ));
                }
            }
        };
        answered = true;
        match next {
            None => break,
            Some(Ok(info)) => {
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    return Err(message);
                }
                if let Some(status) = info.status {
                    let line = match (info.id, info.progress_detail.and_then(|d| d.current.zip(d.total))) {
                        (Some(id), Some((cur, total))) if total > 0 => {
                            format!("{id}: {status} {}/{} MB", cur / 1_000_000, total / 1_000_000)
                        }
                        (Some(id), _) => format!("{id}: {status}"),
                        _ => status,
                    };
                    progress(PullEvent::Progress {
                        image: image.into(),
                        status: line,
                    });
                }
            }
            Some(Err(bollard::errors::Error::DockerResponseServerError { message, .. })) => return Err(message),
            Some(Err(bollard::errors::Error::DockerStreamError { error })) => return Err(error),
            Some(Err(e)) => return Err(crate::docker::error_chain(&e)),
        }
    }
    let took = started.elapsed();
    progress(PullEvent::Done {
        image: image.into(),
        took,
    });
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn which_images_each_mode_pulls() {
        let wanted = strings(&[
            "alpine:3.19",
            "docker.io/library/alpine:3.19",
            "harness/ci-addon:1.16.8",
            "maven:3",
        ]);
        let present: HashSet<String> = ["maven:3".to_string()].into();
        let skip = |i: &str| i.starts_with("harness/ci-addon");
        assert!(images_to_pull(PullMode::Never, &wanted, &present, skip).is_empty());
        assert_eq!(
            images_to_pull(PullMode::Missing, &wanted, &present, skip),
            strings(&["alpine:3.19"]),
            "once per image, not what the host holds, not what sgsim provides"
        );
        assert_eq!(
            images_to_pull(PullMode::Always, &wanted, &present, skip),
            strings(&["alpine:3.19", "maven:3"])
        );
    }

    #[test]
    fn unreachable_registries_are_told_from_refusals() {
        assert!(is_unreachable(
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 127.0.0.1:53: read: connection refused"
        ));
        assert!(!is_unreachable(
            "pull access denied for nosuch/image, repository does not exist or may require 'docker login'"
        ));
        assert!(!is_unreachable("manifest for alpine:9.99 not found: manifest unknown"));
    }
}
