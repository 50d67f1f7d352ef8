//! One call's RTP: its socket, what SDP negotiated, the send state and the
//! receiver core (what each datagram is, the symmetric-RTP latch, RFC 3550
//! statistics), plus the inactivity timer. The call task uses it while the
//! IVR runs; when the caller joins a conference the whole `LegMedia` moves
//! to the room task, which drives every leg from one 20 ms tick with
//! non-blocking sends and receives. The receive statistics go to the debug
//! log when the leg is dropped at the end of the call. Nothing here
//! allocates per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;
use tokio::net::UdpSocket;

use super::rtp_ports::RtpPort;
use crate::media::dtmf::DtmfReceiver;
use crate::media::g711::Codec;
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::{
    Datagram, Latch, PacketClock, ReceiveParams, ReceiveStats, RtpReceiver, RtpSender, MAX_PACKET,
};
use crate::sip::sdp::NegotiatedMedia;

/// The largest audio payload we handle (60 ms of G.711).
pub const MAX_PAYLOAD: usize = 480;

/// What a received datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// G.711 audio, decoded into `LegMedia::decoded[..samples]`.
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

pub struct LegMedia {
    pub socket: UdpSocket,
    pub negotiated: Option<NegotiatedMedia>,
    pub sender: RtpSender,
    pub clock: PacketClock,
    /// Classifies what arrives, latches the return address (symmetric
    /// RTP: we send to where the caller's packets come from, which works
    /// behind NAT) and keeps the call's receive statistics.
    receiver: RtpReceiver,
    /// When the peer's media last arrived (audio or telephone-event).
    pub last_rx: Instant,
    /// The next packet starts a talkspurt (marker bit).
    pub marker_pending: bool,
    pub payload: [u8; MAX_PAYLOAD],
    packet: [u8; MAX_PACKET],
    /// Decoded audio of the last received packet.
    pub decoded: [i16; MAX_PAYLOAD],
    /// The port's lease: declared after `socket` so that, fields dropping
    /// in order, the socket is closed before the port is free again.
    _port: RtpPort,
}

impl LegMedia {
    pub fn new(socket: UdpSocket, port: RtpPort, now: Instant) -> Self {
        let mut rng = rand::rng();
        LegMedia {
            socket,
            negotiated: None,
            sender: RtpSender::new(rng.random(), rng.random(), rng.random(), 0),
            clock: PacketClock::new(now, Duration::from_millis(20)),
            receiver: RtpReceiver::new(now),
            last_rx: now,
            marker_pending: true,
            payload: [0; MAX_PAYLOAD],
            packet: [0; MAX_PACKET],
            decoded: [0; MAX_PAYLOAD],
            _port: port,
        }
    }

    /// Takes a (re)negotiation: codec, payload types, remote address,
    /// packet time, direction.
    pub fn apply(&mut self, neg: NegotiatedMedia, now: Instant) {
        let ptime_changed = self
            .negotiated
            .as_ref()
            .is_none_or(|n| n.ptime_ms != neg.ptime_ms);
        // A new address releases the latch: media follows it, and the
        // latch is set again by what arrives.
        let remote_changed = self.receiver.negotiate(ReceiveParams {
            codec: neg.codec,
            codec_pt: neg.codec_pt,
            telephone_event_pt: neg.telephone_event_pt,
            remote_rtp: neg.remote_rtp,
        });
        self.sender.set_payload_type(neg.codec_pt);
        if ptime_changed {
            self.clock
                .restart(now, Duration::from_millis(u64::from(neg.ptime_ms)));
        }
        if remote_changed {
            self.last_rx = now;
            self.marker_pending = true;
        }
        self.negotiated = Some(neg);
    }

    pub fn codec(&self) -> Codec {
        self.negotiated
            .as_ref()
            .map(|n| n.codec)
            .unwrap_or(Codec::Pcmu)
    }

    /// Samples per packet we send.
    pub fn frame_samples(&self) -> usize {
        self.negotiated
            .as_ref()
            .map(|n| n.ptime_ms as usize * 8)
            .unwrap_or(160)
            .min(MAX_PAYLOAD)
    }

    pub fn destination(&self) -> Option<SocketAddr> {
        let n = self.negotiated.as_ref()?;
        if !n.local_direction.sends() {
            return None;
        }
        self.receiver.return_address()
    }

    /// What arrived so far: datagram kinds and RFC 3550 loss and jitter.
    /// The jitter is measured on the times the shell passes in: while the
    /// IVR runs that is when the socket became readable; in the room it is
    /// the 20 ms tick at which the room drained the socket, so there it
    /// also counts the tick's granularity (up to 160 units when a tick
    /// finds two packets or none).
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
    }

    /// Does the peer send us media (so silence means it is gone)?
    pub fn expects_rtp(&self) -> bool {
        self.negotiated
            .as_ref()
            .is_some_and(|n| n.local_direction.receives())
    }

    /// When the inactivity timeout fires, if one applies.
    pub fn inactivity_deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        timeout
            .filter(|_| self.expects_rtp())
            .map(|d| self.last_rx + d)
    }

    /// Sends the packets that are due, taking audio from the player (the
    /// call task's pacing, while the IVR runs).
    pub async fn send_due(&mut self, now: Instant, player: &mut PromptPlayer) {
        let due = self.clock.due(now, 3);
        if due.send == 0 && due.skip == 0 {
            return;
        }
        let codec = self.codec();
        let samples = self.frame_samples();
        // Slots we were too late for: keep prompt position and RTP
        // timestamps in step with real time.
        for _ in 0..due.skip {
            player.fill(codec, &mut self.payload[..samples]);
            self.sender.skip(samples as u32);
        }
        for _ in 0..due.send {
            let frame = player.fill(codec, &mut self.payload[..samples]);
            if let Some((len, dest)) = self.build(samples, frame == (Frame::Audio { first: true }))
            {
                if let Err(e) = self.socket.send_to(&self.packet[..len], dest).await {
                    tracing::trace!(error = %e, "RTP send failed");
                }
            }
        }
    }

    /// Sends `self.payload[..samples]` now without waiting (the room task's
    /// path: a full socket buffer drops the packet rather than stall the
    /// room).
    pub fn try_send_payload(&mut self, samples: usize, talkspurt: bool) {
        if let Some((len, dest)) = self.build(samples, talkspurt) {
            let _ = self.socket.try_send_to(&self.packet[..len], dest);
        }
    }

    /// Writes the RTP packet for `self.payload[..samples]` into the packet
    /// buffer; `None` (and the timestamp still advances) when there is
    /// nowhere to send, e.g. on hold.
    fn build(&mut self, samples: usize, talkspurt: bool) -> Option<(usize, SocketAddr)> {
        let Some(dest) = self.destination() else {
            self.sender.skip(samples as u32);
            self.marker_pending = true;
            return None;
        };
        let marker = std::mem::take(&mut self.marker_pending) || talkspurt;
        let len = self.sender.write_packet(
            &self.payload[..samples],
            samples as u32,
            marker,
            &mut self.packet,
        )?;
        Some((len, dest))
    }

    /// Hands a received datagram to the receiver core and acts on its
    /// verdict: audio or a telephone-event refreshes the inactivity timer;
    /// telephone-events go to `dtmf`; audio is decoded into `self.decoded`.
    pub fn on_datagram(
        &mut self,
        buf: &[u8],
        from: SocketAddr,
        now: Instant,
        dtmf: &mut DtmfReceiver,
    ) -> Received {
        match self.receiver.handle_datagram(buf, from, now) {
            Datagram::Audio {
                codec,
                packet,
                latch,
            } => {
                self.peer_media(latch, from, now);
                let payload = packet.payload.get(..MAX_PAYLOAD).unwrap_or(packet.payload);
                let samples = payload.len();
                codec.decode(payload, &mut self.decoded[..samples]);
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
            let sdp = self.negotiated.as_ref().and_then(|n| n.remote_rtp);
            tracing::debug!(sdp = ?sdp, actual = %from, "RTP arrives from another address; answering there");
        }
    }
}

impl Drop for LegMedia {
    /// The end of the leg is the end of the call's media: what it received
    /// goes to the debug log (later, to the call record).
    fn drop(&mut self) {
        let s = self.receiver.stats();
        tracing::debug!(
            rtp_port = self._port.port(),
            latched = ?self.receiver.latched(),
            audio = s.arrivals.audio,
            telephone_events = s.arrivals.telephone_events,
            rtcp = s.arrivals.rtcp,
            malformed = s.arrivals.malformed,
            unknown_payload_type = s.arrivals.unknown_payload_type,
            before_negotiation = s.arrivals.before_negotiation,
            from_other_address = s.arrivals.from_other_address,
            ssrc = ?s.stream.ssrc,
            ssrc_changes = s.stream.ssrc_changes,
            expected = s.stream.expected,
            received = s.stream.received,
            lost = s.stream.lost,
            fraction_lost = s.stream.fraction_lost,
            jitter = s.stream.jitter,
            duplicates = s.stream.duplicates,
            late = s.stream.late,
            "RTP received on the leg"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::DtmfMode;
    use crate::server::rtp_ports::RtpPortAllocator;
    use crate::sip::sdp::Direction;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn negotiated(remote: SocketAddr) -> NegotiatedMedia {
        NegotiatedMedia {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(101),
            remote_rtp: Some(remote),
            ptime_ms: 20,
            local_direction: Direction::SendRecv,
        }
    }

    /// The leg hands every datagram to the receiver core and acts on its
    /// verdict: decodes audio, feeds DTMF, refreshes the inactivity timer
    /// only for the peer's media, sends to the latched address, and the
    /// statistics cover what arrived.
    #[tokio::test]
    async fn receive_path_is_wired_to_the_core() {
        let ports = RtpPortAllocator::new(43_100, 43_199);
        let (socket, lease) = ports.bind("127.0.0.1".parse().unwrap()).unwrap();
        let t0 = Instant::now();
        let mut leg = LegMedia::new(UdpSocket::from_std(socket).unwrap(), lease, t0);
        let mut dtmf = DtmfReceiver::new(DtmfMode::Rfc4733);
        let sdp: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let nat: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let ms = Duration::from_millis;

        let early = rtp(0, 1, 0, &[0x00; 160]);
        assert_eq!(
            leg.on_datagram(&early, nat, t0, &mut dtmf),
            Received::Ignored
        );
        leg.apply(negotiated(sdp), t0);
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
        assert_eq!(leg.decoded[..160], want);
        assert_eq!(leg.last_rx, t0 + ms(20));
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
        assert_eq!(leg.last_rx, t0 + ms(20));

        // A "5" press: start, then three end packets.
        for (i, end) in [(0u16, false), (1, true), (2, true), (3, true)] {
            let duration = (160 * (i + 1)).to_be_bytes();
            let flags = if end { 0x8a } else { 0x0a };
            let block = [5, flags, duration[0], duration[1]];
            let got = leg.on_datagram(&rtp(101, 3 + i, 320, &block), nat, t0 + ms(40), &mut dtmf);
            assert_eq!(got, Received::Event);
        }
        assert_eq!(dtmf.poll_digit().map(|d| d.key), Some('5'));
        assert_eq!(leg.last_rx, t0 + ms(40));

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
        // packets arrive from somewhere.
        let moved: SocketAddr = "127.0.0.3:9".parse().unwrap();
        leg.apply(negotiated(moved), t0 + ms(60));
        assert_eq!(leg.destination(), Some(moved));
        assert_eq!(leg.last_rx, t0 + ms(60));
    }
}
