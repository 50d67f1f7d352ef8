//! G.711 mu-law (PCMU) and A-law (PCMA), written independently of the
//! server's codec so that a bug in one shows up against the other.
//!
//! The encoders follow the Sun/ITU reference algorithm (`g711.c`), bit-exact
//! with `lin2ulaw`/`lin2alaw` in shared/interop/tools/rtppcap.py; the
//! decoders are the standard expansions.

/// RTP payload type of PCMU (RFC 3551).
pub const PT_PCMU: u8 = 0;
/// RTP payload type of PCMA (RFC 3551).
pub const PT_PCMA: u8 = 8;

/// Segment end points of the mu-law compander (14-bit magnitude + bias).
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Segment end points of the A-law compander (13-bit magnitude).
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

fn segment(value: i32, table: &[i32; 8]) -> usize {
    table.iter().position(|end| value <= *end).unwrap_or(8)
}

/// 16-bit linear -> mu-law byte.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 2; // 14-bit
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    let pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0x0F);
    (uval ^ mask) as u8
}

/// mu-law byte -> 16-bit linear.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = ((i32::from(u) & 0x0F) << 3) + ULAW_BIAS;
    t <<= (i32::from(u) & 0x70) >> 4;
    let value = if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    value as i16
}

/// 16-bit linear -> A-law byte.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3; // 13-bit
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let aval = ((seg as i32) << 4) | ((pcm >> shift) & 0x0F);
    (aval ^ mask) as u8
}

/// A-law byte -> 16-bit linear.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = i32::from(code ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    let value = if a & 0x80 != 0 { t } else { -t };
    value as i16
}

pub fn encode_ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|s| linear_to_ulaw(*s)).collect()
}

pub fn decode_ulaw(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|b| ulaw_to_linear(*b)).collect()
}

pub fn encode_alaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|s| linear_to_alaw(*s)).collect()
}

pub fn decode_alaw(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|b| alaw_to_linear(*b)).collect()
}

/// Encodes for payload type 0 (PCMU) or 8 (PCMA); `None` for other types.
pub fn encode(samples: &[i16], pt: u8) -> Option<Vec<u8>> {
    match pt {
        PT_PCMU => Some(encode_ulaw(samples)),
        PT_PCMA => Some(encode_alaw(samples)),
        _ => None,
    }
}

/// Decodes payload type 0 (PCMU) or 8 (PCMA); `None` for other types.
pub fn decode(bytes: &[u8], pt: u8) -> Option<Vec<i16>> {
    match pt {
        PT_PCMU => Some(decode_ulaw(bytes)),
        PT_PCMA => Some(decode_alaw(bytes)),
        _ => None,
    }
}

/// `n` samples of a sine at `freq_hz` and 8 kHz with peak `amplitude`
/// (handy test signal; 1 kHz is a whole number of samples per period).
pub fn sine(freq_hz: f64, amplitude: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * freq_hz * i as f64 / 8000.0;
            (amplitude * phase.sin()).round() as i16
        })
        .collect()
}
