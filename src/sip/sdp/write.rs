//! The SDP we send: our offer, the text of our answer, and the `o=` line
//! whose version tells the peer whether anything changed.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::negotiate::{EventSet, Selection};
use super::{Direction, LocalMedia, MediaDescription, SessionDescription, TELEPHONE_EVENT_PT};
use crate::media::g711::Codec;

/// Our side of the SDP exchanges of one dialog: the `o=` identifier and
/// version.
///
/// RFC 3264 §8 requires the version to grow by one each time the SDP we send
/// changes, and to stay put when we re-send the same description (for
/// example in the answer to a session refresh), so that the peer can tell a
/// real change from a repeat. [`SdpSession`] remembers what it sent last to
/// decide.
#[derive(Clone, Debug)]
pub struct SdpSession {
    session_id: u64,
    version: u64,
    /// Address and everything after the `o=` line of the last SDP sent.
    last_sent: Option<(IpAddr, String)>,
}

impl SdpSession {
    /// A new session. Pick `session_id` at random per dialog; values below
    /// 2^32 keep peers that store it in 32 bits (pjsip) happy.
    pub fn new(session_id: u64) -> Self {
        SdpSession {
            session_id,
            version: 1,
            last_sent: None,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Version of the last SDP produced (or of the next one, before any).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Wrap a media section into a full body, bumping the version if it
    /// differs from the last one sent.
    pub(super) fn render(&mut self, addr: IpAddr, media_section: String) -> String {
        let addr = addr.to_canonical();
        if let Some((last_addr, last_media)) = &self.last_sent {
            if *last_addr != addr || *last_media != media_section {
                self.version = self.version.wrapping_add(1);
            }
        }
        let kind = address_type(addr);
        let body = format!(
            "v=0\r\no=pinbridge {id} {version} IN {kind} {addr}\r\ns=pinbridge\r\nc=IN {kind} {addr}\r\nt=0 0\r\n{media_section}",
            id = self.session_id,
            version = self.version,
        );
        self.last_sent = Some((addr, media_section));
        body
    }
}

fn address_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Our offer, for INVITEs that came without SDP (we offer in the 200 OK) and
/// for re-INVITEs we send (hold, resume, address change).
///
/// One `RTP/AVP` audio line with all our codecs in preference order and
/// `telephone-event/8000` at [`TELEPHONE_EVENT_PT`] for DTMF 0-15 and flash.
pub fn offer(session: &mut SdpSession, local: &LocalMedia, direction: Direction) -> String {
    let codecs = unique_codecs(&local.codecs);
    let te = TELEPHONE_EVENT_PT;
    let mut section = format!("m=audio {} RTP/AVP", local.port);
    for codec in &codecs {
        let _ = write!(section, " {}", codec.payload_type());
    }
    let _ = write!(section, " {te}\r\n");
    for codec in &codecs {
        let _ = write!(
            section,
            "a=rtpmap:{} {}/8000\r\n",
            codec.payload_type(),
            codec.encoding_name()
        );
    }
    let _ = write!(
        section,
        "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} {}\r\na=ptime:{}\r\na={direction}\r\n",
        EventSet::OURS,
        local.ptime_ms
    );
    session.render(local.addr, section)
}

fn unique_codecs(codecs: &[Codec]) -> Vec<Codec> {
    let mut out = Vec::with_capacity(codecs.len());
    for &codec in codecs {
        if !out.contains(&codec) {
            out.push(codec);
        }
    }
    out
}

/// The media part of an answer: the accepted line with what was selected,
/// and every other line of the offer rejected, in the offer's order (an
/// answer mirrors its offer line for line, RFC 3264 §6).
pub(super) fn answer_media(
    offer: &SessionDescription,
    accepted: usize,
    local: &LocalMedia,
    selection: &Selection,
    ptime_ms: u32,
    direction: Direction,
) -> String {
    let mut section = String::new();
    for (index, line) in offer.media.iter().enumerate() {
        if index == accepted {
            write_accepted(&mut section, line, local, selection, ptime_ms, direction);
        } else {
            write_rejected(&mut section, line);
        }
    }
    section
}

fn write_accepted(
    out: &mut String,
    offered: &MediaDescription,
    local: &LocalMedia,
    selection: &Selection,
    ptime_ms: u32,
    direction: Direction,
) {
    let codec_pt = selection.codec_pt;
    let _ = write!(
        out,
        "m={} {} {} {codec_pt}",
        offered.media, local.port, offered.proto
    );
    if let Some((pt, _)) = selection.telephone_event {
        let _ = write!(out, " {pt}");
    }
    out.push_str("\r\n");
    let _ = write!(
        out,
        "a=rtpmap:{codec_pt} {}/8000\r\n",
        selection.codec.encoding_name()
    );
    if let Some((pt, events)) = selection.telephone_event {
        let _ = write!(
            out,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} {events}\r\n"
        );
    }
    let _ = write!(out, "a=ptime:{ptime_ms}\r\na={direction}\r\n");
}

/// A rejected line: port 0, same proto, and one of its formats (the grammar
/// needs at least one; `0` if the offer had none).
fn write_rejected(out: &mut String, offered: &MediaDescription) {
    let format = offered.formats.first().map_or("0", String::as_str);
    let _ = write!(out, "m={} 0 {} {format}\r\n", offered.media, offered.proto);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::test_support::*;
    use crate::sip::sdp::{accept_answer, answer, parse, NegotiatedMedia};
    use std::net::Ipv4Addr;

    // --- the answer ------------------------------------------------------

    #[test]
    fn sipp_offer_answer_text() {
        let (media, text) = negotiate_ok(&sipp_offer());
        assert_eq!(
            media,
            NegotiatedMedia {
                codec: Codec::Pcmu,
                codec_pt: 0,
                telephone_event_pt: Some(101),
                remote_rtp: v4(127, 0, 0, 1, 18000),
                ptime_ms: 20,
                local_direction: Direction::SendRecv,
            }
        );
        assert_eq!(
            text,
            "v=0\r\n\
             o=pinbridge 42 1 IN IP4 192.0.2.1\r\n\
             s=pinbridge\r\n\
             c=IN IP4 192.0.2.1\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn answer_states_the_ptime_we_send() {
        let (_, text) = negotiate_ok(&simple_offer("m=audio 5000 RTP/AVP 0", &["a=ptime:30"]));
        assert!(text.contains("a=ptime:30\r\n"), "{text}");
    }

    #[test]
    fn rejected_line_without_formats_gets_one() {
        let body = simple_offer("m=audio 5000 RTP/AVP 0", &["m=application 9 TCP/BFCP"]);
        let offer = parse(&body).unwrap();
        assert!(offer.media[1].formats.is_empty());
        let (_, text) = negotiate_ok(&body);
        assert!(text.ends_with("m=application 0 TCP/BFCP 0\r\n"), "{text}");
    }

    #[test]
    fn answer_round_trips_through_parse() {
        for body in [
            sipp_offer(),
            baresip_offer(),
            twinkle_offer(),
            asterisk_offer(),
            freeswitch_offer(),
        ] {
            let offered = parse(&body).unwrap();
            let (ours, text) = answer(&mut SdpSession::new(9), &offered, &local()).unwrap();
            let parsed = parse(text.as_bytes()).unwrap();
            assert_eq!(parsed.media.len(), offered.media.len());
            assert_eq!(parsed.origin.username, "pinbridge");
            assert_eq!(parsed.session_name.as_deref(), Some("pinbridge"));
            // Seen from the offerer, the answer yields the mirror image.
            let theirs = accept_answer(&[Codec::Pcmu, Codec::Pcma], &parsed).unwrap();
            assert_eq!(theirs.codec, ours.codec);
            assert_eq!(theirs.codec_pt, ours.codec_pt);
            assert_eq!(theirs.telephone_event_pt, ours.telephone_event_pt);
            assert_eq!(theirs.ptime_ms, ours.ptime_ms);
            assert_eq!(theirs.remote_rtp, v4(192, 0, 2, 1, 40000));
            assert_eq!(theirs.local_direction, ours.local_direction.reverse());
        }
    }

    // --- our offer -------------------------------------------------------

    #[test]
    fn offer_text() {
        let text = offer(&mut SdpSession::new(77), &local(), Direction::SendRecv);
        assert_eq!(
            text,
            "v=0\r\n\
             o=pinbridge 77 1 IN IP4 192.0.2.1\r\n\
             s=pinbridge\r\n\
             c=IN IP4 192.0.2.1\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn offer_dedupes_codecs_and_keeps_order() {
        let mine = LocalMedia {
            codecs: vec![Codec::Pcma, Codec::Pcmu, Codec::Pcma],
            ..local()
        };
        let text = offer(&mut SdpSession::new(1), &mine, Direction::SendOnly);
        assert!(text.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"), "{text}");
        assert!(text.ends_with("a=sendonly\r\n"));
    }

    #[test]
    fn ipv4_mapped_local_address_is_written_as_ip4() {
        let mapped = LocalMedia {
            addr: "::ffff:192.0.2.1".parse().unwrap(),
            ..local()
        };
        let text = offer(&mut SdpSession::new(1), &mapped, Direction::SendRecv);
        assert!(text.contains("c=IN IP4 192.0.2.1\r\n"), "{text}");
    }

    // --- o= version ------------------------------------------------------

    fn origin_version(text: &str) -> String {
        let offer = parse(text.as_bytes()).unwrap();
        offer.origin.session_version
    }

    #[test]
    fn version_changes_only_when_content_changes() {
        let mut session = SdpSession::new(1000);
        let talking = parse(&sipp_offer()).unwrap();
        let held = parse(&simple_offer(
            "m=audio 18000 RTP/AVP 0 8 101",
            &[
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-16",
                "a=sendonly",
            ],
        ))
        .unwrap();

        let (_, a) = answer(&mut session, &talking, &local()).unwrap();
        assert_eq!(origin_version(&a), "1");
        let (_, b) = answer(&mut session, &talking, &local()).unwrap();
        assert_eq!(a, b, "a refresh gets the identical SDP");
        let (_, c) = answer(&mut session, &held, &local()).unwrap();
        assert_eq!(origin_version(&c), "2");
        let (_, d) = answer(&mut session, &held, &local()).unwrap();
        assert_eq!(origin_version(&d), "2");
        let (_, e) = answer(&mut session, &talking, &local()).unwrap();
        assert_eq!(origin_version(&e), "3");
        assert_eq!(session.version(), 3);
        assert_eq!(session.session_id(), 1000);

        // Our own offers share the counter.
        let f = offer(&mut session, &local(), Direction::SendRecv);
        assert_eq!(origin_version(&f), "4");
        let g = offer(&mut session, &local(), Direction::SendRecv);
        assert_eq!(f, g);
        let h = offer(&mut session, &local(), Direction::SendOnly);
        assert_eq!(origin_version(&h), "5");
        let moved = LocalMedia {
            port: 40002,
            ..local()
        };
        let i = offer(&mut session, &moved, Direction::SendOnly);
        assert_eq!(origin_version(&i), "6");
        let readdressed = LocalMedia {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            ..moved
        };
        let j = offer(&mut session, &readdressed, Direction::SendOnly);
        assert_eq!(origin_version(&j), "7");
    }
}
