//! The user agent's one timer table. Server and client transactions, calls
//! (2xx retransmission, session timers, outbound ringing) and
//! registrations each name themselves here with the instant they want to
//! be woken; [`UserAgent::handle_timeout`](super::UserAgent::handle_timeout)
//! takes the due ones in time order and hands each to its owner, which
//! checks its own state and schedules again if it still needs to.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::{CallHandle, RequestId};
use crate::sip::transaction::TxKey;

/// What a timer wakes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum TimerTarget {
    Invite(TxKey),
    NonInvite(TxKey),
    /// Keyed like the client transaction map (see `client_tx::client_key`).
    Client(String),
    Call(CallHandle),
    Registration(RequestId),
}

/// A heap entry's target: its kind and numeric id. Entries due at the same
/// instant fire in this order (kind first, then id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Invite(u64),
    NonInvite(u64),
    Client(u64),
    Call(u64),
    Registration(u64),
}

impl TimerRef {
    fn id(&self) -> u64 {
        match self {
            TimerRef::Invite(id)
            | TimerRef::NonInvite(id)
            | TimerRef::Client(id)
            | TimerRef::Call(id)
            | TimerRef::Registration(id) => *id,
        }
    }
}

/// One counter numbers call handles, request ids and timer entries, so
/// which numbers a call or request gets does not depend on how its timers
/// are stored.
#[derive(Debug)]
pub(super) struct IdCounter {
    next: u64,
}

impl IdCounter {
    pub(super) fn new() -> Self {
        IdCounter { next: 1 }
    }

    pub(super) fn next(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// Deadlines of every target, earliest first.
///
/// Scheduling a target again adds an entry without removing its earlier
/// ones: a stale entry fires early and its owner finds nothing due (every
/// owner checks its own state). A forgotten target's entries are skipped.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    /// Heap entries refer to targets by a numeric id resolved here, so the
    /// heap holds no strings.
    targets: HashMap<u64, TimerTarget>,
    id_of: HashMap<TimerTarget, u64>,
    heap: BinaryHeap<Reverse<(Instant, TimerRef)>>,
}

impl TimerTable {
    /// Wakes `target` at `at` (nothing when `at` is `None`). A target keeps
    /// the id it got first until it is forgotten.
    pub(super) fn schedule(
        &mut self,
        target: TimerTarget,
        at: Option<Instant>,
        ids: &mut IdCounter,
    ) {
        let Some(at) = at else { return };
        let id = match self.id_of.get(&target) {
            Some(id) => *id,
            None => {
                let id = ids.next();
                self.targets.insert(id, target.clone());
                self.id_of.insert(target.clone(), id);
                id
            }
        };
        let r = match target {
            TimerTarget::Invite(_) => TimerRef::Invite(id),
            TimerTarget::NonInvite(_) => TimerRef::NonInvite(id),
            TimerTarget::Client(_) => TimerRef::Client(id),
            TimerTarget::Call(_) => TimerRef::Call(id),
            TimerTarget::Registration(_) => TimerRef::Registration(id),
        };
        self.heap.push(Reverse((at, r)));
    }

    /// Drops `target`: its pending entries no longer fire.
    pub(super) fn forget(&mut self, target: &TimerTarget) {
        if let Some(id) = self.id_of.remove(target) {
            self.targets.remove(&id);
        }
    }

    /// The earliest entry, stale or not (waking for a stale one is
    /// harmless).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes the earliest entry due at `now` whose target is still known.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<TimerTarget> {
        while let Some(Reverse((at, r))) = self.heap.peek().cloned() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(target) = self.targets.get(&r.id()) {
                return Some(target.clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn due(table: &mut TimerTable, now: Instant) -> Vec<TimerTarget> {
        std::iter::from_fn(|| table.pop_due(now)).collect()
    }

    #[test]
    fn due_targets_come_in_time_order_and_later_ones_wait() {
        let t0 = Instant::now();
        let (mut table, mut ids) = (TimerTable::default(), IdCounter::new());
        let s = Duration::from_secs(1);
        table.schedule(TimerTarget::Call(CallHandle(7)), Some(t0 + 3 * s), &mut ids);
        table.schedule(TimerTarget::Client("b".into()), Some(t0 + s), &mut ids);
        table.schedule(
            TimerTarget::Registration(RequestId(1)),
            Some(t0 + 9 * s),
            &mut ids,
        );
        table.schedule(TimerTarget::Call(CallHandle(8)), None, &mut ids);
        assert_eq!(table.next_deadline(), Some(t0 + s));
        assert_eq!(
            due(&mut table, t0 + 5 * s),
            vec![
                TimerTarget::Client("b".into()),
                TimerTarget::Call(CallHandle(7))
            ]
        );
        assert_eq!(table.next_deadline(), Some(t0 + 9 * s));
        assert!(due(&mut table, t0 + 8 * s).is_empty());
    }

    #[test]
    fn a_forgotten_target_does_not_fire_and_a_rescheduled_one_fires_per_entry() {
        let t0 = Instant::now();
        let (mut table, mut ids) = (TimerTable::default(), IdCounter::new());
        let s = Duration::from_secs(1);
        let call = TimerTarget::Call(CallHandle(1));
        let reg = TimerTarget::Registration(RequestId(2));
        table.schedule(call.clone(), Some(t0 + s), &mut ids);
        table.schedule(call.clone(), Some(t0 + 2 * s), &mut ids);
        table.schedule(reg.clone(), Some(t0 + s), &mut ids);
        table.forget(&reg);
        // The earlier entry is stale but still wakes its owner, which
        // checks its own deadline.
        assert_eq!(due(&mut table, t0 + 2 * s), vec![call.clone(), call]);
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn ids_are_shared_with_the_counter_and_kept_per_target() {
        let t0 = Instant::now();
        let (mut table, mut ids) = (TimerTable::default(), IdCounter::new());
        let call = TimerTarget::Call(CallHandle(1));
        table.schedule(call.clone(), Some(t0), &mut ids);
        table.schedule(call.clone(), Some(t0), &mut ids);
        // One id taken for the target, however often it is scheduled.
        assert_eq!(ids.next(), 2);
        table.forget(&call);
        table.schedule(call, Some(t0), &mut ids);
        assert_eq!(ids.next(), 4);
    }
}
