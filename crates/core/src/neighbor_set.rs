//! A set of one node's neighbours, kept as bits over the sorted ids of all of them.
//!
//! Yo-Yo keeps several such sets per node (the links still expected in setup, the neighbours
//! introduced, the in-edges, the out-edges), each a subset of the node's neighbours. As a
//! `BTreeSet` each is a tree of heap nodes; here each is one machine word (or a few, for a node
//! of more than 64 neighbours) beside a shared, sorted list of the neighbours' ids. A simulated
//! million-node network then fits in memory, and a message touches a few cache lines instead of
//! a few heap allocations. Iteration runs in id order, as the `BTreeSet`'s did, so every run is
//! the same run as before, message for message.

use std::fmt;
use std::ops::Deref;

use crate::NodeId;

/// The sorted ids of one node's neighbours, shared by the node's sets and by the node itself:
/// one pointer wide (the length lives with the ids, and there is no weak count), where a slice
/// behind a shared pointer takes two words, and a node keeps eight of these (a million nodes,
/// 64 MB).
#[derive(Clone)]
pub struct Universe(triomphe::ThinArc<(), NodeId>);

impl Deref for Universe {
    type Target = [NodeId];

    fn deref(&self) -> &[NodeId] {
        &self.0.slice
    }
}

impl Universe {
    /// What comes before the ids in their heap block: the shared count and the length, a word
    /// each (a test checks the layout).
    pub(crate) const HEADER: usize = 2 * std::mem::size_of::<usize>();

    /// Where the ids live on the heap, with their count and the shared count before them, for a
    /// universe of `len` ids (the caller knows it without reading the heap): address and bytes.
    /// A hint for prefetching only; reading the length from the block itself would wait for the
    /// very memory the hint is meant to bring in early.
    pub fn block(&self, len: usize) -> (*const u8, usize) {
        (
            self.0.as_ptr().cast(),
            Self::HEADER + len * std::mem::size_of::<NodeId>(),
        )
    }
}

impl fmt::Debug for Universe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A subset of a node's neighbours (see the module documentation).
#[derive(Clone)]
pub struct NeighborSet {
    /// Every neighbour the set may hold, sorted, shared by the node's sets.
    all: Universe,
    /// Bit `k` (of word `k / 64`) is set when `all[k]` is in the set.
    words: Words,
}

#[derive(Clone)]
enum Words {
    One(u64),
    Many(Box<[u64]>),
}

impl NeighborSet {
    /// The sorted, deduplicated neighbours `ids`, to share among a node's sets.
    pub fn universe(ids: impl IntoIterator<Item = NodeId>) -> Universe {
        let mut ids: Vec<NodeId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        Universe(triomphe::ThinArc::from_header_and_slice((), &ids))
    }

    /// The empty set of neighbours drawn from `all`.
    pub fn empty(all: &Universe) -> NeighborSet {
        let words = if all.len() <= 64 {
            Words::One(0)
        } else {
            Words::Many(vec![0; all.len().div_ceil(64)].into())
        };
        NeighborSet {
            all: all.clone(),
            words,
        }
    }

    /// An empty set over the same neighbours as this one.
    pub fn empty_like(&self) -> NeighborSet {
        NeighborSet::empty(&self.all)
    }

    /// Every neighbour of `all`.
    pub fn full(all: &Universe) -> NeighborSet {
        let mut set = NeighborSet::empty(all);
        for k in 0..all.len() {
            set.set_bit(k, true);
        }
        set
    }

    /// The universe's ids, sorted: position `k` is id `all()[k]`.
    pub fn all(&self) -> &[NodeId] {
        &self.all
    }

    /// `id`'s position among the universe's sorted ids: the index of its slot in any per-neighbour
    /// array kept beside these sets.
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.all.binary_search(&id).ok()
    }

    fn bit(&self, k: usize) -> bool {
        let word = match &self.words {
            Words::One(w) => *w,
            Words::Many(ws) => ws[k / 64],
        };
        word >> (k % 64) & 1 == 1
    }

    fn set_bit(&mut self, k: usize, on: bool) {
        let word = match &mut self.words {
            Words::One(w) => w,
            Words::Many(ws) => &mut ws[k / 64],
        };
        if on {
            *word |= 1 << (k % 64);
        } else {
            *word &= !(1 << (k % 64));
        }
    }

    /// Adds `id`; whether it was not there. An id that is not one of the neighbours is not
    /// added (false).
    pub fn insert(&mut self, id: NodeId) -> bool {
        match self.position(id) {
            Some(k) if !self.bit(k) => {
                self.set_bit(k, true);
                true
            }
            _ => false,
        }
    }

    /// Takes `id` out; whether it was there.
    pub fn remove(&mut self, id: &NodeId) -> bool {
        match self.position(*id) {
            Some(k) if self.bit(k) => {
                self.set_bit(k, false);
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.position(*id).is_some_and(|k| self.bit(k))
    }

    /// How many neighbours it holds.
    pub fn len(&self) -> usize {
        // Counted, not kept: a million nodes' seven sets are 8 bytes smaller each.
        match &self.words {
            Words::One(w) => w.count_ones() as usize,
            Words::Many(ws) => ws.iter().map(|w| w.count_ones() as usize).sum(),
        }
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        match &self.words {
            Words::One(w) => *w == 0,
            Words::Many(ws) => ws.iter().all(|&w| w == 0),
        }
    }

    /// Its neighbours, in id order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { set: self, next: 0 }
    }

    /// Its smallest id.
    pub fn first(&self) -> Option<&NodeId> {
        self.iter().next()
    }
}

/// The neighbours of a [`NeighborSet`], in id order.
pub struct Iter<'a> {
    set: &'a NeighborSet,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a NodeId;

    fn next(&mut self) -> Option<&'a NodeId> {
        let all = &self.set.all;
        while self.next < all.len() {
            let k = self.next;
            // Skip a whole empty word at once.
            let word = match &self.set.words {
                Words::One(w) => *w,
                Words::Many(ws) => ws[k / 64],
            } >> (k % 64);
            if word == 0 {
                self.next = (k / 64 + 1) * 64;
                continue;
            }
            let k = k + word.trailing_zeros() as usize;
            self.next = k + 1;
            return Some(&all[k]);
        }
        None
    }
}

impl<'a> IntoIterator for &'a NeighborSet {
    type Item = &'a NodeId;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for NeighborSet {
    fn eq(&self, other: &NeighborSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for NeighborSet {}

impl PartialEq<std::collections::BTreeSet<NodeId>> for NeighborSet {
    fn eq(&self, other: &std::collections::BTreeSet<NodeId>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for NeighborSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_universe_is_one_pointer_and_its_block_covers_its_ids() {
        assert_eq!(
            std::mem::size_of::<Universe>(),
            std::mem::size_of::<usize>()
        );
        for n in [0u64, 1, 4, 64, 65, 1000] {
            let all = NeighborSet::universe((1..=n).rev());
            assert_eq!(&*all, &(1..=n).collect::<Vec<_>>()[..], "sorted");
            let (start, bytes) = all.block(all.len());
            let ids = all.as_ptr() as usize;
            // The prefetch hint ends exactly where the ids end, and begins before them.
            assert!(start as usize <= ids, "{n} ids");
            assert_eq!(start as usize + bytes, ids + 8 * n as usize, "{n} ids");
        }
    }

    /// SplitMix64, enough for a test's random choices.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn new(seed: u64) -> Self {
            SplitMix64(seed)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// Against a `BTreeSet` under random inserts and removals, for small and large universes:
    /// the same answers, the same members in the same order.
    #[test]
    fn behaves_as_a_btreeset_of_the_neighbours() {
        for (size, seed) in [(1, 1), (4, 2), (63, 3), (64, 4), (65, 5), (200, 6)] {
            let mut rng = SplitMix64::new(seed);
            let ids: Vec<NodeId> = (0..size).map(|_| 1 + rng.below(1_000_000)).collect();
            let all = NeighborSet::universe(ids.iter().copied());
            let mut set = NeighborSet::empty(&all);
            let mut model = BTreeSet::new();
            for _ in 0..2_000 {
                let id = if rng.below(10) == 0 {
                    1_000_001 + rng.below(10) // not a neighbour: never held
                } else {
                    all[rng.below(all.len() as u64) as usize]
                };
                if rng.below(2) == 0 {
                    let is_neighbor = all.contains(&id);
                    assert_eq!(set.insert(id), is_neighbor && model.insert(id));
                } else {
                    assert_eq!(set.remove(&id), model.remove(&id));
                }
                assert_eq!(set.contains(&id), model.contains(&id));
                assert_eq!(set.len(), model.len());
                assert_eq!(set.is_empty(), model.is_empty());
            }
            assert!(set.iter().eq(model.iter()), "size {size}");
            assert_eq!(set.first(), model.first());
            let full = NeighborSet::full(&all);
            assert!(full.iter().eq(all.iter()));
            assert_eq!(full.len(), all.len());
        }
    }
}
