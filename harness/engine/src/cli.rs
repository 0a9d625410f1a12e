//! Minimal flag parsing shared by the binaries (`--name value` or `--name=value`; flags may fall
//! back to an environment variable).

use crate::error::{EngineError, Result};

/// Parsed command line.
#[derive(Debug, Default)]
pub struct Flags {
    pairs: Vec<(String, String)>,
    unknown: Vec<String>,
}

impl Flags {
    /// Parses `args` (without the program name); `known` lists the accepted flag names.
    pub fn parse(args: impl IntoIterator<Item = String>, known: &[&str]) -> Result<Self> {
        let mut flags = Flags::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if a == "-h" || a == "--help" {
                return Err(EngineError::Help {
                    accepted: known.iter().map(|k| format!("--{k}")).collect::<Vec<_>>().join(" "),
                });
            }
            let Some(body) = a.strip_prefix("--") else {
                flags.unknown.push(a);
                continue;
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or_else(|| EngineError::MissingValue { flag: body.to_string() })?;
                    (body.to_string(), v)
                }
            };
            if known.contains(&name.as_str()) {
                flags.pairs.push((name, value));
            } else {
                flags.unknown.push(format!("--{name}"));
            }
        }
        Ok(flags)
    }

    /// Arguments that were not recognised.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// The last value of `--name`, else the environment variable `env` (when given and non-empty).
    pub fn get(&self, name: &str, env: Option<&str>) -> Option<String> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| env.and_then(|e| std::env::var(e).ok()).filter(|v| !v.is_empty()))
    }

    /// Like [`Flags::get`], parsed.
    pub fn parse_value<T: std::str::FromStr>(&self, name: &str, env: Option<&str>) -> Result<Option<T>> {
        match self.get(name, env) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| EngineError::InvalidValue {
                value: v,
                flag: name.to_string(),
            }),
        }
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let f = Flags::parse(
            ["--port", "20002", "--x=1", "pos", "--port=20003"].map(String::from),
            &["port"],
        )
        .unwrap();
        assert_eq!(f.get("port", None).as_deref(), Some("20003"));
        assert_eq!(f.unknown(), ["--x".to_string(), "pos".to_string()]);
        assert!(Flags::parse(["--port".to_string()], &["port"]).is_err());
    }
}
