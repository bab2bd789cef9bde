//! The history of a lab's epochs as the dashboard saw them: each quorum epoch, its leader, when
//! it first showed and when it converged, and for each epoch after the first, its failover time:
//! from the first report that lost the converged lab to the first report converged again.
//!
//! The figures are as precise as the reports are frequent (the dashboard asks again at every
//! trace event of any node, and at least every few hundred milliseconds).

use labctl_core::NodeId;
use serde::{Deserialize, Serialize};

/// How many epochs the history keeps (the oldest go first).
pub const KEPT: usize = 100;

/// One epoch, as seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Epoch {
    /// The quorum component's epoch.
    pub epoch: u64,
    /// Its root (the writer), once known.
    pub leader: Option<NodeId>,
    /// When it first showed, in milliseconds on the caller's clock.
    pub seen_ms: u64,
    /// When the lab was first seen converged in it.
    pub converged_ms: Option<u64>,
    /// From the first report that lost the converged lab before it to `converged_ms` (none for
    /// the first epoch seen).
    pub failover_ms: Option<u64>,
}

/// What the history reads of a report.
#[derive(Deserialize)]
struct Seen {
    epoch: Option<u64>,
    leader: Option<NodeId>,
    converged: bool,
}

/// The epochs seen so far, oldest first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    /// The epochs.
    pub epochs: Vec<Epoch>,
    /// The converged (epoch, leader) last seen, and when.
    #[serde(skip)]
    stable: Option<((u64, Option<u64>), u64)>,
    /// When the converged state was first seen lost.
    #[serde(skip)]
    lost_at: Option<u64>,
}

impl History {
    /// Take in one report (the JSON of `labctl status --json`) seen at `at_ms`. Returns whether
    /// the history changed. A report without the fields is ignored.
    pub fn observe(&mut self, at_ms: u64, report: &serde_json::Value) -> bool {
        let Ok(seen) = Seen::deserialize(report) else {
            return false;
        };
        let before = self.epochs.clone();
        let key = (seen.epoch.unwrap_or(0), seen.leader);
        let stable_now = seen.converged && seen.epoch.is_some();
        match self.stable {
            Some((stable, _)) if stable_now && stable == key => {
                self.stable = Some((key, at_ms));
                self.lost_at = None;
            }
            Some((_, last)) if self.lost_at.is_none() => {
                // Lost now, or converged into another epoch between two reports: the failover
                // began after the last report of the old one.
                self.lost_at = Some(if stable_now { last } else { at_ms });
            }
            _ => {}
        }
        if let Some(epoch) = seen.epoch {
            if !self.epochs.iter().any(|e| e.epoch == epoch) {
                self.epochs.push(Epoch {
                    epoch,
                    leader: seen.leader,
                    seen_ms: at_ms,
                    converged_ms: None,
                    failover_ms: None,
                });
                if self.epochs.len() > KEPT {
                    self.epochs.remove(0);
                }
            }
            let entry = self
                .epochs
                .iter_mut()
                .find(|e| e.epoch == epoch)
                .expect("just added");
            if entry.leader.is_none() {
                entry.leader = seen.leader;
            }
            if stable_now {
                if entry.converged_ms.is_none() {
                    entry.converged_ms = Some(at_ms);
                    entry.leader = seen.leader;
                    entry.failover_ms = self.lost_at.map(|lost| at_ms.saturating_sub(lost));
                }
                self.stable = Some((key, at_ms));
                self.lost_at = None;
            }
        }
        self.epochs != before
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(epoch: Option<u64>, leader: Option<u64>, converged: bool) -> serde_json::Value {
        json!({ "epoch": epoch, "leader": leader, "converged": converged, "lab": "ring6" })
    }

    #[test]
    fn a_failover_is_timed_from_the_lost_report_to_the_converged_one() {
        let mut h = History::default();
        assert!(h.observe(0, &report(Some(1), None, false)));
        assert!(h.observe(100, &report(Some(1), Some(1), true)));
        assert!(!h.observe(200, &report(Some(1), Some(1), true)));
        // The writer dies: the lab is not converged from 1000 on, epoch 2 shows at 1900 and
        // converges at 2300.
        assert!(!h.observe(1000, &report(Some(1), Some(1), false)));
        assert!(!h.observe(1500, &report(Some(1), None, false)));
        assert!(h.observe(1900, &report(Some(2), None, false)));
        assert!(h.observe(2300, &report(Some(2), Some(2), true)));
        assert_eq!(
            h.epochs,
            vec![
                Epoch {
                    epoch: 1,
                    leader: Some(1),
                    seen_ms: 0,
                    converged_ms: Some(100),
                    failover_ms: None,
                },
                Epoch {
                    epoch: 2,
                    leader: Some(2),
                    seen_ms: 1900,
                    converged_ms: Some(2300),
                    failover_ms: Some(1300),
                },
            ]
        );
    }

    #[test]
    fn a_failover_between_two_reports_counts_from_the_last_old_one() {
        let mut h = History::default();
        h.observe(0, &report(Some(1), Some(1), true));
        h.observe(400, &report(Some(1), Some(1), true));
        assert!(h.observe(1000, &report(Some(3), Some(2), true)));
        assert_eq!(h.epochs[1].failover_ms, Some(600));
        // No quorum at all: nothing new until one converges again.
        assert!(!h.observe(1100, &report(None, None, false)));
        assert!(h.observe(1500, &report(Some(4), Some(1), true)));
        assert_eq!(h.epochs[2].failover_ms, Some(400));
        assert!(!h.observe(1600, &json!({ "not": "a report" })));
    }

    #[test]
    fn keeps_the_last_epochs() {
        let mut h = History::default();
        for e in 1..=(KEPT as u64 + 5) {
            h.observe(e * 10, &report(Some(e), Some(1), true));
        }
        assert_eq!(h.epochs.len(), KEPT);
        assert_eq!(h.epochs[0].epoch, 6);
        assert!(h.epochs.iter().skip(1).all(|e| e.failover_ms == Some(10)));
    }
}
