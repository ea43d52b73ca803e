//! The `TENANT_TESTING_DATABASE_URL` of an existing server, taken apart to build one URL per
//! role and database, and redacted for error messages.

use super::HarnessError;

/// The pieces of a connection URL, to build one per role and database.
#[derive(Debug, Clone)]
pub(super) struct UrlParts {
    pub(super) scheme: String,
    pub(super) admin_userinfo: String,
    pub(super) hostport: String,
    pub(super) query: String,
}

impl UrlParts {
    pub(super) fn parse(url: &str) -> Result<UrlParts, HarnessError> {
        let bad = || HarnessError::BadUrl(redact(url));
        let (scheme, rest) = ["postgres://", "postgresql://"]
            .iter()
            .find_map(|s| url.strip_prefix(s).map(|r| (*s, r)))
            .ok_or_else(bad)?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        if hostport.is_empty() && !query.contains("host=") {
            return Err(bad());
        }
        Ok(UrlParts {
            scheme: scheme.to_owned(),
            admin_userinfo: userinfo.to_owned(),
            hostport: hostport.to_owned(),
            query: query.to_owned(),
        })
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_swap_user_and_database() {
        let u =
            UrlParts::parse("postgres://root:secret@db.example:6543/app?sslmode=disable").unwrap();
        assert_eq!(u.admin_userinfo, "root:secret@");
        assert_eq!(u.hostport, "db.example:6543");
        assert_eq!(u.query, "?sslmode=disable");
        let u = UrlParts::parse("postgresql://h").unwrap();
        assert_eq!((u.admin_userinfo.as_str(), u.hostport.as_str()), ("", "h"));
        assert!(UrlParts::parse("mysql://h/db").is_err());
    }

    #[test]
    fn redaction_hides_the_password() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://***@h/db");
    }
}
