//! Who is calling: the From user, or P-Asserted-Identity (RFC 3325) when —
//! and only when — the request came from a trusted proxy (anyone can write
//! any P-Asserted-Identity; only a proxy we trust has checked it).

use std::net::IpAddr;

use super::ua::IncomingCall;

/// The caller's number or user part as the network asserts it.
pub fn caller_user(call: &IncomingCall, trusted_proxies: &[IpAddr]) -> Option<String> {
    let source = call.flow.remote.ip();
    let trusted = trusted_proxies.iter().any(|p| same_ip(*p, source));
    if trusted {
        if let Some(user) = call
            .p_asserted_identity
            .as_ref()
            .and_then(|pai| pai.uri.user())
        {
            return Some(user);
        }
    }
    call.from.uri.user()
}

/// Compares addresses treating IPv4-mapped IPv6 as IPv4.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::flow::{Flow, Transport};
    use crate::sip::header::NameAddr;

    fn call(from: &str, pai: Option<&str>, source: &str) -> IncomingCall {
        IncomingCall {
            request_uri: "sip:1000@pinbridge".into(),
            dialed: Some("1000".into()),
            from: NameAddr::parse("From", from).unwrap(),
            p_asserted_identity: pai.map(|p| NameAddr::parse("P-Asserted-Identity", p).unwrap()),
            call_id: "c".into(),
            flow: Flow {
                transport: Transport::Udp,
                remote: source.parse().unwrap(),
                local: "192.0.2.1:5060".parse().unwrap(),
                connection: None,
            },
            offer: None,
            user_agent: None,
        }
    }

    #[test]
    fn pai_only_from_trusted_proxies() {
        let trusted: Vec<IpAddr> = vec!["192.0.2.10".parse().unwrap()];
        let c = call(
            "<sip:anonymous@anonymous.invalid>;tag=1",
            Some("<tel:+12015550123>"),
            "192.0.2.10:5060",
        );
        assert_eq!(caller_user(&c, &trusted).as_deref(), Some("+12015550123"));
        let spoofed = call(
            "<sip:mallory@192.0.2.66>;tag=1",
            Some("<tel:+12015550123>"),
            "192.0.2.66:5060",
        );
        assert_eq!(caller_user(&spoofed, &trusted).as_deref(), Some("mallory"));
        let mapped = call(
            "<sip:x@h>;tag=1",
            Some("<sip:+442079460958@trunk>"),
            "[::ffff:192.0.2.10]:5060",
        );
        assert_eq!(
            caller_user(&mapped, &trusted).as_deref(),
            Some("+442079460958")
        );
    }
}
