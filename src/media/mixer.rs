//! N−1 mixing of 20 ms frames for a conference room.
//!
//! Once per tick the room hands the mixer one decoded frame per leg. The
//! mixer picks the few loudest talkers, sums them once in `i32`, and gives
//! every leg what it should hear, already G.711-encoded in that leg's codec:
//!
//! - a talker hears the sum minus its own frame (it must not hear itself);
//! - everyone else hears the plain sum.
//!
//! Listeners are the common case (in a room of 100, 97 legs only listen), so
//! the plain sum is saturated once, encoded once per codec present, and
//! copied to each listener; only talkers cost a mix and an encode of their
//! own. Nothing here allocates: the scratch buffers live in [`Mixer`] and the
//! per-leg talker state in [`MixLeg`], so legs may join and leave between
//! ticks without any bookkeeping in the mixer.
//!
//! Only `max_talkers` legs are mixed, so the background noise of a large
//! room does not add up into a hiss. A leg becomes a talker when its frame is
//! above a noise gate; hysteresis (a hangover after the talker falls below
//! the gate, and a challenger having to be clearly louder for several frames
//! to take a slot) keeps the talker set from flapping between two speakers
//! of similar level.

use super::g711::Codec;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// Upper bound for `max_talkers`: keeps [`MixSummary`] a fixed-size value.
pub const MAX_TALKERS: usize = 8;

/// Default number of talkers mixed, as in most conference bridges.
pub const DEFAULT_TALKERS: usize = 3;

/// Noise gate, as a frame's mean square: −50 dBFS RMS, with full scale at
/// 32768 (`32768² · 10^(−50/10)`). G.711 idle channel noise is far below it
/// (A-law silence decodes to ±8, mean square 64); quiet speech is far above.
pub const GATE_MEAN_SQUARE: u32 = 10_737;

/// Frames a talker keeps its slot after falling below the gate (300 ms):
/// the pauses between words must not hand the slot to someone else.
const HANGOVER_FRAMES: u8 = 15;

/// Consecutive frames (100 ms) a challenger must be clearly louder than the
/// weakest talker before it takes that talker's slot.
const CHALLENGE_FRAMES: u8 = 5;

/// "Clearly louder" means this many times the weakest talker's smoothed
/// mean square (2× ≈ 3 dB), so two speakers of nearly equal level never swap.
const CHALLENGE_RATIO: u64 = 2;

/// One conference leg as the mixer sees it: this tick's input, whether it may
/// be heard, its codec, and the encoded frame it is to be sent.
#[derive(Debug, Clone)]
pub struct MixLeg {
    /// This tick's frame from the leg's jitter buffer.
    pub input: [i16; FRAME],
    /// False when the leg sent nothing usable: it is treated as silent.
    pub has_input: bool,
    /// False while muted, while an in-band DTMF tone is being detected on the
    /// leg, or while the room waits for a moderator: nobody hears the leg.
    pub may_talk: bool,
    /// The leg's negotiated codec; `output` is encoded in it.
    pub codec: Codec,
    /// Filled by [`Mixer::mix`]: what to send this leg.
    pub output: [u8; FRAME],
    talk: TalkState,
}

/// Per-leg talker state, kept in the leg so it follows the leg around.
#[derive(Debug, Clone, Copy, Default)]
struct TalkState {
    /// Mean square of this tick's input (0 when the leg may not be heard).
    energy: u32,
    /// Smoothed mean square, used to rank talkers.
    level: u32,
    /// In the talker set.
    talking: bool,
    /// Frames left before a talker below the gate loses its slot.
    hangover: u8,
    /// Consecutive frames this non-talker has been clearly louder than the
    /// weakest talker.
    challenge: u8,
}

impl MixLeg {
    /// A silent leg that may talk; its output starts as silence.
    pub fn new(codec: Codec) -> Self {
        MixLeg {
            input: [0; FRAME],
            has_input: false,
            may_talk: true,
            codec,
            output: [codec.silence_byte(); FRAME],
            talk: TalkState::default(),
        }
    }

    /// Whether the leg was mixed as a talker in the last tick.
    pub fn is_talking(&self) -> bool {
        self.talk.talking
    }

    /// Smoothed mean square of the leg's recent input (0 to 2³⁰), for level
    /// meters and "who is speaking" indications.
    pub fn level(&self) -> u32 {
        self.talk.level
    }

    /// May this leg be mixed this tick?
    fn eligible(&self) -> bool {
        self.has_input && self.may_talk
    }

    /// Above the gate this tick: a candidate for a talker slot.
    fn above_gate(&self) -> bool {
        self.talk.energy >= GATE_MEAN_SQUARE
    }

    /// Measures this tick's frame and updates hangover and eligibility.
    fn measure(&mut self) {
        let eligible = self.eligible();
        let t = &mut self.talk;
        t.energy = if eligible {
            mean_square(&self.input)
        } else {
            0
        };
        t.level = smooth(t.level, t.energy);
        if !eligible {
            // Muted or a DTMF tone: out of the mix at once, no hangover.
            t.talking = false;
            t.hangover = 0;
        } else if t.energy >= GATE_MEAN_SQUARE {
            t.hangover = HANGOVER_FRAMES;
        } else if t.hangover > 0 {
            t.hangover -= 1;
        } else {
            t.talking = false;
        }
        if t.talking || t.energy < GATE_MEAN_SQUARE {
            t.challenge = 0;
        }
    }

    fn start_talking(&mut self) {
        self.talk.talking = true;
        self.talk.hangover = HANGOVER_FRAMES;
        self.talk.challenge = 0;
    }

    fn stop_talking(&mut self) {
        self.talk.talking = false;
        self.talk.hangover = 0;
        self.talk.challenge = 0;
    }
}

/// Mean square of a frame (0 to 2³⁰). Summed in `u64`: 160 full-scale
/// squares do not fit in 32 bits.
fn mean_square(frame: &[i16; FRAME]) -> u32 {
    let sum: u64 = frame
        .iter()
        .map(|&s| {
            let v = s as i32;
            (v * v) as u32 as u64
        })
        .sum();
    (sum / FRAME as u64) as u32
}

/// Fast attack, slow decay: a new talker ranks at once, a talker that pauses
/// for breath keeps its rank for a while.
fn smooth(level: u32, energy: u32) -> u32 {
    if energy > level {
        level + (energy - level) / 2
    } else {
        level - (level - energy) / 8
    }
}

fn saturate(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// What one tick did, for the room (talker indicators, "who spoke").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixSummary {
    talkers: [usize; MAX_TALKERS],
    count: usize,
}

impl MixSummary {
    /// Indices (into the slice given to [`Mixer::mix`]) of the legs mixed as
    /// talkers this tick.
    pub fn talkers(&self) -> &[usize] {
        &self.talkers[..self.count]
    }

    /// Nobody was mixed: every leg was sent silence.
    pub fn is_silent(&self) -> bool {
        self.count == 0
    }

    fn push(&mut self, index: usize) {
        if self.count < MAX_TALKERS {
            self.talkers[self.count] = index;
            self.count += 1;
        }
    }
}

/// The mixer of one room. Holds only scratch buffers and the talker limit.
#[derive(Debug, Clone)]
pub struct Mixer {
    max_talkers: usize,
    /// Sum of the talkers' frames, computed once per tick.
    sum: [i32; FRAME],
    /// The sum saturated to 16 bits.
    pcm: [i16; FRAME],
    /// The sum encoded in each codec present among the listeners
    /// (index 0: PCMU, 1: PCMA).
    shared: [[u8; FRAME]; 2],
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer::new(DEFAULT_TALKERS)
    }
}

impl Mixer {
    /// A mixer that mixes at most `max_talkers` legs at once (clamped to
    /// `1..=MAX_TALKERS`).
    pub fn new(max_talkers: usize) -> Self {
        Mixer {
            max_talkers: max_talkers.clamp(1, MAX_TALKERS),
            sum: [0; FRAME],
            pcm: [0; FRAME],
            shared: [[0; FRAME]; 2],
        }
    }

    pub fn max_talkers(&self) -> usize {
        self.max_talkers
    }

    /// Mixes one tick: fills every leg's `output` and returns who talked.
    ///
    /// `legs` must be in the same order as on the previous tick only for the
    /// summary's indices to be comparable; the talker state travels with the
    /// legs themselves.
    pub fn mix(&mut self, legs: &mut [MixLeg]) -> MixSummary {
        if legs.len() < 2 {
            // Nobody to hear: the room plays its own prompts to a lone member.
            for leg in legs.iter_mut() {
                leg.measure();
                leg.stop_talking();
                leg.output.fill(leg.codec.silence_byte());
            }
            return MixSummary::default();
        }
        for leg in legs.iter_mut() {
            leg.measure();
        }
        self.enforce_limit(legs);
        self.fill_free_slots(legs);
        self.challenge(legs);

        let mut summary = MixSummary::default();
        for (i, leg) in legs.iter().enumerate() {
            if leg.talk.talking {
                summary.push(i);
            }
        }
        if summary.is_silent() {
            for leg in legs.iter_mut() {
                leg.output.fill(leg.codec.silence_byte());
            }
            return summary;
        }
        self.sum_talkers(legs, &summary);
        self.encode_shared(legs);
        for leg in legs.iter_mut() {
            self.fill_output(leg);
        }
        summary
    }

    fn talker_count(legs: &[MixLeg]) -> usize {
        legs.iter().filter(|l| l.talk.talking).count()
    }

    /// The index of the talker with the lowest smoothed level.
    fn weakest_talker(legs: &[MixLeg]) -> Option<usize> {
        legs.iter()
            .enumerate()
            .filter(|(_, l)| l.talk.talking)
            .min_by_key(|(_, l)| l.talk.level)
            .map(|(i, _)| i)
    }

    /// The loudest leg above the gate that is not yet a talker.
    fn loudest_candidate(legs: &[MixLeg]) -> Option<usize> {
        legs.iter()
            .enumerate()
            .filter(|(_, l)| !l.talk.talking && l.above_gate())
            .max_by_key(|(_, l)| l.talk.level)
            .map(|(i, _)| i)
    }

    /// Drops the weakest talkers beyond the limit (legs moved in from
    /// another room may arrive as talkers).
    fn enforce_limit(&self, legs: &mut [MixLeg]) {
        let mut count = Self::talker_count(legs);
        while count > self.max_talkers {
            match Self::weakest_talker(legs) {
                Some(w) => legs[w].stop_talking(),
                None => break,
            }
            count -= 1;
        }
    }

    /// A free slot goes at once to the loudest leg above the gate: the first
    /// words of a new speaker must not be clipped.
    fn fill_free_slots(&self, legs: &mut [MixLeg]) {
        let mut count = Self::talker_count(legs);
        while count < self.max_talkers {
            match Self::loudest_candidate(legs) {
                Some(c) => legs[c].start_talking(),
                None => break,
            }
            count += 1;
        }
    }

    /// With every slot taken, the loudest other leg replaces the weakest
    /// talker at once if that talker is only in its hangover, or after being
    /// clearly louder for `CHALLENGE_FRAMES` frames in a row.
    fn challenge(&self, legs: &mut [MixLeg]) {
        let (Some(w), Some(c)) = (Self::weakest_talker(legs), Self::loudest_candidate(legs)) else {
            return;
        };
        let weakest = legs[w].talk;
        let louder = legs[c].talk.level as u64 > CHALLENGE_RATIO * weakest.level as u64;
        let challenger = &mut legs[c].talk;
        challenger.challenge = if louder {
            challenger.challenge.saturating_add(1)
        } else {
            0
        };
        let weakest_silent = weakest.energy < GATE_MEAN_SQUARE;
        if weakest_silent || challenger.challenge >= CHALLENGE_FRAMES {
            legs[w].stop_talking();
            legs[c].start_talking();
        }
    }

    /// The one sum of all talkers, in `i32` so that it cannot wrap.
    fn sum_talkers(&mut self, legs: &[MixLeg], summary: &MixSummary) {
        self.sum = [0; FRAME];
        for &i in summary.talkers() {
            for (acc, &s) in self.sum.iter_mut().zip(legs[i].input.iter()) {
                *acc += s as i32;
            }
        }
    }

    /// Saturates the sum once and encodes it once per codec that a listener
    /// uses.
    fn encode_shared(&mut self, legs: &[MixLeg]) {
        let mut needed = [false; 2];
        for leg in legs.iter().filter(|l| !l.talk.talking) {
            needed[codec_slot(leg.codec)] = true;
        }
        if !(needed[0] || needed[1]) {
            return;
        }
        for (p, &s) in self.pcm.iter_mut().zip(self.sum.iter()) {
            *p = saturate(s);
        }
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let slot = codec_slot(codec);
            if needed[slot] {
                codec.encode(&self.pcm, &mut self.shared[slot]);
            }
        }
    }

    /// A listener gets a copy of the shared sum; a talker its own N−1 mix.
    fn fill_output(&self, leg: &mut MixLeg) {
        if !leg.talk.talking {
            leg.output = self.shared[codec_slot(leg.codec)];
            return;
        }
        let mut own = [0i16; FRAME];
        for ((o, &s), &x) in own.iter_mut().zip(self.sum.iter()).zip(leg.input.iter()) {
            *o = saturate(s - x as i32);
        }
        leg.codec.encode(&own, &mut leg.output);
    }
}

fn codec_slot(codec: Codec) -> usize {
    match codec {
        Codec::Pcmu => 0,
        Codec::Pcma => 1,
    }
}

/// A global allocator that counts allocations per thread, so tests can prove
/// that a per-tick path does not allocate. Counting per thread keeps tests
/// that run in parallel from disturbing each other. Used by the mixer and
/// jitter buffer tests.
#[cfg(test)]
pub(crate) mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Counting;

    thread_local! {
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    // SAFETY: defers every call to the system allocator unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations made by this thread while running `f`.
    pub(crate) fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, u64) {
        let before = ALLOCS.with(|c| c.get());
        let r = f();
        let after = ALLOCS.with(|c| c.get());
        (r, after - before)
    }
}

#[cfg(test)]
mod tests {
    use super::alloc_count::allocations_during;
    use super::*;

    const RATE: f64 = 8000.0;

    /// Frame `n` of a sine of `freq` Hz and peak `amp`.
    fn tone(freq: f64, amp: f64, n: usize) -> [i16; FRAME] {
        let mut f = [0i16; FRAME];
        for (i, s) in f.iter_mut().enumerate() {
            let t = (n * FRAME + i) as f64 / RATE;
            *s = (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16;
        }
        f
    }

    /// Relative power of `freq` in `x` (Goertzel), normalised by length so
    /// that a sine of peak `a` gives about `a² / 4`.
    fn goertzel(x: &[i16], freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / RATE;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = v as f64 + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power / (x.len() as f64 * x.len() as f64)
    }

    fn decode(leg: &MixLeg) -> [i16; FRAME] {
        let mut pcm = [0i16; FRAME];
        leg.codec.decode(&leg.output, &mut pcm);
        pcm
    }

    /// Runs `ticks` ticks where leg `i` sends a tone of `freqs[i]` at
    /// `amps[i]`; returns each leg's decoded output over the last 10 ticks.
    fn run_tones(
        mixer: &mut Mixer,
        legs: &mut [MixLeg],
        freqs: &[f64],
        amps: &[f64],
        ticks: usize,
    ) -> Vec<Vec<i16>> {
        let mut heard = vec![Vec::new(); legs.len()];
        for n in 0..ticks {
            for (i, leg) in legs.iter_mut().enumerate() {
                leg.input = tone(freqs[i], amps[i], n);
                leg.has_input = true;
            }
            mixer.mix(legs);
            if n + 10 >= ticks {
                for (h, leg) in heard.iter_mut().zip(legs.iter()) {
                    h.extend_from_slice(&decode(leg));
                }
            }
        }
        heard
    }

    fn hears(x: &[i16], freq: f64) -> bool {
        goertzel(x, freq) > 1e5 // a tone of peak ≥ ~630
    }

    #[test]
    fn each_talker_hears_the_others_and_not_itself() {
        let freqs = [500.0, 700.0, 900.0];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut legs: Vec<MixLeg> = (0..3).map(|_| MixLeg::new(codec)).collect();
            let mut mixer = Mixer::new(3);
            let heard = run_tones(&mut mixer, &mut legs, &freqs, &[8000.0; 3], 20);
            for (i, h) in heard.iter().enumerate() {
                for (j, &f) in freqs.iter().enumerate() {
                    assert_eq!(hears(h, f), i != j, "{codec}: leg {i}, tone {f} Hz");
                }
            }
            assert!(legs.iter().all(MixLeg::is_talking));
        }
    }

    #[test]
    fn only_the_loudest_talkers_are_mixed() {
        let freqs = [500.0, 700.0, 900.0, 1100.0, 1300.0, 1500.0];
        let amps = [9000.0, 8000.0, 7000.0, 2000.0, 1500.0, 0.0];
        let mut legs: Vec<MixLeg> = (0..6).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        let mut mixer = Mixer::new(3);
        let heard = run_tones(&mut mixer, &mut legs, &freqs, &amps, 30);
        // The silent sixth leg is a pure listener: it hears exactly the top 3.
        let listener = &heard[5];
        for (j, &f) in freqs.iter().enumerate() {
            assert_eq!(hears(listener, f), j < 3, "listener, tone {f} Hz");
        }
        // The 4th and 5th are heard by nobody, though they are above the gate.
        for h in &heard {
            assert!(!hears(h, 1100.0) && !hears(h, 1300.0));
        }
        let talking: Vec<bool> = legs.iter().map(MixLeg::is_talking).collect();
        assert_eq!(talking, [true, true, true, false, false, false]);
    }

    #[test]
    fn summary_lists_talkers() {
        let mut legs: Vec<MixLeg> = (0..4).map(|_| MixLeg::new(Codec::Pcma)).collect();
        let mut mixer = Mixer::default();
        legs[1].input = tone(600.0, 5000.0, 0);
        legs[1].has_input = true;
        legs[3].input = tone(800.0, 5000.0, 0);
        legs[3].has_input = true;
        let s = mixer.mix(&mut legs);
        assert_eq!(s.talkers(), &[1, 3]);
        assert!(!s.is_silent());
        assert!(legs[3].level() > GATE_MEAN_SQUARE);
    }

    #[test]
    fn full_scale_saturates_instead_of_wrapping() {
        let mut legs: Vec<MixLeg> = (0..4).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        for leg in &mut legs[..3] {
            leg.input = [i16::MAX; FRAME];
            leg.has_input = true;
        }
        let mut mixer = Mixer::new(3);
        mixer.mix(&mut legs);
        // Listener: 3 · 32767 saturates to full scale, not a negative wrap.
        assert!(decode(&legs[3]).iter().all(|&s| s > 32000));
        // Talkers: 2 · 32767 saturates too.
        assert!(decode(&legs[0]).iter().all(|&s| s > 32000));

        for leg in &mut legs[..3] {
            leg.input = [i16::MIN; FRAME];
        }
        mixer.mix(&mut legs);
        assert!(decode(&legs[3]).iter().all(|&s| s < -32000));
        assert!(decode(&legs[1]).iter().all(|&s| s < -32000));
    }

    #[test]
    fn legs_that_may_not_talk_are_heard_by_nobody_but_hear_everyone() {
        let freqs = [500.0, 700.0, 900.0];
        let mut legs: Vec<MixLeg> = (0..3).map(|_| MixLeg::new(Codec::Pcma)).collect();
        legs[2].may_talk = false; // muted, or sending a DTMF tone
        let mut mixer = Mixer::new(3);
        let heard = run_tones(&mut mixer, &mut legs, &freqs, &[8000.0; 3], 10);
        assert!(hears(&heard[2], 500.0) && hears(&heard[2], 700.0));
        for h in &heard {
            assert!(!hears(h, 900.0));
        }
        assert!(!legs[2].is_talking());

        // Muting a talker takes it out of the mix on the very next tick,
        // with no hangover.
        legs[0].may_talk = false;
        let heard = run_tones(&mut mixer, &mut legs, &freqs, &[8000.0; 3], 1);
        assert!(!hears(&heard[2], 500.0) && hears(&heard[2], 700.0));
    }

    #[test]
    fn legs_without_input_are_silent() {
        let mut legs: Vec<MixLeg> = (0..3).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        legs[0].input = tone(500.0, 8000.0, 0);
        legs[0].has_input = false; // stale buffer contents must not be mixed
        let mut mixer = Mixer::new(3);
        let s = mixer.mix(&mut legs);
        assert!(s.is_silent());
        for leg in &legs {
            assert!(leg.output.iter().all(|&b| b == Codec::Pcmu.silence_byte()));
        }
    }

    #[test]
    fn pcmu_and_pcma_listeners_get_the_same_sum() {
        let mut legs = vec![
            MixLeg::new(Codec::Pcmu),
            MixLeg::new(Codec::Pcma),
            MixLeg::new(Codec::Pcmu),
            MixLeg::new(Codec::Pcma),
        ];
        legs[0].input = tone(500.0, 6000.0, 0);
        legs[0].has_input = true;
        legs[1].input = tone(700.0, 6000.0, 0);
        legs[1].has_input = true;
        let mut mixer = Mixer::new(3);
        mixer.mix(&mut legs);
        let mut sum = [0i16; FRAME];
        for (i, s) in sum.iter_mut().enumerate() {
            *s = legs[0].input[i] + legs[1].input[i];
        }
        let mut mu = [0u8; FRAME];
        let mut a = [0u8; FRAME];
        Codec::Pcmu.encode(&sum, &mut mu);
        Codec::Pcma.encode(&sum, &mut a);
        assert_eq!(legs[2].output, mu);
        assert_eq!(legs[3].output, a);
        // And each talker gets the other one, in its own codec.
        let mut other = [0u8; FRAME];
        Codec::Pcmu.encode(&legs[1].input, &mut other);
        assert_eq!(legs[0].output, other);
        Codec::Pcma.encode(&legs[0].input, &mut other);
        assert_eq!(legs[1].output, other);
    }

    #[test]
    fn a_single_member_gets_silence_and_no_mixing() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut legs = [MixLeg::new(codec)];
            legs[0].input = tone(500.0, 8000.0, 0);
            legs[0].has_input = true;
            legs[0].output = [0x12; FRAME];
            let s = Mixer::default().mix(&mut legs);
            assert!(s.is_silent());
            assert!(!legs[0].is_talking());
            assert!(legs[0].output.iter().all(|&b| b == codec.silence_byte()));
        }
        assert!(Mixer::default().mix(&mut []).is_silent());
    }

    #[test]
    fn nearly_equal_talkers_do_not_flap() {
        // One slot, two speakers within 1 dB of each other, alternating which
        // one is louder every frame: the first keeps the slot throughout.
        let mut legs: Vec<MixLeg> = (0..3).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        let mut mixer = Mixer::new(1);
        let mut holder = None;
        for n in 0..200 {
            let (a, b) = if n % 2 == 0 {
                (6000.0, 5400.0)
            } else {
                (5400.0, 6000.0)
            };
            legs[0].input = tone(500.0, a, n);
            legs[1].input = tone(700.0, b, n);
            legs[0].has_input = true;
            legs[1].has_input = true;
            let s = mixer.mix(&mut legs);
            assert_eq!(s.talkers().len(), 1);
            let now = s.talkers()[0];
            assert_eq!(
                *holder.get_or_insert(now),
                now,
                "tick {n}: slot changed hands"
            );
        }
    }

    #[test]
    fn a_clearly_louder_speaker_takes_over_after_a_few_frames() {
        let mut legs: Vec<MixLeg> = (0..3).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        let mut mixer = Mixer::new(1);
        let mut tick = |legs: &mut [MixLeg], n: usize, a: f64, b: f64| {
            legs[0].input = tone(500.0, a, n);
            legs[1].input = tone(700.0, b, n);
            legs[0].has_input = true;
            legs[1].has_input = true;
            mixer.mix(legs).talkers()[0]
        };
        for n in 0..20 {
            assert_eq!(tick(&mut legs, n, 3000.0, 0.0), 0);
        }
        // Leg 1 starts 10 dB louder; a single loud frame does not switch...
        assert_eq!(tick(&mut legs, 20, 3000.0, 9500.0), 0);
        // ...but a sustained one does, within 100–200 ms.
        let switched = (21..40).find(|&n| tick(&mut legs, n, 3000.0, 9500.0) == 1);
        assert!(matches!(switched, Some(n) if n <= 30), "{switched:?}");
    }

    #[test]
    fn a_talker_keeps_its_slot_through_short_pauses_and_loses_it_after() {
        let mut legs: Vec<MixLeg> = (0..2).map(|_| MixLeg::new(Codec::Pcmu)).collect();
        let mut mixer = Mixer::new(3);
        legs[0].has_input = true;
        legs[0].input = tone(500.0, 5000.0, 0);
        mixer.mix(&mut legs);
        assert!(legs[0].is_talking());
        legs[0].input = [0; FRAME];
        for _ in 0..HANGOVER_FRAMES {
            mixer.mix(&mut legs);
            assert!(legs[0].is_talking());
        }
        mixer.mix(&mut legs);
        assert!(!legs[0].is_talking());
    }

    #[test]
    fn quiet_noise_stays_below_the_gate() {
        // Twenty legs of low background noise (about −60 dBFS): no talkers,
        // so the noise is not summed into everyone's ear.
        let mut legs: Vec<MixLeg> = (0..20).map(|_| MixLeg::new(Codec::Pcma)).collect();
        let mut rng = crate::testing::TestRng::new(0x1234_5678);
        for leg in &mut legs {
            for s in leg.input.iter_mut() {
                *s = rng.below(61) as i16 - 30;
            }
            leg.has_input = true;
        }
        let s = Mixer::default().mix(&mut legs);
        assert!(s.is_silent());
    }

    #[test]
    fn the_allocation_counter_sees_allocations() {
        let (v, allocs) = allocations_during(|| vec![0u8; 100]);
        assert_eq!((v.len(), allocs), (100, 1));
    }

    #[test]
    fn mixing_does_not_allocate() {
        let mut legs: Vec<MixLeg> = (0..50)
            .map(|i| MixLeg::new(if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma }))
            .collect();
        for (i, leg) in legs.iter_mut().enumerate() {
            leg.input = tone(300.0 + 20.0 * i as f64, 1000.0 + 100.0 * i as f64, 0);
            leg.has_input = true;
        }
        let mut mixer = Mixer::default();
        let (_, allocs) = allocations_during(|| {
            for _ in 0..100 {
                mixer.mix(&mut legs);
            }
            mixer.mix(&mut legs[..1]);
        });
        assert_eq!(allocs, 0);
    }
}
