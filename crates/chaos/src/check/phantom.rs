//! `phantom`: a text seen that no client ever wrote, or a write that failed (a 4xx or a 503:
//! "not done") and is seen anyway (SPEC §8).
//!
//! Every `ok` read and final read is looked at. A write whose outcome is unknown (`info`, or
//! still running when the history ends) may or may not appear: never an anomaly. One anomaly
//! per text, naming the first read that saw it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::{client_ops, involved, is_read_ok, read_phrase, Listed};
use crate::history::{Op, Type, F};
use crate::report::Anomaly;

/// What the clients did with a text.
#[derive(Clone, Copy, Debug)]
enum Written {
    /// At least one write of it was acknowledged or has an unknown outcome: it may be seen.
    Maybe,
    /// Every write of it failed: its (first) `invoke` and `fail` lines.
    Failed { invoke: usize, fail: usize },
}

/// A text that should not have been seen: the first read that saw it and how many did.
#[derive(Clone, Copy, Debug)]
struct Seen {
    first: usize,
    reads: usize,
    last: usize,
}

/// Every text seen that no client wrote, or whose every write failed.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    let mut written: HashMap<&str, Written> = HashMap::new();
    for op in client_ops(history) {
        if op.f != F::Write {
            continue;
        }
        let Some(text) = op.text(history) else {
            continue;
        };
        let this = match (op.outcome(history), op.completion) {
            (Type::Fail, Some(fail)) => Written::Failed {
                invoke: op.invoke,
                fail,
            },
            _ => Written::Maybe,
        };
        match written.entry(text) {
            Entry::Vacant(entry) => {
                entry.insert(this);
            }
            Entry::Occupied(mut entry) => {
                if matches!(this, Written::Maybe) {
                    entry.insert(this);
                }
            }
        }
    }

    // The texts that should not have been seen, in the order they were first seen.
    let mut seen: HashMap<&str, Seen> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (index, op) in history.iter().enumerate() {
        if !is_read_ok(op) {
            continue;
        }
        for text in op.texts().unwrap_or_default() {
            if let Some(Written::Maybe) = written.get(text.as_str()) {
                continue;
            }
            match seen.entry(text) {
                Entry::Vacant(entry) => {
                    entry.insert(Seen {
                        first: index,
                        reads: 1,
                        last: index,
                    });
                    order.push(text);
                }
                Entry::Occupied(mut entry) => {
                    let seen = entry.get_mut();
                    if seen.last != index {
                        seen.reads += 1;
                        seen.last = index;
                    }
                }
            }
        }
    }

    let mut listed = Listed::default();
    for text in order {
        if listed.is_full() {
            listed.count();
            continue;
        }
        let seen = seen[text];
        let read = &history[seen.first];
        let also = match seen.reads {
            1 => String::new(),
            2 => " (and in 1 more read)".to_string(),
            n => format!(" (and in {} more reads)", n - 1),
        };
        let seen_at = format!("{}{also}", read_phrase(read));
        listed.push(match written.get(text) {
            Some(Written::Failed { invoke, fail }) => {
                let message = match history[*fail].text() {
                    Some(message) => format!(" ({message:?})"),
                    None => String::new(),
                };
                Anomaly {
                    what: format!(
                        "write {text:?} failed at {} ms{message} but was read {seen_at}",
                        history[*fail].time_ms
                    ),
                    ops: vec![
                        involved(history, *invoke),
                        involved(history, *fail),
                        involved(history, seen.first),
                    ],
                }
            }
            _ => Anomaly {
                what: format!("text {text:?} was read {seen_at} but no client wrote it"),
                ops: vec![involved(history, seen.first)],
            },
        });
    }
    listed.finish("phantom texts")
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn a_text_nobody_wrote_is_a_phantom() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        h.at(6_000).read(3, 4, &["c0-1", "ghost"]);
        h.read(1, 5, &["ghost"]);
        h.final_read(4, &["c0-1", "ghost"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "text \"ghost\" was read by client 3 at node 4 at 6010 ms (and in 2 more reads) \
             but no client wrote it"
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [3]
        );
    }

    #[test]
    fn a_failed_write_seen_later_is_a_phantom() {
        let mut h = History::new();
        h.at(5_000).write_fail(2, "c2-9");
        h.final_read(4, &["c2-9"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "write \"c2-9\" failed at 5010 ms (\"503: this part of the lab holds 2 of 6 nodes\") \
             but was read in the final read of node 4 at 5020 ms"
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_failed_write_seen_while_it_ran_is_a_phantom_too() {
        let mut h = History::new();
        h.invoke_write(0, "c0-1").read(1, 4, &["c0-1"]);
        h.end_write(0, Type::Fail, "503");
        assert_eq!(find(&h.ops()).len(), 1);
    }

    #[test]
    fn unknown_and_acknowledged_writes_may_be_seen() {
        let mut h = History::new();
        h.write_info(0, "c0-1")
            .write_ok(1, "c1-1", 4)
            .invoke_write(2, "c2-1");
        h.read(1, 4, &["c0-1", "c1-1", "c2-1"]);
        h.final_read(4, &["c0-1", "c1-1", "c2-1"]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn a_failed_write_not_seen_passes() {
        let mut h = History::new();
        h.write_fail(0, "c0-1").read(0, 4, &[]).final_read(4, &[]);
        assert!(find(&h.ops()).is_empty());
    }

    #[test]
    fn a_failure_message_is_not_a_text_written() {
        // The `fail` line's value is a message; a read showing that message is still a phantom.
        let mut h = History::new();
        h.write_fail(0, "c0-1");
        h.final_read(4, &["503: this part of the lab holds 2 of 6 nodes"]);
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert!(
            found[0].what.contains("no client wrote it"),
            "{}",
            found[0].what
        );
    }
}
