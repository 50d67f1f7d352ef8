//! RFC 3261 §17 transactions as small state machines. Each one keeps the
//! bytes it may have to send again and its deadlines; it never sends or
//! sleeps itself. The user agent core asks it what to do when a message
//! arrives or a deadline passes.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::header::Via;
use super::method::Method;

/// The RFC 3261 timer base values (§17.1.1.1). Configurable so that tests
/// and unusual networks can scale them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    /// Round-trip estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and 2xx, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerValues {
    /// 64·T1: Timers B, F, H, J and the 2xx give-up time.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// Identifies a server transaction (§17.2.3). ACK maps to the INVITE it
/// acknowledges; CANCEL has a transaction of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxKey {
    /// RFC 3261 branch with the magic cookie.
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 peers (no or a bare-cookie branch): match on the dialog
    /// identifiers, CSeq and top Via instead.
    Legacy {
        call_id: String,
        from_tag: String,
        cseq: u32,
        via: String,
        method: String,
    },
}

impl TxKey {
    pub fn new(method: &Method, top_via: &Via, call_id: &str, from_tag: &str, cseq: u32) -> TxKey {
        let method = match method {
            Method::Ack => "INVITE".to_string(),
            m => m.as_str().to_string(),
        };
        match top_via.branch() {
            Some(b) if b.len() > 7 && b.starts_with("z9hG4bK") => TxKey::Branch {
                branch: b.to_string(),
                sent_by: top_via.sent_by().to_ascii_lowercase(),
                method,
            },
            _ => TxKey::Legacy {
                call_id: call_id.to_string(),
                from_tag: from_tag.to_string(),
                cseq,
                via: top_via.sent_by().to_ascii_lowercase(),
                method,
            },
        }
    }

    /// The key of the INVITE transaction that a CANCEL with this key targets.
    pub fn cancelled_invite(&self) -> TxKey {
        let mut k = self.clone();
        match &mut k {
            TxKey::Branch { method, .. } | TxKey::Legacy { method, .. } => {
                *method = "INVITE".into()
            }
        }
        k
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    /// A 2xx was sent (RFC 6026): absorb retransmitted INVITEs for 64·T1;
    /// the call itself retransmits the 2xx until ACK.
    Accepted,
    /// A 3xx–6xx was sent and is retransmitted until ACK (Timers G, H).
    Completed,
    /// ACK arrived; absorb further ACKs for T4 (Timer I).
    Confirmed,
    Terminated,
}

/// What a deadline caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOutcome {
    Nothing,
    Retransmit(Bytes),
    /// Gave up waiting (Timer B, F or H).
    TimedOut,
    /// The transaction is over and can be forgotten.
    Terminated,
}

#[derive(Debug)]
pub struct ServerInviteTransaction {
    state: ServerInviteState,
    reliable: bool,
    timers: TimerValues,
    last_provisional: Option<Bytes>,
    last_final: Option<Bytes>,
    final_status: Option<u16>,
    retransmit: Option<(Instant, Duration)>,
    end_at: Option<Instant>,
}

impl ServerInviteTransaction {
    pub fn new(reliable: bool, timers: TimerValues) -> Self {
        ServerInviteTransaction {
            state: ServerInviteState::Proceeding,
            reliable,
            timers,
            last_provisional: None,
            last_final: None,
            final_status: None,
            retransmit: None,
            end_at: None,
        }
    }

    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    pub fn final_status(&self) -> Option<u16> {
        self.final_status
    }

    /// Records a provisional response; it is resent on INVITE retransmission.
    pub fn provisional(&mut self, bytes: Bytes) {
        if self.state == ServerInviteState::Proceeding {
            self.last_provisional = Some(bytes);
        }
    }

    /// Records the final response. Returns false (and records nothing) if a
    /// final response was already sent.
    pub fn finalize(&mut self, now: Instant, status: u16, bytes: Bytes) -> bool {
        if self.state != ServerInviteState::Proceeding {
            return false;
        }
        self.final_status = Some(status);
        self.last_final = Some(bytes);
        if (200..300).contains(&status) {
            self.state = ServerInviteState::Accepted;
            self.end_at = Some(now + self.timers.timeout());
        } else {
            self.state = ServerInviteState::Completed;
            if !self.reliable {
                self.retransmit = Some((now + self.timers.t1, self.timers.t1));
            }
            self.end_at = Some(now + self.timers.timeout());
        }
        true
    }

    /// A retransmitted INVITE arrived: what to send again.
    pub fn on_request_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerInviteState::Proceeding => self.last_provisional.clone(),
            ServerInviteState::Completed => self.last_final.clone(),
            _ => None,
        }
    }

    /// An ACK matched this transaction (only for a non-2xx final).
    pub fn on_ack(&mut self, now: Instant) {
        if self.state == ServerInviteState::Completed {
            self.state = ServerInviteState::Confirmed;
            self.retransmit = None;
            let t_i = if self.reliable {
                Duration::ZERO
            } else {
                self.timers.t4
            };
            self.end_at = Some(now + t_i);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.retransmit.map(|r| r.0), self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutcome {
        if self.end_at.is_some_and(|t| now >= t) {
            let timed_out = self.state == ServerInviteState::Completed;
            self.state = ServerInviteState::Terminated;
            self.retransmit = None;
            self.end_at = None;
            return if timed_out {
                TimerOutcome::TimedOut
            } else {
                TimerOutcome::Terminated
            };
        }
        if let Some((at, interval)) = self.retransmit {
            if now >= at {
                let next = (interval * 2).min(self.timers.t2);
                self.retransmit = Some((now + next, next));
                if let Some(b) = &self.last_final {
                    return TimerOutcome::Retransmit(b.clone());
                }
            }
        }
        TimerOutcome::Nothing
    }
}

/// Server non-INVITE transaction (§17.2.2): resend the final response on
/// request retransmissions, forget after Timer J.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    reliable: bool,
    timers: TimerValues,
    last_response: Option<Bytes>,
    end_at: Option<Instant>,
}

impl ServerNonInviteTransaction {
    pub fn new(reliable: bool, timers: TimerValues) -> Self {
        ServerNonInviteTransaction {
            reliable,
            timers,
            last_response: None,
            end_at: None,
        }
    }

    pub fn is_completed(&self) -> bool {
        self.end_at.is_some()
    }

    pub fn respond(&mut self, now: Instant, status: u16, bytes: Bytes) {
        if self.end_at.is_some() {
            return;
        }
        self.last_response = Some(bytes);
        if status >= 200 {
            let t_j = if self.reliable {
                Duration::ZERO
            } else {
                self.timers.timeout()
            };
            self.end_at = Some(now + t_j);
        }
    }

    pub fn on_request_retransmission(&self) -> Option<Bytes> {
        self.last_response.clone()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.end_at
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutcome {
        if self.end_at.is_some_and(|t| now >= t) {
            TimerOutcome::Terminated
        } else {
            TimerOutcome::Nothing
        }
    }
}

/// How long an INVITE client transaction waits in Proceeding after its
/// last provisional response before it gives up (TimedOut). RFC 3261 gives
/// a UAC no such timer: the UA is meant to bound the ringing, and does for
/// the calls it places (CANCEL at its answer timeout). This is the bound
/// for everything else: a re-INVITE the peer answers only with 1xx, or an
/// INVITE whose call ended another way (a BYE in an early dialog), which
/// would otherwise be kept for ever. Like a proxy's Timer C (§16.6), more
/// than three minutes, and every provisional restarts it.
pub const TIMER_C: Duration = Duration::from_secs(210);

/// Client transaction for INVITE (§17.1.1) and non-INVITE (§17.1.2)
/// requests. Final responses end it at once: stray retransmissions of a
/// final response then match nothing and are dropped, which is what
/// Timers D and K exist to achieve.
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    timers: TimerValues,
    request: Bytes,
    retransmit: Option<(Instant, Duration)>,
    timeout_at: Instant,
    got_provisional: bool,
    done: bool,
}

impl ClientTransaction {
    /// Starts the transaction; the caller sends `request` once right away.
    pub fn new(
        now: Instant,
        invite: bool,
        reliable: bool,
        timers: TimerValues,
        request: Bytes,
    ) -> Self {
        ClientTransaction {
            invite,
            timers,
            request,
            retransmit: (!reliable).then_some((now + timers.t1, timers.t1)),
            timeout_at: now + timers.timeout(),
            got_provisional: false,
            done: false,
        }
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    /// A response arrived at `now`. Returns true when it is final.
    pub fn on_response(&mut self, now: Instant, status: u16) -> bool {
        if status < 200 {
            self.got_provisional = true;
            if self.invite {
                // Timer A stops once the INVITE is known to have arrived;
                // Timer B gives way to Timer C.
                self.retransmit = None;
                self.timeout_at = now + TIMER_C;
            }
            false
        } else {
            self.done = true;
            self.retransmit = None;
            true
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        // Timer B, or for an INVITE in Proceeding, Timer C.
        [self.retransmit.map(|r| r.0), Some(self.timeout_at)]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TimerOutcome {
        if self.done {
            return TimerOutcome::Terminated;
        }
        if now >= self.timeout_at {
            self.done = true;
            self.retransmit = None;
            return TimerOutcome::TimedOut;
        }
        if let Some((at, interval)) = self.retransmit {
            if now >= at {
                let next = if self.invite {
                    interval * 2
                } else if self.got_provisional {
                    self.timers.t2
                } else {
                    (interval * 2).min(self.timers.t2)
                };
                self.retransmit = Some((now + next, next));
                return TimerOutcome::Retransmit(self.request.clone());
            }
        }
        TimerOutcome::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs a machine's timers until `end`, collecting when it retransmitted.
    fn drive(
        start: Instant,
        end: Duration,
        poll: impl Fn() -> Option<Instant>,
        mut fire: impl FnMut(Instant) -> TimerOutcome,
    ) -> (Vec<Duration>, Option<(Duration, TimerOutcome)>) {
        let mut sent = Vec::new();
        while let Some(at) = poll() {
            if at > start + end {
                break;
            }
            match fire(at) {
                TimerOutcome::Retransmit(_) => sent.push(at - start),
                TimerOutcome::Nothing => {}
                other => return (sent, Some((at - start, other))),
            }
        }
        (sent, None)
    }

    #[test]
    fn non_2xx_final_is_retransmitted_until_timer_h() {
        let t0 = Instant::now();
        let tx =
            std::cell::RefCell::new(ServerInviteTransaction::new(false, TimerValues::default()));
        tx.borrow_mut()
            .finalize(t0, 486, Bytes::from_static(b"486"));
        let (sent, end) = drive(
            t0,
            Duration::from_secs(60),
            || tx.borrow().poll_timeout(),
            |now| tx.borrow_mut().handle_timeout(now),
        );
        let want: Vec<Duration> = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .iter()
        .map(|&m| ms(m))
        .collect();
        assert_eq!(sent, want);
        assert_eq!(end, Some((Duration::from_secs(32), TimerOutcome::TimedOut)));
    }

    #[test]
    fn ack_confirms_and_timer_i_ends() {
        let t0 = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, TimerValues::default());
        tx.finalize(t0, 487, Bytes::from_static(b"487"));
        assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"487"[..]));
        tx.on_ack(t0 + ms(100));
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5100)));
        assert_eq!(tx.handle_timeout(t0 + ms(5100)), TimerOutcome::Terminated);
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let t0 = Instant::now();
        let mut tx = ServerInviteTransaction::new(true, TimerValues::default());
        tx.finalize(t0, 603, Bytes::new());
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn accepted_state_absorbs_invite_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, TimerValues::default());
        tx.provisional(Bytes::from_static(b"100"));
        assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"100"[..]));
        assert!(tx.finalize(t0, 200, Bytes::from_static(b"200")));
        assert!(
            !tx.finalize(t0, 500, Bytes::new()),
            "only one final response"
        );
        assert_eq!(tx.on_request_retransmission(), None);
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(32)),
            TimerOutcome::Terminated
        );
    }

    #[test]
    fn non_invite_client_retransmits_with_t2_cap_then_times_out() {
        let t0 = Instant::now();
        let tx = std::cell::RefCell::new(ClientTransaction::new(
            t0,
            false,
            false,
            TimerValues::default(),
            Bytes::from_static(b"BYE"),
        ));
        let (sent, end) = drive(
            t0,
            Duration::from_secs(60),
            || tx.borrow().poll_timeout(),
            |now| tx.borrow_mut().handle_timeout(now),
        );
        assert_eq!(
            &sent[..5],
            &[ms(500), ms(1500), ms(3500), ms(7500), ms(11500)]
        );
        assert_eq!(end, Some((Duration::from_secs(32), TimerOutcome::TimedOut)));
    }

    #[test]
    fn proceeding_invite_waits_for_timer_c_not_timer_b() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(t0, true, false, TimerValues::default(), Bytes::new());
        assert!(!tx.on_response(t0 + ms(100), 180));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(100) + TIMER_C));
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(40)),
            TimerOutcome::Nothing,
            "Timer B no longer applies"
        );
        // Every provisional restarts Timer C.
        let later = t0 + Duration::from_secs(200);
        assert!(!tx.on_response(later, 183));
        assert_eq!(
            tx.handle_timeout(t0 + ms(100) + TIMER_C),
            TimerOutcome::Nothing
        );
        assert_eq!(tx.handle_timeout(later + TIMER_C), TimerOutcome::TimedOut);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn client_stops_on_final_response() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(t0, false, false, TimerValues::default(), Bytes::new());
        assert!(!tx.on_response(t0, 100));
        assert!(tx.on_response(t0, 200));
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn server_non_invite_resends_final_and_ends_after_timer_j() {
        let t0 = Instant::now();
        let mut tx = ServerNonInviteTransaction::new(false, TimerValues::default());
        tx.respond(t0, 200, Bytes::from_static(b"200"));
        assert_eq!(tx.on_request_retransmission().as_deref(), Some(&b"200"[..]));
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(31)),
            TimerOutcome::Nothing
        );
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(32)),
            TimerOutcome::Terminated
        );
    }
}
