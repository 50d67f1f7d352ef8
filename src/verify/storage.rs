//! The storage the verification service runs on, as an interface.
//!
//! The cores (`otp`, `dialin`, `directory`) are synchronous: each step
//! reads, decides and writes on a `&mut` storage, and must not interleave
//! with another step. The service therefore hands each step, as a job, to a
//! [`VerificationStore`], which runs the jobs one at a time, in order, away
//! from the async runtime. `crate::store` implements it on SQLite (one
//! thread owns the connection); a shared database for several nodes is
//! another implementation of the same two traits.

use std::future::Future;
use std::pin::Pin;

use super::dialin::DialinStorage;
use super::directory::{Directory, DirectoryError};
use super::otp::{OtpStorage, StorageError};

/// Everything the verification cores read and write: verifications and
/// their send log, dial-in codes and the participant directory.
pub trait VerifyStorage: OtpStorage + DialinStorage + Directory {}

impl<T: OtpStorage + DialinStorage + Directory + ?Sized> VerifyStorage for T {}

/// One step of the service, run on the storage.
pub type StorageJob = Box<dyn FnOnce(&mut dyn VerifyStorage) + Send>;

/// What [`VerificationStore::run`] returns: done once the job has run.
pub type JobDone<'a> = Pin<Box<dyn Future<Output = Result<(), Unavailable>> + Send + 'a>>;

/// Where the verification service keeps its state.
pub trait VerificationStore: Send + Sync {
    /// Runs `job` on the storage, after the jobs given before it and
    /// before those given after it, and completes when it has run.
    /// Fails when the storage cannot run jobs any more (or the job
    /// panicked): the job's own storage errors are its result, not this.
    fn run(&self, job: StorageJob) -> JobDone<'_>;
}

/// The storage could not run a job: its thread or its connection is gone.
/// The text is the storage's own account of why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl From<Unavailable> for DirectoryError {
    fn from(e: Unavailable) -> Self {
        DirectoryError::Storage(StorageError(e.0))
    }
}

/// A [`VerificationStore`] in memory, for the service's tests: proof that
/// the service needs nothing of the SQLite store.
#[cfg(test)]
pub(crate) mod memory {
    use std::sync::Mutex;

    use super::*;
    use crate::verify::dialin::{DialinRecord, MemoryDialinStorage};
    use crate::verify::directory::{slug, Participant, Source, ValidParticipant};
    use crate::verify::otp::{CodeHash, DeliveryRecord, MemoryOtpStorage, Verification};

    #[derive(Debug, Default)]
    pub(crate) struct MemoryStorage {
        pub otp: MemoryOtpStorage,
        pub dialin: MemoryDialinStorage,
        pub participants: Vec<Participant>,
    }

    impl OtpStorage for MemoryStorage {
        fn insert_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
            self.otp.insert_verification(v)
        }
        fn load_verification(&mut self, id: &str) -> Result<Option<Verification>, StorageError> {
            self.otp.load_verification(id)
        }
        fn pending_verification(
            &mut self,
            destination: &str,
        ) -> Result<Option<Verification>, StorageError> {
            self.otp.pending_verification(destination)
        }
        fn save_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
            self.otp.save_verification(v)
        }
        fn sends_since(
            &mut self,
            destination: &str,
            since_ms: i64,
        ) -> Result<Vec<i64>, StorageError> {
            self.otp.sends_since(destination, since_ms)
        }
        fn record_send(&mut self, destination: &str, at_ms: i64) -> Result<(), StorageError> {
            self.otp.record_send(destination, at_ms)
        }
        fn record_delivery(&mut self, d: &DeliveryRecord) -> Result<(), StorageError> {
            self.otp.record_delivery(d)
        }
        fn purge_decoys(&mut self, before_ms: i64) -> Result<(), StorageError> {
            self.otp.purge_decoys(before_ms)
        }
    }

    impl DialinStorage for MemoryStorage {
        fn insert_dialin(&mut self, rec: &DialinRecord) -> Result<bool, StorageError> {
            self.dialin.insert_dialin(rec)
        }
        fn find_dialin(&mut self, hash: &CodeHash) -> Result<Option<DialinRecord>, StorageError> {
            self.dialin.find_dialin(hash)
        }
        fn revoke_dialin(
            &mut self,
            participant_id: i64,
            conference: &str,
        ) -> Result<usize, StorageError> {
            self.dialin.revoke_dialin(participant_id, conference)
        }
        fn use_dialin(&mut self, hash: &CodeHash, at_ms: i64) -> Result<bool, StorageError> {
            self.dialin.use_dialin(hash, at_ms)
        }
        fn purge_dialin(&mut self, before_ms: i64) -> Result<(), StorageError> {
            self.dialin.purge_dialin(before_ms)
        }
    }

    impl Directory for MemoryStorage {
        fn by_phone(&self, e164: &str) -> Result<Option<Participant>, DirectoryError> {
            Ok(self.participants.iter().find(|p| p.phone == e164).cloned())
        }
        fn by_username(&self, username: &str) -> Result<Option<Participant>, DirectoryError> {
            let u = username.trim().to_lowercase();
            Ok(self.participants.iter().find(|p| p.username == u).cloned())
        }
        fn by_id(&self, id: i64) -> Result<Option<Participant>, DirectoryError> {
            Ok(self.participants.iter().find(|p| p.id == id).cloned())
        }
        fn list(&self) -> Result<Vec<Participant>, DirectoryError> {
            Ok(self.participants.clone())
        }
        fn insert(
            &mut self,
            p: &ValidParticipant,
            now_ms: i64,
        ) -> Result<Participant, DirectoryError> {
            if self.participants.iter().any(|o| o.phone == p.phone) {
                return Err(DirectoryError::PhoneTaken(p.phone.clone()));
            }
            let added = Participant {
                id: self.participants.iter().map(|o| o.id).max().unwrap_or(0) + 1,
                username: p.username.clone().unwrap_or_else(|| slug(&p.name)),
                name: p.name.clone(),
                phone: p.phone.clone(),
                email: p.email.clone(),
                moderator: p.moderator,
                name_prompt: p.name_prompt.clone(),
                conferences: p.conferences.clone(),
                channels: p.channels.clone(),
                source: Source::Managed,
                created_ms: now_ms,
            };
            self.participants.push(added.clone());
            Ok(added)
        }
        fn update(&mut self, id: i64, p: &ValidParticipant) -> Result<Participant, DirectoryError> {
            let o = self
                .participants
                .iter_mut()
                .find(|o| o.id == id)
                .ok_or(DirectoryError::NotFound)?;
            o.name = p.name.clone();
            o.phone = p.phone.clone();
            Ok(o.clone())
        }
        fn delete(&mut self, id: i64) -> Result<Participant, DirectoryError> {
            let at = self
                .participants
                .iter()
                .position(|o| o.id == id)
                .ok_or(DirectoryError::NotFound)?;
            Ok(self.participants.remove(at))
        }
    }

    /// Runs each job at once, under a lock: in order, one at a time.
    #[derive(Default)]
    pub(crate) struct MemoryStore(pub Mutex<MemoryStorage>);

    impl VerificationStore for MemoryStore {
        fn run(&self, job: StorageJob) -> JobDone<'_> {
            let mut storage = self.0.lock().unwrap_or_else(|e| e.into_inner());
            job(&mut *storage);
            Box::pin(std::future::ready(Ok(())))
        }
    }

    /// A storage that has gone away.
    pub(crate) struct ClosedStore;

    impl VerificationStore for ClosedStore {
        fn run(&self, _job: StorageJob) -> JobDone<'_> {
            Box::pin(std::future::ready(Err(Unavailable("gone".into()))))
        }
    }
}
