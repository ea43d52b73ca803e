//! [`TenantPool`]: a connection pool that only opens tenant transactions.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tenant_core::{Ctx, Field, IsValidated};

use crate::audit::{self, AuditOptions, AuditReport};
use crate::audit::{watch::AuditWatch, Finding};
use crate::fair::{Fair, FairShares, TenantFigures};
use crate::guard::GuardSecret;
use crate::sql::{push_identifier, push_literal, quote_setting_name};
use crate::stash::Stash;
use crate::tx::{self, check_scope, TenantTx};
use crate::{Error, SettingNames};

/// How every tenant transaction starts: `BEGIN` and the `SET LOCAL`s of the
/// context's fields, in one message (one round trip).
///
/// The session it starts on is clean: every way a transaction of this pool
/// ends leaves it so (see `tx::COMMIT_CLEAN`), or the connection is closed.
/// So the begin itself clears nothing, except behind a transaction pooler
/// (see [`CLEAN_BEHIND_POOLER`]).
///
/// The transaction characteristics are explicit, so that a default stored
/// for the role or the database (`ALTER ROLE … SET
/// default_transaction_read_only = on`) does not shape the transaction,
/// unless the connection's start-up options pin all three
/// `default_transaction_*` settings to these values (see
/// [`SessionFacts`]): a value given at connect time outranks a
/// stored one, and a borrower's `SET SESSION CHARACTERISTICS` is undone by
/// the `RESET ALL` at the end of its transaction, or by its rollback.
const BEGIN_EXPLICIT: &str = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE";
const BEGIN_PINNED: &str = "BEGIN";
/// Behind a transaction pooler, consecutive transactions of one client run
/// on different server sessions, and a server session may come from a
/// client that left it without this pool's clearing (a link closed after a
/// tainted transaction, see `taint`, or another application). So the begin
/// also clears, inside the transaction: settings (`RESET ALL`), the role
/// (`SET LOCAL SESSION AUTHORIZATION` to the pool's role, which fails on a
/// session logged in as another role: it is closed), `WITH HOLD` cursors,
/// temporary objects, sequence state, prepared statements (sqlx's own are
/// unnamed in this mode), `LISTEN` registrations and session advisory
/// locks. `UNLISTEN *` here takes effect only when this transaction
/// commits: what makes sure no borrower receives another's notifications
/// is the same clearing at the end of every transaction
/// (`tx::CLEAN_BEHIND_POOLER_AT_COMMIT`).
const CLEAN_BEHIND_POOLER: &str = "; RESET ALL; SET LOCAL SESSION AUTHORIZATION ";
const CLEAN_BEHIND_POOLER_AFTER_ROLE: &str = "; CLOSE ALL; DISCARD TEMP; DISCARD SEQUENCES\
     ; DEALLOCATE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()";

/// The `default_transaction_*` settings and the values `BEGIN_EXPLICIT`
/// gives: when a connection's start-up options set all three to these
/// values, the begin need not repeat them.
const PINNED_CHARACTERISTICS: [(&str, &str); 3] = [
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("default_transaction_deferrable", "off"),
];

/// What the pool learns of its sessions once, at connect (every connection
/// of a pool has the same options and role, so one answers for all).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionFacts {
    /// The start-up options pin the transaction characteristics (source
    /// `client` in `pg_settings`) to the values the begin message would
    /// otherwise give.
    pub(crate) characteristics_pinned: bool,
    /// The role is a member of another role, so `SET ROLE` can change who
    /// the session runs as: every commit resets the role (otherwise only a
    /// transaction whose statements mention a role does, see
    /// `taint::may_change_role`).
    pub(crate) member_of_roles: bool,
    /// The database has deferrable constraint triggers (a `DEFERRABLE`
    /// foreign key or constraint trigger): every commit runs
    /// `SET CONSTRAINTS ALL IMMEDIATE` before clearing, so that they run with
    /// the tenant set (otherwise only a transaction whose statements mention
    /// constraints does, see `taint::may_defer_constraints`).
    pub(crate) deferrable_triggers: bool,
}

/// Asks the server for the [`SessionFacts`].
pub(crate) async fn session_facts(
    conn: &mut sqlx::PgConnection,
) -> Result<SessionFacts, sqlx::Error> {
    // The simple protocol: outside a transaction, a statement prepared in
    // one round trip may be executed on another server session behind a
    // transaction pooler.
    let mut sql = String::from(
        "SELECT (SELECT count(*)::int FROM pg_catalog.pg_settings WHERE source = 'client' AND (",
    );
    for (k, (name, value)) in PINNED_CHARACTERISTICS.iter().enumerate() {
        if k > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!("(name = '{name}' AND setting = '{value}')"));
    }
    sql.push_str(
        ")), EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m \
         JOIN pg_catalog.pg_roles r ON r.oid = m.member WHERE r.rolname = session_user), \
         EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgdeferrable)",
    );
    let row = sqlx::raw_sql(&sql).fetch_one(conn).await?;
    let pinned: i32 = sqlx::Row::try_get(&row, 0)?;
    Ok(SessionFacts {
        characteristics_pinned: pinned as usize == PINNED_CHARACTERISTICS.len(),
        member_of_roles: sqlx::Row::try_get(&row, 1)?,
        deferrable_triggers: sqlx::Row::try_get(&row, 2)?,
    })
}

/// How long a `begin` may wait for a connection before it logs a warning
/// (sqlx's own threshold for its acquire, whose warning is turned off: see
/// `connect_with`).
const SLOW_BEGIN: Duration = Duration::from_secs(2);

/// A PostgreSQL pool whose only use is [`begin`](TenantPool::begin): a
/// transaction scoped to one validated tenant context.
///
/// The `PgPool` inside cannot be reached: there is no `Deref`, `AsRef`,
/// `From`, accessor or `Executor` for it, so `sqlx::query(..).fetch_all(&pool)`
/// does not compile and every query runs inside a [`TenantTx`].
///
/// Building one runs the start-up [audit](crate::audit) on one connection and
/// refuses to start on any finding unless
/// [`allow_audit_findings(true)`](TenantPoolBuilder::allow_audit_findings).
/// While it runs it audits again in the background and refuses new
/// transactions on drift ([`TenantPoolBuilder::audit_interval`]), and its
/// connections start with the settings a stored default could turn
/// against other tenants pinned ([`TenantPoolBuilder::pin_setting`]).
///
/// Cloning is cheap and shares the pool.
///
/// # What one borrower leaves, the next does not see
///
/// Every transaction ends by clearing what it may have left in the session,
/// in the same round trip as its `COMMIT`: settings made with `SET` (the
/// tenant fields among them), `SET ROLE`, session transaction defaults,
/// `WITH HOLD` cursors, temporary tables, `lastval()`. Deferred constraint
/// triggers run first, with the tenant still set. A rollback undoes all of
/// these but `lastval()`, which is cleared in the rollback's round trip. A
/// statement that leaves what a transaction cannot clear (`PREPARE`,
/// `LISTEN`, a session advisory lock, `DEALLOCATE`/`DISCARD`, or code run by
/// `DO`, `EXECUTE` or a new function) gets its connection closed when the
/// transaction ends instead of reused; so does a connection whose commit or
/// rollback failed or was cancelled. A [`TenantTx`] dropped while open is
/// rolled back before its connection serves anyone else. Every connection
/// is opened with the pool's options, as the role checked at connect; behind
/// a [transaction pooler](TenantPoolBuilder::transaction_pooler), where a
/// server session may come from elsewhere, every begin also clears and sets
/// the role. A field the context does not carry reads as unset
/// (`current_setting(name, true)` is NULL or `''`).
///
/// Transaction control written by hand (`COMMIT`, `ROLLBACK; BEGIN`,
/// `SAVEPOINT`, …) is refused before it is sent
/// ([`Error::TransactionControlRefused`]), so the transaction `begin` opened
/// is the one [`TenantTx::commit`] commits.
///
/// What SQL run inside a tenant transaction can still do, on purpose, is
/// change the tenant for the rest of that transaction
/// (`set_config('app.current_tenant', …, true)`): the setting is what RLS
/// reads. Use [hardened mode](TenantPoolBuilder::hardened) where that
/// matters.
///
/// # Round trips
///
/// `begin` is one round trip, and nothing else is added: the pool does not
/// ping a connection before handing it out (the begin message is the
/// check, see [`TenantPoolBuilder::test_before_acquire`]), and by default
/// a connection whose transaction ended cleanly is kept for the next
/// `begin` instead of going back through sqlx's pool, which would ping it
/// (see [`TenantPoolBuilder::keep_connections`]).
///
/// ```no_run
/// use tenant_core::{Ctx, Validated};
/// use tenant_sqlx::TenantPool;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = TenantPool::connect("postgres://app@localhost/app").await?;
/// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
///
/// let mut tx = pool.begin(&ctx).await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
///     .fetch_one(&mut tx)
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantPool {
    pool: PgPool,
    /// Fair shares of the connections between tenants (see `fair`).
    fair: Option<Arc<Fair>>,
    pub(crate) stash: Arc<Stash>,
    shared: Arc<Shared>,
}

struct Shared {
    settings: SettingNames,
    /// Retry a `BEGIN` that finds its connection dead (see
    /// [`TenantPoolBuilder::test_before_acquire`]).
    test_before_acquire: bool,
    /// `BEGIN …`, and behind a transaction pooler the clearing (see
    /// [`CLEAN_BEHIND_POOLER`]).
    clean_begin: String,
    /// `SET LOCAL "app"."current_…" = ` for each of [`Field::ALL`].
    prefixes: [String; 4],
    /// Hardened mode: the secret that signs each transaction's tenant.
    guard: Option<GuardSecret>,
    /// How long each transaction's proof stays valid.
    proof_ttl: Duration,
    /// Learnt at connect.
    facts: SessionFacts,
    report: AuditReport,
    /// Refuse contexts that no validator authorized (see
    /// [`TenantPoolBuilder::require_authorized`]).
    require_authorized: bool,
    /// The continuous audit (see [`TenantPoolBuilder::audit_interval`]).
    watch: Option<Arc<AuditWatch>>,
}

impl fmt::Debug for TenantPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantPool")
            .field("settings", &self.shared.settings)
            .field("size", &self.pool.size())
            .field("idle", &self.num_idle())
            .field("audit_findings", &self.shared.report.findings.len())
            .field("require_authorized", &self.shared.require_authorized)
            .finish()
    }
}

impl TenantPool {
    /// Options: pool size, setting names, the audit.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .max_connections(16)
    ///     .tenant_column("org_id")
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> TenantPoolBuilder {
        TenantPoolBuilder::default()
    }

    /// Connects with the default options (see [`TenantPoolBuilder`]) and
    /// runs the audit.
    pub async fn connect(url: &str) -> Result<TenantPool, Error> {
        Self::builder().connect(url).await
    }

    /// Opens a transaction for `ctx`'s tenant: one round trip that runs
    /// `BEGIN` and `SET LOCAL` for the tenant and each field the context
    /// carries (the session is clean: every transaction of the pool clears
    /// it at its end).
    ///
    /// Only a validated context opens one: a `Ctx<Unvalidated>` does not
    /// compile. The transaction borrows the context, so it cannot outlive
    /// it. The returned future does not borrow the pool.
    ///
    /// On a pool built with
    /// [`require_authorized(true)`](TenantPoolBuilder::require_authorized),
    /// a context that is not [authorized](tenant_core::Ctx::is_authorized)
    /// fails with [`Error::ContextNotAuthorized`] before a connection is
    /// taken.
    pub fn begin<'c, S: IsValidated>(&self, ctx: &'c Ctx<S>) -> Begin<'c> {
        if let Err(refused) = self.authorized(ctx) {
            return Begin {
                inner: Box::pin(async move { Err(refused) }),
            };
        }
        self.begin_unchecked(ctx)
    }

    /// The provenance check of a pool that requires authorization.
    fn authorized<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<(), Error> {
        if self.shared.require_authorized && !ctx.is_authorized() {
            return Err(Error::ContextNotAuthorized {
                tenant: ctx.tenant_id().clone(),
            });
        }
        Ok(())
    }

    /// The checks [`begin`](Self::begin) makes before it takes a connection
    /// (the context's provenance, on a pool that requires authorization,
    /// and the scope it runs in), for what answers from a cache in the
    /// context's name: a cached answer must be refused exactly when a
    /// transaction would be.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn admits<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<(), Error> {
        self.authorized(ctx)?;
        check_scope(ctx.tenant_id())
    }

    /// [`begin`](Self::begin) without the provenance check: for this
    /// crate's own registry lookup, which is what authorizes a context.
    pub(crate) fn begin_unchecked<'c, S: IsValidated>(&self, ctx: &'c Ctx<S>) -> Begin<'c> {
        if let Some(refused) = self.audit_refusal() {
            return Begin {
                inner: Box::pin(async move { Err(refused) }),
            };
        }
        // Everything that needs `S` happens here, so the future's type does
        // not mention it and a wrong context is reported once, at the
        // argument.
        let statement = self.shared.begin_statement(ctx);
        let ctx = ctx.erase();
        let pool = self.pool.clone();
        let stash = self.stash.clone();
        let fair = self.fair.clone();
        let retry_dead = self.shared.test_before_acquire;
        let facts = self.shared.facts;
        // Each retry closes one dead or foreign connection; after at most
        // this many the pool has opened a fresh one (or failed to connect,
        // which `acquire` reports).
        let retries = pool.options().get_max_connections();
        Begin {
            inner: Box::pin(async move {
                // Checked when the future runs, where the scope it runs in
                // is known.
                check_scope(ctx.tenant_id())?;
                let statement = statement?;
                // The tenant's turn first (see `fair`): held by this future
                // until the transaction holds it too.
                let permit = match &fair {
                    Some(fair) => {
                        let started = tokio::time::Instant::now();
                        let admitted = fair.admit(ctx.tenant_id()).await;
                        stash.warn_if_slow(started, admitted.is_ok());
                        Some(admitted?)
                    }
                    None => None,
                };
                let mut attempt = 0;
                let mut with_rollback = String::new();
                loop {
                    let mut held = stash.checkout(&pool).await?;
                    held.permit = permit.clone();
                    let message = if held.rollback_first {
                        // The previous transaction on this connection was
                        // dropped while open: its ROLLBACK travels in front,
                        // and the `DISCARD SEQUENCES` a rollback needs (see
                        // `tx::ROLLBACK_CLEAN`) inside the new transaction
                        // (before `BEGIN` it would join the new transaction
                        // anyway, and its characteristics must come first).
                        with_rollback.clear();
                        with_rollback.push_str("ROLLBACK; ");
                        with_rollback.push_str(&statement);
                        with_rollback.push_str("; DISCARD SEQUENCES");
                        &with_rollback
                    } else {
                        &statement
                    };
                    // From here on, dropping `tx` (cancellation, error)
                    // closes the connection until the begin message is known
                    // to have completed.
                    let mut tx = tx::starting(held, stash.clone(), ctx.clone(), facts);
                    match tx::run_raw(tx.begin_conn(), message).await {
                        Ok(_) => {
                            tx.mark_open();
                            return Ok(tx);
                        }
                        // The begin message doubles as sqlx's liveness ping:
                        // a connection the server or the network dropped
                        // while it sat idle is closed (by dropping `tx`) and
                        // the begin runs again on another one. Nothing was
                        // committed: the transaction never started, or died
                        // with its session.
                        Err(e) if retry_dead && attempt < retries && is_dead_connection(&e) => {
                            tracing::info!(
                                error = %e,
                                "tenant-sqlx: connection lost while idle; retrying BEGIN on another"
                            );
                            attempt += 1;
                        }
                        // `SET LOCAL SESSION AUTHORIZATION` refused: the
                        // session is not one of this pool's (it logged in
                        // as another role). Closed, never used; the begin
                        // runs on another.
                        Err(e) if attempt < retries && is_foreign_session(&e) => {
                            tracing::warn!(
                                error = %e,
                                "tenant-sqlx: a session that is not the pool role's reached the pool; closed"
                            );
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }),
        }
    }

    /// The setting names this pool writes.
    pub fn setting_names(&self) -> &SettingNames {
        &self.shared.settings
    }

    /// What the start-up audit found (empty unless
    /// [`allow_audit_findings(true)`](TenantPoolBuilder::allow_audit_findings)
    /// let a finding through).
    pub fn audit_report(&self) -> &AuditReport {
        &self.shared.report
    }

    /// Every finding of the latest audit: the start-up audit's (those
    /// [`allow_audit_findings(true)`](TenantPoolBuilder::allow_audit_findings)
    /// let through), then the continuous audit's (see
    /// [`TenantPoolBuilder::audit_interval`]).
    pub fn audit_findings(&self) -> Vec<Finding> {
        match &self.shared.watch {
            Some(watch) => watch.findings(),
            None => self.shared.report.findings.clone(),
        }
    }

    /// The findings of the continuous audit that the start-up audit did
    /// not report: what changed in the database since the pool started.
    /// While there are any, `begin` fails with [`Error::AuditDrift`]
    /// (unless the pool was built with
    /// [`refuse_on_audit_drift(false)`](TenantPoolBuilder::refuse_on_audit_drift)).
    pub fn audit_drift(&self) -> Vec<Finding> {
        self.shared
            .watch
            .as_ref()
            .map(|w| w.drift())
            .unwrap_or_default()
    }

    fn audit_refusal(&self) -> Option<Error> {
        self.shared.watch.as_ref()?.refusal()
    }

    /// Connections currently open (idle or in use).
    pub fn size(&self) -> u32 {
        self.pool.size()
    }

    /// Each tenant's share of the pool now, for the tenants seen recently:
    /// connections held, `begin`s waiting for their turn, refusals
    /// (`TENANT_BUSY`) and time spent waiting. Empty without
    /// [fair shares](TenantPoolBuilder::fair_shares).
    pub fn tenant_figures(&self) -> Vec<(tenant_core::TenantId, TenantFigures)> {
        self.fair.as_ref().map(|f| f.figures()).unwrap_or_default()
    }

    /// [`tenant_figures`](Self::tenant_figures) of one tenant.
    pub fn figures_of(&self, tenant: &tenant_core::TenantId) -> Option<TenantFigures> {
        self.fair.as_ref().and_then(|f| f.figures_of(tenant))
    }

    /// Idle connections.
    pub fn num_idle(&self) -> usize {
        if self.pool.is_closed() {
            // sqlx 0.8.6 does not count down the idle connections its
            // `close` shuts.
            return 0;
        }
        // Kept connections (see `TenantPoolBuilder::keep_connections`) are
        // idle too.
        self.pool.num_idle() + self.stash.len()
    }

    /// Closes every connection; later `begin` calls fail.
    pub async fn close(&self) {
        if let Some(watch) = &self.shared.watch {
            watch.stop();
        }
        self.stash.close();
        self.pool.close().await
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

impl Shared {
    fn new(
        settings: SettingNames,
        role: &str,
        guard: Option<GuardSecret>,
        report: AuditReport,
        test_before_acquire: bool,
        transaction_pooler: bool,
        facts: SessionFacts,
    ) -> Result<Shared, Error> {
        let mut prefixes: [String; 4] = Default::default();
        for (prefix, field) in prefixes.iter_mut().zip(Field::ALL) {
            *prefix = format!(
                "; SET LOCAL {} = ",
                quote_setting_name(settings.for_field(field))?
            );
        }
        let mut clean_begin =
            String::from(if facts.characteristics_pinned && !transaction_pooler {
                BEGIN_PINNED
            } else {
                BEGIN_EXPLICIT
            });
        if transaction_pooler {
            clean_begin.push_str(CLEAN_BEHIND_POOLER);
            push_identifier(&mut clean_begin, role)?;
            clean_begin.push_str(CLEAN_BEHIND_POOLER_AFTER_ROLE);
        }
        Ok(Shared {
            settings,
            test_before_acquire,
            clean_begin,
            prefixes,
            guard,
            proof_ttl: crate::guard::DEFAULT_PROOF_TTL,
            report,
            require_authorized: false,
            watch: None,
            facts,
        })
    }

    fn begin_statement<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<String, Error> {
        let values = [
            Some(ctx.tenant_id().as_str()),
            ctx.agent_id_opt().map(|v| v.as_str()),
            ctx.conversation_id_opt().map(|v| v.as_str()),
            ctx.collection_id_opt().map(|v| v.as_str()),
        ];
        let mut sql = String::with_capacity(self.clean_begin.len() + 160);
        sql.push_str(&self.clean_begin);
        for ((prefix, field), value) in self.prefixes.iter().zip(Field::ALL).zip(values) {
            // A field the context does not carry needs no statement: the
            // `RESET ALL` that ended the session's previous transaction
            // cleared any session-level value, so it reads as unset (NULL or
            // '').
            let Some(value) = value else { continue };
            sql.push_str(prefix);
            push_literal(&mut sql, self.settings.for_field(field), value)?;
        }
        if let Some(guard) = &self.guard {
            // Digits, a dot and hex digits only: nothing to quote.
            sql.push_str("; SET LOCAL \"app\".\"tenant_proof\" = '");
            sql.push_str(&guard.proof(ctx.tenant_id().as_str(), self.proof_ttl));
            sql.push('\'');
        }
        Ok(sql)
    }
}

/// Whether `e`, from a `BEGIN` on a pooled connection, says the connection
/// itself is gone (rather than the statement failing): an I/O or protocol
/// error, or the server's own goodbye — SQLSTATE class 08 (connection
/// exception) or 57P (operator intervention: `pg_terminate_backend`,
/// shutdown, `idle_session_timeout`).
fn is_dead_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Whether `e`, from the begin message, is the refusal of its
/// `SET LOCAL SESSION AUTHORIZATION`: SQLSTATE 42501, which nothing else in
/// the message raises.
fn is_foreign_session(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42501")
}

/// The future returned by [`TenantPool::begin`]: resolves to the open
/// [`TenantTx`]. Dropping it before it completes discards the connection it
/// was using.
#[must_use = "a transaction is only opened when the future is awaited"]
pub struct Begin<'c> {
    inner: BoxFuture<'c, Result<TenantTx<'c>, Error>>,
}

impl<'c> Future for Begin<'c> {
    type Output = Result<TenantTx<'c>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Begin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Begin").finish_non_exhaustive()
    }
}

/// Options for a [`TenantPool`].
///
/// Defaults: 10 connections, [`SettingNames::default`], tenant column
/// `tenant_id` for the audit, audit findings refused.
#[derive(Debug)]
pub struct TenantPoolBuilder {
    options: PgPoolOptions,
    test_before_acquire: bool,
    settings: SettingNames,
    tenant_column: String,
    allow_audit_findings: bool,
    guard: Option<GuardSecret>,
    proof_ttl: Duration,
    allowed_policies: Vec<String>,
    require_authorized: bool,
    transaction_pooler: bool,
    keep_connections: bool,
    fair_shares: Option<FairShares>,
    audit_interval: Option<Duration>,
    refuse_on_audit_drift: bool,
    pin_settings: bool,
    pinned: Vec<(String, String)>,
}

/// How often a pool re-audits the database by default (see
/// [`TenantPoolBuilder::audit_interval`]).
pub const DEFAULT_AUDIT_INTERVAL: Duration = Duration::from_secs(30);

impl Default for TenantPoolBuilder {
    fn default() -> Self {
        TenantPoolBuilder {
            options: PgPoolOptions::new(),
            test_before_acquire: true,
            settings: SettingNames::default(),
            tenant_column: "tenant_id".to_owned(),
            allow_audit_findings: false,
            guard: None,
            proof_ttl: crate::guard::DEFAULT_PROOF_TTL,
            allowed_policies: Vec::new(),
            require_authorized: false,
            transaction_pooler: false,
            keep_connections: true,
            fair_shares: Some(FairShares::new()),
            audit_interval: Some(DEFAULT_AUDIT_INTERVAL),
            refuse_on_audit_drift: true,
            pin_settings: true,
            pinned: Vec::new(),
        }
    }
}

impl TenantPoolBuilder {
    /// The most connections the pool opens (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.options = self.options.max_connections(n);
        self
    }

    /// Connections kept open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.options = self.options.min_connections(n);
        self
    }

    /// How long `begin` waits for a free connection (default 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.acquire_timeout(timeout);
        self
    }

    /// How long a connection may stay idle before it is closed (default
    /// 10 min, as in sqlx; `None` keeps idle connections open). A
    /// connection [kept](Self::keep_connections) for the next `begin` is
    /// handed back to sqlx's pool once unused for 30 s, or for this timeout
    /// if shorter (so at most one and a half times as long in all), and
    /// closed there once idle for this long.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options = self.options.idle_timeout(timeout);
        self
    }

    /// Whether a connection whose transaction ended with a successful
    /// `commit` or `rollback` is kept for the next `begin` (default
    /// `true`).
    ///
    /// sqlx pings every connection returned to its pool, a round trip per
    /// transaction. A cleanly ended tenant transaction leaves its
    /// connection in a known state, so the pool keeps it (still counted
    /// against `max_connections`) and hands it to the next `begin`, most
    /// recently used first, including to a `begin` already waiting. A kept
    /// connection goes back to sqlx's pool once unused for 30 s (or the
    /// [idle timeout](Self::idle_timeout) if shorter) so that sqlx's idle
    /// timeout and maximum lifetime still apply.
    ///
    /// With `false`, every connection goes back to sqlx's pool when its
    /// transaction ends (sqlx pings it there), and one whose transaction
    /// was dropped while open is closed rather than rolled back by the next
    /// `begin`. The guarantees are the same; only the round trips differ.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .keep_connections(false)
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn keep_connections(mut self, keep: bool) -> Self {
        self.keep_connections = keep;
        self
    }

    /// How the pool shares its connections between tenants (on by
    /// default, with [`FairShares::new`]'s limits): a tenant holds at most
    /// its cap while others may need a connection, bursts above it only
    /// while a reserve stays free, waiting tenants are served in turn, and
    /// a `begin` that waits past the bound fails with
    /// [`Error::TenantBusy`] (`TENANT_BUSY`). `None` hands connections out
    /// first come, first served, whatever the tenant. See
    /// [`TenantPool::tenant_figures`] for what it measures.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tenant_sqlx::{FairShares, TenantPool};
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// let pool = TenantPool::builder()
    ///     .max_connections(16)
    ///     .fair_shares(Some(FairShares::new().per_tenant(4).wait(Duration::from_secs(2))))
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn fair_shares(mut self, shares: Option<FairShares>) -> Self {
        self.fair_shares = shares;
        self
    }

    /// Whether `begin` makes sure a connection is alive before handing it
    /// out (default `true`, as in sqlx).
    ///
    /// sqlx does this with a ping, a round trip of its own before every
    /// transaction. A `TenantPool` needs no ping: its `BEGIN` already is a
    /// round trip with no effect outside the transaction, so it serves as
    /// the check. A connection that the server or the network dropped
    /// while it sat idle fails its `BEGIN` with a connection error
    /// (I/O, SQLSTATE class 08, or 57P such as `pg_terminate_backend` and
    /// `idle_session_timeout`); it is discarded and the `BEGIN` runs again
    /// on another connection, up to `max_connections` times. Any other
    /// error is returned as is.
    ///
    /// With `false`, a dropped connection surfaces as an error from
    /// `begin`. The guard against leftover transactions does not depend on
    /// this: that check runs when a connection is released.
    pub fn test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// The setting names written by `begin` and read by the policies.
    pub fn setting_names(mut self, settings: SettingNames) -> Self {
        self.settings = settings;
        self
    }

    /// The column that holds the tenant in every tenant table; the audit
    /// checks the tables that have it (default `tenant_id`).
    pub fn tenant_column(mut self, column: impl Into<String>) -> Self {
        self.tenant_column = column.into();
        self
    }

    /// Start even if the audit finds problems (default `false`). The
    /// findings are then logged as warnings and kept in
    /// [`TenantPool::audit_report`].
    pub fn allow_audit_findings(mut self, allow: bool) -> Self {
        self.allow_audit_findings = allow;
        self
    }

    /// Hardened mode (see [`guard`](crate::guard)): every transaction also
    /// carries `app.tenant_proof`, signed with `secret`, and the audit
    /// requires policies that read the guard function (written by
    /// [`RlsPolicy::hardened`](crate::rls::RlsPolicy::hardened)) and a
    /// guard the application role cannot read or change. SQL run by the
    /// application that sets the tenant by hand then reads nothing.
    ///
    /// Each transaction's proof is valid for a short time only (see
    /// [`proof_ttl`](Self::proof_ttl)), and the pool turns off sqlx's
    /// statement logging, whose slow-statement warning would print the
    /// begin message with its proof.
    pub fn hardened(mut self, secret: GuardSecret) -> Self {
        self.guard = Some(secret);
        self
    }

    /// How long a hardened transaction's proof stays valid after `begin`
    /// (default [`DEFAULT_PROOF_TTL`](crate::guard::DEFAULT_PROOF_TTL), at
    /// most [`MAX_PROOF_TTL`](crate::guard::MAX_PROOF_TTL)): the guard
    /// function checks it against the server's clock when the transaction
    /// starts, so it must cover the pool's clock running behind the
    /// server's, and a proof seen in a log opens nothing once it has passed.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = tenant_sqlx::TenantPool::builder().proof_ttl(Duration::from_secs(5));
    /// # let _ = builder;
    /// ```
    pub fn proof_ttl(mut self, ttl: Duration) -> Self {
        self.proof_ttl = ttl.min(crate::guard::MAX_PROOF_TTL);
        self
    }

    /// A permissive policy that the application declares on purpose
    /// although it does not compare the tenant column (rows shared by every
    /// tenant, say): the audit does not report it. By policy name.
    pub fn allow_policy(mut self, name: impl Into<String>) -> Self {
        self.allowed_policies.push(name.into());
        self
    }

    /// Open transactions only for contexts that passed the application's
    /// authorization (default `false`): a context whose
    /// [`provenance`](tenant_core::Ctx::provenance) is
    /// [`Authorized`](tenant_core::Provenance::Authorized) (a
    /// [`Validator`](tenant_core::Validator) accepted it) or
    /// [`Trusted`](tenant_core::Provenance::Trusted) (`ctx.trust(reason)`,
    /// logged). A context made from a bare string with `validate()` gets
    /// [`Error::ContextNotAuthorized`] (`CONTEXT_NOT_AUTHORIZED`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use tenant_core::{Ctx, Validated};
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .require_authorized(true)
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// let ctx: Ctx<Validated> = Ctx::unvalidated().with_tenant("acme").validate()?;
    /// let err = pool.begin(&ctx).await.unwrap_err();
    /// assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    /// # Ok(()) }
    /// ```
    pub fn require_authorized(mut self, require: bool) -> Self {
        self.require_authorized = require;
        self
    }

    /// The URL names a transaction pooler (PgBouncer with
    /// `pool_mode = transaction`), not PostgreSQL itself (default `false`).
    ///
    /// Behind such a pooler consecutive transactions of one client
    /// connection run on different server sessions, and one server session
    /// serves many clients. With `true`:
    ///
    /// * every statement of a [`TenantTx`] is prepared unnamed, inside the
    ///   transaction that runs it, and sqlx's statement cache is off:
    ///   sqlx's named statements (`sqlx_s_1`, …) would be looked for, or
    ///   created a second time, on a server session that another client
    ///   prepared them on (the start-up audit always prepares unnamed);
    /// * sqlx does not send the `extra_float_digits` startup parameter,
    ///   which PgBouncer refuses unless it is listed in
    ///   `ignore_startup_parameters`;
    /// * every begin also runs `DEALLOCATE ALL; UNLISTEN *;
    ///   SELECT pg_advisory_unlock_all()`: closing a connection after a
    ///   statement that left such session state (see [`TenantPool`]) closes
    ///   the link to the pooler, not the server session.
    ///
    /// Without it, a pool behind a transaction pooler fails with
    /// [`Error::TransactionPoolerNotConfigured`] as soon as two clients'
    /// statements meet on one server session (or at connect, for the startup
    /// parameter). The pooler must not have prepared statement support
    /// switched on (`max_prepared_statements`, PgBouncer 1.21 and later):
    /// `DEALLOCATE ALL` would remove statements it tracks.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .transaction_pooler(true)
    ///     .connect("postgres://app:secret@pgbouncer:6432/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn transaction_pooler(mut self, behind_pooler: bool) -> Self {
        self.transaction_pooler = behind_pooler;
        self
    }

    /// How often the pool re-audits the database while it runs (default
    /// [`DEFAULT_AUDIT_INTERVAL`], 30 s; `None`: only at start-up).
    ///
    /// Each round costs one short statement on a connection of the audit's
    /// own (outside `max_connections`, shown as `tenant-sqlx audit` in
    /// `pg_stat_activity`): a fingerprint of the catalogs the audit reads.
    /// Only when it changed does the whole audit run again. A finding the
    /// start-up audit did not report (a definer view created, a privilege
    /// granted, a setting stored or reloaded) is logged at `ERROR`, listed
    /// by [`TenantPool::audit_drift`], and refuses new transactions (see
    /// [`refuse_on_audit_drift`](Self::refuse_on_audit_drift)). The task
    /// ends when the pool is closed or dropped.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// use std::time::Duration;
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .audit_interval(Some(Duration::from_secs(10)))
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn audit_interval(mut self, interval: Option<Duration>) -> Self {
        self.audit_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// Whether `begin` fails with [`Error::AuditDrift`] (`AUDIT_DRIFT`)
    /// while the continuous audit finds something the start-up audit did
    /// not (default `true`). With `false` the drift is only logged (at
    /// `ERROR`) and listed by [`TenantPool::audit_drift`].
    pub fn refuse_on_audit_drift(mut self, refuse: bool) -> Self {
        self.refuse_on_audit_drift = refuse;
        self
    }

    /// Gives `name` the value `value` in every connection's start-up
    /// options, where no stored default (`ALTER ROLE … SET`, `ALTER
    /// DATABASE … SET`) can override it, nor `RESET ALL` undo it.
    ///
    /// The pool pins these by default, to PostgreSQL's built-in defaults:
    /// `statement_timeout`, `lock_timeout`,
    /// `idle_in_transaction_session_timeout`, `idle_session_timeout`,
    /// `transaction_timeout` (PostgreSQL 17), `search_path`,
    /// `default_transaction_isolation`, `default_transaction_read_only`,
    /// `default_transaction_deferrable`, `row_security`,
    /// `standard_conforming_strings`, `bytea_output`, `IntervalStyle` and
    /// `exit_on_error`: each can break or weaken every session of the role
    /// when stored, and any role may store them for itself, from SQL run
    /// inside a tenant transaction too. A start-up option also takes
    /// precedence over `postgresql.conf`: a value you set there for one of
    /// these (say `statement_timeout = 30s`) must be given here too, as must
    /// any other setting you want pinned. A setting the connection options
    /// already give (`options=-c …` in the URL, `PGOPTIONS`) keeps that
    /// value.
    ///
    /// Nothing is pinned behind a [transaction pooler](Self::transaction_pooler),
    /// which does not pass start-up options on to the server; the audit
    /// then reports such stored settings, and the continuous audit reports
    /// them when they appear.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tenant_sqlx::Error> {
    /// let pool = tenant_sqlx::TenantPool::builder()
    ///     .pin_setting("statement_timeout", "30s")
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn pin_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pinned.push((name.into(), value.into()));
        self
    }

    /// Whether to pin settings at all (default `true`, see
    /// [`pin_setting`](Self::pin_setting)). With `false` the connection's
    /// start-up options are left as given.
    pub fn pin_settings(mut self, pin: bool) -> Self {
        self.pin_settings = pin;
        self
    }

    /// Connects to `url` and runs the audit.
    pub async fn connect(self, url: &str) -> Result<TenantPool, Error> {
        let options: PgConnectOptions = url.parse()?;
        self.connect_with(options).await
    }

    /// Connects with `options` and runs the audit.
    pub async fn connect_with(self, options: PgConnectOptions) -> Result<TenantPool, Error> {
        // Checked before connecting: a bad name would fail every `begin`.
        Shared::new(
            self.settings.clone(),
            "role",
            None,
            AuditReport::default(),
            true,
            self.transaction_pooler,
            SessionFacts::default(),
        )?;
        let options = if self.transaction_pooler {
            options.statement_cache_capacity(0).extra_float_digits(None)
        } else {
            options
        };
        // sqlx logs a slow statement's full text at WARN: for a hardened
        // pool that would put a begin message, proof and all, in the logs.
        let options = if self.guard.is_some() {
            options
                .log_statements(log::LevelFilter::Off)
                .log_slow_statements(log::LevelFilter::Off, Duration::MAX)
        } else {
            options
        };
        let options = self.pinned_options(options).await?;
        let pool = self
            .options
            // `begin` checks liveness itself, without a ping's round trip.
            .test_before_acquire(false)
            // A `begin` that was handed a kept connection leaves sqlx's
            // acquire to finish in the background (see `stash`), where it
            // may wait for a permit for a long time with no client waiting:
            // sqlx's "time to acquire exceeded slow threshold" warning would
            // then be about nobody. `Stash::checkout` warns about a begin
            // that really waited instead.
            .acquire_slow_level(log::LevelFilter::Off)
            .connect_with(options.clone())
            .await
            .map_err(crate::error::pooler_hint)?;
        let mut audit_options = AuditOptions::new(self.settings.clone(), &self.tenant_column)
            .hardened(self.guard.is_some());
        for name in &self.allowed_policies {
            audit_options = audit_options.allow_policy(name);
        }
        let (report, role, facts) = {
            let mut conn = pool.acquire().await?;
            // The simple protocol: outside a transaction, a statement
            // prepared in one round trip may be executed on another server
            // session behind a transaction pooler.
            let role: String = sqlx::Row::try_get(
                &sqlx::raw_sql("SELECT session_user::text")
                    .fetch_one(&mut *conn)
                    .await?,
                0,
            )?;
            let report = audit::run_with(&mut conn, &audit_options)
                .await
                .map_err(crate::error::pooler_hint)?;
            let facts = session_facts(&mut conn).await?;
            (report, role, facts)
        };
        if !report.findings.is_empty() {
            if !self.allow_audit_findings {
                pool.close().await;
                return Err(Error::AuditFailed(report));
            }
            for finding in &report.findings {
                tracing::warn!(
                    %finding,
                    "tenant-sqlx audit finding allowed by configuration"
                );
            }
        }
        for finding in &report.performance {
            tracing::warn!(%finding, "tenant-sqlx audit: performance");
        }
        let stash = Arc::new(Stash::new(
            &pool,
            SLOW_BEGIN,
            self.transaction_pooler,
            self.keep_connections,
        ));
        stash.sweep_in_background();
        let watch = self.audit_interval.map(|interval| {
            AuditWatch::start(
                report.clone(),
                audit_options,
                options.clone(),
                interval,
                self.refuse_on_audit_drift,
            )
        });
        let mut shared = Shared::new(
            self.settings,
            &role,
            self.guard,
            report,
            self.test_before_acquire,
            self.transaction_pooler,
            facts,
        )?;
        shared.require_authorized = self.require_authorized;
        shared.proof_ttl = self.proof_ttl;
        let fair = self.fair_shares.map(|shares| {
            let options = pool.options();
            shares.build(options.get_max_connections(), options.get_acquire_timeout())
        });
        shared.watch = watch;
        Ok(TenantPool {
            pool,
            fair,
            stash,
            shared: Arc::new(shared),
        })
    }
}

impl TenantPoolBuilder {
    /// `options` with the pinned settings (see [`pin_setting`](Self::pin_setting)):
    /// the server's version is read first, from a connection that runs no
    /// statement, for the settings only newer servers have.
    async fn pinned_options(&self, options: PgConnectOptions) -> Result<PgConnectOptions, Error> {
        if !self.pin_settings || self.transaction_pooler {
            return Ok(options);
        }
        let version = crate::pin::server_version(&options)
            .await
            .map_err(crate::error::pooler_hint)?;
        Ok(crate::pin::apply(
            options,
            &crate::pin::pins(version, &self.pinned),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_core::{Validated, WithAgent};

    fn ctx_with_agent() -> Ctx<Validated<WithAgent>> {
        Ctx::unvalidated()
            .with_tenant("acme")
            .with_agent("agent-7")
            .validate()
            .unwrap()
    }

    fn shared(pooler: bool, pinned: bool) -> Shared {
        Shared::new(
            SettingNames::default(),
            "tenant_app",
            None,
            AuditReport::default(),
            true,
            pooler,
            SessionFacts {
                characteristics_pinned: pinned,
                ..SessionFacts::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn begin_statement_sets_the_fields_the_context_carries() {
        assert_eq!(
            shared(false, false)
                .begin_statement(&ctx_with_agent())
                .unwrap(),
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE\
             ; SET LOCAL \"app\".\"current_tenant\" = 'acme'\
             ; SET LOCAL \"app\".\"current_agent\" = 'agent-7'"
        );
        // Characteristics pinned at connect time: not repeated.
        assert_eq!(
            shared(false, true)
                .begin_statement(&ctx_with_agent())
                .unwrap(),
            "BEGIN\
             ; SET LOCAL \"app\".\"current_tenant\" = 'acme'\
             ; SET LOCAL \"app\".\"current_agent\" = 'agent-7'"
        );
    }

    #[test]
    fn behind_a_pooler_the_begin_clears_too() {
        for pinned in [false, true] {
            assert_eq!(
                shared(true, pinned)
                    .begin_statement(&ctx_with_agent())
                    .unwrap(),
                "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE\
                 ; RESET ALL; SET LOCAL SESSION AUTHORIZATION \"tenant_app\"\
                 ; CLOSE ALL; DISCARD TEMP; DISCARD SEQUENCES\
                 ; DEALLOCATE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()\
                 ; SET LOCAL \"app\".\"current_tenant\" = 'acme'\
                 ; SET LOCAL \"app\".\"current_agent\" = 'agent-7'"
            );
        }
    }

    #[test]
    fn bad_setting_names_are_refused_up_front() {
        let err = Shared::new(
            SettingNames::default().rename_tenant("tenant"),
            "tenant_app",
            None,
            AuditReport::default(),
            true,
            false,
            SessionFacts::default(),
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "INVALID_SETTING_NAME");
    }
}
