//! Building a `Savepoint` by hand around a connection the application
//! opened itself, to get a value that the tenant helpers accept. Its fields
//! are private: only `TenantTx::savepoint` (or `Savepoint::savepoint`)
//! makes one. (With every field written out, rustc reports only the type
//! mismatch of `inner`; leaving one out also shows the privacy error.)
use tenant_sqlx::Savepoint;

fn forge<'t>(conn: &'t mut sqlx::PgConnection) -> Savepoint<'t> {
    Savepoint {
        inner: conn,
        depth: 1,
    }
}

fn main() {
    let _ = forge;
}
