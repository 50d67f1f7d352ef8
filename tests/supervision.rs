//! The supervision policy on the real binary: a panic in any long-lived
//! task (the SIP task, a TCP connection, a call, a room, the database
//! thread, the HTTP server) takes the process down with status 70, so a
//! service manager restarts it; pinbridge is never left up and deaf.
//!
//! Each test plants a panic with `PINBRIDGE_INJECT_PANIC=<site>` (see
//! src/fault.rs), drives the server to that site the way a caller or an
//! API client would, and checks the exit status and the log line.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dtmf::{send_slots, RtpStream};
use common::process::{free_port, pinbridge_config, Pinbridge, TempDir};
use common::rtp::RtpRecorder;
use common::ua::{phone_offer, Call, InviteOptions, TestUa};

const EXIT_INTERNAL_ERROR: i32 = 70;

/// Waits for the process to exit and checks it did so with status 70,
/// logging the injected panic.
async fn expect_exit_70(pb: &mut Pinbridge, site: &str) {
    let status = pb.proc.wait_exit_async(Duration::from_secs(20)).await;
    // Let the reader threads collect the last lines.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stderr = pb.stderr.text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(EXIT_INTERNAL_ERROR),
        "a panic in the {site} task must end the process with status 70; got {status:?}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("panic injected at site {site}"))
            && stderr.contains("internal error: a task panicked"),
        "the panic and the policy are logged; stderr:\n{stderr}"
    );
}

fn spawn(dir: &TempDir, site: &str, config: impl Fn(u16) -> String) -> Pinbridge {
    let port = free_port();
    let path = dir.join("pinbridge.toml");
    std::fs::write(&path, config(port)).expect("write config");
    let sip = SocketAddr::from(([127, 0, 0, 1], port));
    let path = path.display().to_string();
    Pinbridge::spawn(
        &["run", "--config", &path],
        &[("PINBRIDGE_INJECT_PANIC", site), ("CONFERENCE_PIN", "1234")],
        sip,
    )
}

fn plain_config(port: u16) -> String {
    pinbridge_config(port, (32000, 32999), &[])
}

/// Places a call and ACKs it; returns the UA, the call and the RTP socket
/// the server streams to.
async fn answered_call(sip: SocketAddr) -> (TestUa, Call, RtpRecorder, SocketAddr) {
    let mut ua = TestUa::udp(sip).await.expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let opts = InviteOptions::new("1000").with_sdp(phone_offer(rec.port()));
    let (call, answer) = ua.answered_call(opts, Duration::from_secs(5)).await;
    let media = SocketAddr::new(answer.addr, answer.port);
    (ua, call, rec, media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_sip_task_exits_70() {
    let dir = TempDir::new("supervise-sip");
    let mut pb = spawn(&dir, "sip", plain_config);
    // The first message the SIP task receives panics it: keep asking, as
    // a monitoring probe would, until the process is gone.
    let mut ua = TestUa::udp(pb.sip).await.expect("test UA");
    for _ in 0..50 {
        if pb.proc.has_exited() {
            break;
        }
        let _ = ua.options("ping").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_exit_70(&mut pb, "sip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_tcp_connection_exits_70() {
    let dir = TempDir::new("supervise-tcp");
    let mut pb = spawn(&dir, "tcp", plain_config);
    // UDP is unaffected: the server is up.
    pb.wait_ready(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ua = TestUa::tcp(pb.sip).await.expect("TCP test UA");
    let _ = ua.options("ping").await;
    expect_exit_70(&mut pb, "tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_call_task_exits_70() {
    let dir = TempDir::new("supervise-call");
    let mut pb = spawn(&dir, "call", plain_config);
    pb.wait_ready(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _call = answered_call(pb.sip).await;
    expect_exit_70(&mut pb, "call").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_room_task_exits_70() {
    let dir = TempDir::new("supervise-room");
    let mut pb = spawn(&dir, "room", plain_config);
    pb.wait_ready(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_ua, _call, rec, media) = answered_call(pb.sip).await;
    // The right PIN by RFC 4733: the caller joins, the room starts ticking.
    let mut stream = RtpStream::new(0, 0x5151_0001);
    let mut slots = stream.silence(200);
    slots.extend(stream.rfc4733("1234#", 100, 100));
    slots.extend(stream.silence(2000));
    let sending = tokio::spawn(async move {
        let _ = send_slots(&rec, media, slots).await;
    });
    expect_exit_70(&mut pb, "room").await;
    sending.abort();
}

fn api_config(dir: &TempDir, http_port: u16) -> impl Fn(u16) -> String + '_ {
    move |port| {
        format!(
            "{}\n[store]\npath = \"{d}/pinbridge.db\"\n[verify]\nkey_file = \"{d}/pinbridge.key\"\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\napi_keys = [\"{KEY}\"]\n",
            pinbridge_config(port, (32000, 32999), &[]),
            d = dir.path().display(),
        )
    }
}

const KEY: &str = "supervision-test-key-0123456789abcdef";

async fn api_request(http: SocketAddr) {
    let req = format!(
        "GET /v1/participants HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    );
    // The server dies mid-request: any outcome but a hang is fine here.
    let attempt = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(http).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), attempt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_database_thread_exits_70() {
    let dir = TempDir::new("supervise-store");
    let http_port = free_port();
    let mut pb = spawn(&dir, "store", api_config(&dir, http_port));
    // The database may be asked something while starting, or only once the
    // API is used: either way the process must go.
    let _ = pb.wait_ready(Duration::from_secs(10)).await;
    if !pb.proc.has_exited() {
        api_request(SocketAddr::from(([127, 0, 0, 1], http_port))).await;
    }
    expect_exit_70(&mut pb, "store").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_http_server_exits_70() {
    let dir = TempDir::new("supervise-http");
    let http_port = free_port();
    let mut pb = spawn(&dir, "http", api_config(&dir, http_port));
    pb.wait_ready(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api_request(SocketAddr::from(([127, 0, 0, 1], http_port))).await;
    expect_exit_70(&mut pb, "http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_site_is_refused_at_start() {
    let dir = TempDir::new("supervise-unknown");
    let mut pb = spawn(&dir, "everywhere", plain_config);
    let status = pb.proc.wait_exit_async(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "{}",
        pb.stderr.text()
    );
    assert!(
        pb.stderr.text().contains("PINBRIDGE_INJECT_PANIC"),
        "{}",
        pb.stderr.text()
    );
}
