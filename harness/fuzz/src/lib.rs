//! sgsim's fuzzers, on the stable toolchain (no nightly, so no sanitizer coverage): a mutation
//! engine ([`mutate`]) over seed corpora taken from `scenarios/` and `golden/`, steered by each
//! target's *outcome signature* (an input whose outcome — diagnostic kinds, HTTP status and route —
//! was not seen before joins the corpus), and a driver ([`driver`]) that runs every input under
//! `catch_unwind`, checks the target's properties and saves each finding to a file that
//! `tests/regressions.rs` then replays for ever.
//!
//! Targets ([`targets`]): `scenario` (scenario and pipeline parsing, validation, rendering,
//! normalization of the rendered pod), `normalize` (log normalization is idempotent and masks
//! every secret), `apiserver` (the embedded API server's request handling: paths, query strings,
//! bodies, content types, watch parameters).

pub mod driver;
pub mod mutate;
pub mod targets;

/// A 64-bit FNV-1a hash: names finding files and folds outcome signatures.
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
