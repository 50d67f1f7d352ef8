//! Open connections, in all and per source: the count behind the caps that
//! keep slow, idle or greedy clients from taking every connection (and
//! file descriptor). The server asks before it serves a connection and
//! reports when the connection ends.
//!
//! Memory is bounded by the open connections: a source whose count falls
//! to zero is forgotten.

use std::collections::HashMap;

use super::SourceKey;

/// Why a connection is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the server holds its maximum of {0} connections")]
    Total(usize),
    #[error("this source holds its maximum of {0} connections")]
    PerSource(usize),
}

/// Open connections, in all and per source.
#[derive(Debug)]
pub struct ConnectionCounts {
    max_total: usize,
    max_per_source: usize,
    total: usize,
    per_source: HashMap<SourceKey, usize>,
}

impl ConnectionCounts {
    pub fn new(max_total: usize, max_per_source: usize) -> ConnectionCounts {
        ConnectionCounts {
            max_total,
            max_per_source,
            total: 0,
            per_source: HashMap::new(),
        }
    }

    /// Counts a new connection from `source`, unless a cap is reached.
    /// `exempt` (a trusted reverse proxy, which carries many clients)
    /// skips the per-source cap but not the total.
    pub fn open(&mut self, source: SourceKey, exempt: bool) -> Result<(), Refused> {
        if self.total >= self.max_total {
            return Err(Refused::Total(self.max_total));
        }
        if !exempt && self.from(source) >= self.max_per_source {
            return Err(Refused::PerSource(self.max_per_source));
        }
        *self.per_source.entry(source).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection counted by [`ConnectionCounts::open`] has ended.
    /// Closing what was never opened changes nothing.
    pub fn close(&mut self, source: SourceKey) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&source);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Open connections in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Open connections from `source`.
    pub fn from(&self, source: SourceKey) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    /// Sources with a connection open.
    pub fn sources(&self) -> usize {
        self.per_source.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn v4(n: u32) -> SourceKey {
        SourceKey::of(IpAddr::V4(Ipv4Addr::from(n)))
    }

    fn ip(s: &str) -> SourceKey {
        SourceKey::of(s.parse().unwrap())
    }

    #[test]
    fn caps_per_source_and_in_all() {
        let mut c = ConnectionCounts::new(5, 2);
        assert_eq!(c.open(v4(1), false), Ok(()));
        assert_eq!(c.open(v4(1), false), Ok(()));
        assert_eq!(c.open(v4(1), false), Err(Refused::PerSource(2)));
        assert_eq!(c.from(v4(1)), 2, "a refusal is not counted");
        assert_eq!(c.open(v4(2), false), Ok(()));
        // A trusted proxy is not held to the per-source cap...
        assert_eq!(c.open(v4(9), true), Ok(()));
        assert_eq!(c.open(v4(9), true), Ok(()));
        assert_eq!(c.total(), 5);
        // ...but the total holds for everyone.
        assert_eq!(c.open(v4(3), false), Err(Refused::Total(5)));
        assert_eq!(c.open(v4(9), true), Err(Refused::Total(5)));
        // A closed connection frees its place.
        c.close(v4(1));
        assert_eq!(c.open(v4(3), false), Ok(()));
        assert_eq!(c.open(v4(1), false), Err(Refused::Total(5)));
    }

    #[test]
    fn ipv6_sources_count_by_64_and_mapped_ipv4_as_ipv4() {
        let mut c = ConnectionCounts::new(100, 2);
        c.open(ip("2001:db8:1:2::1"), false).unwrap();
        c.open(ip("2001:db8:1:2:ffff::9"), false).unwrap();
        assert_eq!(
            c.open(ip("2001:db8:1:2:abcd::1"), false),
            Err(Refused::PerSource(2))
        );
        c.open(ip("2001:db8:1:3::1"), false).unwrap();
        c.open(ip("::ffff:192.0.2.1"), false).unwrap();
        assert_eq!(c.from(ip("192.0.2.1")), 1);
    }

    #[test]
    fn sources_are_forgotten_when_their_last_connection_ends() {
        let mut c = ConnectionCounts::new(10_000, 10);
        for n in 0..1000 {
            c.open(v4(n), false).unwrap();
        }
        assert_eq!(c.sources(), 1000);
        for n in 0..1000 {
            c.close(v4(n));
        }
        assert_eq!((c.sources(), c.total()), (0, 0));
        // Closing what was never opened changes nothing.
        c.close(v4(5));
        assert_eq!((c.sources(), c.total()), (0, 0));
    }
}
