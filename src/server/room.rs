//! One task per conference room. It owns every joined leg's media (socket,
//! jitter buffer, DTMF receiver, prompt player) and the mixer, and does all
//! of a room's media work in one 20 ms tick: drain each leg's socket
//! without blocking, take one frame per leg from its jitter buffer, mix,
//! and send each leg its frame. One wake-up per room per 20 ms instead of
//! one per packet is what lets a core carry thousands of legs.
//!
//! Call tasks keep the SIP side: they hand a leg's media over on join
//! ([`RoomCommand::Join`]), forward re-offers and INFO digits, and are told
//! when the room is done with a leg ([`LegEvent::Hangup`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::leg::{LegMedia, Received};
use crate::conference::room::{JoinError, LegId, MenuKeys, Role, Room, RoomAction, RoomRules};
use crate::ivr::prompts::{PromptId, PromptSet};
use crate::media::dtmf::DtmfReceiver;
use crate::media::jitter::{FrameKind, JitterBuffer, JitterConfig};
use crate::media::mixer::{MixLeg, Mixer, FRAME};
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::PacketClock;
use crate::sip::sdp::NegotiatedMedia;

const TICK: Duration = Duration::from_millis(20);

/// What a call task tells its room.
pub enum RoomCommand {
    Join {
        leg: LegId,
        role: Role,
        call_id: String,
        media: Box<LegMedia>,
        dtmf: Box<DtmfReceiver>,
        events: mpsc::UnboundedSender<LegEvent>,
    },
    /// The caller hung up.
    Leave { leg: LegId },
    /// A re-INVITE/UPDATE changed the media.
    UpdateMedia {
        leg: LegId,
        negotiated: NegotiatedMedia,
    },
    /// A key from SIP INFO.
    Digit { leg: LegId, key: char },
}

/// What a room tells a call task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// The room is done with this leg (it has heard its last prompt): end
    /// the call with BYE.
    Hangup,
}

/// Settings a room runs with.
#[derive(Clone)]
pub struct RoomConfig {
    pub name: String,
    pub rules: RoomRules,
    pub max_talkers: usize,
    pub prompts: PromptSet,
    pub inactivity_timeout: Option<Duration>,
}

/// The rooms that exist, by conference name. A room task removes itself
/// when its last leg is gone; joins and that removal both happen under the
/// lock, so a join never lands in a room that is shutting down.
#[derive(Default)]
pub struct RoomRegistry {
    rooms: Mutex<HashMap<String, mpsc::UnboundedSender<RoomCommand>>>,
}

impl RoomRegistry {
    /// Sends `join` to the room for `config.name`, starting the room task
    /// if there is none.
    pub fn join(self: &Arc<Self>, config: &RoomConfig, join: RoomCommand) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let tx = rooms.entry(config.name.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = RoomTask::new(config.clone(), rx, self.clone());
            tokio::spawn(task.run());
            tx
        });
        if let Err(mpsc::error::SendError(join)) = tx.send(join) {
            // The task died (it only stops through `retire`, so this is a
            // panic): start a fresh one.
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(RoomTask::new(config.clone(), rx, self.clone()).run());
            let _ = tx.send(join);
            rooms.insert(config.name.clone(), tx);
        }
    }

    /// A command for a room that exists (leave, media update, digit).
    pub fn send(&self, name: &str, cmd: RoomCommand) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = rooms.get(name) {
            let _ = tx.send(cmd);
        }
    }

    /// Removes `name` if its queue is empty; returns whether it did (the
    /// task must then exit).
    fn retire(&self, name: &str, rx: &mpsc::UnboundedReceiver<RoomCommand>) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(name);
        true
    }

    pub fn room_count(&self) -> usize {
        self.rooms.lock().map(|r| r.len()).unwrap_or(0)
    }
}

struct Leg {
    id: LegId,
    call_id: String,
    media: Box<LegMedia>,
    dtmf: Box<DtmfReceiver>,
    jitter: JitterBuffer,
    menu: MenuKeys,
    player: PromptPlayer,
    /// Waiting for the moderator: hold music between prompts.
    hold: bool,
    playing_hold: bool,
    /// Hang up once the player is done (goodbye, conference ended, full).
    leaving: bool,
    events: mpsc::UnboundedSender<LegEvent>,
}

struct RoomTask {
    config: RoomConfig,
    room: Room,
    mixer: Mixer,
    legs: Vec<Leg>,
    /// Parallel to `legs`: the mixer wants one contiguous slice.
    mix: Vec<MixLeg>,
    clock: PacketClock,
    rx: mpsc::UnboundedReceiver<RoomCommand>,
    registry: Arc<RoomRegistry>,
    buf: Box<[u8; 2048]>,
}

impl RoomTask {
    fn new(
        config: RoomConfig,
        rx: mpsc::UnboundedReceiver<RoomCommand>,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        RoomTask {
            room: Room::new(&config.name, config.rules.clone()),
            mixer: Mixer::new(config.max_talkers),
            config,
            legs: Vec::new(),
            mix: Vec::new(),
            clock: PacketClock::new(Instant::now(), TICK),
            rx,
            registry,
            buf: Box::new([0; 2048]),
        }
    }

    async fn run(mut self) {
        tracing::info!(room = %self.config.name, "conference room opened");
        loop {
            let wake = tokio::time::Instant::from_std(self.clock.next_deadline());
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.command(c, Instant::now()),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => self.tick(Instant::now()),
            }
            if self.legs.is_empty() && self.registry.retire(&self.config.name, &self.rx) {
                break;
            }
        }
        tracing::info!(room = %self.config.name, "conference room closed");
    }

    fn index(&self, leg: LegId) -> Option<usize> {
        self.legs.iter().position(|l| l.id == leg)
    }

    fn command(&mut self, cmd: RoomCommand, now: Instant) {
        match cmd {
            RoomCommand::Join {
                leg,
                role,
                call_id,
                media,
                dtmf,
                events,
            } => {
                let codec = media.codec();
                self.legs.push(Leg {
                    id: leg,
                    call_id,
                    media,
                    dtmf,
                    jitter: JitterBuffer::new(JitterConfig::default()),
                    menu: MenuKeys::new(),
                    player: PromptPlayer::new(),
                    hold: false,
                    playing_hold: false,
                    leaving: false,
                    events,
                });
                self.mix.push(MixLeg::new(codec));
                match self.room.join(leg, role) {
                    Ok(actions) => {
                        tracing::info!(room = %self.config.name, call_id = %self.legs[self.legs.len() - 1].call_id, ?role, members = self.room.members(), "joined");
                        self.apply(actions);
                    }
                    Err(JoinError::Full) => {
                        tracing::info!(room = %self.config.name, "conference full: refusing a caller");
                        let i = self.legs.len() - 1;
                        self.legs[i].leaving = true;
                        self.play(i, &[PromptId::ConferenceFull, PromptId::Goodbye]);
                    }
                }
            }
            RoomCommand::Leave { leg } => {
                if let Some(i) = self.index(leg) {
                    self.remove(i);
                }
                let actions = self.room.leave(leg);
                self.apply(actions);
            }
            RoomCommand::UpdateMedia { leg, negotiated } => {
                if let Some(i) = self.index(leg) {
                    self.legs[i].media.apply(negotiated, now);
                    self.mix[i].codec = self.legs[i].media.codec();
                }
            }
            RoomCommand::Digit { leg, key } => {
                if let Some(i) = self.index(leg) {
                    self.legs[i].dtmf.on_info(now, key);
                }
            }
        }
    }

    fn remove(&mut self, i: usize) {
        self.legs.swap_remove(i);
        self.mix.swap_remove(i);
    }

    fn play(&mut self, i: usize, prompts: &[PromptId]) {
        let leg = &mut self.legs[i];
        leg.playing_hold = false;
        leg.player.play(
            prompts
                .iter()
                .map(|p| self.config.prompts.get(*p).clone())
                .collect(),
        );
    }

    fn apply(&mut self, actions: Vec<RoomAction>) {
        for a in actions {
            match a {
                RoomAction::Play { leg, prompts } => {
                    if let Some(i) = self.index(leg) {
                        self.play(i, &prompts);
                    }
                }
                RoomAction::Beep { prompt, except } => {
                    let beep = self.config.prompts.get(prompt).clone();
                    for leg in self
                        .legs
                        .iter_mut()
                        .filter(|l| Some(l.id) != except && !l.leaving)
                    {
                        if leg.playing_hold {
                            continue;
                        }
                        leg.player.enqueue(vec![beep.clone()]);
                    }
                }
                RoomAction::HoldMusic { leg, on } => {
                    if let Some(i) = self.index(leg) {
                        let l = &mut self.legs[i];
                        l.hold = on;
                        if !on && l.playing_hold {
                            l.player.stop();
                            l.playing_hold = false;
                        }
                    }
                }
                RoomAction::Hangup { leg, prompts } => {
                    if let Some(i) = self.index(leg) {
                        self.legs[i].leaving = true;
                        self.legs[i].hold = false;
                        self.play(i, &prompts);
                    }
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        crate::fault::check(crate::fault::Site::Room);
        let due = self.clock.due(now, 1);
        if due.send == 0 {
            return;
        }
        let mut menu_actions = Vec::new();
        for (i, leg) in self.legs.iter_mut().enumerate() {
            // Slots we were late for still move the RTP clocks on.
            if due.skip > 0 {
                leg.media.sender.skip((due.skip as usize * FRAME) as u32);
            }
            receive(leg, &mut self.buf[..], now);
            let m = &mut self.mix[i];
            let kind = leg.jitter.pop(now, &mut m.input);
            m.has_input = kind != FrameKind::Silence;
            if leg.dtmf.wants_audio() && kind == FrameKind::Audio {
                leg.dtmf.on_audio(now, &m.input);
            }
            if leg.dtmf.poll_timeout().is_some_and(|t| now >= t) {
                leg.dtmf.handle_timeout(now);
            }
            if leg.menu.poll_timeout().is_some_and(|t| now >= t) {
                leg.menu.handle_timeout(now);
            }
            while let Some(d) = leg.dtmf.poll_digit() {
                if let Some(action) = leg.menu.handle_key(now, d.key) {
                    menu_actions.push((leg.id, action));
                }
            }
            // Keys must not leak into the mix: a detected tone mutes the leg
            // (RFC 4733 keys carry no audio to begin with).
            m.may_talk = self.room.may_talk(leg.id) && !leg.dtmf.tone_present() && !leg.leaving;
            m.codec = leg.media.codec();
        }
        for (leg, action) in menu_actions {
            let actions = self.room.menu(leg, action);
            self.apply(actions);
        }

        self.mixer.mix(&mut self.mix);

        let mut finished = Vec::new();
        for (i, leg) in self.legs.iter_mut().enumerate() {
            let codec = leg.media.codec();
            if !leg.player.is_playing() && leg.hold && !leg.leaving {
                leg.player
                    .play(vec![self.config.prompts.get(PromptId::HoldMusic).clone()]);
                leg.playing_hold = true;
            }
            let talkspurt = if leg.player.is_playing() {
                leg.player.fill(codec, &mut leg.media.payload[..FRAME])
                    == Frame::Audio { first: true }
            } else if self.room.hears_others(leg.id) {
                leg.media.payload[..FRAME].copy_from_slice(&self.mix[i].output);
                false
            } else {
                leg.media.payload[..FRAME].fill(codec.silence_byte());
                false
            };
            leg.media.try_send_payload(FRAME, talkspurt);
            if leg.player.take_finished() {
                leg.playing_hold = false;
                if leg.leaving {
                    finished.push(leg.id);
                }
            }
            let silent_too_long = leg
                .media
                .inactivity_deadline(self.config.inactivity_timeout)
                .is_some_and(|t| now >= t);
            if silent_too_long && !leg.leaving {
                tracing::info!(room = %self.config.name, call_id = %leg.call_id, "no RTP from a participant: hanging up");
                finished.push(leg.id);
            }
        }
        for id in finished {
            if let Some(i) = self.index(id) {
                let _ = self.legs[i].events.send(LegEvent::Hangup);
                self.remove(i);
            }
            let actions = self.room.leave(id);
            self.apply(actions);
        }
    }
}

/// Drains a leg's socket into its jitter buffer (and DTMF receiver).
fn receive(leg: &mut Leg, buf: &mut [u8], now: Instant) {
    // Bounded: a flood cannot keep the room in this loop.
    for _ in 0..64 {
        let Ok((n, from)) = leg.media.socket.try_recv_from(buf) else {
            return;
        };
        if let Received::Audio {
            ssrc,
            sequence,
            timestamp,
            samples,
        } = leg.media.on_datagram(&buf[..n], from, now, &mut leg.dtmf)
        {
            leg.jitter.push(
                now,
                ssrc,
                sequence,
                timestamp,
                &leg.media.decoded[..samples],
            );
        }
    }
}
