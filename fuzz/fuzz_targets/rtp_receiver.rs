//! Datagrams arriving on a call leg's RTP port, through the receiver core
//! (`RtpReceiver`): classification, the symmetric-RTP latch and the RFC
//! 3550 statistics, with a fake clock moving by arbitrary steps and
//! renegotiations on the way.
//!
//! Input: byte 0 is the negotiated codec's payload type (bit 7: PCMA
//! rather than PCMU), byte 1 the telephone-event payload type (bit 7: none
//! negotiated); then records of `gap: u16 BE, source: u8, len: u16 BE,
//! packet[len]` (the last one may be short). `gap` is microseconds, or
//! milliseconds when its top bit is set. `source`: bits 0–1 pick the
//! sender's address; bit 7 renegotiates first, with the SDP address picked
//! by bits 2–3, or none if bit 6 is set; bit 5 takes a loss interval after
//! the packet.
//!
//! Properties checked beyond "no panic":
//! - the verdict and the latch are exactly what the leg decided before the
//!   core existed, with strict RTP added (a reference written here over
//!   rtp-rs);
//! - each datagram is counted once, in one kind;
//! - a payload is part of the datagram, after the 12-byte header;
//! - the statistics are consistent: received never exceeds the RTP packets
//!   fed, expected and received never fall, lost = expected - received,
//!   duplicates and late packets are among those received, and the loss
//!   fractions (whole call and intervals) are what A.3 computes and never
//!   need clamping to fit a byte.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pinbridge::media::g711::Codec;
use pinbridge::media::rtp::{
    Datagram, Ignored, LossInterval, ReceiveParams, RtpReceiver, StreamStats,
};
use rtp_rs::RtpReader;

fuzz_target!(|data: &[u8]| {
    let [codec, te, ref records @ ..] = *data else {
        return;
    };
    let sources: [SocketAddr; 4] = [
        SocketAddr::from(([192, 0, 2, 10], 40000)),
        SocketAddr::from(([198, 51, 100, 7], 61000)),
        SocketAddr::from(([203, 0, 113, 9], 5004)),
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 40000)),
    ];
    let mut params = ReceiveParams {
        codec: if codec & 0x80 != 0 {
            Codec::Pcma
        } else {
            Codec::Pcmu
        },
        codec_pt: codec & 0x7f,
        telephone_event_pt: (te & 0x80 == 0).then_some(te),
        remote_rtp: Some(sources[0]),
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut receiver = RtpReceiver::new(t0);
    let mut reference = Reference {
        params: None,
        latched: None,
    };
    // Nothing is negotiated until a record asks for it: media may come
    // first.
    let mut rtp_fed = 0u64;
    let mut before = receiver.stats();
    let mut rest = records;
    while rest.len() >= 5 {
        let gap = u16::from_be_bytes([rest[0], rest[1]]);
        let source = rest[2];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let body = &rest[5..];
        let (packet, later) = body.split_at(len.min(body.len()));
        rest = later;

        now += if gap & 0x8000 != 0 {
            Duration::from_millis(u64::from(gap & 0x7fff))
        } else {
            Duration::from_micros(u64::from(gap))
        };
        if source & 0x80 != 0 {
            params.remote_rtp =
                (source & 0x40 == 0).then_some(sources[usize::from((source >> 2) & 3)]);
            let released = receiver.negotiate(params);
            assert_eq!(released, reference.negotiate(params));
        }
        let from = sources[usize::from(source & 3)];

        let verdict = receiver.handle_datagram(packet, from, now);
        let expected = reference.decide(packet, from);
        let got = match verdict {
            Datagram::Audio {
                codec, packet: p, ..
            } => Decision::Audio(codec, p.ssrc, p.sequence, p.timestamp, p.payload),
            Datagram::TelephoneEvent { packet: p, .. } => {
                Decision::Event(p.ssrc, p.sequence, p.timestamp, p.marker, p.payload)
            }
            Datagram::Rtcp | Datagram::Ignored(_) => Decision::Ignored,
        };
        assert_eq!(got, expected, "the leg decided otherwise");
        assert_eq!(receiver.latched(), reference.latched, "latched elsewhere");
        if let Decision::Audio(.., payload) | Decision::Event(.., payload) = got {
            let range = packet.as_ptr_range();
            assert!(
                payload.len() + 12 <= packet.len(),
                "payload longer than the packet"
            );
            assert!(
                range.contains(&payload.as_ptr()) || payload.is_empty(),
                "payload outside the datagram"
            );
        }

        let after = receiver.stats();
        assert_eq!(
            after.arrivals.datagrams(),
            before.arrivals.datagrams() + 1,
            "a datagram not counted exactly once"
        );
        if RtpReader::new(packet).is_ok()
            && !matches!(
                verdict,
                Datagram::Rtcp | Datagram::Ignored(Ignored::OtherSource)
            )
            && reference.params.is_some()
        {
            rtp_fed += 1;
        }
        check_stream(&before.stream, &after.stream, rtp_fed);
        before = after;

        if source & 0x20 != 0 {
            check_interval(receiver.take_loss_interval());
        }
    }
});

fn check_stream(before: &StreamStats, after: &StreamStats, rtp_fed: u64) {
    assert!(
        after.received <= rtp_fed,
        "more received than RTP packets fed"
    );
    assert!(after.received >= before.received, "received fell");
    assert!(after.expected >= before.expected, "expected fell");
    assert_eq!(
        i128::from(after.lost),
        i128::from(after.expected) - i128::from(after.received)
    );
    assert!(after.duplicates + after.late <= after.received);
    assert_eq!(
        after.fraction_lost,
        fraction(after.expected, after.received)
    );
    assert!(after.ssrc_changes as u64 <= rtp_fed / 2);
    assert!(after.ssrc.is_some() || after.received == 0);
}

fn check_interval(interval: LossInterval) {
    assert_eq!(
        i128::from(interval.lost),
        i128::from(interval.expected) - i128::from(interval.received)
    );
    assert_eq!(
        interval.fraction_lost,
        fraction(interval.expected, interval.received)
    );
}

/// A.3's fraction, asserting that it fits a byte without clamping: every
/// packet that moves the expected count on is itself received, so not all
/// of an interval can be lost.
fn fraction(expected: u64, received: u64) -> u8 {
    if expected == 0 || received >= expected {
        return 0;
    }
    let f = (u128::from(expected - received) << 8) / u128::from(expected);
    assert!(f < 256, "fraction {f}/256: every expected packet lost");
    f as u8
}

#[derive(Debug, PartialEq, Eq)]
enum Decision<'a> {
    Ignored,
    Event(u32, u16, u32, bool, &'a [u8]),
    Audio(Codec, u32, u16, u32, &'a [u8]),
}

/// What the call leg decided before the receiver core existed.
struct Reference {
    params: Option<ReceiveParams>,
    latched: Option<SocketAddr>,
}

impl Reference {
    fn negotiate(&mut self, p: ReceiveParams) -> bool {
        let changed = self.params.is_none_or(|n| n.remote_rtp != p.remote_rtp);
        if changed {
            self.latched = None;
        }
        self.params = Some(p);
        changed
    }

    fn decide<'a>(&mut self, buf: &'a [u8], from: SocketAddr) -> Decision<'a> {
        let Some(n) = &self.params else {
            return Decision::Ignored;
        };
        let Ok(rtp) = RtpReader::new(buf) else {
            return Decision::Ignored;
        };
        let pt = rtp.payload_type();
        if (72..=76).contains(&pt) {
            return Decision::Ignored;
        }
        let codec = if pt == n.codec_pt {
            Some(n.codec)
        } else {
            Codec::from_static_payload_type(pt)
        };
        let is_event = Some(pt) == n.telephone_event_pt;
        if codec.is_none() && !is_event {
            return Decision::Ignored;
        }
        // Strict RTP: after the latch only its source and the SDP's.
        match self.latched {
            Some(l) if l != from && n.remote_rtp != Some(from) => return Decision::Ignored,
            _ => self.latched = Some(from),
        }
        let (seq, ts, ssrc) = (
            u16::from(rtp.sequence_number()),
            rtp.timestamp(),
            rtp.ssrc(),
        );
        if is_event {
            return Decision::Event(ssrc, seq, ts, rtp.mark(), rtp.payload());
        }
        match codec {
            Some(codec) => Decision::Audio(codec, ssrc, seq, ts, rtp.payload()),
            None => Decision::Ignored,
        }
    }
}
