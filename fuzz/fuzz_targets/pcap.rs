//! A capture file for `pinbridge detect-dtmf`: the pcap/pcapng reader, then
//! the whole detection (RTP in the capture, the telephone-event payload
//! type from the SDP or inferred, RFC 4733 and in-band per stream). Files
//! that start with `RIFF` take the WAV path instead.
//!
//! Properties checked beyond "no panic":
//! - the reader's counters agree with what it returned (every datagram
//!   counted once, none more than the packets read, a cut-short offset
//!   inside the file);
//! - detected digits are DTMF keys, sorted by start time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinbridge::media::dtmf::detect::analyse_file;
use pinbridge::media::dtmf::KEYS;
use pinbridge::media::pcap::read_capture;

fuzz_target!(|data: &[u8]| {
    match read_capture(data) {
        Ok(c) => {
            assert_eq!(c.stats.udp, c.datagrams.len() as u64);
            assert!(c.stats.udp <= c.stats.packets);
            if let Some(at) = c.stats.cut_short_at {
                assert!(
                    at <= data.len(),
                    "cut short at {at} in a {}-byte file",
                    data.len()
                );
            }
            let _ = c.stats.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // The last byte, if it is a dynamic payload type, is also tried as a
    // forced event payload type (`detect-dtmf --event-pt`).
    let forced = data.last().filter(|&&b| (96..128).contains(&b)).copied();
    for pt in std::iter::once(None).chain(forced.map(Some)) {
        let Ok(detection) = analyse_file(data, pt) else {
            continue;
        };
        let mut last = 0;
        for d in &detection.digits {
            assert!(KEYS.contains(&d.key), "not a DTMF key: {:?}", d.key);
            assert!(
                d.start_ms >= last,
                "digits not sorted by start: {:?}",
                detection.digits
            );
            last = d.start_ms;
        }
    }
});
