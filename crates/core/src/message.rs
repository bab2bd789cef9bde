//! What nodes say to each other on the control plane.
//!
//! Every message carries the epoch of the election it belongs to (SPEC §3.5): a node ignores messages
//! of older epochs and joins the election of a newer one. The body is one step of one algorithm:
//! the three Yo-Yo messages, then the two SHOUT+ messages.

use serde::{Deserialize, Serialize};

use crate::{Epoch, NodeId};

/// One control-plane message, as it travels on a link between two neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The election this message belongs to.
    pub epoch: Epoch,
    /// What the message says.
    pub body: Body,
}

/// The step of Yo-Yo or SHOUT+ a message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// Yo-Yo setup: "this is my id". Sent once on every link, so setup costs exactly 2m messages.
    Setup {
        /// The sender's id; it must equal the sender's identity on the link.
        id: NodeId,
    },
    /// Yo-Yo YO- phase: the smallest source id that reached the sender in this iteration,
    /// sent down every out-edge.
    YoDown {
        /// The Yo-Yo iteration, counted from 1.
        iteration: u32,
        /// The smallest id the sender saw (its own id if it is a source).
        value: NodeId,
    },
    /// Yo-Yo -YO phase: the answer sent back up an in-edge.
    YoUp {
        /// The Yo-Yo iteration, counted from 1.
        iteration: u32,
        /// YES when the value that came down this edge was the smallest the answering node
        /// saw (and nothing below it said NO), NO otherwise. NO reverses the edge.
        vote: Vote,
        /// Delete this link from the election graph: pruning, which Yo-Yo needs to terminate.
        prune: bool,
    },
    /// SHOUT+ question Q: "the leader is `leader`; will you be my child?" Doubles as the
    /// announcement of the election's result.
    Q {
        /// The elected leader, the tree's root.
        leader: NodeId,
        /// The sender's depth in the tree (the root is at depth 0).
        depth: u32,
    },
    /// SHOUT+ answer "yes, you are my parent", sent only once the sender's own subtree is
    /// complete (a convergecast), so the root learns when the whole tree is built.
    Yes {
        /// How many nodes the sender's subtree spans, the sender included.
        size: u64,
        /// The most advanced replication log in the sender's subtree, and a node that holds it:
        /// the root learns its component's, for the view change (SPEC §6).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        best: Option<crate::plane::Best>,
    },
}

/// A Yo-Yo -YO answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// The value on this edge was the minimum seen below it.
    Yes,
    /// A smaller value exists below this edge: the edge is reversed.
    No,
}

/// The kind of a message, used to count messages per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// [`Body::Setup`].
    Setup,
    /// [`Body::YoDown`].
    YoDown,
    /// [`Body::YoUp`].
    YoUp,
    /// [`Body::Q`].
    Q,
    /// [`Body::Yes`].
    Yes,
}

/// A kind as the algorithms name it: `setup`, `YO-`, `-YO`, `Q`, `Yes`.
impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Setup => "setup",
            Kind::YoDown => "YO-",
            Kind::YoUp => "-YO",
            Kind::Q => "Q",
            Kind::Yes => "Yes",
        })
    }
}

impl Body {
    /// The kind of this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Setup { .. } => Kind::Setup,
            Body::YoDown { .. } => Kind::YoDown,
            Body::YoUp { .. } => Kind::YoUp,
            Body::Q { .. } => Kind::Q,
            Body::Yes { .. } => Kind::Yes,
        }
    }

    /// The Yo-Yo iteration this body belongs to, if it is a YO- or -YO message.
    pub fn iteration(&self) -> Option<u32> {
        match self {
            Body::YoDown { iteration, .. } | Body::YoUp { iteration, .. } => Some(*iteration),
            _ => None,
        }
    }
}

impl Kind {
    /// True for the election's messages (setup, YO-, -YO), false for the tree's (Q, Yes).
    pub fn is_election(self) -> bool {
        matches!(self, Kind::Setup | Kind::YoDown | Kind::YoUp)
    }
}
