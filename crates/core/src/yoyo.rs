//! Yo-Yo leader election (Santoro, *Design and Analysis of Distributed Algorithms*, §3.8.3).
//!
//! Yo-Yo elects the node with the smallest id in a connected graph of any shape, by repeatedly
//! eliminating candidates. It works on an *oriented* copy of the graph:
//!
//! 1. **Setup.** Every node sends its id to every neighbour (2m messages in all). Each edge is then
//!    oriented from the smaller id to the larger, which makes the graph a DAG. A node with only
//!    out-edges is a **source** (a local minimum: a candidate), one with only in-edges a **sink**
//!    (a local maximum), any other node is **internal**.
//! 2. **YO-** (values flow down the DAG). Each source sends its id on all out-edges. An internal node
//!    waits until a value has arrived on *every* in-edge and forwards the *minimum* on every out-edge.
//!    A sink waits for every in-edge too.
//! 3. **-YO** (votes flow back up). A sink answers YES on the in-edges that carried the smallest value
//!    it received, NO on the others. An internal node waits for the answers of all its out-edges;
//!    if any said NO it answers NO on every in-edge (its minimum lost somewhere below), otherwise YES
//!    to the senders of its minimum and NO to the rest. Every edge that carried a NO is **reversed**,
//!    so a source that received any NO gains an in-edge and stops being a source. No new source is
//!    ever created, and at least one source loses per iteration, so the candidates dwindle.
//! 4. **Pruning** (needed for termination), piggybacked on the -YO answers:
//!    - a node that received the *same* value from several in-neighbours keeps one of those links and
//!      asks the others to delete theirs (the value reached it twice: one path is redundant);
//!    - a sink left with a single in-neighbour is useless (it can never be the leader and relays
//!      nothing) and deletes itself by asking that neighbour to prune their link.
//!
//!    Pruning **cascades within the same -YO phase**: a node first applies its out-neighbours'
//!    answers (drop pruned edges, reverse NO edges); if that leaves it with no out-edge at all, it has
//!    become a sink of what remains, and the sink rules apply to it before it answers upward. Without
//!    the cascade a path of length k would need k iterations to shrink away.
//! 5. **Termination.** The last source, left with no edges at all, is the leader: the minimum id.
//!
//! Cost: setup 2m; iteration i costs exactly 2·(edges alive at its start), one YO- and one -YO per
//! edge. The widely quoted bound on the number of iterations is ⌈log₂ n⌉ + 1.
//!
//! ### Votes on pruned edges
//! An answer that prunes its edge deletes that edge, so it cannot reverse it. Such a NO therefore
//! does not count as a NO for the node receiving it: it only deletes the edge. This is safe and
//! necessary. Safe, because a NO with a prune only comes from the duplicate rule, and the duplicate
//! that was kept carries the same NO on an edge that survives, so the news that value lost still
//! travels up to its source. Necessary, because counting it would make the node answer NO on all of
//! its in-edges without gaining an in-edge in return: it would turn into a brand-new source.
//!
//! This module is pure: no clocks, no sockets, no randomness. [`YoYo::receive`] takes one message
//! and pushes what to send into an output vector.

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::message::{Body, Vote};
use crate::neighbor_set::Universe;

use crate::neighbor_set::{NeighborSet, Subset};
use crate::NodeId;

/// A node's place in the oriented election graph at the start of an iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Only out-edges: a candidate, sends its own id down.
    Source,
    /// Both in- and out-edges: relays the minimum down and the votes up.
    Internal,
    /// Only in-edges: a local maximum, answers first.
    Sink,
}

/// Where a node is in the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for the ids of all neighbours (setup).
    Setup,
    /// YO-: waiting for a value on every in-edge of the current iteration.
    Collecting,
    /// -YO: sent the minimum down, waiting for an answer on every out-edge.
    Answering,
    /// Deleted from the election graph: waits for the leader's announcement.
    Pruned,
    /// The last source: this node is the leader.
    Leader,
}

/// Why a Yo-Yo message was refused. The message is dropped; the node carries on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A setup message claimed an id other than the sender's own.
    #[error("setup from {from} claims id {claimed}")]
    WrongSetupId {
        /// The sender.
        from: NodeId,
        /// The id it claimed.
        claimed: NodeId,
    },
    /// The same message arrived twice.
    #[error("duplicate {what} from {from}")]
    Duplicate {
        /// The sender.
        from: NodeId,
        /// Which message.
        what: &'static str,
    },
    /// A YO- value came on an edge that is not an in-edge, or for a past iteration.
    #[error("unexpected YO- from {from} for iteration {iteration}")]
    UnexpectedValue {
        /// The sender.
        from: NodeId,
        /// The iteration the message named.
        iteration: u32,
    },
    /// A -YO answer came on an edge this node sent nothing down, or for another iteration.
    #[error("unexpected -YO from {from} for iteration {iteration}")]
    UnexpectedAnswer {
        /// The sender.
        from: NodeId,
        /// The iteration the message named.
        iteration: u32,
    },
    /// A message arrived after this node left the election (pruned or elected).
    #[error("Yo-Yo message from {from} after the election ended here")]
    Finished {
        /// The sender.
        from: NodeId,
    },
    /// A setup came on a link this election does not run on (left out, or never invited).
    #[error("setup from {from}, whose link is not in this election")]
    NotInElection {
        /// The sender.
        from: NodeId,
    },
}

/// What one neighbour said, as far as this node's election goes. Node ids are positive, so 0
/// stands for "nothing yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Said {
    /// Its YO- value of the current iteration.
    value: NodeId,
    /// Its YO- value of the next iteration, come early.
    early: NodeId,
    /// Its -YO answer of the current iteration: (vote, prune).
    answer: Option<(Vote, bool)>,
}

/// One node's Yo-Yo state for one epoch.
///
/// Ordering contract: the caller must deliver each neighbour's messages in the order they were
/// sent (links are FIFO); messages of different neighbours may interleave in any way.
#[derive(Clone, Debug)]
pub struct YoYo {
    id: NodeId,
    neighbors: NeighborSet,
    phase: Phase,
    /// Neighbours whose setup message arrived.
    introduced: Subset,
    /// Edges pointing at this node (from a smaller value's side), in the current orientation.
    in_edges: Subset,
    /// Edges pointing away from this node.
    out_edges: Subset,
    /// The current iteration, from 1; 0 during setup.
    iteration: u32,
    /// What each neighbour said, by its position among the sorted neighbour ids: its YO- value
    /// and -YO answer of this iteration, and its YO- value of the next (a neighbour runs at most
    /// one iteration ahead, so its value may come before this node gets there).
    said: Box<[Said]>,
    /// How many in-neighbours have sent this iteration's value (so that waiting for them all
    /// costs nothing per message, even with thousands of neighbours). Counts of neighbours, in
    /// 32 bits (a million nodes' slots, 8 MB).
    received: u32,
    /// How many out-neighbours have answered in this iteration.
    answered: u32,
    /// The value this node sent down in the current iteration (an id: positive, so its
    /// absence takes no word of its own).
    forwarded: Option<NonZeroU64>,
    /// For each iteration this node took part in, its out-degree at the start: summed over all
    /// nodes, the number of live edges, which fixes the iteration's exact message cost.
    out_degrees: OutDegrees,
}

impl YoYo {
    /// Where the slots per neighbour live (address, length in bytes): see
    /// [`crate::Node::hot_blocks`].
    pub(crate) fn hot_block(&self) -> (*const u8, usize) {
        (
            self.said.as_ptr().cast(),
            std::mem::size_of_val(&*self.said),
        )
    }

    /// The bytes of the slots of a node of `degree` neighbours (one heap block).
    pub(crate) fn slot_bytes(degree: usize) -> usize {
        degree * std::mem::size_of::<Said>()
    }

    /// How many neighbours the node has (one slot each), known without reading the heap.
    pub(crate) fn degree(&self) -> usize {
        self.said.len()
    }

    /// A node about to run setup with `neighbors`. Call [`YoYo::start`] to send its id.
    pub fn new(id: NodeId, neighbors: BTreeSet<NodeId>) -> Self {
        let all = NeighborSet::universe(neighbors);
        YoYo::among(id, &all, all.iter().copied())
    }

    /// A node about to run setup with the neighbours `taking`, drawn from `all` (every
    /// neighbour the node has, sorted: see [`NeighborSet::universe`]).
    pub fn among(id: NodeId, all: &Universe, taking: impl IntoIterator<Item = NodeId>) -> Self {
        YoYo::with_slots(id, all, taking, vec![Said::default(); all.len()].into())
    }

    /// [`YoYo::among`], with `said`: one empty slot per id of `all`.
    fn with_slots(
        id: NodeId,
        all: &Universe,
        taking: impl IntoIterator<Item = NodeId>,
        said: Box<[Said]>,
    ) -> Self {
        debug_assert_eq!(said.len(), all.len());
        let mut neighbors = NeighborSet::empty(all);
        for n in taking {
            neighbors.insert(n);
        }
        YoYo {
            id,
            neighbors,
            phase: Phase::Setup,
            introduced: Subset::empty(all),
            in_edges: Subset::empty(all),
            out_edges: Subset::empty(all),
            iteration: 0,
            said,
            received: 0,
            answered: 0,
            forwarded: None,
            out_degrees: OutDegrees::default(),
        }
    }

    /// Become [`YoYo::among`]`(id, all, taking)`, keeping this one's slots when they are as
    /// many as `all`'s ids: a node that starts an epoch over the neighbours it always had
    /// allocates and frees nothing (a million nodes start at once).
    pub fn restart_among(
        &mut self,
        id: NodeId,
        all: &Universe,
        taking: impl IntoIterator<Item = NodeId>,
    ) {
        let mut said = std::mem::take(&mut self.said);
        if said.len() == all.len() {
            said.fill(Said::default());
        } else {
            said = vec![Said::default(); all.len()].into();
        }
        *self = YoYo::with_slots(id, all, taking, said);
    }

    /// Setup, first half: tell every neighbour our id. With no neighbours at all, the node is a
    /// source with no edges: it wins at once, after zero iterations.
    pub fn start(&mut self, send: &mut Vec<(NodeId, Body)>, changes: &mut Vec<Event>) {
        for &neighbor in &self.neighbors {
            send.push((neighbor, Body::Setup { id: self.id }));
        }
        self.advance(send, changes);
    }

    /// Feed one Yo-Yo message from neighbour `from`. Refused messages change nothing.
    pub fn receive(
        &mut self,
        from: NodeId,
        body: &Body,
        send: &mut Vec<(NodeId, Body)>,
        changes: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        if matches!(self.phase, Phase::Pruned | Phase::Leader) {
            return Err(Refusal::Finished { from });
        }
        match *body {
            Body::Setup { id } => {
                if id != from {
                    return Err(Refusal::WrongSetupId { from, claimed: id });
                }
                if !self.neighbors.contains(&from) {
                    return Err(Refusal::NotInElection { from });
                }
                if !self.introduced.insert(self.neighbors.all(), from) {
                    return Err(Refusal::Duplicate {
                        from,
                        what: "setup",
                    });
                }
            }
            Body::YoDown { iteration, value } => {
                // A value may come for the current iteration on an in-edge, or (from a faster
                // neighbour) for a later one; a past iteration is an error.
                // (A neighbour cannot be two iterations ahead: it would need this node's
                // answer of the next iteration to finish it. Node ids, values among them, are
                // positive.)
                let current_in_edge = iteration == self.iteration
                    && self.in_edges.contains(self.neighbors.all(), &from);
                let next = iteration == self.iteration + 1;
                let slot = match self.neighbors.position(from) {
                    Some(k) if value != 0 && (current_in_edge || next) => &mut self.said[k],
                    _ => return Err(Refusal::UnexpectedValue { from, iteration }),
                };
                let stored = if next {
                    &mut slot.early
                } else {
                    &mut slot.value
                };
                if *stored != 0 {
                    return Err(Refusal::Duplicate {
                        from,
                        what: "YO- value",
                    });
                }
                *stored = value;
                if !next {
                    self.received += 1;
                }
            }
            Body::YoUp {
                iteration,
                vote,
                prune,
            } => {
                let expected = self.phase == Phase::Answering
                    && iteration == self.iteration
                    && self.out_edges.contains(self.neighbors.all(), &from);
                let slot = match self.neighbors.position(from) {
                    Some(k) if expected => &mut self.said[k],
                    _ => return Err(Refusal::UnexpectedAnswer { from, iteration }),
                };
                if slot.answer.is_some() {
                    return Err(Refusal::Duplicate {
                        from,
                        what: "-YO answer",
                    });
                }
                slot.answer = Some((vote, prune));
                self.answered += 1;
            }
            _ => unreachable!("only Yo-Yo messages are routed to YoYo::receive"),
        }
        self.advance(send, changes);
        Ok(())
    }

    /// Setup, while waiting: run this election without `neighbor`, whose id has not come (its
    /// link failed, or it never answered). Re-election (`crate::node`) uses this so that a dead
    /// neighbour cannot hold the survivors' election up. Returns false, changing nothing, once
    /// the neighbour's id has arrived or setup is over: the link is then part of the election
    /// at both ends, and only a new epoch can take it out.
    pub fn leave_out(
        &mut self,
        neighbor: NodeId,
        send: &mut Vec<(NodeId, Body)>,
        changes: &mut Vec<Event>,
    ) -> bool {
        if self.phase != Phase::Setup
            || self.introduced.contains(self.neighbors.all(), &neighbor)
            || !self.neighbors.remove(&neighbor)
        {
            return false;
        }
        // A faster neighbour's YO- values cannot have come from it (its setup comes first on
        // the link), so nothing else refers to it yet.
        self.advance(send, changes);
        true
    }

    /// The links this election runs on (during setup: those still expected).
    pub fn neighbors(&self) -> &NeighborSet {
        &self.neighbors
    }

    /// Whether `neighbor`'s setup has arrived in this election.
    pub fn introduced(&self, neighbor: NodeId) -> bool {
        self.introduced.contains(self.neighbors.all(), &neighbor)
    }

    /// Take every step the messages received so far allow.
    fn advance(&mut self, send: &mut Vec<(NodeId, Body)>, changes: &mut Vec<Event>) {
        loop {
            match self.phase {
                Phase::Setup => {
                    if self.introduced.len() < self.neighbors.len() {
                        return;
                    }
                    // Setup, second half: orient every edge from the smaller id to the larger.
                    for &neighbor in &self.neighbors {
                        if neighbor < self.id {
                            self.in_edges.insert(self.neighbors.all(), neighbor);
                        } else {
                            self.out_edges.insert(self.neighbors.all(), neighbor);
                        }
                    }
                    if self.neighbors.is_empty() {
                        // A graph of one node: a source with nothing to beat.
                        self.phase = Phase::Leader;
                        changes.push(Event::Elected { iterations: 0 });
                        return;
                    }
                    self.begin_iteration(1, changes);
                }
                Phase::Collecting => {
                    // YO-: wait until every in-edge has delivered this iteration's value.
                    let iteration = self.iteration;
                    if (self.received as usize) < self.in_edges.len() {
                        return;
                    }
                    // A source sends its own id; an internal node the smallest value it received.
                    let minimum = if self.in_edges.is_empty() {
                        self.id
                    } else {
                        self.in_edges
                            .iter(self.neighbors.all())
                            .map(|&n| self.value_of(n))
                            .min()
                            .expect("in_edges is not empty")
                    };
                    self.forwarded =
                        Some(NonZeroU64::new(minimum).expect("values are ids, which are positive"));
                    if self.out_edges.is_empty() {
                        // A sink answers at once: nothing below it can object.
                        self.resolve(send, changes);
                    } else {
                        for &neighbor in self.out_edges.iter(self.neighbors.all()) {
                            send.push((
                                neighbor,
                                Body::YoDown {
                                    iteration,
                                    value: minimum,
                                },
                            ));
                        }
                        self.phase = Phase::Answering;
                        return;
                    }
                }
                Phase::Answering => {
                    // -YO: wait for the answer of every out-edge.
                    if (self.answered as usize) < self.out_edges.len() {
                        return;
                    }
                    self.resolve(send, changes);
                }
                Phase::Pruned | Phase::Leader => return,
            }
        }
    }

    /// The -YO step of the current iteration, once every out-edge has answered (at once for a
    /// sink): apply the answers from below, vote and prune towards the in-neighbours, and set up
    /// the orientation of the next iteration.
    fn resolve(&mut self, send: &mut Vec<(NodeId, Body)>, changes: &mut Vec<Event>) {
        let iteration = self.iteration;
        let minimum = self
            .forwarded
            .expect("a value was chosen before resolving")
            .get();
        let was_source = self.in_edges.is_empty();

        // 1. Apply the out-neighbours' answers. A pruned edge disappears, vote and all (see the
        //    module docs); a NO reverses its edge, which becomes an in-edge for the next iteration;
        //    a YES keeps the edge as it is.
        let mut next_in = Subset::empty(self.neighbors.all());
        let mut next_out = Subset::empty(self.neighbors.all());
        let mut heard_no = false;
        // (In id order, as the positions are.)
        let answers = self.neighbors_in_order().filter_map(|(k, neighbor)| {
            let (vote, prune) = self.said[k].answer?;
            Some((neighbor, vote, prune))
        });
        for (neighbor, vote, prune) in answers {
            if prune {
                changes.push(Event::EdgePruned {
                    iteration,
                    neighbor,
                });
            } else if vote == Vote::No {
                heard_no = true;
                next_in.insert(self.neighbors.all(), neighbor);
                changes.push(Event::EdgeFlipped {
                    iteration,
                    neighbor,
                });
            } else {
                next_out.insert(self.neighbors.all(), neighbor);
            }
        }
        // With every out-edge pruned, the node is now a sink of what remains: the cascade.
        let sink_now = next_in.is_empty() && next_out.is_empty();

        // 2. Decide the answer for each in-neighbour (a source has none).
        //    Duplicate rule: of the in-neighbours that sent the same value, keep the first, prune
        //    the rest. Which one is kept does not matter; the smallest id keeps runs reproducible.
        //    (Sorted by (value, id), each value's first in-neighbour is the one kept.)
        let mut pruned = Subset::empty(self.neighbors.all());
        let mut by_value: Vec<(NodeId, NodeId)> = self
            .in_edges
            .iter(self.neighbors.all())
            .map(|&neighbor| (self.value_of(neighbor), neighbor))
            .collect();
        by_value.sort_unstable();
        let mut distinct = 0;
        for (i, &(value, neighbor)) in by_value.iter().enumerate() {
            if i > 0 && by_value[i - 1].0 == value {
                pruned.insert(self.neighbors.all(), neighbor);
            } else {
                distinct += 1;
            }
        }
        //    Leaf rule: a sink (also one by cascade) left with a single in-neighbour deletes itself.
        let remove_self = sink_now && !self.in_edges.is_empty() && distinct == 1;
        if remove_self {
            pruned.insert(self.neighbors.all(), by_value[0].1);
        }

        for &neighbor in self.in_edges.iter(self.neighbors.all()) {
            let value = self.value_of(neighbor);
            // YES only if this neighbour sent our minimum and nothing below us said NO.
            let vote = if !heard_no && value == minimum {
                Vote::Yes
            } else {
                Vote::No
            };
            let prune = pruned.contains(self.neighbors.all(), &neighbor);
            if prune {
                changes.push(Event::PruneRequested {
                    iteration,
                    neighbor,
                });
            } else if vote == Vote::No {
                // The edge reverses: it now points from us to the neighbour.
                next_out.insert(self.neighbors.all(), neighbor);
                changes.push(Event::EdgeFlipped {
                    iteration,
                    neighbor,
                });
            } else {
                next_in.insert(self.neighbors.all(), neighbor);
            }
            send.push((
                neighbor,
                Body::YoUp {
                    iteration,
                    vote,
                    prune,
                },
            ));
        }

        // 3. Set up the next iteration (`begin_iteration` forgets this one's values and answers).
        self.forwarded = None;
        self.in_edges = next_in;
        self.out_edges = next_out;

        if self.in_edges.is_empty() && self.out_edges.is_empty() {
            if was_source {
                // Termination: a source left with no edges at all. No source ever appears anew
                // and pruning keeps what remains connected, so this is the last one: the minimum.
                self.phase = Phase::Leader;
                changes.push(Event::Elected {
                    iterations: iteration,
                });
            } else {
                // Only the leaf rule empties a non-source (the duplicate rule keeps one link).
                debug_assert!(remove_self);
                self.phase = Phase::Pruned;
                changes.push(Event::Pruned { iteration });
            }
            return;
        }
        self.begin_iteration(iteration + 1, changes);
    }

    fn begin_iteration(&mut self, iteration: u32, changes: &mut Vec<Event>) {
        // What came early for this iteration is now current; the last one's is forgotten.
        for said in self.said.iter_mut() {
            *said = Said {
                value: said.early,
                ..Said::default()
            };
        }
        self.answered = 0;
        self.received = self
            .in_edges
            .iter(self.neighbors.all())
            .filter(|&&n| self.value_of(n) != 0)
            .count() as u32;
        self.iteration = iteration;
        self.out_degrees.push(self.out_edges.len());
        self.phase = Phase::Collecting;
        changes.push(Event::Standing {
            iteration,
            standing: self.standing(),
        });
    }

    /// Source, internal node or sink, by the current orientation.
    pub fn standing(&self) -> Standing {
        match (self.in_edges.is_empty(), self.out_edges.is_empty()) {
            (true, _) => Standing::Source,
            (false, false) => Standing::Internal,
            (false, true) => Standing::Sink,
        }
    }

    /// The YO- value `neighbor` sent in this iteration (0: none yet).
    fn value_of(&self, neighbor: NodeId) -> NodeId {
        self.neighbors
            .position(neighbor)
            .map_or(0, |k| self.said[k].value)
    }

    /// Every id of the neighbourhood (the election's links and those it no longer runs on), with
    /// its position, in id order.
    fn neighbors_in_order(&self) -> impl Iterator<Item = (usize, NodeId)> + '_ {
        self.neighbors.all().iter().copied().enumerate()
    }

    /// Where the node is in the election.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The iterations this node took part in.
    pub fn iterations(&self) -> u32 {
        self.out_degrees.len
    }

    /// This node's out-degree at the start of each iteration it took part in.
    pub fn out_degrees(&self) -> Vec<usize> {
        self.out_degrees.to_vec()
    }
}

/// A node's out-degree at the start of each iteration it took part in: the first three in the
/// node itself (a random million-node graph elects in three), any more beside them on the heap.
/// A list of their own was a heap block per node, missed at each iteration's start and freed
/// with the node. (An out-degree is at most the node's degree: 32 bits.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OutDegrees {
    len: u32,
    first: [u32; FIRST_OUT_DEGREES],
    // Boxed on purpose: one word in the node while absent, as it is for nearly every node.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<u32>>>,
}

/// How many out-degrees [`OutDegrees`] keeps in place.
const FIRST_OUT_DEGREES: usize = 3;

impl OutDegrees {
    fn push(&mut self, out_degree: usize) {
        let out_degree = u32::try_from(out_degree).unwrap_or(u32::MAX);
        match self.first.get_mut(self.len as usize) {
            Some(slot) => *slot = out_degree,
            None => self.more.get_or_insert_default().push(out_degree),
        }
        self.len += 1;
    }

    fn to_vec(&self) -> Vec<usize> {
        let first = &self.first[..(self.len as usize).min(FIRST_OUT_DEGREES)];
        let more = self.more.as_deref().map(Vec::as_slice).unwrap_or_default();
        first.iter().chain(more).map(|&d| d as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    //! One test per step of the algorithm, driving a single node by hand.
    use super::*;

    #[test]
    fn out_degrees_past_the_first_three_go_on_in_order() {
        let mut kept = OutDegrees::default();
        let mut expected = Vec::new();
        for (k, d) in [5usize, 3, 0, 7, 2, 9].into_iter().enumerate() {
            assert_eq!(kept.to_vec(), expected, "after {k}");
            kept.push(d);
            expected.push(d);
            assert_eq!(kept.len as usize, k + 1);
            assert_eq!(kept.more.is_some(), k + 1 > FIRST_OUT_DEGREES);
        }
        assert_eq!(kept.to_vec(), expected);
    }

    type Sent = Vec<(NodeId, Body)>;

    /// The ids in one of `node`'s working sets.
    fn members(node: &YoYo, set: &Subset) -> BTreeSet<NodeId> {
        set.iter(node.neighbors.all()).copied().collect()
    }

    /// A node `id` with `neighbors`, past setup (every neighbour's id received).
    fn after_setup(id: NodeId, neighbors: &[NodeId]) -> (YoYo, Sent, Vec<Event>) {
        let mut node = YoYo::new(id, neighbors.iter().copied().collect());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        for &n in neighbors {
            node.receive(n, &Body::Setup { id: n }, &mut sent, &mut events)
                .unwrap();
        }
        (node, sent, events)
    }

    fn value(iteration: u32, value: NodeId) -> Body {
        Body::YoDown { iteration, value }
    }

    fn answer(iteration: u32, vote: Vote, prune: bool) -> Body {
        Body::YoUp {
            iteration,
            vote,
            prune,
        }
    }

    fn feed(node: &mut YoYo, from: NodeId, body: Body) -> (Sent, Vec<Event>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.receive(from, &body, &mut sent, &mut events).unwrap();
        (sent, events)
    }

    #[test]
    fn a_restart_is_a_node_made_afresh() {
        // Past setup and into an iteration, then started again over some of its neighbours:
        // the same state as a node made afresh, its slots kept.
        let all = NeighborSet::universe([2, 7, 9]);
        let mut node = YoYo::among(5, &all, all.iter().copied());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        for n in [2, 7, 9] {
            node.receive(n, &Body::Setup { id: n }, &mut sent, &mut events)
                .unwrap();
        }
        feed(&mut node, 2, value(1, 2));
        assert_ne!(node.said[0], Said::default(), "a slot taken");
        let slots = node.said.as_ptr();
        node.restart_among(5, &all, [2, 9]);
        assert_eq!(
            format!("{node:?}"),
            format!("{:?}", YoYo::among(5, &all, [2, 9]))
        );
        assert_eq!(node.said.as_ptr(), slots, "the slots kept");
        // Over other neighbours: made afresh.
        let other = NeighborSet::universe([2, 7, 9, 11]);
        node.restart_among(6, &other, other.iter().copied());
        assert_eq!(
            format!("{node:?}"),
            format!("{:?}", YoYo::among(6, &other, other.iter().copied()))
        );
    }

    #[test]
    fn setup_sends_own_id_to_every_neighbour() {
        let mut node = YoYo::new(5, [2, 7, 9].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        assert_eq!(
            sent,
            vec![
                (2, Body::Setup { id: 5 }),
                (7, Body::Setup { id: 5 }),
                (9, Body::Setup { id: 5 })
            ]
        );
        assert_eq!(node.phase(), Phase::Setup, "waits for the neighbours' ids");
    }

    #[test]
    fn setup_orients_edges_from_smaller_to_larger_id() {
        let (node, _, events) = after_setup(5, &[2, 7, 9]);
        assert_eq!(members(&node, &node.in_edges), BTreeSet::from([2]));
        assert_eq!(members(&node, &node.out_edges), BTreeSet::from([7, 9]));
        assert_eq!(node.standing(), Standing::Internal);
        assert!(events.contains(&Event::Standing {
            iteration: 1,
            standing: Standing::Internal
        }));
    }

    #[test]
    fn local_minimum_is_a_source_and_local_maximum_a_sink() {
        assert_eq!(after_setup(1, &[2, 3]).0.standing(), Standing::Source);
        assert_eq!(after_setup(9, &[2, 3]).0.standing(), Standing::Sink);
    }

    #[test]
    fn yo_down_source_sends_its_id_on_every_out_edge() {
        let (node, sent, _) = after_setup(1, &[2, 3]);
        assert_eq!(&sent[2..], &[(2, value(1, 1)), (3, value(1, 1))]);
        assert_eq!(node.phase(), Phase::Answering);
    }

    #[test]
    fn yo_down_internal_node_waits_for_every_in_edge_then_forwards_the_minimum() {
        let (mut node, _, _) = after_setup(5, &[2, 3, 9]);
        let (sent, _) = feed(&mut node, 3, value(1, 3));
        assert!(sent.is_empty(), "still waiting for in-edge 2");
        let (sent, _) = feed(&mut node, 2, value(1, 1));
        assert_eq!(sent, vec![(9, value(1, 1))], "the minimum of 3 and 1");
    }

    #[test]
    fn minus_yo_sink_answers_yes_to_the_minimum_and_no_to_the_others() {
        let (mut node, _, _) = after_setup(9, &[2, 3]);
        feed(&mut node, 2, value(1, 2));
        let (sent, _) = feed(&mut node, 3, value(1, 1));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::No, false)),
                (3, answer(1, Vote::Yes, false))
            ]
        );
    }

    #[test]
    fn minus_yo_no_reverses_the_edge() {
        let (mut node, _, _) = after_setup(9, &[2, 3]);
        feed(&mut node, 2, value(1, 2));
        let (_, events) = feed(&mut node, 3, value(1, 1));
        assert!(events.contains(&Event::EdgeFlipped {
            iteration: 1,
            neighbor: 2
        }));
        // 9 → 2 now: the sink gained an out-edge and is internal in iteration 2.
        assert_eq!(members(&node, &node.out_edges), BTreeSet::from([2]));
        assert_eq!(members(&node, &node.in_edges), BTreeSet::from([3]));
        assert_eq!(node.standing(), Standing::Internal);
    }

    #[test]
    fn minus_yo_internal_node_answers_no_everywhere_after_a_no_from_below() {
        let (mut node, _, _) = after_setup(5, &[2, 3, 9]);
        feed(&mut node, 2, value(1, 2));
        feed(&mut node, 3, value(1, 3));
        let (sent, _) = feed(&mut node, 9, answer(1, Vote::No, false));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::No, false)),
                (3, answer(1, Vote::No, false))
            ],
            "even the sender of the minimum hears NO"
        );
        assert_eq!(members(&node, &node.in_edges), BTreeSet::from([9]));
        assert_eq!(members(&node, &node.out_edges), BTreeSet::from([2, 3]));
    }

    #[test]
    fn minus_yo_internal_node_answers_yes_to_minimum_senders_when_all_said_yes() {
        let (mut node, _, _) = after_setup(5, &[2, 3, 9]);
        feed(&mut node, 2, value(1, 2));
        feed(&mut node, 3, value(1, 3));
        let (sent, _) = feed(&mut node, 9, answer(1, Vote::Yes, false));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, false)),
                (3, answer(1, Vote::No, false))
            ]
        );
    }

    #[test]
    fn source_that_hears_no_stops_being_a_source() {
        let (mut node, _, _) = after_setup(2, &[5, 7]);
        feed(&mut node, 5, answer(1, Vote::No, false));
        feed(&mut node, 7, answer(1, Vote::Yes, false));
        assert_eq!(node.standing(), Standing::Internal);
        assert_eq!(node.iterations(), 2);
    }

    #[test]
    fn prune_duplicate_values_keep_one_link_and_prune_the_others() {
        let (mut node, _, _) = after_setup(9, &[2, 3, 4]);
        feed(&mut node, 2, value(1, 1));
        feed(&mut node, 3, value(1, 1));
        let (sent, events) = feed(&mut node, 4, value(1, 4));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, false)),
                (3, answer(1, Vote::Yes, true)),
                (4, answer(1, Vote::No, false)),
            ]
        );
        assert!(events.contains(&Event::PruneRequested {
            iteration: 1,
            neighbor: 3
        }));
        assert_eq!(members(&node, &node.in_edges), BTreeSet::from([2]));
        assert_eq!(members(&node, &node.out_edges), BTreeSet::from([4]));
    }

    #[test]
    fn prune_sink_with_a_single_in_neighbour_removes_itself() {
        let (mut node, _, _) = after_setup(9, &[2]);
        let (sent, events) = feed(&mut node, 2, value(1, 2));
        assert_eq!(sent, vec![(2, answer(1, Vote::Yes, true))]);
        assert_eq!(node.phase(), Phase::Pruned);
        assert!(events.contains(&Event::Pruned { iteration: 1 }));
    }

    #[test]
    fn prune_sink_receiving_one_value_from_all_in_neighbours_removes_itself() {
        // The duplicate rule leaves one in-neighbour, then the leaf rule removes the sink.
        let (mut node, _, _) = after_setup(9, &[2, 3]);
        feed(&mut node, 2, value(1, 1));
        let (sent, _) = feed(&mut node, 3, value(1, 1));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, true)),
                (3, answer(1, Vote::Yes, true))
            ]
        );
        assert_eq!(node.phase(), Phase::Pruned);
    }

    #[test]
    fn prune_cascades_within_the_same_minus_yo_phase() {
        // 5 is internal: in-edge from 2, out-edge to 9. When 9 prunes itself, 5 is left with a
        // single in-neighbour and no out-edge: it prunes itself in the same answer.
        let (mut node, _, _) = after_setup(5, &[2, 9]);
        feed(&mut node, 2, value(1, 2));
        let (sent, events) = feed(&mut node, 9, answer(1, Vote::Yes, true));
        assert_eq!(sent, vec![(2, answer(1, Vote::Yes, true))]);
        assert_eq!(node.phase(), Phase::Pruned);
        assert!(events.contains(&Event::EdgePruned {
            iteration: 1,
            neighbor: 9
        }));
    }

    #[test]
    fn prune_cascade_turns_a_node_into_a_sink_that_votes_like_one() {
        // Both out-edges pruned, two in-neighbours with different values: now a sink with two
        // in-edges, it answers YES to the minimum and NO to the other, and stays.
        let (mut node, _, _) = after_setup(5, &[2, 3, 8, 9]);
        feed(&mut node, 2, value(1, 1));
        feed(&mut node, 3, value(1, 3));
        feed(&mut node, 8, answer(1, Vote::Yes, true));
        let (sent, _) = feed(&mut node, 9, answer(1, Vote::Yes, true));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, false)),
                (3, answer(1, Vote::No, false))
            ]
        );
        assert_eq!(node.phase(), Phase::Collecting);
        assert_eq!(members(&node, &node.in_edges), BTreeSet::from([2]));
        assert_eq!(members(&node, &node.out_edges), BTreeSet::from([3]));
    }

    #[test]
    fn a_no_on_a_pruned_edge_deletes_it_without_reversing_anything() {
        // 5 forwards 2; below, 8 prunes the edge with a NO (a duplicate elsewhere carries the
        // NO on). 9 answers YES. 5 must not answer NO on all in-edges: that would make it a
        // brand-new source. It answers as if the pruned edge had never been there.
        let (mut node, _, _) = after_setup(5, &[2, 8, 9]);
        feed(&mut node, 2, value(1, 2));
        feed(&mut node, 8, answer(1, Vote::No, true));
        let (sent, _) = feed(&mut node, 9, answer(1, Vote::Yes, false));
        assert_eq!(sent, vec![(2, answer(1, Vote::Yes, false))]);
        assert_ne!(node.standing(), Standing::Source);
    }

    #[test]
    fn termination_source_left_without_edges_is_the_leader() {
        let (mut node, _, _) = after_setup(1, &[4, 6]);
        feed(&mut node, 4, answer(1, Vote::Yes, true));
        let (_, events) = feed(&mut node, 6, answer(1, Vote::Yes, true));
        assert_eq!(node.phase(), Phase::Leader);
        assert!(events.contains(&Event::Elected { iterations: 1 }));
    }

    #[test]
    fn termination_one_node_elects_itself_with_zero_iterations() {
        let mut node = YoYo::new(3, BTreeSet::new());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        assert!(sent.is_empty());
        assert_eq!(node.phase(), Phase::Leader);
        assert_eq!(events, vec![Event::Elected { iterations: 0 }]);
        assert_eq!(node.iterations(), 0);
    }

    #[test]
    fn values_no_neighbour_could_send_are_refused_and_change_nothing() {
        // 5 has in-neighbours 2 and 3 in iteration 1. A value two iterations ahead, a value of
        // 0 (no id), and one from a node that is not a neighbour cannot come from a correct
        // peer: each is refused, and the election goes on as if it had never come.
        let (mut node, _, _) = after_setup(5, &[2, 3]);
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        for (from, body) in [(2, value(3, 2)), (2, value(1, 0)), (9, value(2, 9))] {
            let refused = node.receive(from, &body, &mut sent, &mut events);
            assert!(
                matches!(refused, Err(Refusal::UnexpectedValue { .. })),
                "{from}: {body:?}: {refused:?}"
            );
        }
        assert!(sent.is_empty() && events.is_empty());
        feed(&mut node, 2, value(1, 2));
        let (sent, _) = feed(&mut node, 3, value(1, 3));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, false)),
                (3, answer(1, Vote::No, false))
            ]
        );
    }

    #[test]
    fn a_value_of_the_next_iteration_waits_until_the_node_gets_there() {
        // 5 is a sink whose in-neighbour 2 runs ahead: 2's iteration-1 value arrives while 5
        // still waits for 3's id. The value is kept and used once setup completes.
        let mut node = YoYo::new(5, [2, 3].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        node.receive(2, &Body::Setup { id: 2 }, &mut sent, &mut events)
            .unwrap();
        node.receive(2, &value(1, 2), &mut sent, &mut events)
            .unwrap();
        assert_eq!(node.phase(), Phase::Setup, "3's id has not arrived yet");
        node.receive(3, &Body::Setup { id: 3 }, &mut sent, &mut events)
            .unwrap();
        let (sent, _) = feed(&mut node, 3, value(1, 3));
        assert_eq!(
            sent,
            vec![
                (2, answer(1, Vote::Yes, false)),
                (3, answer(1, Vote::No, false))
            ]
        );
    }

    #[test]
    fn a_neighbour_left_out_during_setup_is_not_waited_for() {
        let mut node = YoYo::new(5, [2, 9].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.start(&mut sent, &mut events);
        node.receive(2, &Body::Setup { id: 2 }, &mut sent, &mut events)
            .unwrap();
        assert_eq!(node.phase(), Phase::Setup, "waits for 9's id");
        assert!(node.leave_out(9, &mut sent, &mut events));
        // Setup completes with 2 alone: 5 is a sink with one in-neighbour.
        assert_eq!(node.phase(), Phase::Collecting);
        assert_eq!(node.standing(), Standing::Sink);
        assert!(matches!(
            node.receive(9, &Body::Setup { id: 9 }, &mut sent, &mut events),
            Err(Refusal::NotInElection { from: 9 })
        ));
        assert!(
            !node.leave_out(2, &mut sent, &mut events),
            "2's id came: only a new epoch takes that link out"
        );
    }

    #[test]
    fn refused_messages_change_nothing() {
        let (mut node, _, _) = after_setup(5, &[2, 9]);
        let before = format!("{node:?}");
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        assert!(matches!(
            node.receive(2, &Body::Setup { id: 2 }, &mut sent, &mut events),
            Err(Refusal::Duplicate { .. })
        ));
        assert!(matches!(
            node.receive(9, &value(1, 9), &mut sent, &mut events),
            Err(Refusal::UnexpectedValue { .. })
        ));
        assert!(matches!(
            node.receive(2, &answer(1, Vote::Yes, false), &mut sent, &mut events),
            Err(Refusal::UnexpectedAnswer { .. })
        ));
        assert_eq!(format!("{node:?}"), before);
        assert!(sent.is_empty() && events.is_empty());

        let mut fresh = YoYo::new(5, [2].into());
        assert_eq!(
            fresh.receive(2, &Body::Setup { id: 3 }, &mut sent, &mut events),
            Err(Refusal::WrongSetupId {
                from: 2,
                claimed: 3
            })
        );
    }
}
