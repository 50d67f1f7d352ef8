//! The rules of one conference room, without audio: who is in it, who may
//! talk and hear, and what each arrival, departure and key press should make
//! the legs hear. The room task applies the [`RoomAction`]s (prompts, beeps,
//! hold music, hang-ups) and asks [`Room::may_talk`] / [`Room::hears_others`]
//! when it builds each leg's mix.
//!
//! The behaviour follows what Asterisk ConfBridge and FreeSWITCH
//! mod_conference users expect:
//!
//! - the first person in hears "you are the only person in this conference";
//!   later arrivals and departures are announced to the others with a beep;
//! - a full room refuses participants ([`JoinError::Full`]); moderators are
//!   always let in, like ConfBridge admins, so a full room cannot keep out
//!   the person it is waiting for;
//! - with `require_moderator`, participants who arrive before any moderator
//!   hear "waiting for the moderator" and then hold music, and neither talk
//!   nor hear each other; the first moderator stops the music and bridges
//!   everyone;
//! - when the last moderator leaves, either the conference ends (everyone
//!   hears "the conference has ended", "goodbye" and is hung up) or it goes
//!   on. If it goes on and a moderator is required, the others go back to
//!   waiting with hold music: this is ConfBridge's `wait_marked` behaviour,
//!   and the only consistent one, since a room that needs a moderator to
//!   start should not carry on unmoderated because one came and went.
//!
//! Actions come out in the order they should be carried out; for one leg, a
//! `Play` comes before the `HoldMusic` that follows it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ivr::prompts::PromptId;

/// A call leg in a room, as numbered by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// What the caller's PIN made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Participant,
    Moderator,
}

/// Per-conference rules from the config.
#[derive(Debug, Clone)]
pub struct RoomRules {
    /// Members at most (moderators may exceed it).
    pub max_participants: usize,
    /// Participants wait with hold music until a moderator is present.
    pub require_moderator: bool,
    /// When the last moderator leaves, everyone else is hung up.
    pub end_when_moderator_leaves: bool,
}

impl Default for RoomRules {
    fn default() -> Self {
        RoomRules {
            max_participants: 250,
            require_moderator: false,
            end_when_moderator_leaves: false,
        }
    }
}

/// Something the room task should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Play these prompts, in order, to one leg only.
    Play { leg: LegId, prompts: Vec<PromptId> },
    /// Play a short sound to every member except `except`.
    Beep {
        prompt: PromptId,
        except: Option<LegId>,
    },
    /// Start or stop hold music for one leg.
    HoldMusic { leg: LegId, on: bool },
    /// Play these prompts to the leg, then hang it up. The leg is already
    /// out of the room; a later [`Room::leave`] for it does nothing.
    Hangup { leg: LegId, prompts: Vec<PromptId> },
}

/// Why a leg could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The room holds `max_participants` members. The caller should hear
    /// [`PromptId::ConferenceFull`] and be hung up.
    Full,
}

/// A key-press command inside the conference (see [`MenuKeys`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    ToggleMute,
    ParticipantCount,
    Leave,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    role: Role,
    muted: bool,
}

/// The state of one conference room.
#[derive(Debug)]
pub struct Room {
    name: String,
    rules: RoomRules,
    /// Ordered so that actions for "everyone" come out in a stable order.
    members: BTreeMap<LegId, Member>,
    ended: bool,
}

impl Room {
    pub fn new(name: &str, rules: RoomRules) -> Self {
        Room {
            name: name.to_owned(),
            rules,
            members: BTreeMap::new(),
            ended: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rules(&self) -> &RoomRules {
        &self.rules
    }

    /// Adds a leg. Joining twice is a no-op. Joining a room that has ended
    /// starts a new meeting in it: a caller who dials in after the moderator
    /// closed the last one should get a working room, not a dead one.
    pub fn join(&mut self, leg: LegId, role: Role) -> Result<Vec<RoomAction>, JoinError> {
        if self.members.contains_key(&leg) {
            return Ok(Vec::new());
        }
        if role == Role::Participant && self.members.len() >= self.rules.max_participants {
            return Err(JoinError::Full);
        }
        self.ended = false;
        let was_empty = self.members.is_empty();
        let was_waiting = self.is_waiting();
        self.members.insert(leg, Member { role, muted: false });

        let mut actions = Vec::new();
        if self.is_waiting() {
            // No beep: the others are on hold music and not yet in a call.
            push_wait(&mut actions, leg);
        } else if was_waiting {
            self.bridge_waiting(&mut actions, leg);
        } else if was_empty {
            actions.push(RoomAction::Play {
                leg,
                prompts: vec![PromptId::OnlyPerson],
            });
        } else {
            actions.push(beep(PromptId::JoinBeep, leg));
        }
        Ok(actions)
    }

    /// The first moderator (`leg`) arrived: stop everyone's hold music and
    /// announce the start with the join beep.
    fn bridge_waiting(&self, actions: &mut Vec<RoomAction>, leg: LegId) {
        for other in self.others(leg) {
            actions.push(RoomAction::HoldMusic {
                leg: other,
                on: false,
            });
        }
        actions.push(beep(PromptId::JoinBeep, leg));
    }

    /// Removes a leg (it hung up, or is being hung up). Unknown legs are
    /// ignored, so the server may call this for every leg that goes away.
    pub fn leave(&mut self, leg: LegId) -> Vec<RoomAction> {
        let mut actions = Vec::new();
        let Some(member) = self.members.remove(&leg) else {
            return actions;
        };
        if self.members.is_empty() {
            return actions;
        }
        let last_moderator = member.role == Role::Moderator && !self.has_moderator();
        if last_moderator && self.rules.end_when_moderator_leaves {
            self.end(&mut actions);
        } else if last_moderator && self.rules.require_moderator {
            for other in self.others(leg) {
                push_wait(&mut actions, other);
            }
        } else if !self.is_waiting() {
            actions.push(beep(PromptId::LeaveBeep, leg));
        }
        actions
    }

    /// Ends the conference: everyone left hears that it ended and is hung up.
    fn end(&mut self, actions: &mut Vec<RoomAction>) {
        for leg in self.members.keys().copied() {
            actions.push(RoomAction::Hangup {
                leg,
                prompts: vec![PromptId::ConferenceEnded, PromptId::Goodbye],
            });
        }
        self.members.clear();
        self.ended = true;
    }

    /// A menu command from `leg`. Commands from legs not in the room are
    /// ignored.
    pub fn menu(&mut self, leg: LegId, action: MenuAction) -> Vec<RoomAction> {
        let count = self.members.len();
        let Some(member) = self.members.get_mut(&leg) else {
            return Vec::new();
        };
        match action {
            MenuAction::ToggleMute => {
                member.muted = !member.muted;
                let prompt = if member.muted {
                    PromptId::Muted
                } else {
                    PromptId::Unmuted
                };
                vec![RoomAction::Play {
                    leg,
                    prompts: vec![prompt],
                }]
            }
            MenuAction::ParticipantCount => vec![RoomAction::Play {
                leg,
                prompts: count_prompts(count),
            }],
            MenuAction::Leave => {
                let mut actions = vec![RoomAction::Hangup {
                    leg,
                    prompts: vec![PromptId::Goodbye],
                }];
                actions.extend(self.leave(leg));
                actions
            }
        }
    }

    /// Whether the leg's audio goes into the mix: a member, not muted, and
    /// the room is not waiting for a moderator.
    pub fn may_talk(&self, leg: LegId) -> bool {
        !self.is_waiting() && self.members.get(&leg).is_some_and(|m| !m.muted)
    }

    /// Whether the leg gets the mix. False while the room waits for a
    /// moderator: the leg hears hold music instead.
    pub fn hears_others(&self, leg: LegId) -> bool {
        !self.is_waiting() && self.members.contains_key(&leg)
    }

    pub fn is_muted(&self, leg: LegId) -> bool {
        self.members.get(&leg).is_some_and(|m| m.muted)
    }

    /// Members are present but the moderator the room requires is not.
    pub fn is_waiting(&self) -> bool {
        self.rules.require_moderator && !self.members.is_empty() && !self.has_moderator()
    }

    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The room has ended (its last moderator left and it ends with them) or
    /// has nobody in it. A new room is empty, hence over, until its first
    /// join: the room task should join its first leg before checking.
    pub fn is_over(&self) -> bool {
        self.ended || self.members.is_empty()
    }

    fn has_moderator(&self) -> bool {
        self.members.values().any(|m| m.role == Role::Moderator)
    }

    fn others(&self, leg: LegId) -> Vec<LegId> {
        self.members.keys().copied().filter(|&l| l != leg).collect()
    }
}

fn beep(prompt: PromptId, except: LegId) -> RoomAction {
    RoomAction::Beep {
        prompt,
        except: Some(except),
    }
}

/// "Waiting for the moderator", then music until one arrives.
fn push_wait(actions: &mut Vec<RoomAction>, leg: LegId) {
    actions.push(RoomAction::Play {
        leg,
        prompts: vec![PromptId::WaitingForModerator],
    });
    actions.push(RoomAction::HoldMusic { leg, on: true });
}

/// "The number of participants is" followed by the number, digit by digit.
fn count_prompts(count: usize) -> Vec<PromptId> {
    let digits = count.to_string();
    let spoken = digits
        .bytes()
        .filter_map(|b| PromptId::digit(b.wrapping_sub(b'0')));
    std::iter::once(PromptId::ParticipantCount)
        .chain(spoken)
        .collect()
}

/// How long after `*` the command digit may come.
pub const MENU_TIMEOUT: Duration = Duration::from_secs(3);

/// Turns key presses inside the conference into [`MenuAction`]s, like
/// ConfBridge's default user menu: `*1` mute/unmute, `*2` participant count,
/// `*8` leave. The `*` prefix keeps ordinary digits (a caller answering
/// someone's "press 1 if you agree", a fat finger) from doing anything;
/// the timeout keeps a stray `*` from turning a later digit into a command.
///
/// Pure: keys come in with their time; the server sleeps until
/// [`MenuKeys::poll_timeout`] and then calls [`MenuKeys::handle_timeout`].
#[derive(Debug, Clone)]
pub struct MenuKeys {
    timeout: Duration,
    /// Set after `*`: the command digit must come before this.
    pending_until: Option<Instant>,
}

impl Default for MenuKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl MenuKeys {
    pub fn new() -> Self {
        Self::with_timeout(MENU_TIMEOUT)
    }

    pub fn with_timeout(timeout: Duration) -> Self {
        MenuKeys {
            timeout,
            pending_until: None,
        }
    }

    /// A key press (`0`–`9`, `*`, `#`, `A`–`D`). Returns the command it
    /// completes, if any. A second `*` starts the sequence again; any other
    /// key after `*` ends it, command or not.
    pub fn handle_key(&mut self, now: Instant, key: char) -> Option<MenuAction> {
        let armed = self.pending_until.take().is_some_and(|until| now < until);
        if key == '*' {
            self.pending_until = now.checked_add(self.timeout);
            return None;
        }
        if !armed {
            return None;
        }
        match key {
            '1' => Some(MenuAction::ToggleMute),
            '2' => Some(MenuAction::ParticipantCount),
            '8' => Some(MenuAction::Leave),
            _ => None,
        }
    }

    /// The deadline passed: a lone `*` is forgotten.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.pending_until.is_some_and(|until| now >= until) {
            self.pending_until = None;
        }
    }

    /// When the pending `*` expires, if one is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LegId = LegId(1);
    const B: LegId = LegId(2);
    const C: LegId = LegId(3);
    const M: LegId = LegId(10);
    const M2: LegId = LegId(11);

    fn room(require_moderator: bool, end_when_moderator_leaves: bool) -> Room {
        Room::new(
            "team",
            RoomRules {
                max_participants: 250,
                require_moderator,
                end_when_moderator_leaves,
            },
        )
    }

    fn play(leg: LegId, prompts: &[PromptId]) -> RoomAction {
        RoomAction::Play {
            leg,
            prompts: prompts.to_vec(),
        }
    }

    fn join_beep(except: LegId) -> RoomAction {
        beep(PromptId::JoinBeep, except)
    }

    fn wait(leg: LegId) -> [RoomAction; 2] {
        [
            play(leg, &[PromptId::WaitingForModerator]),
            RoomAction::HoldMusic { leg, on: true },
        ]
    }

    fn ended(leg: LegId) -> RoomAction {
        RoomAction::Hangup {
            leg,
            prompts: vec![PromptId::ConferenceEnded, PromptId::Goodbye],
        }
    }

    #[test]
    fn first_member_hears_they_are_alone() {
        let mut r = room(false, false);
        assert!(r.is_over(), "a new room is empty");
        assert_eq!(
            r.join(A, Role::Participant),
            Ok(vec![play(A, &[PromptId::OnlyPerson])])
        );
        assert!(r.may_talk(A) && r.hears_others(A));
        assert!(!r.is_over());
        assert_eq!(r.name(), "team");
    }

    #[test]
    fn others_hear_join_and_leave_beeps() {
        let mut r = room(false, false);
        r.join(A, Role::Participant).unwrap();
        assert_eq!(r.join(B, Role::Participant), Ok(vec![join_beep(B)]));
        assert_eq!(r.join(C, Role::Participant), Ok(vec![join_beep(C)]));
        assert_eq!(r.leave(B), vec![beep(PromptId::LeaveBeep, B)]);
        assert_eq!(r.members(), 2);
        r.leave(A);
        assert_eq!(r.leave(C), vec![], "nobody left to hear a beep");
        assert!(r.is_over());
    }

    #[test]
    fn joining_twice_and_leaving_twice_are_no_ops() {
        let mut r = room(false, false);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(r.join(A, Role::Participant), Ok(vec![]));
        assert_eq!(r.members(), 2);
        r.leave(A);
        assert_eq!(r.leave(A), vec![]);
        assert_eq!(r.leave(LegId(99)), vec![]);
    }

    #[test]
    fn a_full_room_refuses_participants_but_not_moderators() {
        let mut r = Room::new(
            "small",
            RoomRules {
                max_participants: 2,
                ..Default::default()
            },
        );
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(r.join(C, Role::Participant), Err(JoinError::Full));
        assert_eq!(r.members(), 2);
        assert!(!r.may_talk(C));
        assert_eq!(r.join(M, Role::Moderator), Ok(vec![join_beep(M)]));
        r.leave(A);
        r.leave(B);
        assert!(
            r.join(C, Role::Participant).is_ok(),
            "room for one more again"
        );
    }

    #[test]
    fn default_rules() {
        let rules = RoomRules::default();
        assert_eq!(rules.max_participants, 250);
        assert!(!rules.require_moderator && !rules.end_when_moderator_leaves);
    }

    #[test]
    fn participants_wait_for_the_moderator() {
        let mut r = room(true, false);
        assert_eq!(r.join(A, Role::Participant), Ok(wait(A).to_vec()));
        assert_eq!(
            r.join(B, Role::Participant),
            Ok(wait(B).to_vec()),
            "no beep, no 'only person'"
        );
        assert!(r.is_waiting());
        for leg in [A, B] {
            assert!(!r.may_talk(leg) && !r.hears_others(leg));
        }
        assert!(!r.is_over());
    }

    #[test]
    fn the_first_moderator_starts_the_conference() {
        let mut r = room(true, false);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(
            r.join(M, Role::Moderator),
            Ok(vec![
                RoomAction::HoldMusic { leg: A, on: false },
                RoomAction::HoldMusic { leg: B, on: false },
                join_beep(M),
            ])
        );
        assert!(!r.is_waiting());
        for leg in [A, B, M] {
            assert!(r.may_talk(leg) && r.hears_others(leg));
        }
        // A second moderator and later participants just beep in.
        assert_eq!(r.join(M2, Role::Moderator), Ok(vec![join_beep(M2)]));
        assert_eq!(r.join(C, Role::Participant), Ok(vec![join_beep(C)]));
    }

    #[test]
    fn a_moderator_alone_hears_they_are_alone() {
        let mut r = room(true, false);
        assert_eq!(
            r.join(M, Role::Moderator),
            Ok(vec![play(M, &[PromptId::OnlyPerson])])
        );
        assert_eq!(r.join(A, Role::Participant), Ok(vec![join_beep(A)]));
    }

    #[test]
    fn the_conference_ends_with_its_last_moderator() {
        let mut r = room(true, true);
        r.join(M, Role::Moderator).unwrap();
        r.join(M2, Role::Moderator).unwrap();
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(
            r.leave(M),
            vec![beep(PromptId::LeaveBeep, M)],
            "another moderator remains"
        );
        assert_eq!(r.leave(M2), vec![ended(A), ended(B)]);
        assert!(r.is_over());
        assert_eq!(r.members(), 0);
        assert_eq!(r.leave(A), vec![], "hung-up legs are already gone");
        assert!(!r.may_talk(B));
    }

    #[test]
    fn ending_also_applies_without_require_moderator() {
        let mut r = room(false, true);
        r.join(A, Role::Participant).unwrap();
        r.join(M, Role::Moderator).unwrap();
        assert_eq!(r.leave(M), vec![ended(A)]);
        assert!(r.is_over());
        // Without a moderator ever joining, participants just come and go.
        let mut r = room(false, true);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(r.leave(A), vec![beep(PromptId::LeaveBeep, A)]);
    }

    #[test]
    fn an_ended_room_can_start_again() {
        let mut r = room(true, true);
        r.join(M, Role::Moderator).unwrap();
        r.join(A, Role::Participant).unwrap();
        r.leave(M);
        assert!(r.is_over());
        assert_eq!(r.join(B, Role::Participant), Ok(wait(B).to_vec()));
        assert!(!r.is_over());
    }

    #[test]
    fn without_ending_the_others_wait_again_when_a_moderator_is_required() {
        let mut r = room(true, false);
        r.join(M, Role::Moderator).unwrap();
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        let mut expected = wait(A).to_vec();
        expected.extend(wait(B));
        assert_eq!(r.leave(M), expected);
        assert!(r.is_waiting() && !r.is_over());
        assert!(!r.hears_others(A) && !r.may_talk(B));
        // A moderator coming back bridges them again.
        assert_eq!(
            r.join(M2, Role::Moderator),
            Ok(vec![
                RoomAction::HoldMusic { leg: A, on: false },
                RoomAction::HoldMusic { leg: B, on: false },
                join_beep(M2),
            ])
        );
    }

    #[test]
    fn without_ending_or_requirement_the_room_goes_on() {
        let mut r = room(false, false);
        r.join(M, Role::Moderator).unwrap();
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(r.leave(M), vec![beep(PromptId::LeaveBeep, M)]);
        assert!(r.may_talk(A) && r.hears_others(B));
    }

    #[test]
    fn leaving_while_waiting_is_silent() {
        let mut r = room(true, false);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(r.leave(A), vec![]);
        assert!(r.is_waiting());
    }

    #[test]
    fn mute_toggles_with_a_prompt() {
        let mut r = room(false, false);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(
            r.menu(A, MenuAction::ToggleMute),
            vec![play(A, &[PromptId::Muted])]
        );
        assert!(!r.may_talk(A) && r.hears_others(A) && r.is_muted(A));
        assert!(r.may_talk(B));
        assert_eq!(
            r.menu(A, MenuAction::ToggleMute),
            vec![play(A, &[PromptId::Unmuted])]
        );
        assert!(r.may_talk(A));
    }

    #[test]
    fn mute_survives_waiting() {
        let mut r = room(true, false);
        r.join(A, Role::Participant).unwrap();
        r.menu(A, MenuAction::ToggleMute);
        r.join(M, Role::Moderator).unwrap();
        assert!(!r.may_talk(A) && r.hears_others(A));
    }

    #[test]
    fn participant_count_is_spoken_digit_by_digit() {
        let mut r = room(false, false);
        for i in 0..12 {
            r.join(LegId(i), Role::Participant).unwrap();
        }
        assert_eq!(
            r.menu(LegId(0), MenuAction::ParticipantCount),
            vec![play(
                LegId(0),
                &[
                    PromptId::ParticipantCount,
                    PromptId::Digit1,
                    PromptId::Digit2
                ]
            )]
        );
        assert_eq!(
            count_prompts(0),
            vec![PromptId::ParticipantCount, PromptId::Digit0]
        );
        assert_eq!(
            count_prompts(250)[1..],
            [PromptId::Digit2, PromptId::Digit5, PromptId::Digit0]
        );
    }

    #[test]
    fn leave_key_says_goodbye_and_hangs_up() {
        let mut r = room(false, false);
        r.join(A, Role::Participant).unwrap();
        r.join(B, Role::Participant).unwrap();
        assert_eq!(
            r.menu(A, MenuAction::Leave),
            vec![
                RoomAction::Hangup {
                    leg: A,
                    prompts: vec![PromptId::Goodbye]
                },
                beep(PromptId::LeaveBeep, A),
            ]
        );
        assert_eq!(r.members(), 1);
        assert_eq!(r.leave(A), vec![], "the BYE that follows changes nothing");
    }

    #[test]
    fn leave_key_of_the_last_moderator_ends_the_conference() {
        let mut r = room(false, true);
        r.join(M, Role::Moderator).unwrap();
        r.join(A, Role::Participant).unwrap();
        assert_eq!(
            r.menu(M, MenuAction::Leave),
            vec![
                RoomAction::Hangup {
                    leg: M,
                    prompts: vec![PromptId::Goodbye]
                },
                ended(A)
            ]
        );
        assert!(r.is_over());
    }

    #[test]
    fn menu_from_a_stranger_is_ignored() {
        let mut r = room(false, false);
        r.join(A, Role::Participant).unwrap();
        assert_eq!(r.menu(B, MenuAction::Leave), vec![]);
        assert_eq!(r.menu(B, MenuAction::ToggleMute), vec![]);
        assert_eq!(r.members(), 1);
    }

    // --- menu keys ---

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn star_then_digit_maps_to_the_default_menu() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::new();
        for (digit, action) in [
            ('1', MenuAction::ToggleMute),
            ('2', MenuAction::ParticipantCount),
            ('8', MenuAction::Leave),
        ] {
            assert_eq!(keys.handle_key(t0, '*'), None);
            assert_eq!(keys.poll_timeout(), Some(t0 + MENU_TIMEOUT));
            assert_eq!(keys.handle_key(ms(t0, 500), digit), Some(action));
            assert_eq!(keys.poll_timeout(), None);
        }
    }

    #[test]
    fn digits_without_star_do_nothing() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::new();
        for key in ['1', '2', '8', '#', '5'] {
            assert_eq!(keys.handle_key(t0, key), None);
        }
        assert_eq!(keys.poll_timeout(), None);
    }

    #[test]
    fn a_lone_star_times_out() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::new();
        keys.handle_key(t0, '*');
        keys.handle_timeout(ms(t0, 2999));
        assert_eq!(keys.poll_timeout(), Some(t0 + MENU_TIMEOUT), "not yet");
        keys.handle_timeout(t0 + MENU_TIMEOUT);
        assert_eq!(keys.poll_timeout(), None);
        assert_eq!(keys.handle_key(ms(t0, 3100), '8'), None);
    }

    #[test]
    fn a_digit_after_the_deadline_is_not_a_command_even_without_the_timer() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::new();
        keys.handle_key(t0, '*');
        assert_eq!(
            keys.handle_key(ms(t0, 2999), '1'),
            Some(MenuAction::ToggleMute)
        );
        keys.handle_key(t0, '*');
        assert_eq!(keys.handle_key(t0 + MENU_TIMEOUT, '1'), None);
    }

    #[test]
    fn a_second_star_restarts_and_other_keys_cancel() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::new();
        keys.handle_key(t0, '*');
        keys.handle_key(ms(t0, 2000), '*');
        assert_eq!(keys.poll_timeout(), Some(ms(t0, 5000)));
        assert_eq!(
            keys.handle_key(ms(t0, 4000), '2'),
            Some(MenuAction::ParticipantCount)
        );
        // An unmapped key after * ends the sequence.
        keys.handle_key(t0, '*');
        assert_eq!(keys.handle_key(t0, '5'), None);
        assert_eq!(keys.handle_key(t0, '1'), None);
        assert_eq!(keys.poll_timeout(), None);
    }

    #[test]
    fn timeout_is_configurable() {
        let t0 = Instant::now();
        let mut keys = MenuKeys::with_timeout(Duration::from_secs(1));
        keys.handle_key(t0, '*');
        assert_eq!(keys.handle_key(ms(t0, 1500), '1'), None);
    }
}
