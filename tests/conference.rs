//! The PIN-gated conference end to end, over loopback with the test user
//! agent: callers dial in, key the PIN (RFC 4733 unless a test says
//! otherwise), and talk in the room.
//!
//! Each caller sends a continuous stream from a background sender (one
//! packet every 20 ms: silence, or a sine at -15 dBFS, with keys spliced in
//! as telephone-events or in-band tones). What a caller hears is checked two
//! ways: the prompts it heard are found by their exact G.711 bytes
//! (`common::dtmf::heard_prompts`), and who it hears is measured on the
//! decoded audio received over a time window: the level of each caller's
//! tone, per 50 ms block (one DFT bin, Hann window, as a Goertzel filter
//! gives it). Every wait is bounded; the server is the in-process one with
//! the test configuration (conference "main" answers every number, PIN
//! 1234).
//!
//! These are the end-to-end checks, a few per feature; the rules in detail
//! (who hears whom, beeps, the moderator, menu keys, in-band keys, loss and
//! reordering, a full room, inactivity) are tested on a fake clock beside
//! the room's media core, in src/conference/room_media_tests.rs.

mod common;

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::dtmf::{self, heard_prompts, prompt_ids, HeardPrompt, RtpStream, Slot};
use common::g711;
use common::rtp::{RecordedPacket, RtpRecorder};
use common::server::{prompt_samples, TestServer};
use common::ua::{offer_sdp, Call, Direction, InviteOptions, TestUa};
use pinbridge::conference::pin::PinSecret;
use pinbridge::config::{ConferenceSettings, LobbySettings};
use pinbridge::ivr::prompts::PromptId;
use pinbridge::ivr::{CodeLength, GatherRules};
use tokio::task::JoinHandle;

/// Level of the callers' test tones (peak, relative to full scale).
const TONE_DBFS: f64 = -15.0;
/// Key presses: 80 ms each, 80 ms apart (Q.24 needs 40 ms of each).
const PRESS_MS: usize = 80;
const GAP_MS: usize = 80;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------- sender

/// What a caller's background sender sends every 20 ms: scripted slots
/// (keys) first, otherwise its tone or silence.
struct Sender {
    stream: RtpStream,
    script: VecDeque<Slot>,
    tone: Option<f64>,
    /// Samples of tone generated (the sine's phase).
    n: u64,
}

impl Sender {
    fn next_slot(&mut self) -> Slot {
        if let Some(slot) = self.script.pop_front() {
            return slot;
        }
        let samples: Vec<i16> = match self.tone {
            Some(f) => {
                let amp = 32767.0 * 10f64.powf(TONE_DBFS / 20.0);
                (0..dtmf::FRAME as u64)
                    .map(|i| {
                        let t = (self.n + i) as f64 / 8000.0;
                        (amp * (2.0 * PI * f * t).sin()).round() as i16
                    })
                    .collect()
            }
            None => vec![0; dtmf::FRAME],
        };
        self.n += dtmf::FRAME as u64;
        vec![self.stream.audio_packet(&samples)]
    }
}

async fn send_loop(rec: Arc<RtpRecorder>, to: SocketAddr, sender: Arc<Mutex<Sender>>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticker.tick().await;
        let slot = sender.lock().unwrap_or_else(|e| e.into_inner()).next_slot();
        for (h, payload) in slot {
            let _ = rec.send_rtp(to, &h, &payload).await;
        }
    }
}

// ------------------------------------------------------------------- leg

/// One caller: its SIP dialog, its RTP socket (recording what it hears) and
/// its background sender.
struct Leg {
    name: String,
    ua: TestUa,
    call: Call,
    rec: Arc<RtpRecorder>,
    sender: Arc<Mutex<Sender>>,
    pump: JoinHandle<()>,
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl Leg {
    /// Calls `number` as `caller` (PCMU, telephone-event offered), expects
    /// 200, ACKs and starts sending silence.
    async fn dial(server: SocketAddr, number: &str, caller: &str, ssrc: u32) -> Leg {
        let mut ua = TestUa::udp(server).await.expect("SIP socket");
        let rec = Arc::new(RtpRecorder::bind().await.expect("RTP socket"));
        let sdp = offer_sdp(
            rec.port(),
            &[(g711::PT_PCMU, "PCMU/8000")],
            Some(dtmf::EVENT_PT),
            Direction::SendRecv,
        );
        let mut opts = InviteOptions::new(number).with_sdp(sdp);
        opts.from_user = caller.into();
        let (call, answer) = ua.answered_call(opts, secs(5)).await;
        let to = answer.rtp_addr();
        let sender = Arc::new(Mutex::new(Sender {
            stream: RtpStream::new(g711::PT_PCMU, ssrc),
            script: VecDeque::new(),
            tone: None,
            n: 0,
        }));
        let pump = tokio::spawn(send_loop(rec.clone(), to, sender.clone()));
        Leg {
            name: caller.into(),
            ua,
            call,
            rec,
            sender,
            pump,
        }
    }

    fn sender(&self) -> MutexGuard<'_, Sender> {
        self.sender.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues keys as RFC 4733 events.
    fn keys(&self, keys: &str) {
        let mut s = self.sender();
        let slots = s.stream.rfc4733(keys, PRESS_MS, GAP_MS);
        s.script.extend(slots);
    }

    /// Queues keys as in-band tones.
    fn keys_inband(&self, keys: &str) {
        let mut s = self.sender();
        let slots = s.stream.inband(keys, PRESS_MS, GAP_MS);
        s.script.extend(slots);
    }

    /// Waits until everything queued has been sent.
    async fn keyed(&self) {
        let deadline = Instant::now() + secs(10);
        while !self.sender().script.is_empty() {
            assert!(Instant::now() < deadline, "{}: keys not sent", self.name);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends a continuous tone from now on (`None`: silence).
    fn tone(&self, freq: Option<f64>) {
        self.sender().tone = freq;
    }

    fn prompts(&self) -> Vec<PromptId> {
        prompt_ids(&self.rec)
    }

    fn heard_prompts(&self) -> Vec<HeardPrompt> {
        heard_prompts(&self.rec)
    }

    /// Waits until the leg has heard `id` at least `n` times.
    async fn wait_prompt(&self, id: PromptId, n: usize, timeout: Duration) {
        let result = dtmf::wait_for_prompt(&self.rec, id, n, timeout).await;
        for h in self
            .heard_prompts()
            .iter()
            .filter(|h| h.id == id && h.lost > 0)
        {
            eprintln!(
                "note: {}: the server skipped {} samples of {id:?} (it was late)",
                self.name, h.lost
            );
        }
        if let Err(heard) = result {
            panic!(
                "{}: did not hear {id:?} {n} time(s) within {timeout:?}; heard {heard:?}",
                self.name
            );
        }
    }

    /// The audio received (PCMU/PCMA packets that arrived in `[from, to)`),
    /// decoded in sequence order.
    fn heard(&self, from: Instant, to: Instant) -> Vec<i16> {
        packets_between(&self.rec, from, to)
            .iter()
            .flat_map(|p| g711::decode(&p.payload, p.header.payload_type).unwrap_or_default())
            .collect()
    }

    /// Hangs up with BYE and expects 200.
    async fn hang_up(&mut self) {
        let tx = self.ua.bye(&mut self.call).await.expect("BYE sent");
        let r = self
            .ua
            .expect_final_tx(&tx, secs(2))
            .await
            .unwrap_or_else(|e| panic!("{}: no answer to BYE: {e}", self.name));
        assert_eq!(r.status(), Some(200), "{}: BYE answered", self.name);
    }

    /// Expects the server's BYE within `timeout`, answers it 200 and
    /// returns when it came.
    async fn expect_bye(&mut self, timeout: Duration) -> Instant {
        let bye = self.ua.recv_request(timeout).await.unwrap_or_else(|e| {
            panic!(
                "{}: no BYE from the server: {e}; heard {:?}",
                self.name,
                self.prompts()
            )
        });
        let at = Instant::now();
        assert_eq!(bye.method(), Some("BYE"), "{}: {bye:?}", self.name);
        self.ua
            .respond(&bye, 200, "OK", &[], None)
            .await
            .expect("200 to BYE");
        // The last RTP packets may still be on their way to the recorder.
        self.rec
            .wait_for_silence(Duration::from_millis(100), secs(2))
            .await;
        at
    }
}

/// Packets of G.711 audio that arrived in `[from, to)`, in sequence order.
fn packets_between(rec: &RtpRecorder, from: Instant, to: Instant) -> Vec<RecordedPacket> {
    let mut packets: Vec<RecordedPacket> = rec
        .packets()
        .into_iter()
        .filter(|p| p.arrival >= from && p.arrival < to)
        .filter(|p| matches!(p.header.payload_type, g711::PT_PCMU | g711::PT_PCMA))
        .collect();
    if let Some(first) = packets.first().map(|p| p.header.sequence) {
        packets.sort_by_key(|p| p.header.sequence.wrapping_sub(first) as i16);
    }
    packets
}

/// Dials and queues the PIN (RFC 4733).
async fn join(server: SocketAddr, number: &str, caller: &str, ssrc: u32, keys: &str) -> Leg {
    let leg = Leg::dial(server, number, caller, ssrc).await;
    leg.keys(keys);
    leg
}

/// Waits until `done` holds for the prompts every leg heard.
async fn wait_all(legs: &[&Leg], timeout: Duration, done: impl Fn(&[Vec<PromptId>]) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let heard: Vec<Vec<PromptId>> = legs.iter().map(|l| l.prompts()).collect();
        if done(&heard) {
            return;
        }
        if Instant::now() >= deadline {
            let who: Vec<String> = legs
                .iter()
                .zip(&heard)
                .map(|(l, h)| format!("{}: {h:?}", l.name))
                .collect();
            panic!("prompts not heard within {timeout:?}:\n{}", who.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(heard: &[Vec<PromptId>], id: PromptId) -> usize {
    heard.iter().flatten().filter(|&&p| p == id).count()
}

/// Lets `d` of audio arrive and returns the window `[start, end)` it
/// covers, starting 100 ms from now (what was in flight settles).
async fn listen(d: Duration) -> (Instant, Instant) {
    let start = Instant::now() + Duration::from_millis(100);
    tokio::time::sleep_until((start + d).into()).await;
    (start, Instant::now())
}

// --------------------------------------------------------------- analysis

/// The level in dBFS (a full-scale sine is 0) of one frequency in one
/// block: a DFT bin with a Hann window, scaled back to a sine's amplitude.
fn block_tone_dbfs(block: &[i16], freq: f64) -> f64 {
    let n = block.len();
    if n < 2 {
        return f64::NEG_INFINITY;
    }
    20.0 * (block_amplitude(block, freq).max(1e-9) / 32768.0).log10()
}

fn block_amplitude(block: &[i16], freq: f64) -> f64 {
    let n = block.len();
    let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
    let w0 = 2.0 * PI * freq / 8000.0;
    for (i, &s) in block.iter().enumerate() {
        let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / (n - 1) as f64).cos();
        let x = f64::from(s) * w;
        re += x * (w0 * i as f64).cos();
        im -= x * (w0 * i as f64).sin();
        wsum += w;
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// The amplitude of one frequency in one block, rectangular window (a
/// tone filling a fraction of the block reads as that fraction of its
/// amplitude).
fn rect_amplitude(block: &[i16], freq: f64) -> f64 {
    let w0 = 2.0 * PI * freq / 8000.0;
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in block.iter().enumerate() {
        re += f64::from(s) * (w0 * i as f64).cos();
        im -= f64::from(s) * (w0 * i as f64).sin();
    }
    2.0 * (re * re + im * im).sqrt() / block.len().max(1) as f64
}

/// Samples per analysis block (50 ms: 20 Hz bins, so tones 180 Hz apart
/// are far apart).
const BLOCK: usize = 400;

/// The amplitude of a tone at `freq` in each 50 ms block of `samples`. A
/// jitter buffer may time-scale a frame (it makes 160 samples out of
/// 158–162 to follow the sender's clock), which shifts a tone by up to about
/// 1 % and breaks its phase between frames; so blocks are measured one by
/// one, each at the strongest frequency within 2 % of `freq`.
fn block_levels(samples: &[i16], freq: f64) -> Vec<f64> {
    let (lo, hi) = (freq * 0.98, freq * 1.02);
    samples
        .chunks_exact(BLOCK)
        .map(|b| {
            let mut best = 0.0f64;
            let mut f = lo;
            while f <= hi {
                best = best.max(block_amplitude(b, f));
                f += 2.0;
            }
            best
        })
        .collect()
}

fn dbfs(amplitude: f64) -> f64 {
    20.0 * (amplitude.max(1e-9) / 32768.0).log10()
}

/// The level of a tone in `samples` in dBFS (a full-scale sine is 0), as
/// the power averaged over the blocks: a tone heard in any part of the
/// window counts.
fn tone_dbfs(samples: &[i16], freq: f64) -> f64 {
    let levels = block_levels(samples, freq);
    if levels.is_empty() {
        return block_tone_dbfs(samples, freq);
    }
    let power = levels.iter().map(|a| a * a).sum::<f64>() / levels.len() as f64;
    dbfs(power.sqrt())
}

/// The level a tone has through most of `samples` (the median of the
/// blocks), in dBFS: what a listener hears, not spoilt by a moment of
/// trouble on the way.
fn tone_median_dbfs(samples: &[i16], freq: f64) -> f64 {
    let mut levels = block_levels(samples, freq);
    if levels.is_empty() {
        return block_tone_dbfs(samples, freq);
    }
    levels.sort_by(f64::total_cmp);
    dbfs(levels[levels.len() / 2])
}

/// RMS level in dBFS (a full-scale sine is -3).
fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let ms = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    10.0 * (ms.max(1e-9) / (32768.0 * 32768.0)).log10()
}

/// Checks that `leg` hears every tone of `present` (within 6 dB of what
/// was sent) and each of `absent` at least `margin` dB below the weakest of
/// them, over `window`. Returns the levels for the log.
#[track_caller]
fn assert_hears(
    leg: &Leg,
    window: (Instant, Instant),
    present: &[f64],
    absent: &[f64],
    margin: f64,
) -> String {
    let audio = leg.heard(window.0, window.1);
    let expected = (window.1 - window.0).as_secs_f64() * 8000.0;
    assert!(
        audio.len() as f64 >= 0.8 * expected,
        "{}: only {} samples received in a window of {:?}",
        leg.name,
        audio.len(),
        window.1 - window.0
    );
    // Talkers must be heard through most of the window; a tone that must
    // not be heard may not be in any part of it.
    let heard = |f: f64| tone_median_dbfs(&audio, f);
    let unheard = |f: f64| tone_dbfs(&audio, f);
    let report: Vec<String> = present
        .iter()
        .map(|&f| format!("{f} Hz {:.1} dBFS", heard(f)))
        .chain(
            absent
                .iter()
                .map(|&f| format!("{f} Hz {:.1} dBFS", unheard(f))),
        )
        .collect();
    let report = format!("{} hears {}", leg.name, report.join(", "));
    let weakest = present
        .iter()
        .map(|&f| heard(f))
        .fold(f64::INFINITY, f64::min);
    for &f in present {
        assert!(
            heard(f) > TONE_DBFS - 6.0,
            "{report}: the {f} Hz talker is not heard"
        );
    }
    for &f in absent {
        assert!(
            unheard(f) < weakest - margin,
            "{report}: {f} Hz should be at least {margin} dB below the talkers heard"
        );
    }
    eprintln!("{report}");
    report
}

fn position(heard: &[HeardPrompt], id: PromptId) -> Option<HeardPrompt> {
    heard.iter().copied().find(|h| h.id == id)
}

// ----------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_callers_each_hear_the_other_two_and_not_themselves() {
    let server = TestServer::start().await;
    let freqs = [440.0, 620.0, 880.0];
    let mut legs = Vec::new();
    for (i, _) in freqs.iter().enumerate() {
        legs.push(
            join(
                server.sip,
                "100",
                &format!("caller{i}"),
                0xC0DE_0000 + i as u32,
                "1234#",
            )
            .await,
        );
    }
    for (leg, f) in legs.iter().zip(freqs) {
        leg.wait_prompt(PromptId::Joining, 1, secs(10)).await;
        leg.tone(Some(f));
    }
    // The first in hears it is alone and then a beep per arrival; the
    // second hears one beep. After that every leg hears only the mix.
    let refs: Vec<&Leg> = legs.iter().collect();
    wait_all(&refs, secs(10), |h| {
        count(h, PromptId::OnlyPerson) == 1 && count(h, PromptId::JoinBeep) == 3
    })
    .await;
    let window = listen(Duration::from_millis(1500)).await;
    for (i, leg) in legs.iter().enumerate() {
        let others: Vec<f64> = (0..3).filter(|&j| j != i).map(|j| freqs[j]).collect();
        assert_hears(leg, window, &others, &[freqs[i]], 20.0);
    }
    for leg in &mut legs {
        leg.hang_up().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_three_times_is_goodbye_and_bye() {
    let server = TestServer::start().await;
    let mut leg = Leg::dial(server.sip, "100", "guesser", 0xBAD0_0001).await;
    for attempt in 1..=3 {
        leg.keys("4321#");
        if attempt < 3 {
            // Key the next try once "that code is incorrect" is heard whole
            // (it barges in on the "enter the code" that follows).
            leg.wait_prompt(PromptId::CodeIncorrect, attempt, secs(10))
                .await;
        }
    }
    let bye_at = leg.expect_bye(secs(15)).await;
    let heard = leg.heard_prompts();
    let ids: Vec<PromptId> = heard.iter().map(|h| h.id).collect();
    assert_eq!(
        ids,
        [
            PromptId::CodeIncorrect,
            PromptId::CodeIncorrect,
            PromptId::CodeIncorrect,
            PromptId::Goodbye
        ],
        "incorrect three times (the welcome and the prompts after it were cut short by our keys), then goodbye"
    );
    let goodbye = heard[3];
    let third = heard[2];
    assert_eq!(
        goodbye.offset, third.end,
        "goodbye follows the third 'incorrect' directly"
    );
    assert!(
        bye_at >= goodbye.at,
        "the BYE comes after the goodbye prompt"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_locked_out_after_the_limit_and_let_in_after_the_cool_off() {
    let server = TestServer::start_with(|c| {
        c.security.caller_failures = 2;
        c.security.caller_window = secs(15 * 60);
        c.security.lockout = secs(2);
    })
    .await;
    let mut first = Leg::dial(server.sip, "100", "mallory", 0x10C0_0001).await;
    first.keys("1111#");
    first
        .wait_prompt(PromptId::CodeIncorrect, 1, secs(10))
        .await;
    first.keys("1111#");
    first.keyed().await;
    // The second wrong code (checked as its # arrived) reached the limit.
    let locked = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A new call from the same caller is refused before it is answered...
    let status = invite_status(server.sip, "100", "mallory").await;
    assert_eq!(status, 403, "a locked-out caller's INVITE is refused");
    // ...while another caller from the same address is not.
    let status = invite_status(server.sip, "100", "alice").await;
    assert_eq!(status, 200, "other callers are not locked out");

    // After the cool-off the caller is answered and the right PIN works
    // (while the first call is still hearing that it is locked out).
    tokio::time::sleep_until((locked + Duration::from_millis(2300)).into()).await;
    let mut again = join(server.sip, "100", "mallory", 0x10C0_0002, "1234#").await;

    // The call that was up hears it is locked out, goodbye, then BYE.
    first.expect_bye(secs(15)).await;
    assert_eq!(
        first.prompts(),
        [
            PromptId::CodeIncorrect,
            PromptId::LockedOut,
            PromptId::Goodbye
        ]
    );
    again.wait_prompt(PromptId::Joining, 1, secs(10)).await;
    again.hang_up().await;
    server.stop().await;
}

/// Sends an INVITE from `caller` and returns the final status (ACKing it;
/// a 200 is hung up at once).
async fn invite_status(server: SocketAddr, number: &str, caller: &str) -> u16 {
    let mut ua = TestUa::udp(server).await.expect("SIP socket");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let sdp = offer_sdp(
        rec.port(),
        &[(g711::PT_PCMU, "PCMU/8000")],
        Some(dtmf::EVENT_PT),
        Direction::SendRecv,
    );
    let mut opts = InviteOptions::new(number).with_sdp(sdp);
    opts.from_user = caller.into();
    let status = match ua.place_call(opts, secs(5)).await {
        Ok((mut call, _)) => {
            let tx = ua.bye(&mut call).await.expect("BYE");
            let _ = ua.expect_final_tx(&tx, secs(2)).await;
            200
        }
        Err(status) => status,
    };
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_wait_for_the_moderator_and_the_conference_ends_with_them() {
    let server = TestServer::start_with(|c| {
        let main = &mut c.conferences[0];
        // The moderator keys its PIN early and the # once the others wait.
        main.gather.inter_digit_timeout = secs(12);
        main.moderator_pin = PinSecret::plain("9999").ok();
        main.rules.require_moderator = true;
        main.rules.end_when_moderator_leaves = true;
    })
    .await;
    let (f1, f2, fm) = (440.0, 620.0, 880.0);
    let mut p1 = join(server.sip, "100", "p1", 0x30D0_0001, "1234#").await;
    let mut p2 = join(server.sip, "100", "p2", 0x30D0_0002, "1234#").await;
    // The moderator keys the PIN now and its # once the others wait.
    let mut m = join(server.sip, "100", "moderator", 0x30D0_0003, "9999").await;
    for (leg, f) in [(&p1, f1), (&p2, f2)] {
        leg.wait_prompt(PromptId::Joining, 1, secs(10)).await;
        leg.tone(Some(f));
    }
    // The participants are in: they hear "waiting for the moderator" (4 s)
    // and then music. The moderator's # now makes it join (after its 2.7 s
    // "joining") well into the music.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    m.keys("#");
    for leg in [&p1, &p2] {
        leg.wait_prompt(PromptId::WaitingForModerator, 1, secs(10))
            .await;
    }
    // "Waiting for the moderator", then hold music from the next packet on.
    for leg in [&p1, &p2] {
        leg.wait_prompt(PromptId::HoldMusic, 1, secs(5)).await;
        let heard = leg.heard_prompts();
        let wait = position(&heard, PromptId::WaitingForModerator).unwrap();
        let music = position(&heard, PromptId::HoldMusic).unwrap();
        let wait_end = wait.end;
        assert!(
            music.offset >= wait_end && music.offset < wait_end + dtmf::FRAME,
            "{}: hold music follows the waiting prompt (in the next packet); heard {heard:?}",
            leg.name
        );
    }

    // The moderator arrives: the music stops, a beep, and everyone talks.
    m.wait_prompt(PromptId::Joining, 1, secs(10)).await;
    m.tone(Some(fm));
    for leg in [&p1, &p2] {
        leg.wait_prompt(PromptId::JoinBeep, 1, secs(5)).await;
    }
    // Until then the participants heard the hold music and nothing else:
    // what arrived from its start up to the beep is the music byte for
    // byte, so nothing of the other participant was mixed in.
    let music = g711::encode_ulaw(&prompt_samples(PromptId::HoldMusic));
    for leg in [&p1, &p2] {
        let heard = leg.heard_prompts();
        let start = position(&heard, PromptId::HoldMusic).unwrap().offset;
        let beep = position(&heard, PromptId::JoinBeep).unwrap().offset;
        let stream = dtmf::received_stream(&leg.rec);
        let played = beep - start;
        assert!(
            played >= 8000 && played <= music.len(),
            "{}: {played} samples of hold music before the moderator came",
            leg.name
        );
        assert!(
            stream[start..beep] == music[..played],
            "{}: from its start to the moderator's beep, {:.2} s, the participant heard only the hold music",
            leg.name,
            played as f64 / 8000.0
        );
    }
    let window = listen(Duration::from_millis(800)).await;
    assert_hears(&p1, window, &[f2, fm], &[f1], 20.0);
    assert_hears(&p2, window, &[f1, fm], &[f2], 20.0);
    assert_hears(&m, window, &[f1, f2], &[fm], 20.0);
    assert!(
        !m.prompts().contains(&PromptId::OnlyPerson),
        "the moderator joined people: {:?}",
        m.prompts()
    );

    // The moderator leaves: the conference ends for everyone.
    m.hang_up().await;
    for leg in [&mut p1, &mut p2] {
        let bye_at = leg.expect_bye(secs(8)).await;
        let heard = leg.heard_prompts();
        let n = heard.len();
        assert!(n >= 2, "{}: {heard:?}", leg.name);
        assert_eq!(
            (heard[n - 2].id, heard[n - 1].id),
            (PromptId::ConferenceEnded, PromptId::Goodbye),
            "{}: the last prompts before BYE; heard {:?}",
            leg.name,
            leg.prompts()
        );
        assert_eq!(heard[n - 1].offset, heard[n - 2].end);
        assert!(bye_at >= heard[n - 1].at);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_unmute_count_and_leave_keys() {
    let server = TestServer::start().await;
    let (fa, fb, fc) = (440.0, 620.0, 880.0);
    let mut a = join(server.sip, "100", "a", 0x4D00_0001, "1234#").await;
    // B and C join a moment after A (A is the one who hears "only person").
    let mut b = join(server.sip, "100", "b", 0x4D00_0002, "1234").await;
    let mut c = join(server.sip, "100", "c", 0x4D00_0003, "1234").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.keys("#");
    c.keys("#");
    for (leg, f) in [(&a, fa), (&b, fb), (&c, fc)] {
        leg.wait_prompt(PromptId::Joining, 1, secs(10)).await;
        leg.tone(Some(f));
    }
    // One of B and C hears the beep for the other.
    wait_all(&[&b, &c], secs(5), |h| count(h, PromptId::JoinBeep) == 1).await;

    let window = listen(Duration::from_millis(500)).await;
    assert_hears(&b, window, &[fa, fc], &[fb], 20.0);
    assert_hears(&c, window, &[fa, fb], &[fc], 20.0);
    let unmuted_level = tone_median_dbfs(&b.heard(window.0, window.1), fa);

    // *1: A hears "muted" and nobody hears A.
    a.keys("*1");
    a.keyed().await;
    let window = listen(Duration::from_millis(600)).await;
    assert_hears(&b, window, &[fc], &[fa, fb], 20.0);
    assert_hears(&c, window, &[fb], &[fa, fc], 20.0);
    let muted_level = tone_dbfs(&b.heard(window.0, window.1), fa);
    assert!(
        muted_level < unmuted_level - 30.0,
        "muted A is {muted_level:.1} dBFS at B (unmuted {unmuted_level:.1})"
    );
    a.wait_prompt(PromptId::Muted, 1, secs(5)).await;

    // *1 again: "unmuted" and A is heard again.
    a.keys("*1");
    a.keyed().await;
    let window = listen(Duration::from_millis(600)).await;
    assert_hears(&b, window, &[fa, fc], &[fb], 20.0);
    assert_hears(&c, window, &[fa, fb], &[fc], 20.0);
    a.wait_prompt(PromptId::Unmuted, 1, secs(5)).await;

    // *2: "the number of participants is" "three".
    a.keys("*2");
    a.wait_prompt(PromptId::Digit3, 1, secs(8)).await;
    let heard = a.heard_prompts();
    let n = heard.len();
    assert_eq!(
        (heard[n - 2].id, heard[n - 1].id),
        (PromptId::ParticipantCount, PromptId::Digit3),
        "A heard {:?}",
        a.prompts()
    );
    assert_eq!(
        heard[n - 1].offset,
        heard[n - 2].end,
        "the count follows the announcement directly"
    );

    // *8: goodbye and BYE; the others hear A leave.
    a.keys("*8");
    let bye_at = a.expect_bye(secs(5)).await;
    let heard = a.heard_prompts();
    let last = heard.last().copied().unwrap();
    assert_eq!(last.id, PromptId::Goodbye, "A heard {:?}", a.prompts());
    assert!(bye_at >= last.at);
    for leg in [&b, &c] {
        leg.wait_prompt(PromptId::LeaveBeep, 1, secs(3)).await;
    }
    assert_eq!(
        a.prompts(),
        [
            PromptId::Joining,
            PromptId::Muted,
            PromptId::Unmuted,
            PromptId::ParticipantCount,
            PromptId::Digit3,
            PromptId::Goodbye
        ],
        "A's prompts (its 'only person' was cut short by *1)"
    );
    b.hang_up().await;
    c.hang_up().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_length_pin_needs_no_hash() {
    let server = TestServer::start_with(|c| {
        c.conferences[0].gather.length = CodeLength::Fixed(4);
    })
    .await;
    let mut leg = join(server.sip, "100", "fixed", 0xF1ED_0001, "1234").await;
    leg.keyed().await;
    let keyed = Instant::now();
    leg.wait_prompt(PromptId::Joining, 1, secs(6)).await;
    let joining = position(&leg.heard_prompts(), PromptId::Joining).unwrap();
    assert!(
        joining.at < keyed + Duration::from_millis(1500),
        "the fourth digit submits the code (joining came {:?} after the keys; the inter-digit timeout is 5 s)",
        joining.at.saturating_duration_since(keyed)
    );
    leg.wait_prompt(PromptId::OnlyPerson, 1, secs(6)).await;
    assert_eq!(leg.prompts(), [PromptId::Joining, PromptId::OnlyPerson]);
    leg.hang_up().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_terminated_pin_is_submitted_by_the_inter_digit_timeout() {
    let timeout = Duration::from_millis(1500);
    let server = TestServer::start_with(|c| {
        c.conferences[0].gather = GatherRules {
            inter_digit_timeout: timeout,
            ..GatherRules::default()
        };
    })
    .await;
    let mut leg = join(server.sip, "100", "slow", 0x4A54_0001, "12").await;
    leg.keyed().await;
    // The "2" started PRESS_MS + GAP_MS before the end of what was sent.
    let last_key = Instant::now() - Duration::from_millis((PRESS_MS + GAP_MS) as u64);
    leg.wait_prompt(PromptId::CodeIncorrect, 1, secs(6)).await;
    let incorrect = position(&leg.heard_prompts(), PromptId::CodeIncorrect).unwrap();
    let after = incorrect.at.saturating_duration_since(last_key);
    assert!(
        after >= timeout - Duration::from_millis(100) && after < timeout + secs(1),
        "'12' is checked when the inter-digit timeout ({timeout:?}) passes, got {after:?}"
    );
    // The caller is asked again; the right code with # joins.
    leg.keys("1234#");
    leg.wait_prompt(PromptId::Joining, 1, secs(6)).await;
    assert_eq!(leg.prompts(), [PromptId::CodeIncorrect, PromptId::Joining]);
    leg.hang_up().await;
    server.stop().await;
}

fn conference(
    template: &ConferenceSettings,
    name: &str,
    number: &str,
    pin: &str,
) -> ConferenceSettings {
    let mut c = template.clone();
    c.name = name.into();
    c.numbers = vec![number.into()];
    c.pin = PinSecret::plain(pin).ok();
    c.moderator_pin = None;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_pin_selects_the_conference() {
    let server = TestServer::start_with(|c| {
        let template = c.conferences[0].clone();
        c.conferences = vec![
            conference(&template, "alpha", "6001", "1111"),
            conference(&template, "bravo", "6002", "2222"),
        ];
        c.lobby = Some(LobbySettings {
            numbers: vec!["5000".into()],
            gather: GatherRules::default(),
        });
    })
    .await;
    let (f1, f2, f3) = (440.0, 620.0, 880.0);
    let mut c1 = join(server.sip, "5000", "c1", 0x10BB_0001, "2222#").await;
    let mut c2 = join(server.sip, "6002", "c2", 0x10BB_0002, "2222#").await;
    let mut c3 = join(server.sip, "5000", "c3", 0x10BB_0003, "1111#").await;
    for (leg, f) in [(&c1, f1), (&c2, f2), (&c3, f3)] {
        leg.wait_prompt(PromptId::Joining, 1, secs(10)).await;
        leg.tone(Some(f));
    }
    // c3 is alone in alpha; one of c1 and c2 is first in bravo and hears
    // the other arrive.
    c3.wait_prompt(PromptId::OnlyPerson, 1, secs(6)).await;
    wait_all(&[&c1, &c2], secs(8), |h| {
        count(h, PromptId::OnlyPerson) == 1 && count(h, PromptId::JoinBeep) == 1
    })
    .await;
    let window = listen(Duration::from_millis(1200)).await;
    assert_hears(&c1, window, &[f2], &[f1, f3], 20.0);
    assert_hears(&c2, window, &[f1], &[f2, f3], 20.0);
    let audio = c3.heard(window.0, window.1);
    for f in [f1, f2, f3] {
        let level = tone_dbfs(&audio, f);
        assert!(
            level < TONE_DBFS - 40.0,
            "c3 (alone in alpha) hears {f} Hz at {level:.1} dBFS"
        );
    }
    for leg in [&mut c1, &mut c2, &mut c3] {
        leg.hang_up().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_person_join_beeps_and_leave_beeps() {
    let server = TestServer::start().await;
    let mut a = join(server.sip, "100", "a", 0xBEE9_0001, "1234#").await;
    let mut b = join(server.sip, "100", "b", 0xBEE9_0002, "1234").await;
    let mut c = join(server.sip, "100", "c", 0xBEE9_0003, "1234").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.keys("#");
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.keys("#");
    c.wait_prompt(PromptId::Joining, 1, secs(10)).await;
    b.wait_prompt(PromptId::JoinBeep, 1, secs(5)).await;
    c.hang_up().await;
    a.wait_prompt(PromptId::LeaveBeep, 1, secs(8)).await;
    b.wait_prompt(PromptId::LeaveBeep, 1, secs(5)).await;
    assert_eq!(
        a.prompts(),
        [
            PromptId::Joining,
            PromptId::OnlyPerson,
            PromptId::JoinBeep,
            PromptId::JoinBeep,
            PromptId::LeaveBeep
        ],
        "the first in hears it is alone, then a beep for each arrival and departure"
    );
    assert_eq!(
        b.prompts(),
        [PromptId::Joining, PromptId::JoinBeep, PromptId::LeaveBeep],
        "the second in hears no 'only person', a beep for the third in and for its leaving"
    );
    assert_eq!(
        c.prompts(),
        [PromptId::Joining],
        "the third in hears no beep of its own"
    );
    a.hang_up().await;
    b.hang_up().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_keys_in_the_conference_are_not_heard_by_the_others() {
    let server = TestServer::start().await;
    let fa = 440.0;
    // A keys everything as tones (it sends no telephone-events, so the
    // server keeps listening for tones).
    let mut a = Leg::dial(server.sip, "100", "a", 0x1BA0_0001).await;
    a.keys_inband("1234#");
    let mut b = join(server.sip, "100", "b", 0x1BA0_0002, "1234").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.keys("#");
    a.wait_prompt(PromptId::Joining, 1, secs(10)).await;
    a.tone(Some(fa));
    b.wait_prompt(PromptId::Joining, 1, secs(10)).await;
    let window = listen(Duration::from_millis(500)).await;
    assert_hears(&b, window, &[fa], &[], 20.0);

    let keys_start = Instant::now();
    a.keys_inband("*1");
    a.keyed().await;
    a.wait_prompt(PromptId::Muted, 1, secs(5)).await;
    // Everything B got while the keys sounded, and a little after. The
    // server can only tell a key once it has a whole 20 ms window of it, and
    // it decides per 20 ms frame of the mix; so the start of a tone, in the
    // frame before it is detected, may pass (as a click, at most one frame);
    // the rest of the tone must not. Per frame, the amount of each key's
    // tone pair B got is measured as the milliseconds of full-level tone it
    // amounts to (the weaker of the two frequencies, rectangular window).
    let packets = packets_between(&b.rec, keys_start, Instant::now());
    assert!(packets.len() >= 20, "B got {} packets", packets.len());
    let full = 32767.0 * 10f64.powf(-13.17 / 20.0);
    let mut leaked_ms = [0.0f64; 2];
    let mut detail = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let frame = g711::decode(&p.payload, p.header.payload_type).unwrap();
        for (k, key) in ['*', '1'].into_iter().enumerate() {
            let (lo, hi) = dtmf::dtmf_freqs(key);
            let amp = rect_amplitude(&frame, lo).min(rect_amplitude(&frame, hi));
            let ms = 20.0 * amp / full;
            leaked_ms[k] += ms;
            if ms >= 0.5 {
                detail.push(format!(
                    "frame {i} ({:?} after the first key): {ms:.1} ms of '{key}' (frame RMS {:.1} dBFS)",
                    p.arrival.saturating_duration_since(keys_start),
                    rms_dbfs(&frame)
                ));
            }
        }
    }
    eprintln!(
        "B got {} frames while A keyed '*1' in-band; key tone passed: '*' {:.1} ms, '1' {:.1} ms {detail:?}",
        packets.len(),
        leaked_ms[0],
        leaked_ms[1]
    );
    assert_eq!(b.prompts(), [PromptId::Joining], "B heard no prompt since");
    for (k, key) in ['*', '1'].into_iter().enumerate() {
        assert!(
            leaked_ms[k] < 20.0,
            "B heard {:.1} ms of A's '{key}' tone (the press was {PRESS_MS} ms; at most the onset before detection, under one frame, may pass):\n{}",
            leaked_ms[k],
            detail.join("\n")
        );
    }
    a.hang_up().await;
    b.hang_up().await;
    server.stop().await;
}
