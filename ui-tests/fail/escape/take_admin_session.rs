//! Taking the privileged session out of an `AdminConn` with `mem::take`,
//! to use it after the logged admin use has ended. There is no
//! `&mut PgConnection` behind an `AdminConn` to take.
use tenant_sqlx::AdminPool;

async fn keep_admin_session(admin: &AdminPool) -> Result<(), tenant_sqlx::Error> {
    let mut conn = admin.acquire("nightly report").await?;
    let _session = std::mem::take(&mut *conn);
    Ok(())
}

fn main() {
    let _ = keep_admin_session;
}
