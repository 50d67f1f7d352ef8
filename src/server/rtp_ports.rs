//! Hands out RTP sockets from the configured port range. The free ports
//! are a queue: taking one is a pop, not a scan of the range (a scan made
//! every new INVITE cost O(range) once most ports were taken, which is
//! exactly when a flood arrives). A port comes back when its [`RtpPort`]
//! lease is dropped with the call's media, and goes to the back of the
//! queue, so a port is not reused while stray packets of its last call
//! may still arrive.
//!
//! Binding the socket is still what reserves the port against other
//! programs: a port another program holds fails to bind, goes to the back
//! of the queue to be tried again later, and the next one is tried (a
//! bounded number of times). The queue starts in random order. Per call,
//! never per packet, so a short lock is fine.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::seq::SliceRandom;
use socket2::{Domain, Protocol, Socket, Type};

/// Ports held by other programs tried for one call before giving up.
const MAX_BIND_TRIES: usize = 64;

#[derive(Debug, Default)]
struct FreePorts {
    queue: Mutex<VecDeque<u16>>,
}

impl FreePorts {
    fn lock(&self) -> MutexGuard<'_, VecDeque<u16>> {
        // The queue is consistent after every operation: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct RtpPortAllocator {
    capacity: usize,
    free: Arc<FreePorts>,
}

/// A port taken from the allocator; dropping it gives the port back. Keep
/// it beside the socket bound to it, declared after the socket so that
/// the socket is closed first.
#[derive(Debug)]
pub struct RtpPort {
    port: u16,
    free: Arc<FreePorts>,
}

impl RtpPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        self.free.lock().push_back(self.port);
    }
}

impl RtpPortAllocator {
    /// The even ports of `lo..=hi`.
    pub fn new(lo: u16, hi: u16) -> Self {
        let first = u32::from(lo) + u32::from(lo) % 2;
        let mut ports: Vec<u16> = (first..=u32::from(hi))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        // In random order: two processes sharing a range (or several
        // servers in one test process) rarely want the same port, and our
        // ports are not predictable.
        ports.shuffle(&mut rand::rng());
        let queue = VecDeque::from(ports);
        RtpPortAllocator {
            capacity: queue.len(),
            free: Arc::new(FreePorts {
                queue: Mutex::new(queue),
            }),
        }
    }

    /// Number of ports in the range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ports not taken by a call right now.
    pub fn available(&self) -> usize {
        self.free.lock().len()
    }

    /// Binds a non-blocking UDP socket on a free even port.
    pub fn bind(&self, ip: IpAddr) -> io::Result<(std::net::UdpSocket, RtpPort)> {
        for _ in 0..MAX_BIND_TRIES {
            let Some(port) = self.free.lock().pop_front() else {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "every RTP port in the range is in use",
                ));
            };
            // From here the lease gives the port back whatever happens.
            let lease = RtpPort {
                port,
                free: self.free.clone(),
            };
            match bind_udp(SocketAddr::new(ip, port)) {
                Ok(s) => return Ok((s, lease)),
                // Another program holds it: back of the queue, next one.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "the next free RTP ports are held by other programs",
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

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn binds_even_ports_and_gives_them_back_on_drop() {
        let a = RtpPortAllocator::new(41001, 41010);
        assert_eq!(a.capacity(), 5);
        let mut held: Vec<_> = (0..5).map(|_| a.bind(ip()).unwrap()).collect();
        for (s, lease) in &held {
            let p = s.local_addr().unwrap().port();
            assert!(p % 2 == 0 && (41002..=41010).contains(&p), "{p}");
            assert_eq!(p, lease.port());
        }
        let err = a.bind(ip()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(a.available(), 0);
        // Hang up the third call: its port and only its port comes back.
        let (_, lease) = held.remove(2);
        let freed = lease.port();
        drop(lease);
        assert_eq!(a.available(), 1);
        let (s, _lease) = a.bind(ip()).unwrap();
        assert_eq!(s.local_addr().unwrap().port(), freed);
    }

    #[test]
    fn a_released_port_waits_behind_the_other_free_ones() {
        let a = RtpPortAllocator::new(41020, 41026);
        let (s1, l1) = a.bind(ip()).unwrap();
        let first = l1.port();
        drop((s1, l1));
        let next: Vec<u16> = (0..3).map(|_| a.bind(ip()).unwrap().1.port()).collect();
        // Each lease above was dropped at once, so the queue keeps cycling;
        // the first port comes round only after the other three.
        assert!(!next.contains(&first), "{first} reused at once: {next:?}");
    }

    #[test]
    fn a_port_another_program_holds_is_skipped_and_retried_later() {
        let a = RtpPortAllocator::new(41030, 41034);
        // Another program has the first port of the range.
        let other = std::net::UdpSocket::bind("127.0.0.1:41030").unwrap();
        let (s1, l1) = a.bind(ip()).unwrap();
        let (s2, l2) = a.bind(ip()).unwrap();
        let mut got = [l1.port(), l2.port()];
        got.sort_unstable();
        assert_eq!(got, [41032, 41034]);
        // Both held by us, the third is the other program's: refused, not
        // lost.
        assert!(a.bind(ip()).is_err());
        assert_eq!(a.available(), 1);
        drop(other);
        let (s3, l3) = a.bind(ip()).unwrap();
        assert_eq!(l3.port(), 41030);
        drop((s1, s2, s3, l1, l2, l3));
        assert_eq!(a.available(), 3);
    }

    #[test]
    fn taking_a_port_costs_one_bind_however_full_the_range_is() {
        // 1,000 ports, all but one taken, the free one in the middle: the
        // next call gets it at once (a scan would try thousands first).
        let a = RtpPortAllocator::new(52000, 53998);
        let mut held: Vec<_> = (0..a.capacity())
            .filter_map(|_| a.bind(ip()).ok())
            .collect();
        let taken = held.len();
        assert!(taken + 8 >= a.capacity(), "{taken} of {}", a.capacity());
        let (_, middle) = held.remove(taken / 2);
        let port = middle.port();
        drop(middle);
        let queue_before = a.available();
        let (s, lease) = a.bind(ip()).unwrap();
        assert_eq!(lease.port(), port);
        assert_eq!(s.local_addr().unwrap().port(), port);
        assert_eq!(a.available(), queue_before - 1);
    }
}
