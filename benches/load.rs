//! Load harness: SIPp places calls against the release pinbridge binary
//! (INVITE → 200 → ACK → 2 s of prompt → BYE) while this program samples
//! pinbridge's CPU and memory from /proc and, in `jitter` mode, receives
//! every call's RTP on its own socket with kernel receive timestamps to
//! measure the send-interval jitter the callers see.
//!
//! ```text
//! cargo bench --bench load -- run --rate 250 --calls 2500      # one run, with RTP sink
//! cargo bench --bench load -- ramp --from 200 --step 200 --to 2000 --seconds 10
//! ```
//!
//! Needs `sipp` (Debian package sip-tester). Everything runs on loopback.

use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use nix::sys::time::TimeSpec;

const SCENARIO: &str = include_str!("sipp/uac_prompt_2s.xml");

struct Args {
    mode: String,
    rate: u32,
    calls: u32,
    from: u32,
    step: u32,
    to: u32,
    seconds: u32,
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: "run".into(),
        rate: 250,
        calls: 2500,
        from: 200,
        step: 200,
        to: 2000,
        seconds: 10,
    };
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|s| s != "--bench")
        .collect();
    let mut i = 0;
    while i < argv.len() {
        let val = |i: usize| argv.get(i + 1).and_then(|v| v.parse::<u32>().ok());
        match argv[i].as_str() {
            "run" | "ramp" => a.mode = argv[i].clone(),
            "--rate" => a.rate = val(i).unwrap_or(a.rate),
            "--calls" => a.calls = val(i).unwrap_or(a.calls),
            "--from" => a.from = val(i).unwrap_or(a.from),
            "--step" => a.step = val(i).unwrap_or(a.step),
            "--to" => a.to = val(i).unwrap_or(a.to),
            "--seconds" => a.seconds = val(i).unwrap_or(a.seconds),
            _ => {}
        }
        i += 1;
    }
    a
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(5399)
}

struct Pinbridge {
    child: Child,
    sip: SocketAddr,
}

fn start_pinbridge() -> Pinbridge {
    let port = free_port();
    let sip: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_pinbridge"))
        .args([
            "run",
            "--sip",
            &sip.to_string(),
            "--rtp-ports",
            "30000-39999",
        ])
        .env("CONFERENCE_PIN", "1234")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
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

/// CPU seconds (user + system) and RSS in KiB of a process.
fn proc_sample(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / hz, rss))
}

struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, f64, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn start_sampler(pid: u32) -> Sampler {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (s2, v2) = (stop.clone(), samples.clone());
    let thread = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            if let Some((cpu, rss)) = proc_sample(pid) {
                if let Ok(mut v) = v2.lock() {
                    v.push((Instant::now(), cpu, rss));
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    Sampler {
        stop,
        samples,
        thread: Some(thread),
    }
}

impl Sampler {
    fn finish(mut self) -> Vec<(Instant, f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let v = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
        v
    }
}

/// Receives RTP on `count` sockets at base, base+4, ... (SIPp's
/// [auto_media_port] numbering is -mp + 4·(call-1)) and keeps the kernel
/// receive timestamps per socket.
struct RtpSink {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Vec<i64>>>>,
}

fn start_sink(base: u16, count: u32) -> RtpSink {
    let stop = Arc::new(AtomicBool::new(false));
    let mut sockets = Vec::new();
    for i in 0..count {
        let port = base as u32 + 4 * i;
        let s = UdpSocket::bind(("127.0.0.1", port as u16))
            .unwrap_or_else(|e| panic!("bind sink port {port}: {e}"));
        let _ = setsockopt(&s, sockopt::ReceiveTimestampns, &true);
        s.set_nonblocking(true).expect("nonblocking");
        sockets.push(s);
    }
    // Two polling threads, each over half the sockets: cheap enough and
    // independent of their own scheduling delay thanks to kernel timestamps.
    let mut threads = Vec::new();
    let per = sockets.len().div_ceil(2).max(1);
    let mut chunks: VecDeque<Vec<UdpSocket>> = VecDeque::new();
    while !sockets.is_empty() {
        let n = per.min(sockets.len());
        chunks.push_back(sockets.drain(..n).collect());
    }
    for chunk in chunks {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut times: Vec<Vec<i64>> = vec![Vec::with_capacity(256); chunk.len()];
            let mut buf = [0u8; 1500];
            let mut cmsg = nix::cmsg_space!(TimeSpec);
            while !stop.load(Ordering::Relaxed) {
                let mut got = false;
                for (i, s) in chunk.iter().enumerate() {
                    loop {
                        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                        match recvmsg::<SockaddrStorage>(
                            s.as_raw_fd(),
                            &mut iov,
                            Some(&mut cmsg),
                            MsgFlags::empty(),
                        ) {
                            Ok(msg) => {
                                got = true;
                                let mut ts = None;
                                if let Ok(cmsgs) = msg.cmsgs() {
                                    for c in cmsgs {
                                        if let ControlMessageOwned::ScmTimestampns(t) = c {
                                            ts = Some(t.tv_sec() * 1_000_000_000 + t.tv_nsec());
                                        }
                                    }
                                }
                                if let Some(t) = ts {
                                    times[i].push(t);
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                if !got {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            times
        }));
    }
    RtpSink { stop, threads }
}

impl RtpSink {
    fn finish(self) -> Vec<Vec<i64>> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect()
    }
}

struct SippResult {
    ok: u64,
    failed: u64,
    rate: f64,
    wall: Duration,
}

fn run_sipp(
    dir: &Path,
    target: SocketAddr,
    rate: u32,
    calls: u32,
    media_base: u16,
    shared_media: bool,
) -> SippResult {
    let scenario = if shared_media {
        SCENARIO.replace("[auto_media_port]", "[media_port]")
    } else {
        SCENARIO.to_string()
    };
    let path = dir.join("scenario.xml");
    std::fs::write(&path, scenario).expect("write scenario");
    let port = free_port();
    let started = Instant::now();
    let out = Command::new("sipp")
        .current_dir(dir)
        .args([
            "-sf",
            path.to_str().unwrap_or("scenario.xml"),
            "-s",
            "1000",
            "-i",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .args(["-mi", "127.0.0.1", "-mp"])
        .arg(media_base.to_string())
        .args([
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
            "-l",
            "20000",
            "-nostdin",
            "-timeout",
            "120s",
            "-timeout_error",
        ])
        .args(["-fd", "1"])
        .arg(target.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run sipp (apt-get install sip-tester)");
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let cumulative = |label: &str| -> Option<f64> {
        text.lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    SippResult {
        ok: cumulative("Successful call").unwrap_or(0.0) as u64,
        failed: cumulative("Failed call").unwrap_or(0.0) as u64,
        rate: cumulative("Call Rate").unwrap_or(0.0),
        wall,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report_cpu(samples: &[(Instant, f64, u64)]) -> (f64, u64) {
    // Average CPU over the middle half of the run (steady state).
    let n = samples.len();
    if n < 4 {
        return (f64::NAN, samples.iter().map(|s| s.2).max().unwrap_or(0));
    }
    let (a, b) = (&samples[n / 4], &samples[3 * n / 4]);
    let cpu = (b.1 - a.1) / (b.0 - a.0).as_secs_f64() * 100.0;
    (cpu, samples.iter().map(|s| s.2).max().unwrap_or(0))
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`;
    // the load harness only runs when asked for by `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load harness: run it with `cargo bench --bench load -- run|ramp ...`");
        return;
    }
    let args = parse_args();
    if Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("load harness needs sipp: apt-get install -y sip-tester");
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("pinbridge-load-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    match args.mode.as_str() {
        "ramp" => ramp(&args, &dir),
        _ => single(&args, &dir),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn cpu_model() -> String {
    let mut s = String::new();
    let _ = std::fs::File::open("/proc/cpuinfo").and_then(|mut f| f.read_to_string(&mut s));
    s.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_default()
}

fn single(args: &Args, dir: &Path) {
    let pb = start_pinbridge();
    let pid = pb.child.id();
    let idle_rss = proc_sample(pid).map(|s| s.1).unwrap_or(0);
    let media_base = 42000u16;
    // SIPp binds -mp itself (it is call 1's port); the sink takes calls 2..N.
    let sink = start_sink(media_base + 4, args.calls.saturating_sub(1));
    let sampler = start_sampler(pid);
    let r = run_sipp(dir, pb.sip, args.rate, args.calls, media_base, false);
    std::thread::sleep(Duration::from_millis(300));
    let samples = sampler.finish();
    let per_call = sink.finish();
    let (cpu, peak_rss) = report_cpu(&samples);
    let concurrent = (args.rate as f64 * 2.0).round();
    // Send-interval jitter: how far each inter-arrival gap is from 20 ms.
    let mut dev: Vec<f64> = Vec::new();
    let mut packets = 0usize;
    for times in &per_call {
        packets += times.len();
        for w in times.windows(2) {
            dev.push(((w[1] - w[0]) as f64 / 1e6 - 20.0).abs());
        }
    }
    dev.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    println!(
        "rate {} cps requested ({:.0} achieved), {} calls: {} ok, {} failed, wall {:.1}s",
        args.rate,
        r.rate,
        args.calls,
        r.ok,
        r.failed,
        r.wall.as_secs_f64()
    );
    println!(
        "pinbridge: ~{concurrent} concurrent calls, CPU {cpu:.1}% of one core (steady state), RSS idle {} KiB, peak {} KiB, {:.1} KiB per call",
        idle_rss,
        peak_rss,
        (peak_rss.saturating_sub(idle_rss)) as f64 / concurrent.max(1.0)
    );
    println!(
        "RTP: {packets} packets received; send-interval jitter |gap-20ms|: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&dev, 0.5),
        percentile(&dev, 0.99),
        dev.last().copied().unwrap_or(f64::NAN)
    );
}

fn ramp(args: &Args, dir: &Path) {
    let mut best = 0;
    let mut rate = args.from;
    while rate <= args.to {
        let pb = start_pinbridge();
        let pid = pb.child.id();
        let sampler = start_sampler(pid);
        let calls = rate * args.seconds;
        let r = run_sipp(dir, pb.sip, rate, calls, free_port() & !3, true);
        let samples = sampler.finish();
        let (cpu, peak_rss) = report_cpu(&samples);
        println!(
            "rate {rate:5} cps: achieved {:7.1} cps, {:6} ok, {:4} failed, pinbridge CPU {:5.1}%, peak RSS {} KiB",
            r.rate, r.ok, r.failed, cpu, peak_rss
        );
        drop(pb);
        if r.failed == 0 && r.ok == calls as u64 {
            best = rate;
        } else {
            break;
        }
        rate += args.step;
    }
    println!("highest rate with 0 failed calls: {best} cps (SIPp -r), calls of 2 s");
}
