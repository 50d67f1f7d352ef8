//! The client side of the user agent core: outbound calls (INVITE with
//! CANCEL and the ACKs of §13.2.2 and §17.1.1.3), RFC 3428 MESSAGE and
//! REGISTER with refresh, each retried once per digest challenge (401/407).
//!
//! Everything is sent along a [`Flow`] the shell resolved (the trunk, used
//! as an outbound proxy: the Request-URI stays the target). An outbound
//! call, once answered, is a dialog like an inbound one: re-INVITE, UPDATE,
//! INFO and BYE from the peer and session timers go through the same code.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::call::{Call, Phase};
use super::client_tx::{reason_with, ClientPurpose, ClientTx};
use super::session_timer::SessionPlan;
use super::timers::TimerTarget;
use super::{CallHandle, Event, RequestId, UaError, UserAgent, ALLOW, SUPPORTED};
use crate::sip::auth::{Algorithm, AuthError, Credentials, DigestClient};
use crate::sip::dialog::{host_port, Dialog};
use crate::sip::flow::{Flow, Transport};
use crate::sip::grammar::split_commas;
use crate::sip::header::{
    parse_delta_seconds, parse_token_list, CSeq, MediaType, NameAddr, Refresher, SessionExpires,
};
use crate::sip::message::{Headers, Request, Response};
use crate::sip::method::Method;
use crate::sip::uri::Uri;

/// An outbound call for [`UserAgent::call`].
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// The target, e.g. `sip:+15551234567@trunk.example.com;user=phone`.
    pub request_uri: String,
    /// Our URI for From, e.g. `sip:pinbridge@trunk.example.com` (the caller
    /// ID the trunk shows, unless it overrides it).
    pub from: String,
    /// The To URI; normally the Request-URI.
    pub to: String,
    /// Where the INVITE and everything in the dialog is sent: the trunk's
    /// address (an outbound proxy), resolved by the shell.
    pub flow: Flow,
    /// Our SDP offer.
    pub sdp: Bytes,
    /// Answers 401/407 challenges, to the INVITE and to our later requests
    /// in the dialog.
    pub credentials: Option<Credentials>,
    /// Added to the INVITE (e.g. P-Asserted-Identity). Names must be
    /// tokens; the core headers may not be overridden.
    pub extra_headers: Vec<(String, String)>,
}

/// A MESSAGE (RFC 3428) for [`UserAgent::message`].
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub request_uri: String,
    /// Our URI for From.
    pub from: String,
    pub to: String,
    pub flow: Flow,
    /// e.g. `text/plain;charset=UTF-8`.
    pub content_type: String,
    pub body: Bytes,
    pub credentials: Option<Credentials>,
}

/// A registration for [`UserAgent::register`]: binds
/// `sip:<aor_user>@<domain>` to our address on `flow`.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Request-URI of the REGISTER, normally `sip:<domain>`.
    pub registrar_uri: String,
    pub aor_user: String,
    pub domain: String,
    /// Where REGISTERs go; its local address is our Contact.
    pub flow: Flow,
    /// Seconds asked for; the registrar may grant less (or more, 423).
    pub expires: u32,
    pub credentials: Option<Credentials>,
}

/// What happens to a call placed with [`UserAgent::call`]. Every call gets
/// exactly one `Answered` or `Failed`; after `Answered` it ends with
/// [`Event::Ended`] (peer BYE, refresh failure) or our own hangup.
#[derive(Debug, Clone)]
pub enum OutboundEvent {
    /// A provisional response (180 Ringing, 183 Session Progress), with the
    /// early-media SDP answer if it carried one.
    Ringing {
        call: CallHandle,
        status: u16,
        sdp: Option<Bytes>,
    },
    /// 2xx: the call is up and ACKed. `sdp` is the answer.
    Answered {
        call: CallHandle,
        sdp: Option<Bytes>,
    },
    /// No call: the final status (408 when nothing answered in time, 487
    /// after our own CANCEL) and reason phrase.
    Failed {
        call: CallHandle,
        status: u16,
        reason: String,
    },
}

/// What [`UserAgent::retry_with_auth`] did with a challenged request.
pub(super) enum AuthRetry {
    /// Sent again with credentials.
    Sent,
    /// Not retried (no credentials, no usable challenge, refused before):
    /// the response is final.
    NotSent(Box<ClientTx>, Option<AuthError>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CancelState {
    None,
    /// Hung up before any provisional response: CANCEL is sent when one
    /// arrives (§9.1).
    Wanted,
    Sent,
}

/// An outbound call until the final response to its INVITE.
#[derive(Debug)]
pub(super) struct Uac {
    /// Key of the current INVITE client transaction.
    invite_key: String,
    got_provisional: bool,
    cancel: CancelState,
    /// Ringing for longer than this: CANCEL.
    answer_deadline: Instant,
    /// After CANCEL (or hang-up): forget the call if the INVITE gets no
    /// final response by then (§9.1: 64·T1).
    give_up_at: Option<Instant>,
    /// What to report instead of the final status (our answer timeout).
    outcome: Option<(u16, String)>,
    extra_headers: Vec<(String, String)>,
}

impl Uac {
    pub(super) fn deadline(&self) -> Option<Instant> {
        let answer = (self.cancel == CancelState::None).then_some(self.answer_deadline);
        [answer, self.give_up_at].into_iter().flatten().min()
    }
}

/// One registration's state.
#[derive(Debug)]
pub(super) struct Reg {
    spec: Registration,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// What we ask for (raised by a 423).
    expires: u32,
    /// Carried from the last success, to answer pre-emptively.
    digest: Option<DigestClient>,
    /// The registrar holds (or recently held) our binding.
    registered: bool,
    /// Expires of the REGISTER in flight.
    in_flight: Option<u32>,
    unregistering: bool,
    failures: u32,
    tried_423: bool,
    /// When to refresh or retry.
    next_at: Option<Instant>,
}

/// Header names an application may not set through `extra_headers`.
const CORE_HEADERS: &[&str] = &[
    "Via",
    "Max-Forwards",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Type",
    "Content-Length",
    "Route",
    "Authorization",
    "Proxy-Authorization",
];

/// Peers whose strongest digest algorithm is remembered (in practice the
/// one trunk).
const MAX_DIGEST_PEERS: usize = 64;

/// Longest wait between REGISTER retries after failures.
const MAX_REGISTER_BACKOFF: u64 = 600;

impl UserAgent {
    // ------------------------------------------------------------------
    // Application API

    /// Places a call: sends the INVITE now. See [`OutboundEvent`] for what
    /// follows; [`UserAgent::hangup`] CANCELs it before the answer and
    /// sends BYE after.
    pub fn call(&mut self, now: Instant, out: OutboundCall) -> Result<CallHandle, UaError> {
        if self.shutting_down {
            return Err(UaError::ShuttingDown);
        }
        check_request_uri(&out.request_uri)?;
        let from = name_addr("From", &out.from)?;
        let to = name_addr("To", &out.to)?;
        check_extra_headers(&out.extra_headers)?;
        let handle = CallHandle(self.id());
        let local_tag = self.random_token();
        let call_id = self.new_call_id();
        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: String::new(),
            local_uri: from,
            remote_uri: to,
            remote_target: out.request_uri,
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: None,
            flow: out.flow,
            local_contact: self.contact_for(&out.flow),
        };
        let uac = Uac {
            invite_key: String::new(),
            got_provisional: false,
            cancel: CancelState::None,
            answer_deadline: now + self.cfg.outbound_answer_timeout,
            give_up_at: None,
            outcome: None,
            extra_headers: out.extra_headers,
        };
        let digest = out.credentials.clone().map(DigestClient::new);
        self.calls.insert(
            handle,
            Call {
                dialog,
                phase: Phase::Calling,
                invite_key: None,
                pending_2xx: None,
                bye_after_ack: false,
                session_plan: None,
                session: None,
                peer_allows_update: false,
                last_local_sdp: Some(out.sdp),
                pending: Vec::new(),
                refresh_in_flight: false,
                uac: Some(Box::new(uac)),
                credentials: out.credentials,
                half_open: None,
            },
        );
        self.dialogs.insert((call_id, local_tag), handle);
        self.send_invite(now, handle, digest);
        self.schedule_call(handle);
        Ok(handle)
    }

    /// Sends a MESSAGE; [`Event::MessageOutcome`] reports the result.
    pub fn message(&mut self, now: Instant, m: OutboundMessage) -> Result<RequestId, UaError> {
        if self.shutting_down {
            return Err(UaError::ShuttingDown);
        }
        check_request_uri(&m.request_uri)?;
        let from = name_addr("From", &m.from)?;
        let to = name_addr("To", &m.to)?;
        MediaType::parse("Content-Type", &m.content_type)
            .map_err(|_| UaError::Invalid("Content-Type"))?;
        let id = RequestId(self.id());
        let branch = self.new_branch();
        let tag = self.random_token();
        let call_id = self.new_call_id();
        let mut req = Request::new(Method::Message, m.request_uri);
        let h = &mut req.headers;
        h.push("Via", via_value(&m.flow, &branch));
        h.push("Max-Forwards", "70");
        h.push("From", format!("{from};tag={tag}"));
        h.push("To", to);
        h.push("Call-ID", call_id);
        h.push("CSeq", "1 MESSAGE");
        h.push("User-Agent", self.cfg.user_agent.clone());
        h.push("Content-Type", m.content_type);
        req.body = m.body;
        let digest = m.credentials.map(DigestClient::new);
        self.start_client(
            now,
            &branch,
            m.flow,
            req,
            ClientPurpose::Message(id),
            digest,
        );
        Ok(id)
    }

    /// Registers and keeps the registration fresh (at half the granted
    /// time; after failures with a growing back-off) until
    /// [`UserAgent::unregister`] or [`UserAgent::shutdown`].
    pub fn register(&mut self, now: Instant, r: Registration) -> Result<RequestId, UaError> {
        if self.shutting_down {
            return Err(UaError::ShuttingDown);
        }
        check_request_uri(&r.registrar_uri)?;
        let aor = format!("sip:{}@{}", r.aor_user, r.domain);
        if !matches!(Uri::parse(&aor), Ok(Uri::Sip(_))) {
            return Err(UaError::Invalid("address of record"));
        }
        let id = RequestId(self.id());
        let expires = r.expires;
        let reg = Reg {
            expires,
            spec: r,
            call_id: self.new_call_id(),
            from_tag: self.random_token(),
            cseq: 0,
            digest: None,
            registered: false,
            in_flight: None,
            unregistering: false,
            failures: 0,
            tried_423: false,
            next_at: None,
        };
        self.registrations.insert(id, reg);
        self.send_register(now, id, expires);
        Ok(id)
    }

    /// Removes the binding (REGISTER with Expires: 0); ends with
    /// [`Event::Unregistered`].
    pub fn unregister(&mut self, now: Instant, id: RequestId) -> Result<(), UaError> {
        let reg = self
            .registrations
            .get_mut(&id)
            .ok_or(UaError::UnknownRegistration)?;
        if reg.unregistering {
            return Ok(());
        }
        reg.unregistering = true;
        reg.next_at = None;
        let (in_flight, registered) = (reg.in_flight.is_some(), reg.registered);
        self.forget_timer(&TimerTarget::Registration(id));
        if in_flight {
            // Sent when the REGISTER in flight is answered.
            return Ok(());
        }
        if registered {
            self.send_register(now, id, 0);
        } else {
            self.registrations.remove(&id);
            self.events.push_back(Event::Unregistered { id });
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // INVITE

    fn new_call_id(&mut self) -> String {
        format!("{}{}", self.random_token(), self.random_token())
    }

    fn cnonce(&mut self) -> String {
        format!("{}{}", self.random_token(), self.random_token())
    }

    /// Sends the INVITE of an outbound call (new branch and CSeq).
    fn send_invite(&mut self, now: Instant, h: CallHandle, mut digest: Option<DigestClient>) {
        let branch = self.new_branch();
        let cnonce = self.cnonce();
        let ua = self.cfg.user_agent.clone();
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let cseq = call.dialog.next_cseq();
        let mut req = call.dialog.request(Method::Invite, cseq, &branch, &ua);
        req.headers.push("Allow", ALLOW);
        req.headers.push("Supported", SUPPORTED);
        if let Some(u) = &call.uac {
            for (n, v) in &u.extra_headers {
                req.headers.push(n.clone(), v.clone());
            }
        }
        if let Some(d) = digest.as_mut() {
            for (n, v) in d.headers("INVITE", &req.uri, &cnonce) {
                req.headers.push(n, v);
            }
        }
        if let Some(sdp) = &call.last_local_sdp {
            req.headers.push("Content-Type", "application/sdp");
            req.body = sdp.clone();
        }
        let flow = call.dialog.flow;
        let key = self.start_client(now, &branch, flow, req, ClientPurpose::Invite(h), digest);
        if let Some(u) = self.calls.get_mut(&h).and_then(|c| c.uac.as_mut()) {
            u.invite_key = key;
        }
    }

    pub(super) fn on_invite_provisional(&mut self, now: Instant, h: CallHandle, resp: &Response) {
        let Some(u) = self.calls.get_mut(&h).and_then(|c| c.uac.as_mut()) else {
            return;
        };
        u.got_provisional = true;
        match u.cancel {
            CancelState::Wanted => self.send_cancel(now, h),
            CancelState::Sent => {}
            CancelState::None => {
                if resp.status > 100 {
                    self.events
                        .push_back(Event::Outbound(OutboundEvent::Ringing {
                            call: h,
                            status: resp.status,
                            sdp: sdp_body(resp),
                        }));
                }
            }
        }
    }

    /// Stops an unanswered outbound call: CANCEL now, or once a provisional
    /// response shows the INVITE arrived.
    pub(super) fn cancel_outbound(&mut self, now: Instant, h: CallHandle) {
        let timeout = self.cfg.timers.timeout();
        let Some(u) = self.calls.get_mut(&h).and_then(|c| c.uac.as_mut()) else {
            return;
        };
        if u.cancel != CancelState::None {
            return;
        }
        if u.got_provisional {
            self.send_cancel(now, h);
        } else {
            u.cancel = CancelState::Wanted;
            u.give_up_at = Some(now + timeout);
            self.schedule_call(h);
        }
    }

    fn send_cancel(&mut self, now: Instant, h: CallHandle) {
        let timeout = self.cfg.timers.timeout();
        let Some(u) = self.calls.get_mut(&h).and_then(|c| c.uac.as_mut()) else {
            return;
        };
        u.cancel = CancelState::Sent;
        u.give_up_at = Some(now + timeout);
        let key = u.invite_key.clone();
        let Some(ctx) = self.client_txs.get(&key) else {
            return;
        };
        let cancel = cancel_for(&ctx.request, &self.cfg.user_agent);
        let flow = ctx.flow;
        // The INVITE's key is its branch; the CANCEL shares it (§9.1).
        self.start_client(now, &key, flow, cancel, ClientPurpose::Cancel(h), None);
        self.schedule_call(h);
    }

    pub(super) fn on_invite_final(
        &mut self,
        now: Instant,
        h: CallHandle,
        key: String,
        ctx: ClientTx,
        resp: &Response,
        auth_error: Option<AuthError>,
    ) {
        if (200..300).contains(&resp.status) {
            return self.on_invite_2xx(now, h, key, ctx, resp);
        }
        let ack = ack_for_non_2xx(&ctx.request, resp, &self.cfg.user_agent).to_bytes();
        self.linger_with_ack(now, key, ctx, ack, None);
        let outcome = self
            .calls
            .get(&h)
            .and_then(|c| c.uac.as_ref())
            .and_then(|u| u.outcome.clone());
        if self.remove_call(h).is_some() {
            let (status, reason) =
                outcome.unwrap_or_else(|| (resp.status, reason_with(resp, auth_error.as_ref())));
            tracing::debug!(status, %reason, "outbound call failed");
            self.events
                .push_back(Event::Outbound(OutboundEvent::Failed {
                    call: h,
                    status,
                    reason,
                }));
        }
    }

    /// The answer: the dialog takes the 2xx's tag, Contact and reversed
    /// Record-Route (§12.1.2); the 2xx is ACKed; after our CANCEL crossed
    /// it, the call is hung up at once.
    fn on_invite_2xx(
        &mut self,
        now: Instant,
        h: CallHandle,
        key: String,
        ctx: ClientTx,
        resp: &Response,
    ) {
        let tag = to_tag(resp);
        let calling = self
            .calls
            .get(&h)
            .is_some_and(|c| c.phase == Phase::Calling);
        if !calling {
            // We gave up on the call already: ACK and BYE.
            if let Some(ack) = self.ack_and_bye_stray(now, ctx.flow, &ctx.request, resp) {
                self.linger_with_ack(now, key, ctx, ack, Some(tag));
            }
            return;
        }
        let ack_branch = self.new_branch();
        let ua = self.cfg.user_agent.clone();
        let min_se = self.cfg.min_session_expires;
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        apply_2xx(&mut call.dialog, resp);
        call.phase = Phase::Confirmed;
        call.peer_allows_update = lists(&resp.headers, "Allow", "UPDATE");
        call.session_plan = uac_session_plan(&resp.headers, min_se);
        let uac = call.uac.take();
        let cseq = cseq_of(&ctx.request);
        let mut ack = call.dialog.request(Method::Ack, cseq, &ack_branch, &ua);
        // §22.1: the ACK for a 2xx carries the INVITE's credentials.
        for name in ["Authorization", "Proxy-Authorization"] {
            for v in ctx.request.headers.get_all(name) {
                ack.headers.push(name, v.to_string());
            }
        }
        self.linger_with_ack(now, key, ctx, ack.to_bytes(), Some(tag));
        let cancelled = uac.as_ref().is_some_and(|u| u.cancel != CancelState::None);
        if cancelled {
            let (status, reason) = uac
                .and_then(|u| u.outcome)
                .unwrap_or_else(|| (487, "Request Terminated".into()));
            self.send_bye(now, h);
            self.events
                .push_back(Event::Outbound(OutboundEvent::Failed {
                    call: h,
                    status,
                    reason,
                }));
            return;
        }
        self.restart_session_timer(now, h);
        self.events
            .push_back(Event::Outbound(OutboundEvent::Answered {
                call: h,
                sdp: sdp_body(resp),
            }));
    }

    /// A final response to an INVITE transaction that already has one: the
    /// same ACK again, or for a 2xx from another fork, ACK and BYE.
    pub(super) fn on_repeated_final(&mut self, now: Instant, key: &str, resp: &Response) {
        let Some(ctx) = self.client_txs.get(key) else {
            return;
        };
        let Some(ack) = ctx.ack.clone() else {
            return;
        };
        let is_2xx = (200..300).contains(&resp.status);
        match &ctx.acked_tag {
            Some(tag) if is_2xx && *tag != to_tag(resp) => {
                let (flow, req) = (ctx.flow, ctx.request.clone());
                tracing::debug!("2xx from a second fork: ACK and BYE");
                self.ack_and_bye_stray(now, flow, &req, resp);
            }
            Some(_) if !is_2xx => {}
            _ => self.send_own(ctx.flow, ack),
        }
    }

    /// ACKs a 2xx nobody wants and ends that dialog with BYE; returns the
    /// ACK.
    fn ack_and_bye_stray(
        &mut self,
        now: Instant,
        flow: Flow,
        invite: &Request,
        resp: &Response,
    ) -> Option<Bytes> {
        let mut d = dialog_from_invite(invite, flow)?;
        apply_2xx(&mut d, resp);
        let ack_branch = self.new_branch();
        let bye_branch = self.new_branch();
        let ua = self.cfg.user_agent.clone();
        let ack = d
            .request(Method::Ack, cseq_of(invite), &ack_branch, &ua)
            .to_bytes();
        self.send_own(flow, ack.clone());
        let cseq = d.next_cseq();
        let bye = d.request(Method::Bye, cseq, &bye_branch, &ua);
        self.start_client(now, &bye_branch, flow, bye, ClientPurpose::Bye, None);
        Some(ack)
    }

    /// Timer B: the INVITE was never answered at all.
    pub(super) fn invite_timed_out(&mut self, h: CallHandle) {
        let outcome = self
            .calls
            .get(&h)
            .and_then(|c| c.uac.as_ref())
            .and_then(|u| u.outcome.clone());
        if self.remove_call(h).is_some() {
            let (status, reason) = outcome.unwrap_or_else(|| (408, "Request Timeout".into()));
            self.events
                .push_back(Event::Outbound(OutboundEvent::Failed {
                    call: h,
                    status,
                    reason,
                }));
        }
    }

    /// The answer timeout (CANCEL) and the give-up after CANCEL.
    pub(super) fn outbound_call_timer(&mut self, now: Instant, h: CallHandle) {
        let Some(u) = self.calls.get_mut(&h).and_then(|c| c.uac.as_mut()) else {
            return;
        };
        if u.give_up_at.is_some_and(|t| now >= t) {
            let key = u.invite_key.clone();
            self.client_txs.remove(&key);
            self.forget_timer(&TimerTarget::Client(key));
            self.invite_timed_out(h);
            return;
        }
        if u.cancel == CancelState::None && now >= u.answer_deadline {
            tracing::debug!("outbound call not answered in time: CANCEL");
            u.outcome = Some((408, "Request Timeout".into()));
            self.cancel_outbound(now, h);
        }
    }

    // ------------------------------------------------------------------
    // Digest

    /// Resends a challenged request with credentials when it may be
    /// (credentials known, a usable challenge, not answered before).
    /// Otherwise hands the transaction back for the final response to be
    /// processed, with why it was not retried.
    pub(super) fn retry_with_auth(
        &mut self,
        now: Instant,
        key: &str,
        mut ctx: ClientTx,
        resp: &Response,
    ) -> AuthRetry {
        let not_sent = |ctx, e| AuthRetry::NotSent(Box::new(ctx), e);
        if !matches!(resp.status, 401 | 407) || ctx.digest.is_none() {
            return not_sent(ctx, None);
        }
        if let ClientPurpose::Invite(h) = ctx.purpose {
            let live = self
                .calls
                .get(&h)
                .and_then(|c| c.uac.as_ref())
                .is_some_and(|u| u.cancel == CancelState::None);
            if !live {
                return not_sent(ctx, None);
            }
        }
        let Some(digest) = ctx.digest.as_mut() else {
            return not_sent(ctx, None);
        };
        let peer = ctx.flow.remote;
        let floor = self.digest_floors.get(&peer).copied();
        match digest.on_challenge(resp.status, &resp.headers, floor) {
            Ok(answered) => self.raise_digest_floor(peer, answered),
            Err(e) => {
                tracing::info!(status = resp.status, error = %e, method = %ctx.request.method, "not answering the challenge");
                return not_sent(ctx, Some(e));
            }
        }
        let mut digest = ctx.digest.take();
        let branch = self.new_branch();
        let cnonce = self.cnonce();
        let cseq = (cseq_of(&ctx.request) + 1) % (1 << 31);
        let old = &ctx.request;
        let auth = digest
            .as_mut()
            .map(|d| d.headers(old.method.as_str(), &old.uri, &cnonce))
            .unwrap_or_default();
        let req = rebuilt(old, &via_value(&ctx.flow, &branch), cseq, auth);
        let (flow, purpose) = (ctx.flow, ctx.purpose);
        if ctx.tx.is_invite() {
            let ack = ack_for_non_2xx(&ctx.request, resp, &self.cfg.user_agent).to_bytes();
            self.linger_with_ack(now, key.to_string(), ctx, ack, None);
        }
        let new_key = self.start_client(now, &branch, flow, req, purpose, digest);
        match purpose {
            ClientPurpose::Invite(h) => {
                if let Some(c) = self.calls.get_mut(&h) {
                    c.dialog.local_cseq = cseq;
                    if let Some(u) = c.uac.as_mut() {
                        u.invite_key = new_key;
                    }
                }
            }
            ClientPurpose::Refresh(h) => {
                if let Some(c) = self.calls.get_mut(&h) {
                    c.dialog.local_cseq = cseq;
                }
            }
            ClientPurpose::Register(id) => {
                if let Some(r) = self.registrations.get_mut(&id) {
                    r.cseq = cseq;
                }
            }
            ClientPurpose::Bye | ClientPurpose::Cancel(_) | ClientPurpose::Message(_) => {}
        }
        AuthRetry::Sent
    }

    /// Remembers the strongest digest algorithm `peer` has offered: a
    /// weaker one from it later is refused as a downgrade. Kept for the
    /// life of the process, per peer address (the trunk; an outbound proxy
    /// answering for it is the same address), so a changed realm does not
    /// escape it. Only peers we hold credentials for get here, and the
    /// table is capped, so it cannot grow without bound.
    fn raise_digest_floor(&mut self, peer: SocketAddr, answered: Algorithm) {
        let full = self.digest_floors.len() >= MAX_DIGEST_PEERS;
        match self.digest_floors.get_mut(&peer) {
            Some(f) if answered.strength() > f.strength() => *f = answered,
            Some(_) => {}
            None if full => {}
            None => {
                self.digest_floors.insert(peer, answered);
            }
        }
    }

    // ------------------------------------------------------------------
    // REGISTER

    fn send_register(&mut self, now: Instant, id: RequestId, expires: u32) {
        let branch = self.new_branch();
        let cnonce = self.cnonce();
        let ua = self.cfg.user_agent.clone();
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        reg.cseq = (reg.cseq + 1) % (1 << 31);
        reg.in_flight = Some(expires);
        reg.next_at = None;
        let spec = &reg.spec;
        let aor = format!("<sip:{}@{}>", spec.aor_user, spec.domain);
        let mut req = Request::new(Method::Register, spec.registrar_uri.clone());
        let h = &mut req.headers;
        h.push("Via", via_value(&spec.flow, &branch));
        h.push("Max-Forwards", "70");
        h.push("From", format!("{aor};tag={}", reg.from_tag));
        h.push("To", aor);
        h.push("Call-ID", reg.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", reg.cseq));
        h.push("Contact", format!("<{}>", contact_uri(spec)));
        h.push("Expires", expires.to_string());
        h.push("Allow", ALLOW);
        h.push("User-Agent", ua);
        let mut digest = match &reg.digest {
            Some(d) => Some(d.carry_over()),
            None => spec.credentials.clone().map(DigestClient::new),
        };
        if let Some(d) = digest.as_mut().filter(|d| d.has_answers()) {
            for (n, v) in d.headers("REGISTER", &req.uri, &cnonce) {
                req.headers.push(n, v);
            }
        }
        let flow = spec.flow;
        self.start_client(now, &branch, flow, req, ClientPurpose::Register(id), digest);
    }

    pub(super) fn on_register_final(
        &mut self,
        now: Instant,
        id: RequestId,
        ctx: ClientTx,
        resp: &Response,
        auth_error: Option<AuthError>,
    ) {
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        let sent = reg.in_flight.take();
        let ok = (200..300).contains(&resp.status);
        if ok {
            reg.digest = ctx.digest;
        }
        if sent == Some(0) || (reg.unregistering && !ok) {
            self.registrations.remove(&id);
            self.events.push_back(Event::Unregistered { id });
            return;
        }
        if reg.unregistering {
            reg.registered = true;
            self.send_register(now, id, 0);
            return;
        }
        if ok {
            let granted = granted_expires(&resp.headers, &contact_uri(&reg.spec), reg.expires);
            if granted == 0 {
                let reason = "Registrar Granted No Binding".to_string();
                return self.registration_failed(now, id, resp.status, reason, None);
            }
            reg.registered = true;
            reg.failures = 0;
            reg.tried_423 = false;
            let at = now + Duration::from_secs(u64::from(granted / 2).max(1));
            reg.next_at = Some(at);
            self.schedule(TimerTarget::Registration(id), Some(at));
            self.events.push_back(Event::Registered {
                id,
                expires: granted,
            });
            return;
        }
        let min = resp
            .headers
            .get("Min-Expires")
            .and_then(|v| parse_delta_seconds("Min-Expires", v).ok());
        if let (423, Some(min), false) = (resp.status, min, reg.tried_423) {
            reg.tried_423 = true;
            reg.expires = reg.expires.max(min);
            let expires = reg.expires;
            return self.send_register(now, id, expires);
        }
        let retry_after = resp
            .headers
            .get("Retry-After")
            .and_then(|v| v.split(';').next())
            .and_then(|v| parse_delta_seconds("Retry-After", v.trim()).ok());
        let reason = reason_with(resp, auth_error.as_ref());
        self.registration_failed(now, id, resp.status, reason, retry_after);
    }

    pub(super) fn registration_timed_out(&mut self, now: Instant, id: RequestId) {
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        let sent = reg.in_flight.take();
        if sent == Some(0) || reg.unregistering {
            self.registrations.remove(&id);
            self.events.push_back(Event::Unregistered { id });
            return;
        }
        self.registration_failed(now, id, 408, "Request Timeout".into(), None);
    }

    /// Reports a failure and retries after a back-off (30 s doubling to 10
    /// minutes) or the registrar's Retry-After.
    fn registration_failed(
        &mut self,
        now: Instant,
        id: RequestId,
        status: u16,
        reason: String,
        retry_after: Option<u32>,
    ) {
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        reg.failures = reg.failures.saturating_add(1);
        let backoff = 30u64
            .saturating_mul(1 << reg.failures.saturating_sub(1).min(8))
            .min(MAX_REGISTER_BACKOFF);
        let wait = retry_after
            .map(|s| u64::from(s).clamp(1, 3600))
            .unwrap_or(backoff);
        let at = now + Duration::from_secs(wait);
        reg.next_at = Some(at);
        self.schedule(TimerTarget::Registration(id), Some(at));
        tracing::warn!(status, %reason, retry_in_secs = wait, "registration failed");
        self.events
            .push_back(Event::RegistrationFailed { id, status, reason });
    }

    pub(super) fn registration_timer(&mut self, now: Instant, id: RequestId) {
        let Some(reg) = self.registrations.get(&id) else {
            return;
        };
        if reg.in_flight.is_some() || reg.unregistering {
            return;
        }
        if reg.next_at.is_some_and(|t| now >= t) {
            let expires = reg.expires;
            self.send_register(now, id, expires);
        }
    }
}

// ----------------------------------------------------------------------
// Helpers

fn check_request_uri(uri: &str) -> Result<(), UaError> {
    match Uri::parse(uri) {
        Ok(Uri::Sip(u)) if u.headers.is_none() => Ok(()),
        Ok(Uri::Tel { .. }) => Ok(()),
        _ => Err(UaError::Invalid("Request-URI")),
    }
}

/// A URI (or a full name-addr) as a From/To value without tag.
fn name_addr(header: &'static str, uri: &str) -> Result<String, UaError> {
    let v = if uri.contains('<') {
        uri.to_string()
    } else {
        format!("<{uri}>")
    };
    let na = NameAddr::parse(header, &v).map_err(|_| UaError::Invalid(header))?;
    if na.tag().is_some() {
        return Err(UaError::Invalid(header));
    }
    Ok(v)
}

fn check_extra_headers(h: &[(String, String)]) -> Result<(), UaError> {
    for (n, v) in h {
        let ok = super::super::grammar::is_token(n)
            && !CORE_HEADERS.iter().any(|c| c.eq_ignore_ascii_case(n))
            && !v.contains(['\r', '\n']);
        if !ok {
            return Err(UaError::Invalid("extra header"));
        }
    }
    Ok(())
}

fn via_value(flow: &Flow, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {};branch={branch};rport",
        flow.transport,
        host_port(flow.local)
    )
}

fn cseq_of(req: &Request) -> u32 {
    req.headers
        .get("CSeq")
        .and_then(|v| CSeq::parse(v).ok())
        .map(|c| c.seq)
        .unwrap_or(1)
}

fn to_tag(resp: &Response) -> String {
    resp.headers
        .get("To")
        .and_then(|v| NameAddr::parse("To", v).ok())
        .and_then(|na| na.tag().map(str::to_string))
        .unwrap_or_default()
}

fn sdp_body(resp: &Response) -> Option<Bytes> {
    let is_sdp = resp
        .headers
        .get("Content-Type")
        .and_then(|v| MediaType::parse("Content-Type", v).ok())
        .is_some_and(|m| m.is("application", "sdp"));
    (is_sdp && !resp.body.is_empty()).then(|| resp.body.clone())
}

/// Does a token-list header (Allow, Supported, Require) list `token`?
fn lists(h: &Headers, name: &'static str, token: &str) -> bool {
    h.get_all(name)
        .filter_map(|v| parse_token_list(name, v).ok())
        .flatten()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// A session interval set by the 2xx to our INVITE (RFC 4028 §7.2); the
/// refresher defaults to us, who asked for timer support.
fn uac_session_plan(h: &Headers, min_se: u32) -> Option<SessionPlan> {
    let se = SessionExpires::parse(h.get("Session-Expires")?).ok()?;
    Some(SessionPlan {
        interval: se.seconds.max(min_se).max(1),
        refresher: se.refresher.unwrap_or(Refresher::Uac),
        peer_supports_timer: lists(h, "Require", "timer") || lists(h, "Supported", "timer"),
        local_is_uac: true,
    })
}

/// The dialog state of §12.1.2 from a 2xx: the peer's tag and URI, its
/// Contact as remote target, Record-Route reversed as route set.
fn apply_2xx(d: &mut Dialog, resp: &Response) {
    d.remote_tag = to_tag(resp);
    if let Some(to) = resp.headers.get("To") {
        d.remote_uri = to.to_string();
    }
    if let Some(c) = resp
        .headers
        .get("Contact")
        .and_then(|v| NameAddr::parse_list("Contact", v).ok())
        .and_then(|l| l.into_iter().next())
        .filter(|c| Uri::parse(&c.uri_text).is_ok())
    {
        d.remote_target = c.uri_text;
    }
    let mut routes: Vec<String> = resp
        .headers
        .get_all("Record-Route")
        .filter_map(|v| NameAddr::parse_list("Record-Route", v).ok().map(|_| v))
        .filter_map(|v| split_commas(v).ok())
        .flatten()
        .map(|r| r.trim().to_string())
        .collect();
    routes.reverse();
    d.route_set = routes;
}

/// A dialog (before the answer) from an INVITE we sent.
fn dialog_from_invite(inv: &Request, flow: Flow) -> Option<Dialog> {
    let from = inv.headers.get("From")?;
    let (local_uri, local_tag) = from.rsplit_once(";tag=")?;
    Some(Dialog {
        call_id: inv.headers.get("Call-ID")?.to_string(),
        local_tag: local_tag.to_string(),
        remote_tag: String::new(),
        local_uri: local_uri.to_string(),
        remote_uri: inv.headers.get("To")?.to_string(),
        remote_target: inv.uri.clone(),
        route_set: Vec::new(),
        local_cseq: cseq_of(inv),
        remote_cseq: None,
        flow,
        local_contact: inv.headers.get("Contact").unwrap_or("").to_string(),
    })
}

/// ACK or CANCEL built from the INVITE (§9.1, §17.1.1.3): same
/// Request-URI, top Via, Route, From, Call-ID and CSeq number.
fn from_invite(inv: &Request, method: Method, to: &str, ua: &str) -> Request {
    let mut r = Request::new(method.clone(), inv.uri.clone());
    let h = &mut r.headers;
    if let Some(v) = inv.headers.get("Via") {
        h.push("Via", v.to_string());
    }
    h.push("Max-Forwards", "70");
    for route in inv.headers.get_all("Route") {
        h.push("Route", route.to_string());
    }
    for name in ["From", "Call-ID"] {
        if let Some(v) = inv.headers.get(name) {
            h.push(name, v.to_string());
        }
    }
    h.push("To", to.to_string());
    h.push("CSeq", format!("{} {method}", cseq_of(inv)));
    h.push("User-Agent", ua.to_string());
    r
}

fn cancel_for(inv: &Request, ua: &str) -> Request {
    from_invite(inv, Method::Cancel, inv.headers.get("To").unwrap_or(""), ua)
}

fn ack_for_non_2xx(inv: &Request, resp: &Response, ua: &str) -> Request {
    let to = resp
        .headers
        .get("To")
        .or(inv.headers.get("To"))
        .unwrap_or("");
    from_invite(inv, Method::Ack, to, ua)
}

/// The request again with a new top Via, CSeq and credentials.
fn rebuilt(old: &Request, via: &str, cseq: u32, auth: Vec<(&'static str, String)>) -> Request {
    let mut r = Request::new(old.method.clone(), old.uri.clone());
    let mut via_done = false;
    for (n, v) in old.headers.iter() {
        if n.eq_ignore_ascii_case("Via") {
            if !via_done {
                r.headers.push("Via", via.to_string());
                via_done = true;
            }
        } else if n.eq_ignore_ascii_case("CSeq") {
            r.headers.push("CSeq", format!("{cseq} {}", old.method));
        } else if !n.eq_ignore_ascii_case("Authorization")
            && !n.eq_ignore_ascii_case("Proxy-Authorization")
        {
            r.headers.push(n.to_string(), v.to_string());
        }
    }
    for (n, v) in auth {
        r.headers.push(n, v);
    }
    r.body = old.body.clone();
    r
}

fn contact_uri(spec: &Registration) -> String {
    let transport = match spec.flow.transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    format!(
        "sip:{}@{}{transport}",
        spec.aor_user,
        host_port(spec.flow.local)
    )
}

/// The expiry the registrar granted us: our Contact's `expires` in the
/// 2xx, else its Expires header, else what we asked for.
fn granted_expires(h: &Headers, ours: &str, asked: u32) -> u32 {
    let ours = Uri::parse(ours).ok();
    let same = |uri: &str| match (Uri::parse(uri).ok(), &ours) {
        (Some(Uri::Sip(a)), Some(Uri::Sip(b))) => {
            a.user == b.user && a.host == b.host && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
        }
        _ => false,
    };
    let from_contact = h
        .get_all("Contact")
        .filter_map(|v| NameAddr::parse_list("Contact", v).ok())
        .flatten()
        .find(|c| same(&c.uri_text))
        .and_then(|c| {
            c.param("expires")
                .and_then(|e| parse_delta_seconds("expires", e).ok())
        });
    from_contact
        .or_else(|| {
            h.get("Expires")
                .and_then(|e| parse_delta_seconds("Expires", e).ok())
        })
        .unwrap_or(asked)
}
