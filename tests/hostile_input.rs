//! Hostile bytes against a running server, over real sockets: whatever a
//! peer sends, SIP service goes on and a connection the server gives up on
//! is closed.

mod common;

use std::time::Duration;

use common::server::TestServer;
use common::ua::TestUa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(10);

/// `INV`, a two-byte UTF-8 character, and a blank line: the start line's
/// `SIP/` check used to slice it at byte 4, inside the character, and the
/// panic ended the SIP task (UDP) or the connection task (TCP).
const SPLIT_CHARACTER: &[u8] = b"INV\xc3\xa9\n\n";

async fn options_answered(ua: &mut TestUa) {
    let tx = ua.options("probe").await.expect("OPTIONS sent");
    let resp = ua
        .expect_final_tx(&tx, WAIT)
        .await
        .expect("OPTIONS answered");
    assert_eq!(resp.status(), Some(200), "{resp}");
}

/// Reads until the server closes the connection; what it sent before.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "connection still open after {within:?}; received {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_utf8_start_line_over_udp_leaves_sip_answering() {
    let server = TestServer::start().await;
    let mut ua = TestUa::udp(server.sip).await.unwrap();
    options_answered(&mut ua).await;

    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    attacker.send_to(SPLIT_CHARACTER, server.sip).await.unwrap();
    // The datagram goes before the OPTIONS on the same path; give the SIP
    // task a moment so the order does not matter for the verdict.
    tokio::time::sleep(Duration::from_millis(100)).await;
    options_answered(&mut ua).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_utf8_start_line_over_tcp_closes_that_connection_only() {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.sip).await.unwrap();
    stream.write_all(SPLIT_CHARACTER).await.unwrap();
    // Nothing can be answered (not even a method), so the connection is
    // closed: before the fix the task panicked and the socket stayed open.
    let got = read_until_closed(&mut stream, WAIT).await.unwrap();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));

    let mut ua = TestUa::tcp(server.sip).await.unwrap();
    options_answered(&mut ua).await;
    server.stop().await;
}
