//! Responses to requests we receive. Stateless replies answer what no
//! transaction will hold: errors and 481s get a fresh random To tag each
//! (RFC 3261 §8.2.6.2), and a request whose headers did not all parse is
//! answered from its raw header values. Final responses to INVITE and
//! non-INVITE requests go through their server transaction, which
//! retransmits them (§17.2); a 2xx to an INVITE is then retransmitted by
//! the call until the ACK (§13.3.1.4). Where a response goes follows the
//! top Via (§18.2.2, RFC 3581).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::call::Phase;
use super::invite::Pending2xx;
use super::timers::TimerTarget;
use super::validate::Checked;
use super::{CallHandle, UserAgent, ALLOW, SUPPORTED};
use crate::sip::flow::{Flow, Transport};
use crate::sip::grammar::split_commas;
use crate::sip::header::{CSeq, NameAddr, Via};
use crate::sip::message::{Request, Response};
use crate::sip::transaction::{
    ServerInviteState, ServerInviteTransaction, ServerNonInviteTransaction, TimerOutcome, TxKey,
};

/// Values copied from a request into every response to it (§8.2.6.2).
#[derive(Debug, Clone)]
pub(super) struct ResponseBase {
    pub(super) vias: Vec<String>,
    pub(super) from: String,
    /// To as received (used in 100 Trying).
    pub(super) to_original: String,
    /// To with our tag.
    pub(super) to: String,
    pub(super) call_id: String,
    pub(super) cseq: String,
    pub(super) record_route: Vec<String>,
}

/// A response that could not be built from parsed headers (the request was
/// malformed), built from the raw header values instead.
pub(super) struct RawReply {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) extra: Vec<(&'static str, String)>,
}

#[derive(Debug)]
pub(super) struct InviteTx {
    pub(super) tx: ServerInviteTransaction,
    pub(super) base: ResponseBase,
    pub(super) dest: Flow,
    pub(super) call: Option<CallHandle>,
}

#[derive(Debug)]
pub(super) struct NonInviteTx {
    pub(super) tx: ServerNonInviteTransaction,
    pub(super) dest: Flow,
    pub(super) base: ResponseBase,
}

impl UserAgent {
    pub(super) fn response_base(
        &self,
        req: &Request,
        flow: &Flow,
        top_via: &Via,
        tag: Option<&str>,
        to: &NameAddr,
    ) -> ResponseBase {
        let mut out_vias = Vec::with_capacity(req.headers.count("Via"));
        out_vias.push(via_for_response(top_via, flow.remote));
        // The remaining via-parms as written, one per line.
        let mut first = true;
        for v in req.headers.get_all("Via") {
            for part in split_commas(v).unwrap_or_default() {
                if first {
                    first = false;
                    continue;
                }
                out_vias.push(part.to_string());
            }
        }
        let to_original = req.headers.get("To").unwrap_or("").to_string();
        let to_with_tag = match (to.tag(), tag) {
            (Some(_), _) | (None, None) => to_original.clone(),
            (None, Some(t)) => format!("{to_original};tag={t}"),
        };
        ResponseBase {
            vias: out_vias,
            from: req.headers.get("From").unwrap_or("").to_string(),
            to_original,
            to: to_with_tag,
            call_id: req.headers.get("Call-ID").unwrap_or("").to_string(),
            cseq: req.headers.get("CSeq").unwrap_or("").to_string(),
            record_route: req
                .headers
                .get_all("Record-Route")
                .map(str::to_string)
                .collect(),
        }
    }

    pub(super) fn build_response(
        &self,
        base: &ResponseBase,
        status: u16,
        reason: &str,
    ) -> Response {
        let mut r = Response::new(status, reason);
        for v in &base.vias {
            r.headers.push("Via", v.clone());
        }
        r.headers.push("From", base.from.clone());
        r.headers.push(
            "To",
            if status == 100 {
                base.to_original.clone()
            } else {
                base.to.clone()
            },
        );
        r.headers.push("Call-ID", base.call_id.clone());
        r.headers.push("CSeq", base.cseq.clone());
        r.headers.push("Server", self.cfg.user_agent.clone());
        r
    }

    /// Answers a request outside any transaction (errors, 481s). The To tag
    /// is random: there is no dialog.
    pub(super) fn reply(
        &mut self,
        c: &Checked<'_>,
        status: u16,
        reason: &str,
        extra: Vec<(&'static str, String)>,
    ) {
        let tag = self.random_token();
        let mut base = c.base.clone();
        if c.to.tag().is_none() {
            base.to = format!("{};tag={tag}", base.to_original);
        }
        let mut r = self.build_response(&base, status, reason);
        for (n, v) in extra {
            r.headers.push(n, v);
        }
        self.send(c.dest, r.to_bytes());
    }

    /// Answers a request whose headers did not all parse: copies them as
    /// written and sends to the source address (or the Via port if the top
    /// Via parses).
    pub(super) fn reply_raw(&mut self, flow: &Flow, req: &Request, reply: RawReply) {
        let h = &req.headers;
        let top_via = h
            .get("Via")
            .and_then(|v| Via::parse_all(v).ok())
            .and_then(|v| v.into_iter().next());
        let dest = match &top_via {
            Some(v) => response_flow(flow, v),
            None => *flow,
        };
        let mut r = Response::new(reply.status, reply.reason);
        let mut first = true;
        for v in h.get_all("Via") {
            for part in split_commas(v).unwrap_or_else(|_| vec![v]) {
                match (&top_via, first) {
                    (Some(tv), true) => r.headers.push("Via", via_for_response(tv, flow.remote)),
                    _ => r.headers.push("Via", part.to_string()),
                }
                first = false;
            }
        }
        if let Some(f) = h.get("From") {
            r.headers.push("From", f.to_string());
        }
        if let Some(t) = h.get("To") {
            let has_tag = NameAddr::parse("To", t)
                .ok()
                .is_some_and(|na| na.tag().is_some());
            let tag = self.random_token();
            r.headers.push(
                "To",
                if has_tag {
                    t.to_string()
                } else {
                    format!("{t};tag={tag}")
                },
            );
        }
        for name in ["Call-ID", "CSeq"] {
            if let Some(v) = h.get(name) {
                r.headers.push(name, v.to_string());
            }
        }
        r.headers.push("Server", self.cfg.user_agent.clone());
        for (n, v) in reply.extra {
            r.headers.push(n, v);
        }
        tracing::debug!(peer = %flow.remote, status = reply.status, reason = %r.reason, "rejecting malformed request");
        self.send(dest, r.to_bytes());
    }

    /// Sends a final response on a new or pending non-INVITE transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn respond_non_invite(
        &mut self,
        now: Instant,
        c: &Checked<'_>,
        key: TxKey,
        status: u16,
        reason: &str,
        extra: Vec<(&'static str, String)>,
        body: Option<(&str, Bytes)>,
    ) {
        let ntx = ServerNonInviteTransaction::new(c.flow.transport.is_reliable(), self.cfg.timers);
        self.non_invite_txs.insert(
            key.clone(),
            NonInviteTx {
                tx: ntx,
                dest: c.dest,
                base: c.base.clone(),
            },
        );
        self.finalize_non_invite_with(now, &key, status, reason, extra, body);
    }

    pub(super) fn finalize_non_invite(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
        reason: &str,
        body: Option<(&str, Bytes)>,
    ) {
        self.finalize_non_invite_with(now, key, status, reason, vec![], body);
    }

    pub(super) fn finalize_non_invite_with(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
        reason: &str,
        extra: Vec<(&'static str, String)>,
        body: Option<(&str, Bytes)>,
    ) {
        let Some(ntx) = self.non_invite_txs.get(key) else {
            return;
        };
        let mut r = self.build_response(&ntx.base, status, reason);
        for (n, v) in extra {
            r.headers.push(n, v);
        }
        if let Some((ct, b)) = body {
            r.headers.push("Content-Type", ct.to_string());
            r.body = b;
        }
        let bytes = r.to_bytes();
        let Some(ntx) = self.non_invite_txs.get_mut(key) else {
            return;
        };
        ntx.tx.respond(now, status, bytes.clone());
        let (dest, at) = (ntx.dest, ntx.tx.poll_timeout());
        self.send(dest, bytes);
        self.schedule(TimerTarget::NonInvite(key.clone()), at);
    }

    /// Sends a final response to an INVITE (initial or re-INVITE). A 2xx is
    /// then retransmitted by the call until ACK.
    pub(super) fn finalize_invite(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
        reason: &str,
        extra: Vec<(&'static str, String)>,
        sdp: Option<Bytes>,
    ) {
        let Some(itx) = self.invite_txs.get(key) else {
            return;
        };
        if itx.tx.state() != ServerInviteState::Proceeding {
            return;
        }
        let mut r = self.build_response(&itx.base, status, reason);
        let call = itx.call;
        let is_2xx = (200..300).contains(&status);
        if is_2xx {
            for rr in &itx.base.record_route {
                r.headers.push("Record-Route", rr.clone());
            }
            if let Some(h) = call {
                if let Some(c) = self.calls.get(&h) {
                    r.headers.push("Contact", c.dialog.local_contact.clone());
                }
            }
            r.headers.push("Allow", ALLOW);
            r.headers.push("Supported", SUPPORTED);
        }
        for (n, v) in extra {
            r.headers.push(n, v);
        }
        if let Some(b) = &sdp {
            r.headers.push("Content-Type", "application/sdp");
            r.body = b.clone();
        }
        let bytes = r.to_bytes();
        let Some(itx) = self.invite_txs.get_mut(key) else {
            return;
        };
        itx.tx.finalize(now, status, bytes.clone());
        let (dest, at) = (itx.dest, itx.tx.poll_timeout());
        let cseq = CSeq::parse(&itx.base.cseq).map(|c| c.seq).unwrap_or(0);
        self.send(dest, bytes.clone());
        self.schedule(TimerTarget::Invite(key.clone()), at);
        if let (true, Some(h)) = (is_2xx, call) {
            let t1 = self.cfg.timers.t1;
            let give_up = now + self.cfg.timers.timeout();
            if let Some(c) = self.calls.get_mut(&h) {
                c.pending_2xx = Some(Pending2xx {
                    cseq,
                    bytes,
                    interval: t1,
                    next: now + t1,
                    give_up,
                    initial: c.phase == Phase::Offered,
                });
                if c.phase == Phase::Offered {
                    c.phase = Phase::Answered;
                }
                if let Some(s) = sdp {
                    c.last_local_sdp = Some(s);
                }
            }
            self.schedule_call(h);
        }
    }

    pub(super) fn invite_timer(&mut self, now: Instant, key: TxKey) {
        let Some(itx) = self.invite_txs.get_mut(&key) else {
            return;
        };
        match itx.tx.handle_timeout(now) {
            TimerOutcome::Retransmit(b) => {
                let (dest, at) = (itx.dest, itx.tx.poll_timeout());
                self.send(dest, b);
                self.schedule(TimerTarget::Invite(key), at);
            }
            TimerOutcome::TimedOut | TimerOutcome::Terminated => {
                self.invite_txs.remove(&key);
                self.forget_timer(&TimerTarget::Invite(key));
            }
            TimerOutcome::Nothing => {
                let at = itx.tx.poll_timeout();
                self.schedule(TimerTarget::Invite(key), at);
            }
        }
    }

    pub(super) fn non_invite_timer(&mut self, now: Instant, key: TxKey) {
        let done = self
            .non_invite_txs
            .get_mut(&key)
            .is_some_and(|t| t.tx.handle_timeout(now) == TimerOutcome::Terminated);
        if done {
            self.non_invite_txs.remove(&key);
            self.forget_timer(&TimerTarget::NonInvite(key));
        }
    }
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581): back on
/// the connection for TCP; for UDP to the source address, at the source
/// port when the client asked for `rport`, else at the Via port.
pub(super) fn response_flow(flow: &Flow, top_via: &Via) -> Flow {
    match flow.transport {
        Transport::Tcp => *flow,
        Transport::Udp => {
            let port = if top_via.has_rport() {
                flow.remote.port()
            } else {
                top_via.port.unwrap_or(5060)
            };
            Flow {
                remote: SocketAddr::new(flow.remote.ip(), port),
                ..*flow
            }
        }
    }
}

/// The top Via of a response: `received` with the source address when it
/// differs from sent-by or the client asked for `rport`, and `rport` filled
/// in (RFC 3261 §18.2.1, RFC 3581 §4).
fn via_for_response(via: &Via, source: SocketAddr) -> String {
    let mut s = format!("SIP/2.0/{} {}", via.transport, via.sent_by());
    let mut has_received = false;
    for p in &via.params {
        if p.name.eq_ignore_ascii_case("rport") {
            s.push_str(&format!(";rport={}", source.port()));
        } else if p.name.eq_ignore_ascii_case("received") {
            has_received = true;
            s.push_str(&format!(";received={}", source.ip()));
        } else {
            s.push(';');
            s.push_str(&p.name);
            if let Some(v) = &p.value {
                s.push('=');
                s.push_str(v);
            }
        }
    }
    // RFC 3581 §4: with rport, `received` is added even when it equals sent-by.
    if !has_received && (via.has_rport() || via.host.ip() != Some(source.ip())) {
        s.push_str(&format!(";received={}", source.ip()));
    }
    s
}
