//! RTP for one call leg, both directions: `session` is the leg's whole RTP
//! state, built from the parts below; `send` stamps and paces what we
//! send; `receive` classifies what arrives on the leg's port (audio,
//! telephone-event, RTCP, junk), latches the return address and feeds
//! `stream_stats`, the RFC 3550 loss and jitter statistics of the stream.
//! Sans-I/O: the shell hands in datagrams and the time.

// Everything under here reads bytes a peer controls: a panic on a short or
// odd packet would take the call (or the room) down.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod receive;
pub mod send;
pub mod session;
pub mod stream_stats;

pub use receive::{
    ArrivalCounts, Datagram, Ignored, Latch, ReceiveParams, ReceiveStats, RtpPacket, RtpReceiver,
};
pub use send::{Due, PacketClock, RtpSender, MAX_PACKET};
pub use session::{Outgoing, Received, RtpSession, SessionParams, MAX_PAYLOAD};
pub use stream_stats::{LossInterval, StreamStatistics, StreamStats};
