//! The brute-force guard's shell: one [`BruteForceGuard`] shared by every
//! call, its clock, the calls waiting for attempts in flight to settle, and
//! the writer that stores its changes.
//!
//! The core is touched a few times per call under a plain mutex (never per
//! packet). Every change it lists for storing is converted to wall-clock
//! time and queued to the writer task *under the same lock*, so the writes
//! reach the store in the order they happened; the writer batches them into
//! one transaction on the store thread, so no call task ever waits for the
//! disk.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::conference::guard::{
    Admission, Attempt, BruteForceGuard, LockReason, Persist, Refusal, Restored, Verdict,
};
use crate::sip::identity::caller_user;
use crate::sip::ua::IncomingCall;
use crate::store::{GuardWrite, StoreHandle, StoredGuard};

/// How long a guess waits for attempts in flight (from the same caller or
/// address) to settle before it is refused. Checking a code takes
/// milliseconds; this only matters under extreme load.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting guess looks again even without a wake-up (attempts
/// the core confirms on its own wake nobody).
const RECHECK: Duration = Duration::from_secs(1);

/// How often lapsed state is dropped from memory and from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Most writes put in one transaction.
const MAX_BATCH: usize = 512;

/// Maps the guard's monotonic clock to unix milliseconds and back, from one
/// reading of both clocks. Stored times stay right across a restart (they
/// are wall-clock); a wall-clock step while running shifts only what is
/// written afterwards.
#[derive(Debug, Clone, Copy)]
pub struct WallAnchor {
    instant: Instant,
    unix_ms: i64,
}

impl WallAnchor {
    pub fn new(instant: Instant, unix_ms: i64) -> WallAnchor {
        WallAnchor { instant, unix_ms }
    }

    /// The wall-clock reading, in unix milliseconds.
    pub fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    /// Reads both clocks now.
    pub fn now() -> WallAnchor {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        WallAnchor::new(Instant::now(), unix_ms)
    }

    pub fn to_unix_ms(&self, t: Instant) -> i64 {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if t >= self.instant {
            self.unix_ms.saturating_add(ms(t - self.instant))
        } else {
            self.unix_ms.saturating_sub(ms(self.instant - t))
        }
    }

    /// None when the time cannot be represented (centuries away).
    pub fn to_instant(&self, unix_ms: i64) -> Option<Instant> {
        let d = Duration::from_millis(unix_ms.abs_diff(self.unix_ms));
        if unix_ms >= self.unix_ms {
            self.instant.checked_add(d)
        } else {
            self.instant.checked_sub(d)
        }
    }

    /// Stored state in the guard's clock.
    pub fn restored(&self, stored: StoredGuard) -> Restored {
        let convert = |rows: Vec<(_, i64)>| {
            rows.into_iter()
                .filter_map(|(k, ms)| Some((k, self.to_instant(ms)?)))
                .collect()
        };
        Restored {
            failures: convert(stored.failures),
            lockouts: convert(stored.lockouts),
        }
    }

    fn write(&self, p: Persist) -> GuardWrite {
        match p {
            Persist::Failure { key, at } => GuardWrite::Failure {
                key,
                at_ms: self.to_unix_ms(at),
            },
            Persist::Withdraw { key, at } => GuardWrite::Withdraw {
                key,
                at_ms: self.to_unix_ms(at),
            },
            Persist::Lockout { key, until } => GuardWrite::Lockout {
                key,
                until_ms: self.to_unix_ms(until),
            },
            Persist::Forget { key } => GuardWrite::Forget { key },
        }
    }
}

/// What the writer task is asked to do, in order.
enum Job {
    Write(Vec<GuardWrite>),
    Prune {
        now_ms: i64,
        window_ms: i64,
    },
    /// Answer once everything queued before has been written.
    Flush(oneshot::Sender<()>),
}

/// Why a guess is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Guard(Refusal),
    /// Attempts in flight did not settle within [`MAX_WAIT`].
    Waited,
}

/// The guard shared by the call tasks.
pub struct GuardService {
    core: Mutex<BruteForceGuard>,
    /// Woken whenever an attempt settles.
    settled: Notify,
    anchor: WallAnchor,
    writes: mpsc::UnboundedSender<Job>,
    /// Sources whose P-Asserted-Identity keys their callers.
    identity_sources: Vec<IpAddr>,
    longest_window: Duration,
}

impl GuardService {
    /// The service around `core` (already restored), with a writer task
    /// that stores its changes through `store` (it ends when the service is
    /// dropped) and a task that prunes lapsed state every minute.
    /// `identity_sources` are the addresses whose P-Asserted-Identity is
    /// believed for keying callers.
    pub fn start(
        core: BruteForceGuard,
        anchor: WallAnchor,
        store: StoreHandle,
        identity_sources: Vec<IpAddr>,
    ) -> Arc<GuardService> {
        let (tx, rx) = mpsc::unbounded_channel();
        let longest_window = core.limits().longest_window();
        let service = Arc::new(GuardService {
            core: Mutex::new(core),
            settled: Notify::new(),
            anchor,
            writes: tx,
            identity_sources,
            longest_window,
        });
        tokio::spawn(write_loop(rx, store));
        tokio::spawn(prune_loop(Arc::downgrade(&service)));
        service
    }

    fn lock(&self) -> MutexGuard<'_, BruteForceGuard> {
        // The core's state stays consistent between calls (each method
        // completes or panics before changing anything shared): carry on.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core and queues what it changed for the store,
    /// under the one lock so the writes keep their order.
    fn with_core<R>(&self, f: impl FnOnce(&mut BruteForceGuard) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core);
        let changes = core.take_persist();
        if !changes.is_empty() {
            let writes = changes.into_iter().map(|p| self.anchor.write(p)).collect();
            // Only fails once the writer has stopped (shutting down).
            let _ = self.writes.send(Job::Write(writes));
        }
        r
    }

    /// The caller as the guard keys it: the P-Asserted-Identity when the
    /// call came from a trusted proxy or a trusted source and carries one
    /// (behind a PBX that asserts who its callers are, the From user is
    /// whatever the caller typed); the From user otherwise; empty when
    /// withheld (the guard then keys on the source address).
    pub fn caller_of(&self, info: &IncomingCall) -> String {
        caller_user(info, &self.identity_sources).unwrap_or_default()
    }

    /// Before answering: is the caller or its address locked out?
    pub fn check(&self, caller: &str, ip: IpAddr, conference: &str) -> Verdict {
        self.lock()
            .check(Instant::now(), caller, ip, Some(conference))
    }

    /// Before comparing an entered code: reserves the attempt, waiting
    /// (up to [`MAX_WAIT`]) while attempts in flight could use up the
    /// allowance. Settle the reservation when the code has been compared;
    /// dropping it unsettled counts as a failure.
    pub async fn reserve(
        self: &Arc<Self>,
        caller: &str,
        ip: IpAddr,
        conference: &str,
    ) -> Result<Reservation, Refused> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let woken = self.settled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let admission =
                self.with_core(|g| g.reserve(Instant::now(), caller, ip, Some(conference)));
            match admission {
                Admission::Granted(attempt) => {
                    return Ok(Reservation {
                        guard: self.clone(),
                        attempt: Some(attempt),
                    })
                }
                Admission::Refused(r) => return Err(Refused::Guard(r)),
                Admission::Wait => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Refused::Waited);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + RECHECK), woken).await;
        }
    }

    fn settle(&self, attempt: Attempt, failed: bool) -> Option<LockReason> {
        let now = Instant::now();
        let r = self.with_core(|g| {
            if failed {
                g.confirm_failure(now, attempt)
            } else {
                g.release(now, attempt);
                None
            }
        });
        self.settled.notify_waiters();
        r
    }

    /// Drops lapsed state from memory and from the store.
    fn prune(&self) {
        let now = Instant::now();
        let expired = self.with_core(|g| g.prune(now));
        if expired > 0 {
            self.settled.notify_waiters();
        }
        let window_ms = i64::try_from(self.longest_window.as_millis()).unwrap_or(i64::MAX);
        let _ = self.writes.send(Job::Prune {
            now_ms: self.anchor.to_unix_ms(now),
            window_ms,
        });
    }

    /// Waits until everything changed so far is in the store (at shutdown),
    /// or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.writes.send(Job::Flush(tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
    }
}

/// A reserved guess. Settle it with [`Reservation::failed`] or
/// [`Reservation::succeeded`]; dropped unsettled (the call task ended
/// mid-check) it counts as a failure, because the code may well have been
/// compared: see the guard's module docs.
pub struct Reservation {
    guard: Arc<GuardService>,
    attempt: Option<Attempt>,
}

impl Reservation {
    /// How long to hold the verdict back.
    pub fn delay(&self) -> Duration {
        self.attempt.as_ref().map_or(Duration::ZERO, Attempt::delay)
    }

    /// The code was wrong. Returns the lockout or slowdown it triggered.
    pub fn failed(mut self) -> Option<LockReason> {
        let attempt = self.attempt.take()?;
        self.guard.settle(attempt, true)
    }

    /// The code was right.
    pub fn succeeded(mut self) {
        if let Some(attempt) = self.attempt.take() {
            self.guard.settle(attempt, false);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            tracing::info!("a code check was abandoned mid-way: counted as a failure");
            self.guard.settle(attempt, true);
        }
    }
}

/// Writes the guard's changes in order, batching what has queued up.
async fn write_loop(mut rx: mpsc::UnboundedReceiver<Job>, store: StoreHandle) {
    let mut batch: Vec<GuardWrite> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(w) => batch.extend(w),
                Job::Prune { now_ms, window_ms } => {
                    write(&store, &mut batch).await;
                    match store.call(move |s| s.prune_guard(now_ms, window_ms)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "pruning the guard's state failed")
                        }
                        Err(e) => tracing::error!(error = %e, "pruning the guard's state failed"),
                    }
                }
                Job::Flush(done) => {
                    write(&store, &mut batch).await;
                    let _ = done.send(());
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        write(&store, &mut batch).await;
    }
}

async fn write(store: &StoreHandle, batch: &mut Vec<GuardWrite>) {
    if batch.is_empty() {
        return;
    }
    let writes = std::mem::take(batch);
    let n = writes.len();
    let result = store.call(move |s| s.write_guard(&writes)).await;
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    // The lockouts still hold in memory; only a restart would forget them.
    tracing::error!(error = %error, writes = n, "storing the brute-force guard's state failed");
}

/// Prunes every [`PRUNE_EVERY`] until the service is gone.
async fn prune_loop(guard: Weak<GuardService>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(g) = guard.upgrade() else {
            return;
        };
        g.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::guard::{GuardKey, GuardLimits, CALLER_SECRET_LEN};
    use crate::store::Store;
    use std::net::Ipv4Addr;

    const SECRET: [u8; CALLER_SECRET_LEN] = [9; CALLER_SECRET_LEN];

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn the_anchor_converts_both_ways() {
        let t0 = Instant::now();
        let a = WallAnchor::new(t0, 1_700_000_000_000);
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(a.to_unix_ms(later), 1_700_000_001_500);
        assert_eq!(
            a.to_unix_ms(t0 - Duration::from_secs(60)),
            1_699_999_940_000
        );
        assert_eq!(a.to_instant(1_700_000_001_500), Some(later));
        // Before the machine started (after a reboot): still representable.
        assert_eq!(
            a.to_instant(1_700_000_000_000 - 86_400_000),
            t0.checked_sub(Duration::from_secs(86_400))
        );
    }

    fn limits() -> GuardLimits {
        GuardLimits {
            caller_failures: 2,
            ..Default::default()
        }
    }

    async fn service(store: &StoreHandle) -> Arc<GuardService> {
        let stored = store.call(|s| s.load_guard(0, 1)).await.unwrap().unwrap();
        let anchor = WallAnchor::now();
        let mut core = BruteForceGuard::persistent(limits(), &SECRET);
        core.restore(Instant::now(), anchor.restored(stored));
        GuardService::start(core, anchor, store.clone(), Vec::new())
    }

    #[tokio::test]
    async fn a_lockout_is_stored_and_holds_in_a_new_service() {
        let store = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let g = service(&store).await;
        for _ in 0..2 {
            let r = g.reserve("+15550001", ip(1), "team").await.unwrap();
            r.failed();
        }
        assert!(g.flush(Duration::from_secs(5)).await);
        let lockouts = store
            .call(|s| s.load_guard(0, 1).unwrap().lockouts)
            .await
            .unwrap();
        assert!(matches!(lockouts.as_slice(), [(GuardKey::Caller(_), _)]));

        // A new service on the same store (a restart) refuses the caller.
        let again = service(&store).await;
        assert!(matches!(
            again.check("+15550001", ip(2), "team"),
            Verdict::LockedOut {
                reason: LockReason::Caller,
                ..
            }
        ));
        assert!(matches!(
            again.reserve("+15550001", ip(2), "team").await,
            Err(Refused::Guard(Refusal::Locked { .. }))
        ));
    }

    #[tokio::test]
    async fn a_dropped_reservation_counts_and_a_waiting_guess_is_then_refused() {
        let store = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let g = service(&store).await;
        let first = g.reserve("+15550001", ip(1), "team").await.unwrap();
        let second = g.reserve("+15550001", ip(1), "team").await.unwrap();
        // A third guess from the caller waits for the two in flight...
        let waiting = {
            let g = g.clone();
            tokio::spawn(async move { g.reserve("+15550001", ip(1), "team").await.err() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits while both are in flight");
        // ...whose calls vanish mid-check: both count, the caller is locked
        // out, and the waiting guess is refused.
        drop(first);
        drop(second);
        let refused = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the settle")
            .unwrap();
        assert!(matches!(
            refused,
            Some(Refused::Guard(Refusal::Locked {
                reason: LockReason::Caller,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn a_waiting_guess_goes_ahead_when_the_one_in_flight_succeeds() {
        let store = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let g = service(&store).await;
        g.reserve("+15550001", ip(1), "team")
            .await
            .unwrap()
            .failed();
        let right = g.reserve("+15550001", ip(1), "team").await.unwrap();
        let waiting = {
            let g = g.clone();
            tokio::spawn(async move { g.reserve("+15550001", ip(1), "team").await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        right.succeeded();
        assert!(tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap());
    }
}
