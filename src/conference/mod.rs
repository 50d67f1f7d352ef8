//! Conference decisions as pure state: who may get in ([`admission`],
//! [`guard`]) and what happens once they are in ([`room`], [`room_media`]).
//!
//! - [`admission::CallAdmission`] turns a caller's codes into a verdict
//!   (which conference, which role), in the guard's reserve-compare-settle
//!   order.
//! - [`guard::BruteForceGuard`] counts wrong PINs per caller ID, source IP
//!   and conference across calls, locks out callers and addresses that go
//!   over their limits and slows the answers of a conference under attack.
//!   Asterisk ConfBridge and FreeSWITCH mod_conference only limit the tries
//!   within one call; redialling resets them.
//! - [`room::Room`] keeps the members of one room and turns arrivals,
//!   departures and menu commands into [`room::RoomAction`]s (prompts,
//!   beeps, hold music, hang-ups): the only-person announcement, join and
//!   leave beeps, the participant limit, waiting for a moderator and ending
//!   with them, mute and participant count. [`room::MenuKeys`] turns `*`
//!   + digit key presses into menu commands.
//! - [`room_media::RoomMedia`] is a room's media: each leg's RTP session,
//!   jitter buffer, DTMF and prompts, the mixer, and who hears what
//!   according to the [`room::Room`], driven by datagrams and a 20 ms tick.
//!
//! Like the other cores, nothing here reads a clock, owns a socket or spawns
//! a task: the server passes datagrams and `now` in, sends what comes out
//! and carries out the decisions.

pub mod admission;
pub mod guard;
pub mod pin;
pub mod room;
pub mod room_media;

pub use guard::{Admission, BruteForceGuard, GuardLimits, LockReason, Refusal, Verdict};
pub use room::{JoinError, LegId, MenuAction, MenuKeys, Role, Room, RoomAction, RoomRules};
