//! INFO inside a call (RFC 6086): the body types of
//! [`UaConfig::info_content_types`](super::UaConfig::info_content_types)
//! (DTMF relay by default) go to the application as [`Event::Info`] and are
//! answered with [`UserAgent::respond`]; any other type gets 415 with an
//! Accept header listing ours.

use std::time::Instant;

use super::validate::Checked;
use super::{Event, UserAgent};
use crate::sip::header::MediaType;
use crate::sip::method::Method;
use crate::sip::transaction::TxKey;

impl UserAgent {
    pub(super) fn handle_info(&mut self, now: Instant, c: Checked<'_>, key: TxKey) {
        let Some(handle) = self.in_dialog_call(&c) else {
            return;
        };
        let ct = c
            .req
            .headers
            .get("Content-Type")
            .and_then(|v| MediaType::parse("Content-Type", v).ok());
        let accepted = ct
            .as_ref()
            .is_some_and(|ct| self.cfg.info_content_types.iter().any(|(t, s)| ct.is(t, s)));
        if !accepted {
            let accept = self
                .cfg
                .info_content_types
                .iter()
                .map(|(t, s)| format!("{t}/{s}"))
                .collect::<Vec<_>>()
                .join(", ");
            return self.respond_non_invite(
                now,
                &c,
                key,
                415,
                "Unsupported Media Type",
                vec![("Accept", accept)],
                None,
            );
        }
        let rid = self.hold_for_application(&c, key, handle, Method::Info);
        let ct = c
            .req
            .headers
            .get("Content-Type")
            .unwrap_or("")
            .to_ascii_lowercase();
        self.events.push_back(Event::Info {
            call: handle,
            request: rid,
            content_type: ct,
            body: c.req.body.clone(),
        });
    }
}
