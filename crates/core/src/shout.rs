//! SHOUT+ spanning-tree construction, started by the elected leader (SPEC §3.3).
//!
//! SHOUT is the simplest way to build a spanning tree from one initiator: the initiator asks every
//! neighbour "Q: will you be my child?", and each node accepts the *first* Q it receives, takes the
//! sender as its parent and asks all its other neighbours in turn.
//!
//! We run **SHOUT+**, the variant in which no one ever answers "no". A node that is already in the
//! tree when a Q arrives has necessarily sent a Q of its own on that very link (it asked every
//! neighbour but its parent the moment it joined), so the two Qs cross, and each side reads the
//! other's Q as a "no". Only tree edges carry an answer, `Yes`. Every link therefore carries exactly
//! two messages: Q and Yes on a tree edge, Q and Q on any other. **SHOUT+ costs exactly 2m.**
//!
//! The `Yes` is held back until the child's own subtree is complete (every other neighbour has
//! answered with a Yes or a crossing Q) and carries the subtree's size: a **convergecast**. So the
//! root learns both *that* the tree is complete and *how many* nodes it spans, with no extra message.
//!
//! The leader's Q carries its id and the epoch, so the tree construction doubles as the announcement
//! of the election's result. Parent pointers are "whose Q came first": under equal link delays the
//! tree is breadth-first, under random delays it need not be. It is a spanning tree, not a
//! shortest-path tree.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use crate::event::Event;
use crate::message::Body;
use crate::neighbor_set::Universe;

use crate::neighbor_set::{NeighborSet, Subset};
use crate::plane::Best;
use crate::NodeId;

/// Why a SHOUT+ message was refused. The message is dropped; the node carries on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A Q named a different leader than the one this node already follows in this epoch.
    #[error("Q from {from} names leader {claimed}, but this epoch's leader is {leader}")]
    OtherLeader {
        /// The sender.
        from: NodeId,
        /// The leader the Q named.
        claimed: NodeId,
        /// The leader this node already has.
        leader: NodeId,
    },
    /// A Yes came from a neighbour this node never asked, or came twice.
    #[error("unexpected Yes from {from}")]
    UnexpectedYes {
        /// The sender.
        from: NodeId,
    },
    /// A second Q came on the same link.
    #[error("duplicate Q from {from}")]
    DuplicateQ {
        /// The sender.
        from: NodeId,
    },
    /// A number in the message cannot be right in any tree: a Q at the deepest depth there is
    /// (its child's depth would overflow), a Yes for a subtree of no nodes, or sizes that add up
    /// past any count. A malformed or hostile peer; the message is refused, nothing changes.
    #[error("{what} from {from} cannot be right: {why}")]
    Impossible {
        /// The sender.
        from: NodeId,
        /// Which message.
        what: &'static str,
        /// Which number, and why.
        why: String,
    },
}

/// One node's SHOUT+ state for one epoch.
#[derive(Clone, Debug)]
pub struct Shout {
    neighbors: NeighborSet,
    /// The root, once known (from the first Q, or ourselves if we are the initiator). Ids and
    /// sizes here are positive, so their absence takes no word of its own (a million nodes,
    /// 24 MB).
    leader: Option<NonZeroU64>,
    /// Whose Q came first (None at the root, and before joining).
    parent: Option<NonZeroU64>,
    depth: Option<u32>,
    /// Neighbours that have not yet answered (with a Yes or a crossing Q).
    waiting: Subset,
    /// Neighbours whose Q we have seen (guards against duplicates).
    asked_by: Subset,
    /// Children and the sizes of their subtrees, by id (a node has few: a sorted list is
    /// smaller than a map, and a million nodes keep one each).
    children: Vec<(NodeId, u64)>,
    /// The sum of the children's subtree sizes (kept as they come: a node with a million
    /// children adds each once).
    descendants: u64,
    /// The size of our subtree once complete.
    complete: Option<NonZeroU64>,
    /// The most advanced log known in our subtree: our own, then each child's report.
    best: Option<Box<Best>>,
}

impl Shout {
    /// A node that has not joined any tree yet.
    pub fn new(neighbors: BTreeSet<NodeId>) -> Self {
        let all = NeighborSet::universe(neighbors);
        Shout::among(&all, all.iter().copied())
    }

    /// A node that has not joined any tree yet, whose tree may use the links to `taking`, drawn
    /// from `all` (every neighbour the node has, sorted: see [`NeighborSet::universe`]).
    pub fn among(all: &Universe, taking: impl IntoIterator<Item = NodeId>) -> Self {
        let mut neighbors = NeighborSet::empty(all);
        for n in taking {
            neighbors.insert(n);
        }
        Shout {
            neighbors,
            leader: None,
            parent: None,
            depth: None,
            waiting: Subset::empty(all),
            asked_by: Subset::empty(all),
            children: Vec::new(),
            descendants: 0,
            complete: None,
            best: None,
        }
    }

    /// This node's own log position, for the convergecast (set before the subtree completes).
    pub fn set_own_log(&mut self, best: Best) {
        if self.complete.is_none() {
            self.best = better(self.best(), Some(best)).map(Box::new);
        }
    }

    /// Take `neighbor` out of the links the tree may use (its link left the election during
    /// Yo-Yo's setup). Only before this node joined a tree.
    pub fn remove_neighbor(&mut self, neighbor: NodeId) {
        debug_assert!(
            self.depth.is_none(),
            "the tree's links are fixed once joined"
        );
        self.neighbors.remove(&neighbor);
    }

    /// The leader starts SHOUT+: it is the root and asks every neighbour.
    pub fn initiate(
        &mut self,
        me: NodeId,
        send: &mut Vec<(NodeId, Body)>,
        changes: &mut Vec<Event>,
    ) {
        self.leader = Some(NonZeroU64::new(me).expect("node ids are positive"));
        self.depth = Some(0);
        self.ask_all_but_parent(send);
        self.check_complete(send, changes);
    }

    /// Feed one SHOUT+ message (Q or Yes) from neighbour `from`.
    pub fn receive(
        &mut self,
        from: NodeId,
        body: &Body,
        send: &mut Vec<(NodeId, Body)>,
        changes: &mut Vec<Event>,
    ) -> Result<(), Refusal> {
        match *body {
            Body::Q { leader, depth } => {
                let Some(claimed) = NonZeroU64::new(leader) else {
                    return Err(Refusal::Impossible {
                        from,
                        what: "Q",
                        why: "it names leader 0, and ids are positive".into(),
                    });
                };
                if let Some(known) = self.leader() {
                    if known != leader {
                        return Err(Refusal::OtherLeader {
                            from,
                            claimed: leader,
                            leader: known,
                        });
                    }
                }
                // Peers' numbers are checked before they are used: depth + 1 must exist.
                let Some(child_depth) = depth.checked_add(1) else {
                    return Err(Refusal::Impossible {
                        from,
                        what: "Q",
                        why: format!("depth {depth} has no depth below it"),
                    });
                };
                if !self.asked_by.insert(self.neighbors.all(), from) {
                    return Err(Refusal::DuplicateQ { from });
                }
                if self.depth.is_none() {
                    // The first Q: its sender becomes our parent, and we ask everyone else.
                    self.leader = Some(claimed);
                    self.parent = NonZeroU64::new(from);
                    self.depth = Some(child_depth);
                    changes.push(Event::Joined {
                        parent: from,
                        depth: child_depth,
                        leader,
                    });
                    self.ask_all_but_parent(send);
                } else {
                    // Already in the tree: we asked `from` too, our Qs crossed. That is a "no".
                    self.waiting.remove(self.neighbors.all(), &from);
                    changes.push(Event::Crossed { neighbor: from });
                }
            }
            Body::Yes { size, best } => {
                // Only a neighbour we asked, that did not ask us, can answer Yes.
                if !self.waiting.contains(self.neighbors.all(), &from)
                    || self.asked_by.contains(self.neighbors.all(), &from)
                {
                    return Err(Refusal::UnexpectedYes { from });
                }
                // A subtree holds its root at least, and all subtrees add up to a count.
                let total = self
                    .descendants
                    .checked_add(1)
                    .and_then(|sum| sum.checked_add(size));
                if size == 0 || total.is_none() {
                    return Err(Refusal::Impossible {
                        from,
                        what: "Yes",
                        why: format!("a subtree of {size} nodes"),
                    });
                }
                self.waiting.remove(self.neighbors.all(), &from);
                // `from` was waited on, so it is not a child yet.
                let at = self.children.partition_point(|&(child, _)| child < from);
                self.children.insert(at, (from, size));
                self.descendants += size;
                self.best = better(self.best(), best).map(Box::new);
                changes.push(Event::Adopted { child: from, size });
            }
            _ => unreachable!("only SHOUT+ messages are routed to Shout::receive"),
        }
        self.check_complete(send, changes);
        Ok(())
    }

    fn ask_all_but_parent(&mut self, send: &mut Vec<(NodeId, Body)>) {
        let leader = self.leader().expect("the leader is known when asking");
        let depth = self.depth.expect("the depth is known when asking");
        for &neighbor in &self.neighbors {
            if Some(neighbor) == self.parent() {
                continue;
            }
            send.push((neighbor, Body::Q { leader, depth }));
            // A neighbour whose Q already reached us before we joined cannot exist (its Q would
            // have been our first), so every asked neighbour still owes us an answer.
            self.waiting.insert(self.neighbors.all(), neighbor);
        }
    }

    /// The convergecast: once every asked neighbour answered, tell the parent our subtree's size.
    fn check_complete(&mut self, send: &mut Vec<(NodeId, Body)>, changes: &mut Vec<Event>) {
        if self.complete.is_some() || self.depth.is_none() || !self.waiting.is_empty() {
            return;
        }
        // Cannot overflow: every Yes was checked to keep the sum a count.
        let size = self.descendants + 1;
        self.complete = NonZeroU64::new(size);
        changes.push(Event::Complete { size });
        if let Some(parent) = self.parent() {
            send.push((
                parent,
                Body::Yes {
                    size,
                    best: self.best(),
                },
            ));
        }
    }

    /// The root, once known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader.map(NonZeroU64::get)
    }
    /// The parent, once joined (None at the root).
    pub fn parent(&self) -> Option<NodeId> {
        self.parent.map(NonZeroU64::get)
    }
    /// The depth, once joined.
    pub fn depth(&self) -> Option<u32> {
        self.depth
    }
    /// The children known so far (all of them once complete).
    pub fn children(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.children.iter().map(|&(child, _)| child)
    }
    /// Each child with the size of its subtree.
    pub fn child_sizes(&self) -> BTreeMap<NodeId, u64> {
        self.children.iter().copied().collect()
    }
    /// The subtree's size, once complete.
    pub fn complete(&self) -> Option<u64> {
        self.complete.map(NonZeroU64::get)
    }

    /// The most advanced log known in the subtree (all of it once complete).
    pub fn best(&self) -> Option<Best> {
        self.best.as_deref().copied()
    }
}

/// The more advanced of two logs (of equal ones, the smaller node id's).
fn better(a: Option<Best>, b: Option<Best>) -> Option<Best> {
    match (a, b) {
        (Some(a), Some(b)) => Some(std::cmp::max_by_key(b, a, |x| {
            (x.pos, std::cmp::Reverse(x.node))
        })),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sent = Vec<(NodeId, Body)>;

    fn feed(node: &mut Shout, from: NodeId, body: Body) -> (Sent, Vec<Event>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        node.receive(from, &body, &mut sent, &mut events).unwrap();
        (sent, events)
    }

    fn q(leader: NodeId, depth: u32) -> Body {
        Body::Q { leader, depth }
    }

    #[test]
    fn a_q_naming_leader_0_is_refused_and_changes_nothing() {
        let mut node = Shout::new([1, 4, 5].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        let refused = node.receive(1, &q(0, 0), &mut sent, &mut events);
        assert!(
            matches!(
                refused,
                Err(Refusal::Impossible {
                    from: 1,
                    what: "Q",
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(
            (node.leader(), node.parent(), node.depth()),
            (None, None, None)
        );
        assert!(sent.is_empty() && events.is_empty());
        // A good Q afterwards is taken as the first.
        feed(&mut node, 1, q(1, 0));
        assert_eq!(node.parent(), Some(1));
    }

    #[test]
    fn initiator_asks_every_neighbour() {
        let mut root = Shout::new([2, 3].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        root.initiate(1, &mut sent, &mut events);
        assert_eq!(sent, vec![(2, q(1, 0)), (3, q(1, 0))]);
        assert_eq!(
            (root.leader(), root.parent(), root.depth()),
            (Some(1), None, Some(0))
        );
        assert_eq!(root.complete(), None);
    }

    #[test]
    fn first_q_makes_its_sender_the_parent_and_is_passed_on() {
        let mut node = Shout::new([1, 4, 5].into());
        let (sent, events) = feed(&mut node, 1, q(1, 0));
        assert_eq!(node.parent(), Some(1));
        assert_eq!(node.depth(), Some(1));
        assert_eq!(
            sent,
            vec![(4, q(1, 1)), (5, q(1, 1))],
            "asks all but its parent"
        );
        assert!(events.contains(&Event::Joined {
            parent: 1,
            depth: 1,
            leader: 1
        }));
    }

    #[test]
    fn crossing_q_counts_as_no_and_gets_no_answer() {
        let mut node = Shout::new([1, 4].into());
        feed(&mut node, 1, q(1, 0));
        let (sent, events) = feed(&mut node, 4, q(1, 1));
        // No message goes to 4, and 4 is not a child. With no one left to wait for, the subtree
        // (just this node) is complete and the Yes goes up.
        assert_eq!(
            sent,
            vec![(
                1,
                Body::Yes {
                    size: 1,
                    best: None
                }
            )]
        );
        assert!(events.contains(&Event::Crossed { neighbor: 4 }));
        assert_eq!(node.children().count(), 0);
    }

    #[test]
    fn convergecast_yes_waits_for_the_whole_subtree_and_carries_its_size() {
        let mut node = Shout::new([1, 4, 5].into());
        feed(&mut node, 1, q(1, 0));
        let (sent, _) = feed(
            &mut node,
            4,
            Body::Yes {
                size: 3,
                best: None,
            },
        );
        assert!(sent.is_empty(), "5 has not answered yet");
        let (sent, _) = feed(
            &mut node,
            5,
            Body::Yes {
                size: 2,
                best: None,
            },
        );
        assert_eq!(
            sent,
            vec![(
                1,
                Body::Yes {
                    size: 6,
                    best: None
                }
            )]
        );
        assert_eq!(node.complete(), Some(6));
        assert_eq!(node.children().collect::<Vec<_>>(), vec![4, 5]);
    }

    #[test]
    fn root_learns_the_tree_is_complete_and_its_size() {
        let mut root = Shout::new([2, 3].into());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        root.initiate(1, &mut sent, &mut events);
        feed(
            &mut root,
            2,
            Body::Yes {
                size: 4,
                best: None,
            },
        );
        let (sent, events) = feed(
            &mut root,
            3,
            Body::Yes {
                size: 1,
                best: None,
            },
        );
        assert!(sent.is_empty(), "the root has no parent to tell");
        assert_eq!(events.last(), Some(&Event::Complete { size: 6 }));
    }

    #[test]
    fn lone_initiator_is_complete_at_once() {
        let mut root = Shout::new(BTreeSet::new());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        root.initiate(7, &mut sent, &mut events);
        assert!(sent.is_empty());
        assert_eq!(root.complete(), Some(1));
    }

    #[test]
    fn refusals_change_nothing() {
        let mut node = Shout::new([1, 4].into());
        feed(&mut node, 1, q(1, 0));
        let before = format!("{node:?}");
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        assert!(matches!(
            node.receive(4, &q(2, 0), &mut sent, &mut events),
            Err(Refusal::OtherLeader { .. })
        ));
        assert!(matches!(
            node.receive(1, &q(1, 0), &mut sent, &mut events),
            Err(Refusal::DuplicateQ { .. })
        ));
        assert!(matches!(
            node.receive(
                1,
                &Body::Yes {
                    size: 1,
                    best: None
                },
                &mut sent,
                &mut events
            ),
            Err(Refusal::UnexpectedYes { .. })
        ));
        assert_eq!(format!("{node:?}"), before);
        assert!(sent.is_empty() && events.is_empty());
    }

    /// Numbers no tree can hold (a malformed or hostile peer) are refused, not added up: a Q at
    /// the deepest depth, a Yes for an empty subtree, subtree sizes past any count.
    #[test]
    fn impossible_numbers_from_peers_are_refused_and_change_nothing() {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        let mut fresh = Shout::new([1, 4].into());
        let before = format!("{fresh:?}");
        assert!(matches!(
            fresh.receive(1, &q(1, u32::MAX), &mut sent, &mut events),
            Err(Refusal::Impossible { what: "Q", .. })
        ));
        assert_eq!(format!("{fresh:?}"), before, "a refused Q changes nothing");

        // Node 2 under 1, asking 3 and 4.
        let mut node = Shout::new([1, 3, 4].into());
        feed(&mut node, 1, q(1, 0));
        let yes = |size| Body::Yes { size, best: None };
        let before = format!("{node:?}");
        assert!(matches!(
            node.receive(3, &yes(0), &mut sent, &mut events),
            Err(Refusal::Impossible { what: "Yes", .. })
        ));
        assert_eq!(format!("{node:?}"), before);
        feed(&mut node, 3, yes(u64::MAX - 1));
        let before = format!("{node:?}");
        assert!(matches!(
            node.receive(4, &yes(2), &mut sent, &mut events),
            Err(Refusal::Impossible { what: "Yes", .. })
        ));
        assert_eq!(
            format!("{node:?}"),
            before,
            "an overflowing size changes nothing"
        );
        assert!(sent.is_empty() && events.is_empty());
    }
}

#[cfg(test)]
mod best_tests {
    use super::*;
    use crate::log::Pos;

    #[test]
    fn the_convergecast_carries_the_most_advanced_log_to_the_root() {
        let at = |node, epoch, seq| Best {
            pos: Pos::new(epoch, seq),
            node,
        };
        let mut mid = Shout::new([1, 4, 5].into());
        mid.set_own_log(at(2, 1, 9));
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        mid.receive(
            1,
            &Body::Q {
                leader: 1,
                depth: 0,
            },
            &mut sent,
            &mut events,
        )
        .unwrap();
        // 4's subtree has a log of a newer epoch, shorter: newer epoch wins.
        mid.receive(
            4,
            &Body::Yes {
                size: 1,
                best: Some(at(4, 2, 3)),
            },
            &mut sent,
            &mut events,
        )
        .unwrap();
        sent.clear();
        mid.receive(
            5,
            &Body::Yes {
                size: 1,
                best: Some(at(5, 1, 12)),
            },
            &mut sent,
            &mut events,
        )
        .unwrap();
        assert_eq!(
            sent,
            vec![(
                1,
                Body::Yes {
                    size: 3,
                    best: Some(at(4, 2, 3))
                }
            )]
        );
        assert_eq!(
            better(Some(at(7, 2, 3)), Some(at(4, 2, 3))),
            Some(at(4, 2, 3)),
            "a tie: the smaller id"
        );
    }
}
