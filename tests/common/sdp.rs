//! Just enough SDP (RFC 4566 / RFC 3264) for the tests: write a normal
//! audio offer on 127.0.0.1 and read the first audio stream of an answer.
//! Deliberately separate from the server's SDP code.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Media direction attribute (RFC 3264 §5.1); `SendRecv` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub fn parse(attr: &str) -> Option<Direction> {
        match attr.trim() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a desk phone offers: PCMU with telephone-event 101, sendrecv.
pub fn phone_offer(rtp_port: u16) -> String {
    offer_sdp(
        rtp_port,
        &[(0, "PCMU/8000")],
        Some(101),
        Direction::SendRecv,
    )
}

/// A normal audio offer from 127.0.0.1: `codecs` as `(pt, "PCMU/8000")`,
/// optionally telephone-event (`0-16`), ptime 20 and the direction.
pub fn offer_sdp(
    rtp_port: u16,
    codecs: &[(u8, &str)],
    telephone_event_pt: Option<u8>,
    direction: Direction,
) -> String {
    let mut pts: Vec<String> = codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    if let Some(te) = telephone_event_pt {
        pts.push(te.to_string());
    }
    let session_id = std::process::id();
    let mut sdp = format!(
        "v=0\r\n\
         o=testua {session_id} 1 IN IP4 127.0.0.1\r\n\
         s=pinbridge test\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         m=audio {rtp_port} RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for (pt, name) in codecs {
        sdp.push_str(&format!("a=rtpmap:{pt} {name}\r\n"));
    }
    if let Some(te) = telephone_event_pt {
        sdp.push_str(&format!("a=rtpmap:{te} telephone-event/8000\r\n"));
        sdp.push_str(&format!("a=fmtp:{te} 0-16\r\n"));
    }
    sdp.push_str("a=ptime:20\r\n");
    sdp.push_str(&format!("a={direction}\r\n"));
    sdp
}

/// What the tests need from an SDP answer: the first `m=audio` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpAnswer {
    /// Connection address (media-level `c=` wins over session-level).
    pub addr: IpAddr,
    /// RTP port; 0 means the stream was rejected.
    pub port: u16,
    /// Payload types in `m=` order.
    pub pts: Vec<u8>,
    /// `a=rtpmap` entries: (pt, "PCMU/8000").
    pub rtpmap: Vec<(u8, String)>,
    /// `a=fmtp` entries: (pt, parameters).
    pub fmtp: Vec<(u8, String)>,
    /// Media-level direction, else session-level, else sendrecv.
    pub direction: Direction,
    pub ptime: Option<u32>,
}

impl SdpAnswer {
    /// Where to send RTP.
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The encoding name of a payload type from `a=rtpmap`, or the static
    /// RFC 3551 name for 0 and 8.
    pub fn encoding(&self, pt: u8) -> Option<String> {
        self.rtpmap
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, name)| name.clone())
            .or(match pt {
                0 => Some("PCMU/8000".into()),
                8 => Some("PCMA/8000".into()),
                _ => None,
            })
    }

    /// The payload type mapped to telephone-event, if any.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.rtpmap
            .iter()
            .find(|(_, name)| name.to_ascii_lowercase().starts_with("telephone-event/"))
            .map(|(pt, _)| *pt)
    }
}

/// Parses the first audio stream of an SDP body.
pub fn parse_sdp_answer(body: &str) -> Result<SdpAnswer, String> {
    let mut session_addr: Option<IpAddr> = None;
    let mut session_dir: Option<Direction> = None;
    let mut media: Option<MediaBuilder> = None;
    let mut section = Section::Session;
    for line in body.lines().map(str::trim_end) {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        if kind == "m" {
            section = if media.is_none() && value.starts_with("audio ") {
                media = Some(MediaBuilder::from_m_line(value)?);
                Section::Audio
            } else {
                Section::Other
            };
            continue;
        }
        match (section, kind, media.as_mut()) {
            (Section::Session, "c", _) => session_addr = Some(parse_connection(value)?),
            (Section::Session, "a", _) => session_dir = session_dir.or(Direction::parse(value)),
            (Section::Audio, "c", Some(m)) => m.addr = Some(parse_connection(value)?),
            (Section::Audio, "a", Some(m)) => m.attribute(value),
            _ => {}
        }
    }
    let media = media.ok_or("no m=audio line")?;
    let addr = media
        .addr
        .or(session_addr)
        .ok_or("no c= line for the audio stream")?;
    Ok(SdpAnswer {
        addr,
        port: media.port,
        pts: media.pts,
        rtpmap: media.rtpmap,
        fmtp: media.fmtp,
        direction: media
            .direction
            .or(session_dir)
            .unwrap_or(Direction::SendRecv),
        ptime: media.ptime,
    })
}

/// Which part of the SDP the current line belongs to.
#[derive(Clone, Copy)]
enum Section {
    Session,
    /// The first audio stream, the one we report.
    Audio,
    /// Any other media section.
    Other,
}

#[derive(Default)]
struct MediaBuilder {
    addr: Option<IpAddr>,
    port: u16,
    pts: Vec<u8>,
    rtpmap: Vec<(u8, String)>,
    fmtp: Vec<(u8, String)>,
    direction: Option<Direction>,
    ptime: Option<u32>,
}

impl MediaBuilder {
    /// `audio <port>[/<n>] RTP/AVP <pt>...`
    fn from_m_line(value: &str) -> Result<MediaBuilder, String> {
        let fields: Vec<&str> = value.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(format!("short m= line {value:?}"));
        }
        let port_text = fields[1].split('/').next().unwrap_or(fields[1]);
        let port = port_text
            .parse()
            .map_err(|_| format!("bad port in m= line {value:?}"))?;
        let pts = fields[3..]
            .iter()
            .map(|pt| pt.parse().map_err(|_| format!("bad payload type {pt:?}")))
            .collect::<Result<Vec<u8>, String>>()?;
        Ok(MediaBuilder {
            port,
            pts,
            ..MediaBuilder::default()
        })
    }

    fn attribute(&mut self, value: &str) {
        if let Some(dir) = Direction::parse(value) {
            self.direction = Some(dir);
        } else if let Some(rest) = value.strip_prefix("rtpmap:") {
            if let Some(entry) = pt_and_rest(rest) {
                self.rtpmap.push(entry);
            }
        } else if let Some(rest) = value.strip_prefix("fmtp:") {
            if let Some(entry) = pt_and_rest(rest) {
                self.fmtp.push(entry);
            }
        } else if let Some(rest) = value.strip_prefix("ptime:") {
            self.ptime = rest.trim().parse().ok();
        }
    }
}

/// `"101 telephone-event/8000"` -> `(101, "telephone-event/8000")`.
fn pt_and_rest(text: &str) -> Option<(u8, String)> {
    let (pt, rest) = text.trim().split_once(char::is_whitespace)?;
    Some((pt.parse().ok()?, rest.trim().to_string()))
}

/// `IN IP4 127.0.0.1` -> 127.0.0.1 (a multicast `/ttl` suffix is dropped).
fn parse_connection(value: &str) -> Result<IpAddr, String> {
    let addr = value
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| format!("short c= line {value:?}"))?;
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| format!("bad address in c= line {value:?}"))
}
