//! The calls the core keeps: each call's dialog and phase, the requests in
//! it that wait for the application, and how it ends. A call is found from
//! an in-dialog request by Call-ID and our tag (§12.2.2), which also checks
//! the peer's tag and CSeq order; it ends by BYE (ours or the peer's),
//! CANCEL, rejection, or one of its timers (no ACK for our 2xx, session
//! expiry, a failed refresh).

use std::time::Instant;

use bytes::Bytes;

use super::client_tx::ClientPurpose;
use super::invite::Pending2xx;
use super::reply::NonInviteTx;
use super::session_timer::{SessionPlan, SessionTimer};
use super::timers::TimerTarget;
use super::validate::Checked;
use super::{uac, CallHandle, EndReason, Event, RequestId, UaError, UserAgent};
use crate::sip::auth::{Credentials, DigestClient};
use crate::sip::dialog::Dialog;
use crate::sip::header::NameAddr;
use crate::sip::message::Request;
use crate::sip::method::Method;
use crate::sip::transaction::{ServerNonInviteTransaction, TxKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Outbound: INVITE sent, no final response yet.
    Calling,
    /// INVITE received, waiting for the application.
    Offered,
    /// 2xx sent, waiting for ACK.
    Answered,
    Confirmed,
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) dialog: Dialog,
    pub(super) phase: Phase,
    pub(super) invite_key: Option<TxKey>,
    pub(super) pending_2xx: Option<Pending2xx>,
    pub(super) bye_after_ack: bool,
    pub(super) session_plan: Option<SessionPlan>,
    pub(super) session: Option<SessionTimer>,
    pub(super) peer_allows_update: bool,
    pub(super) last_local_sdp: Option<Bytes>,
    /// The re-INVITE/UPDATE/INFO requests waiting for the application.
    pub(super) pending: Vec<RequestId>,
    pub(super) refresh_in_flight: bool,
    /// Outbound calls until the final response to the INVITE.
    pub(super) uac: Option<Box<uac::Uac>>,
    /// Outbound calls: for answering challenges to our in-dialog requests.
    pub(super) credentials: Option<Credentials>,
    /// Inbound calls until ACKed: the source holding a half-open slot in
    /// the limiter.
    pub(super) half_open: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub(super) enum PendingRequest {
    Invite(TxKey, CallHandle),
    NonInvite(TxKey, CallHandle, Method),
}

impl UserAgent {
    /// Looks up the call of an in-dialog request and checks its CSeq.
    pub(super) fn dialog_call(
        &mut self,
        c: &Checked<'_>,
    ) -> Result<CallHandle, (u16, &'static str)> {
        let local_tag = c.to.tag().unwrap_or("");
        let handle = self
            .dialogs
            .get(&(c.call_id.clone(), local_tag.to_string()))
            .copied()
            .ok_or((481, "Call/Transaction Does Not Exist"))?;
        let call = self
            .calls
            .get_mut(&handle)
            .ok_or((481, "Call/Transaction Does Not Exist"))?;
        if call.dialog.remote_tag != c.from.tag().unwrap_or("") {
            return Err((481, "Call/Transaction Does Not Exist"));
        }
        if let Some(remote) = call.dialog.remote_cseq {
            if c.cseq.seq <= remote {
                return Err((500, "CSeq Out of Order"));
            }
        }
        call.dialog.remote_cseq = Some(c.cseq.seq);
        Ok(handle)
    }

    /// The call of an UPDATE or INFO, which only exist in a dialog; the
    /// request is answered here (481, or 500 for an old CSeq) when there is
    /// none.
    pub(super) fn in_dialog_call(&mut self, c: &Checked<'_>) -> Option<CallHandle> {
        if c.to.tag().is_none() {
            self.reply(c, 481, "Call/Transaction Does Not Exist", vec![]);
            return None;
        }
        match self.dialog_call(c) {
            Ok(h) => Some(h),
            Err((s, r)) => {
                self.reply(c, s, r, vec![]);
                None
            }
        }
    }

    /// Keeps a non-INVITE request (UPDATE, INFO) for the application to
    /// answer with [`UserAgent::respond`]: its transaction stays so
    /// retransmissions are absorbed while the application decides.
    pub(super) fn hold_for_application(
        &mut self,
        c: &Checked<'_>,
        key: TxKey,
        handle: CallHandle,
        method: Method,
    ) -> RequestId {
        let ntx = ServerNonInviteTransaction::new(c.flow.transport.is_reliable(), self.cfg.timers);
        self.non_invite_txs.insert(
            key.clone(),
            NonInviteTx {
                tx: ntx,
                dest: c.dest,
                base: c.base.clone(),
            },
        );
        let rid = RequestId(self.id());
        self.pending
            .insert(rid, PendingRequest::NonInvite(key, handle, method));
        if let Some(call) = self.calls.get_mut(&handle) {
            call.pending.push(rid);
        }
        rid
    }

    pub(super) fn schedule_call(&mut self, h: CallHandle) {
        let at = self.calls.get(&h).and_then(call_deadline);
        self.schedule(TimerTarget::Call(h), at);
    }

    /// Forgets a call and tells the application.
    pub(super) fn end_call(&mut self, h: CallHandle, reason: EndReason) {
        if let Some(call) = self.remove_call(h) {
            tracing::debug!(call_id = %call.dialog.call_id, ?reason, "call ended");
            self.events.push_back(Event::Ended { call: h, reason });
        }
    }

    pub(super) fn remove_call(&mut self, h: CallHandle) -> Option<Call> {
        let call = self.calls.remove(&h)?;
        if let Some(ip) = call.half_open {
            self.limits.release(ip);
        }
        self.dialogs
            .remove(&(call.dialog.call_id.clone(), call.dialog.local_tag.clone()));
        for rid in &call.pending {
            self.pending.remove(rid);
        }
        self.forget_timer(&TimerTarget::Call(h));
        Some(call)
    }

    /// Sends BYE and forgets the call (the BYE transaction lives on).
    pub(super) fn send_bye(&mut self, now: Instant, h: CallHandle) {
        let Some(mut call) = self.remove_call(h) else {
            return;
        };
        let branch = self.new_branch();
        let cseq = call.dialog.next_cseq();
        let req = call
            .dialog
            .request(Method::Bye, cseq, &branch, &self.cfg.user_agent);
        let digest = call.credentials.map(DigestClient::new);
        self.start_client(
            now,
            &branch,
            call.dialog.flow,
            req,
            ClientPurpose::Bye,
            digest,
        );
    }

    pub(super) fn call_timer(&mut self, now: Instant, h: CallHandle) {
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        if call.phase == Phase::Calling {
            self.outbound_call_timer(now, h);
            self.schedule_call(h);
            return;
        }
        if self.pending_2xx_timer(now, h).is_break() {
            return;
        }
        if self.session_timer(now, h).is_break() {
            return;
        }
        self.schedule_call(h);
    }

    /// Ends a call from our side: BYE once it is answered (after the ACK if
    /// that is still outstanding, §15), 480 if it was never answered; an
    /// outbound call still ringing is CANCELled (it then reports `Failed`).
    /// Unknown or finished calls are ignored.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match c.phase {
            Phase::Calling => self.cancel_outbound(now, call),
            Phase::Offered => {
                let status = if self.shutting_down { 503 } else { 480 };
                let reason = if self.shutting_down {
                    "Service Unavailable"
                } else {
                    "Temporarily Unavailable"
                };
                let _ = self.reject(now, call, status, reason);
            }
            Phase::Answered => c.bye_after_ack = true,
            Phase::Confirmed => self.send_bye(now, call),
        }
    }

    /// Stops taking and placing calls, hangs up every call and removes
    /// every registration (Expires: 0). Poll until
    /// [`UserAgent::is_idle`] (bounded by the caller) before exiting.
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let calls: Vec<CallHandle> = self.calls.keys().copied().collect();
        for h in calls {
            // Do not wait for outstanding ACKs on shutdown.
            if self
                .calls
                .get(&h)
                .is_some_and(|c| c.phase == Phase::Answered)
            {
                if let Some(c) = self.calls.get_mut(&h) {
                    c.pending_2xx = None;
                    c.phase = Phase::Confirmed;
                }
            }
            self.hangup(now, h);
        }
        let registrations: Vec<RequestId> = self.registrations.keys().copied().collect();
        for id in registrations {
            let _ = self.unregister(now, id);
        }
    }

    /// Answers a pending re-INVITE, UPDATE or INFO.
    pub fn respond(
        &mut self,
        now: Instant,
        call: CallHandle,
        request: RequestId,
        status: u16,
        reason: &str,
        sdp: Option<Bytes>,
    ) -> Result<(), UaError> {
        let pending = self
            .pending
            .remove(&request)
            .ok_or(UaError::UnknownRequest)?;
        if let Some(c) = self.calls.get_mut(&call) {
            c.pending.retain(|r| *r != request);
        }
        let ok = (200..300).contains(&status);
        match pending {
            PendingRequest::Invite(key, h) => {
                let extra = if ok { self.session_headers(h) } else { vec![] };
                self.finalize_invite(now, &key, status, reason, extra, sdp.clone());
                if ok {
                    self.restart_session_timer(now, h);
                }
            }
            PendingRequest::NonInvite(key, h, method) => {
                let (extra, body) = if method == Method::Update && ok {
                    if let (Some(s), Some(c)) = (&sdp, self.calls.get_mut(&h)) {
                        c.last_local_sdp = Some(s.clone());
                    }
                    (self.session_headers(h), sdp.map(|s| ("application/sdp", s)))
                } else {
                    (vec![], None)
                };
                self.finalize_non_invite_with(now, &key, status, reason, extra, body);
                if method == Method::Update && ok {
                    self.restart_session_timer(now, h);
                }
            }
        }
        Ok(())
    }
}

/// Target refresh (§12.2.2): a re-INVITE or UPDATE may move the Contact.
pub(super) fn refresh_target(call: &mut Call, req: &Request) {
    if let Some(na) = req
        .headers
        .get("Contact")
        .and_then(|v| NameAddr::parse_list("Contact", v).ok())
        .and_then(|l| l.into_iter().next())
    {
        call.dialog.remote_target = na.uri_text;
    }
}

fn call_deadline(c: &Call) -> Option<Instant> {
    let a = c.pending_2xx.as_ref().map(|p| p.next.min(p.give_up));
    let b = c.session.map(|s| s.deadline);
    let u = c.uac.as_ref().and_then(|u| u.deadline());
    [a, b, u].into_iter().flatten().min()
}
