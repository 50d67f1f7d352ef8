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
    assert_eq!(
        upd.headers.get("Session-Expires"),
        Some("100;refresher=uas")
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
