//! Digest authentication of our requests (RFC 7616): one retry per
//! challenge, SHA-256 preferred, and no downgrade to MD5.

use bytes::Bytes;

use crate::sip::flow::Transport;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::{Event, OutboundMessage};

fn message_reasons(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::MessageOutcome { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn second_challenge_for_the_same_realm_fails_unless_stale() {
    let challenge = |nonce: &str, stale: bool| {
        format!(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"{}\n",
            if stale { ", stale=TRUE" } else { "" }
        )
    };
    // Stale: retried with the new nonce.
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        &challenge("1", false),
        None,
    );
    let inv2 = h.last_of(Method::Invite);
    h.reply(
        &inv2,
        401,
        "Unauthorized",
        Some("b"),
        &challenge("2", true),
        None,
    );
    let inv3 = h.last_of(Method::Invite);
    assert_eq!(cseq(&inv3), "3 INVITE");
    assert_eq!(
        auth_param(inv3.headers.get("Authorization").unwrap(), "nonce"),
        "2"
    );
    assert!(h.failed().is_none());
    // Not stale: the password is wrong.
    h.reply(
        &inv3,
        401,
        "Unauthorized",
        Some("c"),
        &challenge("3", false),
        None,
    );
    assert_eq!(h.sent_requests(Method::Invite).len(), 3);
    assert_eq!(h.sent_requests(Method::Ack).len(), 3, "each 401 ACKed");
    let (status, reason) = h.failed().unwrap();
    assert_eq!(status, 401);
    assert!(reason.contains("refused"), "{reason}");
}

#[test]
fn challenge_without_credentials_or_with_auth_int_only_fails() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        407,
        "Proxy Authentication Required",
        Some("a"),
        "Proxy-Authenticate: Digest realm=\"r\", nonce=\"1\"\n",
        None,
    );
    assert_eq!(h.failed().map(|f| f.0), Some(407));

    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"1\", qop=\"auth-int\"\n",
        None,
    );
    let (status, reason) = h.failed().unwrap();
    assert_eq!(status, 401);
    assert!(reason.contains("auth-int"), "{reason}");
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
}

#[test]
fn sha256_challenge_is_preferred_over_md5() {
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"md5nonce\", qop=\"auth\", algorithm=MD5\nWWW-Authenticate: Digest realm=\"r\", nonce=\"shanonce\", qop=\"auth\", algorithm=SHA-256\n",
        None,
    );
    let a = h.last_of(Method::Invite);
    let a = a.headers.get("Authorization").unwrap();
    assert_eq!(auth_param(a, "nonce"), "shanonce");
    check_digest(a, "INVITE", TARGET, "SHA-256", "00000001");
}

#[test]
fn md5_after_the_trunk_offered_sha256_is_refused_as_a_downgrade() {
    let sha =
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"s1\", qop=\"auth\", algorithm=SHA-256\n";
    let md5 =
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"m1\", qop=\"auth\", algorithm=MD5\n";
    let mut h = Harness::new(Transport::Udp);
    // The trunk offers SHA-256: answered with it.
    send_message(&mut h, creds());
    let m1 = h.last_of(Method::Message);
    h.reply(&m1, 401, "Unauthorized", Some("x"), sha, None);
    let m2 = h.last_of(Method::Message);
    check_digest(
        m2.headers.get("Authorization").unwrap(),
        "MESSAGE",
        TARGET,
        "SHA-256",
        "00000001",
    );
    h.reply(&m2, 202, "Accepted", Some("x"), "", None);
    // Later, from the same address, an MD5-only challenge: someone between
    // us and the trunk wants a hash that is cheap to crack. Not answered.
    send_message(&mut h, creds());
    let m3 = h.last_of(Method::Message);
    h.reply(&m3, 401, "Unauthorized", Some("y"), md5, None);
    assert_eq!(h.sent_requests(Method::Message).len(), 3, "no MD5 retry");
    assert_eq!(message_outcomes(&h).last().map(|o| o.1), Some(401));
    let reason = message_reasons(&h).pop().unwrap();
    assert!(reason.contains("downgrade"), "{reason}");
    // SHA-256 from it is still answered.
    send_message(&mut h, creds());
    let m4 = h.last_of(Method::Message);
    h.reply(&m4, 401, "Unauthorized", Some("z"), sha, None);
    assert_eq!(h.sent_requests(Method::Message).len(), 5);
    // Another address has offered nothing stronger: MD5 is answered there
    // (the memory is per peer address, for the life of the process).
    let mut other = h.flow;
    other.remote = "192.0.2.11:5060".parse().unwrap();
    h.ua.message(
        h.now,
        OutboundMessage {
            request_uri: TARGET.into(),
            from: "sip:pinbridge@trunk.example.com".into(),
            to: TARGET.into(),
            flow: other,
            content_type: "text/plain;charset=UTF-8".into(),
            body: Bytes::from_static(b"Your code is 123456"),
            credentials: creds(),
        },
    )
    .unwrap();
    h.drain();
    let m6 = h.last_of(Method::Message);
    h.flow = other;
    h.reply(&m6, 401, "Unauthorized", Some("w"), md5, None);
    let m7 = h.last_of(Method::Message);
    check_digest(
        m7.headers.get("Authorization").unwrap(),
        "MESSAGE",
        TARGET,
        "MD5",
        "00000001",
    );
}
