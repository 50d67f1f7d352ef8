//! G.711 mu-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T / Sun
//! reference coder.
//!
//! Every byte on the media path goes through here, once per sample, so both
//! directions are plain table lookups:
//!
//! - decoding indexes a 256-entry table of the reference expansion values;
//! - encoding indexes a table built at compile time by a `const fn`. The
//!   reference mu-law coder looks only at the top 14 bits of a sample and the
//!   A-law coder only at the top 13 bits, so tables of 16384 and 8192 bytes
//!   cover every 16-bit input exactly, with no per-sample branch.
//!
//! "Bit-exact" means the same bytes as the Sun `g711.c` reference (and the
//! `lin2ulaw` / `lin2alaw` helpers in the interop tools), including its
//! asymmetries: mu-law maps `-1..=-4` to `0x7E`, not to a negative zero.

use std::fmt;

/// A G.711 codec, as negotiated in SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// mu-law, static RTP payload type 0 (North America, Japan).
    Pcmu,
    /// A-law, static RTP payload type 8 (most of the rest of the world).
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in SDP `a=rtpmap` lines.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Looks up a codec by its SDP encoding name; case-insensitive, as
    /// RFC 4566 says encoding names are.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    /// Maps a static RTP payload type to its codec (0 and 8 only; dynamic
    /// payload types must be resolved through the SDP `rtpmap`).
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The byte that decodes to (near) zero: what to send for silence.
    pub const fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Encodes one 16-bit linear sample.
    #[inline]
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(s),
            Codec::Pcma => alaw_encode(s),
        }
    }

    /// Decodes one byte to a 16-bit linear sample.
    #[inline]
    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(b),
            Codec::Pcma => alaw_decode(b),
        }
    }

    /// Encodes `pcm` into `out`, which must have the same length.
    ///
    /// Does not allocate. If the lengths differ (a caller bug, caught in
    /// debug builds), only the common prefix is encoded.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        debug_assert_eq!(pcm.len(), out.len(), "G.711 encode: length mismatch");
        // The codec is matched once per buffer, not once per sample.
        match self {
            Codec::Pcmu => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = ulaw_encode(s);
                }
            }
            Codec::Pcma => {
                for (o, &s) in out.iter_mut().zip(pcm) {
                    *o = alaw_encode(s);
                }
            }
        }
    }

    /// Decodes `bytes` into `out`, which must have the same length.
    ///
    /// Does not allocate. If the lengths differ (a caller bug, caught in
    /// debug builds), only the common prefix is decoded.
    pub fn decode(self, bytes: &[u8], out: &mut [i16]) {
        debug_assert_eq!(bytes.len(), out.len(), "G.711 decode: length mismatch");
        let table = match self {
            Codec::Pcmu => &ULAW_DECODE,
            Codec::Pcma => &ALAW_DECODE,
        };
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = table[b as usize];
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// Encodes a 16-bit linear sample to mu-law.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    // The top 14 bits as an unsigned index; always < 16384.
    ULAW_ENCODE[(s as u16 >> 2) as usize]
}

/// Decodes a mu-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(b: u8) -> i16 {
    ULAW_DECODE[b as usize]
}

/// Encodes a 16-bit linear sample to A-law.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    // The top 13 bits as an unsigned index; always < 8192.
    ALAW_ENCODE[(s as u16 >> 3) as usize]
}

/// Decodes an A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(b: u8) -> i16 {
    ALAW_DECODE[b as usize]
}

// ------------------------------------------------------------------ tables

/// Index `i` holds the code for every sample whose top 14 bits, read as
/// unsigned, are `i` (so negative samples live in the upper half).
static ULAW_ENCODE: [u8; 1 << 14] = build_ulaw_encode();
/// Index `i` holds the code for every sample whose top 13 bits, read as
/// unsigned, are `i`.
static ALAW_ENCODE: [u8; 1 << 13] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
static ALAW_DECODE: [i16; 256] = build_alaw_decode();

/// Position of the highest set bit of a positive value.
const fn high_bit(x: i32) -> i32 {
    31 - x.leading_zeros() as i32
}

/// mu-law code of a 14-bit sample (`-8192..=8191`).
///
/// Same result as the reference's segment search, written with the
/// position of the highest bit: the biased magnitude `m + 33` lies in
/// `33..=8192`; its segment is `high_bit - 5`, its 4-bit mantissa the bits
/// just below the leading one. Clamping the biased value to `0x1FFF` is the
/// reference's "clip at 8159, overflow to 0x7F".
const fn ulaw_from_14bit(x: i32) -> u8 {
    let (mag, sign) = if x < 0 { (-x, 0x80) } else { (x, 0x00) };
    let mut biased = mag + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    let seg = high_bit(biased) - 5;
    let mant = (biased >> (seg + 1)) & 0x0F;
    // Codes are sent inverted; the sign bit is set for positive samples.
    (((seg << 4) | mant | sign) ^ 0xFF) as u8
}

/// A-law code of a 13-bit sample (`-4096..=4095`).
///
/// Negative samples use the one's complement magnitude `-x - 1`, as the
/// reference does. Segment 0 and 1 share a step of 2; above that the
/// segment is `high_bit - 4`. Even bits are inverted (`^ 0x55`); the sign bit
/// is set for non-negative samples.
const fn alaw_from_13bit(x: i32) -> u8 {
    let (mag, sign) = if x >= 0 { (x, 0x80) } else { (-x - 1, 0x00) };
    let (seg, mant) = if mag < 32 {
        (0, (mag >> 1) & 0x0F)
    } else {
        let seg = high_bit(mag) - 4;
        (seg, (mag >> seg) & 0x0F)
    };
    (((seg << 4) | mant | sign) ^ 0x55) as u8
}

const fn build_ulaw_encode() -> [u8; 1 << 14] {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < t.len() {
        // Sign-extend the 14-bit index back to the sample's top 14 bits.
        let x = ((i << 2) as u16 as i16 as i32) >> 2;
        t[i] = ulaw_from_14bit(x);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 1 << 13] {
    let mut t = [0u8; 1 << 13];
    let mut i = 0;
    while i < t.len() {
        let x = ((i << 3) as u16 as i16 as i32) >> 3;
        t[i] = alaw_from_13bit(x);
        i += 1;
    }
    t
}

/// The reference `ulaw2linear`: undo the inversion, rebuild the biased
/// magnitude at the middle of its step, remove the bias of 0x84.
const fn build_ulaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8) as i32;
        let seg = (u & 0x70) >> 4;
        let mag = (((u & 0x0F) << 3) + 0x84) << seg;
        t[i] = if u & 0x80 != 0 {
            0x84 - mag
        } else {
            mag - 0x84
        } as i16;
        i += 1;
    }
    t
}

/// The reference `alaw2linear`: undo the even-bit inversion and place the
/// mantissa at the middle of its step.
const fn build_alaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let a = (i as u8 ^ 0x55) as i32;
        let seg = (a & 0x70) >> 4;
        let mut mag = (a & 0x0F) << 4;
        mag = match seg {
            0 => mag + 8,
            1 => mag + 0x108,
            _ => (mag + 0x108) << (seg - 1),
        };
        t[i] = if a & 0x80 != 0 { mag } else { -mag } as i16;
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Literal transcription of `lin2ulaw` in
    /// `interop/tools/rtppcap.py` (the Sun/ITU reference), kept deliberately
    /// naive so that it checks the table builder rather than mirrors it.
    fn ref_lin2ulaw(sample: i16) -> u8 {
        let mut sample = (sample as i32) >> 2;
        let mask;
        if sample < 0 {
            mask = 0x7F;
            sample = -sample;
        } else {
            mask = 0xFF;
        }
        sample = sample.min(8159) + 33;
        let seg_end = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
        let seg = seg_end.iter().position(|&e| sample <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        (((seg << 4) | ((sample >> (seg + 1)) & 0x0F)) ^ mask) as u8
    }

    /// Literal transcription of `lin2alaw` in `interop/tools/rtppcap.py`.
    fn ref_lin2alaw(sample: i16) -> u8 {
        let mut sample = (sample as i32) >> 3;
        let mask;
        if sample >= 0 {
            mask = 0xD5;
        } else {
            mask = 0x55;
            sample = -sample - 1;
        }
        let seg_end = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let seg = seg_end.iter().position(|&e| sample <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let mut aval = seg << 4;
        aval |= (sample >> if seg < 2 { 1 } else { seg }) & 0x0F;
        (aval ^ mask) as u8
    }

    /// Sun `ulaw2linear`, transcribed from the C reference.
    fn ref_ulaw2linear(u: u8) -> i16 {
        let u = !u as i32;
        let mut t = ((u & 0x0F) << 3) + 0x84;
        t <<= (u & 0x70) >> 4;
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    /// Sun `alaw2linear`, transcribed from the C reference.
    fn ref_alaw2linear(a: u8) -> i16 {
        let a = (a ^ 0x55) as i32;
        let mut t = (a & 0x0F) << 4;
        let seg = (a & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        (if a & 0x80 != 0 { t } else { -t }) as i16
    }

    fn all_i16() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
        bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn ulaw_encode_matches_reference_for_every_input() {
        for s in all_i16() {
            assert_eq!(ulaw_encode(s), ref_lin2ulaw(s), "sample {s}");
        }
    }

    #[test]
    fn alaw_encode_matches_reference_for_every_input() {
        for s in all_i16() {
            assert_eq!(alaw_encode(s), ref_lin2alaw(s), "sample {s}");
        }
    }

    /// FNV-1a of the 65536 bytes the Python reference itself produces for
    /// -32768..=32767 (computed by running `rtppcap.py`), so the Rust
    /// transcriptions above are tied to the real thing.
    #[test]
    fn encoders_match_python_reference_digest() {
        assert_eq!(fnv1a(all_i16().map(ulaw_encode)), 0xd5ee_23f7_d0ff_ae91);
        assert_eq!(fnv1a(all_i16().map(alaw_encode)), 0xf030_666e_b780_cf25);
    }

    #[test]
    fn decode_tables_match_reference() {
        for b in 0..=255u8 {
            assert_eq!(ulaw_decode(b), ref_ulaw2linear(b), "ulaw {b:#04x}");
            assert_eq!(alaw_decode(b), ref_alaw2linear(b), "alaw {b:#04x}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        // Full scale in A-law is 0xAA (positive) and 0x2A (negative).
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);

        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7E);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_encode_is_idempotent() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for b in 0..=255u8 {
                let s = codec.decode_sample(b);
                let again = codec.decode_sample(codec.encode_sample(s));
                assert_eq!(again, s, "{codec} byte {b:#04x}");
            }
        }
    }

    #[test]
    fn encode_of_decode_is_identity_except_negative_zero() {
        for b in 0..=255u8 {
            // mu-law has two zeros (0xFF and 0x7F); 0 encodes as 0xFF.
            let expect = if b == 0x7F { 0xFF } else { b };
            assert_eq!(ulaw_encode(ulaw_decode(b)), expect, "ulaw {b:#04x}");
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#04x}");
        }
    }

    #[test]
    fn sign_symmetry() {
        for b in 0..=255u8 {
            // Flipping the sign bit negates the decoded value.
            assert_eq!(ulaw_decode(b ^ 0x80), -ulaw_decode(b), "ulaw {b:#04x}");
            assert_eq!(alaw_decode(b ^ 0x80), -alaw_decode(b), "alaw {b:#04x}");
        }
        // Encoding: mu-law is symmetric on the 14-bit grid, A-law on the
        // one's complement of the 13-bit grid (x and -x - 1).
        for x in 0..8192i32 {
            let (p, n) = ((x << 2) as i16, ((-x) << 2) as i16);
            if x != 0 {
                assert_eq!(ulaw_encode(p) ^ 0x80, ulaw_encode(n), "ulaw {x}");
            }
        }
        for x in 0..4096i32 {
            let (p, n) = ((x << 3) as i16, ((-x - 1) << 3) as i16);
            assert_eq!(alaw_encode(p) ^ 0x80, alaw_encode(n), "alaw {x}");
        }
    }

    #[test]
    fn decode_is_monotonic() {
        // Positive codes, from the smallest magnitude up.
        let ulaw: Vec<i16> = (0x80..=0xFFu8).rev().map(ulaw_decode).collect();
        assert!(ulaw.windows(2).all(|w| w[0] < w[1]));
        let alaw: Vec<i16> = (0..128u8).map(|c| alaw_decode((c | 0x80) ^ 0x55)).collect();
        assert!(alaw.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn buffer_api_matches_sample_api() {
        let pcm: Vec<i16> = (0..1000)
            .map(|i| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = vec![0u8; pcm.len()];
            codec.encode(&pcm, &mut enc);
            let mut dec = vec![0i16; pcm.len()];
            codec.decode(&enc, &mut dec);
            for i in 0..pcm.len() {
                assert_eq!(enc[i], codec.encode_sample(pcm[i]));
                assert_eq!(dec[i], codec.decode_sample(enc[i]));
            }
        }
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_static_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_payload_type(18), None);
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding_name("PcMa"), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding_name("G729"), None);
        assert_eq!(Codec::from_encoding_name(""), None);
        assert_eq!(Codec::Pcmu.to_string(), "PCMU");
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(codec.encode_sample(0), codec.silence_byte());
        }
    }
}
