//! The calls the core keeps: CSeq order in a dialog, hanging up before the
//! ACK, and shutdown.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::method::Method;
use crate::sip::ua::test_support::*;

#[test]
fn old_cseq_in_dialog_is_500() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog("BYE", 1, &tag, "z9hG4bK-b", ""));
    assert_eq!(*h.statuses().last().unwrap(), 500);
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.answer(c);
    h.ua.hangup(h.now, c);
    h.drain();
    assert!(h.requests().is_empty());
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    assert_eq!(h.requests()[0].method, Method::Bye);
}

#[test]
fn shutdown_hangs_up_and_refuses_new_calls() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.answer(c);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.ua.shutdown(h.now);
    h.drain();
    assert_eq!(h.requests()[0].method, Method::Bye);
    assert!(!h.ua.is_idle(), "waiting for the BYE's answer");
    h.input(&invite("z9hG4bK-2", "").replace("call-1", "call-2"));
    assert_eq!(*h.statuses().last().unwrap(), 503);
    h.run_until(Duration::from_secs(40));
    assert!(h.ua.is_idle(), "BYE timed out");
}
