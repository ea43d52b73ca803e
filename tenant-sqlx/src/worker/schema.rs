use crate::rls::{quote_ident, RlsPolicy};

/// The outbox table: events written in the transaction that caused them.
pub const OUTBOX_TABLE: &str = "tenant_outbox";
/// The processed-messages table: one row per (consumer group, event) whose
/// effect committed.
pub const PROCESSED_TABLE: &str = "tenant_processed_messages";

/// The migration for the worker's two tables, to run as the tables' owner:
/// both are tenant tables (`ENABLE` + `FORCE ROW LEVEL SECURITY`, a policy
/// with `WITH CHECK`), and `app_role` may use them (and the outbox's
/// sequence) but not `TRUNCATE` them.
///
/// The relay reads the outbox of every tenant, so it connects through an
/// [`AdminPool`](crate::AdminPool) with a role that bypasses RLS.
///
/// ```
/// let sql = tenant_sqlx::worker::schema_sql("tenant_app");
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS tenant_outbox"));
/// assert!(sql.contains(r#"ALTER TABLE "tenant_processed_messages" FORCE ROW LEVEL SECURITY"#));
/// ```
pub fn schema_sql(app_role: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
             id bigserial PRIMARY KEY,
             tenant_id text NOT NULL,
             topic text NOT NULL,
             envelope text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             published_at timestamptz
         );
         CREATE INDEX IF NOT EXISTS {OUTBOX_TABLE}_unpublished
             ON {OUTBOX_TABLE} (id) WHERE published_at IS NULL;
         GRANT USAGE ON SEQUENCE {OUTBOX_TABLE}_id_seq TO {role};
         CREATE TABLE IF NOT EXISTS {PROCESSED_TABLE} (
             consumer_group text NOT NULL,
             event_id bigint NOT NULL,
             tenant_id text NOT NULL,
             processed_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (consumer_group, event_id)
         );
         {}{}",
        RlsPolicy::new(OUTBOX_TABLE, "tenant_id")
            .grant_to(app_role)
            .sql(),
        RlsPolicy::new(PROCESSED_TABLE, "tenant_id")
            .grant_to(app_role)
            .sql(),
        role = quote_ident(app_role),
    )
}
