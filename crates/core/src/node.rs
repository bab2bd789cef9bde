//! One node of the control plane: epochs around a Yo-Yo election followed by a SHOUT+ tree.
//!
//! [`Node`] is what a driver owns: it feeds [`Input`]s in and executes the [`Output`]s that come
//! back (send a message, record an event). It never touches a socket, a clock or a random number
//! generator, so the simulator, the property tests and the real node daemon all run this same code.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::event::Event;
use crate::message::{Body, Message};
use crate::roles::{roles, Place, Role};
use crate::shout::Shout;
use crate::yoyo::{Phase, YoYo};
use crate::{Epoch, NodeId};

/// Something that happens to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start an election of `epoch` (ignored unless newer than the node's current epoch).
    Start {
        /// The epoch to start.
        epoch: Epoch,
    },
    /// A message arrived from neighbour `from`.
    Receive {
        /// The sender's identity on the link.
        from: NodeId,
        /// What it said.
        message: Message,
    },
}

/// Something a node asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to neighbour `to`.
    Send {
        /// The neighbour.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Record what happened (trace, log, teaching view).
    Event(Event),
}

/// A snapshot of a node's view, as its admin API and the simulator report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// The current epoch (0 before any election).
    pub epoch: Epoch,
    /// Where the node is in the election.
    pub election: Phase,
    /// The leader, once known.
    pub leader: Option<NodeId>,
    /// The parent in the spanning tree (None at the root and before joining).
    pub parent: Option<NodeId>,
    /// The depth in the tree, once joined.
    pub depth: Option<u32>,
    /// The children (complete once `subtree` is known).
    pub children: Vec<NodeId>,
    /// The size of this node's subtree, once complete.
    pub subtree: Option<u64>,
    /// The roles, once the node's subtree is complete.
    pub roles: Vec<Role>,
    /// What this node sent in the current epoch.
    pub counters: Counters,
}

/// One node's control-plane state. One owner (a driver task, or the simulator) calls
/// [`Node::handle`] for each input, in order.
#[derive(Clone, Debug)]
pub struct Node {
    id: NodeId,
    neighbors: BTreeSet<NodeId>,
    epoch: Epoch,
    election: YoYo,
    tree: Shout,
    counters: Counters,
    roles: Vec<Role>,
    /// Reused buffer for the algorithms' sends, to keep allocation off the hot path.
    scratch: Vec<(NodeId, Body)>,
    events: Vec<Event>,
}

impl Node {
    /// A node with id `id` and these topology neighbours, idle until [`Input::Start`] or a
    /// message of some epoch arrives.
    pub fn new(id: NodeId, neighbors: impl IntoIterator<Item = NodeId>) -> Self {
        let neighbors: BTreeSet<NodeId> = neighbors.into_iter().collect();
        Node {
            id,
            election: YoYo::new(id, neighbors.clone()),
            tree: Shout::new(neighbors.clone()),
            neighbors,
            epoch: 0,
            counters: Counters::default(),
            roles: Vec::new(),
            scratch: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's topology neighbours.
    pub fn neighbors(&self) -> &BTreeSet<NodeId> {
        &self.neighbors
    }

    /// Handle one input; append what to do to `out`.
    pub fn handle(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Start { epoch } => {
                if epoch > self.epoch {
                    self.begin_epoch(epoch, out);
                }
            }
            Input::Receive { from, message } => self.receive(from, message, out),
        }
    }

    fn receive(&mut self, from: NodeId, message: Message, out: &mut Vec<Output>) {
        if !self.neighbors.contains(&from) {
            return self.drop_message(from, "sender is not a neighbour".into(), out);
        }
        // Epochs (SPEC §3.5): an older epoch's message is stale; a newer one means another node
        // started a new election, and we join it before handling the message.
        if message.epoch < self.epoch {
            return self.drop_message(
                from,
                format!("stale epoch {} (current {})", message.epoch, self.epoch),
                out,
            );
        }
        if message.epoch > self.epoch {
            self.begin_epoch(message.epoch, out);
        }
        let mut send = std::mem::take(&mut self.scratch);
        let refusal = if message.body.kind().is_election() {
            let was_leader = self.election.phase() == Phase::Leader;
            let result = self
                .election
                .receive(from, &message.body, &mut send, &mut self.events)
                .map_err(|r| r.to_string());
            if !was_leader && self.election.phase() == Phase::Leader {
                // The last source starts SHOUT+, whose Q announces it.
                self.tree.initiate(self.id, &mut send, &mut self.events);
            }
            result
        } else {
            self.tree
                .receive(from, &message.body, &mut send, &mut self.events)
                .map_err(|r| r.to_string())
        };
        if let Err(reason) = refusal {
            self.events.push(Event::Dropped { from, reason });
        }
        self.flush(send, out);
    }

    fn begin_epoch(&mut self, epoch: Epoch, out: &mut Vec<Output>) {
        self.epoch = epoch;
        self.election = YoYo::new(self.id, self.neighbors.clone());
        self.tree = Shout::new(self.neighbors.clone());
        self.counters = Counters::default();
        self.roles.clear();
        self.events.push(Event::EpochStarted { epoch });
        let mut send = std::mem::take(&mut self.scratch);
        self.election.start(&mut send, &mut self.events);
        if self.election.phase() == Phase::Leader {
            // A one-node graph: elected at once, and the tree is just us.
            self.tree.initiate(self.id, &mut send, &mut self.events);
        }
        self.flush(send, out);
    }

    fn drop_message(&mut self, from: NodeId, reason: String, out: &mut Vec<Output>) {
        self.counters.dropped += 1;
        out.push(Output::Event(Event::Dropped { from, reason }));
    }

    /// Stamp the algorithms' sends with the epoch, count them, take roles when the subtree just
    /// completed, and hand everything to the driver.
    fn flush(&mut self, mut send: Vec<(NodeId, Body)>, out: &mut Vec<Output>) {
        for (to, body) in send.drain(..) {
            self.counters.count(body.kind());
            out.push(Output::Send {
                to,
                message: Message {
                    epoch: self.epoch,
                    body,
                },
            });
        }
        self.scratch = send;
        for event in self.events.drain(..) {
            if matches!(event, Event::Dropped { .. }) {
                self.counters.dropped += 1;
            }
            let completed = matches!(event, Event::Complete { .. });
            out.push(Output::Event(event));
            if completed {
                self.roles = roles(Place {
                    is_root: self.tree.parent().is_none(),
                    parent_is_root: self.tree.parent().is_some()
                        && self.tree.parent() == self.tree.leader(),
                    has_children: self.tree.children().next().is_some(),
                });
                out.push(Output::Event(Event::Roles {
                    roles: self.roles.clone(),
                }));
            }
        }
        self.counters.iterations = self.election.iterations();
    }

    /// The node's current view.
    pub fn status(&self) -> Status {
        let mut counters = self.counters.clone();
        counters.out_degrees = self.election.out_degrees().to_vec();
        Status {
            id: self.id,
            epoch: self.epoch,
            election: self.election.phase(),
            leader: self.tree.leader(),
            parent: self.tree.parent(),
            depth: self.tree.depth(),
            children: self.tree.children().collect(),
            subtree: self.tree.complete(),
            roles: self.roles.clone(),
            counters,
        }
    }

    /// Each child in the spanning tree with the size of its subtree (complete once the node's own
    /// subtree is).
    pub fn child_sizes(&self) -> &std::collections::BTreeMap<NodeId, u64> {
        self.tree.child_sizes()
    }

    /// This node's out-degree at the start of each Yo-Yo iteration it took part in.
    pub fn out_degrees(&self) -> &[usize] {
        self.election.out_degrees()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(out: &[Output]) -> Vec<(NodeId, Body)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, message } => Some((*to, message.body.clone())),
                Output::Event(_) => None,
            })
            .collect()
    }

    fn receive(node: &mut Node, from: NodeId, epoch: Epoch, body: Body) -> Vec<Output> {
        let mut out = Vec::new();
        let message = Message { epoch, body };
        node.handle(Input::Receive { from, message }, &mut out);
        out
    }

    #[test]
    fn one_node_is_writer_and_input_at_once() {
        let mut node = Node::new(4, []);
        let mut out = Vec::new();
        node.handle(Input::Start { epoch: 1 }, &mut out);
        let status = node.status();
        assert_eq!(status.leader, Some(4));
        assert_eq!(status.subtree, Some(1));
        assert_eq!(status.roles, vec![Role::Writer, Role::Input]);
        assert!(sends(&out).is_empty());
    }

    #[test]
    fn a_newer_epoch_joins_that_election() {
        let mut node = Node::new(2, [1]);
        let mut out = Vec::new();
        node.handle(Input::Start { epoch: 1 }, &mut out);
        let out = receive(&mut node, 1, 3, Body::Setup { id: 1 });
        assert_eq!(node.status().epoch, 3);
        assert_eq!(
            sends(&out),
            vec![(1, Body::Setup { id: 2 })],
            "setup again, for epoch 3"
        );
        assert_eq!(node.status().counters.setup, 1, "counters are per epoch");
    }

    #[test]
    fn an_older_epoch_is_ignored() {
        let mut node = Node::new(2, [1]);
        let mut out = Vec::new();
        node.handle(Input::Start { epoch: 2 }, &mut out);
        let before = node.status();
        let out = receive(&mut node, 1, 1, Body::Setup { id: 1 });
        assert!(sends(&out).is_empty());
        assert!(matches!(
            &out[..],
            [Output::Event(Event::Dropped { from: 1, .. })]
        ));
        assert_eq!(node.status().election, before.election);
        assert_eq!(node.status().counters.dropped, 1);
    }

    #[test]
    fn a_stranger_is_ignored() {
        let mut node = Node::new(2, [1]);
        let out = receive(&mut node, 9, 1, Body::Setup { id: 9 });
        assert!(sends(&out).is_empty());
        assert_eq!(
            node.status().epoch,
            0,
            "a stranger cannot start an election"
        );
    }

    #[test]
    fn two_nodes_elect_the_smaller_and_build_the_tree() {
        // Drive 1 — 2 by hand, carrying each send to the other node.
        let mut nodes = [Node::new(1, [2]), Node::new(2, [1])];
        let mut queue: std::collections::VecDeque<(usize, NodeId, Message)> = Default::default();
        for (i, node) in nodes.iter_mut().enumerate() {
            let mut out = Vec::new();
            node.handle(Input::Start { epoch: 1 }, &mut out);
            for o in out {
                if let Output::Send { to, message } = o {
                    queue.push_back((to as usize - 1, (i + 1) as NodeId, message));
                }
            }
        }
        while let Some((to, from, message)) = queue.pop_front() {
            let mut out = Vec::new();
            nodes[to].handle(Input::Receive { from, message }, &mut out);
            for o in out {
                if let Output::Send { to: next, message } = o {
                    queue.push_back((next as usize - 1, (to + 1) as NodeId, message));
                }
            }
        }
        let (one, two) = (nodes[0].status(), nodes[1].status());
        assert_eq!(one.election, Phase::Leader);
        assert_eq!((one.leader, two.leader), (Some(1), Some(1)));
        assert_eq!(two.parent, Some(1));
        assert_eq!(one.roles, vec![Role::Writer]);
        assert_eq!(two.roles, vec![Role::Input]);
        // Setup 2, one iteration of 2, SHOUT+ 2: every count exact.
        assert_eq!(one.counters.election() + two.counters.election(), 4);
        assert_eq!(one.counters.tree() + two.counters.tree(), 2);
    }
}
