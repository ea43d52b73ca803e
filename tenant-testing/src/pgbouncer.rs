//! A throwaway PgBouncer in front of a throwaway [`TestCluster`].
//!
//! [`TestPgBouncer::start`] writes a configuration into a fresh private
//! directory and runs Debian's `pgbouncer` (1.18 on Debian 12) there:
//!
//! * it listens on a Unix socket in that directory only (no TCP port);
//! * every database of the cluster is reachable through it (a `*` entry),
//!   on the cluster's own socket;
//! * clients authenticate with SCRAM-SHA-256 against a user list holding
//!   [`OWNER_ROLE`] and [`APP_ROLE`] with [`EXTERNAL_PASSWORD`]; PgBouncer
//!   reaches the server over its private socket, where `trust` applies;
//! * `pool_mode = transaction` by default, with
//!   [`pool_size`](TestPgBouncerBuilder::pool_size) server connections per
//!   database and role: many clients share few server sessions, which is
//!   what an application behind PgBouncer must survive.
//!
//! It is stopped the way the cluster is (see "Stopping the server" in the
//! [module documentation](super)), with `SIGTERM`, when the [`TestPgBouncer`]
//! is dropped or the process ends. As root, PgBouncer runs as the `postgres`
//! OS user (PgBouncer refuses root).
//!
//! ```no_run
//! use tenant_testing::{TestCluster, TestPgBouncer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = TestCluster::start().await?;
//! let db = cluster.create_database().await?;
//! let bouncer = TestPgBouncer::builder().pool_size(2).start(&cluster).await?;
//! let pool = tenant_sqlx::TenantPool::builder()
//!     .transaction_pooler(true)
//!     .connect(&bouncer.app_url(&db))
//!     .await?;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use super::user::{run_as_postgres, RunAs, SETPRIV};
use super::watchdog::{logged_to, Script, Watchdog};
use super::{
    tail, wait_connectable, HarnessError, TestCluster, TestDatabase, APP_ROLE, EXTERNAL_PASSWORD,
    OWNER_ROLE,
};

/// Where `pgbouncer` is looked for first (Debian's package).
pub const DEFAULT_PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// The port number in the socket's name (`.s.PGSQL.6432`); nothing listens
/// on TCP.
const PORT: u16 = 6432;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts PgBouncer in the background and, on end-of-file, stops it with
/// `SIGTERM`.
const WATCHDOG: Script = Script {
    start: r#""$@" &
pid=$!
"#,
    stop: r#"kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#,
};

/// Options for a [`TestPgBouncer`].
#[derive(Debug, Clone)]
pub struct TestPgBouncerBuilder {
    pool_size: u32,
    pool_mode: &'static str,
    ignore_startup_parameters: Vec<String>,
    binary: Option<PathBuf>,
}

impl Default for TestPgBouncerBuilder {
    fn default() -> Self {
        TestPgBouncerBuilder {
            pool_size: 4,
            pool_mode: "transaction",
            ignore_startup_parameters: Vec::new(),
            binary: None,
        }
    }
}

impl TestPgBouncerBuilder {
    /// Server connections per database and role (`default_pool_size`,
    /// default 4).
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// `pool_mode = session` instead of `transaction`.
    pub fn session_mode(mut self) -> Self {
        self.pool_mode = "session";
        self
    }

    /// A startup parameter PgBouncer accepts and ignores
    /// (`ignore_startup_parameters`). By default it refuses every parameter
    /// it does not track itself, such as sqlx's `extra_float_digits`.
    pub fn ignore_startup_parameter(mut self, name: impl Into<String>) -> Self {
        self.ignore_startup_parameters.push(name.into());
        self
    }

    /// The `pgbouncer` executable. Without it: `PGBOUNCER`, then
    /// [`DEFAULT_PGBOUNCER`], then `PATH`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts PgBouncer in front of `cluster`, which must be a throwaway one
    /// (its socket directory is where PgBouncer connects).
    pub async fn start(self, cluster: &TestCluster) -> Result<TestPgBouncer, HarnessError> {
        let server_dir = cluster
            .dir()
            .ok_or(HarnessError::PgBouncerNeedsThrowawayCluster)?
            .to_owned();
        let bouncer = tokio::task::spawn_blocking(move || self.spawn(&server_dir))
            .await
            .map_err(|e| HarnessError::Io {
                action: "run the PgBouncer start-up task",
                source: Arc::new(std::io::Error::other(e.to_string())),
            })??;
        bouncer.wait_ready().await?;
        Ok(bouncer)
    }

    fn spawn(self, server_dir: &Path) -> Result<TestPgBouncer, HarnessError> {
        if !cfg!(unix) {
            return Err(HarnessError::Unsupported { what: "PgBouncer" });
        }
        let binary = find_pgbouncer(self.binary.as_deref())?;
        let run_as = run_as_postgres()?;
        let dir = tempfile::Builder::new()
            .prefix("tenant-pgb-")
            .tempdir()
            .map_err(HarnessError::io("create a temporary directory"))?
            .keep();
        let spawned = self.spawn_in(&binary, run_as.as_ref(), server_dir, &dir);
        if spawned.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        spawned
    }

    fn spawn_in(
        &self,
        binary: &Path,
        run_as: Option<&RunAs>,
        server_dir: &Path,
        dir: &Path,
    ) -> Result<TestPgBouncer, HarnessError> {
        let users = format!(
            "\"{OWNER_ROLE}\" \"{EXTERNAL_PASSWORD}\"\n\"{APP_ROLE}\" \"{EXTERNAL_PASSWORD}\"\n"
        );
        std::fs::write(dir.join("userlist.txt"), users)
            .map_err(HarnessError::io("write PgBouncer's user list"))?;
        let ini = format!(
            "[databases]\n\
             * = host={server} port=5432\n\
             [pgbouncer]\n\
             listen_addr =\n\
             listen_port = {PORT}\n\
             unix_socket_dir = {dir}\n\
             unix_socket_mode = 0700\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = {size}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 1000\n\
             query_wait_timeout = 15\n\
             ignore_startup_parameters = {ignore}\n\
             logfile =\n\
             pidfile =\n\
             log_connections = 0\n\
             log_disconnections = 0\n",
            server = server_dir.display(),
            dir = dir.display(),
            mode = self.pool_mode,
            size = self.pool_size,
            ignore = self.ignore_startup_parameters.join(","),
        );
        let config = dir.join("pgbouncer.ini");
        std::fs::write(&config, ini).map_err(HarnessError::io("write pgbouncer.ini"))?;
        let mut command: Vec<OsString> = Vec::new();
        if let Some(user) = run_as {
            for path in [dir.to_owned(), dir.join("userlist.txt"), config.clone()] {
                user.chown(&path, "give PgBouncer's files to `postgres`")?;
            }
            command.extend(SETPRIV.map(OsString::from));
        }
        // The log is opened by PgBouncer's user (see `logged_to`).
        command.extend(logged_to(&dir.join("pgbouncer.log")));
        command.extend([binary.into(), config.into()]);
        let watchdog = Watchdog::spawn(
            "tenant-pgbouncer-watchdog",
            &WATCHDOG,
            dir,
            command,
            "start the PgBouncer watchdog (sh)",
        )?;
        Ok(TestPgBouncer {
            dir: dir.to_owned(),
            pool_size: self.pool_size,
            _watchdog: watchdog,
        })
    }
}

/// A PgBouncer started by this process (see [`TestPgBouncer::start`] for
/// how it is configured).
pub struct TestPgBouncer {
    dir: PathBuf,
    pool_size: u32,
    /// Stops PgBouncer and removes `dir` when dropped.
    _watchdog: Watchdog,
}

impl fmt::Debug for TestPgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPgBouncer")
            .field("dir", &self.dir)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl TestPgBouncer {
    /// Options: pool size and mode, ignored startup parameters.
    pub fn builder() -> TestPgBouncerBuilder {
        TestPgBouncerBuilder::default()
    }

    /// Starts one in transaction mode with the default options.
    pub async fn start(cluster: &TestCluster) -> Result<TestPgBouncer, HarnessError> {
        Self::builder().start(cluster).await
    }

    /// The directory holding the socket, the configuration and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Server connections per database and role.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// [`APP_ROLE`] on `db`, through PgBouncer.
    pub fn app_url(&self, db: &TestDatabase) -> String {
        self.url(APP_ROLE, db.name())
    }

    /// [`OWNER_ROLE`] on `db`, through PgBouncer.
    pub fn owner_url(&self, db: &TestDatabase) -> String {
        self.url(OWNER_ROLE, db.name())
    }

    /// What PgBouncer logged so far (its end).
    pub fn log(&self) -> String {
        tail(&self.dir.join("pgbouncer.log"))
    }

    fn url(&self, role: &str, db: &str) -> String {
        format!(
            "postgres://{role}:{EXTERNAL_PASSWORD}@localhost:{PORT}/{db}?host={}",
            self.dir.display()
        )
    }

    async fn wait_ready(&self) -> Result<(), HarnessError> {
        let opts: PgConnectOptions = self.url(APP_ROLE, "postgres").parse()?;
        // PgBouncer refuses sqlx's `extra_float_digits` unless told to
        // ignore it; readiness is about the socket, not that.
        let opts = opts.extra_float_digits(None);
        wait_connectable(&opts, READY_TIMEOUT, Duration::from_millis(25), || {
            self.log()
        })
        .await
    }
}

fn find_pgbouncer(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_owned());
    } else {
        if let Some(p) = std::env::var_os("PGBOUNCER") {
            candidates.push(p.into());
        }
        candidates.push(DEFAULT_PGBOUNCER.into());
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("pgbouncer")));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| HarnessError::PgBouncerMissing {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
