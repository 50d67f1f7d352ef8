//! End to end: a caller keys digits by RFC 4733 events, in-band tones and
//! SIP INFO, and the server receives exactly those digits, once each. The
//! server's keypad test line reads every key back, so the digits it got are
//! recovered from the audio it sends: each digit prompt appears byte for
//! byte in the RTP stream (prompts are pre-encoded), in the order received.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dtmf::{self, dtmf_tone, event_code, played_prompts, RtpStream};
use common::g711;
use common::rtp::{RtpHeader, RtpRecorder};
use common::server::TestServer;
use common::ua::{offer_sdp, Call, Direction, InviteOptions, TestUa};
use pinbridge::config::KeypadTestSettings;
use pinbridge::ivr::prompts::PromptId;
use pinbridge::media::dtmf::DtmfMode;

const KEYPAD: &str = "*98";
const SSRC: u32 = 0x5EED_0001;

struct Caller {
    server: TestServer,
    ua: TestUa,
    call: Call,
    rec: RtpRecorder,
    to: SocketAddr,
    stream: RtpStream,
}

async fn keypad_call(mode: DtmfMode) -> Caller {
    let server = TestServer::start_with(|c| {
        c.keypad_test = Some(KeypadTestSettings {
            numbers: vec![KEYPAD.into()],
            idle_timeout: Duration::from_secs(20),
        });
        c.dtmf_mode = mode;
    })
    .await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let sdp = offer_sdp(
        rec.port(),
        &[(0, "PCMU/8000")],
        Some(dtmf::EVENT_PT),
        Direction::SendRecv,
    );
    let opts = InviteOptions::new(KEYPAD).with_sdp(sdp);
    let (call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
    let to = answer.rtp_addr();
    Caller {
        server,
        ua,
        call,
        rec,
        to,
        stream: RtpStream::new(0, SSRC),
    }
}

impl Caller {
    /// Sends `ms` of silence as PCMU, paced.
    async fn silence(&mut self, ms: usize) {
        let slots = self.stream.silence(ms);
        dtmf::send_slots(&self.rec, self.to, slots).await.unwrap();
    }

    /// RFC 4733 events: 100 ms each, 100 ms between, on the audio stream's
    /// SSRC and clock.
    async fn rfc4733(&mut self, keys: &str) {
        let slots = self.stream.rfc4733(keys, 100, 100);
        dtmf::send_slots(&self.rec, self.to, slots).await.unwrap();
    }

    /// In-band tones in the PCMU stream: 100 ms at -10 dBm0 per tone, 100 ms
    /// pauses.
    async fn inband(&mut self, keys: &str) {
        let slots = self.stream.inband(keys, 100, 100);
        dtmf::send_slots(&self.rec, self.to, slots).await.unwrap();
    }

    async fn info(&mut self, keys: &str) {
        for k in keys.chars() {
            let status = dtmf::info_key(&mut self.ua, &mut self.call, k)
                .await
                .unwrap();
            assert_eq!(status, 200, "INFO answered");
            self.silence(200).await;
        }
    }

    /// The keys the server read back, recovered from its audio: each digit
    /// prompt stands for its digit, the beep for any other key.
    async fn read_back(&mut self) -> String {
        // Let the last read-back prompts play out.
        self.silence(1500).await;
        played_prompts(&self.rec)
            .into_iter()
            .filter_map(|(_, id)| match id {
                PromptId::JoinBeep => Some('#'),
                _ => (0..=9u8)
                    .find(|&d| PromptId::digit(d) == Some(id))
                    .map(|d| char::from(b'0' + d)),
            })
            .collect()
    }
}

async fn finish(mut c: Caller) {
    let tx = c.ua.bye(&mut c.call).await.unwrap();
    let _ = c.ua.expect_final_tx(&tx, Duration::from_secs(2)).await;
    c.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digits_arrive_once_each() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    c.silence(2200).await; // the welcome prompt
    c.rfc4733("1234#").await;
    assert_eq!(c.read_back().await, "1234#");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_rfc4733_digits_are_four_digits() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    c.silence(2200).await;
    c.rfc4733("1111").await;
    assert_eq!(c.read_back().await, "1111");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_digits_arrive_once_each() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    c.silence(2200).await;
    c.inband("1234#").await;
    assert_eq!(c.read_back().await, "1234#");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_arrive_once_each() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    c.silence(2200).await;
    c.info("1234#").await;
    assert_eq!(c.read_back().await, "1234#");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sent_as_event_and_tone_counts_once() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    c.silence(2200).await;
    // A phone that plays the tone in the audio and also sends the event.
    for k in "5#7".chars() {
        let code = event_code(k);
        let tone = g711::encode_ulaw(&dtmf_tone(k, 800));
        let next = &mut c.stream.next;
        let start_ts = next.timestamp;
        for (i, chunk) in tone.chunks(160).enumerate() {
            let mut a = RtpHeader::new(0, next.sequence, next.timestamp, SSRC);
            a.marker = false;
            c.rec.send_rtp(c.to, &a, chunk).await.unwrap();
            next.sequence = next.sequence.wrapping_add(1);
            next.timestamp = next.timestamp.wrapping_add(160);
            let duration = 160 * (i as u16 + 1);
            let end = i == 4;
            let payload = [
                code,
                if end { 0x8a } else { 10 },
                (duration >> 8) as u8,
                duration as u8,
            ];
            let e =
                RtpHeader::new(dtmf::EVENT_PT, next.sequence, start_ts, SSRC).with_marker(i == 0);
            c.rec.send_rtp(c.to, &e, &payload).await.unwrap();
            next.sequence = next.sequence.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.silence(100).await;
    }
    assert_eq!(c.read_back().await, "5#7");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_mode_ignores_tones() {
    let mut c = keypad_call(DtmfMode::Rfc4733).await;
    c.silence(2200).await;
    c.inband("12").await;
    c.rfc4733("3").await;
    assert_eq!(c.read_back().await, "3");
    finish(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_with_an_unknown_body_is_415_and_a_broken_one_400() {
    let mut c = keypad_call(DtmfMode::Auto).await;
    let tx = c.ua.info(&mut c.call, "text/plain", "hello").await.unwrap();
    assert_eq!(
        c.ua.expect_final_tx(&tx, Duration::from_secs(2))
            .await
            .unwrap()
            .status(),
        Some(415)
    );
    let tx =
        c.ua.info(&mut c.call, "application/dtmf-relay", "Signal=\r\n")
            .await
            .unwrap();
    assert_eq!(
        c.ua.expect_final_tx(&tx, Duration::from_secs(2))
            .await
            .unwrap()
            .status(),
        Some(400)
    );
    finish(c).await;
}
