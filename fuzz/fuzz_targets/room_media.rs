//! A conference room's media core (`RoomMedia`) driven by arbitrary joins,
//! departures, datagrams, key presses, re-offers and ticks on a fake clock.
//!
//! Input: byte 0 is the room's rules (bit 0: a moderator is required; bit
//! 1: the conference ends with the last moderator; bits 2–4: the most
//! participants, 1–8; bit 5: a 1 s inactivity timeout), byte 1 the most
//! talkers (1–8). Then records, each an op byte whose low 3 bits pick a
//! leg (of 8) and whose high bits pick what happens:
//! - 0 join (next byte: bit 0 moderator, bit 1 PCMA, bit 2 on hold);
//! - 1 the call ends;
//! - 2 a raw datagram (`len: u8`, bytes) from the leg's address, or
//!   another when bit 3 of the op is set;
//! - 3 a tick after `gap: u16 BE` (microseconds, or milliseconds with the
//!   top bit set);
//! - 4 a SIP INFO key (next byte picks one of 0-9 * # A-D);
//! - 5 a re-offer (next byte: bit 0 PCMA, bit 1 on hold, bit 2 a new
//!   address, bits 3-5 the ptime in 10 ms steps);
//! - 6 well-formed audio (next: a sample byte, a sequence step);
//! - 7 an RFC 4733 packet (next: event, flags, duration high byte).
//!
//! Properties checked beyond "no panic":
//! - a tick sends at most one packet per leg, only to legs in the room,
//!   each a whole RTP packet of one 20 ms frame from that leg's SSRC
//!   with sequence numbers that step by one;
//! - a leg is removed once, only after it joined, and nothing is sent
//!   for it afterwards; the room counts exactly the legs not removed.

#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pinbridge::conference::room::{LegId, Role, RoomRules};
use pinbridge::conference::room_media::{RoomConfig, RoomEvent, RoomMedia};
use pinbridge::ivr::prompts::{PromptId, PromptSet};
use pinbridge::media::dtmf::{DtmfMode, DtmfReceiver};
use pinbridge::media::g711::Codec;
use pinbridge::media::prompt::Prompt;
use pinbridge::media::rtp::{ReceiveParams, RtpSender, RtpSession, SessionParams, MAX_PACKET};
use rtp_rs::RtpReader;

const KEYS: &[u8] = b"0123456789*#ABCD";

/// Prompts of one to three frames, so flows finish within a few ticks.
fn prompts() -> &'static PromptSet {
    static PROMPTS: OnceLock<PromptSet> = OnceLock::new();
    PROMPTS.get_or_init(|| {
        PromptSet::from_fn(|id| {
            let frames = match id {
                PromptId::HoldMusic => 3,
                PromptId::JoinBeep | PromptId::LeaveBeep => 1,
                _ => 2,
            };
            Prompt::from_pcm(id.name(), vec![-1000; frames * 160])
        })
    })
}

fn address(leg: u64, other: bool) -> SocketAddr {
    SocketAddr::from((
        [127, 0, if other { 2 } else { 1 }, leg as u8],
        40000 + leg as u16,
    ))
}

fn params(leg: u64, pcma: bool, hold: bool, moved: bool, ptime_ms: u32) -> SessionParams {
    SessionParams {
        receive: ReceiveParams {
            codec: if pcma { Codec::Pcma } else { Codec::Pcmu },
            codec_pt: if pcma { 8 } else { 0 },
            telephone_event_pt: Some(101),
            remote_rtp: Some(address(leg, moved)),
        },
        ptime_ms,
        we_send: !hold,
        we_receive: true,
    }
}

/// What the fuzzer knows of a leg.
#[derive(Default)]
struct Leg {
    joined: bool,
    removed: bool,
    ssrc: u32,
    last_sequence: Option<u16>,
    /// The peer's own stream, for well-formed packets.
    sequence: u16,
    timestamp: u32,
}

fuzz_target!(|data: &[u8]| {
    let [rules, talkers, ref records @ ..] = *data else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let config = RoomConfig {
        name: "fuzz".into(),
        rules: RoomRules {
            max_participants: usize::from((rules >> 2) & 7) + 1,
            require_moderator: rules & 1 != 0,
            end_when_moderator_leaves: rules & 2 != 0,
        },
        max_talkers: usize::from(talkers % 8) + 1,
        prompts: prompts().clone(),
        inactivity_timeout: (rules & 0x20 != 0).then_some(Duration::from_secs(1)),
    };
    let mut room = RoomMedia::new(config, t0);
    let mut legs: BTreeMap<u64, Leg> = BTreeMap::new();
    let mut buf = [0u8; MAX_PACKET];
    let mut rest = records;
    while let [op, ref tail @ ..] = *rest {
        rest = tail;
        let id = u64::from(op & 7);
        let leg = LegId(id);
        match op >> 4 {
            0 => {
                let Some((&how, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                let ssrc = 0x1000 + id as u32;
                let mut rtp = RtpSession::new(now, RtpSender::new(ssrc, 0, 0, 0));
                rtp.apply(params(id, how & 2 != 0, how & 4 != 0, false, 20), now);
                let role = if how & 1 != 0 {
                    Role::Moderator
                } else {
                    Role::Participant
                };
                let dtmf = Box::new(DtmfReceiver::new(DtmfMode::Auto));
                // An id may come back once the room removed it.
                let fresh = legs.get(&id).is_none_or(|l| l.removed);
                let joined = room.join(leg, role, format!("call-{id}"), Box::new(rtp), dtmf);
                assert_eq!(joined, fresh, "a leg in the room cannot join again");
                if fresh {
                    legs.insert(
                        id,
                        Leg {
                            joined: true,
                            ssrc,
                            ..Leg::default()
                        },
                    );
                }
            }
            1 => {
                room.leave(leg);
                check_events(&mut room, &mut legs);
            }
            2 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let (datagram, tail) = tail.split_at(usize::from(len).min(tail.len()));
                rest = tail;
                room.handle_packet(leg, datagram, address(id, op & 8 != 0), now);
            }
            3 => {
                let [hi, lo, ref tail @ ..] = *rest else {
                    break;
                };
                rest = tail;
                let gap = u16::from_be_bytes([hi, lo]);
                now += if gap & 0x8000 != 0 {
                    Duration::from_millis(u64::from(gap & 0x7fff))
                } else {
                    Duration::from_micros(u64::from(gap))
                };
                room.tick(now);
                check_output(&mut room, &mut legs);
            }
            4 => {
                let Some((&k, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                let key = char::from(KEYS[usize::from(k) % KEYS.len()]);
                room.handle_info_digit(leg, key, now);
            }
            5 => {
                let Some((&how, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                let ptime = 10 * (u32::from((how >> 3) & 7) + 1);
                room.renegotiate(
                    leg,
                    params(id, how & 1 != 0, how & 2 != 0, how & 4 != 0, ptime),
                    now,
                );
            }
            6 | 7 => {
                let [a, b, ref tail @ ..] = *rest else { break };
                rest = tail;
                let Some(peer) = legs.get_mut(&id) else {
                    continue;
                };
                let (pt, payload, samples): (u8, Vec<u8>, u32) = if op >> 4 == 6 {
                    peer.sequence = peer.sequence.wrapping_add(u16::from(b % 4));
                    (0, vec![a; 160], 160)
                } else {
                    let Some((&c, tail)) = rest.split_first() else {
                        break;
                    };
                    rest = tail;
                    (101, vec![a % 16, b, c, 0], 0)
                };
                let mut sender =
                    RtpSender::new(0x2000 + id as u32, peer.sequence, peer.timestamp, pt);
                let Some(len) = sender.write_packet(&payload, samples, false, &mut buf) else {
                    continue;
                };
                peer.sequence = peer.sequence.wrapping_add(1);
                peer.timestamp = peer.timestamp.wrapping_add(samples);
                room.handle_packet(leg, &buf[..len], address(id, op & 8 != 0), now);
            }
            _ => {}
        }
    }
});

fn check_output(room: &mut RoomMedia, legs: &mut BTreeMap<u64, Leg>) {
    let mut sent = Vec::new();
    while let Some(t) = room.poll_transmit() {
        let leg = legs
            .get_mut(&t.leg.0)
            .expect("a packet for a leg that never joined");
        assert!(
            leg.joined && !leg.removed,
            "a packet for a leg not in the room"
        );
        assert!(
            !sent.contains(&t.leg.0),
            "two packets for one leg in a tick"
        );
        sent.push(t.leg.0);
        let rtp = RtpReader::new(t.contents).expect("a whole RTP packet");
        assert_eq!(rtp.payload().len(), 160);
        assert_eq!(rtp.ssrc(), leg.ssrc);
        let sequence = u16::from(rtp.sequence_number());
        if let Some(last) = leg.last_sequence {
            assert_eq!(sequence, last.wrapping_add(1));
        }
        leg.last_sequence = Some(sequence);
    }
    check_events(room, legs);
}

fn check_events(room: &mut RoomMedia, legs: &mut BTreeMap<u64, Leg>) {
    while let Some(RoomEvent::LegRemoved { leg, .. }) = room.poll_event() {
        let l = legs
            .get_mut(&leg.0)
            .expect("removed a leg that never joined");
        assert!(!l.removed, "a leg removed twice");
        l.removed = true;
    }
    let present = legs.values().filter(|l| !l.removed).count();
    assert_eq!(room.leg_count(), present);
}
