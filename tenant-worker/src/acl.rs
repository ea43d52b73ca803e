//! Redis ACL rules for the relay's and the consumers' users.

/// The Redis ACL rules (`ACL SETUSER <user> on ><password> <rules…>`) of
/// the relay's user: `XADD` to the tenant streams and `SADD` to the set of
/// tenants under `prefix`, nothing else.
///
/// ```
/// let rules = tenant_worker::relay_acl("tenant:events");
/// assert!(rules.contains(&"+xadd".to_owned()));
/// assert!(rules.contains(&"~tenant:events:t:*".to_owned()));
/// ```
pub fn relay_acl(prefix: &str) -> Vec<String> {
    let mut rules = base();
    rules.extend(["+xadd", "+sadd"].map(String::from));
    rules.push(format!("~{prefix}:t:*"));
    rules.push(format!("~{prefix}:tenants"));
    rules
}

/// The Redis ACL rules of a consumer's ([`Worker`](super::Worker)) user:
/// read the set of tenants, create its group on a tenant stream, read,
/// acknowledge and reclaim there (`XREADGROUP`, `XACK`, `XAUTOCLAIM`), and
/// `XADD` only to the dead-letter stream (a Redis 7 selector). It cannot
/// write an entry into a tenant stream, delete one, or move a group's
/// position (`XGROUP SETID`).
///
/// ```
/// let rules = tenant_worker::consumer_acl("tenant:events");
/// assert!(!rules.contains(&"+xadd".to_owned()));
/// assert_eq!(rules.last().unwrap(), "(+xadd ~tenant:events:dead)");
/// ```
pub fn consumer_acl(prefix: &str) -> Vec<String> {
    let mut rules = base();
    rules.extend(
        [
            "+smembers",
            "+xgroup|create",
            "+xreadgroup",
            "+xack",
            "+xautoclaim",
        ]
        .map(String::from),
    );
    rules.push(format!("~{prefix}:t:*"));
    rules.push(format!("~{prefix}:tenants"));
    rules.push(format!("(+xadd ~{prefix}:dead)"));
    rules
}

/// No key, no channel, no command but `PING` (a client library's
/// `CLIENT SETINFO` on connecting may be refused: it ignores that).
fn base() -> Vec<String> {
    ["resetkeys", "resetchannels", "-@all", "+ping"]
        .map(String::from)
        .to_vec()
}
