//! SIPp calls the built `pinbridge` binary with the caller scenarios in
//! tests/interop/sipp (unchanged from the interop kit): speech and RFC 4733
//! DTMF from pcaps, in-band DTMF from a pcap, the same media via
//! rtp_stream (also over TCP), and a small load run. The welcome prompt is
//! 20 s long so the caller's own BYE (after ~8 s) ends each call, and
//! SIPp's exit code says whether every call went as its scenario expects.
//!
//! play_pcap_audio sends through a raw socket: without root (or
//! CAP_NET_RAW on sipp) those scenarios are skipped loudly, or fail when
//! PINBRIDGE_REQUIRE_PEERS=1.

mod common;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers;
use common::process::{
    free_port, free_port_block, interop_dir, pinbridge_config, write_tone_wav, ChildGuard,
    Pinbridge, TempDir,
};

/// Bound on a whole SIPp run (its own -timeout is 30 s).
const SIPP_WAIT: Duration = Duration::from_secs(45);

fn scenario_dir() -> PathBuf {
    interop_dir().join("sipp")
}

/// Can a child open raw sockets (play_pcap_audio)? Root with CAP_NET_RAW
/// in the effective set, or sipp itself carrying the file capability.
fn can_play_pcap(sipp: &Path) -> bool {
    const CAP_NET_RAW: u32 = 13;
    let ours = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0);
    let file_cap = || {
        peers::find_tool("getcap")
            .and_then(|getcap| Command::new(getcap).arg(sipp).output().ok())
            .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("cap_net_raw"))
    };
    ours || file_cap()
}

/// Loud skip (or failure in CI) for scenarios that need raw sockets.
fn skip_without_raw_sockets(sipp: &Path) -> bool {
    if can_play_pcap(sipp) {
        return false;
    }
    let thread = std::thread::current();
    let message = format!(
        "SKIPPED: {} needs raw sockets for SIPp's play_pcap_audio: run as root or \
         `setcap cap_net_raw+ep {}`",
        thread.name().unwrap_or("this test"),
        sipp.display()
    );
    if peers::peers_required() {
        panic!("{message} (PINBRIDGE_REQUIRE_PEERS=1)");
    }
    let bar = "=".repeat(72);
    let _ = writeln!(std::io::stderr(), "\n{bar}\n{message}\n{bar}\n");
    true
}

/// pinbridge with a 20 s welcome prompt, so callers hang up first.
async fn start_pinbridge(dir: &TempDir) -> Pinbridge {
    let welcome = dir.join("welcome20s.wav");
    write_tone_wav(&welcome, 20.0, 440.0);
    Pinbridge::start_with_config(dir, &[("CONFERENCE_PIN", "1234")], |port| {
        pinbridge_config(port, (20000, 29999), &[("welcome", &welcome)])
    })
    .await
}

struct SippResult {
    code: Option<i32>,
    errors: String,
    screen: String,
    stats: String,
}

impl SippResult {
    fn describe(&self, server: &Pinbridge) -> String {
        let tail: Vec<&str> = self.screen.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "SIPp exit code {:?}\n--- SIPp error file:\n{}\n--- SIPp screen (tail):\n{}\n--- pinbridge stderr:\n{}",
            self.code,
            self.errors,
            tail.join("\n"),
            server.stderr.text()
        )
    }
}

/// Runs a scenario from the scenario directory (pcap paths are relative)
/// against `server` with free ports; retries with new ports if SIPp
/// cannot bind (exit 254/255 before any call).
fn run_sipp(
    sipp: &Path,
    dir: &TempDir,
    scenario: &str,
    server: &Pinbridge,
    extra: &[&str],
) -> SippResult {
    for attempt in 0..3 {
        let sip_port = free_port();
        // SIPp binds -mp and -mp+2 (RTP and its "video" pair), RTCP +1.
        let media_port = free_port_block(4);
        let errors = dir.join(&format!("sipp-{attempt}-errors.log"));
        let stats = dir.join(&format!("sipp-{attempt}-stats.csv"));
        let screen = dir.join(&format!("sipp-{attempt}-screen.txt"));
        let mut cmd = Command::new(sipp);
        cmd.current_dir(scenario_dir())
            .args(["-sf", scenario, "-s", "1000"])
            .args(["-i", "127.0.0.1", "-p", &sip_port.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string()])
            .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .arg("-trace_stat")
            .arg("-stf")
            .arg(&stats)
            .args(extra)
            .arg(server.sip.to_string())
            .stdin(Stdio::null())
            .stdout(File::create(&screen).expect("screen file"))
            .stderr(Stdio::from(
                File::options()
                    .append(true)
                    .open(&screen)
                    .expect("screen file"),
            ));
        let started = Instant::now();
        let mut child = ChildGuard::new("sipp", cmd.spawn().expect("spawn sipp"));
        let code = child.wait_exit(SIPP_WAIT).and_then(|s| s.code());
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let result = SippResult {
            code,
            errors: read(errors),
            screen: String::from_utf8_lossy(&std::fs::read(&screen).unwrap_or_default())
                .into_owned(),
            stats: read(stats),
        };
        eprintln!(
            "sipp {scenario} {extra:?}: exit {code:?} after {:?}",
            started.elapsed()
        );
        let bind_failed = matches!(code, Some(254) | Some(255))
            && result.screen.to_ascii_lowercase().contains("bind");
        if !bind_failed {
            return result;
        }
    }
    panic!("SIPp could not bind its ports three times");
}

/// Reads a cumulative counter, e.g. `SuccessfulCall(C)`, from the last
/// line of SIPp's statistics file.
fn stat(stats: &str, column: &str) -> Option<u64> {
    let mut lines = stats.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let i = header.iter().position(|h| *h == column)?;
    last.get(i)?.trim().parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One single-call scenario: SIPp must exit 0, and pinbridge must have
/// seen the call end by the caller's BYE.
async fn single_call(scenario: &str, needs_raw: bool, tcp: bool) {
    let Some(sipp) = peers::require_tool("sipp") else {
        return;
    };
    if needs_raw && skip_without_raw_sockets(&sipp) {
        return;
    }
    let dir = TempDir::new("sipp");
    let mut server = start_pinbridge(&dir).await;
    let mut extra = vec!["-m", "1", "-l", "1"];
    if tcp {
        extra.extend(["-t", "t1"]);
    }
    let r = tokio::task::block_in_place(|| run_sipp(&sipp, &dir, scenario, &server, &extra));
    assert_eq!(r.code, Some(0), "{}", r.describe(&server));
    assert_eq!(
        stat(&r.stats, "SuccessfulCall(C)"),
        Some(1),
        "{}",
        r.describe(&server)
    );
    let log = strip_ansi(&server.stderr.text());
    assert!(
        log.contains("incoming call") && log.contains("reason=RemoteBye"),
        "pinbridge logged the call and its end by the caller's BYE:\n{log}"
    );
    server.proc.signal("TERM");
    assert!(
        server
            .proc
            .wait_exit_async(Duration::from_secs(5))
            .await
            .is_some_and(|s| s.success()),
        "pinbridge exits cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_pcap_speech_and_rfc4733_dtmf() {
    single_call("uac_ivr_pcap.xml", true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_pcap_inband_dtmf() {
    single_call("uac_ivr_inband.xml", true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_rtp_stream_over_udp() {
    single_call("uac_ivr_rtpstream.xml", false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_rtp_stream_over_tcp() {
    single_call("uac_ivr_rtpstream.xml", false, true).await;
}

/// 30 calls at 10 per second (about 16 at once): none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_small_load_run_has_no_failed_calls() {
    let Some(sipp) = peers::require_tool("sipp") else {
        return;
    };
    if skip_without_raw_sockets(&sipp) {
        return;
    }
    let dir = TempDir::new("sipp-load");
    let mut server = start_pinbridge(&dir).await;
    let extra = ["-r", "10", "-m", "30", "-l", "60", "-fd", "1"];
    let r =
        tokio::task::block_in_place(|| run_sipp(&sipp, &dir, "uac_ivr_load.xml", &server, &extra));
    assert_eq!(r.code, Some(0), "{}", r.describe(&server));
    assert_eq!(
        stat(&r.stats, "SuccessfulCall(C)"),
        Some(30),
        "{}",
        r.describe(&server)
    );
    assert_eq!(
        stat(&r.stats, "FailedCall(C)"),
        Some(0),
        "{}",
        r.describe(&server)
    );
    let log = strip_ansi(&server.stderr.text());
    assert_eq!(
        log.matches("incoming call").count(),
        30,
        "pinbridge saw 30 calls:\n{log}"
    );
    assert_eq!(
        log.matches("reason=RemoteBye").count(),
        30,
        "all 30 ended by the caller's BYE:\n{log}"
    );
    server.proc.signal("TERM");
    assert!(server
        .proc
        .wait_exit_async(Duration::from_secs(5))
        .await
        .is_some_and(|s| s.success()));
}

/// The value of `key=` in a text log line (up to the next space, quotes
/// removed).
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = rest.split(' ').next()?;
    Some(value.trim_matches('"'))
}

/// SIPp joins the conference: speech from a pcap, the PIN "1234#" as RFC
/// 4733 events from a pcap, about 8 s in the conference, then its BYE.
/// pinbridge must accept the code and put the call in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_keys_the_pin_by_rfc4733_and_stays_in_the_conference() {
    let Some(sipp) = peers::require_tool("sipp") else {
        return;
    };
    if skip_without_raw_sockets(&sipp) {
        return;
    }
    let dir = TempDir::new("sipp-conf");
    // The shipped prompts: welcome, "enter the code" (the keys cut it
    // short), "joining", then the room.
    let mut server = Pinbridge::start_with_config(&dir, &[("CONFERENCE_PIN", "1234")], |port| {
        pinbridge_config(port, (20000, 29999), &[])
    })
    .await;
    let extra = ["-m", "1", "-l", "1"];
    let r = tokio::task::block_in_place(|| {
        run_sipp(&sipp, &dir, "uac_conference_join.xml", &server, &extra)
    });
    assert_eq!(r.code, Some(0), "{}", r.describe(&server));
    assert_eq!(
        stat(&r.stats, "SuccessfulCall(C)"),
        Some(1),
        "{}",
        r.describe(&server)
    );
    let log = strip_ansi(&server.stderr.text());
    let lines: Vec<&str> = log.lines().collect();
    let call_id = lines
        .iter()
        .find(|l| l.contains("incoming call"))
        .and_then(|l| log_field(l, "call_id"))
        .unwrap_or_else(|| panic!("pinbridge logged the incoming call:\n{log}"))
        .to_string();
    let position = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what) && log_field(l, "call_id") == Some(call_id.as_str()))
    };
    let accepted = position("code accepted");
    let joined = position(" joined ");
    let ended = position("reason=RemoteBye");
    assert!(
        accepted.is_some() && joined.is_some() && ended.is_some(),
        "pinbridge accepted the code ({accepted:?}), put call {call_id} in the room ({joined:?}) \
         and saw it end by SIPp's BYE ({ended:?}):\n{log}"
    );
    assert!(
        accepted < joined && joined < ended,
        "code accepted, then joined, then ended:\n{log}"
    );
    for i in [accepted, joined, ended].into_iter().flatten() {
        eprintln!("pinbridge: {}", lines[i]);
    }
    server.proc.signal("TERM");
    assert!(
        server
            .proc
            .wait_exit_async(Duration::from_secs(5))
            .await
            .is_some_and(|s| s.success()),
        "pinbridge exits cleanly"
    );
}
