//! `no-convergence`: the lab did not converge within `converge_within_s` after the last heal
//! (SPEC §8). labctl records the wait as a `converge` line of the lab: `ok`, or `fail` with why.

use super::involved;
use crate::history::{Op, Process, Type, F};
use crate::report::Anomaly;

/// One anomaly per `fail` convergence line.
pub fn find(history: &[Op]) -> Vec<Anomaly> {
    history
        .iter()
        .enumerate()
        .filter(|(_, op)| op.process == Process::Lab && op.f == F::Converge)
        .filter(|(_, op)| op.kind == Type::Fail)
        .map(|(index, op)| {
            let why = match op.text() {
                Some(message) => format!(": {message}"),
                None => String::new(),
            };
            Anomaly {
                what: format!(
                    "the lab had not converged at {} ms, after the last heal{why}",
                    op.time_ms
                ),
                ops: vec![involved(history, index)],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::History;
    use super::*;

    #[test]
    fn a_failed_convergence_is_reported_with_its_message() {
        let mut h = History::new();
        h.write_ok(0, "c0-1", 4);
        h.at(30_000)
            .converge_fail("nodes 3 and 4 are still in epoch 2 (the others in 3)");
        let found = find(&h.ops());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].what,
            "the lab had not converged at 30000 ms, after the last heal: nodes 3 and 4 are \
             still in epoch 2 (the others in 3)"
        );
        assert_eq!(found[0].ops[0].index, 2);
    }

    #[test]
    fn a_converged_lab_passes() {
        let mut h = History::new();
        h.converge_ok();
        assert!(find(&h.ops()).is_empty());
        assert!(find(&[]).is_empty());
    }
}
