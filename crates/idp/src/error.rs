//! The one place protocol errors become HTTP responses.
//!
//! RFC 6749 §5.2: a JSON body with `error` and `error_description`, status 400, or 401 for
//! `invalid_client` (with `WWW-Authenticate: Basic` when the client tried Basic); never
//! cached. Okta-style 404s for unknown authorization servers. Internal failures are logged
//! here with detail and answered with a generic `server_error` / `temporarily_unavailable`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{OAuthError, OAuthErrorCode};

/// Anything a protocol endpoint can fail with.
#[derive(Debug)]
pub enum EndpointError {
    /// The client got something wrong, or is not allowed: RFC 6749 error.
    OAuth(OAuthError),
    /// No such (active) authorization server.
    ServerNotFound(String),
    /// The request body exceeded its bound.
    TooLarge,
    /// A failure on our side; the detail goes to the log, never to the client.
    Internal(String),
    /// A dependency (the database) is unavailable.
    Unavailable(String),
}

impl From<OAuthError> for EndpointError {
    fn from(e: OAuthError) -> Self {
        EndpointError::OAuth(e)
    }
}

impl From<portcullis_store::StoreError> for EndpointError {
    fn from(e: portcullis_store::StoreError) -> Self {
        EndpointError::Unavailable(e.to_string())
    }
}

pub fn oauth_status(code: OAuthErrorCode) -> StatusCode {
    match code {
        OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn oauth_response(e: &OAuthError) -> Response {
    let body = serde_json::json!({ "error": e.code.as_str(), "error_description": e.description });
    let mut resp = (oauth_status(e.code), axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if e.code == OAuthErrorCode::InvalidClient && e.basic_challenge {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    resp
}

/// Okta's error body: `{errorCode, errorSummary, errorLink, errorId, errorCauses}`.
pub fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    let body = serde_json::json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": format!("oae{}", portcullis_core::ids::random_base62(19)),
        "errorCauses": [],
    });
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for EndpointError {
    fn into_response(self) -> Response {
        match self {
            EndpointError::OAuth(e) => oauth_response(&e),
            EndpointError::ServerNotFound(id) => okta_error(
                StatusCode::NOT_FOUND,
                "E0000007",
                &format!("Not found: Resource not found: {id} (AuthorizationServer)"),
            ),
            EndpointError::TooLarge => {
                let mut r = oauth_response(&OAuthError::invalid_request("The request body is too large."));
                *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                r
            }
            EndpointError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                oauth_response(&OAuthError::server_error())
            }
            EndpointError::Unavailable(detail) => {
                tracing::error!(error = %detail, "dependency unavailable");
                oauth_response(&OAuthError::temporarily_unavailable())
            }
        }
    }
}
