//! Fair shares of the pool between tenants: admission before a `begin`
//! takes a connection (on by default; see
//! [`TenantPoolBuilder::fair_shares`](crate::TenantPoolBuilder::fair_shares)).
//! This is the one place that explains it.
//!
//! # Why
//!
//! A pool that hands connections out first come, first served lets one
//! tenant with many concurrent requests (a bulk import, a retry storm) hold
//! every connection while every other tenant waits behind it.
//!
//! # How
//!
//! Every `begin` first takes an admission for its tenant; the admission
//! travels with the connection and is given back when the transaction
//! ends (commit, rollback, drop, cancellation, a closed connection). At
//! most `max_connections` admissions exist, so whoever is admitted finds a
//! connection at once (kept, or from sqlx's pool).
//!
//! * **Cap.** A tenant holds at most its cap of admissions
//!   ([`FairShares::per_tenant`], default half the pool) while others may
//!   need a connection.
//! * **Bursting.** Above its cap a tenant may still be admitted while the
//!   pool keeps [`FairShares::reserve`] admissions free (default an eighth
//!   of the pool, at least one): an otherwise idle pool serves one busy
//!   tenant with almost all of it, and a tenant under its cap that arrives
//!   finds a free connection without waiting for anyone.
//! * **Turns.** When no admission can be had, a `begin` waits in its
//!   tenant's queue. Each admission given back goes to the next tenant *in
//!   turn* that may take one (round-robin over tenants, first come first
//!   served within a tenant): a tenant with one waiting request is served
//!   ahead of a tenant with sixty.
//! * **Bound.** A `begin` of a tenant at or over its cap that waits longer
//!   than [`FairShares::wait`] fails with
//!   [`Error::TenantBusy`](crate::Error::TenantBusy) (`TENANT_BUSY`, which
//!   an HTTP service answers with `429` and `Retry-After`), and a `tracing`
//!   warning names the tenant. A tenant within its share that waits as
//!   long (the pool is full of other tenants' transactions at their caps,
//!   or of leaked ones) gets sqlx's `PoolTimedOut`, as without fair shares.
//! * **Cancellation.** A waiter that is dropped leaves its queue at once;
//!   an admission handed to a waiter that was dropped in the meantime goes
//!   on to the next.
//! * **Figures.** [`TenantPool::tenant_figures`](crate::TenantPool::tenant_figures)
//!   gives each tenant's admissions held, `begin`s waiting, refusals and
//!   total wait.
//!
//! The queue only decides *when* a `begin` proceeds: the connection it then
//! gets is opened for its own context by its own begin message, exactly as
//! without it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tenant_core::TenantId;
use tokio::sync::oneshot;

use crate::Error;

/// How a pool shares its connections between tenants (see the
/// [`TenantPoolBuilder::fair_shares`](crate::TenantPoolBuilder::fair_shares)).
///
/// ```
/// use std::time::Duration;
/// use tenant_sqlx::FairShares;
///
/// // At most 4 connections per tenant while others wait, 2 always kept
/// // free when bursting, and `TENANT_BUSY` after 2 s in the queue.
/// let shares = FairShares::new()
///     .per_tenant(4)
///     .reserve(2)
///     .wait(Duration::from_secs(2));
/// # let _ = shares;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairShares {
    per_tenant: Option<u32>,
    reserve: Option<u32>,
    wait: Option<Duration>,
}

impl Default for FairShares {
    fn default() -> Self {
        FairShares::new()
    }
}

impl FairShares {
    /// The defaults: half the pool per tenant (rounded up), an eighth kept
    /// free when bursting (rounded down), and the pool's acquire timeout as
    /// the wait bound.
    pub fn new() -> Self {
        FairShares {
            per_tenant: None,
            reserve: None,
            wait: None,
        }
    }

    /// The most connections one tenant holds while it is not bursting (at
    /// least 1, at most the pool's size).
    pub fn per_tenant(mut self, connections: u32) -> Self {
        self.per_tenant = Some(connections);
        self
    }

    /// How many connections stay free for tenants under their cap while a
    /// tenant bursts above its own. `0` lets a tenant take the whole pool
    /// when it is otherwise idle (newcomers then wait for the next
    /// transaction to end).
    pub fn reserve(mut self, connections: u32) -> Self {
        self.reserve = Some(connections);
        self
    }

    /// How long a `begin` waits in its tenant's queue before
    /// `TENANT_BUSY`.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    pub(crate) fn build(self, max: u32, acquire_timeout: Duration) -> Arc<Fair> {
        let max = max.max(1) as usize;
        let cap = self
            .per_tenant
            .map_or(max.div_ceil(2), |c| c as usize)
            .clamp(1, max);
        let reserve = self
            .reserve
            .map_or(max / 8, |r| r as usize)
            .min(max.saturating_sub(1));
        Arc::new(Fair {
            state: Mutex::default(),
            max,
            cap,
            reserve,
            wait: self.wait.unwrap_or(acquire_timeout),
        })
    }
}

/// One tenant's figures in a pool with fair shares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantFigures {
    /// Connections the tenant's transactions hold now.
    pub held: u32,
    /// The tenant's `begin`s waiting for their turn now.
    pub waiting: u32,
    /// `begin`s refused with `TENANT_BUSY` so far.
    pub refused: u64,
    /// `begin`s that had to wait for their turn so far.
    pub waited: u64,
    /// Their total time in the queue.
    pub wait_time: Duration,
}

/// The admission queue. See the [module documentation](self).
pub(crate) struct Fair {
    state: Mutex<State>,
    max: usize,
    cap: usize,
    reserve: usize,
    wait: Duration,
}

impl fmt::Debug for Fair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairShares")
            .field("max", &self.max)
            .field("per_tenant", &self.cap)
            .field("reserve", &self.reserve)
            .field("wait", &self.wait)
            .finish()
    }
}

/// How many idle tenants' figures are kept before they are forgotten.
const KEEP_FIGURES: usize = 10_000;

#[derive(Default)]
struct State {
    held: usize,
    tenants: HashMap<TenantId, Tenant>,
    /// Tenants with waiters, in turn order.
    turns: VecDeque<TenantId>,
    next_id: u64,
}

#[derive(Default)]
struct Tenant {
    held: usize,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
    refused: u64,
    waited: u64,
    wait_time: Duration,
}

/// A tenant's admission, given back when dropped. Shared by the `begin`
/// that retries on another connection and the connection it is attached
/// to, so that it is given back once, when the last of them lets go.
pub(crate) struct Permit {
    fair: Arc<Fair>,
    tenant: TenantId,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Permit").field(&self.tenant).finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.fair.give_back(&self.tenant);
    }
}

impl Fair {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `tenant`, holding `held`, may take one more admission now.
    fn may_take(&self, state: &State, held: usize) -> bool {
        let free = self.max.saturating_sub(state.held);
        if held < self.cap {
            free >= 1
        } else {
            free > self.reserve
        }
    }

    /// Waits for `tenant`'s turn; `TENANT_BUSY` after the wait bound.
    pub(crate) async fn admit(self: &Arc<Self>, tenant: &TenantId) -> Result<Arc<Permit>, Error> {
        let (id, rx) = {
            let mut state = self.state();
            let entry = state.tenants.entry(tenant.clone()).or_default();
            let (held, queued) = (entry.held, !entry.waiters.is_empty());
            // Nobody of this tenant is ahead in the queue, and the rules
            // allow it: admitted at once.
            if !queued && self.may_take(&state, held) {
                take(&mut state, tenant);
                return Ok(self.permit(tenant));
            }
            let id = state.next_id;
            state.next_id += 1;
            let (tx, rx) = oneshot::channel();
            let entry = state.tenants.get_mut(tenant).expect("inserted above");
            entry.waiters.push_back((id, tx));
            if entry.waiters.len() == 1 {
                state.turns.push_back(tenant.clone());
            }
            (id, rx)
        };
        let started = tokio::time::Instant::now();
        let mut waiting = Waiting {
            fair: self,
            tenant,
            id,
            rx,
            done: false,
        };
        let admitted = tokio::time::timeout(self.wait, &mut waiting.rx).await;
        waiting.done = true;
        let waited = started.elapsed();
        match admitted {
            Ok(Ok(())) => {
                let mut state = self.state();
                if let Some(t) = state.tenants.get_mut(tenant) {
                    t.waited += 1;
                    t.wait_time += waited;
                }
                drop(state);
                Ok(self.permit(tenant))
            }
            // Timed out, or (never, while the pool lives) the sender gone.
            _ => {
                let (admitted_late, over_share) = {
                    let mut state = self.state();
                    let late = remove_waiter(&mut state, tenant, id).is_none()
                        && waiting.rx.try_recv().is_ok();
                    let cap = self.cap;
                    let t = state.tenants.entry(tenant.clone()).or_default();
                    let over_share = t.held >= cap;
                    if over_share {
                        t.refused += 1;
                    }
                    t.waited += 1;
                    t.wait_time += waited;
                    (late, over_share)
                };
                if admitted_late {
                    // Handed over just as the wait ran out: passed on.
                    self.give_back(tenant);
                }
                if !over_share {
                    // Within its share, the tenant waited for a pool that
                    // others (or leaked transactions) fill: sqlx's own
                    // time-out, as without fair shares.
                    return Err(Error::Database(sqlx::Error::PoolTimedOut));
                }
                tracing::debug!(
                    target: "tenant_sqlx::fair",
                    tenant_id = %tenant,
                    waited_ms = waited.as_millis() as u64,
                    "tenant over its share of the pool for too long: TENANT_BUSY"
                );
                Err(Error::TenantBusy {
                    tenant: tenant.clone(),
                    retry_after: self.retry_after(),
                })
            }
        }
    }

    /// A hint for `Retry-After`: a tenth of the wait bound, at least a
    /// second.
    fn retry_after(&self) -> Duration {
        (self.wait / 10).max(Duration::from_secs(1))
    }

    fn permit(self: &Arc<Self>, tenant: &TenantId) -> Arc<Permit> {
        Arc::new(Permit {
            fair: Arc::clone(self),
            tenant: tenant.clone(),
        })
    }

    /// Gives `tenant`'s admission back and hands admissions to the tenants
    /// whose turn it is.
    fn give_back(&self, tenant: &TenantId) {
        let mut state = self.state();
        state.held = state.held.saturating_sub(1);
        if let Some(t) = state.tenants.get_mut(tenant) {
            t.held = t.held.saturating_sub(1);
        }
        self.dispatch(&mut state);
        forget_idle(&mut state);
    }

    /// Admits waiters in turn while the rules allow.
    fn dispatch(&self, state: &mut State) {
        let mut skipped = 0;
        while skipped < state.turns.len() {
            let Some(tenant) = state.turns.pop_front() else {
                break;
            };
            let held = state.tenants.get(&tenant).map_or(0, |t| t.held);
            if !self.may_take(state, held) {
                state.turns.push_back(tenant);
                skipped += 1;
                continue;
            }
            let Some(t) = state.tenants.get_mut(&tenant) else {
                continue;
            };
            let mut served = false;
            while let Some((_, waiter)) = t.waiters.pop_front() {
                if waiter.send(()).is_ok() {
                    served = true;
                    break;
                }
                // That `begin` was dropped: the next one of this tenant.
            }
            let more = !t.waiters.is_empty();
            if served {
                take(state, &tenant);
                skipped = 0;
            }
            if more {
                // Served: back of the line. Not served (all gone): nothing
                // left to queue.
                state.turns.push_back(tenant);
            }
        }
    }

    /// Each tenant's figures, for the tenants seen recently.
    pub(crate) fn figures(&self) -> Vec<(TenantId, TenantFigures)> {
        let state = self.state();
        state
            .tenants
            .iter()
            .map(|(tenant, t)| (tenant.clone(), figures_of(t)))
            .collect()
    }

    /// `tenant`'s figures, if it was seen recently.
    pub(crate) fn figures_of(&self, tenant: &TenantId) -> Option<TenantFigures> {
        self.state().tenants.get(tenant).map(figures_of)
    }
}

fn figures_of(t: &Tenant) -> TenantFigures {
    TenantFigures {
        held: t.held as u32,
        waiting: t.waiters.len() as u32,
        refused: t.refused,
        waited: t.waited,
        wait_time: t.wait_time,
    }
}

fn take(state: &mut State, tenant: &TenantId) {
    state.held += 1;
    if let Some(t) = state.tenants.get_mut(tenant) {
        t.held += 1;
    }
}

/// Removes waiter `id` of `tenant`; `None` if it was no longer queued
/// (it was admitted).
fn remove_waiter(state: &mut State, tenant: &TenantId, id: u64) -> Option<()> {
    let t = state.tenants.get_mut(tenant)?;
    let at = t.waiters.iter().position(|(w, _)| *w == id)?;
    t.waiters.remove(at);
    if t.waiters.is_empty() {
        state.turns.retain(|x| x != tenant);
    }
    Some(())
}

/// Forgets idle tenants once many are remembered, so that a pool serving
/// millions of tenants keeps a bounded map.
fn forget_idle(state: &mut State) {
    if state.tenants.len() > KEEP_FIGURES {
        state
            .tenants
            .retain(|_, t| t.held > 0 || !t.waiters.is_empty());
    }
}

/// A place in a tenant's queue; leaves it when dropped (a cancelled
/// `begin`), passing on an admission that arrived in the meantime.
struct Waiting<'a> {
    fair: &'a Arc<Fair>,
    tenant: &'a TenantId,
    id: u64,
    rx: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let admitted = {
            let mut state = self.fair.state();
            remove_waiter(&mut state, self.tenant, self.id).is_none() && self.rx.try_recv().is_ok()
        };
        if admitted {
            self.fair.give_back(self.tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn defaults_follow_the_pool_size() {
        let fair = FairShares::new().build(16, Duration::from_secs(30));
        assert_eq!(
            (fair.cap, fair.reserve, fair.wait),
            (8, 2, Duration::from_secs(30))
        );
        let fair = FairShares::new().build(1, Duration::from_secs(1));
        assert_eq!((fair.cap, fair.reserve), (1, 0));
        let fair = FairShares::new().build(2, Duration::from_secs(1));
        assert_eq!((fair.cap, fair.reserve), (1, 0));
        let fair = FairShares::new()
            .per_tenant(99)
            .reserve(99)
            .build(4, Duration::ZERO);
        assert_eq!((fair.cap, fair.reserve), (4, 3));
    }

    #[tokio::test]
    async fn a_tenant_over_its_cap_waits_its_turn_behind_others() {
        let fair = FairShares::new()
            .per_tenant(1)
            .reserve(1)
            .wait(Duration::from_secs(5))
            .build(2, Duration::from_secs(5));
        let (a, b) = (tenant("a"), tenant("b"));
        let a1 = fair.admit(&a).await.unwrap();
        // Over its cap, and bursting would leave no reserve: a waits.
        let a2 = tokio::spawn({
            let fair = Arc::clone(&fair);
            let a = a.clone();
            async move { fair.admit(&a).await.map(drop) }
        });
        tokio::task::yield_now().await;
        // b is under its cap and a connection is free: admitted at once.
        let b1 = fair.admit(&b).await.unwrap();
        assert_eq!(fair.figures_of(&a).unwrap().waiting, 1);
        // b's end frees a connection, but a is still at its cap with no
        // reserve left: it keeps waiting.
        drop(b1);
        tokio::task::yield_now().await;
        assert_eq!(fair.figures_of(&a).unwrap().waiting, 1);
        // a's own first transaction ends: its waiter is admitted.
        drop(a1);
        a2.await.unwrap().unwrap();
        assert_eq!(fair.state().held, 0);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let fair = FairShares::new()
            .per_tenant(1)
            .reserve(0)
            .wait(Duration::from_millis(50))
            .build(1, Duration::from_secs(5));
        let a = tenant("a");
        let held = fair.admit(&a).await.unwrap();
        let err = fair.admit(&a).await.unwrap_err();
        assert_eq!(err.code(), "TENANT_BUSY");
        let f = fair.figures_of(&a).unwrap();
        assert_eq!((f.held, f.waiting, f.refused), (1, 0, 1));
        drop(held);
        assert_eq!(fair.figures_of(&a).unwrap().held, 0);
    }
}
