//! The user agent core: every SIP message pinbridge receives goes through
//! [`UserAgent::handle_input`], which validates it (RFC 3261 §8.2), matches
//! it to a transaction or dialog, answers what the core can answer on its
//! own (OPTIONS, CANCEL, BYE, retransmissions, malformed requests) and turns
//! the rest into [`Event`]s for the application: a new call, an ACK, a
//! re-offer, an INFO, the end of a call.
//!
//! Sans-I/O in the style of quinn-proto: the shell passes bytes and the
//! current time in, and takes [`Transmit`]s and [`Event`]s out with
//! [`UserAgent::poll_transmit`] / [`UserAgent::poll_event`]; it sleeps until
//! [`UserAgent::poll_timeout`] and then calls [`UserAgent::handle_timeout`].
//!
//! One type, [`UserAgent`], with its jobs in files of their own:
//!
//! - this file: the public types, the poll API, and routing a request to
//!   its transaction (retransmissions), the per-source limits and the
//!   handler of its method;
//! - `timers`: the one timer table every deadline goes into;
//! - `validate`: request validation (RFC 3261 §8.2);
//! - `reply`: building and sending responses, stateless or through the
//!   server transactions;
//! - `invite`, `bye_cancel`, `options`, `update`, `info`: the server side
//!   of each method;
//! - `call`: the calls we keep, their requests waiting for the
//!   application, and how calls end;
//! - `session_timer`: RFC 4028 session timers;
//! - `client_tx`: our client transactions (requests we send, responses to
//!   them);
//! - `uac`: the client side's API (outbound calls, MESSAGE, REGISTER,
//!   digest retries);
//! - [`source_limits`]: per-source request rates, half-open INVITEs and
//!   reply budgets.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::auth::Algorithm;
use super::dialog::host_port;
use super::flow::{Flow, Transmit, Transport};
use super::header::NameAddr;
use super::message::{parse_datagram, Message, Parsed, Request};
use super::method::Method;
use super::transaction::{ServerInviteState, TimerValues, TxKey};

mod bye_cancel;
mod call;
mod client_tx;
mod info;
mod invite;
mod options;
mod reply;
mod session_timer;
pub mod source_limits;
mod timers;
mod uac;
mod update;
mod validate;
use call::{Call, PendingRequest};
use client_tx::ClientTx;
use reply::{InviteTx, NonInviteTx, RawReply};
use source_limits::SourceLimits;
pub use source_limits::{SourceLimitSettings, SourceLimitStats};
use timers::{IdCounter, TimerTable, TimerTarget};
pub use uac::{OutboundCall, OutboundEvent, OutboundMessage, Registration};

/// Methods we implement, for Allow headers and 405 answers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
/// Option tags we support (RFC 4028 session timers).
const SUPPORTED: &str = "timer";

#[derive(Debug, Clone)]
pub struct UaConfig {
    pub timers: TimerValues,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// User part of our Contact URI.
    pub contact_user: String,
    /// Smallest Session-Expires we accept (RFC 4028 Min-SE), seconds.
    pub min_session_expires: u32,
    /// New INVITEs beyond this many calls get 503.
    pub max_calls: usize,
    /// Body types accepted in INFO requests (others get 415).
    pub info_content_types: Vec<(String, String)>,
    /// How long an outbound call may ring before we CANCEL it and report
    /// 408.
    pub outbound_answer_timeout: Duration,
    /// Per-source request rates, half-open INVITE bounds and reply
    /// budgets ([`source_limits`]).
    pub limits: SourceLimitSettings,
}

impl Default for UaConfig {
    fn default() -> Self {
        UaConfig {
            timers: TimerValues::default(),
            user_agent: concat!("pinbridge/", env!("CARGO_PKG_VERSION")).to_string(),
            contact_user: "pinbridge".into(),
            min_session_expires: 90,
            max_calls: 10_000,
            info_content_types: vec![
                ("application".into(), "dtmf-relay".into()),
                ("application".into(), "dtmf".into()),
            ],
            outbound_answer_timeout: Duration::from_secs(60),
            limits: SourceLimitSettings::default(),
        }
    }
}

/// A call as the application knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// A request inside a call that waits for the application's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// What a new INVITE tells the application.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    pub request_uri: String,
    /// The Request-URI user part, unescaped: the number that was dialled.
    pub dialed: Option<String>,
    pub from: NameAddr,
    pub p_asserted_identity: Option<NameAddr>,
    pub call_id: String,
    pub flow: Flow,
    /// The SDP offer, or `None` for a late-offer INVITE.
    pub offer: Option<Bytes>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// The caller cancelled before we answered.
    Cancelled,
    /// No ACK for our 2xx within 64·T1; we sent BYE.
    AckTimeout,
    /// The peer stopped refreshing the session (RFC 4028); we sent BYE.
    SessionExpired,
    /// Our session refresh failed; we sent BYE.
    RefreshFailed,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A new INVITE. Answer with [`UserAgent::answer`] or
    /// [`UserAgent::reject`].
    Incoming {
        call: CallHandle,
        info: Box<IncomingCall>,
    },
    /// The ACK for our 2xx arrived; for a late offer it carries the answer.
    Confirmed {
        call: CallHandle,
        ack_body: Option<Bytes>,
    },
    /// A re-INVITE or UPDATE with (or, for a late-offer re-INVITE, without)
    /// an SDP offer. Answer with [`UserAgent::respond`].
    Reoffer {
        call: CallHandle,
        request: RequestId,
        method: Method,
        offer: Option<Bytes>,
    },
    /// The ACK to our 2xx for a late-offer re-INVITE, with the answer.
    ReofferAck {
        call: CallHandle,
        body: Option<Bytes>,
    },
    /// An INFO request. Answer with [`UserAgent::respond`].
    Info {
        call: CallHandle,
        request: RequestId,
        content_type: String,
        body: Bytes,
    },
    /// The call is over; the application should release its media.
    Ended { call: CallHandle, reason: EndReason },
    /// Progress of a call placed with [`UserAgent::call`].
    Outbound(OutboundEvent),
    /// The final answer to a MESSAGE sent with [`UserAgent::message`]:
    /// 2xx is delivered, anything else failed (408 when nothing came back).
    MessageOutcome {
        id: RequestId,
        status: u16,
        reason: String,
    },
    /// The registrar accepted (or refreshed) a registration for `expires`
    /// seconds; it is refreshed at half that.
    Registered { id: RequestId, expires: u32 },
    /// A REGISTER failed (408 when nothing came back); it is retried later.
    RegistrationFailed {
        id: RequestId,
        status: u16,
        reason: String,
    },
    /// The binding was removed (Expires: 0 sent and answered, or given up).
    Unregistered { id: RequestId },
}

/// Errors from the application-facing API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no such call")]
    UnknownCall,
    #[error("no such pending request")]
    UnknownRequest,
    #[error("the call is not in a state that allows this")]
    WrongState,
    #[error("shutting down")]
    ShuttingDown,
    #[error("malformed {0}")]
    Invalid(&'static str),
    #[error("no such registration")]
    UnknownRegistration,
}

/// The SIP user agent core. See the module documentation.
pub struct UserAgent {
    cfg: UaConfig,
    rng: StdRng,
    calls: HashMap<CallHandle, Call>,
    /// (Call-ID, our tag) -> call.
    dialogs: HashMap<(String, String), CallHandle>,
    invite_txs: HashMap<TxKey, InviteTx>,
    non_invite_txs: HashMap<TxKey, NonInviteTx>,
    /// Keyed by `client_tx::client_key`: the branch, with CANCEL kept
    /// apart from the INVITE it shares its branch with.
    client_txs: HashMap<String, ClientTx>,
    pending: HashMap<RequestId, PendingRequest>,
    registrations: HashMap<RequestId, uac::Reg>,
    /// The strongest digest algorithm each peer has offered (see
    /// `uac::raise_digest_floor`).
    digest_floors: HashMap<SocketAddr, Algorithm>,
    /// Every deadline of every transaction, call and registration.
    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    ids: IdCounter,
    shutting_down: bool,
    limits: SourceLimits,
}

impl UserAgent {
    pub fn new(cfg: UaConfig) -> Self {
        Self::with_rng(cfg, rand::make_rng())
    }

    /// For deterministic tests.
    pub fn with_seed(cfg: UaConfig, seed: u64) -> Self {
        Self::with_rng(cfg, StdRng::seed_from_u64(seed))
    }

    fn with_rng(cfg: UaConfig, rng: StdRng) -> Self {
        UserAgent {
            limits: SourceLimits::new(cfg.limits.clone()),
            cfg,
            rng,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invite_txs: HashMap::new(),
            non_invite_txs: HashMap::new(),
            client_txs: HashMap::new(),
            pending: HashMap::new(),
            registrations: HashMap::new(),
            digest_floors: HashMap::new(),
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            ids: IdCounter::new(),
            shutting_down: false,
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.cfg
    }

    /// What the per-source limits dropped and suppressed so far.
    pub fn source_limit_stats(&self) -> SourceLimitStats {
        self.limits.stats()
    }

    /// Number of calls that exist (offered, answered or confirmed).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// True when no call and no client transaction (an un-REGISTER
    /// included) is left (for shutdown).
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.client_txs.values().all(|c| c.linger_until.is_some())
    }

    // ------------------------------------------------------------------
    // The poll API: input and time in, transmits and events out

    /// Handles one datagram (UDP) or one framed message (TCP).
    pub fn handle_input(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        match parse_datagram(bytes) {
            Ok(parsed) => {
                if flow.transport == Transport::Udp {
                    self.limits.on_datagram(now, flow.remote.ip(), bytes.len());
                }
                self.handle_parsed(now, flow, parsed)
            }
            Err(e) => {
                tracing::debug!(peer = %flow.remote, error = %e, "dropping unparseable SIP message")
            }
        }
    }

    /// Handles a message the shell already framed and parsed (TCP).
    pub fn handle_parsed(&mut self, now: Instant, flow: Flow, parsed: Parsed) {
        match parsed.message {
            // A broken response cannot be answered; RFC 3261 §18.3 says to
            // discard one whose body is shorter than its Content-Length,
            // and one that cannot be framed is no better.
            Message::Response(_) if parsed.defect.is_some() => {
                tracing::debug!(peer = %flow.remote, defect = ?parsed.defect, "dropping a malformed response");
            }
            Message::Response(resp) => self.handle_response(now, &flow, resp),
            Message::Request(req) => match parsed.defect {
                Some(defect) => {
                    // Whether it belongs to a dialog cannot be told: it
                    // counts as out-of-dialog.
                    if req.method != Method::Ack && self.admit_out_of_dialog(now, &flow) {
                        let (status, reason) = defect.response();
                        self.reply_raw(
                            &flow,
                            &req,
                            RawReply {
                                status,
                                reason: reason.into(),
                                extra: vec![],
                            },
                        );
                    }
                }
                None => self.handle_request(now, flow, &req),
            },
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(target) = self.timers.pop_due(now) {
            match target {
                TimerTarget::Invite(key) => self.invite_timer(now, key),
                TimerTarget::NonInvite(key) => self.non_invite_timer(now, key),
                TimerTarget::Client(branch) => self.client_timer(now, branch),
                TimerTarget::Call(h) => self.call_timer(now, h),
                TimerTarget::Registration(id) => self.registration_timer(now, id),
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    // ------------------------------------------------------------------
    // Routing a valid request: retransmissions, per-source limits, the
    // handler of its method

    fn handle_request(&mut self, now: Instant, flow: Flow, req: &Request) {
        let checked = match self.check_request(flow, req) {
            Ok(c) => c,
            Err(reply) => {
                if req.method != Method::Ack && self.admit_out_of_dialog(now, &flow) {
                    self.reply_raw(&flow, req, reply);
                }
                return;
            }
        };
        let from_tag = checked.from.tag().unwrap_or("").to_string();
        let key = TxKey::new(
            &req.method,
            &checked.top_via,
            &checked.call_id,
            &from_tag,
            checked.cseq.seq,
        );

        // Retransmissions are answered by their transaction.
        match req.method {
            Method::Ack => {
                if let Some(itx) = self.invite_txs.get_mut(&key) {
                    if itx.tx.state() == ServerInviteState::Completed {
                        itx.tx.on_ack(now);
                        let at = itx.tx.poll_timeout();
                        self.schedule(TimerTarget::Invite(key), at);
                        return;
                    }
                }
                self.handle_ack(now, &checked);
                return;
            }
            Method::Invite => {
                if let Some(itx) = self.invite_txs.get(&key) {
                    if let Some(bytes) = itx.tx.on_request_retransmission() {
                        let dest = itx.dest;
                        self.send(dest, bytes);
                    }
                    return;
                }
            }
            _ => {
                if let Some(ntx) = self.non_invite_txs.get(&key) {
                    if let Some(bytes) = ntx.tx.on_request_retransmission() {
                        let dest = ntx.dest;
                        self.send(dest, bytes);
                    }
                    return;
                }
            }
        }

        // Per-source limits: only requests that start something new (no
        // dialog, or a dialog we do not know) are counted; a new INVITE
        // also needs a half-open slot (taken in `handle_new_invite`).
        let in_dialog = checked.to.tag().is_some_and(|tag| {
            self.dialogs
                .contains_key(&(checked.call_id.clone(), tag.to_string()))
        });
        let cancels_live_invite =
            req.method == Method::Cancel && self.invite_txs.contains_key(&key.cancelled_invite());
        let new_invite = req.method == Method::Invite && checked.to.tag().is_none();
        if !in_dialog
            && !cancels_live_invite
            && !new_invite
            && !self.admit_out_of_dialog(now, &flow)
        {
            return;
        }
        let half_open = if new_invite {
            match self.limits.admit_invite(now, flow.remote.ip()) {
                Ok(()) => Some(flow.remote.ip()),
                Err(_) => return,
            }
        } else {
            None
        };

        if let Err(reply) = self.check_capabilities(&checked) {
            if let Some(ip) = half_open {
                self.limits.release(ip);
            }
            self.reply(&checked, reply.status, &reply.reason, reply.extra);
            return;
        }

        match &req.method {
            Method::Invite if checked.to.tag().is_none() => {
                self.handle_new_invite(now, checked, key, half_open)
            }
            Method::Invite => self.handle_reinvite(now, checked, key),
            Method::Cancel => self.handle_cancel(now, checked, key),
            Method::Bye => self.handle_bye(now, checked, key),
            Method::Options => self.handle_options(now, checked, key),
            Method::Update => self.handle_update(now, checked, key),
            Method::Info => self.handle_info(now, checked, key),
            // PRACK: we never send reliable provisionals, so none can match.
            _ => self.reply(&checked, 481, "Call/Transaction Does Not Exist", vec![]),
        }
    }

    // ------------------------------------------------------------------
    // Shared by the handlers: ids, tokens, our Contact, sending, timers

    fn id(&mut self) -> u64 {
        self.ids.next()
    }

    fn random_token(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn new_branch(&mut self) -> String {
        format!("z9hG4bK{}", self.random_token())
    }

    fn contact_for(&self, flow: &Flow) -> String {
        let transport = match flow.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{}>",
            self.cfg.contact_user,
            host_port(flow.local),
            transport
        )
    }

    /// Sends to a peer that may not have proven its address: over UDP
    /// this spends the destination's reply budget, and nothing is sent
    /// once it is spent (see [`source_limits`]).
    fn send(&mut self, flow: Flow, payload: Bytes) {
        if flow.transport == Transport::Udp
            && !self.limits.allow_reply(flow.remote.ip(), payload.len())
        {
            return;
        }
        self.transmits.push_back(Transmit { flow, payload });
    }

    /// Sends a request of our own (an outbound call, MESSAGE, REGISTER and
    /// their ACKs): we chose the destination, so no budget applies.
    fn send_own(&mut self, flow: Flow, payload: Bytes) {
        self.transmits.push_back(Transmit { flow, payload });
    }

    /// Takes an out-of-dialog request from the limiter's bucket.
    fn admit_out_of_dialog(&mut self, now: Instant, flow: &Flow) -> bool {
        self.limits.admit_request(now, flow.remote.ip()).is_ok()
    }

    fn schedule(&mut self, target: TimerTarget, at: Option<Instant>) {
        self.timers.schedule(target, at, &mut self.ids);
    }

    fn forget_timer(&mut self, target: &TimerTarget) {
        self.timers.forget(target);
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests;
