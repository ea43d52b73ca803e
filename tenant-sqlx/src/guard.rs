//! Hardened mode: a tenant setting that the application's own SQL cannot
//! forge.
//!
//! In the ordinary mode the policies read `app.current_tenant`, and any SQL
//! the application role runs inside a transaction can change it
//! (`set_config('app.current_tenant', 'other', true)`): one injectable
//! string and the compile-time guarantees no longer matter. In hardened
//! mode the policies read `(SELECT tenant_guard.current_tenant())` instead,
//! a `SECURITY DEFINER` function that returns the tenant only when the
//! transaction also carries a proof, `app.tenant_proof`, equal to
//! `<not_after>.<hex(hmac_sha256(secret, "<not_after>.<tenant>"))>` for one
//! of the secrets in `tenant_guard.secrets`, where `not_after` (a Unix
//! time) has not passed when the transaction starts. The [`TenantPool`](crate::TenantPool) holds the
//! secret (from configuration, outside the database) and adds the proof to
//! its begin message; the application role can neither read the secrets
//! table nor replace the function, so a forged setting reads no rows.
//!
//! * **Replay.** A proof opens one tenant for a short time only
//!   ([`DEFAULT_PROOF_TTL`], ten seconds, set with
//!   [`TenantPoolBuilder::proof_ttl`](crate::TenantPoolBuilder::proof_ttl);
//!   the function refuses more than [`MAX_PROOF_TTL`]), so one copied out
//!   of a log or a crash dump is worthless soon after. It is also kept out
//!   of sight: a hardened pool turns off sqlx's statement logging (whose
//!   slow-statement warning prints the full text of the begin message), the
//!   audit requires `track_activities = off` for the role (no begin message
//!   in `pg_stat_activity`) and refuses `pg_stat_statements` recording
//!   utility statements, and no public function computes a proof. The
//!   expiry is checked against the server's clock: the pool's clock may be
//!   behind it by less than the time to live.
//! * **Rotation.** Every secret in the table is valid: add the new one
//!   ([`Guard::add_secret_sql`]), move the pools to it, then remove the old
//!   one ([`Guard::remove_secret_sql`]). No downtime.
//! * **Cost.** The function is plpgsql with fully qualified names and no
//!   `SET` clause (a `SET search_path` clause costs about a quarter of the
//!   throughput; a SQL-language function is re-planned every time), and
//!   the policies call it in a sub-select, so it runs once per statement.
//!
//! ```
//! use tenant_sqlx::guard::Guard;
//! use tenant_sqlx::rls::RlsPolicy;
//!
//! let guard = Guard::new().owner("tenant_guard").grant_to("app");
//! let setup = guard.sql(); // run once, by a role that may create extensions
//! assert!(setup.contains("SECURITY DEFINER"));
//! let secret = guard.add_secret_sql("2026-12", b"a secret of at least 32 bytes....");
//! let policy = RlsPolicy::new("messages", "tenant_id").hardened(true).grant_to("app");
//! assert!(policy.condition().contains("tenant_guard.current_tenant()"));
//! # let _ = (setup, secret);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rls::{quote_ident, quote_literal};
use crate::SettingNames;

/// The schema that holds the guard's table and function.
pub const GUARD_SCHEMA: &str = "tenant_guard";

/// The setting that carries the proof.
pub const PROOF_SETTING: &str = "app.tenant_proof";

/// What the policies call, in a sub-select.
pub const GUARD_FUNCTION: &str = "tenant_guard.current_tenant()";

/// The shortest secret a pool accepts.
pub const MIN_SECRET_LEN: usize = 32;

/// How long a proof made for one transaction stays valid, by default:
/// a proof copied out of a log or a crash dump opens nothing after this.
/// Set with [`TenantPoolBuilder::proof_ttl`](crate::TenantPoolBuilder::proof_ttl).
pub const DEFAULT_PROOF_TTL: Duration = Duration::from_secs(10);

/// The longest validity the guard function accepts, whatever the pool
/// asks for.
pub const MAX_PROOF_TTL: Duration = Duration::from_secs(300);

/// The SQL that installs the guard: schema, secrets table, function and
/// grants. Run by the role that owns the tables (or a superuser), once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    owner: Option<String>,
    grantees: Vec<String>,
    tenant_setting: String,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new()
    }
}

impl Guard {
    /// The guard for the default tenant setting (`app.current_tenant`).
    pub fn new() -> Self {
        Guard {
            owner: None,
            grantees: Vec::new(),
            tenant_setting: SettingNames::default().tenant().to_owned(),
        }
    }

    /// Reads the tenant setting named in `settings`.
    pub fn setting_names(mut self, settings: &SettingNames) -> Self {
        self.tenant_setting = settings.tenant().to_owned();
        self
    }

    /// Gives the schema, table and function to `role` (which must exist;
    /// best a `NOLOGIN` role of its own). Without it they belong to the role
    /// that runs the script. Either way it must not be the application role
    /// nor one it can become.
    pub fn owner(mut self, role: impl Into<String>) -> Self {
        self.owner = Some(role.into());
        self
    }

    /// Lets `role` call the function: the application role, and the role
    /// that creates the policies (PostgreSQL checks that it may).
    pub fn grant_to(mut self, role: impl Into<String>) -> Self {
        self.grantees.push(role.into());
        self
    }

    /// The function's body, exactly as installed: the audit compares the
    /// installed body with it, so a changed function is reported.
    pub fn function_body(&self) -> String {
        // Every name is schema-qualified and `=` is `OPERATOR(pg_catalog.=)`
        // (NULLIF would look `=` up in the caller's search path): the
        // function is SECURITY DEFINER without a SET clause, so it must not
        // depend on the search path at all.
        format!(
            "
DECLARE
    tenant pg_catalog.text := pg_catalog.current_setting({tenant}, true);
    proof pg_catalog.text := pg_catalog.current_setting({proof}, true);
    not_after pg_catalog.text;
    now pg_catalog.float8;
BEGIN
    IF tenant IS NULL OR proof IS NULL OR tenant OPERATOR(pg_catalog.=) '' THEN
        RETURN NULL;
    END IF;
    not_after := pg_catalog.split_part(proof, '.', 1);
    IF NOT EXISTS (
        SELECT 1 FROM {schema}.secrets s
        WHERE pg_catalog.encode(
                  {schema}.hmac(
                      pg_catalog.convert_to(pg_catalog.concat(not_after, '.', tenant), 'UTF8'),
                      s.secret, 'sha256'),
                  'hex') OPERATOR(pg_catalog.=) pg_catalog.split_part(proof, '.', 2)
    ) THEN
        RETURN NULL;
    END IF;
    now := pg_catalog.date_part('epoch', pg_catalog.transaction_timestamp());
    IF (CAST(not_after AS pg_catalog.float8) OPERATOR(pg_catalog.<) now)
       OR (CAST(not_after AS pg_catalog.float8)
           OPERATOR(pg_catalog.>) (now OPERATOR(pg_catalog.+) {max_ttl})) THEN
        RETURN NULL;
    END IF;
    RETURN tenant;
END
",
            tenant = quote_literal(&self.tenant_setting),
            proof = quote_literal(PROOF_SETTING),
            schema = quote_ident(GUARD_SCHEMA),
            max_ttl = MAX_PROOF_TTL.as_secs(),
        )
    }

    /// The statements, in order.
    pub fn statements(&self) -> Vec<String> {
        let schema = quote_ident(GUARD_SCHEMA);
        let mut statements = vec![
            format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
            format!("REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"),
            format!("CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA {schema}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {schema}.secrets \
                 (id text PRIMARY KEY, secret bytea NOT NULL, \
                  added timestamptz NOT NULL DEFAULT now())"
            ),
            format!("REVOKE ALL ON {schema}.secrets FROM PUBLIC"),
            format!(
                "CREATE OR REPLACE FUNCTION {schema}.current_tenant() RETURNS text \
                 LANGUAGE plpgsql STABLE SECURITY DEFINER AS {body}",
                body = dollar_quote(&self.function_body())
            ),
            format!("REVOKE ALL ON FUNCTION {schema}.current_tenant() FROM PUBLIC"),
        ];
        if let Some(owner) = &self.owner {
            let owner = quote_ident(owner);
            statements.push(format!("ALTER SCHEMA {schema} OWNER TO {owner}"));
            statements.push(format!("ALTER TABLE {schema}.secrets OWNER TO {owner}"));
            statements.push(format!(
                "ALTER FUNCTION {schema}.current_tenant() OWNER TO {owner}"
            ));
        }
        for role in &self.grantees {
            let role = quote_ident(role);
            statements.push(format!("GRANT USAGE ON SCHEMA {schema} TO {role}"));
            statements.push(format!(
                "GRANT EXECUTE ON FUNCTION {schema}.current_tenant() TO {role}"
            ));
        }
        statements
    }

    /// All [`statements`](Self::statements) as one script.
    pub fn sql(&self) -> String {
        self.statements()
            .into_iter()
            .map(|statement| statement + ";\n")
            .collect()
    }

    /// Adds a secret (run by the guard's owner or a superuser). Every secret
    /// in the table is accepted, so adding one starts a rotation.
    pub fn add_secret_sql(&self, id: &str, secret: &[u8]) -> String {
        format!(
            "INSERT INTO {}.secrets (id, secret) VALUES ({}, '\\x{}'::bytea)",
            quote_ident(GUARD_SCHEMA),
            quote_literal(id),
            hex(secret)
        )
    }

    /// Removes a secret: ends a rotation.
    pub fn remove_secret_sql(&self, id: &str) -> String {
        format!(
            "DELETE FROM {}.secrets WHERE id = {}",
            quote_ident(GUARD_SCHEMA),
            quote_literal(id)
        )
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// `$tenant_guard$…$tenant_guard$`: the body contains no such tag.
fn dollar_quote(body: &str) -> String {
    format!("$tenant_guard${body}$tenant_guard$")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret a hardened pool signs with. `Debug` does not show it.
#[derive(Clone)]
pub struct GuardSecret {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for GuardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GuardSecret(..)")
    }
}

impl GuardSecret {
    /// A secret of at least [`MIN_SECRET_LEN`] bytes, the same bytes as one
    /// row of `tenant_guard.secrets`.
    pub fn new(secret: &[u8]) -> Result<Self, crate::Error> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(crate::Error::GuardSecretTooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| crate::Error::GuardSecretTooShort { len: secret.len() })?;
        Ok(GuardSecret { mac })
    }

    /// The proof for one transaction of `tenant`: `<not_after>.<hmac>`,
    /// where `not_after` is a Unix time `ttl` from now and `hmac` is
    /// `hex(hmac_sha256(secret, "<not_after>.<tenant>"))`. The guard function
    /// accepts it only until `not_after` (by the server's clock, at the
    /// start of the transaction), so a proof seen once is worthless soon
    /// after. Not public: no code outside the pool computes a proof.
    pub(crate) fn proof(&self, tenant: &str, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.proof_until((now + ttl).as_secs(), tenant)
    }

    fn proof_until(&self, not_after: u64, tenant: &str) -> String {
        let not_after = not_after.to_string();
        let mut mac = self.mac.clone();
        mac.update(not_after.as_bytes());
        mac.update(b".");
        mac.update(tenant.as_bytes());
        format!("{not_after}.{}", hex(&mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_is_its_expiry_and_an_hmac_sha256_over_expiry_and_tenant() {
        // Computed independently:
        // python3: hmac.new(bytes([0x0b] * 32), b"1800000000.acme", hashlib.sha256).hexdigest()
        let secret = GuardSecret::new(&[0x0b; 32]).unwrap();
        let proof = secret.proof_until(1_800_000_000, "acme");
        assert_eq!(
            proof,
            "1800000000.72a6a1695bf5ea0ff351d54f1ebae3e453a2b81387bbf99d9740b1cff6300760"
        );
        assert_ne!(proof, secret.proof_until(1_800_000_000, "acme2"));
        assert_ne!(proof, secret.proof_until(1_800_000_001, "acme"));
        assert_eq!(proof, secret.proof_until(1_800_000_000, "acme"));
        let fresh = secret.proof("acme", DEFAULT_PROOF_TTL);
        let (until, _) = fresh.split_once('.').unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let until: u64 = until.parse().unwrap();
        assert!((now + 9..=now + 11).contains(&until), "{fresh}");
        assert!(GuardSecret::new(b"short").is_err());
        assert_eq!(format!("{secret:?}"), "GuardSecret(..)");
    }

    #[test]
    fn script_installs_a_qualified_security_definer_function() {
        let sql = Guard::new().owner("tenant_guard").grant_to("app").sql();
        assert!(sql.contains("LANGUAGE plpgsql STABLE SECURITY DEFINER"));
        assert!(!sql.contains("SET search_path"));
        assert!(sql.contains("REVOKE ALL ON \"tenant_guard\".secrets FROM PUBLIC"));
        assert!(
            sql.contains("GRANT EXECUTE ON FUNCTION \"tenant_guard\".current_tenant() TO \"app\"")
        );
        assert!(sql.contains("OPERATOR(pg_catalog.=) pg_catalog.split_part(proof"));
        assert!(sql.contains("pg_catalog.transaction_timestamp()"));
    }
}
