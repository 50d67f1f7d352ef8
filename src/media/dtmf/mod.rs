//! DTMF from every kind of caller: RFC 4733 telephone-events
//! ([`rfc4733`]), in-band tones found by a Goertzel detector ([`inband`])
//! and SIP INFO bodies ([`info`]). Each is a sans-I/O core: packets or
//! samples and their time in, digits out.

pub mod capture;
pub mod detect;
pub mod inband;
pub mod info;
pub mod rfc4733;

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfMethod {
    Rfc4733,
    Inband,
    Info,
}

impl DtmfMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfMethod::Rfc4733 => "rfc4733",
            DtmfMethod::Inband => "inband",
            DtmfMethod::Info => "info",
        }
    }
}

/// The 16 DTMF keys in RFC 4733 event-code order (0–9, *, #, A–D).
pub const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// RFC 4733 event code (0–15) to key.
pub fn event_to_key(code: u8) -> Option<char> {
    KEYS.get(usize::from(code)).copied()
}

/// Key to RFC 4733 event code; accepts lower-case a–d.
pub fn key_to_event(key: char) -> Option<u8> {
    let k = key.to_ascii_uppercase();
    KEYS.iter().position(|&c| c == k).map(|i| i as u8)
}

/// Which DTMF methods a call listens to (config `dtmf_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// All three. In-band detection runs only until the caller has sent an
    /// RFC 4733 event (a phone that sends events does not need, and should
    /// not pay for, tone detection), and a press reported by two methods is
    /// reported once.
    #[default]
    Auto,
    Rfc4733,
    Inband,
    Info,
}

impl DtmfMode {
    pub fn from_name(s: &str) -> Option<DtmfMode> {
        match s {
            "auto" => Some(DtmfMode::Auto),
            "rfc4733" | "rfc2833" => Some(DtmfMode::Rfc4733),
            "inband" => Some(DtmfMode::Inband),
            "info" => Some(DtmfMode::Info),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for code in 0..16u8 {
            assert_eq!(key_to_event(event_to_key(code).unwrap()), Some(code));
        }
        assert_eq!(event_to_key(16), None);
        assert_eq!(key_to_event('b'), Some(13));
        assert_eq!(key_to_event('x'), None);
    }
}
// ----------------------------------------------------------------------
// One digit stream per call.

use std::time::{Duration, Instant};

use inband::InbandDetector;
use rfc4733::{Rfc4733Event, Rfc4733Receiver};

/// A key press, from whichever method delivered it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    pub key: char,
    /// When the press started (as well as the method can tell).
    pub at: Instant,
    pub method: DtmfMethod,
}

/// Two reports of the same key this close together, by different methods,
/// are one press (a phone sending events and tones, or INFO and events).
const SAME_PRESS_WINDOW: Duration = Duration::from_millis(250);
const RECENT: usize = 8;
const QUEUE: usize = 32;

/// Merges RFC 4733, in-band and SIP INFO into one digit stream for a call.
/// Allocation-free after construction.
pub struct DtmfReceiver {
    mode: DtmfMode,
    rfc4733: Rfc4733Receiver,
    inband: InbandDetector,
    /// Auto mode stops tone detection once events are seen.
    events_seen: bool,
    /// The time of in-band sample 0 (set by the first audio frame).
    audio_origin: Option<Instant>,
    recent: [Option<DigitEvent>; RECENT],
    recent_next: usize,
    queue: [Option<DigitEvent>; QUEUE],
    head: usize,
    len: usize,
}

impl DtmfReceiver {
    pub fn new(mode: DtmfMode) -> Self {
        DtmfReceiver {
            mode,
            rfc4733: Rfc4733Receiver::new(),
            inband: InbandDetector::new(),
            events_seen: false,
            audio_origin: None,
            recent: [None; RECENT],
            recent_next: 0,
            queue: [None; QUEUE],
            head: 0,
            len: 0,
        }
    }

    pub fn mode(&self) -> DtmfMode {
        self.mode
    }

    fn listens(&self, method: DtmfMethod) -> bool {
        match (self.mode, method) {
            (DtmfMode::Auto, DtmfMethod::Inband) => !self.events_seen,
            (DtmfMode::Auto, _) => true,
            (DtmfMode::Rfc4733, m) => m == DtmfMethod::Rfc4733,
            (DtmfMode::Inband, m) => m == DtmfMethod::Inband,
            (DtmfMode::Info, m) => m == DtmfMethod::Info,
        }
    }

    /// Is in-band detection running (so decoded audio should be passed in)?
    pub fn wants_audio(&self) -> bool {
        self.listens(DtmfMethod::Inband)
    }

    /// A telephone-event RTP packet (already filtered by payload type).
    pub fn on_telephone_event(
        &mut self,
        now: Instant,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        if !self.listens(DtmfMethod::Rfc4733) {
            return;
        }
        self.rfc4733
            .handle_packet(now, ssrc, sequence, timestamp, marker, payload);
        self.drain_rfc4733();
    }

    /// Decoded audio of one packet, in stream order; `now` is when it
    /// arrived (the first frame fixes the sample clock's origin).
    pub fn on_audio(&mut self, now: Instant, samples: &[i16]) {
        if !self.wants_audio() {
            return;
        }
        let origin = *self.audio_origin.get_or_insert(now);
        self.inband.process(samples);
        while let Some(d) = self.inband.poll_digit() {
            let at = origin + Duration::from_micros(d.start_sample * 125);
            self.report(DigitEvent {
                key: d.key,
                at,
                method: DtmfMethod::Inband,
            });
        }
    }

    /// A digit from a SIP INFO request.
    pub fn on_info(&mut self, now: Instant, key: char) {
        if self.listens(DtmfMethod::Info) {
            self.report(DigitEvent {
                key,
                at: now,
                method: DtmfMethod::Info,
            });
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rfc4733.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.rfc4733.handle_timeout(now);
        self.drain_rfc4733();
    }

    /// A tone is sounding right now (keep it out of the conference mix).
    pub fn tone_present(&self) -> bool {
        self.wants_audio() && self.inband.tone_present()
    }

    pub fn poll_digit(&mut self) -> Option<DigitEvent> {
        if self.len == 0 {
            return None;
        }
        let d = self.queue[self.head].take();
        self.head = (self.head + 1) % QUEUE;
        self.len -= 1;
        d
    }

    fn drain_rfc4733(&mut self) {
        while let Some(e) = self.rfc4733.poll_event() {
            if let Rfc4733Event::Started { key, at, .. } = e {
                self.events_seen = true;
                self.report(DigitEvent {
                    key,
                    at,
                    method: DtmfMethod::Rfc4733,
                });
            }
        }
    }

    fn report(&mut self, d: DigitEvent) {
        let duplicate = self.recent.iter().flatten().any(|r| {
            r.key == d.key && r.method != d.method && {
                let gap = if r.at > d.at {
                    r.at - d.at
                } else {
                    d.at - r.at
                };
                gap <= SAME_PRESS_WINDOW
            }
        });
        self.recent[self.recent_next] = Some(d);
        self.recent_next = (self.recent_next + 1) % RECENT;
        if duplicate {
            return;
        }
        if self.len == QUEUE {
            // Nobody is reading: drop the oldest rather than grow.
            self.head = (self.head + 1) % QUEUE;
            self.len -= 1;
        }
        self.queue[(self.head + self.len) % QUEUE] = Some(d);
        self.len += 1;
    }
}
