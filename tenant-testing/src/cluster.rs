//! [`TestCluster`] and [`TestDatabase`]: a server with the harness's roles
//! (a throwaway [`LocalServer`] or the one `TENANT_TESTING_DATABASE_URL` names), and one
//! database per test on it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

use super::local::LocalServer;
use super::url::UrlParts;
use super::{
    tail, wait_connectable, HarnessError, APP_ROLE, EXTERNAL_PASSWORD, GUARD_ROLE, OWNER_ROLE,
};

/// How long a fresh server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL server with an owner role and an application role: either a
/// throwaway cluster this process started, or the server named by
/// `TENANT_TESTING_DATABASE_URL`.
///
/// A throwaway cluster is stopped and its directory removed when the
/// `TestCluster` is dropped, or when the process ends (see the
/// [module documentation](crate)).
pub struct TestCluster {
    server: Server,
    next_db: AtomicU64,
}

enum Server {
    Local(LocalServer),
    External(UrlParts),
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
    settings: Vec<(String, String)>,
}

impl TestClusterBuilder {
    /// Where `initdb` and `postgres` are. Without it: `PG_BIN_DIR`, then
    /// [`DEFAULT_BIN_DIR`](super::DEFAULT_BIN_DIR), then `PATH`.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// Gives the server `name = value` on its command line (`-c`), for
    /// what only a server start can set, such as `shared_preload_libraries`.
    /// Added to the harness's own settings, and outranking them for the
    /// same name; without any, the server runs with the harness's alone.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_testing::HarnessError> {
    /// let cluster = tenant_testing::TestCluster::builder()
    ///     .setting("shared_preload_libraries", "pg_stat_statements")
    ///     .start()
    ///     .await?;
    /// # let _ = cluster;
    /// # Ok(()) }
    /// ```
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Starts a throwaway cluster (ignores `TENANT_TESTING_DATABASE_URL`).
    pub async fn start(self) -> Result<TestCluster, HarnessError> {
        let TestClusterBuilder { bin_dir, settings } = self;
        let local =
            tokio::task::spawn_blocking(move || LocalServer::spawn(bin_dir.as_deref(), &settings))
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

    /// Starts a throwaway cluster, whatever `TENANT_TESTING_DATABASE_URL` says.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_testing::HarnessError> {
    /// let cluster = tenant_testing::TestCluster::start().await?;
    /// let db = cluster.create_database().await?;
    /// println!("app role: {}", db.app_url());
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<TestCluster, HarnessError> {
        Self::builder().start().await
    }

    /// The server named by `TENANT_TESTING_DATABASE_URL` when it is set (see the
    /// [module documentation](crate) for what it must allow), otherwise a
    /// throwaway cluster.
    pub async fn from_env() -> Result<TestCluster, HarnessError> {
        match std::env::var("TENANT_TESTING_DATABASE_URL") {
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

    /// `true` for a cluster this process started, `false` for `TENANT_TESTING_DATABASE_URL`.
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
        // share one `TENANT_TESTING_DATABASE_URL` server.
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
        wait_connectable(&opts, READY_TIMEOUT, Duration::from_millis(50), || {
            tail(&local.dir.join("server.log"))
        })
        .await
    }

    async fn create_roles(&self) -> Result<(), HarnessError> {
        let password = match self.server {
            Server::Local(_) => String::new(),
            Server::External(_) => format!(" PASSWORD '{EXTERNAL_PASSWORD}'"),
        };
        let mut admin = self.connect_admin().await?;
        for role in [OWNER_ROLE, APP_ROLE] {
            // Idempotent, and safe against a concurrent test binary creating
            // the same role on a shared `TENANT_TESTING_DATABASE_URL` server.
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
        let guard = tenant_sqlx::guard::Guard::new()
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
    /// [`APP_ROLE`]: what a [`TenantPool`](tenant_sqlx::TenantPool) connects as.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }
}
