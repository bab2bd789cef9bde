//! The lab report (SPEC §7, a contract) and the named invariants it is checked against.
//!
//! The same report describes a simulated run and a live lab: it is built from the nodes' own
//! [`Status`]es and the topology's adjacency, so every runtime is judged by the same rules.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

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

/// One connected part of a live lab (SPEC §6): the topology minus the nodes that are down or
/// paused and the links cut by faults in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its nodes.
    pub nodes: Vec<NodeId>,
    /// Its root: the one node that won the election of its newest epoch (the minimum id when
    /// converged).
    pub leader: Option<NodeId>,
    /// The newest epoch its nodes are in.
    pub epoch: Option<Epoch>,
    /// It holds a strict majority of the lab's nodes: its root is the writer.
    pub quorum: bool,
    /// One tree in one epoch, with its roles.
    #[serde(default)]
    pub converged: bool,
    /// Converged, every link of the component taken into its election at both ends, and no node
    /// waiting to start a new epoch: nothing is left to change until the lab does.
    #[serde(default)]
    pub settled: bool,
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
    /// The quorum component's epoch (null when no component holds a quorum).
    pub epoch: Option<Epoch>,
    /// The quorum component's root, once its nodes agree on one (null when none).
    pub leader: Option<NodeId>,
    /// Every live node's parent; the roots' are null. Keys are ids as strings.
    pub tree: BTreeMap<String, Option<NodeId>>,
    /// The tree's depth (the deepest node's distance from its root).
    pub depth: u32,
    /// Every live node's roles. Keys are ids as strings.
    pub roles: BTreeMap<String, Vec<Role>>,
    /// Messages sent in the reported epoch.
    pub messages: Messages,
    /// Yo-Yo iterations (the most any node took part in: the leader takes part in all).
    pub iterations: u32,
    /// The algorithms' bounds for the reported component's graph.
    pub bounds: ReportBounds,
    /// Every component is one tree, in one epoch, rooted at its minimum id, with its roles.
    pub converged: bool,
    /// Wall time of the run, in milliseconds.
    pub elapsed_ms: u64,
    /// Messages per Yo-Yo phase: `setup`, then one entry per iteration.
    #[serde(default)]
    pub election_phases: Vec<u64>,
    /// The named invariants checked on this run.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The lab's components (live reports; SPEC §6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

impl Report {
    /// Build a report from every node's status over the topology `adjacency`, with every node
    /// and link up: one component.
    pub fn build(
        lab: &str,
        runtime: &str,
        adjacency: &Adjacency,
        statuses: &BTreeMap<NodeId, Status>,
        elapsed_ms: u64,
    ) -> Report {
        let mut report =
            Report::build_live(lab, runtime, adjacency, adjacency, statuses, elapsed_ms);
        report.components.clear();
        report
    }

    /// Build a live lab's report: `live` is the topology `adjacency` minus the nodes down or
    /// paused and the links cut (SPEC §6); each of its components is judged on its own.
    pub fn build_live(
        lab: &str,
        runtime: &str,
        adjacency: &Adjacency,
        live: &Adjacency,
        statuses: &BTreeMap<NodeId, Status>,
        elapsed_ms: u64,
    ) -> Report {
        let lab_size = adjacency.len() as u64;
        let parts = components(live);
        let mut components = Vec::new();
        let mut per_part = Vec::new();
        for part in &parts {
            // A component that is the whole live graph (every run of the simulator, a lab with
            // nothing cut) is judged on the graph and statuses as given: a million nodes are
            // not copied twice over.
            let graph = if part.len() == live.len() {
                Cow::Borrowed(live)
            } else {
                Cow::Owned(restrict(live, part))
            };
            let members = if statuses.len() == part.len() && statuses.keys().eq(part.iter()) {
                Cow::Borrowed(statuses)
            } else {
                Cow::Owned(
                    statuses
                        .iter()
                        .filter(|(id, _)| part.contains(id))
                        .map(|(&id, s)| (id, s.clone()))
                        .collect::<BTreeMap<NodeId, Status>>(),
                )
            };
            let checks = converged_on(&graph, &members, lab_size);
            let epoch = members.values().map(|s| s.epoch).max();
            let roots: Vec<NodeId> = members
                .values()
                .filter(|s| Some(s.epoch) == epoch && s.election == Phase::Leader)
                .map(|s| s.id)
                .collect();
            let converged = checks.iter().all(|c| c.ok);
            let settled = converged
                && members.values().all(|s| !s.pending)
                && graph
                    .iter()
                    .all(|(id, links)| links.iter().all(|l| members[id].members.contains(l)));
            components.push(Component {
                nodes: part.iter().copied().collect(),
                leader: (roots.len() == 1).then(|| roots[0]),
                epoch,
                quorum: 2 * part.len() as u64 > lab_size,
                converged,
                settled,
            });
            per_part.push((graph, members, checks));
        }
        // The component the figures are about: the quorum's, else the largest.
        let focus = components
            .iter()
            .position(|c| c.quorum)
            .or_else(|| (0..parts.len()).max_by_key(|&i| (parts[i].len(), std::cmp::Reverse(i))));
        let (none, nobody) = (Adjacency::new(), BTreeMap::new());
        let (graph, members): (&Adjacency, &BTreeMap<NodeId, Status>) = match focus {
            Some(i) => (&per_part[i].0, &per_part[i].1),
            None => (&none, &nobody),
        };
        let n = graph.len() as u64;
        let m = graph.values().map(|s| s.len() as u64).sum::<u64>() / 2;
        let bounds = Bounds::new(n, m);
        let epoch = members.values().map(|s| s.epoch).max().unwrap_or(0);
        let current = || members.values().filter(move |s| s.epoch == epoch);
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
        // The convergence checks, over every component; then the costs of the focus.
        let mut checks: Vec<Check> = CONVERGENCE
            .iter()
            .map(|name| {
                let found: Vec<&Check> = per_part
                    .iter()
                    .filter_map(|(_, _, checks)| checks.iter().find(|c| c.name == *name))
                    .collect();
                let ok = found.iter().all(|c| c.ok);
                let detail = if parts.len() == 1 {
                    found.first().map(|c| c.detail.clone()).unwrap_or_default()
                } else {
                    let mut parts_detail: Vec<String> = Vec::new();
                    for (part, (_, _, checks)) in parts.iter().zip(&per_part) {
                        if let Some(c) = checks.iter().find(|c| c.name == *name) {
                            let first = part.iter().next().copied().unwrap_or(0);
                            parts_detail.push(format!("component of {first}: {}", c.detail));
                        }
                    }
                    parts_detail.join("; ")
                };
                check(name, ok && !parts.is_empty(), detail)
            })
            .collect();
        checks.extend(cost_checks(members, &bounds, messages, iterations));
        let converged = !parts.is_empty()
            && checks
                .iter()
                .filter(|c| CONVERGENCE.contains(&c.name.as_str()))
                .all(|c| c.ok);
        let quorum = components.iter().find(|c| c.quorum);
        let shown = |id: &NodeId| live.contains_key(id);
        Report {
            lab: lab.to_string(),
            runtime: runtime.to_string(),
            nodes: adjacency.len(),
            links: adjacency.values().map(|s| s.len()).sum::<usize>() / 2,
            epoch: quorum.and_then(|c| c.epoch),
            leader: quorum.and_then(|c| c.leader),
            tree: statuses
                .iter()
                .filter(|(id, _)| shown(id))
                .map(|(id, s)| (id.to_string(), s.parent))
                .collect(),
            depth: statuses
                .iter()
                .filter(|(id, _)| shown(id))
                .filter_map(|(_, s)| s.depth)
                .max()
                .unwrap_or(0),
            roles: statuses
                .iter()
                .filter(|(id, _)| shown(id))
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
            components,
        }
    }

    /// The checks that failed.
    pub fn failed_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// The checks that together mean "converged": agreement, a spanning tree, roles.
pub const CONVERGENCE: [&str; 4] = ["one_epoch", "one_leader", "spanning_tree", "roles"];

/// The connected parts of a graph, ordered by their smallest id.
pub fn components(adjacency: &Adjacency) -> Vec<BTreeSet<NodeId>> {
    // (A hash set to mark the nodes seen, and each part sorted once at the end: a million
    // insertions into B-trees cost more than the walk itself.)
    let mut seen: HashSet<NodeId> = HashSet::with_capacity(adjacency.len());
    let mut parts = Vec::new();
    for &start in adjacency.keys() {
        if !seen.insert(start) {
            continue;
        }
        let mut part = vec![start];
        let mut next = 0;
        while let Some(&n) = part.get(next) {
            next += 1;
            for &m in &adjacency[&n] {
                if seen.insert(m) {
                    part.push(m);
                }
            }
        }
        part.sort_unstable();
        parts.push(part.into_iter().collect());
    }
    parts
}

/// `adjacency` restricted to `nodes`.
pub fn restrict(adjacency: &Adjacency, nodes: &BTreeSet<NodeId>) -> Adjacency {
    nodes
        .iter()
        .map(|&n| {
            let kept = adjacency
                .get(&n)
                .map(|ns| ns.intersection(nodes).copied().collect())
                .unwrap_or_default();
            (n, kept)
        })
        .collect()
}

/// Whether the nodes of one connected `graph` have converged: the four checks of
/// [`CONVERGENCE`], with roles judged by the quorum rule against a lab of `lab_size`.
pub fn converged_on(
    graph: &Adjacency,
    statuses: &BTreeMap<NodeId, Status>,
    lab_size: u64,
) -> Vec<Check> {
    vec![
        one_epoch(statuses),
        one_leader(graph, statuses),
        spanning_tree(graph, statuses),
        roles_follow_tree(statuses, lab_size),
    ]
}

/// The algorithms' costs against their figures (SPEC §3.2, §3.3).
fn cost_checks(
    statuses: &BTreeMap<NodeId, Status>,
    bounds: &Bounds,
    messages: Messages,
    iterations: u32,
) -> Vec<Check> {
    let mut checks = Vec::new();
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

/// Items in words, comma-separated, `none` when there are none: `1, 2, 3`.
fn list<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let words: Vec<String> = items.map(|item| item.to_string()).collect();
    if words.is_empty() {
        "none".into()
    } else {
        words.join(", ")
    }
}

/// A value that may be missing, in words: the value, or `none`.
fn maybe<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".into(), |v| v.to_string())
}

/// Every node is in the same epoch.
pub fn one_epoch(statuses: &BTreeMap<NodeId, Status>) -> Check {
    let epochs: BTreeSet<Epoch> = statuses.values().map(|s| s.epoch).collect();
    check(
        "one_epoch",
        epochs.len() == 1,
        format!("epochs seen: {}", list(epochs.iter())),
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
            format!(
                "elected {}, the minimum id is {}",
                list(winners.iter()),
                maybe(minimum)
            ),
        );
    }
    if let Some(s) = statuses.values().find(|s| s.leader != minimum) {
        return check(
            "one_leader",
            false,
            format!(
                "node {} follows leader {}, not {}",
                s.id,
                maybe(s.leader),
                maybe(minimum)
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
            "nodes without a parent: {} (want exactly one)",
            list(roots.iter())
        ));
    }
    let root = roots[0];
    if statuses[&root].leader != Some(root) {
        return fail(format!("the root {root} is not the leader"));
    }
    let mut children: HashMap<NodeId, Vec<NodeId>> = HashMap::with_capacity(statuses.len());
    for s in statuses.values() {
        if let Some(p) = s.parent {
            if !adjacency[&s.id].contains(&p) {
                return fail(format!("node {}'s parent {p} is not a neighbour", s.id));
            }
            children.entry(p).or_default().push(s.id);
        }
    }
    // Walk down from the root: every node must be reached exactly once, at the depth it reports.
    let mut seen: HashSet<NodeId> = HashSet::with_capacity(statuses.len());
    seen.insert(root);
    let mut queue = VecDeque::from([(root, 0u32)]);
    while let Some((id, depth)) = queue.pop_front() {
        let status = &statuses[&id];
        if status.depth != Some(depth) {
            return fail(format!(
                "node {id} reports depth {}, is at {depth}",
                maybe(status.depth)
            ));
        }
        let kids = children.remove(&id).unwrap_or_default();
        if status.children != kids {
            return fail(format!(
                "node {id} lists children {}, parents say {}",
                list(status.children.iter()),
                list(kids.iter())
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
            "{} of {} nodes hang from the root; node {} does not",
            seen.len(),
            adjacency.len(),
            maybe(missing)
        ));
    }
    if statuses[&root].subtree != Some(adjacency.len() as u64) {
        return fail(format!(
            "the root counted {} nodes, the topology has {}",
            maybe(statuses[&root].subtree),
            adjacency.len()
        ));
    }
    check(
        "spanning_tree",
        true,
        format!("{} nodes under root {root}", seen.len()),
    )
}

/// Every node holds the roles SPEC §3.4 gives its place in the tree, the root `writer` only if
/// its tree spans a strict majority of a lab of `lab_size` nodes.
pub fn roles_follow_tree(statuses: &BTreeMap<NodeId, Status>, lab_size: u64) -> Check {
    let root = statuses.values().find(|r| r.parent.is_none());
    let spans = root
        .and_then(|r| r.subtree)
        .unwrap_or(statuses.len() as u64);
    let quorum = 2 * spans > lab_size;
    let root = root.map(|r| r.id);
    for s in statuses.values() {
        let expected = roles(Place {
            is_root: s.parent.is_none(),
            parent_is_root: s.parent.is_some() && s.parent == root,
            has_children: !s.children.is_empty(),
            quorum,
        });
        if s.roles != expected {
            return check(
                "roles",
                false,
                format!(
                    "node {} has roles {}, its place gives {}",
                    s.id,
                    list(s.roles.iter()),
                    list(expected.iter())
                ),
            );
        }
    }
    check("roles", true, "every node's roles follow SPEC §3.4".into())
}
