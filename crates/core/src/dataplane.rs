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

/// A node's place on the data plane for one epoch's tree.
#[derive(Clone, Debug)]
pub struct Router {
    id: NodeId,
    epoch: Epoch,
    parent: Option<NodeId>,
    roles: Vec<Role>,
    /// Input node → the child that leads to it.
    routes: BTreeMap<NodeId, NodeId>,
}

impl Router {
    /// A node with no tree yet: it can neither serve nor forward.
    pub fn new(id: NodeId) -> Self {
        Router {
            id,
            epoch: 0,
            parent: None,
            roles: Vec::new(),
            routes: BTreeMap::new(),
        }
    }

    /// The tree of `epoch` is known here: our parent and roles. Returns the announcement to send
    /// to the parent, if we are an input node with a parent.
    pub fn set_tree(
        &mut self,
        epoch: Epoch,
        parent: Option<NodeId>,
        roles: Vec<Role>,
    ) -> Option<(NodeId, DataMessage)> {
        self.epoch = epoch;
        self.parent = parent;
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
        if self.epoch == 0 {
            return Hop::Unroutable(
                "the lab has no spanning tree yet (an election is running)".into(),
            );
        }
        let can_serve = match need {
            Need::Write => self.is_writer(),
            // Even the writer answers a read only from data as new as the reader's last write:
            // a writer whose log is behind (a lost or replaced database) must not pretend.
            Need::Read { min_seq } => {
                (self.is_writer() || self.roles.contains(&Role::Persistence)) && applied >= min_seq
            }
        };
        match (can_serve, self.parent) {
            (true, _) => Hop::Serve,
            (false, Some(parent)) => Hop::Up(parent),
            (false, None) if self.is_writer() => Hop::Unroutable(format!(
                "the writer (node {}) holds log entries up to {applied} only, older than your last \
                 write",
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
        let announce = r.set_tree(1, parent, roles);
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
