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
pub(super) const POLICIES: &str = "\
SELECT p.polrelid::int8, p.polname::text, format('%I', p.polname), p.polpermissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
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
/// else's rights, and that the role has a privilege on: name,
/// materialized, owner, the tenant tables read. The dependencies of their
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
    SELECT reads.viewer, reads.rel, v.materialized
    FROM reads JOIN viewers v ON v.oid = reads.viewer
    WHERE v.materialized OR NOT v.invoker
    UNION
    SELECT reach.viewer, reads.rel, reach.materialized
    FROM reach
    JOIN viewers mid ON mid.oid = reach.rel
    JOIN reads ON reads.viewer = reach.rel
    WHERE reach.materialized OR mid.materialized OR NOT mid.invoker
)
SELECT format('%I.%I', n.nspname, v.relname), v.relkind = 'm',
       format('%I', pg_get_userbyid(v.relowner)),
       array_agg(DISTINCT t.name ORDER BY t.name)
FROM pg_class v
JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN reach ON reach.viewer = v.oid
JOIN tenant t ON t.oid = reach.rel
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (has_any_column_privilege(v.oid, 'SELECT, INSERT, UPDATE')
       OR has_table_privilege(v.oid, 'DELETE'))
GROUP BY v.oid, n.nspname, v.relname, v.relkind, v.relowner
ORDER BY 1"
    )
}

/// `SECURITY DEFINER` functions and procedures the role may execute
/// (outside PostgreSQL's schemas and extensions), with an owner that
/// escapes row-level security: name, owner, superuser, `BYPASSRLS`, the
/// first tenant table the owner owns (or may act as the owner of). `$2`:
/// skip the guard function (hardened mode checks it on its own).
pub(super) fn definer_functions() -> String {
    format!(
        "WITH {TENANT_CTE}
SELECT * FROM (
    SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
           format('%I', r.rolname), r.rolsuper, r.rolbypassrls,
           (SELECT t.name FROM tenant t WHERE pg_has_role(p.proowner, t.relowner, 'USAGE')
            ORDER BY t.name LIMIT 1) AS owns
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_roles r ON r.oid = p.proowner
    WHERE p.prosecdef
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT ($2 AND n.nspname = '{GUARD_SCHEMA}' AND p.proname = 'current_tenant'
               AND p.pronargs = 0)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                        AND d.deptype = 'e')
      AND has_schema_privilege(n.oid, 'USAGE')
      AND has_function_privilege(p.oid, 'EXECUTE')
) f
WHERE f.rolsuper OR f.rolbypassrls OR f.owns IS NOT NULL
ORDER BY 1"
    )
}

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
