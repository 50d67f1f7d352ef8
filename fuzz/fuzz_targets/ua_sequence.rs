//! The user agent core driven like the SIP task drives it: datagrams and
//! TCP segments from a few peers, a fake clock that moves forward and fires
//! every timer on the way, every output polled, and an application that
//! answers, rings, rejects, responds to and hangs up the calls it is told
//! about, places calls, sends MESSAGEs and registers, as the input says.
//!
//! Input: records separated by the byte 0x1e (ASCII record separator).
//! The first byte of a record says what it is; numbers are decimal.
//!
//! | record            | meaning                                               |
//! |-------------------|-------------------------------------------------------|
//! | `U<s><message>`   | a UDP datagram from peer `s` (`0`, `1`, `2`)          |
//! | `T<s><bytes>`     | bytes on peer `s`'s TCP connection (framed as the shell does) |
//! | `W<ms>`           | the clock advances `ms` milliseconds                  |
//! | `a<n>`            | answer incoming call `n` (SDP answer to its offer, or an offer) |
//! | `r<n>`            | send 180 Ringing for call `n`                         |
//! | `x<n> <k>`        | reject call `n` with the `k`th of a few statuses      |
//! | `h<n>`            | hang up call `n`                                      |
//! | `p<n> <k>`        | answer pending re-INVITE/UPDATE/INFO `n` with status `k` (it is then no longer pending) |
//! | `o<s> <tcp>`      | place a call to peer `s` (over TCP if `tcp` is odd)   |
//! | `m<s>`            | send a MESSAGE to peer `s`                            |
//! | `g<s> <expires>`  | register with peer `s`                                |
//! | `u<n>`            | unregister registration `n`                           |
//! | `s`               | shut down                                             |
//!
//! Call, request and registration numbers index what the user agent has
//! reported so far (modulo their count). Peers cannot guess the random
//! values we put in messages, so in `U`/`T` records these tokens are
//! replaced by the values of the latest message we sent:
//! `$T` the To tag of our latest response; and of our latest request
//! `$V` the top Via, `$R` the From, `$O` the To, `$I` the Call-ID,
//! `$C` the CSeq, `$F` the From tag, `$B` the branch.
//!
//! Properties checked beyond "no panic": everything the user agent sends
//! parses; after `shutdown` and enough time without input it is idle.
//!
//! To see what an input does, replay it with `PINBRIDGE_FUZZ_TRACE=1`: the
//! records, the start line of everything sent and the events go to stderr.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pinbridge::media::g711::Codec;
use pinbridge::sip::auth::Credentials;
use pinbridge::sip::flow::{ConnectionId, Flow, Transport};
use pinbridge::sip::header::{NameAddr, Via};
use pinbridge::sip::message::{parse_datagram, Framed, Message, StreamFramer};
use pinbridge::sip::sdp::{self, Direction, LocalMedia, SdpSession};
use pinbridge::sip::ua::{
    CallHandle, Event, OutboundCall, OutboundMessage, Registration, RequestId, UaConfig, UserAgent,
};

const PEERS: [&str; 3] = ["192.0.2.10:5071", "198.51.100.7:5060", "[2001:db8::7]:5062"];
const LOCAL_V4: &str = "192.0.2.1:5060";
const LOCAL_V6: &str = "[2001:db8::1]:5060";
/// Statuses the application answers with (`x` and `p` records).
const STATUSES: [u16; 8] = [200, 486, 488, 403, 415, 480, 500, 603];
/// Longest clock step of one `W` record (an hour).
const MAX_STEP_MS: u64 = 3_600_000;
/// Remembered calls, requests and registrations (oldest dropped first).
const REMEMBERED: usize = 64;

/// Whether to print what happens (see the module docs).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("PINBRIDGE_FUZZ_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    for record in data.split(|&b| b == 0x1e) {
        h.record(record);
    }
    h.finish();
});

/// The values a peer needs to answer or follow up what we sent.
#[derive(Default)]
struct Learned {
    to_tag: String,
    via: String,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    from_tag: String,
    branch: String,
}

struct Tcp {
    framer: StreamFramer,
    conn: ConnectionId,
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    tcp: [Tcp; 3],
    next_conn: u64,
    calls: Vec<(CallHandle, Option<Bytes>)>,
    pending: Vec<(CallHandle, RequestId, Option<Bytes>)>,
    registrations: Vec<RequestId>,
    learned: Learned,
    sdp_session: SdpSession,
}

impl Harness {
    fn new() -> Self {
        Harness {
            ua: UserAgent::with_seed(UaConfig::default(), 7),
            now: Instant::now(),
            tcp: [0, 1, 2].map(|i| Tcp {
                framer: StreamFramer::new(),
                conn: ConnectionId(i),
            }),
            next_conn: 3,
            calls: Vec::new(),
            pending: Vec::new(),
            registrations: Vec::new(),
            learned: Learned::default(),
            sdp_session: SdpSession::new(1),
        }
    }

    fn flow(&self, peer: usize, transport: Transport) -> Flow {
        let remote: SocketAddr = PEERS[peer % PEERS.len()]
            .parse()
            .unwrap_or(([0; 4], 0).into());
        let local = if remote.is_ipv6() { LOCAL_V6 } else { LOCAL_V4 };
        Flow {
            transport,
            remote,
            local: local.parse().unwrap_or(([0; 4], 0).into()),
            connection: match transport {
                Transport::Tcp => Some(self.tcp[peer % PEERS.len()].conn),
                Transport::Udp => None,
            },
        }
    }

    fn record(&mut self, record: &[u8]) {
        let Some((&op, rest)) = record.split_first() else {
            return;
        };
        if tracing() {
            let head = record.split(|&b| b == b'\n').next().unwrap_or_default();
            eprintln!("-> {}", String::from_utf8_lossy(head).trim_end());
        }
        match op {
            b'U' | b'T' => {
                let Some((&peer, message)) = rest.split_first() else {
                    return;
                };
                let peer = usize::from(peer) % PEERS.len();
                let message = self.substitute(message);
                if op == b'U' {
                    let flow = self.flow(peer, Transport::Udp);
                    self.ua.handle_input(self.now, flow, &message);
                } else {
                    self.tcp_segment(peer, &message);
                }
            }
            b'W' => {
                let [ms, _] = numbers(rest);
                self.advance(Duration::from_millis(ms.min(MAX_STEP_MS)));
            }
            b'a' => {
                if let Some((call, offer)) = pick(&self.calls, numbers(rest)[0]).cloned() {
                    let body = self.answer_body(offer.as_deref());
                    let _ = self.ua.answer(self.now, call, body);
                }
            }
            b'r' => {
                if let Some((call, _)) = pick(&self.calls, numbers(rest)[0]) {
                    let _ = self.ua.ring(*call);
                }
            }
            b'x' => {
                let [n, k] = numbers(rest);
                if let Some((call, _)) = pick(&self.calls, n) {
                    let status = STATUSES[k as usize % STATUSES.len()];
                    let _ = self.ua.reject(self.now, *call, status, "Rejected");
                }
            }
            b'h' => {
                if let Some((call, _)) = pick(&self.calls, numbers(rest)[0]) {
                    self.ua.hangup(self.now, *call);
                }
            }
            b'p' => {
                let [n, k] = numbers(rest);
                if let Some((call, request, offer)) = take(&mut self.pending, n) {
                    let status = STATUSES[k as usize % STATUSES.len()];
                    let body = (status < 300).then(|| self.answer_body(offer.as_deref()));
                    let _ = self
                        .ua
                        .respond(self.now, call, request, status, "Answer", body);
                }
            }
            b'o' => {
                let [peer, tcp] = numbers(rest);
                let transport = if tcp % 2 == 1 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let flow = self.flow(peer as usize, transport);
                let sdp = Bytes::from(sdp::offer(
                    &mut self.sdp_session,
                    &local_media(flow.local),
                    Direction::SendRecv,
                ));
                let call = OutboundCall {
                    request_uri: format!("sip:+15551234567@{}", flow.remote),
                    from: "sip:pinbridge@example.com".into(),
                    to: format!("sip:+15551234567@{}", flow.remote),
                    flow,
                    sdp: sdp.clone(),
                    credentials: Some(credentials()),
                    extra_headers: vec![(
                        "P-Asserted-Identity".into(),
                        "<sip:1000@example.com>".into(),
                    )],
                };
                if let Ok(call) = self.ua.call(self.now, call) {
                    remember(&mut self.calls, (call, None));
                }
            }
            b'm' => {
                let flow = self.flow(numbers(rest)[0] as usize, Transport::Udp);
                let _ = self.ua.message(
                    self.now,
                    OutboundMessage {
                        request_uri: "sip:alice@example.com".into(),
                        from: "sip:pinbridge@example.com".into(),
                        to: "sip:alice@example.com".into(),
                        flow,
                        content_type: "text/plain;charset=UTF-8".into(),
                        body: Bytes::from_static(b"Your code is 123456"),
                        credentials: Some(credentials()),
                    },
                );
            }
            b'g' => {
                let [peer, expires] = numbers(rest);
                let flow = self.flow(peer as usize, Transport::Udp);
                let registration = Registration {
                    registrar_uri: "sip:example.com".into(),
                    aor_user: "pinbridge".into(),
                    domain: "example.com".into(),
                    flow,
                    expires: u32::try_from(expires).unwrap_or(u32::MAX),
                    // As with `[trunk] realm` set: other realms are refused.
                    credentials: Some(Credentials {
                        realm: Some("trunk.example.net".into()),
                        ..credentials()
                    }),
                };
                if let Ok(id) = self.ua.register(self.now, registration) {
                    remember(&mut self.registrations, id);
                }
            }
            b'u' => {
                if let Some(id) = pick(&self.registrations, numbers(rest)[0]) {
                    let _ = self.ua.unregister(self.now, *id);
                }
            }
            b's' => self.ua.shutdown(self.now),
            _ => {}
        }
        self.drain();
    }

    /// Bytes on a TCP connection, framed and handed over as the shell does;
    /// a stream that cannot be framed closes the connection (the next
    /// segment opens a new one).
    fn tcp_segment(&mut self, peer: usize, bytes: &[u8]) {
        self.tcp[peer].framer.push(bytes);
        loop {
            let Some(framed) = self.tcp[peer].framer.next_message() else {
                return;
            };
            let flow = self.flow(peer, Transport::Tcp);
            match framed {
                Framed::Message(parsed) => self.ua.handle_parsed(self.now, flow, parsed),
                Framed::Fatal(_, partial) => {
                    if let Some(parsed) = partial {
                        self.ua.handle_parsed(self.now, flow, parsed);
                    }
                    self.tcp[peer] = Tcp {
                        framer: StreamFramer::new(),
                        conn: ConnectionId(self.next_conn),
                    };
                    self.next_conn += 1;
                    return;
                }
            }
            self.drain();
        }
    }

    /// Moves the clock forward, firing every timer due on the way in order.
    fn advance(&mut self, by: Duration) {
        // A timer that stays due would loop here forever: libFuzzer's
        // -timeout reports that as a hang.
        let target = self.now + by;
        while let Some(at) = self.ua.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.ua.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.ua.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            let parsed = match parse_datagram(&t.payload) {
                Ok(p) => p,
                Err(e) => panic!(
                    "the user agent sent a message that does not parse ({e}): {:?}",
                    t.payload
                ),
            };
            if tracing() {
                let head = t.payload.split(|&b| b == b'\r').next().unwrap_or_default();
                eprintln!(
                    "   sent to {}: {}",
                    t.flow.remote,
                    String::from_utf8_lossy(head)
                );
            }
            self.learn(&parsed.message);
        }
        while let Some(e) = self.ua.poll_event() {
            if tracing() {
                eprintln!("   event {e:?}");
            }
            match e {
                Event::Incoming { call, info } => remember(&mut self.calls, (call, info.offer)),
                Event::Reoffer {
                    call,
                    request,
                    offer,
                    ..
                } => remember(&mut self.pending, (call, request, offer)),
                Event::Info { call, request, .. } => {
                    remember(&mut self.pending, (call, request, None))
                }
                // Outcomes need no answer from the application.
                _ => {}
            }
        }
    }

    fn learn(&mut self, m: &Message) {
        let l = &mut self.learned;
        match m {
            Message::Response(r) => {
                if let Some(tag) = r
                    .headers
                    .get("To")
                    .and_then(|v| NameAddr::parse("To", v).ok())
                    .and_then(|na| na.tag().map(str::to_string))
                {
                    l.to_tag = tag;
                }
            }
            Message::Request(r) => {
                let h = &r.headers;
                let get = |n: &str| h.get(n).unwrap_or_default().to_string();
                l.via = get("Via");
                l.from = get("From");
                l.to = get("To");
                l.call_id = get("Call-ID");
                l.cseq = get("CSeq");
                l.from_tag = NameAddr::parse("From", &l.from)
                    .ok()
                    .and_then(|na| na.tag().map(str::to_string))
                    .unwrap_or_default();
                l.branch = Via::parse_all(&l.via)
                    .ok()
                    .and_then(|v| v.first().and_then(|v| v.branch().map(str::to_string)))
                    .unwrap_or_default();
            }
        }
    }

    /// The input with the `$X` tokens replaced.
    fn substitute(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'$' {
                let l = &self.learned;
                let value = match input.get(i + 1) {
                    Some(b'T') => Some(&l.to_tag),
                    Some(b'V') => Some(&l.via),
                    Some(b'R') => Some(&l.from),
                    Some(b'O') => Some(&l.to),
                    Some(b'I') => Some(&l.call_id),
                    Some(b'C') => Some(&l.cseq),
                    Some(b'F') => Some(&l.from_tag),
                    Some(b'B') => Some(&l.branch),
                    _ => None,
                };
                if let Some(v) = value {
                    out.extend_from_slice(v.as_bytes());
                    i += 2;
                    continue;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }

    /// What the call task would send: the SDP answer to the offer, or our
    /// offer when there is none or it cannot be answered.
    fn answer_body(&mut self, offer: Option<&[u8]>) -> Bytes {
        let local = local_media(LOCAL_V4.parse().unwrap_or(([0; 4], 0).into()));
        if let Some(Ok(offer)) = offer.map(sdp::parse) {
            if let Ok((_, text)) = sdp::answer(&mut self.sdp_session, &offer, &local) {
                return Bytes::from(text);
            }
        }
        Bytes::from(sdp::offer(
            &mut self.sdp_session,
            &local,
            Direction::SendRecv,
        ))
    }

    /// Shuts down and lets time pass without input: whatever the peers did,
    /// the user agent must then be idle (every call ended, every
    /// transaction finished).
    fn finish(&mut self) {
        self.ua.shutdown(self.now);
        self.drain();
        for _ in 0..10 {
            self.advance(Duration::from_secs(60));
        }
        assert!(
            self.ua.is_idle(),
            "still {} calls (or client transactions) 10 minutes after shutdown",
            self.ua.call_count()
        );
    }
}

fn local_media(at: SocketAddr) -> LocalMedia {
    LocalMedia {
        addr: at.ip(),
        port: 40_000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        ptime_ms: 20,
    }
}

fn credentials() -> Credentials {
    Credentials::new("pinbridge", "secret")
}

/// Up to two decimal numbers, separated by anything that is not a digit.
fn numbers(s: &[u8]) -> [u64; 2] {
    let mut out = [0u64; 2];
    let mut parts = s
        .split(|b| !b.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(2);
    for slot in &mut out {
        if let Some(p) = parts.next() {
            *slot = p.iter().fold(0u64, |n, d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
        }
    }
    out
}

fn pick<T>(items: &[T], n: u64) -> Option<&T> {
    if items.is_empty() {
        return None;
    }
    items.get((n % items.len() as u64) as usize)
}

/// Removes and returns item `n` (modulo the count).
fn take<T>(items: &mut Vec<T>, n: u64) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    Some(items.remove((n % items.len() as u64) as usize))
}

fn remember<T>(items: &mut Vec<T>, item: T) {
    if items.len() == REMEMBERED {
        items.remove(0);
    }
    items.push(item);
}
