//! The one `Executor` forwarding shared by [`TenantTx`](crate::TenantTx),
//! [`Savepoint`](crate::Savepoint) and [`AdminConn`](crate::AdminConn): each
//! dereferences to a `PgConnection`, and `&mut` of each is an sqlx executor
//! that forwards to it, as sqlx's own `&mut PgListener` does.

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
                ::sqlx::Executor::fetch_many(&mut **self, query)
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
                ::sqlx::Executor::fetch_optional(&mut **self, query)
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
                ::sqlx::Executor::prepare_with(&mut **self, sql, parameters)
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
                ::sqlx::Executor::describe(&mut **self, sql)
            }
        }
    };
}
