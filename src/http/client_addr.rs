//! Who a request comes from, for the per-client limits.
//!
//! A client is counted as a [`SourceKey`](crate::net::SourceKey): an IPv4
//! address or an IPv6 /64.
//!
//! Behind a reverse proxy every connection comes from the proxy, so the
//! client is taken from `X-Forwarded-For`, but only when the connection
//! comes from a configured trusted proxy (anyone else can write that
//! header): the rightmost address that is not itself a trusted proxy is
//! the client, since each proxy appends the address it received from and
//! everything to the left of that was written by the client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::HeaderMap;

/// Longest `X-Forwarded-For` looked at: a client can make the header as
/// long as the body limit allows, and only its right end matters.
const MAX_FORWARDED_HOPS: usize = 16;

/// The client's address: `peer` (the connection's source) unless `peer`
/// is a trusted proxy, in which case the rightmost `X-Forwarded-For`
/// address that is not a trusted proxy (the proxy's own view of its
/// client). A header that cannot be read leaves the proxy itself as the
/// client, so a broken proxy is limited as one client rather than not at
/// all.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| same_host(t, ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Several header fields are one list, in order (RFC 9110 §5.3).
    let values: Vec<&str> = match headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str())
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(v) => v,
        Err(_) => return peer,
    };
    let mut last_trusted = peer;
    let hops = values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .take(MAX_FORWARDED_HOPS);
    for hop in hops {
        let Some(ip) = parse_hop(hop) else {
            return last_trusted;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        last_trusted = ip;
    }
    last_trusted
}

/// One `X-Forwarded-For` entry: an address, possibly bracketed or with a
/// port (some proxies write `[2001:db8::1]:4711` or `192.0.2.1:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inner, _) = rest.split_once(']')?;
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The same host, IPv4-mapped IPv6 or not.
fn same_host(a: &IpAddr, b: &IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        // Not a proxy: the header is the client's own invention.
        assert_eq!(
            client_ip(ip("198.51.100.9"), &xff(&["203.0.113.5"]), &trusted),
            ip("198.51.100.9")
        );
        // The proxy: its rightmost entry is what it saw.
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
        // A client's forged entries to the left are ignored.
        assert_eq!(
            client_ip(proxy, &xff(&["1.2.3.4, 5.6.7.8", "203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
        // A chain of trusted proxies is walked through.
        let chain = [proxy, ip("10.0.0.2")];
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.5, 10.0.0.2"]), &chain),
            ip("203.0.113.5")
        );
        // Ports and brackets, as some proxies write them.
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.5:4711"]), &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(proxy, &xff(&["[2001:db8::5]:4711"]), &trusted),
            ip("2001:db8::5")
        );
        // No header, or one that cannot be read: the proxy is the client.
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff(&["unknown"]), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, &xff(&["203.0.113.5, junk"]), &trusted),
            proxy
        );
        // Every entry a trusted proxy: the leftmost of them.
        assert_eq!(
            client_ip(proxy, &xff(&["10.0.0.2"]), &chain),
            ip("10.0.0.2")
        );
        // A mapped address for the proxy is the same proxy.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &xff(&["203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn a_long_forwarded_for_is_read_from_the_right_only() {
        let proxy = ip("10.0.0.1");
        let long = vec!["10.0.0.1"; 10_000].join(",");
        // All trusted within the hops looked at: the proxy stands in.
        assert_eq!(client_ip(proxy, &xff(&[&long]), &[proxy]), proxy);
    }
}
