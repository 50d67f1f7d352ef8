//! The brute-force guard end to end, over loopback with the test user
//! agent: many calls from one address that key a guess at the same moment,
//! lockouts that outlive a restart, and callers behind a trusted PBX.
//!
//! Each caller keys its code by RFC 4733 and is set to one attempt per call
//! (`max_attempts = 1`), so every call ends with the server's BYE after one
//! of: "that code is incorrect" (a verdict), "joining" (a verdict), or "too
//! many failed attempts" (refused, or the verdict that reached the limit).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::dtmf::{heard_prompts, prompt_ids, send_slots, wait_for_prompt, RtpStream};
use common::process::TempDir;
use common::rtp::RtpRecorder;
use common::server::TestServer;
use common::ua::{phone_offer, Call, InviteOptions, TestUa};
use common::webhook::SmsGateway;
use pinbridge::config::otp::{ChannelKind, ConferenceFlow, ParticipantSettings, WebhookSettings};
use pinbridge::config::Config;
use pinbridge::ivr::prompts::PromptId;

const WAIT: Duration = Duration::from_secs(30);
const RIGHT_PIN: &str = "1234#";
const WRONG_PIN: &str = "4321#";

struct Caller {
    name: String,
    ua: TestUa,
    call: Call,
    rec: RtpRecorder,
    to: SocketAddr,
}

/// Dials the conference as `from` (with `headers` added to the INVITE),
/// expects 200 and ACKs; `None` with the status when it is refused.
async fn try_dial(server: SocketAddr, from: &str, headers: &[(&str, &str)]) -> Result<Caller, u16> {
    let mut ua = TestUa::udp(server).await.expect("SIP socket");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let mut opts = InviteOptions::new("100").with_sdp(phone_offer(rec.port()));
    opts.from_user = from.into();
    for (name, value) in headers {
        opts = opts.with_header(name, value);
    }
    let (call, answer) = ua.place_call(opts, Duration::from_secs(10)).await?;
    let to = answer.rtp_addr();
    Ok(Caller {
        name: from.into(),
        ua,
        call,
        rec,
        to,
    })
}

async fn dial(server: SocketAddr, from: &str) -> Caller {
    try_dial(server, from, &[])
        .await
        .unwrap_or_else(|s| panic!("{from}: call refused with {s}"))
}

impl Caller {
    /// At `at`, keys `keys` as RFC 4733 events (100 ms presses, 100 ms
    /// apart), then waits for the end of the call; returns what it heard.
    async fn guess(self, keys: &str, ssrc: u32, at: Instant) -> (String, Vec<PromptId>) {
        let slots = RtpStream::new(0, ssrc).rfc4733(keys, 100, 100);
        tokio::time::sleep_until(at.into()).await;
        send_slots(&self.rec, self.to, slots)
            .await
            .expect("keys sent");
        self.ended().await
    }

    /// Waits for the server's BYE, answers it and returns the prompts the
    /// call heard (the last packets are given a moment to arrive).
    async fn ended(mut self) -> (String, Vec<PromptId>) {
        let bye = self
            .ua
            .recv_request(WAIT)
            .await
            .unwrap_or_else(|e| panic!("{}: no BYE from the server: {e}", self.name));
        assert_eq!(bye.method(), Some("BYE"), "{}: {bye:?}", self.name);
        let _ = self.ua.respond(&bye, 200, "OK", &[], None).await;
        self.rec
            .wait_for_silence(Duration::from_millis(200), Duration::from_secs(5))
            .await;
        let heard = prompt_ids(&self.rec);
        if heard.is_empty() {
            // Say what did arrive, should a prompt not be recognised.
            eprintln!(
                "{}: no prompt recognised in {} RTP packets",
                self.name,
                self.rec.packets().len()
            );
        }
        (self.name, heard)
    }

    async fn hang_up(mut self) {
        if let Ok(tx) = self.ua.bye(&mut self.call).await {
            let _ = self.ua.expect_final_tx(&tx, Duration::from_secs(2)).await;
        }
    }
}

impl Caller {
    /// Like `ended`, but a call that was let in (it hears "joining" and
    /// gets no BYE) is hung up by us instead.
    async fn ended_or_joined(mut self) -> (String, Vec<PromptId>) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(bye) = self.ua.recv_request(Duration::from_millis(200)).await {
                assert_eq!(bye.method(), Some("BYE"), "{}: {bye:?}", self.name);
                let _ = self.ua.respond(&bye, 200, "OK", &[], None).await;
                self.rec
                    .wait_for_silence(Duration::from_millis(200), Duration::from_secs(5))
                    .await;
                return (self.name, prompt_ids(&self.rec));
            }
            let heard = prompt_ids(&self.rec);
            if heard.contains(&PromptId::Joining) {
                let name = self.name.clone();
                self.hang_up().await;
                return (name, heard);
            }
            assert!(
                Instant::now() < deadline,
                "{}: neither let in nor hung up; heard {heard:?}",
                self.name
            );
        }
    }
}

/// One call, one attempt: a wrong code is "incorrect", goodbye and BYE.
/// The first key may take long to come (a burst waits for all its calls
/// to be answered), so silence does not end a call first.
fn one_attempt_per_call(c: &mut Config) {
    for conf in &mut c.conferences {
        conf.gather.max_attempts = 1;
        conf.gather.first_digit_timeout = Duration::from_secs(60);
    }
}

/// What a burst of simultaneous guesses from one address got.
#[derive(Debug)]
struct Burst {
    calls: usize,
    /// Calls told "that code is incorrect": guesses that got a verdict.
    incorrect: usize,
    /// Calls that heard "too many failed attempts": refused, or (one of
    /// them) the verdict that reached the limit.
    locked_out: usize,
    /// What the caller who keyed the right PIN 300 ms into the burst heard.
    right_pin: Vec<PromptId>,
}

impl Burst {
    fn right_pin_accepted(&self) -> bool {
        self.right_pin.contains(&PromptId::Joining)
    }
}

/// Places `n` calls from 127.0.0.1 with distinct caller IDs (so only the
/// per-address limit can stop them), has all of them key a wrong PIN at
/// the same moment, and one more call key the right PIN just after.
async fn burst(server: SocketAddr, n: usize) -> Burst {
    let mut callers = Vec::with_capacity(n);
    for i in 0..n {
        callers.push(dial(server, &format!("+1555{i:07}")).await);
    }
    let right = dial(server, "+19995550100").await;
    let at = Instant::now() + Duration::from_millis(500);
    let guesses: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(c.guess(WRONG_PIN, 0x6E55_0000 + i as u32, at)))
        .collect();
    // The right PIN's `#` arrives 300 ms after the wrong ones': inside the
    // burst, well before any cool-off.
    let slots = RtpStream::new(0, 0x6E55_FFFF).rfc4733(RIGHT_PIN, 100, 100);
    tokio::time::sleep_until((at + Duration::from_millis(300)).into()).await;
    send_slots(&right.rec, right.to, slots)
        .await
        .expect("keys sent");
    let (_, right_pin) = right.ended_or_joined().await;

    let mut result = Burst {
        calls: n,
        incorrect: 0,
        locked_out: 0,
        right_pin,
    };
    for g in guesses {
        let (name, heard) = g.await.expect("caller task");
        let incorrect = heard.contains(&PromptId::CodeIncorrect);
        let locked = heard.contains(&PromptId::LockedOut);
        assert!(
            incorrect != locked,
            "{name}: expected one answer, incorrect or locked out; heard {heard:?}"
        );
        result.incorrect += usize::from(incorrect);
        result.locked_out += usize::from(locked);
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_guesses_from_one_address_get_no_more_verdicts_than_its_limit() {
    let server = TestServer::start_with(one_attempt_per_call).await;
    let limit = 10; // the default `ip_failures`
    let b = burst(server.sip, 40).await;
    eprintln!("{b:?}");
    assert!(
        b.incorrect >= 1,
        "the guard let some guesses through to a verdict: {b:?}"
    );
    assert!(
        b.incorrect <= limit,
        "at most {limit} guesses from one address get a verdict, however many arrive at once: {b:?}"
    );
    assert_eq!(b.incorrect + b.locked_out, b.calls, "{b:?}");
    assert!(
        !b.right_pin_accepted() && b.right_pin.contains(&PromptId::LockedOut),
        "the right PIN inside a burst over the limit is refused: {b:?}"
    );
    server.stop().await;
}

/// The figure for BENCHMARKS.md: verdicts per lockout window with N
/// simultaneous guessing calls from one address.
///
/// `cargo test --release --test brute_force -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it with --nocapture"]
async fn concurrent_guess_figure() {
    for n in [40, 200] {
        for run in 1..=3 {
            let server = TestServer::start_with(one_attempt_per_call).await;
            let started = Instant::now();
            let b = burst(server.sip, n).await;
            println!(
            "concurrent guesses, run {run}: {n} calls from one address (ip_failures = 10): \
             {} told \"incorrect\", {} told \"locked out\", right PIN inside the burst {} ({:.1} s)",
            b.incorrect,
            b.locked_out,
            if b.right_pin_accepted() {
                "ACCEPTED"
            } else {
                "refused"
            },
            started.elapsed().as_secs_f64()
        );
            server.stop().await;
        }
    }
}

// ------------------------------------------------------------ restarts

/// The database and key in `dir`, so that a second server uses the same.
fn stored_in(c: &mut Config, dir: &TempDir) {
    c.otp.store.path = dir.join("pinbridge.db");
    c.otp.verify.key_file = dir.join("pinbridge.key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_outlives_a_restart() {
    let dir = TempDir::new("guard-restart");
    let config = |c: &mut Config| {
        one_attempt_per_call(c);
        stored_in(c, &dir);
        c.security.caller_failures = 2;
    };
    let server = TestServer::start_with(config).await;
    for (i, heard) in [PromptId::CodeIncorrect, PromptId::LockedOut]
        .into_iter()
        .enumerate()
    {
        let c = dial(server.sip, "mallory").await;
        let (_, prompts) = c
            .guess(WRONG_PIN, 0x5E57_0000 + i as u32, Instant::now())
            .await;
        assert!(prompts.contains(&heard), "guess {i}: {prompts:?}");
    }
    assert_eq!(try_dial(server.sip, "mallory", &[]).await.err(), Some(403));
    server.stop().await;

    // The same database after a restart: still refused, others are not.
    let server = TestServer::start_with(config).await;
    assert_eq!(
        try_dial(server.sip, "mallory", &[]).await.err(),
        Some(403),
        "the caller is still locked out after the restart"
    );
    dial(server.sip, "alice").await.hang_up().await;
    // No caller ID in the database: callers are stored as keyed hashes.
    let db = std::fs::read(dir.join("pinbridge.db")).expect("database file");
    let wal = std::fs::read(dir.join("pinbridge.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(7).any(|w| w == b"mallory"),
            "a caller ID was stored"
        );
    }
    server.stop().await;
}

// ------------------------------------------------------------ trusted PBX

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_behind_a_trusted_pbx_are_keyed_by_their_asserted_identity() {
    // Every test call comes from 127.0.0.1: here that is the operator's
    // PBX, which asserts who its callers are.
    let server = TestServer::start_with(|c| {
        one_attempt_per_call(c);
        c.security.trusted_ips = vec!["127.0.0.1".parse().expect("address")];
        c.security.caller_failures = 2;
    })
    .await;
    let ext = |n: u32| [("P-Asserted-Identity", format!("<sip:{n}@pbx.example>"))];
    // Extension 100 guesses twice, typing a new From user each time.
    for (i, heard) in [PromptId::CodeIncorrect, PromptId::LockedOut]
        .into_iter()
        .enumerate()
    {
        let h = ext(100);
        let headers: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let c = try_dial(server.sip, &format!("rotated{i}"), &headers)
            .await
            .unwrap_or_else(|s| panic!("guess {i} refused with {s}"));
        let (_, prompts) = c
            .guess(WRONG_PIN, 0x9B_0000 + i as u32, Instant::now())
            .await;
        assert!(prompts.contains(&heard), "guess {i}: {prompts:?}");
    }
    // A third From does not help: the asserted identity is locked out...
    let h = ext(100);
    assert_eq!(
        try_dial(server.sip, "rotated2", &[(h[0].0, h[0].1.as_str())])
            .await
            .err(),
        Some(403)
    );
    // ...and only it: another extension behind the PBX, and the PBX as a
    // whole, are not.
    let h = ext(101);
    try_dial(server.sip, "rotated2", &[(h[0].0, h[0].1.as_str())])
        .await
        .expect("extension 101 is let in")
        .hang_up()
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pbx_over_its_ceiling_is_paced_not_locked() {
    let interval = Duration::from_secs(2);
    let server = TestServer::start_with(|c| {
        one_attempt_per_call(c);
        c.security.trusted_ips = vec!["127.0.0.1".parse().expect("address")];
        c.security.trusted_failures = 2;
        c.security.trusted_interval = interval;
    })
    .await;
    // Two wrong guesses with rotating caller IDs reach the ceiling.
    for i in 0..2u32 {
        let c = dial(server.sip, &format!("+1666{i:07}")).await;
        let (_, prompts) = c.guess(WRONG_PIN, 0x7A_0000 + i, Instant::now()).await;
        assert!(prompts.contains(&PromptId::CodeIncorrect), "{prompts:?}");
    }
    // Three more guess at the same moment: each still gets a verdict (the
    // PBX is never locked), one per interval.
    let mut callers = Vec::new();
    for i in 0..3u32 {
        callers.push(dial(server.sip, &format!("+1777{i:07}")).await);
    }
    let at = Instant::now() + Duration::from_millis(300);
    let tasks: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(async move {
                let slots = RtpStream::new(0, 0x7B_0000 + i as u32).rfc4733(WRONG_PIN, 100, 100);
                tokio::time::sleep_until(at.into()).await;
                send_slots(&c.rec, c.to, slots).await.expect("keys sent");
                wait_for_prompt(&c.rec, PromptId::CodeIncorrect, 1, WAIT)
                    .await
                    .unwrap_or_else(|h| panic!("{}: no verdict; heard {h:?}", c.name));
                let verdict = heard_prompts(&c.rec)
                    .into_iter()
                    .find(|h| h.id == PromptId::CodeIncorrect)
                    .map(|h| h.at)
                    .expect("verdict heard");
                (verdict, c)
            })
        })
        .collect();
    let mut verdicts = Vec::new();
    for t in tasks {
        let (verdict, caller) = t.await.expect("caller task");
        verdicts.push(verdict);
        caller.ended().await;
    }
    verdicts.sort();
    // A generous lower bound (pacing can only make verdicts later).
    let min_gap = interval - Duration::from_millis(500);
    for pair in verdicts.windows(2) {
        assert!(
            pair[1] - pair[0] >= min_gap,
            "verdicts from the paced PBX came {:?} apart: {verdicts:?}",
            pair[1] - pair[0]
        );
    }
    // Over its ceiling the PBX is still answered.
    dial(server.sip, "+18880000000").await.hang_up().await;
    server.stop().await;
}

// ------------------------------------------------------------ passcodes

const GATEWAY_SECRET: &str = "gateway-secret-0123456789";
const ALICE: &str = "+12015550123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_one_time_passcodes_count_against_the_guard() {
    let gateway = SmsGateway::start(GATEWAY_SECRET).await;
    let server = TestServer::start_with(|c| {
        c.otp.webhook = Some(WebhookSettings {
            url: gateway.url(),
            secret: GATEWAY_SECRET.into(),
            timeout: Duration::from_secs(5),
            retries: 1,
        });
        c.otp.verify.channels = vec![ChannelKind::Webhook];
        c.otp.participants = vec![ParticipantSettings {
            username: Some("alice".into()),
            name: "Alice".into(),
            phone: ALICE.into(),
            email: None,
            moderator: false,
            conferences: vec!["*".into()],
            channels: vec![],
            name_prompt: None,
        }];
        c.conferences[0].flow = ConferenceFlow::Otp;
        c.conferences[0].pin = None;
        c.security.caller_failures = 2;
    })
    .await;
    let c = dial(server.sip, ALICE).await;
    let sms = gateway.wait_for(1, WAIT).await.expect("code sent");
    wait_for_prompt(&c.rec, PromptId::EnterOtp, 1, WAIT)
        .await
        .expect("asked for the code");
    let wrong: String = sms
        .code
        .chars()
        .map(|d| if d == '9' { '0' } else { '9' })
        .collect();
    let mut stream = RtpStream::new(0, 0x0770_0001);
    send_slots(&c.rec, c.to, stream.rfc4733(&wrong, 100, 100))
        .await
        .expect("keys sent");
    wait_for_prompt(&c.rec, PromptId::TryAgain, 1, WAIT)
        .await
        .expect("try again");
    // The second wrong passcode reaches the caller limit of 2.
    send_slots(&c.rec, c.to, stream.rfc4733(&wrong, 100, 100))
        .await
        .expect("keys sent");
    let (_, heard) = c.ended().await;
    assert!(
        heard.ends_with(&[PromptId::LockedOut, PromptId::Goodbye]),
        "{heard:?}"
    );
    // Calling again does not buy more guesses: refused before answering.
    assert_eq!(try_dial(server.sip, ALICE, &[]).await.err(), Some(403));
    server.stop().await;
}
