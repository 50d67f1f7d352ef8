//! Responses: where they go (Via, rport, received), which are retransmitted,
//! and a fresh To tag for each stateless reply.

use std::time::Duration;

use crate::sip::flow::Transport;
use crate::sip::message::Message;
use crate::sip::ua::test_support::*;

#[test]
fn responses_follow_rport_and_received() {
    let mut h = Harness::new(Transport::Udp);
    h.flow.remote = "203.0.113.5:40000".parse().unwrap();
    let opt = in_dialog("OPTIONS", 5, "x", "z9hG4bK-o", "")
        .replace(";tag=x", "")
        .replace(
            "192.0.2.10:5071;branch=z9hG4bK-o",
            "10.0.0.2:5060;branch=z9hG4bK-o;rport",
        );
    h.input(&opt);
    let (_, flow, Message::Response(r)) = &h.sent[0] else {
        panic!()
    };
    assert_eq!(flow.remote, "203.0.113.5:40000".parse().unwrap());
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-o;rport=40000;received=203.0.113.5")
    );
    // Without rport the Via port is used.
    let opt2 = opt.replace(";rport", "").replace("z9hG4bK-o", "z9hG4bK-o2");
    h.input(&opt2);
    assert_eq!(h.sent[1].1.remote, "203.0.113.5:5060".parse().unwrap());
}

#[test]
fn tcp_does_not_retransmit_error_responses() {
    let mut h = Harness::new(Transport::Tcp);
    h.input(&invite("z9hG4bK-1", "").replace("UDP", "TCP"));
    let c = h.incoming()[0];
    h.ua.reject(h.now, c, 486, "Busy Here").unwrap();
    h.drain();
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.statuses(), vec![100, 486]);
}

#[test]
fn stateless_replies_get_a_fresh_to_tag_each() {
    // Two requests whose headers do not all parse are answered without a
    // transaction; each answer needs its own random To tag (RFC 3261
    // §19.3), not one derived from a counter that such replies never move.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture");
    let mut h = Harness::new(Transport::Udp);
    for name in ["scalar02", "ncl", "scalar02"] {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).expect("torture fixture");
        h.input_bytes(&bytes);
    }
    let tags: Vec<String> = h
        .responses()
        .iter()
        .map(|r| {
            let to = r.headers.get("To").expect("a To header");
            to.split("tag=").nth(1).expect("a To tag").to_string()
        })
        .collect();
    assert_eq!(tags.len(), 3, "{:?}", h.statuses());
    assert!(
        tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
        "{tags:?}"
    );
}
