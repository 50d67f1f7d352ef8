//! A stand-in for an operator's SMS gateway: a tiny HTTP/1.1 server on
//! loopback that checks pinbridge's webhook signature the way
//! docs/webhook.md tells a gateway to, and keeps the codes it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    pub code: String,
    pub body: serde_json::Value,
}

pub struct SmsGateway {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Sms>>>,
    task: JoinHandle<()>,
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl SmsGateway {
    /// Starts the gateway; requests with a bad signature get 401.
    pub async fn start(secret: &str) -> SmsGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (secret, store) = (secret.to_string(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (secret, store) = (secret.clone(), store.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let len: usize = header(&head, "Content-Length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break (head, buf[end + 4..end + 4 + len].to_vec());
                        }
                    };
                    let ts = header(&head, "X-Pinbridge-Timestamp")
                        .unwrap_or("")
                        .to_string();
                    let sig = header(&head, "X-Pinbridge-Signature")
                        .unwrap_or("")
                        .to_string();
                    let mut mac =
                        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
                    mac.update(ts.as_bytes());
                    mac.update(b".");
                    mac.update(&body);
                    let want: String = mac
                        .finalize()
                        .into_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let ok = sig.strip_prefix("sha256=") == Some(want.as_str());
                    let status = if ok {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                            let sms = Sms {
                                to: v["to"].as_str().unwrap_or("").to_string(),
                                code: v["code"].as_str().unwrap_or("").to_string(),
                                body: v.clone(),
                            };
                            if let Ok(mut r) = store.lock() {
                                r.push(sms);
                            }
                        }
                        "200 OK"
                    } else {
                        "401 Unauthorized"
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        SmsGateway {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    pub fn received(&self) -> Vec<Sms> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits for the `n`th message (1-based) and returns it.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Option<Sms> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.received().get(n - 1) {
                return Some(s.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
