//! `lost`: a write acknowledged (`ok`) but missing from a final read (SPEC §8).
//!
//! The final reads come after convergence and after every live node has applied the writer's
//! committed log, so each must hold every acknowledged write. One anomaly per write, naming the
//! nodes whose final read lacks it. With no `ok` final read there is nothing to judge by: no
//! anomaly (the runner calls such a run unknown).

use std::collections::HashSet;

use super::{client_ops, final_reads, involved, nodes_phrase, Listed};
use crate::history::{Op, Type, F};
use crate::report::Anomaly;

/// Every acknowledged write missing from at least one `ok` final read.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    let finals: Vec<_> = final_reads(history)
        .into_iter()
        .map(|(index, node, texts)| {
            let texts: HashSet<&str> = texts.iter().map(String::as_str).collect();
            (index, node, texts)
        })
        .collect();
    if finals.is_empty() {
        return Vec::new();
    }
    let mut listed = Listed::default();
    for op in client_ops(history) {
        if op.f != F::Write || op.outcome(history) != Type::Ok {
            continue;
        }
        let (Some(text), Some(ok)) = (op.text(history), op.completion) else {
            continue;
        };
        let lacking: Vec<_> = finals
            .iter()
            .filter(|(_, _, texts)| !texts.contains(text))
            .collect();
        if lacking.is_empty() {
            continue;
        }
        if listed.is_full() {
            listed.count();
            continue;
        }
        let mut nodes: Vec<_> = lacking.iter().map(|(_, node, _)| *node).collect();
        nodes.dedup();
        let whose = if lacking.len() == 1 {
            format!("the final read of {} lacks it", nodes_phrase(&nodes))
        } else {
            format!("the final reads of {} lack it", nodes_phrase(&nodes))
        };
        let mut ops = vec![involved(history, op.invoke), involved(history, ok)];
        ops.extend(
            lacking
                .iter()
                .map(|(index, _, _)| involved(history, *index)),
        );
        listed.push(Anomaly {
            what: format!(
                "write {text:?} was acknowledged at {} ms but {whose}",
                history[ok].time_ms
            ),
            ops,
        });
    }
    listed.finish("lost writes")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn an_acknowledged_write_missing_from_final_reads_is_lost() {
        let mut h = History::new();
        h.write_ok(2, "c2-16", 4);
        h.at(5_002).write_ok(2, "c2-17", 5);
        h.final_read(4, &["c2-16"]).final_read(5, &["c2-16"]);
        h.final_read(6, &["c2-16", "c2-17"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "write \"c2-17\" was acknowledged at 5012 ms but the final reads of nodes 4 and 5 lack it"
        );
        let indexes: Vec<usize> = found[0].ops.iter().map(|o| o.index).collect();
        assert_eq!(indexes, [2, 3, 4, 5]);
    }

    #[test]
    fn one_lacking_final_read_is_named() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        h.final_read(4, &["c0-1"]).final_read(5, &[]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .what
                .ends_with("but the final read of node 5 lacks it"),
            "{}",
            found[0].what
        );
    }

    #[test]
    fn failed_unknown_and_unfinished_writes_may_be_missing() {
        let mut h = History::new();
        h.write_fail(0, "c0-1")
            .write_info(1, "c1-1")
            .invoke_write(2, "c2-1");
        h.final_read(4, &[]).final_read(5, &["c1-1"]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn every_acknowledged_write_in_every_final_read_passes() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4)
            .write_ok(1, "c1-1", 5)
            .write_ok(0, "c0-2", 4);
        h.final_read(4, &["c1-1", "c0-1", "c0-2"])
            .final_read(5, &["c0-1", "c1-1", "c0-2"]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn without_a_final_read_nothing_is_lost() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn many_lost_writes_are_capped() {
        let mut h = History::new();
        for n in 0..130 {
            h.write_ok(0, &format!("c0-{n}"), 4);
        }
        h.final_read(4, &[]);
        let found = find(&h.ops());
        assert_eq!(found.len(), super::super::LIMIT);
        assert!(found[99]
            .what
            .ends_with("(and 30 more lost writes, not listed)"));
    }
}
