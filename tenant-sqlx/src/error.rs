//! The error type of `tenant-sqlx`.

use crate::audit::AuditReport;

/// What can go wrong opening a pool or a tenant transaction.
///
/// Every variant has a stable [`code`](Error::code).
///
/// ```
/// use tenant_sqlx::Error;
/// let err = tenant_sqlx::set_local_sql("app.current_tenant", "a\nb").unwrap_err();
/// assert_eq!(err.code(), "UNSAFE_SETTING_VALUE");
/// assert!(matches!(err, Error::UnsafeSettingValue { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database or the driver failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
    /// sqlx no longer counts the transaction as open at its own depth (a
    /// cancelled [`savepoint`](crate::TenantTx::savepoint) rolls the whole
    /// transaction back; a leaked savepoint leaves it nested), so it cannot
    /// be committed. Its connection is discarded.
    #[error(
        "the tenant transaction was already ended or is still nested; its work was not committed"
    )]
    TransactionLost,
    /// [`AdminPool::acquire`](crate::AdminPool::acquire) was given an empty
    /// reason.
    #[error(
        "an admin connection needs a reason, logged with it; say why tenant isolation is bypassed"
    )]
    AdminReasonRequired,
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
            Error::AdminReasonRequired => "ADMIN_REASON_REQUIRED",
        }
    }

    /// The audit report, for [`Error::AuditFailed`].
    pub fn audit_report(&self) -> Option<&AuditReport> {
        match self {
            Error::AuditFailed(r) => Some(r),
            _ => None,
        }
    }
}
