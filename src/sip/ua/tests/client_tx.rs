//! Our client transactions: Timer B and Timer C, no retransmission over TCP,
//! discarding broken responses, and random responses in every state.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::message::Message;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::OutboundEvent;
use crate::testing::TestRng;

#[test]
fn unanswered_invite_times_out_with_timer_b() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Invite))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(times, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
    assert_eq!(h.ua.call_count(), 0);
    assert!(h.ua.is_idle());
}

#[test]
fn tcp_invite_is_not_retransmitted() {
    let mut h = Harness::new(Transport::Tcp);
    h.place(None);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
    assert_eq!(h.failed().map(|f| f.0), Some(408));
}

#[test]
fn a_response_with_a_broken_content_length_is_discarded() {
    // RFC 3261 §18.3: a response whose Content-Length is larger than what
    // arrived (or malformed) is discarded, not acted on with a cut body.
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    let m = h.last_of(Method::Message);
    for length in ["Content-Length: 999", "Content-Length: x1", "l: 1\nl: 2"] {
        let broken = reply_to(&m, 403, "Forbidden", Some("x"), "", None)
            .replace("Content-Length: 0", length);
        h.input(&broken);
        assert!(message_outcomes(&h).is_empty(), "{length}: acted on");
    }
    h.reply(&m, 403, "Forbidden", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 403)]);
}

/// Feeds random (often nonsensical) responses to every client state: no
/// panic, and every call and message still ends exactly once.
#[test]
fn random_responses_never_panic_the_client() {
    let mut rng = TestRng::new(0x2545_f491_4f6c_dd1d);
    let mut rnd = move |n: usize| rng.index(n);
    let statuses = [
        100, 180, 183, 200, 202, 401, 407, 423, 481, 486, 487, 500, 503, 603,
    ];
    let extras = [
        "",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\n",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", stale=true\n",
        "Proxy-Authenticate: Digest realm=\"p\", nonce=\"x\", algorithm=SHA-256, qop=auth\n",
        "Proxy-Authenticate: Digest\n",
        "WWW-Authenticate: Digest realm=\"r\n",
        "Contact: <sip:c@198.51.100.7>\nRecord-Route: <sip:p;lr>\n",
        "Contact: garbage<<\nRecord-Route: ,,,\n",
        "Session-Expires: 1;refresher=uac\n",
        "Session-Expires: 4294967296;refresher=bogus\n",
        "Min-Expires: 99999999999\n",
        "Expires: 0\nContact: <sip:alice@192.0.2.1:5060>;expires=0\n",
        "Retry-After: 0\n",
    ];
    let (mut answered_rounds, mut registered_rounds) = (0, 0);
    for round in 0..200 {
        let mut h = Harness::new(if round % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        });
        let call = h.place(creds());
        let msg = send_message(&mut h, creds());
        h.ua.register(h.now, registration(&h, 120)).unwrap();
        h.drain();
        for _ in 0..30 {
            let reqs = h.requests().into_iter().cloned().collect::<Vec<_>>();
            let Some(req) = reqs.get(rnd(reqs.len().max(1))).cloned() else {
                break;
            };
            if req.method == Method::Ack {
                continue;
            }
            let status = statuses[rnd(statuses.len())];
            let tag = ["a", "b", ""][rnd(3)];
            let extra = extras[rnd(extras.len())];
            let body = (rnd(2) == 0).then_some(ANSWER_SDP);
            let mut text = reply_to(
                &req,
                status,
                "X",
                Some(tag).filter(|t| !t.is_empty()),
                extra,
                body,
            );
            match rnd(6) {
                0 => text = text.replace("CSeq: ", "CSeq: 9"),
                1 => text = text.replace("branch=", "branch=zz"),
                2 => text.truncate(rnd(text.len().max(1))),
                _ => {}
            }
            h.input(&text);
            match rnd(8) {
                0 => {
                    h.ua.hangup(h.now, call);
                    h.drain();
                }
                1 => {
                    let t = h.now - h.t0 + Duration::from_millis(rnd(40_000) as u64);
                    h.run_until(t);
                }
                _ => {}
            }
        }
        h.ua.hangup(h.now, call);
        h.ua.shutdown(h.now);
        h.drain();
        let t = h.now - h.t0 + Duration::from_secs(3600);
        h.run_until(t);
        let outcomes = h
            .outbound()
            .iter()
            .filter(|e| !matches!(e, OutboundEvent::Ringing { .. }))
            .count();
        assert!(outcomes <= 1, "round {round}: {:?}", h.outbound());
        let answered = h
            .outbound()
            .iter()
            .any(|e| matches!(e, OutboundEvent::Answered { .. }));
        assert!(
            answered || outcomes == 1,
            "round {round}: the call ended once: {:?}",
            h.events
        );
        answered_rounds += usize::from(answered);
        registered_rounds += usize::from(!registered(&h).is_empty());
        let msgs: Vec<_> = message_outcomes(&h)
            .into_iter()
            .filter(|(i, _)| *i == msg)
            .collect();
        assert_eq!(msgs.len(), 1, "round {round}: one outcome per MESSAGE");
        assert_eq!(h.ua.call_count(), 0, "round {round}");
        assert!(h.ua.is_idle(), "round {round}");
    }
    // The random walk reaches the interesting states, not only failures.
    assert!(answered_rounds > 10, "{answered_rounds} answered");
    assert!(registered_rounds > 10, "{registered_rounds} registered");
}

/// Found by the `ua_sequence` fuzz target: a callee that sends BYE in the
/// early dialog (which RFC 3261 §15 forbids it) and never a final answer
/// ended the call but left its INVITE transaction waiting in Proceeding
/// for ever. Timer C now ends it.
#[test]
fn invite_orphaned_by_an_early_bye_ends_with_timer_c() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    // Before a 2xx the dialog has no remote tag yet, so a BYE whose From
    // has none matches it.
    let bye = from_callee("BYE", 1, &inv, "z9hG4bK-earlybye", "").replace(";tag=callee", "");
    h.input(&bye);
    assert_eq!(
        h.ua.call_count(),
        0,
        "the early BYE ended the call: {:?}",
        h.statuses()
    );
    assert!(!h.ua.is_idle(), "the INVITE still waits for its answer");
    h.run_until(Duration::from_secs(60 * 10));
    assert!(h.ua.is_idle(), "Timer C ended the orphaned INVITE");
}
