//! Keying DTMF from the test side, and recovering which prompts the server
//! played.
//!
//! Keys go out the three ways a phone sends them:
//!
//! - RFC 4733 telephone-events ([`RtpStream::rfc4733`]): the packets of an
//!   event share its start timestamp, the first has the marker bit, updates
//!   come every 20 ms with a growing duration, and the final packet (E bit,
//!   full duration) is sent three times at the update interval, each copy
//!   with its own sequence number. No audio is sent while an event and its
//!   final copies are going out; the audio that follows is stamped with the
//!   wall-clock time it stands for, so the stream's clock never drifts from
//!   real time (the model of `fixtures/tools/gen_rfc4733_pcap.py`).
//! - in-band tones in the G.711 stream ([`RtpStream::inband`]), -10 dBm0
//!   per tone;
//! - SIP INFO with `application/dtmf-relay` ([`info_key`]).
//!
//! A stream is built as [`Slot`]s, one per 20 ms packet time, so the same
//! packets can be sent paced from a test ([`send_slots`]) or mixed into a
//! continuous stream by a background sender.
//!
//! The prompts a call heard are found by their exact G.711 bytes: the
//! server pre-encodes every prompt, so a prompt that played to its end is in
//! the received stream byte for byte ([`played_prompts`], [`heard_prompts`]).

use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pinbridge::ivr::prompts::PromptId;

use super::g711;
use super::rtp::{RtpHeader, RtpRecorder};
use super::server::prompt_samples;
use super::ua::{Call, TestUa, UaResult};

/// The telephone-event payload type the tests offer.
pub const EVENT_PT: u8 = 101;

/// Samples per 20 ms packet.
pub const FRAME: usize = 160;

const PACKET_TIME: Duration = Duration::from_millis(20);

/// The packets to send in one 20 ms packet time (usually one; an event's
/// final packet can share a slot with nothing else, audio never shares a
/// slot with an event).
pub type Slot = Vec<(RtpHeader, Vec<u8>)>;

/// RFC 4733 event code of a key (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn event_code(key: char) -> u8 {
    "0123456789*#ABCD"
        .find(key.to_ascii_uppercase())
        .unwrap_or_else(|| panic!("{key:?} is not a DTMF key")) as u8
}

/// The (low, high) frequencies of a key, in Hz.
pub fn dtmf_freqs(key: char) -> (f64, f64) {
    let code = event_code(key);
    const ROW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COL: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    // Keypad position of each event code 0..=15.
    const POS: [(usize, usize); 16] = [
        (3, 1), // 0
        (0, 0), // 1
        (0, 1), // 2
        (0, 2), // 3
        (1, 0), // 4
        (1, 1), // 5
        (1, 2), // 6
        (2, 0), // 7
        (2, 1), // 8
        (2, 2), // 9
        (3, 0), // *
        (3, 2), // #
        (0, 3), // A
        (1, 3), // B
        (2, 3), // C
        (3, 3), // D
    ];
    let (r, c) = POS[usize::from(code)];
    (ROW[r], COL[c])
}

/// `n` samples of a key's tone pair at -10 dBm0 per tone (a full-scale
/// sine is +3.17 dBm0).
pub fn dtmf_tone(key: char, n: usize) -> Vec<i16> {
    let (lo, hi) = dtmf_freqs(key);
    let amp = 32767.0 * 10f64.powf(-13.17 / 20.0);
    let a = g711::sine(lo, amp, n);
    let b = g711::sine(hi, amp, n);
    a.iter()
        .zip(&b)
        .map(|(x, y)| x.saturating_add(*y))
        .collect()
}

/// The state of one outgoing RTP stream (one SSRC carrying G.711 audio and
/// telephone-events): what the next audio packet's header is. Every method
/// returns the slots that cover the time it describes and moves the state
/// on, so successive calls make one continuous stream.
#[derive(Debug, Clone)]
pub struct RtpStream {
    /// The header of the next audio packet (payload type, sequence number,
    /// timestamp, SSRC, marker).
    pub next: RtpHeader,
    pub event_pt: u8,
}

impl RtpStream {
    /// A stream of `audio_pt` (0 or 8) audio from `ssrc`, marker on its
    /// first packet.
    pub fn new(audio_pt: u8, ssrc: u32) -> RtpStream {
        RtpStream {
            next: RtpHeader::new(audio_pt, 1000, 160_000, ssrc).with_marker(true),
            event_pt: EVENT_PT,
        }
    }

    fn take_header(&mut self, pt: u8, timestamp: u32, marker: bool) -> RtpHeader {
        let mut h = self.next.clone();
        h.payload_type = pt;
        h.timestamp = timestamp;
        h.marker = marker;
        self.next.sequence = self.next.sequence.wrapping_add(1);
        h
    }

    /// One audio packet of up to 160 samples.
    pub fn audio_packet(&mut self, samples: &[i16]) -> (RtpHeader, Vec<u8>) {
        let pt = self.next.payload_type;
        let payload = g711::encode(samples, pt).expect("a G.711 payload type");
        let (ts, marker) = (self.next.timestamp, self.next.marker);
        let h = self.take_header(pt, ts, marker);
        self.next.marker = false;
        self.next.timestamp = self.next.timestamp.wrapping_add(samples.len() as u32);
        (h, payload)
    }

    /// Audio, one packet per 160 samples.
    pub fn audio(&mut self, samples: &[i16]) -> Vec<Slot> {
        samples
            .chunks(FRAME)
            .map(|chunk| vec![self.audio_packet(chunk)])
            .collect()
    }

    /// `ms` of digital silence.
    pub fn silence(&mut self, ms: usize) -> Vec<Slot> {
        self.audio(&vec![0; ms * 8])
    }

    /// One key press of `press_ms` as telephone-events, then at least
    /// `gap_ms` (and at least until the final packet's last copy) before
    /// whatever follows, filled with silent audio.
    pub fn rfc4733_press(&mut self, key: char, press_ms: usize, gap_ms: usize) -> Vec<Slot> {
        let code = event_code(key);
        let start = self.next.timestamp;
        let updates = (press_ms / 20).max(1);
        let duration = (updates * FRAME).min(0xFFFF) as u16;
        let body = |end: bool, d: u16| {
            let [hi, lo] = d.to_be_bytes();
            vec![code, if end { 0x80 | 10 } else { 10 }, hi, lo]
        };
        let mut slots = Vec::new();
        // Updates with the duration so far, then the final packet (at the
        // time of the last update) three times, 20 ms apart.
        for k in 1..updates {
            let h = self.take_header(self.event_pt, start, k == 1);
            slots.push(vec![(h, body(false, (k * FRAME) as u16))]);
        }
        for j in 0..3 {
            let h = self.take_header(self.event_pt, start, updates == 1 && j == 0);
            slots.push(vec![(h, body(true, duration))]);
        }
        // Audio resumes stamped with the time it stands for.
        let busy = slots.len();
        self.next.timestamp = start.wrapping_add((busy * FRAME) as u32);
        let total = ((press_ms + gap_ms) / 20).max(busy + 1);
        slots.extend(self.silence((total - busy) * 20));
        slots
    }

    /// Keys as telephone-events: each pressed `press_ms`, with `gap_ms`
    /// between presses (and after the last).
    pub fn rfc4733(&mut self, keys: &str, press_ms: usize, gap_ms: usize) -> Vec<Slot> {
        keys.chars()
            .flat_map(|k| self.rfc4733_press(k, press_ms, gap_ms))
            .collect()
    }

    /// Keys as in-band tones in the audio: each `tone_ms`, then `gap_ms` of
    /// silence.
    pub fn inband(&mut self, keys: &str, tone_ms: usize, gap_ms: usize) -> Vec<Slot> {
        let mut slots = Vec::new();
        for k in keys.chars() {
            slots.extend(self.audio(&dtmf_tone(k, tone_ms * 8)));
            slots.extend(self.silence(gap_ms));
        }
        slots
    }
}

/// Sends slots from the recorder's socket, one every 20 ms (the first at
/// once).
pub async fn send_slots(rec: &RtpRecorder, to: SocketAddr, slots: Vec<Slot>) -> io::Result<()> {
    let mut ticker = tokio::time::interval(PACKET_TIME);
    for slot in slots {
        ticker.tick().await;
        for (h, payload) in slot {
            rec.send_rtp(to, &h, &payload).await?;
        }
    }
    Ok(())
}

/// Keys one digit by SIP INFO (`application/dtmf-relay`, 100 ms) and
/// returns the status of the final response.
pub async fn info_key(ua: &mut TestUa, call: &mut Call, key: char) -> UaResult<u16> {
    let tx = ua
        .info(
            call,
            "application/dtmf-relay",
            &format!("Signal={key}\r\nDuration=100\r\n"),
        )
        .await?;
    let r = ua.expect_final_tx(&tx, Duration::from_secs(2)).await?;
    Ok(r.status().unwrap_or(0))
}

// ------------------------------------------------------------- prompts

/// Hold music is a 30 s loop that plays until something stops it: it
/// counts as heard when its first second arrived.
pub const HOLD_MUSIC_MATCH: usize = 8000;

/// One prompt as the server sends it, in one codec.
struct Needle {
    id: PromptId,
    bytes: Vec<u8>,
}

/// A place in a needle it is looked up by: the 4 bytes at `at` (a quarter,
/// half and three quarters into the prompt: speech or tone, never the
/// silence every prompt starts with).
struct Anchor {
    key: u32,
    needle: usize,
    at: usize,
}

/// Every shipped prompt in mu-law and A-law, its anchors sorted by key,
/// with a filter on the keys' first two bytes.
struct Needles {
    needles: Vec<Needle>,
    anchors: Vec<Anchor>,
    filter: Vec<bool>,
}

fn needles() -> &'static Needles {
    static NEEDLES: OnceLock<Needles> = OnceLock::new();
    NEEDLES.get_or_init(|| {
        let mut needles = Vec::new();
        let mut anchors = Vec::new();
        for &id in PromptId::ALL {
            let mut samples = prompt_samples(id);
            if id == PromptId::HoldMusic {
                samples.truncate(HOLD_MUSIC_MATCH);
            }
            for bytes in [g711::encode_ulaw(&samples), g711::encode_alaw(&samples)] {
                if bytes.len() < 16 {
                    continue;
                }
                for nominal in [bytes.len() / 4, bytes.len() / 2, bytes.len() * 3 / 4] {
                    // The loud samples nearest: a key that silence and
                    // quiet audio elsewhere do not share.
                    let loudness = |i: usize| {
                        samples[i..i + 4]
                            .iter()
                            .map(|s| s.unsigned_abs())
                            .min()
                            .unwrap_or(0)
                    };
                    let at = (0..bytes.len() - 4)
                        .filter(|&i| loudness(i) > 1000)
                        .min_by_key(|&i| i.abs_diff(nominal))
                        .unwrap_or_else(|| {
                            (0..bytes.len() - 4)
                                .max_by_key(|&i| loudness(i))
                                .unwrap_or(nominal)
                        });
                    let key = u32::from_be_bytes([
                        bytes[at],
                        bytes[at + 1],
                        bytes[at + 2],
                        bytes[at + 3],
                    ]);
                    anchors.push(Anchor {
                        key,
                        needle: needles.len(),
                        at,
                    });
                }
                needles.push(Needle { id, bytes });
            }
        }
        anchors.sort_by_key(|a| a.key);
        let mut filter = vec![false; 1 << 16];
        for a in &anchors {
            filter[(a.key >> 16) as usize] = true;
        }
        Needles {
            needles,
            anchors,
            filter,
        }
    })
}

/// A prompt found in the received stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeardPrompt {
    /// Byte (= sample) offset of its start in the received G.711 stream.
    pub offset: usize,
    /// Offset just after its end (`offset` + its length, less what the
    /// server skipped).
    pub end: usize,
    /// Samples of it the server skipped (it was late and kept its RTP
    /// clock and the prompt in step with real time instead of sending
    /// them late).
    pub lost: usize,
    /// Arrival of the packet holding its first sample.
    pub at: Instant,
    pub id: PromptId,
}

/// The received G.711 audio: the payloads of the PCMU/PCMA packets in
/// arrival order (loopback keeps the server's send order), cut into
/// segments where the RTP timestamp jumps further than the audio before it
/// (the server skipped packet times).
struct Timeline {
    stream: Vec<u8>,
    /// (offset of the packet's first byte, arrival), per packet.
    packets: Vec<(usize, Instant)>,
    /// Offset where each segment starts (the first is 0).
    segments: Vec<usize>,
    /// Per segment: samples the RTP clock skipped before it.
    gaps: Vec<usize>,
}

impl Timeline {
    fn new(rec: &RtpRecorder) -> Timeline {
        let mut t = Timeline {
            stream: Vec::new(),
            packets: Vec::new(),
            segments: vec![0],
            gaps: vec![0],
        };
        let mut last: Option<(u16, u32, usize)> = None;
        for p in rec.packets() {
            if p.header.payload_type != g711::PT_PCMU && p.header.payload_type != g711::PT_PCMA {
                continue;
            }
            let (seq, ts) = (p.header.sequence, p.header.timestamp);
            if let Some((last_seq, last_ts, last_len)) = last {
                let jump = ts.wrapping_sub(last_ts) as i32 - last_len as i32;
                if seq == last_seq.wrapping_add(1) && jump > 0 && jump <= 8000 {
                    t.segments.push(t.stream.len());
                    t.gaps.push(jump as usize);
                }
            }
            last = Some((seq, ts, p.payload.len()));
            t.packets.push((t.stream.len(), p.arrival));
            t.stream.extend_from_slice(&p.payload);
        }
        t
    }

    /// The segment holding stream offset `pos`.
    fn segment(&self, pos: usize) -> usize {
        self.segments.partition_point(|&s| s <= pos) - 1
    }

    fn segment_end(&self, s: usize) -> usize {
        self.segments
            .get(s + 1)
            .copied()
            .unwrap_or(self.stream.len())
    }

    /// Matches `prompt[..q]` so that it ends at stream offset `p`. At a
    /// segment boundary either nothing of the prompt is missing (the room
    /// only delays a late frame) or exactly what the RTP clock skipped (the
    /// call task drops the prompt audio of the slots it was late for).
    /// Returns the start and the samples missing.
    fn back(
        &self,
        prompt: &[u8],
        q: usize,
        p: usize,
        lost: usize,
        budget: usize,
    ) -> Option<(usize, usize)> {
        if q == 0 {
            return Some((p, lost));
        }
        if p == 0 {
            return None;
        }
        let s = self.segment(p - 1);
        let n = (p - self.segments[s]).min(q);
        // Compared from the end, where the match started, a block at a
        // time: a wrong candidate fails at once.
        let (a, b) = (&self.stream[p - n..p], &prompt[q - n..q]);
        if a.rchunks(64).zip(b.rchunks(64)).any(|(x, y)| x != y) {
            return None;
        }
        let (q, p) = (q - n, p - n);
        if q == 0 {
            return Some((p, lost));
        }
        if s == 0 {
            return None;
        }
        let gap = self.gaps[s];
        self.back(prompt, q, p, lost, budget).or_else(|| {
            if gap >= q {
                // The prompt began in the slots that were skipped.
                return (lost + q <= budget).then_some((p, lost + q));
            }
            if lost + gap > budget {
                return None;
            }
            self.back(prompt, q - gap, p, lost + gap, budget)
        })
    }

    /// Matches `prompt[q..]` from stream offset `p` (see [`Timeline::back`]);
    /// returns the end and the samples missing.
    fn forward(
        &self,
        prompt: &[u8],
        q: usize,
        p: usize,
        lost: usize,
        budget: usize,
    ) -> Option<(usize, usize)> {
        let rest = prompt.len() - q;
        if rest == 0 {
            return Some((p, lost));
        }
        if p >= self.stream.len() {
            return None;
        }
        let s = self.segment(p);
        let n = (self.segment_end(s) - p).min(rest);
        if self.stream[p..p + n] != prompt[q..q + n] {
            return None;
        }
        let (q, p) = (q + n, p + n);
        if q == prompt.len() {
            return Some((p, lost));
        }
        // At the end of segment `s`: the stream so far holds only part of
        // the prompt unless another segment follows.
        let gap = *self.gaps.get(s + 1)?;
        self.forward(prompt, q, p, lost, budget).or_else(|| {
            let rest = prompt.len() - q;
            if gap >= rest {
                // The prompt ended in the slots that were skipped.
                return (lost + rest <= budget).then_some((p, lost + rest));
            }
            if lost + gap > budget {
                return None;
            }
            self.forward(prompt, q + gap, p, lost + gap, budget)
        })
    }
}

/// Every shipped prompt the G.711 audio `rec` received holds (hold music:
/// its first second), in the order heard. Each is looked for as its exact
/// mu-law and A-law bytes, so a prompt that was cut off (barge-in) or mixed
/// with other audio does not count. The one allowance: where the server was
/// late and skipped packet times (the RTP timestamp jumps), the prompt
/// audio of those slots may be missing, up to a quarter of the prompt
/// ([`HeardPrompt::lost`] says how much). Prompts play one after the
/// other, so where matches overlap the earlier one counts (two join beeps,
/// 440+660 Hz twice, hold a leave beep's 660+440 Hz in their middle).
pub fn heard_prompts(rec: &RtpRecorder) -> Vec<HeardPrompt> {
    let t = Timeline::new(rec);
    let needles = needles();
    let mut found: Vec<(usize, usize, usize, PromptId)> = Vec::new();
    for (i, w) in t.stream.windows(4).enumerate() {
        if !needles.filter[usize::from(u16::from_be_bytes([w[0], w[1]]))] {
            continue;
        }
        let key = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        let first = needles.anchors.partition_point(|a| a.key < key);
        for a in needles.anchors[first..].iter().take_while(|a| a.key == key) {
            let needle = &needles.needles[a.needle];
            let budget = needle.bytes.len() / 4;
            let Some((start, lost)) = t.back(&needle.bytes, a.at, i, 0, budget) else {
                continue;
            };
            if let Some((end, lost)) = t.forward(&needle.bytes, a.at, i, lost, budget) {
                found.push((start, end, lost, needle.id));
            }
        }
    }
    found.sort_by_key(|&(start, end, _, id)| (start, id, end));
    found.dedup_by_key(|&mut (start, _, _, id)| (start, id));
    let mut free = 0;
    found.retain(|&(start, end, _, _)| {
        if start < free {
            return false;
        }
        free = end;
        true
    });
    found
        .into_iter()
        .map(|(offset, end, lost, id)| {
            let i = t.packets.partition_point(|(o, _)| *o <= offset) - 1;
            HeardPrompt {
                offset,
                end,
                lost,
                at: t.packets[i].1,
                id,
            }
        })
        .collect()
}

/// The received G.711 stream as [`heard_prompts`] sees it: the payloads of
/// the PCMU/PCMA packets in arrival order (offsets in it are the ones
/// [`HeardPrompt::offset`] gives).
pub fn received_stream(rec: &RtpRecorder) -> Vec<u8> {
    Timeline::new(rec).stream
}

/// [`heard_prompts`] as (byte offset, prompt).
pub fn played_prompts(rec: &RtpRecorder) -> Vec<(usize, PromptId)> {
    heard_prompts(rec)
        .into_iter()
        .map(|h| (h.offset, h.id))
        .collect()
}

/// The prompts heard, in order.
pub fn prompt_ids(rec: &RtpRecorder) -> Vec<PromptId> {
    heard_prompts(rec).into_iter().map(|h| h.id).collect()
}

/// Length in samples of a prompt as matched (hold music: the matched part).
pub fn prompt_len(id: PromptId) -> usize {
    needles()
        .needles
        .iter()
        .find(|n| n.id == id)
        .map_or(0, |n| n.bytes.len())
}

/// Waits until `done` holds for the prompts heard so far (checked every
/// 50 ms); returns them, or `Err` with them at `timeout`.
pub async fn wait_for_prompts(
    rec: &RtpRecorder,
    timeout: Duration,
    done: impl Fn(&[PromptId]) -> bool,
) -> Result<Vec<PromptId>, Vec<PromptId>> {
    let deadline = Instant::now() + timeout;
    loop {
        let ids = prompt_ids(rec);
        if done(&ids) {
            return Ok(ids);
        }
        if Instant::now() >= deadline {
            return Err(ids);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `id` has been heard at least `n` times.
pub async fn wait_for_prompt(
    rec: &RtpRecorder,
    id: PromptId,
    n: usize,
    timeout: Duration,
) -> Result<Vec<PromptId>, Vec<PromptId>> {
    wait_for_prompts(rec, timeout, |ids| {
        ids.iter().filter(|&&p| p == id).count() >= n
    })
    .await
}
