//! The async glue around the OTP core, shared by the HTTP API, the web
//! join page and the IVR: it resolves who a code is for, picks the
//! channels (with fallback), runs the [`Verifier`] on the storage (a
//! [`VerificationStore`]), hands the code to the [`CodeSender`] and records
//! every delivery outcome.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::channel::ChannelKind;
use super::clock::Clock;
use super::dialin::{DialinCodes, DialinError, Redeemed};
use super::directory::{DirectoryError, Participant, ValidParticipant};
use super::e164::normalize_e164;
use super::key::ServerKey;
use super::otp::{
    CancelError, CheckError, CheckTarget, Checked, DeliveryRecord, Policy, PolicyError, StartError,
    StartRequest, Started, Status, Verification, Verifier,
};
use super::sender::{CodeSender, DeliveryOutcome, DeliveryRequest, SecretCode};
use super::storage::{Unavailable, VerificationStore, VerifyStorage};

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

impl From<Unavailable> for ServiceError {
    fn from(e: Unavailable) -> Self {
        ServiceError::Internal(e.0)
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

/// The OTP service. Clone freely: all clones share the storage, the
/// verifier's memory of pending codes, the sender and the clock.
#[derive(Clone)]
pub struct VerifyService {
    store: Arc<dyn VerificationStore>,
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
        store: impl VerificationStore + 'static,
        key: ServerKey,
        policy: Policy,
        channels: ChannelPolicy,
        sender: Arc<dyn CodeSender>,
        clock: Arc<dyn Clock>,
    ) -> Result<VerifyService, PolicyError> {
        Ok(VerifyService {
            store: Arc::new(store),
            verifier: Arc::new(Mutex::new(Verifier::new(key.clone(), policy)?)),
            dialin: DialinCodes::new(key),
            sender,
            clock,
            channels: Arc::new(channels),
            policy,
        })
    }

    /// Runs `f` on the storage (after the jobs before it) and returns what
    /// it returned.
    async fn call<R, F>(&self, f: F) -> Result<R, Unavailable>
    where
        F: FnOnce(&mut dyn VerifyStorage) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.store
            .run(Box::new(move |storage| {
                let _ = tx.send(f(storage));
            }))
            .await?;
        rx.await
            .map_err(|_| Unavailable("the storage did not run the job".into()))
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
        self.call(move |s| lock(&verifier).start_decoy(s, &label, now))
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
            self.call(move |s| lock(&verifier).record_delivery(s, record))
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
        self.call(move |s| lock(&verifier).fetch(s, &id, now))
            .await??
            .ok_or(ServiceError::NotFound)
    }

    pub async fn cancel(&self, id: String) -> Result<Verification, ServiceError> {
        let now = self.clock.now_ms();
        let verifier = self.verifier.clone();
        self.call(move |s| lock(&verifier).cancel(s, &id, now))
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
        self.call(move |s| d.issue(s, participant_id, &conference, ttl_ms, now))
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
        self.call(move |s| -> Result<_, ServiceError> {
            let admits = |c: &str| conferences.iter().any(|n| n == c);
            let Some(r) = d.redeem_for(s, &code, now, admits)? else {
                return Ok(None);
            };
            let p = s
                .by_id(r.participant_id)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            Ok(p.map(|p| (r, p)))
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

impl VerifyService {
    /// The participant a caller ID belongs to (normalised to E.164 first).
    pub async fn identify_caller(
        &self,
        number: String,
    ) -> Result<Option<Participant>, ServiceError> {
        let cc = self.channels.default_country_code.clone();
        self.call(move |s| super::directory::identify_caller(s, &number, &cc))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub async fn participant(&self, id: i64) -> Result<Option<Participant>, ServiceError> {
        self.call(move |s| s.by_id(id))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub async fn participant_by_username(
        &self,
        username: String,
    ) -> Result<Option<Participant>, ServiceError> {
        self.call(move |s| s.by_username(&username))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Everyone in the directory, by id.
    pub async fn participants(&self) -> Result<Vec<Participant>, DirectoryError> {
        self.call(|s| s.list()).await?
    }

    /// Adds a participant (managed through the API or the CLI).
    pub async fn add_participant(
        &self,
        p: ValidParticipant,
    ) -> Result<Participant, DirectoryError> {
        let now = self.clock.now_ms();
        self.call(move |s| s.insert(&p, now)).await?
    }

    /// Replaces a managed participant's fields.
    pub async fn update_participant(
        &self,
        id: i64,
        p: ValidParticipant,
    ) -> Result<Participant, DirectoryError> {
        self.call(move |s| s.update(id, &p)).await?
    }

    /// Removes a managed participant.
    pub async fn remove_participant(&self, id: i64) -> Result<Participant, DirectoryError> {
        self.call(move |s| s.delete(id)).await?
    }
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
    use crate::verify::directory::{validate, ParticipantInput, Rules, Source};
    use crate::verify::sender::RecordingSender;
    use crate::verify::storage::memory::{ClosedStore, MemoryStore};

    fn service_on(
        store: impl VerificationStore + 'static,
    ) -> (VerifyService, Arc<RecordingSender>) {
        let sender = Arc::new(RecordingSender::new());
        let svc = VerifyService::new(
            store,
            ServerKey::from_bytes([7; 32]),
            Policy::default(),
            policy(&[ChannelKind::Log], &[ChannelKind::Log]),
            sender.clone(),
            Arc::new(crate::verify::clock::ManualClock::new(1_700_000_000_000)),
        )
        .unwrap();
        (svc, sender)
    }

    /// The service on a storage that is not SQLite: the interface the
    /// store implements is all it needs.
    #[tokio::test]
    async fn runs_on_any_verification_store() {
        let (svc, sender) = service_on(MemoryStore::default());
        let input = ParticipantInput {
            name: "Alice".into(),
            phone: "+12015550123".into(),
            ..Default::default()
        };
        let rules = Rules {
            default_country_code: "1",
            conferences: None,
            channels: None,
        };
        let alice = svc
            .add_participant(validate(&input, &rules).unwrap())
            .await
            .unwrap();
        let found = svc.identify_caller("(201) 555-0123".into()).await.unwrap();
        assert_eq!(found.map(|p| p.id), Some(alice.id));

        let out = svc
            .start(
                Target::Participant(Box::new(alice.clone())),
                Channels::default(),
            )
            .await
            .unwrap();
        assert_eq!(out.delivered_via, ChannelKind::Log);
        let code = sender.last_code(&out.verification.id).unwrap();
        let checked = svc
            .check(CheckBy::Destination("+12015550123".into()), code)
            .await
            .unwrap();
        assert!(checked.valid);

        let (dialin, _) = svc
            .issue_dialin(alice.id, "board".into(), 300_000)
            .await
            .unwrap();
        let (r, p) = svc
            .redeem_dialin(dialin.expose().to_string(), vec!["board".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.conference.as_str(), p.id), ("board", alice.id));

        assert_eq!(svc.participants().await.unwrap(), vec![alice.clone()]);
        svc.remove_participant(alice.id).await.unwrap();
        assert!(svc.participant(alice.id).await.unwrap().is_none());
    }

    /// A storage that can no longer run jobs is an internal error with the
    /// storage's own words, for verifications and the directory alike.
    #[tokio::test]
    async fn a_storage_that_is_gone_is_an_internal_error() {
        let (svc, _) = service_on(ClosedStore);
        let e = svc
            .start(Target::Phone("+12015550123".into()), Channels::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ServiceError::Internal(d) if d == "gone"),
            "{e}"
        );
        let e = svc.participants().await.unwrap_err();
        assert!(matches!(&e, DirectoryError::Storage(_)), "{e}");
        assert_eq!(e.to_string(), "gone");
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
