//! The `[generate]` table: named graph shapes, their id orders, and the generators.
//!
//! A generator produces nodes as indices `0..n` in a fixed "generator order" and links between
//! indices; [`IdOrder`] then assigns the election ids. Everything random comes from
//! [`SplitMix64`] seeded by [`Generate::seed`], so the same table always gives the same graph.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::ErrorKind;
use crate::rng::SplitMix64;
use crate::{NodeId, MAX_LINKS, MAX_NODES};

/// The `[generate]` table, also constructible from code.
#[derive(Debug, Clone, PartialEq)]
pub struct Generate {
    /// Which graph to build, with its sizes.
    pub shape: Shape,
    /// How election ids are assigned to the generated nodes.
    pub ids: IdOrder,
    /// Seed for `ids = "shuffle"` and `shape = "random"`; the same seed gives the same graph.
    pub seed: u64,
}

/// A named graph shape and its sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A cycle of `n >= 3` nodes: i—i+1 and n—1.
    Ring {
        /// Number of nodes.
        n: usize,
    },
    /// A path of `n >= 1` nodes: i—i+1.
    Line {
        /// Number of nodes.
        n: usize,
    },
    /// `n >= 1` nodes, the first (the centre) linked to all others.
    Star {
        /// Number of nodes, centre included.
        n: usize,
    },
    /// `n >= 1` nodes, every pair linked.
    Complete {
        /// Number of nodes.
        n: usize,
    },
    /// A `rows` × `cols` grid, numbered row by row, each node linked to its 4 neighbours.
    Grid {
        /// Number of rows, at least 1.
        rows: usize,
        /// Number of columns, at least 1.
        cols: usize,
    },
    /// A grid whose rows and columns wrap around (every node has degree 4); rows, cols >= 3.
    Torus {
        /// Number of rows, at least 3.
        rows: usize,
        /// Number of columns, at least 3.
        cols: usize,
    },
    /// A complete `fanout`-ary tree of depth `depth`, numbered breadth first from the root.
    Tree {
        /// Levels below the root (0 is a single node).
        depth: usize,
        /// Children of each inner node, at least 1.
        fanout: usize,
    },
    /// `2^dim` nodes, linked when their indices differ in one bit; 0 <= dim <= 20.
    Hypercube {
        /// Dimension.
        dim: usize,
    },
    /// A connected random graph: a random spanning tree plus uniformly random extra links, for
    /// `round(n * degree / 2)` links in all.
    Random {
        /// Number of nodes.
        n: usize,
        /// Average degree (links = round(n * degree / 2)).
        degree: f64,
    },
}

/// How election ids are assigned to generated nodes (the node at generator index `i`, 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdOrder {
    /// Id `i + 1`: the generator's order.
    #[default]
    Sequential,
    /// A seeded uniformly random permutation of `1..=n`.
    Shuffle,
    /// Id `n - i`.
    Reverse,
}

impl IdOrder {
    /// The order's name in a topology file.
    pub fn name(self) -> &'static str {
        match self {
            IdOrder::Sequential => "sequential",
            IdOrder::Shuffle => "shuffle",
            IdOrder::Reverse => "reverse",
        }
    }

    /// The order named `name` in a topology file.
    pub fn from_name(name: &str) -> Option<IdOrder> {
        match name {
            "sequential" => Some(IdOrder::Sequential),
            "shuffle" => Some(IdOrder::Shuffle),
            "reverse" => Some(IdOrder::Reverse),
            _ => None,
        }
    }
}

/// One named shape as a topology file knows it: its name, the sizes it takes and how its
/// [`Shape`] is made from them. [`SHAPES`] lists them all, and [`Shape::kind`] gives a shape its
/// own; the shape's node and link counts and its generator are [`Shape`]'s, matched on every
/// variant, so a shape without them does not compile.
#[derive(Debug)]
pub(crate) struct ShapeKind {
    /// The name in a topology file: `shape = "ring"`.
    pub name: &'static str,
    /// The size keys it takes, in the order messages list them.
    pub params: &'static [Param],
    /// [`ShapeKind::params`] in words, for messages: `rows and cols`.
    pub takes: &'static str,
    /// The shape, its sizes read from `sizes` by key (in [`ShapeKind::params`] order).
    make: fn(&mut dyn Sizes) -> Result<Shape, Invalid>,
}

/// A size key of a shape and the values it takes.
#[derive(Debug)]
pub(crate) struct Param {
    /// The key in `[generate]`: `n`, `rows`, …
    pub key: &'static str,
    /// Its valid values.
    pub values: Values,
}

/// The valid values of a size key.
#[derive(Debug)]
pub(crate) enum Values {
    /// A whole number from `min`, up to `max` if bounded.
    Int {
        /// The smallest valid value.
        min: usize,
        /// The largest valid value, if any.
        max: Option<usize>,
        /// The range in words, for messages: `ring takes n >= 3`.
        valid: &'static str,
    },
    /// A random graph's average degree: any number whose link count fits the nodes (checked
    /// with the counts, in [`Shape::check`]).
    Degree,
}

/// Where a shape's sizes come from (a `[generate]` table), read by key.
pub(crate) trait Sizes {
    /// The whole-number size `key` of `shape` (not checked against its range yet).
    fn int(&mut self, shape: &'static ShapeKind, key: &'static str) -> Result<usize, Invalid>;
    /// The average degree.
    fn degree(&mut self, shape: &'static ShapeKind) -> Result<f64, Invalid>;
}

/// A whole-number size key.
const fn int(key: &'static str, min: usize, max: Option<usize>, valid: &'static str) -> Param {
    Param {
        key,
        values: Values::Int { min, max, valid },
    }
}

static RING: ShapeKind = ShapeKind {
    name: "ring",
    params: &[int("n", 3, None, "ring takes n >= 3")],
    takes: "n",
    make: |sizes| {
        Ok(Shape::Ring {
            n: sizes.int(&RING, "n")?,
        })
    },
};

static LINE: ShapeKind = ShapeKind {
    name: "line",
    params: &[int("n", 1, None, "line takes n >= 1")],
    takes: "n",
    make: |sizes| {
        Ok(Shape::Line {
            n: sizes.int(&LINE, "n")?,
        })
    },
};

static STAR: ShapeKind = ShapeKind {
    name: "star",
    params: &[int("n", 1, None, "star takes n >= 1")],
    takes: "n",
    make: |sizes| {
        Ok(Shape::Star {
            n: sizes.int(&STAR, "n")?,
        })
    },
};

static COMPLETE: ShapeKind = ShapeKind {
    name: "complete",
    params: &[int("n", 1, None, "complete takes n >= 1")],
    takes: "n",
    make: |sizes| {
        Ok(Shape::Complete {
            n: sizes.int(&COMPLETE, "n")?,
        })
    },
};

static GRID: ShapeKind = ShapeKind {
    name: "grid",
    params: &[
        int("rows", 1, None, "grid takes rows >= 1"),
        int("cols", 1, None, "grid takes cols >= 1"),
    ],
    takes: "rows and cols",
    make: |sizes| {
        Ok(Shape::Grid {
            rows: sizes.int(&GRID, "rows")?,
            cols: sizes.int(&GRID, "cols")?,
        })
    },
};

static TORUS: ShapeKind = ShapeKind {
    name: "torus",
    params: &[
        int("rows", 3, None, "torus takes rows >= 3"),
        int("cols", 3, None, "torus takes cols >= 3"),
    ],
    takes: "rows and cols",
    make: |sizes| {
        Ok(Shape::Torus {
            rows: sizes.int(&TORUS, "rows")?,
            cols: sizes.int(&TORUS, "cols")?,
        })
    },
};

static TREE: ShapeKind = ShapeKind {
    name: "tree",
    params: &[
        int("depth", 0, None, "tree takes depth >= 0"),
        int("fanout", 1, None, "tree takes fanout >= 1"),
    ],
    takes: "depth and fanout",
    make: |sizes| {
        Ok(Shape::Tree {
            depth: sizes.int(&TREE, "depth")?,
            fanout: sizes.int(&TREE, "fanout")?,
        })
    },
};

static HYPERCUBE: ShapeKind = ShapeKind {
    name: "hypercube",
    params: &[int("dim", 0, Some(20), "hypercube takes 0 <= dim <= 20")],
    takes: "dim",
    make: |sizes| {
        Ok(Shape::Hypercube {
            dim: sizes.int(&HYPERCUBE, "dim")?,
        })
    },
};

static RANDOM: ShapeKind = ShapeKind {
    name: "random",
    params: &[
        int("n", 1, None, "random takes n >= 1"),
        Param {
            key: "degree",
            values: Values::Degree,
        },
    ],
    takes: "n and degree",
    make: |sizes| {
        Ok(Shape::Random {
            n: sizes.int(&RANDOM, "n")?,
            degree: sizes.degree(&RANDOM)?,
        })
    },
};

/// Every shape, in the order messages list them.
pub(crate) static SHAPES: [&ShapeKind; 9] = [
    &RING, &LINE, &STAR, &COMPLETE, &GRID, &TORUS, &TREE, &HYPERCUBE, &RANDOM,
];

/// The shapes' names, for messages: `ring, line, …, random`.
pub(crate) static SHAPE_LIST: LazyLock<String> = LazyLock::new(|| {
    SHAPES
        .iter()
        .map(|shape| shape.name)
        .collect::<Vec<_>>()
        .join(", ")
});

impl ShapeKind {
    /// The shape named `name` in a topology file, if there is one.
    pub(crate) fn named(name: &str) -> Option<&'static ShapeKind> {
        SHAPES.iter().copied().find(|shape| shape.name == name)
    }

    /// Makes the shape, its sizes read from `sizes`.
    pub(crate) fn make(&'static self, sizes: &mut dyn Sizes) -> Result<Shape, Invalid> {
        (self.make)(sizes)
    }

    /// Whether it takes the size `key`.
    pub(crate) fn takes(&self, key: &str) -> bool {
        self.params.iter().any(|param| param.key == key)
    }

    /// The valid range of its whole-number size `key` in words, for messages.
    pub(crate) fn valid(&self, key: &str) -> Option<&'static str> {
        self.params.iter().find_map(|param| match param.values {
            Values::Int { valid, .. } if param.key == key => Some(valid),
            _ => None,
        })
    }
}

/// Every size key some shape takes, each once.
pub(crate) fn size_keys() -> impl Iterator<Item = &'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for param in SHAPES.iter().flat_map(|shape| shape.params) {
        if !keys.contains(&param.key) {
            keys.push(param.key);
        }
    }
    keys.into_iter()
}

/// Why a [`Generate`] is invalid, and which key (if any) is to blame.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub kind: ErrorKind,
    /// The `[generate]` key whose value is wrong; `None` means the shape as a whole.
    pub key: Option<&'static str>,
}

impl Shape {
    /// The shape's name in a topology file.
    pub fn name(&self) -> &'static str {
        self.kind().name
    }

    /// What a topology file knows of the shape.
    pub(crate) fn kind(&self) -> &'static ShapeKind {
        match self {
            Shape::Ring { .. } => &RING,
            Shape::Line { .. } => &LINE,
            Shape::Star { .. } => &STAR,
            Shape::Complete { .. } => &COMPLETE,
            Shape::Grid { .. } => &GRID,
            Shape::Torus { .. } => &TORUS,
            Shape::Tree { .. } => &TREE,
            Shape::Hypercube { .. } => &HYPERCUBE,
            Shape::Random { .. } => &RANDOM,
        }
    }

    /// The whole-number sizes with their keys, in [`ShapeKind::params`] order.
    fn int_sizes(&self) -> Vec<(&'static str, usize)> {
        match *self {
            Shape::Ring { n }
            | Shape::Line { n }
            | Shape::Star { n }
            | Shape::Complete { n }
            | Shape::Random { n, .. } => vec![("n", n)],
            Shape::Grid { rows, cols } | Shape::Torus { rows, cols } => {
                vec![("rows", rows), ("cols", cols)]
            }
            Shape::Tree { depth, fanout } => vec![("depth", depth), ("fanout", fanout)],
            Shape::Hypercube { dim } => vec![("dim", dim)],
        }
    }

    /// Checks the sizes and the size guard; returns the node and link counts.
    pub(crate) fn check(&self) -> Result<(usize, usize), Invalid> {
        let ints = self
            .kind()
            .params
            .iter()
            .filter_map(|param| match param.values {
                Values::Int { min, max, valid } => Some((param.key, min, max, valid)),
                Values::Degree => None,
            });
        for ((key, min, max, valid), (_, value)) in ints.zip(self.int_sizes()) {
            if value < min || max.is_some_and(|max| value > max) {
                return Err(Invalid {
                    kind: ErrorKind::OutOfRange {
                        key,
                        value: value.to_string(),
                        valid,
                    },
                    key: Some(key),
                });
            }
        }
        let (nodes, links) = self.size()?;
        if nodes > MAX_NODES as u128 || links > MAX_LINKS as u128 {
            let saturate = |count: u128| u64::try_from(count).unwrap_or(u64::MAX);
            return Err(Invalid {
                kind: ErrorKind::TooLarge {
                    nodes: saturate(nodes),
                    links: saturate(links),
                },
                key: None,
            });
        }
        Ok((nodes as usize, links as usize))
    }

    /// Node and link counts, saturating at `u128::MAX`; sizes must already be in range.
    fn size(&self) -> Result<(u128, u128), Invalid> {
        let sat = |x: Option<u128>| x.unwrap_or(u128::MAX);
        Ok(match *self {
            Shape::Ring { n } => (n as u128, n as u128),
            Shape::Line { n } | Shape::Star { n } => (n as u128, n as u128 - 1),
            Shape::Complete { n } => {
                let n = n as u128;
                (n, n * (n - 1) / 2)
            }
            Shape::Grid { rows, cols } => {
                let (r, c) = (rows as u128, cols as u128);
                (r * c, r * (c - 1) + c * (r - 1))
            }
            Shape::Torus { rows, cols } => {
                let (r, c) = (rows as u128, cols as u128);
                (r * c, 2 * r * c)
            }
            Shape::Tree { depth, fanout: 1 } => (depth as u128 + 1, depth as u128),
            Shape::Tree { depth, fanout } => {
                // 1 + f + f^2 + ... + f^depth; with f >= 2 this saturates within 128 levels.
                let (mut nodes, mut level) = (1u128, 1u128);
                for _ in 0..depth {
                    level = sat(level.checked_mul(fanout as u128));
                    nodes = sat(nodes.checked_add(level));
                    if nodes == u128::MAX {
                        break;
                    }
                }
                (nodes, nodes.saturating_sub(1))
            }
            Shape::Hypercube { dim } => {
                let nodes = 1u128 << dim;
                (nodes, dim as u128 * nodes / 2)
            }
            Shape::Random { n, degree } => {
                if n > MAX_NODES {
                    // Checked before the degree so the message is about the real problem; the
                    // links it would have, as the degree asks (at least a spanning tree's).
                    let links = (n as f64 * degree / 2.0).round().max(n as f64 - 1.0);
                    return Ok((n as u128, links as u128));
                }
                let nn = n as u64;
                let (min_links, max_links) = (nn - 1, nn * (nn - 1) / 2);
                let wanted = (n as f64 * degree / 2.0).round();
                if !(wanted >= min_links as f64 && wanted <= max_links as f64) {
                    return Err(Invalid {
                        kind: ErrorKind::DegreeOutOfRange {
                            n,
                            degree,
                            min_links,
                            max_links,
                            min_degree: 2.0 * min_links as f64 / n as f64,
                            max_degree: nn - 1,
                        },
                        key: Some("degree"),
                    });
                }
                (n as u128, wanted as u128)
            }
        })
    }
}

/// A generated graph: the ids in generator order, and links between generator indices.
pub(crate) type Built = (Vec<NodeId>, Vec<(u32, u32)>);

impl Generate {
    /// Validates the sizes and builds the graph: the ids in generator order, and links between
    /// generator indices.
    pub(crate) fn build(&self) -> Result<Built, Invalid> {
        let (n, m) = self.shape.check()?;
        // Independent streams for the graph and the ids, so changing `ids` never changes the links.
        let mut root = SplitMix64::new(self.seed);
        let mut graph_rng = SplitMix64::new(root.next_u64());
        let mut ids_rng = SplitMix64::new(root.next_u64());
        let links = links(&self.shape, n, m, &mut graph_rng);
        debug_assert_eq!(links.len(), m);
        let ids = match self.ids {
            IdOrder::Sequential => (1..=n as NodeId).collect(),
            IdOrder::Reverse => (1..=n as NodeId).rev().collect(),
            IdOrder::Shuffle => {
                let mut ids: Vec<NodeId> = (1..=n as NodeId).collect();
                ids_rng.shuffle(&mut ids);
                ids
            }
        };
        Ok((ids, links))
    }
}

/// The links of a shape with `n` nodes and `m` links, between generator indices.
fn links(shape: &Shape, n: usize, m: usize, rng: &mut SplitMix64) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(m);
    let n32 = n as u32;
    match *shape {
        Shape::Ring { .. } => {
            out.extend((1..n32).map(|i| (i - 1, i)));
            out.push((0, n32 - 1));
        }
        Shape::Line { .. } => out.extend((1..n32).map(|i| (i - 1, i))),
        Shape::Star { .. } => out.extend((1..n32).map(|i| (0, i))),
        Shape::Complete { .. } => {
            for i in 0..n32 {
                out.extend((i + 1..n32).map(|j| (i, j)));
            }
        }
        Shape::Grid { rows, cols } | Shape::Torus { rows, cols } => {
            let wrap = matches!(shape, Shape::Torus { .. });
            let (rows, cols) = (rows as u32, cols as u32);
            let at = |r: u32, c: u32| r * cols + c;
            for r in 0..rows {
                for c in 0..cols {
                    if c + 1 < cols {
                        out.push((at(r, c), at(r, c + 1)));
                    } else if wrap {
                        out.push((at(r, 0), at(r, c)));
                    }
                    if r + 1 < rows {
                        out.push((at(r, c), at(r + 1, c)));
                    } else if wrap {
                        out.push((at(0, c), at(r, c)));
                    }
                }
            }
        }
        Shape::Tree { fanout, .. } => {
            // Breadth-first numbering: the parent of node i > 0 is (i - 1) / fanout.
            out.extend((1..n32).map(|i| ((i - 1) / fanout as u32, i)));
        }
        Shape::Hypercube { dim } => {
            for i in 0..n32 {
                for bit in 0..dim {
                    let j = i ^ (1 << bit);
                    if i < j {
                        out.push((i, j));
                    }
                }
            }
        }
        Shape::Random { .. } => random_links(n, m, rng, &mut out),
    }
    out
}

/// A connected random graph with `n` nodes and exactly `m` links (`n - 1 <= m <= n(n-1)/2`).
///
/// First a random spanning tree (node i > 0 attaches to a uniformly random earlier node), so the
/// graph is connected; then the remaining links are a uniformly random set of the other pairs.
fn random_links(n: usize, m: usize, rng: &mut SplitMix64, out: &mut Vec<(u32, u32)>) {
    let mut taken = PairSet::new(n, m);
    for i in 1..n as u64 {
        let parent = rng.below(i) as u32;
        taken.insert(parent, i as u32);
        out.push((parent, i as u32));
    }
    let total = n as u64 * (n as u64).saturating_sub(1) / 2;
    let draw = |rng: &mut SplitMix64| {
        // Two distinct uniform indices, ordered: a uniform unordered pair.
        loop {
            let a = rng.below(n as u64) as u32;
            let b = rng.below(n as u64) as u32;
            if a != b {
                return (a.min(b), a.max(b));
            }
        }
    };
    if 2 * (m as u64) <= total {
        // Sparse: draw pairs until enough are new; at least half of all pairs are free throughout.
        while out.len() < m {
            let (a, b) = draw(rng);
            if taken.insert(a, b) {
                out.push((a, b));
            }
        }
    } else {
        // Dense: drawing what to keep would stall near the end, so draw the `total - m` pairs to
        // leave out instead (fewer than half of all pairs), then keep every other pair in order.
        let mut left_out = 0;
        while left_out < total - m as u64 {
            let (a, b) = draw(rng);
            if taken.insert(a, b) {
                left_out += 1;
            }
        }
        // `taken` now holds the tree and the left-out pairs; the rest are the extra links.
        for a in 0..n as u32 {
            for b in a + 1..n as u32 {
                if !taken.contains(a, b) {
                    out.push((a, b));
                }
            }
        }
    }
}

/// A set of unordered index pairs (`a < b`): a bit matrix for small graphs, a hash set otherwise.
/// Only membership is asked, never iteration order, so the choice cannot change the graph.
enum PairSet {
    Bits { n: usize, words: Vec<u64> },
    Hash(HashSet<u64, MixPairs>),
}

/// The hash of a pair for [`PairSet`]: one multiply and a fold, where the standard hasher (keyed
/// against adversaries, which a seeded generator has none of) took a sixth of generating a
/// million-node graph. The pairs' order in the set is never read, so the hash cannot change a
/// graph.
#[derive(Clone, Copy, Default)]
struct MixPairs;

impl std::hash::BuildHasher for MixPairs {
    type Hasher = MixPair;

    fn build_hasher(&self) -> MixPair {
        MixPair(0)
    }
}

/// See [`MixPairs`]; hashes one `u64`.
struct MixPair(u64);

impl std::hash::Hasher for MixPair {
    fn finish(&self) -> u64 {
        // The product's high half mixes every bit of the key; folded into the low half too,
        // where the table picks its bucket (the high bits pick its tag).
        let product = u128::from(self.0) * 0x9E37_79B9_7F4A_7C15;
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

impl PairSet {
    /// A set for pairs of `n` nodes, room made for `m` of them.
    fn new(n: usize, m: usize) -> Self {
        // 8192 nodes is 8 MiB of bits; dense random graphs (m > half of all pairs) are below that
        // anyway, since the size guard caps m at 10 million.
        if n <= 8192 {
            PairSet::Bits {
                n,
                words: vec![0; (n * n).div_ceil(64)],
            }
        } else {
            PairSet::Hash(HashSet::with_capacity_and_hasher(m, MixPairs))
        }
    }

    /// Adds the pair; false if it was already there.
    fn insert(&mut self, a: u32, b: u32) -> bool {
        match self {
            PairSet::Bits { n, words } => {
                let bit = a as usize * *n + b as usize;
                let mask = 1u64 << (bit % 64);
                let fresh = words[bit / 64] & mask == 0;
                words[bit / 64] |= mask;
                fresh
            }
            PairSet::Hash(set) => set.insert((u64::from(a) << 32) | u64::from(b)),
        }
    }

    fn contains(&self, a: u32, b: u32) -> bool {
        match self {
            PairSet::Bits { n, words } => {
                let bit = a as usize * *n + b as usize;
                words[bit / 64] & (1u64 << (bit % 64)) != 0
            }
            PairSet::Hash(set) => set.contains(&((u64::from(a) << 32) | u64::from(b))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes that answer every key with the smallest valid value.
    struct Smallest;

    impl Sizes for Smallest {
        fn int(&mut self, shape: &'static ShapeKind, key: &'static str) -> Result<usize, Invalid> {
            let param = shape.params.iter().find(|param| param.key == key);
            match param.map(|param| &param.values) {
                Some(Values::Int { min, .. }) => Ok(*min),
                _ => panic!("{} reads {key}, which it does not list", shape.name),
            }
        }

        fn degree(&mut self, shape: &'static ShapeKind) -> Result<f64, Invalid> {
            assert!(shape.takes("degree"), "{} reads degree", shape.name);
            Ok(0.0)
        }
    }

    /// Each descriptor makes its own shape, which reads back the sizes the descriptor lists, in
    /// its order: the range checks of `Shape::check` pair them by position.
    #[test]
    fn every_descriptor_makes_its_own_shape() {
        for kind in SHAPES {
            let shape = kind.make(&mut Smallest).unwrap();
            assert!(std::ptr::eq(shape.kind(), kind), "{}", kind.name);
            assert_eq!(shape.name(), kind.name);
            let ints: Vec<&str> = kind
                .params
                .iter()
                .filter(|param| matches!(param.values, Values::Int { .. }))
                .map(|param| param.key)
                .collect();
            let read: Vec<&str> = shape.int_sizes().into_iter().map(|(key, _)| key).collect();
            assert_eq!(read, ints, "{}", kind.name);
            let takes: Vec<&str> = kind.params.iter().map(|param| param.key).collect();
            assert_eq!(kind.takes, takes.join(" and "), "{}", kind.name);
        }
    }

    #[test]
    fn shapes_are_found_by_name_and_unknown_names_are_not() {
        for kind in SHAPES {
            assert!(std::ptr::eq(ShapeKind::named(kind.name).unwrap(), kind));
        }
        assert!(ShapeKind::named("hexagon").is_none());
        assert!(ShapeKind::named("").is_none());
        assert_eq!(
            SHAPE_LIST.as_str(),
            "ring, line, star, complete, grid, torus, tree, hypercube, random"
        );
        let keys: Vec<&str> = size_keys().collect();
        assert_eq!(
            keys,
            ["n", "rows", "cols", "depth", "fanout", "dim", "degree"]
        );
    }
}
