//! Kubernetes API errors as `Status` bodies (apimachinery `pkg/api/errors` wording).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::logs::LogError;

/// A resource named the way apimachinery's `GroupResource.String()` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    /// API group, empty for core.
    pub group: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
}

impl GroupResource {
    /// A group resource from its parts.
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// One field error of an `Invalid` status (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason, e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`.
    pub reason: String,
    /// Full field error text, e.g. `spec.containers[0].name: Required value`.
    pub message: String,
    /// Field path, e.g. `spec.containers[0].name`.
    pub field: String,
}

/// An API error, rendered as a Kubernetes `Status` body with the matching HTTP code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 NotFound for a named object: `pods "x" not found`.
    #[error("{resource} {name:?} not found")]
    NotFound {
        /// The resource looked up.
        resource: GroupResource,
        /// The object name.
        name: String,
    },
    /// 404 NotFound with a free-form message (e.g. a node's answer to a log request).
    #[error("{0}")]
    NotFoundMessage(String),
    /// 404 NotFound for a URL no handler serves.
    #[error("the server could not find the requested resource")]
    PathNotFound,
    /// 409 AlreadyExists: `pods "x" already exists`.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// The resource created.
        resource: GroupResource,
        /// The object name.
        name: String,
    },
    /// 409 Conflict: `Operation cannot be fulfilled on pods "x": <detail>`.
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {detail}")]
    Conflict {
        /// The resource written.
        resource: GroupResource,
        /// The object name.
        name: String,
        /// Why, e.g. the stale resourceVersion text.
        detail: String,
    },
    /// 403 Forbidden: `pods "x" is forbidden: <detail>`, `pods is forbidden: <detail>` without a
    /// name, `forbidden: <detail>` without a resource (Kubernetes' `NewForbidden`).
    #[error("{}", forbidden_message(.resource, .name, .detail))]
    Forbidden {
        /// The resource written.
        resource: GroupResource,
        /// The object name.
        name: String,
        /// Why, e.g. the admission plugin's message.
        detail: String,
    },
    /// 422 Invalid: `Pod "x" is invalid: <field errors>`.
    #[error("{} {name:?} is invalid: {}", qualified_kind(.group, .kind), join_causes(.causes))]
    Invalid {
        /// API group of the kind.
        group: String,
        /// Kind, e.g. `Pod`.
        kind: String,
        /// The object name.
        name: String,
        /// The field errors.
        causes: Vec<Cause>,
    },
    /// 400 BadRequest with a free-form message.
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized (missing or wrong bearer token).
    #[error("Unauthorized")]
    Unauthorized,
    /// 405 MethodNotAllowed: `<verb> is not supported on resources of kind "pods"`.
    #[error("{verb} is not supported on resources of kind {:?}", .resource.to_string())]
    MethodNotSupported {
        /// The resource addressed.
        resource: GroupResource,
        /// The verb, e.g. `create`.
        verb: String,
    },
    /// 410 Expired: e.g. `too old resource version: 5 (100)`.
    #[error("{0}")]
    Expired(String),
    /// 415 UnsupportedMediaType for a patch content type we do not understand.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
    )]
    UnsupportedMediaType,
    /// 415 UnsupportedMediaType for an object body that is not JSON (e.g. protobuf).
    #[error("the body of the request was in an unknown format - accepted media types include: application/json")]
    UnsupportedBodyType,
    /// 422 Invalid for a JSON patch that does not apply to the object (a missing path, a failed
    /// `test`): Kubernetes answers with its generic 422 message and drops the patch library's
    /// text (which is kept here for logs only).
    #[error("the server rejected our request due to an error in our request")]
    PatchNotApplicable(String),
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn forbidden_message(resource: &GroupResource, name: &str, detail: &str) -> String {
    if resource.resource.is_empty() {
        format!("forbidden: {detail}")
    } else if name.is_empty() {
        format!("{resource} is forbidden: {detail}")
    } else {
        format!("{resource} {name:?} is forbidden: {detail}")
    }
}

fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

fn join_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.message.clone(),
        many => format!(
            "[{}]",
            many.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `meta/v1 Status`, fields in Kubernetes' order.
#[derive(Serialize)]
struct StatusBody {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

/// `StatusDetails`, fields in Kubernetes' order.
#[derive(Serialize, Default)]
pub struct Details {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Value>,
}

impl Details {
    /// Details naming one object (uid may be empty).
    pub fn new(name: &str, group: &str, kind: &str, uid: &str) -> Self {
        Self {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            uid: uid.into(),
            causes: Vec::new(),
        }
    }
}

fn details(name: &str, group: &str, kind: &str) -> Details {
    Details::new(name, group, kind, "")
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } | Self::PathNotFound | Self::NotFoundMessage(_) => StatusCode::NOT_FOUND,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Invalid { .. } | Self::PatchNotApplicable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotSupported { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Expired(_) => StatusCode::GONE,
            Self::UnsupportedMediaType | Self::UnsupportedBodyType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::PathNotFound | Self::NotFoundMessage(_) => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Forbidden { .. } => "Forbidden",
            Self::Invalid { .. } | Self::PatchNotApplicable(_) => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::MethodNotSupported { .. } => "MethodNotAllowed",
            Self::Expired(_) => "Expired",
            Self::UnsupportedMediaType | Self::UnsupportedBodyType => "UnsupportedMediaType",
            Self::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Details> {
        match self {
            Self::NotFound { resource, name }
            | Self::AlreadyExists { resource, name }
            | Self::Conflict { resource, name, .. }
            | Self::Forbidden { resource, name, .. } => Some(details(name, &resource.group, &resource.resource)),
            Self::PathNotFound | Self::PatchNotApplicable(_) => Some(Details::default()),
            Self::Invalid {
                group,
                kind,
                name,
                causes,
            } => {
                let mut d = Details::new(name, group, kind, "");
                d.causes = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(d)
            }
            Self::MethodNotSupported { resource, .. } => Some(details("", &resource.group, &resource.resource)),
            Self::Internal(m) => Some(Details {
                causes: vec![json!({"message": m})],
                ..Details::default()
            }),
            _ => None,
        }
    }

    /// The `Status` body as JSON.
    pub fn body(&self) -> Value {
        serde_json::to_value(self.status_body()).unwrap_or(Value::Null)
    }

    fn status_body(&self) -> StatusBody {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: json!({}),
            status: "Failure",
            message: Some(self.to_string()),
            reason: Some(self.reason()),
            details: self.details(),
            code: self.code().as_u16(),
        }
    }

    /// The `Status` body serialized in Kubernetes' field order.
    pub fn body_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.status_body()).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.code(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body_bytes(),
        )
            .into_response()
    }
}

/// A `Status` with `status: Success` (delete of a non-pod object, binding), in Kubernetes' order;
/// `code` 0 is omitted as Kubernetes does.
pub fn success(code: u16, details: Option<Details>) -> Vec<u8> {
    let body = StatusBody {
        kind: "Status",
        api_version: "v1",
        metadata: json!({}),
        status: "Success",
        message: None,
        reason: None,
        details,
        code,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A node's answer to a log request, as the API server reports it.
impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::BadRequest(m) => ApiError::BadRequest(m),
            LogError::NotFound(m) => ApiError::NotFoundMessage(m),
            LogError::Io(e) => ApiError::Internal(e.to_string()),
            LogError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// Shortcut: 404 for `resource`/`name`.
pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
    ApiError::NotFound {
        resource: GroupResource::new(group, resource),
        name: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_body() {
        let e = not_found("", "pods", "x");
        assert_eq!(
            String::from_utf8(e.body_bytes()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
    }
}
