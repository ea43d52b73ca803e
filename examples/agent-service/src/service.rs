//! Starting and stopping the service: its configuration, its database
//! (throwaway or external), the migrations, the pool and the server.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::memory;
use tenant_sqlx::{AdminPool, FairShares, SettingNames, TenantPool};
use tenant_testing::{HarnessError, TestCluster, TestDatabase, TestPgBouncer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::events::{self, Events};
use crate::limits::Limits;
use crate::{router, serve};

/// The database connections the service's pool opens at most.
pub const POOL_CONNECTIONS: u32 = 10;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The throwaway PostgreSQL could not be started.
    #[error("could not start the throwaway PostgreSQL: {0}")]
    Harness(#[from] HarnessError),
    /// The throwaway PgBouncer (`TRANSACTION_POOLER=1`) could not be
    /// started.
    #[error(
        "could not start the throwaway PgBouncer that TRANSACTION_POOLER=1 asks for (is \
         `pgbouncer` installed? `apt-get install pgbouncer`, or unset TRANSACTION_POOLER): {0}"
    )]
    PgBouncer(HarnessError),
    /// A URL in the environment is not a PostgreSQL URL.
    #[error("`{var}` is not a usable PostgreSQL URL: {source}")]
    BadUrl {
        /// The environment variable.
        var: &'static str,
        /// What sqlx said.
        source: sqlx::Error,
    },
    /// The migrations or the pool failed (including a failed audit).
    #[error(transparent)]
    Database(#[from] tenant_sqlx::Error),
    /// Hardened mode needs `GUARD_SECRET`: at least 32 bytes, in hex.
    #[error(
        "hardened mode needs GUARD_SECRET, the guard's secret as hex (at least 32 bytes); \
         or set HARDENED=0"
    )]
    BadGuardSecret,
    /// `JWT_SECRET` must be at least 32 bytes, in hex.
    #[error("JWT_SECRET must be the bearer tokens' HS256 key as hex (at least 32 bytes)")]
    BadJwtSecret,
    /// The throwaway Redis could not be started.
    #[error(
        "could not start the throwaway Redis for the events (is `redis-server` installed? \
         `apt-get install redis-server`, or set REDIS_URL): {0}"
    )]
    Redis(HarnessError),
    /// `redis-server` was not found (the throwaway Redis needs it).
    #[error(
        "the events need Redis, and `redis-server` was not found: install it \
         (`apt-get install redis-server`), name the binary in REDIS_SERVER, or set \
         REDIS_URL to a running Redis"
    )]
    RedisMissing,
    /// The relay or the worker could not connect to Redis.
    #[error("could not start the events' relay and worker: {0}")]
    Events(tenant_worker::WorkerError),
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// A throwaway PostgreSQL cluster, started for the service and removed
    /// when it stops.
    Throwaway,
    /// An existing database.
    External {
        /// The application role's URL (`DATABASE_URL`).
        app_url: String,
        /// The owner's URL, for the migrations (`DATABASE_OWNER_URL`);
        /// without it the database must be migrated already.
        owner_url: Option<String>,
    },
}

/// How the service starts: where it listens, its database, hardened mode
/// and its [`Limits`].
#[derive(Clone)]
pub struct Config {
    /// Where to listen, for example `127.0.0.1:3000` (port 0: any free port).
    pub bind: String,
    /// Where the data lives.
    pub database: DatabaseConfig,
    /// Hardened mode: the tenant setting cannot be switched by SQL the
    /// service runs (see `tenant_sqlx::guard`).
    pub hardened: bool,
    /// The guard's secret in hardened mode. Needed for an external
    /// database (whose guard must be installed already); a throwaway one
    /// makes one up at start when this is `None`.
    pub guard_secret: Option<Vec<u8>>,
    /// What one client may cost.
    pub limits: Limits,
    /// Where a request's tenant comes from.
    pub auth: Auth,
    /// Run the relay and the summary worker in this process (a posted
    /// message's `message.created` event is written to the outbox either
    /// way).
    pub events: bool,
    /// The Redis of the events (`REDIS_URL`); `None`: a throwaway one,
    /// started with the service and removed when it stops.
    pub redis_url: Option<String>,
    /// The relay's database URL (`RELAY_DATABASE_URL`): a role that
    /// bypasses RLS, since the relay reads every tenant's outbox. A
    /// throwaway database uses its superuser; with an external database and
    /// no relay URL, no relay or worker runs and events wait in the outbox.
    pub relay_url: Option<String>,
    /// The tenant pool reaches PostgreSQL through PgBouncer in transaction
    /// mode (`TRANSACTION_POOLER=1`), and is built with
    /// [`transaction_pooler(true)`](tenant_sqlx::TenantPoolBuilder::transaction_pooler).
    /// With a throwaway database the service starts a throwaway PgBouncer
    /// in front of it (`pgbouncer` must be installed) and the migrations
    /// and the relay connect to PostgreSQL directly; with an external one,
    /// `DATABASE_URL` must name the pooler, and the owner's and the relay's
    /// URLs, used as given, should name PostgreSQL itself.
    pub transaction_pooler: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field(
                "database",
                &match &self.database {
                    DatabaseConfig::Throwaway => "throwaway",
                    DatabaseConfig::External { .. } => "external",
                },
            )
            .field("hardened", &self.hardened)
            .field("guard_secret", &self.guard_secret.as_ref().map(|_| "…"))
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("events", &self.events)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "…"))
            .field("relay_url", &self.relay_url.as_ref().map(|_| "…"))
            .field("transaction_pooler", &self.transaction_pooler)
            .finish()
    }
}

impl Config {
    /// A throwaway database, hardened mode, the default [`Limits`], bearer
    /// tokens signed with a development key made up now.
    pub fn new(bind: impl Into<String>) -> Config {
        Config {
            bind: bind.into(),
            database: DatabaseConfig::Throwaway,
            hardened: true,
            guard_secret: None,
            limits: Limits::default(),
            auth: Auth::development(),
            events: true,
            redis_url: None,
            relay_url: None,
            transaction_pooler: false,
        }
    }

    /// The configuration the environment describes: `DATABASE_URL` and
    /// `DATABASE_OWNER_URL` (else a throwaway database), `HARDENED=0` to
    /// turn hardened mode off, `GUARD_SECRET` (hex); `JWT_SECRET` (hex, the
    /// HS256 key of the bearer tokens; else a development key made up now),
    /// or `TRUST_TENANT_HEADER=1` to take the tenant from `X-Tenant-ID` as
    /// sent (only behind a gateway that sets it); `REDIS_URL` (else a
    /// throwaway Redis) and `RELAY_DATABASE_URL` for the events;
    /// `TRANSACTION_POOLER=1` for a tenant pool behind PgBouncer in
    /// transaction mode (see [`Config::transaction_pooler`]).
    pub fn from_env(bind: impl Into<String>) -> Result<Config, StartError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let database = match var("DATABASE_URL") {
            Some(app_url) => DatabaseConfig::External {
                app_url,
                owner_url: var("DATABASE_OWNER_URL"),
            },
            None => DatabaseConfig::Throwaway,
        };
        let guard_secret = match var("GUARD_SECRET") {
            Some(hex) => Some(decode_hex(hex.trim()).ok_or(StartError::BadGuardSecret)?),
            None => None,
        };
        let auth = if var("TRUST_TENANT_HEADER").is_some_and(|v| v == "1") {
            Auth::TrustedHeader
        } else {
            match var("JWT_SECRET") {
                Some(hex) => Auth::Bearer {
                    secret: decode_hex(hex.trim())
                        .filter(|s| s.len() >= 32)
                        .ok_or(StartError::BadJwtSecret)?,
                },
                None => Auth::development(),
            }
        };
        Ok(Config {
            database,
            hardened: var("HARDENED").is_none_or(|v| v != "0"),
            guard_secret,
            auth,
            redis_url: var("REDIS_URL"),
            relay_url: var("RELAY_DATABASE_URL"),
            transaction_pooler: var("TRANSACTION_POOLER").is_some_and(|v| v == "1"),
            ..Config::new(bind)
        })
    }
}

/// The database of a running service.
#[derive(Debug)]
enum Database {
    Throwaway {
        // Field order matters: the database handle and PgBouncer go before
        // the cluster.
        db: TestDatabase,
        bouncer: Option<Box<TestPgBouncer>>,
        cluster: TestCluster,
    },
    External {
        app_url: String,
        owner_url: Option<String>,
        transaction_pooler: bool,
    },
}

impl Database {
    async fn open(
        config: &DatabaseConfig,
        transaction_pooler: bool,
    ) -> Result<Database, StartError> {
        match config {
            DatabaseConfig::External { app_url, owner_url } => Ok(Database::External {
                app_url: app_url.clone(),
                owner_url: owner_url.clone(),
                transaction_pooler,
            }),
            DatabaseConfig::Throwaway => {
                let cluster = TestCluster::start().await?;
                let db = cluster.create_database().await?;
                let bouncer = if transaction_pooler {
                    Some(Box::new(
                        TestPgBouncer::start(&cluster)
                            .await
                            .map_err(StartError::PgBouncer)?,
                    ))
                } else {
                    None
                };
                Ok(Database::Throwaway {
                    db,
                    bouncer,
                    cluster,
                })
            }
        }
    }

    /// The application role's URL: what the migrations grant to.
    fn app_url(&self) -> &str {
        match self {
            Database::Throwaway { db, .. } => db.app_url(),
            Database::External { app_url, .. } => app_url,
        }
    }

    /// Where the tenant pool connects: the application role, through the
    /// throwaway PgBouncer if there is one.
    fn pool_url(&self) -> String {
        match self {
            Database::Throwaway {
                db,
                bouncer: Some(bouncer),
                ..
            } => bouncer.app_url(db),
            _ => self.app_url().to_owned(),
        }
    }

    /// Whether the tenant pool connects through a transaction pooler.
    fn transaction_pooler(&self) -> bool {
        match self {
            Database::Throwaway { bouncer, .. } => bouncer.is_some(),
            Database::External {
                transaction_pooler, ..
            } => *transaction_pooler,
        }
    }

    fn owner_url(&self) -> Option<&str> {
        match self {
            Database::Throwaway { db, .. } => Some(db.owner_url()),
            Database::External { owner_url, .. } => owner_url.as_deref(),
        }
    }

    /// The relay's URL: a throwaway database's superuser, else the
    /// configured one.
    fn relay_url<'a>(&'a self, configured: Option<&'a str>) -> Option<&'a str> {
        match self {
            Database::Throwaway { db, .. } => Some(configured.unwrap_or(db.admin_url())),
            Database::External { .. } => configured,
        }
    }

    fn describe(&self) -> String {
        match self {
            Database::Throwaway {
                cluster, bouncer, ..
            } => {
                let server = cluster
                    .dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                match bouncer {
                    None => format!("a throwaway PostgreSQL in {server} (removed on exit)"),
                    Some(bouncer) => format!(
                        "a throwaway PostgreSQL in {server}, reached through a throwaway \
                         PgBouncer in transaction mode in {} ({} server sessions; both \
                         removed on exit)",
                        bouncer.dir().display(),
                        bouncer.pool_size()
                    ),
                }
            }
            Database::External {
                transaction_pooler: false,
                ..
            } => "the database in DATABASE_URL".to_owned(),
            Database::External {
                transaction_pooler: true,
                ..
            } => "the database behind the transaction pooler in DATABASE_URL".to_owned(),
        }
    }

    /// The start-up line that says the tenant pool runs behind PgBouncer.
    fn log_pooler(&self) {
        match self {
            Database::Throwaway {
                bouncer: Some(bouncer),
                ..
            } => tracing::info!(
                pgbouncer = %bouncer.dir().display(),
                server_sessions = bouncer.pool_size(),
                "the tenant pool runs behind PgBouncer in transaction mode \
                 (a throwaway one, in front of the throwaway PostgreSQL)"
            ),
            Database::External {
                transaction_pooler: true,
                ..
            } => tracing::info!(
                "the tenant pool runs behind PgBouncer in transaction mode \
                 (DATABASE_URL names the pooler: TRANSACTION_POOLER=1)"
            ),
            _ => {}
        }
    }
}

/// Runs the migrations as the tables' owner, through the logged admin path,
/// granting the application role (the user of `app_url`) what it needs,
/// with hardened policies when `hardened`.
async fn migrate(owner_url: &str, app_url: &str, hardened: bool) -> Result<(), StartError> {
    let app_options: PgConnectOptions = app_url.parse().map_err(|source| StartError::BadUrl {
        var: "DATABASE_URL",
        source,
    })?;
    let admin = AdminPool::connect(owner_url).await?;
    let mut conn = admin.acquire("run the agent-service migrations").await?;
    let app_role = app_options.get_username();
    let worker_tables_exist: bool = sqlx::query_scalar(&format!(
        "SELECT to_regclass('{}') IS NOT NULL",
        tenant_worker::OUTBOX_TABLE
    ))
    .fetch_one(&mut conn)
    .await
    .map_err(tenant_sqlx::Error::from)?;
    let mut sql = memory::migration_for(&SettingNames::default(), app_role, hardened);
    sql.push_str(&events::migration(app_role, hardened, worker_tables_exist));
    sqlx::raw_sql(&sql)
        .execute(&mut conn)
        .await
        .map_err(tenant_sqlx::Error::from)?;
    drop(conn);
    admin.close().await;
    Ok(())
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    addr: SocketAddr,
    database: Database,
    pool: Arc<TenantPool>,
    limits: Limits,
    auth: Auth,
    events: Option<Events>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Service {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where its data lives, in words.
    pub fn database(&self) -> String {
        self.database.describe()
    }

    /// Where its events go, in words (`None`: no relay or worker runs).
    pub fn events(&self) -> Option<String> {
        self.events.as_ref().map(Events::describe)
    }

    /// How many database connections its pool opens at most.
    pub fn pool_size(&self) -> u32 {
        POOL_CONNECTIONS
    }

    /// Whether its tenant pool reaches PostgreSQL through PgBouncer in
    /// transaction mode ([`Config::transaction_pooler`]).
    pub fn transaction_pooler(&self) -> bool {
        self.database.transaction_pooler()
    }

    /// The limits it enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Where it takes a request's tenant from.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// A bearer token for `tenant` (and `agent`, if given) that this
    /// service accepts for a day; `None` in trusted-header mode.
    pub fn token(&self, tenant: &str, agent: Option<&str>) -> Option<String> {
        self.auth.token(tenant, agent)
    }

    /// Stops serving (in-flight requests finish), closes the pool and
    /// removes the throwaway cluster, if any.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        let served = self
            .server
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(events) = self.events {
            events.stop().await;
        }
        self.pool.close().await;
        drop(self.database);
        served
    }

    /// Serves until Ctrl-C or (on Unix) SIGTERM, then [`stop`](Self::stop)s:
    /// both drain the requests in flight.
    pub async fn run_until_ctrl_c(self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        self.stop().await
    }
}

/// The guard secret: the configured one, or for a throwaway database one
/// made up now (it dies with the database).
fn guard_secret(config: &Config, database: &Database) -> Result<Vec<u8>, StartError> {
    if let Some(secret) = &config.guard_secret {
        return Ok(secret.clone());
    }
    match database {
        Database::Throwaway { .. } => {
            // A throwaway database's secret only has to be unknown to the
            // service's own SQL.
            Ok(crate::auth::made_up_secret())
        }
        Database::External { .. } => Err(StartError::BadGuardSecret),
    }
}

pub(crate) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Starts the service as the environment says ([`Config::from_env`]) on
/// `bind` (for example `127.0.0.1:3000`, or port 0 for any free port).
pub async fn start(bind: &str) -> Result<Service, StartError> {
    start_with(Config::from_env(bind)?).await
}

/// Starts the service: a throwaway PostgreSQL or the configured database,
/// migrations as the owner role (with an external database only when its
/// owner URL is given), then a [`TenantPool`] as the application role,
/// which refuses to start if the audit finds a problem, then the server,
/// with the header-read timeout and the other [`Limits`].
///
/// With [`Config::transaction_pooler`], the pool connects through
/// PgBouncer in transaction mode (a throwaway one in front of a throwaway
/// database) and is built for it; one `INFO` line at start-up says so.
///
/// In hardened mode, on a throwaway database the guard is installed with a
/// secret made up at start; on an external one it must be installed
/// already (`tenant_sqlx::guard::Guard`) and its secret configured.
pub async fn start_with(config: Config) -> Result<Service, StartError> {
    // The bearer key is checked before any server starts.
    let resolver = config
        .auth
        .resolver()
        .map_err(|_| StartError::BadJwtSecret)?;
    let database = Database::open(&config.database, config.transaction_pooler).await?;
    let secret = if config.hardened {
        let secret = guard_secret(&config, &database)?;
        if let Database::Throwaway { db, .. } = &database {
            db.install_guard(&secret).await?;
        }
        Some(GuardSecret::new(&secret)?)
    } else {
        None
    };
    if let Some(owner_url) = database.owner_url() {
        migrate(owner_url, database.app_url(), config.hardened).await?;
    }
    let limits = config.limits;
    let mut builder = TenantPool::builder()
        .max_connections(POOL_CONNECTIONS)
        .transaction_pooler(database.transaction_pooler())
        .fair_shares(Some(
            FairShares::new()
                .per_tenant(limits.tenant_connections)
                .wait(limits.tenant_wait),
        ));
    if let Some(secret) = secret {
        builder = builder.hardened(secret);
    }
    let pool = Arc::new(builder.connect(&database.pool_url()).await?);
    database.log_pooler();
    let bind = config.bind.as_str();
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: bind.to_owned(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: bind.to_owned(),
        source,
    })?;
    let events = match database.relay_url(config.relay_url.as_deref()) {
        Some(relay_url) if config.events => {
            Some(Events::start(&pool, relay_url, config.redis_url.as_deref()).await?)
        }
        Some(_) => None,
        None => {
            if config.events {
                tracing::warn!(
                    "no RELAY_DATABASE_URL: no relay or summary worker runs; \
                     message.created events wait in the outbox"
                );
            }
            None
        }
    };
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = router(Arc::clone(&pool), config.limits, resolver);
    let server = tokio::spawn(serve::serve(listener, app, config.limits, stopped));
    Ok(Service {
        addr,
        database,
        pool,
        limits: config.limits,
        auth: config.auth,
        events,
        shutdown,
        server,
    })
}
