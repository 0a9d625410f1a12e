//! A tiny deterministic PRNG (splitmix64): the same seed gives the same pod name and ids.

/// splitmix64 generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`, on the stream `stream` (so pod names and execution ids of one seed
    /// are independent).
    pub fn new(seed: u64, stream: u64) -> Self {
        SplitMix64(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` characters drawn uniformly from `alphabet` (ASCII, non-empty).
    pub fn string(&mut self, alphabet: &str, n: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        if chars.is_empty() {
            return String::new();
        }
        let len = chars.len() as u64;
        // Rejection sampling keeps the distribution uniform.
        let zone = u64::MAX - (u64::MAX % len);
        (0..n)
            .map(|_| {
                loop {
                    let r = self.next_u64();
                    if r < zone {
                        break chars[(r % len) as usize];
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn deterministic() {
        let a = SplitMix64::new(1, 0).string("abc", 10);
        let b = SplitMix64::new(1, 0).string("abc", 10);
        let c = SplitMix64::new(2, 0).string("abc", 10);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(SplitMix64::new(0, 0).next_u64(), 0xE220A8397B1DCDAF);
    }
}
