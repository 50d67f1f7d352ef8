//! RFC 3550 receiver statistics of the RTP stream a leg hears: extended
//! highest sequence number, packets expected and received, cumulative and
//! fractional loss (§6.4.1 with Appendix A.1 and A.3) and interarrival
//! jitter (A.8). Plain integers: nothing allocates, nothing reads a clock
//! (the arrival time comes in with each packet).
//!
//! A leg hears one source at a time. As in A.1 a new SSRC is believed only
//! after `MIN_SEQUENTIAL` packets in sequence (its probation), so a stray
//! packet does not reset the figures; a believed new source (a phone that
//! restarted, a PBX that moved the media to another endpoint) and a
//! sequence number that restarts (A.1's resync after a large jump) begin a
//! new stream whose counts add to those before it, so the leg's totals
//! cover the whole call.
//!
//! As in A.1, `received` counts late packets and duplicates, so `lost` can
//! be negative; `duplicates` and `late` say how many of each there were.

use std::time::Instant;

/// A.1: a forward jump smaller than this is a gap (loss), not a restart.
const MAX_DROPOUT: u16 = 3000;
/// A.1: a packet fewer than this many sequence numbers behind the highest
/// is late (reordered or duplicated), not a restart.
const MAX_MISORDER: u16 = 100;
/// A.1: forward distances above this (up to the late range) are jumps.
const LARGEST_JUMP: u16 = u16::MAX - MAX_MISORDER + 1;
/// A.1: packets in sequence before a new source is believed.
const MIN_SEQUENTIAL: u8 = 2;
/// Sequence numbers remembered behind the highest, to tell a duplicate
/// from a late packet: more than `MAX_MISORDER`, so every late packet A.1
/// counts is covered.
const WINDOW: u16 = 128;

/// RTP clock rate of everything we receive (G.711 and telephone-event/8000).
pub const CLOCK_RATE: u32 = 8000;

/// What A.1 made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceVerdict {
    /// Above the highest sequence number so far (after a gap, maybe).
    InOrder,
    /// Behind the highest and not seen before: reordered or late.
    Late,
    /// Seen before (it is within the remembered window).
    Duplicate,
    /// The first counted packet of a new source that passed probation.
    NewSource,
    /// The source's sequence numbers restarted (a large jump, then the
    /// packet after it): counted as the first packet of a new stream.
    Resynced,
    /// From a source on probation: not counted yet.
    Probation,
    /// A jump too large to be loss that the next packet has not confirmed:
    /// not counted.
    Jump,
}

/// The figures of a leg's incoming stream, for call records and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// The source the sequence and jitter figures describe; `None` until
    /// one has passed probation.
    pub ssrc: Option<u32>,
    /// Times a new source replaced the one before.
    pub ssrc_changes: u32,
    /// Times the current source's sequence numbers restarted.
    pub resyncs: u32,
    /// The current stream's extended highest sequence number as an RTCP
    /// report block carries it: wrap count in the upper 16 bits.
    pub extended_highest_sequence: u32,
    /// Packets expected over the whole call (every stream).
    pub expected: u64,
    /// Packets received over the whole call, late and duplicates included.
    pub received: u64,
    /// `expected - received`: negative when duplicates outnumber losses.
    pub lost: i64,
    /// Loss over the whole call as a fixed-point fraction of 256 (RFC 3550
    /// §6.4.1's format; 0 when nothing was lost).
    pub fraction_lost: u8,
    /// Interarrival jitter of the current stream, in RTP timestamp units
    /// (1/8000 s).
    pub jitter: u32,
    /// Packets received a second time.
    pub duplicates: u64,
    /// Packets that arrived after one with a higher sequence number.
    pub late: u64,
}

/// Loss since the previous [`StreamStatistics::take_interval`], as an RTCP
/// receiver report states it (A.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossInterval {
    pub expected: u64,
    pub received: u64,
    pub lost: i64,
    pub fraction_lost: u8,
}

/// Statistics state of one leg's incoming RTP.
#[derive(Debug, Clone)]
pub struct StreamStatistics {
    /// Arrival times count from here (only differences matter).
    epoch: Instant,
    source: Option<Source>,
    /// Another SSRC on probation while `source` is still believed.
    candidate: Option<Candidate>,
    /// Counts of the streams before the current one.
    earlier: Totals,
    ssrc_changes: u32,
    resyncs: u32,
    /// Totals when the last interval was taken (A.3's `*_prior`).
    prior: Totals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    expected: u64,
    received: u64,
    duplicates: u64,
    late: u64,
}

impl Totals {
    fn plus(self, other: Totals) -> Totals {
        Totals {
            expected: self.expected.saturating_add(other.expected),
            received: self.received.saturating_add(other.received),
            duplicates: self.duplicates.saturating_add(other.duplicates),
            late: self.late.saturating_add(other.late),
        }
    }
}

/// A believed source: A.1's `source` plus A.8's jitter state.
#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    base_seq: u16,
    max_seq: u16,
    /// Wraps of the 16-bit sequence number (A.1 keeps them shifted).
    cycles: u64,
    /// The sequence number that would confirm a large jump as a restart.
    bad_seq: Option<u16>,
    received: u64,
    duplicates: u64,
    late: u64,
    /// Bit `i` set: sequence number `max_seq - i` has arrived.
    seen: u128,
    /// Relative transit time of the previous audio packet (A.8), in
    /// timestamp units; `None` until one arrived.
    transit: Option<u32>,
    /// A.8's jitter estimate times 16 (its integer form).
    jitter16: u64,
}

impl Source {
    /// A.1's `init_seq` plus the count of the packet that starts it.
    fn start(ssrc: u32, seq: u16) -> Source {
        Source {
            ssrc,
            base_seq: seq,
            max_seq: seq,
            cycles: 0,
            bad_seq: None,
            received: 1,
            duplicates: 0,
            late: 0,
            seen: 1,
            transit: None,
            jitter16: 0,
        }
    }

    fn extended_max(&self) -> u64 {
        self.cycles.saturating_mul(1 << 16) | u64::from(self.max_seq)
    }

    fn totals(&self) -> Totals {
        Totals {
            // The extended maximum never falls below the base.
            expected: (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq)),
            received: self.received,
            duplicates: self.duplicates,
            late: self.late,
        }
    }

    /// A.1's `update_seq`, telling duplicates from late packets. A
    /// confirmed restart is left to the caller (`Resynced`).
    fn update(&mut self, seq: u16) -> SequenceVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            // A.1 counts it in order; it is the highest one again.
            self.received += 1;
            self.duplicates += 1;
            SequenceVerdict::Duplicate
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.seen = self.seen.checked_shl(u32::from(udelta)).unwrap_or(0) | 1;
            self.max_seq = seq;
            self.received += 1;
            SequenceVerdict::InOrder
        } else if udelta <= LARGEST_JUMP {
            if self.bad_seq == Some(seq) {
                return SequenceVerdict::Resynced;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            SequenceVerdict::Jump
        } else {
            // Fewer than MAX_MISORDER behind, so inside the window.
            let behind = self.max_seq.wrapping_sub(seq);
            let bit = if behind < WINDOW { 1u128 << behind } else { 0 };
            self.received += 1;
            if self.seen & bit != 0 {
                self.duplicates += 1;
                SequenceVerdict::Duplicate
            } else {
                self.seen |= bit;
                self.late += 1;
                SequenceVerdict::Late
            }
        }
    }

    /// A.8: `arrival` and `timestamp` in the same units; differences wrap.
    fn update_jitter(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            // The difference of two wrapping transit times, as a signed
            // distance.
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            // J += (|D| - J) / 16, in A.8's integer form (J scaled by 16).
            self.jitter16 = (self.jitter16 + d).saturating_sub((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }
}

/// An SSRC on probation (A.1's `probation`).
#[derive(Debug, Clone, Copy)]
struct Candidate {
    ssrc: u32,
    max_seq: u16,
    /// Packets in sequence still needed.
    probation: u8,
}

impl Candidate {
    /// A.1 sets `max_seq = seq - 1` and then runs the packet through
    /// `update_seq`; this is the state after that.
    fn first(ssrc: u32, seq: u16) -> Candidate {
        Candidate {
            ssrc,
            max_seq: seq,
            probation: MIN_SEQUENTIAL - 1,
        }
    }

    /// True when this packet completes the probation.
    fn probe(&mut self, seq: u16) -> bool {
        if seq == self.max_seq.wrapping_add(1) {
            self.probation = self.probation.saturating_sub(1);
            self.max_seq = seq;
            self.probation == 0
        } else {
            self.probation = MIN_SEQUENTIAL - 1;
            self.max_seq = seq;
            false
        }
    }
}

impl StreamStatistics {
    /// Arrival times are measured from `epoch` (any instant at or before
    /// the first packet).
    pub fn new(epoch: Instant) -> Self {
        StreamStatistics {
            epoch,
            source: None,
            candidate: None,
            earlier: Totals::default(),
            ssrc_changes: 0,
            resyncs: 0,
            prior: Totals::default(),
        }
    }

    /// Counts one RTP packet that arrived at `now`. `audio`: its timestamp
    /// follows the 8 kHz sampling clock, so it is used for the jitter
    /// (telephone-events repeat the event's start time and other payloads
    /// have unknown clocks, so they are counted but not timed).
    pub fn on_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        audio: bool,
    ) -> SequenceVerdict {
        let verdict = match &mut self.source {
            Some(source) if source.ssrc == ssrc => match source.update(sequence) {
                SequenceVerdict::Resynced => {
                    self.earlier = self.earlier.plus(source.totals());
                    self.resyncs = self.resyncs.saturating_add(1);
                    // The jitter estimate carries on (same source); the
                    // timestamps probably restarted with the sequence, so
                    // the transit time starts afresh.
                    let jitter16 = source.jitter16;
                    *source = Source::start(ssrc, sequence);
                    source.jitter16 = jitter16;
                    SequenceVerdict::Resynced
                }
                verdict => verdict,
            },
            _ => self.probe(ssrc, sequence),
        };
        if audio
            && matches!(
                verdict,
                SequenceVerdict::InOrder
                    | SequenceVerdict::Late
                    | SequenceVerdict::NewSource
                    | SequenceVerdict::Resynced
            )
        {
            let arrival = self.arrival(now);
            if let Some(source) = &mut self.source {
                source.update_jitter(arrival, timestamp);
            }
        }
        verdict
    }

    /// A packet from an SSRC other than the believed one's.
    fn probe(&mut self, ssrc: u32, sequence: u16) -> SequenceVerdict {
        let passed = match &mut self.candidate {
            Some(candidate) if candidate.ssrc == ssrc => candidate.probe(sequence),
            _ => {
                self.candidate = Some(Candidate::first(ssrc, sequence));
                false
            }
        };
        if !passed {
            return SequenceVerdict::Probation;
        }
        self.candidate = None;
        if let Some(old) = self.source.take() {
            self.earlier = self.earlier.plus(old.totals());
            self.ssrc_changes = self.ssrc_changes.saturating_add(1);
        }
        self.source = Some(Source::start(ssrc, sequence));
        SequenceVerdict::NewSource
    }

    /// `now` in RTP timestamp units since the epoch, wrapping like an RTP
    /// timestamp (A.8 only uses differences).
    fn arrival(&self, now: Instant) -> u32 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        (nanos * u128::from(CLOCK_RATE) / 1_000_000_000) as u32
    }

    fn totals(&self) -> Totals {
        match &self.source {
            Some(source) => self.earlier.plus(source.totals()),
            None => self.earlier,
        }
    }

    pub fn stats(&self) -> StreamStats {
        let totals = self.totals();
        StreamStats {
            ssrc: self.source.map(|s| s.ssrc),
            ssrc_changes: self.ssrc_changes,
            resyncs: self.resyncs,
            // Truncation is the format: an RTCP report carries 32 bits.
            extended_highest_sequence: self.source.map_or(0, |s| s.extended_max() as u32),
            expected: totals.expected,
            received: totals.received,
            lost: lost(totals.expected, totals.received),
            fraction_lost: fraction_lost(totals.expected, totals.received),
            jitter: self
                .source
                .map_or(0, |s| u32::try_from(s.jitter16 >> 4).unwrap_or(u32::MAX)),
            duplicates: totals.duplicates,
            late: totals.late,
        }
    }

    /// Loss since the previous call (or the start), as A.3 computes it for
    /// a receiver report; starts the next interval.
    pub fn take_interval(&mut self) -> LossInterval {
        let totals = self.totals();
        let expected = totals.expected.saturating_sub(self.prior.expected);
        let received = totals.received.saturating_sub(self.prior.received);
        self.prior = totals;
        LossInterval {
            expected,
            received,
            lost: lost(expected, received),
            fraction_lost: fraction_lost(expected, received),
        }
    }
}

fn lost(expected: u64, received: u64) -> i64 {
    let lost = i128::from(expected) - i128::from(received);
    i64::try_from(lost).unwrap_or(if lost < 0 { i64::MIN } else { i64::MAX })
}

/// A.3: `(lost << 8) / expected`, 0 when nothing (or less than nothing)
/// was lost.
pub fn fraction_lost(expected: u64, received: u64) -> u8 {
    if expected == 0 || received >= expected {
        return 0;
    }
    let fraction = (u128::from(expected - received) << 8) / u128::from(expected);
    u8::try_from(fraction).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 20 ms of G.711 in timestamp units.
    const FRAME: u32 = 160;
    const PTIME: Duration = Duration::from_millis(20);

    struct Stream {
        t0: Instant,
        stats: StreamStatistics,
        ssrc: u32,
    }

    impl Stream {
        fn new(ssrc: u32) -> Self {
            let t0 = Instant::now();
            Stream {
                t0,
                stats: StreamStatistics::new(t0),
                ssrc,
            }
        }

        /// An audio packet arriving `at` after the start.
        fn audio(&mut self, seq: u16, ts: u32, at: Duration) -> SequenceVerdict {
            self.stats.on_packet(self.t0 + at, self.ssrc, seq, ts, true)
        }

        /// A steady stream: packets `first..first+n` (wrapping), each
        /// on time.
        fn steady(&mut self, first: u16, n: u16, skip: &[u16]) {
            for i in 0..n {
                let seq = first.wrapping_add(i);
                if skip.contains(&i) {
                    continue;
                }
                self.audio(seq, u32::from(i) * FRAME, PTIME * u32::from(i));
            }
        }
    }

    #[test]
    fn in_order_stream_has_no_loss_and_no_jitter() {
        let mut s = Stream::new(7);
        s.steady(1000, 500, &[]);
        let st = s.stats.stats();
        // The first packet is the source's probation (A.1), not counted.
        assert_eq!(st.ssrc, Some(7));
        assert_eq!((st.expected, st.received, st.lost), (499, 499, 0));
        assert_eq!(st.fraction_lost, 0);
        assert_eq!(st.jitter, 0);
        assert_eq!((st.duplicates, st.late), (0, 0));
        assert_eq!(st.extended_highest_sequence, 1499);
    }

    #[test]
    fn first_packet_is_probation_second_starts_the_source() {
        let mut s = Stream::new(7);
        assert_eq!(s.audio(10, 0, Duration::ZERO), SequenceVerdict::Probation);
        assert_eq!(s.stats.stats().ssrc, None);
        assert_eq!(s.audio(11, 160, PTIME), SequenceVerdict::NewSource);
        assert_eq!(s.audio(12, 320, PTIME * 2), SequenceVerdict::InOrder);
        assert_eq!(s.stats.stats().received, 2);
    }

    #[test]
    fn lost_packets_are_counted() {
        let mut s = Stream::new(1);
        // 100 packets, 7 lost in the middle (not the first two, which
        // start the source).
        s.steady(0, 100, &[10, 11, 12, 40, 41, 70, 98]);
        let st = s.stats.stats();
        assert_eq!(st.expected, 99);
        assert_eq!(st.received, 92);
        assert_eq!(st.lost, 7);
        // (7 << 8) / 99 = 18.1
        assert_eq!(st.fraction_lost, 18);
    }

    #[test]
    fn reordered_packets_are_late_not_lost() {
        let mut s = Stream::new(1);
        s.steady(0, 10, &[]);
        let at = PTIME * 10;
        assert_eq!(s.audio(11, 11 * FRAME, at), SequenceVerdict::InOrder);
        assert_eq!(s.audio(10, 10 * FRAME, at), SequenceVerdict::Late);
        assert_eq!(s.audio(13, 13 * FRAME, at), SequenceVerdict::InOrder);
        assert_eq!(s.audio(12, 12 * FRAME, at), SequenceVerdict::Late);
        let st = s.stats.stats();
        assert_eq!((st.expected, st.received, st.lost), (13, 13, 0));
        assert_eq!(st.late, 2);
        assert_eq!(st.extended_highest_sequence, 13);
    }

    #[test]
    fn duplicates_are_counted_and_make_loss_negative() {
        let mut s = Stream::new(1);
        s.steady(0, 10, &[]);
        let at = PTIME * 10;
        assert_eq!(s.audio(9, 9 * FRAME, at), SequenceVerdict::Duplicate);
        assert_eq!(s.audio(5, 5 * FRAME, at), SequenceVerdict::Duplicate);
        // A late packet arriving twice: late once, then a duplicate.
        s.audio(12, 12 * FRAME, at);
        assert_eq!(s.audio(11, 11 * FRAME, at), SequenceVerdict::Late);
        assert_eq!(s.audio(11, 11 * FRAME, at), SequenceVerdict::Duplicate);
        let st = s.stats.stats();
        assert_eq!(st.duplicates, 3);
        assert_eq!(st.late, 1);
        // 12 expected (1..=12), 14 received: A.1 counts duplicates.
        assert_eq!((st.expected, st.received, st.lost), (12, 14, -2));
        assert_eq!(st.fraction_lost, 0);
    }

    #[test]
    fn sequence_wrap_counts_a_cycle() {
        let mut s = Stream::new(1);
        // 65530 ..= 65535, 0 ..= 9: sixteen packets, one lost after the
        // wrap.
        s.steady(65530, 16, &[7]);
        let st = s.stats.stats();
        assert_eq!(st.extended_highest_sequence, (1 << 16) | 9);
        assert_eq!((st.expected, st.received, st.lost), (15, 14, 1));
        // A packet from before the wrap, arriving again, is known across
        // the wrap and is not taken for a new cycle.
        assert_eq!(
            s.audio(65535, 5 * FRAME, PTIME * 16),
            SequenceVerdict::Duplicate
        );
        assert_eq!(s.stats.stats().extended_highest_sequence, (1 << 16) | 9);
    }

    #[test]
    fn many_wraps_over_a_long_call() {
        let mut s = Stream::new(1);
        let mut seq = 40_000u16;
        for i in 0..200_000u32 {
            s.audio(seq, i * FRAME, PTIME * i);
            seq = seq.wrapping_add(1);
        }
        let st = s.stats.stats();
        assert_eq!((st.expected, st.received, st.lost), (199_999, 199_999, 0));
        // 40_001 + 199_998 = 240_000 - 1 = 3 * 65536 + 43_391
        assert_eq!(st.extended_highest_sequence, (3 << 16) | 43_391);
        assert_eq!(st.jitter, 0);
    }

    #[test]
    fn ssrc_change_mid_stream_starts_a_new_stream_and_keeps_totals() {
        let mut s = Stream::new(1);
        s.steady(100, 50, &[20]); // 49 expected, 48 received
        s.ssrc = 2;
        let at = PTIME * 50;
        assert_eq!(s.audio(9000, 0, at), SequenceVerdict::Probation);
        // The old source is still the one described during probation.
        assert_eq!(s.stats.stats().ssrc, Some(1));
        assert_eq!(s.audio(9001, FRAME, at + PTIME), SequenceVerdict::NewSource);
        s.audio(9003, 3 * FRAME, at + PTIME * 3); // 9002 lost
        let st = s.stats.stats();
        assert_eq!(st.ssrc, Some(2));
        assert_eq!(st.ssrc_changes, 1);
        assert_eq!(st.extended_highest_sequence, 9003);
        assert_eq!((st.expected, st.received, st.lost), (49 + 3, 48 + 2, 2));
    }

    #[test]
    fn a_stray_packet_from_another_ssrc_changes_nothing() {
        let mut s = Stream::new(1);
        s.steady(0, 20, &[]);
        let before = s.stats.stats();
        let v = s.stats.on_packet(s.t0 + PTIME * 20, 99, 5, 0, true);
        assert_eq!(v, SequenceVerdict::Probation);
        // Not in sequence with the first: probation again.
        let v = s.stats.on_packet(s.t0 + PTIME * 21, 99, 7, 0, true);
        assert_eq!(v, SequenceVerdict::Probation);
        assert_eq!(s.stats.stats(), before);
        s.steady(20, 5, &[]);
        assert_eq!(s.stats.stats().received, before.received + 5);
    }

    #[test]
    fn large_jump_resyncs_only_when_confirmed() {
        let mut s = Stream::new(1);
        s.steady(0, 10, &[]); // 1..=9 counted
        let at = PTIME * 10;
        assert_eq!(s.audio(30_000, 0, at), SequenceVerdict::Jump);
        // Not confirmed: the stream goes on where it was.
        assert_eq!(s.audio(10, 10 * FRAME, at), SequenceVerdict::InOrder);
        assert_eq!(s.stats.stats().received, 10);
        assert_eq!(s.audio(40_000, 0, at), SequenceVerdict::Jump);
        assert_eq!(
            s.audio(40_001, FRAME, at + PTIME),
            SequenceVerdict::Resynced
        );
        s.audio(40_002, 2 * FRAME, at + PTIME * 2);
        let st = s.stats.stats();
        assert_eq!(st.resyncs, 1);
        assert_eq!(st.ssrc_changes, 0);
        // 10 before (1..=10), then 40_001..=40_002; the jumps are not counted.
        assert_eq!((st.expected, st.received, st.lost), (12, 12, 0));
        assert_eq!(st.extended_highest_sequence, 40_002);
    }

    /// A.8 by hand. Packets are sent every 20 ms (160 units); odd ones
    /// arrive 10 ms (80 units) late, so every transit difference |D| is 80.
    /// In A.8's integer form J16 += |D| - ((J16 + 8) >> 4), J = J16 >> 4:
    ///   2nd packet: J16 = 0 + 80 - 0 = 80               -> J = 5
    ///   3rd:        J16 = 80 + 80 - (88 >> 4 = 5) = 155  -> J = 9
    ///   4th:        J16 = 155 + 80 - (163 >> 4 = 10) = 225 -> J = 14
    /// (the float form gives 5, 9.69, 14.08: 80 * (1 - (15/16)^k)). It
    /// settles where (J16 + 8) >> 4 = 80, J16 in 1272..=1287: J = 79 or 80,
    /// i.e. |D| itself.
    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut s = Stream::new(1);
        let late = Duration::from_millis(10);
        let mut jitters = Vec::new();
        for i in 0..400u32 {
            let at = PTIME * i + if i % 2 == 1 { late } else { Duration::ZERO };
            s.audio(i as u16, i * FRAME, at);
            jitters.push(s.stats.stats().jitter);
        }
        // The first packet is probation and the second starts the source
        // (sets its transit); D is measured from the third packet on.
        assert_eq!(&jitters[..6], &[0, 0, 5, 9, 14, 18]);
        assert!((79..=80).contains(&jitters[399]), "{}", jitters[399]);
    }

    /// One packet 5 ms (40 units) late in a steady stream: |D| = 40 when it
    /// arrives and 40 again for the next (back on time), then 0.
    ///   J16 = 0 + 40 - 0 = 40; then 40 + 40 - (48 >> 4 = 3) = 77 -> J = 4;
    ///   then 77 + 0 - (85 >> 4 = 5) = 72 -> J = 4; 72 - 5 = 67 -> 4; ...
    #[test]
    fn jitter_of_one_late_packet() {
        let mut s = Stream::new(1);
        s.steady(0, 10, &[]);
        assert_eq!(s.stats.stats().jitter, 0);
        s.audio(10, 10 * FRAME, PTIME * 10 + Duration::from_millis(5));
        assert_eq!(s.stats.stats().jitter, 40 >> 4);
        s.audio(11, 11 * FRAME, PTIME * 11);
        assert_eq!(s.stats.stats().jitter, 77 >> 4);
        s.audio(12, 12 * FRAME, PTIME * 12);
        assert_eq!(s.stats.stats().jitter, 72 >> 4);
        s.audio(13, 13 * FRAME, PTIME * 13);
        assert_eq!(s.stats.stats().jitter, 67 >> 4);
    }

    #[test]
    fn non_audio_packets_count_for_loss_but_not_jitter() {
        let mut s = Stream::new(1);
        s.steady(0, 10, &[]);
        // Telephone-events repeat their start timestamp while time moves.
        for i in 10..20u16 {
            s.stats
                .on_packet(s.t0 + PTIME * u32::from(i), 1, i, 9 * FRAME, false);
        }
        let st = s.stats.stats();
        assert_eq!(st.jitter, 0);
        assert_eq!((st.expected, st.received), (19, 19));
    }

    #[test]
    fn interval_loss_follows_a3() {
        let mut s = Stream::new(1);
        s.steady(0, 101, &[50, 51, 52, 53]); // 100 expected, 96 received
        assert_eq!(
            s.stats.take_interval(),
            LossInterval {
                expected: 100,
                received: 96,
                lost: 4,
                fraction_lost: 10 // (4 << 8) / 100 = 10.24
            }
        );
        // Next interval: 100 more, none lost, one duplicate.
        for i in 101..201u16 {
            s.audio(i, u32::from(i) * FRAME, PTIME * u32::from(i));
        }
        s.audio(200, 200 * FRAME, PTIME * 201);
        assert_eq!(
            s.stats.take_interval(),
            LossInterval {
                expected: 100,
                received: 101,
                lost: -1,
                fraction_lost: 0
            }
        );
        assert_eq!(s.stats.take_interval(), LossInterval::default());
        // The whole-call figures are unaffected by taking intervals.
        let st = s.stats.stats();
        assert_eq!((st.expected, st.received, st.lost), (200, 197, 3));
    }

    #[test]
    fn fraction_lost_never_reaches_256() {
        assert_eq!(fraction_lost(0, 0), 0);
        assert_eq!(fraction_lost(1, 0), 255);
        assert_eq!(fraction_lost(2, 1), 128);
        assert_eq!(fraction_lost(u64::MAX, 0), 255);
        assert_eq!(fraction_lost(5, 9), 0);
    }

    #[test]
    fn arrival_is_in_timestamp_units_and_wraps() {
        let t0 = Instant::now();
        let s = StreamStatistics::new(t0);
        assert_eq!(s.arrival(t0 + Duration::from_millis(20)), 160);
        assert_eq!(s.arrival(t0 + Duration::from_micros(125)), 1);
        // Before the epoch counts as the epoch.
        let before = t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0);
        assert_eq!(s.arrival(before), 0);
        // 2^32 units (536 870.912 s) later it wraps to 0, like an RTP
        // timestamp.
        let wrap = Duration::from_micros(536_870_912_000);
        assert_eq!(s.arrival(t0 + wrap), 0);
        assert_eq!(s.arrival(t0 + wrap + Duration::from_micros(125)), 1);
    }
}
