//! The catalog queries. Every name comes back formatted as an SQL
//! identifier (`format('%I', …)`), ready for the statement in a finding.

use crate::guard::GUARD_SCHEMA;

/// Roles the connection is, or can become: itself, the session role (a
/// `RESET ROLE` away) and every role either belongs to. A superuser is a
/// member of every role, so its memberships are not reported one by one.
pub(super) const PRIVILEGED_ROLES: &str = "\
SELECT format('%I', r.rolname), r.rolsuper, r.rolbypassrls,
       r.rolname IN (current_user, session_user),
       format('%I', CASE WHEN pg_has_role(current_user, r.oid, 'MEMBER')
                         THEN current_user ELSE session_user END)
FROM pg_roles r
WHERE (r.rolsuper OR r.rolbypassrls)
  AND (pg_has_role(current_user, r.oid, 'MEMBER') OR pg_has_role(session_user, r.oid, 'MEMBER'))
ORDER BY r.rolname";

/// Tenant tables the role can reach (see the module docs). `owned` covers
/// membership in the owning role because PostgreSQL treats every member
/// that can act as the owner as the owner, for RLS bypass and for `ALTER`.
pub(super) const TENANT_TABLES: &str = "\
SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname),
       c.relrowsecurity, c.relforcerowsecurity,
       format('%I', pg_get_userbyid(c.relowner)),
       pg_has_role(current_user, c.relowner, 'MEMBER')
           OR pg_has_role(session_user, c.relowner, 'MEMBER'),
       has_table_privilege(c.oid, 'TRUNCATE')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE a.attname = $1
  AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
       OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER')
       OR pg_has_role(c.relowner, 'MEMBER'))
ORDER BY 2";

/// Tenant tables the role can reach (as [`TENANT_TABLES`]) on which it has
/// `MAINTAIN` (PostgreSQL 17 and later: `$2` is false before, and the
/// privilege name is then never looked up), without owning them (an owner's
/// finding is reported already).
pub(super) const MAINTAIN_TABLES: &str = "\
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE $2
  AND a.attname = $1
  AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND NOT pg_has_role(c.relowner, 'MEMBER')
  AND CASE WHEN $2 THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END
ORDER BY 1";

/// Tenant tables the role can reach with no valid index whose first column
/// is the tenant column (a partitioned table counts its partitioned
/// indexes).
pub(super) const UNINDEXED_TENANT_TABLES: &str = "\
SELECT format('%I.%I', n.nspname, c.relname), format('%I', a.attname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE a.attname = $1
  AND c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
       OR has_table_privilege(c.oid, 'DELETE'))
  AND NOT EXISTS (SELECT 1 FROM pg_index i
                  WHERE i.indrelid = c.oid AND i.indisvalid AND i.indkey[0] = a.attnum)
ORDER BY 1";

/// Whether the Citus extension is installed in this database, and its
/// `citus.propagate_set_commands` (NULL when the library is not loaded).
pub(super) const CITUS: &str = "\
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus'),
       current_setting('citus.propagate_set_commands', true)";

/// The policies of those tables that apply to the role: to `PUBLIC` or to a
/// role it is or can become. Read with `search_path = pg_catalog`, so that
/// every function, operator and type from elsewhere is printed
/// schema-qualified (see `expr`).
///
/// The last two columns: whether PostgreSQL applies the policy to the role
/// as it is (to `PUBLIC`, or to a role whose rights it inherits), and the
/// roles it is written for that the role belongs to without inheriting
/// their rights (`NOINHERIT`): such a policy applies only after a `SET
/// ROLE`.
pub(super) const POLICIES: &str = "\
SELECT p.polrelid::int8, p.polname::text, format('%I', p.polname), p.polpermissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid),
       0::oid = ANY(p.polroles)
           OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid)
                      WHERE pg_has_role(current_user, r.oid, 'USAGE')),
       ARRAY(SELECT format('%I', pg_get_userbyid(r.oid)) FROM unnest(p.polroles) AS r(oid)
             WHERE r.oid <> 0 AND NOT pg_has_role(current_user, r.oid, 'USAGE')
               AND (pg_has_role(current_user, r.oid, 'MEMBER')
                    OR pg_has_role(session_user, r.oid, 'MEMBER'))
             ORDER BY 1)
FROM pg_policy p
WHERE p.polrelid::int8 = ANY($1)
  AND (0::oid = ANY(p.polroles)
       OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid)
                  WHERE pg_has_role(current_user, r.oid, 'MEMBER')
                     OR pg_has_role(session_user, r.oid, 'MEMBER')))
ORDER BY p.polrelid, p.polname";

/// Stored settings that apply to this connection: for all roles or its own
/// (current or session) role, in all databases or this one.
pub(super) const STORED_SETTINGS: &str = "\
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE format('%I', r.rolname) END,
       CASE WHEN s.setdatabase = 0 THEN NULL ELSE format('%I', d.datname) END,
       cfg
FROM pg_db_role_setting s
LEFT JOIN pg_roles r ON r.oid = s.setrole
LEFT JOIN pg_database d ON d.oid = s.setdatabase
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE (s.setdatabase = 0 OR d.datname = current_database())
  AND (s.setrole = 0 OR r.rolname IN (current_user, session_user))
ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3";

/// Every table with the tenant column, whether the role can reach it or
/// not (a view or a function may read it for the role): oid, owner, the
/// column's number, name, and whether the role can reach it (see
/// [`TENANT_TABLES`]). `$1` is the tenant column. Followed by a query.
const TENANT_CTE: &str = "\
tenant AS (
    SELECT c.oid, c.relowner, a.attnum, format('%I.%I', n.nspname, c.relname) AS name,
           has_schema_privilege(n.oid, 'USAGE')
               AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')
                    OR has_table_privilege(c.oid, 'DELETE, TRUNCATE, TRIGGER')
                    OR pg_has_role(c.relowner, 'MEMBER')) AS reachable
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.attname = $1
      AND c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND n.nspname NOT LIKE 'pg\\_temp\\_%'
)";

/// Foreign keys between tenant tables, one of which the role can reach,
/// that do not pair the two tenant columns (at the same position of the
/// key): name, referencing table, referenced table, tenant column.
/// Constraints cloned onto
/// partitions (`conparentid`) are their parent's.
pub(super) fn foreign_keys() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT format('%I', con.conname), tc.name, tr.name, format('%I', $1)
FROM pg_constraint con
JOIN tenant tc ON tc.oid = con.conrelid
JOIN tenant tr ON tr.oid = con.confrelid
WHERE con.contype = 'f'
  AND con.conparentid = 0
  AND (tc.reachable OR tr.reachable)
  AND NOT EXISTS (SELECT 1 FROM generate_subscripts(con.conkey, 1) AS i
                  WHERE con.conkey[i] = tc.attnum AND con.confkey[i] = tr.attnum)
ORDER BY 2, 1"
    )
}

/// Views and materialized views that read a tenant table with someone
/// else's rights, and that the role has a privilege on: one row per view
/// and tenant table read, with name, materialized, owner, the table's oid
/// and name, the owner of the view that reads the table directly (whose
/// rights the policies are applied for), and whether the rows pass
/// through a materialized view (stored, with no policy at all). The dependencies of their
/// rewrite rules are followed recursively:
///
/// * from a view without `security_invoker`, through views without it and
///   through materialized views, but not into a `security_invoker` view,
///   which PostgreSQL always checks as the current user, whoever refers to
///   it;
/// * from a materialized view, through everything: it holds what its last
///   refresh saw.
///
/// A grant on a view is enough, without `USAGE` on its schema: another
/// view may refer to it.
pub(super) fn views() -> String {
    format!(
        "WITH RECURSIVE {TENANT_CTE},
viewers AS (
    SELECT c.oid, c.relkind = 'm' AS materialized,
           COALESCE((SELECT o.option_value::bool FROM pg_options_to_table(c.reloptions) o
                     WHERE o.option_name = 'security_invoker'), false) AS invoker
    FROM pg_class c
    WHERE c.relkind IN ('v', 'm')
),
reads AS (
    SELECT DISTINCT r.ev_class AS viewer, d.refobjid AS rel
    FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
),
reach AS (
    SELECT reads.viewer, reads.rel, v.materialized, reads.viewer AS reader, v.materialized AS stored
    FROM reads JOIN viewers v ON v.oid = reads.viewer
    WHERE v.materialized OR NOT v.invoker
    UNION
    SELECT reach.viewer, reads.rel, reach.materialized, reach.rel, reach.stored OR mid.materialized
    FROM reach
    JOIN viewers mid ON mid.oid = reach.rel
    JOIN reads ON reads.viewer = reach.rel
    WHERE reach.materialized OR mid.materialized OR NOT mid.invoker
)
SELECT DISTINCT format('%I.%I', n.nspname, v.relname), v.relkind = 'm',
       format('%I', pg_get_userbyid(v.relowner)), t.oid::int8, t.name,
       (SELECT relowner::int8 FROM pg_class WHERE oid = reach.reader), reach.stored
FROM pg_class v
JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN reach ON reach.viewer = v.oid
JOIN tenant t ON t.oid = reach.rel
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (has_any_column_privilege(v.oid, 'SELECT, INSERT, UPDATE')
       OR has_table_privilege(v.oid, 'DELETE'))
ORDER BY 1, 5"
    )
}

/// `SECURITY DEFINER` functions and procedures (outside PostgreSQL's
/// schemas and extensions, and not owned by the role itself or a role
/// whose rights it has: those grant nothing more) that the role may run: execute (with `USAGE`
/// on the schema), or set off as a trigger of a table it may write
/// (`EXECUTE` is not checked for triggers). Name, owner oid, owner name,
/// executable, language, body, its `SET search_path` (NULL without one), and
/// the triggers (`name table`) that run it for the role. `$1`: skip
/// the guard function (hardened mode checks it on its own).
pub(super) fn definer_functions() -> String {
    format!(
        "SELECT * FROM (
    SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
           p.proowner::int8, format('%I', pg_get_userbyid(p.proowner)),
           has_schema_privilege(n.oid, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE')
               AS executable,
           l.lanname::text, p.prosrc,
           (SELECT substr(c, 13) FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\\_path=%'),
           ARRAY(SELECT format('%I', tg.tgname) || ' ' || format('%I.%I', tn.nspname, tc.relname)
                 FROM pg_trigger tg
                 JOIN pg_class tc ON tc.oid = tg.tgrelid
                 JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                 WHERE tg.tgfoid = p.oid AND tg.tgenabled <> 'D' AND NOT tg.tgisinternal
                   AND has_schema_privilege(tn.oid, 'USAGE')
                   AND (has_any_column_privilege(tc.oid, 'INSERT, UPDATE')
                        OR has_table_privilege(tc.oid, 'DELETE, TRUNCATE'))
                 ORDER BY 1) AS triggers
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_language l ON l.oid = p.prolang
    WHERE p.prosecdef
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT ($1 AND n.nspname = '{GUARD_SCHEMA}' AND p.proname = 'current_tenant'
               AND p.pronargs = 0)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                        AND d.deptype = 'e')
      AND NOT pg_has_role(current_user, p.proowner, 'USAGE')
) f
WHERE f.executable OR cardinality(f.triggers) > 0
ORDER BY 1"
    )
}

/// Schemas the role may create objects in (temporary schemas aside).
pub(super) const WRITABLE_SCHEMAS: &str = "\
SELECT format('%I', n.nspname)
FROM pg_namespace n
WHERE has_schema_privilege(n.oid, 'CREATE')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
ORDER BY 1";

/// For each role in `$2` (oids) and each tenant table (`$1` is the tenant
/// column) it may use: role oid, table oid, table name, superuser,
/// `BYPASSRLS`, RLS enabled, forced, the role acts as the table's owner.
pub(super) fn subject_tables() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT s.oid, t.oid::int8, t.name, r.rolsuper, r.rolbypassrls,
       c.relrowsecurity, c.relforcerowsecurity, pg_has_role(s.oid::oid, t.relowner, 'USAGE')
FROM unnest($2::int8[]) AS s(oid)
JOIN pg_roles r ON r.oid = s.oid::oid
CROSS JOIN tenant t
JOIN pg_class c ON c.oid = t.oid
WHERE has_table_privilege(s.oid::oid, t.oid, 'SELECT, INSERT, UPDATE, DELETE')
   OR pg_has_role(s.oid::oid, t.relowner, 'USAGE')
ORDER BY 1, 3"
    )
}

/// The policies of the tables `$2` (oids) that apply to each role of `$1`
/// (oids): to `PUBLIC` or to a role whose rights it has. Columns as in
/// [`POLICIES`] after the role oid (the last two are constant).
pub(super) const SUBJECT_POLICIES: &str = "\
SELECT s.oid, p.polrelid::int8, p.polname::text, format('%I', p.polname), p.polpermissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
FROM unnest($1::int8[]) AS s(oid)
JOIN pg_policy p ON p.polrelid::int8 = ANY($2)
WHERE 0::oid = ANY(p.polroles)
   OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid)
              WHERE pg_has_role(s.oid::oid, r.oid, 'USAGE'))
ORDER BY 1, p.polrelid, p.polname";

/// Rules (other than a view's own `_RETURN`) on relations the role may
/// write that read a tenant table: rule, relation, relation owner oid and
/// name, tenant table oid and name. Rule actions run with the rights of
/// the relation's owner.
pub(super) fn rules() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT DISTINCT format('%I', r.rulename), format('%I.%I', n.nspname, c.relname),
       c.relowner::int8, format('%I', pg_get_userbyid(c.relowner)), t.oid::int8, t.name
FROM pg_rewrite r
JOIN pg_class c ON c.oid = r.ev_class
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
JOIN tenant t ON t.oid = d.refobjid
WHERE r.rulename <> '_RETURN'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'INSERT, UPDATE') OR has_table_privilege(c.oid, 'DELETE'))
ORDER BY 2, 1, 6"
    )
}

/// Tables without the tenant column that the role may use and that are
/// inheritance ancestors of a tenant table: parent, tenant tables.
pub(super) fn inheritance_parents() -> String {
    format!(
        "WITH RECURSIVE {TENANT_CTE},
ancestors AS (
    SELECT i.inhparent AS parent, i.inhrelid AS child
    FROM pg_inherits i JOIN tenant t ON t.oid = i.inhrelid
    UNION
    SELECT i.inhparent, a.child FROM ancestors a JOIN pg_inherits i ON i.inhrelid = a.parent
)
SELECT format('%I.%I', n.nspname, c.relname), array_agg(DISTINCT t.name ORDER BY t.name)
FROM ancestors a
JOIN pg_class c ON c.oid = a.parent
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN tenant t ON t.oid = a.child
WHERE NOT EXISTS (SELECT 1 FROM tenant p WHERE p.oid = a.parent)
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'SELECT, UPDATE') OR has_table_privilege(c.oid, 'DELETE'))
GROUP BY n.nspname, c.relname
ORDER BY 1"
    )
}

/// Large objects the role may read or write: how many, the first five.
pub(super) const LARGE_OBJECTS: &str = "\
SELECT count(*), (array_agg(m.oid::text ORDER BY m.oid))[1:5]
FROM pg_largeobject_metadata m
WHERE current_setting('lo_compat_privileges') = 'on'
   OR pg_has_role(m.lomowner, 'USAGE')
   OR EXISTS (SELECT 1 FROM aclexplode(m.lomacl) a
              WHERE a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE'))";

/// Large-object functions granted to the role or a role it inherits from
/// (not to `PUBLIC`, PostgreSQL's default, nor the owner's own entry).
pub(super) const LARGE_OBJECT_GRANTS: &str = "\
SELECT DISTINCT format('%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid))
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL aclexplode(p.proacl) a
WHERE n.nspname = 'pg_catalog'
  AND (p.proname LIKE 'lo\\_%' OR p.proname IN ('loread', 'lowrite'))
  AND a.grantee <> 0 AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
  AND pg_has_role(a.grantee, 'USAGE')
ORDER BY 1";

/// Tenant tables the role can reach whose tenant column has a
/// nondeterministic collation: table, column, collation.
pub(super) fn nondeterministic_columns() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT t.name, format('%I', $1), format('%I.%I', cn.nspname, co.collname)
FROM tenant t
JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = t.attnum
JOIN pg_collation co ON co.oid = a.attcollation
JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE t.reachable AND NOT co.collisdeterministic
ORDER BY 1"
    )
}

/// Unique indexes of tenant tables the role can reach that do not include
/// the tenant column among their key columns, when the role may write one
/// of those (or, for an expression, any column): index, table, definition,
/// tenant column. Indexes of partitions attached to a parent's index are
/// the parent's.
pub(super) fn unique_keys() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT format('%I.%I', n.nspname, ic.relname), t.name, pg_get_indexdef(i.indexrelid), format('%I', $1)
FROM tenant t
JOIN pg_index i ON i.indrelid = t.oid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE t.reachable AND i.indisunique
  AND NOT EXISTS (SELECT 1 FROM generate_series(0, i.indnkeyatts - 1) g WHERE i.indkey[g] = t.attnum)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
  AND EXISTS (SELECT 1 FROM generate_series(0, i.indnkeyatts - 1) g
              WHERE (i.indkey[g] > 0 AND (has_column_privilege(t.oid, i.indkey[g], 'INSERT')
                                          OR has_column_privilege(t.oid, i.indkey[g], 'UPDATE')))
                 OR (i.indkey[g] = 0 AND has_any_column_privilege(t.oid, 'INSERT, UPDATE')))
ORDER BY 2, 1"
    )
}

/// Foreign keys from a table without the tenant column, which the role may
/// use, into a tenant table: constraint, table, referenced table.
pub(super) fn foreign_keys_from_non_tenant() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT format('%I', con.conname), format('%I.%I', n.nspname, c.relname), tr.name
FROM pg_constraint con
JOIN tenant tr ON tr.oid = con.confrelid
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'f'
  AND con.conparentid = 0
  AND NOT EXISTS (SELECT 1 FROM tenant tc WHERE tc.oid = con.conrelid)
  AND has_schema_privilege(n.oid, 'USAGE')
  AND (has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE') OR has_table_privilege(c.oid, 'DELETE'))
ORDER BY 2, 1"
    )
}

/// Tenant tables the role does not own on which it has `REFERENCES` or
/// `TRIGGER`, when it may create (or owns) a table or function to use
/// them with: table, `REFERENCES`, `TRIGGER`.
pub(super) fn references_and_triggers() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT t.name, has_any_column_privilege(t.oid, 'REFERENCES'), has_table_privilege(t.oid, 'TRIGGER')
FROM tenant t
WHERE NOT pg_has_role(t.relowner, 'MEMBER')
  AND (has_any_column_privilege(t.oid, 'REFERENCES') OR has_table_privilege(t.oid, 'TRIGGER'))
  AND (EXISTS (SELECT 1 FROM pg_namespace n
               WHERE has_schema_privilege(n.oid, 'CREATE')
                 AND n.nspname NOT LIKE 'pg\\_temp\\_%'
                 AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%')
       OR EXISTS (SELECT 1 FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace
                  WHERE o.relkind IN ('r', 'p') AND pg_has_role(o.relowner, 'MEMBER')
                    AND n.nspname NOT LIKE 'pg\\_temp\\_%'))
ORDER BY 1"
    )
}

/// Sequences (outside PostgreSQL's schemas and temporary ones) the role
/// may `setval`: `UPDATE` on them, or owns them.
pub(super) const UPDATABLE_SEQUENCES: &str = "\
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND has_schema_privilege(n.oid, 'USAGE')
  AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE') ELSE false END
ORDER BY 1";

/// Settings given when the connection started (`-c` in the start-up
/// `options`): they take precedence over every stored default. Read before
/// the audit's own `SET LOCAL search_path`, which makes that one's source
/// `session`, hence qualified.
pub(super) const PINNED_SETTINGS: &str = "\
SELECT name FROM pg_catalog.pg_settings WHERE source = 'client' ORDER BY 1";

/// The guard function (`$1` is its schema): name, `SECURITY DEFINER`,
/// language, `SET` clause, body, owner, owner is a superuser, the role may
/// execute it.
pub(super) const GUARD_FUNCTION: &str = "\
SELECT format('%I.%I()', n.nspname, p.proname), p.prosecdef, l.lanname::text,
       COALESCE(p.proconfig, '{}'), p.prosrc, format('%I', r.rolname), r.rolsuper,
       has_function_privilege(p.oid, 'EXECUTE')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
JOIN pg_roles r ON r.oid = p.proowner
WHERE n.nspname = $1 AND p.proname = 'current_tenant' AND p.pronargs = 0";

/// The guard's secrets table (`$1` is its schema): name, the privileges
/// the role has on it, owned by the role (or a role it belongs to).
pub(super) const GUARD_SECRETS: &str = "\
SELECT format('%I.%I', n.nspname, c.relname),
       ARRAY(SELECT p.name FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE',
                                             'REFERENCES', 'TRIGGER']) WITH ORDINALITY AS p(name, i)
             WHERE has_table_privilege(c.oid, p.name)
                OR (p.name IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                    AND has_any_column_privilege(c.oid, p.name))
             ORDER BY p.i),
       pg_has_role(current_user, c.relowner, 'MEMBER')
           OR pg_has_role(session_user, c.relowner, 'MEMBER')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = 'secrets' AND c.relkind IN ('r', 'p')";

/// The guard schema (`$1`): name, the role may create in it, owned by the
/// role (or a role it belongs to).
pub(super) const GUARD_SCHEMA_ROW: &str = "\
SELECT format('%I', n.nspname), has_schema_privilege(n.oid, 'CREATE'),
       pg_has_role(current_user, n.nspowner, 'MEMBER')
           OR pg_has_role(session_user, n.nspowner, 'MEMBER')
FROM pg_namespace n
WHERE n.nspname = $1";

/// Objects of the guard schema (`$1`) that the role owns or may act as the
/// owner of: the schema, its tables, the guard function and the `hmac` it
/// calls. `kind name` (as `ALTER … OWNER TO` takes it), owner.
pub(super) const GUARD_OWNED: &str = "\
SELECT o.kind || ' ' || o.name, format('%I', pg_get_userbyid(o.owner))
FROM (
    SELECT 0 AS ord, 'SCHEMA' AS kind, format('%I', n.nspname) AS name, n.nspowner AS owner
    FROM pg_namespace n WHERE n.nspname = $1
    UNION ALL
    SELECT 1, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END,
           format('%I.%I', n.nspname, c.relname), c.relowner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 2, 'FUNCTION',
           format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
           p.proowner
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname IN ('current_tenant', 'hmac') AND p.prokind = 'f'
) o
WHERE pg_has_role(current_user, o.owner, 'MEMBER') OR pg_has_role(session_user, o.owner, 'MEMBER')
ORDER BY o.ord, o.name";
