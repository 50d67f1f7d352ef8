//! Hands out RTP sockets from the configured port range. Binding the socket
//! is the reservation: a port in use by anything (another call, another
//! program) fails to bind and is skipped, and dropping the socket at
//! hang-up releases it. A shared atomic cursor spreads calls over the range
//! without a lock.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

#[derive(Debug)]
pub struct RtpPortAllocator {
    /// First even port and number of even ports in the range.
    first: u16,
    count: u32,
    cursor: AtomicU32,
}

impl RtpPortAllocator {
    pub fn new(lo: u16, hi: u16) -> Self {
        let first = lo + lo % 2;
        let count = if hi >= first {
            u32::from((hi - first) / 2 + 1)
        } else {
            0
        };
        RtpPortAllocator {
            first,
            count,
            cursor: AtomicU32::new(0),
        }
    }

    /// Binds a non-blocking UDP socket on the next free even port.
    pub fn bind(&self, ip: IpAddr) -> io::Result<std::net::UdpSocket> {
        if self.count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "empty RTP port range",
            ));
        }
        for _ in 0..self.count {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.count;
            let port = self.first + (i * 2) as u16;
            match bind_udp(SocketAddr::new(ip, port)) {
                Ok(s) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every RTP port in the range is in use",
        ))
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_even_ports_and_skips_busy_ones() {
        let a = RtpPortAllocator::new(41001, 41010);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let s1 = a.bind(ip).unwrap();
        let s2 = a.bind(ip).unwrap();
        let (p1, p2) = (
            s1.local_addr().unwrap().port(),
            s2.local_addr().unwrap().port(),
        );
        assert!(p1 % 2 == 0 && p2 % 2 == 0 && p1 != p2, "{p1} {p2}");
        assert!((41002..=41010).contains(&p1));
        // Exhaust the five even ports: the sixth bind fails cleanly.
        let rest: Vec<_> = (0..3).map(|_| a.bind(ip).unwrap()).collect();
        assert!(a.bind(ip).is_err());
        drop(rest);
        assert!(a.bind(ip).is_ok(), "released ports are reused");
    }
}
