//! What `sqlx::query!`, `query_as!` and `query_scalar!` expand to (sqlx
//! 0.8.6), written out by hand because the macros need a live database at
//! compile time: `__query_with_result(sql, args)`, `.try_map(..)` into a
//! record, `__query_scalar_with_result`, and the public `query_with`,
//! `query_as_with` and `query_scalar_with`. All of them run on `&mut tx`.
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Postgres};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::TenantPool;

// The record a `query_as!(Note, ..)` fills field by field; it needs no
// `FromRow` (the macro maps columns itself in `try_map`).
#[derive(Debug)]
struct Note {
    id: i64,
    title: String,
}

#[allow(dead_code)]
async fn handler(pool: &TenantPool, ctx: &Ctx<Validated>) -> Result<usize, tenant_sqlx::Error> {
    let mut tx = pool.begin(ctx).await?;
    let tenant = ctx.tenant_id().as_str();

    // sqlx::query!("INSERT INTO notes (tenant_id, title) VALUES ($1, $2)", tenant, "hi")
    let done = {
        #[allow(clippy::all)]
        {
            use ::sqlx::Arguments as _;
            let arg0 = &(tenant);
            let arg1 = &("hi");
            let mut query_args =
                <::sqlx::Postgres as ::sqlx::database::Database>::Arguments::<'_>::default();
            query_args.reserve(
                2,
                0 + ::sqlx::encode::Encode::<::sqlx::Postgres>::size_hint(arg0)
                    + ::sqlx::encode::Encode::<::sqlx::Postgres>::size_hint(arg1),
            );
            let query_args =
                ::core::result::Result::<_, ::sqlx::error::BoxDynError>::Ok(query_args)
                    .and_then(move |mut query_args| query_args.add(arg0).map(move |()| query_args))
                    .and_then(move |mut query_args| query_args.add(arg1).map(move |()| query_args));
            ::sqlx::__query_with_result::<::sqlx::Postgres, _>(
                "INSERT INTO notes (tenant_id, title) VALUES ($1, $2)",
                query_args,
            )
        }
    }
    .execute(&mut tx)
    .await?;

    // sqlx::query_as!(Note, "SELECT id, title FROM notes WHERE id > $1", 0_i64)
    let notes: Vec<Note> = {
        #[allow(clippy::all)]
        {
            use ::sqlx::Arguments as _;
            let arg0 = &(0_i64);
            let mut query_args =
                <::sqlx::Postgres as ::sqlx::database::Database>::Arguments::<'_>::default();
            query_args.reserve(
                1,
                0 + ::sqlx::encode::Encode::<::sqlx::Postgres>::size_hint(arg0),
            );
            let query_args =
                ::core::result::Result::<_, ::sqlx::error::BoxDynError>::Ok(query_args)
                    .and_then(move |mut query_args| query_args.add(arg0).map(move |()| query_args));
            ::sqlx::__query_with_result::<::sqlx::Postgres, _>(
                "SELECT id, title FROM notes WHERE id > $1",
                query_args,
            )
            .try_map(|row: ::sqlx::postgres::PgRow| {
                use ::sqlx::Row as _;
                #[allow(non_snake_case)]
                let sqlx_query_as_id = row.try_get_unchecked::<i64, _>(0usize)?;
                #[allow(non_snake_case)]
                let sqlx_query_as_title = row.try_get_unchecked::<String, _>(1usize)?;
                ::std::result::Result::Ok(Note {
                    id: sqlx_query_as_id,
                    title: sqlx_query_as_title,
                })
            })
        }
    }
    .fetch_all(&mut tx)
    .await?;

    // sqlx::query_scalar!("SELECT count(*) FROM notes")
    let n: Option<i64> = {
        // `unused_imports` is silent inside the real macro's expansion.
        #[allow(clippy::all, unused_imports)]
        {
            use ::sqlx::Arguments as _;
            let query_args = ::core::result::Result::<_, ::sqlx::error::BoxDynError>::Ok(
                <::sqlx::Postgres as ::sqlx::database::Database>::Arguments::<'_>::default(),
            );
            ::sqlx::__query_scalar_with_result::<::sqlx::Postgres, Option<i64>, _>(
                "SELECT count(*) FROM notes",
                query_args,
            )
        }
    }
    .fetch_one(&mut tx)
    .await?;

    // The public `*_with` functions, with arguments built by hand.
    let mut args = PgArguments::default();
    args.add(1_i64).map_err(sqlx::Error::Encode)?;
    sqlx::query_with::<Postgres, _>("DELETE FROM notes WHERE id = $1", args)
        .execute(&mut tx)
        .await?;
    let mut args = PgArguments::default();
    args.add("hi").map_err(sqlx::Error::Encode)?;
    let same: Vec<(i64, String)> = sqlx::query_as_with::<Postgres, (i64, String), _>(
        "SELECT id, title FROM notes WHERE title = $1",
        args,
    )
    .fetch_all(&mut tx)
    .await?;
    let titles: Vec<String> =
        sqlx::query_with::<Postgres, _>("SELECT title FROM notes", PgArguments::default())
            .try_map(|row: PgRow| sqlx::Row::try_get::<String, _>(&row, 0))
            .fetch_all(&mut tx)
            .await?;
    let max: Option<i64> = sqlx::query_scalar_with::<Postgres, Option<i64>, _>(
        "SELECT max(id) FROM notes",
        PgArguments::default(),
    )
    .fetch_one(&mut tx)
    .await?;

    tx.commit().await?;
    let _ = (notes.first().map(|n| (n.id, &n.title)), max);
    Ok(done.rows_affected() as usize
        + notes.len()
        + same.len()
        + titles.len()
        + n.unwrap_or(0) as usize)
}

fn main() {}
