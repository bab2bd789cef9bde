//! The checker: a pure function of a history (Jepsen's checker protocol). History in,
//! anomalies out; each anomaly kind of SPEC §8 is its own module with its own tests.
//!
//! Every module has one `find(history, …) -> Vec<Anomaly>`, built on the same few facts:
//!
//! - a client does one operation at a time, so an operation's completion (`ok`, `fail`,
//!   `info`) is the next line of the same client after its `invoke` ([`client_ops()`]);
//! - a write's text is the value of its `invoke` (a `fail` or `info` carries a message instead);
//! - an `info` is an unknown outcome, never counted as failed: its write may or may not appear.
//!
//! No kind lists more than [`LIMIT`] anomalies; the last one listed says how many more there were.

pub mod client_ops;
pub mod divergence;
pub mod lost;
pub mod no_convergence;
pub mod phantom;
pub mod slow_failover;
pub mod split_brain;
pub mod stale_read;

#[cfg(test)]
pub(crate) mod fixture;

use labctl_core::NodeId;
use serde_json::json;

use crate::history::{Op, Process, Type, Value, F};
use crate::report::{Anomalies, Anomaly, Involved, Kind};

pub use client_ops::{client_ops, ClientOp};

/// What the scenario asks beyond the anomalies every run is checked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `[check] failover_within_s`, in milliseconds: a writer loss whose next acknowledged write
    /// comes later is a `slow-failover`.
    pub failover_within_ms: Option<u64>,
}

/// Check a history: every anomaly of every kind (kinds with none left out).
pub fn check(history: &[Op], options: &Options) -> Anomalies {
    let mut anomalies = Anomalies::new();
    let mut add = |kind: Kind, found: Vec<Anomaly>| {
        if !found.is_empty() {
            anomalies.insert(kind, found);
        }
    };
    add(Kind::Lost, lost::find(history));
    add(Kind::Phantom, phantom::find(history));
    add(Kind::StaleRead, stale_read::find(history));
    add(Kind::SplitBrain, split_brain::find(history));
    add(Kind::Divergence, divergence::find(history));
    add(Kind::NoConvergence, no_convergence::find(history));
    if let Some(limit_ms) = options.failover_within_ms {
        add(Kind::SlowFailover, slow_failover::find(history, limit_ms));
    }
    anomalies
}

/// The most anomalies of one kind a report lists; the last one listed counts the rest.
pub const LIMIT: usize = 100;

/// Texts quoted in one anomaly at most (missing writes, differing texts).
pub const QUOTED: usize = 10;

/// The anomalies of one kind found so far: at most [`LIMIT`] listed, the rest only counted.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    anomalies: Vec<Anomaly>,
    more: usize,
}

impl Listed {
    /// Whether the list is full: a further anomaly is only counted ([`Listed::count`]), so a
    /// finder can skip building it.
    pub(crate) fn is_full(&self) -> bool {
        self.anomalies.len() >= LIMIT
    }

    /// One more anomaly: listed, or counted once the list is full.
    pub(crate) fn push(&mut self, anomaly: Anomaly) {
        if self.is_full() {
            self.more += 1;
        } else {
            self.anomalies.push(anomaly);
        }
    }

    /// One more anomaly, not listed (the list is full).
    pub(crate) fn count(&mut self) {
        self.more += 1;
    }

    /// The list, its last `what` saying how many more `plural` were left out.
    pub(crate) fn finish(mut self, plural: &str) -> Vec<Anomaly> {
        if self.more > 0 {
            if let Some(last) = self.anomalies.last_mut() {
                last.what
                    .push_str(&format!(" (and {} more {plural}, not listed)", self.more));
            }
        }
        self.anomalies
    }
}

/// An operation of the history as an anomaly names it: a read's texts are replaced by their
/// number (`{"texts": 120}`), so a report stays small however long the reads were.
pub fn involved(history: &[Op], index: usize) -> Involved {
    let op = &history[index];
    let value = match &op.value {
        Value::Texts(texts) => Value::Other(json!({ "texts": texts.len() })),
        other => other.clone(),
    };
    Involved {
        index,
        op: Op {
            time_ms: op.time_ms,
            process: op.process,
            kind: op.kind,
            f: op.f,
            value,
            node: op.node,
        },
    }
}

/// `node 4`, `nodes 4 and 5`, `nodes 4, 5 and 6` (a node not named is `?`).
pub(crate) fn nodes_phrase(nodes: &[Option<NodeId>]) -> String {
    let names: Vec<String> = nodes
        .iter()
        .map(|n| n.map_or_else(|| "?".to_string(), |n| n.to_string()))
        .collect();
    match names.as_slice() {
        [] => "no node".to_string(),
        [one] => format!("node {one}"),
        [init @ .., last] => format!("nodes {} and {last}", init.join(", ")),
    }
}

/// Texts quoted and separated by commas: `"c1-3", "c2-9"`, then `… and N more` past `shown`.
pub(crate) fn texts_phrase(texts: &[&str], total: usize) -> String {
    let mut phrase = texts
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if total > texts.len() {
        phrase.push_str(&format!(" and {} more", total - texts.len()));
    }
    phrase
}

/// Where and when a read happened, for a sentence: `by client 3 at node 4 at 6000 ms`, or
/// `in the final read of node 4 at 9000 ms`.
pub(crate) fn read_phrase(op: &Op) -> String {
    let node = op.node.map_or_else(|| "?".to_string(), |n| n.to_string());
    match (op.process, op.f) {
        (_, F::FinalRead) => format!("in the final read of node {node} at {} ms", op.time_ms),
        (Process::Client(_), _) => {
            format!("by {} at node {node} at {} ms", op.process, op.time_ms)
        }
        _ => format!("by {} at {} ms", op.process, op.time_ms),
    }
}

/// Whether the line is a read that saw something: a client's `ok` read or an `ok` final read.
pub(crate) fn is_read_ok(op: &Op) -> bool {
    op.kind == Type::Ok
        && match op.f {
            F::Read => matches!(op.process, Process::Client(_)),
            F::FinalRead => true,
            _ => false,
        }
}

/// The `ok` final reads: (line, node, texts).
pub(crate) fn final_reads(history: &[Op]) -> Vec<(usize, Option<NodeId>, &[String])> {
    history
        .iter()
        .enumerate()
        .filter(|(_, op)| op.f == F::FinalRead && op.kind == Type::Ok)
        .filter_map(|(index, op)| op.texts().map(|texts| (index, op.node, texts)))
        .collect()
}

#[cfg(test)]
mod tests {
    use labctl_fault::{Fault, Target};

    use super::fixture::History;
    use super::*;

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]).epoch(4, 1, 1, &["input"]);
        h.write_ok(0, "c0-1", 4).write_ok(1, "c1-1", 4);
        h.read(0, 4, &["c0-1", "c1-1"]);
        h.fault(Fault::Kill {
            node: Target::Id(1),
        });
        h.epoch(2, 2, 2, &["writer"]);
        h.write_ok(1, "c1-2", 4);
        h.converge_ok();
        h.final_read(4, &["c0-1", "c1-1", "c1-2"]);
        h.final_read(5, &["c0-1", "c1-1", "c1-2"]);
        let options = Options {
            failover_within_ms: Some(2_000),
        };
        assert_eq!(check(&h.ops(), &options), Anomalies::new());
    }

    #[test]
    fn every_kind_is_reported_under_its_name() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]).epoch(2, 1, 2, &["writer"]);
        h.write_ok(0, "c0-1", 4);
        h.read(0, 4, &["ghost"]);
        h.fault(Fault::Kill {
            node: Target::Id(2),
        });
        h.at(10_000).write_ok(0, "c0-2", 4);
        h.converge_fail("node 3 is still in epoch 1");
        h.final_read(4, &["c0-2"]).final_read(5, &[]);
        let options = Options {
            failover_within_ms: Some(2_000),
        };
        let kinds: Vec<Kind> = check(&h.ops(), &options).into_keys().collect();
        assert_eq!(kinds, Kind::ALL.to_vec());
    }

    #[test]
    fn slow_failover_is_only_checked_when_asked() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.fault(Fault::Kill {
            node: Target::Id(1),
        });
        h.at(10_000).write_ok(0, "c0-1", 4);
        h.final_read(4, &["c0-1"]);
        assert!(check(&h.ops(), &Options::default()).is_empty());
        let options = Options {
            failover_within_ms: Some(2_000),
        };
        let found = check(&h.ops(), &options);
        assert_eq!(
            found.keys().copied().collect::<Vec<_>>(),
            [Kind::SlowFailover]
        );
    }

    #[test]
    fn a_read_is_involved_without_its_texts() {
        let mut h = History::new();
        h.read(0, 4, &["a", "b", "c"]);
        let involved = involved(&h.ops(), 1);
        assert_eq!(involved.index, 1);
        assert_eq!(involved.op.value, Value::Other(json!({"texts": 3})));
        let line = serde_json::to_string(&involved).unwrap();
        assert!(line.contains(r#""value":{"texts":3}"#), "{line}");
        let back: Involved = serde_json::from_str(&line).unwrap();
        assert_eq!(back, involved);
    }

    #[test]
    fn a_full_list_counts_the_rest_in_its_last_anomaly() {
        let mut listed = Listed::default();
        for n in 0..LIMIT + 3 {
            listed.push(Anomaly {
                what: format!("anomaly {n}"),
                ops: Vec::new(),
            });
        }
        let list = listed.finish("lost writes");
        assert_eq!(list.len(), LIMIT);
        assert_eq!(
            list[LIMIT - 1].what,
            "anomaly 99 (and 3 more lost writes, not listed)"
        );
    }

    #[test]
    fn phrases() {
        assert_eq!(nodes_phrase(&[Some(4)]), "node 4");
        assert_eq!(nodes_phrase(&[Some(4), Some(5)]), "nodes 4 and 5");
        assert_eq!(nodes_phrase(&[Some(4), None, Some(6)]), "nodes 4, ? and 6");
        assert_eq!(texts_phrase(&["a", "b"], 5), r#""a", "b" and 3 more"#);
    }
}
