//! Conference load harness: R rooms × P callers against the release
//! pinbridge binary. Each caller dials its room, keys the PIN "1234#" as
//! RFC 4733 events, then sends audio for T seconds (in every room three
//! callers talk — tones — and the others send quiet noise below the
//! mixer's gate, as in a real meeting), and receives the mixed audio with
//! kernel receive timestamps. Reports pinbridge's CPU and RSS, failed
//! calls, and the send-interval jitter of the mixed audio the callers get.
//!
//! ```text
//! cargo bench --bench conference_load -- --rooms 100 --callers 20 --seconds 30
//! ```
//!
//! SIP uses the test suite's independent user agent (tests/common); the
//! media runs on two plain threads with non-blocking sockets on an absolute
//! 20 ms schedule, so the harness itself stays cheap.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::g711;
use common::ua::{offer_sdp, Direction, InviteOptions, TestUa};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use nix::sys::time::TimeSpec;

struct Args {
    rooms: usize,
    callers: usize,
    seconds: u64,
    rate: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        rooms: 100,
        callers: 20,
        seconds: 30,
        rate: 100,
    };
    let argv: Vec<String> = std::env::args().collect();
    for (i, arg) in argv.iter().enumerate() {
        let val = || argv.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--rooms" => a.rooms = val().unwrap_or(100) as usize,
            "--callers" => a.callers = val().unwrap_or(20) as usize,
            "--seconds" => a.seconds = val().unwrap_or(30),
            "--rate" => a.rate = val().unwrap_or(100).max(1),
            _ => {}
        }
    }
    a
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(5398)
}

struct Pinbridge {
    child: Child,
    sip: SocketAddr,
}

impl Drop for Pinbridge {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_pinbridge(args: &Args, dir: &std::path::Path) -> Pinbridge {
    let port = free_port();
    let mut cfg = format!(
        "[sip]\nlisten = \"127.0.0.1:{port}\"\nmax_calls = 20000\n\n[rtp]\nport_range = \"30000-39999\"\n\n[log]\nlevel = \"warn\"\n"
    );
    for r in 0..args.rooms {
        cfg.push_str(&format!(
            "\n[[conference]]\nname = \"room{r}\"\nnumbers = [\"{}\"]\npin = \"1234\"\nmax_participants = {}\n",
            7000 + r,
            args.callers + 5
        ));
    }
    let path = dir.join("pinbridge.toml");
    std::fs::write(&path, cfg).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_pinbridge"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start pinbridge");
    std::thread::sleep(Duration::from_millis(700));
    Pinbridge {
        child,
        sip: format!("127.0.0.1:{port}").parse().expect("addr"),
    }
}

/// CPU seconds and RSS (KiB) of a process.
fn proc_sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((cpu, rss))
}

/// One caller's media, driven by a media thread.
struct Leg {
    socket: UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Ticks since the leg started sending.
    tick: u64,
    /// Tone frequency for talkers; None sends quiet noise.
    tone: Option<f64>,
    audio_ticks: u64,
    /// Kernel receive timestamps (ns) of the mixed audio, once joined.
    arrivals: Vec<i64>,
    received: usize,
    noise: u32,
}

const PIN: &str = "1234#";
/// Ticks before the PIN (500 ms into the welcome: barge-in) and per digit.
const LEAD: u64 = 25;
const PER_DIGIT: u64 = 10;
/// Ticks after the PIN before counting mixed audio (joining prompt).
const JOIN_WAIT: u64 = 250;

impl Leg {
    /// Sends this tick's packet; returns false when the leg is done.
    fn send(&mut self, buf: &mut [u8; 172]) -> bool {
        let t = self.tick;
        self.tick += 1;
        let pin_end = LEAD + PER_DIGIT * PIN.len() as u64;
        let mut header = |pt: u8, marker: bool, ts: u32, seq: u16| {
            buf[0] = 0x80;
            buf[1] = (u8::from(marker) << 7) | pt;
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[4..8].copy_from_slice(&ts.to_be_bytes());
            buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        };
        if (LEAD..pin_end).contains(&t) {
            // RFC 4733: 5 updates + 3 end packets per digit, then 2 ticks of nothing.
            let k = (t - LEAD) / PER_DIGIT;
            let i = (t - LEAD) % PER_DIGIT;
            let key = PIN.as_bytes()[k as usize] as char;
            let code = "0123456789*#".find(key).unwrap_or(0) as u8;
            let event_ts = self.ts.wrapping_add((k * PER_DIGIT * 160) as u32);
            if i < 8 {
                let dur = (160 * (i + 1).min(5)) as u16;
                header(101, i == 0, event_ts, self.seq);
                buf[12] = code;
                buf[13] = if i >= 5 { 0x80 | 10 } else { 10 };
                buf[14..16].copy_from_slice(&dur.to_be_bytes());
                let _ = self.socket.send_to(&buf[..16], self.to);
                self.seq = self.seq.wrapping_add(1);
            }
            return true;
        }
        if t >= pin_end + JOIN_WAIT + self.audio_ticks {
            return false;
        }
        let ts = self.ts.wrapping_add((t * 160) as u32);
        header(0, t == 0, ts, self.seq);
        self.seq = self.seq.wrapping_add(1);
        for (n, b) in buf[12..172].iter_mut().enumerate() {
            let s = match self.tone {
                Some(f) => {
                    (6000.0
                        * (2.0 * std::f64::consts::PI * f * (t * 160 + n as u64) as f64 / 8000.0)
                            .sin()) as i16
                }
                None => {
                    self.noise = self.noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (self.noise >> 16) as i16 >> 10 // about -60 dBFS
                }
            };
            *b = g711::linear_to_ulaw(s);
        }
        let _ = self.socket.send_to(&buf[..172], self.to);
        true
    }

    // nix's recvmsg wants the Vec that cmsg_space! makes.
    #[allow(clippy::ptr_arg)]
    fn receive(&mut self, buf: &mut [u8], cmsg: &mut Vec<u8>) {
        let counting = self.tick > LEAD + PER_DIGIT * PIN.len() as u64 + JOIN_WAIT;
        loop {
            let mut iov = [std::io::IoSliceMut::new(buf)];
            let Ok(msg) = recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(cmsg),
                MsgFlags::empty(),
            ) else {
                return;
            };
            self.received += 1;
            if !counting {
                continue;
            }
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(t) = c {
                        self.arrivals.push(t.tv_sec() * 1_000_000_000 + t.tv_nsec());
                    }
                }
            }
        }
    }
}

/// A media thread: sends one packet per leg every 20 ms on an absolute
/// schedule and drains what arrived.
fn media_thread(
    rx: mpsc::Receiver<Leg>,
    done: Arc<Mutex<Vec<Leg>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut legs: Vec<Leg> = Vec::new();
        let start = Instant::now();
        let mut n: u32 = 0;
        let mut buf = [0u8; 172];
        let mut rbuf = [0u8; 1500];
        let mut cmsg = nix::cmsg_space!(TimeSpec);
        loop {
            while let Ok(l) = rx.try_recv() {
                legs.push(l);
            }
            let mut i = 0;
            while i < legs.len() {
                legs[i].receive(&mut rbuf, &mut cmsg);
                if legs[i].send(&mut buf) {
                    i += 1;
                } else {
                    let l = legs.swap_remove(i);
                    if let Ok(mut d) = done.lock() {
                        d.push(l);
                    }
                }
            }
            if stop.load(Ordering::Relaxed) && legs.is_empty() {
                return;
            }
            n += 1;
            let next = start + Duration::from_millis(20) * n;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("conference load harness: run it with `cargo bench --bench conference_load -- --rooms R --callers P --seconds T`");
        return;
    }
    let args = parse_args();
    let legs_total = args.rooms * args.callers;
    let dir = std::env::temp_dir().join(format!("pinbridge-conf-load-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let pb = start_pinbridge(&args, &dir);
    let pid = pb.child.id();
    let (idle_cpu, idle_rss) = proc_sample(pid).unwrap_or((0.0, 0));
    println!(
        "{} rooms x {} callers = {} legs, {} s of audio each, calls placed at {}/s",
        args.rooms, args.callers, legs_total, args.seconds, args.rate
    );

    let done = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx_a, rx_a) = mpsc::channel();
    let (tx_b, rx_b) = mpsc::channel();
    let threads = [
        media_thread(rx_a, done.clone(), stop.clone()),
        media_thread(rx_b, done.clone(), stop.clone()),
    ];

    let failed = Arc::new(AtomicUsize::new(0));
    let samples: Arc<Mutex<Vec<(Instant, f64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    {
        let (samples, sampling) = (samples.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some((cpu, rss)) = proc_sample(pid) {
                    if let Ok(mut v) = samples.lock() {
                        v.push((Instant::now(), cpu, rss));
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let audio_ticks = args.seconds * 50;
    let placed_at = Instant::now();
    let calls = rt.block_on(async {
        let mut handles = Vec::new();
        for n in 0..legs_total {
            let due = placed_at + Duration::from_micros(n as u64 * 1_000_000 / args.rate);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let (room, seat) = (n % args.rooms, n / args.rooms);
            let sip = pb.sip;
            let failed = failed.clone();
            let tx = if n % 2 == 0 {
                tx_a.clone()
            } else {
                tx_b.clone()
            };
            handles.push(tokio::spawn(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
                let _ = setsockopt(&socket, sockopt::ReceiveTimestampns, &true);
                socket.set_nonblocking(true).ok()?;
                let port = socket.local_addr().ok()?.port();
                let mut ua = TestUa::udp(sip).await.ok()?;
                let sdp = offer_sdp(port, &[(0, "PCMU/8000")], Some(101), Direction::SendRecv);
                let number = (7000 + room).to_string();
                let mut call = ua
                    .invite(InviteOptions::new(&number).with_sdp(sdp))
                    .await
                    .ok()?;
                let ok = ua
                    .expect_final(&mut call, Duration::from_secs(10))
                    .await
                    .ok()?;
                if ok.status() != Some(200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                let to = call.answer_sdp()?.rtp_addr();
                ua.ack(&mut call, None).await.ok()?;
                let tones = [440.0, 620.0, 880.0];
                let _ = tx.send(Leg {
                    socket,
                    to,
                    ssrc: 0x1000_0000 + n as u32,
                    seq: 1,
                    ts: 8000,
                    tick: 0,
                    tone: tones.get(seat).copied(),
                    audio_ticks,
                    arrivals: Vec::with_capacity(audio_ticks as usize),
                    received: 0,
                    noise: n as u32,
                });
                Some((ua, call))
            }));
        }
        let mut calls = Vec::new();
        for h in handles {
            match h.await {
                Ok(Some(c)) => calls.push(c),
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        calls
    });
    let all_placed = placed_at.elapsed();
    // Every leg is up once the last one has keyed its PIN and joined.
    let steady_from =
        Instant::now() + Duration::from_millis((LEAD + PER_DIGIT * 5 + JOIN_WAIT) * 20);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // ... and until the first leg stops talking.
    let first_end =
        placed_at + Duration::from_millis((LEAD + PER_DIGIT * 5 + JOIN_WAIT + audio_ticks) * 20);
    let steady_to = Instant::now().min(first_end);
    // Hang up everyone; a call the server already ended counts as failed.
    let byes_failed = rt.block_on(async {
        let mut failed = 0;
        for (mut ua, mut call) in calls {
            let ok = match ua.bye(&mut call).await {
                Ok(tx) => matches!(ua.expect_final_tx(&tx, Duration::from_secs(5)).await, Ok(r) if r.status() == Some(200)),
                Err(_) => false,
            };
            if !ok {
                failed += 1;
            }
        }
        failed
    });
    sampling.store(false, Ordering::Relaxed);
    let samples = samples.lock().map(|v| v.clone()).unwrap_or_default();
    let steady: Vec<_> = samples
        .iter()
        .filter(|s| s.0 >= steady_from && s.0 <= steady_to)
        .collect();
    let cpu = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0).as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    let peak_rss = samples.iter().map(|s| s.2).max().unwrap_or(0);

    let legs = done
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    let mut dev: Vec<f64> = Vec::new();
    let mut silent_legs = 0;
    for l in &legs {
        if l.arrivals.len() < (audio_ticks as usize) / 2 {
            silent_legs += 1;
        }
        for w in l.arrivals.windows(2) {
            dev.push(((w[1] - w[0]) as f64 / 1e6 - 20.0).abs());
        }
    }
    dev.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let invite_failed = failed.load(Ordering::Relaxed);
    println!(
        "calls placed in {:.1} s; legs that ran: {}",
        all_placed.as_secs_f64(),
        legs.len()
    );
    println!(
        "failed: {} (INVITE {}, no mixed audio {}, BYE not answered {})",
        invite_failed + silent_legs + byes_failed,
        invite_failed,
        silent_legs,
        byes_failed
    );
    println!(
        "pinbridge: CPU {cpu:.1}% of one core with all {} legs up (steady state), RSS idle {idle_rss} KiB, peak {peak_rss} KiB ({:.1} KiB per leg); idle CPU before the run {idle_cpu:.2} s",
        legs.len(),
        peak_rss.saturating_sub(idle_rss) as f64 / legs.len().max(1) as f64
    );
    println!(
        "mixed audio received: {} packets; send-interval jitter |gap-20ms|: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        dev.len() + legs.len(),
        percentile(&dev, 0.5),
        percentile(&dev, 0.99),
        dev.last().copied().unwrap_or(f64::NAN)
    );
    drop(pb);
    let _ = std::fs::remove_dir_all(&dir);
}
