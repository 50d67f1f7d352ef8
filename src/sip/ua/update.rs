//! UPDATE inside a call (RFC 3311). Without a body it is a session refresh
//! (RFC 4028) answered at once with 200 and our session headers; with SDP
//! it is a new offer the application answers with
//! [`UserAgent::respond`]. Either way it may move the peer's Contact
//! (target refresh) and change the session interval.

use std::time::Instant;

use super::call::refresh_target;
use super::validate::Checked;
use super::{Event, UserAgent};
use crate::sip::method::Method;
use crate::sip::transaction::TxKey;

impl UserAgent {
    pub(super) fn handle_update(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        let Some(handle) = self.in_dialog_call(&c) else {
            return;
        };
        let plan = match self.session_plan(&c) {
            Ok(p) => p,
            Err(r) => {
                return self.respond_non_invite(now, &c, key, r.status, &r.reason, r.extra, None)
            }
        };
        if let Some(call) = self.calls.get_mut(&handle) {
            refresh_target(call, c.req);
            if plan.is_some() {
                call.session_plan = plan;
            }
        }
        if c.req.body.is_empty() {
            // A pure session refresh: answer at once.
            let extra = self.session_headers(handle);
            self.respond_non_invite(now, &c, key, 200, "OK", extra, None);
            self.restart_session_timer(now, handle);
            return;
        }
        let rid = self.hold_for_application(&c, key, handle, Method::Update);
        self.events.push_back(Event::Reoffer {
            call: handle,
            request: rid,
            method: Method::Update,
            offer: Some(c.req.body.clone()),
        });
    }
}
