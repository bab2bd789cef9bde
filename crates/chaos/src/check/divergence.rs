//! `divergence`: input nodes whose final reads differ (SPEC §8).
//!
//! After convergence every live node has applied the writer's committed log, so every input
//! node reads the same texts in the same order. The final reads are compared as lists; one
//! anomaly names the nodes grouped by identical content and quotes the texts that are not in
//! every final read (or, when only the order differs, the first position that differs).

use std::collections::{HashMap, HashSet};

use labctl_core::NodeId;

use super::{final_reads, involved, nodes_phrase, texts_phrase, QUOTED};
use crate::history::Op;
use crate::report::Anomaly;

/// Final reads with the same texts in the same order.
struct Group<'h> {
    texts: &'h [String],
    nodes: Vec<Option<NodeId>>,
}

/// One anomaly if the `ok` final reads do not all hold the same list of texts.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    let finals = final_reads(history);
    let mut groups: Vec<Group> = Vec::new();
    for &(_, node, texts) in &finals {
        match groups.iter_mut().find(|g| g.texts == texts) {
            Some(group) => {
                if !group.nodes.contains(&node) {
                    group.nodes.push(node);
                }
            }
            None => groups.push(Group {
                texts,
                nodes: vec![node],
            }),
        }
    }
    if groups.len() < 2 {
        return Vec::new();
    }

    let read: Vec<String> = groups
        .iter()
        .map(|g| {
            let texts = if g.texts.len() == 1 { "text" } else { "texts" };
            format!("{} read {} {texts}", nodes_phrase(&g.nodes), g.texts.len())
        })
        .collect();

    // In how many groups each text is: those in fewer than all differ.
    let mut in_groups: HashMap<&str, usize> = HashMap::new();
    for group in &groups {
        let distinct: HashSet<&str> = group.texts.iter().map(String::as_str).collect();
        for text in distinct {
            *in_groups.entry(text).or_default() += 1;
        }
    }
    let mut differ: Vec<&str> = Vec::new();
    let mut quoted: HashSet<&str> = HashSet::new();
    for group in &groups {
        for text in group.texts {
            if in_groups[text.as_str()] < groups.len() && quoted.insert(text) {
                differ.push(text);
            }
        }
    }
    let how = if differ.is_empty() {
        // Same texts, listed differently: in another order, or one listed twice.
        let (a, b) = (groups[0].texts, groups[1].texts);
        let position = a
            .iter()
            .zip(b)
            .position(|(a, b)| a != b)
            .unwrap_or(a.len().min(b.len()));
        let at = |texts: &[String]| {
            texts
                .get(position)
                .map_or_else(|| "the end".to_string(), |t| format!("{t:?}"))
        };
        format!(
            "they hold the same texts, listed differently from position {position} ({} and {})",
            at(a),
            at(b)
        )
    } else {
        let shown: Vec<&str> = differ.iter().take(QUOTED).copied().collect();
        format!(
            "not in every final read: {}",
            texts_phrase(&shown, differ.len())
        )
    };
    vec![Anomaly {
        what: format!("the final reads differ: {}; {how}", read.join(", ")),
        ops: finals
            .iter()
            .map(|&(index, _, _)| involved(history, index))
            .collect(),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn final_reads_that_differ_diverge() {
        let mut h = History::new();
        h.final_read(4, &["a", "b", "c"]).final_read(5, &["a", "c"]);
        h.final_read(6, &["a", "b", "c"])
            .final_read(7, &["a", "c", "d"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "the final reads differ: nodes 4 and 6 read 3 texts, node 5 read 2 texts, \
             node 7 read 3 texts; not in every final read: \"b\", \"d\""
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn the_same_texts_in_another_order_diverge() {
        let mut h = History::new();
        h.final_read(4, &["a", "b", "c"])
            .final_read(5, &["a", "c", "b"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .what
                .ends_with("the same texts, listed differently from position 1 (\"b\" and \"c\")"),
            "{}",
            found[0].what
        );
    }

    #[test]
    fn a_text_listed_twice_diverges() {
        let mut h = History::new();
        h.final_read(4, &["a", "b", "b"]).final_read(5, &["a", "b"]);
        let found = find(&h.ops());
        assert!(
            found[0]
                .what
                .ends_with("from position 2 (\"b\" and the end)"),
            "{}",
            found[0].what
        );
    }

    #[test]
    fn many_differing_texts_are_quoted_up_to_ten() {
        let mut h = History::new();
        let many: Vec<String> = (0..15).map(|n| format!("t{n}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        h.final_read(4, &many).final_read(5, &[]);
        let found = find(&h.ops());
        assert!(
            found[0].what.ends_with("\"t9\" and 5 more"),
            "{}",
            found[0].what
        );
    }

    #[test]
    fn identical_final_reads_pass() {
        let mut h = History::new();
        h.final_read(4, &["a", "b"])
            .final_read(5, &["a", "b"])
            .final_read(6, &["a", "b"]);
        assert!(find(&h.ops()).is_empty());
        let mut h = History::new();
        h.final_read(4, &["a"]);
        assert!(find(&h.ops()).is_empty());
    }
}
