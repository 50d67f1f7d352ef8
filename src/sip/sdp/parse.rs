//! The SDP parser (RFC 4566): bytes in, a [`SessionDescription`] or an
//! [`SdpError`] that says which line is wrong and why.
//!
//! It is written for bodies from the open network. It never panics,
//! treats the body as bytes (only the fields it interprets must be text),
//! ignores what it does not understand (RFC 4566 §5: unknown lines and
//! attributes are skipped), and is strict only where a bad field leaves no
//! sensible meaning (`v=`, `o=`, `c=`, `m=`). Attribute values that are mere
//! hints (`a=ptime:abc`, an `a=rtpmap` without a clock rate) are dropped rather
//! than failing the call.

use std::net::IpAddr;

use super::{
    ConnectionAddress, Direction, Fmtp, MediaDescription, Origin, RtpMap, SessionDescription,
};

/// Longest excerpt of peer text that goes into an error message, so a
/// hostile body cannot make log lines arbitrarily long.
const SNIPPET_CHARS: usize = 60;

/// Most formats one `m=` line may carry. RTP has 128 payload types, so a
/// longer list can only repeat itself; refusing it keeps every per-line
/// lookup bounded whatever the body size.
const MAX_FORMATS: usize = 128;

// ---------------------------------------------------------------------------
// Parse errors
// ---------------------------------------------------------------------------

/// Why a body is not an SDP we can read. Line numbers count from 1 over the
/// physical lines of the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("empty SDP body")]
    Empty,
    #[error("not an SDP body: it must start with `v=0`, found {found:?}")]
    NotSdp { found: String },
    #[error("unsupported SDP version {found:?}: only `v=0` exists")]
    UnsupportedVersion { found: String },
    #[error("line {line}: not of the form `<letter>=<value>`: {found:?}")]
    MalformedLine { line: usize, found: String },
    #[error("line {line}: a second `{kind}=` line; an SDP body has exactly one")]
    Duplicate { line: usize, kind: char },
    #[error("line {line}: the `{kind}=` line is not valid UTF-8")]
    NotUtf8 { line: usize, kind: char },
    #[error("no `o=` (origin) line")]
    MissingOrigin,
    #[error(
        "line {line}: `o=` needs `<user> <session-id> <version> IN <IP4|IP6> <address>`, found {found:?}"
    )]
    InvalidOrigin { line: usize, found: String },
    #[error("line {line}: invalid `c=` line {found:?}: {problem}")]
    InvalidConnection {
        line: usize,
        found: String,
        problem: ConnectionProblem,
    },
    #[error("line {line}: invalid `m=` line {found:?}: {problem}")]
    InvalidMedia {
        line: usize,
        found: String,
        problem: MediaProblem,
    },
}

/// What is wrong with a `c=` line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionProblem {
    #[error("expected `IN <IP4|IP6> <address>`")]
    MissingFields,
    #[error("network type {0:?} is not `IN`")]
    UnsupportedNetworkType(String),
    #[error("address type {0:?} is neither `IP4` nor `IP6`")]
    UnsupportedAddressType(String),
    #[error("{0:?} is neither an IP address nor a domain name")]
    InvalidAddress(String),
}

/// What is wrong with an `m=` line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaProblem {
    #[error("expected `<media> <port> <proto> <format>...`")]
    MissingFields,
    #[error("port {0:?} is not a number from 0 to 65535")]
    InvalidPort(String),
    #[error("port count {0:?} is not a number from 0 to 65535")]
    InvalidPortCount(String),
    #[error("{0:?} contains characters other than visible ASCII")]
    NotAToken(String),
    #[error("more than {MAX_FORMATS} formats")]
    TooManyFormats,
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Parse an SDP body.
///
/// Lines may end in CRLF or a bare LF; surrounding whitespace and blank
/// lines are ignored, and the last line needs no terminator. The first line
/// must be `v=0` (so a misrouted body is reported as "not SDP" rather than
/// failing somewhere later); `o=` is required, `s=` and `t=` are not.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let mut lines = body
        .split(|&b| b == b'\n')
        .zip(1..)
        .map(|(text, number)| (number, text.trim_ascii()))
        .filter(|(_, text)| !text.is_empty());
    let (_, first) = lines.next().ok_or(SdpError::Empty)?;
    check_version(first)?;
    let mut builder = Builder::default();
    for (number, text) in lines {
        let (kind, value) = split_line(number, text)?;
        builder.line(number, kind, value)?;
    }
    builder.finish()
}

fn check_version(line: &[u8]) -> Result<(), SdpError> {
    match line.strip_prefix(b"v=") {
        None => Err(SdpError::NotSdp {
            found: snippet(line),
        }),
        Some(version) if version.trim_ascii() == b"0" => Ok(()),
        Some(version) => Err(SdpError::UnsupportedVersion {
            found: snippet(version),
        }),
    }
}

/// `<type>=<value>` with a one-letter type (RFC 4566 §5). No whitespace is
/// allowed around `=`, which is what tells SDP from most other text.
fn split_line(number: usize, line: &[u8]) -> Result<(u8, &[u8]), SdpError> {
    match line {
        [kind, b'=', value @ ..] if kind.is_ascii_alphabetic() => Ok((*kind, value)),
        _ => Err(SdpError::MalformedLine {
            line: number,
            found: snippet(line),
        }),
    }
}

/// Peer text for an error message: lossy, control characters escaped by
/// `{:?}` at display time, and cut to [`SNIPPET_CHARS`].
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(SNIPPET_CHARS).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

fn text(number: usize, kind: u8, value: &[u8]) -> Result<&str, SdpError> {
    std::str::from_utf8(value).map_err(|_| SdpError::NotUtf8 {
        line: number,
        kind: char::from(kind),
    })
}

/// Accumulates lines; whether a line is session- or media-level depends
/// only on whether an `m=` line came before it.
#[derive(Default)]
struct Builder {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<ConnectionAddress>,
    direction: Option<Direction>,
    media: Vec<MediaDescription>,
}

impl Builder {
    fn line(&mut self, number: usize, kind: u8, value: &[u8]) -> Result<(), SdpError> {
        match kind {
            b'v' => Err(SdpError::Duplicate {
                line: number,
                kind: 'v',
            }),
            b'o' => self.origin(number, value),
            b's' => {
                self.session_name(value);
                Ok(())
            }
            b'c' => self.connection(number, value),
            b'm' => self.media(number, value),
            b'a' => {
                self.attribute(value);
                Ok(())
            }
            // t=, b=, i=, u=, e=, p=, k=, z=, r= and anything newer: nothing
            // we act on.
            _ => Ok(()),
        }
    }

    fn origin(&mut self, number: usize, value: &[u8]) -> Result<(), SdpError> {
        if self.origin.is_some() {
            return Err(SdpError::Duplicate {
                line: number,
                kind: 'o',
            });
        }
        let origin =
            parse_origin(text(number, b'o', value)?).ok_or_else(|| SdpError::InvalidOrigin {
                line: number,
                found: snippet(value),
            })?;
        self.origin = Some(origin);
        Ok(())
    }

    fn session_name(&mut self, value: &[u8]) {
        if self.media.is_empty() && self.session_name.is_none() {
            self.session_name = Some(String::from_utf8_lossy(value).into_owned());
        }
    }

    /// A `c=` line. Several at one level only occur with layered multicast;
    /// the first one is kept.
    fn connection(&mut self, number: usize, value: &[u8]) -> Result<(), SdpError> {
        let address = parse_connection(text(number, b'c', value)?).map_err(|problem| {
            SdpError::InvalidConnection {
                line: number,
                found: snippet(value),
                problem,
            }
        })?;
        let slot = match self.media.last_mut() {
            Some(media) => &mut media.connection,
            None => &mut self.connection,
        };
        slot.get_or_insert(address);
        Ok(())
    }

    fn media(&mut self, number: usize, value: &[u8]) -> Result<(), SdpError> {
        let media =
            parse_media(text(number, b'm', value)?).map_err(|problem| SdpError::InvalidMedia {
                line: number,
                found: snippet(value),
                problem,
            })?;
        self.media.push(media);
        Ok(())
    }

    /// An `a=` line. Unknown attributes, and known ones whose value does not
    /// parse, are ignored: they describe formats or features we do not use,
    /// and refusing a call over them helps nobody.
    fn attribute(&mut self, value: &[u8]) {
        let mut parts = value.splitn(2, |&b| b == b':');
        let name = parts.next().unwrap_or_default();
        let arg = parts
            .next()
            .and_then(|arg| std::str::from_utf8(arg).ok())
            .map(str::trim);
        if let Some(direction) = Direction::from_attribute(name) {
            match self.media.last_mut() {
                Some(media) => media.direction = Some(direction),
                None => self.direction = Some(direction),
            }
            return;
        }
        // The rest only has a meaning per media line.
        if let Some(media) = self.media.last_mut() {
            media_attribute(media, name, arg);
        }
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        Ok(SessionDescription {
            origin: self.origin.ok_or(SdpError::MissingOrigin)?,
            session_name: self.session_name,
            connection: self.connection,
            direction: self.direction,
            media: self.media,
        })
    }
}

fn media_attribute(media: &mut MediaDescription, name: &[u8], arg: Option<&str>) {
    let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
    if is("rtcp-mux") {
        media.rtcp_mux = true;
        return;
    }
    let Some(arg) = arg else { return };
    // Only the first rtpmap/fmtp per payload type counts, which also bounds
    // both lists at 128 entries.
    if is("rtpmap") {
        let map = parse_rtpmap(arg).filter(|m| media.rtpmap(m.payload_type).is_none());
        media.rtpmaps.extend(map);
    } else if is("fmtp") {
        let fmtp = parse_fmtp(arg).filter(|f| media.fmtp(f.payload_type).is_none());
        media.fmtps.extend(fmtp);
    } else if is("ptime") {
        media.ptime_ms = parse_milliseconds(arg).or(media.ptime_ms);
    } else if is("maxptime") {
        media.maxptime_ms = parse_milliseconds(arg).or(media.maxptime_ms);
    } else if is("rtcp") {
        let port = arg.split_ascii_whitespace().next().and_then(parse_u16);
        media.rtcp_port = port.or(media.rtcp_port);
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
/// The last five fields are taken from the end so that a (non-conforming)
/// username with spaces still parses.
fn parse_origin(value: &str) -> Option<Origin> {
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let split = fields.len().checked_sub(5).filter(|&n| n >= 1)?;
    let (user, rest) = fields.split_at(split);
    let [session_id, session_version, _nettype, _addrtype, address] = rest else {
        return None;
    };
    Some(Origin {
        username: user.join(" "),
        session_id: (*session_id).to_owned(),
        session_version: (*session_version).to_owned(),
        address: (*address).to_owned(),
    })
}

/// `c=IN IP4 <addr>[/<ttl>[/<count>]]` or `c=IN IP6 <addr>[/<count>]`.
/// The multicast suffixes are dropped: we only do unicast.
fn parse_connection(value: &str) -> Result<ConnectionAddress, ConnectionProblem> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(nettype), Some(addrtype), Some(address)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(ConnectionProblem::MissingFields);
    };
    if !nettype.eq_ignore_ascii_case("IN") {
        return Err(ConnectionProblem::UnsupportedNetworkType(snippet(
            nettype.as_bytes(),
        )));
    }
    if !addrtype.eq_ignore_ascii_case("IP4") && !addrtype.eq_ignore_ascii_case("IP6") {
        return Err(ConnectionProblem::UnsupportedAddressType(snippet(
            addrtype.as_bytes(),
        )));
    }
    let host = address.split_once('/').map_or(address, |(host, _)| host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        Ok(ConnectionAddress::Ip(ip))
    } else if is_domain_name(host) {
        Ok(ConnectionAddress::Host(host.to_owned()))
    } else {
        Err(ConnectionProblem::InvalidAddress(snippet(host.as_bytes())))
    }
}

/// A syntactically valid DNS name (RFC 1123 labels). A name whose last label
/// is all digits is a mistyped IPv4 address (`192.0.2.300`), not a name.
fn is_domain_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (1..=253).contains(&host.len())
        && host.split('.').all(label_ok)
        && host
            .rsplit('.')
            .next()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`. An empty format list is
/// tolerated (some stacks write rejected lines that way).
fn parse_media(value: &str) -> Result<MediaDescription, MediaProblem> {
    let mut fields = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(MediaProblem::MissingFields);
    };
    let (port, count) = match port.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (port, None),
    };
    let port =
        parse_u16(port).ok_or_else(|| MediaProblem::InvalidPort(snippet(port.as_bytes())))?;
    let port_count = match count {
        Some(count) => Some(
            parse_u16(count)
                .ok_or_else(|| MediaProblem::InvalidPortCount(snippet(count.as_bytes())))?,
        ),
        None => None,
    };
    let formats: Vec<String> = fields.take(MAX_FORMATS + 1).map(str::to_owned).collect();
    if formats.len() > MAX_FORMATS {
        return Err(MediaProblem::TooManyFormats);
    }
    let first_bad = [media, proto]
        .into_iter()
        .chain(formats.iter().map(String::as_str))
        .find(|token| !is_token(token));
    if let Some(bad) = first_bad {
        return Err(MediaProblem::NotAToken(snippet(bad.as_bytes())));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats,
        connection: None,
        direction: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime_ms: None,
        maxptime_ms: None,
        rtcp_port: None,
        rtcp_mux: false,
    })
}

/// Visible ASCII only (RFC 4566 `token` is a subset). Media, proto and
/// formats are echoed into our answer, so nothing else may pass.
fn is_token(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

/// Digits only: `str::parse` would also take a leading `+`.
pub(super) fn parse_u16(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An RTP payload type: 0..=127 (7 bits in the RTP header).
pub(super) fn parse_payload_type(text: &str) -> Option<u8> {
    parse_u16(text)
        .and_then(|n| u8::try_from(n).ok())
        .filter(|&pt| pt <= 127)
}

/// `<pt> <encoding>/<clock>[/<channels>]`.
fn parse_rtpmap(arg: &str) -> Option<RtpMap> {
    let (pt, rest) = arg.split_once(|c: char| c.is_ascii_whitespace())?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(channels) => Some(parse_u16(channels.trim())?),
        None => None,
    };
    if encoding.is_empty() {
        return None;
    }
    Some(RtpMap {
        payload_type: parse_payload_type(pt)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

/// `<pt> <params>`; only numeric formats are kept.
fn parse_fmtp(arg: &str) -> Option<Fmtp> {
    let (pt, params) = arg.split_once(|c: char| c.is_ascii_whitespace())?;
    Some(Fmtp {
        payload_type: parse_payload_type(pt)?,
        params: params.trim().to_owned(),
    })
}

/// Whole milliseconds; a fractional part (`20.0`, seen in the wild) is
/// dropped.
fn parse_milliseconds(arg: &str) -> Option<u32> {
    let whole = match arg.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => arg,
    };
    parse_u16(whole).map(u32::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Codec;
    use crate::sip::sdp::test_support::*;
    use crate::sip::sdp::{answer, SdpSession};
    use std::net::Ipv4Addr;

    // --- real-world offers -----------------------------------------------

    #[test]
    fn sipp_offer_parses() {
        let offer = parse(&sipp_offer()).unwrap();
        assert_eq!(offer.origin.username, "caller");
        assert_eq!(offer.origin.session_id, "53655765");
        assert_eq!(offer.origin.session_version, "2353687637");
        assert_eq!(offer.session_name.as_deref(), Some("-"));
        assert_eq!(
            offer.connection,
            Some(ConnectionAddress::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        );
        let [audio] = offer.media.as_slice() else {
            panic!("one m= line expected")
        };
        assert_eq!(audio.media, "audio");
        assert_eq!(audio.port, 18000);
        assert_eq!(audio.proto, "RTP/AVP");
        assert_eq!(audio.formats, ["0", "8", "101"]);
        assert_eq!(audio.ptime_ms, Some(20));
        assert_eq!(audio.direction, Some(Direction::SendRecv));
        assert_eq!(audio.fmtp(101), Some("0-16"));
        assert_eq!(audio.codec(0), Some(Codec::Pcmu));
        assert_eq!(audio.codec(8), Some(Codec::Pcma));
        assert_eq!(audio.codec(101), None);
        assert_eq!(audio.telephone_event_pts().collect::<Vec<_>>(), [101]);
    }

    // --- connection lines ------------------------------------------------

    #[test]
    fn connection_suffixes_are_ignored() {
        for (line, expected) in [
            ("c=IN IP4 224.2.1.1/127", "224.2.1.1"),
            ("c=IN IP4 224.2.1.1/127/3", "224.2.1.1"),
            ("c=IN IP6 ff15::101/3", "ff15::101"),
            ("c=IN IP6 [2001:db8::1]", "2001:db8::1"),
            ("c=in ip4 192.0.2.1", "192.0.2.1"),
        ] {
            let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", line]);
            let expected = ConnectionAddress::Ip(expected.parse().unwrap());
            assert_eq!(parse(&body).unwrap().connection, Some(expected), "{line}");
        }
    }

    #[test]
    fn bad_connection_lines_say_what_is_wrong() {
        let cases = [
            ("c=IN IP4", ConnectionProblem::MissingFields),
            (
                "c=ATM NSAP 47.0005",
                ConnectionProblem::UnsupportedNetworkType("ATM".into()),
            ),
            (
                "c=IN IPX 192.0.2.1",
                ConnectionProblem::UnsupportedAddressType("IPX".into()),
            ),
            (
                "c=IN IP4 192.0.2.300",
                ConnectionProblem::InvalidAddress("192.0.2.300".into()),
            ),
            (
                "c=IN IP4 no_such!host",
                ConnectionProblem::InvalidAddress("no_such!host".into()),
            ),
            (
                "c=IN IP6 2001:db8::zz",
                ConnectionProblem::InvalidAddress("2001:db8::zz".into()),
            ),
        ];
        for (line, problem) in cases {
            let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", "s=-", line]);
            match parse(&body) {
                Err(SdpError::InvalidConnection {
                    line: 4,
                    problem: got,
                    ..
                }) => assert_eq!(got, problem, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn connection_error_display() {
        let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", "c=IN IP4 192.0.2.300"]);
        assert_eq!(
            parse(&body).unwrap_err().to_string(),
            "line 3: invalid `c=` line \"IN IP4 192.0.2.300\": \"192.0.2.300\" is neither an IP address nor a domain name"
        );
    }

    // --- leniency and strictness -----------------------------------------

    #[test]
    fn bare_lf_trailing_whitespace_and_no_final_newline() {
        let crlf = parse(&sipp_offer()).unwrap();
        let text = String::from_utf8(sipp_offer()).unwrap();
        let lf = text.replace("\r\n", "\n");
        assert_eq!(parse(lf.as_bytes()).unwrap(), crlf);
        let ragged = text.replace("\r\n", "  \t\r\n");
        assert_eq!(parse(ragged.as_bytes()).unwrap(), crlf);
        let unterminated = text.trim_end();
        assert_eq!(parse(unterminated.as_bytes()).unwrap(), crlf);
        let blank_lines = format!("\r\n\r\n{}\r\n\r\n", text.replace("\r\n", "\r\n\r\n"));
        assert_eq!(parse(blank_lines.as_bytes()).unwrap(), crlf);
    }

    #[test]
    fn unknown_lines_are_ignored() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 203.0.113.5",
            "s=-",
            "i=A call",
            "u=http://example.com/",
            "e=ops@example.com",
            "p=+1 555 0100",
            "c=IN IP4 203.0.113.5",
            "b=AS:64",
            "t=0 0",
            "r=604800 3600 0 90000",
            "z=2882844526 -1h",
            "k=prompt",
            "x=something new",
            "a=group:BUNDLE 0",
            "a=msid-semantic: WMS",
            "m=audio 5000 RTP/AVP 0",
            "i=voice",
            "b=TIAS:64000",
            "k=clear:secret",
            "a=mid:0",
            "a=ssrc:1 cname:x",
            "a=silenceSupp:off - - - -",
            "a=X-nat:0",
        ]);
        let (media, _) = negotiate_ok(&body);
        assert_eq!(media.codec, Codec::Pcmu);
    }

    #[test]
    fn non_utf8_in_lines_we_do_not_interpret() {
        let mut body = b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=Caf\xe9\r\ni=\xff\xfe\r\n".to_vec();
        body.extend_from_slice(b"c=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
        body.extend_from_slice(b"a=x-vendor:\xc3\x28\x80\r\na=\xff\xff\r\na=fmtp:0 \xff\r\n");
        let offer = parse(&body).unwrap();
        assert_eq!(offer.session_name.as_deref(), Some("Caf\u{fffd}"));
        assert!(offer.media[0].fmtps.is_empty());
        assert_eq!(
            answer(&mut SdpSession::new(1), &offer, &local())
                .unwrap()
                .0
                .codec,
            Codec::Pcmu
        );
    }

    #[test]
    fn non_utf8_in_lines_we_interpret() {
        let body = b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 \xff\r\n";
        assert_eq!(parse(body), Err(SdpError::NotUtf8 { line: 3, kind: 'c' }));
    }

    #[test]
    fn missing_session_name_is_tolerated() {
        let body = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 h",
            "c=IN IP4 203.0.113.5",
            "m=audio 5000 RTP/AVP 0",
        ]);
        let offer = parse(&body).unwrap();
        assert_eq!(offer.session_name, None);
        assert_eq!(negotiate_ok(&body).0.codec, Codec::Pcmu);
    }

    #[test]
    fn origin_rules() {
        let missing = sdp(&[
            "v=0",
            "s=-",
            "c=IN IP4 203.0.113.5",
            "m=audio 5000 RTP/AVP 0",
        ]);
        assert_eq!(parse(&missing), Err(SdpError::MissingOrigin));
        let short = sdp(&["v=0", "o=foo 1 2"]);
        assert!(matches!(
            parse(&short),
            Err(SdpError::InvalidOrigin { line: 2, .. })
        ));
        let twice = sdp(&["v=0", "o=- 1 1 IN IP4 h", "o=- 1 1 IN IP4 h"]);
        assert_eq!(
            parse(&twice),
            Err(SdpError::Duplicate { line: 3, kind: 'o' })
        );
        let spaced = parse(&sdp(&["v=0", "o=Some Vendor GW 5 6 IN IP4 192.0.2.4"])).unwrap();
        assert_eq!(spaced.origin.username, "Some Vendor GW");
        assert_eq!(spaced.origin.session_id, "5");
        assert_eq!(spaced.origin.address, "192.0.2.4");
    }

    #[test]
    fn not_sdp_bodies() {
        assert_eq!(parse(b""), Err(SdpError::Empty));
        assert_eq!(parse(b" \r\n\r\n\t\n"), Err(SdpError::Empty));
        let html = parse(b"<html><body>404</body></html>").unwrap_err();
        assert_eq!(
            html.to_string(),
            "not an SDP body: it must start with `v=0`, found \"<html><body>404</body></html>\""
        );
        let sip = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\nv=0\r\n";
        assert!(matches!(parse(sip), Err(SdpError::NotSdp { .. })));
        assert!(matches!(
            parse(b"{\"sdp\": \"v=0\"}"),
            Err(SdpError::NotSdp { .. })
        ));
        assert_eq!(
            parse(b"v=1\r\no=- 1 1 IN IP4 h\r\n"),
            Err(SdpError::UnsupportedVersion { found: "1".into() })
        );
        assert!(matches!(parse(b"v = 0\r\n"), Err(SdpError::NotSdp { .. })));
    }

    #[test]
    fn garbage_after_the_version_line() {
        let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", "hello world"]);
        assert_eq!(
            parse(&body).unwrap_err().to_string(),
            "line 3: not of the form `<letter>=<value>`: \"hello world\""
        );
        let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", "v=0"]);
        assert_eq!(
            parse(&body),
            Err(SdpError::Duplicate { line: 3, kind: 'v' })
        );
        assert!(matches!(
            parse(b"v=0\r\n1=x\r\n"),
            Err(SdpError::MalformedLine { line: 2, .. })
        ));
        assert!(matches!(
            parse(b"v=0\r\na\r\n"),
            Err(SdpError::MalformedLine { line: 2, .. })
        ));
    }

    #[test]
    fn first_rtpmap_and_fmtp_per_payload_type_win() {
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 96",
            &[
                "a=rtpmap:96 PCMA/8000",
                "a=rtpmap:96 PCMU/8000",
                "a=fmtp:96 first",
                "a=fmtp:96 second",
            ],
        );
        let offer = parse(&body).unwrap();
        assert_eq!(offer.media[0].rtpmaps.len(), 1);
        assert_eq!(offer.media[0].codec(96), Some(Codec::Pcma));
        assert_eq!(offer.media[0].fmtp(96), Some("first"));
    }

    #[test]
    fn too_many_formats() {
        let many: Vec<String> = (0..200).map(|n| (n % 128).to_string()).collect();
        let line = format!("m=audio 5000 RTP/AVP {}", many.join(" "));
        let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", &line]);
        assert!(matches!(
            parse(&body),
            Err(SdpError::InvalidMedia {
                problem: MediaProblem::TooManyFormats,
                ..
            })
        ));
    }

    #[test]
    fn long_garbage_is_cut_in_messages() {
        let body = vec![b'x'; 100_000];
        let error = parse(&body).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn truncated_lines() {
        let cases: [(&str, MediaProblem); 7] = [
            (
                "m=audio 5000 RTP/AVP 0 \u{e9}",
                MediaProblem::NotAToken("\u{e9}".into()),
            ),
            (
                "m=au\u{1}dio 5000 RTP/AVP 0",
                MediaProblem::NotAToken("au\u{1}dio".into()),
            ),
            ("m=audio", MediaProblem::MissingFields),
            ("m=audio 5000", MediaProblem::MissingFields),
            (
                "m=audio 50x0 RTP/AVP 0",
                MediaProblem::InvalidPort("50x0".into()),
            ),
            (
                "m=audio 70000 RTP/AVP 0",
                MediaProblem::InvalidPort("70000".into()),
            ),
            (
                "m=audio 5000/ RTP/AVP 0",
                MediaProblem::InvalidPortCount("".into()),
            ),
        ];
        for (line, problem) in cases {
            let body = sdp(&["v=0", "o=- 1 1 IN IP4 h", line]);
            match parse(&body) {
                Err(SdpError::InvalidMedia {
                    line: 3,
                    problem: got,
                    ..
                }) => assert_eq!(got, problem, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        let counted = parse(&sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 h",
            "m=audio 5000/2 RTP/AVP 0",
        ]))
        .unwrap();
        assert_eq!(counted.media[0].port_count, Some(2));
        // Truncated attributes are dropped, not fatal.
        let body = simple_offer(
            "m=audio 5000 RTP/AVP 0 101",
            &[
                "a=rtpmap:101",
                "a=rtpmap:101 telephone-event",
                "a=fmtp:101",
                "a=ptime:",
                "a=rtcp:",
                "a=rtpmap",
            ],
        );
        let offer = parse(&body).unwrap();
        assert!(offer.media[0].rtpmaps.is_empty() && offer.media[0].fmtps.is_empty());
        assert_eq!(offer.media[0].ptime_ms, None);
    }
}
