//! End to end: a caller keys digits by RFC 4733 events, in-band tones and
//! SIP INFO, and the server receives exactly those digits, once each. The
//! server's keypad test line reads every key back, so the digits it got are
//! recovered from the audio it sends: each digit prompt appears byte for
//! byte in the RTP stream (prompts are pre-encoded), in the order received.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::g711;
use common::rtp::{RtpHeader, RtpRecorder};
use common::server::{prompt_samples, TestServer};
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
    next: RtpHeader,
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
        Some(101),
        Direction::SendRecv,
    );
    let mut call = ua
        .invite(InviteOptions::new(KEYPAD).with_sdp(sdp))
        .await
        .unwrap();
    let ok = ua
        .expect_final(&mut call, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok.status(), Some(200));
    let to = call.answer_sdp().expect("answer").rtp_addr();
    ua.ack(&mut call, None).await.unwrap();
    let next = RtpHeader::new(0, 1000, 160_000, SSRC).with_marker(true);
    Caller {
        server,
        ua,
        call,
        rec,
        to,
        next,
    }
}

impl Caller {
    /// Sends `ms` of silence as PCMU, paced.
    async fn silence(&mut self, ms: usize) {
        let h = self.next.clone();
        self.next = self
            .rec
            .send_g711(self.to, h, &vec![0i16; ms * 8], Duration::from_millis(20))
            .await
            .unwrap();
    }

    /// RFC 4733 events: 100 ms each (5 updates, 3 end packets), 100 ms of
    /// silence between, on the audio stream's SSRC and clock.
    async fn rfc4733(&mut self, keys: &str) {
        for k in keys.chars() {
            let code = "0123456789*#ABCD".find(k).expect("a DTMF key") as u8;
            let start_ts = self.next.timestamp;
            for i in 1..=8u16 {
                let end = i > 5;
                let duration = 160 * i.min(5);
                let payload = [
                    code,
                    if end { 0x80 | 10 } else { 10 },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                let mut h =
                    RtpHeader::new(101, self.next.sequence, start_ts, SSRC).with_marker(i == 1);
                h.sequence = self.next.sequence;
                self.rec.send_rtp(self.to, &h, &payload).await.unwrap();
                self.next.sequence = self.next.sequence.wrapping_add(1);
                if i <= 5 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            self.next.timestamp = self.next.timestamp.wrapping_add(800);
            self.silence(100).await;
        }
    }

    /// In-band tones in the PCMU stream: 100 ms at -10 dBm0 per tone, 100 ms
    /// pauses.
    async fn inband(&mut self, keys: &str) {
        for k in keys.chars() {
            let tone = dtmf_tone(k, 800);
            let h = self.next.clone();
            self.next = self
                .rec
                .send_g711(self.to, h, &tone, Duration::from_millis(20))
                .await
                .unwrap();
            self.silence(100).await;
        }
    }

    async fn info(&mut self, keys: &str) {
        for k in keys.chars() {
            let tx = self
                .ua
                .info(
                    &mut self.call,
                    "application/dtmf-relay",
                    &format!("Signal={k}\r\nDuration=100\r\n"),
                )
                .await
                .unwrap();
            let r = self
                .ua
                .expect_final_tx(&tx, Duration::from_secs(2))
                .await
                .unwrap();
            assert_eq!(r.status(), Some(200), "INFO answered");
            self.silence(200).await;
        }
    }

    /// The keys the server read back, recovered from its audio.
    async fn read_back(&mut self) -> String {
        // Let the last read-back prompts play out.
        self.silence(1500).await;
        // Loopback keeps arrival order = send order.
        let bytes: Vec<u8> = self
            .rec
            .packets()
            .into_iter()
            .flat_map(|p| p.payload)
            .collect();
        let mut found: Vec<(usize, char)> = Vec::new();
        for d in 0..=9u8 {
            let id = PromptId::digit(d).unwrap();
            let needle = g711::encode_ulaw(&prompt_samples(id));
            let mut from = 0;
            while let Some(i) = find(&bytes[from..], &needle) {
                found.push((from + i, char::from(b'0' + d)));
                from += i + needle.len();
            }
        }
        let beep = g711::encode_ulaw(&prompt_samples(PromptId::JoinBeep));
        let mut from = 0;
        while let Some(i) = find(&bytes[from..], &beep) {
            found.push((from + i, '#'));
            from += i + beep.len();
        }
        found.sort();
        found.into_iter().map(|(_, c)| c).collect()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dtmf_tone(key: char, n: usize) -> Vec<i16> {
    let (lo, hi) = match key {
        '1' => (697.0, 1209.0),
        '2' => (697.0, 1336.0),
        '3' => (697.0, 1477.0),
        '4' => (770.0, 1209.0),
        '5' => (770.0, 1336.0),
        '6' => (770.0, 1477.0),
        '7' => (852.0, 1209.0),
        '8' => (852.0, 1336.0),
        '9' => (852.0, 1477.0),
        '*' => (941.0, 1209.0),
        '0' => (941.0, 1336.0),
        '#' => (941.0, 1477.0),
        _ => panic!("key {key}"),
    };
    // -10 dBm0 per tone: a full-scale sine is +3.17 dBm0.
    let amp = 32767.0 * 10f64.powf(-13.17 / 20.0);
    let a = g711::sine(lo, amp, n);
    let b = g711::sine(hi, amp, n);
    a.iter()
        .zip(&b)
        .map(|(x, y)| x.saturating_add(*y))
        .collect()
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
        let code = "0123456789*#".find(k).unwrap() as u8;
        let tone = g711::encode_ulaw(&dtmf_tone(k, 800));
        let start_ts = c.next.timestamp;
        for (i, chunk) in tone.chunks(160).enumerate() {
            let mut a = RtpHeader::new(0, c.next.sequence, c.next.timestamp, SSRC);
            a.marker = false;
            c.rec.send_rtp(c.to, &a, chunk).await.unwrap();
            c.next.sequence = c.next.sequence.wrapping_add(1);
            c.next.timestamp = c.next.timestamp.wrapping_add(160);
            let duration = 160 * (i as u16 + 1);
            let end = i == 4;
            let payload = [
                code,
                if end { 0x8a } else { 10 },
                (duration >> 8) as u8,
                duration as u8,
            ];
            let e = RtpHeader::new(101, c.next.sequence, start_ts, SSRC).with_marker(i == 0);
            c.rec.send_rtp(c.to, &e, &payload).await.unwrap();
            c.next.sequence = c.next.sequence.wrapping_add(1);
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
