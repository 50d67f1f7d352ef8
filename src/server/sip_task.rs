//! The task that owns the SIP user agent core. It feeds the core what the
//! transports receive and what call tasks ask for, sends what the core
//! produces, sleeps until the core's next deadline, and starts a call task
//! for each new call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::call::{self, CallEnv};
use super::transport::{connect_and_send, ConnectionIds, LocalAddressCache, NetInput};
use crate::sip::flow::{ConnectionId, Flow, Transmit, Transport};
use crate::sip::method::Method;
use crate::sip::ua::{CallHandle, EndReason, Event, RequestId, UserAgent};

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
    pub env: Arc<CallEnv>,
    pub shutdown: watch::Receiver<bool>,
    /// How long shutdown waits for BYE transactions to finish.
    pub shutdown_grace: Duration,
}

struct State {
    tcp_writers: HashMap<ConnectionId, mpsc::Sender<Bytes>>,
    calls: HashMap<CallHandle, mpsc::Sender<CallEvent>>,
    local_addrs: LocalAddressCache,
}

impl SipTask {
    pub async fn run(mut self) {
        let mut st = State {
            tcp_writers: HashMap::new(),
            calls: HashMap::new(),
            local_addrs: LocalAddressCache::default(),
        };
        let mut stopping: Option<Instant> = None;
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
                Some(input) = self.net_rx.recv() => self.input(input, &mut st),
                _ = sleep => self.ua.handle_timeout(Instant::now()),
                changed = self.shutdown.changed(), if stopping.is_none() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        tracing::info!(calls = self.ua.call_count(), "shutting down: hanging up every call");
                        self.ua.shutdown(Instant::now());
                        // Call tasks stop when their event channel closes.
                        st.calls.clear();
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
        let ip = match self.public_address {
            Some(ip) => ip,
            None if !bound.ip().is_unspecified() => bound.ip(),
            None => st.local_addrs.resolve(remote).unwrap_or(bound.ip()),
        };
        SocketAddr::new(ip, bound.port())
    }

    fn input(&mut self, input: NetInput, st: &mut State) {
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
                st.tcp_writers.insert(conn, writer);
            }
            NetInput::TcpClosed { conn } => {
                st.tcp_writers.remove(&conn);
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
                let writer = t.flow.connection.and_then(|c| st.tcp_writers.get(&c));
                match writer {
                    Some(w) => {
                        if w.try_send(t.payload).is_err() {
                            tracing::debug!(peer = %t.flow.remote, "TCP connection backlogged; message dropped");
                        }
                    }
                    None => {
                        let conn = self.conn_ids.next();
                        tokio::spawn(connect_and_send(
                            t.flow.remote,
                            conn,
                            t.payload,
                            self.net_tx.clone(),
                        ));
                    }
                }
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
                return;
            }
        };
        let delivered = st
            .calls
            .get(&call)
            .is_some_and(|tx| tx.try_send(ev).is_ok());
        if !delivered {
            // The call task is gone (or hopelessly behind): end the call.
            st.calls.remove(&call);
            self.ua.hangup(Instant::now(), call);
        }
    }
}
