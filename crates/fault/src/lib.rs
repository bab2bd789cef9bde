//! Faults, as one object everywhere (SPEC §7): what `labctl fault` applies, what a lab's report
//! lists in force, what the simulator's fault mode schedules, what chaos scenarios step through.
//!
//! ```json
//! {"action": "kill", "node": 3}
//! {"action": "cut", "a": 1, "b": 2}
//! {"action": "partition", "groups": [[1, 2], [3, 4, 5, 6]]}
//! {"action": "delay", "a": 1, "b": 2, "ms": 200}
//! {"action": "loss", "a": 1, "b": 2, "percent": 20}
//! ```
//!
//! The crate is pure: [`InForce`] is the set of faults in force on a lab, and
//! [`InForce::apply`] checks a fault against the topology and that set, and either changes the
//! set or says why not (changing nothing). Runtimes then carry the change out for real (signals,
//! containers, networks, the nodes' link filters), and reports derive from the set what the lab
//! looks like now: which nodes are down or paused, which links are cut, and so its **components**
//! (SPEC §6).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use labctl_core::report::components;
use labctl_core::report::Adjacency;
use labctl_core::NodeId;
use serde::{Deserialize, Serialize};

/// A node a fault names: an id, or the quorum component's root at the moment it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Target {
    /// A node id.
    Id(NodeId),
    /// A name resolved when the fault is applied.
    Named(Named),
}

/// The names a [`Target`] may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Named {
    /// The root of the component holding a quorum (the writer).
    Leader,
}

impl Target {
    /// The quorum component's root.
    pub const LEADER: Target = Target::Named(Named::Leader);

    /// The id, once resolved.
    pub fn id(self) -> Option<NodeId> {
        match self {
            Target::Id(id) => Some(id),
            Target::Named(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Id(id) => write!(f, "{id}"),
            Target::Named(Named::Leader) => f.write_str("leader"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "leader" {
            return Ok(Target::LEADER);
        }
        match text.parse::<NodeId>() {
            Ok(id) if id > 0 => Ok(Target::Id(id)),
            _ => Err(format!(
                "{text:?} is not a node: give a node id (a positive whole number) or `leader`"
            )),
        }
    }
}

/// One fault, or the undoing of one (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Kill a node (SIGKILL; a container killed): it is down until restarted.
    Kill {
        /// The node.
        node: Target,
    },
    /// Freeze a node (SIGSTOP; a container paused).
    Pause {
        /// The node.
        node: Target,
    },
    /// Thaw a paused node.
    Resume {
        /// The node.
        node: Target,
    },
    /// Start a node again on its own folder (a running one is killed first).
    Restart {
        /// The node.
        node: Target,
    },
    /// Cut the link between two neighbours.
    Cut {
        /// One end.
        a: Target,
        /// The other end.
        b: Target,
    },
    /// Undo every fault on the link between two neighbours (a cut, a delay, a loss).
    Heal {
        /// One end.
        a: Target,
        /// The other end.
        b: Target,
    },
    /// Cut every link between the groups, which hold every node once.
    Partition {
        /// The groups.
        groups: Vec<Vec<NodeId>>,
    },
    /// Delay every frame on the link by `ms`, both ways (FIFO kept).
    Delay {
        /// One end.
        a: Target,
        /// The other end.
        b: Target,
        /// The delay, in milliseconds.
        ms: u64,
    },
    /// Lose frames on the link with probability `percent`, as TCP does: a lost frame is sent
    /// again after a retransmission timeout (200 ms, doubling), so the algorithms see delay.
    Loss {
        /// One end.
        a: Target,
        /// The other end.
        b: Target,
        /// The probability, in percent.
        percent: u32,
    },
    /// Undo every fault in force.
    HealAll,
}

/// The longest delay a `delay` fault may add, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;
/// The highest loss a `loss` fault may set, in percent (at 100 % nothing would ever arrive).
pub const MAX_LOSS_PERCENT: u32 = 90;

impl Fault {
    /// The action's name, as the JSON and the CLI spell it.
    pub fn action(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Resume { .. } => "resume",
            Fault::Restart { .. } => "restart",
            Fault::Cut { .. } => "cut",
            Fault::Heal { .. } => "heal",
            Fault::Partition { .. } => "partition",
            Fault::Delay { .. } => "delay",
            Fault::Loss { .. } => "loss",
            Fault::HealAll => "heal-all",
        }
    }

    /// Whether it names `leader` somewhere (then the caller must find the quorum root first).
    pub fn names_leader(&self) -> bool {
        self.targets().iter().any(|t| t.id().is_none())
    }

    fn targets(&self) -> Vec<Target> {
        match *self {
            Fault::Kill { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::Restart { node } => vec![node],
            Fault::Cut { a, b }
            | Fault::Heal { a, b }
            | Fault::Delay { a, b, .. }
            | Fault::Loss { a, b, .. } => vec![a, b],
            Fault::Partition { .. } | Fault::HealAll => Vec::new(),
        }
    }

    /// The same fault with `leader` replaced by `leader`'s value (None: no component holds a
    /// quorum now).
    pub fn resolve(&self, leader: Option<NodeId>) -> Result<Fault, FaultError> {
        let one = |t: Target| match t {
            Target::Id(_) => Ok(t),
            Target::Named(Named::Leader) => leader.map(Target::Id).ok_or(FaultError::NoLeader),
        };
        Ok(match self.clone() {
            Fault::Kill { node } => Fault::Kill { node: one(node)? },
            Fault::Pause { node } => Fault::Pause { node: one(node)? },
            Fault::Resume { node } => Fault::Resume { node: one(node)? },
            Fault::Restart { node } => Fault::Restart { node: one(node)? },
            Fault::Cut { a, b } => Fault::Cut {
                a: one(a)?,
                b: one(b)?,
            },
            Fault::Heal { a, b } => Fault::Heal {
                a: one(a)?,
                b: one(b)?,
            },
            Fault::Delay { a, b, ms } => Fault::Delay {
                a: one(a)?,
                b: one(b)?,
                ms,
            },
            Fault::Loss { a, b, percent } => Fault::Loss {
                a: one(a)?,
                b: one(b)?,
                percent,
            },
            other => other,
        })
    }
}

impl fmt::Display for Fault {
    /// What the fault does, in words: `kill node 3`, `cut link 1–2`, `partition 1,2 | 3,4,5,6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::Restart { node } => write!(f, "{} node {node}", self.action()),
            Fault::Cut { a, b } | Fault::Heal { a, b } => {
                write!(f, "{} link {a}–{b}", self.action())
            }
            Fault::Delay { a, b, ms } => write!(f, "delay link {a}–{b} by {ms} ms"),
            Fault::Loss { a, b, percent } => write!(f, "lose {percent} % on link {a}–{b}"),
            Fault::Partition { groups } => {
                let groups: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                write!(f, "partition {}", groups.join(" | "))
            }
            Fault::HealAll => f.write_str("heal everything"),
        }
    }
}

/// Why a fault was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// The fault names a node the topology does not have.
    #[error("the lab has no node {id} (its nodes: {known})")]
    UnknownNode {
        /// The id named.
        id: NodeId,
        /// The lab's ids, for the message.
        known: String,
    },
    /// The two nodes share no link.
    #[error("nodes {a} and {b} share no link (node {a}'s neighbours: {neighbors})")]
    NoLink {
        /// One end.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// `a`'s neighbours, for the message.
        neighbors: String,
    },
    /// A link fault names the same node twice.
    #[error("a link joins two different nodes; {0} and {0} are the same")]
    SameNode(NodeId),
    /// `leader` was named, but no component holds a quorum.
    #[error(
        "no component of the lab holds a quorum now, so it has no leader to name; name a node id"
    )]
    NoLeader,
    /// The fault does not fit the node's state.
    #[error("node {node} is {state}: {hint}")]
    NodeState {
        /// The node.
        node: NodeId,
        /// What it is now.
        state: &'static str,
        /// What would work.
        hint: &'static str,
    },
    /// The link is cut already.
    #[error("link {a}–{b} is cut already{by}")]
    AlreadyCut {
        /// One end.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// ` (by the partition …)`, or empty.
        by: String,
    },
    /// Nothing to heal on that link.
    #[error("no fault is in force on link {a}–{b}; `labctl status` lists the faults in force")]
    NothingToHeal {
        /// One end.
        a: NodeId,
        /// The other.
        b: NodeId,
    },
    /// The link is cut by a partition, which only `heal --all` undoes.
    #[error(
        "link {a}–{b} is cut by the partition {partition}; `labctl fault heal --all` undoes it"
    )]
    CutByPartition {
        /// One end.
        a: NodeId,
        /// The other.
        b: NodeId,
        /// The partition, in words.
        partition: String,
    },
    /// The partition's groups are not a partition of the lab's nodes.
    #[error("not a partition of the lab's nodes: {0}")]
    BadPartition(String),
    /// A delay or a loss out of range.
    #[error("{0}")]
    BadValue(String),
}

/// A fault in force and when it was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// The fault (node ids resolved).
    #[serde(flatten)]
    pub fault: Fault,
    /// When it was applied, in milliseconds since the Unix epoch (or the simulation's start).
    pub since_unix_ms: u64,
}

/// What a runtime must do to a node to carry a fault out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// SIGKILL the process, kill the container.
    Kill,
    /// SIGSTOP, pause the container.
    Pause,
    /// SIGCONT, unpause the container.
    Resume,
    /// Start it again on its own folder (killing it first if it runs).
    Restart,
}

/// What a node's transport does to the frames of one link (both ways), as the process
/// runtime's fault filter and the simulator apply it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFilter {
    /// Drop every frame.
    pub cut: bool,
    /// Hold every frame this long (FIFO kept).
    pub delay_ms: u64,
    /// Hold a frame by a retransmission timeout (200 ms, doubling) with this probability.
    pub loss_percent: u32,
}

impl LinkFilter {
    /// Whether it does anything.
    pub fn is_clear(&self) -> bool {
        *self == LinkFilter::default()
    }
}

/// A link's filter in words: `cut`, `delay 200 ms, loss 10 %`, `clear`.
impl std::fmt::Display for LinkFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.cut {
            parts.push("cut".to_string());
        }
        if self.delay_ms > 0 {
            parts.push(format!("delay {} ms", self.delay_ms));
        }
        if self.loss_percent > 0 {
            parts.push(format!("loss {} %", self.loss_percent));
        }
        if parts.is_empty() {
            parts.push("clear".into());
        }
        f.write_str(&parts.join(", "))
    }
}

/// A node action in words: `kill`, `pause`, `resume`, `restart`.
impl std::fmt::Display for NodeAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeAction::Kill => "kill",
            NodeAction::Pause => "pause",
            NodeAction::Resume => "resume",
            NodeAction::Restart => "restart",
        })
    }
}

/// An undirected link, smaller id first.
pub type Link = (NodeId, NodeId);

fn link(a: NodeId, b: NodeId) -> Link {
    (a.min(b), a.max(b))
}

/// The faults in force on a lab, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    /// The faults.
    pub faults: Vec<Active>,
}

impl InForce {
    /// Apply `fault` (its node ids resolved) to a lab of `adjacency` at `now` (ms): check it,
    /// then change the set. Returns what must be done to nodes, in order; link changes are read
    /// by comparing [`InForce::cut_links`] and [`InForce::filter`] before and after. A refusal
    /// changes nothing.
    pub fn apply(
        &mut self,
        fault: &Fault,
        adjacency: &Adjacency,
        now: u64,
    ) -> Result<Vec<(NodeId, NodeAction)>, FaultError> {
        let node = |t: Target| -> Result<NodeId, FaultError> {
            let id = t.id().ok_or(FaultError::NoLeader)?;
            if adjacency.contains_key(&id) {
                Ok(id)
            } else {
                Err(FaultError::UnknownNode {
                    id,
                    known: list(adjacency.keys()),
                })
            }
        };
        let pair = |a: Target, b: Target| -> Result<Link, FaultError> {
            let (a, b) = (node(a)?, node(b)?);
            if a == b {
                return Err(FaultError::SameNode(a));
            }
            if !adjacency[&a].contains(&b) {
                return Err(FaultError::NoLink {
                    a,
                    b,
                    neighbors: list(adjacency[&a].iter()),
                });
            }
            Ok(link(a, b))
        };
        let add = |set: &mut Self, fault: Fault| {
            set.faults.push(Active {
                fault,
                since_unix_ms: now,
            })
        };
        match *fault {
            Fault::Kill { node: t } => {
                let n = node(t)?;
                if self.down().contains(&n) {
                    return Err(FaultError::NodeState {
                        node: n,
                        state: "down already",
                        hint: "`restart` starts it again",
                    });
                }
                // A paused node can be killed; it is then down, no longer paused.
                self.faults.retain(|a| !is_node_fault(&a.fault, n));
                add(
                    self,
                    Fault::Kill {
                        node: Target::Id(n),
                    },
                );
                Ok(vec![(n, NodeAction::Kill)])
            }
            Fault::Pause { node: t } => {
                let n = node(t)?;
                if let Some(state) = self.node_state(n) {
                    return Err(FaultError::NodeState {
                        node: n,
                        state,
                        hint: "only a running node can be paused",
                    });
                }
                add(
                    self,
                    Fault::Pause {
                        node: Target::Id(n),
                    },
                );
                Ok(vec![(n, NodeAction::Pause)])
            }
            Fault::Resume { node: t } => {
                let n = node(t)?;
                if !self.paused().contains(&n) {
                    return Err(FaultError::NodeState {
                        node: n,
                        state: self.node_state(n).unwrap_or("running"),
                        hint: "only a paused node can be resumed",
                    });
                }
                self.faults.retain(|a| !is_node_fault(&a.fault, n));
                Ok(vec![(n, NodeAction::Resume)])
            }
            Fault::Restart { node: t } => {
                let n = node(t)?;
                self.faults.retain(|a| !is_node_fault(&a.fault, n));
                Ok(vec![(n, NodeAction::Restart)])
            }
            Fault::Cut { a, b } => {
                let (a, b) = pair(a, b)?;
                if self.cut_links(adjacency).contains(&(a, b)) {
                    return Err(FaultError::AlreadyCut {
                        a,
                        b,
                        by: self
                            .partition()
                            .map(|p| format!(" (by the {p})"))
                            .unwrap_or_default(),
                    });
                }
                add(
                    self,
                    Fault::Cut {
                        a: Target::Id(a),
                        b: Target::Id(b),
                    },
                );
                Ok(Vec::new())
            }
            Fault::Heal { a, b } => {
                let (a, b) = pair(a, b)?;
                let before = self.faults.len();
                self.faults.retain(|f| link_of(&f.fault) != Some((a, b)));
                if self.faults.len() == before {
                    if let Some(partition) = self.partition() {
                        if self.partition_cuts(adjacency).contains(&(a, b)) {
                            return Err(FaultError::CutByPartition { a, b, partition });
                        }
                    }
                    return Err(FaultError::NothingToHeal { a, b });
                }
                Ok(Vec::new())
            }
            Fault::Partition { ref groups } => {
                if let Some(p) = self.partition() {
                    return Err(FaultError::BadPartition(format!(
                        "the {p} is in force already; `labctl fault heal --all` undoes it first"
                    )));
                }
                let groups = check_partition(groups, adjacency)?;
                add(self, Fault::Partition { groups });
                Ok(Vec::new())
            }
            Fault::Delay { a, b, ms } => {
                let (a, b) = pair(a, b)?;
                in_range("a delay", ms, MAX_DELAY_MS, "ms")?;
                let (ta, tb) = (Target::Id(a), Target::Id(b));
                self.shape((a, b), Fault::Delay { a: ta, b: tb, ms }, now);
                Ok(Vec::new())
            }
            Fault::Loss { a, b, percent } => {
                let (a, b) = pair(a, b)?;
                in_range(
                    "a loss",
                    u64::from(percent),
                    u64::from(MAX_LOSS_PERCENT),
                    "%",
                )?;
                let (ta, tb) = (Target::Id(a), Target::Id(b));
                self.shape(
                    (a, b),
                    Fault::Loss {
                        a: ta,
                        b: tb,
                        percent,
                    },
                    now,
                );
                Ok(Vec::new())
            }
            Fault::HealAll => {
                // Thaw the frozen first, then start the dead.
                let mut actions: Vec<(NodeId, NodeAction)> = self
                    .paused()
                    .into_iter()
                    .map(|n| (n, NodeAction::Resume))
                    .collect();
                actions.extend(self.down().into_iter().map(|n| (n, NodeAction::Restart)));
                self.faults.clear();
                Ok(actions)
            }
        }
    }

    /// Put a delay or a loss on `link`, replacing one of the same kind already there.
    fn shape(&mut self, link: Link, fault: Fault, now: u64) {
        let kind = std::mem::discriminant(&fault);
        self.faults.retain(|f| {
            std::mem::discriminant(&f.fault) != kind || link_of(&f.fault) != Some(link)
        });
        self.faults.push(Active {
            fault,
            since_unix_ms: now,
        });
    }

    /// Whether nothing is in force.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Nodes killed and not restarted.
    pub fn down(&self) -> BTreeSet<NodeId> {
        self.nodes_with(|f| matches!(f, Fault::Kill { .. }))
    }

    /// Nodes paused and not resumed.
    pub fn paused(&self) -> BTreeSet<NodeId> {
        self.nodes_with(|f| matches!(f, Fault::Pause { .. }))
    }

    fn nodes_with(&self, which: impl Fn(&Fault) -> bool) -> BTreeSet<NodeId> {
        self.faults
            .iter()
            .filter(|a| which(&a.fault))
            .filter_map(|a| match a.fault {
                Fault::Kill { node } | Fault::Pause { node } => node.id(),
                _ => None,
            })
            .collect()
    }

    fn node_state(&self, n: NodeId) -> Option<&'static str> {
        if self.down().contains(&n) {
            Some("down")
        } else if self.paused().contains(&n) {
            Some("paused")
        } else {
            None
        }
    }

    /// The partition in force, in words.
    fn partition(&self) -> Option<String> {
        self.faults.iter().find_map(|a| match &a.fault {
            f @ Fault::Partition { .. } => Some(f.to_string()),
            _ => None,
        })
    }

    /// The links the partition in force cuts.
    fn partition_cuts(&self, adjacency: &Adjacency) -> BTreeSet<Link> {
        let mut cut = BTreeSet::new();
        for a in &self.faults {
            if let Fault::Partition { groups } = &a.fault {
                let group_of: BTreeMap<NodeId, usize> = groups
                    .iter()
                    .enumerate()
                    .flat_map(|(i, g)| g.iter().map(move |&n| (n, i)))
                    .collect();
                for (&x, neighbors) in adjacency {
                    for &y in neighbors {
                        if x < y && group_of.get(&x) != group_of.get(&y) {
                            cut.insert((x, y));
                        }
                    }
                }
            }
        }
        cut
    }

    /// Every link cut now, by a cut or by the partition.
    pub fn cut_links(&self, adjacency: &Adjacency) -> BTreeSet<Link> {
        let mut cut = self.partition_cuts(adjacency);
        for a in &self.faults {
            if let Fault::Cut { .. } = a.fault {
                cut.extend(link_of(&a.fault));
            }
        }
        cut
    }

    /// What `node`'s transport must do to the frames of each of its links (clear links left out).
    pub fn filter(&self, node: NodeId, adjacency: &Adjacency) -> BTreeMap<NodeId, LinkFilter> {
        let cut = self.cut_links(adjacency);
        let mut filters = BTreeMap::new();
        for &peer in adjacency.get(&node).into_iter().flatten() {
            let l = link(node, peer);
            let mut filter = LinkFilter {
                cut: cut.contains(&l),
                ..LinkFilter::default()
            };
            for a in &self.faults {
                match a.fault {
                    Fault::Delay { ms, .. } if link_of(&a.fault) == Some(l) => filter.delay_ms = ms,
                    Fault::Loss { percent, .. } if link_of(&a.fault) == Some(l) => {
                        filter.loss_percent = percent
                    }
                    _ => {}
                }
            }
            if !filter.is_clear() {
                filters.insert(peer, filter);
            }
        }
        filters
    }

    /// The lab as the faults leave it: the topology minus the nodes down or paused and minus the
    /// links cut.
    pub fn live_adjacency(&self, adjacency: &Adjacency) -> Adjacency {
        let gone: BTreeSet<NodeId> = self.down().union(&self.paused()).copied().collect();
        let cut = self.cut_links(adjacency);
        adjacency
            .iter()
            .filter(|(n, _)| !gone.contains(n))
            .map(|(&n, neighbors)| {
                let kept = neighbors
                    .iter()
                    .copied()
                    .filter(|m| !gone.contains(m) && !cut.contains(&link(n, *m)))
                    .collect();
                (n, kept)
            })
            .collect()
    }

    /// The lab's components (SPEC §6): connected parts of [`InForce::live_adjacency`], each a set
    /// of node ids, ordered by their smallest id.
    pub fn components(&self, adjacency: &Adjacency) -> Vec<BTreeSet<NodeId>> {
        components(&self.live_adjacency(adjacency))
    }
}

/// `value` within 1 ..= `max`, else a refusal naming `what` and the range.
fn in_range(what: &str, value: u64, max: u64, unit: &str) -> Result<(), FaultError> {
    if value == 0 || value > max {
        return Err(FaultError::BadValue(format!(
            "{what} of {value} {unit}: give 1 to {max} {unit}"
        )));
    }
    Ok(())
}

fn is_node_fault(fault: &Fault, n: NodeId) -> bool {
    matches!(fault, Fault::Kill { node } | Fault::Pause { node } if node.id() == Some(n))
}

fn link_of(fault: &Fault) -> Option<Link> {
    match *fault {
        Fault::Cut { a, b } | Fault::Delay { a, b, .. } | Fault::Loss { a, b, .. } => {
            Some(link(a.id()?, b.id()?))
        }
        _ => None,
    }
}

fn list<'a>(ids: impl Iterator<Item = &'a NodeId>) -> String {
    let ids: Vec<String> = ids.map(|n| n.to_string()).collect();
    if ids.len() > 12 {
        format!(
            "{} … {}",
            ids[..6].join(", "),
            ids[ids.len() - 3..].join(", ")
        )
    } else {
        ids.join(", ")
    }
}

/// Check that `groups` partition the lab's nodes: at least two groups, none empty, every node in
/// exactly one. Returns them sorted.
fn check_partition(
    groups: &[Vec<NodeId>],
    adjacency: &Adjacency,
) -> Result<Vec<Vec<NodeId>>, FaultError> {
    if groups.len() < 2 {
        return Err(FaultError::BadPartition(
            "give at least two groups, e.g. `partition 1,2,3 4,5,6`".into(),
        ));
    }
    let mut seen: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut sorted = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(FaultError::BadPartition(format!(
                "group {} is empty",
                i + 1
            )));
        }
        for &n in group {
            if !adjacency.contains_key(&n) {
                return Err(FaultError::UnknownNode {
                    id: n,
                    known: list(adjacency.keys()),
                });
            }
            if let Some(other) = seen.insert(n, i) {
                return Err(FaultError::BadPartition(format!(
                    "node {n} is in group {} and in group {}",
                    other + 1,
                    i + 1
                )));
            }
        }
        let mut g = group.clone();
        g.sort_unstable();
        sorted.push(g);
    }
    let missing: Vec<NodeId> = adjacency
        .keys()
        .copied()
        .filter(|n| !seen.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(FaultError::BadPartition(format!(
            "node(s) {} are in no group; every node must be in one",
            list(missing.iter())
        )));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests;
