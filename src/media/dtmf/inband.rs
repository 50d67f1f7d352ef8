//! In-band DTMF: a streaming Goertzel detector for 8 kHz linear samples
//! (after G.711 decoding), built to meet ITU-T Q.24 (AT&T column) and to
//! resist talk-off.
//!
//! # What Q.24 asks of a receiver (AT&T column)
//!
//! | criterion            | must operate          | must not operate       |
//! |----------------------|-----------------------|------------------------|
//! | frequency deviation  | within ±1.5 %         | beyond ±3.5 %          |
//! | signal duration      | 40 ms and longer      | 20 ms and shorter (*)  |
//! | pause between digits | 40 ms and longer      |                        |
//! | level per tone       | 0 to −25 dBm0         | below about −35 dBm0   |
//! | twist (high − low)   | −8 dB … +4 dB         | clearly beyond (†)     |
//! | signal-to-noise      | 15 dB                 |                        |
//!
//! (*) AT&T's non-operate figure is 23 ms; this detector never accepts a
//! tone shorter than 25 ms (see `CONFIRM_HITS`).
//! (†) Accepted when the measured twist is within `TWIST_HIGH_MAX_DB` /
//! `TWIST_LOW_MAX_DB`; a clean tone pair is rejected from +6 dB and
//! −10 dB on (the margins cover the measurement error, see those constants).
//!
//! # How it works
//!
//! The samples run through twenty Goertzel recurrences in `f32`, side by
//! side so the compiler keeps them in SIMD registers: the eight DTMF
//! frequencies, their second harmonics and the low group's third
//! harmonics. The recurrences restart
//! every `SUB` samples (5 ms), and each *sub-block* leaves one complex DFT
//! value per frequency in a small ring. Every sub-block, the last four are
//! combined coherently into one 160-sample (20 ms) *window* with the weights
//! `WINDOW_WEIGHTS`, a stepped taper that keeps the neighbouring DTMF
//! frequencies more than 20 dB apart (a plain 160-sample block manages only
//! 13 dB) without the cost of windowing every sample. Windows therefore
//! overlap by 75 % and one is judged every 5 ms.
//!
//! A window is a *hit* for a key when all of these hold:
//!
//! - each group has a winner at least `RELATIVE_PEAK_LOW_DB` (low group)
//!   or `RELATIVE_PEAK_HIGH_DB` (high group) above the other three
//!   frequencies of its group (speech and music spread energy over
//!   neighbouring frequencies; a key does not);
//! - both winners are above `MIN_LEVEL_DBM0`;
//! - the two winners carry at least `ENERGY_RATIO_MIN` of the window's
//!   energy (a dual tone is nearly all of the signal; speech is not);
//! - their twist is within a loose bound (the exact bound is checked on the
//!   average when the key is confirmed);
//! - their frequencies, measured from the phase advance between this window
//!   and the previous one (5 ms earlier), are within
//!   `WINDOW_FREQ_TOLERANCE` of nominal. The phase tells the frequency to
//!   a few hertz even in a 20 ms window, where the magnitude alone cannot
//!   tell a tone 1.5 % off from one 3.5 % off;
//! - the stronger tone is steady across the window's four sub-blocks
//!   (`STEADY_MIN`): a window that holds the start or end of a tone fails,
//!   which is what makes the duration rules exact.
//!
//! `CONFIRM_HITS` consecutive hits for the same key make a candidate; the
//! decision then checks, over the whole run, frequency and twist on the
//! averages, the average energy ratio, that each tone is one steady sine
//! (its *coherence*: speech partials wander in pitch and level within
//! 20 ms, a key does not), and harmonics (see `InbandDetector::confirm`). A
//! confirmed key stays held until `END_MISSES` windows in a row are not
//! hits for it, so one long press is one digit and a 40 ms pause ends it.
//! A run refused for what it *is* (off frequency, twist, harmonics) holds
//! its key the same way; a run that was only *doubtful* (too little of the
//! energy, or not coherent enough: what a burst of speech over a key does)
//! may try again on the next hits, with a stricter energy ratio
//! (`RETRY_RUN_ENERGY_RATIO_MIN`).
//!
//! Nothing here allocates after [`InbandDetector::new`], reads a clock or
//! does I/O: samples in, digits out. One stream's state is about 2 KB.
//!
//! # Measured
//!
//! `cargo bench --bench dtmf_accuracy`
//! prints the Q.24, talk-off and buried-digit figures, and
//! `benches/spandsp/compare.sh` prints spandsp's `dtmf_rx` beside them on
//! the same material; `cargo bench --bench dtmf` measures the cost per
//! 20 ms frame.

/// The sample rate this detector works at, in Hz.
pub const SAMPLE_RATE: u32 = 8000;

/// Amplitude of a 0 dBm0 sine in 16-bit linear samples. G.711's largest
/// sine is +3.17 dBm0 (ITU-T G.711), so 0 dBm0 is 10^(−3.17/20) = 0.694 of
/// full scale (32768).
pub const DBM0_AMPLITUDE: f32 = 22_743.7;

/// Sub-block length in samples (5 ms): the Goertzel recurrences restart
/// here, and a window is judged after each one.
const SUB: usize = 40;

/// Sub-blocks per analysis window: 4 × 5 ms = 20 ms.
const WINDOW_SUBS: usize = 4;

/// Weights of the four sub-blocks in a window. A taper in steps of 5 ms:
/// against a flat 20 ms block it lowers the response to the neighbouring
/// DTMF frequency (73 Hz away or more) from −13 dB to −21 dB and to the
/// other group's nearest frequency from −25 dB to −28 dB, and it narrows
/// the loss of a tone 1.5 % off nominal (1633 Hz: −3.7 dB to −2.7 dB).
const WINDOW_WEIGHTS: [f32; WINDOW_SUBS] = [0.5, 1.0, 1.0, 0.5];

/// Sub-blocks kept: a window (4), the one before it (for the onset) and
/// the ones the confirmation looks back over.
const RING: usize = 8;

/// Goertzel lanes: the 8 DTMF frequencies, their 8 second harmonics and
/// the low group's third harmonics.
const LANES: usize = 20;

/// The low (row) and high (column) group frequencies of ITU-T Q.23, in Hz.
const LOW_HZ: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH_HZ: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The keypad: row (low tone) by column (high tone).
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Weakest tone accepted, per tone, in dBm0. Q.24 (AT&T) requires operation
/// down to −25 dBm0; the window loses up to 2.7 dB on a tone 1.5 % off
/// nominal, so the bar sits at −30 dBm0, which still rejects the −35 dBm0
/// tones a receiver should ignore.
const MIN_LEVEL_DBM0: f32 = -30.0;

/// How far the winning frequency of the high group must stand above the
/// other three of that group, in dB. A key's own leakage into its
/// neighbours is −21 dB or lower through [`WINDOW_WEIGHTS`] (a clean key
/// measures 15 dB or more even at the twist limits); voiced speech and
/// chords put comparable energy on neighbouring frequencies. This is the
/// threshold that trades talk-off against keys buried in loud speech.
const RELATIVE_PEAK_HIGH_DB: f32 = 12.0;

/// The same for the low group. Voiced speech keeps its first formant,
/// and so its strongest harmonics, around 700–950 Hz, right among the low
/// DTMF frequencies: most keys lost under loud speech fail here. Measured
/// on the accuracy report's material (the default and two fresh seeds),
/// 10 dB finds about one key in a hundred more at 6 dB SNR than 12 dB and
/// adds no false digit (the run-level checks catch the harmonic pairs it
/// admits); lowering the high group's bar as well did let speech through.
const RELATIVE_PEAK_LOW_DB: f32 = 10.0;

/// Share of the window's energy the two winning tones must carry. A clean
/// pair carries ~100 %, with 15 dB of white noise ~97 %, and a key pressed
/// over speech at 6 dB SNR ~80 % on average. Speech and music rarely put
/// even half of their energy into two DTMF frequencies.
const ENERGY_RATIO_MIN: f32 = 0.55;

/// Largest accepted twist (high tone louder: "reverse twist"), in dB.
/// Q.24 (AT&T): +4 dB must be accepted; +0.9 dB covers what is left of
/// the other tone's leakage after averaging, so +6 dB is always rejected.
const TWIST_HIGH_MAX_DB: f32 = 4.9;

/// Largest accepted twist with the low tone louder ("normal twist"), in dB.
/// Q.24 (AT&T): 8 dB must be accepted; with the same margin as above,
/// 10 dB is always rejected.
const TWIST_LOW_MAX_DB: f32 = 8.9;

/// A single window's twist bound, looser than the confirmation's, so that
/// one window's leakage error cannot break a run at the limits.
const WINDOW_TWIST_SLACK_DB: f32 = 3.0;

/// Largest frequency deviation accepted at confirmation, as a fraction of
/// nominal: halfway between Q.24's ±1.5 % (operate) and ±3.5 % (reject).
const FREQ_TOLERANCE: f32 = 0.025;

/// A single window's frequency bound: looser, as a single 5 ms phase step
/// carries a few hertz of leakage error.
const WINDOW_FREQ_TOLERANCE: f32 = 0.035;

/// Smallest sub-block magnitude of the stronger tone, as a share of the
/// window's mean. A steady tone is at 1.0 ± 0.1; a window that holds the
/// first or last 20 samples of a tone falls below 0.6.
const STEADY_MIN: f32 = 0.6;

/// Largest second-harmonic level accepted, relative to its fundamental, in
/// dB. Q.23 keeps a DTMF sender's distortion products 20 dB or more below
/// the tones; musical notes and voiced speech carry strong harmonics. At
/// −12 dB, voiced speech whose pitch put harmonics on 697 and near 1633 Hz
/// passed as `A` with its 1394 Hz harmonic at −12.1 and −14.1 dB (on
/// material the thresholds had not been tuned on); −15 dB refuses those
/// and costs no key in the Q.24 sets. It does make white noise louder than
/// about 2 dB below the keys count as harmonics, far beyond Q.24's 15 dB.
const HARMONIC_MAX_DB: f32 = -15.0;

/// Largest third harmonic of the low tone accepted, relative to it, in dB.
/// Square and triangle waves (and clarinet-like timbres) have odd
/// harmonics only, which the second-harmonic check cannot see; a clean
/// DTMF sender's third harmonic is 30 dB or more down, and even two tones
/// at 0 dBm0 clipped by the codec stay below −23 dB.
const THIRD_HARMONIC_MAX_DB: f32 = -18.0;

/// A low tone's second harmonic is not checked when it lies this close to
/// the key's own high tone (keys 2, 3, 6, B, C), whose leakage would mask it.
const HARMONIC_GUARD_HZ: f32 = 150.0;

/// Smallest average energy ratio over a confirming run. Single windows
/// may dip to [`ENERGY_RATIO_MIN`] under a burst of speech; over the run,
/// a key pressed at 6 dB below average speech still averages ~0.8, while
/// the harmonic pairs of voiced speech and chords that pass every window
/// check average 0.55–0.65.
const RUN_ENERGY_RATIO_MIN: f32 = 0.65;

/// The smallest average energy ratio for a run that tries again after a
/// doubtful one (see [`Verdict::Doubtful`]). A retry is one more chance
/// for speech to pass, so it must show more clearly that the pair carries
/// the signal: on the report's music, a chord that failed at 0.6 passed
/// a retry at exactly 0.65, and 0.7 refuses it while keeping nearly all
/// the keys that a burst of speech had masked for a moment.
const RETRY_RUN_ENERGY_RATIO_MIN: f32 = 0.7;

/// Smallest coherence of each tone over a confirming run (see
/// [`coherence`]): a clean key measures 0.97–1.0 (0.99 with 15 dB of
/// noise), a key under speech at 6 dB mostly above 0.9; the partials of
/// speech wander in frequency and level within 20 ms and fall below.
const COHERENCE_MIN: f32 = 0.9;

/// Consecutive window hits that make a candidate key. Hits are 5 ms apart
/// and a window only hits when the tone fills it (see [`STEADY_MIN`]: its
/// first and last sub-blocks must each hold more than half a sub-block of
/// tone, so the tone must cover at least 15 ms of the window). Three
/// consecutive hits need at least 25 ms of tone and always happen within
/// 30 ms: 40 ms tones are accepted with 10 ms to spare, 20 ms (and AT&T's
/// 23 ms) tones never are. The run-level checks in
/// [`InbandDetector::confirm`] then carry the talk-off protection that
/// more hits would otherwise have to.
const CONFIRM_HITS: u32 = 3;

/// Consecutive windows without the held key that end it. A 40 ms pause
/// leaves at least 11 such windows; a 10 ms dropout at most 6.
const END_MISSES: u32 = 8;

/// Confirmed digits kept until polled. When full, the oldest is dropped.
const DIGIT_CAPACITY: usize = 16;

/// Windows with less energy than two tones at the minimum level cannot
/// hold a key; they skip the per-tone work.
const SILENCE_POWER: f32 = 2.0 * power_of_dbm0(MIN_LEVEL_DBM0);

/// A digit found in the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InbandDigit {
    /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
    pub key: char,
    /// Estimated first sample of the tone, counted from 0 across calls.
    pub start_sample: u64,
    /// Always `None` here: a digit is reported once, when confirmed.
    pub duration_samples: Option<u64>,
}

/// A complex number in `f32`, for the Goertzel outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct C32 {
    re: f32,
    im: f32,
}

impl C32 {
    const fn new(re: f32, im: f32) -> C32 {
        C32 { re, im }
    }

    fn from_angle(theta: f64) -> C32 {
        C32::new(theta.cos() as f32, theta.sin() as f32)
    }

    fn mul(self, o: C32) -> C32 {
        C32::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }

    /// `self * conj(o)`.
    fn mul_conj(self, o: C32) -> C32 {
        C32::new(
            self.re * o.re + self.im * o.im,
            self.im * o.re - self.re * o.im,
        )
    }

    fn sub(self, o: C32) -> C32 {
        C32::new(self.re - o.re, self.im - o.im)
    }

    fn div(self, o: C32) -> C32 {
        let d = o.norm_sqr();
        if d <= 0.0 {
            return C32::default();
        }
        self.mul_conj(o).scale(1.0 / d)
    }

    fn add(self, o: C32) -> C32 {
        C32::new(self.re + o.re, self.im + o.im)
    }

    fn scale(self, k: f32) -> C32 {
        C32::new(self.re * k, self.im * k)
    }

    fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }

    fn arg(self) -> f32 {
        self.im.atan2(self.re)
    }
}

/// Mean power of a sine at `dbm0`, in squared 16-bit sample units.
const fn power_of_dbm0(dbm0: f32) -> f32 {
    // 10^(dbm0/10) without `powf`, which is not const: dbm0 is a whole
    // number of dB in every use here, so repeated multiplication is exact
    // enough.
    let a = DBM0_AMPLITUDE;
    let mut p = a * a / 2.0;
    let mut db = dbm0;
    while db <= -1.0 {
        p /= 1.258_925_4;
        db += 1.0;
    }
    p
}

/// `10^(db/10)`.
fn db_to_ratio(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Per-frequency constants, computed once by [`InbandDetector::new`].
#[derive(Debug, Clone)]
struct Tables {
    /// Goertzel feedback, `2 cos ω`.
    coef: [f32; LANES],
    /// `e^{−jω(SUB−1)}`: with [`shift`](Self::shift), turns the
    /// recurrence's last two states into the sub-block's DFT value,
    /// referenced to its first sample.
    fin_a: [C32; LANES],
    /// `e^{−jω·SUB}`: shifts a DFT value by one sub-block, to combine
    /// sub-blocks into a window and to compare consecutive windows' phases.
    shift: [C32; LANES],
    /// Nominal frequency of each lane, in Hz.
    hz: [f32; LANES],
}

impl Tables {
    fn new() -> Tables {
        let mut t = Tables {
            coef: [0.0; LANES],
            fin_a: [C32::default(); LANES],
            shift: [C32::default(); LANES],
            hz: [0.0; LANES],
        };
        for lane in 0..LANES {
            let base = if lane % 8 < 4 {
                LOW_HZ[lane % 4]
            } else {
                HIGH_HZ[lane % 4]
            };
            let hz = match lane {
                0..8 => base,
                8..16 => 2.0 * base,
                _ => 3.0 * base,
            };
            let w = 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(SAMPLE_RATE);
            t.coef[lane] = (2.0 * w.cos()) as f32;
            t.fin_a[lane] = C32::from_angle(-w * (SUB as f64 - 1.0));
            t.shift[lane] = C32::from_angle(-w * SUB as f64);
            t.hz[lane] = hz;
        }
        t
    }
}

/// The state of the Goertzel bank inside the current sub-block.
#[derive(Debug, Clone, Default)]
struct Bank {
    s1: [f32; LANES],
    s2: [f32; LANES],
    /// Sum of squares and sum of the samples, for the DC-free energy.
    sq: f32,
    sum: f32,
    /// Samples in the current sub-block.
    fill: usize,
}

impl Bank {
    /// Runs the recurrences over `xs`, which must fit in the sub-block.
    #[inline]
    fn feed(&mut self, coef: &[f32; LANES], xs: &[i16]) {
        let mut s1 = self.s1;
        let mut s2 = self.s2;
        let mut sq = self.sq;
        let mut sum = self.sum;
        for &x in xs {
            let x = f32::from(x);
            for k in 0..LANES {
                // `(x − s2) + c·s1`: the subtraction is off the critical
                // path, so each step waits for one multiply and one add.
                let s = coef[k] * s1[k] + (x - s2[k]);
                s2[k] = s1[k];
                s1[k] = s;
            }
            sq += x * x;
            sum += x;
        }
        self.s1 = s1;
        self.s2 = s2;
        self.sq = sq;
        self.sum = sum;
        self.fill += xs.len();
    }
}

/// One finished sub-block: a DFT value per lane and the DC-free energy.
#[derive(Debug, Clone, Copy)]
struct SubBlock {
    x: [C32; LANES],
    energy: f32,
}

impl Default for SubBlock {
    fn default() -> Self {
        SubBlock {
            x: [C32::default(); LANES],
            energy: 0.0,
        }
    }
}

/// What one window showed: a key and the measurements the confirmation
/// averages.
#[derive(Debug, Clone, Copy)]
struct Hit {
    row: usize,
    col: usize,
    /// Window powers of the low and high tone (mean power of a sine).
    p_low: f32,
    p_high: f32,
    /// Phase advance of each tone since the previous window, times its
    /// magnitude squared (summed over a run, its angle is the frequency
    /// offset).
    z_low: C32,
    z_high: C32,
    energy: f32,
}

/// A run of consecutive hits for one key, not yet confirmed.
#[derive(Debug, Clone, Copy)]
struct Run {
    row: usize,
    col: usize,
    hits: u32,
    /// Index of the first sub-block of the run's first window.
    first_sub: u64,
    /// Sums of the tone powers over the run's windows.
    p_low: f32,
    p_high: f32,
    /// Sum of the windows' energies.
    energy: f32,
    /// Sums of the phase advances over every hit but the first: the first
    /// hit's phase advance is measured against a window the tone only
    /// partly fills, which skews it for a tone off nominal.
    z_low: C32,
    z_high: C32,
}

impl Run {
    fn start(h: &Hit, first_sub: u64) -> Run {
        Run {
            row: h.row,
            col: h.col,
            hits: 1,
            first_sub,
            p_low: h.p_low,
            p_high: h.p_high,
            energy: h.energy,
            z_low: C32::default(),
            z_high: C32::default(),
        }
    }

    fn extend(&mut self, h: &Hit) {
        self.hits += 1;
        self.p_low += h.p_low;
        self.p_high += h.p_high;
        self.energy += h.energy;
        self.z_low = self.z_low.add(h.z_low);
        self.z_high = self.z_high.add(h.z_high);
    }
}

/// What [`InbandDetector::confirm`] made of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A key.
    Accept,
    /// Not a key: off frequency, twist out of bounds or strong harmonics.
    /// The key is held (refused) until the signal changes.
    Refuse,
    /// Too little of the energy in the pair, or not coherent enough: what
    /// a burst of speech over a real key looks like. The next run of hits
    /// for the same key may try again.
    Doubtful,
}

/// A streaming in-band DTMF detector for one 8 kHz stream.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    t: Tables,
    bank: Bank,
    ring: [SubBlock; RING],
    /// Sub-blocks completed since the start; sub-block `i` is in
    /// `ring[i % RING]` while `i + RING >= subs`.
    subs: u64,
    /// The previous window's value for each DTMF frequency.
    prev_y: [C32; 8],
    prev_valid: bool,
    run: Option<Run>,
    /// The key being held (confirmed or refused), and the windows since it
    /// was last seen.
    held: Option<(usize, usize)>,
    misses: u32,
    /// The key whose last run was [`Verdict::Doubtful`], while its retry is
    /// open, and the windows without any hit since.
    doubtful: Option<(usize, usize)>,
    idle: u32,
    last_hit: bool,
    samples: u64,
    digits: [InbandDigit; DIGIT_CAPACITY],
    digit_head: usize,
    digit_len: usize,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    /// A detector for 8 kHz samples.
    pub fn new() -> Self {
        InbandDetector {
            t: Tables::new(),
            bank: Bank::default(),
            ring: [SubBlock::default(); RING],
            subs: 0,
            prev_y: [C32::default(); 8],
            prev_valid: false,
            run: None,
            held: None,
            misses: 0,
            doubtful: None,
            idle: 0,
            last_hit: false,
            samples: 0,
            digits: [InbandDigit {
                key: '0',
                start_sample: 0,
                duration_samples: None,
            }; DIGIT_CAPACITY],
            digit_head: 0,
            digit_len: 0,
        }
    }

    /// Feeds samples (any length, e.g. 160 per 20 ms frame). Samples are
    /// counted from 0 across calls.
    pub fn process(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (SUB - self.bank.fill).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.bank.feed(&self.t.coef, now);
            self.samples += take as u64;
            rest = later;
            if self.bank.fill == SUB {
                self.finish_sub_block();
            }
        }
    }

    /// The next confirmed digit, oldest first; each digit is returned once.
    pub fn poll_digit(&mut self) -> Option<InbandDigit> {
        if self.digit_len == 0 {
            return None;
        }
        let d = self.digits[self.digit_head];
        self.digit_head = (self.digit_head + 1) % DIGIT_CAPACITY;
        self.digit_len -= 1;
        Some(d)
    }

    /// Whether a DTMF tone is present now: the latest window held one, even
    /// if it is not confirmed yet, or a confirmed key is still held. The
    /// conference mixer uses this to keep key tones out of the mix.
    pub fn tone_present(&self) -> bool {
        self.last_hit || self.held.is_some()
    }

    /// Samples fed since creation or the last [`reset`](Self::reset).
    pub fn samples_seen(&self) -> u64 {
        self.samples
    }

    /// Forgets everything, as if newly created.
    pub fn reset(&mut self) {
        *self = InbandDetector::new();
    }

    /// Turns the bank's state into the sub-block's DFT values, stores them
    /// and judges the window that ends here.
    fn finish_sub_block(&mut self) {
        let slot = (self.subs % RING as u64) as usize;
        let b = &mut self.bank;
        let sb = &mut self.ring[slot];
        for k in 0..LANES {
            // X = e^{−jω(N−1)}·s[N−1] − e^{−jωN}·s[N−2]: the DFT sum over
            // the sub-block, phase-referenced to its first sample.
            let a = self.t.fin_a[k];
            let c = self.t.shift[k];
            sb.x[k] = C32::new(
                a.re * b.s1[k] - c.re * b.s2[k],
                a.im * b.s1[k] - c.im * b.s2[k],
            );
        }
        sb.energy = (b.sq - b.sum * b.sum / SUB as f32).max(0.0);
        *b = Bank::default();
        self.subs += 1;
        if self.subs >= WINDOW_SUBS as u64 {
            let hit = self.judge_window();
            self.step(hit);
        }
    }

    /// The sub-block `back` places before the newest (0 = newest).
    fn sub(&self, back: usize) -> &SubBlock {
        let i = (self.subs - 1 - back as u64) % RING as u64;
        &self.ring[i as usize]
    }

    /// The window value of `lane` over the sub-blocks ending `back` places
    /// before the newest: Σ wᵢ·e^{−jω·SUB·i}·Xᵢ, referenced to the window's
    /// first sample.
    fn window_value(&self, lane: usize, back: usize) -> C32 {
        let shift = self.t.shift[lane];
        let mut y = C32::default();
        for i in (0..WINDOW_SUBS).rev() {
            let x = self.sub(back + WINDOW_SUBS - 1 - i).x[lane];
            y = y.mul(shift).add(x.scale(WINDOW_WEIGHTS[i]));
        }
        y
    }

    /// Converts a window value to the mean power of the sine it measures.
    fn power(y: C32) -> f32 {
        // A sine of amplitude A at the bin gives |Y| = (A/2)·SUB·Σw.
        let g: f32 = SUB as f32 * WINDOW_WEIGHTS.iter().sum::<f32>();
        2.0 * y.norm_sqr() / (g * g)
    }

    /// The window's mean power (DC removed), weighted like the tones.
    fn window_energy(&self) -> f32 {
        let mut e = 0.0;
        let mut wsum = 0.0;
        for (i, w) in WINDOW_WEIGHTS.iter().enumerate() {
            e += w * w * self.sub(WINDOW_SUBS - 1 - i).energy;
            wsum += w * w;
        }
        e / (wsum * SUB as f32)
    }

    /// Judges the newest window; `Some` if it is a hit for a key.
    fn judge_window(&mut self) -> Option<Hit> {
        let energy = self.window_energy();
        if energy < SILENCE_POWER {
            self.prev_valid = false;
            return None;
        }
        let mut y = [C32::default(); 8];
        let mut p = [0f32; 8];
        for k in 0..8 {
            y[k] = self.window_value(k, 0);
            p[k] = Self::power(y[k]);
        }
        let prev = self.prev_y;
        let prev_valid = self.prev_valid;
        self.prev_y = y;
        self.prev_valid = true;
        let row = group_winner(&p[0..4], RELATIVE_PEAK_LOW_DB)?;
        let col = group_winner(&p[4..8], RELATIVE_PEAK_HIGH_DB)?;
        let (p_low, p_high) = (p[row], p[4 + col]);
        if !levels_ok(p_low, p_high) || !energy_ok(p_low, p_high, energy) {
            return None;
        }
        if !twist_ok(p_low, p_high, WINDOW_TWIST_SLACK_DB) || !prev_valid {
            return None;
        }
        // Phase advance over one sub-block, against nominal.
        let z_low = y[row].mul_conj(prev[row]).mul(self.t.shift[row]);
        let z_high = y[4 + col]
            .mul_conj(prev[4 + col])
            .mul(self.t.shift[4 + col]);
        if !freq_ok(z_low, LOW_HZ[row], WINDOW_FREQ_TOLERANCE)
            || !freq_ok(z_high, HIGH_HZ[col], WINDOW_FREQ_TOLERANCE)
        {
            return None;
        }
        let strong = if p_low >= p_high { row } else { 4 + col };
        if !self.steady(strong) {
            return None;
        }
        Some(Hit {
            row,
            col,
            p_low,
            p_high,
            z_low,
            z_high,
            energy,
        })
    }

    /// Whether `lane`'s magnitude holds steady over the window's sub-blocks.
    fn steady(&self, lane: usize) -> bool {
        let mut m = [0f32; WINDOW_SUBS];
        for (i, v) in m.iter_mut().enumerate() {
            *v = self.sub(i).x[lane].norm_sqr().sqrt();
        }
        let mean = m.iter().sum::<f32>() / WINDOW_SUBS as f32;
        m.iter().all(|&v| v >= STEADY_MIN * mean)
    }

    /// Advances the digit state machine by one window.
    fn step(&mut self, hit: Option<Hit>) {
        self.last_hit = hit.is_some();
        let Some(h) = hit else {
            self.run = None;
            // A retry is for the same stretch of signal: a pause as long as
            // the one that ends a key closes it.
            self.idle += 1;
            if self.idle >= END_MISSES {
                self.doubtful = None;
            }
            self.miss();
            return;
        };
        self.idle = 0;
        if self.doubtful.is_some_and(|k| k != (h.row, h.col)) {
            self.doubtful = None;
        }
        if self.held == Some((h.row, h.col)) {
            self.misses = 0;
            self.run = None;
            return;
        }
        self.miss();
        let first_sub = self.subs - WINDOW_SUBS as u64;
        let run = match self.run {
            Some(mut r) if (r.row, r.col) == (h.row, h.col) => {
                r.extend(&h);
                r
            }
            _ => Run::start(&h, first_sub),
        };
        if run.hits < CONFIRM_HITS {
            self.run = Some(run);
            return;
        }
        self.run = None;
        let verdict = self.confirm(&run);
        if verdict == Verdict::Doubtful {
            // Not held: the next CONFIRM_HITS hits for this key are judged
            // again, more strictly.
            self.doubtful = Some((run.row, run.col));
            return;
        }
        self.doubtful = None;
        self.held = Some((run.row, run.col));
        self.misses = 0;
        if verdict == Verdict::Accept {
            let start = self.onset(&run);
            self.push_digit(InbandDigit {
                key: KEYPAD[run.row][run.col],
                start_sample: start,
                duration_samples: None,
            });
        }
    }

    /// Counts a window without the held key; enough of them end it.
    fn miss(&mut self) {
        if self.held.is_some() {
            self.misses += 1;
            if self.misses >= END_MISSES {
                self.held = None;
                self.misses = 0;
            }
        }
    }

    /// The final decision on a run of hits, on measurements a single
    /// window cannot make reliably:
    ///
    /// - frequency, from the phase advances summed over the run, within
    ///   [`FREQ_TOLERANCE`];
    /// - twist within the Q.24 limits, on the run's average powers, each
    ///   corrected for the window's loss at its tone's measured offset;
    /// - the run's average energy ratio at least [`RUN_ENERGY_RATIO_MIN`]
    ///   ([`RETRY_RUN_ENERGY_RATIO_MIN`] on a retry);
    /// - both tones steady sines over the run ([`COHERENCE_MIN`]);
    /// - no strong harmonics ([`harmonics_ok`](Self::harmonics_ok)).
    ///
    /// Failing the energy ratio or the coherence is [`Verdict::Doubtful`];
    /// the others are [`Verdict::Refuse`].
    fn confirm(&self, run: &Run) -> Verdict {
        let (Some(dl), Some(dh)) = (freq_offset_hz(run.z_low), freq_offset_hz(run.z_high)) else {
            return Verdict::Refuse;
        };
        let (fl, fh) = (LOW_HZ[run.row], HIGH_HZ[run.col]);
        if dl.abs() > FREQ_TOLERANCE * fl || dh.abs() > FREQ_TOLERANCE * fh {
            return Verdict::Refuse;
        }
        let p_low = run.p_low / window_gain_sqr(dl);
        let p_high = run.p_high / window_gain_sqr(dh);
        if !twist_ok(p_low, p_high, 0.0) {
            return Verdict::Refuse;
        }
        let retry = self.doubtful == Some((run.row, run.col));
        let ratio_min = if retry {
            RETRY_RUN_ENERGY_RATIO_MIN
        } else {
            RUN_ENERGY_RATIO_MIN
        };
        if run.p_low + run.p_high < ratio_min * run.energy {
            return Verdict::Doubtful;
        }
        // The first sub-block may hold the tone's onset; leave it out.
        let (low, high, n) = self.separated(run, dl, dh, run.first_sub + 1);
        if coherence(&low[..n], fl + dl) < COHERENCE_MIN
            || coherence(&high[..n], fh + dh) < COHERENCE_MIN
        {
            return Verdict::Doubtful;
        }
        if self.harmonics_ok(run.row, run.col) {
            Verdict::Accept
        } else {
            Verdict::Refuse
        }
    }

    /// Harmonic checks on the newest window: the high tone's second
    /// harmonic and the low tone's second and third, each at most
    /// [`HARMONIC_MAX_DB`] / [`THIRD_HARMONIC_MAX_DB`] below its
    /// fundamental. Plucked and bowed notes, organ stops and voiced speech
    /// carry strong harmonics; square and triangle waves odd ones only.
    fn harmonics_ok(&self, row: usize, col: usize) -> bool {
        let second = db_to_ratio(HARMONIC_MAX_DB);
        let third = db_to_ratio(THIRD_HARMONIC_MAX_DB);
        let power = |lane: usize| Self::power(self.window_value(lane, 0));
        let (p_low, p_high) = (power(row), power(4 + col));
        if power(12 + col) > second * p_high || power(16 + row) > third * p_low {
            return false;
        }
        let (fl, fh) = (LOW_HZ[row], HIGH_HZ[col]);
        (2.0 * fl - fh).abs() < HARMONIC_GUARD_HZ || power(8 + row) <= second * p_low
    }

    /// The two tones' sub-block values from sub-block `from` on, each
    /// with the other tone's leakage removed. A 5 ms sub-block cannot
    /// separate tones 268 Hz apart (941 and 1209 Hz leak into each other at
    /// −14 dB), so each value is solved from the pair: with `K` the response
    /// of one bin to the other tone at its measured frequency,
    /// `X_low = a + K_lh·b` and `X_high = b + K_hl·a`.
    fn separated(
        &self,
        run: &Run,
        dl: f32,
        dh: f32,
        from: u64,
    ) -> ([C32; RING], [C32; RING], usize) {
        let (lo, hi) = (run.row, 4 + run.col);
        let w = |hz: f32| 2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(SAMPLE_RATE);
        let (wl, wh) = (w(self.t.hz[lo] + dl), w(self.t.hz[hi] + dh));
        let (wl0, wh0) = (w(self.t.hz[lo]), w(self.t.hz[hi]));
        let k_lh = dirichlet(wh - wl0).div(dirichlet(wh - wh0));
        let k_hl = dirichlet(wl - wh0).div(dirichlet(wl - wl0));
        let det = C32::new(1.0, 0.0).sub(k_lh.mul(k_hl));
        let mut a = [C32::default(); RING];
        let mut b = [C32::default(); RING];
        let mut n = 0;
        for sub in from.max(self.subs.saturating_sub(RING as u64))..self.subs {
            let x = &self.sub((self.subs - 1 - sub) as usize).x;
            a[n] = x[lo].sub(k_lh.mul(x[hi])).div(det);
            b[n] = x[hi].sub(k_hl.mul(x[lo])).div(det);
            n += 1;
        }
        (a, b, n)
    }

    /// Estimates the first sample of the tone from the sub-block magnitudes
    /// of its stronger frequency: a sub-block that holds the tone for part
    /// of its length shows that part of the steady magnitude.
    fn onset(&self, run: &Run) -> u64 {
        let lane = if run.p_low >= run.p_high {
            run.row
        } else {
            4 + run.col
        };
        let mag = |sub: u64| -> f32 {
            let back = (self.subs - 1 - sub) as usize;
            self.sub(back).x[lane].norm_sqr().sqrt()
        };
        // The steady magnitude: the middle of the run's first window.
        let steady = 0.5 * (mag(run.first_sub + 1) + mag(run.first_sub + 2));
        if steady <= 0.0 {
            return run.first_sub * SUB as u64;
        }
        let oldest = self.subs.saturating_sub(RING as u64);
        let mut first = run.first_sub;
        while first > oldest && mag(first - 1) >= 0.5 * steady {
            first -= 1;
        }
        let part = |sub: u64| (mag(sub) / steady).clamp(0.0, 1.0);
        let before = if first > oldest { part(first - 1) } else { 0.0 };
        let tone_samples = (part(first) + before) * SUB as f32;
        let end = (first + 1) * SUB as u64;
        end.saturating_sub(tone_samples.round() as u64)
    }

    fn push_digit(&mut self, d: InbandDigit) {
        if self.digit_len == DIGIT_CAPACITY {
            self.digit_head = (self.digit_head + 1) % DIGIT_CAPACITY;
            self.digit_len -= 1;
        }
        let tail = (self.digit_head + self.digit_len) % DIGIT_CAPACITY;
        self.digits[tail] = d;
        self.digit_len += 1;
    }
}

/// The index of the strongest of a group's four powers, if it stands
/// `peak_db` above each of the others.
fn group_winner(p: &[f32], peak_db: f32) -> Option<usize> {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    let margin = db_to_ratio(peak_db);
    let clear = p
        .iter()
        .enumerate()
        .all(|(i, &v)| i == best || v * margin <= p[best]);
    clear.then_some(best)
}

/// Both tones above the minimum level.
fn levels_ok(p_low: f32, p_high: f32) -> bool {
    let min = power_of_dbm0(MIN_LEVEL_DBM0);
    p_low >= min && p_high >= min
}

/// The two tones carry most of the window's energy.
fn energy_ok(p_low: f32, p_high: f32, energy: f32) -> bool {
    p_low + p_high >= ENERGY_RATIO_MIN * energy
}

/// Twist within the Q.24 limits, widened by `slack_db` on both sides.
fn twist_ok(p_low: f32, p_high: f32, slack_db: f32) -> bool {
    p_high <= p_low * db_to_ratio(TWIST_HIGH_MAX_DB + slack_db)
        && p_low <= p_high * db_to_ratio(TWIST_LOW_MAX_DB + slack_db)
}

/// The frequency offset, in Hz, that a phase advance `z` over one sub-block
/// stands for. `None` when there is no phase to read.
fn freq_offset_hz(z: C32) -> Option<f32> {
    if z.norm_sqr() <= 0.0 {
        return None;
    }
    Some(z.arg() * SAMPLE_RATE as f32 / (2.0 * std::f32::consts::PI * SUB as f32))
}

/// Whether the phase advance `z` puts the tone within `tolerance` (a
/// fraction) of `nominal_hz`.
fn freq_ok(z: C32, nominal_hz: f32, tolerance: f32) -> bool {
    freq_offset_hz(z).is_some_and(|d| d.abs() <= tolerance * nominal_hz)
}

/// How much of the energy in consecutive sub-block values `xs` is one
/// steady sine at `hz`: 1 for a steady tone, less when neighbouring
/// partials, a gliding pitch or a changing level (speech, music) share the
/// band. By Cauchy–Schwarz it is at most 1.
fn coherence(xs: &[C32], hz: f32) -> f32 {
    let step = C32::from_angle(
        -2.0 * std::f64::consts::PI * f64::from(hz) * SUB as f64 / f64::from(SAMPLE_RATE),
    );
    let mut rot = C32::new(1.0, 0.0);
    let mut acc = C32::default();
    let mut energy = 0.0;
    for x in xs {
        acc = acc.add(x.mul(rot));
        energy += x.norm_sqr();
        rot = rot.mul(step);
    }
    if energy <= 0.0 {
        return 0.0;
    }
    acc.norm_sqr() / (xs.len() as f32 * energy)
}

/// `Σ_{n<SUB} e^{jθn}`: a sub-block's response to a complex tone `θ`
/// radians per sample away from its bin.
fn dirichlet(theta: f64) -> C32 {
    let n = SUB as f64;
    let half = theta / 2.0;
    let mag = if half.sin().abs() < 1e-9 {
        n
    } else {
        (n * half).sin() / half.sin()
    };
    C32::from_angle(half * (n - 1.0)).scale(mag as f32)
}

/// The window's power gain for a tone `offset_hz` away from the bin.
fn window_gain_sqr(offset_hz: f32) -> f32 {
    let x = std::f32::consts::PI * offset_hz / SAMPLE_RATE as f32;
    // One sub-block: the Dirichlet kernel |sin(N·x) / (N·sin x)|.
    let sub = if x.abs() < 1e-6 {
        1.0
    } else {
        (SUB as f32 * x).sin() / (SUB as f32 * x.sin())
    };
    // The weighted sum of the four sub-blocks, each 2·N·x further on.
    let step = 2.0 * SUB as f32 * x;
    let mut acc = C32::default();
    for (i, w) in WINDOW_WEIGHTS.iter().enumerate() {
        acc = acc.add(C32::from_angle(f64::from(step * i as f32)).scale(*w));
    }
    let wsum: f32 = WINDOW_WEIGHTS.iter().sum();
    let g = sub * acc.norm_sqr().sqrt() / wsum;
    (g * g).max(1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64) for phases and noise.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn gaussian(&mut self) -> f64 {
            let u1 = self.uniform().max(1e-300);
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn amplitude(dbm0: f64) -> f64 {
        f64::from(DBM0_AMPLITUDE) * 10f64.powf(dbm0 / 20.0)
    }

    fn key_freqs(key: char) -> (f64, f64) {
        for (r, row) in KEYPAD.iter().enumerate() {
            for (c, &k) in row.iter().enumerate() {
                if k == key {
                    return (f64::from(LOW_HZ[r]), f64::from(HIGH_HZ[c]));
                }
            }
        }
        panic!("not a key: {key}")
    }

    /// A tone pair as a test specifies it.
    #[derive(Clone, Copy)]
    struct Tone {
        key: char,
        /// Frequency deviation of the low and high tone (0.015 = +1.5 %).
        dev_low: f64,
        dev_high: f64,
        /// Level of the low tone, dBm0, and twist (high − low), dB.
        low_dbm0: f64,
        twist_db: f64,
        ms: f64,
    }

    impl Tone {
        fn key(key: char) -> Tone {
            Tone {
                key,
                dev_low: 0.0,
                dev_high: 0.0,
                low_dbm0: -10.0,
                twist_db: 0.0,
                ms: 60.0,
            }
        }
    }

    /// Builds a test signal in floating point, then quantises it.
    struct Signal {
        x: Vec<f64>,
        rng: Rng,
    }

    impl Signal {
        fn new(seed: u64) -> Signal {
            Signal {
                x: Vec::new(),
                rng: Rng(seed),
            }
        }

        fn silence(&mut self, ms: f64) -> &mut Self {
            let n = (ms * 8.0).round() as usize;
            self.x.extend(std::iter::repeat_n(0.0, n));
            self
        }

        /// Appends a tone pair with random starting phases; returns self.
        fn tone(&mut self, t: Tone) -> &mut Self {
            let (fl, fh) = key_freqs(t.key);
            let (fl, fh) = (fl * (1.0 + t.dev_low), fh * (1.0 + t.dev_high));
            let (al, ah) = (amplitude(t.low_dbm0), amplitude(t.low_dbm0 + t.twist_db));
            let pl = self.rng.uniform() * std::f64::consts::TAU;
            let ph = self.rng.uniform() * std::f64::consts::TAU;
            let n = (t.ms * 8.0).round() as usize;
            for i in 0..n {
                let ti = i as f64 / 8000.0;
                let v = al * (std::f64::consts::TAU * fl * ti + pl).sin()
                    + ah * (std::f64::consts::TAU * fh * ti + ph).sin();
                self.x.push(v);
            }
            self
        }

        fn samples(&self) -> Vec<i16> {
            self.x
                .iter()
                .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
                .collect()
        }
    }

    /// Adds white noise `snr_db` below `signal_power`.
    fn add_white_noise(x: &mut [f64], signal_power: f64, snr_db: f64, rng: &mut Rng) {
        let sigma = (signal_power / 10f64.powf(snr_db / 10.0)).sqrt();
        for v in x {
            *v += sigma * rng.gaussian();
        }
    }

    fn detect_chunked(samples: &[i16], chunk: usize) -> Vec<InbandDigit> {
        let mut d = InbandDetector::new();
        let mut out = Vec::new();
        for c in samples.chunks(chunk) {
            d.process(c);
            while let Some(x) = d.poll_digit() {
                out.push(x);
            }
        }
        out
    }

    fn keys(samples: &[i16]) -> String {
        detect_chunked(samples, 160).iter().map(|d| d.key).collect()
    }

    /// Every key, `phases` times with fresh random phases, each shaped by
    /// `shape` and followed by 150 ms of silence: (expected, detected) when
    /// every tone should be accepted.
    fn every_key(seed: u64, phases: usize, shape: impl Fn(Tone) -> Tone) -> (Vec<i16>, String) {
        let mut s = Signal::new(seed);
        s.silence(30.0);
        let mut expect = String::new();
        for _ in 0..phases {
            for &k in KEYPAD.iter().flatten() {
                s.tone(shape(Tone::key(k))).silence(150.0);
                expect.push(k);
            }
        }
        (s.samples(), expect)
    }

    fn assert_accepts(name: &str, seed: u64, shape: impl Fn(Tone) -> Tone) {
        let (x, expect) = every_key(seed, 3, shape);
        assert_eq!(keys(&x), expect, "{name}: every key accepted once");
    }

    fn assert_rejects(name: &str, seed: u64, shape: impl Fn(Tone) -> Tone) {
        let (x, _) = every_key(seed, 3, shape);
        assert_eq!(keys(&x), "", "{name}: no key accepted");
    }

    #[test]
    fn all_sixteen_keys() {
        let mut s = Signal::new(1);
        s.silence(50.0);
        for &k in KEYPAD.iter().flatten() {
            s.tone(Tone::key(k)).silence(60.0);
        }
        assert_eq!(keys(&s.samples()), "123A456B789C*0#D");
    }

    #[test]
    fn q24_frequency_deviation_within_1_5_percent_is_accepted() {
        for (i, (dl, dh)) in [
            (0.015, 0.0),
            (-0.015, 0.0),
            (0.0, 0.015),
            (0.0, -0.015),
            (0.015, -0.015),
            (-0.015, 0.015),
        ]
        .into_iter()
        .enumerate()
        {
            assert_accepts(
                &format!("deviation {dl:+} / {dh:+}"),
                10 + i as u64,
                |mut t| {
                    t.dev_low = dl;
                    t.dev_high = dh;
                    t
                },
            );
        }
    }

    #[test]
    fn q24_frequency_deviation_of_3_5_percent_is_rejected() {
        for (i, (dl, dh)) in [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035)]
            .into_iter()
            .enumerate()
        {
            assert_rejects(
                &format!("deviation {dl:+} / {dh:+}"),
                20 + i as u64,
                |mut t| {
                    t.dev_low = dl;
                    t.dev_high = dh;
                    t
                },
            );
        }
        // Further off is rejected too (the phase reading is unambiguous to
        // ±100 Hz; beyond that the window itself does not see the tone).
        // Not beyond 6 %: the groups' frequencies are ~10 % apart, so a key
        // shifted 8 % is another key shifted ~2 %.
        for (i, dev) in [0.05, -0.05, 0.06, -0.06].into_iter().enumerate() {
            assert_rejects(
                &format!("deviation {dev:+} both"),
                30 + i as u64,
                |mut t| {
                    t.dev_low = dev;
                    t.dev_high = dev;
                    t
                },
            );
        }
    }

    #[test]
    fn q24_durations_40_ms_accepted_20_ms_rejected() {
        assert_accepts("40 ms", 40, |mut t| {
            t.ms = 40.0;
            t
        });
        assert_rejects("20 ms", 41, |mut t| {
            t.ms = 20.0;
            t
        });
        assert_rejects("23 ms", 42, |mut t| {
            t.ms = 23.0;
            t
        });
    }

    #[test]
    fn q24_40_ms_pauses_separate_digits_including_repeats() {
        for (seed, keys_in) in [(50, "1111"), (51, "5555"), (52, "159D"), (53, "*0#A")] {
            let mut s = Signal::new(seed);
            s.silence(30.0);
            for k in keys_in.chars() {
                s.tone(Tone {
                    ms: 40.0,
                    ..Tone::key(k)
                })
                .silence(40.0);
            }
            s.silence(100.0);
            assert_eq!(keys(&s.samples()), keys_in, "40 ms on / 40 ms off");
        }
    }

    #[test]
    fn a_held_key_is_one_digit_and_a_pressed_again_key_is_two() {
        let mut s = Signal::new(55);
        s.silence(30.0)
            .tone(Tone {
                ms: 1500.0,
                ..Tone::key('7')
            })
            .silence(200.0);
        s.tone(Tone::key('7'))
            .silence(200.0)
            .tone(Tone::key('7'))
            .silence(100.0);
        assert_eq!(keys(&s.samples()), "777");
    }

    #[test]
    fn q24_twist_limits_accepted_exactly_and_beyond_rejected() {
        assert_accepts("twist +4.0 dB", 60, |mut t| {
            t.twist_db = 4.0;
            t
        });
        assert_accepts("twist -8.0 dB", 61, |mut t| {
            t.twist_db = -8.0;
            t
        });
        // At the limits with the weaker tone at -25 dBm0 too.
        assert_accepts("twist +4.0 dB, low at -25 dBm0", 62, |mut t| {
            t.low_dbm0 = -25.0;
            t.twist_db = 4.0;
            t
        });
        assert_accepts("twist -8.0 dB, high at -25 dBm0", 63, |mut t| {
            t.low_dbm0 = -17.0;
            t.twist_db = -8.0;
            t
        });
        assert_rejects("twist +6 dB", 64, |mut t| {
            t.twist_db = 6.0;
            t
        });
        assert_rejects("twist -10 dB", 65, |mut t| {
            t.twist_db = -10.0;
            t
        });
    }

    #[test]
    fn q24_levels_0_to_minus_25_dbm0_accepted_weak_rejected() {
        assert_accepts("0 dBm0 per tone", 70, |mut t| {
            t.low_dbm0 = 0.0;
            t
        });
        assert_accepts("-25 dBm0 per tone", 71, |mut t| {
            t.low_dbm0 = -25.0;
            t
        });
        assert_rejects("-35 dBm0 per tone", 72, |mut t| {
            t.low_dbm0 = -35.0;
            t
        });
        assert_rejects("-45 dBm0 per tone", 73, |mut t| {
            t.low_dbm0 = -45.0;
            t
        });
    }

    #[test]
    fn works_at_15_db_snr_and_noise_alone_gives_nothing() {
        let (mut x, expect): (Vec<f64>, String) = {
            let mut s = Signal::new(80);
            s.silence(30.0);
            let mut e = String::new();
            for _ in 0..3 {
                for &k in KEYPAD.iter().flatten() {
                    s.tone(Tone::key(k)).silence(150.0);
                    e.push(k);
                }
            }
            (s.x.clone(), e)
        };
        // Both tones at -10 dBm0: the pair's power is twice one tone's.
        let power = 2.0 * amplitude(-10.0).powi(2) / 2.0;
        add_white_noise(&mut x, power, 15.0, &mut Rng(81));
        let q: Vec<i16> = x
            .iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        assert_eq!(keys(&q), expect);
        let mut noise = vec![0.0; 8000 * 5];
        add_white_noise(&mut noise, power, 0.0, &mut Rng(82));
        let q: Vec<i16> = noise
            .iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        assert_eq!(keys(&q), "", "loud white noise alone");
    }

    #[test]
    fn a_key_masked_at_its_start_is_found_once_when_the_masking_stops() {
        // A loud voice-like hum (three low partials) over the first 35 ms
        // of a 100 ms key: each window still passes, but the first runs
        // carry too little of the energy to confirm (doubtful, as a burst
        // of speech over a key is). The key must not be held as refused:
        // once the hum stops, it is found, once.
        let tone = Tone {
            ms: 100.0,
            ..Tone::key('1')
        };
        // Each partial a third of 0.62 times the pair's power: the pair
        // then carries 1 / 1.62 = 62 % of the energy.
        let pair_power = 2.0 * amplitude(tone.low_dbm0).powi(2) / 2.0;
        let a = (2.0 * pair_power * 0.62 / 3.0).sqrt();
        let mut s = Signal::new(91);
        let mut expect = String::new();
        for _ in 0..3 {
            for &k in KEYPAD.iter().flatten() {
                s.silence(150.0);
                let at = s.x.len();
                s.tone(Tone { key: k, ..tone });
                for (i, v) in s.x[at..at + 35 * 8].iter_mut().enumerate() {
                    let t = i as f64 / 8000.0;
                    for hz in [150.0, 300.0, 450.0] {
                        *v += a * (std::f64::consts::TAU * hz * t).sin();
                    }
                }
                expect.push(k);
            }
        }
        assert_eq!(keys(&s.samples()), expect);
    }

    #[test]
    fn tones_survive_the_g711_round_trip() {
        use crate::media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};
        for (name, level) in [("nominal", -10.0), ("weak", -25.0), ("strong", 0.0)] {
            let (x, expect) = every_key(90, 2, |mut t| {
                t.low_dbm0 = level;
                t
            });
            let mu: Vec<i16> = x.iter().map(|&v| ulaw_decode(ulaw_encode(v))).collect();
            let a: Vec<i16> = x.iter().map(|&v| alaw_decode(alaw_encode(v))).collect();
            assert_eq!(keys(&mu), expect, "{name} through mu-law");
            assert_eq!(keys(&a), expect, "{name} through A-law");
        }
    }

    #[test]
    fn feeding_in_any_chunk_size_gives_identical_digits() {
        let mut s = Signal::new(100);
        s.silence(13.0);
        for k in "0123456789*#ABCD".chars() {
            s.tone(Tone {
                ms: 45.0,
                ..Tone::key(k)
            })
            .silence(47.0);
        }
        let x = s.samples();
        let reference = detect_chunked(&x, 160);
        assert_eq!(
            reference.iter().map(|d| d.key).collect::<String>(),
            "0123456789*#ABCD"
        );
        for chunk in [1, 7, 333, 4000] {
            assert_eq!(detect_chunked(&x, chunk), reference, "chunks of {chunk}");
        }
    }

    #[test]
    fn onset_is_estimated_within_10_ms() {
        let mut rng = Rng(110);
        for &k in KEYPAD.iter().flatten() {
            for _ in 0..4 {
                // Start anywhere relative to the 5 ms sub-blocks.
                let lead = 20.0 + rng.uniform() * 30.0;
                let mut s = Signal::new(rng.next_u64());
                s.silence(lead).tone(Tone::key(k)).silence(100.0);
                let got = detect_chunked(&s.samples(), 160);
                assert_eq!(got.len(), 1, "key {k}");
                let onset = (lead * 8.0).round() as i64;
                let err = got[0].start_sample as i64 - onset;
                assert!(
                    err.abs() <= 80,
                    "key {k}: onset {} vs {onset}",
                    got[0].start_sample
                );
                assert_eq!(got[0].duration_samples, None);
            }
        }
    }

    #[test]
    fn tone_present_before_confirmation_and_samples_are_counted() {
        let mut s = Signal::new(120);
        s.silence(20.0)
            .tone(Tone {
                ms: 200.0,
                ..Tone::key('9')
            })
            .silence(200.0);
        let x = s.samples();
        let mut d = InbandDetector::new();
        let mut first_present = None;
        let mut confirmed_at = None;
        for (i, f) in x.chunks(40).enumerate() {
            d.process(f);
            if d.tone_present() && first_present.is_none() {
                first_present = Some(i);
            }
            if let Some(digit) = d.poll_digit() {
                assert_eq!(digit.key, '9');
                confirmed_at = Some(i);
            }
        }
        let (p, c) = (
            first_present.expect("present"),
            confirmed_at.expect("digit"),
        );
        assert!(p < c, "present at chunk {p}, confirmed at {c}");
        assert!(!d.tone_present(), "gone after 200 ms of silence");
        assert_eq!(d.samples_seen(), x.len() as u64);
        d.reset();
        assert_eq!(d.samples_seen(), 0);
        assert_eq!(d.poll_digit(), None);
    }

    #[test]
    fn digits_wait_in_order_until_polled() {
        let mut s = Signal::new(130);
        s.silence(20.0);
        for k in "31415926".chars() {
            s.tone(Tone::key(k)).silence(80.0);
        }
        let mut d = InbandDetector::new();
        d.process(&s.samples());
        let got: String = std::iter::from_fn(|| d.poll_digit())
            .map(|x| x.key)
            .collect();
        assert_eq!(got, "31415926");
    }

    #[test]
    fn shipped_prompts_give_no_digits() {
        use crate::media::g711::{ulaw_decode, ulaw_encode};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("prompts folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "wav") {
                continue;
            }
            let prompt = crate::media::prompt::Prompt::from_file(&path).expect("prompt loads");
            let x = prompt.samples();
            assert_eq!(keys(x), "", "{}", path.display());
            let mu: Vec<i16> = x.iter().map(|&v| ulaw_decode(ulaw_encode(v))).collect();
            assert_eq!(keys(&mu), "", "{} through mu-law", path.display());
            n += 1;
        }
        assert!(n >= 30, "all shipped prompts were checked ({n})");
    }

    #[test]
    fn a_dtmf_free_chord_and_a_single_tone_give_nothing() {
        let mut x = vec![0.0f64; 8000 * 2];
        for (i, v) in x.iter_mut().enumerate() {
            let t = i as f64 / 8000.0;
            // A 697 Hz tone alone, then with a 1209 Hz partner 20 dB down
            // plus its harmonics (a sawtooth-like note).
            *v = amplitude(-10.0) * (std::f64::consts::TAU * 697.0 * t).sin();
            if i >= 8000 {
                for k in 2..6 {
                    *v += amplitude(-10.0) / k as f64
                        * (std::f64::consts::TAU * 697.0 * k as f64 * t).sin();
                }
                *v += amplitude(-12.0) * (std::f64::consts::TAU * 1209.0 * t).sin();
            }
        }
        let q: Vec<i16> = x.iter().map(|v| v.round() as i16).collect();
        assert_eq!(keys(&q), "");
    }

    #[test]
    fn window_gain_matches_a_direct_dft() {
        // The scalloping correction used for twist must agree with the
        // window's real response to an off-bin tone.
        // Offsets up to 1.5 % of the highest tone (24.5 Hz).
        for &offset in &[0.0f32, 5.0, 12.0, 18.0, 24.5] {
            let mut d = InbandDetector::new();
            let f = f64::from(LOW_HZ[1] + offset);
            let x: Vec<i16> = (0..(SUB * WINDOW_SUBS))
                .map(|n| (10000.0 * (std::f64::consts::TAU * f * n as f64 / 8000.0).cos()) as i16)
                .collect();
            d.process(&x);
            let p = InbandDetector::power(d.window_value(1, 0));
            let expect = 10000.0f32 * 10000.0 / 2.0 * window_gain_sqr(offset);
            assert!(
                (p / expect - 1.0).abs() < 0.03,
                "offset {offset}: {p} vs {expect}"
            );
        }
    }
}
