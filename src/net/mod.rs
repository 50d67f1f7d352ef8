//! How the limits see the network: who a packet, connection or request
//! comes from ([`SourceKey`]), and how many connections each source holds
//! open ([`ConnectionCounts`]). Pure bookkeeping shared by the SIP
//! transport, the SIP user agent's per-source limits, the brute-force
//! guard and the HTTP server, so that they all count a source the same way.

mod connection_counts;
mod source;

pub use connection_counts::{ConnectionCounts, Refused};
pub use source::SourceKey;
