//! `pinbridge participants add|list|remove|import`: the directory from the
//! command line, on the database at `[store] path`. Safe while the server
//! runs (SQLite in WAL mode; writers wait for each other).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::store::Store;
use crate::verify::clock::{rfc3339, Clock, SystemClock};
use crate::verify::directory::{
    validate, DirectoryError, Participant, ParticipantInput, Rules, ValidParticipant,
};
use crate::verify::e164::normalize_e164;

/// The `participants` subcommands.
#[derive(Debug, Subcommand)]
pub enum ParticipantsCommand {
    /// Add a participant.
    Add(AddArgs),
    /// List the participants.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a participant, by id, username or phone number.
    Remove {
        /// An id, a username or a phone number.
        who: String,
    },
    /// Add or update participants from a CSV file with the columns
    /// name,phone,email,moderator,conferences,channels (conferences and
    /// channels separated by ';'; a header line is optional and may add
    /// username and name_prompt columns). All lines or none are imported;
    /// an existing phone number is updated.
    Import {
        file: PathBuf,
        /// Check the file and say what would change, without writing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Full name (read out as "Welcome <name>" where there is no recording).
    #[arg(long)]
    pub name: String,
    /// Phone number; E.164, or national with `[identity] default_country_code`.
    #[arg(long)]
    pub phone: String,
    #[arg(long)]
    pub email: Option<String>,
    /// Login for the web join page (default: from the name).
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub moderator: bool,
    /// A conference they may join (repeat; default: all).
    #[arg(long = "conference", value_name = "NAME")]
    pub conferences: Vec<String>,
    /// A delivery channel in order of preference (repeat).
    #[arg(long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
    /// A WAV recording of their name.
    #[arg(long, value_name = "WAV")]
    pub name_prompt: Option<String>,
}

/// `pinbridge participants [--config FILE] ...`: loads the configuration
/// (the embedded default without a file; a bad file exits 1 with the
/// reason) and runs the subcommand.
pub fn main(config: Option<&Path>, cmd: ParticipantsCommand) -> ExitCode {
    let config = match config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded_default(),
    };
    participants_command(&config, cmd)
}

/// Runs a `participants` subcommand: results on stdout, errors on stderr;
/// exit 0 on success, 1 when the input was refused, 2 when the database
/// could not be used.
pub fn participants_command(config: &Config, cmd: ParticipantsCommand) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    ExitCode::from(run(config, cmd, &mut out, &mut err))
}

/// [`participants_command`] with the streams given (for tests).
pub fn run(
    config: &Config,
    cmd: ParticipantsCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let path = &config.otp.store.path;
    let mut store = match Store::open(path) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 2;
        }
    };
    let names: Vec<String> = config.conferences.iter().map(|c| c.name.clone()).collect();
    let policy = config.otp.channel_policy();
    let rules = Rules {
        default_country_code: &config.otp.identity.default_country_code,
        conferences: Some(&names),
        channels: Some(&policy.enabled),
    };
    let now = SystemClock.now_ms();
    let result = match cmd {
        ParticipantsCommand::Add(a) => add(&mut store, &rules, a, now, out),
        ParticipantsCommand::List { json } => list(&store, json, out),
        ParticipantsCommand::Remove { who } => remove(&mut store, &who, &rules, out),
        ParticipantsCommand::Import { file, dry_run } => {
            import(&mut store, &rules, &file, dry_run, now, out)
        }
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Refused(lines)) => {
            for l in lines {
                let _ = writeln!(err, "{l}");
            }
            1
        }
        Err(Failure::Store(e)) => {
            let _ = writeln!(err, "{}: {e}", path.display());
            2
        }
    }
}

enum Failure {
    /// The input is wrong: say why (one line per problem).
    Refused(Vec<String>),
    Store(String),
}

impl From<DirectoryError> for Failure {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Storage(s) => Failure::Store(s.detail().to_string()),
            other => Failure::Refused(vec![other.to_string()]),
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::Store(e.to_string())
    }
}

fn add(
    store: &mut Store,
    rules: &Rules<'_>,
    a: AddArgs,
    now: i64,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let input = ParticipantInput {
        username: a.username,
        name: a.name,
        phone: a.phone,
        email: a.email,
        moderator: a.moderator,
        name_prompt: a.name_prompt,
        conferences: a.conferences,
        channels: a.channels,
    };
    let v = validate(&input, rules).map_err(|e| Failure::Refused(vec![e.to_string()]))?;
    let p = store.insert_participant(&v, now)?;
    let _ = writeln!(
        out,
        "added {} ({}, {}) as id {}",
        p.username, p.name, p.phone, p.id
    );
    Ok(())
}

fn list(store: &Store, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let all = store.list_participants()?;
    if json {
        let v: Vec<_> = all.iter().map(Participant::to_json).collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    let rows: Vec<[String; 9]> = all.iter().map(row).collect();
    let header = [
        "ID",
        "USERNAME",
        "NAME",
        "PHONE",
        "EMAIL",
        "MOD",
        "CONFERENCES",
        "CHANNELS",
        "SOURCE",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    Ok(())
}

fn row(p: &Participant) -> [String; 9] {
    [
        p.id.to_string(),
        p.username.clone(),
        p.name.clone(),
        p.phone.clone(),
        p.email.clone().unwrap_or_else(|| "-".into()),
        if p.moderator { "yes" } else { "no" }.into(),
        p.conferences.join(";"),
        if p.channels.is_empty() {
            "(default)".into()
        } else {
            p.channels
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(";")
        },
        format!(
            "{} {}",
            p.source.name(),
            rfc3339(p.created_ms).get(..10).unwrap_or("")
        ),
    ]
}

fn remove(
    store: &mut Store,
    who: &str,
    rules: &Rules<'_>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let found = match who.trim().parse::<i64>() {
        Ok(id) => store.participant_by_id(id)?,
        Err(_) => None,
    };
    let found = match found {
        Some(p) => Some(p),
        None => match store.participant_by_username(who)? {
            Some(p) => Some(p),
            None => match normalize_e164(who, rules.default_country_code) {
                Some(e164) => store.participant_by_phone(&e164)?,
                None => None,
            },
        },
    };
    let p = found.ok_or_else(|| Failure::Refused(vec![format!("no participant `{who}`")]))?;
    store.delete_participant(p.id)?;
    let _ = writeln!(out, "removed {} ({}, {})", p.username, p.name, p.phone);
    Ok(())
}

fn import(
    store: &mut Store,
    rules: &Rules<'_>,
    file: &Path,
    dry_run: bool,
    now: i64,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Refused(vec![format!("{shown}: cannot read: {e}")]))?;
    let lines = parse_import(&text, rules).map_err(|errs| {
        Failure::Refused(errs.into_iter().map(|e| format!("{shown}:{e}")).collect())
    })?;
    let list: Vec<ValidParticipant> = lines.iter().map(|(_, p)| p.clone()).collect();
    if dry_run {
        let mut new = 0;
        for p in &list {
            if store.participant_by_phone(&p.phone)?.is_none() {
                new += 1;
            }
        }
        let _ = writeln!(
            out,
            "{shown}: {} participants valid: {new} would be added, {} updated (dry run, nothing written)",
            list.len(),
            list.len() - new
        );
        return Ok(());
    }
    match store.upsert_participants(&list, now) {
        Ok((added, updated)) => {
            let _ = writeln!(out, "{shown}: {added} added, {updated} updated");
            Ok(())
        }
        Err(e) => {
            // Name the line the conflict comes from.
            let line = match &e {
                DirectoryError::UsernameTaken(u) => lines
                    .iter()
                    .find(|(_, p)| p.username.as_deref() == Some(u.as_str()))
                    .map(|(n, _)| *n),
                DirectoryError::FromConfig(phone) | DirectoryError::PhoneTaken(phone) => lines
                    .iter()
                    .find(|(_, p)| &p.phone == phone)
                    .map(|(n, _)| *n),
                _ => None,
            };
            match (line, e) {
                (_, DirectoryError::Storage(s)) => Err(Failure::Store(s.detail().to_string())),
                (Some(n), e) => Err(Failure::Refused(vec![format!(
                    "{shown}:{n}: {e} (nothing was imported)"
                )])),
                (None, e) => Err(Failure::Refused(vec![format!(
                    "{shown}: {e} (nothing was imported)"
                )])),
            }
        }
    }
}

/// Parses and validates a participants CSV. Returns (line, participant)
/// pairs, or every problem as "LINE: message".
pub fn parse_import(
    text: &str,
    rules: &Rules<'_>,
) -> Result<Vec<(usize, ValidParticipant)>, Vec<String>> {
    let records = parse_csv(text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut out: Vec<(usize, ValidParticipant)> = Vec::new();
    let default_cols: Vec<String> = [
        "name",
        "phone",
        "email",
        "moderator",
        "conferences",
        "channels",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut columns = default_cols.clone();
    let mut first = true;
    for (line, fields) in records {
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if first {
            first = false;
            if fields
                .first()
                .is_some_and(|f| f.trim().eq_ignore_ascii_case("name"))
            {
                columns = fields.iter().map(|f| f.trim().to_lowercase()).collect();
                let known = [
                    "name",
                    "phone",
                    "email",
                    "moderator",
                    "conferences",
                    "channels",
                    "username",
                    "name_prompt",
                ];
                for c in &columns {
                    if !known.contains(&c.as_str()) {
                        errors.push(format!(
                            "{line}: unknown column `{c}` (use {})",
                            known.join(", ")
                        ));
                    }
                }
                if !columns.iter().any(|c| c == "phone") {
                    errors.push(format!("{line}: the header has no `phone` column"));
                }
                continue;
            }
        }
        if fields.len() > columns.len() {
            errors.push(format!(
                "{line}: {} fields, but only {} columns ({})",
                fields.len(),
                columns.len(),
                columns.join(",")
            ));
            continue;
        }
        let get = |name: &str| -> Option<String> {
            columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| fields.get(i))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let split = |s: Option<String>| -> Vec<String> {
            s.map(|s| {
                s.split(';')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
        };
        let moderator = match get("moderator").map(|m| m.to_lowercase()).as_deref() {
            None | Some("no" | "n" | "false" | "0") => false,
            Some("yes" | "y" | "true" | "1" | "x") => true,
            Some(other) => {
                errors.push(format!("{line}: moderator: `{other}` is not yes or no"));
                continue;
            }
        };
        let input = ParticipantInput {
            username: get("username"),
            name: get("name").unwrap_or_default(),
            phone: get("phone").unwrap_or_default(),
            email: get("email"),
            moderator,
            name_prompt: get("name_prompt"),
            conferences: split(get("conferences")),
            channels: split(get("channels")),
        };
        match validate(&input, rules) {
            Ok(p) => {
                if let Some((other, _)) = out.iter().find(|(_, o)| o.phone == p.phone) {
                    errors.push(format!("{line}: phone: {} is on line {other} too", p.phone));
                } else if let Some((other, _)) = out
                    .iter()
                    .find(|(_, o)| o.username.is_some() && o.username == p.username)
                {
                    errors.push(format!(
                        "{line}: username: `{}` is on line {other} too",
                        p.username.clone().unwrap_or_default()
                    ));
                } else {
                    out.push((line, p));
                }
            }
            Err(e) => errors.push(format!("{line}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// RFC 4180 CSV: fields separated by commas, optionally in double quotes
/// (a quote inside doubled), CRLF or LF line ends, newlines allowed inside
/// quotes. Returns each record with the line it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .chars()
        .peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err(format!("{line}: a quote in the middle of a field (put the whole field in quotes and double the quote)")),
            ',' => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                records.push((start_line, std::mem::take(&mut fields)));
                was_quoted = false;
                line += 1;
                start_line = line;
            }
            _ if was_quoted && !c.is_whitespace() => {
                return Err(format!("{line}: text after a closing quote"));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(format!("{start_line}: a quoted field is never closed"));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::temp_dir;

    fn config(dir: &Path) -> Config {
        let toml = format!(
            r#"
[store]
path = "{}/p.db"
[delivery.log]
enabled = true
[[conference]]
name = "board"
numbers = ["100"]
pin = "1234"
"#,
            dir.display()
        );
        Config::parse(&toml, "test.toml", dir).unwrap()
    }

    fn go(c: &Config, cmd: ParticipantsCommand) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(c, cmd, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn add_args(name: &str, phone: &str) -> AddArgs {
        AddArgs {
            name: name.into(),
            phone: phone.into(),
            email: None,
            username: None,
            moderator: false,
            conferences: vec![],
            channels: vec![],
            name_prompt: None,
        }
    }

    #[test]
    fn add_list_remove() {
        let dir = temp_dir("cli");
        let c = config(&dir);
        let (code, out, _) = go(
            &c,
            ParticipantsCommand::Add(add_args("Alice Smith", "201 555 0123")),
        );
        assert_eq!(code, 0);
        assert!(out.contains("alice-smith"), "{out}");
        let (code, _, err) = go(
            &c,
            ParticipantsCommand::Add(add_args("Bob", "+12015550123")),
        );
        assert_eq!(code, 1);
        assert!(
            err.contains("+12015550123 belongs to another participant"),
            "{err}"
        );
        let mut bad = add_args("Bob", "+12015550124");
        bad.conferences = vec!["sales".into()];
        let (code, _, err) = go(&c, ParticipantsCommand::Add(bad));
        assert_eq!(code, 1);
        assert!(err.contains("no conference named `sales`"), "{err}");
        let mut bad = add_args("Bob", "+12015550124");
        bad.channels = vec!["webhook".into()];
        let (code, _, err) = go(&c, ParticipantsCommand::Add(bad));
        assert_eq!(code, 1);
        assert!(err.contains("not configured"), "{err}");

        let (code, out, _) = go(&c, ParticipantsCommand::List { json: false });
        assert_eq!(code, 0);
        assert!(out.starts_with("ID"), "{out}");
        assert!(out.contains("+12015550123"), "{out}");
        let (_, out, _) = go(&c, ParticipantsCommand::List { json: true });
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["username"], "alice-smith");

        let (code, out, _) = go(
            &c,
            ParticipantsCommand::Remove {
                who: "(201) 555-0123".into(),
            },
        );
        assert_eq!(code, 0, "by phone, in any format");
        assert!(out.contains("removed alice-smith"));
        let (code, _, err) = go(
            &c,
            ParticipantsCommand::Remove {
                who: "alice-smith".into(),
            },
        );
        assert_eq!(code, 1);
        assert!(err.contains("no participant"));
    }

    #[test]
    fn import_names_the_bad_lines_and_imports_nothing() {
        let dir = temp_dir("cli-import");
        let c = config(&dir);
        let file = dir.join("people.csv");
        std::fs::write(
            &file,
            "name,phone,email,moderator,conferences,channels\n\
             Alice,+12015550123,alice@example.com,yes,board,log\n\
             Bob,not a number,,no,,\n\
             \"Smith, Carol\",2015550125,,maybe,,\n\
             Dan,+12015550123,,,,\n",
        )
        .unwrap();
        let (code, _, err) = go(
            &c,
            ParticipantsCommand::Import {
                file: file.clone(),
                dry_run: false,
            },
        );
        assert_eq!(code, 1);
        let shown = file.display().to_string();
        assert!(
            err.contains(&format!("{shown}:3: phone: `not a number`")),
            "{err}"
        );
        assert!(
            err.contains(&format!("{shown}:4: moderator: `maybe`")),
            "{err}"
        );
        assert!(
            err.contains(&format!("{shown}:5: phone: +12015550123 is on line 2 too")),
            "{err}"
        );
        let store = Store::open(&c.otp.store.path).unwrap();
        assert!(store.list_participants().unwrap().is_empty());
    }

    #[test]
    fn import_adds_and_updates() {
        let dir = temp_dir("cli-import-ok");
        let c = config(&dir);
        let file = dir.join("people.csv");
        // No header: the default column order.
        std::fs::write(
            &file,
            "Alice,+12015550123,alice@example.com,yes,board,email;log\r\n\
             \"Smith, Carol\",2015550125,,,,\r\n\
             \r\n",
        )
        .unwrap();
        // Email is not configured: refused with the line.
        let (code, _, err) = go(
            &c,
            ParticipantsCommand::Import {
                file: file.clone(),
                dry_run: false,
            },
        );
        assert_eq!(code, 1);
        assert!(
            err.contains(":1: channels: `email` is not configured"),
            "{err}"
        );
        std::fs::write(
            &file,
            "Alice,+12015550123,alice@example.com,yes,board,log\r\n\
             \"Smith, Carol\",2015550125,,,,\r\n",
        )
        .unwrap();
        let (code, out, _) = go(
            &c,
            ParticipantsCommand::Import {
                file: file.clone(),
                dry_run: true,
            },
        );
        assert_eq!(code, 0);
        assert!(out.contains("2 would be added"), "{out}");
        let (code, out, err) = go(
            &c,
            ParticipantsCommand::Import {
                file: file.clone(),
                dry_run: false,
            },
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("2 added, 0 updated"), "{out}");
        let (code, out, _) = go(
            &c,
            ParticipantsCommand::Import {
                file,
                dry_run: false,
            },
        );
        assert_eq!(code, 0);
        assert!(out.contains("0 added, 2 updated"), "{out}");
        let store = Store::open(&c.otp.store.path).unwrap();
        let carol = store.participant_by_phone("+12015550125").unwrap().unwrap();
        assert_eq!(carol.name, "Smith, Carol");
        assert_eq!(carol.username, "smith-carol");
        let alice = store.participant_by_username("alice").unwrap().unwrap();
        assert!(alice.moderator);
        assert_eq!(alice.conferences, vec!["board"]);
    }

    #[test]
    fn csv_parsing() {
        assert_eq!(
            parse_csv("a,\"b \"\"q\"\", c\",\n\"multi\nline\",x").unwrap(),
            vec![
                (1, vec!["a".to_string(), "b \"q\", c".into(), "".into()]),
                (2, vec!["multi\nline".to_string(), "x".into()]),
            ]
        );
        assert!(parse_csv("a,\"open").unwrap_err().starts_with("1:"));
        assert!(parse_csv("ok\na\"b").unwrap_err().starts_with("2:"));
    }
}
