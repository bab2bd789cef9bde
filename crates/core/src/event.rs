//! What happened inside a node: the raw material of traces, logs and teaching views.

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::roles::Role;
use crate::yoyo::Standing;
use crate::{Epoch, NodeId};

/// One state change of one node, in the algorithms' own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node entered a new election epoch and sent its setup messages.
    EpochStarted {
        /// The new epoch.
        epoch: Epoch,
    },
    /// Yo-Yo: at the start of an iteration the node is a source, internal node or sink.
    Standing {
        /// The iteration that starts.
        iteration: u32,
        /// The node's standing in it.
        standing: Standing,
    },
    /// Yo-Yo: an edge carried a NO and is reversed.
    EdgeFlipped {
        /// The iteration.
        iteration: u32,
        /// The neighbour at the other end.
        neighbor: NodeId,
    },
    /// Yo-Yo: this node asked a neighbour to delete their link.
    PruneRequested {
        /// The iteration.
        iteration: u32,
        /// The neighbour asked.
        neighbor: NodeId,
    },
    /// Yo-Yo: a link was deleted at the neighbour's request.
    EdgePruned {
        /// The iteration.
        iteration: u32,
        /// The neighbour that asked.
        neighbor: NodeId,
    },
    /// Yo-Yo: the node deleted itself from the election graph.
    Pruned {
        /// The iteration.
        iteration: u32,
    },
    /// Yo-Yo: the node is the last source, the leader.
    Elected {
        /// The number of iterations the election took (0 in a one-node graph).
        iterations: u32,
    },
    /// SHOUT+: the node accepted its first Q and joined the tree under `parent`.
    Joined {
        /// Whose Q came first.
        parent: NodeId,
        /// The node's depth (the root is at 0).
        depth: u32,
        /// The leader the Q announced.
        leader: NodeId,
    },
    /// SHOUT+: a neighbour's Q crossed ours: that link is not a tree edge.
    Crossed {
        /// The neighbour.
        neighbor: NodeId,
    },
    /// SHOUT+: a neighbour answered Yes: it is our child.
    Adopted {
        /// The child.
        child: NodeId,
        /// The size of its subtree.
        size: u64,
    },
    /// SHOUT+: every neighbour answered: this node's subtree is complete (at the root: the tree).
    Complete {
        /// The subtree's size, this node included.
        size: u64,
    },
    /// The node knows its place in the tree and took its roles.
    Roles {
        /// The roles, as SPEC §3.4 assigns them.
        roles: Vec<Role>,
    },
    /// Failure detector: a neighbour was silent for longer than the suspicion timeout.
    Suspected {
        /// The neighbour.
        neighbor: NodeId,
    },
    /// Failure detector: a suspected neighbour spoke again. Its link is held for `hold_ms`
    /// before it may start an election (longer each time it flaps).
    CameBack {
        /// The neighbour.
        neighbor: NodeId,
        /// The hold, in milliseconds.
        hold_ms: u64,
    },
    /// Failure detector: the link lost election messages, or the neighbour restarted.
    LinkReset {
        /// The neighbour.
        neighbor: NodeId,
        /// What happened.
        reason: String,
        /// The hold, in milliseconds.
        hold_ms: u64,
    },
    /// Re-election: an invited neighbour's link was left out of this epoch's election, which
    /// goes on without it.
    LeftOut {
        /// The neighbour.
        neighbor: NodeId,
        /// Why.
        reason: String,
    },
    /// Re-election: the node will start a new epoch at `at` (ms), unless one starts before.
    EpochWanted {
        /// When.
        at: u64,
        /// Why.
        reason: String,
    },
    /// The node itself was frozen for `ms` milliseconds; it does not blame its neighbours.
    Stalled {
        /// How long.
        ms: u64,
    },
    /// A message was refused and dropped; the node carries on.
    Dropped {
        /// Who sent it.
        from: NodeId,
        /// Why it was refused.
        reason: String,
    },
    /// The data plane did something worth telling (a view change, a discarded tail, a repair).
    Replication {
        /// What.
        note: String,
    },
}

/// An event in words, as a node's log says it: `elected leader after 3 iterations`.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::EpochStarted { epoch } => write!(f, "epoch {epoch} started: a new election"),
            Event::Standing {
                iteration,
                standing,
            } => {
                let standing = match standing {
                    Standing::Source => "a source",
                    Standing::Internal => "internal",
                    Standing::Sink => "a sink",
                };
                write!(f, "Yo-Yo iteration {iteration}: {standing}")
            }
            Event::EdgeFlipped {
                iteration,
                neighbor,
            } => write!(
                f,
                "Yo-Yo iteration {iteration}: the edge to {neighbor} carried a NO and flips"
            ),
            Event::PruneRequested {
                iteration,
                neighbor,
            } => write!(
                f,
                "Yo-Yo iteration {iteration}: asked {neighbor} to delete our link"
            ),
            Event::EdgePruned {
                iteration,
                neighbor,
            } => write!(
                f,
                "Yo-Yo iteration {iteration}: the link to {neighbor} was deleted at its request"
            ),
            Event::Pruned { iteration } => write!(
                f,
                "Yo-Yo iteration {iteration}: pruned itself from the election"
            ),
            Event::Elected { iterations } => write!(
                f,
                "elected leader after {iterations} Yo-Yo iteration{}",
                if *iterations == 1 { "" } else { "s" }
            ),
            Event::Joined {
                parent,
                depth,
                leader,
            } => write!(
                f,
                "joined the tree under {parent} at depth {depth} (leader {leader})"
            ),
            Event::Crossed { neighbor } => write!(
                f,
                "our Q crossed {neighbor}'s: that link is not a tree edge"
            ),
            Event::Adopted { child, size } => write!(
                f,
                "adopted child {child} (its subtree holds {size} node{})",
                if *size == 1 { "" } else { "s" }
            ),
            Event::Complete { size } => write!(
                f,
                "subtree complete: {size} node{}",
                if *size == 1 { "" } else { "s" }
            ),
            Event::Roles { roles } => {
                let roles: Vec<String> = roles.iter().map(Role::to_string).collect();
                if roles.is_empty() {
                    write!(f, "roles: none")
                } else {
                    write!(f, "roles: {}", roles.join(", "))
                }
            }
            Event::Suspected { neighbor } => write!(f, "neighbour {neighbor} suspected"),
            Event::CameBack { neighbor, hold_ms } => write!(
                f,
                "neighbour {neighbor} came back; its link is held for {hold_ms} ms"
            ),
            Event::LinkReset {
                neighbor,
                reason,
                hold_ms,
            } => write!(
                f,
                "link to {neighbor} reset ({reason}); held for {hold_ms} ms"
            ),
            Event::LeftOut { neighbor, reason } => write!(
                f,
                "the link to {neighbor} is left out of this election ({reason})"
            ),
            Event::EpochWanted { at, reason } => {
                write!(f, "a new epoch is wanted at {at} ms ({reason})")
            }
            Event::Stalled { ms } => write!(f, "this node was frozen for {ms} ms"),
            Event::Dropped { from, reason } => write!(f, "message from {from} dropped: {reason}"),
            Event::Replication { note } => write!(f, "replication: {note}"),
        }
    }
}

/// One line of a trace, as `labctl sim --trace` and a live node's trace stream print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    /// Time: virtual units in the simulator, milliseconds since start in a live node.
    pub t: u64,
    /// The node it happened at (the sender, for a send).
    pub node: NodeId,
    /// What happened.
    #[serde(flatten)]
    pub what: TraceEntry,
}

/// What a trace line records: a message on the wire, or a node's state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TraceEntry {
    /// A message sent or received.
    Wire(Wire),
    /// A state change inside the node.
    Node(Event),
}

/// A message on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Wire {
    /// `node` sent `message` to `to`.
    Send {
        /// The receiver.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// `node` received `message` from `from`.
    Receive {
        /// The sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
}
