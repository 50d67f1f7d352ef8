//! Flood harness: the release pinbridge binary on loopback with a small
//! RTP range (500 ports), a source on 127.0.0.2 that sends INVITEs and
//! never ACKs, and meanwhile a legitimate caller on 127.0.0.1 and an
//! OPTIONS prober on 127.0.0.3. Reports pinbridge's RSS before and after,
//! whether the caller was answered (and how fast) and heard the welcome
//! prompt, whether the OPTIONS were answered, and the bytes and datagrams
//! sent back to the flooder per byte and datagram it sent.
//!
//! ```text
//! cargo bench --bench flood                          # 10,000 INVITEs in about 1 s
//! cargo bench --bench flood -- --invites 300 --rate 5 --probe-ms 3000  # a slow sender: 5/s for 60 s
//! ```
//!
//! Everything it sends goes to loopback, is bounded in count, and stops.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinbridge::ivr::prompts::{PromptId, PromptSet};
use pinbridge::media::g711::Codec;

struct Args {
    invites: u32,
    /// INVITEs per second.
    rate: u32,
    /// How long to keep counting what comes back after the last INVITE
    /// (2xx retransmissions end 64·T1 = 32 s after the answer, then BYE).
    tail_secs: u64,
    /// How often the prober sends OPTIONS.
    probe_ms: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        invites: 10_000,
        rate: 8_500,
        tail_secs: 70,
        probe_ms: 250,
    };
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|s| s != "--bench")
        .collect();
    let mut i = 0;
    while i < argv.len() {
        let val = |i: usize| argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match argv[i].as_str() {
            "--invites" => a.invites = val(i).map_or(a.invites, |v| v as u32),
            "--rate" => a.rate = val(i).map_or(a.rate, |v| (v as u32).max(1)),
            "--tail" => a.tail_secs = val(i).unwrap_or(a.tail_secs),
            "--probe-ms" => a.probe_ms = val(i).map_or(a.probe_ms, |v| v.max(10)),
            _ => {}
        }
        i += 1;
    }
    a
}

fn free_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(5399)
}

struct Pinbridge {
    child: Child,
    sip: SocketAddr,
}

fn start_pinbridge() -> Pinbridge {
    let port = free_port("127.0.0.1");
    let sip: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_pinbridge"))
        .args([
            "run",
            "--sip",
            &sip.to_string(),
            "--rtp-ports",
            "30000-30999",
        ])
        .env("CONFERENCE_PIN", "1234")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pinbridge");
    std::thread::sleep(Duration::from_millis(500));
    Pinbridge { child, sip }
}

impl Drop for Pinbridge {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn sdp(ip: &str, rtp_port: u16, id: u32) -> String {
    format!(
        "v=0\r\no=- {id} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
}

fn invite(from: SocketAddr, server: SocketAddr, tag: &str, n: u32, body: &str) -> String {
    let ip = from.ip();
    format!(
        "INVITE sip:1000@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-{tag}-{n};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{tag}@{ip}>;tag={tag}{n}\r\n\
To: <sip:1000@{server}>\r\n\
Call-ID: {tag}-{n}@{ip}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:{tag}@{from}>\r\n\
User-Agent: pinbridge-flood-bench\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What the flooder got back, counted by a thread.
#[derive(Default)]
struct Counter {
    bytes: AtomicU64,
    datagrams: AtomicU64,
}

fn count_returns(socket: UdpSocket, counter: Arc<Counter>, stop: Arc<AtomicBool>) {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            counter.bytes.fetch_add(n as u64, Ordering::Relaxed);
            counter.datagrams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The legitimate call: INVITE, 200 (timed), ACK, then RTP for a while.
struct CallOutcome {
    answer: Option<Duration>,
    status: Option<u16>,
    heard_welcome: bool,
    rtp_packets: usize,
}

fn legitimate_call(server: SocketAddr, welcome: &[u8]) -> CallOutcome {
    let mut out = CallOutcome {
        answer: None,
        status: None,
        heard_welcome: false,
        rtp_packets: 0,
    };
    let (Ok(sip), Ok(rtp)) = (
        UdpSocket::bind("127.0.0.1:0"),
        UdpSocket::bind("127.0.0.1:0"),
    ) else {
        return out;
    };
    let (Ok(from), Ok(rtp_addr)) = (sip.local_addr(), rtp.local_addr()) else {
        return out;
    };
    let body = sdp("127.0.0.1", rtp_addr.port(), 1);
    let msg = invite(from, server, "caller", 1, &body);
    let started = Instant::now();
    if sip.send_to(msg.as_bytes(), server).is_err() {
        return out;
    }
    let _ = sip.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 65_536];
    let mut to = None;
    // No retransmission of our own: an INVITE the server dropped would
    // count as not answered. Wait up to 10 s.
    while started.elapsed() < Duration::from_secs(10) {
        let Ok((n, _)) = sip.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some(status) = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse::<u16>().ok())
        else {
            continue;
        };
        if status >= 200 {
            out.status = Some(status);
            out.answer = Some(started.elapsed());
            to = header(&text, "To").map(str::to_string);
            break;
        }
    }
    let Some(to) = to.filter(|_| out.status == Some(200)) else {
        return out;
    };
    let ack = format!(
        "ACK sip:1000@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-caller-ack;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\n\
To: {to}\r\n\
Call-ID: caller-1@127.0.0.1\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(ack.as_bytes(), server);
    // Three seconds of audio: the welcome prompt comes first.
    let _ = rtp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut audio = Vec::new();
    let listen = Instant::now();
    while listen.elapsed() < Duration::from_secs(3) {
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            // A 12-byte RTP header, PCMU.
            if n > 12 && buf[1] & 0x7f == 0 {
                out.rtp_packets += 1;
                audio.extend_from_slice(&buf[12..n]);
            }
        }
    }
    // The first 200 ms of the welcome prompt, byte for byte.
    let needle = &welcome[..welcome.len().min(1600)];
    out.heard_welcome = !needle.is_empty() && audio.windows(needle.len()).any(|w| w == needle);
    let bye = format!(
        "BYE sip:1000@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-caller-bye;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:caller@127.0.0.1>;tag=caller1\r\n\
To: {to}\r\n\
Call-ID: caller-1@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(bye.as_bytes(), server);
    out
}

/// OPTIONS from 127.0.0.3 every `every` while `stop` is false; returns
/// (sent, answered). (A prober that never completes a call is held to the
/// reply budget of an unproven address: 8 KiB, half of what it sends and
/// 128 bytes/s, which a probe every 3 s or slower never exhausts; a
/// faster one runs out after about 8 KiB of answers.)
fn probe(server: SocketAddr, every: Duration, stop: Arc<AtomicBool>) -> (u32, u32) {
    let Ok(sock) = UdpSocket::bind("127.0.0.3:0") else {
        return (0, 0);
    };
    let Ok(from) = sock.local_addr() else {
        return (0, 0);
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let (mut sent, mut answered) = (0, 0);
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let msg = format!(
            "OPTIONS sip:{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK-probe-{sent};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:probe@127.0.0.3>;tag=p{sent}\r\n\
To: <sip:{server}>\r\n\
Call-ID: probe-{sent}@127.0.0.3\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
        );
        if sock.send_to(msg.as_bytes(), server).is_ok() {
            sent += 1;
        }
        let until = Instant::now() + every;
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    answered += 1;
                }
            }
        }
    }
    (sent, answered)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "flood harness: run it with `cargo bench --bench flood [-- --invites N --rate R]`"
        );
        return;
    }
    let args = parse_args();
    let welcome = match PromptSet::load(&Default::default()) {
        Ok(p) => p.get(PromptId::Welcome).encoded(Codec::Pcmu).to_vec(),
        Err(e) => {
            eprintln!("prompts: {e}");
            std::process::exit(2);
        }
    };
    let pb = start_pinbridge();
    let pid = pb.child.id();
    let server = pb.sip;
    let rss_before = rss_kib(pid);

    let flooder = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let from = flooder.local_addr().expect("flooder address");
    let counter = Arc::new(Counter::default());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (sock, c, s) = (
            flooder.try_clone().expect("clone socket"),
            counter.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || count_returns(sock, c, s))
    };
    let probing = Arc::new(AtomicBool::new(false));
    let prober = {
        let s = probing.clone();
        let every = Duration::from_millis(args.probe_ms);
        std::thread::spawn(move || probe(server, every, s))
    };

    let flood_secs = f64::from(args.invites) / f64::from(args.rate);
    // The caller dials a third of the way into the flood.
    let call_at = Duration::from_secs_f64(flood_secs / 3.0);
    let caller = {
        let w = welcome.clone();
        std::thread::spawn(move || {
            std::thread::sleep(call_at);
            legitimate_call(server, &w)
        })
    };

    let (mut sent_bytes, mut sent_datagrams) = (0u64, 0u64);
    let body = sdp("127.0.0.2", 4000, 0);
    let started = Instant::now();
    for n in 0..args.invites {
        // Paced: INVITE n is due at n / rate.
        let due = started + Duration::from_secs_f64(f64::from(n) / f64::from(args.rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let msg = invite(from, server, "flood", n, &body);
        if flooder.send_to(msg.as_bytes(), server).is_ok() {
            sent_bytes += msg.len() as u64;
            sent_datagrams += 1;
        }
    }
    let flood_wall = started.elapsed();
    let rss_after_flood = rss_kib(pid);
    let call = caller.join().unwrap_or(CallOutcome {
        answer: None,
        status: None,
        heard_welcome: false,
        rtp_packets: 0,
    });
    probing.store(true, Ordering::Relaxed);
    let (probes, probes_answered) = prober.join().unwrap_or((0, 0));
    // Everything the flood can still be sent: 2xx retransmissions, BYEs.
    std::thread::sleep(Duration::from_secs(args.tail_secs));
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let rss_end = rss_kib(pid);
    let back_bytes = counter.bytes.load(Ordering::Relaxed);
    let back_datagrams = counter.datagrams.load(Ordering::Relaxed);

    println!(
        "flood: {} INVITEs ({sent_bytes} bytes) from 127.0.0.2 in {:.2} s, never ACKed; RTP range 500 ports",
        sent_datagrams,
        flood_wall.as_secs_f64()
    );
    println!(
        "pinbridge RSS: {rss_before} KiB before, {rss_after_flood} KiB at the end of the flood, {rss_end} KiB {} s later",
        args.tail_secs
    );
    match (call.status, call.answer) {
        (Some(s), Some(t)) => println!(
            "legitimate call from 127.0.0.1 during the flood: {s} after {:.1} ms; {} RTP packets in 3 s; welcome prompt heard: {}",
            t.as_secs_f64() * 1e3,
            call.rtp_packets,
            if call.heard_welcome { "yes" } else { "no" }
        ),
        _ => println!("legitimate call from 127.0.0.1 during the flood: NOT answered within 10 s"),
    }
    println!(
        "OPTIONS from 127.0.0.3 every {} ms during the flood: {probes_answered} of {probes} answered",
        args.probe_ms
    );
    println!(
        "returned to the flooder (over {} s): {back_bytes} bytes in {back_datagrams} datagrams = {:.3} bytes per byte received, {:.3} datagrams per datagram",
        args.tail_secs,
        back_bytes as f64 / sent_bytes.max(1) as f64,
        back_datagrams as f64 / sent_datagrams.max(1) as f64
    );
}
