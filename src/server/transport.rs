//! SIP transports: one task reading the UDP socket, one accepting TCP
//! connections, and one per TCP connection that frames the stream. They all
//! feed [`NetInput`]s to the SIP task; nothing here interprets SIP beyond
//! framing.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::sip::flow::ConnectionId;
use crate::sip::message::{Framed, Parsed, StreamFramer, MAX_MESSAGE_SIZE};

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

pub async fn run_tcp_listener(
    listener: TcpListener,
    ids: Arc<ConnectionIds>,
    tx: mpsc::Sender<NetInput>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let conn = ids.next();
                tokio::spawn(run_tcp_connection(stream, conn, tx.clone(), None));
            }
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
) {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => return run_tcp_connection(stream, conn, tx, Some(payload)).await,
        Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "TCP connect failed"),
        Err(_) => tracing::debug!(peer = %remote, "TCP connect timed out"),
    }
    // Lets the SIP task drop what it queued for this connection.
    let _ = tx.send(NetInput::TcpClosed { conn }).await;
}

/// One TCP connection: frames incoming messages by Content-Length and
/// writes what the SIP task queues for it. Idle connections close after 5
/// minutes (keep-alive CRLFs count as activity).
pub async fn run_tcp_connection(
    stream: TcpStream,
    conn: ConnectionId,
    tx: mpsc::Sender<NetInput>,
    first: Option<Bytes>,
) {
    let (Ok(from), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Bytes>(64);
    if tx
        .send(NetInput::TcpOpened { conn, writer: wtx })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        if let Some(b) = first {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(300), rd.read(&mut buf)).await;
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        framer.push(&buf[..n]);
        let mut fatal = false;
        while let Some(f) = framer.next_message() {
            let parsed = match f {
                Framed::Message(p) => p,
                Framed::Fatal(e, partial) => {
                    tracing::debug!(peer = %from, error = %e, "closing TCP connection: stream cannot be framed");
                    fatal = true;
                    match partial {
                        Some(p) => p,
                        None => break,
                    }
                }
            };
            crate::fault::check(crate::fault::Site::TcpConnection);
            if tx
                .send(NetInput::Tcp {
                    conn,
                    from,
                    local,
                    parsed,
                })
                .await
                .is_err()
            {
                fatal = true;
                break;
            }
            if fatal {
                break;
            }
        }
        if fatal {
            // Give the SIP task a moment to answer before closing.
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
    }
    let _ = tx.send(NetInput::TcpClosed { conn }).await;
    writer.abort();
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
