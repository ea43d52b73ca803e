//! The JSON error body shared by the tower layer and the axum integration.

use crate::error::ContextError;

/// The `Content-Type` of [`ContextError::to_json_body`].
pub const JSON_CONTENT_TYPE: &str = "application/json";

impl ContextError {
    /// The error as the JSON body a client receives:
    /// `{"error":{"code":"TENANT_REQUIRED","message":"..."}}`.
    ///
    /// The one place the body is rendered, used by
    /// [`ContextLayer`](crate::layer::ContextLayer) (feature `tower`) and by
    /// `IntoResponse for ContextError` (feature `axum`).
    ///
    /// ```
    /// use tenant_core::ContextError;
    ///
    /// let body = ContextError::TenantRequired.to_json_body();
    /// let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    /// assert_eq!(json["error"]["code"], "TENANT_REQUIRED");
    /// ```
    pub fn to_json_body(&self) -> String {
        json_envelope(self.code(), &self.to_string())
    }

    /// The error as a complete HTTP response: [`http_status`](Self::http_status),
    /// a JSON `Content-Type` and [`to_json_body`](Self::to_json_body) as the
    /// body, converted into the body type `B` (`String`, `axum::body::Body`, ...).
    ///
    /// ```
    /// use tenant_core::ContextError;
    ///
    /// let res: http::Response<String> = ContextError::TenantRequired.to_http_response();
    /// assert_eq!(res.status(), 400);
    /// assert_eq!(res.headers()["content-type"], "application/json");
    /// ```
    pub fn to_http_response<B: From<String>>(&self) -> ::http::Response<B> {
        let mut res = ::http::Response::new(B::from(self.to_json_body()));
        *res.status_mut() = ::http::StatusCode::from_u16(self.http_status())
            .unwrap_or(::http::StatusCode::BAD_REQUEST);
        res.headers_mut().insert(
            ::http::header::CONTENT_TYPE,
            ::http::HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        res
    }
}

/// The one JSON error envelope every refusal uses:
/// `{"error":{"code":...,"message":...}}`.
pub(crate) fn json_envelope(code: &str, message: &str) -> String {
    serde_json::json!({
        "error": {
            "code": code,
            "message": message,
        }
    })
    .to_string()
}
