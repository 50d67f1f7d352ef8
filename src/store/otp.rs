//! Verifications, the send log, the delivery audit trail and dial-in codes
//! in SQLite: the storage the `verify` cores run on.

use rusqlite::{params, OptionalExtension, Row};

use super::Store;
use crate::verify::channel::ChannelKind;
use crate::verify::dialin::{DialinRecord, DialinStorage};
use crate::verify::otp::{
    CodeHash, DeliveryRecord, OtpStorage, Status, StorageError, Verification, DECOY_PREFIX, HOUR_MS,
};
use crate::verify::sender::DeliveryOutcome;

const COLUMNS: &str = "id, destination, channel, participant_id, code_hash, status, created, expires, last_sent, checks, sends";

fn corrupt(what: String) -> StorageError {
    StorageError(format!("database holds an unexpected value: {what}"))
}

fn hash32(bytes: Vec<u8>) -> Result<CodeHash, StorageError> {
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(format!("a code hash of {} bytes", bytes.len())))?;
    Ok(CodeHash(arr))
}

type RawRow = (
    String,
    String,
    Option<String>,
    Option<i64>,
    Vec<u8>,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    i64,
);

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn verification(row: RawRow) -> Result<Verification, StorageError> {
    let (
        id,
        destination,
        channel,
        participant_id,
        hash,
        status,
        created,
        expires,
        last,
        checks,
        sends,
    ) = row;
    let channel = match channel {
        None => None,
        Some(c) => {
            Some(ChannelKind::from_name(&c).ok_or_else(|| corrupt(format!("channel `{c}`")))?)
        }
    };
    Ok(Verification {
        status: Status::from_name(&status).ok_or_else(|| corrupt(format!("status `{status}`")))?,
        code_hash: hash32(hash)?,
        id,
        destination,
        channel,
        participant_id,
        created_ms: created,
        expires_ms: expires,
        last_sent_ms: last,
        checks: u32::try_from(checks).unwrap_or(u32::MAX),
        sends: u32::try_from(sends).unwrap_or(u32::MAX),
    })
}

impl Store {
    fn load_one(&self, sql: &str, key: &str) -> Result<Option<Verification>, StorageError> {
        let row = self
            .conn
            .prepare_cached(sql)?
            .query_row([key], raw)
            .optional()?;
        row.map(verification).transpose()
    }

    /// The delivery attempts recorded for a verification, oldest first.
    pub fn deliveries(&self, verification_id: &str) -> Result<Vec<DeliveryRecord>, StorageError> {
        let mut st = self.conn.prepare_cached(
            "SELECT channel, attempt, outcome, detail, at FROM deliveries
             WHERE verification_id = ?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([verification_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(channel, attempt, outcome, detail, at)| {
                let channel = ChannelKind::from_name(&channel)
                    .ok_or_else(|| corrupt(format!("channel `{channel}`")))?;
                let outcome = match outcome.as_str() {
                    "delivered" => DeliveryOutcome::Delivered { detail },
                    "failed" => DeliveryOutcome::Failed {
                        reason: detail,
                        retryable: false,
                    },
                    "failed_retryable" => DeliveryOutcome::Failed {
                        reason: detail,
                        retryable: true,
                    },
                    other => return Err(corrupt(format!("outcome `{other}`"))),
                };
                Ok(DeliveryRecord {
                    verification_id: verification_id.to_string(),
                    channel,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    outcome,
                    at_ms: at,
                })
            })
            .collect()
    }
}

impl OtpStorage for Store {
    fn insert_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO verifications ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                v.id,
                v.destination,
                v.channel.map(ChannelKind::name),
                v.participant_id,
                &v.code_hash.0[..],
                v.status.name(),
                v.created_ms,
                v.expires_ms,
                v.last_sent_ms,
                v.checks,
                v.sends
            ])?;
        Ok(())
    }

    fn load_verification(&mut self, id: &str) -> Result<Option<Verification>, StorageError> {
        self.load_one(
            &format!("SELECT {COLUMNS} FROM verifications WHERE id = ?1"),
            id,
        )
    }

    fn pending_verification(
        &mut self,
        destination: &str,
    ) -> Result<Option<Verification>, StorageError> {
        self.load_one(
            &format!(
                "SELECT {COLUMNS} FROM verifications WHERE destination = ?1 AND status = 'pending'
                 ORDER BY created DESC LIMIT 1"
            ),
            destination,
        )
    }

    fn save_verification(&mut self, v: &Verification) -> Result<(), StorageError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE verifications SET status = ?2, channel = ?3, checks = ?4, sends = ?5,
                        last_sent = ?6 WHERE id = ?1",
            )?
            .execute(params![
                v.id,
                v.status.name(),
                v.channel.map(ChannelKind::name),
                v.checks,
                v.sends,
                v.last_sent_ms
            ])?;
        if n == 1 {
            Ok(())
        } else {
            Err(StorageError(format!("no verification {}", v.id)))
        }
    }

    fn sends_since(&mut self, destination: &str, since_ms: i64) -> Result<Vec<i64>, StorageError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT at FROM sends WHERE destination = ?1 AND at >= ?2")?;
        let rows = st
            .query_map(params![destination, since_ms], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(rows)
    }

    fn record_send(&mut self, destination: &str, at_ms: i64) -> Result<(), StorageError> {
        // The log only needs the last hour: forget older sends as we go.
        self.conn
            .prepare_cached("DELETE FROM sends WHERE destination = ?1 AND at < ?2")?
            .execute(params![destination, at_ms - HOUR_MS])?;
        self.conn
            .prepare_cached("INSERT INTO sends (destination, at) VALUES (?1, ?2)")?
            .execute(params![destination, at_ms])?;
        Ok(())
    }

    fn purge_decoys(&mut self, before_ms: i64) -> Result<(), StorageError> {
        // `channel IS NULL` as well as the prefix: every real verification
        // has a channel, so no real row can match.
        let pattern = format!("{DECOY_PREFIX}%");
        self.conn
            .prepare_cached(
                "DELETE FROM verifications
                 WHERE destination LIKE ?1 AND channel IS NULL AND expires < ?2",
            )?
            .execute(params![pattern, before_ms])?;
        self.conn
            .prepare_cached("DELETE FROM sends WHERE destination LIKE ?1 AND at < ?2")?
            .execute(params![pattern, before_ms])?;
        Ok(())
    }

    fn record_delivery(&mut self, d: &DeliveryRecord) -> Result<(), StorageError> {
        let (outcome, detail) = match &d.outcome {
            DeliveryOutcome::Delivered { detail } => ("delivered", detail),
            DeliveryOutcome::Failed {
                reason,
                retryable: false,
            } => ("failed", reason),
            DeliveryOutcome::Failed {
                reason,
                retryable: true,
            } => ("failed_retryable", reason),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO deliveries (verification_id, channel, attempt, outcome, detail, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                d.verification_id,
                d.channel.name(),
                d.attempt,
                outcome,
                detail,
                d.at_ms
            ])?;
        Ok(())
    }
}

impl DialinStorage for Store {
    fn insert_dialin(&mut self, rec: &DialinRecord) -> Result<bool, StorageError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO dialin_codes (code_hash, participant_id, conference, expires, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &rec.code_hash.0[..],
                rec.participant_id,
                rec.conference,
                rec.expires_ms,
                rec.used_ms
            ])?;
        Ok(n == 1)
    }

    fn find_dialin(&mut self, hash: &CodeHash) -> Result<Option<DialinRecord>, StorageError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT code_hash, participant_id, conference, expires, used_at
                 FROM dialin_codes WHERE code_hash = ?1",
            )?
            .query_row([&hash.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()?;
        match row {
            None => Ok(None),
            Some((h, participant_id, conference, expires_ms, used_ms)) => Ok(Some(DialinRecord {
                code_hash: hash32(h)?,
                participant_id,
                conference,
                expires_ms,
                used_ms,
            })),
        }
    }

    fn revoke_dialin(
        &mut self,
        participant_id: i64,
        conference: &str,
    ) -> Result<usize, StorageError> {
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM dialin_codes
                 WHERE participant_id = ?1 AND conference = ?2 AND used_at IS NULL",
            )?
            .execute(params![participant_id, conference])?;
        Ok(n)
    }

    fn use_dialin(&mut self, hash: &CodeHash, at_ms: i64) -> Result<bool, StorageError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE dialin_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL",
            )?
            .execute(params![&hash.0[..], at_ms])?;
        Ok(n == 1)
    }

    fn purge_dialin(&mut self, before_ms: i64) -> Result<(), StorageError> {
        self.conn
            .prepare_cached("DELETE FROM dialin_codes WHERE expires < ?1")?
            .execute([before_ms])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::temp_dir;
    use crate::verify::dialin::DialinCodes;
    use crate::verify::directory::{validate, ParticipantInput, Rules};
    use crate::verify::key::ServerKey;
    use crate::verify::otp::{CheckTarget, Policy, StartRequest, Verifier};

    const T0: i64 = 1_700_000_000_000;

    fn req(dest: &str) -> StartRequest {
        StartRequest {
            destination: dest.into(),
            channel: Some(ChannelKind::Log),
            participant_id: None,
        }
    }

    #[test]
    fn round_trips_verifications_and_deliveries() {
        let mut s = Store::open_in_memory().unwrap();
        let mut v = Verifier::new(ServerKey::from_bytes([1; 32]), Policy::default()).unwrap();
        let st = v.start(&mut s, req("+12015550123"), T0).unwrap();
        let loaded = s.load_verification(&st.verification.id).unwrap().unwrap();
        assert_eq!(loaded, st.verification);
        assert_eq!(
            s.pending_verification("+12015550123").unwrap(),
            Some(loaded.clone())
        );
        v.record_delivery(
            &mut s,
            DeliveryRecord {
                verification_id: loaded.id.clone(),
                channel: ChannelKind::Webhook,
                attempt: 1,
                outcome: DeliveryOutcome::Failed {
                    reason: "gateway said 503".into(),
                    retryable: true,
                },
                at_ms: T0,
            },
        )
        .unwrap();
        v.record_delivery(
            &mut s,
            DeliveryRecord {
                verification_id: loaded.id.clone(),
                channel: ChannelKind::Log,
                attempt: 2,
                outcome: DeliveryOutcome::Delivered {
                    detail: "logged".into(),
                },
                at_ms: T0,
            },
        )
        .unwrap();
        let d = s.deliveries(&loaded.id).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].outcome,
            DeliveryOutcome::Failed {
                reason: "gateway said 503".into(),
                retryable: true
            }
        );
        assert_eq!(d[1].attempt, 2);
        // The code is nowhere in the database.
        let dump: String = s
            .conn
            .query_row(
                // Every column that could hold a code; not the destination,
                // a phone number in whose digits a random code can turn up.
                "SELECT group_concat(hex(code_hash) || '|' || status) FROM verifications",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!dump.contains(st.code.expose()));
    }

    #[test]
    fn spent_decoys_are_purged_and_nothing_else() {
        let mut s = Store::open_in_memory().unwrap();
        let mut v = Verifier::new(ServerKey::from_bytes([1; 32]), Policy::default()).unwrap();
        let real = v.start(&mut s, req("+12015550123"), T0).unwrap();
        let decoy = v.start_decoy(&mut s, "nobody", T0).unwrap();
        assert_eq!(decoy.destination, "decoy:nobody");
        assert_eq!(decoy.channel, None);
        let count = |s: &Store, table: &str| -> i64 {
            s.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count(&s, "verifications"), count(&s, "sends")), (2, 2));
        // Expired, but not yet an hour ago: kept.
        s.purge_decoys(decoy.expires_ms).unwrap();
        assert_eq!(count(&s, "verifications"), 2);
        // Long gone: the decoy and its send go, the real one stays.
        s.purge_decoys(decoy.expires_ms + HOUR_MS + 1).unwrap();
        assert_eq!((count(&s, "verifications"), count(&s, "sends")), (1, 1));
        assert!(s
            .load_verification(&real.verification.id)
            .unwrap()
            .is_some());
        // The verifier purges on its own as decoys are made.
        let later = decoy.expires_ms + 2 * HOUR_MS;
        v.start_decoy(&mut s, "old", T0).unwrap();
        v.start_decoy(&mut s, "new", later).unwrap();
        let left: Vec<String> = s
            .conn
            .prepare("SELECT destination FROM verifications ORDER BY destination")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, vec!["+12015550123", "decoy:new"]);
    }

    #[test]
    fn sends_older_than_an_hour_are_forgotten() {
        let mut s = Store::open_in_memory().unwrap();
        s.record_send("+1", T0).unwrap();
        s.record_send("+1", T0 + HOUR_MS + 1).unwrap();
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM sends", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_verification_survives_a_restart() {
        let dir = temp_dir("store-restart");
        let path = dir.join("db.sqlite");
        let key = ServerKey::from_bytes([2; 32]);
        let (id, code) = {
            let mut s = Store::open(&path).unwrap();
            let mut v = Verifier::new(key.clone(), Policy::default()).unwrap();
            let st = v.start(&mut s, req("+12015550123"), T0).unwrap();
            (st.verification.id, st.code)
        };
        let mut s = Store::open(&path).unwrap();
        let mut v = Verifier::new(key, Policy::default()).unwrap();
        let c = v
            .check(&mut s, CheckTarget::Id(&id), code.expose(), T0 + 60_000)
            .unwrap();
        assert!(c.valid);
    }

    #[test]
    fn dialin_codes_in_sqlite() {
        let mut s = Store::open_in_memory().unwrap();
        let p = s
            .insert_participant(
                &validate(
                    &ParticipantInput {
                        name: "Alice".into(),
                        phone: "+12015550123".into(),
                        ..Default::default()
                    },
                    &Rules {
                        default_country_code: "1",
                        conferences: None,
                        channels: None,
                    },
                )
                .unwrap(),
                0,
            )
            .unwrap();
        let d = DialinCodes::new(ServerKey::from_bytes([4; 32]));
        let (code, _) = d.issue(&mut s, p.id, "board", 300_000, T0).unwrap();
        let r = d.redeem(&mut s, code.expose(), T0 + 10).unwrap().unwrap();
        assert_eq!((r.participant_id, r.conference.as_str()), (p.id, "board"));
        assert!(d.redeem(&mut s, code.expose(), T0 + 20).unwrap().is_none());
        // A new code for the same conference replaces the live one.
        let (older, _) = d.issue(&mut s, p.id, "board", 300_000, T0).unwrap();
        let (newer, _) = d.issue(&mut s, p.id, "board", 300_000, T0 + 1).unwrap();
        assert!(d.redeem(&mut s, older.expose(), T0 + 20).unwrap().is_none());
        assert!(d.redeem(&mut s, newer.expose(), T0 + 20).unwrap().is_some());
        // Deleting the participant takes their codes with them.
        let (code2, _) = d.issue(&mut s, p.id, "board", 300_000, T0).unwrap();
        s.delete_participant(p.id).unwrap();
        assert!(d.redeem(&mut s, code2.expose(), T0 + 30).unwrap().is_none());
    }
}
