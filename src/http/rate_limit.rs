//! Per-client request rates: one token bucket per [`SourceKey`], sans-I/O
//! (time comes in as a parameter).
//!
//! Memory is bounded: at most `capacity` clients are remembered, and a new
//! one beyond that pushes out the one remembered longest. An evicted
//! client simply starts again with a full bucket, so a flood of distinct
//! addresses costs a fixed amount of memory and O(1) per request, and can
//! at worst hand one of its own addresses a fresh burst: each address is
//! still held to its own bucket.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::otp::RateLimit;
use crate::net::SourceKey;

/// Clients remembered per limiter (about 50 bytes each).
pub const DEFAULT_CAPACITY: usize = 16_384;

/// A request's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit: a token will be there after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets per client.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    capacity: usize,
    buckets: HashMap<SourceKey, Bucket>,
    /// Clients in the order they were first seen: the eviction order.
    /// Holds exactly the keys of `buckets`.
    order: VecDeque<SourceKey>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit, capacity: usize) -> RateLimiter {
        RateLimiter {
            burst: f64::from(limit.burst.max(1)),
            per_sec: f64::from(limit.per_minute.max(1)) / 60.0,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Takes a token for `client` at `now`, or says how long until one is
    /// there.
    pub fn check(&mut self, client: SourceKey, now: Instant) -> Verdict {
        let (burst, per_sec) = (self.burst, self.per_sec);
        let bucket = match self.buckets.get_mut(&client) {
            Some(b) => {
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens = (b.tokens + elapsed * per_sec).min(burst);
                b.updated = b.updated.max(now);
                b
            }
            None => {
                if self.buckets.len() >= self.capacity {
                    if let Some(oldest) = self.order.pop_front() {
                        self.buckets.remove(&oldest);
                    }
                }
                self.order.push_back(client);
                self.buckets.entry(client).or_insert(Bucket {
                    tokens: burst,
                    updated: now,
                })
            }
        };
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Allowed
        } else {
            let wait = (1.0 - bucket.tokens) / per_sec;
            Verdict::Limited {
                retry_after: Duration::from_secs_f64(wait.max(0.0)),
            }
        }
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn v4(n: u32) -> SourceKey {
        SourceKey::of(IpAddr::V4(Ipv4Addr::from(n)))
    }

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit { per_minute, burst }, DEFAULT_CAPACITY)
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let t0 = Instant::now();
        let mut l = limiter(60, 3);
        for _ in 0..3 {
            assert_eq!(l.check(v4(1), t0), Verdict::Allowed);
        }
        // One a second after that.
        assert_eq!(
            l.check(v4(1), t0),
            Verdict::Limited {
                retry_after: Duration::from_secs(1)
            }
        );
        let half = t0 + Duration::from_millis(500);
        match l.check(v4(1), half) {
            Verdict::Limited { retry_after } => {
                assert!(
                    (retry_after.as_secs_f64() - 0.5).abs() < 1e-6,
                    "{retry_after:?}"
                )
            }
            v => panic!("{v:?}"),
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.check(v4(1), t1), Verdict::Allowed);
        assert!(matches!(l.check(v4(1), t1), Verdict::Limited { .. }));
        // Another client is not affected.
        assert_eq!(l.check(v4(2), t1), Verdict::Allowed);
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(v4(1), later), Verdict::Allowed);
        }
        assert!(matches!(l.check(v4(1), later), Verdict::Limited { .. }));
    }

    #[test]
    fn a_slow_rate_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut l = limiter(1, 1);
        assert_eq!(l.check(v4(1), t0), Verdict::Allowed);
        assert_eq!(
            l.check(v4(1), t0 + Duration::from_secs(20)),
            Verdict::Limited {
                retry_after: Duration::from_secs(40)
            }
        );
    }

    #[test]
    fn limited_requests_do_not_dig_a_deeper_hole() {
        // Refused requests take no token: a client that keeps knocking is
        // let in again as soon as the rate allows.
        let t0 = Instant::now();
        let mut l = limiter(60, 1);
        assert_eq!(l.check(v4(1), t0), Verdict::Allowed);
        for i in 0..100 {
            let _ = l.check(v4(1), t0 + Duration::from_millis(i));
        }
        assert_eq!(
            l.check(v4(1), t0 + Duration::from_secs(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut l = limiter(60, 1);
        assert_eq!(l.check(v4(1), t0), Verdict::Allowed);
        assert!(matches!(
            l.check(v4(1), t0 - Duration::from_secs(5)),
            Verdict::Limited { .. }
        ));
        assert_eq!(
            l.check(v4(1), t0 + Duration::from_secs(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn memory_is_bounded_under_many_addresses() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(
            RateLimit {
                per_minute: 1,
                burst: 1,
            },
            100,
        );
        // A client that used its token...
        assert_eq!(l.check(v4(0), t0), Verdict::Allowed);
        assert!(matches!(l.check(v4(0), t0), Verdict::Limited { .. }));
        // ...is still held while fewer than `capacity` others arrive.
        for n in 1..100 {
            assert_eq!(l.check(v4(n), t0), Verdict::Allowed);
        }
        assert!(matches!(l.check(v4(0), t0), Verdict::Limited { .. }));
        // Many distinct addresses: never more than 100 remembered.
        for n in 100..200_000 {
            let _ = l.check(v4(n), t0);
            assert!(l.len() <= 100);
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.order.len(), 100);
        // The oldest were pushed out; the newest are still held.
        assert!(matches!(l.check(v4(199_999), t0), Verdict::Limited { .. }));
        assert_eq!(l.check(v4(0), t0), Verdict::Allowed, "forgotten: fresh");
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        let t0 = Instant::now();
        let mut l = limiter(1, 2);
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!(l.check(SourceKey::of(a), t0), Verdict::Allowed);
        assert_eq!(l.check(SourceKey::of(b), t0), Verdict::Allowed);
        assert!(matches!(
            l.check(SourceKey::of(b), t0),
            Verdict::Limited { .. }
        ));
        assert_eq!(l.check(SourceKey::of(c), t0), Verdict::Allowed);
    }
}
