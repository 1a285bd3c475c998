//! The network half of the notifier sandbox (SSRF guard): which hosts and
//! addresses one receiver integration's `http` capability may reach.
//!
//! A destination passes two checks:
//! - its host name is on the integration's allow-list (the hosts its own
//!   URLs name, plus `allowed_hosts`);
//! - every address it is reached at is public, unless an `allowed_networks`
//!   CIDR covers it. Loopback, unspecified, link-local, private, unique-local,
//!   CGNAT, multicast and reserved ranges are refused by default; a cloud
//!   metadata address only opens to a CIDR naming exactly that address.
//!
//! Addresses are checked after resolution, by [`GuardedResolver`], which the
//! HTTP client connects through: the checked addresses are the ones
//! connected to, so a name that re-resolves to a private address between
//! check and connect (DNS rebinding) gains nothing. IP literals skip
//! resolution and are checked by [`NetPolicy::check_url`], which also runs on
//! every redirect hop.
//!
//! Owns no I/O besides the resolver's lookup; never imports notify or config.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use ipnet::IpNet;

/// Host names of cloud metadata services, refused whatever they resolve to.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog"];

/// Why a destination was refused. The text names the host (never the whole
/// URL, which may carry a token) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("scheme `{0}` is not allowed (http and https only)")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error(
        "host `{0}` is not allowed for this receiver (allowed: the hosts of its configured URLs and `allowed_hosts`)"
    )]
    HostNotAllowed(String),
    #[error("host `{0}` is a cloud metadata service")]
    MetadataHost(String),
    #[error("host `{host}` ({ip}) is a {class} address{hint}")]
    Address {
        host: String,
        ip: IpAddr,
        class: AddressClass,
        hint: &'static str,
    },
    #[error("host `{host}` cannot be resolved: {reason}")]
    Resolve { host: String, reason: String },
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

/// The kinds of non-public address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    CloudMetadata,
    Loopback,
    Unspecified,
    LinkLocal,
    Private,
    UniqueLocal,
    SharedCgnat,
    Multicast,
    Reserved,
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CloudMetadata => "cloud metadata",
            Self::Loopback => "loopback",
            Self::Unspecified => "unspecified",
            Self::LinkLocal => "link-local",
            Self::Private => "private",
            Self::UniqueLocal => "unique-local",
            Self::SharedCgnat => "shared (CGNAT)",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        })
    }
}

/// The class of a non-public address; `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    let metadata = [
        Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI...
        Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    ];
    Some(if metadata.contains(&ip) {
        AddressClass::CloudMetadata
    } else if a == 0 {
        // 0.0.0.0 reaches the local host on Linux.
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_private() {
        AddressClass::Private
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::SharedCgnat
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        AddressClass::Reserved
    } else {
        return None;
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [x, y] = [seg[6].to_be_bytes(), seg[7].to_be_bytes()];
        return classify_v4(Ipv4Addr::new(x[0], x[1], y[0], y[1]));
    }
    Some(
        if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            AddressClass::CloudMetadata
        } else if ip.is_unspecified() {
            AddressClass::Unspecified
        } else if ip.is_loopback() {
            AddressClass::Loopback
        } else if seg[0] & 0xffc0 == 0xfe80 {
            AddressClass::LinkLocal
        } else if seg[0] & 0xffc0 == 0xfec0 {
            // Deprecated site-local: private in practice.
            AddressClass::Private
        } else if seg[0] & 0xfe00 == 0xfc00 {
            AddressClass::UniqueLocal
        } else if ip.is_multicast() {
            AddressClass::Multicast
        } else if (seg[0] == 0x2001 && seg[1] == 0xdb8) || seg[..6] == [0; 6] {
            // Documentation, and the deprecated IPv4-compatible ::a.b.c.d.
            AddressClass::Reserved
        } else {
            return None;
        },
    )
}

/// One allowed host: an exact name (case-insensitive) or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    fn parse(s: &str) -> Self {
        let s = normalize_host(s);
        match s.strip_prefix("*.") {
            Some(suffix) => Self::Suffix(format!(".{suffix}")),
            None => Self::Exact(s),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => h == host,
            Self::Suffix(s) => host.ends_with(s.as_str()) && host.len() > s.len(),
        }
    }
}

/// Lower case, without a trailing dot or IPv6 brackets.
fn normalize_host(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The destinations one integration may reach.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    hosts: Vec<HostPattern>,
    networks: Vec<IpNet>,
    /// Hosts the live notifier version's `NAME.toml` allows
    /// (`allowed_hosts`), set before each delivery: they follow the plugin
    /// version, not the config.
    plugin_hosts: Arc<arc_swap::ArcSwap<Vec<HostPattern>>>,
}

impl NetPolicy {
    /// A policy allowing the named hosts (exact names, IP literals or
    /// `*.suffix`) at public addresses, plus any address inside `networks`.
    pub fn new<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>, networks: Vec<IpNet>) -> Self {
        let mut patterns: Vec<HostPattern> = Vec::new();
        for h in hosts {
            let p = HostPattern::parse(h.as_ref());
            if !patterns.contains(&p) {
                patterns.push(p);
            }
        }
        Self {
            hosts: patterns,
            networks,
            plugin_hosts: Arc::default(),
        }
    }

    /// Replaces the hosts the plugin version itself allows (its manifest's
    /// `allowed_hosts`); the same address checks apply to them.
    pub fn set_plugin_hosts(&self, hosts: &[String]) {
        let current = self.plugin_hosts.load();
        let patterns: Vec<HostPattern> = hosts.iter().map(|h| HostPattern::parse(h)).collect();
        if **current != patterns {
            self.plugin_hosts.store(Arc::new(patterns));
        }
    }

    /// Whether `host` (a name or an IP literal) is on the allow-list.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        let host = normalize_host(host);
        if METADATA_HOSTS.contains(&host.as_str()) {
            return Err(Refusal::MetadataHost(host));
        }
        if self.hosts.iter().any(|p| p.matches(&host))
            || self.plugin_hosts.load().iter().any(|p| p.matches(&host))
        {
            Ok(())
        } else {
            Err(Refusal::HostNotAllowed(host))
        }
    }

    /// Whether `ip`, the address `host` is reached at, may be connected to.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let ip = ip.to_canonical();
        let allowed = self.networks.iter().any(|n| {
            n.contains(&ip)
                && (class != AddressClass::CloudMetadata || n.prefix_len() == n.max_prefix_len())
        });
        if allowed {
            return Ok(());
        }
        let hint = if class == AddressClass::CloudMetadata {
            " (open it only with an `allowed_networks` entry naming exactly this address)"
        } else {
            " (allow it with `allowed_networks`)"
        };
        Err(Refusal::Address {
            host: normalize_host(host),
            ip,
            class,
            hint,
        })
    }

    /// Checks a URL before a request or a redirect: scheme, host on the
    /// allow-list, and, for an IP literal, the address (names are checked
    /// at resolution).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme(url.scheme().to_string()));
        }
        let host = url.host_str().ok_or(Refusal::NoHost)?;
        self.check_host(host)?;
        match normalize_host(host).parse::<IpAddr>() {
            Ok(ip) => self.check_ip(host, ip),
            // A name: checked when it resolves.
            Err(_) => Ok(()),
        }
    }

    /// Resolves `host` and keeps the addresses this policy allows; refuses
    /// when none is left.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, Refusal> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Refusal::Resolve {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .collect();
        let mut first_refusal = None;
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|a| match self.check_ip(host, a.ip()) {
                Ok(()) => true,
                Err(r) => {
                    first_refusal.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(r)) => Err(r),
            (true, None) => Err(Refusal::Resolve {
                host: host.to_string(),
                reason: "no address".into(),
            }),
        }
    }
}

/// A DNS resolver for the capability's HTTP client (a `tower` service, as
/// hyper-util's connector takes one) that returns only the addresses the
/// policy allows, so the client connects to exactly what was checked.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<NetPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<NetPolicy>) -> Self {
        Self { policy }
    }
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, Refusal>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Refusal;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str();
            policy.check_host(host)?;
            Ok(policy.resolve(host).await?.into_iter())
        })
    }
}

/// The refusal somewhere in an error's source chain (the client wraps the
/// resolver's errors).
pub fn find_refusal(e: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

/// A URL as logs may show it: scheme, host and port; no credentials, path
/// or query (which may carry tokens).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "<unparsable url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_hosts_extend_the_allow_list_and_follow_the_version() {
        let p = NetPolicy::new(["hooks.example.com"], vec![]);
        assert!(p.check_host("api.vendor.io").is_err());
        p.set_plugin_hosts(&["*.vendor.io".to_string()]);
        assert!(p.check_host("api.vendor.io").is_ok());
        assert!(p.check_host("hooks.example.com").is_ok());
        assert!(p.check_host("metadata.google.internal").is_err());
        // A private address stays refused for a plugin host too.
        assert!(
            p.check_ip("api.vendor.io", "10.0.0.1".parse().unwrap())
                .is_err()
        );
        // The next version without the manifest entry loses it.
        p.set_plugin_hosts(&[]);
        assert!(p.check_host("api.vendor.io").is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn address_classes() {
        for (addr, class) in [
            ("127.0.0.1", Some(AddressClass::Loopback)),
            ("127.8.9.10", Some(AddressClass::Loopback)),
            ("0.0.0.0", Some(AddressClass::Unspecified)),
            ("10.1.2.3", Some(AddressClass::Private)),
            ("172.16.0.1", Some(AddressClass::Private)),
            ("172.31.255.255", Some(AddressClass::Private)),
            ("192.168.1.1", Some(AddressClass::Private)),
            ("100.64.0.1", Some(AddressClass::SharedCgnat)),
            ("100.127.255.255", Some(AddressClass::SharedCgnat)),
            ("169.254.1.1", Some(AddressClass::LinkLocal)),
            ("169.254.169.254", Some(AddressClass::CloudMetadata)),
            ("100.100.100.200", Some(AddressClass::CloudMetadata)),
            ("224.0.0.1", Some(AddressClass::Multicast)),
            ("255.255.255.255", Some(AddressClass::Reserved)),
            ("::1", Some(AddressClass::Loopback)),
            ("::", Some(AddressClass::Unspecified)),
            ("fe80::1", Some(AddressClass::LinkLocal)),
            ("fd12:3456::1", Some(AddressClass::UniqueLocal)),
            ("fd00:ec2::254", Some(AddressClass::CloudMetadata)),
            ("::ffff:127.0.0.1", Some(AddressClass::Loopback)),
            ("::ffff:169.254.169.254", Some(AddressClass::CloudMetadata)),
            ("64:ff9b::a00:1", Some(AddressClass::Private)),
            ("ff02::1", Some(AddressClass::Multicast)),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:4700::1111", None),
        ] {
            assert_eq!(classify(ip(addr)), class, "{addr}");
        }
    }

    #[test]
    fn hosts_must_be_listed() {
        let p = NetPolicy::new(["hooks.slack.com", "*.example.com", "[::1]"], vec![]);
        assert!(p.check_host("HOOKS.slack.com.").is_ok());
        assert!(p.check_host("a.example.com").is_ok());
        assert!(p.check_host("a.b.example.com").is_ok());
        assert!(p.check_host("::1").is_ok());
        for h in ["example.com", "evil.com", "hooks.slack.com.evil.com"] {
            assert_eq!(
                p.check_host(h),
                Err(Refusal::HostNotAllowed(h.into())),
                "{h}"
            );
        }
        // Metadata names are refused even when listed.
        let p = NetPolicy::new(["metadata.google.internal"], vec![]);
        assert!(matches!(
            p.check_host("metadata.google.internal"),
            Err(Refusal::MetadataHost(_))
        ));
    }

    #[test]
    fn private_addresses_need_an_allowed_network() {
        let none = NetPolicy::new(["h"], vec![]);
        let err = none.check_ip("h", ip("10.0.0.5")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `h` (10.0.0.5) is a private address (allow it with `allowed_networks`)"
        );
        assert!(none.check_ip("h", ip("93.184.215.14")).is_ok());

        let lan = NetPolicy::new(
            ["h"],
            vec!["10.0.0.0/8".parse().unwrap(), "0.0.0.0/0".parse().unwrap()],
        );
        assert!(lan.check_ip("h", ip("10.0.0.5")).is_ok());
        assert!(lan.check_ip("h", ip("::ffff:10.0.0.5")).is_ok());
        // A broad network never opens a metadata address...
        let err = lan.check_ip("h", ip("169.254.169.254")).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::Address {
                    class: AddressClass::CloudMetadata,
                    ..
                }
            ),
            "{err}"
        );
        // ...only one naming exactly it.
        let exact = NetPolicy::new(["h"], vec!["169.254.169.254/32".parse().unwrap()]);
        assert!(exact.check_ip("h", ip("169.254.169.254")).is_ok());
    }

    #[test]
    fn urls_are_checked_by_scheme_host_and_literal_address() {
        let p = NetPolicy::new(["127.0.0.1", "api.example.com"], vec![]);
        let url = |s: &str| reqwest::Url::parse(s).expect("test url");
        assert!(matches!(
            p.check_url(&url("ftp://api.example.com/")),
            Err(Refusal::Scheme(_))
        ));
        assert!(
            p.check_url(&url("https://api.example.com/x?token=1"))
                .is_ok()
        );
        assert!(matches!(
            p.check_url(&url("http://127.0.0.1:9/hook")),
            Err(Refusal::Address {
                class: AddressClass::Loopback,
                ..
            })
        ));
        assert!(matches!(
            p.check_url(&url("http://169.254.169.254/latest/meta-data/")),
            Err(Refusal::HostNotAllowed(_))
        ));
        let open = NetPolicy::new(["127.0.0.1"], vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(open.check_url(&url("http://127.0.0.1:9/hook")).is_ok());
    }

    #[tokio::test]
    async fn resolution_keeps_only_allowed_addresses() {
        let p = NetPolicy::new(["localhost"], vec![]);
        let err = p.resolve("localhost").await.unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::Address {
                    class: AddressClass::Loopback,
                    ..
                }
            ),
            "{err}"
        );
        let p = NetPolicy::new(["localhost"], vec!["127.0.0.0/8".parse().unwrap()]);
        let addrs = p.resolve("localhost").await.expect("allowed");
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_ipv4() && a.ip().is_loopback())
        );
    }

    #[test]
    fn redacted_urls_keep_only_the_origin() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T/B/secret?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@10.0.0.1:8080/p"),
            "http://10.0.0.1:8080/…"
        );
    }
}
