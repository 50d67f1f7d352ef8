//! A call from the independent test UA: the server answers, streams the
//! welcome and goodbye prompts as paced G.711 RTP, and hangs up with BYE
//! (on the keypad test line, which says goodbye after a second of
//! silence; conference numbers ask for the code instead, see
//! tests/conference.rs).

mod common;

use std::time::Duration;

use common::g711;
use common::rtp::RtpRecorder;
use common::server::{prompt_samples, TestServer, ECHO};
use common::ua::{offer_sdp, phone_offer, Direction, InviteOptions, TestUa};
use pinbridge::ivr::prompts::PromptId;

async fn call_and_record(
    ua: &mut TestUa,
    pt: u8,
    name: &str,
) -> (RtpRecorder, common::sipmsg::Msg) {
    let rec = RtpRecorder::bind().await.expect("rtp socket");
    let sdp = offer_sdp(rec.port(), &[(pt, name)], Some(101), Direction::SendRecv);
    let opts = InviteOptions::new(ECHO).with_sdp(sdp);
    let (_call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
    assert_eq!(answer.pts[0], pt, "the codec we offered is chosen");
    // The flow ends with the server's BYE.
    let bye = ua
        .recv_request(Duration::from_secs(20))
        .await
        .expect("BYE from the server");
    assert_eq!(bye.method(), Some("BYE"));
    ua.respond(&bye, 200, "OK", &[], None)
        .await
        .expect("200 to BYE");
    (rec, bye)
}

/// Finds `needle` in `hay` allowing for leading silence; returns the offset.
fn find(hay: &[i16], needle: &[i16]) -> Option<usize> {
    (0..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..i + needle.len()] == *needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_hears_welcome_then_goodbye_sample_exact_and_paced() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let (rec, _) = call_and_record(&mut ua, 0, "PCMU/8000").await;

    let audio = rec.decode_audio(Some(0));
    // What a G.711 round trip of the shipped WAVs must give, bit for bit.
    let welcome = g711::decode_ulaw(&g711::encode_ulaw(&prompt_samples(PromptId::Welcome)));
    let goodbye = g711::decode_ulaw(&g711::encode_ulaw(&prompt_samples(PromptId::Goodbye)));
    let w = find(&audio, &welcome).expect("the welcome prompt is in the stream, sample-exact");
    let g = find(&audio[w + welcome.len()..], &goodbye).expect("followed by goodbye");
    assert!(
        g < 16_000,
        "goodbye follows about a second after the welcome ({g} samples later)"
    );

    let packets = rec.packets();
    assert!(packets
        .iter()
        .all(|p| p.header.payload_type == 0 && p.payload.len() == 160));
    assert_eq!(rec.ssrcs().len(), 1, "one SSRC for the call");
    assert!(
        rec.timestamp_steps().iter().all(|&s| s == 160),
        "timestamps step 160 per packet"
    );
    assert!(packets[0].header.marker, "marker on the first packet");
    let (mean, p50, p99, _max) = rec.interarrival_stats().expect("enough packets");
    assert!(
        (mean.as_secs_f64() - 0.020).abs() < 0.002,
        "mean inter-arrival {mean:?}"
    );
    assert!(
        (p50.as_secs_f64() - 0.020).abs() < 0.003,
        "median inter-arrival {p50:?}"
    );
    eprintln!("pacing: mean {mean:?} p50 {p50:?} p99 {p99:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_callers_get_pcma() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let (rec, _) = call_and_record(&mut ua, 8, "PCMA/8000").await;
    let audio = rec.decode_audio(Some(8));
    let welcome = g711::decode_alaw(&g711::encode_alaw(&prompt_samples(PromptId::Welcome)));
    assert!(
        find(&audio, &welcome).is_some(),
        "A-law welcome, sample-exact"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_may_hang_up_mid_prompt() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let opts = InviteOptions::new(ECHO).with_sdp(phone_offer(rec.port()));
    let (mut call, _) = ua.answered_call(opts, Duration::from_secs(5)).await;
    assert!(rec.wait_for_packets(10, Duration::from_secs(2)).await);
    let tx = ua.bye(&mut call).await.unwrap();
    let r = ua
        .expect_final_tx(&tx, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r.status(), Some(200));
    assert!(
        rec.wait_for_silence(Duration::from_millis(300), Duration::from_secs(2))
            .await,
        "RTP stops after BYE"
    );
    server.stop().await;
}
