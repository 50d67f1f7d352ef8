//! One call's RTP port as the shell holds it: the UDP socket with its
//! port lease ([`LegSocket`]) and the leg's RTP session core
//! ([`RtpSession`]: what SDP negotiated, send state, receiver, inactivity
//! timer). The call task drives both while the IVR runs; when the caller
//! joins a conference the session goes to the room's media core and the
//! socket to the room task, which moves its datagrams. The receive
//! statistics go to the debug log when the call's media ends. Nothing here
//! allocates per packet.

use std::net::SocketAddr;
use std::time::Instant;

use rand::RngExt;
use tokio::net::UdpSocket;

use super::rtp_ports::RtpPort;
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::{ReceiveStats, RtpSender, RtpSession};
use crate::sip::sdp::NegotiatedMedia;

/// A leg's UDP socket and the lease on its port.
pub struct LegSocket {
    pub udp: UdpSocket,
    /// Declared after `udp` so that, fields dropping in order, the socket
    /// is closed before the port is free again.
    port: RtpPort,
}

impl LegSocket {
    pub fn port(&self) -> u16 {
        self.port.port()
    }

    /// Sends a datagram now without waiting (the room's path: a full
    /// socket buffer drops the packet rather than stall the room).
    pub fn try_send(&self, packet: &[u8], destination: SocketAddr) {
        let _ = self.udp.try_send_to(packet, destination);
    }
}

/// A call's media while the call task drives it.
pub struct LegMedia {
    pub socket: LegSocket,
    /// Inline, not boxed: the call task's future is on the heap already,
    /// and a separate 2.4 KB allocation per call raised the peak RSS of
    /// the CPS ramp by a third (60 to 79 MiB at 400 calls/s, measured with
    /// `cargo bench --bench load -- ramp --from 400 --to 400`). It is boxed
    /// once, when the call joins a room.
    pub rtp: RtpSession,
}

impl LegMedia {
    pub fn new(socket: UdpSocket, port: RtpPort, now: Instant) -> Self {
        let mut rng = rand::rng();
        let sender = RtpSender::new(rng.random(), rng.random(), rng.random(), 0);
        LegMedia {
            socket: LegSocket { udp: socket, port },
            rtp: RtpSession::new(now, sender),
        }
    }

    /// Takes a (re)negotiation.
    pub fn apply(&mut self, negotiated: &NegotiatedMedia, now: Instant) {
        self.rtp.apply(negotiated.session_params(), now);
    }

    /// Sends the packets that are due, taking audio from the player (the
    /// call task's pacing, while the IVR runs).
    pub async fn send_due(&mut self, now: Instant, player: &mut PromptPlayer) {
        let due = self.rtp.due(now, 3);
        if due.send == 0 && due.skip == 0 {
            return;
        }
        let codec = self.rtp.codec();
        let samples = self.rtp.frame_samples();
        // Slots we were too late for: keep prompt position and RTP
        // timestamps in step with real time.
        for _ in 0..due.skip {
            player.fill(codec, self.rtp.payload_mut(samples));
            self.rtp.skip(samples);
        }
        for _ in 0..due.send {
            let frame = player.fill(codec, self.rtp.payload_mut(samples));
            let talkspurt = frame == (Frame::Audio { first: true });
            if let Some(out) = self.rtp.write_packet(samples, talkspurt) {
                let packet = self.rtp.packet(out.len);
                if let Err(e) = self.socket.udp.send_to(packet, out.destination).await {
                    tracing::trace!(error = %e, "RTP send failed");
                }
            }
        }
    }

    /// The end of the call's media (the call ends in the IVR): what it
    /// received goes to the debug log.
    pub fn finish(self) {
        log_receive_stats(
            self.socket.port(),
            self.rtp.latched(),
            &self.rtp.receive_stats(),
        );
    }

    /// Splits the leg for a conference room: the socket for the room task,
    /// the session for the room's media core.
    pub fn into_parts(self) -> (LegSocket, Box<RtpSession>) {
        (self.socket, Box::new(self.rtp))
    }
}

/// What a leg received over its call (later, for the call record).
pub fn log_receive_stats(port: u16, latched: Option<SocketAddr>, s: &ReceiveStats) {
    tracing::debug!(
        rtp_port = port,
        latched = ?latched,
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
