//! Applying a fault to a running lab (SPEC §7): check it against the topology and the faults in
//! force, carry it out for real through the lab's runtime, and keep the faults in force in the
//! lab's folder (`faults.json`), where `status` reads them and `fault heal --all` finds them.
//!
//! The rules (what a fault may name, what it changes) are the pure `labctl-fault` crate's; this
//! module only carries them out:
//! - node faults through the runtime (signals to a process, or the engine's kill, pause, unpause
//!   and start for a container);
//! - link cuts by the runtime where it can (Docker sets the link's veth pair down, or disconnects its network), else through
//!   the fault filter of both ends' transports, set over the admin API;
//! - delays and losses always through the fault filter.
//!
//! A paused or dead node cannot take a new filter: it gets its whole filter again when it is
//! resumed or restarted.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use labctl_core::NodeId;
use labctl_fault::{Fault, InForce, LinkFilter, NodeAction};
use labctl_topology::Topology;

use crate::lab::LabDir;
use crate::runtime::{self, NodeSettings, ProcState, Runtime};

/// What applying a fault did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The fault, with `leader` resolved.
    pub fault: Fault,
    /// Whether `leader` was named (and resolved to the fault's node).
    pub named_leader: bool,
    /// What was done to nodes, in order.
    pub actions: Vec<(NodeId, NodeAction)>,
    /// Links this fault cut.
    pub cut: Vec<(NodeId, NodeId)>,
    /// Links this fault healed.
    pub healed: Vec<(NodeId, NodeId)>,
    /// The faults in force afterwards.
    pub in_force: InForce,
}

/// The context of an error that struck after the fault was recorded, part-way through carrying
/// it out (every other error changed nothing).
#[derive(Debug)]
pub struct NotCarriedOut(String);

impl std::fmt::Display for NotCarriedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Apply `fault` to the running lab `lab`. A fault that does not fit (an unknown node, two nodes
/// without a link, a malformed partition, a node in the wrong state) is refused and changes
/// nothing.
pub async fn apply(lab: &LabDir, fault: Fault) -> Result<Applied> {
    let _lock = lab.lock()?;
    let mut record = lab.load()?;
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    let adjacency = topology.adjacency();
    let runtime = runtime::for_record(&record)?;
    let states = runtime.states(lab, &record).await;
    if states.values().all(|s| *s == ProcState::Down) {
        bail!(
            "lab {} is not running (none of its {} is); `labctl down {}` removes it",
            lab.name,
            runtime::noun(runtime.kind(), 2),
            lab.name
        );
    }
    let in_force = lab.load_faults()?;

    // `leader` is the quorum component's root right now.
    let named_leader = fault.names_leader();
    let fault = if named_leader {
        let report = crate::lifecycle::report(lab).await?;
        fault
            .resolve(report.report.leader)
            .map_err(|e| anyhow!(e))?
    } else {
        fault
    };

    let mut next = in_force.clone();
    let actions = next
        .apply(&fault, &adjacency, now_ms())
        .map_err(|e| anyhow!(e))?;
    // Recorded before it is carried out: if a step fails half-way, `heal --all` still knows what
    // to undo (undoing is safe to repeat).
    lab.save_faults(&next)?;
    let recorded = |e: anyhow::Error| {
        e.context(NotCarriedOut(format!(
            "{fault} is recorded but was not carried out in full; `labctl status` shows the lab, \
             `labctl fault heal --all` undoes every fault"
        )))
    };

    // Nodes first: signals, containers.
    let settings = NodeSettings::of(&record, &topology);
    for &(id, action) in &actions {
        runtime
            .node_fault(lab, &mut record, id, action, &settings)
            .await
            .with_context(|| format!("carrying out {action} on node {id}"))
            .map_err(recorded)?;
        if action == NodeAction::Restart {
            lab.save(&record)?;
        }
    }

    // Links the runtime cuts itself.
    let (before, after) = (in_force.cut_links(&adjacency), next.cut_links(&adjacency));
    let cut: Vec<(NodeId, NodeId)> = after.difference(&before).copied().collect();
    let healed: Vec<(NodeId, NodeId)> = before.difference(&after).copied().collect();
    if runtime.cuts_links() {
        for &(a, b) in &cut {
            runtime
                .set_link_cut(lab, &record, a, b, true)
                .await
                .map_err(recorded)?;
        }
        for &(a, b) in &healed {
            runtime
                .set_link_cut(lab, &record, a, b, false)
                .await
                .map_err(recorded)?;
        }
    }

    // The fault filters: every node whose filter changed, and every node thawed or started
    // again (a new process starts with none), except those that cannot take one now.
    let away: BTreeSet<NodeId> = next.down().union(&next.paused()).copied().collect();
    let renewed: BTreeSet<NodeId> = actions
        .iter()
        .filter(|(_, a)| matches!(a, NodeAction::Resume | NodeAction::Restart))
        .map(|(id, _)| *id)
        .collect();
    let mut failures = Vec::new();
    for &id in adjacency.keys() {
        let old = filter(&in_force, id, &adjacency, runtime.as_ref());
        let new = filter(&next, id, &adjacency, runtime.as_ref());
        // A node started again, or thawed, gets its whole filter, even an empty one: a thawed
        // node still holds the filter it had when it froze.
        let unchanged = old == new && !renewed.contains(&id);
        if away.contains(&id) || unchanged {
            continue;
        }
        if let Err(e) = crate::live::set_filters(&record, id, &new).await {
            failures.push(format!("node {id}: {e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{fault} is recorded, but not every node took its new link filter ({}); \
             `labctl status` shows the lab, `labctl fault heal --all` undoes every fault",
            failures.join("; ")
        );
    }
    Ok(Applied {
        fault,
        named_leader,
        actions,
        cut,
        healed,
        in_force: next,
    })
}

/// Node `id`'s fault filter under `faults`: without cuts where the runtime cuts links itself.
fn filter(
    faults: &InForce,
    id: NodeId,
    adjacency: &labctl_core::report::Adjacency,
    runtime: &dyn Runtime,
) -> BTreeMap<NodeId, LinkFilter> {
    faults
        .filter(id, adjacency)
        .into_iter()
        .map(|(peer, mut f)| {
            if runtime.cuts_links() {
                f.cut = false;
            }
            (peer, f)
        })
        .filter(|(_, f)| !f.is_clear())
        .collect()
}

/// What was applied, as `--json` prints it (and the dashboard answers).
pub fn as_json(lab: &str, applied: &Applied) -> serde_json::Value {
    serde_json::json!({
        "lab": lab,
        "applied": applied.fault,
        "faults": listed(&applied.in_force),
    })
}

/// The faults in force of a lab's record, for a report: each fault object and how long it has
/// been in force.
pub fn listed(in_force: &InForce) -> Vec<serde_json::Value> {
    let now = now_ms();
    in_force
        .faults
        .iter()
        .map(|active| {
            let mut value = serde_json::to_value(&active.fault).expect("faults serialize");
            if let Some(object) = value.as_object_mut() {
                object.insert(
                    "since_ms".into(),
                    now.saturating_sub(active.since_unix_ms).into(),
                );
            }
            value
        })
        .collect()
}
