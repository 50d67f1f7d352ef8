//! The unit every per-source limit counts.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// An IPv4 address or an IPv6 /64.
///
/// IPv4-mapped IPv6 (from a dual-stack socket) is the IPv4 address it maps,
/// so one host is one source whichever socket it reached. Other IPv6
/// addresses count per /64: a single subscriber is routinely given a whole
/// /64 (often much more), so counting per address would hand an attacker
/// 2^64 fresh sources for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                SourceKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => SourceKey(v4),
        }
    }

    /// The IPv4 address, or the first address of the IPv6 /64.
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = SourceKey::of(ip("2001:db8:1:2:aaaa::1"));
        let b = SourceKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let c = SourceKey::of(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(a.ip(), ip("2001:db8:1:2::"));
        assert_eq!(
            SourceKey::of(ip("::ffff:192.0.2.7")),
            SourceKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            SourceKey::of(ip("192.0.2.7")),
            SourceKey::of(ip("192.0.2.8"))
        );
        assert_eq!(SourceKey::of(ip("192.0.2.7")).to_string(), "192.0.2.7");
    }
}
