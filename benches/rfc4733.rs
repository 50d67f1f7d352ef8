//! Per-packet cost of the RFC 4733 receiver: `handle_packet` + draining
//! `poll_event`, over realistic packet sequences of "1234#".
//!
//! ```text
//! cargo bench --bench rfc4733
//! ```
//!
//! Criterion reports time per sequence and packets per second (thrpt);
//! time / packets is the cost of one packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pinbridge::media::dtmf::rfc4733::Rfc4733Receiver;

/// One telephone-event packet as the shell hands it over.
struct Packet {
    after: Duration,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload: [u8; 4],
}

fn block(code: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [code, (u8::from(end) << 7) | 10, d[0], d[1]]
}

/// baresip 1.0: per digit 9 updates (160..1440) 20 ms apart, marker on the
/// first, then 3 end packets; digits back to back.
fn baresip() -> Vec<Packet> {
    let mut v = Vec::new();
    let (mut seq, mut ts) = (4000u16, 0x7A00_0000u32);
    for code in [1u8, 2, 3, 4, 11] {
        for k in 0..9u16 {
            v.push(Packet {
                after: Duration::from_millis(20 * u64::from(v.len() as u32)),
                sequence: seq,
                timestamp: ts,
                marker: k == 0,
                payload: block(code, false, 160 * (k + 1)),
            });
            seq = seq.wrapping_add(1);
        }
        for _ in 0..3 {
            v.push(Packet {
                after: Duration::from_millis(20 * u64::from(v.len() as u32)),
                sequence: seq,
                timestamp: ts,
                marker: false,
                payload: block(code, true, 1440),
            });
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(1440 + 480);
    }
    v
}

/// A broken sender that stamps every update with its audio clock (the
/// timestamp moves each packet) and sends 6 ends without marker (Twinkle's
/// end count): exercises the same-press continuation path.
fn restamping() -> Vec<Packet> {
    let mut v = Vec::new();
    let (mut seq, mut ts) = (100u16, 0xFFFF_F000u32);
    for code in [1u8, 2, 3, 4, 11] {
        for k in 0..5u32 {
            v.push(Packet {
                after: Duration::from_millis(20 * u64::from(v.len() as u32)),
                sequence: seq,
                timestamp: ts.wrapping_add(160 * k),
                marker: false,
                payload: block(code, false, (160 * (k + 1)) as u16),
            });
            seq = seq.wrapping_add(1);
        }
        for _ in 0..6 {
            v.push(Packet {
                after: Duration::from_millis(20 * u64::from(v.len() as u32)),
                sequence: seq,
                timestamp: ts.wrapping_add(800),
                marker: false,
                payload: block(code, true, 960),
            });
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(800 + 960 + 800);
    }
    v
}

fn run(start: Instant, packets: &[Packet]) -> usize {
    let mut rx = Rfc4733Receiver::new();
    let mut digits = 0;
    for p in packets {
        rx.handle_packet(
            start + p.after,
            0x1234_5678,
            p.sequence,
            p.timestamp,
            p.marker,
            black_box(&p.payload),
        );
        while let Some(e) = rx.poll_event() {
            digits += usize::from(matches!(
                e,
                pinbridge::media::dtmf::rfc4733::Rfc4733Event::Started { .. }
            ));
        }
    }
    digits
}

fn bench(c: &mut Criterion) {
    let start = Instant::now();
    let mut group = c.benchmark_group("rfc4733");
    for (name, packets) in [
        ("baresip_1234#", baresip()),
        ("restamping_1234#", restamping()),
    ] {
        assert_eq!(run(start, &packets), 5, "{name} must yield 5 digits");
        group.throughput(Throughput::Elements(packets.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| run(black_box(start), black_box(&packets)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
