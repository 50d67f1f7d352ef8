//! One UDP datagram through the SIP parser, the typed header parsers the
//! user agent applies to it, and a serialise round trip.
//!
//! Properties checked beyond "no panic":
//! - whatever parses serialises into bytes that parse again;
//! - a message without defects survives the round trip unchanged (the
//!   Content-Length header aside: serialising always writes the real one).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinbridge::sip::header::{
    parse_accept, parse_delta_seconds, parse_max_forwards, parse_min_se, parse_token_list,
    parse_vias, validate_call_id, validate_date, CSeq, MediaType, NameAddr, SessionExpires,
};
use pinbridge::sip::message::{parse_datagram, Headers, Message};
use pinbridge::sip::uri::{unescape, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_datagram(data) else {
        return;
    };
    typed_headers(parsed.message.headers());
    let bytes = match &parsed.message {
        Message::Request(r) => {
            if let Ok(uri) = Uri::parse(&r.uri) {
                let _ = uri.user();
            }
            let _ = unescape(&r.uri);
            r.to_bytes()
        }
        Message::Response(r) => r.to_bytes(),
    };
    let again = match parse_datagram(&bytes) {
        Ok(p) => p,
        Err(e) => panic!("a parsed message serialises to bytes that do not parse ({e}): {bytes:?}"),
    };
    if parsed.defect.is_none() {
        assert_eq!(again.defect, None, "round trip added a defect: {bytes:?}");
        assert_eq!(
            without_content_length(&parsed.message),
            without_content_length(&again.message),
            "round trip changed the message: {bytes:?}"
        );
    }
});

/// Every typed header parser the user agent uses, on whatever header it
/// applies to.
fn typed_headers(h: &Headers) {
    let _ = parse_vias(h.get_all("Via"));
    for (name, value) in h.iter() {
        match name {
            "From" | "To" | "P-Asserted-Identity" | "Referred-By" => {
                if let Ok(na) = NameAddr::parse("From", value) {
                    let _ = na.tag();
                    let _ = na.uri.user();
                }
            }
            "Contact" | "Route" | "Record-Route" => {
                let _ = NameAddr::parse_list("Contact", value);
            }
            "CSeq" => {
                let _ = CSeq::parse(value);
            }
            "Max-Forwards" => {
                let _ = parse_max_forwards(value);
            }
            "Call-ID" => {
                let _ = validate_call_id(value);
            }
            "Expires" => {
                let _ = parse_delta_seconds("Expires", value);
            }
            "Date" => {
                let _ = validate_date(value);
            }
            "Require" | "Supported" | "Proxy-Require" | "Allow" => {
                let _ = parse_token_list("Require", value);
            }
            "Content-Type" => {
                let _ = MediaType::parse("Content-Type", value);
            }
            "Accept" => {
                let _ = parse_accept(value);
            }
            "Session-Expires" => {
                let _ = SessionExpires::parse(value);
            }
            "Min-SE" => {
                let _ = parse_min_se(value);
            }
            _ => {}
        }
    }
}

/// The message with its Content-Length header removed, for comparison.
fn without_content_length(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Request(r) => r.headers.remove("Content-Length"),
        Message::Response(r) => r.headers.remove("Content-Length"),
    }
    m
}
