//! Helpers shared by the tests of every part of the SDP module: bodies as
//! real peers send them, our side of a negotiation, and shortcuts that
//! parse an offer and answer it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{answer, parse, LocalMedia, NegotiatedMedia, NegotiationError, SdpSession};
use crate::media::g711::Codec;

/// Join lines with CRLF, as peers send them.
pub(super) fn sdp(lines: &[&str]) -> Vec<u8> {
    let mut body = lines.join("\r\n");
    body.push_str("\r\n");
    body.into_bytes()
}

pub(super) fn local() -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        port: 40000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        ptime_ms: 20,
    }
}

pub(super) fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> Option<SocketAddr> {
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
}

/// Parse an offer and answer it with [`local`].
pub(super) fn negotiate(body: &[u8]) -> Result<(NegotiatedMedia, String), NegotiationError> {
    let offer = parse(body).expect("test offer parses");
    answer(&mut SdpSession::new(42), &offer, &local())
}

pub(super) fn negotiate_ok(body: &[u8]) -> (NegotiatedMedia, String) {
    negotiate(body).expect("offer is acceptable")
}

pub(super) fn negotiate_err(body: &[u8]) -> NegotiationError {
    negotiate(body).expect_err("offer must be refused")
}

/// A minimal offer with the given m= line and extra lines after it.
pub(super) fn simple_offer(m_line: &str, extra: &[&str]) -> Vec<u8> {
    let mut lines = vec![
        "v=0",
        "o=- 1 1 IN IP4 203.0.113.5",
        "s=-",
        "c=IN IP4 203.0.113.5",
        "t=0 0",
        m_line,
    ];
    lines.extend_from_slice(extra);
    sdp(&lines)
}

/// Exactly what interop/sipp/uac_ivr_pcap.xml sends (placeholders filled).
pub(super) fn sipp_offer() -> Vec<u8> {
    sdp(&[
        "v=0",
        "o=caller 53655765 2353687637 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 18000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ])
}

/// baresip 1.0 as configured in interop/baresip (rtcp_mux no).
pub(super) fn baresip_offer() -> Vec<u8> {
    sdp(&[
        "v=0",
        "o=- 1683713577 2384236540 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "a=tool:baresip 1.0.0",
        "m=audio 18100 RTP/AVP 0 8 101",
        "b=AS:80",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=rtcp:18101",
        "a=sendrecv",
        "a=label:1",
        "a=ssrc:1813151537 cname:8c9b1e5a-7a5c-4d4f",
        "a=ptime:20",
    ])
}

/// Twinkle lists speex first and PCMA before PCMU.
pub(super) fn twinkle_offer() -> Vec<u8> {
    sdp(&[
        "v=0",
        "o=twinkle 1476283574 580329410 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        "m=audio 18400 RTP/AVP 98 97 8 0 3 101",
        "a=rtpmap:98 speex/16000",
        "a=rtpmap:97 speex/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:3 GSM/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
    ])
}

pub(super) fn asterisk_offer() -> Vec<u8> {
    sdp(&[
        "v=0",
        "o=- 1680000000 1680000000 IN IP4 192.0.2.10",
        "s=Asterisk",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 10000 RTP/AVP 0 3 8 9 111 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:3 GSM/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 useinbandfec=1",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=maxptime:150",
        "a=sendrecv",
    ])
}

/// FreeSWITCH-style: PCMU on a dynamic number, telephone-event twice.
pub(super) fn freeswitch_offer() -> Vec<u8> {
    sdp(&[
        "v=0",
        "o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.7",
        "s=FreeSWITCH",
        "c=IN IP4 198.51.100.7",
        "t=0 0",
        "m=audio 24000 RTP/AVP 102 98 9 96 101",
        "a=rtpmap:102 opus/48000/2",
        "a=fmtp:102 useinbandfec=1; maxplaybackrate=48000",
        "a=rtpmap:98 PCMU/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:96 telephone-event/48000",
        "a=fmtp:96 0-16",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "a=rtcp:24001 IN IP4 198.51.100.7",
    ])
}
