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
//!
//! Every channel between them is bounded, and what happens when one is
//! full is decided here, per message, so nothing that must arrive can be
//! lost:
//!
//! - A room's command queue holds [`ROOM_QUEUE`] commands. A join that
//!   finds it full is refused (the call task hangs up with a warning: the
//!   room has not drained its queue for several ticks, so it is stuck or
//!   far behind); an INFO key press that finds it full is dropped, like a
//!   lost RTP event.
//! - Leaving cannot be queued behind anything: each leg carries the
//!   receiving end of a oneshot whose sender the call task holds for as
//!   long as the call lasts. The room looks at it every tick; however the
//!   call task ends (hang-up, error, panic), the sender is dropped and the
//!   room removes the leg.
//! - A re-offer's new media goes through a `watch` channel per leg: only
//!   the latest matters, so it holds one value and never fills.
//! - The room tells a call task at most one thing ([`LegEvent::Hangup`])
//!   and then drops its sender, which the call task also reads as hang-up;
//!   a full or closed event channel therefore loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

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

/// Commands a room's queue holds (see the module comment for what happens
/// when it is full). A room drains its whole queue at least once a tick.
pub const ROOM_QUEUE: usize = 256;

/// Events a call task's queue holds: the room sends one.
pub const LEG_EVENT_QUEUE: usize = 1;

/// The call task's ends of a joined leg's channels.
pub struct LegLink {
    /// Closed (its sender dropped) when the call has ended.
    pub left: oneshot::Receiver<()>,
    /// The latest media a re-offer negotiated.
    pub media: watch::Receiver<Option<NegotiatedMedia>>,
    /// Where the room tells the call task it is done with the leg.
    pub events: mpsc::Sender<LegEvent>,
}

/// A join refused because the room's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomBusy;

/// What a call task tells its room.
pub enum RoomCommand {
    Join {
        leg: LegId,
        role: Role,
        call_id: String,
        media: Box<LegMedia>,
        dtmf: Box<DtmfReceiver>,
        link: LegLink,
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
    rooms: Mutex<HashMap<String, mpsc::Sender<RoomCommand>>>,
}

impl RoomRegistry {
    /// Sends `join` to the room for `config.name`, starting the room task
    /// if there is none. Refused when the room's queue is full.
    pub fn join(self: &Arc<Self>, config: &RoomConfig, join: RoomCommand) -> Result<(), RoomBusy> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let tx = rooms.entry(config.name.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(ROOM_QUEUE);
            let task = RoomTask::new(config.clone(), rx, self.clone());
            tokio::spawn(task.run());
            tx
        });
        match tx.try_send(join) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(RoomBusy),
            Err(mpsc::error::TrySendError::Closed(join)) => {
                // The task died (it only stops through `retire`, so this is
                // a panic): start a fresh one.
                let (tx, rx) = mpsc::channel(ROOM_QUEUE);
                tokio::spawn(RoomTask::new(config.clone(), rx, self.clone()).run());
                let sent = tx.try_send(join).map_err(|_| RoomBusy);
                rooms.insert(config.name.clone(), tx);
                sent
            }
        }
    }

    /// A key press from SIP INFO for a room that exists; dropped when the
    /// room's queue is full.
    pub fn send_digit(&self, name: &str, leg: LegId, key: char) {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = rooms.get(name) {
            if tx.try_send(RoomCommand::Digit { leg, key }).is_err() {
                tracing::debug!(room = %name, "room queue full: INFO key press dropped");
            }
        }
    }

    /// Removes `name` if its queue is empty; returns whether it did (the
    /// task must then exit).
    fn retire(&self, name: &str, rx: &mpsc::Receiver<RoomCommand>) -> bool {
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
    link: LegLink,
}

impl Leg {
    /// Whether the call task has ended (its end of `left` is gone).
    fn departed(&mut self) -> bool {
        !matches!(
            self.link.left.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        )
    }

    /// Applies media a re-offer negotiated since the last look.
    fn take_media_update(&mut self, now: Instant) {
        if self.link.media.has_changed().unwrap_or(false) {
            let update = self.link.media.borrow_and_update().clone();
            if let Some(negotiated) = update {
                self.media.apply(negotiated, now);
            }
        }
    }
}

struct RoomTask {
    config: RoomConfig,
    room: Room,
    mixer: Mixer,
    legs: Vec<Leg>,
    /// Parallel to `legs`: the mixer wants one contiguous slice.
    mix: Vec<MixLeg>,
    clock: PacketClock,
    rx: mpsc::Receiver<RoomCommand>,
    registry: Arc<RoomRegistry>,
    buf: Box<[u8; 2048]>,
}

impl RoomTask {
    fn new(
        config: RoomConfig,
        rx: mpsc::Receiver<RoomCommand>,
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
                link,
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
                    link,
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
            RoomCommand::Digit { leg, key } => {
                if let Some(i) = self.index(leg) {
                    self.legs[i].dtmf.on_info(now, key);
                }
            }
        }
    }

    /// Removes the legs whose calls have ended.
    fn remove_departed(&mut self) {
        let mut i = self.legs.len();
        while i > 0 {
            i -= 1;
            if self.legs[i].departed() {
                let id = self.legs[i].id;
                self.remove(i);
                let actions = self.room.leave(id);
                self.apply(actions);
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
        self.remove_departed();
        let mut menu_actions = Vec::new();
        for (i, leg) in self.legs.iter_mut().enumerate() {
            leg.take_media_update(now);
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
                // Capacity for the one event there is; if the call task is
                // gone or the event cannot go, dropping the sender below
                // says the same thing.
                let _ = self.legs[i].link.events.try_send(LegEvent::Hangup);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::DtmfMode;
    use crate::server::rtp_ports::RtpPortAllocator;
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};

    fn room_config(name: &str) -> RoomConfig {
        RoomConfig {
            name: name.to_string(),
            rules: RoomRules::default(),
            max_talkers: 3,
            prompts: PromptSet::load(&BTreeMap::new()).unwrap(),
            inactivity_timeout: None,
        }
    }

    /// A leg to join, with the call task's ends of its channels.
    struct CallSide {
        join: RoomCommand,
        leaving: oneshot::Sender<()>,
        events: mpsc::Receiver<LegEvent>,
    }

    fn leg(ports: &RtpPortAllocator, id: u64) -> CallSide {
        leg_as(ports, id, Role::Moderator)
    }

    fn leg_as(ports: &RtpPortAllocator, id: u64, role: Role) -> CallSide {
        let (socket, port) = ports.bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let media = LegMedia::new(
            tokio::net::UdpSocket::from_std(socket).unwrap(),
            port,
            Instant::now(),
        );
        let (leaving, left) = oneshot::channel();
        let (events_tx, events) = mpsc::channel(LEG_EVENT_QUEUE);
        let (_, media_rx) = watch::channel(None);
        CallSide {
            join: RoomCommand::Join {
                leg: LegId(id),
                role,
                call_id: format!("call-{id}"),
                media: Box::new(media),
                dtmf: Box::new(DtmfReceiver::new(DtmfMode::Auto)),
                link: LegLink {
                    left,
                    media: media_rx,
                    events: events_tx,
                },
            },
            leaving,
            events,
        }
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_leg_leaves_when_its_call_task_is_gone_without_a_word() {
        let ports = RtpPortAllocator::new(41000, 41100);
        let rooms = Arc::new(RoomRegistry::default());
        let config = room_config("standup");
        let a = leg(&ports, 1);
        let b = leg(&ports, 2);
        rooms.join(&config, a.join).unwrap();
        rooms.join(&config, b.join).unwrap();
        wait_for("the room", || rooms.room_count() == 1).await;
        // The call tasks end (a panic drops these the same way).
        drop(a.leaving);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(rooms.room_count(), 1, "one leg is still in the room");
        drop(b.leaving);
        wait_for("the empty room to close", || rooms.room_count() == 0).await;
        drop((a.events, b.events));
    }

    #[tokio::test]
    async fn a_join_over_a_full_room_queue_is_refused_and_key_presses_are_dropped() {
        // On this single-threaded runtime the room task cannot run until
        // the test awaits, so its queue fills.
        let ports = RtpPortAllocator::new(41200, 41300);
        let rooms = Arc::new(RoomRegistry::default());
        let config = room_config("busy");
        let first = leg(&ports, 1);
        rooms.join(&config, first.join).unwrap();
        for _ in 0..ROOM_QUEUE * 2 {
            rooms.send_digit("busy", LegId(1), '5');
        }
        let second = leg(&ports, 2);
        assert_eq!(rooms.join(&config, second.join), Err(RoomBusy));
        // Once the room catches up, joins go through again.
        let third = leg(&ports, 3);
        let drained = || {
            let queues = rooms.rooms.lock().unwrap();
            queues
                .get("busy")
                .is_some_and(|tx| tx.capacity() == ROOM_QUEUE)
        };
        wait_for("the room to drain its queue", drained).await;
        rooms.join(&config, third.join).unwrap();
        drop((first.leaving, third.leaving, second.leaving));
        drop((first.events, second.events, third.events));
    }

    #[tokio::test]
    async fn the_room_says_hangup_once_and_the_call_task_reads_it() {
        let ports = RtpPortAllocator::new(41400, 41500);
        let rooms = Arc::new(RoomRegistry::default());
        let mut config = room_config("tiny");
        config.rules.max_participants = 1;
        let first = leg_as(&ports, 1, Role::Participant);
        let mut second = leg_as(&ports, 2, Role::Participant);
        rooms.join(&config, first.join).unwrap();
        rooms.join(&config, second.join).unwrap();
        // The second caller hears "full" then goodbye, then is hung up.
        let ev = tokio::time::timeout(Duration::from_secs(30), second.events.recv())
            .await
            .unwrap();
        assert_eq!(ev, Some(LegEvent::Hangup));
        assert_eq!(
            second.events.recv().await,
            None,
            "nothing after the hang-up"
        );
        drop((first.leaving, second.leaving, first.events));
    }
}
