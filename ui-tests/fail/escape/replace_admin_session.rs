//! Replacing the session inside an `AdminConn` to keep the privileged
//! session after the `AdminConn` is dropped: it would escape the close on
//! drop and the logged reason, and could later be handed to anything that
//! takes a `PgConnection`. `AdminConn` has no `DerefMut` to its session.
use sqlx::{Connection, PgConnection};
use tenant_sqlx::AdminPool;

async fn keep_admin_session(
    admin: &AdminPool,
    url: &str,
) -> Result<PgConnection, tenant_sqlx::Error> {
    let mut conn = admin.acquire("migrate").await?;
    let own = PgConnection::connect(url).await?;
    Ok(std::mem::replace(&mut *conn, own))
}

fn main() {
    let _ = keep_admin_session;
}
