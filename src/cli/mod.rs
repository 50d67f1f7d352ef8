//! The offline tools of the `pinbridge` command, one module each: they
//! run once and exit, beside the server rather than inside it. `main.rs`
//! parses the command line and calls the tool's `main`.
//!
//! - `check-config`: validates a configuration file and its prompts;
//! - `detect-dtmf`: the digits in a WAV file or an RTP capture;
//! - `hash-pin`: an argon2 hash of a PIN for the configuration file;
//! - `participants`: the participant directory on the database.

pub mod check_config;
pub mod detect_dtmf;
pub mod hash_pin;
pub mod participants;
