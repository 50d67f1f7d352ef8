//! The join page's session: a signed cookie, no server-side state.
//!
//! The cookie holds the participant id, the verification id, the stage
//! (code sent / verified) and an expiry, HMAC-SHA256-signed under the key
//! in `[http] cookie_key_file`. It never holds the code: knowing the cookie
//! lets nobody skip a step, and changing any part of it breaks the
//! signature. Pure: time comes in as a parameter.
//!
//! Value: `1.<stage>.<participant id>.<verification id>.<expiry ms>.<mac hex>`
//! (only characters allowed in a cookie value without quoting).

use subtle::ConstantTimeEq;

use crate::verify::key::ServerKey;

/// The cookie's name.
pub const COOKIE: &str = "pb_join";
/// Where the browser sends it: the join API only.
pub const COOKIE_PATH: &str = "/join";
const VERSION: &str = "1";
/// Domain separation: a MAC made for anything else under the same key can
/// never pass for a session.
const CONTEXT: &[u8] = b"pinbridge join session";
/// No real cookie comes near this; longer values are refused unparsed.
const MAX_VALUE_LEN: usize = 256;

/// How far the participant has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A code was sent; the next step is to enter it.
    CodeSent,
    /// The code was right; dial-in codes may be issued.
    Verified,
}

impl Stage {
    fn tag(self) -> &'static str {
        match self {
            Stage::CodeSent => "c",
            Stage::Verified => "v",
        }
    }

    fn from_tag(s: &str) -> Option<Stage> {
        match s {
            "c" => Some(Stage::CodeSent),
            "v" => Some(Stage::Verified),
            _ => None,
        }
    }
}

/// A session as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub stage: Stage,
    /// The verified participant; 0 at the code stage, where the
    /// verification names the participant (so the cookie of a username
    /// nobody has looks like any other).
    pub participant_id: i64,
    pub verification_id: String,
    /// Unix ms after which the session is over.
    pub expires_ms: i64,
}

/// Why a cookie does not give a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// No cookie (or none of ours).
    Missing,
    /// Malformed, or the signature does not match: tampered, or made under
    /// another key.
    Invalid,
    /// Genuine but past its expiry; the stage it was at.
    Expired(Stage),
}

/// Signs and checks session cookies.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    key: ServerKey,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Verification ids are ours: `VE` and hex. Anything else is refused
/// before it goes near the MAC or the database.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SessionKeys {
    pub fn new(key: ServerKey) -> SessionKeys {
        SessionKeys { key }
    }

    fn mac(&self, stage: Stage, pid: &str, vid: &str, exp: &str) -> [u8; 32] {
        self.key.mac(&[
            CONTEXT,
            VERSION.as_bytes(),
            stage.tag().as_bytes(),
            pid.as_bytes(),
            vid.as_bytes(),
            exp.as_bytes(),
        ])
    }

    /// The cookie value for a session.
    pub fn encode(&self, s: &Session) -> String {
        let pid = s.participant_id.to_string();
        let exp = s.expires_ms.to_string();
        let mac = self.mac(s.stage, &pid, &s.verification_id, &exp);
        format!(
            "{VERSION}.{}.{pid}.{}.{exp}.{}",
            s.stage.tag(),
            s.verification_id,
            hex(&mac)
        )
    }

    /// Checks a cookie value: well formed, signed by us, not expired at
    /// `now`.
    pub fn decode(&self, value: &str, now: i64) -> Result<Session, SessionError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(SessionError::Invalid);
        }
        let parts: Vec<&str> = value.split('.').collect();
        let [version, stage, pid, vid, exp, mac] = parts.as_slice() else {
            return Err(SessionError::Invalid);
        };
        if *version != VERSION {
            return Err(SessionError::Invalid);
        }
        let stage = Stage::from_tag(stage).ok_or(SessionError::Invalid)?;
        let mac = unhex32(mac).ok_or(SessionError::Invalid)?;
        let want = self.mac(stage, pid, vid, exp);
        if !bool::from(want.ct_eq(&mac)) {
            return Err(SessionError::Invalid);
        }
        // Signed by us, so well formed; parse anyway rather than trust it.
        let participant_id: i64 = pid.parse().map_err(|_| SessionError::Invalid)?;
        let expires_ms: i64 = exp.parse().map_err(|_| SessionError::Invalid)?;
        if !plausible_id(vid) {
            return Err(SessionError::Invalid);
        }
        if now >= expires_ms {
            return Err(SessionError::Expired(stage));
        }
        Ok(Session {
            stage,
            participant_id,
            verification_id: vid.to_string(),
            expires_ms,
        })
    }

    /// Finds our cookie among the `Cookie` header values and checks it. With
    /// several of ours (an old path, a stale copy), the first good one wins;
    /// otherwise the most telling error.
    pub fn from_cookie_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a str>,
        now: i64,
    ) -> Result<Session, SessionError> {
        let mut err = SessionError::Missing;
        for header in headers {
            for pair in header.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name.trim() != COOKIE {
                    continue;
                }
                match self.decode(value.trim().trim_matches('"'), now) {
                    Ok(s) => return Ok(s),
                    Err(e @ SessionError::Expired(_)) => err = e,
                    Err(e) if err == SessionError::Missing => err = e,
                    Err(_) => {}
                }
            }
        }
        Err(err)
    }
}

/// The `Set-Cookie` value that stores a session until its expiry.
/// `secure` adds `Secure` (the page was reached over HTTPS).
pub fn set_cookie(value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age_secs.max(1),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn keys(b: u8) -> SessionKeys {
        SessionKeys::new(ServerKey::from_bytes([b; 32]))
    }

    fn session() -> Session {
        Session {
            stage: Stage::CodeSent,
            participant_id: 42,
            verification_id: "VE0123456789abcdef0123456789abcdef".into(),
            expires_ms: T0 + 600_000,
        }
    }

    #[test]
    fn round_trip() {
        let k = keys(1);
        let v = k.encode(&session());
        assert!(v.starts_with("1.c.42.VE0123"), "{v}");
        assert_eq!(k.decode(&v, T0), Ok(session()));
        let verified = Session {
            stage: Stage::Verified,
            ..session()
        };
        assert_eq!(k.decode(&k.encode(&verified), T0), Ok(verified));
        // Only cookie-safe characters.
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
    }

    #[test]
    fn expiry() {
        let k = keys(1);
        let v = k.encode(&session());
        assert!(k.decode(&v, T0 + 599_999).is_ok());
        assert_eq!(
            k.decode(&v, T0 + 600_000),
            Err(SessionError::Expired(Stage::CodeSent))
        );
    }

    #[test]
    fn any_change_breaks_it() {
        let k = keys(1);
        let v = k.encode(&session());
        // Every part changed in turn: stage, participant, verification,
        // expiry, and the MAC itself.
        let parts: Vec<&str> = v.split('.').collect();
        let variants = [
            (1, "v"),
            (2, "43"),
            (3, "VE0123456789abcdef0123456789abcdee"),
            (4, "99999999999999"),
            (5, &"0".repeat(64)),
        ];
        for (i, new) in variants {
            let mut p = parts.clone();
            p[i] = new;
            assert_eq!(
                k.decode(&p.join("."), T0),
                Err(SessionError::Invalid),
                "part {i}"
            );
        }
        // Another key.
        assert_eq!(keys(2).decode(&v, T0), Err(SessionError::Invalid));
        // Garbage.
        for bad in [
            "",
            "1",
            "2.c.42.VE1.1.00",
            "1.x.42.VE1.1.00",
            "1.c.42.VE1.1",
            &"a".repeat(10_000),
            "1.c.42.VE1.1.zz",
            "1.c.4.2.VE1.1.00",
        ] {
            assert_eq!(k.decode(bad, T0), Err(SessionError::Invalid), "{bad}");
        }
    }

    #[test]
    fn found_among_other_cookies() {
        let k = keys(1);
        let v = k.encode(&session());
        let header = format!("theme=dark; {COOKIE}={v}; other=1");
        assert_eq!(k.from_cookie_headers([header.as_str()], T0), Ok(session()));
        assert_eq!(
            k.from_cookie_headers(["theme=dark"], T0),
            Err(SessionError::Missing)
        );
        assert_eq!(
            k.from_cookie_headers(std::iter::empty(), T0),
            Err(SessionError::Missing)
        );
        let bad = format!("{COOKIE}=nonsense");
        assert_eq!(
            k.from_cookie_headers([bad.as_str()], T0),
            Err(SessionError::Invalid)
        );
        // A stale copy next to a good one.
        let both = format!("{COOKIE}=nonsense; {COOKIE}={v}");
        assert_eq!(k.from_cookie_headers([both.as_str()], T0), Ok(session()));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("abc", 600, false);
        assert_eq!(
            c,
            "pb_join=abc; Path=/join; Max-Age=600; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("abc", 600, true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
