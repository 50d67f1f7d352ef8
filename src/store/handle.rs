//! Async access to the store: one thread owns the connection and runs the
//! closures it is sent, one at a time, in order. The tokio tasks await the
//! answer, so a slow disk holds up database work only, never the runtime.
//!
//! One thread suits SQLite, which serialises writers anyway; it also means
//! the verification rules (read, decide, write) run without interleaving.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};
use crate::verify::storage::{JobDone, StorageJob, VerificationStore};

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A cheap, cloneable handle to the store thread. The thread ends when the
/// last handle is dropped.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

/// Jobs waiting before `call` waits for room (back-pressure).
const QUEUE: usize = 1024;

impl StoreHandle {
    /// Moves `store` onto its own thread.
    pub fn spawn(mut store: Store) -> Result<StoreHandle, StoreError> {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        thread::Builder::new()
            .name("pinbridge-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A panicking job must not take the database down for
                    // everyone: its caller sees the store as closed, the
                    // thread goes on.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut store))).is_err() {
                        tracing::error!("a database job panicked");
                    }
                }
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the store thread: {e}")))?;
        Ok(StoreHandle { jobs: tx })
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            crate::fault::check(crate::fault::Site::Store);
            let _ = tx.send(f(store));
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

/// The verification service's jobs run on the store thread like any other.
impl VerificationStore for StoreHandle {
    fn run(&self, job: StorageJob) -> JobDone<'_> {
        Box::pin(async move { Ok(self.call(move |store| job(store)).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_in_order_and_survives_a_panic() {
        let h = StoreHandle::spawn(Store::open_in_memory().unwrap()).unwrap();
        let v = h.call(|s| s.schema_version().unwrap()).await.unwrap();
        assert_eq!(v, crate::store::schema::LATEST);
        let r = h.call(|_s| -> u32 { panic!("boom") }).await;
        assert!(matches!(r, Err(StoreError::Closed)));
        let again = h.clone().call(|_| 7).await.unwrap();
        assert_eq!(again, 7);
    }
}
