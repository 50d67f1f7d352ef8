//! Per-source limits on what the user agent takes in and sends back, so a
//! flood from one address (or from many spoofed ones) cannot take every
//! RTP port, starve other callers or use pinbridge as a reflector.
//!
//! Three bounds, all keyed by source address (IPv6 per /64, like the
//! brute-force guard, since one subscriber routinely holds a whole /64):
//!
//! - **Request rate.** A token bucket per source for out-of-dialog requests
//!   (new INVITEs, OPTIONS, anything without a dialog). Retransmissions
//!   matched to a transaction, ACKs, CANCELs of a live INVITE, responses
//!   and in-dialog requests are never counted: they cost us nothing new.
//!   A source that has completed a handshake (ACKed one of our answers, or
//!   answered one of our requests) has proven its address and gets the
//!   higher `confirmed` rate, so a PBX or trunk that ACKs at once is not
//!   held to the rate of an unknown address.
//! - **Half-open INVITEs.** Calls offered or answered but not yet ACKed,
//!   per source and in total. This, not the call rate, is what holds RTP
//!   ports and memory: a trunk at 1,000 calls/s that ACKs at once has few
//!   half-open calls; a flood that never ACKs reaches the bound and stops.
//! - **Reply budget.** Over UDP anyone can forge a source address, so what
//!   we send to an address that has not completed a handshake is paid for
//!   by what it sent: each datagram received credits half its size, plus a
//!   small starting budget (enough for a first call and a few 2xx
//!   retransmissions) and a slow refill (enough for an OPTIONS prober
//!   every few seconds; a faster one is listed as a known source).
//!   A replay of requests therefore gets back fewer bytes than it sent.
//!   Confirmed sources and TCP (whose handshake proves the address) are
//!   not budgeted.
//!
//! Over a limit the request is dropped without an answer (a 503 would be
//! more reflection) and counted; drops are logged at most once per source
//! per interval, and at most a few lines per interval in all.
//!
//! The table of sources is capped: under a flood of spoofed sources, the
//! entries not used since the last sweep go first (the CLOCK
//! second-chance algorithm: amortised constant time per insertion).
//!
//! Sans-I/O: every call takes `now`; nothing here reads a clock.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::net::SourceKey;

/// Share of each received datagram's size credited to the reply budget
/// of an unconfirmed source. Below 1, so no replay of requests can get
/// back as many bytes as it sent.
const CREDIT_PER_BYTE_RECEIVED: f64 = 0.5;

/// Log lines about dropped requests allowed per log interval across all
/// sources (a spoofed flood has a new source per packet).
const LOG_LINES_PER_INTERVAL: u32 = 10;

/// A token bucket's shape: sustained requests per second and burst size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    pub per_sec: u32,
    pub burst: u32,
}

/// An IP network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`, or a
/// bare address for one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a network did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("`{0}` is not an IP address")]
    Address(String),
    #[error("prefix length `{0}` is not a number from 0 to {1}")]
    Prefix(String, u8),
}

impl IpNet {
    /// Whether this network covers a source: an IPv6 source is a whole
    /// /64, so a narrower IPv6 network (one host) matches its /64.
    fn covers(&self, key: SourceKey) -> bool {
        match self.addr {
            IpAddr::V6(_) if self.prefix > 64 => IpNet {
                addr: self.addr,
                prefix: 64,
            }
            .contains(key.ip()),
            _ => self.contains(key.ip()),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr_text
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| IpNetError::Address(addr_text.to_string()))?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| IpNetError::Prefix(p.to_string(), max))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A known PBX, trunk or proxy (a Kamailio that probes with OPTIONS):
/// it counts as confirmed from its first packet (confirmed rate and
/// half-open bound, no reply budget), with optional limits of its own.
/// The operator vouches for the address: a forged packet from it gets an
/// answer sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOverride {
    pub net: IpNet,
    /// Replaces both the new-source and the confirmed rate.
    pub rate: Option<RequestRate>,
    pub max_half_open: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceLimitSettings {
    /// Out-of-dialog requests from a source that has not completed a
    /// handshake yet.
    pub new_source_rate: RequestRate,
    /// Out-of-dialog requests from a source that has.
    pub confirmed_rate: RequestRate,
    pub max_half_open_per_source: u32,
    /// The same for a source that has completed a handshake: a trunk whose
    /// ACKs come a little late under load still fits.
    pub confirmed_max_half_open_per_source: u32,
    pub max_half_open: u32,
    /// Starting (and largest) reply budget of an unconfirmed source.
    pub reply_budget_bytes: u32,
    /// Reply budget regained per second of an unconfirmed source.
    pub reply_refill_bytes_per_sec: u32,
    /// Sources remembered at once.
    pub max_sources: usize,
    /// A source unseen this long starts afresh (unconfirmed, full bucket);
    /// a proof of address (an ACK, an answer) lasts this long.
    pub idle_timeout: Duration,
    /// Drops are logged at most once per source per interval.
    pub log_interval: Duration,
    /// First match wins.
    pub overrides: Vec<SourceOverride>,
}

impl Default for SourceLimitSettings {
    fn default() -> Self {
        SourceLimitSettings {
            new_source_rate: RequestRate {
                per_sec: 20,
                burst: 50,
            },
            confirmed_rate: RequestRate {
                per_sec: 3000,
                burst: 6000,
            },
            max_half_open_per_source: 200,
            confirmed_max_half_open_per_source: 500,
            max_half_open: 1000,
            reply_budget_bytes: 8192,
            reply_refill_bytes_per_sec: 128,
            max_sources: 65_536,
            idle_timeout: Duration::from_secs(600),
            log_interval: Duration::from_secs(60),
            overrides: Vec::new(),
        }
    }
}

/// Why a request was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The source's out-of-dialog request bucket is empty.
    RateLimited,
    /// The source has as many unACKed INVITEs as it may.
    HalfOpenPerSource,
    /// Everyone together has as many unACKed INVITEs as allowed.
    HalfOpenTotal,
}

impl Dropped {
    fn as_str(self) -> &'static str {
        match self {
            Dropped::RateLimited => "request rate over the limit",
            Dropped::HalfOpenPerSource => "too many unanswered or unacknowledged INVITEs",
            Dropped::HalfOpenTotal => "too many half-open INVITEs in total",
        }
    }
}

/// Counters since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceLimitStats {
    pub dropped_rate: u64,
    pub dropped_half_open_source: u64,
    pub dropped_half_open_total: u64,
    /// Replies not sent because the destination's budget was spent.
    pub replies_suppressed: u64,
    pub reply_bytes_suppressed: u64,
    /// Sources forgotten to make room for new ones.
    pub evicted: u64,
    /// Sources remembered now.
    pub sources: usize,
    /// INVITEs offered or answered and not yet ACKed now.
    pub half_open: u32,
}

#[derive(Debug)]
struct Source {
    /// Out-of-dialog requests available.
    tokens: f64,
    /// Bytes we may still send while unconfirmed.
    budget: f64,
    /// When tokens and budget were last brought up to date.
    updated: Instant,
    confirmed: bool,
    /// When the source last proved its address (an ACK, an answer to our
    /// request): confirmation lapses `idle_timeout` after it, however much
    /// else arrives meanwhile, so an attacker forging the address of a
    /// past caller gets that caller's budget back within minutes.
    proven_at: Instant,
    /// Set when used again after the moment it was created; the eviction
    /// sweep clears it (second chance). A source seen at one instant only
    /// (a spoofed packet) never gets it and is the first to go.
    referenced: bool,
    created: Instant,
    /// The override that applies (index into the settings), looked up once.
    override_idx: Option<usize>,
    dropped_unlogged: u64,
    last_logged: Option<Instant>,
}

/// The limiter. See the module documentation.
#[derive(Debug)]
pub struct SourceLimits {
    cfg: SourceLimitSettings,
    sources: HashMap<SourceKey, Source>,
    /// Sweep order for eviction; holds each remembered key once.
    clock: VecDeque<SourceKey>,
    /// Half-open INVITEs per source; an entry exists only while non-zero,
    /// so this holds at most `max_half_open` keys.
    half_open: HashMap<SourceKey, u32>,
    half_open_total: u32,
    stats: SourceLimitStats,
    log_window: Option<Instant>,
    log_lines: u32,
    /// Drops not logged because the per-interval line budget was spent.
    unlogged_sources: u64,
    /// The latest `now` we were given.
    last_now: Option<Instant>,
}

impl SourceLimits {
    pub fn new(cfg: SourceLimitSettings) -> Self {
        SourceLimits {
            cfg,
            sources: HashMap::new(),
            clock: VecDeque::new(),
            half_open: HashMap::new(),
            half_open_total: 0,
            stats: SourceLimitStats::default(),
            log_window: None,
            log_lines: 0,
            unlogged_sources: 0,
            last_now: None,
        }
    }

    pub fn settings(&self) -> &SourceLimitSettings {
        &self.cfg
    }

    pub fn stats(&self) -> SourceLimitStats {
        SourceLimitStats {
            sources: self.sources.len(),
            half_open: self.half_open_total,
            ..self.stats
        }
    }

    /// A datagram of `len` bytes arrived from `ip` over UDP: it pays for
    /// part of what we may send back.
    pub fn on_datagram(&mut self, now: Instant, ip: IpAddr, len: usize) {
        let cap = f64::from(self.cfg.reply_budget_bytes);
        let src = self.touch(now, SourceKey::of(ip));
        if !src.confirmed {
            src.budget = (src.budget + len as f64 * CREDIT_PER_BYTE_RECEIVED).min(cap);
        }
    }

    /// Takes one out-of-dialog request from `ip` if its bucket allows.
    pub fn admit_request(&mut self, now: Instant, ip: IpAddr) -> Result<(), Dropped> {
        let key = SourceKey::of(ip);
        let src = self.touch(now, key);
        if src.tokens >= 1.0 {
            src.tokens -= 1.0;
            Ok(())
        } else {
            self.stats.dropped_rate += 1;
            self.note_drop(now, key, Dropped::RateLimited);
            Err(Dropped::RateLimited)
        }
    }

    /// Takes a new INVITE from `ip`: one request from its bucket and one
    /// half-open slot, to be given back with [`SourceLimits::release`]
    /// once the call is ACKed or gone.
    pub fn admit_invite(&mut self, now: Instant, ip: IpAddr) -> Result<(), Dropped> {
        self.admit_request(now, ip)?;
        let key = SourceKey::of(ip);
        let src = self.sources.get(&key);
        let default = if src.is_some_and(|s| s.confirmed) {
            self.cfg.confirmed_max_half_open_per_source
        } else {
            self.cfg.max_half_open_per_source
        };
        let per_source = src
            .and_then(|s| s.override_idx)
            .and_then(|i| self.cfg.overrides.get(i))
            .and_then(|o| o.max_half_open)
            .unwrap_or(default);
        let mine = self.half_open.get(&key).copied().unwrap_or(0);
        let verdict = if mine >= per_source {
            self.stats.dropped_half_open_source += 1;
            Err(Dropped::HalfOpenPerSource)
        } else if self.half_open_total >= self.cfg.max_half_open {
            self.stats.dropped_half_open_total += 1;
            Err(Dropped::HalfOpenTotal)
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => {
                *self.half_open.entry(key).or_insert(0) += 1;
                self.half_open_total += 1;
                Ok(())
            }
            Err(why) => {
                self.note_drop(now, key, why);
                Err(why)
            }
        }
    }

    /// A half-open INVITE from `ip` was ACKed or ended.
    pub fn release(&mut self, ip: IpAddr) {
        let key = SourceKey::of(ip);
        if let Some(n) = self.half_open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open.remove(&key);
            }
            self.half_open_total = self.half_open_total.saturating_sub(1);
        }
    }

    /// `ip` proved it receives what we send to it (it ACKed our 2xx, or
    /// answered our request): it is no longer budgeted and gets the
    /// confirmed request rate.
    pub fn confirm(&mut self, now: Instant, ip: IpAddr) {
        let key = SourceKey::of(ip);
        let src = self.touch(now, key);
        src.proven_at = now;
        if src.confirmed {
            return;
        }
        src.confirmed = true;
        // The bucket was sized for a new source: start the confirmed one
        // full.
        let burst = self.rate_of(key).burst;
        if let Some(src) = self.sources.get_mut(&key) {
            src.tokens = f64::from(burst);
        }
    }

    pub fn is_confirmed(&self, ip: IpAddr) -> bool {
        self.sources
            .get(&SourceKey::of(ip))
            .is_some_and(|s| s.confirmed)
    }

    /// May we send `len` bytes to `ip` over UDP? Spends the budget of an
    /// unconfirmed source; counts what is refused.
    pub fn allow_reply(&mut self, ip: IpAddr, len: usize) -> bool {
        let key = SourceKey::of(ip);
        if !self.sources.contains_key(&key) {
            // Forgotten since it last sent (the table was full): it starts
            // again with the initial budget, at the last time we were told.
            let Some(now) = self.last_now else {
                return true;
            };
            self.touch(now, key);
        }
        let Some(src) = self.sources.get_mut(&key) else {
            return true;
        };
        if src.confirmed {
            return true;
        }
        if src.budget >= len as f64 {
            src.budget -= len as f64;
            true
        } else {
            self.stats.replies_suppressed += 1;
            self.stats.reply_bytes_suppressed += len as u64;
            false
        }
    }

    // ------------------------------------------------------------------

    fn rate_of(&self, key: SourceKey) -> RequestRate {
        let Some(src) = self.sources.get(&key) else {
            return self.cfg.new_source_rate;
        };
        let over = src
            .override_idx
            .and_then(|i| self.cfg.overrides.get(i))
            .and_then(|o| o.rate);
        match (over, src.confirmed) {
            (Some(r), _) => r,
            (None, true) => self.cfg.confirmed_rate,
            (None, false) => self.cfg.new_source_rate,
        }
    }

    /// The entry for `key`, created (evicting another if the table is
    /// full) or reset if idle too long, with its bucket and budget brought
    /// up to `now`.
    fn touch(&mut self, now: Instant, key: SourceKey) -> &mut Source {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
        let stale = self
            .sources
            .get(&key)
            .is_some_and(|s| now.saturating_duration_since(s.updated) >= self.cfg.idle_timeout);
        if stale {
            // Forget it but keep its place in the sweep order.
            if let Some(s) = self.sources.get_mut(&key) {
                *s = Self::fresh(&self.cfg, now, key);
            }
        }
        if !self.sources.contains_key(&key) {
            if self.sources.len() >= self.cfg.max_sources.max(1) {
                self.evict_one();
            }
            self.sources.insert(key, Self::fresh(&self.cfg, now, key));
            self.clock.push_back(key);
        }
        let rate = self.rate_of(key);
        let refill = f64::from(self.cfg.reply_refill_bytes_per_sec);
        let cap = f64::from(self.cfg.reply_budget_bytes);
        // `contains_key` above makes this lookup succeed; the fallback
        // keeps the function total without a panic path.
        let src = self
            .sources
            .entry(key)
            .or_insert_with(|| Self::fresh(&self.cfg, now, key));
        let lapsed = src.confirmed
            && src.override_idx.is_none()
            && now.saturating_duration_since(src.proven_at) >= self.cfg.idle_timeout;
        if lapsed {
            src.confirmed = false;
            src.budget = cap;
            src.tokens = src.tokens.min(f64::from(self.cfg.new_source_rate.burst));
        }
        let rate = if lapsed {
            self.cfg.new_source_rate
        } else {
            rate
        };
        let dt = now.saturating_duration_since(src.updated).as_secs_f64();
        if dt > 0.0 {
            src.tokens = (src.tokens + dt * f64::from(rate.per_sec)).min(f64::from(rate.burst));
            if !src.confirmed {
                src.budget = (src.budget + dt * refill).min(cap);
            }
            src.updated = now;
        }
        if now > src.created {
            src.referenced = true;
        }
        src
    }

    fn fresh(cfg: &SourceLimitSettings, now: Instant, key: SourceKey) -> Source {
        let override_idx = cfg.overrides.iter().position(|o| o.net.covers(key));
        let rate = override_idx
            .and_then(|i| cfg.overrides.get(i))
            .and_then(|o| o.rate)
            .unwrap_or(if override_idx.is_some() {
                cfg.confirmed_rate
            } else {
                cfg.new_source_rate
            });
        Source {
            tokens: f64::from(rate.burst),
            budget: f64::from(cfg.reply_budget_bytes),
            updated: now,
            confirmed: override_idx.is_some(),
            proven_at: now,
            referenced: false,
            created: now,
            override_idx,
            dropped_unlogged: 0,
            last_logged: None,
        }
    }

    /// Forgets one source not used since the sweep last passed it.
    fn evict_one(&mut self) {
        // Every step either evicts or clears a reference bit, so this ends
        // within two turns of the clock; amortised it is constant time.
        let limit = self.clock.len().saturating_mul(2).max(1);
        for _ in 0..limit {
            let Some(key) = self.clock.pop_front() else {
                return;
            };
            match self.sources.get_mut(&key) {
                None => continue,
                Some(s) if s.referenced => {
                    s.referenced = false;
                    self.clock.push_back(key);
                }
                Some(_) => {
                    self.sources.remove(&key);
                    self.stats.evicted += 1;
                    return;
                }
            }
        }
    }

    fn note_drop(&mut self, now: Instant, key: SourceKey, why: Dropped) {
        let interval = self.cfg.log_interval;
        if self
            .log_window
            .is_none_or(|w| now.saturating_duration_since(w) >= interval)
        {
            self.log_window = Some(now);
            self.log_lines = 0;
        }
        let Some(src) = self.sources.get_mut(&key) else {
            return;
        };
        src.dropped_unlogged += 1;
        let due = src
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        if !due {
            return;
        }
        if self.log_lines >= LOG_LINES_PER_INTERVAL {
            self.unlogged_sources += 1;
            return;
        }
        self.log_lines += 1;
        let dropped = std::mem::take(&mut src.dropped_unlogged);
        src.last_logged = Some(now);
        let others = std::mem::take(&mut self.unlogged_sources);
        tracing::warn!(
            source = %key,
            reason = why.as_str(),
            dropped,
            other_sources_unlogged = others,
            "dropping SIP requests from a source over its limits"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn settings() -> SourceLimitSettings {
        SourceLimitSettings {
            new_source_rate: RequestRate {
                per_sec: 10,
                burst: 20,
            },
            confirmed_rate: RequestRate {
                per_sec: 1000,
                burst: 2000,
            },
            max_half_open_per_source: 5,
            confirmed_max_half_open_per_source: 7,
            max_half_open: 8,
            reply_budget_bytes: 4000,
            reply_refill_bytes_per_sec: 50,
            max_sources: 100,
            idle_timeout: Duration::from_secs(600),
            log_interval: Duration::from_secs(60),
            overrides: Vec::new(),
        }
    }

    #[test]
    fn bucket_admits_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        let admitted = (0..100).filter(|_| l.admit_request(t0, a).is_ok()).count();
        assert_eq!(admitted, 20, "the burst and no more at one instant");
        assert_eq!(l.admit_request(t0, a), Err(Dropped::RateLimited));
        // Half a second later: 10/s has refilled five.
        let t = t0 + Duration::from_millis(500);
        let admitted = (0..100).filter(|_| l.admit_request(t, a).is_ok()).count();
        assert_eq!(admitted, 5);
        // Another source is not affected.
        assert!(l.admit_request(t, ip("192.0.2.2")).is_ok());
        // A long pause refills to the burst, not beyond.
        let t = t0 + Duration::from_secs(3600);
        let admitted = (0..100).filter(|_| l.admit_request(t, a).is_ok()).count();
        assert_eq!(admitted, 20);
        assert_eq!(l.stats().dropped_rate, 100 - 20 + 1 + 95 + 80);
    }

    #[test]
    fn a_confirmed_source_gets_the_confirmed_rate() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        assert!(l.admit_invite(t0, a).is_ok());
        l.confirm(t0, a);
        l.release(a);
        assert!(l.is_confirmed(a));
        let admitted = (0..5000).filter(|_| l.admit_request(t0, a).is_ok()).count();
        assert_eq!(admitted, 2000);
        let t = t0 + Duration::from_secs(1);
        let admitted = (0..5000).filter(|_| l.admit_request(t, a).is_ok()).count();
        assert_eq!(admitted, 1000);
    }

    #[test]
    fn a_confirmed_source_may_hold_more_half_open_invites() {
        let t0 = Instant::now();
        let mut cfg = settings();
        cfg.max_half_open = 100;
        let mut l = SourceLimits::new(cfg);
        let (new, known) = (ip("192.0.2.1"), ip("192.0.2.2"));
        l.confirm(t0, known);
        let admitted = (0..20).filter(|_| l.admit_invite(t0, new).is_ok()).count();
        assert_eq!(admitted, 5);
        let admitted = (0..20)
            .filter(|_| l.admit_invite(t0, known).is_ok())
            .count();
        assert_eq!(admitted, 7);
    }

    #[test]
    fn half_open_invites_are_bounded_per_source_and_in_total() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        for _ in 0..5 {
            assert!(l.admit_invite(t0, a).is_ok());
        }
        assert_eq!(l.admit_invite(t0, a), Err(Dropped::HalfOpenPerSource));
        for _ in 0..3 {
            assert!(l.admit_invite(t0, b).is_ok());
        }
        // Eight half-open in all: a third source is refused too.
        assert_eq!(l.admit_invite(t0, c), Err(Dropped::HalfOpenTotal));
        assert_eq!(l.stats().half_open, 8);
        // One of a's calls is ACKed: a gets a slot back, so does everyone.
        l.release(a);
        assert!(l.admit_invite(t0, c).is_ok());
        assert_eq!(l.admit_invite(t0, a), Err(Dropped::HalfOpenTotal));
        for _ in 0..5 {
            l.release(a);
        }
        // Releasing more than was taken cannot go below zero or free
        // another source's slots.
        l.release(a);
        assert_eq!(l.stats().half_open, 4);
        let s = l.stats();
        assert_eq!(s.dropped_half_open_source, 1);
        assert_eq!(s.dropped_half_open_total, 2);
    }

    #[test]
    fn an_override_gives_a_trunk_more() {
        let t0 = Instant::now();
        let mut cfg = settings();
        cfg.overrides.push(SourceOverride {
            net: "198.51.100.0/24".parse().unwrap(),
            rate: Some(RequestRate {
                per_sec: 5000,
                burst: 500,
            }),
            max_half_open: Some(7),
        });
        cfg.max_half_open = 100;
        let mut l = SourceLimits::new(cfg);
        let trunk = ip("198.51.100.77");
        let admitted = (0..1000)
            .filter(|_| l.admit_request(t0, trunk).is_ok())
            .count();
        assert_eq!(admitted, 500);
        let t = t0 + Duration::from_secs(1);
        let admitted = (0..10).filter(|_| l.admit_invite(t, trunk).is_ok()).count();
        assert_eq!(admitted, 7);
        // Outside the network: the defaults.
        let admitted = (0..100)
            .filter(|_| l.admit_request(t0, ip("198.51.101.1")).is_ok())
            .count();
        assert_eq!(admitted, 20);
    }

    /// What a flood of INVITEs that never ACKs gets back: each admitted
    /// INVITE would be answered with 100 Trying, a 200 OK retransmitted
    /// ten times, and a BYE retransmitted ten times.
    fn flood(
        l: &mut SourceLimits,
        a: IpAddr,
        start: Instant,
        every: Duration,
        n: u32,
    ) -> (u64, u64) {
        const INVITE: usize = 700;
        let replies = [
            350usize, 900, 900, 900, 900, 900, 900, 900, 900, 900, 900, 900,
        ];
        let (mut sent_to_us, mut got_back) = (0u64, 0u64);
        for i in 0..n {
            let now = start + every * i;
            l.on_datagram(now, a, INVITE);
            sent_to_us += INVITE as u64;
            if l.admit_invite(now, a).is_ok() {
                for r in replies {
                    if l.allow_reply(a, r) {
                        got_back += r as u64;
                    }
                }
                l.release(a);
            }
        }
        (sent_to_us, got_back)
    }

    #[test]
    fn a_source_that_never_acks_gets_back_less_than_it_sent() {
        let t0 = Instant::now();
        // The burst of the issue: 10,000 INVITEs in a second, with rate
        // limits that would let every one through.
        let mut cfg = settings();
        cfg.new_source_rate = RequestRate {
            per_sec: 100_000,
            burst: 100_000,
        };
        cfg.max_half_open_per_source = 100_000;
        cfg.confirmed_max_half_open_per_source = 100_000;
        cfg.max_half_open = 100_000;
        let mut l = SourceLimits::new(cfg.clone());
        let (sent, back) = flood(
            &mut l,
            ip("192.0.2.1"),
            t0,
            Duration::from_micros(100),
            10_000,
        );
        assert!(back < sent, "burst: {back} bytes back for {sent}");
        assert!(back <= 4000 + sent / 2, "{back} for {sent}");
        assert!(l.stats().replies_suppressed > 0);
        // A slow sender: 5 INVITEs a second for a minute.
        let mut l = SourceLimits::new(cfg);
        let (sent, back) = flood(&mut l, ip("192.0.2.1"), t0, Duration::from_millis(200), 300);
        assert!(back < sent, "slow: {back} bytes back for {sent}");
    }

    #[test]
    fn a_first_time_caller_gets_its_answers_and_a_confirmed_one_is_not_budgeted() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        l.on_datagram(t0, a, 700);
        assert!(l.admit_invite(t0, a).is_ok());
        // 100 Trying, 200 OK and two retransmissions of it (lost ACKs).
        for r in [350, 900, 900, 900] {
            assert!(l.allow_reply(a, r), "reply of {r} bytes");
        }
        l.on_datagram(t0, a, 400);
        l.confirm(t0, a);
        l.release(a);
        // Confirmed: replies are not budgeted at all.
        assert!((0..1000).all(|_| l.allow_reply(a, 1400)));
        assert_eq!(l.stats().replies_suppressed, 0);
    }

    #[test]
    fn an_options_prober_keeps_getting_answers() {
        // A dispatcher probing every 3 s with a ~250 byte OPTIONS gets a
        // ~450 byte 200 OK: with the default refill it is always answered.
        let t0 = Instant::now();
        let mut l = SourceLimits::new(SourceLimitSettings::default());
        let a = ip("192.0.2.1");
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_secs(3) * i;
            l.on_datagram(now, a, 250);
            assert!(l.admit_request(now, a).is_ok());
            assert!(l.allow_reply(a, 450), "probe {i} answered");
        }
        // Ten times a second it is not, unless it is a listed source.
        let fast = ip("192.0.2.2");
        let answered = (0..600u32)
            .filter(|i| {
                let now = t0 + Duration::from_millis(100) * *i;
                l.on_datagram(now, fast, 250);
                l.admit_request(now, fast).is_ok() && l.allow_reply(fast, 450)
            })
            .count();
        assert!(answered < 600, "{answered}");
        let mut cfg = SourceLimitSettings::default();
        cfg.overrides.push(SourceOverride {
            net: "192.0.2.2".parse().unwrap(),
            rate: None,
            max_half_open: None,
        });
        let mut l = SourceLimits::new(cfg);
        for i in 0..600u32 {
            let now = t0 + Duration::from_millis(100) * i;
            l.on_datagram(now, fast, 250);
            assert!(l.admit_request(now, fast).is_ok());
            assert!(l.allow_reply(fast, 450), "listed probe {i} answered");
        }
        assert!(l.is_confirmed(fast));
    }

    #[test]
    fn the_table_is_capped_and_busy_sources_survive_a_spoofed_flood() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let legit = ip("192.0.2.1");
        l.on_datagram(t0, legit, 700);
        l.confirm(t0, legit);
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            let spoofed = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.on_datagram(now, spoofed, 700);
            let _ = l.admit_request(now, spoofed);
            if i % 20 == 0 {
                // The legitimate peer keeps talking to us.
                l.on_datagram(now, legit, 400);
            }
            assert!(l.stats().sources <= 100);
        }
        assert!(l.is_confirmed(legit), "the active source was not evicted");
        assert!(l.stats().evicted >= 99_000);
        assert!(l.clock.len() <= 100, "the sweep order is bounded too");
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let admitted = (0..100u16)
            .filter(|i| {
                let a = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, *i));
                l.admit_request(t0, a).is_ok()
            })
            .count();
        assert_eq!(admitted, 20, "one /64 is one source");
        assert!(l.admit_request(t0, ip("2001:db8:0:2::1")).is_ok());
        let admitted = (0..30)
            .filter(|_| l.admit_request(t0, ip("::ffff:192.0.2.9")).is_ok())
            .count();
        assert_eq!(admitted, 20);
        assert_eq!(
            l.admit_request(t0, ip("192.0.2.9")),
            Err(Dropped::RateLimited)
        );
    }

    #[test]
    fn an_idle_source_starts_afresh() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        l.confirm(t0, a);
        assert!(l.is_confirmed(a));
        l.on_datagram(t0 + Duration::from_secs(601), a, 100);
        assert!(!l.is_confirmed(a), "confirmation lapses with idleness");
    }

    #[test]
    fn an_ipv6_host_listed_alone_gets_its_override() {
        let t0 = Instant::now();
        let mut cfg = settings();
        cfg.overrides.push(SourceOverride {
            net: "2001:db8:0:7::5".parse().unwrap(),
            rate: Some(RequestRate {
                per_sec: 1000,
                burst: 300,
            }),
            max_half_open: None,
        });
        let mut l = SourceLimits::new(cfg);
        let pbx = ip("2001:db8:0:7::5");
        let admitted = (0..1000)
            .filter(|_| l.admit_request(t0, pbx).is_ok())
            .count();
        assert_eq!(admitted, 300);
        assert!(l.is_confirmed(pbx));
        let other = ip("2001:db8:0:8::5");
        let admitted = (0..1000)
            .filter(|_| l.admit_request(t0, other).is_ok())
            .count();
        assert_eq!(admitted, 20);
    }

    #[test]
    fn confirmation_lapses_after_the_last_proof_however_busy_the_source() {
        // A caller completed a call; later someone forges its address and
        // keeps it busy: its exemption from the budget ends ten minutes
        // after its last ACK, not ten minutes after the last forged packet.
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        l.confirm(t0, a);
        for s in 0..600u64 {
            l.on_datagram(t0 + Duration::from_secs(s), a, 100);
        }
        assert!(l.is_confirmed(a));
        assert!(l.allow_reply(a, 100_000), "not budgeted while proven");
        let later = t0 + Duration::from_secs(601);
        l.on_datagram(later, a, 100);
        assert!(!l.is_confirmed(a));
        assert!(!l.allow_reply(a, 100_000), "budgeted again");
        // Each new proof extends it.
        l.confirm(later, a);
        l.on_datagram(later + Duration::from_secs(599), a, 100);
        assert!(l.is_confirmed(a));
    }

    #[test]
    fn networks_parse_and_match() {
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains(ip("192.0.2.200")));
        assert!(n.contains(ip("::ffff:192.0.2.1")));
        assert!(!n.contains(ip("192.0.3.1")));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("2001:db8::1")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert_eq!(
            "192.0.2.0/33".parse::<IpNet>(),
            Err(IpNetError::Prefix("33".into(), 32))
        );
        assert!(matches!(
            "é/8".parse::<IpNet>(),
            Err(IpNetError::Address(_))
        ));
        assert!("2001:db8::/x".parse::<IpNet>().is_err());
    }

    #[test]
    fn drops_are_logged_once_per_source_per_interval() {
        let t0 = Instant::now();
        let mut l = SourceLimits::new(settings());
        let a = ip("192.0.2.1");
        for _ in 0..1000 {
            let _ = l.admit_request(t0, a);
        }
        let src = &l.sources[&SourceKey::of(a)];
        assert!(src.last_logged == Some(t0));
        assert_eq!(src.dropped_unlogged, 1000 - 20 - 1, "counted, not logged");
        assert_eq!(l.log_lines, 1);
        // Many sources: at most LOG_LINES_PER_INTERVAL lines.
        for i in 0..100u32 {
            let s = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..25 {
                let _ = l.admit_request(t0, s);
            }
        }
        assert_eq!(l.log_lines, LOG_LINES_PER_INTERVAL);
        assert!(l.unlogged_sources > 0);
    }
}
