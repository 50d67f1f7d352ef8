//! What a failure is counted against: a caller as a keyed hash of its
//! caller ID, a source address (per /64 for IPv6).

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::net::SourceKey;

/// Caller IDs that mean "withheld". Every caller that withholds its number
/// would otherwise share one key with all the others everywhere (or, with an
/// empty string, be tracked under a meaningless one).
const ANONYMOUS_IDS: &[&str] = &[
    "anonymous",
    "unknown",
    "restricted",
    "private",
    "unavailable",
    "withheld",
];

/// Length of the secret caller keys are derived with.
pub const CALLER_SECRET_LEN: usize = 32;

/// A caller, as a keyed 64-bit hash of its caller ID. Caller IDs are chosen
/// by whoever sends the INVITE, so storing them would let a flood of long
/// spoofed IDs cost memory; a hash costs 8 bytes and no allocation whatever
/// the ID. It is also what is persisted, so the database holds no caller ID.
/// The hash is keyed with a secret nobody outside knows, so nobody can
/// make two caller IDs collide on purpose, or test guesses of a caller ID
/// against a copy of the database; by chance a collision takes billions of
/// callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallerKey(pub u64);

/// Makes [`CallerKey`]s: HMAC-SHA256 under the secret, truncated to 64
/// bits. Withheld numbers are keyed by their source, so all anonymous
/// callers from one place count as one caller ("anonymous@<ip>"); the tag
/// keeps that key apart from a real caller ID that happens to read
/// "anonymous@…".
#[derive(Clone)]
pub(super) struct CallerKeys {
    /// The keyed state, cloned for each hash (the key schedule is done
    /// once).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CallerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerKeys(<keyed>)")
    }
}

impl CallerKeys {
    pub(super) fn new(secret: &[u8; CALLER_SECRET_LEN]) -> CallerKeys {
        // HMAC pads a key shorter than SHA-256's block with zeros, so
        // padding it here gives the same MAC through the infallible
        // fixed-size constructor.
        let mut block = [0u8; 64];
        block[..CALLER_SECRET_LEN].copy_from_slice(secret);
        CallerKeys {
            mac: <Hmac<Sha256> as KeyInit>::new(&block.into()),
        }
    }

    /// With a random secret: stable for the life of the process only.
    pub(super) fn random() -> CallerKeys {
        CallerKeys::new(&rand::random::<[u8; CALLER_SECRET_LEN]>())
    }

    pub(super) fn key(&self, caller: &str, ip: IpAddr) -> CallerKey {
        let caller = caller.trim();
        let mut m = self.mac.clone();
        if is_anonymous(caller) {
            m.update(b"anonymous\0");
            match ip_key(ip) {
                IpAddr::V4(v4) => m.update(&v4.octets()),
                IpAddr::V6(v6) => m.update(&v6.octets()),
            }
        } else {
            m.update(b"known\0");
            m.update(caller.as_bytes());
        }
        let digest = m.finalize().into_bytes();
        let mut first = [0u8; 8];
        for (d, s) in first.iter_mut().zip(digest.iter()) {
            *d = *s;
        }
        CallerKey(u64::from_be_bytes(first))
    }
}

fn is_anonymous(caller: &str) -> bool {
    caller.is_empty() || ANONYMOUS_IDS.iter().any(|a| caller.eq_ignore_ascii_case(a))
}

/// The address an IP failure is counted against: the [`SourceKey`]'s
/// address (IPv4, or the first address of an IPv6 /64).
pub(super) fn ip_key(ip: IpAddr) -> IpAddr {
    SourceKey::of(ip).ip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn the_same_secret_gives_the_same_keys_and_another_secret_others() {
        let a = CallerKeys::new(&[7; 32]);
        let b = CallerKeys::new(&[7; 32]);
        let c = CallerKeys::new(&[8; 32]);
        assert_eq!(a.key("+15550001", ip(1)), b.key("+15550001", ip(2)));
        assert_ne!(a.key("+15550001", ip(1)), c.key("+15550001", ip(1)));
        assert_ne!(a.key("+15550001", ip(1)), a.key("+15550002", ip(1)));
        // Surrounding blanks are not part of the ID.
        assert_eq!(a.key(" +15550001 ", ip(1)), a.key("+15550001", ip(1)));
    }

    #[test]
    fn withheld_numbers_are_keyed_by_source() {
        let k = CallerKeys::new(&[1; 32]);
        assert_eq!(k.key("", ip(1)), k.key("Anonymous", ip(1)));
        assert_ne!(k.key("", ip(1)), k.key("", ip(2)));
        assert_ne!(k.key("", ip(1)), k.key("anonymous@192.0.2.1", ip(1)));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert_eq!(
            ip_key(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())),
            ip(1)
        );
    }
}
