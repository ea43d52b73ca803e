//! The connections a [`TenantPool`](crate::TenantPool) keeps for itself
//! between transactions.
//!
//! sqlx 0.8.6 pings every connection it takes back (`PoolConnection`'s
//! release path), a round trip per transaction. A connection whose tenant
//! transaction ended with a successful `COMMIT` or `ROLLBACK` needs no such
//! check: it is known to be outside any transaction, and the next `BEGIN`
//! on it is itself the liveness check (see
//! [`TenantPoolBuilder::test_before_acquire`](crate::TenantPoolBuilder::test_before_acquire)).
//! So such a connection is not released to sqlx but kept here, still checked
//! out of sqlx's pool (sqlx's `max_connections` therefore still bounds the
//! total), and handed to the next `begin`, most recently used first: under
//! light load the same few server backends stay busy and warm.
//!
//! Everything else goes back through sqlx's release path as before: a
//! transaction that was dropped, failed to end or was nested behind our
//! back, a connection kept here for longer than [`RECYCLE_AFTER`] since it
//! left sqlx's pool (so that sqlx's `max_lifetime` and `idle_timeout` still
//! apply), and everything once the pool is closed.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, TransactionManager};
use tokio::sync::oneshot;

type Tm = <Postgres as sqlx::Database>::TransactionManager;

/// How long a connection may go without passing through sqlx's pool: it is
/// then released to sqlx (one ping) instead of being kept.
pub(crate) const RECYCLE_AFTER: Duration = Duration::from_secs(30);

/// A connection out of sqlx's pool, with the time it left it.
pub(crate) struct Held {
    pub(crate) conn: PoolConnection<Postgres>,
    pub(crate) since: Instant,
}

struct Kept {
    held: Held,
    kept_at: Instant,
}

#[derive(Default)]
pub(crate) struct Stash {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Oldest first; `begin` takes from the end.
    idle: Vec<Kept>,
    /// `begin`s waiting for a connection, first come first served: a
    /// connection being kept goes to the first of them rather than to
    /// `idle`, so a task that loops on `begin` cannot starve the others.
    waiters: VecDeque<oneshot::Sender<Held>>,
    closed: bool,
}

impl Stash {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one would still
        // hold consistent lists.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A kept connection, most recently used first; otherwise whichever
    /// comes first of a connection kept by a transaction that ends and one
    /// from sqlx's pool.
    pub(crate) async fn checkout(&self, pool: &PgPool) -> Result<Held, sqlx::Error> {
        let mut handed = {
            let mut state = self.state();
            if let Some(kept) = state.idle.pop() {
                return Ok(kept.held);
            }
            let (tx, rx) = oneshot::channel();
            if !state.closed {
                state.waiters.retain(|w| !w.is_closed());
                state.waiters.push_back(tx);
            }
            rx
        };
        let deadline = tokio::time::Instant::now() + pool.options().get_acquire_timeout();
        let waited = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                biased;
                // An error means the pool closed: sqlx's acquire reports it.
                Ok(held) = &mut handed => Ok(held),
                conn = pool.acquire() => conn.map(|conn| Held { conn, since: Instant::now() }),
            }
        })
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        // A connection handed over after we stopped waiting is passed on.
        handed.close();
        if let Ok(late) = handed.try_recv() {
            self.put(late);
        }
        waited
    }

    /// Takes back a connection whose transaction ended with a successful
    /// `COMMIT` or `ROLLBACK`: to the first waiting `begin`, else kept.
    /// Anything else is released to sqlx.
    pub(crate) fn put(&self, mut held: Held) {
        let now = Instant::now();
        // sqlx's count; `TenantTx` also checked that its COMMIT or ROLLBACK
        // succeeded.
        let clean = Tm::get_transaction_depth(&held.conn) == 0;
        if !clean || now.duration_since(held.since) > RECYCLE_AFTER {
            // Dropping it releases it to sqlx: ping, lifetime, and the
            // pool's own check that it is outside any transaction.
            drop(held);
            return;
        }
        // Whatever is released to sqlx is dropped after the lock.
        let released = {
            let mut state = self.state();
            if state.closed {
                drop(state);
                drop(held);
                return;
            }
            loop {
                let Some(waiter) = state.waiters.pop_front() else {
                    break;
                };
                match waiter.send(held) {
                    Ok(()) => return,
                    // That `begin` stopped waiting (cancelled, or served by
                    // sqlx): try the next one.
                    Err(back) => held = back,
                }
            }
            // The oldest kept connection, if it has waited too long, goes
            // back to sqlx, whose idle timeout then applies to it.
            let stale = match state.idle.first() {
                Some(oldest) if now.duration_since(oldest.kept_at) > RECYCLE_AFTER => {
                    Some(state.idle.remove(0).held)
                }
                _ => None,
            };
            state.idle.push(Kept { held, kept_at: now });
            stale
        };
        drop(released);
    }

    pub(crate) fn len(&self) -> usize {
        self.state().idle.len()
    }

    /// Releases every kept connection to sqlx and keeps none from now on.
    pub(crate) fn close(&self) {
        let drained = {
            let mut state = self.state();
            state.closed = true;
            (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.waiters),
            )
        };
        drop(drained);
    }
}

impl Drop for Stash {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let idle = std::mem::take(&mut state.idle);
        if idle.is_empty() || tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        // The last handle on the pool is going away outside any Tokio
        // runtime (after `block_on` returned, say). sqlx releases a
        // connection on a task of the current runtime and panics without
        // one; a runtime of our own takes those tasks, and dropping it
        // closes the connections without running them.
        match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => {
                let _enter = rt.enter();
                drop(idle);
            }
            // Cannot happen short of the OS refusing a thread-less runtime:
            // leave the sockets to the process rather than panic in drop.
            Err(_) => std::mem::forget(idle),
        }
    }
}
