//! [`TenantTx`]: a transaction scoped to one tenant, and its [`Savepoint`]s.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, TransactionManager};
use tenant_core::{Ctx, TenantId, Validated};

use crate::stash::{Held, Stash};
use crate::Error;

type Tm = <Postgres as sqlx::Database>::TransactionManager;

/// `TenantTx::conn` is `None` only while it is being dropped.
const LIVE: &str = "a live TenantTx holds its connection";

/// A transaction opened by [`TenantPool::begin`](crate::TenantPool::begin)
/// for one validated context. The tenant (and every field of the context)
/// is set for this transaction only.
///
/// Run queries on `&mut *tx` (it dereferences to a `PgConnection`, like a
/// sqlx `Transaction`), or pass `&mut tx` where an `Executor` is expected.
/// End it with [`commit`](Self::commit) or [`rollback`](Self::rollback);
/// dropping it rolls back.
///
/// It borrows the context (`'ctx`): it cannot be returned past the context,
/// stored in a `static` or moved into `tokio::spawn`. It is `Send`, so it
/// can be held across `.await` in a spawned task that owns the context.
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
///     .execute(&mut *tx)
///     .await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct TenantTx<'ctx> {
    /// `None` only once dropped.
    conn: Option<PoolConnection<Postgres>>,
    /// When the connection left sqlx's pool (see `stash`).
    since: Instant,
    /// Where a cleanly ended transaction leaves its connection.
    stash: Arc<Stash>,
    /// `BEGIN` completed and `commit`/`rollback` has not: on drop, queue a
    /// rollback. Before `BEGIN` completes the connection state is unknown,
    /// so drop discards the connection instead.
    open: bool,
    /// Set once `commit`/`rollback` succeeded: the connection is clean.
    done: bool,
    /// A savepoint was dropped, cancelled or failed without being ended: the
    /// transaction's state is not what the code thinks, so it must not
    /// commit.
    poisoned: bool,
    ctx: Ctx<Validated>,
    _ctx: PhantomData<&'ctx Ctx<Validated>>,
}

/// A transaction whose `BEGIN` has not completed yet. Not an associated
/// function, so that rustc never suggests it to a user who tries a struct
/// literal.
pub(crate) fn starting<'ctx>(held: Held, stash: Arc<Stash>, ctx: Ctx<Validated>) -> TenantTx<'ctx> {
    TenantTx {
        conn: Some(held.conn),
        since: held.since,
        stash,
        open: false,
        done: false,
        poisoned: false,
        ctx,
        _ctx: PhantomData,
    }
}

impl<'ctx> TenantTx<'ctx> {
    fn pooled(&self) -> &PoolConnection<Postgres> {
        self.conn.as_ref().expect(LIVE)
    }

    fn pooled_mut(&mut self) -> &mut PoolConnection<Postgres> {
        self.conn.as_mut().expect(LIVE)
    }

    pub(crate) fn mark_open(&mut self) {
        self.open = true;
    }

    /// The tenant this transaction is scoped to.
    pub fn tenant_id(&self) -> &TenantId {
        self.ctx.tenant_id()
    }

    /// Commits the transaction.
    ///
    /// Returns [`Error::TransactionLost`] (after rolling back) if a
    /// [`Savepoint`] was dropped or cancelled without being ended. Note that
    /// once a statement has failed (outside a savepoint that was rolled back
    /// to), PostgreSQL has aborted the transaction and answers `COMMIT` with
    /// a rollback, which sqlx reports as success: handle each statement's
    /// error (`?`) rather than committing past it.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), Error> {
        // Anything but depth 1 means the transaction was ended or nested
        // behind our back; the connection is then discarded by `drop`.
        if Tm::get_transaction_depth(self.pooled()) != 1 {
            self.open = false;
            return Err(Error::TransactionLost);
        }
        if self.poisoned {
            Tm::rollback(self.pooled_mut()).await?;
            self.done = true;
            return Err(Error::TransactionLost);
        }
        if commit {
            Tm::commit(self.pooled_mut()).await?;
        } else {
            Tm::rollback(self.pooled_mut()).await?;
        }
        self.done = true;
        Ok(())
    }

    /// Opens a savepoint inside this transaction, for the same tenant.
    /// Dropping it without [`Savepoint::commit`] rolls back to it.
    ///
    /// ```no_run
    /// # async fn demo(mut tx: tenant_sqlx::TenantTx<'_>) -> Result<(), tenant_sqlx::Error> {
    /// let mut sp = tx.savepoint().await?;
    /// let failed = sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ('acme', NULL)")
    ///     .execute(&mut *sp)
    ///     .await
    ///     .is_err();
    /// if failed { sp.rollback().await? } else { sp.commit().await? }
    /// tx.commit().await?; // the outer transaction is still usable
    /// # Ok(()) }
    /// ```
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_>, Error> {
        let conn = self.conn.as_mut().expect(LIVE);
        Savepoint::open(conn, &mut self.poisoned, 1).await
    }
}

impl Drop for TenantTx<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.done {
            // Ended by a successful COMMIT or ROLLBACK: kept by the pool
            // for the next `begin`, without sqlx's release ping (the stash
            // checks the transaction state again).
            self.stash.put(Held {
                conn,
                since: self.since,
            });
        } else if self.open && Tm::get_transaction_depth(&conn) == 1 {
            // The same path as a dropped sqlx `Transaction`: the ROLLBACK is
            // flushed by the pool's release check before anyone else gets
            // the connection.
            Tm::start_rollback(&mut conn);
        } else {
            conn.close_on_drop();
        }
    }
}

impl fmt::Debug for TenantTx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.ctx.tenant_id().as_str())
            .field("ctx", &self.ctx)
            .field("open", &(self.open && !self.done))
            .finish()
    }
}

impl Deref for TenantTx<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.pooled()
    }
}

impl DerefMut for TenantTx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.pooled_mut()
    }
}

/// A savepoint inside a [`TenantTx`], for the same tenant. Made by
/// [`TenantTx::savepoint`] (or [`Savepoint::savepoint`] to nest further).
///
/// Queries run on `&mut *sp` or `&mut sp`. [`commit`](Self::commit)
/// releases the savepoint; [`rollback`](Self::rollback) undoes what was done
/// since it was made, and the transaction goes on.
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
    conn: &'t mut PgConnection,
    poisoned: &'t mut bool,
    depth: u32,
    ended: bool,
}

impl<'t> Savepoint<'t> {
    async fn open(
        conn: &'t mut PgConnection,
        poisoned: &'t mut bool,
        depth: u32,
    ) -> Result<Savepoint<'t>, Error> {
        let mut sp = Savepoint {
            conn,
            poisoned,
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
        let was = std::mem::replace(&mut *self.poisoned, true);
        let sql = format!("{verb} tenant_sp_{}", self.depth);
        sqlx::raw_sql(&sql).execute(&mut *self.conn).await?;
        *self.poisoned = was;
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
        Savepoint::open(&mut *self.conn, &mut *self.poisoned, self.depth + 1).await
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.ended {
            *self.poisoned = true;
        }
    }
}

impl fmt::Debug for Savepoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Savepoint")
            .field("depth", &self.depth)
            .finish()
    }
}

impl Deref for Savepoint<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
    }
}

impl DerefMut for Savepoint<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
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
