//! The numbers callers dial and what they find there: `[[conference]]`
//! (names, numbers, PINs, flow, room rules), the `[lobby]` where the PIN
//! picks the conference, and the `[keypad_test]` line. The lobby and the
//! conferences share how a code is gathered.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::otp::{ChannelKind, ConferenceFlow, OtpSettings};
use super::{media, ConferenceSettings, ConfigError, Ctx, KeypadTestSettings, LobbySettings, Seg};
use crate::conference::pin::PinSecret;
use crate::conference::room::RoomRules;
use crate::ivr::{CodeLength, GatherRules};
use crate::media::dtmf::DtmfMode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeypadTest {
    numbers: Vec<String>,
    #[serde(default = "ten")]
    idle_timeout_secs: i64,
}

fn ten() -> i64 {
    10
}

/// How a code is gathered; shared by conferences and the lobby.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawGather {
    #[serde(default)]
    pin_length: i64,
    #[serde(default = "five")]
    first_digit_timeout_secs: i64,
    #[serde(default = "five")]
    inter_digit_timeout_secs: i64,
    #[serde(default = "three")]
    max_attempts: i64,
}

fn five() -> i64 {
    5
}

fn three() -> i64 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLobby {
    numbers: Vec<String>,
    #[serde(flatten)]
    gather: RawGather,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConference {
    name: String,
    #[serde(default = "all_numbers")]
    numbers: Vec<String>,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default)]
    pin_hash: Option<String>,
    #[serde(default)]
    moderator_pin: Option<String>,
    #[serde(default)]
    moderator_pin_hash: Option<String>,
    #[serde(default)]
    pin_length: i64,
    #[serde(default = "five")]
    first_digit_timeout_secs: i64,
    #[serde(default = "five")]
    inter_digit_timeout_secs: i64,
    #[serde(default = "three")]
    max_attempts: i64,
    #[serde(default = "max_participants")]
    max_participants: i64,
    #[serde(default)]
    require_moderator: bool,
    #[serde(default)]
    end_when_moderator_leaves: bool,
    #[serde(default = "three")]
    max_talkers: i64,
    #[serde(default)]
    dtmf_mode: Option<String>,
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    flow: Option<String>,
    #[serde(default)]
    otp_channels: Vec<String>,
}

fn max_participants() -> i64 {
    250
}

fn all_numbers() -> Vec<String> {
    vec!["*".into()]
}

/// How a code is gathered, for the section at `prefix` (the lobby or one
/// conference).
fn gather(ctx: &Ctx<'_>, g: &RawGather, prefix: &[Seg<'_>]) -> Result<GatherRules, ConfigError> {
    let at = |key: &'static str| {
        let mut v = prefix.to_vec();
        v.push(Seg::Key(key));
        v
    };
    let length = match g.pin_length {
        0 => CodeLength::HashTerminated { max: 20 },
        n @ 1..=20 => CodeLength::Fixed(n as usize),
        _ => {
            return Err(ctx.err(
                &at("pin_length"),
                "must be 0 (any length, ended by #) or 1 to 20".into(),
            ))
        }
    };
    let timeout = |v: i64, key: &'static str| {
        if (1..=120).contains(&v) {
            Ok(Duration::from_secs(v as u64))
        } else {
            Err(ctx.err(&at(key), "must be between 1 and 120 seconds".into()))
        }
    };
    if !(1..=20).contains(&g.max_attempts) {
        return Err(ctx.err(&at("max_attempts"), "must be between 1 and 20".into()));
    }
    Ok(GatherRules {
        length,
        first_digit_timeout: timeout(g.first_digit_timeout_secs, "first_digit_timeout_secs")?,
        inter_digit_timeout: timeout(g.inter_digit_timeout_secs, "inter_digit_timeout_secs")?,
        max_attempts: g.max_attempts as u32,
    })
}

/// `[keypad_test]`, if present: an idle timeout from 1 to 600 seconds.
pub(super) fn validate_keypad_test(
    ctx: &Ctx<'_>,
    raw: Option<&RawKeypadTest>,
) -> Result<Option<KeypadTestSettings>, ConfigError> {
    let Some(k) = raw else { return Ok(None) };
    if !(1..=600).contains(&k.idle_timeout_secs) {
        return Err(ctx.err(
            &[Seg::Key("keypad_test"), Seg::Key("idle_timeout_secs")],
            "must be between 1 and 600".into(),
        ));
    }
    Ok(Some(KeypadTestSettings {
        numbers: k.numbers.clone(),
        idle_timeout: Duration::from_secs(k.idle_timeout_secs as u64),
    }))
}

/// `[lobby]`, if present: at least one number, and how the PIN is gathered.
pub(super) fn validate_lobby(
    ctx: &Ctx<'_>,
    raw: Option<&RawLobby>,
) -> Result<Option<LobbySettings>, ConfigError> {
    let Some(l) = raw else { return Ok(None) };
    if l.numbers.is_empty() {
        return Err(ctx.err(
            &[Seg::Key("lobby"), Seg::Key("numbers")],
            "needs at least one number".into(),
        ));
    }
    Ok(Some(LobbySettings {
        numbers: l.numbers.clone(),
        gather: gather(ctx, &l.gather, &[Seg::Key("lobby")])?,
    }))
}

/// Every `[[conference]]`, in order: at least one, names unique, and with a
/// `[lobby]` (`has_lobby`) no PIN shared by two conferences it can reach.
pub(super) fn validate_conferences(
    ctx: &Ctx<'_>,
    raw: &[RawConference],
    has_lobby: bool,
) -> Result<Vec<ConferenceSettings>, ConfigError> {
    let mut conferences: Vec<ConferenceSettings> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let conference = validate_conference(ctx, i, c, &conferences)?;
        conferences.push(conference);
    }
    if conferences.is_empty() {
        return Err(ctx.err(
            &[Seg::Key("conference")],
            "at least one [[conference]] is needed".into(),
        ));
    }
    if has_lobby {
        check_lobby_pins(ctx, &conferences)?;
    }
    Ok(conferences)
}

/// `[[conference]]` number `i`; `earlier` are the ones before it.
fn validate_conference(
    ctx: &Ctx<'_>,
    i: usize,
    c: &RawConference,
    earlier: &[ConferenceSettings],
) -> Result<ConferenceSettings, ConfigError> {
    let at = |key| [Seg::Key("conference"), Seg::Index(i), Seg::Key(key)];
    if c.name.trim().is_empty() {
        return Err(ctx.err(&at("name"), "must not be empty".into()));
    }
    if earlier.iter().any(|o| o.name == c.name) {
        return Err(ctx.err(
            &at("name"),
            format!("conference `{}` is defined twice", c.name),
        ));
    }
    if c.numbers.is_empty() {
        return Err(ctx.err(
            &at("numbers"),
            "needs at least one number (or \"*\")".into(),
        ));
    }
    let flow = match &c.flow {
        None => ConferenceFlow::Pin,
        Some(f) => ConferenceFlow::from_name(f)
            .ok_or_else(|| ctx.err(&at("flow"), format!("`{f}` is not pin, otp or pin+otp")))?,
    };
    let (pin, moderator_pin) = validate_pins(ctx, i, c, flow)?;
    let prefix = [Seg::Key("conference"), Seg::Index(i)];
    let rg = RawGather {
        pin_length: c.pin_length,
        first_digit_timeout_secs: c.first_digit_timeout_secs,
        inter_digit_timeout_secs: c.inter_digit_timeout_secs,
        max_attempts: c.max_attempts,
    };
    if !(1..=10_000).contains(&c.max_participants) {
        return Err(ctx.err(
            &at("max_participants"),
            "must be between 1 and 10000".into(),
        ));
    }
    if !(1..=10).contains(&c.max_talkers) {
        return Err(ctx.err(&at("max_talkers"), "must be between 1 and 10".into()));
    }
    if c.end_when_moderator_leaves && moderator_pin.is_none() && flow == ConferenceFlow::Pin {
        return Err(ctx.err(
            &at("end_when_moderator_leaves"),
            "needs a moderator_pin (nobody could be a moderator)".into(),
        ));
    }
    if c.require_moderator && moderator_pin.is_none() && flow == ConferenceFlow::Pin {
        return Err(ctx.err(
            &at("require_moderator"),
            "needs a moderator_pin (nobody could start the conference)".into(),
        ));
    }
    let dtmf_mode = match &c.dtmf_mode {
        None => None,
        Some(m) => Some(DtmfMode::from_name(m).ok_or_else(|| {
            ctx.err(
                &at("dtmf_mode"),
                format!("`{m}` is not auto, rfc4733, inband or info"),
            )
        })?),
    };
    let mut otp_channels = Vec::new();
    for (j, ch) in c.otp_channels.iter().enumerate() {
        let kind = ChannelKind::from_name(ch).ok_or_else(|| {
            ctx.err(
                &[
                    Seg::Key("conference"),
                    Seg::Index(i),
                    Seg::Key("otp_channels"),
                    Seg::Index(j),
                ],
                format!("unknown channel `{ch}`"),
            )
        })?;
        otp_channels.push(kind);
    }
    Ok(ConferenceSettings {
        flow,
        otp_channels,
        name: c.name.clone(),
        numbers: c.numbers.clone(),
        pin,
        moderator_pin,
        gather: gather(ctx, &rg, &prefix)?,
        rules: RoomRules {
            max_participants: c.max_participants as usize,
            require_moderator: c.require_moderator,
            end_when_moderator_leaves: c.end_when_moderator_leaves,
        },
        max_talkers: c.max_talkers as usize,
        dtmf_mode,
        prompt_files: media::prompt_files(ctx, &c.prompts, &at("prompts"))?,
    })
}

/// The participant and moderator PINs of conference `i`: each plain or
/// hashed but not both, none at all with `flow = "otp"`, and not the same
/// PIN twice. A PIN is never echoed in an error.
fn validate_pins(
    ctx: &Ctx<'_>,
    i: usize,
    c: &RawConference,
    flow: ConferenceFlow,
) -> Result<(Option<PinSecret>, Option<PinSecret>), ConfigError> {
    let at = |key| [Seg::Key("conference"), Seg::Index(i), Seg::Key(key)];
    let secret = |plain: &Option<String>,
                  hash: &Option<String>,
                  plain_key: &'static str,
                  hash_key: &'static str| {
        match (plain, hash) {
            (Some(_), Some(_)) => Err(ctx.err(
                &at(hash_key),
                format!("give either {plain_key} or {hash_key}, not both"),
            )),
            (Some(p), None) => PinSecret::plain(p)
                .map(Some)
                .map_err(|e| ctx.err(&at(plain_key), e.to_string())),
            (None, Some(h)) => PinSecret::hash(h)
                .map(Some)
                .map_err(|e| ctx.err(&at(hash_key), e.to_string())),
            (None, None) => Ok(None),
        }
    };
    if flow == ConferenceFlow::Otp {
        // An `otp` conference admits by passcode alone; a PIN here
        // would be a second way in that the operator did not mean
        // (the lobby, CONFERENCE_PIN), so it is refused outright.
        for (key, set) in [
            ("pin", c.pin.is_some()),
            ("pin_hash", c.pin_hash.is_some()),
            ("moderator_pin", c.moderator_pin.is_some()),
            ("moderator_pin_hash", c.moderator_pin_hash.is_some()),
        ] {
            if set {
                return Err(ctx.err(
                    &at(key),
                    "a flow = \"otp\" conference takes no PIN (moderators come from the participant directory; use flow = \"pin+otp\" to ask for both)".into(),
                ));
            }
        }
    }
    let pin = secret(&c.pin, &c.pin_hash, "pin", "pin_hash")?;
    let moderator_pin = secret(
        &c.moderator_pin,
        &c.moderator_pin_hash,
        "moderator_pin",
        "moderator_pin_hash",
    )?;
    if let (Some(a), Some(b)) = (
        pin.as_ref().and_then(|p| p.plain_value()),
        moderator_pin.as_ref().and_then(|p| p.plain_value()),
    ) {
        if a == b {
            return Err(ctx.err(
                &at("moderator_pin"),
                "must differ from the participant PIN".into(),
            ));
        }
    }
    Ok((pin, moderator_pin))
}

/// In a lobby the PIN picks the conference, so the PINs of the conferences
/// it reaches must be unique.
fn check_lobby_pins(ctx: &Ctx<'_>, conferences: &[ConferenceSettings]) -> Result<(), ConfigError> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (i, c) in conferences
        .iter()
        .enumerate()
        .filter(|(_, c)| c.flow.reachable_from_lobby())
    {
        for p in [&c.pin, &c.moderator_pin]
            .into_iter()
            .flatten()
            .filter_map(|p| p.plain_value())
        {
            if let Some((_, j)) = seen.iter().find(|(q, _)| *q == p) {
                return Err(ctx.err(
                    &[Seg::Key("conference"), Seg::Index(i), Seg::Key("pin")],
                    format!("with a [lobby], PINs must be unique, but conference `{}` uses the same PIN as `{}`", c.name, conferences[*j].name),
                ));
            }
            seen.push((p, i));
        }
    }
    Ok(())
}

/// A conference that sends one-time passcodes needs somewhere to send
/// them: its own `otp_channels` or the global delivery channels.
pub(super) fn check_otp_delivery(
    ctx: &Ctx<'_>,
    conferences: &[ConferenceSettings],
    otp: &OtpSettings,
) -> Result<(), ConfigError> {
    for (i, c) in conferences.iter().enumerate() {
        if c.flow != ConferenceFlow::Pin
            && otp.verify.channels.is_empty()
            && c.otp_channels.is_empty()
        {
            return Err(ctx.err(
                &[Seg::Key("conference"), Seg::Index(i), Seg::Key("flow")],
                "a one-time-passcode flow needs a delivery channel ([delivery.webhook], [delivery.email], [trunk] or [delivery.log])".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::parse;

    #[test]
    fn conference_errors_point_into_the_array() {
        let e =
            parse("[[conference]]\nname = \"a\"\n[[conference]]\nname = \"b\"\npin = \"12ab\"\n")
                .unwrap_err();
        assert_eq!(e.key, "conference[1].pin");
        assert_eq!(e.line, Some(5));
        assert!(
            !e.to_string().contains("12ab"),
            "the PIN must not be echoed"
        );
    }

    #[test]
    fn lobby_needs_unique_pins_and_moderator_rules_need_a_moderator_pin() {
        let e = parse("[lobby]\nnumbers = [\"5000\"]\n[[conference]]\nname = \"a\"\npin = \"11\"\n[[conference]]\nname = \"b\"\npin = \"11\"\n").unwrap_err();
        assert_eq!(e.key, "conference[1].pin");
        assert!(
            !e.to_string().contains("11\""),
            "no PIN in the message: {e}"
        );
        let e = parse("[[conference]]\nname = \"a\"\nrequire_moderator = true\n").unwrap_err();
        assert_eq!(e.key, "conference[0].require_moderator");
        let e = parse("[[conference]]\nname = \"a\"\npin = \"1\"\nmoderator_pin = \"1\"\n")
            .unwrap_err();
        assert_eq!(e.key, "conference[0].moderator_pin");
    }

    #[test]
    fn otp_conferences_take_no_pin_and_stay_out_of_the_lobby() {
        let log = "[delivery.log]\nenabled = true\n";
        for key in ["pin", "moderator_pin"] {
            let e = parse(&format!(
                "{log}[[conference]]\nname = \"a\"\nflow = \"otp\"\n{key} = \"4321\"\n"
            ))
            .unwrap_err();
            assert_eq!(e.key, format!("conference[0].{key}"));
            assert!(e.to_string().contains("pin+otp"), "{e}");
        }
        // Directory moderators count, so moderator rules need no moderator PIN.
        let c = parse(&format!(
            "{log}[[conference]]\nname = \"a\"\nflow = \"otp\"\nrequire_moderator = true\n"
        ))
        .unwrap();
        assert!(!c.conferences[0].flow.asks_for_pin());
        // The lobby reaches only `pin` conferences, so a pin+otp PIN may
        // equal a lobby PIN without making the lobby ambiguous.
        let c = parse(&format!(
            "{log}[lobby]\nnumbers = [\"5000\"]\n[[conference]]\nname = \"a\"\npin = \"11\"\n\
             [[conference]]\nname = \"b\"\npin = \"11\"\nflow = \"pin+otp\"\n"
        ))
        .unwrap();
        assert!(c.conferences[0].flow.reachable_from_lobby());
        assert!(!c.conferences[1].flow.reachable_from_lobby());
    }
}
