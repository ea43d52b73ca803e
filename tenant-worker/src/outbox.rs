use serde::Serialize;
use tenant_core::envelope::Envelope;
use tenant_core::Validated;

use super::schema::{OUTBOX_TABLE, PROCESSED_TABLE};
use super::WorkerError;
use tenant_sqlx::TenantTx;

/// Writes an event into the outbox inside `tx`, wrapped in an
/// [`Envelope`] with the transaction's context; returns its event id.
///
/// The row is under RLS like any tenant row, and exists only if `tx`
/// commits: the [`Relay`](super::Relay) publishes nothing of a rolled-back
/// transaction.
///
/// ```no_run
/// # use tenant_sqlx::TenantPool;
/// # use tenant_worker::{self as worker, WorkerError};
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
    // The transaction's context values, validated again (they were when it
    // began): the envelope carries raw values only.
    let ctx = tx
        .to_unvalidated()
        .validate::<Validated>()
        .map_err(|e| WorkerError::Encode(e.to_string()))?;
    let envelope = serde_json::to_string(&Envelope::new(&ctx, payload))
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

/// What the outbox and the processed table say about one stream entry,
/// read in a transaction of the entry's tenant (so under RLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The outbox holds the event for this tenant, with this topic and
    /// envelope, and `group` has not processed it.
    Genuine,
    /// `group` has processed this event id for this tenant.
    Processed,
    /// The outbox holds no such event for this tenant, and `group` has no
    /// record of it: forged, or pruned before `group` processed it.
    NotInOutbox,
}

/// The stream entry `(event_id, topic, envelope)` of `tenant`'s stream, as
/// the worker checks it against the outbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) event_id: i64,
    pub(crate) topic: &'a str,
    pub(crate) envelope: &'a str,
}

/// Reads the entry's [`Standing`] in `tx`.
///
/// An outbox row with the entry's id but another topic or envelope makes
/// it [`Standing::NotInOutbox`] even when the id was processed: the entry
/// is not the event that was.
pub(crate) async fn standing(
    tx: &mut TenantTx<'_>,
    group: &str,
    entry: Entry<'_>,
) -> Result<Standing, WorkerError> {
    let (matches, processed): (Option<bool>, bool) = sqlx::query_as(&format!(
        "SELECT (SELECT o.topic = $4 AND o.envelope = $5 FROM {OUTBOX_TABLE} o
                  WHERE o.tenant_id = $1 AND o.id = $2),
                EXISTS (SELECT 1 FROM {PROCESSED_TABLE} p
                  WHERE p.tenant_id = $1 AND p.consumer_group = $3 AND p.event_id = $2)"
    ))
    .bind(entry.tenant)
    .bind(entry.event_id)
    .bind(group)
    .bind(entry.topic)
    .bind(entry.envelope)
    .fetch_one(&mut *tx)
    .await?;
    Ok(match (matches, processed) {
        (Some(false), _) | (None, false) => Standing::NotInOutbox,
        (Some(true), false) => Standing::Genuine,
        (Some(true), true) | (None, true) => Standing::Processed,
    })
}

/// In `tx`, records the entry as processed by `group` if and only if the
/// outbox holds it for this tenant with this topic and envelope and `group`
/// has not processed it yet: one statement, so the proof and the record
/// are in the effect's transaction.
///
/// Fails with [`WorkerError::AlreadyProcessed`] or
/// [`WorkerError::NotInOutbox`] otherwise. A concurrent claim of the same
/// event waits for the first to commit or roll back.
pub(crate) async fn claim(
    tx: &mut TenantTx<'_>,
    group: &str,
    entry: Entry<'_>,
) -> Result<(), WorkerError> {
    let recorded = sqlx::query(&format!(
        "INSERT INTO {PROCESSED_TABLE} (tenant_id, consumer_group, event_id)
         SELECT o.tenant_id, $3, o.id FROM {OUTBOX_TABLE} o
          WHERE o.tenant_id = $1 AND o.id = $2 AND o.topic = $4 AND o.envelope = $5
         ON CONFLICT DO NOTHING"
    ))
    .bind(entry.tenant)
    .bind(entry.event_id)
    .bind(group)
    .bind(entry.topic)
    .bind(entry.envelope)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if recorded == 1 {
        return Ok(());
    }
    match standing(tx, group, entry).await? {
        Standing::Processed => Err(WorkerError::AlreadyProcessed),
        Standing::NotInOutbox => Err(WorkerError::NotInOutbox),
        // Only if the row changed between the two statements.
        Standing::Genuine => Err(WorkerError::handler(
            "the event's outbox row changed during the check",
        )),
    }
}

/// Parses a stream entry's `event` field: the canonical decimal form of an
/// outbox id, 1 to `i64::MAX` (what the relay writes), nothing else.
pub(crate) fn parse_event_id(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 19
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    if !canonical {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_event_id;

    #[test]
    fn only_canonical_positive_ids_parse() {
        assert_eq!(parse_event_id("1"), Some(1));
        assert_eq!(parse_event_id("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "0",
            "-1",
            "-9223372036854775808",
            "9223372036854775808",
            "99999999999999999999",
            "+5",
            "007",
            " 5",
            "5 ",
            "5.0",
            "1e3",
            "0x10",
        ] {
            assert_eq!(parse_event_id(bad), None, "{bad:?}");
        }
    }
}
