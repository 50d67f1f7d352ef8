//! Randomness for secrets, straight from the operating system's CSPRNG
//! (getrandom through `rand::rngs::SysRng`). A user-space generator seeded
//! once would do as well, but asking the OS each time leaves nothing to
//! get wrong after a fork.

use rand::rngs::SysRng;
use rand::TryRng;

/// The operating system refused to give random bytes (no entropy source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `buf` with random bytes from the OS.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    SysRng
        .try_fill_bytes(buf)
        .map_err(|e| RandomError(e.to_string()))
}

/// `n` uniformly random decimal digits. Bytes of 250 and above are thrown
/// away so that every digit is equally likely (no modulo bias).
pub fn digits(n: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        fill(&mut buf)?;
        for &b in &buf {
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// An identifier: `prefix` and 32 lowercase hex digits (128 random bits),
/// like hosted APIs' `VE...` verification ids. Unguessable, so knowing one
/// id tells nothing about another.
pub fn id(prefix: &str) -> Result<String, RandomError> {
    let mut raw = [0u8; 16];
    fill(&mut raw)?;
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    for b in raw {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_digits_and_spread() {
        let mut counts = [0u32; 10];
        for _ in 0..200 {
            let d = digits(10).unwrap();
            assert_eq!(d.len(), 10);
            for b in d.bytes() {
                assert!(b.is_ascii_digit());
                counts[(b - b'0') as usize] += 1;
            }
        }
        // 2,000 digits: every value shows up (a stuck generator would not).
        assert!(counts.iter().all(|&c| c > 100), "{counts:?}");
    }

    #[test]
    fn ids_are_unique() {
        let a = id("VE").unwrap();
        let b = id("VE").unwrap();
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("VE"));
        assert_ne!(a, b);
    }
}
