//! One task per conference room: the shell around the room's media core
//! ([`RoomMedia`]). It owns the joined legs' sockets and the room's timer,
//! and only moves datagrams and time: at each 20 ms tick it drains every
//! leg's socket without blocking into the core, lets the core mix, and
//! sends what the core wrote, without waiting (a full socket buffer drops
//! the packet rather than stall the room). Who hears what, prompts, keys
//! and hang-ups are decided in the core.
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
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::leg::{log_receive_stats, LegMedia, LegSocket};
use crate::conference::room::{LegId, Role};
pub use crate::conference::room_media::RoomConfig;
use crate::conference::room_media::{RoomEvent, RoomMedia};
use crate::media::dtmf::DtmfReceiver;
use crate::sip::sdp::NegotiatedMedia;

/// Commands a room's queue holds (see the module comment for what happens
/// when it is full). A room drains its whole queue at least once a tick.
pub const ROOM_QUEUE: usize = 256;

/// Events a call task's queue holds: the room sends one.
pub const LEG_EVENT_QUEUE: usize = 1;

/// Datagrams read from one leg's socket per tick at most: a flood cannot
/// keep the room in its receive loop (three times what a 20 ms leg sends).
const READS_PER_TICK: usize = 64;

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

/// What the room task keeps of a joined leg: its socket and its links to
/// the call task. The media is in the core.
struct JoinedLeg {
    socket: LegSocket,
    link: LegLink,
}

impl JoinedLeg {
    /// Whether the call task has ended (its end of `left` is gone).
    fn departed(&mut self) -> bool {
        !matches!(
            self.link.left.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        )
    }

    /// Media a re-offer negotiated since the last look.
    fn media_update(&mut self) -> Option<NegotiatedMedia> {
        if self.link.media.has_changed().unwrap_or(false) {
            self.link.media.borrow_and_update().clone()
        } else {
            None
        }
    }
}

struct RoomTask {
    media: RoomMedia,
    legs: HashMap<LegId, JoinedLeg>,
    rx: mpsc::Receiver<RoomCommand>,
    registry: Arc<RoomRegistry>,
    buf: Box<[u8; 2048]>,
    /// Legs whose call task has ended, found during one tick.
    departed: Vec<LegId>,
}

impl RoomTask {
    fn new(
        config: RoomConfig,
        rx: mpsc::Receiver<RoomCommand>,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        RoomTask {
            media: RoomMedia::new(config, Instant::now()),
            legs: HashMap::new(),
            rx,
            registry,
            buf: Box::new([0; 2048]),
            departed: Vec::new(),
        }
    }

    async fn run(mut self) {
        tracing::info!(room = %self.media.name(), "conference room opened");
        loop {
            let wake = tokio::time::Instant::from_std(self.media.poll_timeout());
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.command(c, Instant::now()),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => self.tick(Instant::now()),
            }
            if self.media.is_empty() && self.registry.retire(self.media.name(), &self.rx) {
                break;
            }
        }
        tracing::info!(room = %self.media.name(), "conference room closed");
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
                let (socket, rtp) = media.into_parts();
                if self.media.join(leg, role, call_id, rtp, dtmf) {
                    self.legs.insert(leg, JoinedLeg { socket, link });
                }
            }
            RoomCommand::Digit { leg, key } => self.media.handle_info_digit(leg, key, now),
        }
    }

    /// One tick: what the call tasks said, what arrived, the core's tick,
    /// then what it wrote and decided.
    fn tick(&mut self, now: Instant) {
        for (&id, leg) in self.legs.iter_mut() {
            if leg.departed() {
                self.departed.push(id);
                continue;
            }
            if let Some(negotiated) = leg.media_update() {
                self.media.renegotiate(id, negotiated.session_params(), now);
            }
            for _ in 0..READS_PER_TICK {
                let Ok((n, from)) = leg.socket.udp.try_recv_from(&mut self.buf[..]) else {
                    break;
                };
                self.media.handle_packet(id, &self.buf[..n], from, now);
            }
        }
        for id in self.departed.drain(..) {
            self.media.leave(id);
        }
        self.media.tick(now);
        while let Some(t) = self.media.poll_transmit() {
            if let Some(leg) = self.legs.get(&t.leg) {
                leg.socket.try_send(t.contents, t.destination);
            }
        }
        while let Some(event) = self.media.poll_event() {
            let RoomEvent::LegRemoved {
                leg,
                hang_up,
                latched,
                received,
            } = event;
            let Some(gone) = self.legs.remove(&leg) else {
                continue;
            };
            if hang_up {
                // Capacity for the one event there is; if the call task is
                // gone or the event cannot go, dropping the sender below
                // says the same thing.
                let _ = gone.link.events.try_send(LegEvent::Hangup);
            }
            log_receive_stats(gone.socket.port(), latched, &received);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::room::RoomRules;
    use crate::ivr::prompts::PromptSet;
    use crate::media::dtmf::DtmfMode;
    use crate::server::rtp_ports::RtpPortAllocator;
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

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
