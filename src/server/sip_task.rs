//! The task that owns the SIP user agent core. It feeds the core what the
//! transports receive and what call tasks ask for, sends what the core
//! produces, sleeps until the core's next deadline, and starts a call task
//! for each new call. Through the trunk it also places calls, sends
//! MESSAGEs and keeps a registration for other tasks ([`super::trunk`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use tokio::sync::oneshot;

use super::call::{self, CallEnv};
use super::transport::{
    connect_and_send, ConnTimeouts, ConnectionIds, LocalAddressCache, NetInput,
};
use super::trunk::{
    local_ip, target_uri, MessageOutcome, OutboundCallEvent, OutboundCallHandle, PlaceError,
    SipRequest,
};
use crate::config::otp::{TrunkSettings, TrunkTransport};
use crate::sip::auth::Credentials;
use crate::sip::flow::{ConnectionId, Flow, Transmit, Transport};
use crate::sip::method::Method;
use crate::sip::ua::{
    CallHandle, EndReason, Event, OutboundCall, OutboundEvent, OutboundMessage, Registration,
    RequestId, UaError, UserAgent,
};

/// What a call task asks of the SIP layer.
#[derive(Debug)]
pub enum CallCommand {
    Ring {
        call: CallHandle,
    },
    Answer {
        call: CallHandle,
        sdp: Bytes,
    },
    Reject {
        call: CallHandle,
        status: u16,
        reason: &'static str,
    },
    Hangup {
        call: CallHandle,
    },
    Respond {
        call: CallHandle,
        request: RequestId,
        status: u16,
        reason: &'static str,
        sdp: Option<Bytes>,
    },
}

/// What the SIP layer tells a call task.
#[derive(Debug)]
pub enum CallEvent {
    Confirmed {
        ack_body: Option<Bytes>,
    },
    Reoffer {
        request: RequestId,
        method: Method,
        offer: Option<Bytes>,
    },
    ReofferAck {
        body: Option<Bytes>,
    },
    Info {
        request: RequestId,
        content_type: String,
        body: Bytes,
    },
    Ended {
        reason: EndReason,
    },
}

pub struct SipTask {
    pub ua: UserAgent,
    pub udp: Option<Arc<UdpSocket>>,
    pub listen: SocketAddr,
    pub public_address: Option<IpAddr>,
    pub net_tx: mpsc::Sender<NetInput>,
    pub net_rx: mpsc::Receiver<NetInput>,
    pub cmd_tx: mpsc::Sender<CallCommand>,
    pub cmd_rx: mpsc::Receiver<CallCommand>,
    pub conn_ids: Arc<ConnectionIds>,
    /// For the connections the SIP task opens (`[sip.tcp]`).
    pub tcp_timeouts: ConnTimeouts,
    pub env: Arc<CallEnv>,
    pub shutdown: watch::Receiver<bool>,
    /// How long shutdown waits for BYE transactions to finish.
    pub shutdown_grace: Duration,
    /// Requests from [`super::trunk::SipHandle`]s.
    pub(super) requests: mpsc::Receiver<SipRequest>,
    /// The trunk, and its address once resolved.
    pub trunk: Option<TrunkSettings>,
    pub trunk_address: watch::Receiver<Option<SocketAddr>>,
}

/// The sending side of an outbound call's events.
struct OutboundSink {
    tx: mpsc::Sender<OutboundCallEvent>,
    answered: bool,
}

struct State {
    tcp_writers: HashMap<ConnectionId, mpsc::Sender<Bytes>>,
    /// Connections we opened, by peer: later messages to that peer reuse
    /// them (the trunk over TCP).
    tcp_out: HashMap<SocketAddr, ConnectionId>,
    /// Messages waiting for a connection we are opening.
    tcp_pending: HashMap<ConnectionId, Vec<Bytes>>,
    calls: HashMap<CallHandle, mpsc::Sender<CallEvent>>,
    outbound: HashMap<CallHandle, OutboundSink>,
    messages: HashMap<RequestId, oneshot::Sender<Result<MessageOutcome, PlaceError>>>,
    registration: Option<RequestId>,
    trunk_address: Option<SocketAddr>,
    local_addrs: LocalAddressCache,
}

impl SipTask {
    pub async fn run(mut self) {
        let mut st = State {
            tcp_writers: HashMap::new(),
            tcp_out: HashMap::new(),
            tcp_pending: HashMap::new(),
            calls: HashMap::new(),
            outbound: HashMap::new(),
            messages: HashMap::new(),
            registration: None,
            trunk_address: *self.trunk_address.borrow_and_update(),
            local_addrs: LocalAddressCache::default(),
        };
        let mut stopping: Option<Instant> = None;
        let mut trunk_watch = self.trunk.is_some();
        self.start_registration(&mut st);
        self.flush(&mut st).await;
        loop {
            // While stopping, also wake for the end of the grace period.
            let deadline = match (self.ua.poll_timeout(), stopping) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Commands first: answering calls promptly matters more
                // than reading the next INVITE.
                biased;
                Some(cmd) = self.cmd_rx.recv() => {
                    self.apply(cmd, &mut st);
                    // Drain what else is queued without going round select.
                    while let Ok(cmd) = self.cmd_rx.try_recv() {
                        self.apply(cmd, &mut st);
                    }
                }
                Some(req) = self.requests.recv() => self.on_request(req, &mut st),
                Some(input) = self.net_rx.recv() => self.input(input, &mut st),
                _ = sleep => self.ua.handle_timeout(Instant::now()),
                changed = self.trunk_address.changed(), if trunk_watch && stopping.is_none() => {
                    match changed {
                        Ok(()) => {
                            st.trunk_address = *self.trunk_address.borrow_and_update();
                            self.start_registration(&mut st);
                        }
                        Err(_) => trunk_watch = false,
                    }
                }
                changed = self.shutdown.changed(), if stopping.is_none() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        tracing::info!(calls = self.ua.call_count(), "shutting down: hanging up every call");
                        self.ua.shutdown(Instant::now());
                        // Call tasks stop when their event channel closes.
                        st.calls.clear();
                        st.outbound.clear();
                        stopping = Some(Instant::now() + self.shutdown_grace);
                    }
                }
            }
            self.flush(&mut st).await;
            if let Some(until) = stopping {
                if self.ua.is_idle() || Instant::now() >= until {
                    self.flush(&mut st).await;
                    tracing::info!("SIP stopped");
                    return;
                }
            }
        }
    }

    fn apply(&mut self, cmd: CallCommand, st: &mut State) {
        let now = Instant::now();
        let result = match cmd {
            CallCommand::Ring { call } => self.ua.ring(call),
            CallCommand::Answer { call, sdp } => self.ua.answer(now, call, sdp),
            CallCommand::Reject {
                call,
                status,
                reason,
            } => {
                st.calls.remove(&call);
                self.ua.reject(now, call, status, reason)
            }
            CallCommand::Hangup { call } => {
                st.calls.remove(&call);
                // An unanswered outbound call still reports its end (487).
                if st.outbound.get(&call).is_some_and(|o| o.answered) {
                    st.outbound.remove(&call);
                }
                self.ua.hangup(now, call);
                Ok(())
            }
            CallCommand::Respond {
                call,
                request,
                status,
                reason,
                sdp,
            } => self.ua.respond(now, call, request, status, reason, sdp),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "call command had no effect");
        }
    }

    fn local_for(&self, st: &mut State, remote: IpAddr, bound: SocketAddr) -> SocketAddr {
        let ip = local_ip(self.public_address, bound, remote, &mut st.local_addrs);
        SocketAddr::new(ip, bound.port())
    }

    // ------------------------------------------------------------------
    // The trunk

    /// The flow to the trunk: its address as an outbound proxy.
    fn trunk_flow(&self, st: &mut State) -> Result<Flow, PlaceError> {
        let trunk = self.trunk.as_ref().ok_or(PlaceError::NoTrunk)?;
        let remote = st.trunk_address.ok_or(PlaceError::TrunkUnresolved)?;
        let transport = match trunk.transport {
            TrunkTransport::Udp if self.udp.is_none() => return Err(PlaceError::NoTransport),
            TrunkTransport::Udp => Transport::Udp,
            TrunkTransport::Tcp => Transport::Tcp,
        };
        let local = self.local_for(st, remote.ip(), self.listen);
        Ok(Flow {
            transport,
            remote,
            local,
            connection: None,
        })
    }

    fn on_request(&mut self, req: SipRequest, st: &mut State) {
        match req {
            SipRequest::PlaceCall { target, sdp, reply } => {
                let result = self.place_call(&target, sdp, st);
                if let Err(e) = &result {
                    tracing::info!(target = %target, error = %e, "outbound call not placed");
                }
                let _ = reply.send(result);
            }
            SipRequest::SendMessage {
                to,
                content_type,
                body,
                reply,
            } => match self.send_message(&to, content_type, body, st) {
                Ok(id) => {
                    st.messages.insert(id, reply);
                }
                Err(e) => {
                    tracing::info!(to = %to, error = %e, "MESSAGE not sent");
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    fn place_call(
        &mut self,
        target: &str,
        sdp: Bytes,
        st: &mut State,
    ) -> Result<OutboundCallHandle, PlaceError> {
        let flow = self.trunk_flow(st)?;
        let trunk = self.trunk.as_ref().ok_or(PlaceError::NoTrunk)?;
        let request_uri = target_uri(target, &trunk.domain)?;
        let out = OutboundCall {
            request_uri: request_uri.clone(),
            from: format!("sip:{}@{}", trunk.from_user, trunk.domain),
            to: request_uri.clone(),
            flow,
            sdp,
            credentials: trunk_credentials(trunk),
            extra_headers: Vec::new(),
        };
        let call = self.ua.call(Instant::now(), out).map_err(place_error)?;
        let (tx, rx) = mpsc::channel(16);
        st.outbound.insert(
            call,
            OutboundSink {
                tx,
                answered: false,
            },
        );
        tracing::info!(to = %request_uri, trunk = %flow.remote, "placing outbound call");
        Ok(OutboundCallHandle {
            call,
            request_uri,
            events: rx,
            commands: self.cmd_tx.clone(),
        })
    }

    fn send_message(
        &mut self,
        to: &str,
        content_type: String,
        body: Bytes,
        st: &mut State,
    ) -> Result<RequestId, PlaceError> {
        let flow = self.trunk_flow(st)?;
        let trunk = self.trunk.as_ref().ok_or(PlaceError::NoTrunk)?;
        let request_uri = target_uri(to, &trunk.domain)?;
        let m = OutboundMessage {
            request_uri: request_uri.clone(),
            from: format!("sip:{}@{}", trunk.from_user, trunk.domain),
            to: request_uri,
            flow,
            content_type,
            body,
            credentials: trunk_credentials(trunk),
        };
        self.ua.message(Instant::now(), m).map_err(place_error)
    }

    /// REGISTERs with the trunk when the configuration asks for it and its
    /// address is known (at start-up, or once resolved).
    fn start_registration(&mut self, st: &mut State) {
        if st.registration.is_some() || !self.trunk.as_ref().is_some_and(|t| t.register) {
            return;
        }
        let flow = match self.trunk_flow(st) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register with the SIP trunk yet");
                return;
            }
        };
        let Some(trunk) = self.trunk.as_ref() else {
            return;
        };
        let reg = Registration {
            registrar_uri: format!("sip:{}", trunk.domain),
            aor_user: trunk
                .username
                .clone()
                .unwrap_or_else(|| trunk.from_user.clone()),
            domain: trunk.domain.clone(),
            flow,
            expires: trunk.register_expires,
            credentials: trunk_credentials(trunk),
        };
        match self.ua.register(Instant::now(), reg) {
            Ok(id) => st.registration = Some(id),
            Err(e) => tracing::warn!(error = %e, "cannot register with the SIP trunk"),
        }
    }

    fn input(&mut self, input: NetInput, st: &mut State) {
        crate::fault::check(crate::fault::Site::Sip);
        let now = Instant::now();
        match input {
            NetInput::Udp { from, data } => {
                let flow = Flow {
                    transport: Transport::Udp,
                    remote: from,
                    local: self.local_for(st, from.ip(), self.listen),
                    connection: None,
                };
                self.ua.handle_input(now, flow, &data);
            }
            NetInput::Tcp {
                conn,
                from,
                local,
                parsed,
            } => {
                let local = match self.public_address {
                    Some(ip) => SocketAddr::new(ip, local.port()),
                    None => local,
                };
                let flow = Flow {
                    transport: Transport::Tcp,
                    remote: from,
                    local,
                    connection: Some(conn),
                };
                self.ua.handle_parsed(now, flow, parsed);
            }
            NetInput::TcpOpened { conn, writer } => {
                for b in st.tcp_pending.remove(&conn).unwrap_or_default() {
                    if writer.try_send(b).is_err() {
                        tracing::debug!("TCP connection backlogged; message dropped");
                    }
                }
                st.tcp_writers.insert(conn, writer);
            }
            NetInput::TcpClosed { conn } => {
                st.tcp_writers.remove(&conn);
                st.tcp_pending.remove(&conn);
                st.tcp_out.retain(|_, c| *c != conn);
            }
        }
    }

    async fn flush(&mut self, st: &mut State) {
        while let Some(t) = self.ua.poll_transmit() {
            self.transmit(t, st).await;
        }
        while let Some(event) = self.ua.poll_event() {
            self.dispatch(event, st);
        }
        // Dispatching may have produced more to send (a call refused).
        while let Some(t) = self.ua.poll_transmit() {
            self.transmit(t, st).await;
        }
    }

    async fn transmit(&mut self, t: Transmit, st: &mut State) {
        match t.flow.transport {
            Transport::Udp => {
                if let Some(sock) = &self.udp {
                    if let Err(e) = sock.send_to(&t.payload, t.flow.remote).await {
                        tracing::debug!(peer = %t.flow.remote, error = %e, "SIP send failed");
                    }
                }
            }
            Transport::Tcp => {
                let ours = st.tcp_out.get(&t.flow.remote).copied();
                let writer = t
                    .flow
                    .connection
                    .and_then(|c| st.tcp_writers.get(&c))
                    .or_else(|| ours.and_then(|c| st.tcp_writers.get(&c)));
                if let Some(w) = writer {
                    if w.try_send(t.payload).is_err() {
                        tracing::debug!(peer = %t.flow.remote, "TCP connection backlogged; message dropped");
                    }
                    return;
                }
                // Being opened: queue behind the first message.
                if let Some(queue) = ours.and_then(|c| st.tcp_pending.get_mut(&c)) {
                    queue.push(t.payload);
                    return;
                }
                let conn = self.conn_ids.next();
                st.tcp_out.insert(t.flow.remote, conn);
                st.tcp_pending.insert(conn, Vec::new());
                tokio::spawn(connect_and_send(
                    t.flow.remote,
                    conn,
                    t.payload,
                    self.net_tx.clone(),
                    self.tcp_timeouts,
                ));
            }
        }
    }

    fn dispatch(&mut self, event: Event, st: &mut State) {
        let (call, ev) = match event {
            Event::Incoming { call, info } => {
                let (tx, rx) = mpsc::channel(16);
                st.calls.insert(call, tx);
                tracing::info!(
                    call_id = %info.call_id,
                    from = %info.from.uri_text,
                    dialed = info.dialed.as_deref().unwrap_or(""),
                    peer = %info.flow.remote,
                    "incoming call"
                );
                tokio::spawn(call::run(
                    self.env.clone(),
                    call,
                    info,
                    rx,
                    self.cmd_tx.clone(),
                ));
                return;
            }
            Event::Confirmed { call, ack_body } => (call, CallEvent::Confirmed { ack_body }),
            Event::Reoffer {
                call,
                request,
                method,
                offer,
            } => (
                call,
                CallEvent::Reoffer {
                    request,
                    method,
                    offer,
                },
            ),
            Event::ReofferAck { call, body } => (call, CallEvent::ReofferAck { body }),
            Event::Info {
                call,
                request,
                content_type,
                body,
            } => (
                call,
                CallEvent::Info {
                    request,
                    content_type,
                    body,
                },
            ),
            Event::Ended { call, reason } => {
                if let Some(tx) = st.calls.remove(&call) {
                    let _ = tx.try_send(CallEvent::Ended { reason });
                }
                if let Some(o) = st.outbound.remove(&call) {
                    let _ =
                        o.tx.try_send(OutboundCallEvent::InCall(CallEvent::Ended { reason }));
                }
                return;
            }
            Event::Outbound(o) => return self.dispatch_outbound(o, st),
            Event::MessageOutcome { id, status, reason } => {
                tracing::info!(status, %reason, "MESSAGE answered");
                if let Some(reply) = st.messages.remove(&id) {
                    let _ = reply.send(Ok(MessageOutcome { status, reason }));
                }
                return;
            }
            Event::Registered { expires, .. } => {
                tracing::info!(expires, "registered with the SIP trunk");
                return;
            }
            Event::RegistrationFailed { status, reason, .. } => {
                tracing::warn!(status, %reason, "registration with the SIP trunk failed; will retry");
                return;
            }
            Event::Unregistered { id } => {
                if st.registration == Some(id) {
                    st.registration = None;
                }
                tracing::info!("unregistered from the SIP trunk");
                return;
            }
        };
        let delivered = match (st.calls.get(&call), st.outbound.get(&call)) {
            (Some(tx), _) => tx.try_send(ev).is_ok(),
            (None, Some(o)) => o.tx.try_send(OutboundCallEvent::InCall(ev)).is_ok(),
            (None, None) => false,
        };
        if !delivered {
            // The call task is gone (or hopelessly behind): end the call.
            st.calls.remove(&call);
            st.outbound.remove(&call);
            self.ua.hangup(Instant::now(), call);
        }
    }

    fn dispatch_outbound(&mut self, event: OutboundEvent, st: &mut State) {
        let (call, ev) = match event {
            OutboundEvent::Ringing { call, status, sdp } => {
                (call, OutboundCallEvent::Ringing { status, sdp })
            }
            OutboundEvent::Answered { call, sdp } => {
                tracing::info!(?call, "outbound call answered");
                if let Some(o) = st.outbound.get_mut(&call) {
                    o.answered = true;
                }
                (call, OutboundCallEvent::Answered { sdp })
            }
            OutboundEvent::Failed {
                call,
                status,
                reason,
            } => {
                tracing::info!(?call, status, %reason, "outbound call failed");
                if let Some(o) = st.outbound.remove(&call) {
                    let _ = o.tx.try_send(OutboundCallEvent::Failed { status, reason });
                }
                return;
            }
        };
        let delivered = st
            .outbound
            .get(&call)
            .is_some_and(|o| o.tx.try_send(ev).is_ok());
        if !delivered {
            // Nobody waits for this call any more.
            st.outbound.remove(&call);
            self.ua.hangup(Instant::now(), call);
        }
    }
}

fn trunk_credentials(t: &TrunkSettings) -> Option<Credentials> {
    match (&t.username, &t.password) {
        (Some(username), Some(password)) => Some(Credentials {
            realm: t.realm.clone(),
            ..Credentials::new(username.clone(), password.clone())
        }),
        _ => None,
    }
}

fn place_error(e: UaError) -> PlaceError {
    match e {
        UaError::ShuttingDown => PlaceError::ShuttingDown,
        other => PlaceError::Refused(other.to_string()),
    }
}
