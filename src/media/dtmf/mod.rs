//! DTMF from every kind of caller: RFC 4733 telephone-events
//! ([`rfc4733`]), in-band tones found by a Goertzel detector ([`inband`])
//! and SIP INFO bodies ([`info`]). Each is a sans-I/O core: packets or
//! samples and their time in, digits out.

pub mod capture;
pub mod inband;
pub mod info;
pub mod rfc4733;

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfMethod {
    Rfc4733,
    Inband,
    Info,
}

impl DtmfMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfMethod::Rfc4733 => "rfc4733",
            DtmfMethod::Inband => "inband",
            DtmfMethod::Info => "info",
        }
    }
}

/// The 16 DTMF keys in RFC 4733 event-code order (0–9, *, #, A–D).
pub const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// RFC 4733 event code (0–15) to key.
pub fn event_to_key(code: u8) -> Option<char> {
    KEYS.get(usize::from(code)).copied()
}

/// Key to RFC 4733 event code; accepts lower-case a–d.
pub fn key_to_event(key: char) -> Option<u8> {
    let k = key.to_ascii_uppercase();
    KEYS.iter().position(|&c| c == k).map(|i| i as u8)
}

/// Which DTMF methods a call listens to (config `dtmf_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// All three. In-band detection runs only until the caller has sent an
    /// RFC 4733 event (a phone that sends events does not need, and should
    /// not pay for, tone detection), and a press reported by two methods is
    /// reported once.
    #[default]
    Auto,
    Rfc4733,
    Inband,
    Info,
}

impl DtmfMode {
    pub fn from_name(s: &str) -> Option<DtmfMode> {
        match s {
            "auto" => Some(DtmfMode::Auto),
            "rfc4733" | "rfc2833" => Some(DtmfMode::Rfc4733),
            "inband" => Some(DtmfMode::Inband),
            "info" => Some(DtmfMode::Info),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for code in 0..16u8 {
            assert_eq!(key_to_event(event_to_key(code).unwrap()), Some(code));
        }
        assert_eq!(event_to_key(16), None);
        assert_eq!(key_to_event('b'), Some(13));
        assert_eq!(key_to_event('x'), None);
    }
}
