//! Who a request comes from. Behind a reverse proxy every request's peer is the proxy, so
//! rate limits keyed on the peer would make one bucket for everyone; yet a header naming
//! the client is whatever the client wrote unless a proxy we trust wrote it. So
//! `X-Forwarded-For` / `Forwarded` are believed only from `trusted_proxies` (CIDRs, none by
//! default), read from the right, skipping our own proxies: the first address a trusted
//! hop did not write itself is the client.
//!
//! Limits key on [`bucket`]: an IPv6 client is its /64, since one host commonly holds a
//! whole /64 and would otherwise escape every per-address limit.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::config::cidr::{Cidr, canonical};

/// One hop of `X-Forwarded-For` or a `for=` of `Forwarded`: an address, perhaps with a
/// port or in brackets; `None` for `unknown`, obfuscated names and garbage.
fn hop(raw: &str) -> Option<IpAddr> {
    let v = raw.trim().trim_matches('"');
    if let Ok(ip) = IpAddr::from_str(v) {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return IpAddr::from_str(rest.split(']').next()?).ok();
    }
    let (host, port) = v.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(host).ok().filter(IpAddr::is_ipv4)
}

/// The hops the proxies listed, leftmost (the original client) first. `X-Forwarded-For`
/// when present, else `Forwarded`'s `for=`; an unreadable hop ends the list there (nothing
/// left of it can be trusted).
fn hops(req: &HttpRequest) -> Vec<Option<IpAddr>> {
    let values = |name| {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let xff = values(header::X_FORWARDED_FOR);
    if !xff.trim().is_empty() {
        return xff.split(',').map(hop).collect();
    }
    values(header::FORWARDED)
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| hop(v))
            })
        })
        .collect()
}

/// Whether the request names a client through a proxy header (any of them).
pub fn proxied(req: &HttpRequest) -> bool {
    [
        header::X_FORWARDED_FOR,
        header::FORWARDED,
        header::HeaderName::from_static("x-real-ip"),
    ]
    .iter()
    .any(|h| req.headers().contains_key(h))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// hop its proxies did not add themselves.
pub fn client(req: &HttpRequest, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| canonical(a.ip()))?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for h in hops(req).into_iter().rev() {
        let Some(ip) = h.map(canonical) else {
            // An unreadable hop: the last trusted proxy's word is all there is.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// The key rate limits use for `ip`: the address, an IPv6 one cut to its /64.
pub fn bucket(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cidr::parse_list;
    use actix_web::test::TestRequest;

    fn req(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (k, v) in headers {
            r = r.append_header((*k, *v));
        }
        r.to_http_request()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn headers_are_believed_only_from_trusted_proxies() {
        let none: Vec<Cidr> = Vec::new();
        let proxy = parse_list("127.0.0.1, 10.0.0.0/8").unwrap();
        let xff = [("x-forwarded-for", "198.51.100.7")];
        // Nobody trusted: the peer, whatever the header says.
        assert_eq!(client(&req("203.0.113.1:1", &xff), &none), ip("203.0.113.1"));
        assert_eq!(client(&req("127.0.0.1:1", &xff), &none), ip("127.0.0.1"));
        // A trusted proxy: the client it names.
        assert_eq!(client(&req("127.0.0.1:1", &xff), &proxy), ip("198.51.100.7"));
        // An untrusted peer sending the header is itself the client.
        assert_eq!(client(&req("203.0.113.1:1", &xff), &proxy), ip("203.0.113.1"));
        // A client that forges a first hop: the rightmost untrusted hop wins.
        let forged = [("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.5")];
        assert_eq!(client(&req("127.0.0.1:1", &forged), &proxy), ip("198.51.100.7"));
        // Forwarded (RFC 7239), with quotes, brackets and ports.
        let fwd = [(
            "forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9",
        )];
        assert_eq!(client(&req("127.0.0.1:1", &fwd), &proxy), ip("2001:db8::7"));
        let port = [("x-forwarded-for", "198.51.100.8:5555")];
        assert_eq!(client(&req("127.0.0.1:1", &port), &proxy), ip("198.51.100.8"));
        // An unreadable hop: the nearest proxy's peer, never a hop left of it.
        let obf = [("x-forwarded-for", "1.2.3.4, unknown")];
        assert_eq!(client(&req("127.0.0.1:1", &obf), &proxy), ip("127.0.0.1"));
        // No header from a trusted proxy: the proxy itself.
        assert_eq!(client(&req("127.0.0.1:1", &[]), &proxy), ip("127.0.0.1"));
        assert!(proxied(&req("127.0.0.1:1", &[("x-real-ip", "1.2.3.4")])));
        assert!(!proxied(&req("127.0.0.1:1", &[])));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(bucket(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
