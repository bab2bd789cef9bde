//! The replication log's shape, as the protocol core sees it (SPEC §4): positions, and which
//! epoch wrote each entry.
//!
//! The entries themselves (their bodies) live in the node's store; the core keeps only what its
//! decisions need: where the log starts (`base`, after a snapshot), where it ends, and the epoch
//! of every entry, kept as runs (`[(first seq, epoch)]`: epochs change rarely, so a log of a
//! million entries is a handful of runs). That is enough for **Raft's log matching** (an entry is
//! accepted only after an entry with the same epoch at the position before it) and for comparing
//! logs in the **view change** (the most advanced log has the newest last epoch, then the most
//! entries).

use serde::{Deserialize, Serialize};

use crate::Epoch;

/// A position in the log: the entry at `seq`, written in `epoch`. `(0, 0)` is before the first
/// entry. Ordered by epoch, then seq: the order of "more advanced" logs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Pos {
    /// The epoch of the writer that appended the entry.
    pub epoch: Epoch,
    /// The entry's number, from 1, without gaps.
    pub seq: u64,
}

impl Pos {
    /// The position before the first entry.
    pub const START: Pos = Pos { epoch: 0, seq: 0 };

    /// A position.
    pub fn new(epoch: Epoch, seq: u64) -> Pos {
        Pos { epoch, seq }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.epoch, self.seq)
    }
}

/// One log entry as it travels between nodes: its position, its idempotency key, its body
/// (opaque here: the chat's command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The writer's epoch when it appended the entry.
    pub epoch: Epoch,
    /// Its number.
    pub seq: u64,
    /// The request's `Idempotency-Key` (scoped to its user), when it had one: a retry applies as
    /// the first attempt's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What it does, for the store (JSON). Empty for the marker a new writer appends first.
    pub body: String,
}

impl WireEntry {
    /// Its position.
    pub fn pos(&self) -> Pos {
        Pos::new(self.epoch, self.seq)
    }
}

/// The shape of one node's log: its base (what a snapshot replaced), its entries' epochs in runs,
/// its last entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    base: Pos,
    /// `(first seq, epoch)` of each run of entries after `base`, in order.
    runs: Vec<(u64, Epoch)>,
    last: u64,
}

impl Shape {
    /// A log that starts after `base` (`Pos::START` for a log from the beginning) and holds
    /// entries in `runs` up to `last`.
    pub fn new(base: Pos, runs: Vec<(u64, Epoch)>, last: u64) -> Shape {
        debug_assert!(last >= base.seq);
        Shape { base, runs, last }
    }

    /// The last entry's position (the base's for a log without entries).
    pub fn last(&self) -> Pos {
        Pos::new(self.epoch_at(self.last).unwrap_or(0), self.last)
    }

    /// The last entry's number.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// Where the log starts: entries up to here were replaced by a snapshot.
    pub fn base(&self) -> Pos {
        self.base
    }

    /// The epoch of the entry at `seq`, if the log knows it (the base's, or an entry's).
    pub fn epoch_at(&self, seq: u64) -> Option<Epoch> {
        if seq == self.base.seq {
            return Some(self.base.epoch);
        }
        if seq < self.base.seq || seq > self.last {
            return None;
        }
        let i = self.runs.partition_point(|&(start, _)| start <= seq);
        self.runs.get(i.checked_sub(1)?).map(|&(_, epoch)| epoch)
    }

    /// Whether the log holds `pos` (the entry at `pos.seq` has `pos.epoch`): Raft's log
    /// matching check for an entry that follows `pos`.
    pub fn holds(&self, pos: Pos) -> bool {
        self.epoch_at(pos.seq) == Some(pos.epoch)
    }

    /// Drop every entry after `seq` (an old writer's tail the new writer's log does not have).
    pub fn truncate(&mut self, seq: u64) {
        let seq = seq.max(self.base.seq);
        if seq >= self.last {
            return;
        }
        self.last = seq;
        self.runs.retain(|&(start, _)| start <= seq);
    }

    /// Append the entry `seq` of `epoch`, which must follow the last one.
    pub fn push(&mut self, epoch: Epoch, seq: u64) {
        debug_assert_eq!(seq, self.last + 1, "entries are appended in order");
        if self.runs.last().map(|&(_, e)| e) != Some(epoch) {
            self.runs.push((seq, epoch));
        }
        self.last = seq;
    }

    /// The log replaced by a snapshot that ends at `base`.
    pub fn reset(&mut self, base: Pos) {
        *self = Shape::new(base, Vec::new(), base.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(entries: &[(u64, Epoch)]) -> Shape {
        let mut s = Shape::default();
        for &(seq, epoch) in entries {
            s.push(epoch, seq);
        }
        s
    }

    #[test]
    fn positions_order_by_epoch_then_seq() {
        assert!(Pos::new(3, 1) > Pos::new(2, 9));
        assert!(Pos::new(3, 5) > Pos::new(3, 4));
        assert_eq!(Pos::default(), Pos::START);
    }

    #[test]
    fn the_epoch_of_every_entry_is_known_from_its_run() {
        let s = shape(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 4)]);
        let epochs: Vec<Option<Epoch>> = (0..=6).map(|seq| s.epoch_at(seq)).collect();
        assert_eq!(
            epochs,
            vec![Some(0), Some(1), Some(1), Some(2), Some(2), Some(4), None]
        );
        assert_eq!(s.last(), Pos::new(4, 5));
        assert!(s.holds(Pos::new(2, 4)) && !s.holds(Pos::new(3, 4)));
    }

    #[test]
    fn a_truncated_tail_is_gone_and_new_entries_follow() {
        let mut s = shape(&[(1, 1), (2, 2), (3, 2)]);
        s.truncate(1);
        assert_eq!(s.last(), Pos::new(1, 1));
        assert_eq!(s.epoch_at(2), None);
        s.push(3, 2);
        assert_eq!(s.last(), Pos::new(3, 2));
        assert_eq!(s.epoch_at(1), Some(1));
    }

    #[test]
    fn after_a_snapshot_the_log_starts_at_its_base() {
        let mut s = shape(&[(1, 1), (2, 1)]);
        s.reset(Pos::new(3, 40));
        assert_eq!(s.last(), Pos::new(3, 40));
        assert!(s.holds(Pos::new(3, 40)));
        assert_eq!(
            s.epoch_at(39),
            None,
            "before the base: replaced by the snapshot"
        );
        s.push(5, 41);
        assert_eq!(s.last(), Pos::new(5, 41));
        s.truncate(10);
        assert_eq!(s.last(), Pos::new(3, 40), "never below the base");
    }
}
