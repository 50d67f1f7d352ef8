//! Where SIP messages come from and go to. Plain values: the core names a
//! flow, the server shell owns the sockets behind it.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The token used in Via and in `transport=` URI parameters.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Reliable transports need no retransmission of requests and
    /// non-2xx responses (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// One TCP connection, numbered by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// A path between us and a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    /// The peer's address: source of what we received, destination of what
    /// we send.
    pub remote: SocketAddr,
    /// Our address as the peer should see it (used in Via and Contact). The
    /// shell resolves a wildcard listening address to a concrete one.
    pub local: SocketAddr,
    /// For TCP: the connection the message arrived on, if still relevant.
    pub connection: Option<ConnectionId>,
}

/// Bytes for the shell to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub flow: Flow,
    pub payload: Bytes,
}
