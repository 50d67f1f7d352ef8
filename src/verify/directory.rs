//! The participant directory: who may call in, how to reach them, and the
//! rules a participant record must follow. The records live in the store
//! (see `crate::store`); this module holds the model, the validation and
//! the lookup interface the IVR and the API use.

use std::path::PathBuf;

use super::channel::ChannelKind;
use super::clock::rfc3339;
use super::e164::normalize_e164;
use super::otp::StorageError;
use super::settings::ParticipantSettings;

/// Longest name, username and email we accept (the name is read out and
/// shown; nothing legitimate is longer).
pub const MAX_NAME: usize = 100;
pub const MAX_USERNAME: usize = 32;
pub const MAX_EMAIL: usize = 254;

/// Where a participant record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Declared in the config file: rewritten at every start-up and removed
    /// when the file no longer lists it, so the API and CLI leave it alone.
    Config,
    /// Added through the API or the CLI.
    Managed,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Managed => "api",
        }
    }
}

/// A known participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: i64,
    /// Lowercase, unique; what the web join page asks for.
    pub username: String,
    pub name: String,
    /// E.164, unique: the caller ID that identifies them.
    pub phone: String,
    pub email: Option<String>,
    pub moderator: bool,
    /// A recording of their name, played after "welcome".
    pub name_prompt: Option<PathBuf>,
    /// Conference names; `"*"` for all.
    pub conferences: Vec<String>,
    /// Preferred delivery channels in order (empty: the configured order).
    pub channels: Vec<ChannelKind>,
    pub source: Source,
    pub created_ms: i64,
}

impl Participant {
    /// May this participant join `conference`?
    pub fn may_join(&self, conference: &str) -> bool {
        self.conferences.iter().any(|c| c == "*" || c == conference)
    }

    /// The participant's public JSON form: what the API answers and what
    /// `pinbridge participants list --json` prints, in one place so that
    /// the two cannot drift apart.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "phone": self.phone,
            "email": self.email,
            "moderator": self.moderator,
            "conferences": self.conferences,
            "channels": self.channels.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "name_prompt": self.name_prompt.as_ref().map(|n| n.to_string_lossy()),
            "source": self.source.name(),
            "created_at": rfc3339(self.created_ms),
        })
    }
}

/// A participant as given by the API, the CLI, a CSV line or the config
/// file, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantInput {
    /// None: derived from the name (see [`slug`]).
    pub username: Option<String>,
    pub name: String,
    pub phone: String,
    pub email: Option<String>,
    pub moderator: bool,
    pub name_prompt: Option<String>,
    /// Empty: all conferences (`"*"`).
    pub conferences: Vec<String>,
    pub channels: Vec<String>,
}

impl From<&ParticipantSettings> for ParticipantInput {
    fn from(p: &ParticipantSettings) -> Self {
        ParticipantInput {
            username: p.username.clone(),
            name: p.name.clone(),
            phone: p.phone.clone(),
            email: p.email.clone(),
            moderator: p.moderator,
            name_prompt: p
                .name_prompt
                .as_ref()
                .map(|n| n.to_string_lossy().into_owned()),
            conferences: p.conferences.clone(),
            channels: p.channels.iter().map(|c| c.name().to_string()).collect(),
        }
    }
}

/// A participant that passed [`validate`]: what the store writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidParticipant {
    /// None: the store derives a unique one from the name.
    pub username: Option<String>,
    pub name: String,
    pub phone: String,
    pub email: Option<String>,
    pub moderator: bool,
    pub name_prompt: Option<PathBuf>,
    pub conferences: Vec<String>,
    pub channels: Vec<ChannelKind>,
}

/// What the input is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// For numbers given without a country code.
    pub default_country_code: &'a str,
    /// The configured conference names; None skips the check.
    pub conferences: Option<&'a [String]>,
    /// The channels that are configured; None skips the check.
    pub channels: Option<&'a [ChannelKind]>,
}

/// Why a participant record is refused. Each says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParticipantError {
    #[error("name: must not be empty")]
    EmptyName,
    #[error("name: at most {MAX_NAME} characters")]
    NameTooLong,
    #[error("phone: `{0}` is not a phone number (E.164, e.g. +12015550123)")]
    BadPhone(String),
    #[error("email: `{0}` is not an email address")]
    BadEmail(String),
    #[error("username: `{0}` must be 1 to {MAX_USERNAME} of a-z, 0-9, '.', '_', '-', starting with a letter or digit")]
    BadUsername(String),
    #[error("channels: unknown channel `{0}` (use webhook, sip-message, email, voice or log)")]
    UnknownChannel(String),
    #[error("channels: `{}` is not configured on this server", .0.name())]
    ChannelNotEnabled(ChannelKind),
    #[error("email: the email channel needs an email address")]
    EmailChannelNeedsEmail,
    #[error("conferences: no conference named `{0}`")]
    UnknownConference(String),
    #[error("name_prompt: control characters are not allowed in a path")]
    BadNamePrompt,
}

/// Checks and normalises a participant: phone to E.164, username and email
/// lowercased, channels parsed, conferences defaulting to all.
pub fn validate(
    input: &ParticipantInput,
    rules: &Rules<'_>,
) -> Result<ValidParticipant, ParticipantError> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(ParticipantError::EmptyName);
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ParticipantError::NameTooLong);
    }
    let phone = normalize_e164(&input.phone, rules.default_country_code)
        .ok_or_else(|| ParticipantError::BadPhone(clip(&input.phone)))?;
    let username = match input.username.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => Some(validate_username(u)?),
    };
    let email = match input.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(e) => Some(validate_email(e)?),
    };
    let mut channels = Vec::new();
    for c in &input.channels {
        let kind = ChannelKind::from_name(c.trim())
            .ok_or_else(|| ParticipantError::UnknownChannel(clip(c)))?;
        if let Some(enabled) = rules.channels {
            if !enabled.contains(&kind) {
                return Err(ParticipantError::ChannelNotEnabled(kind));
            }
        }
        if kind == ChannelKind::Email && email.is_none() {
            return Err(ParticipantError::EmailChannelNeedsEmail);
        }
        if !channels.contains(&kind) {
            channels.push(kind);
        }
    }
    let mut conferences: Vec<String> = Vec::new();
    for c in &input.conferences {
        let c = c.trim();
        if c.is_empty() {
            continue;
        }
        if c != "*" {
            if let Some(known) = rules.conferences {
                if !known.iter().any(|k| k == c) {
                    return Err(ParticipantError::UnknownConference(clip(c)));
                }
            }
        }
        if !conferences.iter().any(|o| o == c) {
            conferences.push(c.to_string());
        }
    }
    if conferences.is_empty() {
        conferences.push("*".into());
    }
    let name_prompt = match input.name_prompt.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) if p.chars().any(char::is_control) => return Err(ParticipantError::BadNamePrompt),
        Some(p) => Some(PathBuf::from(p)),
    };
    Ok(ValidParticipant {
        username,
        name: name.to_string(),
        phone,
        email,
        moderator: input.moderator,
        name_prompt,
        conferences,
        channels,
    })
}

/// A username as typed: trimmed, lowercased, then checked.
pub fn validate_username(u: &str) -> Result<String, ParticipantError> {
    let u = u.trim().to_lowercase();
    let ok = !u.is_empty()
        && u.len() <= MAX_USERNAME
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && u.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(u)
    } else {
        Err(ParticipantError::BadUsername(clip(&u)))
    }
}

fn validate_email(e: &str) -> Result<String, ParticipantError> {
    let bad = || ParticipantError::BadEmail(clip(e));
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || e.len() > MAX_EMAIL
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    // Only the domain is case-insensitive by the standard; in practice
    // every mailbox is too, and a lowercase form finds duplicates.
    Ok(e.to_lowercase())
}

/// Input echoed in an error is cut short: a 1 MB "phone" must not come
/// back in the response or reach a log whole.
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(MAX).collect();
        c.push('…');
        c
    }
}

/// The default username: the name lowercased, accents dropped, anything
/// but a-z and 0-9 turned into single dashes ("José  Núñez" -> "jose-nunez").
/// Never empty ("participant" when nothing is left).
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for ch in name.chars().flat_map(char::to_lowercase) {
        let mapped = match ch {
            'a'..='z' | '0'..='9' => Some(ch),
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => Some('a'),
            'ç' | 'ć' | 'č' => Some('c'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => Some('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' => Some('i'),
            'ñ' | 'ń' | 'ň' => Some('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => Some('o'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => Some('u'),
            'ý' | 'ÿ' => Some('y'),
            'ś' | 'š' | 'ş' => Some('s'),
            'ź' | 'ż' | 'ž' => Some('z'),
            'ł' => Some('l'),
            'ř' => Some('r'),
            'ď' => Some('d'),
            'ť' => Some('t'),
            'ß' => {
                out.push('s');
                Some('s')
            }
            _ => None,
        };
        match mapped {
            Some(c) => {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push(c);
            }
            None => dash = true,
        }
    }
    out.truncate(MAX_USERNAME - 4); // room for a "-NNN" suffix
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "participant".into()
    } else {
        out
    }
}

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Invalid(#[from] ParticipantError),
    #[error("phone: {0} belongs to another participant")]
    PhoneTaken(String),
    #[error("username: `{0}` is taken")]
    UsernameTaken(String),
    #[error("no such participant")]
    NotFound,
    #[error("participant {0} is declared in the config file: change it there")]
    FromConfig(String),
    /// The storage failed; the text is its own account.
    #[error("{}", .0.detail())]
    Storage(#[from] StorageError),
}

/// The participant directory as the IVR, the join page and the API use
/// it. Implemented by the store (`crate::store`).
pub trait Directory {
    fn by_phone(&self, e164: &str) -> Result<Option<Participant>, DirectoryError>;
    fn by_username(&self, username: &str) -> Result<Option<Participant>, DirectoryError>;
    fn by_id(&self, id: i64) -> Result<Option<Participant>, DirectoryError>;
    /// Everyone, by id.
    fn list(&self) -> Result<Vec<Participant>, DirectoryError>;
    /// Adds a participant managed through the API or the CLI.
    fn insert(&mut self, p: &ValidParticipant, now_ms: i64) -> Result<Participant, DirectoryError>;
    /// Replaces a managed participant's fields (a username of None keeps
    /// theirs); one from the config file is refused.
    fn update(&mut self, id: i64, p: &ValidParticipant) -> Result<Participant, DirectoryError>;
    /// Removes a managed participant; one from the config file is refused.
    fn delete(&mut self, id: i64) -> Result<Participant, DirectoryError>;
}

/// Finds the participant a caller ID belongs to: the number is normalised
/// to E.164 first, so "2015550123", "+1 201 555 0123" and "0012015550123"
/// all find the same person.
pub fn identify_caller<D: Directory + ?Sized>(
    dir: &D,
    number: &str,
    default_country_code: &str,
) -> Result<Option<Participant>, DirectoryError> {
    match normalize_e164(number, default_country_code) {
        Some(e164) => dir.by_phone(&e164),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules<'static> {
        Rules {
            default_country_code: "1",
            conferences: None,
            channels: None,
        }
    }

    fn input(name: &str, phone: &str) -> ParticipantInput {
        ParticipantInput {
            name: name.into(),
            phone: phone.into(),
            ..Default::default()
        }
    }

    #[test]
    fn normalises_a_good_participant() {
        let mut i = input("  Alice Smith ", "(201) 555-0123");
        i.email = Some("Alice@Example.COM".into());
        i.channels = vec!["sms".into(), "email".into(), "webhook".into()];
        i.username = Some("Alice".into());
        let v = validate(&i, &rules()).unwrap();
        assert_eq!(v.name, "Alice Smith");
        assert_eq!(v.phone, "+12015550123");
        assert_eq!(v.email.as_deref(), Some("alice@example.com"));
        assert_eq!(v.username.as_deref(), Some("alice"));
        assert_eq!(v.channels, vec![ChannelKind::Webhook, ChannelKind::Email]);
        assert_eq!(v.conferences, vec!["*".to_string()]);
    }

    #[test]
    fn says_what_is_wrong() {
        let r = rules();
        assert_eq!(
            validate(&input(" ", "+12015550123"), &r),
            Err(ParticipantError::EmptyName)
        );
        assert_eq!(
            validate(&input("A", "call me"), &r),
            Err(ParticipantError::BadPhone("call me".into()))
        );
        let mut i = input("A", "+12015550123");
        i.email = Some("not-an-address".into());
        assert!(matches!(
            validate(&i, &r),
            Err(ParticipantError::BadEmail(_))
        ));
        let mut i = input("A", "+12015550123");
        i.channels = vec!["pigeon".into()];
        assert_eq!(
            validate(&i, &r),
            Err(ParticipantError::UnknownChannel("pigeon".into()))
        );
        let mut i = input("A", "+12015550123");
        i.channels = vec!["email".into()];
        assert_eq!(
            validate(&i, &r),
            Err(ParticipantError::EmailChannelNeedsEmail)
        );
        let mut i = input("A", "+12015550123");
        i.username = Some("-bad name".into());
        assert!(matches!(
            validate(&i, &r),
            Err(ParticipantError::BadUsername(_))
        ));
        let long = "x".repeat(5000);
        let err = validate(&input("A", &long), &r).unwrap_err().to_string();
        assert!(err.len() < 200, "input is clipped in errors: {err}");
    }

    #[test]
    fn checks_against_configured_conferences_and_channels() {
        let confs = vec!["board".to_string()];
        let chans = vec![ChannelKind::Log];
        let r = Rules {
            default_country_code: "1",
            conferences: Some(&confs),
            channels: Some(&chans),
        };
        let mut i = input("A", "+12015550123");
        i.conferences = vec!["board".into(), "*".into(), "board".into()];
        assert_eq!(validate(&i, &r).unwrap().conferences, vec!["board", "*"]);
        i.conferences = vec!["sales".into()];
        assert_eq!(
            validate(&i, &r),
            Err(ParticipantError::UnknownConference("sales".into()))
        );
        i.conferences = vec![];
        i.channels = vec!["webhook".into()];
        assert_eq!(
            validate(&i, &r),
            Err(ParticipantError::ChannelNotEnabled(ChannelKind::Webhook))
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Alice Smith"), "alice-smith");
        assert_eq!(slug("José  Núñez"), "jose-nunez");
        assert_eq!(slug("  O'Brien, Dr. "), "o-brien-dr");
        assert_eq!(slug("Straße"), "strasse");
        assert_eq!(slug("Иван"), "participant");
        assert!(slug(&"a".repeat(100)).len() <= MAX_USERNAME - 4);
        assert!(validate_username(&slug("Ünïcödé Ñame 42")).is_ok());
    }

    #[test]
    fn may_join() {
        let mut p = Participant {
            id: 1,
            username: "a".into(),
            name: "A".into(),
            phone: "+12015550123".into(),
            email: None,
            moderator: false,
            name_prompt: None,
            conferences: vec!["board".into()],
            channels: vec![],
            source: Source::Managed,
            created_ms: 0,
        };
        assert!(p.may_join("board"));
        assert!(!p.may_join("sales"));
        p.conferences = vec!["*".into()];
        assert!(p.may_join("sales"));
    }
}
