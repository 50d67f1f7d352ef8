//! One-time-passcode conference lines end to end: a caller whose number
//! belongs to a known participant gets a code (by the operator's SMS
//! gateway, a SIP MESSAGE or a voice call through the trunk), keys it, and
//! joins; unknown numbers are turned away. Real counterparts throughout:
//! a webhook receiver checking signatures, and the independent test UA as
//! the trunk.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dtmf::{prompt_ids, send_slots, wait_for_prompt, RtpStream};
use common::process::TempDir;
use common::rtp::RtpRecorder;
use common::server::TestServer;
use common::sipmsg::{param, Msg, MsgBuilder};
use common::ua::{offer_sdp, phone_offer, Call, Direction, InviteOptions, TestUa};
use common::webhook::SmsGateway;
use pinbridge::config::otp::{
    ChannelKind, ConferenceFlow, ParticipantSettings, TrunkSettings, TrunkTransport,
    WebhookSettings,
};
use pinbridge::config::{Config, LobbySettings};
use pinbridge::ivr::prompts::PromptId;
use pinbridge::ivr::GatherRules;

const SECRET: &str = "gateway-secret-0123456789";
const ALICE: &str = "+12015550123";
const WAIT: Duration = Duration::from_secs(15);

fn alice(channels: Vec<ChannelKind>, moderator: bool) -> ParticipantSettings {
    ParticipantSettings {
        username: Some("alice".into()),
        name: "Alice".into(),
        phone: ALICE.into(),
        email: None,
        moderator,
        conferences: vec!["*".into()],
        channels,
        name_prompt: None,
    }
}

/// Store and keys in a fresh folder, the SMS gateway as the channel, the
/// conference on `flow`.
fn otp_config(c: &mut Config, dir: &TempDir, gateway: &SmsGateway, flow: ConferenceFlow) {
    c.otp.store.path = dir.join("pinbridge.db");
    c.otp.verify.key_file = dir.join("pinbridge.key");
    c.otp.webhook = Some(WebhookSettings {
        url: gateway.url(),
        secret: SECRET.into(),
        timeout: Duration::from_secs(5),
        retries: 1,
    });
    c.otp.verify.channels = vec![ChannelKind::Webhook];
    c.otp.participants = vec![alice(vec![], false)];
    c.conferences[0].flow = flow;
}

struct Caller {
    ua: TestUa,
    call: Call,
    rec: RtpRecorder,
    to: SocketAddr,
    stream: RtpStream,
}

async fn dial(server: &TestServer, from: &str) -> Caller {
    dial_number(server, from, "1000").await
}

async fn dial_number(server: &TestServer, from: &str, number: &str) -> Caller {
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let mut opts = InviteOptions::new(number).with_sdp(phone_offer(rec.port()));
    opts.from_user = from.into();
    let (call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
    let to = answer.rtp_addr();
    Caller {
        ua,
        call,
        rec,
        to,
        stream: RtpStream::new(0, 0x0770_0001),
    }
}

impl Caller {
    /// Waits for the first playing of `prompt`; panics with `what` if it
    /// does not come. Returns every prompt heard so far.
    async fn hears(&self, prompt: PromptId, what: &str) -> Vec<PromptId> {
        wait_for_prompt(&self.rec, prompt, 1, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"))
    }

    async fn key(&mut self, keys: &str) {
        let slots = self.stream.rfc4733(keys, 100, 100);
        send_slots(&self.rec, self.to, slots).await.unwrap();
    }

    async fn bye(mut self) {
        if let Ok(tx) = self.ua.bye(&mut self.call).await {
            let _ = self.ua.expect_final_tx(&tx, Duration::from_secs(2)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_caller_gets_a_code_by_sms_keys_it_and_joins() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-sms");
    let server =
        TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::Otp)).await;
    let mut caller = dial(&server, ALICE).await;
    let sms = gateway
        .wait_for(1, WAIT)
        .await
        .expect("the code reached the SMS gateway");
    assert_eq!(sms.to, ALICE);
    assert_eq!(sms.code.len(), 6);
    caller.hears(PromptId::EnterOtp, "asked for the code").await;
    caller.key(&sms.code).await;
    let heard = caller
        .hears(PromptId::OnlyPerson, "joined the conference")
        .await;
    assert!(
        heard.contains(&PromptId::WelcomeName) && heard.contains(&PromptId::Correct),
        "{heard:?}"
    );
    caller.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_number_is_turned_away() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-unknown");
    let server =
        TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::Otp)).await;
    let mut caller = dial(&server, "+19995550000").await;
    let bye = caller.ua.recv_request(WAIT).await.expect("BYE");
    assert_eq!(bye.method(), Some("BYE"));
    caller.ua.respond(&bye, 200, "OK", &[], None).await.unwrap();
    assert_eq!(
        prompt_ids(&caller.rec),
        vec![PromptId::UnknownCaller, PromptId::Goodbye]
    );
    assert!(gateway.received().is_empty(), "no code for strangers");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_says_try_again_then_the_right_one_joins() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-retry");
    let server =
        TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::Otp)).await;
    let mut caller = dial(&server, ALICE).await;
    let sms = gateway.wait_for(1, WAIT).await.expect("code sent");
    caller.hears(PromptId::EnterOtp, "asked").await;
    let wrong: String = sms
        .code
        .chars()
        .map(|c| if c == '9' { '0' } else { '9' })
        .collect();
    caller.key(&wrong).await;
    caller.hears(PromptId::TryAgain, "try again").await;
    caller.key(&sms.code).await;
    caller.hears(PromptId::Correct, "that was correct").await;
    caller.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_code_while_one_is_pending() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-pending");
    let server =
        TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::Otp)).await;
    let first = dial(&server, ALICE).await;
    let a = gateway.wait_for(1, WAIT).await.expect("first send");
    first.bye().await;
    // Calling again within the validity re-sends the same pending code.
    let second = dial(&server, ALICE).await;
    let b = gateway.wait_for(2, WAIT).await.expect("re-send");
    assert_eq!(a.code, b.code, "the same code, not a second one");
    assert_eq!(a.body["verification_id"], b.body["verification_id"]);
    second.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_then_otp() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-pin");
    let server =
        TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::PinOtp)).await;
    let mut caller = dial(&server, ALICE).await;
    caller.hears(PromptId::EnterCode, "asked for the PIN").await;
    assert!(gateway.received().is_empty(), "no code before the PIN");
    caller.key("1234#").await;
    let sms = gateway.wait_for(1, WAIT).await.expect("code after the PIN");
    caller.hears(PromptId::EnterOtp, "asked for the code").await;
    caller.key(&sms.code).await;
    caller.hears(PromptId::OnlyPerson, "joined").await;
    caller.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_does_not_skip_the_passcode_of_a_pin_otp_conference() {
    // A lobby admits on the code alone. If it reached a pin+otp conference,
    // its PIN keyed at the lobby would let a caller in without the passcode.
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-lobby");
    let server = TestServer::start_with(|c| {
        otp_config(c, &dir, &gateway, ConferenceFlow::PinOtp);
        c.lobby = Some(LobbySettings {
            numbers: vec!["5000".into()],
            gather: GatherRules::default(),
        });
    })
    .await;
    let mut caller = dial_number(&server, ALICE, "5000").await;
    caller
        .hears(PromptId::EnterCode, "the lobby asks for a code")
        .await;
    caller.key("1234#").await;
    caller
        .hears(
            PromptId::CodeIncorrect,
            "the pin+otp conference's PIN is not a lobby code",
        )
        .await;
    let heard = prompt_ids(&caller.rec);
    assert!(
        !heard.contains(&PromptId::Joining) && !heard.contains(&PromptId::OnlyPerson),
        "admitted through the lobby: {heard:?}"
    );
    assert!(
        gateway.received().is_empty(),
        "no code was sent: {:?}",
        gateway.received().len()
    );
    caller.bye().await;
    server.stop().await;
}

// ---------------------------------------------------------------- trunk

/// A response from the fake trunk, To tag added.
fn response(
    req: &Msg,
    code: u16,
    reason: &str,
    extra: &[(&str, String)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut b = MsgBuilder::response(code, reason);
    for v in req.header_all("Via") {
        b = b.header("Via", v);
    }
    let to = req.header("To").unwrap_or_default();
    let to = if param(to, "tag").is_some() {
        to.to_string()
    } else {
        format!("{to};tag=trunk1")
    };
    b = b
        .header("From", req.header("From").unwrap_or_default())
        .header("To", to)
        .header("Call-ID", req.call_id().unwrap_or_default())
        .header("CSeq", req.header("CSeq").unwrap_or_default());
    for (n, v) in extra {
        b = b.header(n, v.clone());
    }
    if let Some(sdp) = body {
        b = b.body("application/sdp", sdp.as_bytes());
    }
    b.build()
}

async fn trunk_server(dir: &TempDir, channel: ChannelKind) -> (TestUa, TestServer) {
    let mut trunk = TestUa::udp("127.0.0.1:9".parse().unwrap()).await.unwrap();
    let at = trunk.local_addr();
    let server = TestServer::start_with(|c| {
        c.otp.store.path = dir.join("pinbridge.db");
        c.otp.verify.key_file = dir.join("pinbridge.key");
        c.otp.trunk = Some(TrunkSettings {
            proxy: at.to_string(),
            transport: TrunkTransport::Udp,
            username: None,
            password: None,
            domain: "trunk.test".into(),
            from_user: "+15550001111".into(),
            register: false,
            register_expires: 600,
            realm: None,
        });
        c.otp.verify.channels = vec![channel];
        c.otp.participants = vec![alice(vec![channel], false)];
        c.conferences[0].flow = ConferenceFlow::Otp;
    })
    .await;
    trunk.set_server(server.sip);
    (trunk, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_by_sip_message_through_the_trunk() {
    let dir = TempDir::new("otp-message");
    let (mut trunk, server) = trunk_server(&dir, ChannelKind::SipMessage).await;
    let mut caller = dial(&server, ALICE).await;
    let msg = trunk
        .recv_request(WAIT)
        .await
        .expect("MESSAGE at the trunk");
    assert_eq!(msg.method(), Some("MESSAGE"));
    assert!(msg.uri().unwrap_or("").contains("+12015550123"), "{msg}");
    trunk
        .send_raw(&response(&msg, 202, "Accepted", &[], None))
        .await
        .unwrap();
    let body = msg.body_str();
    let code: String = body.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{body}");
    caller.hears(PromptId::EnterOtp, "asked").await;
    caller.key(&code).await;
    caller.hears(PromptId::Correct, "approved").await;
    caller.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_read_out_in_a_voice_call_through_the_trunk() {
    let dir = TempDir::new("otp-voice");
    let (mut trunk, server) = trunk_server(&dir, ChannelKind::Voice).await;
    let mut caller = dial(&server, ALICE).await;
    // pinbridge calls the participant's phone through the trunk.
    let invite = trunk.recv_request(WAIT).await.expect("INVITE at the trunk");
    assert_eq!(invite.method(), Some("INVITE"));
    assert!(invite.uri().unwrap_or("").contains("+12015550123"));
    let phone = RtpRecorder::bind().await.unwrap();
    let answer = offer_sdp(phone.port(), &[(0, "PCMU/8000")], None, Direction::SendRecv);
    let contact = format!("<sip:phone@{}>", trunk.local_addr());
    trunk
        .send_raw(&response(
            &invite,
            200,
            "OK",
            &[("Contact", contact)],
            Some(&answer),
        ))
        .await
        .unwrap();
    let ack = trunk.recv_request(WAIT).await.expect("ACK");
    assert_eq!(ack.method(), Some("ACK"));
    // The code is read twice, then pinbridge hangs up.
    let bye = trunk
        .recv_request(Duration::from_secs(40))
        .await
        .expect("BYE after the reading");
    assert_eq!(bye.method(), Some("BYE"));
    trunk
        .send_raw(&response(&bye, 200, "OK", &[], None))
        .await
        .unwrap();
    let heard = prompt_ids(&phone);
    let first = heard
        .iter()
        .position(|p| *p == PromptId::YourCodeIs)
        .expect("your code is");
    let again = heard
        .iter()
        .position(|p| *p == PromptId::RepeatCode)
        .expect("again");
    let digits = |ps: &[PromptId]| -> String {
        ps.iter()
            .filter_map(|p| {
                (0..10u8)
                    .find(|d| PromptId::digit(*d) == Some(*p))
                    .map(|d| char::from(b'0' + d))
            })
            .collect()
    };
    let code = digits(&heard[first + 1..again]);
    assert_eq!(code.len(), 6, "{heard:?}");
    assert_eq!(
        digits(&heard[again + 1..]),
        code,
        "read the same code twice"
    );
    caller.key(&code).await;
    caller
        .hears(PromptId::Correct, "the code heard on the phone works")
        .await;
    caller.bye().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_moderators_join_as_moderators() {
    let gateway = SmsGateway::start(SECRET).await;
    let dir = TempDir::new("otp-mod");
    let server = TestServer::start_with(|c| {
        otp_config(c, &dir, &gateway, ConferenceFlow::Otp);
        c.otp.participants = vec![alice(vec![], true)];
        // As the config file allows it: an otp conference takes no PIN, so
        // its moderators come from the directory alone.
        c.conferences[0].rules.require_moderator = true;
        c.conferences[0].pin = None;
        c.conferences[0].moderator_pin = None;
    })
    .await;
    let mut caller = dial(&server, ALICE).await;
    let sms = gateway.wait_for(1, WAIT).await.expect("code");
    caller.hears(PromptId::EnterOtp, "asked").await;
    caller.key(&sms.code).await;
    // A moderator never waits for the moderator.
    caller.hears(PromptId::OnlyPerson, "joined").await;
    assert!(!prompt_ids(&caller.rec).contains(&PromptId::WaitingForModerator));
    caller.bye().await;
    server.stop().await;
}

/// Measurement, not a test of speed: `cargo test --release --test
/// otp_calls -- --ignored --nocapture otp_flow_timing` prints how long the
/// OTP-call flow takes end to end, by SMS webhook and by voice call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn otp_flow_timing() {
    use std::time::Instant;
    let mut rows = Vec::new();
    for round in 0..5 {
        let gateway = SmsGateway::start(SECRET).await;
        let dir = TempDir::new("otp-timing");
        let server =
            TestServer::start_with(|c| otp_config(c, &dir, &gateway, ConferenceFlow::Otp)).await;
        let t0 = Instant::now();
        let mut caller = dial(&server, ALICE).await;
        let answered = t0.elapsed();
        let sms = gateway.wait_for(1, WAIT).await.expect("code");
        let code_at_gateway = t0.elapsed();
        caller.key(&sms.code).await;
        let keyed = t0.elapsed();
        caller.hears(PromptId::Correct, "approved").await;
        // When the first sample of "that was correct" arrived.
        let approved = common::dtmf::heard_prompts(&caller.rec)
            .into_iter()
            .find(|h| h.id == PromptId::Correct)
            .map(|h| h.at - t0)
            .unwrap_or_default();
        rows.push((round, answered, code_at_gateway, keyed, approved));
        caller.bye().await;
        server.stop().await;
    }
    println!("SMS webhook flow (ms): INVITE→200 | →code at gateway | →last key sent (6 RFC 4733 presses, 100 ms + 100 ms gap each) | →first packet of \"that was correct\"");
    for (r, a, b, c, d) in &rows {
        println!(
            "  round {r}: {:6.1} | {:6.1} | {:7.1} | {:7.1}",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            c.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3
        );
    }

    let dir = TempDir::new("otp-timing-voice");
    let (mut trunk, server) = trunk_server(&dir, ChannelKind::Voice).await;
    let t0 = Instant::now();
    let _caller = dial(&server, ALICE).await;
    let invite = trunk.recv_request(WAIT).await.expect("INVITE");
    let at_trunk = t0.elapsed();
    let phone = RtpRecorder::bind().await.unwrap();
    let answer = offer_sdp(phone.port(), &[(0, "PCMU/8000")], None, Direction::SendRecv);
    let contact = format!("<sip:phone@{}>", trunk.local_addr());
    trunk
        .send_raw(&response(
            &invite,
            200,
            "OK",
            &[("Contact", contact)],
            Some(&answer),
        ))
        .await
        .unwrap();
    let _ack = trunk.recv_request(WAIT).await.expect("ACK");
    let bye = trunk
        .recv_request(Duration::from_secs(40))
        .await
        .expect("BYE");
    let read = t0.elapsed();
    trunk
        .send_raw(&response(&bye, 200, "OK", &[], None))
        .await
        .unwrap();
    println!(
        "voice flow: INVITE→outbound INVITE at the trunk {:.1} ms; →code read twice and hung up {:.1} s (answered at once)",
        at_trunk.as_secs_f64() * 1e3,
        read.as_secs_f64()
    );
    server.stop().await;
}
