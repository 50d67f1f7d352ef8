//! Our code against the maintained crates that could replace it, for the
//! README's "Design notes: our code or a crate" and BENCHMARKS.md "Crates
//! we measured":
//!
//!     cargo bench --bench crates_compared 2>&1 | grep -v '^Warning: aliasing'
//!
//! (goertzel-filter prints a "Warning: aliasing frequency" line on stdout
//! for nearly every call; the grep drops them.)
//!
//! 1. pcap: `media::pcap::read_capture` against the same API built on
//!    pcap-file 2 + etherparse 0.21 (`crates_compared/pcap_reader.rs`):
//!    agreement on every capture in fixtures/dtmf, then the time to read a
//!    100,000-packet classic pcap and pcapng.
//! 2. Goertzel: where goertzel-filter 0.2's `dft_power` peaks for each DTMF
//!    frequency, and a 40 ms key read with it against our `InbandDetector`,
//!    including tones 1.5 % (must operate) and 3.5 % (must not) off.
//! 3. G.711: audio-codec-algorithms 0.8 against `media::g711` over all
//!    65,536 linear inputs and 256 codes, and ns per sample.
//!
//! A report, not a test: it prints figures and asserts nothing.

use std::f64::consts::PI;
use std::hint::black_box;
use std::time::{Duration, Instant};

use pinbridge::media::dtmf::inband::InbandDetector;
use pinbridge::media::g711;
use pinbridge::media::pcap::{
    read_capture, Capture, CaptureFormat, CaptureStats, PcapError, UdpDatagram,
};

#[path = "crates_compared/pcap_reader.rs"]
mod crate_reader;

fn main() {
    pcap();
    goertzel();
    g711_codec();
}

// ---------------------------------------------------------------- pcap

/// Best of `runs` timings of `f`.
fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn same(a: &Capture<'_>, b: &Capture<'_>) -> bool {
    a.format == b.format && a.datagrams == b.datagrams && a.stats == b.stats
}

/// An Ethernet/IPv4/UDP frame carrying `payload`.
fn eth_udp(n: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let sport = 20_000 + (n % 50) as u16 * 2;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&30_000u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

const PACKETS: u32 = 100_000;

/// 100,000 RTP-sized packets (12 + 160 bytes of payload), 20 ms apart.
fn big_classic() -> Vec<u8> {
    let mut f = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    let payload = [0x55u8; 172];
    for n in 0..PACKETS {
        let frame = eth_udp(n, &payload);
        let us = u64::from(n) * 20_000;
        for v in [
            1_700_000_000 + (us / 1_000_000) as u32,
            (us % 1_000_000) as u32,
            frame.len() as u32,
            frame.len() as u32,
        ] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&frame);
    }
    f
}

fn ng_block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = body.len().div_ceil(4) * 4 - body.len();
    let len = (12 + body.len() + pad) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend(std::iter::repeat_n(0, pad));
    out.extend_from_slice(&len.to_le_bytes());
}

/// The same packets as a pcapng file (one Ethernet interface, microseconds).
fn big_pcapng() -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&[0xFF; 8]);
    ng_block(&mut out, 0x0A0D_0D0A, &shb);
    ng_block(&mut out, 1, &[1, 0, 0, 0, 0, 0, 0, 0]);
    let payload = [0x55u8; 172];
    for n in 0..PACKETS {
        let frame = eth_udp(n, &payload);
        let ts = 1_700_000_000_000_000u64 + u64::from(n) * 20_000;
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&frame);
        ng_block(&mut out, 6, &b);
    }
    out
}

fn pcap() {
    println!("== pcap: ours against pcap-file 2 + etherparse 0.21");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dtmf");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let (mut agree, mut total) = (0, 0);
    for name in &names {
        let Ok(file) = std::fs::read(dir.join(name)) else {
            continue;
        };
        total += 1;
        let ours = read_capture(&file);
        let theirs = crate_reader::read_capture(&file);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) if same(a, b) => agree += 1,
            (Ok(a), Ok(b)) => println!(
                "  {name}: ours {} datagrams, crates {} ({} / {})",
                a.datagrams.len(),
                b.datagrams.len(),
                a.stats,
                b.stats
            ),
            _ => println!(
                "  {name}: ours {:?}, crates {:?}",
                ours.is_ok(),
                theirs.is_ok()
            ),
        }
    }
    println!("  fixtures/dtmf: the crates read {agree} of {total} captures exactly as ours");

    for (kind, file) in [("classic pcap", big_classic()), ("pcapng", big_pcapng())] {
        let (Ok(a), Ok(b)) = (read_capture(&file), crate_reader::read_capture(&file)) else {
            println!("  {kind}: a reader failed");
            continue;
        };
        println!(
            "  {kind}, {PACKETS} packets, {} MB: identical result: {}",
            file.len() / 1_000_000,
            same(&a, &b)
        );
        let ours = best_of(5, || {
            black_box(
                read_capture(black_box(&file))
                    .map(|c| c.datagrams.len())
                    .ok(),
            );
        });
        let theirs = best_of(5, || {
            black_box(
                crate_reader::read_capture(black_box(&file))
                    .map(|c| c.datagrams.len())
                    .ok(),
            );
        });
        let per = |d: Duration| d.as_nanos() as f64 / f64::from(PACKETS);
        println!(
            "  {kind}: ours {:.1} ms ({:.0} ns/packet), crates {:.1} ms ({:.0} ns/packet), best of 5",
            ours.as_secs_f64() * 1e3,
            per(ours),
            theirs.as_secs_f64() * 1e3,
            per(theirs)
        );
    }
}

// ---------------------------------------------------------------- Goertzel

const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
const FS: f64 = 8000.0;
/// -10 dBm0 per tone, in 16-bit linear (3.14 dBm0 = 32767 for mu-law).
const AMP: f64 = 7_190.0;

fn tone(freqs: &[f64], n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            freqs
                .iter()
                .map(|f| AMP * (2.0 * PI * f * i as f64 / FS).sin())
                .sum()
        })
        .collect()
}

/// The input frequency (300–3400 Hz, 1 Hz steps) where `power(signal)`
/// is largest.
fn peak(n: usize, power: impl Fn(&Vec<f64>) -> f64) -> f64 {
    (300..=3400)
        .map(|f| {
            let f = f64::from(f);
            (f, power(&tone(&[f], n)))
        })
        .fold(
            (0.0, f64::MIN),
            |best, x| if x.1 > best.1 { x } else { best },
        )
        .0
}

/// A key read the simple way with the crate: the strongest tone of each
/// group, `None` if either is under a fixed floor.
fn crate_key(signal: &Vec<f64>, arg: impl Fn(f64) -> f64) -> Option<char> {
    let best = |group: &[f64; 4]| {
        group
            .iter()
            .enumerate()
            .map(|(i, &f)| (i, goertzel_filter::dft_power(signal, arg(f))))
            .fold((0, f64::MIN), |b, x| if x.1 > b.1 { x } else { b })
    };
    let (r, pr) = best(&LOW);
    let (c, pc) = best(&HIGH);
    let floor = (AMP * signal.len() as f64 / 8.0).powi(2);
    (pr > floor && pc > floor).then_some(KEYS[r][c])
}

/// Our detector on a 40 ms key followed by 60 ms of silence.
fn our_key(signal: &[f64]) -> Option<char> {
    let mut pcm: Vec<i16> = signal.iter().map(|&v| v as i16).collect();
    pcm.extend(std::iter::repeat_n(0, 480));
    let mut d = InbandDetector::new();
    d.process(&pcm);
    d.poll_digit().map(|d| d.key)
}

fn goertzel() {
    println!("== Goertzel: goertzel-filter 0.2 against media::dtmf::inband");
    const N: usize = 320; // 40 ms
                          // The crate's argument is called `linear_freq`; try the three usual
                          // meanings, plus the one its code needs (it divides by 2*pi where it
                          // should multiply, then truncates to a bin of FS/N = 25 Hz).
    type Reading = (&'static str, fn(f64) -> f64);
    let readings: [Reading; 4] = [
        ("Hz", |f| f),
        ("cycles/sample", |f| f / FS),
        ("rad/sample", |f| 2.0 * PI * f / FS),
        ("4*pi^2*f/fs", |f| 4.0 * PI * PI * f / FS),
    ];
    for (what, arg) in readings {
        let peaks: Vec<String> = LOW
            .iter()
            .chain(HIGH.iter())
            .map(|&f| {
                let p = peak(N, |s| goertzel_filter::dft_power(s, arg(f)));
                format!("{f:.0}->{p:.0}")
            })
            .collect();
        println!(
            "  dft_power(signal, {what}): asked for -> peaks at (Hz): {}",
            peaks.join(" ")
        );
    }
    let fixed = |f: f64| 4.0 * PI * PI * f / FS;
    let mut crate_ok = 0;
    let mut ours_ok = 0;
    for (r, &lo) in LOW.iter().enumerate() {
        for (c, &hi) in HIGH.iter().enumerate() {
            let s = tone(&[lo, hi], N);
            crate_ok += usize::from(crate_key(&s, fixed) == Some(KEYS[r][c]));
            ours_ok += usize::from(our_key(&s) == Some(KEYS[r][c]));
        }
    }
    println!(
        "  16 keys, 40 ms at -10 dBm0 per tone: crate (with the 4*pi^2*f/fs argument) read {crate_ok}/16, ours {ours_ok}/16"
    );
    // Q.24: operate within 1.5 %, do not operate beyond 3.5 %.
    for dev in [0.015, -0.015, 0.035, -0.035, 0.05] {
        let (mut c, mut o) = (0, 0);
        for &lo in &LOW {
            for &hi in &HIGH {
                let s = tone(&[lo * (1.0 + dev), hi * (1.0 + dev)], N);
                c += usize::from(crate_key(&s, fixed).is_some());
                o += usize::from(our_key(&s).is_some());
            }
        }
        println!(
            "  tones {:+.1} % off nominal: a key reported for crate {c}/16, ours {o}/16 (Q.24: {})",
            dev * 100.0,
            if dev.abs() <= 0.015 {
                "must operate"
            } else {
                "must not operate"
            }
        );
    }
    // Short blocks: the crate indexes its input and unwraps.
    let short: Vec<usize> = (0..4)
        .filter(|&n| {
            std::panic::catch_unwind(|| goertzel_filter::dft_power(&vec![0.0; n], fixed(697.0)))
                .is_err()
        })
        .collect();
    println!("  dft_power panics on blocks of these lengths (of 0..4): {short:?}");
    // Cost per 20 ms frame: the crate's 8 calls against our detector.
    let frame = tone(&[770.0, 1336.0], 160);
    let frame_i16: Vec<i16> = frame.iter().map(|&v| v as i16).collect();
    let reps = 20_000u32;
    let t_crate = best_of(3, || {
        for _ in 0..reps {
            for &f in LOW.iter().chain(HIGH.iter()) {
                black_box(goertzel_filter::dft_power(black_box(&frame), fixed(f)));
            }
        }
    });
    let mut det = InbandDetector::new();
    let t_ours = best_of(3, || {
        for _ in 0..reps {
            det.process(black_box(&frame_i16));
            black_box(det.poll_digit());
        }
    });
    let per = |d: Duration| d.as_nanos() as f64 / f64::from(reps);
    println!(
        "  per 20 ms frame (160 samples): crate, 8 frequencies only: {:.0} ns; ours, whole detector (20 frequencies, checks): {:.0} ns",
        per(t_crate),
        per(t_ours)
    );
}

// ---------------------------------------------------------------- G.711

fn g711_codec() {
    use audio_codec_algorithms as aca;
    println!("== G.711: audio-codec-algorithms 0.8 against media::g711");
    let all = || (i16::MIN..=i16::MAX).map(black_box);
    let enc_u = all()
        .filter(|&s| aca::encode_ulaw(s) != g711::ulaw_encode(s))
        .count();
    let enc_a = all()
        .filter(|&s| aca::encode_alaw(s) != g711::alaw_encode(s))
        .count();
    let dec_u = (0..=255u8)
        .filter(|&b| aca::decode_ulaw(b) != g711::ulaw_decode(b))
        .count();
    let dec_a = (0..=255u8)
        .filter(|&b| aca::decode_alaw(b) != g711::alaw_decode(b))
        .count();
    let diff_u: Vec<i16> = all()
        .filter(|&s| aca::encode_ulaw(s) != g711::ulaw_encode(s))
        .collect();
    if let (Some(lo), Some(hi)) = (diff_u.first(), diff_u.last()) {
        println!(
            "  mu-law encode differs for inputs {lo}..={hi}, e.g. {lo}: ours {:#04x}, crate {:#04x}",
            g711::ulaw_encode(*lo),
            aca::encode_ulaw(*lo)
        );
    }
    println!(
        "  differing outputs: mu-law encode {enc_u}/65536, A-law encode {enc_a}/65536, mu-law decode {dec_u}/256, A-law decode {dec_a}/256"
    );
    let pcm: Vec<i16> = (0..160 * 50)
        .map(|i| ((i * 7919) % 65536 - 32768) as i16)
        .collect();
    let bytes: Vec<u8> = pcm.iter().map(|&s| g711::ulaw_encode(s)).collect();
    let reps = 200;
    let n = (pcm.len() * reps) as f64;
    let ns = |d: Duration| d.as_nanos() as f64 / n;
    let mut out8 = vec![0u8; pcm.len()];
    let mut out16 = vec![0i16; pcm.len()];
    let t = |f: &mut dyn FnMut()| ns(best_of(5, &mut *f));
    let ours_eu = t(&mut || {
        for _ in 0..reps {
            for (o, &s) in out8.iter_mut().zip(black_box(&pcm)) {
                *o = g711::ulaw_encode(s);
            }
            black_box(&out8);
        }
    });
    let crate_eu = t(&mut || {
        for _ in 0..reps {
            for (o, &s) in out8.iter_mut().zip(black_box(&pcm)) {
                *o = aca::encode_ulaw(s);
            }
            black_box(&out8);
        }
    });
    let ours_ea = t(&mut || {
        for _ in 0..reps {
            for (o, &s) in out8.iter_mut().zip(black_box(&pcm)) {
                *o = g711::alaw_encode(s);
            }
            black_box(&out8);
        }
    });
    let crate_ea = t(&mut || {
        for _ in 0..reps {
            for (o, &s) in out8.iter_mut().zip(black_box(&pcm)) {
                *o = aca::encode_alaw(s);
            }
            black_box(&out8);
        }
    });
    let ours_du = t(&mut || {
        for _ in 0..reps {
            for (o, &b) in out16.iter_mut().zip(black_box(&bytes)) {
                *o = g711::ulaw_decode(b);
            }
            black_box(&out16);
        }
    });
    let crate_du = t(&mut || {
        for _ in 0..reps {
            for (o, &b) in out16.iter_mut().zip(black_box(&bytes)) {
                *o = aca::decode_ulaw(b);
            }
            black_box(&out16);
        }
    });
    println!(
        "  ns/sample: mu-law encode ours {ours_eu:.2}, crate {crate_eu:.2}; A-law encode ours {ours_ea:.2}, crate {crate_ea:.2}; mu-law decode ours {ours_du:.2}, crate {crate_du:.2}"
    );
}
