//! The brute-force guard's shell: one [`BruteForceGuard`] shared by every
//! call, its clock, the calls waiting for attempts in flight to settle, and
//! the writer that stores its changes.
//!
//! The core is touched a few times per call under a plain mutex (never per
//! packet). Every change it lists for storing is converted to wall-clock
//! time and queued to the writer task *under the same lock*, so the writes
//! reach the store in the order they happened; the writer batches them into
//! one transaction on the store thread, so no call task waits for the disk
//! while the store keeps up.
//!
//! The write queue is bounded ([`WRITE_QUEUE`] jobs) and loses nothing: a
//! wrong code and a lockout are security records. Room for a job is taken
//! *before* the core is touched, where waiting is harmless:
//!
//! - A guess takes room for what reserving writes and for what settling it
//!   will write before it is admitted; the [`Reservation`] carries the
//!   second, so settling (also from `Drop`, which cannot wait) always has
//!   its place in the queue.
//! - When the queue is full (the store is that far behind) a new guess
//!   waits, within the same [`MAX_WAIT`] as for attempts in flight, and is
//!   then refused ([`Refused::Waited`]): the guard fails closed rather than
//!   take guesses it cannot record.
//! - The minute's pruning and the shutdown flush wait for room (the flush
//!   within its timeout).
//!
//! So the queue holds at most [`WRITE_QUEUE`] jobs, guesses in flight
//! included; the guard's decisions never wait for the store, only new
//! guesses do, and only when the store has stopped keeping up.

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

/// Jobs the store writer's queue holds, counting the room each guess in
/// flight keeps for its outcome. A call checks one code at a time, so this
/// is several times the default `sip.max_calls` (5000): it fills only when
/// the store has stopped keeping up, never from load alone. A slot is a
/// few dozen bytes, allocated only when used.
pub const WRITE_QUEUE: usize = 16_384;

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

/// Room in the store writer's queue for one job, taken before the core is
/// touched; `None` when the writer is gone (shutting down), and then what
/// the job would have stored is only kept in memory.
type Slot = Option<mpsc::OwnedPermit<Job>>;

/// Why a guess is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Guard(Refusal),
    /// Not admitted within [`MAX_WAIT`]: attempts in flight did not settle,
    /// or the store writer's queue stayed full (see the module docs).
    Waited,
}

/// The guard shared by the call tasks.
pub struct GuardService {
    core: Mutex<BruteForceGuard>,
    /// Woken whenever an attempt settles.
    settled: Notify,
    anchor: WallAnchor,
    writes: mpsc::Sender<Job>,
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
        GuardService::start_with_queue(core, anchor, store, identity_sources, WRITE_QUEUE)
    }

    /// [`GuardService::start`] with a write queue of `queue` jobs.
    fn start_with_queue(
        core: BruteForceGuard,
        anchor: WallAnchor,
        store: StoreHandle,
        identity_sources: Vec<IpAddr>,
        queue: usize,
    ) -> Arc<GuardService> {
        let (tx, rx) = mpsc::channel(queue);
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

    /// Runs `f` on the core and queues what it changed for the store in
    /// `slot`, under the one lock so the writes keep their order. Never
    /// waits: the room was taken before.
    fn with_core<R>(&self, slot: Slot, f: impl FnOnce(&mut BruteForceGuard) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core);
        let changes = core.take_persist();
        if let (false, Some(slot)) = (changes.is_empty(), slot) {
            let writes = changes.into_iter().map(|p| self.anchor.write(p)).collect();
            slot.send(Job::Write(writes));
        }
        r
    }

    /// Room for one job in the write queue, waiting while it is full (up
    /// to `deadline`, if given).
    async fn slot(&self, deadline: Option<tokio::time::Instant>) -> Result<Slot, Refused> {
        let room = self.writes.clone().reserve_owned();
        let room = match deadline {
            Some(d) => tokio::time::timeout_at(d, room)
                .await
                .map_err(|_| Refused::Waited)?,
            None => room.await,
        };
        // An error means the writer has stopped (shutting down).
        Ok(room.ok())
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
            // Room for what this step writes and for what settling the
            // guess will write, before the core is touched.
            let now_slot = self.slot(Some(deadline)).await?;
            let settle_slot = self.slot(Some(deadline)).await?;
            let admission = self.with_core(now_slot, |g| {
                g.reserve(Instant::now(), caller, ip, Some(conference))
            });
            match admission {
                Admission::Granted(attempt) => {
                    return Ok(Reservation {
                        guard: self.clone(),
                        attempt: Some(attempt),
                        slot: settle_slot,
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

    fn settle(&self, attempt: Attempt, failed: bool, slot: Slot) -> Option<LockReason> {
        let now = Instant::now();
        let r = self.with_core(slot, |g| {
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
    async fn prune(&self) {
        // Without a deadline `slot` cannot be refused.
        let (Ok(core_slot), Ok(store_slot)) = (self.slot(None).await, self.slot(None).await) else {
            return;
        };
        let now = Instant::now();
        let expired = self.with_core(core_slot, |g| g.prune(now));
        if expired > 0 {
            self.settled.notify_waiters();
        }
        let window_ms = i64::try_from(self.longest_window.as_millis()).unwrap_or(i64::MAX);
        if let Some(slot) = store_slot {
            slot.send(Job::Prune {
                now_ms: self.anchor.to_unix_ms(now),
                window_ms,
            });
        }
    }

    /// Waits until everything changed so far is in the store (at shutdown),
    /// or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let flushed = async {
            self.writes.send(Job::Flush(tx)).await.ok()?;
            rx.await.ok()
        };
        matches!(tokio::time::timeout(timeout, flushed).await, Ok(Some(())))
    }
}

/// A reserved guess. Settle it with [`Reservation::failed`] or
/// [`Reservation::succeeded`]; dropped unsettled (the call task ended
/// mid-check) it counts as a failure, because the code may well have been
/// compared: see the guard's module docs.
pub struct Reservation {
    guard: Arc<GuardService>,
    attempt: Option<Attempt>,
    /// The write queue's room for what settling writes.
    slot: Slot,
}

impl Reservation {
    /// How long to hold the verdict back.
    pub fn delay(&self) -> Duration {
        self.attempt.as_ref().map_or(Duration::ZERO, Attempt::delay)
    }

    /// The code was wrong. Returns the lockout or slowdown it triggered.
    pub fn failed(mut self) -> Option<LockReason> {
        let attempt = self.attempt.take()?;
        self.guard.settle(attempt, true, self.slot.take())
    }

    /// The code was right.
    pub fn succeeded(mut self) {
        if let Some(attempt) = self.attempt.take() {
            self.guard.settle(attempt, false, self.slot.take());
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            tracing::info!("a code check was abandoned mid-way: counted as a failure");
            self.guard.settle(attempt, true, self.slot.take());
        }
    }
}

/// Writes the guard's changes in order, batching what has queued up.
async fn write_loop(mut rx: mpsc::Receiver<Job>, store: StoreHandle) {
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
        g.prune().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::guard::{GuardKey, GuardLimits, CALLER_SECRET_LEN};
    use crate::store::Store;
    use std::collections::{HashMap, HashSet};
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        service_with_queue(store, WRITE_QUEUE).await
    }

    async fn service_with_queue(store: &StoreHandle, queue: usize) -> Arc<GuardService> {
        let stored = store.call(|s| s.load_guard(0, 1)).await.unwrap().unwrap();
        let anchor = WallAnchor::now();
        let mut core = BruteForceGuard::persistent(limits(), &SECRET);
        core.restore(Instant::now(), anchor.restored(stored));
        GuardService::start_with_queue(core, anchor, store.clone(), Vec::new(), queue)
    }

    /// Occupies the store's thread (so the writer cannot write) until the
    /// returned sender is dropped.
    async fn block_store(store: &StoreHandle) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let store = store.clone();
        tokio::spawn(async move {
            let _ = store
                .call(move |_| {
                    let _ = started.send(());
                    let _ = wait.recv();
                })
                .await;
        });
        running.await.unwrap();
        release
    }

    /// Waits until everything queued so far is in the store.
    async fn written(g: &GuardService) {
        let (tx, rx) = oneshot::channel();
        g.writes.send(Job::Flush(tx)).await.unwrap();
        rx.await.unwrap();
    }

    /// Failures per key and locked-out keys, as stored.
    async fn stored(store: &StoreHandle) -> (HashMap<GuardKey, usize>, HashSet<GuardKey>) {
        let stored = store.call(|s| s.load_guard(0, 1)).await.unwrap().unwrap();
        let mut failures = HashMap::new();
        for (key, _) in stored.failures {
            *failures.entry(key).or_default() += 1;
        }
        let lockouts = stored.lockouts.into_iter().map(|(k, _)| k).collect();
        (failures, lockouts)
    }

    const GUESSES: usize = 40;

    /// `GUESSES` wrong codes from as many callers, then two from one more
    /// caller (a lockout); `done` counts the guesses settled.
    async fn wrong_guesses(g: &Arc<GuardService>, done: &AtomicUsize) {
        let callers = (0..GUESSES).map(|i| (i, format!("+1555{i:04}")));
        let last = std::iter::repeat_n((GUESSES, "+15559999".to_string()), 2);
        for (i, caller) in callers.chain(last) {
            let r = g
                .reserve(&caller, ip(i as u8), &format!("room{i}"))
                .await
                .unwrap_or_else(|e| panic!("guess {i} refused: {e:?}"));
            r.failed();
            done.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The queue to the store writer is bounded; when the store stops
    /// keeping up, new guesses wait for room instead of the queue growing
    /// or a record being dropped, and everything reaches the store once it
    /// is back.
    #[tokio::test]
    async fn a_full_write_queue_holds_guesses_back_and_loses_no_record() {
        // What the store holds after the guesses when it keeps up.
        let free = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let g = service(&free).await;
        wrong_guesses(&g, &AtomicUsize::new(0)).await;
        written(&g).await;
        let expected = stored(&free).await;
        assert!(expected.0.len() > GUESSES, "{expected:?}");
        assert_eq!(expected.1.len(), 1, "one lockout");

        // The same guesses while the store's thread is blocked, with room
        // for 4 jobs.
        let store = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let g = service_with_queue(&store, 4).await;
        let release = block_store(&store).await;
        let done = Arc::new(AtomicUsize::new(0));
        let guessing = {
            let (g, done) = (g.clone(), done.clone());
            tokio::spawn(async move { wrong_guesses(&g, &done).await })
        };
        // Each guess queues one job (its failure; settling a wrong code
        // below the limit writes nothing): a handful fit, then they stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let settled = done.load(Ordering::SeqCst);
        assert!(
            settled < 10,
            "the guesses wait for room ({settled} settled)"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(done.load(Ordering::SeqCst), settled, "no progress");
        assert!(!guessing.is_finished());
        assert_eq!(g.writes.capacity(), 0, "the queue is full");

        drop(release);
        tokio::time::timeout(Duration::from_secs(30), guessing)
            .await
            .expect("the guesses go on once the store is back")
            .unwrap();
        written(&g).await;
        assert_eq!(stored(&store).await, expected, "every record was stored");
    }

    /// A store that stays stuck: a new guess is refused after MAX_WAIT
    /// (the guard fails closed rather than take guesses it cannot record),
    /// while the guesses already in flight settle without waiting, from
    /// Drop too, and the lockout they trigger is stored once the store is
    /// back.
    #[tokio::test]
    async fn a_stuck_store_refuses_new_guesses_and_still_records_the_lockout() {
        let store = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        // Room for 3 jobs: the two guesses in flight keep one each for
        // their outcome, and the writer, stuck on its first batch, leaves
        // the second guess's job in the queue.
        let g = service_with_queue(&store, 3).await;
        let release = block_store(&store).await;
        let first = g.reserve("+15550001", ip(1), "team").await.unwrap();
        let second = g.reserve("+15550001", ip(1), "team").await.unwrap();

        // Another caller, from another address, to another conference:
        // only the full queue holds it back.
        let asked = tokio::time::Instant::now();
        let other = g.reserve("+15550002", ip(2), "other").await;
        assert_eq!(other.err(), Some(Refused::Waited));
        assert!(asked.elapsed() >= MAX_WAIT);

        // The first call vanished mid-check (Drop), the second code was
        // wrong: the caller is locked out, in memory at once.
        drop(first);
        assert_eq!(second.failed(), Some(LockReason::Caller));

        drop(release);
        written(&g).await;
        let (_, lockouts) = stored(&store).await;
        assert!(
            matches!(
                lockouts.iter().collect::<Vec<_>>()[..],
                [GuardKey::Caller(_)]
            ),
            "{lockouts:?}"
        );
        // With the store back, the other caller is let in.
        assert!(g.reserve("+15550002", ip(2), "other").await.is_ok());
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
