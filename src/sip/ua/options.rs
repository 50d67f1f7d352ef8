//! OPTIONS (RFC 3261 §11), in or outside a dialog: 200 with what we
//! support (Allow, Accept, Supported) and our Contact. Inside a dialog the
//! dialog must exist (else 481).

use std::time::Instant;

use super::validate::Checked;
use super::{UserAgent, ALLOW, SUPPORTED};
use crate::sip::transaction::TxKey;

impl UserAgent {
    pub(super) fn handle_options(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        if c.to.tag().is_some() {
            if let Err((s, r)) = self.dialog_call(&c) {
                return self.reply(&c, s, r, vec![]);
            }
        }
        let extra = vec![
            ("Allow", ALLOW.to_string()),
            ("Accept", "application/sdp".to_string()),
            ("Supported", SUPPORTED.to_string()),
            ("Contact", self.contact_for(&c.flow)),
        ];
        let tag = self.random_token();
        let mut c2 = c;
        if c2.to.tag().is_none() {
            c2.base.to = format!("{};tag={tag}", c2.base.to_original);
        }
        self.respond_non_invite(now, &c2, key, 200, "OK", extra, None);
    }
}
