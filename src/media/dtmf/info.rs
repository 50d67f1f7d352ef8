//! DTMF carried in SIP INFO requests (RFC 6086 INFO, no Info-Package).
//!
//! Two body formats are in the field, neither with an RFC of its own:
//!
//! * `application/dtmf-relay` (Cisco's, also Asterisk, FreeSWITCH, Twinkle,
//!   Polycom, Grandstream): `Signal=<key>` and optionally `Duration=<ms>`
//!   lines. Twinkle 1.10 sends exactly `Signal=1\r\nDuration=100\r\n` (and
//!   sends a typed `A` as `2`, the keypad digit carrying that letter).
//! * `application/dtmf`: the key alone, e.g. `5`; some send the RFC 4733
//!   event number instead (`10` for `*`, `11` for `#`).
//!
//! [`parse_info`] turns a body into one [`InfoDigit`]. Any other body type is
//! [`InfoError::UnsupportedType`] (the SIP layer answers 415 and lists the
//! types it accepts); a DTMF body we cannot read is [`InfoError::Malformed`]
//! (answered 400). Parsing is lenient where real senders differ (case,
//! spaces, CRLF or LF, unknown extra lines, a missing or odd `Duration`) and
//! strict about the one thing that matters: exactly which key was pressed.

// Everything under here reads an INFO body a peer sent: a panic on a short or
// odd packet would take the call (or the server) down.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use super::{event_to_key, key_to_event};

/// A key sent in a SIP INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDigit {
    pub key: char,
    pub duration_ms: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("unsupported INFO body type {0}")]
    UnsupportedType(String),
    #[error("malformed DTMF INFO body: {0}")]
    Malformed(&'static str),
}

/// The DTMF body formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    /// `application/dtmf-relay`: `Signal=` / `Duration=` lines.
    Relay,
    /// `application/dtmf`: the key alone.
    Bare,
}

/// Longest body we look at. Real ones are about 25 bytes; this bounds the
/// work an abusive peer can cause.
const MAX_BODY: usize = 1024;

/// `media-type "/" subtype` of a Content-Type value, without parameters,
/// trimmed (RFC 3261 §20.15: matching is case-insensitive).
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn body_type(content_type: &str) -> Option<BodyType> {
    let mt = media_type(content_type);
    if mt.eq_ignore_ascii_case("application/dtmf-relay") {
        Some(BodyType::Relay)
    } else if mt.eq_ignore_ascii_case("application/dtmf") {
        Some(BodyType::Bare)
    } else {
        None
    }
}

/// Is this Content-Type (parameters allowed, any case) a DTMF INFO body?
pub fn is_dtmf_content_type(content_type: &str) -> bool {
    body_type(content_type).is_some()
}

/// `content_type` is the Content-Type header value (parameters allowed, case-insensitive).
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<InfoDigit, InfoError> {
    let Some(kind) = body_type(content_type) else {
        return Err(InfoError::UnsupportedType(
            media_type(content_type).to_owned(),
        ));
    };
    if body.len() > MAX_BODY {
        return Err(InfoError::Malformed("body too long"));
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoError::Malformed("body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(InfoError::Malformed("empty body"));
    }
    match kind {
        BodyType::Relay => parse_relay(text),
        // Some senders label a `Signal=` body application/dtmf; read it.
        BodyType::Bare if text.contains('=') => parse_relay(text),
        BodyType::Bare => parse_bare(text),
    }
}

/// `application/dtmf`: one key or event number, surrounding whitespace
/// allowed.
fn parse_bare(text: &str) -> Result<InfoDigit, InfoError> {
    let key = parse_signal(text.trim())?;
    Ok(InfoDigit {
        key,
        duration_ms: None,
    })
}

/// `application/dtmf-relay`: `name=value` lines (CRLF or LF, names in any
/// case, spaces around `=`). `Signal` is required and must appear once (or
/// repeat the same key); `Duration` is optional, and an unreadable one is
/// ignored rather than losing the key. Other lines are ignored.
fn parse_relay(text: &str) -> Result<InfoDigit, InfoError> {
    let mut key: Option<char> = None;
    let mut duration_ms = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(InfoError::Malformed("line without '='"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("signal") {
            let k = parse_signal(value)?;
            if key.is_some_and(|prev| prev != k) {
                return Err(InfoError::Malformed("conflicting Signal lines"));
            }
            key = Some(k);
        } else if name.eq_ignore_ascii_case("duration") {
            duration_ms = value.parse::<u32>().ok();
        }
    }
    let key = key.ok_or(InfoError::Malformed("no Signal"))?;
    Ok(InfoDigit { key, duration_ms })
}

/// A key: `0`–`9`, `*`, `#`, `A`–`D` in either case, or an RFC 4733 event
/// number 0–15 (`10` = `*`, `11` = `#`, `12`–`15` = `A`–`D`), which some
/// PBXs send. A single digit reads the same either way.
fn parse_signal(value: &str) -> Result<char, InfoError> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Err(InfoError::Malformed("empty Signal")),
        (Some(c), None) => key_to_event(c)
            .and_then(event_to_key)
            .ok_or(InfoError::Malformed("Signal is not a DTMF key")),
        _ => value
            .parse::<u8>()
            .ok()
            .and_then(event_to_key)
            .ok_or(InfoError::Malformed("Signal is not a DTMF key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRng;

    const RELAY: &str = "application/dtmf-relay";

    fn digit(key: char, duration_ms: Option<u32>) -> Result<InfoDigit, InfoError> {
        Ok(InfoDigit { key, duration_ms })
    }

    #[test]
    fn twinkle_body_as_captured() {
        // Twinkle 1.10.2 with dtmf_transport=info, Content-Length: 24.
        assert_eq!(
            parse_info(RELAY, b"Signal=1\r\nDuration=100\r\n"),
            digit('1', Some(100))
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=*\r\nDuration=100\r\n"),
            digit('*', Some(100))
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=#\r\nDuration=100\r\n"),
            digit('#', Some(100))
        );
    }

    #[test]
    fn cisco_style_with_spaces_after_equals() {
        assert_eq!(
            parse_info(RELAY, b"Signal= 5\r\nDuration= 160\r\n"),
            digit('5', Some(160))
        );
        assert_eq!(
            parse_info(RELAY, b"Signal = 5 \r\nDuration = 160 \r\n"),
            digit('5', Some(160))
        );
    }

    #[test]
    fn asterisk_and_freeswitch_style() {
        // Asterisk: "Signal=%c\r\nDuration=%u\r\n"; FreeSWITCH the same keys.
        assert_eq!(
            parse_info(RELAY, b"Signal=9\r\nDuration=250\r\n"),
            digit('9', Some(250))
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=D\r\nDuration=2000\r\n"),
            digit('D', Some(2000))
        );
    }

    #[test]
    fn lf_only_no_trailing_newline_and_any_case() {
        assert_eq!(
            parse_info(RELAY, b"signal=3\nduration=80"),
            digit('3', Some(80))
        );
        assert_eq!(
            parse_info(RELAY, b"SIGNAL=b\nDURATION=80\n"),
            digit('B', Some(80))
        );
    }

    #[test]
    fn duration_is_optional_and_lenient() {
        assert_eq!(parse_info(RELAY, b"Signal=4\r\n"), digit('4', None));
        assert_eq!(
            parse_info(RELAY, b"Signal=4\r\nDuration=\r\n"),
            digit('4', None)
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=4\r\nDuration=long\r\n"),
            digit('4', None)
        );
    }

    #[test]
    fn event_numbers_for_star_hash_and_letters() {
        assert_eq!(
            parse_info(RELAY, b"Signal=10\r\nDuration=100\r\n"),
            digit('*', Some(100))
        );
        assert_eq!(parse_info(RELAY, b"Signal=11\r\n"), digit('#', None));
        assert_eq!(parse_info(RELAY, b"Signal=12\r\n"), digit('A', None));
        assert_eq!(parse_info(RELAY, b"Signal=15\r\n"), digit('D', None));
        assert_eq!(parse_info(RELAY, b"Signal=07\r\n"), digit('7', None));
    }

    #[test]
    fn extra_lines_are_ignored_and_repeated_signal_must_agree() {
        assert_eq!(
            parse_info(RELAY, b"Signal=6\r\nDuration=100\r\nVolume=10\r\n\r\n"),
            digit('6', Some(100))
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=6\r\nSignal=6\r\n"),
            digit('6', None)
        );
        assert_eq!(
            parse_info(RELAY, b"Signal=6\r\nSignal=7\r\n"),
            Err(InfoError::Malformed("conflicting Signal lines"))
        );
    }

    #[test]
    fn content_type_parameters_and_case() {
        assert_eq!(
            parse_info("Application/DTMF-Relay; charset=UTF-8", b"Signal=0\r\n"),
            digit('0', None)
        );
        assert_eq!(parse_info("  application/dtmf ", b"0"), digit('0', None));
        assert!(is_dtmf_content_type("application/dtmf-relay"));
        assert!(is_dtmf_content_type("APPLICATION/DTMF;foo=bar"));
        assert!(!is_dtmf_content_type("application/dtmf-relayx"));
        assert!(!is_dtmf_content_type("application/media_control+xml"));
        assert!(!is_dtmf_content_type(""));
    }

    #[test]
    fn application_dtmf_bare_key_or_event_number() {
        let ct = "application/dtmf";
        assert_eq!(parse_info(ct, b"5"), digit('5', None));
        assert_eq!(parse_info(ct, b"5\r\n"), digit('5', None));
        assert_eq!(parse_info(ct, b" # "), digit('#', None));
        assert_eq!(parse_info(ct, b"c"), digit('C', None));
        assert_eq!(parse_info(ct, b"10"), digit('*', None));
        assert_eq!(parse_info(ct, b"11\n"), digit('#', None));
        // A relay-style body under the wrong type is still read.
        assert_eq!(
            parse_info(ct, b"Signal=8\r\nDuration=100\r\n"),
            digit('8', Some(100))
        );
    }

    #[test]
    fn other_body_types_are_unsupported() {
        for ct in [
            "application/media_control+xml",
            "text/plain",
            "application/sdp",
            "",
            "application/json; x=1",
        ] {
            let err = parse_info(ct, b"Signal=1\r\n").unwrap_err();
            assert!(
                matches!(err, InfoError::UnsupportedType(_)),
                "{ct}: {err:?}"
            );
        }
        assert_eq!(
            parse_info("Text/Plain; charset=x", b"1"),
            Err(InfoError::UnsupportedType("Text/Plain".into()))
        );
        assert_eq!(
            InfoError::UnsupportedType("text/plain".into()).to_string(),
            "unsupported INFO body type text/plain"
        );
    }

    #[test]
    fn broken_bodies_are_malformed() {
        let cases: &[(&str, &[u8])] = &[
            (RELAY, b""),
            (RELAY, b"\r\n\r\n"),
            (RELAY, b"Duration=100\r\n"),
            (RELAY, b"Signal=\r\n"),
            (RELAY, b"Signal=E\r\n"),
            (RELAY, b"Signal=!\r\n"), // hook flash: not a key
            (RELAY, b"Signal=16\r\n"),
            (RELAY, b"Signal=12345678901234567890\r\n"),
            (RELAY, b"Signal=-1\r\n"),
            (RELAY, b"Signal=55\r\n"),
            (RELAY, b"Signal 5\r\n"),
            (RELAY, b"Signal=\xff\r\n"),
            ("application/dtmf", b""),
            ("application/dtmf", b"12 3"),
            ("application/dtmf", b"x"),
        ];
        for (ct, body) in cases {
            let r = parse_info(ct, body);
            assert!(
                matches!(r, Err(InfoError::Malformed(_))),
                "{ct} {body:?}: {r:?}"
            );
        }
        let long = [b'1'; MAX_BODY + 1];
        assert_eq!(
            parse_info("application/dtmf", &long),
            Err(InfoError::Malformed("body too long"))
        );
        assert_eq!(
            InfoError::Malformed("no Signal").to_string(),
            "malformed DTMF INFO body: no Signal"
        );
    }

    #[test]
    fn every_key_round_trips_through_both_formats() {
        for key in super::super::KEYS {
            let body = format!("Signal={key}\r\nDuration=100\r\n");
            assert_eq!(parse_info(RELAY, body.as_bytes()), digit(key, Some(100)));
            let lower = key.to_ascii_lowercase().to_string();
            assert_eq!(
                parse_info("application/dtmf", lower.as_bytes()),
                digit(key, None)
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = TestRng::new(0x1234_5678_9abc_def0);
        const ALPHABET: &[u8] = b"Signal=Duration10#*aD\r\n =\xff";
        let mut buf = [0u8; 40];
        for _ in 0..20_000 {
            let len = rng.index(41);
            for b in buf[..len].iter_mut() {
                *b = rng.pick(ALPHABET);
            }
            let _ = parse_info(RELAY, &buf[..len]);
            let _ = parse_info("application/dtmf", &buf[..len]);
        }
    }
}
