//! The error type of `tenant-sqlx`.

use crate::audit::AuditReport;

/// What can go wrong opening a pool or a tenant transaction.
///
/// Every variant has a stable [`code`](Error::code).
///
/// ```
/// use tenant_sqlx::{Error, SettingNames, TenantPool};
///
/// # async fn demo() {
/// let err = TenantPool::builder()
///     .setting_names(SettingNames::default().rename_tenant("tenant"))
///     .connect("postgres://app@localhost/app")
///     .await
///     .unwrap_err();
/// assert_eq!(err.code(), "INVALID_SETTING_NAME");
/// assert!(matches!(err, Error::InvalidSettingName { .. }));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database or the driver failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The start-up audit found problems and the pool was not built with
    /// [`allow_audit_findings(true)`](crate::TenantPoolBuilder::allow_audit_findings).
    #[error(
        "refusing to start: {0}\nfix these, or build the pool with \
         `allow_audit_findings(true)` if you accept the risk"
    )]
    AuditFailed(AuditReport),
    /// A configured setting name is not of the form `prefix.name` in lower
    /// case ASCII.
    #[error("`{name}` is not a usable setting name: {reason}")]
    InvalidSettingName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A value cannot be inlined into `SET LOCAL` safely. Validated
    /// identifiers never produce this; it is the last line of defence.
    #[error("refusing to inline a value for `{setting}`: {reason}")]
    UnsafeSettingValue {
        /// The setting it was meant for.
        setting: String,
        /// Why.
        reason: &'static str,
    },
    /// The transaction was left in a state the code did not choose, so its
    /// work was rolled back, not committed: a [`Savepoint`](crate::Savepoint)
    /// was dropped or cancelled without being ended, or a statement was run
    /// after the transaction's `commit` or `rollback` failed.
    #[error(
        "the tenant transaction was left in an unknown state; it was rolled back and its work was not committed"
    )]
    TransactionLost,
    /// A statement run through a tenant transaction starts with transaction
    /// control written by hand (`COMMIT`, `END`, `ROLLBACK`, `ABORT`,
    /// `BEGIN`, `START TRANSACTION`, `SAVEPOINT`, `RELEASE`,
    /// `PREPARE TRANSACTION`, …). It was not sent: the transaction is
    /// unchanged and goes on. End it with
    /// [`TenantTx::commit`](crate::TenantTx::commit) or
    /// [`rollback`](crate::TenantTx::rollback); make savepoints with
    /// [`TenantTx::savepoint`](crate::TenantTx::savepoint).
    #[error(
        "refusing `{statement}` inside a tenant transaction: end it with `commit()` or `rollback()` \
         and make savepoints with `savepoint()`; the statement was not sent and the transaction goes on"
    )]
    TransactionControlRefused {
        /// The keyword the statement starts with.
        statement: &'static str,
    },
    /// The connection failed while the `COMMIT` was on its way or its answer
    /// was: the server may or may not have committed. The transaction may
    /// have been committed; check before writing the same rows again.
    #[error(
        "the connection failed during COMMIT; the transaction may have been committed, \
         check before retrying: {0}"
    )]
    CommitOutcomeUnknown(#[source] sqlx::Error),
    /// PostgreSQL had already aborted the transaction (a statement failed or
    /// timed out and its error was ignored) and answered `COMMIT` with a
    /// rollback: nothing was saved.
    #[error("the server had aborted the tenant transaction; COMMIT rolled it back and nothing was saved")]
    TransactionAborted,
    /// A transaction or context of one tenant was used inside the validated
    /// scope of another: a transaction parked in a static or a channel, or a
    /// context leaked to `'static`, reaching the next request. Refused
    /// before anything is sent.
    #[error(
        "a transaction for tenant `{transaction}` was used inside the scope of tenant `{scope}`; \
         open a transaction from the current request's context instead"
    )]
    TenantScopeMismatch {
        /// The tenant the transaction (or the context given to `begin`) is for.
        transaction: tenant_core::TenantId,
        /// The tenant of the validated scope it was used in.
        scope: tenant_core::TenantId,
    },
    /// The secret given for hardened mode is shorter than
    /// [`MIN_SECRET_LEN`](crate::guard::MIN_SECRET_LEN) bytes.
    #[error("a guard secret needs at least 32 bytes; this one has {len}")]
    GuardSecretTooShort {
        /// Its length.
        len: usize,
    },
    /// [`AdminPool::acquire`](crate::AdminPool::acquire) was given an empty
    /// reason.
    #[error(
        "an admin connection needs a reason, logged with it; say why tenant isolation is bypassed"
    )]
    AdminReasonRequired,
    /// The pool requires authorized contexts
    /// ([`require_authorized`](crate::TenantPoolBuilder::require_authorized))
    /// and this one only passed the identifier rules: it is not the
    /// authenticated caller's context accepted by the application's
    /// validator, and no code declared it trusted. Refused before anything
    /// is sent.
    #[error(
        "refusing a transaction for tenant `{tenant}`: the context was not authorized; \
         a context is authorized when an authenticated source (`ContextLayer::resolver` \
         with a bearer token, a trusted gateway header or a host) names its tenant and \
         the application's validator accepts it (`#[with_context]`, `validate_with`, \
         `authorize`); a `ContextLayer` without a resolver authenticates nobody; \
         code with no caller marks a context with `trust(reason)`"
    )]
    ContextNotAuthorized {
        /// The tenant the context names.
        tenant: tenant_core::TenantId,
    },
    /// The tenant registry has no row for this tenant.
    #[error("tenant `{tenant}` is not in the tenant registry")]
    TenantUnknown {
        /// The tenant.
        tenant: tenant_core::TenantId,
    },
    /// The tenant's settings in the registry do not have the type the
    /// application reads them as.
    #[error("the settings of tenant `{tenant}` cannot be read: {reason}")]
    TenantSettingsInvalid {
        /// The tenant.
        tenant: tenant_core::TenantId,
        /// What the decoder said.
        reason: String,
    },
    /// The tenant waited longer than the pool's bound for its share of the
    /// connections ([`FairShares`](crate::FairShares)): other tenants were
    /// served meanwhile. An HTTP service answers `429 Too Many Requests`
    /// with `Retry-After` ([`retry_after`](Error::retry_after)).
    #[error(
        "tenant `{tenant}` is using its whole share of the connection pool; retry in {} s",
        retry_after.as_secs()
    )]
    TenantBusy {
        /// The tenant.
        tenant: tenant_core::TenantId,
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// The pool reaches PostgreSQL through a transaction pooler (PgBouncer
    /// in transaction mode) but was not built with
    /// [`transaction_pooler(true)`](crate::TenantPoolBuilder::transaction_pooler):
    /// the pooler refused sqlx's startup parameters, or sqlx's named
    /// prepared statements met another client's on a shared server session.
    #[error(
        "the database is reached through a transaction pooler (PgBouncer in transaction mode?); \
         build the pool with `transaction_pooler(true)`: {detail}"
    )]
    TransactionPoolerNotConfigured {
        /// What the pooler or the server said.
        detail: String,
    },
    /// The continuous audit found problems the start-up audit did not (a
    /// definer view created, a grant, a stored setting), and the pool
    /// refuses new transactions until they are fixed (see
    /// [`refuse_on_audit_drift`](crate::TenantPoolBuilder::refuse_on_audit_drift)).
    #[error(
        "refusing new transactions: the database changed since the pool started and the audit          found {n} new problem{s}: {first} (fix it, and transactions are served again within one          audit interval)",
        n = findings.len(),
        s = if findings.len() == 1 { "" } else { "s" },
        first = findings.first().map(|f| format!("[{}] {f}", f.code())).unwrap_or_default()
    )]
    AuditDrift {
        /// The new findings.
        findings: Vec<crate::audit::Finding>,
    },
}

impl Error {
    /// A stable, machine-readable code.
    ///
    /// ```
    /// let err = tenant_sqlx::Error::TransactionLost;
    /// assert_eq!(err.code(), "TRANSACTION_LOST");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::Database(_) => "DATABASE",
            Error::AuditFailed(_) => "AUDIT_FAILED",
            Error::InvalidSettingName { .. } => "INVALID_SETTING_NAME",
            Error::UnsafeSettingValue { .. } => "UNSAFE_SETTING_VALUE",
            Error::TransactionLost => "TRANSACTION_LOST",
            Error::TransactionControlRefused { .. } => "TRANSACTION_CONTROL_REFUSED",
            Error::CommitOutcomeUnknown(_) => "COMMIT_OUTCOME_UNKNOWN",
            Error::TransactionAborted => "TRANSACTION_ABORTED",
            Error::TenantScopeMismatch { .. } => "TENANT_SCOPE_MISMATCH",
            Error::AdminReasonRequired => "ADMIN_REASON_REQUIRED",
            Error::GuardSecretTooShort { .. } => "GUARD_SECRET_TOO_SHORT",
            Error::ContextNotAuthorized { .. } => "CONTEXT_NOT_AUTHORIZED",
            Error::TenantUnknown { .. } => "TENANT_UNKNOWN",
            Error::TenantSettingsInvalid { .. } => "TENANT_SETTINGS_INVALID",
            Error::TransactionPoolerNotConfigured { .. } => "TRANSACTION_POOLER_NOT_CONFIGURED",
            Error::TenantBusy { .. } => "TENANT_BUSY",
            Error::AuditDrift { .. } => "AUDIT_DRIFT",
        }
    }

    /// For [`Error::TenantBusy`]: how long the caller should wait before
    /// trying again (an HTTP `Retry-After`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = tenant_sqlx::Error::TenantBusy {
    ///     tenant: tenant_core::TenantId::parse("acme").unwrap(),
    ///     retry_after: Duration::from_secs(2),
    /// };
    /// assert_eq!((err.code(), err.retry_after()), ("TENANT_BUSY", Some(Duration::from_secs(2))));
    /// ```
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::TenantBusy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// This error inside an `sqlx::Error`, for the executor methods, which
    /// can only return sqlx's type; `From<sqlx::Error>` takes it out again.
    pub(crate) fn into_sqlx(self) -> sqlx::Error {
        sqlx::Error::Configuration(Box::new(self))
    }

    /// The audit report, for [`Error::AuditFailed`].
    pub fn audit_report(&self) -> Option<&AuditReport> {
        match self {
            Error::AuditFailed(r) => Some(r),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    /// Wraps a driver error, or takes out this crate's own error that an
    /// executor method returned inside one (so that `?` in a function
    /// returning [`Error`] keeps its [`code`](Error::code)).
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Configuration(inner) if inner.is::<Error>() => {
                match inner.downcast::<Error>() {
                    Ok(own) => *own,
                    Err(other) => Error::Database(sqlx::Error::Configuration(other)),
                }
            }
            e => Error::Database(e),
        }
    }
}

/// Replaces an error that only a transaction pooler in front of a pool
/// without [`transaction_pooler(true)`](crate::TenantPoolBuilder::transaction_pooler)
/// causes with [`Error::TransactionPoolerNotConfigured`]; other errors pass
/// unchanged.
///
/// * PgBouncer refusing a startup parameter: `unsupported startup
///   parameter` (SQLSTATE 08P01);
/// * sqlx's named statements on a server session shared with other
///   clients: `prepared statement "sqlx_s_…" already exists` (42P05) or
///   `… does not exist` (26000).
pub(crate) fn pooler_hint(e: sqlx::Error) -> sqlx::Error {
    let detail = match e.as_database_error() {
        Some(db) => {
            let code = db.code();
            let message = db.message();
            let statement_clash =
                matches!(code.as_deref(), Some("42P05" | "26000")) && message.contains("\"sqlx_s_");
            let startup = message.contains("unsupported startup parameter");
            if !(statement_clash || startup) {
                return e;
            }
            message.to_owned()
        }
        None => return e,
    };
    Error::TransactionPoolerNotConfigured { detail }.into_sqlx()
}
