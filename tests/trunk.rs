//! pinbridge as a client of a SIP trunk, end to end over loopback: a fake
//! trunk (the independent test UA) challenges and answers pinbridge's
//! INVITE, MESSAGE and REGISTER; the digests are checked with the test's
//! own MD5/SHA-256 computation.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::server::TestServer;
use common::sipmsg::{param, uri_of, Msg, MsgBuilder};
use common::ua::{new_branch, TestUa};
use pinbridge::config::otp::{TrunkSettings, TrunkTransport};
use pinbridge::server::sip_task::CallEvent;
use pinbridge::server::trunk::{OutboundCallEvent, SipHandle};
use pinbridge::sip::ua::EndReason;
use sha2::Digest;

const WAIT: Duration = Duration::from_secs(5);
const USER: &str = "pb-trunk-user";
const PASSWORD: &str = "correct horse";
const DOMAIN: &str = "trunk.test";
const OFFER: &str = "v=0\r\no=pinbridge 1 1 IN IP4 127.0.0.1\r\ns=pinbridge\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const ANSWER: &str = "v=0\r\no=trunk 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn trunk_settings(proxy: SocketAddr, transport: TrunkTransport, register: bool) -> TrunkSettings {
    TrunkSettings {
        proxy: proxy.to_string(),
        transport,
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        domain: DOMAIN.into(),
        from_user: "+15550001111".into(),
        register,
        register_expires: 600,
        realm: None,
    }
}

/// A fake trunk on UDP and pinbridge configured to use it.
async fn udp_trunk(register: bool) -> (TestUa, TestServer) {
    // The test UA sends to its "server"; it learns pinbridge's address below.
    let mut trunk = TestUa::udp("127.0.0.1:9".parse().unwrap())
        .await
        .expect("trunk socket");
    let at = trunk.local_addr();
    let server = TestServer::start_with(|c| {
        c.otp.trunk = Some(trunk_settings(at, TrunkTransport::Udp, register));
    })
    .await;
    trunk.set_server(server.sip);
    (trunk, server)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn h(alg: &str, s: &str) -> String {
    match alg {
        "SHA-256" => hex(&sha2::Sha256::digest(s.as_bytes())),
        _ => hex(&md5::Md5::digest(s.as_bytes())),
    }
}

/// `name=value` of a Digest credentials header, quotes removed.
fn field(v: &str, name: &str) -> String {
    let at = v
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        + name.len()
        + 2;
    let rest = &v[at..];
    match rest.strip_prefix('"') {
        Some(r) => r[..r.find('"').unwrap()].to_string(),
        None => rest.split(',').next().unwrap().trim().to_string(),
    }
}

/// What the trunk does with credentials: recompute the response.
fn verify_digest(creds: &str, method: &str, alg: &str, nonce: &str) {
    let f = |n| field(creds, n);
    assert_eq!(f("username"), USER);
    assert_eq!(f("realm"), DOMAIN);
    assert_eq!(f("nonce"), nonce);
    assert_eq!(f("qop"), "auth");
    let ha1 = h(alg, &format!("{USER}:{DOMAIN}:{PASSWORD}"));
    let ha2 = h(alg, &format!("{method}:{}", f("uri")));
    let want = h(
        alg,
        &format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", f("nc"), f("cnonce")),
    );
    assert_eq!(f("response"), want, "{creds}");
}

/// A response from the trunk with a chosen To tag.
fn response(req: &Msg, code: u16, reason: &str, tag: &str, extra: &[(&str, String)]) -> MsgBuilder {
    let mut b = MsgBuilder::response(code, reason);
    for v in req.header_all("Via") {
        b = b.header("Via", v);
    }
    let to = req.header("To").unwrap();
    let to = if param(to, "tag").is_some() || code == 100 {
        to.to_string()
    } else {
        format!("{to};tag={tag}")
    };
    b = b
        .header("From", req.header("From").unwrap())
        .header("To", to)
        .header("Call-ID", req.call_id().unwrap())
        .header("CSeq", req.header("CSeq").unwrap());
    for (n, v) in extra {
        b = b.header(n, v.clone());
    }
    b
}

/// The next request with `method`. On a loaded machine pinbridge may
/// retransmit an earlier request (UDP, Timer A/E) before the trunk's answer
/// reaches it: such copies are skipped.
async fn expect_request(trunk: &mut TestUa, method: &str) -> Msg {
    loop {
        let m = trunk
            .recv_request(WAIT)
            .await
            .expect("a request from pinbridge");
        if m.method() == Some(method) {
            return m;
        }
        let retransmittable = ["INVITE", "MESSAGE", "REGISTER", "BYE"];
        assert!(
            m.method().is_some_and(|x| retransmittable.contains(&x)),
            "wanted {method}, got {m}"
        );
    }
}

async fn next_event(call: &mut pinbridge::server::trunk::OutboundCallHandle) -> OutboundCallEvent {
    tokio::time::timeout(WAIT, call.next_event())
        .await
        .expect("an event in time")
        .expect("the call's events")
}

#[tokio::test]
async fn outbound_call_through_a_challenging_trunk() {
    let (mut trunk, server) = udp_trunk(false).await;
    let sip: SipHandle = server.sip_handle();
    assert_eq!(sip.trunk_address(), Some(trunk.local_addr()));
    assert_eq!(sip.local_ip_for_trunk(), Some("127.0.0.1".parse().unwrap()));

    let mut call = sip
        .place_call("+1 555 123 4567", Bytes::from_static(OFFER.as_bytes()))
        .await
        .expect("call placed");
    assert_eq!(call.request_uri, "sip:+15551234567@trunk.test;user=phone");

    // INVITE -> 407 -> ACK -> INVITE with Proxy-Authorization.
    let inv1 = expect_request(&mut trunk, "INVITE").await;
    assert_eq!(inv1.uri(), Some("sip:+15551234567@trunk.test;user=phone"));
    assert!(inv1
        .header("From")
        .unwrap()
        .contains("<sip:+15550001111@trunk.test>"));
    assert_eq!(inv1.body_str(), OFFER);
    assert!(inv1.header("Proxy-Authorization").is_none());
    let challenge = "Digest realm=\"trunk.test\", nonce=\"n-invite\", qop=\"auth\", algorithm=SHA-256, opaque=\"o1\"";
    trunk
        .send_raw(
            &response(
                &inv1,
                407,
                "Proxy Authentication Required",
                "t407",
                &[("Proxy-Authenticate", challenge.to_string())],
            )
            .build(),
        )
        .await
        .unwrap();
    let ack1 = expect_request(&mut trunk, "ACK").await;
    assert_eq!(ack1.top_branch(), inv1.top_branch());
    assert_eq!(ack1.cseq(), Some((1, "ACK".to_string())));
    let inv2 = expect_request(&mut trunk, "INVITE").await;
    assert_eq!(inv2.cseq(), Some((2, "INVITE".to_string())));
    assert_eq!(inv2.call_id(), inv1.call_id());
    assert_eq!(
        inv2.header_param("From", "tag"),
        inv1.header_param("From", "tag")
    );
    let pa = inv2
        .header("Proxy-Authorization")
        .expect("credentials")
        .to_string();
    verify_digest(&pa, "INVITE", "SHA-256", "n-invite");
    assert_eq!(field(&pa, "opaque"), "o1");

    // 180, then 200 with a route set and the answer.
    trunk
        .send_raw(&response(&inv2, 180, "Ringing", "callee", &[]).build())
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut call).await,
        OutboundCallEvent::Ringing { status: 180, .. }
    ));
    let contact = format!("<sip:callee@{}>", trunk.local_addr());
    let rr = format!("<sip:{};lr>", trunk.local_addr());
    let ok = response(
        &inv2,
        200,
        "OK",
        "callee",
        &[("Record-Route", rr.clone()), ("Contact", contact.clone())],
    )
    .body("application/sdp", ANSWER.as_bytes())
    .build();
    trunk.send_raw(&ok).await.unwrap();
    match next_event(&mut call).await {
        OutboundCallEvent::Answered { sdp: Some(sdp) } => assert_eq!(&sdp[..], ANSWER.as_bytes()),
        other => panic!("{other:?}"),
    }
    let ack2 = expect_request(&mut trunk, "ACK").await;
    assert_eq!(ack2.uri(), Some(uri_of(&contact)));
    assert_eq!(ack2.header_all("Route"), vec![rr.as_str()]);
    assert_eq!(ack2.cseq(), Some((2, "ACK".to_string())));
    assert_eq!(ack2.header_param("To", "tag").as_deref(), Some("callee"));
    // The 2xx again (as if our ACK was lost): ACKed again.
    trunk.send_raw(&ok).await.unwrap();
    let ack3 = expect_request(&mut trunk, "ACK").await;
    assert_eq!(ack3.top_branch(), ack2.top_branch());

    // Later, our BYE.
    call.hangup().await;
    let bye = expect_request(&mut trunk, "BYE").await;
    assert_eq!(bye.uri(), Some(uri_of(&contact)));
    assert_eq!(bye.cseq(), Some((3, "BYE".to_string())));
    trunk
        .send_raw(&response(&bye, 200, "OK", "callee", &[]).build())
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn outbound_call_ended_by_the_far_end_and_busy_call() {
    let (mut trunk, server) = udp_trunk(false).await;
    let sip = server.sip_handle();
    let mut call = sip
        .place_call("sip:bob@example.org", Bytes::from_static(OFFER.as_bytes()))
        .await
        .unwrap();
    let inv = expect_request(&mut trunk, "INVITE").await;
    assert_eq!(inv.uri(), Some("sip:bob@example.org"));
    let contact = format!("<sip:bob@{}>", trunk.local_addr());
    trunk
        .send_raw(
            &response(&inv, 200, "OK", "bob", &[("Contact", contact)])
                .body("application/sdp", ANSWER.as_bytes())
                .build(),
        )
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut call).await,
        OutboundCallEvent::Answered { .. }
    ));
    expect_request(&mut trunk, "ACK").await;
    // The far end hangs up.
    let our_contact = uri_of(inv.header("Contact").unwrap()).to_string();
    let bye = MsgBuilder::request("BYE", &our_contact)
        .header(
            "Via",
            format!("SIP/2.0/UDP {};branch={}", trunk.local_addr(), new_branch()),
        )
        .header("Max-Forwards", "70")
        .header("From", "<sip:bob@example.org>;tag=bob")
        .header("To", inv.header("From").unwrap())
        .header("Call-ID", inv.call_id().unwrap())
        .header("CSeq", "1 BYE")
        .build();
    trunk.send_raw(&bye).await.unwrap();
    let ok = trunk.recv_response(WAIT).await.unwrap();
    assert_eq!(ok.status(), Some(200));
    assert!(matches!(
        next_event(&mut call).await,
        OutboundCallEvent::InCall(CallEvent::Ended {
            reason: EndReason::RemoteBye
        })
    ));

    // A busy callee: 486 is ACKed and reported.
    let mut call = sip
        .place_call("+15557654321", Bytes::from_static(OFFER.as_bytes()))
        .await
        .unwrap();
    let inv = expect_request(&mut trunk, "INVITE").await;
    trunk
        .send_raw(&response(&inv, 486, "Busy Here", "busy", &[]).build())
        .await
        .unwrap();
    let ack = expect_request(&mut trunk, "ACK").await;
    assert_eq!(ack.top_branch(), inv.top_branch());
    match next_event(&mut call).await {
        OutboundCallEvent::Failed { status, reason } => {
            assert_eq!((status, reason.as_str()), (486, "Busy Here"))
        }
        other => panic!("{other:?}"),
    }
    let after = tokio::time::timeout(WAIT, call.next_event()).await;
    assert!(matches!(after, Ok(None)), "nothing after Failed");

    // Hanging up while it rings sends CANCEL; the 487 ends it.
    let mut call = sip
        .place_call("+15557654321", Bytes::from_static(OFFER.as_bytes()))
        .await
        .unwrap();
    let inv = expect_request(&mut trunk, "INVITE").await;
    trunk
        .send_raw(&response(&inv, 180, "Ringing", "r", &[]).build())
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut call).await,
        OutboundCallEvent::Ringing { .. }
    ));
    call.hangup().await;
    let cancel = expect_request(&mut trunk, "CANCEL").await;
    assert_eq!(cancel.top_branch(), inv.top_branch());
    trunk
        .send_raw(&response(&cancel, 200, "OK", "r", &[]).build())
        .await
        .unwrap();
    trunk
        .send_raw(&response(&inv, 487, "Request Terminated", "r", &[]).build())
        .await
        .unwrap();
    expect_request(&mut trunk, "ACK").await;
    assert!(matches!(
        next_event(&mut call).await,
        OutboundCallEvent::Failed { status: 487, .. }
    ));
    server.stop().await;
}

#[tokio::test]
async fn message_through_the_trunk_with_a_401_challenge() {
    let (mut trunk, server) = udp_trunk(false).await;
    let sip = server.sip_handle();
    let sending = tokio::spawn(async move {
        sip.send_message(
            "+15551234567",
            "text/plain;charset=UTF-8",
            Bytes::from_static(b"Your pinbridge code is 424242"),
        )
        .await
    });
    let m1 = expect_request(&mut trunk, "MESSAGE").await;
    assert_eq!(m1.uri(), Some("sip:+15551234567@trunk.test;user=phone"));
    assert_eq!(m1.header("Content-Type"), Some("text/plain;charset=UTF-8"));
    assert_eq!(m1.body_str(), "Your pinbridge code is 424242");
    trunk
        .send_raw(
            &response(
                &m1,
                401,
                "Unauthorized",
                "m",
                &[(
                    "WWW-Authenticate",
                    "Digest realm=\"trunk.test\", nonce=\"n-msg\", qop=\"auth\"".to_string(),
                )],
            )
            .build(),
        )
        .await
        .unwrap();
    let m2 = expect_request(&mut trunk, "MESSAGE").await;
    assert_eq!(m2.cseq(), Some((2, "MESSAGE".to_string())));
    assert_eq!(m2.call_id(), m1.call_id());
    assert_eq!(m2.body_str(), "Your pinbridge code is 424242");
    verify_digest(
        m2.header("Authorization").unwrap(),
        "MESSAGE",
        "MD5",
        "n-msg",
    );
    trunk
        .send_raw(&response(&m2, 200, "OK", "m", &[]).build())
        .await
        .unwrap();
    let outcome = tokio::time::timeout(WAIT, sending)
        .await
        .expect("outcome in time")
        .unwrap()
        .expect("an outcome");
    assert!(outcome.delivered(), "{outcome:?}");
    assert_eq!(outcome.status, 200);
    server.stop().await;
}

/// Sends a MESSAGE through pinbridge's trunk and answers its first copy
/// with a 401 carrying `challenge`. Returns the retry, if pinbridge sent
/// one, and the outcome once known.
async fn challenged_message(
    trunk: &mut TestUa,
    sip: &SipHandle,
    challenge: &str,
) -> (Option<Msg>, pinbridge::server::trunk::MessageOutcome) {
    let sip = sip.clone();
    let mut sending = tokio::spawn(async move {
        sip.send_message(
            "+15551234567",
            "text/plain;charset=UTF-8",
            Bytes::from_static(b"Your pinbridge code is 424242"),
        )
        .await
    });
    let m1 = expect_request(trunk, "MESSAGE").await;
    trunk
        .send_raw(
            &response(
                &m1,
                401,
                "Unauthorized",
                "m",
                &[("WWW-Authenticate", challenge.to_string())],
            )
            .build(),
        )
        .await
        .unwrap();
    // Either pinbridge retries with credentials (answered 200 here), or it
    // gives up and the outcome is the 401.
    let retry = tokio::select! {
        done = &mut sending => {
            let outcome = done.unwrap().expect("an outcome");
            return (None, outcome);
        }
        m = expect_request(trunk, "MESSAGE") => m,
    };
    trunk
        .send_raw(&response(&retry, 200, "OK", "m", &[]).build())
        .await
        .unwrap();
    let outcome = tokio::time::timeout(WAIT, sending)
        .await
        .expect("outcome in time")
        .unwrap()
        .expect("an outcome");
    (Some(retry), outcome)
}

#[tokio::test]
async fn trunk_digest_answers_only_its_realm_and_refuses_a_downgrade() {
    let mut trunk = TestUa::udp("127.0.0.1:9".parse().unwrap())
        .await
        .expect("trunk socket");
    let at = trunk.local_addr();
    let server = TestServer::start_with(|c| {
        let mut t = trunk_settings(at, TrunkTransport::Udp, false);
        t.realm = Some(DOMAIN.into());
        c.otp.trunk = Some(t);
    })
    .await;
    trunk.set_server(server.sip);
    let sip = server.sip_handle();

    // A challenge for another realm: the password is not used for it.
    let (retry, outcome) = challenged_message(
        &mut trunk,
        &sip,
        "Digest realm=\"elsewhere.example\", nonce=\"n0\", qop=\"auth\", algorithm=SHA-256",
    )
    .await;
    assert!(retry.is_none(), "answered a foreign realm: {retry:?}");
    assert_eq!(outcome.status, 401);
    assert!(outcome.reason.contains("realm"), "{}", outcome.reason);

    // Its own realm with SHA-256: answered.
    let (retry, outcome) = challenged_message(
        &mut trunk,
        &sip,
        "Digest realm=\"trunk.test\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256",
    )
    .await;
    let retry = retry.expect("a retry with credentials");
    verify_digest(
        retry.header("Authorization").unwrap(),
        "MESSAGE",
        "SHA-256",
        "n1",
    );
    assert!(outcome.delivered(), "{outcome:?}");

    // Then MD5 only, from the same trunk: a downgrade, refused.
    let (retry, outcome) = challenged_message(
        &mut trunk,
        &sip,
        "Digest realm=\"trunk.test\", nonce=\"n2\", qop=\"auth\", algorithm=MD5",
    )
    .await;
    assert!(retry.is_none(), "answered MD5 after SHA-256: {retry:?}");
    assert_eq!(outcome.status, 401);
    assert!(outcome.reason.contains("downgrade"), "{}", outcome.reason);
    server.stop().await;
}

#[tokio::test]
async fn register_at_start_and_unregister_at_shutdown() {
    let (mut trunk, server) = udp_trunk(true).await;
    let r1 = expect_request(&mut trunk, "REGISTER").await;
    assert_eq!(r1.uri(), Some("sip:trunk.test"));
    assert_eq!(r1.header("To"), Some("<sip:pb-trunk-user@trunk.test>"));
    assert_eq!(r1.header("Expires"), Some("600"));
    let contact = r1.header("Contact").unwrap().to_string();
    assert!(
        contact.contains(&format!("pb-trunk-user@{}", server.sip)),
        "{contact}"
    );
    trunk
        .send_raw(
            &response(
                &r1,
                401,
                "Unauthorized",
                "reg",
                &[(
                    "WWW-Authenticate",
                    "Digest realm=\"trunk.test\", nonce=\"n-reg\", qop=\"auth\", algorithm=MD5"
                        .to_string(),
                )],
            )
            .build(),
        )
        .await
        .unwrap();
    let r2 = expect_request(&mut trunk, "REGISTER").await;
    assert_eq!(r2.cseq(), Some((2, "REGISTER".to_string())));
    verify_digest(
        r2.header("Authorization").unwrap(),
        "REGISTER",
        "MD5",
        "n-reg",
    );
    trunk
        .send_raw(
            &response(
                &r2,
                200,
                "OK",
                "reg",
                &[("Contact", format!("{contact};expires=600"))],
            )
            .build(),
        )
        .await
        .unwrap();
    // Shutdown removes the binding, answering the known challenge at once.
    let stopping = tokio::spawn(server.stop());
    let r3 = expect_request(&mut trunk, "REGISTER").await;
    assert_eq!(r3.header("Expires"), Some("0"));
    assert_eq!(r3.cseq(), Some((3, "REGISTER".to_string())));
    assert_eq!(r3.call_id(), r1.call_id());
    verify_digest(
        r3.header("Authorization").unwrap(),
        "REGISTER",
        "MD5",
        "n-reg",
    );
    assert_eq!(field(r3.header("Authorization").unwrap(), "nc"), "00000002");
    trunk
        .send_raw(&response(&r3, 200, "OK", "reg", &[]).build())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stops once unregistered")
        .unwrap();
}

/// The trunk over TCP: pinbridge connects once and sends everything on
/// that connection.
#[tokio::test]
async fn tcp_trunk_reuses_one_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let server = TestServer::start_with(|c| {
        c.otp.trunk = Some(trunk_settings(at, TrunkTransport::Tcp, false));
    })
    .await;
    let sip = server.sip_handle();
    let send = |text: &'static str| {
        let sip = sip.clone();
        tokio::spawn(async move {
            sip.send_message(
                "+15551234567",
                "text/plain",
                Bytes::from_static(text.as_bytes()),
            )
            .await
        })
    };
    let first = send("one");
    let second = send("two");
    let (mut stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("pinbridge connects")
        .unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while got.len() < 2 {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("data in time")
            .unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        while let Some((m, used)) = Msg::parse_stream(&buf).unwrap() {
            buf.drain(..used);
            got.push(m);
        }
    }
    let mut bodies: Vec<String> = got.iter().map(|m| m.body_str()).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["one", "two"]);
    for m in &got {
        assert!(m.header("Via").unwrap().starts_with("SIP/2.0/TCP"));
        stream
            .write_all(&response(m, 202, "Accepted", "x", &[]).build())
            .await
            .unwrap();
    }
    for task in [first, second] {
        let outcome = tokio::time::timeout(WAIT, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(outcome.status, 202);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err(),
        "no second connection"
    );
    server.stop().await;
}

#[tokio::test]
async fn no_trunk_and_bad_targets_are_clear_errors() {
    use pinbridge::server::trunk::PlaceError;
    let server = TestServer::start().await;
    let err = server
        .sip_handle()
        .place_call("+15551234567", Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(err, PlaceError::NoTrunk);
    server.stop().await;

    let (_trunk, server) = udp_trunk(false).await;
    let err = server
        .sip_handle()
        .send_message("call me maybe", "text/plain", Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, PlaceError::BadTarget(_)), "{err}");
    server.stop().await;
}
