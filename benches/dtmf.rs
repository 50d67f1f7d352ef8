//! Cost of the in-band DTMF detector per 20 ms frame (160 samples) for one
//! stream: `cargo bench --bench dtmf`.
//!
//! Three inputs: speech-like audio (a vowel-like harmonic series with a
//! wandering pitch and noise, the common case on a conference line),
//! a held key (every window passes the per-window checks), and silence.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pinbridge::media::dtmf::inband::InbandDetector;

const FRAME: usize = 160;
const FRAMES: usize = 500;

/// Deterministic speech-like audio: harmonics of a pitch that glides
/// between 100 and 220 Hz, shaped by a fixed formant-like envelope, plus a
/// little noise.
fn speech_like() -> Vec<i16> {
    let mut seed = 0x1234_5678_u32;
    let mut phase = 0.0f64;
    (0..FRAME * FRAMES)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let f0 = 160.0 + 60.0 * (t * 2.1).sin();
            phase += std::f64::consts::TAU * f0 / 8000.0;
            let mut v = 0.0;
            for k in 1..20 {
                let f = f0 * k as f64;
                let env = (-((f - 700.0) / 400.0).powi(2)).exp()
                    + 0.5 * (-((f - 1500.0) / 500.0).powi(2)).exp();
                v += env * (phase * k as f64).sin();
            }
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 16) as f64 / 65536.0 - 0.5;
            (4000.0 * v + 300.0 * noise) as i16
        })
        .collect()
}

/// A held '5' (770 + 1336 Hz) at −10 dBm0 per tone.
fn key_tone() -> Vec<i16> {
    (0..FRAME * FRAMES)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let a = 7192.0;
            (a * (std::f64::consts::TAU * 770.0 * t).sin()
                + a * (std::f64::consts::TAU * 1336.0 * t).sin()) as i16
        })
        .collect()
}

fn bench_input(c: &mut Criterion, name: &str, samples: &[i16]) {
    let mut group = c.benchmark_group("inband_process_160");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        let mut det = InbandDetector::new();
        let mut frames = samples.chunks_exact(FRAME).cycle();
        b.iter(|| {
            let f = frames.next().unwrap_or(&[]);
            det.process(black_box(f));
            while det.poll_digit().is_some() {}
        });
    });
    group.finish();
}

fn detector(c: &mut Criterion) {
    bench_input(c, "speech_like", &speech_like());
    bench_input(c, "key_tone", &key_tone());
    bench_input(c, "silence", &vec![0i16; FRAME * FRAMES]);
}

criterion_group!(benches, detector);
criterion_main!(benches);
