//! RTP for the tests: a header codec and `RtpRecorder`, a UDP socket that
//! records every packet the server sends us, with arrival times, so tests
//! can check audio content, pacing, sequence numbers and timestamps.
//!
//! Independent of the server's media code (and of the `rtp-rs` crate) on
//! purpose.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::g711;

/// The fixed RTP header (RFC 3550 §5.1) plus CSRCs and extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpHeader {
    pub version: u8,
    pub padding: bool,
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// CSRC list (its length is the CSRC count).
    pub csrc: Vec<u32>,
    /// Header extension: (profile-defined 16 bits, data), if the X bit is set.
    pub extension: Option<(u16, Vec<u8>)>,
}

impl RtpHeader {
    /// A plain version-2 header without padding, CSRCs or extension.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            version: 2,
            padding: false,
            marker: false,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrc: Vec::new(),
            extension: None,
        }
    }

    pub fn with_marker(mut self, marker: bool) -> RtpHeader {
        self.marker = marker;
        self
    }

    /// Serialises header + payload. Padding is not generated (the flag is
    /// written as is, so tests can send a lying header on purpose).
    pub fn to_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 4 * self.csrc.len() + payload.len());
        let b0 = (self.version << 6)
            | (u8::from(self.padding) << 5)
            | (u8::from(self.extension.is_some()) << 4)
            | (self.csrc.len() as u8 & 0x0F);
        out.push(b0);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in &self.csrc {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some((profile, data)) = &self.extension {
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(payload);
        out
    }
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpParseError {
    TooShort,
    BadVersion(u8),
    /// Looks like RTCP (second byte 192..=223), e.g. with rtcp-mux.
    Rtcp,
    BadPadding,
}

/// Parses an RTP packet into its header and payload (padding removed).
pub fn parse_rtp(buf: &[u8]) -> Result<(RtpHeader, Vec<u8>), RtpParseError> {
    if buf.len() < 12 {
        return Err(RtpParseError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpParseError::BadVersion(version));
    }
    if (192..=223).contains(&buf[1]) {
        return Err(RtpParseError::Rtcp);
    }
    let csrc_count = usize::from(buf[0] & 0x0F);
    let mut pos = 12 + 4 * csrc_count;
    if buf.len() < pos {
        return Err(RtpParseError::TooShort);
    }
    let csrc = buf[12..pos].chunks(4).map(be_u32).collect();
    let extension = if buf[0] & 0x10 != 0 {
        let (ext, len) = parse_extension(&buf[pos..])?;
        pos += len;
        Some(ext)
    } else {
        None
    };
    let padding = buf[0] & 0x20 != 0;
    let end = payload_end(buf, pos, padding)?;
    let header = RtpHeader {
        version,
        padding,
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7F,
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: be_u32(&buf[4..8]),
        ssrc: be_u32(&buf[8..12]),
        csrc,
        extension,
    };
    Ok((header, buf[pos..end].to_vec()))
}

fn be_u32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0, |acc, x| (acc << 8) | u32::from(*x))
}

/// The header extension at the start of `buf`: (profile, data) and its
/// total length in bytes.
fn parse_extension(buf: &[u8]) -> Result<((u16, Vec<u8>), usize), RtpParseError> {
    if buf.len() < 4 {
        return Err(RtpParseError::TooShort);
    }
    let profile = u16::from_be_bytes([buf[0], buf[1]]);
    let words = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let total = 4 + 4 * words;
    if buf.len() < total {
        return Err(RtpParseError::TooShort);
    }
    Ok(((profile, buf[4..total].to_vec()), total))
}

/// End of the payload: the last byte counts the padding octets (RFC 3550).
fn payload_end(buf: &[u8], payload_start: usize, padding: bool) -> Result<usize, RtpParseError> {
    if !padding {
        return Ok(buf.len());
    }
    let pad = usize::from(*buf.last().ok_or(RtpParseError::TooShort)?);
    if pad == 0 || buf.len() - payload_start < pad {
        return Err(RtpParseError::BadPadding);
    }
    Ok(buf.len() - pad)
}

/// One RTP packet as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedPacket {
    pub arrival: Instant,
    pub from: SocketAddr,
    pub header: RtpHeader,
    pub payload: Vec<u8>,
}

/// A datagram that was not RTP (RTCP, garbage), kept for the tests to see.
#[derive(Debug, Clone)]
pub struct OtherDatagram {
    pub arrival: Instant,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
    pub error: RtpParseError,
}

#[derive(Default)]
struct Recording {
    packets: Vec<RecordedPacket>,
    others: Vec<OtherDatagram>,
    last_arrival: Option<Instant>,
}

/// Listens on 127.0.0.1:<ephemeral> (the port goes into our SDP) and
/// records everything received in a background task. Sending uses the same
/// socket, so the server sees RTP coming from the port we advertised
/// (symmetric RTP). The task ends when the recorder is dropped.
pub struct RtpRecorder {
    socket: Arc<UdpSocket>,
    recording: Arc<Mutex<Recording>>,
    count: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

impl Drop for RtpRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RtpRecorder {
    /// Binds on 127.0.0.1:0 and starts recording.
    pub async fn bind() -> io::Result<RtpRecorder> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let recording = Arc::new(Mutex::new(Recording::default()));
        let (count_tx, count) = watch::channel(0);
        let task = tokio::spawn(record_loop(socket.clone(), recording.clone(), count_tx));
        Ok(RtpRecorder {
            socket,
            recording,
            count,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        // A poisoned lock only means a panicking test thread; the data is fine.
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the RTP packets received so far, in arrival order.
    pub fn packets(&self) -> Vec<RecordedPacket> {
        self.lock().packets.clone()
    }

    /// Datagrams that did not parse as RTP (e.g. RTCP on a muxed port).
    pub fn other_datagrams(&self) -> Vec<OtherDatagram> {
        self.lock().others.clone()
    }

    /// Forgets everything recorded so far (e.g. between two prompts).
    pub fn clear(&self) {
        let mut rec = self.lock();
        rec.packets.clear();
        rec.others.clear();
    }

    /// Waits until at least `n` RTP packets are recorded in total (counting
    /// since the last `clear`); false on timeout.
    pub async fn wait_for_packets(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut count = self.count.clone();
        loop {
            if self.lock().packets.len() >= n {
                return true;
            }
            match tokio::time::timeout_at(deadline, count.changed()).await {
                Ok(Ok(())) => continue,
                // Sender gone (task ended) or timed out: one last look.
                _ => return self.lock().packets.len() >= n,
            }
        }
    }

    /// Returns true once no datagram has arrived for `gap` (measured from
    /// the last arrival, or from this call if none arrived since); false if
    /// packets still keep coming at `timeout`.
    pub async fn wait_for_silence(&self, gap: Duration, timeout: Duration) -> bool {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let last = self.lock().last_arrival.map_or(start, |t| t.max(start));
            let quiet_until = last + gap;
            let now = Instant::now();
            if now >= quiet_until {
                return true;
            }
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(quiet_until.min(deadline) - now).await;
        }
    }

    /// Sends raw bytes from the recorder's socket.
    pub async fn send_to(&self, addr: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        self.socket.send_to(bytes, addr).await.map(|_| ())
    }

    /// Sends one RTP packet from the recorder's socket.
    pub async fn send_rtp(
        &self,
        addr: SocketAddr,
        header: &RtpHeader,
        payload: &[u8],
    ) -> io::Result<()> {
        self.send_to(addr, &header.to_packet(payload)).await
    }

    /// Sends `samples` as a G.711 stream (PT 0 or 8) in 20 ms packets of 160
    /// samples, `pace` apart (20 ms for real time, zero for a burst), starting
    /// at `first` (its seq/ts/SSRC/marker; seq and ts advance per packet, the
    /// marker is kept on the first packet only). Returns the header of the
    /// next packet, so a stream can be continued.
    pub async fn send_g711(
        &self,
        addr: SocketAddr,
        first: RtpHeader,
        samples: &[i16],
        pace: Duration,
    ) -> io::Result<RtpHeader> {
        let pt = first.payload_type;
        let encoded = g711::encode(samples, pt).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("PT {pt} is not G.711"))
        })?;
        let mut header = first;
        let mut ticker = tokio::time::interval(pace.max(Duration::from_micros(1)));
        for chunk in encoded.chunks(160) {
            if !pace.is_zero() {
                ticker.tick().await;
            }
            self.send_rtp(addr, &header, chunk).await?;
            header.marker = false;
            header.sequence = header.sequence.wrapping_add(1);
            header.timestamp = header.timestamp.wrapping_add(chunk.len() as u32);
        }
        Ok(header)
    }

    /// Distinct SSRCs in order of first arrival.
    pub fn ssrcs(&self) -> Vec<u32> {
        let mut seen = Vec::new();
        for p in &self.lock().packets {
            if !seen.contains(&p.header.ssrc) {
                seen.push(p.header.ssrc);
            }
        }
        seen
    }

    /// The received audio as linear samples: packets with payload type
    /// `pt_filter` (or any G.711 type if `None`), grouped per SSRC in order
    /// of first arrival, each group in sequence-number order (16-bit wrap
    /// handled, duplicates dropped), decoded per packet by its PT.
    pub fn decode_audio(&self, pt_filter: Option<u8>) -> Vec<i16> {
        let packets = self.packets();
        let wanted = |pt: u8| match pt_filter {
            Some(f) => pt == f,
            None => pt == g711::PT_PCMU || pt == g711::PT_PCMA,
        };
        let selected: Vec<&RecordedPacket> = packets
            .iter()
            .filter(|p| wanted(p.header.payload_type))
            .collect();
        let mut samples = Vec::new();
        for stream in order_by_sequence(&selected) {
            for (_, p) in stream {
                if let Some(pcm) = g711::decode(&p.payload, p.header.payload_type) {
                    samples.extend(pcm);
                }
            }
        }
        samples
    }

    /// Gaps between consecutive arrivals (all RTP packets, arrival order):
    /// (mean, p50, p99, max); `None` with fewer than two packets.
    pub fn interarrival_stats(&self) -> Option<(Duration, Duration, Duration, Duration)> {
        let packets = self.packets();
        let mut gaps: Vec<Duration> = packets
            .windows(2)
            .map(|w| w[1].arrival.saturating_duration_since(w[0].arrival))
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort();
        let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
        let pct = |p: f64| gaps[((gaps.len() - 1) as f64 * p).round() as usize];
        Some((mean, pct(0.50), pct(0.99), gaps[gaps.len() - 1]))
    }

    /// Timestamp deltas between packets with consecutive sequence numbers,
    /// per SSRC (in order of first arrival), in sequence order. Gaps in the
    /// sequence are skipped; duplicates ignored. A PCMU stream at 20 ms
    /// gives all 160.
    pub fn timestamp_steps(&self) -> Vec<i64> {
        let packets = self.packets();
        let all: Vec<&RecordedPacket> = packets.iter().collect();
        let mut steps = Vec::new();
        for stream in order_by_sequence(&all) {
            for w in stream.windows(2) {
                let ((seq_a, a), (seq_b, b)) = (&w[0], &w[1]);
                if seq_b - seq_a == 1 {
                    let delta = b.header.timestamp.wrapping_sub(a.header.timestamp) as i32;
                    steps.push(i64::from(delta));
                }
            }
        }
        steps
    }
}

/// Groups packets per SSRC (first-arrival order) and sorts each group by
/// extended sequence number, unwrapping 16-bit wrap relative to the previous
/// packet in arrival order; drops duplicate sequence numbers.
fn order_by_sequence<'a>(packets: &[&'a RecordedPacket]) -> Vec<Vec<(i64, &'a RecordedPacket)>> {
    let mut order: Vec<u32> = Vec::new();
    let mut streams: HashMap<u32, Vec<(i64, &'a RecordedPacket)>> = HashMap::new();
    for p in packets {
        let ssrc = p.header.ssrc;
        let stream = streams.entry(ssrc).or_insert_with(|| {
            order.push(ssrc);
            Vec::new()
        });
        let ext = match stream.last() {
            Some((prev_ext, prev)) => {
                let delta = p.header.sequence.wrapping_sub(prev.header.sequence) as i16;
                prev_ext + i64::from(delta)
            }
            None => i64::from(p.header.sequence),
        };
        stream.push((ext, p));
    }
    order
        .into_iter()
        .filter_map(|ssrc| streams.remove(&ssrc))
        .map(|mut s| {
            s.sort_by_key(|(ext, _)| *ext);
            s.dedup_by_key(|(ext, _)| *ext);
            s
        })
        .collect()
}

/// The recording task: every datagram is stamped on arrival and parsed.
async fn record_loop(
    socket: Arc<UdpSocket>,
    recording: Arc<Mutex<Recording>>,
    count: watch::Sender<usize>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors (e.g. port unreachable) surface here on some
            // platforms; they are not fatal for a listening socket.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let arrival = Instant::now();
        let total = {
            let mut rec = recording.lock().unwrap_or_else(|e| e.into_inner());
            rec.last_arrival = Some(arrival);
            match parse_rtp(&buf[..len]) {
                Ok((header, payload)) => rec.packets.push(RecordedPacket {
                    arrival,
                    from,
                    header,
                    payload,
                }),
                Err(error) => rec.others.push(OtherDatagram {
                    arrival,
                    from,
                    bytes: buf[..len].to_vec(),
                    error,
                }),
            }
            rec.packets.len()
        };
        count.send_replace(total);
    }
}
