//! One sliding-window rule over one kind of key (callers, addresses,
//! conferences, trusted sources): the failure times of each key, the
//! attempts in flight against it, and its lockout, in a table of capped
//! size.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One sliding-window rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rule {
    pub limit: u32,
    pub window: Duration,
}

impl Rule {
    pub(super) fn enabled(self) -> bool {
        self.limit > 0
    }

    pub(super) fn limit(self) -> usize {
        usize::try_from(self.limit).unwrap_or(usize::MAX)
    }

    fn in_window(self, now: Instant, t: Instant) -> bool {
        now.saturating_duration_since(t) < self.window
    }
}

/// The times of a key's most recent failures, oldest first. At most `limit`
/// are kept: "are there `limit` failures within the window" only needs the
/// last `limit`, and it bounds the memory of one key.
///
/// The newest is kept inline and only older ones go to the heap: in a flood
/// of spoofed callers nearly every key fails once and then costs no
/// allocation, and the eviction sweep, which looks at every entry of a full
/// table, needs only the inline part.
#[derive(Debug, Default)]
struct Failures {
    older: VecDeque<Instant>,
    newest: Option<Instant>,
}

impl Failures {
    fn len(&self) -> usize {
        self.older.len() + usize::from(self.newest.is_some())
    }

    /// Adds a failure at `t`, keeping at most `limit` (the newest). A
    /// failure is dated when its attempt was reserved and attempts settle
    /// in any order, so `t` may be older than the newest: it is put in its
    /// place (near the back; attempts overlap by milliseconds).
    fn push(&mut self, t: Instant, limit: usize) {
        match self.newest {
            None => self.newest = Some(t),
            Some(newest) if t >= newest => {
                self.older.push_back(newest);
                self.newest = Some(t);
            }
            Some(_) => {
                let at = self
                    .older
                    .iter()
                    .rposition(|&o| o <= t)
                    .map_or(0, |i| i + 1);
                self.older.insert(at, t);
            }
        }
        while self.len() > limit {
            self.older.pop_front();
        }
    }

    fn clear(&mut self) {
        self.older.clear();
        self.newest = None;
    }

    /// Drops the failures that have left the window.
    fn expire(&mut self, rule: Rule, now: Instant) {
        if self.newest.is_some_and(|t| !rule.in_window(now, t)) {
            self.clear();
        }
        while self.older.front().is_some_and(|&t| !rule.in_window(now, t)) {
            self.older.pop_front();
        }
    }

    fn count(&self, rule: Rule, now: Instant) -> usize {
        let older = self.older.iter().filter(|&&t| rule.in_window(now, t));
        older.count() + usize::from(self.newest.is_some_and(|t| rule.in_window(now, t)))
    }

    /// The newest failure still in the window. The failures are in time
    /// order, so this alone says whether any is, in O(1).
    fn newest_in_window(&self, rule: Rule, now: Instant) -> Option<Instant> {
        self.newest.filter(|&t| rule.in_window(now, t))
    }
}

/// The state kept for one key.
#[derive(Debug, Default)]
struct Record {
    failures: Failures,
    locked_until: Option<Instant>,
    /// Attempts reserved against this key and not yet settled.
    in_flight: u32,
}

/// Eviction order, weakest first: idle entries, then entries that only
/// count failures (least recently failed first), then entries with an
/// attempt in flight, then active lockouts (soonest to lapse first).
/// Evicting a lockout early, or an entry whose attempts are still being
/// checked, is what an attacker profits from, so those go last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Idle,
    Counting { newest: Instant },
    InFlight,
    Locked { until: Instant },
}

impl Record {
    fn active_lock(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|&until| until > now)
    }

    fn expire(&mut self, rule: Rule, now: Instant) {
        self.failures.expire(rule, now);
        if self.active_lock(now).is_none() {
            self.locked_until = None;
        }
    }

    /// Counts a failure dated `at`; see [`Table::record`].
    fn fail(&mut self, rule: Rule, now: Instant, at: Instant, lock_until: Option<Instant>) -> bool {
        self.expire(rule, now);
        if self.active_lock(now).is_some() || !rule.in_window(now, at) {
            return false;
        }
        let before = self.failures.len();
        self.failures.push(at, rule.limit());
        let crossed = before < rule.limit() && self.failures.len() >= rule.limit();
        if crossed && lock_until.is_some() {
            self.failures.clear();
            self.locked_until = lock_until;
        }
        crossed
    }

    fn rank(&self, rule: Rule, now: Instant) -> Rank {
        if let Some(until) = self.active_lock(now) {
            return Rank::Locked { until };
        }
        if self.in_flight > 0 {
            return Rank::InFlight;
        }
        match self.failures.newest_in_window(rule, now) {
            Some(newest) => Rank::Counting { newest },
            None => Rank::Idle,
        }
    }
}

/// Failure counts, attempts in flight and lockouts for one kind of key,
/// capped in size.
#[derive(Debug)]
pub(super) struct Table<K> {
    pub rule: Rule,
    entries: HashMap<K, Record>,
    max_entries: usize,
}

impl<K: Hash + Eq> Table<K> {
    pub(super) fn new(rule: Rule, max_entries: usize) -> Table<K> {
        Table {
            rule,
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    #[cfg(test)]
    pub(super) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    pub(super) fn active_lock<Q>(&self, now: Instant, key: &Q) -> Option<Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)?.active_lock(now)
    }

    /// Failures in the window plus attempts in flight: what the key would
    /// have used of its allowance if every attempt being checked failed.
    pub(super) fn committed<Q>(&self, now: Instant, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map_or(0, |r| {
            r.failures.count(self.rule, now) + usize::try_from(r.in_flight).unwrap_or(usize::MAX)
        })
    }

    /// Failures in the window alone (settled attempts).
    #[cfg(test)]
    pub(super) fn settled<Q>(&self, now: Instant, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .map_or(0, |r| r.failures.count(self.rule, now))
    }

    /// Would one more attempt reach past the allowance if every attempt in
    /// flight failed?
    pub(super) fn full<Q>(&self, now: Instant, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rule.enabled() && self.committed(now, key) >= self.rule.limit()
    }

    /// Counts an attempt in flight against `key` until [`Table::settle`].
    /// A disabled rule keeps no state.
    pub(super) fn reserve<Q>(&mut self, now: Instant, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.rule.enabled() {
            return;
        }
        match self.entries.get_mut(key) {
            Some(r) => r.in_flight = r.in_flight.saturating_add(1),
            None => {
                let record = Record {
                    in_flight: 1,
                    ..Record::default()
                };
                self.entries.insert(key.to_owned(), record);
            }
        }
        if self.entries.len() > self.max_entries {
            self.shrink(now);
        }
    }

    /// Ends an attempt in flight against `key`: with `failed_at` it becomes
    /// a failure dated then (see [`Table::record`] for `lock_until` and the
    /// return value), without it it is withdrawn.
    pub(super) fn settle<Q>(
        &mut self,
        now: Instant,
        key: &Q,
        failed_at: Option<Instant>,
        lock_until: Option<Instant>,
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.rule.enabled() {
            return false;
        }
        if let Some(r) = self.entries.get_mut(key) {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
        match failed_at {
            Some(at) => self.record(now, key, at, lock_until),
            None => {
                let rule = self.rule;
                if self
                    .entries
                    .get(key)
                    .is_some_and(|r| r.rank(rule, now) == Rank::Idle)
                {
                    self.entries.remove(key);
                }
                false
            }
        }
    }

    /// Counts one failure dated `at` against `key`. Returns true when this
    /// failure took the key to its limit (and not when it was already
    /// there), so each lockout or slowdown is reported once.
    ///
    /// With `lock_until`, reaching the limit locks the key out and forgets
    /// the failures that led there: the cool-off is the penalty, and
    /// afterwards the key starts with its full allowance rather than one
    /// failure away from the next lockout. The lock is set before the table
    /// is shrunk, so a fresh lockout is never the entry evicted.
    ///
    /// A key already locked out is not counted: it should not have been given
    /// a verdict, and counting would let someone spoofing an honest caller ID
    /// extend that caller's lockout indefinitely.
    pub(super) fn record<Q>(
        &mut self,
        now: Instant,
        key: &Q,
        at: Instant,
        lock_until: Option<Instant>,
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.rule.enabled() {
            return false;
        }
        let crossed = match self.entries.get_mut(key) {
            Some(record) => record.fail(self.rule, now, at, lock_until),
            None => {
                let mut record = Record::default();
                let crossed = record.fail(self.rule, now, at, lock_until);
                self.entries.insert(key.to_owned(), record);
                crossed
            }
        };
        if self.entries.len() > self.max_entries {
            self.shrink(now);
        }
        crossed
    }

    /// Sets a lockout read back from storage (a later one wins).
    pub(super) fn restore_lock(&mut self, now: Instant, key: K, until: Instant) {
        if until <= now || !self.rule.enabled() {
            return;
        }
        let record = self.entries.entry(key).or_default();
        if record.locked_until.is_none_or(|u| u < until) {
            record.locked_until = Some(until);
        }
        if self.entries.len() > self.max_entries {
            self.shrink(now);
        }
    }

    /// Forgets the failures of `key` but keeps an active lockout and its
    /// attempts in flight.
    pub(super) fn forget_failures(&mut self, now: Instant, key: &K) {
        let rule = self.rule;
        let Some(record) = self.entries.get_mut(key) else {
            return;
        };
        record.failures.clear();
        if record.rank(rule, now) == Rank::Idle {
            self.entries.remove(key);
        }
    }

    pub(super) fn prune(&mut self, now: Instant) {
        let rule = self.rule;
        self.entries.retain(|_, r| {
            r.expire(rule, now);
            r.rank(rule, now) != Rank::Idle
        });
        // Give memory back after a flood has passed.
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
    }

    /// Brings an over-full table down to 3/4 of its cap, weakest entries
    /// (by [`Rank`]) first; idle entries all go. Going well below the cap
    /// means the O(n) sweep runs once per `max_entries / 4` inserts, not on
    /// every insert, so a flood costs amortised O(1) per failure.
    fn shrink(&mut self, now: Instant) {
        let rule = self.rule;
        let target = self.max_entries - self.max_entries / 4;
        let Some(excess) = self.entries.len().checked_sub(target).filter(|&e| e > 0) else {
            return;
        };
        let mut ranks: Vec<Rank> = self.entries.values().map(|r| r.rank(rule, now)).collect();
        let (weaker, &mut cut, _) = ranks.select_nth_unstable(excess - 1);
        // Everything ranked below `cut` goes, and as many ties as needed.
        let below = weaker.iter().filter(|&&r| r < cut).count();
        let mut ties = excess.saturating_sub(below);
        self.entries.retain(|_, r| {
            let rank = r.rank(rule, now);
            if rank == Rank::Idle || rank < cut {
                return false;
            }
            if rank == cut && ties > 0 {
                ties -= 1;
                return false;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_settled_out_of_order_stay_sorted_and_capped() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut f = Failures::default();
        for ms in [30, 10, 50, 20, 40] {
            f.push(at(ms), 4);
        }
        let all: Vec<Instant> = f.older.iter().copied().chain(f.newest).collect();
        assert_eq!(all, [at(20), at(30), at(40), at(50)], "the oldest went");
    }

    #[test]
    fn attempts_in_flight_count_until_settled_and_a_withdrawal_leaves_nothing() {
        let t0 = Instant::now();
        let rule = Rule {
            limit: 3,
            window: Duration::from_secs(60),
        };
        let mut t: Table<u32> = Table::new(rule, 16);
        t.reserve(t0, &1);
        t.reserve(t0, &1);
        assert_eq!((t.committed(t0, &1), t.settled(t0, &1)), (2, 0));
        assert!(!t.full(t0, &1));
        t.reserve(t0, &1);
        assert!(t.full(t0, &1), "three in flight fill a limit of three");
        assert_eq!(t.settled(t0, &1), 0, "but none has failed");
        t.settle(t0, &1, None, None);
        t.settle(t0, &1, None, None);
        t.settle(t0, &1, None, None);
        assert_eq!(t.len(), 0, "withdrawn attempts leave no entry");
        t.reserve(t0, &1);
        assert!(!t.settle(t0, &1, Some(t0), None));
        assert_eq!((t.committed(t0, &1), t.settled(t0, &1)), (1, 1));
    }

    #[test]
    fn an_entry_with_attempts_in_flight_outranks_counting_ones_on_eviction() {
        let t0 = Instant::now();
        let rule = Rule {
            limit: 5,
            window: Duration::from_secs(60),
        };
        let mut t: Table<u32> = Table::new(rule, 4);
        t.reserve(t0, &0);
        for k in 1..20 {
            t.record(t0, &k, t0, None);
        }
        assert!(t.len() <= 4);
        assert!(t.contains(&0), "the key being checked survived the flood");
    }
}
