//! `split-brain`: two nodes writer of the same epoch (SPEC §8, from the `epoch` lines).
//!
//! Only a component holding a strict majority has a writer, and two components cannot both hold
//! one, so one epoch has at most one writer. (Two components may share an epoch number; only the
//! majority's root is its writer, the other's root takes `leader`.) One anomaly per epoch.

use std::collections::BTreeMap;

use labctl_core::NodeId;

use super::{involved, nodes_phrase, Listed};
use crate::history::{Op, F};
use crate::report::Anomaly;

/// Every epoch in which two or more nodes were seen with the `writer` role.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    // Epoch → each node seen as its writer → the first line showing it.
    let mut writers: BTreeMap<u64, BTreeMap<NodeId, usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        if op.f != F::Epoch {
            continue;
        }
        let (Some(view), Some(node)) = (op.epoch(), op.node) else {
            continue;
        };
        if view.is_writer() {
            writers
                .entry(view.epoch)
                .or_default()
                .entry(node)
                .or_insert(index);
        }
    }
    let mut listed = Listed::default();
    for (epoch, nodes) in writers {
        if nodes.len() < 2 {
            continue;
        }
        if listed.is_full() {
            listed.count();
            continue;
        }
        let mut firsts: Vec<(NodeId, usize)> = nodes.into_iter().collect();
        firsts.sort_by_key(|&(_, index)| index);
        let names: Vec<Option<NodeId>> = firsts.iter().map(|&(node, _)| Some(node)).collect();
        let since: Vec<String> = firsts
            .iter()
            .map(|&(node, index)| format!("node {node} from {} ms", history[index].time_ms))
            .collect();
        let all = if firsts.len() == 2 { "both" } else { "all" };
        listed.push(Anomaly {
            what: format!(
                "{} were {all} writer of epoch {epoch} ({})",
                nodes_phrase(&names),
                since.join(", ")
            ),
            ops: firsts
                .iter()
                .map(|&(_, index)| involved(history, index))
                .collect(),
        });
    }
    listed.finish("epochs with several writers")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn two_writers_of_one_epoch_is_split_brain() {
        let mut h = History::new();
        h.epoch(1, 3, 1, &["writer"])
            .epoch(2, 3, 1, &["persistence"]);
        h.at(5_012)
            .epoch(4, 3, 4, &["writer"])
            .epoch(1, 3, 1, &["writer"]);
        h.epoch(4, 3, 4, &["writer"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "nodes 1 and 4 were both writer of epoch 3 (node 1 from 0 ms, node 4 from 5012 ms)"
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn one_anomaly_per_epoch() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"])
            .epoch(2, 1, 2, &["writer"])
            .epoch(3, 1, 3, &["writer"]);
        h.epoch(1, 2, 1, &["writer"]).epoch(2, 2, 2, &["writer"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 2);
        assert!(found[0]
            .what
            .starts_with("nodes 1, 2 and 3 were all writer of epoch 1"));
        assert!(found[1]
            .what
            .starts_with("nodes 1 and 2 were both writer of epoch 2"));
    }

    #[test]
    fn successive_writers_and_minority_leaders_pass() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"])
            .epoch(2, 1, 1, &["persistence"]);
        // A partition: node 6 alone leads its minority in the same epoch number as the majority.
        h.epoch(2, 2, 2, &["writer"])
            .epoch(6, 2, 6, &["leader", "input"]);
        // The old writer, back, follows the new one.
        h.epoch(1, 3, 1, &["writer"])
            .epoch(2, 3, 1, &["persistence"]);
        assert!(find(&h.ops()).is_empty());
    }
}
