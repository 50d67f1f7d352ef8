//! SDP (RFC 4566) parsing and the offer/answer model (RFC 3264), cut to
//! what a G.711 IVR needs: one audio stream, PCMU or PCMA, RFC 4733
//! telephone-event, packet time and direction.
//!
//! Everything here is a pure function over bytes and plain structs: the
//! SIP layer hands in the body of an INVITE (or of its 2xx/ACK) and gets back
//! a [`NegotiatedMedia`] for the call task and the SDP text to send.
//!
//! This file holds the model of a parsed body and the public names; the
//! work is done in one file per job:
//! - `parse.rs`: bytes to a [`SessionDescription`], lenient where a peer's
//!   oddity leaves a sensible meaning, with errors naming the line;
//! - `negotiate.rs`: the offer/answer decisions ([`answer`],
//!   [`accept_answer`]);
//! - `write.rs`: the text we send ([`offer`], the answer's lines, the `o=`
//!   version rule in [`SdpSession`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::media::g711::Codec;

mod negotiate;
mod parse;
mod write;

pub use negotiate::{accept_answer, answer, LocalMedia, NegotiatedMedia, NegotiationError};
use parse::parse_payload_type;
pub use parse::{parse, ConnectionProblem, MediaProblem, SdpError};
pub use write::{offer, SdpSession};

/// The payload type we use for telephone-event in the offers we make.
/// 101 is what Asterisk, FreeSWITCH, baresip, Twinkle and SIPp use, so the
/// peer very rarely has a reason to answer with another number.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Packet time we send when the peer states no usable preference.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// Packet times we are able to send (whole multiples of a 10 ms G.711 frame
/// that common endpoints accept).
pub const SUPPORTED_PTIMES_MS: [u32; 5] = [10, 20, 30, 40, 60];

/// Clock rate of narrowband audio and of the only telephone-event we use.
const NARROWBAND_CLOCK: u32 = 8000;

// ---------------------------------------------------------------------------
// Parsed session description
// ---------------------------------------------------------------------------

/// A parsed SDP body. Only the parts an IVR acts on are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line. Its version tells a re-INVITE that changes media apart
    /// from a refresh that does not.
    pub origin: Origin,
    /// The `s=` text, if present (lossily decoded; it is free text).
    pub session_name: Option<String>,
    /// Session-level `c=`, the default for media lines without their own.
    pub connection: Option<ConnectionAddress>,
    /// Session-level direction attribute, the default for media lines
    /// without their own.
    pub direction: Option<Direction>,
    /// Every `m=` section, in order. Answers must mirror them one for one.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line: `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
///
/// Identifier and version are kept as text: they are only ever compared, and
/// peers send numbers of any width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub address: String,
}

/// The address of a `c=` line, without its TTL or count suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionAddress {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A domain name. Kept unresolved: resolving is I/O and belongs to the
    /// shell, which may also simply refuse such peers.
    Host(String),
}

impl ConnectionAddress {
    /// `c=IN IP4 0.0.0.0` (or `::`): the RFC 2543 way to say "do not send me
    /// media", used for hold and for offers made before the address is known
    /// (RFC 3264 §8.4).
    pub fn is_hold(&self) -> bool {
        matches!(self, ConnectionAddress::Ip(ip) if ip.is_unspecified())
    }

    /// Where to send RTP for a media line on `port`, if we know a concrete
    /// address: `None` for port 0, the hold address and unresolved names.
    pub fn rtp_destination(&self, port: u16) -> Option<SocketAddr> {
        match self {
            ConnectionAddress::Ip(ip) if !ip.is_unspecified() && port != 0 => {
                Some(SocketAddr::new(*ip, port))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAddress::Ip(ip) => ip.fmt(f),
            ConnectionAddress::Host(host) => f.write_str(host),
        }
    }
}

/// One `m=` section with the attributes that matter to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `image`, `application`, ... as written.
    pub media: String,
    /// Transport port; 0 means the stream is disabled or rejected.
    pub port: u16,
    /// The `/<count>` after the port (layered multicast), if any.
    pub port_count: Option<u16>,
    /// Transport protocol as written, e.g. `RTP/AVP`.
    pub proto: String,
    /// Format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`, overriding the session-level one.
    pub connection: Option<ConnectionAddress>,
    /// Media-level direction, overriding the session-level one.
    pub direction: Option<Direction>,
    /// `a=rtpmap` lines that parsed, in order.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines for numeric formats, in order.
    pub fmtps: Vec<Fmtp>,
    /// `a=ptime`: the packet time the peer wants to receive.
    pub ptime_ms: Option<u32>,
    /// `a=maxptime`: the longest packet time the peer accepts.
    pub maxptime_ms: Option<u32>,
    /// `a=rtcp` port (RFC 3605). Parsed so it is visible; we send no RTCP.
    pub rtcp_port: Option<u16>,
    /// `a=rtcp-mux` (RFC 5761) was present.
    pub rtcp_mux: bool,
}

/// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

impl RtpMap {
    /// True for `<name>/<clock>` in mono, name compared case-insensitively
    /// (RFC 4855 §3: encoding names are case-insensitive).
    fn is(&self, name: &str, clock_rate: u32) -> bool {
        self.encoding.eq_ignore_ascii_case(name)
            && self.clock_rate == clock_rate
            && matches!(self.channels, None | Some(1))
    }

    /// G.711 this mapping stands for, if any (8 kHz mono only).
    fn codec(&self) -> Option<Codec> {
        let codec = Codec::from_encoding_name(&self.encoding)?;
        self.is(codec.encoding_name(), NARROWBAND_CLOCK)
            .then_some(codec)
    }

    /// Short human description for error messages: `G729`, `opus/48000`.
    fn describe(&self) -> String {
        if self.clock_rate == NARROWBAND_CLOCK {
            self.encoding.clone()
        } else {
            format!("{}/{}", self.encoding, self.clock_rate)
        }
    }
}

/// `a=fmtp:<pt> <params>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

impl MediaDescription {
    /// `m=audio`.
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// Plain RTP (`RTP/AVP`) or RTP with feedback (`RTP/AVPF`, which WebRTC
    /// gateways and some softphones offer without requiring feedback).
    /// SRTP profiles are not supported: we hold no keys.
    pub fn has_supported_transport(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// The formats that are valid RTP payload types (0..=127), in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_payload_type(f))
    }

    /// The `a=rtpmap` for `pt`; the first one wins if a peer repeats it.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    /// The `a=fmtp` parameters for `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|f| f.payload_type == pt)
            .map(|f| f.params.as_str())
    }

    /// The G.711 codec `pt` carries on this line: its `a=rtpmap` if there is
    /// one (a peer may put PCMU on a dynamic number, or re-map a static one),
    /// else the static table of RFC 3551 (0 = PCMU, 8 = PCMA).
    pub fn codec(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(map) => map.codec(),
            None => Codec::from_static_payload_type(pt),
        }
    }

    /// Payload types mapped to `telephone-event/8000`, in format order.
    /// Other clock rates (FreeSWITCH offers `telephone-event/48000` next to
    /// opus) carry timestamps we cannot use with 8 kHz audio.
    pub fn telephone_event_pts(&self) -> impl Iterator<Item = u8> + '_ {
        self.payload_types().filter(|&pt| {
            self.rtpmap(pt)
                .is_some_and(|m| m.is("telephone-event", NARROWBAND_CLOCK))
        })
    }

    /// `18 (G729)`: a format with its name, for error messages.
    pub fn describe_format(&self, format: &str) -> String {
        let name = parse_payload_type(format).and_then(|pt| match self.rtpmap(pt) {
            Some(map) => Some(map.describe()),
            None => static_payload_name(pt).map(str::to_owned),
        });
        match name {
            Some(name) => format!("{format} ({name})"),
            None => format.to_owned(),
        }
    }
}

impl SessionDescription {
    /// The connection address that applies to `media`: its own `c=`, else the
    /// session-level one (RFC 4566 §5.7).
    pub fn connection_for<'a>(
        &'a self,
        media: &'a MediaDescription,
    ) -> Option<&'a ConnectionAddress> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The direction that applies to `media`: its own attribute, else the
    /// session-level one, else `sendrecv` (RFC 3264 §5.1).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }
}

/// Names of the static RTP payload types (RFC 3551 §6), for messages only.
fn static_payload_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 | 16 | 17 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        25 => "CelB",
        26 => "JPEG",
        28 => "nv",
        31 => "H261",
        32 => "MPV",
        33 => "MP2T",
        34 => "H263",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Direction
// ---------------------------------------------------------------------------

/// Media direction (RFC 3264 §5.1), always from the point of view of the
/// side that wrote it (or, for [`NegotiatedMedia::local_direction`], of us).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction as seen from the other end: what one side sends the
    /// other receives.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            same => same,
        }
    }

    /// May media be sent in this direction?
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Is media expected to be received?
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with the given send and receive permissions.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The SDP attribute name: `sendrecv`, `sendonly`, `recvonly`, `inactive`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &[u8]) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.attribute().as_bytes()))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.attribute())
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::testing::TestRng;
    use std::fmt::Write as _;

    // --- direction -------------------------------------------------------

    #[test]
    fn direction_helpers() {
        use Direction::*;
        for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
            assert_eq!(d.reverse().reverse(), d);
            assert_eq!(Direction::from_flags(d.sends(), d.receives()), d);
            assert_eq!(d.reverse().sends(), d.receives());
        }
        assert_eq!(SendOnly.reverse(), RecvOnly);
        assert!(SendRecv.sends() && SendRecv.receives());
        assert!(!Inactive.sends() && !Inactive.receives());
        assert_eq!(RecvOnly.to_string(), "recvonly");
    }

    // --- whole pipeline: nothing panics ----------------------------------

    #[test]
    fn every_prefix_of_a_real_offer_is_handled() {
        for body in [sipp_offer(), freeswitch_offer(), asterisk_offer()] {
            for end in 0..=body.len() {
                if let Ok(offer) = parse(&body[..end]) {
                    let _ = answer(&mut SdpSession::new(1), &offer, &local());
                    let _ = accept_answer(&[Codec::Pcmu], &offer);
                }
            }
        }
    }

    // --- fuzz-ish --------------------------------------------------------

    /// Half the time a byte SDP gives meaning to, half the time any byte.
    fn sdp_byte(rng: &mut TestRng) -> u8 {
        const INTERESTING: &[u8] = b"=:/ \r\n\t0189-.vocma";
        if rng.next_u64() % 2 == 0 {
            rng.pick(INTERESTING)
        } else {
            rng.byte()
        }
    }

    /// Parse, and if that works, negotiate both ways: nothing may panic.
    fn exercise(body: &[u8]) {
        if let Ok(sdp) = parse(body) {
            let _ = answer(&mut SdpSession::new(1), &sdp, &local());
            let _ = accept_answer(&[Codec::Pcmu, Codec::Pcma], &sdp);
            for media in &sdp.media {
                for format in &media.formats {
                    assert!(media.describe_format(format).starts_with(format.as_str()));
                }
            }
        }
    }

    fn mutate(rng: &mut TestRng, seed: &[u8]) -> Vec<u8> {
        let mut body = seed.to_vec();
        for _ in 0..=rng.index(8) {
            let at = rng.index(body.len() + 1);
            match rng.index(6) {
                0 if at < body.len() => body[at] = sdp_byte(rng),
                1 => body.insert(at, sdp_byte(rng)),
                2 if at < body.len() => {
                    body.remove(at);
                }
                3 => body.truncate(at),
                4 => {
                    // Duplicate a random slice (repeats lines and fields).
                    let from = rng.index(body.len() + 1);
                    let to = (from + rng.index(40)).min(body.len());
                    let piece = body[from..to].to_vec();
                    body.splice(at..at, piece);
                }
                _ => {
                    let digits = rng.next_u64().to_string();
                    body.splice(at..at, digits.into_bytes());
                }
            }
        }
        body
    }

    #[test]
    fn fuzz_random_bytes_do_not_panic() {
        let mut rng = TestRng::new(0x5eed_0001);
        for _ in 0..3000 {
            let len = rng.index(300);
            let mut body: Vec<u8> = (0..len).map(|_| sdp_byte(&mut rng)).collect();
            if rng.next_u64() % 2 == 0 {
                body.splice(0..0, b"v=0\r\no=- 1 1 IN IP4 h\r\n".iter().copied());
            }
            exercise(&body);
        }
    }

    #[test]
    fn fuzz_mutated_offers_do_not_panic() {
        let seeds = [
            sipp_offer(),
            baresip_offer(),
            twinkle_offer(),
            asterisk_offer(),
            freeswitch_offer(),
        ];
        let mut rng = TestRng::new(0xdead_beef_cafe);
        let mut parsed = 0;
        for round in 0..20_000 {
            let body = mutate(&mut rng, &seeds[round % seeds.len()]);
            if parse(&body).is_ok() {
                parsed += 1;
            }
            exercise(&body);
        }
        // Most mutations leave a readable SDP, so negotiation is exercised too.
        assert!(parsed > 1000, "only {parsed} mutated bodies parsed");
    }

    #[test]
    fn huge_bodies_do_not_panic() {
        let mut rng = TestRng::new(42);
        let garbage: Vec<u8> = (0..1 << 20).map(|_| rng.byte()).collect();
        exercise(&garbage);
        let mut sdp_garbage = b"v=0\r\no=- 1 1 IN IP4 h\r\n".to_vec();
        sdp_garbage.extend_from_slice(&garbage);
        exercise(&sdp_garbage);
        // Well-formed but enormous: many attributes and m= lines.
        let mut big = String::from("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.9\r\n");
        for i in 0..2000 {
            let _ = write!(
                big,
                "m=video {} RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=x-{i}:{}\r\n",
                1000 + i,
                "z".repeat(100)
            );
        }
        big.push_str("m=audio 5000 RTP/AVP 8\r\n");
        let offer = parse(big.as_bytes()).unwrap();
        let (media, text) = answer(&mut SdpSession::new(1), &offer, &local()).unwrap();
        assert_eq!(media.remote_rtp, v4(192, 0, 2, 9, 5000));
        assert_eq!(parse(text.as_bytes()).unwrap().media.len(), 2001);
        // Worst case for the lookups: many audio lines, each with 128
        // dynamic formats and 128 rtpmaps, none of them usable.
        let mut worst = String::from("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.9\r\n");
        let formats: Vec<String> = (0..128).map(|pt| pt.to_string()).collect();
        while worst.len() < 1 << 20 {
            let _ = write!(worst, "m=audio 5000 RTP/AVP {}\r\n", formats.join(" "));
            for pt in 0..128 {
                let _ = write!(worst, "a=rtpmap:{pt} X/8000\r\n");
            }
        }
        let offer = parse(worst.as_bytes()).unwrap();
        assert!(matches!(
            answer(&mut SdpSession::new(1), &offer, &local()),
            Err(NegotiationError::NoCommonCodec { .. })
        ));
    }
}
