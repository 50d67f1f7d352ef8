//! A conference room's media, sans I/O: every joined leg's RTP session,
//! jitter buffer, DTMF receiver, menu keys and prompt player, the mixer,
//! and the [`Room`] rules that decide who talks and who hears. The room
//! task (server/room.rs) owns the sockets and the timer; it hands in each
//! datagram with [`RoomMedia::handle_packet`], calls [`RoomMedia::tick`]
//! when [`RoomMedia::poll_timeout`] comes, sends what
//! [`RoomMedia::poll_transmit`] gives it, and carries out
//! [`RoomMedia::poll_event`]s (a leg the room is done with).
//!
//! One tick does all of a room's media work for 20 ms: take one frame per
//! leg from its jitter buffer, feed the DTMF detector and the menu keys,
//! mix (each leg hears the loudest talkers but itself), then give each leg
//! its frame — a prompt, hold music, the mix or silence — as one RTP
//! packet. One wake-up per room per 20 ms instead of one per packet is
//! what lets a core carry thousands of legs. Nothing here reads a clock or
//! allocates per packet.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::room::{JoinError, LegId, MenuKeys, Role, Room, RoomAction, RoomRules};
use crate::ivr::prompts::{PromptId, PromptSet};
use crate::media::dtmf::DtmfReceiver;
use crate::media::jitter::{FrameKind, JitterBuffer, JitterConfig};
use crate::media::mixer::{MixLeg, Mixer, FRAME};
use crate::media::player::{Frame, PromptPlayer};
use crate::media::rtp::{Outgoing, PacketClock, ReceiveStats, Received, RtpSession, SessionParams};

/// How often the room mixes and sends: one 20 ms frame per leg.
pub const TICK: Duration = Duration::from_millis(20);

/// Settings a room runs with.
#[derive(Clone)]
pub struct RoomConfig {
    pub name: String,
    pub rules: RoomRules,
    pub max_talkers: usize,
    pub prompts: PromptSet,
    pub inactivity_timeout: Option<Duration>,
}

/// A packet for the room task to send from `leg`'s socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub leg: LegId,
    pub destination: SocketAddr,
    pub contents: &'a [u8],
}

/// Something the room task must carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// The leg is out of the room's media: close its socket. With
    /// `hang_up` the room is done with a call that is still up (it heard
    /// its last prompt, or sent no RTP for too long): end it with BYE.
    /// `received` is what the leg's RTP session received over the call.
    LegRemoved {
        leg: LegId,
        hang_up: bool,
        latched: Option<SocketAddr>,
        received: ReceiveStats,
    },
}

struct MediaLeg {
    id: LegId,
    call_id: String,
    rtp: Box<RtpSession>,
    dtmf: Box<DtmfReceiver>,
    jitter: JitterBuffer,
    menu: MenuKeys,
    player: PromptPlayer,
    /// Waiting for the moderator: hold music between prompts.
    hold: bool,
    playing_hold: bool,
    /// Hang up once the player is done (goodbye, conference ended, full).
    leaving: bool,
    /// Out of the room; its media goes at the start of the next tick,
    /// after the room task has sent its last packet.
    done: bool,
    /// The packet this tick wrote, until the room task takes it.
    transmit: Option<Outgoing>,
}

pub struct RoomMedia {
    config: RoomConfig,
    room: Room,
    mixer: Mixer,
    legs: Vec<MediaLeg>,
    /// Parallel to `legs`: the mixer wants one contiguous slice.
    mix: Vec<MixLeg>,
    /// Where each leg is in `legs`.
    index: HashMap<LegId, usize>,
    clock: PacketClock,
    /// Where [`poll_transmit`](Self::poll_transmit) looks next.
    next_transmit: usize,
    events: VecDeque<RoomEvent>,
    /// Menu commands of one tick (kept to reuse its allocation).
    menu_actions: Vec<(LegId, super::room::MenuAction)>,
}

impl RoomMedia {
    /// An empty room whose first tick is due at `now`.
    pub fn new(config: RoomConfig, now: Instant) -> Self {
        RoomMedia {
            room: Room::new(&config.name, config.rules.clone()),
            mixer: Mixer::new(config.max_talkers),
            config,
            legs: Vec::new(),
            mix: Vec::new(),
            index: HashMap::new(),
            clock: PacketClock::new(now, TICK),
            next_transmit: 0,
            events: VecDeque::new(),
            menu_actions: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// No leg's media is here.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// A caller who passed admission joins with `role`, bringing the RTP
    /// session and DTMF receiver of its call. A full room plays "full" and
    /// "goodbye" to a participant and then removes it (with `hang_up`).
    /// A leg that is already here is refused (and `false` returned): its
    /// id was reused, which the server never does.
    pub fn join(
        &mut self,
        leg: LegId,
        role: Role,
        call_id: String,
        rtp: Box<RtpSession>,
        dtmf: Box<DtmfReceiver>,
    ) -> bool {
        if self.index.contains_key(&leg) {
            return false;
        }
        let codec = rtp.codec();
        self.index.insert(leg, self.legs.len());
        self.legs.push(MediaLeg {
            id: leg,
            call_id,
            rtp,
            dtmf,
            jitter: JitterBuffer::new(JitterConfig::default()),
            menu: MenuKeys::new(),
            player: PromptPlayer::new(),
            hold: false,
            playing_hold: false,
            leaving: false,
            done: false,
            transmit: None,
        });
        self.mix.push(MixLeg::new(codec));
        match self.room.join(leg, role) {
            Ok(actions) => {
                if let Some(l) = self.legs.last() {
                    tracing::info!(room = %self.config.name, call_id = %l.call_id, ?role, members = self.room.members(), "joined");
                }
                self.apply(actions);
            }
            Err(JoinError::Full) => {
                tracing::info!(room = %self.config.name, "conference full: refusing a caller");
                let i = self.legs.len() - 1;
                if let Some(l) = self.legs.get_mut(i) {
                    l.leaving = true;
                }
                self.play(i, &[PromptId::ConferenceFull, PromptId::Goodbye]);
            }
        }
        true
    }

    /// The leg's call has ended: it leaves the room (the others hear the
    /// leave beep) and its media is removed (without `hang_up`).
    pub fn leave(&mut self, leg: LegId) {
        if self.remove(leg, false) {
            let actions = self.room.leave(leg);
            self.apply(actions);
        }
    }

    /// A re-offer negotiated new media for the leg.
    pub fn renegotiate(&mut self, leg: LegId, params: SessionParams, now: Instant) {
        if let Some(l) = self.leg_mut(leg) {
            l.rtp.apply(params, now);
        }
    }

    /// A key press that came by SIP INFO.
    pub fn handle_info_digit(&mut self, leg: LegId, key: char, now: Instant) {
        if let Some(l) = self.leg_mut(leg) {
            l.dtmf.on_info(now, key);
        }
    }

    /// A datagram that arrived on `leg`'s socket from `from` at `now`:
    /// audio goes into the leg's jitter buffer, telephone-events to its
    /// DTMF receiver; anything else is only counted.
    pub fn handle_packet(&mut self, leg: LegId, datagram: &[u8], from: SocketAddr, now: Instant) {
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        if let Received::Audio {
            ssrc,
            sequence,
            timestamp,
            samples,
        } = l.rtp.on_datagram(datagram, from, now, &mut l.dtmf)
        {
            l.jitter
                .push(now, ssrc, sequence, timestamp, l.rtp.decoded(samples));
        }
    }

    /// When the next tick is due.
    pub fn poll_timeout(&self) -> Instant {
        self.clock.next_deadline()
    }

    /// Mixes and sends one frame per leg if a tick is due at `now` (late
    /// ticks are skipped, and move the legs' RTP clocks on); afterwards
    /// [`poll_transmit`](Self::poll_transmit) gives the packets and
    /// [`poll_event`](Self::poll_event) the legs that are done.
    pub fn tick(&mut self, now: Instant) {
        crate::fault::check(crate::fault::Site::Room);
        let due = self.clock.due(now, 1);
        if due.send == 0 {
            return;
        }
        self.next_transmit = 0;
        self.remove_done();
        self.listen(now, due.skip);
        let mut menu_actions = std::mem::take(&mut self.menu_actions);
        for (leg, action) in menu_actions.drain(..) {
            let actions = self.room.menu(leg, action);
            self.apply(actions);
        }
        self.menu_actions = menu_actions;
        self.mixer.mix(&mut self.mix);
        self.speak(now);
    }

    /// The next packet to send, until the tick's are all taken.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        let i = (self.next_transmit..self.legs.len())
            .find(|&i| self.legs.get(i).is_some_and(|l| l.transmit.is_some()))?;
        self.next_transmit = i + 1;
        let leg = self.legs.get_mut(i)?;
        let out = leg.transmit.take()?;
        let leg = &*leg;
        Some(Transmit {
            leg: leg.id,
            destination: out.destination,
            contents: leg.rtp.packet(out.len),
        })
    }

    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut MediaLeg> {
        let i = *self.index.get(&leg)?;
        self.legs.get_mut(i)
    }

    /// Takes the leg's media out of the room (not its membership: callers
    /// do that); returns whether it was here.
    fn remove(&mut self, leg: LegId, hang_up: bool) -> bool {
        let Some(i) = self.index.remove(&leg) else {
            return false;
        };
        if i >= self.legs.len() {
            return false;
        }
        let gone = self.legs.swap_remove(i);
        self.mix.swap_remove(i);
        if let Some(moved) = self.legs.get(i) {
            self.index.insert(moved.id, i);
        }
        // The leg that took its place may have a packet waiting.
        self.next_transmit = self.next_transmit.min(i);
        self.events.push_back(RoomEvent::LegRemoved {
            leg,
            hang_up,
            latched: gone.rtp.latched(),
            received: gone.rtp.receive_stats(),
        });
        true
    }

    fn play(&mut self, i: usize, prompts: &[PromptId]) {
        let Some(leg) = self.legs.get_mut(i) else {
            return;
        };
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
                    if let Some(&i) = self.index.get(&leg) {
                        self.play(i, &prompts);
                    }
                }
                RoomAction::Beep { prompt, except } => {
                    let beep = self.config.prompts.get(prompt).clone();
                    for leg in self
                        .legs
                        .iter_mut()
                        .filter(|l| Some(l.id) != except && !l.leaving && !l.playing_hold)
                    {
                        leg.player.enqueue(vec![beep.clone()]);
                    }
                }
                RoomAction::HoldMusic { leg, on } => {
                    if let Some(l) = self.leg_mut(leg) {
                        l.hold = on;
                        if !on && l.playing_hold {
                            l.player.stop();
                            l.playing_hold = false;
                        }
                    }
                }
                RoomAction::Hangup { leg, prompts } => {
                    if let Some(&i) = self.index.get(&leg) {
                        if let Some(l) = self.legs.get_mut(i) {
                            l.leaving = true;
                            l.hold = false;
                        }
                        self.play(i, &prompts);
                    }
                }
            }
        }
    }

    /// The receive half of a tick: one frame per leg from its jitter
    /// buffer into the mixer's input, the DTMF detector and menu keys.
    fn listen(&mut self, now: Instant, skipped: u64) {
        for (leg, m) in self.legs.iter_mut().zip(self.mix.iter_mut()) {
            // Slots we were late for still move the RTP clocks on.
            if skipped > 0 {
                leg.rtp.skip(skipped as usize * FRAME);
            }
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
                    self.menu_actions.push((leg.id, action));
                }
            }
            // Keys must not leak into the mix: a detected tone mutes the leg
            // (RFC 4733 keys carry no audio to begin with).
            m.may_talk = self.room.may_talk(leg.id) && !leg.dtmf.tone_present() && !leg.leaving;
            m.codec = leg.rtp.codec();
        }
    }

    /// The send half of a tick: each leg's frame (prompt, hold music, the
    /// mix or silence) as one packet; legs that are done leave the room and
    /// are marked for removal at the next tick.
    fn speak(&mut self, now: Instant) {
        let mut finished: Vec<LegId> = Vec::new();
        for (leg, m) in self.legs.iter_mut().zip(self.mix.iter()) {
            let codec = leg.rtp.codec();
            if !leg.player.is_playing() && leg.hold && !leg.leaving {
                leg.player
                    .play(vec![self.config.prompts.get(PromptId::HoldMusic).clone()]);
                leg.playing_hold = true;
            }
            let payload = leg.rtp.payload_mut(FRAME);
            let talkspurt = if leg.player.is_playing() {
                leg.player.fill(codec, payload) == Frame::Audio { first: true }
            } else if self.room.hears_others(leg.id) {
                payload.copy_from_slice(&m.output);
                false
            } else {
                payload.fill(codec.silence_byte());
                false
            };
            leg.transmit = leg.rtp.write_packet(FRAME, talkspurt);
            if leg.player.take_finished() {
                leg.playing_hold = false;
                if leg.leaving {
                    finished.push(leg.id);
                }
            }
            let silent_too_long = leg
                .rtp
                .inactivity_deadline(self.config.inactivity_timeout)
                .is_some_and(|t| now >= t);
            if silent_too_long && !leg.leaving {
                tracing::info!(room = %self.config.name, call_id = %leg.call_id, "no RTP from a participant: hanging up");
                finished.push(leg.id);
            }
        }
        for id in finished {
            if let Some(l) = self.leg_mut(id) {
                l.done = true;
            }
            let actions = self.room.leave(id);
            self.apply(actions);
        }
    }

    /// Removes the legs the last tick was done with (with `hang_up`).
    fn remove_done(&mut self) {
        let mut i = self.legs.len();
        while i > 0 {
            i -= 1;
            if let Some(id) = self.legs.get(i).filter(|l| l.done).map(|l| l.id) {
                self.remove(id, true);
            }
        }
    }
}

#[cfg(test)]
#[path = "room_media_tests.rs"]
mod tests;
