//! The lab report (SPEC §7, a contract) and the named invariants it is checked against.
//!
//! The same report describes a simulated run and a live lab: it is built from the nodes' own
//! [`Status`]es and the topology's adjacency, so every runtime is judged by the same rules.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::bounds::Bounds;
use crate::graph::Graph;
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

    /// [`Report::build`] on a graph in rows and its nodes' statuses in index order (as the
    /// simulator holds them): the same report, without a map of a million entries to look
    /// nodes up in.
    pub fn build_rows(
        lab: &str,
        runtime: &str,
        graph: &Graph,
        statuses: &[Status],
        elapsed_ms: u64,
    ) -> Report {
        let two = statuses.len() >= TWO_THREADS;
        Report::build_rows_on(lab, runtime, graph, statuses, elapsed_ms, two)
    }

    /// [`Report::build_rows`], on two threads or one.
    fn build_rows_on(
        lab: &str,
        runtime: &str,
        graph: &Graph,
        statuses: &[Status],
        elapsed_ms: u64,
        two: bool,
    ) -> Report {
        // The maps by id text and the checks read the statuses only, each on its own: a large
        // run makes them on two threads (this one the maps, whose blocks then reuse what the
        // nodes gave back to this thread's heap; a helper the checks, which allocate little).
        let judge = || {
            let members: Vec<&Status> = statuses.iter().collect();
            if !covers(graph, &members) {
                return None;
            }
            let part = Part::new(Cow::Borrowed(graph), members, graph.len() as u64);
            // A spanning tree along the graph's links shows it connected; else look.
            let spanned = part
                .checks
                .iter()
                .any(|c| c.name == "spanning_tree" && c.ok);
            (spanned || graph.components().len() == 1).then_some(part)
        };
        let (part, shown) = if two {
            std::thread::scope(|scope| {
                let judging = scope.spawn(judge);
                let shown = Shown::of(statuses.iter());
                (
                    judging.join().expect("the report's checks do not panic"),
                    Some(shown),
                )
            })
        } else {
            (judge(), None)
        };
        let Some(part) = part else {
            // Rare (a disconnected graph, statuses not exactly the graph's nodes in order):
            // judged part by part, on maps.
            let statuses = statuses.iter().map(|s| (s.id, s.clone())).collect();
            return Report::build(lab, runtime, &graph.adjacency(), &statuses, elapsed_ms);
        };
        let mut report = Report::of_parts(
            lab,
            runtime,
            (graph.len(), graph.links()),
            vec![part],
            shown.unwrap_or_else(|| Shown::of(statuses.iter())),
            elapsed_ms,
        );
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
        let parts = components(live)
            .iter()
            .map(|part| {
                // A component that is the whole live graph (a lab with nothing cut) is judged
                // on the graph as given, not a copy of it restricted to itself.
                let graph = if part.len() == live.len() {
                    Graph::from_adjacency(live)
                } else {
                    Graph::from_adjacency(&restrict(live, part))
                };
                let members = statuses.values().filter(|s| part.contains(&s.id)).collect();
                Part::new(Cow::Owned(graph), members, lab_size)
            })
            .collect();
        let links = adjacency.values().map(|s| s.len()).sum::<usize>() / 2;
        let shown = Shown::of(statuses.values().filter(|s| live.contains_key(&s.id)));
        Report::of_parts(
            lab,
            runtime,
            (adjacency.len(), links),
            parts,
            shown,
            elapsed_ms,
        )
    }

    /// The report on a lab of `size` (nodes, links) whose live graph is `parts`, showing the
    /// tree and roles `shown`.
    fn of_parts(
        lab: &str,
        runtime: &str,
        size: (usize, usize),
        parts: Vec<Part<'_>>,
        shown: Shown,
        elapsed_ms: u64,
    ) -> Report {
        let components: Vec<Component> = parts.iter().map(|p| p.component.clone()).collect();
        // The component the figures are about: the quorum's, else the largest.
        let focus = components.iter().position(|c| c.quorum).or_else(|| {
            (0..parts.len()).max_by_key(|&i| (parts[i].graph.len(), std::cmp::Reverse(i)))
        });
        let nothing = Graph::default();
        let (graph, members): (&Graph, &[&Status]) = match focus {
            Some(i) => (&parts[i].graph, &parts[i].members),
            None => (&nothing, &[]),
        };
        let bounds = Bounds::new(graph.len() as u64, graph.links() as u64);
        let epoch = members.iter().map(|s| s.epoch).max().unwrap_or(0);
        let current = || members.iter().filter(move |s| s.epoch == epoch);
        // In one pass over the nodes (a million of them, each out-degree list a block of its
        // own): the messages, the iterations, and each iteration's live edges.
        let mut messages = Messages {
            election: 0,
            tree: 0,
        };
        let mut setup = 0;
        let mut iterations = 0;
        let mut edges: Vec<usize> = Vec::new();
        for s in current() {
            messages.election += s.counters.election();
            messages.tree += s.counters.tree();
            setup += s.counters.setup;
            iterations = iterations.max(s.counters.iterations);
            let degrees = &s.counters.out_degrees;
            if edges.len() < degrees.len() {
                edges.resize(degrees.len(), 0);
            }
            for (sum, degree) in edges.iter_mut().zip(degrees) {
                *sum += degree;
            }
        }
        edges.resize(iterations as usize, 0);
        // Each live edge carries one YO- and one -YO: 2 × the sum of out-degrees.
        let mut election_phases = vec![setup];
        election_phases.extend(edges.iter().map(|&e| 2 * e as u64));
        // The convergence checks, over every component; then the costs of the focus.
        let mut checks: Vec<Check> = CONVERGENCE
            .iter()
            .map(|name| {
                let found: Vec<&Check> = parts
                    .iter()
                    .filter_map(|p| p.checks.iter().find(|c| c.name == *name))
                    .collect();
                let ok = found.iter().all(|c| c.ok);
                let detail = if parts.len() == 1 {
                    found.first().map(|c| c.detail.clone()).unwrap_or_default()
                } else {
                    let mut parts_detail: Vec<String> = Vec::new();
                    for part in &parts {
                        if let Some(c) = part.checks.iter().find(|c| c.name == *name) {
                            let first = part.graph.ids().first().copied().unwrap_or(0);
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
        Report {
            lab: lab.to_string(),
            runtime: runtime.to_string(),
            nodes: size.0,
            links: size.1,
            epoch: quorum.and_then(|c| c.epoch),
            leader: quorum.and_then(|c| c.leader),
            tree: shown.tree,
            depth: shown.depth,
            roles: shown.roles,
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

/// Runs of at least this many statuses build their report on two threads.
const TWO_THREADS: usize = 50_000;

/// What a report shows of its nodes: the tree, its depth and the roles, by id text.
struct Shown {
    tree: BTreeMap<String, Option<NodeId>>,
    depth: u32,
    roles: BTreeMap<String, Vec<Role>>,
}

impl Shown {
    fn of<'a>(shown: impl Iterator<Item = &'a Status>) -> Shown {
        // The maps keyed by the ids' text are built from a list already in the text's order:
        // a million keys are then placed in one pass, not compared in a sort.
        let shown: Vec<&Status> = shown.collect();
        // In the statuses' own order, one after the other (a million of them, read in the text's
        // order, would each be a miss).
        let depth = shown.iter().filter_map(|s| s.depth).max().unwrap_or(0);
        let mut order: Vec<(u128, u32, u32)> = (0..shown.len())
            .map(|i| {
                let (scaled, digits) = text_order(shown[i].id);
                (scaled, digits, i as u32)
            })
            .collect();
        order.sort_unstable();
        let shown: Vec<&Status> = order.iter().map(|&(_, _, i)| shown[i as usize]).collect();
        drop(order);
        Shown {
            tree: shown.iter().map(|s| (s.id.to_string(), s.parent)).collect(),
            depth,
            roles: shown
                .iter()
                .map(|s| (s.id.to_string(), s.roles.clone()))
                .collect(),
        }
    }
}

/// A key that orders ids as their decimal text orders (`"10" < "9"`), as the report's maps keyed
/// by that text do: the number scaled to 20 digits, then its length (`"1" < "10"`).
fn text_order(id: NodeId) -> (u128, u32) {
    let digits = id.checked_ilog10().unwrap_or(0) + 1;
    (u128::from(id) * 10u128.pow(20 - digits), digits)
}

/// One component of the live graph, its nodes' statuses, and how it is judged.
struct Part<'a> {
    graph: Cow<'a, Graph>,
    /// The statuses of its nodes, in id order (some may be missing: the checks say so).
    members: Vec<&'a Status>,
    checks: Vec<Check>,
    component: Component,
}

impl<'a> Part<'a> {
    fn new(graph: Cow<'a, Graph>, members: Vec<&'a Status>, lab_size: u64) -> Part<'a> {
        let checks = converged_on(&graph, &members, lab_size);
        let epoch = members.iter().map(|s| s.epoch).max();
        let roots: Vec<NodeId> = members
            .iter()
            .filter(|s| Some(s.epoch) == epoch && s.election == Phase::Leader)
            .map(|s| s.id)
            .collect();
        let converged = checks.iter().all(|c| c.ok);
        // Settled: no node waiting to start an epoch, and every link taken into the election
        // at both ends.
        let settled = converged
            && members.iter().all(|s| !s.pending)
            && covers(&graph, &members)
            && members
                .iter()
                .enumerate()
                .all(|(i, s)| graph.neighbor_ids(i).all(|l| s.members.contains(&l)));
        let component = Component {
            nodes: graph.ids().to_vec(),
            leader: (roots.len() == 1).then(|| roots[0]),
            epoch,
            quorum: 2 * graph.len() as u64 > lab_size,
            converged,
            settled,
        };
        Part {
            graph,
            members,
            checks,
            component,
        }
    }
}

/// The checks that together mean "converged": agreement, a spanning tree, roles.
pub const CONVERGENCE: [&str; 4] = ["one_epoch", "one_leader", "spanning_tree", "roles"];

/// The connected parts of a graph, ordered by their smallest id.
pub fn components(adjacency: &Adjacency) -> Vec<BTreeSet<NodeId>> {
    let graph = Graph::from_adjacency(adjacency);
    graph
        .components()
        .iter()
        .map(|part| part.iter().map(|&i| graph.ids()[i as usize]).collect())
        .collect()
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
/// `statuses` are the nodes', in id order.
pub fn converged_on(graph: &Graph, statuses: &[&Status], lab_size: u64) -> Vec<Check> {
    vec![
        one_epoch(statuses),
        one_leader(graph, statuses),
        spanning_tree(graph, statuses),
        roles_follow_tree(statuses, lab_size),
    ]
}

/// The statuses are exactly the graph's nodes', in index order.
fn covers(graph: &Graph, statuses: &[&Status]) -> bool {
    statuses.len() == graph.len()
        && statuses
            .iter()
            .map(|s| s.id)
            .eq(graph.ids().iter().copied())
}

/// The algorithms' costs against their figures (SPEC §3.2, §3.3).
fn cost_checks(
    statuses: &[&Status],
    bounds: &Bounds,
    messages: Messages,
    iterations: u32,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let setup: u64 = statuses.iter().map(|s| s.counters.setup).sum();
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
pub fn one_epoch(statuses: &[&Status]) -> Check {
    let epochs: BTreeSet<Epoch> = statuses.iter().map(|s| s.epoch).collect();
    check(
        "one_epoch",
        epochs.len() == 1,
        format!("epochs seen: {}", list(epochs.iter())),
    )
}

/// Exactly one node won, it is the minimum id, and every node knows it.
pub fn one_leader(graph: &Graph, statuses: &[&Status]) -> Check {
    let minimum = graph.ids().first().copied();
    let winners: Vec<NodeId> = statuses
        .iter()
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
    if let Some(s) = statuses.iter().find(|s| s.leader != minimum) {
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
pub fn spanning_tree(graph: &Graph, statuses: &[&Status]) -> Check {
    let fail = |detail: String| check("spanning_tree", false, detail);
    if !covers(graph, statuses) {
        return fail("the statuses do not cover exactly the topology's nodes".into());
    }
    let roots: Vec<usize> = (0..statuses.len())
        .filter(|&i| statuses[i].parent.is_none())
        .collect();
    if roots.len() != 1 {
        return fail(format!(
            "nodes without a parent: {} (want exactly one)",
            list(roots.iter().map(|&i| statuses[i].id))
        ));
    }
    let root = roots[0];
    let root_id = statuses[root].id;
    if statuses[root].leader != Some(root_id) {
        return fail(format!("the root {root_id} is not the leader"));
    }
    // Each node's children by index, as their parent pointers say (in id order, as a node lists
    // its own): counted first, then placed, in one array.
    let mut parent_of = vec![u32::MAX; statuses.len()];
    let mut first = vec![0u32; statuses.len() + 1];
    for (i, s) in statuses.iter().enumerate() {
        if let Some(p) = s.parent {
            // Among the node's few neighbours, not a search of the whole graph.
            let j = graph
                .neighbors(i)
                .iter()
                .find(|&&n| graph.ids()[n as usize] == p);
            let Some(&j) = j else {
                return fail(format!("node {}'s parent {p} is not a neighbour", s.id));
            };
            parent_of[i] = j;
            first[j as usize + 1] += 1;
        }
    }
    for j in 0..statuses.len() {
        first[j + 1] += first[j];
    }
    let mut children = vec![0u32; first[statuses.len()] as usize];
    let mut next = first.clone();
    for (i, &p) in parent_of.iter().enumerate() {
        if p != u32::MAX {
            children[next[p as usize] as usize] = i as u32;
            next[p as usize] += 1;
        }
    }
    // Children lists mirror the parent pointers, node by node in index order (a child's id is
    // the graph's, the same as its status's: `covers`).
    for (i, status) in statuses.iter().enumerate() {
        let kids = &children[first[i] as usize..first[i + 1] as usize];
        let ids = kids.iter().map(|&k| graph.ids()[k as usize]);
        if !status.children.iter().copied().eq(ids.clone()) {
            return fail(format!(
                "node {} lists children {}, parents say {}",
                status.id,
                list(status.children.iter()),
                list(ids)
            ));
        }
    }
    // Walk down from the root: every node must be reached exactly once, at the depth it reports.
    // The walk goes through the nodes at random: it reads the depths gathered in one small
    // array, not a million statuses.
    let depths: Vec<Option<u32>> = statuses.iter().map(|s| s.depth).collect();
    let mut seen = vec![false; statuses.len()];
    seen[root] = true;
    let mut reached = 1;
    let mut queue = VecDeque::from([(root, 0u32)]);
    while let Some((i, depth)) = queue.pop_front() {
        if depths[i] != Some(depth) {
            return fail(format!(
                "node {} reports depth {}, is at {depth}",
                statuses[i].id,
                maybe(depths[i])
            ));
        }
        for &child in &children[first[i] as usize..first[i + 1] as usize] {
            if !seen[child as usize] {
                seen[child as usize] = true;
                reached += 1;
                queue.push_back((child as usize, depth + 1));
            }
        }
    }
    if reached != graph.len() {
        let missing = seen.iter().position(|&s| !s).map(|i| statuses[i].id);
        return fail(format!(
            "{reached} of {} nodes hang from the root; node {} does not",
            graph.len(),
            maybe(missing)
        ));
    }
    if statuses[root].subtree != Some(graph.len() as u64) {
        return fail(format!(
            "the root counted {} nodes, the topology has {}",
            maybe(statuses[root].subtree),
            graph.len()
        ));
    }
    check(
        "spanning_tree",
        true,
        format!("{reached} nodes under root {root_id}"),
    )
}

/// Every node holds the roles SPEC §3.4 gives its place in the tree, the root `writer` only if
/// its tree spans a strict majority of a lab of `lab_size` nodes.
pub fn roles_follow_tree(statuses: &[&Status], lab_size: u64) -> Check {
    let root = statuses.iter().find(|r| r.parent.is_none());
    let spans = root
        .and_then(|r| r.subtree)
        .unwrap_or(statuses.len() as u64);
    let quorum = 2 * spans > lab_size;
    let root = root.map(|r| r.id);
    for s in statuses {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Counters;
    use proptest::prelude::*;

    /// A graph of `links` between the ids 1..=n.
    fn graph(n: u64, links: &[(u64, u64)]) -> Adjacency {
        let mut adjacency: Adjacency = (1..=n).map(|id| (id, BTreeSet::new())).collect();
        for &(a, b) in links {
            adjacency.get_mut(&a).unwrap().insert(b);
            adjacency.get_mut(&b).unwrap().insert(a);
        }
        adjacency
    }

    /// The statuses of a converged lab over `adjacency` whose tree is `parents` (child, parent),
    /// rooted at node 1: what the nodes would report, worked out by hand.
    fn converged(adjacency: &Adjacency, parents: &[(u64, u64)]) -> Vec<Status> {
        let parent = |id| parents.iter().find(|&&(c, _)| c == id).map(|&(_, p)| p);
        let depth = |mut id| {
            let mut d = 0;
            while let Some(p) = parent(id) {
                (id, d) = (p, d + 1);
            }
            d
        };
        let below = |id| {
            (1..=adjacency.len() as u64)
                .filter(|&n| {
                    let mut up = Some(n);
                    while let Some(u) = up {
                        if u == id {
                            return true;
                        }
                        up = parent(u);
                    }
                    false
                })
                .count() as u64
        };
        adjacency
            .iter()
            .map(|(&id, neighbors)| {
                let children: Vec<NodeId> = parents
                    .iter()
                    .filter(|&&(_, p)| p == id)
                    .map(|&(c, _)| c)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let members = neighbors.iter().copied().collect();
                status(id, parent(id), depth(id), children, below(id), members)
            })
            .collect()
    }

    /// The status of node `id` of a converged lab whose leader is node 1 (with a quorum): under
    /// `parent` at `depth`, with `children` and `subtree` nodes in its subtree, its neighbours
    /// `members`.
    fn status(
        id: NodeId,
        parent: Option<NodeId>,
        depth: u32,
        children: Vec<NodeId>,
        subtree: u64,
        members: Vec<NodeId>,
    ) -> Status {
        let place = Place {
            is_root: parent.is_none(),
            parent_is_root: parent == Some(1),
            has_children: !children.is_empty(),
            quorum: true,
        };
        Status {
            id,
            epoch: 1,
            election: if parent.is_none() {
                Phase::Leader
            } else {
                Phase::Pruned
            },
            leader: Some(1),
            parent,
            depth: Some(depth),
            children,
            subtree: Some(subtree),
            roles: crate::roles::roles(place),
            counters: Counters::default(),
            members,
            suspected: Vec::new(),
            pending: false,
        }
    }

    /// The spanning tree check of `statuses` over `adjacency`, as a large run's report makes it.
    fn tree_check(adjacency: &Adjacency, statuses: &[Status]) -> Check {
        let report = Report::build_rows("t", "sim", &Graph::from_adjacency(adjacency), statuses, 0);
        report
            .checks
            .into_iter()
            .find(|c| c.name == "spanning_tree")
            .expect("the report checks the tree")
    }

    // A square 1-2-3-4 with the chord 2-4 and a tail 4-5; the tree 2→1, 4→1, 3→2, 5→4.
    const LINKS: [(u64, u64); 6] = [(1, 2), (2, 3), (3, 4), (4, 1), (2, 4), (4, 5)];
    const TREE: [(u64, u64); 4] = [(2, 1), (4, 1), (3, 2), (5, 4)];

    #[test]
    fn a_true_spanning_tree_passes() {
        let adjacency = graph(5, &LINKS);
        let statuses = converged(&adjacency, &TREE);
        let check = tree_check(&adjacency, &statuses);
        assert!(check.ok, "{}", check.detail);
        let report =
            Report::build_rows("t", "sim", &Graph::from_adjacency(&adjacency), &statuses, 0);
        assert!(report.converged);
        assert_eq!(report.depth, 2);
        assert_eq!(report.tree["5"], Some(4));
    }

    #[test]
    fn the_tree_check_finds_each_kind_of_lie() {
        let adjacency = graph(5, &LINKS);
        let lie = |change: &dyn Fn(&mut Vec<Status>), says: &str| {
            let mut statuses = converged(&adjacency, &TREE);
            change(&mut statuses);
            let check = tree_check(&adjacency, &statuses);
            assert!(!check.ok, "passed: {}", check.detail);
            assert!(
                check.detail.contains(says),
                "{} (wanted {says})",
                check.detail
            );
        };
        lie(&|s| s[4].depth = Some(3), "node 5 reports depth 3, is at 2");
        lie(&|s| s[2].depth = None, "node 3 reports depth none");
        lie(
            &|s| s[3].children.clear(),
            "node 4 lists children none, parents say 5",
        );
        lie(&|s| s[1].children.push(5), "node 2 lists children 3, 5");
        // 3 and 5 hang from each other, away from the root (5's parent not a neighbour first).
        lie(
            &|s| s[4].parent = Some(3),
            "node 5's parent 3 is not a neighbour",
        );
        lie(
            &|s| {
                // 3 ↔ 2 ↔ … a loop of 2 and 3, each the other's parent and child.
                s[1].parent = Some(3);
                s[1].children = vec![3];
                s[2].children = vec![2];
                s[0].children = vec![4];
            },
            "3 of 5 nodes hang from the root; node 2 does not",
        );
        lie(&|s| s[0].subtree = Some(4), "the root counted 4 nodes");
    }

    #[test]
    fn two_threads_make_the_same_report_as_one() {
        // A path of 60,000 nodes rooted at its end, converged; then the same with a lie in it.
        let n = 60_000u64;
        let graph = Graph::from_numbered((1..=n).collect(), (1..n as usize).map(|i| (i - 1, i)));
        let mut statuses: Vec<Status> = (1..=n)
            .map(|id| {
                let children = if id < n { vec![id + 1] } else { vec![] };
                let members = [id - 1, id + 1].into_iter().filter(|m| (1..=n).contains(m));
                let parent = (id > 1).then(|| id - 1);
                status(
                    id,
                    parent,
                    id as u32 - 1,
                    children,
                    n - id + 1,
                    members.collect(),
                )
            })
            .collect();
        let one = Report::build_rows_on("t", "sim", &graph, &statuses, 0, false);
        let two = Report::build_rows_on("t", "sim", &graph, &statuses, 0, true);
        assert!(one.converged);
        assert_eq!(one, two);
        statuses[30_000].depth = Some(7);
        let one = Report::build_rows_on("t", "sim", &graph, &statuses, 0, false);
        let two = Report::build_rows_on("t", "sim", &graph, &statuses, 0, true);
        assert!(!one.converged);
        assert_eq!(one, two);
    }

    #[test]
    fn a_report_on_a_graph_in_two_parts_judges_each() {
        // Two separate triangles, each a converged tree of its own: not one spanning tree.
        let adjacency = graph(6, &[(1, 2), (2, 3), (3, 1), (4, 5), (5, 6), (6, 4)]);
        let mut statuses = converged(&adjacency, &[(2, 1), (3, 1), (5, 4), (6, 4)]);
        for s in &mut statuses[3..] {
            s.leader = Some(4);
        }
        let report =
            Report::build_rows("t", "sim", &Graph::from_adjacency(&adjacency), &statuses, 0);
        // Each part is a tree of its own, judged on its own; the lab as a whole did not converge.
        assert!(!report.converged);
        let tree = report
            .checks
            .iter()
            .find(|c| c.name == "spanning_tree")
            .unwrap();
        assert!(
            tree.detail.contains("component of 1: 3 nodes under root 1")
                && tree.detail.contains("component of 4: 3 nodes under root 4"),
            "{}",
            tree.detail
        );
    }

    proptest! {
        #[test]
        fn ids_in_text_order_are_in_the_order_of_their_text(
            mut ids in proptest::collection::vec(
                prop_oneof![1u64..1000, 1u64..u64::MAX, Just(u64::MAX), Just(10), Just(1), Just(0)],
                0..200,
            )
        ) {
            ids.sort_unstable_by_key(|&id| text_order(id));
            let text: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            let mut sorted = text.clone();
            sorted.sort();
            prop_assert_eq!(text, sorted);
        }
    }
}
