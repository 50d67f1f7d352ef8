//! Brute-force protection for conference PINs, across calls.
//!
//! Asterisk ConfBridge and FreeSWITCH mod_conference only limit the tries
//! within one call: an attacker who hangs up after the third wrong PIN and
//! dials again gets three more, forever. A 4-digit PIN falls to that in an
//! afternoon. The guard counts wrong PINs over a sliding window along three
//! keys, because an attacker can vary any one of them but rarely all:
//!
//! - **per caller ID**: the cheapest key to spoof, but the one that stops the
//!   common case (one phone redialling) without touching anyone else;
//! - **per source IP**: catches an attacker who rotates caller IDs; its limit
//!   is higher because a PBX or trunk puts many honest callers behind one
//!   address;
//! - **per conference**: catches a distributed attack on one meeting. Over
//!   this limit the conference is *slowed* (every verdict is delayed), never
//!   locked: locking it would let an attacker lock the legitimate users out
//!   of their own meeting.
//!
//! Callers and IPs over their limit are refused for a cool-off. The guard is
//! a pure state machine: the caller passes `now` in, and nothing here reads a
//! clock, logs or grows without bound. Each table is capped (default
//! [`DEFAULT_MAX_ENTRIES`]), so a flood of distinct spoofed caller IDs or
//! addresses cannot grow memory; when a table is full the weakest entries go
//! first and active lockouts last.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Default cap on the entries of each table (callers, IPs, conferences).
/// An entry is about 100 bytes with its failure times, so a full table is
/// around 10 MB.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Longest lockout honoured; longer configured values are clamped so that
/// `now + lockout` cannot overflow.
const MAX_LOCKOUT: Duration = Duration::from_secs(365 * 24 * 3600);

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

/// The limits the guard enforces. A limit of 0 disables that rule.
#[derive(Debug, Clone)]
pub struct GuardLimits {
    /// Wrong PINs one caller ID may make within `caller_window`.
    pub caller_failures: u32,
    pub caller_window: Duration,
    /// Wrong PINs one source address may make within `ip_window`. Higher than
    /// the caller limit: a PBX or trunk shares an IP among many callers.
    pub ip_failures: u32,
    pub ip_window: Duration,
    /// Wrong PINs one conference may see within `conference_window` before
    /// its verdicts are slowed.
    pub conference_failures: u32,
    pub conference_window: Duration,
    /// How long a caller or IP over its limit is refused.
    pub lockout: Duration,
    /// Extra delay before each verdict while a conference is over its limit.
    /// Zero disables the slowdown.
    pub attack_delay: Duration,
    /// Never locked out by IP (e.g. the operator's own PBX); callers behind
    /// them are still counted and locked one by one.
    pub trusted_ips: Vec<IpAddr>,
}

impl Default for GuardLimits {
    /// 5 failures per caller and 10 per IP in 15 minutes, 20 per conference
    /// per minute, a 15-minute cool-off and a 3-second tarpit. An honest
    /// caller who mistypes gets several whole calls of retries; a guesser
    /// gets about 20 tries an hour per number instead of thousands.
    fn default() -> Self {
        GuardLimits {
            caller_failures: 5,
            caller_window: Duration::from_secs(15 * 60),
            ip_failures: 10,
            ip_window: Duration::from_secs(15 * 60),
            conference_failures: 20,
            conference_window: Duration::from_secs(60),
            lockout: Duration::from_secs(15 * 60),
            attack_delay: Duration::from_secs(3),
            trusted_ips: Vec::new(),
        }
    }
}

/// What to do with a call or a PIN verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Go ahead after waiting this long: the conference is under attack.
    Slowed(Duration),
    /// Refuse (403 before answering, goodbye if the call is up) until `until`.
    LockedOut { until: Instant, reason: LockReason },
}

/// Which count went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReason {
    Caller,
    SourceIp,
    /// The conference went over its limit. Only ever reported by
    /// [`BruteForceGuard::record_failure`] (the slowdown began); conferences
    /// are slowed, never locked.
    Conference,
}

/// A caller, as a keyed 64-bit hash of its caller ID. Caller IDs are chosen
/// by whoever sends the INVITE, so storing them would let a flood of long
/// spoofed IDs cost memory; a hash costs 8 bytes and no allocation whatever
/// the ID. The hash key is random per guard, so nobody can make two caller
/// IDs collide on purpose, and by chance it takes billions of callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CallerKey(u64);

/// Makes [`CallerKey`]s. Withheld numbers are keyed by their source, so all
/// anonymous callers from one place count as one caller ("anonymous@<ip>");
/// the tag keeps that key apart from a real caller ID that happens to read
/// "anonymous@…".
#[derive(Debug, Clone, Default)]
struct CallerKeys(RandomState);

impl CallerKeys {
    fn key(&self, caller: &str, ip: IpAddr) -> CallerKey {
        let caller = caller.trim();
        if is_anonymous(caller) {
            CallerKey(self.0.hash_one(("anonymous", ip_key(ip))))
        } else {
            CallerKey(self.0.hash_one(("known", caller)))
        }
    }
}

fn is_anonymous(caller: &str) -> bool {
    caller.is_empty() || ANONYMOUS_IDS.iter().any(|a| caller.eq_ignore_ascii_case(a))
}

/// The address an IP failure is counted against. IPv4-mapped IPv6 (from a
/// dual-stack socket) is the IPv4 address it maps, so one host is one key
/// whichever socket it reached. Other IPv6 addresses count per /64: a single
/// subscriber is routinely given a whole /64, so counting per address would
/// hand an attacker 2^64 fresh keys.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

fn is_trusted(limits: &GuardLimits, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    limits.trusted_ips.iter().any(|t| t.to_canonical() == ip)
}

/// `now + d`, clamped so it cannot overflow.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_LOCKOUT)).unwrap_or(now)
}

/// One sliding-window rule.
#[derive(Debug, Clone, Copy)]
struct Rule {
    limit: u32,
    window: Duration,
}

impl Rule {
    fn enabled(self) -> bool {
        self.limit > 0
    }

    fn limit(self) -> usize {
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

    /// Adds a failure at `t` (not before the others), keeping at most `limit`.
    fn push(&mut self, t: Instant, limit: usize) {
        if let Some(previous) = self.newest.replace(t) {
            self.older.push_back(previous);
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
}

/// Eviction order, weakest first: idle entries, then unlocked entries
/// (least recently failed first), then active lockouts (soonest to lapse
/// first). Evicting a lockout early is the one eviction an attacker profits
/// from, so it is the last resort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Idle,
    Counting { newest: Instant },
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

    /// Counts a failure at `now`; see [`Table::record`].
    fn fail(&mut self, rule: Rule, now: Instant, lock_until: Option<Instant>) -> bool {
        self.expire(rule, now);
        if self.active_lock(now).is_some() {
            return false;
        }
        let before = self.failures.len();
        self.failures.push(now, rule.limit());
        let crossed = before < rule.limit() && self.failures.len() >= rule.limit();
        if crossed && lock_until.is_some() {
            self.failures.clear();
            self.locked_until = lock_until;
        }
        crossed
    }

    /// Nothing left worth remembering: no lockout and no failure in window.
    fn is_idle(&self, rule: Rule, now: Instant) -> bool {
        self.rank(rule, now) == Rank::Idle
    }

    fn rank(&self, rule: Rule, now: Instant) -> Rank {
        if let Some(until) = self.active_lock(now) {
            return Rank::Locked { until };
        }
        match self.failures.newest_in_window(rule, now) {
            Some(newest) => Rank::Counting { newest },
            None => Rank::Idle,
        }
    }
}

/// Failure counts and lockouts for one kind of key, capped in size.
#[derive(Debug)]
struct Table<K> {
    rule: Rule,
    entries: HashMap<K, Record>,
    max_entries: usize,
}

impl<K: Hash + Eq> Table<K> {
    fn new(rule: Rule, max_entries: usize) -> Table<K> {
        Table {
            rule,
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    fn active_lock<Q>(&self, now: Instant, key: &Q) -> Option<Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)?.active_lock(now)
    }

    fn over_limit<Q>(&self, now: Instant, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rule.enabled()
            && self
                .entries
                .get(key)
                .is_some_and(|r| r.failures.count(self.rule, now) >= self.rule.limit())
    }

    /// Counts one failure against `key`. Returns true when this failure took
    /// the key to its limit (and not when it was already there), so each
    /// lockout or slowdown is reported once.
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
    fn record<Q>(&mut self, now: Instant, key: &Q, lock_until: Option<Instant>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.rule.enabled() {
            return false;
        }
        let crossed = match self.entries.get_mut(key) {
            Some(record) => record.fail(self.rule, now, lock_until),
            None => {
                let mut record = Record::default();
                let crossed = record.fail(self.rule, now, lock_until);
                self.entries.insert(key.to_owned(), record);
                crossed
            }
        };
        if self.entries.len() > self.max_entries {
            self.shrink(now);
        }
        crossed
    }

    /// Forgets the failures of `key` but keeps an active lockout.
    fn forget_failures(&mut self, now: Instant, key: &K) {
        let Some(record) = self.entries.get_mut(key) else {
            return;
        };
        record.failures.clear();
        if record.active_lock(now).is_none() {
            self.entries.remove(key);
        }
    }

    fn prune(&mut self, now: Instant) {
        let rule = self.rule;
        self.entries.retain(|_, r| !r.is_idle(rule, now));
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

/// Counts wrong PINs per caller, source IP and conference, and says whether
/// a call may go on.
#[derive(Debug)]
pub struct BruteForceGuard {
    limits: GuardLimits,
    caller_keys: CallerKeys,
    callers: Table<CallerKey>,
    ips: Table<IpAddr>,
    conferences: Table<String>,
}

impl BruteForceGuard {
    pub fn new(limits: GuardLimits) -> Self {
        Self::with_max_entries(limits, DEFAULT_MAX_ENTRIES)
    }

    /// A guard whose tables each hold at most `max_entries` keys.
    pub fn with_max_entries(limits: GuardLimits, max_entries: usize) -> Self {
        let rule = |limit, window| Rule { limit, window };
        BruteForceGuard {
            caller_keys: CallerKeys::default(),
            callers: Table::new(
                rule(limits.caller_failures, limits.caller_window),
                max_entries,
            ),
            ips: Table::new(rule(limits.ip_failures, limits.ip_window), max_entries),
            conferences: Table::new(
                rule(limits.conference_failures, limits.conference_window),
                max_entries,
            ),
            limits,
        }
    }

    pub fn limits(&self) -> &GuardLimits {
        &self.limits
    }

    /// Keys currently remembered across all tables (for metrics and tests).
    pub fn tracked_entries(&self) -> usize {
        self.callers.entries.len() + self.ips.entries.len() + self.conferences.entries.len()
    }

    /// Before answering a call, and before each PIN verdict. `conference` is
    /// the conference the PIN is for; pass the lobby's own name for a lobby
    /// number, so that guessing across every conference is slowed too.
    /// `None` skips the conference rule.
    ///
    /// A lockout wins over a slowdown; of two lockouts the one that lasts
    /// longer is reported, since that is when the caller may try again.
    pub fn check(
        &mut self,
        now: Instant,
        caller: &str,
        ip: IpAddr,
        conference: Option<&str>,
    ) -> Verdict {
        if let Some((until, reason)) = self.lockout(now, caller, ip) {
            return Verdict::LockedOut { until, reason };
        }
        let attacked = conference.is_some_and(|c| self.conferences.over_limit(now, c));
        if attacked && !self.limits.attack_delay.is_zero() {
            return Verdict::Slowed(self.limits.attack_delay);
        }
        Verdict::Allowed
    }

    fn lockout(&self, now: Instant, caller: &str, ip: IpAddr) -> Option<(Instant, LockReason)> {
        let by_caller = self
            .callers
            .active_lock(now, &self.caller_keys.key(caller, ip))
            .map(|until| (until, LockReason::Caller));
        let by_ip = if is_trusted(&self.limits, ip) {
            None
        } else {
            self.ips
                .active_lock(now, &ip_key(ip))
                .map(|until| (until, LockReason::SourceIp))
        };
        match (by_caller, by_ip) {
            (Some(c), Some(i)) if i.0 > c.0 => Some(i),
            (Some(c), _) => Some(c),
            (None, i) => i,
        }
    }

    /// A wrong PIN. Returns the lockout it triggered, if any, for the log:
    /// `SourceIp` before `Caller` when both trip at once (it shuts out more
    /// people, so the operator should see it), and `Conference` when the
    /// conference's slowdown began.
    pub fn record_failure(
        &mut self,
        now: Instant,
        caller: &str,
        ip: IpAddr,
        conference: Option<&str>,
    ) -> Option<LockReason> {
        let until = deadline(now, self.limits.lockout);
        let caller_key = self.caller_keys.key(caller, ip);
        let caller_locked = self.callers.record(now, &caller_key, Some(until));
        // A trusted address is never locked, so there is nothing to count.
        let ip_locked =
            !is_trusted(&self.limits, ip) && self.ips.record(now, &ip_key(ip), Some(until));
        let conference_attacked = conference.is_some_and(|c| self.conferences.record(now, c, None));

        if ip_locked {
            Some(LockReason::SourceIp)
        } else if caller_locked {
            Some(LockReason::Caller)
        } else if conference_attacked {
            Some(LockReason::Conference)
        } else {
            None
        }
    }

    /// A right PIN: forgets the caller's failures, so an honest caller who
    /// mistyped yesterday starts clean. The IP and conference counts stay:
    /// one right PIN from a shared PBX or a meeting says nothing about the
    /// other callers there. An active lockout also stays (the call should
    /// have been refused before its verdict).
    pub fn record_success(&mut self, now: Instant, caller: &str, ip: IpAddr) {
        let key = self.caller_keys.key(caller, ip);
        self.callers.forget_failures(now, &key);
    }

    /// Drops lapsed lockouts and failures that left their window. Call it
    /// periodically (every minute is plenty); the tables are capped even
    /// without it.
    pub fn prune(&mut self, now: Instant) {
        self.callers.prune(now);
        self.ips.prune(now);
        self.conferences.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MIN: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    /// Fake clock: every instant is `t0 + offset`.
    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn guard() -> BruteForceGuard {
        BruteForceGuard::new(GuardLimits::default())
    }

    fn fail(
        g: &mut BruteForceGuard,
        now: Instant,
        caller: &str,
        from: IpAddr,
    ) -> Option<LockReason> {
        g.record_failure(now, caller, from, Some("team"))
    }

    fn check(g: &mut BruteForceGuard, now: Instant, caller: &str, from: IpAddr) -> Verdict {
        g.check(now, caller, from, Some("team"))
    }

    #[test]
    fn defaults_match_the_issue() {
        let l = GuardLimits::default();
        assert_eq!((l.caller_failures, l.caller_window), (5, 15 * MIN));
        assert_eq!((l.ip_failures, l.ip_window), (10, 15 * MIN));
        assert_eq!((l.conference_failures, l.conference_window), (20, MIN));
        assert_eq!(l.lockout, 15 * MIN);
        assert_eq!(l.attack_delay, Duration::from_secs(3));
        assert!(l.trusted_ips.is_empty());
    }

    #[test]
    fn caller_is_locked_out_at_the_limit() {
        let t0 = Instant::now();
        let mut g = guard();
        for i in 0..4 {
            assert_eq!(fail(&mut g, at(t0, i * 10), "+15550001", ip(1)), None);
            assert_eq!(
                check(&mut g, at(t0, i * 10), "+15550001", ip(1)),
                Verdict::Allowed
            );
        }
        let now = at(t0, 40);
        assert_eq!(
            fail(&mut g, now, "+15550001", ip(1)),
            Some(LockReason::Caller)
        );
        assert_eq!(
            check(&mut g, now, "+15550001", ip(1)),
            Verdict::LockedOut {
                until: now + 15 * MIN,
                reason: LockReason::Caller
            }
        );
        // Locked wherever the caller comes from.
        assert!(matches!(
            check(&mut g, now, "+15550001", ip(2)),
            Verdict::LockedOut { .. }
        ));
        // Others are not affected.
        assert_eq!(check(&mut g, now, "+15550002", ip(1)), Verdict::Allowed);
    }

    #[test]
    fn lockout_is_lifted_after_the_cool_off() {
        let t0 = Instant::now();
        let mut g = guard();
        for _ in 0..5 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        let until = t0 + 15 * MIN;
        assert!(matches!(
            check(&mut g, until - Duration::from_millis(1), "+15550001", ip(1)),
            Verdict::LockedOut { .. }
        ));
        assert_eq!(check(&mut g, until, "+15550001", ip(1)), Verdict::Allowed);
        // A fresh allowance afterwards: four more failures do not re-lock.
        for _ in 0..4 {
            assert_eq!(fail(&mut g, until, "+15550001", ip(1)), None);
        }
        assert_eq!(check(&mut g, until, "+15550001", ip(1)), Verdict::Allowed);
        assert_eq!(
            fail(&mut g, until, "+15550001", ip(1)),
            Some(LockReason::Caller)
        );
    }

    #[test]
    fn failures_while_locked_do_not_extend_the_lockout() {
        let t0 = Instant::now();
        // Only the caller rule, so the IP and conference counts do not trip.
        let mut g = BruteForceGuard::new(GuardLimits {
            ip_failures: 0,
            conference_failures: 0,
            ..Default::default()
        });
        for _ in 0..5 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        for s in 1..20 {
            assert_eq!(fail(&mut g, at(t0, s), "+15550001", ip(1)), None);
        }
        assert_eq!(
            check(&mut g, t0 + 15 * MIN, "+15550001", ip(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn old_failures_leave_the_sliding_window() {
        let t0 = Instant::now();
        let mut g = guard();
        // Four failures at t0, then the fifth just after they expire.
        for _ in 0..4 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        let later = t0 + 15 * MIN;
        assert_eq!(fail(&mut g, later, "+15550001", ip(1)), None);
        assert_eq!(check(&mut g, later, "+15550001", ip(1)), Verdict::Allowed);
        // The window slides: one at 10 min, four at 20 min -> 5 within 15 min.
        let mut g = guard();
        fail(&mut g, t0 + 10 * MIN, "+15550001", ip(1));
        for _ in 0..3 {
            assert_eq!(fail(&mut g, t0 + 20 * MIN, "+15550001", ip(1)), None);
        }
        assert_eq!(
            fail(&mut g, t0 + 20 * MIN, "+15550001", ip(1)),
            Some(LockReason::Caller)
        );
    }

    #[test]
    fn success_clears_the_caller_but_not_the_ip_or_conference() {
        let t0 = Instant::now();
        let mut g = guard();
        for _ in 0..4 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        g.record_success(t0, "+15550001", ip(1));
        for _ in 0..4 {
            assert_eq!(
                fail(&mut g, t0, "+15550001", ip(1)),
                None,
                "caller count was reset"
            );
        }
        // The IP kept its 4 + 4 = 8: two more from anyone there lock it.
        assert_eq!(fail(&mut g, t0, "+15550009", ip(1)), None);
        assert_eq!(
            fail(&mut g, t0, "+15550008", ip(1)),
            Some(LockReason::SourceIp)
        );
    }

    #[test]
    fn success_does_not_lift_an_active_lockout() {
        let t0 = Instant::now();
        let mut g = guard();
        for _ in 0..5 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        g.record_success(t0, "+15550001", ip(1));
        assert!(matches!(
            check(&mut g, t0, "+15550001", ip(1)),
            Verdict::LockedOut { .. }
        ));
    }

    #[test]
    fn rotating_caller_ids_locks_the_source_ip() {
        let t0 = Instant::now();
        let mut g = guard();
        for i in 0..9 {
            assert_eq!(fail(&mut g, t0, &format!("+1555000{i}"), ip(1)), None);
        }
        assert_eq!(
            fail(&mut g, t0, "+15559999", ip(1)),
            Some(LockReason::SourceIp)
        );
        assert_eq!(
            check(&mut g, t0, "+15551234", ip(1)),
            Verdict::LockedOut {
                until: t0 + 15 * MIN,
                reason: LockReason::SourceIp
            }
        );
        assert_eq!(check(&mut g, t0, "+15551234", ip(2)), Verdict::Allowed);
        assert_eq!(
            check(&mut g, t0 + 15 * MIN, "+15551234", ip(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn the_longer_of_two_lockouts_is_reported() {
        let t0 = Instant::now();
        let mut g = guard();
        for _ in 0..5 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        for i in 0..10 {
            fail(&mut g, at(t0, 60), &format!("+1666000{i}"), ip(1));
        }
        assert_eq!(
            check(&mut g, at(t0, 60), "+15550001", ip(1)),
            Verdict::LockedOut {
                until: at(t0, 60) + 15 * MIN,
                reason: LockReason::SourceIp
            }
        );
    }

    #[test]
    fn trusted_ips_are_never_locked_but_callers_behind_them_are() {
        let t0 = Instant::now();
        let pbx = ip(10);
        let mut g = BruteForceGuard::new(GuardLimits {
            trusted_ips: vec![pbx],
            ..Default::default()
        });
        for i in 0..50 {
            assert_eq!(
                fail(&mut g, at(t0, i * 60), &format!("+1555{i:04}"), pbx),
                None
            );
        }
        assert_eq!(
            check(&mut g, at(t0, 3000), "+15551234", pbx),
            Verdict::Allowed
        );
        for _ in 0..4 {
            fail(&mut g, at(t0, 3000), "+15550001", pbx);
        }
        assert_eq!(
            fail(&mut g, at(t0, 3000), "+15550001", pbx),
            Some(LockReason::Caller)
        );
        assert!(matches!(
            check(&mut g, at(t0, 3000), "+15550001", pbx),
            Verdict::LockedOut {
                reason: LockReason::Caller,
                ..
            }
        ));
        // An IPv4-mapped form of the trusted address is trusted too.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 10).to_ipv6_mapped());
        assert!(is_trusted(g.limits(), mapped));
    }

    #[test]
    fn a_conference_under_attack_is_slowed_not_locked() {
        let t0 = Instant::now();
        let mut g = guard();
        // 20 failures within a minute from 20 callers on 20 addresses.
        for i in 0..19u8 {
            assert_eq!(
                fail(&mut g, at(t0, u64::from(i)), &format!("+1555{i:04}"), ip(i)),
                None
            );
        }
        assert_eq!(
            check(&mut g, at(t0, 19), "+15559999", ip(200)),
            Verdict::Allowed
        );
        assert_eq!(
            fail(&mut g, at(t0, 19), "+15550019", ip(19)),
            Some(LockReason::Conference)
        );
        // Everyone, honest or not, is slowed but let through.
        assert_eq!(
            check(&mut g, at(t0, 20), "+15559999", ip(200)),
            Verdict::Slowed(Duration::from_secs(3))
        );
        // Other conferences are not.
        assert_eq!(
            g.check(at(t0, 20), "+15559999", ip(200), Some("other")),
            Verdict::Allowed
        );
        // Further failures do not report the attack again.
        assert_eq!(fail(&mut g, at(t0, 30), "+15550020", ip(20)), None);
    }

    #[test]
    fn the_slowdown_ends_when_the_window_drains() {
        let t0 = Instant::now();
        let mut g = guard();
        for i in 0..20u8 {
            fail(&mut g, at(t0, u64::from(i)), &format!("+1555{i:04}"), ip(i));
        }
        assert_eq!(
            check(&mut g, at(t0, 59), "+1", ip(200)),
            Verdict::Slowed(Duration::from_secs(3))
        );
        // The first failure (t0) leaves the 1-minute window at t0 + 60.
        assert_eq!(check(&mut g, at(t0, 60), "+1", ip(200)), Verdict::Allowed);
    }

    #[test]
    fn anonymous_callers_from_one_ip_are_one_caller() {
        let t0 = Instant::now();
        let mut g = guard();
        for withheld in ["", "anonymous", "Anonymous"] {
            assert_eq!(fail(&mut g, t0, withheld, ip(1)), None);
        }
        fail(&mut g, t0, "  ", ip(1));
        assert_eq!(fail(&mut g, t0, "unknown", ip(1)), Some(LockReason::Caller));
        assert!(matches!(
            check(&mut g, t0, "", ip(1)),
            Verdict::LockedOut {
                reason: LockReason::Caller,
                ..
            }
        ));
        // Anonymous callers elsewhere are separate keys.
        assert_eq!(check(&mut g, t0, "", ip(2)), Verdict::Allowed);
        // A real caller ID spelled like the anonymous key does not collide.
        assert_eq!(
            check(&mut g, t0, "anonymous@192.0.2.1", ip(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t0 = Instant::now();
        let mut g = guard();
        let addr = |host: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host));
        for host in 0..9 {
            assert_eq!(
                fail(&mut g, t0, &format!("+1555{host:04}"), addr(host)),
                None
            );
        }
        assert_eq!(
            fail(&mut g, t0, "+15559999", addr(9)),
            Some(LockReason::SourceIp)
        );
        assert!(matches!(
            check(&mut g, t0, "+1777", addr(1234)),
            Verdict::LockedOut { .. }
        ));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert_eq!(check(&mut g, t0, "+1777", other_64), Verdict::Allowed);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert_eq!(
            ip_key(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped())),
            ip(1)
        );
    }

    #[test]
    fn zero_limits_disable_their_rule() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(GuardLimits {
            caller_failures: 0,
            ip_failures: 0,
            conference_failures: 0,
            ..Default::default()
        });
        for _ in 0..100 {
            assert_eq!(fail(&mut g, t0, "+15550001", ip(1)), None);
        }
        assert_eq!(check(&mut g, t0, "+15550001", ip(1)), Verdict::Allowed);
        assert_eq!(g.tracked_entries(), 0);
    }

    #[test]
    fn long_caller_ids_are_whole_keys_of_fixed_size() {
        let t0 = Instant::now();
        let mut g = guard();
        let long = "9".repeat(10_000);
        for _ in 0..5 {
            fail(&mut g, t0, &format!("{long}1"), ip(1));
        }
        assert!(matches!(
            check(&mut g, t0, &format!("{long}1"), ip(2)),
            Verdict::LockedOut { .. }
        ));
        // Differing only at the end, beyond any cut-off: a different caller.
        assert_eq!(
            check(&mut g, t0, &format!("{long}2"), ip(2)),
            Verdict::Allowed
        );
        // Surrounding blanks are not part of the ID.
        assert!(matches!(
            check(&mut g, t0, &format!(" {long}1 "), ip(2)),
            Verdict::LockedOut { .. }
        ));
    }

    #[test]
    fn huge_lockout_does_not_overflow() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(GuardLimits {
            lockout: Duration::MAX,
            ..Default::default()
        });
        for _ in 0..5 {
            fail(&mut g, t0, "+1", ip(1));
        }
        assert!(matches!(
            check(&mut g, t0, "+1", ip(1)),
            Verdict::LockedOut { .. }
        ));
    }

    #[test]
    fn prune_drops_expired_state() {
        let t0 = Instant::now();
        let mut g = guard();
        fail(&mut g, t0, "+15550001", ip(1));
        for _ in 0..5 {
            fail(&mut g, t0, "+15550002", ip(2));
        }
        assert_eq!(g.tracked_entries(), 5); // 2 callers, 2 IPs, 1 conference
        g.prune(at(t0, 61));
        assert_eq!(g.tracked_entries(), 4, "conference window (1 min) drained");
        g.prune(t0 + 15 * MIN);
        assert_eq!(
            g.tracked_entries(),
            0,
            "failures expired and the lockout lapsed"
        );
    }

    #[test]
    fn a_full_table_evicts_idle_and_oldest_before_lockouts() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::with_max_entries(GuardLimits::default(), 16);
        for _ in 0..5 {
            fail(&mut g, t0, "attacker", ip(1));
        }
        for i in 0..100u64 {
            g.record_failure(at(t0, i), &format!("+1555{i:04}"), ip(2), None);
        }
        assert!(g.callers.entries.len() <= 16);
        assert!(matches!(
            check(&mut g, at(t0, 100), "attacker", ip(3)),
            Verdict::LockedOut { .. }
        ));
        // The most recent callers survive; the oldest went first.
        assert!(g
            .callers
            .entries
            .contains_key(&g.caller_keys.key("+15550099", ip(2))));
        assert!(!g
            .callers
            .entries
            .contains_key(&g.caller_keys.key("+15550001", ip(2))));
    }

    #[test]
    fn when_only_lockouts_remain_the_soonest_to_lapse_goes_first() {
        let t0 = Instant::now();
        let limits = GuardLimits {
            caller_failures: 1,
            ..Default::default()
        };
        let mut g = BruteForceGuard::with_max_entries(limits, 8);
        for i in 0..20u64 {
            g.record_failure(at(t0, i), &format!("c{i}"), ip(1), None);
        }
        assert!(g.callers.entries.len() <= 8);
        assert!(matches!(
            check(&mut g, at(t0, 20), "c19", ip(2)),
            Verdict::LockedOut { .. }
        ));
        assert_eq!(check(&mut g, at(t0, 20), "c0", ip(2)), Verdict::Allowed);
    }

    #[test]
    fn memory_stays_bounded_under_a_million_distinct_callers() {
        use std::fmt::Write;

        let t0 = Instant::now();
        let started = Instant::now(); // wall clock, only to report the cost
        let mut g = guard();
        for _ in 0..5 {
            fail(&mut g, t0, "attacker", ip(1));
        }
        let mut caller = String::new();
        for i in 0..1_000_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            let from = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            caller.clear();
            let _ = write!(caller, "+1{i:010}");
            g.record_failure(now, &caller, from, Some("team"));
        }
        let elapsed = started.elapsed();
        eprintln!("1M distinct callers and IPs in {elapsed:?}");
        assert!(g.callers.entries.len() <= DEFAULT_MAX_ENTRIES);
        assert!(g.ips.entries.len() <= DEFAULT_MAX_ENTRIES);
        assert!(g.callers.entries.capacity() <= 4 * DEFAULT_MAX_ENTRIES);
        let now = t0 + Duration::from_secs(2);
        assert!(matches!(
            check(&mut g, now, "attacker", ip(200)),
            Verdict::LockedOut { .. }
        ));
        // A generous bound that only catches super-linear work (a sweep per
        // insert would take minutes); it is not a benchmark.
        assert!(elapsed < Duration::from_secs(60), "flood took {elapsed:?}");
        g.prune(t0 + 30 * MIN);
        assert_eq!(g.tracked_entries(), 0);
    }
}
