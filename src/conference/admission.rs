//! Who gets into which conference, decided without I/O.
//!
//! Two parts:
//!
//! - [`AdmissionRules`] (one per process, built from the config) answers the
//!   questions a call asks before its first prompt: where the dialled number
//!   leads and with which gathering rules ([`AdmissionRules::plan`]),
//!   whether a passcode conference needs the caller looked up first, and
//!   whether a locked-out caller is refused before answering
//!   ([`screen`]).
//! - [`CallAdmission`] (one per call) checks each code the IVR gathers. A
//!   check is a fixed sequence of steps the call task carries out and
//!   reports back, in the sans-I/O style of the other cores: reserve the
//!   attempt with the brute-force guard *before* comparing anything (the
//!   atomic reserve-then-count step: no more guesses get a verdict per
//!   window than the limit), compare against every PIN the line admits to
//!   (or redeem a dial-in code, or check a one-time passcode), settle the
//!   reservation as a success or a failure, and map the guard's answer to
//!   the verdict the IVR hears. The verdict is held until the delay the
//!   guard asked for has passed ([`CallAdmission::poll_timeout`]); the call
//!   task meanwhile keeps its media running.
//!
//! Nothing here reads a clock, owns a socket or awaits: `now` comes in with
//! each input, and the steps that take time (argon2 hashes, the store, the
//! verification service, waiting on the guard) are [`Output`]s the shell
//! performs and answers with an [`Input`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conference::guard::{LockReason, Verdict};
use crate::conference::pin::PinSecret;
use crate::conference::room::Role;
use crate::ivr::{self, CodeLength, CodeVerdict, EnteredCode, Flow, GatherRules, OtpVerdict};

/// Where a dialled number leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    KeypadTest,
    Lobby,
    /// Index into the configured conferences.
    Conference(usize),
    NotFound,
}

/// Which check a conference asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConferenceFlow {
    #[default]
    Pin,
    /// Known caller IDs only; a code is sent to the participant.
    Otp,
    /// Both: the PIN, then a code sent to the participant.
    PinOtp,
}

impl ConferenceFlow {
    pub fn from_name(s: &str) -> Option<ConferenceFlow> {
        match s {
            "pin" => Some(ConferenceFlow::Pin),
            "otp" => Some(ConferenceFlow::Otp),
            "pin+otp" => Some(ConferenceFlow::PinOtp),
            _ => None,
        }
    }

    /// Whether callers key a PIN (the `otp` flow has none).
    pub fn asks_for_pin(self) -> bool {
        self != ConferenceFlow::Otp
    }

    /// Whether a `[lobby]` may admit to the conference: only plain PIN
    /// conferences, because a lobby admits on the PIN alone and would skip
    /// the passcode of the other flows.
    pub fn reachable_from_lobby(self) -> bool {
        self == ConferenceFlow::Pin
    }
}

/// What admission needs to know about one conference.
#[derive(Clone)]
pub struct ConferenceEntry {
    pub name: String,
    pub flow: ConferenceFlow,
    pub pin: Option<PinSecret>,
    pub moderator_pin: Option<PinSecret>,
    pub gather: GatherRules,
}

/// The admission rules of the whole configuration.
#[derive(Clone)]
pub struct AdmissionRules {
    /// In the order of the config (a [`Route::Conference`] indexes it).
    pub conferences: Vec<ConferenceEntry>,
    /// The keypad test line hangs up after this much silence.
    pub keypad_idle_timeout: Duration,
    /// How the lobby gathers its PIN.
    pub lobby_gather: GatherRules,
    /// Digits of a one-time passcode.
    pub otp_code_length: u8,
    /// Whether the verification service runs (passcodes and dial-in codes
    /// need it).
    pub verification: bool,
}

/// Why a call is refused before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuse {
    /// No conference for the dialled number.
    NoSuchNumber,
    /// A passcode conference while the verification service is off.
    PasscodesUnavailable,
    /// The caller or their address is locked out.
    LockedOut,
}

impl Refuse {
    pub fn status(self) -> u16 {
        match self {
            Refuse::NoSuchNumber => 404,
            Refuse::PasscodesUnavailable => 503,
            Refuse::LockedOut => 403,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refuse::NoSuchNumber => "Not Found",
            Refuse::PasscodesUnavailable => "Service Unavailable",
            Refuse::LockedOut => "Forbidden",
        }
    }
}

/// What a call on a route does first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallPlan {
    Refuse(Refuse),
    /// Run the IVR with this flow.
    Run(Flow),
    /// A passcode conference: look the caller up in the directory, then
    /// take the flow from [`AdmissionRules::flow_for_caller`].
    IdentifyCaller {
        conference: usize,
    },
}

impl AdmissionRules {
    /// The first decision about a call on `route`.
    pub fn plan(&self, route: Route) -> CallPlan {
        match route {
            Route::NotFound => CallPlan::Refuse(Refuse::NoSuchNumber),
            Route::KeypadTest => CallPlan::Run(Flow::KeypadTest {
                idle_timeout: self.keypad_idle_timeout,
            }),
            Route::Lobby => CallPlan::Run(Flow::Pin(self.lobby_gather)),
            Route::Conference(i) => {
                let Some(c) = self.conferences.get(i) else {
                    return CallPlan::Run(Flow::Pin(GatherRules::default()));
                };
                match c.flow {
                    ConferenceFlow::Pin => CallPlan::Run(Flow::Pin(c.gather)),
                    _ if !self.verification => CallPlan::Refuse(Refuse::PasscodesUnavailable),
                    _ => CallPlan::IdentifyCaller { conference: i },
                }
            }
        }
    }

    /// The flow of passcode conference `i` for a caller the directory knows
    /// (or not: the IVR then says it does not recognise the number).
    pub fn flow_for_caller(&self, i: usize, known_caller: bool) -> Flow {
        let (flow, pin) = self
            .conferences
            .get(i)
            .map(|c| (c.flow, c.gather))
            .unwrap_or_default();
        let otp = GatherRules {
            length: CodeLength::Fixed(usize::from(self.otp_code_length)),
            ..pin
        };
        match flow {
            ConferenceFlow::Pin => Flow::Pin(pin),
            ConferenceFlow::Otp => Flow::Otp { otp, known_caller },
            ConferenceFlow::PinOtp => Flow::PinOtp {
                pin,
                otp,
                known_caller,
            },
        }
    }

    /// The name the brute-force guard counts a route's attempts under.
    pub fn guard_scope(&self, route: Route) -> &str {
        match route {
            Route::Conference(i) => self.conferences.get(i).map_or("", |c| c.name.as_str()),
            _ => "lobby",
        }
    }

    /// The conference's name, for logs.
    pub fn name(&self, i: usize) -> &str {
        self.conferences.get(i).map_or("", |c| c.name.as_str())
    }

    /// Whether the lobby may admit to conference `i`.
    fn lobby_admits(&self, i: usize) -> bool {
        self.conferences
            .get(i)
            .is_some_and(|c| c.flow.reachable_from_lobby())
    }

    /// Whether a code entered on `route` may admit to conference `i`.
    fn route_reaches(&self, route: Route, i: usize) -> bool {
        match route {
            Route::Conference(r) => r == i,
            Route::Lobby => self.lobby_admits(i),
            _ => false,
        }
    }

    /// Every PIN a code entered on `route` is compared against: the
    /// conference's own, or on the lobby every plain-PIN conference's.
    pub fn pin_candidates(&self, route: Route) -> PinCandidates {
        let mut candidates = Vec::new();
        for (i, c) in self.conferences.iter().enumerate() {
            if !self.route_reaches(route, i) {
                continue;
            }
            if let Some(p) = &c.moderator_pin {
                candidates.push((i, Role::Moderator, p.clone()));
            }
            if let Some(p) = &c.pin {
                candidates.push((i, Role::Participant, p.clone()));
            }
        }
        PinCandidates(candidates)
    }

    /// The conferences whose dial-in codes a route may use up.
    pub fn dialin_reachable(&self, route: Route) -> Vec<String> {
        self.conferences
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.route_reaches(route, i))
            .map(|(_, c)| c.name.clone())
            .collect()
    }

    /// What a redeemed dial-in code admits to, checked again against the
    /// route (the store was asked only for reachable conferences, but the
    /// answer comes from outside).
    fn redeemed_admits(&self, route: Route, redeemed: &Redeemed) -> Option<(usize, Role)> {
        let i = self
            .conferences
            .iter()
            .position(|c| c.name == redeemed.conference)?;
        if !self.route_reaches(route, i) {
            return None;
        }
        let role = if redeemed.moderator {
            Role::Moderator
        } else {
            Role::Participant
        };
        Some((i, role))
    }
}

/// Whether a flow takes a code (and so is screened by the guard).
pub fn takes_codes(flow: &Flow) -> bool {
    !matches!(flow, Flow::KeypadTest { .. } | Flow::Greeting)
}

/// A caller the guard has locked out is refused before answering.
pub fn screen(verdict: &Verdict) -> Result<(), Refuse> {
    match verdict {
        Verdict::LockedOut { .. } => Err(Refuse::LockedOut),
        _ => Ok(()),
    }
}

/// The PINs one code is compared against, with what each admits to.
#[derive(Clone)]
pub struct PinCandidates(Vec<(usize, Role, PinSecret)>);

impl PinCandidates {
    /// What `code` admits to. Every candidate is compared (no early exit,
    /// so the time taken does not say which PIN came close); plain PINs in
    /// constant time, hashed ones with argon2, so call this off the async
    /// runtime. A moderator PIN wins over an equal participant PIN.
    pub fn matching(&self, code: &EnteredCode) -> Option<(usize, Role)> {
        let mut found = None;
        for (i, role, pin) in &self.0 {
            if pin.verify(code.expose()) && found.is_none() {
                found = Some((*i, *role));
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Says how many PINs, never which.
impl std::fmt::Debug for PinCandidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinCandidates({} PINs)", self.0.len())
    }
}

/// A dial-in code the verification service redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub conference: String,
    /// The participant it was issued to is a moderator.
    pub moderator: bool,
}

/// A caller the directory knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCaller {
    /// Where their passcodes go (E.164).
    pub phone: String,
    pub moderator: bool,
}

/// Which verification a keyed passcode is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpTarget {
    /// The one this call started.
    Verification(String),
    /// Until the send has reported: the participant's pending one.
    Destination(String),
}

/// What the verification service said about a keyed passcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpCheck {
    Approved,
    /// Wrong, and the verification is still pending (or none matched).
    Wrong,
    /// Expired, used up, or the check itself failed.
    Failed,
}

/// Which secret a settled attempt was about (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    Pin,
    Passcode,
}

impl Secret {
    pub fn as_str(self) -> &'static str {
        match self {
            Secret::Pin => "code",
            Secret::Passcode => "passcode",
        }
    }
}

/// How a reserved attempt is settled with the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The right code: the reservation is released without counting. For a
    /// PIN or dial-in code, what it admits to.
    Succeeded { admits: Option<(usize, Role)> },
    /// A wrong code: the failure counts. Answer with
    /// [`Input::FailureCounted`].
    Failed(Secret),
}

/// What the call task reports to [`CallAdmission::handle`].
#[derive(Debug)]
pub enum Input {
    /// The IVR gathered a PIN (or dial-in code).
    Code(EnteredCode),
    /// The IVR gathered a one-time passcode.
    Passcode(EnteredCode),
    /// The guard reserved the attempt and asks for the verdict to wait
    /// this long.
    Reserved { delay: Duration },
    /// The guard refused the attempt: the caller is locked out.
    ReserveRefused,
    /// The answer to [`Output::ComparePins`].
    PinsCompared(Option<(usize, Role)>),
    /// The answer to [`Output::RedeemDialin`].
    DialinRedeemed(Option<Redeemed>),
    /// The answer to [`Output::CheckPasscode`].
    PasscodeChecked(OtpCheck),
    /// The answer to [`Settlement::Failed`]: what the counted failure
    /// locked, if anything.
    FailureCounted(Option<LockReason>),
    /// The background send of the passcode finished: the verification's
    /// id, or None when it could not be sent.
    PasscodeSent(Option<String>),
}

/// What the call task must do next, in order.
#[derive(Debug)]
pub enum Output {
    /// Reserve an attempt with the brute-force guard (may wait for
    /// attempts in flight); answer `Reserved` or `ReserveRefused`.
    Reserve,
    /// Compare the code with these PINs off the async runtime
    /// ([`PinCandidates::matching`]); answer `PinsCompared`.
    ComparePins {
        candidates: PinCandidates,
        code: EnteredCode,
    },
    /// Redeem a dial-in code for one of these conferences; answer
    /// `DialinRedeemed`.
    RedeemDialin {
        code: EnteredCode,
        reachable: Vec<String>,
    },
    /// Check a passcode; answer `PasscodeChecked`.
    CheckPasscode {
        target: OtpTarget,
        code: EnteredCode,
    },
    /// Settle the reservation.
    Settle(Settlement),
    /// Give this to the IVR now.
    Verdict(ivr::Input),
}

/// The step a code check is at.
#[derive(Debug)]
enum Step {
    Idle,
    PinReserving(EnteredCode),
    PinComparing {
        code: EnteredCode,
        not_before: Instant,
    },
    DialinRedeeming {
        not_before: Instant,
    },
    PinSettling {
        not_before: Instant,
    },
    PasscodeReserving {
        target: OtpTarget,
        code: EnteredCode,
    },
    PasscodeChecking {
        not_before: Instant,
    },
    PasscodeSettling {
        not_before: Instant,
        check: OtpCheck,
    },
}

/// A verdict held back until the guard's delay has passed.
#[derive(Debug)]
struct Held {
    not_before: Instant,
    verdict: ivr::Input,
    /// What the verdict admits to when it is given: a PIN verdict always
    /// settles that (a wrong code admits to nothing); a passcode only when
    /// approved.
    admits: Option<Option<(usize, Role)>>,
}

/// The code checks of one call.
pub struct CallAdmission {
    rules: Arc<AdmissionRules>,
    route: Route,
    caller: Option<KnownCaller>,
    verification: Option<String>,
    accepted: Option<(usize, Role)>,
    step: Step,
    held: Option<Held>,
    out: VecDeque<Output>,
}

impl CallAdmission {
    /// `caller` is the directory's entry for the calling number, when a
    /// passcode conference looked it up.
    pub fn new(rules: Arc<AdmissionRules>, route: Route, caller: Option<KnownCaller>) -> Self {
        CallAdmission {
            rules,
            route,
            caller,
            verification: None,
            accepted: None,
            step: Step::Idle,
            held: None,
            out: VecDeque::new(),
        }
    }

    pub fn route(&self) -> Route {
        self.route
    }

    pub fn rules(&self) -> &AdmissionRules {
        &self.rules
    }

    /// The caller the directory knows, if any.
    pub fn caller(&self) -> Option<&KnownCaller> {
        self.caller.as_ref()
    }

    /// Whether a check is under way (an input is awaited or a verdict held).
    pub fn is_checking(&self) -> bool {
        !matches!(self.step, Step::Idle) || self.held.is_some()
    }

    /// Takes one report. Inputs that do not fit the step the check is at
    /// (a late answer, a second code while one is being checked) are
    /// ignored: the IVR asks for one code at a time and waits for its
    /// verdict.
    pub fn handle(&mut self, now: Instant, input: Input) {
        let step = std::mem::replace(&mut self.step, Step::Idle);
        self.step = match (step, input) {
            (Step::Idle, Input::Code(code)) => {
                self.out.push_back(Output::Reserve);
                Step::PinReserving(code)
            }
            (Step::Idle, Input::Passcode(code)) => self.start_passcode(now, code),
            (Step::Idle, Input::PasscodeSent(id)) => {
                if id.is_none() {
                    self.out
                        .push_back(Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Failed)));
                }
                self.verification = id;
                Step::Idle
            }
            (Step::PinReserving(_), Input::ReserveRefused) => {
                self.hold(
                    now,
                    now,
                    ivr::Input::CodeVerdict(CodeVerdict::LockedOut),
                    Some(None),
                );
                Step::Idle
            }
            (Step::PinReserving(code), Input::Reserved { delay }) => {
                let candidates = self.rules.pin_candidates(self.route);
                self.out.push_back(Output::ComparePins {
                    candidates,
                    code: code.clone(),
                });
                Step::PinComparing {
                    code,
                    not_before: now + delay,
                }
            }
            (Step::PinComparing { not_before, .. }, Input::PinsCompared(Some(m))) => {
                self.pin_succeeded(now, not_before, m)
            }
            (Step::PinComparing { code, not_before }, Input::PinsCompared(None)) => {
                // A one-time dial-in code from the web join page works in
                // place of the PIN, once, for its own conference.
                if self.rules.verification {
                    let reachable = self.rules.dialin_reachable(self.route);
                    self.out.push_back(Output::RedeemDialin { code, reachable });
                    Step::DialinRedeeming { not_before }
                } else {
                    self.pin_failed(not_before)
                }
            }
            (Step::DialinRedeeming { not_before }, Input::DialinRedeemed(redeemed)) => {
                match redeemed.and_then(|r| self.rules.redeemed_admits(self.route, &r)) {
                    Some(m) => self.pin_succeeded(now, not_before, m),
                    None => self.pin_failed(not_before),
                }
            }
            (Step::PinSettling { not_before }, Input::FailureCounted(lock)) => {
                let verdict = if locks_caller(lock) {
                    CodeVerdict::LockedOut
                } else {
                    CodeVerdict::Rejected
                };
                self.hold(
                    now,
                    not_before,
                    ivr::Input::CodeVerdict(verdict),
                    Some(None),
                );
                Step::Idle
            }
            (Step::PasscodeReserving { .. }, Input::ReserveRefused) => {
                self.hold(
                    now,
                    now,
                    ivr::Input::OtpVerdict(OtpVerdict::LockedOut),
                    None,
                );
                Step::Idle
            }
            (Step::PasscodeReserving { target, code }, Input::Reserved { delay }) => {
                self.out.push_back(Output::CheckPasscode { target, code });
                Step::PasscodeChecking {
                    not_before: now + delay,
                }
            }
            (Step::PasscodeChecking { not_before }, Input::PasscodeChecked(check)) => {
                if check == OtpCheck::Approved {
                    self.out
                        .push_back(Output::Settle(Settlement::Succeeded { admits: None }));
                    // A passcode admits to the conference of the line, as
                    // a participant, unless a PIN already admitted (the
                    // pin+otp flow keeps the PIN's role).
                    let admits = match self.route {
                        Route::Conference(i) if self.accepted.is_none() => {
                            Some(Some((i, Role::Participant)))
                        }
                        _ => None,
                    };
                    self.hold(
                        now,
                        not_before,
                        ivr::Input::OtpVerdict(OtpVerdict::Approved),
                        admits,
                    );
                    Step::Idle
                } else {
                    self.out
                        .push_back(Output::Settle(Settlement::Failed(Secret::Passcode)));
                    Step::PasscodeSettling { not_before, check }
                }
            }
            (Step::PasscodeSettling { not_before, check }, Input::FailureCounted(lock)) => {
                let verdict = match check {
                    _ if locks_caller(lock) => OtpVerdict::LockedOut,
                    OtpCheck::Failed => OtpVerdict::Failed,
                    _ => OtpVerdict::Wrong,
                };
                self.hold(now, not_before, ivr::Input::OtpVerdict(verdict), None);
                Step::Idle
            }
            // The passcode's send may report while a check is under way.
            (step, Input::PasscodeSent(id)) => {
                if id.is_none() {
                    self.out
                        .push_back(Output::Verdict(ivr::Input::OtpVerdict(OtpVerdict::Failed)));
                }
                self.verification = id;
                step
            }
            (step, _) => step,
        };
    }

    /// Checks a passcode against this call's verification or, until its
    /// send has reported, the participant's pending one; with neither there
    /// is nothing to check (and no attempt is counted).
    fn start_passcode(&mut self, now: Instant, code: EnteredCode) -> Step {
        let target = match (&self.verification, &self.caller) {
            (Some(id), _) => OtpTarget::Verification(id.clone()),
            (None, Some(c)) => OtpTarget::Destination(c.phone.clone()),
            (None, None) => {
                self.hold(now, now, ivr::Input::OtpVerdict(OtpVerdict::Failed), None);
                return Step::Idle;
            }
        };
        self.out.push_back(Output::Reserve);
        Step::PasscodeReserving { target, code }
    }

    fn pin_succeeded(&mut self, now: Instant, not_before: Instant, m: (usize, Role)) -> Step {
        self.out
            .push_back(Output::Settle(Settlement::Succeeded { admits: Some(m) }));
        self.hold(
            now,
            not_before,
            ivr::Input::CodeVerdict(CodeVerdict::Accepted),
            Some(Some(m)),
        );
        Step::Idle
    }

    fn pin_failed(&mut self, not_before: Instant) -> Step {
        self.out
            .push_back(Output::Settle(Settlement::Failed(Secret::Pin)));
        Step::PinSettling { not_before }
    }

    /// Gives a verdict now if it is due, or holds it until `not_before`.
    fn hold(
        &mut self,
        now: Instant,
        not_before: Instant,
        verdict: ivr::Input,
        admits: Option<Option<(usize, Role)>>,
    ) {
        let held = Held {
            not_before,
            verdict,
            admits,
        };
        if now >= not_before {
            self.give(held);
        } else {
            self.held = Some(held);
        }
    }

    fn give(&mut self, held: Held) {
        if let Some(a) = held.admits {
            self.accepted = a;
        }
        self.out.push_back(Output::Verdict(held.verdict));
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When a held verdict is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.as_ref().map(|h| h.not_before)
    }

    /// Gives a held verdict whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.held.as_ref().is_some_and(|h| now >= h.not_before) {
            if let Some(h) = self.held.take() {
                self.give(h);
            }
        }
    }

    /// Where the caller goes when the IVR says join: the conference and
    /// role the last verdict admitted to, a moderator in the directory
    /// always as moderator. None: nothing admitted (hang up).
    pub fn join(&self) -> Option<(usize, Role)> {
        let (i, role) = self.accepted?;
        let moderator = self.caller.as_ref().is_some_and(|c| c.moderator);
        Some((i, if moderator { Role::Moderator } else { role }))
    }
}

/// Whether a counted failure locked out the caller (or their address),
/// which ends the call; a conference slowed under attack or a paced
/// trusted source does not.
fn locks_caller(lock: Option<LockReason>) -> bool {
    matches!(lock, Some(LockReason::Caller) | Some(LockReason::SourceIp))
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
