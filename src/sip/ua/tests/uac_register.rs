//! REGISTER: challenged, accepted, refreshed, backed off, and removed on
//! shutdown.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::Event;

#[test]
fn register_is_challenged_accepted_refreshed_and_removed_on_shutdown() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.ua.register(h.now, registration(&h, 3600)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    assert_eq!(r1.uri, "sip:trunk.example.com");
    assert_eq!(r1.headers.get("To"), Some("<sip:alice@trunk.example.com>"));
    assert_eq!(
        r1.headers.get("Contact"),
        Some("<sip:alice@192.0.2.1:5060>")
    );
    assert_eq!(r1.headers.get("Expires"), Some("3600"));
    assert_eq!(cseq(&r1), "1 REGISTER");
    h.reply(
        &r1,
        401,
        "Unauthorized",
        Some("reg"),
        "WWW-Authenticate: Digest realm=\"trunk.example.com\", nonce=\"r1\", qop=\"auth\"\n",
        None,
    );
    let r2 = h.last_of(Method::Register);
    assert_eq!(cseq(&r2), "2 REGISTER");
    assert_eq!(r2.headers.get("Call-ID"), r1.headers.get("Call-ID"));
    check_digest(
        r2.headers.get("Authorization").unwrap(),
        "REGISTER",
        "sip:trunk.example.com",
        "MD5",
        "00000001",
    );
    // The registrar grants 600 s on our Contact (other bindings listed too).
    h.reply(
        &r2,
        200,
        "OK",
        Some("reg"),
        "Contact: <sip:alice@203.0.113.9:5060>;expires=3000, <sip:alice@192.0.2.1:5060>;expires=600\n",
        None,
    );
    assert_eq!(registered(&h), vec![600]);
    h.run_until(Duration::from_secs(299));
    assert_eq!(h.sent_requests(Method::Register).len(), 2);
    h.run_until(Duration::from_secs(300));
    let r3 = h.last_of(Method::Register);
    assert_eq!(cseq(&r3), "3 REGISTER");
    assert_eq!(r3.headers.get("Call-ID"), r1.headers.get("Call-ID"));
    assert_eq!(from_tag(&r3), from_tag(&r1));
    // The known challenge is answered up front, with the next nonce count.
    check_digest(
        r3.headers.get("Authorization").unwrap(),
        "REGISTER",
        "sip:trunk.example.com",
        "MD5",
        "00000002",
    );
    h.reply(&r3, 200, "OK", Some("reg"), "Expires: 600\n", None);
    assert_eq!(registered(&h), vec![600, 600]);

    h.ua.shutdown(h.now);
    h.drain();
    let r4 = h.last_of(Method::Register);
    assert_eq!(r4.headers.get("Expires"), Some("0"));
    assert_eq!(cseq(&r4), "4 REGISTER");
    assert!(!h.ua.is_idle(), "waiting for the un-REGISTER");
    h.reply(&r4, 200, "OK", Some("reg"), "", None);
    assert!(matches!(h.events.last(), Some(Event::Unregistered { id: i }) if *i == id));
    assert!(h.ua.is_idle());
    h.run_until(Duration::from_secs(2000));
    assert_eq!(
        h.sent_requests(Method::Register).len(),
        4,
        "no refresh after"
    );
}

#[test]
fn register_failures_back_off_and_423_raises_expires() {
    let mut h = Harness::new(Transport::Udp);
    h.ua.register(h.now, registration(&h, 60)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    h.reply(
        &r1,
        423,
        "Interval Too Brief",
        Some("r"),
        "Min-Expires: 300\n",
        None,
    );
    let r2 = h.last_of(Method::Register);
    assert_eq!(r2.headers.get("Expires"), Some("300"));
    h.reply(&r2, 503, "Service Unavailable", Some("r"), "", None);
    assert!(matches!(
        h.events.last(),
        Some(Event::RegistrationFailed { status: 503, .. })
    ));
    h.run_until(Duration::from_secs(29));
    assert_eq!(h.sent_requests(Method::Register).len(), 2);
    h.run_until(Duration::from_secs(31));
    let r3 = h.last_of(Method::Register);
    assert_eq!(r3.headers.get("Expires"), Some("300"));
    // No answer at all: 408, and the next try after 60 s.
    h.run_until(Duration::from_secs(31 + 33));
    assert!(matches!(
        h.events.last(),
        Some(Event::RegistrationFailed { status: 408, .. })
    ));
    // r3 went at 30 s, timed out at 62 s: the next try is at 122 s.
    let n = h.sent_requests(Method::Register).len();
    h.run_until(Duration::from_secs(121));
    assert_eq!(h.sent_requests(Method::Register).len(), n);
    h.run_until(Duration::from_secs(122));
    assert_eq!(h.sent_requests(Method::Register).len(), n + 1);
}

#[test]
fn unregister_before_any_binding_needs_no_request() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.ua.register(h.now, registration(&h, 600)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    h.reply(&r1, 403, "Forbidden", Some("r"), "", None);
    h.ua.unregister(h.now, id).unwrap();
    h.drain();
    assert_eq!(h.sent_requests(Method::Register).len(), 1);
    assert!(matches!(h.events.last(), Some(Event::Unregistered { .. })));
}
