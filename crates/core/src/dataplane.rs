//! The data plane (SPEC §4): requests up the tree, answers down, and the replication log.
//!
//! Once SHOUT+ has built the tree, every node knows its parent, its children and its roles. The
//! data plane uses nothing else:
//!
//! - **Requests travel up**, hop by hop, towards the root. A read stops at the first node able to
//!   serve it (a `persistence` replica whose copy is at least as new as the reader's last write,
//!   or the `writer`); a write always goes to the writer.
//! - **Answers travel down** along a next-hop table. When the tree forms, every `input` node
//!   *announces* itself to its parent; each node records "answers for input i go to child c" and
//!   passes the announcement on up. A link is FIFO, so an input's announcement always reaches a
//!   node before any request of that input does.
//! - **Replication.** The writer numbers every change (its log's sequence number) and ships it to
//!   every current persistence replica, which are its own children: one hop. A replica applies
//!   changes strictly in order; a gap (a number it did not expect) makes it ask the writer for
//!   what it missed. With durability `replicas` (the default) the writer answers a write only once
//!   every replica has acknowledged it.
//!
//! Like the rest of the core this does no I/O: the payloads (operations, answers, log entries)
//! are opaque JSON strings here; the node daemon applies them to SQLite and to HTTP.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::roles::Role;
use crate::{Epoch, NodeId};

/// A request's identity: the input node it came in at, and that node's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The input node that will answer the client.
    pub origin: NodeId,
    /// Unique per origin.
    pub n: u64,
}

/// What a request needs from the node that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Need {
    /// A read, from a copy that has applied at least `min_seq` (read-your-writes).
    Read {
        /// The reader's last write.
        min_seq: u64,
    },
    /// A write: only the writer.
    Write,
}

/// A data-plane message between neighbours on the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "data", rename_all = "snake_case")]
pub enum DataMessage {
    /// Up: "answers for `input` go through me".
    Announce {
        /// The epoch of the tree.
        epoch: Epoch,
        /// The input node.
        input: NodeId,
    },
    /// Up: a client's request.
    Request {
        /// The epoch of the tree it was routed on.
        epoch: Epoch,
        /// Its identity.
        id: RequestId,
        /// What serving it takes.
        need: Need,
        /// The operation (JSON).
        body: String,
    },
    /// Down: the answer to request `id`.
    Response {
        /// The epoch.
        epoch: Epoch,
        /// The request answered.
        id: RequestId,
        /// The answer (JSON).
        body: String,
    },
    /// Writer → replica: log entry number `seq`.
    Append {
        /// The epoch.
        epoch: Epoch,
        /// The entry's number.
        seq: u64,
        /// The entry (JSON).
        entry: String,
    },
    /// Replica → writer: "I have durably applied everything up to `seq`".
    Ack {
        /// The epoch.
        epoch: Epoch,
        /// The replica's last applied entry.
        seq: u64,
    },
    /// Replica → writer: "send me what comes after `after`".
    Fetch {
        /// The epoch.
        epoch: Epoch,
        /// The replica's last applied entry.
        after: u64,
    },
    /// Writer → replica: a whole copy of the database, for a replica that starts from nothing.
    Snapshot {
        /// The epoch.
        epoch: Epoch,
        /// The last entry the snapshot contains.
        seq: u64,
        /// The snapshot (JSON).
        body: String,
    },
}

impl DataMessage {
    /// The epoch the message belongs to.
    pub fn epoch(&self) -> Epoch {
        match self {
            DataMessage::Announce { epoch, .. }
            | DataMessage::Request { epoch, .. }
            | DataMessage::Response { epoch, .. }
            | DataMessage::Append { epoch, .. }
            | DataMessage::Ack { epoch, .. }
            | DataMessage::Fetch { epoch, .. }
            | DataMessage::Snapshot { epoch, .. } => *epoch,
        }
    }
}

/// Where a request goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Serve it here.
    Serve,
    /// Pass it to the parent.
    Up(NodeId),
    /// Nobody can: answer the client with this reason (a 503).
    Unroutable(String),
}

/// Where an answer goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Down {
    /// It is ours: answer the client.
    Deliver,
    /// Pass it to this child.
    Child(NodeId),
    /// No route back (the tree changed): drop it, with this reason for the log.
    Lost(String),
}

/// How much of the lab a root's tree holds: what a minority's root says when it refuses a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// Nodes in the tree.
    pub nodes: u64,
    /// Nodes in the lab.
    pub lab: u64,
}

/// A node's place on the data plane for one epoch's tree.
#[derive(Clone, Debug)]
pub struct Router {
    id: NodeId,
    epoch: Epoch,
    /// The tree of `epoch` is known here (false while its election runs).
    ready: bool,
    parent: Option<NodeId>,
    roles: Vec<Role>,
    /// At the root: how much of the lab the tree holds.
    share: Share,
    /// Input node → the child that leads to it.
    routes: BTreeMap<NodeId, NodeId>,
}

impl Router {
    /// A node with no tree yet: it can neither serve nor forward.
    pub fn new(id: NodeId) -> Self {
        Router {
            id,
            epoch: 0,
            ready: false,
            parent: None,
            roles: Vec::new(),
            share: Share::default(),
            routes: BTreeMap::new(),
        }
    }

    /// A new epoch began: the old tree is gone, and the new one is not known yet. Requests are
    /// refused (503) until [`Router::set_tree`].
    pub fn reset(&mut self, epoch: Epoch) {
        *self = Router {
            epoch,
            ..Router::new(self.id)
        };
    }

    /// Whether the tree of the current epoch is known here.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The tree of `epoch` is known here: our parent and roles (and at the root, how much of the
    /// lab the tree holds). Returns the announcement to send to the parent, if we are an input
    /// node with a parent.
    pub fn set_tree(
        &mut self,
        epoch: Epoch,
        parent: Option<NodeId>,
        roles: Vec<Role>,
        share: Share,
    ) -> Option<(NodeId, DataMessage)> {
        self.epoch = epoch;
        self.ready = true;
        self.parent = parent;
        self.share = share;
        self.routes.clear();
        let is_input = roles.contains(&Role::Input);
        self.roles = roles;
        match (is_input, parent) {
            (true, Some(parent)) => Some((
                parent,
                DataMessage::Announce {
                    epoch,
                    input: self.id,
                },
            )),
            _ => None,
        }
    }

    /// The epoch of the current tree (0: none).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The node's roles on this tree.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The parent on this tree.
    pub fn parent(&self) -> Option<NodeId> {
        self.parent
    }

    /// Whether this node is the writer.
    pub fn is_writer(&self) -> bool {
        self.roles.contains(&Role::Writer)
    }

    /// A child announced `input`: remember the way back, and pass the news up.
    pub fn announced(&mut self, child: NodeId, input: NodeId) -> Option<(NodeId, DataMessage)> {
        self.routes.insert(input, child);
        self.parent.map(|parent| {
            (
                parent,
                DataMessage::Announce {
                    epoch: self.epoch,
                    input,
                },
            )
        })
    }

    /// Where a request goes, given how far this node's copy of the data is (`applied`).
    pub fn route_request(&self, need: Need, applied: u64) -> Hop {
        if !self.ready {
            return Hop::Unroutable(if self.epoch == 0 {
                "the lab has no spanning tree yet (an election is running); try again in a moment"
                    .into()
            } else {
                format!(
                    "the lab is electing a new leader (epoch {}); try again in a moment",
                    self.epoch
                )
            });
        }
        let is_root = self.is_writer() || self.roles.contains(&Role::Leader);
        let can_serve = match need {
            Need::Write => self.is_writer(),
            // Reads stop at the first persistence replica or the root (the writer, or a
            // minority's leader). Even the root answers a read only from data as new as the
            // reader's last write: a root whose log is behind must not pretend.
            Need::Read { min_seq } => {
                (is_root || self.roles.contains(&Role::Persistence)) && applied >= min_seq
            }
        };
        match (can_serve, self.parent) {
            (true, _) => Hop::Serve,
            (false, Some(parent)) => Hop::Up(parent),
            (false, None) if need == Need::Write && self.roles.contains(&Role::Leader) => {
                // The quorum rule (SPEC §6): a minority never writes.
                let Share { nodes, lab } = self.share;
                Hop::Unroutable(format!(
                    "this part of the lab holds {nodes} of {lab} nodes; writes need {}, so \
                     nothing was stored (reads still work)",
                    lab / 2 + 1
                ))
            }
            (false, None) if is_root => Hop::Unroutable(format!(
                "the {} (node {}) holds log entries up to {applied} only, older than your last \
                 write",
                if self.is_writer() { "writer" } else { "leader" },
                self.id
            )),
            (false, None) => Hop::Unroutable(format!(
                "node {} is the root but not the writer: no writer is reachable",
                self.id
            )),
        }
    }

    /// Where the answer to `id` goes.
    pub fn route_response(&self, id: RequestId) -> Down {
        if id.origin == self.id {
            return Down::Deliver;
        }
        match self.routes.get(&id.origin) {
            Some(&child) => Down::Child(child),
            None => Down::Lost(format!(
                "no route back to input node {} (did the tree change?)",
                id.origin
            )),
        }
    }
}

/// The writer's side of replication: who must acknowledge what.
#[derive(Clone, Debug, Default)]
pub struct Shipper {
    /// The current persistence replicas and the last entry each acknowledged.
    acked: BTreeMap<NodeId, u64>,
    /// Writes waiting for acknowledgements, by log sequence number.
    waiting: BTreeMap<u64, RequestId>,
}

impl Shipper {
    /// Replication to `replicas` (the writer's children that are persistence nodes).
    pub fn new(replicas: impl IntoIterator<Item = NodeId>) -> Self {
        Shipper {
            acked: replicas.into_iter().map(|r| (r, 0)).collect(),
            waiting: BTreeMap::new(),
        }
    }

    /// The replicas.
    pub fn replicas(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.acked.keys().copied()
    }

    /// The writer durably applied entry `seq` for request `id` (if it answers a client). Returns
    /// the requests now fully acknowledged: with no replica, at once.
    pub fn applied(&mut self, seq: u64, id: Option<RequestId>) -> Vec<(RequestId, u64)> {
        if let Some(id) = id {
            self.waiting.insert(seq, id);
        }
        self.settle()
    }

    /// Replica `from` acknowledged everything up to `seq` (acknowledgements are cumulative).
    /// Returns the requests now fully acknowledged.
    pub fn ack(&mut self, from: NodeId, seq: u64) -> Vec<(RequestId, u64)> {
        if let Some(last) = self.acked.get_mut(&from) {
            *last = (*last).max(seq);
        }
        self.settle()
    }

    /// The lowest acknowledgement over every replica (everything up to it is everywhere).
    pub fn durable_everywhere(&self) -> Option<u64> {
        self.acked.values().copied().min()
    }

    fn settle(&mut self) -> Vec<(RequestId, u64)> {
        let everywhere = self.durable_everywhere().unwrap_or(u64::MAX);
        let still = self.waiting.split_off(&(everywhere.saturating_add(1)));
        let done = std::mem::replace(&mut self.waiting, still);
        done.into_iter().map(|(seq, id)| (id, seq)).collect()
    }

    /// Give up on every waiting write (the replicas did not answer in time); returns them.
    pub fn abandon(&mut self, older_than_or_equal: u64) -> Vec<(RequestId, u64)> {
        let rest = self
            .waiting
            .split_off(&(older_than_or_equal.saturating_add(1)));
        let gone = std::mem::replace(&mut self.waiting, rest);
        gone.into_iter().map(|(seq, id)| (id, seq)).collect()
    }

    /// Replicas that have not acknowledged `seq`.
    pub fn missing(&self, seq: u64) -> Vec<NodeId> {
        self.acked
            .iter()
            .filter(|(_, &a)| a < seq)
            .map(|(&r, _)| r)
            .collect()
    }
}

/// What a replica does with an `Append`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The next entry: apply it, then acknowledge it.
    Apply,
    /// Already applied (a resend): acknowledge what we have.
    Duplicate,
    /// A gap: entries between are missing. Ask for what comes after `after`.
    Gap {
        /// The replica's last applied entry.
        after: u64,
    },
}

/// What a replica does with entry number `seq`, having applied up to `applied`.
pub fn arrival(applied: u64, seq: u64) -> Arrival {
    if seq <= applied {
        Arrival::Duplicate
    } else if seq == applied + 1 {
        Arrival::Apply
    } else {
        Arrival::Gap { after: applied }
    }
}

/// The persistence replicas among a writer's children: those with children of their own.
pub fn replicas_of(children_sizes: &BTreeMap<NodeId, u64>) -> BTreeSet<NodeId> {
    children_sizes
        .iter()
        .filter(|(_, &size)| size > 1)
        .map(|(&child, _)| child)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(
        id: NodeId,
        parent: Option<NodeId>,
        roles: Vec<Role>,
    ) -> (Router, Option<(NodeId, DataMessage)>) {
        let mut r = Router::new(id);
        let announce = r.set_tree(1, parent, roles, Share { nodes: 6, lab: 6 });
        (r, announce)
    }

    #[test]
    fn an_input_node_announces_itself_to_its_parent() {
        let (_, announce) = router(4, Some(3), vec![Role::Input]);
        assert_eq!(
            announce,
            Some((3, DataMessage::Announce { epoch: 1, input: 4 }))
        );
        let (_, none) = router(3, Some(2), vec![Role::Forwarder]);
        assert_eq!(none, None);
    }

    #[test]
    fn announcements_build_the_way_back_and_travel_up() {
        let (mut r, _) = router(2, Some(1), vec![Role::Persistence]);
        assert_eq!(
            r.announced(3, 4),
            Some((1, DataMessage::Announce { epoch: 1, input: 4 }))
        );
        assert_eq!(
            r.route_response(RequestId { origin: 4, n: 9 }),
            Down::Child(3)
        );
        assert_eq!(
            r.route_response(RequestId { origin: 2, n: 9 }),
            Down::Deliver
        );
        assert!(matches!(
            r.route_response(RequestId { origin: 7, n: 1 }),
            Down::Lost(_)
        ));
    }

    #[test]
    fn writes_go_to_the_writer() {
        let (forwarder, _) = router(3, Some(2), vec![Role::Forwarder]);
        let (replica, _) = router(2, Some(1), vec![Role::Persistence]);
        let (writer, _) = router(1, None, vec![Role::Writer]);
        assert_eq!(forwarder.route_request(Need::Write, 0), Hop::Up(2));
        assert_eq!(replica.route_request(Need::Write, 10), Hop::Up(1));
        assert_eq!(writer.route_request(Need::Write, 0), Hop::Serve);
    }

    #[test]
    fn reads_stop_at_the_first_replica_that_is_new_enough() {
        let (replica, _) = router(2, Some(1), vec![Role::Persistence]);
        assert_eq!(
            replica.route_request(Need::Read { min_seq: 5 }, 5),
            Hop::Serve
        );
        assert_eq!(
            replica.route_request(Need::Read { min_seq: 6 }, 5),
            Hop::Up(1),
            "behind the reader's last write: ask the writer"
        );
        let (input, _) = router(4, Some(3), vec![Role::Input]);
        assert_eq!(
            input.route_request(Need::Read { min_seq: 0 }, 0),
            Hop::Up(3)
        );
    }

    #[test]
    fn a_writer_behind_the_readers_last_write_does_not_pretend() {
        let (writer, _) = router(1, None, vec![Role::Writer]);
        assert_eq!(
            writer.route_request(Need::Read { min_seq: 5 }, 5),
            Hop::Serve
        );
        assert!(matches!(
            writer.route_request(Need::Read { min_seq: 6 }, 5),
            Hop::Unroutable(_)
        ));
    }

    #[test]
    fn a_one_node_lab_serves_everything_itself() {
        let (solo, announce) = router(1, None, vec![Role::Writer, Role::Input]);
        assert_eq!(announce, None);
        assert_eq!(solo.route_request(Need::Write, 0), Hop::Serve);
        assert_eq!(solo.route_request(Need::Read { min_seq: 3 }, 3), Hop::Serve);
        assert_eq!(
            solo.route_response(RequestId { origin: 1, n: 1 }),
            Down::Deliver
        );
    }

    #[test]
    fn a_minority_root_refuses_writes_with_the_counts_and_serves_reads() {
        let mut leader = Router::new(1);
        leader.set_tree(3, None, vec![Role::Leader], Share { nodes: 2, lab: 6 });
        let Hop::Unroutable(reason) = leader.route_request(Need::Write, 0) else {
            panic!("a minority writes nothing")
        };
        assert!(
            reason.contains("holds 2 of 6 nodes; writes need 4"),
            "{reason}"
        );
        assert_eq!(
            leader.route_request(Need::Read { min_seq: 0 }, 0),
            Hop::Serve
        );
        let (input, _) = router(2, Some(1), vec![Role::Input]);
        assert_eq!(
            input.route_request(Need::Write, 0),
            Hop::Up(1),
            "the root says no"
        );
    }

    #[test]
    fn a_new_epoch_refuses_requests_until_its_tree_is_known() {
        let (mut r, _) = router(2, Some(1), vec![Role::Input]);
        r.reset(4);
        assert!(!r.ready());
        let Hop::Unroutable(reason) = r.route_request(Need::Read { min_seq: 0 }, 0) else {
            panic!("no tree, no route")
        };
        assert!(reason.contains("epoch 4"), "{reason}");
        assert!(matches!(
            r.route_response(RequestId { origin: 4, n: 1 }),
            Down::Lost(_)
        ));
        r.set_tree(4, Some(1), vec![Role::Input], Share::default());
        assert_eq!(r.route_request(Need::Write, 0), Hop::Up(1));
    }

    #[test]
    fn no_tree_no_route() {
        let r = Router::new(5);
        assert!(matches!(
            r.route_request(Need::Write, 0),
            Hop::Unroutable(_)
        ));
    }

    #[test]
    fn a_write_is_answered_only_once_every_replica_acknowledged_it() {
        let mut s = Shipper::new([2, 6]);
        let id = RequestId { origin: 4, n: 1 };
        assert!(s.applied(1, Some(id)).is_empty());
        assert!(s.ack(2, 1).is_empty(), "6 has not confirmed");
        assert_eq!(s.missing(1), vec![6]);
        assert_eq!(s.ack(6, 1), vec![(id, 1)]);
    }

    #[test]
    fn acknowledgements_are_cumulative() {
        let mut s = Shipper::new([2]);
        let a = RequestId { origin: 4, n: 1 };
        let b = RequestId { origin: 5, n: 1 };
        s.applied(1, Some(a));
        s.applied(2, Some(b));
        assert_eq!(s.ack(2, 2), vec![(a, 1), (b, 2)]);
    }

    #[test]
    fn without_replicas_a_write_is_done_once_the_writer_has_it() {
        let mut s = Shipper::new([]);
        let id = RequestId { origin: 1, n: 1 };
        assert_eq!(s.applied(1, Some(id)), vec![(id, 1)]);
    }

    #[test]
    fn a_replica_applies_in_order_and_detects_gaps() {
        assert_eq!(arrival(4, 5), Arrival::Apply);
        assert_eq!(arrival(4, 4), Arrival::Duplicate);
        assert_eq!(arrival(4, 7), Arrival::Gap { after: 4 });
    }

    #[test]
    fn replicas_are_the_writers_children_with_children() {
        let sizes = BTreeMap::from([(2, 3), (5, 1), (6, 2)]);
        assert_eq!(replicas_of(&sizes), BTreeSet::from([2, 6]));
    }
}
