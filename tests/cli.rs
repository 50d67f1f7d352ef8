//! The built `pinbridge` binary: `check-config` exit codes and messages,
//! the generated PIN on stdout, and graceful shutdown on SIGTERM/SIGINT
//! (every call gets a BYE, exit status 0).

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::process::{free_port, pinbridge_config, write_tone_wav, Pinbridge, TempDir};
use common::rtp::RtpRecorder;
use common::ua::{phone_offer, InviteOptions, TestUa};
use pinbridge::config::DEFAULT_CONFIG;

fn check_config(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pinbridge"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run pinbridge check-config")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_accepts_the_embedded_default() {
    let dir = TempDir::new("cli-default");
    let path = dir.join("pinbridge.toml");
    std::fs::write(&path, DEFAULT_CONFIG).expect("write config");
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Each broken file must fail with a message `file:line: key: ...`
/// (syntax errors have no key: `file:line: ...`).
#[test]
fn check_config_rejects_broken_files_naming_file_line_and_key() {
    let cases: &[(&str, &str, usize, Option<&str>)] = &[
        (
            "unknown key",
            "[sip]\nlisten = \"127.0.0.1:5060\"\nlisen = \"127.0.0.1:5070\"\n\n[[conference]]\nname = \"main\"\n",
            3,
            Some("sip.lisen"),
        ),
        (
            "bad listen address",
            "[sip]\n\nlisten = \"127.0.0.1\"\n\n[[conference]]\nname = \"main\"\n",
            3,
            Some("sip.listen"),
        ),
        (
            "bad codec in an array",
            "[rtp]\ncodecs = [\n  \"PCMU\",\n  \"G729\",\n]\n\n[[conference]]\nname = \"main\"\n",
            4,
            Some("rtp.codecs[1]"),
        ),
        (
            "TOML syntax error",
            "[sip]\nmax_calls = 10\nlisten = \"127.0.0.1:5060\n\n[[conference]]\nname = \"main\"\n",
            3,
            None,
        ),
    ];
    let dir = TempDir::new("cli-broken");
    let mut failures = Vec::new();
    for (i, (what, body, line, key)) in cases.iter().enumerate() {
        let path = dir.join(&format!("broken{i}.toml"));
        std::fs::write(&path, body).expect("write config");
        let out = check_config(&path);
        let stderr = text(&out.stderr);
        let prefix = match key {
            Some(k) => format!("{}:{line}: {k}: ", path.display()),
            None => format!("{}:{line}: ", path.display()),
        };
        if out.status.success() {
            failures.push(format!("{what}: exit status 0 for a broken file"));
        }
        if !stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.len() > prefix.len())
        {
            failures.push(format!(
                "{what}: stderr should contain a line starting `{prefix}` and saying what \
                 is wrong; got:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `pinbridge run --sip ... --rtp-ports 31000-31999` on the embedded
/// default, with or without CONFERENCE_PIN.
async fn run_default(env: &[(&str, &str)]) -> Pinbridge {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let sip = SocketAddr::from(([127, 0, 0, 1], port));
        let sip_arg = sip.to_string();
        let mut pb = Pinbridge::spawn(
            &["run", "--sip", &sip_arg, "--rtp-ports", "31000-31999"],
            env,
            sip,
        );
        match pb.wait_ready(Duration::from_secs(10)).await {
            Ok(()) => return pb,
            Err(e) => last = e,
        }
    }
    panic!("pinbridge run did not start: {last}");
}

/// Terminates the server and checks a clean exit.
async fn terminate(pb: &mut Pinbridge) {
    pb.proc.signal("TERM");
    let status = pb.proc.wait_exit_async(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}\nstderr:\n{}",
        pb.stderr.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_a_generated_six_digit_pin_without_conference_pin() {
    let mut pb = run_default(&[]).await;
    // Printed before the server binds, so it is there once OPTIONS works;
    // allow the reader thread a moment.
    pb.stdout.wait_for("PIN", Duration::from_secs(2));
    let stdout = pb.stdout.text();
    let pin = stdout.split("PIN ").nth(1).map(|rest| {
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    });
    assert!(
        pin.as_ref().is_some_and(|p| p.len() == 6),
        "a 6-digit PIN on stdout; got:\n{stdout}"
    );
    let pin = pin.unwrap_or_default();
    terminate(&mut pb).await;
    assert!(
        !pb.stderr.text().contains(&pin),
        "the PIN must not reach the log (stderr):\n{}",
        pb.stderr.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_does_not_print_the_pin_when_conference_pin_is_set() {
    let mut pb = run_default(&[("CONFERENCE_PIN", "1234")]).await;
    terminate(&mut pb).await;
    // Let the reader threads see EOF.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stdout = pb.stdout.text();
    assert!(
        !stdout.contains("PIN") && !stdout.contains("1234"),
        "no PIN on stdout when CONFERENCE_PIN is set; got:\n{stdout}"
    );
}

/// A call is up (the 20 s welcome is playing) when the signal arrives: the
/// caller gets a BYE, answers it, and the process exits with status 0.
async fn signal_during_call_hangs_up_and_exits_cleanly(sig: &str) {
    let dir = TempDir::new("cli-signal");
    let welcome = dir.join("welcome20s.wav");
    write_tone_wav(&welcome, 20.0, 440.0);
    let mut pb = Pinbridge::start_with_config(&dir, &[("CONFERENCE_PIN", "1234")], |port| {
        pinbridge_config(port, (31000, 31999), &[("welcome", &welcome)])
    })
    .await;

    let mut ua = TestUa::udp(pb.sip).await.expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let opts = InviteOptions::new("1000").with_sdp(phone_offer(rec.port()));
    let (call, _) = ua.answered_call(opts, Duration::from_secs(5)).await;
    assert!(
        rec.wait_for_packets(10, Duration::from_secs(3)).await,
        "the welcome prompt is streaming"
    );

    pb.proc.signal(sig);
    let bye = ua
        .recv_request(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("BYE after SIG{sig}: {e}\nstderr:\n{}", pb.stderr.text()));
    assert_eq!(bye.method(), Some("BYE"), "{bye}");
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()));
    ua.respond(&bye, 200, "OK", &[], None)
        .await
        .expect("200 to BYE");
    let status = pb.proc.wait_exit_async(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status after SIG{sig}: {status:?}\nstderr:\n{}",
        pb.stderr.text()
    );
    assert!(
        rec.wait_for_silence(Duration::from_millis(300), Duration::from_secs(2))
            .await,
        "RTP stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_call_sends_bye_and_exits_zero() {
    signal_during_call_hangs_up_and_exits_cleanly("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_call_sends_bye_and_exits_zero() {
    signal_during_call_hangs_up_and_exits_cleanly("INT").await;
}
