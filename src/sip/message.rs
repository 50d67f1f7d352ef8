//! SIP messages: framing, the start line, unfolded headers with compact
//! names expanded, and serialisation.
//!
//! Parsing is in two levels. This module splits bytes into a start line,
//! header fields and a body, and records *defects* (a malformed request line,
//! a bad Content-Length, ...) instead of failing, so that the UAS can still
//! answer a broken request with a 400 that names the problem. What cannot
//! be answered at all (not UTF-8, no header end, not even a method) is a
//! [`ParseError`] and the datagram is dropped. Typed checks of individual
//! headers live in [`super::header`].

use bytes::Bytes;

use super::grammar::is_token;
use super::method::Method;

/// The largest message we accept (head and body). Larger UDP datagrams and
/// TCP messages are rejected; SIP over UDP stays well below this.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Why bytes could not be turned into a message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("no blank line ends the header section")]
    NoHeaderEnd,
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    #[error("start line is neither a request line nor a status line")]
    BadStartLine,
    #[error("malformed status line")]
    BadStatusLine,
}

/// Something wrong with a message that still has a recognisable start line,
/// so a request can be answered with a 4xx/5xx naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The request line is malformed (extra whitespace, missing parts).
    BadRequestLine,
    /// `SIP/x.y` other than 2.0 (answered with 505).
    UnsupportedVersion(String),
    /// A header line without a colon or with an invalid name.
    MalformedHeaderLine,
    MultipleContentLength,
    BadContentLength,
    /// Content-Length says more bytes than the datagram holds.
    BodyTruncated,
}

impl Defect {
    /// Status code and reason phrase to answer a request with this defect.
    pub fn response(&self) -> (u16, &'static str) {
        match self {
            Defect::BadRequestLine => (400, "Malformed Request-Line"),
            Defect::UnsupportedVersion(_) => (505, "Version Not Supported"),
            Defect::MalformedHeaderLine => (400, "Malformed Header Line"),
            Defect::MultipleContentLength => (400, "Multiple Content-Length Headers"),
            Defect::BadContentLength => (400, "Malformed Content-Length"),
            Defect::BodyTruncated => (400, "Content-Length Larger Than Body"),
        }
    }
}

/// Header fields in order of appearance, names canonicalised (compact forms
/// expanded, well-known names in their usual spelling).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Replaces all values of `name` by one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name.to_string(), value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The Request-URI as written; parse with [`super::uri::Uri::parse`].
    pub uri: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A message and, for a broken one, the first defect found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub message: Message,
    pub defect: Option<Defect>,
}

/// Compact header names (RFC 3261 §7.3.3 and the IANA registry).
fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

const CANONICAL: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Remote-Party-ID",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// Canonical spelling of a header name; unknown names are kept as written.
pub fn canonical_name(name: &str) -> String {
    if let Some(full) = expand_compact(name) {
        return full.to_string();
    }
    CANONICAL
        .iter()
        .find(|c| c.eq_ignore_ascii_case(name))
        .map(|c| c.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Finds the end of the header section: returns (head length without the
/// blank line, offset of the body). Accepts CRLF and, leniently, bare LF.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            // "\n\n" or "\n\r\n" after a line end
            if buf.get(i + 1) == Some(&b'\n') {
                let head = if i > 0 && buf[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                return Some((head, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                let head = if i > 0 && buf[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                return Some((head, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Skips the CRLFs that may precede a message (RFC 3261 §7.5) or act as
/// keep-alives on a stream.
pub fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()
}

/// A head that was split into lines, before the body is attached.
struct Head {
    start: StartLine,
    headers: Headers,
    defect: Option<Defect>,
}

enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

fn parse_head(head: &[u8]) -> Result<Head, ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().ok_or(ParseError::Empty)?;
    let mut defect = None;
    let start = parse_start_line(first, &mut defect)?;

    let mut headers = Headers::new();
    let mut current: Option<(String, String)> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, value)) => {
                    let cont = line.trim_matches([' ', '\t']);
                    if !cont.is_empty() {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(cont);
                    }
                }
                None => {
                    defect.get_or_insert(Defect::MalformedHeaderLine);
                }
            }
            continue;
        }
        if let Some((n, v)) = current.take() {
            headers.push(n, v);
        }
        match line.split_once(':') {
            Some((name, value)) => {
                let name = name.trim_end_matches([' ', '\t']);
                if !is_token(name) {
                    defect.get_or_insert(Defect::MalformedHeaderLine);
                    continue;
                }
                let value = value.trim_matches([' ', '\t']);
                current = Some((canonical_name(name), value.to_string()));
            }
            None => {
                defect.get_or_insert(Defect::MalformedHeaderLine);
            }
        }
    }
    if let Some((n, v)) = current.take() {
        headers.push(n, v);
    }
    Ok(Head {
        start,
        headers,
        defect,
    })
}

/// Does `text` start with `prefix`, ASCII case ignored? Compares bytes, so a
/// multi-byte character where the prefix ends is a mismatch, not a panic.
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn parse_start_line(line: &str, defect: &mut Option<Defect>) -> Result<StartLine, ParseError> {
    if starts_with_ignore_case(line, "SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().ok_or(ParseError::BadStatusLine)?;
        let reason = parts.next().unwrap_or("");
        if !version.eq_ignore_ascii_case("SIP/2.0")
            || code.len() != 3
            || !code.bytes().all(|c| c.is_ascii_digit())
        {
            return Err(ParseError::BadStatusLine);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::BadStatusLine)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusLine);
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP
    // between the three elements, none elsewhere.
    let parts: Vec<&str> = line.split(' ').collect();
    let method_tok = parts.first().copied().unwrap_or("");
    if !is_token(method_tok) {
        return Err(ParseError::BadStartLine);
    }
    let method = Method::from_token(method_tok);
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        *defect = Some(Defect::BadRequestLine);
        let uri = parts.iter().skip(1).find(|p| !p.is_empty()).unwrap_or(&"");
        return Ok(StartLine::Request {
            method,
            uri: uri.to_string(),
        });
    }
    let version = parts[2];
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        let looks_like_sip = version.len() > 4 && starts_with_ignore_case(version, "SIP/");
        *defect = Some(if looks_like_sip {
            Defect::UnsupportedVersion(version.to_string())
        } else {
            Defect::BadRequestLine
        });
    }
    Ok(StartLine::Request {
        method,
        uri: parts[1].to_string(),
    })
}

/// Reads the Content-Length of a head: `Ok(None)` when absent.
fn content_length(headers: &Headers) -> Result<Option<usize>, Defect> {
    let mut values = headers.get_all("Content-Length");
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Defect::MultipleContentLength);
    }
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Defect::BadContentLength);
    }
    v.parse::<usize>()
        .map(Some)
        .map_err(|_| Defect::BadContentLength)
}

fn assemble(head: Head, body: Bytes) -> Parsed {
    let message = match head.start {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers: head.headers,
            body,
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers: head.headers,
            body,
        }),
    };
    Parsed {
        message,
        defect: head.defect,
    }
}

/// Parses one message from a datagram (RFC 3261 §18.3): the body is
/// Content-Length bytes, extra bytes are discarded, and a body shorter than
/// Content-Length is a defect.
pub fn parse_datagram(buf: &[u8]) -> Result<Parsed, ParseError> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge);
    }
    let skip = skip_leading_crlf(buf);
    let buf = &buf[skip..];
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_len, body_start) = find_head_end(buf).ok_or(ParseError::NoHeaderEnd)?;
    let mut head = parse_head(&buf[..head_len])?;
    let available = &buf[body_start.min(buf.len())..];
    let body = match content_length(&head.headers) {
        Ok(None) => available,
        Ok(Some(n)) if n <= available.len() => &available[..n],
        Ok(Some(_)) => {
            head.defect.get_or_insert(Defect::BodyTruncated);
            available
        }
        Err(d) => {
            head.defect.get_or_insert(d);
            available
        }
    };
    Ok(assemble(head, Bytes::copy_from_slice(body)))
}

/// Frames messages on a stream transport (TCP): the body is exactly
/// Content-Length bytes (missing means 0).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

/// What the framer found.
#[derive(Debug)]
pub enum Framed {
    Message(Parsed),
    /// The stream cannot be framed any more (bad Content-Length, oversize
    /// message, garbage): answer if possible, then close the connection.
    Fatal(ParseError, Option<Parsed>),
}

impl StreamFramer {
    pub fn new() -> Self {
        StreamFramer { buf: Vec::new() }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete message, if the buffer holds one.
    pub fn next_message(&mut self) -> Option<Framed> {
        let skip = skip_leading_crlf(&self.buf);
        if skip > 0 {
            self.buf.drain(..skip);
        }
        if self.buf.is_empty() {
            return None;
        }
        let Some((head_len, body_start)) = find_head_end(&self.buf) else {
            if self.buf.len() > MAX_MESSAGE_SIZE {
                self.buf.clear();
                return Some(Framed::Fatal(ParseError::TooLarge, None));
            }
            return None;
        };
        let head = match parse_head(&self.buf[..head_len]) {
            Ok(h) => h,
            Err(e) => {
                self.buf.clear();
                return Some(Framed::Fatal(e, None));
            }
        };
        let len = match content_length(&head.headers) {
            Ok(n) => n.unwrap_or(0),
            Err(d) => {
                self.buf.clear();
                let mut parsed = assemble(head, Bytes::new());
                parsed.defect.get_or_insert(d);
                return Some(Framed::Fatal(ParseError::BadStartLine, Some(parsed)));
            }
        };
        if body_start + len > MAX_MESSAGE_SIZE {
            self.buf.clear();
            return Some(Framed::Fatal(
                ParseError::TooLarge,
                Some(assemble(head, Bytes::new())),
            ));
        }
        if self.buf.len() < body_start + len {
            return None;
        }
        let body = Bytes::copy_from_slice(&self.buf[body_start..body_start + len]);
        self.buf.drain(..body_start + len);
        Some(Framed::Message(assemble(head, body)))
    }
}

fn write_headers(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for (n, v) in headers.iter() {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serialises the request; Content-Length is computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        Bytes::from(out)
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", self.status, self.reason).as_bytes());
        write_headers(&mut out, &self.headers, &self.body);
        Bytes::from(out)
    }
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: Parsed) -> (Request, Option<Defect>) {
        match p.message {
            Message::Request(r) => (r, p.defect),
            Message::Response(_) => panic!("expected a request"),
        }
    }

    const INVITE: &[u8] = b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n\
f: <sip:a@b>;tag=1\r\nt: <sip:1000@127.0.0.1>\r\ni: abc\r\nCSeq: 1 INVITE\r\n\
l: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn compact_names_expand_and_body_follows_content_length() {
        let (r, d) = req(parse_datagram(INVITE).unwrap());
        assert_eq!(d, None);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.headers.get("From"), Some("<sip:a@b>;tag=1"));
        assert_eq!(r.headers.get("call-id"), Some("abc"));
        assert_eq!(&r.body[..], b"body");
    }

    #[test]
    fn folded_headers_are_unfolded() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\ttree\r\nl: 0\r\n\r\n";
        let (r, _) = req(parse_datagram(m).unwrap());
        assert_eq!(r.headers.get("Subject"), Some("one two tree"));
    }

    #[test]
    fn whitespace_before_colon_is_allowed() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ; tag = 1\r\nl: 0\r\n\r\n";
        let (r, d) = req(parse_datagram(m).unwrap());
        assert_eq!(d, None);
        assert_eq!(r.headers.get("To"), Some("sip:x@y ; tag = 1"));
    }

    #[test]
    fn request_line_whitespace_is_a_defect() {
        for line in [
            "INVITE  sip:a@b  SIP/2.0",
            "OPTIONS sip:a@b SIP/2.0  ",
            "INVITE sip:a@b; lr SIP/2.0",
        ] {
            let m = format!("{line}\r\nl: 0\r\n\r\n");
            let (_, d) = req(parse_datagram(m.as_bytes()).unwrap());
            assert_eq!(d, Some(Defect::BadRequestLine), "{line}");
        }
    }

    #[test]
    fn other_versions_are_505() {
        let (_, d) = req(parse_datagram(b"OPTIONS sip:a@b SIP/7.0\r\nl: 0\r\n\r\n").unwrap());
        assert_eq!(d, Some(Defect::UnsupportedVersion("SIP/7.0".into())));
    }

    #[test]
    fn content_length_defects() {
        let cases: [(&[u8], Defect); 3] = [
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: 9999\r\n\r\nshort",
                Defect::BodyTruncated,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: -999\r\n\r\n",
                Defect::BadContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nab",
                Defect::MultipleContentLength,
            ),
        ];
        for (m, want) in cases {
            let (_, d) = req(parse_datagram(m).unwrap());
            assert_eq!(d, Some(want));
        }
    }

    #[test]
    fn responses_with_odd_codes_are_errors() {
        assert!(parse_datagram(b"SIP/2.0 4294967301 huge\r\n\r\n").is_err());
        let p = parse_datagram(b"SIP/2.0 100 \r\nl: 0\r\n\r\n").unwrap();
        assert!(
            matches!(p.message, Message::Response(ref r) if r.status == 100 && r.reason.is_empty())
        );
    }

    #[test]
    fn non_utf8_bodies_survive() {
        let mut m = b"MESSAGE sip:a@b SIP/2.0\r\nl: 4\r\n\r\n".to_vec();
        m.extend_from_slice(&[0xff, 0x00, 0xc3, 0x28]);
        let (r, _) = req(parse_datagram(&m).unwrap());
        assert_eq!(&r.body[..], &[0xff, 0x00, 0xc3, 0x28]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let alphabet = b"INVITE SIP/2.0\r\n:;<>\" \t@l0123456789abc";
                    alphabet[seed as usize % alphabet.len()]
                })
                .collect();
            let _ = parse_datagram(&bytes);
            let mut f = StreamFramer::new();
            f.push(&bytes);
            while let Some(Framed::Message(_)) = f.next_message() {}
        }
    }

    /// A multi-byte character where the start line's `SIP/` would end used
    /// to panic (byte-index slicing); the 7-byte datagram below stopped the
    /// SIP task for good.
    #[test]
    fn multibyte_characters_in_the_start_line_are_errors_not_panics() {
        assert_eq!(
            parse_datagram(b"INV\xc3\xa9\n\n"),
            Err(ParseError::BadStartLine)
        );
        let (_, d) = req(parse_datagram(
            "OPTIONS sip:a@b SIP\u{e9}/2.0\r\nl: 0\r\n\r\n".as_bytes(),
        )
        .unwrap());
        assert_eq!(d, Some(Defect::BadRequestLine));
        let mut f = StreamFramer::new();
        f.push(b"INV\xc3\xa9\n\n");
        assert!(matches!(
            f.next_message(),
            Some(Framed::Fatal(ParseError::BadStartLine, None))
        ));
        // The same character at every position of a request and a status line.
        for line in ["SIP/2.0 200 OK", "INVITE sip:a@b SIP/2.0"] {
            for at in 0..=line.len() {
                let mut text = line.to_string();
                text.insert(at, '\u{e9}');
                text.push_str("\r\nl: 0\r\n\r\n");
                let _ = parse_datagram(text.as_bytes());
            }
        }
    }

    #[test]
    fn stream_framer_splits_and_waits_for_bodies() {
        let mut f = StreamFramer::new();
        let two = b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcBYE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nx";
        f.push(two);
        let Some(Framed::Message(p)) = f.next_message() else {
            panic!()
        };
        assert_eq!(&req(p).0.body[..], b"abc");
        assert!(f.next_message().is_none(), "second body incomplete");
        f.push(b"y");
        let Some(Framed::Message(p)) = f.next_message() else {
            panic!()
        };
        assert_eq!(req(p).0.method, Method::Bye);
    }

    #[test]
    fn serialise_round_trip() {
        let mut r = Response::new(200, "OK");
        r.headers.push("Via", "SIP/2.0/UDP h;branch=z9hG4bK1");
        r.headers.push("Content-Length", "999");
        r.body = Bytes::from_static(b"v=0\r\n");
        let bytes = r.to_bytes();
        let p = parse_datagram(&bytes).unwrap();
        let Message::Response(back) = p.message else {
            panic!()
        };
        assert_eq!(back.headers.get("Content-Length"), Some("5"));
        assert_eq!(&back.body[..], b"v=0\r\n");
    }
}
