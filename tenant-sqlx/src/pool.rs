//! [`TenantPool`]: a connection pool that only opens tenant transactions.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, TransactionManager};
use tenant_core::{Ctx, Field, IsValidated};

use crate::audit::{self, AuditReport};
use crate::sql::{push_literal, quote_setting_name};
use crate::stash::Stash;
use crate::tx::{self, TenantTx};
use crate::{Error, Settings};

type Tm = <Postgres as sqlx::Database>::TransactionManager;

/// How every tenant transaction starts, in the same message as its
/// `SET LOCAL`s: whatever session state an earlier borrower of the
/// connection left by hand is cleared first, so the transaction never sees
/// it. `CLOSE ALL` drops `WITH HOLD` cursors (materialised under the earlier
/// tenant), `DISCARD TEMP` temporary tables (which RLS does not protect),
/// `RESET ALL` every setting made with `SET` (values given at connect time,
/// in the connection options, are kept). In one message the three join the
/// transaction that `BEGIN` opens, so they cost no round trip and, like
/// everything in it, are undone by a rollback; the next `BEGIN` clears
/// again.
const CLEAN_BEGIN: &str = "CLOSE ALL; DISCARD TEMP; RESET ALL; BEGIN";

/// The order in which the context's fields are written into the begin
/// statement.
const FIELDS: [Field; 4] = [
    Field::Tenant,
    Field::Agent,
    Field::Conversation,
    Field::Collection,
];

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
///
/// Cloning is cheap and shares the pool.
///
/// # The pool guards itself
///
/// A connection never reaches the next borrower inside a transaction or
/// carrying a tenant, and no tenant transaction sees what an earlier
/// borrower of its connection left in the session:
///
/// * every transaction starts with `CLOSE ALL; DISCARD TEMP; RESET ALL;
///   BEGIN` and a `SET LOCAL` for the tenant and each field the context
///   carries, all in one message (one round trip). Settings made by hand
///   with `SET` (the tenant fields among them), temporary tables (which RLS
///   does not protect) and `WITH HOLD` cursors from earlier transactions
///   are gone before the first query runs; values given at connect time
///   (the connection options) are kept. A field the context does not carry
///   reads as unset: `current_setting(name, true)` is NULL or `''`;
/// * a [`TenantTx`] dropped before its `BEGIN` completed (a cancelled or
///   failed [`begin`](TenantPool::begin), where sqlx 0.8.6 would return the
///   connection still inside the transaction or aborted) closes its
///   connection instead of returning it;
/// * a [`TenantTx`] dropped after `BEGIN` without `commit`/`rollback`
///   (an error path, a panic, a cancelled query or commit) queues a
///   `ROLLBACK` that the pool flushes before the connection is reused;
/// * on release, a connection sqlx still counts as inside a transaction is
///   closed;
/// * a connection the server dropped while it was idle is replaced by
///   `begin` (see [`TenantPoolBuilder::test_before_acquire`]).
///
/// None of these costs a round trip on the normal path: unlike a plain sqlx
/// pool, a `TenantPool` does not ping a connection before handing it out,
/// nor after taking it back.
///
/// # Handing connections on
///
/// sqlx 0.8.6 pings every connection returned to its pool. A connection
/// whose transaction ended with a successful `commit` or `rollback` needs
/// no such check (it is known to be outside any transaction, and the next
/// `BEGIN` on it is the liveness check), so the `TenantPool` keeps it and
/// gives it to the next `begin` before any other, most recently used first,
/// including to a `begin` already waiting for a connection. Kept connections
/// stay checked out of sqlx's pool, so `max_connections` still bounds them;
/// [`num_idle`](Self::num_idle) counts them. Everything else is released to
/// sqlx as before: a dropped or failed transaction; a connection out of
/// sqlx's pool for longer than 30 s, or kept unused for as long (or for the
/// [idle timeout](TenantPoolBuilder::idle_timeout) if shorter), so that
/// sqlx's idle timeout and maximum lifetime still apply to it; anything
/// after [`close`](Self::close).
///
/// Not covered: `SET ROLE` and `SET SESSION AUTHORIZATION` (which
/// `RESET ALL` leaves alone; the [audit](crate::audit) reports any
/// membership that would let the application role switch to a role that
/// bypasses RLS), `LISTEN` registrations and advisory locks taken by hand.
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
///     .fetch_one(&mut *tx)
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TenantPool {
    pool: PgPool,
    stash: Arc<Stash>,
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    /// Retry a `BEGIN` that finds its connection dead (see
    /// [`TenantPoolBuilder::test_before_acquire`]).
    test_before_acquire: bool,
    /// `SET LOCAL "app"."current_…" = ` for each of [`FIELDS`].
    prefixes: [String; 4],
    report: AuditReport,
}

impl fmt::Debug for TenantPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantPool")
            .field("settings", &self.shared.settings)
            .field("size", &self.pool.size())
            .field("idle", &self.num_idle())
            .field("audit_findings", &self.shared.report.findings.len())
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

    /// Opens a transaction for `ctx`'s tenant: one round trip that clears
    /// the session state earlier borrowers left, runs `BEGIN`, and
    /// `SET LOCAL` for the tenant and each field the context carries.
    ///
    /// Only a validated context opens one: a `Ctx<Unvalidated>` does not
    /// compile. The transaction borrows the context, so it cannot outlive
    /// it. The returned future does not borrow the pool.
    pub fn begin<'c, S: IsValidated>(&self, ctx: &'c Ctx<S>) -> Begin<'c> {
        // Everything that needs `S` happens here, so the future's type does
        // not mention it and a wrong context is reported once, at the
        // argument.
        let statement = self.shared.begin_statement(ctx);
        let ctx = ctx.erase();
        let pool = self.pool.clone();
        let stash = self.stash.clone();
        let retries = if self.shared.test_before_acquire {
            // Each retry discards one dead connection; after at most this
            // many the pool has opened a fresh one (or failed to connect,
            // which `acquire` reports).
            pool.options().get_max_connections()
        } else {
            0
        };
        Begin {
            inner: Box::pin(async move {
                let statement = statement?;
                let mut attempt = 0;
                loop {
                    let held = stash.checkout(&pool).await?;
                    // From here on, dropping `tx` (cancellation, error)
                    // discards the connection until `BEGIN` is known to
                    // have completed.
                    let mut tx = tx::starting(held, stash.clone(), ctx.clone());
                    match Tm::begin(&mut *tx, Some(statement.clone().into())).await {
                        Ok(()) => {
                            tx.mark_open();
                            return Ok(tx);
                        }
                        // The `BEGIN` doubles as sqlx's liveness ping: a
                        // connection the server or the network dropped
                        // while it sat idle is discarded (by dropping `tx`)
                        // and the begin runs again on another one. Nothing
                        // was committed: the transaction never started, or
                        // died with its session.
                        Err(e) if attempt < retries && is_dead_connection(&e) => {
                            tracing::info!(
                                error = %e,
                                "tenant-sqlx: connection lost while idle; retrying BEGIN on another"
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
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// What the start-up audit found (empty unless
    /// [`allow_audit_findings(true)`](TenantPoolBuilder::allow_audit_findings)
    /// let a finding through).
    pub fn audit_report(&self) -> &AuditReport {
        &self.shared.report
    }

    /// Connections currently open (idle or in use).
    pub fn size(&self) -> u32 {
        self.pool.size()
    }

    /// Idle connections.
    pub fn num_idle(&self) -> usize {
        if self.pool.is_closed() {
            // sqlx 0.8.6 does not count down the idle connections its
            // `close` shuts.
            return 0;
        }
        // Kept connections (see `begin`) are idle too.
        self.pool.num_idle() + self.stash.len()
    }

    /// Closes every connection; later `begin` calls fail.
    pub async fn close(&self) {
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
        settings: Settings,
        report: AuditReport,
        test_before_acquire: bool,
    ) -> Result<Shared, Error> {
        let mut prefixes: [String; 4] = Default::default();
        for (prefix, field) in prefixes.iter_mut().zip(FIELDS) {
            *prefix = format!(
                "; SET LOCAL {} = ",
                quote_setting_name(settings.for_field(field))?
            );
        }
        Ok(Shared {
            settings,
            test_before_acquire,
            prefixes,
            report,
        })
    }

    fn begin_statement<S: IsValidated>(&self, ctx: &Ctx<S>) -> Result<String, Error> {
        let values = [
            Some(ctx.tenant_id().as_str()),
            ctx.agent_id_opt().map(|v| v.as_str()),
            ctx.conversation_id_opt().map(|v| v.as_str()),
            ctx.collection_id_opt().map(|v| v.as_str()),
        ];
        let mut sql = String::with_capacity(192);
        sql.push_str(CLEAN_BEGIN);
        for ((prefix, field), value) in self.prefixes.iter().zip(FIELDS).zip(values) {
            // A field the context does not carry needs no statement: the
            // `RESET ALL` before `BEGIN` already cleared any session-level
            // value, so it reads as unset (NULL or '').
            let Some(value) = value else { continue };
            sql.push_str(prefix);
            push_literal(&mut sql, self.settings.for_field(field), value)?;
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
/// Defaults: 10 connections, [`Settings::default`], tenant column
/// `tenant_id` for the audit, audit findings refused.
#[derive(Debug)]
pub struct TenantPoolBuilder {
    options: PgPoolOptions,
    test_before_acquire: bool,
    settings: Settings,
    tenant_column: String,
    allow_audit_findings: bool,
}

impl Default for TenantPoolBuilder {
    fn default() -> Self {
        TenantPoolBuilder {
            options: PgPoolOptions::new(),
            test_before_acquire: true,
            settings: Settings::default(),
            tenant_column: "tenant_id".to_owned(),
            allow_audit_findings: false,
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
    /// connection kept for the next `begin` (see [`TenantPool`]) is handed
    /// back to sqlx's pool once unused for 30 s, or for this timeout if
    /// shorter (checked at every `begin` and by a sweep every half of that
    /// period, so at most one and a half times as long), and closed there
    /// once idle for this long.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.options = self.options.idle_timeout(timeout);
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
    pub fn settings(mut self, settings: Settings) -> Self {
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

    /// Connects to `url` and runs the audit.
    pub async fn connect(self, url: &str) -> Result<TenantPool, Error> {
        let options: PgConnectOptions = url.parse()?;
        self.connect_with(options).await
    }

    /// Connects with `options` and runs the audit.
    pub async fn connect_with(self, options: PgConnectOptions) -> Result<TenantPool, Error> {
        // Checked before connecting: a bad name would fail every `begin`.
        Shared::new(self.settings.clone(), AuditReport::default(), true)?;
        let pool = self
            .options
            // `begin` checks liveness itself, without a ping's round trip.
            .test_before_acquire(false)
            .after_release(|conn, _meta| {
                // Free: sqlx's own count. It catches a sqlx `Transaction`
                // (a savepoint) that was leaked with `mem::forget`.
                Box::pin(async move { Ok(!conn.is_in_transaction()) })
            })
            .connect_with(options)
            .await?;
        let report = {
            let mut conn = pool.acquire().await?;
            audit::run(&mut conn, &self.settings, &self.tenant_column).await?
        };
        if !report.findings.is_empty() {
            if !self.allow_audit_findings {
                pool.close().await;
                return Err(Error::AuditFailed(report));
            }
            for finding in &report.findings {
                tracing::warn!(
                    ?finding,
                    "tenant-sqlx audit finding allowed by configuration"
                );
            }
        }
        let stash = Arc::new(Stash::new(&pool));
        stash.sweep_in_background();
        Ok(TenantPool {
            pool,
            stash,
            shared: Arc::new(Shared::new(
                self.settings,
                report,
                self.test_before_acquire,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_core::{Validated, WithAgent};

    #[test]
    fn begin_statement_cleans_then_sets_the_fields_the_context_carries() {
        let shared = Shared::new(Settings::default(), AuditReport::default(), true).unwrap();
        let ctx: Ctx<Validated<WithAgent>> = Ctx::unvalidated()
            .with_tenant("acme")
            .with_agent("agent-7")
            .validate()
            .unwrap();
        assert_eq!(
            shared.begin_statement(&ctx).unwrap(),
            "CLOSE ALL; DISCARD TEMP; RESET ALL; BEGIN\
             ; SET LOCAL \"app\".\"current_tenant\" = 'acme'\
             ; SET LOCAL \"app\".\"current_agent\" = 'agent-7'"
        );
    }

    #[test]
    fn bad_setting_names_are_refused_up_front() {
        let err = Shared::new(
            Settings::default().with_tenant("tenant"),
            AuditReport::default(),
            true,
        )
        .err()
        .unwrap();
        assert_eq!(err.code(), "INVALID_SETTING_NAME");
    }
}
