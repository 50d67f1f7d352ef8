//! RTP in a packet capture: which UDP datagrams are RTP, and which payload
//! type carries telephone-events. Used by `detect-dtmf` and the fixtures.
//!
//! A datagram is taken as RTP when [`rtp_rs::RtpReader`] accepts its header
//! (version 2, CSRC list, extension and padding within the packet) and its
//! payload type is not one that RTCP's packet types alias (RFC 5761 §4:
//! SR..XR, 200-207, read as 72-79 with the marker bit). SIP, STUN, DTLS
//! and keep-alives never have version 2 in their first byte.

use std::net::SocketAddr;
use std::time::Duration;

use rtp_rs::RtpReader;

use crate::media::pcap::UdpDatagram;

/// One RTP packet of a capture; the payload (padding removed) is borrowed
/// from the capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacketInfo<'a> {
    /// Capture time, since the Unix epoch.
    pub time: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: &'a [u8],
}

/// Payload types that collide with RTCP packet types 200-207.
const RTCP_ALIASES: std::ops::RangeInclusive<u8> = 72..=79;

/// Parses one datagram as RTP, or `None` if it is not RTP.
pub fn parse_rtp<'a>(d: &UdpDatagram<'a>) -> Option<RtpPacketInfo<'a>> {
    let r = RtpReader::new(d.payload).ok()?;
    let payload_type = r.payload_type();
    if RTCP_ALIASES.contains(&payload_type) {
        return None;
    }
    Some(RtpPacketInfo {
        time: d.time,
        src: d.src,
        dst: d.dst,
        ssrc: r.ssrc(),
        sequence: r.sequence_number().into(),
        timestamp: r.timestamp(),
        marker: r.mark(),
        payload_type,
        payload: r.payload(),
    })
}

/// The RTP packets among `datagrams`, in the same order; everything else
/// (SIP, RTCP, STUN, DNS, ...) is left out.
pub fn rtp_packets<'a>(datagrams: &[UdpDatagram<'a>]) -> Vec<RtpPacketInfo<'a>> {
    datagrams.iter().filter_map(parse_rtp).collect()
}

/// The largest telephone-event payload taken as plausible: 16 events (a
/// packet may carry several, RFC 4733 §2.5.1.5, or redundant copies).
const MAX_EVENT_BLOCKS: usize = 16;

/// Whether `payload` reads as RFC 4733 DTMF events: a non-empty whole
/// number of 4-byte blocks, each with an event code 0-16 (the keys and
/// flash) and the reserved bit clear.
pub fn plausible_event_payload(payload: &[u8]) -> bool {
    !payload.is_empty()
        && payload.len() % 4 == 0
        && payload.len() <= 4 * MAX_EVENT_BLOCKS
        && payload
            .chunks_exact(4)
            .all(|b| b[0] <= 16 && b[1] & 0x40 == 0)
}

/// Guesses the telephone-event payload type from the packets alone: the
/// dynamic payload type (96-127) whose every payload is plausible as DTMF
/// events ([`plausible_event_payload`]); if several are, the one with the
/// most packets (the lowest on a tie). `None` when no dynamic payload type
/// qualifies.
pub fn infer_event_payload_type(packets: &[RtpPacketInfo]) -> Option<u8> {
    // Per dynamic PT: (packets, all plausible so far).
    let mut seen = [(0u32, true); 32];
    for p in packets {
        if let Some(slot) = p
            .payload_type
            .checked_sub(96)
            .and_then(|i| seen.get_mut(usize::from(i)))
        {
            slot.0 += 1;
            slot.1 &= plausible_event_payload(p.payload);
        }
    }
    let mut best: Option<(u8, u32)> = None;
    for (i, &(count, ok)) in seen.iter().enumerate() {
        if count > 0 && ok && best.is_none_or(|(_, c)| count > c) {
            best = Some((96 + i as u8, count));
        }
    }
    best.map(|(pt, _)| pt)
}

/// The payload types that SDP bodies in the capture (SIP over UDP) map to
/// `telephone-event/8000`, in order of appearance, without repeats.
///
/// This is a scan for `a=rtpmap:<pt> telephone-event/8000` lines, not a
/// SIP parser: good enough to name the payload type when the capture holds
/// the call set-up.
pub fn sdp_event_payload_types(datagrams: &[UdpDatagram]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in datagrams {
        // SIP is text; RTP's first byte (0x80..) is never ASCII.
        if !d.payload.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(d.payload) else {
            continue;
        };
        for line in text.lines() {
            if let Some(pt) = rtpmap_telephone_event(line) {
                if !out.contains(&pt) {
                    out.push(pt);
                }
            }
        }
    }
    out
}

/// `a=rtpmap:101 telephone-event/8000` (optionally `/1`) -> 101.
fn rtpmap_telephone_event(line: &str) -> Option<u8> {
    let rest = line.trim().strip_prefix("a=rtpmap:")?;
    let (pt, encoding) = rest.split_once(char::is_whitespace)?;
    let pt: u8 = pt.trim().parse().ok().filter(|&pt| pt < 128)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?;
    let rate = parts.next()?;
    (name.eq_ignore_ascii_case("telephone-event") && rate == "8000").then_some(pt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(payload: &[u8]) -> UdpDatagram<'_> {
        UdpDatagram {
            time: Duration::from_millis(1500),
            src: "10.0.0.1:4000".parse().unwrap(),
            dst: "10.0.0.2:5000".parse().unwrap(),
            payload,
        }
    }

    fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn info<'a>(pt: u8, payload: &'a [u8]) -> RtpPacketInfo<'a> {
        RtpPacketInfo {
            time: Duration::ZERO,
            src: "10.0.0.1:4000".parse().unwrap(),
            dst: "10.0.0.2:5000".parse().unwrap(),
            ssrc: 1,
            sequence: 1,
            timestamp: 0,
            marker: false,
            payload_type: pt,
            payload,
        }
    }

    #[test]
    fn parses_rtp_header_fields() {
        let bytes = rtp(
            101,
            true,
            0xBEEF,
            0xDEAD_BEEF,
            0x0102_0304,
            &[1, 0x8A, 0, 160],
        );
        let p = parse_rtp(&dgram(&bytes)).unwrap();
        assert_eq!(p.time, Duration::from_millis(1500));
        assert_eq!((p.payload_type, p.marker, p.sequence), (101, true, 0xBEEF));
        assert_eq!((p.timestamp, p.ssrc), (0xDEAD_BEEF, 0x0102_0304));
        assert_eq!(p.payload, &[1, 0x8A, 0, 160]);
    }

    #[test]
    fn padding_csrc_and_extension_are_handled() {
        // P bit, one CSRC, extension of one word, 2 bytes of payload, 2 of padding.
        let mut b = vec![0xB1, 0];
        b.extend_from_slice(&[0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        b.extend_from_slice(&[0, 0, 0, 9]); // CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension
        b.extend_from_slice(&[0xAA, 0xBB, 0, 2]); // payload + padding
        let p = parse_rtp(&dgram(&b)).unwrap();
        assert_eq!(p.payload, &[0xAA, 0xBB]);
    }

    #[test]
    fn non_rtp_is_left_out() {
        let sip = b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\n\r\n";
        let sr = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let app = [0x80, 204, 0, 2, 0, 0, 0, 1, b'P', b'I', b'N', b'G'];
        let stun = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let keepalive = b"\r\n\r\n";
        let short = [0x80, 0, 0, 1];
        let v1 = rtp(0, false, 1, 1, 1, &[0; 160]);
        let mut v1 = v1.clone();
        v1[0] = 0x40;
        let audio = rtp(0, false, 1, 160, 7, &[0xFF; 160]);
        let ds: Vec<_> = [&sip[..], &sr, &app, &stun, keepalive, &short, &v1, &audio]
            .into_iter()
            .map(dgram)
            .collect();
        let pkts = rtp_packets(&ds);
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].ssrc, 7);
    }

    #[test]
    fn event_payloads() {
        assert!(plausible_event_payload(&[1, 0x0A, 0, 160]));
        assert!(plausible_event_payload(&[11, 0x8A, 3, 0x20, 16, 0, 0, 0]));
        assert!(!plausible_event_payload(&[]));
        assert!(!plausible_event_payload(&[1, 0x0A, 0]));
        assert!(!plausible_event_payload(&[17, 0x0A, 0, 160]));
        assert!(!plausible_event_payload(&[1, 0x4A, 0, 160])); // reserved bit
        assert!(!plausible_event_payload(&[0xFF; 160])); // PCMU silence
        assert!(!plausible_event_payload(&[0xD5; 160])); // PCMA silence
    }

    #[test]
    fn infers_the_dynamic_payload_type_of_events() {
        let ev = [5u8, 0x0A, 0, 160];
        let audio = [0xFFu8; 160];
        let opus = [0x78u8, 1, 2, 3, 4, 5, 6, 7];
        let pkts = [
            info(0, &audio),
            info(96, &ev),
            info(96, &ev),
            info(111, &opus),
            info(0, &audio),
        ];
        assert_eq!(infer_event_payload_type(&pkts), Some(96));
        let pkts = [info(127, &ev), info(0, &ev), info(101, &audio)];
        assert_eq!(infer_event_payload_type(&pkts), Some(127));
        // One implausible packet disqualifies its payload type.
        let pkts = [info(101, &ev), info(101, &audio), info(102, &ev)];
        assert_eq!(infer_event_payload_type(&pkts), Some(102));
        assert_eq!(infer_event_payload_type(&[info(0, &audio)]), None);
        assert_eq!(infer_event_payload_type(&[]), None);
        // Static payload types are never taken, however plausible.
        assert_eq!(infer_event_payload_type(&[info(13, &ev)]), None);
    }

    #[test]
    fn reads_telephone_event_from_sdp() {
        let invite = b"INVITE sip:1000@127.0.0.1:5070 SIP/2.0\r\n\
            Content-Type: application/sdp\r\n\r\n\
            v=0\r\nm=audio 18000 RTP/AVP 0 8 96 101\r\n\
            a=rtpmap:96 telephone-event/48000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
        let ok200 = b"SIP/2.0 200 OK\r\n\r\nv=0\r\na=rtpmap:101 TELEPHONE-EVENT/8000/1\n";
        let other = b"SIP/2.0 200 OK\r\n\r\na=rtpmap:100 telephone-event/8000\r\n";
        let ds = [
            dgram(invite),
            dgram(ok200),
            dgram(other),
            dgram(&[0x80, 101]),
        ];
        assert_eq!(sdp_event_payload_types(&ds), vec![101, 100]);
        assert_eq!(
            rtpmap_telephone_event("a=rtpmap:200 telephone-event/8000"),
            None
        );
        assert_eq!(rtpmap_telephone_event("a=rtpmap:101 PCMU/8000"), None);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/dtmf")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    // RTP/RTCP/SIP counts as tshark decodes the same files.

    #[test]
    fn real_captures_rtp_and_event_payload_types() {
        let file = fixture("baresip_1234hash.pcapng");
        let ds = crate::media::pcap::read_udp_datagrams(&file).unwrap();
        let pkts = rtp_packets(&ds);
        assert_eq!(pkts.len(), 262); // 270 UDP = 6 SIP + 2 RTCP + 262 RTP
        assert_eq!(infer_event_payload_type(&pkts), Some(101));
        assert_eq!(sdp_event_payload_types(&ds), vec![101]);
        assert_eq!(pkts.iter().filter(|p| p.payload_type == 101).count(), 60);

        let file = fixture("twinkle_rfc2833_1111.pcapng");
        let ds = crate::media::pcap::read_udp_datagrams(&file).unwrap();
        let pkts = rtp_packets(&ds);
        assert_eq!(pkts.len(), 40); // 49 UDP = 6 SIP + 3 RTCP + 40 RTP
        assert!(pkts.iter().all(|p| !p.marker)); // Twinkle sets no marker bit
        assert_eq!(infer_event_payload_type(&pkts), Some(101));

        let file = fixture("sipp_g711a.pcap");
        let ds = crate::media::pcap::read_udp_datagrams(&file).unwrap();
        let pkts = rtp_packets(&ds);
        assert_eq!(pkts.len(), 236);
        assert!(pkts
            .iter()
            .all(|p| p.payload_type == 8 && p.payload.len() == 240));
        assert_eq!(infer_event_payload_type(&pkts), None);
    }
}
