//! The algorithms' message costs, to report measured counts against (SPEC §3.2, §3.3).

use serde::{Deserialize, Serialize};

/// Expected costs for a connected graph of `n` nodes and `m` links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// Upper bound on Yo-Yo's messages, setup included: 2m(⌈log₂ n⌉ + 2).
    pub election: u64,
    /// Upper bound on Yo-Yo's iterations: ⌈log₂ n⌉ + 1 (the widely quoted figure, checked
    /// empirically; the per-iteration costs are exact).
    pub iterations: u32,
    /// SHOUT+'s exact cost: 2m (every link carries Q+Yes or Q+Q).
    pub tree: u64,
    /// Yo-Yo setup's exact cost: 2m.
    pub setup: u64,
}

/// ⌈log₂ n⌉, with ⌈log₂ 1⌉ = 0 (and 0 for n = 0).
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

impl Bounds {
    /// The bounds for `n` nodes and `m` links.
    pub fn new(n: u64, m: u64) -> Self {
        let log = ceil_log2(n);
        Bounds {
            election: 2 * m * (u64::from(log) + 2),
            iterations: log + 1,
            tree: 2 * m,
            setup: 2 * m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_rounds_up() {
        let cases = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (6, 3),
            (8, 3),
            (9, 4),
            (100_000, 17),
        ];
        for (n, expected) in cases {
            assert_eq!(ceil_log2(n), expected, "ceil_log2({n})");
        }
    }

    #[test]
    fn ring6_bounds_match_the_spec_example() {
        // SPEC §7's example report: ring6 has n = 6, m = 6.
        let b = Bounds::new(6, 6);
        assert_eq!((b.election, b.iterations, b.tree), (60, 4, 12));
    }
}
