//! RFC 4028 session timers, inbound and outbound: interval too small, the
//! peer or us as refresher, and refreshes that fail.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::EndReason;

#[test]
fn session_interval_below_min_se_is_422() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 30\nSupported: timer\n",
    ));
    assert_eq!(h.statuses(), vec![422]);
    assert_eq!(h.responses()[0].headers.get("Min-SE"), Some("90"));
}

#[test]
fn peer_refresher_that_stops_refreshing_gets_bye() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 120\nSupported: timer\n",
    ));
    h.answer(h.incoming()[0]);
    let ok = h.responses()[1].clone();
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    // A refresh by UPDATE at 60 s pushes the deadline out.
    h.run_until(Duration::from_secs(60));
    h.input(&in_dialog(
        "UPDATE",
        2,
        &tag,
        "z9hG4bK-u",
        "Session-Expires: 120;refresher=uac\nSupported: timer\n",
    ));
    assert_eq!(*h.statuses().last().unwrap(), 200);
    h.run_until(Duration::from_secs(60 + 87));
    assert!(
        h.requests().is_empty(),
        "still within the refreshed interval"
    );
    h.run_until(Duration::from_secs(60 + 89));
    assert_eq!(h.requests().last().unwrap().method, Method::Bye);
    assert_eq!(h.ended(), vec![EndReason::SessionExpired]);
}

#[test]
fn we_refresh_with_update_when_the_peer_cannot() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 100\nAllow: INVITE, ACK, BYE, UPDATE\n",
    ));
    h.answer(h.incoming()[0]);
    assert_eq!(
        h.responses()[1].headers.get("Session-Expires"),
        Some("100;refresher=uas")
    );
    assert_eq!(h.responses()[1].headers.get("Require"), None);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.run_until(Duration::from_secs(51));
    let upd = h.requests().last().copied().cloned().expect("refresh sent");
    assert_eq!(upd.method, Method::Update);
    // In the UPDATE we are the UAC, and we stay the refresher (RFC 4028 §7.4).
    assert_eq!(
        upd.headers.get("Session-Expires"),
        Some("100;refresher=uac")
    );
    // Answer it: the call continues.
    let via = upd.headers.get("Via").unwrap();
    let resp = format!(
        "SIP/2.0 200 OK\nVia: {via}\nFrom: {}\nTo: {}\nCall-ID: {}\nCSeq: {}\nContent-Length: 0\n\n",
        upd.headers.get("From").unwrap(),
        upd.headers.get("To").unwrap(),
        upd.headers.get("Call-ID").unwrap(),
        upd.headers.get("CSeq").unwrap()
    );
    h.input(&resp);
    h.run_until(Duration::from_secs(99));
    assert!(h.ended().is_empty());
    assert_eq!(
        h.requests()
            .iter()
            .filter(|r| r.method == Method::Update)
            .count(),
        2,
        "refreshed again at 50 s after the last"
    );
}

#[test]
fn outbound_session_timer_with_us_as_refresher() {
    let mut h = Harness::new(Transport::Udp);
    h.answered_call(
        "Session-Expires: 120;refresher=uac\nRequire: timer\nAllow: INVITE, ACK, BYE, UPDATE\n",
    );
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Update).is_empty());
    h.run_until(Duration::from_secs(60));
    let upd = h.last_of(Method::Update);
    assert_eq!(
        upd.headers.get("Session-Expires"),
        Some("120;refresher=uac")
    );
    h.reply(
        &upd,
        200,
        "OK",
        None,
        "Session-Expires: 120;refresher=uac\n",
        None,
    );
    h.run_until(Duration::from_secs(119));
    assert_eq!(h.sent_requests(Method::Update).len(), 1);
    h.run_until(Duration::from_secs(120));
    assert_eq!(h.sent_requests(Method::Update).len(), 2);
    assert!(h.ended().is_empty());
}

#[test]
fn outbound_session_timer_with_the_callee_as_refresher() {
    let mut h = Harness::new(Transport::Udp);
    h.answered_call("Session-Expires: 90;refresher=uas\nRequire: timer\n");
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Bye).is_empty());
    h.run_until(Duration::from_secs(61));
    assert_eq!(h.ended(), vec![EndReason::SessionExpired]);
    assert!(!h.sent_requests(Method::Bye).is_empty());
}

/// A re-INVITE refresh the peer answers only with 1xx is given up after
/// Timer C, and the call is ended as a failed refresh.
#[test]
fn refresh_answered_only_with_ringing_fails_after_timer_c() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-ref",
        "Supported: timer\nSession-Expires: 90;refresher=uas\n",
    ));
    let call = h.incoming()[0];
    h.answer(call);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-refack", ""));
    // We refresh at half the interval.
    h.run_until(Duration::from_secs(46));
    let refresh = h
        .requests()
        .into_iter()
        .find(|r| r.method == Method::Invite || r.method == Method::Update)
        .cloned()
        .expect("a session refresh");
    h.reply(&refresh, 100, "Trying", None, "", None);
    assert!(h.ended().is_empty());
    h.run_until(Duration::from_secs(46 + 300));
    assert!(
        h.ended().contains(&EndReason::RefreshFailed),
        "{:?}",
        h.ended()
    );
    assert!(h.ua.is_idle());
}
