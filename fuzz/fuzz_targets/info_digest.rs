//! Two small peer-text parsers: SIP INFO DTMF bodies and Digest
//! challenges (WWW-Authenticate / Proxy-Authenticate from a trunk or
//! registrar), with the Authorization we compute from them.
//!
//! Input: the first line is a Content-Type, the rest an INFO body; the
//! same input's lines are also challenge header values (byte 0's low bit
//! says 401 or 407).
//!
//! Properties checked beyond "no panic":
//! - a DTMF key read from an INFO body is a DTMF key, and the body we
//!   would write for it reads back as the same key and duration;
//! - the Authorization value built from a parsed challenge carries that
//!   challenge's realm, nonce, opaque and algorithm, quoted so that they
//!   read back unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinbridge::media::dtmf::info::{is_dtmf_content_type, parse_info};
use pinbridge::media::dtmf::KEYS;
use pinbridge::sip::auth::{
    authorization, choose, parse_challenge, parse_challenges, Credentials, DigestClient,
    DigestInput,
};
use pinbridge::sip::message::Headers;

fuzz_target!(|data: &[u8]| {
    info(data);
    if let Ok(text) = std::str::from_utf8(data) {
        digest(data.first().is_some_and(|b| b & 1 == 1), text);
    }
});

fn info(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(content_type) = std::str::from_utf8(content_type) else {
        return;
    };
    let _ = is_dtmf_content_type(content_type);
    match parse_info(content_type, body) {
        Ok(d) => {
            assert!(KEYS.contains(&d.key), "not a DTMF key: {:?}", d.key);
            let mut again = format!("Signal={}\r\n", d.key);
            if let Some(ms) = d.duration_ms {
                again.push_str(&format!("Duration={ms}\r\n"));
            }
            assert_eq!(
                parse_info("application/dtmf-relay", again.as_bytes()),
                Ok(d),
                "{again:?} does not read back"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn digest(proxy: bool, text: &str) {
    let values: Vec<&str> = text.lines().collect();
    for v in &values {
        for r in parse_challenges(v) {
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
    }
    let creds = Credentials {
        username: "pinbridge\"\\user".into(),
        password: "secret".into(),
    };
    if let Ok(ch) = choose(values.iter().copied()) {
        let input = DigestInput {
            method: "INVITE",
            uri: "sip:+15551234567@trunk.example.com",
            cnonce: "0a4f113b",
            nc: 1,
        };
        let value = authorization(&ch, &creds, &input);
        let back = match parse_challenge(&value) {
            Ok(b) => b,
            Err(e) => panic!("our Authorization does not read back ({e}): {value}"),
        };
        assert_eq!(back.realm, ch.realm, "realm changed in {value}");
        assert_eq!(back.nonce, ch.nonce, "nonce changed in {value}");
        assert_eq!(back.opaque, ch.opaque, "opaque changed in {value}");
        assert_eq!(back.algorithm, ch.algorithm, "algorithm changed in {value}");
    }
    let (status, name) = if proxy {
        (407, "Proxy-Authenticate")
    } else {
        (401, "WWW-Authenticate")
    };
    let mut headers = Headers::new();
    for v in &values {
        headers.push(name, *v);
    }
    let mut client = DigestClient::new(creds);
    for _ in 0..3 {
        if client.on_challenge(status, &headers).is_err() {
            break;
        }
        let _ = client.headers("REGISTER", "sip:example.com", "0a4f113b");
    }
}
