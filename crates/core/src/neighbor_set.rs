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
    /// Which of them it holds.
    bits: Subset,
}

/// A subset of a node's neighbours without its universe: the bits alone, one word. Its owner
/// keeps the universe once, beside several of these (in a [`NeighborSet`] of its own), and
/// hands it to each call: Yo-Yo's and SHOUT+'s five working sets then take a word each in the
/// node, not two (a million nodes, 40 MB, and a cache line of each node).
///
/// Every call must pass the same universe as the one the set was made for ([`Subset::empty`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Subset(Words);

/// A set's bits in one word: for a universe of at most [`ONE_WORD`] ids the bits themselves;
/// for more, the address of an array on the heap, with the top bit set ([`MANY`]: a user-space
/// address never has it), whose first element is the number of words after it. Which of the two
/// it is, and how long the array is, needs no look at the universe, whose length lives on the
/// heap: a message to a node reads its sets without waiting for that block. (An enum of the two
/// took two words: a million nodes' seven sets, 56 MB more.)
struct Words(u64);

/// The most ids one word holds: the top bit tells the two forms of [`Words`] apart.
const ONE_WORD: usize = 63;

/// The top bit: set when [`Words`] holds an address.
const MANY: u64 = 1 << 63;

impl Words {
    /// No bits set, for a universe of `len` ids.
    fn empty(len: usize) -> Words {
        if len <= ONE_WORD {
            return Words(0);
        }
        let count = len.div_ceil(64);
        let mut array = vec![0u64; 1 + count];
        array[0] = count as u64;
        Words::own(array.into())
    }

    /// Words that own `array` (its count first, then the words).
    fn own(array: Box<[u64]>) -> Words {
        let address = Box::into_raw(array).cast::<u64>() as u64;
        assert_eq!(address & MANY, 0, "a heap address with its top bit set");
        Words(address | MANY)
    }

    /// The array (count first), when there is one.
    fn array(&self) -> Option<*mut u64> {
        (self.0 & MANY != 0).then_some((self.0 & !MANY) as *mut u64)
    }

    /// The words: one, or the array's.
    fn slice(&self) -> &[u64] {
        match self.array() {
            None => std::slice::from_ref(&self.0),
            // SAFETY: the array `Words::empty` made holds its count and then that many words,
            // and is this value's own until it is dropped.
            Some(array) => unsafe {
                let count = *array as usize;
                std::slice::from_raw_parts(array.add(1), count)
            },
        }
    }

    /// [`Words::slice`], to change.
    fn slice_mut(&mut self) -> &mut [u64] {
        match self.array() {
            None => std::slice::from_mut(&mut self.0),
            // SAFETY: as in `slice`, borrowed mutably through `self`.
            Some(array) => unsafe {
                let count = *array as usize;
                std::slice::from_raw_parts_mut(array.add(1), count)
            },
        }
    }
}

impl Clone for Words {
    fn clone(&self) -> Words {
        match self.array() {
            None => Words(self.0),
            Some(_) => {
                let words = self.slice();
                let mut array = Vec::with_capacity(1 + words.len());
                array.push(words.len() as u64);
                array.extend_from_slice(words);
                Words::own(array.into())
            }
        }
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        if let Some(array) = self.array() {
            // SAFETY: the array `Words::own` was given, of its count and that many words, freed
            // once, here.
            unsafe {
                let len = 1 + *array as usize;
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    array, len,
                )));
            }
        }
    }
}

impl PartialEq for Words {
    fn eq(&self, other: &Words) -> bool {
        self.slice() == other.slice()
    }
}

impl Eq for Words {}

impl Subset {
    /// The empty subset of `all`.
    pub fn empty(all: &[NodeId]) -> Subset {
        Subset(Words::empty(all.len()))
    }

    fn bit(&self, k: usize) -> bool {
        self.0.slice()[k / 64] >> (k % 64) & 1 == 1
    }

    fn set_bit(&mut self, k: usize, on: bool) {
        let word = &mut self.0.slice_mut()[k / 64];
        if on {
            *word |= 1 << (k % 64);
        } else {
            *word &= !(1 << (k % 64));
        }
    }

    /// Adds `id`; whether it was not there. An id that is not one of `all` is not added (false).
    pub fn insert(&mut self, all: &[NodeId], id: NodeId) -> bool {
        match all.binary_search(&id) {
            Ok(k) if !self.bit(k) => {
                self.set_bit(k, true);
                true
            }
            _ => false,
        }
    }

    /// Takes `id` out; whether it was there.
    pub fn remove(&mut self, all: &[NodeId], id: &NodeId) -> bool {
        match all.binary_search(id) {
            Ok(k) if self.bit(k) => {
                self.set_bit(k, false);
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, all: &[NodeId], id: &NodeId) -> bool {
        all.binary_search(id).is_ok_and(|k| self.bit(k))
    }

    /// How many neighbours it holds.
    pub fn len(&self) -> usize {
        // Counted, not kept: a million nodes' seven sets are 8 bytes smaller each.
        self.0.slice().iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.slice().iter().all(|&w| w == 0)
    }

    /// Its neighbours, in id order, drawn from `all`.
    pub fn iter<'a>(&'a self, all: &'a [NodeId]) -> Iter<'a> {
        Iter {
            words: self.0.slice(),
            all,
            next: 0,
        }
    }
}

impl fmt::Debug for Subset {
    /// Its members as words (it does not know their ids).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subset({:x?})", self.0.slice())
    }
}

impl NeighborSet {
    /// The sorted, deduplicated neighbours `ids`, to share among a node's sets.
    pub fn universe(ids: impl IntoIterator<Item = NodeId>) -> Universe {
        // Most nodes have a few neighbours: their ids are sorted on the stack, where a list
        // would be allocated and freed again for each of a million nodes.
        let mut ids = ids.into_iter();
        let mut few = [0; 16];
        let mut len = 0;
        while let Some(id) = ids.next() {
            if len == few.len() {
                let mut many = few.to_vec();
                many.push(id);
                many.extend(ids);
                return Self::sorted(&mut many);
            }
            few[len] = id;
            len += 1;
        }
        Self::sorted(&mut few[..len])
    }

    /// The universe of `ids`, which it sorts.
    fn sorted(ids: &mut [NodeId]) -> Universe {
        ids.sort_unstable();
        // Without repeats, in place.
        let mut kept = 0;
        for i in 0..ids.len() {
            if kept == 0 || ids[i] != ids[kept - 1] {
                ids[kept] = ids[i];
                kept += 1;
            }
        }
        Universe(triomphe::ThinArc::from_header_and_slice((), &ids[..kept]))
    }

    /// The empty set of neighbours drawn from `all`.
    pub fn empty(all: &Universe) -> NeighborSet {
        NeighborSet {
            all: all.clone(),
            bits: Subset::empty(all),
        }
    }

    /// Every neighbour of `all`.
    pub fn full(all: &Universe) -> NeighborSet {
        let mut set = NeighborSet::empty(all);
        for k in 0..all.len() {
            set.bits.set_bit(k, true);
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

    /// Adds `id`; whether it was not there. An id that is not one of the neighbours is not
    /// added (false).
    pub fn insert(&mut self, id: NodeId) -> bool {
        self.bits.insert(&self.all, id)
    }

    /// Takes `id` out; whether it was there.
    pub fn remove(&mut self, id: &NodeId) -> bool {
        self.bits.remove(&self.all, id)
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.bits.contains(&self.all, id)
    }

    /// How many neighbours it holds.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Its neighbours, in id order.
    pub fn iter(&self) -> Iter<'_> {
        self.bits.iter(&self.all)
    }

    /// Its smallest id.
    pub fn first(&self) -> Option<&NodeId> {
        self.iter().next()
    }
}

/// The neighbours of a [`NeighborSet`] or [`Subset`], in id order.
pub struct Iter<'a> {
    words: &'a [u64],
    all: &'a [NodeId],
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a NodeId;

    fn next(&mut self) -> Option<&'a NodeId> {
        let all = self.all;
        while self.next < all.len() {
            let k = self.next;
            // Skip a whole empty word at once.
            let word = self.words[k / 64] >> (k % 64);
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
        for n in [0u64, 1, 4, 15, 16, 17, 64, 65, 1000] {
            // Each id twice, in falling order: sorted, and the repeats gone.
            let all = NeighborSet::universe((1..=n).rev().flat_map(|id| [id, id]));
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
    fn a_set_is_two_words_and_its_bits_one() {
        assert_eq!(
            std::mem::size_of::<NeighborSet>(),
            2 * std::mem::size_of::<usize>()
        );
        assert_eq!(std::mem::size_of::<Subset>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn behaves_as_a_btreeset_of_the_neighbours() {
        for (size, seed) in [
            (1, 1),
            (4, 2),
            (63, 3),
            (64, 4),
            (65, 5),
            (127, 7),
            (128, 8),
            (129, 9),
            (200, 6),
        ] {
            let mut rng = SplitMix64::new(seed);
            let ids: Vec<NodeId> = (0..size).map(|_| 1 + rng.below(1_000_000)).collect();
            let all = NeighborSet::universe(ids.iter().copied());
            let mut set = NeighborSet::empty(&all);
            // The same set without its universe, which each call then passes in.
            let mut bits = Subset::empty(&all);
            let mut model = BTreeSet::new();
            for _ in 0..2_000 {
                let id = if rng.below(10) == 0 {
                    1_000_001 + rng.below(10) // not a neighbour: never held
                } else {
                    all[rng.below(all.len() as u64) as usize]
                };
                if rng.below(2) == 0 {
                    let is_neighbor = all.contains(&id);
                    let added = is_neighbor && model.insert(id);
                    assert_eq!(set.insert(id), added);
                    assert_eq!(bits.insert(&all, id), added);
                } else {
                    let removed = model.remove(&id);
                    assert_eq!(set.remove(&id), removed);
                    assert_eq!(bits.remove(&all, &id), removed);
                }
                assert_eq!(set.contains(&id), model.contains(&id));
                assert_eq!(bits.contains(&all, &id), model.contains(&id));
                assert_eq!(set.len(), model.len());
                assert_eq!(bits.len(), model.len());
                assert_eq!(set.is_empty(), model.is_empty());
                assert_eq!(bits.is_empty(), model.is_empty());
            }
            assert!(set.iter().eq(model.iter()), "size {size}");
            assert!(bits.iter(&all).eq(model.iter()), "size {size}");
            // A copy of the bits is equal, and apart: changing it leaves the original.
            let mut other = bits.clone();
            assert_eq!(other, bits);
            if let Some(&first) = all.first() {
                if !other.remove(&all, &first) {
                    other.insert(&all, first);
                }
                assert_ne!(other, bits, "size {size}");
            }
            assert_eq!(set.first(), model.first());
            let full = NeighborSet::full(&all);
            assert!(full.iter().eq(all.iter()));
            assert_eq!(full.len(), all.len());
            // A copy is a set of its own: changing it leaves the original as it was.
            let mut copy = set.clone();
            assert_eq!(copy, set);
            if let Some(&first) = all.first() {
                let had = set.contains(&first);
                if had {
                    copy.remove(&first);
                } else {
                    copy.insert(first);
                }
                assert_eq!(set.contains(&first), had, "size {size}");
                assert_ne!(copy, set, "size {size}");
                assert!(set.iter().eq(model.iter()), "size {size}");
            }
        }
    }
}
