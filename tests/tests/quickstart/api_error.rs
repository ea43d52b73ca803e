enum ApiError { Context(ContextError), Db(tenant_sqlx::Error) }
impl From<ContextError> for ApiError { fn from(e: ContextError) -> Self { Self::Context(e) } }
impl From<tenant_sqlx::Error> for ApiError { fn from(e: tenant_sqlx::Error) -> Self { Self::Db(e) } }
impl From<sqlx::Error> for ApiError { fn from(e: sqlx::Error) -> Self { Self::Db(e.into()) } }
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Context(e) => e.into_response(), // 400/401/403 {"error":{"code":…,"message":…}}
            Self::Db(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.code()).into_response(),
        }
    }
}
