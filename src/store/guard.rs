//! The brute-force guard's lockouts and failure windows, so that a restart
//! does not hand an attacker a fresh allowance.
//!
//! Callers are stored as the guard's keyed hash (see
//! [`crate::conference::guard::CallerKey`]), never as caller IDs; addresses
//! as the address (or IPv6 /64 prefix) the guard counts. Times are unix
//! milliseconds; the shell converts them to and from the guard's clock.

use std::net::IpAddr;

use rusqlite::params;

use super::{Store, StoreError};
use crate::conference::guard::{CallerKey, GuardKey};

/// One change to the guard's stored state, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardWrite {
    /// A failure at `at_ms` counts against `key`.
    Failure { key: GuardKey, at_ms: i64 },
    /// One failure at `at_ms` is withdrawn (the attempt succeeded).
    Withdraw { key: GuardKey, at_ms: i64 },
    /// `key` is locked out until `until_ms`; its failures are forgotten.
    Lockout { key: GuardKey, until_ms: i64 },
    /// The failures of `key` are forgotten.
    Forget { key: GuardKey },
}

/// The guard's state as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredGuard {
    pub failures: Vec<(GuardKey, i64)>,
    pub lockouts: Vec<(GuardKey, i64)>,
    /// Rows that did not read back as a key (left alone, reported).
    pub unreadable: usize,
}

fn encode(key: GuardKey) -> (&'static str, String) {
    match key {
        GuardKey::Caller(CallerKey(k)) => ("caller", format!("{k:016x}")),
        GuardKey::Ip(ip) => ("ip", ip.to_string()),
        GuardKey::Trusted(ip) => ("trusted", ip.to_string()),
    }
}

fn decode(kind: &str, key: &str) -> Option<GuardKey> {
    match kind {
        "caller" if key.len() == 16 => u64::from_str_radix(key, 16)
            .ok()
            .map(|k| GuardKey::Caller(CallerKey(k))),
        "ip" => key.parse::<IpAddr>().ok().map(GuardKey::Ip),
        "trusted" => key.parse::<IpAddr>().ok().map(GuardKey::Trusted),
        _ => None,
    }
}

impl Store {
    /// Applies `writes` in one transaction.
    pub fn write_guard(&mut self, writes: &[GuardWrite]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for w in writes {
            match *w {
                GuardWrite::Failure { key, at_ms } => {
                    let (kind, key) = encode(key);
                    tx.prepare_cached(
                        "INSERT INTO guard_failures (kind, key, at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![kind, key, at_ms])?;
                }
                GuardWrite::Withdraw { key, at_ms } => {
                    let (kind, key) = encode(key);
                    tx.prepare_cached(
                        "DELETE FROM guard_failures WHERE rowid = (
                             SELECT rowid FROM guard_failures
                             WHERE kind = ?1 AND key = ?2 AND at = ?3 LIMIT 1)",
                    )?
                    .execute(params![kind, key, at_ms])?;
                }
                GuardWrite::Lockout { key, until_ms } => {
                    let (kind, key) = encode(key);
                    tx.prepare_cached("DELETE FROM guard_failures WHERE kind = ?1 AND key = ?2")?
                        .execute(params![kind, key])?;
                    tx.prepare_cached(
                        "INSERT INTO guard_lockouts (kind, key, until) VALUES (?1, ?2, ?3)
                         ON CONFLICT (kind, key) DO UPDATE SET until = max(until, excluded.until)",
                    )?
                    .execute(params![kind, key, until_ms])?;
                }
                GuardWrite::Forget { key } => {
                    let (kind, key) = encode(key);
                    tx.prepare_cached("DELETE FROM guard_failures WHERE kind = ?1 AND key = ?2")?
                        .execute(params![kind, key])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes lapsed lockouts and failures older than `window_ms` (the
    /// guard's longest window). Returns how many rows went.
    pub fn prune_guard(&mut self, now_ms: i64, window_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(window_ms);
        let failures = self
            .conn
            .prepare_cached("DELETE FROM guard_failures WHERE at <= ?1")?
            .execute(params![cutoff])?;
        let lockouts = self
            .conn
            .prepare_cached("DELETE FROM guard_lockouts WHERE until <= ?1")?
            .execute(params![now_ms])?;
        Ok(failures + lockouts)
    }

    /// The active lockouts and the failures within `window_ms`, after
    /// pruning what has lapsed.
    pub fn load_guard(&mut self, now_ms: i64, window_ms: i64) -> Result<StoredGuard, StoreError> {
        self.prune_guard(now_ms, window_ms)?;
        let mut out = StoredGuard::default();
        let mut read = |sql: &str| -> Result<Vec<(GuardKey, i64)>, StoreError> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut keys = Vec::new();
            for row in rows {
                let (kind, key, t) = row?;
                match decode(&kind, &key) {
                    Some(k) => keys.push((k, t)),
                    None => out.unreadable += 1,
                }
            }
            Ok(keys)
        };
        let failures = read("SELECT kind, key, at FROM guard_failures ORDER BY at")?;
        let lockouts = read("SELECT kind, key, until FROM guard_lockouts")?;
        out.failures = failures;
        out.lockouts = lockouts;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MIN: i64 = 60_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn writes_read_back_and_lapse() {
        let mut s = Store::open_in_memory().unwrap();
        let caller = GuardKey::Caller(CallerKey(0xdead_beef_0000_0001));
        let v6 = GuardKey::Ip("2001:db8:0:1::".parse().unwrap());
        let t0 = 1_700_000_000_000;
        s.write_guard(&[
            GuardWrite::Failure {
                key: caller,
                at_ms: t0,
            },
            GuardWrite::Failure {
                key: caller,
                at_ms: t0 + 1,
            },
            GuardWrite::Failure { key: v6, at_ms: t0 },
            GuardWrite::Failure { key: v6, at_ms: t0 },
            GuardWrite::Failure {
                key: GuardKey::Trusted(ip(10)),
                at_ms: t0,
            },
            GuardWrite::Withdraw { key: v6, at_ms: t0 },
            GuardWrite::Lockout {
                key: GuardKey::Ip(ip(1)),
                until_ms: t0 + 15 * MIN,
            },
        ])
        .unwrap();
        let g = s.load_guard(t0 + 1, 15 * MIN).unwrap();
        assert_eq!(
            g.failures,
            [
                (caller, t0),
                (v6, t0),
                (GuardKey::Trusted(ip(10)), t0),
                (caller, t0 + 1)
            ],
            "one of the two v6 failures was withdrawn"
        );
        assert_eq!(g.lockouts, [(GuardKey::Ip(ip(1)), t0 + 15 * MIN)]);
        assert_eq!(g.unreadable, 0);

        // A lockout forgets the key's failures; a later lockout wins.
        s.write_guard(&[
            GuardWrite::Lockout {
                key: caller,
                until_ms: t0 + 20 * MIN,
            },
            GuardWrite::Lockout {
                key: GuardKey::Ip(ip(1)),
                until_ms: t0 + 5 * MIN,
            },
            GuardWrite::Forget { key: v6 },
        ])
        .unwrap();
        let g = s.load_guard(t0 + 1, 15 * MIN).unwrap();
        assert_eq!(g.failures, [(GuardKey::Trusted(ip(10)), t0)]);
        let mut lockouts = g.lockouts.clone();
        lockouts.sort_by_key(|&(_, until)| until);
        assert_eq!(
            lockouts,
            [
                (GuardKey::Ip(ip(1)), t0 + 15 * MIN),
                (caller, t0 + 20 * MIN)
            ]
        );

        // Past the window and the lockouts, nothing is left.
        let g = s.load_guard(t0 + 20 * MIN, 15 * MIN).unwrap();
        assert_eq!(g, StoredGuard::default());
        let n: i64 = s
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM guard_failures) + (SELECT count(*) FROM guard_lockouts)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "pruned from the file too");
    }

    #[test]
    fn unreadable_rows_are_counted_not_fatal() {
        let mut s = Store::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO guard_failures (kind, key, at) VALUES ('caller', 'not hex', 5), ('room', 'x', 5);
                 INSERT INTO guard_lockouts (kind, key, until) VALUES ('ip', '300.1.1.1', 9);",
            )
            .unwrap();
        let g = s.load_guard(1, 10).unwrap();
        assert_eq!(
            (g.failures.len(), g.lockouts.len(), g.unreadable),
            (0, 0, 3)
        );
    }

    #[test]
    fn keys_round_trip() {
        for key in [
            GuardKey::Caller(CallerKey(0)),
            GuardKey::Caller(CallerKey(u64::MAX)),
            GuardKey::Ip(ip(1)),
            GuardKey::Ip("2001:db8::".parse().unwrap()),
            GuardKey::Trusted(ip(2)),
        ] {
            let (kind, text) = encode(key);
            assert_eq!(decode(kind, &text), Some(key));
        }
    }
}
