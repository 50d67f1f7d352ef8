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
    /// On a stream: without a usable Content-Length the message's end, and
    /// so the next message's start, is unknown.
    #[error("missing the one valid Content-Length that frames a stream")]
    BadContentLength,
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
    /// On a stream, the head and the announced body together exceed
    /// [`MAX_MESSAGE_SIZE`]: the body is not read (the connection closes).
    TooLarge,
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
            Defect::TooLarge => (413, "Request Entity Too Large"),
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
    let &[c] = name.as_bytes() else {
        return None;
    };
    Some(match c.to_ascii_lowercase() {
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

/// Where the search for the end of a header section got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadEnd {
    /// Head length without the blank line, and the offset of the body.
    Found { head_len: usize, body_start: usize },
    /// Not in the bytes so far; a search over more bytes may resume here
    /// (every line end before it was seen with the two bytes after it).
    NotYet { resume_at: usize },
}

/// Searches `buf[from..]` for the end of the header section (a line end
/// followed by an empty line). Accepts CRLF and, leniently, bare LF.
/// `from` must come from an earlier [`HeadEnd::NotYet`] on a prefix of
/// `buf` (or be 0), so a stream is scanned once however it is split.
fn find_head_end(buf: &[u8], from: usize) -> HeadEnd {
    for (i, &c) in buf.iter().enumerate().skip(from) {
        if c != b'\n' {
            continue;
        }
        // "\n\n" or "\n\r\n" after a line end
        let body_start = match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => i + 2,
            (Some(b'\r'), Some(b'\n')) => i + 3,
            _ => continue,
        };
        let head_len = match i.checked_sub(1).and_then(|p| buf.get(p)) {
            Some(b'\r') => i - 1,
            _ => i,
        };
        return HeadEnd::Found {
            head_len,
            body_start,
        };
    }
    // A line end in the last two bytes may still be followed by "\n" or
    // "\r\n": look at those two again next time.
    HeadEnd::NotYet {
        resume_at: from.max(buf.len().saturating_sub(2)),
    }
}

/// Skips the CRLFs that may precede a message (RFC 3261 §7.5) or act as
/// keep-alives on a stream.
pub fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()
}

/// A head that was split into lines, before the body is attached.
#[derive(Debug)]
struct Head {
    start: StartLine,
    headers: Headers,
    defect: Option<Defect>,
}

#[derive(Debug)]
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
    // The method is a token, so not empty: the line is well formed when
    // there are exactly three parts and the other two are not empty.
    let (uri, version) = match parts[..] {
        [_, uri, version] if !uri.is_empty() && !version.is_empty() => (uri, version),
        _ => {
            *defect = Some(Defect::BadRequestLine);
            let uri = parts.iter().skip(1).find(|p| !p.is_empty()).unwrap_or(&"");
            return Ok(StartLine::Request {
                method,
                uri: uri.to_string(),
            });
        }
    };
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
        uri: uri.to_string(),
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
    let buf = buf.get(skip..).unwrap_or_default();
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let HeadEnd::Found {
        head_len,
        body_start,
    } = find_head_end(buf, 0)
    else {
        return Err(ParseError::NoHeaderEnd);
    };
    // find_head_end found the end inside `buf`: the head is there.
    let mut head = parse_head(buf.get(..head_len).ok_or(ParseError::NoHeaderEnd)?)?;
    let available = buf.get(body_start..).unwrap_or_default();
    let body = match content_length(&head.headers) {
        Ok(None) => available,
        Ok(Some(n)) => match available.get(..n) {
            Some(body) => body,
            None => {
                head.defect.get_or_insert(Defect::BodyTruncated);
                available
            }
        },
        Err(d) => {
            head.defect.get_or_insert(d);
            available
        }
    };
    Ok(assemble(head, Bytes::copy_from_slice(body)))
}

/// Frames messages on a stream transport (TCP): the body is exactly
/// Content-Length bytes (missing means 0), and a message is complete only
/// when all of its body has arrived.
///
/// Each byte is looked at a bounded number of times however the stream is
/// split into reads: the search for the end of a head resumes where it
/// stopped, a head is parsed once (then the framer only waits for the
/// body), and consumed bytes are dropped once per read, not per message.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out; dropped on `push`.
    consumed: usize,
    /// Where the head-end search resumes, relative to `consumed`.
    scan_from: usize,
    /// The current message's parsed head while its body is arriving.
    waiting: Option<AwaitingBody>,
    /// Bytes examined looking for head ends, plus heads parsed: a measure
    /// of framing work (tests check that it stays linear in the input).
    examined: u64,
}

#[derive(Debug)]
struct AwaitingBody {
    head: Head,
    /// Offsets relative to `consumed`.
    body_start: usize,
    body_len: usize,
}

/// What the framer found.
#[derive(Debug)]
pub enum Framed {
    Message(Parsed),
    /// The stream cannot be framed any more (bad Content-Length, oversize
    /// message, garbage). A request that can still be answered comes with
    /// the defect to answer (e.g. [`Defect::TooLarge`], its body never
    /// read); then the connection is to be closed.
    Fatal(ParseError, Option<Parsed>),
}

impl StreamFramer {
    pub fn new() -> Self {
        StreamFramer::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Is part of a message buffered (after `next_message` returned
    /// `None`)? Keep-alive CRLFs between messages do not count.
    pub fn is_mid_message(&self) -> bool {
        self.buf.len() > self.consumed
    }

    /// Bytes examined so far to find and parse heads: at most a few times
    /// the bytes pushed, however they were split.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// Gives up on the stream: drops what is buffered.
    fn fatal(&mut self, e: ParseError, request: Option<Parsed>) -> Option<Framed> {
        self.buf.clear();
        self.consumed = 0;
        self.scan_from = 0;
        self.waiting = None;
        Some(Framed::Fatal(e, request))
    }

    /// Returns the next complete message, if the buffer holds one.
    pub fn next_message(&mut self) -> Option<Framed> {
        if self.waiting.is_none() {
            if let Some(fatal) = self.find_head() {
                return Some(fatal);
            }
        }
        let w = self.waiting.as_ref()?;
        let end = w.body_start + w.body_len;
        let body = self.buf.get(self.consumed..)?.get(w.body_start..end)?;
        let body = Bytes::copy_from_slice(body);
        let w = self.waiting.take()?;
        self.consumed += end;
        self.scan_from = 0;
        Some(Framed::Message(assemble(w.head, body)))
    }

    /// Looks for the end of the current head and parses it into
    /// `self.waiting`; returns a fatal framing error, if any.
    fn find_head(&mut self) -> Option<Framed> {
        let mut msg = self.buf.get(self.consumed..)?;
        if self.scan_from == 0 {
            let skip = skip_leading_crlf(msg);
            self.examined += skip as u64 + 1;
            self.consumed += skip;
            msg = msg.get(skip..)?;
        }
        if msg.is_empty() {
            return None;
        }
        let (head_len, body_start) = match find_head_end(msg, self.scan_from) {
            HeadEnd::Found {
                head_len,
                body_start,
            } => {
                self.examined += (body_start - self.scan_from.min(body_start)) as u64;
                (head_len, body_start)
            }
            HeadEnd::NotYet { resume_at } => {
                self.examined += (msg.len() - self.scan_from.min(msg.len())) as u64;
                self.scan_from = resume_at;
                if msg.len() > MAX_MESSAGE_SIZE {
                    return self.fatal(ParseError::TooLarge, None);
                }
                return None;
            }
        };
        self.examined += head_len as u64;
        let head = match parse_head(msg.get(..head_len)?) {
            Ok(h) => h,
            Err(e) => return self.fatal(e, None),
        };
        // Only a request can be answered; a broken response is dropped.
        let answerable = |head: Head, defect: Defect| {
            matches!(head.start, StartLine::Request { .. }).then(|| {
                let mut parsed = assemble(head, Bytes::new());
                parsed.defect.get_or_insert(defect);
                parsed
            })
        };
        let body_len = match content_length(&head.headers) {
            Ok(n) => n.unwrap_or(0),
            Err(d) => {
                let request = answerable(head, d);
                return self.fatal(ParseError::BadContentLength, request);
            }
        };
        if body_start + body_len > MAX_MESSAGE_SIZE {
            let request = answerable(head, Defect::TooLarge);
            return self.fatal(ParseError::TooLarge, request);
        }
        self.waiting = Some(AwaitingBody {
            head,
            body_start,
            body_len,
        });
        None
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
    use crate::testing::TestRng;

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
        let mut rng = TestRng::new(0x1234_5678);
        let alphabet = b"INVITE SIP/2.0\r\n:;<>\" \t@l0123456789abc";
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.pick(alphabet)).collect();
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

    /// Two pipelined requests with keep-alive CRLFs around them; the second
    /// uses bare LFs and ends its head with "\n\r\n", so a split can fall
    /// inside either kind of head end.
    const PIPELINED: &[u8] =
        b"\r\nOPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
Call-ID: one\r\nContent-Length: 5\r\n\r\nhello\r\n\r\n\
BYE sip:a@b SIP/2.0\nCall-ID: two\nl: 4\n\r\nbye!\r\n";

    fn pipelined_messages() -> Vec<Parsed> {
        let first_len = PIPELINED.len()
            - b"\r\n\r\nBYE sip:a@b SIP/2.0\nCall-ID: two\nl: 4\n\r\nbye!\r\n".len();
        let (first, second) = PIPELINED.split_at(first_len);
        vec![
            parse_datagram(first).unwrap(),
            parse_datagram(second).unwrap(),
        ]
    }

    /// Pushes `chunks` one after the other, taking every message the framer
    /// completes; fails on a fatal framing error.
    fn frame(chunks: &[&[u8]]) -> (Vec<Parsed>, StreamFramer) {
        let mut f = StreamFramer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            f.push(chunk);
            while let Some(framed) = f.next_message() {
                match framed {
                    Framed::Message(p) => out.push(p),
                    Framed::Fatal(e, _) => panic!("fatal framing error: {e}"),
                }
            }
        }
        (out, f)
    }

    #[test]
    fn stream_framer_gives_the_same_messages_at_every_split_point() {
        let want = pipelined_messages();
        assert_eq!(want.len(), 2);
        assert_eq!(&req(want[1].clone()).0.body[..], b"bye!");
        for at in 0..=PIPELINED.len() {
            let (a, b) = PIPELINED.split_at(at);
            let (got, f) = frame(&[a, b]);
            assert_eq!(got, want, "split at {at}");
            assert!(!f.is_mid_message(), "split at {at}");
        }
        // Three pieces, every pair of split points.
        for i in 0..=PIPELINED.len() {
            for j in i..=PIPELINED.len() {
                let (got, _) = frame(&[&PIPELINED[..i], &PIPELINED[i..j], &PIPELINED[j..]]);
                assert_eq!(got, want, "split at {i} and {j}");
            }
        }
        // One byte at a time; the first message is out as soon as its last
        // body byte is in, not when more arrives.
        let bytes: Vec<&[u8]> = PIPELINED.chunks(1).collect();
        let (got, _) = frame(&bytes);
        assert_eq!(got, want);
        let first_end = PIPELINED.windows(5).position(|w| w == b"hello").unwrap() + 5;
        let (got, f) = frame(&bytes[..first_end]);
        assert_eq!(got, want[..1]);
        assert!(!f.is_mid_message());
        let (got, f) = frame(&bytes[..first_end - 1]);
        assert!(got.is_empty());
        assert!(f.is_mid_message(), "the body is still arriving");
    }

    /// A message of `size` bytes, most of it in headers and the rest in the
    /// body.
    fn big_message(size: usize) -> Vec<u8> {
        let body = vec![b'x'; size / 3];
        let mut m = b"MESSAGE sip:a@b SIP/2.0\r\n".to_vec();
        let tail = format!("Content-Length: {}\r\n\r\n", body.len());
        let mut n = 0;
        while m.len() + tail.len() + body.len() + 40 < size {
            m.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "y".repeat(24)).as_bytes());
            n += 1;
        }
        m.extend_from_slice(tail.as_bytes());
        m.extend_from_slice(&body);
        m
    }

    /// Issue 9: one-byte TCP segments made the framer re-scan the whole
    /// buffer for every byte (quadratic: 65,000 segments cost 0.9 s). The
    /// work is counted, not timed.
    #[test]
    fn stream_framing_work_is_linear_in_the_input() {
        let m = big_message(24_000);
        let want = parse_datagram(&m).unwrap();
        for segment in [1, 7, 1460] {
            let chunks: Vec<&[u8]> = m.chunks(segment).collect();
            let (got, f) = frame(&chunks);
            assert_eq!(got, vec![want.clone()], "{segment}-byte segments");
            let pushed = m.len() as u64;
            assert!(
                f.bytes_examined() <= 4 * pushed,
                "{segment}-byte segments: {} bytes examined for {pushed} pushed",
                f.bytes_examined()
            );
        }
    }

    #[test]
    fn a_body_over_the_maximum_size_is_413_before_it_is_read() {
        let mut f = StreamFramer::new();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 999999999\r\n\r\nv=0\r\n");
        let Some(Framed::Fatal(ParseError::TooLarge, Some(p))) = f.next_message() else {
            panic!("an oversized body is fatal and the request comes back to be answered")
        };
        assert_eq!(p.defect, Some(Defect::TooLarge));
        assert_eq!(
            Defect::TooLarge.response(),
            (413, "Request Entity Too Large")
        );
        let (r, _) = req(p);
        assert!(r.body.is_empty(), "the body is never read");
        assert!(f.next_message().is_none(), "the stream is given up");

        // Head and body together count: a body that fits alone but not
        // after this head.
        let mut f = StreamFramer::new();
        let cl = MAX_MESSAGE_SIZE - 20;
        f.push(format!("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {cl}\r\n\r\n").as_bytes());
        assert!(matches!(
            f.next_message(),
            Some(Framed::Fatal(ParseError::TooLarge, Some(p))) if p.defect == Some(Defect::TooLarge)
        ));

        // A response cannot be answered: it is dropped, not processed as if
        // it were complete.
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 999999999\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Some(Framed::Fatal(ParseError::TooLarge, None))
        ));
    }

    #[test]
    fn a_bad_content_length_on_a_stream_is_answered_then_fatal() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: lots\r\n\r\n");
        let Some(Framed::Fatal(ParseError::BadContentLength, Some(p))) = f.next_message() else {
            panic!("a bad Content-Length is fatal on a stream")
        };
        assert_eq!(p.defect, Some(Defect::BadContentLength));
    }

    #[test]
    fn a_head_without_end_over_the_maximum_size_is_fatal() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        let filler = b"X-Filler: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n";
        let mut pushed = 0;
        let outcome = loop {
            f.push(filler);
            pushed += filler.len();
            if let Some(framed) = f.next_message() {
                break framed;
            }
            assert!(pushed <= MAX_MESSAGE_SIZE + filler.len(), "never gave up");
        };
        assert!(matches!(outcome, Framed::Fatal(ParseError::TooLarge, None)));
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
