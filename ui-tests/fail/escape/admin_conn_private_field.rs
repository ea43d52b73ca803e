//! Taking the pooled connection out of an `AdminConn` through its private
//! `conn` field, e.g. to `detach()` it and keep the privileged session
//! beyond the logged use. The field is private to `tenant_sqlx`.
use tenant_sqlx::AdminPool;

async fn keep(admin: &AdminPool) -> Result<(), tenant_sqlx::Error> {
    let mut conn = admin.acquire("migrate").await?;
    let _session = &mut conn.conn;
    Ok(())
}

fn main() {
    let _ = keep;
}
