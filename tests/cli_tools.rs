//! The offline tools through the built `pinbridge` binary: what each
//! prints and how it exits (`check-config` is in tests/cli.rs, the
//! detector's accuracy in tests/dtmf_fixtures.rs).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::process::TempDir;

fn pinbridge(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinbridge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pinbridge");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait for pinbridge")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn hash_pin_prints_an_argon2_hash_of_the_argument_or_of_stdin() {
    for (args, stdin) in [
        (&["hash-pin", "4321"][..], None),
        (&["hash-pin"][..], Some("4321\n")),
    ] {
        let out = pinbridge(args, stdin);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.starts_with("$argon2"), "{stdout}");
        assert!(!stdout.contains("4321"), "the PIN itself is not printed");
    }
}

#[test]
fn detect_dtmf_prints_one_line_per_digit_and_exits_2_on_unreadable_input() {
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dtmf/baresip_1234hash.pcapng");
    let out = pinbridge(&["detect-dtmf", &capture.display().to_string()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let digits: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "`<start_ms> <digit> <method>`: {l}");
            assert!(f[0].parse::<u64>().is_ok(), "{l}");
            (f[1], f[2])
        })
        .collect();
    let keys: Vec<&str> = digits.iter().map(|d| d.0).collect();
    assert_eq!(keys, ["1", "2", "3", "4", "#"], "{stdout}");
    assert!(digits.iter().all(|d| d.1 == "rfc4733"), "{stdout}");

    let dir = TempDir::new("cli-dtmf");
    let missing = dir.join("missing.wav");
    let out = pinbridge(&["detect-dtmf", &missing.display().to_string()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );

    let junk = dir.join("junk.wav");
    std::fs::write(&junk, b"not audio").expect("write");
    let out = pinbridge(&["detect-dtmf", &junk.display().to_string()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn participants_add_list_and_remove_on_the_configured_database() {
    let dir = TempDir::new("cli-participants");
    let config = dir.join("pinbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[delivery.log]\nenabled = true\n\
             [[conference]]\nname = \"board\"\nnumbers = [\"100\"]\npin = \"1234\"\n",
            dir.join("p.db").display()
        ),
    )
    .expect("write config");
    let config = config.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["participants", "--config", config.as_str()];
        all.extend_from_slice(args);
        pinbridge(&all, None)
    };

    let out = run(&["add", "--name", "Alice Smith", "--phone", "201 555 0123"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("added alice-smith (Alice Smith, +12015550123) as id "));

    let out = run(&[
        "add",
        "--name",
        "Bob",
        "--phone",
        "+12015550124",
        "--conference",
        "sales",
    ]);
    assert_eq!(out.status.code(), Some(1), "refused input exits 1");
    assert!(text(&out.stderr).contains("no conference named `sales`"));

    let out = run(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(list[0]["username"], "alice-smith");
    assert_eq!(list[0]["phone"], "+12015550123");
    assert_eq!(list[0]["source"], "api");

    let out = run(&["remove", "alice-smith"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "removed alice-smith (Alice Smith, +12015550123)\n"
    );

    let out = pinbridge(
        &[
            "participants",
            "--config",
            &dir.join("missing.toml").display().to_string(),
            "list",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "an unreadable config exits 1");
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );
}
