//! Voice prompts: WAV files loaded once at start-up, converted to 8 kHz mono
//! 16-bit and pre-encoded to both G.711 laws.
//!
//! Playing a prompt to a caller then costs nothing but slicing: every call
//! shares the same buffers (`Prompt` is a handful of `Arc`s) and no sample
//! is converted or encoded on the media path.
//!
//! # What is accepted
//!
//! - PCM WAVs of any sample rate, any channel count (averaged to mono) and
//!   any of 8/16/24/32-bit integer or 32-bit float samples, plain or
//!   `WAVE_FORMAT_EXTENSIBLE`. Samples are decoded by `hound`.
//! - mu-law and A-law WAVs (format tags 7 and 6), which `hound` cannot
//!   read; they are decoded with [`g711`](super::g711).
//! - "Streamed" WAVs, whose RIFF and data sizes are placeholders because the
//!   writer could not seek back to fill them in (`sox ... -t wav - | cat`
//!   writes 0x7FFFF000, `ffmpeg ... -f wav pipe:` 0xFFFFFFFF, older ffmpeg
//!   0), or whose copy was cut short. Their audio runs to the end of the
//!   file, cut to whole frames.
//!
//! At 8 kHz the samples pass through bit-exactly; other rates go through
//! the anti-aliasing [`resample`] filter.
//!
//! # How a file is read
//!
//! The RIFF container is walked by the small parser in `riff` below,
//! which never trusts a size field: it checks every offset against the
//! buffer, honours the pad byte after odd-sized chunks, and decides where
//! the audio really ends. The samples of a PCM file are then handed to
//! `hound` behind a freshly written canonical 44-byte header (a copy; the
//! input is not modified) whose sizes are those of the real data. That
//! is how streamed files are repaired, and it also spares `hound` the
//! header variants it is strict about (`fmt ` chunk lengths, an
//! inconsistent byte rate) that are harmless to decode.
//!
//! Every failure is a [`PromptError`] naming the file and saying what is
//! wrong with it; nothing derived from file contents can panic.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::g711::Codec;
use super::resample;

/// The rate of every prompt's samples, in Hz.
pub const SAMPLE_RATE: u32 = resample::OUTPUT_RATE;

/// The longest prompt accepted. Anything longer is almost certainly the
/// wrong file (hold music is looped, not loaded as a single hour).
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// The largest file accepted, so that a wrong path cannot exhaust memory
/// at start-up. Ten minutes of 96 kHz stereo 32-bit audio fits.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Accepted input sample rates, in Hz.
const MIN_RATE: u32 = 1000;
const MAX_RATE: u32 = 384_000;

/// A prompt ready to play: 8 kHz mono samples and their PCMU and PCMA
/// encodings. Cloning is cheap (reference counts only).
#[derive(Clone)]
pub struct Prompt {
    name: Arc<str>,
    pcm: Arc<[i16]>,
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
}

impl Prompt {
    /// Decodes a WAV file held in memory. `name` (usually the file's path)
    /// is only used to label errors and logs.
    pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Prompt, PromptError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(PromptError::TooLarge {
                name: name.to_owned(),
                size: bytes.len() as u64,
            });
        }
        let pcm = decode_wav(name, bytes)?;
        Ok(Prompt::from_pcm(name, pcm))
    }

    /// Reads and decodes a WAV file. Errors are labelled with the path.
    pub fn from_file(path: &Path) -> Result<Prompt, PromptError> {
        let name = path.display().to_string();
        let io_err = |source| PromptError::Io {
            name: name.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        if size > MAX_FILE_BYTES {
            return Err(PromptError::TooLarge {
                name: name.clone(),
                size,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // `take` guards against a file that grows while it is read.
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        Prompt::from_wav_bytes(&name, &bytes)
    }

    /// Wraps samples that are already 8 kHz mono, encoding them once to
    /// both laws. Any length is accepted, including zero.
    pub fn from_pcm(name: &str, pcm_8k: Vec<i16>) -> Prompt {
        let mut pcmu = vec![0u8; pcm_8k.len()];
        let mut pcma = vec![0u8; pcm_8k.len()];
        Codec::Pcmu.encode(&pcm_8k, &mut pcmu);
        Codec::Pcma.encode(&pcm_8k, &mut pcma);
        Prompt {
            name: name.into(),
            pcm: pcm_8k.into(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
        }
    }

    /// The name given when loading (usually the file path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 8 kHz mono linear samples.
    pub fn samples(&self) -> &[i16] {
        &self.pcm
    }

    /// The samples encoded with `codec`; one byte per sample.
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// How long the prompt plays.
    pub fn duration(&self) -> Duration {
        // 125 µs per sample at 8 kHz: exact in nanoseconds.
        Duration::from_nanos(self.pcm.len() as u64 * (1_000_000_000 / SAMPLE_RATE as u64))
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the samples: a prompt is tens of thousands of them.
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("samples", &self.pcm.len())
            .field("duration", &self.duration())
            .finish()
    }
}

/// Why a prompt could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file could not be opened or read.
    #[error("{name}: cannot read: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
    /// The file is bigger than [`MAX_FILE_BYTES`].
    #[error("{name}: file is too large ({size} bytes, the limit is {MAX_FILE_BYTES}); a prompt is at most 10 minutes of audio")]
    TooLarge { name: String, size: u64 },
    /// Not a RIFF/WAVE file at all; `hint` says what it looks like instead
    /// when that is recognisable (empty, or e.g. " (it looks like FLAC)").
    #[error("{name}: not a RIFF/WAVE file{hint}")]
    NotWave { name: String, hint: &'static str },
    /// A WAV file whose structure is broken.
    #[error("{name}: malformed WAV file: {reason}")]
    Malformed { name: String, reason: String },
    /// A compressed or otherwise unsupported encoding.
    #[error("{name}: unsupported WAV format tag 0x{tag:04X} ({description}); convert it to PCM")]
    UnsupportedFormat {
        name: String,
        tag: u16,
        description: &'static str,
    },
    /// A PCM layout that cannot be decoded, such as 64-bit float samples.
    #[error("{name}: unsupported sample layout: {detail}; convert it to 16-bit PCM")]
    UnsupportedLayout { name: String, detail: String },
    /// A sample rate outside the accepted range.
    #[error("{name}: unsupported sample rate {rate} Hz (expected {MIN_RATE} to {MAX_RATE} Hz)")]
    UnsupportedRate { name: String, rate: u32 },
    /// `hound` failed while decoding the samples.
    #[error("{name}: cannot decode samples: {source}")]
    Decode {
        name: String,
        #[source]
        source: hound::Error,
    },
    /// The file holds no audio (or less than one 8 kHz sample of it).
    #[error("{name}: no audio samples")]
    Empty { name: String },
    /// Longer than [`MAX_DURATION`].
    #[error("{name}: audio is {seconds:.1} s long; prompts are limited to 10 minutes")]
    TooLong { name: String, seconds: f64 },
}

impl PromptError {
    /// The name (path) of the file the error is about.
    pub fn name(&self) -> &str {
        match self {
            PromptError::Io { name, .. }
            | PromptError::TooLarge { name, .. }
            | PromptError::NotWave { name, .. }
            | PromptError::Malformed { name, .. }
            | PromptError::UnsupportedFormat { name, .. }
            | PromptError::UnsupportedLayout { name, .. }
            | PromptError::UnsupportedRate { name, .. }
            | PromptError::Decode { name, .. }
            | PromptError::Empty { name }
            | PromptError::TooLong { name, .. } => name,
        }
    }
}

const TAG_PCM: u16 = 0x0001;
const TAG_FLOAT: u16 = 0x0003;
const TAG_ALAW: u16 = 0x0006;
const TAG_MULAW: u16 = 0x0007;

/// How the samples of a supported file are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Little-endian integers filling `bytes`-wide containers (8-bit is
    /// unsigned, as WAV defines it).
    Int { bytes: u16 },
    /// 32-bit IEEE float.
    Float32,
    /// One G.711 byte per sample.
    G711(Codec),
}

/// WAV bytes to 8 kHz mono samples.
fn decode_wav(name: &str, bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
    let wave = riff::parse(bytes).map_err(|e| match e {
        riff::Error::NotWave(hint) => PromptError::NotWave {
            name: name.to_owned(),
            hint,
        },
        riff::Error::Malformed(reason) => malformed(name, reason),
    })?;
    let fmt = wave.fmt;
    match wave.repair {
        Some(riff::Repair::Placeholder) => tracing::debug!(
            prompt = name,
            audio_bytes = wave.data.len(),
            "WAV header has placeholder sizes (written to a pipe); reading the audio to the end of the file"
        ),
        Some(riff::Repair::CutShort { declared }) => tracing::warn!(
            prompt = name,
            declared_bytes = declared,
            audio_bytes = wave.data.len(),
            "WAV file is shorter than its header says (cut short?); using the audio that is there"
        ),
        None => {}
    }

    let layout = layout(name, &fmt)?;
    if !(MIN_RATE..=MAX_RATE).contains(&fmt.sample_rate) {
        return Err(PromptError::UnsupportedRate {
            name: name.to_owned(),
            rate: fmt.sample_rate,
        });
    }
    let frames = wave.data.len() / fmt.block_align as usize;
    if frames == 0 {
        return Err(PromptError::Empty {
            name: name.to_owned(),
        });
    }
    if frames as u64 > MAX_DURATION.as_secs() * fmt.sample_rate as u64 {
        return Err(PromptError::TooLong {
            name: name.to_owned(),
            seconds: frames as f64 / fmt.sample_rate as f64,
        });
    }

    let mono = match layout {
        Layout::G711(codec) => {
            let samples = wave
                .data
                .iter()
                .map(|&b| Ok::<_, std::convert::Infallible>(codec.decode_sample(b) as f64));
            let Ok(mono) = downmix(samples, fmt.channels, frames, 1.0 / 32768.0);
            mono
        }
        Layout::Int { bytes } => decode_with_hound(
            name,
            &fmt,
            hound::SampleFormat::Int,
            bytes * 8,
            wave.data,
            frames,
        )?,
        Layout::Float32 => decode_with_hound(
            name,
            &fmt,
            hound::SampleFormat::Float,
            32,
            wave.data,
            frames,
        )?,
    };

    let pcm: Vec<i16> = resample::to_8k(&mono, fmt.sample_rate)
        .into_iter()
        .map(quantize)
        .collect();
    if pcm.is_empty() {
        return Err(PromptError::Empty {
            name: name.to_owned(),
        });
    }
    Ok(pcm)
}

fn malformed(name: &str, reason: impl Into<String>) -> PromptError {
    PromptError::Malformed {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// Decides whether (and how) the samples described by `fmt` can be read.
fn layout(name: &str, fmt: &riff::Fmt) -> Result<Layout, PromptError> {
    let unsupported = |detail: String| PromptError::UnsupportedLayout {
        name: name.to_owned(),
        detail,
    };
    if fmt.block_align % fmt.channels != 0 {
        return Err(malformed(
            name,
            format!(
                "block align of {} bytes is not a whole number of bytes for each of {} channels",
                fmt.block_align, fmt.channels
            ),
        ));
    }
    let container = fmt.block_align / fmt.channels;
    if fmt.bits_per_sample as u32 > container as u32 * 8 {
        return Err(malformed(
            name,
            format!(
                "{} bits per sample do not fit in {container}-byte samples",
                fmt.bits_per_sample
            ),
        ));
    }
    match fmt.tag {
        TAG_PCM => match container {
            1..=4 => Ok(Layout::Int { bytes: container }),
            _ => Err(unsupported(format!("{}-byte integer samples", container))),
        },
        TAG_FLOAT => match container {
            4 => Ok(Layout::Float32),
            _ => Err(unsupported(format!(
                "{}-bit float samples",
                container as u32 * 8
            ))),
        },
        TAG_MULAW | TAG_ALAW => {
            let codec = if fmt.tag == TAG_MULAW {
                Codec::Pcmu
            } else {
                Codec::Pcma
            };
            match container {
                1 => Ok(Layout::G711(codec)),
                _ => Err(unsupported(format!("{container}-byte {codec} samples"))),
            }
        }
        tag => Err(PromptError::UnsupportedFormat {
            name: name.to_owned(),
            tag,
            description: format_description(tag),
        }),
    }
}

/// Names the common WAV format tags, so an operator knows what they have.
fn format_description(tag: u16) -> &'static str {
    match tag {
        0x0000 => "unknown/invalid",
        0x0002 => "Microsoft ADPCM",
        0x0011 => "IMA ADPCM",
        0x0014 => "G.723 ADPCM",
        0x0017 => "Dialogic OKI ADPCM",
        0x0022 => "DSP Group TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x0064 => "G.726 ADPCM",
        0x00FF => "AAC",
        0x0161..=0x0163 => "Windows Media Audio",
        0x2000 => "AC-3",
        0xF1AC => "FLAC",
        riff::TAG_EXTENSIBLE => "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format",
        _ => "unknown format",
    }
}

/// Decodes PCM samples with `hound`, behind a canonical header describing
/// exactly `frames` frames of `data` (see the module documentation).
///
/// Integers are read as whole containers (`bits` is the container width):
/// WAVE_FORMAT_EXTENSIBLE puts fewer valid bits at the top of a container,
/// low bits zero, so scaling by the container width is right for those
/// files too.
fn decode_with_hound(
    name: &str,
    fmt: &riff::Fmt,
    format: hound::SampleFormat,
    bits: u16,
    data: &[u8],
    frames: usize,
) -> Result<Vec<f32>, PromptError> {
    let tag = match format {
        hound::SampleFormat::Int => TAG_PCM,
        hound::SampleFormat::Float => TAG_FLOAT,
    };
    let data_len = u32::try_from(data.len()).map_err(|_| PromptError::TooLarge {
        name: name.to_owned(),
        size: data.len() as u64,
    })?;
    let byte_rate = (fmt.block_align as u32)
        .checked_mul(fmt.sample_rate)
        .ok_or_else(|| PromptError::UnsupportedLayout {
            name: name.to_owned(),
            detail: format!("{} channels at {} Hz", fmt.channels, fmt.sample_rate),
        })?;

    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&tag.to_le_bytes());
    header.extend_from_slice(&fmt.channels.to_le_bytes());
    header.extend_from_slice(&fmt.sample_rate.to_le_bytes());
    header.extend_from_slice(&byte_rate.to_le_bytes());
    header.extend_from_slice(&fmt.block_align.to_le_bytes());
    header.extend_from_slice(&bits.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());

    let decode_err = |source| PromptError::Decode {
        name: name.to_owned(),
        source,
    };
    let reader = hound::WavReader::new(io::Cursor::new(header).chain(data)).map_err(decode_err)?;
    let mono = match format {
        hound::SampleFormat::Float => {
            let samples = reader.into_samples::<f32>().map(|s| {
                // NaN or infinity would smear through the filter; mute it.
                s.map(|x| if x.is_finite() { x as f64 } else { 0.0 })
            });
            downmix(samples, fmt.channels, frames, 1.0)
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            let samples = reader.into_samples::<i32>().map(|s| s.map(|x| x as f64));
            downmix(samples, fmt.channels, frames, scale)
        }
    };
    mono.map_err(decode_err)
}

/// Averages interleaved channels to mono, scaling each sample by `scale`.
///
/// For mono 16-bit input the result is exactly `sample / 32768`, so that
/// quantizing it again gives back the very same sample.
fn downmix<E>(
    samples: impl Iterator<Item = Result<f64, E>>,
    channels: u16,
    frames: usize,
    scale: f64,
) -> Result<Vec<f32>, E> {
    let channels = channels.max(1) as usize;
    let scale = scale / channels as f64;
    let mut mono = Vec::with_capacity(frames);
    let (mut sum, mut n) = (0f64, 0usize);
    for s in samples {
        sum += s?;
        n += 1;
        if n == channels {
            mono.push((sum * scale) as f32);
            (sum, n) = (0.0, 0);
        }
    }
    Ok(mono)
}

/// `[-1.0, 1.0]` to 16-bit, rounding to nearest and clipping overshoot.
fn quantize(x: f32) -> i16 {
    // `as` saturates (and maps NaN to 0); the clamp documents the intent.
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A minimal RIFF/WAVE reader: finds the `fmt ` and `data` chunks and
/// decides how far the audio really extends. It indexes nothing without
/// checking it first, so no input can make it panic.
mod riff {
    /// `WAVE_FORMAT_EXTENSIBLE`: the real format is in the sub-format GUID.
    pub(super) const TAG_EXTENSIBLE: u16 = 0xFFFE;

    /// Bytes 2..16 shared by every `KSDATAFORMAT_SUBTYPE_*` GUID derived
    /// from a WAVE format tag (which fills bytes 0..2).
    const GUID_TAIL: [u8; 14] = [
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
    ];
    #[cfg(test)]
    pub(super) const GUID_TAIL_FOR_TESTS: [u8; 14] = GUID_TAIL;

    /// The fields of a `fmt ` chunk this crate needs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Fmt {
        /// The format tag; for `WAVE_FORMAT_EXTENSIBLE` the tag of its
        /// sub-format when that is a standard one.
        pub tag: u16,
        /// Never 0.
        pub channels: u16,
        pub sample_rate: u32,
        /// Bytes per frame (all channels); never 0.
        pub block_align: u16,
        pub bits_per_sample: u16,
    }

    #[derive(Debug)]
    pub(super) struct Wave<'a> {
        pub fmt: Fmt,
        /// The audio, cut to whole frames.
        pub data: &'a [u8],
        /// Set when the data chunk's size could not be trusted and the
        /// audio was taken to run to the end of the file.
        pub repair: Option<Repair>,
    }

    /// Why the size of the data chunk was not used.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Repair {
        /// A value written by a tool that could not seek back to fill in
        /// the real size: 0, 0xFFFFFFFF (ffmpeg) or a huge guess (sox
        /// writes 0x7FFFF000).
        Placeholder,
        /// A plausible size that is larger than the file: most likely a
        /// copy that was cut short.
        CutShort { declared: u32 },
    }

    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum Error {
        /// Not RIFF/WAVE; the hint says what it looks like instead.
        NotWave(&'static str),
        Malformed(&'static str),
    }

    pub(super) fn parse(bytes: &[u8]) -> Result<Wave<'_>, Error> {
        let magic = bytes.get(0..4);
        // RF64 is RIFF for files over 4 GiB: its 32-bit sizes are all
        // 0xFFFFFFFF, which the streamed-file rule below handles.
        let is_riff = magic == Some(&b"RIFF"[..]) || magic == Some(&b"RF64"[..]);
        if !is_riff || bytes.get(8..12) != Some(&b"WAVE"[..]) {
            return Err(Error::NotWave(sniff(bytes)));
        }
        let riff_size = le_u32(bytes, 4).ok_or(Error::NotWave(""))?;

        let mut fmt = None;
        let mut data = None;
        let mut repair = None;
        let mut pos = 12usize;
        while let (Some(id), Some(size)) = (
            slice(bytes, pos, 4),
            pos.checked_add(4).and_then(|at| le_u32(bytes, at)),
        ) {
            let body = pos + 8; // in bounds: the size field was read
            let size = size as usize;
            let available = bytes.len() - body;
            match id {
                b"fmt " if fmt.is_none() => {
                    let chunk = slice(bytes, body, size).ok_or(Error::Malformed(
                        "the fmt chunk runs past the end of the file",
                    ))?;
                    fmt = Some(parse_fmt(chunk)?);
                }
                b"data" if data.is_none() => {
                    // A writer that cannot seek leaves 0, 0xFFFFFFFF or a
                    // large guess here. A genuine empty data chunk is
                    // followed by other chunks that the RIFF size accounts
                    // for; a placeholder 0 is not.
                    let huge = size == 0 || size >= 0x7FFF_0000;
                    let untrusted = size > available
                        || (size == 0
                            && available > 0
                            && riff_size as u64 + 8 != bytes.len() as u64);
                    if untrusted {
                        repair = Some(if huge {
                            Repair::Placeholder
                        } else {
                            Repair::CutShort {
                                declared: size as u32,
                            }
                        });
                        data = bytes.get(body..);
                        break; // the audio runs to the end: nothing follows
                    }
                    data = slice(bytes, body, size);
                }
                _ => {}
            }
            if fmt.is_some() && data.is_some() {
                break;
            }
            // Chunks are padded to an even length.
            match body
                .checked_add(size)
                .and_then(|end| end.checked_add(size & 1))
            {
                Some(next) => pos = next,
                None => break,
            }
        }

        let fmt = fmt.ok_or(Error::Malformed(if data.is_some() {
            "no fmt chunk before the audio data"
        } else {
            "no fmt chunk"
        }))?;
        let data = data.ok_or(Error::Malformed("no data chunk"))?;
        let whole = data.len() - data.len() % fmt.block_align as usize;
        Ok(Wave {
            fmt,
            data: data.get(..whole).unwrap_or_default(),
            repair,
        })
    }

    fn parse_fmt(chunk: &[u8]) -> Result<Fmt, Error> {
        let field16 = |at| {
            le_u16(chunk, at).ok_or(Error::Malformed("the fmt chunk is shorter than 16 bytes"))
        };
        let mut tag = field16(0)?;
        let channels = field16(2)?;
        let sample_rate =
            le_u32(chunk, 4).ok_or(Error::Malformed("the fmt chunk is shorter than 16 bytes"))?;
        // Bytes 8..12, the average byte rate, are redundant and often wrong.
        let block_align = field16(12)?;
        let bits_per_sample = field16(14)?;
        if tag == TAG_EXTENSIBLE {
            // cbSize (16..18), valid bits (18..20), channel mask (20..24),
            // sub-format GUID (24..40).
            let guid = slice(chunk, 24, 16).ok_or(Error::Malformed(
                "the extensible fmt chunk is shorter than 40 bytes",
            ))?;
            if guid.get(2..) == Some(&GUID_TAIL[..]) {
                tag = le_u16(guid, 0).unwrap_or(TAG_EXTENSIBLE);
            }
        }
        if channels == 0 {
            return Err(Error::Malformed("the fmt chunk says 0 channels"));
        }
        if block_align == 0 {
            return Err(Error::Malformed(
                "the fmt chunk says 0 bytes per frame (block align)",
            ));
        }
        Ok(Fmt {
            tag,
            channels,
            sample_rate,
            block_align,
            bits_per_sample,
        })
    }

    /// Says what a non-WAVE file looks like, for the error message.
    fn sniff(bytes: &[u8]) -> &'static str {
        let starts = |magic: &[u8]| bytes.starts_with(magic);
        if bytes.is_empty() {
            " (the file is empty)"
        } else if bytes.len() < 12 && (b"RIFF".starts_with(bytes) || starts(b"RIFF")) {
            " (the file is cut short)"
        } else if starts(b"RIFX") {
            " (it is a big-endian RIFX file)"
        } else if starts(b"RIFF") {
            " (it is a RIFF file of another kind)"
        } else if starts(b"ID3") || matches!(bytes, [0xFF, b, ..] if b & 0xE0 == 0xE0) {
            " (it looks like MP3 or AAC)"
        } else if starts(b"fLaC") {
            " (it looks like FLAC)"
        } else if starts(b"OggS") {
            " (it looks like Ogg)"
        } else if starts(b"FORM") {
            " (it looks like AIFF)"
        } else if starts(b".snd") {
            " (it looks like Sun/NeXT .au)"
        } else {
            ""
        }
    }

    fn slice(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
        bytes.get(at..at.checked_add(len)?)
    }

    fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(slice(bytes, at, 2)?.try_into().ok()?))
    }

    fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(slice(bytes, at, 4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestRng;
    use hound::{SampleFormat, WavSpec, WavWriter};
    use std::f64::consts::PI;

    fn hound_wav<S: hound::Sample + Copy>(spec: WavSpec, samples: &[S]) -> Vec<u8> {
        let mut cursor = io::Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    /// A 16-byte `fmt ` body (18 with `cb_size`).
    fn fmt_body(
        tag: u16,
        channels: u16,
        rate: u32,
        block_align: u16,
        bits: u16,
        cb_size: Option<u16>,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
        b.extend_from_slice(&block_align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        if let Some(cb) = cb_size {
            b.extend_from_slice(&cb.to_le_bytes());
        }
        b
    }

    /// A RIFF/WAVE file from `(id, body)` chunks, with correct sizes and
    /// pad bytes.
    fn riff_wave(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(&id[..]);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f64> {
        let n = (secs * rate as f64).round() as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f64 / rate as f64).sin())
            .collect()
    }

    /// Amplitude of `freq` in one second of 8 kHz audio from sample 2000,
    /// as a fraction of full scale.
    fn amplitude_at(pcm: &[i16], freq: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in pcm[2000..10000].iter().enumerate() {
            let w = 2.0 * PI * freq * i as f64 / 8000.0;
            re += s as f64 * w.cos();
            im -= s as f64 * w.sin();
        }
        2.0 * (re * re + im * im).sqrt() / 8000.0 / 32768.0
    }

    fn assert_amplitude(p: &Prompt, freq: f64, expect: f64) {
        let got = amplitude_at(p.samples(), freq);
        let db = 20.0 * (got / expect).log10();
        assert!(
            db.abs() < 0.2,
            "{}: {got} vs {expect} ({db:.3} dB)",
            p.name()
        );
    }

    fn load(bytes: &[u8]) -> Result<Prompt, PromptError> {
        Prompt::from_wav_bytes("x.wav", bytes)
    }

    fn test_pcm() -> Vec<i16> {
        let mut v: Vec<i16> = (0..4000)
            .map(|i: i32| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        v.extend_from_slice(&[i16::MIN, i16::MAX, 0, -1, 1]);
        v
    }

    // ------------------------------------------------------------ PCM

    #[test]
    fn pcm16_8k_mono_passes_through_bit_exactly() {
        let pcm = test_pcm();
        let p = load(&hound_wav(spec(1, 8000, 16, SampleFormat::Int), &pcm)).unwrap();
        assert_eq!(p.samples(), &pcm[..]);
        assert_eq!(p.name(), "x.wav");
    }

    #[test]
    fn pcm16_16k_stereo_is_averaged_and_resampled() {
        let (l, r) = (sine(1000.0, 16000, 1.5, 0.5), sine(1000.0, 16000, 1.5, 0.1));
        let interleaved: Vec<i16> = l
            .iter()
            .zip(&r)
            .flat_map(|(a, b)| [(a * 32767.0) as i16, (b * 32767.0) as i16])
            .collect();
        let p = load(&hound_wav(
            spec(2, 16000, 16, SampleFormat::Int),
            &interleaved,
        ))
        .unwrap();
        assert_eq!(p.samples().len(), 12000);
        assert_amplitude(&p, 1000.0, 0.3);
    }

    #[test]
    fn pcm24_48k_mono() {
        let x: Vec<i32> = sine(1000.0, 48000, 1.5, 0.5)
            .iter()
            .map(|v| (v * 8388607.0) as i32)
            .collect();
        let p = load(&hound_wav(spec(1, 48000, 24, SampleFormat::Int), &x)).unwrap();
        assert_eq!(p.samples().len(), 12000);
        assert_amplitude(&p, 1000.0, 0.5);
    }

    #[test]
    fn float_44k1_mono() {
        let x: Vec<f32> = sine(1000.0, 44100, 1.5, 0.5)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let p = load(&hound_wav(spec(1, 44100, 32, SampleFormat::Float), &x)).unwrap();
        assert_eq!(p.samples().len(), 12000);
        assert_amplitude(&p, 1000.0, 0.5);
    }

    #[test]
    fn float_out_of_range_and_nan_do_not_break_anything() {
        let x = [0.5f32, 2.0, -3.0, f32::NAN, f32::INFINITY, -0.5];
        let p = load(&hound_wav(spec(1, 8000, 32, SampleFormat::Float), &x)).unwrap();
        assert_eq!(p.samples(), &[16384, 32767, -32768, 0, 0, -16384]);
    }

    #[test]
    fn pcm8_8k_mono() {
        let x: Vec<i8> = (-128..=127).collect();
        let p = load(&hound_wav(spec(1, 8000, 8, SampleFormat::Int), &x)).unwrap();
        let want: Vec<i16> = x.iter().map(|&v| v as i16 * 256).collect();
        assert_eq!(p.samples(), &want[..]);
    }

    #[test]
    fn pcm32_and_pcm24_8k_are_exact_for_16_bit_content() {
        let pcm = test_pcm();
        let x32: Vec<i32> = pcm.iter().map(|&s| (s as i32) << 16).collect();
        let p = load(&hound_wav(spec(1, 8000, 32, SampleFormat::Int), &x32)).unwrap();
        assert_eq!(p.samples(), &pcm[..]);
        let x24: Vec<i32> = pcm.iter().map(|&s| (s as i32) << 8).collect();
        let p = load(&hound_wav(spec(1, 8000, 24, SampleFormat::Int), &x24)).unwrap();
        assert_eq!(p.samples(), &pcm[..]);
    }

    #[test]
    fn multichannel_extensible_is_averaged() {
        // hound writes WAVE_FORMAT_EXTENSIBLE for more than two channels.
        let frames: Vec<i16> = (0..800).flat_map(|i| [i, i + 2, i + 4, i + 6]).collect();
        let bytes = hound_wav(spec(4, 8000, 16, SampleFormat::Int), &frames);
        assert_eq!(&bytes[20..22], &[0xFE, 0xFF]);
        let p = load(&bytes).unwrap();
        let want: Vec<i16> = (0..800).map(|i| i + 3).collect();
        assert_eq!(p.samples(), &want[..]);
    }

    #[test]
    fn encodings_match_codec_encode() {
        let pcm = test_pcm();
        let p = load(&hound_wav(spec(1, 8000, 16, SampleFormat::Int), &pcm)).unwrap();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut want = vec![0u8; pcm.len()];
            codec.encode(p.samples(), &mut want);
            assert_eq!(p.encoded(codec), &want[..], "{codec}");
        }
    }

    #[test]
    fn from_pcm_duration_and_cheap_clone() {
        let p = Prompt::from_pcm("tone", vec![0; 12345]);
        assert_eq!(p.duration(), Duration::from_micros(12345 * 125));
        assert_eq!(p.encoded(Codec::Pcmu), &vec![0xFF; 12345][..]);
        assert_eq!(p.encoded(Codec::Pcma), &vec![0xD5; 12345][..]);
        let q = p.clone();
        assert!(Arc::ptr_eq(&p.pcm, &q.pcm) && Arc::ptr_eq(&p.pcmu, &q.pcmu));
        assert!(format!("{p:?}").contains("samples: 12345"));
        assert_eq!(
            Prompt::from_pcm("empty", Vec::new()).duration(),
            Duration::ZERO
        );
    }

    // ------------------------------------------------------------ G.711

    #[test]
    fn mulaw_wav_by_hand() {
        let data: Vec<u8> = (0..=255).collect();
        let bytes = riff_wave(&[
            (b"fmt ", &fmt_body(7, 1, 8000, 1, 8, Some(0))),
            (b"data", &data),
        ]);
        let p = load(&bytes).unwrap();
        let want: Vec<i16> = data
            .iter()
            .map(|&b| super::super::g711::ulaw_decode(b))
            .collect();
        assert_eq!(p.samples(), &want[..]);
        // Re-encoding mu-law content gives the original bytes back, apart
        // from the negative zero.
        let reencoded: Vec<u8> = data
            .iter()
            .map(|&b| if b == 0x7F { 0xFF } else { b })
            .collect();
        assert_eq!(p.encoded(Codec::Pcmu), &reencoded[..]);
    }

    #[test]
    fn alaw_stereo_wav_by_hand_is_averaged() {
        let codec = Codec::Pcma;
        let frames: Vec<(i16, i16)> = (0..500).map(|i| (i * 40, -i * 8)).collect();
        let data: Vec<u8> = frames
            .iter()
            .flat_map(|&(l, r)| [codec.encode_sample(l), codec.encode_sample(r)])
            .collect();
        let bytes = riff_wave(&[
            (b"fmt ", &fmt_body(6, 2, 8000, 2, 8, None)),
            (b"data", &data),
        ]);
        let p = load(&bytes).unwrap();
        let want: Vec<i16> = data
            .chunks(2)
            .map(|f| {
                let sum = codec.decode_sample(f[0]) as f64 + codec.decode_sample(f[1]) as f64;
                quantize((sum / 2.0 / 32768.0) as f32)
            })
            .collect();
        assert_eq!(p.samples(), &want[..]);
    }

    #[test]
    fn alaw_16k_is_resampled() {
        let data: Vec<u8> = sine(1000.0, 16000, 1.5, 0.5)
            .iter()
            .map(|v| Codec::Pcma.encode_sample((v * 32767.0) as i16))
            .collect();
        let bytes = riff_wave(&[
            (b"fmt ", &fmt_body(6, 1, 16000, 1, 8, None)),
            (b"data", &data),
        ]);
        let p = load(&bytes).unwrap();
        assert_eq!(p.samples().len(), 12000);
        // A-law quantization noise is about -38 dB; the tone stays put.
        assert_amplitude(&p, 1000.0, 0.5);
    }

    #[test]
    fn extensible_mulaw_by_hand() {
        let mut fmt = fmt_body(0xFFFE, 1, 8000, 1, 8, Some(22));
        fmt.extend_from_slice(&8u16.to_le_bytes()); // valid bits
        fmt.extend_from_slice(&4u32.to_le_bytes()); // channel mask
        fmt.extend_from_slice(&[0x07, 0x00]);
        fmt.extend_from_slice(&riff::GUID_TAIL_FOR_TESTS);
        let data = [0x00u8, 0x80, 0xFF];
        let p = load(&riff_wave(&[(b"fmt ", &fmt), (b"data", &data)])).unwrap();
        assert_eq!(p.samples(), &[-32124, 32124, 0]);
    }

    // ------------------------------------------------------------ streamed

    /// 16-bit mono PCM behind a header whose RIFF and data sizes are the
    /// given placeholders, plus a stray odd byte (half a frame).
    fn streamed(riff_size: u32, data_size: u32, pcm: &[i16]) -> Vec<u8> {
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&riff_size.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&fmt_body(1, 1, 8000, 2, 16, None));
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_size.to_le_bytes());
        b.extend(pcm.iter().flat_map(|s| s.to_le_bytes()));
        b.push(0x42);
        b
    }

    #[test]
    fn streamed_wavs_are_repaired() {
        let pcm = test_pcm();
        for (riff_size, data_size) in [
            (0xFFFF_FFFF, 0xFFFF_FFFF), // ffmpeg to a pipe
            (0, 0),
            (36, 0),
            (0x7FFF_F024, 0x7FFF_F000),          // sox to a pipe
            (1000, 1000 + 2 * pcm.len() as u32), // longer than the file
        ] {
            let bytes = streamed(riff_size, data_size, &pcm);
            // hound on its own stops at these files...
            let by_hound = hound::WavReader::new(&bytes[..])
                .and_then(|r| r.into_samples::<i16>().collect::<Result<Vec<_>, _>>());
            assert!(by_hound.map(|s| s != pcm).unwrap_or(true));
            // ...and the repaired copy yields every whole frame.
            let p = load(&bytes).unwrap_or_else(|e| panic!("{riff_size:#x}/{data_size:#x}: {e}"));
            assert_eq!(p.samples(), &pcm[..], "{riff_size:#x}/{data_size:#x}");
            let repair = riff::parse(&bytes).map(|w| w.repair);
            let want = if data_size == 0 || data_size >= 0x7FFF_0000 {
                riff::Repair::Placeholder
            } else {
                riff::Repair::CutShort {
                    declared: data_size,
                }
            };
            assert_eq!(repair, Ok(Some(want)));
        }
    }

    #[test]
    fn sox_streamed_mulaw_header() {
        // The header `sox -n -r 8000 -c 1 -e mu-law -t wav - synth ... | cat`
        // writes: 18-byte fmt, a fact chunk and sizes of 0x7FFFF000.
        let mut bytes = hex(
            "52494646 32f0ff7f 57415645 666d7420 12000000 07000100 401f0000 401f0000 \
             01000800 0000 66616374 04000000 00f0ff7f 64617461 00f0ff7f",
        );
        bytes.extend_from_slice(&[0xFF, 0x80, 0x00, 0x7E]);
        let p = load(&bytes).unwrap();
        assert_eq!(p.samples(), &[0, 32124, -32124, -8]);
    }

    #[test]
    fn sox_streamed_file_if_sox_is_installed() {
        let path = std::env::temp_dir().join(format!("pinbridge-sox-{}.wav", std::process::id()));
        let cmd = format!(
            "sox -n -r 8000 -c 1 -b 16 -t wav - synth 0.5 sine 440 2>/dev/null | cat > '{}'",
            path.display()
        );
        let ok = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let bytes = std::fs::read(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        if !ok || bytes.len() < 100 {
            eprintln!("sox not available; skipped");
            return;
        }
        assert_eq!(
            &bytes[40..44],
            &0x7FFF_F000u32.to_le_bytes(),
            "sox's placeholder changed"
        );
        let p = load(&bytes).unwrap();
        assert_eq!(p.samples().len(), 4000);
        assert_tone(p.samples(), 440.0);
    }

    /// `pcm` is a pure tone at `freq` whose DFT amplitude matches its peak
    /// (sox's synth is about -3 dBFS, hence no fixed expectation).
    fn assert_tone(pcm: &[i16], freq: f64) {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in pcm.iter().enumerate() {
            let w = 2.0 * PI * freq * i as f64 / 8000.0;
            re += s as f64 * w.cos();
            im -= s as f64 * w.sin();
        }
        let amp = 2.0 * (re * re + im * im).sqrt() / pcm.len() as f64;
        let peak = pcm.iter().map(|&s| (s as f64).abs()).fold(0.0, f64::max);
        let db = 20.0 * (amp / peak).log10();
        assert!(
            peak > 10000.0 && db.abs() < 0.2,
            "amplitude {amp} peak {peak}"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn genuine_empty_data_chunk_is_not_mistaken_for_a_stream() {
        let bytes = riff_wave(&[
            (b"fmt ", &fmt_body(1, 1, 8000, 2, 16, None)),
            (b"data", &[]),
            (b"LIST", b"INFOISFT\x05\x00\x00\x00sox\x00\x00\x00"),
        ]);
        let e = load(&bytes).unwrap_err();
        assert!(matches!(e, PromptError::Empty { .. }), "{e}");
        assert_eq!(e.to_string(), "x.wav: no audio samples");
    }

    #[test]
    fn odd_sized_chunks_are_padded_and_skipped() {
        let pcm = [1i16, -2, 3];
        let data: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let bytes = riff_wave(&[
            (b"LIST", b"odd"),
            (b"fmt ", &fmt_body(1, 1, 8000, 2, 16, Some(0))),
            (b"junk", b"12345"),
            (b"data", &data),
            (b"LIST", b"trailing"),
        ]);
        assert_eq!(load(&bytes).unwrap().samples(), &pcm);
    }

    #[test]
    fn data_before_fmt_is_accepted() {
        let bytes = riff_wave(&[
            (b"data", &[1, 0, 2, 0]),
            (b"fmt ", &fmt_body(1, 1, 8000, 2, 16, None)),
        ]);
        assert_eq!(load(&bytes).unwrap().samples(), &[1, 2]);
    }

    #[test]
    fn inconsistent_byte_rate_and_odd_fmt_size_are_tolerated() {
        // hound rejects both; neither matters for decoding.
        let mut fmt = fmt_body(1, 1, 8000, 2, 16, Some(2));
        fmt[8..12].copy_from_slice(&12345u32.to_le_bytes());
        fmt.extend_from_slice(&[0, 0]); // 20-byte fmt chunk
        let bytes = riff_wave(&[(b"fmt ", &fmt), (b"data", &[1, 0, 2, 0])]);
        assert_eq!(load(&bytes).unwrap().samples(), &[1, 2]);
    }

    // ------------------------------------------------------------ errors

    #[test]
    fn error_messages_name_the_file_and_the_problem() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"hello, world, not audio".to_vec(), "x.wav: not a RIFF/WAVE file"),
            (Vec::new(), "x.wav: not a RIFF/WAVE file (the file is empty)"),
            (b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(), "x.wav: not a RIFF/WAVE file (it looks like MP3 or AAC)"),
            (b"RIFF\x04\x00".to_vec(), "x.wav: not a RIFF/WAVE file (the file is cut short)"),
            (b"RIFF\x04\x00\x00\x00AVI LIST".to_vec(), "x.wav: not a RIFF/WAVE file (it is a RIFF file of another kind)"),
            (
                riff_wave(&[(b"fmt ", &fmt_body(0x11, 1, 8000, 256, 4, Some(2))), (b"data", &[0; 256])]),
                "x.wav: unsupported WAV format tag 0x0011 (IMA ADPCM); convert it to PCM",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(0x55, 1, 8000, 1, 0, None)), (b"data", &[0; 256])]),
                "x.wav: unsupported WAV format tag 0x0055 (MP3); convert it to PCM",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(3, 1, 8000, 8, 64, None)), (b"data", &[0; 64])]),
                "x.wav: unsupported sample layout: 64-bit float samples; convert it to 16-bit PCM",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(1, 1, 500, 2, 16, None)), (b"data", &[0; 64])]),
                "x.wav: unsupported sample rate 500 Hz (expected 1000 to 384000 Hz)",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(1, 0, 8000, 2, 16, None)), (b"data", &[0; 64])]),
                "x.wav: malformed WAV file: the fmt chunk says 0 channels",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(1, 2, 8000, 3, 8, None)), (b"data", &[0; 64])]),
                "x.wav: malformed WAV file: block align of 3 bytes is not a whole number of bytes for each of 2 channels",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(1, 1, 8000, 2, 16, None))]),
                "x.wav: malformed WAV file: no data chunk",
            ),
            (
                riff_wave(&[(b"data", &[0; 64])]),
                "x.wav: malformed WAV file: no fmt chunk before the audio data",
            ),
            (
                riff_wave(&[(b"fmt ", &[1, 0, 1, 0])]),
                "x.wav: malformed WAV file: the fmt chunk is shorter than 16 bytes",
            ),
            (
                riff_wave(&[(b"fmt ", &fmt_body(1, 1, 8000, 2, 16, None)), (b"data", &[7])]),
                "x.wav: no audio samples",
            ),
        ];
        for (bytes, want) in cases {
            let got = load(&bytes)
                .map(|p| format!("{p:?}"))
                .unwrap_err()
                .to_string();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn ten_minutes_is_the_limit() {
        let fmt = fmt_body(7, 1, 1000, 1, 8, None);
        let e = load(&riff_wave(&[
            (b"fmt ", &fmt),
            (b"data", &vec![0xFF; 601_000]),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.wav: audio is 601.0 s long; prompts are limited to 10 minutes"
        );
        assert_eq!(e.name(), "x.wav");
    }

    #[test]
    fn too_short_to_make_one_sample() {
        // One frame at 48 kHz is a twelfth of an 8 kHz sample.
        let e = load(&hound_wav(
            spec(1, 48000, 16, SampleFormat::Int),
            &[1000i16],
        ))
        .unwrap_err();
        assert!(matches!(e, PromptError::Empty { .. }), "{e}");
    }

    #[test]
    fn from_file_reads_and_names_the_file() {
        let dir = std::env::temp_dir();
        let missing = dir.join("pinbridge-no-such-prompt.wav");
        let e = Prompt::from_file(&missing).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{msg}"
        );

        let path = dir.join(format!("pinbridge-prompt-test-{}.wav", std::process::id()));
        let pcm = test_pcm();
        std::fs::write(&path, hound_wav(spec(1, 8000, 16, SampleFormat::Int), &pcm)).unwrap();
        let p = Prompt::from_file(&path);
        let _ = std::fs::remove_file(&path);
        let p = p.unwrap();
        assert_eq!(p.samples(), &pcm[..]);
        assert_eq!(p.name(), path.display().to_string());
    }

    // ------------------------------------------------------------ robustness

    fn seeds() -> Vec<Vec<u8>> {
        let pcm: Vec<i16> = (0..200).map(|i| (i * 150) as i16).collect();
        let mut ext = fmt_body(0xFFFE, 1, 8000, 1, 8, Some(22));
        ext.extend_from_slice(&8u16.to_le_bytes());
        ext.extend_from_slice(&4u32.to_le_bytes());
        ext.extend_from_slice(&[0x07, 0x00]);
        ext.extend_from_slice(&riff::GUID_TAIL_FOR_TESTS);
        vec![
            hound_wav(spec(1, 8000, 16, SampleFormat::Int), &pcm),
            hound_wav(spec(2, 16000, 16, SampleFormat::Int), &pcm),
            hound_wav(
                spec(3, 8000, 24, SampleFormat::Int),
                &pcm[..198].iter().map(|&s| s as i32).collect::<Vec<_>>(),
            ),
            hound_wav(
                spec(1, 11025, 32, SampleFormat::Float),
                &pcm.iter().map(|&s| s as f32 / 4e4).collect::<Vec<_>>(),
            ),
            riff_wave(&[
                (b"fmt ", &fmt_body(7, 1, 8000, 1, 8, Some(0))),
                (b"data", &[0x55; 300]),
            ]),
            riff_wave(&[(b"LIST", b"abc"), (b"fmt ", &ext), (b"data", &[0x12; 301])]),
            streamed(0xFFFF_FFFF, 0xFFFF_FFFF, &pcm),
        ]
    }

    #[test]
    fn every_truncation_is_handled() {
        for seed in seeds() {
            // Every cut inside the headers, then a spread through the audio.
            for len in (0..seed.len()).filter(|&n| n < 128 || n % 13 == 0) {
                let _ = load(&seed[..len]);
            }
        }
    }

    #[test]
    fn mutated_and_random_inputs_never_panic() {
        let mut rng = TestRng::new(0x9E37_79B9_7F4A_7C15);
        let seeds = seeds();
        for round in 0..3000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.index(4) {
                // Mostly in the header, where the sizes and fields are.
                let span = if rng.index(4) == 0 {
                    bytes.len()
                } else {
                    bytes.len().min(80)
                };
                let at = rng.index(span);
                bytes[at] = rng.byte();
            }
            if rng.index(3) == 0 {
                bytes.truncate(rng.index(bytes.len() + 1));
            }
            let _ = load(&bytes);
        }
        for _ in 0..2000 {
            let len = rng.index(120);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            if rng.index(2) == 0 && len >= 12 {
                bytes[0..4].copy_from_slice(b"RIFF");
                bytes[8..12].copy_from_slice(b"WAVE");
                if len >= 20 && rng.index(2) == 0 {
                    bytes[12..16].copy_from_slice(b"fmt ");
                    bytes[16..20].copy_from_slice(&16u32.to_le_bytes());
                }
            }
            let _ = load(&bytes);
        }
    }
}
