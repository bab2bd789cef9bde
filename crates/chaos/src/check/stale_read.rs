//! `stale-read`: a client's read that misses a write the same client had already seen
//! acknowledged (SPEC §8).
//!
//! Only the client's own writes count, acknowledged before the read was invoked: reads at
//! different input nodes may lag behind each other, so another client's write proves nothing.
//! A client does one operation at a time, so the writes it saw acknowledged before a read's
//! `invoke` are exactly those before the read's `ok`.
//!
//! The cost is linear in the total size of the reads: each acknowledged text gets an integer id,
//! each client keeps the set of its acknowledged ids, and a read only counts how many of its
//! texts are in that set. Only a read that counts fewer is looked at again, to name what it
//! lacks.

use std::collections::{HashMap, HashSet};

use super::{involved, texts_phrase, Listed, QUOTED};
use crate::history::{Op, Process, Type, F};
use crate::report::Anomaly;

/// The writes one client saw acknowledged.
#[derive(Debug, Default)]
struct Acked {
    /// Their ids.
    ids: HashSet<u32>,
    /// Their ids and `ok` lines, in the order they were acknowledged.
    order: Vec<(u32, usize)>,
}

/// Every client read lacking a write the same client saw acknowledged before it.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    // The id of each acknowledged text, and the texts by id.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut texts: Vec<&str> = Vec::new();
    let mut acked: HashMap<u32, Acked> = HashMap::new();
    // Each client's pending `invoke` line.
    let mut pending: HashMap<u32, usize> = HashMap::new();
    // `counted[id]`: the last read (numbered from 1) that counted `id`, so a text listed twice
    // in one read counts once.
    let mut counted: Vec<u32> = Vec::new();
    let mut reads: u32 = 0;
    let mut listed = Listed::default();

    for (index, op) in history.iter().enumerate() {
        let Process::Client(client) = op.process else {
            continue;
        };
        if op.kind == Type::Invoke {
            pending.insert(client, index);
            continue;
        }
        let invoke = pending.remove(&client).filter(|&at| history[at].f == op.f);
        match (op.f, op.kind) {
            (F::Write, Type::Ok) => {
                let Some(text) = invoke.and_then(|at| history[at].text()) else {
                    continue;
                };
                let next = texts.len() as u32;
                let id = *ids.entry(text).or_insert(next);
                if id == next {
                    texts.push(text);
                    counted.push(0);
                }
                let mine = acked.entry(client).or_default();
                if mine.ids.insert(id) {
                    mine.order.push((id, index));
                }
            }
            (F::Read, Type::Ok) => {
                let Some(mine) = acked.get(&client) else {
                    continue;
                };
                let Some(seen) = op.texts() else {
                    continue;
                };
                reads += 1;
                let mut found = 0;
                for text in seen {
                    if let Some(&id) = ids.get(text.as_str()) {
                        if counted[id as usize] != reads && mine.ids.contains(&id) {
                            counted[id as usize] = reads;
                            found += 1;
                        }
                    }
                }
                if found == mine.ids.len() {
                    continue;
                }
                if listed.is_full() {
                    listed.count();
                    continue;
                }
                // Which of its writes the read lacks, oldest first.
                let missing: Vec<(u32, usize)> = mine
                    .order
                    .iter()
                    .copied()
                    .filter(|&(id, _)| counted[id as usize] != reads)
                    .collect();
                let shown: Vec<&str> = missing
                    .iter()
                    .take(QUOTED)
                    .map(|&(id, _)| texts[id as usize])
                    .collect();
                let node = op.node.map_or_else(|| "?".to_string(), |n| n.to_string());
                let when = match invoke {
                    Some(at) => format!("invoked at {} ms", history[at].time_ms),
                    None => format!("answered at {} ms", op.time_ms),
                };
                let how_many = match (missing.len(), mine.ids.len()) {
                    (1, 1) => "the write".to_string(),
                    (m, n) if m == n => format!("all {n} writes"),
                    (m, n) => format!("{m} of the {n} writes"),
                };
                let what = format!(
                    "{}'s read at node {node} ({when}) lacks {how_many} it saw acknowledged \
                     before: {}",
                    op.process,
                    texts_phrase(&shown, missing.len())
                );
                let mut ops: Vec<_> = invoke.into_iter().map(|at| involved(history, at)).collect();
                ops.push(involved(history, index));
                ops.extend(
                    missing
                        .iter()
                        .take(QUOTED)
                        .map(|&(_, ok)| involved(history, ok)),
                );
                listed.push(Anomaly { what, ops });
            }
            _ => {}
        }
    }
    listed.finish("stale reads")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;
    use crate::history::Value;

    #[test]
    fn a_read_missing_the_clients_own_acknowledged_write_is_stale() {
        let mut h = History::new();
        h.write_ok(2, "c2-16", 4).write_ok(2, "c2-17", 4);
        h.at(6_000).read(2, 5, &["c2-16"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "client 2's read at node 5 (invoked at 6000 ms) lacks 1 of the 2 writes it saw \
             acknowledged before: \"c2-17\""
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [4, 5, 3]
        );
    }

    #[test]
    fn other_clients_writes_never_count() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        h.read(1, 5, &[]).read(0, 4, &["c0-1"]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn only_writes_acknowledged_before_the_read_count() {
        let mut h = History::new();
        h.read(0, 4, &[])
            .write_ok(0, "c0-1", 4)
            .read(0, 4, &["c0-1"]);
        assert!(find(&h.ops()).is_empty());
        h.read(0, 5, &[]);
        assert_eq!(find(&h.ops()).len(), 1);
    }

    #[test]
    fn failed_and_unknown_writes_need_not_be_read() {
        let mut h = History::new();
        h.write_fail(0, "c0-1")
            .write_info(0, "c0-2")
            .read(0, 4, &[]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn a_failed_or_unknown_read_is_not_judged() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        let message = || Value::Text("504: timeout".into());
        h.invoke_read(0)
            .line(Process::Client(0), Type::Info, F::Read, message(), None);
        h.invoke_read(0)
            .line(Process::Client(0), Type::Fail, F::Read, message(), None);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn a_text_listed_twice_counts_once() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4).write_ok(0, "c0-2", 4);
        h.read(0, 4, &["c0-1", "c0-1"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert!(found[0]
            .what
            .ends_with("lacks 1 of the 2 writes it saw acknowledged before: \"c0-2\""));
    }

    #[test]
    fn many_missing_texts_are_quoted_up_to_ten() {
        let mut h = History::new();
        for n in 0..25 {
            h.write_ok(0, &format!("c0-{n}"), 4);
        }
        h.read(0, 4, &["c0-0"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert!(
            found[0].what.contains("lacks 24 of the 25 writes"),
            "{}",
            found[0].what
        );
        assert!(
            found[0].what.ends_with("\"c0-10\" and 14 more"),
            "{}",
            found[0].what
        );
        assert_eq!(found[0].ops.len(), 2 + QUOTED);
    }

    #[test]
    fn reads_that_hold_every_own_write_pass() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4).write_ok(1, "c1-1", 5);
        h.read(0, 4, &["c1-1", "c0-1", "other"])
            .write_ok(0, "c0-2", 4);
        h.read(0, 6, &["c0-1", "c0-2"]).read(1, 5, &["c1-1"]);
        assert!(find(&h.ops()).is_empty());
    }
}
