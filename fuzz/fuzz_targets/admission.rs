//! The admission core driven by an arbitrary sequence of reports, in and
//! out of turn, on a fake clock: codes and passcodes from the IVR, the
//! guard's reservations and refusals, comparisons, dial-in redemptions,
//! passcode checks, counted failures, the passcode send, and time passing.
//!
//! Input: byte 0 picks the line (a conference of each flow, the lobby);
//! then pairs `op, arg`.
//!
//! Properties checked beyond "no panic":
//! - no verdict admits (code accepted, passcode approved) unless, since the
//!   previous verdict, the guard reserved the attempt and the core settled
//!   it as a success: nothing is compared before it is counted;
//! - a comparison, redemption or passcode check is asked for only after a
//!   reservation, and never two at once;
//! - where the core says the caller joins is a conference the line reaches
//!   (the lobby never admits to a passcode conference).

#![no_main]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pinbridge::conference::admission::{
    AdmissionRules, CallAdmission, ConferenceEntry, ConferenceFlow, Input, KnownCaller, OtpCheck,
    Output, PinCandidates, Redeemed, Route, Settlement,
};
use pinbridge::conference::guard::LockReason;
use pinbridge::conference::pin::PinSecret;
use pinbridge::conference::room::Role;
use pinbridge::ivr::{self, CodeVerdict, EnteredCode, GatherRules, OtpVerdict};

const CODES: [&str; 6] = ["1234", "9999", "5555", "7777", "8888", "000000"];
const NAMES: [&str; 4] = ["standup", "board", "vault", "nowhere"];

fn entry(name: &str, flow: ConferenceFlow, pin: &str, moderator: &str) -> ConferenceEntry {
    ConferenceEntry {
        name: name.to_string(),
        flow,
        pin: PinSecret::plain(pin).ok(),
        moderator_pin: PinSecret::plain(moderator).ok(),
        gather: GatherRules::default(),
    }
}

fn rules() -> Arc<AdmissionRules> {
    Arc::new(AdmissionRules {
        conferences: vec![
            entry("standup", ConferenceFlow::Pin, "1234", "9999"),
            entry("board", ConferenceFlow::Otp, "5555", "5556"),
            entry("vault", ConferenceFlow::PinOtp, "7777", "8888"),
        ],
        keypad_idle_timeout: Duration::from_secs(10),
        lobby_gather: GatherRules::default(),
        otp_code_length: 6,
        verification: true,
    })
}

/// What the harness has been asked and has seen since the last verdict.
#[derive(Default)]
struct Shell {
    reserve_asked: bool,
    reserved: bool,
    succeeded: bool,
    compare: Option<(PinCandidates, EnteredCode)>,
    other_request: bool,
}

impl Shell {
    fn take_outputs(&mut self, a: &mut CallAdmission, reaches: impl Fn(usize) -> bool) {
        while let Some(out) = a.poll_output() {
            match out {
                Output::Reserve => {
                    assert!(!self.pending(), "a second request while one is open");
                    self.reserve_asked = true;
                }
                Output::ComparePins { candidates, code } => {
                    assert!(self.reserved, "compared before the guard reserved");
                    assert!(!self.pending(), "a second request while one is open");
                    self.compare = Some((candidates, code));
                }
                Output::RedeemDialin { reachable, .. } => {
                    assert!(self.reserved, "dial-in redeemed before the guard reserved");
                    assert!(!self.pending(), "a second request while one is open");
                    for name in &reachable {
                        let i = NAMES.iter().position(|n| n == name);
                        assert!(i.is_some_and(&reaches), "unreachable dial-in {name}");
                    }
                    self.other_request = true;
                }
                Output::CheckPasscode { .. } => {
                    assert!(self.reserved, "passcode checked before the guard reserved");
                    assert!(!self.pending(), "a second request while one is open");
                    self.other_request = true;
                }
                Output::Settle(s) => {
                    assert!(self.reserved, "settled an attempt never reserved");
                    if let Settlement::Succeeded { .. } = s {
                        self.succeeded = true;
                    }
                }
                Output::Verdict(v) => {
                    let admits = matches!(
                        v,
                        ivr::Input::CodeVerdict(CodeVerdict::Accepted)
                            | ivr::Input::OtpVerdict(OtpVerdict::Approved)
                    );
                    if admits {
                        assert!(
                            self.reserved && self.succeeded,
                            "admitted without the guard"
                        );
                    }
                    // A failed send's verdict may come in the middle of a
                    // check; only the verdict that ends one starts afresh.
                    if !a.is_checking() {
                        *self = Shell::default();
                    }
                }
            }
        }
        if let Some((i, _)) = a.join() {
            assert!(
                reaches(i),
                "joins conference {i}, which the line does not reach"
            );
        }
    }

    fn pending(&self) -> bool {
        self.reserve_asked || self.compare.is_some() || self.other_request
    }
}

fuzz_target!(|data: &[u8]| {
    let [line, ref ops @ ..] = *data else {
        return;
    };
    let route = match line % 4 {
        0 => Route::Conference(0),
        1 => Route::Conference(1),
        2 => Route::Conference(2),
        _ => Route::Lobby,
    };
    let reaches = |i: usize| match route {
        Route::Conference(r) => r == i,
        _ => i == 0,
    };
    let caller = (line & 4 != 0).then(|| KnownCaller {
        phone: "+15550001111".to_string(),
        moderator: line & 8 != 0,
    });
    let mut now = Instant::now();
    let mut a = CallAdmission::new(rules(), route, caller);
    let mut shell = Shell::default();
    let mut queue: VecDeque<u8> = ops.iter().copied().collect();
    while let (Some(op), Some(arg)) = (queue.pop_front(), queue.pop_front()) {
        let code = || EnteredCode::new(CODES[usize::from(arg) % CODES.len()]);
        let input = match op % 10 {
            0 => Input::Code(code()),
            1 => Input::Passcode(code()),
            2 => {
                if shell.reserve_asked {
                    shell.reserve_asked = false;
                    shell.reserved = true;
                }
                Input::Reserved {
                    delay: Duration::from_millis(u64::from(arg) * 10),
                }
            }
            3 => {
                shell.reserve_asked = false;
                Input::ReserveRefused
            }
            4 => match shell.compare.take() {
                // Answered truthfully when asked; otherwise anything.
                Some((candidates, code)) => Input::PinsCompared(candidates.matching(&code)),
                None => Input::PinsCompared(Some((usize::from(arg % 5), Role::Moderator))),
            },
            5 => {
                shell.other_request = false;
                Input::DialinRedeemed((arg & 1 == 1).then(|| Redeemed {
                    conference: NAMES[usize::from(arg >> 1) % NAMES.len()].to_string(),
                    moderator: arg & 0x80 != 0,
                }))
            }
            6 => {
                shell.other_request = false;
                Input::PasscodeChecked(
                    [OtpCheck::Approved, OtpCheck::Wrong, OtpCheck::Failed][usize::from(arg % 3)],
                )
            }
            7 => Input::FailureCounted(match arg % 5 {
                0 => None,
                1 => Some(LockReason::Caller),
                2 => Some(LockReason::SourceIp),
                3 => Some(LockReason::Conference),
                _ => Some(LockReason::TrustedSource),
            }),
            8 => Input::PasscodeSent((arg & 1 == 1).then(|| format!("VE{arg}"))),
            _ => {
                now += Duration::from_millis(u64::from(arg) * 10);
                if a.poll_timeout().is_some_and(|t| now >= t) {
                    a.handle_timeout(now);
                }
                shell.take_outputs(&mut a, reaches);
                continue;
            }
        };
        a.handle(now, input);
        shell.take_outputs(&mut a, reaches);
    }
});
