//! The prompts the call flows use: shipped recordings embedded in the
//! binary (so one binary runs anywhere), each replaceable by the operator's
//! own WAV from the config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::media::prompt::{Prompt, PromptError};

macro_rules! prompt_ids {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A prompt the IVR can play.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PromptId { $($variant),* }

        impl PromptId {
            pub const ALL: &'static [PromptId] = &[$(PromptId::$variant),*];

            /// The name used in the config and the shipped file name
            /// (`prompts/<name>.wav`).
            pub fn name(self) -> &'static str {
                match self { $(PromptId::$variant => $name),* }
            }

            fn embedded(self) -> &'static [u8] {
                match self { $(PromptId::$variant => include_bytes!(concat!("../../prompts/", $name, ".wav"))),* }
            }
        }
    };
}

prompt_ids! {
    Welcome => "welcome",
    EnterCode => "enter_code",
    CodeIncorrect => "code_incorrect",
    Joining => "joining",
    Goodbye => "goodbye",
    UnknownCaller => "unknown_caller",
    EnterOtp => "enter_otp",
    TryAgain => "try_again",
    Correct => "correct",
    WaitingForModerator => "waiting_for_moderator",
    OnlyPerson => "only_person",
    Muted => "muted",
    Unmuted => "unmuted",
    ParticipantCount => "participant_count",
    LockedOut => "locked_out",
    ConferenceFull => "conference_full",
    ConferenceEnded => "conference_ended",
    YourCodeIs => "your_code_is",
    RepeatCode => "repeat_code",
    WelcomeName => "welcome_name",
    Digit0 => "digit_0",
    Digit1 => "digit_1",
    Digit2 => "digit_2",
    Digit3 => "digit_3",
    Digit4 => "digit_4",
    Digit5 => "digit_5",
    Digit6 => "digit_6",
    Digit7 => "digit_7",
    Digit8 => "digit_8",
    Digit9 => "digit_9",
    JoinBeep => "join_beep",
    LeaveBeep => "leave_beep",
    HoldMusic => "hold_music",
}

impl PromptId {
    pub fn from_name(name: &str) -> Option<PromptId> {
        PromptId::ALL.iter().copied().find(|p| p.name() == name)
    }

    pub fn names() -> Vec<&'static str> {
        PromptId::ALL.iter().map(|p| p.name()).collect()
    }

    /// The prompt that speaks digit `d` (0–9).
    pub fn digit(d: u8) -> Option<PromptId> {
        const DIGITS: [PromptId; 10] = [
            PromptId::Digit0,
            PromptId::Digit1,
            PromptId::Digit2,
            PromptId::Digit3,
            PromptId::Digit4,
            PromptId::Digit5,
            PromptId::Digit6,
            PromptId::Digit7,
            PromptId::Digit8,
            PromptId::Digit9,
        ];
        DIGITS.get(usize::from(d)).copied()
    }
}

/// Every prompt, decoded and pre-encoded once at start-up and shared by all
/// calls.
#[derive(Debug, Clone)]
pub struct PromptSet {
    prompts: Arc<BTreeMap<PromptId, Prompt>>,
}

impl PromptSet {
    /// The shipped prompts, with the operator's files where configured.
    pub fn load(overrides: &BTreeMap<PromptId, PathBuf>) -> Result<PromptSet, PromptError> {
        let mut prompts = BTreeMap::new();
        for &id in PromptId::ALL {
            let p = match overrides.get(&id) {
                Some(path) => Prompt::from_file(path)?,
                None => {
                    Prompt::from_wav_bytes(&format!("prompts/{}.wav", id.name()), id.embedded())?
                }
            };
            prompts.insert(id, p);
        }
        Ok(PromptSet {
            prompts: Arc::new(prompts),
        })
    }

    /// This set with some prompts replaced (a conference's own recordings).
    /// Unchanged prompts are shared, not copied.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<PromptId, PathBuf>,
    ) -> Result<PromptSet, PromptError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut prompts = (*self.prompts).clone();
        for (id, path) in overrides {
            prompts.insert(*id, Prompt::from_file(path)?);
        }
        Ok(PromptSet {
            prompts: Arc::new(prompts),
        })
    }

    /// Every prompt made by `make`: short, recognisable prompts for tests
    /// and fuzzing.
    pub fn from_fn(mut make: impl FnMut(PromptId) -> Prompt) -> PromptSet {
        let prompts = PromptId::ALL.iter().map(|&id| (id, make(id))).collect();
        PromptSet {
            prompts: Arc::new(prompts),
        }
    }

    pub fn get(&self, id: PromptId) -> &Prompt {
        // load() fills every id, so the lookup cannot miss.
        &self.prompts[&id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_prompt_loads_as_8k_audio() {
        let set = PromptSet::load(&BTreeMap::new()).expect("shipped prompts load");
        for &id in PromptId::ALL {
            let p = set.get(id);
            assert!(!p.samples().is_empty(), "{} is empty", id.name());
            assert!(p.duration().as_secs_f64() < 60.0, "{} too long", id.name());
        }
    }

    #[test]
    fn names_round_trip() {
        for &id in PromptId::ALL {
            assert_eq!(PromptId::from_name(id.name()), Some(id));
        }
        assert_eq!(PromptId::digit(7), Some(PromptId::Digit7));
        assert_eq!(PromptId::digit(10), None);
    }
}
