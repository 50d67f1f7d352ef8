//! Deterministic tests of the user agent core: byte strings in, a fake
//! clock, responses and events out.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::flow::{Flow, Transport};
use super::message::{parse_datagram, Message, Request, Response};
use super::method::Method;
use super::ua::{CallHandle, EndReason, Event, UaConfig, UserAgent};

struct Harness {
    ua: UserAgent,
    t0: Instant,
    now: Instant,
    flow: Flow,
    sent: Vec<(Duration, Flow, Message)>,
    events: Vec<Event>,
}

impl Harness {
    fn new(transport: Transport) -> Self {
        let t0 = Instant::now();
        Harness {
            ua: UserAgent::with_seed(UaConfig::default(), 7),
            t0,
            now: t0,
            flow: Flow {
                transport,
                remote: "192.0.2.10:5071".parse().unwrap(),
                local: "192.0.2.1:5060".parse().unwrap(),
                connection: None,
            },
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn input(&mut self, msg: &str) {
        self.input_bytes(msg.replace('\n', "\r\n").as_bytes());
    }

    fn input_bytes(&mut self, b: &[u8]) {
        self.ua.handle_input(self.now, self.flow, b);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            let m = parse_datagram(&t.payload)
                .expect("we send parseable messages")
                .message;
            self.sent.push((self.now - self.t0, t.flow, m));
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
    }

    /// Runs the clock forward to `t0 + at`, firing every timer on the way.
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

    fn responses(&self) -> Vec<&Response> {
        self.sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn requests(&self) -> Vec<&Request> {
        self.sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                Message::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn statuses(&self) -> Vec<u16> {
        self.responses().iter().map(|r| r.status).collect()
    }

    fn incoming(&self) -> Vec<CallHandle> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Vec<EndReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Ended { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn answer(&mut self, call: CallHandle) {
        self.ua
            .answer(self.now, call, Bytes::from_static(b"v=0\r\n"))
            .unwrap();
        self.drain();
    }

    fn to_tag(&self) -> String {
        let r = self
            .responses()
            .into_iter()
            .find(|r| {
                r.status >= 200 && r.headers.get("CSeq").is_some_and(|c| c.ends_with("INVITE"))
            })
            .expect("a final response to the INVITE");
        let to = r.headers.get("To").unwrap();
        to.split("tag=").nth(1).unwrap().to_string()
    }
}

const OFFER: &str = "v=0\no=a 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 18000 RTP/AVP 0 101\n";

fn invite(branch: &str, extra: &str) -> String {
    let body = OFFER.replace('\n', "\r\n");
    format!(
        "INVITE sip:1000@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5071;branch={branch}
From: \"Caller\" <sip:alice@192.0.2.10>;tag=from1
To: <sip:1000@192.0.2.1>
Call-ID: call-1@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.10:5071>
Max-Forwards: 70
{extra}Content-Type: application/sdp
Content-Length: {}

{OFFER}",
        body.len(),
    )
}

fn in_dialog(method: &str, cseq: u32, to_tag: &str, branch: &str, extra: &str) -> String {
    format!(
        "{method} sip:pinbridge@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5071;branch={branch}
From: \"Caller\" <sip:alice@192.0.2.10>;tag=from1
To: <sip:1000@192.0.2.1>;tag={to_tag}
Call-ID: call-1@192.0.2.10
CSeq: {cseq} {method}
Max-Forwards: 70
{extra}Content-Length: 0

"
    )
}

#[test]
fn invite_is_trying_then_answered_then_confirmed_by_ack() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(
        h.statuses(),
        vec![100],
        "{:?}",
        h.responses().first().map(|r| &r.reason)
    );
    let calls = h.incoming();
    assert_eq!(calls.len(), 1);
    h.answer(calls[0]);
    let ok = h.responses()[1];
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("Content-Type"), Some("application/sdp"));
    assert!(ok
        .headers
        .get("Contact")
        .unwrap()
        .contains("192.0.2.1:5060"));
    assert_eq!(ok.headers.get("CSeq"), Some("1 INVITE"));
    assert_eq!(
        ok.headers.get("From"),
        Some("\"Caller\" <sip:alice@192.0.2.10>;tag=from1")
    );
    assert!(ok.headers.get("Via").unwrap().contains("branch=z9hG4bK-1"));
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-ack", ""));
    assert!(matches!(
        h.events.last(),
        Some(Event::Confirmed { ack_body: None, .. })
    ));
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.statuses(), vec![100, 200], "no retransmission after ACK");
}

#[test]
fn retransmitted_invite_is_one_call() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.input(&invite("z9hG4bK-1", ""));
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.incoming().len(), 1);
    assert_eq!(
        h.statuses(),
        vec![100, 100, 100],
        "each retransmission gets the 100 again"
    );
    h.answer(h.incoming()[0]);
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.incoming().len(), 1, "absorbed in the Accepted state");
}

#[test]
fn unacknowledged_200_is_retransmitted_then_bye_after_64_t1() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Response(r) if r.status == 200))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(
        times,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let reqs = h.requests();
    assert!(!reqs.is_empty() && reqs.iter().all(|r| r.method == Method::Bye));
    assert_eq!(h.ended(), vec![EndReason::AckTimeout]);
    // The BYE is retransmitted until answered.
    let bye_times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Bye))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(&bye_times[..3], &[32000, 32500, 33500]);
}

#[test]
fn cancel_before_answer_gives_200_and_487() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let cancel = "CANCEL sip:1000@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5071;branch=z9hG4bK-1
From: \"Caller\" <sip:alice@192.0.2.10>;tag=from1
To: <sip:1000@192.0.2.1>
Call-ID: call-1@192.0.2.10
CSeq: 1 CANCEL
Max-Forwards: 70
Content-Length: 0

";
    h.input(cancel);
    assert_eq!(h.statuses(), vec![100, 200, 487]);
    assert_eq!(h.ended(), vec![EndReason::Cancelled]);
    let r = h.responses();
    assert_eq!(r[1].headers.get("CSeq"), Some("1 CANCEL"));
    assert_eq!(
        r[1].headers.get("To"),
        r[2].headers.get("To"),
        "same To tag (§9.2)"
    );
    // The 487 is retransmitted until the ACK arrives.
    h.run_until(Duration::from_millis(600));
    assert_eq!(h.statuses(), vec![100, 200, 487, 487]);
    let tag = h.to_tag();
    let ack = in_dialog("ACK", 1, &tag, "z9hG4bK-1", "")
        .replace("sip:pinbridge@192.0.2.1", "sip:1000@192.0.2.1");
    h.input(&ack);
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.statuses(), vec![100, 200, 487, 487]);
}

#[test]
fn ringing_is_resent_on_invite_retransmission_and_cancel_still_works() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.ua.ring(c).unwrap();
    h.drain();
    h.input(&invite("z9hG4bK-1", ""));
    assert_eq!(h.statuses(), vec![100, 180, 180]);
    assert!(h.responses()[1]
        .headers
        .get("To")
        .unwrap()
        .contains(";tag="));
    assert!(h.responses()[1].headers.get("Contact").is_some());
}

#[test]
fn cancel_without_invite_is_481() {
    let mut h = Harness::new(Transport::Udp);
    let cancel = in_dialog("CANCEL", 1, "x", "z9hG4bK-nope", "").replace(";tag=x", "");
    h.input(&cancel);
    assert_eq!(h.statuses(), vec![481]);
}

#[test]
fn options_lists_capabilities() {
    let mut h = Harness::new(Transport::Udp);
    let opt = in_dialog("OPTIONS", 5, "x", "z9hG4bK-o", "").replace(";tag=x", "");
    h.input(&opt);
    let r = h.responses()[0];
    assert_eq!(r.status, 200);
    assert!(r.headers.get("Allow").unwrap().contains("INVITE"));
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
    assert_eq!(r.headers.get("Supported"), Some("timer"));
    assert!(r.headers.get("To").unwrap().contains("tag="));
}

#[test]
fn bye_for_unknown_dialog_is_481_and_known_is_200() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&in_dialog("BYE", 2, "nosuchtag", "z9hG4bK-b0", ""));
    assert_eq!(h.statuses(), vec![481]);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog("BYE", 2, &tag, "z9hG4bK-b1", ""));
    assert_eq!(h.statuses(), vec![481, 100, 200, 200]);
    assert_eq!(h.ended(), vec![EndReason::RemoteBye]);
    // A retransmitted BYE is answered again by its transaction.
    h.input(&in_dialog("BYE", 2, &tag, "z9hG4bK-b1", ""));
    assert_eq!(h.statuses(), vec![481, 100, 200, 200, 200]);
}

#[test]
fn reject_with_488_carries_a_warning() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.ua.reject(h.now, c, 488, "Not Acceptable Here").unwrap();
    h.drain();
    let r = h.responses()[1];
    assert_eq!(r.status, 488);
    assert!(r.headers.get("Warning").unwrap().starts_with("304 "));
}

#[test]
fn late_offer_answer_arrives_in_ack() {
    let mut h = Harness::new(Transport::Udp);
    let inv = invite("z9hG4bK-1", "")
        .split("Content-Type")
        .next()
        .unwrap()
        .to_string()
        + "Content-Length: 0\n\n";
    h.input(&inv);
    let Some(Event::Incoming { info, .. }) = h.events.first() else {
        panic!()
    };
    assert!(info.offer.is_none());
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    let ack = in_dialog(
        "ACK",
        1,
        &tag,
        "z9hG4bK-a",
        "Content-Type: application/sdp\n",
    )
    .replace("Content-Length: 0\n\n", "Content-Length: 5\n\nv=0\n");
    h.input(&ack);
    let Some(Event::Confirmed {
        ack_body: Some(b), ..
    }) = h.events.last()
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!(&b[..], b"v=0\r\n");
}

#[test]
fn reinvite_is_offered_answered_and_acked() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let call = h.incoming()[0];
    h.answer(call);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    let re = in_dialog(
        "INVITE",
        2,
        &tag,
        "z9hG4bK-re",
        "Contact: <sip:alice@192.0.2.99:5071>\nContent-Type: application/sdp\n",
    )
    .replace("Content-Length: 0\n\n", "Content-Length: 5\n\nv=0\r\n");
    h.input(&re);
    let Some(Event::Reoffer {
        request,
        method: Method::Invite,
        offer: Some(_),
        ..
    }) = h.events.last().cloned()
    else {
        panic!("{:?}", h.events)
    };
    h.ua.respond(
        h.now,
        call,
        request,
        200,
        "OK",
        Some(Bytes::from_static(b"v=0\r\n")),
    )
    .unwrap();
    h.drain();
    assert_eq!(*h.statuses().last().unwrap(), 200);
    h.input(&in_dialog("ACK", 2, &tag, "z9hG4bK-a2", ""));
    assert!(matches!(h.events.last(), Some(Event::ReofferAck { .. })));
    // The new Contact is the target of our BYE.
    h.ua.hangup(h.now, call);
    h.drain();
    assert_eq!(
        h.requests().last().unwrap().uri,
        "sip:alice@192.0.2.99:5071"
    );
}

#[test]
fn old_cseq_in_dialog_is_500() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog("BYE", 1, &tag, "z9hG4bK-b", ""));
    assert_eq!(*h.statuses().last().unwrap(), 500);
}

#[test]
fn session_interval_below_min_se_is_422() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 30\nSupported: timer\n",
    ));
    assert_eq!(h.statuses(), vec![422]);
    assert_eq!(h.responses()[0].headers.get("Min-SE"), Some("90"));
}

#[test]
fn peer_refresher_that_stops_refreshing_gets_bye() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 120\nSupported: timer\n",
    ));
    h.answer(h.incoming()[0]);
    let ok = h.responses()[1].clone();
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    // A refresh by UPDATE at 60 s pushes the deadline out.
    h.run_until(Duration::from_secs(60));
    h.input(&in_dialog(
        "UPDATE",
        2,
        &tag,
        "z9hG4bK-u",
        "Session-Expires: 120;refresher=uac\nSupported: timer\n",
    ));
    assert_eq!(*h.statuses().last().unwrap(), 200);
    h.run_until(Duration::from_secs(60 + 87));
    assert!(
        h.requests().is_empty(),
        "still within the refreshed interval"
    );
    h.run_until(Duration::from_secs(60 + 89));
    assert_eq!(h.requests().last().unwrap().method, Method::Bye);
    assert_eq!(h.ended(), vec![EndReason::SessionExpired]);
}

#[test]
fn we_refresh_with_update_when_the_peer_cannot() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-1",
        "Session-Expires: 100\nAllow: INVITE, ACK, BYE, UPDATE\n",
    ));
    h.answer(h.incoming()[0]);
    assert_eq!(
        h.responses()[1].headers.get("Session-Expires"),
        Some("100;refresher=uas")
    );
    assert_eq!(h.responses()[1].headers.get("Require"), None);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.run_until(Duration::from_secs(51));
    let upd = h.requests().last().copied().cloned().expect("refresh sent");
    assert_eq!(upd.method, Method::Update);
    // In the UPDATE we are the UAC, and we stay the refresher (RFC 4028 §7.4).
    assert_eq!(
        upd.headers.get("Session-Expires"),
        Some("100;refresher=uac")
    );
    // Answer it: the call continues.
    let via = upd.headers.get("Via").unwrap();
    let resp = format!(
        "SIP/2.0 200 OK\nVia: {via}\nFrom: {}\nTo: {}\nCall-ID: {}\nCSeq: {}\nContent-Length: 0\n\n",
        upd.headers.get("From").unwrap(),
        upd.headers.get("To").unwrap(),
        upd.headers.get("Call-ID").unwrap(),
        upd.headers.get("CSeq").unwrap()
    );
    h.input(&resp);
    h.run_until(Duration::from_secs(99));
    assert!(h.ended().is_empty());
    assert_eq!(
        h.requests()
            .iter()
            .filter(|r| r.method == Method::Update)
            .count(),
        2,
        "refreshed again at 50 s after the last"
    );
}

#[test]
fn responses_follow_rport_and_received() {
    let mut h = Harness::new(Transport::Udp);
    h.flow.remote = "203.0.113.5:40000".parse().unwrap();
    let opt = in_dialog("OPTIONS", 5, "x", "z9hG4bK-o", "")
        .replace(";tag=x", "")
        .replace(
            "192.0.2.10:5071;branch=z9hG4bK-o",
            "10.0.0.2:5060;branch=z9hG4bK-o;rport",
        );
    h.input(&opt);
    let (_, flow, Message::Response(r)) = &h.sent[0] else {
        panic!()
    };
    assert_eq!(flow.remote, "203.0.113.5:40000".parse().unwrap());
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-o;rport=40000;received=203.0.113.5")
    );
    // Without rport the Via port is used.
    let opt2 = opt.replace(";rport", "").replace("z9hG4bK-o", "z9hG4bK-o2");
    h.input(&opt2);
    assert_eq!(h.sent[1].1.remote, "203.0.113.5:5060".parse().unwrap());
}

#[test]
fn tcp_does_not_retransmit_error_responses() {
    let mut h = Harness::new(Transport::Tcp);
    h.input(&invite("z9hG4bK-1", "").replace("UDP", "TCP"));
    let c = h.incoming()[0];
    h.ua.reject(h.now, c, 486, "Busy Here").unwrap();
    h.drain();
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.statuses(), vec![100, 486]);
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.answer(c);
    h.ua.hangup(h.now, c);
    h.drain();
    assert!(h.requests().is_empty());
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    assert_eq!(h.requests()[0].method, Method::Bye);
}

#[test]
fn shutdown_hangs_up_and_refuses_new_calls() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    let c = h.incoming()[0];
    h.answer(c);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.ua.shutdown(h.now);
    h.drain();
    assert_eq!(h.requests()[0].method, Method::Bye);
    assert!(!h.ua.is_idle(), "waiting for the BYE's answer");
    h.input(&invite("z9hG4bK-2", "").replace("call-1", "call-2"));
    assert_eq!(*h.statuses().last().unwrap(), 503);
    h.run_until(Duration::from_secs(40));
    assert!(h.ua.is_idle(), "BYE timed out");
}

#[test]
fn info_with_unknown_body_is_415() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite("z9hG4bK-1", ""));
    h.answer(h.incoming()[0]);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-a", ""));
    h.input(&in_dialog(
        "INFO",
        2,
        &tag,
        "z9hG4bK-i",
        "Content-Type: text/plain\n",
    ));
    assert_eq!(*h.statuses().last().unwrap(), 415);
    h.input(&in_dialog(
        "INFO",
        3,
        &tag,
        "z9hG4bK-i2",
        "Content-Type: application/dtmf-relay\n",
    ));
    assert!(matches!(h.events.last(), Some(Event::Info { .. })));
}

/// Expected status for each RFC 4475 message sent to a UAS (None: the
/// message is a response, or unanswerable, and is dropped).
pub(crate) const TORTURE_EXPECTATIONS: &[(&str, Option<u16>)] = &[
    // §3.1.1 valid messages
    ("wsinv", Some(481)), // a re-INVITE (To has a tag) for a dialog we don't have
    ("intmeth", Some(501)),
    ("esc01", Some(100)),
    ("escnull", Some(405)),
    ("esc02", Some(501)),
    ("lwsdisp", Some(200)),
    ("longreq", Some(100)),
    ("dblreq", Some(405)),
    ("semiuri", Some(200)),
    ("transports", Some(200)),
    ("mpart01", Some(405)),
    ("unreason", None),
    ("noreason", None),
    // §3.1.2 invalid messages
    ("badinv01", Some(400)),
    ("clerr", Some(400)),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    ("baddate", Some(400)),
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", Some(400)),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(501)),
    ("bigcode", None),
    // §3.2 transaction layer, §3.3 application layer, §3.4 RFC 2543
    ("badbranch", Some(200)),
    ("insuf", Some(400)),
    ("unkscm", Some(416)),
    ("novelsc", Some(416)),
    ("unksm2", Some(405)),
    ("bext01", Some(420)),
    ("invut", Some(415)),
    ("regaut01", Some(405)),
    ("multi01", Some(400)),
    ("mcl01", Some(400)),
    ("bcast", None),
    ("zeromf", Some(200)),
    ("cparam01", Some(405)),
    ("cparam02", Some(405)),
    ("regescrt", Some(405)),
    ("sdp01", Some(406)),
    ("inv2543", Some(100)),
];

#[test]
fn rfc4475_torture_messages_get_the_rfc_answers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture");
    assert_eq!(TORTURE_EXPECTATIONS.len(), 49);
    let mut failures = Vec::new();
    for (name, want) in TORTURE_EXPECTATIONS {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).expect("torture fixture");
        let mut h = Harness::new(Transport::Udp);
        h.input_bytes(&bytes);
        let got = h.statuses().first().copied();
        if got != *want {
            failures.push(format!(
                "{name}: want {want:?}, got {got:?} {:?}",
                h.responses().first().map(|r| &r.reason)
            ));
        }
        if let Some(r) = h.responses().first() {
            if r.status >= 400 {
                assert!(!r.reason.is_empty(), "{name}: reason phrase");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_header_reason_names_the_header() {
    let mut h = Harness::new(Transport::Udp);
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture/insuf.dat"),
    )
    .unwrap();
    h.input_bytes(&bytes);
    assert_eq!(h.responses()[0].reason, "Missing From Header");
}

// ----------------------------------------------------------------------
// Client side: outbound calls, MESSAGE and REGISTER through a trunk.

use super::auth::Credentials;
use super::ua::{OutboundCall, OutboundEvent, OutboundMessage, Registration, RequestId};

const TARGET: &str = "sip:+15551234567@trunk.example.com;user=phone";
const ANSWER_SDP: &str = "v=0\no=b 1 1 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\nm=audio 30000 RTP/AVP 0\n";

fn creds() -> Option<Credentials> {
    Some(Credentials::new("alice", "s3cret"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The test's own digest computation (RFC 7616 §3.4.1, qop=auth).
fn h(alg: &str, s: &str) -> String {
    use sha2::Digest;
    match alg {
        "MD5" => hex(&md5::Md5::digest(s.as_bytes())),
        "SHA-256" => hex(&sha2::Sha256::digest(s.as_bytes())),
        other => panic!("algorithm {other}"),
    }
}

/// `name=value` from an Authorization value (quotes removed).
#[allow(clippy::string_slice)]
fn auth_param(v: &str, name: &str) -> String {
    let at = v
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("{name} in {v}"))
        + name.len()
        + 2;
    let rest = &v[at..];
    match rest.strip_prefix('"') {
        Some(r) => r[..r.find('"').unwrap()].to_string(),
        None => rest.split(',').next().unwrap().trim().to_string(),
    }
}

/// Checks an Authorization value against the password, independently of
/// the code under test.
fn check_digest(auth: &str, method: &str, uri: &str, alg: &str, nc: &str) {
    assert!(auth.starts_with("Digest "), "{auth}");
    let p = |n| auth_param(auth, n);
    assert_eq!(p("username"), "alice");
    assert_eq!(p("uri"), uri);
    assert_eq!(p("qop"), "auth");
    assert_eq!(p("nc"), nc);
    if alg != "MD5" {
        assert_eq!(p("algorithm"), alg);
    }
    let ha1 = h(alg, &format!("alice:{}:s3cret", p("realm")));
    let ha2 = h(alg, &format!("{method}:{uri}"));
    let want = h(
        alg,
        &format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            p("nonce"),
            p("nc"),
            p("cnonce")
        ),
    );
    assert_eq!(p("response"), want, "digest response of {auth}");
}

/// A response to `req` as a peer would write it.
fn reply_to(
    req: &Request,
    status: u16,
    reason: &str,
    tag: Option<&str>,
    extra: &str,
    body: Option<&str>,
) -> String {
    let mut s = format!("SIP/2.0 {status} {reason}\n");
    for v in req.headers.get_all("Via") {
        s.push_str(&format!("Via: {v}\n"));
    }
    let to = req.headers.get("To").unwrap();
    let to = match tag {
        Some(t) if !to.contains(";tag=") => format!("{to};tag={t}"),
        _ => to.to_string(),
    };
    s.push_str(&format!(
        "From: {}\nTo: {to}\nCall-ID: {}\nCSeq: {}\n{extra}",
        req.headers.get("From").unwrap(),
        req.headers.get("Call-ID").unwrap(),
        req.headers.get("CSeq").unwrap(),
    ));
    match body {
        Some(b) => s.push_str(&format!(
            "Content-Type: application/sdp\nContent-Length: {}\n\n{b}",
            b.replace('\n', "\r\n").len()
        )),
        None => s.push_str("Content-Length: 0\n\n"),
    }
    s
}

impl Harness {
    fn place(&mut self, credentials: Option<Credentials>) -> CallHandle {
        let call = self
            .ua
            .call(
                self.now,
                OutboundCall {
                    request_uri: TARGET.into(),
                    from: "sip:pinbridge@trunk.example.com".into(),
                    to: TARGET.into(),
                    flow: self.flow,
                    sdp: Bytes::from_static(b"v=0\r\n"),
                    credentials,
                    extra_headers: vec![(
                        "P-Asserted-Identity".into(),
                        "<sip:+15550000000@trunk.example.com>".into(),
                    )],
                },
            )
            .unwrap();
        self.drain();
        call
    }

    fn reply(
        &mut self,
        req: &Request,
        status: u16,
        reason: &str,
        tag: Option<&str>,
        extra: &str,
        body: Option<&str>,
    ) {
        self.input(&reply_to(req, status, reason, tag, extra, body));
    }

    fn sent_requests(&self, m: Method) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == m)
            .cloned()
            .collect()
    }

    fn last_of(&self, m: Method) -> Request {
        self.sent_requests(m.clone())
            .pop()
            .unwrap_or_else(|| panic!("no {m} sent"))
    }

    fn outbound(&self) -> Vec<OutboundEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Outbound(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }

    fn failed(&self) -> Option<(u16, String)> {
        self.outbound().into_iter().find_map(|e| match e {
            OutboundEvent::Failed { status, reason, .. } => Some((status, reason)),
            _ => None,
        })
    }

    /// Places a call without credentials and has it answered.
    fn answered_call(&mut self, extra_200: &str) -> (CallHandle, Request) {
        let call = self.place(None);
        let inv = self.last_of(Method::Invite);
        self.reply(
            &inv,
            200,
            "OK",
            Some("callee"),
            &format!("Contact: <sip:callee@198.51.100.7:5060>\n{extra_200}"),
            Some(ANSWER_SDP),
        );
        assert!(matches!(
            self.outbound().last(),
            Some(OutboundEvent::Answered { .. })
        ));
        (call, inv)
    }
}

fn cseq(r: &Request) -> &str {
    r.headers.get("CSeq").unwrap()
}

fn branch(r: &Request) -> String {
    let via = r.headers.get("Via").unwrap();
    via.split("branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn from_tag(r: &Request) -> String {
    r.headers
        .get("From")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string()
}

/// A request from the far end inside an outbound call's dialog.
fn from_callee(method: &str, cseq: u32, inv: &Request, branch: &str, extra: &str) -> String {
    format!(
        "{method} sip:pinbridge@192.0.2.1:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5071;branch={branch}
From: {TARGET_NA};tag=callee
To: {}
Call-ID: {}
CSeq: {cseq} {method}
Max-Forwards: 70
{extra}Content-Length: 0

",
        inv.headers.get("From").unwrap(),
        inv.headers.get("Call-ID").unwrap(),
        TARGET_NA = format_args!("<{TARGET}>"),
    )
}

#[test]
fn outbound_call_with_proxy_auth_ringing_answer_and_ack_via_route_set() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(creds());
    let inv1 = h.last_of(Method::Invite);
    assert_eq!(inv1.uri, TARGET);
    assert_eq!(cseq(&inv1), "1 INVITE");
    assert_eq!(h.sent[0].1.remote, h.flow.remote, "sent to the trunk");
    assert_eq!(inv1.headers.get("To"), Some(format!("<{TARGET}>").as_str()));
    assert_eq!(
        inv1.headers.get("Contact"),
        Some("<sip:pinbridge@192.0.2.1:5060>")
    );
    assert_eq!(inv1.headers.get("Content-Type"), Some("application/sdp"));
    assert_eq!(inv1.headers.get("Supported"), Some("timer"));
    assert!(inv1.headers.get("P-Asserted-Identity").is_some());
    assert!(inv1.headers.get("Proxy-Authorization").is_none());

    h.reply(&inv1, 100, "Trying", None, "", None);
    h.reply(
        &inv1,
        407,
        "Proxy Authentication Required",
        Some("t407"),
        "Proxy-Authenticate: Digest realm=\"trunk.example.com\", nonce=\"n-407\", qop=\"auth\", algorithm=MD5\n",
        None,
    );
    // The 407 is ACKed inside its transaction.
    let ack = h.last_of(Method::Ack);
    assert_eq!(ack.uri, TARGET);
    assert_eq!(branch(&ack), branch(&inv1));
    assert_eq!(cseq(&ack), "1 ACK");
    assert!(ack.headers.get("To").unwrap().ends_with(";tag=t407"));
    // And the INVITE goes again with credentials.
    let inv2 = h.last_of(Method::Invite);
    assert_eq!(cseq(&inv2), "2 INVITE");
    assert_ne!(branch(&inv2), branch(&inv1));
    assert_eq!(inv2.headers.get("Call-ID"), inv1.headers.get("Call-ID"));
    assert_eq!(from_tag(&inv2), from_tag(&inv1));
    assert!(!inv2.headers.get("To").unwrap().contains("tag="));
    let pa = inv2.headers.get("Proxy-Authorization").unwrap();
    check_digest(pa, "INVITE", TARGET, "MD5", "00000001");
    assert_eq!(auth_param(pa, "realm"), "trunk.example.com");
    assert_eq!(auth_param(pa, "nonce"), "n-407");
    assert!(h.failed().is_none());

    h.reply(&inv2, 180, "Ringing", Some("callee"), "", None);
    assert!(matches!(
        h.outbound()[..],
        [OutboundEvent::Ringing {
            status: 180,
            sdp: None,
            ..
        }]
    ));
    h.reply(
        &inv2,
        200,
        "OK",
        Some("callee"),
        "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\nRecord-Route: <sip:p3.example.com;lr>\nContact: <sip:callee@198.51.100.7:5060>\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\n",
        Some(ANSWER_SDP),
    );
    let Some(OutboundEvent::Answered {
        call: c,
        sdp: Some(sdp),
    }) = h.outbound().pop()
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!(c, call);
    assert!(sdp.starts_with(b"v=0\r\n"));
    // ACK to the Contact through the reversed route set, sent to the trunk.
    let ack2 = h.last_of(Method::Ack);
    assert_eq!(ack2.uri, "sip:callee@198.51.100.7:5060");
    let routes: Vec<&str> = ack2.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec![
            "<sip:p3.example.com;lr>",
            "<sip:p2.example.com;lr>",
            "<sip:p1.example.com;lr>"
        ]
    );
    assert_eq!(cseq(&ack2), "2 ACK");
    assert_ne!(
        branch(&ack2),
        branch(&inv2),
        "a 2xx ACK is its own transaction"
    );
    assert!(ack2.headers.get("To").unwrap().ends_with(";tag=callee"));
    assert_eq!(ack2.headers.get("Proxy-Authorization"), Some(pa), "§22.1");
    assert_eq!(h.sent.last().unwrap().1.remote, h.flow.remote);

    // A retransmitted 2xx is ACKed again, identically.
    let acks = h.sent_requests(Method::Ack).len();
    h.reply(
        &inv2,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    assert_eq!(h.sent_requests(Method::Ack).len(), acks + 1);
    assert_eq!(h.last_of(Method::Ack), ack2);
    assert_eq!(h.outbound().len(), 2, "no second Answered");

    // No INVITE retransmissions once answered.
    h.run_until(Duration::from_secs(10));
    assert_eq!(h.sent_requests(Method::Invite).len(), 2);

    // Our BYE follows the dialog.
    h.ua.hangup(h.now, call);
    h.drain();
    let bye = h.last_of(Method::Bye);
    assert_eq!(bye.uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(bye.headers.get_all("Route").count(), 3);
    assert_eq!(cseq(&bye), "3 BYE");
    assert_eq!(from_tag(&bye), from_tag(&inv1));
    h.reply(&bye, 200, "OK", None, "", None);
    h.run_until(Duration::from_secs(80));
    assert_eq!(h.sent_requests(Method::Bye).len(), 1, "answered: no resend");
    assert!(h.ua.is_idle());
}

#[test]
fn outbound_bye_challenged_by_the_trunk_is_retried_with_credentials() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    h.ua.hangup(h.now, call);
    h.drain();
    let bye1 = h.last_of(Method::Bye);
    h.reply(
        &bye1,
        407,
        "Proxy Authentication Required",
        None,
        "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"b\", qop=auth\n",
        None,
    );
    let bye2 = h.last_of(Method::Bye);
    assert_eq!(cseq(&bye2), "3 BYE");
    check_digest(
        bye2.headers.get("Proxy-Authorization").unwrap(),
        "BYE",
        "sip:callee@198.51.100.7:5060",
        "MD5",
        "00000001",
    );
}

#[test]
fn outbound_bye_from_the_callee_ends_the_call() {
    let mut h = Harness::new(Transport::Udp);
    let (call, inv) = h.answered_call("");
    h.input(&from_callee("BYE", 1, &inv, "z9hG4bK-cb", ""));
    let ok = h.responses().last().copied().cloned().unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers.get("CSeq"), Some("1 BYE"));
    assert_eq!(h.ended(), vec![EndReason::RemoteBye]);
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e, Event::Ended { call: c, .. } if *c == call)));
    assert_eq!(h.ua.call_count(), 0);
}

#[test]
fn outbound_call_takes_reinvite_and_info_like_inbound_calls() {
    let mut h = Harness::new(Transport::Udp);
    let (call, inv) = h.answered_call("");
    let re = from_callee(
        "INVITE",
        1,
        &inv,
        "z9hG4bK-re",
        "Contact: <sip:callee@198.51.100.9:5060>\n",
    );
    h.input(&re);
    let Some(Event::Reoffer {
        request,
        offer: None,
        ..
    }) = h.events.last().cloned()
    else {
        panic!("{:?}", h.events)
    };
    h.ua.respond(
        h.now,
        call,
        request,
        200,
        "OK",
        Some(Bytes::from_static(b"v=0\r\n")),
    )
    .unwrap();
    h.drain();
    assert_eq!(h.statuses().last(), Some(&200));
    h.input(&from_callee("ACK", 1, &inv, "z9hG4bK-rea", ""));
    assert!(matches!(h.events.last(), Some(Event::ReofferAck { .. })));
    h.input(&from_callee(
        "INFO",
        2,
        &inv,
        "z9hG4bK-i",
        "Content-Type: application/dtmf-relay\n",
    ));
    assert!(matches!(h.events.last(), Some(Event::Info { .. })));
    // The target moved with the re-INVITE.
    h.ua.hangup(h.now, call);
    h.drain();
    assert_eq!(h.last_of(Method::Bye).uri, "sip:callee@198.51.100.9:5060");
}

#[test]
fn outbound_session_timer_with_us_as_refresher() {
    let mut h = Harness::new(Transport::Udp);
    h.answered_call(
        "Session-Expires: 120;refresher=uac\nRequire: timer\nAllow: INVITE, ACK, BYE, UPDATE\n",
    );
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Update).is_empty());
    h.run_until(Duration::from_secs(60));
    let upd = h.last_of(Method::Update);
    assert_eq!(
        upd.headers.get("Session-Expires"),
        Some("120;refresher=uac")
    );
    h.reply(
        &upd,
        200,
        "OK",
        None,
        "Session-Expires: 120;refresher=uac\n",
        None,
    );
    h.run_until(Duration::from_secs(119));
    assert_eq!(h.sent_requests(Method::Update).len(), 1);
    h.run_until(Duration::from_secs(120));
    assert_eq!(h.sent_requests(Method::Update).len(), 2);
    assert!(h.ended().is_empty());
}

#[test]
fn outbound_session_timer_with_the_callee_as_refresher() {
    let mut h = Harness::new(Transport::Udp);
    h.answered_call("Session-Expires: 90;refresher=uas\nRequire: timer\n");
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Bye).is_empty());
    h.run_until(Duration::from_secs(61));
    assert_eq!(h.ended(), vec![EndReason::SessionExpired]);
    assert!(!h.sent_requests(Method::Bye).is_empty());
}

#[test]
fn outbound_cancel_before_the_answer() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    let cancel = h.last_of(Method::Cancel);
    assert_eq!(cancel.uri, inv.uri);
    assert_eq!(branch(&cancel), branch(&inv));
    assert_eq!(cseq(&cancel), "1 CANCEL");
    assert_eq!(cancel.headers.get("To"), inv.headers.get("To"));
    assert_eq!(cancel.headers.get("From"), inv.headers.get("From"));
    h.reply(&cancel, 200, "OK", Some("callee"), "", None);
    assert!(h.failed().is_none(), "the INVITE decides");
    h.reply(&inv, 487, "Request Terminated", Some("callee"), "", None);
    let ack = h.last_of(Method::Ack);
    assert_eq!(branch(&ack), branch(&inv));
    assert_eq!(cseq(&ack), "1 ACK");
    assert_eq!(h.failed(), Some((487, "Request Terminated".into())));
    assert_eq!(h.ua.call_count(), 0);
    h.run_until(Duration::from_secs(40));
    assert_eq!(
        h.sent_requests(Method::Cancel).len(),
        1,
        "answered: no resend"
    );
    assert!(h.ua.is_idle());
}

#[test]
fn hangup_before_any_provisional_cancels_once_one_arrives() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.ua.hangup(h.now, call);
    h.drain();
    assert!(h.sent_requests(Method::Cancel).is_empty(), "§9.1");
    h.reply(&inv, 100, "Trying", None, "", None);
    assert_eq!(h.sent_requests(Method::Cancel).len(), 1);
    assert!(h.outbound().is_empty(), "no Ringing after hangup");
}

#[test]
fn answer_crossing_our_cancel_is_acked_and_hung_up() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    h.reply(
        &inv,
        200,
        "OK",
        Some("callee"),
        "Contact: <sip:callee@198.51.100.7:5060>\n",
        Some(ANSWER_SDP),
    );
    assert_eq!(h.last_of(Method::Ack).uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(h.last_of(Method::Bye).uri, "sip:callee@198.51.100.7:5060");
    assert_eq!(h.failed().map(|f| f.0), Some(487));
    assert!(!h
        .outbound()
        .iter()
        .any(|e| matches!(e, OutboundEvent::Answered { .. })));
}

#[test]
fn busy_is_acked_and_reported() {
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 486, "Busy Here", Some("callee"), "", None);
    let ack = h.last_of(Method::Ack);
    assert_eq!(branch(&ack), branch(&inv));
    assert!(ack.headers.get("To").unwrap().ends_with("tag=callee"));
    assert_eq!(h.failed(), Some((486, "Busy Here".into())));
    // The retransmitted 486 gets the same ACK; nothing else is sent.
    h.reply(&inv, 486, "Busy Here", Some("callee"), "", None);
    assert_eq!(h.sent_requests(Method::Ack).len(), 2);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
    assert_eq!(h.outbound().len(), 1);
}

#[test]
fn unanswered_invite_times_out_with_timer_b() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Invite))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(times, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
    assert_eq!(h.ua.call_count(), 0);
    assert!(h.ua.is_idle());
}

#[test]
fn tcp_invite_is_not_retransmitted() {
    let mut h = Harness::new(Transport::Tcp);
    h.place(None);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
    assert_eq!(h.failed().map(|f| f.0), Some(408));
}

#[test]
fn ringing_too_long_is_cancelled_and_reported_as_408() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        183,
        "Session Progress",
        Some("callee"),
        "",
        Some(ANSWER_SDP),
    );
    assert!(matches!(
        h.outbound()[..],
        [OutboundEvent::Ringing {
            status: 183,
            sdp: Some(_),
            ..
        }]
    ));
    h.run_until(Duration::from_secs(59));
    assert!(h.sent_requests(Method::Cancel).is_empty());
    h.run_until(Duration::from_secs(61));
    let cancel = h.last_of(Method::Cancel);
    h.reply(&cancel, 200, "OK", None, "", None);
    h.reply(&inv, 487, "Request Terminated", Some("callee"), "", None);
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
}

#[test]
fn cancel_without_final_answer_gives_up_after_64_t1() {
    let mut h = Harness::new(Transport::Udp);
    let call = h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    h.ua.hangup(h.now, call);
    h.drain();
    h.run_until(Duration::from_secs(33));
    assert_eq!(h.failed(), Some((408, "Request Timeout".into())));
    assert_eq!(h.ua.call_count(), 0);
}

#[test]
fn second_challenge_for_the_same_realm_fails_unless_stale() {
    let challenge = |nonce: &str, stale: bool| {
        format!(
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"{}\n",
            if stale { ", stale=TRUE" } else { "" }
        )
    };
    // Stale: retried with the new nonce.
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        &challenge("1", false),
        None,
    );
    let inv2 = h.last_of(Method::Invite);
    h.reply(
        &inv2,
        401,
        "Unauthorized",
        Some("b"),
        &challenge("2", true),
        None,
    );
    let inv3 = h.last_of(Method::Invite);
    assert_eq!(cseq(&inv3), "3 INVITE");
    assert_eq!(
        auth_param(inv3.headers.get("Authorization").unwrap(), "nonce"),
        "2"
    );
    assert!(h.failed().is_none());
    // Not stale: the password is wrong.
    h.reply(
        &inv3,
        401,
        "Unauthorized",
        Some("c"),
        &challenge("3", false),
        None,
    );
    assert_eq!(h.sent_requests(Method::Invite).len(), 3);
    assert_eq!(h.sent_requests(Method::Ack).len(), 3, "each 401 ACKed");
    let (status, reason) = h.failed().unwrap();
    assert_eq!(status, 401);
    assert!(reason.contains("refused"), "{reason}");
}

#[test]
fn challenge_without_credentials_or_with_auth_int_only_fails() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        407,
        "Proxy Authentication Required",
        Some("a"),
        "Proxy-Authenticate: Digest realm=\"r\", nonce=\"1\"\n",
        None,
    );
    assert_eq!(h.failed().map(|f| f.0), Some(407));

    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"1\", qop=\"auth-int\"\n",
        None,
    );
    let (status, reason) = h.failed().unwrap();
    assert_eq!(status, 401);
    assert!(reason.contains("auth-int"), "{reason}");
    assert_eq!(h.sent_requests(Method::Invite).len(), 1);
}

#[test]
fn sha256_challenge_is_preferred_over_md5() {
    let mut h = Harness::new(Transport::Udp);
    h.place(creds());
    let inv = h.last_of(Method::Invite);
    h.reply(
        &inv,
        401,
        "Unauthorized",
        Some("a"),
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"md5nonce\", qop=\"auth\", algorithm=MD5\nWWW-Authenticate: Digest realm=\"r\", nonce=\"shanonce\", qop=\"auth\", algorithm=SHA-256\n",
        None,
    );
    let a = h.last_of(Method::Invite);
    let a = a.headers.get("Authorization").unwrap();
    assert_eq!(auth_param(a, "nonce"), "shanonce");
    check_digest(a, "INVITE", TARGET, "SHA-256", "00000001");
}

#[test]
fn second_fork_answering_gets_ack_and_bye() {
    let mut h = Harness::new(Transport::Udp);
    let (_call, inv) = h.answered_call("");
    h.reply(
        &inv,
        200,
        "OK",
        Some("fork2"),
        "Contact: <sip:fork2@198.51.100.8>\n",
        Some(ANSWER_SDP),
    );
    let ack = h.last_of(Method::Ack);
    assert_eq!(ack.uri, "sip:fork2@198.51.100.8");
    let bye = h.last_of(Method::Bye);
    assert_eq!(bye.uri, "sip:fork2@198.51.100.8");
    assert!(bye.headers.get("To").unwrap().ends_with("tag=fork2"));
    assert_eq!(h.ua.call_count(), 1, "the first answer stays up");
}

fn send_message(h: &mut Harness, credentials: Option<Credentials>) -> RequestId {
    let id =
        h.ua.message(
            h.now,
            OutboundMessage {
                request_uri: TARGET.into(),
                from: "sip:pinbridge@trunk.example.com".into(),
                to: TARGET.into(),
                flow: h.flow,
                content_type: "text/plain;charset=UTF-8".into(),
                body: Bytes::from_static(b"Your code is 123456"),
                credentials,
            },
        )
        .unwrap();
    h.drain();
    id
}

fn message_outcomes(h: &Harness) -> Vec<(RequestId, u16)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::MessageOutcome { id, status, .. } => Some((*id, *status)),
            _ => None,
        })
        .collect()
}

#[test]
fn message_is_challenged_then_delivered() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, creds());
    let m1 = h.last_of(Method::Message);
    assert_eq!(m1.uri, TARGET);
    assert_eq!(cseq(&m1), "1 MESSAGE");
    assert_eq!(
        m1.headers.get("Content-Type"),
        Some("text/plain;charset=UTF-8")
    );
    assert_eq!(&m1.body[..], b"Your code is 123456");
    assert!(m1.headers.get("Contact").is_none());
    h.reply(
        &m1,
        401,
        "Unauthorized",
        Some("x"),
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"m1\", qop=\"auth\", algorithm=SHA-256, opaque=\"op\"\n",
        None,
    );
    assert!(message_outcomes(&h).is_empty());
    let m2 = h.last_of(Method::Message);
    assert_eq!(cseq(&m2), "2 MESSAGE");
    assert_eq!(m2.headers.get("Call-ID"), m1.headers.get("Call-ID"));
    assert_eq!(from_tag(&m2), from_tag(&m1));
    assert_eq!(&m2.body[..], b"Your code is 123456");
    let a = m2.headers.get("Authorization").unwrap();
    check_digest(a, "MESSAGE", TARGET, "SHA-256", "00000001");
    assert_eq!(auth_param(a, "opaque"), "op");
    h.reply(&m2, 202, "Accepted", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 202)]);
    h.run_until(Duration::from_secs(40));
    assert_eq!(h.sent_requests(Method::Message).len(), 2);
    assert!(h.ua.is_idle());
}

fn message_reasons(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::MessageOutcome { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn md5_after_the_trunk_offered_sha256_is_refused_as_a_downgrade() {
    let sha =
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"s1\", qop=\"auth\", algorithm=SHA-256\n";
    let md5 =
        "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"m1\", qop=\"auth\", algorithm=MD5\n";
    let mut h = Harness::new(Transport::Udp);
    // The trunk offers SHA-256: answered with it.
    send_message(&mut h, creds());
    let m1 = h.last_of(Method::Message);
    h.reply(&m1, 401, "Unauthorized", Some("x"), sha, None);
    let m2 = h.last_of(Method::Message);
    check_digest(
        m2.headers.get("Authorization").unwrap(),
        "MESSAGE",
        TARGET,
        "SHA-256",
        "00000001",
    );
    h.reply(&m2, 202, "Accepted", Some("x"), "", None);
    // Later, from the same address, an MD5-only challenge: someone between
    // us and the trunk wants a hash that is cheap to crack. Not answered.
    send_message(&mut h, creds());
    let m3 = h.last_of(Method::Message);
    h.reply(&m3, 401, "Unauthorized", Some("y"), md5, None);
    assert_eq!(h.sent_requests(Method::Message).len(), 3, "no MD5 retry");
    assert_eq!(message_outcomes(&h).last().map(|o| o.1), Some(401));
    let reason = message_reasons(&h).pop().unwrap();
    assert!(reason.contains("downgrade"), "{reason}");
    // SHA-256 from it is still answered.
    send_message(&mut h, creds());
    let m4 = h.last_of(Method::Message);
    h.reply(&m4, 401, "Unauthorized", Some("z"), sha, None);
    assert_eq!(h.sent_requests(Method::Message).len(), 5);
    // Another address has offered nothing stronger: MD5 is answered there
    // (the memory is per peer address, for the life of the process).
    let mut other = h.flow;
    other.remote = "192.0.2.11:5060".parse().unwrap();
    h.ua.message(
        h.now,
        OutboundMessage {
            request_uri: TARGET.into(),
            from: "sip:pinbridge@trunk.example.com".into(),
            to: TARGET.into(),
            flow: other,
            content_type: "text/plain;charset=UTF-8".into(),
            body: Bytes::from_static(b"Your code is 123456"),
            credentials: creds(),
        },
    )
    .unwrap();
    h.drain();
    let m6 = h.last_of(Method::Message);
    h.flow = other;
    h.reply(&m6, 401, "Unauthorized", Some("w"), md5, None);
    let m7 = h.last_of(Method::Message);
    check_digest(
        m7.headers.get("Authorization").unwrap(),
        "MESSAGE",
        TARGET,
        "MD5",
        "00000001",
    );
}

#[test]
fn message_retransmits_then_times_out_as_408() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    h.run_until(Duration::from_secs(40));
    let times: Vec<u128> = h
        .sent
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Request(r) if r.method == Method::Message))
        .map(|(t, _, _)| t.as_millis())
        .collect();
    assert_eq!(&times[..5], &[0, 500, 1500, 3500, 7500]);
    assert_eq!(message_outcomes(&h), vec![(id, 408)]);
}

#[test]
fn message_refused_is_reported() {
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    let m = h.last_of(Method::Message);
    h.reply(&m, 100, "Trying", None, "", None);
    h.reply(&m, 403, "Forbidden", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 403)]);
}

#[test]
fn a_response_with_a_broken_content_length_is_discarded() {
    // RFC 3261 §18.3: a response whose Content-Length is larger than what
    // arrived (or malformed) is discarded, not acted on with a cut body.
    let mut h = Harness::new(Transport::Udp);
    let id = send_message(&mut h, None);
    let m = h.last_of(Method::Message);
    for length in ["Content-Length: 999", "Content-Length: x1", "l: 1\nl: 2"] {
        let broken = reply_to(&m, 403, "Forbidden", Some("x"), "", None)
            .replace("Content-Length: 0", length);
        h.input(&broken);
        assert!(message_outcomes(&h).is_empty(), "{length}: acted on");
    }
    h.reply(&m, 403, "Forbidden", Some("x"), "", None);
    assert_eq!(message_outcomes(&h), vec![(id, 403)]);
}

fn registration(h: &Harness, expires: u32) -> Registration {
    Registration {
        registrar_uri: "sip:trunk.example.com".into(),
        aor_user: "alice".into(),
        domain: "trunk.example.com".into(),
        flow: h.flow,
        expires,
        credentials: creds(),
    }
}

fn registered(h: &Harness) -> Vec<u32> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Registered { expires, .. } => Some(*expires),
            _ => None,
        })
        .collect()
}

#[test]
fn register_is_challenged_accepted_refreshed_and_removed_on_shutdown() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.ua.register(h.now, registration(&h, 3600)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    assert_eq!(r1.uri, "sip:trunk.example.com");
    assert_eq!(r1.headers.get("To"), Some("<sip:alice@trunk.example.com>"));
    assert_eq!(
        r1.headers.get("Contact"),
        Some("<sip:alice@192.0.2.1:5060>")
    );
    assert_eq!(r1.headers.get("Expires"), Some("3600"));
    assert_eq!(cseq(&r1), "1 REGISTER");
    h.reply(
        &r1,
        401,
        "Unauthorized",
        Some("reg"),
        "WWW-Authenticate: Digest realm=\"trunk.example.com\", nonce=\"r1\", qop=\"auth\"\n",
        None,
    );
    let r2 = h.last_of(Method::Register);
    assert_eq!(cseq(&r2), "2 REGISTER");
    assert_eq!(r2.headers.get("Call-ID"), r1.headers.get("Call-ID"));
    check_digest(
        r2.headers.get("Authorization").unwrap(),
        "REGISTER",
        "sip:trunk.example.com",
        "MD5",
        "00000001",
    );
    // The registrar grants 600 s on our Contact (other bindings listed too).
    h.reply(
        &r2,
        200,
        "OK",
        Some("reg"),
        "Contact: <sip:alice@203.0.113.9:5060>;expires=3000, <sip:alice@192.0.2.1:5060>;expires=600\n",
        None,
    );
    assert_eq!(registered(&h), vec![600]);
    h.run_until(Duration::from_secs(299));
    assert_eq!(h.sent_requests(Method::Register).len(), 2);
    h.run_until(Duration::from_secs(300));
    let r3 = h.last_of(Method::Register);
    assert_eq!(cseq(&r3), "3 REGISTER");
    assert_eq!(r3.headers.get("Call-ID"), r1.headers.get("Call-ID"));
    assert_eq!(from_tag(&r3), from_tag(&r1));
    // The known challenge is answered up front, with the next nonce count.
    check_digest(
        r3.headers.get("Authorization").unwrap(),
        "REGISTER",
        "sip:trunk.example.com",
        "MD5",
        "00000002",
    );
    h.reply(&r3, 200, "OK", Some("reg"), "Expires: 600\n", None);
    assert_eq!(registered(&h), vec![600, 600]);

    h.ua.shutdown(h.now);
    h.drain();
    let r4 = h.last_of(Method::Register);
    assert_eq!(r4.headers.get("Expires"), Some("0"));
    assert_eq!(cseq(&r4), "4 REGISTER");
    assert!(!h.ua.is_idle(), "waiting for the un-REGISTER");
    h.reply(&r4, 200, "OK", Some("reg"), "", None);
    assert!(matches!(h.events.last(), Some(Event::Unregistered { id: i }) if *i == id));
    assert!(h.ua.is_idle());
    h.run_until(Duration::from_secs(2000));
    assert_eq!(
        h.sent_requests(Method::Register).len(),
        4,
        "no refresh after"
    );
}

#[test]
fn register_failures_back_off_and_423_raises_expires() {
    let mut h = Harness::new(Transport::Udp);
    h.ua.register(h.now, registration(&h, 60)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    h.reply(
        &r1,
        423,
        "Interval Too Brief",
        Some("r"),
        "Min-Expires: 300\n",
        None,
    );
    let r2 = h.last_of(Method::Register);
    assert_eq!(r2.headers.get("Expires"), Some("300"));
    h.reply(&r2, 503, "Service Unavailable", Some("r"), "", None);
    assert!(matches!(
        h.events.last(),
        Some(Event::RegistrationFailed { status: 503, .. })
    ));
    h.run_until(Duration::from_secs(29));
    assert_eq!(h.sent_requests(Method::Register).len(), 2);
    h.run_until(Duration::from_secs(31));
    let r3 = h.last_of(Method::Register);
    assert_eq!(r3.headers.get("Expires"), Some("300"));
    // No answer at all: 408, and the next try after 60 s.
    h.run_until(Duration::from_secs(31 + 33));
    assert!(matches!(
        h.events.last(),
        Some(Event::RegistrationFailed { status: 408, .. })
    ));
    // r3 went at 30 s, timed out at 62 s: the next try is at 122 s.
    let n = h.sent_requests(Method::Register).len();
    h.run_until(Duration::from_secs(121));
    assert_eq!(h.sent_requests(Method::Register).len(), n);
    h.run_until(Duration::from_secs(122));
    assert_eq!(h.sent_requests(Method::Register).len(), n + 1);
}

#[test]
fn unregister_before_any_binding_needs_no_request() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.ua.register(h.now, registration(&h, 600)).unwrap();
    h.drain();
    let r1 = h.last_of(Method::Register);
    h.reply(&r1, 403, "Forbidden", Some("r"), "", None);
    h.ua.unregister(h.now, id).unwrap();
    h.drain();
    assert_eq!(h.sent_requests(Method::Register).len(), 1);
    assert!(matches!(h.events.last(), Some(Event::Unregistered { .. })));
}

#[test]
fn client_api_refuses_bad_input_and_shutdown() {
    let mut h = Harness::new(Transport::Udp);
    let mut out = OutboundCall {
        request_uri: "not a uri".into(),
        from: "sip:pinbridge@trunk.example.com".into(),
        to: TARGET.into(),
        flow: h.flow,
        sdp: Bytes::new(),
        credentials: None,
        extra_headers: vec![],
    };
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.request_uri = TARGET.into();
    out.extra_headers = vec![("X-Evil".into(), "a\r\nVia: x".into())];
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.extra_headers = vec![("Call-ID".into(), "mine".into())];
    assert!(h.ua.call(h.now, out.clone()).is_err());
    out.extra_headers.clear();
    h.ua.shutdown(h.now);
    assert!(matches!(
        h.ua.call(h.now, out),
        Err(super::ua::UaError::ShuttingDown)
    ));
    assert!(h.sent.is_empty());
}

/// Feeds random (often nonsensical) responses to every client state: no
/// panic, and every call and message still ends exactly once.
#[test]
fn random_responses_never_panic_the_client() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let statuses = [
        100, 180, 183, 200, 202, 401, 407, 423, 481, 486, 487, 500, 503, 603,
    ];
    let extras = [
        "",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\n",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", stale=true\n",
        "Proxy-Authenticate: Digest realm=\"p\", nonce=\"x\", algorithm=SHA-256, qop=auth\n",
        "Proxy-Authenticate: Digest\n",
        "WWW-Authenticate: Digest realm=\"r\n",
        "Contact: <sip:c@198.51.100.7>\nRecord-Route: <sip:p;lr>\n",
        "Contact: garbage<<\nRecord-Route: ,,,\n",
        "Session-Expires: 1;refresher=uac\n",
        "Session-Expires: 4294967296;refresher=bogus\n",
        "Min-Expires: 99999999999\n",
        "Expires: 0\nContact: <sip:alice@192.0.2.1:5060>;expires=0\n",
        "Retry-After: 0\n",
    ];
    let (mut answered_rounds, mut registered_rounds) = (0, 0);
    for round in 0..200 {
        let mut h = Harness::new(if round % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        });
        let call = h.place(creds());
        let msg = send_message(&mut h, creds());
        h.ua.register(h.now, registration(&h, 120)).unwrap();
        h.drain();
        for _ in 0..30 {
            let reqs = h.requests().into_iter().cloned().collect::<Vec<_>>();
            let Some(req) = reqs.get(rnd(reqs.len().max(1))).cloned() else {
                break;
            };
            if req.method == Method::Ack {
                continue;
            }
            let status = statuses[rnd(statuses.len())];
            let tag = ["a", "b", ""][rnd(3)];
            let extra = extras[rnd(extras.len())];
            let body = (rnd(2) == 0).then_some(ANSWER_SDP);
            let mut text = reply_to(
                &req,
                status,
                "X",
                Some(tag).filter(|t| !t.is_empty()),
                extra,
                body,
            );
            match rnd(6) {
                0 => text = text.replace("CSeq: ", "CSeq: 9"),
                1 => text = text.replace("branch=", "branch=zz"),
                2 => text.truncate(rnd(text.len().max(1))),
                _ => {}
            }
            h.input(&text);
            match rnd(8) {
                0 => {
                    h.ua.hangup(h.now, call);
                    h.drain();
                }
                1 => {
                    let t = h.now - h.t0 + Duration::from_millis(rnd(40_000) as u64);
                    h.run_until(t);
                }
                _ => {}
            }
        }
        h.ua.hangup(h.now, call);
        h.ua.shutdown(h.now);
        h.drain();
        let t = h.now - h.t0 + Duration::from_secs(3600);
        h.run_until(t);
        let outcomes = h
            .outbound()
            .iter()
            .filter(|e| !matches!(e, OutboundEvent::Ringing { .. }))
            .count();
        assert!(outcomes <= 1, "round {round}: {:?}", h.outbound());
        let answered = h
            .outbound()
            .iter()
            .any(|e| matches!(e, OutboundEvent::Answered { .. }));
        assert!(
            answered || outcomes == 1,
            "round {round}: the call ended once: {:?}",
            h.events
        );
        answered_rounds += usize::from(answered);
        registered_rounds += usize::from(!registered(&h).is_empty());
        let msgs: Vec<_> = message_outcomes(&h)
            .into_iter()
            .filter(|(i, _)| *i == msg)
            .collect();
        assert_eq!(msgs.len(), 1, "round {round}: one outcome per MESSAGE");
        assert_eq!(h.ua.call_count(), 0, "round {round}");
        assert!(h.ua.is_idle(), "round {round}");
    }
    // The random walk reaches the interesting states, not only failures.
    assert!(answered_rounds > 10, "{answered_rounds} answered");
    assert!(registered_rounds > 10, "{registered_rounds} registered");
}

#[test]
fn stateless_replies_get_a_fresh_to_tag_each() {
    // Two requests whose headers do not all parse are answered without a
    // transaction; each answer needs its own random To tag (RFC 3261
    // §19.3), not one derived from a counter that such replies never move.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sip-torture");
    let mut h = Harness::new(Transport::Udp);
    for name in ["scalar02", "ncl", "scalar02"] {
        let bytes = std::fs::read(dir.join(format!("{name}.dat"))).expect("torture fixture");
        h.input_bytes(&bytes);
    }
    let tags: Vec<String> = h
        .responses()
        .iter()
        .map(|r| {
            let to = r.headers.get("To").expect("a To header");
            to.split("tag=").nth(1).expect("a To tag").to_string()
        })
        .collect();
    assert_eq!(tags.len(), 3, "{:?}", h.statuses());
    assert!(
        tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
        "{tags:?}"
    );
}

/// Found by the `ua_sequence` fuzz target: a callee that sends BYE in the
/// early dialog (which RFC 3261 §15 forbids it) and never a final answer
/// ended the call but left its INVITE transaction waiting in Proceeding
/// for ever. Timer C now ends it.
#[test]
fn invite_orphaned_by_an_early_bye_ends_with_timer_c() {
    let mut h = Harness::new(Transport::Udp);
    h.place(None);
    let inv = h.last_of(Method::Invite);
    h.reply(&inv, 180, "Ringing", Some("callee"), "", None);
    // Before a 2xx the dialog has no remote tag yet, so a BYE whose From
    // has none matches it.
    let bye = from_callee("BYE", 1, &inv, "z9hG4bK-earlybye", "").replace(";tag=callee", "");
    h.input(&bye);
    assert_eq!(
        h.ua.call_count(),
        0,
        "the early BYE ended the call: {:?}",
        h.statuses()
    );
    assert!(!h.ua.is_idle(), "the INVITE still waits for its answer");
    h.run_until(Duration::from_secs(60 * 10));
    assert!(h.ua.is_idle(), "Timer C ended the orphaned INVITE");
}

/// A re-INVITE refresh the peer answers only with 1xx is given up after
/// Timer C, and the call is ended as a failed refresh.
#[test]
fn refresh_answered_only_with_ringing_fails_after_timer_c() {
    let mut h = Harness::new(Transport::Udp);
    h.input(&invite(
        "z9hG4bK-ref",
        "Supported: timer\nSession-Expires: 90;refresher=uas\n",
    ));
    let call = h.incoming()[0];
    h.answer(call);
    let tag = h.to_tag();
    h.input(&in_dialog("ACK", 1, &tag, "z9hG4bK-refack", ""));
    // We refresh at half the interval.
    h.run_until(Duration::from_secs(46));
    let refresh = h
        .requests()
        .into_iter()
        .find(|r| r.method == Method::Invite || r.method == Method::Update)
        .cloned()
        .expect("a session refresh");
    h.reply(&refresh, 100, "Trying", None, "", None);
    assert!(h.ended().is_empty());
    h.run_until(Duration::from_secs(46 + 300));
    assert!(
        h.ended().contains(&EndReason::RefreshFailed),
        "{:?}",
        h.ended()
    );
    assert!(h.ua.is_idle());
}
