//! The participant directory in SQLite.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::{Store, StoreError};
use crate::verify::channel::ChannelKind;
use crate::verify::directory::{
    slug, Directory, DirectoryError, Participant, Source, ValidParticipant,
};
use crate::verify::settings::ParticipantSettings;

/// What [`Store::sync_config_participants`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
}

const COLUMNS: &str =
    "id, username, name, phone, email, moderator, name_prompt, from_config, created";

struct Base {
    id: i64,
    username: String,
    name: String,
    phone: String,
    email: Option<String>,
    moderator: bool,
    name_prompt: Option<String>,
    from_config: bool,
    created: i64,
}

fn base(r: &Row<'_>) -> rusqlite::Result<Base> {
    Ok(Base {
        id: r.get(0)?,
        username: r.get(1)?,
        name: r.get(2)?,
        phone: r.get(3)?,
        email: r.get(4)?,
        moderator: r.get(5)?,
        name_prompt: r.get(6)?,
        from_config: r.get(7)?,
        created: r.get(8)?,
    })
}

fn complete(conn: &rusqlite::Connection, b: Base) -> Result<Participant, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT conference FROM participant_conferences WHERE participant_id = ?1 ORDER BY rowid",
    )?;
    let conferences = st
        .query_map([b.id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = conn.prepare_cached(
        "SELECT channel FROM participant_channels WHERE participant_id = ?1 ORDER BY position",
    )?;
    let mut channels = Vec::new();
    for name in st.query_map([b.id], |r| r.get::<_, String>(0))? {
        let name = name?;
        channels.push(
            ChannelKind::from_name(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("channel `{name}`")))?,
        );
    }
    Ok(Participant {
        id: b.id,
        username: b.username,
        name: b.name,
        phone: b.phone,
        email: b.email,
        moderator: b.moderator,
        name_prompt: b.name_prompt.map(PathBuf::from),
        conferences,
        channels,
        source: if b.from_config {
            Source::Config
        } else {
            Source::Managed
        },
        created_ms: b.created,
    })
}

fn find(
    conn: &rusqlite::Connection,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Participant>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM participants WHERE {column} = ?1");
    let b = conn
        .prepare_cached(&sql)?
        .query_row([value], base)
        .optional()?;
    match b {
        Some(b) => Ok(Some(complete(conn, b)?)),
        None => Ok(None),
    }
}

/// The id of the participant holding `value` in `column`, if any.
fn holder(tx: &Transaction<'_>, column: &str, value: &str) -> Result<Option<i64>, StoreError> {
    let sql = format!("SELECT id FROM participants WHERE {column} = ?1");
    Ok(tx.query_row(&sql, [value], |r| r.get(0)).optional()?)
}

/// A free username: the wanted one, or it with `-2`, `-3`...
fn free_username(
    tx: &Transaction<'_>,
    wanted: &str,
    me: Option<i64>,
) -> Result<String, StoreError> {
    let mut candidate = wanted.to_string();
    for n in 2..10_000 {
        match holder(tx, "username", &candidate)? {
            None => return Ok(candidate),
            Some(id) if Some(id) == me => return Ok(candidate),
            Some(_) => candidate = format!("{wanted}-{n}"),
        }
    }
    Err(StoreError::Corrupt(format!(
        "no free username like {wanted}"
    )))
}

fn write_lists(tx: &Transaction<'_>, id: i64, p: &ValidParticipant) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM participant_conferences WHERE participant_id = ?1",
        [id],
    )?;
    tx.execute(
        "DELETE FROM participant_channels WHERE participant_id = ?1",
        [id],
    )?;
    for c in &p.conferences {
        tx.execute(
            "INSERT OR IGNORE INTO participant_conferences (participant_id, conference) VALUES (?1, ?2)",
            params![id, c],
        )?;
    }
    for (i, c) in p.channels.iter().enumerate() {
        tx.execute(
            "INSERT INTO participant_channels (participant_id, position, channel) VALUES (?1, ?2, ?3)",
            params![id, i as i64, c.name()],
        )?;
    }
    Ok(())
}

fn prompt_text(p: &ValidParticipant) -> Option<String> {
    p.name_prompt
        .as_ref()
        .map(|n| n.to_string_lossy().into_owned())
}

/// Inserts within a transaction; conflicts are reported, not overwritten.
fn insert(
    tx: &Transaction<'_>,
    p: &ValidParticipant,
    source: Source,
    now: i64,
) -> Result<i64, DirectoryError> {
    if holder(tx, "phone", &p.phone)?.is_some() {
        return Err(DirectoryError::PhoneTaken(p.phone.clone()));
    }
    let username = match &p.username {
        Some(u) => {
            if holder(tx, "username", u)?.is_some() {
                return Err(DirectoryError::UsernameTaken(u.clone()));
            }
            u.clone()
        }
        None => free_username(tx, &slug(&p.name), None)?,
    };
    tx.execute(
        "INSERT INTO participants (username, name, phone, email, moderator, name_prompt, from_config, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            username,
            p.name,
            p.phone,
            p.email,
            p.moderator,
            prompt_text(p),
            source == Source::Config,
            now
        ],
    )
    .map_err(StoreError::from)?;
    let id = tx.last_insert_rowid();
    write_lists(tx, id, p)?;
    Ok(id)
}

fn update(
    tx: &Transaction<'_>,
    id: i64,
    p: &ValidParticipant,
    source: Source,
) -> Result<(), DirectoryError> {
    if let Some(other) = holder(tx, "phone", &p.phone)? {
        if other != id {
            return Err(DirectoryError::PhoneTaken(p.phone.clone()));
        }
    }
    if let Some(u) = &p.username {
        if let Some(other) = holder(tx, "username", u)? {
            if other != id {
                return Err(DirectoryError::UsernameTaken(u.clone()));
            }
        }
        tx.execute(
            "UPDATE participants SET username = ?2 WHERE id = ?1",
            params![id, u],
        )
        .map_err(StoreError::from)?;
    }
    tx.execute(
        "UPDATE participants SET name = ?2, phone = ?3, email = ?4, moderator = ?5,
                name_prompt = ?6, from_config = ?7 WHERE id = ?1",
        params![
            id,
            p.name,
            p.phone,
            p.email,
            p.moderator,
            prompt_text(p),
            source == Source::Config
        ],
    )
    .map_err(StoreError::from)?;
    write_lists(tx, id, p)?;
    Ok(())
}

impl Store {
    pub fn participant_by_id(&self, id: i64) -> Result<Option<Participant>, StoreError> {
        find(&self.conn, "id", &id)
    }

    /// `phone` must be E.164 already (see `normalize_e164`).
    pub fn participant_by_phone(&self, phone: &str) -> Result<Option<Participant>, StoreError> {
        find(&self.conn, "phone", &phone)
    }

    /// Usernames are lowercase; the lookup lowercases its input.
    pub fn participant_by_username(
        &self,
        username: &str,
    ) -> Result<Option<Participant>, StoreError> {
        find(&self.conn, "username", &username.trim().to_lowercase())
    }

    /// Everyone, by id.
    pub fn list_participants(&self) -> Result<Vec<Participant>, StoreError> {
        let bases = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM participants ORDER BY id"))?
            .query_map([], base)?
            .collect::<Result<Vec<_>, _>>()?;
        bases.into_iter().map(|b| complete(&self.conn, b)).collect()
    }

    /// Adds a participant managed through the API or CLI.
    pub fn insert_participant(
        &mut self,
        p: &ValidParticipant,
        now: i64,
    ) -> Result<Participant, DirectoryError> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let id = insert(&tx, p, Source::Managed, now)?;
        tx.commit().map_err(StoreError::from)?;
        self.participant_by_id(id)?.ok_or(DirectoryError::NotFound)
    }

    /// Replaces a managed participant's fields. A username of None keeps
    /// the current one. Participants from the config file are refused.
    pub fn update_participant(
        &mut self,
        id: i64,
        p: &ValidParticipant,
    ) -> Result<Participant, DirectoryError> {
        let current = self
            .participant_by_id(id)?
            .ok_or(DirectoryError::NotFound)?;
        if current.source == Source::Config {
            return Err(DirectoryError::FromConfig(current.username));
        }
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        update(&tx, id, p, Source::Managed)?;
        tx.commit().map_err(StoreError::from)?;
        self.participant_by_id(id)?.ok_or(DirectoryError::NotFound)
    }

    /// Removes a managed participant (their verifications stay, detached;
    /// their dial-in codes go). Participants from the config file are
    /// refused.
    pub fn delete_participant(&mut self, id: i64) -> Result<Participant, DirectoryError> {
        let current = self
            .participant_by_id(id)?
            .ok_or(DirectoryError::NotFound)?;
        if current.source == Source::Config {
            return Err(DirectoryError::FromConfig(current.username));
        }
        self.conn
            .execute("DELETE FROM participants WHERE id = ?1", [id])
            .map_err(StoreError::from)?;
        Ok(current)
    }

    /// Adds or updates many managed participants in one transaction, keyed
    /// by phone: all or nothing (the CSV import). Returns (added, updated).
    pub fn upsert_participants(
        &mut self,
        list: &[ValidParticipant],
        now: i64,
    ) -> Result<(usize, usize), DirectoryError> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let (mut added, mut updated) = (0, 0);
        for p in list {
            match holder(&tx, "phone", &p.phone)? {
                Some(id) => {
                    let from_config: bool = tx
                        .query_row(
                            "SELECT from_config FROM participants WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )
                        .map_err(StoreError::from)?;
                    if from_config {
                        return Err(DirectoryError::FromConfig(p.phone.clone()));
                    }
                    update(&tx, id, p, Source::Managed)?;
                    updated += 1;
                }
                None => {
                    insert(&tx, p, Source::Managed, now)?;
                    added += 1;
                }
            }
        }
        tx.commit().map_err(StoreError::from)?;
        Ok((added, updated))
    }

    /// Makes the participants declared in the config file the ones marked
    /// as coming from it: each is inserted or updated (matched by phone;
    /// a managed participant with the same phone is taken over), and those
    /// marked from an earlier config but gone from this one are removed, so
    /// deleting a line from the file revokes access. One transaction.
    pub fn sync_config_participants(
        &mut self,
        list: &[ParticipantSettings],
        now: i64,
    ) -> Result<SyncReport, DirectoryError> {
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let mut report = SyncReport::default();
        let mut kept = Vec::new();
        for s in list {
            let p = ValidParticipant {
                username: s.username.clone(),
                name: s.name.clone(),
                phone: s.phone.clone(),
                email: s.email.clone(),
                moderator: s.moderator,
                name_prompt: s.name_prompt.clone(),
                conferences: if s.conferences.is_empty() {
                    vec!["*".into()]
                } else {
                    s.conferences.clone()
                },
                channels: s.channels.clone(),
            };
            let id = match holder(&tx, "phone", &p.phone)? {
                Some(id) => {
                    update(&tx, id, &p, Source::Config)?;
                    report.updated += 1;
                    id
                }
                None => {
                    report.added += 1;
                    insert(&tx, &p, Source::Config, now)?
                }
            };
            kept.push(id);
        }
        let stale: Vec<i64> = tx
            .prepare("SELECT id FROM participants WHERE from_config = 1")
            .and_then(|mut st| {
                st.query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<i64>, _>>()
            })
            .map_err(StoreError::from)?
            .into_iter()
            .filter(|id| !kept.contains(id))
            .collect();
        for id in stale {
            tx.execute("DELETE FROM participants WHERE id = ?1", [id])
                .map_err(StoreError::from)?;
            report.removed += 1;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(report)
    }
}

impl Directory for Store {
    fn by_phone(&self, e164: &str) -> Result<Option<Participant>, DirectoryError> {
        Ok(self.participant_by_phone(e164)?)
    }

    fn by_username(&self, username: &str) -> Result<Option<Participant>, DirectoryError> {
        Ok(self.participant_by_username(username)?)
    }

    fn by_id(&self, id: i64) -> Result<Option<Participant>, DirectoryError> {
        Ok(self.participant_by_id(id)?)
    }

    fn list(&self) -> Result<Vec<Participant>, DirectoryError> {
        Ok(self.list_participants()?)
    }

    fn insert(&mut self, p: &ValidParticipant, now_ms: i64) -> Result<Participant, DirectoryError> {
        self.insert_participant(p, now_ms)
    }

    fn update(&mut self, id: i64, p: &ValidParticipant) -> Result<Participant, DirectoryError> {
        self.update_participant(id, p)
    }

    fn delete(&mut self, id: i64) -> Result<Participant, DirectoryError> {
        self.delete_participant(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::directory::{identify_caller, validate, ParticipantInput, Rules};

    const RULES: Rules<'static> = Rules {
        default_country_code: "1",
        conferences: None,
        channels: None,
    };

    fn valid(name: &str, phone: &str) -> ValidParticipant {
        validate(
            &ParticipantInput {
                name: name.into(),
                phone: phone.into(),
                channels: vec!["webhook".into(), "log".into()],
                conferences: vec!["board".into()],
                ..Default::default()
            },
            &RULES,
        )
        .unwrap()
    }

    fn settings(name: &str, phone: &str) -> ParticipantSettings {
        ParticipantSettings {
            username: None,
            name: name.into(),
            phone: phone.into(),
            email: None,
            moderator: true,
            conferences: vec!["*".into()],
            channels: vec![ChannelKind::Log],
            name_prompt: Some("prompts/alice.wav".into()),
        }
    }

    #[test]
    fn insert_and_look_up() {
        let mut s = Store::open_in_memory().unwrap();
        let a = s
            .insert_participant(&valid("Alice Smith", "+12015550123"), 5)
            .unwrap();
        assert_eq!(a.username, "alice-smith");
        assert_eq!(a.channels, vec![ChannelKind::Webhook, ChannelKind::Log]);
        assert_eq!(a.conferences, vec!["board"]);
        assert_eq!(a.created_ms, 5);
        assert_eq!(
            s.participant_by_phone("+12015550123").unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            s.participant_by_username("ALICE-smith").unwrap(),
            Some(a.clone())
        );
        assert_eq!(s.participant_by_id(a.id).unwrap(), Some(a.clone()));
        assert_eq!(
            identify_caller(&s, "(201) 555-0123", "1").unwrap(),
            Some(a.clone())
        );
        assert_eq!(identify_caller(&s, "anonymous", "1").unwrap(), None);
        // Same name, another phone: the username gets a suffix.
        let b = s
            .insert_participant(&valid("Alice Smith", "+12015550124"), 6)
            .unwrap();
        assert_eq!(b.username, "alice-smith-2");
        assert_eq!(s.list_participants().unwrap().len(), 2);
    }

    #[test]
    fn conflicts_are_named() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_participant(&valid("Alice", "+12015550123"), 0)
            .unwrap();
        assert!(matches!(
            s.insert_participant(&valid("Bob", "+12015550123"), 0),
            Err(DirectoryError::PhoneTaken(p)) if p == "+12015550123"
        ));
        let mut bob = valid("Bob", "+12015550199");
        bob.username = Some("alice".into());
        assert!(matches!(
            s.insert_participant(&bob, 0),
            Err(DirectoryError::UsernameTaken(u)) if u == "alice"
        ));
    }

    #[test]
    fn update_and_delete() {
        let mut s = Store::open_in_memory().unwrap();
        let a = s
            .insert_participant(&valid("Alice", "+12015550123"), 0)
            .unwrap();
        let mut changed = valid("Alice B", "+12015550100");
        changed.channels = vec![ChannelKind::Log];
        changed.conferences = vec!["*".into()];
        let u = s.update_participant(a.id, &changed).unwrap();
        assert_eq!(u.name, "Alice B");
        assert_eq!(u.username, "alice", "kept");
        assert_eq!(u.phone, "+12015550100");
        assert_eq!(u.channels, vec![ChannelKind::Log]);
        assert!(s.participant_by_phone("+12015550123").unwrap().is_none());
        assert!(matches!(
            s.update_participant(999, &changed),
            Err(DirectoryError::NotFound)
        ));
        s.delete_participant(a.id).unwrap();
        assert!(s.participant_by_id(a.id).unwrap().is_none());
        assert!(matches!(
            s.delete_participant(a.id),
            Err(DirectoryError::NotFound)
        ));
        // Cascades: no orphans left behind.
        let n: i64 = s
            .conn
            .query_row("SELECT count(*) FROM participant_channels", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn config_participants_are_synced_and_protected() {
        let mut s = Store::open_in_memory().unwrap();
        // A managed participant with a phone the config will claim.
        s.insert_participant(&valid("Carol", "+12015550177"), 0)
            .unwrap();
        let list = vec![
            settings("Alice", "+12015550123"),
            settings("Carol C", "+12015550177"),
        ];
        let r = s.sync_config_participants(&list, 10).unwrap();
        assert_eq!(
            r,
            SyncReport {
                added: 1,
                updated: 1,
                removed: 0
            }
        );
        let alice = s.participant_by_phone("+12015550123").unwrap().unwrap();
        assert_eq!(alice.source, Source::Config);
        assert!(alice.moderator);
        assert_eq!(alice.name_prompt, Some(PathBuf::from("prompts/alice.wav")));
        let carol = s.participant_by_phone("+12015550177").unwrap().unwrap();
        assert_eq!(
            (carol.source, carol.name.as_str()),
            (Source::Config, "Carol C")
        );

        // The API and CLI leave config participants alone.
        assert!(matches!(
            s.delete_participant(alice.id),
            Err(DirectoryError::FromConfig(_))
        ));
        assert!(matches!(
            s.update_participant(alice.id, &valid("X", "+12015550123")),
            Err(DirectoryError::FromConfig(_))
        ));

        // Restart with Carol removed from the file: she is removed.
        let r = s.sync_config_participants(&list[..1], 20).unwrap();
        assert_eq!(
            r,
            SyncReport {
                added: 0,
                updated: 1,
                removed: 1
            }
        );
        assert!(s.participant_by_phone("+12015550177").unwrap().is_none());
        assert_eq!(
            s.participant_by_phone("+12015550123").unwrap().unwrap().id,
            alice.id,
            "ids are stable across restarts"
        );
    }

    #[test]
    fn upsert_is_all_or_nothing() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_participant(&valid("Alice", "+12015550123"), 0)
            .unwrap();
        let (a, u) = s
            .upsert_participants(
                &[
                    valid("Alice Two", "+12015550123"),
                    valid("Bob", "+12015550124"),
                ],
                0,
            )
            .unwrap();
        assert_eq!((a, u), (1, 1));
        let mut clash = valid("Dan", "+12015550125");
        clash.username = Some("bob".into());
        assert!(s
            .upsert_participants(&[valid("Eve", "+12015550126"), clash], 0)
            .is_err());
        assert!(s.participant_by_phone("+12015550126").unwrap().is_none());
    }
}
