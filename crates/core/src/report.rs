//! The lab report (SPEC §7, a contract) and the named invariants it is checked against.
//!
//! The same report describes a simulated run and a live lab: it is built from the nodes' own
//! [`Status`]es and the topology's adjacency, so every runtime is judged by the same rules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::bounds::Bounds;
use crate::roles::{roles, Place, Role};
use crate::yoyo::Phase;
use crate::{Epoch, NodeId, Status};

/// Adjacency of an undirected graph: each node's neighbours.
pub type Adjacency = BTreeMap<NodeId, BTreeSet<NodeId>>;

/// Messages sent in the reported epoch, over all nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    /// Yo-Yo: setup, YO- and -YO.
    pub election: u64,
    /// SHOUT+: Q and Yes.
    pub tree: u64,
}

/// The bounds as the report shows them (SPEC §7: election, iterations, tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBounds {
    /// 2m(⌈log₂ n⌉ + 2).
    pub election: u64,
    /// ⌈log₂ n⌉ + 1.
    pub iterations: u32,
    /// 2m, SHOUT+'s exact cost.
    pub tree: u64,
}

/// One named invariant and whether it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The invariant's name, e.g. `spanning_tree`.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// What was found (the figures compared, or the first violation).
    pub detail: String,
}

/// The report of a run (SPEC §7). Fields may be added, never renamed or dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The lab's name.
    pub lab: String,
    /// `sim`, `process` or `docker`.
    pub runtime: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of links.
    pub links: usize,
    /// The epoch reported (the newest any node is in).
    pub epoch: Epoch,
    /// The leader, once every node agrees on one.
    pub leader: Option<NodeId>,
    /// Every node's parent; the root's is null. Keys are ids as strings.
    pub tree: BTreeMap<String, Option<NodeId>>,
    /// The tree's depth (the deepest node's distance from the root).
    pub depth: u32,
    /// Every node's roles. Keys are ids as strings.
    pub roles: BTreeMap<String, Vec<Role>>,
    /// Messages sent in the reported epoch.
    pub messages: Messages,
    /// Yo-Yo iterations (the most any node took part in: the leader takes part in all).
    pub iterations: u32,
    /// The algorithms' bounds for this graph.
    pub bounds: ReportBounds,
    /// Every node reports the same epoch and leader, the parents form a spanning tree of the
    /// topology rooted at the leader, and every node has its roles.
    pub converged: bool,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Messages per Yo-Yo phase: `setup`, then one entry per iteration.
    #[serde(default)]
    pub election_phases: Vec<u64>,
    /// The named invariants checked on this run.
    #[serde(default)]
    pub checks: Vec<Check>,
}

impl Report {
    /// Build a report from every node's status over the topology `adjacency`.
    pub fn build(
        lab: &str,
        runtime: &str,
        adjacency: &Adjacency,
        statuses: &BTreeMap<NodeId, Status>,
        elapsed_ms: u64,
    ) -> Report {
        let n = adjacency.len() as u64;
        let m = adjacency.values().map(|s| s.len() as u64).sum::<u64>() / 2;
        let bounds = Bounds::new(n, m);
        let epoch = statuses.values().map(|s| s.epoch).max().unwrap_or(0);
        let leaders: BTreeSet<Option<NodeId>> = statuses.values().map(|s| s.leader).collect();
        let leader = match (leaders.len(), leaders.iter().next()) {
            (1, Some(Some(l))) => Some(*l),
            _ => None,
        };
        let current = || statuses.values().filter(move |s| s.epoch == epoch);
        let messages = Messages {
            election: current().map(|s| s.counters.election()).sum(),
            tree: current().map(|s| s.counters.tree()).sum(),
        };
        let iterations = current().map(|s| s.counters.iterations).max().unwrap_or(0);
        let mut election_phases = vec![current().map(|s| s.counters.setup).sum()];
        for i in 0..iterations as usize {
            // Each live edge carries one YO- and one -YO: 2 × the sum of out-degrees.
            let edges: usize = current()
                .filter_map(|s| s.counters.out_degrees.get(i))
                .sum();
            election_phases.push(2 * edges as u64);
        }
        let checks = check_all(adjacency, statuses, &bounds, messages, iterations);
        let converged = checks
            .iter()
            .filter(|c| CONVERGENCE.contains(&c.name.as_str()))
            .all(|c| c.ok);
        Report {
            lab: lab.to_string(),
            runtime: runtime.to_string(),
            nodes: n as usize,
            links: m as usize,
            epoch,
            leader,
            tree: statuses
                .iter()
                .map(|(id, s)| (id.to_string(), s.parent))
                .collect(),
            depth: statuses.values().filter_map(|s| s.depth).max().unwrap_or(0),
            roles: statuses
                .iter()
                .map(|(id, s)| (id.to_string(), s.roles.clone()))
                .collect(),
            messages,
            iterations,
            bounds: ReportBounds {
                election: bounds.election,
                iterations: bounds.iterations,
                tree: bounds.tree,
            },
            converged,
            elapsed_ms,
            election_phases,
            checks,
        }
    }

    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// The checks that together mean "converged": agreement, a spanning tree, roles.
pub const CONVERGENCE: [&str; 4] = ["one_epoch", "one_leader", "spanning_tree", "roles"];

/// Run every named invariant on a set of node statuses.
pub fn check_all(
    adjacency: &Adjacency,
    statuses: &BTreeMap<NodeId, Status>,
    bounds: &Bounds,
    messages: Messages,
    iterations: u32,
) -> Vec<Check> {
    let mut checks = vec![
        one_epoch(statuses),
        one_leader(adjacency, statuses),
        spanning_tree(adjacency, statuses),
        roles_follow_tree(statuses),
    ];
    let setup: u64 = statuses.values().map(|s| s.counters.setup).sum();
    checks.push(check(
        "setup_cost",
        setup == bounds.setup,
        format!("setup sent {setup} messages, 2m = {}", bounds.setup),
    ));
    checks.push(check(
        "tree_cost",
        messages.tree == bounds.tree,
        format!(
            "SHOUT+ sent {} messages, 2m = {}",
            messages.tree, bounds.tree
        ),
    ));
    checks.push(check(
        "election_bound",
        messages.election <= bounds.election,
        format!(
            "Yo-Yo sent {} messages, bound 2m(⌈log₂ n⌉+2) = {}",
            messages.election, bounds.election
        ),
    ));
    checks.push(check(
        "iteration_bound",
        iterations <= bounds.iterations,
        format!(
            "{iterations} iterations, bound ⌈log₂ n⌉+1 = {}",
            bounds.iterations
        ),
    ));
    checks
}

fn check(name: &str, ok: bool, detail: String) -> Check {
    Check {
        name: name.to_string(),
        ok,
        detail,
    }
}

/// Every node is in the same epoch.
pub fn one_epoch(statuses: &BTreeMap<NodeId, Status>) -> Check {
    let epochs: BTreeSet<Epoch> = statuses.values().map(|s| s.epoch).collect();
    check(
        "one_epoch",
        epochs.len() == 1,
        format!("epochs seen: {epochs:?}"),
    )
}

/// Exactly one node won, it is the minimum id, and every node knows it.
pub fn one_leader(adjacency: &Adjacency, statuses: &BTreeMap<NodeId, Status>) -> Check {
    let minimum = adjacency.keys().next().copied();
    let winners: Vec<NodeId> = statuses
        .values()
        .filter(|s| s.election == Phase::Leader)
        .map(|s| s.id)
        .collect();
    if winners.len() != 1 || Some(winners[0]) != minimum {
        return check(
            "one_leader",
            false,
            format!("elected {winners:?}, minimum id is {minimum:?}"),
        );
    }
    if let Some(s) = statuses.values().find(|s| s.leader != minimum) {
        return check(
            "one_leader",
            false,
            format!(
                "node {} follows leader {:?}, not {minimum:?}",
                s.id, s.leader
            ),
        );
    }
    check(
        "one_leader",
        true,
        format!(
            "leader {} (the minimum id), known to every node",
            winners[0]
        ),
    )
}

/// The parent pointers form a spanning tree of the topology rooted at the leader, depths are
/// distances from the root, children lists mirror parent pointers, and the root counted all n.
pub fn spanning_tree(adjacency: &Adjacency, statuses: &BTreeMap<NodeId, Status>) -> Check {
    let fail = |detail: String| check("spanning_tree", false, detail);
    if statuses.len() != adjacency.len() || !statuses.keys().eq(adjacency.keys()) {
        return fail("the statuses do not cover exactly the topology's nodes".into());
    }
    let roots: Vec<NodeId> = statuses
        .values()
        .filter(|s| s.parent.is_none())
        .map(|s| s.id)
        .collect();
    if roots.len() != 1 {
        return fail(format!(
            "nodes without a parent: {roots:?} (want exactly one)"
        ));
    }
    let root = roots[0];
    if statuses[&root].leader != Some(root) {
        return fail(format!("the root {root} is not the leader"));
    }
    let mut children: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for s in statuses.values() {
        if let Some(p) = s.parent {
            if !adjacency[&s.id].contains(&p) {
                return fail(format!("node {}'s parent {p} is not a neighbour", s.id));
            }
            children.entry(p).or_default().push(s.id);
        }
    }
    // Walk down from the root: every node must be reached exactly once, at the depth it reports.
    let mut seen = BTreeSet::from([root]);
    let mut queue = VecDeque::from([(root, 0u32)]);
    while let Some((id, depth)) = queue.pop_front() {
        let status = &statuses[&id];
        if status.depth != Some(depth) {
            return fail(format!(
                "node {id} reports depth {:?}, is at {depth}",
                status.depth
            ));
        }
        let kids = children.get(&id).cloned().unwrap_or_default();
        if status.children != kids {
            return fail(format!(
                "node {id} lists children {:?}, parents say {kids:?}",
                status.children
            ));
        }
        for child in kids {
            if seen.insert(child) {
                queue.push_back((child, depth + 1));
            }
        }
    }
    if seen.len() != adjacency.len() {
        let missing = adjacency.keys().find(|id| !seen.contains(id));
        return fail(format!(
            "{} of {} nodes hang from the root; {missing:?} does not",
            seen.len(),
            adjacency.len()
        ));
    }
    if statuses[&root].subtree != Some(adjacency.len() as u64) {
        return fail(format!(
            "the root counted {:?} nodes, the topology has {}",
            statuses[&root].subtree,
            adjacency.len()
        ));
    }
    check(
        "spanning_tree",
        true,
        format!("{} nodes under root {root}", seen.len()),
    )
}

/// Every node holds the roles SPEC §3.4 gives its place in the tree.
pub fn roles_follow_tree(statuses: &BTreeMap<NodeId, Status>) -> Check {
    let root = statuses.values().find(|r| r.parent.is_none()).map(|r| r.id);
    for s in statuses.values() {
        let expected = roles(Place {
            is_root: s.parent.is_none(),
            parent_is_root: s.parent.is_some() && s.parent == root,
            has_children: !s.children.is_empty(),
        });
        if s.roles != expected {
            return check(
                "roles",
                false,
                format!(
                    "node {} has {:?}, its place gives {expected:?}",
                    s.id, s.roles
                ),
            );
        }
    }
    check("roles", true, "every node's roles follow SPEC §3.4".into())
}
