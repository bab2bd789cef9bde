//! One whole node: the control plane ([`Node`]: election, tree, roles, re-election) and the data
//! plane ([`DataPlane`]: requests and the replicated log) joined, so that the node daemon and
//! the simulator drive exactly the same thing.
//!
//! The join is small, and it is the heart of the view change (SPEC §6):
//! - when the node begins an epoch, its data plane hears of it at once (it answers what it holds
//!   and forgets the old tree);
//! - when the node's subtree is complete and its roles are known, the data plane gets its place
//!   in the tree, and at the root the most advanced log the convergecast found;
//! - whenever the data plane's log changes, the node learns its last position, which its next
//!   convergecast reports up.

use crate::event::Event;
use crate::liveness::Millis;
use crate::node::{Input, Node, Output};
use crate::plane::Share;
use crate::plane::{DataPlane, PlaneInput, PlaneOutput, Tree};

/// A node and, when it serves data, its data plane.
#[derive(Clone, Debug)]
pub struct Replica {
    node: Node,
    plane: Option<DataPlane>,
    lab_size: u64,
}

impl Replica {
    /// `node`, with `plane` if it serves data; `lab_size` counts the quorum.
    pub fn new(mut node: Node, plane: Option<DataPlane>, lab_size: u64) -> Self {
        if let Some(plane) = &plane {
            node.set_log_position(plane.last());
        }
        Replica {
            node,
            plane,
            lab_size,
        }
    }

    /// The control plane.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The data plane, if the node has one.
    pub fn plane(&self) -> Option<&DataPlane> {
        self.plane.as_ref()
    }

    /// The data plane, to draw request ids from.
    pub fn plane_mut(&mut self) -> Option<&mut DataPlane> {
        self.plane.as_mut()
    }

    /// A control-plane input: the node's outputs go to `out`, what its data plane asks in turn
    /// to `data`.
    pub fn control(
        &mut self,
        now: Millis,
        input: Input,
        out: &mut Vec<Output>,
        data: &mut Vec<PlaneOutput>,
    ) {
        let first = out.len();
        self.node.handle(now, input, out);
        let Some(plane) = self.plane.as_mut() else {
            return;
        };
        // The last epoch begun in this step: roles announced before it belong to an epoch
        // already left.
        let last_start = out[first..]
            .iter()
            .rposition(|o| matches!(o, Output::Event(Event::EpochStarted { .. })));
        for (i, output) in out[first..].iter().enumerate() {
            match output {
                Output::Event(Event::EpochStarted { epoch }) => {
                    plane.handle(now, PlaneInput::EpochStarted { epoch: *epoch }, data);
                }
                Output::Event(Event::Roles { .. }) if last_start.is_none_or(|s| i > s) => {
                    let tree = tree_of(&self.node, self.lab_size);
                    plane.handle(now, PlaneInput::Tree(tree), data);
                }
                _ => {}
            }
        }
        self.node.set_log_position(plane.last());
    }

    /// A data-plane input; what the data plane asks goes to `data`.
    pub fn data(&mut self, now: Millis, input: PlaneInput, data: &mut Vec<PlaneOutput>) {
        if let Some(plane) = self.plane.as_mut() {
            plane.handle(now, input, data);
            self.node.set_log_position(plane.last());
        }
    }
}

/// The node's place in its current tree, as the data plane needs it (once its roles are known).
pub fn tree_of(node: &Node, lab_size: u64) -> Tree {
    let status = node.status();
    Tree {
        epoch: status.epoch,
        parent: status.parent,
        children: node.child_sizes(),
        roles: status.roles,
        share: Share {
            nodes: status.subtree.unwrap_or(0),
            lab: lab_size,
        },
        best: node.best_log(),
    }
}
