//! Brute-force protection for conference PINs and one-time passcodes,
//! across calls.
//!
//! Asterisk ConfBridge and FreeSWITCH mod_conference only limit the tries
//! within one call: an attacker who hangs up after the third wrong PIN and
//! dials again gets three more, forever. A 4-digit PIN falls to that in an
//! afternoon. The guard counts wrong codes over a sliding window along
//! several keys, because an attacker can vary any one of them but rarely
//! all:
//!
//! - **per caller ID**: the cheapest key to spoof, but the one that stops the
//!   common case (one phone redialling) without touching anyone else;
//! - **per source IP**: catches an attacker who rotates caller IDs; its limit
//!   is higher because a PBX or trunk puts many honest callers behind one
//!   address;
//! - **per conference**: catches a distributed attack on one meeting. Over
//!   this limit the conference is *slowed* (every verdict is delayed), never
//!   locked: locking it would let an attacker lock the legitimate users out
//!   of their own meeting;
//! - **per trusted source**: a trusted address (the operator's PBX) is never
//!   locked as a whole, and the caller IDs behind it are whatever the PBX
//!   passes on. Over its ceiling its verdicts are *paced*: at most one per
//!   interval from that address, however many calls it holds.
//!
//! Callers and IPs over their limit are refused for a cool-off.
//!
//! **Check and count are one step.** A guess first *reserves* an attempt
//! ([`BruteForceGuard::reserve`]): the attempt counts against every key at
//! once, as if it had already failed, before the code is compared; then it
//! is *confirmed* as a failure or *released* on success. Calls that guess
//! at the same moment therefore cannot all pass the check before any of
//! them is counted: once the failures and the attempts in flight fill an
//! allowance, further attempts wait ([`Admission::Wait`]) until one is
//! settled, and are refused if that settles into a lockout. An attempt that
//! is never settled (its call vanished mid-check) counts as a failure: the
//! code may have been compared, and an attacker must not be able to turn
//! "hang up before the verdict" into free guesses. The shell confirms it
//! when it drops the attempt, and the guard does so on its own after
//! [`MAX_IN_FLIGHT`] in case a handle is lost.
//!
//! The guard is a pure state machine: the caller passes `now` in, and
//! nothing here reads a clock, logs, touches the disk or grows without
//! bound. Each table is capped (default [`DEFAULT_MAX_ENTRIES`]), so a flood
//! of distinct spoofed caller IDs or addresses cannot grow memory; when a
//! table is full the weakest entries go first and active lockouts last. A
//! [`BruteForceGuard::persistent`] guard also lists what the shell should
//! store ([`Persist`]), and [`BruteForceGuard::restore`] takes back what was
//! stored, so that lockouts and failure windows survive a restart.

mod keys;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use keys::{ip_key, CallerKeys};
pub use keys::{CallerKey, CALLER_SECRET_LEN};
use table::{Rule, Table};

/// Default cap on the entries of each table (callers, IPs, conferences).
/// An entry is about 100 bytes with its failure times, so a full table is
/// around 10 MB.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Longest lockout honoured; longer configured values are clamped so that
/// `now + lockout` cannot overflow.
const MAX_LOCKOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// An attempt still in flight this long after it was reserved is counted as
/// a failure. Checking a code takes milliseconds (an argon2 hash, a
/// database lookup); this only matters if a handle is lost.
pub const MAX_IN_FLIGHT: Duration = Duration::from_secs(60);

/// Longest a paced verdict from a trusted source is made to wait (or one
/// `trusted_interval`, if that is longer). An attempt that would wait longer
/// is refused: the source already has that much queued.
pub const MAX_PACED_WAIT: Duration = Duration::from_secs(30);

/// The limits the guard enforces. A limit of 0 disables that rule.
#[derive(Debug, Clone)]
pub struct GuardLimits {
    /// Wrong codes one caller may make within `caller_window`.
    pub caller_failures: u32,
    pub caller_window: Duration,
    /// Wrong codes one source address may make within `ip_window`. Higher
    /// than the caller limit: a PBX or trunk shares an IP among many callers.
    pub ip_failures: u32,
    pub ip_window: Duration,
    /// Wrong codes one conference may see within `conference_window` before
    /// its verdicts are slowed.
    pub conference_failures: u32,
    pub conference_window: Duration,
    /// How long a caller or IP over its limit is refused.
    pub lockout: Duration,
    /// Extra delay before each verdict while a conference is over its limit.
    /// Zero disables the slowdown.
    pub attack_delay: Duration,
    /// Never locked out by IP (e.g. the operator's own PBX); callers behind
    /// them are still counted and locked one by one, and the address as a
    /// whole is paced over `trusted_failures`.
    pub trusted_ips: Vec<IpAddr>,
    /// Wrong codes one trusted address may see within `trusted_window`
    /// before its verdicts are paced.
    pub trusted_failures: u32,
    pub trusted_window: Duration,
    /// While a trusted address is over its ceiling, at most one verdict per
    /// this interval from it.
    pub trusted_interval: Duration,
}

impl Default for GuardLimits {
    /// 5 failures per caller and 10 per IP in 15 minutes, 20 per conference
    /// per minute, a 15-minute cool-off and a 3-second tarpit; a trusted
    /// address is paced to one verdict per 10 s after 30 failures in 15
    /// minutes. An honest caller who mistypes gets several whole calls of
    /// retries; a guesser gets about 20 tries an hour per number instead of
    /// thousands.
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
            trusted_failures: 30,
            trusted_window: Duration::from_secs(15 * 60),
            trusted_interval: Duration::from_secs(10),
        }
    }
}

impl GuardLimits {
    /// The longest failure window: how long a stored failure can matter.
    pub fn longest_window(&self) -> Duration {
        self.caller_window
            .max(self.ip_window)
            .max(self.trusted_window)
    }
}

/// What to do with a call, before it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Go ahead, but verdicts will come this much later: the conference is
    /// under attack.
    Slowed(Duration),
    /// Refuse (403 before answering) until `until`.
    LockedOut { until: Instant, reason: LockReason },
}

/// Which count went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReason {
    Caller,
    SourceIp,
    /// The conference went over its limit. Only ever reported by
    /// [`BruteForceGuard::confirm_failure`] (the slowdown began);
    /// conferences are slowed, never locked.
    Conference,
    /// A trusted address went over its ceiling. Only ever reported by
    /// [`BruteForceGuard::confirm_failure`] (pacing began); trusted
    /// addresses are paced, never locked.
    TrustedSource,
}

/// The answer to [`BruteForceGuard::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Compare the code, then settle the attempt with
    /// [`BruteForceGuard::confirm_failure`] or [`BruteForceGuard::release`];
    /// give the verdict no earlier than [`Attempt::delay`] from now.
    Granted(Attempt),
    /// Attempts in flight would use up an allowance if they all failed: ask
    /// again once one is settled (they may succeed and free it, or lock the
    /// key out).
    Wait,
    /// Say so and hang up.
    Refused(Refusal),
}

/// Why an attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller or the source address is locked out until `until`.
    Locked { until: Instant, reason: LockReason },
    /// A trusted address over its ceiling already has verdicts queued for
    /// longer than [`MAX_PACED_WAIT`].
    Paced,
}

/// A reserved attempt: settle it exactly once. Deliberately neither `Clone`
/// nor `Copy`.
#[must_use = "an attempt must be confirmed as a failure or released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Attempt {
    id: u64,
    delay: Duration,
}

impl Attempt {
    /// How long to hold the verdict back: the conference is under attack,
    /// or the trusted source it came from is being paced.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// A key whose state is persisted. Conference windows are not (they are a
/// minute long and only slow verdicts down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardKey {
    Caller(CallerKey),
    /// An untrusted source address (per /64 for IPv6).
    Ip(IpAddr),
    /// A trusted source address, counted against its ceiling.
    Trusted(IpAddr),
}

/// A change for the store, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A failure dated `at` counts against `key`. Written when the attempt
    /// is reserved, so an attempt cut short by a crash still counts.
    Failure { key: GuardKey, at: Instant },
    /// The failure dated `at` is withdrawn: the attempt succeeded.
    Withdraw { key: GuardKey, at: Instant },
    /// `key` is locked out until `until`, and its failures are forgotten.
    Lockout { key: GuardKey, until: Instant },
    /// The failures of `key` are forgotten (a right code); a lockout stays.
    Forget { key: GuardKey },
}

/// State read back from the store.
#[derive(Debug, Default, Clone)]
pub struct Restored {
    pub failures: Vec<(GuardKey, Instant)>,
    pub lockouts: Vec<(GuardKey, Instant)>,
}

fn is_trusted(limits: &GuardLimits, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    limits.trusted_ips.iter().any(|t| t.to_canonical() == ip)
}

/// `now + d`, clamped so it cannot overflow.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_LOCKOUT)).unwrap_or(now)
}

/// An attempt between reserve and settle: the keys it was counted against.
#[derive(Debug)]
struct InFlight {
    caller: CallerKey,
    /// The untrusted source address, or None when the source is trusted.
    ip: Option<IpAddr>,
    /// The trusted source address.
    trusted: Option<IpAddr>,
    conference: Option<String>,
    at: Instant,
}

/// Counts wrong codes per caller, source IP, conference and trusted source,
/// and says whether a call may go on and whether a guess may be checked.
#[derive(Debug)]
pub struct BruteForceGuard {
    limits: GuardLimits,
    caller_keys: CallerKeys,
    callers: Table<CallerKey>,
    ips: Table<IpAddr>,
    conferences: Table<String>,
    trusted: Table<IpAddr>,
    /// Per trusted address over its ceiling: when its next verdict may come.
    /// At most one entry per configured trusted address.
    next_paced: HashMap<IpAddr, Instant>,
    /// Attempts in flight by id; ids grow, so the first is the oldest.
    in_flight: BTreeMap<u64, InFlight>,
    next_attempt: u64,
    max_in_flight: usize,
    /// What to store, when persistent.
    outbox: Option<Vec<Persist>>,
}

impl BruteForceGuard {
    /// A guard whose caller keys are random for this process and that lists
    /// nothing to store.
    pub fn new(limits: GuardLimits) -> Self {
        Self::with_max_entries(limits, DEFAULT_MAX_ENTRIES)
    }

    /// A guard whose tables each hold at most `max_entries` keys.
    pub fn with_max_entries(limits: GuardLimits, max_entries: usize) -> Self {
        Self::build(limits, CallerKeys::random(), max_entries, false)
    }

    /// A guard whose caller keys are derived from `secret` (so they are the
    /// same after a restart) and that lists its changes for the store
    /// ([`BruteForceGuard::take_persist`]).
    pub fn persistent(limits: GuardLimits, secret: &[u8; CALLER_SECRET_LEN]) -> Self {
        Self::build(limits, CallerKeys::new(secret), DEFAULT_MAX_ENTRIES, true)
    }

    fn build(
        limits: GuardLimits,
        caller_keys: CallerKeys,
        max_entries: usize,
        persistent: bool,
    ) -> Self {
        let rule = |limit, window| Rule { limit, window };
        BruteForceGuard {
            caller_keys,
            callers: Table::new(
                rule(limits.caller_failures, limits.caller_window),
                max_entries,
            ),
            ips: Table::new(rule(limits.ip_failures, limits.ip_window), max_entries),
            conferences: Table::new(
                rule(limits.conference_failures, limits.conference_window),
                max_entries,
            ),
            trusted: Table::new(
                rule(limits.trusted_failures, limits.trusted_window),
                max_entries,
            ),
            next_paced: HashMap::new(),
            in_flight: BTreeMap::new(),
            next_attempt: 0,
            max_in_flight: (max_entries / 4).max(1),
            outbox: persistent.then(Vec::new),
            limits,
        }
    }

    pub fn limits(&self) -> &GuardLimits {
        &self.limits
    }

    /// Keys currently remembered across all tables (for metrics and tests).
    pub fn tracked_entries(&self) -> usize {
        self.callers.len() + self.ips.len() + self.conferences.len() + self.trusted.len()
    }

    /// Attempts reserved and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Before answering a call: is the caller or its address locked out?
    /// `conference` is the conference the call is for (the lobby's own name
    /// for a lobby number); `None` skips the conference rule.
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
        let caller_key = self.caller_keys.key(caller, ip);
        if let Some((until, reason)) = self.lockout(now, caller_key, ip) {
            return Verdict::LockedOut { until, reason };
        }
        let attacked = conference.is_some_and(|c| self.conferences.full(now, c));
        if attacked && !self.limits.attack_delay.is_zero() {
            return Verdict::Slowed(self.limits.attack_delay);
        }
        Verdict::Allowed
    }

    fn lockout(
        &self,
        now: Instant,
        caller: CallerKey,
        ip: IpAddr,
    ) -> Option<(Instant, LockReason)> {
        let by_caller = self
            .callers
            .active_lock(now, &caller)
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

    /// Before comparing an entered code (PIN, dial-in code or one-time
    /// passcode): reserves the attempt against the caller, the source
    /// address (or the trusted source's ceiling) and `conference` at once.
    /// See [`Admission`].
    pub fn reserve(
        &mut self,
        now: Instant,
        caller: &str,
        ip: IpAddr,
        conference: Option<&str>,
    ) -> Admission {
        self.expire_in_flight(now);
        let caller_key = self.caller_keys.key(caller, ip);
        if let Some((until, reason)) = self.lockout(now, caller_key, ip) {
            return Admission::Refused(Refusal::Locked { until, reason });
        }
        let trusted = is_trusted(&self.limits, ip);
        let source = ip_key(ip);
        if self.in_flight.len() >= self.max_in_flight
            || self.callers.full(now, &caller_key)
            || (!trusted && self.ips.full(now, &source))
        {
            return Admission::Wait;
        }
        let mut delay = Duration::ZERO;
        if conference.is_some_and(|c| self.conferences.full(now, c)) {
            delay = self.limits.attack_delay;
        }
        if trusted && self.trusted.full(now, &source) {
            match self.pace(now, source) {
                Some(wait) => delay = delay.max(wait),
                None => return Admission::Refused(Refusal::Paced),
            }
        }

        self.callers.reserve(now, &caller_key);
        if trusted {
            self.trusted.reserve(now, &source);
        } else {
            self.ips.reserve(now, &source);
        }
        if let Some(c) = conference {
            self.conferences.reserve(now, c);
        }
        let id = self.next_attempt;
        self.next_attempt += 1;
        self.in_flight.insert(
            id,
            InFlight {
                caller: caller_key,
                ip: (!trusted).then_some(source),
                trusted: trusted.then_some(source),
                conference: conference.map(str::to_owned),
                at: now,
            },
        );
        if self.callers.rule.enabled() {
            self.persist(Persist::Failure {
                key: GuardKey::Caller(caller_key),
                at: now,
            });
        }
        let (table, key) = if trusted {
            (&self.trusted, GuardKey::Trusted(source))
        } else {
            (&self.ips, GuardKey::Ip(source))
        };
        if table.rule.enabled() {
            self.persist(Persist::Failure { key, at: now });
        }
        Admission::Granted(Attempt { id, delay })
    }

    /// The next verdict slot of a trusted source over its ceiling: how long
    /// from `now`, or None when the queue is already too long.
    fn pace(&mut self, now: Instant, source: IpAddr) -> Option<Duration> {
        let interval = self.limits.trusted_interval;
        let slot = self
            .next_paced
            .get(&source)
            .copied()
            .filter(|&t| t > now)
            .unwrap_or(now);
        let wait = slot.saturating_duration_since(now);
        if wait > MAX_PACED_WAIT.max(interval) {
            return None;
        }
        self.next_paced.insert(source, deadline(slot, interval));
        Some(wait)
    }

    /// The code was wrong (or the attempt was abandoned). Returns the
    /// lockout or slowdown it triggered, if any, for the log: `SourceIp`
    /// before `Caller` when both trip at once (it shuts out more people, so
    /// the operator should see it), then `TrustedSource` and `Conference`.
    pub fn confirm_failure(&mut self, now: Instant, attempt: Attempt) -> Option<LockReason> {
        let a = self.in_flight.remove(&attempt.id)?;
        self.fail_in_flight(now, a)
    }

    fn fail_in_flight(&mut self, now: Instant, a: InFlight) -> Option<LockReason> {
        let until = deadline(now, self.limits.lockout);
        let caller_locked = self.callers.settle(now, &a.caller, Some(a.at), Some(until));
        let ip_locked =
            a.ip.is_some_and(|ip| self.ips.settle(now, &ip, Some(a.at), Some(until)));
        let paced = a
            .trusted
            .is_some_and(|t| self.trusted.settle(now, &t, Some(a.at), None));
        let attacked = a
            .conference
            .as_deref()
            .is_some_and(|c| self.conferences.settle(now, c, Some(a.at), None));
        if caller_locked {
            self.persist(Persist::Lockout {
                key: GuardKey::Caller(a.caller),
                until,
            });
        }
        if let (true, Some(ip)) = (ip_locked, a.ip) {
            self.persist(Persist::Lockout {
                key: GuardKey::Ip(ip),
                until,
            });
        }
        if ip_locked {
            Some(LockReason::SourceIp)
        } else if caller_locked {
            Some(LockReason::Caller)
        } else if paced {
            Some(LockReason::TrustedSource)
        } else if attacked {
            Some(LockReason::Conference)
        } else {
            None
        }
    }

    /// The code was right: the attempt is withdrawn from every count, and
    /// the caller's failures are forgotten, so an honest caller who
    /// mistyped yesterday starts clean. The IP and conference failures
    /// stay: one right code from a shared PBX or a meeting says nothing
    /// about the other callers there. An active lockout also stays.
    pub fn release(&mut self, now: Instant, attempt: Attempt) {
        let Some(a) = self.in_flight.remove(&attempt.id) else {
            return;
        };
        self.callers.settle(now, &a.caller, None, None);
        self.callers.forget_failures(now, &a.caller);
        if self.callers.rule.enabled() {
            self.persist(Persist::Forget {
                key: GuardKey::Caller(a.caller),
            });
        }
        if let Some(ip) = a.ip {
            self.ips.settle(now, &ip, None, None);
            if self.ips.rule.enabled() {
                self.persist(Persist::Withdraw {
                    key: GuardKey::Ip(ip),
                    at: a.at,
                });
            }
        }
        if let Some(t) = a.trusted {
            self.trusted.settle(now, &t, None, None);
            if self.trusted.rule.enabled() {
                self.persist(Persist::Withdraw {
                    key: GuardKey::Trusted(t),
                    at: a.at,
                });
            }
        }
        if let Some(c) = a.conference.as_deref() {
            self.conferences.settle(now, c, None, None);
        }
    }

    /// Confirms as failures the attempts in flight for longer than
    /// [`MAX_IN_FLIGHT`]. Returns how many.
    fn expire_in_flight(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(entry) = self.in_flight.first_entry() {
            if now.saturating_duration_since(entry.get().at) < MAX_IN_FLIGHT {
                break;
            }
            let a = entry.remove();
            self.fail_in_flight(now, a);
            n += 1;
        }
        n
    }

    fn persist(&mut self, p: Persist) {
        if let Some(out) = self.outbox.as_mut() {
            out.push(p);
        }
    }

    /// The changes to store since the last call, in order (always empty
    /// unless the guard is [`BruteForceGuard::persistent`]).
    pub fn take_persist(&mut self) -> Vec<Persist> {
        self.outbox.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Takes back stored lockouts and failures (before the first call).
    /// Failures are counted as they were when they happened, so a key that
    /// had reached its limit is locked out again from then; whatever has
    /// lapsed by `now` is ignored. Nothing restored is listed for storing.
    pub fn restore(&mut self, now: Instant, mut restored: Restored) {
        for (key, until) in restored.lockouts {
            match key {
                GuardKey::Caller(k) => self.callers.restore_lock(now, k, until),
                GuardKey::Ip(ip) => self.ips.restore_lock(now, ip, until),
                GuardKey::Trusted(_) => {}
            }
        }
        restored.failures.sort_by_key(|&(_, at)| at);
        for (key, at) in restored.failures {
            let until = deadline(at, self.limits.lockout);
            match key {
                GuardKey::Caller(k) => {
                    self.callers.record(now, &k, at, Some(until));
                }
                GuardKey::Ip(ip) => {
                    self.ips.record(now, &ip, at, Some(until));
                }
                GuardKey::Trusted(ip) => {
                    self.trusted.record(now, &ip, at, None);
                }
            }
        }
    }

    /// Drops lapsed lockouts and failures that left their window, and
    /// confirms attempts in flight for too long. Returns how many attempts
    /// it confirmed (the shell wakes whoever waits for one). Call it
    /// periodically (every minute is plenty); the tables are capped even
    /// without it.
    pub fn prune(&mut self, now: Instant) -> usize {
        let expired = self.expire_in_flight(now);
        self.callers.prune(now);
        self.ips.prune(now);
        self.conferences.prune(now);
        self.trusted.prune(now);
        self.next_paced.retain(|_, &mut t| t > now);
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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
        fail_in(g, now, caller, from, Some("team"))
    }

    /// A wrong code: reserve, then confirm. None when it was not given a
    /// verdict at all.
    fn fail_in(
        g: &mut BruteForceGuard,
        now: Instant,
        caller: &str,
        from: IpAddr,
        conference: Option<&str>,
    ) -> Option<LockReason> {
        match g.reserve(now, caller, from, conference) {
            Admission::Granted(a) => g.confirm_failure(now, a),
            _ => None,
        }
    }

    /// A right code: reserve, then release.
    fn succeed(g: &mut BruteForceGuard, now: Instant, caller: &str, from: IpAddr) {
        match g.reserve(now, caller, from, Some("team")) {
            Admission::Granted(a) => g.release(now, a),
            other => panic!("a right code was not checked: {other:?}"),
        }
    }

    fn granted(a: Admission) -> Attempt {
        match a {
            Admission::Granted(a) => a,
            other => panic!("expected the attempt to be granted, got {other:?}"),
        }
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
        succeed(&mut g, t0, "+15550001", ip(1));
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
    fn a_locked_out_caller_is_refused_even_with_the_right_code() {
        let t0 = Instant::now();
        let mut g = guard();
        for _ in 0..5 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        assert!(matches!(
            g.reserve(t0, "+15550001", ip(1), Some("team")),
            Admission::Refused(Refusal::Locked {
                reason: LockReason::Caller,
                ..
            })
        ));
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
        // Each from its own address, so that no address lockout stops them.
        for i in 0..100u8 {
            let secs = u64::from(i);
            fail_in(
                &mut g,
                at(t0, secs),
                &format!("+1555{i:04}"),
                ip(i + 2),
                None,
            );
        }
        assert!(g.callers.len() <= 16);
        assert!(matches!(
            check(&mut g, at(t0, 100), "attacker", ip(3)),
            Verdict::LockedOut { .. }
        ));
        // The most recent callers survive; the oldest went first.
        assert!(g.callers.contains(&g.caller_keys.key("+15550099", ip(101))));
        assert!(!g.callers.contains(&g.caller_keys.key("+15550001", ip(3))));
    }

    #[test]
    fn when_only_lockouts_remain_the_soonest_to_lapse_goes_first() {
        let t0 = Instant::now();
        let limits = GuardLimits {
            caller_failures: 1,
            ..Default::default()
        };
        let mut g = BruteForceGuard::with_max_entries(limits, 8);
        for i in 0..20u8 {
            fail_in(&mut g, at(t0, u64::from(i)), &format!("c{i}"), ip(i), None);
        }
        assert!(g.callers.len() <= 8);
        assert!(matches!(
            check(&mut g, at(t0, 20), "c19", ip(2)),
            Verdict::LockedOut { .. }
        ));
        assert_eq!(check(&mut g, at(t0, 20), "c0", ip(2)), Verdict::Allowed);
    }

    #[test]
    fn memory_stays_bounded_under_a_million_distinct_callers() {
        use std::fmt::Write;

        // This thread's CPU time, not the wall clock: the bound below must
        // not trip because other work shares the machine.
        let cpu = || {
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                .map(Duration::from)
                .unwrap_or_default()
        };
        let t0 = Instant::now();
        let started = cpu();
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
            fail_in(&mut g, now, &caller, from, Some("team"));
        }
        let elapsed = cpu().saturating_sub(started);
        eprintln!("1M distinct callers and IPs in {elapsed:?} of CPU time");
        assert!(g.callers.len() <= DEFAULT_MAX_ENTRIES);
        assert!(g.ips.len() <= DEFAULT_MAX_ENTRIES);
        assert!(g.callers.capacity() <= 4 * DEFAULT_MAX_ENTRIES);
        let now = t0 + Duration::from_secs(2);
        assert!(matches!(
            check(&mut g, now, "attacker", ip(200)),
            Verdict::LockedOut { .. }
        ));
        // A generous bound that only catches super-linear work (a sweep per
        // insert would take hours); it is not a benchmark.
        assert!(elapsed < Duration::from_secs(60), "flood took {elapsed:?}");
        g.prune(t0 + 30 * MIN);
        assert_eq!(g.tracked_entries(), 0);
    }

    // ------------------------------------------------ reserve, then settle

    /// Reserves for `n` distinct callers on `from` at `now`; returns the
    /// granted attempts and how many were told to wait.
    fn burst(
        g: &mut BruteForceGuard,
        now: Instant,
        n: usize,
        from: IpAddr,
        tag: &str,
    ) -> (Vec<Attempt>, usize) {
        let mut granted = Vec::new();
        let mut waiting = 0;
        for i in 0..n {
            match g.reserve(now, &format!("{tag}{i}"), from, Some("team")) {
                Admission::Granted(a) => granted.push(a),
                Admission::Wait => waiting += 1,
                other => panic!("caller {i}: {other:?}"),
            }
        }
        (granted, waiting)
    }

    #[test]
    fn simultaneous_guesses_get_no_more_verdicts_than_the_limit() {
        let t0 = Instant::now();
        let mut g = guard();
        // 40 calls from one address key a code before any is checked.
        let (granted, waiting) = burst(&mut g, t0, 40, ip(1), "+1555");
        assert_eq!((granted.len(), waiting), (10, 30), "ip_failures = 10");
        // The ten are checked and wrong: the last one locks the address.
        let mut reasons = Vec::new();
        for a in granted {
            reasons.push(g.confirm_failure(at(t0, 1), a));
        }
        assert_eq!(reasons.iter().flatten().count(), 1);
        assert_eq!(reasons.last(), Some(&Some(LockReason::SourceIp)));
        // The thirty ask again and are refused, and so is the right code
        // keyed inside the burst.
        for i in 0..30 {
            assert!(matches!(
                g.reserve(at(t0, 1), &format!("+1555{}", i + 10), ip(1), Some("team")),
                Admission::Refused(Refusal::Locked {
                    reason: LockReason::SourceIp,
                    ..
                })
            ));
        }
        assert!(matches!(
            g.reserve(at(t0, 1), "+19995550100", ip(1), Some("team")),
            Admission::Refused(Refusal::Locked { .. })
        ));
        assert_eq!(g.in_flight(), 0);
    }

    #[test]
    fn attempts_that_succeed_free_the_allowance_for_those_waiting() {
        let t0 = Instant::now();
        let mut g = guard();
        // A meeting starts: 25 people behind one office address key the
        // right PIN at once. None of them may be turned away.
        let (granted, waiting) = burst(&mut g, t0, 25, ip(1), "+1555");
        assert_eq!((granted.len(), waiting), (10, 15));
        for a in granted {
            g.release(t0, a);
        }
        let (granted, waiting) = burst(&mut g, t0, 15, ip(1), "+1666");
        assert_eq!((granted.len(), waiting), (10, 5));
        for a in granted {
            g.release(t0, a);
        }
        let (granted, waiting) = burst(&mut g, t0, 5, ip(1), "+1777");
        assert_eq!((granted.len(), waiting), (5, 0));
        for a in granted {
            g.release(t0, a);
        }
        assert_eq!(g.in_flight(), 0);
        assert_eq!(g.tracked_entries(), 0, "successes leave nothing behind");
    }

    #[test]
    fn one_caller_on_many_addresses_is_held_to_the_caller_limit_at_once() {
        let t0 = Instant::now();
        let mut g = guard();
        let mut granted = Vec::new();
        let mut waiting = 0;
        for i in 0..20u8 {
            match g.reserve(t0, "+15550001", ip(i), None) {
                Admission::Granted(a) => granted.push(a),
                Admission::Wait => waiting += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((granted.len(), waiting), (5, 15), "caller_failures = 5");
        for a in granted {
            let _ = g.confirm_failure(t0, a);
        }
        assert!(matches!(
            g.reserve(t0, "+15550001", ip(100), None),
            Admission::Refused(Refusal::Locked {
                reason: LockReason::Caller,
                ..
            })
        ));
    }

    #[test]
    fn an_abandoned_attempt_counts_as_a_failure() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(GuardLimits {
            caller_failures: 2,
            ..Default::default()
        });
        // Settled by the shell when its call vanishes mid-check...
        let a = granted(g.reserve(t0, "+15550001", ip(1), None));
        assert_eq!(g.confirm_failure(t0, a), None);
        // ...or, if even that handle is lost, by the guard itself.
        // (The attempt is dropped here, never settled.)
        let _lost = granted(g.reserve(t0, "+15550001", ip(1), None));
        assert_eq!(
            g.reserve(at(t0, 1), "+15550001", ip(1), None),
            Admission::Wait,
            "the lost attempt still holds its place"
        );
        let later = t0 + MAX_IN_FLIGHT;
        assert_eq!(g.prune(later), 1, "confirmed as a failure");
        assert_eq!(g.in_flight(), 0);
        assert!(matches!(
            g.reserve(later, "+15550001", ip(1), None),
            Admission::Refused(Refusal::Locked {
                reason: LockReason::Caller,
                ..
            })
        ));
    }

    #[test]
    fn settling_twice_or_an_unknown_attempt_changes_nothing() {
        let t0 = Instant::now();
        let mut g = guard();
        let a = granted(g.reserve(t0, "+15550001", ip(1), None));
        let id = a.id;
        g.release(t0, a);
        assert_eq!(
            g.confirm_failure(
                t0,
                Attempt {
                    id,
                    delay: Duration::ZERO
                }
            ),
            None
        );
        assert_eq!(g.tracked_entries(), 0);
    }

    #[test]
    fn attempts_in_flight_slow_a_conference_at_once() {
        let t0 = Instant::now();
        let mut g = guard();
        // 20 callers on 20 addresses: the conference's allowance.
        let mut held = Vec::new();
        for i in 0..20u8 {
            let a = granted(g.reserve(t0, &format!("+1555{i:04}"), ip(i), Some("team")));
            assert_eq!(a.delay(), Duration::ZERO);
            held.push(a);
        }
        let a = granted(g.reserve(t0, "+15559999", ip(200), Some("team")));
        assert_eq!(a.delay(), Duration::from_secs(3));
        assert_eq!(
            check(&mut g, t0, "+15558888", ip(201)),
            Verdict::Slowed(Duration::from_secs(3))
        );
        held.push(a);
        for a in held {
            g.release(t0, a);
        }
        assert_eq!(check(&mut g, t0, "+15558888", ip(201)), Verdict::Allowed);
    }

    // ------------------------------------------------ trusted sources

    fn behind_pbx() -> (BruteForceGuard, IpAddr) {
        let pbx = ip(10);
        let g = BruteForceGuard::new(GuardLimits {
            trusted_ips: vec![pbx],
            trusted_failures: 3,
            trusted_interval: Duration::from_secs(10),
            ..Default::default()
        });
        (g, pbx)
    }

    #[test]
    fn a_trusted_source_over_its_ceiling_is_paced_not_locked() {
        let t0 = Instant::now();
        let (mut g, pbx) = behind_pbx();
        // Rotating caller IDs behind the PBX: never a caller lockout, never
        // an address lockout.
        let mut reasons = Vec::new();
        for i in 0..3 {
            reasons.push(fail(&mut g, t0, &format!("+1555{i:04}"), pbx));
        }
        assert_eq!(reasons, [None, None, Some(LockReason::TrustedSource)]);
        // Over the ceiling, verdicts from the PBX come one per 10 s,
        // however many calls guess at once; past 30 s of queue, refused.
        let mut delays = Vec::new();
        let mut held = Vec::new();
        for i in 0..6 {
            match g.reserve(t0, &format!("+1666{i:04}"), pbx, Some("team")) {
                Admission::Granted(a) => {
                    delays.push(Some(a.delay().as_secs()));
                    held.push(a);
                }
                Admission::Refused(Refusal::Paced) => delays.push(None),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [Some(0), Some(10), Some(20), Some(30), None, None]);
        for a in held {
            assert_ne!(g.confirm_failure(t0, a), Some(LockReason::SourceIp));
        }
        assert_eq!(check(&mut g, t0, "+17770000", pbx), Verdict::Allowed);
        // The queue drains with time: at t0 + 40 s the next slot is free.
        let a = granted(g.reserve(at(t0, 40), "+17770001", pbx, Some("team")));
        assert_eq!(a.delay(), Duration::ZERO);
        g.release(at(t0, 40), a);
        // An untrusted address with as many failures is locked instead.
        for i in 0..10 {
            fail(&mut g, t0, &format!("+1888{i:04}"), ip(1));
        }
        assert!(matches!(
            check(&mut g, t0, "+18889999", ip(1)),
            Verdict::LockedOut {
                reason: LockReason::SourceIp,
                ..
            }
        ));
    }

    #[test]
    fn pacing_ends_when_the_trusted_window_drains() {
        let t0 = Instant::now();
        let (mut g, pbx) = behind_pbx();
        for i in 0..3 {
            fail(&mut g, t0, &format!("+1555{i:04}"), pbx);
        }
        let later = t0 + 15 * MIN;
        for i in 0..3 {
            let a = granted(g.reserve(later, &format!("+1666{i:04}"), pbx, None));
            assert_eq!(a.delay(), Duration::ZERO, "the ceiling's window has passed");
            g.release(later, a);
        }
    }

    // ------------------------------------------------ persistence

    const SECRET: [u8; CALLER_SECRET_LEN] = [42; CALLER_SECRET_LEN];

    #[test]
    fn a_persistent_guard_lists_what_to_store_in_order() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::persistent(GuardLimits::default(), &SECRET);
        let caller = GuardKey::Caller(g.caller_keys.key("+15550001", ip(1)));
        let addr = GuardKey::Ip(ip(1));

        let a = granted(g.reserve(t0, "+15550001", ip(1), Some("team")));
        assert_eq!(
            g.take_persist(),
            [
                Persist::Failure {
                    key: caller,
                    at: t0
                },
                Persist::Failure { key: addr, at: t0 },
            ],
            "written before the code is compared"
        );
        g.release(at(t0, 1), a);
        assert_eq!(
            g.take_persist(),
            [
                Persist::Forget { key: caller },
                Persist::Withdraw { key: addr, at: t0 },
            ]
        );
        for _ in 0..4 {
            fail(&mut g, t0, "+15550001", ip(1));
        }
        let _ = g.take_persist();
        assert_eq!(
            fail(&mut g, t0, "+15550001", ip(1)),
            Some(LockReason::Caller)
        );
        assert_eq!(
            g.take_persist(),
            [
                Persist::Failure {
                    key: caller,
                    at: t0
                },
                Persist::Failure { key: addr, at: t0 },
                Persist::Lockout {
                    key: caller,
                    until: t0 + 15 * MIN
                },
            ]
        );
        assert!(g.take_persist().is_empty());
        // A guard that is not persistent lists nothing.
        let mut plain = guard();
        fail(&mut plain, t0, "+15550001", ip(1));
        assert!(plain.take_persist().is_empty());
    }

    #[test]
    fn a_restored_guard_keeps_lockouts_and_failure_windows() {
        let t0 = Instant::now();
        let caller = |name: &str| GuardKey::Caller(CallerKeys::new(&SECRET).key(name, ip(1)));
        let restored = Restored {
            lockouts: vec![
                (caller("+15550001"), t0 + 10 * MIN),
                (GuardKey::Ip(ip(2)), t0 + 5 * MIN),
                (GuardKey::Ip(ip(3)), t0 - MIN),
            ],
            failures: vec![
                // Nine failures from address 4, one of them long gone.
                (GuardKey::Ip(ip(4)), t0 - 20 * MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (GuardKey::Ip(ip(4)), t0 - MIN),
                (caller("+15550002"), t0 - MIN),
            ],
        };
        let mut g = BruteForceGuard::persistent(GuardLimits::default(), &SECRET);
        g.restore(t0, restored.clone());
        assert!(
            g.take_persist().is_empty(),
            "nothing restored is stored again"
        );
        assert_eq!(
            check(&mut g, t0, "+15550001", ip(9)),
            Verdict::LockedOut {
                until: t0 + 10 * MIN,
                reason: LockReason::Caller
            }
        );
        assert_eq!(
            check(&mut g, t0, "+1", ip(2)),
            Verdict::LockedOut {
                until: t0 + 5 * MIN,
                reason: LockReason::SourceIp
            }
        );
        assert_eq!(check(&mut g, t0, "+1", ip(3)), Verdict::Allowed, "lapsed");
        // Address 4 has 8 failures in its window: two more lock it.
        assert_eq!(fail(&mut g, t0, "+1", ip(4)), None);
        assert_eq!(fail(&mut g, t0, "+2", ip(4)), Some(LockReason::SourceIp));

        // Caller keys come from the secret: under another one the stored
        // caller keys match nobody.
        let mut other = BruteForceGuard::persistent(GuardLimits::default(), &[7; 32]);
        other.restore(t0, restored);
        assert_eq!(check(&mut other, t0, "+15550001", ip(9)), Verdict::Allowed);
    }

    #[test]
    fn restored_failures_that_had_reached_the_limit_lock_from_then() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::persistent(GuardLimits::default(), &SECRET);
        let failures = (0..10).map(|_| (GuardKey::Ip(ip(5)), t0 - MIN)).collect();
        g.restore(
            t0,
            Restored {
                failures,
                lockouts: Vec::new(),
            },
        );
        assert_eq!(
            check(&mut g, t0, "+1", ip(5)),
            Verdict::LockedOut {
                until: t0 + 14 * MIN,
                reason: LockReason::SourceIp
            }
        );
    }
}
