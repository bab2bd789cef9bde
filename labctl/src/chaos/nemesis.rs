//! The nemesis: the scenario's faults, applied for real at their times through `labctl fault`'s
//! own code, each recorded as a `fault` operation (its `invoke`, then `ok` with the fault as
//! applied, `leader` and `last` resolved, or `fail` with why).

use std::collections::BTreeMap;
use std::time::Duration;

use labctl_chaos::history::{Process, Type, Value, F};
use labctl_chaos::scenario::Scenario;
use labctl_chaos::schedule::{Event, RandomFaults, Schedule};
use labctl_core::NodeId;
use labctl_fault::Fault;
use labctl_topology::Topology;

use super::recorder::Recorder;
use crate::lab::LabDir;
use crate::poll::poll_until;

/// Apply the scenario's schedule; an error (a fixed step that could not be applied, no leader
/// to name in time) ends the faults and makes the run unknown.
pub async fn run(
    lab: &LabDir,
    scenario: &Scenario,
    nodes: &[NodeId],
    recorder: &Recorder,
) -> Result<(), String> {
    let record = lab.load().map_err(|e| format!("{e:#}"))?;
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )
    .map_err(|e| e.to_string())?;
    let adjacency = topology.adjacency();
    let mut random = scenario.random.as_ref().map(RandomFaults::new);
    let mut undo: BTreeMap<usize, Fault> = BTreeMap::new();
    let mut last: Option<NodeId> = None;
    let converge = Duration::from_millis(scenario.check.converge_within_ms);
    for (at, event) in Schedule::of(scenario).events {
        tokio::time::sleep_until((recorder.start() + Duration::from_millis(at)).into()).await;
        match event {
            Event::Step(step) => {
                // A step that cannot be resolved is recorded as failed and ends the faults.
                let refused = |why: String| {
                    let message = format!("the step at line {}: {why}", step.line);
                    recorder.record(
                        Process::Nemesis,
                        Type::Fail,
                        F::Fault,
                        Value::Text(message.clone()),
                        None,
                    );
                    message
                };
                let leader = if step.names_leader() {
                    Some(
                        wait_leader(lab, converge)
                            .await
                            .map_err(|why| refused(format!("it names the leader: {why}")))?,
                    )
                } else {
                    None
                };
                let (fault, named) = step.resolve(leader, last, nodes).map_err(refused)?;
                last = named;
                apply(lab, fault, recorder).await.map_err(|why| {
                    format!("the step at line {} could not be applied: {why}", step.line)
                })?;
            }
            Event::Random(n) => {
                let Some(random) = random.as_mut() else {
                    continue;
                };
                let in_force = lab.load_faults().map_err(|e| format!("{e:#}"))?;
                if let Some((fault, undoing)) = random.draw(&in_force, &adjacency) {
                    // A random fault refused (a node in the wrong state after a fixed step) is
                    // recorded and skipped: the seed drew it, the lab could not take it.
                    if apply(lab, fault, recorder).await.is_ok() {
                        undo.insert(n, undoing);
                    }
                }
            }
            Event::Undo(n) => {
                if let Some(fault) = undo.remove(&n) {
                    // Already undone by a later step (a heal-all): recorded as failed, harmless.
                    let _ = apply(lab, fault, recorder).await;
                }
            }
        }
    }
    Ok(())
}

/// Undo every fault in force (the end of the workload).
pub async fn heal_all(lab: &LabDir, recorder: &Recorder) -> Result<(), String> {
    apply(lab, Fault::HealAll, recorder)
        .await
        .map_err(|why| format!("the final heal failed: {why}"))
}

/// Apply one fault, recorded.
async fn apply(lab: &LabDir, fault: Fault, recorder: &Recorder) -> Result<(), String> {
    recorder.record(
        Process::Nemesis,
        Type::Invoke,
        F::Fault,
        Value::Fault(fault.clone()),
        None,
    );
    match crate::fault::apply(lab, fault).await {
        Ok(applied) => {
            recorder.record(
                Process::Nemesis,
                Type::Ok,
                F::Fault,
                Value::Fault(applied.fault),
                None,
            );
            Ok(())
        }
        Err(e) => {
            let why = format!("{e:#}");
            recorder.record(
                Process::Nemesis,
                Type::Fail,
                F::Fault,
                Value::Text(why.clone()),
                None,
            );
            Err(why)
        }
    }
}

/// The quorum component's root, once the lab reports one (waiting up to `within`).
async fn wait_leader(lab: &LabDir, within: Duration) -> Result<NodeId, String> {
    let what = "a component holding a quorum with a converged tree";
    poll_until(what, Duration::from_millis(50), within, || async {
        let Ok(report) = crate::lifecycle::report(lab).await else {
            return Ok(None);
        };
        let quorum_converged = report
            .report
            .components
            .iter()
            .any(|c| c.quorum && c.converged);
        Ok(report.report.leader.filter(|_| quorum_converged))
    })
    .await
    .map_err(|error| error.to_string())
}
