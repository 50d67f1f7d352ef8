//! The one-time-passcode lifecycle, without I/O.
//!
//! A verification is started for a destination (an E.164 number or an
//! email address), checked with the code the person received, fetched and
//! canceled. The rules are those of the hosted verify APIs:
//!
//! - codes are 4–10 digits (default 6) from the OS CSPRNG;
//! - a code is stored only as HMAC-SHA256 under the server key, bound to
//!   its verification id, and compared in constant time;
//! - a verification expires (default 10 minutes);
//! - at most `max_checks` checks (default 5), then `max_attempts_reached`;
//! - at most `max_sends_per_hour` codes sent to one destination per hour
//!   (default 5), then [`StartError::TooManySends`] (HTTP 429);
//! - while a verification is pending for a destination no new code is
//!   made: a repeat start returns the same verification and re-sends the
//!   same code, if the send limit allows.
//!
//! **Re-sending and restarts.** To re-send the same code the plaintext has
//! to be somewhere; it is kept in this process's memory only, never in the
//! database. After a restart the memory is empty, so a repeat start for a
//! destination whose pending verification predates the restart cannot
//! re-send it: the old verification is canceled and a new one (a new code)
//! is started. Checking a code sent before the restart keeps working,
//! since checking needs only the stored hash.
//!
//! Time is unix milliseconds passed in by the caller (`now`), so every
//! rule is tested with a fake clock, and a verification started before a
//! restart expires at the same moment after it.

use std::collections::HashMap;
use std::fmt;

use subtle::ConstantTimeEq;

use super::channel::ChannelKind;
use super::key::ServerKey;
use super::random::{self, RandomError};
use super::sender::{DeliveryOutcome, SecretCode};
use super::settings::VerifySettings;

pub const HOUR_MS: i64 = 3_600_000;

/// Destinations of decoy verifications (see [`Verifier::start_decoy`])
/// start with this. No real destination can: a phone number is E.164 and
/// an email address has an `@`, which a decoy's label never has.
pub const DECOY_PREFIX: &str = "decoy:";

/// How often spent decoys are swept from the store.
const DECOY_PURGE_EVERY_MS: i64 = 60_000;

/// Milliseconds to whole seconds, rounded up (for Retry-After).
pub fn ceil_secs(ms: i64) -> i64 {
    ms.max(0).saturating_add(999) / 1000
}

/// The verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub code_length: u8,
    pub ttl_ms: i64,
    pub max_checks: u32,
    pub max_sends_per_hour: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_length: 6,
            ttl_ms: 600_000,
            max_checks: 5,
            max_sends_per_hour: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("code length must be 4 to 10 digits, got {0}")]
    CodeLength(u8),
    #[error("the code lifetime must be at least one second")]
    Ttl,
    #[error("at least one check must be allowed")]
    MaxChecks,
    #[error("at least one send per hour must be allowed")]
    MaxSends,
}

impl Policy {
    pub fn validate(self) -> Result<Policy, PolicyError> {
        if !(4..=10).contains(&self.code_length) {
            return Err(PolicyError::CodeLength(self.code_length));
        }
        if self.ttl_ms < 1000 {
            return Err(PolicyError::Ttl);
        }
        if self.max_checks == 0 {
            return Err(PolicyError::MaxChecks);
        }
        if self.max_sends_per_hour == 0 {
            return Err(PolicyError::MaxSends);
        }
        Ok(self)
    }

    pub fn from_settings(s: &VerifySettings) -> Result<Policy, PolicyError> {
        Policy {
            code_length: s.code_length,
            ttl_ms: i64::try_from(s.ttl.as_millis()).unwrap_or(i64::MAX),
            max_checks: s.max_checks,
            max_sends_per_hour: s.max_sends_per_hour,
        }
        .validate()
    }
}

/// Where a verification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Approved,
    Canceled,
    Expired,
    MaxAttemptsReached,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
            Status::MaxAttemptsReached => "max_attempts_reached",
        }
    }

    pub fn from_name(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "canceled" => Status::Canceled,
            "expired" => Status::Expired,
            "max_attempts_reached" => Status::MaxAttemptsReached,
            _ => return None,
        })
    }
}

/// HMAC-SHA256 of a code. `Debug` shows nothing of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CodeHash(pub [u8; 32]);

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(<redacted>)")
    }
}

impl CodeHash {
    /// Constant-time equality: the time taken says nothing about how many
    /// leading bytes matched.
    pub fn ct_eq(&self, other: &CodeHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

/// A verification as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// `VE` and 32 hex digits.
    pub id: String,
    /// E.164 number or email address: what the per-destination rules key on.
    pub destination: String,
    /// The channel that last delivered the code (or was asked for first).
    pub channel: Option<ChannelKind>,
    pub participant_id: Option<i64>,
    pub code_hash: CodeHash,
    pub status: Status,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_sent_ms: Option<i64>,
    /// Checks made so far.
    pub checks: u32,
    /// Times the code was (re-)sent.
    pub sends: u32,
}

impl Verification {
    pub fn checks_remaining(&self, policy: &Policy) -> u32 {
        policy.max_checks.saturating_sub(self.checks)
    }
}

/// One delivery attempt, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub verification_id: String,
    pub channel: ChannelKind,
    /// 1 for the first channel tried on a send, 2 for the fallback...
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
    pub at_ms: i64,
}

/// A storage failure, as text (the store's own error says more in its log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

impl StorageError {
    /// The storage's own account, without the "storage:" this error adds.
    pub fn detail(&self) -> &str {
        &self.0
    }
}

/// Where verifications live: the SQLite store in production, a map in
/// tests. Implementations need no locking of their own: the caller
/// serialises access.
pub trait OtpStorage {
    fn insert_verification(&mut self, v: &Verification) -> Result<(), StorageError>;
    fn load_verification(&mut self, id: &str) -> Result<Option<Verification>, StorageError>;
    /// The newest verification with status `pending` for a destination
    /// (expired or not: the caller checks the time).
    fn pending_verification(
        &mut self,
        destination: &str,
    ) -> Result<Option<Verification>, StorageError>;
    /// Writes the mutable fields: status, channel, checks, sends, last_sent.
    fn save_verification(&mut self, v: &Verification) -> Result<(), StorageError>;
    /// When codes were sent to `destination` at or after `since_ms`.
    /// Sends older than an hour may be forgotten.
    fn sends_since(&mut self, destination: &str, since_ms: i64) -> Result<Vec<i64>, StorageError>;
    fn record_send(&mut self, destination: &str, at_ms: i64) -> Result<(), StorageError>;
    fn record_delivery(&mut self, d: &DeliveryRecord) -> Result<(), StorageError>;
    /// Forgets decoy verifications (destination starting with
    /// [`DECOY_PREFIX`], no channel) that expired before `before_ms`, and
    /// decoy sends older than that: they have no audit value, and nothing
    /// else would ever remove them.
    fn purge_decoys(&mut self, before_ms: i64) -> Result<(), StorageError>;
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    /// E.164 number or email address.
    pub destination: String,
    /// The first channel to try, recorded until a delivery says otherwise.
    pub channel: Option<ChannelKind>,
    pub participant_id: Option<i64>,
}

/// A started (or repeated) verification.
#[derive(Debug)]
pub struct Started {
    pub verification: Verification,
    /// The code to deliver now. Always present: a start that may not send
    /// is an error ([`StartError::TooManySends`]).
    pub code: SecretCode,
    /// False when this is the pending verification again, re-sent.
    pub new: bool,
    /// True when a pending verification from before a restart was canceled
    /// to make this one (its code could not be re-sent).
    pub replaced_previous: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The destination had its hourly share of codes. A verification still
    /// pending for it stays valid (its code still checks).
    #[error("too many codes sent to this destination; try again in {} s", crate::verify::otp::ceil_secs(*retry_after_ms))]
    TooManySends {
        pending: Option<Box<Verification>>,
        retry_after_ms: i64,
    },
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Random(#[from] RandomError),
}

/// Which verification a check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckTarget<'a> {
    Id(&'a str),
    /// The pending verification of this destination.
    Destination(&'a str),
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verification: Verification,
    /// True only when this check approved the verification.
    pub valid: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no such verification")]
    NotFound,
    #[error("{0}")]
    Storage(#[from] StorageError),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such verification")]
    NotFound,
    #[error("the verification is {} and can no longer be canceled", .0.name())]
    NotPending(Status),
    #[error("{0}")]
    Storage(#[from] StorageError),
}

/// The lifecycle. Holds the key, the policy and the plaintext of codes it
/// made that are still pending (for re-sends; memory only).
pub struct Verifier {
    key: ServerKey,
    policy: Policy,
    /// id -> (code, expires_ms).
    codes: HashMap<String, (SecretCode, i64)>,
    /// When `codes` was last swept of expired entries.
    swept_ms: i64,
    /// When spent decoys were last purged from the store.
    decoys_purged_ms: i64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("codes_in_memory", &self.codes.len())
            .finish()
    }
}

impl Verifier {
    pub fn new(key: ServerKey, policy: Policy) -> Result<Verifier, PolicyError> {
        Ok(Verifier {
            key,
            policy: policy.validate()?,
            codes: HashMap::new(),
            swept_ms: i64::MIN,
            decoys_purged_ms: i64::MIN,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn hash(&self, id: &str, code: &str) -> CodeHash {
        CodeHash(self.key.mac(&[b"otp", id.as_bytes(), code.as_bytes()]))
    }

    /// Drops remembered codes whose verification has expired, at most once
    /// a second (a sweep walks the whole map; codes that are finished are
    /// removed as they finish).
    fn forget_expired(&mut self, now: i64) {
        if now.saturating_sub(self.swept_ms) >= 1000 {
            self.codes.retain(|_, (_, expires)| *expires > now);
            self.swept_ms = now;
        }
    }

    /// Marks a pending verification past its expiry as expired (and saves
    /// that). Returns the verification as it now stands.
    fn refresh<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        mut v: Verification,
        now: i64,
    ) -> Result<Verification, StorageError> {
        if v.status == Status::Pending && now >= v.expires_ms {
            v.status = Status::Expired;
            store.save_verification(&v)?;
            self.codes.remove(&v.id);
        }
        Ok(v)
    }

    /// Starts a verification for a destination, or repeats the pending one
    /// (same id, same code). The caller delivers `Started::code`, then
    /// reports each attempt with [`Verifier::record_delivery`].
    pub fn start<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        req: StartRequest,
        now: i64,
    ) -> Result<Started, StartError> {
        self.forget_expired(now);
        let pending = match store.pending_verification(&req.destination)? {
            Some(v) => Some(self.refresh(store, v, now)?).filter(|v| v.status == Status::Pending),
            None => None,
        };

        let sends = store.sends_since(&req.destination, now - HOUR_MS + 1)?;
        if sends.len() >= self.policy.max_sends_per_hour as usize {
            let oldest = sends.iter().copied().min().unwrap_or(now);
            return Err(StartError::TooManySends {
                pending: pending.map(Box::new),
                retry_after_ms: (oldest + HOUR_MS - now).max(1),
            });
        }

        let mut replaced_previous = false;
        if let Some(mut v) = pending {
            if let Some((code, _)) = self.codes.get(&v.id) {
                let code = code.clone();
                v.sends += 1;
                v.last_sent_ms = Some(now);
                store.save_verification(&v)?;
                store.record_send(&v.destination, now)?;
                return Ok(Started {
                    verification: v,
                    code,
                    new: false,
                    replaced_previous: false,
                });
            }
            // Pending from before a restart: its code is gone, so it cannot
            // be re-sent. Replace it.
            v.status = Status::Canceled;
            store.save_verification(&v)?;
            replaced_previous = true;
        }

        let code = random::digits(usize::from(self.policy.code_length))?;
        let id = random::id("VE")?;
        let v = Verification {
            code_hash: self.hash(&id, &code),
            id,
            destination: req.destination,
            channel: req.channel,
            participant_id: req.participant_id,
            status: Status::Pending,
            created_ms: now,
            expires_ms: now.saturating_add(self.policy.ttl_ms),
            last_sent_ms: Some(now),
            checks: 0,
            sends: 1,
        };
        store.insert_verification(&v)?;
        store.record_send(&v.destination, now)?;
        let code = SecretCode::new(code);
        self.codes
            .insert(v.id.clone(), (code.clone(), v.expires_ms));
        Ok(Started {
            verification: v,
            code,
            new: true,
            replaced_previous,
        })
    }

    /// A decoy: a verification whose code is made and then dropped, so
    /// nobody can ever enter it. It goes through exactly the lifecycle of
    /// a real one for the destination `label` stands for (the same pending
    /// verification again while it is pending, the same send limit, the
    /// same checks counting down to `max_attempts_reached`, the same
    /// expiry), so a public page can answer a name it does not know just as
    /// it answers one it does, without telling anyone anything. `label`
    /// must not contain `@`. Spent decoys are purged as they age.
    pub fn start_decoy<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        label: &str,
        now: i64,
    ) -> Result<Verification, StartError> {
        if now.saturating_sub(self.decoys_purged_ms) >= DECOY_PURGE_EVERY_MS {
            store.purge_decoys(now.saturating_sub(HOUR_MS))?;
            self.decoys_purged_ms = now;
        }
        let req = StartRequest {
            destination: format!("{DECOY_PREFIX}{label}"),
            channel: None,
            participant_id: None,
        };
        Ok(self.start(store, req, now)?.verification)
    }

    /// Checks a code. A pending verification counts the check; the right
    /// code approves it, the last wrong one ends it with
    /// `max_attempts_reached`. Other states are reported as they are,
    /// with `valid: false` and no check counted.
    pub fn check<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        target: CheckTarget<'_>,
        code: &str,
        now: i64,
    ) -> Result<Checked, CheckError> {
        let found = match target {
            CheckTarget::Id(id) => store.load_verification(id)?,
            CheckTarget::Destination(d) => store.pending_verification(d)?,
        };
        let mut v = match found {
            Some(v) => self.refresh(store, v, now)?,
            None => return Err(CheckError::NotFound),
        };
        if v.status != Status::Pending {
            return Ok(Checked {
                verification: v,
                valid: false,
            });
        }
        v.checks = v.checks.saturating_add(1);
        // Always hash, whatever the input looks like: a malformed code costs
        // an attempt and the same time as a wrong one.
        let valid = self.hash(&v.id, code).ct_eq(&v.code_hash);
        if valid {
            v.status = Status::Approved;
        } else if v.checks >= self.policy.max_checks {
            v.status = Status::MaxAttemptsReached;
        }
        if v.status != Status::Pending {
            self.codes.remove(&v.id);
        }
        store.save_verification(&v)?;
        Ok(Checked {
            verification: v,
            valid,
        })
    }

    /// The verification as it stands now (expired if its time is up).
    pub fn fetch<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        id: &str,
        now: i64,
    ) -> Result<Option<Verification>, StorageError> {
        match store.load_verification(id)? {
            Some(v) => Ok(Some(self.refresh(store, v, now)?)),
            None => Ok(None),
        }
    }

    /// Cancels a pending verification. Canceling twice is not an error.
    pub fn cancel<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        id: &str,
        now: i64,
    ) -> Result<Verification, CancelError> {
        let mut v = match store.load_verification(id)? {
            Some(v) => self.refresh(store, v, now)?,
            None => return Err(CancelError::NotFound),
        };
        match v.status {
            Status::Pending => {
                v.status = Status::Canceled;
                store.save_verification(&v)?;
                self.codes.remove(&v.id);
                Ok(v)
            }
            Status::Canceled => Ok(v),
            other => Err(CancelError::NotPending(other)),
        }
    }

    /// Records one delivery attempt; a successful one also becomes the
    /// verification's channel.
    pub fn record_delivery<S: OtpStorage + ?Sized>(
        &mut self,
        store: &mut S,
        record: DeliveryRecord,
    ) -> Result<(), StorageError> {
        store.record_delivery(&record)?;
        if record.outcome.is_delivered() {
            if let Some(mut v) = store.load_verification(&record.verification_id)? {
                if v.channel != Some(record.channel) {
                    v.channel = Some(record.channel);
                    store.save_verification(&v)?;
                }
            }
        }
        Ok(())
    }
}

/// A destination shown to an API client: all but the last two characters
/// hidden (`+12015550123` -> `**********23`); for an email, the mailbox
/// is hidden but the domain kept (`a*****@example.com`).
pub fn mask(destination: &str) -> String {
    if let Some((local, domain)) = destination.rsplit_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}*****@{domain}");
    }
    let n = destination.chars().count();
    let keep = n.saturating_sub(2);
    destination
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { '*' } else { c })
        .collect()
}

/// Verifications in memory, for tests and for trying things out.
#[derive(Debug, Default)]
pub struct MemoryOtpStorage {
    pub verifications: HashMap<String, Verification>,
    pub sends: Vec<(String, i64)>,
    pub deliveries: Vec<DeliveryRecord>,
}

impl OtpStorage for MemoryOtpStorage {
    fn insert_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
        if self.verifications.contains_key(&v.id) {
            return Err(StorageError(format!("duplicate id {}", v.id)));
        }
        self.verifications.insert(v.id.clone(), v.clone());
        Ok(())
    }

    fn load_verification(&mut self, id: &str) -> Result<Option<Verification>, StorageError> {
        Ok(self.verifications.get(id).cloned())
    }

    fn pending_verification(
        &mut self,
        destination: &str,
    ) -> Result<Option<Verification>, StorageError> {
        Ok(self
            .verifications
            .values()
            .filter(|v| v.destination == destination && v.status == Status::Pending)
            .max_by_key(|v| v.created_ms)
            .cloned())
    }

    fn save_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
        match self.verifications.get_mut(&v.id) {
            Some(slot) => {
                *slot = v.clone();
                Ok(())
            }
            None => Err(StorageError(format!("no verification {}", v.id))),
        }
    }

    fn sends_since(&mut self, destination: &str, since_ms: i64) -> Result<Vec<i64>, StorageError> {
        Ok(self
            .sends
            .iter()
            .filter(|(d, at)| d == destination && *at >= since_ms)
            .map(|(_, at)| *at)
            .collect())
    }

    fn record_send(&mut self, destination: &str, at_ms: i64) -> Result<(), StorageError> {
        self.sends.push((destination.to_string(), at_ms));
        Ok(())
    }

    fn record_delivery(&mut self, d: &DeliveryRecord) -> Result<(), StorageError> {
        self.deliveries.push(d.clone());
        Ok(())
    }

    fn purge_decoys(&mut self, before_ms: i64) -> Result<(), StorageError> {
        let decoy = |d: &str| d.starts_with(DECOY_PREFIX);
        self.verifications.retain(|_, v| {
            !(decoy(&v.destination) && v.channel.is_none() && v.expires_ms < before_ms)
        });
        self.sends.retain(|(d, at)| !(decoy(d) && *at < before_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const ALICE: &str = "+12015550123";

    fn verifier() -> Verifier {
        Verifier::new(ServerKey::from_bytes([9; 32]), Policy::default()).unwrap()
    }

    fn req(dest: &str) -> StartRequest {
        StartRequest {
            destination: dest.into(),
            channel: Some(ChannelKind::Log),
            participant_id: None,
        }
    }

    fn wrong(code: &SecretCode) -> String {
        // The same length, last digit changed.
        let mut s = code.expose().to_string();
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        s
    }

    #[test]
    fn a_decoy_lives_the_life_of_a_real_verification() {
        let mut v = verifier();
        let mut s = MemoryOtpStorage::default();
        let real = v.start(&mut s, req(ALICE), T0).unwrap().verification;
        let decoy = v.start_decoy(&mut s, "nobody", T0).unwrap();
        // The same shape, the same expiry.
        assert_eq!(decoy.status, Status::Pending);
        assert_eq!(decoy.expires_ms, real.expires_ms);
        assert_eq!(decoy.id.len(), real.id.len());
        assert_eq!(decoy.participant_id, None);
        // Asked again: the same pending one, as for a real destination.
        let again = v.start_decoy(&mut s, "nobody", T0 + 1000).unwrap();
        assert_eq!(again.id, decoy.id);
        assert_eq!(again.sends, 2);
        // Checks count down to max_attempts_reached (nobody has the code).
        for n in 1..=5 {
            let c = v
                .check(&mut s, CheckTarget::Id(&decoy.id), "000000", T0 + 2000)
                .unwrap();
            assert!(!c.valid);
            assert_eq!(c.verification.checks, n);
        }
        assert_eq!(
            s.verifications[&decoy.id].status,
            Status::MaxAttemptsReached
        );
        // The send limit applies per label, as per destination.
        for _ in 0..3 {
            v.start_decoy(&mut s, "nobody", T0 + 3000).unwrap();
        }
        assert!(matches!(
            v.start_decoy(&mut s, "nobody", T0 + 4000),
            Err(StartError::TooManySends { .. })
        ));
        assert!(v.start_decoy(&mut s, "somebody-else", T0 + 4000).is_ok());
        // Nothing was delivered anywhere; the real one is untouched.
        assert!(s.deliveries.is_empty());
        assert_eq!(s.verifications[&real.id].status, Status::Pending);
    }

    #[test]
    fn right_code_approves_once() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        assert!(st.new);
        assert_eq!(st.code.expose().len(), 6);
        assert!(st.code.expose().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(st.verification.status, Status::Pending);
        assert_eq!(st.verification.expires_ms, T0 + 600_000);
        assert!(st.verification.id.starts_with("VE"));
        let id = st.verification.id.clone();

        let c = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), T0 + 1000)
            .unwrap();
        assert!(c.valid);
        assert_eq!(c.verification.status, Status::Approved);
        assert_eq!(s.verifications[&id].status, Status::Approved);

        // Approved is final: the same code again is not "valid" again.
        let again = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), T0 + 2000)
            .unwrap();
        assert!(!again.valid);
        assert_eq!(again.verification.status, Status::Approved);
        assert_eq!(again.verification.checks, 1, "no check counted");
    }

    #[test]
    fn the_code_is_stored_only_as_a_keyed_hash() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let stored = &s.verifications[&st.verification.id];
        let mut dbg = format!("{stored:?} {st:?}");
        // The public fields are long digit runs of their own (the id's hex,
        // the millisecond times), where a random code can turn up by
        // chance; what must not hold the code is everything else.
        let public = [
            stored.id.clone(),
            stored.created_ms.to_string(),
            stored.expires_ms.to_string(),
            stored.destination.clone(),
        ];
        for p in &public {
            dbg = dbg.replace(p.as_str(), "_");
        }
        assert!(!dbg.contains(st.code.expose()), "{dbg}");
        assert!(dbg.contains("CodeHash(<redacted>)") && dbg.contains("SecretCode(<redacted>)"));
        // Not a plain SHA-256 of the code: another key gives another hash.
        let other = Verifier::new(ServerKey::from_bytes([8; 32]), Policy::default()).unwrap();
        assert_ne!(other.hash(&stored.id, st.code.expose()), stored.code_hash);
        assert_eq!(v.hash(&stored.id, st.code.expose()), stored.code_hash);
    }

    #[test]
    fn code_length_follows_the_policy_and_is_bounded() {
        for len in [4u8, 8, 10] {
            let policy = Policy {
                code_length: len,
                ..Policy::default()
            };
            let mut v = Verifier::new(ServerKey::from_bytes([1; 32]), policy).unwrap();
            let st = v
                .start(&mut MemoryOtpStorage::default(), req(ALICE), T0)
                .unwrap();
            assert_eq!(st.code.expose().len(), usize::from(len));
        }
        for len in [3u8, 11] {
            let policy = Policy {
                code_length: len,
                ..Policy::default()
            };
            assert_eq!(
                Verifier::new(ServerKey::from_bytes([1; 32]), policy).unwrap_err(),
                PolicyError::CodeLength(len)
            );
        }
    }

    #[test]
    fn expires_after_the_ttl() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let id = st.verification.id.clone();
        let at_end = T0 + 600_000;
        let still = v.fetch(&mut s, &id, at_end - 1).unwrap().unwrap();
        assert_eq!(still.status, Status::Pending);
        let c = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), at_end)
            .unwrap();
        assert!(!c.valid, "the right code is too late");
        assert_eq!(c.verification.status, Status::Expired);
        assert_eq!(s.verifications[&id].status, Status::Expired);
        // An expired one is not pending: a new start makes a new code.
        let st2 = v.start(&mut s, req(ALICE), at_end + 1).unwrap();
        assert!(st2.new);
        assert_ne!(st2.verification.id, id);
    }

    #[test]
    fn max_attempts_then_final() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let id = st.verification.id.clone();
        let bad = wrong(&st.code);
        for i in 1..=4u32 {
            let c = v.check(&mut s, CheckTarget::Id(&id), &bad, T0).unwrap();
            assert!(!c.valid);
            assert_eq!(c.verification.status, Status::Pending);
            assert_eq!(c.verification.checks_remaining(v.policy()), 5 - i);
        }
        let c = v.check(&mut s, CheckTarget::Id(&id), "x", T0).unwrap();
        assert_eq!(c.verification.status, Status::MaxAttemptsReached);
        // Even the right code does nothing now.
        let c = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), T0)
            .unwrap();
        assert!(!c.valid);
        assert_eq!(c.verification.status, Status::MaxAttemptsReached);
        assert_eq!(c.verification.checks, 5);
    }

    #[test]
    fn the_last_attempt_may_still_be_right() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let id = st.verification.id.clone();
        for _ in 0..4 {
            v.check(&mut s, CheckTarget::Id(&id), &wrong(&st.code), T0)
                .unwrap();
        }
        let c = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), T0)
            .unwrap();
        assert!(c.valid);
        assert_eq!(c.verification.status, Status::Approved);
    }

    #[test]
    fn no_second_code_while_one_is_pending() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let first = v.start(&mut s, req(ALICE), T0).unwrap();
        let again = v.start(&mut s, req(ALICE), T0 + 30_000).unwrap();
        assert!(!again.new);
        assert_eq!(again.verification.id, first.verification.id);
        assert_eq!(again.code, first.code, "the same code is re-sent");
        assert_eq!(again.verification.sends, 2);
        assert_eq!(again.verification.last_sent_ms, Some(T0 + 30_000));
        assert_eq!(
            again.verification.expires_ms, first.verification.expires_ms,
            "a re-send does not extend the life of the code"
        );
        assert_eq!(s.verifications.len(), 1);
        // Another destination is independent.
        let bob = v.start(&mut s, req("+12015550199"), T0).unwrap();
        assert!(bob.new);
    }

    #[test]
    fn send_limit_per_destination_per_hour() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let first = v.start(&mut s, req(ALICE), T0).unwrap();
        for i in 1..5 {
            let r = v.start(&mut s, req(ALICE), T0 + i * 1000).unwrap();
            assert_eq!(r.verification.id, first.verification.id);
        }
        match v.start(&mut s, req(ALICE), T0 + 10_000) {
            Err(StartError::TooManySends {
                pending,
                retry_after_ms,
            }) => {
                let p = pending.expect("the pending verification is handed back");
                assert_eq!(p.id, first.verification.id);
                assert_eq!(p.sends, 5);
                assert_eq!(retry_after_ms, HOUR_MS - 10_000);
            }
            other => panic!("expected TooManySends, got {other:?}"),
        }
        // The pending code still checks.
        let c = v
            .check(
                &mut s,
                CheckTarget::Destination(ALICE),
                first.code.expose(),
                T0 + 20_000,
            )
            .unwrap();
        assert!(c.valid);
        // Approved; new starts are still refused until the hour is over...
        assert!(matches!(
            v.start(&mut s, req(ALICE), T0 + HOUR_MS - 1),
            Err(StartError::TooManySends { pending: None, .. })
        ));
        // ...and allowed once the first send is an hour old.
        let later = v.start(&mut s, req(ALICE), T0 + HOUR_MS).unwrap();
        assert!(later.new);
    }

    #[test]
    fn check_by_destination_finds_the_pending_one() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        assert!(matches!(
            v.check(&mut s, CheckTarget::Destination(ALICE), "123456", T0),
            Err(CheckError::NotFound)
        ));
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let c = v
            .check(
                &mut s,
                CheckTarget::Destination(ALICE),
                st.code.expose(),
                T0,
            )
            .unwrap();
        assert!(c.valid);
        assert_eq!(c.verification.id, st.verification.id);
        // Nothing pending any more.
        assert!(matches!(
            v.check(&mut s, CheckTarget::Destination(ALICE), "123456", T0),
            Err(CheckError::NotFound)
        ));
        assert!(matches!(
            v.check(&mut s, CheckTarget::Id("VEnope"), "123456", T0),
            Err(CheckError::NotFound)
        ));
    }

    #[test]
    fn cancel() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let id = st.verification.id.clone();
        assert_eq!(v.cancel(&mut s, &id, T0).unwrap().status, Status::Canceled);
        assert_eq!(v.cancel(&mut s, &id, T0).unwrap().status, Status::Canceled);
        let c = v
            .check(&mut s, CheckTarget::Id(&id), st.code.expose(), T0)
            .unwrap();
        assert!(!c.valid);
        assert_eq!(c.verification.status, Status::Canceled);
        // After a cancel a start makes a new code.
        let st2 = v.start(&mut s, req(ALICE), T0).unwrap();
        assert!(st2.new);
        let c = v
            .check(
                &mut s,
                CheckTarget::Id(&st2.verification.id),
                st2.code.expose(),
                T0,
            )
            .unwrap();
        assert!(c.valid);
        assert!(matches!(
            v.cancel(&mut s, &st2.verification.id, T0),
            Err(CancelError::NotPending(Status::Approved))
        ));
        assert!(matches!(
            v.cancel(&mut s, "VEnope", T0),
            Err(CancelError::NotFound)
        ));
    }

    #[test]
    fn restart_keeps_checking_but_cannot_resend() {
        let mut s = MemoryOtpStorage::default();
        let key = ServerKey::from_bytes([5; 32]);
        let mut before = Verifier::new(key.clone(), Policy::default()).unwrap();
        let st = before.start(&mut s, req(ALICE), T0).unwrap();
        drop(before);

        // A new process: same key, same storage, empty memory.
        let mut after = Verifier::new(key.clone(), Policy::default()).unwrap();
        let c = after
            .check(
                &mut s,
                CheckTarget::Id(&st.verification.id),
                &wrong(&st.code),
                T0 + 1000,
            )
            .unwrap();
        assert_eq!(c.verification.status, Status::Pending);
        let c = after
            .check(
                &mut s,
                CheckTarget::Id(&st.verification.id),
                st.code.expose(),
                T0 + 2000,
            )
            .unwrap();
        assert!(c.valid, "a code sent before the restart still checks");

        // A repeat start across a restart replaces the pending one.
        let mut first = Verifier::new(key.clone(), Policy::default()).unwrap();
        let a = first.start(&mut s, req("+447700900123"), T0).unwrap();
        let mut second = Verifier::new(key, Policy::default()).unwrap();
        let b = second
            .start(&mut s, req("+447700900123"), T0 + 5000)
            .unwrap();
        assert!(b.new && b.replaced_previous);
        assert_ne!(a.verification.id, b.verification.id);
        assert_eq!(s.verifications[&a.verification.id].status, Status::Canceled);
        // Both sends count against the hourly limit.
        assert_eq!(s.sends_since("+447700900123", T0).unwrap().len(), 2);
    }

    #[test]
    fn deliveries_are_recorded_and_set_the_channel() {
        let (mut v, mut s) = (verifier(), MemoryOtpStorage::default());
        let st = v.start(&mut s, req(ALICE), T0).unwrap();
        let id = st.verification.id.clone();
        v.record_delivery(
            &mut s,
            DeliveryRecord {
                verification_id: id.clone(),
                channel: ChannelKind::Webhook,
                attempt: 1,
                outcome: DeliveryOutcome::Failed {
                    reason: "503".into(),
                    retryable: true,
                },
                at_ms: T0,
            },
        )
        .unwrap();
        v.record_delivery(
            &mut s,
            DeliveryRecord {
                verification_id: id.clone(),
                channel: ChannelKind::Email,
                attempt: 2,
                outcome: DeliveryOutcome::Delivered {
                    detail: "250 queued".into(),
                },
                at_ms: T0,
            },
        )
        .unwrap();
        assert_eq!(s.deliveries.len(), 2);
        assert_eq!(s.verifications[&id].channel, Some(ChannelKind::Email));
    }

    #[test]
    fn masks() {
        assert_eq!(mask("+12015550123"), "**********23");
        assert_eq!(mask("alice@example.com"), "a*****@example.com");
        assert_eq!(mask("1"), "1");
    }
}
