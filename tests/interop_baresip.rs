//! baresip (a real softphone, headless) calls the built `pinbridge`
//! binary, and baresip's recording of what it received holds our prompts,
//! code for code:
//!
//! - the keypad test line: the call is established, pinbridge plays
//!   welcome + goodbye and hangs up;
//! - the conference: baresip keys the PIN with `sndcode` (RFC 4733, which
//!   it sends because pinbridge's answer has telephone-event), hears
//!   "joining" and "you are the only person", stays a few seconds and hangs
//!   up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::g711;
use common::peers;
use common::process::{
    free_port, free_port_block, interop_dir, pinbridge_config, write_tone_wav, Captured,
    ChildGuard, Pinbridge, TempDir,
};
use common::server::prompt_samples;
use pinbridge::ivr::prompts::PromptId;

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
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

/// Seconds of 20 ms frames whose RMS is above about -40 dBFS.
fn active_secs(samples: &[i16]) -> f64 {
    let frames = samples
        .chunks(160)
        .filter(|f| {
            let energy: f64 = f.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (energy / f.len() as f64).sqrt() > 330.0
        })
        .count();
    frames as f64 * 0.020
}

/// One headless baresip run, driven step by step by baresip_ctrl.py.
struct BaresipRun {
    /// baresip_ctrl.py's exit status (None: it did not finish in time).
    status: Option<ExitStatus>,
    /// Its stdout: the responses and every event, as JSON lines.
    events: String,
    errors: String,
    /// From the first step to the end of the control script.
    elapsed: Duration,
    /// baresip exited after the steps (they end with `quit`).
    exited: bool,
    work: PathBuf,
    log: PathBuf,
}

impl BaresipRun {
    /// Starts baresip as a caller (its microphone a 300 Hz tone longer than
    /// any call: baresip ends a call when the file runs out), runs `steps`
    /// (which should end with `quit`), and waits for both to finish.
    fn run(python: &Path, dir: &TempDir, steps: &[String], timeout: Duration) -> BaresipRun {
        let caller_wav = dir.join("caller.wav");
        write_tone_wav(&caller_wav, 60.0, 300.0);
        let work = dir.join("bc");
        let ctrl_port = free_port();
        let rtp = free_port_block(20);
        let log_path = dir.join("baresip.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let baresip = Command::new("sh")
            .arg(interop_dir().join("baresip/baresip_caller.sh"))
            .arg(&work)
            .args(["-t", "60"])
            .env("SIP_PORT", free_port().to_string())
            .env("CTRL_PORT", ctrl_port.to_string())
            .env("RTP_PORTS", format!("{rtp}-{}", rtp + 19))
            .env("AUDIO", &caller_wav)
            .env("CALLER_USER", "caller")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start baresip");
        // baresip_caller.sh execs baresip: this PID is baresip's.
        let mut baresip = ChildGuard::new("baresip", baresip);

        let started = Instant::now();
        let mut ctrl_cmd = Command::new(python);
        ctrl_cmd
            .arg(interop_dir().join("tools/baresip_ctrl.py"))
            .args(["--port", &ctrl_port.to_string()])
            .args(steps)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ctrl_child = ctrl_cmd.spawn().expect("run baresip_ctrl.py");
        let ctrl_out = Captured::spawn_reader(ctrl_child.stdout.take().expect("stdout"));
        let ctrl_err = Captured::spawn_reader(ctrl_child.stderr.take().expect("stderr"));
        let mut ctrl = ChildGuard::new("baresip_ctrl", ctrl_child);
        let status = ctrl.wait_exit(timeout);
        let elapsed = started.elapsed();
        // 'quit' makes baresip finish its recordings and exit.
        let exited = baresip.wait_exit(Duration::from_secs(5)).is_some();
        std::thread::sleep(Duration::from_millis(100));
        BaresipRun {
            status,
            events: ctrl_out.text(),
            errors: ctrl_err.text(),
            elapsed,
            exited,
            work,
            log: log_path,
        }
    }

    fn diagnose(&self, server: &Pinbridge) -> String {
        format!(
            "--- baresip_ctrl.py stdout:\n{}\n--- stderr:\n{}\n--- baresip log:\n{}\n--- pinbridge stderr:\n{}",
            self.events,
            self.errors,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            strip_ansi(&server.stderr.text())
        )
    }

    /// Asserts that the control script succeeded, that these events came,
    /// and that baresip exited.
    fn assert_ok(&self, server: &Pinbridge, events: &[&str]) {
        assert!(
            self.status.is_some_and(|s| s.success()),
            "baresip_ctrl.py: {:?}\n{}",
            self.status,
            self.diagnose(server)
        );
        for ev in events {
            assert!(
                self.events.contains(&format!("\"type\": \"{ev}\"")),
                "{ev} event\n{}",
                self.diagnose(server)
            );
        }
        assert!(self.exited, "baresip exits after quit");
    }

    /// What baresip heard: its sndfile module records the decoded stream.
    fn heard(&self) -> Vec<i16> {
        let rec_dir = self.work.join("rec");
        let dec = std::fs::read_dir(&rec_dir)
            .expect("baresip recording dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .unwrap_or_else(|| panic!("no dump-*-dec.wav in {}", rec_dir.display()));
        let mut reader = hound::WavReader::open(&dec).expect("open the recording");
        let spec = reader.spec();
        assert_eq!((spec.sample_rate, spec.channels), (8000, 1), "{spec:?}");
        reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect()
    }
}

/// Where `piece` (mu-law codes) starts in `heard` compared as mu-law codes
/// too: re-encoding the recording, because baresip's decoder maps the zero
/// code to 2 rather than 0; any other difference is a wrong code.
fn find_codes(heard: &[i16], piece: &[u8]) -> Option<usize> {
    let heard_codes = g711::encode_ulaw(heard);
    heard_codes.windows(piece.len()).position(|w| w == piece)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_call_hears_welcome_and_goodbye_then_gets_bye() {
    let Some(_baresip) = peers::require_tool("baresip") else {
        return;
    };
    let Some(python) = peers::require_tool("python3") else {
        return;
    };
    let dir = TempDir::new("baresip");
    // The keypad test line: welcome, a second of silence, goodbye, BYE.
    let mut server = Pinbridge::start_with_config(&dir, &[("CONFERENCE_PIN", "1234")], |port| {
        pinbridge_config(port, (20000, 29999), &[])
    })
    .await;
    let steps = [
        format!("dial sip:*98@{}", server.sip),
        "wait CALL_ESTABLISHED 10".into(),
        "wait CALL_CLOSED 20".into(),
        "quit".into(),
    ];
    let run = tokio::task::block_in_place(|| {
        BaresipRun::run(&python, &dir, &steps, Duration::from_secs(40))
    });
    run.assert_ok(&server, &["CALL_ESTABLISHED", "CALL_CLOSED"]);
    let elapsed = run.elapsed;
    assert!(
        elapsed < Duration::from_secs(10),
        "pinbridge hangs up after welcome + goodbye (about 3 s), took {elapsed:?}"
    );

    // The server's side: the call was logged and ended by our hang-up.
    let log = strip_ansi(&server.stderr.text());
    assert!(
        log.contains("incoming call") && log.contains("dialed=\"*98\""),
        "pinbridge logs the call:\n{log}"
    );
    assert!(
        log.contains("hanging up: call flow finished"),
        "pinbridge ended the call itself:\n{log}"
    );

    let heard = run.heard();
    let welcome = prompt_samples(PromptId::Welcome);
    let goodbye = prompt_samples(PromptId::Goodbye);
    let prompts_secs = (welcome.len() + goodbye.len()) as f64 / 8000.0;
    let heard_secs = heard.len() as f64 / 8000.0;
    eprintln!(
        "baresip recorded {heard_secs:.2} s ({:.2} s active); prompts {prompts_secs:.2} s ({:.2} s active)",
        active_secs(&heard),
        active_secs(&welcome) + active_secs(&goodbye)
    );
    assert!(
        heard_secs > prompts_secs * 0.8 && heard_secs < prompts_secs + 2.0,
        "recording of {heard_secs:.2} s for {prompts_secs:.2} s of prompts"
    );
    assert!(
        active_secs(&heard) >= 0.8 * (active_secs(&welcome) + active_secs(&goodbye)),
        "the recording is not silent: {:.2} s active",
        active_secs(&heard)
    );
    // A stretch from the middle of each prompt arrives exactly: the same
    // G.711 mu-law codes (baresip offers PCMU first).
    for (name, prompt) in [("welcome", &welcome), ("goodbye", &goodbye)] {
        let mid = prompt.len() / 2;
        let piece = g711::encode_ulaw(&prompt[mid - 800..mid + 800]);
        assert!(
            find_codes(&heard, &piece).is_some(),
            "0.2 s from the middle of the {name} prompt is in baresip's recording, code for code"
        );
    }
    server.proc.signal("TERM");
    assert!(server
        .proc
        .wait_exit_async(Duration::from_secs(5))
        .await
        .is_some_and(|s| s.success()));
}

/// baresip joins the conference: it dials a conference number, keys the
/// PIN with `sndcode 1234#` once the call is up (as RFC 4733 events:
/// pinbridge's answer offers telephone-event), stays a few seconds and
/// hangs up. pinbridge must put the call in the room, and baresip must have
/// heard "joining the conference now" and "you are the only person in this
/// conference", code for code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_keys_the_pin_and_joins_the_conference() {
    let Some(_baresip) = peers::require_tool("baresip") else {
        return;
    };
    let Some(python) = peers::require_tool("python3") else {
        return;
    };
    let dir = TempDir::new("baresip-conf");
    let mut server = Pinbridge::start_with_config(&dir, &[("CONFERENCE_PIN", "1234")], |port| {
        pinbridge_config(port, (20000, 29999), &[])
    })
    .await;
    // The keys cut the welcome short; then "joining" (2.7 s) and "only
    // person" (2.8 s) play; 8 s leaves room for both and the keys.
    let steps = [
        format!("dial sip:100@{}", server.sip),
        "wait CALL_ESTABLISHED 10".into(),
        "sleep 0.5".into(),
        "sndcode 1234#".into(),
        "sleep 8".into(),
        "hangup".into(),
        "wait CALL_CLOSED 5".into(),
        "quit".into(),
    ];
    let run = tokio::task::block_in_place(|| {
        BaresipRun::run(&python, &dir, &steps, Duration::from_secs(40))
    });
    run.assert_ok(&server, &["CALL_ESTABLISHED", "CALL_CLOSED"]);

    // pinbridge accepted the code and put the call in the room; the call
    // ended by baresip's BYE.
    let log = strip_ansi(&server.stderr.text());
    let call_id = log
        .lines()
        .find(|l| l.contains("incoming call") && l.contains("dialed=\"100\""))
        .and_then(|l| log_field(l, "call_id"))
        .unwrap_or_else(|| panic!("pinbridge logs the call:\n{}", run.diagnose(&server)))
        .to_string();
    let logged = |what: &str| {
        log.lines()
            .position(|l| l.contains(what) && log_field(l, "call_id") == Some(call_id.as_str()))
    };
    let (accepted, joined, ended) = (
        logged("code accepted"),
        logged(" joined "),
        logged("reason=RemoteBye"),
    );
    assert!(
        accepted.is_some() && joined.is_some() && ended.is_some() && accepted < joined,
        "code accepted ({accepted:?}), joined ({joined:?}), ended by baresip's BYE ({ended:?}):\n{}",
        run.diagnose(&server)
    );

    // baresip heard "joining" and then "only person", every code of both.
    let heard = run.heard();
    let joining = g711::encode_ulaw(&prompt_samples(PromptId::Joining));
    let only = g711::encode_ulaw(&prompt_samples(PromptId::OnlyPerson));
    let at_joining = find_codes(&heard, &joining);
    let at_only = find_codes(&heard, &only);
    eprintln!(
        "baresip recorded {:.2} s: joining at {at_joining:?}, only person at {at_only:?}",
        heard.len() as f64 / 8000.0
    );
    assert!(
        at_joining.is_some() && at_only.is_some() && at_joining < at_only,
        "baresip's recording holds 'joining' ({at_joining:?}) then 'only person' ({at_only:?}), code for code"
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
    let value = line[start..].split(' ').next()?;
    Some(value.trim_matches('"'))
}
