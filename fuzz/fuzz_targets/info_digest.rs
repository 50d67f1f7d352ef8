//! Two small peer-text parsers: SIP INFO DTMF bodies and Digest
//! challenges (WWW-Authenticate / Proxy-Authenticate from a trunk or
//! registrar), with the Authorization we compute from them.
//!
//! Input: the first line is a Content-Type, the rest an INFO body; the
//! same input's lines are also challenge header values. Byte 0 picks the
//! client's setup: bit 0 answers a 407 (else a 401), bit 1 restricts the
//! credentials to the realm `trunk.example.net` (`[trunk] realm`), bits 2-3
//! pick the strongest algorithm the peer offered before (the downgrade
//! floor: none, MD5, SHA-256, SHA-512-256).
//!
//! Properties checked beyond "no panic":
//! - a DTMF key read from an INFO body is a DTMF key, and the body we
//!   would write for it reads back as the same key and duration;
//! - the Authorization value built from a parsed challenge carries that
//!   challenge's realm, nonce, opaque and algorithm, quoted so that they
//!   read back unchanged;
//! - a challenge chosen under a policy is for the required realm and at
//!   least as strong as the floor; the digest client reports the algorithm
//!   it will answer with, never one weaker than the floor.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinbridge::media::dtmf::info::{is_dtmf_content_type, parse_info};
use pinbridge::media::dtmf::KEYS;
use pinbridge::sip::auth::{
    authorization, choose, choose_with, parse_challenge, parse_challenges, Algorithm,
    ChallengePolicy, Credentials, DigestClient, DigestInput,
};
use pinbridge::sip::message::Headers;

fuzz_target!(|data: &[u8]| {
    info(data);
    if let Ok(text) = std::str::from_utf8(data) {
        digest(data.first().copied().unwrap_or(0), text);
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

/// The realm a `[trunk] realm` setting would require.
const REALM: &str = "trunk.example.net";

fn digest(setup: u8, text: &str) {
    let proxy = setup & 1 == 1;
    let realm = (setup & 2 == 2).then_some(REALM);
    let floor = [
        None,
        Some(Algorithm::Md5),
        Some(Algorithm::Sha256),
        Some(Algorithm::Sha512_256),
    ][usize::from((setup >> 2) & 3)];

    let values: Vec<&str> = text.lines().collect();
    for v in &values {
        for r in parse_challenges(v) {
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
    }
    let mut creds = Credentials::new("pinbridge\"\\user", "secret");
    creds.realm = realm.map(str::to_string);
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
    let policy = ChallengePolicy { realm, floor };
    match choose_with(values.iter().copied(), policy) {
        Ok(ch) => {
            if let Some(want) = realm {
                assert_eq!(ch.realm, want, "a challenge for another realm was chosen");
            }
            if let Some(floor) = floor {
                assert!(
                    ch.algorithm.strength() >= floor.strength(),
                    "{} chosen below the floor {floor}",
                    ch.algorithm
                );
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
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
    let mut floor = floor;
    for _ in 0..3 {
        match client.on_challenge(status, &headers, floor) {
            Ok(answered) => {
                if let Some(f) = floor {
                    assert!(
                        answered.strength() >= f.strength(),
                        "answered {answered} below the floor {f}"
                    );
                }
                // As the user agent does: the peer's floor rises to what it offered.
                floor = Some(answered);
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
        let _ = client.headers("REGISTER", "sip:example.com", "0a4f113b");
    }
}
