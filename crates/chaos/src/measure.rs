//! Figures derived from a history: each fault's timings, the failovers, the operation counts.
//!
//! All of them read the same lines as the checker: the nemesis's `ok` fault lines (the fault
//! as applied, `leader` resolved), the lab's `epoch` lines and the clients' writes, whose
//! `invoke` and completion pair by process order ([`crate::check::client_ops()`]).

use std::collections::{BTreeMap, HashSet};

use labctl_core::NodeId;
use labctl_fault::Fault;

use crate::check::client_ops;
use crate::history::{Op, Process, Type, F};
use crate::report::{FaultTiming, OpCounts};

/// A write acknowledged: its `invoke` and `ok` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Its `invoke` line.
    pub invoke: usize,
    /// Its `ok` line.
    pub ok: usize,
}

/// A writer loss and how long the lab took to acknowledge a write again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The fault's `ok` line.
    pub fault: usize,
    /// When it was applied, in milliseconds since the workload started.
    pub at_ms: u64,
    /// The writer it took away.
    pub writer: NodeId,
    /// The first write invoked after the fault to be acknowledged once a writer of a newer epoch
    /// was seen (`None`: none was).
    pub write: Option<Ack>,
    /// From the fault to that acknowledgement, in milliseconds.
    pub ms: Option<u64>,
}

/// Each fault the nemesis applied (`ok` fault lines), with its timings.
///
/// Times count from the fault's `ok` line. A fault acts between its `invoke` and its `ok`, so
/// it spans from its `invoke` (if the nemesis wrote one) until the next applied fault's. Let E
/// be the highest epoch of the `epoch` lines before the fault. `detected_ms` is the first
/// `epoch` line after it with an epoch above E, `new_leader_ms` the first such line with the
/// `writer` role, both looked for only until the next fault. `next_write_ms` is the first
/// acknowledgement of a write invoked after the fault (its `ok`), however late it comes.
pub fn fault_timings(history: &[Op]) -> Vec<FaultTiming> {
    // (its first line: the `invoke` before its `ok` if there is one, its `ok` line, the fault).
    let mut faults: Vec<(usize, usize, &Fault)> = Vec::new();
    let mut invoked: Option<usize> = None;
    for (index, op) in history.iter().enumerate() {
        if op.process != Process::Nemesis {
            continue;
        }
        if let Some(fault) = fault_applied(op) {
            faults.push((invoked.unwrap_or(index), index, fault));
        }
        invoked = (op.f == F::Fault && op.kind == Type::Invoke).then_some(index);
    }
    // (line, epoch, writer?) of every epoch line.
    let epochs: Vec<(usize, u64, bool)> = history
        .iter()
        .enumerate()
        .filter(|(_, op)| op.f == F::Epoch && op.node.is_some())
        .filter_map(|(index, op)| op.epoch().map(|v| (index, v.epoch, v.is_writer())))
        .collect();
    let acks = acks(history);

    let mut timings = Vec::with_capacity(faults.len());
    let mut seen = 0; // the epoch lines before the current fault
    let mut highest: Option<u64> = None;
    for (k, &(first, at, fault)) in faults.iter().enumerate() {
        while seen < epochs.len() && epochs[seen].0 < first {
            highest = highest.max(Some(epochs[seen].1));
            seen += 1;
        }
        let at_ms = history[at].time_ms;
        let after = |line: usize| history[line].time_ms.saturating_sub(at_ms);
        let until = faults
            .get(k + 1)
            .map_or(history.len(), |&(next, _, _)| next);
        let mut newer = epochs[seen..]
            .iter()
            .take_while(|&&(line, _, _)| line < until)
            // Above E (any epoch, if none was seen before the fault: None < Some).
            .filter(|&&(_, epoch, _)| Some(epoch) > highest);
        let detected = newer.next().copied();
        let new_leader = match detected {
            Some((_, _, true)) => detected,
            _ => newer.find(|&&(_, _, writer)| writer).copied(),
        };
        timings.push(FaultTiming {
            fault: fault.clone(),
            at_ms,
            detected_ms: detected.map(|(line, _, _)| after(line)),
            new_leader_ms: new_leader.map(|(line, _, _)| after(line)),
            next_write_ms: first_ack_after(&acks, at).map(|ack| after(ack.ok)),
        });
    }
    timings
}

/// Each writer loss, and the first write invoked after it to be acknowledged.
///
/// The writer at a fault is, of each node's latest `epoch` line, the one with the `writer` role
/// in the highest epoch, among the nodes not down (killed or paused, and not since restarted,
/// resumed or healed). A fault loses it if it kills, pauses or restarts that node, or is a
/// partition where the writer's group holds no strict majority of all nodes (the groups hold
/// every node once). Cuts are not counted: whether one splits the lab depends on the topology.
pub fn failovers(history: &[Op]) -> Vec<Failover> {
    let acks = acks(history);
    // Each node's latest epoch line: (epoch, writer?, line).
    let mut views: BTreeMap<NodeId, (u64, bool, usize)> = BTreeMap::new();
    let mut down: HashSet<NodeId> = HashSet::new();
    let mut found = Vec::new();
    for (index, op) in history.iter().enumerate() {
        if op.f == F::Epoch {
            if let (Some(view), Some(node)) = (op.epoch(), op.node) {
                views.insert(node, (view.epoch, view.is_writer(), index));
            }
            continue;
        }
        let Some(fault) = fault_applied(op) else {
            continue;
        };
        let writer = views
            .iter()
            .filter(|&(node, &(_, writer, _))| writer && !down.contains(node))
            .max_by_key(|&(_, &(epoch, _, line))| (epoch, line))
            .map(|(&node, _)| node);
        if let Some(writer) = writer.filter(|&writer| loses(fault, writer)) {
            // The failover is over when a new writer acknowledges: an acknowledgement that
            // completes once a writer of a newer epoch is seen (before that, an old writer cut
            // off in a minority may still acknowledge, until it notices; those writes are the
            // ones `replicas` can lose, not a failover).
            let newest = views
                .values()
                .map(|&(epoch, _, _)| epoch)
                .max()
                .unwrap_or(0);
            let new_writer = history[index..]
                .iter()
                .position(|o| {
                    o.f == F::Epoch && o.epoch().is_some_and(|v| v.is_writer() && v.epoch > newest)
                })
                .map(|offset| index + offset);
            let write = new_writer.and_then(|line| {
                let start = acks.partition_point(|ack| ack.ok <= line);
                acks[start..].iter().find(|ack| ack.invoke > index).copied()
            });
            found.push(Failover {
                fault: index,
                at_ms: op.time_ms,
                writer,
                write,
                ms: write.map(|ack| history[ack.ok].time_ms.saturating_sub(op.time_ms)),
            });
        }
        match fault {
            Fault::Kill { node } | Fault::Pause { node } => down.extend(node.id()),
            Fault::Restart { node } | Fault::Resume { node } => {
                if let Some(node) = node.id() {
                    down.remove(&node);
                }
            }
            Fault::HealAll => down.clear(),
            _ => {}
        }
    }
    found
}

/// Each writer loss → the next acknowledged write, in milliseconds (a loss never followed by
/// an acknowledged write is left out; [`failovers`] has it).
pub fn failovers_ms(history: &[Op]) -> Vec<u64> {
    failovers(history).iter().filter_map(|f| f.ms).collect()
}

/// Client operations by outcome: their `ok`, `fail` and `info` lines.
pub fn op_counts(history: &[Op]) -> OpCounts {
    let mut counts = OpCounts::default();
    for op in history {
        if !matches!(op.process, Process::Client(_)) {
            continue;
        }
        match op.kind {
            Type::Ok => counts.ok += 1,
            Type::Fail => counts.fail += 1,
            Type::Info => counts.info += 1,
            Type::Invoke => {}
        }
    }
    counts
}

/// The fault of a nemesis `ok` fault line.
fn fault_applied(op: &Op) -> Option<&Fault> {
    if op.process == Process::Nemesis && op.f == F::Fault && op.kind == Type::Ok {
        op.fault()
    } else {
        None
    }
}

/// Whether `fault` takes the writer away.
fn loses(fault: &Fault, writer: NodeId) -> bool {
    match fault {
        Fault::Kill { node } | Fault::Pause { node } | Fault::Restart { node } => {
            node.id() == Some(writer)
        }
        Fault::Partition { groups } => {
            let nodes: usize = groups.iter().map(Vec::len).sum();
            groups
                .iter()
                .find(|group| group.contains(&writer))
                .is_some_and(|group| group.len() * 2 <= nodes)
        }
        _ => false,
    }
}

/// Every acknowledged write, in the order of their `ok` lines.
fn acks(history: &[Op]) -> Vec<Ack> {
    let mut acks: Vec<Ack> = client_ops(history)
        .into_iter()
        .filter(|op| op.f == F::Write && op.outcome(history) == Type::Ok)
        .filter_map(|op| {
            op.completion.map(|ok| Ack {
                invoke: op.invoke,
                ok,
            })
        })
        .collect();
    acks.sort_unstable_by_key(|ack| ack.ok);
    acks
}

/// The first acknowledgement of a write invoked after line `after`.
fn first_ack_after(acks: &[Ack], after: usize) -> Option<Ack> {
    let start = acks.partition_point(|ack| ack.ok <= after);
    acks[start..].iter().find(|ack| ack.invoke > after).copied()
}

#[cfg(test)]
mod tests {
    use labctl_fault::Target;

    use super::*;
    use crate::check::fixture::History;
    use crate::history::Value;

    fn kill(node: NodeId) -> Fault {
        Fault::Kill {
            node: Target::Id(node),
        }
    }

    #[test]
    fn op_counts_count_client_completions_only() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4)
            .write_fail(1, "c1-1")
            .write_info(2, "c2-1");
        h.read(0, 4, &["c0-1"]).invoke_write(3, "c3-1");
        h.epoch(1, 1, 1, &["writer"])
            .fault(kill(1))
            .converge_ok()
            .final_read(4, &[]);
        assert_eq!(
            op_counts(&h.ops()),
            OpCounts {
                ok: 2,
                fail: 1,
                info: 1
            }
        );
    }

    /// Writer 1 in epoch 1; killed at 5000 ms; epoch 2 begun at 5600, node 2 its writer at
    /// 5900; a write invoked before the kill acknowledged after it (not counted), then the
    /// first write invoked after it acknowledged at 6200.
    fn a_leader_kill() -> History {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"])
            .epoch(2, 1, 1, &["persistence"]);
        h.at(4_990).invoke_write(0, "c0-1");
        h.at(5_000).fault(kill(1));
        h.at(5_100)
            .invoke_write(1, "c1-1")
            .at(5_300)
            .ok_write(0, "c0-1", 4);
        h.at(5_600)
            .epoch(2, 2, 2, &["input"])
            .at(5_900)
            .epoch(2, 2, 2, &["writer"]);
        h.at(6_200).ok_write(1, "c1-1", 4);
        h
    }

    #[test]
    fn a_leader_kill_is_timed() {
        let h = a_leader_kill();
        let timings = fault_timings(&h.ops());
        assert_eq!(
            timings,
            [FaultTiming {
                fault: kill(1),
                at_ms: 5_000,
                detected_ms: Some(600),
                new_leader_ms: Some(900),
                next_write_ms: Some(1_200),
            }]
        );
        let failovers = failovers(&h.ops());
        assert_eq!(
            failovers,
            [Failover {
                fault: 3,
                at_ms: 5_000,
                writer: 1,
                write: Some(Ack { invoke: 4, ok: 8 }),
                ms: Some(1_200),
            }]
        );
        assert_eq!(failovers_ms(&h.ops()), [1_200]);
    }

    #[test]
    fn a_cut_off_writer_acknowledging_until_it_notices_is_not_the_failover() {
        // Writer 1 partitioned into the minority at 5000 ms; it acknowledges a write invoked
        // after the partition (at 5050, before it notices); node 3 becomes writer of epoch 2 at
        // 6100 and acknowledges at 6300: the failover took 1300 ms, not 50.
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(5_000).fault(Fault::Partition {
            groups: vec![vec![1, 2], vec![3, 4, 5, 6]],
        });
        h.at(5_010)
            .invoke_write(0, "c0-1")
            .at(5_050)
            .ok_write(0, "c0-1", 2);
        h.at(5_200).invoke_write(1, "c1-1");
        h.at(6_100).epoch(3, 2, 3, &["writer"]);
        h.at(6_300).ok_write(1, "c1-1", 4);
        assert_eq!(failovers_ms(&h.ops()), [1_300]);
        // The clients' view is kept too: the next acknowledged write came 50 ms after it.
        assert_eq!(fault_timings(&h.ops())[0].next_write_ms, Some(50));
    }

    #[test]
    fn timings_stop_at_the_next_fault_but_the_next_write_does_not() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(1_000).fault(kill(3));
        h.at(2_000).fault(Fault::Restart {
            node: Target::Id(3),
        });
        h.at(2_500)
            .epoch(3, 2, 1, &["input"])
            .epoch(1, 2, 1, &["writer"]);
        h.at(9_000).write_ok(0, "c0-1", 4);
        let timings = fault_timings(&h.ops());
        assert_eq!(timings.len(), 2);
        assert_eq!(
            (
                timings[0].detected_ms,
                timings[0].new_leader_ms,
                timings[0].next_write_ms
            ),
            (None, None, Some(8_010))
        );
        assert_eq!(
            (
                timings[1].detected_ms,
                timings[1].new_leader_ms,
                timings[1].next_write_ms
            ),
            (Some(500), Some(510), Some(7_010))
        );
        assert!(
            failovers(&h.ops()).is_empty(),
            "node 3 was never the writer"
        );
    }

    #[test]
    fn timings_stop_at_the_next_faults_invoke() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(1_000).fault(kill(3));
        let invoke = Value::Fault(kill(1));
        h.at(2_000)
            .line(Process::Nemesis, Type::Invoke, F::Fault, invoke, None);
        h.at(2_010)
            .epoch(2, 2, 2, &["writer"])
            .at(2_020)
            .fault(kill(1));
        let timings = fault_timings(&h.ops());
        assert_eq!(
            timings[0].detected_ms, None,
            "epoch 2 came from killing node 1"
        );
        assert_eq!(
            timings[1].detected_ms,
            Some(0),
            "seen before the kill's `ok`"
        );
    }

    #[test]
    fn an_old_epoch_seen_after_a_fault_is_not_detection() {
        let mut h = History::new();
        h.epoch(1, 2, 1, &["writer"])
            .fault(kill(4))
            .epoch(5, 2, 1, &["input"]);
        let timings = fault_timings(&h.ops());
        assert_eq!(timings[0].detected_ms, None);
    }

    #[test]
    fn a_partition_leaving_the_writer_in_a_minority_is_a_writer_loss() {
        let partition = |groups: &[&[NodeId]]| Fault::Partition {
            groups: groups.iter().map(|g| g.to_vec()).collect(),
        };
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.fault(partition(&[&[1, 2, 3], &[4, 5, 6]]));
        h.fault(Fault::HealAll);
        h.fault(partition(&[&[1, 2, 3, 4], &[5, 6]]));
        h.fault(Fault::HealAll);
        h.fault(Fault::Cut {
            a: Target::Id(1),
            b: Target::Id(2),
        });
        let found = failovers(&h.ops());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].fault, found[0].writer, found[0].ms), (1, 1, None));
    }

    #[test]
    fn the_writer_is_the_newest_epochs_live_writer() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]).fault(kill(1));
        // Node 1 is down: killing it again, or restarting it, loses no writer.
        h.fault(kill(1)).fault(Fault::Restart {
            node: Target::Id(1),
        });
        // Node 2, writer of epoch 2, is the writer; node 1's old line is older.
        h.epoch(2, 2, 2, &["writer"]).fault(Fault::Pause {
            node: Target::Id(1),
        });
        h.fault(Fault::Pause {
            node: Target::Id(2),
        });
        let found = failovers(&h.ops());
        let lost: Vec<(usize, NodeId)> = found.iter().map(|f| (f.fault, f.writer)).collect();
        assert_eq!(lost, [(1, 1), (6, 2)]);
    }

    #[test]
    fn no_fault_no_figures() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]).write_ok(0, "c0-1", 4);
        assert!(fault_timings(&h.ops()).is_empty());
        assert!(failovers_ms(&h.ops()).is_empty());
    }
}
