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

/// The routes. Credentials come only from the `Authorization: Bearer` header (the server is
/// HTTPS, so clients send them; nothing in a URL authenticates).
fn routes(app: &App) -> Router<App> {
    let protected = Router::new()
        .route("/api", get(discovery::api_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            any(subresources::pod_portforward),
        )
        .route("/api/v1/{*rest}", any(dispatch::core_handler))
        .route("/apis", get(discovery::group_list))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/apis/{group}/{version}/{*rest}", any(dispatch::group_handler))
        .route("/openapi/v2", get(discovery::openapi_v2))
        .route("/openapi/v3", get(discovery::openapi_v3_index))
        .route("/openapi/v3/api/{version}", get(discovery::openapi_v3_core))
        .route("/openapi/v3/apis/{group}/{version}", get(discovery::openapi_v3_group))
        .layer(middleware::from_fn_with_state(Arc::clone(app), authorize))
        .layer(middleware::from_fn_with_state(Arc::clone(app), auth));
    let public = Router::new()
        .route("/version", get(discovery::version))
        // The Python client asks for `/version/`; kube-apiserver serves both.
        .route("/version/", get(discovery::version))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }));
    protected.merge(public)
}

/// The whole router.
pub fn router(app: App) -> Router {
    routes(&app)
        .fallback(fallback)
        // Kubernetes' request body limit (3 MiB); larger bodies get 413.
        .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(app)
}

/// The bearer token of a request's `Authorization` header.
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether the request carries sgsim's own token or a valid ServiceAccount token.
fn authenticated(app: &App, req: &Request) -> bool {
    bearer(req).is_some_and(|t| t == app.token || sa_token::verify(app, t))
}

async fn fallback(State(app): State<App>, req: Request) -> Response {
    if authenticated(&app, &req) {
        ApiError::PathNotFound.into_response()
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// RBAC for ServiceAccount tokens (runs after [`auth`]; sgsim's own token is the admin).
async fn authorize(State(app): State<App>, req: Request, next: Next) -> Response {
    let user = match bearer(&req) {
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
    if authenticated(&app, &req) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}
