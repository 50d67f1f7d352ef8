//! Accuracy report for the in-band DTMF detector: ITU-T Q.24 (AT&T
//! column) conformance, talk-off on an hour of speech and an hour of music,
//! and digits buried in speech at falling signal-to-noise ratios.
//!
//! ```text
//! cargo bench --bench dtmf_accuracy
//! ```
//!
//! Everything is generated here, deterministically: the Q.24 tone sets
//! (16 keys × 8 random phase pairs per criterion, each through linear,
//! mu-law and A-law), speech from Debian's espeak-ng in many voices, speeds
//! and pitches, and music rendered by sox (plucked piano/guitar-like notes,
//! organ, square and sawtooth voices in chords and melodies) plus the
//! shipped hold music. The speech and music are cached under
//! `CARGO_TARGET_TMPDIR/dtmf-material`; without espeak-ng or sox those rows
//! are skipped with a message.
//!
//! `DTMF_MATERIAL_SEED=N` draws different speech, music and key
//! placements (cached separately): the thresholds were tuned on the default
//! material, and another seed shows how they do on material they have not
//! seen. `DTMF_SETS=a,b` limits the report to sets whose names start so.
//!
//! `DTMF_DUMP_DIR=dir` also writes every set as raw 8 kHz s16le
//! (`<set>.raw`), its expected digits per slot (`<set>.cases`: `start end
//! digits`, `-` for none) and `sets.tsv`, so other detectors can be run on
//! exactly the same material; `benches/spandsp/compare.sh` does that for
//! spandsp's `dtmf_rx`. When `<set>.spandsp` files (`sample digit` per
//! line) are present there, the table shows spandsp's column beside ours.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use pinbridge::media::dtmf::inband::{InbandDetector, DBM0_AMPLITUDE};
use pinbridge::media::g711;
use pinbridge::media::prompt::Prompt;

const RATE: f64 = 8000.0;
const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Random phase pairs per key and criterion.
const PHASES: usize = 8;

// ------------------------------------------------------------ signals ---

/// SplitMix64: deterministic phases, noise and layouts.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn amplitude(dbm0: f64) -> f64 {
    f64::from(DBM0_AMPLITUDE) * 10f64.powf(dbm0 / 20.0)
}

fn all_keys() -> impl Iterator<Item = (usize, usize, char)> {
    (0..4).flat_map(|r| (0..4).map(move |c| (r, c, KEYPAD[r][c])))
}

#[derive(Clone, Copy)]
struct Tone {
    row: usize,
    col: usize,
    dev_low: f64,
    dev_high: f64,
    low_dbm0: f64,
    twist_db: f64,
    ms: f64,
}

impl Tone {
    fn new(row: usize, col: usize) -> Tone {
        Tone {
            row,
            col,
            dev_low: 0.0,
            dev_high: 0.0,
            low_dbm0: -10.0,
            twist_db: 0.0,
            ms: 50.0,
        }
    }

    /// Mean power of the pair, in squared sample units.
    fn power(&self) -> f64 {
        let (a, b) = (
            amplitude(self.low_dbm0),
            amplitude(self.low_dbm0 + self.twist_db),
        );
        (a * a + b * b) / 2.0
    }

    fn render(&self, rng: &mut Rng, out: &mut Vec<f64>) {
        let fl = LOW[self.row] * (1.0 + self.dev_low);
        let fh = HIGH[self.col] * (1.0 + self.dev_high);
        let al = amplitude(self.low_dbm0);
        let ah = amplitude(self.low_dbm0 + self.twist_db);
        let pl = rng.uniform() * std::f64::consts::TAU;
        let ph = rng.uniform() * std::f64::consts::TAU;
        let n = (self.ms * RATE / 1000.0).round() as usize;
        for i in 0..n {
            let t = i as f64 / RATE;
            out.push(
                al * (std::f64::consts::TAU * fl * t + pl).sin()
                    + ah * (std::f64::consts::TAU * fh * t + ph).sin(),
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Noise {
    None,
    White,
    Pink,
}

/// Adds noise of mean power `power` to `x`.
fn add_noise(x: &mut [f64], kind: Noise, power: f64, rng: &mut Rng) {
    if kind == Noise::None {
        return;
    }
    let mut n: Vec<f64> = Vec::with_capacity(x.len());
    let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
    for _ in 0..x.len() {
        let w = rng.gaussian();
        n.push(match kind {
            Noise::White => w,
            // Three one-pole sections approximating a 1/f spectrum.
            _ => {
                b0 = 0.99765 * b0 + w * 0.099_046;
                b1 = 0.963 * b1 + w * 0.296_516_4;
                b2 = 0.57 * b2 + w * 1.052_691_3;
                b0 + b1 + b2 + w * 0.1848
            }
        });
    }
    let p = n.iter().map(|v| v * v).sum::<f64>() / n.len().max(1) as f64;
    let g = (power / p.max(1e-30)).sqrt();
    for (a, b) in x.iter_mut().zip(n) {
        *a += g * b;
    }
}

fn quantise(x: &[f64]) -> Vec<i16> {
    x.iter()
        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Law {
    Linear,
    Mu,
    A,
}

impl Law {
    fn name(self) -> &'static str {
        match self {
            Law::Linear => "lin",
            Law::Mu => "ulaw",
            Law::A => "alaw",
        }
    }

    fn apply(self, x: &mut [i16]) {
        for s in x {
            *s = match self {
                Law::Linear => *s,
                Law::Mu => g711::ulaw_decode(g711::ulaw_encode(*s)),
                Law::A => g711::alaw_decode(g711::alaw_encode(*s)),
            };
        }
    }
}

// -------------------------------------------------------------- sets ---

/// One stretch of a set and the digits expected in it (detections are
/// attributed to the slot in which they are reported).
#[derive(Clone)]
struct Slot {
    start: u64,
    end: u64,
    expect: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Pass rate: a slot passes when exactly its digits are reported.
    Conformance,
    /// False digits per hour.
    TalkOff,
    /// Detection rate and extra digits.
    Buried,
}

struct Set {
    name: String,
    label: String,
    kind: Kind,
    samples: Vec<i16>,
    slots: Vec<Slot>,
}

/// Builds a conformance set: one slot per case, each a group of tones
/// followed by `gap_ms` of silence (plus noise, if any).
fn conformance(
    name: &str,
    label: &str,
    law: Law,
    seed: u64,
    cases: &[(Vec<Tone>, f64, String)],
    noise: (Noise, f64),
) -> Set {
    let mut rng = Rng(seed);
    let mut x = vec![0.0; 800];
    let mut bounds = Vec::new();
    for (tones, pause_ms, expect) in cases {
        let start = x.len() as u64;
        for (i, t) in tones.iter().enumerate() {
            if i > 0 {
                x.extend(std::iter::repeat_n(0.0, (pause_ms * 8.0) as usize));
            }
            t.render(&mut rng, &mut x);
        }
        x.extend(std::iter::repeat_n(0.0, 1600));
        bounds.push((start, x.len() as u64, expect.clone()));
    }
    if noise.0 != Noise::None {
        let p = cases
            .first()
            .and_then(|c| c.0.first())
            .map_or(0.0, Tone::power);
        add_noise(&mut x, noise.0, p / 10f64.powf(noise.1 / 10.0), &mut rng);
    }
    let mut samples = quantise(&x);
    law.apply(&mut samples);
    let slots = bounds
        .into_iter()
        .map(|(start, end, expect)| Slot { start, end, expect })
        .collect();
    Set {
        name: format!("{name}_{}", law.name()),
        label: label.to_string(),
        kind: Kind::Conformance,
        samples,
        slots,
    }
}

/// The Q.24 criteria: (name, label, tone for key and phase index, group
/// size, pause, expected to operate, noise).
fn q24_sets(law: Law) -> Vec<Set> {
    type Shape = fn(Tone, usize) -> Tone;
    /// (set name, label, tone shape, must operate, noise and its SNR).
    type Row = (&'static str, &'static str, Shape, bool, (Noise, f64));
    let rows: Vec<Row> = vec![
        (
            "nominal",
            "nominal (-10 dBm0, 50 ms)",
            |t, _| t,
            true,
            (Noise::None, 0.0),
        ),
        (
            "freq_ok",
            "frequency ±1.5% accept",
            |mut t, i| {
                let (l, h) = [(1.0, 1.0), (-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0)][i % 4];
                t.dev_low = 0.015 * l;
                t.dev_high = 0.015 * h;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "freq_bad",
            "frequency ±3.5% reject",
            |mut t, i| {
                match i % 4 {
                    0 => t.dev_low = 0.035,
                    1 => t.dev_low = -0.035,
                    2 => t.dev_high = 0.035,
                    _ => t.dev_high = -0.035,
                }
                t
            },
            false,
            (Noise::None, 0.0),
        ),
        (
            "dur40",
            "duration 40 ms accept",
            |mut t, _| {
                t.ms = 40.0;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "dur20",
            "duration 20 ms reject",
            |mut t, _| {
                t.ms = 20.0;
                t
            },
            false,
            (Noise::None, 0.0),
        ),
        (
            "twist_p4",
            "twist +4.0 dB accept",
            |mut t, _| {
                t.twist_db = 4.0;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "twist_m8",
            "twist -8.0 dB accept",
            |mut t, _| {
                t.twist_db = -8.0;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "twist_p6",
            "twist +6.0 dB reject",
            |mut t, _| {
                t.twist_db = 6.0;
                t
            },
            false,
            (Noise::None, 0.0),
        ),
        (
            "twist_m10",
            "twist -10.0 dB reject",
            |mut t, _| {
                t.twist_db = -10.0;
                t
            },
            false,
            (Noise::None, 0.0),
        ),
        (
            "level0",
            "level 0 dBm0/tone accept",
            |mut t, _| {
                t.low_dbm0 = 0.0;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "level25",
            "level -25 dBm0/tone accept",
            |mut t, _| {
                t.low_dbm0 = -25.0;
                t
            },
            true,
            (Noise::None, 0.0),
        ),
        (
            "level35",
            "level -35 dBm0/tone reject",
            |mut t, _| {
                t.low_dbm0 = -35.0;
                t
            },
            false,
            (Noise::None, 0.0),
        ),
        (
            "snr15w",
            "15 dB SNR white noise",
            |t, _| t,
            true,
            (Noise::White, 15.0),
        ),
        (
            "snr15p",
            "15 dB SNR pink noise",
            |t, _| t,
            true,
            (Noise::Pink, 15.0),
        ),
    ];
    let mut sets = Vec::new();
    for (seed, (name, label, shape, operate, noise)) in rows.into_iter().enumerate() {
        let mut cases = Vec::new();
        for i in 0..PHASES {
            for (r, c, key) in all_keys() {
                let t = shape(Tone::new(r, c), i);
                let expect = if operate {
                    key.to_string()
                } else {
                    String::new()
                };
                cases.push((vec![t], 0.0, expect));
            }
        }
        sets.push(conformance(
            name,
            label,
            law,
            100 + seed as u64,
            &cases,
            noise,
        ));
    }
    // Pauses: four tones of 40 ms with 40 ms pauses, the same key
    // repeated and four different keys.
    let mut cases = Vec::new();
    let mut rng = Rng(7);
    for i in 0..PHASES {
        for (r, c, key) in all_keys() {
            let mut t = Tone::new(r, c);
            t.ms = 40.0;
            if i % 2 == 0 {
                cases.push((vec![t; 4], 40.0, key.to_string().repeat(4)));
            } else {
                let mut tones = vec![t];
                let mut expect = key.to_string();
                for _ in 0..3 {
                    let (r2, c2) = (rng.below(4), rng.below(4));
                    let mut t2 = Tone::new(r2, c2);
                    t2.ms = 40.0;
                    tones.push(t2);
                    expect.push(KEYPAD[r2][c2]);
                }
                cases.push((tones, 40.0, expect));
            }
        }
    }
    sets.push(conformance(
        "pause40",
        "40 ms on / 40 ms off, 4 digits",
        law,
        99,
        &cases,
        (Noise::None, 0.0),
    ));
    sets
}

// --------------------------------------------------------- material ---

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `DTMF_MATERIAL_SEED=N` (default 0) draws other speech, music and key
/// placements, so thresholds tuned on the default material can be checked
/// on material they were never tuned on.
fn material_seed() -> u64 {
    std::env::var("DTMF_MATERIAL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn material_dir() -> PathBuf {
    let name = match material_seed() {
        0 => "dtmf-material".to_string(),
        n => format!("dtmf-material-seed{n}"),
    };
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::create_dir_all(&d);
    d
}

fn load_8k(path: &Path) -> Option<Vec<i16>> {
    Prompt::from_file(path).ok().map(|p| p.samples().to_vec())
}

fn run(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// Text for the speech: the licence texts every Debian system has, and a
/// built-in paragraph with numbers and IVR phrases if they are missing.
fn corpus() -> Vec<String> {
    let mut words = Vec::new();
    for f in [
        "GPL-3",
        "Apache-2.0",
        "Artistic",
        "MPL-2.0",
        "GFDL-1.3",
        "LGPL-2.1",
    ] {
        if let Ok(t) = std::fs::read_to_string(Path::new("/usr/share/common-licenses").join(f)) {
            words.extend(t.split_whitespace().map(str::to_string));
        }
    }
    if words.len() < 5000 {
        let fallback = "Welcome to the conference line. Please enter the conference code, \
            followed by the hash key. That code is incorrect, please try again. Your \
            meeting starts at nine thirty, the number is four one five, five five five, \
            two six eight nine. Thank you for calling; all of our operators are busy. \
            Press one for sales, two for support, or stay on the line. The quick brown \
            fox jumps over the lazy dog while seventeen sailors sing in the harbour.";
        while words.len() < 20000 {
            words.extend(fallback.split_whitespace().map(str::to_string));
        }
    }
    words
}

/// About an hour of espeak-ng speech in 24 segments, cached.
fn speech_material() -> Option<Vec<(String, Vec<i16>)>> {
    if !have("espeak-ng") || !have("sox") {
        println!(
            "!! espeak-ng or sox missing: speech rows skipped (apt-get install espeak-ng sox)"
        );
        return None;
    }
    let voices = [
        "en-us",
        "en-gb+f3",
        "en-us+m3",
        "en-gb-scotland+f2",
        "en-029+m7",
        "en-us+klatt4",
        "en-gb-x-rp+f5",
        "en-us-nyc+m1",
        "en-us+Annie",
        "en-gb+Alicia",
        "en-us+Andy",
        "en-gb+croak",
        "de+f4",
        "fr+m2",
        "es+f1",
        "it+m5",
        "en-us+klatt2",
        "en-gb+m6",
        "en-us+female2",
        "en-gb-x-gbcwmd+m4",
        "pt+f2",
        "nl+m3",
        "sv+f5",
        "en-us+grandma",
    ];
    let words = corpus();
    let dir = material_dir();
    let mut rng = Rng(2024 + 7919 * material_seed());
    let mut out = Vec::new();
    for (i, v) in voices.iter().enumerate() {
        let speed = 120 + rng.below(100);
        let pitch = 15 + rng.below(75);
        let start = rng.below(words.len().saturating_sub(400).max(1));
        let text = words[start..(start + 380).min(words.len())].join(" ");
        let wav = dir.join(format!("speech_{i:02}.wav"));
        if !wav.exists() {
            let raw = dir.join(format!("speech_{i:02}.22k.wav"));
            let ok = run(Command::new("espeak-ng")
                .args(["-v", v, "-s", &speed.to_string(), "-p", &pitch.to_string()])
                .arg("-w")
                .arg(&raw)
                .arg(&text))
                && run(Command::new("sox")
                    .arg(&raw)
                    .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
                    .arg(&wav)
                    .args(["highpass", "100", "gain", "-n", "-1"]));
            let _ = std::fs::remove_file(&raw);
            if !ok {
                println!("!! espeak-ng voice {v} failed; segment skipped");
                continue;
            }
        }
        if let Some(s) = load_8k(&wav) {
            out.push((format!("{v} {speed}wpm p{pitch}"), s));
        }
    }
    Some(out)
}

/// Note name helpers for sox: MIDI number to frequency.
fn midi_hz(n: u32) -> f64 {
    440.0 * 2f64.powf((f64::from(n) - 69.0) / 12.0)
}

/// About an hour of music in 60 one-minute pieces rendered by sox, cached,
/// plus the shipped hold music.
fn music_material() -> Option<Vec<(String, Vec<i16>)>> {
    if !have("sox") {
        println!("!! sox missing: music rows skipped (apt-get install sox)");
        return None;
    }
    let dir = material_dir();
    let mut out = Vec::new();
    let mut rng = Rng(1963 + 7919 * material_seed());
    // Instruments: plucked string (piano/guitar-like), square, sawtooth,
    // triangle, and an organ (sine with harmonics, as several voices).
    let timbres = ["pluck", "pluck", "square", "sawtooth", "triangle", "organ"];
    for piece in 0..60 {
        let wav = dir.join(format!("music_{piece:02}.wav"));
        let timbre = timbres[piece % timbres.len()];
        let tempo = rng.range(0.18, 0.6);
        // A major or minor scale from a random root, notes MIDI 45..93
        // (110 Hz .. 1760 Hz): the DTMF range is well inside.
        let root = 45 + rng.below(12) as u32;
        let minor = rng.below(2) == 1;
        let steps: [u32; 7] = if minor {
            [0, 2, 3, 5, 7, 8, 10]
        } else {
            [0, 2, 4, 5, 7, 9, 11]
        };
        let scale: Vec<u32> = (0..5)
            .flat_map(|o| steps.iter().map(move |s| root + 12 * o + s))
            .filter(|&n| n <= 93)
            .collect();
        if !wav.exists() {
            let chords = dir.join("chords.wav");
            let melody = dir.join("melody.wav");
            let mut chord_args: Vec<String> = Vec::new();
            let mut t = 0.0;
            while t < 60.0 {
                let len = tempo * (2 + rng.below(3)) as f64;
                let base = rng.below(scale.len().saturating_sub(8).max(1));
                if !chord_args.is_empty() {
                    chord_args.push(":".into());
                }
                chord_args.push("synth".into());
                chord_args.push(format!("{len:.3}"));
                for k in [0usize, 2, 4, 7] {
                    let n = scale[(base + k).min(scale.len() - 1)];
                    voice(&mut chord_args, timbre, midi_hz(n));
                }
                chord_args.extend([
                    "remix".to_string(),
                    "-".to_string(),
                    "fade".to_string(),
                    "q".to_string(),
                    "0.01".to_string(),
                    format!("{len:.3}"),
                    format!("{:.3}", len * 0.3),
                ]);
                t += len;
            }
            let mut mel_args: Vec<String> = Vec::new();
            let mut t = 0.0;
            let mut idx = scale.len() / 2;
            while t < 60.0 {
                let len = tempo * [0.5, 1.0, 1.0, 1.5, 2.0][rng.below(5)];
                let stepv = rng.below(5) as isize - 2;
                idx = (idx as isize + stepv).clamp(0, scale.len() as isize - 1) as usize;
                if !mel_args.is_empty() {
                    mel_args.push(":".into());
                }
                mel_args.push("synth".into());
                mel_args.push(format!("{len:.3}"));
                voice(&mut mel_args, timbre, midi_hz(scale[idx]));
                mel_args.extend([
                    "remix".to_string(),
                    "-".to_string(),
                    "fade".to_string(),
                    "q".to_string(),
                    "0.005".to_string(),
                    format!("{len:.3}"),
                    format!("{:.3}", len * 0.5),
                ]);
                t += len;
            }
            let chans = if timbre == "organ" { "4" } else { "1" };
            let chord_chans = if timbre == "organ" { "16" } else { "4" };
            let ok = run(Command::new("sox")
                .args(["-n", "-r", "8000", "-c", chord_chans, "-b", "16"])
                .arg(&chords)
                .args(&chord_args))
                && run(Command::new("sox")
                    .args(["-n", "-r", "8000", "-c", chans, "-b", "16"])
                    .arg(&melody)
                    .args(&mel_args))
                && run(Command::new("sox")
                    .args(["-m", "-v", "0.6"])
                    .arg(&chords)
                    .args(["-v", "0.8"])
                    .arg(&melody)
                    .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
                    .arg(&wav)
                    .args(["trim", "0", "60", "gain", "-n", "-1"]));
            if !ok {
                println!("!! sox failed on music piece {piece}; skipped");
                continue;
            }
        }
        if let Some(s) = load_8k(&wav) {
            out.push((format!("{timbre} piece {piece}"), s));
        }
    }
    let hold = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/hold_music.wav");
    if let Some(s) = load_8k(&hold) {
        out.push(("prompts/hold_music.wav".into(), s));
    }
    Some(out)
}

/// Appends one note's sox `synth` tones: the timbre's own waveform, or for
/// the organ four sines at harmonics 1–4 (sox mixes them at equal level).
fn voice(args: &mut Vec<String>, timbre: &str, hz: f64) {
    if timbre == "organ" {
        for k in 1..=4 {
            args.push("sine".into());
            args.push(format!("{:.2}", hz * f64::from(k)));
        }
    } else {
        args.push(timbre.into());
        args.push(format!("{hz:.2}"));
    }
}

/// Every shipped prompt, as talk-off material.
fn prompts_material() -> Vec<(String, Vec<i16>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .filter_map(|p| load_8k(&p).map(|s| (p.display().to_string(), s)))
        .collect()
}

fn concat(name: &str, label: &str, kind: Kind, parts: &[(String, Vec<i16>)]) -> Set {
    let mut samples = Vec::new();
    for (_, s) in parts {
        samples.extend_from_slice(s);
        samples.extend(std::iter::repeat_n(0, 800));
    }
    let end = samples.len() as u64;
    Set {
        name: name.into(),
        label: label.into(),
        kind,
        samples,
        slots: vec![Slot {
            start: 0,
            end,
            expect: String::new(),
        }],
    }
}

/// Digits keyed over speech at `snr_db` (tone pair power over the power of
/// the active speech): 70 ms tones, 0.6–1.4 s apart, random keys, twist
/// within ±3 dB, levels −6 to −14 dBm0 per tone.
fn buried(speech: &[(String, Vec<i16>)], snr_db: f64, seed: u64) -> Set {
    let mut rng = Rng(seed);
    let mut x: Vec<f64> = Vec::new();
    for (_, s) in speech.iter().take(8) {
        x.extend(s.iter().map(|&v| f64::from(v)));
    }
    // Active speech power: 20 ms frames above −50 dBm0.
    let floor = amplitude(-50.0).powi(2) / 2.0;
    let (mut sum, mut n) = (0.0, 0usize);
    for f in x.chunks(160) {
        let p = f.iter().map(|v| v * v).sum::<f64>() / f.len() as f64;
        if p > floor {
            sum += p * f.len() as f64;
            n += f.len();
        }
    }
    let speech_power = sum / n.max(1) as f64;
    let mut slots = Vec::new();
    let mut at = 4000usize;
    let mut tone = Vec::new();
    let mut tones = Vec::new();
    while at + 16000 < x.len() {
        let (r, c) = (rng.below(4), rng.below(4));
        let mut t = Tone::new(r, c);
        t.ms = 70.0;
        t.low_dbm0 = rng.range(-14.0, -6.0);
        t.twist_db = rng.range(-3.0, 3.0);
        tone.clear();
        t.render(&mut rng, &mut tone);
        let gap = rng.range(600.0, 1400.0) * 8.0;
        tones.push((at, tone.clone(), t));
        let end = at + gap as usize;
        slots.push(Slot {
            start: at as u64,
            end: end as u64,
            expect: KEYPAD[r][c].to_string(),
        });
        at = end;
    }
    // Scale the speech so each tone sits `snr_db` above it.
    let tone_power = tones.iter().map(|t| t.2.power()).sum::<f64>() / tones.len().max(1) as f64;
    let g = (tone_power / 10f64.powf(snr_db / 10.0) / speech_power.max(1e-9)).sqrt();
    for v in &mut x {
        *v *= g;
    }
    for (at, t, _) in &tones {
        for (i, v) in t.iter().enumerate() {
            x[at + i] += v;
        }
    }
    if let Some(last) = slots.last_mut() {
        last.end = x.len() as u64;
    }
    Set {
        name: format!("buried_{}db", snr_db as i32),
        label: format!("digits in speech, {snr_db} dB SNR"),
        kind: Kind::Buried,
        samples: quantise(&x),
        slots,
    }
}

// ---------------------------------------------------------- scoring ---

/// Runs our detector over a set: (reported-at sample, key) per digit.
fn run_ours(samples: &[i16]) -> Vec<(u64, char)> {
    let mut d = InbandDetector::new();
    let mut out = Vec::new();
    for f in samples.chunks(160) {
        d.process(f);
        while let Some(x) = d.poll_digit() {
            out.push((d.samples_seen(), x.key));
        }
    }
    out
}

/// Reads another detector's output: `sample digit` per line.
fn read_external(path: &Path) -> Option<Vec<(u64, char)>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let pos = it.next()?.parse().ok()?;
                let key = it.next()?.chars().next()?;
                Some((pos, key.to_ascii_uppercase()))
            })
            .collect(),
    )
}

struct Score {
    /// Conformance: slots passed / slots. TalkOff: digits, hours.
    /// Buried: detected, expected, extra.
    a: f64,
    b: f64,
    c: f64,
}

fn score(set: &Set, found: &[(u64, char)]) -> Score {
    let mut per_slot = vec![String::new(); set.slots.len()];
    for &(pos, key) in found {
        // A digit belongs to the slot in which it is reported. Every
        // conformance slot ends with 200 ms of silence, so even a detector
        // that reports at the end of a tone stays in its slot.
        if let Some(i) = set.slots.iter().position(|s| pos >= s.start && pos < s.end) {
            per_slot[i].push(key);
        }
    }
    match set.kind {
        Kind::Conformance => {
            let pass = set
                .slots
                .iter()
                .zip(&per_slot)
                .filter(|(s, got)| s.expect == **got)
                .count();
            Score {
                a: pass as f64,
                b: set.slots.len() as f64,
                c: 0.0,
            }
        }
        Kind::TalkOff => Score {
            a: found.len() as f64,
            b: set.samples.len() as f64 / RATE / 3600.0,
            c: 0.0,
        },
        Kind::Buried => {
            let mut detected = 0;
            let mut extra = 0;
            for (s, got) in set.slots.iter().zip(&per_slot) {
                let want = s.expect.chars().next().unwrap_or('?');
                if got.contains(want) {
                    detected += 1;
                    extra += got.chars().count() - 1;
                } else {
                    extra += got.chars().count();
                }
            }
            Score {
                a: detected as f64,
                b: set.slots.len() as f64,
                c: extra as f64,
            }
        }
    }
}

fn cell(set: &Set, s: &Score) -> String {
    match set.kind {
        Kind::Conformance => format!("{:5.1}% ({:.0}/{:.0})", 100.0 * s.a / s.b, s.a, s.b),
        Kind::TalkOff => format!("{:.0} in {:.2} h = {:.1}/h", s.a, s.b, s.a / s.b.max(1e-9)),
        Kind::Buried => format!(
            "{:5.1}% ({:.0}/{:.0}), {:.0} extra",
            100.0 * s.a / s.b,
            s.a,
            s.b,
            s.c
        ),
    }
}

fn dump(dir: &Path, sets: &[Set]) {
    let _ = std::fs::create_dir_all(dir);
    let mut manifest = String::new();
    for set in sets {
        let bytes: Vec<u8> = set.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let _ = std::fs::write(dir.join(format!("{}.raw", set.name)), bytes);
        let mut cases = String::new();
        for s in &set.slots {
            let e = if s.expect.is_empty() { "-" } else { &s.expect };
            let _ = writeln!(cases, "{} {} {}", s.start, s.end, e);
        }
        let _ = std::fs::write(dir.join(format!("{}.cases", set.name)), cases);
        let _ = writeln!(manifest, "{}\t{}", set.name, set.label);
    }
    let _ = std::fs::write(dir.join("sets.tsv"), manifest);
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`; the
    // report generates an hour of speech and music, so it runs only when
    // asked for.
    if !std::env::args().any(|a| a == "--bench") {
        println!("DTMF accuracy report: run it with `cargo bench --bench dtmf_accuracy`");
        return;
    }
    let mut sets = Vec::new();
    for law in [Law::Linear, Law::Mu, Law::A] {
        sets.extend(q24_sets(law));
    }
    sets.push(concat(
        "prompts",
        "talk-off: shipped prompts",
        Kind::TalkOff,
        &prompts_material(),
    ));
    let speech = speech_material();
    if let Some(speech) = &speech {
        sets.push(concat(
            "speech",
            "talk-off: espeak-ng speech",
            Kind::TalkOff,
            speech,
        ));
    }
    if let Some(music) = music_material() {
        sets.push(concat(
            "music",
            "talk-off: sox music + hold music",
            Kind::TalkOff,
            &music,
        ));
    }
    if let Some(speech) = &speech {
        for (i, snr) in [20.0, 10.0, 6.0, 3.0].into_iter().enumerate() {
            sets.push(buried(speech, snr, 500 + i as u64 + 7919 * material_seed()));
        }
    }
    let dump_dir = std::env::var_os("DTMF_DUMP_DIR").map(PathBuf::from);
    if let Some(dir) = &dump_dir {
        dump(dir, &sets);
        println!("dumped {} sets to {}", sets.len(), dir.display());
    }
    let external = |set: &Set| {
        dump_dir
            .as_ref()
            .and_then(|d| read_external(&d.join(format!("{}.spandsp", set.name))))
    };
    let with_spandsp = sets.iter().any(|s| external(s).is_some());
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<34} {:<6} {:<34}{}",
        "criterion",
        "law",
        "pinbridge",
        if with_spandsp { "spandsp dtmf_rx" } else { "" }
    );
    let only: Vec<String> = std::env::var("DTMF_SETS")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    for set in &sets {
        if !only.is_empty() && !only.iter().any(|p| set.name.starts_with(p.as_str())) {
            continue;
        }
        let found = run_ours(&set.samples);
        if matches!(set.kind, Kind::TalkOff) {
            // Where the false digits are, to listen to them.
            for (pos, key) in &found {
                println!(
                    "   false {key} in {} at {:.2} s",
                    set.name,
                    *pos as f64 / RATE
                );
            }
        }
        let ours = score(set, &found);
        let law = set
            .name
            .rsplit('_')
            .next()
            .filter(|l| ["lin", "ulaw", "alaw"].contains(l));
        let theirs = external(set).map(|f| cell(set, &score(set, &f)));
        let _ = writeln!(
            table,
            "{:<34} {:<6} {:<34}{}",
            set.label,
            law.unwrap_or("lin"),
            cell(set, &ours),
            theirs.unwrap_or_default()
        );
    }
    println!("\n{table}");
}
