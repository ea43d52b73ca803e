//! A throwaway PostgreSQL cluster for tests and demos (feature `testing`),
//! and a throwaway PgBouncer in front of it ([`TestPgBouncer`]).
//!
//! The server binaries are taken from `PG_BIN_DIR` when it is set, otherwise
//! from Debian's PostgreSQL 15 ([`DEFAULT_BIN_DIR`]), otherwise from `PATH`.
//! CI runs the database tests a second time on PostgreSQL 17 with
//! `PG_BIN_DIR=$(bash .ci/pg17)`.
//!
//! [`TestCluster::from_env`] uses the server named by `DATABASE_URL` when it is
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
//!   nothing; the role a [`TenantPool`](crate::TenantPool) connects as.
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
//! # Using an existing server
//!
//! With `DATABASE_URL` set (for example in CI with a PostgreSQL service), the
//! URL must name a role that may create roles and databases (a superuser is
//! simplest). The harness creates [`OWNER_ROLE`] and [`APP_ROLE`] if they do
//! not exist, with the password [`EXTERNAL_PASSWORD`], and a fresh database
//! for each [`TestCluster::create_database`]. Use a disposable server: the
//! databases are not dropped.
//!
//! ```no_run
//! use tenant_sqlx::testing::TestCluster;
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

pub mod redis;

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

mod pgbouncer;
pub use pgbouncer::{TestPgBouncer, TestPgBouncerBuilder, DEFAULT_PGBOUNCER};

/// The role that owns the tables and runs migrations.
pub const OWNER_ROLE: &str = "tenant_owner";
/// The application role: `LOGIN NOSUPERUSER NOBYPASSRLS`, owns nothing.
pub const APP_ROLE: &str = "tenant_app";
/// `NOLOGIN`: owns hardened mode's guard (see
/// [`TestDatabase::install_guard`]).
pub const GUARD_ROLE: &str = "tenant_guard";
/// The password given to [`OWNER_ROLE`] and [`APP_ROLE`] on a server named by
/// `DATABASE_URL` (a throwaway cluster uses `trust` on a private socket).
pub const EXTERNAL_PASSWORD: &str = "tenant-test-only";

/// Where the PostgreSQL 15 server binaries are looked for first.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long a fresh server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the harness could not provide a database.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `initdb` / `postgres` were not found.
    #[error(
        "the PostgreSQL server binaries (initdb, postgres) were not found in {searched}; \
         install them with `apt-get install postgresql-15`, point `PG_BIN_DIR` at them, \
         or set DATABASE_URL to an existing server"
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
    /// `DATABASE_URL` is not a `postgres://` URL.
    #[error("DATABASE_URL is not a postgres:// URL: {0}")]
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
    /// A [`TestPgBouncer`] was asked for in front of a server named by
    /// `DATABASE_URL`; it only fronts a throwaway cluster.
    #[error(
        "a TestPgBouncer fronts a throwaway cluster only, not the server named by DATABASE_URL"
    )]
    PgBouncerNeedsThrowawayCluster,
}

impl HarnessError {
    /// A stable, machine-readable code.
    ///
    /// ```
    /// # use tenant_sqlx::testing::HarnessError;
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
        }
    }

    fn io(action: &'static str) -> impl FnOnce(io::Error) -> HarnessError {
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

/// A PostgreSQL server with an owner role and an application role: either a
/// throwaway cluster this process started, or the server named by
/// `DATABASE_URL`.
///
/// A throwaway cluster is stopped and its directory removed when the
/// `TestCluster` is dropped, or when the process ends (see the
/// [module documentation](self)).
pub struct TestCluster {
    server: Server,
    next_db: AtomicU64,
}

enum Server {
    Local(LocalServer),
    External(UrlParts),
}

/// The pieces of a connection URL, to build one per role and database.
#[derive(Debug, Clone)]
struct UrlParts {
    scheme: String,
    admin_userinfo: String,
    hostport: String,
    query: String,
}

struct LocalServer {
    dir: PathBuf,
    watchdog: Child,
    /// Closing this pipe is what tells the watchdog to stop the server.
    lifeline: Option<ChildStdin>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        // Waiting makes drop mean "stopped and removed" for the caller; the
        // watchdog only has an immediate shutdown and an `rm -rf` to do.
        let _ = self.watchdog.wait();
    }
}

impl fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            Server::Local(l) => f
                .debug_struct("TestCluster")
                .field("throwaway", &true)
                .field("dir", &l.dir)
                .finish(),
            Server::External(u) => f
                .debug_struct("TestCluster")
                .field("throwaway", &false)
                .field("host", &u.hostport)
                .finish(),
        }
    }
}

/// Options for starting a throwaway cluster. See [`TestCluster::builder`].
#[derive(Debug, Clone, Default)]
pub struct TestClusterBuilder {
    bin_dir: Option<PathBuf>,
}

impl TestClusterBuilder {
    /// Where `initdb` and `postgres` are. Without it: `PG_BIN_DIR`, then
    /// [`DEFAULT_BIN_DIR`], then `PATH`.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Starts a throwaway cluster (ignores `DATABASE_URL`).
    pub async fn start(self) -> Result<TestCluster, HarnessError> {
        let bin_dir = self.bin_dir;
        let local = tokio::task::spawn_blocking(move || LocalServer::spawn(bin_dir.as_deref()))
            .await
            .map_err(|e| HarnessError::Io {
                action: "run the cluster start-up task",
                source: Arc::new(io::Error::other(e.to_string())),
            })??;
        let cluster = TestCluster {
            server: Server::Local(local),
            next_db: AtomicU64::new(0),
        };
        // On error `cluster` is dropped here, which stops the server.
        cluster.wait_ready().await?;
        cluster.create_roles().await?;
        Ok(cluster)
    }
}

static SHARED: OnceCell<TestCluster> = OnceCell::const_new();

impl TestCluster {
    /// Options for a throwaway cluster.
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder::default()
    }

    /// Starts a throwaway cluster, whatever `DATABASE_URL` says.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::testing::HarnessError> {
    /// let cluster = tenant_sqlx::testing::TestCluster::start().await?;
    /// let db = cluster.create_database().await?;
    /// println!("app role: {}", db.app_url());
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<TestCluster, HarnessError> {
        Self::builder().start().await
    }

    /// The server named by `DATABASE_URL` when it is set (see the
    /// [module documentation](self) for what it must allow), otherwise a
    /// throwaway cluster.
    pub async fn from_env() -> Result<TestCluster, HarnessError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let cluster = TestCluster {
                    server: Server::External(UrlParts::parse(url.trim())?),
                    next_db: AtomicU64::new(0),
                };
                cluster.create_roles().await?;
                Ok(cluster)
            }
            _ => Self::start().await,
        }
    }

    /// The process-wide cluster ([`from_env`](Self::from_env), started on
    /// first use): one per test binary, shared by every test and runtime in
    /// it. Give each test its own database with
    /// [`create_database`](Self::create_database).
    ///
    /// The cluster holds no connection, so tests on different tokio runtimes
    /// can share it; it is stopped when the process ends.
    pub async fn shared() -> Result<&'static TestCluster, HarnessError> {
        SHARED.get_or_try_init(Self::from_env).await
    }

    /// `true` for a cluster this process started, `false` for `DATABASE_URL`.
    pub fn is_throwaway(&self) -> bool {
        matches!(self.server, Server::Local(_))
    }

    /// The directory of a throwaway cluster (data, socket and log).
    pub fn dir(&self) -> Option<&Path> {
        match &self.server {
            Server::Local(l) => Some(&l.dir),
            Server::External(_) => None,
        }
    }

    /// The server's major version times 10000 plus its minor
    /// (`server_version_num`, e.g. `150014`, `170011`), for tests whose
    /// expectation differs between majors.
    pub async fn server_version_num(&self) -> Result<i32, HarnessError> {
        let mut admin = self.connect_admin().await?;
        let v: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&mut admin)
            .await?;
        admin.close().await?;
        v.trim().parse().map_err(|_| {
            HarnessError::Database(Arc::new(sqlx::Error::Protocol(format!(
                "server_version_num is not a number: {v}"
            ))))
        })
    }

    /// A superuser URL for the maintenance database `postgres`.
    pub fn admin_url(&self) -> String {
        self.url(None, "postgres")
    }

    /// Creates a fresh database owned by [`OWNER_ROLE`], for one test or one
    /// test binary, so that schemas do not collide.
    pub async fn create_database(&self) -> Result<TestDatabase, HarnessError> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // The pid and a clock salt keep names apart when several processes
        // share one `DATABASE_URL` server.
        let name = format!("tenant_test_{}_{n}_{salt:x}", std::process::id());
        let mut admin = self.connect_admin().await?;
        sqlx::raw_sql(&format!(
            "CREATE DATABASE \"{name}\" OWNER \"{OWNER_ROLE}\" TEMPLATE template0"
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(TestDatabase {
            admin_url: self.url(None, &name),
            owner_url: self.url(Some(OWNER_ROLE), &name),
            app_url: self.url(Some(APP_ROLE), &name),
            name,
        })
    }

    fn url(&self, role: Option<&str>, db: &str) -> String {
        match &self.server {
            Server::Local(l) => format!(
                "postgres://{}@localhost:5432/{db}?host={}",
                role.unwrap_or("postgres"),
                l.dir.display()
            ),
            Server::External(u) => {
                let userinfo = match role {
                    None => u.admin_userinfo.clone(),
                    Some(r) => format!("{r}:{EXTERNAL_PASSWORD}@"),
                };
                format!("{}{userinfo}{}/{db}{}", u.scheme, u.hostport, u.query)
            }
        }
    }

    async fn connect_admin(&self) -> Result<PgConnection, HarnessError> {
        let opts: PgConnectOptions = self.admin_url().parse()?;
        Ok(PgConnection::connect_with(&opts).await?)
    }

    async fn wait_ready(&self) -> Result<(), HarnessError> {
        let Server::Local(local) = &self.server else {
            return Ok(());
        };
        let opts: PgConnectOptions = self.admin_url().parse()?;
        let started = Instant::now();
        loop {
            match PgConnection::connect_with(&opts).await {
                Ok(conn) => {
                    conn.close().await?;
                    return Ok(());
                }
                Err(_) if started.elapsed() < READY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    return Err(HarnessError::NotReady {
                        log: tail(&local.dir.join("server.log")),
                    })
                }
            }
        }
    }

    async fn create_roles(&self) -> Result<(), HarnessError> {
        let password = match self.server {
            Server::Local(_) => String::new(),
            Server::External(_) => format!(" PASSWORD '{EXTERNAL_PASSWORD}'"),
        };
        let mut admin = self.connect_admin().await?;
        for role in [OWNER_ROLE, APP_ROLE] {
            // Idempotent, and safe against a concurrent test binary creating
            // the same role on a shared `DATABASE_URL` server.
            sqlx::raw_sql(&format!(
                "DO $$ BEGIN \
                   CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE{password}; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
                 END $$"
            ))
            .execute(&mut admin)
            .await?;
        }
        sqlx::raw_sql(&format!(
            "DO $$ BEGIN \
               CREATE ROLE \"{GUARD_ROLE}\" NOLOGIN NOSUPERUSER NOBYPASSRLS; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
             END $$"
        ))
        .execute(&mut admin)
        .await?;
        // What the audit asks of a production role: its sessions cannot
        // read each other's statements (other tenants' ids) in
        // `pg_stat_activity`.
        sqlx::raw_sql(&format!(
            "ALTER ROLE \"{APP_ROLE}\" SET track_activities = off"
        ))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}

/// One database of a [`TestCluster`], owned by [`OWNER_ROLE`], with a URL for
/// each role.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    name: String,
    admin_url: String,
    owner_url: String,
    app_url: String,
}

impl TestDatabase {
    /// Installs hardened mode's guard (owned by [`GUARD_ROLE`], callable by
    /// [`APP_ROLE`] and by [`OWNER_ROLE`], whose policies call it) with one
    /// secret, as the superuser.
    pub async fn install_guard(&self, secret: &[u8]) -> Result<(), HarnessError> {
        let guard = crate::guard::Guard::new()
            .owner(GUARD_ROLE)
            .grant_to(APP_ROLE)
            .grant_to(OWNER_ROLE);
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(&guard.sql()).execute(&mut admin).await?;
        sqlx::raw_sql(&guard.add_secret_sql("test", secret))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(())
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The superuser, connected to this database: for setting up
    /// misconfigurations and inspecting `pg_stat_activity`. Never for the
    /// application.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
    /// [`OWNER_ROLE`]: owns the tables; runs migrations and creates policies.
    pub fn owner_url(&self) -> &str {
        &self.owner_url
    }
    /// [`APP_ROLE`]: what a [`TenantPool`](crate::TenantPool) connects as.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }
}

impl UrlParts {
    fn parse(url: &str) -> Result<UrlParts, HarnessError> {
        let bad = || HarnessError::BadUrl(redact(url));
        let (scheme, rest) = ["postgres://", "postgresql://"]
            .iter()
            .find_map(|s| url.strip_prefix(s).map(|r| (*s, r)))
            .ok_or_else(bad)?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        if hostport.is_empty() && !query.contains("host=") {
            return Err(bad());
        }
        Ok(UrlParts {
            scheme: scheme.to_owned(),
            admin_userinfo: userinfo.to_owned(),
            hostport: hostport.to_owned(),
            query: query.to_owned(),
        })
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

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

/// Starts and stops a throwaway server; see the module documentation.
const WATCHDOG: &str = r#"dir=$1; shift
"$@" >"$dir/server.log" 2>&1 &
pg=$!
cat >/dev/null
kill -QUIT "$pg" 2>/dev/null
wait "$pg" 2>/dev/null
rm -rf "$dir"
"#;

impl LocalServer {
    fn spawn(bin_dir: Option<&Path>) -> Result<LocalServer, HarnessError> {
        let bin = find_bin_dir(bin_dir)?;
        let run_as = run_as_postgres()?;
        let dir = tempfile::Builder::new()
            .prefix("tenant-pg-")
            .tempdir()
            .map_err(HarnessError::io("create a temporary directory"))?
            .keep();
        match Self::spawn_in(&bin, run_as.as_ref(), &dir) {
            Ok(server) => Ok(server),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn_in(
        bin: &Path,
        run_as: Option<&(u32, u32)>,
        dir: &Path,
    ) -> Result<LocalServer, HarnessError> {
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .map_err(HarnessError::io("give the cluster directory to `postgres`"))?;
        }
        let data = dir.join("data");
        let command = |program: &Path| -> Command {
            let mut c = match run_as {
                Some(_) => {
                    let mut c = Command::new("setpriv");
                    c.args([
                        "--reuid=postgres",
                        "--regid=postgres",
                        "--init-groups",
                        "--",
                    ])
                    .arg(program);
                    c
                }
                None => Command::new(program),
            };
            // The server user may not be able to enter the caller's cwd.
            c.current_dir(dir);
            c
        };

        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(HarnessError::io("run initdb"))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                program: "initdb".into(),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }

        let server = command(&bin.join("postgres"));
        let mut watchdog = Command::new("sh");
        watchdog
            .arg("-c")
            .arg(WATCHDOG)
            .arg("tenant-pg-watchdog")
            .arg(dir)
            .arg(server.get_program())
            .args(server.get_args())
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir)
            .args([
                "-p",
                "5432",
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = watchdog
            .spawn()
            .map_err(HarnessError::io("start the server watchdog (sh)"))?;
        let lifeline = child.stdin.take();
        Ok(LocalServer {
            dir: dir.to_owned(),
            watchdog: child,
            lifeline,
        })
    }
}

fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = explicit {
        candidates.push(d.to_owned());
    } else {
        if let Some(d) = std::env::var_os("PG_BIN_DIR") {
            candidates.push(d.into());
        }
        candidates.push(DEFAULT_BIN_DIR.into());
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
    }
    candidates
        .iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .cloned()
        .ok_or_else(|| HarnessError::BinariesMissing {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// `Some((uid, gid))` of the `postgres` OS user when this process is root.
fn run_as_postgres() -> Result<Option<(u32, u32)>, HarnessError> {
    // `/proc/self` belongs to the effective user: no `unsafe` geteuid needed.
    let euid = std::fs::metadata("/proc/self")
        .map_err(HarnessError::io("read /proc/self"))?
        .uid();
    if euid != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, HarnessError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(HarnessError::io("run `id postgres`"))?;
        if !out.status.success() {
            return Err(HarnessError::NoPostgresUser);
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| HarnessError::NoPostgresUser)
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_swap_user_and_database() {
        let u =
            UrlParts::parse("postgres://root:secret@db.example:6543/app?sslmode=disable").unwrap();
        assert_eq!(u.admin_userinfo, "root:secret@");
        assert_eq!(u.hostport, "db.example:6543");
        assert_eq!(u.query, "?sslmode=disable");
        let u = UrlParts::parse("postgresql://h").unwrap();
        assert_eq!((u.admin_userinfo.as_str(), u.hostport.as_str()), ("", "h"));
        assert!(UrlParts::parse("mysql://h/db").is_err());
    }

    #[test]
    fn redaction_hides_the_password() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://***@h/db");
    }
}
