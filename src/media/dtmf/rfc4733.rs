//! RFC 4733 telephone-event receiver: RTP event packets in, key presses out.
//!
//! A sans-I/O core. The shell hands it every RTP packet whose payload type is
//! the negotiated `telephone-event` type, with the packet's arrival time, and
//! polls the resulting [`Rfc4733Event`]s; it sleeps until
//! [`Rfc4733Receiver::poll_timeout`] and then calls
//! [`Rfc4733Receiver::handle_timeout`]. Nothing here reads a clock, allocates
//! per packet or panics on any packet content.
//!
//! # How a key press is recognised
//!
//! RFC 4733 §2.5.1.2: all packets of one event carry the RTP timestamp of the
//! event's start, so one press is identified by **(SSRC, RTP timestamp)**.
//! The marker bit is *not* used: many senders omit it (Twinkle), and it is
//! lost whenever the first packet is. Sequence numbers are not used either:
//! SIPp's shipped captures send the three end packets with one sequence
//! number, so they say nothing about identity or order.
//!
//! Real senders bend the rules, and each rule below has a test:
//!
//! * The first packet may carry duration 0 (SIPp), the marker may be missing
//!   (Twinkle), the end packet is sent 3 (baresip, SIPp) or 6 (Twinkle) times
//!   (§2.5.1.4). A press is reported once, when its first packet arrives.
//! * Packets are duplicated, reordered and lost. Durations inside one segment
//!   are compared as 16-bit serial numbers, so an old update never shortens a
//!   press and a duration that wraps past 0xFFFF keeps counting.
//! * All end packets lost: the press is closed [`EVENT_TIMEOUT`] after its
//!   last packet, or as soon as another press starts.
//! * Long presses (§2.5.1.3): past 0xFFFF samples the sender starts a
//!   new *segment* with a new timestamp; that continues the same press.
//! * Broken senders change the timestamp inside one press (they stamp each
//!   update with the current audio timestamp, or re-base the timeline). While
//!   a press is open (no end seen), a packet with the same event code whose
//!   timestamp and duration continue that press is folded into it instead of
//!   becoming a second digit. See [`Rfc4733Receiver`] for the exact tests.
//! * Several events in one packet (§2.5.1.5): each 4-byte block is handled,
//!   the `n`-th block starting where the previous one ended; blocks of events
//!   already seen are ignored.
//! * Packets of presses that have ended (retransmitted ends arriving after a
//!   timeout, late updates) never start them again: the last
//!   [`REMEMBERED`] presses are remembered.
//!
//! Known ambiguity: a *new* press of the **same** key that starts within
//! [`CONTINUATION_SLACK`] of the previous press's last known sample, when all
//! of that previous press's end packets were lost, looks exactly like a sender
//! re-stamping one press and is merged into it. Keypad presses are separated
//! by pauses of 40 ms (ITU-T Q.24) to 100 ms and more, and losing every one of
//! the 3–6 end packets is rare, so we prefer this over double digits, which
//! broken senders cause on every press.

// Everything under here reads bytes a peer controls: a panic on a short or
// odd packet would take the call (or the server) down.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::time::{Duration, Instant};

use super::event_to_key;

/// Closes a press whose end packets were all lost. Senders update an event
/// at least every 50 ms or every packet interval (§2.5.1.2), so 300 ms is
/// five or more missed updates — long enough to ride out jitter, short
/// enough that the next press is not held up.
pub const EVENT_TIMEOUT: Duration = Duration::from_millis(300);

/// How many ended presses are remembered so their late packets are ignored.
pub const REMEMBERED: usize = 8;

/// Events waiting for [`Rfc4733Receiver::poll_event`]. A packet yields at
/// most 3 events per handled block (end of the previous press, start and end
/// of a new one); the shell drains the queue after each packet.
const QUEUE: usize = 32;

/// Most event blocks handled from one packet (the newest ones). Packing
/// (§2.5.1.5) carries the current event and a few before it for redundancy;
/// more than this is a broken or hostile sender.
const MAX_BLOCKS: usize = 8;

/// How far (in 8 kHz samples, 40 ms) a changed timestamp may lie beyond the
/// end of the open press and still continue it.
pub const CONTINUATION_SLACK: u32 = 320;

/// How closely (samples) the growth of the duration must match the move of
/// the timestamp for a packet to be read as "same press, re-stamped with the
/// audio clock".
const RESTAMP_SLACK: u32 = 320;

/// A new long-event segment (§2.5.1.3) starts 0xFFFF samples after the
/// previous one; senders that cut segments at a multiple of their packet
/// size start it a little earlier. Accepted offsets:
/// `SEGMENT_MIN..=0xFFFF`.
const SEGMENT_MIN: u32 = 0xFFFF - 0x1000;

/// Largest duration step (samples, 200 ms) accepted from a sender that
/// re-bases its timestamps backwards while the duration keeps rising.
const RISE_MAX: u32 = 1600;

/// A block of an unknown event whose timestamp lies before the latest press
/// on the same SSRC by less than this (samples, 500 ms) is a stale, reordered
/// packet and is dropped. Further back it is a re-based timeline (a sender
/// that restarted its clock) and starts a new press.
const STALE_WINDOW: u32 = 4000;

/// Network jitter allowed when judging whether an end packet could come
/// from a new press at all (see [`Rfc4733Receiver`]).
const PLAUSIBILITY_SLACK: Duration = Duration::from_millis(50);

/// RTP clock rate of telephone-events for DTMF (§2.3: the audio's clock,
/// 8 kHz for G.711).
const CLOCK_RATE: u64 = 8000;

/// A key press seen in RFC 4733 events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc4733Event {
    /// A key press began (reported once, at the first packet of the event that arrives).
    Started {
        key: char,
        ssrc: u32,
        rtp_timestamp: u32,
        at: std::time::Instant,
    },
    /// It ended: its duration in timestamp units (samples at 8 kHz), `by_timeout` when no end packet arrived.
    Ended {
        key: char,
        ssrc: u32,
        rtp_timestamp: u32,
        duration: u32,
        by_timeout: bool,
    },
}

/// One 4-byte event block (§2.3): event code, E bit, volume, duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    code: u8,
    end: bool,
    duration: u16,
}

impl Block {
    /// The R bit and the volume are ignored: the volume says nothing about
    /// which key was pressed, and senders fill it in differently (SIPp and
    /// baresip 10, some 0).
    fn parse(b: &[u8]) -> Option<Block> {
        let [code, flags, hi, lo] = *b else {
            return None;
        };
        Some(Block {
            code,
            end: flags & 0x80 != 0,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }
}

/// The state of one key press.
#[derive(Debug, Clone, Copy)]
struct Press {
    ssrc: u32,
    code: u8,
    key: char,
    /// The timestamp the press was first seen with: its identity, reported in
    /// both events.
    id_ts: u32,
    /// First sample of the press on the sender's current timeline.
    lo: u32,
    /// Timestamp of the current segment (differs from `id_ts` after a long
    /// event segment or a sender re-stamping the press).
    seg_ts: u32,
    /// Duration inside the current segment (can exceed 0xFFFF if the 16-bit
    /// field wrapped without a new segment).
    seg_dur: u32,
    /// Duration covered by earlier segments.
    base: u32,
    /// Longest total duration seen; never decreases.
    total: u32,
    ended: bool,
    /// Arrival of the latest packet that belonged to the press.
    last_at: Instant,
    /// When the press was closed (end packet or timeout).
    ended_at: Instant,
}

/// How a block relates to a known press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// An update of the current segment.
    Advance,
    /// Same press, timestamp moved forward by as much as the duration grew:
    /// the sender stamps updates with its audio clock.
    Restamp,
    /// Same press, continued under a new timestamp `rel` samples after the
    /// current segment's, the duration counted from there: a new segment.
    NewSegment(u32),
    /// Same press, timestamps re-based backwards; the duration keeps counting.
    Rebase,
    /// Same press, the timestamp jumped forward while the duration keeps
    /// rising (a sender or relay whose clock stepped mid-press).
    Jump,
    /// A packet of this press that changes nothing (duplicate, late, or
    /// after its end).
    Absorb,
    /// Not this press.
    Other,
}

impl Press {
    fn new(now: Instant, ssrc: u32, ts: u32, code: u8, key: char, duration: u16) -> Press {
        let d = u32::from(duration);
        Press {
            ssrc,
            code,
            key,
            id_ts: ts,
            lo: ts,
            seg_ts: ts,
            seg_dur: d,
            base: 0,
            total: d,
            ended: false,
            last_at: now,
            ended_at: now,
        }
    }

    /// One past the last known sample of the press, in the timestamps of
    /// its start. (A re-stamping sender's current stamp plus its duration
    /// would overshoot: its duration counts from the press start.)
    fn hi(&self) -> u32 {
        self.lo.wrapping_add(self.total)
    }

    /// Wrap-safe `lo <= ts < hi`: does `ts` fall inside the press?
    fn contains(&self, ts: u32) -> bool {
        ts.wrapping_sub(self.lo) < self.hi().wrapping_sub(self.lo)
    }

    /// Serial-number step (RFC 1982 style) from the segment duration to `d`.
    fn step(&self, d: u16) -> i16 {
        d.wrapping_sub(self.seg_dur as u16) as i16
    }

    /// Advances the segment duration if `d` is newer: a late update
    /// (smaller) changes nothing, and a field that wrapped past 0xFFFF keeps
    /// counting.
    fn advance(&mut self, d: u16) {
        let step = self.step(d);
        if step > 0 {
            self.seg_dur = self.seg_dur.saturating_add(step as u32);
            self.total = self.total.max(self.base.saturating_add(self.seg_dur));
        }
    }

    fn apply(&mut self, fit: Fit, ts: u32, d: u16) {
        match fit {
            Fit::Advance => self.advance(d),
            Fit::Restamp => {
                self.seg_ts = ts;
                self.advance(d);
            }
            Fit::NewSegment(rel) => {
                self.base = self.base.saturating_add(rel);
                self.seg_ts = ts;
                self.seg_dur = u32::from(d);
                self.total = self.total.max(self.base.saturating_add(self.seg_dur));
            }
            Fit::Rebase => {
                self.lo = ts;
                self.seg_ts = ts;
                self.advance(d);
            }
            Fit::Jump => {
                self.seg_ts = ts;
                self.advance(d);
            }
            Fit::Absorb | Fit::Other => {}
        }
    }

    /// Classifies block `b` at timestamp `ts` (same SSRC) against this press.
    fn fit(&self, now: Instant, ts: u32, b: Block) -> Fit {
        if ts == self.seg_ts {
            // Same identity: an update or a retransmission (§2.5.1.2,
            // §2.5.1.4). A different code under one timestamp cannot be a new
            // press (two presses never share a start); ignore it.
            if self.ended || b.code != self.code {
                return Fit::Absorb;
            }
            return Fit::Advance;
        }
        if ts == self.id_ts {
            // A late packet of the first segment.
            return Fit::Absorb;
        }
        if b.code != self.code {
            return Fit::Other;
        }
        let rel = ts.wrapping_sub(self.seg_ts) as i32;
        if rel < 0 {
            self.fit_before(ts, b)
        } else if self.ended {
            self.fit_after_end(now, ts, b)
        } else {
            self.fit_ahead(rel as u32, b)
        }
    }

    /// A timestamp before the current segment's.
    fn fit_before(&self, ts: u32, b: Block) -> Fit {
        if self.contains(ts) {
            // Inside an earlier part of this press: a late packet.
            return Fit::Absorb;
        }
        if !self.ended && (0..=RISE_MAX as i16).contains(&self.step(b.duration)) {
            // Before the press began, yet the duration continues it: the
            // sender (or a B2BUA) re-based its timestamps mid-press. A new
            // press cannot start before the one still in progress.
            return Fit::Rebase;
        }
        Fit::Other
    }

    /// Open press, timestamp `rel` samples after the current segment's.
    fn fit_ahead(&self, rel: u32, b: Block) -> Fit {
        let d = u32::from(b.duration);
        if rel.saturating_add(self.seg_dur).abs_diff(d) <= RESTAMP_SLACK {
            // Timestamp and duration moved on together: the sender stamps
            // each update with its audio clock but counts the duration from
            // the press start (the most common cause of double digits). A
            // new press could not claim a duration reaching back into this
            // one.
            return Fit::Restamp;
        }
        if rel <= self.seg_dur.saturating_add(CONTINUATION_SLACK) {
            // A new timestamp inside or right at the end of the press, and a
            // duration counted from it: (ts + duration) continues the press.
            return Fit::NewSegment(rel);
        }
        if (SEGMENT_MIN..=0xFFFF).contains(&rel) {
            // §2.5.1.3: the next segment of a long event starts 0xFFFF
            // samples after the previous one (accepted even if the last
            // packets of that segment were lost).
            return Fit::NewSegment(rel);
        }
        if (1..=RISE_MAX as i16).contains(&self.step(b.duration)) {
            // Same key, press still open, and the duration goes on rising
            // from where it was: the timestamp jumped, the press did not
            // end. A new press would start its duration again from zero.
            return Fit::Jump;
        }
        Fit::Other
    }

    /// Ended press, timestamp after the current segment's.
    fn fit_after_end(&self, now: Instant, ts: u32, b: Block) -> Fit {
        if self.contains(ts) {
            // Inside the finished press; presses never overlap.
            return Fit::Absorb;
        }
        // A re-stamped retransmission of the end (seen from media relays):
        // a new press could only send an end claiming `duration` samples
        // once that much time has passed since this one ended.
        let claimed = Duration::from_micros(u64::from(b.duration) * 1_000_000 / CLOCK_RATE);
        let elapsed = now.saturating_duration_since(self.ended_at);
        if b.end && claimed > elapsed + PLAUSIBILITY_SLACK {
            return Fit::Absorb;
        }
        Fit::Other
    }

    fn started(&self, at: Instant) -> Rfc4733Event {
        Rfc4733Event::Started {
            key: self.key,
            ssrc: self.ssrc,
            rtp_timestamp: self.id_ts,
            at,
        }
    }

    fn ended_event(&self, by_timeout: bool) -> Rfc4733Event {
        Rfc4733Event::Ended {
            key: self.key,
            ssrc: self.ssrc,
            rtp_timestamp: self.id_ts,
            duration: self.total,
            by_timeout,
        }
    }
}

/// What is kept of an ended press: enough to recognise its late packets.
#[derive(Debug, Clone, Copy)]
struct Past {
    ssrc: u32,
    code: u8,
    id_ts: u32,
    seg_ts: u32,
    lo: u32,
    hi: u32,
}

impl Past {
    fn of(p: &Press) -> Past {
        Past {
            ssrc: p.ssrc,
            code: p.code,
            id_ts: p.id_ts,
            seg_ts: p.seg_ts,
            lo: p.lo,
            hi: p.hi(),
        }
    }

    /// Is a block at `ts` a late packet of this press? Its own timestamps
    /// whatever the code; a timestamp inside its extent with its code.
    fn covers(&self, ssrc: u32, ts: u32, code: u8) -> bool {
        if ssrc != self.ssrc {
            return false;
        }
        if ts == self.id_ts || ts == self.seg_ts {
            return true;
        }
        // Wrap-safe `lo <= ts < hi`.
        code == self.code && ts.wrapping_sub(self.lo) < self.hi.wrapping_sub(self.lo)
    }
}

/// A fixed-size FIFO of events; when full the oldest is dropped (the shell
/// drains after every packet, so this only bounds a shell that does not).
#[derive(Debug)]
struct EventQueue {
    buf: [Option<Rfc4733Event>; QUEUE],
    head: usize,
    len: usize,
}

impl EventQueue {
    fn new() -> EventQueue {
        EventQueue {
            buf: [None; QUEUE],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, e: Rfc4733Event) {
        if self.len == QUEUE {
            self.head = (self.head + 1) % QUEUE;
            self.len -= 1;
        }
        // The index is taken modulo the array's length, so the slot is
        // always there; `get_mut` only keeps the lint honest.
        if let Some(slot) = self.buf.get_mut((self.head + self.len) % QUEUE) {
            *slot = Some(e);
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<Rfc4733Event> {
        if self.len == 0 {
            return None;
        }
        let e = self.buf.get_mut(self.head).and_then(Option::take);
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        e
    }
}

/// Receiver of RFC 4733 telephone-events for one call (one RTP session).
///
/// Each event block is handled in order:
///
/// 1. Event codes 16 and up (flash, tones) are skipped: only 0–15 are keys.
/// 2. Against the latest press on the same SSRC: the same timestamp updates
///    it (or is absorbed once it has ended). While it is open, a block with
///    the same event code and a *changed* timestamp continues it when
///    * timestamp and duration moved on by the same amount (±40 ms): the
///      sender stamps each update with its audio clock;
///    * the timestamp lies inside the press or at most
///      [`CONTINUATION_SLACK`] past its end, the duration counted from the
///      new timestamp: (ts + duration) continues the press;
///    * the timestamp is 0xEFFF–0xFFFF after the segment's: a long-event
///      segment (§2.5.1.3);
///    * the timestamp is before the press began and the duration keeps
///      rising: a re-based timeline.
///
///    Once it has ended, same-code blocks inside it, and end blocks claiming
///    more duration than has elapsed since it ended, are retransmissions.
/// 3. Blocks of any of the last [`REMEMBERED`] ended presses are ignored.
/// 4. Blocks of unknown events up to 500 ms before the latest press are
///    stale and ignored.
/// 5. Anything else is a new press: the open one (if any) is closed with
///    `by_timeout: true`, and the new one is reported.
#[derive(Debug)]
pub struct Rfc4733Receiver {
    /// The latest press, open or ended; kept until the next one starts.
    current: Option<Press>,
    /// Ended presses before `current`, a ring of the last [`REMEMBERED`].
    past: [Option<Past>; REMEMBERED],
    past_next: usize,
    events: EventQueue,
}

impl Default for Rfc4733Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Rfc4733Receiver {
    pub fn new() -> Self {
        Rfc4733Receiver {
            current: None,
            past: [None; REMEMBERED],
            past_next: 0,
            events: EventQueue::new(),
        }
    }

    /// One RTP packet already known to be telephone-event (the caller filtered by the negotiated
    /// payload type). `payload` is the RTP payload (after the header).
    ///
    /// `sequence` and `marker` are accepted but not used to identify events:
    /// senders repeat sequence numbers on retransmitted ends and omit the
    /// marker (see the module docs). A payload that is empty or not a whole
    /// number of 4-byte blocks is ignored.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let _ = (sequence, marker);
        self.handle_timeout(now);
        if payload.is_empty() || payload.len() % 4 != 0 {
            return;
        }
        let blocks = payload.len() / 4;
        let skip = blocks.saturating_sub(MAX_BLOCKS);
        // §2.5.1.5: packed events are contiguous; the packet timestamp is the
        // start of the first, and each next one starts where the previous
        // one ended.
        let mut offset = 0u32;
        for (i, raw) in payload.chunks_exact(4).enumerate() {
            let Some(block) = Block::parse(raw) else {
                continue;
            };
            let ts = timestamp.wrapping_add(offset);
            offset = offset.wrapping_add(u32::from(block.duration));
            if i >= skip {
                self.handle_block(now, ssrc, ts, block);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Rfc4733Event> {
        self.events.pop()
    }

    /// When the open press (if any) times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.current {
            Some(p) if !p.ended => Some(p.last_at + EVENT_TIMEOUT),
            _ => None,
        }
    }

    /// Closes the open press if no packet arrived for it within
    /// [`EVENT_TIMEOUT`] (all its end packets were lost).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = &mut self.current {
            if !p.ended && now >= p.last_at + EVENT_TIMEOUT {
                p.ended = true;
                p.ended_at = p.last_at;
                let e = p.ended_event(true);
                self.events.push(e);
            }
        }
    }

    fn handle_block(&mut self, now: Instant, ssrc: u32, ts: u32, block: Block) {
        let Some(key) = event_to_key(block.code) else {
            return;
        };
        if self.continues_current(now, ssrc, ts, block) {
            return;
        }
        if self.is_old(ssrc, ts, block.code) {
            return;
        }
        self.start_press(now, ssrc, ts, block, key);
    }

    /// Applies `block` to the latest press if it belongs to it.
    fn continues_current(&mut self, now: Instant, ssrc: u32, ts: u32, block: Block) -> bool {
        let Some(p) = &mut self.current else {
            return false;
        };
        if p.ssrc != ssrc {
            return false;
        }
        let fit = p.fit(now, ts, block);
        if fit == Fit::Other {
            return false;
        }
        if fit == Fit::Absorb {
            return true;
        }
        p.apply(fit, ts, block.duration);
        p.last_at = now;
        if block.end {
            p.ended = true;
            p.ended_at = now;
            let e = p.ended_event(false);
            self.events.push(e);
        }
        true
    }

    /// A late block of a remembered press, or a stale reordered one from
    /// just before the latest press.
    fn is_old(&self, ssrc: u32, ts: u32, code: u8) -> bool {
        if self.past.iter().flatten().any(|p| p.covers(ssrc, ts, code)) {
            return true;
        }
        match &self.current {
            Some(p) if p.ssrc == ssrc => {
                let back = p.lo.wrapping_sub(ts) as i32;
                back > 0 && back.unsigned_abs() < STALE_WINDOW
            }
            _ => false,
        }
    }

    fn start_press(&mut self, now: Instant, ssrc: u32, ts: u32, block: Block, key: char) {
        if let Some(prev) = self.current.take() {
            if !prev.ended {
                // A new press means the previous one is over; its end
                // packets were lost (or are late, and will be ignored).
                self.events.push(prev.ended_event(true));
            }
            self.remember(&prev);
        }
        let mut p = Press::new(now, ssrc, ts, block.code, key, block.duration);
        self.events.push(p.started(now));
        if block.end {
            p.ended = true;
            self.events.push(p.ended_event(false));
        }
        self.current = Some(p);
    }

    fn remember(&mut self, p: &Press) {
        if let Some(slot) = self.past.get_mut(self.past_next) {
            *slot = Some(Past::of(p));
        }
        self.past_next = (self.past_next + 1) % REMEMBERED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRng;

    const SSRC: u32 = 0x0E05_384E;

    fn block(code: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, (u8::from(end) << 7) | (volume & 0x3F), d[0], d[1]]
    }

    /// A test harness: a receiver, a fake clock and the collected events.
    struct Rx {
        rx: Rfc4733Receiver,
        t0: Instant,
        now: Instant,
        seq: u16,
        events: Vec<Rfc4733Event>,
    }

    impl Rx {
        fn new() -> Rx {
            let t0 = Instant::now();
            Rx {
                rx: Rfc4733Receiver::new(),
                t0,
                now: t0,
                seq: 1000,
                events: Vec::new(),
            }
        }

        /// Advances the fake clock, firing the timer like the shell would.
        fn wait_ms(&mut self, ms: u64) {
            let target = self.now + Duration::from_millis(ms);
            while let Some(t) = self.rx.poll_timeout() {
                if t > target {
                    break;
                }
                self.rx.handle_timeout(t);
                self.drain();
            }
            self.now = target;
        }

        fn drain(&mut self) {
            while let Some(e) = self.rx.poll_event() {
                self.events.push(e);
            }
        }

        fn raw(&mut self, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) {
            self.rx
                .handle_packet(self.now, ssrc, seq, ts, marker, payload);
            self.drain();
        }

        /// One single-block packet on `SSRC` with the next sequence number.
        fn pkt(&mut self, ts: u32, code: u8, end: bool, duration: u16) {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            self.raw(SSRC, seq, ts, false, &block(code, end, 10, duration));
        }

        /// A well-behaved press: updates every 20 ms (160 samples) with the
        /// first at `first_dur`, then `ends` end packets 20 ms apart.
        fn press(&mut self, ts: u32, code: u8, first_dur: u16, total: u16, ends: usize) {
            let mut d = first_dur;
            while d < total {
                self.pkt(ts, code, false, d);
                self.wait_ms(20);
                d += 160;
            }
            for _ in 0..ends {
                self.pkt(ts, code, true, total);
                self.wait_ms(20);
            }
        }

        fn keys(&self) -> String {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Rfc4733Event::Started { key, .. } => Some(*key),
                    Rfc4733Event::Ended { .. } => None,
                })
                .collect()
        }

        /// (key, duration, by_timeout) of each Ended.
        fn ends(&self) -> Vec<(char, u32, bool)> {
            self.events
                .iter()
                .filter_map(|e| match *e {
                    Rfc4733Event::Ended {
                        key,
                        duration,
                        by_timeout,
                        ..
                    } => Some((key, duration, by_timeout)),
                    Rfc4733Event::Started { .. } => None,
                })
                .collect()
        }

        /// Every Started is followed by exactly one Ended of the same press.
        fn assert_paired(&self) {
            assert_paired(&self.events);
        }
    }

    fn assert_paired(events: &[Rfc4733Event]) {
        let mut open: Option<(char, u32, u32)> = None;
        for e in events {
            match *e {
                Rfc4733Event::Started {
                    key,
                    ssrc,
                    rtp_timestamp,
                    ..
                } => {
                    assert!(open.is_none(), "Started while a press is open: {events:?}");
                    open = Some((key, ssrc, rtp_timestamp));
                }
                Rfc4733Event::Ended {
                    key,
                    ssrc,
                    rtp_timestamp,
                    ..
                } => {
                    assert_eq!(open.take(), Some((key, ssrc, rtp_timestamp)), "{events:?}");
                }
            }
        }
    }

    #[test]
    fn timestamp_jump_mid_press_with_rising_duration_is_one_press() {
        let mut r = Rx::new();
        for (ts, d) in [
            (5000u32, 160u16),
            (5000, 320),
            (5000, 480),
            (9000, 640),
            (9000, 800),
        ] {
            r.pkt(ts, 9, false, d);
            r.wait_ms(20);
        }
        r.pkt(9000, 9, true, 960);
        r.wait_ms(400);
        assert_eq!(r.keys(), "9");
    }

    #[test]
    fn restamping_sender_then_the_same_key_again_starts_at_its_first_packet() {
        let mut r = Rx::new();
        // Each update stamped with its send time, duration from the press start.
        for k in 0..10u32 {
            r.pkt(1000 + 160 * k, 2, k == 9, (160 * (k + 1)) as u16);
            r.wait_ms(20);
        }
        r.wait_ms(80);
        let second_at = r.now;
        r.pkt(1000 + 160 * 16, 2, false, 160);
        assert_eq!(r.keys(), "22");
        let Some(Rfc4733Event::Started { at, .. }) = r
            .events
            .iter()
            .rev()
            .find(|e| matches!(e, Rfc4733Event::Started { .. }))
        else {
            panic!()
        };
        assert_eq!(
            *at, second_at,
            "reported at its first packet, not absorbed into the first press"
        );
    }

    #[test]
    fn one_press_reported_once_at_first_packet_with_duration_at_end() {
        let mut r = Rx::new();
        r.wait_ms(5);
        let first_at = r.now;
        r.press(1000, 5, 160, 800, 3);
        assert_eq!(
            r.events,
            vec![
                Rfc4733Event::Started {
                    key: '5',
                    ssrc: SSRC,
                    rtp_timestamp: 1000,
                    at: first_at
                },
                Rfc4733Event::Ended {
                    key: '5',
                    ssrc: SSRC,
                    rtp_timestamp: 1000,
                    duration: 800,
                    by_timeout: false
                },
            ]
        );
        assert!(first_at > r.t0);
        assert_eq!(r.rx.poll_timeout(), None, "no timer once the press ended");
    }

    #[test]
    fn started_is_reported_before_the_end_arrives() {
        let mut r = Rx::new();
        r.pkt(500, 1, false, 160);
        assert_eq!(r.keys(), "1");
        assert!(r.ends().is_empty());
        assert_eq!(r.rx.poll_timeout(), Some(r.now + EVENT_TIMEOUT));
    }

    #[test]
    fn marker_bit_is_ignored() {
        // Twinkle sends no marker; a marker on every packet must not split.
        let mut r = Rx::new();
        for (i, d) in [160u16, 320, 480].into_iter().enumerate() {
            r.raw(SSRC, i as u16, 7000, true, &block(3, false, 10, d));
        }
        r.raw(SSRC, 3, 7000, true, &block(3, true, 10, 640));
        r.raw(SSRC, 9, 9000, false, &block(4, true, 10, 640));
        assert_eq!(r.keys(), "34");
        r.assert_paired();
    }

    #[test]
    fn sipp_shipped_capture_duration_zero_first_and_three_ends_same_sequence() {
        // dtmf_2833_1.pcap: 7 updates (0, 320 .. 1920) 20 ms apart, then 3
        // ends (2240) within 0.1 ms, all with sequence 7991.
        let mut r = Rx::new();
        let mut seq = 7984u16;
        for i in 0..7u16 {
            r.raw(SSRC, seq, 13280, i == 0, &block(1, false, 10, i * 320));
            seq += 1;
            r.wait_ms(20);
        }
        for _ in 0..3 {
            r.raw(SSRC, seq, 13280, false, &block(1, true, 10, 2240));
        }
        assert_eq!(r.keys(), "1");
        assert_eq!(r.ends(), vec![('1', 2240, false)]);
    }

    #[test]
    fn baresip_nine_updates_three_ends_back_to_back_digits() {
        // Queued digits follow each other with no gap; each has its own
        // timestamp; audio packets (other PT) are filtered by the caller.
        let mut r = Rx::new();
        let mut ts = 80_000u32;
        for code in [1u8, 2, 3, 4, 11] {
            r.press(ts, code, 160, 1440, 3);
            ts += 1440 + 3 * 160;
        }
        assert_eq!(r.keys(), "1234#");
        assert!(r.ends().iter().all(|&(_, d, t)| d == 1440 && !t));
        r.assert_paired();
    }

    #[test]
    fn twinkle_no_marker_six_end_packets() {
        let mut r = Rx::new();
        let mut ts = 0x1234_0000u32;
        for code in [1u8, 2, 3, 4, 11] {
            r.press(ts, code, 160, 800, 6);
            r.wait_ms(100);
            ts += 800 + 6 * 160 + 800;
        }
        assert_eq!(r.keys(), "1234#");
        assert_eq!(r.ends().len(), 5);
        r.assert_paired();
    }

    #[test]
    fn repeated_key_gives_one_digit_per_press() {
        let mut r = Rx::new();
        let mut ts = 4000u32;
        for _ in 0..4 {
            r.press(ts, 1, 160, 800, 3);
            r.wait_ms(100);
            ts += 1600;
        }
        assert_eq!(r.keys(), "1111");
        r.assert_paired();
    }

    #[test]
    fn repeated_key_back_to_back_with_ends_received() {
        // baresip `sndcode 1111`: no gap, ends received: four digits.
        let mut r = Rx::new();
        let mut ts = 4000u32;
        for _ in 0..4 {
            r.press(ts, 1, 160, 1440, 3);
            ts += 1440;
        }
        assert_eq!(r.keys(), "1111");
    }

    #[test]
    fn repeated_key_with_all_ends_lost_and_a_pause_is_two_digits() {
        // 100 ms pause between presses; none of the first press's ends arrive.
        let mut r = Rx::new();
        r.press(4000, 1, 160, 800, 0);
        r.wait_ms(100);
        r.press(4000 + 800 + 800, 1, 160, 800, 3);
        assert_eq!(r.keys(), "11");
        assert_eq!(r.ends(), vec![('1', 640, true), ('1', 800, false)]);
    }

    #[test]
    fn documented_ambiguity_same_key_no_pause_all_ends_lost_is_merged() {
        // Indistinguishable from a sender re-stamping one press (module docs):
        // we choose one digit.
        let mut r = Rx::new();
        r.press(4000, 1, 160, 800, 0);
        r.press(4000 + 800, 1, 160, 800, 3);
        assert_eq!(r.keys(), "1");
        assert_eq!(r.ends(), vec![('1', 1600, false)]);
    }

    #[test]
    fn duplicated_packets_change_nothing() {
        let mut r = Rx::new();
        for d in [160u16, 320, 480, 640] {
            r.pkt(100, 7, false, d);
            r.pkt(100, 7, false, d);
            r.wait_ms(20);
        }
        for _ in 0..2 {
            r.pkt(100, 7, true, 800);
            r.pkt(100, 7, true, 800);
        }
        assert_eq!(r.keys(), "7");
        assert_eq!(r.ends(), vec![('7', 800, false)]);
    }

    #[test]
    fn reordered_updates_do_not_shorten_or_split() {
        let mut r = Rx::new();
        for d in [320u16, 160, 640, 480] {
            r.pkt(100, 8, false, d);
            r.wait_ms(20);
        }
        r.pkt(100, 8, true, 800);
        r.pkt(100, 8, false, 640); // late update after the end
        assert_eq!(r.keys(), "8");
        assert_eq!(r.ends(), vec![('8', 800, false)]);
    }

    #[test]
    fn end_before_updates_then_late_updates() {
        let mut r = Rx::new();
        r.pkt(100, 9, true, 800);
        r.pkt(100, 9, false, 160);
        r.pkt(100, 9, false, 480);
        assert_eq!(r.keys(), "9");
        assert_eq!(r.ends(), vec![('9', 800, false)]);
    }

    #[test]
    fn lost_start_reports_from_first_arriving_packet() {
        let mut r = Rx::new();
        r.wait_ms(60);
        let at = r.now;
        r.press(2000, 6, 480, 800, 3); // 160 and 320 were lost
        assert_eq!(
            r.events[0],
            Rfc4733Event::Started {
                key: '6',
                ssrc: SSRC,
                rtp_timestamp: 2000,
                at
            }
        );
        assert_eq!(r.ends(), vec![('6', 800, false)]);
    }

    #[test]
    fn only_an_end_packet_arrives() {
        let mut r = Rx::new();
        r.pkt(2000, 0, true, 800);
        r.pkt(2000, 0, true, 800);
        assert_eq!(r.keys(), "0");
        assert_eq!(r.ends(), vec![('0', 800, false)]);
    }

    #[test]
    fn all_ends_lost_closes_on_timeout_then_next_press_accepted() {
        let mut r = Rx::new();
        r.press(3000, 2, 160, 800, 0);
        assert!(r.ends().is_empty());
        let deadline = r.rx.poll_timeout().expect("open press has a deadline");
        r.wait_ms(400);
        assert_eq!(r.ends(), vec![('2', 640, true)]);
        assert!(deadline <= r.now);
        assert_eq!(r.rx.poll_timeout(), None);
        // Retransmitted ends arriving after the timeout do not resurrect it.
        r.pkt(3000, 2, true, 800);
        assert_eq!(r.keys(), "2");
        // The next press (same key) is a new digit.
        r.press(3000 + 2400, 2, 160, 800, 3);
        assert_eq!(r.keys(), "22");
        r.assert_paired();
    }

    #[test]
    fn all_ends_lost_closed_by_next_press() {
        let mut r = Rx::new();
        r.press(3000, 2, 160, 800, 0);
        r.press(3000 + 1200, 3, 160, 800, 3);
        assert_eq!(r.keys(), "23");
        assert_eq!(r.ends(), vec![('2', 640, true), ('3', 800, false)]);
        r.assert_paired();
    }

    #[test]
    fn timeout_is_applied_on_packet_arrival_too() {
        // A shell that never fires the timer still gets the right digits.
        let mut r = Rx::new();
        r.pkt(3000, 5, false, 160);
        r.now += Duration::from_secs(2);
        r.pkt(3000, 5, true, 800); // late end of the timed-out press
        r.pkt(3000 + 16000, 5, false, 160);
        assert_eq!(r.keys(), "55");
        assert_eq!(r.ends(), vec![('5', 160, true)]);
    }

    #[test]
    fn timestamp_stamped_per_update_is_one_press() {
        // Broken senders stamp each update with the audio clock while the
        // duration counts from the press start (ts + 160k, duration 160(k+1)).
        let mut r = Rx::new();
        let t = 50_000u32;
        for k in 0..6u32 {
            r.pkt(t + 160 * k, 4, false, (160 * (k + 1)) as u16);
            r.wait_ms(20);
        }
        for k in 6..9u32 {
            r.pkt(t + 160 * k, 4, true, 1120);
            r.wait_ms(20);
        }
        assert_eq!(r.keys(), "4");
        assert_eq!(r.ends(), vec![('4', 1120, false)]);
    }

    #[test]
    fn timestamp_stamped_per_update_with_loss_is_one_press() {
        let mut r = Rx::new();
        let t = 50_000u32;
        for k in [0u32, 3, 4, 7] {
            r.pkt(t + 160 * k, 4, false, (160 * (k + 1)) as u16);
            r.wait_ms(60);
        }
        r.pkt(t + 160 * 9, 4, true, 1600);
        assert_eq!(r.keys(), "4");
        assert_eq!(r.ends(), vec![('4', 1600, false)]);
    }

    #[test]
    fn timestamp_restarted_mid_press_with_duration_continuing_is_one_press() {
        // New timestamp, duration counted from it: (ts + duration) continues
        // the old press.
        let mut r = Rx::new();
        r.pkt(10_000, 7, false, 160);
        r.pkt(10_000, 7, false, 320);
        r.pkt(10_000, 7, false, 480);
        r.pkt(10_480, 7, false, 160);
        r.pkt(10_480, 7, false, 320);
        r.pkt(10_480, 7, true, 480);
        r.pkt(10_480, 7, true, 480);
        assert_eq!(r.keys(), "7");
        assert_eq!(r.ends(), vec![('7', 960, false)]);
    }

    #[test]
    fn timestamp_rebased_backwards_mid_press_is_one_press() {
        let mut r = Rx::new();
        r.pkt(900_000, 3, false, 160);
        r.pkt(900_000, 3, false, 320);
        r.pkt(12_345, 3, false, 480); // B2BUA switched its timestamp base
        r.pkt(12_345, 3, true, 640);
        assert_eq!(r.keys(), "3");
        assert_eq!(r.ends(), vec![('3', 640, false)]);
    }

    #[test]
    fn end_retransmission_with_changed_timestamp_is_not_a_new_press() {
        // Media relays have been seen re-stamping the retransmitted ends.
        let mut r = Rx::new();
        r.press(20_000, 9, 160, 1600, 1);
        r.pkt(20_000 + 1760, 9, true, 1600);
        r.pkt(20_000 + 1920, 9, true, 1600);
        assert_eq!(r.keys(), "9");
        assert_eq!(r.ends().len(), 1);
    }

    #[test]
    fn different_key_with_moved_timestamp_is_a_new_press() {
        let mut r = Rx::new();
        r.pkt(10_000, 1, false, 160);
        r.pkt(10_160, 2, false, 160);
        assert_eq!(r.keys(), "12");
        assert_eq!(r.ends(), vec![('1', 160, true)]);
    }

    #[test]
    fn long_event_segments_are_one_press() {
        // §2.5.1.3: 10 s press; the duration would pass 0xFFFF, so the
        // sender starts a new segment 0xFFFF samples later.
        let mut r = Rx::new();
        let t = 0xFFFF_0000u32; // also crosses the 2^32 wrap
        let mut d = 160u32;
        while d < 0xFFFF {
            r.pkt(t, 5, false, d as u16);
            r.now += Duration::from_millis(20);
            d += 160;
        }
        r.pkt(t, 5, false, 0xFFFF);
        let t2 = t.wrapping_add(0xFFFF);
        let rest = 80_000 - 0xFFFF;
        let mut d = 160u32;
        while d < rest {
            r.pkt(t2, 5, false, d as u16);
            r.now += Duration::from_millis(20);
            d += 160;
        }
        r.pkt(t2, 5, true, rest as u16);
        r.pkt(t2, 5, true, rest as u16);
        assert_eq!(r.keys(), "5");
        assert_eq!(r.ends(), vec![('5', 80_000, false)]);
    }

    #[test]
    fn long_event_segment_with_lost_boundary_packets_is_one_press() {
        let mut r = Rx::new();
        let t = 1_000u32;
        for d in (160..=0xFFFF - 800).step_by(800) {
            r.pkt(t, 5, false, d as u16);
            r.now += Duration::from_millis(100);
        }
        // The last packets of segment 1 and the first of segment 2 are lost.
        r.pkt(t + 0xFFFF, 5, false, 480);
        r.pkt(t + 0xFFFF, 5, true, 800);
        assert_eq!(r.keys(), "5");
        assert_eq!(r.ends(), vec![('5', 0xFFFF + 800, false)]);
    }

    #[test]
    fn duration_field_wrapping_without_new_segment_is_one_press() {
        // A sender that lets the 16-bit duration wrap instead of segmenting.
        let mut r = Rx::new();
        let mut d = 0u32;
        while d < 70_000 {
            r.pkt(42, 6, false, d as u16);
            r.now += Duration::from_millis(20);
            d += 160;
        }
        r.pkt(42, 6, true, (70_000u32 & 0xFFFF) as u16);
        assert_eq!(r.keys(), "6");
        assert_eq!(r.ends(), vec![('6', 70_000, false)]);
    }

    #[test]
    fn several_events_in_one_packet() {
        // §2.5.1.5: "1" (ended) and "2" packed; "2" starts where "1" ended.
        let mut r = Rx::new();
        let mut p = Vec::new();
        p.extend_from_slice(&block(1, true, 10, 800));
        p.extend_from_slice(&block(2, false, 10, 320));
        r.raw(SSRC, 1, 6000, true, &p);
        assert_eq!(r.keys(), "12");
        assert!(matches!(
            r.events[2],
            Rfc4733Event::Started {
                key: '2',
                rtp_timestamp: 6800,
                ..
            }
        ));
        // The next packets repeat "1" for redundancy: ignored.
        let mut p = Vec::new();
        p.extend_from_slice(&block(1, true, 10, 800));
        p.extend_from_slice(&block(2, true, 10, 640));
        r.raw(SSRC, 2, 6000, false, &p);
        r.raw(SSRC, 3, 6000, false, &p);
        assert_eq!(r.keys(), "12");
        assert_eq!(r.ends(), vec![('1', 800, false), ('2', 640, false)]);
    }

    #[test]
    fn packed_blocks_of_old_events_are_ignored() {
        let mut r = Rx::new();
        r.press(6000, 1, 160, 800, 3);
        r.press(6800, 2, 160, 800, 0);
        let mut p = Vec::new();
        p.extend_from_slice(&block(1, true, 10, 800));
        p.extend_from_slice(&block(2, true, 10, 960));
        r.raw(SSRC, 50, 6000, false, &p);
        assert_eq!(r.keys(), "12");
        assert_eq!(r.ends(), vec![('1', 800, false), ('2', 960, false)]);
    }

    #[test]
    fn timestamp_wraps_around_2_pow_32() {
        let mut r = Rx::new();
        let mut ts = u32::MAX - 1000;
        for code in [1u8, 2, 3] {
            r.press(ts, code, 160, 800, 3);
            r.wait_ms(100);
            ts = ts.wrapping_add(2000);
        }
        // A late end of the first press after the wrap is still ignored.
        r.pkt(u32::MAX - 1000, 1, true, 800);
        assert_eq!(r.keys(), "123");
        r.assert_paired();
    }

    #[test]
    fn volume_is_ignored() {
        let mut r = Rx::new();
        r.raw(SSRC, 1, 100, true, &block(4, false, 0, 160));
        r.raw(SSRC, 2, 100, false, &block(4, false, 63, 320));
        r.raw(SSRC, 3, 100, false, &block(4, true, 36, 480));
        r.raw(SSRC, 4, 2000, false, &block(5, true, 0, 480));
        assert_eq!(r.keys(), "45");
        assert_eq!(r.ends(), vec![('4', 480, false), ('5', 480, false)]);
    }

    #[test]
    fn non_key_events_are_ignored() {
        let mut r = Rx::new();
        for code in [16u8, 17, 32, 64, 255] {
            r.pkt(100 + u32::from(code) * 1000, code, false, 160);
            r.pkt(100 + u32::from(code) * 1000, code, true, 800);
        }
        assert!(r.events.is_empty());
        assert_eq!(r.rx.poll_timeout(), None);
        // A flash in the middle of a press neither ends nor splits it.
        r.pkt(900_000, 12, false, 160);
        r.pkt(900_500, 16, true, 800);
        r.pkt(900_000, 12, true, 800);
        assert_eq!(r.keys(), "A");
        assert_eq!(r.ends(), vec![('A', 800, false)]);
    }

    #[test]
    fn all_sixteen_keys() {
        let mut r = Rx::new();
        for code in 0..16u8 {
            r.press(u32::from(code) * 2000, code, 160, 480, 3);
        }
        assert_eq!(r.keys(), "0123456789*#ABCD");
    }

    #[test]
    fn late_packets_of_ended_press_do_not_restart_it() {
        let mut r = Rx::new();
        r.press(1000, 1, 160, 800, 3);
        r.press(3000, 2, 160, 800, 3);
        r.press(5000, 3, 160, 800, 3);
        // Late updates and ends of "1" and "2" after "3" started.
        r.pkt(1000, 1, false, 320);
        r.pkt(1000, 1, true, 800);
        r.pkt(3000, 2, false, 160);
        r.wait_ms(1000);
        r.pkt(3000, 2, true, 800);
        assert_eq!(r.keys(), "123");
        r.assert_paired();
    }

    #[test]
    fn many_presses_later_old_ones_are_still_ignored_within_memory() {
        let mut r = Rx::new();
        for i in 0..REMEMBERED as u32 {
            r.press(10_000 + i * 2000, (i % 10) as u8, 160, 480, 3);
        }
        for i in 0..REMEMBERED as u32 {
            r.pkt(10_000 + i * 2000, (i % 10) as u8, true, 480);
        }
        assert_eq!(r.keys().len(), REMEMBERED);
    }

    #[test]
    fn stale_unknown_event_just_before_latest_is_dropped() {
        let mut r = Rx::new();
        r.press(10_000, 2, 160, 800, 0);
        // A block of an event never seen, 200 ms before: reordered junk.
        r.pkt(10_000 - 1600, 1, true, 800);
        assert_eq!(r.keys(), "2");
        // Far back: the sender re-based its clock; a real new press.
        r.pkt(10_000u32.wrapping_sub(40_000), 3, false, 160);
        assert_eq!(r.keys(), "23");
    }

    #[test]
    fn sipp_shipped_files_out_of_order() {
        // Playing dtmf_2833_1, _2, _1, _0: the repeated "1" (same
        // timestamp) is a retransmission; "0" goes back 5568 samples.
        let mut r = Rx::new();
        for (ts, code) in [(13280u32, 1u8), (23200, 2), (13280, 1), (17632, 0)] {
            for i in 0..7u16 {
                r.pkt(ts, code, false, i * 320);
                r.wait_ms(20);
            }
            for _ in 0..3 {
                r.pkt(ts, code, true, 2240);
            }
            r.wait_ms(500);
        }
        assert_eq!(r.keys(), "120");
        r.assert_paired();
    }

    #[test]
    fn new_ssrc_starts_a_new_stream() {
        let mut r = Rx::new();
        r.press(1000, 1, 160, 800, 0);
        r.raw(0xDEAD_BEEF, 1, 1000, true, &block(1, false, 10, 160));
        r.raw(0xDEAD_BEEF, 2, 1000, false, &block(1, true, 10, 800));
        assert_eq!(r.keys(), "11");
        assert_eq!(r.ends(), vec![('1', 640, true), ('1', 800, false)]);
        // The old SSRC's late end is still remembered.
        r.pkt(1000, 1, true, 800);
        assert_eq!(r.keys(), "11");
    }

    #[test]
    fn malformed_payloads_are_ignored() {
        let mut r = Rx::new();
        for p in [
            &[][..],
            &[1],
            &[1, 0x80],
            &[1, 0x80, 0],
            &[1, 0x80, 0, 160, 2],
        ] {
            r.raw(SSRC, 1, 100, true, p);
        }
        assert!(r.events.is_empty());
        r.pkt(100, 1, true, 160);
        assert_eq!(r.keys(), "1");
    }

    #[test]
    fn oversized_packet_handles_only_the_newest_blocks() {
        let mut r = Rx::new();
        let mut p = Vec::new();
        for code in 0..12u8 {
            p.extend_from_slice(&block(code, true, 10, 160));
        }
        r.raw(SSRC, 1, 100, true, &p);
        assert_eq!(r.keys(), "456789*#");
        r.assert_paired();
    }

    #[test]
    fn queue_overflow_drops_oldest_without_panic() {
        let mut rx = Rfc4733Receiver::new();
        let now = Instant::now();
        for i in 0..100u32 {
            rx.handle_packet(now, SSRC, i as u16, i * 2000, true, &block(1, true, 0, 160));
        }
        let mut n = 0;
        while rx.poll_event().is_some() {
            n += 1;
        }
        assert_eq!(n, QUEUE);
    }

    #[test]
    fn fuzz_random_packets_never_panic_and_events_stay_paired() {
        let mut rng = TestRng::new(0x9E37_79B9_7F4A_7C15);
        let t0 = Instant::now();
        let mut payload = [0u8; 64];
        for _ in 0..200 {
            let mut rx = Rfc4733Receiver::new();
            let mut now = t0;
            let mut events = Vec::new();
            let base_ts = rng.next_u32();
            for _ in 0..500 {
                now += Duration::from_millis(rng.below(120));
                let len = match rng.below(4) {
                    0 => rng.below(65) as usize,
                    _ => 4 * (1 + rng.below(3) as usize),
                };
                for b in payload[..len].iter_mut() {
                    *b = rng.byte();
                }
                // Mostly plausible codes and nearby timestamps, sometimes junk.
                for chunk in payload[..len].chunks_mut(4) {
                    if rng.below(4) != 0 {
                        chunk[0] %= 17;
                    }
                }
                let ts = if rng.below(8) == 0 {
                    rng.next_u32()
                } else {
                    base_ts.wrapping_add((rng.below(40) * 400) as u32)
                };
                let ssrc = if rng.below(16) == 0 { 2 } else { 1 };
                rx.handle_packet(
                    now,
                    ssrc,
                    rng.next_u64() as u16,
                    ts,
                    rng.below(2) == 0,
                    &payload[..len],
                );
                if rng.below(3) == 0 {
                    if let Some(t) = rx.poll_timeout() {
                        rx.handle_timeout(t.max(now));
                    }
                }
                while let Some(e) = rx.poll_event() {
                    events.push(e);
                }
            }
            rx.handle_timeout(now + Duration::from_secs(10));
            while let Some(e) = rx.poll_event() {
                events.push(e);
            }
            assert_paired(&events);
            assert_eq!(rx.poll_timeout(), None);
        }
    }

    /// Packets of one press from a sender model: (ts, code, end, duration).
    fn model_press(
        ts: u32,
        code: u8,
        total: u16,
        ends: usize,
        restamp: bool,
    ) -> Vec<(u32, u8, bool, u16)> {
        let mut v = Vec::new();
        let mut d = 160u16;
        let mut k = 0u32;
        while d < total {
            let t = if restamp { ts + 160 * k } else { ts };
            v.push((t, code, false, d));
            d += 160;
            k += 1;
        }
        for _ in 0..ends {
            let t = if restamp { ts + 160 * k } else { ts };
            v.push((t, code, true, total));
        }
        v
    }

    #[test]
    fn random_loss_duplication_and_reordering_keep_the_digits() {
        // "1111#" and "2580" from several sender models, each packet lost
        // with 10% probability, duplicated with 10%, and swapped with its
        // neighbour with 10%. As long as one packet of each press arrives
        // the digits are exact.
        let mut rng = TestRng::new(42);
        for trial in 0..400 {
            let digits: &[u8] = if trial % 2 == 0 {
                &[1, 1, 1, 1, 11]
            } else {
                &[2, 5, 8, 0]
            };
            let ends = [3usize, 6, 3][trial % 3];
            let restamp = trial % 5 == 4;
            let mut wire = Vec::new();
            let mut ts = rng.next_u32();
            for &code in digits {
                let press = model_press(ts, code, 800, ends, restamp);
                let n = press.len() as u32;
                wire.push(press);
                ts = ts.wrapping_add(160 * n + 800);
            }
            let mut r = Rx::new();
            let mut expected = String::new();
            for press in wire {
                let mut pkts = Vec::new();
                for p in press {
                    match rng.below(10) {
                        0 => {}                   // lost
                        1 => pkts.extend([p, p]), // duplicated
                        _ => pkts.push(p),
                    }
                }
                for i in 1..pkts.len() {
                    if rng.below(10) == 0 {
                        pkts.swap(i - 1, i);
                    }
                }
                if let Some(&(_, code, _, _)) = pkts.first() {
                    expected.push(event_to_key(code).unwrap());
                }
                for (t, code, end, d) in pkts {
                    r.pkt(t, code, end, d);
                    r.wait_ms(20);
                }
                r.wait_ms(100);
            }
            r.wait_ms(1000);
            assert_eq!(r.keys(), expected, "trial {trial}");
            r.assert_paired();
        }
    }
}
