//! The continuous audit: a pool re-audits the database in the background
//! and refuses new transactions when something changed for the worse.
//!
//! Each round is one short statement on a connection of its own (outside
//! the pool's `max_connections`): a fingerprint of the catalogs the audit
//! reads (row versions of `pg_class`, `pg_proc`, `pg_policy`, …, the
//! roles, the stored settings, the time the configuration was last
//! loaded). Only when it changed does the full audit run again. A finding
//! that the start-up audit did not report is *drift*: it is logged at
//! `ERROR`, kept for [`TenantPool::audit_drift`](crate::TenantPool::audit_drift),
//! and, unless the pool was built otherwise, every `begin` fails with
//! [`Error::AuditDrift`](crate::Error::AuditDrift) until the audit no
//! longer finds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

use super::{AuditOptions, AuditReport, Finding};

/// The name the audit's connection shows in `pg_stat_activity`.
pub(crate) const APPLICATION_NAME: &str = "tenant-sqlx audit";

/// One statement whose result changes whenever something the audit reads
/// may have changed: for each catalog, how many rows and the sum of their
/// creating transaction ids (an `ALTER`, `GRANT` or `DROP` rewrites or
/// removes a row); the roles and memberships as text; the configuration's
/// load time (a reload may change `track_activities` or
/// `pg_stat_statements.track_utility`).
const FINGERPRINT: &str = "\
SELECT concat_ws('|',
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_class),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_attribute),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_namespace),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_proc),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_policy),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_rewrite),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_trigger),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_constraint),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_index),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_inherits),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_collation),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_extension),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_largeobject_metadata),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_database),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_db_role_setting),
  (SELECT count(*) || ':' || sum(xmin::text::int8) FROM pg_catalog.pg_auth_members),
  (SELECT md5(string_agg(r::text, ',' ORDER BY r.oid)) FROM pg_catalog.pg_roles r),
  pg_catalog.pg_conf_load_time())";

/// Shared between the pool and its background task.
#[derive(Debug)]
pub(crate) struct AuditWatch {
    state: RwLock<State>,
    /// `state.drift` is not empty: what `begin` reads, without a lock.
    drifting: AtomicBool,
    refuse: bool,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Every finding of the last audit.
    findings: Vec<Finding>,
    /// Those the start-up audit did not report.
    drift: Vec<Finding>,
}

impl AuditWatch {
    /// Starts auditing every `interval` on a connection made with
    /// `connect`, against the start-up `baseline`.
    pub(crate) fn start(
        baseline: AuditReport,
        options: AuditOptions,
        connect: PgConnectOptions,
        interval: Duration,
        refuse: bool,
    ) -> Arc<AuditWatch> {
        let watch = Arc::new(AuditWatch {
            state: RwLock::new(State {
                findings: baseline.findings.clone(),
                drift: Vec::new(),
            }),
            drifting: AtomicBool::new(false),
            refuse,
            task: Mutex::new(None),
        });
        let connect = connect.application_name(APPLICATION_NAME);
        let task = tokio::spawn(run(
            Arc::downgrade(&watch),
            baseline.findings,
            options,
            connect,
            interval,
        ));
        *watch.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        watch
    }

    /// The error every `begin` returns while there is drift, when the pool
    /// refuses on drift.
    pub(crate) fn refusal(&self) -> Option<crate::Error> {
        if !self.refuse || !self.drifting.load(Ordering::Acquire) {
            return None;
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        (!state.drift.is_empty()).then(|| crate::Error::AuditDrift {
            findings: state.drift.clone(),
        })
    }

    /// Every finding of the last audit.
    pub(crate) fn findings(&self) -> Vec<Finding> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .findings
            .clone()
    }

    /// The findings of the last audit that the start-up audit did not
    /// report.
    pub(crate) fn drift(&self) -> Vec<Finding> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .drift
            .clone()
    }

    /// Stops the background task (and closes its connection).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    fn record(&self, report: AuditReport, baseline: &[Finding]) {
        let drift: Vec<Finding> = report
            .findings
            .iter()
            .filter(|f| !baseline.contains(f))
            .cloned()
            .collect();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for finding in drift.iter().filter(|f| !state.drift.contains(f)) {
            tracing::error!(
                code = finding.code(),
                finding = %finding,
                refusing = self.refuse,
                "tenant-sqlx audit: the database changed since the pool started"
            );
        }
        if drift.is_empty() && !state.drift.is_empty() {
            tracing::info!("tenant-sqlx audit: the drift is gone; transactions are served again");
        }
        state.findings = report.findings;
        self.drifting.store(!drift.is_empty(), Ordering::Release);
        state.drift = drift;
    }
}

impl Drop for AuditWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The background task: ends when the pool is dropped or closed.
async fn run(
    watch: Weak<AuditWatch>,
    baseline: Vec<Finding>,
    options: AuditOptions,
    connect: PgConnectOptions,
    interval: Duration,
) {
    let mut conn: Option<PgConnection> = None;
    let mut last: Option<String> = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once: the start-up audit just ran.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(watch) = watch.upgrade() else {
            return;
        };
        match round(&mut conn, &mut last, &options, &connect).await {
            Ok(Some(report)) => watch.record(report, &baseline),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "tenant-sqlx audit: could not re-audit; retrying");
                conn = None;
                last = None;
            }
        }
    }
}

/// One round: the fingerprint, and the audit if it changed.
async fn round(
    conn: &mut Option<PgConnection>,
    last: &mut Option<String>,
    options: &AuditOptions,
    connect: &PgConnectOptions,
) -> Result<Option<AuditReport>, sqlx::Error> {
    let conn = match conn {
        Some(c) => c,
        None => conn.insert(PgConnection::connect_with(connect).await?),
    };
    let fingerprint: String = sqlx::query_scalar(FINGERPRINT)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
    if last.as_deref() == Some(fingerprint.as_str()) {
        return Ok(None);
    }
    let report = super::run_with(conn, options).await?;
    *last = Some(fingerprint);
    Ok(Some(report))
}
