//! Helpers for tests, integration tests and benches; not part of the
//! product. Public only so that `tests/` and `benches/` (separate crates)
//! can reach it; it depends on nothing else in the crate.

/// A small deterministic pseudo-random generator (xorshift64*, Vigna 2016)
/// for randomised property tests and fuzz-style loops: the same seed gives
/// the same sequence on every run and machine, so a failure reproduces from
/// its seed. Not for anything that needs unpredictability (tokens, tags,
/// keys).
///
/// xorshift64* rather than plain xorshift64 because the tests take values
/// `% n`, i.e. from the low bits, and the final multiplication makes those
/// as good as the high ones.
#[derive(Clone, Debug)]
pub struct TestRng {
    state: u64,
}

/// What seed 0 becomes: the xorshift state 0 maps to itself forever.
const SEED_FOR_ZERO: u64 = 0x9E37_79B9_7F4A_7C15;

impl TestRng {
    /// A generator seeded with `seed`. Every seed gives a full-period
    /// sequence: 0 (which xorshift cannot use) is replaced by a fixed
    /// nonzero constant.
    pub fn new(seed: u64) -> TestRng {
        TestRng {
            state: if seed == 0 { SEED_FOR_ZERO } else { seed },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The low 32 bits of [`TestRng::next_u64`].
    pub fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    /// The low 8 bits of [`TestRng::next_u64`].
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// A number in `0..n` (`n` = 0 is taken as 1, giving 0). Slightly
    /// biased towards small values for `n` not a power of two, which a test
    /// does not mind.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index into a slice of `len` elements (`len` = 0 gives 0).
    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len.max(1) as u64) as usize
    }

    /// One element of `items`, chosen uniformly.
    ///
    /// # Panics
    ///
    /// If `items` is empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        match items.get(self.index(items.len())) {
            Some(&item) => item,
            None => panic!("TestRng::pick from an empty slice"),
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let a: Vec<u64> = {
            let mut r = TestRng::new(42);
            (0..100).map(|_| r.next_u64()).collect()
        };
        let mut r = TestRng::new(42);
        let b: Vec<u64> = (0..100).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = TestRng::new(43);
        assert_ne!(a[0], other.next_u64());
    }

    /// The published xorshift64* sequence (state 1: x ^= x >> 12 keeps 1,
    /// x ^= x << 25 gives 2^25 + 1, x ^= x >> 27 keeps it; times the
    /// multiplier): the copies this generator replaced computed exactly
    /// this, so tests that tuned their seeds keep their sequences.
    #[test]
    fn it_is_xorshift64_star() {
        let mut r = TestRng::new(1);
        let state = (1u64 << 25) | 1;
        assert_eq!(r.next_u64(), state.wrapping_mul(0x2545_F491_4F6C_DD1D));
    }

    #[test]
    fn seed_zero_is_not_stuck() {
        let mut r = TestRng::new(0);
        let first: Vec<u64> = (0..1000).map(|_| r.next_u64()).collect();
        assert!(first.iter().all(|&v| v != 0));
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), first.len(), "no repeat within 1000");
        // Seed 0 is the documented constant, not some other seed's twin
        // by accident.
        let mut k = TestRng::new(SEED_FOR_ZERO);
        assert_eq!(first[0], k.next_u64());
    }

    #[test]
    fn the_bits_are_not_degenerate() {
        // Over 4096 draws every bit position is set about half the time,
        // and below/index/chance stay in range and reach both ends.
        let mut r = TestRng::new(0);
        let mut ones = [0u32; 64];
        for _ in 0..4096 {
            let v = r.next_u64();
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += u32::from(v >> bit & 1 == 1);
            }
        }
        for (bit, &count) in ones.iter().enumerate() {
            assert!((1700..2400).contains(&count), "bit {bit}: {count}/4096");
        }
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
            assert!(r.index(3) < 3);
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(0), 0);
        assert_eq!(r.index(0), 0);
        let heads = (0..1000).filter(|_| r.chance(0.25)).count();
        assert!((150..350).contains(&heads), "{heads}");
        assert!(!(0..100).any(|_| r.chance(0.0)));
        assert_eq!(r.pick(&[7u8]), 7);
    }
}
