//! [`TenantTx`]: a transaction scoped to one tenant, and its [`Savepoint`]s.
//!
//! Neither hands out the `PgConnection` it runs on: a `&mut PgConnection`
//! could be `mem::swap`ped with another session (an admin connection,
//! another tenant's transaction), which would then go back to the pool.
//! `&mut tx` and `&mut sp` are sqlx executors instead (see `executor.rs`),
//! and every statement passes [`Inner::session`] first.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgQueryResult;
use sqlx::{PgConnection, Postgres};
use tenant_core::{Ctx, TenantId, Unvalidated, Validated};

use crate::stash::{Held, Stash};
use crate::Error;
use crate::{control, taint};

/// How a tenant transaction commits, in one message: it clears what the
/// transaction may have left in the session, then commits, so that the
/// next `begin` on the connection starts clean at no cost of its own.
///
/// * `SET CONSTRAINTS ALL IMMEDIATE` first, where the database has
///   deferrable constraint triggers (seen at connect) or a statement of the
///   transaction mentions constraints (`SET CONSTRAINTS … DEFERRED`):
///   deferred triggers run now, while the tenant (and the role) are still
///   set. A deferrable trigger created while the pool runs would run after
///   the clearing, with no tenant set: it then sees no tenant's rows.
/// * In a transaction the server has aborted (a failed statement whose
///   error was ignored) the first statement fails with 25P02 and nothing
///   after it runs: the commit reports [`Error::TransactionAborted`].
/// * `RESET ALL`: every setting made with `SET` or `set_config(…, false)`,
///   session transaction characteristics included (values given at connect
///   time, in the connection options, are kept).
/// * `DISCARD TEMP` drops temporary tables and functions (which RLS does
///   not protect), `DISCARD SEQUENCES` what `lastval()`/`currval()` would
///   tell of this transaction's inserts.
/// * `RESET ROLE` undoes a `SET ROLE`, when the role is a member of another
///   role (checked at connect: otherwise `SET ROLE` has nowhere to go) or a
///   statement of the transaction mentions a role (`taint::may_change_role`):
///   it costs the server as much as a short query, so it runs only where it
///   can matter.
/// * `CLOSE ALL` drops `WITH HOLD` cursors, always: one declared through
///   `EXECUTE` inside an existing function shows in no statement's text,
///   and would keep this transaction's rows for the next borrower.
///
/// Behind a transaction pooler, [`CLEAN_BEHIND_POOLER_AT_COMMIT`] comes
/// before the `COMMIT` too. What a transaction cannot clear is handled by
/// `taint` (the connection is closed instead of reused).
pub(crate) const COMMIT_CLEAN: &str = "RESET ALL; DISCARD TEMP; DISCARD SEQUENCES";
/// Put in front of [`COMMIT_CLEAN`] when deferred constraint triggers may
/// be pending (see [`Inner::run_deferred`]).
const RUN_DEFERRED: &str = "SET CONSTRAINTS ALL IMMEDIATE; ";
/// Added to [`COMMIT_CLEAN`] when the transaction may have changed the role
/// (see [`Inner::reset_role`]).
const RESET_ROLE: &str = "; RESET ROLE";
/// Added to [`COMMIT_CLEAN`]: drops `WITH HOLD` cursors.
const CLOSE_ALL: &str = "; CLOSE ALL";
/// Behind a transaction pooler: `LISTEN` registrations end when the
/// transaction that runs `UNLISTEN *` commits, so the next client of the
/// server session receives no notification meant for this one; session
/// advisory locks and prepared statements (sqlx's own are unnamed in this
/// mode) go too.
pub(crate) const CLEAN_BEHIND_POOLER_AT_COMMIT: &str =
    "; UNLISTEN *; DEALLOCATE ALL; SELECT pg_advisory_unlock_all()";
/// How a tenant transaction rolls back. A rollback undoes the settings,
/// role, temporary objects and cursors the transaction made; sequence state
/// survives it, so `DISCARD SEQUENCES` follows in the same message (in a
/// transaction of its own).
pub(crate) const ROLLBACK_CLEAN: &str = "ROLLBACK; DISCARD SEQUENCES";

/// Where a transaction is, as far as this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The begin message was sent and has not completed: the session's state
    /// is unknown, so dropping the transaction closes the connection.
    Starting,
    /// `BEGIN` completed; dropping the transaction rolls it back.
    Open,
    /// Open, but a savepoint was dropped, cancelled or failed without being
    /// ended: the transaction's state is not what the code thinks, so
    /// statements still run (inside the tenant transaction) but `commit`
    /// rolls back and fails.
    Poisoned,
    /// `COMMIT` or `ROLLBACK` was sent and has not completed (or failed):
    /// unknown again.
    Ending,
    /// `COMMIT` or `ROLLBACK` succeeded: the session is outside any
    /// transaction.
    Ended,
}

impl State {
    /// Inside the transaction `BEGIN` opened: statements may run.
    fn is_open(self) -> bool {
        matches!(self, State::Open | State::Poisoned)
    }
}

/// What a [`TenantTx`] and its [`Savepoint`]s share: the connection and what
/// is known about it.
pub(crate) struct Inner {
    /// `None` only once dropped.
    conn: Option<PoolConnection<Postgres>>,
    /// When the connection left sqlx's pool (see `stash`).
    since: Instant,
    /// Where a cleanly ended transaction leaves its connection.
    stash: Arc<Stash>,
    state: State,
    /// A statement may have left session state that the next begin does not
    /// clear (see `taint`): the connection is closed instead of reused.
    tainted: bool,
    /// The commit resets the role (see [`COMMIT_CLEAN`]).
    reset_role: bool,
    /// The commit runs deferred triggers before clearing (see
    /// [`COMMIT_CLEAN`]).
    run_deferred: bool,
    ctx: Ctx<Validated>,
    /// The tenant's admission ([`crate::fair`]), given back when the
    /// transaction lets go of its connection (after the connection itself).
    _permit: Option<Arc<crate::fair::Permit>>,
}

/// `Inner::conn` is `None` only while it is being dropped.
const LIVE: &str = "a live TenantTx holds its connection";

/// A transaction opened by [`TenantPool::begin`](crate::TenantPool::begin)
/// for one validated context. The tenant (and every field of the context)
/// is set for this transaction only.
///
/// Pass `&mut tx` wherever sqlx expects an executor: `fetch_*`, `execute`,
/// helpers generic over `E: sqlx::Executor<'c, Database = Postgres>`. There
/// is deliberately no `Deref` to the `PgConnection` underneath (a
/// `&mut PgConnection` can be swapped with another session). End it with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback); dropping it
/// rolls back.
///
/// It borrows the context (`'ctx`): it cannot be returned past the context,
/// stored in a `static` or moved into `tokio::spawn`. A context that lives
/// for `'static` (leaked, or in a `static`) defeats that borrow, so every
/// statement also checks at run time that it does not run inside another
/// tenant's [scope](tenant_core::Ctx::scope), and fails with
/// [`Error::TenantScopeMismatch`] if it does.
///
/// It is `Send`, so it can be held across `.await` in a spawned task that
/// owns the context.
///
/// ```no_run
/// use tenant_core::{Ctx, Validated};
/// use tenant_sqlx::{TenantPool, TenantTx};
///
/// async fn notes(tx: &mut TenantTx<'_>) -> Result<Vec<(i64, String)>, sqlx::Error> {
///     sqlx::query_as("SELECT id, body FROM notes ORDER BY id").fetch_all(tx).await
/// }
///
/// # async fn demo(pool: TenantPool, ctx: Ctx<Validated>) -> Result<(), tenant_sqlx::Error> {
/// let mut tx = pool.begin(&ctx).await?;
/// let all = notes(&mut tx).await?;
/// sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ($1, 'hello')")
///     .bind(ctx.tenant_id().as_str())
///     .execute(&mut tx)
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct TenantTx<'ctx> {
    inner: Inner,
    _ctx: PhantomData<&'ctx Ctx<Validated>>,
}

/// A transaction whose begin message has not completed yet. Not an
/// associated function, so that rustc never suggests it to a user who tries
/// a struct literal.
pub(crate) fn starting<'ctx>(
    held: Held,
    stash: Arc<Stash>,
    ctx: Ctx<Validated>,
    facts: crate::pool::SessionFacts,
) -> TenantTx<'ctx> {
    let behind_pooler = stash.behind_pooler();
    TenantTx {
        inner: Inner {
            conn: Some(held.conn),
            since: held.since,
            stash,
            state: State::Starting,
            tainted: false,
            // Behind a pooler the server session is shared with other
            // clients: always the full clearing.
            reset_role: facts.member_of_roles || behind_pooler,
            run_deferred: facts.deferrable_triggers || behind_pooler,
            ctx,
            _permit: held.permit,
        },
        _ctx: PhantomData,
    }
}

impl Inner {
    fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect(LIVE)
    }

    /// The session, for a statement with text `sql`: refused inside another
    /// tenant's scope and once the transaction has ended; the statement's
    /// text is checked for session state that outlives the transaction.
    /// Transaction control written by hand is refused before it is sent
    /// (see `control`).
    pub(crate) fn session(&mut self, sql: &str) -> Result<&mut PgConnection, sqlx::Error> {
        check_scope(self.ctx.tenant_id()).map_err(Error::into_sqlx)?;
        if !self.state.is_open() {
            return Err(Error::TransactionLost.into_sqlx());
        }
        if let Some(statement) = control::transaction_control(sql) {
            return Err(Error::TransactionControlRefused { statement }.into_sqlx());
        }
        self.own_statement(sql)
    }

    /// [`session`](Self::session) for this crate's own savepoint statements,
    /// which are transaction control.
    fn own_statement(&mut self, sql: &str) -> Result<&mut PgConnection, sqlx::Error> {
        check_scope(self.ctx.tenant_id()).map_err(Error::into_sqlx)?;
        if !self.state.is_open() {
            return Err(Error::TransactionLost.into_sqlx());
        }
        if !self.reset_role && taint::may_change_role(sql) {
            self.reset_role = true;
        }
        if !self.run_deferred && taint::may_defer_constraints(sql) {
            self.run_deferred = true;
        }
        if !self.tainted && taint::leaves_session_state(sql) {
            self.tainted = true;
        }
        Ok(self.conn())
    }
}

/// Runs `sql` (one or more statements, simple protocol) and discards any
/// rows. Through the `Executor` trait, whose boxed future keeps `begin`,
/// `commit` and the savepoint methods `Send` for every caller (`RawSql`'s
/// own `async fn execute` trips rustc's "`Executor` is not general enough"
/// inside async blocks).
pub(crate) fn run_raw<'c>(
    conn: &'c mut PgConnection,
    sql: &'c str,
) -> BoxFuture<'c, Result<PgQueryResult, sqlx::Error>> {
    sqlx::Executor::execute(conn, sqlx::raw_sql(sql))
}

/// An error that says the connection itself failed (no answer came back).
fn is_connection_failure(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

/// Refuses to work for `tenant` inside the validated scope of another
/// tenant: a transaction or a context that outlived its request (a leaked
/// `'static` context, a transaction parked in a static) must not serve the
/// next one.
pub(crate) fn check_scope(tenant: &TenantId) -> Result<(), Error> {
    tenant_core::with_current(|current| match current {
        Some(scope) if scope.tenant_id() != tenant => Err(Error::TenantScopeMismatch {
            transaction: tenant.clone(),
            scope: scope.tenant_id().clone(),
        }),
        _ => Ok(()),
    })
}

impl<'ctx> TenantTx<'ctx> {
    pub(crate) fn begin_conn(&mut self) -> &mut PgConnection {
        self.inner.conn()
    }

    pub(crate) fn mark_open(&mut self) {
        self.inner.state = State::Open;
    }

    /// The tenant this transaction is scoped to.
    pub fn tenant_id(&self) -> &TenantId {
        self.inner.ctx.tenant_id()
    }

    /// The values of the context the transaction was opened with (tenant,
    /// and agent, conversation and collection where it has them), as a raw
    /// context: what an outbox wraps the events it writes with.
    ///
    /// Raw on purpose: code that holds only a transaction gets the values,
    /// never the validated context itself, so it cannot keep a context
    /// that outlives the transaction or carries the caller's provenance
    /// (validated again, it is `Unchecked`, which a pool with
    /// [`require_authorized`](crate::TenantPoolBuilder::require_authorized)
    /// refuses).
    pub fn to_unvalidated(&self) -> Ctx<Unvalidated> {
        self.inner.ctx.to_unvalidated()
    }

    /// Commits the transaction.
    ///
    /// `Ok` means that the transaction `begin` opened, with everything run
    /// through it, is committed: transaction control written by hand
    /// (`COMMIT`, `ROLLBACK; BEGIN`, `SAVEPOINT`, …) cannot end or replace
    /// it, because such a statement is refused before it is sent
    /// ([`Error::TransactionControlRefused`]).
    ///
    /// Fails, with the work not committed and the connection closed, when:
    ///
    /// * a [`Savepoint`] was dropped or cancelled without being ended
    ///   ([`Error::TransactionLost`], after rolling back);
    /// * the server had already aborted the transaction, because a statement
    ///   failed (its error ignored) or timed out: PostgreSQL answers such a
    ///   `COMMIT` with a rollback ([`Error::TransactionAborted`]);
    /// * a deferred constraint or the `COMMIT` itself failed (a serialization
    ///   failure, say): [`Error::Database`].
    ///
    /// If the connection fails while the `COMMIT` is under way, the outcome
    /// is unknown: [`Error::CommitOutcomeUnknown`] says that the transaction
    /// may have been committed.
    ///
    /// It costs no extra round trip: the clearing that leaves the session
    /// clean for the next borrower travels with the `COMMIT`.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), Error> {
        check_scope(self.tenant_id())?;
        let inner = &mut self.inner;
        if !inner.state.is_open() {
            return Err(Error::TransactionLost);
        }
        let poisoned = inner.state == State::Poisoned;
        let behind_pooler = inner.stash.behind_pooler();
        let committing = commit && !poisoned;
        let sql = if committing {
            let mut sql = String::with_capacity(160);
            if inner.run_deferred {
                sql.push_str(RUN_DEFERRED);
            }
            sql.push_str(COMMIT_CLEAN);
            if inner.reset_role {
                sql.push_str(RESET_ROLE);
            }
            // Always: a `WITH HOLD` cursor can be declared where no
            // statement text shows it (`EXECUTE` inside an existing
            // function), and it would hand this transaction's rows to the
            // next borrower who fetches it by name.
            sql.push_str(CLOSE_ALL);
            if behind_pooler {
                sql.push_str(CLEAN_BEHIND_POOLER_AT_COMMIT);
            }
            sql.push_str("; COMMIT");
            std::borrow::Cow::Owned(sql)
        } else {
            std::borrow::Cow::Borrowed(ROLLBACK_CLEAN)
        };
        inner.state = State::Ending;
        let result = run_raw(inner.conn(), &sql).await;
        match result {
            Ok(_) => {
                inner.state = State::Ended;
                if poisoned {
                    Err(Error::TransactionLost)
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(match e.as_database_error().and_then(|d| d.code()) {
                Some(c) if c == "25P02" => Error::TransactionAborted,
                Some(_) => Error::Database(e),
                // No answer from the server: a COMMIT may have been carried
                // out.
                None if committing && is_connection_failure(&e) => Error::CommitOutcomeUnknown(e),
                None => Error::Database(e),
            }),
        }
    }

    /// Opens a savepoint inside this transaction, for the same tenant.
    /// Dropping it without [`Savepoint::commit`] rolls back to it.
    ///
    /// ```no_run
    /// # async fn demo(mut tx: tenant_sqlx::TenantTx<'_>) -> Result<(), tenant_sqlx::Error> {
    /// let mut sp = tx.savepoint().await?;
    /// let failed = sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ('acme', NULL)")
    ///     .execute(&mut sp)
    ///     .await
    ///     .is_err();
    /// if failed { sp.rollback().await? } else { sp.commit().await? }
    /// tx.commit().await?; // the outer transaction is still usable
    /// # Ok(()) }
    /// ```
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
        Savepoint::open(&mut self.inner, 1).await
    }
}

impl Drop for TenantTx<'_> {
    fn drop(&mut self) {
        let inner = &mut self.inner;
        let Some(mut conn) = inner.conn.take() else {
            return;
        };
        let rollback_first = match inner.state {
            // Ended by a successful COMMIT or ROLLBACK: kept by the pool for
            // the next `begin`, without sqlx's release ping.
            State::Ended => false,
            // Still open: the next begin on this connection starts with the
            // ROLLBACK, in the same message, as sqlx's own dropped
            // `Transaction` queues one for the next use.
            State::Open | State::Poisoned => true,
            // Unknown (a begin, commit or rollback cancelled or failed half
            // way): closed.
            State::Starting | State::Ending => {
                conn.close_on_drop();
                return;
            }
        };
        if inner.tainted {
            conn.close_on_drop();
            return;
        }
        inner.stash.put(Held {
            conn,
            since: inner.since,
            rollback_first,
            permit: None,
        });
    }
}

impl fmt::Debug for TenantTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.inner.ctx.tenant_id().as_str())
            .field("ctx", &self.inner.ctx)
            .field("open", &self.inner.state.is_open())
            .finish()
    }
}

/// A savepoint inside a [`TenantTx`], for the same tenant. Made by
/// [`TenantTx::savepoint`] (or [`Savepoint::savepoint`] to nest further).
///
/// Queries run on `&mut sp`. [`commit`](Self::commit) releases the
/// savepoint; [`rollback`](Self::rollback) undoes what was done since it was
/// made, and the transaction goes on.
///
/// End it with one of the two. A savepoint that is dropped without being
/// ended, or whose statement is cancelled or fails, leaves the transaction
/// in a state the code did not choose: the enclosing
/// [`TenantTx::commit`] then rolls everything back and returns
/// [`Error::TransactionLost`]. Queries in the meantime still run inside the
/// tenant transaction. (sqlx's own nested transactions are not used: a
/// cancelled one rolls the whole transaction back and lets later queries run
/// outside any transaction.)
pub struct Savepoint<'t> {
    inner: &'t mut Inner,
    depth: u32,
    ended: bool,
}

impl<'t> Savepoint<'t> {
    async fn open(inner: &'t mut Inner, depth: u32) -> Result<Savepoint<'t>, Error> {
        let mut sp = Savepoint {
            inner,
            depth,
            // Not yet made: until SAVEPOINT has run, dropping this (a
            // cancelled `savepoint()`) poisons the transaction.
            ended: false,
        };
        sp.run("SAVEPOINT").await?;
        Ok(sp)
    }

    /// Runs `<verb> tenant_sp_<depth>`. Poisons the transaction unless it
    /// completes: cancelled or failed, the savepoint's state is unknown.
    async fn run(&mut self, verb: &str) -> Result<(), Error> {
        let sql = format!("{verb} tenant_sp_{}", self.depth);
        let was = self.inner.state;
        if was.is_open() {
            self.inner.state = State::Poisoned;
        }
        let conn = self.inner.own_statement(&sql)?;
        run_raw(conn, &sql).await?;
        self.inner.state = was;
        Ok(())
    }

    /// Releases the savepoint, keeping its work in the enclosing transaction.
    pub async fn commit(mut self) -> Result<(), Error> {
        let result = self.run("RELEASE SAVEPOINT").await;
        self.ended = true;
        result
    }

    /// Rolls back to the savepoint; the enclosing transaction goes on (also
    /// after a statement in the savepoint failed).
    pub async fn rollback(mut self) -> Result<(), Error> {
        let result = self.run("ROLLBACK TO SAVEPOINT").await;
        self.ended = true;
        result
    }

    /// Opens a savepoint inside this one.
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
        Savepoint::open(&mut *self.inner, self.depth + 1).await
    }

    /// The tenant of the enclosing transaction.
    pub fn tenant_id(&self) -> &TenantId {
        self.inner.ctx.tenant_id()
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.ended && self.inner.state == State::Open {
            self.inner.state = State::Poisoned;
        }
    }
}

impl fmt::Debug for Savepoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Savepoint")
            .field("tenant", &self.inner.ctx.tenant_id().as_str())
            .field("depth", &self.depth)
            .finish()
    }
}

impl crate::executor::Session for TenantTx<'_> {
    fn session(&mut self, sql: &str) -> Result<&mut PgConnection, sqlx::Error> {
        self.inner.session(sql)
    }

    fn unnamed_statements(&self) -> bool {
        self.inner.stash.behind_pooler()
    }
}

impl crate::executor::Session for Savepoint<'_> {
    fn session(&mut self, sql: &str) -> Result<&mut PgConnection, sqlx::Error> {
        self.inner.session(sql)
    }

    fn unnamed_statements(&self) -> bool {
        self.inner.stash.behind_pooler()
    }
}

forward_executor!(TenantTx<'_>);
forward_executor!(Savepoint<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}

    #[test]
    fn transactions_and_savepoints_are_send() {
        // A handler holds them across `.await` inside a spawned task.
        send::<TenantTx<'static>>();
        send::<Savepoint<'static>>();
    }
}
