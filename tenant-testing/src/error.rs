//! [`HarnessError`]: why the harness could not provide a server.

use std::io;
use std::sync::Arc;

/// Why the harness could not provide a database.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `initdb` / `postgres` were not found.
    #[error(
        "the PostgreSQL server binaries (initdb, postgres) were not found in {searched}; \
         install them with `apt-get install postgresql-15`, point `PG_BIN_DIR` at them, \
         or set TENANT_TESTING_DATABASE_URL to an existing server"
    )]
    BinariesMissing {
        /// The places that were searched.
        searched: String,
    },
    /// The process runs as root but there is no `postgres` OS user to run the
    /// server as.
    #[error(
        "running as root, but there is no `postgres` OS user to run the server as \
         (PostgreSQL refuses root); install `postgresql-15` or run as another user"
    )]
    NoPostgresUser,
    /// An I/O operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The error.
        source: Arc<io::Error>,
    },
    /// A command (`initdb`) exited with an error.
    #[error("`{program}` failed ({status}):\n{output}")]
    Command {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// The server did not accept connections in time.
    #[error("the PostgreSQL server did not become ready; its log:\n{log}")]
    NotReady {
        /// The end of the server log.
        log: String,
    },
    /// `TENANT_TESTING_DATABASE_URL` is not a `postgres://` URL.
    #[error("TENANT_TESTING_DATABASE_URL is not a postgres:// URL: {0}")]
    BadUrl(String),
    /// A SQL statement of the harness failed.
    #[error("harness SQL failed: {0}")]
    Database(Arc<sqlx::Error>),
    /// `pgbouncer` was not found.
    #[error(
        "pgbouncer was not found in {searched}; install it with `apt-get install pgbouncer` \
         or point `PGBOUNCER` at it"
    )]
    PgBouncerMissing {
        /// The places that were searched.
        searched: String,
    },
    /// A [`TestPgBouncer`](super::TestPgBouncer) was asked for in front of a
    /// server named by `TENANT_TESTING_DATABASE_URL`; it only fronts a throwaway cluster.
    #[error(
        "a TestPgBouncer fronts a throwaway cluster only, not the server named by TENANT_TESTING_DATABASE_URL"
    )]
    PgBouncerNeedsThrowawayCluster,
    /// A throwaway server (PostgreSQL, PgBouncer, Redis) was asked for on a
    /// system that is not Unix: it listens on a Unix socket only and is
    /// supervised through a pipe by a process group of its own.
    #[error(
        "a throwaway {what} needs a Unix system (a private Unix socket, a process group of \
         its own); on this one, set TENANT_TESTING_DATABASE_URL to an existing PostgreSQL server"
    )]
    Unsupported {
        /// What was asked for.
        what: &'static str,
    },
}

impl HarnessError {
    /// A stable, machine-readable code.
    ///
    /// ```
    /// # use tenant_testing::HarnessError;
    /// assert_eq!(HarnessError::NoPostgresUser.code(), "HARNESS_NO_POSTGRES_USER");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            HarnessError::BinariesMissing { .. } => "HARNESS_BINARIES_MISSING",
            HarnessError::NoPostgresUser => "HARNESS_NO_POSTGRES_USER",
            HarnessError::Io { .. } => "HARNESS_IO",
            HarnessError::Command { .. } => "HARNESS_COMMAND_FAILED",
            HarnessError::NotReady { .. } => "HARNESS_NOT_READY",
            HarnessError::BadUrl(_) => "HARNESS_BAD_DATABASE_URL",
            HarnessError::Database(_) => "HARNESS_DATABASE",
            HarnessError::PgBouncerMissing { .. } => "HARNESS_PGBOUNCER_MISSING",
            HarnessError::PgBouncerNeedsThrowawayCluster => "HARNESS_PGBOUNCER_NEEDS_THROWAWAY",
            HarnessError::Unsupported { .. } => "HARNESS_UNSUPPORTED_PLATFORM",
        }
    }

    pub(super) fn io(action: &'static str) -> impl FnOnce(io::Error) -> HarnessError {
        move |e| HarnessError::Io {
            action,
            source: Arc::new(e),
        }
    }
}

impl From<sqlx::Error> for HarnessError {
    fn from(e: sqlx::Error) -> Self {
        HarnessError::Database(Arc::new(e))
    }
}
