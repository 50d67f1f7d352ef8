//! SIP core (RFC 3261): message parsing, transactions, dialogs and SDP.
//! No I/O here; the server shell feeds bytes and time in and sends what
//! comes out.

// Everything under here reads bytes a peer controls: a panic on a short or
// odd packet would take the call (or the server) down.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod auth;
pub mod dialog;
pub mod flow;
pub mod grammar;
pub mod header;
pub mod identity;
pub mod message;
pub mod method;
pub mod sdp;
pub mod transaction;
pub mod ua;
pub mod uri;
