//! Outbound calls: digest retries, ringing, answer and ACK through a route
//! set, CANCEL races, forks, BYE both ways, and bad input refused.

use std::time::Duration;

use bytes::Bytes;

use crate::sip::flow::Transport;
use crate::sip::message::Request;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::{EndReason, Event, OutboundCall, OutboundEvent};

fn branch(r: &Request) -> String {
    let via = r.headers.get("Via").unwrap();
    via.split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn outbound_call_with_proxy_auth_ringing_answer_and_ack_via_route_set() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(creds());
    let inv1 = h.last_of(Method::Invite);
    assert_eq!(inv1.uri, TARGET);
    assert_eq!(cseq(&inv1), "1 INVITE");
    assert_eq!(h.sent[0].1.remote, h.flow.remote, "sent to the trunk");
    assert_eq!(inv1.headers.get("To"), Some(format!("<{TARGET}>").as_str()));
    assert_eq!(
        inv1.headers.get("Contact"),
        Some("<sip:pinbridge@192.0.2.1:5060>")
    );
    assert_eq!(inv1.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(inv1.headers.get("Supported"), Some("timer"));
    assert!(inv1.headers.get("P-Asserted-Identity").is_some());
    assert!(inv1.headers.get("Proxy-Authorization").is_none());

    h.reply(&inv1, 100, "Trying", None, "", None);
    h.reply(
        &inv1,
        407,
        "Proxy Authentication Required",
        Some("t407"),
        "Proxy-Authenticate: Digest realm=\"trunk.example.com\", nonce=\"n-407\", qop=\"auth\", algorithm=MD5\n",
        None,
    );
    // The 407 is ACKed inside its transaction.
    let ack = h.last_of(Method::Ack);
    assert_eq!(ack.uri, TARGET);
    assert_eq!(branch(&ack), branch(&inv1));
    assert_eq!(cseq(&ack), "1 ACK");
    assert!(ack.headers.get("To").unwrap().ends_with(";tag=t407"));
    // And the INVITE goes again with credentials.
    let inv2 = h.last_of(Method::Invite);
    assert_eq!(cseq(&inv2), "2 INVITE");
    assert_ne!(branch(&inv2), branch(&inv1));
    assert_eq!(inv2.headers.get("Call-ID"), inv1.headers.get("Call-ID"));
    assert_eq!(from_tag(&inv2), from_tag(&inv1));
    assert!(!inv2.headers.get("To").unwrap().contains("tag="));
    let pa = inv2.headers.get("Proxy-Authorization").unwrap();
    check_digest(pa, "INVITE", TARGET, "MD5", "00000001");
    assert_eq!(auth_param(pa, "realm"), "trunk.example.com");
    assert_eq!(auth_param(pa, "nonce"), "n-407");
    assert!(h.failed().is_none());

    h.reply(&inv2, 180, "Ringing", Some("callee"), "", None);
    assert!(matches!(
        h.outbound()[..],
        [OutboundEvent::Ringing {
            status: 180,
            sdp: None,
            ..
        }]
    ));
    h.reply(
        &inv2,
        200,
        "OK",
        Some("callee"),
        "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\nRecord-Route: <sip:p3.example.com;lr>\nContact: <sip:callee@198.51.100.7:5060>\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\n",
        Some(ANSWER_SDP),
    );
    let Some(OutboundEvent::Answered {
        call: c,
        sdp: Some(sdp),
    }) = h.outbound().pop()
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!(c, call);
    assert!(sdp.starts_with(b"v=0\r\n"));
    // ACK to the Contact through the reversed route set, sent to the trunk.
    let ack2 = h.last_of(Method::Ack);
    assert_eq!(ack2.uri, "sip:callee@198.51.100.7:5060");
    let routes: Vec<&str> = ack2.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec![
            "<sip:p3.example.com;lr>",
            "<sip:p2.example.com;lr>",
            "<sip:p1.example.com;lr>"
        ]
    );
    assert_eq!(cseq(&ack2), "2 ACK");
    assert_ne!(
        branch(&ack2),
        branch(&inv2),
        "a 2xx ACK is its own transaction"
    );
    assert!(ack2.headers.get("To").unwrap().ends_with(";tag=callee"));
    assert_eq!(ack2.headers.get("Proxy-Authorization"), Some(pa), "§22.1");
    assert_eq!(h.sent.last().unwrap().1.remote, h.flow.remote);

    // A retransmitted 2xx is ACKed again, identically.
    let acks = h.sent_requests(Method::Ack).len();
    h.reply(
        &inv2,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    assert_eq!(h.sent_requests(Method::Ack).len(), acks + 1);
    assert_eq!(h.last_of(Method::Ack), ack2);
    assert_eq!(h.outbound().len(), 2, "no second Answered");

    // No INVITE retransmissions once answered.
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.sent_requests(Method::Invite).len(), 2);

    // Our BYE follows the dialog.
    h.ua.hangup(h.now, call);
    h.drain();
    let bye = h.last_of(Method::Bye);
    assert_eq!(bye.uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(bye.headers.get_all("Route").count(), 3);
    assert_eq!(cseq(&bye), "3 BYE");
    assert_eq!(from_tag(&bye), from_tag(&inv1));
    h.reply(&bye, 200, "OK", None, "", None);
    h.run_until(Duration::from_secs(80));
    assert_eq!(h.sent_requests(Method::Bye).len(), 1, "answered: no resend");
    assert!(h.ua.is_idle());
}

#[test]
fn outbound_bye_challenged_by_the_trunk_is_retried_with_credentials() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    h.ua.hangup(h.now, call);
    h.drain();
    let bye1 = h.last_of(Method::Bye);
    h.reply(
        &bye1,
        407,
        "Proxy Authentication Required",
        None,
        "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"b\", qop=auth\n",
        None,
    );
    let bye2 = h.last_of(Method::Bye);
    assert_eq!(cseq(&bye2), "3 BYE");
    check_digest(
        bye2.headers.get("Proxy-Authorization").unwrap(),
        "BYE",
        "sip:callee@198.51.100.7:5060",
        "MD5",
        "00000001",
    );
}

#[test]
fn outbound_bye_from_the_callee_ends_the_call() {
    let mut h = Harness::new(Transport::Udp);
    let (call, inv) = h.answered_call("");
    h.input(&from_callee("BYE", 1, &inv, "z9hG4bK-cb", ""));
    let ok = h.responses().last().copied().cloned().unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("CSeq"), Some("1 BYE"));
    assert_eq!(h.ended(), vec![EndReason::RemoteBye]);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Ended { call: c, .. } if *c == call)));
    assert_eq!(h.ua.call_count(), 0);
}

#[test]
fn outbound_call_takes_reinvite_and_info_like_inbound_calls() {
    let mut h = Harness::new(Transport::Udp);
    let (call, inv) = h.answered_call("");
    let re = from_callee(
        "INVITE",
        1,
        &inv,
        "z9hG4bK-re",
        "Contact: <sip:callee@198.51.100.9:5060>\n",
    );
    h.input(&re);
    let Some(Event::Reoffer {
        request,
        offer: None,
        ..
    }) = h.events.last().cloned()
    else {
        panic!("{:?}", h.events)
    };
    h.ua.respond(
        h.now,
        call,
        request,
        200,
        "OK",
        Some(Bytes::from_static(b"v=0\r\n")),
    )
    .unwrap();
    h.drain();
    assert_eq!(h.statuses().last(), Some(&200));
    h.input(&from_callee("ACK", 1, &inv, "z9hG4bK-rea", ""));
    assert!(matches!(h.events.last(), Some(Event::ReofferAck { .. })));
    h.input(&from_callee(
        "INFO",
        2,
        &inv,
        "z9hG4bK-i",
        "Content-Type: application/dtmf-relay\n",
    ));
    assert!(matches!(h.events.last(), Some(Event::Info { .. })));
    // The target moved with the re-INVITE.
    h.ua.hangup(h.now, call);
    h.drain();
    assert_eq!(h.last_of(Method::Bye).uri, "sip:callee@198.51.100.9:5060");
}

#[test]
fn outbound_cancel_before_the_answer() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    let cancel = h.last_of(Method::Cancel);
    assert_eq!(cancel.uri, inv.uri);
    assert_eq!(branch(&cancel), branch(&inv));
    assert_eq!(cseq(&cancel), "1 CANCEL");
    assert_eq!(cancel.headers.get("To"), inv.headers.get("To"));
    assert_eq!(cancel.headers.get("From"), inv.headers.get("From"));
    h.reply(&cancel, 200, "OK", Some("callee"), "", None);
    assert!(h.failed().is_none(), "the INVITE decides");
    h.reply(&inv, 487, "Request Terminated", Some("callee"), "", None);
    let ack = h.last_of(Method::Ack);
    assert_eq!(branch(&ack), branch(&inv));
    assert_eq!(cseq(&ack), "1 ACK");
    assert_eq!(h.failed(), Some((487, "Request Terminated".into())));
    assert_eq!(h.ua.call_count(), 0);
    h.run_until(Duration::from_secs(40));
    assert_eq!(
        h.sent_requests(Method::Cancel).len(),
        1,
        "answered: no resend"
    );
    assert!(h.ua.is_idle());
}

#[test]
fn hangup_before_any_provisional_cancels_once_one_arrives() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.ua.hangup(h.now, call);
    h.drain();
    assert!(h.sent_requests(Method::Cancel).is_empty(), "§9.1");
    h.reply(&inv, 100, "Trying", None, "", None);
    assert_eq!(h.sent_requests(Method::Cancel).len(), 1);
    assert!(h.outbound().is_empty(), "no Ringing after hangup");
}

#[test]
fn answer_crossing_our_cancel_is_acked_and_hung_up() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    h.reply(
        &inv,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    assert_eq!(h.last_of(Method::Ack).uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(h.last_of(Method::Bye).uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(h.failed().map(|f| f.0), Some(487));
    assert!(!h
        .outbound()
        .iter()
        .any(|e| matches!(e, OutboundEvent::Answered { .. })));
}

#[test]
fn busy_is_acked_and_reported() {
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 486, "Busy Here", Some("callee"), "", None);
    let ack = h.last_of(Method::Ack);
    assert_eq!(branch(&ack), branch(&inv));
    assert!(ack.headers.get("To").unwrap().ends_with("tag=callee"));
    assert_eq!(h.failed(), Some((486, "Busy Here".into())));
    // The retransmitted 486 gets the same ACK; nothing else is sent.
    h.reply(&inv, 486, "Busy Here", Some("callee"), "", None);
    assert_eq!(h.sent_requests(Method::Ack).len(), 2);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
    assert_eq!(h.outbound().len(), 1);
}

#[test]
fn ringing_too_long_is_cancelled_and_reported_as_408() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        183,
        "Session Progress",
        Some("callee"),
        "",
        Some(ANSWER_SDP),
    );
    assert!(matches!(
        h.outbound()[..],
        [OutboundEvent::Ringing {
            status: 183,
            sdp: Some(_),
            ..
        }]
    ));
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Cancel).is_empty());
    h.run_until(Duration::from_secs(61));
    let cancel = h.last_of(Method::Cancel);
    h.reply(&cancel, 200, "OK", None, "", None);
    h.reply(&inv, 487, "Request Terminated", Some("callee"), "", None);
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
}

#[test]
fn cancel_without_final_answer_gives_up_after_64_t1() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    h.run_until(Duration::from_secs(33));
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
    assert_eq!(h.ua.call_count(), 0);
}

#[test]
fn second_fork_answering_gets_ack_and_bye() {
    let mut h = Harness::new(Transport::Udp);
    let (_call, inv) = h.answered_call("");
    h.reply(
        &inv,
        200,
        "OK",
        Some("fork2"),
        "Contact: <sip:fork2@198.51.100.8>\n",
        Some(ANSWER_SDP),
    );
    let ack = h.last_of(Method::Ack);
    assert_eq!(ack.uri, "sip:fork2@198.51.100.8");
    let bye = h.last_of(Method::Bye);
    assert_eq!(bye.uri, "sip:fork2@198.51.100.8");
    assert!(bye.headers.get("To").unwrap().ends_with("tag=fork2"));
    assert_eq!(h.ua.call_count(), 1, "the first answer stays up");
}

#[test]
fn client_api_refuses_bad_input_and_shutdown() {
    let mut h = Harness::new(Transport::Udp);
    let mut out = OutboundCall {
        request_uri: "not a uri".into(),
        from: "sip:pinbridge@trunk.example.com".into(),
        to: TARGET.into(),
        flow: h.flow,
        sdp: Bytes::new(),
        credentials: None,
        extra_headers: vec![],
    };
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.request_uri = TARGET.into();
    out.extra_headers = vec![("X-Evil".into(), "a\r\nVia: x".into())];
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.extra_headers = vec![("Call-ID".into(), "mine".into())];
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.extra_headers.clear();
    h.ua.shutdown(h.now);
    assert!(matches!(
        h.ua.call(h.now, out),
        Err(crate::sip::ua::UaError::ShuttingDown)
    ));
    assert!(h.sent.is_empty());
}
