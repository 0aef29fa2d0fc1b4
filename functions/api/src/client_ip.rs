//! The client's IP address: from the socket locally (axum's `ConnectInfo`), from the API Gateway
//! request context on Lambda (the Lambda binary puts it in a [`ClientIp`] extension), and from
//! `X-Forwarded-For` only when configured to trust it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

/// The client's address as the host (Lambda's request context) saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Resolves the client's IP for rate limits; `None` when nothing says.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    if let Some(ClientIp(ip)) = parts.extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// What a per-IP rate limit counts by: an IPv4 address (an IPv4-mapped IPv6 one included), or
/// the /64 network of an IPv6 address, as `2001:db8:1:2::/64`. A /64 is what one subscriber is
/// given: counting single IPv6 addresses would let one client spread its requests over 2^64 of
/// them, each with a fresh allowance (and a counter of its own).
pub fn rate_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !(u128::from(u64::MAX));
            format!("{}/64", Ipv6Addr::from(network))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(forwarded: Option<&str>, socket: Option<&str>, context: Option<&str>) -> Parts {
        let mut request = Request::builder();
        if let Some(value) = forwarded {
            request = request.header("x-forwarded-for", value);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        if let Some(socket) = socket {
            parts
                .extensions
                .insert(ConnectInfo(socket.parse::<SocketAddr>().expect("socket")));
        }
        if let Some(ip) = context {
            parts.extensions.insert(ClientIp(ip.parse().expect("ip")));
        }
        parts
    }

    #[test]
    fn a_client_sent_forwarded_for_is_ignored_unless_trusted() {
        let request = parts(Some("203.0.113.9"), Some("127.0.0.1:5000"), None);
        assert_eq!(client_ip(&request, false), "127.0.0.1".parse().ok());
        assert_eq!(client_ip(&request, true), "203.0.113.9".parse().ok());
    }

    #[test]
    fn the_proxy_appended_entry_wins_and_the_lambda_context_beats_the_socket() {
        let request = parts(Some("10.9.9.9, 198.51.100.7"), None, None);
        assert_eq!(client_ip(&request, true), "198.51.100.7".parse().ok());
        let request = parts(None, Some("127.0.0.1:5000"), Some("192.0.2.1"));
        assert_eq!(client_ip(&request, false), "192.0.2.1".parse().ok());
        assert_eq!(client_ip(&parts(Some("junk"), None, None), true), None);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_network_and_an_ipv4_one_by_its_address() {
        let subject = |ip: &str| rate_subject(ip.parse().expect("ip"));
        assert_eq!(subject("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(subject("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:3::1"), subject("2001:db8:1:2::1"));
        assert_eq!(subject("203.0.113.9"), "203.0.113.9");
        assert_eq!(subject("::ffff:203.0.113.9"), "203.0.113.9", "IPv4-mapped is IPv4");
        assert_ne!(subject("203.0.113.9"), subject("203.0.113.10"));
    }
}
