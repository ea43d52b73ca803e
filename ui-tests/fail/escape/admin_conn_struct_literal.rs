//! Building an `AdminConn` by hand from a pooled connection, to skip
//! `AdminPool::acquire`, its required reason and its log line. The fields
//! are private: only `AdminPool::acquire` makes one.
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::Postgres;
use tenant_sqlx::AdminConn;

fn forge(conn: PoolConnection<Postgres>) -> AdminConn {
    AdminConn {
        conn,
        reason: String::from("nobody will read this"),
        since: Instant::now(),
    }
}

fn main() {
    let _ = forge;
}
