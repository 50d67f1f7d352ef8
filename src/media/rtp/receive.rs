//! The receive side of a call leg's RTP port, sans I/O: the shell hands in
//! each datagram with its source address and arrival time, and gets back
//! what it was and what to do with it. The leg uses one receiver for the
//! whole call (IVR, then conference), so its statistics cover the call.
//!
//! The rules, per datagram:
//! - nothing is taken before SDP negotiated the media;
//! - RTCP multiplexed on the RTP port (RFC 5761: the second byte is
//!   200–204, i.e. RTP "payload types" 72–76 with the marker bit) is
//!   recognised and not used;
//! - anything rtp-rs cannot read as RTP version 2 (short, truncated
//!   header, CSRC list or extension, bad padding) is malformed;
//! - the payload type picks the use: the negotiated telephone-event type is
//!   DTMF (it wins should it equal an audio type); the negotiated codec's
//!   type, or the static 0 (PCMU) or 8 (PCMA), is audio; any other type is
//!   ignored;
//! - symmetric RTP (RFC 4961): the source of the first audio or event
//!   packet after (re)negotiation becomes the return address, which is how
//!   media reaches a caller behind NAT. It holds until the SDP names
//!   another address;
//! - strict RTP, like Asterisk's `strictrtp`: once latched, RTP from any
//!   other source is dropped (counted in `from_other_address`), so nobody
//!   who finds the port can speak into the call or the room, key digits
//!   into it, or spoil its statistics. The one exception is the address
//!   the SDP names, which takes the latch back: the signalled address is
//!   the peer's own word, and a stray first packet from elsewhere must not
//!   lock the real peer out. A NAT binding that changes mid-call is not
//!   followed (a re-offer with the new address is);
//! - every RTP packet used or of an unknown payload type goes into the
//!   RFC 3550 statistics (`stream_stats`), audio also into the jitter.

use std::net::SocketAddr;
use std::time::Instant;

use rtp_rs::RtpReader;

use super::stream_stats::{StreamStatistics, StreamStats};
use crate::media::g711::Codec;

/// What SDP negotiated for the media we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveParams {
    pub codec: Codec,
    /// The payload type the peer uses for `codec`.
    pub codec_pt: u8,
    /// The peer's `telephone-event/8000` payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Where the SDP says the peer's RTP is (`None`: no address yet).
    pub remote_rtp: Option<SocketAddr>,
}

/// The header fields a leg uses, and the payload (part of the datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: &'a [u8],
}

/// What a received datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// G.711 audio in `codec`.
    Audio {
        codec: Codec,
        packet: RtpPacket<'a>,
        latch: Latch,
    },
    /// An RFC 4733 telephone-event.
    TelephoneEvent { packet: RtpPacket<'a>, latch: Latch },
    /// RTCP on the RTP port; not used.
    Rtcp,
    /// Not for us.
    Ignored(Ignored),
}

/// Why a datagram was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// It came before SDP negotiated the media.
    NotNegotiated,
    /// Not readable as RTP.
    Malformed,
    /// RTP with a payload type we neither negotiated nor know.
    UnknownPayloadType(u8),
    /// RTP from another source than the latched one (strict RTP).
    OtherSource,
}

/// What an audio or event packet did to the return address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    /// The first such packet since (re)negotiation: its source is where
    /// we send from now on. `from_sdp_address`: it is the address the SDP
    /// named (false: behind NAT, or a PBX sending from elsewhere).
    New { from_sdp_address: bool },
    /// From the latched address.
    Same,
}

/// How many datagrams of each kind arrived. Each datagram is counted in
/// exactly one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArrivalCounts {
    pub audio: u64,
    pub telephone_events: u64,
    pub rtcp: u64,
    pub before_negotiation: u64,
    pub malformed: u64,
    pub unknown_payload_type: u64,
    /// RTP dropped because it came from another source than the latched
    /// one.
    pub from_other_address: u64,
}

impl ArrivalCounts {
    /// Every datagram handed to the receiver.
    pub fn datagrams(&self) -> u64 {
        self.audio
            .saturating_add(self.telephone_events)
            .saturating_add(self.rtcp)
            .saturating_add(self.before_negotiation)
            .saturating_add(self.malformed)
            .saturating_add(self.unknown_payload_type)
            .saturating_add(self.from_other_address)
    }
}

/// A snapshot of a leg's receive statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    pub arrivals: ArrivalCounts,
    /// RFC 3550 loss and jitter of the RTP stream.
    pub stream: StreamStats,
}

/// The receive state of one leg.
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    params: Option<ReceiveParams>,
    /// The return address learnt from the peer's media (symmetric RTP).
    latched: Option<SocketAddr>,
    arrivals: ArrivalCounts,
    stream: StreamStatistics,
}

impl RtpReceiver {
    /// A receiver that takes nothing until [`negotiate`](Self::negotiate);
    /// arrival times are measured from `now`.
    pub fn new(now: Instant) -> Self {
        RtpReceiver {
            params: None,
            latched: None,
            arrivals: ArrivalCounts::default(),
            stream: StreamStatistics::new(now),
        }
    }

    /// Takes a (re)negotiation. Returns true when the SDP address changed
    /// (or is the first): the latch is released and the next packet sets
    /// it again, so media follows the new address.
    pub fn negotiate(&mut self, params: ReceiveParams) -> bool {
        let remote_changed = self
            .params
            .is_none_or(|p| p.remote_rtp != params.remote_rtp);
        if remote_changed {
            self.latched = None;
        }
        self.params = Some(params);
        remote_changed
    }

    /// The address learnt from the peer's media, if any yet.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Where our RTP goes: the latched address, else the SDP's.
    pub fn return_address(&self) -> Option<SocketAddr> {
        self.latched
            .or_else(|| self.params.and_then(|p| p.remote_rtp))
    }

    /// Classifies one datagram that arrived from `from` at `now`, and
    /// updates the latch and the statistics.
    pub fn handle_datagram<'a>(
        &mut self,
        datagram: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Datagram<'a> {
        let Some(params) = self.params else {
            bump(&mut self.arrivals.before_negotiation);
            return Datagram::Ignored(Ignored::NotNegotiated);
        };
        if is_rtcp(datagram) {
            bump(&mut self.arrivals.rtcp);
            return Datagram::Rtcp;
        }
        let Ok(rtp) = RtpReader::new(datagram) else {
            bump(&mut self.arrivals.malformed);
            return Datagram::Ignored(Ignored::Malformed);
        };
        if !self.accepts_source(from, params) {
            bump(&mut self.arrivals.from_other_address);
            return Datagram::Ignored(Ignored::OtherSource);
        }
        let packet = RtpPacket {
            ssrc: rtp.ssrc(),
            sequence: u16::from(rtp.sequence_number()),
            timestamp: rtp.timestamp(),
            marker: rtp.mark(),
            payload_type: rtp.payload_type(),
            payload: rtp.payload(),
        };
        let pt = packet.payload_type;
        let kind = if Some(pt) == params.telephone_event_pt {
            Kind::TelephoneEvent
        } else if pt == params.codec_pt {
            Kind::Audio(params.codec)
        } else {
            Codec::from_static_payload_type(pt).map_or(Kind::Unknown, Kind::Audio)
        };
        self.stream.on_packet(
            now,
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            matches!(kind, Kind::Audio(_)),
        );
        match kind {
            Kind::TelephoneEvent => {
                bump(&mut self.arrivals.telephone_events);
                let latch = self.latch(from, params);
                Datagram::TelephoneEvent { packet, latch }
            }
            Kind::Audio(codec) => {
                bump(&mut self.arrivals.audio);
                let latch = self.latch(from, params);
                Datagram::Audio {
                    codec,
                    packet,
                    latch,
                }
            }
            Kind::Unknown => {
                bump(&mut self.arrivals.unknown_payload_type);
                Datagram::Ignored(Ignored::UnknownPayloadType(pt))
            }
        }
    }

    /// Strict RTP: before the latch anyone, after it the latched source
    /// and the SDP's address.
    fn accepts_source(&self, from: SocketAddr, params: ReceiveParams) -> bool {
        self.latched
            .is_none_or(|latched| latched == from || params.remote_rtp == Some(from))
    }

    /// Called for a packet `accepts_source` let in.
    fn latch(&mut self, from: SocketAddr, params: ReceiveParams) -> Latch {
        if self.latched == Some(from) {
            return Latch::Same;
        }
        self.latched = Some(from);
        Latch::New {
            from_sdp_address: params.remote_rtp == Some(from),
        }
    }

    pub fn stats(&self) -> ReceiveStats {
        ReceiveStats {
            arrivals: self.arrivals,
            stream: self.stream.stats(),
        }
    }

    /// Loss since the previous call, for a receiver report (RFC 3550 A.3).
    pub fn take_loss_interval(&mut self) -> super::LossInterval {
        self.stream.take_interval()
    }
}

/// What a payload type is for, on this leg.
enum Kind {
    TelephoneEvent,
    Audio(Codec),
    Unknown,
}

fn bump(count: &mut u64) {
    *count = count.saturating_add(1);
}

/// RTCP multiplexed with RTP (RFC 5761 §4): version 2 and a packet type of
/// 200–204 (SR, RR, SDES, BYE, APP), which read as RTP are payload types
/// 72–76 with the marker bit. Decided on the payload-type bits alone, as
/// before this receiver existed: a packet of RTP type 72–76 is never media.
fn is_rtcp(datagram: &[u8]) -> bool {
    let (Some(&first), Some(&second)) = (datagram.first(), datagram.get(1)) else {
        return false;
    };
    first >> 6 == 2 && datagram.len() >= 4 && (72..=76).contains(&(second & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::stream_stats::StreamStats;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::time::Duration;

    const PEER: &str = "192.0.2.10:40000";
    const NAT: &str = "198.51.100.7:61000";
    const OTHER: &str = "203.0.113.9:5004";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn params() -> ReceiveParams {
        ReceiveParams {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(101),
            remote_rtp: Some(addr(PEER)),
        }
    }

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn negotiated(now: Instant) -> RtpReceiver {
        let mut r = RtpReceiver::new(now);
        assert!(r.negotiate(params()));
        r
    }

    #[test]
    fn audio_and_events_are_classified_by_payload_type() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        let from = addr(PEER);
        let audio = rtp(0x80, 1, 160, 7, &[0xff; 160]);
        match r.handle_datagram(&audio, from, t0) {
            Datagram::Audio {
                codec,
                packet,
                latch,
            } => {
                assert_eq!(codec, Codec::Pcmu);
                assert_eq!(
                    (
                        packet.ssrc,
                        packet.sequence,
                        packet.timestamp,
                        packet.marker
                    ),
                    (7, 1, 160, true)
                );
                assert_eq!(packet.payload, &[0xff; 160][..]);
                assert_eq!(
                    latch,
                    Latch::New {
                        from_sdp_address: true
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        // The static PCMA type is audio too, though PCMU was negotiated.
        let pcma = rtp(8, 2, 320, 7, &[0xd5; 160]);
        assert!(matches!(
            r.handle_datagram(&pcma, from, t0),
            Datagram::Audio {
                codec: Codec::Pcma,
                latch: Latch::Same,
                ..
            }
        ));
        let event = rtp(101, 3, 320, 7, &[1, 0x0a, 0, 160]);
        match r.handle_datagram(&event, from, t0) {
            Datagram::TelephoneEvent { packet, latch } => {
                assert_eq!(packet.payload, &[1, 0x0a, 0, 160]);
                assert_eq!(packet.payload_type, 101);
                assert_eq!(latch, Latch::Same);
            }
            other => panic!("{other:?}"),
        }
        // Comfort noise was not negotiated.
        let cn = rtp(13, 4, 480, 7, &[40]);
        assert_eq!(
            r.handle_datagram(&cn, from, t0),
            Datagram::Ignored(Ignored::UnknownPayloadType(13))
        );
        let a = r.stats().arrivals;
        assert_eq!(
            (a.audio, a.telephone_events, a.unknown_payload_type),
            (2, 1, 1)
        );
        // Every RTP packet counts in the stream (the first is probation).
        assert_eq!(r.stats().stream.received, 3);
    }

    #[test]
    fn dynamic_codec_type_and_event_type_colliding() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(t0);
        r.negotiate(ReceiveParams {
            codec: Codec::Pcma,
            codec_pt: 96,
            telephone_event_pt: Some(0),
            remote_rtp: None,
        });
        let from = addr(PEER);
        assert!(matches!(
            r.handle_datagram(&rtp(96, 1, 0, 1, &[0xd5; 80]), from, t0),
            Datagram::Audio {
                codec: Codec::Pcma,
                ..
            }
        ));
        // 0 is the event type here: it wins over the static PCMU meaning.
        assert!(matches!(
            r.handle_datagram(&rtp(0, 2, 0, 1, &[5, 0, 0, 80]), from, t0),
            Datagram::TelephoneEvent { .. }
        ));
        // And over the negotiated codec's type, should the two be equal.
        r.negotiate(ReceiveParams {
            codec: Codec::Pcma,
            codec_pt: 96,
            telephone_event_pt: Some(96),
            remote_rtp: None,
        });
        assert!(matches!(
            r.handle_datagram(&rtp(96, 3, 0, 1, &[5, 0, 0, 80]), from, t0),
            Datagram::TelephoneEvent { .. }
        ));
    }

    #[test]
    fn rtcp_is_recognised_and_not_used() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        // A receiver report with no blocks (8 bytes: too short for RTP),
        // a sender report, an APP packet, and RTP type 72 without the
        // marker bit.
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&[0; 24]);
        let app = [0x80, 204, 0, 2, 0, 0, 0, 9, b'n', b'a', b'm', b'e'];
        let odd = rtp(72, 1, 0, 9, &[0; 4]);
        for p in [&rr[..], &sr, &app, &odd] {
            assert_eq!(r.handle_datagram(p, addr(PEER), t0), Datagram::Rtcp);
        }
        assert_eq!(r.latched(), None, "RTCP does not latch");
        assert_eq!(r.stats().arrivals.rtcp, 4);
        assert_eq!(r.stats().stream, StreamStats::default());
        // Types 71 and 77 are not RTCP (71 is unknown, 77 too).
        assert_eq!(
            r.handle_datagram(&rtp(0xc7, 2, 0, 9, &[0; 4]), addr(PEER), t0),
            Datagram::Ignored(Ignored::UnknownPayloadType(71))
        );
        assert_eq!(
            r.handle_datagram(&rtp(77, 3, 0, 9, &[0; 4]), addr(PEER), t0),
            Datagram::Ignored(Ignored::UnknownPayloadType(77))
        );
    }

    #[test]
    fn nothing_is_taken_before_negotiation() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(t0);
        let p = rtp(0, 1, 0, 1, &[0xff; 160]);
        assert_eq!(
            r.handle_datagram(&p, addr(PEER), t0),
            Datagram::Ignored(Ignored::NotNegotiated)
        );
        assert_eq!(r.latched(), None);
        assert_eq!(r.return_address(), None);
        assert_eq!(r.stats().arrivals.before_negotiation, 1);
    }

    #[test]
    fn garbage_and_truncated_packets_are_malformed() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        let from = addr(PEER);
        let good = rtp(0, 1, 0, 1, &[0xff; 20]);
        let mut bad_version = good.clone();
        bad_version[0] = 0x40;
        // Two CSRCs announced, none present.
        let mut csrc = good[..12].to_vec();
        csrc[0] = 0x82;
        // An extension header cut short, then one whose length runs past
        // the end.
        let mut ext_cut = good[..14].to_vec();
        ext_cut[0] = 0x90;
        let mut ext_long = good[..12].to_vec();
        ext_long[0] = 0x90;
        ext_long.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
        // Padding of 0, and padding longer than the packet.
        let mut pad_zero = good.clone();
        pad_zero[0] = 0xa0;
        *pad_zero.last_mut().unwrap() = 0;
        let mut pad_long = good.clone();
        pad_long[0] = 0xa0;
        *pad_long.last_mut().unwrap() = 200;
        let cases: [&[u8]; 10] = [
            &[],
            &[0x80],
            &[0x80, 0],
            &good[..11],
            &bad_version,
            &csrc,
            &ext_cut,
            &ext_long,
            &pad_zero,
            &pad_long,
        ];
        for p in cases {
            assert_eq!(
                r.handle_datagram(p, from, t0),
                Datagram::Ignored(Ignored::Malformed),
                "{p:02x?}"
            );
        }
        assert_eq!(r.latched(), None, "junk does not latch");
        assert_eq!(r.stats().arrivals.malformed, 10);
        assert_eq!(r.stats().stream, StreamStats::default());
        // Padding, CSRCs and an extension that fit are read past.
        let mut fancy = vec![0xb1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1];
        fancy.extend_from_slice(&[0, 0, 0, 42]); // CSRC
        fancy.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension
        fancy.extend_from_slice(&[0xff; 160]);
        fancy.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        match r.handle_datagram(&fancy, from, t0) {
            Datagram::Audio { packet, .. } => assert_eq!(packet.payload, &[0xff; 160][..]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn latches_on_the_first_source_and_keeps_it() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        assert_eq!(r.return_address(), Some(addr(PEER)), "SDP until media");
        // Behind NAT: the media comes from another address than the SDP's.
        let p = rtp(0, 1, 0, 1, &[0xff; 160]);
        assert!(matches!(
            r.handle_datagram(&p, addr(NAT), t0),
            Datagram::Audio {
                latch: Latch::New {
                    from_sdp_address: false
                },
                ..
            }
        ));
        assert_eq!(r.return_address(), Some(addr(NAT)));
        // RTP from elsewhere is dropped (strict RTP), whatever it carries,
        // and moves nothing: not the latch, not the statistics.
        let before = r.stats().stream;
        for p in [
            rtp(0, 2, 160, 1, &[0xff; 160]),
            rtp(101, 2, 160, 1, &[1, 0, 0, 160]),
            rtp(0, 9, 0, 7, &[0; 160]),
        ] {
            assert_eq!(
                r.handle_datagram(&p, addr(OTHER), t0),
                Datagram::Ignored(Ignored::OtherSource)
            );
        }
        assert_eq!(r.return_address(), Some(addr(NAT)));
        assert_eq!(r.stats().arrivals.from_other_address, 3);
        assert_eq!(r.stats().stream, before);
        // The SDP's own address takes the latch back: a stray packet that
        // arrived first cannot lock the peer out.
        let p = rtp(0, 2, 160, 1, &[0xff; 160]);
        assert!(matches!(
            r.handle_datagram(&p, addr(PEER), t0),
            Datagram::Audio {
                latch: Latch::New {
                    from_sdp_address: true
                },
                ..
            }
        ));
        assert_eq!(r.latched(), Some(addr(PEER)));
        let p = rtp(0, 3, 320, 1, &[0xff; 160]);
        assert_eq!(
            r.handle_datagram(&p, addr(NAT), t0),
            Datagram::Ignored(Ignored::OtherSource)
        );
        // A re-INVITE with the same address keeps the latch ...
        assert!(!r.negotiate(params()));
        assert_eq!(r.latched(), Some(addr(PEER)));
        // ... one with a new address releases it; the next packet's source
        // is latched.
        assert!(r.negotiate(ReceiveParams {
            remote_rtp: Some(addr(OTHER)),
            ..params()
        }));
        assert_eq!(r.latched(), None);
        assert_eq!(r.return_address(), Some(addr(OTHER)));
        let p = rtp(101, 3, 320, 1, &[1, 0, 0, 160]);
        assert!(matches!(
            r.handle_datagram(&p, addr(OTHER), t0),
            Datagram::TelephoneEvent {
                latch: Latch::New {
                    from_sdp_address: true
                },
                ..
            }
        ));
        assert_eq!(r.latched(), Some(addr(OTHER)));
        // Hold (no SDP address) releases it too.
        assert!(r.negotiate(ReceiveParams {
            remote_rtp: None,
            ..params()
        }));
        assert_eq!(r.return_address(), None);
    }

    #[test]
    fn ignored_packets_do_not_latch() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        let cn = rtp(13, 1, 0, 1, &[40]);
        r.handle_datagram(&cn, addr(OTHER), t0);
        assert_eq!(r.latched(), None);
        let p = rtp(0, 2, 0, 1, &[0xff; 160]);
        r.handle_datagram(&p, addr(NAT), t0);
        assert_eq!(r.latched(), Some(addr(NAT)));
    }

    #[test]
    fn a_call_with_loss_ssrc_change_and_dtmf() {
        let t0 = Instant::now();
        let mut r = negotiated(t0);
        let from = addr(PEER);
        let frame = Duration::from_millis(20);
        // 50 packets of audio with 2 lost, a DTMF press of 5 packets in the
        // same sequence space, then the phone restarts with a new SSRC.
        let mut seq = 500u16;
        for i in 0..50u32 {
            if i != 10 && i != 30 {
                let p = rtp(0, seq, i * 160, 1, &[0xff; 160]);
                r.handle_datagram(&p, from, t0 + frame * i);
            }
            seq += 1;
        }
        for i in 50..55u32 {
            let p = rtp(101, seq, 49 * 160, 1, &[5, 0x0a, 0, 160]);
            r.handle_datagram(&p, from, t0 + frame * i);
            seq += 1;
        }
        for i in 55..75u32 {
            let p = rtp(0, (i - 55) as u16, i * 160, 2, &[0xff; 160]);
            r.handle_datagram(&p, from, t0 + frame * i);
        }
        let s = r.stats();
        assert_eq!(s.arrivals.audio, 48 + 20);
        assert_eq!(s.arrivals.telephone_events, 5);
        assert_eq!(s.stream.ssrc, Some(2));
        assert_eq!(s.stream.ssrc_changes, 1);
        // Source 1: 501..=554 expected (54), 52 received; source 2:
        // 1..=19 (the first is probation) with none lost.
        assert_eq!(
            (s.stream.expected, s.stream.received, s.stream.lost),
            (54 + 19, 52 + 19, 2)
        );
        assert_eq!(s.stream.jitter, 0);
        assert_eq!(s.arrivals.datagrams(), 48 + 5 + 20);
    }

    /// The decision the leg made before this receiver existed, kept here
    /// verbatim in substance as the reference: (kind, refreshes the
    /// inactivity timer).
    #[derive(Debug, PartialEq, Eq)]
    enum Reference<'a> {
        Ignored,
        Event(u32, u16, u32, bool, &'a [u8]),
        Audio(Codec, u32, u16, u32, &'a [u8]),
    }

    fn reference<'a>(
        n: Option<&ReceiveParams>,
        latched: &mut Option<SocketAddr>,
        buf: &'a [u8],
        from: SocketAddr,
    ) -> Reference<'a> {
        let Some(n) = n else {
            return Reference::Ignored;
        };
        let Ok(rtp) = RtpReader::new(buf) else {
            return Reference::Ignored;
        };
        let pt = rtp.payload_type();
        if (72..=76).contains(&pt) {
            return Reference::Ignored;
        }
        let codec = if pt == n.codec_pt {
            Some(n.codec)
        } else {
            Codec::from_static_payload_type(pt)
        };
        let is_event = Some(pt) == n.telephone_event_pt;
        if codec.is_none() && !is_event {
            return Reference::Ignored;
        }
        // Strict RTP: after the latch only its source and the SDP's.
        match *latched {
            Some(l) if l != from && n.remote_rtp != Some(from) => return Reference::Ignored,
            _ => *latched = Some(from),
        }
        let (sequence, timestamp, ssrc) = (
            u16::from(rtp.sequence_number()),
            rtp.timestamp(),
            rtp.ssrc(),
        );
        if is_event {
            return Reference::Event(ssrc, sequence, timestamp, rtp.mark(), rtp.payload());
        }
        let Some(codec) = codec else {
            return Reference::Ignored;
        };
        Reference::Audio(codec, ssrc, sequence, timestamp, rtp.payload())
    }

    /// Random datagrams, near-RTP mostly, from three sources, with
    /// renegotiations: the receiver decides exactly as the leg did, with
    /// strict RTP added.
    #[test]
    fn decides_exactly_as_the_leg_did_before() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0010);
        let sources = [addr(PEER), addr(NAT), addr(OTHER)];
        let t0 = Instant::now();
        let mut now = t0;
        let mut r = RtpReceiver::new(t0);
        let mut ref_params: Option<ReceiveParams> = None;
        let mut ref_latched: Option<SocketAddr> = None;
        let types = [0u8, 8, 13, 18, 72, 73, 76, 77, 71, 96, 101, 127];
        let mut used = 0;
        const ROUNDS: u64 = 50_000;
        for _ in 0..ROUNDS {
            now += Duration::from_micros(rng.random_range(0..40_000));
            if rng.random_ratio(1, 500) {
                let p = ReceiveParams {
                    codec: if rng.random() {
                        Codec::Pcmu
                    } else {
                        Codec::Pcma
                    },
                    codec_pt: types[rng.random_range(0..types.len())],
                    telephone_event_pt: rng
                        .random_ratio(3, 4)
                        .then(|| types[rng.random_range(0..types.len())]),
                    remote_rtp: rng
                        .random_ratio(3, 4)
                        .then(|| sources[rng.random_range(0..sources.len())]),
                };
                // The leg's rule for the latch on renegotiation.
                if ref_params.is_none_or(|n| n.remote_rtp != p.remote_rtp) {
                    ref_latched = None;
                }
                ref_params = Some(p);
                r.negotiate(p);
            }
            let len = rng.random_range(0..200);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = buf.first_mut() {
                if rng.random_ratio(9, 10) {
                    // Version 2, flags mostly clear.
                    *b = 0x80 | (*b & if rng.random_ratio(1, 4) { 0x3f } else { 0 });
                }
            }
            if let Some(b) = buf.get_mut(1) {
                if rng.random_ratio(9, 10) {
                    *b = (*b & 0x80) | types[rng.random_range(0..types.len())];
                }
            }
            let from = sources[rng.random_range(0..sources.len())];
            let expected = reference(ref_params.as_ref(), &mut ref_latched, &buf, from);
            let got = match r.handle_datagram(&buf, from, now) {
                Datagram::Audio { codec, packet, .. } => Reference::Audio(
                    codec,
                    packet.ssrc,
                    packet.sequence,
                    packet.timestamp,
                    packet.payload,
                ),
                Datagram::TelephoneEvent { packet, .. } => Reference::Event(
                    packet.ssrc,
                    packet.sequence,
                    packet.timestamp,
                    packet.marker,
                    packet.payload,
                ),
                Datagram::Rtcp | Datagram::Ignored(_) => Reference::Ignored,
            };
            if got != Reference::Ignored {
                used += 1;
            }
            assert_eq!(got, expected, "{buf:02x?} from {from}");
            assert_eq!(r.latched(), ref_latched);
            let dest = ref_params.and_then(|n| ref_latched.or(n.remote_rtp));
            assert_eq!(r.return_address(), dest);
        }
        // The generator reaches every kind often.
        let a = r.stats().arrivals;
        // (Strict RTP drops what comes from the other two sources once
        // latched, so about one in twenty is used.)
        assert!(used > ROUNDS / 25, "{used}");
        for (kind, n) in [
            ("audio", a.audio),
            ("events", a.telephone_events),
            ("rtcp", a.rtcp),
            ("malformed", a.malformed),
            ("unknown", a.unknown_payload_type),
            ("other address", a.from_other_address),
        ] {
            assert!(n > ROUNDS / 200, "{kind}: {n}");
        }
        assert_eq!(a.datagrams(), ROUNDS);
    }
}
