//! [`ApiError`], the one JSON error envelope of the service, and the
//! extractors that answer with it instead of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;
use tenant_core::ContextError;

/// A handler's error, always answered with the envelope
/// `{"error":{"code":"…","message":"…"}}`: a context error (400/401/403
/// with its code), a request refused before any I/O (4xx with a stable
/// code), a timeout, or a database error (500, details logged, not sent).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's context was missing or invalid.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The request was refused: bad input, a bound exceeded, too slow.
    #[error("{message}")]
    Refused {
        /// The HTTP status (4xx, or 503 for a request the service gave up on).
        status: StatusCode,
        /// A stable code, such as `CONTENT_INVALID`.
        code: &'static str,
        /// What went wrong and what to do, in words safe to show the caller
        /// (never the rejected value itself).
        message: String,
    },
    /// The database failed.
    #[error("{error}")]
    Database {
        /// What failed.
        #[source]
        error: tenant_sqlx::Error,
        /// The span the error arose in: the handler's, with its tenant,
        /// agent and conversation, so that the log line written when the
        /// response is made (after the handler returned) carries them.
        span: tracing::Span,
    },
}

impl ApiError {
    /// A refusal with its status, stable code and message.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    /// The stable code a client receives.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Context(e) => e.code(),
            ApiError::Refused { code, .. } => code,
            ApiError::Database { error, .. } if error.retry_after().is_some() => error.code(),
            ApiError::Database { .. } => "DATABASE_ERROR",
        }
    }
}

impl From<tenant_sqlx::Error> for ApiError {
    fn from(error: tenant_sqlx::Error) -> Self {
        ApiError::Database {
            error,
            span: tracing::Span::current(),
        }
    }
}

impl From<tenant_worker::WorkerError> for ApiError {
    fn from(error: tenant_worker::WorkerError) -> Self {
        match error {
            tenant_worker::WorkerError::Database(error) => error.into(),
            other => {
                tracing::error!(code = other.code(), error = %other, "the event was not written");
                ApiError::refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "EVENT_ERROR",
                    "the message's event could not be written; nothing was stored",
                )
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tenant_sqlx::Error::from(error).into()
    }
}

fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Context(e) => e.into_response(),
            ApiError::Refused {
                status,
                code,
                message,
            } => envelope(status, code, &message),
            ApiError::Database { error, .. } if error.retry_after().is_some() => {
                // The tenant is over its share of the pool: 429, not a
                // failure of the service (logged with every other refusal,
                // by the router's outermost layer).
                let retry = error.retry_after().unwrap_or_default().as_secs().max(1);
                let mut response = envelope(
                    StatusCode::TOO_MANY_REQUESTS,
                    error.code(),
                    &error.to_string(),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry));
                response
            }
            ApiError::Database { error, span } => {
                span.in_scope(|| tracing::error!(error = %error, "database error"));
                envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "DATABASE_ERROR",
                    "the database failed; see the service log",
                )
            }
        }
    }
}

/// An [`ApiError`] response after which the connection is closed: the
/// request's body may still be on its way, and is not wanted.
pub(crate) fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// axum's rejection text, shortened: it may quote part of the request.
fn rejection_text(text: String) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `axum::Json`, refused with the envelope: `400 BODY_INVALID` (not JSON),
/// `422 BODY_INVALID` (JSON of the wrong shape), `415 BODY_NOT_JSON`
/// (no JSON `Content-Type`), `413 BODY_TOO_LARGE`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => "BODY_NOT_JSON",
                    _ if status == StatusCode::PAYLOAD_TOO_LARGE => "BODY_TOO_LARGE",
                    _ => "BODY_INVALID",
                };
                Err(ApiError::refused(
                    status,
                    code,
                    rejection_text(rejection.body_text()),
                ))
            }
        }
    }
}

/// `axum::extract::Query`, refused with the envelope: `400 QUERY_INVALID`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::refused(
                    StatusCode::BAD_REQUEST,
                    "QUERY_INVALID",
                    rejection_text(rejection.body_text()),
                )
            })
    }
}

/// `axum::extract::Path`, refused with the envelope: `400 PATH_INVALID`
/// (a segment that is not valid percent-encoded UTF-8, say).
#[derive(Debug, Clone, Copy, Default)]
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParam(value))
            .map_err(|rejection: PathRejection| {
                ApiError::refused(
                    StatusCode::BAD_REQUEST,
                    "PATH_INVALID",
                    rejection_text(rejection.body_text()),
                )
            })
    }
}

/// What a request for a path the service does not have gets:
/// `404 NOT_FOUND`, in the envelope.
pub async fn not_found() -> ApiError {
    ApiError::refused(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such path; the API is under /api/agents/{agent_id}/",
    )
}

/// What a request with a method the path does not serve gets:
/// `405 METHOD_NOT_ALLOWED`, in the envelope.
pub async fn method_not_allowed() -> ApiError {
    ApiError::refused(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this path does not serve that method",
    )
}
