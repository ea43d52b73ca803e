//! What one client may cost the service: time and bytes.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use tokio::time::{timeout_at, Instant};

use crate::error::{closing, ApiError};

/// The bounds on each connection and request. [`Limits::default`] is what
/// `cargo run -p agent-service` uses; every excess is refused with the
/// JSON error envelope and a stable code.
///
/// ```
/// use std::time::Duration;
/// use agent_service::Limits;
///
/// let strict = Limits { request_timeout: Duration::from_secs(5), ..Limits::default() };
/// assert_eq!(strict.max_page, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's head (request line
    /// and headers), and how long an idle keep-alive connection is kept.
    /// Then the connection is closed, without a response. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a request may take once its head has arrived: reading its
    /// body and handling it. A body that has not arrived by then is
    /// `408 REQUEST_TIMEOUT`; a handler that has not answered is cancelled
    /// (its transaction rolled back) and answered `503 RESPONSE_TIMEOUT`.
    /// Default 30 s.
    pub request_timeout: Duration,
    /// How long the connection may stay stalled on a client that does not
    /// read its response (a "slow read"): then it is closed. The clock
    /// restarts whenever the client takes some bytes. Default 10 s.
    pub send_timeout: Duration,
    /// The largest request body, in bytes: `413 BODY_TOO_LARGE`, refused
    /// from `Content-Length` before the body is read, or as soon as a
    /// chunked body goes past it. Default 64 KiB.
    pub max_body_bytes: usize,
    /// The largest message `content`, in bytes of UTF-8:
    /// `413 CONTENT_TOO_LARGE`. Default 32 KiB.
    pub max_content_bytes: usize,
    /// How many messages a page has when the request does not say
    /// (`limit`). Default 50.
    pub default_page: u32,
    /// The most messages a page may ask for: a larger `limit` is
    /// `400 LIMIT_INVALID`. Default 100.
    pub max_page: u32,
    /// The largest body of a message list: a page ends before the message
    /// that would take it past this, and its `next_before` says where the
    /// next page starts. (A page always has at least one message, which
    /// `max_content_bytes` bounds.) Default 1 MiB.
    pub max_response_bytes: usize,
    /// Requests per second each tenant may make (after a burst of
    /// [`tenant_burst`](Self::tenant_burst)): more is
    /// `429 RATE_LIMITED` with `Retry-After`. Default 50.
    pub tenant_rate_per_second: u32,
    /// The burst each tenant may make at once. Default 100.
    pub tenant_burst: u32,
    /// The most database connections one tenant holds while others may
    /// need one (the pool has 10). Default 5.
    pub tenant_connections: u32,
    /// How long a tenant's request waits for its share of the pool:
    /// then `429 TENANT_BUSY` with `Retry-After`. Default 5 s.
    pub tenant_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            max_content_bytes: 32 * 1024,
            default_page: 50,
            max_page: 100,
            max_response_bytes: 1024 * 1024,
            tenant_rate_per_second: 50,
            tenant_burst: 100,
            tenant_connections: 5,
            tenant_wait: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The per-tenant request rate limit these limits describe.
    pub fn rate_limit(&self) -> tenant_core::ratelimit::TenantRateLimitLayer {
        use std::num::NonZeroU32;
        use tenant_core::ratelimit::{Quota, TenantRateLimitLayer};
        let rate = NonZeroU32::new(self.tenant_rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.tenant_burst).unwrap_or(rate);
        TenantRateLimitLayer::new(Quota::per_second(rate).allow_burst(burst))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn body_too_large(max: usize) -> ApiError {
    ApiError::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BODY_TOO_LARGE",
        format!("the request body is larger than {max} bytes"),
    )
}

enum BodyError {
    TooLarge,
    Unreadable,
}

/// The whole body, or an error as soon as it passes `max` bytes.
async fn read_body(body: Body, max: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The edge of every request, outside the context layer: the request
/// timeout and the body limit.
///
/// The body is read here, under the deadline, before any handler runs, so
/// that a client trickling its body is told `408` instead of holding a
/// handler (and, later, a database connection), and so that a body over
/// the limit is refused before it is buffered.
pub(crate) async fn edge(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let deadline = Instant::now() + limits.request_timeout;
    let (parts, body) = request.into_parts();
    let max = limits.max_body_bytes;
    if declared_length(&parts.headers).is_some_and(|len| len > max as u64) {
        return closing(body_too_large(max));
    }
    let body = match timeout_at(deadline, read_body(body, max)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge)) => return closing(body_too_large(max)),
        Ok(Err(BodyError::Unreadable)) => {
            return closing(ApiError::refused(
                StatusCode::BAD_REQUEST,
                "BODY_INVALID",
                "the request body could not be read",
            ))
        }
        Err(_) => {
            return closing(ApiError::refused(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the request did not arrive within {} ms",
                    limits.request_timeout.as_millis()
                ),
            ))
        }
    };
    let request = Request::from_parts(parts, Body::from(body));
    match timeout_at(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => closing(ApiError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "RESPONSE_TIMEOUT",
            format!(
                "the service did not answer within {} ms and gave up on the request; \
                 try again later",
                limits.request_timeout.as_millis()
            ),
        )),
    }
}
