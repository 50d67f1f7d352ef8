//! Per-packet cost of the RTP receiver core: `RtpReceiver::handle_datagram`
//! (classification, latch, RFC 3550 sequence and jitter statistics) over
//! realistic datagram sequences of a call leg. Decoding the audio is not
//! included (that is G.711's cost, measured elsewhere).
//!
//! ```text
//! cargo bench --bench rtp_receiver
//! ```
//!
//! Criterion reports time per sequence and packets per second (thrpt);
//! time / packets is the cost of one packet.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pinbridge::media::g711::Codec;
use pinbridge::media::rtp::{Datagram, ReceiveParams, RtpReceiver};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const PACKETS: u16 = 1000;

struct Arrival {
    after: Duration,
    from: SocketAddr,
    datagram: Vec<u8>,
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 40000))
}

/// 20 s of PCMU, every packet on time.
fn steady() -> Vec<Arrival> {
    (0..PACKETS)
        .map(|i| Arrival {
            after: Duration::from_millis(20 * u64::from(i)),
            from: peer(),
            datagram: rtp(
                0,
                60_000u16.wrapping_add(i),
                160 * u32::from(i),
                &[0xff; 160],
            ),
        })
        .collect()
}

/// A bad network: 2 % lost, every 50th pair swapped, every 97th packet
/// twice, arrival times wobbling over 18 ms; a DTMF press, and RTCP every
/// 5 s, among them.
fn rough() -> Vec<Arrival> {
    let mut v = Vec::new();
    let mut rng = StdRng::seed_from_u64(10);
    for i in 0..PACKETS {
        if rng.random_ratio(1, 50) {
            continue;
        }
        let wobble = rng.random_range(0..18_000);
        let after = Duration::from_micros(20_000 * u64::from(i) + wobble);
        let seq = 60_000u16.wrapping_add(i);
        let datagram = if (400..410).contains(&i) {
            let duration = (160 * (i - 399)).to_be_bytes();
            rtp(101, seq, 160 * 400, &[5, 10, duration[0], duration[1]])
        } else {
            rtp(0, seq, 160 * u32::from(i), &[0xff; 160])
        };
        if i % 97 == 0 {
            v.push(Arrival {
                after,
                from: peer(),
                datagram: datagram.clone(),
            });
        }
        v.push(Arrival {
            after,
            from: peer(),
            datagram,
        });
        if i % 250 == 0 {
            let mut rr = vec![0x81, 201, 0, 7];
            rr.extend_from_slice(&[0; 28]);
            v.push(Arrival {
                after,
                from: peer(),
                datagram: rr,
            });
        }
        if i % 50 == 1 && v.len() >= 2 {
            let n = v.len();
            v.swap(n - 1, n - 2);
        }
    }
    v
}

fn run(start: Instant, arrivals: &[Arrival]) -> u64 {
    let mut rx = RtpReceiver::new(start);
    rx.negotiate(ReceiveParams {
        codec: Codec::Pcmu,
        codec_pt: 0,
        telephone_event_pt: Some(101),
        remote_rtp: Some(peer()),
    });
    let mut audio = 0;
    for a in arrivals {
        if let Datagram::Audio { packet, .. } =
            rx.handle_datagram(black_box(&a.datagram), a.from, start + a.after)
        {
            audio += packet.payload.len() as u64;
        }
    }
    audio + rx.stats().stream.received
}

fn bench(c: &mut Criterion) {
    let start = Instant::now();
    let mut group = c.benchmark_group("rtp_receiver");
    for (name, arrivals) in [("steady_pcmu", steady()), ("rough_network", rough())] {
        assert!(run(start, &arrivals) > 0);
        group.throughput(Throughput::Elements(arrivals.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| run(black_box(start), black_box(&arrivals)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
