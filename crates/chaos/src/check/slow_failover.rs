//! `slow-failover`: a writer loss whose next acknowledged write came later than
//! `failover_within_s` (SPEC §8 `[check]`; SPEC §6 "Timing" expects 2 s).
//!
//! The writer losses and their failovers are [`measure::failovers`]: each fault that takes the
//! writer away, to the first acknowledgement of a write invoked after it. A loss never followed
//! by an acknowledged write is slow only if the clients kept writing for longer than the limit
//! after it; if they stopped sooner (the workload ended), there is nothing to judge by.

use super::{involved, Listed};
use crate::history::{Op, Process, Type, F};
use crate::measure;
use crate::report::Anomaly;

/// Every writer loss not followed by an acknowledged write within `limit_ms`.
pub fn find(history: &[Op], limit_ms: u64) -> Vec<Anomaly> {
    // The last write any client invoked: how long the clients kept trying.
    let last_write = history.iter().rposition(|op| {
        matches!(op.process, Process::Client(_)) && op.f == F::Write && op.kind == Type::Invoke
    });
    let mut listed = Listed::default();
    for failover in measure::failovers(history) {
        let fault = &history[failover.fault];
        let what = match (failover.ms, failover.write) {
            (Some(ms), Some(_)) if ms > limit_ms => format!(
                "{} at {} ms took writer {} away; the first write invoked after it was \
                 acknowledged {ms} ms later (the limit is {limit_ms} ms)",
                fault_words(fault),
                failover.at_ms,
                failover.writer,
            ),
            (None, _) => match last_write.filter(|&line| line > failover.fault) {
                Some(line) if history[line].time_ms - failover.at_ms > limit_ms => format!(
                    "{} at {} ms took writer {} away; no write invoked after it was \
                     acknowledged, though the clients wrote for {} ms more (the limit is \
                     {limit_ms} ms)",
                    fault_words(fault),
                    failover.at_ms,
                    failover.writer,
                    history[line].time_ms - failover.at_ms,
                ),
                _ => continue,
            },
            _ => continue,
        };
        if listed.is_full() {
            listed.count();
            continue;
        }
        let mut ops = vec![involved(history, failover.fault)];
        if let Some(write) = failover.write {
            ops.push(involved(history, write.invoke));
            ops.push(involved(history, write.ok));
        }
        listed.push(Anomaly { what, ops });
    }
    listed.finish("slow failovers")
}

/// The fault of a line, in words (`kill node 1`).
fn fault_words(op: &Op) -> String {
    op.fault()
        .map_or_else(|| "a fault".to_string(), |f| f.to_string())
}

#[cfg(test)]
mod tests {
    use labctl_fault::{Fault, Target};

    use super::super::fixture::History;
    use super::*;

    fn kill(node: u64) -> Fault {
        Fault::Kill {
            node: Target::Id(node),
        }
    }

    #[test]
    fn a_failover_over_the_limit_is_slow() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(5_000).fault(kill(1));
        h.at(5_100).write_fail(0, "c0-1");
        h.at(7_400).epoch(2, 2, 2, &["writer"]);
        h.at(7_490)
            .invoke_write(0, "c0-2")
            .at(7_600)
            .ok_write(0, "c0-2", 4);
        let found = find(&h.ops(), 2_000);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "kill node 1 at 5000 ms took writer 1 away; the first write invoked after it was \
             acknowledged 2600 ms later (the limit is 2000 ms)"
        );
        assert_eq!(
            found[0].ops.iter().map(|o| o.index).collect::<Vec<_>>(),
            [1, 5, 6]
        );
        assert!(find(&h.ops(), 3_000).is_empty());
    }

    #[test]
    fn a_failover_that_never_came_is_slow_if_the_clients_kept_writing() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(5_000).fault(kill(1));
        h.at(5_100)
            .write_fail(0, "c0-1")
            .at(9_000)
            .write_info(0, "c0-2");
        let found = find(&h.ops(), 2_000);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].what.contains(
                "no write invoked after it was acknowledged, though the \
                 clients wrote for 4000 ms more"
            ),
            "{}",
            found[0].what
        );
        assert!(
            find(&h.ops(), 5_000).is_empty(),
            "the clients stopped before the limit"
        );
    }

    #[test]
    fn a_fast_failover_and_a_fault_that_loses_no_writer_pass() {
        let mut h = History::new();
        h.epoch(1, 1, 1, &["writer"]);
        h.at(1_000).fault(kill(3));
        h.at(5_000).fault(kill(1));
        h.at(5_050).epoch(2, 2, 2, &["writer"]);
        h.at(5_100).write_ok(0, "c0-1", 4);
        assert!(find(&h.ops(), 2_000).is_empty());
    }
}
