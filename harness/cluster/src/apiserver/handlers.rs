//! The HTTP layer of the embedded API server: the router and its authentication. The submodules
//! serve what it routes: discovery, the REST verb table (`dispatch`), the object verbs, watches
//! and pod subresources.

mod discovery;
mod dispatch;
mod objects;
mod request;
mod respond;
mod subresources;
mod watch;

pub(crate) use objects::create_value;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::app::App;
use super::status::ApiError;
use super::{rbac, sa_token};

/// Path prefix that authenticates like the bearer token: `/sgsim/<token>/api/v1/...`. kubectl
/// (client-go) sends no credentials at all over plain HTTP, so the kubeconfig's server URL carries
/// the token in its path instead.
pub const TOKEN_PATH_PREFIX: &str = "/sgsim/";

/// The routes, under `prefix` ("" or `/sgsim/{token}`).
fn routes(prefix: &str, app: &App) -> Router<App> {
    let r = |path: &str| format!("{prefix}{path}");
    let protected = Router::new()
        .route(&r("/api"), get(discovery::api_versions))
        .route(&r("/api/v1"), get(discovery::core_resources))
        .route(&r("/api/v1/{*rest}"), any(dispatch::core_handler))
        .route(&r("/apis"), get(discovery::group_list))
        .route(&r("/apis/{group}"), get(discovery::group))
        .route(&r("/apis/{group}/{version}"), get(discovery::group_resources))
        .route(&r("/apis/{group}/{version}/{*rest}"), any(dispatch::group_handler))
        .route(&r("/openapi/v2"), get(discovery::openapi_v2))
        .route(&r("/openapi/v3"), get(discovery::openapi_v3_index))
        .route(&r("/openapi/v3/api/{version}"), get(discovery::openapi_v3_core))
        .route(
            &r("/openapi/v3/apis/{group}/{version}"),
            get(discovery::openapi_v3_group),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(app), authorize))
        .layer(middleware::from_fn_with_state(Arc::clone(app), auth));
    let public = Router::new()
        .route(&r("/version"), get(discovery::version))
        // The Python client asks for `/version/`; kube-apiserver serves both.
        .route(&r("/version/"), get(discovery::version))
        .route(&r("/healthz"), get(|| async { "ok" }))
        .route(&r("/livez"), get(|| async { "ok" }))
        .route(&r("/readyz"), get(|| async { "ok" }));
    protected.merge(public)
}

/// The whole router.
pub fn router(app: App) -> Router {
    let prefixed = format!("{TOKEN_PATH_PREFIX}{{token}}");
    routes("", &app)
        .merge(routes(&prefixed, &app))
        .fallback(fallback)
        // Kubernetes' request body limit (3 MiB); larger bodies get 413.
        .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(app)
}

async fn fallback(State(app): State<App>, req: Request) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix(TOKEN_PATH_PREFIX)
        && rest.split('/').next() != Some(app.token.as_str())
    {
        return ApiError::Unauthorized.into_response();
    }
    let authed = req.uri().path().starts_with(TOKEN_PATH_PREFIX)
        || req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == app.token || sa_token::verify(&app, t.trim()));
    if authed {
        ApiError::PathNotFound.into_response()
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// RBAC for ServiceAccount tokens (runs after [`auth`]; sgsim's own token is the admin).
async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let user = match bearer {
        _ if req.uri().path().starts_with(TOKEN_PATH_PREFIX) => rbac::User::Admin,
        Some(t) if t == app.token => rbac::User::Admin,
        Some(t) => match sa_token::subject(&app, t) {
            Some((namespace, name)) => rbac::User::ServiceAccount { namespace, name },
            None => return next.run(req).await,
        },
        None => return next.run(req).await,
    };
    let attrs = rbac::attributes(req.method().as_str(), req.uri().path(), req.uri().query());
    match rbac::authorize(&app, &user, &attrs) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix(TOKEN_PATH_PREFIX) {
        let token = rest.split('/').next().unwrap_or_default();
        return if token == app.token {
            next.run(req).await
        } else {
            ApiError::Unauthorized.into_response()
        };
    }
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == app.token || sa_token::verify(&app, t.trim()));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}
