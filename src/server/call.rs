//! One task per call, from INVITE to hang-up:
//!
//! 1. route the dialled number; refuse locked-out callers (403) and unknown
//!    numbers (404) before answering;
//! 2. bind an RTP port, negotiate SDP, answer, wait for the ACK;
//! 3. run the IVR (prompts paced from a monotonic clock, DTMF from RFC 4733,
//!    in-band tones and INFO), checking entered codes (PINs, dial-in codes,
//!    one-time passcodes) each under a reservation of the brute-force guard;
//! 4. on the right code, hand the leg's media to the room task and stay on
//!    as its SIP side (re-offers, INFO, BYE) until the call ends.
//!
//! It talks to the SIP task over channels and never blocks the runtime:
//! argon2 PIN hashes are checked on the blocking pool.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngExt;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::guard::{GuardService, Refused, Reservation};
use super::leg::LegMedia;
use super::room::{LegEvent, LegLink, RoomCommand, RoomConfig, RoomRegistry, LEG_EVENT_QUEUE};
use super::rtp_ports::RtpPortAllocator;
use super::sip_task::{CallCommand, CallEvent};
use crate::conference::admission::{
    self, AdmissionRules, CallAdmission, CallPlan, KnownCaller, OtpCheck, OtpTarget, Redeemed,
    Refuse, Route, Settlement,
};
use crate::conference::guard::{LockReason, Refusal, Verdict};
use crate::conference::room::{LegId, Role};
use crate::config::Config;
use crate::ivr::prompts::PromptSet;
use crate::ivr::{EnteredCode, Input, Ivr, Output};
use crate::media::dtmf::info::{parse_info, InfoError};
use crate::media::dtmf::DtmfReceiver;
use crate::media::player::PromptPlayer;
use crate::media::prompt::Prompt;
use crate::media::rtp::Received;
use crate::sip::identity::caller_user;
use crate::sip::sdp::{self, Direction, LocalMedia, NegotiatedMedia, SdpSession};
use crate::sip::ua::{CallHandle, IncomingCall, RequestId};
use crate::verify::directory::Participant;
use crate::verify::otp::Status;
use crate::verify::service::{Channels, CheckBy, ServiceError, Target, VerifyService};

/// Running out of RTP ports refuses every call until one is free: warn
/// once every ten seconds with a count, not once a call.
static NO_PORT_WARNINGS: WarnEvery = WarnEvery::new(Duration::from_secs(10));

/// A warning rate: [`WarnEvery::due`] says when the next warning is due,
/// and how many occurrences it covers.
struct WarnEvery {
    interval: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarnEvery {
    const fn new(interval: Duration) -> WarnEvery {
        WarnEvery {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one occurrence; returns the count to report when a warning
    /// is due (the first, then at most one per interval).
    fn due(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => None,
            _ => {
                let n = s.1;
                *s = (Some(now), 0);
                Some(n)
            }
        }
    }
}

/// What every call task shares.
pub struct CallEnv {
    pub config: Arc<Config>,
    /// The shipped prompts with the global overrides.
    pub prompts: PromptSet,
    /// Per conference (same index as `config.conferences`): its own prompts.
    pub conference_prompts: Vec<PromptSet>,
    pub ports: Arc<RtpPortAllocator>,
    /// Address RTP sockets bind to.
    pub rtp_ip: IpAddr,
    pub rooms: Arc<RoomRegistry>,
    /// Shared by all calls; touched a few times per call, never per packet.
    pub guard: Arc<GuardService>,
    pub next_leg: AtomicU64,
    /// Which codes admit to which conference (from the config).
    pub admission: Arc<AdmissionRules>,
    /// The one-time-passcode service (when configured).
    pub verify: Option<VerifyService>,
    /// Participants' recorded names, loaded on first use.
    pub name_prompts: Mutex<HashMap<PathBuf, Prompt>>,
}

impl CallEnv {
    fn room_config(&self, i: usize) -> Option<RoomConfig> {
        let c = self.config.conferences.get(i)?;
        Some(RoomConfig {
            name: c.name.clone(),
            rules: c.rules.clone(),
            max_talkers: c.max_talkers,
            prompts: self
                .conference_prompts
                .get(i)
                .cloned()
                .unwrap_or_else(|| self.prompts.clone()),
            inactivity_timeout: self.config.rtp.inactivity_timeout,
        })
    }
}

/// The SIP side of the call, shared by every phase.
struct Sip {
    call: CallHandle,
    call_id: String,
    cmd: mpsc::Sender<CallCommand>,
    events: mpsc::Receiver<CallEvent>,
    session: SdpSession,
    local: LocalMedia,
    pending_late_reoffer: Option<RequestId>,
}

/// What a SIP event meant for the call.
enum SipOutcome {
    Continue,
    /// New media parameters to apply.
    Media(NegotiatedMedia),
    Digit(char),
    Ended,
}

impl Sip {
    async fn reject(&self, status: u16, reason: &'static str) {
        let _ = self
            .cmd
            .send(CallCommand::Reject {
                call: self.call,
                status,
                reason,
            })
            .await;
    }

    async fn hangup(&self) {
        let _ = self.cmd.send(CallCommand::Hangup { call: self.call }).await;
    }

    async fn respond(
        &self,
        request: RequestId,
        status: u16,
        reason: &'static str,
        sdp: Option<Bytes>,
    ) {
        let _ = self
            .cmd
            .send(CallCommand::Respond {
                call: self.call,
                request,
                status,
                reason,
                sdp,
            })
            .await;
    }

    /// Handles one event of an established call.
    async fn on_event(&mut self, ev: Option<CallEvent>, started: Instant) -> SipOutcome {
        match ev {
            None => SipOutcome::Ended,
            Some(CallEvent::Ended { reason }) => {
                tracing::info!(call_id = %self.call_id, ?reason, secs = started.elapsed().as_secs_f32(), "call ended");
                SipOutcome::Ended
            }
            Some(CallEvent::Reoffer { request, offer, .. }) => match offer {
                Some(o) => {
                    let result = sdp::parse(&o).map_err(|e| e.to_string()).and_then(|o| {
                        sdp::answer(&mut self.session, &o, &self.local).map_err(|e| e.to_string())
                    });
                    match result {
                        Ok((neg, text)) => {
                            self.respond(request, 200, "OK", Some(Bytes::from(text)))
                                .await;
                            SipOutcome::Media(neg)
                        }
                        Err(e) => {
                            tracing::info!(call_id = %self.call_id, error = %e, "refusing re-offer");
                            self.respond(request, 488, "Not Acceptable Here", None)
                                .await;
                            SipOutcome::Continue
                        }
                    }
                }
                None => {
                    self.pending_late_reoffer = Some(request);
                    let offer = sdp::offer(&mut self.session, &self.local, Direction::SendRecv);
                    self.respond(request, 200, "OK", Some(Bytes::from(offer)))
                        .await;
                    SipOutcome::Continue
                }
            },
            Some(CallEvent::ReofferAck { body }) => {
                if self.pending_late_reoffer.take().is_some() {
                    let neg = body
                        .as_deref()
                        .and_then(|b| sdp::parse(b).ok())
                        .and_then(|a| sdp::accept_answer(&self.local.codecs, &a).ok());
                    if let Some(n) = neg {
                        return SipOutcome::Media(n);
                    }
                }
                SipOutcome::Continue
            }
            Some(CallEvent::Info {
                request,
                content_type,
                body,
            }) => match parse_info(&content_type, &body) {
                Ok(d) => {
                    self.respond(request, 200, "OK", None).await;
                    SipOutcome::Digit(d.key)
                }
                Err(InfoError::UnsupportedType(_)) => {
                    self.respond(request, 415, "Unsupported Media Type", None)
                        .await;
                    SipOutcome::Continue
                }
                Err(InfoError::Malformed(_)) => {
                    self.respond(request, 400, "Malformed DTMF Body", None)
                        .await;
                    SipOutcome::Continue
                }
            },
            Some(CallEvent::Confirmed { .. }) => SipOutcome::Continue,
        }
    }
}

/// Runs one call from INVITE to hang-up.
pub async fn run(
    env: Arc<CallEnv>,
    call: CallHandle,
    info: Box<IncomingCall>,
    events: mpsc::Receiver<CallEvent>,
    cmd: mpsc::Sender<CallCommand>,
) {
    let started = Instant::now();
    let call_id = info.call_id.clone();
    let route = env.config.route(info.dialed.as_deref());
    let prompts = match route {
        Route::Conference(i) => env
            .conference_prompts
            .get(i)
            .cloned()
            .unwrap_or_else(|| env.prompts.clone()),
        _ => env.prompts.clone(),
    };
    // Conferences with one-time passcodes need to know who is calling.
    let mut otp = OtpCall::default();
    let flow = match env.admission.plan(route) {
        CallPlan::Run(flow) => flow,
        CallPlan::IdentifyCaller { conference } => {
            if let Some(service) = &env.verify {
                otp.participant = identify(&env, service, &info, conference).await;
            }
            env.admission
                .flow_for_caller(conference, otp.participant.is_some())
        }
        CallPlan::Refuse(refuse) => {
            match refuse {
                Refuse::NoSuchNumber => {
                    tracing::info!(%call_id, "rejecting call: no conference for the dialled number")
                }
                _ => {
                    tracing::warn!(%call_id, "one-time passcodes are not configured: refusing the call")
                }
            }
            let _ = cmd
                .send(CallCommand::Reject {
                    call,
                    status: refuse.status(),
                    reason: refuse.reason(),
                })
                .await;
            return;
        }
    };
    let caller = env.guard.caller_of(&info);
    let source = info.flow.remote.ip();
    // Every flow that takes a code (PIN, dial-in code, passcode) refuses a
    // locked-out caller before answering.
    if admission::takes_codes(&flow) {
        let verdict = env
            .guard
            .check(&caller, source, env.admission.guard_scope(route));
        if let Err(refuse) = admission::screen(&verdict) {
            if let Verdict::LockedOut { reason, .. } = verdict {
                tracing::warn!(%call_id, caller = %caller, %source, ?reason, "refusing locked-out caller");
            }
            let _ = cmd
                .send(CallCommand::Reject {
                    call,
                    status: refuse.status(),
                    reason: refuse.reason(),
                })
                .await;
            return;
        }
    }

    let bound = env
        .ports
        .bind(env.rtp_ip)
        .and_then(|(s, lease)| Ok((UdpSocket::from_std(s)?, lease)));
    let (socket, lease) = match bound {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(%call_id, error = %e, "no RTP port for the call");
            if let Some(refused) = NO_PORT_WARNINGS.due(Instant::now()) {
                tracing::warn!(error = %e, refused, "calls refused with 503: no RTP port free (widen [rtp] port_range or lower sip.max_calls)");
            }
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
    let Ok(port) = socket.local_addr().map(|a| a.port()) else {
        return;
    };
    let mut sip = Sip {
        call,
        call_id: call_id.clone(),
        cmd,
        events,
        session: SdpSession::new(rand::rng().random::<u64>() >> 1),
        local: LocalMedia {
            addr: info.flow.local.ip(),
            port,
            codecs: env.config.rtp.codecs.clone(),
            ptime_ms: 20,
        },
        pending_late_reoffer: None,
    };
    let mut media = LegMedia::new(socket, lease, started);
    let mut dtmf = DtmfReceiver::new(env.config.dtmf_mode_for(route));

    if !answer(&env, &info, &mut sip, &mut media, &mut dtmf).await {
        media.finish();
        return;
    }
    crate::fault::check(crate::fault::Site::Call);

    let mut ivr = Ivr::new(flow);
    let known = otp.participant.as_ref().map(|p| KnownCaller {
        phone: p.phone.clone(),
        moderator: p.moderator,
    });
    let mut admission = CallAdmission::new(env.admission.clone(), route, known);
    let joined = match run_ivr(
        &env,
        &info,
        &mut admission,
        &prompts,
        &mut sip,
        &mut media,
        &mut dtmf,
        &mut ivr,
        &mut otp,
        started,
    )
    .await
    {
        IvrEnd::Over => {
            media.finish();
            return;
        }
        IvrEnd::Join(i, role) => (i, role),
    };
    run_conference(&env, &mut sip, media, dtmf, joined, started).await;
}

/// Negotiates, answers (after ringing if configured) and waits for the ACK.
/// Returns false if the call ended instead.
async fn answer(
    env: &CallEnv,
    info: &IncomingCall,
    sip: &mut Sip,
    media: &mut LegMedia,
    dtmf: &mut DtmfReceiver,
) -> bool {
    let now = Instant::now();
    let body = match &info.offer {
        Some(offer) => {
            let offer = match sdp::parse(offer) {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(call_id = %sip.call_id, error = %e, "rejecting call: malformed SDP offer");
                    sip.reject(400, "Malformed SDP Body").await;
                    return false;
                }
            };
            match sdp::answer(&mut sip.session, &offer, &sip.local) {
                Ok((neg, text)) => {
                    media.apply(&neg, now);
                    text
                }
                Err(e) => {
                    tracing::info!(call_id = %sip.call_id, error = %e, "rejecting call: no acceptable media");
                    sip.reject(488, "Not Acceptable Here").await;
                    return false;
                }
            }
        }
        // Late offer: we offer in the 200, the answer comes in the ACK.
        None => sdp::offer(&mut sip.session, &sip.local, Direction::SendRecv),
    };
    let delay = env.config.sip.answer_delay;
    if !delay.is_zero() {
        // Ringback first, like a PBX that answers after a few rings.
        let _ = sip.cmd.send(CallCommand::Ring { call: sip.call }).await;
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                ev = sip.events.recv() => match ev {
                    Some(CallEvent::Ended { reason }) => {
                        tracing::info!(call_id = %sip.call_id, ?reason, "call ended before it was answered");
                        return false;
                    }
                    Some(_) => {}
                    None => return false,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
    if sip
        .cmd
        .send(CallCommand::Answer {
            call: sip.call,
            sdp: Bytes::from(body),
        })
        .await
        .is_err()
    {
        return false;
    }
    // Wait for the ACK (the SIP layer hangs up if none comes in 64·T1).
    let mut rx = [0u8; 2048];
    loop {
        tokio::select! {
            ev = sip.events.recv() => match ev {
                Some(CallEvent::Confirmed { ack_body }) => {
                    if !media.rtp.is_negotiated() {
                        let neg = ack_body
                            .as_deref()
                            .and_then(|b| sdp::parse(b).ok())
                            .and_then(|a| sdp::accept_answer(&sip.local.codecs, &a).ok());
                        match neg {
                            Some(n) => media.apply(&n, Instant::now()),
                            None => {
                                tracing::info!(call_id = %sip.call_id, "hanging up: the ACK carried no usable SDP answer");
                                sip.hangup().await;
                                return false;
                            }
                        }
                    }
                    return true;
                }
                Some(CallEvent::Ended { reason }) => {
                    tracing::info!(call_id = %sip.call_id, ?reason, "call ended before it was confirmed");
                    return false;
                }
                Some(_) => {}
                None => return false,
            },
            r = media.socket.udp.recv_from(&mut rx) => {
                if let Ok((n, from)) = r {
                    let now = Instant::now();
                    if let Received::Audio { samples, .. } = media.rtp.on_datagram(&rx[..n], from, now, dtmf) {
                        dtmf.on_audio(now, media.rtp.decoded(samples));
                    }
                }
            }
        }
    }
}

enum IvrEnd {
    /// Hung up (or the caller did).
    Over,
    /// Right code: join conference `.0` as `.1`.
    Join(usize, Role),
}

/// Runs the IVR with prompts paced by the call task.
#[allow(clippy::too_many_arguments)]
async fn run_ivr(
    env: &Arc<CallEnv>,
    info: &IncomingCall,
    admission: &mut CallAdmission,
    prompts: &PromptSet,
    sip: &mut Sip,
    media: &mut LegMedia,
    dtmf: &mut DtmfReceiver,
    ivr: &mut Ivr,
    otp: &mut OtpCall,
    started: Instant,
) -> IvrEnd {
    let now = Instant::now();
    media.rtp.restart_pacing(now);
    let mut player = PromptPlayer::new();
    let inactivity = env.config.rtp.inactivity_timeout;
    // The guard's reservation of the code being checked, if any.
    let mut reservation: Option<Reservation> = None;
    let mut rx = [0u8; 2048];
    ivr.handle(now, Input::Answered);

    loop {
        // Keys pressed since the last round go to the IVR (never to the
        // log: they may be a PIN).
        while let Some(d) = dtmf.poll_digit() {
            tracing::debug!(call_id = %sip.call_id, method = d.method.as_str(), "key press");
            ivr.handle(d.at, Input::Digit(d.key));
        }
        while let Some(out) = ivr.poll_output() {
            match out {
                Output::Play(ids) => {
                    player.play(ids.into_iter().map(|id| prompts.get(id).clone()).collect())
                }
                Output::Enqueue(ids) => {
                    player.enqueue(ids.into_iter().map(|id| prompts.get(id).clone()).collect())
                }
                Output::StopPlayback => player.stop(),
                Output::VerifyCode(code) => {
                    admission.handle(Instant::now(), admission::Input::Code(code));
                    drive_admission(env, info, admission, &mut reservation, ivr).await;
                }
                // Sent in the background by the verification service, which
                // runs whenever a conference uses a one-time passcode flow.
                Output::SendOtp => send_otp(env, admission.route(), otp, &sip.call_id),
                Output::EnqueueCallerName => {
                    if let Some(p) = caller_name_prompt(env, otp).await {
                        player.enqueue(vec![p]);
                    }
                }
                Output::VerifyOtp(code) => {
                    admission.handle(Instant::now(), admission::Input::Passcode(code));
                    drive_admission(env, info, admission, &mut reservation, ivr).await;
                }
                Output::Join => match admission.join() {
                    Some((i, role)) => return IvrEnd::Join(i, role),
                    None => {
                        sip.hangup().await;
                        return IvrEnd::Over;
                    }
                },
                Output::Hangup => {
                    tracing::info!(call_id = %sip.call_id, secs = started.elapsed().as_secs_f32(), "hanging up: call flow finished");
                    sip.hangup().await;
                    return IvrEnd::Over;
                }
            }
        }
        let mut wake = media.rtp.next_send();
        for t in [ivr.poll_timeout(), dtmf.poll_timeout()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        let inactivity_deadline = media.rtp.inactivity_deadline(inactivity);
        if let Some(t) = inactivity_deadline {
            wake = wake.min(t);
        }
        if let Some(t) = admission.poll_timeout() {
            wake = wake.min(t);
        }
        tokio::select! {
            ev = sip.events.recv() => match sip.on_event(ev, started).await {
                SipOutcome::Ended => return IvrEnd::Over,
                SipOutcome::Media(n) => media.apply(&n, Instant::now()),
                SipOutcome::Digit(k) => dtmf.on_info(Instant::now(), k),
                SipOutcome::Continue => {}
            },
            sent = recv_otp_sent(otp) => {
                admission.handle(Instant::now(), admission::Input::PasscodeSent(sent));
                drive_admission(env, info, admission, &mut reservation, ivr).await;
            }
            r = media.socket.udp.recv_from(&mut rx) => {
                if let Ok((n, from)) = r {
                    let now = Instant::now();
                    if let Received::Audio { samples, .. } = media.rtp.on_datagram(&rx[..n], from, now, dtmf) {
                        dtmf.on_audio(now, media.rtp.decoded(samples));
                    }
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
                if admission.poll_timeout().is_some_and(|t| now >= t) {
                    admission.handle_timeout(now);
                    drive_admission(env, info, admission, &mut reservation, ivr).await;
                }
                if dtmf.poll_timeout().is_some_and(|t| now >= t) {
                    dtmf.handle_timeout(now);
                }
                if inactivity_deadline.is_some_and(|t| now >= t) {
                    tracing::info!(call_id = %sip.call_id, "hanging up: no RTP from the caller");
                    sip.hangup().await;
                    return IvrEnd::Over;
                }
            }
        }
    }
}

/// Carries out what the admission core asks for, in order, feeding each
/// answer back, until it has nothing more to do (it may still hold a
/// verdict until the guard's delay has passed: see `poll_timeout`).
/// Verdicts go to the IVR.
async fn drive_admission(
    env: &Arc<CallEnv>,
    info: &IncomingCall,
    admission: &mut CallAdmission,
    reservation: &mut Option<Reservation>,
    ivr: &mut Ivr,
) {
    while let Some(out) = admission.poll_output() {
        let answer = match out {
            admission::Output::Reserve => {
                match reserve_guess(env, info, admission.rules().guard_scope(admission.route()))
                    .await
                {
                    Some(r) => {
                        let delay = r.delay();
                        *reservation = Some(r);
                        admission::Input::Reserved { delay }
                    }
                    None => admission::Input::ReserveRefused,
                }
            }
            admission::Output::ComparePins { candidates, code } => {
                // Hashed PINs take argon2 time: off the async runtime.
                let matched = tokio::task::spawn_blocking(move || candidates.matching(&code))
                    .await
                    .unwrap_or(None);
                admission::Input::PinsCompared(matched)
            }
            admission::Output::RedeemDialin { code, reachable } => {
                admission::Input::DialinRedeemed(redeem_dialin(env, &code, reachable).await)
            }
            admission::Output::CheckPasscode { target, code } => {
                admission::Input::PasscodeChecked(check_passcode(env, target, &code).await)
            }
            admission::Output::Settle(Settlement::Succeeded { admits }) => {
                if let Some(r) = reservation.take() {
                    r.succeeded();
                }
                if let Some((i, role)) = admits {
                    let caller = env.guard.caller_of(info);
                    tracing::info!(call_id = %info.call_id, caller = %caller, source = %info.flow.remote.ip(), conference = admission.rules().name(i), ?role, "code accepted");
                }
                continue;
            }
            admission::Output::Settle(Settlement::Failed(secret)) => {
                let lock = reservation.take().and_then(|r| r.failed());
                let caller = env.guard.caller_of(info);
                let scope = admission.rules().guard_scope(admission.route());
                log_failure(info, &caller, scope, secret.as_str(), lock);
                admission::Input::FailureCounted(lock)
            }
            admission::Output::Verdict(v) => {
                ivr.handle(Instant::now(), v);
                continue;
            }
        };
        admission.handle(Instant::now(), answer);
    }
}

/// Reserves a guess with the brute-force guard: the attempt counts
/// against the caller, the address and the conference before the code is
/// compared. None (after logging why) when the guess is refused: the caller
/// hears that they are locked out.
async fn reserve_guess(
    env: &Arc<CallEnv>,
    info: &IncomingCall,
    scope: &str,
) -> Option<Reservation> {
    let caller = env.guard.caller_of(info);
    let source = info.flow.remote.ip();
    match env.guard.reserve(&caller, source, scope).await {
        Ok(r) => Some(r),
        Err(why) => {
            let why = match why {
                Refused::Guard(Refusal::Locked { until, reason }) => format!(
                    "{reason:?} locked out for {} s more",
                    until.saturating_duration_since(Instant::now()).as_secs()
                ),
                Refused::Guard(Refusal::Paced) => {
                    "trusted source over its ceiling, verdicts queued too long".to_string()
                }
                Refused::Waited => {
                    "attempts in flight did not settle in time, or the store fell behind"
                        .to_string()
                }
            };
            tracing::warn!(call_id = %info.call_id, caller = %caller, %source, conference = %scope, refused = %why, "code not checked: locked out");
            None
        }
    }
}

/// Logs what a wrong code triggered.
fn log_failure(
    info: &IncomingCall,
    caller: &str,
    scope: &str,
    what: &str,
    lock: Option<LockReason>,
) {
    let source = info.flow.remote.ip();
    tracing::warn!(call_id = %info.call_id, caller = %caller, %source, conference = %scope, "wrong {what}");
    match lock {
        Some(LockReason::Caller) | Some(LockReason::SourceIp) => {
            tracing::warn!(call_id = %info.call_id, caller = %caller, %source, reason = ?lock, "locked out after repeated wrong codes");
        }
        Some(LockReason::Conference) => {
            tracing::warn!(conference = %scope, "conference under attack: slowing its answers");
        }
        Some(LockReason::TrustedSource) => {
            tracing::warn!(%source, "trusted source over its ceiling of wrong codes: pacing its answers");
        }
        None => {}
    }
}

/// Redeems a one-time dial-in code from the web join page for one of the
/// conferences the line reaches (the admission core checks the answer
/// against the route again).
async fn redeem_dialin(
    env: &Arc<CallEnv>,
    code: &EnteredCode,
    reachable: Vec<String>,
) -> Option<Redeemed> {
    let service = env.verify.as_ref()?;
    let (redeemed, participant) = service
        .redeem_dialin(code.expose().to_string(), reachable)
        .await
        .ok()??;
    tracing::info!(participant = %participant.username, conference = %redeemed.conference, "dial-in code accepted");
    Some(Redeemed {
        conference: redeemed.conference,
        moderator: participant.moderator,
    })
}

/// One-time-passcode state of a call.
#[derive(Default)]
struct OtpCall {
    participant: Option<Participant>,
    /// The outcome of the background send: the verification id when it was
    /// delivered (or one is already pending), None when it failed.
    sent: Option<tokio::sync::oneshot::Receiver<Option<String>>>,
}

/// The known participant this call comes from, if they may join
/// conference `i`.
async fn identify(
    env: &CallEnv,
    service: &VerifyService,
    info: &IncomingCall,
    i: usize,
) -> Option<Participant> {
    let number = caller_user(info, &env.config.otp.identity.trusted_proxies)?;
    let conference = env.config.conferences.get(i)?.name.clone();
    match service.identify_caller(number).await {
        Ok(Some(p)) if p.may_join(&conference) => Some(p),
        Ok(_) => {
            tracing::info!(call_id = %info.call_id, caller = %info.from.uri_text, "caller is not a participant of this conference");
            None
        }
        Err(e) => {
            tracing::error!(call_id = %info.call_id, error = %e, "participant lookup failed");
            None
        }
    }
}

/// Starts the verification in the background (a voice delivery is a whole
/// phone call): prompts keep playing meanwhile.
fn send_otp(env: &Arc<CallEnv>, route: Route, otp: &mut OtpCall, call_id: &str) {
    let (Some(service), Some(p)) = (env.verify.clone(), otp.participant.clone()) else {
        return;
    };
    let conference = match route {
        Route::Conference(i) => env
            .config
            .conferences
            .get(i)
            .map(|c| c.otp_channels.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    otp.sent = Some(rx);
    let call_id = call_id.to_string();
    tokio::spawn(async move {
        let result = service
            .start(
                Target::Participant(Box::new(p)),
                Channels {
                    requested: None,
                    conference,
                },
            )
            .await;
        let id = match result {
            Ok(o) => Some(o.verification.id),
            // One is already pending and was sent recently enough: the
            // caller can key the code they have.
            Err(ServiceError::TooManySends {
                pending: Some(v), ..
            }) => Some(v.id),
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "one-time passcode not sent");
                None
            }
        };
        let _ = tx.send(id);
    });
}

/// Waits for the background send; pending forever when there is none.
/// The verification's id, or None when the code could not be sent.
async fn recv_otp_sent(otp: &mut OtpCall) -> Option<String> {
    let Some(rx) = otp.sent.as_mut() else {
        return std::future::pending().await;
    };
    let id = rx.await.ok().flatten();
    otp.sent = None;
    id
}

/// Asks the verification service about a keyed passcode. Anything but the
/// right code (a wrong one, one past its limits, a failed check) is a
/// failure for the guard; the admission core maps it to what the caller
/// hears.
async fn check_passcode(env: &Arc<CallEnv>, target: OtpTarget, code: &EnteredCode) -> OtpCheck {
    let Some(service) = env.verify.as_ref() else {
        return OtpCheck::Failed;
    };
    let by = match target {
        OtpTarget::Verification(id) => CheckBy::Id(id),
        OtpTarget::Destination(phone) => CheckBy::Destination(phone),
    };
    match service.check(by, code.expose().to_string()).await {
        Ok(c) if c.valid => OtpCheck::Approved,
        Ok(c) if c.verification.status == Status::Pending => OtpCheck::Wrong,
        Ok(_) => OtpCheck::Failed,
        Err(ServiceError::NotFound) => OtpCheck::Wrong,
        Err(e) => {
            tracing::error!(error = %e, "code check failed");
            OtpCheck::Failed
        }
    }
}

/// The participant's recorded name, loaded once and cached.
async fn caller_name_prompt(env: &Arc<CallEnv>, otp: &OtpCall) -> Option<Prompt> {
    let path = otp.participant.as_ref()?.name_prompt.clone()?;
    if let Some(p) = env.name_prompts.lock().ok()?.get(&path) {
        return Some(p.clone());
    }
    let load = path.clone();
    match tokio::task::spawn_blocking(move || Prompt::from_file(&load))
        .await
        .ok()?
    {
        Ok(p) => {
            if let Ok(mut cache) = env.name_prompts.lock() {
                cache.insert(path, p.clone());
            }
            Some(p)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load a participant's name recording");
            None
        }
    }
}

/// Hands the leg to the room and stays on as its SIP side.
async fn run_conference(
    env: &Arc<CallEnv>,
    sip: &mut Sip,
    media: LegMedia,
    dtmf: DtmfReceiver,
    joined: (usize, Role),
    started: Instant,
) {
    let (i, role) = joined;
    let Some(room) = env.room_config(i) else {
        sip.hangup().await;
        return;
    };
    let leg = LegId(env.next_leg.fetch_add(1, Ordering::Relaxed));
    let (events, mut leg_events) = mpsc::channel(LEG_EVENT_QUEUE);
    // Held for as long as this function runs: however it ends, dropping it
    // tells the room the leg has left.
    let (_leaving, left) = oneshot::channel::<()>();
    let (media_updates, media_rx) = watch::channel(None);
    let joined = env.rooms.join(
        &room,
        RoomCommand::Join {
            leg,
            role,
            call_id: sip.call_id.clone(),
            media: Box::new(media),
            dtmf: Box::new(dtmf),
            link: LegLink {
                left,
                media: media_rx,
                events,
            },
        },
    );
    if joined.is_err() {
        tracing::warn!(call_id = %sip.call_id, room = %room.name, "room queue full: hanging up instead of joining");
        sip.hangup().await;
        return;
    }
    loop {
        tokio::select! {
            ev = sip.events.recv() => match sip.on_event(ev, started).await {
                SipOutcome::Ended => return,
                SipOutcome::Media(negotiated) => {
                    media_updates.send_replace(Some(negotiated));
                }
                SipOutcome::Digit(key) => env.rooms.send_digit(&room.name, leg, key),
                SipOutcome::Continue => {}
            },
            le = leg_events.recv() => {
                // The room is done with the leg (or is gone): end the call.
                let (Some(LegEvent::Hangup) | None) = le;
                tracing::info!(call_id = %sip.call_id, secs = started.elapsed().as_secs_f32(), "hanging up: left the conference");
                sip.hangup().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_cover() {
        let w = WarnEvery::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(w.due(t0), Some(1));
        for i in 1..=5 {
            assert_eq!(w.due(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(w.due(t0 + Duration::from_secs(10)), Some(6));
        assert_eq!(w.due(t0 + Duration::from_secs(11)), None);
    }
}
