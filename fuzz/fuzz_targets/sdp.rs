//! An SDP body from the network: parsed, answered as the call task answers
//! an INVITE's offer, and read as the answer to one of our offers.
//!
//! Properties checked beyond "no panic", for every offer we answer:
//! - our answer parses;
//! - it has one `m=` line per offered line (RFC 3264 §6);
//! - exactly one of them is accepted (port not 0): an audio line carrying
//!   the negotiated codec on the negotiated payload type, and the
//!   negotiated telephone-event payload type if there is one;
//! - answering the same offer again gives the same text (the `o=` version
//!   only grows when what we send changes, RFC 3264 §8).

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use pinbridge::media::g711::Codec;
use pinbridge::sip::sdp::{self, LocalMedia, SdpSession, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let offer = match sdp::parse(data) {
        Ok(offer) => offer,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for m in &offer.media {
        let _ = offer.connection_for(m).map(|c| c.rtp_destination(m.port));
        let _ = offer.direction_for(m);
        for f in &m.formats {
            let _ = m.describe_format(f);
        }
        let _ = m.telephone_event_pts().count();
    }
    let locals = [
        LocalMedia {
            addr: IpAddr::from([192, 0, 2, 1]),
            port: 40_000,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            ptime_ms: 20,
        },
        LocalMedia {
            addr: IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            port: 40_002,
            codecs: vec![Codec::Pcma],
            ptime_ms: 30,
        },
    ];
    for local in &locals {
        check_answer(&offer, local);
    }
    // The same bytes as the answer to our offer (outbound calls).
    match sdp::accept_answer(&[Codec::Pcmu, Codec::Pcma], &offer) {
        Ok(n) => assert!(n.ptime_ms > 0),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn check_answer(offer: &SessionDescription, local: &LocalMedia) {
    let mut session = SdpSession::new(4242);
    let (negotiated, text) = match sdp::answer(&mut session, offer, local) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(local.codecs.contains(&negotiated.codec));
    let answer = match sdp::parse(text.as_bytes()) {
        Ok(a) => a,
        Err(e) => panic!("our answer does not parse ({e}):\n{text}"),
    };
    assert_eq!(
        answer.media.len(),
        offer.media.len(),
        "the answer must mirror the offer's m= lines:\n{text}"
    );
    let accepted: Vec<usize> = (0..answer.media.len())
        .filter(|&i| answer.media[i].port != 0)
        .collect();
    assert_eq!(accepted.len(), 1, "one accepted stream expected:\n{text}");
    let (m, offered) = (&answer.media[accepted[0]], &offer.media[accepted[0]]);
    assert!(
        m.is_audio() && offered.is_audio(),
        "the accepted stream is not audio:\n{text}"
    );
    assert_eq!(
        answer.direction_for(m),
        offer.direction_for(offered).reverse(),
        "the answer's direction is not the offer's reversed:\n{text}"
    );
    assert_eq!(m.port, local.port);
    assert_eq!(
        m.codec(negotiated.codec_pt),
        Some(negotiated.codec),
        "the answer does not carry the negotiated codec:\n{text}"
    );
    if let Some(pt) = negotiated.telephone_event_pt {
        assert!(
            m.telephone_event_pts().any(|p| p == pt),
            "the answer does not carry telephone-event {pt}:\n{text}"
        );
    }
    let (_, again) = match sdp::answer(&mut session, offer, local) {
        Ok(a) => a,
        Err(e) => panic!("the same offer answered once is refused the second time: {e}"),
    };
    assert_eq!(
        text, again,
        "answering the same offer twice changed the answer"
    );
}
