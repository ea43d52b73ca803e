use tenant_sqlx::rls::{quote_ident, RlsPolicy};

/// The outbox table: events written in the transaction that caused them.
pub const OUTBOX_TABLE: &str = "tenant_outbox";
/// The processed-messages table: one row per (tenant, consumer group,
/// event) whose effect committed.
pub const PROCESSED_TABLE: &str = "tenant_processed_messages";

/// The migration for the worker's two tables, to run as the tables' owner:
/// both are tenant tables (`ENABLE` + `FORCE ROW LEVEL SECURITY`, a policy
/// with `WITH CHECK`) whose keys start with the tenant column, so no
/// tenant's row can collide with, or pre-claim, another tenant's. The keys
/// are also the index on the tenant column that the audit looks for
/// (`TENANT_COLUMN_NOT_INDEXED`): a pool on these tables starts without a
/// performance warning.
/// `app_role` may read and insert (and use the outbox's sequence), not
/// update, delete or `TRUNCATE`: a written event and a processed record
/// stay as they were written.
///
/// The relay reads the outbox of every tenant and [`prune`](super::prune)
/// deletes old rows of every tenant, so both connect through an
/// [`AdminPool`](tenant_sqlx::AdminPool) with a role that bypasses RLS.
///
/// ```
/// let sql = tenant_worker::schema_sql("tenant_app");
/// assert!(sql.contains("CREATE TABLE IF NOT EXISTS tenant_outbox"));
/// assert!(sql.contains("PRIMARY KEY (tenant_id, id)"));
/// assert!(sql.contains("PRIMARY KEY (tenant_id, consumer_group, event_id)"));
/// assert!(sql.contains(r#"ALTER TABLE "tenant_processed_messages" FORCE ROW LEVEL SECURITY"#));
/// ```
pub fn schema_sql(app_role: &str) -> String {
    let role = quote_ident(app_role);
    format!(
        "CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
             tenant_id text NOT NULL,
             id bigserial NOT NULL,
             topic text NOT NULL,
             envelope text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             published_at timestamptz,
             PRIMARY KEY (tenant_id, id)
         );
         -- The relay's scan of every tenant's unpublished rows in id order;
         -- not unique, so it lets no tenant's row collide with another's.
         CREATE INDEX IF NOT EXISTS {OUTBOX_TABLE}_unpublished
             ON {OUTBOX_TABLE} (id) WHERE published_at IS NULL;
         GRANT USAGE ON SEQUENCE {OUTBOX_TABLE}_id_seq TO {role};
         CREATE TABLE IF NOT EXISTS {PROCESSED_TABLE} (
             tenant_id text NOT NULL,
             consumer_group text NOT NULL,
             event_id bigint NOT NULL,
             processed_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (tenant_id, consumer_group, event_id)
         );
         {}{}REVOKE UPDATE, DELETE, TRUNCATE ON {OUTBOX_TABLE}, {PROCESSED_TABLE} FROM {role};\n",
        RlsPolicy::new(OUTBOX_TABLE, "tenant_id")
            .grant_to(app_role)
            .sql(),
        RlsPolicy::new(PROCESSED_TABLE, "tenant_id")
            .grant_to(app_role)
            .sql(),
    )
}
