//! The one `Executor` forwarding shared by [`TenantTx`](crate::TenantTx),
//! [`Savepoint`](crate::Savepoint) and [`AdminConn`](crate::AdminConn):
//! `&mut` of each is an sqlx executor that forwards to the session inside,
//! as sqlx's own `&mut PgListener` does. None of them hands the
//! `PgConnection` itself out: a `&mut PgConnection` can be swapped with
//! another session.

use sqlx::PgConnection;

/// The session a statement runs on, after the wrapper's own checks.
/// Crate-private: nothing outside reaches the connection.
pub(crate) trait Session {
    /// The connection for a statement whose text is `sql`, or why not.
    fn session(&mut self, sql: &str) -> Result<&mut PgConnection, sqlx::Error>;
}

macro_rules! forward_executor {
    ($ty:ty) => {
        impl<'t> ::sqlx::Executor<'t> for &'t mut $ty {
            type Database = ::sqlx::Postgres;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::stream::BoxStream<
                'e,
                Result<
                    ::sqlx::Either<::sqlx::postgres::PgQueryResult, ::sqlx::postgres::PgRow>,
                    ::sqlx::Error,
                >,
            >
            where
                't: 'e,
                E: 'q + ::sqlx::Execute<'q, ::sqlx::Postgres>,
            {
                match $crate::executor::Session::session(self, ::sqlx::Execute::sql(&query)) {
                    Ok(conn) => ::sqlx::Executor::fetch_many(conn, query),
                    Err(e) => ::std::boxed::Box::pin(::futures_util::stream::once(
                        ::futures_util::future::ready(Err(e)),
                    )),
                }
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<Option<::sqlx::postgres::PgRow>, ::sqlx::Error>,
            >
            where
                't: 'e,
                E: 'q + ::sqlx::Execute<'q, ::sqlx::Postgres>,
            {
                match $crate::executor::Session::session(self, ::sqlx::Execute::sql(&query)) {
                    Ok(conn) => ::sqlx::Executor::fetch_optional(conn, query),
                    Err(e) => ::std::boxed::Box::pin(::futures_util::future::ready(Err(e))),
                }
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [::sqlx::postgres::PgTypeInfo],
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<::sqlx::postgres::PgStatement<'q>, ::sqlx::Error>,
            >
            where
                't: 'e,
            {
                match $crate::executor::Session::session(self, sql) {
                    Ok(conn) => ::sqlx::Executor::prepare_with(conn, sql, parameters),
                    Err(e) => ::std::boxed::Box::pin(::futures_util::future::ready(Err(e))),
                }
            }

            #[doc(hidden)]
            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> ::futures_util::future::BoxFuture<
                'e,
                Result<::sqlx::Describe<::sqlx::Postgres>, ::sqlx::Error>,
            >
            where
                't: 'e,
            {
                match $crate::executor::Session::session(self, sql) {
                    Ok(conn) => ::sqlx::Executor::describe(conn, sql),
                    Err(e) => ::std::boxed::Box::pin(::futures_util::future::ready(Err(e))),
                }
            }
        }
    };
}
