//! The tenant from the request's host: `acme.example.com` is `acme`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ::http::header::{HeaderMap, HeaderName, HOST};
use ::http::Extensions;

use super::error::EdgeError;
use super::peer_addr;
use crate::error::ContextError;
use crate::id::TenantId;

const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A network of trusted proxies, such as `10.0.0.0/8`, `127.0.0.1` or
/// `fd00::/8`.
///
/// ```
/// use tenant_core::edge::ProxyNet;
/// let net: ProxyNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<ProxyNet>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

/// A [`ProxyNet`] that does not parse: not an address, or a prefix longer
/// than the address.
///
/// ```
/// assert!("example.com".parse::<tenant_core::edge::ProxyNet>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or network (such as 10.0.0.0/8)")]
pub struct ProxyNetError(String);

impl ProxyNet {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    if net[..full] != ip[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xff_u8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

impl FromStr for ProxyNet {
    type Err = ProxyNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ProxyNetError(s.chars().take(64).collect());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(err)?,
            None => max,
        };
        Ok(ProxyNet { addr, prefix })
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The tenant as the subdomain of a base domain: with base `example.com`,
/// the host `acme.example.com` names the tenant `acme`.
///
/// * The host is `Host`, or `X-Forwarded-Host` when the peer
///   ([`PeerAddr`](super::PeerAddr), or axum's `ConnectInfo`) is in a
///   [trusted proxy](Self::trust_proxy) network. From any other peer
///   (or an unknown one), `X-Forwarded-Host` is
///   `400 FORWARDED_HOST_UNTRUSTED`, never silently used or ignored.
/// * One spelling, as for every identifier: upper case, an IDN (an `xn--`
///   label or non-ASCII bytes), a trailing dot, a nested subdomain
///   (`a.b.example.com`), a byte other than a DNS letter, digit or `-`, or a
///   port that is not [allowed](Self::allow_port) is `400 HOST_INVALID`. A subdomain that is not a valid tenant id
///   (`default`...) is `400 TENANT_INVALID`.
/// * A host outside the base domain, or the base domain itself, names no
///   tenant (the next source may).
///
/// ```
/// use tenant_core::edge::{HostSource, Resolver};
///
/// let resolver = Resolver::new().host(HostSource::new("example.com").allow_port(8443));
/// let host = |h: &str| http::Request::builder().header("host", h).body(()).unwrap();
/// let tenant = |h: &str| resolver.resolve(&host(h)).map(|r| r.raw().raw_tenant().map(str::to_owned));
///
/// assert_eq!(tenant("acme.example.com").unwrap().as_deref(), Some("acme"));
/// assert_eq!(tenant("acme.example.com:8443").unwrap().as_deref(), Some("acme"));
/// assert_eq!(tenant("example.com").unwrap(), None);
/// assert_eq!(tenant("ACME.example.com").unwrap_err().code(), "HOST_INVALID");
/// assert_eq!(tenant("acme.example.com:8080").unwrap_err().code(), "HOST_INVALID");
/// ```
#[derive(Debug, Clone)]
pub struct HostSource {
    base: String,
    ports: Vec<u16>,
    proxies: Vec<ProxyNet>,
}

impl HostSource {
    /// Tenants are the subdomains of `base` (such as `example.com`; written
    /// in lower case, without a leading dot).
    pub fn new(base: impl Into<String>) -> Self {
        let base: String = base.into();
        HostSource {
            base: base.trim_start_matches('.').to_ascii_lowercase(),
            ports: Vec::new(),
            proxies: Vec::new(),
        }
    }

    /// Accepts hosts with this port (`acme.example.com:8443`). Without
    /// it, a host with a port is `HOST_INVALID`.
    pub fn allow_port(mut self, port: u16) -> Self {
        self.ports.push(port);
        self
    }

    /// Trusts `X-Forwarded-Host` from peers in `net`.
    pub fn trust_proxy(mut self, net: ProxyNet) -> Self {
        self.proxies.push(net);
        self
    }

    fn trusts(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.proxies.iter().any(|n| n.contains(p.ip())))
    }

    /// The tenant the request's host names, if any.
    pub(crate) fn tenant(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Option<String>, EdgeError> {
        let (name, value) = match single(headers, &FORWARDED_HOST)? {
            Some(forwarded) => {
                if !self.trusts(peer_addr(extensions)) {
                    return Err(EdgeError::ForwardedHostUntrusted);
                }
                (FORWARDED_HOST, forwarded)
            }
            None => match single(headers, &HOST)? {
                Some(host) => (HOST, host),
                None => return Ok(None),
            },
        };
        let host = value.to_str().map_err(|_| {
            EdgeError::host("is not ASCII; internationalised names never name a tenant")
        })?;
        if host.contains(',') {
            return Err(ContextError::HeaderRepeated {
                header: name.as_str().to_owned().into(),
            }
            .into());
        }
        self.tenant_of(host)
    }

    fn tenant_of(&self, host: &str) -> Result<Option<String>, EdgeError> {
        if host.starts_with('[') {
            // An IPv6 literal names no tenant.
            return Ok(None);
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) => {
                let allowed = port
                    .parse::<u16>()
                    .is_ok_and(|p| self.ports.contains(&p) && port.len() <= 5);
                if !allowed {
                    return Err(EdgeError::host(
                        "has a port this service does not accept; send the host without a port",
                    ));
                }
                name
            }
            None => host,
        };
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(EdgeError::host(
                "has upper-case letters; hosts are written in lower case",
            ));
        }
        if name.ends_with('.') {
            return Err(EdgeError::host("ends with a dot"));
        }
        let Some(sub) = name
            .strip_suffix(self.base.as_str())
            .and_then(|s| s.strip_suffix('.'))
        else {
            return Ok(None);
        };
        if sub.split('.').any(|label| label.starts_with("xn--")) {
            return Err(EdgeError::host(
                "is an internationalised name (`xn--`); such names never name a tenant",
            ));
        }
        if sub.is_empty() || sub.contains('.') {
            return Err(EdgeError::host(
                "must be exactly one label in front of the base domain",
            ));
        }
        if !sub
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(EdgeError::host(
                "is not a DNS name: letters, digits and `-` only",
            ));
        }
        TenantId::parse(sub).map_err(ContextError::TenantInvalid)?;
        Ok(Some(sub.to_owned()))
    }
}

fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h ::http::HeaderValue>, EdgeError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ContextError::HeaderRepeated {
            header: name.as_str().to_owned().into(),
        }
        .into());
    }
    Ok(first)
}
