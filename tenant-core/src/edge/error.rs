//! [`EdgeError`]: why the edge refused a request, with stable codes.

use std::borrow::Cow;

use crate::error::ContextError;
use crate::response::JSON_CONTENT_TYPE;

/// Why a bearer token was refused. Every variant is a `401` with a
/// `WWW-Authenticate: Bearer` challenge (RFC 6750), except
/// [`AuthorizationRepeated`](Self::AuthorizationRepeated), a `400`.
///
/// | code | when |
/// | --- | --- |
/// | `TOKEN_MISSING` | no `Authorization` header, or not the `Bearer` scheme |
/// | `AUTHORIZATION_REPEATED` | more than one `Authorization` header |
/// | `TOKEN_TOO_LARGE` | the header is over [`MAX_TOKEN_BYTES`](crate::edge::MAX_TOKEN_BYTES) (8 KiB) |
/// | `TOKEN_MALFORMED` | not three base64url parts of JSON |
/// | `TOKEN_INVALID` | a wrong signature, an algorithm this service does not accept for the key (`none`, HS256 with an RSA key...), an unknown key id |
/// | `TOKEN_EXPIRED` | `exp` has passed (beyond the leeway) |
/// | `TOKEN_NOT_YET_VALID` | `nbf` is still ahead (beyond the leeway) |
/// | `TOKEN_AUDIENCE_INVALID` | `aud` is missing or not this service |
/// | `TOKEN_ISSUER_INVALID` | `iss` is missing or not a configured issuer |
/// | `TOKEN_CLAIM_INVALID` | the tenant claim is missing, not a string or not a valid tenant id (`default`, upper case...); the agent claim likewise; `exp` is missing |
///
/// Only a token whose signature verified can get past `TOKEN_INVALID`: the
/// time, audience, issuer and claim checks run after it.
///
/// ```
/// use tenant_core::edge::TokenError;
/// let err = TokenError::Expired;
/// assert_eq!(err.code(), "TOKEN_EXPIRED");
/// assert_eq!(err.http_status(), 401);
/// assert_eq!(err.www_authenticate(), r#"Bearer error="invalid_token", error_description="the bearer token has expired""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No bearer token was sent.
    #[error("a bearer token is required: send `Authorization: Bearer <token>`")]
    Missing,
    /// The `Authorization` header was sent more than once.
    #[error("the `authorization` header must be sent exactly once")]
    AuthorizationRepeated,
    /// The `Authorization` header is longer than the bound.
    #[error("the bearer token is longer than {max} bytes")]
    TooLarge {
        /// The bound, in bytes.
        max: usize,
    },
    /// Not a JWT: three base64url parts, the first two JSON.
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    /// The signature did not verify with any key this service accepts for
    /// the token's algorithm, or the algorithm is not accepted.
    #[error("the bearer token's signature is not valid: {reason}")]
    Invalid {
        /// Why, in words safe to show the caller.
        reason: Cow<'static, str>,
    },
    /// `exp` has passed.
    #[error("the bearer token has expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    /// `aud` is missing or names another service.
    #[error("the bearer token is not meant for this service (`aud`)")]
    AudienceInvalid,
    /// `iss` is missing or not a trusted issuer.
    #[error("the bearer token comes from an issuer this service does not trust (`iss`)")]
    IssuerInvalid,
    /// A claim the service needs is missing or unusable.
    #[error("the bearer token's `{claim}` claim {problem}")]
    ClaimInvalid {
        /// The claim's name.
        claim: Cow<'static, str>,
        /// What is wrong with it.
        problem: Cow<'static, str>,
    },
}

impl TokenError {
    /// A stable, machine-readable code, such as `TOKEN_EXPIRED`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "TOKEN_MISSING",
            TokenError::AuthorizationRepeated => "AUTHORIZATION_REPEATED",
            TokenError::TooLarge { .. } => "TOKEN_TOO_LARGE",
            TokenError::Malformed => "TOKEN_MALFORMED",
            TokenError::Invalid { .. } => "TOKEN_INVALID",
            TokenError::Expired => "TOKEN_EXPIRED",
            TokenError::NotYetValid => "TOKEN_NOT_YET_VALID",
            TokenError::AudienceInvalid => "TOKEN_AUDIENCE_INVALID",
            TokenError::IssuerInvalid => "TOKEN_ISSUER_INVALID",
            TokenError::ClaimInvalid { .. } => "TOKEN_CLAIM_INVALID",
        }
    }

    /// `401`, or `400` for a repeated `Authorization` header (RFC 6750's
    /// `invalid_request`).
    pub fn http_status(&self) -> u16 {
        match self {
            TokenError::AuthorizationRepeated => 400,
            _ => 401,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3): bare `Bearer` when
    /// no token was sent, else with an `error` attribute
    /// (`invalid_request` or `invalid_token`) and a description.
    pub fn www_authenticate(&self) -> String {
        let error = match self {
            TokenError::Missing => return "Bearer".to_owned(),
            TokenError::AuthorizationRepeated => "invalid_request",
            _ => "invalid_token",
        };
        // A quoted-string: no quote or backslash may end it early.
        let description: String = self
            .to_string()
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                c if c.is_ascii() && !c.is_ascii_control() => c,
                _ => '?',
            })
            .collect();
        format!(r#"Bearer error="{error}", error_description="{description}""#)
    }
}

/// Why the edge refused a request: a context error (a repeated header, a
/// malformed tenant, two sources that disagree), a host it cannot read, or
/// a bearer token it does not accept.
///
/// Every variant has a stable [`code`](Self::code) and an
/// [`http_status`](Self::http_status), and renders as the same JSON
/// envelope as [`ContextError`]:
/// `{"error":{"code":"TOKEN_EXPIRED","message":"..."}}`.
///
/// | code | status | when |
/// | --- | --- | --- |
/// | the [`ContextError`] codes | 400/403 | `HEADER_REPEATED`, `TENANT_INVALID`, `TENANT_MISMATCH` (two sources name different tenants)... |
/// | `TENANT_HEADER_UNTRUSTED` | 403 | an `X-Tenant-ID` header, not a trusted source here, and no source named a tenant |
/// | `AGENT_MISMATCH` | 403 | `X-Agent-ID` differs from the token's agent claim |
/// | `HOST_INVALID` | 400 | a host with upper case, an IDN (`xn--`, non-ASCII), a port not allowed, a nested subdomain |
/// | `FORWARDED_HOST_UNTRUSTED` | 400 | `X-Forwarded-Host` from a peer that is not a trusted proxy |
/// | the [`TokenError`] codes | 401/400 | with `WWW-Authenticate` |
///
/// ```
/// use tenant_core::edge::{EdgeError, TokenError};
///
/// let res: http::Response<String> = EdgeError::from(TokenError::Missing).to_http_response();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// let json: serde_json::Value = serde_json::from_str(res.body()).unwrap();
/// assert_eq!(json["error"]["code"], "TOKEN_MISSING");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// A context error: the headers, or the resolved tenant.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A tenant header was sent to a service that does not trust it, and
    /// no trusted source named a tenant.
    #[error("this service does not take the tenant from the tenant header; authenticate instead (for example with a bearer token)")]
    TenantHeaderUntrusted,
    /// `X-Agent-ID` differs from the agent claim of the bearer token.
    #[error("the agent header differs from the agent in the bearer token")]
    AgentMismatch,
    /// The host cannot name a tenant.
    #[error("the host {reason}")]
    HostInvalid {
        /// Why, in words safe to show the caller.
        reason: Cow<'static, str>,
    },
    /// `X-Forwarded-Host` came from a peer that is not a trusted proxy.
    #[error("`x-forwarded-host` is only accepted from a trusted proxy")]
    ForwardedHostUntrusted,
    /// The bearer token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl EdgeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::Context(e) => e.code(),
            EdgeError::TenantHeaderUntrusted => "TENANT_HEADER_UNTRUSTED",
            EdgeError::AgentMismatch => "AGENT_MISMATCH",
            EdgeError::HostInvalid { .. } => "HOST_INVALID",
            EdgeError::ForwardedHostUntrusted => "FORWARDED_HOST_UNTRUSTED",
            EdgeError::Token(e) => e.code(),
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            EdgeError::Context(e) => e.http_status(),
            EdgeError::TenantHeaderUntrusted | EdgeError::AgentMismatch => 403,
            EdgeError::HostInvalid { .. } | EdgeError::ForwardedHostUntrusted => 400,
            EdgeError::Token(e) => e.http_status(),
        }
    }

    pub(crate) fn host(reason: impl Into<Cow<'static, str>>) -> Self {
        EdgeError::HostInvalid {
            reason: reason.into(),
        }
    }

    /// The JSON body: `{"error":{"code":...,"message":...}}`.
    pub fn to_json_body(&self) -> String {
        crate::response::json_envelope(self.code(), &self.to_string())
    }

    /// The complete response: status, JSON body and, for a token error,
    /// `WWW-Authenticate`.
    pub fn to_http_response<B: From<String>>(&self) -> ::http::Response<B> {
        let mut res = ::http::Response::new(B::from(self.to_json_body()));
        *res.status_mut() = ::http::StatusCode::from_u16(self.http_status())
            .unwrap_or(::http::StatusCode::BAD_REQUEST);
        let headers = res.headers_mut();
        headers.insert(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        if let EdgeError::Token(e) = self {
            if let Ok(value) = ::http::HeaderValue::from_str(&e.www_authenticate()) {
                headers.insert(::http::header::WWW_AUTHENTICATE, value);
            }
        }
        res
    }
}

#[cfg(feature = "axum")]
impl ::axum::response::IntoResponse for EdgeError {
    fn into_response(self) -> ::axum::response::Response {
        self.to_http_response()
    }
}
