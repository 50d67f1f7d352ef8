//! The schema, as a list of migrations. `PRAGMA user_version` holds how
//! many have run; opening a database runs the rest, each in its own
//! transaction with the version bump, so a crash leaves either the old or
//! the new schema. Never edit a migration that has shipped: add one.

use rusqlite::Connection;

use super::StoreError;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Participants, verifications and the send log.
const V1: &str = "
CREATE TABLE participants (
    id          INTEGER PRIMARY KEY,
    username    TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    phone       TEXT NOT NULL UNIQUE,   -- E.164
    email       TEXT,
    moderator   INTEGER NOT NULL DEFAULT 0,
    name_prompt TEXT,                   -- path of a WAV
    created     INTEGER NOT NULL        -- unix ms
);
CREATE TABLE participant_conferences (
    participant_id INTEGER NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    conference     TEXT NOT NULL,       -- a conference name or '*'
    PRIMARY KEY (participant_id, conference)
);
CREATE TABLE participant_channels (
    participant_id INTEGER NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,    -- 0 is tried first
    channel        TEXT NOT NULL,
    PRIMARY KEY (participant_id, position)
);
CREATE TABLE verifications (
    id             TEXT PRIMARY KEY,
    destination    TEXT NOT NULL,       -- E.164 or email
    channel        TEXT,
    participant_id INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    code_hash      BLOB NOT NULL,       -- HMAC-SHA256 under the server key
    status         TEXT NOT NULL,
    created        INTEGER NOT NULL,
    expires        INTEGER NOT NULL,
    last_sent      INTEGER,
    checks         INTEGER NOT NULL DEFAULT 0,
    sends          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX verifications_by_destination ON verifications(destination, status, created);
CREATE TABLE sends (
    destination TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX sends_by_destination ON sends(destination, at);
";

/// Config-declared participants, the delivery audit trail, dial-in codes
/// and call records.
const V2: &str = "
ALTER TABLE participants ADD COLUMN from_config INTEGER NOT NULL DEFAULT 0;
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    verification_id TEXT NOT NULL REFERENCES verifications(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    outcome         TEXT NOT NULL,      -- delivered | failed | failed_retryable
    detail          TEXT NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX deliveries_by_verification ON deliveries(verification_id);
CREATE TABLE dialin_codes (
    code_hash      BLOB PRIMARY KEY,    -- HMAC-SHA256 under the server key
    participant_id INTEGER NOT NULL REFERENCES participants(id) ON DELETE CASCADE,
    conference     TEXT NOT NULL,
    expires        INTEGER NOT NULL,
    used_at        INTEGER
) WITHOUT ROWID;
CREATE TABLE call_records (
    id             INTEGER PRIMARY KEY,
    call_id        TEXT NOT NULL,
    caller         TEXT,
    dialed         TEXT,
    conference     TEXT,
    participant_id INTEGER REFERENCES participants(id) ON DELETE SET NULL,
    started        INTEGER NOT NULL,
    ended          INTEGER,
    outcome        TEXT
);
CREATE INDEX call_records_by_start ON call_records(started);
";

/// The brute-force guard's lockouts and failure windows, kept across
/// restarts. Callers are keyed hashes, never caller IDs.
const V3: &str = "
CREATE TABLE guard_failures (
    kind TEXT NOT NULL,                 -- caller | ip | trusted
    key  TEXT NOT NULL,                 -- caller: keyed hash (16 hex digits); ip, trusted: address or IPv6 /64
    at   INTEGER NOT NULL               -- unix ms
);
CREATE INDEX guard_failures_by_key ON guard_failures(kind, key, at);
CREATE INDEX guard_failures_by_time ON guard_failures(at);
CREATE TABLE guard_lockouts (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    until INTEGER NOT NULL,             -- unix ms
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
";

pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("user_version {v}")))
}

/// Runs the migrations after the database's version, up to `target`.
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, StoreError> {
    let current = version(conn)?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            found: current,
            supported: LATEST,
        });
    }
    for v in current + 1..=target.min(LATEST) {
        let sql = MIGRATIONS[(v - 1) as usize];
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", v)?;
            tx.commit()
        };
        run(conn).map_err(|source| StoreError::Migrate { version: v, source })?;
    }
    version(conn)
}
