//! The story of an election, told from a trace (SPEC §9): what `labctl trace` shows step by step.
//!
//! A trace is every message sent and received and every state change of every node, in time
//! order ([`TraceLine`]), from the simulator or from a live lab's nodes. [`Story::of`] cuts it into
//! the steps a teacher walks through, for each epoch:
//!
//! 1. **Setup**: every node sends its id on every link; each link is then oriented from the
//!    smaller id to the larger, which makes the graph acyclic: sources (local minima) have only
//!    out-edges, sinks (local maxima) only in-edges.
//! 2. **Yo-Yo iterations**: each node's standing at the iteration's start (source, internal,
//!    sink) or pruned; the edges still in the election graph with their directions (the edges
//!    that carried the YO- values down); the values going down; the YES/NO answers and prune
//!    requests coming up. A NO reverses its edge for the next iteration; a prune deletes it.
//! 3. **SHOUT+**: the leader's Q wave and the Yes answers coming back (the tree's edges, each
//!    node's parent).
//! 4. **Roles**, once every node has taken its place.
//!
//! Messages are counted per step, beside the algorithms' bounds.

use std::collections::{BTreeMap, BTreeSet};

use labctl_core::bounds::Bounds;
use labctl_core::event::{Event, TraceEntry, TraceLine, Wire};
use labctl_core::message::{Body, Vote};
use labctl_core::report::Adjacency;
use labctl_core::roles::Role;
use labctl_core::yoyo::Standing;
use labctl_core::{Epoch, NodeId};
use serde::Serialize;

/// A node's part in one Yo-Yo iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Only out-edges: sends its own id down.
    Source,
    /// In- and out-edges: relays the minimum down and the answers up.
    Internal,
    /// Only in-edges: answers first.
    Sink,
    /// Out of the election graph (it pruned itself earlier).
    Pruned,
    /// The last source: the leader (the step after the last iteration).
    Leader,
}

impl From<Standing> for Part {
    fn from(standing: Standing) -> Part {
        match standing {
            Standing::Source => Part::Source,
            Standing::Internal => Part::Internal,
            Standing::Sink => Part::Sink,
        }
    }
}

/// A value sent down an edge in the YO- phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Down {
    /// The edge's tail.
    pub from: NodeId,
    /// The edge's head.
    pub to: NodeId,
    /// The smallest source id the sender saw.
    pub value: NodeId,
}

/// An answer sent up an edge in the -YO phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Up {
    /// The answering node (the edge's head).
    pub from: NodeId,
    /// The node answered (the edge's tail).
    pub to: NodeId,
    /// YES or NO (a NO reverses the edge).
    pub yes: bool,
    /// Delete this edge.
    pub prune: bool,
}

/// One Yo-Yo iteration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Iteration {
    /// Counted from 1.
    pub number: u32,
    /// Every member's part at the iteration's start.
    pub parts: BTreeMap<NodeId, Part>,
    /// The values that went down (one per directed edge of the election graph).
    pub down: Vec<Down>,
    /// The answers that came up.
    pub up: Vec<Up>,
    /// Nodes that pruned themselves during the iteration.
    pub pruned: Vec<NodeId>,
    /// Messages of the iteration (YO- and -YO).
    pub messages: u64,
}

/// SHOUT+'s wave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shout {
    /// The root.
    pub leader: NodeId,
    /// Each member's parent (the root's is None), in the order they joined.
    pub parents: BTreeMap<NodeId, Option<NodeId>>,
    /// Each member's depth.
    pub depths: BTreeMap<NodeId, u32>,
    /// Q messages.
    pub q: u64,
    /// Yes answers.
    pub yes: u64,
}

/// One epoch's election, start to roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Election {
    /// The epoch.
    pub epoch: Epoch,
    /// Why it started, as the first node to start it said (none for a lab's first election).
    pub cause: Option<String>,
    /// The nodes that took part: those at either end of its links (a node alone, when it has
    /// none).
    pub members: BTreeSet<NodeId>,
    /// The links the election ran on (smaller id first): a setup went both ways on each. (A
    /// node that came back starts the epoch it last saw and sends its setup to neighbours that
    /// run it already; those leave its link out.)
    pub links: BTreeSet<(NodeId, NodeId)>,
    /// Setup messages on its links.
    pub setup: u64,
    /// Setup messages sent, per (sender, receiver).
    #[serde(skip)]
    setups: BTreeMap<(NodeId, NodeId), u64>,
    /// The iterations, in order.
    pub iterations: Vec<Iteration>,
    /// The leader, once elected.
    pub leader: Option<NodeId>,
    /// The SHOUT+ wave, once the leader started it.
    pub shout: Option<Shout>,
    /// Each member's roles, once taken.
    pub roles: BTreeMap<NodeId, Vec<Role>>,
}

impl Election {
    /// The algorithms' bounds for the graph this election ran on (its members and links: after
    /// a failure, fewer than the lab's).
    pub fn bounds(&self) -> Bounds {
        Bounds::new(self.members.len() as u64, self.links.len() as u64)
    }
}

/// Every election of a trace, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Story {
    /// One per epoch.
    pub elections: Vec<Election>,
}

impl Story {
    /// Cut `trace` into elections and steps; `adjacency` is the lab's topology.
    pub fn of(trace: &[TraceLine], adjacency: &Adjacency) -> Story {
        let mut builder = Builder::default();
        for line in trace {
            builder.line(line, adjacency);
        }
        let mut elections: Vec<Election> = builder.elections.into_values().collect();
        for e in &mut elections {
            e.links = e
                .setups
                .keys()
                .filter(|(a, b)| e.setups.contains_key(&(*b, *a)))
                .map(|&(a, b)| (a.min(b), a.max(b)))
                .collect();
            e.setup = e
                .setups
                .iter()
                .filter(|((a, b), _)| e.links.contains(&((*a).min(*b), (*a).max(*b))))
                .map(|(_, count)| count)
                .sum();
            if !e.links.is_empty() {
                e.members = e.links.iter().flat_map(|&(a, b)| [a, b]).collect();
            }
        }
        Story { elections }
    }
}

/// What is known so far.
#[derive(Default)]
struct Builder {
    elections: BTreeMap<Epoch, Election>,
    /// Each node's current epoch.
    epoch_of: BTreeMap<NodeId, Epoch>,
    /// Per epoch, the nodes pruned so far.
    pruned: BTreeMap<Epoch, BTreeSet<NodeId>>,
    /// Each node's reason to want a new epoch, until it starts one.
    wanted: BTreeMap<NodeId, String>,
}

impl Builder {
    fn election(&mut self, epoch: Epoch) -> &mut Election {
        self.elections.entry(epoch).or_insert_with(|| Election {
            epoch,
            cause: None,
            members: BTreeSet::new(),
            links: BTreeSet::new(),
            setup: 0,
            setups: BTreeMap::new(),
            iterations: Vec::new(),
            leader: None,
            shout: None,
            roles: BTreeMap::new(),
        })
    }

    fn iteration(&mut self, epoch: Epoch, number: u32) -> &mut Iteration {
        let pruned = self.pruned.get(&epoch).cloned().unwrap_or_default();
        let election = self.election(epoch);
        while election.iterations.len() < number as usize {
            let next = election.iterations.len() as u32 + 1;
            let parts = pruned.iter().map(|&n| (n, Part::Pruned)).collect();
            election.iterations.push(Iteration {
                number: next,
                parts,
                down: Vec::new(),
                up: Vec::new(),
                pruned: Vec::new(),
                messages: 0,
            });
        }
        &mut election.iterations[number as usize - 1]
    }

    fn line(&mut self, line: &TraceLine, adjacency: &Adjacency) {
        let node = line.node;
        match &line.what {
            TraceEntry::Wire(Wire::Send { to, message }) => {
                let epoch = message.epoch;
                match message.body {
                    Body::Setup { .. } => {
                        if adjacency.get(&node).is_some_and(|n| n.contains(to)) {
                            *self.election(epoch).setups.entry((node, *to)).or_default() += 1;
                        }
                    }
                    Body::YoDown { iteration, value } => {
                        let it = self.iteration(epoch, iteration);
                        it.down.push(Down {
                            from: node,
                            to: *to,
                            value,
                        });
                        it.messages += 1;
                    }
                    Body::YoUp {
                        iteration,
                        vote,
                        prune,
                    } => {
                        let it = self.iteration(epoch, iteration);
                        it.up.push(Up {
                            from: node,
                            to: *to,
                            yes: vote == Vote::Yes,
                            prune,
                        });
                        it.messages += 1;
                    }
                    Body::Q { leader, .. } => {
                        let election = self.election(epoch);
                        // The leader's first Q starts the wave: the root of the tree.
                        let shout = election.shout.get_or_insert_with(|| Shout {
                            leader,
                            parents: BTreeMap::from([(leader, None)]),
                            depths: BTreeMap::from([(leader, 0)]),
                            q: 0,
                            yes: 0,
                        });
                        shout.q += 1;
                    }
                    Body::Yes { .. } => {
                        if let Some(shout) = self.election(epoch).shout.as_mut() {
                            shout.yes += 1;
                        }
                    }
                }
            }
            TraceEntry::Wire(Wire::Receive { .. }) => {}
            TraceEntry::Node(event) => {
                if let Event::EpochStarted { epoch } = event {
                    self.epoch_of.insert(node, *epoch);
                    let reason = self.wanted.remove(&node);
                    let election = self.election(*epoch);
                    election.members.insert(node);
                    if election.cause.is_none() {
                        election.cause = reason.map(|r| format!("node {node}: {r}"));
                    }
                    return;
                }
                if let Event::EpochWanted { reason, .. } = event {
                    self.wanted.entry(node).or_insert_with(|| reason.clone());
                    return;
                }
                let Some(&epoch) = self.epoch_of.get(&node) else {
                    return;
                };
                match event {
                    Event::Standing {
                        iteration,
                        standing,
                    } => {
                        self.iteration(epoch, *iteration)
                            .parts
                            .insert(node, Part::from(*standing));
                    }
                    Event::Pruned { iteration } => {
                        self.iteration(epoch, *iteration).pruned.push(node);
                        self.pruned.entry(epoch).or_default().insert(node);
                        // Later iterations other nodes began already: out of them too.
                        for later in self.election(epoch).iterations.iter_mut() {
                            if later.number > *iteration {
                                later.parts.insert(node, Part::Pruned);
                            }
                        }
                    }
                    Event::Elected { .. } => self.election(epoch).leader = Some(node),
                    Event::Joined { parent, depth, .. } => {
                        if let Some(shout) = self.election(epoch).shout.as_mut() {
                            shout.parents.insert(node, Some(*parent));
                            shout.depths.insert(node, *depth);
                        }
                    }
                    Event::Roles { roles } => {
                        self.election(epoch).roles.insert(node, roles.clone());
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use labctl_sim::{Config, Delivery, Simulation};
    use labctl_topology::Topology;

    use super::*;

    const SHIPPED: [&str; 16] = [
        "complete6",
        "grid3x3",
        "grid4x4-shuffled",
        "hypercube4",
        "kite8",
        "line8",
        "pair",
        "random30",
        "random50-shuffled",
        "ring12-shuffled",
        "ring6",
        "single",
        "star7",
        "star7-centre-max",
        "torus4x4",
        "tree15",
    ];

    fn topology(name: &str) -> Topology {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies")
            .join(format!("{name}.toml"));
        Topology::from_path(&path).expect("a shipped topology")
    }

    #[test]
    fn the_story_of_a_simulated_run_adds_up_to_its_report() {
        for name in SHIPPED {
            let topology = topology(name);
            let adjacency = topology.adjacency();
            let m = topology.links().len() as u64;
            for (delivery, seed) in [
                (Delivery::Sync, 0),
                (Delivery::Async, 1),
                (Delivery::Async, 7),
            ] {
                let context = format!("{name} {delivery:?} seed {seed}");
                let config = Config {
                    seed,
                    delivery,
                    trace: true,
                };
                let run = Simulation::run(&topology, &config).expect("the simulation runs");
                let story = Story::of(&run.trace, &adjacency);
                assert_eq!(story.elections.len(), 1, "{context}");
                let e = &story.elections[0];
                let report = &run.report;
                assert_eq!(e.members.len(), topology.node_count(), "{context}");
                assert_eq!(e.setup, 2 * m, "{context}");
                assert_eq!(e.setup, run.wire_setup, "{context}");
                assert_eq!(e.iterations.len() as u32, report.iterations, "{context}");
                let per_iteration: Vec<u64> = e.iterations.iter().map(|i| i.messages).collect();
                assert_eq!(per_iteration, run.wire_iterations, "{context}");
                assert_eq!(
                    e.setup + per_iteration.iter().sum::<u64>(),
                    report.messages.election,
                    "{context}"
                );
                assert_eq!(e.leader, report.leader, "{context}");
                let shout = e.shout.as_ref();
                assert_eq!(
                    shout.map_or(0, |s| s.q + s.yes),
                    report.messages.tree,
                    "{context}"
                );
                if let Some(shout) = shout {
                    let parents: BTreeMap<String, Option<NodeId>> = shout
                        .parents
                        .iter()
                        .map(|(id, p)| (id.to_string(), *p))
                        .collect();
                    assert_eq!(parents, report.tree, "{context}");
                }
                let roles: BTreeMap<String, Vec<Role>> = e
                    .roles
                    .iter()
                    .map(|(id, r)| (id.to_string(), r.clone()))
                    .collect();
                assert_eq!(roles, report.roles, "{context}");
                for it in &e.iterations {
                    // Every member has a part; every value went down a link of the topology,
                    // and every answer came back up one that carried a value.
                    assert_eq!(
                        it.parts.len(),
                        e.members.len(),
                        "{context} iteration {}",
                        it.number
                    );
                    for d in &it.down {
                        assert!(adjacency[&d.from].contains(&d.to), "{context}");
                    }
                    for u in &it.up {
                        assert!(
                            it.down.iter().any(|d| d.from == u.to && d.to == u.from),
                            "{context}: an answer {u:?} up an edge no value came down"
                        );
                    }
                    assert!(it.messages <= 2 * m, "{context}");
                }
                if let Some(first) = e.iterations.first() {
                    // Setup orients every link from the smaller id to the larger.
                    assert!(first.down.iter().all(|d| d.from < d.to), "{context}");
                    assert_eq!(first.down.len() as u64, m, "{context}");
                    let sources = first.parts.values().filter(|p| **p == Part::Source).count();
                    assert!(sources >= 1, "{context}");
                }
            }
        }
    }

    #[test]
    fn parts_follow_the_core_events() {
        // ring6 in synchronous rounds: in iteration 1 the sources are the local minima of the
        // ring's ids; a pruned node stays pruned in later iterations.
        let topology = topology("ring12-shuffled");
        let adjacency = topology.adjacency();
        let config = Config {
            seed: 0,
            delivery: Delivery::Sync,
            trace: true,
        };
        let run = Simulation::run(&topology, &config).unwrap();
        let story = Story::of(&run.trace, &adjacency);
        let e = &story.elections[0];
        for (&id, part) in &e.iterations[0].parts {
            let minimum = adjacency[&id].iter().all(|&n| id < n);
            let maximum = adjacency[&id].iter().all(|&n| id > n);
            let expected = match (minimum, maximum) {
                (true, _) => Part::Source,
                (_, true) => Part::Sink,
                _ => Part::Internal,
            };
            assert_eq!(*part, expected, "node {id}");
        }
        let mut pruned = BTreeSet::new();
        for it in &e.iterations {
            for id in &pruned {
                assert_eq!(it.parts[id], Part::Pruned, "iteration {}", it.number);
            }
            pruned.extend(it.pruned.iter().copied());
        }
    }
}
