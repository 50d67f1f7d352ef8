//! Panic injection, so that the supervision policy (see
//! [`crate::server::supervise`]) can be tested on the real binary.
//!
//! The policy says a panic anywhere takes the process down with a non-zero
//! status, so that a service manager restarts it, and pinbridge is never
//! left up and deaf. The only honest test of that is a panic in each kind
//! of long-lived task of a running `pinbridge`; bugs that panic are the ones
//! we have not found yet, so the tests plant one.
//!
//! `PINBRIDGE_INJECT_PANIC=<site>` in the environment of `pinbridge run`
//! arms one [`Site`]; the task at that site panics the first time it gets
//! there. Nothing is armed unless the binary's start-up reads that
//! variable (the library alone, as in-process tests use it, never panics
//! here), and arming it is logged loudly. An unarmed check is one atomic
//! load.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that arms a site.
pub const ENV: &str = "PINBRIDGE_INJECT_PANIC";

/// Where a panic can be planted: one place in each long-lived task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The SIP task, on the next message it receives.
    Sip,
    /// A TCP connection task, on the next message it frames.
    TcpConnection,
    /// A call task, once its call is answered.
    Call,
    /// A room task, on its first tick.
    Room,
    /// The database thread, on its next job.
    Store,
    /// The HTTP server, on the next request.
    Http,
}

impl Site {
    pub const ALL: [Site; 6] = [
        Site::Sip,
        Site::TcpConnection,
        Site::Call,
        Site::Room,
        Site::Store,
        Site::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Site::Sip => "sip",
            Site::TcpConnection => "tcp",
            Site::Call => "call",
            Site::Room => "room",
            Site::Store => "store",
            Site::Http => "http",
        }
    }

    pub fn from_name(name: &str) -> Option<Site> {
        Site::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

static ARMED: OnceLock<Site> = OnceLock::new();

/// Why `PINBRIDGE_INJECT_PANIC` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ENV}={value:?}: not a site (one of sip, tcp, call, room, store, http)")]
pub struct UnknownSite {
    pub value: String,
}

/// Reads [`ENV`] and arms the site it names. Returns the armed site, if any.
/// Called once by the binary before the server starts.
pub fn arm_from_env() -> Result<Option<Site>, UnknownSite> {
    let Some(value) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    let value = value.to_string_lossy().into_owned();
    if value.is_empty() {
        return Ok(None);
    }
    let site = Site::from_name(&value).ok_or(UnknownSite { value })?;
    let _ = ARMED.set(site);
    Ok(ARMED.get().copied())
}

/// Panics if `site` is armed. Place one call in each long-lived task.
#[inline]
pub fn check(site: Site) {
    if ARMED.get() == Some(&site) {
        panic!("panic injected at site {site} ({ENV})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Site::ALL {
            assert_eq!(Site::from_name(s.name()), Some(s));
        }
        assert_eq!(Site::from_name("SIP"), None);
        assert_eq!(Site::from_name(""), None);
    }

    #[test]
    fn unarmed_sites_do_not_panic() {
        // Nothing in the library arms a site; only the binary does.
        for s in Site::ALL {
            check(s);
        }
    }
}
