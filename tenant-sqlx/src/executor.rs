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

    /// Behind a transaction pooler: every statement is prepared unnamed.
    /// sqlx 0.8.6 names a statement it means to keep even with its cache
    /// off, and never closes it: on a server session that other clients
    /// share, those names pile up and clash.
    fn unnamed_statements(&self) -> bool {
        false
    }
}

/// A query whose text was read once, by the checks: sqlx reads `sql()`
/// again to run it, and an `Execute` written to answer differently the
/// second time must run what was checked.
pub(crate) struct Checked<'q, E> {
    sql: &'q str,
    query: E,
    unnamed: bool,
}

impl<'q, E: sqlx::Execute<'q, sqlx::Postgres>> Checked<'q, E> {
    pub(crate) fn new(query: E) -> Self {
        Checked {
            sql: query.sql(),
            query,
            unnamed: false,
        }
    }

    pub(crate) fn unnamed(mut self, unnamed: bool) -> Self {
        self.unnamed = unnamed;
        self
    }

    pub(crate) fn text(&self) -> &'q str {
        self.sql
    }
}

impl<'q, E: sqlx::Execute<'q, sqlx::Postgres>> sqlx::Execute<'q, sqlx::Postgres>
    for Checked<'q, E>
{
    fn sql(&self) -> &'q str {
        self.sql
    }

    fn statement(&self) -> Option<&sqlx::postgres::PgStatement<'q>> {
        // sqlx takes only the metadata (column and parameter types) from a
        // statement; the text it runs is `sql()`.
        self.query.statement()
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::postgres::PgArguments>, sqlx::error::BoxDynError> {
        self.query.take_arguments()
    }

    fn persistent(&self) -> bool {
        !self.unnamed && self.query.persistent()
    }
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
                let unnamed = $crate::executor::Session::unnamed_statements(&*self);
                let query = $crate::executor::Checked::new(query).unnamed(unnamed);
                match $crate::executor::Session::session(self, query.text()) {
                    Ok(conn) => ::std::boxed::Box::pin(::futures_util::TryStreamExt::map_err(
                        ::sqlx::Executor::fetch_many(conn, query),
                        $crate::error::pooler_hint,
                    )),
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
                let unnamed = $crate::executor::Session::unnamed_statements(&*self);
                let query = $crate::executor::Checked::new(query).unnamed(unnamed);
                match $crate::executor::Session::session(self, query.text()) {
                    Ok(conn) => ::std::boxed::Box::pin(::futures_util::TryFutureExt::map_err(
                        ::sqlx::Executor::fetch_optional(conn, query),
                        $crate::error::pooler_hint,
                    )),
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
