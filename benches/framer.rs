//! Cost of framing SIP over TCP ([`StreamFramer`]) as a peer splits the
//! stream: the same 65,000-byte message pushed whole, in 1,460-byte
//! segments, and one byte at a time (the case that was quadratic: the whole
//! buffer was re-scanned on every read), plus 100 small pipelined requests.
//!
//! ```text
//! cargo bench --bench framer
//! ```
//!
//! Criterion reports time per message (per 100 requests for `pipelined`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pinbridge::sip::message::{Framed, StreamFramer};

/// A MESSAGE of about `size` bytes: two thirds headers, one third body.
fn big_message(size: usize) -> Vec<u8> {
    let body = vec![b'x'; size / 3];
    let mut m = b"MESSAGE sip:a@b SIP/2.0\r\n".to_vec();
    let tail = format!("Content-Length: {}\r\n\r\n", body.len());
    let mut n = 0;
    while m.len() + tail.len() + body.len() + 40 < size {
        m.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "y".repeat(24)).as_bytes());
        n += 1;
    }
    m.extend_from_slice(tail.as_bytes());
    m.extend_from_slice(&body);
    m
}

/// Pushes `segment`-byte pieces, asking for messages after each, as the
/// connection task does; returns the messages framed.
fn frame(bytes: &[u8], segment: usize) -> usize {
    let mut f = StreamFramer::new();
    let mut framed = 0;
    for chunk in bytes.chunks(segment) {
        f.push(chunk);
        while let Some(m) = f.next_message() {
            match m {
                Framed::Message(p) => {
                    black_box(p);
                    framed += 1;
                }
                Framed::Fatal(e, _) => panic!("benchmark input does not frame: {e}"),
            }
        }
    }
    framed
}

fn bench(c: &mut Criterion) {
    let big = big_message(65_000);
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Bytes(big.len() as u64));
    for (name, segment) in [
        ("65k_whole", big.len()),
        ("65k_1460_byte_segments", 1460),
        ("65k_1_byte_segments", 1),
    ] {
        g.bench_function(name, |b| b.iter(|| assert_eq!(frame(&big, segment), 1)));
    }
    let one = b"OPTIONS sip:probe@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.9:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.9>;tag=1928301774\r\n\
To: <sip:probe@192.0.2.1>\r\nCall-ID: a84b4c76e66710@192.0.2.9\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let pipelined: Vec<u8> = one.repeat(100);
    g.throughput(Throughput::Bytes(pipelined.len() as u64));
    g.bench_function("pipelined_100_options_16k_reads", |b| {
        b.iter(|| assert_eq!(frame(&pipelined, 16 * 1024), 100))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
