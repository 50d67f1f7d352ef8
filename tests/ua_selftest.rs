//! Self-test of the test user agent in `tests/common`, without the server:
//! unit tests of its SIP parser, G.711 codec, RTP and SDP code; scripted
//! fake peers on loopback checking the requests it builds (RFC 3261 dialog
//! rules, CANCEL, ACK for 2xx and non-2xx, TCP framing); and real calls
//! against SIPp's built-in UAS over UDP and TCP with RTP echoed back.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::g711;
use common::peers;
use common::rtp::{parse_rtp, RtpHeader, RtpParseError, RtpRecorder};
use common::sdp::{offer_sdp, parse_sdp_answer, Direction};
use common::sipmsg::{param, uri_of, uri_param, Msg, MsgBuilder, StartLine};
use common::ua::{random_token, InviteOptions, TestUa, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const WAIT: Duration = Duration::from_secs(3);

// ================================================================ sipmsg

#[test]
fn sipmsg_parses_compact_headers_case_insensitively() {
    let raw = "INVITE sip:1000@127.0.0.1:5060 SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n\
        f: \"Alice\" <sip:alice@example.com>;tag=ftag\r\n\
        t: <sip:1000@127.0.0.1>\r\n\
        i: call-1@example.com\r\n\
        CSEQ: 7 INVITE\r\n\
        m: <sip:alice@10.0.0.1:5062>\r\n\
        k: timer, 100rel\r\n\
        s: hello\r\n\
        c: application/sdp\r\n\
        l: 4\r\n\
        \r\n\
        v=0\r\ntrailing";
    let msg = Msg::parse(raw.as_bytes()).expect("parses");
    assert_eq!(msg.method(), Some("INVITE"));
    assert_eq!(msg.uri(), Some("sip:1000@127.0.0.1:5060"));
    assert_eq!(msg.header("Call-ID"), Some("call-1@example.com"));
    assert_eq!(msg.header("call-id"), Some("call-1@example.com"));
    assert_eq!(msg.header("i"), Some("call-1@example.com"));
    assert_eq!(msg.header_param("From", "tag").as_deref(), Some("ftag"));
    assert_eq!(msg.header_param("To", "tag"), None);
    assert_eq!(
        uri_of(msg.header("From").expect("From")),
        "sip:alice@example.com"
    );
    assert_eq!(
        uri_of(msg.header("Contact").expect("m")),
        "sip:alice@10.0.0.1:5062"
    );
    assert_eq!(
        msg.header("Supported"),
        Some("timer, 100rel"),
        "k is not split"
    );
    assert_eq!(msg.header("Subject"), Some("hello"));
    assert_eq!(msg.header("Content-Type"), Some("application/sdp"));
    assert_eq!(msg.cseq(), Some((7, "INVITE".to_string())));
    assert_eq!(msg.top_branch().as_deref(), Some("z9hG4bKabc"));
    assert_eq!(msg.header_param("Via", "rport").as_deref(), Some(""));
    assert_eq!(msg.body, b"v=0\r");
}

#[test]
fn sipmsg_unfolds_continuation_lines() {
    let raw = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5062\r\n\
        \t;branch=z9hG4bKfold;received=127.0.0.2\r\n\
        Subject: I know you're there,\r\n   pick up the phone\r\n\
        To: <sip:a@b>\r\n  ;tag=totag\r\n\
        Content-Length: 0\r\n\r\n";
    let msg = Msg::parse(raw.as_bytes()).expect("parses");
    assert_eq!(msg.status(), Some(200));
    assert_eq!(msg.reason(), Some("OK"));
    assert_eq!(
        msg.header("Subject"),
        Some("I know you're there, pick up the phone")
    );
    assert_eq!(msg.top_branch().as_deref(), Some("z9hG4bKfold"));
    assert_eq!(
        msg.header_param("Via", "received").as_deref(),
        Some("127.0.0.2")
    );
    assert_eq!(msg.header_param("To", "tag").as_deref(), Some("totag"));
    assert!(msg.body.is_empty());
}

#[test]
fn sipmsg_splits_multiple_vias_and_routes_in_order() {
    let raw = "SIP/2.0 180 Ringing\r\n\
        Via: SIP/2.0/UDP a.example;branch=z9hG4bK1;received=1.2.3.4;rport=5000, SIP/2.0/TCP b.example;branch=z9hG4bK2\r\n\
        v: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n\
        Record-Route: <sip:p1.example;lr>, \"Proxy, Two\" <sip:p2.example;lr>\r\n\
        Record-Route: <sip:p3.example;lr;transport=tcp>\r\n\
        Contact: \"Bob <the builder>\" <sip:bob@10.0.0.9:5070;transport=udp>;expires=60\r\n\
        l: 0\r\n\r\n";
    let msg = Msg::parse(raw.as_bytes()).expect("parses");
    let vias = msg.header_all("via");
    assert_eq!(vias.len(), 3);
    assert_eq!(param(vias[0], "branch").as_deref(), Some("z9hG4bK1"));
    assert_eq!(param(vias[0], "received").as_deref(), Some("1.2.3.4"));
    assert_eq!(param(vias[0], "rport").as_deref(), Some("5000"));
    assert_eq!(vias[1], "SIP/2.0/TCP b.example;branch=z9hG4bK2");
    assert_eq!(param(vias[2], "branch").as_deref(), Some("z9hG4bK3"));
    let rr = msg.header_all("Record-Route");
    assert_eq!(
        rr,
        vec![
            "<sip:p1.example;lr>",
            "\"Proxy, Two\" <sip:p2.example;lr>",
            "<sip:p3.example;lr;transport=tcp>"
        ]
    );
    assert_eq!(uri_of(rr[1]), "sip:p2.example;lr");
    assert_eq!(uri_param(uri_of(rr[2]), "lr").as_deref(), Some(""));
    assert_eq!(
        uri_param(uri_of(rr[2]), "transport").as_deref(),
        Some("tcp")
    );
    let contact = msg.header("Contact").expect("Contact");
    assert_eq!(uri_of(contact), "sip:bob@10.0.0.9:5070;transport=udp");
    assert_eq!(param(contact, "expires").as_deref(), Some("60"));
    assert_eq!(
        param(contact, "transport"),
        None,
        "URI params are not header params"
    );
}

#[test]
fn sipmsg_body_length_rules() {
    let no_length = b"MESSAGE sip:x@y SIP/2.0\r\nCall-ID: a\r\n\r\nhello";
    assert_eq!(
        Msg::parse(no_length).expect("UDP without CL").body,
        b"hello"
    );
    let short = b"MESSAGE sip:x@y SIP/2.0\r\nContent-Length: 10\r\n\r\nhello";
    assert!(
        Msg::parse(short).is_err(),
        "body shorter than Content-Length"
    );
    let bad = b"MESSAGE sip:x@y SIP/2.0\r\nContent-Length: -1\r\n\r\n";
    assert!(Msg::parse(bad).is_err());
    assert!(Msg::parse(b"HELLO\r\n\r\n").is_err());
    assert!(Msg::parse(b"SIP/2.0 99 Low\r\n\r\n").is_err());
    assert!(Msg::parse(b"INVITE sip:x SIP/2.0\r\nNoColon\r\n\r\n").is_err());
    assert!(
        Msg::parse(b"INVITE sip:x SIP/2.0\r\nVia: x").is_err(),
        "no blank line"
    );
}

#[test]
fn sipmsg_stream_framing() {
    let one = MsgBuilder::request("OPTIONS", "sip:a@b")
        .header("Call-ID", "1")
        .body("text/plain", "abc")
        .build();
    let two = MsgBuilder::response(200, "OK")
        .header("Call-ID", "2")
        .build();
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(&one);
    stream.extend_from_slice(&two);

    let (first, used) = Msg::parse_stream(&stream).expect("ok").expect("complete");
    assert_eq!(first.call_id(), Some("1"));
    assert_eq!(first.body, b"abc");
    assert_eq!(used, 4 + one.len());
    let (second, used2) = Msg::parse_stream(&stream[used..])
        .expect("ok")
        .expect("complete");
    assert_eq!(second.status(), Some(200));
    assert_eq!(used2, two.len());
    // Cut anywhere inside the first message: not complete yet.
    for cut in [5, 30, one.len() + 2] {
        assert!(
            Msg::parse_stream(&stream[..cut]).expect("ok").is_none(),
            "cut {cut}"
        );
    }
}

#[test]
fn sipmsg_builder_sets_content_length_and_round_trips() {
    let bytes = MsgBuilder::request("INFO", "sip:1000@127.0.0.1")
        .header("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx")
        .headers(&[("X-Test", "1")])
        .body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
        .build();
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    assert!(text.starts_with("INFO sip:1000@127.0.0.1 SIP/2.0\r\n"));
    assert!(text.contains("\r\nContent-Length: 24\r\n\r\nSignal=5"));
    let msg = Msg::parse(&bytes).expect("parses");
    assert_eq!(
        msg.to_bytes(),
        bytes,
        "serialising again gives the same bytes"
    );
    assert!(matches!(msg.start, StartLine::Request { ref method, .. } if method == "INFO"));

    // An explicit (wrong) Content-Length is kept for torture tests.
    let lying = MsgBuilder::request("OPTIONS", "sip:x")
        .header("Content-Length", "99")
        .build();
    assert!(
        String::from_utf8_lossy(&lying)
            .matches("Content-Length")
            .count()
            == 1
    );
}

// ================================================================ G.711

/// (linear, mu-law, A-law) from lin2ulaw/lin2alaw of
/// shared/interop/tools/rtppcap.py (Sun/ITU reference).
#[rustfmt::skip]
const G711_REFERENCE: &[(i16, u8, u8)] = &[
    (0, 0xFF, 0xD5), (1, 0xFF, 0xD5), (-1, 0x7E, 0x55), (2, 0xFF, 0xD5),
    (-2, 0x7E, 0x55), (3, 0xFF, 0xD5), (-3, 0x7E, 0x55), (4, 0xFE, 0xD5),
    (-4, 0x7E, 0x55), (7, 0xFE, 0xD5), (-7, 0x7E, 0x55), (8, 0xFE, 0xD5),
    (-8, 0x7E, 0x55), (31, 0xFB, 0xD4), (-31, 0x7B, 0x54), (32, 0xFB, 0xD7),
    (-32, 0x7B, 0x54), (33, 0xFB, 0xD7), (-33, 0x7A, 0x57), (100, 0xF2, 0xD3),
    (-100, 0x72, 0x53), (1000, 0xCE, 0xFA), (-1000, 0x4E, 0x7A), (4000, 0xAF, 0x9A),
    (-4000, 0x2F, 0x1A), (8000, 0xA0, 0x8A), (-8000, 0x20, 0x0A), (8158, 0x9F, 0x8A),
    (-8159, 0x1F, 0x0A), (16000, 0x90, 0xBA), (-16000, 0x10, 0x3A), (32000, 0x80, 0xAA),
    (-32000, 0x00, 0x2A), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A), (32124, 0x80, 0xAA),
    (-32124, 0x00, 0x2A), (32125, 0x80, 0xAA), (12345, 0x97, 0xBD), (-12345, 0x17, 0x3D),
];

fn fnv1a64(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn g711_encoders_match_the_reference() {
    for &(x, mu, a) in G711_REFERENCE {
        assert_eq!(g711::linear_to_ulaw(x), mu, "mu-law of {x}");
        assert_eq!(g711::linear_to_alaw(x), a, "A-law of {x}");
    }
    // Hash of the whole 65536-entry tables, computed with rtppcap.py.
    let all = || i16::MIN..=i16::MAX;
    assert_eq!(
        fnv1a64(all().map(g711::linear_to_ulaw)),
        0xd5ee_23f7_d0ff_ae91
    );
    assert_eq!(
        fnv1a64(all().map(g711::linear_to_alaw)),
        0xf030_666e_b780_cf25
    );
}

#[test]
fn g711_round_trips() {
    for code in 0..=255u8 {
        // 0x7F is mu-law "negative zero": it decodes to 0, which encodes as 0xFF.
        if code != 0x7F {
            assert_eq!(
                g711::linear_to_ulaw(g711::ulaw_to_linear(code)),
                code,
                "mu {code:#x}"
            );
        }
        assert_eq!(
            g711::linear_to_alaw(g711::alaw_to_linear(code)),
            code,
            "A {code:#x}"
        );
    }
    assert_eq!(g711::ulaw_to_linear(0xFF), 0);
    assert_eq!(g711::ulaw_to_linear(0x80), 32124);
    assert_eq!(g711::ulaw_to_linear(0x00), -32124);
    assert_eq!(g711::alaw_to_linear(0xAA), 32256);
    assert_eq!(g711::alaw_to_linear(0x2A), -32256);
    assert_eq!(g711::alaw_to_linear(0xD5), 8);

    // A 1 kHz sine survives with the usual G.711 SNR (> 35 dB).
    let sine = g711::sine(1000.0, 10000.0, 800);
    for pt in [g711::PT_PCMU, g711::PT_PCMA] {
        let enc = g711::encode(&sine, pt).expect("G.711 PT");
        let dec = g711::decode(&enc, pt).expect("G.711 PT");
        let signal: f64 = sine.iter().map(|s| f64::from(*s).powi(2)).sum();
        let noise: f64 = sine
            .iter()
            .zip(&dec)
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum();
        let snr_db = 10.0 * (signal / noise).log10();
        assert!(snr_db > 35.0, "PT {pt}: SNR {snr_db:.1} dB");
    }
    assert!(g711::encode(&sine, 18).is_none());
}

// ================================================================ RTP

#[test]
fn rtp_header_round_trip_with_csrc_extension_and_padding() {
    let mut header = RtpHeader::new(8, 65535, 0xFFFF_FF00, 0xDEAD_BEEF).with_marker(true);
    header.csrc = vec![1, 2];
    header.extension = Some((0xBEDE, vec![0x10, 0xAA, 0, 0]));
    let packet = header.to_packet(b"payload");
    let (parsed, payload) = parse_rtp(&packet).expect("parses");
    assert_eq!(parsed, header);
    assert_eq!(payload, b"payload");

    // Padding: the last octet counts the padding bytes.
    let mut padded = RtpHeader::new(0, 1, 2, 3);
    padded.padding = true;
    let mut packet = padded.to_packet(b"abc");
    packet.extend_from_slice(&[0, 0, 3]);
    let (parsed, payload) = parse_rtp(&packet).expect("parses");
    assert!(parsed.padding);
    assert_eq!(payload, b"abc");

    assert_eq!(parse_rtp(&[0x80; 11]), Err(RtpParseError::TooShort));
    assert_eq!(parse_rtp(&[0x40; 12]), Err(RtpParseError::BadVersion(1)));
    let rtcp_rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    assert_eq!(
        parse_rtp(&[&rtcp_rr[..], &[0; 8]].concat()),
        Err(RtpParseError::Rtcp)
    );
    let mut bad_pad = RtpHeader::new(0, 1, 2, 3).to_packet(b"ab");
    bad_pad[0] |= 0x20;
    bad_pad.push(200);
    assert_eq!(parse_rtp(&bad_pad), Err(RtpParseError::BadPadding));
}

/// The recorder sends to itself: out-of-order packets across the 16-bit
/// sequence wrap must come back in order, with the timestamp steps and
/// SSRCs right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_recorder_orders_across_sequence_wrap() {
    let rec = RtpRecorder::bind().await.expect("bind");
    let me = rec.local_addr();
    let sine = g711::sine(1000.0, 8000.0, 160 * 4);
    let frames: Vec<Vec<u8>> = g711::encode_ulaw(&sine)
        .chunks(160)
        .map(<[u8]>::to_vec)
        .collect();
    let seqs = [65534u16, 65535, 0, 1];
    for i in [1usize, 0, 3, 2, 3] {
        let ts = 1000u32.wrapping_add(160 * i as u32);
        let header = RtpHeader::new(0, seqs[i], ts, 0x5EED);
        rec.send_rtp(me, &header, &frames[i]).await.expect("send");
    }
    rec.send_to(me, b"not rtp").await.expect("send");
    assert!(rec.wait_for_packets(5, WAIT).await, "5 packets recorded");
    assert!(rec.wait_for_silence(Duration::from_millis(50), WAIT).await);
    assert_eq!(rec.other_datagrams().len(), 1);
    assert_eq!(rec.ssrcs(), vec![0x5EED]);
    assert_eq!(
        rec.decode_audio(Some(0)),
        g711::decode_ulaw(&g711::encode_ulaw(&sine))
    );
    assert!(rec.decode_audio(Some(8)).is_empty());
    assert_eq!(rec.timestamp_steps(), vec![160, 160, 160]);
    let (mean, p50, p99, max) = rec.interarrival_stats().expect("stats");
    assert!(p50 <= p99 && p99 <= max && mean <= max);

    rec.clear();
    assert!(rec.packets().is_empty());
    assert!(!rec.wait_for_packets(1, Duration::from_millis(100)).await);
}

// ================================================================ SDP

#[test]
fn sdp_offer_and_answer_parsing() {
    let offer = offer_sdp(
        40000,
        &[(0, "PCMU/8000"), (8, "PCMA/8000")],
        Some(101),
        Direction::SendRecv,
    );
    assert!(offer.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"));
    assert!(offer.contains("a=fmtp:101 0-16\r\n"));
    let parsed = parse_sdp_answer(&offer).expect("own offer parses");
    assert_eq!(
        parsed.rtp_addr(),
        "127.0.0.1:40000".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(parsed.pts, vec![0, 8, 101]);
    assert_eq!(parsed.telephone_event_pt(), Some(101));
    assert_eq!(parsed.ptime, Some(20));
    assert_eq!(parsed.direction, Direction::SendRecv);

    let answer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        a=sendonly\r\n\
        m=video 5000 RTP/AVP 96\r\nc=IN IP4 10.9.9.9\r\na=recvonly\r\n\
        m=audio 30000 RTP/AVP 8 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n\
        m=audio 30002 RTP/AVP 0\r\n";
    let parsed = parse_sdp_answer(answer).expect("parses");
    assert_eq!(parsed.addr.to_string(), "10.0.0.1", "session-level c=");
    assert_eq!(parsed.port, 30000, "first audio stream");
    assert_eq!(parsed.pts, vec![8, 96]);
    assert_eq!(
        parsed.direction,
        Direction::SendOnly,
        "session-level direction"
    );
    assert_eq!(parsed.encoding(8).as_deref(), Some("PCMA/8000"));
    assert_eq!(parsed.telephone_event_pt(), Some(96));
    assert_eq!(parsed.fmtp, vec![(96, "0-15".to_string())]);
    assert!(
        parse_sdp_answer("v=0\r\nm=audio 1 RTP/AVP 0\r\n").is_err(),
        "no c="
    );
}

// ================================================ scripted fake peers (UA logic)

async fn uas_recv(sock: &UdpSocket) -> (Msg, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("fake UAS: nothing received in time")
        .expect("fake UAS: recv");
    (
        Msg::parse(&buf[..n]).expect("UA sent a parseable message"),
        from,
    )
}

/// A response to `req` as a minimal UAS writes it.
fn reply(
    req: &Msg,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    sdp: Option<&str>,
) -> Vec<u8> {
    let mut b = MsgBuilder::response(code, reason);
    for via in req.header_all("Via") {
        b = b.header("Via", via);
    }
    let to = req.header("To").expect("To");
    let to = match to_tag {
        Some(tag) if param(to, "tag").is_none() => format!("{to};tag={tag}"),
        _ => to.to_string(),
    };
    b = b
        .header("From", req.header("From").expect("From"))
        .header("To", to)
        .header("Call-ID", req.call_id().expect("Call-ID"))
        .header("CSeq", req.header("CSeq").expect("CSeq"))
        .headers(extra);
    if let Some(sdp) = sdp {
        b = b.body("application/sdp", sdp);
    }
    b.build()
}

#[tokio::test]
async fn ua_invite_ack_info_and_server_bye_follow_rfc3261() {
    let uas = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let uas_addr = uas.local_addr().expect("addr");
    let mut ua = TestUa::udp(uas_addr).await.expect("ua");
    assert_eq!(ua.transport(), TransportKind::Udp);
    let rec = RtpRecorder::bind().await.expect("rtp");
    let offer = offer_sdp(
        rec.port(),
        &[(0, "PCMU/8000")],
        Some(101),
        Direction::SendRecv,
    );
    let opts = InviteOptions::new("1000")
        .with_sdp(offer.clone())
        .with_header("X-Test", "yes");
    let mut call = ua.invite(opts).await.expect("invite");

    // The INVITE as the UAS sees it.
    let (inv, ua_addr) = uas_recv(&uas).await;
    assert_eq!(ua_addr, ua.local_addr());
    assert_eq!(inv.method(), Some("INVITE"));
    assert_eq!(inv.uri(), Some(format!("sip:1000@{uas_addr}").as_str()));
    let via = inv.header("Via").expect("Via");
    assert!(via.starts_with(&format!("SIP/2.0/UDP {}", ua.local_addr())));
    assert_eq!(
        inv.top_branch().as_deref(),
        Some(call.invite.branch.as_str())
    );
    assert!(call.invite.branch.starts_with("z9hG4bK"));
    assert_eq!(inv.header_param("Via", "rport").as_deref(), Some(""));
    assert_eq!(inv.header_param("From", "tag"), Some(call.from_tag.clone()));
    assert_eq!(inv.header_param("To", "tag"), None);
    assert_eq!(inv.call_id(), Some(call.call_id.as_str()));
    assert_eq!(inv.cseq(), Some((1, "INVITE".into())));
    assert_eq!(inv.header("Max-Forwards"), Some("70"));
    assert_eq!(
        uri_of(inv.header("Contact").expect("Contact")),
        format!("sip:testua@{}", ua.local_addr())
    );
    assert_eq!(inv.header("Content-Type"), Some("application/sdp"));
    assert_eq!(inv.header("X-Test"), Some("yes"));
    assert_eq!(inv.body_str(), offer);

    // 180, then a 200 with a route set and a retransmission of the 200.
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n";
    let contact = format!("<sip:ivr@{uas_addr}>");
    let rr = [
        ("Record-Route", "<sip:p1.example;lr>, <sip:p2.example;lr>"),
        ("Record-Route", "<sip:p3.example;lr>"),
        ("Contact", contact.as_str()),
    ];
    uas.send_to(
        &reply(&inv, 180, "Ringing", Some("uas1"), &[], None),
        ua_addr,
    )
    .await
    .expect("send");
    let ok = reply(&inv, 200, "OK", Some("uas1"), &rr, Some(answer));
    uas.send_to(&ok, ua_addr).await.expect("send");
    uas.send_to(&ok, ua_addr).await.expect("send");

    let first = ua.recv_invite_response(&mut call, WAIT).await.expect("180");
    assert_eq!(first.status(), Some(180));
    assert_eq!(
        call.to_tag.as_deref(),
        Some("uas1"),
        "early dialog tag learned"
    );
    let fin = ua.expect_final(&mut call, WAIT).await.expect("200");
    assert_eq!(fin.status(), Some(200));
    assert_eq!(call.remote_target, format!("sip:ivr@{uas_addr}"));
    assert_eq!(
        call.route_set,
        vec![
            "<sip:p3.example;lr>",
            "<sip:p2.example;lr>",
            "<sip:p1.example;lr>"
        ],
        "Record-Route reversed on the UAC side"
    );
    let sdp = call.answer_sdp().expect("answer");
    assert_eq!(sdp.port, 41000);
    let again = ua
        .recv_invite_response(&mut call, WAIT)
        .await
        .expect("retransmitted 200");
    assert_eq!(again.status(), Some(200));
    assert_eq!(
        ua.response_arrivals(200, "INVITE").len(),
        2,
        "retransmission logged"
    );

    // ACK for the 2xx: its own transaction, to the remote target, via the route set.
    ua.ack(&mut call, None).await.expect("ack");
    let (ack, _) = uas_recv(&uas).await;
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.uri(), Some(call.remote_target.as_str()));
    assert_eq!(
        ack.header_all("Route"),
        vec![
            "<sip:p3.example;lr>",
            "<sip:p2.example;lr>",
            "<sip:p1.example;lr>"
        ]
    );
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
    assert_ne!(
        ack.top_branch(),
        inv.top_branch(),
        "2xx ACK has a new branch"
    );
    assert_eq!(ack.header_param("To", "tag").as_deref(), Some("uas1"));
    assert!(ack.body.is_empty());

    // An INFO in the dialog, then an OPTIONS outside it.
    let info = ua
        .info(
            &mut call,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        )
        .await
        .expect("info");
    let (info_req, _) = uas_recv(&uas).await;
    assert_eq!(info_req.cseq(), Some((2, "INFO".into())));
    assert_eq!(info_req.uri(), Some(call.remote_target.as_str()));
    assert_eq!(
        info_req.header("Content-Type"),
        Some("application/dtmf-relay")
    );
    assert_eq!(info_req.body_str(), "Signal=5\r\nDuration=160\r\n");
    uas.send_to(&reply(&info_req, 200, "OK", None, &[], None), ua_addr)
        .await
        .expect("send");
    let info_ok = ua.expect_final_tx(&info, WAIT).await.expect("INFO 200");
    assert_eq!(info_ok.cseq(), Some((2, "INFO".into())));

    let opt = ua.options("1000").await.expect("options");
    let (opt_req, _) = uas_recv(&uas).await;
    assert_eq!(opt_req.method(), Some("OPTIONS"));
    assert_ne!(opt_req.call_id(), Some(call.call_id.as_str()));
    uas.send_to(&reply(&opt_req, 200, "OK", Some("o1"), &[], None), ua_addr)
        .await
        .expect("send");
    assert_eq!(
        ua.expect_final_tx(&opt, WAIT)
            .await
            .expect("OPTIONS 200")
            .status(),
        Some(200)
    );

    // The server hangs up: BYE from the UAS, answered by the UA.
    let bye = MsgBuilder::request("BYE", &format!("sip:testua@{}", ua.local_addr()))
        .header(
            "Via",
            format!("SIP/2.0/UDP {uas_addr};branch=z9hG4bKuasbye"),
        )
        .header("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsecond")
        .header("From", format!("<sip:1000@{uas_addr}>;tag=uas1"))
        .header("To", call.from.clone())
        .header("Call-ID", call.call_id.clone())
        .header("CSeq", "1 BYE")
        .build();
    uas.send_to(&bye, ua_addr).await.expect("send");
    let got = ua.recv_request(WAIT).await.expect("BYE");
    assert_eq!(got.method(), Some("BYE"));
    assert_eq!(got.source, Some(uas_addr));
    ua.respond(&got, 200, "OK", &[("X-Answer", "1")], None)
        .await
        .expect("respond");
    let (resp, _) = uas_recv(&uas).await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.header_all("Via").len(), 2, "all Vias copied");
    assert_eq!(resp.top_branch().as_deref(), Some("z9hG4bKuasbye"));
    assert_eq!(resp.cseq(), Some((1, "BYE".into())));
    assert_eq!(resp.header_param("To", "tag"), Some(call.from_tag.clone()));
    assert_eq!(resp.header("X-Answer"), Some("1"));

    // Nothing else pending: waits time out instead of hanging.
    assert!(ua.recv_request(Duration::from_millis(100)).await.is_err());
}

#[tokio::test]
async fn ua_cancel_and_ack_for_non_2xx() {
    let uas = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut ua = TestUa::udp(uas.local_addr().expect("addr"))
        .await
        .expect("ua");
    let mut call = ua.invite(InviteOptions::default()).await.expect("invite");
    let (inv, ua_addr) = uas_recv(&uas).await;
    assert!(inv.body.is_empty(), "late offer: no SDP");
    assert_eq!(inv.header("Content-Length"), Some("0"));

    uas.send_to(&reply(&inv, 100, "Trying", None, &[], None), ua_addr)
        .await
        .expect("send");
    uas.send_to(&reply(&inv, 180, "Ringing", Some("t1"), &[], None), ua_addr)
        .await
        .expect("send");
    assert_eq!(
        ua.recv_invite_response(&mut call, WAIT)
            .await
            .expect("100")
            .status(),
        Some(100)
    );
    assert_eq!(
        ua.recv_invite_response(&mut call, WAIT)
            .await
            .expect("180")
            .status(),
        Some(180)
    );

    let cancel_tx = ua.cancel(&call).await.expect("cancel");
    let (cancel, _) = uas_recv(&uas).await;
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.uri(), inv.uri());
    assert_eq!(
        cancel.header("Via"),
        inv.header("Via"),
        "same Via and branch as the INVITE"
    );
    assert_eq!(cancel.header("From"), inv.header("From"));
    assert_eq!(
        cancel.header("To"),
        inv.header("To"),
        "To without the provisional tag"
    );
    assert_eq!(cancel.call_id(), inv.call_id());
    assert_eq!(cancel.cseq(), Some((1, "CANCEL".into())));

    // 487 first, then 200 to the CANCEL: matching is by branch + method.
    uas.send_to(
        &reply(&inv, 487, "Request Terminated", Some("t1"), &[], None),
        ua_addr,
    )
    .await
    .expect("send");
    uas.send_to(&reply(&cancel, 200, "OK", Some("t1"), &[], None), ua_addr)
        .await
        .expect("send");
    let cancel_ok = ua
        .expect_final_tx(&cancel_tx, WAIT)
        .await
        .expect("200 CANCEL");
    assert_eq!(cancel_ok.cseq(), Some((1, "CANCEL".into())));
    let fin = ua.expect_final(&mut call, WAIT).await.expect("487");
    assert_eq!(fin.status(), Some(487));

    ua.ack(&mut call, None).await.expect("ack");
    let (ack, _) = uas_recv(&uas).await;
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(
        ack.uri(),
        inv.uri(),
        "non-2xx ACK: Request-URI of the INVITE"
    );
    assert_eq!(
        ack.header("Via"),
        inv.header("Via"),
        "non-2xx ACK: same branch"
    );
    assert_eq!(
        ack.header_param("To", "tag").as_deref(),
        Some("t1"),
        "To of the response"
    );
    assert_eq!(ack.cseq(), Some((1, "ACK".into())));
}

/// TCP: framing of split and coalesced messages plus CRLF keep-alives, and
/// a late offer whose answer goes in the ACK.
#[tokio::test]
async fn ua_over_tcp_frames_stream_and_sends_late_offer_answer_in_ack() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = listener.local_addr().expect("addr");
    let mut ua = TestUa::tcp(server).await.expect("ua");
    let (mut conn, _) = listener.accept().await.expect("accept");
    let mut call = ua.invite(InviteOptions::new("2000")).await.expect("invite");

    let mut buf = Vec::new();
    let inv = read_framed(&mut conn, &mut buf).await;
    assert!(inv.header("Via").expect("Via").starts_with("SIP/2.0/TCP "));
    assert!(inv
        .header("Contact")
        .expect("Contact")
        .contains(";transport=tcp"));

    let offer = offer_sdp(42000, &[(0, "PCMU/8000")], None, Direction::SendRecv);
    let ringing = reply(&inv, 180, "Ringing", Some("tt"), &[], None);
    let ok = reply(
        &inv,
        200,
        "OK",
        Some("tt"),
        &[("Contact", "<sip:ivr@127.0.0.1;transport=tcp>")],
        Some(&offer),
    );
    // Keep-alive, the 180 and the first half of the 200 in one write...
    let mut first = b"\r\n\r\n".to_vec();
    first.extend_from_slice(&ringing);
    first.extend_from_slice(&ok[..ok.len() / 2]);
    conn.write_all(&first).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...the rest later.
    conn.write_all(&ok[ok.len() / 2..]).await.expect("write");

    let fin = ua.expect_final(&mut call, WAIT).await.expect("200");
    assert_eq!(fin.body_str(), offer);
    assert_eq!(ua.received().len(), 2, "180 and 200 framed");
    let theirs = call.answer_sdp().expect("offer in 200");
    let answer = offer_sdp(43000, &[(0, "PCMU/8000")], None, Direction::SendRecv);
    assert_eq!(theirs.port, 42000);
    ua.ack(&mut call, Some(&answer)).await.expect("ack");
    let ack = read_framed(&mut conn, &mut buf).await;
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.uri(), Some("sip:ivr@127.0.0.1;transport=tcp"));
    assert_eq!(ack.header("Content-Type"), Some("application/sdp"));
    assert_eq!(ack.body_str(), answer);

    // The server closes the connection: waits report it instead of hanging.
    drop(conn);
    let closed = ua.recv_request(WAIT).await;
    assert!(
        matches!(closed, Err(common::ua::UaError::Closed)),
        "{closed:?}"
    );
}

async fn read_framed(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Msg {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((msg, used)) = Msg::parse_stream(buf).expect("frames") {
            buf.drain(..used);
            return msg;
        }
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .expect("fake server: read timed out")
            .expect("read");
        assert!(n > 0, "UA closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

// ================================================================ SIPp

/// A SIPp process, killed (by its PID) and reaped on drop.
struct Sipp {
    child: Child,
    sip: SocketAddr,
    workdir: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// A port for SIPp whose neighbours are free too (SIPp binds `-mp` and
/// `-mp`+2 for audio, and RTCP may want the odd ones). Bind-and-release
/// leaves a race, so the caller retries a failed start.
fn free_port_block(len: u16) -> u16 {
    loop {
        let seed = u64::from_str_radix(&random_token(), 16).unwrap_or(0);
        let base = 20000 + (seed % 20000) as u16 * 2;
        let free = (0..len).all(|i| {
            std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
        });
        if free {
            return base;
        }
    }
}

/// Which UAS scenario SIPp runs.
enum Scenario {
    /// A built-in one (`-sn uas`).
    Builtin(&'static str),
    /// Our own XML (written into SIPp's work directory).
    Xml(&'static str),
}

impl Sipp {
    /// Starts SIPp as a UAS with RTP echo on loopback, and waits until it
    /// listens.
    async fn start_uas(sipp: &Path, scenario: Scenario, transport: TransportKind) -> Sipp {
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let sip_port = free_port_block(1);
            let media_port = free_port_block(4);
            let workdir =
                std::env::temp_dir().join(format!("pinbridge-ua-selftest-{}", random_token()));
            std::fs::create_dir_all(&workdir).expect("temp dir");
            let mut cmd = Command::new(sipp);
            match scenario {
                Scenario::Builtin(name) => cmd.args(["-sn", name]),
                Scenario::Xml(xml) => {
                    let path = workdir.join("scenario.xml");
                    std::fs::write(&path, xml).expect("write scenario");
                    cmd.arg("-sf").arg(path)
                }
            };
            cmd.args(["-i", "127.0.0.1", "-p", &sip_port.to_string()])
                .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string()])
                .args(["-rtp_echo", "-nostdin", "-timeout", "20s", "-m", "1"]);
            if transport == TransportKind::Tcp {
                cmd.args(["-t", "t1"]);
            }
            let child = cmd
                .current_dir(&workdir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sipp");
            let mut sipp = Sipp {
                child,
                sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
                workdir,
            };
            match sipp.wait_listening(transport).await {
                Ok(()) => return sipp,
                Err(e) => last_error = e,
            }
        }
        panic!("SIPp did not start: {last_error}");
    }

    /// Polls until SIPp holds its SIP port (our own bind fails, or a TCP
    /// connect succeeds), or it exits.
    async fn wait_listening(&mut self, transport: TransportKind) -> Result<(), String> {
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                }
                return Err(format!("exited with {status}: {err}"));
            }
            let listening = match transport {
                TransportKind::Udp => std::net::UdpSocket::bind(self.sip).is_err(),
                TransportKind::Tcp => std::net::TcpListener::bind(self.sip).is_err(),
            };
            if listening {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("not listening after 5 s".into())
    }

    /// Waits for SIPp to exit by itself (after `-m 1` calls and its 4 s
    /// timewait) and returns its exit code.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

/// One full call against `sipp -sn uas`: INVITE with our SDP -> 180 -> 200
/// -> ACK -> 50 RTP packets of a 1 kHz PCMU sine, echoed back by SIPp and
/// compared sample by sample -> BYE -> 200; SIPp must report success.
async fn call_sipp_uas(transport: TransportKind) {
    let Some(sipp_bin) = peers::require_tool("sipp") else {
        return;
    };
    let mut sipp = Sipp::start_uas(&sipp_bin, Scenario::Builtin("uas"), transport).await;
    let mut ua = match transport {
        TransportKind::Udp => TestUa::udp(sipp.sip).await,
        TransportKind::Tcp => TestUa::tcp(sipp.sip).await,
    }
    .expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP recorder");
    let offer = offer_sdp(rec.port(), &[(0, "PCMU/8000")], None, Direction::SendRecv);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .expect("send INVITE");

    let ringing = ua
        .recv_invite_response(&mut call, WAIT)
        .await
        .expect("180 from SIPp");
    assert_eq!(ringing.status(), Some(180));
    let ok = ua
        .expect_final(&mut call, WAIT)
        .await
        .expect("200 from SIPp");
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert!(call
        .to_tag
        .as_deref()
        .is_some_and(|t| t.contains("SIPpTag01")));
    let expected_target = match transport {
        TransportKind::Udp => format!("sip:{};transport=UDP", sipp.sip),
        TransportKind::Tcp => format!("sip:{};transport=TCP", sipp.sip),
    };
    assert_eq!(call.remote_target, expected_target);
    let answer = call.answer_sdp().expect("SDP answer in the 200");
    assert_eq!(answer.addr.to_string(), "127.0.0.1");
    assert_eq!(answer.pts, vec![0]);
    assert_eq!(answer.encoding(0).as_deref(), Some("PCMU/8000"));
    ua.ack(&mut call, None).await.expect("send ACK");

    // 50 packets (1 s) of a 1 kHz sine, paced like a phone, from the port
    // we advertised; -rtp_echo sends them back to that port.
    let sine = g711::sine(1000.0, 8000.0, 50 * 160);
    let first = RtpHeader::new(0, 65500, 4_294_960_000, 0x7E57_0001).with_marker(true);
    rec.send_g711(answer.rtp_addr(), first, &sine, Duration::from_millis(20))
        .await
        .expect("send RTP");
    assert!(
        rec.wait_for_packets(50, WAIT).await,
        "got {} echoed packets",
        rec.packets().len()
    );
    assert!(rec.wait_for_silence(Duration::from_millis(200), WAIT).await);
    let packets = rec.packets();
    assert_eq!(packets.len(), 50, "exactly the 50 packets come back");
    assert!(
        packets.iter().all(|p| p.from == answer.rtp_addr()),
        "echo comes from the answered port"
    );
    assert_eq!(rec.ssrcs(), vec![0x7E57_0001]);
    assert_eq!(
        rec.timestamp_steps(),
        vec![160; 49],
        "seq wrap handled, 20 ms steps"
    );
    assert_eq!(
        rec.decode_audio(Some(0)),
        g711::decode_ulaw(&g711::encode_ulaw(&sine)),
        "echoed audio decodes to the samples sent"
    );
    let (mean, p50, _p99, max) = rec.interarrival_stats().expect("stats");
    assert!(
        mean > Duration::from_millis(10) && mean < Duration::from_millis(40),
        "paced echo: mean {mean:?} p50 {p50:?} max {max:?}"
    );

    let bye = ua.bye(&mut call).await.expect("send BYE");
    let bye_ok = ua.expect_final_tx(&bye, WAIT).await.expect("200 to BYE");
    assert_eq!(bye_ok.status(), Some(200));
    assert_eq!(bye_ok.cseq(), Some((2, "BYE".into())));

    let code = sipp.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "SIPp counts the call as successful");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uas_call_with_rtp_echo_over_udp() {
    call_sipp_uas(TransportKind::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uas_call_with_rtp_echo_over_tcp() {
    call_sipp_uas(TransportKind::Tcp).await;
}

/// A SIPp UAS that checks what the test UA does with a route set and
/// answers with its own BYE: 200 (retransmitted every 500 ms doubling, with
/// two Record-Route headers) -> ACK, which SIPp checks (`check_it`) for the
/// Request-URI = Contact and the reversed Route headers -> SIPp sends BYE
/// to our Contact -> our 200. A failed check makes SIPp exit non-zero.
const SIPP_ROUTE_SET_AND_BYE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="testua: route set and UAS-initiated BYE">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp="&lt;(.*)>" search_in="hdr" header="Contact:" assign_to="junk,remote_contact"/>
    </action>
  </recv>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Record-Route: <sip:p1.invalid;lr>, <sip:p2.invalid;lr>
      Record-Route: <sip:p3.invalid;lr>
      Contact: <sip:ivr@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true">
    <action>
      <ereg regexp="ACK sip:ivr@127\.0\.0\.1:[0-9]+;transport=(UDP|TCP) SIP/2\.0" search_in="msg" check_it="true" assign_to="ack_uri"/>
      <ereg regexp="Route: &lt;sip:p3\.invalid;lr>.*Route: &lt;sip:p2\.invalid;lr>.*Route: &lt;sip:p1\.invalid;lr>" search_in="msg" check_it="true" assign_to="ack_routes"/>
    </action>
  </recv>
  <pause milliseconds="100"/>
  <send>
    <![CDATA[

      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:ivr@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To:[$remote_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <!-- The check_it captures are never read back; tell SIPp that is fine. -->
  <Reference variables="junk,ack_uri,ack_routes"/>
</scenario>
"#;

async fn sipp_route_set_and_server_bye(transport: TransportKind) {
    let Some(sipp_bin) = peers::require_tool("sipp") else {
        return;
    };
    let mut sipp =
        Sipp::start_uas(&sipp_bin, Scenario::Xml(SIPP_ROUTE_SET_AND_BYE), transport).await;
    let mut ua = match transport {
        TransportKind::Udp => TestUa::udp(sipp.sip).await,
        TransportKind::Tcp => TestUa::tcp(sipp.sip).await,
    }
    .expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP recorder");
    let offer = offer_sdp(rec.port(), &[(0, "PCMU/8000")], None, Direction::SendRecv);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .expect("send INVITE");
    let ok = ua
        .expect_final(&mut call, WAIT)
        .await
        .expect("200 from SIPp");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(call.route_set.len(), 3);

    if transport == TransportKind::Udp {
        // Let SIPp retransmit the 200 (T1 = 500 ms, doubling) before the ACK.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        // Pull the copies so the log has them all (they also sit pending).
        while ua
            .recv_invite_response(&mut call, Duration::from_millis(50))
            .await
            .is_ok()
        {}
        let arrivals = ua.response_arrivals(200, "INVITE");
        assert_eq!(arrivals.len(), 3, "200 at 0, 0.5 and 1.5 s");
        let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        let near = |d: Duration, ms: u64| d.as_millis().abs_diff(u128::from(ms)) < 150;
        assert!(
            near(gaps[0], 500) && near(gaps[1], 1000),
            "retransmission gaps {gaps:?}"
        );
    }
    ua.ack(&mut call, None).await.expect("send ACK");

    let bye = ua.recv_request(WAIT).await.expect("BYE from SIPp");
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.uri(), Some(uri_of(&call.contact)), "BYE to our Contact");
    assert_eq!(bye.header_param("To", "tag"), Some(call.from_tag.clone()));
    ua.respond(&bye, 200, "OK", &[], None)
        .await
        .expect("answer BYE");

    let code = sipp.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        code,
        Some(0),
        "SIPp's checks of our ACK passed and it got our 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_checks_route_set_and_gets_answer_to_its_bye_over_udp() {
    sipp_route_set_and_server_bye(TransportKind::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_checks_route_set_and_gets_answer_to_its_bye_over_tcp() {
    sipp_route_set_and_server_bye(TransportKind::Tcp).await;
}
