//! Configuration: one TOML file, validated at start-up. Every error names
//! the file, the line and the key, and says what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod conference;
mod limits;
mod log;
mod media;
pub mod otp;
mod security;
mod sip;

use crate::conference::admission::{AdmissionRules, ConferenceEntry};
use crate::conference::guard::GuardLimits;
use crate::conference::pin::PinSecret;
use crate::conference::room::RoomRules;
use crate::ivr::prompts::PromptId;
use crate::ivr::GatherRules;
use crate::media::dtmf::DtmfMode;
use crate::media::g711::Codec;

pub use media::parse_port_range;

/// The configuration `pinbridge` runs on when given no file.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// A configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.file, l)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct SipSettings {
    pub listen: SocketAddr,
    pub udp: bool,
    pub tcp: bool,
    pub public_address: Option<IpAddr>,
    pub max_calls: usize,
    pub min_session_expires: u32,
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Ring (180) this long before answering; zero answers at once.
    pub answer_delay: Duration,
    /// `[sip.limits]`: per-source limits against floods.
    pub limits: crate::sip::ua::SourceLimitSettings,
    /// Limits on SIP over TCP connections (`[sip.tcp]`).
    pub tcp_connections: TcpSettings,
}

/// `[sip.tcp]`: how many connections, and how long they may stay quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSettings {
    /// Open connections accepted in total; `None` sizes it from the
    /// open-file limit at start-up.
    pub max_connections: Option<usize>,
    /// Open connections accepted from one source address.
    pub max_connections_per_source: usize,
    /// A connection's first message, and any message once begun, must be
    /// complete within this long.
    pub message_timeout: Duration,
    /// A connection with nothing buffered closes after this long without
    /// a byte (keep-alive CRLFs count).
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RtpSettings {
    /// Inclusive port range; only even ports are used.
    pub ports: (u16, u16),
    /// None disables the check.
    pub inactivity_timeout: Option<Duration>,
    pub codecs: Vec<Codec>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct ConferenceSettings {
    pub name: String,
    /// Dialled numbers that reach this conference; "*" matches all.
    pub numbers: Vec<String>,
    /// The participant PIN (None only before CONFERENCE_PIN is applied).
    pub pin: Option<PinSecret>,
    pub moderator_pin: Option<PinSecret>,
    pub gather: GatherRules,
    pub rules: RoomRules,
    /// Talkers mixed at once.
    pub max_talkers: usize,
    /// Overrides the global DTMF mode.
    pub dtmf_mode: Option<DtmfMode>,
    /// Prompts (and hold music) replaced for this conference only.
    pub prompt_files: BTreeMap<PromptId, PathBuf>,
    /// PIN, one-time passcode, or both.
    pub flow: otp::ConferenceFlow,
    /// Channels for this conference's codes (empty: the participant's or
    /// the global order).
    pub otp_channels: Vec<otp::ChannelKind>,
}

/// A test line that reads back every key pressed.
#[derive(Debug, Clone)]
pub struct KeypadTestSettings {
    pub numbers: Vec<String>,
    pub idle_timeout: Duration,
}

/// Numbers where the PIN itself selects the conference.
#[derive(Debug, Clone)]
pub struct LobbySettings {
    pub numbers: Vec<String>,
    pub gather: GatherRules,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from ("<embedded default>" or a path), for messages.
    pub source: String,
    pub sip: SipSettings,
    pub rtp: RtpSettings,
    pub log: LogSettings,
    /// Operator recordings replacing shipped prompts.
    pub prompt_files: BTreeMap<PromptId, PathBuf>,
    pub dtmf_mode: DtmfMode,
    pub security: GuardLimits,
    pub keypad_test: Option<KeypadTestSettings>,
    pub lobby: Option<LobbySettings>,
    pub conferences: Vec<ConferenceSettings>,
    pub otp: otp::OtpSettings,
}

pub use crate::conference::admission::Route;

impl Config {
    /// Routes a dialled number (the Request-URI user part): the keypad test
    /// line and the lobby first, then a conference listing the number, then
    /// a conference with `"*"`.
    pub fn route(&self, dialed: Option<&str>) -> Route {
        let dialed = dialed.unwrap_or("");
        let listed = |numbers: &[String]| numbers.iter().any(|n| n == dialed);
        if self
            .keypad_test
            .as_ref()
            .is_some_and(|k| listed(&k.numbers))
        {
            return Route::KeypadTest;
        }
        if self.lobby.as_ref().is_some_and(|l| listed(&l.numbers)) {
            return Route::Lobby;
        }
        if let Some(i) = self.conferences.iter().position(|c| listed(&c.numbers)) {
            return Route::Conference(i);
        }
        match self
            .conferences
            .iter()
            .position(|c| c.numbers.iter().any(|n| n == "*"))
        {
            Some(i) => Route::Conference(i),
            None => Route::NotFound,
        }
    }

    /// What admission needs from the configuration; `verification` says
    /// whether the verification service runs (passcodes, dial-in codes).
    pub fn admission_rules(&self, verification: bool) -> AdmissionRules {
        AdmissionRules {
            conferences: self
                .conferences
                .iter()
                .map(|c| ConferenceEntry {
                    name: c.name.clone(),
                    flow: c.flow,
                    pin: c.pin.clone(),
                    moderator_pin: c.moderator_pin.clone(),
                    gather: c.gather,
                })
                .collect(),
            keypad_idle_timeout: self
                .keypad_test
                .as_ref()
                .map_or(Duration::from_secs(10), |k| k.idle_timeout),
            lobby_gather: self.lobby.as_ref().map(|l| l.gather).unwrap_or_default(),
            otp_code_length: self.otp.verify.code_length,
            verification,
        }
    }

    /// The DTMF mode for calls on a route.
    pub fn dtmf_mode_for(&self, route: Route) -> DtmfMode {
        match route {
            Route::Conference(i) => self
                .conferences
                .get(i)
                .and_then(|c| c.dtmf_mode)
                .unwrap_or(self.dtmf_mode),
            _ => self.dtmf_mode,
        }
    }
}

// ----------------------------------------------------------------------
// The file as written (serde), before validation.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    sip: sip::RawSip,
    rtp: media::RawRtp,
    log: log::RawLog,
    prompts: BTreeMap<String, String>,
    dtmf: media::RawDtmf,
    security: security::RawSecurity,
    keypad_test: Option<conference::RawKeypadTest>,
    lobby: Option<conference::RawLobby>,
    conference: Vec<conference::RawConference>,
    store: otp::RawStore,
    verify: otp::RawVerify,
    identity: otp::RawIdentity,
    http: Option<otp::RawHttp>,
    delivery: otp::RawDelivery,
    trunk: Option<otp::RawTrunk>,
    participant: Vec<otp::RawParticipant>,
}

// ----------------------------------------------------------------------

/// Locates a key path in the TOML source, for line numbers in errors.
struct Locator<'a> {
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

/// Builds errors and paths for validation code in submodules.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    loc: &'a Locator<'a>,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, path: &[Seg<'_>], message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.loc.line(path),
            key: key_name(path),
            message,
        }
    }

    /// A path from the file, relative to the file's directory.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// One step of a key path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            text,
            root: toml::de::DeTable::parse(text).ok(),
        }
    }

    fn line_of_offset(&self, offset: usize) -> usize {
        self.text
            .bytes()
            .take(offset)
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    /// The line of the value at `path`, or of the deepest part that exists.
    fn line(&self, path: &[Seg<'_>]) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut span = None;
        let mut current: Option<&toml::Spanned<toml::de::DeValue<'a>>> = None;
        for (i, seg) in path.iter().enumerate() {
            let next = match (i, seg) {
                (0, Seg::Key(k)) => root
                    .get_ref()
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == *k)
                    .map(|(_, v)| v),
                (_, Seg::Key(k)) => current.and_then(|c| c.get_ref().get(*k)),
                (_, Seg::Index(n)) => current.and_then(|c| c.get_ref().get(*n)),
            };
            match next {
                Some(v) => {
                    span = Some(v.span());
                    current = Some(v);
                }
                None => break,
            }
        }
        span.map(|s| self.line_of_offset(s.start))
    }
}

impl Locator<'_> {
    /// The dotted key path whose key or value covers `offset` (for errors
    /// serde reports with a span but no key, like unknown fields).
    fn path_at(&self, offset: usize) -> String {
        fn walk(table: &toml::de::DeTable<'_>, offset: usize, path: &mut String) -> bool {
            for (k, v) in table.iter() {
                let (ks, vs) = (k.span(), v.span());
                if ks.contains(&offset) || vs.contains(&offset) {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k.get_ref());
                    if vs.contains(&offset) {
                        descend(v.get_ref(), offset, path);
                    }
                    return true;
                }
                // Tables and arrays of tables span their headers, not their
                // keys: look inside them too.
                let before = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.get_ref());
                if descend(v.get_ref(), offset, path) {
                    return true;
                }
                path.truncate(before);
            }
            false
        }
        fn descend(v: &toml::de::DeValue<'_>, offset: usize, path: &mut String) -> bool {
            match v {
                toml::de::DeValue::Table(t) => walk(t, offset, path),
                toml::de::DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        let before = path.len();
                        path.push_str(&format!("[{i}]"));
                        if descend(item.get_ref(), offset, path) || item.span().contains(&offset) {
                            return true;
                        }
                        path.truncate(before);
                    }
                    false
                }
                _ => false,
            }
        }
        let mut path = String::new();
        if let Some(root) = &self.root {
            walk(root.get_ref(), offset, &mut path);
        }
        path
    }
}

fn key_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(n) => s.push_str(&format!("[{n}]")),
        }
    }
    s
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        // The embedded file is part of the binary and covered by a test; a
        // failure here is a build defect, not an operator error.
        match Config::parse(DEFAULT_CONFIG, "<embedded default>", Path::new(".")) {
            Ok(c) => c,
            Err(e) => panic!("embedded default configuration is invalid: {e}"),
        }
    }

    /// Reads and validates a configuration file. Relative prompt paths are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &file, base)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let loc = Locator::new(text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| loc.line_of_offset(s.start));
            ConfigError {
                file: file.to_string(),
                line,
                key: e.span().map(|s| loc.path_at(s.start)).unwrap_or_default(),
                message: e.message().trim().to_string(),
            }
        })?;

        // One validator per section, in this order: in a file with several
        // mistakes the first one met is the one reported, so the order is
        // part of what an operator sees.
        let ctx = Ctx {
            file,
            loc: &loc,
            base_dir,
        };
        let sip = sip::validate(&ctx, &raw.sip)?;
        let rtp = media::validate_rtp(&ctx, &raw.rtp)?;
        let log = log::validate(&ctx, &raw.log)?;
        let prompt_files = media::prompt_files(&ctx, &raw.prompts, &[Seg::Key("prompts")])?;
        let dtmf_mode = media::validate_dtmf(&ctx, &raw.dtmf)?;
        let security = security::validate(&ctx, &raw.security)?;
        let keypad_test = conference::validate_keypad_test(&ctx, raw.keypad_test.as_ref())?;
        let lobby = conference::validate_lobby(&ctx, raw.lobby.as_ref())?;
        let conferences = conference::validate_conferences(&ctx, &raw.conference, lobby.is_some())?;
        let source_limits = limits::validate(&ctx, &raw.sip.limits)?;
        let names: Vec<String> = conferences.iter().map(|c| c.name.clone()).collect();
        let otp_settings = otp::validate(
            &ctx,
            otp::RawOtp {
                store: &raw.store,
                verify: &raw.verify,
                identity: &raw.identity,
                http: &raw.http,
                delivery: &raw.delivery,
                trunk: &raw.trunk,
                participants: &raw.participant,
            },
            &names,
        )?;
        conference::check_otp_delivery(&ctx, &conferences, &otp_settings)?;

        Ok(Config {
            otp: otp_settings,
            source: file.to_string(),
            sip: SipSettings {
                limits: source_limits,
                ..sip
            },
            rtp,
            log,
            prompt_files,
            dtmf_mode,
            security,
            keypad_test,
            lobby,
            conferences,
        })
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::parse;
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert_eq!(c.sip.listen, "0.0.0.0:5060".parse().unwrap());
        assert!(c.sip.udp && c.sip.tcp);
        assert_eq!(c.rtp.ports, (10000, 20000));
        assert_eq!(c.rtp.codecs, vec![Codec::Pcmu, Codec::Pcma]);
        assert_eq!(c.conferences[0].numbers, vec!["*"]);
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let e =
            parse("[sip]\nlisten = \"0.0.0.0:5060\"\nlisen = \"x\"\n[[conference]]\nname=\"a\"\n")
                .unwrap_err();
        assert_eq!(e.file, "test.toml");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key, "sip.lisen");
        assert!(e.to_string().starts_with("test.toml:3: sip.lisen: "), "{e}");
        let e = parse("[[conference]]\nname=\"a\"\n[[conference]]\nname=\"b\"\npinn = \"1\"\n")
            .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.line),
            ("conference[1].pinn", Some(5)),
            "{e}"
        );
        let e = parse("[sip]\nmax_calls = \"many\"\n").unwrap_err();
        assert_eq!(e.key, "sip.max_calls", "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[sip]\nlisten = \"nonsense\"\n", "sip.listen", 2),
            (
                "[rtp]\n\nport_range = \"20000-10000\"\n",
                "rtp.port_range",
                3,
            ),
            ("[rtp]\ncodecs = [\"PCMU\", \"G729\"]\n", "rtp.codecs[1]", 2),
            ("[log]\nformat = \"xml\"\n", "log.format", 2),
            ("[sip]\ntransports = [\"sctp\"]\n", "sip.transports[0]", 2),
            ("[sip]\nt1_ms = 0\n", "sip.t1_ms", 2),
            ("[prompts]\nwelcom = \"x.wav\"\n", "prompts.welcom", 2),
        ];
        for (body, key, line) in cases {
            let text = format!("{body}[[conference]]\nname = \"a\"\n");
            let e = parse(&text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("test.toml:{line}: {key}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn type_errors_have_lines() {
        let e = parse("[sip]\nmax_calls = \"many\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn routes_by_dialled_number() {
        let c = parse(
            "[keypad_test]\nnumbers = [\"*98\"]\n[lobby]\nnumbers = [\"5000\"]\n\
             [[conference]]\nname = \"a\"\nnumbers = [\"7001\"]\npin = \"1\"\n\
             [[conference]]\nname = \"b\"\nnumbers = [\"*\"]\npin = \"2\"\ndtmf_mode = \"inband\"\n",
        )
        .unwrap();
        assert_eq!(c.route(Some("*98")), Route::KeypadTest);
        assert_eq!(c.route(Some("5000")), Route::Lobby);
        assert_eq!(c.route(Some("7001")), Route::Conference(0));
        assert_eq!(c.route(Some("1234")), Route::Conference(1));
        assert_eq!(c.route(None), Route::Conference(1));
        assert_eq!(c.dtmf_mode_for(Route::Conference(1)), DtmfMode::Inband);
        assert_eq!(c.dtmf_mode_for(Route::Conference(0)), DtmfMode::Auto);
        let only = parse("[[conference]]\nname = \"a\"\nnumbers = [\"7001\"]\n").unwrap();
        assert_eq!(only.route(Some("7002")), Route::NotFound);
    }
}
