//! The mutation engine: stacked byte-, token- and line-level edits of one corpus entry, with
//! crossover from another. Deterministic for a seed, so every run can be replayed.

use sgsim_core::rng::SplitMix64;

/// Numbers that break parsers and arithmetic.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "2147483648",
    "-9223372036854775809",
    "18446744073709551616",
    "1e309",
    "0x7f",
    "0.0000001",
    ".inf",
    "-.nan",
    "007",
];

/// A mutation engine over `dict` tokens.
#[derive(Debug)]
pub struct Mutator {
    rng: SplitMix64,
    dict: Vec<Vec<u8>>,
}

impl Mutator {
    /// A mutator for `seed` using the target's dictionary.
    pub fn new(seed: u64, dict: &[&str]) -> Mutator {
        Mutator {
            rng: SplitMix64::new(seed, 0xF0_22),
            dict: dict.iter().map(|d| d.as_bytes().to_vec()).collect(),
        }
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// `input` changed by 1 to 8 stacked edits; `other` feeds crossover.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut b = input.to_vec();
        let edits = 1 + self.below(8);
        for _ in 0..edits {
            self.edit(&mut b, other);
        }
        b.truncate(1 << 20);
        b
    }

    fn edit(&mut self, b: &mut Vec<u8>, other: &[u8]) {
        let pos = self.below(b.len() + 1);
        match self.below(12) {
            0 if pos < b.len() => b[pos] ^= 1 << self.below(8),
            1 if pos < b.len() => b[pos] = self.rng.next_u64() as u8,
            2 => {
                let end = (pos + 1 + self.below(32)).min(b.len());
                b.drain(pos.min(end)..end);
            }
            3 | 4 if !self.dict.is_empty() => {
                let k = self.below(self.dict.len());
                let t = self.dict[k].clone();
                b.splice(pos..pos, t);
            }
            5 => {
                let t = NUMBERS[self.below(NUMBERS.len())].as_bytes().to_vec();
                replace_number_at(b, pos, &t);
            }
            6 => {
                // Duplicate a run of bytes in place.
                let end = (pos + 1 + self.below(64)).min(b.len());
                let run = b[pos.min(end)..end].to_vec();
                b.splice(end..end, run);
            }
            7 if !other.is_empty() => {
                // Crossover: our head, the other's tail, cut at line starts.
                let cut_a = line_start(b, pos);
                let p = self.below(other.len());
                let cut_b = line_start(other, p);
                b.truncate(cut_a);
                b.extend_from_slice(&other[cut_b..]);
            }
            8 => self.shuffle_lines(b),
            9 => {
                // Re-indent one line (YAML structure lives in indentation).
                let s = line_start(b, pos);
                match self.below(3) {
                    0 => {
                        b.splice(s..s, *b"  ");
                    }
                    1 => {
                        let n = b[s..].iter().take_while(|c| **c == b' ').count().min(2);
                        b.drain(s..s + n);
                    }
                    _ => {
                        b.splice(s..s, *b"\t");
                    }
                }
            }
            10 => b.truncate(pos),
            _ => {
                // A random printable byte run.
                let n = 1 + self.below(8);
                let run: Vec<u8> = (0..n).map(|_| b' ' + (self.rng.next_u64() % 95) as u8).collect();
                b.splice(pos..pos, run);
            }
        }
    }

    fn shuffle_lines(&mut self, b: &mut Vec<u8>) {
        let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
        if lines.len() < 2 {
            return;
        }
        let i = self.below(lines.len());
        let j = self.below(lines.len());
        match self.below(3) {
            0 => lines.swap(i, j),
            1 => {
                let l = lines[i].clone();
                lines.insert(j, l);
            }
            _ => {
                lines.remove(i);
            }
        }
        *b = lines.join(&b'\n');
    }
}

/// The start of the line holding byte `pos`.
fn line_start(b: &[u8], pos: usize) -> usize {
    let pos = pos.min(b.len());
    b[..pos].iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1)
}

/// Replaces the run of digits at or after `pos` with `t` (inserts `t` when there is none).
fn replace_number_at(b: &mut Vec<u8>, pos: usize, t: &[u8]) {
    let Some(start) = b[pos.min(b.len())..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| i + pos)
    else {
        b.splice(pos..pos, t.iter().copied());
        return;
    };
    let end = b[start..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(b.len(), |i| i + start);
    b.splice(start..end, t.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let base = b"a: 1\nb:\n  - c: 22\n".as_slice();
        let run = |seed| {
            let mut m = Mutator::new(seed, &["<+x>", ": "]);
            (0..200).map(|_| m.mutate(base, b"z: 9\n")).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let base = b"pipeline:\n  identifier: p\n  stages: []\n".as_slice();
        let mut m = Mutator::new(1, &["- "]);
        let outs: Vec<Vec<u8>> = (0..500).map(|_| m.mutate(base, base)).collect();
        let changed = outs.iter().filter(|o| o.as_slice() != base).count();
        assert!(changed > 400, "only {changed} of 500 mutations changed the input");
        assert!(outs.iter().all(|o| o.len() <= 1 << 20));
    }

    #[test]
    fn numbers_are_replaced_in_place() {
        let mut b = b"port: 8080\n".to_vec();
        replace_number_at(&mut b, 0, b"-1");
        assert_eq!(b, b"port: -1\n");
    }
}
