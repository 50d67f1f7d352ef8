//! Call records: one row per call, written when it starts and completed
//! when it ends.

use rusqlite::params;

use super::{Store, StoreError};

/// A call as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRecord {
    /// The SIP Call-ID.
    pub call_id: String,
    /// The identified caller (E.164 where it could be normalised).
    pub caller: Option<String>,
    /// The dialled number (Request-URI user).
    pub dialed: Option<String>,
    pub conference: Option<String>,
    pub participant_id: Option<i64>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// How it ended: "joined", "wrong_pin", "unknown_caller", "hangup"...
    pub outcome: Option<String>,
}

impl Store {
    /// Writes a call record; returns its row id for [`Store::finish_call`].
    pub fn insert_call(&mut self, c: &CallRecord) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO call_records (call_id, caller, dialed, conference, participant_id, started, ended, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                c.call_id,
                c.caller,
                c.dialed,
                c.conference,
                c.participant_id,
                c.started_ms,
                c.ended_ms,
                c.outcome
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Completes a call record (and may name the conference and
    /// participant, known only after the IVR).
    pub fn finish_call(
        &mut self,
        row_id: i64,
        ended_ms: i64,
        outcome: &str,
        conference: Option<&str>,
        participant_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE call_records SET ended = ?2, outcome = ?3,
                        conference = coalesce(?4, conference),
                        participant_id = coalesce(?5, participant_id)
                 WHERE id = ?1",
            )?
            .execute(params![
                row_id,
                ended_ms,
                outcome,
                conference,
                participant_id
            ])?;
        Ok(())
    }

    /// The most recent calls, newest first.
    pub fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT call_id, caller, dialed, conference, participant_id, started, ended, outcome
             FROM call_records ORDER BY started DESC, id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(CallRecord {
                    call_id: r.get(0)?,
                    caller: r.get(1)?,
                    dialed: r.get(2)?,
                    conference: r.get(3)?,
                    participant_id: r.get(4)?,
                    started_ms: r.get(5)?,
                    ended_ms: r.get(6)?,
                    outcome: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_a_call() {
        let mut s = Store::open_in_memory().unwrap();
        let id = s
            .insert_call(&CallRecord {
                call_id: "abc@host".into(),
                caller: Some("+12015550123".into()),
                dialed: Some("100".into()),
                started_ms: 1000,
                ..Default::default()
            })
            .unwrap();
        s.finish_call(id, 5000, "joined", Some("board"), None)
            .unwrap();
        let calls = s.recent_calls(10).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].ended_ms, Some(5000));
        assert_eq!(calls[0].conference.as_deref(), Some("board"));
        assert_eq!(calls[0].outcome.as_deref(), Some("joined"));
    }
}
