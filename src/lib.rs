//! pinbridge: a self-hosted SIP/RTP IVR that gates a mixing conference
//! behind a PIN or a one-time passcode.
//!
//! The protocol and signal cores (`sip`, `media`, `ivr`) take input and the
//! current time and return output; they own no socket, task or clock. The
//! `server` module is the thin tokio shell that does the I/O; `cli` holds
//! the offline tools of the command line. See ARCHITECTURE.md for the
//! shape.

// Peer- and operator-controlled text is never sliced by byte index: a
// multi-byte character at the cut panics. Use `get(..)`, `split_once`,
// `strip_prefix` or bytes (test code may allow it).
#![deny(clippy::string_slice)]
#![warn(unreachable_pub)]

pub mod cli;
pub mod conference;
pub mod config;
pub mod fault;
pub mod http;
pub mod ivr;
pub mod media;
pub mod net;
pub mod server;
pub mod sip;
pub mod store;
// The deterministic generator and other helpers of the tests and benches.
#[doc(hidden)]
pub mod testing;
pub mod verify;
