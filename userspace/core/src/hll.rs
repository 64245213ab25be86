//! A HyperLogLog counter of distinct keys: how many different keys a full table refused,
//! without storing them (a flood of spoofed sources would otherwise need the very memory the
//! budget denies).
//!
//! 2^12 one-byte registers (4 KiB) give a standard error of about 1.6 %. Callers feed 64-bit
//! hashes they already computed for their hash tables; registers of several counters (one per
//! worker) merge by taking the maximum, so each worker counts locally and publishes rarely.

const P: u32 = 12;
const M: usize = 1 << P;

#[derive(Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    regs: Box<[u8; M]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog { regs: Box::new([0; M]) }
    }
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperLogLog").field("estimate", &self.estimate()).finish()
    }
}

impl HyperLogLog {
    /// Counts the key whose 64-bit hash is `h`. The hash must be well mixed in every bit
    /// (foldhash's is); `h` is mixed once more so that the table's own bucket bits, which
    /// correlate with the keys a table kept, do not bias the registers.
    #[inline]
    pub fn add_hash(&mut self, h: u64) {
        let h = mix(h);
        let idx = (h >> (64 - P)) as usize;
        // Rank of the first set bit among the remaining 52, counted from 1.
        let rest = (h << P) | (1 << (P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.regs[idx] {
            self.regs[idx] = rank;
        }
    }

    /// Folds `other`'s keys into this counter.
    pub fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            *a = (*a).max(*b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.regs.iter().all(|r| *r == 0)
    }

    pub fn clear(&mut self) {
        self.regs.fill(0);
    }

    /// Estimated number of distinct keys counted.
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in self.regs.iter() {
            sum += 1.0 / (1u64 << r) as f64;
            if r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        // Small cardinalities: linear counting over the empty registers is exact enough and
        // the raw estimate is biased there.
        let e = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        e.round() as u64
    }
}

/// A 64-bit finaliser (from splitmix64): spreads every input bit over the output.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn count(n: u64, seed: u64) -> u64 {
        let s = foldhash::fast::FixedState::with_seed(seed);
        let mut h = HyperLogLog::default();
        for i in 0..n {
            h.add_hash(s.hash_one(i));
        }
        h.estimate()
    }

    #[test]
    fn estimates_within_a_few_percent_from_ten_to_millions() {
        for n in [0u64, 1, 10, 1000, 50_000, 2_000_000] {
            let e = count(n, 7) as f64;
            let err = if n == 0 { e } else { (e - n as f64).abs() / n as f64 };
            assert!(err <= 0.05, "n={n} estimate={e}");
        }
    }

    #[test]
    fn repeats_do_not_count_and_merges_equal_one_counter() {
        let s = foldhash::fast::FixedState::with_seed(1);
        let (mut a, mut b, mut both) = (HyperLogLog::default(), HyperLogLog::default(), HyperLogLog::default());
        for i in 0..20_000u64 {
            for _ in 0..3 {
                both.add_hash(s.hash_one(i));
            }
            if i % 2 == 0 {
                a.add_hash(s.hash_one(i));
            } else {
                b.add_hash(s.hash_one(i));
            }
        }
        a.merge(&b);
        assert_eq!(a, both);
        let e = both.estimate() as f64;
        assert!((e - 20_000.0).abs() / 20_000.0 < 0.05, "{e}");
        a.clear();
        assert!(a.is_empty() && a.estimate() == 0);
    }
}
