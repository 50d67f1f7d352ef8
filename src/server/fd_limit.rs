//! File descriptors: the soft open-file limit is raised to the hard limit
//! at start-up, and the SIP over TCP connection cap is sized from what is
//! left once every call has its RTP socket.
//!
//! The common default soft limit is 1,024 while the hard limit is far
//! higher (systemd: 524,288; Docker: 1,048,576); a server that keeps the
//! soft one runs out at a few hundred calls plus connections, and then
//! refuses TCP and answers calls with 503 for want of an RTP socket.

use std::io;

use super::transport::{ConnTimeouts, TcpLimits};
use crate::config::{Config, TcpSettings};

/// Descriptors kept for everything that is neither a SIP connection, an
/// RTP socket nor an HTTP client connection: the listening sockets, the
/// database, logs, outbound connections and the runtime's own.
pub const RESERVED_FDS: u64 = 128;

/// The largest total connection cap chosen automatically: past this many,
/// buffers (16 KiB a connection while reading) matter more than
/// descriptors. Set `[sip.tcp] max_connections` to go higher.
pub const MAX_AUTO_CONNECTIONS: usize = 4096;

/// The smallest automatic cap, even when descriptors are scarce.
pub const MIN_AUTO_CONNECTIONS: usize = 16;

/// Where we aim the soft limit when the hard limit is unlimited.
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The open-file limit before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (or 2^20 when the
/// hard limit is unlimited). When raising fails the limit stays as it was
/// and is reported as such.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn raise_open_file_limit() -> io::Result<OpenFileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = to_u64(lim.rlim_cur);
    let hard = to_u64(lim.rlim_max);
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        hard
    };
    if lim.rlim_cur != libc::RLIM_INFINITY && before < target {
        let raised = libc::rlimit {
            rlim_cur: target as libc::rlim_t,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(OpenFileLimit {
                before,
                soft: target,
                hard,
            });
        }
    }
    Ok(OpenFileLimit {
        before,
        soft: before,
        hard,
    })
}

#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v as u64
    }
}

/// The total TCP connection cap when none is configured: the descriptors
/// that RTP (one socket a call, for up to `rtp_sockets` calls) does not
/// need, but never less than a quarter of the usable ones, and within
/// [`MIN_AUTO_CONNECTIONS`]..=[`MAX_AUTO_CONNECTIONS`]. With a soft limit
/// of 1,024 that is 224 connections and 672 descriptors for calls.
pub fn auto_max_connections(fd_soft: u64, rtp_sockets: u64) -> usize {
    let usable = fd_soft.saturating_sub(RESERVED_FDS);
    let after_rtp = usable.saturating_sub(rtp_sockets);
    let n = after_rtp.max(usable / 4);
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(MIN_AUTO_CONNECTIONS, MAX_AUTO_CONNECTIONS)
}

/// The connection caps to run with: the configured ones, or the total
/// sized from the open-file limit; the per-source cap never exceeds the
/// total.
pub fn connection_caps(
    settings: &TcpSettings,
    fd_soft: Option<u64>,
    rtp_sockets: u64,
) -> (usize, usize) {
    let total = settings.max_connections.unwrap_or_else(|| match fd_soft {
        Some(soft) => auto_max_connections(soft, rtp_sockets),
        // Unknown limit: assume the common 1,024.
        None => auto_max_connections(1024, rtp_sockets),
    });
    (total, settings.max_connections_per_source.min(total))
}

/// Descriptors needed to run at full load: every call's RTP socket, every
/// connection, and the reserve.
pub fn descriptors_needed(max_connections: usize, rtp_sockets: u64) -> u64 {
    RESERVED_FDS + max_connections as u64 + rtp_sockets
}

/// HTTP client connections at full load (`[http] max_connections`; none
/// without `[http]`). They come out of the same descriptors.
pub fn http_connections(config: &Config) -> u64 {
    config
        .otp
        .http
        .as_ref()
        .map_or(0, |h| h.limits.max_connections as u64)
}

/// RTP sockets at full load: one per call, as many calls as allowed and
/// as the range has even ports.
pub fn rtp_sockets(config: &Config) -> u64 {
    let (lo, hi) = config.rtp.ports;
    let first = lo + lo % 2;
    let even_ports = if hi >= first {
        u64::from((hi - first) / 2 + 1)
    } else {
        0
    };
    even_ports.min(config.sip.max_calls as u64)
}

/// At start-up: raises the open-file limit, sizes the TCP caps from it,
/// and logs both (with a warning when full load would not fit).
pub fn tcp_limits_at_startup(config: &Config) -> TcpLimits {
    let settings = &config.sip.tcp_connections;
    // HTTP clients are sized by their own cap; what they may hold is not
    // available to SIP or RTP.
    let rtp = rtp_sockets(config) + http_connections(config);
    let fd_soft = match raise_open_file_limit() {
        Ok(l) => {
            tracing::info!(
                before = l.before,
                now = l.soft,
                hard = l.hard,
                "open-file limit (RLIMIT_NOFILE) raised to the hard limit"
            );
            Some(l.soft)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            None
        }
    };
    let (max_connections, max_per_source) = connection_caps(settings, fd_soft, rtp);
    let needed = descriptors_needed(max_connections, rtp);
    if let Some(soft) = fd_soft.filter(|&soft| soft < needed) {
        tracing::warn!(
            open_file_limit = soft,
            needed,
            rtp_sockets_and_http_connections = rtp,
            tcp_connections = max_connections,
            "the open-file limit is below what a full load needs (one RTP socket a call, every SIP and HTTP connection, {RESERVED_FDS} spare): raise it (systemd LimitNOFILE=, ulimit -Hn) or lower sip.max_calls or [sip.tcp] max_connections"
        );
    }
    if config.sip.tcp {
        tracing::info!(
            max_connections,
            max_per_source,
            message_timeout_ms = settings.message_timeout.as_millis() as u64,
            idle_timeout_secs = settings.idle_timeout.as_secs(),
            "SIP over TCP limits"
        );
    }
    TcpLimits {
        max_connections,
        max_per_source,
        timeouts: ConnTimeouts {
            message: settings.message_timeout,
            idle: settings.idle_timeout,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let got = raise_open_file_limit().unwrap();
        // An unprivileged process may always raise its soft limit up to
        // the hard one.
        let want = if got.hard == u64::MAX {
            UNLIMITED_TARGET
        } else {
            got.hard
        };
        assert_eq!(got.soft, want, "{got:?}");
        // Raising again changes nothing.
        let again = raise_open_file_limit().unwrap();
        assert_eq!(again.before, got.soft);
        assert_eq!(again.soft, got.soft);
    }

    #[test]
    fn automatic_caps_leave_room_for_rtp() {
        // The common 1,024: a quarter of what is usable goes to TCP, the
        // rest to calls.
        assert_eq!(auto_max_connections(1024, 5000), 224);
        assert!(descriptors_needed(224, 1024 - 128 - 224) <= 1024);
        // Plenty of descriptors: every call's socket fits, TCP gets the
        // rest up to the cap.
        assert_eq!(auto_max_connections(8192, 5000), 8192 - 128 - 5000);
        assert_eq!(auto_max_connections(524_288, 5000), MAX_AUTO_CONNECTIONS);
        // Scarce: never below the floor.
        assert_eq!(auto_max_connections(100, 5000), MIN_AUTO_CONNECTIONS);
    }

    #[test]
    fn configured_caps_win_and_per_source_never_exceeds_total() {
        let mut s = TcpSettings {
            max_connections: None,
            max_connections_per_source: 32,
            message_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
        };
        assert_eq!(connection_caps(&s, Some(1024), 5000), (224, 32));
        assert_eq!(connection_caps(&s, None, 5000), (224, 32));
        assert_eq!(connection_caps(&s, Some(120), 5000), (16, 16));
        s.max_connections = Some(10_000);
        assert_eq!(connection_caps(&s, Some(1024), 5000), (10_000, 32));
    }
}
