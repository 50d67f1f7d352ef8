//! RFC 4475 over the network: all 49 torture messages, byte-exact, sent as
//! UDP datagrams to a running pinbridge, each answered as the RFC says (or,
//! for responses, not answered at all); then truncated and bit-flipped
//! copies; and the server must still answer afterwards.
//!
//! Responses follow RFC 3261 §18.2.2: to the source IP at the port of the
//! top Via's sent-by (5060 when it has none) unless the Via has `rport`. The
//! messages keep their Vias (`host5.example.net`, `192.0.2.59:5050`, ...),
//! so each message is sent from its own loopback address 127.0.10.N bound
//! at the port its top Via names, which is where the answer must arrive.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use common::rtp::RtpRecorder;
use common::server::TestServer;
use common::sipmsg::{uri_of, Msg};
use common::ua::{new_branch, phone_offer, random_token, InviteOptions, TestUa};
use pinbridge::testing::TestRng;
use tokio::net::UdpSocket;

/// Copied from `TORTURE_EXPECTATIONS` in src/sip/ua/tests/validate.rs: the first
/// answer each message must get; `None` = a response, which gets no answer.
const TORTURE_EXPECTATIONS: &[(&str, Option<u16>)] = &[
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

/// How long a message that must not be answered is watched.
const SILENCE: Duration = Duration::from_millis(500);
/// Bound on waiting for an answer that must come.
const ANSWER: Duration = Duration::from_secs(3);

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sip-torture")
        .join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ------------------------------------------------------------------ panics

static SERVER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records panics on tokio worker threads (where the in-process server's
/// tasks run; a panicking task would otherwise vanish silently). Panics of
/// the tests themselves happen on the test threads and are not counted.
fn watch_server_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if thread.name() == Some("tokio-runtime-worker") {
                SERVER_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

fn assert_no_server_panics() {
    let panics = SERVER_PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        panics.is_empty(),
        "the server panicked:\n{}",
        panics.join("\n")
    );
}

// -------------------------------------------------- lenient request reader

/// The header section of a raw message, unfolded, as (lower-case full
/// name, value) pairs, plus the start line. Deliberately lenient: it reads
/// what the torture messages say so the test knows where the answer goes
/// and what it must copy; it does not judge validity.
struct RawHead {
    start_line: String,
    headers: Vec<(String, String)>,
}

fn full_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        _ => return lower,
    }
    .to_string()
}

impl RawHead {
    fn read(bytes: &[u8]) -> RawHead {
        let text = String::from_utf8_lossy(bytes);
        let head = match text.find("\r\n\r\n") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let mut lines = head.split("\r\n");
        let start_line = lines.next().unwrap_or("").to_string();
        let mut unfolded: Vec<String> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = unfolded.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                    continue;
                }
            }
            unfolded.push(line.to_string());
        }
        let headers = unfolded
            .iter()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((full_name(n), v.trim().to_string()))
            })
            .collect();
        RawHead {
            start_line,
            headers,
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        match self.all(name).as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }

    fn is_request(&self) -> bool {
        !self.start_line.starts_with("SIP/")
    }

    fn method(&self) -> &str {
        self.start_line.split(' ').next().unwrap_or("")
    }

    fn request_uri(&self) -> &str {
        self.start_line.split(' ').nth(1).unwrap_or("")
    }

    /// The first via-parm of the first Via header, as written (unfolded).
    fn top_via(&self) -> Option<&str> {
        let v = *self.all("via").first()?;
        Some(v.split(',').next().unwrap_or(v).trim())
    }

    /// The UDP port the answer goes to per RFC 3261 §18.2.2, or `None`
    /// when the top Via cannot be read or has `rport` (the answer then goes
    /// to the source port, whatever it is).
    fn reply_port(&self) -> Option<u16> {
        let via = self.top_via()?;
        let mut parts = via.split(';');
        let proto = parts.next()?;
        if parts.any(|p| {
            p.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("rport"))
        }) {
            return None;
        }
        // "SIP / 2.0 / UDP host:port" (whitespace allowed around '/' and ':')
        let after = proto.splitn(3, '/').nth(2)?;
        let mut words = after.split_whitespace();
        let _transport = words.next()?;
        let sent_by: String = words.collect();
        if sent_by.is_empty() {
            return None;
        }
        if let Some(rest) = sent_by.strip_prefix('[') {
            let (_, tail) = rest.split_once(']')?;
            return match tail.strip_prefix(':') {
                Some(p) => p.parse().ok(),
                None if tail.is_empty() => Some(5060),
                None => None,
            };
        }
        match sent_by.rsplit_once(':') {
            Some((_, p)) => p.parse().ok(),
            None => Some(5060),
        }
    }
}

/// Header values compared as SIP compares them for copying: folding and
/// whitespace do not matter.
fn squash(v: &str) -> String {
    v.chars().filter(|c| !c.is_whitespace()).collect()
}

// ------------------------------------------------------------ the exchange

/// A socket at 127.0.<subnet>.<host>, bound where the answer to `head`
/// must arrive (see the module docs).
async fn socket_for(head: &RawHead, subnet: u8, host: u8) -> UdpSocket {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, subnet, host));
    let port = head.reply_port().unwrap_or(0);
    UdpSocket::bind(SocketAddr::new(ip, port))
        .await
        .unwrap_or_else(|e| panic!("bind {ip}:{port} for the torture message: {e}"))
}

/// The next SIP message on `sock` within `timeout` (unparseable datagrams
/// are returned as errors so the test can report them).
async fn recv(sock: &UdpSocket, timeout: Duration) -> Option<Result<Msg, String>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(timeout, sock.recv_from(&mut buf)).await {
        Err(_) => None,
        Ok(Err(e)) => Some(Err(format!("recv error: {e}"))),
        Ok(Ok((n, from))) => Some(Msg::parse(&buf[..n]).map_err(|e| {
            format!(
                "unparseable datagram from {from}: {e}:\n{}",
                String::from_utf8_lossy(&buf[..n])
            )
        })),
    }
}

/// What went wrong with one message, collected so one run reports all.
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, name: &str, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{name}: {}", what()));
        }
    }
}

/// Checks the copied headers and reason phrase of a response to `head`.
fn check_response(f: &mut Failures, name: &str, head: &RawHead, resp: &Msg) {
    let status = resp.status().unwrap_or(0);
    if status >= 400 {
        f.check(
            resp.reason().is_some_and(|r| !r.trim().is_empty()),
            name,
            || format!("{status} without a reason phrase"),
        );
    }
    for (header, canon) in [("call-id", "Call-ID"), ("cseq", "CSeq"), ("from", "From")] {
        let sent = head.all(header);
        if sent.is_empty() {
            continue;
        }
        let got = resp.header(canon).map(squash);
        let ok = got
            .as_ref()
            .is_some_and(|g| sent.iter().any(|s| squash(s) == *g));
        f.check(ok, name, || {
            format!("{canon} not copied: request had {sent:?}, {status} has {got:?}")
        });
    }
}

/// A request built by the test on the message's socket: `lines` are the
/// headers (Content-Length is added).
fn request(method: &str, uri: &str, lines: &[String]) -> Vec<u8> {
    let mut s = format!("{method} {uri} SIP/2.0\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// The ACK for a non-2xx final response to an INVITE (RFC 3261
/// §17.1.1.3): same Request-URI and top Via as the INVITE, To of the
/// response. Only when the INVITE was readable enough to form one.
fn ack_non_2xx(head: &RawHead, resp: &Msg) -> Option<Vec<u8>> {
    let (num, _) = head.one("cseq")?.split_once(char::is_whitespace)?;
    let num: u32 = num.trim().parse().ok()?;
    let lines = vec![
        format!("Via: {}", head.top_via()?),
        "Max-Forwards: 70".to_string(),
        format!("From: {}", head.one("from")?),
        format!("To: {}", resp.header("To")?),
        format!("Call-ID: {}", head.one("call-id")?),
        format!("CSeq: {num} ACK"),
    ];
    Some(request("ACK", head.request_uri(), &lines))
}

/// An INVITE the server answered 100 then 200: ACK the 200 and hang up
/// with BYE from the same socket (the dialog is the message's own: its
/// Call-ID, From and CSeq; the server's To tag and Contact).
async fn finish_call(
    f: &mut Failures,
    name: &str,
    head: &RawHead,
    sock: &UdpSocket,
    server: SocketAddr,
    ok: &Msg,
) {
    let local = sock.local_addr().expect("local addr");
    let Some(cseq) = head
        .one("cseq")
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
    else {
        f.0.push(format!("{name}: cannot read the CSeq to hang up"));
        return;
    };
    let target = ok
        .header("Contact")
        .map(uri_of)
        .unwrap_or(head.request_uri());
    let dialog = |method: &str, n: u32| {
        request(
            method,
            target,
            &[
                format!("Via: SIP/2.0/UDP {local};branch={};rport", new_branch()),
                "Max-Forwards: 70".into(),
                format!("From: {}", head.one("from").unwrap_or_default()),
                format!("To: {}", ok.header("To").unwrap_or_default()),
                format!("Call-ID: {}", head.one("call-id").unwrap_or_default()),
                format!("CSeq: {n} {method}"),
            ],
        )
    };
    sock.send_to(&dialog("ACK", cseq), server)
        .await
        .expect("send ACK");
    sock.send_to(&dialog("BYE", cseq + 1), server)
        .await
        .expect("send BYE");
    let deadline = Instant::now() + ANSWER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(sock, left).await {
            None => {
                f.0.push(format!("{name}: no answer to our BYE within {ANSWER:?}"));
                return;
            }
            Some(Err(e)) => f.0.push(format!("{name}: {e}")),
            Some(Ok(m)) => {
                // Anything else (e.g. a late 200 retransmission, or the
                // server's own BYE) is skipped.
                let is_bye_answer = m.cseq().is_some_and(|(_, meth)| meth == "BYE");
                if m.is_response() && is_bye_answer {
                    f.check(m.status() == Some(200), name, || {
                        format!("our BYE got {:?} {:?}", m.status(), m.reason())
                    });
                    return;
                }
                if m.is_request() && m.method() == Some("BYE") {
                    // The server hung up first: answer and be done.
                    let mut lines: Vec<String> = m
                        .header_all("Via")
                        .iter()
                        .map(|v| format!("Via: {v}"))
                        .collect();
                    for h in ["From", "To", "Call-ID", "CSeq"] {
                        lines.push(format!("{h}: {}", m.header(h).unwrap_or_default()));
                    }
                    let mut resp = "SIP/2.0 200 OK\r\n".to_string();
                    for l in lines {
                        resp.push_str(&l);
                        resp.push_str("\r\n");
                    }
                    resp.push_str("Content-Length: 0\r\n\r\n");
                    let _ = sock.send_to(resp.as_bytes(), server).await;
                }
            }
        }
    }
}

/// Sends one torture message and checks what comes back.
async fn exchange(
    f: &mut Failures,
    name: &str,
    want: Option<u16>,
    host: u8,
    server: SocketAddr,
) -> Vec<u16> {
    let bytes = fixture(name);
    let head = RawHead::read(&bytes);
    let sock = socket_for(&head, 10, host).await;
    sock.send_to(&bytes, server).await.expect("send");
    let mut statuses = Vec::new();

    let Some(want) = want else {
        // A response (or something the server must treat as one): silence.
        if let Some(got) = recv(&sock, SILENCE).await {
            f.0.push(format!(
                "{name}: a response must not be answered, got {:?}",
                got.map(|m| m.to_string())
            ));
        }
        return statuses;
    };

    let first = match recv(&sock, ANSWER).await {
        None => {
            f.0.push(format!(
                "{name}: no answer within {ANSWER:?} at {} (want {want})",
                sock.local_addr().expect("addr")
            ));
            return statuses;
        }
        Some(Err(e)) => {
            f.0.push(format!("{name}: {e}"));
            return statuses;
        }
        Some(Ok(m)) => m,
    };
    let status = first.status().unwrap_or(0);
    statuses.push(status);
    f.check(status == want, name, || {
        format!(
            "want {want}, got {status} {:?}\n--- sent:\n{}\n--- got:\n{first}",
            first.reason(),
            String::from_utf8_lossy(&bytes)
        )
    });
    check_response(f, name, &head, &first);

    // The final response, and for 2xx to INVITE the call clean-up.
    let mut last = first;
    if status < 200 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match recv(&sock, left).await {
                None => {
                    f.0.push(format!("{name}: no final response after {status}"));
                    return statuses;
                }
                Some(Err(e)) => f.0.push(format!("{name}: {e}")),
                Some(Ok(m)) => {
                    let s = m.status().unwrap_or(0);
                    statuses.push(s);
                    check_response(f, name, &head, &m);
                    last = m;
                    if s >= 200 {
                        break;
                    }
                }
            }
        }
        let s = last.status().unwrap_or(0);
        f.check(s == 200, name, || {
            format!(
                "the call must be answered 200 after {status}, got {s} {:?}",
                last.reason()
            )
        });
        if s == 200 {
            f.check(last.header_param("To", "tag").is_some(), name, || {
                "200 without a To tag".into()
            });
            finish_call(f, name, &head, &sock, server, &last).await;
            return statuses;
        }
    }
    if head.is_request() && head.method() == "INVITE" && last.status().unwrap_or(0) >= 300 {
        if let Some(ack) = ack_non_2xx(&head, &last) {
            sock.send_to(&ack, server).await.expect("send ACK");
        }
    }
    // Nothing else may follow but copies of the same final response (e.g.
    // dblreq: the INVITE after the REGISTER in the datagram is ignored).
    let final_status = last.status();
    while let Some(extra) = recv(&sock, Duration::from_millis(150)).await {
        match extra {
            Ok(m) if m.is_response() && m.status() == final_status => {}
            Ok(m) => f.0.push(format!("{name}: unexpected extra message:\n{m}")),
            Err(e) => f.0.push(format!("{name}: {e}")),
        }
    }
    statuses
}

/// The server survived: a normal call (INVITE with SDP, 200, ACK, RTP
/// flows, BYE, 200) still works.
async fn normal_call_works(server: SocketAddr) {
    let mut ua = TestUa::udp(server).await.expect("test UA");
    let rec = RtpRecorder::bind().await.expect("RTP socket");
    let opts = InviteOptions::new("1000").with_sdp(phone_offer(rec.port()));
    let (mut call, _) = ua.answered_call(opts, Duration::from_secs(5)).await;
    assert!(
        rec.wait_for_packets(10, Duration::from_secs(3)).await,
        "RTP flows after the torture run ({} packets)",
        rec.packets().len()
    );
    let bye = ua.bye(&mut call).await.expect("BYE");
    let r = ua
        .expect_final_tx(&bye, Duration::from_secs(3))
        .await
        .expect("answer to BYE");
    assert_eq!(r.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_torture_messages_over_udp_get_the_rfc_answers() {
    watch_server_panics();
    assert_eq!(TORTURE_EXPECTATIONS.len(), 49);
    let server = TestServer::start().await;
    // All 49 at once, each on its own address: they are independent, and
    // the server must keep them apart.
    let mut set = tokio::task::JoinSet::new();
    for (i, (name, want)) in TORTURE_EXPECTATIONS.iter().enumerate() {
        let sip = server.sip;
        set.spawn(async move {
            let mut f = Failures(Vec::new());
            let statuses = exchange(&mut f, name, *want, i as u8 + 1, sip).await;
            (i, f.0, statuses)
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r.expect("exchange task"));
    }
    results.sort_by_key(|(i, _, _)| *i);
    let mut failures = Vec::new();
    let mut seen: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (i, f, statuses) in results {
        failures.extend(f);
        for s in statuses {
            seen.entry(s).or_default().push(TORTURE_EXPECTATIONS[i].0);
        }
    }
    eprintln!("torture answers by status: {seen:?}");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    normal_call_works(server.sip).await;
    assert_no_server_panics();
    server.stop().await;
}

/// Truncated and bit-flipped versions of every torture message; a
/// deterministic generator, so a failing mutation can be reproduced from
/// the printed seed.
fn mutations(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = TestRng::new(seed);
    let mut out = Vec::new();
    for (name, _) in TORTURE_EXPECTATIONS {
        let bytes = fixture(name);
        let len = bytes.len();
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(len / 2);
        let mut cuts = vec![1, 10, len / 4, len / 2, head_end, head_end + 2, len - 1];
        cuts.push(1 + rng.index(len - 1));
        for cut in cuts {
            if cut > 0 && cut < len {
                out.push((format!("{name} cut at {cut}"), bytes[..cut].to_vec()));
            }
        }
        for round in 0..4 {
            let mut m = bytes.clone();
            let flips = 1 + rng.index(8);
            for _ in 0..flips {
                let at = rng.index(len);
                m[at] ^= 1 << rng.index(8);
            }
            out.push((format!("{name} flip round {round} ({flips} flips)"), m));
        }
        // A NUL byte somewhere in the header section.
        let mut m = bytes.clone();
        m[rng.index(head_end.max(1))] = 0;
        out.push((format!("{name} NUL"), m));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_bit_flipped_torture_messages_do_not_hurt_the_server() {
    watch_server_panics();
    let server = TestServer::start().await;
    let seed = std::env::var("PINBRIDGE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from_str_radix(&random_token(), 16).unwrap_or(1));
    let cases = mutations(seed);
    eprintln!(
        "sending {} mutated datagrams (PINBRIDGE_FUZZ_SEED={seed})",
        cases.len()
    );
    assert!(cases.len() >= 300, "a few hundred datagrams");

    // A handful of senders on their own loopback addresses; answers go to
    // wherever the (mutated) Via says, and nobody needs to read them.
    let mut senders = Vec::new();
    for host in 1..=8u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 11, host));
        senders.push(
            UdpSocket::bind(SocketAddr::new(ip, 0))
                .await
                .expect("bind sender"),
        );
    }
    let answered = AtomicUsize::new(0);
    for (i, (_label, bytes)) in cases.iter().enumerate() {
        let sock = &senders[i % senders.len()];
        sock.send_to(bytes, server.sip).await.expect("send");
        if i % 16 == 15 {
            // Keep the server's queue from being the thing under test.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Drain what came back to the senders (answers at their source port).
    let mut buf = vec![0u8; 65536];
    for sock in &senders {
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(50), sock.recv_from(&mut buf)).await
        {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
    eprintln!(
        "{} answers reached the senders' own ports",
        answered.load(Ordering::Relaxed)
    );

    // Still alive and answering, promptly.
    let mut ua = TestUa::udp(server.sip).await.expect("test UA");
    let started = Instant::now();
    let tx = ua.options("1000").await.expect("OPTIONS");
    let r = ua
        .expect_final_tx(&tx, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("no answer to OPTIONS after the mutations (seed {seed}): {e}"));
    assert_eq!(r.status(), Some(200), "{r}");
    eprintln!("OPTIONS answered {:?} after the burst", started.elapsed());
    normal_call_works(server.sip).await;
    assert_no_server_panics();
    // Not stop(): calls the mutations started would hold the graceful
    // shutdown for its full grace period (their BYEs go nowhere).
    drop(server);
}
