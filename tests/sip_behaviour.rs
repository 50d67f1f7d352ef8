//! SIP behaviour of the server as seen on the wire by the independent test
//! UA: transactions and retransmissions (RFC 3261 §13, §17, RFC 6026),
//! CANCEL, OPTIONS, dialog matching, offer/answer (RFC 3264) including late
//! offers, re-INVITE/UPDATE and hold, symmetric RTP (RFC 4961), RTP
//! inactivity, session timers (RFC 4028), overload (503), body checks,
//! Record-Route, rport (RFC 3581), TCP and graceful shutdown.
//!
//! Each test starts its own in-process server on loopback, shortens the
//! timers it depends on, and bounds every wait.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::g711;
use common::rtp::{RtpHeader, RtpRecorder};
use common::sdp::{parse_sdp_answer, SdpAnswer};
use common::server::{prompt_samples, TestServer, ECHO};
use common::sipmsg::{param, uri_of, uri_param, Msg, MsgBuilder};
use common::ua::{
    new_branch, offer_sdp, random_token, Call, ClientTx, Direction, InviteOptions, Received, TestUa,
};
use pinbridge::config::Config;
use pinbridge::ivr::prompts::PromptId;

/// Bound for any single expected response or request.
const WAIT: Duration = Duration::from_secs(5);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- helpers

/// A 20 s welcome prompt (a quiet 400 Hz tone), so the server's call flow
/// (welcome, goodbye, BYE) cannot end a call while a test still uses it.
/// Written once per machine under the temp dir (atomically, so concurrent
/// test processes never read a half-written file).
fn long_welcome() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join("pinbridge-sip-behaviour-welcome-20s-v1.wav");
        if !path.exists() {
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&tmp, spec).expect("create temp WAV");
            for i in 0..20 * 8000 {
                let t = f64::from(i) / 8000.0;
                let s = (t * 400.0 * std::f64::consts::TAU).sin() * 4000.0;
                w.write_sample(s as i16).expect("write sample");
            }
            w.finalize().expect("finish temp WAV");
            std::fs::rename(&tmp, &path).expect("move temp WAV into place");
        }
        path
    })
    .clone()
}

/// A server whose welcome prompt lasts 20 s, plus the test's own changes.
async fn start_long(change: impl FnOnce(&mut Config)) -> TestServer {
    let welcome = long_welcome();
    TestServer::start_with(move |c| {
        c.prompt_files.insert(PromptId::Welcome, welcome);
        change(c);
    })
    .await
}

/// Our PCMU + telephone-event offer for `port`, with `o=` version
/// `version` (RFC 3264 §8: each changed offer in a dialog increments it).
fn pcmu_offer(port: u16, direction: Direction, version: u32) -> String {
    offer_sdp(port, &[(0, "PCMU/8000")], Some(101), direction).replacen(
        " 1 IN IP4 ",
        &format!(" {version} IN IP4 "),
        1,
    )
}

/// INVITE with a PCMU offer for `rec`, expect 200, ACK. Returns the call
/// and the server's SDP answer.
async fn establish(ua: &mut TestUa, rec: &RtpRecorder, opts: InviteOptions) -> (Call, SdpAnswer) {
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    ua.answered_call(opts.with_sdp(offer), WAIT).await
}

/// Sends BYE and expects 200.
async fn hang_up(ua: &mut TestUa, call: &mut Call) {
    let tx = ua.bye(call).await.expect("BYE sent");
    let r = ua
        .expect_final_tx(&tx, WAIT)
        .await
        .expect("response to our BYE");
    assert_eq!(r.status(), Some(200), "BYE accepted:\n{r}");
}

/// Every copy received of a response with `status` to `method`.
fn responses(ua: &TestUa, status: u16, method: &str) -> Vec<Received> {
    ua.received()
        .into_iter()
        .filter(|r| {
            r.msg.as_ref().is_some_and(|m| {
                m.status() == Some(status) && m.cseq().is_some_and(|(_, x)| x == method)
            })
        })
        .collect()
}

/// Every request received from the server with `method`.
fn requests(ua: &TestUa, method: &str) -> Vec<Received> {
    ua.received()
        .into_iter()
        .filter(|r| r.msg.as_ref().is_some_and(|m| m.method() == Some(method)))
        .collect()
}

fn to_tag(msg: &Msg) -> String {
    msg.header_param("To", "tag")
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("To tag in\n{msg}"))
}

/// A comma-separated token list header (Allow, Supported, Require...).
fn tokens(msg: &Msg, name: &str) -> Vec<String> {
    msg.header_all(name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The `o=` line fields of an SDP body: (everything but the version,
/// version).
fn origin(sdp: &str) -> (Vec<String>, u64) {
    let line = sdp
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("o="))
        .unwrap_or_else(|| panic!("o= line in\n{sdp}"));
    let mut fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(fields.len(), 6, "o= has six fields: {line:?}");
    let version = fields.remove(2).parse().expect("numeric o= version");
    (fields, version)
}

/// RFC 3264 §8: a later SDP from the same side keeps the `o=` line except
/// the version, which grows by exactly one when anything changed and stays
/// put only if the description is identical.
fn assert_sdp_version_rule(previous: &str, next: &str) {
    let (prev_fields, prev_version) = origin(previous);
    let (next_fields, next_version) = origin(next);
    assert_eq!(
        prev_fields, next_fields,
        "o= line unchanged but for version"
    );
    if next_version == prev_version {
        assert_eq!(
            previous, next,
            "same o= version, so the SDP must be identical"
        );
    } else {
        assert_eq!(
            next_version,
            prev_version + 1,
            "changed SDP: version increments by one"
        );
    }
}

/// Finds `needle` in `hay`; returns the offset.
fn find(hay: &[i16], needle: &[i16]) -> Option<usize> {
    (0..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..i + needle.len()] == *needle)
}

/// Sends an INVITE with any body and Content-Type (the UA's `invite` only
/// writes application/sdp) and returns it as a call, so `expect_final` and
/// `ack` work on it.
async fn invite_with_body(ua: &mut TestUa, content_type: &str, body: &str) -> Call {
    let local = ua.local_addr();
    let server = ua.server();
    let branch = new_branch();
    let via = format!("SIP/2.0/UDP {local};branch={branch};rport");
    let from_tag = random_token();
    let call_id = format!("{}@testua", random_token());
    let request_uri = format!("sip:1000@{server}");
    let from = format!("<sip:testua@{}>;tag={from_tag}", local.ip());
    let to = format!("<sip:1000@{server}>");
    let contact = format!("<sip:testua@{local}>");
    let bytes = MsgBuilder::request("INVITE", &request_uri)
        .header("Via", via.clone())
        .header("Max-Forwards", "70")
        .header("From", from.clone())
        .header("To", to.clone())
        .header("Call-ID", call_id.clone())
        .header("CSeq", "1 INVITE")
        .header("Contact", contact.clone())
        .body(content_type, body.as_bytes())
        .build();
    let invite_request = Msg::parse(&bytes).expect("own INVITE parses");
    ua.send_raw(&bytes).await.expect("INVITE sent");
    Call {
        call_id: call_id.clone(),
        from_tag,
        from,
        to,
        to_tag: None,
        request_uri: request_uri.clone(),
        remote_target: request_uri,
        route_set: Vec::new(),
        contact,
        cseq: 1,
        invite: ClientTx {
            branch,
            method: "INVITE".into(),
            cseq: 1,
            call_id,
            via,
        },
        invite_request,
        final_response: None,
        established: false,
    }
}

/// An out-of-dialog OPTIONS whose top Via claims `sent_by` (which need not
/// be where it really comes from), with or without `rport`.
fn options_with_via(sent_by: SocketAddr, rport: bool, server: SocketAddr) -> (Vec<u8>, ClientTx) {
    let branch = new_branch();
    let via = format!(
        "SIP/2.0/UDP {sent_by};branch={branch}{}",
        if rport { ";rport" } else { "" }
    );
    let call_id = format!("{}@testua", random_token());
    let bytes = MsgBuilder::request("OPTIONS", &format!("sip:1000@{server}"))
        .header("Via", via.clone())
        .header("Max-Forwards", "70")
        .header(
            "From",
            format!("<sip:testua@{}>;tag={}", sent_by.ip(), random_token()),
        )
        .header("To", format!("<sip:1000@{server}>"))
        .header("Call-ID", call_id.clone())
        .header("CSeq", "1 OPTIONS")
        .build();
    let tx = ClientTx {
        branch,
        method: "OPTIONS".into(),
        cseq: 1,
        call_id,
        via,
    };
    (bytes, tx)
}

// ------------------------------------------------------------------ tests

/// RFC 3261 §17.2.1/§17.2.3, RFC 6026: retransmitted INVITEs (same branch),
/// before and after the answer, are absorbed by the transaction: one dialog,
/// one RTP stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_invite_creates_exactly_one_call() {
    let server = start_long(|c| c.sip.answer_delay = ms(500)).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    let copy = call.invite_request.to_bytes();

    // Copy 2 while the server is still ringing (Proceeding state).
    tokio::time::sleep(ms(100)).await;
    ua.send_raw(&copy).await.unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    // Copy 3 after the 200, as if the 200 had crossed our retransmission
    // (Accepted state): absorbed, never a second call.
    ua.send_raw(&copy).await.unwrap();
    ua.ack(&mut call, None).await.unwrap();
    assert!(
        rec.wait_for_packets(50, WAIT).await,
        "RTP flows for the call"
    );
    tokio::time::sleep(ms(300)).await;

    // Provisional responses: 100 Trying and 180 Ringing for the INVITE, and
    // the latest provisional again for copy 2 (§17.2.1).
    let provisional: Vec<Msg> = ua
        .received()
        .into_iter()
        .filter_map(|r| r.msg)
        .filter(|m| {
            m.status().is_some_and(|s| s < 200) && m.cseq().is_some_and(|(_, x)| x == "INVITE")
        })
        .collect();
    assert_eq!(
        provisional.len(),
        3,
        "100, 180 and one resent provisional: {:?}",
        provisional.iter().map(Msg::status).collect::<Vec<_>>()
    );
    let tag = to_tag(&ok);
    for m in provisional.iter().filter(|m| m.status() != Some(100)) {
        assert_eq!(to_tag(m), tag, "180 and 200 belong to one dialog");
    }
    let finals: Vec<Received> = ua
        .received()
        .into_iter()
        .filter(|r| {
            r.msg.as_ref().is_some_and(|m| {
                m.status().is_some_and(|s| s >= 200) && m.cseq().is_some_and(|(_, x)| x == "INVITE")
            })
        })
        .collect();
    for f in &finals {
        let m = f.msg.as_ref().unwrap();
        assert_eq!(m.status(), Some(200), "only 200s: {m}");
        assert_eq!(to_tag(m), tag, "every 200 has the same To tag");
    }
    assert_eq!(rec.ssrcs().len(), 1, "one RTP stream (one SSRC)");
    let sources: std::collections::BTreeSet<SocketAddr> =
        rec.packets().iter().map(|p| p.from).collect();
    assert_eq!(sources.len(), 1, "one RTP source port: {sources:?}");
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3261 §13.3.1.4: an unacknowledged 2xx is resent at T1, doubling up
/// to T2, and after 64·T1 without ACK the UAS ends the dialog with BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_200_is_retransmitted_then_bye_after_64_t1() {
    let server = TestServer::start_with(|c| {
        c.sip.t1 = ms(100);
        c.sip.t2 = ms(800);
    })
    .await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    // We never ACK.
    let bye = ua
        .recv_request(Duration::from_secs(10))
        .await
        .expect("BYE after 64·T1 without ACK");
    let bye_at = bye.received_at.expect("arrival time");
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();

    let copies = responses(&ua, 200, "INVITE");
    let first = copies[0].at;
    for c in &copies {
        assert_eq!(c.raw, copies[0].raw, "retransmissions are byte-identical");
        assert!(c.at < bye_at, "no 200 after the BYE");
    }
    let offsets: Vec<u128> = copies.iter().map(|c| (c.at - first).as_millis()).collect();
    // Expected 0, 100, 300, 700, 1500, 2300, ... 6300 ms: 11 copies; the
    // last may fall after the give-up time on a slow machine.
    assert!(
        copies.len() >= 10,
        "200 resent until 64·T1, arrivals at {offsets:?} ms"
    );
    let mut expected = ms(100);
    for (i, w) in copies.windows(2).enumerate() {
        let gap = w[1].at - w[0].at;
        let diff = gap.as_secs_f64() - expected.as_secs_f64();
        assert!(
            diff.abs() <= 0.040,
            "gap {i} is {gap:?}, expected {expected:?} ±40 ms; arrivals at {offsets:?} ms"
        );
        expected = (expected * 2).min(ms(800));
    }
    let bye_after = bye_at - first;
    assert!(
        bye_after >= ms(6350) && bye_after <= ms(6900),
        "BYE {bye_after:?} after the first 200, expected 64·T1 = 6.4 s"
    );
    // The BYE ends the dialog the 200 created.
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()));
    assert_eq!(
        bye.header_param("From", "tag"),
        Some(to_tag(&ok)),
        "BYE From tag = our dialog's remote tag"
    );
    assert_eq!(bye.header_param("To", "tag"), Some(call.from_tag.clone()));
    assert_eq!(bye.cseq().map(|(_, m)| m), Some("BYE".to_string()));
    // And the 200 is not resent any more (the next copy was due 800 ms
    // after the last one).
    tokio::time::sleep(ms(900)).await;
    assert_eq!(
        responses(&ua, 200, "INVITE").len(),
        copies.len(),
        "no 200 retransmission after the dialog ended"
    );
}

/// RFC 3261 §9.2: CANCEL of a ringing INVITE gets 200 (same To tag) and the
/// INVITE 487; the 487 is resent (Timer G) until our ACK stops it; no answer
/// and no media ever follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_gives_200_and_487() {
    let server = TestServer::start_with(|c| {
        c.sip.answer_delay = Duration::from_secs(3);
        c.sip.t1 = ms(100);
    })
    .await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let t0 = Instant::now();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    let trying = ua.recv_invite_response(&mut call, WAIT).await.unwrap();
    assert_eq!(trying.status(), Some(100), "{trying}");
    let ringing = ua.recv_invite_response(&mut call, WAIT).await.unwrap();
    assert_eq!(ringing.status(), Some(180), "{ringing}");
    let tag = to_tag(&ringing);
    assert!(
        ringing.header("Contact").is_some(),
        "180 carries Contact (§12.1.1, early dialog):\n{ringing}"
    );

    let cancel = ua.cancel(&call).await.unwrap();
    let ok = ua.expect_final_tx(&cancel, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert_eq!(ok.cseq(), Some((1, "CANCEL".to_string())));
    assert_eq!(to_tag(&ok), tag, "CANCEL's 200 has the INVITE's To tag");

    let terminated = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(terminated.status(), Some(487), "{terminated}");
    assert_eq!(terminated.cseq(), Some((1, "INVITE".to_string())));
    assert_eq!(to_tag(&terminated), tag);
    // Unacknowledged, the 487 is resent after T1 ...
    let again = ua.recv_response_for(&call.invite, ms(1000)).await.unwrap();
    assert_eq!(again.status(), Some(487), "487 retransmission:\n{again}");
    // ... and our ACK (same branch, §17.1.1.3) stops that.
    ua.ack(&mut call, None).await.unwrap();
    let acked = Instant::now();
    // Past the next three retransmission times (2·T1, 4·T1, 8·T1) and the
    // time the server would have answered.
    tokio::time::sleep_until(
        (acked + ms(1700))
            .max(t0 + Duration::from_millis(3600))
            .into(),
    )
    .await;
    let late: Vec<Received> = responses(&ua, 487, "INVITE")
        .into_iter()
        .filter(|r| r.at > acked)
        .collect();
    assert!(
        late.is_empty(),
        "487 still resent after ACK: {} copies",
        late.len()
    );
    assert!(
        responses(&ua, 200, "INVITE").is_empty(),
        "a cancelled INVITE is never answered"
    );
    assert!(rec.packets().is_empty(), "no RTP for a cancelled call");
}

/// RFC 3261 §11.2: OPTIONS out of dialog gets 200 with Allow, Accept and a
/// To tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_out_of_dialog_lists_capabilities() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let tx = ua.options("1000").await.unwrap();
    let ok = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert_eq!(ok.cseq(), Some((1, "OPTIONS".to_string())));
    assert_eq!(ok.call_id(), Some(tx.call_id.as_str()));
    let allow = tokens(&ok, "Allow");
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(
            allow.iter().any(|a| a == m),
            "Allow has {m}: {allow:?}\n{ok}"
        );
    }
    let accept = tokens(&ok, "Accept");
    assert!(
        accept
            .iter()
            .any(|a| a.eq_ignore_ascii_case("application/sdp")),
        "Accept has application/sdp: {accept:?}"
    );
    to_tag(&ok);
}

/// RFC 3264 §6 / RFC 3261 §13.3.1.1: an offer with no codec we support
/// (G.729, GSM) is rejected with 488 and a Warning; no media is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_without_common_codec_gets_488_with_warning() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = offer_sdp(
        rec.port(),
        &[(18, "G729/8000"), (3, "GSM/8000")],
        None,
        Direction::SendRecv,
    );
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    let r = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(488), "{r}");
    to_tag(&r);
    let warning = r
        .header("Warning")
        .unwrap_or_else(|| panic!("488 carries a Warning (§21.4.26):\n{r}"));
    let code = warning.split_whitespace().next().unwrap_or("");
    assert!(
        code.len() == 3 && code.starts_with('3') && code.parse::<u16>().is_ok(),
        "Warning has a 3xx (SDP) warn-code: {warning:?}"
    );
    ua.ack(&mut call, None).await.unwrap();
    tokio::time::sleep(ms(500)).await;
    assert!(rec.packets().is_empty(), "no RTP for a rejected call");
    assert!(responses(&ua, 200, "INVITE").is_empty());
}

/// RFC 3261 §12.2.2: BYE, INFO and re-INVITE that match no dialog (right
/// Call-ID, unknown To tag; or unknown Call-ID) get 481; the real call is
/// unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_unknown_dialog_get_481() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (mut call, _) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    assert!(rec.wait_for_packets(5, WAIT).await);

    let mut stranger = call.clone();
    let fake_tag = random_token();
    stranger.to_tag = Some(fake_tag.clone());

    let tx = ua.bye(&mut stranger).await.unwrap();
    let r = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(481), "BYE, unknown To tag:\n{r}");
    assert_eq!(r.header_param("To", "tag"), Some(fake_tag.clone()));

    let tx = ua
        .info(
            &mut stranger,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        )
        .await
        .unwrap();
    let r = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(481), "INFO, unknown To tag:\n{r}");

    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 2);
    ua.reinvite(&mut stranger, Some(&offer)).await.unwrap();
    let r = ua.expect_final(&mut stranger, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(481), "re-INVITE, unknown To tag:\n{r}");
    ua.ack(&mut stranger, None).await.unwrap();

    let mut unknown = call.clone();
    unknown.call_id = format!("{}@testua", random_token());
    let tx = ua.bye(&mut unknown).await.unwrap();
    let r = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(481), "BYE, unknown Call-ID:\n{r}");

    // The real dialog lives on: media keeps flowing, its BYE works.
    let n = rec.packets().len();
    assert!(
        rec.wait_for_packets(n + 10, WAIT).await,
        "media continues for the real call"
    );
    assert!(requests(&ua, "BYE").is_empty());
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3261 §13.2.1 / RFC 3264: an INVITE without SDP gets our offer in the
/// 200 (PCMU, PCMA, telephone-event); the answer in the ACK (PCMA only)
/// decides the codec and the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_offer_takes_the_answer_from_the_ack() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let mut call = ua.invite(InviteOptions::new("1000")).await.unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert!(
        ok.header("Content-Type")
            .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp")),
        "the 200 carries SDP:\n{ok}"
    );
    let offer = parse_sdp_answer(&ok.body_str()).expect("SDP offer in the 200");
    assert!(offer.port != 0, "a usable audio stream: {offer:?}");
    assert!(offer.pts.contains(&0), "PCMU offered: {offer:?}");
    assert!(offer.pts.contains(&8), "PCMA offered: {offer:?}");
    let te = offer.telephone_event_pt().expect("telephone-event offered");
    assert!(offer.pts.contains(&te), "telephone-event PT on the m= line");
    assert_eq!(offer.direction, Direction::SendRecv);

    let answer = offer_sdp(
        rec.port(),
        &[(8, "PCMA/8000")],
        Some(te),
        Direction::SendRecv,
    );
    ua.ack(&mut call, Some(&answer)).await.unwrap();
    assert!(
        rec.wait_for_packets(25, WAIT).await,
        "RTP arrives at the port of the answer in the ACK"
    );
    for p in rec.packets() {
        assert_eq!(p.header.payload_type, 8, "PCMA as answered");
        assert_eq!(p.payload.len(), 160, "20 ms of G.711");
        assert_eq!(p.from, offer.rtp_addr(), "sent from the offered address");
    }
    hang_up(&mut ua, &mut call).await;
}

/// Shared by the re-INVITE and UPDATE tests: the new offer's address wins.
async fn media_moves(use_update: bool) {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let old = RtpRecorder::bind().await.unwrap();
    let new = RtpRecorder::bind().await.unwrap();
    let (mut call, first) = establish(&mut ua, &old, InviteOptions::new("1000")).await;
    let first_sdp = call.final_response.as_ref().unwrap().body_str();
    assert!(
        old.wait_for_packets(5, WAIT).await,
        "RTP at the first address"
    );

    let offer = pcmu_offer(new.port(), Direction::SendRecv, 2);
    let ok = if use_update {
        let tx = ua.update(&mut call, Some(&offer)).await.unwrap();
        ua.expect_final_tx(&tx, WAIT).await.unwrap()
    } else {
        ua.reinvite(&mut call, Some(&offer)).await.unwrap();
        ua.expect_final(&mut call, WAIT).await.unwrap()
    };
    assert_eq!(ok.status(), Some(200), "{ok}");
    let answer = parse_sdp_answer(&ok.body_str()).expect("SDP answer in the 200");
    assert_eq!(answer.rtp_addr(), first.rtp_addr(), "our RTP address stays");
    assert_eq!(answer.pts[0], 0, "PCMU still");
    assert_eq!(answer.direction, Direction::SendRecv);
    assert_sdp_version_rule(&first_sdp, &ok.body_str());
    if !use_update {
        ua.ack(&mut call, None).await.unwrap();
    }

    assert!(
        new.wait_for_packets(10, WAIT).await,
        "RTP arrives at the new address"
    );
    assert!(
        old.wait_for_silence(ms(300), Duration::from_secs(2)).await,
        "RTP stops at the old address"
    );
    assert!(new.packets().iter().all(|p| p.from == first.rtp_addr()));
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3264 §8.3.1 / RFC 3261 §14: a re-INVITE with a new address moves
/// the media there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_moves_media_to_the_new_address() {
    media_moves(false).await;
}

/// RFC 3311 / RFC 3264 §8.3.1: an UPDATE with a new address moves the media
/// there, the answer in its 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_moves_media_to_the_new_address() {
    media_moves(true).await;
}

/// RFC 3264 §8.4 / RFC 3550 §5.1 / RFC 3551 §4.1: hold (sendonly offer)
/// gets a recvonly answer and stops our RTP; resume restarts it on the same
/// SSRC, the next sequence number, timestamps advanced by the elapsed time,
/// and the marker bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (mut call, _) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    let first_sdp = call.final_response.as_ref().unwrap().body_str();
    assert!(rec.wait_for_packets(10, WAIT).await);

    let hold = pcmu_offer(rec.port(), Direction::SendOnly, 2);
    ua.reinvite(&mut call, Some(&hold)).await.unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    let answer = call.answer_sdp().expect("SDP answer");
    assert_eq!(
        answer.direction,
        Direction::RecvOnly,
        "sendonly -> recvonly"
    );
    let hold_sdp = ok.body_str();
    assert_sdp_version_rule(&first_sdp, &hold_sdp);
    assert_ne!(
        origin(&first_sdp).1,
        origin(&hold_sdp).1,
        "direction changed"
    );
    ua.ack(&mut call, None).await.unwrap();
    assert!(
        rec.wait_for_silence(ms(300), Duration::from_secs(2)).await,
        "RTP stops on hold"
    );
    let before = rec.packets();
    let last = before.last().expect("packets before hold").clone();
    tokio::time::sleep(ms(700)).await;
    assert_eq!(rec.packets().len(), before.len(), "silent while on hold");

    let resume = pcmu_offer(rec.port(), Direction::SendRecv, 3);
    ua.reinvite(&mut call, Some(&resume)).await.unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert_eq!(call.answer_sdp().unwrap().direction, Direction::SendRecv);
    assert_sdp_version_rule(&hold_sdp, &ok.body_str());
    ua.ack(&mut call, None).await.unwrap();
    assert!(
        rec.wait_for_packets(before.len() + 10, WAIT).await,
        "RTP resumes"
    );

    let next = rec.packets()[before.len()].clone();
    assert_eq!(next.header.ssrc, last.header.ssrc, "same SSRC after hold");
    assert_eq!(
        next.header.sequence,
        last.header.sequence.wrapping_add(1),
        "sequence numbers count packets sent, so no gap"
    );
    assert!(
        next.header.marker,
        "marker bit on the first packet after hold"
    );
    let elapsed = next.arrival - last.arrival;
    assert!(elapsed >= ms(900), "the hold lasted ({elapsed:?})");
    let step = i64::from(next.header.timestamp.wrapping_sub(last.header.timestamp) as i32);
    let expected = (elapsed.as_secs_f64() * 8000.0) as i64;
    assert!(
        (step - expected).abs() <= 480,
        "timestamp step {step} across a {elapsed:?} gap, expected ≈{expected} (±60 ms)"
    );
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3264 §6.1: an a=inactive offer is answered a=inactive and our RTP
/// stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_offer_stops_media() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (mut call, _) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    assert!(rec.wait_for_packets(10, WAIT).await);
    let offer = pcmu_offer(rec.port(), Direction::Inactive, 2);
    ua.reinvite(&mut call, Some(&offer)).await.unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert_eq!(call.answer_sdp().unwrap().direction, Direction::Inactive);
    ua.ack(&mut call, None).await.unwrap();
    assert!(
        rec.wait_for_silence(ms(300), Duration::from_secs(2)).await,
        "RTP stops when inactive"
    );
    let n = rec.packets().len();
    tokio::time::sleep(ms(500)).await;
    assert_eq!(rec.packets().len(), n, "still silent");
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3261 §18.3 / §18.2.2: over TCP a whole call (audio, then the
/// server's BYE) and OPTIONS run on the one connection the UA opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_call_and_options_over_tcp() {
    let server = TestServer::start().await;
    let mut ua = TestUa::tcp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(InviteOptions::new(ECHO).with_sdp(offer))
        .await
        .unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    assert!(
        ok.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP")),
        "{ok}"
    );
    let contact = uri_of(ok.header("Contact").expect("Contact")).to_string();
    assert_eq!(
        uri_param(&contact, "transport").as_deref(),
        Some("tcp"),
        "Contact says TCP: {contact}"
    );
    ua.ack(&mut call, None).await.unwrap();

    // The TCP UA has no listener: a BYE can only arrive on this connection.
    let bye = ua
        .recv_request(Duration::from_secs(15))
        .await
        .expect("BYE at the end of the call flow, on our connection");
    assert_eq!(bye.method(), Some("BYE"));
    assert!(
        bye.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP")),
        "BYE sent over TCP:\n{bye}"
    );
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();

    let audio = rec.decode_audio(Some(0));
    let welcome = g711::decode_ulaw(&g711::encode_ulaw(&prompt_samples(PromptId::Welcome)));
    assert!(
        find(&audio, &welcome).is_some(),
        "the welcome prompt arrived, sample-exact ({} samples received)",
        audio.len()
    );

    let tx = ua.options("1000").await.unwrap();
    let r = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(200), "OPTIONS over TCP:\n{r}");
    assert!(tokens(&r, "Allow").iter().any(|m| m == "INVITE"));
}

/// RTP inactivity: a caller that never sends RTP is hung up (BYE) once the
/// configured timeout (1 s) has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_caller_gets_bye_after_rtp_timeout() {
    let server = start_long(|c| c.rtp.inactivity_timeout = Some(Duration::from_secs(1))).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (call, _) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    let acked = Instant::now();
    let bye = ua.recv_request(WAIT).await.expect("BYE for RTP inactivity");
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()));
    let after = bye.received_at.unwrap() - acked;
    assert!(
        after >= ms(900) && after <= ms(1600),
        "BYE {after:?} after the ACK, timeout 1 s"
    );
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();
    assert!(
        rec.wait_for_silence(ms(300), Duration::from_secs(2)).await,
        "RTP stops with the BYE"
    );
}

/// RTP inactivity: a caller sending RTP every 20 ms keeps the call up well
/// past the timeout; once it stops, the timeout applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_sending_rtp_is_not_timed_out() {
    let server = start_long(|c| c.rtp.inactivity_timeout = Some(Duration::from_secs(1))).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (_call, answer) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    let start = Instant::now();
    let silence = vec![0i16; 8000 * 5 / 2];
    rec.send_g711(
        answer.rtp_addr(),
        RtpHeader::new(0, 1000, 0, 0x5eed_cafe).with_marker(true),
        &silence,
        ms(20),
    )
    .await
    .expect("RTP sent");
    let stopped = Instant::now();
    assert!(stopped - start >= ms(2400), "sent for 2.5 s");
    assert!(
        requests(&ua, "BYE").is_empty(),
        "no BYE while the caller sends RTP"
    );
    let bye = ua.recv_request(WAIT).await.expect("BYE once RTP stops");
    assert_eq!(bye.method(), Some("BYE"));
    let after = bye.received_at.unwrap() - stopped;
    assert!(
        after >= ms(850) && after <= ms(1600),
        "BYE {after:?} after our last RTP, timeout 1 s"
    );
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();
}

/// Symmetric RTP (RFC 4961): once the caller's RTP arrives from another
/// address than its SDP says, our RTP goes there, still from our port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_follows_the_callers_actual_source() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let advertised = RtpRecorder::bind().await.unwrap();
    let actual = RtpRecorder::bind().await.unwrap();
    let (mut call, answer) = establish(&mut ua, &advertised, InviteOptions::new("1000")).await;
    assert!(
        advertised.wait_for_packets(5, WAIT).await,
        "RTP to the SDP address first"
    );
    actual
        .send_g711(
            answer.rtp_addr(),
            RtpHeader::new(0, 1, 0, 0x0bad_f00d).with_marker(true),
            &[0i16; 800],
            ms(20),
        )
        .await
        .unwrap();
    assert!(
        actual.wait_for_packets(10, WAIT).await,
        "RTP goes to where the caller's RTP comes from"
    );
    assert!(
        advertised
            .wait_for_silence(ms(300), Duration::from_secs(2))
            .await,
        "and no longer to the SDP address"
    );
    for p in actual.packets().iter().chain(advertised.packets().iter()) {
        assert_eq!(p.from, answer.rtp_addr(), "sent from our SDP address");
    }
    hang_up(&mut ua, &mut call).await;
}

/// RFC 4028 §6: Session-Expires below our minimum gets 422 with Min-SE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_interval_too_small_gets_422_with_min_se() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(
            InviteOptions::new("1000")
                .with_sdp(offer)
                .with_header("Supported", "timer")
                .with_header("Session-Expires", "30"),
        )
        .await
        .unwrap();
    let r = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(422), "{r}");
    let min_se = r.header("Min-SE").unwrap_or_else(|| panic!("Min-SE:\n{r}"));
    let secs: u32 = min_se
        .split(';')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("Min-SE delta-seconds");
    assert_eq!(secs, 90, "Min-SE is our minimum");
    ua.ack(&mut call, None).await.unwrap();
    assert!(responses(&ua, 200, "INVITE").is_empty());
}

/// RFC 4028 §9: a UAC that supports timers and asks for 1800 s gets
/// Session-Expires: 1800;refresher=uac and Require: timer in the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timer_is_accepted_with_uac_refresher() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(
            InviteOptions::new("1000")
                .with_sdp(offer)
                .with_header("Supported", "timer")
                .with_header("Session-Expires", "1800"),
        )
        .await
        .unwrap();
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    let se = ok
        .header("Session-Expires")
        .unwrap_or_else(|| panic!("Session-Expires in the 200:\n{ok}"));
    let secs: u32 = se.split(';').next().unwrap().trim().parse().unwrap();
    assert_eq!(secs, 1800, "{se}");
    assert_eq!(
        param(se, "refresher").map(|r| r.to_ascii_lowercase()),
        Some("uac".into()),
        "{se}"
    );
    assert!(
        tokens(&ok, "Require").iter().any(|t| t == "timer"),
        "Require: timer:\n{ok}"
    );
    ua.ack(&mut call, None).await.unwrap();
    hang_up(&mut ua, &mut call).await;
}

/// RFC 3261 §21.5.4: at max_calls a new INVITE gets 503 with Retry-After;
/// once a call ends, calls are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_calls_gets_503_until_a_call_ends() {
    let server = start_long(|c| c.sip.max_calls = 1).await;
    let mut ua1 = TestUa::udp(server.sip).await.unwrap();
    let mut ua2 = TestUa::udp(server.sip).await.unwrap();
    let rec1 = RtpRecorder::bind().await.unwrap();
    let rec2 = RtpRecorder::bind().await.unwrap();
    let (mut first, _) = establish(&mut ua1, &rec1, InviteOptions::new("1000")).await;

    let offer = pcmu_offer(rec2.port(), Direction::SendRecv, 1);
    let mut second = ua2
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    let r = ua2.expect_final(&mut second, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(503), "{r}");
    let retry = r
        .header("Retry-After")
        .unwrap_or_else(|| panic!("Retry-After in the 503:\n{r}"));
    retry
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap_or_else(|_| panic!("Retry-After delta-seconds: {retry:?}"));
    ua2.ack(&mut second, None).await.unwrap();
    assert!(rec2.packets().is_empty());

    hang_up(&mut ua1, &mut first).await;
    let (mut third, _) = establish(&mut ua2, &rec2, InviteOptions::new("1000")).await;
    assert!(
        rec2.wait_for_packets(5, WAIT).await,
        "the new call gets media"
    );
    hang_up(&mut ua2, &mut third).await;
}

/// RFC 3261 §21.4.1: an application/sdp body that is not SDP gets 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sdp_gets_400() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let mut call = invite_with_body(
        &mut ua,
        "application/sdp",
        "this is not a session description\r\n",
    )
    .await;
    let r = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(400), "{r}");
    to_tag(&r);
    ua.ack(&mut call, None).await.unwrap();
}

/// RFC 3261 §8.2.3 / §21.4.13: an INVITE body we do not understand
/// (text/plain) gets 415 with Accept: application/sdp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_sdp_body_gets_415_with_accept() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let mut call = invite_with_body(&mut ua, "text/plain", "hello\r\n").await;
    let r = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(415), "{r}");
    let accept = tokens(&r, "Accept");
    assert!(
        accept
            .iter()
            .any(|a| a.eq_ignore_ascii_case("application/sdp")),
        "415 lists what we accept: {accept:?}\n{r}"
    );
    ua.ack(&mut call, None).await.unwrap();
}

/// RFC 3261 §12.1.1 / §12.2.1.1: Record-Route is copied into the 200, and
/// our BYE carries it as Route with the caller's Contact as Request-URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_route_is_echoed_and_used_as_route() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let rr = format!("<sip:127.0.0.1:{};lr>", ua.local_addr().port());
    let (call, _) = establish(
        &mut ua,
        &rec,
        InviteOptions::new(ECHO).with_header("Record-Route", &rr),
    )
    .await;
    let ok = call.final_response.clone().unwrap();
    assert_eq!(
        ok.header_all("Record-Route"),
        vec![rr.as_str()],
        "the 200 copies Record-Route:\n{ok}"
    );

    let bye = ua
        .recv_request(Duration::from_secs(15))
        .await
        .expect("BYE at the end of the call flow");
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(
        bye.header_all("Route"),
        vec![rr.as_str()],
        "BYE routes via the recorded route:\n{bye}"
    );
    assert_eq!(
        bye.uri(),
        Some(uri_of(&call.contact)),
        "BYE Request-URI is our Contact (loose routing):\n{bye}"
    );
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();
}

/// RFC 3581 §4: with `rport` in the Via, responses carry rport=<source
/// port> and go to the source port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rport_is_filled_in_responses() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let port = ua.local_addr().port().to_string();
    let offer = pcmu_offer(rec.port(), Direction::SendRecv, 1);
    let mut call = ua
        .invite(InviteOptions::new("1000").with_sdp(offer))
        .await
        .unwrap();
    assert!(call.invite.via.contains(";rport"), "our Via asks for rport");
    let trying = ua.recv_invite_response(&mut call, WAIT).await.unwrap();
    assert_eq!(trying.status(), Some(100));
    let ok = ua.expect_final(&mut call, WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200), "{ok}");
    for r in [&trying, &ok] {
        assert_eq!(
            r.header_param("Via", "rport"),
            Some(port.clone()),
            "rport=<our source port>:\n{r}"
        );
        assert_eq!(r.top_branch(), Some(call.invite.branch.clone()));
        if let Some(received) = r.header_param("Via", "received") {
            assert_eq!(received, "127.0.0.1");
        }
    }
    ua.ack(&mut call, None).await.unwrap();
    hang_up(&mut ua, &mut call).await;

    // A Via whose sent-by port is not where the request came from (as
    // behind a NAT): with rport the response still reaches the source.
    let decoy = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (bytes, tx) = options_with_via(decoy.local_addr().unwrap(), true, server.sip);
    ua.send_raw(&bytes).await.unwrap();
    let r = ua
        .expect_final_tx(&tx, WAIT)
        .await
        .expect("response at our source port despite the Via port");
    assert_eq!(r.status(), Some(200), "{r}");
    assert_eq!(r.header_param("Via", "rport"), Some(port.clone()), "{r}");
}

/// RFC 3581 §4: with `rport`, the server MUST also add `received` with the
/// source IP, "even if it is identical to the value of the sent-by".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn rport_response_also_carries_received() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let tx = ua.options("1000").await.unwrap();
    let r = ua.expect_final_tx(&tx, WAIT).await.unwrap();
    assert_eq!(r.status(), Some(200), "{r}");
    assert_eq!(
        r.header_param("Via", "received").as_deref(),
        Some("127.0.0.1"),
        "received=<source IP> alongside rport:\n{r}"
    );
}

/// RFC 3261 §18.2.2: without `rport`, a UDP response goes to the Via's
/// sent-by port, not to the source port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rport_responses_go_to_the_via_port() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let decoy = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (bytes, tx) = options_with_via(decoy.local_addr().unwrap(), false, server.sip);
    ua.send_raw(&bytes).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = tokio::time::timeout(WAIT, decoy.recv_from(&mut buf))
        .await
        .expect("response at the Via port")
        .unwrap();
    assert_eq!(from, server.sip);
    let r = Msg::parse(&buf[..n]).expect("a SIP response");
    assert_eq!(r.status(), Some(200), "{r}");
    assert_eq!(r.top_branch(), Some(tx.branch.clone()));
    assert_eq!(r.header_param("Via", "rport"), None, "no rport added: {r}");
    tokio::time::sleep(ms(200)).await;
    assert!(
        responses(&ua, 200, "OPTIONS").is_empty(),
        "nothing at the source port"
    );
}

/// Graceful shutdown: stopping the server sends BYE to an established call
/// and completes once that BYE is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hangs_up_with_bye() {
    let server = start_long(|_| {}).await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    let rec = RtpRecorder::bind().await.unwrap();
    let (call, _) = establish(&mut ua, &rec, InviteOptions::new("1000")).await;
    assert!(rec.wait_for_packets(5, WAIT).await);

    let stopping = tokio::spawn(server.stop());
    let bye = ua.recv_request(WAIT).await.expect("BYE on shutdown");
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()));
    assert_eq!(bye.header_param("To", "tag"), Some(call.from_tag.clone()));
    ua.respond(&bye, 200, "OK", &[], None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), stopping)
        .await
        .expect("shutdown finishes once the BYE is answered")
        .unwrap();
    assert!(
        rec.wait_for_silence(ms(300), Duration::from_secs(2)).await,
        "RTP stops"
    );
}
