//! A small, fixed pseudo-random generator (xoshiro256**, seeded by splitmix64).
//!
//! Written out here rather than taken from `rand` so the output of a seed can
//! never change under a dependency upgrade: `generate --seed 7` must produce
//! the same bytes in every version that keeps this file. Only integer
//! arithmetic is used, so results do not depend on the platform's libm.

/// The generator state.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// splitmix64's finalizer: a bijective 64-bit mix, also used to make ids.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed` and a named stream, so independent parts of the
    /// simulation (sessions, faults, FX) do not shift each other's draws.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ mix64(stream.wrapping_add(0x9e37_79b9_7f4a_7c15));
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(x)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `ppm` parts per million.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        self.below(1_000_000) < u64::from(ppm)
    }

    /// An index drawn with the given integer weights (not all zero).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }

    /// An index drawn from a cumulative weight table (last entry = total).
    pub fn cumulative(&mut self, cumulative: &[u64]) -> usize {
        let x = self.below(*cumulative.last().expect("empty weight table"));
        cumulative.partition_point(|&c| c <= x)
    }
}

/// Converts a fraction in `[0, 1]` to parts per million, exactly enough for draws.
pub fn to_ppm(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7, 1), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7, 1), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(7, 2), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn draws_stay_in_range_and_follow_weights() {
        let mut r = Rng::new(1, 0);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            assert!(r.below(10) < 10);
            counts[r.weighted(&[1, 2, 0])] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert_eq!(r.cumulative(&[0, 0, 5]), 2);
    }
}
