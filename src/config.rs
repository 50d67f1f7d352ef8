//! Configuration: one TOML file, validated at start-up. Every error names
//! the file, the line and the key, and says what is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ivr::prompts::PromptId;
use crate::media::g711::Codec;

/// The configuration `pinbridge` runs on when given no file.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

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
    pub pin: Option<String>,
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
    pub conferences: Vec<ConferenceSettings>,
}

// ----------------------------------------------------------------------
// The file as written (serde), before validation.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    sip: RawSip,
    rtp: RawRtp,
    log: RawLog,
    prompts: BTreeMap<String, String>,
    conference: Vec<RawConference>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSip {
    listen: String,
    transports: Vec<String>,
    public_address: Option<String>,
    max_calls: i64,
    min_session_expires: i64,
    t1_ms: i64,
    t2_ms: i64,
    t4_ms: i64,
    answer_delay_ms: i64,
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            listen: "0.0.0.0:5060".into(),
            transports: vec!["udp".into(), "tcp".into()],
            public_address: None,
            max_calls: 5000,
            min_session_expires: 90,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            answer_delay_ms: 0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRtp {
    port_range: String,
    inactivity_timeout_secs: i64,
    codecs: Vec<String>,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            port_range: "10000-20000".into(),
            inactivity_timeout_secs: 30,
            codecs: vec!["PCMU".into(), "PCMA".into()],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConference {
    name: String,
    #[serde(default = "all_numbers")]
    numbers: Vec<String>,
    #[serde(default)]
    pin: Option<String>,
}

fn all_numbers() -> Vec<String> {
    vec!["*".into()]
}

// ----------------------------------------------------------------------

/// Locates a key path in the TOML source, for line numbers in errors.
struct Locator<'a> {
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

/// One step of a key path.
#[derive(Clone, Copy)]
enum Seg<'a> {
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
        self.text[..offset.min(self.text.len())]
            .bytes()
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
                key: String::new(),
                message: e.message().trim().to_string(),
            }
        })?;
        let err = |path: &[Seg<'_>], message: String| ConfigError {
            file: file.to_string(),
            line: loc.line(path),
            key: key_name(path),
            message,
        };

        let s = &raw.sip;
        let listen: SocketAddr = s.listen.parse().map_err(|_| {
            err(
                &[Seg::Key("sip"), Seg::Key("listen")],
                format!("`{}` is not an IP:port address", s.listen),
            )
        })?;
        let (mut udp, mut tcp) = (false, false);
        for (i, t) in s.transports.iter().enumerate() {
            match t.to_ascii_lowercase().as_str() {
                "udp" => udp = true,
                "tcp" => tcp = true,
                other => {
                    return Err(err(
                        &[Seg::Key("sip"), Seg::Key("transports"), Seg::Index(i)],
                        format!("unknown transport `{other}` (use \"udp\" and/or \"tcp\")"),
                    ))
                }
            }
        }
        if !udp && !tcp {
            return Err(err(
                &[Seg::Key("sip"), Seg::Key("transports")],
                "at least one transport is needed".into(),
            ));
        }
        let public_address = match &s.public_address {
            None => None,
            Some(a) => Some(a.parse::<IpAddr>().map_err(|_| {
                err(
                    &[Seg::Key("sip"), Seg::Key("public_address")],
                    format!("`{a}` is not an IP address"),
                )
            })?),
        };
        let positive = |v: i64, key: &'static str, section: &'static str, max: i64| {
            if v < 1 || v > max {
                Err(err(
                    &[Seg::Key(section), Seg::Key(key)],
                    format!("must be between 1 and {max}, got {v}"),
                ))
            } else {
                Ok(v)
            }
        };
        let max_calls = positive(s.max_calls, "max_calls", "sip", 1_000_000)? as usize;
        let min_se = positive(s.min_session_expires, "min_session_expires", "sip", 86_400)? as u32;
        let t1 = positive(s.t1_ms, "t1_ms", "sip", 60_000)? as u64;
        let t2 = positive(s.t2_ms, "t2_ms", "sip", 600_000)? as u64;
        let t4 = positive(s.t4_ms, "t4_ms", "sip", 600_000)? as u64;
        if !(0..=60_000).contains(&s.answer_delay_ms) {
            return Err(err(
                &[Seg::Key("sip"), Seg::Key("answer_delay_ms")],
                "must be between 0 and 60000".into(),
            ));
        }
        if t2 < t1 {
            return Err(err(
                &[Seg::Key("sip"), Seg::Key("t2_ms")],
                format!("must not be below t1_ms ({t1})"),
            ));
        }

        let r = &raw.rtp;
        let range_path = [Seg::Key("rtp"), Seg::Key("port_range")];
        let ports = parse_port_range(&r.port_range).map_err(|m| err(&range_path, m))?;
        if !(0..=86_400).contains(&r.inactivity_timeout_secs) {
            return Err(err(
                &[Seg::Key("rtp"), Seg::Key("inactivity_timeout_secs")],
                "must be between 0 (off) and 86400".into(),
            ));
        }
        let inactivity_timeout = (r.inactivity_timeout_secs > 0)
            .then(|| Duration::from_secs(r.inactivity_timeout_secs as u64));
        let mut codecs = Vec::new();
        for (i, c) in r.codecs.iter().enumerate() {
            let codec = Codec::from_encoding_name(c).ok_or_else(|| {
                err(
                    &[Seg::Key("rtp"), Seg::Key("codecs"), Seg::Index(i)],
                    format!("unknown codec `{c}` (use \"PCMU\" or \"PCMA\")"),
                )
            })?;
            if !codecs.contains(&codec) {
                codecs.push(codec);
            }
        }
        if codecs.is_empty() {
            return Err(err(
                &[Seg::Key("rtp"), Seg::Key("codecs")],
                "at least one codec is needed".into(),
            ));
        }

        let format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    &[Seg::Key("log"), Seg::Key("format")],
                    format!("`{other}` is not \"text\" or \"json\""),
                ))
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            return Err(err(
                &[Seg::Key("log"), Seg::Key("level")],
                format!("`{}` is not a log level or filter", raw.log.level),
            ));
        }

        let mut prompt_files = BTreeMap::new();
        for (name, path) in &raw.prompts {
            let id = PromptId::from_name(name).ok_or_else(|| {
                err(
                    &[Seg::Key("prompts"), Seg::Key(name)],
                    format!(
                        "unknown prompt `{name}`; known prompts: {}",
                        PromptId::names().join(", ")
                    ),
                )
            })?;
            let p = Path::new(path);
            prompt_files.insert(
                id,
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base_dir.join(p)
                },
            );
        }

        let mut conferences = Vec::new();
        for (i, c) in raw.conference.iter().enumerate() {
            let at = |key| [Seg::Key("conference"), Seg::Index(i), Seg::Key(key)];
            if c.name.trim().is_empty() {
                return Err(err(&at("name"), "must not be empty".into()));
            }
            if conferences
                .iter()
                .any(|o: &ConferenceSettings| o.name == c.name)
            {
                return Err(err(
                    &at("name"),
                    format!("conference `{}` is defined twice", c.name),
                ));
            }
            if c.numbers.is_empty() {
                return Err(err(
                    &at("numbers"),
                    "needs at least one number (or \"*\")".into(),
                ));
            }
            if let Some(pin) = &c.pin {
                if pin.is_empty() || pin.len() > 20 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    // Never echo the PIN itself.
                    return Err(err(&at("pin"), "must be 1 to 20 digits".into()));
                }
            }
            conferences.push(ConferenceSettings {
                name: c.name.clone(),
                numbers: c.numbers.clone(),
                pin: c.pin.clone(),
            });
        }
        if conferences.is_empty() {
            return Err(err(
                &[Seg::Key("conference")],
                "at least one [[conference]] is needed".into(),
            ));
        }

        Ok(Config {
            source: file.to_string(),
            sip: SipSettings {
                listen,
                udp,
                tcp,
                public_address,
                max_calls,
                min_session_expires: min_se,
                t1: Duration::from_millis(t1),
                t2: Duration::from_millis(t2),
                t4: Duration::from_millis(t4),
                answer_delay: Duration::from_millis(s.answer_delay_ms as u64),
            },
            rtp: RtpSettings {
                ports,
                inactivity_timeout,
                codecs,
            },
            log: LogSettings {
                format,
                level: raw.log.level.clone(),
            },
            prompt_files,
            conferences,
        })
    }
}

/// Parses `LO-HI` into an inclusive range holding at least one even port.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range like \"10000-20000\"");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || hi < lo {
        return Err(format!(
            "`{s}`: the range must be non-empty and start above 0"
        ));
    }
    if hi - lo < 1 && lo % 2 == 1 {
        return Err(format!("`{s}` holds no even port"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/etc/pinbridge"))
    }

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
        assert!(e.message.contains("lisen"), "{e}");
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
    fn type_errors_have_lines() {
        let e = parse("[sip]\nmax_calls = \"many\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn prompt_paths_resolve_against_the_config_directory() {
        let c = parse("[prompts]\nwelcome = \"mine/hello.wav\"\n[[conference]]\nname = \"a\"\n")
            .unwrap();
        assert_eq!(
            c.prompt_files[&PromptId::Welcome],
            PathBuf::from("/etc/pinbridge/mine/hello.wav")
        );
    }
}
