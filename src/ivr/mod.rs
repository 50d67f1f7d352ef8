//! The call script as a state machine. Inputs are what happened to the call
//! (answered, a prompt finished, a digit, a verdict on a code, a deadline);
//! outputs are what the call should do (play, stop, check a code, join,
//! hang up). No I/O and no clock: the call task passes `now` in and sleeps
//! until [`Ivr::poll_timeout`].
//!
//! Flows:
//! - [`Flow::Greeting`]: welcome, goodbye, hang up.
//! - [`Flow::KeypadTest`]: reads back every key the caller presses (a test
//!   line for phones and trunks: which keys arrive, and once each).
//! - [`Flow::Pin`]: welcome, gather the conference code with barge-in,
//!   have it checked, join or retry, goodbye after the last attempt.

pub mod prompts;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use prompts::PromptId;

/// A code the caller keyed. Its Debug output is redacted so that it cannot
/// reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct EnteredCode(String);

impl EnteredCode {
    pub fn new(digits: impl Into<String>) -> Self {
        EnteredCode(digits.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnteredCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnteredCode(<{} digits>)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The call is up (ACK received) and media can flow.
    Answered,
    /// The prompts of the last `Play`/`Enqueue` have all been played.
    PlaybackFinished,
    /// A key press, from any DTMF method.
    Digit(char),
    /// The answer to `Output::VerifyCode`.
    CodeVerdict(CodeVerdict),
    /// The answer to `Output::VerifyOtp`.
    OtpVerdict(OtpVerdict),
    /// The deadline from `poll_timeout` passed.
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeVerdict {
    /// Right code: join (the shell knows which conference and role).
    Accepted,
    Rejected,
    /// Too many failures from this caller or address: say so and hang up.
    LockedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpVerdict {
    Approved,
    /// Wrong code; the verification is still pending.
    Wrong,
    /// Expired, too many wrong codes, or the code could not be sent.
    Failed,
    /// Too many wrong codes from this caller or address across calls: say
    /// so and hang up.
    LockedOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Play these prompts in order, replacing whatever is playing.
    Play(Vec<PromptId>),
    /// Append these prompts after whatever is playing.
    Enqueue(Vec<PromptId>),
    /// Stop playback (barge-in).
    StopPlayback,
    /// Check this code; answer with `Input::CodeVerdict`.
    VerifyCode(EnteredCode),
    /// Send the caller's participant a one-time passcode.
    SendOtp,
    /// Check this one-time passcode; answer with `Input::OtpVerdict`.
    VerifyOtp(EnteredCode),
    /// Append the caller's recorded name, if there is one.
    EnqueueCallerName,
    /// The code was right and the caller heard "joining": bridge them.
    Join,
    /// End the call.
    Hangup,
}

/// How a code is keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeLength {
    /// Exactly this many digits; no `#` needed.
    Fixed(usize),
    /// Up to this many digits, ended by `#` (or the inter-digit timeout).
    HashTerminated { max: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherRules {
    pub length: CodeLength,
    /// Silence after the prompt before it is repeated.
    pub first_digit_timeout: Duration,
    /// Silence after a digit before the entry counts as finished.
    pub inter_digit_timeout: Duration,
    /// Wrong codes (and unanswered prompts) before goodbye.
    pub max_attempts: u32,
}

impl Default for GatherRules {
    fn default() -> Self {
        GatherRules {
            length: CodeLength::HashTerminated { max: 20 },
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Greeting,
    KeypadTest {
        idle_timeout: Duration,
    },
    Pin(GatherRules),
    /// Known callers only: a code is sent to the participant, who keys it.
    Otp {
        otp: GatherRules,
        known_caller: bool,
    },
    /// The PIN, then a one-time passcode (high-security rooms).
    PinOtp {
        pin: GatherRules,
        otp: GatherRules,
        known_caller: bool,
    },
}

/// Which code is being gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pin,
    Otp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitingForAnswer,
    // Greeting
    Welcome,
    // Keypad test
    Echoing,
    // PIN
    Gathering,
    Verifying,
    /// Playing "incorrect" (+ the prompt again); gathering resumes when
    /// it ends or at the first key.
    Retrying,
    Joining,
    Joined,
    /// Playing goodbye; hang up when it ends.
    Goodbye,
    Done,
}

/// Keeps at most this many digits of an entry (longer input is cut off and
/// will be wrong), so memory is bounded whatever a caller sends.
const MAX_ENTRY: usize = 32;

#[derive(Debug)]
pub struct Ivr {
    flow: Flow,
    stage: Stage,
    state: State,
    entry: String,
    attempts: u32,
    /// Prompts repeated because nobody keyed anything.
    unanswered: u32,
    prompt_playing: bool,
    deadline: Option<Instant>,
    out: VecDeque<Output>,
}

impl Ivr {
    pub fn new(flow: Flow) -> Self {
        Ivr {
            flow,
            stage: Stage::Pin,
            state: State::WaitingForAnswer,
            entry: String::new(),
            attempts: 0,
            unanswered: 0,
            prompt_playing: false,
            deadline: None,
            out: VecDeque::new(),
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn is_joined(&self) -> bool {
        self.state == State::Joined
    }

    /// Wrong codes so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    fn play(&mut self, prompts: Vec<PromptId>) {
        self.prompt_playing = true;
        self.out.push_back(Output::Play(prompts));
    }

    fn goodbye(&mut self, prompts: Vec<PromptId>) {
        self.state = State::Goodbye;
        self.deadline = None;
        self.play(prompts);
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        if input == Input::PlaybackFinished {
            self.prompt_playing = false;
        }
        if input == Input::Timer && self.deadline.is_some_and(|d| now < d) {
            return;
        }
        match self.flow {
            Flow::Greeting => self.greeting(input),
            Flow::KeypadTest { idle_timeout } => self.keypad(now, input, idle_timeout),
            Flow::Pin(rules) => self.pin(now, input, rules),
            Flow::Otp { otp, known_caller } => {
                if self.state == State::WaitingForAnswer && input == Input::Answered {
                    self.answer_known(known_caller, |ivr| ivr.start_otp(true));
                    return;
                }
                self.pin(now, input, otp)
            }
            Flow::PinOtp {
                pin,
                otp,
                known_caller,
            } => {
                if self.state == State::WaitingForAnswer && input == Input::Answered {
                    self.answer_known(known_caller, |ivr| {
                        ivr.state = State::Gathering;
                        ivr.play(vec![PromptId::Welcome, PromptId::EnterCode]);
                    });
                    return;
                }
                let rules = if self.stage == Stage::Otp { otp } else { pin };
                self.pin(now, input, rules)
            }
        }
    }

    /// One-time passcodes go to known participants only: an unknown
    /// caller hears so and is hung up.
    fn answer_known(&mut self, known: bool, start: impl FnOnce(&mut Ivr)) {
        if known {
            start(self);
        } else {
            self.goodbye(vec![PromptId::UnknownCaller, PromptId::Goodbye]);
        }
    }

    /// Sends the code and asks for it ("Welcome <name>. Please enter the
    /// 6-digit code sent to your device.").
    fn start_otp(&mut self, welcome: bool) {
        self.stage = Stage::Otp;
        self.state = State::Gathering;
        self.entry.clear();
        self.attempts = 0;
        self.unanswered = 0;
        self.deadline = None;
        self.out.push_back(Output::SendOtp);
        if welcome {
            self.play(vec![PromptId::WelcomeName]);
            self.out.push_back(Output::EnqueueCallerName);
            self.out
                .push_back(Output::Enqueue(vec![PromptId::EnterOtp]));
        } else {
            self.play(vec![PromptId::EnterOtp]);
        }
    }

    fn ask_prompt(&self) -> PromptId {
        match self.stage {
            Stage::Pin => PromptId::EnterCode,
            Stage::Otp => PromptId::EnterOtp,
        }
    }

    fn greeting(&mut self, input: Input) {
        match (self.state, input) {
            (State::WaitingForAnswer, Input::Answered) => {
                self.state = State::Welcome;
                self.play(vec![PromptId::Welcome]);
            }
            (State::Welcome, Input::PlaybackFinished) => self.goodbye(vec![PromptId::Goodbye]),
            (State::Goodbye, Input::PlaybackFinished) => self.finish(),
            _ => {}
        }
    }

    fn finish(&mut self) {
        self.state = State::Done;
        self.deadline = None;
        self.out.push_back(Output::Hangup);
    }

    fn keypad(&mut self, now: Instant, input: Input, idle: Duration) {
        match (self.state, input) {
            (State::WaitingForAnswer, Input::Answered) => {
                // The idle timer starts when the welcome has been heard.
                self.state = State::Echoing;
                self.play(vec![PromptId::Welcome]);
            }
            (State::Echoing, Input::PlaybackFinished) => self.deadline = Some(now + idle),
            (State::Echoing, Input::Digit(k)) => {
                // Digits are read back; other keys get a beep.
                let p = k
                    .to_digit(10)
                    .and_then(|d| PromptId::digit(d as u8))
                    .unwrap_or(PromptId::JoinBeep);
                self.prompt_playing = true;
                self.out.push_back(Output::Enqueue(vec![p]));
                self.deadline = Some(now + idle);
            }
            (State::Echoing, Input::Timer) => self.goodbye(vec![PromptId::Goodbye]),
            (State::Goodbye, Input::PlaybackFinished) => self.finish(),
            _ => {}
        }
    }

    fn pin(&mut self, now: Instant, input: Input, rules: GatherRules) {
        match (self.state, input) {
            (State::WaitingForAnswer, Input::Answered) => {
                self.state = State::Gathering;
                self.play(vec![PromptId::Welcome, PromptId::EnterCode]);
            }
            (State::Gathering | State::Retrying, Input::Digit(k)) => {
                self.gather_digit(now, k, rules)
            }
            (State::Gathering, Input::PlaybackFinished) => {
                // The prompt ended: wait for the first digit (or the next).
                let wait = if self.entry.is_empty() {
                    rules.first_digit_timeout
                } else {
                    rules.inter_digit_timeout
                };
                self.deadline = Some(now + wait);
            }
            (State::Retrying, Input::PlaybackFinished) => {
                self.state = State::Gathering;
                self.deadline = Some(now + rules.first_digit_timeout);
            }
            (State::Gathering, Input::Timer) => {
                if self.entry.is_empty() {
                    self.unanswered += 1;
                    if self.unanswered >= rules.max_attempts {
                        self.goodbye(vec![PromptId::Goodbye]);
                    } else {
                        self.deadline = None;
                        let p = self.ask_prompt();
                        self.play(vec![p]);
                    }
                } else {
                    self.submit();
                }
            }
            (State::Verifying, Input::CodeVerdict(v)) if self.stage == Stage::Pin => {
                self.verdict(v, rules)
            }
            (State::Verifying, Input::OtpVerdict(v)) if self.stage == Stage::Otp => {
                self.otp_verdict(v, rules)
            }
            (State::Joining, Input::PlaybackFinished) => {
                self.state = State::Joined;
                self.out.push_back(Output::Join);
            }
            (State::Goodbye, Input::PlaybackFinished) => self.finish(),
            _ => {}
        }
    }

    fn gather_digit(&mut self, now: Instant, key: char, rules: GatherRules) {
        // Barge-in: a key during a prompt stops it and counts.
        if self.prompt_playing {
            self.prompt_playing = false;
            self.out.push_back(Output::StopPlayback);
        }
        self.state = State::Gathering;
        match key {
            '#' => {
                if self.entry.is_empty() {
                    // A bare # (e.g. caller pressed it to skip the prompt).
                    self.deadline = Some(now + rules.first_digit_timeout);
                } else {
                    self.submit();
                }
                return;
            }
            // Star starts the entry over, as callers expect from IVRs.
            '*' => {
                self.entry.clear();
                self.deadline = Some(now + rules.first_digit_timeout);
                return;
            }
            _ => {}
        }
        if self.entry.len() < MAX_ENTRY {
            self.entry.push(key);
        }
        match rules.length {
            CodeLength::Fixed(n) if self.entry.len() >= n => self.submit(),
            CodeLength::HashTerminated { max } if self.entry.len() > max => self.submit(),
            _ => self.deadline = Some(now + rules.inter_digit_timeout),
        }
    }

    fn submit(&mut self) {
        self.state = State::Verifying;
        self.deadline = None;
        self.unanswered = 0;
        let code = EnteredCode(std::mem::take(&mut self.entry));
        self.out.push_back(match self.stage {
            Stage::Pin => Output::VerifyCode(code),
            Stage::Otp => Output::VerifyOtp(code),
        });
    }

    fn otp_verdict(&mut self, v: OtpVerdict, rules: GatherRules) {
        match v {
            OtpVerdict::Approved => {
                self.state = State::Joining;
                self.play(vec![PromptId::Correct]);
            }
            OtpVerdict::Failed => self.goodbye(vec![PromptId::Goodbye]),
            OtpVerdict::LockedOut => self.goodbye(vec![PromptId::LockedOut, PromptId::Goodbye]),
            OtpVerdict::Wrong => {
                self.attempts += 1;
                if self.attempts >= rules.max_attempts {
                    self.goodbye(vec![PromptId::Goodbye]);
                } else {
                    self.state = State::Retrying;
                    self.play(vec![PromptId::TryAgain]);
                }
            }
        }
    }

    fn verdict(&mut self, v: CodeVerdict, rules: GatherRules) {
        match v {
            CodeVerdict::Accepted if matches!(self.flow, Flow::PinOtp { .. }) => {
                self.start_otp(true)
            }
            CodeVerdict::Accepted => {
                self.state = State::Joining;
                self.play(vec![PromptId::Joining]);
            }
            CodeVerdict::LockedOut => self.goodbye(vec![PromptId::LockedOut, PromptId::Goodbye]),
            CodeVerdict::Rejected => {
                self.attempts += 1;
                if self.attempts >= rules.max_attempts {
                    self.goodbye(vec![PromptId::CodeIncorrect, PromptId::Goodbye]);
                } else {
                    self.state = State::Retrying;
                    self.play(vec![PromptId::CodeIncorrect, PromptId::EnterCode]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(ivr: &mut Ivr) -> Vec<Output> {
        std::iter::from_fn(|| ivr.poll_output()).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn keys(ivr: &mut Ivr, now: Instant, s: &str) -> Vec<Output> {
        for k in s.chars() {
            ivr.handle(now, Input::Digit(k));
        }
        drain(ivr)
    }

    fn code(outs: &[Output]) -> Option<String> {
        outs.iter().find_map(|o| match o {
            Output::VerifyCode(c) => Some(c.expose().to_string()),
            _ => None,
        })
    }

    #[test]
    fn greeting_flow() {
        let now = Instant::now();
        let mut ivr = Ivr::new(Flow::Greeting);
        ivr.handle(now, Input::Answered);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Welcome])]);
        ivr.handle(now, Input::Digit('5'));
        assert!(drain(&mut ivr).is_empty());
        ivr.handle(now, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Goodbye])]);
        ivr.handle(now, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Hangup]);
        assert!(ivr.is_done());
    }

    #[test]
    fn keypad_test_reads_back_each_key_then_times_out() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::KeypadTest {
            idle_timeout: secs(10),
        });
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        assert_eq!(
            ivr.poll_timeout(),
            None,
            "idle time counts after the welcome"
        );
        let out = keys(&mut ivr, t0, "19#");
        assert_eq!(
            out,
            vec![
                Output::Enqueue(vec![PromptId::Digit1]),
                Output::Enqueue(vec![PromptId::Digit9]),
                Output::Enqueue(vec![PromptId::JoinBeep])
            ]
        );
        ivr.handle(t0 + secs(2), Input::PlaybackFinished);
        assert_eq!(ivr.poll_timeout(), Some(t0 + secs(12)));
        ivr.handle(t0 + secs(12), Input::Timer);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Goodbye])]);
    }

    #[test]
    fn right_code_with_hash_joins() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::Welcome, PromptId::EnterCode])]
        );
        // Barge-in: the first key stops the prompt.
        let out = keys(&mut ivr, t0, "1234#");
        assert_eq!(out[0], Output::StopPlayback);
        assert_eq!(code(&out).as_deref(), Some("1234"));
        ivr.handle(t0, Input::CodeVerdict(CodeVerdict::Accepted));
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Joining])]);
        ivr.handle(t0, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Join]);
        assert!(ivr.is_joined());
    }

    #[test]
    fn fixed_length_needs_no_hash() {
        let t0 = Instant::now();
        let rules = GatherRules {
            length: CodeLength::Fixed(6),
            ..GatherRules::default()
        };
        let mut ivr = Ivr::new(Flow::Pin(rules));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        assert_eq!(code(&keys(&mut ivr, t0, "12345")), None);
        assert_eq!(code(&keys(&mut ivr, t0, "6")).as_deref(), Some("123456"));
    }

    #[test]
    fn wrong_code_three_times_says_goodbye() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        for attempt in 1..=3 {
            keys(&mut ivr, t0, "9999#");
            ivr.handle(t0, Input::CodeVerdict(CodeVerdict::Rejected));
            let out = drain(&mut ivr);
            if attempt < 3 {
                assert_eq!(
                    out,
                    vec![Output::Play(vec![
                        PromptId::CodeIncorrect,
                        PromptId::EnterCode
                    ])]
                );
            } else {
                assert_eq!(
                    out,
                    vec![Output::Play(vec![
                        PromptId::CodeIncorrect,
                        PromptId::Goodbye
                    ])]
                );
            }
        }
        ivr.handle(t0, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Hangup]);
        assert_eq!(ivr.attempts(), 3);
    }

    #[test]
    fn silence_repeats_the_prompt_then_goodbye() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        ivr.handle(t0 + secs(3), Input::PlaybackFinished);
        assert_eq!(ivr.poll_timeout(), Some(t0 + secs(8)));
        ivr.handle(t0 + secs(7), Input::Timer);
        assert!(drain(&mut ivr).is_empty(), "early timer ignored");
        ivr.handle(t0 + secs(8), Input::Timer);
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::EnterCode])]
        );
        ivr.handle(t0 + secs(11), Input::PlaybackFinished);
        ivr.handle(t0 + secs(16), Input::Timer);
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::EnterCode])]
        );
        ivr.handle(t0 + secs(19), Input::PlaybackFinished);
        ivr.handle(t0 + secs(24), Input::Timer);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Goodbye])]);
    }

    #[test]
    fn inter_digit_timeout_submits_what_was_keyed() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        keys(&mut ivr, t0, "12");
        assert_eq!(ivr.poll_timeout(), Some(t0 + secs(5)));
        ivr.handle(t0 + secs(5), Input::Timer);
        assert_eq!(code(&drain(&mut ivr)).as_deref(), Some("12"));
    }

    #[test]
    fn star_restarts_the_entry_and_keys_during_verification_are_ignored() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        let out = keys(&mut ivr, t0, "55*12#");
        assert_eq!(code(&out).as_deref(), Some("12"));
        assert!(keys(&mut ivr, t0, "99#").is_empty());
    }

    #[test]
    fn lockout_says_so_and_hangs_up() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        keys(&mut ivr, t0, "1#");
        ivr.handle(t0, Input::CodeVerdict(CodeVerdict::LockedOut));
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::LockedOut, PromptId::Goodbye])]
        );
    }

    fn otp_rules() -> GatherRules {
        GatherRules {
            length: CodeLength::Fixed(6),
            ..GatherRules::default()
        }
    }

    fn otp_code(outs: &[Output]) -> Option<String> {
        outs.iter().find_map(|o| match o {
            Output::VerifyOtp(c) => Some(c.expose().to_string()),
            _ => None,
        })
    }

    #[test]
    fn otp_unknown_caller_is_refused() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Otp {
            otp: otp_rules(),
            known_caller: false,
        });
        ivr.handle(t0, Input::Answered);
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![
                PromptId::UnknownCaller,
                PromptId::Goodbye
            ])]
        );
        ivr.handle(t0, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Hangup]);
    }

    #[test]
    fn otp_flow_sends_welcomes_by_name_and_joins_on_the_right_code() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Otp {
            otp: otp_rules(),
            known_caller: true,
        });
        ivr.handle(t0, Input::Answered);
        assert_eq!(
            drain(&mut ivr),
            vec![
                Output::SendOtp,
                Output::Play(vec![PromptId::WelcomeName]),
                Output::EnqueueCallerName,
                Output::Enqueue(vec![PromptId::EnterOtp])
            ]
        );
        let out = keys(&mut ivr, t0, "123456");
        assert_eq!(otp_code(&out).as_deref(), Some("123456"));
        ivr.handle(t0, Input::OtpVerdict(OtpVerdict::Approved));
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Correct])]);
        ivr.handle(t0, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Join]);
    }

    #[test]
    fn otp_wrong_code_says_try_again_then_goodbye_at_the_limit() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Otp {
            otp: otp_rules(),
            known_caller: true,
        });
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        for attempt in 1..=3 {
            keys(&mut ivr, t0, "000000");
            ivr.handle(t0, Input::OtpVerdict(OtpVerdict::Wrong));
            let out = drain(&mut ivr);
            let want = if attempt < 3 {
                vec![PromptId::TryAgain]
            } else {
                vec![PromptId::Goodbye]
            };
            assert_eq!(out, vec![Output::Play(want)], "attempt {attempt}");
        }
    }

    #[test]
    fn otp_failure_ends_the_call() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Otp {
            otp: otp_rules(),
            known_caller: true,
        });
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        keys(&mut ivr, t0, "111111");
        ivr.handle(t0, Input::OtpVerdict(OtpVerdict::Failed));
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Goodbye])]);
    }

    #[test]
    fn a_locked_out_passcode_entry_says_so_and_ends_the_call() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Otp {
            otp: otp_rules(),
            known_caller: true,
        });
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        keys(&mut ivr, t0, "111111");
        ivr.handle(t0, Input::OtpVerdict(OtpVerdict::LockedOut));
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::LockedOut, PromptId::Goodbye])]
        );
        ivr.handle(t0, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Hangup]);
    }

    #[test]
    fn pin_then_otp() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::PinOtp {
            pin: GatherRules::default(),
            otp: otp_rules(),
            known_caller: true,
        });
        ivr.handle(t0, Input::Answered);
        assert_eq!(
            drain(&mut ivr),
            vec![Output::Play(vec![PromptId::Welcome, PromptId::EnterCode])]
        );
        let out = keys(&mut ivr, t0, "1234#");
        assert_eq!(code(&out).as_deref(), Some("1234"));
        // An OTP verdict while the PIN is being checked is ignored.
        ivr.handle(t0, Input::OtpVerdict(OtpVerdict::Approved));
        assert!(drain(&mut ivr).is_empty());
        ivr.handle(t0, Input::CodeVerdict(CodeVerdict::Accepted));
        let out = drain(&mut ivr);
        assert_eq!(out[0], Output::SendOtp);
        assert_eq!(
            otp_code(&keys(&mut ivr, t0, "654321")).as_deref(),
            Some("654321")
        );
        ivr.handle(t0, Input::OtpVerdict(OtpVerdict::Approved));
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Correct])]);
    }

    #[test]
    fn entered_code_debug_is_redacted() {
        let c = EnteredCode::new("424242");
        assert_eq!(format!("{c:?}"), "EnteredCode(<6 digits>)");
    }

    #[test]
    fn digits_while_retry_prompt_plays_barge_in() {
        let t0 = Instant::now();
        let mut ivr = Ivr::new(Flow::Pin(GatherRules::default()));
        ivr.handle(t0, Input::Answered);
        drain(&mut ivr);
        keys(&mut ivr, t0, "1#");
        ivr.handle(t0, Input::CodeVerdict(CodeVerdict::Rejected));
        drain(&mut ivr);
        let out = keys(&mut ivr, t0, "1234#");
        assert_eq!(out[0], Output::StopPlayback);
        assert_eq!(code(&out).as_deref(), Some("1234"));
    }
}
