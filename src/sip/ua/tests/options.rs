//! OPTIONS: what we support.

use crate::sip::flow::Transport;
use crate::sip::ua::test_support::*;

#[test]
fn options_lists_capabilities() {
    let mut h = Harness::new(Transport::Udp);
    let opt = in_dialog("OPTIONS", 5, "x", "z9hG4bK-o", "").replace(";tag=x", "");
    h.input(&opt);
    let r = h.responses()[0];
    assert_eq!(r.status, 200);
    assert!(r.headers.get("Allow").unwrap().contains("INVITE"));
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    assert_eq!(r.headers.get("Supported"), Some("timer"));
    assert!(r.headers.get("To").unwrap().contains("tag="));
}
