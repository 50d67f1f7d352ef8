//! HTTP Digest authentication, client side, as SIP uses it (RFC 3261 §22,
//! RFC 7616, RFC 8760 for the SHA-2 algorithms; RFC 2617 and RFC 2069
//! servers are answered too).
//!
//! Pure functions and one small state holder, no I/O: [`parse_challenges`]
//! reads `WWW-Authenticate` / `Proxy-Authenticate` values, [`choose`] picks
//! the strongest usable challenge, [`authorization`] computes the
//! `Authorization` / `Proxy-Authorization` value, and [`DigestClient`]
//! remembers what was answered so that a request is retried once per
//! challenge and no more.
//!
//! Supported: algorithms MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256
//! and SHA-512-256-sess; `qop=auth` (or no qop, RFC 2069); `userhash`;
//! `stale`; `opaque`. Not supported: `qop=auth-int` (a challenge offering
//! only that is refused with [`ChallengeError::UnsupportedQop`]).
//!
//! Two refusals protect the password from someone between us and the
//! trunk who rewrites challenges:
//!
//! - **Downgrade.** Of several challenges the strongest is answered, and a
//!   caller that remembers the strongest algorithm a peer has offered
//!   passes it as a floor ([`ChallengePolicy::floor`]): a challenge set
//!   whose best is weaker (MD5 after SHA-256) is refused with
//!   [`ChallengeError::Downgrade`] instead of handing out an MD5 response,
//!   which is cheap to brute-force offline. The user agent keeps that floor
//!   per peer address for the life of the process.
//! - **Realm.** With [`Credentials::realm`] set, only challenges for that
//!   realm are answered ([`ChallengeError::ForeignRealm`] otherwise), so the
//!   password never answers a realm it was not meant for.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::message::Headers;

/// A digest algorithm (RFC 7616 §6.1, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl Algorithm {
    /// Algorithm names are case-insensitive.
    pub fn from_token(s: &str) -> Option<Algorithm> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Preference when a server offers several challenges (RFC 8760 §2.4:
    /// the client uses the strongest it supports), and the order in which
    /// a weaker one is a downgrade. The `-sess` variants rank with their
    /// hash.
    pub fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }

    /// `H(data)` as lower-case hex.
    fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex(&Sha512_256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One Digest challenge, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth` (we then answer with qop, cnonce and
    /// nonce-count); false for RFC 2069 servers that offer no qop.
    pub qop_auth: bool,
    /// The previous request was refused only because its nonce was stale:
    /// retrying with the same credentials is expected to work.
    pub stale: bool,
    /// RFC 7616 §3.4.4: send the username hashed.
    pub userhash: bool,
    /// Whether the server wrote `algorithm=` (echoed back only if so).
    algorithm_given: bool,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("realm", &self.realm)
            .field("algorithm", &self.algorithm)
            .field("qop_auth", &self.qop_auth)
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("not a Digest challenge (scheme {0})")]
    NotDigest(String),
    #[error("malformed challenge: {0}")]
    Malformed(&'static str),
    #[error("challenge without {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("server offers only qop={0}, and only qop=auth is supported")]
    UnsupportedQop(String),
    /// The challenge is for another realm than the configured one.
    #[error("challenge for realm {0:?}, not the configured realm")]
    ForeignRealm(String),
    /// The best challenge offered is weaker than what this peer offered
    /// before.
    #[error("{offered} refused as a downgrade: this peer has offered {floor}")]
    Downgrade {
        offered: Algorithm,
        floor: Algorithm,
    },
}

/// What a client requires of a challenge beyond being usable.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChallengePolicy<'a> {
    /// Answer only challenges for this realm.
    pub realm: Option<&'a str>,
    /// Refuse a best challenge weaker than this (by
    /// [`Algorithm::strength`]): the strongest the peer has offered before.
    pub floor: Option<Algorithm>,
}

/// `auth-param` names and values of one challenge as written (quoted
/// strings unescaped).
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

/// A tiny scanner over a header value.
struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

impl<'a> Scan<'a> {
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(self.since(start)).into_owned())
    }

    /// A quoted-string after the opening quote has been seen.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => match self.peek() {
                    Some(n) => {
                        out.push(n);
                        self.i += 1;
                    }
                    None => break,
                },
                _ => out.push(c),
            }
        }
        Err(ChallengeError::Malformed("unterminated quoted string"))
    }

    /// An unquoted value: leniently anything up to a comma or space (some
    /// servers send unquoted nonces with `/` or `=` in them).
    fn bare(&mut self) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| !matches!(c, b',' | b' ' | b'\t'))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(self.since(start)).into_owned()
    }

    /// The bytes scanned since `start` (empty if `start` is past them).
    fn since(&self, start: usize) -> &'a [u8] {
        self.s.get(start..self.i).unwrap_or_default()
    }
}

/// Splits one header value into challenges (a value may hold several:
/// `Digest realm="a", nonce="1", Digest realm="b", ...`).
fn split_challenges(value: &str) -> Result<Vec<RawChallenge>, ChallengeError> {
    let mut sc = Scan {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out: Vec<RawChallenge> = Vec::new();
    loop {
        sc.skip_ws_and_commas();
        if sc.done() {
            break;
        }
        let name = sc.token().ok_or(ChallengeError::Malformed(
            "expected a scheme or parameter name",
        ))?;
        sc.skip_ws();
        if sc.peek() == Some(b'=') {
            sc.i += 1;
            sc.skip_ws();
            let v = if sc.peek() == Some(b'"') {
                sc.quoted()?
            } else {
                sc.bare()
            };
            let current = out
                .last_mut()
                .ok_or(ChallengeError::Malformed("parameter before the scheme"))?;
            if current
                .params
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                return Err(ChallengeError::Malformed("repeated parameter"));
            }
            current.params.push((name, v));
        } else {
            out.push(RawChallenge {
                scheme: name,
                params: Vec::new(),
            });
        }
    }
    if out.is_empty() {
        return Err(ChallengeError::Malformed("empty challenge"));
    }
    Ok(out)
}

fn validate(raw: RawChallenge) -> Result<Challenge, ChallengeError> {
    if !raw.scheme.eq_ignore_ascii_case("Digest") {
        return Err(ChallengeError::NotDigest(raw.scheme));
    }
    let get = |name: &str| {
        raw.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let realm = get("realm").ok_or(ChallengeError::Missing("realm"))?;
    let nonce = get("nonce").ok_or(ChallengeError::Missing("nonce"))?;
    if nonce.is_empty() {
        return Err(ChallengeError::Missing("nonce"));
    }
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(a.trim())
            .ok_or_else(|| ChallengeError::UnsupportedAlgorithm(a.to_string()))?,
    };
    let qop_auth = match get("qop") {
        None => false,
        Some(list) => {
            let offered: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .collect();
            if offered.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
                true
            } else if offered.is_empty() {
                false
            } else {
                return Err(ChallengeError::UnsupportedQop(offered.join(",")));
            }
        }
    };
    let flag = |name: &str| get(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok(Challenge {
        realm: realm.to_string(),
        nonce: nonce.to_string(),
        opaque: get("opaque").map(str::to_string),
        algorithm,
        qop_auth,
        stale: flag("stale"),
        userhash: flag("userhash"),
        algorithm_given: get("algorithm").is_some(),
    })
}

/// Every challenge in one header value, each validated on its own.
pub fn parse_challenges(value: &str) -> Vec<Result<Challenge, ChallengeError>> {
    match split_challenges(value) {
        Ok(raws) => raws.into_iter().map(validate).collect(),
        Err(e) => vec![Err(e)],
    }
}

/// Exactly one Digest challenge.
pub fn parse_challenge(value: &str) -> Result<Challenge, ChallengeError> {
    let mut all = parse_challenges(value);
    match all.len() {
        1 => all.remove(0),
        _ => Err(ChallengeError::Malformed("expected exactly one challenge")),
    }
}

/// The strongest usable Digest challenge among header values (several
/// `WWW-Authenticate` fields, or several challenges in one). When none is
/// usable, the most telling error: a Digest problem rather than "not
/// Digest".
pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, ChallengeError> {
    choose_with(values, ChallengePolicy::default())
}

/// [`choose`] under a policy: challenges for other realms than
/// `policy.realm` are skipped, and the best one left must be at least as
/// strong as `policy.floor`.
pub fn choose_with<'a>(
    values: impl IntoIterator<Item = &'a str>,
    policy: ChallengePolicy<'_>,
) -> Result<Challenge, ChallengeError> {
    let mut best: Option<Challenge> = None;
    let mut error: Option<ChallengeError> = None;
    let mut foreign: Option<String> = None;
    for v in values {
        for r in parse_challenges(v) {
            match r {
                Ok(c) if policy.realm.is_some_and(|want| want != c.realm) => {
                    foreign.get_or_insert(c.realm);
                }
                Ok(c) => {
                    if best
                        .as_ref()
                        .is_none_or(|b| c.algorithm.strength() > b.algorithm.strength())
                    {
                        best = Some(c);
                    }
                }
                Err(e) => {
                    let replace = match (&error, &e) {
                        (None, _) => true,
                        (Some(ChallengeError::NotDigest(_)), f) => {
                            !matches!(f, ChallengeError::NotDigest(_))
                        }
                        _ => false,
                    };
                    if replace {
                        error = Some(e);
                    }
                }
            }
        }
    }
    let best = match (best, foreign) {
        (Some(b), _) => b,
        // A usable challenge for the wrong realm says more than a problem
        // with another one.
        (None, Some(realm)) => return Err(ChallengeError::ForeignRealm(realm)),
        (None, None) => return Err(error.unwrap_or(ChallengeError::Missing("a challenge"))),
    };
    match policy.floor {
        Some(floor) if best.algorithm.strength() < floor.strength() => {
            Err(ChallengeError::Downgrade {
                offered: best.algorithm,
                floor,
            })
        }
        _ => Ok(best),
    }
}

/// A username and password for a trunk or registrar. The password never
/// appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Answer only challenges for this realm (`[trunk] realm`); None
    /// answers any realm.
    pub realm: Option<String>,
}

impl Credentials {
    /// Credentials that answer any realm.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
            realm: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// The request being authorised.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub method: &'a str,
    /// The digest-uri: the Request-URI of the request as sent.
    pub uri: &'a str,
    /// Client nonce: random, at least 64 bits, no `"` or `\`.
    pub cnonce: &'a str,
    /// Nonce count: how many requests this nonce has now been used for.
    pub nc: u32,
}

/// The `response` value (lower-case hex) for a challenge (RFC 7616 §3.4.1).
pub fn response(ch: &Challenge, creds: &Credentials, input: &DigestInput<'_>) -> String {
    let alg = ch.algorithm;
    let a1 = format!("{}:{}:{}", creds.username, ch.realm, creds.password);
    let mut ha1 = alg.hash(a1.as_bytes());
    if alg.is_sess() {
        ha1 = alg.hash(format!("{ha1}:{}:{}", ch.nonce, input.cnonce).as_bytes());
    }
    let ha2 = alg.hash(format!("{}:{}", input.method, input.uri).as_bytes());
    let data = if ch.qop_auth {
        format!(
            "{ha1}:{}:{:08x}:{}:auth:{ha2}",
            ch.nonce, input.nc, input.cnonce
        )
    } else {
        format!("{ha1}:{}:{ha2}", ch.nonce)
    };
    alg.hash(data.as_bytes())
}

/// `"` and `\` escaped for a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `Authorization` / `Proxy-Authorization` header value.
pub fn authorization(ch: &Challenge, creds: &Credentials, input: &DigestInput<'_>) -> String {
    let username = if ch.userhash {
        ch.algorithm
            .hash(format!("{}:{}", creds.username, ch.realm).as_bytes())
    } else {
        creds.username.clone()
    };
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}",
        quote(&username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(input.uri),
        quote(&response(ch, creds, input)),
    );
    if ch.algorithm_given || ch.algorithm != Algorithm::Md5 {
        v.push_str(", algorithm=");
        v.push_str(ch.algorithm.as_str());
    }
    if ch.qop_auth || ch.algorithm.is_sess() {
        v.push_str(", cnonce=");
        v.push_str(&quote(input.cnonce));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(", opaque=");
        v.push_str(&quote(o));
    }
    if ch.qop_auth {
        v.push_str(&format!(", qop=auth, nc={:08x}", input.nc));
    }
    if ch.userhash {
        v.push_str(", userhash=true");
    }
    v
}

/// Why a challenged request is not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the response carries no challenge")]
    NoChallenge,
    #[error("no usable challenge: {0}")]
    Unusable(#[from] ChallengeError),
    #[error("credentials refused for realm {realm}")]
    Rejected { realm: String },
    #[error("gave up after {0} challenges")]
    TooManyAttempts(u8),
}

/// How many challenges one request may answer before we give up (a server
/// that keeps saying `stale=true` must not loop us forever).
const MAX_ATTEMPTS: u8 = 4;

#[derive(Debug, Clone)]
struct Answer {
    proxy: bool,
    challenge: Challenge,
    nc: u32,
}

/// The authentication state of one request and its retries: the challenges
/// received so far (one per realm and kind, each answered on every retry,
/// so a proxy's and a registrar's credentials travel together) and which
/// realms were already answered, so that a second challenge for the same
/// realm without `stale=true` means the credentials are wrong.
#[derive(Debug, Clone)]
pub struct DigestClient {
    credentials: Credentials,
    answers: Vec<Answer>,
    /// (proxy, realm) answered during this request's life.
    tried: Vec<(bool, String)>,
    attempts: u8,
}

impl DigestClient {
    pub fn new(credentials: Credentials) -> Self {
        DigestClient {
            credentials,
            answers: Vec::new(),
            tried: Vec::new(),
            attempts: 0,
        }
    }

    /// A client for the next request of the same kind (a REGISTER refresh)
    /// that answers the known challenges pre-emptively with the next nonce
    /// count; a challenge to it is then always worth one retry.
    pub fn carry_over(&self) -> DigestClient {
        DigestClient {
            credentials: self.credentials.clone(),
            answers: self.answers.clone(),
            tried: Vec::new(),
            attempts: 0,
        }
    }

    pub fn has_answers(&self) -> bool {
        !self.answers.is_empty()
    }

    /// Takes a 401 or 407. `Ok` means: send the request again with
    /// [`DigestClient::headers`]; it holds the algorithm that will answer
    /// (the strongest this peer offered: the caller's next `floor`).
    /// `floor` is the strongest algorithm this peer has offered before; a
    /// weaker best challenge is refused as a downgrade.
    pub fn on_challenge(
        &mut self,
        status: u16,
        headers: &Headers,
        floor: Option<Algorithm>,
    ) -> Result<Algorithm, AuthError> {
        let (name, proxy) = match status {
            401 => ("WWW-Authenticate", false),
            407 => ("Proxy-Authenticate", true),
            _ => return Err(AuthError::NoChallenge),
        };
        if headers.count(name) == 0 {
            return Err(AuthError::NoChallenge);
        }
        let policy = ChallengePolicy {
            realm: self.credentials.realm.as_deref(),
            floor,
        };
        let ch = choose_with(headers.get_all(name), policy)?;
        let algorithm = ch.algorithm;
        if self.attempts >= MAX_ATTEMPTS {
            return Err(AuthError::TooManyAttempts(self.attempts));
        }
        self.attempts += 1;
        let key = (proxy, ch.realm.clone());
        if self.tried.contains(&key) && !ch.stale {
            return Err(AuthError::Rejected { realm: ch.realm });
        }
        if !self.tried.contains(&key) {
            self.tried.push(key);
        }
        let answer = Answer {
            proxy,
            challenge: ch,
            nc: 0,
        };
        match self
            .answers
            .iter_mut()
            .find(|a| a.proxy == proxy && a.challenge.realm == answer.challenge.realm)
        {
            Some(a) => *a = answer,
            None => self.answers.push(answer),
        }
        Ok(algorithm)
    }

    /// The authorization headers for the next send of the request, each
    /// nonce's count advanced.
    pub fn headers(
        &mut self,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Vec<(&'static str, String)> {
        let creds = &self.credentials;
        self.answers
            .iter_mut()
            .map(|a| {
                a.nc = a.nc.wrapping_add(1);
                let input = DigestInput {
                    method,
                    uri,
                    cnonce,
                    nc: a.nc,
                };
                let name = if a.proxy {
                    "Proxy-Authorization"
                } else {
                    "Authorization"
                };
                (name, authorization(&a.challenge, creds, &input))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRng;

    /// Pulls `name=value` out of an Authorization value (test helper).
    #[allow(clippy::string_slice)]
    fn field(v: &str, name: &str) -> Option<String> {
        let at = v.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &v[at..];
        Some(if let Some(r) = rest.strip_prefix('"') {
            r[..r.find('"')?].to_string()
        } else {
            rest.split(',').next()?.trim().to_string()
        })
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn mufasa(password: &str) -> Credentials {
        Credentials::new("Mufasa", password)
    }

    #[test]
    fn rfc7616_sha256_example() {
        let ch = parse_challenge(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
        .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.qop_auth);
        let input = DigestInput {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: RFC7616_CNONCE,
            nc: 1,
        };
        assert_eq!(
            response(&ch, &mufasa("Circle of Life"), &input),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let v = authorization(&ch, &mufasa("Circle of Life"), &input);
        assert_eq!(field(&v, "nc").as_deref(), Some("00000001"));
        assert_eq!(field(&v, "qop").as_deref(), Some("auth"));
        assert_eq!(field(&v, "algorithm").as_deref(), Some("SHA-256"));
        assert_eq!(field(&v, "opaque").as_deref(), Some(RFC7616_OPAQUE));
    }

    #[test]
    fn rfc7616_md5_example() {
        let ch = parse_challenge(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=MD5, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
        .unwrap();
        let input = DigestInput {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: RFC7616_CNONCE,
            nc: 1,
        };
        assert_eq!(
            response(&ch, &mufasa("Circle of Life"), &input),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc2617_example() {
        let ch = parse_challenge(
            "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let input = DigestInput {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: "0a4f113b",
            nc: 1,
        };
        assert_eq!(
            response(&ch, &mufasa("Circle Of Life"), &input),
            "6629fae49393a05397450978507c4ef1"
        );
        let v = authorization(&ch, &mufasa("Circle Of Life"), &input);
        assert!(!v.contains("algorithm="), "not echoed when not given: {v}");
        assert_eq!(field(&v, "cnonce").as_deref(), Some("0a4f113b"));
    }

    #[test]
    fn rfc2069_without_qop_has_no_cnonce() {
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert!(!ch.qop_auth);
        let c = Credentials::new("u", "p");
        let input = DigestInput {
            method: "INVITE",
            uri: "sip:a@b",
            cnonce: "x",
            nc: 1,
        };
        let ha1 = Algorithm::Md5.hash(b"u:r:p");
        let ha2 = Algorithm::Md5.hash(b"INVITE:sip:a@b");
        assert_eq!(
            response(&ch, &c, &input),
            Algorithm::Md5.hash(format!("{ha1}:n:{ha2}").as_bytes())
        );
        let v = authorization(&ch, &c, &input);
        assert!(!v.contains("cnonce") && !v.contains("nc="), "{v}");
    }

    #[test]
    fn sess_variants_hash_the_nonces_into_ha1() {
        let ch = parse_challenge(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256-sess",
        )
        .unwrap();
        let c = Credentials::new("u", "p");
        let input = DigestInput {
            method: "REGISTER",
            uri: "sip:r",
            cnonce: "cn",
            nc: 2,
        };
        let a = Algorithm::Sha256;
        let ha1 = a.hash(format!("{}:n:cn", a.hash(b"u:r:p")).as_bytes());
        let ha2 = a.hash(b"REGISTER:sip:r");
        assert_eq!(
            response(&ch, &c, &input),
            a.hash(format!("{ha1}:n:00000002:cn:auth:{ha2}").as_bytes())
        );
    }

    #[test]
    fn userhash_sends_the_hashed_username() {
        let ch = parse_challenge(
            "Digest realm=\"api@example.org\", qop=auth, algorithm=SHA-512-256, nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, userhash=true",
        )
        .unwrap();
        let v = authorization(
            &ch,
            &Credentials::new("J\u{e4}s\u{f8}n Doe", "Secret, or not?"),
            &DigestInput {
                method: "GET",
                uri: "/doe.json",
                cnonce: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
                nc: 1,
            },
        );
        // RFC 7616 §3.9.2.
        assert_eq!(
            field(&v, "username").as_deref(),
            Some("793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b")
        );
        assert_eq!(
            field(&v, "response").as_deref(),
            Some("3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5")
        );
    }

    #[test]
    fn strongest_challenge_wins_regardless_of_order() {
        let md5 = "Digest realm=\"r\", nonce=\"a\", qop=\"auth\", algorithm=MD5";
        let sha = "Digest realm=\"r\", nonce=\"b\", qop=\"auth\", algorithm=SHA-256";
        for order in [[md5, sha], [sha, md5]] {
            assert_eq!(choose(order).unwrap().algorithm, Algorithm::Sha256);
        }
        let both = format!("{md5}, {sha}");
        assert_eq!(choose([both.as_str()]).unwrap().nonce, "b");
        // An unknown algorithm next to a known one is skipped.
        let weird = "Digest realm=\"r\", nonce=\"c\", algorithm=SHA3-512";
        assert_eq!(choose([weird, md5]).unwrap().nonce, "a");
    }

    #[test]
    fn auth_int_only_is_refused_clearly() {
        let e = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap_err();
        assert_eq!(e, ChallengeError::UnsupportedQop("auth-int".into()));
        assert!(e.to_string().contains("auth-int"));
        let e = choose([
            "Basic realm=\"x\"",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
        ])
        .unwrap_err();
        assert!(matches!(e, ChallengeError::UnsupportedQop(_)), "{e}");
    }

    #[test]
    fn malformed_challenges_are_errors_not_panics() {
        for v in [
            "",
            "Digest",
            "Digest realm=\"r\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"r, nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"\"",
            "Digest realm=\"r\", realm=\"s\", nonce=\"n\"",
            "=\"x\"",
            "Basic realm=\"x\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
            "Digest realm=\"r\\",
            "\u{0}\u{ff}Digest",
            ",,,,",
        ] {
            assert!(parse_challenge(v).is_err(), "{v:?}");
        }
        let mut rng = TestRng::new(0x9e37_79b9);
        let alphabet = "Digest realm=nonce,qop\"auth\\ \t=algorithmSHA-256".as_bytes();
        for len in 0..300 {
            let s: String = (0..len).map(|_| rng.pick(alphabet) as char).collect();
            let _ = parse_challenges(&s);
            let _ = choose([s.as_str()]);
        }
    }

    #[test]
    fn unquoted_values_and_stale_flag() {
        let ch =
            parse_challenge("digest realm=r, nonce=abc/def=, stale=TRUE, algorithm=md5").unwrap();
        assert_eq!(ch.nonce, "abc/def=");
        assert!(ch.stale);
        assert_eq!(ch.algorithm, Algorithm::Md5);
    }

    fn headers(name: &str, value: &str) -> Headers {
        let mut h = Headers::new();
        h.push(name, value);
        h
    }

    #[test]
    fn client_retries_once_per_challenge_unless_stale() {
        let creds = Credentials::new("u", "p");
        let mut c = DigestClient::new(creds);
        let h1 = headers(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"1\", qop=auth",
        );
        assert_eq!(c.on_challenge(401, &h1, None), Ok(Algorithm::Md5));
        let hs = c.headers("MESSAGE", "sip:x@y", "cn");
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].0, "Authorization");
        // The same realm again, not stale: wrong password.
        let h2 = headers(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"2\", qop=auth",
        );
        assert_eq!(
            c.on_challenge(401, &h2, None),
            Err(AuthError::Rejected { realm: "r".into() })
        );
        // Stale: retry with the new nonce.
        let mut c = DigestClient::new(Credentials::new("u", "p"));
        c.on_challenge(401, &h1, None).unwrap();
        let h3 = headers(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"3\", qop=auth, stale=true",
        );
        assert_eq!(c.on_challenge(401, &h3, None), Ok(Algorithm::Md5));
        let hs = c.headers("MESSAGE", "sip:x@y", "cn");
        assert!(hs[0].1.contains("nonce=\"3\"") && hs[0].1.contains("nc=00000001"));
        // A proxy challenge on top adds a second header.
        let p = headers("Proxy-Authenticate", "Digest realm=\"proxy\", nonce=\"p\"");
        assert_eq!(c.on_challenge(407, &p, None), Ok(Algorithm::Md5));
        let hs = c.headers("MESSAGE", "sip:x@y", "cn");
        let names: Vec<&str> = hs.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, vec!["Authorization", "Proxy-Authorization"]);
        assert!(hs[0].1.contains("nc=00000002"), "count advances per send");
        // A stale loop ends.
        for _ in 0..MAX_ATTEMPTS {
            let _ = c.on_challenge(401, &h3, None);
        }
        assert!(matches!(
            c.on_challenge(401, &h3, None),
            Err(AuthError::TooManyAttempts(_))
        ));
    }

    #[test]
    fn carried_over_client_answers_preemptively_and_may_retry() {
        let mut c = DigestClient::new(Credentials::new("u", "p"));
        let h1 = headers(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"1\", qop=auth",
        );
        c.on_challenge(401, &h1, None).unwrap();
        let _ = c.headers("REGISTER", "sip:r", "a");
        let mut next = c.carry_over();
        let hs = next.headers("REGISTER", "sip:r", "b");
        assert!(hs[0].1.contains("nc=00000002"), "{}", hs[0].1);
        assert_eq!(
            next.on_challenge(401, &h1, None),
            Ok(Algorithm::Md5),
            "one retry allowed"
        );
    }

    #[test]
    fn missing_or_foreign_challenges() {
        let mut c = DigestClient::new(Credentials::new("u", "p"));
        assert_eq!(
            c.on_challenge(401, &Headers::new(), None),
            Err(AuthError::NoChallenge)
        );
        assert_eq!(
            c.on_challenge(403, &Headers::new(), None),
            Err(AuthError::NoChallenge)
        );
        let b = headers("WWW-Authenticate", "Basic realm=\"x\"");
        assert!(matches!(
            c.on_challenge(401, &b, None),
            Err(AuthError::Unusable(ChallengeError::NotDigest(_)))
        ));
    }

    #[test]
    fn a_set_with_sha256_and_md5_is_answered_with_sha256_and_raises_the_floor() {
        let mut c = DigestClient::new(Credentials::new("u", "p"));
        let both = headers(
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"m\", qop=auth, algorithm=MD5, Digest realm=\"r\", nonce=\"s\", qop=auth, algorithm=SHA-256",
        );
        assert_eq!(c.on_challenge(401, &both, None), Ok(Algorithm::Sha256));
        let hs = c.headers("REGISTER", "sip:r", "cn");
        assert!(hs[0].1.contains("algorithm=SHA-256") && hs[0].1.contains("nonce=\"s\""));
    }

    #[test]
    fn a_weaker_best_challenge_than_the_floor_is_a_downgrade() {
        let md5 = "Digest realm=\"r\", nonce=\"a\", qop=\"auth\", algorithm=MD5";
        let md5_sess = "Digest realm=\"r\", nonce=\"a\", qop=\"auth\", algorithm=MD5-sess";
        let sha = "Digest realm=\"r\", nonce=\"b\", qop=\"auth\", algorithm=SHA-256";
        let sha512 = "Digest realm=\"r\", nonce=\"c\", qop=\"auth\", algorithm=SHA-512-256";
        let floor = |a| ChallengePolicy {
            realm: None,
            floor: Some(a),
        };
        for weak in [md5, md5_sess] {
            assert_eq!(
                choose_with([weak], floor(Algorithm::Sha256)),
                Err(ChallengeError::Downgrade {
                    offered: Algorithm::from_token(weak.rsplit('=').next().unwrap()).unwrap(),
                    floor: Algorithm::Sha256
                })
            );
        }
        // A challenge without `algorithm=` is MD5 (RFC 7616 §3.3).
        assert!(matches!(
            choose_with(
                ["Digest realm=\"r\", nonce=\"n\""],
                floor(Algorithm::Sha256Sess)
            ),
            Err(ChallengeError::Downgrade { .. })
        ));
        assert_eq!(
            choose_with([sha], floor(Algorithm::Sha256)).unwrap().nonce,
            "b"
        );
        assert_eq!(
            choose_with([md5, sha512], floor(Algorithm::Sha256))
                .unwrap()
                .algorithm,
            Algorithm::Sha512_256
        );
        assert!(matches!(
            choose_with([sha], floor(Algorithm::Sha512_256)),
            Err(ChallengeError::Downgrade { .. })
        ));
        // MD5 with an MD5 floor (or none) is fine: nothing stronger was seen.
        assert!(choose_with([md5], floor(Algorithm::Md5)).is_ok());
        // The error names both, for the operator.
        let e = choose_with([md5], floor(Algorithm::Sha256)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "MD5 refused as a downgrade: this peer has offered SHA-256"
        );
        // Through the client, as a final answer.
        let mut c = DigestClient::new(Credentials::new("u", "p"));
        assert!(matches!(
            c.on_challenge(
                401,
                &headers("WWW-Authenticate", md5),
                Some(Algorithm::Sha256)
            ),
            Err(AuthError::Unusable(ChallengeError::Downgrade { .. }))
        ));
        assert!(c.headers("REGISTER", "sip:r", "cn").is_empty());
    }

    #[test]
    fn a_configured_realm_is_the_only_one_answered() {
        let creds = Credentials {
            realm: Some("trunk.example".into()),
            ..Credentials::new("u", "p")
        };
        let mut c = DigestClient::new(creds.clone());
        let foreign = headers(
            "WWW-Authenticate",
            "Digest realm=\"attacker\", nonce=\"1\", qop=auth, algorithm=SHA-256",
        );
        assert_eq!(
            c.on_challenge(401, &foreign, None),
            Err(AuthError::Unusable(ChallengeError::ForeignRealm(
                "attacker".into()
            )))
        );
        assert!(c.headers("MESSAGE", "sip:x@y", "cn").is_empty());
        // Several challenges: the configured realm's is answered even when
        // another realm offers a stronger algorithm; realms compare exactly.
        let mixed = headers(
            "WWW-Authenticate",
            "Digest realm=\"attacker\", nonce=\"1\", qop=auth, algorithm=SHA-512-256, Digest realm=\"Trunk.example\", nonce=\"2\", qop=auth, algorithm=SHA-256, Digest realm=\"trunk.example\", nonce=\"3\", qop=auth",
        );
        assert_eq!(c.on_challenge(401, &mixed, None), Ok(Algorithm::Md5));
        let hs = c.headers("MESSAGE", "sip:x@y", "cn");
        assert!(
            hs[0].1.contains("realm=\"trunk.example\", nonce=\"3\""),
            "{}",
            hs[0].1
        );
        // The proxy's challenge for another realm is refused too.
        let proxy = headers("Proxy-Authenticate", "Digest realm=\"proxy\", nonce=\"p\"");
        assert!(matches!(
            c.on_challenge(407, &proxy, None),
            Err(AuthError::Unusable(ChallengeError::ForeignRealm(_)))
        ));
        // Without a configured realm any realm is answered, as before.
        let mut any = DigestClient::new(Credentials::new("u", "p"));
        assert_eq!(any.on_challenge(401, &foreign, None), Ok(Algorithm::Sha256));
        // A foreign realm says more than a malformed neighbour.
        let e = choose_with(
            [
                "Basic realm=\"x\"",
                "Digest realm=\"attacker\", nonce=\"1\"",
            ],
            ChallengePolicy {
                realm: Some("trunk.example"),
                floor: None,
            },
        )
        .unwrap_err();
        assert_eq!(e, ChallengeError::ForeignRealm("attacker".into()));
        // Control characters in a realm are escaped in the message.
        let e = ChallengeError::ForeignRealm("a\nb".into()).to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials::new("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
