//! Role assignment (SPEC §3.4): each node computes its roles from its own place in the spanning tree.
//!
//! | node                                   | roles                                            |
//! |----------------------------------------|--------------------------------------------------|
//! | the root (leader)                      | `writer` (also `input` when it has no children)  |
//! | a child of the root that has children  | `persistence` (read replica)                     |
//! | any leaf other than the root           | `input` (serves HTTP clients)                    |
//! | every other node                       | `forwarder`                                      |
//!
//! **The quorum rule.** The root takes `writer` only when its tree spans a strict majority of the
//! lab's nodes. After a partition every component elects a root of its own, and two writers
//! would accept conflicting writes; so the root of a smaller component takes `leader` instead:
//! it holds the data and serves reads, but refuses writes. Two disjoint components cannot both
//! hold a strict majority, so at most one component has a writer.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One job a node does on the data plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The single writer: the root of a tree that spans a strict majority of the lab.
    Writer,
    /// The root of a tree that spans a minority of the lab: serves reads, refuses writes.
    Leader,
    /// A read replica: a child of the root that has children of its own.
    Persistence,
    /// Serves the chat's HTTP API: every leaf (and the root of a one-node lab).
    Input,
    /// Only forwards requests up and answers down.
    Forwarder,
}

/// Where a node stands in the spanning tree: all a node needs to know to pick its roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The node is the root (the elected leader).
    pub is_root: bool,
    /// The node's parent is the root.
    pub parent_is_root: bool,
    /// The node has at least one child.
    pub has_children: bool,
    /// The node's tree spans a strict majority of the lab's nodes (only the root knows; others
    /// may say anything).
    pub quorum: bool,
}

/// The roles of a node at `place`, in a stable order.
pub fn roles(place: Place) -> Vec<Role> {
    // The root writes only with a quorum behind it (see the module docs).
    let root = if place.quorum {
        Role::Writer
    } else {
        Role::Leader
    };
    match place {
        // A one-node tree: the root is also the only node clients can talk to.
        Place {
            is_root: true,
            has_children: false,
            ..
        } => vec![root, Role::Input],
        Place { is_root: true, .. } => vec![root],
        // A leaf, wherever it hangs (a leaf child of the root is `input` only).
        Place {
            has_children: false,
            ..
        } => vec![Role::Input],
        Place {
            parent_is_root: true,
            ..
        } => vec![Role::Persistence],
        _ => vec![Role::Forwarder],
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Writer => "writer",
            Role::Leader => "leader",
            Role::Persistence => "persistence",
            Role::Input => "input",
            Role::Forwarder => "forwarder",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(is_root: bool, parent_is_root: bool, has_children: bool) -> Place {
        Place {
            is_root,
            parent_is_root,
            has_children,
            quorum: true,
        }
    }

    fn minority(place: Place) -> Place {
        Place {
            quorum: false,
            ..place
        }
    }

    #[test]
    fn root_is_the_single_writer() {
        assert_eq!(roles(place(true, false, true)), vec![Role::Writer]);
    }

    #[test]
    fn root_of_a_one_node_lab_is_also_input() {
        assert_eq!(
            roles(place(true, false, false)),
            vec![Role::Writer, Role::Input]
        );
    }

    #[test]
    fn child_of_root_with_children_is_persistence() {
        assert_eq!(roles(place(false, true, true)), vec![Role::Persistence]);
    }

    #[test]
    fn leaf_child_of_root_is_input_only() {
        assert_eq!(roles(place(false, true, false)), vec![Role::Input]);
    }

    #[test]
    fn deeper_leaf_is_input() {
        assert_eq!(roles(place(false, false, false)), vec![Role::Input]);
    }

    #[test]
    fn a_minority_root_takes_leader() {
        assert_eq!(
            roles(minority(place(true, false, true))),
            vec![Role::Leader]
        );
        assert_eq!(
            roles(minority(place(true, false, false))),
            vec![Role::Leader, Role::Input],
            "a node cut off alone still serves its clients' reads"
        );
    }

    #[test]
    fn the_quorum_changes_only_the_roots_role() {
        for (parent_is_root, has_children) in [(true, true), (true, false), (false, true)] {
            let p = place(false, parent_is_root, has_children);
            assert_eq!(roles(p), roles(minority(p)));
        }
    }

    #[test]
    fn deeper_inner_node_is_forwarder() {
        assert_eq!(roles(place(false, false, true)), vec![Role::Forwarder]);
    }
}
