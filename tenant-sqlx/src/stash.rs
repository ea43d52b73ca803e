//! The kept-connection hand-off: the connections a
//! [`TenantPool`](crate::TenantPool) keeps for itself between transactions
//! (on by default; off with
//! [`TenantPoolBuilder::keep_connections(false)`](crate::TenantPoolBuilder::keep_connections)).
//! This is the one place that explains it.
//!
//! # Why
//!
//! sqlx 0.8.6 pings every connection it takes back (`PoolConnection`'s
//! release path), a round trip per transaction. A connection whose tenant
//! transaction ended with a successful `COMMIT` or `ROLLBACK` needs no such
//! check: it is known to be outside any transaction, and the next begin
//! message on it is itself the liveness check (see
//! [`TenantPoolBuilder::test_before_acquire`](crate::TenantPoolBuilder::test_before_acquire)).
//!
//! # How
//!
//! * **Keeping.** Such a connection is not released to sqlx but kept here
//!   ([`Stash::put`]), still checked out of sqlx's pool, so sqlx's
//!   `max_connections` still bounds the total and
//!   [`TenantPool::num_idle`](crate::TenantPool::num_idle) counts it.
//! * **Taking a kept connection** ([`Stash::take_kept`]): `begin` takes the
//!   most recently used one, so under light load the same few server
//!   backends stay busy and warm.
//! * **Waiting or acquiring** ([`Stash::wait_or_acquire`]): with none kept,
//!   `begin` queues for the next connection a transaction hands over (first
//!   come, first served, so a task that loops on `begin` cannot starve the
//!   others) and at the same time asks sqlx's pool; whichever comes first
//!   wins. A connect that sqlx had already started is finished in the
//!   background and kept for the next waiter.
//! * **Dropped inside a transaction.** A connection whose transaction was
//!   dropped while open is kept too, marked so that the next begin message
//!   on it starts with `ROLLBACK` (as sqlx's own dropped `Transaction`
//!   queues one). It is never released to sqlx in that state (sqlx does not
//!   know the server's transaction state), only closed.
//! * **Recycling.** A connection out of sqlx's pool for longer than
//!   [`RECYCLE_AFTER`], or kept unused for as long (or for the pool's idle
//!   timeout or maximum lifetime if shorter), goes back through sqlx's
//!   release path, so that its idle timeout and lifetime still apply:
//!   checked on every use and by a background sweep every half period.
//!   Everything goes back once the pool is closed.
//!
//! With `keep_connections(false)` none of this runs: every connection goes
//! back through sqlx's release path (one ping each), and one whose
//! transaction was dropped while open is closed.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::oneshot;

/// How long a connection may go without passing through sqlx's pool, at
/// most: it is then released to sqlx (one ping) instead of being kept.
/// Shorter when the pool's `idle_timeout` or `max_lifetime` is.
pub(crate) const RECYCLE_AFTER: Duration = Duration::from_secs(30);

/// A connection out of sqlx's pool, with the time it left it.
pub(crate) struct Held {
    pub(crate) conn: PoolConnection<Postgres>,
    pub(crate) since: Instant,
    /// The last transaction on it was dropped while open: the server is
    /// still inside it until the next begin message, which starts with a
    /// `ROLLBACK`. Such a connection is never released to sqlx (whose pool
    /// does not know the server's transaction state): it is closed instead.
    pub(crate) rollback_first: bool,
    /// The tenant's admission ([`crate::fair`]) while a transaction uses
    /// the connection; given back when the connection is.
    pub(crate) permit: Option<Arc<crate::fair::Permit>>,
}

impl Held {
    fn fresh(conn: PoolConnection<Postgres>) -> Held {
        Held {
            conn,
            since: Instant::now(),
            rollback_first: false,
            permit: None,
        }
    }

    /// Gives the connection back to sqlx (which pings it, and applies its
    /// lifetime and idle timeout), or closes it if it is still inside a
    /// transaction.
    fn release(mut self) {
        if self.rollback_first {
            self.conn.close_on_drop();
        }
    }
}

fn release_all(kept: impl IntoIterator<Item = Kept>) {
    for k in kept {
        k.held.release();
    }
}

struct Kept {
    held: Held,
    kept_at: Instant,
}

pub(crate) struct Stash {
    state: Mutex<State>,
    /// [`RECYCLE_AFTER`], or the pool's `idle_timeout` or `max_lifetime`
    /// if shorter.
    recycle_after: Duration,
    /// A `begin` that waited longer than this for a connection logs a
    /// warning.
    slow: Duration,
    /// Behind a transaction pooler a connection left inside a transaction
    /// holds one of the pooler's few server sessions for as long as it is
    /// kept: it is closed instead when no `begin` is waiting for it.
    behind_pooler: bool,
    /// [`TenantPoolBuilder::keep_connections`](crate::TenantPoolBuilder::keep_connections):
    /// when `false`, nothing is kept and every connection goes back through
    /// sqlx's release path (one dropped inside a transaction is closed).
    keep: bool,
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
    pub(crate) fn new(pool: &PgPool, slow: Duration, behind_pooler: bool, keep: bool) -> Stash {
        let options = pool.options();
        let recycle_after = [options.get_idle_timeout(), options.get_max_lifetime()]
            .into_iter()
            .flatten()
            .fold(RECYCLE_AFTER, Duration::min);
        Stash {
            state: Mutex::default(),
            recycle_after,
            slow,
            behind_pooler,
            keep,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one would still
        // hold consistent lists.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for `begin`: a kept one if there is one
    /// ([`take_kept`](Self::take_kept)), else whichever comes first of a
    /// connection kept by a transaction that ends and one from sqlx's pool
    /// ([`wait_or_acquire`](Self::wait_or_acquire)).
    pub(crate) async fn checkout(self: &Arc<Self>, pool: &PgPool) -> Result<Held, sqlx::Error> {
        if !self.keep {
            let started = tokio::time::Instant::now();
            let conn = pool.acquire().await;
            self.warn_if_slow(started, conn.is_ok());
            return conn.map(Held::fresh);
        }
        match self.take_kept() {
            Ok(held) => Ok(held),
            Err(ticket) => self.wait_or_acquire(pool, ticket).await,
        }
    }

    /// The most recently used kept connection; otherwise a place in the
    /// queue of waiting `begin`s (`None` once the stash is closed). In one
    /// critical section, so that a connection kept in between is handed to
    /// this `begin` rather than left idle while it waits.
    fn take_kept(&self) -> Result<Held, Option<oneshot::Receiver<Held>>> {
        let now = Instant::now();
        let (stale, taken) = {
            let mut state = self.state();
            let stale = self.take_stale(&mut state, now);
            let taken = match state.idle.pop() {
                Some(kept) => Ok(kept.held),
                None if state.closed => Err(None),
                None => {
                    let (tx, rx) = oneshot::channel();
                    // Waiters that gave up are dropped lazily: here from
                    // both ends, elsewhere by `put`.
                    while state.waiters.front().is_some_and(|w| w.is_closed()) {
                        state.waiters.pop_front();
                    }
                    while state.waiters.back().is_some_and(|w| w.is_closed()) {
                        state.waiters.pop_back();
                    }
                    state.waiters.push_back(tx);
                    Err(Some(rx))
                }
            };
            (stale, taken)
        };
        release_all(stale);
        taken
    }

    /// Waits for whichever comes first: a connection a transaction hands
    /// over through `ticket` (first come, first served), or one from sqlx's
    /// pool; both within the pool's acquire timeout.
    async fn wait_or_acquire(
        self: &Arc<Self>,
        pool: &PgPool,
        ticket: Option<oneshot::Receiver<Held>>,
    ) -> Result<Held, sqlx::Error> {
        // A closed stash hands nothing over: sqlx's acquire reports the
        // closed pool.
        let mut handed = ticket.unwrap_or_else(|| oneshot::channel().1);
        let started = tokio::time::Instant::now();
        let deadline = started + pool.options().get_acquire_timeout();
        let mut acquire = Box::pin(pool.acquire());
        // Whether sqlx's acquire ran at all: once it has, it may be opening
        // a connection (several round trips), now or once it gets a permit.
        let mut polled = false;
        let waited = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                biased;
                // An error means the sender is gone (closed stash): sqlx's
                // acquire reports why.
                Ok(held) = &mut handed => {
                    if polled {
                        // Aborting a connect half way would cost the
                        // server a backend for nothing: let the acquire
                        // finish (sqlx times it out), and keep what it
                        // brings for the next waiter.
                        let stash = Arc::clone(self);
                        tokio::spawn(async move {
                            if let Ok(conn) = acquire.await {
                                stash.put(Held::fresh(conn));
                            }
                        });
                    }
                    Ok(held)
                }
                conn = std::future::poll_fn(|cx| {
                    polled = true;
                    acquire.as_mut().poll(cx)
                }) => conn.map(Held::fresh),
            }
        })
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        // A connection handed over after we stopped waiting is passed on.
        handed.close();
        if let Ok(late) = handed.try_recv() {
            self.put(late);
        }
        self.warn_if_slow(started, waited.is_ok());
        match waited {
            Ok(held) if self.state().closed => {
                // Handed over just before `close`: released, not used.
                held.release();
                Err(sqlx::Error::PoolClosed)
            }
            waited => waited,
        }
    }

    pub(crate) fn warn_if_slow(&self, started: tokio::time::Instant, ok: bool) {
        let waited_for = started.elapsed();
        if waited_for > self.slow {
            tracing::warn!(
                waited_ms = waited_for.as_millis() as u64,
                ok,
                "tenant-sqlx: begin waited long for a connection; the pool may be too small"
            );
        }
    }

    /// Takes back a connection whose transaction ended with a successful
    /// `COMMIT` or `ROLLBACK`: to the first waiting `begin`, else kept.
    /// Anything else is released to sqlx.
    pub(crate) fn put(&self, mut held: Held) {
        // The transaction is over: its tenant's admission goes back first
        // (it never travels to the next borrower).
        drop(held.permit.take());
        let now = Instant::now();
        if !self.keep || now.duration_since(held.since) > self.recycle_after {
            held.release();
            return;
        }
        // Whatever is released to sqlx is dropped after the lock.
        let released;
        {
            let mut state = self.state();
            if state.closed {
                drop(state);
                held.release();
                return;
            }
            while let Some(waiter) = state.waiters.pop_front() {
                match waiter.send(held) {
                    Ok(()) => return,
                    // That `begin` stopped waiting (cancelled, or served by
                    // sqlx): try the next one.
                    Err(back) => held = back,
                }
            }
            if held.rollback_first && self.behind_pooler {
                drop(state);
                held.release();
                return;
            }
            released = self.take_stale(&mut state, now);
            state.idle.push(Kept { held, kept_at: now });
        }
        release_all(released);
    }

    /// Takes out the kept connections that are no longer fresh: out of
    /// sqlx's pool, or kept unused, for longer than the recycling period.
    /// The caller drops them (releasing them to sqlx, whose idle timeout and
    /// lifetime then apply) after the lock.
    fn take_stale(&self, state: &mut State, now: Instant) -> Vec<Kept> {
        let stale = |k: &mut Kept| {
            now.duration_since(k.kept_at) > self.recycle_after
                || now.duration_since(k.held.since) > self.recycle_after
        };
        state.idle.extract_if(.., stale).collect()
    }

    /// Releases stale kept connections every half recycling period while
    /// the stash lives, so that a pool that goes quiet still hands its
    /// connections back to sqlx's idle timeout.
    pub(crate) fn sweep_in_background(self: &Arc<Self>) {
        if !self.keep {
            return;
        }
        let period = (self.recycle_after / 2).max(Duration::from_millis(10));
        let stash = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(stash) = stash.upgrade() else { break };
                let stale = stash.take_stale(&mut stash.state(), Instant::now());
                release_all(stale);
            }
        });
    }

    /// Whether the pool is behind a transaction pooler.
    pub(crate) fn behind_pooler(&self) -> bool {
        self.behind_pooler
    }

    pub(crate) fn len(&self) -> usize {
        self.state().idle.len()
    }

    /// Releases every kept connection to sqlx and keeps none from now on.
    pub(crate) fn close(&self) {
        let (idle, waiters) = {
            let mut state = self.state();
            state.closed = true;
            (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.waiters),
            )
        };
        drop(waiters);
        release_all(idle);
    }
}

impl Drop for Stash {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let idle = std::mem::take(&mut state.idle);
        if idle.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(_) => release_all(idle),
            // Thread-local storage is being torn down (a pool held in a
            // `thread_local!`): no runtime can be entered, and a panic here
            // would abort. The sockets are left to the process.
            Err(e) if e.is_thread_local_destroyed() => std::mem::forget(idle),
            // The last handle on the pool is going away outside any Tokio
            // runtime (after `block_on` returned, say). sqlx releases a
            // connection on a task of the current runtime and panics
            // without one; a runtime of our own takes those tasks, and
            // dropping it closes the connections without running them.
            Err(_) => match tokio::runtime::Builder::new_current_thread().build() {
                Ok(rt) => {
                    let _enter = rt.enter();
                    release_all(idle);
                }
                // The OS refused even a thread-less runtime: leave the
                // sockets to the process rather than panic in drop.
                Err(_) => std::mem::forget(idle),
            },
        }
    }
}
