//! Plays a sequence of prompts as fixed-size G.711 frames. The prompts are
//! pre-encoded at start-up, so producing a frame is a slice copy: no
//! allocation or encoding per packet.

use super::g711::Codec;
use super::prompt::Prompt;

/// What the player put into a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Prompt audio; `first` is set on the first frame of a sequence (the
    /// start of a talkspurt, which gets the RTP marker bit).
    Audio { first: bool },
    /// Nothing is playing: the frame holds silence.
    Silence,
}

#[derive(Debug, Default)]
pub struct PromptPlayer {
    sequence: Vec<Prompt>,
    index: usize,
    offset: usize,
    started: bool,
    /// Set when a sequence has just run out; taken by `take_finished`.
    finished: bool,
}

impl PromptPlayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts playing `prompts` in order, replacing anything playing.
    pub fn play(&mut self, prompts: Vec<Prompt>) {
        self.sequence = prompts;
        self.index = 0;
        self.offset = 0;
        self.started = false;
        self.finished = false;
    }

    /// Appends prompts after whatever is playing (or starts them).
    pub fn enqueue(&mut self, prompts: Vec<Prompt>) {
        if !self.is_playing() {
            self.play(prompts);
            return;
        }
        self.sequence.extend(prompts);
    }

    pub fn stop(&mut self) {
        self.sequence.clear();
        self.index = 0;
        self.offset = 0;
        self.finished = false;
    }

    pub fn is_playing(&self) -> bool {
        self.index < self.sequence.len()
    }

    /// True once after a sequence played to its end.
    pub fn take_finished(&mut self) -> bool {
        std::mem::take(&mut self.finished)
    }

    /// Fills `out` (one packet's worth of encoded samples) with the next
    /// audio, continuing across prompt boundaries and padding the end of
    /// the sequence with silence.
    pub fn fill(&mut self, codec: Codec, out: &mut [u8]) -> Frame {
        if !self.is_playing() {
            out.fill(codec.silence_byte());
            return Frame::Silence;
        }
        let first = !self.started;
        self.started = true;
        let mut written = 0;
        while written < out.len() && self.index < self.sequence.len() {
            let src = self.sequence[self.index].encoded(codec);
            let n = (src.len() - self.offset).min(out.len() - written);
            out[written..written + n].copy_from_slice(&src[self.offset..self.offset + n]);
            written += n;
            self.offset += n;
            if self.offset >= src.len() {
                self.index += 1;
                self.offset = 0;
            }
        }
        out[written..].fill(codec.silence_byte());
        if self.index >= self.sequence.len() {
            self.sequence.clear();
            self.index = 0;
            self.finished = true;
        }
        Frame::Audio { first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(n: usize, v: i16) -> Prompt {
        Prompt::from_pcm("t", vec![v; n])
    }

    #[test]
    fn plays_sequence_then_silence_and_reports_once() {
        let mut p = PromptPlayer::new();
        p.play(vec![prompt(200, 1000), prompt(100, -1000)]);
        let mut frame = [0u8; 160];
        assert_eq!(
            p.fill(Codec::Pcmu, &mut frame),
            Frame::Audio { first: true }
        );
        assert!(frame.iter().all(|&b| b == Codec::Pcmu.encode_sample(1000)));
        assert_eq!(
            p.fill(Codec::Pcmu, &mut frame),
            Frame::Audio { first: false }
        );
        // 40 samples of the first prompt, 100 of the second, 20 of silence.
        assert!(frame[..40]
            .iter()
            .all(|&b| b == Codec::Pcmu.encode_sample(1000)));
        assert!(frame[40..140]
            .iter()
            .all(|&b| b == Codec::Pcmu.encode_sample(-1000)));
        assert!(frame[140..]
            .iter()
            .all(|&b| b == Codec::Pcmu.silence_byte()));
        assert!(p.take_finished());
        assert!(!p.take_finished());
        assert_eq!(p.fill(Codec::Pcmu, &mut frame), Frame::Silence);
    }

    #[test]
    fn enqueue_appends_or_starts() {
        let mut p = PromptPlayer::new();
        p.enqueue(vec![prompt(100, 1)]);
        p.enqueue(vec![prompt(100, 2)]);
        let mut frame = [0u8; 160];
        assert_eq!(
            p.fill(Codec::Pcmu, &mut frame),
            Frame::Audio { first: true }
        );
        assert!(frame[..100]
            .iter()
            .all(|&b| b == Codec::Pcmu.encode_sample(1)));
        assert!(frame[100..]
            .iter()
            .all(|&b| b == Codec::Pcmu.encode_sample(2)));
        assert!(!p.take_finished(), "40 samples of the second prompt remain");
    }

    #[test]
    fn stop_does_not_report_finished() {
        let mut p = PromptPlayer::new();
        p.play(vec![prompt(1000, 5)]);
        let mut frame = [0u8; 160];
        p.fill(Codec::Pcma, &mut frame);
        p.stop();
        assert!(!p.take_finished());
        assert_eq!(p.fill(Codec::Pcma, &mut frame), Frame::Silence);
        assert!(frame.iter().all(|&b| b == Codec::Pcma.silence_byte()));
    }
}
