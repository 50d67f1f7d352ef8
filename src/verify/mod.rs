//! One-time passcodes: the verification lifecycle, the participant
//! directory, one-time dial-in codes and the interface delivery channels
//! implement.
//!
//! `otp`, `dialin` and `directory` are sans-I/O: they take the current time
//! (unix milliseconds, because verifications outlive a restart) and a
//! storage to work on, and never read a clock or touch a socket. `service`
//! is the thin async glue the HTTP API and the IVR share: it runs those
//! cores on a [`storage::VerificationStore`] (implemented by `crate::store`)
//! and calls the delivery channels. `settings` are what the configuration
//! gives this module; `channel` and `e164` are the domain types it shares
//! with the configuration, the store and the API.

pub mod channel;
pub mod clock;
pub mod delivery;
pub mod dialin;
pub mod directory;
pub mod e164;
pub mod key;
pub mod otp;
pub mod random;
pub mod sender;
pub mod service;
pub mod settings;
pub mod storage;
