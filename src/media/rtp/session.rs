//! One call leg's RTP session, sans I/O: what SDP negotiated, the send
//! state and its pacing clock, the receiver core and the inactivity timer,
//! with the buffers a packet goes through. Whoever drives the leg (the
//! call task while the IVR runs, then the conference's room media core)
//! owns one; the socket stays with the shell, which hands in each datagram
//! and sends the packets this writes. Nothing here allocates per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::receive::{Datagram, Latch, ReceiveParams, ReceiveStats, RtpReceiver};
use super::send::{Due, PacketClock, RtpSender, MAX_PACKET};
use crate::media::dtmf::DtmfReceiver;
use crate::media::g711::Codec;

/// The largest audio payload we handle (60 ms of G.711).
pub const MAX_PAYLOAD: usize = 480;

/// What SDP negotiated, as the leg's RTP uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// Codec, payload types and the peer's address.
    pub receive: ReceiveParams,
    /// Packet duration we send.
    pub ptime_ms: u32,
    /// We may send (the peer did not offer `sendonly`/`inactive` or hold).
    pub we_send: bool,
    /// The peer sends to us, so silence from it means it is gone.
    pub we_receive: bool,
}

/// What a received datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// G.711 audio, decoded into [`RtpSession::decoded`]`(samples)`.
    Audio {
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        samples: usize,
    },
    /// A telephone-event, already given to the DTMF receiver.
    Event,
    /// Not for us (garbage, RTCP, another payload type).
    Ignored,
}

/// A packet ready to go: `len` bytes of [`RtpSession::packet`] to
/// `destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub len: usize,
    pub destination: SocketAddr,
}

pub struct RtpSession {
    params: Option<SessionParams>,
    sender: RtpSender,
    clock: PacketClock,
    /// Classifies what arrives, latches the return address (symmetric
    /// RTP: we send to where the caller's packets come from, which works
    /// behind NAT) and keeps the call's receive statistics.
    receiver: RtpReceiver,
    /// When the peer's media last arrived (audio or telephone-event).
    last_rx: Instant,
    /// The next packet starts a talkspurt (marker bit).
    marker_pending: bool,
    payload: [u8; MAX_PAYLOAD],
    packet: [u8; MAX_PACKET],
    /// Decoded audio of the last received packet.
    decoded: [i16; MAX_PAYLOAD],
}

impl RtpSession {
    /// A session that sends with `sender` (random SSRC, sequence and
    /// timestamp, chosen by the caller) and takes nothing until
    /// [`apply`](Self::apply).
    pub fn new(now: Instant, sender: RtpSender) -> Self {
        RtpSession {
            params: None,
            sender,
            clock: PacketClock::new(now, Duration::from_millis(20)),
            receiver: RtpReceiver::new(now),
            last_rx: now,
            marker_pending: true,
            payload: [0; MAX_PAYLOAD],
            packet: [0; MAX_PACKET],
            decoded: [0; MAX_PAYLOAD],
        }
    }

    /// Takes a (re)negotiation: codec, payload types, remote address,
    /// packet time, direction.
    pub fn apply(&mut self, params: SessionParams, now: Instant) {
        let ptime_changed = self.params.is_none_or(|p| p.ptime_ms != params.ptime_ms);
        // A new address releases the latch: media follows it, and the
        // latch is set again by what arrives.
        let remote_changed = self.receiver.negotiate(params.receive);
        self.sender.set_payload_type(params.receive.codec_pt);
        if ptime_changed {
            self.clock.restart(now, ptime(params.ptime_ms));
        }
        if remote_changed {
            self.last_rx = now;
            self.marker_pending = true;
        }
        self.params = Some(params);
    }

    pub fn is_negotiated(&self) -> bool {
        self.params.is_some()
    }

    /// The packet time we send (20 ms until negotiated).
    pub fn ptime_ms(&self) -> u32 {
        self.params.map_or(20, |p| p.ptime_ms)
    }

    pub fn codec(&self) -> Codec {
        self.params.map_or(Codec::Pcmu, |p| p.receive.codec)
    }

    /// Samples per packet we send.
    pub fn frame_samples(&self) -> usize {
        (self.ptime_ms() as usize * 8).min(MAX_PAYLOAD)
    }

    /// Where our RTP goes: `None` while we may not send or know nowhere.
    pub fn destination(&self) -> Option<SocketAddr> {
        if !self.params?.we_send {
            return None;
        }
        self.receiver.return_address()
    }

    /// The address learnt from the peer's media, if any yet.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.receiver.latched()
    }

    /// What arrived so far: datagram kinds and RFC 3550 loss and jitter.
    /// The jitter is measured on the arrival times the driver passes in:
    /// while the IVR runs that is when the socket became readable; in a
    /// room it is the 20 ms tick at which the room drained the socket, so
    /// there it also counts the tick's granularity (up to 160 units when a
    /// tick finds two packets or none).
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
    }

    /// Does the peer send us media (so silence means it is gone)?
    pub fn expects_rtp(&self) -> bool {
        self.params.is_some_and(|p| p.we_receive)
    }

    /// When the inactivity timeout fires, if one applies.
    pub fn inactivity_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        timeout
            .filter(|_| self.expects_rtp())
            .map(|d| self.last_rx + d)
    }

    /// Starts the send schedule and the inactivity timer again from `now`
    /// (when the IVR starts talking after the answer).
    pub fn restart_pacing(&mut self, now: Instant) {
        self.clock.restart(now, ptime(self.ptime_ms()));
        self.last_rx = now;
    }

    /// When the next packet is due.
    pub fn next_send(&self) -> Instant {
        self.clock.next_deadline()
    }

    /// The packet slots due at `now` (see [`PacketClock::due`]).
    pub fn due(&mut self, now: Instant, max_burst: u64) -> Due {
        self.clock.due(now, max_burst)
    }

    /// Moves the RTP timestamp over `samples` not sent (late slots).
    pub fn skip(&mut self, samples: usize) {
        self.sender.skip(samples as u32);
    }

    /// The payload buffer of the next packet, `samples` long (at most
    /// [`MAX_PAYLOAD`]).
    pub fn payload_mut(&mut self, samples: usize) -> &mut [u8] {
        let n = samples.min(MAX_PAYLOAD);
        let (payload, _) = self.payload.split_at_mut(n);
        payload
    }

    /// Writes the RTP packet for the first `samples` of the payload buffer
    /// into [`packet`](Self::packet). `None` (and the timestamp still
    /// advances) when there is nowhere to send, e.g. on hold.
    pub fn write_packet(&mut self, samples: usize, talkspurt: bool) -> Option<Outgoing> {
        let samples = samples.min(MAX_PAYLOAD);
        let Some(destination) = self.destination() else {
            self.sender.skip(samples as u32);
            self.marker_pending = true;
            return None;
        };
        let marker = std::mem::take(&mut self.marker_pending) || talkspurt;
        let (payload, _) = self.payload.split_at(samples);
        let len = self
            .sender
            .write_packet(payload, samples as u32, marker, &mut self.packet)?;
        Some(Outgoing { len, destination })
    }

    /// The first `len` bytes of the packet buffer: what
    /// [`write_packet`](Self::write_packet) wrote.
    pub fn packet(&self, len: usize) -> &[u8] {
        let (packet, _) = self.packet.split_at(len.min(MAX_PACKET));
        packet
    }

    /// Decoded audio of the last audio packet (`samples` from
    /// [`Received::Audio`]).
    pub fn decoded(&self, samples: usize) -> &[i16] {
        let (decoded, _) = self.decoded.split_at(samples.min(MAX_PAYLOAD));
        decoded
    }

    /// Hands a received datagram to the receiver core and acts on its
    /// verdict: audio or a telephone-event refreshes the inactivity timer;
    /// telephone-events go to `dtmf`; audio is decoded into
    /// [`decoded`](Self::decoded).
    pub fn on_datagram(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        dtmf: &mut DtmfReceiver,
    ) -> Received {
        match self.receiver.handle_datagram(datagram, from, now) {
            Datagram::Audio {
                codec,
                packet,
                latch,
            } => {
                self.peer_media(latch, from, now);
                let payload = packet.payload.get(..MAX_PAYLOAD).unwrap_or(packet.payload);
                let samples = payload.len();
                let (decoded, _) = self.decoded.split_at_mut(samples);
                codec.decode(payload, decoded);
                Received::Audio {
                    ssrc: packet.ssrc,
                    sequence: packet.sequence,
                    timestamp: packet.timestamp,
                    samples,
                }
            }
            Datagram::TelephoneEvent { packet, latch } => {
                self.peer_media(latch, from, now);
                dtmf.on_telephone_event(
                    now,
                    packet.ssrc,
                    packet.sequence,
                    packet.timestamp,
                    packet.marker,
                    packet.payload,
                );
                Received::Event
            }
            Datagram::Rtcp | Datagram::Ignored(_) => Received::Ignored,
        }
    }

    fn peer_media(&mut self, latch: Latch, from: SocketAddr, now: Instant) {
        self.last_rx = now;
        if matches!(
            latch,
            Latch::New {
                from_sdp_address: false
            }
        ) {
            let sdp = self.params.and_then(|p| p.receive.remote_rtp);
            tracing::debug!(sdp = ?sdp, actual = %from, "RTP arrives from another address; answering there");
        }
    }
}

fn ptime(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::DtmfMode;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn params(remote: SocketAddr) -> SessionParams {
        SessionParams {
            receive: ReceiveParams {
                codec: Codec::Pcmu,
                codec_pt: 0,
                telephone_event_pt: Some(101),
                remote_rtp: Some(remote),
            },
            ptime_ms: 20,
            we_send: true,
            we_receive: true,
        }
    }

    /// The session hands every datagram to the receiver core and acts on
    /// its verdict: decodes audio, feeds DTMF, refreshes the inactivity
    /// timer only for the peer's media, sends to the latched address, and
    /// the statistics cover what arrived.
    #[test]
    fn receive_path_is_wired_to_the_core() {
        let t0 = Instant::now();
        let mut leg = RtpSession::new(t0, RtpSender::new(1, 2, 3, 0));
        let mut dtmf = DtmfReceiver::new(DtmfMode::Rfc4733);
        let sdp: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let nat: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let ms = Duration::from_millis;
        let timeout = Some(Duration::from_secs(30));

        let early = rtp(0, 1, 0, &[0x00; 160]);
        assert_eq!(
            leg.on_datagram(&early, nat, t0, &mut dtmf),
            Received::Ignored
        );
        assert_eq!(leg.inactivity_deadline(timeout), None, "not negotiated");
        leg.apply(params(sdp), t0);
        assert_eq!(leg.destination(), Some(sdp));

        let payload: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let got = leg.on_datagram(&rtp(0, 2, 160, &payload), nat, t0 + ms(20), &mut dtmf);
        assert_eq!(
            got,
            Received::Audio {
                ssrc: 0x1234_5678,
                sequence: 2,
                timestamp: 160,
                samples: 160
            }
        );
        let mut want = [0i16; 160];
        Codec::Pcmu.decode(&payload, &mut want);
        assert_eq!(leg.decoded(160), want);
        assert_eq!(
            leg.inactivity_deadline(timeout),
            Some(t0 + ms(20) + Duration::from_secs(30))
        );
        assert_eq!(leg.destination(), Some(nat), "latched on the media");

        // RTCP and junk do not count as the peer's media.
        let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(
            leg.on_datagram(&rr, nat, t0 + ms(30), &mut dtmf),
            Received::Ignored
        );
        assert_eq!(
            leg.on_datagram(&[1, 2, 3], nat, t0 + ms(30), &mut dtmf),
            Received::Ignored
        );
        assert_eq!(
            leg.inactivity_deadline(timeout),
            Some(t0 + ms(20) + Duration::from_secs(30))
        );

        // A "5" press: start, then three end packets.
        for (i, end) in [(0u16, false), (1, true), (2, true), (3, true)] {
            let duration = (160 * (i + 1)).to_be_bytes();
            let flags = if end { 0x8a } else { 0x0a };
            let block = [5, flags, duration[0], duration[1]];
            let got = leg.on_datagram(&rtp(101, 3 + i, 320, &block), nat, t0 + ms(40), &mut dtmf);
            assert_eq!(got, Received::Event);
        }
        assert_eq!(dtmf.poll_digit().map(|d| d.key), Some('5'));
        assert_eq!(
            leg.inactivity_deadline(timeout),
            Some(t0 + ms(40) + Duration::from_secs(30))
        );

        let s = leg.receive_stats();
        assert_eq!(
            (
                s.arrivals.before_negotiation,
                s.arrivals.audio,
                s.arrivals.telephone_events
            ),
            (1, 1, 4)
        );
        assert_eq!((s.arrivals.rtcp, s.arrivals.malformed), (1, 1));
        // The first packet of the source is its probation (RFC 3550 A.1).
        assert_eq!(
            (s.stream.expected, s.stream.received, s.stream.lost),
            (4, 4, 0)
        );

        // A re-INVITE moving the media sends to the new SDP address until
        // packets arrive from somewhere, and restarts the inactivity timer.
        let moved: SocketAddr = "127.0.0.3:9".parse().unwrap();
        leg.apply(params(moved), t0 + ms(60));
        assert_eq!(leg.destination(), Some(moved));
        assert_eq!(
            leg.inactivity_deadline(timeout),
            Some(t0 + ms(60) + Duration::from_secs(30))
        );
    }

    /// The send side: packets carry the payload buffer, the first is a
    /// talkspurt start, and on hold (we may not send) nothing is written
    /// but the timestamp moves on and the next packet is marked.
    #[test]
    fn packets_are_written_for_the_destination_and_held_calls_send_nothing() {
        let t0 = Instant::now();
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut leg = RtpSession::new(t0, RtpSender::new(0xabcd, 100, 1000, 0));
        assert_eq!(leg.write_packet(160, false), None, "not negotiated");
        leg.apply(params(peer), t0);
        leg.payload_mut(160).fill(0x55);
        let out = leg.write_packet(160, false).unwrap();
        assert_eq!(out.destination, peer);
        assert_eq!(out.len, 12 + 160);
        let p = leg.packet(out.len);
        assert_eq!(p[1], 0x80, "marker on the first packet, PT 0");
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 100);
        assert_eq!(u32::from_be_bytes([p[4], p[5], p[6], p[7]]), 160 + 1000);
        assert!(p[12..].iter().all(|&b| b == 0x55));

        let mut held = params(peer);
        held.we_send = false;
        leg.apply(held, t0);
        assert_eq!(leg.write_packet(160, false), None);
        leg.apply(params(peer), t0);
        let out = leg.write_packet(160, false).unwrap();
        let p = leg.packet(out.len);
        assert_eq!(p[1], 0x80, "marked again after the hold");
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 101);
        assert_eq!(
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            1000 + 3 * 160,
            "the held slot moved the timestamp on"
        );
    }
}
