//! One-time dial-in codes: what the web join page hands a participant who
//! verified, for the phone IVR to accept in place of the PIN.
//!
//! A code is 8 digits from the OS CSPRNG, bound to one participant and one
//! conference, valid for a short time, and good for one call. It is stored
//! only as an HMAC under the server key; a redeem looks the keyed hash up,
//! so the time it takes does not depend on how close a guess was.
//!
//! A participant has at most one live code per conference: a new one
//! replaces the older unused one. Any live code is accepted in place of
//! the PIN, so without that cap every request to the join page would add
//! another 8-digit code an attacker keying guesses could hit.

use subtle::ConstantTimeEq;

use super::key::ServerKey;
use super::otp::{CodeHash, StorageError};
use super::random::{self, RandomError};
use super::sender::SecretCode;

/// Digits in a dial-in code.
pub const DIALIN_DIGITS: usize = 8;

/// A dial-in code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialinRecord {
    pub code_hash: CodeHash,
    pub participant_id: i64,
    pub conference: String,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
}

/// Where dial-in codes live.
pub trait DialinStorage {
    /// Stores a new code; Ok(false) when a code with the same hash exists
    /// (the caller draws another).
    fn insert_dialin(&mut self, rec: &DialinRecord) -> Result<bool, StorageError>;
    fn find_dialin(&mut self, hash: &CodeHash) -> Result<Option<DialinRecord>, StorageError>;
    /// Forgets the unused codes of a participant for a conference (a new
    /// one replaces them); returns how many.
    fn revoke_dialin(
        &mut self,
        participant_id: i64,
        conference: &str,
    ) -> Result<usize, StorageError>;
    /// Marks the code used if it is not yet; Ok(true) when this call did.
    fn use_dialin(&mut self, hash: &CodeHash, at_ms: i64) -> Result<bool, StorageError>;
    /// Forgets codes that expired before `before_ms`.
    fn purge_dialin(&mut self, before_ms: i64) -> Result<(), StorageError>;
}

/// A redeemed code: who, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub participant_id: i64,
    pub conference: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DialinError {
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Random(#[from] RandomError),
    #[error("could not draw an unused dial-in code")]
    Exhausted,
}

/// Issues and redeems dial-in codes.
#[derive(Debug, Clone)]
pub struct DialinCodes {
    key: ServerKey,
}

impl DialinCodes {
    pub fn new(key: ServerKey) -> DialinCodes {
        DialinCodes { key }
    }

    fn hash(&self, code: &str) -> CodeHash {
        CodeHash(self.key.mac(&[b"dialin", code.as_bytes()]))
    }

    /// A new code for `participant_id` to join `conference`, valid for
    /// `ttl_ms` from `now`, replacing the participant's older unused code
    /// for that conference. Returns the code and its expiry.
    pub fn issue<S: DialinStorage + ?Sized>(
        &self,
        store: &mut S,
        participant_id: i64,
        conference: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<(SecretCode, i64), DialinError> {
        store.purge_dialin(now)?;
        store.revoke_dialin(participant_id, conference)?;
        // Live codes are few and the space is 10^8: a clash is rare, and a
        // handful of draws make failure practically impossible.
        for _ in 0..8 {
            let code = random::digits(DIALIN_DIGITS)?;
            let rec = DialinRecord {
                code_hash: self.hash(&code),
                participant_id,
                conference: conference.to_string(),
                expires_ms: now.saturating_add(ttl_ms),
                used_ms: None,
            };
            if store.insert_dialin(&rec)? {
                return Ok((SecretCode::new(code), rec.expires_ms));
            }
        }
        Err(DialinError::Exhausted)
    }

    /// Redeems a code: the participant and conference it admits, once.
    /// None for an unknown, used or expired code (deliberately the same
    /// answer for all three).
    pub fn redeem<S: DialinStorage + ?Sized>(
        &self,
        store: &mut S,
        code: &str,
        now: i64,
    ) -> Result<Option<Redeemed>, StorageError> {
        self.redeem_for(store, code, now, |_| true)
    }

    /// [`Self::redeem`] for a call that can only use a code for a conference
    /// `admits` accepts: a code keyed into the wrong conference's line is
    /// not used up (its owner can still key it where it belongs), and the
    /// answer is the same None as for an unknown code.
    pub fn redeem_for<S: DialinStorage + ?Sized>(
        &self,
        store: &mut S,
        code: &str,
        now: i64,
        admits: impl Fn(&str) -> bool,
    ) -> Result<Option<Redeemed>, StorageError> {
        let code = code.trim();
        if code.len() != DIALIN_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let hash = self.hash(code);
        let Some(rec) = store.find_dialin(&hash)? else {
            return Ok(None);
        };
        // The lookup matched on the hash already; compare again in constant
        // time so correctness never rests on the storage's comparison.
        if !bool::from(rec.code_hash.0.ct_eq(&hash.0))
            || rec.used_ms.is_some()
            || now >= rec.expires_ms
            || !admits(&rec.conference)
        {
            return Ok(None);
        }
        if !store.use_dialin(&hash, now)? {
            return Ok(None); // another call got there first
        }
        Ok(Some(Redeemed {
            participant_id: rec.participant_id,
            conference: rec.conference,
        }))
    }
}

/// Dial-in codes in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryDialinStorage {
    pub codes: Vec<DialinRecord>,
}

impl DialinStorage for MemoryDialinStorage {
    fn insert_dialin(&mut self, rec: &DialinRecord) -> Result<bool, StorageError> {
        if self.codes.iter().any(|c| c.code_hash == rec.code_hash) {
            return Ok(false);
        }
        self.codes.push(rec.clone());
        Ok(true)
    }

    fn find_dialin(&mut self, hash: &CodeHash) -> Result<Option<DialinRecord>, StorageError> {
        Ok(self.codes.iter().find(|c| c.code_hash.ct_eq(hash)).cloned())
    }

    fn revoke_dialin(
        &mut self,
        participant_id: i64,
        conference: &str,
    ) -> Result<usize, StorageError> {
        let before = self.codes.len();
        self.codes.retain(|c| {
            c.used_ms.is_some() || c.participant_id != participant_id || c.conference != conference
        });
        Ok(before - self.codes.len())
    }

    fn use_dialin(&mut self, hash: &CodeHash, at_ms: i64) -> Result<bool, StorageError> {
        match self
            .codes
            .iter_mut()
            .find(|c| c.code_hash.ct_eq(hash) && c.used_ms.is_none())
        {
            Some(c) => {
                c.used_ms = Some(at_ms);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn purge_dialin(&mut self, before_ms: i64) -> Result<(), StorageError> {
        self.codes.retain(|c| c.expires_ms >= before_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn single_use_and_bound_to_participant_and_conference() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        let (code, expires) = d.issue(&mut s, 7, "board", 300_000, T0).unwrap();
        assert_eq!(expires, T0 + 300_000);
        assert_eq!(code.expose().len(), 8);
        assert!(!format!("{:?}", s.codes).contains(code.expose()));
        assert_eq!(
            d.redeem(&mut s, code.expose(), T0 + 1).unwrap(),
            Some(Redeemed {
                participant_id: 7,
                conference: "board".into()
            })
        );
        assert_eq!(d.redeem(&mut s, code.expose(), T0 + 2).unwrap(), None);
    }

    #[test]
    fn a_code_keyed_for_another_conference_is_not_used_up() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        let (code, _) = d.issue(&mut s, 7, "board", 300_000, T0).unwrap();
        let sales_only = |c: &str| c == "sales";
        assert_eq!(
            d.redeem_for(&mut s, code.expose(), T0 + 1, sales_only)
                .unwrap(),
            None
        );
        assert_eq!(
            d.redeem_for(&mut s, code.expose(), T0 + 2, |c| c == "board")
                .unwrap()
                .map(|r| r.conference),
            Some("board".to_string())
        );
    }

    #[test]
    fn expires() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        let (code, expires) = d.issue(&mut s, 7, "board", 300_000, T0).unwrap();
        assert_eq!(d.redeem(&mut s, code.expose(), expires).unwrap(), None);
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        let (code, _) = d.issue(&mut s, 7, "board", 300_000, T0).unwrap();
        let mut other = code.expose().to_string();
        let last = other.pop().unwrap();
        other.push(if last == '9' { '0' } else { '9' });
        assert_eq!(d.redeem(&mut s, &other, T0).unwrap(), None);
        assert_eq!(d.redeem(&mut s, "", T0).unwrap(), None);
        assert_eq!(d.redeem(&mut s, "1234567x", T0).unwrap(), None);
        assert_eq!(d.redeem(&mut s, &"1".repeat(10_000), T0).unwrap(), None);
        // A different key does not redeem it.
        let d2 = DialinCodes::new(ServerKey::from_bytes([4; 32]));
        assert_eq!(d2.redeem(&mut s, code.expose(), T0).unwrap(), None);
        // The right code with surrounding blanks still works.
        assert!(d
            .redeem(&mut s, &format!(" {} ", code.expose()), T0)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_new_code_replaces_the_older_live_one_for_that_conference() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        let (first, _) = d.issue(&mut s, 7, "board", 300_000, T0).unwrap();
        let (other_conf, _) = d.issue(&mut s, 7, "sales", 300_000, T0).unwrap();
        let (other_person, _) = d.issue(&mut s, 8, "board", 300_000, T0).unwrap();
        let mut latest = first.clone();
        for i in 1..=20 {
            latest = d.issue(&mut s, 7, "board", 300_000, T0 + i).unwrap().0;
        }
        // Asking again and again leaves one live code per participant and
        // conference, not twenty-one guessable ones.
        let live = |s: &MemoryDialinStorage, pid: i64, conf: &str| {
            s.codes
                .iter()
                .filter(|c| c.participant_id == pid && c.conference == conf)
                .filter(|c| c.used_ms.is_none())
                .count()
        };
        assert_eq!(live(&s, 7, "board"), 1);
        assert_eq!(d.redeem(&mut s, first.expose(), T0 + 30).unwrap(), None);
        assert!(d
            .redeem(&mut s, latest.expose(), T0 + 30)
            .unwrap()
            .is_some());
        // Another conference's code and another participant's are untouched.
        assert!(d
            .redeem(&mut s, other_conf.expose(), T0 + 30)
            .unwrap()
            .is_some());
        assert!(d
            .redeem(&mut s, other_person.expose(), T0 + 30)
            .unwrap()
            .is_some());
    }

    #[test]
    fn expired_codes_are_purged_on_issue() {
        let d = DialinCodes::new(ServerKey::from_bytes([3; 32]));
        let mut s = MemoryDialinStorage::default();
        d.issue(&mut s, 1, "a", 1000, T0).unwrap();
        d.issue(&mut s, 2, "a", 1000, T0 + 5000).unwrap();
        assert_eq!(s.codes.len(), 1);
    }
}
