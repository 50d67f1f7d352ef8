//! INFO: body types we do not take get 415.

use crate::sip::flow::Transport;
use crate::sip::ua::test_support::*;
use crate::sip::ua::Event;

#[test]
fn info_with_unknown_body_is_415() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog(
        "INFO",
        2,
        &tag,
        "z9hG4bK-i",
        "Content-Type: text/plain\n",
    ));
    assert_eq!(*h.statuses().last().unwrap(), 415);
    h.input(&in_dialog(
        "INFO",
        3,
        &tag,
        "z9hG4bK-i2",
        "Content-Type: application/dtmf-relay\n",
    ));
    assert!(matches!(h.events.last(), Some(Event::Info { .. })));
}
