//! `TestUa`: a small SIP user agent (mostly the client side) for the
//! integration tests, over UDP or one TCP connection. It uses its own
//! message code (`sipmsg`), not the server's, so each checks the other.
//!
//! It is deliberately dumb: it sends exactly what a test asks for, never
//! retransmits and never answers on its own (tests check the server's
//! retransmissions and timers, so the UA must not hide them). Every message
//! received, including retransmissions, is logged with its arrival time.
//! Everything is sent to the server address given at construction (Contact
//! and Route URIs are put into requests but not resolved). Every wait is
//! bounded by a timeout.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::sdp::{parse_sdp_answer, SdpAnswer};
use super::sipmsg::{param, uri_of, Msg, MsgBuilder};

pub use super::sdp::{offer_sdp, phone_offer, Direction};

/// Everything that can go wrong while talking to the server.
#[derive(Debug)]
pub enum UaError {
    /// Nothing suitable arrived in time; the text says what was awaited.
    Timeout(String),
    Io(io::Error),
    /// The transport is gone (TCP connection closed by the peer).
    Closed,
    /// The UA was asked for something the call state does not allow.
    Protocol(String),
}

impl fmt::Display for UaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UaError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            UaError::Io(e) => write!(f, "I/O error: {e}"),
            UaError::Closed => write!(f, "transport closed"),
            UaError::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for UaError {}

impl From<io::Error> for UaError {
    fn from(e: io::Error) -> UaError {
        UaError::Io(e)
    }
}

pub type UaResult<T> = Result<T, UaError>;

/// Which transport a `TestUa` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// The token used in Via (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// One datagram (UDP) or framed message (TCP) as received, parsed if it
/// parses. Retransmissions are separate entries.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub from: SocketAddr,
    pub raw: Vec<u8>,
    pub msg: Option<Msg>,
}

/// A client transaction we started: enough to match its responses (top Via
/// branch + CSeq method, RFC 3261 §17.1.3).
#[derive(Debug, Clone)]
pub struct ClientTx {
    pub branch: String,
    pub method: String,
    pub cseq: u32,
    pub call_id: String,
    /// The Via header value we sent.
    pub via: String,
}

impl ClientTx {
    fn matches(&self, msg: &Msg) -> bool {
        msg.is_response()
            && msg.top_branch().as_deref() == Some(self.branch.as_str())
            && msg.cseq().map(|(_, m)| m) == Some(self.method.clone())
    }
}

/// The dialog state of one call we placed, owned by the test and passed to
/// the UA's methods. Fields are public so tests can inspect (or corrupt) it.
#[derive(Debug, Clone)]
pub struct Call {
    pub call_id: String,
    pub from_tag: String,
    /// Our From header value (with tag).
    pub from: String,
    /// The To header value: without tag until the server's tag is learned.
    pub to: String,
    pub to_tag: Option<String>,
    /// The Request-URI of the initial INVITE.
    pub request_uri: String,
    /// Where in-dialog requests go: the Contact URI of the 2xx (the initial
    /// Request-URI until then).
    pub remote_target: String,
    /// Record-Route of the 2xx, reversed (UAC side, RFC 3261 §12.1.2).
    pub route_set: Vec<String>,
    /// Our Contact header value.
    pub contact: String,
    /// The last CSeq number we used in this dialog.
    pub cseq: u32,
    /// The current INVITE transaction (initial or the last re-INVITE).
    pub invite: ClientTx,
    /// The current INVITE as sent, for CANCEL and the non-2xx ACK.
    pub invite_request: Msg,
    /// The final response to the current INVITE, once received.
    pub final_response: Option<Msg>,
    /// A 2xx has established the dialog (route set learned).
    pub established: bool,
}

impl Call {
    /// The SDP answer in the final response to the current INVITE.
    pub fn answer_sdp(&self) -> Option<SdpAnswer> {
        let resp = self.final_response.as_ref()?;
        parse_sdp_answer(&resp.body_str()).ok()
    }

    fn to_with_tag(&self) -> String {
        match &self.to_tag {
            Some(tag) if param(&self.to, "tag").is_none() => format!("{};tag={tag}", self.to),
            _ => self.to.clone(),
        }
    }
}

/// What to put in an INVITE. `Default` calls "1000" from "testua" with no
/// SDP (a late offer).
#[derive(Debug, Clone)]
pub struct InviteOptions {
    /// User part of the Request-URI and To (the dialled number).
    pub user: String,
    pub from_user: String,
    /// SDP offer; `None` sends no body (late offer, the answer goes in the ACK).
    pub sdp: Option<String>,
    pub extra_headers: Vec<(String, String)>,
    /// Overrides the Request-URI (default `sip:<user>@<server>`).
    pub request_uri: Option<String>,
    /// Overrides the generated Call-ID.
    pub call_id: Option<String>,
    pub cseq: u32,
}

impl Default for InviteOptions {
    fn default() -> InviteOptions {
        InviteOptions {
            user: "1000".into(),
            from_user: "testua".into(),
            sdp: None,
            extra_headers: Vec::new(),
            request_uri: None,
            call_id: None,
            cseq: 1,
        }
    }
}

impl InviteOptions {
    pub fn new(user: &str) -> InviteOptions {
        InviteOptions {
            user: user.into(),
            ..InviteOptions::default()
        }
    }

    pub fn with_sdp(mut self, sdp: impl Into<String>) -> InviteOptions {
        self.sdp = Some(sdp.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> InviteOptions {
        self.extra_headers.push((name.into(), value.into()));
        self
    }
}

enum Writer {
    Udp(Arc<UdpSocket>),
    Tcp(OwnedWriteHalf),
}

/// The test user agent. See the module docs for what it does not do.
pub struct TestUa {
    kind: TransportKind,
    server: SocketAddr,
    local: SocketAddr,
    writer: Writer,
    incoming: mpsc::UnboundedReceiver<Received>,
    /// Received but not yet consumed (e.g. a request that arrived while a
    /// test waited for a response).
    pending: VecDeque<Received>,
    log: Arc<Mutex<Vec<Received>>>,
    reader: JoinHandle<()>,
    trace: bool,
}

impl Drop for TestUa {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

impl TestUa {
    /// A UA on a UDP socket bound to loopback port 0.
    pub async fn udp(server: SocketAddr) -> UaResult<TestUa> {
        let loopback = if server.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        Self::udp_on(server, loopback).await
    }

    /// A UA on a UDP socket bound to `ip` port 0 (any 127.x.y.z works on
    /// loopback: another source address).
    pub async fn udp_on(server: SocketAddr, ip: IpAddr) -> UaResult<TestUa> {
        let bind = SocketAddr::new(ip, 0);
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(udp_reader(socket.clone(), tx, log.clone()));
        Ok(TestUa::assemble(
            TransportKind::Udp,
            server,
            local,
            Writer::Udp(socket),
            rx,
            log,
            reader,
        ))
    }

    /// A UA on one TCP connection to the server (framing by Content-Length).
    pub async fn tcp(server: SocketAddr) -> UaResult<TestUa> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
            .await
            .map_err(|_| UaError::Timeout(format!("TCP connect to {server}")))??;
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(tcp_reader(read, server, tx, log.clone()));
        Ok(TestUa::assemble(
            TransportKind::Tcp,
            server,
            local,
            Writer::Tcp(write),
            rx,
            log,
            reader,
        ))
    }

    fn assemble(
        kind: TransportKind,
        server: SocketAddr,
        local: SocketAddr,
        writer: Writer,
        incoming: mpsc::UnboundedReceiver<Received>,
        log: Arc<Mutex<Vec<Received>>>,
        reader: JoinHandle<()>,
    ) -> TestUa {
        TestUa {
            kind,
            server,
            local,
            writer,
            incoming,
            pending: VecDeque::new(),
            log,
            reader,
            trace: std::env::var_os("PINBRIDGE_UA_TRACE").is_some(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Points the UA at another server address (a fake trunk created
    /// before pinbridge learns pinbridge's address once it runs).
    pub fn set_server(&mut self, server: SocketAddr) {
        self.server = server;
    }

    pub fn transport(&self) -> TransportKind {
        self.kind
    }

    // ------------------------------------------------------------ sending

    /// Sends bytes as they are (torture tests): a datagram to the server, or
    /// bytes on the TCP stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> UaResult<()> {
        let server = self.server;
        self.send_to(server, bytes).await
    }

    async fn send_to(&mut self, dest: SocketAddr, bytes: &[u8]) -> UaResult<()> {
        if self.trace {
            eprintln!(
                "[testua {} -> {dest}]\n{}",
                self.local,
                String::from_utf8_lossy(bytes)
            );
        }
        match &mut self.writer {
            Writer::Udp(socket) => {
                socket.send_to(bytes, dest).await?;
            }
            // Bounded: a server that stops reading must not hang the test.
            Writer::Tcp(stream) => tokio::time::timeout(SEND_TIMEOUT, stream.write_all(bytes))
                .await
                .map_err(|_| UaError::Timeout("TCP write to the server".into()))??,
        }
        Ok(())
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.kind.via_token(),
            self.local
        )
    }

    fn contact(&self, user: &str) -> String {
        match self.kind {
            TransportKind::Udp => format!("<sip:{user}@{}>", self.local),
            TransportKind::Tcp => format!("<sip:{user}@{};transport=tcp>", self.local),
        }
    }

    /// Sends an INVITE (with `opts.sdp` as the offer, if any) and returns the
    /// new call; responses are read with `expect_final` and friends.
    pub async fn invite(&mut self, opts: InviteOptions) -> UaResult<Call> {
        let branch = new_branch();
        let via = self.via(&branch);
        let from_tag = random_token();
        let call_id = opts
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{}@testua", random_token()));
        let request_uri = opts
            .request_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", opts.user, self.server));
        let from = format!(
            "<sip:{}@{}>;tag={from_tag}",
            opts.from_user,
            self.local.ip()
        );
        let to = format!("<sip:{}@{}>", opts.user, self.server);
        let contact = self.contact(&opts.from_user);
        let mut builder = MsgBuilder::request("INVITE", &request_uri)
            .header("Via", via.clone())
            .header("Max-Forwards", "70")
            .header("From", from.clone())
            .header("To", to.clone())
            .header("Call-ID", call_id.clone())
            .header("CSeq", format!("{} INVITE", opts.cseq))
            .header("Contact", contact.clone())
            .header("User-Agent", "pinbridge-testua")
            .headers(&opts.extra_headers);
        if let Some(sdp) = &opts.sdp {
            builder = builder.body("application/sdp", sdp.as_bytes());
        }
        let bytes = builder.build();
        let invite_request = parse_own(&bytes)?;
        self.send_raw(&bytes).await?;
        Ok(Call {
            call_id: call_id.clone(),
            from_tag,
            from,
            to,
            to_tag: None,
            request_uri: request_uri.clone(),
            remote_target: request_uri,
            route_set: Vec::new(),
            contact,
            cseq: opts.cseq,
            invite: ClientTx {
                branch,
                method: "INVITE".into(),
                cseq: opts.cseq,
                call_id,
                via,
            },
            invite_request,
            final_response: None,
            established: false,
        })
    }

    /// Builds an in-dialog request (RFC 3261 §12.2.1.1): next CSeq, new
    /// branch, Request-URI = remote target, Route = route set.
    fn dialog_request(
        &self,
        call: &mut Call,
        method: &str,
        extra_headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> (Vec<u8>, ClientTx) {
        call.cseq += 1;
        let branch = new_branch();
        let via = self.via(&branch);
        let mut builder = MsgBuilder::request(method, &call.remote_target)
            .header("Via", via.clone())
            .header("Max-Forwards", "70");
        for route in &call.route_set {
            builder = builder.header("Route", route.clone());
        }
        builder = builder
            .header("From", call.from.clone())
            .header("To", call.to_with_tag())
            .header("Call-ID", call.call_id.clone())
            .header("CSeq", format!("{} {method}", call.cseq))
            .header("Contact", call.contact.clone())
            .headers(extra_headers);
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        let tx = ClientTx {
            branch,
            method: method.into(),
            cseq: call.cseq,
            call_id: call.call_id.clone(),
            via,
        };
        (builder.build(), tx)
    }

    /// Sends an arbitrary in-dialog request and returns its transaction.
    pub async fn request(
        &mut self,
        call: &mut Call,
        method: &str,
        extra_headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> UaResult<ClientTx> {
        let (bytes, tx) = self.dialog_request(call, method, extra_headers, body);
        self.send_raw(&bytes).await?;
        Ok(tx)
    }

    /// ACKs the final response to the current INVITE: for a 2xx a new
    /// transaction in the dialog (optionally carrying the SDP answer to a
    /// late offer); for a non-2xx the hop-by-hop ACK of RFC 3261 §17.1.1.3
    /// (same branch and Request-URI as the INVITE, To from the response).
    pub async fn ack(&mut self, call: &mut Call, sdp: Option<&str>) -> UaResult<()> {
        let Some(resp) = call.final_response.clone() else {
            return Err(UaError::Protocol(
                "ack() before a final response to the INVITE".into(),
            ));
        };
        let bytes = if resp.status().is_some_and(|c| (200..300).contains(&c)) {
            self.ack_2xx(call, sdp)
        } else {
            ack_non_2xx(call, &resp)
        };
        self.send_raw(&bytes).await
    }

    fn ack_2xx(&self, call: &Call, sdp: Option<&str>) -> Vec<u8> {
        let mut builder = MsgBuilder::request("ACK", &call.remote_target)
            .header("Via", self.via(&new_branch()))
            .header("Max-Forwards", "70");
        for route in &call.route_set {
            builder = builder.header("Route", route.clone());
        }
        builder = builder
            .header("From", call.from.clone())
            .header("To", call.to_with_tag())
            .header("Call-ID", call.call_id.clone())
            .header("CSeq", format!("{} ACK", call.invite.cseq))
            .header("Contact", call.contact.clone());
        if let Some(sdp) = sdp {
            builder = builder.body("application/sdp", sdp.as_bytes());
        }
        builder.build()
    }

    pub async fn bye(&mut self, call: &mut Call) -> UaResult<ClientTx> {
        self.request(call, "BYE", &[], None).await
    }

    /// CANCELs the current INVITE (RFC 3261 §9.1): same branch, Request-URI,
    /// Call-ID, From, To and CSeq number as the INVITE, method CANCEL.
    pub async fn cancel(&mut self, call: &Call) -> UaResult<ClientTx> {
        let inv = &call.invite_request;
        let mut builder = MsgBuilder::request("CANCEL", inv.uri().unwrap_or(&call.request_uri))
            .header("Via", call.invite.via.clone())
            .header("Max-Forwards", "70");
        for route in inv.header_all("Route") {
            builder = builder.header("Route", route);
        }
        let to = inv.header("To").unwrap_or(&call.to).to_string();
        builder = builder
            .header("From", call.from.clone())
            .header("To", to)
            .header("Call-ID", call.call_id.clone())
            .header("CSeq", format!("{} CANCEL", call.invite.cseq));
        self.send_raw(&builder.build()).await?;
        Ok(ClientTx {
            method: "CANCEL".into(),
            ..call.invite.clone()
        })
    }

    /// Sends a re-INVITE (offer in `sdp`, or none) and makes it the call's
    /// current INVITE, so `expect_final`/`ack` apply to it.
    pub async fn reinvite(&mut self, call: &mut Call, sdp: Option<&str>) -> UaResult<ClientTx> {
        let body = sdp.map(|s| ("application/sdp", s.as_bytes()));
        let (bytes, tx) = self.dialog_request(call, "INVITE", &[], body);
        call.invite_request = parse_own(&bytes)?;
        call.invite = tx.clone();
        call.final_response = None;
        self.send_raw(&bytes).await?;
        Ok(tx)
    }

    pub async fn update(&mut self, call: &mut Call, sdp: Option<&str>) -> UaResult<ClientTx> {
        let body = sdp.map(|s| ("application/sdp", s.as_bytes()));
        self.request(call, "UPDATE", &[], body).await
    }

    pub async fn info(
        &mut self,
        call: &mut Call,
        content_type: &str,
        body: &str,
    ) -> UaResult<ClientTx> {
        self.request(call, "INFO", &[], Some((content_type, body.as_bytes())))
            .await
    }

    /// An out-of-dialog OPTIONS to `sip:<user>@<server>`.
    pub async fn options(&mut self, user: &str) -> UaResult<ClientTx> {
        let branch = new_branch();
        let via = self.via(&branch);
        let call_id = format!("{}@testua", random_token());
        let bytes = MsgBuilder::request("OPTIONS", &format!("sip:{user}@{}", self.server))
            .header("Via", via.clone())
            .header("Max-Forwards", "70")
            .header(
                "From",
                format!("<sip:testua@{}>;tag={}", self.local.ip(), random_token()),
            )
            .header("To", format!("<sip:{user}@{}>", self.server))
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 OPTIONS")
            .header("Contact", self.contact("testua"))
            .header("Accept", "application/sdp")
            .build();
        self.send_raw(&bytes).await?;
        Ok(ClientTx {
            branch,
            method: "OPTIONS".into(),
            cseq: 1,
            call_id,
            via,
        })
    }

    /// Answers a request from the server (e.g. its BYE): copies Via (all),
    /// From, To (adding a tag if it has none), Call-ID and CSeq. Sent back
    /// to the request's source (UDP) or on the connection (TCP).
    pub async fn respond(
        &mut self,
        req: &Msg,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
        body: Option<(&str, &str)>,
    ) -> UaResult<()> {
        let mut builder = MsgBuilder::response(code, reason);
        for via in req.header_all("Via") {
            builder = builder.header("Via", via);
        }
        let to = req.header("To").unwrap_or_default();
        let to = if param(to, "tag").is_none() && code > 100 {
            format!("{to};tag={}", random_token())
        } else {
            to.to_string()
        };
        builder = builder
            .header("From", req.header("From").unwrap_or_default())
            .header("To", to)
            .header("Call-ID", req.call_id().unwrap_or_default())
            .header("CSeq", req.header("CSeq").unwrap_or_default())
            .headers(extra_headers);
        if let Some((content_type, text)) = body {
            builder = builder.body(content_type, text.as_bytes());
        }
        let dest = match self.kind {
            TransportKind::Udp => req.source.unwrap_or(self.server),
            TransportKind::Tcp => self.server,
        };
        self.send_to(dest, &builder.build()).await
    }

    // ---------------------------------------------------------- receiving

    /// Next received item that satisfies `pred`: first from what is pending,
    /// then from the transport; everything else stays pending.
    async fn next_matching(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Received) -> bool,
    ) -> UaResult<Received> {
        if let Some(i) = self.pending.iter().position(&pred) {
            if let Some(item) = self.pending.remove(i) {
                return Ok(item);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => return Err(UaError::Timeout(what.to_string())),
                Ok(None) => return Err(UaError::Closed),
                Ok(Some(item)) if pred(&item) => return Ok(item),
                Ok(Some(item)) => self.pending.push_back(item),
            }
        }
    }

    /// The next thing received, parsed or not (torture tests).
    pub async fn recv_raw(&mut self, timeout: Duration) -> UaResult<Received> {
        self.next_matching(timeout, "any message", |_| true).await
    }

    /// The next response of any transaction (including late copies, e.g.
    /// 2xx retransmissions left pending; prefer `recv_response_for`).
    pub async fn recv_response(&mut self, timeout: Duration) -> UaResult<Msg> {
        let item = self
            .next_matching(timeout, "a response", |r| {
                r.msg.as_ref().is_some_and(Msg::is_response)
            })
            .await?;
        into_msg(item)
    }

    /// The next request from the server (e.g. its BYE or a retransmission).
    pub async fn recv_request(&mut self, timeout: Duration) -> UaResult<Msg> {
        let item = self
            .next_matching(timeout, "a request", |r| {
                r.msg.as_ref().is_some_and(Msg::is_request)
            })
            .await?;
        into_msg(item)
    }

    /// The next response (1xx included) of transaction `tx`.
    pub async fn recv_response_for(&mut self, tx: &ClientTx, timeout: Duration) -> UaResult<Msg> {
        let what = format!("a response to {} (branch {})", tx.method, tx.branch);
        let item = self
            .next_matching(timeout, &what, |r| {
                r.msg.as_ref().is_some_and(|m| tx.matches(m))
            })
            .await?;
        into_msg(item)
    }

    /// The final response of transaction `tx`, skipping 1xx; `timeout`
    /// bounds the whole wait.
    pub async fn expect_final_tx(&mut self, tx: &ClientTx, timeout: Duration) -> UaResult<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.recv_response_for(tx, left).await?;
            if msg.status().is_some_and(|c| c >= 200) {
                return Ok(msg);
            }
        }
    }

    /// The next response (1xx or final) to the call's current INVITE;
    /// learns the dialog from it (To tag; from a 2xx also the remote target
    /// and, for the initial INVITE, the route set) and records a final
    /// response for `ack`.
    pub async fn recv_invite_response(
        &mut self,
        call: &mut Call,
        timeout: Duration,
    ) -> UaResult<Msg> {
        let tx = call.invite.clone();
        let msg = self.recv_response_for(&tx, timeout).await?;
        learn_dialog(call, &msg);
        Ok(msg)
    }

    /// The final response to the call's current INVITE, skipping 1xx.
    pub async fn expect_final(&mut self, call: &mut Call, timeout: Duration) -> UaResult<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.recv_invite_response(call, left).await?;
            if msg.status().is_some_and(|c| c >= 200) {
                return Ok(msg);
            }
        }
    }

    /// Places a call: INVITE with `opts` (which carries the SDP offer),
    /// waits up to `timeout` for the final response and ACKs it. Returns
    /// the established call and the server's SDP answer, or the status of
    /// a refusal (also ACKed). Panics, naming the number dialled, when
    /// the INVITE cannot be sent, no final response comes, or a 200 has
    /// no SDP answer: every caller of this expects an answer either way.
    pub async fn place_call(
        &mut self,
        opts: InviteOptions,
        timeout: Duration,
    ) -> Result<(Call, SdpAnswer), u16> {
        let number = opts.user.clone();
        let mut call = self
            .invite(opts)
            .await
            .unwrap_or_else(|e| panic!("INVITE to {number} not sent: {e}"));
        let r = self
            .expect_final(&mut call, timeout)
            .await
            .unwrap_or_else(|e| panic!("no final response to the INVITE to {number}: {e}"));
        let status = r.status().unwrap_or(0);
        if status != 200 {
            let _ = self.ack(&mut call, None).await;
            return Err(status);
        }
        let answer = call
            .answer_sdp()
            .unwrap_or_else(|| panic!("200 for {number} without an SDP answer:\n{r}"));
        self.ack(&mut call, None)
            .await
            .unwrap_or_else(|e| panic!("ACK for {number} not sent: {e}"));
        Ok((call, answer))
    }

    /// [`TestUa::place_call`] that must be answered with 200.
    pub async fn answered_call(
        &mut self,
        opts: InviteOptions,
        timeout: Duration,
    ) -> (Call, SdpAnswer) {
        let number = opts.user.clone();
        self.place_call(opts, timeout)
            .await
            .unwrap_or_else(|status| panic!("call to {number} refused with {status}"))
    }

    /// Drops everything received but not consumed yet (the log keeps it).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Every message received so far, in arrival order, retransmissions
    /// included.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Arrival times of every copy of a response with `status` to `method`
    /// (e.g. the 200 OK retransmissions of an INVITE).
    pub fn response_arrivals(&self, status: u16, method: &str) -> Vec<Instant> {
        self.received()
            .iter()
            .filter_map(|r| {
                let m = r.msg.as_ref()?;
                let (_, cseq_method) = m.cseq()?;
                (m.status() == Some(status) && cseq_method == method).then_some(r.at)
            })
            .collect()
    }
}

/// Updates the call from a response to its current INVITE.
fn learn_dialog(call: &mut Call, msg: &Msg) {
    let Some(code) = msg.status() else { return };
    if code > 100 {
        if let Some(tag) = msg.header_param("To", "tag") {
            if call.to_tag.is_none() || (200..300).contains(&code) {
                call.to_tag = Some(tag);
            }
        }
    }
    if (200..300).contains(&code) {
        if let Some(contact) = msg.header("Contact") {
            call.remote_target = uri_of(contact).to_string();
        }
        // The route set is fixed by the 2xx that establishes the dialog
        // (RFC 3261 §12.1.2); a re-INVITE's 2xx only updates the target.
        if !call.established {
            let mut routes: Vec<String> = msg
                .header_all("Record-Route")
                .into_iter()
                .map(str::to_string)
                .collect();
            routes.reverse();
            call.route_set = routes;
            call.established = true;
        }
    }
    if code >= 200 {
        call.final_response = Some(msg.clone());
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
fn ack_non_2xx(call: &Call, resp: &Msg) -> Vec<u8> {
    let inv = &call.invite_request;
    let mut builder = MsgBuilder::request("ACK", inv.uri().unwrap_or(&call.request_uri))
        .header("Via", call.invite.via.clone())
        .header("Max-Forwards", "70");
    for route in inv.header_all("Route") {
        builder = builder.header("Route", route);
    }
    builder
        .header("From", call.from.clone())
        .header("To", resp.header("To").unwrap_or(&call.to))
        .header("Call-ID", call.call_id.clone())
        .header("CSeq", format!("{} ACK", call.invite.cseq))
        .build()
}

fn into_msg(item: Received) -> UaResult<Msg> {
    item.msg
        .ok_or_else(|| UaError::Protocol("matched an unparsed message".into()))
}

/// Parses a message we built ourselves (cannot fail unless the test gave
/// broken extra headers).
fn parse_own(bytes: &[u8]) -> UaResult<Msg> {
    Msg::parse(bytes).map_err(|e| UaError::Protocol(format!("own request does not parse: {e}")))
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// 16 hex digits, random per process (std's hasher keys) and unique per
/// call (counter), for tags and Call-IDs; no RNG crate needed.
pub fn random_token() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(ID_COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// A new RFC 3261 branch (magic cookie prefix).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token())
}

fn stamp(mut msg: Option<Msg>, at: Instant, from: SocketAddr) -> Option<Msg> {
    if let Some(m) = msg.as_mut() {
        m.source = Some(from);
        m.received_at = Some(at);
    }
    msg
}

fn deliver(
    item: Received,
    tx: &mpsc::UnboundedSender<Received>,
    log: &Mutex<Vec<Received>>,
) -> bool {
    if std::env::var_os("PINBRIDGE_UA_TRACE").is_some() {
        eprintln!(
            "[testua <- {}]\n{}",
            item.from,
            String::from_utf8_lossy(&item.raw)
        );
    }
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(item.clone());
    tx.send(item).is_ok()
}

/// Reads datagrams; each is one message (or garbage, kept unparsed).
async fn udp_reader(
    socket: Arc<UdpSocket>,
    tx: mpsc::UnboundedSender<Received>,
    log: Arc<Mutex<Vec<Received>>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // e.g. ICMP port unreachable reported on the socket: not fatal.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let at = Instant::now();
        let raw = buf[..len].to_vec();
        let msg = stamp(Msg::parse(&raw).ok(), at, from);
        if !deliver(Received { at, from, raw, msg }, &tx, &log) {
            return;
        }
    }
}

/// Reads the stream and cuts it into messages by Content-Length. Bytes that
/// cannot be framed are delivered unparsed and dropped from the buffer.
/// Returning drops `tx`, so waiting callers see `UaError::Closed`.
async fn tcp_reader(
    mut read: OwnedReadHalf,
    from: SocketAddr,
    tx: mpsc::UnboundedSender<Received>,
    log: Arc<Mutex<Vec<Received>>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let at = Instant::now();
        loop {
            match Msg::parse_stream(&buf) {
                Ok(None) => break,
                Ok(Some((msg, used))) => {
                    let raw: Vec<u8> = buf.drain(..used).collect();
                    let msg = stamp(Some(msg), at, from);
                    if !deliver(Received { at, from, raw, msg }, &tx, &log) {
                        return;
                    }
                }
                Err(_) => {
                    let raw = std::mem::take(&mut buf);
                    if !deliver(
                        Received {
                            at,
                            from,
                            raw,
                            msg: None,
                        },
                        &tx,
                        &log,
                    ) {
                        return;
                    }
                }
            }
        }
    }
}
