//! `ContextError` as an axum response (feature `axum`).
//!
//! A handler whose error type is [`ContextError`] (or converts into one that
//! is) answers with the error's [`http_status`](ContextError::http_status)
//! and the JSON body of [`ContextError::to_json_body`]:
//!
//! ```
//! use axum::response::IntoResponse;
//! use tenant_core::ContextError;
//!
//! let res = ContextError::TenantRequired.into_response();
//! assert_eq!(res.status(), 400);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! ```

use axum::response::{IntoResponse, Response};

use crate::error::ContextError;

impl IntoResponse for ContextError {
    fn into_response(self) -> Response {
        self.to_http_response()
    }
}
