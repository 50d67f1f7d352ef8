//! RTP for one call leg: `send` stamps and paces what we send;
//! `stream_stats` keeps the RFC 3550 loss and jitter statistics of what
//! arrives. Sans-I/O: the shell hands in the time and moves the datagrams.

// Everything under here reads bytes a peer controls: a panic on a short or
// odd packet would take the call (or the room) down.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod send;
pub mod stream_stats;

pub use send::{Due, PacketClock, RtpSender, MAX_PACKET};
pub use stream_stats::{LossInterval, StreamStatistics, StreamStats};
