//! Request validation (RFC 3261 §8.2): the RFC 4475 torture messages get the
//! answers the RFC gives, and a 400 names the header that was wrong.

use crate::sip::flow::Transport;
use crate::sip::ua::test_support::*;

/// Expected status for each RFC 4475 message sent to a UAS (None: the
/// message is a response, or unanswerable, and is dropped).
pub(crate) const TORTURE_EXPECTATIONS: &[(&str, Option<u16>)] = &[
    // §3.1.1 valid messages
    ("wsinv", Some(481)), // a re-INVITE (To has a tag) for a dialog we don't have
    ("intmeth", Some(501)),
    ("esc01", Some(100)),
    ("escnull", Some(405)),
    ("esc02", Some(501)),
    ("lwsdisp", Some(200)),
    ("longreq", Some(100)),
    ("dblreq", Some(405)),
    ("semiuri", Some(200)),
    ("transports", Some(200)),
    ("mpart01", Some(405)),
    ("unreason", None),
    ("noreason", None),
    // §3.1.2 invalid messages
    ("badinv01", Some(400)),
    ("clerr", Some(400)),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    ("baddate", Some(400)),
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", Some(400)),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(501)),
    ("bigcode", None),
    // §3.2 transaction layer, §3.3 application layer, §3.4 RFC 2543
    ("badbranch", Some(200)),
    ("insuf", Some(400)),
    ("unkscm", Some(416)),
    ("novelsc", Some(416)),
    ("unksm2", Some(405)),
    ("bext01", Some(420)),
    ("invut", Some(415)),
    ("regaut01", Some(405)),
    ("multi01", Some(400)),
    ("mcl01", Some(400)),
    ("bcast", None),
    ("zeromf", Some(200)),
    ("cparam01", Some(405)),
    ("cparam02", Some(405)),
    ("regescrt", Some(405)),
    ("sdp01", Some(406)),
    ("inv2543", Some(100)),
];

#[test]
fn rfc4475_torture_messages_get_the_rfc_answers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture");
    assert_eq!(TORTURE_EXPECTATIONS.len(), 49);
    let mut failures = Vec::new();
    for (name, want) in TORTURE_EXPECTATIONS {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).expect("torture fixture");
        let mut h = Harness::new(Transport::Udp);
        h.input_bytes(&bytes);
        let got = h.statuses().first().copied();
        if got != *want {
            failures.push(format!(
                "{name}: want {want:?}, got {got:?} {:?}",
                h.responses().first().map(|r| &r.reason)
            ));
        }
        if let Some(r) = h.responses().first() {
            if r.status >= 400 {
                assert!(!r.reason.is_empty(), "{name}: reason phrase");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_header_reason_names_the_header() {
    let mut h = Harness::new(Transport::Udp);
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture/insuf.dat"),
    )
    .unwrap();
    h.input_bytes(&bytes);
    assert_eq!(h.responses()[0].reason, "Missing From Header");
}
