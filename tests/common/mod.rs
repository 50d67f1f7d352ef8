//! Shared code for the integration tests (`mod common;`): an independent
//! test SIP user agent, RTP recorder, G.711 codec and SDP helpers, so the
//! tests check the server against a second implementation rather than
//! against itself. Each test binary uses only part of it, hence the allows.
#![allow(dead_code, unused_imports)]

pub mod dtmf;
pub mod g711;
pub mod http;
pub mod peers;
pub mod process;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod sipmsg;
pub mod ua;
pub mod webhook;

/// Routes `tracing` output (e.g. from a server started in-process) to the
/// test's captured output; `RUST_LOG` filters it. Safe to call repeatedly.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
