//! An INVITE flood over real sockets: a source on 127.0.0.2 sends a few
//! thousand INVITEs and never ACKs, while a caller on 127.0.0.1 places a
//! call and a prober on 127.0.0.3 sends OPTIONS. The caller is answered
//! and hears the prompt, the prober is answered, the flood holds no more
//! calls (and RTP ports) than its half-open bound, and it gets back fewer
//! bytes than it sent (pinbridge is no reflector). Timings are not
//! asserted; every wait is generous.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::g711;
use common::rtp::RtpRecorder;
use common::server::{prompt_samples, TestServer, ECHO};
use common::ua::{offer_sdp, Direction, InviteOptions, TestUa};
use pinbridge::ivr::prompts::PromptId;
use tokio::net::UdpSocket;

const FLOOD_INVITES: u32 = 3000;

fn flood_invite(from: SocketAddr, server: SocketAddr, n: u32) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = from.ip()
    );
    format!(
        "INVITE sip:1000@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-flood-{n};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:flood@{ip}>;tag=fl{n}\r\n\
To: <sip:1000@{server}>\r\n\
Call-ID: flood-{n}@{ip}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:flood@{from}>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        ip = from.ip()
    )
    .into_bytes()
}

/// What came back to the flooder.
#[derive(Default)]
struct Returned {
    bytes: AtomicU64,
    datagrams: AtomicU64,
    /// Call-IDs that got a 200 OK: calls the server set up (each with an
    /// RTP port).
    answered: Mutex<HashSet<String>>,
}

async fn count_returns(socket: Arc<UdpSocket>, ret: Arc<Returned>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await
        else {
            continue;
        };
        ret.bytes.fetch_add(n as u64, Ordering::Relaxed);
        ret.datagrams.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.starts_with("SIP/2.0 200") {
            if let Some(id) = text
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID: "))
                .map(str::trim)
            {
                ret.answered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string());
            }
        }
    }
}

/// Finds `needle` in `hay`; returns the offset.
fn find(hay: &[i16], needle: &[i16]) -> Option<usize> {
    (0..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..i + needle.len()] == *needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_that_never_acks_is_bounded_unamplified_and_others_are_served() {
    // T1 = 100 ms: the 2xx retransmissions and the BYE after 64·T1 (what
    // the flood would be sent back) all happen within the test.
    let server = TestServer::start_with(|c| {
        c.sip.t1 = Duration::from_millis(100);
    })
    .await;
    let max_half_open = pinbridge::sip::ua::SourceLimitSettings::default().max_half_open_per_source;

    let flooder = Arc::new(
        UdpSocket::bind("127.0.0.2:0")
            .await
            .expect("bind 127.0.0.2"),
    );
    let from = flooder.local_addr().unwrap();
    let returned = Arc::new(Returned::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counter = tokio::spawn(count_returns(
        flooder.clone(),
        returned.clone(),
        stop.clone(),
    ));

    // The flood: bursts of 100 INVITEs every 20 ms, about 0.6 s in all.
    let sip = server.sip;
    let sender = {
        let flooder = flooder.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            for n in 0..FLOOD_INVITES {
                let msg = flood_invite(from, sip, n);
                if flooder.send_to(&msg, sip).await.is_ok() {
                    sent += msg.len() as u64;
                }
                if n % 100 == 99 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            sent
        })
    };

    // During the flood: a call from 127.0.0.1 and OPTIONS from 127.0.0.3.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut prober = TestUa::udp_on(server.sip, "127.0.0.3".parse::<IpAddr>().unwrap())
        .await
        .expect("prober");
    let probe = prober.options("ping").await.expect("OPTIONS sent");
    let mut ua = TestUa::udp(server.sip).await.expect("caller");
    let rec = RtpRecorder::bind().await.expect("rtp socket");
    let sdp = offer_sdp(
        rec.port(),
        &[(0, "PCMU/8000")],
        Some(101),
        Direction::SendRecv,
    );
    let mut call = ua
        .invite(InviteOptions::new(ECHO).with_sdp(sdp))
        .await
        .expect("invite sent");

    let pong = prober
        .expect_final_tx(&probe, Duration::from_secs(10))
        .await
        .expect("OPTIONS answered during the flood");
    assert_eq!(pong.status(), Some(200));
    let ok = ua
        .expect_final(&mut call, Duration::from_secs(10))
        .await
        .expect("the caller is answered during the flood");
    assert_eq!(ok.status(), Some(200));
    ua.ack(&mut call, None).await.expect("ack");
    let bye = ua
        .recv_request(Duration::from_secs(30))
        .await
        .expect("the keypad test line says goodbye and hangs up");
    assert_eq!(bye.method(), Some("BYE"));
    ua.respond(&bye, 200, "OK", &[], None)
        .await
        .expect("200 to BYE");
    let audio = rec.decode_audio(Some(0));
    let welcome = g711::decode_ulaw(&g711::encode_ulaw(&prompt_samples(PromptId::Welcome)));
    assert!(
        find(&audio, &welcome).is_some(),
        "the caller heard the welcome prompt, sample-exact ({} samples received)",
        audio.len()
    );

    let sent = sender.await.expect("flood sender");
    // Everything the flood can be sent back: 2xx retransmissions until
    // 64·T1 (6.4 s) after the last answer, then BYE and its
    // retransmissions (64·T1 again).
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    counter.await.expect("counter");

    let back = returned.bytes.load(Ordering::Relaxed);
    let answered = returned
        .answered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    eprintln!(
        "flood: {sent} bytes sent in {FLOOD_INVITES} INVITEs; {back} bytes in {} datagrams back; {answered} calls answered",
        returned.datagrams.load(Ordering::Relaxed)
    );
    assert!(sent > 0);
    assert!(
        back < sent,
        "the flooder got back {back} bytes for the {sent} it sent"
    );
    assert!(
        answered <= max_half_open as usize,
        "{answered} calls (each with an RTP port) set up for a source that never ACKs"
    );
    server.stop().await;
}
