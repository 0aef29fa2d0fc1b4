//! The SSRF guard for outgoing webhooks. A customer's webhook URL must not reach into our own
//! network: loopback, private (RFC 1918), link-local, multicast, unique-local and the other
//! non-public addresses (see [`forbidden_class`], which also reads the IPv4 address inside the
//! IPv6 forms that carry one), with the cloud metadata address 169.254.169.254 first among them.
//! The guard runs twice. At job creation [`check_destination`] resolves the host and refuses the
//! URL when any address is forbidden (the API answers 400). At send time DNS may answer
//! differently, so [`webhook_client`] resolves again through a [`GuardedResolver`], which refuses
//! forbidden answers and hands reqwest only the addresses it checked: the connection is pinned to
//! them. reqwest never resolves an IP-literal host, so the sender also calls [`check_literal`].
//! Configuration (`allow_private`) lifts every refusal, for local development and tests only.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

/// The `User-Agent` of every webhook request.
pub const USER_AGENT: &str = "Tessera-Webhooks/1.0";

/// How long [`check_destination`] waits for the resolver.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The class of an address that webhooks must not reach ("loopback", "private", "link-local",
/// "cloud metadata", "multicast", "unique-local", "unspecified", "broadcast", "shared address
/// space", "this network", "documentation", "benchmarking", "reserved", "site-local"), or `None`
/// for a public address. IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64 and 6to4 IPv6
/// addresses answer the class of the IPv4 address they carry. The same classifier as
/// [`tessera_core::request::forbidden_class`].
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    tessera_core::request::forbidden_class(ip)
}

/// Resolves host names to socket addresses: the system's resolver in production, a fixed table in
/// tests.
#[async_trait]
pub trait HostResolver: Send + Sync + fmt::Debug {
    /// The addresses of `host` (a domain name), each with `port`.
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`, through [`tokio::net::lookup_host`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A fixed table of names and their addresses, changeable later with [`StaticResolver::set`]:
/// lets tests make a name that resolves to loopback, or change DNS between job creation and send,
/// without a DNS server. Names compare case-insensitively, with any trailing dot removed; an
/// unknown name answers an [`io::ErrorKind::NotFound`] error.
#[derive(Debug, Default)]
pub struct StaticResolver {
    table: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl StaticResolver {
    /// A resolver that knows exactly these names.
    pub fn new(entries: impl IntoIterator<Item = (impl Into<String>, Vec<IpAddr>)>) -> Self {
        let table = entries
            .into_iter()
            .map(|(name, addrs)| (normalize(&name.into()), addrs))
            .collect();
        Self {
            table: Mutex::new(table),
        }
    }

    /// Sets (or adds) the addresses of `name`.
    pub fn set(&self, name: impl Into<String>, addrs: Vec<IpAddr>) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.insert(normalize(&name.into()), addrs);
    }
}

#[async_trait]
impl HostResolver for StaticResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.get(&normalize(host)) {
            Some(addrs) => Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no address for {host}"),
            )),
        }
    }
}

/// A name as the static table keys it: lowercase, without trailing dots.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks a webhook URL at job creation: it must parse as an http(s) URL with a host; an IP-literal
/// host must not be forbidden; a domain must resolve (with the URL's port, or the scheme's) and no
/// address it resolves to may be forbidden. With `allow_private` only the parse is checked, and
/// nothing is resolved (local development works offline). Messages follow a field name, e.g.
/// `webhook_url` + ` resolves to a loopback address (127.0.0.1)`.
pub async fn check_destination(url: &str, allow_private: bool, resolver: &dyn HostResolver) -> Result<(), String> {
    let url = url::Url::parse(url).map_err(|error| format!("is not a valid URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    let Some(host) = url.host() else {
        return Err("must have a host".into());
    };
    if allow_private {
        return Ok(());
    }
    match host {
        Host::Ipv4(ip) => check_ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => check_ip(IpAddr::V6(ip)),
        Host::Domain(domain) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(domain, port)).await {
                Ok(Ok(addrs)) => addrs,
                Ok(Err(error)) => return Err(format!("does not resolve: {error}")),
                Err(_) => return Err(format!("does not resolve: no answer within {RESOLVE_TIMEOUT:?}")),
            };
            check_resolved(addrs.iter().map(SocketAddr::ip))
        }
    }
}

/// Checks the host of a URL about to be sent to when it is an IP literal, which reqwest connects
/// to without asking the resolver; a domain passes (the [`GuardedResolver`] checks it).
/// `allow_private` lets everything pass.
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip)),
        Some(Host::Domain(_)) | None => Ok(()),
    }
}

/// An IP-literal host: refused when forbidden.
fn check_ip(ip: IpAddr) -> Result<(), String> {
    match forbidden_class(ip) {
        Some(class) => Err(format!("is {} ({ip})", phrase(class))),
        None => Ok(()),
    }
}

/// What a name resolved to: refused when empty, or when any address is forbidden (a name that
/// mixes public and forbidden addresses is refused whole).
fn check_resolved(addrs: impl IntoIterator<Item = IpAddr>) -> Result<(), String> {
    let mut any = false;
    for ip in addrs {
        if let Some(class) = forbidden_class(ip) {
            return Err(format!("resolves to {} ({ip})", phrase(class)));
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err("does not resolve: no addresses".into())
    }
}

/// A class as a noun phrase: "a loopback address", "an unspecified address".
fn phrase(class: &str) -> String {
    match class {
        "unspecified" => "an unspecified address".into(),
        "shared address space" => "an address in the shared address space".into(),
        "this network" => "a \"this network\" address".into(),
        _ => format!("a {class} address"),
    }
}

/// Why the guard refused to connect at send time, e.g. `sneaky.test resolves to a loopback address
/// (127.0.0.1)`. It travels inside the [`reqwest::Error`]; [`refusal`] finds it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    message: String,
}

impl Refused {
    /// The refusal, naming the host, the class and the address.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Refused {}

/// The guard's [`Refused`] in an error's source chain (e.g. a [`reqwest::Error`] from
/// [`webhook_client`]), if the guard is why it failed.
pub fn refusal<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

/// reqwest's resolver for webhooks: resolves through a [`HostResolver`] and, unless
/// `allow_private`, refuses a name with any forbidden address (failing with a [`Refused`] naming
/// the class and the address). reqwest connects only to the addresses it answers, so the
/// connection uses exactly the addresses that were checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    resolver: Arc<dyn HostResolver>,
    allow_private: bool,
}

impl GuardedResolver {
    /// A guard over `resolver`; `allow_private` lets every address through.
    pub fn new(resolver: Arc<dyn HostResolver>, allow_private: bool) -> Self {
        Self {
            resolver,
            allow_private,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = Arc::clone(&self.resolver);
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts in the URL's port (or the scheme's).
            let addrs = resolver.resolve(&host, 0).await?;
            if addrs.is_empty() {
                let message = format!("{host} does not resolve: no addresses");
                return Err(io::Error::new(io::ErrorKind::NotFound, message).into());
            }
            if !allow_private {
                check_resolved(addrs.iter().map(SocketAddr::ip)).map_err(|reason| Refused {
                    message: format!("{host} {reason}"),
                })?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for webhooks: resolves through a [`GuardedResolver`] over `resolver`, follows
/// no redirect (a 3xx is the answer), uses no proxy (it would resolve names itself), gives up after
/// `timeout`, and says `User-Agent: Tessera-Webhooks/1.0`. Callers also run [`check_literal`] on
/// each URL, since reqwest does not resolve IP literals.
///
/// # Panics
///
/// If the TLS backend cannot start (never with reqwest's bundled rustls and web PKI roots).
pub fn webhook_client(resolver: Arc<dyn HostResolver>, allow_private: bool, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .dns_resolver(Arc::new(GuardedResolver::new(resolver, allow_private)))
        .build()
        .expect("the webhook client's settings are valid")
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::str::FromStr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::any;

    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn dns(entries: &[(&str, &[&str])]) -> StaticResolver {
        StaticResolver::new(
            entries
                .iter()
                .map(|(name, addrs)| (*name, addrs.iter().map(|raw| ip(raw)).collect())),
        )
    }

    /// Literal URL hosts for an IPv4 address and every IPv6 form that carries it.
    fn literal_hosts(v4: Ipv4Addr) -> Vec<String> {
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        let v6 = [
            v4.to_ipv6_mapped(),
            Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
        ];
        let mut hosts = vec![v4.to_string()];
        hosts.extend(v6.iter().map(|ip| format!("[{ip}]")));
        hosts
    }

    const V4_CLASSES: [(&str, &str); 15] = [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("100.64.0.1", "shared address space"),
        ("0.0.0.7", "this network"),
        ("203.0.113.9", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.192", "reserved"),
    ];

    const V6_CLASSES: [(&str, &str); 9] = [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "documentation"),
        ("2001:2::1", "benchmarking"),
    ];

    #[test]
    fn every_class_is_named_in_ipv4_and_in_each_ipv6_form() {
        for (raw, class) in V4_CLASSES {
            let v4: Ipv4Addr = raw.parse().unwrap();
            assert_eq!(forbidden_class(IpAddr::V4(v4)), Some(class), "{raw}");
            for host in literal_hosts(v4) {
                let url = reqwest::Url::parse(&format!("https://{host}/hook")).unwrap();
                let ip: IpAddr = host.trim_matches(['[', ']']).parse().unwrap();
                assert_eq!(forbidden_class(ip), Some(class), "{host}");
                let refusal = check_literal(&url, false).unwrap_err();
                assert!(refusal.contains(&format!("({ip})")), "{refusal}");
                assert!(check_literal(&url, true).is_ok());
            }
        }
        for (raw, class) in V6_CLASSES {
            assert_eq!(forbidden_class(ip(raw)), Some(class), "{raw}");
            let url = reqwest::Url::parse(&format!("https://[{raw}]/hook")).unwrap();
            assert!(check_literal(&url, false).is_err(), "{raw}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for raw in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"] {
            assert_eq!(forbidden_class(ip(raw)), None, "{raw}");
        }
        for raw in ["8.8.8.8", "1.1.1.1", "93.184.216.34"] {
            for host in literal_hosts(raw.parse().unwrap()) {
                assert_eq!(forbidden_class(ip(host.trim_matches(['[', ']']))), None, "{host}");
            }
        }
        let url = reqwest::Url::parse("https://[2606:4700:4700::1111]/hook").unwrap();
        assert!(check_literal(&url, false).is_ok());
        let url = reqwest::Url::parse("https://sneaky.test/hook").unwrap();
        assert!(
            check_literal(&url, false).is_ok(),
            "domains are the resolver's to check"
        );
    }

    #[test]
    fn literal_messages_name_the_class_and_address() {
        let check = |raw: &str| check_literal(&reqwest::Url::parse(raw).unwrap(), false);
        assert_eq!(
            check("http://127.0.0.1:9000/"),
            Err("is a loopback address (127.0.0.1)".into())
        );
        // Hex and shortened IPv4 forms are normalised by the URL parser.
        assert_eq!(
            check("http://0x7f000001/"),
            Err("is a loopback address (127.0.0.1)".into())
        );
        assert_eq!(check("http://10.1/"), Err("is a private address (10.0.0.1)".into()));
        assert_eq!(
            check("http://[::ffff:169.254.169.254]/"),
            Err("is a cloud metadata address (::ffff:169.254.169.254)".into())
        );
        assert_eq!(
            check("http://0.0.0.0/"),
            Err("is an unspecified address (0.0.0.0)".into())
        );
        assert_eq!(
            check("http://[fd00::1]/"),
            Err("is a unique-local address (fd00::1)".into())
        );
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused() {
        let resolver = dns(&[
            ("loop.test", &["127.0.0.1"]),
            ("ten.test", &["10.0.0.1"]),
            ("metadata.test", &["169.254.169.254"]),
            ("six.test", &["::1"]),
            ("mixed.test", &["93.184.216.34", "192.168.1.10"]),
            ("public.test", &["93.184.216.34", "2606:4700:4700::1111"]),
            ("empty.test", &[]),
        ]);
        let check = async |url: &str, allow_private: bool| check_destination(url, allow_private, &resolver).await;
        assert_eq!(
            check("https://loop.test/hook", false).await,
            Err("resolves to a loopback address (127.0.0.1)".into())
        );
        assert_eq!(
            check("https://ten.test/hook", false).await,
            Err("resolves to a private address (10.0.0.1)".into())
        );
        assert_eq!(
            check("https://metadata.test/hook", false).await,
            Err("resolves to a cloud metadata address (169.254.169.254)".into())
        );
        assert_eq!(
            check("https://six.test/hook", false).await,
            Err("resolves to a loopback address (::1)".into())
        );
        assert_eq!(
            check("https://mixed.test/hook", false).await,
            Err("resolves to a private address (192.168.1.10)".into())
        );
        assert_eq!(check("https://public.test/hook", false).await, Ok(()));
        // Case and a trailing dot do not matter.
        assert!(check("https://LOOP.Test./hook", false).await.is_err());
        assert_eq!(check("https://PUBLIC.test./hook", false).await, Ok(()));
        // IP literals are classified without the resolver.
        assert_eq!(
            check("https://[::ffff:10.0.0.1]/hook", false).await,
            Err("is a private address (::ffff:10.0.0.1)".into())
        );
        assert_eq!(check("https://8.8.8.8/hook", false).await, Ok(()));
        for (raw, _) in V4_CLASSES {
            for host in literal_hosts(raw.parse().unwrap()) {
                assert!(check(&format!("https://{host}/hook"), false).await.is_err(), "{host}");
            }
        }
        for (raw, _) in V6_CLASSES {
            assert!(check(&format!("https://[{raw}]/hook"), false).await.is_err(), "{raw}");
        }

        let unknown = check("https://nowhere.test/hook", false).await.unwrap_err();
        assert!(unknown.starts_with("does not resolve: "), "{unknown}");
        assert_eq!(
            check("https://empty.test/hook", false).await,
            Err("does not resolve: no addresses".into())
        );
        assert!(
            check("not a url", false)
                .await
                .unwrap_err()
                .starts_with("is not a valid URL")
        );
        assert_eq!(
            check("ftp://public.test/", false).await,
            Err("must be an http:// or https:// URL".into())
        );

        // allow_private lets everything through, without resolving.
        for url in [
            "https://loop.test/hook",
            "https://ten.test/hook",
            "https://metadata.test/hook",
            "https://six.test/hook",
            "https://mixed.test/hook",
            "https://nowhere.test/hook",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:8080/hook",
        ] {
            assert_eq!(check(url, true).await, Ok(()), "{url}");
        }
        assert!(check("not a url", true).await.is_err());
    }

    #[tokio::test]
    async fn the_static_resolver_can_change_its_answers() {
        let resolver = StaticResolver::new([("Hooks.Example.", vec![ip("93.184.216.34")])]);
        let addrs = resolver.resolve("hooks.example", 443).await.unwrap();
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.216.34"), 443)]);
        resolver.set("HOOKS.example", vec![ip("127.0.0.1")]);
        let addrs = resolver.resolve("hooks.example.", 80).await.unwrap();
        assert_eq!(addrs, vec![SocketAddr::new(ip("127.0.0.1"), 80)]);
        let error = resolver.resolve("other.example", 80).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn the_guarded_resolver_refuses_what_dns_changed_to() {
        let table = Arc::new(dns(&[("hooks.test", &["93.184.216.34"])]));
        assert_eq!(check_destination("https://hooks.test/", false, &*table).await, Ok(()));
        let guard = GuardedResolver::new(table.clone(), false);
        let resolve = |host: &str| guard.resolve(Name::from_str(host).unwrap());
        let addrs: Vec<SocketAddr> = resolve("hooks.test").await.unwrap().collect();
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.216.34"), 0)]);

        // DNS changes after the job was created: the send is refused.
        table.set("hooks.test", vec![ip("169.254.169.254")]);
        let error = resolve("hooks.test").await.err().unwrap();
        assert_eq!(
            refusal(&*error).map(Refused::message),
            Some("hooks.test resolves to a cloud metadata address (169.254.169.254)")
        );
        table.set("hooks.test", vec![ip("93.184.216.34"), ip("fe80::1")]);
        let error = resolve("hooks.test").await.err().unwrap();
        assert_eq!(
            error.to_string(),
            "hooks.test resolves to a link-local address (fe80::1)"
        );
        table.set("hooks.test", vec![]);
        let error = resolve("hooks.test").await.err().unwrap();
        assert!(refusal(&*error).is_none());
        let error = resolve("nowhere.test").await.err().unwrap();
        assert!(refusal(&*error).is_none());

        let open = GuardedResolver::new(table.clone(), true);
        table.set("hooks.test", vec![ip("127.0.0.1"), ip("::1")]);
        let addrs: Vec<SocketAddr> = open
            .resolve(Name::from_str("hooks.test").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs.len(), 2);
    }

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        hooks: AtomicUsize,
        agents: Mutex<Vec<String>>,
    }

    /// A server on a loopback port: `/hook` counts requests, `/moved` answers 302 to `/hook`.
    async fn serve() -> (u16, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let counter = seen.clone();
        let app = Router::new()
            .route(
                "/hook",
                any(move |headers: HeaderMap| {
                    let counter = counter.clone();
                    async move {
                        counter.hooks.fetch_add(1, Ordering::SeqCst);
                        let agent = headers
                            .get(header::USER_AGENT)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        counter.agents.lock().unwrap().push(agent.to_owned());
                        StatusCode::NO_CONTENT
                    }
                }),
            )
            .route(
                "/moved",
                any(|| async { (StatusCode::FOUND, [(header::LOCATION, "/hook")]) }),
            );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (port, seen)
    }

    #[tokio::test]
    async fn the_client_never_connects_to_a_name_that_resolves_to_loopback() {
        let (port, seen) = serve().await;
        let table: Arc<dyn HostResolver> = Arc::new(dns(&[("sneaky.test", &["127.0.0.1"])]));
        let url = format!("http://sneaky.test:{port}/hook");

        let guarded = webhook_client(table.clone(), false, Duration::from_secs(5));
        let error = guarded.post(&url).body("{}").send().await.unwrap_err();
        assert_eq!(
            refusal(&error).map(Refused::message),
            Some("sneaky.test resolves to a loopback address (127.0.0.1)"),
            "{error:?}"
        );
        assert_eq!(seen.hooks.load(Ordering::SeqCst), 0, "the server must see no request");

        let open = webhook_client(table, true, Duration::from_secs(5));
        let response = open.post(&url).body("{}").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(seen.hooks.load(Ordering::SeqCst), 1);
        assert_eq!(*seen.agents.lock().unwrap(), vec![USER_AGENT.to_owned()]);
    }

    #[tokio::test]
    async fn a_name_changed_to_loopback_after_the_check_is_refused_at_send() {
        let (port, seen) = serve().await;
        let table = Arc::new(dns(&[("rebind.test", &["93.184.216.34"])]));
        let url = format!("http://rebind.test:{port}/hook");
        assert_eq!(check_destination(&url, false, &*table).await, Ok(()));
        table.set("rebind.test", vec![ip("127.0.0.1")]);
        let client = webhook_client(table, false, Duration::from_secs(5));
        let error = client.post(&url).send().await.unwrap_err();
        assert!(refusal(&error).is_some(), "{error:?}");
        assert_eq!(seen.hooks.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn redirects_are_answered_not_followed() {
        let (port, seen) = serve().await;
        let table: Arc<dyn HostResolver> = Arc::new(dns(&[("local.test", &["127.0.0.1"])]));
        let client = webhook_client(table, true, Duration::from_secs(5));
        let response = client
            .post(format!("http://local.test:{port}/moved"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[header::LOCATION], "/hook");
        assert_eq!(
            seen.hooks.load(Ordering::SeqCst),
            0,
            "the redirect must not be followed"
        );
    }
}
