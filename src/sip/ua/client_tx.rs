//! Our client transactions (RFC 3261 §17.1): every request the core sends
//! — BYE, session refreshes, and the outbound INVITE, CANCEL, MESSAGE and
//! REGISTER of `uac` — is sent, retransmitted and timed out here, and each
//! response is matched to its transaction by branch and CSeq method and
//! handed to whoever sent the request (its [`ClientPurpose`]). A finished
//! INVITE transaction lingers to ACK retransmitted final responses.

use std::time::Instant;

use bytes::Bytes;
use rand::RngExt;

use super::timers::TimerTarget;
use super::{uac, CallHandle, EndReason, Event, RequestId, UserAgent};
use crate::sip::auth::{AuthError, DigestClient};
use crate::sip::flow::Flow;
use crate::sip::header::{CSeq, Via};
use crate::sip::message::{Request, Response};
use crate::sip::method::Method;
use crate::sip::transaction::{ClientTransaction, TimerOutcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientPurpose {
    Bye,
    Refresh(CallHandle),
    /// The INVITE of an outbound call (and its authenticated retries).
    Invite(CallHandle),
    Cancel(CallHandle),
    Message(RequestId),
    Register(RequestId),
}

#[derive(Debug)]
pub(super) struct ClientTx {
    pub(super) tx: ClientTransaction,
    pub(super) flow: Flow,
    pub(super) purpose: ClientPurpose,
    /// For an INVITE with a final response: the ACK, resent if the final
    /// response is.
    pub(super) ack: Option<Bytes>,
    /// For an ACKed 2xx: the To tag it came with. A 2xx with another tag is
    /// a forked answer, ACKed and hung up.
    pub(super) acked_tag: Option<String>,
    pub(super) linger_until: Option<Instant>,
    /// The request as sent: for CANCEL, the non-2xx ACK and retries with
    /// credentials.
    pub(super) request: Box<Request>,
    /// Present when the request may be retried with credentials.
    pub(super) digest: Option<DigestClient>,
}

impl UserAgent {
    /// Starts a client transaction for `req` (whose top Via carries
    /// `branch`), sends it and returns its key.
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        branch: &str,
        flow: Flow,
        req: Request,
        purpose: ClientPurpose,
        digest: Option<DigestClient>,
    ) -> String {
        let bytes = req.to_bytes();
        let tx = ClientTransaction::new(
            now,
            req.method == Method::Invite,
            flow.transport.is_reliable(),
            self.cfg.timers,
            bytes.clone(),
        );
        let at = tx.poll_timeout();
        let key = client_key(branch, &req.method);
        self.client_txs.insert(
            key.clone(),
            ClientTx {
                tx,
                flow,
                purpose,
                ack: None,
                acked_tag: None,
                linger_until: None,
                request: Box::new(req),
                digest,
            },
        );
        // A BYE may go to a source that never proved its address (no ACK
        // came): it is a reply to that source's INVITE and is budgeted.
        if purpose == ClientPurpose::Bye {
            self.send(flow, bytes);
        } else {
            self.send_own(flow, bytes);
        }
        self.schedule(TimerTarget::Client(key.clone()), at);
        key
    }

    /// Keeps a finished INVITE transaction for 64·T1 to ACK
    /// retransmissions of its final response (Timer D, and the 2xx
    /// retransmissions of §13.2.2.4); sends the ACK now.
    pub(super) fn linger_with_ack(
        &mut self,
        now: Instant,
        key: String,
        mut ctx: ClientTx,
        ack: Bytes,
        tag: Option<String>,
    ) {
        self.send_own(ctx.flow, ack.clone());
        let until = now + self.cfg.timers.timeout();
        ctx.ack = Some(ack);
        ctx.acked_tag = tag;
        ctx.linger_until = Some(until);
        self.client_txs.insert(key.clone(), ctx);
        self.schedule(TimerTarget::Client(key), Some(until));
    }

    pub(super) fn handle_response(&mut self, now: Instant, flow: &Flow, resp: Response) {
        let Some(key) = response_key(&resp) else {
            return;
        };
        if !self.client_txs.contains_key(&key) {
            tracing::debug!(
                status = resp.status,
                "dropping response that matches no transaction"
            );
            return;
        }
        // It carries our random branch: the peer got our request.
        self.limits.confirm(now, flow.remote.ip());
        let Some(ctx) = self.client_txs.get_mut(&key) else {
            return;
        };
        if ctx.linger_until.is_some() {
            if resp.status >= 200 {
                self.on_repeated_final(now, &key, &resp);
            }
            return;
        }
        if !ctx.tx.on_response(now, resp.status) {
            if let ClientPurpose::Invite(h) = ctx.purpose {
                self.on_invite_provisional(now, h, &resp);
            }
            return;
        }
        let Some(ctx) = self.client_txs.remove(&key) else {
            return;
        };
        self.forget_timer(&TimerTarget::Client(key.clone()));
        let (ctx, auth_error) = match self.retry_with_auth(now, &key, ctx, &resp) {
            uac::AuthRetry::Sent => return,
            uac::AuthRetry::NotSent(ctx, e) => (*ctx, e),
        };
        match ctx.purpose {
            ClientPurpose::Bye => {
                if resp.status >= 300 {
                    tracing::debug!(status = resp.status, "BYE was refused");
                }
            }
            ClientPurpose::Cancel(_) => {}
            ClientPurpose::Refresh(h) => self.on_refresh_final(now, h, key, ctx, &resp),
            ClientPurpose::Invite(h) => self.on_invite_final(now, h, key, ctx, &resp, auth_error),
            ClientPurpose::Message(id) => {
                let reason = reason_with(&resp, auth_error.as_ref());
                self.events.push_back(Event::MessageOutcome {
                    id,
                    status: resp.status,
                    reason,
                });
            }
            ClientPurpose::Register(id) => self.on_register_final(now, id, ctx, &resp, auth_error),
        }
    }

    pub(super) fn build_ack(
        &mut self,
        h: CallHandle,
        resp: &Response,
        invite_branch: &str,
    ) -> Option<Bytes> {
        let call = self.calls.get(&h)?;
        let cseq = CSeq::parse(resp.headers.get("CSeq")?).ok()?.seq;
        // A 2xx ACK is a new transaction; a non-2xx ACK reuses the branch.
        let branch = if (200..300).contains(&resp.status) {
            format!("z9hG4bK{:016x}", self.rng.random::<u64>())
        } else {
            invite_branch.to_string()
        };
        let req = call
            .dialog
            .request(Method::Ack, cseq, &branch, &self.cfg.user_agent);
        Some(req.to_bytes())
    }

    pub(super) fn client_timer(&mut self, now: Instant, branch: String) {
        let Some(ctx) = self.client_txs.get_mut(&branch) else {
            return;
        };
        if let Some(until) = ctx.linger_until {
            if now >= until {
                self.client_txs.remove(&branch);
                self.forget_timer(&TimerTarget::Client(branch));
            }
            return;
        }
        match ctx.tx.handle_timeout(now) {
            TimerOutcome::Retransmit(b) => {
                let (flow, at, purpose) = (ctx.flow, ctx.tx.poll_timeout(), ctx.purpose);
                if purpose == ClientPurpose::Bye {
                    self.send(flow, b);
                } else {
                    self.send_own(flow, b);
                }
                self.schedule(TimerTarget::Client(branch), at);
            }
            TimerOutcome::TimedOut | TimerOutcome::Terminated => {
                let purpose = ctx.purpose;
                self.client_txs.remove(&branch);
                self.forget_timer(&TimerTarget::Client(branch));
                match purpose {
                    // No final answer to our refresh: the peer is gone (the
                    // call may already have ended another way).
                    ClientPurpose::Refresh(h) if self.calls.contains_key(&h) => {
                        self.send_bye(now, h);
                        self.events.push_back(Event::Ended {
                            call: h,
                            reason: EndReason::RefreshFailed,
                        });
                    }
                    ClientPurpose::Refresh(_) => {}
                    ClientPurpose::Invite(h) => self.invite_timed_out(h),
                    ClientPurpose::Message(id) => self.events.push_back(Event::MessageOutcome {
                        id,
                        status: 408,
                        reason: "Request Timeout".into(),
                    }),
                    ClientPurpose::Register(id) => {
                        self.registration_timed_out(now, id);
                    }
                    ClientPurpose::Bye | ClientPurpose::Cancel(_) => {}
                }
            }
            TimerOutcome::Nothing => {
                let at = ctx.tx.poll_timeout();
                self.schedule(TimerTarget::Client(branch), at);
            }
        }
    }
}

/// The key of a client transaction: its branch, and for CANCEL (which
/// shares the INVITE's branch) the branch with a suffix.
fn client_key(branch: &str, method: &Method) -> String {
    match method {
        Method::Cancel => format!("{branch} CANCEL"),
        _ => branch.to_string(),
    }
}

/// The client transaction a response belongs to (RFC 3261 §17.1.3: the top
/// Via branch and the CSeq method).
fn response_key(resp: &Response) -> Option<String> {
    let branch = resp
        .headers
        .get("Via")
        .and_then(|v| Via::parse_all(v).ok())
        .and_then(|v| v.into_iter().next())
        .and_then(|v| v.branch().map(str::to_string))?;
    let method = CSeq::parse(resp.headers.get("CSeq")?).ok()?.method;
    Some(client_key(&branch, &method))
}

/// The reason phrase, with why a challenge could not be answered.
pub(super) fn reason_with(resp: &Response, auth: Option<&AuthError>) -> String {
    match auth {
        Some(e) => format!("{} ({e})", resp.reason),
        None => resp.reason.clone(),
    }
}
