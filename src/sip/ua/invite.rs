//! INVITE on the server side. A new INVITE gets 100 Trying and becomes a
//! call the application answers ([`UserAgent::answer`]), rings
//! ([`UserAgent::ring`]) or rejects ([`UserAgent::reject`]); it is refused
//! with 503 while shutting down or at the call limit, and with 422 when its
//! session interval is too small. Our 2xx is retransmitted until its ACK
//! arrives (§13.3.1.4), and the ACK confirms the call (carrying the answer
//! to a late offer). A re-INVITE is a new offer (or, without SDP, asks for
//! ours) in a confirmed call, answered with [`UserAgent::respond`]; while
//! another INVITE of the call is unfinished it gets 500 with Retry-After
//! (§14.2).

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngExt;

use super::call::{refresh_target, Call, PendingRequest, Phase};
use super::reply::{InviteTx, ResponseBase};
use super::session_timer::start_session_timer;
use super::validate::Checked;
use super::{CallHandle, EndReason, Event, IncomingCall, RequestId, UaError, UserAgent};
use crate::sip::dialog::Dialog;
use crate::sip::grammar::split_commas;
use crate::sip::header::{parse_token_list, NameAddr};
use crate::sip::method::Method;
use crate::sip::transaction::{ServerInviteTransaction, TxKey};
use crate::sip::uri::Uri;

#[derive(Debug)]
pub(super) struct Pending2xx {
    pub(super) cseq: u32,
    pub(super) bytes: Bytes,
    pub(super) interval: Duration,
    pub(super) next: Instant,
    pub(super) give_up: Instant,
    pub(super) initial: bool,
}

impl UserAgent {
    /// `half_open` is the source's slot in the limiter: kept by the call
    /// until it is ACKed or ends, given back here if no call is made.
    pub(super) fn handle_new_invite(
        &mut self,
        now: Instant,
        c: Checked<'_>,
        key: TxKey,
        half_open: Option<IpAddr>,
    ) {
        let refused = self.shutting_down
            || self.calls.len() >= self.cfg.max_calls
            || self.session_plan(&c).is_err();
        if let (true, Some(ip)) = (refused, half_open) {
            self.limits.release(ip);
        }
        if self.shutting_down {
            self.reply(
                &c,
                503,
                "Service Unavailable",
                vec![("Retry-After", "30".into())],
            );
            return;
        }
        if self.calls.len() >= self.cfg.max_calls {
            self.reply(
                &c,
                503,
                "Service Unavailable",
                vec![("Retry-After", "5".into())],
            );
            return;
        }
        let plan = match self.session_plan(&c) {
            Ok(p) => p,
            Err(r) => {
                self.reply(&c, r.status, &r.reason, r.extra);
                return;
            }
        };
        let local_tag = self.random_token();
        let handle = CallHandle(self.id());
        let mut base = self.response_base(c.req, &c.flow, &c.top_via, Some(&local_tag), &c.to);
        base.record_route = c
            .req
            .headers
            .get_all("Record-Route")
            .map(str::to_string)
            .collect();

        let mut tx = ServerInviteTransaction::new(c.flow.transport.is_reliable(), self.cfg.timers);
        let trying = self.build_response(&base, 100, "Trying").to_bytes();
        tx.provisional(trying.clone());
        self.send(c.dest, trying);

        let dialog = self.uas_dialog(&c, &base, &local_tag);
        let peer_allows_update = c
            .req
            .headers
            .get_all("Allow")
            .filter_map(|v| parse_token_list("Allow", v).ok())
            .flatten()
            .any(|m| m == "UPDATE");
        self.calls.insert(
            handle,
            Call {
                dialog,
                phase: Phase::Offered,
                invite_key: Some(key.clone()),
                pending_2xx: None,
                bye_after_ack: false,
                session_plan: plan,
                session: None,
                peer_allows_update,
                last_local_sdp: None,
                pending: Vec::new(),
                refresh_in_flight: false,
                uac: None,
                credentials: None,
                half_open,
            },
        );
        self.dialogs.insert((c.call_id.clone(), local_tag), handle);
        self.invite_txs.insert(
            key,
            InviteTx {
                tx,
                base,
                dest: c.dest,
                call: Some(handle),
            },
        );
        let _ = now;
        self.events.push_back(Event::Incoming {
            call: handle,
            info: Box::new(incoming_call(&c)),
        });
    }

    /// Our side of the dialog a new INVITE creates (§12.1.1).
    fn uas_dialog(&self, c: &Checked<'_>, base: &ResponseBase, local_tag: &str) -> Dialog {
        let contact = c
            .req
            .headers
            .get("Contact")
            .and_then(|v| NameAddr::parse_list("Contact", v).ok())
            .and_then(|l| l.into_iter().next());
        // No Contact (RFC 2543 peers): address the From URI.
        let remote_target = contact
            .map(|na| na.uri_text)
            .unwrap_or_else(|| c.from.uri_text.clone());
        let route_set: Vec<String> = c
            .req
            .headers
            .get_all("Record-Route")
            .filter_map(|v| split_commas(v).ok())
            .flatten()
            .map(str::to_string)
            .collect();
        Dialog {
            call_id: c.call_id.clone(),
            local_tag: local_tag.to_string(),
            remote_tag: c.from.tag().unwrap_or("").to_string(),
            local_uri: base.to_original.clone(),
            remote_uri: base.from.clone(),
            remote_target,
            route_set,
            local_cseq: 0,
            remote_cseq: Some(c.cseq.seq),
            flow: c.flow,
            local_contact: self.contact_for(&c.flow),
        }
    }

    pub(super) fn handle_reinvite(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        let handle = match self.dialog_call(&c) {
            Ok(h) => h,
            Err((s, r)) => return self.reply(&c, s, r, vec![]),
        };
        let busy = self.calls.get(&handle).is_some_and(|call| {
            call.pending_2xx.is_some()
                || call.phase != Phase::Confirmed
                || call
                    .pending
                    .iter()
                    .any(|p| matches!(self.pending.get(p), Some(PendingRequest::Invite(..))))
        });
        if busy {
            // §14.2: a re-INVITE while another INVITE is unfinished.
            let retry = self.rng.random_range(0..10u32).to_string();
            return self.reply(
                &c,
                500,
                "Server Internal Error",
                vec![("Retry-After", retry)],
            );
        }
        let plan = match self.session_plan(&c) {
            Ok(p) => p,
            Err(r) => return self.reply(&c, r.status, &r.reason, r.extra),
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        refresh_target(call, c.req);
        if plan.is_some() {
            call.session_plan = plan;
        }
        let base = {
            let mut b = c.base.clone();
            b.to = b.to_original.clone();
            b
        };
        let mut tx = ServerInviteTransaction::new(c.flow.transport.is_reliable(), self.cfg.timers);
        let trying = self.build_response(&base, 100, "Trying").to_bytes();
        tx.provisional(trying.clone());
        self.send(c.dest, trying);
        self.invite_txs.insert(
            key.clone(),
            InviteTx {
                tx,
                base,
                dest: c.dest,
                call: Some(handle),
            },
        );
        let rid = RequestId(self.id());
        self.pending
            .insert(rid, PendingRequest::Invite(key, handle));
        if let Some(call) = self.calls.get_mut(&handle) {
            call.pending.push(rid);
        }
        let _ = now;
        self.events.push_back(Event::Reoffer {
            call: handle,
            request: rid,
            method: Method::Invite,
            offer: (!c.req.body.is_empty()).then(|| c.req.body.clone()),
        });
    }

    pub(super) fn handle_ack(&mut self, now: Instant, c: &Checked<'_>) {
        let Some(tag) = c.to.tag() else { return };
        let Some(&handle) = self.dialogs.get(&(c.call_id.clone(), tag.to_string())) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let matches = call
            .pending_2xx
            .as_ref()
            .is_some_and(|p| p.cseq == c.cseq.seq);
        if !matches {
            return; // a retransmitted ACK, or one for a 2xx we no longer track
        }
        let Some(p) = call.pending_2xx.take() else {
            return;
        };
        let body = (!c.req.body.is_empty()).then(|| c.req.body.clone());
        // Only the peer that got our 2xx knows its To tag: the source has
        // proven its address.
        let half_open = call.half_open.take();
        self.limits.confirm(now, c.flow.remote.ip());
        if let Some(ip) = half_open {
            self.limits.release(ip);
        }
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if p.initial {
            call.phase = Phase::Confirmed;
            if let Some(plan) = call.session_plan {
                call.session = Some(start_session_timer(now, plan));
            }
            self.events.push_back(Event::Confirmed {
                call: handle,
                ack_body: body,
            });
            if call.bye_after_ack {
                self.send_bye(now, handle);
                return;
            }
        } else {
            self.events
                .push_back(Event::ReofferAck { call: handle, body });
        }
        self.schedule_call(handle);
    }

    /// Retransmits our unacknowledged 2xx (§13.3.1.4), or hangs up once
    /// 64·T1 passed without an ACK (the call has then ended).
    pub(super) fn pending_2xx_timer(&mut self, now: Instant, h: CallHandle) -> ControlFlow<()> {
        let Some(call) = self.calls.get_mut(&h) else {
            return ControlFlow::Continue(());
        };
        if let Some(p) = call.pending_2xx.as_mut() {
            if now >= p.give_up {
                let initial = p.initial;
                call.pending_2xx = None;
                tracing::info!(call_id = %call.dialog.call_id, "no ACK for our 2xx: hanging up");
                if initial {
                    call.phase = Phase::Confirmed;
                }
                self.send_bye(now, h);
                self.events.push_back(Event::Ended {
                    call: h,
                    reason: EndReason::AckTimeout,
                });
                return ControlFlow::Break(());
            }
            if now >= p.next {
                p.interval = (p.interval * 2).min(self.cfg.timers.t2);
                p.next = now + p.interval;
                let (flow, bytes) = (call.dialog.flow, p.bytes.clone());
                // The 2xx goes where the INVITE's responses go.
                let dest = self
                    .invite_txs
                    .values()
                    .find(|t| {
                        t.call == Some(h)
                            && t.tx.final_status().is_some_and(|s| (200..300).contains(&s))
                    })
                    .map(|t| t.dest)
                    .unwrap_or(flow);
                self.send(dest, bytes);
            }
        }
        ControlFlow::Continue(())
    }

    /// Answers a new call with 200 OK and our SDP (an answer, or an offer
    /// when the INVITE had none).
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: Bytes) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.phase != Phase::Offered {
            return Err(UaError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(UaError::WrongState)?;
        let extra = self.session_headers(call);
        self.finalize_invite(now, &key, 200, "OK", extra, Some(sdp));
        if let Some(c) = self.calls.get_mut(&call) {
            c.invite_key = None;
        }
        Ok(())
    }

    /// Sends 180 Ringing for a new call (operators who answer after a
    /// delay let callers hear ringback meanwhile).
    pub fn ring(&mut self, call: CallHandle) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.phase != Phase::Offered {
            return Err(UaError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(UaError::WrongState)?;
        let contact = c.dialog.local_contact.clone();
        let Some(itx) = self.invite_txs.get(&key) else {
            return Err(UaError::WrongState);
        };
        let mut r = self.build_response(&itx.base, 180, "Ringing");
        for rr in &itx.base.record_route {
            r.headers.push("Record-Route", rr.clone());
        }
        r.headers.push("Contact", contact);
        let bytes = r.to_bytes();
        let dest = itx.dest;
        if let Some(itx) = self.invite_txs.get_mut(&key) {
            itx.tx.provisional(bytes.clone());
        }
        self.send(dest, bytes);
        Ok(())
    }

    /// Rejects a new call with a final error response (e.g. 488, 403, 486).
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallHandle,
        status: u16,
        reason: &str,
    ) -> Result<(), UaError> {
        let c = self.calls.get(&call).ok_or(UaError::UnknownCall)?;
        if c.phase != Phase::Offered || status < 300 {
            return Err(UaError::WrongState);
        }
        let key = c.invite_key.clone().ok_or(UaError::WrongState)?;
        let extra = if status == 488 {
            vec![(
                "Warning",
                "304 pinbridge \"media type not available\"".to_string(),
            )]
        } else {
            vec![]
        };
        self.finalize_invite(now, &key, status, reason, extra, None);
        self.remove_call(call);
        Ok(())
    }
}

/// What a new INVITE tells the application.
fn incoming_call(c: &Checked<'_>) -> IncomingCall {
    IncomingCall {
        request_uri: c.req.uri.clone(),
        dialed: Uri::parse(&c.req.uri).ok().and_then(|u| u.user()),
        from: c.from.clone(),
        p_asserted_identity: c
            .req
            .headers
            .get("P-Asserted-Identity")
            .and_then(|v| NameAddr::parse_list("P-Asserted-Identity", v).ok())
            .and_then(|l| l.into_iter().next()),
        call_id: c.call_id.clone(),
        flow: c.flow,
        offer: (!c.req.body.is_empty()).then(|| c.req.body.clone()),
        user_agent: c.req.headers.get("User-Agent").map(str::to_string),
    }
}
