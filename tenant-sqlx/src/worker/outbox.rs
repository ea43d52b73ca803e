use serde::Serialize;
use tenant_core::envelope::Envelope;

use super::schema::OUTBOX_TABLE;
use super::WorkerError;
use crate::TenantTx;

/// Writes an event into the outbox inside `tx`, wrapped in an
/// [`Envelope`] with the transaction's context; returns its event id.
///
/// The row is under RLS like any tenant row, and exists only if `tx`
/// commits: the [`Relay`](super::Relay) publishes nothing of a rolled-back
/// transaction.
///
/// ```no_run
/// # use tenant_sqlx::{TenantPool, worker::{self, WorkerError}};
/// # use tenant_core::{Ctx, Validated};
/// # async fn demo(pool: &TenantPool, ctx: &Ctx<Validated>) -> Result<(), WorkerError> {
/// let mut tx = pool.begin(ctx).await?;
/// let event_id = worker::publish(&mut tx, "note.created", &serde_json::json!({"id": 7})).await?;
/// tx.commit().await?;
/// # let _ = event_id; Ok(()) }
/// ```
pub async fn publish<T: Serialize>(
    tx: &mut TenantTx<'_>,
    topic: &str,
    payload: &T,
) -> Result<i64, WorkerError> {
    let envelope = serde_json::to_string(&Envelope::new(tx.ctx(), payload))
        .map_err(|e| WorkerError::Encode(e.to_string()))?;
    let tenant = tx.tenant_id().as_str().to_owned();
    let id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO {OUTBOX_TABLE} (tenant_id, topic, envelope) VALUES ($1, $2, $3) RETURNING id"
    ))
    .bind(tenant)
    .bind(topic)
    .bind(envelope)
    .fetch_one(&mut *tx)
    .await?;
    Ok(id)
}
