//! RTP send state over rtp-rs: SSRC, sequence number and timestamp, and a
//! packet clock that keeps timestamps tied to elapsed time.

use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, Seq};

/// Largest RTP packet we build: 12-byte header plus 60 ms of G.711.
pub const MAX_PACKET: usize = 12 + 480;

/// Sender state of one RTP stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
}

impl RtpSender {
    /// `ssrc`, `sequence` and `timestamp` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, sequence: u16, timestamp: u32, payload_type: u8) -> Self {
        RtpSender {
            ssrc,
            sequence,
            timestamp,
            payload_type,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn set_payload_type(&mut self, pt: u8) {
        self.payload_type = pt;
    }

    /// Writes one packet carrying `payload` (`samples` sampling periods of
    /// audio) into `out` and returns its length; then advances sequence and
    /// timestamp. `out` must hold at least 12 + payload bytes.
    pub fn write_packet(
        &mut self,
        payload: &[u8],
        samples: u32,
        marker: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let len = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.sequence))
            .timestamp(self.timestamp)
            .marked(marker)
            .payload(payload)
            .build_into(out)
            .ok()?;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        Some(len)
    }

    /// Advances the timestamp over audio that was not sent (a late wake-up
    /// or a muted period), so the receiver sees the gap in time.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }
}

/// The schedule of a paced stream: packet `n` is due at `start + n·ptime`.
/// Deriving each deadline from the start (rather than adding ptime to the
/// last wake-up) means scheduling latency never accumulates into drift.
#[derive(Debug, Clone)]
pub struct PacketClock {
    start: Instant,
    ptime: Duration,
    next_index: u64,
}

impl PacketClock {
    pub fn new(start: Instant, ptime: Duration) -> Self {
        PacketClock {
            start,
            ptime,
            next_index: 0,
        }
    }

    pub fn next_deadline(&self) -> Instant {
        self.start + self.ptime * (self.next_index as u32)
    }

    /// Called when woken at `now`: how many packet slots have come due. The
    /// caller sends the last of them and skips the others (at most a burst
    /// of `max_burst` is reported as due to send; older slots count as
    /// skipped).
    pub fn due(&mut self, now: Instant, max_burst: u64) -> Due {
        if now < self.next_deadline() {
            return Due { send: 0, skip: 0 };
        }
        let elapsed = now.saturating_duration_since(self.start);
        let last_due = (elapsed.as_nanos() / self.ptime.as_nanos().max(1)) as u64;
        let count = last_due + 1 - self.next_index;
        self.next_index = last_due + 1;
        let send = count.min(max_burst);
        Due {
            send,
            skip: count - send,
        }
    }

    /// Starts the schedule again from `start` (e.g. after a ptime change).
    pub fn restart(&mut self, start: Instant, ptime: Duration) {
        self.start = start;
        self.ptime = ptime;
        self.next_index = 0;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Packets to send now.
    pub send: u64,
    /// Packet slots that passed while we were late and are skipped.
    pub skip: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    #[test]
    fn packets_carry_state_and_advance() {
        let mut s = RtpSender::new(0xdead_beef, 65535, u32::MAX - 100, 0);
        let mut buf = [0u8; MAX_PACKET];
        let payload = [0xffu8; 160];
        let n = s.write_packet(&payload, 160, true, &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(
            (
                r.ssrc(),
                u16::from(r.sequence_number()),
                r.timestamp(),
                r.mark()
            ),
            (0xdead_beef, 65535, u32::MAX - 100, true)
        );
        assert_eq!(r.payload(), &payload[..]);
        let n = s.write_packet(&payload, 160, false, &mut buf).unwrap();
        let r = RtpReader::new(&buf[..n]).unwrap();
        assert_eq!(
            (u16::from(r.sequence_number()), r.timestamp()),
            (0, 59),
            "both wrap"
        );
    }

    #[test]
    fn too_small_buffer_is_none_not_panic() {
        let mut s = RtpSender::new(1, 1, 1, 8);
        assert!(s
            .write_packet(&[0u8; 160], 160, false, &mut [0u8; 20])
            .is_none());
    }

    #[test]
    fn clock_has_no_drift_over_an_hour() {
        let t0 = Instant::now();
        let mut c = PacketClock::new(t0, Duration::from_millis(20));
        let mut sent = 0u64;
        // Wake up 3 ms late every time; deadlines still come from t0.
        for _ in 0..180_000 {
            let now = c.next_deadline() + Duration::from_millis(3);
            let d = c.due(now, 3);
            sent += d.send + d.skip;
        }
        assert_eq!(sent, 180_000);
        assert_eq!(c.next_deadline(), t0 + Duration::from_secs(3600));
    }

    #[test]
    fn long_stall_skips_old_slots() {
        let t0 = Instant::now();
        let mut c = PacketClock::new(t0, Duration::from_millis(20));
        assert_eq!(c.due(t0, 3), Due { send: 1, skip: 0 });
        assert_eq!(
            c.due(t0 + Duration::from_millis(10), 3),
            Due { send: 0, skip: 0 }
        );
        assert_eq!(
            c.due(t0 + Duration::from_millis(205), 3),
            Due { send: 3, skip: 7 }
        );
        assert_eq!(c.next_deadline(), t0 + Duration::from_millis(220));
    }
}
