//! The two delivery channels that go through the SIP trunk:
//!
//! - `sip-message`: an RFC 3428 MESSAGE with the code as text (SMS over SIP,
//!   which many trunks accept);
//! - `voice`: a call to the participant that reads the code digit by digit,
//!   twice ("Your verification code is 4 8 2 9 1 3. Again, your code is
//!   ..."), with the shipped digit prompts.
//!
//! They implement the same [`CodeSender`] as the webhook and email
//! channels. They are created before the SIP task exists (the verification
//! service needs them at start-up), so the trunk and media parts are bound
//! later through [`TrunkLink`].

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::leg::LegMedia;
use super::rtp_ports::RtpPortAllocator;
use super::sip_task::CallEvent;
use super::trunk::{OutboundCallEvent, SipHandle};
use crate::ivr::prompts::{PromptId, PromptSet};
use crate::media::dtmf::{DtmfMode, DtmfReceiver};
use crate::media::g711::Codec;
use crate::media::player::PromptPlayer;
use crate::sip::sdp::{self, Direction, LocalMedia, SdpSession};
use crate::verify::sender::{CodeSender, DeliveryOutcome, DeliveryRequest};

/// What the trunk channels need, bound once the server is up.
pub struct TrunkParts {
    pub sip: SipHandle,
    pub ports: Arc<RtpPortAllocator>,
    pub rtp_ip: IpAddr,
    pub prompts: PromptSet,
    pub codecs: Vec<Codec>,
}

/// Shared, late-bound access to [`TrunkParts`].
#[derive(Clone, Default)]
pub struct TrunkLink(Arc<OnceLock<TrunkParts>>);

impl TrunkLink {
    pub fn bind(&self, parts: TrunkParts) {
        let _ = self.0.set(parts);
    }

    fn get(&self) -> Option<&TrunkParts> {
        self.0.get()
    }
}

fn not_ready() -> DeliveryOutcome {
    DeliveryOutcome::Failed {
        reason: "the SIP trunk is not ready".into(),
        retryable: true,
    }
}

/// `sip-message`: the code as a text MESSAGE through the trunk.
pub struct SipMessageSender {
    pub link: TrunkLink,
}

impl CodeSender for SipMessageSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(async move {
            let Some(parts) = self.link.get() else {
                return not_ready();
            };
            let Some(to) = req.to_phone.as_deref() else {
                return DeliveryOutcome::Failed {
                    reason: "no phone number to send a MESSAGE to".into(),
                    retryable: false,
                };
            };
            let body = format!("Your pinbridge verification code is {}", req.code.expose());
            match parts
                .sip
                .send_message(to, "text/plain;charset=UTF-8", Bytes::from(body))
                .await
            {
                Ok(o) if o.delivered() => DeliveryOutcome::Delivered {
                    detail: format!("MESSAGE accepted by the trunk ({} {})", o.status, o.reason),
                },
                Ok(o) => DeliveryOutcome::Failed {
                    reason: format!("the trunk refused the MESSAGE ({} {})", o.status, o.reason),
                    retryable: o.status == 408 || o.status >= 500,
                },
                Err(e) => DeliveryOutcome::Failed {
                    reason: e.to_string(),
                    retryable: true,
                },
            }
        })
    }
}

/// `voice`: calls the participant and reads the code twice.
pub struct VoiceSender {
    pub link: TrunkLink,
}

/// How long a voice delivery may take in all (ringing, then ~15 s of
/// prompts).
const VOICE_DEADLINE: Duration = Duration::from_secs(90);

impl CodeSender for VoiceSender {
    fn send<'a>(
        &'a self,
        req: &'a DeliveryRequest,
    ) -> Pin<Box<dyn Future<Output = DeliveryOutcome> + Send + 'a>> {
        Box::pin(async move {
            let Some(parts) = self.link.get() else {
                return not_ready();
            };
            let Some(to) = req.to_phone.as_deref() else {
                return DeliveryOutcome::Failed {
                    reason: "no phone number to call".into(),
                    retryable: false,
                };
            };
            match tokio::time::timeout(VOICE_DEADLINE, read_code(parts, to, req.code.expose()))
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => DeliveryOutcome::Failed {
                    reason: "the voice call took too long".into(),
                    retryable: true,
                },
            }
        })
    }
}

/// The prompts of a voice delivery: the code twice, then goodbye.
pub fn code_prompts(code: &str) -> Vec<PromptId> {
    let digits: Vec<PromptId> = code
        .bytes()
        .filter(u8::is_ascii_digit)
        .filter_map(|b| PromptId::digit(b - b'0'))
        .collect();
    let mut out = vec![PromptId::YourCodeIs];
    out.extend(&digits);
    out.push(PromptId::RepeatCode);
    out.extend(&digits);
    out.push(PromptId::Goodbye);
    out
}

async fn read_code(parts: &TrunkParts, to: &str, code: &str) -> DeliveryOutcome {
    let failed = |reason: String, retryable: bool| DeliveryOutcome::Failed { reason, retryable };
    let bound = parts
        .ports
        .bind(parts.rtp_ip)
        .and_then(|(s, lease)| Ok((UdpSocket::from_std(s)?, lease)));
    let (socket, lease) = match bound {
        Ok(b) => b,
        Err(e) => return failed(format!("no RTP port: {e}"), true),
    };
    let Ok(port) = socket.local_addr().map(|a| a.port()) else {
        return failed("no RTP port".into(), true);
    };
    let addr = parts.sip.local_ip_for_trunk().unwrap_or(parts.rtp_ip);
    let local = LocalMedia {
        addr,
        port,
        codecs: parts.codecs.clone(),
        ptime_ms: 20,
    };
    let mut session = SdpSession::new(rand::random::<u64>() >> 1);
    let offer = sdp::offer(&mut session, &local, Direction::SendRecv);
    let mut call = match parts.sip.place_call(to, Bytes::from(offer)).await {
        Ok(c) => c,
        Err(e) => return failed(e.to_string(), true),
    };
    // Ringing until answered or failed.
    let answer = loop {
        match call.next_event().await {
            Some(OutboundCallEvent::Ringing { .. }) => {}
            Some(OutboundCallEvent::Answered { sdp }) => break sdp,
            Some(OutboundCallEvent::Failed { status, reason }) => {
                return failed(
                    format!("the call was not answered ({status} {reason})"),
                    status == 408 || status == 480 || status >= 500,
                )
            }
            Some(OutboundCallEvent::InCall(_)) => {}
            None => return failed("the call ended before it was answered".into(), true),
        }
    };
    let negotiated = answer
        .as_deref()
        .and_then(|b| sdp::parse(b).ok())
        .and_then(|a| sdp::accept_answer(&local.codecs, &a).ok());
    let Some(negotiated) = negotiated else {
        call.hangup().await;
        return failed("the answer had no usable SDP".into(), false);
    };
    let now = Instant::now();
    let mut media = LegMedia::new(socket, lease, now);
    media.apply(&negotiated, now);
    let mut dtmf = DtmfReceiver::new(DtmfMode::Rfc4733);
    let mut player = PromptPlayer::new();
    let prompts = code_prompts(code);
    // The code was heard once when the "again" prompt starts.
    let first_reading = prompts
        .iter()
        .position(|p| *p == PromptId::RepeatCode)
        .unwrap_or(prompts.len());
    let first_len: Duration = prompts[..first_reading]
        .iter()
        .map(|p| parts.prompts.get(*p).duration())
        .sum();
    player.play(
        prompts
            .into_iter()
            .map(|p| parts.prompts.get(p).clone())
            .collect(),
    );
    let started = Instant::now();
    let mut rx = [0u8; 2048];
    loop {
        tokio::select! {
            ev = call.next_event() => match ev {
                Some(OutboundCallEvent::InCall(CallEvent::Ended { .. })) | None => {
                    // The callee hung up: delivered if they heard it once.
                    return if started.elapsed() >= first_len {
                        DeliveryOutcome::Delivered { detail: "the code was read once; the callee hung up".into() }
                    } else {
                        failed("the callee hung up before the code was read".into(), true)
                    };
                }
                _ => {}
            },
            r = media.socket.udp.recv_from(&mut rx) => {
                if let Ok((n, from)) = r {
                    // Read for the return address and the statistics only.
                    media.rtp.on_datagram(&rx[..n], from, Instant::now(), &mut dtmf);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(media.rtp.next_send())) => {
                media.send_due(Instant::now(), &mut player).await;
                if player.take_finished() {
                    call.hangup().await;
                    return DeliveryOutcome::Delivered { detail: format!("the code was read twice to {}", crate::verify::delivery::masked(to)) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_read_twice_then_goodbye() {
        let p = code_prompts("402");
        assert_eq!(
            p,
            vec![
                PromptId::YourCodeIs,
                PromptId::Digit4,
                PromptId::Digit0,
                PromptId::Digit2,
                PromptId::RepeatCode,
                PromptId::Digit4,
                PromptId::Digit0,
                PromptId::Digit2,
                PromptId::Goodbye
            ]
        );
    }
}
