//! The tokio shell.

pub mod rtp_ports;
