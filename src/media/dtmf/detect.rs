//! `pinbridge detect-dtmf FILE`: the digits in a packet capture or a WAV
//! file, found by the same cores the calls use.
//!
//! For a capture: UDP datagrams ([`crate::media::pcap`]) -> RTP packets
//! ([`super::capture`]) -> streams by (source, destination, SSRC). Per
//! stream the telephone-event payload type is the one given, else the one
//! the capture's SDP names (if the stream uses it), else the one inferred
//! from the payloads. Telephone-events go to one [`Rfc4733Receiver`] per
//! direction (source, destination), in capture order, with capture times
//! mapped onto a synthetic [`Instant`] clock whose timers are run as the
//! capture time advances. PCMU/PCMA payloads go, decoded and in RTP
//! timestamp order with lost packets filled by silence, to one
//! [`InbandDetector`] per stream.
//!
//! As in a call in `auto` mode, in-band detection on a direction stops
//! counting once that direction sends telephone-events (from 200 ms before
//! the first one), so a key sent both ways is reported once.
//!
//! `start_ms` is relative to the first RTP packet of the capture (of the
//! file, for WAV input).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::capture::{
    infer_event_payload_type, rtp_packets, sdp_event_payload_types, RtpPacketInfo,
};
use super::inband::InbandDetector;
use super::rfc4733::{Rfc4733Event, Rfc4733Receiver};
use super::DtmfMethod;
use crate::media::g711::Codec;
use crate::media::pcap::read_capture;
use crate::media::prompt::Prompt;

/// One digit found in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectedDigit {
    /// Start of the key press, in ms from the first RTP packet of the
    /// capture (from the start of a WAV file).
    pub start_ms: u64,
    pub key: char,
    pub method: DtmfMethod,
}

impl fmt::Display for DetectedDigit {
    /// The `detect-dtmf` output line: `<start_ms> <digit> <method>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.start_ms, self.key, self.method.as_str())
    }
}

/// Digits and the diagnostics that go with them (for stderr).
#[derive(Clone, Debug, Default)]
pub struct Detection {
    /// Sorted by `start_ms`.
    pub digits: Vec<DetectedDigit>,
    pub notes: Vec<String>,
}

/// The digits in a pcap/pcapng capture. `event_pt` forces the
/// telephone-event payload type; `None` takes it from the SDP or infers it.
pub fn detect_capture(
    file_bytes: &[u8],
    event_pt: Option<u8>,
) -> Result<Vec<DetectedDigit>, String> {
    analyse_capture(file_bytes, event_pt).map(|d| d.digits)
}

/// The digits in a WAV file (any PCM rate and channel count; converted to
/// 8 kHz mono), all in-band.
pub fn detect_wav(file_bytes: &[u8]) -> Result<Vec<DetectedDigit>, String> {
    analyse_wav(file_bytes).map(|d| d.digits)
}

/// A WAV file (by its `RIFF` header) or a capture, with diagnostics: what
/// `detect-dtmf` runs.
pub fn analyse_file(file_bytes: &[u8], event_pt: Option<u8>) -> Result<Detection, String> {
    if file_bytes.starts_with(b"RIFF") {
        analyse_wav(file_bytes)
    } else {
        analyse_capture(file_bytes, event_pt)
    }
}

/// [`detect_wav`] with diagnostics.
pub fn analyse_wav(file_bytes: &[u8]) -> Result<Detection, String> {
    let prompt = Prompt::from_wav_bytes("WAV", file_bytes).map_err(|e| e.to_string())?;
    let samples = prompt.samples();
    let mut det = InbandDetector::new();
    let mut found = Vec::new();
    for chunk in samples.chunks(FRAME) {
        det.process(chunk);
        drain_inband(&mut det, &mut found);
    }
    feed_silence(&mut det, FLUSH_SAMPLES, &mut found);
    let digits = found
        .into_iter()
        .map(|(sample, key)| DetectedDigit {
            start_ms: sample * 1000 / RATE,
            key,
            method: DtmfMethod::Inband,
        })
        .collect();
    Ok(Detection {
        digits,
        notes: vec![format!(
            "WAV: {} ms of audio at 8 kHz after conversion",
            samples.len() as u64 * 1000 / RATE
        )],
    })
}

/// [`detect_capture`] with diagnostics.
pub fn analyse_capture(file_bytes: &[u8], event_pt: Option<u8>) -> Result<Detection, String> {
    let capture = read_capture(file_bytes).map_err(|e| e.to_string())?;
    let mut notes = vec![format!("capture: {}", capture.stats)];
    let packets = rtp_packets(&capture.datagrams);
    let Some(origin) = packets.iter().map(|p| p.time).min() else {
        notes.push("no RTP packets in the capture".into());
        return Ok(Detection {
            digits: Vec::new(),
            notes,
        });
    };
    let sdp_pts = sdp_event_payload_types(&capture.datagrams);
    let streams = split_streams(&packets);

    // Per stream: its telephone-event payload type.
    let mut event_pts: HashMap<StreamKey, u8> = HashMap::new();
    for s in &streams {
        let own: Vec<RtpPacketInfo> = s.packets.iter().map(|&i| packets[i]).collect();
        let (pt, how) = match event_pt {
            Some(pt) => (Some(pt), "given"),
            None => match sdp_pts
                .iter()
                .find(|&&pt| own.iter().any(|p| p.payload_type == pt))
            {
                Some(&pt) => (Some(pt), "from the SDP"),
                None => (infer_event_payload_type(&own), "inferred"),
            },
        };
        notes.push(describe_stream(s, &own, pt, how));
        if let Some(pt) = pt {
            event_pts.insert(s.key, pt);
        }
    }

    let events = rfc4733_digits(&packets, &event_pts, origin);
    let first_event_on_leg = first_start_per_leg(&events);
    let mut digits: Vec<DetectedDigit> = events.into_iter().map(|(d, _)| d).collect();
    let mut dropped = 0usize;
    for s in &streams {
        for d in inband_digits(&packets, s, origin) {
            let suppressed = first_event_on_leg
                .get(&(s.key.src, s.key.dst))
                .is_some_and(|&first| d.start_ms.saturating_add(AUTO_MARGIN_MS) >= first);
            if suppressed {
                dropped += 1;
            } else {
                digits.push(d);
            }
        }
    }
    if dropped > 0 {
        notes.push(format!(
            "{dropped} in-band digit(s) not reported: their direction sends RFC 4733 events"
        ));
    }
    // Stable: at equal times RFC 4733 (pushed first) stays first.
    digits.sort_by_key(|d| d.start_ms);
    Ok(Detection { digits, notes })
}

/// Audio sample rate of G.711 and of telephone-event/8000.
const RATE: u64 = 8000;
/// One RTP sample at 8 kHz.
const SAMPLE: Duration = Duration::from_micros(125);
/// Decoding/feeding granularity (20 ms).
const FRAME: usize = 160;
/// Silence fed after the end of a stream, so a tone still on is finished.
const FLUSH_SAMPLES: u64 = 1600;
/// Gaps in the timestamps up to this long are filled with silence; a
/// longer jump starts a new segment with its own time anchor.
const MAX_FILL_SAMPLES: i64 = 2 * 8000;
/// Silence fed between two segments.
const SEGMENT_BREAK_SAMPLES: u64 = 4000;
/// In-band digits this close before a direction's first RFC 4733 event
/// (or any time after it) are the same presses: not reported.
const AUTO_MARGIN_MS: u64 = 200;
/// How far the synthetic clock starts after `Instant::now()`, so that a
/// receiver may date a start before the first packet without underflow.
const CLOCK_LEAD: Duration = Duration::from_secs(60);
/// After the last packet, timers run this long (closes events whose end
/// packets were lost).
const DRAIN_AFTER_END: Duration = Duration::from_secs(30);
/// The longest capture the RFC 4733 clock represents (ten years); later
/// packets are all taken to be at its end.
const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 86_400);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct StreamKey {
    src: SocketAddr,
    dst: SocketAddr,
    ssrc: u32,
}

/// One direction of a call: (source, destination).
type Leg = (SocketAddr, SocketAddr);

struct Stream {
    key: StreamKey,
    /// Indices into the packet list, in capture order.
    packets: Vec<usize>,
}

fn split_streams(packets: &[RtpPacketInfo]) -> Vec<Stream> {
    let mut index: HashMap<StreamKey, usize> = HashMap::new();
    let mut streams: Vec<Stream> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let key = StreamKey {
            src: p.src,
            dst: p.dst,
            ssrc: p.ssrc,
        };
        let n = *index.entry(key).or_insert_with(|| {
            streams.push(Stream {
                key,
                packets: Vec::new(),
            });
            streams.len() - 1
        });
        streams[n].packets.push(i);
    }
    streams
}

fn describe_stream(s: &Stream, own: &[RtpPacketInfo], pt: Option<u8>, how: &str) -> String {
    let count = |want: u8| own.iter().filter(|p| p.payload_type == want).count();
    let mut text = format!(
        "stream {} -> {} SSRC {:#010x}: {} packets",
        s.key.src,
        s.key.dst,
        s.key.ssrc,
        own.len()
    );
    for (pt, name) in [(0, "PCMU"), (8, "PCMA")] {
        let n = count(pt);
        if n > 0 {
            text.push_str(&format!(", {n} {name}"));
        }
    }
    match pt {
        Some(pt) => text.push_str(&format!(
            ", {} telephone-event at PT {pt} ({how})",
            count(pt)
        )),
        None => text.push_str(", no telephone-events"),
    }
    text
}

/// Runs one RFC 4733 receiver per direction over the capture; the digits
/// come with their direction.
fn rfc4733_digits(
    packets: &[RtpPacketInfo],
    event_pts: &HashMap<StreamKey, u8>,
    origin: Duration,
) -> Vec<(DetectedDigit, Leg)> {
    let base = Instant::now() + CLOCK_LEAD;
    // Offsets are capped so that no capture time, however absurd, can
    // overflow the clock.
    let at = |t: Duration| base + t.saturating_sub(origin).min(MAX_SPAN);
    let mut legs: Vec<(Leg, Rfc4733Receiver)> = Vec::new();
    let mut digits = Vec::new();
    let mut now = base;
    for p in packets {
        let key = StreamKey {
            src: p.src,
            dst: p.dst,
            ssrc: p.ssrc,
        };
        if event_pts.get(&key) != Some(&p.payload_type) {
            continue;
        }
        // Captures merged from several interfaces may step back in time;
        // the receivers' clock never does.
        now = now.max(at(p.time));
        for (_, rx) in legs.iter_mut() {
            run_timers(rx, now);
        }
        let leg = (p.src, p.dst);
        let n = match legs.iter().position(|(l, _)| *l == leg) {
            Some(n) => n,
            None => {
                legs.push((leg, Rfc4733Receiver::new()));
                legs.len() - 1
            }
        };
        let rx = &mut legs[n].1;
        rx.handle_packet(now, p.ssrc, p.sequence, p.timestamp, p.marker, p.payload);
        for (leg, rx) in legs.iter_mut() {
            drain_rfc4733(rx, base, *leg, &mut digits);
        }
    }
    let end = now + DRAIN_AFTER_END;
    for (leg, rx) in legs.iter_mut() {
        run_timers(rx, end);
        drain_rfc4733(rx, base, *leg, &mut digits);
    }
    digits
}

/// Fires every timer of `rx` due at or before `now`, each at its own
/// deadline.
fn run_timers(rx: &mut Rfc4733Receiver, now: Instant) {
    // A receiver that keeps asking for the same past deadline would loop
    // forever; a bounded number of rounds is plenty for real timers.
    for _ in 0..1000 {
        match rx.poll_timeout() {
            Some(deadline) if deadline <= now => {
                rx.handle_timeout(deadline);
                if rx.poll_timeout() == Some(deadline) {
                    rx.handle_timeout(now);
                    break;
                }
            }
            _ => break,
        }
    }
}

fn drain_rfc4733(
    rx: &mut Rfc4733Receiver,
    base: Instant,
    leg: Leg,
    out: &mut Vec<(DetectedDigit, Leg)>,
) {
    while let Some(ev) = rx.poll_event() {
        if let Rfc4733Event::Started { key, at, .. } = ev {
            out.push((
                DetectedDigit {
                    start_ms: millis(at.saturating_duration_since(base)),
                    key,
                    method: DtmfMethod::Rfc4733,
                },
                leg,
            ));
        }
    }
}

/// The earliest RFC 4733 start per direction.
fn first_start_per_leg(digits: &[(DetectedDigit, Leg)]) -> HashMap<Leg, u64> {
    let mut first: HashMap<Leg, u64> = HashMap::new();
    for (d, leg) in digits {
        let e = first.entry(*leg).or_insert(d.start_ms);
        *e = (*e).min(d.start_ms);
    }
    first
}

/// Decodes a stream's G.711 packets in timestamp order and runs the
/// in-band detector over them.
fn inband_digits(packets: &[RtpPacketInfo], s: &Stream, origin: Duration) -> Vec<DetectedDigit> {
    // (extended timestamp, capture time, codec, payload)
    let mut audio: Vec<(i64, Duration, Codec, &[u8])> = Vec::new();
    let mut last: Option<(u32, i64)> = None;
    for &i in &s.packets {
        let p = &packets[i];
        let Some(codec) = Codec::from_static_payload_type(p.payload_type) else {
            continue;
        };
        // Unwrap the 32-bit timestamp against the previous packet, so that
        // wrap-around and reordering keep their order.
        let ext = match last {
            None => i64::from(p.timestamp),
            Some((ts, ext)) => ext + i64::from(p.timestamp.wrapping_sub(ts) as i32),
        };
        last = Some((p.timestamp, ext));
        audio.push((ext, p.time, codec, p.payload));
    }
    if audio.is_empty() {
        return Vec::new();
    }
    audio.sort_by_key(|a| a.0);
    audio.dedup_by_key(|a| a.0);

    let mut det = InbandDetector::new();
    let mut found: Vec<(u64, char)> = Vec::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut fed: u64 = 0;
    let mut expected: Option<i64> = None;
    let mut pcm = [0i16; FRAME];
    for &(ext, time, codec, payload) in &audio {
        let mut payload = payload;
        match expected {
            None => segments.push(Segment::new(fed, ext, time)),
            Some(next) => {
                let gap = ext - next;
                if gap > MAX_FILL_SAMPLES {
                    fed += feed_silence(&mut det, SEGMENT_BREAK_SAMPLES, &mut found);
                    segments.push(Segment::new(fed, ext, time));
                } else if gap > 0 {
                    fed += feed_silence(&mut det, gap as u64, &mut found);
                } else if gap < 0 {
                    // Overlaps what was already fed: keep only the new tail.
                    let overlap = usize::try_from(-gap).unwrap_or(usize::MAX);
                    payload = payload.get(overlap..).unwrap_or(&[]);
                }
            }
        }
        if let Some(seg) = segments.last_mut() {
            seg.observe(ext, time);
        }
        for chunk in payload.chunks(FRAME) {
            let out = &mut pcm[..chunk.len()];
            codec.decode(chunk, out);
            det.process(out);
            drain_inband(&mut det, &mut found);
        }
        fed += payload.len() as u64;
        let end = ext + i64::try_from(payload.len()).unwrap_or(0);
        expected = Some(expected.map_or(end, |e| e.max(end)));
    }
    feed_silence(&mut det, FLUSH_SAMPLES, &mut found);

    found
        .into_iter()
        .map(|(sample, key)| {
            let seg = segments
                .iter()
                .rev()
                .find(|g| g.start_sample <= sample)
                .or(segments.first());
            let time = seg.map_or(origin, |g| g.time_of(sample));
            DetectedDigit {
                start_ms: millis(time.saturating_sub(origin)),
                key,
                method: DtmfMethod::Inband,
            }
        })
        .collect()
}

/// A stretch of a stream without a long timestamp jump: detector sample
/// `start_sample` is RTP timestamp `start_ext`, which was sent at `anchor`.
struct Segment {
    start_sample: u64,
    start_ext: i64,
    /// The earliest send time the packets imply for `start_ext` (the packet
    /// delayed least by jitter gives the best estimate).
    anchor: Duration,
}

impl Segment {
    fn new(start_sample: u64, start_ext: i64, time: Duration) -> Segment {
        Segment {
            start_sample,
            start_ext,
            anchor: time,
        }
    }

    fn observe(&mut self, ext: i64, time: Duration) {
        let offset = u64::try_from(ext - self.start_ext).unwrap_or(0);
        let implied = time.saturating_sub(samples_to_duration(offset));
        self.anchor = self.anchor.min(implied);
    }

    fn time_of(&self, sample: u64) -> Duration {
        self.anchor.saturating_add(samples_to_duration(
            sample.saturating_sub(self.start_sample),
        ))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn samples_to_duration(n: u64) -> Duration {
    SAMPLE.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Feeds `n` samples of silence; returns `n`.
fn feed_silence(det: &mut InbandDetector, n: u64, found: &mut Vec<(u64, char)>) -> u64 {
    const ZEROS: [i16; FRAME] = [0; FRAME];
    let mut left = n;
    while left > 0 {
        let k = left.min(FRAME as u64) as usize;
        det.process(&ZEROS[..k]);
        drain_inband(det, found);
        left -= k as u64;
    }
    n
}

fn drain_inband(det: &mut InbandDetector, found: &mut Vec<(u64, char)>) {
    while let Some(d) = det.poll_digit() {
        found.push((d.start_sample, d.key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pcap::build::{classic, ethernet, ipv4_udp};
    use crate::testing::TestRng;

    const CALLER: [u8; 4] = [10, 0, 0, 1];
    const IVR: [u8; 4] = [10, 0, 0, 2];

    /// One RTP packet to the IVR at `ms` after a base time.
    struct Pkt {
        ms: u32,
        pt: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        payload: Vec<u8>,
    }

    fn capture(pkts: &[Pkt], extra_first: Option<&[u8]>) -> Vec<u8> {
        let mut frames: Vec<(u32, u32, Vec<u8>)> = Vec::new();
        if let Some(sip) = extra_first {
            frames.push((
                1000,
                0,
                ethernet(&[], 0x0800, &ipv4_udp(CALLER, 5060, IVR, 5060, sip)),
            ));
        }
        for p in pkts {
            let mut rtp = vec![0x80, p.pt | if p.marker { 0x80 } else { 0 }];
            rtp.extend_from_slice(&p.seq.to_be_bytes());
            rtp.extend_from_slice(&p.ts.to_be_bytes());
            rtp.extend_from_slice(&0x5EED_0001u32.to_be_bytes());
            rtp.extend_from_slice(&p.payload);
            let frame = ethernet(&[], 0x0800, &ipv4_udp(CALLER, 4000, IVR, 5004, &rtp));
            let t = 5_000 + p.ms; // ms after 1000 s: SIP first, RTP 5 s later
            frames.push((1000 + t / 1000, (t % 1000) * 1000, frame));
        }
        let recs: Vec<(u32, u32, u32, &[u8])> = frames
            .iter()
            .map(|(s, us, f)| (*s, *us, 9999, &f[..]))
            .collect();
        classic(false, false, 1, &recs)
    }

    /// 8 kHz samples: the DTMF pair of `key` at -10 dBm0 per tone for
    /// `[on, off)` ms, silence elsewhere, `total` ms in all.
    fn tone(key: char, on: u32, off: u32, total: u32) -> Vec<i16> {
        let (lo, hi) = match key {
            '5' => (770.0, 1336.0),
            '7' => (852.0, 1209.0),
            _ => unreachable!(),
        };
        let amp = 32767.0 * 10f64.powf((-10.0 - 3.17) / 20.0);
        (0..total * 8)
            .map(|n| {
                if n < on * 8 || n >= off * 8 {
                    return 0;
                }
                let t = f64::from(n) / 8000.0;
                let v = amp
                    * ((2.0 * std::f64::consts::PI * lo * t).sin()
                        + (2.0 * std::f64::consts::PI * hi * t).sin());
                v.round() as i16
            })
            .collect()
    }

    /// PCMU packets of `pcm`, 20 ms each, from sequence 100 / timestamp 8000.
    fn pcmu(pcm: &[i16]) -> Vec<Pkt> {
        pcm.chunks(160)
            .enumerate()
            .map(|(i, c)| {
                let mut payload = vec![0u8; c.len()];
                Codec::Pcmu.encode(c, &mut payload);
                Pkt {
                    ms: i as u32 * 20,
                    pt: 0,
                    marker: i == 0,
                    seq: 100 + i as u16,
                    ts: 8000 + i as u32 * 160,
                    payload,
                }
            })
            .collect()
    }

    /// One RFC 4733 event as senders usually send it (marker, updates
    /// every 20 ms, three end packets), starting at `ms` / RTP `ts`.
    fn event(key_code: u8, pt: u8, ms: u32, ts: u32, seq: u16) -> Vec<Pkt> {
        (0..8u16)
            .map(|k| {
                let end = k >= 5;
                let dur = 160 * (k.min(4) + 1);
                Pkt {
                    ms: ms + 20 * u32::from(k),
                    pt,
                    marker: k == 0,
                    seq: seq + k,
                    ts,
                    payload: vec![
                        key_code,
                        if end { 0x8A } else { 0x0A },
                        (dur >> 8) as u8,
                        dur as u8,
                    ],
                }
            })
            .collect()
    }

    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= 30
    }

    #[test]
    fn output_line_format() {
        let d = DetectedDigit {
            start_ms: 1234,
            key: '#',
            method: DtmfMethod::Rfc4733,
        };
        assert_eq!(d.to_string(), "1234 # rfc4733");
    }

    #[test]
    fn unreadable_input_names_the_problem() {
        let e = detect_capture(b"hello world", None).unwrap_err();
        assert!(e.contains("not a pcap or pcapng file"), "{e}");
        let e = detect_wav(b"RIFF\x04\0\0\0WAVE").unwrap_err();
        assert!(!e.is_empty());
        let e = analyse_file(b"", None).unwrap_err();
        assert_eq!(e, "empty file");
    }

    #[test]
    fn segment_time_mapping_prefers_the_least_delayed_packet() {
        let mut s = Segment::new(100, 1000, Duration::from_millis(50));
        s.observe(1160, Duration::from_millis(68)); // 20 ms later in RTP, 18 ms on the wire
        assert_eq!(s.anchor, Duration::from_millis(48));
        assert_eq!(s.time_of(100 + 800), Duration::from_millis(148));
        assert_eq!(s.time_of(0), Duration::from_millis(48));
    }

    #[test]
    fn rfc4733_start_times_count_from_the_first_rtp_packet() {
        // Silence from 0 ms, "5" at 300 ms and "7" at 700 ms (PT 101); a SIP
        // datagram 5 s before the RTP does not move the origin.
        let mut pkts = pcmu(&[0; 8000]);
        pkts.extend(event(5, 101, 300, 8000 + 2400, 200));
        pkts.extend(event(7, 101, 700, 8000 + 5600, 300));
        pkts.sort_by_key(|p| p.ms);
        let file = capture(&pkts, Some(b"OPTIONS sip:x SIP/2.0\r\n\r\n"));
        let d = detect_capture(&file, None).unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!((d[0].key, d[0].method), ('5', DtmfMethod::Rfc4733));
        assert_eq!((d[1].key, d[1].method), ('7', DtmfMethod::Rfc4733));
        assert!(
            near(d[0].start_ms, 300) && near(d[1].start_ms, 700),
            "{d:?}"
        );
        // The payload type given wins over inference: nothing at PT 96.
        assert!(detect_capture(&file, Some(96)).unwrap().is_empty());
    }

    #[test]
    fn inband_times_survive_lost_and_reordered_packets() {
        let mut pkts = pcmu(&tone('7', 400, 500, 1000));
        // Lose two packets before the tone, swap two in the middle of it.
        pkts.retain(|p| p.ms != 200 && p.ms != 220);
        let i = pkts.iter().position(|p| p.ms == 420).unwrap();
        let (a, b) = (pkts[i].ms, pkts[i + 1].ms);
        pkts.swap(i, i + 1);
        pkts[i].ms = a;
        pkts[i + 1].ms = b;
        let file = capture(&pkts, None);
        let d = detect_capture(&file, None).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].key, d[0].method), ('7', DtmfMethod::Inband));
        assert!(near(d[0].start_ms, 400), "{d:?}");
    }

    #[test]
    fn a_key_sent_in_band_and_as_an_event_is_reported_once() {
        // The phone leaves the tone in the audio and also sends the event.
        let mut pkts = pcmu(&tone('5', 300, 420, 1000));
        pkts.extend(event(5, 101, 300, 8000 + 2400, 500));
        pkts.sort_by_key(|p| p.ms);
        let d = detect_capture(&capture(&pkts, None), None).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].key, d[0].method), ('5', DtmfMethod::Rfc4733));
    }

    #[test]
    fn wav_digits_are_timed_from_the_start_of_the_file() {
        let pcm = tone('5', 250, 350, 600);
        let mut wav = Vec::new();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        {
            let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
            for s in pcm {
                w.write_sample(s).unwrap();
            }
            w.finalize().unwrap();
        }
        let d = analyse_file(&wav, None).unwrap().digits;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].key, d[0].method), ('5', DtmfMethod::Inband));
        assert!(near(d[0].start_ms, 250), "{d:?}");
    }

    #[test]
    fn a_capture_without_rtp_gives_no_digits_and_says_why() {
        let file = capture(&[], Some(b"OPTIONS sip:x SIP/2.0\r\n\r\n"));
        let r = analyse_capture(&file, None).unwrap();
        assert!(r.digits.is_empty());
        assert!(
            r.notes.iter().any(|n| n == "no RTP packets in the capture"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn a_long_timestamp_jump_starts_a_new_time_anchor() {
        // "5" at 100 ms; then the sender's timestamps jump by 10 s while
        // only 1 s passes on the wire; "7" 100 ms into the second part.
        let mut first = pcmu(&tone('5', 100, 200, 400));
        let mut second = pcmu(&tone('7', 100, 200, 400));
        for p in &mut second {
            p.ms += 1400;
            p.ts += 80_000;
            p.seq += 20;
        }
        first.append(&mut second);
        let d = detect_capture(&capture(&first, None), None).unwrap();
        let keys: String = d.iter().map(|d| d.key).collect();
        assert_eq!(keys, "57", "{d:?}");
        assert!(
            near(d[0].start_ms, 100) && near(d[1].start_ms, 1500),
            "{d:?}"
        );
    }

    #[test]
    fn mangled_captures_never_panic() {
        let mut pkts = pcmu(&tone('5', 100, 200, 600));
        pkts.extend(event(5, 101, 300, 8000 + 2400, 500));
        pkts.extend(event(11, 101, 400, 8000 + 3200, 600));
        let file = capture(
            &pkts,
            Some(b"INVITE sip:x SIP/2.0\r\n\r\na=rtpmap:101 telephone-event/8000\r\n"),
        );
        let mut rng = TestRng::new(0x2545_F491_4F6C_DD1D);
        for round in 0..300 {
            let mut f = file.clone();
            for _ in 0..(rng.below(12) + 1) {
                let i = 24 + rng.index(f.len() - 24);
                f[i] = rng.byte();
            }
            let pt = (round % 3 == 0).then_some(101);
            let _ = detect_capture(&f, pt);
            let cut = rng.index(f.len());
            let _ = detect_capture(&f[..cut], pt);
        }
        // Capture times at the extremes of what pcapng can hold.
        let mut ng = crate::media::pcap::build::Ng::new(false);
        ng.idb(1, Some(0), Some(i64::MAX));
        let frame = |p: &Pkt| {
            let mut rtp = vec![0x80, p.pt, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
            rtp.extend_from_slice(&p.payload);
            ethernet(&[], 0x0800, &ipv4_udp(CALLER, 4000, IVR, 5004, &rtp))
        };
        ng.epb(0, 0, 9999, &frame(&pkts[0]));
        ng.epb(0, u64::MAX, 9999, &frame(&pkts[40]));
        let _ = analyse_capture(&ng.out, None).unwrap();
    }
}
