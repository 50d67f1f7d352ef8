//! RFC 4028 session timers. An INVITE, re-INVITE or UPDATE we receive may
//! ask for a Session-Expires interval of at least our and its Min-SE (else
//! 422) and name the refresher; a peer that does not support timers is
//! never asked to refresh. The 2xx to our own INVITE sets the interval of
//! an outbound call (see `uac`). When we refresh, we send UPDATE if the
//! peer allows it, else a re-INVITE with our unchanged SDP, half-way
//! through the interval. When the peer should refresh and does not, or our
//! refresh gets 408 or 481 or no answer, we hang up; any other refusal
//! leaves the session to run out unless the peer refreshes it (§10).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::client_tx::{ClientPurpose, ClientTx};
use super::reply::RawReply;
use super::validate::Checked;
use super::{CallHandle, EndReason, Event, UserAgent, SUPPORTED};
use crate::sip::auth::DigestClient;
use crate::sip::header::{parse_min_se, parse_token_list, Refresher, SessionExpires};
use crate::sip::message::Response;
use crate::sip::method::Method;

#[derive(Debug, Clone, Copy)]
pub(super) struct SessionTimer {
    pub(super) interval: u32,
    pub(super) we_refresh: bool,
    /// When we must refresh (we_refresh) or give up on the peer.
    pub(super) deadline: Instant,
}

/// What the session timer negotiation decided for a request.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionPlan {
    pub(super) interval: u32,
    /// As written in the transaction that set the interval.
    pub(super) refresher: Refresher,
    pub(super) peer_supports_timer: bool,
    /// We were the UAC of that transaction (our outbound INVITE); else the
    /// peer was (its INVITE, re-INVITE or UPDATE).
    pub(super) local_is_uac: bool,
}

impl SessionPlan {
    fn we_refresh(&self) -> bool {
        (self.refresher == Refresher::Uac) == self.local_is_uac
    }
}

impl UserAgent {
    pub(super) fn session_plan(&self, c: &Checked<'_>) -> Result<Option<SessionPlan>, RawReply> {
        let h = &c.req.headers;
        let peer_supports_timer = h
            .get_all("Supported")
            .filter_map(|v| parse_token_list("Supported", v).ok())
            .flatten()
            .any(|t| t.eq_ignore_ascii_case("timer"));
        let Some(se) = h
            .get("Session-Expires")
            .and_then(|v| SessionExpires::parse(v).ok())
        else {
            return Ok(None);
        };
        let peer_min = h
            .get("Min-SE")
            .and_then(|v| parse_min_se(v).ok())
            .unwrap_or(0);
        let min = self.cfg.min_session_expires.max(peer_min);
        if se.seconds < min {
            return Err(RawReply {
                status: 422,
                reason: "Session Interval Too Small".into(),
                extra: vec![("Min-SE", min.to_string())],
            });
        }
        let refresher = match se.refresher {
            Some(r) => r,
            None if peer_supports_timer => Refresher::Uac,
            None => Refresher::Uas,
        };
        // A peer that does not support timers cannot be asked to refresh.
        let refresher = if peer_supports_timer {
            refresher
        } else {
            Refresher::Uas
        };
        Ok(Some(SessionPlan {
            interval: se.seconds,
            refresher,
            peer_supports_timer,
            local_is_uac: false,
        }))
    }

    /// Session-Expires / Require headers for a 2xx we send, per the call's
    /// plan (in a response the peer is the UAC).
    pub(super) fn session_headers(&self, h: CallHandle) -> Vec<(&'static str, String)> {
        let Some(plan) = self.calls.get(&h).and_then(|c| c.session_plan) else {
            return vec![];
        };
        let who = if plan.we_refresh() { "uas" } else { "uac" };
        let mut v = vec![(
            "Session-Expires",
            format!("{};refresher={who}", plan.interval),
        )];
        if plan.peer_supports_timer {
            v.push(("Require", "timer".into()));
        }
        v
    }

    pub(super) fn restart_session_timer(&mut self, now: Instant, h: CallHandle) {
        if let Some(c) = self.calls.get_mut(&h) {
            if let Some(plan) = c.session_plan {
                c.session = Some(start_session_timer(now, plan));
            }
        }
        self.schedule_call(h);
    }

    /// At the session's deadline (RFC 4028): refreshes it when we are the
    /// refresher, else (or when our refresh is still unanswered) hangs up
    /// (the call has then ended).
    pub(super) fn session_timer(&mut self, now: Instant, h: CallHandle) -> ControlFlow<()> {
        let Some(call) = self.calls.get_mut(&h) else {
            return ControlFlow::Break(());
        };
        if let Some(s) = call.session {
            if now >= s.deadline {
                if s.we_refresh && !call.refresh_in_flight {
                    self.send_refresh(now, h);
                } else if s.we_refresh {
                    // Our refresh is still unanswered at the session's end
                    // (a re-INVITE stuck in Proceeding): give up.
                    tracing::info!(call_id = %call.dialog.call_id, "session refresh unanswered: hanging up");
                    self.send_bye(now, h);
                    self.events.push_back(Event::Ended {
                        call: h,
                        reason: EndReason::RefreshFailed,
                    });
                    return ControlFlow::Break(());
                } else {
                    tracing::info!(call_id = %call.dialog.call_id, "session expired without refresh: hanging up");
                    self.send_bye(now, h);
                    self.events.push_back(Event::Ended {
                        call: h,
                        reason: EndReason::SessionExpired,
                    });
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Refreshes the session (RFC 4028) with UPDATE when the peer allows it,
    /// else with a re-INVITE carrying our unchanged SDP.
    fn send_refresh(&mut self, now: Instant, h: CallHandle) {
        let branch = self.new_branch();
        let session_hdrs = self.session_headers(h);
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let use_update = call.peer_allows_update;
        let method = if use_update {
            Method::Update
        } else {
            Method::Invite
        };
        let cseq = call.dialog.next_cseq();
        let mut req = call
            .dialog
            .request(method, cseq, &branch, &self.cfg.user_agent);
        req.headers.push("Supported", SUPPORTED);
        // In our request we are the UAC: refresher=uac when we refresh.
        if let (Some(plan), true) = (call.session_plan, !session_hdrs.is_empty()) {
            let who = if plan.we_refresh() { "uac" } else { "uas" };
            req.headers.push(
                "Session-Expires",
                format!("{};refresher={who}", plan.interval),
            );
        }
        if !use_update {
            if let Some(sdp) = &call.last_local_sdp {
                req.headers.push("Content-Type", "application/sdp");
                req.body = sdp.clone();
            }
        }
        call.refresh_in_flight = true;
        // Until the refresh succeeds, the session ends at its expiry.
        if let Some(s) = call.session.as_mut() {
            s.deadline = now + Duration::from_secs(u64::from(s.interval / 2));
        }
        let flow = call.dialog.flow;
        let digest = call.credentials.clone().map(DigestClient::new);
        self.start_client(now, &branch, flow, req, ClientPurpose::Refresh(h), digest);
        self.schedule_call(h);
    }

    /// A final response to a session refresh we sent.
    pub(super) fn on_refresh_final(
        &mut self,
        now: Instant,
        h: CallHandle,
        key: String,
        ctx: ClientTx,
        resp: &Response,
    ) {
        if ctx.tx.is_invite() {
            // Every final response to an INVITE is acknowledged.
            if let Some(ack) = self.build_ack(h, resp, &key) {
                self.linger_with_ack(now, key, ctx, ack, None);
            }
        }
        if let Some(c) = self.calls.get_mut(&h) {
            c.refresh_in_flight = false;
        }
        match resp.status {
            200..=299 => self.restart_session_timer(now, h),
            408 | 481 => {
                self.send_bye(now, h);
                self.events.push_back(Event::Ended {
                    call: h,
                    reason: EndReason::RefreshFailed,
                });
            }
            _ => {
                // The session runs until it expires unless the peer
                // refreshes it (RFC 4028 §10).
                if let Some(c) = self.calls.get_mut(&h) {
                    if let Some(s) = c.session.as_mut() {
                        s.we_refresh = false;
                        s.deadline = now + Duration::from_secs(u64::from(s.interval / 2));
                    }
                }
                self.schedule_call(h);
            }
        }
    }
}

pub(super) fn start_session_timer(now: Instant, plan: SessionPlan) -> SessionTimer {
    let interval = plan.interval.max(1);
    let we_refresh = plan.we_refresh();
    let after = if we_refresh {
        // Refresh half-way through the interval.
        u64::from(interval / 2).max(1)
    } else {
        // RFC 4028 §10: give the refresher until SE - min(32, SE/3).
        u64::from(interval - (interval / 3).min(32))
    };
    SessionTimer {
        interval,
        we_refresh,
        deadline: now + Duration::from_secs(after),
    }
}
