//! Conference PINs: plain (the quick start) or an argon2 hash made by
//! `pinbridge hash-pin`. Either way a PIN is compared in constant time and
//! never printed: `Debug` is redacted.

use std::fmt;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub enum PinSecret {
    Plain(String),
    /// A PHC string (`$argon2id$v=19$m=...`).
    Hash(String),
}

impl fmt::Debug for PinSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSecret::Plain(_) => f.write_str("PinSecret::Plain(<redacted>)"),
            PinSecret::Hash(_) => f.write_str("PinSecret::Hash(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("a PIN must be 1 to 20 digits")]
    NotDigits,
    #[error("not an argon2 PHC hash (make one with `pinbridge hash-pin`)")]
    BadHash,
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// Checks that `pin` is a usable PIN: 1–20 digits.
pub fn validate_pin(pin: &str) -> Result<(), PinError> {
    if pin.is_empty() || pin.len() > 20 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        Err(PinError::NotDigits)
    } else {
        Ok(())
    }
}

/// Hashes a PIN with argon2id and a random salt, as a PHC string.
pub fn hash_pin(pin: &str) -> Result<String, PinError> {
    validate_pin(pin)?;
    Argon2::default()
        .hash_password(pin.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PinError::Hashing(e.to_string()))
}

impl PinSecret {
    pub fn plain(pin: &str) -> Result<PinSecret, PinError> {
        validate_pin(pin)?;
        Ok(PinSecret::Plain(pin.to_string()))
    }

    pub fn hash(phc: &str) -> Result<PinSecret, PinError> {
        if !phc.starts_with("$argon2")
            || argon2::password_hash::phc::PasswordHash::new(phc).is_err()
        {
            return Err(PinError::BadHash);
        }
        Ok(PinSecret::Hash(phc.to_string()))
    }

    /// Is `entered` this PIN? Plain PINs compare in constant time (only the
    /// length can be learned, and every PIN in a deployment is usually the
    /// same length anyway); hashes cost an argon2 run (tens of milliseconds),
    /// so call this off the async runtime.
    pub fn verify(&self, entered: &str) -> bool {
        match self {
            PinSecret::Plain(p) => bool::from(p.as_bytes().ct_eq(entered.as_bytes())),
            PinSecret::Hash(h) => Argon2::default()
                .verify_password(entered.as_bytes(), h.as_str())
                .is_ok(),
        }
    }

    /// Is verifying this cheap (no hashing)?
    pub fn is_plain(&self) -> bool {
        matches!(self, PinSecret::Plain(_))
    }

    /// For config checks only: the plain PIN, if it is one.
    pub(crate) fn plain_value(&self) -> Option<&str> {
        match self {
            PinSecret::Plain(p) => Some(p),
            PinSecret::Hash(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pins_verify_and_debug_is_redacted() {
        let p = PinSecret::plain("123456").unwrap();
        assert!(p.verify("123456"));
        assert!(!p.verify("123457"));
        assert!(!p.verify("12345"));
        assert!(!p.verify(""));
        assert!(!format!("{p:?}").contains("123456"));
    }

    #[test]
    fn hashed_pins_verify() {
        let h = hash_pin("2468").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let p = PinSecret::hash(&h).unwrap();
        assert!(p.verify("2468"));
        assert!(!p.verify("2469"));
        assert_ne!(hash_pin("2468").unwrap(), h, "salted");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(PinSecret::plain("12a4").unwrap_err(), PinError::NotDigits);
        assert_eq!(PinSecret::plain("").unwrap_err(), PinError::NotDigits);
        assert_eq!(PinSecret::hash("1234").unwrap_err(), PinError::BadHash);
        assert!(hash_pin("x").is_err());
    }
}
