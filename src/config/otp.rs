//! Configuration of the one-time-passcode features: the embedded database,
//! the verification policy, caller identification, the HTTP API and join
//! page, the delivery channels, the SIP trunk and the participants declared
//! in the file.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::{Ctx, Seg};
use crate::verify::directory::validate_username;
use crate::verify::e164::normalize_e164;
use crate::verify::service::ChannelPolicy;

// The settings types the verification features define: config builds
// them, and they are part of what `Config` holds.
pub use crate::verify::channel::ChannelKind;
pub use crate::verify::settings::{
    EmailSettings, ParticipantSettings, SmtpSecurity, VerifySettings, WebhookSettings,
};

pub use crate::conference::admission::ConferenceFlow;

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The SQLite file, created on first start.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Country calling code for numbers that arrive without one ("1", "44").
    pub default_country_code: String,
    /// P-Asserted-Identity is believed only from these addresses.
    pub trusted_proxies: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Accepted API keys as SHA-256 digests (plain keys in the file are
    /// hashed at load; `sha256:<hex>` entries are taken as they are).
    pub api_key_hashes: Vec<[u8; 32]>,
    pub max_body_bytes: usize,
    /// Serve the web join page at `/`.
    pub join_page: bool,
    /// How long a dial-in code from the join page is valid.
    pub dialin_code_ttl: Duration,
    /// Key for signing session cookies (created, mode 0600, on first start).
    pub cookie_key_file: PathBuf,
    /// What clients may take of the server (slow clients, connections,
    /// request rates).
    pub limits: HttpLimits,
}

/// A token bucket's size: `burst` requests at once, refilled at
/// `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// The HTTP server's defences against clients that hold connections open
/// (slowloris) or send too many requests. A "client address" is an IPv4
/// address or an IPv6 /64 (one subscriber's network), taken from
/// X-Forwarded-For only when the connection comes from `trusted_proxies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// To receive a request's headers; also the longest a kept-alive
    /// connection may sit idle before its next request.
    pub header_timeout: Duration,
    /// To receive a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Open connections in all; more are closed at once.
    pub max_connections: usize,
    /// Open connections per client address (trusted proxies are exempt).
    pub max_connections_per_address: usize,
    /// Requests per client address, on every route (None: unlimited).
    pub rate: Option<RateLimit>,
    /// Requests per client address to the join page's API, on top of
    /// `rate` (None: unlimited).
    pub join_rate: Option<RateLimit>,
    /// Reverse proxies whose X-Forwarded-For names the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpLimits {
    /// The configuration's defaults.
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_connections_per_address: 32,
            rate: Some(RateLimit {
                per_minute: 300,
                burst: 100,
            }),
            join_rate: Some(RateLimit {
                per_minute: 10,
                burst: 20,
            }),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkTransport {
    Udp,
    Tcp,
}

/// `Debug` hides the password.
#[derive(Clone)]
pub struct TrunkSettings {
    /// Where requests go: `host:port` (an IP address or a name resolved at
    /// start-up).
    pub proxy: String,
    pub transport: TrunkTransport,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The SIP domain used in From and Request-URIs (default: proxy host).
    pub domain: String,
    /// Our caller ID on outbound calls and messages.
    pub from_user: String,
    pub register: bool,
    pub register_expires: u32,
    /// Answer digest challenges only for this realm (None: any realm).
    pub realm: Option<String>,
}

impl std::fmt::Debug for TrunkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkSettings")
            .field("proxy", &self.proxy)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("domain", &self.domain)
            .field("from_user", &self.from_user)
            .field("register", &self.register)
            .field("register_expires", &self.register_expires)
            .field("realm", &self.realm)
            .finish()
    }
}

/// Everything the one-time-passcode features need.
#[derive(Debug, Clone)]
pub struct OtpSettings {
    pub store: StoreSettings,
    pub verify: VerifySettings,
    pub identity: IdentitySettings,
    pub http: Option<HttpSettings>,
    pub webhook: Option<WebhookSettings>,
    pub email: Option<EmailSettings>,
    /// The `log` channel is enabled (development only).
    pub log_channel: bool,
    pub trunk: Option<TrunkSettings>,
    pub participants: Vec<ParticipantSettings>,
}

// ----------------------------------------------------------------------
// As written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    path: String,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: "pinbridge.db".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawVerify {
    code_length: i64,
    ttl_secs: i64,
    max_checks: i64,
    max_sends_per_hour: i64,
    key_file: String,
    channels: Vec<String>,
}

impl Default for RawVerify {
    fn default() -> Self {
        RawVerify {
            code_length: 6,
            ttl_secs: 600,
            max_checks: 5,
            max_sends_per_hour: 5,
            key_file: "pinbridge.key".into(),
            channels: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIdentity {
    default_country_code: String,
    trusted_proxies: Vec<String>,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            default_country_code: "1".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: String,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default = "default_body")]
    max_body_bytes: i64,
    #[serde(default = "yes")]
    join_page: bool,
    #[serde(default = "five_minutes")]
    dialin_code_ttl_secs: i64,
    #[serde(default = "cookie_key")]
    cookie_key_file: String,
    #[serde(default = "ten")]
    header_timeout_secs: i64,
    #[serde(default = "ten")]
    body_timeout_secs: i64,
    #[serde(default = "max_connections")]
    max_connections: i64,
    #[serde(default = "max_connections_per_address")]
    max_connections_per_address: i64,
    #[serde(default = "rate_limit_per_minute")]
    rate_limit_per_minute: i64,
    #[serde(default = "rate_limit_burst")]
    rate_limit_burst: i64,
    #[serde(default = "join_rate_limit_per_minute")]
    join_rate_limit_per_minute: i64,
    #[serde(default = "join_rate_limit_burst")]
    join_rate_limit_burst: i64,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

fn max_connections() -> i64 {
    HttpLimits::default().max_connections as i64
}
fn max_connections_per_address() -> i64 {
    HttpLimits::default().max_connections_per_address as i64
}
fn rate_limit_per_minute() -> i64 {
    HttpLimits::default()
        .rate
        .map_or(0, |r| i64::from(r.per_minute))
}
fn rate_limit_burst() -> i64 {
    HttpLimits::default().rate.map_or(0, |r| i64::from(r.burst))
}
fn join_rate_limit_per_minute() -> i64 {
    HttpLimits::default()
        .join_rate
        .map_or(0, |r| i64::from(r.per_minute))
}
fn join_rate_limit_burst() -> i64 {
    HttpLimits::default()
        .join_rate
        .map_or(0, |r| i64::from(r.burst))
}

fn default_body() -> i64 {
    16 * 1024
}
fn yes() -> bool {
    true
}
fn five_minutes() -> i64 {
    300
}
fn cookie_key() -> String {
    "pinbridge-cookie.key".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDelivery {
    webhook: Option<RawWebhook>,
    email: Option<RawEmail>,
    log: Option<RawLogChannel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: String,
    #[serde(default = "ten")]
    timeout_secs: i64,
    #[serde(default = "three")]
    retries: i64,
}

fn ten() -> i64 {
    10
}
fn three() -> i64 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    host: String,
    #[serde(default = "submission")]
    port: i64,
    #[serde(default = "starttls")]
    security: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    from: String,
    #[serde(default = "ten")]
    timeout_secs: i64,
    #[serde(default)]
    ca_file: Option<String>,
}

fn submission() -> i64 {
    587
}
fn starttls() -> String {
    "starttls".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogChannel {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    proxy: String,
    #[serde(default = "udp")]
    transport: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default = "pinbridge_user")]
    from_user: String,
    #[serde(default)]
    register: bool,
    #[serde(default = "hour")]
    register_expires: i64,
    #[serde(default)]
    realm: Option<String>,
}

fn udp() -> String {
    "udp".into()
}
fn pinbridge_user() -> String {
    "pinbridge".into()
}
fn hour() -> i64 {
    3600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParticipant {
    #[serde(default)]
    username: Option<String>,
    name: String,
    phone: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    moderator: bool,
    #[serde(default = "all")]
    conferences: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    name_prompt: Option<String>,
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

/// The parts of the raw file this module validates.
pub(super) struct RawOtp<'a> {
    pub store: &'a RawStore,
    pub verify: &'a RawVerify,
    pub identity: &'a RawIdentity,
    pub http: &'a Option<RawHttp>,
    pub delivery: &'a RawDelivery,
    pub trunk: &'a Option<RawTrunk>,
    pub participants: &'a [RawParticipant],
}

fn channels(
    ctx: &Ctx<'_>,
    names: &[String],
    path: &[Seg<'_>],
) -> Result<Vec<ChannelKind>, ConfigError> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut p = path.to_vec();
        p.push(Seg::Index(i));
        let c = ChannelKind::from_name(n).ok_or_else(|| {
            ctx.err(
                &p,
                format!("unknown channel `{n}` (use webhook, sip-message, email, voice or log)"),
            )
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// `v` if it is in `lo..=hi`, else an error naming the key.
fn range(ctx: &Ctx<'_>, v: i64, lo: i64, hi: i64, path: &[Seg<'_>]) -> Result<i64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ctx.err(path, format!("must be between {lo} and {hi}, got {v}")))
    }
}

/// Every channel in the default order: whatever is configured, SMS first.
const CHANNEL_ORDER: [ChannelKind; 5] = [
    ChannelKind::Webhook,
    ChannelKind::SipMessage,
    ChannelKind::Email,
    ChannelKind::Voice,
    ChannelKind::Log,
];

/// Which delivery channels the file sets up. A channel is usable only if
/// it is, so `[verify] channels` and a participant's `channels` may name
/// only those.
#[derive(Debug, Clone, Copy)]
struct Configured {
    webhook: bool,
    email: bool,
    trunk: bool,
    log: bool,
}

impl Configured {
    fn has(self, c: ChannelKind) -> bool {
        match c {
            ChannelKind::Webhook => self.webhook,
            ChannelKind::Email => self.email,
            ChannelKind::SipMessage | ChannelKind::Voice => self.trunk,
            ChannelKind::Log => self.log,
        }
    }

    /// What a channel needs to be set up.
    fn needs(c: ChannelKind) -> &'static str {
        match c {
            ChannelKind::Webhook => "needs [delivery.webhook]",
            ChannelKind::Email => "needs [delivery.email]",
            ChannelKind::SipMessage | ChannelKind::Voice => "needs [trunk]",
            ChannelKind::Log => "needs [delivery.log] enabled = true (development only)",
        }
    }

    /// The channels set up, in the default order.
    fn all(self) -> Vec<ChannelKind> {
        CHANNEL_ORDER.into_iter().filter(|c| self.has(*c)).collect()
    }
}

impl OtpSettings {
    fn configured(&self) -> Configured {
        Configured {
            webhook: self.webhook.is_some(),
            email: self.email.is_some(),
            trunk: self.trunk.is_some(),
            log: self.log_channel,
        }
    }

    /// What the verification service picks channels by: the channels that
    /// are set up, the `[verify] channels` order and the default country
    /// code.
    pub fn channel_policy(&self) -> ChannelPolicy {
        ChannelPolicy {
            enabled: self.configured().all(),
            default_order: self.verify.channels.clone(),
            default_country_code: self.identity.default_country_code.clone(),
        }
    }
}

/// Checks the one-time-passcode sections and builds their settings. The
/// channels named in `[verify]` and `[[participant]]` are checked against
/// the `[delivery.*]` and `[trunk]` sections, so those come first.
pub(super) fn validate(
    ctx: &Ctx<'_>,
    raw: RawOtp<'_>,
    conference_names: &[String],
) -> Result<OtpSettings, ConfigError> {
    let store = StoreSettings {
        path: ctx.path(&raw.store.path),
    };
    let mut verify = verify_section(ctx, raw.verify)?;
    let identity = identity_section(ctx, raw.identity)?;
    let http = match raw.http {
        None => None,
        Some(h) => Some(http_section(ctx, h)?),
    };
    let webhook = match &raw.delivery.webhook {
        None => None,
        Some(w) => Some(webhook_section(ctx, w)?),
    };
    let email = match &raw.delivery.email {
        None => None,
        Some(e) => Some(email_section(ctx, e)?),
    };
    let log_channel = raw.delivery.log.as_ref().is_some_and(|l| l.enabled);
    let trunk = match raw.trunk {
        None => None,
        Some(t) => Some(trunk_section(ctx, t)?),
    };
    let configured = Configured {
        webhook: webhook.is_some(),
        email: email.is_some(),
        trunk: trunk.is_some(),
        log: log_channel,
    };
    verify.channels = verify_channels(ctx, verify.channels, configured)?;
    let mut participants: Vec<ParticipantSettings> = Vec::new();
    for (i, p) in raw.participants.iter().enumerate() {
        let at = Participant {
            index: i,
            country_code: &identity.default_country_code,
            conference_names,
            configured,
            earlier: &participants,
        };
        let p = participant(ctx, p, &at)?;
        participants.push(p);
    }
    Ok(OtpSettings {
        store,
        verify,
        identity,
        http,
        webhook,
        email,
        log_channel,
        trunk,
        participants,
    })
}

/// `[verify]`, with the channels parsed but not yet checked against the
/// configured ones (see [`verify_channels`]).
fn verify_section(ctx: &Ctx<'_>, v: &RawVerify) -> Result<VerifySettings, ConfigError> {
    let at = |key| [Seg::Key("verify"), Seg::Key(key)];
    Ok(VerifySettings {
        code_length: range(ctx, v.code_length, 4, 10, &at("code_length"))? as u8,
        ttl: Duration::from_secs(range(ctx, v.ttl_secs, 30, 86_400, &at("ttl_secs"))? as u64),
        max_checks: range(ctx, v.max_checks, 1, 100, &at("max_checks"))? as u32,
        max_sends_per_hour: range(
            ctx,
            v.max_sends_per_hour,
            1,
            1000,
            &at("max_sends_per_hour"),
        )? as u32,
        key_file: ctx.path(&v.key_file),
        channels: channels(ctx, &v.channels, &at("channels"))?,
    })
}

/// `[verify] channels`: each must be configured; none given means every
/// configured one, in the default order.
fn verify_channels(
    ctx: &Ctx<'_>,
    named: Vec<ChannelKind>,
    configured: Configured,
) -> Result<Vec<ChannelKind>, ConfigError> {
    for (i, c) in named.iter().enumerate() {
        if !configured.has(*c) {
            return Err(ctx.err(
                &[Seg::Key("verify"), Seg::Key("channels"), Seg::Index(i)],
                format!("channel `{}` {}", c.name(), Configured::needs(*c)),
            ));
        }
    }
    Ok(if named.is_empty() {
        configured.all()
    } else {
        named
    })
}

fn identity_section(ctx: &Ctx<'_>, id: &RawIdentity) -> Result<IdentitySettings, ConfigError> {
    if id.default_country_code.is_empty()
        || id.default_country_code.len() > 3
        || !id.default_country_code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ctx.err(
            &[Seg::Key("identity"), Seg::Key("default_country_code")],
            "must be 1 to 3 digits, e.g. \"1\" or \"44\"".into(),
        ));
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in id.trusted_proxies.iter().enumerate() {
        trusted_proxies.push(p.parse::<IpAddr>().map_err(|_| {
            ctx.err(
                &[
                    Seg::Key("identity"),
                    Seg::Key("trusted_proxies"),
                    Seg::Index(i),
                ],
                format!("`{p}` is not an IP address"),
            )
        })?);
    }
    Ok(IdentitySettings {
        default_country_code: id.default_country_code.clone(),
        trusted_proxies,
    })
}

fn http_section(ctx: &Ctx<'_>, h: &RawHttp) -> Result<HttpSettings, ConfigError> {
    let at = |key| [Seg::Key("http"), Seg::Key(key)];
    let listen = h.listen.parse::<SocketAddr>().map_err(|_| {
        ctx.err(
            &at("listen"),
            format!("`{}` is not an IP:port address", h.listen),
        )
    })?;
    let mut api_key_hashes = Vec::new();
    for (i, key) in h.api_keys.iter().enumerate() {
        let at = [Seg::Key("http"), Seg::Key("api_keys"), Seg::Index(i)];
        // Never echo a key in an error.
        let digest = match key.strip_prefix("sha256:") {
            Some(hex) => decode_hex32(hex)
                .ok_or_else(|| ctx.err(&at, "a sha256: entry needs 64 hex digits".into()))?,
            None if key.len() >= 16 => sha256(key.as_bytes()),
            None => return Err(ctx.err(&at, "an API key must be at least 16 characters".into())),
        };
        api_key_hashes.push(digest);
    }
    Ok(HttpSettings {
        listen,
        api_key_hashes,
        max_body_bytes: range(ctx, h.max_body_bytes, 256, 1 << 20, &at("max_body_bytes"))? as usize,
        join_page: h.join_page,
        dialin_code_ttl: Duration::from_secs(range(
            ctx,
            h.dialin_code_ttl_secs,
            30,
            86_400,
            &at("dialin_code_ttl_secs"),
        )? as u64),
        cookie_key_file: ctx.path(&h.cookie_key_file),
        limits: http_limits(ctx, h)?,
    })
}

fn webhook_section(ctx: &Ctx<'_>, w: &RawWebhook) -> Result<WebhookSettings, ConfigError> {
    let at = |key| [Seg::Key("delivery"), Seg::Key("webhook"), Seg::Key(key)];
    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
        return Err(ctx.err(&at("url"), format!("`{}` is not an http(s) URL", w.url)));
    }
    if w.secret.len() < 16 {
        return Err(ctx.err(&at("secret"), "must be at least 16 characters".into()));
    }
    Ok(WebhookSettings {
        url: w.url.clone(),
        secret: w.secret.clone(),
        timeout: Duration::from_secs(
            range(ctx, w.timeout_secs, 1, 120, &at("timeout_secs"))? as u64
        ),
        retries: range(ctx, w.retries, 0, 10, &at("retries"))? as u32,
    })
}

fn email_section(ctx: &Ctx<'_>, e: &RawEmail) -> Result<EmailSettings, ConfigError> {
    let at = |key| [Seg::Key("delivery"), Seg::Key("email"), Seg::Key(key)];
    let security = match e.security.as_str() {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "none" => SmtpSecurity::None,
        other => {
            return Err(ctx.err(
                &at("security"),
                format!("`{other}` is not starttls, tls or none"),
            ))
        }
    };
    if e.username.is_some() != e.password.is_some() {
        return Err(ctx.err(&at("password"), "username and password go together".into()));
    }
    if !e.from.contains('@') {
        return Err(ctx.err(&at("from"), "must be an email address".into()));
    }
    let loopback = e.host == "localhost"
        || e.host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if security == SmtpSecurity::None && e.password.is_some() && !loopback {
        return Err(ctx.err(
            &at("security"),
            format!(
                "\"none\" would send the password to {} unencrypted; use \"starttls\" or \"tls\" (plain text is for a relay on this machine)",
                e.host
            ),
        ));
    }
    if security == SmtpSecurity::None && e.ca_file.is_some() {
        return Err(ctx.err(
            &at("ca_file"),
            "is used only with security = \"starttls\" or \"tls\"".into(),
        ));
    }
    Ok(EmailSettings {
        host: e.host.clone(),
        port: range(ctx, e.port, 1, 65535, &at("port"))? as u16,
        security,
        username: e.username.clone(),
        password: e.password.clone(),
        from: e.from.clone(),
        timeout: Duration::from_secs(
            range(ctx, e.timeout_secs, 1, 120, &at("timeout_secs"))? as u64
        ),
        ca_file: e.ca_file.as_deref().map(|p| ctx.path(p)),
    })
}

fn trunk_section(ctx: &Ctx<'_>, t: &RawTrunk) -> Result<TrunkSettings, ConfigError> {
    let at = |key| [Seg::Key("trunk"), Seg::Key(key)];
    let transport = match t.transport.as_str() {
        "udp" => TrunkTransport::Udp,
        "tcp" => TrunkTransport::Tcp,
        other => return Err(ctx.err(&at("transport"), format!("`{other}` is not udp or tcp"))),
    };
    let host = t
        .proxy
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&t.proxy)
        .trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(ctx.err(&at("proxy"), "needs host[:port]".into()));
    }
    if t.username.is_some() != t.password.is_some() {
        return Err(ctx.err(&at("password"), "username and password go together".into()));
    }
    if let Some(r) = &t.realm {
        if r.is_empty() || r.chars().any(|c| c.is_control() || c == '"') {
            return Err(ctx.err(
                &at("realm"),
                "must be a non-empty realm as the trunk writes it, without quotes or control characters".into(),
            ));
        }
        if t.username.is_none() {
            return Err(ctx.err(
                &at("realm"),
                "only means something with username and password".into(),
            ));
        }
    }
    Ok(TrunkSettings {
        proxy: if t.proxy.contains(':') && !t.proxy.ends_with(']') {
            t.proxy.clone()
        } else {
            format!("{}:5060", t.proxy)
        },
        transport,
        username: t.username.clone(),
        password: t.password.clone(),
        domain: t.domain.clone().unwrap_or_else(|| host.to_string()),
        from_user: t.from_user.clone(),
        register: t.register,
        register_expires: range(ctx, t.register_expires, 60, 86_400, &at("register_expires"))?
            as u32,
        realm: t.realm.clone(),
    })
}

/// What a `[[participant]]` is checked against.
struct Participant<'a> {
    /// Its position among the `[[participant]]` tables.
    index: usize,
    country_code: &'a str,
    conference_names: &'a [String],
    configured: Configured,
    /// The participants before it: phone numbers and usernames are unique.
    earlier: &'a [ParticipantSettings],
}

/// One `[[participant]]`: phone normalised to E.164, username checked like
/// the API and the CLI do, conferences and channels checked against the
/// file.
fn participant(
    ctx: &Ctx<'_>,
    p: &RawParticipant,
    at: &Participant<'_>,
) -> Result<ParticipantSettings, ConfigError> {
    let i = at.index;
    let key = |key| [Seg::Key("participant"), Seg::Index(i), Seg::Key(key)];
    let item = |key, j| {
        [
            Seg::Key("participant"),
            Seg::Index(i),
            Seg::Key(key),
            Seg::Index(j),
        ]
    };
    if p.name.trim().is_empty() {
        return Err(ctx.err(&key("name"), "must not be empty".into()));
    }
    let phone = normalize_e164(&p.phone, at.country_code).ok_or_else(|| {
        ctx.err(
            &key("phone"),
            format!("`{}` is not a phone number", p.phone),
        )
    })?;
    if at.earlier.iter().any(|o| o.phone == phone) {
        return Err(ctx.err(
            &key("phone"),
            format!("{phone} belongs to another participant too"),
        ));
    }
    if let Some(e) = &p.email {
        if !e.contains('@') || e.contains(char::is_whitespace) {
            return Err(ctx.err(&key("email"), format!("`{e}` is not an email address")));
        }
    }
    for (j, c) in p.conferences.iter().enumerate() {
        if c != "*" && !at.conference_names.contains(c) {
            return Err(ctx.err(
                &item("conferences", j),
                format!("no conference named `{c}`"),
            ));
        }
    }
    let username = match &p.username {
        None => None,
        Some(u) => {
            let u = validate_username(u).map_err(|_| {
                ctx.err(
                    &key("username"),
                    "must be 1 to 32 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
                        .into(),
                )
            })?;
            if at.earlier.iter().any(|o| o.username.as_deref() == Some(&u)) {
                return Err(ctx.err(
                    &key("username"),
                    format!("`{u}` belongs to another participant too"),
                ));
            }
            Some(u)
        }
    };
    let chans = channels(ctx, &p.channels, &key("channels"))?;
    for (j, c) in chans.iter().enumerate() {
        if !at.configured.has(*c) {
            return Err(ctx.err(
                &item("channels", j),
                format!("channel `{}` {}", c.name(), Configured::needs(*c)),
            ));
        }
        if *c == ChannelKind::Email && p.email.is_none() {
            return Err(ctx.err(
                &key("email"),
                "the email channel needs an email address".into(),
            ));
        }
    }
    Ok(ParticipantSettings {
        username,
        name: p.name.clone(),
        phone,
        email: p.email.clone(),
        moderator: p.moderator,
        conferences: p.conferences.clone(),
        channels: chans,
        name_prompt: p.name_prompt.as_deref().map(|n| ctx.path(n)),
    })
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// `[http]`'s limits. A rate of 0 per minute turns that limit off.
fn http_limits(ctx: &Ctx<'_>, h: &RawHttp) -> Result<HttpLimits, ConfigError> {
    let at = |key: &'static str| [Seg::Key("http"), Seg::Key(key)];
    let range = |v: i64, lo: i64, hi: i64, path: &[Seg<'_>]| range(ctx, v, lo, hi, path);
    let secs = |v: i64, key: &'static str| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(range(v, 1, 300, &at(key))? as u64))
    };
    let rate = |per_minute: i64,
                burst: i64,
                keys: (&'static str, &'static str)|
     -> Result<Option<RateLimit>, ConfigError> {
        let per_minute = range(per_minute, 0, 1_000_000, &at(keys.0))?;
        let burst = range(burst, 1, 1_000_000, &at(keys.1))?;
        Ok((per_minute > 0).then_some(RateLimit {
            per_minute: per_minute as u32,
            burst: burst as u32,
        }))
    };
    let mut trusted_proxies = Vec::new();
    for (i, p) in h.trusted_proxies.iter().enumerate() {
        trusted_proxies.push(p.parse::<IpAddr>().map_err(|_| {
            ctx.err(
                &[Seg::Key("http"), Seg::Key("trusted_proxies"), Seg::Index(i)],
                format!("`{p}` is not an IP address"),
            )
        })?);
    }
    let max_connections = range(h.max_connections, 1, 1_000_000, &at("max_connections"))?;
    let per_address = range(
        h.max_connections_per_address,
        1,
        1_000_000,
        &at("max_connections_per_address"),
    )?;
    if per_address > max_connections {
        return Err(ctx.err(
            &at("max_connections_per_address"),
            format!("must not be more than max_connections ({max_connections}), got {per_address}"),
        ));
    }
    Ok(HttpLimits {
        header_timeout: secs(h.header_timeout_secs, "header_timeout_secs")?,
        body_timeout: secs(h.body_timeout_secs, "body_timeout_secs")?,
        max_connections: max_connections as usize,
        max_connections_per_address: per_address as usize,
        rate: rate(
            h.rate_limit_per_minute,
            h.rate_limit_burst,
            ("rate_limit_per_minute", "rate_limit_burst"),
        )?,
        join_rate: rate(
            h.join_rate_limit_per_minute,
            h.join_rate_limit_burst,
            ("join_rate_limit_per_minute", "join_rate_limit_burst"),
        )?,
        trusted_proxies,
    })
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(participants: &str) -> Result<crate::config::Config, ConfigError> {
        let toml = format!(
            "[delivery.log]\nenabled = true\n[[conference]]\nname = \"board\"\nnumbers = [\"100\"]\npin = \"1234\"\n{participants}"
        );
        crate::config::Config::parse(&toml, "t.toml", std::path::Path::new("."))
    }

    #[test]
    fn participant_usernames() {
        let c = parse(
            "[[participant]]\nname = \"A\"\nphone = \"+12015550123\"\nusername = \"Alice\"\n\
             [[participant]]\nname = \"B\"\nphone = \"+12015550124\"\n",
        )
        .unwrap();
        assert_eq!(c.otp.participants[0].username.as_deref(), Some("alice"));
        assert_eq!(c.otp.participants[1].username, None);
        let e =
            parse("[[participant]]\nname = \"A\"\nphone = \"+12015550123\"\nusername = \"a b\"\n")
                .unwrap_err();
        assert_eq!(e.key, "participant[0].username");
        assert_eq!(e.line, Some(10));
        let e = parse(
            "[[participant]]\nname = \"A\"\nphone = \"+12015550123\"\nusername = \"x\"\n\
             [[participant]]\nname = \"B\"\nphone = \"+12015550124\"\nusername = \"X\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("belongs to another participant"), "{e}");
    }

    fn parse_at_etc(text: &str) -> Result<crate::config::Config, ConfigError> {
        crate::config::Config::parse(text, "test.toml", std::path::Path::new("/etc/pinbridge"))
    }

    const CONF: &str = "[[conference]]\nname = \"a\"\n";

    #[test]
    fn email_ca_file_is_resolved_against_the_config_directory() {
        let c = parse_at_etc(&format!(
            "[delivery.email]\nhost = \"mail.example.com\"\nfrom = \"otp@example.com\"\n\
             username = \"u\"\npassword = \"p\"\nca_file = \"private-ca.pem\"\n{CONF}"
        ));
        let email = c.map(|c| c.otp.email).unwrap_or_else(|e| panic!("{e}"));
        let email = email.unwrap_or_else(|| panic!("no email settings"));
        assert_eq!(
            email.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/pinbridge/private-ca.pem"))
        );
        assert_eq!(email.security, SmtpSecurity::StartTls);
        let dbg = format!("{email:?}");
        assert!(dbg.contains("password: Some(\"<redacted>\")"), "{dbg}");

        let c = parse_at_etc(&format!(
            "[delivery.email]\nhost = \"h\"\nfrom = \"a@b\"\n{CONF}"
        ));
        let email = c.ok().and_then(|c| c.otp.email);
        assert!(email.is_some_and(|e| e.ca_file.is_none()));
    }

    #[test]
    fn email_without_tls_refuses_a_password_off_this_machine_and_a_ca_file() {
        let e = parse_at_etc(&format!(
            "[delivery.email]\nhost = \"mail.example.com\"\nsecurity = \"none\"\n\
             from = \"otp@example.com\"\nusername = \"u\"\npassword = \"p\"\n{CONF}"
        ));
        let e = e
            .err()
            .unwrap_or_else(|| panic!("accepted a clear-text password"));
        assert_eq!(e.key, "delivery.email.security");
        assert!(e.message.contains("unencrypted"), "{e}");

        let ok = parse_at_etc(&format!(
            "[delivery.email]\nhost = \"127.0.0.1\"\nport = 25\nsecurity = \"none\"\n\
             from = \"otp@example.com\"\nusername = \"u\"\npassword = \"p\"\n{CONF}"
        ));
        assert!(ok.is_ok(), "{:?}", ok.err());

        let e = parse_at_etc(&format!(
            "[delivery.email]\nhost = \"localhost\"\nsecurity = \"none\"\n\
             from = \"otp@example.com\"\nca_file = \"ca.pem\"\n{CONF}"
        ));
        let e = e
            .err()
            .unwrap_or_else(|| panic!("accepted ca_file without TLS"));
        assert_eq!(e.key, "delivery.email.ca_file");
    }

    #[test]
    fn http_limits() {
        let http = |extra: &str| {
            parse_at_etc(&format!(
                "[http]\nlisten = \"127.0.0.1:8080\"\n{extra}{CONF}"
            ))
        };
        let limits = |c: Result<crate::config::Config, ConfigError>| {
            c.map(|c| c.otp.http.map(|h| h.limits))
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no [http]"))
        };
        assert_eq!(limits(http("")), HttpLimits::default());
        let l = limits(http(
            "header_timeout_secs = 3\nbody_timeout_secs = 4\nmax_connections = 100\n\
             max_connections_per_address = 5\nrate_limit_per_minute = 0\n\
             join_rate_limit_per_minute = 6\njoin_rate_limit_burst = 2\n\
             trusted_proxies = [\"127.0.0.1\", \"::1\"]\n",
        ));
        assert_eq!(
            l,
            HttpLimits {
                header_timeout: Duration::from_secs(3),
                body_timeout: Duration::from_secs(4),
                max_connections: 100,
                max_connections_per_address: 5,
                rate: None,
                join_rate: Some(RateLimit {
                    per_minute: 6,
                    burst: 2
                }),
                trusted_proxies: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            }
        );
        for (bad, key) in [
            ("header_timeout_secs = 0\n", "http.header_timeout_secs"),
            ("body_timeout_secs = 301\n", "http.body_timeout_secs"),
            ("max_connections = 0\n", "http.max_connections"),
            (
                "max_connections = 10\nmax_connections_per_address = 11\n",
                "http.max_connections_per_address",
            ),
            ("rate_limit_per_minute = -1\n", "http.rate_limit_per_minute"),
            ("rate_limit_burst = 0\n", "http.rate_limit_burst"),
            ("join_rate_limit_burst = 0\n", "http.join_rate_limit_burst"),
            ("trusted_proxies = [\"proxy\"]\n", "http.trusted_proxies[0]"),
        ] {
            let e = http(bad).err().unwrap_or_else(|| panic!("accepted {bad}"));
            assert_eq!(e.key, key, "{bad}: {e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn trunk_realm() {
        let trunk = |extra: &str| {
            parse_at_etc(&format!(
                "[trunk]\nproxy = \"sip.example.net\"\nusername = \"u\"\npassword = \"p\"\n{extra}{CONF}"
            ))
        };
        let realm = |c: Result<crate::config::Config, ConfigError>| {
            c.map(|c| c.otp.trunk.and_then(|t| t.realm))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(realm(trunk("")), None);
        assert_eq!(
            realm(trunk("realm = \"sip.example.net\"\n")).as_deref(),
            Some("sip.example.net")
        );
        for bad in [
            "realm = \"\"\n",
            "realm = \"a\\\"b\"\n",
            "realm = \"a\\nb\"\n",
        ] {
            let e = trunk(bad).err().unwrap_or_else(|| panic!("accepted {bad}"));
            assert_eq!((e.key.as_str(), e.line), ("trunk.realm", Some(5)), "{bad}");
        }
        let e = parse_at_etc(&format!(
            "[trunk]\nproxy = \"sip.example.net\"\nrealm = \"r\"\n{CONF}"
        ))
        .err()
        .unwrap_or_else(|| panic!("a realm without credentials"));
        assert_eq!(e.key, "trunk.realm");
    }
}
