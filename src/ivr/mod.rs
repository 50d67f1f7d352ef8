//! The call script.
