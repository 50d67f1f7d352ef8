//! The async glue around the OTP core, shared by the HTTP API, the web
//! join page and the IVR: it resolves who a code is for, picks the
//! channels (with fallback), runs the [`Verifier`] on the store thread,
//! hands the code to the [`CodeSender`] and records every delivery
//! outcome.

use std::sync::{Arc, Mutex, MutexGuard};

use super::channel::ChannelKind;
use super::clock::Clock;
use super::dialin::{DialinCodes, DialinError, Redeemed};
use super::directory::Participant;
use super::e164::normalize_e164;
use super::key::ServerKey;
use super::otp::{
    CancelError, CheckError, CheckTarget, Checked, DeliveryRecord, Policy, PolicyError, StartError,
    StartRequest, Started, Status, Verification, Verifier,
};
use super::sender::{CodeSender, DeliveryOutcome, DeliveryRequest, SecretCode};
use crate::config::otp::OtpSettings;
use crate::store::{StoreError, StoreHandle};

/// Whom to send a code to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A phone number as given (normalised to E.164 here).
    Phone(String),
    Email(String),
    /// A known participant: the destination is their phone, and their
    /// channels and email apply.
    Participant(Box<Participant>),
}

/// How to deliver.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// Exactly this channel, no fallback.
    pub requested: Option<ChannelKind>,
    /// The conference's order (the IVR passes it), before the participant's.
    pub conference: Vec<ChannelKind>,
}

/// Which channels exist and the default order.
#[derive(Debug, Clone)]
pub struct ChannelPolicy {
    /// Configured (usable) channels.
    pub enabled: Vec<ChannelKind>,
    /// Order when neither the conference nor the participant has one.
    pub default_order: Vec<ChannelKind>,
    /// For numbers given without a country code.
    pub default_country_code: String,
}

impl ChannelPolicy {
    /// From the configuration: the channels that are set up, in the
    /// `[verify] channels` order.
    pub fn from_settings(s: &OtpSettings) -> ChannelPolicy {
        let enabled = [
            (ChannelKind::Webhook, s.webhook.is_some()),
            (ChannelKind::SipMessage, s.trunk.is_some()),
            (ChannelKind::Email, s.email.is_some()),
            (ChannelKind::Voice, s.trunk.is_some()),
            (ChannelKind::Log, s.log_channel),
        ]
        .into_iter()
        .filter_map(|(c, on)| on.then_some(c))
        .collect();
        ChannelPolicy {
            enabled,
            default_order: s.verify.channels.clone(),
            default_country_code: s.identity.default_country_code.clone(),
        }
    }
}

/// Why a service call failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("`{0}` is not a phone number (E.164, e.g. +12015550123) or an email address")]
    BadDestination(String),
    #[error("channel `{}` is not configured on this server", .0.name())]
    ChannelNotEnabled(ChannelKind),
    #[error("channel `{}` cannot reach {}", .0.name(), .1)]
    ChannelCannotReach(ChannelKind, &'static str),
    #[error("no configured channel can reach this destination")]
    NoChannel,
    #[error("too many codes sent to this destination; try again in {} s", crate::verify::otp::ceil_secs(*retry_after_ms))]
    TooManySends {
        pending: Option<Box<Verification>>,
        retry_after_ms: i64,
    },
    #[error("the code could not be delivered: {}", describe(failures))]
    DeliveryFailed {
        verification: Box<Verification>,
        failures: Vec<(ChannelKind, String)>,
    },
    #[error("no such verification")]
    NotFound,
    #[error("the verification is {} and can no longer be canceled", .0.name())]
    NotPending(Status),
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(failures: &[(ChannelKind, String)]) -> String {
    failures
        .iter()
        .map(|(c, r)| format!("{}: {r}", c.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<super::otp::StorageError> for ServiceError {
    fn from(e: super::otp::StorageError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

/// A started verification and how its delivery went.
#[derive(Debug, Clone)]
pub struct StartOutcome {
    pub verification: Verification,
    /// False when the pending verification was re-sent.
    pub new: bool,
    pub delivered_via: ChannelKind,
    /// Every attempt, in order (failed fallbacks first).
    pub attempts: Vec<(ChannelKind, DeliveryOutcome)>,
}

/// A check's answer with what is left.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub verification: Verification,
    pub valid: bool,
    pub checks_remaining: u32,
}

/// The OTP service. Clone freely: all clones share the store, the
/// verifier's memory of pending codes, the sender and the clock.
#[derive(Clone)]
pub struct VerifyService {
    store: StoreHandle,
    verifier: Arc<Mutex<Verifier>>,
    dialin: DialinCodes,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
    channels: Arc<ChannelPolicy>,
    policy: Policy,
}

fn lock(v: &Mutex<Verifier>) -> MutexGuard<'_, Verifier> {
    // The verifier holds no invariant a panic elsewhere could break
    // half-way (its map is only a cache of codes): carry on.
    v.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is this channel able to reach someone with (phone, email)?
fn reaches(c: ChannelKind, phone: bool, email: bool) -> bool {
    match c {
        ChannelKind::Email => email,
        ChannelKind::Webhook | ChannelKind::SipMessage | ChannelKind::Voice => phone,
        ChannelKind::Log => true,
    }
}

/// The channels to try, in order. A requested channel is the only one
/// (and must be usable); otherwise the first non-empty order among the
/// conference's, the participant's and the configured default, keeping
/// only channels that are enabled and can reach the destination.
pub fn channel_order(
    policy: &ChannelPolicy,
    channels: &Channels,
    participant: Option<&Participant>,
    phone: bool,
    email: bool,
) -> Result<Vec<ChannelKind>, ServiceError> {
    if let Some(c) = channels.requested {
        if !policy.enabled.contains(&c) {
            return Err(ServiceError::ChannelNotEnabled(c));
        }
        if !reaches(c, phone, email) {
            let what = if c == ChannelKind::Email {
                "a destination without an email address"
            } else {
                "a destination without a phone number"
            };
            return Err(ServiceError::ChannelCannotReach(c, what));
        }
        return Ok(vec![c]);
    }
    let participant_order = participant.map(|p| p.channels.as_slice()).unwrap_or(&[]);
    let base = [
        channels.conference.as_slice(),
        participant_order,
        policy.default_order.as_slice(),
    ]
    .into_iter()
    .find(|o| !o.is_empty())
    .unwrap_or(&[]);
    let order: Vec<ChannelKind> = base
        .iter()
        .copied()
        .filter(|c| policy.enabled.contains(c) && reaches(*c, phone, email))
        .collect();
    if order.is_empty() {
        Err(ServiceError::NoChannel)
    } else {
        Ok(order)
    }
}

impl VerifyService {
    pub fn new(
        store: StoreHandle,
        key: ServerKey,
        policy: Policy,
        channels: ChannelPolicy,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
    ) -> Result<VerifyService, PolicyError> {
        Ok(VerifyService {
            store,
            verifier: Arc::new(Mutex::new(Verifier::new(key.clone(), policy)?)),
            dialin: DialinCodes::new(key),
            sender,
            clock,
            channels: Arc::new(channels),
            policy,
        })
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn channel_policy(&self) -> &ChannelPolicy {
        &self.channels
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Normalises a destination as given: an email address (lowercased)
    /// or a phone number (to E.164).
    pub fn normalize_destination(&self, to: &str) -> Result<(String, bool), ServiceError> {
        let to = to.trim();
        if to.contains('@') {
            let ok = to.len() <= 254
                && !to.chars().any(|c| c.is_whitespace() || c.is_control())
                && to
                    .rsplit_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
            return if ok {
                Ok((to.to_lowercase(), true))
            } else {
                Err(ServiceError::BadDestination(clip(to)))
            };
        }
        normalize_e164(to, &self.channels.default_country_code)
            .map(|p| (p, false))
            .ok_or_else(|| ServiceError::BadDestination(clip(to)))
    }

    /// Starts (or repeats) a verification and delivers the code, trying
    /// the channels in order until one delivers.
    pub async fn start(
        &self,
        target: Target,
        channels: Channels,
    ) -> Result<StartOutcome, ServiceError> {
        let begun = self.begin(target, channels).await?;
        self.deliver(begun).await
    }

    /// Starts (or repeats) a verification and returns it as soon as it
    /// exists; the code is delivered in the background (each attempt
    /// logged and recorded as [`VerifyService::start`] does). For a page
    /// that must answer the same whether or not there was anyone to send
    /// to: it never waits for a delivery.
    pub async fn start_detached(
        &self,
        target: Target,
        channels: Channels,
    ) -> Result<Verification, ServiceError> {
        let begun = self.begin(target, channels).await?;
        let verification = begun.started.verification.clone();
        let service = self.clone();
        tokio::spawn(async move {
            // Failures were logged and recorded per channel on the way.
            let _ = service.deliver(begun).await;
        });
        Ok(verification)
    }

    /// A decoy verification for `label` (see [`Verifier::start_decoy`]):
    /// the same store work and the same answers as a real start, and no
    /// code sent anywhere. `label` must not contain `@`.
    pub async fn start_decoy(&self, label: String) -> Result<Verification, ServiceError> {
        if label.contains('@') {
            return Err(ServiceError::BadDestination(clip(&label)));
        }
        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        self.store
            .call(move |s| lock(&verifier).start_decoy(s, &label, now))
            .await?
            .map_err(start_error)
    }

    /// The first half of a start: resolves the target and the channels and
    /// starts (or repeats) the verification in the store.
    async fn begin(&self, target: Target, channels: Channels) -> Result<Begun, ServiceError> {
        let (destination, phone, email, participant) = match target {
            Target::Phone(p) => {
                let (d, is_email) = self.normalize_destination(&p)?;
                if is_email {
                    (d.clone(), None, Some(d), None)
                } else {
                    (d.clone(), Some(d), None, None)
                }
            }
            Target::Email(e) => {
                let (d, is_email) = self.normalize_destination(&e)?;
                if !is_email {
                    return Err(ServiceError::BadDestination(clip(&e)));
                }
                (d.clone(), None, Some(d), None)
            }
            Target::Participant(p) => (
                p.phone.clone(),
                Some(p.phone.clone()),
                p.email.clone(),
                Some(p),
            ),
        };
        let order = channel_order(
            &self.channels,
            &channels,
            participant.as_deref(),
            phone.is_some(),
            email.is_some(),
        )?;

        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        let req = StartRequest {
            destination,
            channel: order.first().copied(),
            participant_id: participant.as_ref().map(|p| p.id),
        };
        let started = self
            .store
            .call(move |s| lock(&verifier).start(s, req, now))
            .await?
            .map_err(start_error)?;
        Ok(Begun {
            started,
            order,
            phone,
            email,
            participant,
        })
    }

    /// The second half: delivers the code, trying the channels in order
    /// until one delivers, and records every attempt.
    async fn deliver(&self, begun: Begun) -> Result<StartOutcome, ServiceError> {
        let Begun {
            started,
            order,
            phone,
            email,
            participant,
        } = begun;
        let id = started.verification.id.clone();
        let mut attempts = Vec::new();
        let mut delivered_via = None;
        for (i, channel) in order.iter().copied().enumerate() {
            let request = DeliveryRequest {
                verification_id: id.clone(),
                channel,
                to_phone: phone.clone(),
                to_email: email.clone(),
                participant_name: participant.as_ref().map(|p| p.name.clone()),
                code: started.code.clone(),
            };
            let outcome = self.sender.send(&request).await;
            let record = DeliveryRecord {
                verification_id: id.clone(),
                channel,
                attempt: i as u32 + 1,
                outcome: outcome.clone(),
                at_ms: self.clock.now_ms(),
            };
            let verifier = self.verifier.clone();
            self.store
                .call(move |s| lock(&verifier).record_delivery(s, record))
                .await??;
            match &outcome {
                DeliveryOutcome::Delivered { .. } => {
                    tracing::info!(verification = %id, channel = channel.name(), attempt = i + 1, "code delivered");
                }
                DeliveryOutcome::Failed { reason, retryable } => {
                    tracing::warn!(verification = %id, channel = channel.name(), attempt = i + 1, %reason, retryable, "code delivery failed");
                }
            }
            let ok = outcome.is_delivered();
            attempts.push((channel, outcome));
            if ok {
                delivered_via = Some(channel);
                break;
            }
        }
        let mut verification = started.verification;
        match delivered_via {
            Some(c) => {
                verification.channel = Some(c);
                Ok(StartOutcome {
                    verification,
                    new: started.new,
                    delivered_via: c,
                    attempts,
                })
            }
            None => Err(ServiceError::DeliveryFailed {
                verification: Box::new(verification),
                failures: attempts
                    .into_iter()
                    .map(|(c, o)| match o {
                        DeliveryOutcome::Failed { reason, .. } => (c, reason),
                        DeliveryOutcome::Delivered { detail } => (c, detail),
                    })
                    .collect(),
            }),
        }
    }

    /// Checks a code against a verification (by id) or against the pending
    /// one of a destination.
    pub async fn check(&self, by: CheckBy, code: String) -> Result<CheckOutcome, ServiceError> {
        let target = match by {
            CheckBy::Id(id) => CheckBy::Id(id),
            CheckBy::Destination(d) => CheckBy::Destination(self.normalize_destination(&d)?.0),
        };
        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        let max = self.policy.max_checks;
        let checked: Checked = self
            .store
            .call(move |s| {
                let t = match &target {
                    CheckBy::Id(id) => CheckTarget::Id(id),
                    CheckBy::Destination(d) => CheckTarget::Destination(d),
                };
                lock(&verifier).check(s, t, &code, now)
            })
            .await?
            .map_err(|e| match e {
                CheckError::NotFound => ServiceError::NotFound,
                CheckError::Storage(s) => ServiceError::Internal(s.to_string()),
            })?;
        Ok(CheckOutcome {
            checks_remaining: max.saturating_sub(checked.verification.checks),
            verification: checked.verification,
            valid: checked.valid,
        })
    }

    pub async fn fetch(&self, id: String) -> Result<Verification, ServiceError> {
        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        self.store
            .call(move |s| lock(&verifier).fetch(s, &id, now))
            .await??
            .ok_or(ServiceError::NotFound)
    }

    pub async fn cancel(&self, id: String) -> Result<Verification, ServiceError> {
        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        self.store
            .call(move |s| lock(&verifier).cancel(s, &id, now))
            .await?
            .map_err(|e| match e {
                CancelError::NotFound => ServiceError::NotFound,
                CancelError::NotPending(s) => ServiceError::NotPending(s),
                CancelError::Storage(s) => ServiceError::Internal(s.to_string()),
            })
    }

    /// A one-time dial-in code for `participant_id` and `conference`, valid
    /// for `ttl_ms`. Returns the code and its expiry (unix ms).
    pub async fn issue_dialin(
        &self,
        participant_id: i64,
        conference: String,
        ttl_ms: i64,
    ) -> Result<(SecretCode, i64), ServiceError> {
        let now = self.clock.now_ms();
        let d = self.dialin.clone();
        self.store
            .call(move |s| d.issue(s, participant_id, &conference, ttl_ms, now))
            .await?
            .map_err(|e: DialinError| ServiceError::Internal(e.to_string()))
    }

    /// Redeems a dial-in code keyed on the phone (single use), if it is for
    /// one of `conferences` (the ones the call can reach); a code for
    /// another conference is left unused.
    pub async fn redeem_dialin(
        &self,
        code: String,
        conferences: Vec<String>,
    ) -> Result<Option<(Redeemed, Participant)>, ServiceError> {
        let now = self.clock.now_ms();
        let d = self.dialin.clone();
        self.store
            .call(move |s| -> Result<_, ServiceError> {
                let admits = |c: &str| conferences.iter().any(|n| n == c);
                let Some(r) = d.redeem_for(s, &code, now, admits)? else {
                    return Ok(None);
                };
                Ok(s.participant_by_id(r.participant_id)?.map(|p| (r, p)))
            })
            .await?
    }
}

/// A verification started and not yet delivered.
struct Begun {
    started: Started,
    order: Vec<ChannelKind>,
    phone: Option<String>,
    email: Option<String>,
    participant: Option<Box<Participant>>,
}

fn start_error(e: StartError) -> ServiceError {
    match e {
        StartError::TooManySends {
            pending,
            retry_after_ms,
        } => ServiceError::TooManySends {
            pending,
            retry_after_ms,
        },
        other => ServiceError::Internal(other.to_string()),
    }
}

/// Why the OTP service could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("config participants: {0}")]
    Participants(#[from] super::directory::DirectoryError),
    #[error("{0}")]
    Key(#[from] super::key::KeyError),
    #[error("[verify]: {0}")]
    Policy(#[from] PolicyError),
}

impl VerifyService {
    /// The participant a caller ID belongs to (normalised to E.164 first).
    pub async fn identify_caller(
        &self,
        number: String,
    ) -> Result<Option<Participant>, ServiceError> {
        let cc = self.channels.default_country_code.clone();
        self.store
            .call(move |s| super::directory::identify_caller(s, &number, &cc))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub async fn participant(&self, id: i64) -> Result<Option<Participant>, ServiceError> {
        use super::directory::Directory;
        self.store
            .call(move |s| s.by_id(id))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub async fn participant_by_username(
        &self,
        username: String,
    ) -> Result<Option<Participant>, ServiceError> {
        use super::directory::Directory;
        self.store
            .call(move |s| s.by_username(&username))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }
}

/// Start-up: opens (creating, migrating) the database, writes the
/// participants declared in the config, loads or creates the server key,
/// and returns the service on its store thread. Blocking (file I/O): call
/// it before the runtime starts or from `spawn_blocking`.
pub fn setup(
    settings: &OtpSettings,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<(VerifyService, crate::store::SyncReport), SetupError> {
    let store = crate::store::Store::open(&settings.store.path)?;
    let key = super::key::load_or_create_key(&settings.verify.key_file)?;
    setup_with(settings, store, key, sender, clock)
}

/// [`setup`] on a database and key already opened (the server opens them
/// once and shares them with the brute-force guard).
pub fn setup_with(
    settings: &OtpSettings,
    mut store: crate::store::Store,
    key: ServerKey,
    sender: Arc<dyn CodeSender>,
    clock: Arc<dyn Clock>,
) -> Result<(VerifyService, crate::store::SyncReport), SetupError> {
    let report = store.sync_config_participants(&settings.participants, clock.now_ms())?;
    let policy = Policy::from_settings(&settings.verify)?;
    let service = VerifyService::new(
        StoreHandle::spawn(store)?,
        key,
        policy,
        ChannelPolicy::from_settings(settings),
        sender,
        clock,
    )?;
    Ok((service, report))
}

/// Which verification to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckBy {
    Id(String),
    /// The pending verification of this phone number or email address.
    Destination(String),
}

fn clip(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        s.chars().take(40).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a call that reaches every conference of these tests may redeem.
    fn all_conferences() -> Vec<String> {
        vec!["board".into()]
    }
    use crate::verify::directory::Source;
    use crate::verify::sender::RecordingSender;

    #[tokio::test]
    async fn setup_from_config_and_redeem_a_dialin_code() {
        let dir = crate::store::test_util::temp_dir("service-setup");
        let toml = format!(
            r#"
[store]
path = "{d}/p.db"
[verify]
key_file = "{d}/p.key"
[delivery.log]
enabled = true
[[conference]]
name = "board"
numbers = ["100"]
pin = "1234"
flow = "pin+otp"
[[participant]]
name = "Alice"
username = "alice"
phone = "+12015550123"
conferences = ["board"]
"#,
            d = dir.display()
        );
        let config = crate::config::Config::parse(&toml, "t.toml", &dir).unwrap();
        let sender = Arc::new(RecordingSender::new());
        let clock = Arc::new(crate::verify::clock::ManualClock::new(1_700_000_000_000));
        let (svc, report) = setup(&config.otp, sender.clone(), clock.clone()).unwrap();
        assert_eq!(report.added, 1);
        let alice = svc
            .store()
            .call(|s| s.participant_by_username("alice"))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(alice.source, Source::Config);

        // The IVR's path: start for a participant with the conference's
        // channels, check by id.
        let out = svc
            .start(
                Target::Participant(Box::new(alice.clone())),
                Channels::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.delivered_via, ChannelKind::Log);
        let code = sender.last_code(&out.verification.id).unwrap();
        let c = svc
            .check(CheckBy::Id(out.verification.id.clone()), code)
            .await
            .unwrap();
        assert!(c.valid);

        // The join page's path: a dial-in code, redeemed once.
        let (dialin, _) = svc
            .issue_dialin(alice.id, "board".into(), 300_000)
            .await
            .unwrap();
        let (r, p) = svc
            .redeem_dialin(dialin.expose().to_string(), all_conferences())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.conference.as_str(), p.id), ("board", alice.id));
        assert!(svc
            .redeem_dialin(dialin.expose().to_string(), all_conferences())
            .await
            .unwrap()
            .is_none());
    }

    fn policy(enabled: &[ChannelKind], order: &[ChannelKind]) -> ChannelPolicy {
        ChannelPolicy {
            enabled: enabled.to_vec(),
            default_order: order.to_vec(),
            default_country_code: "1".into(),
        }
    }

    fn participant(channels: &[ChannelKind]) -> Participant {
        Participant {
            id: 1,
            username: "a".into(),
            name: "A".into(),
            phone: "+12015550123".into(),
            email: None,
            moderator: false,
            name_prompt: None,
            conferences: vec!["*".into()],
            channels: channels.to_vec(),
            source: Source::Managed,
            created_ms: 0,
        }
    }

    use ChannelKind::*;

    #[test]
    fn channel_order_precedence() {
        let p = policy(&[Webhook, Email, Log], &[Webhook, Log]);
        let none = Channels::default();
        assert_eq!(
            channel_order(&p, &none, None, true, false).unwrap(),
            vec![Webhook, Log]
        );
        let alice = participant(&[Log, Webhook]);
        assert_eq!(
            channel_order(&p, &none, Some(&alice), true, false).unwrap(),
            vec![Log, Webhook]
        );
        let conf = Channels {
            requested: None,
            conference: vec![Voice, Webhook],
        };
        assert_eq!(
            channel_order(&p, &conf, Some(&alice), true, false).unwrap(),
            vec![Webhook],
            "voice is not enabled here"
        );
        // Email needs an address.
        assert_eq!(
            channel_order(
                &p,
                &Channels {
                    requested: None,
                    conference: vec![Email]
                },
                None,
                true,
                false
            )
            .unwrap_err()
            .to_string(),
            ServiceError::NoChannel.to_string()
        );
    }

    #[test]
    fn a_requested_channel_is_the_only_one() {
        let p = policy(&[Webhook, Email, Log], &[Webhook, Log]);
        let req = |c| Channels {
            requested: Some(c),
            conference: vec![],
        };
        assert_eq!(
            channel_order(&p, &req(Log), None, true, false).unwrap(),
            vec![Log]
        );
        assert!(matches!(
            channel_order(&p, &req(Voice), None, true, false),
            Err(ServiceError::ChannelNotEnabled(Voice))
        ));
        assert!(matches!(
            channel_order(&p, &req(Email), None, true, false),
            Err(ServiceError::ChannelCannotReach(Email, _))
        ));
        assert!(matches!(
            channel_order(&p, &req(Webhook), None, false, true),
            Err(ServiceError::ChannelCannotReach(Webhook, _))
        ));
    }
}
