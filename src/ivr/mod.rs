//! The call script as a state machine. Inputs are what happened to the call
//! (answered, a prompt finished, a digit, a deadline); outputs are what the
//! call should do (play, stop, hang up). No I/O and no clock: the call task
//! passes `now` in and sleeps until [`Ivr::poll_timeout`].

pub mod prompts;

use std::collections::VecDeque;
use std::time::Instant;

use prompts::PromptId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The call is up (ACK received) and media can flow.
    Answered,
    /// The prompts of the last `Play` have all been played.
    PlaybackFinished,
    /// A key press, from any DTMF method.
    Digit(char),
    /// The deadline from `poll_timeout` passed.
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Play these prompts in order, replacing whatever is playing.
    Play(Vec<PromptId>),
    /// Stop playback (barge-in).
    StopPlayback,
    /// End the call.
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitingForAnswer,
    Welcome,
    Goodbye,
    Done,
}

/// The foundation flow: greet, say goodbye, hang up. The PIN and OTP flows
/// extend this machine.
#[derive(Debug)]
pub struct Ivr {
    state: State,
    deadline: Option<Instant>,
    out: VecDeque<Output>,
}

impl Default for Ivr {
    fn default() -> Self {
        Self::new()
    }
}

impl Ivr {
    pub fn new() -> Self {
        Ivr {
            state: State::WaitingForAnswer,
            deadline: None,
            out: VecDeque::new(),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        let _ = now;
        match (self.state, input) {
            (State::WaitingForAnswer, Input::Answered) => {
                self.state = State::Welcome;
                self.out.push_back(Output::Play(vec![PromptId::Welcome]));
            }
            (State::Welcome, Input::PlaybackFinished) => {
                self.state = State::Goodbye;
                self.out.push_back(Output::Play(vec![PromptId::Goodbye]));
            }
            (State::Goodbye, Input::PlaybackFinished) => {
                self.state = State::Done;
                self.out.push_back(Output::Hangup);
            }
            _ => {}
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(ivr: &mut Ivr) -> Vec<Output> {
        std::iter::from_fn(|| ivr.poll_output()).collect()
    }

    #[test]
    fn greets_says_goodbye_and_hangs_up() {
        let now = Instant::now();
        let mut ivr = Ivr::new();
        assert!(drain(&mut ivr).is_empty());
        ivr.handle(now, Input::Answered);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Welcome])]);
        ivr.handle(now, Input::Digit('5'));
        assert!(drain(&mut ivr).is_empty(), "no digit handling in this flow");
        ivr.handle(now, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Play(vec![PromptId::Goodbye])]);
        ivr.handle(now, Input::PlaybackFinished);
        assert_eq!(drain(&mut ivr), vec![Output::Hangup]);
        assert!(ivr.is_done());
    }
}
