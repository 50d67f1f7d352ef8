//! SIP transports: one task reading the UDP socket, one accepting TCP
//! connections, and one per TCP connection that frames the stream. They all
//! feed [`NetInput`]s to the SIP task; nothing here interprets SIP beyond
//! framing.
//!
//! TCP connections are bounded ([`TcpLimits`]): a cap per source address
//! and in total (a connection over either is closed at once), a deadline
//! for each message, and an idle timeout between messages. However a
//! connection task ends, its socket and its slot are released.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::net::{ConnectionCounts, Refused, SourceKey};
use crate::sip::flow::ConnectionId;
use crate::sip::message::{Framed, ParseError, Parsed, StreamFramer, MAX_MESSAGE_SIZE};

/// What the transports hand to the SIP task.
#[derive(Debug)]
pub enum NetInput {
    Udp {
        from: SocketAddr,
        data: Bytes,
    },
    Tcp {
        conn: ConnectionId,
        from: SocketAddr,
        local: SocketAddr,
        parsed: Parsed,
    },
    TcpOpened {
        conn: ConnectionId,
        writer: mpsc::Sender<Bytes>,
    },
    TcpClosed {
        conn: ConnectionId,
    },
}

/// Binds the UDP socket with a large receive buffer (bursts of INVITEs
/// under load must not be dropped by the kernel).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel may cap it.
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Reads datagrams until the socket fails or the SIP task is gone.
pub async fn run_udp(socket: Arc<UdpSocket>, tx: mpsc::Sender<NetInput>) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let input = NetInput::Udp {
                    from,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if tx.send(input).await.is_err() {
                    return;
                }
            }
            // ICMP errors surface as recv errors on some systems; keep going.
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                continue
            }
            Err(e) => {
                tracing::error!(error = %e, "SIP UDP socket failed");
                return;
            }
        }
    }
}

/// Numbers TCP connections.
#[derive(Debug, Default)]
pub struct ConnectionIds(std::sync::atomic::AtomicU64);

impl ConnectionIds {
    pub fn next(&self) -> ConnectionId {
        ConnectionId(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }
}

/// Limits on SIP over TCP as the transport applies them (from `[sip.tcp]`,
/// the total sized from the open-file limit when not configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub timeouts: ConnTimeouts,
}

/// How long a connection may take over a message, and stay quiet between
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// An accepted connection's first message must be complete this long
    /// after the accept, and any later message this long after its first
    /// byte.
    pub message: Duration,
    /// With no partial message buffered, the connection closes after this
    /// long without a byte (keep-alive CRLFs count).
    pub idle: Duration,
}

/// A connection's place in the [`ConnectionCounts`], given back on drop
/// (however the connection task ends).
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<Mutex<ConnectionCounts>>,
    source: SourceKey,
}

impl ConnectionSlot {
    pub fn acquire(table: &Arc<Mutex<ConnectionCounts>>, ip: IpAddr) -> Result<Self, Refused> {
        let source = SourceKey::of(ip);
        lock(table).open(source, false)?;
        Ok(ConnectionSlot {
            table: table.clone(),
            source,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        lock(&self.table).close(self.source);
    }
}

/// The table even if a thread panicked holding it: the counts are updated
/// in single steps, so they are consistent.
fn lock(table: &Mutex<ConnectionCounts>) -> std::sync::MutexGuard<'_, ConnectionCounts> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Says, at most once a minute, that connections are being refused and how
/// many were since the last time.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<Instant>,
    unreported: u64,
}

impl RefusalLog {
    fn refused(&mut self, now: Instant, peer: SocketAddr, why: Refused, table: &ConnectionCounts) {
        self.unreported += 1;
        tracing::debug!(%peer, reason = %why, "TCP connection refused");
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        tracing::warn!(
            %peer,
            reason = %why,
            refused = self.unreported,
            open = table.total(),
            from_peer = table.from(SourceKey::of(peer.ip())),
            "TCP connections refused over the [sip.tcp] limits"
        );
        self.last = Some(now);
        self.unreported = 0;
    }
}

pub async fn run_tcp_listener(
    listener: TcpListener,
    ids: Arc<ConnectionIds>,
    tx: mpsc::Sender<NetInput>,
    limits: TcpLimits,
) {
    let table = Arc::new(Mutex::new(ConnectionCounts::new(
        limits.max_connections,
        limits.max_per_source,
    )));
    let mut refusals = RefusalLog::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match ConnectionSlot::acquire(&table, peer.ip()) {
                Ok(slot) => {
                    let conn = ids.next();
                    tokio::spawn(run_tcp_connection(
                        stream,
                        conn,
                        tx.clone(),
                        Opened::Accepted(slot),
                        limits.timeouts,
                    ));
                }
                // Closed at once: over a cap the newcomer goes, never an
                // established connection (which may carry calls).
                Err(why) => {
                    drop(stream);
                    refusals.refused(Instant::now(), peer, why, &lock(&table));
                }
            },
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// Opens a connection for a message whose connection has closed (e.g. our
/// BYE after the caller dropped its TCP connection) and sends it.
pub async fn connect_and_send(
    remote: SocketAddr,
    conn: ConnectionId,
    payload: Bytes,
    tx: mpsc::Sender<NetInput>,
    timeouts: ConnTimeouts,
) {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            let opened = Opened::Connected { first: payload };
            return run_tcp_connection(stream, conn, tx, opened, timeouts).await;
        }
        Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "TCP connect failed"),
        Err(_) => tracing::debug!(peer = %remote, "TCP connect timed out"),
    }
    // Lets the SIP task drop what it queued for this connection.
    let _ = tx.send(NetInput::TcpClosed { conn }).await;
}

/// How a connection came to be.
#[derive(Debug)]
pub enum Opened {
    /// Accepted from a peer: counted against the caps, and its first
    /// message is due within the message timeout.
    Accepted(ConnectionSlot),
    /// Opened by us to send `first`; the peer may stay quiet until the idle
    /// timeout.
    Connected { first: Bytes },
}

/// Why a connection task ended (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    Eof,
    ReadError(io::ErrorKind),
    /// A message (or the first one) was not complete in time.
    MessageTimeout,
    IdleTimeout,
    Unframeable(ParseError),
    SipTaskGone,
}

/// How long a closing connection waits for the writer to send what the SIP
/// task queued (the 413 for an oversized request) before it is cut.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Owns what keeps a connection's socket open besides the reading task:
/// the writer task (holding the write half), and the SIP task's sender to
/// it, which goes when the SIP task hears `TcpClosed`. Dropped however
/// the connection task ends, a panic included: it aborts the writer and
/// makes sure `TcpClosed` is sent, so the socket is released.
struct ConnectionGuard {
    conn: ConnectionId,
    tx: mpsc::Sender<NetInput>,
    writer: JoinHandle<()>,
    closed_sent: bool,
    _slot: Option<ConnectionSlot>,
}

impl ConnectionGuard {
    /// Tells the SIP task the connection is closed and lets the writer send
    /// what was queued before that, for at most `DRAIN_GRACE`.
    async fn close_gracefully(&mut self) {
        let conn = self.conn;
        let tx = self.tx.clone();
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            if tx.send(NetInput::TcpClosed { conn }).await.is_ok() {
                self.closed_sent = true;
            }
            // The SIP task drops its sender on TcpClosed; the writer ends
            // once the channel is empty.
            let _ = (&mut self.writer).await;
        })
        .await;
        if drained.is_err() {
            tracing::debug!(?conn, "TCP writer did not drain in time; closing anyway");
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.writer.abort();
        if self.closed_sent {
            return;
        }
        let closed = NetInput::TcpClosed { conn: self.conn };
        if let Err(mpsc::error::TrySendError::Full(closed)) = self.tx.try_send(closed) {
            // Drop cannot wait; a task can.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let tx = self.tx.clone();
                rt.spawn(async move {
                    let _ = tx.send(closed).await;
                });
            }
        }
    }
}

/// Writes what the SIP task queues for the connection, `first` first.
fn spawn_writer(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    first: Option<Bytes>,
    mut queue: mpsc::Receiver<Bytes>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(b) = first {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        while let Some(b) = queue.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
    })
}

/// One TCP connection: frames incoming messages by Content-Length and
/// writes what the SIP task queues for it. A message must be complete
/// within the message timeout (for an accepted connection, its first one
/// within that long of the accept); between messages the connection
/// closes after the idle timeout (keep-alive CRLFs count as activity).
pub async fn run_tcp_connection(
    stream: TcpStream,
    conn: ConnectionId,
    tx: mpsc::Sender<NetInput>,
    opened: Opened,
    timeouts: ConnTimeouts,
) {
    let (Ok(from), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (wtx, wrx) = mpsc::channel::<Bytes>(64);
    if tx
        .send(NetInput::TcpOpened { conn, writer: wtx })
        .await
        .is_err()
    {
        return;
    }
    let (slot, first) = match opened {
        Opened::Accepted(slot) => (Some(slot), None),
        Opened::Connected { first } => (None, Some(first)),
    };
    let mut awaiting_first = slot.is_some();
    let mut guard = ConnectionGuard {
        conn,
        tx: tx.clone(),
        writer: spawn_writer(wr, first, wrx),
        closed_sent: false,
        _slot: slot,
    };

    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let opened_at = Instant::now();
    let mut message_began = opened_at;
    let mut last_read = opened_at;
    let ended = 'read: loop {
        let mid_message = awaiting_first || framer.is_mid_message();
        let deadline = if awaiting_first {
            opened_at + timeouts.message
        } else if mid_message {
            message_began + timeouts.message
        } else {
            last_read + timeouts.idle
        };
        let read = tokio::time::timeout_at(deadline.into(), rd.read(&mut buf)).await;
        let n = match read {
            Err(_) if mid_message => break Ended::MessageTimeout,
            Err(_) => break Ended::IdleTimeout,
            Ok(Ok(0)) => break Ended::Eof,
            Ok(Err(e)) => break Ended::ReadError(e.kind()),
            Ok(Ok(n)) => n,
        };
        let now = Instant::now();
        last_read = now;
        let was_mid = framer.is_mid_message();
        framer.push(&buf[..n]);
        let mut completed = false;
        while let Some(framed) = framer.next_message() {
            let (parsed, fatal) = match framed {
                Framed::Message(p) => (Some(p), None),
                // A request that can be answered (413, 400) goes to the SIP
                // task before the connection closes.
                Framed::Fatal(e, request) => (request, Some(e)),
            };
            if let Some(parsed) = parsed {
                crate::fault::check(crate::fault::Site::TcpConnection);
                completed = true;
                let input = NetInput::Tcp {
                    conn,
                    from,
                    local,
                    parsed,
                };
                if tx.send(input).await.is_err() {
                    break 'read Ended::SipTaskGone;
                }
            }
            if let Some(e) = fatal {
                break 'read Ended::Unframeable(e);
            }
        }
        if completed {
            awaiting_first = false;
        }
        if framer.is_mid_message() && (completed || !was_mid) {
            message_began = now;
        }
    };
    tracing::debug!(peer = %from, ?conn, reason = ?ended, "closing TCP connection");
    guard.close_gracefully().await;
}

/// The local address the kernel would use to reach `remote`: what we put in
/// Via, Contact and SDP when listening on a wildcard address. Found with a
/// connected UDP socket (no packet is sent) and cached per remote address.
#[derive(Debug, Default)]
pub struct LocalAddressCache {
    cache: HashMap<IpAddr, IpAddr>,
}

impl LocalAddressCache {
    pub fn resolve(&mut self, remote: IpAddr) -> Option<IpAddr> {
        if let Some(ip) = self.cache.get(&remote) {
            return Some(*ip);
        }
        let bind: SocketAddr = if remote.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .ok()?;
        let probe = std::net::UdpSocket::bind(bind).ok()?;
        probe.connect(SocketAddr::new(remote, 9)).ok()?;
        let local = probe.local_addr().ok()?.ip();
        if self.cache.len() > 10_000 {
            self.cache.clear();
        }
        self.cache.insert(remote, local);
        Some(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let table = Arc::new(Mutex::new(ConnectionCounts::new(1, 1)));
        let slot = ConnectionSlot::acquire(&table, ip("192.0.2.1")).unwrap();
        assert!(ConnectionSlot::acquire(&table, ip("192.0.2.2")).is_err());
        drop(slot);
        assert!(ConnectionSlot::acquire(&table, ip("192.0.2.2")).is_ok());
    }

    /// A loopback connection: (the server side, the client side).
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// Issue 9: a connection task that panicked left its writer task (and
    /// with it the socket) alive for good, because the SIP task kept the
    /// writer's channel and never heard TcpClosed.
    #[tokio::test]
    async fn a_panicking_connection_task_still_releases_socket_and_slot() {
        let (server, mut client) = tcp_pair().await;
        let table = Arc::new(Mutex::new(ConnectionCounts::new(10, 10)));
        let slot = ConnectionSlot::acquire(&table, ip("127.0.0.1")).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let (wtx, wrx) = mpsc::channel::<Bytes>(8);
        let task = tokio::spawn(async move {
            let (_rd, wr) = server.into_split();
            let _guard = ConnectionGuard {
                conn: ConnectionId(7),
                tx,
                writer: spawn_writer(wr, None, wrx),
                closed_sent: false,
                _slot: Some(slot),
            };
            panic!("injected: the connection task fails mid-stream");
        });
        assert!(task.await.unwrap_err().is_panic());
        // `wtx` stands for the SIP task's sender, still held: only the guard
        // can end the writer.
        let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("TcpClosed within 10 s");
        assert!(matches!(
            closed,
            Some(NetInput::TcpClosed {
                conn: ConnectionId(7)
            })
        ));
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut byte))
            .await
            .expect("the server side closes within 10 s");
        assert!(matches!(read, Ok(0) | Err(_)), "EOF, got {read:?}");
        assert_eq!(lock(&table).total(), 0, "the slot is free again");
        drop(wtx);
    }
}
