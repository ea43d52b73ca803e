//! One `INFO` line for every refused request: its stable code, status,
//! method, path, and the tenant when the request got as far as resolving
//! one.
//!
//! Refusals are made in many places: the context layer (`401`, `403`, `400`
//! for a missing or bad context), the rate limit (`429`), the edge (`408`,
//! `413`, `503`), the extractors and the handlers ([`ApiError`]). Logging
//! each where it is made would miss some and count others twice, so one
//! middleware, outside all of them, logs the response: [`log`]. The code
//! is read from the JSON envelope every refusal carries. The tenant is
//! only known inside the context layer: [`tag`], just inside it, puts the
//! resolved tenant on the error response for [`log`] to read.
//!
//! A `500` is not a refusal: it is logged at `ERROR`, with its cause,
//! where it happens.
//!
//! [`ApiError`]: crate::ApiError

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tenant_core::layer::RefusedCaller;
use tenant_core::{Incoming, TenantId};

/// The largest error body read for its code; every envelope is far
/// smaller, and a larger body is passed on unread.
const MAX_ENVELOPE_BYTES: u64 = 16 * 1024;

/// The tenant a refused request resolved to, carried on the response from
/// [`tag`] (inside the context layer) out to [`log`].
#[derive(Debug, Clone)]
struct RefusedTenant(TenantId);

/// Whether a response refuses its request: a `4xx`, or `503` when the
/// service gave up on it (`RESPONSE_TIMEOUT`).
fn refused(status: StatusCode) -> bool {
    status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE
}

/// The tenant of the request in scope: the authenticated principal's, else
/// the raw one (a trusted gateway's header), if it is a valid tenant id.
fn resolved_tenant() -> Option<TenantId> {
    let incoming = Incoming::current()?;
    let tenant = match incoming.principal() {
        Some(principal) => principal.tenant(),
        None => incoming.raw().raw_tenant()?,
    };
    TenantId::parse(tenant).ok()
}

/// Inside the context layer: marks a refusal with the request's resolved
/// tenant, for [`log`].
pub(crate) async fn tag(request: Request, next: Next) -> Response {
    let tenant = resolved_tenant();
    let mut response = next.run(request).await;
    if let (true, Some(tenant)) = (refused(response.status()), tenant) {
        response.extensions_mut().insert(RefusedTenant(tenant));
    }
    response
}

/// The `code` of an error envelope `{"error":{"code":…}}`.
fn envelope_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value["error"]["code"].as_str()?.to_owned())
}

/// Outside every layer that refuses: logs each refused request once, at
/// `INFO`, as `request refused` with `code`, `status`, `method`, `path`,
/// `retry_after_s` for a `429`, and, if one was resolved, `tenant`.
pub(crate) async fn log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !refused(status) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The resolved tenant; for a request the context layer refused because
    // it named another tenant or agent than its token, the token's tenant
    // (the caller who tried).
    let tenant = parts.extensions.remove::<RefusedTenant>().or_else(|| {
        parts
            .extensions
            .remove::<RefusedCaller>()
            .map(|c| RefusedTenant(c.tenant().clone()))
    });
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= MAX_ENVELOPE_BYTES);
    let (code, body) = if small {
        match axum::body::to_bytes(body, MAX_ENVELOPE_BYTES as usize).await {
            Ok(bytes) => (envelope_code(&bytes), Body::from(bytes)),
            Err(_) => (None, Body::empty()),
        }
    } else {
        (None, body)
    };
    // A `429`'s `Retry-After` (seconds), so the line says when the tenant
    // is let in again.
    let retry_after = parts
        .headers
        .get(axum::http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    tracing::info!(
        code = code.as_deref().unwrap_or("UNKNOWN"),
        status = status.as_u16(),
        tenant = tenant.as_ref().map(|t| t.0.as_str()),
        retry_after_s = retry_after,
        %method,
        path,
        "request refused"
    );
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_client_errors_and_503() {
        assert!(refused(StatusCode::UNAUTHORIZED));
        assert!(refused(StatusCode::TOO_MANY_REQUESTS));
        assert!(refused(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!refused(StatusCode::OK));
        assert!(!refused(StatusCode::INTERNAL_SERVER_ERROR));
    }

    #[test]
    fn the_code_is_read_from_the_envelope() {
        let body = br#"{"error":{"code":"TENANT_MISMATCH","message":"..."}}"#;
        assert_eq!(envelope_code(body).as_deref(), Some("TENANT_MISMATCH"));
        assert_eq!(envelope_code(b"not json"), None);
        assert_eq!(envelope_code(br#"{"error":"x"}"#), None);
    }
}
