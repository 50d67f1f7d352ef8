//! RFC 3428 MESSAGE: challenged and delivered, retransmitted and timed out,
//! refused.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::message::Message;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;

#[test]
fn message_is_challenged_then_delivered() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, creds());
    let m1 = h.last_of(Method::Message);
    assert_eq!(m1.uri, TARGET);
    assert_eq!(cseq(&m1), "1 MESSAGE");
    assert_eq!(
        m1.headers.get("Content-Type"),
        Some("text/plain;charset=UTF-8")
    );
    assert_eq!(&m1.body[..], b"Your code is 123456");
    assert!(m1.headers.get("Contact").is_none());
    h.reply(
        &m1,
        401,
        "Unauthorized",
        Some("x"),
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"m1\", qop=\"auth\", algorithm=SHA-256, opaque=\"op\"\n",
        None,
    );
    assert!(message_outcomes(&h).is_empty());
    let m2 = h.last_of(Method::Message);
    assert_eq!(cseq(&m2), "2 MESSAGE");
    assert_eq!(m2.headers.get("Call-ID"), m1.headers.get("Call-ID"));
    assert_eq!(from_tag(&m2), from_tag(&m1));
    assert_eq!(&m2.body[..], b"Your code is 123456");
    let a = m2.headers.get("Authorization").unwrap();
    check_digest(a, "MESSAGE", TARGET, "SHA-256", "00000001");
    assert_eq!(auth_param(a, "opaque"), "op");
    h.reply(&m2, 202, "Accepted", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 202)]);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Message).len(), 2);
    assert!(h.ua.is_idle());
}

#[test]
fn message_retransmits_then_times_out_as_408() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Message))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(&times[..5], &[0, 500, 1500, 3500, 7500]);
    assert_eq!(message_outcomes(&h), vec![(id, 408)]);
}

#[test]
fn message_refused_is_reported() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    let m = h.last_of(Method::Message);
    h.reply(&m, 100, "Trying", None, "", None);
    h.reply(&m, 403, "Forbidden", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 403)]);
}
