//! Requests that end things. CANCEL (RFC 3261 §9.2) gets 200 with the To
//! tag of the INVITE's responses, and an INVITE still unanswered then gets
//! 487 (a new call ends as cancelled; a re-INVITE only ends its offer); a
//! CANCEL that matches no INVITE gets 481. BYE (§15.1.2) gets 200, ends the
//! call, and answers 487 to its requests still waiting for the
//! application.

use std::time::Instant;

use super::call::{PendingRequest, Phase};
use super::reply::NonInviteTx;
use super::timers::TimerTarget;
use super::validate::Checked;
use super::{EndReason, RequestId, UserAgent};
use crate::sip::transaction::{ServerInviteState, ServerNonInviteTransaction, TxKey};

impl UserAgent {
    pub(super) fn handle_cancel(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        let invite_key = key.cancelled_invite();
        let Some(itx) = self.invite_txs.get_mut(&invite_key) else {
            return self.reply(&c, 481, "Call/Transaction Does Not Exist", vec![]);
        };
        // Answer the CANCEL with the To tag of the INVITE's responses (§9.2).
        let mut base = c.base.clone();
        base.to = itx.base.to.clone();
        let ok = self.build_response(&base, 200, "OK").to_bytes();
        let mut ntx =
            ServerNonInviteTransaction::new(c.flow.transport.is_reliable(), self.cfg.timers);
        ntx.respond(now, 200, ok.clone());
        self.send(c.dest, ok);
        let at = ntx.poll_timeout();
        self.non_invite_txs.insert(
            key.clone(),
            NonInviteTx {
                tx: ntx,
                dest: c.dest,
                base,
            },
        );
        self.schedule(TimerTarget::NonInvite(key), at);

        let Some(itx) = self.invite_txs.get_mut(&invite_key) else {
            return;
        };
        if itx.tx.state() != ServerInviteState::Proceeding {
            return; // already answered: CANCEL has no effect
        }
        let call = itx.call;
        self.finalize_invite(now, &invite_key, 487, "Request Terminated", vec![], None);
        if let Some(h) = call {
            let initial = self
                .calls
                .get(&h)
                .is_some_and(|c| c.phase == Phase::Offered);
            if initial {
                self.end_call(h, EndReason::Cancelled);
            }
        }
    }

    pub(super) fn handle_bye(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        let handle = match self.dialog_call(&c) {
            Ok(h) => h,
            Err((s, r)) => return self.reply(&c, s, r, vec![]),
        };
        self.respond_non_invite(now, &c, key, 200, "OK", vec![], None);
        // A re-INVITE still waiting for the application is over too.
        let pending: Vec<RequestId> = self
            .calls
            .get(&handle)
            .map(|c| c.pending.clone())
            .unwrap_or_default();
        for rid in pending {
            if let Some(PendingRequest::Invite(k, _)) = self.pending.remove(&rid) {
                self.finalize_invite(now, &k, 487, "Request Terminated", vec![], None);
            } else if let Some(PendingRequest::NonInvite(k, ..)) = self.pending.remove(&rid) {
                self.finalize_non_invite(now, &k, 487, "Request Terminated", None);
            }
        }
        self.end_call(handle, EndReason::RemoteBye);
    }
}
