//! The checks, one function per part of the catalogs, each adding its
//! findings in a stable order.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;
use tenant_core::Field;

use super::catalog::{
    self, CITUS, GUARD_FUNCTION, GUARD_OWNED, GUARD_SCHEMA_ROW, GUARD_SECRETS, LARGE_OBJECTS,
    LARGE_OBJECT_GRANTS, MAINTAIN_TABLES, PINNED_SETTINGS, POLICIES, PRIVILEGED_ROLES,
    STORED_SETTINGS, SUBJECT_POLICIES, TENANT_TABLES, UNINDEXED_TENANT_TABLES, UPDATABLE_SEQUENCES,
    WRITABLE_SCHEMAS,
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
/// permissive, command, `USING`, `WITH CHECK`, applied as the role is,
/// roles it belongs to without inheriting.
type PolicyRow = (
    i64,
    String,
    String,
    bool,
    String,
    Option<String>,
    Option<String>,
    bool,
    Vec<String>,
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
    /// PostgreSQL applies it to the role as it is (not only after a `SET
    /// ROLE`).
    inherited: bool,
    /// The roles it is written for that the role belongs to without
    /// inheriting their rights.
    not_inherited: Vec<String>,
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
            |(
                table_oid,
                raw_name,
                name,
                permissive,
                command,
                using,
                check,
                inherited,
                not_inherited,
            )| {
                Policy {
                    table_oid,
                    raw_name,
                    name,
                    permissive,
                    command,
                    using,
                    check,
                    inherited,
                    not_inherited,
                }
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
        if !audit_policies(&table, &table_policies, &tenant, options, role, findings) {
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
    role: &str,
    findings: &mut Vec<Finding>,
) -> bool {
    let covered = |command: &str, clause: PolicyClause| covered(policies, tenant, command, clause);
    let mut any_bound = false;
    for policy in policies {
        let mut reads_guard = false;
        if !policy.permissive && !policy.inherited {
            findings.push(Finding::RestrictivePolicyNotInherited {
                table: table.to_owned(),
                policy: policy.name.clone(),
                roles: policy.not_inherited.clone(),
                role: role.to_owned(),
            });
        }
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
                Binding::Lossy(cast) => {
                    any_bound = true;
                    if !options.allowed_policies().contains(&policy.raw_name) {
                        findings.push(Finding::PolicyLossyCast {
                            table: table.to_owned(),
                            policy: policy.name.clone(),
                            clause,
                            cast,
                        });
                    }
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

/// Whether a restrictive policy that PostgreSQL applies (for `command`, or
/// `ALL`) binds `clause` to the tenant, so that permissive policies can
/// only widen access within the tenant.
fn covered(policies: &[&Policy], tenant: &Tenant<'_>, command: &str, clause: PolicyClause) -> bool {
    policies.iter().any(|r| {
        !r.permissive
            && r.inherited
            && (r.command == "ALL" || r.command == command)
            && r.effective(clause)
                .is_some_and(|e| tenant.binding(e).is_bound())
    })
}

/// The first permissive policy of `policies` (those of one table that
/// apply to one role) that lets rows of other tenants through: not bound
/// to the tenant, not declared on purpose, not narrowed by a bound
/// restrictive policy.
fn first_unbound(
    policies: &[&Policy],
    tenant: &Tenant<'_>,
    options: &AuditOptions,
) -> Option<String> {
    policies
        .iter()
        .filter(|p| p.permissive && !options.allowed_policies().contains(&p.raw_name))
        .find(|p| {
            [PolicyClause::Using, PolicyClause::WithCheck]
                .into_iter()
                .any(|clause| {
                    p.clause(clause).is_some_and(|e| {
                        !tenant.binding(e).is_bound()
                            && !covered(policies, tenant, &p.command, clause)
                    })
                })
        })
        .map(|p| p.name.clone())
}

/// How a role (the owner of a view, a function, a rule) gets past the
/// tenant policies of a tenant table.
#[derive(Debug, Clone)]
enum Escape {
    Superuser,
    BypassRls,
    RlsDisabled(String),
    OwnsUnforced(String),
    Unbound { table: String, policy: String },
}

impl Escape {
    fn rights(&self) -> DefinerRights {
        match self {
            Escape::Superuser => DefinerRights::Superuser,
            Escape::BypassRls => DefinerRights::BypassRls,
            Escape::RlsDisabled(table) => DefinerRights::RlsDisabledOn {
                table: table.clone(),
            },
            Escape::OwnsUnforced(table) => DefinerRights::OwnsTenantTable {
                table: table.clone(),
            },
            Escape::Unbound { table, policy } => DefinerRights::PolicyNotTenantBound {
                table: table.clone(),
                policy: policy.clone(),
            },
        }
    }
}

/// Which roles escape the tenant policies, on which tenant tables.
#[derive(Default)]
struct Escapes {
    /// Superusers and `BYPASSRLS` roles: every table.
    everywhere: HashMap<i64, Escape>,
    /// The others: per table oid, in table name order.
    on_tables: HashMap<i64, Vec<(i64, Escape)>>,
    /// Roles held to the tenant on a tenant table they own (it forces
    /// row-level security): the first such table by name.
    owns_forced: HashMap<i64, String>,
}

impl Escapes {
    /// How `role` escapes on the tenant table `table`.
    fn on(&self, role: i64, table: i64) -> Option<&Escape> {
        self.everywhere.get(&role).or_else(|| {
            self.on_tables
                .get(&role)?
                .iter()
                .find(|(t, _)| *t == table)
                .map(|(_, e)| e)
        })
    }

    /// How `role` escapes on some tenant table, the first one by name.
    fn first(&self, role: i64) -> Option<&Escape> {
        self.everywhere
            .get(&role)
            .or_else(|| self.on_tables.get(&role)?.first().map(|(_, e)| e))
    }
}

/// A row of [`catalog::subject_tables`].
type SubjectTableRow = (i64, i64, String, bool, bool, bool, bool, bool);

/// A row of [`SUBJECT_POLICIES`]: role oid, then as [`PolicyRow`] without
/// the last two.
type SubjectPolicyRow = (
    i64,
    i64,
    String,
    String,
    bool,
    String,
    Option<String>,
    Option<String>,
);

/// Evaluates, for each role of `roles`, the tenant tables it may use: is
/// it held to the tenant there as the pool's role is?
async fn escapes(
    conn: &mut PgConnection,
    options: &AuditOptions,
    roles: &[i64],
) -> Result<Escapes, sqlx::Error> {
    let mut out = Escapes::default();
    if roles.is_empty() {
        return Ok(out);
    }
    let rows: Vec<SubjectTableRow> = sqlx::query_as(&catalog::subject_tables())
        .persistent(false)
        .bind(options.tenant_column())
        .bind(roles)
        .fetch_all(&mut *conn)
        .await?;
    let tables: Vec<i64> = rows
        .iter()
        .map(|r| r.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let policy_rows: Vec<SubjectPolicyRow> = sqlx::query_as(SUBJECT_POLICIES)
        .persistent(false)
        .bind(roles)
        .bind(&tables)
        .fetch_all(&mut *conn)
        .await?;
    let policies: Vec<(i64, Policy)> = policy_rows
        .into_iter()
        .map(
            |(subject, table_oid, raw_name, name, permissive, command, using, check)| {
                (
                    subject,
                    Policy {
                        table_oid,
                        raw_name,
                        name,
                        permissive,
                        command,
                        using,
                        check,
                        inherited: true,
                        not_inherited: Vec::new(),
                    },
                )
            },
        )
        .collect();
    let tenant = Tenant {
        column: options.tenant_column(),
        setting: options.setting_names().tenant(),
        guard_schema: GUARD_SCHEMA,
    };
    for (subject, table_oid, table, superuser, bypass, enabled, forced, owner) in rows {
        let escape = if superuser {
            Some(Escape::Superuser)
        } else if bypass {
            Some(Escape::BypassRls)
        } else if !enabled {
            Some(Escape::RlsDisabled(table))
        } else if owner && !forced {
            Some(Escape::OwnsUnforced(table))
        } else {
            if owner {
                out.owns_forced
                    .entry(subject)
                    .or_insert_with(|| table.clone());
            }
            let applying: Vec<&Policy> = policies
                .iter()
                .filter(|(s, p)| *s == subject && p.table_oid == table_oid)
                .map(|(_, p)| p)
                .collect();
            first_unbound(&applying, &tenant, options)
                .map(|policy| Escape::Unbound { table, policy })
        };
        match escape {
            Some(e @ (Escape::Superuser | Escape::BypassRls)) => {
                out.everywhere.insert(subject, e);
            }
            Some(e) => out
                .on_tables
                .entry(subject)
                .or_default()
                .push((table_oid, e)),
            None => {}
        }
    }
    Ok(out)
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

/// Tables the audit would otherwise not see as tenant tables, comparisons
/// that do not mean equality, and side channels between tenants: in that
/// order, inheritance parents without the tenant column, nondeterministic
/// tenant columns, unique keys and foreign keys that ignore the tenant,
/// `REFERENCES` and `TRIGGER` privileges, sequences the role may `setval`,
/// large objects.
pub(super) async fn audit_structure(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let column = options.tenant_column();
    let parents: Vec<(String, Vec<String>)> = sqlx::query_as(&catalog::inheritance_parents())
        .persistent(false)
        .bind(column)
        .fetch_all(&mut *conn)
        .await?;
    let quoted_column = format_ident(column);
    for (parent, children) in parents {
        findings.push(Finding::InheritanceParentWithoutTenant {
            parent,
            children,
            column: quoted_column.clone(),
            role: role.to_owned(),
        });
    }
    let collations: Vec<(String, String, String)> =
        sqlx::query_as(&catalog::nondeterministic_columns())
            .persistent(false)
            .bind(column)
            .fetch_all(&mut *conn)
            .await?;
    for (table, column, collation) in collations {
        findings.push(Finding::TenantColumnNondeterministic {
            table,
            column,
            collation,
        });
    }
    let keys: Vec<(String, String, String, String)> = sqlx::query_as(&catalog::unique_keys())
        .persistent(false)
        .bind(column)
        .fetch_all(&mut *conn)
        .await?;
    for (index, table, definition, column) in keys {
        findings.push(Finding::UniqueKeyWithoutTenant {
            index,
            table,
            definition,
            column,
        });
    }
    let keys: Vec<(String, String, String)> =
        sqlx::query_as(&catalog::foreign_keys_from_non_tenant())
            .persistent(false)
            .bind(column)
            .fetch_all(&mut *conn)
            .await?;
    for (constraint, table, references) in keys {
        findings.push(Finding::ForeignKeyFromNonTenantTable {
            constraint,
            table,
            references,
        });
    }
    let privileges: Vec<(String, bool, bool)> = sqlx::query_as(&catalog::references_and_triggers())
        .persistent(false)
        .bind(column)
        .fetch_all(&mut *conn)
        .await?;
    for (table, references, trigger) in privileges {
        if references {
            findings.push(Finding::ReferencesAllowed {
                table: table.clone(),
                role: role.to_owned(),
            });
        }
        if trigger {
            findings.push(Finding::TriggerAllowed {
                table,
                role: role.to_owned(),
            });
        }
    }
    let sequences: Vec<String> = sqlx::query_scalar(UPDATABLE_SEQUENCES)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    findings.extend(
        sequences
            .into_iter()
            .map(|sequence| Finding::SequenceUpdateAllowed {
                sequence,
                role: role.to_owned(),
            }),
    );
    let (total, objects): (i64, Option<Vec<String>>) = sqlx::query_as(LARGE_OBJECTS)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await?;
    if total > 0 {
        findings.push(Finding::LargeObjectsAccessible {
            total,
            objects: objects.unwrap_or_default(),
            role: role.to_owned(),
        });
    }
    let granted: Vec<String> = sqlx::query_scalar(LARGE_OBJECT_GRANTS)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    findings.extend(
        granted
            .into_iter()
            .map(|function| Finding::LargeObjectFunctionGranted {
                function,
                role: role.to_owned(),
            }),
    );
    Ok(())
}

/// A row of [`catalog::views`].
type ViewRow = (String, bool, String, i64, String, i64, bool);

/// A row of [`catalog::definer_functions`].
type FunctionRow = (
    String,
    i64,
    String,
    bool,
    String,
    String,
    Option<String>,
    Vec<String>,
);

/// A row of [`catalog::rules`].
type RuleRow = (String, String, i64, String, i64, String);

/// What runs with someone else's rights: views without `security_invoker`
/// and materialized views over tenant tables, `SECURITY DEFINER`
/// functions (executed or fired as triggers), and rules. Each is reported
/// when the role whose rights it uses is not held to the tenant as the
/// pool's role is (see [`escapes`]).
pub(super) async fn audit_definers(
    conn: &mut PgConnection,
    options: &AuditOptions,
    role: &str,
    findings: &mut Vec<Finding>,
) -> Result<(), sqlx::Error> {
    let views: Vec<ViewRow> = sqlx::query_as(&catalog::views())
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    let functions: Vec<FunctionRow> = sqlx::query_as(&catalog::definer_functions())
        .persistent(false)
        .bind(options.is_hardened())
        .fetch_all(&mut *conn)
        .await?;
    let rules: Vec<RuleRow> = sqlx::query_as(&catalog::rules())
        .persistent(false)
        .bind(options.tenant_column())
        .fetch_all(&mut *conn)
        .await?;
    let subjects: Vec<i64> = views
        .iter()
        .map(|v| v.5)
        .chain(functions.iter().map(|f| f.1))
        .chain(rules.iter().map(|r| r.2))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let escapes = escapes(conn, options, &subjects).await?;

    // Views, in name order, each with the tenant tables it leaks.
    let mut reported: Vec<(String, bool, String, Vec<String>)> = Vec::new();
    for (view, materialized, owner, table_oid, table, reader, stored) in views {
        let leaks = materialized || stored || escapes.on(reader, table_oid).is_some();
        if !leaks {
            continue;
        }
        match reported.last_mut() {
            Some(last) if last.0 == view => {
                if !last.3.contains(&table) {
                    last.3.push(table);
                }
            }
            _ => reported.push((view, materialized, owner, vec![table])),
        }
    }
    for (view, materialized, owner, tables) in reported {
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

    let writable: Vec<String> = sqlx::query_scalar(WRITABLE_SCHEMAS)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    for (function, owner_oid, owner, executable, language, body, search_path, triggers) in functions
    {
        // The owner of a tenant table that forces row-level security is
        // held to the tenant like the pool's role, unless the function
        // changes that: it may turn row-level security off with DDL or
        // dynamic SQL (or in a language the audit cannot read).
        let owns_forced = escapes
            .owns_forced
            .get(&owner_oid)
            .filter(|_| runs_ddl(&language, &body));
        let owner_escape = owns_forced.map(|table| Escape::OwnsUnforced(table.clone()));
        let escape = escapes.first(owner_oid).or(owner_escape.as_ref());
        if let (true, Some(escape)) = (executable, escape) {
            findings.push(match escape {
                Escape::Unbound { table, policy } => Finding::DefinerOwnerPolicyUnbound {
                    function: function.clone(),
                    owner: owner.clone(),
                    table: table.clone(),
                    policy: policy.clone(),
                    role: role.to_owned(),
                },
                other => Finding::SecurityDefinerFunction {
                    function: function.clone(),
                    owner: owner.clone(),
                    rights: other.rights(),
                    role: role.to_owned(),
                },
            });
        }
        if let Some(escape) = escape {
            for trigger in &triggers {
                let (name, table) = trigger.split_once(' ').unwrap_or((trigger, ""));
                findings.push(Finding::SecurityDefinerTrigger {
                    function: function.clone(),
                    trigger: name.to_owned(),
                    table: table.to_owned(),
                    owner: owner.clone(),
                    rights: escape.rights(),
                    role: role.to_owned(),
                });
            }
        }
        if matches!(language.as_str(), "c" | "internal") || writable.is_empty() {
            continue;
        }
        let schemas: Vec<String> = match &search_path {
            None => writable.clone(),
            Some(path) => path_schemas(path, role)
                .into_iter()
                .filter(|s| writable.contains(s))
                .collect(),
        };
        if !schemas.is_empty() {
            findings.push(Finding::DefinerSearchPathWritable {
                function,
                search_path,
                schemas,
                role: role.to_owned(),
            });
        }
    }

    let mut rule_findings: Vec<Finding> = Vec::new();
    for (rule, table, owner_oid, owner, tenant_oid, tenant_table) in rules {
        if escapes.on(owner_oid, tenant_oid).is_none() {
            continue;
        }
        match rule_findings.last_mut() {
            Some(Finding::RuleReadsTenantTable {
                rule: r,
                table: t,
                tables,
                ..
            }) if *r == rule && *t == table => tables.push(tenant_table),
            _ => rule_findings.push(Finding::RuleReadsTenantTable {
                rule,
                table,
                owner,
                tables: vec![tenant_table],
                role: role.to_owned(),
            }),
        }
    }
    findings.extend(rule_findings);
    Ok(())
}

/// Whether a function body may change what row-level security enforces or
/// which tenant it is for: dynamic SQL (`EXECUTE`), DDL and grants
/// (`ALTER`, `DROP`, `CREATE`, `TRUNCATE`, `GRANT`, `REVOKE`) or
/// `set_config` in `sql` or plpgsql, by word; or any body in another
/// language, which the audit does not read.
fn runs_ddl(language: &str, body: &str) -> bool {
    if !matches!(language, "sql" | "plpgsql") {
        return true;
    }
    const WORDS: [&str; 8] = [
        "execute",
        "alter",
        "drop",
        "create",
        "truncate",
        "grant",
        "revoke",
        "set_config",
    ];
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)))
}

/// `name` as `format('%I', name)` writes it (keywords aside).
fn format_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The schemas a `search_path` value names, as identifiers (`"$user"` is
/// the role).
fn path_schemas(path: &str, role: &str) -> Vec<String> {
    path.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let unquoted = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .map(|s| s.replace("\"\"", "\""));
            match unquoted.as_deref() {
                Some("$user") => role.to_owned(),
                Some(name) => format_ident(name),
                None => s.to_ascii_lowercase(),
            }
        })
        .collect()
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

/// The settings given in this connection's start-up options (see
/// [`PINNED_SETTINGS`]): a stored value of these never reaches a session
/// opened with the same options.
pub(super) async fn pinned_settings(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(PINNED_SETTINGS)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
}

/// Stored settings (the context settings' defaults, and those that shape
/// sessions unless `pinned`), and settings that expose statements.
pub(super) async fn audit_settings(
    conn: &mut PgConnection,
    settings: &SettingNames,
    pinned: &[String],
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
        } else if shapes_sessions(name, &names)
            && !pinned.iter().any(|p| p.eq_ignore_ascii_case(name))
        {
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
    const SHAPING: [&str; 20] = [
        "default_transaction_read_only",
        "default_transaction_isolation",
        "default_transaction_deferrable",
        "transaction_read_only",
        "transaction_isolation",
        "transaction_deferrable",
        "search_path",
        "role",
        "session_authorization",
        "row_security",
        "session_replication_role",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "idle_session_timeout",
        "transaction_timeout",
        "standard_conforming_strings",
        "bytea_output",
        "intervalstyle",
        "exit_on_error",
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
    fn definer_bodies_that_may_turn_rls_off_are_told_apart() {
        for body in [
            "BEGIN EXECUTE statement; END",
            "ALTER TABLE public.notes DISABLE ROW LEVEL SECURITY",
            "SELECT set_config('app.current_tenant', $1, true)",
            "begin drop policy p on notes; end",
        ] {
            assert!(runs_ddl("plpgsql", body), "{body}");
        }
        for body in [
            "SELECT count(*) FROM public.notes",
            "UPDATE notes SET body = $1 WHERE id = $2",
            "SELECT created_at, executed_by, dropped FROM notes",
        ] {
            assert!(!runs_ddl("sql", body), "{body}");
        }
        assert!(runs_ddl("plpython3u", "return 1"));
    }

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
            "idle_in_transaction_session_timeout",
            "IntervalStyle",
        ] {
            assert!(shapes_sessions(name, &ours), "{name}");
        }
        for name in ["work_mem", "application_name", "apple.x"] {
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
