//! CANCEL and BYE: 200 with the right To tag, 487 for the cancelled INVITE,
//! 481 when nothing matches.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::ua::test_support::*;
use crate::sip::ua::EndReason;

#[test]
fn cancel_before_answer_gives_200_and_487() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let cancel = "CANCEL sip:1000@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5071;branch=z9hG4bK-1
From: \"Caller\" <sip:alice@192.0.2.10>;tag=from1
To: <sip:1000@192.0.2.1>
Call-ID: call-1@192.0.2.10
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

";
    h.input(cancel);
    assert_eq!(h.statuses(), vec![100, 200, 487]);
    assert_eq!(h.ended(), vec![EndReason::Cancelled]);
    let r = h.responses();
    assert_eq!(r[1].headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(
        r[1].headers.get("To"),
        r[2].headers.get("To"),
        "same To tag (§9.2)"
    );
    // The 487 is retransmitted until the ACK arrives.
    h.run_until(Duration::from_millis(600));
    assert_eq!(h.statuses(), vec![100, 200, 487, 487]);
    let tag = h.to_tag();
    let ack = in_dialog("ACK", 1, &tag, "z9hG4bK-1", "")
        .replace("sip:pinbridge@192.0.2.1", "sip:1000@192.0.2.1");
    h.input(&ack);
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.statuses(), vec![100, 200, 487, 487]);
}

#[test]
fn cancel_without_invite_is_481() {
    let mut h = Harness::new(Transport::Udp);
    let cancel = in_dialog("CANCEL", 1, "x", "z9hG4bK-nope", "").replace(";tag=x", "");
    h.input(&cancel);
    assert_eq!(h.statuses(), vec![481]);
}

#[test]
fn bye_for_unknown_dialog_is_481_and_known_is_200() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&in_dialog("BYE", 2, "nosuchtag", "z9hG4bK-b0", ""));
    assert_eq!(h.statuses(), vec![481]);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog("BYE", 2, &tag, "z9hG4bK-b1", ""));
    assert_eq!(h.statuses(), vec![481, 100, 200, 200]);
    assert_eq!(h.ended(), vec![EndReason::RemoteBye]);
    // A retransmitted BYE is answered again by its transaction.
    h.input(&in_dialog("BYE", 2, &tag, "z9hG4bK-b1", ""));
    assert_eq!(h.statuses(), vec![481, 100, 200, 200, 200]);
}
