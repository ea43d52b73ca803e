//! The checks, one function per part of the catalogs, each adding its
//! findings in a stable order.

use sqlx::PgConnection;
use tenant_core::Field;

use super::catalog::{
    self, CITUS, GUARD_FUNCTION, GUARD_OWNED, GUARD_SCHEMA_ROW, GUARD_SECRETS, MAINTAIN_TABLES,
    POLICIES, PRIVILEGED_ROLES, STORED_SETTINGS, TENANT_TABLES, UNINDEXED_TENANT_TABLES,
};
use super::expr::{is_literal_true, Binding, Tenant};
use super::{AuditOptions, DefinerRights, Finding, PolicyClause};
use crate::guard::{Guard, GUARD_SCHEMA};
use crate::SettingNames;

/// Returns whether the role is itself a superuser.
pub(super) async fn audit_roles(
    conn: &mut PgConnection,
    findings: &mut Vec<Finding>,
) -> Result<bool, sqlx::Error> {
    let rows: Vec<(String, bool, bool, bool, String)> = sqlx::query_as(PRIVILEGED_ROLES)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    let own_superuser = rows.iter().any(|(_, sup, _, own, _)| *own && *sup);
    for (role, superuser, bypass_rls, own, member) in rows {
        if own {
            if superuser {
                findings.push(Finding::Superuser { role: role.clone() });
            }
            if bypass_rls {
                findings.push(Finding::BypassRls { role });
            }
        } else if !own_superuser {
            findings.push(Finding::MemberOfPrivilegedRole {
                role: member,
                member_of: role,
                superuser,
                bypass_rls,
            });
        }
    }
    Ok(own_superuser)
}

/// A row of [`TENANT_TABLES`]: oid, name, enabled, forced, owner, owned by
/// the role, role may truncate.
type TableRow = (i64, String, bool, bool, String, bool, bool);

/// A row of [`POLICIES`]: table oid, name as stored, name quoted,
/// permissive, command, `USING`, `WITH CHECK`.
type PolicyRow = (
    i64,
    String,
    String,
    bool,
    String,
    Option<String>,
    Option<String>,
);

/// A policy of a tenant table, as read by [`POLICIES`].
struct Policy {
    table_oid: i64,
    /// The name as stored, for [`AuditOptions::allowed_policies`].
    raw_name: String,
    /// The name quoted as an identifier where needed.
    name: String,
    permissive: bool,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    command: String,
    using: Option<String>,
    check: Option<String>,
}

impl Policy {
    fn clause(&self, clause: PolicyClause) -> Option<&str> {
        match clause {
            PolicyClause::Using => self.using.as_deref(),
            PolicyClause::WithCheck => self.check.as_deref(),
        }
    }

    /// The expression PostgreSQL applies for `clause`: a missing `WITH
    /// CHECK` of an `ALL` or `UPDATE` policy is its `USING`.
    fn effective(&self, clause: PolicyClause) -> Option<&str> {
        match clause {
            PolicyClause::Using => self.using.as_deref(),
            PolicyClause::WithCheck => self.check.as_deref().or_else(|| {
                matches!(self.command.as_str(), "ALL" | "UPDATE")
                    .then_some(())
                    .and(self.using.as_deref())
            }),
        }
    }
}

/// The table checks: `ENABLE`/`FORCE`, ownership, `TRUNCATE`, and the
/// policies of each tenant table the role can reach.
pub(super) async fn audit_tables(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    superuser: bool,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let tables: Vec<TableRow> = sqlx::query_as(TENANT_TABLES)
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    if tables.is_empty() {
        return Ok(());
    }
    let oids: Vec<i64> = tables.iter().map(|t| t.0).collect();
    let rows: Vec<PolicyRow> = sqlx::query_as(POLICIES)
        .persistent(false)
        .bind(&oids)
        .fetch_all(&mut *conn)
        .await?;
    let policies: Vec<Policy> = rows
        .into_iter()
        .map(
            |(table_oid, raw_name, name, permissive, command, using, check)| Policy {
                table_oid,
                raw_name,
                name,
                permissive,
                command,
                using,
                check,
            },
        )
        .collect();
    let tenant = Tenant {
        column: options.tenant_column(),
        setting: options.setting_names().tenant(),
        guard_schema: GUARD_SCHEMA,
    };

    for (oid, table, enabled, forced, owner, owned, can_truncate) in tables {
        if !enabled {
            findings.push(Finding::RlsNotEnabled {
                table: table.clone(),
            });
        }
        if !forced {
            findings.push(Finding::RlsNotForced {
                table: table.clone(),
            });
        }
        if superuser {
            // A superuser owns and may truncate everything; that is one
            // finding, already reported, not one per table.
        } else if owned {
            findings.push(Finding::TableOwnedByApplicationRole {
                table: table.clone(),
                owner,
                role: role.to_owned(),
            });
        } else if can_truncate {
            // An owner may always truncate; that is covered by the finding above.
            findings.push(Finding::TruncateAllowed {
                table: table.clone(),
                role: role.to_owned(),
            });
        }

        let table_policies: Vec<&Policy> = policies.iter().filter(|p| p.table_oid == oid).collect();
        if !audit_policies(&table, &table_policies, &tenant, options, findings) {
            findings.push(Finding::NoTenantPolicy {
                table,
                setting: options.setting_names().tenant().to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks the policies of one table that apply to the role; returns whether
/// one of them is bound to the tenant.
///
/// A row is visible (or may be written) when one permissive policy lets it
/// through and every restrictive one does: so a permissive policy must be
/// bound to the tenant unless a restrictive policy for the same command
/// (or `ALL`) is, for the same clause.
fn audit_policies(
    table: &str,
    policies: &[&Policy],
    tenant: &Tenant<'_>,
    options: &AuditOptions,
    findings: &mut Vec<Finding>,
) -> bool {
    let binding = |expr: Option<&str>| expr.map_or(Binding::None, |e| tenant.binding(e));
    let covered = |command: &str, clause: PolicyClause| {
        policies.iter().any(|r| {
            !r.permissive
                && (r.command == "ALL" || r.command == command)
                && binding(r.effective(clause)) != Binding::None
        })
    };
    let mut any_bound = false;
    for policy in policies {
        let mut reads_guard = false;
        if policy.permissive
            && matches!(policy.command.as_str(), "ALL" | "INSERT" | "UPDATE")
            && policy.check.is_none()
        {
            findings.push(Finding::WritePolicyWithoutCheck {
                table: table.to_owned(),
                policy: policy.name.clone(),
                command: policy.command.clone(),
            });
        }
        for clause in [PolicyClause::Using, PolicyClause::WithCheck] {
            let Some(expr) = policy.clause(clause) else {
                // A missing clause is false in a permissive policy and
                // true in a restrictive one (or, for the check of an `ALL`
                // or `UPDATE` policy, its `USING`): it opens nothing.
                continue;
            };
            match tenant.binding(expr) {
                Binding::Setting => {
                    any_bound = true;
                    if options.is_hardened() {
                        findings.push(Finding::PolicyReadsBareSetting {
                            table: table.to_owned(),
                            policy: policy.name.clone(),
                            clause,
                            setting: options.setting_names().tenant().to_owned(),
                        });
                    }
                }
                Binding::Guard => {
                    any_bound = true;
                    reads_guard = true;
                }
                Binding::None => {
                    if !policy.permissive
                        || options.allowed_policies().contains(&policy.raw_name)
                        || covered(&policy.command, clause)
                    {
                        // Restrictive policies only narrow; this one is
                        // declared on purpose, or narrowed by one that is
                        // bound.
                    } else if is_literal_true(expr) {
                        findings.push(Finding::PermissiveAlwaysTrue {
                            table: table.to_owned(),
                            policy: policy.name.clone(),
                            clause,
                        });
                    } else {
                        findings.push(Finding::PolicyNotTenantBound {
                            table: table.to_owned(),
                            policy: policy.name.clone(),
                            clause,
                            expression: expr.to_owned(),
                        });
                    }
                }
            }
        }
        if reads_guard && !options.is_hardened() {
            findings.push(Finding::PolicyNeedsHardenedPool {
                table: table.to_owned(),
                policy: policy.name.clone(),
            });
        }
    }
    any_bound
}

/// Foreign keys between tenant tables that do not include the tenant
/// column.
pub(super) async fn audit_foreign_keys(
    conn: &mut PgConnection,
    options: &AuditOptions,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(&catalog::foreign_keys())
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    for (constraint, table, references, column) in rows {
        findings.push(Finding::ForeignKeyWithoutTenant {
            constraint,
            table,
            references,
            column,
        });
    }
    Ok(())
}

/// Views without `security_invoker` and materialized views, over tenant
/// tables, that the role may use.
pub(super) async fn audit_views(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, bool, String, Vec<String>)> = sqlx::query_as(&catalog::views())
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    for (view, materialized, owner, tables) in rows {
        if materialized {
            findings.push(Finding::MaterializedViewReadable {
                view,
                tables,
                role: role.to_owned(),
            });
        } else {
            findings.push(Finding::ViewNotSecurityInvoker {
                view,
                owner,
                tables,
            });
        }
    }
    Ok(())
}

/// `SECURITY DEFINER` functions the role may execute whose owner escapes
/// row-level security.
pub(super) async fn audit_functions(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, bool, bool, Option<String>)> =
        sqlx::query_as(&catalog::definer_functions())
            .persistent(false)
            .bind(options.tenant_column())
            .bind(options.is_hardened())
            .fetch_all(&mut *conn)
            .await?;
    for (function, owner, superuser, bypass_rls, owns) in rows {
        let rights = if superuser {
            DefinerRights::Superuser
        } else if bypass_rls {
            DefinerRights::BypassRls
        } else if let Some(table) = owns {
            DefinerRights::OwnsTenantTable { table }
        } else {
            continue;
        };
        findings.push(Finding::SecurityDefinerFunction {
            function,
            owner,
            rights,
            role: role.to_owned(),
        });
    }
    Ok(())
}

/// A row of [`GUARD_FUNCTION`].
type GuardFunctionRow = (
    String,
    bool,
    String,
    Vec<String>,
    String,
    String,
    bool,
    bool,
);

/// Hardened mode: the guard function, its secrets and its schema are what
/// [`Guard`] installs, and out of the role's reach.
pub(super) async fn audit_guard(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    superuser: bool,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let function: Option<GuardFunctionRow> = sqlx::query_as(GUARD_FUNCTION)
        .persistent(false)
        .bind(GUARD_SCHEMA)
        .fetch_optional(&mut *conn)
        .await?;
    match function {
        None => findings.push(Finding::GuardMissing {
            object: format!("FUNCTION {}", crate::guard::GUARD_FUNCTION),
        }),
        Some((function, definer, language, config, body, owner, owner_super, executable)) => {
            if !definer {
                findings.push(Finding::GuardNotSecurityDefiner {
                    function: function.clone(),
                });
            }
            if language != "plpgsql" {
                findings.push(Finding::GuardNotPlpgsql {
                    function: function.clone(),
                    language,
                });
            }
            if !config.is_empty() {
                findings.push(Finding::GuardHasSetClause {
                    function: function.clone(),
                    config,
                });
            }
            if body
                != Guard::new()
                    .setting_names(options.setting_names())
                    .function_body()
            {
                findings.push(Finding::GuardBodyChanged {
                    function: function.clone(),
                });
            }
            if owner_super && !superuser {
                findings.push(Finding::GuardOwnedBySuperuser {
                    function: function.clone(),
                    owner,
                });
            }
            if !executable {
                findings.push(Finding::GuardNotExecutable {
                    function,
                    role: role.to_owned(),
                });
            }
        }
    }
    if superuser {
        // A superuser owns and reads everything; reported once already.
        return Ok(());
    }

    let owned: Vec<(String, String)> = sqlx::query_as(GUARD_OWNED)
        .persistent(false)
        .bind(GUARD_SCHEMA)
        .fetch_all(&mut *conn)
        .await?;
    for (object, owner) in owned {
        findings.push(Finding::GuardOwnedByApplicationRole {
            object,
            owner,
            role: role.to_owned(),
        });
    }

    let secrets: Option<(String, Vec<String>, bool)> = sqlx::query_as(GUARD_SECRETS)
        .persistent(false)
        .bind(GUARD_SCHEMA)
        .fetch_optional(&mut *conn)
        .await?;
    match secrets {
        None => findings.push(Finding::GuardMissing {
            object: format!("TABLE {GUARD_SCHEMA}.secrets"),
        }),
        // An owner has every privilege: reported as the owner above.
        Some((_, _, true)) => {}
        Some((table, privileges, false)) => {
            if !privileges.is_empty() {
                findings.push(Finding::GuardSecretsAccessible {
                    table,
                    role: role.to_owned(),
                    privileges,
                });
            }
        }
    }

    let schema: Option<(String, bool, bool)> = sqlx::query_as(GUARD_SCHEMA_ROW)
        .persistent(false)
        .bind(GUARD_SCHEMA)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some((schema, true, false)) = schema {
        findings.push(Finding::GuardSchemaWritable {
            schema,
            role: role.to_owned(),
        });
    }
    Ok(())
}

pub(super) async fn audit_settings(
    conn: &mut PgConnection,
    settings: &SettingNames,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = Field::ALL.iter().map(|f| settings.for_field(*f)).collect();
    let stored: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(STORED_SETTINGS)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    let mut explained = Vec::new();
    for (role, database, entry) in stored {
        // Entries are `name=value`; the name cannot contain `=`.
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        if let Some(setting) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
            explained.push(*setting);
            findings.push(Finding::StoredDefault {
                setting: (*setting).to_owned(),
                role,
                database,
                value: value.to_owned(),
            });
        } else if shapes_sessions(name, &names) {
            findings.push(Finding::StoredSessionSetting {
                setting: name.to_owned(),
                role,
                database,
                value: value.to_owned(),
            });
        }
    }

    let (role, track_activities, track_utility): (String, String, Option<String>) = sqlx::query_as(
        "SELECT format('%I', session_user), current_setting('track_activities'), \
                    current_setting('pg_stat_statements.track_utility', true)",
    )
    .persistent(false)
    .fetch_one(&mut *conn)
    .await?;
    if track_activities == "on" {
        findings.push(Finding::QueryTextVisible { role });
    }
    if track_utility.as_deref() == Some("on") {
        findings.push(Finding::UtilityStatementsTracked);
    }

    let current: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT s, current_setting(s, true) \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(s, i) ORDER BY i",
    )
    .persistent(false)
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    for (setting, value) in current {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        // A stored default shows up here too; it has been reported with its
        // source already.
        if !explained.iter().any(|e| *e == setting) {
            findings.push(Finding::PresetInSession { setting, value });
        }
    }
    Ok(())
}

/// Stored settings reported as [`Finding::StoredSessionSetting`]: those
/// that decide how every transaction runs or what a name in a statement
/// means, and any other setting under the prefix of a context setting
/// (`app.*`), which a policy might read.
fn shapes_sessions(name: &str, context_settings: &[&str]) -> bool {
    const SHAPING: [&str; 10] = [
        "default_transaction_read_only",
        "default_transaction_isolation",
        "default_transaction_deferrable",
        "transaction_read_only",
        "transaction_isolation",
        "search_path",
        "role",
        "session_authorization",
        "row_security",
        "session_replication_role",
    ];
    let name = name.to_ascii_lowercase();
    SHAPING.contains(&name.as_str())
        || context_settings.iter().any(|s| {
            s.split_once('.')
                .is_some_and(|(prefix, _)| name.starts_with(&format!("{prefix}.")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_shape_sessions_are_recognised() {
        let ours = ["app.current_tenant", "app.current_agent"];
        for name in [
            "default_transaction_read_only",
            "DEFAULT_TRANSACTION_ISOLATION",
            "search_path",
            "role",
            "row_security",
            "app.tenant_proof",
            "app.anything",
        ] {
            assert!(shapes_sessions(name, &ours), "{name}");
        }
        for name in [
            "statement_timeout",
            "work_mem",
            "application_name",
            "apple.x",
        ] {
            assert!(!shapes_sessions(name, &ours), "{name}");
        }
    }
}

/// PostgreSQL 17's `MAINTAIN` privilege on tenant tables the role does not
/// own.
pub(super) async fn audit_maintain(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(MAINTAIN_TABLES)
        .persistent(false)
        .bind(options.tenant_column())
        .bind(version >= 170_000)
        .fetch_all(&mut *conn)
        .await?;
    findings.extend(tables.into_iter().map(|table| Finding::MaintainAllowed {
        table,
        role: role.to_owned(),
    }));
    Ok(())
}

/// Tenant tables without an index that leads with the tenant column: a
/// performance finding.
pub(super) async fn audit_indexes(
    conn: &mut PgConnection,
    options: &AuditOptions,
    performance: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let tables: Vec<(String, String)> = sqlx::query_as(UNINDEXED_TENANT_TABLES)
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    performance.extend(
        tables
            .into_iter()
            .map(|(table, column)| Finding::TenantColumnNotIndexed { table, column }),
    );
    Ok(())
}

/// Citus: the tenant's `SET LOCAL` must be propagated to the workers.
pub(super) async fn audit_citus(
    conn: &mut PgConnection,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let (installed, propagate): (bool, Option<String>) = sqlx::query_as(CITUS)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
    findings.extend(citus_finding(installed, propagate.as_deref(), role));
    Ok(())
}

/// The decision of [`audit_citus`], apart from the catalogs (Citus is not
/// installed where the tests run): only `local` sends a transaction's
/// `SET LOCAL` to the workers it touches.
pub(super) fn citus_finding(
    installed: bool,
    propagate_set_commands: Option<&str>,
    role: &str,
) -> Option<Finding> {
    if !installed {
        return None;
    }
    match propagate_set_commands {
        Some(v) if v.trim().eq_ignore_ascii_case("local") => None,
        other => Some(Finding::CitusSetNotPropagated {
            value: other.unwrap_or("unset").to_owned(),
            role: role.to_owned(),
        }),
    }
}

#[cfg(test)]
mod citus_tests {
    use super::citus_finding;

    #[test]
    fn without_citus_nothing_is_reported() {
        assert_eq!(citus_finding(false, None, "app"), None);
        assert_eq!(citus_finding(false, Some("none"), "app"), None);
    }

    #[test]
    fn with_citus_only_local_propagation_passes() {
        assert_eq!(citus_finding(true, Some("local"), "app"), None);
        assert_eq!(citus_finding(true, Some("LOCAL"), "app"), None);
        for value in [Some("none"), None] {
            let finding = citus_finding(true, value, "app").expect("reported");
            assert_eq!(finding.code(), "CITUS_SET_NOT_PROPAGATED");
            let message = finding.to_string();
            assert!(message.contains("ALTER ROLE app SET citus.propagate_set_commands = 'local'"));
            assert!(message.contains(value.unwrap_or("unset")), "{message}");
        }
    }
}
