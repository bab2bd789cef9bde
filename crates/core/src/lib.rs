//! The protocol core of labctl: Yo-Yo leader election, the SHOUT+ spanning tree and role
//! assignment, as pure state machines.
//!
//! Nothing here does I/O, reads a clock or draws a random number: a driver feeds [`Input`]s to a
//! [`Node`] and carries out the [`Output`]s it gets back. The deterministic simulator
//! (`labctl-sim`), the property tests and the real node daemon all drive this same code.
//!
//! # Driving one node
//!
//! ```
//! use labctl_core::{Input, Message, Node, Output};
//!
//! // Node 2 of a two-node lab, 1 — 2.
//! let mut node = Node::new(2, [1]);
//! let mut out = Vec::new();
//!
//! // Start epoch 1: the node sends its id to its neighbour (Yo-Yo setup).
//! node.handle(0, Input::Start { epoch: 1 }, &mut out);
//! let sent: Vec<_> = out.iter().filter_map(|o| match o {
//!     Output::Send { to, message } => Some((*to, message.clone())),
//!     _ => None,
//! }).collect();
//! assert_eq!(sent.len(), 1);
//! assert_eq!(sent[0].0, 1);
//!
//! // The driver delivers what neighbour 1 says, in order, and keeps carrying out the outputs:
//! // here 1's setup, then 1's YO- value. Node 2 is a sink with one in-neighbour, so it answers
//! // YES and prunes itself in the same -YO message.
//! use labctl_core::message::Body;
//! out.clear();
//! node.handle(0, Input::Receive { from: 1, message: Message { epoch: 1, body: Body::Setup { id: 1 } } }, &mut out);
//! node.handle(0, Input::Receive { from: 1, message: Message { epoch: 1, body: Body::YoDown { iteration: 1, value: 1 } } }, &mut out);
//! assert!(out.iter().any(|o| matches!(o, Output::Send { to: 1, message }
//!     if message.body == Body::YoUp { iteration: 1, vote: labctl_core::Vote::Yes, prune: true })));
//! ```
//!
//! # Modules
//! - [`yoyo`]: the election, step by step (setup, YO-, -YO, pruning, termination).
//! - [`shout`]: the spanning tree and the announcement of the leader, with its convergecast.
//! - [`roles`]: writer, persistence, input, forwarder from a node's place in the tree.
//! - [`node`]: epochs around the two algorithms, re-election, the [`Input`]/[`Output`] interface.
//! - [`liveness`]: the failure detector: heartbeats, suspicion, lost frames, damping flapping links.
//! - [`log`], [`plane`]: the replicated log (positions, log matching, commit, the view change)
//!   and requests up the tree, answers down.
//! - [`replica`]: a node and its data plane joined, as the daemon and the simulator drive them.
//! - [`bounds`]: the algorithms' message costs.
//! - [`report`]: the lab report of SPEC §7 and the named invariants every run is checked against.

pub mod bounds;
pub mod counters;
pub mod event;
pub mod graph;
pub mod liveness;
pub mod log;
pub mod message;
pub mod neighbor_set;
pub mod node;
pub mod plane;
pub mod replica;
pub mod report;
pub mod roles;
pub mod shout;
pub mod yoyo;

/// A node's id, which is also its election key (the smallest wins).
pub type NodeId = u64;
/// An election's number; newer elections have larger epochs.
pub type Epoch = u64;

pub use bounds::Bounds;
pub use counters::Counters;
pub use event::Event;
pub use graph::Graph;
pub use liveness::{Beat, Millis, Timing};
pub use message::{Body, Message, Vote};
pub use node::{Input, LiveConfig, Node, Output, Spare, Status};
pub use replica::Replica;
pub use report::{Check, Report};
pub use roles::Role;
pub use yoyo::{Phase, Standing};
