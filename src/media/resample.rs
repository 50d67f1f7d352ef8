//! Sample-rate conversion of prompt audio to the 8 kHz of G.711.
//!
//! Prompts arrive at whatever rate the recording tool used (44.1 kHz,
//! 48 kHz, 16 kHz, ...). Decimating by dropping samples would fold
//! everything between 4 kHz and the input's Nyquist frequency back into
//! the telephone band as audible aliasing, so the conversion low-pass
//! filters first. This runs once per prompt at start-up: it favours a
//! filter that is obviously right over one that is fast, while staying
//! well under a second for a minute of 48 kHz audio.
//!
//! # Method
//!
//! A windowed-sinc interpolator evaluated at each output instant. Output
//! sample `n` sits at input time `t = n * in_rate / 8000` (in input
//! samples) and is `sum_k x[k] * h(t - k)`, where `h` is a sinc low-pass
//! with a Kaiser window. Because every rate is an integer, `t` only takes
//! `L = 8000 / gcd(in_rate, 8000)` distinct fractional parts, so the kernel
//! is precomputed once per fractional part ("phase") and each output sample
//! is a dot product. For the usual rates `L` is small (1 for 16/48/96 kHz,
//! 80 for 44.1 kHz, 320 for 11.025 kHz) and the phases are exact. Odd
//! rates can have thousands of phases (`L = 8000` for 47999 Hz); rather
//! than tabulate them all, the kernel is then tabulated at a few hundred
//! evenly spaced fractions and each output is interpolated linearly
//! between the two neighbouring phases, an error far below 16-bit
//! resolution because the kernel is smooth at that scale.
//!
//! # Filter
//!
//! Let `low = min(in_rate, 8000)`. The passband reaches `0.425 * low`
//! (3400 Hz, the top of the classic telephone band, when downsampling) and
//! the stopband starts at `0.5 * low` (4 kHz), with the sinc cut-off in the
//! middle (`0.4625 * low`, 3700 Hz). The Kaiser window is designed for
//! 80 dB of stopband attenuation, so nothing above 4 kHz survives at more
//! than -80 dB, and the passband ripple is of the same tiny order
//! (~0.001 dB). When upsampling (`in_rate < 8000`) the same filter
//! removes the spectral images above the input's Nyquist frequency.
//!
//! # Time alignment
//!
//! The kernel is symmetric and centred on each output instant, so the
//! filter has zero phase: there is no group delay to compensate, and output
//! sample `n` corresponds exactly to time `n / 8000` s of the input
//! (input sample 0 and output sample 0 are the same instant). Samples
//! before the start and after the end of the input count as silence, so
//! the first and last few milliseconds are the filter's ramp of whatever
//! the signal does there.

/// The rate every prompt is converted to, in Hz.
pub const OUTPUT_RATE: u32 = 8000;

/// Stopband attenuation the Kaiser window is designed for, in dB.
const ATTENUATION_DB: f64 = 80.0;
/// Passband edge as a fraction of the lower of the two rates.
const PASS_EDGE: f64 = 0.425;
/// Stopband edge as a fraction of the lower of the two rates (its Nyquist).
const STOP_EDGE: f64 = 0.5;
/// Largest coefficient table tabulated exactly; beyond it the phases are
/// interpolated (see the module documentation).
const MAX_TABLE_COEFFS: usize = 1 << 17;
/// Fewest phases used when interpolating.
const MIN_INTERPOLATED_PHASES: usize = 64;

/// Converts mono samples at `input_rate` Hz to 8 kHz.
///
/// The output has `round(input.len() * 8000 / input_rate)` samples and is
/// time-aligned with the input (see the module documentation). At 8000 Hz
/// the samples are copied unchanged; there is no filtering. Samples are
/// expected in `[-1.0, 1.0]`; the filter can overshoot that slightly near
/// full-scale transients, so callers quantizing to integers must clamp.
/// An `input_rate` of 0 yields no samples.
///
/// The cost is proportional to the number of output samples times
/// `input_rate / 8000` (the filter is longer for higher input rates).
pub fn to_8k(input: &[f32], input_rate: u32) -> Vec<f32> {
    if input_rate == OUTPUT_RATE {
        return input.to_vec();
    }
    if input_rate == 0 || input.is_empty() {
        return Vec::new();
    }
    Polyphase::design(input_rate, OUTPUT_RATE).run(input)
}

/// The number of output samples for `len` input samples: the duration,
/// rounded to the nearest output sample.
fn output_len(len: usize, in_rate: u64, out_rate: u64) -> usize {
    let scaled = len as u128 * out_rate as u128 + in_rate as u128 / 2;
    (scaled / in_rate as u128) as usize
}

/// A windowed-sinc kernel tabulated for evenly spaced fractional output
/// positions ("phases").
struct Polyphase {
    /// Output instant `n` is at input time `n * m / l`.
    l: u64,
    m: u64,
    /// Number of phases. When `exact`, `phases == l` and the fraction
    /// `r / l` of an output instant is phase `r`. Otherwise row `p` is the
    /// fraction `p / phases`, and there is one extra row for the fraction
    /// 1.0 so that every fraction has a row on either side.
    phases: u64,
    exact: bool,
    /// Kernel half-width in input samples; each row has `2 * half` taps.
    half: usize,
    /// Rows of `2 * half` coefficients. In the row for fraction `f`,
    /// coefficient `i` weighs input sample `floor(t) - half + 1 + i`.
    coeffs: Vec<f32>,
}

impl Polyphase {
    fn design(in_rate: u32, out_rate: u32) -> Polyphase {
        let g = gcd(in_rate, out_rate);
        let (l, m) = ((out_rate / g) as u64, (in_rate / g) as u64);

        let in_hz = in_rate as f64;
        let low = in_rate.min(out_rate) as f64;
        let cutoff = 0.5 * (PASS_EDGE + STOP_EDGE) * low / in_hz; // cycles per input sample
        let transition = (STOP_EDGE - PASS_EDGE) * low / in_hz;

        // Kaiser's estimates for window shape and length.
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let length = (ATTENUATION_DB - 7.95) / (2.285 * 2.0 * std::f64::consts::PI * transition);
        let half = ((length / 2.0).ceil() as usize).max(1);
        let taps = 2 * half;

        let exact = l.saturating_mul(taps as u64) <= MAX_TABLE_COEFFS as u64;
        let (phases, rows) = if exact {
            (l, l)
        } else {
            let p = (MAX_TABLE_COEFFS / taps).max(MIN_INTERPOLATED_PHASES) as u64;
            (p, p + 1)
        };

        let i0_beta = bessel_i0(beta);
        let kernel = |tau: f64| -> f64 {
            let x = tau / half as f64;
            if x.abs() >= 1.0 {
                return 0.0;
            }
            let window = bessel_i0(beta * (1.0 - x * x).sqrt()) / i0_beta;
            2.0 * cutoff * sinc(2.0 * cutoff * tau) * window
        };

        let mut coeffs = Vec::with_capacity(rows as usize * taps);
        let mut row = vec![0f64; taps];
        for p in 0..rows {
            let frac = p as f64 / phases as f64;
            for (i, c) in row.iter_mut().enumerate() {
                *c = kernel(frac + (half as f64 - 1.0) - i as f64);
            }
            // Unity gain at DC for every phase, so a constant input gives a
            // constant output instead of a faint ripple at the phase rate.
            let sum: f64 = row.iter().sum();
            coeffs.extend(row.iter().map(|c| (c / sum) as f32));
        }

        Polyphase {
            l,
            m,
            phases,
            exact,
            half,
            coeffs,
        }
    }

    fn row(&self, p: u64) -> &[f32] {
        let taps = 2 * self.half;
        let start = p as usize * taps;
        &self.coeffs[start..start + taps]
    }

    fn run(&self, input: &[f32]) -> Vec<f32> {
        let out_len = output_len(input.len(), self.m, self.l);
        let mut out = Vec::with_capacity(out_len);
        for n in 0..out_len as u64 {
            // Position in units of 1/l input samples.
            let pos = n * self.m;
            let (base, rem) = (pos / self.l, pos % self.l);
            let start = base as i64 - self.half as i64 + 1;
            let y = if self.exact {
                dot_zero_padded(input, start, self.row(rem))
            } else {
                // Between rows p and p + 1, at weight w from row p. Linear
                // in the coefficients, so it can be done on the outputs.
                let scaled = rem * self.phases;
                let (p, w) = (scaled / self.l, (scaled % self.l) as f32 / self.l as f32);
                let a = dot_zero_padded(input, start, self.row(p));
                let b = dot_zero_padded(input, start, self.row(p + 1));
                a + (b - a) * w
            };
            out.push(y);
        }
        out
    }
}

/// `sum_i x[start + i] * row[i]`, with `x` taken as zero outside its bounds.
fn dot_zero_padded(x: &[f32], start: i64, row: &[f32]) -> f32 {
    let end = start + row.len() as i64;
    if start >= 0 && end <= x.len() as i64 {
        let s = start as usize;
        return dot(&x[s..s + row.len()], row);
    }
    // Near the edges: clip the window to the input.
    let lo = start.max(0);
    let hi = end.min(x.len() as i64);
    if lo >= hi {
        return 0.0;
    }
    let (xs, rs) = (
        (lo as usize)..(hi as usize),
        ((lo - start) as usize)..((hi - start) as usize),
    );
    dot(&x[xs], &row[rs])
}

/// Dot product with eight independent partial sums, which lets the
/// compiler use vector registers (a single running sum would be a chain
/// of dependent additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0, by its power
/// series (converges quickly for the arguments a Kaiser window uses).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        let n = (secs * rate as f64).round() as usize;
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / rate as f64).sin()) as f32)
            .collect()
    }

    /// Amplitude of the `freq` component of `x` (sampled at 8 kHz) by a
    /// single DFT bin. With a window of a whole number of periods any
    /// frequency error shows up as a loss of amplitude.
    fn amplitude_at(x: &[f32], freq: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            let w = 2.0 * PI * freq * i as f64 / 8000.0;
            re += s as f64 * w.cos();
            im -= s as f64 * w.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    /// The middle of an 8 kHz signal, away from the edge ramps; a whole
    /// number of seconds so every test frequency fits exactly.
    fn middle(x: &[f32]) -> &[f32] {
        &x[1000..1000 + 8000]
    }

    #[test]
    fn identity_at_8k() {
        let x: Vec<f32> = (0..1234)
            .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
            .collect();
        assert_eq!(to_8k(&x, 8000), x);
    }

    #[test]
    fn empty_and_zero_rate() {
        assert!(to_8k(&[], 48000).is_empty());
        assert!(to_8k(&[0.5; 100], 0).is_empty());
    }

    #[test]
    fn output_length_is_rounded_duration() {
        for rate in [
            6000, 8001, 11025, 16000, 22050, 32000, 44100, 47999, 48000, 96000,
        ] {
            for len in [1usize, 2, 5, 99, 441, 1000, 12345] {
                let got = to_8k(&vec![0.1; len], rate).len() as f64;
                let want = (len as f64 * 8000.0 / rate as f64).round();
                assert!(
                    (got - want).abs() <= 1.0,
                    "rate {rate} len {len}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn one_khz_keeps_amplitude_frequency_and_timing() {
        for rate in [
            11025, 16000, 22050, 44100, 48000, 96000, 6000, 47999, 8001, 6001,
        ] {
            let y = to_8k(&sine(1000.0, rate, 1.5, 0.5), rate);
            let mid = middle(&y);
            let gain = db(amplitude_at(mid, 1000.0) / 0.5);
            assert!(gain.abs() < 0.2, "rate {rate}: gain {gain:.4} dB");
            // Time alignment: output n is the input at n / 8000 s, with no
            // delay, so it matches the ideal 8 kHz sine sample by sample.
            for (i, &s) in y.iter().enumerate().skip(1000).take(8000) {
                let ideal = 0.5 * (2.0 * PI * 1000.0 * i as f64 / 8000.0).sin();
                assert!(
                    (s as f64 - ideal).abs() < 1e-3,
                    "rate {rate} sample {i}: {s} vs {ideal}"
                );
            }
        }
    }

    #[test]
    fn passband_is_flat_to_3400_hz() {
        for rate in [44100, 48000, 16000] {
            for f in [300.0, 2000.0, 3000.0, 3400.0] {
                let y = to_8k(&sine(f, rate, 1.5, 0.5), rate);
                let gain = db(amplitude_at(middle(&y), f) / 0.5);
                assert!(gain.abs() < 0.2, "rate {rate} {f} Hz: {gain:.4} dB");
            }
        }
    }

    #[test]
    fn content_above_4khz_is_attenuated_50db() {
        for rate in [48000, 44100, 16000, 96000, 11025, 47999, 44101] {
            for f in [4000.0, 4500.0, 5000.0, 7000.0] {
                if f >= rate as f64 / 2.0 {
                    continue;
                }
                let y = to_8k(&sine(f, rate, 1.5, 0.5), rate);
                let att = db(rms(middle(&y)) / (0.5 / 2f64.sqrt()));
                assert!(att <= -50.0, "rate {rate} {f} Hz: {att:.1} dB");
            }
        }
    }

    #[test]
    fn upsampling_rejects_images() {
        // A 2 kHz tone at 6 kHz has its first image at 4 kHz: it must not
        // appear in the 8 kHz output.
        let y = to_8k(&sine(2000.0, 6000, 1.5, 0.5), 6000);
        let mid = middle(&y);
        assert!(db(amplitude_at(mid, 2000.0) / 0.5).abs() < 0.2);
        assert!(db(amplitude_at(mid, 4000.0) / 0.5) < -50.0);
    }

    #[test]
    fn impulse_lands_on_its_own_instant() {
        // An impulse at input time 0.25 s peaks at output sample 2000.
        for rate in [16000, 44100, 48000, 6000] {
            let mut x = vec![0f32; rate as usize / 2];
            x[rate as usize / 4] = 1.0;
            let y = to_8k(&x, rate);
            let peak = (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b]));
            assert_eq!(peak, Some(2000), "rate {rate}");
            // Symmetric around the peak: zero phase.
            for k in 1..20 {
                assert!(
                    (y[2000 - k] - y[2000 + k]).abs() < 1e-6,
                    "rate {rate} k {k}"
                );
            }
        }
    }

    #[test]
    fn dc_passes_at_unity_gain() {
        for rate in [11025, 44100, 48000, 6000, 47999] {
            let y = to_8k(&vec![0.25; rate as usize], rate);
            for &s in &y[100..y.len() - 100] {
                assert!((s - 0.25).abs() < 1e-5, "rate {rate}: {s}");
            }
        }
    }

    #[test]
    fn common_rates_use_exact_phases_odd_rates_interpolate() {
        for rate in [6000, 11025, 16000, 22050, 32000, 44100, 48000, 96000] {
            assert!(Polyphase::design(rate, OUTPUT_RATE).exact, "{rate}");
        }
        for rate in [6001, 8001, 44101, 47999] {
            let p = Polyphase::design(rate, OUTPUT_RATE);
            assert!(
                !p.exact && p.coeffs.len() <= MAX_TABLE_COEFFS + 2 * p.half,
                "{rate}"
            );
        }
    }

    #[test]
    fn bessel_i0_known_values() {
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-12);
        assert!((bessel_i0(8.0) - 427.564_115_721_804_74).abs() < 1e-9);
    }
}
