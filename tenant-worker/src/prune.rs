use std::time::Duration;

use super::schema::{OUTBOX_TABLE, PROCESSED_TABLE};
use super::WorkerError;
use tenant_sqlx::AdminPool;

/// What the admin connection of [`prune`] is logged with.
const REASON: &str = "outbox prune: delete published events and processed records past retention";

/// What one [`prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Outbox rows published longer than the retention ago.
    pub outbox: u64,
    /// Processed records older than the retention whose outbox row is gone.
    pub processed: u64,
}

/// Deletes, for every tenant, the outbox rows published more than
/// `retention` ago, then the processed records older than `retention`
/// whose outbox row is gone; unpublished rows are never deleted.
///
/// The order keeps the worker's proof sound once rows are gone: a
/// processed record outlives its event's outbox row, and a stream entry
/// whose outbox row is gone is never applied again. A later copy of a
/// pruned event is acknowledged as processed while its record lasts, and
/// dead-lettered `EVENT_NOT_IN_OUTBOX` after (so is a forged entry naming
/// any old id). A consumer group that has not processed an event when its
/// row is pruned gets that event dead-lettered, not applied: keep
/// `retention` longer than the longest time a consumer may be behind.
///
/// It runs through `admin` (a role that bypasses RLS), as the relay does;
/// [`RelayBuilder::retention`](super::RelayBuilder::retention) runs it from
/// the relay.
///
/// ```no_run
/// # async fn demo(admin: &tenant_sqlx::AdminPool) -> Result<(), tenant_worker::WorkerError> {
/// use std::time::Duration;
/// let pruned = tenant_worker::prune(admin, Duration::from_secs(7 * 86_400)).await?;
/// println!("{} events, {} records", pruned.outbox, pruned.processed);
/// # Ok(()) }
/// ```
pub async fn prune(admin: &AdminPool, retention: Duration) -> Result<Pruned, WorkerError> {
    let seconds = retention.as_secs_f64();
    let mut conn = admin.acquire(REASON).await?;
    let outbox = sqlx::query(&format!(
        "DELETE FROM {OUTBOX_TABLE}
          WHERE published_at < now() - make_interval(secs => $1)"
    ))
    .bind(seconds)
    .execute(&mut conn)
    .await?
    .rows_affected();
    let processed = sqlx::query(&format!(
        "DELETE FROM {PROCESSED_TABLE} p
          WHERE p.processed_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM {OUTBOX_TABLE} o
                             WHERE o.tenant_id = p.tenant_id AND o.id = p.event_id)"
    ))
    .bind(seconds)
    .execute(&mut conn)
    .await?
    .rows_affected();
    Ok(Pruned { outbox, processed })
}
