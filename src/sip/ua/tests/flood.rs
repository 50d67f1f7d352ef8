//! The user agent under an INVITE flood, on a fake clock: what it lets
//! through, what it sends back, and that other callers are still served.
//! The limiter itself is tested in `ua/source_limits.rs`; these tests
//! drive the whole core with byte strings, answering every call the way
//! the call task does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::flow::{Flow, Transport};
use crate::sip::message::{parse_datagram, Message};
use crate::sip::ua::{CallHandle, Event, UaConfig, UserAgent};

const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 18000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// An answer the size of the call task's.
const ANSWER: &str = "v=0\r\no=pinbridge 4242424242 1 IN IP4 192.0.2.1\r\ns=pinbridge\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

struct Net {
    ua: UserAgent,
    t0: Instant,
    now: Instant,
    /// Bytes and datagrams sent to each remote address.
    sent_to: HashMap<SocketAddr, (u64, u64)>,
    /// Responses to each remote address, by status.
    statuses: HashMap<SocketAddr, Vec<u16>>,
    /// Calls offered, and from where.
    offered: Vec<(CallHandle, SocketAddr)>,
    confirmed: Vec<CallHandle>,
    /// Answer every offered call at once, like the call task.
    auto_answer: bool,
    /// The To tag of the last 2xx to an INVITE we sent.
    last_2xx_tag: Option<String>,
}

impl Net {
    fn new(cfg: UaConfig) -> Self {
        let t0 = Instant::now();
        Net {
            ua: UserAgent::with_seed(cfg, 3),
            t0,
            now: t0,
            sent_to: HashMap::new(),
            statuses: HashMap::new(),
            offered: Vec::new(),
            confirmed: Vec::new(),
            auto_answer: true,
            last_2xx_tag: None,
        }
    }

    fn flow(remote: &str) -> Flow {
        Flow {
            transport: if remote.starts_with("tcp:") {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            remote: remote.trim_start_matches("tcp:").parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            connection: None,
        }
    }

    fn input(&mut self, remote: &str, msg: &str) {
        self.ua
            .handle_input(self.now, Self::flow(remote), msg.as_bytes());
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            while let Some(t) = self.ua.poll_transmit() {
                let e = self.sent_to.entry(t.flow.remote).or_default();
                e.0 += t.payload.len() as u64;
                e.1 += 1;
                if let Ok(p) = parse_datagram(&t.payload) {
                    if let Message::Response(r) = p.message {
                        self.statuses
                            .entry(t.flow.remote)
                            .or_default()
                            .push(r.status);
                        if r.status == 200 {
                            self.last_2xx_tag = r
                                .headers
                                .get("To")
                                .and_then(|to| to.split_once("tag="))
                                .map(|(_, tag)| tag.to_string());
                        }
                    }
                }
            }
            let mut answered = false;
            while let Some(e) = self.ua.poll_event() {
                match e {
                    Event::Incoming { call, info } => {
                        self.offered.push((call, info.flow.remote));
                        if self.auto_answer {
                            let sdp = Bytes::from_static(ANSWER.as_bytes());
                            self.ua.answer(self.now, call, sdp).unwrap();
                            answered = true;
                        }
                    }
                    Event::Confirmed { call, .. } => self.confirmed.push(call),
                    _ => {}
                }
            }
            if !answered {
                return;
            }
        }
    }

    fn run_until(&mut self, at: Duration) {
        let target = self.t0 + at;
        while let Some(t) = self.ua.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.ua.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    fn advance(&mut self, d: Duration) {
        let at = self.now + d - self.t0;
        self.run_until(at);
    }

    fn bytes_to(&self, remote: &str) -> u64 {
        let a: SocketAddr = remote.parse().unwrap();
        self.sent_to.get(&a).map_or(0, |e| e.0)
    }

    fn statuses_to(&self, remote: &str) -> Vec<u16> {
        let a: SocketAddr = remote.parse().unwrap();
        self.statuses.get(&a).cloned().unwrap_or_default()
    }

    fn offered_from(&self, remote: &str) -> usize {
        let a: SocketAddr = remote.parse().unwrap();
        self.offered.iter().filter(|(_, r)| *r == a).count()
    }
}

fn invite(remote: &str, n: u32) -> String {
    format!(
        "INVITE sip:1000@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {remote};branch=z9hG4bK-{n};rport\r\n\
From: \"Caller\" <sip:caller@{remote}>;tag=f{n}\r\n\
To: <sip:1000@192.0.2.1>\r\n\
Call-ID: flood-{n}@{remote}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:caller@{remote}>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

fn options(remote: &str, n: u32) -> String {
    format!(
        "OPTIONS sip:192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {remote};branch=z9hG4bK-o{n};rport\r\n\
From: <sip:probe@{remote}>;tag=o{n}\r\n\
To: <sip:192.0.2.1>\r\n\
Call-ID: probe-{n}@{remote}\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn ack_for(remote: &str, n: u32, to_tag: &str) -> String {
    format!(
        "ACK sip:pinbridge@192.0.2.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP {remote};branch=z9hG4bK-a{n};rport\r\n\
From: \"Caller\" <sip:caller@{remote}>;tag=f{n}\r\n\
To: <sip:1000@192.0.2.1>;tag={to_tag}\r\n\
Call-ID: flood-{n}@{remote}\r\n\
CSeq: 1 ACK\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

const FLOODER: &str = "127.0.0.2:5062";
const CALLER: &str = "127.0.0.1:5070";
const PROBER: &str = "127.0.0.3:5080";

#[test]
fn a_burst_that_never_acks_gets_back_less_than_it_sent_and_others_are_served() {
    let mut net = Net::new(UaConfig::default());
    let mut received = 0u64;
    // 10,000 INVITEs in a second, none ever ACKed.
    for n in 0..10_000 {
        let msg = invite(FLOODER, n);
        received += msg.len() as u64;
        net.input(FLOODER, &msg);
        net.advance(Duration::from_micros(100));
        if n == 5000 {
            // A legitimate caller and a prober in the middle of it.
            net.input(CALLER, &invite(CALLER, 1));
            net.input(PROBER, &options(PROBER, 1));
        }
    }
    let max_half_open = UaConfig::default().limits.max_half_open_per_source as usize;
    let offered = net.offered_from(FLOODER);
    assert!(
        offered <= max_half_open,
        "{offered} calls (and RTP ports) for one source that never ACKs"
    );
    assert_eq!(net.statuses_to(CALLER), vec![100, 200]);
    assert_eq!(net.statuses_to(PROBER), vec![200]);
    // Let every retransmission, timeout and BYE happen.
    net.advance(Duration::from_secs(70));
    let back = net.bytes_to(FLOODER);
    assert!(back < received, "{back} bytes back for {received} received");
    assert!(net.ua.source_limit_stats().dropped_rate > 0);
    // Every call has timed out by now: no half-open slot is leaked.
    assert_eq!(net.ua.source_limit_stats().half_open, 0);
    assert_eq!(net.ua.call_count(), 0);
}

#[test]
fn a_slow_sender_that_never_acks_gets_back_less_than_it_sent() {
    let mut net = Net::new(UaConfig::default());
    let mut received = 0u64;
    // Five INVITEs a second for a minute: under every rate limit, so each
    // is answered with 100 Trying and a 200 OK that would be retransmitted
    // until the ACK timeout, then a BYE.
    for n in 0..300 {
        let msg = invite(FLOODER, n);
        received += msg.len() as u64;
        net.input(FLOODER, &msg);
        net.advance(Duration::from_millis(200));
    }
    net.advance(Duration::from_secs(70));
    assert_eq!(net.offered_from(FLOODER), 300, "all were under the limits");
    let back = net.bytes_to(FLOODER);
    assert!(back < received, "{back} bytes back for {received} received");
    assert!(net.ua.source_limit_stats().replies_suppressed > 0);
}

#[test]
fn a_pbx_that_acks_at_once_is_not_limited_by_rate_or_budget() {
    let mut net = Net::new(UaConfig::default());
    // 2,000 calls a second for two seconds from one address, each ACKed
    // as soon as its 200 OK arrives.
    let pbx = "127.0.0.9:5060";
    for n in 0..4000u32 {
        net.input(pbx, &invite(pbx, n));
        if let Some(tag) = net.last_2xx_tag.take() {
            net.input(pbx, &ack_for(pbx, n, &tag));
        }
        net.advance(Duration::from_micros(500));
    }
    assert_eq!(net.offered_from(pbx), 4000);
    assert_eq!(net.confirmed.len(), 4000);
    let s = net.ua.source_limit_stats();
    assert_eq!(s.dropped_rate + s.dropped_half_open_source, 0, "{s:?}");
    assert_eq!(s.replies_suppressed, 0);
    assert_eq!(s.half_open, 0);
}

#[test]
fn retransmissions_cancel_and_in_dialog_requests_are_never_limited() {
    // Over TCP, so the reply budget (UDP only) does not hide anything.
    let mut net = Net::new(UaConfig::default());
    net.auto_answer = false;
    let peer = "tcp:127.0.0.5:5060";
    let addr = "127.0.0.5:5060";
    net.input(peer, &invite(addr, 1));
    assert_eq!(net.statuses_to(addr), vec![100]);
    // Empty the source's bucket with OPTIONS.
    for n in 0..200 {
        net.input(peer, &options(addr, n));
    }
    let answered = net.statuses_to(addr).len() - 1;
    let burst = UaConfig::default().limits.new_source_rate.burst as usize;
    assert_eq!(answered, burst - 1, "the INVITE took one token");
    assert!(net.ua.source_limit_stats().dropped_rate > 0);
    // A new INVITE is dropped now ...
    net.input(peer, &invite(addr, 2));
    assert_eq!(net.offered_from(addr), 1);
    // ... but the retransmission of the live one is answered,
    net.input(peer, &invite(addr, 1));
    let st = net.statuses_to(addr);
    assert_eq!(st.last(), Some(&100));
    assert_eq!(st.len(), answered + 2);
    // and so is its CANCEL (200, then 487 for the INVITE).
    let cancel = invite(addr, 1)
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = match cancel.split_once("Content-Type:") {
        Some((head, _)) => format!("{head}Content-Length: 0\r\n\r\n"),
        None => cancel,
    };
    net.input(peer, &cancel);
    let st = net.statuses_to(addr);
    assert_eq!(&st[st.len() - 2..], &[200, 487]);
    // An in-dialog request from a source over its rate: after the refill
    // a call is made and ACKed, and its BYE comes from another address
    // whose bucket is empty (dialogs are matched by their identifiers,
    // not the source address).
    net.auto_answer = true;
    net.advance(Duration::from_secs(10));
    net.input(peer, &invite(addr, 3));
    let tag = net.last_2xx_tag.take().expect("answered after the refill");
    net.input(peer, &ack_for(addr, 3, &tag));
    let (other, other_addr) = ("tcp:127.0.0.6:5060", "127.0.0.6:5060");
    for n in 200..400 {
        net.input(other, &options(other_addr, n));
    }
    let before = net.statuses_to(other_addr).len();
    assert!(before < 200, "the other source's bucket is empty");
    let bye = ack_for(addr, 3, &tag)
        .replacen("ACK sip:", "BYE sip:", 1)
        .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
        .replace("branch=z9hG4bK-a3", "branch=z9hG4bK-b3");
    net.input(other, &bye);
    assert_eq!(net.statuses_to(other_addr).len(), before + 1);
    assert_eq!(net.statuses_to(other_addr).last(), Some(&200));
    assert_eq!(net.ua.call_count(), 0);
}
