//! One task per call: it owns the call's RTP socket, negotiates SDP, paces
//! the outgoing RTP stream from a monotonic clock, watches for RTP
//! inactivity and runs the IVR machine. It talks to the SIP task over
//! channels and never blocks; nothing in the per-packet path allocates.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngExt;
use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::rtp_ports::RtpPortAllocator;
use super::sip_task::{CallCommand, CallEvent};
use crate::config::Config;
use crate::ivr::prompts::PromptSet;
use crate::ivr::{Flow, Input, Ivr, Output};
use crate::media::g711::Codec;
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::{PacketClock, RtpSender, MAX_PACKET};
use crate::sip::sdp::{self, Direction, LocalMedia, NegotiatedMedia, SdpSession};
use crate::sip::ua::{CallHandle, IncomingCall, RequestId};

/// What every call task shares.
pub struct CallEnv {
    pub config: Arc<Config>,
    pub prompts: PromptSet,
    pub ports: RtpPortAllocator,
    /// Address RTP sockets bind to.
    pub rtp_ip: IpAddr,
}

/// The send side and receive bookkeeping of one call's RTP stream.
struct Media {
    socket: UdpSocket,
    negotiated: Option<NegotiatedMedia>,
    sender: RtpSender,
    clock: PacketClock,
    /// Source of the caller's RTP once it arrives (symmetric RTP: we answer
    /// to where their packets come from, which works behind NAT).
    latched: Option<SocketAddr>,
    last_rx: Instant,
    /// The next packet starts a talkspurt (marker bit).
    marker_pending: bool,
    payload: [u8; 480],
    packet: [u8; MAX_PACKET],
}

impl Media {
    fn new(socket: UdpSocket, now: Instant) -> Self {
        let mut rng = rand::rng();
        Media {
            socket,
            negotiated: None,
            sender: RtpSender::new(rng.random(), rng.random(), rng.random(), 0),
            clock: PacketClock::new(now, Duration::from_millis(20)),
            latched: None,
            last_rx: now,
            marker_pending: true,
            payload: [0; 480],
            packet: [0; MAX_PACKET],
        }
    }

    fn apply(&mut self, neg: NegotiatedMedia, now: Instant) {
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

    fn codec(&self) -> Codec {
        self.negotiated
            .as_ref()
            .map(|n| n.codec)
            .unwrap_or(Codec::Pcmu)
    }

    fn frame_samples(&self) -> usize {
        self.negotiated
            .as_ref()
            .map(|n| n.ptime_ms as usize * 8)
            .unwrap_or(160)
            .min(480)
    }

    fn destination(&self) -> Option<SocketAddr> {
        let n = self.negotiated.as_ref()?;
        if !n.local_direction.sends() {
            return None;
        }
        self.latched.or(n.remote_rtp)
    }

    /// Does the peer send us media (so silence means it is gone)?
    fn expects_rtp(&self) -> bool {
        self.negotiated
            .as_ref()
            .is_some_and(|n| n.local_direction.receives())
    }

    /// Sends the packets that are due, taking audio from the player.
    async fn send_due(&mut self, now: Instant, player: &mut PromptPlayer) {
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
            let Some(dest) = self.destination() else {
                self.sender.skip(samples as u32);
                self.marker_pending = true;
                continue;
            };
            let marker =
                std::mem::take(&mut self.marker_pending) || frame == Frame::Audio { first: true };
            let Some(len) = self.sender.write_packet(
                &self.payload[..samples],
                samples as u32,
                marker,
                &mut self.packet,
            ) else {
                continue;
            };
            if let Err(e) = self.socket.send_to(&self.packet[..len], dest).await {
                tracing::trace!(error = %e, "RTP send failed");
            }
        }
    }

    /// Looks at a received datagram: RTP from the peer refreshes the
    /// inactivity timer and latches the return address.
    fn on_datagram(&mut self, len: usize, from: SocketAddr, buf: &[u8], now: Instant) {
        let Some(n) = &self.negotiated else { return };
        let Ok(rtp) = RtpReader::new(&buf[..len]) else {
            return;
        };
        let pt = rtp.payload_type();
        // RTCP multiplexed on the RTP port has "payload types" 72–76.
        if (72..=76).contains(&pt) {
            return;
        }
        if pt != n.codec_pt
            && Some(pt) != n.telephone_event_pt
            && pt != Codec::Pcmu.payload_type()
            && pt != Codec::Pcma.payload_type()
        {
            return;
        }
        self.last_rx = now;
        if self.latched.is_none() {
            if n.remote_rtp != Some(from) {
                tracing::debug!(sdp = ?n.remote_rtp, actual = %from, "RTP arrives from another address; answering there");
            }
            self.latched = Some(from);
        }
    }
}

/// Runs one call from INVITE to hang-up.
pub async fn run(
    env: Arc<CallEnv>,
    call: CallHandle,
    info: Box<IncomingCall>,
    mut events: mpsc::Receiver<CallEvent>,
    cmd: mpsc::Sender<CallCommand>,
) {
    let started = Instant::now();
    let call_id = info.call_id.clone();
    let socket = match env.ports.bind(env.rtp_ip).and_then(UdpSocket::from_std) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%call_id, error = %e, "no RTP port for the call");
            let _ = cmd
                .send(CallCommand::Reject {
                    call,
                    status: 503,
                    reason: "No RTP Port Available",
                })
                .await;
            return;
        }
    };
    let port = match socket.local_addr() {
        Ok(a) => a.port(),
        Err(_) => return,
    };
    let local = LocalMedia {
        addr: info.flow.local.ip(),
        port,
        codecs: env.config.rtp.codecs.clone(),
        ptime_ms: 20,
    };
    let mut session = SdpSession::new(rand::rng().random::<u64>() >> 1);
    let mut media = Media::new(socket, started);

    let body = match &info.offer {
        Some(offer) => {
            let offer = match sdp::parse(offer) {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(%call_id, error = %e, "rejecting call: malformed SDP offer");
                    let _ = cmd
                        .send(CallCommand::Reject {
                            call,
                            status: 400,
                            reason: "Malformed SDP Body",
                        })
                        .await;
                    return;
                }
            };
            match sdp::answer(&mut session, &offer, &local) {
                Ok((neg, text)) => {
                    media.apply(neg, started);
                    text
                }
                Err(e) => {
                    tracing::info!(%call_id, error = %e, "rejecting call: no acceptable media");
                    let _ = cmd
                        .send(CallCommand::Reject {
                            call,
                            status: 488,
                            reason: "Not Acceptable Here",
                        })
                        .await;
                    return;
                }
            }
        }
        // Late offer: we offer in the 200, the answer comes in the ACK.
        None => sdp::offer(&mut session, &local, Direction::SendRecv),
    };
    let delay = env.config.sip.answer_delay;
    if !delay.is_zero() {
        // Ringback first, like a PBX that answers after a few rings.
        let _ = cmd.send(CallCommand::Ring { call }).await;
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(CallEvent::Ended { reason }) => {
                        tracing::info!(%call_id, ?reason, "call ended before it was answered");
                        return;
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
    if cmd
        .send(CallCommand::Answer {
            call,
            sdp: Bytes::from(body),
        })
        .await
        .is_err()
    {
        return;
    }

    let mut rx = [0u8; 2048];
    // Wait for the ACK (the SIP layer hangs up if none comes in 64·T1).
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(CallEvent::Confirmed { ack_body }) => {
                    if media.negotiated.is_none() {
                        let neg = ack_body
                            .as_deref()
                            .and_then(|b| sdp::parse(b).ok())
                            .and_then(|a| sdp::accept_answer(&local.codecs, &a).ok());
                        match neg {
                            Some(n) => media.apply(n, Instant::now()),
                            None => {
                                tracing::info!(%call_id, "hanging up: the ACK carried no usable SDP answer");
                                let _ = cmd.send(CallCommand::Hangup { call }).await;
                                return;
                            }
                        }
                    }
                    break;
                }
                Some(CallEvent::Ended { reason }) => {
                    tracing::info!(%call_id, ?reason, "call ended before it was confirmed");
                    return;
                }
                Some(_) => {}
                None => return,
            },
            r = media.socket.recv_from(&mut rx) => {
                if let Ok((n, from)) = r {
                    media.on_datagram(n, from, &rx, Instant::now());
                }
            }
        }
    }

    let now = Instant::now();
    media.clock.restart(
        now,
        Duration::from_millis(u64::from(
            media.negotiated.as_ref().map(|n| n.ptime_ms).unwrap_or(20),
        )),
    );
    media.last_rx = now;
    let mut player = PromptPlayer::new();
    let mut ivr = Ivr::new(Flow::Greeting);
    ivr.handle(now, Input::Answered);
    let inactivity = env.config.rtp.inactivity_timeout;
    let mut pending_late_reoffer: Option<RequestId> = None;

    loop {
        // Act on what the IVR decided.
        while let Some(out) = ivr.poll_output() {
            match out {
                Output::Play(ids) => player.play(
                    ids.into_iter()
                        .map(|id| env.prompts.get(id).clone())
                        .collect(),
                ),
                Output::Enqueue(ids) => player.enqueue(
                    ids.into_iter()
                        .map(|id| env.prompts.get(id).clone())
                        .collect(),
                ),
                Output::StopPlayback => player.stop(),
                Output::VerifyCode(_) | Output::Join => {}
                Output::Hangup => {
                    tracing::info!(%call_id, secs = started.elapsed().as_secs_f32(), "hanging up: call flow finished");
                    let _ = cmd.send(CallCommand::Hangup { call }).await;
                    return;
                }
            }
        }
        let mut wake = media.clock.next_deadline();
        if let Some(t) = ivr.poll_timeout() {
            wake = wake.min(t);
        }
        let inactivity_deadline = inactivity
            .filter(|_| media.expects_rtp())
            .map(|d| media.last_rx + d);
        if let Some(t) = inactivity_deadline {
            wake = wake.min(t);
        }
        tokio::select! {
            ev = events.recv() => match ev {
                None => return,
                Some(CallEvent::Ended { reason }) => {
                    tracing::info!(%call_id, ?reason, secs = started.elapsed().as_secs_f32(), "call ended");
                    return;
                }
                Some(CallEvent::Reoffer { request, offer, .. }) => {
                    let now = Instant::now();
                    let (status, reason, sdp) = match offer {
                        Some(o) => match sdp::parse(&o).map_err(|e| e.to_string()).and_then(|o| sdp::answer(&mut session, &o, &local).map_err(|e| e.to_string())) {
                            Ok((neg, text)) => {
                                media.apply(neg, now);
                                (200, "OK", Some(Bytes::from(text)))
                            }
                            Err(e) => {
                                tracing::info!(%call_id, error = %e, "refusing re-offer");
                                (488, "Not Acceptable Here", None)
                            }
                        },
                        None => {
                            pending_late_reoffer = Some(request);
                            (200, "OK", Some(Bytes::from(sdp::offer(&mut session, &local, Direction::SendRecv))))
                        }
                    };
                    let _ = cmd.send(CallCommand::Respond { call, request, status, reason, sdp }).await;
                }
                Some(CallEvent::ReofferAck { body }) => {
                    if pending_late_reoffer.take().is_some() {
                        if let Some(n) = body.as_deref().and_then(|b| sdp::parse(b).ok()).and_then(|a| sdp::accept_answer(&local.codecs, &a).ok()) {
                            media.apply(n, Instant::now());
                        }
                    }
                }
                Some(CallEvent::Info { request, .. }) => {
                    let _ = cmd.send(CallCommand::Respond { call, request, status: 200, reason: "OK", sdp: None }).await;
                }
                Some(CallEvent::Confirmed { .. }) => {}
            },
            r = media.socket.recv_from(&mut rx) => {
                if let Ok((n, from)) = r {
                    media.on_datagram(n, from, &rx, Instant::now());
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                media.send_due(now, &mut player).await;
                if player.take_finished() {
                    ivr.handle(now, Input::PlaybackFinished);
                }
                if ivr.poll_timeout().is_some_and(|t| now >= t) {
                    ivr.handle(now, Input::Timer);
                }
                if inactivity_deadline.is_some_and(|t| now >= t) {
                    tracing::info!(%call_id, "hanging up: no RTP from the caller");
                    let _ = cmd.send(CallCommand::Hangup { call }).await;
                    return;
                }
            }
        }
    }
}
