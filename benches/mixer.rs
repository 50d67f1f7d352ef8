//! Cost of the conference media path per leg per 20 ms tick.
//!
//! ```text
//! cargo bench --bench mixer
//! ```
//!
//! - `mixer/3_talkers/N`: one `Mixer::mix` over N legs (half PCMU, half
//!   PCMA) where 3 legs talk and the rest send low background noise below
//!   the gate. Includes the energy measure of every leg, the N−1 mixes and
//!   every G.711 encode. The goal is ≤ 0.5 µs per leg.
//! - `mixer/all_above_gate/N`: the same, with every leg loud enough to be a
//!   talker (only 3 are mixed): the worst case for talker selection.
//! - `jitter/*`: one `JitterBuffer::push` of a 20 ms packet and one `pop`,
//!   in order or with 10% of the packets lost (concealment running), and
//!   from a sender whose clock runs 10% fast (an extra packet every tenth
//!   tick), which keeps the buffer time-scaling nearly every frame: the
//!   worst case for the splice's alignment search.
//!
//! Criterion reports the time per tick and, through `Throughput::Elements`,
//! legs per second; the time per leg is the tick time divided by N.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pinbridge::media::g711::Codec;
use pinbridge::media::jitter::{JitterBuffer, JitterConfig};
use pinbridge::media::mixer::{MixLeg, Mixer, FRAME};
use pinbridge::testing::TestRng;

const ROOMS: [usize; 3] = [3, 20, 100];

fn tone(freq: f64, amp: f64) -> [i16; FRAME] {
    let mut f = [0i16; FRAME];
    for (i, s) in f.iter_mut().enumerate() {
        let t = i as f64 / 8000.0;
        *s = (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
    }
    f
}

/// Noise of about −60 dBFS: below the gate, like an open microphone.
fn noise(seed: u64) -> [i16; FRAME] {
    let mut rng = TestRng::new(seed);
    let mut f = [0i16; FRAME];
    for s in f.iter_mut() {
        *s = rng.below(61) as i16 - 30;
    }
    f
}

fn room(n: usize, loud: usize) -> Vec<MixLeg> {
    (0..n)
        .map(|i| {
            let codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
            let mut leg = MixLeg::new(codec);
            leg.has_input = true;
            leg.input = if i < loud {
                tone(300.0 + 37.0 * i as f64, 9000.0 - 50.0 * i as f64)
            } else {
                noise(i as u64)
            };
            leg
        })
        .collect()
}

fn bench_mixer(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixer");
    for &n in &ROOMS {
        for (name, loud) in [("3_talkers", 3.min(n)), ("all_above_gate", n)] {
            let mut legs = room(n, loud);
            let mut mixer = Mixer::default();
            // Settle the talker set first, as in a running room.
            for _ in 0..10 {
                mixer.mix(&mut legs);
            }
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| black_box(mixer.mix(black_box(&mut legs))))
            });
        }
    }
    group.finish();
}

/// One leg's stream: a 20 ms packet in, a frame out, every tick.
struct Leg {
    jb: JitterBuffer,
    now: Instant,
    seq: u16,
    ts: u32,
    packet: [i16; FRAME],
    out: [i16; FRAME],
    tick: u64,
}

impl Leg {
    fn new() -> Self {
        Leg {
            jb: JitterBuffer::new(JitterConfig::default()),
            now: Instant::now(),
            seq: 0,
            ts: 0,
            packet: tone(440.0, 8000.0),
            out: [0; FRAME],
            tick: 0,
        }
    }

    /// One tick; every `lose_every`-th packet is lost (0: none), and every
    /// `extra_every`-th tick brings a second packet (0: never).
    fn tick(&mut self, lose_every: u64, extra_every: u64) {
        self.tick += 1;
        self.now += Duration::from_millis(20);
        let packets = if extra_every != 0 && self.tick % extra_every == 0 {
            2
        } else {
            1
        };
        for _ in 0..packets {
            if lose_every == 0 || self.tick % lose_every != 0 {
                self.jb
                    .push(self.now, 0x1234, self.seq, self.ts, black_box(&self.packet));
            }
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(FRAME as u32);
        }
        black_box(self.jb.pop(self.now, &mut self.out));
    }
}

fn bench_jitter(c: &mut Criterion) {
    let mut group = c.benchmark_group("jitter");
    group.throughput(Throughput::Elements(1));
    for (name, lose_every, extra_every) in [
        ("in_order", 0, 0),
        ("10pct_loss", 10, 0),
        ("fast_sender_10pct", 0, 10),
    ] {
        let mut leg = Leg::new();
        for _ in 0..100 {
            leg.tick(lose_every, extra_every);
        }
        group.bench_function(name, |b| b.iter(|| leg.tick(lose_every, extra_every)));
    }
    group.finish();
}

criterion_group!(benches, bench_mixer, bench_jitter);
criterion_main!(benches);
