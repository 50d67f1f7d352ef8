//! A deliberately small HTTP/1.1 client for the API and join-page tests:
//! the request goes out as the exact bytes the test wrote (so malformed and
//! oversized requests can be sent too), and the response is read until the
//! server closes (the tests ask for `Connection: close`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A response: status, headers in order, and the body (de-chunked).
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Sends `bytes`, reads the whole response within `timeout`, and parses it.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> RawReply {
    let s = TcpStream::connect(addr).await.unwrap();
    exchange_on(s, bytes, timeout).await
}

/// A connection from a chosen source address: every 127.x.y.z works on
/// loopback, so a test can be "another client".
pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// [`exchange`] from a chosen source address.
pub async fn exchange_from(
    source: IpAddr,
    addr: SocketAddr,
    bytes: &[u8],
    timeout: Duration,
) -> RawReply {
    exchange_on(connect_from(source, addr).await, bytes, timeout).await
}

/// What comes back on a connection the server may close at once: the
/// bytes read until it closed (empty when it answered nothing), or None
/// when it was still open after `timeout`. A reset counts as closed.
pub async fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    match tokio::time::timeout(timeout, s.read_to_end(&mut buf)).await {
        Ok(_) => Some(buf),
        Err(_) => None,
    }
}

/// [`exchange`] on a connection already open.
pub async fn exchange_on(mut s: TcpStream, bytes: &[u8], timeout: Duration) -> RawReply {
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(timeout, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    parse(buf)
}

/// Parses a whole response as read.
pub fn parse(buf: Vec<u8>) -> RawReply {
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawReply {
        status,
        headers,
        body,
    }
}

/// Undoes `Transfer-Encoding: chunked`.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
