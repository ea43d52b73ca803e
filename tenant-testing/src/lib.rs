//! Throwaway PostgreSQL, PgBouncer and Redis servers for tests and demos,
//! started and stopped by the test process: [`TestCluster`],
//! [`TestPgBouncer`] and [`redis::TestRedis`].
//!
//! The server binaries are taken from `PG_BIN_DIR` when it is set, otherwise
//! from Debian's PostgreSQL 15 ([`DEFAULT_BIN_DIR`]), otherwise from `PATH`:
//! point `PG_BIN_DIR` at another major's `bin` directory to run the same
//! tests on it.
//!
//! [`TestCluster::from_env`] uses the server named by `TENANT_TESTING_DATABASE_URL` when it is
//! set, and otherwise starts a private cluster:
//!
//! * `initdb` into a fresh directory under the system temporary directory;
//! * the server listens on a Unix socket inside that directory only (no TCP
//!   port, so no port races and nothing reachable from the network; the
//!   directory is private to the server's OS user, which is why `trust`
//!   authentication is acceptable there);
//! * when the process runs as root, `initdb` and `postgres` run as the
//!   `postgres` OS user through `setpriv` (PostgreSQL refuses to run as root
//!   and a fresh machine has no `sudo`);
//! * durability is switched off (`fsync`, `synchronous_commit`,
//!   `full_page_writes`): the data is thrown away anyway.
//!
//! Every cluster has two roles besides the superuser:
//!
//! * [`OWNER_ROLE`] (`tenant_owner`): owns the databases and the tables, runs
//!   migrations and creates the RLS policies; neither superuser nor
//!   `BYPASSRLS`;
//! * [`APP_ROLE`] (`tenant_app`): `LOGIN NOSUPERUSER NOBYPASSRLS`, owns
//!   nothing; the role a [`TenantPool`](tenant_sqlx::TenantPool) connects as.
//!
//! # Stopping the server
//!
//! The server is supervised by a small `sh` watchdog whose standard input is a
//! pipe held by this process. The watchdog waits for end-of-file on that pipe,
//! then stops the server (`SIGQUIT`, an immediate shutdown) and removes the
//! directory. End-of-file arrives when the [`TestCluster`] is dropped, and
//! also when the process ends in any way (normal exit, panic, `SIGKILL`):
//! the kernel closes the pipe. That is what makes [`TestCluster::shared`]
//! sound even though a `static` is never dropped. The watchdog runs in its own
//! process group so that a Ctrl-C aimed at `cargo test` does not kill it
//! before it has cleaned up.
//!
//! [`TestPgBouncer`] and [`TestRedis`](redis::TestRedis) are supervised the
//! same way, each stopping its own server (PgBouncer with `SIGTERM`; Redis
//! with `SIGKILL`, after telling its watchdog not to restart it).
//!
//! The throwaway servers need a Unix system (Unix sockets, process groups,
//! `setpriv`); elsewhere starting one fails with
//! [`HarnessError::Unsupported`], and a server named by `TENANT_TESTING_DATABASE_URL` is
//! the way to run the tests.
//!
//! # Using an existing server
//!
//! With `TENANT_TESTING_DATABASE_URL` set (for example in CI with a PostgreSQL service), the
//! URL must name a role that may create roles and databases (a superuser is
//! simplest). The harness creates [`OWNER_ROLE`] and [`APP_ROLE`] if they do
//! not exist, with the password [`EXTERNAL_PASSWORD`], and a fresh database
//! for each [`TestCluster::create_database`]. Use a disposable server: the
//! databases are not dropped.
//!
//! The variable is not `DATABASE_URL` on purpose: sqlx's compile-time
//! checked queries read that one, and it usually names a development
//! database, which the harness must never fill with test roles and
//! databases.
//!
//! ```no_run
//! use tenant_testing::TestCluster;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = TestCluster::shared().await?; // one per test binary
//! let db = cluster.create_database().await?; // one per test
//! let mut owner = sqlx::PgConnection::connect(db.owner_url()).await?;
//! # use sqlx::Connection;
//! sqlx::raw_sql("CREATE TABLE notes (tenant_id text NOT NULL, body text)")
//!     .execute(&mut owner)
//!     .await?;
//! // ... connect a TenantPool to `db.app_url()` ...
//! # Ok(()) }
//! ```

mod cluster;
mod error;
mod local;
mod pgbouncer;
pub mod redis;
mod url;
mod user;
mod watchdog;

use std::io::Read;
use std::path::Path;

pub use cluster::{TestCluster, TestClusterBuilder, TestDatabase};
pub use error::HarnessError;
pub use pgbouncer::{TestPgBouncer, TestPgBouncerBuilder, DEFAULT_PGBOUNCER};

/// The role that owns the tables and runs migrations.
pub const OWNER_ROLE: &str = "tenant_owner";
/// The application role: `LOGIN NOSUPERUSER NOBYPASSRLS`, owns nothing.
pub const APP_ROLE: &str = "tenant_app";
/// `NOLOGIN`: owns hardened mode's guard (see
/// [`TestDatabase::install_guard`]).
pub const GUARD_ROLE: &str = "tenant_guard";
/// The password given to [`OWNER_ROLE`] and [`APP_ROLE`] on a server named by
/// `TENANT_TESTING_DATABASE_URL` (a throwaway cluster uses `trust` on a private socket).
pub const EXTERNAL_PASSWORD: &str = "tenant-test-only";

/// Where the PostgreSQL 15 server binaries are looked for first.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Connects with `opts` until a connection succeeds (then closes it), every
/// `poll`, for at most `timeout`; then fails with `HarnessError::NotReady`
/// carrying what `log` gives (the server's log).
async fn wait_connectable(
    opts: &sqlx::postgres::PgConnectOptions,
    timeout: std::time::Duration,
    poll: std::time::Duration,
    log: impl FnOnce() -> String,
) -> Result<(), HarnessError> {
    use sqlx::Connection;
    let started = std::time::Instant::now();
    loop {
        match sqlx::PgConnection::connect_with(opts).await {
            Ok(conn) => {
                conn.close().await?;
                return Ok(());
            }
            Err(_) if started.elapsed() < timeout => tokio::time::sleep(poll).await,
            Err(_) => return Err(HarnessError::NotReady { log: log() }),
        }
    }
}

/// The end of a log file (its last 4000 bytes or so), for error messages.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}
