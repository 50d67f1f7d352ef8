//! RTP packets from a caller, handled as a call leg and a room handle them:
//! the RTP header parsed, telephone-events to the RFC 4733 receiver,
//! G.711 audio decoded into the in-band detector and the jitter buffer, and
//! all of it through the per-call DtmfReceiver that merges the methods. A
//! fake clock moves with the packets; timers and 20 ms playout ticks fire
//! on the way.
//!
//! Input: byte 0 picks the DTMF mode (auto, rfc4733, inband, info), byte 1
//! is the negotiated telephone-event payload type; then records of
//! `gap_ms: u16 BE, len: u16 BE, packet[len]` (the last one may be short).
//!
//! Properties checked beyond "no panic":
//! - RFC 4733 presses start and end in turn (each `Ended` closes the press
//!   the last `Started` opened, with the same key), and once the clock has
//!   run past every timeout none is left open;
//! - every digit reported is a DTMF key, in-band digits start at a sample
//!   already seen and in order.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pinbridge::media::dtmf::inband::InbandDetector;
use pinbridge::media::dtmf::rfc4733::{Rfc4733Event, Rfc4733Receiver};
use pinbridge::media::dtmf::{DtmfMode, DtmfReceiver, KEYS};
use pinbridge::media::g711::Codec;
use pinbridge::media::jitter::{JitterBuffer, JitterConfig};
use pinbridge::media::mixer::FRAME;
use rtp_rs::RtpReader;

/// Decoded samples kept per packet (the call leg's limit is smaller).
const MAX_SAMPLES: usize = 2048;
const TICK: Duration = Duration::from_millis(20);
/// Playout ticks run per gap (2 s, longer than the jitter buffer remembers
/// anything); a longer gap skips the rest, as an idle room would.
const MAX_TICKS_PER_GAP: u32 = 100;

fuzz_target!(|data: &[u8]| {
    let [mode, te_pt, ref records @ ..] = *data else {
        return;
    };
    let mode = [
        DtmfMode::Auto,
        DtmfMode::Rfc4733,
        DtmfMode::Inband,
        DtmfMode::Info,
    ][usize::from(mode % 4)];
    let mut leg = Leg::new(mode, te_pt & 0x7f);
    let mut rest = records;
    while rest.len() >= 4 {
        let gap = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let body = &rest[4..];
        let (packet, later) = body.split_at(len.min(body.len()));
        rest = later;
        leg.advance(Duration::from_millis(u64::from(gap)));
        leg.packet(packet);
    }
    leg.advance(Duration::from_secs(10));
    assert_eq!(
        leg.open_press, None,
        "an RFC 4733 press is still open after every timeout passed"
    );
});

struct Leg {
    now: Instant,
    next_tick: Instant,
    te_pt: u8,
    dtmf: DtmfReceiver,
    rfc4733: Rfc4733Receiver,
    inband: InbandDetector,
    jitter: JitterBuffer,
    decoded: Vec<i16>,
    frame: [i16; FRAME],
    open_press: Option<char>,
    last_inband_start: u64,
}

impl Leg {
    fn new(mode: DtmfMode, te_pt: u8) -> Self {
        let now = Instant::now();
        Leg {
            now,
            next_tick: now + TICK,
            te_pt,
            dtmf: DtmfReceiver::new(mode),
            rfc4733: Rfc4733Receiver::new(),
            inband: InbandDetector::new(),
            jitter: JitterBuffer::new(JitterConfig::default()),
            decoded: vec![0; MAX_SAMPLES],
            frame: [0; FRAME],
            open_press: None,
            last_inband_start: 0,
        }
    }

    /// Moves the clock, firing DTMF timeouts and playout ticks due on the
    /// way in time order.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        let mut ticks = 0;
        loop {
            let timeouts = [self.dtmf.poll_timeout(), self.rfc4733.poll_timeout()];
            let timer = timeouts.into_iter().flatten().min();
            let next = match timer {
                Some(t) if t <= self.next_tick => t,
                _ => self.next_tick,
            };
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            if next == self.next_tick {
                ticks += 1;
                if ticks > MAX_TICKS_PER_GAP {
                    self.next_tick = target + TICK;
                } else {
                    self.jitter.pop(self.now, &mut self.frame);
                    self.next_tick += TICK;
                }
            }
            self.dtmf.handle_timeout(self.now);
            self.rfc4733.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    /// What the call leg does with a datagram on its RTP port.
    fn packet(&mut self, packet: &[u8]) {
        let Ok(rtp) = RtpReader::new(packet) else {
            return;
        };
        let pt = rtp.payload_type();
        if (72..=76).contains(&pt) {
            return;
        }
        let (ssrc, seq, ts, marker) = (
            rtp.ssrc(),
            u16::from(rtp.sequence_number()),
            rtp.timestamp(),
            rtp.mark(),
        );
        if pt == self.te_pt {
            self.dtmf
                .on_telephone_event(self.now, ssrc, seq, ts, marker, rtp.payload());
            self.rfc4733
                .handle_packet(self.now, ssrc, seq, ts, marker, rtp.payload());
        } else if let Some(codec) = Codec::from_static_payload_type(pt) {
            let payload = rtp.payload();
            let n = payload.len().min(MAX_SAMPLES);
            codec.decode(&payload[..n], &mut self.decoded[..n]);
            let samples = &self.decoded[..n];
            self.dtmf.on_audio(self.now, samples);
            self.inband.process(samples);
            self.jitter.push(self.now, ssrc, seq, ts, samples);
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(d) = self.dtmf.poll_digit() {
            assert!(KEYS.contains(&d.key), "not a DTMF key: {:?}", d.key);
        }
        while let Some(e) = self.rfc4733.poll_event() {
            match e {
                Rfc4733Event::Started { key, .. } => {
                    assert!(KEYS.contains(&key), "not a DTMF key: {key:?}");
                    assert_eq!(
                        self.open_press, None,
                        "a press started before the previous one ended"
                    );
                    self.open_press = Some(key);
                }
                Rfc4733Event::Ended { key, .. } => {
                    assert_eq!(
                        self.open_press,
                        Some(key),
                        "a press ended that had not started"
                    );
                    self.open_press = None;
                }
            }
        }
        while let Some(d) = self.inband.poll_digit() {
            assert!(KEYS.contains(&d.key), "not a DTMF key: {:?}", d.key);
            assert!(
                d.start_sample <= self.inband.samples_seen(),
                "an in-band digit starts after the last sample seen"
            );
            assert!(
                d.start_sample >= self.last_inband_start,
                "in-band digits out of order"
            );
            self.last_inband_start = d.start_sample;
        }
    }
}
