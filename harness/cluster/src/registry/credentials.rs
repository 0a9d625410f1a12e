//! Home of pull credentials: [`PullCredentials`] and how they are found for an image in
//! `.dockerconfigjson` documents (the `auths` key matching the image's registry host).

use bollard::auth::DockerCredentials;

use super::{DOCKER_HUB, registry_host};

/// Credentials for one pull (from a `kubernetes.io/dockerconfigjson` secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCredentials {
    /// The registry key in the docker config (`registry.mycompany.io`).
    pub server: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl PullCredentials {
    /// As bollard's credentials.
    pub fn docker(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// Whether a docker config `auths` key names `host` (`registry.x.io`, `https://registry.x.io/v2/`,
/// `https://index.docker.io/v1/` for Docker Hub).
pub fn auth_key_matches(key: &str, host: &str) -> bool {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k);
    let k = match k {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    };
    k == host
}

/// The credentials for `image` in `.dockerconfigjson` documents (first match wins).
pub fn credentials_for(image: &str, configs: &[Vec<u8>]) -> Option<PullCredentials> {
    let host = registry_host(image);
    for raw in configs {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
            continue;
        };
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
            continue;
        };
        for (key, entry) in auths {
            if !auth_key_matches(key, &host) {
                continue;
            }
            let mut user = entry
                .get("username")
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string();
            let mut pass = entry
                .get("password")
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string();
            if user.is_empty()
                && let Some(decoded) = entry
                    .get("auth")
                    .and_then(|a| a.as_str())
                    .and_then(sgsim_core::base64::decode)
                && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
            {
                user = u.to_string();
                pass = p.to_string();
            }
            return Some(PullCredentials {
                server: key.clone(),
                username: user,
                password: pass,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_docker_config() {
        let cfg = br#"{"auths":{"registry.x.io":{"username":"u","password":"p","auth":"dTpw"}}}"#.to_vec();
        let c = credentials_for("registry.x.io/a:1", std::slice::from_ref(&cfg)).expect("match");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(credentials_for("alpine", &[cfg]).is_none());
        let cfg = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpwOng="}}}"#.to_vec();
        let c = credentials_for("alpine", &[cfg]).expect("hub");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:x"));
        assert!(credentials_for("alpine", &[b"not json".to_vec()]).is_none());
    }
}
