//! The room's media on a fake clock: peers send RTP into the core tick by
//! tick and record what each tick's packet to them carried. Prompts are
//! short and made of one G.711 byte each, so a frame says which prompt it
//! is; callers send one constant byte each, so a mix is checkable to the
//! sample.

use std::collections::BTreeMap;

use super::*;
use crate::media::dtmf::DtmfMode;
use crate::media::g711::Codec;
use crate::media::prompt::Prompt;
use crate::media::rtp::{ReceiveParams, RtpSender, MAX_PACKET};

const MS: Duration = Duration::from_millis(1);

/// The PCMU byte every sample of prompt `id` encodes to: one per prompt,
/// all on the negative side and clear of silence (0x7f/0xff).
fn prompt_byte(id: PromptId) -> u8 {
    let index = PromptId::ALL.iter().position(|p| *p == id).unwrap();
    0x20 + index as u8
}

fn prompt_of(byte: u8) -> Option<PromptId> {
    PromptId::ALL
        .iter()
        .copied()
        .find(|id| prompt_byte(*id) == byte)
}

/// Prompts of two frames; hold music three; beeps one.
fn prompts() -> PromptSet {
    PromptSet::from_fn(|id| {
        let frames = match id {
            PromptId::HoldMusic => 3,
            PromptId::JoinBeep | PromptId::LeaveBeep => 1,
            _ => 2,
        };
        let value = Codec::Pcmu.decode_sample(prompt_byte(id));
        Prompt::from_pcm(id.name(), vec![value; frames * FRAME])
    })
}

/// What one tick's packet to a leg carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Prompt(PromptId),
    Silence,
    /// Every sample the same non-prompt byte: other callers' audio.
    Audio(u8),
    /// Anything else (a tone, a concealed frame).
    Other,
}

fn classify(payload: &[u8]) -> Heard {
    let first = payload[0];
    if payload.iter().any(|&b| b != first) {
        return Heard::Other;
    }
    if first == Codec::Pcmu.silence_byte() {
        return Heard::Silence;
    }
    prompt_of(first).map_or(Heard::Audio(first), Heard::Prompt)
}

/// The byte a listener hears when callers sending `bytes` talk.
fn mix_of(bytes: &[u8]) -> u8 {
    let sum: i32 = bytes
        .iter()
        .map(|&b| i32::from(Codec::Pcmu.decode_sample(b)))
        .sum();
    Codec::Pcmu.encode_sample(sum.clamp(-32768, 32767) as i16)
}

struct Peer {
    addr: SocketAddr,
    sender: RtpSender,
    /// What it sends each tick: one constant PCMU byte, or nothing.
    sends: Option<u8>,
    heard: Vec<Heard>,
    /// Headers of the packets it got: (sequence, timestamp, marker).
    headers: Vec<(u16, u32, bool)>,
    /// The room removed the leg.
    gone: bool,
}

/// A room on a fake clock with its peers.
struct Bridge {
    media: RoomMedia,
    now: Instant,
    peers: BTreeMap<u64, Peer>,
    events: Vec<RoomEvent>,
}

fn params(addr: SocketAddr) -> SessionParams {
    SessionParams {
        receive: ReceiveParams {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(101),
            remote_rtp: Some(addr),
        },
        ptime_ms: 20,
        we_send: true,
        we_receive: true,
    }
}

impl Bridge {
    fn new(rules: RoomRules) -> Self {
        Bridge::with(rules, None)
    }

    fn with(rules: RoomRules, inactivity_timeout: Option<Duration>) -> Self {
        let now = Instant::now();
        let config = RoomConfig {
            name: "standup".into(),
            rules,
            max_talkers: 3,
            prompts: prompts(),
            inactivity_timeout,
        };
        Bridge {
            media: RoomMedia::new(config, now),
            now,
            peers: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    fn join(&mut self, id: u64, role: Role, sends: Option<u8>) {
        let addr: SocketAddr = format!("127.0.0.1:{}", 20_000 + id).parse().unwrap();
        let mut rtp = RtpSession::new(self.now, RtpSender::new(0x5000 + id as u32, 0, 0, 0));
        rtp.apply(params(addr), self.now);
        let joined = self.media.join(
            LegId(id),
            role,
            format!("call-{id}"),
            Box::new(rtp),
            Box::new(DtmfReceiver::new(DtmfMode::Auto)),
        );
        assert!(joined);
        self.peers.insert(
            id,
            Peer {
                addr,
                sender: RtpSender::new(0x7000 + id as u32, 100, 1000, 0),
                sends,
                heard: Vec::new(),
                headers: Vec::new(),
                gone: false,
            },
        );
    }

    fn sends(&mut self, id: u64, sends: Option<u8>) {
        self.peers.get_mut(&id).unwrap().sends = sends;
    }

    /// A datagram from peer `id`'s address.
    fn packet(&mut self, id: u64, datagram: &[u8]) {
        let addr = self.peers[&id].addr;
        self.media
            .handle_packet(LegId(id), datagram, addr, self.now);
    }

    /// Peer `id` sends one 20 ms packet of `payload`.
    fn send_audio(&mut self, id: u64, payload: &[u8]) {
        let mut buf = [0u8; MAX_PACKET];
        let peer = self.peers.get_mut(&id).unwrap();
        let len = peer
            .sender
            .write_packet(payload, payload.len() as u32, false, &mut buf)
            .unwrap();
        self.packet(id, &buf[..len]);
    }

    /// One tick: every sending peer's packet, the core's tick, what it
    /// sent and decided; then the clock moves on 20 ms.
    fn step(&mut self) {
        let sending: Vec<(u64, u8)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.gone)
            .filter_map(|(&id, p)| p.sends.map(|b| (id, b)))
            .collect();
        for (id, byte) in sending {
            self.send_audio(id, &[byte; FRAME]);
        }
        self.tick_only();
    }

    /// The core's tick alone (nobody sends), then 20 ms pass.
    fn tick_only(&mut self) {
        self.media.tick(self.now);
        self.collect();
        self.now += TICK;
    }

    fn collect(&mut self) {
        let mut seen = Vec::new();
        while let Some(t) = self.media.poll_transmit() {
            let peer = self.peers.get_mut(&t.leg.0).unwrap();
            assert!(!peer.gone, "a packet for a removed leg");
            assert_eq!(t.destination, peer.addr);
            assert_eq!(t.contents.len(), 12 + FRAME);
            peer.heard.push(classify(&t.contents[12..]));
            let seq = u16::from_be_bytes([t.contents[2], t.contents[3]]);
            let ts = u32::from_be_bytes(t.contents[4..8].try_into().unwrap());
            peer.headers.push((seq, ts, t.contents[1] & 0x80 != 0));
            seen.push(t.leg);
        }
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(unique, seen, "one packet per leg per tick");
        while let Some(e) = self.media.poll_event() {
            let RoomEvent::LegRemoved { leg, .. } = &e;
            let peer = self.peers.get_mut(&leg.0).unwrap();
            assert!(!peer.gone, "removed twice");
            peer.gone = true;
            self.events.push(e);
        }
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.step();
        }
    }

    fn heard(&self, id: u64) -> &[Heard] {
        &self.peers[&id].heard
    }

    /// What `id` heard in the last `n` ticks.
    fn last(&self, id: u64, n: usize) -> &[Heard] {
        let h = self.heard(id);
        &h[h.len().saturating_sub(n)..]
    }

    /// The prompts `id` heard, in order (one entry per playing).
    fn prompts(&self, id: u64) -> Vec<PromptId> {
        prompt_runs(self.heard(id))
    }

    /// Forgets what everyone heard so far.
    fn clear(&mut self) {
        for p in self.peers.values_mut() {
            p.heard.clear();
        }
    }

    fn keys(&mut self, id: u64, keys: &str) {
        for key in keys.chars() {
            self.media.handle_info_digit(LegId(id), key, self.now);
            self.step();
        }
    }

    fn hung_up(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::LegRemoved {
                    leg, hang_up: true, ..
                } => Some(leg.0),
                _ => None,
            })
            .collect()
    }
}

/// Consecutive frames of one prompt count once (frames of two playings in
/// a row of the same prompt would merge; the tests avoid that).
fn prompt_runs(heard: &[Heard]) -> Vec<PromptId> {
    let mut runs = Vec::new();
    let mut previous = None;
    for h in heard {
        let now = match h {
            Heard::Prompt(p) => Some(*p),
            _ => None,
        };
        if let (Some(p), true) = (now, now != previous) {
            runs.push(p);
        }
        previous = now;
    }
    runs
}

const A: u8 = 0xa0;
const B: u8 = 0xb0;
const C: u8 = 0xc0;

#[test]
fn each_caller_hears_the_others_mixed_and_not_itself() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.join(3, Role::Participant, Some(C));
    bridge.run(40);
    assert!(bridge
        .last(1, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[B, C]))));
    assert!(bridge
        .last(2, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[A, C]))));
    assert!(bridge
        .last(3, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[A, B]))));

    // B goes quiet: A hears C alone, C hears A alone, B hears both.
    bridge.sends(2, None);
    bridge.run(40);
    assert!(bridge.last(1, 10).iter().all(|h| *h == Heard::Audio(C)));
    assert!(bridge.last(3, 10).iter().all(|h| *h == Heard::Audio(A)));
    assert!(bridge
        .last(2, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[A, C]))));
}

#[test]
fn the_first_hears_only_person_and_arrivals_and_departures_beep() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, None);
    bridge.run(5);
    assert_eq!(bridge.prompts(1), [PromptId::OnlyPerson]);
    bridge.join(2, Role::Participant, None);
    bridge.run(5);
    bridge.join(3, Role::Participant, None);
    bridge.run(5);
    assert_eq!(
        bridge.prompts(1),
        [PromptId::OnlyPerson, PromptId::JoinBeep, PromptId::JoinBeep]
    );
    assert_eq!(bridge.prompts(2), [PromptId::JoinBeep], "2 hears 3 arrive");
    assert_eq!(bridge.prompts(3), [] as [PromptId; 0]);

    bridge.media.leave(LegId(2));
    bridge.run(5);
    assert_eq!(bridge.prompts(1).last(), Some(&PromptId::LeaveBeep));
    assert_eq!(bridge.prompts(3), [PromptId::LeaveBeep]);
    assert!(
        bridge.hung_up().is_empty(),
        "a leg whose call ended is not hung up"
    );
    assert!(
        matches!(
            bridge.events[..],
            [RoomEvent::LegRemoved {
                leg: LegId(2),
                hang_up: false,
                ..
            }]
        ),
        "{:?}",
        bridge.events
    );
}

#[test]
fn participants_wait_with_hold_music_for_the_moderator_and_end_with_them() {
    let rules = RoomRules {
        require_moderator: true,
        end_when_moderator_leaves: true,
        ..RoomRules::default()
    };
    let mut bridge = Bridge::new(rules);
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.run(30);
    // Waiting: the prompt, then hold music over and over; nobody hears the
    // other participant.
    for id in [1, 2] {
        let heard = bridge.heard(id);
        assert!(
            !heard.iter().any(|h| matches!(h, Heard::Audio(_))),
            "{heard:?}"
        );
        let prompts = bridge.prompts(id);
        assert_eq!(prompts[0], PromptId::WaitingForModerator, "{prompts:?}");
        assert!(bridge
            .last(id, 10)
            .iter()
            .all(|h| *h == Heard::Prompt(PromptId::HoldMusic)));
    }

    // The moderator arrives: the music stops and everyone is bridged.
    bridge.join(9, Role::Moderator, Some(C));
    bridge.run(30);
    assert!(bridge
        .last(1, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[B, C]))));
    assert!(bridge
        .last(9, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[A, B]))));

    // The moderator leaves: the others hear the end and goodbye, and are
    // hung up after their last frame.
    bridge.clear();
    bridge.media.leave(LegId(9));
    bridge.run(10);
    for id in [1u64, 2] {
        assert_eq!(
            bridge.prompts(id),
            [PromptId::ConferenceEnded, PromptId::Goodbye]
        );
        let goodbye = Heard::Prompt(PromptId::Goodbye);
        assert_eq!(
            bridge.heard(id).last(),
            Some(&goodbye),
            "nothing after goodbye"
        );
    }
    assert_eq!(bridge.hung_up(), [2, 1]);
}

#[test]
fn mute_count_and_leave_keys_by_info_and_by_telephone_event() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.join(3, Role::Participant, Some(C));
    bridge.run(40);
    bridge.clear();

    // *1 by SIP INFO: 1 hears "muted" and nobody hears 1 any more.
    bridge.keys(1, "*1");
    bridge.run(20);
    assert_eq!(bridge.prompts(1), [PromptId::Muted]);
    assert!(bridge.last(2, 10).iter().all(|h| *h == Heard::Audio(C)));
    assert!(bridge.last(3, 10).iter().all(|h| *h == Heard::Audio(B)));
    assert!(bridge
        .last(1, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[B, C]))));

    // *1 again, as RFC 4733 telephone-events: "unmuted", heard again.
    bridge.clear();
    for key in [10u8, 1] {
        telephone_event(&mut bridge, 1, key);
        bridge.run(4);
    }
    bridge.run(20);
    assert_eq!(bridge.prompts(1), [PromptId::Unmuted]);
    assert!(bridge
        .last(2, 10)
        .iter()
        .all(|h| *h == Heard::Audio(mix_of(&[A, C]))));

    // *2: the count, three.
    bridge.clear();
    bridge.keys(1, "*2");
    bridge.run(10);
    assert_eq!(
        bridge.prompts(1),
        [PromptId::ParticipantCount, PromptId::Digit3]
    );

    // *8: goodbye, then the room hangs up; the others hear 1 leave. An
    // ordinary digit or a lone * does nothing.
    bridge.clear();
    bridge.keys(1, "5*");
    bridge.run(5);
    bridge.keys(1, "*8");
    bridge.run(10);
    assert_eq!(bridge.prompts(1), [PromptId::Goodbye]);
    assert_eq!(bridge.hung_up(), [1]);
    assert_eq!(bridge.prompts(2), [PromptId::LeaveBeep]);
    assert!(bridge.last(2, 5).iter().all(|h| *h == Heard::Audio(C)));
}

/// One RFC 4733 key press (`event` 0-15) of 60 ms from peer `id`: a start
/// packet and three end packets, sharing the audio's SSRC and sequence.
fn telephone_event(bridge: &mut Bridge, id: u64, event: u8) {
    let mut buf = [0u8; MAX_PACKET];
    for (i, end) in [(1u16, false), (2, false), (3, true), (3, true), (3, true)] {
        let peer = bridge.peers.get_mut(&id).unwrap();
        peer.sender.set_payload_type(101);
        let duration = (160 * i).to_be_bytes();
        let flags = if end { 0x8a } else { 0x0a };
        let block = [event, flags, duration[0], duration[1]];
        let len = peer
            .sender
            .write_packet(&block, 0, i == 1 && !end, &mut buf)
            .unwrap();
        peer.sender.set_payload_type(0);
        bridge.packet(id, &buf[..len]);
    }
}

/// `frames` 20 ms frames of the DTMF pair of `key`, each tone at −13 dBFS,
/// PCMU-encoded, phase continuous from sample `start`.
fn dtmf_frames(key: char, start: usize, frames: usize) -> Vec<[u8; FRAME]> {
    let (lo, hi) = match key {
        '*' => (941.0, 1209.0),
        '1' => (697.0, 1209.0),
        _ => unreachable!(),
    };
    let amplitude = 32767.0 * 10f64.powf(-13.0 / 20.0);
    (0..frames)
        .map(|f| {
            let mut pcm = [0i16; FRAME];
            for (i, s) in pcm.iter_mut().enumerate() {
                let t = (start + f * FRAME + i) as f64 / 8000.0;
                let v = amplitude
                    * ((2.0 * std::f64::consts::PI * lo * t).sin()
                        + (2.0 * std::f64::consts::PI * hi * t).sin());
                *s = v as i16;
            }
            let mut out = [0u8; FRAME];
            Codec::Pcmu.encode(&pcm, &mut out);
            out
        })
        .collect()
}

#[test]
fn in_band_keys_work_the_menu_and_are_not_heard_by_the_others() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, None);
    bridge.run(40);
    assert!(bridge.last(2, 10).iter().all(|h| *h == Heard::Audio(A)));
    bridge.clear();

    // "*1" as tones: 80 ms each, 80 ms of silence between.
    bridge.sends(1, None);
    let silence = [Codec::Pcmu.silence_byte(); FRAME];
    for (k, key) in ['*', '1'].into_iter().enumerate() {
        for frame in dtmf_frames(key, k * 8 * FRAME, 4) {
            bridge.send_audio(1, &frame);
            bridge.step();
        }
        for _ in 0..4 {
            bridge.send_audio(1, &silence);
            bridge.step();
        }
    }
    bridge.sends(1, Some(A));
    bridge.run(20);
    assert_eq!(bridge.prompts(1), [PromptId::Muted], "the tones were keys");
    // What 2 heard while the tones sounded: silence (1 is muted by the
    // tone), except at most the onset frame of each tone, before the
    // detector has a whole window of it.
    let leaked = bridge
        .heard(2)
        .iter()
        .filter(|h| **h == Heard::Other)
        .count();
    assert!(
        leaked <= 2,
        "2 heard {leaked} frames of tone: {:?}",
        bridge.heard(2)
    );
    assert!(
        bridge.last(2, 20).iter().all(|h| *h == Heard::Silence),
        "1 is muted after *1: {:?}",
        bridge.heard(2)
    );
}

#[test]
fn a_lossy_reordering_duplicating_leg_reaches_the_others_without_gaps() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, None);
    bridge.join(2, Role::Participant, None);
    bridge.run(5);
    bridge.clear();
    // Packet n is made at tick n; every 10th is lost, every 7th comes a
    // tick late (after its successor), every 13th twice.
    let mut buf = [0u8; MAX_PACKET];
    let mut held: Option<Vec<u8>> = None;
    let (mut sent, mut late, mut twice) = (0u64, 0u64, 0u64);
    for n in 0..300u32 {
        let peer = bridge.peers.get_mut(&1).unwrap();
        let len = peer
            .sender
            .write_packet(&[A; FRAME], FRAME as u32, false, &mut buf)
            .unwrap();
        let packet = buf[..len].to_vec();
        if n % 10 != 9 {
            if n % 7 == 3 {
                held = Some(packet.clone());
            } else {
                bridge.packet(1, &packet);
                sent += 1;
                if let Some(p) = held.take() {
                    bridge.packet(1, &p);
                    (sent, late) = (sent + 1, late + 1);
                }
                if n % 13 == 5 {
                    bridge.packet(1, &packet);
                    (sent, twice) = (sent + 1, twice + 1);
                }
            }
        }
        bridge.tick_only();
    }
    let heard = &bridge.heard(2)[10..];
    let silent = heard.iter().filter(|h| **h == Heard::Silence).count();
    let clean = heard.iter().filter(|h| **h == Heard::Audio(A)).count();
    assert_eq!(silent, 0, "{heard:?}");
    // 10 % are lost and concealed; a few more are concealed while the
    // buffer adapts to the late ones.
    assert!(
        clean * 100 >= heard.len() * 80,
        "{clean} of {} frames as sent",
        heard.len()
    );
    let stats = match bridge.media.poll_event() {
        None => {
            bridge.media.leave(LegId(1));
            bridge.collect();
            match bridge.events.last() {
                Some(RoomEvent::LegRemoved { received, .. }) => *received,
                None => unreachable!(),
            }
        }
        Some(e) => panic!("{e:?}"),
    };
    assert_eq!(stats.arrivals.audio, sent, "{stats:?}");
    assert_eq!(
        (stats.stream.late, stats.stream.duplicates),
        (late, twice),
        "{stats:?}"
    );
}

#[test]
fn a_full_room_turns_a_participant_away_but_lets_a_moderator_in() {
    let rules = RoomRules {
        max_participants: 1,
        ..RoomRules::default()
    };
    let mut bridge = Bridge::new(rules);
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.join(3, Role::Moderator, Some(C));
    bridge.run(20);
    assert_eq!(
        bridge.prompts(2),
        [PromptId::ConferenceFull, PromptId::Goodbye]
    );
    assert_eq!(bridge.hung_up(), [2]);
    assert!(
        !bridge.heard(1).contains(&Heard::Audio(B)),
        "2 was never in the mix"
    );
    assert!(bridge.last(1, 5).iter().all(|h| *h == Heard::Audio(C)));
}

#[test]
fn a_leg_that_stops_sending_is_hung_up_after_the_inactivity_timeout() {
    let mut bridge = Bridge::with(RoomRules::default(), Some(Duration::from_secs(1)));
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.run(10);
    bridge.sends(2, None);
    let stopped = bridge.now;
    while bridge.hung_up().is_empty() {
        assert!(
            bridge.now < stopped + Duration::from_secs(2),
            "never hung up"
        );
        bridge.step();
    }
    assert_eq!(bridge.hung_up(), [2]);
    let after = bridge.now.duration_since(stopped);
    assert!(
        after >= Duration::from_millis(980) && after <= Duration::from_millis(1080),
        "{after:?}"
    );
    bridge.run(100);
    assert_eq!(bridge.hung_up(), [2], "1 still sends");
}

#[test]
fn late_ticks_are_skipped_but_move_the_rtp_clock_on() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, None);
    bridge.run(3);
    // Woken 100 ms late: one packet, whose timestamp covers the gap.
    bridge.now += 100 * MS;
    bridge.tick_only();
    let h = &bridge.peers[&1].headers;
    assert_eq!(h.len(), 4);
    let (seq, ts, _) = h[3];
    assert_eq!(seq, h[2].0.wrapping_add(1));
    assert_eq!(ts, h[2].1.wrapping_add(6 * FRAME as u32));
    // A wake-up before the next slot does nothing.
    bridge.media.tick(bridge.now - 5 * MS);
    assert!(bridge.media.poll_transmit().is_none());
}

#[test]
fn a_re_offer_moves_the_leg_and_a_hold_stops_its_packets() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, Some(B));
    bridge.run(10);
    let moved: SocketAddr = "127.0.0.7:30000".parse().unwrap();
    bridge
        .media
        .renegotiate(LegId(2), params(moved), bridge.now);
    bridge.peers.get_mut(&2).unwrap().addr = moved;
    bridge.run(10);
    assert_eq!(
        bridge.heard(2).len(),
        20,
        "2 got every tick's packet, at the new address"
    );

    let mut held = params(moved);
    held.we_send = false;
    bridge.media.renegotiate(LegId(2), held, bridge.now);
    bridge.run(10);
    assert_eq!(bridge.heard(2).len(), 20, "nothing is sent to a held leg");
    assert!(
        bridge.last(1, 5).iter().all(|h| *h == Heard::Audio(B)),
        "it is still heard"
    );
    assert!(
        !bridge.media.join(
            LegId(2),
            Role::Participant,
            "again".into(),
            Box::new(RtpSession::new(bridge.now, RtpSender::new(1, 1, 1, 0))),
            Box::new(DtmfReceiver::new(DtmfMode::Auto))
        ),
        "a leg id joins once"
    );
}

#[test]
fn rtp_from_another_source_is_not_heard_in_the_room() {
    let mut bridge = Bridge::new(RoomRules::default());
    bridge.join(1, Role::Participant, Some(A));
    bridge.join(2, Role::Participant, None);
    bridge.run(10);
    // Someone who found 1's port sends loud audio and key presses from
    // elsewhere, interleaved with 1's own packets.
    let intruder: SocketAddr = "127.0.0.99:5004".parse().unwrap();
    let mut forged = RtpSender::new(0x0bad, 0, 0, 0);
    let mut buf = [0u8; MAX_PACKET];
    for _ in 0..40 {
        let len = forged
            .write_packet(&[0x80; FRAME], FRAME as u32, false, &mut buf)
            .unwrap();
        bridge
            .media
            .handle_packet(LegId(1), &buf[..len], intruder, bridge.now);
        bridge.media.handle_info_digit(LegId(3), '*', bridge.now);
        bridge.step();
    }
    assert!(
        bridge.last(2, 30).iter().all(|h| *h == Heard::Audio(A)),
        "{:?}",
        bridge.heard(2)
    );
    bridge.media.leave(LegId(1));
    bridge.collect();
    let Some(RoomEvent::LegRemoved {
        received, latched, ..
    }) = bridge.events.last()
    else {
        unreachable!()
    };
    assert_eq!(received.arrivals.from_other_address, 40);
    assert_eq!(*latched, Some(bridge.peers[&1].addr));
}
