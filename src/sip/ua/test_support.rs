//! What the user agent's tests share: a harness that feeds byte strings
//! to a [`UserAgent`] on a fake clock and records what it sends and
//! reports, the requests a caller sends us, the responses a trunk sends
//! back, and an independent check of our digest answers.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sip::auth::Credentials;
use crate::sip::flow::{Flow, Transport};
use crate::sip::message::{parse_datagram, Message, Request, Response};
use crate::sip::method::Method;
use crate::sip::ua::{
    CallHandle, EndReason, Event, OutboundCall, OutboundEvent, OutboundMessage, Registration,
    RequestId, UaConfig, UserAgent,
};

/// A user agent on a fake clock, fed byte strings from one peer; what it
/// sends (with when) and reports is kept for the test to look at.
pub(super) struct Harness {
    pub(super) ua: UserAgent,
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) flow: Flow,
    pub(super) sent: Vec<(Duration, Flow, Message)>,
    pub(super) events: Vec<Event>,
}

impl Harness {
    pub(super) fn new(transport: Transport) -> Self {
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

    pub(super) fn input(&mut self, msg: &str) {
        self.input_bytes(msg.replace('\n', "\r\n").as_bytes());
    }

    pub(super) fn input_bytes(&mut self, b: &[u8]) {
        self.ua.handle_input(self.now, self.flow, b);
        self.drain();
    }

    pub(super) fn drain(&mut self) {
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
    pub(super) fn run_until(&mut self, at: Duration) {
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

    pub(super) fn responses(&self) -> Vec<&Response> {
        self.sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub(super) fn requests(&self) -> Vec<&Request> {
        self.sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                Message::Request(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub(super) fn statuses(&self) -> Vec<u16> {
        self.responses().iter().map(|r| r.status).collect()
    }

    pub(super) fn incoming(&self) -> Vec<CallHandle> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    pub(super) fn ended(&self) -> Vec<EndReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Ended { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    pub(super) fn answer(&mut self, call: CallHandle) {
        self.ua
            .answer(self.now, call, Bytes::from_static(b"v=0\r\n"))
            .unwrap();
        self.drain();
    }

    pub(super) fn to_tag(&self) -> String {
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

pub(super) const OFFER: &str = "v=0\no=a 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 18000 RTP/AVP 0 101\n";

pub(super) fn invite(branch: &str, extra: &str) -> String {
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

pub(super) fn in_dialog(
    method: &str,
    cseq: u32,
    to_tag: &str,
    branch: &str,
    extra: &str,
) -> String {
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

// ----------------------------------------------------------------------
// The client side: a trunk that challenges, answers and calls back.

pub(super) const TARGET: &str = "sip:+15551234567@trunk.example.com;user=phone";

pub(super) const ANSWER_SDP: &str = "v=0\no=b 1 1 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\nm=audio 30000 RTP/AVP 0\n";

pub(super) fn creds() -> Option<Credentials> {
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
pub(super) fn auth_param(v: &str, name: &str) -> String {
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
pub(super) fn check_digest(auth: &str, method: &str, uri: &str, alg: &str, nc: &str) {
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
pub(super) fn reply_to(
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
    pub(super) fn place(&mut self, credentials: Option<Credentials>) -> CallHandle {
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

    pub(super) fn reply(
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

    pub(super) fn sent_requests(&self, m: Method) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == m)
            .cloned()
            .collect()
    }

    pub(super) fn last_of(&self, m: Method) -> Request {
        self.sent_requests(m.clone())
            .pop()
            .unwrap_or_else(|| panic!("no {m} sent"))
    }

    pub(super) fn outbound(&self) -> Vec<OutboundEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Outbound(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn failed(&self) -> Option<(u16, String)> {
        self.outbound().into_iter().find_map(|e| match e {
            OutboundEvent::Failed { status, reason, .. } => Some((status, reason)),
            _ => None,
        })
    }

    /// Places a call without credentials and has it answered.
    pub(super) fn answered_call(&mut self, extra_200: &str) -> (CallHandle, Request) {
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

pub(super) fn cseq(r: &Request) -> &str {
    r.headers.get("CSeq").unwrap()
}

pub(super) fn from_tag(r: &Request) -> String {
    r.headers
        .get("From")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string()
}

/// A request from the far end inside an outbound call's dialog.
pub(super) fn from_callee(
    method: &str,
    cseq: u32,
    inv: &Request,
    branch: &str,
    extra: &str,
) -> String {
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

pub(super) fn send_message(h: &mut Harness, credentials: Option<Credentials>) -> RequestId {
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

pub(super) fn message_outcomes(h: &Harness) -> Vec<(RequestId, u16)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::MessageOutcome { id, status, .. } => Some((*id, *status)),
            _ => None,
        })
        .collect()
}

pub(super) fn registration(h: &Harness, expires: u32) -> Registration {
    Registration {
        registrar_uri: "sip:trunk.example.com".into(),
        aor_user: "alice".into(),
        domain: "trunk.example.com".into(),
        flow: h.flow,
        expires,
        credentials: creds(),
    }
}

pub(super) fn registered(h: &Harness) -> Vec<u32> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Registered { expires, .. } => Some(*expires),
            _ => None,
        })
        .collect()
}
