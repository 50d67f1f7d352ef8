//! The TCP stream framer fed a byte stream in chunks whose sizes come from
//! the input, compared with the same stream pushed in one piece.
//!
//! Input: byte 0 is `n` (taken mod 16), bytes `1..=n` are chunk sizes
//! (each `size + 1`, used in turn, cyclically), the rest is the stream.
//! `n = 0` pushes one byte at a time.
//!
//! Property: framing does not depend on how the stream was segmented. The
//! messages framed before the first fatal error are the same, and both
//! runs end in a fatal error or neither does (the shell closes the
//! connection on the first one, so nothing after it counts).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinbridge::sip::message::{Framed, Parsed, StreamFramer};

/// What a connection saw: the messages, then whether the stream became
/// unframeable.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Parsed>,
    fatal: bool,
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);

    let whole = run(stream, &[stream.len().max(1)]);
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![1]
    } else {
        sizes.iter().map(|&s| usize::from(s) + 1).collect()
    };
    let chunked = run(stream, &sizes);
    assert_eq!(
        whole, chunked,
        "framing depends on segmentation (chunk sizes {sizes:?})"
    );
});

fn run(stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut framer = StreamFramer::new();
    let mut out = Outcome {
        messages: Vec::new(),
        fatal: false,
    };
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let take = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (chunk, later) = rest.split_at(take);
        rest = later;
        framer.push(chunk);
        while let Some(f) = framer.next_message() {
            match f {
                Framed::Message(p) => out.messages.push(p),
                Framed::Fatal(..) => {
                    out.fatal = true;
                    return out;
                }
            }
        }
    }
    out
}
