//! A tiny SIP message parser and builder, written independently of the
//! server's `sip` module so that the two implementations check each other.
//!
//! It understands exactly what the integration tests need (RFC 3261 §7):
//! a request or status line, headers with case-insensitive names and the
//! compact forms, header folding, comma-separated multi-value Via / Route /
//! Record-Route headers, and a body delimited by Content-Length.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// Why a byte buffer could not be parsed as a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP parse error: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// The first line of a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A parsed SIP request or response.
///
/// Multi-value Via / Route / Record-Route headers are split into one entry
/// per value, so `headers` holds one `(name, value)` per logical value, in
/// message order, with the name as it appeared on the wire.
#[derive(Debug, Clone)]
pub struct Msg {
    pub start: StartLine,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Where the message came from (set by the test UA when it receives one).
    pub source: Option<SocketAddr>,
    /// When the message arrived (set by the test UA when it receives one).
    pub received_at: Option<Instant>,
}

/// Compact header forms (RFC 3261 §7.3.3 and the registry) mapped to the
/// full name, lower-cased.
const COMPACT_FORMS: &[(&str, &str)] = &[
    ("i", "call-id"),
    ("f", "from"),
    ("t", "to"),
    ("v", "via"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("k", "supported"),
    ("s", "subject"),
    ("e", "content-encoding"),
    ("o", "event"),
    ("r", "refer-to"),
    ("u", "allow-events"),
    ("x", "session-expires"),
];

/// Headers whose comma-separated values are separate header field values
/// that the tests need one by one (Via for transaction matching, the route
/// headers for the route set).
const MULTI_VALUE_HEADERS: &[&str] = &["via", "route", "record-route"];

/// Lower-cased full header name, expanding compact forms; used for matching.
pub fn canonical_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    COMPACT_FORMS
        .iter()
        .find(|(short, _)| *short == lower)
        .map(|(_, full)| (*full).to_string())
        .unwrap_or(lower)
}

impl Msg {
    /// Parses one complete message. The body is `Content-Length` bytes; when
    /// the header is missing (allowed on UDP) the body is the rest of the
    /// buffer. Bytes after the body are ignored.
    pub fn parse(buf: &[u8]) -> Result<Msg, ParseError> {
        let Some(head_end) = find_head_end(buf) else {
            return err("no empty line ending the headers");
        };
        let head = std::str::from_utf8(&buf[..head_end.start])
            .map_err(|_| ParseError("headers are not UTF-8".into()))?;
        let (start, headers) = parse_head(head)?;
        let rest = &buf[head_end.body..];
        let mut msg = Msg {
            start,
            headers,
            body: Vec::new(),
            source: None,
            received_at: None,
        };
        msg.body = match msg.content_length()? {
            Some(len) if len > rest.len() => {
                return err(format!(
                    "Content-Length {len} but only {} body bytes",
                    rest.len()
                ))
            }
            Some(len) => rest[..len].to_vec(),
            None => rest.to_vec(),
        };
        Ok(msg)
    }

    /// Stream framing (TCP): if `buf` holds a complete message, returns it
    /// and the number of bytes it used, including leading CRLF keep-alives.
    /// `Ok(None)` means "need more bytes". A missing Content-Length counts as
    /// 0, as RFC 3261 §18.3 requires the header on streams.
    pub fn parse_stream(buf: &[u8]) -> Result<Option<(Msg, usize)>, ParseError> {
        let skip = leading_crlf_len(buf);
        let buf_after = &buf[skip..];
        let Some(head_end) = find_head_end(buf_after) else {
            return Ok(None);
        };
        let head = std::str::from_utf8(&buf_after[..head_end.start])
            .map_err(|_| ParseError("headers are not UTF-8".into()))?;
        let (start, headers) = parse_head(head)?;
        let mut msg = Msg {
            start,
            headers,
            body: Vec::new(),
            source: None,
            received_at: None,
        };
        let len = msg.content_length()?.unwrap_or(0);
        let total = head_end.body + len;
        if buf_after.len() < total {
            return Ok(None);
        }
        msg.body = buf_after[head_end.body..total].to_vec();
        Ok(Some((msg, skip + total)))
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, or `None` for a response.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase, or `None` for a request.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of a header (name case-insensitive, compact forms
    /// accepted), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of a header, in message order (split at commas for Via,
    /// Route and Record-Route).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let wanted = canonical_name(name);
        self.headers
            .iter()
            .filter(|(n, _)| canonical_name(n) == wanted)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A parameter of the first value of a header: `Some("")` for a flag
    /// parameter without a value (e.g. `rport`), `None` if absent.
    pub fn header_param(&self, name: &str, param_name: &str) -> Option<String> {
        self.header(name).and_then(|v| param(v, param_name))
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let value = self.header("CSeq")?;
        let mut parts = value.split_whitespace();
        let number = parts.next()?.parse().ok()?;
        let method = parts.next()?.to_string();
        Some((number, method))
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The `branch` parameter of the top Via.
    pub fn top_branch(&self) -> Option<String> {
        self.header_param("Via", "branch")
    }

    /// The body as text (lossy), for SDP and the like.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The Content-Length header value, validated.
    fn content_length(&self) -> Result<Option<usize>, ParseError> {
        match self.header("Content-Length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ParseError(format!("bad Content-Length {v:?}"))),
        }
    }

    /// Serialises the message back to wire form (CRLF line ends, headers as
    /// stored, the body as is, no Content-Length rewriting).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri} SIP/2.0\r\n"),
            StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Where the header block ends: `start` is the end of the last header line,
/// `body` the first body byte.
struct HeadEnd {
    start: usize,
    body: usize,
}

/// Finds the empty line; accepts bare LF line ends too, as lenient parsers do.
fn find_head_end(buf: &[u8]) -> Option<HeadEnd> {
    let crlf = find(buf, b"\r\n\r\n").map(|i| HeadEnd {
        start: i,
        body: i + 4,
    });
    let lf = find(buf, b"\n\n").map(|i| HeadEnd {
        start: i,
        body: i + 2,
    });
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.start <= b.start { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn leading_crlf_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// Parses the start line and the headers (unfolding continuation lines).
fn parse_head(head: &str) -> Result<(StartLine, Vec<(String, String)>), ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let start = parse_start_line(first)?;
    let mut headers = Vec::new();
    for line in unfold(lines) {
        let Some((name, value)) = line.split_once(':') else {
            return err(format!("header line without colon: {line:?}"));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return err(format!("bad header name in {line:?}"));
        }
        push_header(&mut headers, name, value.trim());
    }
    Ok((start, headers))
}

/// Joins continuation lines (starting with SP or HT) to the previous line
/// with a single space (RFC 3261 §7.3.1).
fn unfold<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let is_continuation = line.starts_with(' ') || line.starts_with('\t');
        match out.last_mut() {
            Some(prev) if is_continuation => {
                prev.push(' ');
                prev.push_str(line.trim());
            }
            _ if line.is_empty() => {}
            _ => out.push(line.to_string()),
        }
    }
    out
}

fn push_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    if MULTI_VALUE_HEADERS.contains(&canonical_name(name).as_str()) {
        for part in split_top_level_commas(value) {
            headers.push((name.to_string(), part));
        }
    } else {
        headers.push((name.to_string(), value.to_string()));
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .map_err(|_| ParseError(format!("bad status code in {line:?}")))?;
        if !(100..=699).contains(&code) {
            return err(format!("status code out of range in {line:?}"));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim().to_string(),
        });
    }
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        [method, uri, "SIP/2.0"] if !method.is_empty() && !uri.is_empty() => {
            Ok(StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            })
        }
        _ => err(format!("bad start line {line:?}")),
    }
}

/// Splits at commas that are not inside double quotes or `<...>`.
pub fn split_top_level_commas(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for ch in value.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                parts.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_string());
    }
    parts
}

/// Byte index of the first `ch` outside double quotes.
fn find_unquoted(value: &str, ch: char) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == ch && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// The header parameters part of a value: after `>` for a name-addr, after
/// the first `;` otherwise (addr-spec or Via).
fn header_params_part(value: &str) -> &str {
    let after_uri = match find_unquoted(value, '<') {
        Some(lt) => match value[lt..].find('>') {
            Some(gt) => &value[lt + gt + 1..],
            None => "",
        },
        None => value,
    };
    match after_uri.find(';') {
        Some(i) => &after_uri[i + 1..],
        None => "",
    }
}

/// A header parameter of one header value (e.g. `tag` of From/To,
/// `branch`/`received`/`rport` of Via, `lr` of a Route). Names compare
/// case-insensitively; `Some("")` means present without a value.
pub fn param(value: &str, name: &str) -> Option<String> {
    header_params_part(value).split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A parameter of a SIP URI (`sip:p1.example;lr` -> `lr` is `Some("")`),
/// e.g. to tell a loose router from a strict one in a route set.
pub fn uri_param(uri: &str, name: &str) -> Option<String> {
    let without_headers = uri.split('?').next().unwrap_or(uri);
    without_headers.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The URI of a name-addr (`"Bob" <sip:bob@x>;tag=1` -> `sip:bob@x`) or of
/// an addr-spec (`sip:bob@x;tag=1` -> `sip:bob@x`, the parameters belonging
/// to the header).
pub fn uri_of(value: &str) -> &str {
    if let Some(lt) = find_unquoted(value, '<') {
        let inner = &value[lt + 1..];
        return inner.split('>').next().unwrap_or(inner).trim();
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// Builds a request or a response as text with CRLF line ends and an
/// automatic Content-Length (unless one was set explicitly, which torture
/// tests use to send a wrong one).
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl MsgBuilder {
    pub fn request(method: &str, uri: &str) -> MsgBuilder {
        MsgBuilder::with_start_line(format!("{method} {uri} SIP/2.0"))
    }

    pub fn response(code: u16, reason: &str) -> MsgBuilder {
        MsgBuilder::with_start_line(format!("SIP/2.0 {code} {reason}"))
    }

    fn with_start_line(start_line: String) -> MsgBuilder {
        MsgBuilder {
            start_line,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> MsgBuilder {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn headers<N: AsRef<str>, V: AsRef<str>>(mut self, extra: &[(N, V)]) -> MsgBuilder {
        for (n, v) in extra {
            self.headers
                .push((n.as_ref().to_string(), v.as_ref().to_string()));
        }
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> MsgBuilder {
        self.headers
            .push(("Content-Type".to_string(), content_type.to_string()));
        self.body = body.into();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut text = format!("{}\r\n", self.start_line);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        let has_length = self
            .headers
            .iter()
            .any(|(n, _)| canonical_name(n) == "content-length");
        if !has_length {
            text.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}
