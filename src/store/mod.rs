//! The embedded database: one SQLite file (bundled SQLite, so nothing to
//! install), created on first start, with versioned migrations.
//!
//! It holds the participant directory, verifications (so they survive a
//! restart), the per-destination send log, the delivery audit trail,
//! one-time dial-in codes, call records, and the brute-force guard's
//! lockouts and failure windows.
//!
//! [`Store`] is synchronous. The tokio shell talks to it through a
//! [`StoreHandle`], which runs closures on a dedicated thread so that a
//! disk write never blocks the runtime.

mod calls;
mod guard;
mod handle;
mod otp;
mod participants;
pub mod schema;

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use calls::CallRecord;
pub use guard::{GuardWrite, StoredGuard};
pub use handle::StoreHandle;
pub use participants::SyncReport;

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open the database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: cannot create its directory: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database migration {version} failed: {source}")]
    Migrate {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("the database has schema version {found}, newer than this build knows ({supported}); run a newer pinbridge")]
    TooNew { found: u32, supported: u32 },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
    #[error("the database thread has stopped")]
    Closed,
}

impl From<StoreError> for crate::verify::otp::StorageError {
    fn from(e: StoreError) -> Self {
        crate::verify::otp::StorageError(e.to_string())
    }
}

impl From<rusqlite::Error> for crate::verify::otp::StorageError {
    fn from(e: rusqlite::Error) -> Self {
        crate::verify::otp::StorageError(format!("database: {e}"))
    }
}

impl From<StoreError> for crate::verify::directory::DirectoryError {
    fn from(e: StoreError) -> Self {
        crate::verify::directory::DirectoryError::Storage(e.into())
    }
}

impl From<StoreError> for crate::verify::storage::Unavailable {
    fn from(e: StoreError) -> Self {
        crate::verify::storage::Unavailable(e.to_string())
    }
}

/// An open database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date. A new file is made readable by its owner only: it
    /// holds phone numbers and email addresses.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.into(),
                source,
            })?;
        }
        let existed = path.exists();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.into(),
            source,
        })?;
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
        let _ = existed;
        Store::setup(conn, true).map_err(|e| match e {
            StoreError::Sqlite(source) => StoreError::Open {
                path: path.into(),
                source,
            },
            other => other,
        })
    }

    /// A database in memory, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::setup(Connection::open_in_memory()?, false)
    }

    fn setup(mut conn: Connection, wal: bool) -> Result<Store, StoreError> {
        // Another process (the CLI while the server runs) may hold the
        // write lock for a moment: wait instead of failing at once.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if wal {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt(format!(
                    "journal_mode is {mode}, WAL was refused"
                )));
            }
            // In WAL mode NORMAL is durable across application crashes and
            // consistent across power loss; FULL would fsync every commit.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate_to(&mut conn, schema::LATEST)?;
        Ok(Store { conn })
    }

    /// The schema version now in force.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::version(&self.conn)
    }

    /// The connection, for queries this module has no function for (tests,
    /// audits).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pinbridge-{tag}-{}-{}",
            std::process::id(),
            crate::verify::random::id("").unwrap_or_default()
        ));
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_file_with_wal_and_foreign_keys() {
        let dir = test_util::temp_dir("store-open");
        let path = dir.join("sub/pinbridge.db");
        let store = Store::open(&path).unwrap();
        assert!(path.exists());
        assert_eq!(store.schema_version().unwrap(), schema::LATEST);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600);
        }
        drop(store);
        // Reopening is a no-op for the schema.
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            schema::LATEST
        );
    }

    #[test]
    fn migrates_a_v1_database() {
        let dir = test_util::temp_dir("store-v1");
        let path = dir.join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            assert_eq!(schema::migrate_to(&mut conn, 1).unwrap(), 1);
            conn.execute(
                "INSERT INTO participants (username, name, phone, created)
                 VALUES ('alice', 'Alice', '+12015550123', 1)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO participant_conferences VALUES (1, 'board')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::LATEST);
        let alice = store.participant_by_phone("+12015550123").unwrap().unwrap();
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.conferences, vec!["board".to_string()]);
        assert_eq!(alice.source, crate::verify::directory::Source::Managed);
        // The v2 and v3 tables exist.
        for table in [
            "deliveries",
            "dialin_codes",
            "call_records",
            "guard_failures",
            "guard_lockouts",
        ] {
            let n: i64 = store
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0);
        }
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = test_util::temp_dir("store-new");
        let path = dir.join("future.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn reports_an_unopenable_path() {
        let dir = test_util::temp_dir("store-bad");
        // A directory where the file should be.
        let err = Store::open(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }
}
