//! One call's RTP: its socket, what SDP negotiated, the send state and the
//! receive bookkeeping (symmetric-RTP latch, inactivity). The call task
//! uses it while the IVR runs; when the caller joins a conference the whole
//! `LegMedia` moves to the room task, which drives every leg from one
//! 20 ms tick with non-blocking sends and receives. Nothing here allocates
//! per packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;
use rtp_rs::RtpReader;
use tokio::net::UdpSocket;

use super::rtp_ports::RtpPort;
use crate::media::dtmf::DtmfReceiver;
use crate::media::g711::Codec;
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::{PacketClock, RtpSender, MAX_PACKET};
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
    /// Source of the caller's RTP once it arrives (symmetric RTP: we send
    /// to where their packets come from, which works behind NAT).
    pub latched: Option<SocketAddr>,
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
            latched: None,
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
        let remote_changed = self
            .negotiated
            .as_ref()
            .is_none_or(|n| n.remote_rtp != neg.remote_rtp);
        self.sender.set_payload_type(neg.codec_pt);
        if ptime_changed {
            self.clock
                .restart(now, Duration::from_millis(u64::from(neg.ptime_ms)));
        }
        if remote_changed {
            // Media follows the new address; latch again on what arrives.
            self.latched = None;
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
        self.latched.or(n.remote_rtp)
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

    /// Looks at a received datagram: RTP from the peer refreshes the
    /// inactivity timer and latches the return address; telephone-events go
    /// to `dtmf`; audio is decoded into `self.decoded`.
    pub fn on_datagram(
        &mut self,
        buf: &[u8],
        from: SocketAddr,
        now: Instant,
        dtmf: &mut DtmfReceiver,
    ) -> Received {
        let Some(n) = &self.negotiated else {
            return Received::Ignored;
        };
        let Ok(rtp) = RtpReader::new(buf) else {
            return Received::Ignored;
        };
        let pt = rtp.payload_type();
        // RTCP multiplexed on the RTP port has "payload types" 72–76.
        if (72..=76).contains(&pt) {
            return Received::Ignored;
        }
        let codec = if pt == n.codec_pt {
            Some(n.codec)
        } else {
            Codec::from_static_payload_type(pt)
        };
        let is_event = Some(pt) == n.telephone_event_pt;
        if codec.is_none() && !is_event {
            return Received::Ignored;
        }
        self.last_rx = now;
        if self.latched.is_none() {
            if n.remote_rtp != Some(from) {
                tracing::debug!(sdp = ?n.remote_rtp, actual = %from, "RTP arrives from another address; answering there");
            }
            self.latched = Some(from);
        }
        let (sequence, timestamp, ssrc) = (
            u16::from(rtp.sequence_number()),
            rtp.timestamp(),
            rtp.ssrc(),
        );
        if is_event {
            dtmf.on_telephone_event(now, ssrc, sequence, timestamp, rtp.mark(), rtp.payload());
            return Received::Event;
        }
        let Some(codec) = codec else {
            return Received::Ignored;
        };
        let payload = rtp.payload();
        let k = payload.len().min(MAX_PAYLOAD);
        codec.decode(&payload[..k], &mut self.decoded[..k]);
        Received::Audio {
            ssrc,
            sequence,
            timestamp,
            samples: k,
        }
    }
}
