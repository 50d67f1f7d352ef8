//! baresip (a real softphone, headless) calls the built `pinbridge`
//! binary: the call is established, pinbridge plays welcome + goodbye and
//! hangs up, and baresip's recording of what it received holds our
//! prompts, code for code.

mod common;

use std::process::{Command, Stdio};
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

    // The caller's microphone: a WAV longer than the call (baresip ends
    // the call when the file runs out).
    let caller_wav = dir.join("caller.wav");
    write_tone_wav(&caller_wav, 60.0, 300.0);
    let work = dir.join("bc");
    let ctrl_port = free_port();
    let rtp = free_port_block(20);
    let log = std::fs::File::create(dir.join("baresip.log")).expect("log file");
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
        .arg(format!("dial sip:*98@{}", server.sip))
        .arg("wait CALL_ESTABLISHED 10")
        .arg("wait CALL_CLOSED 20")
        .arg("quit")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ctrl_child = ctrl_cmd.spawn().expect("run baresip_ctrl.py");
    let ctrl_out = Captured::spawn_reader(ctrl_child.stdout.take().expect("stdout"));
    let ctrl_err = Captured::spawn_reader(ctrl_child.stderr.take().expect("stderr"));
    let mut ctrl = ChildGuard::new("baresip_ctrl", ctrl_child);
    let status = ctrl.wait_exit(Duration::from_secs(40));
    let elapsed = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    let events = ctrl_out.text();
    let diagnose = |server: &Pinbridge| {
        format!(
            "--- baresip_ctrl.py stdout:\n{events}\n--- stderr:\n{}\n--- baresip log:\n{}\n--- pinbridge stderr:\n{}",
            ctrl_err.text(),
            std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default(),
            strip_ansi(&server.stderr.text())
        )
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "baresip_ctrl.py: {status:?}\n{}",
        diagnose(&server)
    );
    for ev in ["CALL_ESTABLISHED", "CALL_CLOSED"] {
        assert!(
            events.contains(&format!("\"type\": \"{ev}\"")),
            "{ev} event\n{}",
            diagnose(&server)
        );
    }
    assert!(
        elapsed < Duration::from_secs(10),
        "pinbridge hangs up after welcome + goodbye (about 3 s), took {elapsed:?}"
    );
    // 'quit' makes baresip finish its recordings and exit.
    let exited = baresip.wait_exit(Duration::from_secs(5));
    assert!(exited.is_some(), "baresip exits after quit");

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

    // What baresip heard (its sndfile module records the decoded stream).
    let rec_dir = work.join("rec");
    let dec = std::fs::read_dir(&rec_dir)
        .expect("baresip recording dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("no dump-*-dec.wav in {}", rec_dir.display()));
    let mut reader = hound::WavReader::open(&dec).expect("open the recording");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (8000, 1), "{spec:?}");
    let heard: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();

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
    // G.711 mu-law codes (baresip offers PCMU first). Compared as codes,
    // re-encoding the recording, because baresip's decoder maps the zero
    // code to 2 rather than 0; any other difference is a wrong code.
    let heard_codes = g711::encode_ulaw(&heard);
    for (name, prompt) in [("welcome", &welcome), ("goodbye", &goodbye)] {
        let mid = prompt.len() / 2;
        let piece = g711::encode_ulaw(&prompt[mid - 800..mid + 800]);
        assert!(
            heard_codes
                .windows(piece.len())
                .any(|w| w == piece.as_slice()),
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
