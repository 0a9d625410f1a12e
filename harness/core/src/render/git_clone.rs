//! The drone-git variables of a GitClone step, derived from its spec and its Git connector.

use super::WORKSPACE;
use crate::model::Step;
use crate::scenario::Scenario;

/// Git connector types whose `url` a GitClone step clones from.
const GIT_CONNECTOR_TYPES: &[&str] = &[
    "Git",
    "Github",
    "GitHub",
    "Gitlab",
    "GitLab",
    "Bitbucket",
    "AzureRepo",
    "Codecommit",
    "Harness",
];

/// The drone-git plugin's variables for a GitClone step, as the product derives them from the
/// step's spec and its Git connector: `DRONE_REMOTE_URL` (connector URL, plus `/<repoName>` for
/// an account-level URL), `DRONE_NETRC_MACHINE` (its host), the build (`DRONE_BUILD_EVENT` with
/// `DRONE_COMMIT_BRANCH`, `DRONE_TAG`, `DRONE_COMMIT_SHA` or `DRONE_COMMIT_REF`), `PLUGIN_DEPTH`,
/// `DRONE_WORKSPACE` (`cloneDirectory`, default `/harness/<repository name>`), `GIT_SSL_NO_VERIFY`
/// when `sslVerify` is false, and `DRONE_NETRC_USERNAME`/`DRONE_NETRC_PASSWORD` from the
/// connector's credentials.
pub(super) fn git_clone_env(s: &Scenario, st: &Step) -> Vec<(String, String)> {
    let setting = |k: &str| st.settings.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        o => o.to_string(),
    };
    let conn = st.connector_ref.as_deref().and_then(|r| {
        s.fixtures()
            .connectors
            .iter()
            .find(|c| c.identifier == r && GIT_CONNECTOR_TYPES.contains(&c.connector_type.as_str()))
    });
    let repo_name = setting("repoName").map(|v| text(&v)).unwrap_or_default();
    let base = conn.and_then(|c| c.url.clone()).unwrap_or_default();
    let url = match (base.trim_end_matches('/'), repo_name.trim_matches('/')) {
        ("", r) => r.to_string(),
        (b, "") => b.to_string(),
        (b, r) if b.ends_with(&format!("/{r}")) || b.ends_with(&format!("/{r}.git")) => b.to_string(),
        (b, r) => format!("{b}/{r}"),
    };
    let mut env = vec![("DRONE_REMOTE_URL".to_string(), url.clone())];
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or(host);
    env.push(("DRONE_NETRC_MACHINE".into(), host.to_string()));
    let build = setting("build").unwrap_or_default();
    let bspec = build.get("spec").cloned().unwrap_or_default();
    let field = |k: &str| bspec.get(k).map(text).unwrap_or_default();
    match build.get("type").map(text).as_deref() {
        Some("branch") => {
            env.push(("DRONE_BUILD_EVENT".into(), "push".into()));
            env.push(("DRONE_COMMIT_BRANCH".into(), field("branch")));
        }
        Some("tag") => {
            env.push(("DRONE_BUILD_EVENT".into(), "tag".into()));
            env.push(("DRONE_TAG".into(), field("tag")));
        }
        Some("commitSha") => {
            env.push(("DRONE_BUILD_EVENT".into(), "push".into()));
            env.push(("DRONE_COMMIT_SHA".into(), field("commitSha")));
        }
        Some("PR") => {
            env.push(("DRONE_BUILD_EVENT".into(), "pull_request".into()));
            env.push(("DRONE_COMMIT_REF".into(), format!("refs/pull/{}/head", field("number"))));
        }
        _ => {}
    }
    if let Some(d) = setting("depth").map(|v| text(&v)).filter(|d| !d.is_empty()) {
        env.push(("PLUGIN_DEPTH".into(), d));
    }
    let repo = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git")
        .to_string();
    let workspace = match setting("cloneDirectory").map(|v| text(&v)).filter(|d| !d.is_empty()) {
        Some(d) => d,
        None if repo.is_empty() => WORKSPACE.to_string(),
        None => format!("{WORKSPACE}/{repo}"),
    };
    env.push(("DRONE_WORKSPACE".into(), workspace));
    if setting("sslVerify").is_some_and(|v| v == serde_json::Value::Bool(false) || text(&v) == "false") {
        env.push(("GIT_SSL_NO_VERIFY".into(), "true".into()));
    }
    if let Some(c) = conn.filter(|c| c.auth == "usernamePassword") {
        env.push(("DRONE_NETRC_USERNAME".into(), c.username.clone().unwrap_or_default()));
        let pw = c
            .password_ref
            .as_ref()
            .and_then(|r| s.fixtures().harness_secrets.get(r))
            .cloned()
            .unwrap_or_default();
        env.push(("DRONE_NETRC_PASSWORD".into(), pw));
    }
    env
}
