//! How many connections the HTTP server holds open, in all and per client
//! address: the count behind the caps that keep slow or idle clients from
//! taking every connection (and file descriptor). Pure bookkeeping; the
//! server asks before serving a connection and reports when it ends.
//!
//! Memory is bounded by the open connections: an address whose count
//! falls to zero is forgotten.

use std::collections::HashMap;

use super::client_addr::ClientKey;

/// Why a connection is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the server holds its maximum of {0} connections")]
    Total(usize),
    #[error("this address holds its maximum of {0} connections")]
    PerAddress(usize),
}

/// Open connections, in all and per client address.
#[derive(Debug)]
pub struct ConnectionCounts {
    max_total: usize,
    max_per_address: usize,
    total: usize,
    per_address: HashMap<ClientKey, usize>,
}

impl ConnectionCounts {
    pub fn new(max_total: usize, max_per_address: usize) -> ConnectionCounts {
        ConnectionCounts {
            max_total,
            max_per_address,
            total: 0,
            per_address: HashMap::new(),
        }
    }

    /// Counts a new connection from `client`, unless a cap is reached.
    /// `exempt` (a trusted reverse proxy, which carries many clients)
    /// skips the per-address cap but not the total.
    pub fn open(&mut self, client: ClientKey, exempt: bool) -> Result<(), Refused> {
        if self.total >= self.max_total {
            return Err(Refused::Total(self.max_total));
        }
        if !exempt && self.from(client) >= self.max_per_address {
            return Err(Refused::PerAddress(self.max_per_address));
        }
        *self.per_address.entry(client).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection counted by [`ConnectionCounts::open`] has ended.
    pub fn close(&mut self, client: ClientKey) {
        if let Some(n) = self.per_address.get_mut(&client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&client);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Open connections from `client`.
    pub fn from(&self, client: ClientKey) -> usize {
        self.per_address.get(&client).copied().unwrap_or(0)
    }

    /// Addresses with a connection open.
    pub fn addresses(&self) -> usize {
        self.per_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn v4(n: u32) -> ClientKey {
        ClientKey::of(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn caps_per_address_and_in_all() {
        let mut c = ConnectionCounts::new(5, 2);
        assert_eq!(c.open(v4(1), false), Ok(()));
        assert_eq!(c.open(v4(1), false), Ok(()));
        assert_eq!(c.open(v4(1), false), Err(Refused::PerAddress(2)));
        assert_eq!(c.from(v4(1)), 2, "a refusal is not counted");
        assert_eq!(c.open(v4(2), false), Ok(()));
        // A trusted proxy is not held to the per-address cap...
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
    fn addresses_are_forgotten_when_their_last_connection_ends() {
        let mut c = ConnectionCounts::new(10_000, 10);
        for n in 0..1000 {
            c.open(v4(n), false).unwrap();
        }
        assert_eq!(c.addresses(), 1000);
        for n in 0..1000 {
            c.close(v4(n));
        }
        assert_eq!((c.addresses(), c.total()), (0, 0));
        // Closing what was never opened changes nothing.
        c.close(v4(5));
        assert_eq!((c.addresses(), c.total()), (0, 0));
    }
}
