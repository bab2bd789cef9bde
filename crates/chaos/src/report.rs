//! What a chaos run concludes (SPEC §8): the verdict, the anomalies by kind, the operation
//! counts, each fault's timings and the failovers. `report.json` and `labctl chaos --json`.

use std::collections::BTreeMap;

use labctl_fault::Fault;
use serde::{Deserialize, Serialize};

use crate::history::Op;

/// The verdict: exit code 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No anomaly.
    Valid,
    /// At least one anomaly (`no-convergence` included).
    Invalid,
    /// The run could not be judged: the lab never came up, a fault could not be applied, an error.
    Unknown,
}

/// The kinds of anomaly the checker looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A write acknowledged (ok) but missing from a final read.
    Lost,
    /// A text no client wrote, or a failed write (4xx, 503) seen later.
    Phantom,
    /// A client's read missing a write that client had already seen acknowledged.
    StaleRead,
    /// Two nodes writer of the same epoch.
    SplitBrain,
    /// Input nodes whose final reads differ.
    Divergence,
    /// The lab did not converge within `converge_within_s` after the last heal.
    NoConvergence,
    /// A writer loss whose next acknowledged write took longer than `failover_within_s`.
    SlowFailover,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Lost,
        Kind::Phantom,
        Kind::StaleRead,
        Kind::SplitBrain,
        Kind::Divergence,
        Kind::NoConvergence,
        Kind::SlowFailover,
    ];

    /// The kind as SPEC §8 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lost => "lost",
            Kind::Phantom => "phantom",
            Kind::StaleRead => "stale-read",
            Kind::SplitBrain => "split-brain",
            Kind::Divergence => "divergence",
            Kind::NoConvergence => "no-convergence",
            Kind::SlowFailover => "slow-failover",
        }
    }
}

/// One anomaly: what is wrong, in a sentence, and the operations involved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What is wrong, in words ("write \"c2-17\" was acknowledged at 5012 ms but node 4's final
    /// read lacks it").
    pub what: String,
    /// The operations involved, each with its index in the history (its line, from 0).
    pub ops: Vec<Involved>,
}

/// An operation involved in an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Involved {
    /// Its index in the history (0: the first line).
    pub index: usize,
    /// The operation, with a read's texts left out (they can be many).
    pub op: Op,
}

/// The anomalies found, by kind (kinds with none are left out).
pub type Anomalies = BTreeMap<Kind, Vec<Anomaly>>;

/// How many client operations ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Done.
    pub ok: u64,
    /// Not done.
    pub fail: u64,
    /// Unknown.
    pub info: u64,
}

/// A fault the run applied and how the lab took it, in milliseconds after it was applied
/// (`None`: it did not happen before the next fault, or at all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultTiming {
    /// The fault (`leader` resolved), one fault object of SPEC §7.
    #[serde(flatten)]
    pub fault: Fault,
    /// When it was applied, in milliseconds since the workload started.
    pub at_ms: u64,
    /// Until a node began a newer epoch (the fault was noticed).
    pub detected_ms: Option<u64>,
    /// Until a node was writer of an epoch newer than the fault's.
    pub new_leader_ms: Option<u64>,
    /// Until the first write invoked after the fault was acknowledged.
    pub next_write_ms: Option<u64>,
}

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The lab it ran on.
    pub lab: String,
    /// valid, invalid or unknown.
    pub verdict: Verdict,
    /// Why the run could not be judged (unknown only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The anomalies, by kind.
    pub anomalies: Anomalies,
    /// Client operations by outcome.
    pub ops: OpCounts,
    /// Each fault applied, with its timings.
    pub faults: Vec<FaultTiming>,
    /// Each writer loss → the next acknowledged write, in milliseconds.
    pub failovers_ms: Vec<u64>,
    /// The run's folder.
    pub run: String,
    /// The whole run, start to verdict, in milliseconds.
    pub elapsed_ms: u64,
}

impl Report {
    /// The verdict the anomalies give (unknown is set by [`Report::judge`], never by the checker).
    pub fn verdict_of(anomalies: &Anomalies) -> Verdict {
        if anomalies.values().all(Vec::is_empty) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }

    /// Judge a history: the checker's anomalies, the figures of [`crate::measure`], and the
    /// verdict. `reason` says why the run could not be carried out in full, if it could not; a
    /// history with no final read answered (and no failed convergence, itself an anomaly) cannot
    /// be judged either. An anomaly found is an anomaly even then: invalid wins over unknown.
    /// `run` and `elapsed_ms` are left for the runner.
    pub fn judge(
        scenario: &str,
        lab: &str,
        history: &[Op],
        options: &crate::check::Options,
        reason: Option<String>,
    ) -> Report {
        use crate::history::{Type, F};
        let anomalies = crate::check::check(history, options);
        let final_read = history
            .iter()
            .any(|op| op.f == F::FinalRead && op.kind == Type::Ok);
        let converge_failed = history
            .iter()
            .any(|op| op.f == F::Converge && op.kind == Type::Fail);
        let reason = reason.or_else(|| {
            (!final_read && !converge_failed)
                .then(|| "no input node answered the final read".to_string())
        });
        let verdict = match (&reason, Report::verdict_of(&anomalies)) {
            (_, Verdict::Invalid) => Verdict::Invalid,
            (Some(_), _) => Verdict::Unknown,
            (None, verdict) => verdict,
        };
        Report {
            scenario: scenario.to_string(),
            lab: lab.to_string(),
            verdict,
            reason,
            anomalies,
            ops: crate::measure::op_counts(history),
            faults: crate::measure::fault_timings(history),
            failovers_ms: crate::measure::failovers_ms(history),
            run: String::new(),
            elapsed_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::History;
    use crate::check::Options;

    fn judge(h: &History, reason: Option<&str>) -> Report {
        Report::judge(
            "s",
            "l",
            &h.ops(),
            &Options::default(),
            reason.map(str::to_string),
        )
    }

    #[test]
    fn a_clean_run_with_final_reads_is_valid() {
        let mut h = History::new();
        h.write_ok(0, "a", 4).converge_ok().final_read(4, &["a"]);
        let report = judge(&h, None);
        assert_eq!((report.verdict, report.reason), (Verdict::Valid, None));
        assert_eq!(report.ops.ok, 1);
    }

    #[test]
    fn without_a_final_read_or_with_a_reason_the_run_is_unknown() {
        let mut h = History::new();
        h.write_ok(0, "a", 4).converge_ok();
        let report = judge(&h, None);
        assert_eq!(report.verdict, Verdict::Unknown);
        assert!(report.reason.unwrap().contains("final read"));
        h.final_read(4, &["a"]);
        let report = judge(&h, Some("the final heal failed"));
        assert_eq!(report.verdict, Verdict::Unknown);
        assert_eq!(report.reason.as_deref(), Some("the final heal failed"));
    }

    #[test]
    fn an_anomaly_is_invalid_even_in_a_run_that_could_not_finish() {
        let mut h = History::new();
        h.write_ok(0, "a", 4).converge_ok().final_read(4, &[]);
        assert_eq!(judge(&h, Some("a step failed")).verdict, Verdict::Invalid);
        // A failed convergence is itself an anomaly: judged, not unknown.
        let mut h = History::new();
        h.write_ok(0, "a", 4).converge_fail("did not converge");
        assert_eq!(judge(&h, None).verdict, Verdict::Invalid);
    }
}
