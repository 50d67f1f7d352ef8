//! INVITE on the server side: 100 Trying, answer, ACK, retransmissions of
//! the INVITE and of our 2xx, rejection, late offers and re-INVITEs.

use std::time::Duration;

use bytes::Bytes;

use crate::sip::flow::Transport;
use crate::sip::message::Message;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;
use crate::sip::ua::{EndReason, Event};

#[test]
fn invite_is_trying_then_answered_then_confirmed_by_ack() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(
        h.statuses(),
        vec![100],
        "{:?}",
        h.responses().first().map(|r| &r.reason)
    );
    let calls = h.incoming();
    assert_eq!(calls.len(), 1);
    h.answer(calls[0]);
    let ok = h.responses()[1];
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    assert!(ok
        .headers
        .get("Contact")
        .unwrap()
        .contains("192.0.2.1:5060"));
    assert_eq!(ok.headers.get("CSeq"), Some("1 INVITE"));
    assert_eq!(
        ok.headers.get("From"),
        Some("\"Caller\" <sip:alice@192.0.2.10>;tag=from1")
    );
    assert!(ok.headers.get("Via").unwrap().contains("branch=z9hG4bK-1"));
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-ack", ""));
    assert!(matches!(
        h.events.last(),
        Some(Event::Confirmed { ack_body: None, .. })
    ));
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.statuses(), vec![100, 200], "no retransmission after ACK");
}

#[test]
fn retransmitted_invite_is_one_call() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.input(&invite("z9hG4bK-1", ""));
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.incoming().len(), 1);
    assert_eq!(
        h.statuses(),
        vec![100, 100, 100],
        "each retransmission gets the 100 again"
    );
    h.answer(h.incoming()[0]);
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.incoming().len(), 1, "absorbed in the Accepted state");
}

#[test]
fn unacknowledged_200_is_retransmitted_then_bye_after_64_t1() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Response(r) if r.status == 200))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(
        times,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let reqs = h.requests();
    assert!(!reqs.is_empty() && reqs.iter().all(|r| r.method == Method::Bye));
    assert_eq!(h.ended(), vec![EndReason::AckTimeout]);
    // The BYE is retransmitted until answered.
    let bye_times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Bye))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(&bye_times[..3], &[32000, 32500, 33500]);
}

#[test]
fn ringing_is_resent_on_invite_retransmission_and_cancel_still_works() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.ua.ring(c).unwrap();
    h.drain();
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.statuses(), vec![100, 180, 180]);
    assert!(h.responses()[1]
        .headers
        .get("To")
        .unwrap()
        .contains(";tag="));
    assert!(h.responses()[1].headers.get("Contact").is_some());
}

#[test]
fn reject_with_488_carries_a_warning() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.ua.reject(h.now, c, 488, "Not Acceptable Here").unwrap();
    h.drain();
    let r = h.responses()[1];
    assert_eq!(r.status, 488);
    assert!(r.headers.get("Warning").unwrap().starts_with("304 "));
}

#[test]
fn late_offer_answer_arrives_in_ack() {
    let mut h = Harness::new(Transport::Udp);
    let inv = invite("z9hG4bK-1", "")
        .split("Content-Type")
        .next()
        .unwrap()
        .to_string()
        + "Content-Length: 0\n\n";
    h.input(&inv);
    let Some(Event::Incoming { info, .. }) = h.events.first() else {
        panic!()
    };
    assert!(info.offer.is_none());
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    let ack = in_dialog(
        "ACK",
        1,
        &tag,
        "z9hG4bK-a",
        "Content-Type: application/sdp\n",
    )
    .replace("Content-Length: 0\n\n", "Content-Length: 5\n\nv=0\n");
    h.input(&ack);
    let Some(Event::Confirmed {
        ack_body: Some(b), ..
    }) = h.events.last()
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!(&b[..], b"v=0\r\n");
}

#[test]
fn reinvite_is_offered_answered_and_acked() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let call = h.incoming()[0];
    h.answer(call);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    let re = in_dialog(
        "INVITE",
        2,
        &tag,
        "z9hG4bK-re",
        "Contact: <sip:alice@192.0.2.99:5071>\nContent-Type: application/sdp\n",
    )
    .replace("Content-Length: 0\n\n", "Content-Length: 5\n\nv=0\r\n");
    h.input(&re);
    let Some(Event::Reoffer {
        request,
        method: Method::Invite,
        offer: Some(_),
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
    assert_eq!(*h.statuses().last().unwrap(), 200);
    h.input(&in_dialog("ACK", 2, &tag, "z9hG4bK-a2", ""));
    assert!(matches!(h.events.last(), Some(Event::ReofferAck { .. })));
    // The new Contact is the target of our BYE.
    h.ua.hangup(h.now, call);
    h.drain();
    assert_eq!(
        h.requests().last().unwrap().uri,
        "sip:alice@192.0.2.99:5071"
    );
}
