//! The unversioned and discovery endpoints: `/version`, `/api`, `/api/v1`, `/apis/...` and the
//! OpenAPI documents.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::request::{PathParams, param};
use super::respond::json_ok;
use crate::apiserver::app::App;
use crate::apiserver::status::ApiError;
use crate::apiserver::{openapi, resources};

fn discovery(v: Option<Value>) -> Response {
    match v {
        Some(v) => json_ok(&v),
        None => ApiError::PathNotFound.into_response(),
    }
}

pub(super) async fn api_versions(State(app): State<App>) -> Response {
    json_ok(&json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": app.addr}],
    }))
}

pub(super) async fn version(State(app): State<App>) -> Response {
    let v = &app.git_version;
    let trimmed = v.trim_start_matches('v');
    let mut parts = trimmed.split(['.', '-']);
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json_ok(&json!({
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": minor.parse::<u32>().map(|m| m.saturating_sub(1).to_string()).unwrap_or_default(),
        "gitVersion": v,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /api/v1`.
pub(super) async fn core_resources() -> Response {
    discovery(resources::resource_list("", "v1"))
}

/// `GET /apis`.
pub(super) async fn group_list() -> Response {
    json_ok(&resources::api_group_list())
}

/// `GET /apis/{group}`.
pub(super) async fn group(Path(p): PathParams) -> Response {
    discovery(resources::api_group(&param(&p, "group")))
}

/// `GET /apis/{group}/{version}`.
pub(super) async fn group_resources(Path(p): PathParams) -> Response {
    discovery(resources::resource_list(&param(&p, "group"), &param(&p, "version")))
}

/// `GET /openapi/v2`.
pub(super) async fn openapi_v2() -> Response {
    json_ok(openapi::v2_document())
}

/// `GET /openapi/v3`.
pub(super) async fn openapi_v3_index() -> Response {
    json_ok(&resources::openapi_v3_index())
}

/// `GET /openapi/v3/api/{version}`.
pub(super) async fn openapi_v3_core(Path(p): PathParams) -> Response {
    discovery(resources::openapi_v3_group("", &param(&p, "version")))
}

/// `GET /openapi/v3/apis/{group}/{version}`.
pub(super) async fn openapi_v3_group(Path(p): PathParams) -> Response {
    discovery(resources::openapi_v3_group(&param(&p, "group"), &param(&p, "version")))
}
