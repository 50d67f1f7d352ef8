//! A caller cannot write a log line of its own. The From user is
//! percent-decoded into the caller ID that "wrong code" lines carry, so a
//! From of `sip:x%0a<fake line>@...` would, written raw, put a forged
//! "wrong code from <victim>" line in the log for fail2ban-style tools to
//! act on. The real binary, text and JSON formats.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dtmf::{send_slots, RtpStream};
use common::process::{pinbridge_config, Pinbridge, TempDir};
use common::rtp::RtpRecorder;
use common::ua::{phone_offer, InviteOptions, TestUa};

/// What the forged line would say: a lockout-worthy failure from someone
/// else's number and address.
const FORGED: &str =
    "FORGED WARN pinbridge::server::call: wrong code caller=+15550100 source=198.51.100.7";

/// Calls with the forging From, keys a wrong PIN, and returns stderr once
/// the failure has been logged.
async fn call_with_forging_caller(format: &str) -> String {
    let dir = TempDir::new("log-forging");
    let mut pb = Pinbridge::start_with_config(&dir, &[("CONFERENCE_PIN", "1234")], |port| {
        format!(
            "{}\n[log]\nformat = \"{format}\"\n",
            pinbridge_config(port, (33000, 33999), &[])
        )
    })
    .await;
    let mut ua = TestUa::udp(pb.sip).await.expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let mut opts = InviteOptions::new("1000").with_sdp(phone_offer(rec.port()));
    let escaped = FORGED.replace(' ', "%20").replace(':', "%3a");
    opts.from_user = format!("x%0d%0a{escaped}%e2%80%a8{escaped}");
    let (mut call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
    let media = SocketAddr::new(answer.addr, answer.port);
    let mut stream = RtpStream::new(0, 0x10f0_0001);
    let mut slots = stream.silence(200);
    slots.extend(stream.rfc4733("9999#", 100, 100));
    send_slots(&rec, media, slots).await.expect("send keys");
    assert!(
        pb.stderr.wait_for("wrong code", Duration::from_secs(10)),
        "the wrong code is logged; stderr:\n{}",
        pb.stderr.text()
    );
    let _ = ua.bye(&mut call).await;
    pb.proc.signal("TERM");
    let _ = pb.proc.wait_exit_async(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    pb.stderr.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_break_in_the_caller_id_cannot_forge_a_text_log_line() {
    let log = call_with_forging_caller("text").await;
    let wrong: Vec<&str> = log.lines().filter(|l| l.contains("wrong code")).collect();
    assert!(!wrong.is_empty(), "{log}");
    for line in log.lines() {
        assert!(
            !line.starts_with("FORGED"),
            "a caller wrote its own log line:\n{line}\n\nwhole log:\n{log}"
        );
    }
    // The caller ID is still there, escaped, for the operator to read.
    assert!(
        wrong.iter().any(|l| l.contains(r"x\r\nFORGED WARN")),
        "the escaped caller ID is in the line: {wrong:?}"
    );
    assert!(
        wrong.iter().any(|l| l.contains(r"\u{2028}FORGED")),
        "U+2028 is escaped too: {wrong:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_log_line_is_one_json_object() {
    let log = call_with_forging_caller("json").await;
    let mut saw_wrong_code = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}\n\n{log}"));
        if v["fields"]["message"] == "wrong code" {
            saw_wrong_code = true;
            let caller = v["fields"]["caller"].as_str().unwrap_or_default();
            assert!(caller.contains("\r\nFORGED"), "{caller:?}");
        }
    }
    assert!(saw_wrong_code, "{log}");
}
