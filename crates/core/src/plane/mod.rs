//! The data plane of one node (SPEC §4, §6): requests up the tree, answers down, and a replicated
//! log that loses no acknowledged write, as a pure state machine.
//!
//! The node's store (SQLite in a node daemon, a model in the simulator) keeps the log's entries and
//! the applied state; [`DataPlane`] decides everything else and asks its driver, with
//! [`PlaneOutput::Store`], to append, apply, read or snapshot. The driver reports back what the
//! store did ([`PlaneInput::Stored`], [`PlaneInput::Applied`] …).
//!
//! # The log, step by step
//! 1. **Propose.** The writer (the root of a tree that spans a strict majority) gives each write
//!    the next position `(epoch, seq)` and appends it to its log. The entry carries the command
//!    and, if the client sent one, its `Idempotency-Key`.
//! 2. **Down the tree.** `Append{prev, entries, commit}` goes to the writer's children, and each
//!    node forwards it to its own children: with durability `majority` the log flows down the whole
//!    tree; with `replicas` and `writer` only to the persistence replicas.
//! 3. **Log matching** (Raft §5.3). A node accepts entries only if its log holds `prev`, the entry
//!    before them, with the same epoch. Otherwise it says where its log is (`Nack`), and the writer
//!    sends what it lacks. An entry of the node's log that differs from the writer's (an old
//!    writer's unacknowledged tail) is discarded with everything after it.
//! 4. **Acknowledge up the tree.** Once an entry is durable, the node acknowledges the position up
//!    to which its log equals the writer's (`Ack{from, seq}`); every node on the way relays it.
//! 5. **Commit** (Raft §5.4). The writer commits entry N when N and an entry of its own epoch at or
//!    after it are durable where the durability asks: on a strict majority of the lab's nodes
//!    (`majority`), on the writer and every persistence replica (`replicas`), on the writer
//!    (`writer`). The commit index travels down with the next `Append`; with `majority`, a
//!    write's answer carries it too: the nodes it passes on its way to the input node commit up
//!    to its position at once if their log holds that entry (`DataPlane::learn_commit`).
//! 6. **Apply.** Every node applies entries to its state only once they are committed, in order,
//!    so no read ever sees an entry that may still be discarded. The writer answers a write with
//!    the result of applying it, and its position, which becomes the client's read position. A
//!    read that comes while the apply of its reader's last write is on its way to the store
//!    waits for it here rather than going up the tree (`DataPlane::will_read`).
//!
//! # The view change (Viewstamped Replication, Liskov & Cowling 2012, §4.2)
//! A new writer does not know which of its component's logs is the most advanced, so SHOUT+'s
//! convergecast carries each member's last position up the tree ([`Tree::best`]). If a member's
//! log is ahead of its own, the writer fetches that log's tail (`FetchLog`, `Tail`) and adopts it,
//! dropping any tail of its own that differs; a member whose log no longer reaches back to the
//! writer's applied prefix sends its state whole first (`TailSnapshot`), which the writer
//! restores (one restore at a time: [`DataPlane`]'s `restore`) before it asks for the rest. Then
//! it appends an entry of its own epoch (the epoch-start entry) and answers nothing, writes or
//! reads, until that entry commits: committing it commits everything before it. With `majority`, any two majorities share a node, so every
//! acknowledged write is in the most advanced log of any majority component: none is lost.
//!
//! # Requests
//! A request from the node's own HTTP layer waits here for its answer. When the node's epoch
//! changes, it is answered at once: "not done" (503) if it never left the node, "outcome unknown"
//! (504) if it went up the tree. A minority's root refuses writes (503, with the counts).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::liveness::Millis;
use crate::log::{Pos, Shape, WireEntry};
use crate::roles::Role;
use crate::{Epoch, NodeId};

/// How many entries one `Append` or `Tail` carries at most.
pub const BATCH: usize = 512;
/// How long an input node waits for an answer before it gives up (504 if it had forwarded it).
pub const REQUEST_TIMEOUT_MS: Millis = 5_000;
/// How often the writer repeats its last position and commit to its tree, while it has
/// uncommitted entries (and now and then anyway): lost messages are found out this way.
pub const BEAT_MS: Millis = 200;
/// How often a driver gives its data plane a `Tick` (the node daemon and the simulator alike).
pub const TICK_MS: Millis = 50;
/// How long a repair or a fetch waits before it is sent again.
pub const RETRY_MS: Millis = 1_000;
/// The most requests a node keeps waiting (early ones, or at a writer not ready yet).
pub const MAX_WAITING: usize = 10_000;

/// When a write counts as done (SPEC §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Durable on a strict majority of the lab's nodes: the log flows down the whole tree.
    #[default]
    Majority,
    /// Durable at the writer and at every current persistence replica (the original's design).
    Replicas,
    /// Durable at the writer.
    Writer,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Majority => "majority",
            Durability::Replicas => "replicas",
            Durability::Writer => "writer",
        })
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "majority" => Ok(Durability::Majority),
            "replicas" => Ok(Durability::Replicas),
            "writer" => Ok(Durability::Writer),
            other => Err(format!(
                "durability {other:?}: give majority, replicas or writer"
            )),
        }
    }
}

/// A request's identity: the input node it came in at, and that node's counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The input node that will answer the client.
    pub origin: NodeId,
    /// Unique per origin.
    pub n: u64,
}

/// How much of the lab a root's tree holds: what a minority's root says when it refuses a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// Nodes in the tree.
    pub nodes: u64,
    /// Nodes in the lab.
    pub lab: u64,
}

/// What a request needs from the node that serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Need {
    /// A read, from a copy whose applied log holds `min` (the reader's last write).
    Read {
        /// The reader's read position.
        min: Pos,
    },
    /// A write: only the writer.
    Write,
}

/// The answer to a request, as it travels down the tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// What the store answered (success or refusal, opaque here), and the log position it
    /// reflects: a write's own, a read's applied position.
    Served {
        /// The store's answer (JSON).
        body: String,
        /// The position.
        pos: Pos,
    },
    /// Not done, and it will not be (503).
    NotDone {
        /// Why.
        reason: String,
    },
    /// The outcome is unknown: it went toward the writer, and no answer came (504).
    Unknown {
        /// Why.
        reason: String,
    },
}

/// A data-plane message between neighbours of one epoch's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "data", rename_all = "snake_case")]
pub enum PlaneMessage {
    /// Up: "node `node` hangs below me" (every node announces itself, so messages addressed to a
    /// node find their way down).
    Announce {
        /// The epoch of the tree.
        epoch: Epoch,
        /// The node.
        node: NodeId,
    },
    /// Up: a client's request.
    Request {
        /// The epoch.
        epoch: Epoch,
        /// Its identity.
        id: RequestId,
        /// What serving it takes.
        need: Need,
        /// Its idempotency key, scoped to its user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The operation (JSON, opaque here).
        body: String,
    },
    /// Down: the answer to request `id`.
    Response {
        /// The epoch.
        epoch: Epoch,
        /// The request answered.
        id: RequestId,
        /// The answer.
        answer: Answer,
    },
    /// Down: entries of the writer's log after `prev`, and its commit index. `to`: addressed to
    /// one node (a repair), else for every node below.
    Append {
        /// The epoch.
        epoch: Epoch,
        /// The one node it is for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<NodeId>,
        /// The entry before the first one (log matching).
        prev: Pos,
        /// The entries (none: a beat with the writer's last position and commit).
        entries: Vec<WireEntry>,
        /// The writer's commit index.
        commit: u64,
    },
    /// Up: node `from` holds the writer's log durably up to `seq`.
    Ack {
        /// The epoch.
        epoch: Epoch,
        /// The node acknowledging.
        from: NodeId,
        /// Its match index.
        seq: u64,
    },
    /// Up: node `from` could not take an `Append` (log matching failed): where its log is.
    Nack {
        /// The epoch.
        epoch: Epoch,
        /// The node.
        from: NodeId,
        /// Its last entry.
        last: Pos,
        /// Where its applied (committed) prefix ends.
        applied: Pos,
        /// Its applied prefix differs from the writer's log: only a snapshot mends it. This
        /// happens only with `replicas` or `writer` durability, when a new writer lacks writes
        /// an old one committed (SPEC §4: what those modes may lose).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        diverged: bool,
    },
    /// Down, to `to`: the writer's applied state as of `base`, for a node too far behind.
    Snapshot {
        /// The epoch.
        epoch: Epoch,
        /// The node it is for.
        to: NodeId,
        /// The last entry the snapshot contains.
        base: Pos,
        /// The snapshot (opaque).
        body: String,
    },
    /// Down, to `to`: the new writer asks the most advanced member for its log after `after`.
    FetchLog {
        /// The epoch.
        epoch: Epoch,
        /// The member.
        to: NodeId,
        /// Where the writer's applied prefix ends (with `majority`, every log holds it).
        after: Pos,
    },
    /// Up, to the root: the most advanced member's applied state, when its log no longer goes
    /// back to where the new writer's applied prefix ends.
    TailSnapshot {
        /// The epoch.
        epoch: Epoch,
        /// The snapshot's last entry.
        base: Pos,
        /// The snapshot.
        body: String,
    },
    /// Up, to the root: a batch of the most advanced member's log, after `prev`.
    Tail {
        /// The epoch.
        epoch: Epoch,
        /// The entry before the first one.
        prev: Pos,
        /// The entries.
        entries: Vec<WireEntry>,
        /// More follow.
        more: bool,
    },
}

impl PlaneMessage {
    /// The epoch the message belongs to.
    pub fn epoch(&self) -> Epoch {
        match self {
            PlaneMessage::Announce { epoch, .. }
            | PlaneMessage::Request { epoch, .. }
            | PlaneMessage::Response { epoch, .. }
            | PlaneMessage::Append { epoch, .. }
            | PlaneMessage::Ack { epoch, .. }
            | PlaneMessage::Nack { epoch, .. }
            | PlaneMessage::Snapshot { epoch, .. }
            | PlaneMessage::FetchLog { epoch, .. }
            | PlaneMessage::TailSnapshot { epoch, .. }
            | PlaneMessage::Tail { epoch, .. } => *epoch,
        }
    }
}

/// The most advanced log position in a subtree, and a node that holds it (SHOUT+'s convergecast
/// carries it to the root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Best {
    /// The position.
    pub pos: Pos,
    /// A node whose log ends there.
    pub node: NodeId,
}

/// A node's place in one epoch's tree, as the data plane needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The epoch.
    pub epoch: Epoch,
    /// The parent (None at the root).
    pub parent: Option<NodeId>,
    /// Each child and the size of its subtree.
    pub children: BTreeMap<NodeId, u64>,
    /// The node's roles.
    pub roles: Vec<Role>,
    /// At the root: how much of the lab the tree holds.
    pub share: Share,
    /// At the root: the most advanced log of the tree.
    pub best: Option<Best>,
}

/// Why the driver reads entries from its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// To repair node `to`'s log (the writer).
    Repair {
        /// The node.
        to: NodeId,
    },
    /// To send the new writer the tail of this node's log (the view change).
    Tail,
}

/// What the store must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreJob {
    /// Drop every entry after `after`, then append `entries` (which follow it), durably. Report
    /// [`PlaneInput::Stored`].
    Append {
        /// Keep the log up to here.
        after: u64,
        /// The entries.
        entries: Vec<WireEntry>,
    },
    /// Apply every entry up to `up_to` not applied yet, in order. Report [`PlaneInput::Applied`].
    Apply {
        /// The last entry to apply.
        up_to: u64,
    },
    /// Answer a read from the applied state. Report [`PlaneInput::Queried`].
    Query {
        /// The request.
        id: RequestId,
        /// The read (JSON).
        body: String,
    },
    /// Read up to `limit` entries after `after`. Report [`PlaneInput::EntriesRead`].
    ReadEntries {
        /// After this entry.
        after: u64,
        /// At most this many.
        limit: usize,
        /// What for.
        purpose: Purpose,
    },
    /// Snapshot the applied state. Report [`PlaneInput::Snapshotted`].
    Snapshot {
        /// What for: a node to repair, or the new writer's view change.
        purpose: Purpose,
    },
    /// Replace the state and the log by a snapshot ending at `base`. Report
    /// [`PlaneInput::Restored`].
    Restore {
        /// The snapshot's last entry.
        base: Pos,
        /// The snapshot.
        body: String,
    },
}

/// Something that happens to the data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaneInput {
    /// The node began a new epoch: the old tree is gone.
    EpochStarted {
        /// The epoch.
        epoch: Epoch,
    },
    /// The node's place in its epoch's tree is known (its subtree is complete).
    Tree(Tree),
    /// A message from neighbour `from`.
    Message {
        /// The neighbour.
        from: NodeId,
        /// The message.
        message: PlaneMessage,
    },
    /// A request from this node's HTTP layer, with an id from [`DataPlane::next_request`].
    Request {
        /// Its id.
        id: RequestId,
        /// What it needs.
        need: Need,
        /// Its idempotency key, scoped to its user.
        key: Option<String>,
        /// The operation (JSON).
        body: String,
    },
    /// The store made the log durable up to `seq` (the last [`StoreJob::Append`] is done).
    Stored {
        /// The last durable entry.
        seq: u64,
    },
    /// The store applied entries; each with its answer (JSON), in order.
    Applied {
        /// `(seq, answer)`.
        results: Vec<(u64, String)>,
    },
    /// The store answered a read.
    Queried {
        /// The request.
        id: RequestId,
        /// Its answer (JSON).
        body: String,
    },
    /// The store read entries after `after`.
    EntriesRead {
        /// What for.
        purpose: Purpose,
        /// The entry before the first (its position).
        prev: Pos,
        /// The entries.
        entries: Vec<WireEntry>,
    },
    /// The store made a snapshot.
    Snapshotted {
        /// What for.
        purpose: Purpose,
        /// The snapshot's last entry.
        base: Pos,
        /// The snapshot.
        body: String,
    },
    /// The store restored a snapshot ending at `base`.
    Restored {
        /// Its last entry.
        base: Pos,
    },
    /// The store failed a job (the disk, most likely): what it was to do did not happen.
    StoreFailed {
        /// The job was an append (the entries are not in the log).
        append: bool,
        /// The job was a restore (the state and the log are as they were).
        restore: bool,
        /// Why.
        reason: String,
    },
    /// Time passed: timeouts, beats, retries.
    Tick,
}

/// Something the data plane asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaneOutput {
    /// Send `message` to neighbour `to`.
    Send {
        /// The neighbour.
        to: NodeId,
        /// The message.
        message: PlaneMessage,
    },
    /// Have the store do `job`.
    Store(StoreJob),
    /// Answer this node's HTTP layer.
    Answer {
        /// The request.
        id: RequestId,
        /// The answer.
        answer: Answer,
    },
    /// Something worth a line in the log.
    Note(String),
}

/// The data plane's settings.
#[derive(Clone, Debug)]
pub struct PlaneConfig {
    /// This node.
    pub id: NodeId,
    /// How many nodes the lab has.
    pub lab_size: u64,
    /// When a write counts as done.
    pub durability: Durability,
    /// Request numbers start above this (a restarted node must not reuse an earlier run's).
    pub first_request: u64,
    /// The store's log when the node started.
    pub shape: Shape,
    /// The store's applied prefix when the node started (also the commit index it knows).
    pub applied: u64,
}

/// A request of this node's HTTP layer, waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    deadline: Millis,
    /// It left the node (up the tree, or into the writer's log): its outcome is unknown until
    /// answered.
    forwarded: bool,
}

/// A request waiting at a writer that is not ready yet.
#[derive(Clone, Debug)]
struct Waiting {
    id: RequestId,
    need: Need,
    key: Option<String>,
    body: String,
}

/// The writer's side of the log for one epoch.
#[derive(Clone, Debug, Default)]
struct Writer {
    /// The epoch-start entry's seq, once appended (None while fetching the most advanced log).
    start: Option<u64>,
    /// The member whose log is being fetched, and when it was last asked.
    fetching: Option<(NodeId, Millis)>,
    /// Each node's acknowledged match index in this epoch.
    matches: BTreeMap<NodeId, u64>,
    /// Writes in the log awaiting their application, by seq.
    proposals: BTreeMap<u64, RequestId>,
    /// When each node was last repaired (one repair a node per [`RETRY_MS`]).
    repairs: BTreeMap<NodeId, Millis>,
    /// When the last beat went out, and the commit index it carried.
    beat: (Millis, u64),
    /// Requests waiting for the epoch-start entry to commit.
    waiting: VecDeque<Waiting>,
    /// Writes that came while the writer's log held entries not yet committed: they go into the
    /// log together once those commit (group commit, see `DataPlane::propose`).
    batch: Vec<Waiting>,
    /// The store failed to append one of this epoch's own entries: why. The entry may be in
    /// children's logs already, so its position can never be given to another entry, and this
    /// writer takes no more writes in its epoch (see `DataPlane::writer_append_failed`).
    broken: Option<String>,
}

/// One node's data plane. One owner (the node's driver, or the simulator) calls
/// [`DataPlane::handle`] for each input, in order.
#[derive(Clone, Debug)]
pub struct DataPlane {
    config: PlaneConfig,
    now: Millis,
    epoch: Epoch,
    tree: Option<Tree>,
    /// Descendant → the child that leads to it.
    routes: BTreeMap<NodeId, NodeId>,
    shape: Shape,
    /// The log is durable up to here.
    durable: u64,
    /// Applied up to here (the store's state).
    applied: u64,
    /// An apply job was asked up to here.
    applying: u64,
    /// The commit index known here.
    commit: u64,
    /// This node's log equals the writer's up to here, in this epoch.
    matched: u64,
    /// A [`StoreJob::Restore`] the store has not reported yet: the base of its snapshot. While
    /// it is set the log is the store's alone (see [`DataPlane::restore`]).
    restoring: Option<Pos>,
    writer: Option<Writer>,
    pending: BTreeMap<RequestId, Pending>,
    next_request: u64,
    /// Messages of a tree this node has not taken its place in yet.
    early: Vec<(NodeId, PlaneMessage)>,
    /// Reads this node will serve once the apply it asked for is done (see
    /// [`DataPlane::will_read`]), in arrival order.
    parked: Vec<Parked>,
}

/// A read waiting here for an apply in flight: its reader's last write is committed and in
/// this node's log, only not applied yet.
#[derive(Clone, Debug)]
struct Parked {
    id: RequestId,
    min: Pos,
    body: String,
    /// When it was parked: one that waited a whole tick goes up the tree instead.
    since: Millis,
}

impl DataPlane {
    /// A node's data plane, its store as `config` describes it, no tree yet.
    pub fn new(config: PlaneConfig) -> Self {
        let shape = config.shape.clone();
        DataPlane {
            durable: shape.last_seq(),
            applied: config.applied,
            applying: config.applied,
            commit: config.applied,
            matched: config.applied,
            restoring: None,
            next_request: config.first_request,
            shape,
            config,
            now: 0,
            epoch: 0,
            tree: None,
            routes: BTreeMap::new(),
            writer: None,
            pending: BTreeMap::new(),
            early: Vec::new(),
            parked: Vec::new(),
        }
    }

    /// A new id for a request of this node's HTTP layer.
    pub fn next_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId {
            origin: self.config.id,
            n: self.next_request,
        }
    }

    /// The last entry of this node's log (what SHOUT+'s convergecast reports).
    pub fn last(&self) -> Pos {
        self.shape.last()
    }

    /// The applied prefix.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The commit index known here.
    pub fn commit(&self) -> u64 {
        self.commit
    }

    /// Whether this node is the writer of its epoch, ready to answer (its epoch-start entry
    /// applied).
    pub fn ready_writer(&self) -> bool {
        self.writer
            .as_ref()
            .and_then(|w| w.start)
            .is_some_and(|start| self.applied >= start)
    }

    /// Where the applied prefix ends.
    pub fn applied_pos(&self) -> Pos {
        Pos::new(self.shape.epoch_at(self.applied).unwrap_or(0), self.applied)
    }

    /// The log's shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Handle one input at `now`; append what to do to `out`.
    pub fn handle(&mut self, now: Millis, input: PlaneInput, out: &mut Vec<PlaneOutput>) {
        self.now = self.now.max(now);
        match input {
            PlaneInput::EpochStarted { epoch } => self.epoch_started(epoch, out),
            PlaneInput::Tree(tree) => self.take_tree(tree, out),
            PlaneInput::Message { from, message } => self.receive(from, message, out),
            PlaneInput::Request {
                id,
                need,
                key,
                body,
            } => {
                self.pending.insert(
                    id,
                    Pending {
                        deadline: self.now + REQUEST_TIMEOUT_MS,
                        forwarded: false,
                    },
                );
                self.route(id, need, key, body, out);
            }
            PlaneInput::Stored { seq } => self.stored(seq, out),
            PlaneInput::Applied { results } => self.applied_entries(results, out),
            PlaneInput::Queried { id, body } => {
                let pos = Pos::new(self.shape.epoch_at(self.applied).unwrap_or(0), self.applied);
                self.answer(id, Answer::Served { body, pos }, out);
            }
            PlaneInput::EntriesRead {
                purpose,
                prev,
                entries,
            } => self.entries_read(purpose, prev, entries, out),
            PlaneInput::Snapshotted {
                purpose,
                base,
                body,
            } => {
                let epoch = self.epoch;
                match purpose {
                    Purpose::Repair { to } => self.send_toward(
                        to,
                        PlaneMessage::Snapshot {
                            epoch,
                            to,
                            base,
                            body,
                        },
                        out,
                    ),
                    Purpose::Tail => self.up(PlaneMessage::TailSnapshot { epoch, base, body }, out),
                }
            }
            PlaneInput::Restored { base } => self.restored(base, out),
            PlaneInput::StoreFailed {
                append,
                restore,
                reason,
            } => {
                // Forget what the store did not do: an apply is asked again at the next commit
                // or beat, entries not appended are fetched again (log matching finds them), a
                // snapshot not restored is asked for again (the writer's next repair, or the
                // new writer's next fetch).
                out.push(PlaneOutput::Note(format!("the store failed: {reason}")));
                if append {
                    self.writer_append_failed(&reason, out);
                }
                if restore {
                    self.restoring = None;
                }
                self.applying = self.applied;
                if append {
                    let keep = self.durable.max(self.applied);
                    self.shape.truncate(keep);
                    self.matched = self.matched.min(keep);
                }
                // The apply a parked read waited for may be gone with it.
                self.unpark(out);
            }
            PlaneInput::Tick => self.tick(out),
        }
    }

    // ------------------------------------------------------------------------------- epochs

    /// A new epoch: every request this node holds is answered now (SPEC §6), and the old tree's
    /// routes and writer are gone. Only the committed prefix is sure to be in the next writer's
    /// log.
    fn epoch_started(&mut self, epoch: Epoch, out: &mut Vec<PlaneOutput>) {
        self.epoch = epoch;
        self.tree = None;
        self.routes.clear();
        self.writer = None;
        self.matched = self.applied;
        // Only what this node applied (or is applying) is sure to be committed in every mode:
        // the rest of the commit index is learned again from the new writer.
        self.commit = self.applying;
        self.early.retain(|(_, m)| m.epoch() >= epoch);
        // Parked reads of this node's own clients are answered below with the rest; those of
        // nodes below it get no answer from an old tree (their own nodes give up on them).
        self.parked.clear();
        let why = format!("the lab began electing a new leader (epoch {epoch})");
        for (id, pending) in std::mem::take(&mut self.pending) {
            out.push(PlaneOutput::Answer {
                id,
                answer: give_up(pending, &why),
            });
        }
    }

    /// This node's place in its epoch's tree: announce ourselves up; a writer begins the view
    /// change; messages that came early are handled now.
    fn take_tree(&mut self, tree: Tree, out: &mut Vec<PlaneOutput>) {
        if tree.epoch != self.epoch {
            return; // a tree of an epoch already left
        }
        if let Some(parent) = tree.parent {
            let node = self.config.id;
            out.push(PlaneOutput::Send {
                to: parent,
                message: PlaneMessage::Announce {
                    epoch: self.epoch,
                    node,
                },
            });
        }
        let writes = tree.roles.contains(&Role::Writer);
        let best = tree.best;
        self.tree = Some(tree);
        if writes {
            self.writer = Some(Writer::default());
            if let Some(base) = self.restoring {
                // A snapshot of an earlier tree is being restored: the log we would compare
                // with the best one, and append our epoch-start entry to, is about to be
                // replaced. The view change begins once the store reports it
                // ([`DataPlane::restored`]).
                out.push(PlaneOutput::Note(format!(
                    "view change: waiting for the store to restore the snapshot at {base} first"
                )));
            } else {
                self.begin_view_change(best, out);
            }
        }
        for (from, message) in std::mem::take(&mut self.early) {
            self.receive(from, message, out);
        }
    }

    /// The view change, step 1: if another member's log is ahead of ours, take its tail first;
    /// else our log is the most advanced, and our epoch starts right after it.
    fn begin_view_change(&mut self, best: Option<Best>, out: &mut Vec<PlaneOutput>) {
        match best {
            Some(best) if best.pos > self.shape.last() && best.node != self.config.id => {
                out.push(PlaneOutput::Note(format!(
                    "view change: node {} holds the most advanced log {}, ahead of ours {}; \
                     fetching its tail",
                    best.node,
                    best.pos,
                    self.shape.last()
                )));
                self.fetch(best.node, out);
            }
            _ => self.start_epoch(out),
        }
    }

    /// The writer appends its epoch-start entry: committing it commits every entry before it.
    fn start_epoch(&mut self, out: &mut Vec<PlaneOutput>) {
        let seq = self.append_entries(vec![(None, String::new())], out);
        if let Some(w) = self.writer.as_mut() {
            w.start = Some(seq);
            w.fetching = None;
        }
        out.push(PlaneOutput::Note(format!(
            "writer of epoch {}: epoch-start entry at {seq}; answering once it commits",
            self.epoch
        )));
    }

    /// Ask member `from` for its log after our applied prefix (the view change, step 2).
    ///
    /// Asked once, and again only after [`RETRY_MS`] without an answer: each ask may bring a
    /// whole snapshot back. It need not wait for `from`'s `Announce` either: with no route known
    /// yet, `send_toward` floods the tree, and every node of it has its place already (the root
    /// learns its tree last). Copies still happen (a slow answer crosses a retry), and every
    /// step that takes an answer drops those it no longer needs.
    fn fetch(&mut self, from: NodeId, out: &mut Vec<PlaneOutput>) {
        let epoch = self.epoch;
        let after = Pos::new(self.shape.epoch_at(self.applied).unwrap_or(0), self.applied);
        if let Some(w) = self.writer.as_mut() {
            w.fetching = Some((from, self.now));
        }
        self.send_toward(
            from,
            PlaneMessage::FetchLog {
                epoch,
                to: from,
                after,
            },
            out,
        );
    }

    // ------------------------------------------------------------------------------- requests

    /// Serve a request here, pass it up, hold it, or refuse it.
    fn route(
        &mut self,
        id: RequestId,
        need: Need,
        key: Option<String>,
        body: String,
        out: &mut Vec<PlaneOutput>,
    ) {
        let Some(tree) = &self.tree else {
            let reason = format!(
                "the lab is electing a leader (epoch {}); try again in a moment",
                self.epoch
            );
            return self.answer(id, Answer::NotDone { reason }, out);
        };
        let is_writer = tree.roles.contains(&Role::Writer);
        let is_leader = tree.roles.contains(&Role::Leader);
        let share = tree.share;
        let broken = self.writer.as_ref().and_then(|w| w.broken.as_deref());
        if let (Some(broken), Need::Write) = (broken, need) {
            let reason = format!(
                "the writer (node {}) could not store a write ({broken}), so it takes none until \
                 a new leader is elected (restarting that node starts an election); nothing was \
                 done",
                self.config.id
            );
            return self.answer(id, Answer::NotDone { reason }, out);
        }
        if is_writer && !self.ready_writer() {
            // The view change is not done: nothing is answered yet (SPEC §6).
            if self.writer.as_ref().expect("a writer").waiting.len() >= MAX_WAITING {
                let reason = "the new writer is busy taking over; try again".to_string();
                return self.answer(id, Answer::NotDone { reason }, out);
            }
            self.forwarded(id);
            let w = self.writer.as_mut().expect("a writer");
            w.waiting.push_back(Waiting {
                id,
                need,
                key,
                body,
            });
            return;
        }
        match need {
            Need::Write if is_writer => {
                let ships = !self.log_children().is_empty();
                let w = self.writer.as_mut().expect("a writer");
                if ships && self.commit < self.shape.last_seq() && w.batch.len() < BATCH {
                    // Not forwarded: it is in no log yet (an epoch change answers it 503).
                    w.batch.push(Waiting {
                        id,
                        need,
                        key,
                        body,
                    });
                    return;
                }
                self.propose(vec![(id, key, body)], out);
            }
            Need::Write if is_leader => {
                // The quorum rule (SPEC §6): a minority never writes.
                let reason = format!(
                    "this part of the lab holds {} of {} nodes; writes need {}, so nothing was \
                     stored (reads still work)",
                    share.nodes,
                    share.lab,
                    share.lab / 2 + 1
                );
                self.answer(id, Answer::NotDone { reason }, out);
            }
            Need::Read { min } if self.can_read(min) => {
                self.forwarded(id);
                out.push(PlaneOutput::Store(StoreJob::Query { id, body }));
            }
            Need::Read { min } if self.will_read(min) => {
                // Not forwarded: it has not left the node (an epoch change answers it 503).
                let since = self.now;
                self.parked.push(Parked {
                    id,
                    min,
                    body,
                    since,
                });
            }
            _ => self.pass_up(id, need, key, body, out),
        }
    }

    /// A request this node cannot serve goes to its parent; at the root, it is answered that
    /// it cannot be done.
    fn pass_up(
        &mut self,
        id: RequestId,
        need: Need,
        key: Option<String>,
        body: String,
        out: &mut Vec<PlaneOutput>,
    ) {
        let Some(tree) = &self.tree else {
            return; // only routed requests, which found a tree, come here
        };
        let is_writer = tree.roles.contains(&Role::Writer);
        let is_leader = tree.roles.contains(&Role::Leader);
        match tree.parent {
            Some(parent) => {
                self.forwarded(id);
                let epoch = self.epoch;
                out.push(PlaneOutput::Send {
                    to: parent,
                    message: PlaneMessage::Request {
                        epoch,
                        id,
                        need,
                        key,
                        body,
                    },
                });
            }
            None => {
                let min = match need {
                    Need::Read { min } => min,
                    Need::Write => Pos::START,
                };
                let reason = if is_writer || is_leader {
                    format!(
                        "the {} (node {}) does not hold your last write {min}: its applied log \
                         ends at {}",
                        if is_writer { "writer" } else { "leader" },
                        self.config.id,
                        self.applied
                    )
                } else {
                    format!(
                        "node {} is the root but not the writer: no writer is reachable",
                        self.config.id
                    )
                };
                self.answer(id, Answer::NotDone { reason }, out);
            }
        }
    }

    /// Whether this node may serve a read whose reader last wrote `min`: a persistence replica or
    /// a root, whose applied (committed) log holds that very entry.
    fn can_read(&self, min: Pos) -> bool {
        self.serves_reads()
            && self.applied >= min.seq
            && (min.seq == 0 || min.epoch == 0 || self.shape.holds(min))
    }

    /// Whether this node will serve a read whose reader last wrote `min` as soon as the apply it
    /// asked for is done: the entry is committed and in its log, and an apply up to it is on its
    /// way to the store. Waiting here for the store (a fraction of a millisecond) beats a trip up
    /// the tree and back. The reader is the one who wrote `min`, so this is the common case of a
    /// read right after a write, answered before the commit reached this node's database.
    fn will_read(&self, min: Pos) -> bool {
        self.parked.len() < MAX_WAITING
            && self.serves_reads()
            && self.applying >= min.seq
            && self.commit >= min.seq
            && (min.seq == 0 || min.epoch == 0 || self.shape.holds(min))
    }

    /// Give every parked read another turn (an apply was reported, or the log changed): it is
    /// served, parked again, or passed up the tree.
    fn unpark(&mut self, out: &mut Vec<PlaneOutput>) {
        for p in std::mem::take(&mut self.parked) {
            self.route(p.id, Need::Read { min: p.min }, None, p.body, out);
        }
    }

    /// Reads parked since before `before` stop waiting for the store here (its report is late,
    /// or will not come): they are served if they can be, else passed up the tree.
    fn unpark_stale(&mut self, before: Millis, out: &mut Vec<PlaneOutput>) {
        let (stale, fresh): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|p| p.since < before);
        self.parked = fresh;
        for p in stale {
            if self.can_read(p.min) {
                self.forwarded(p.id);
                out.push(PlaneOutput::Store(StoreJob::Query {
                    id: p.id,
                    body: p.body,
                }));
            } else {
                self.pass_up(p.id, Need::Read { min: p.min }, None, p.body, out);
            }
        }
    }

    /// Whether this node serves reads itself now, those whose reader's last write its applied
    /// log holds. It must hold the log: a persistence replica, the writer or the root of its
    /// tree; with `majority` durability, where the log flows down the whole tree and every node
    /// applies what commits, any node of the tree (an input node answers its clients' reads
    /// itself, by the same rule: only committed entries are applied, and only a copy holding the
    /// reader's last write serves it). And it restores no snapshot (while one is being restored,
    /// the state a query would read is not the one `applied` describes: reads pass up). A node's
    /// shell may answer such reads from its store without the plane, checking the position on
    /// the store's own committed state.
    pub fn serves_reads(&self) -> bool {
        let Some(tree) = &self.tree else {
            return false;
        };
        let holds_log = self.config.durability == Durability::Majority
            || tree
                .roles
                .iter()
                .any(|r| matches!(r, Role::Writer | Role::Leader | Role::Persistence));
        self.restoring.is_none() && holds_log
    }

    fn forwarded(&mut self, id: RequestId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.forwarded = true;
        }
    }

    /// Answer request `id`: this node's own HTTP layer, or down the tree toward its input node.
    fn answer(&mut self, id: RequestId, answer: Answer, out: &mut Vec<PlaneOutput>) {
        if id.origin == self.config.id {
            if self.pending.remove(&id).is_some() {
                out.push(PlaneOutput::Answer { id, answer });
            }
            return;
        }
        let epoch = self.epoch;
        self.send_toward(id.origin, PlaneMessage::Response { epoch, id, answer }, out);
    }

    /// Send a message addressed to `node` down the tree: toward the child it hangs below. With no
    /// route known (its `Announce` was lost on a link cut for a moment, and is not repeated), to
    /// every child, and each child below does the same: the message floods the subtree, and a
    /// leaf it is not for drops it. Only the rare node that lost its `Announce`, and sent nothing
    /// up since (traffic up the tree teaches routes too), costs a flood.
    fn send_toward(&mut self, node: NodeId, message: PlaneMessage, out: &mut Vec<PlaneOutput>) {
        if let Some(&child) = self.routes.get(&node) {
            return out.push(PlaneOutput::Send { to: child, message });
        }
        let children: Vec<NodeId> = self
            .tree
            .as_ref()
            .map(|t| t.children.keys().copied().collect())
            .unwrap_or_default();
        if children.is_empty() {
            return out.push(PlaneOutput::Note(format!(
                "no route to node {node} for a {}: dropped",
                kind(&message)
            )));
        }
        for child in children {
            out.push(PlaneOutput::Send {
                to: child,
                message: message.clone(),
            });
        }
    }

    // ------------------------------------------------------------------------------- messages

    fn receive(&mut self, from: NodeId, message: PlaneMessage, out: &mut Vec<PlaneOutput>) {
        let epoch = message.epoch();
        if epoch < self.epoch {
            return; // an older tree's: its requests were answered at the epoch change
        }
        if epoch > self.epoch || self.tree.is_none() {
            // Our own place in this tree is not known yet: keep it for then (within reason).
            if self.early.len() < MAX_WAITING {
                self.early.push((from, message));
            }
            return;
        }
        let parent = self.tree.as_ref().and_then(|t| t.parent);
        if Some(from) != parent {
            // Traffic up the tree teaches the way down to where it came from.
            let origin = match &message {
                PlaneMessage::Ack { from: node, .. } | PlaneMessage::Nack { from: node, .. } => {
                    Some(*node)
                }
                PlaneMessage::Request { id, .. } => Some(id.origin),
                _ => None,
            };
            if let Some(node) = origin {
                self.routes.insert(node, from);
            }
        }
        match message {
            PlaneMessage::Announce { node, .. } => {
                self.routes.insert(node, from);
                if let Some(parent) = parent {
                    out.push(PlaneOutput::Send {
                        to: parent,
                        message: PlaneMessage::Announce { epoch, node },
                    });
                }
            }
            PlaneMessage::Request {
                id,
                need,
                key,
                body,
                ..
            } => self.route(id, need, key, body, out),
            PlaneMessage::Response { id, answer, .. } => {
                self.learn_commit(&answer, out);
                self.answer(id, answer, out)
            }
            PlaneMessage::Append {
                to,
                prev,
                entries,
                commit,
                ..
            } => {
                if let Some(to) = to.filter(|&to| to != self.config.id) {
                    let message = PlaneMessage::Append {
                        epoch,
                        to: Some(to),
                        prev,
                        entries,
                        commit,
                    };
                    return self.send_toward(to, message, out);
                }
                if Some(from) != parent {
                    return; // only the writer's log, from up the tree
                }
                if to.is_none() {
                    // Down the whole tree: every node holds the log (majority).
                    for child in self.log_children() {
                        out.push(PlaneOutput::Send {
                            to: child,
                            message: PlaneMessage::Append {
                                epoch,
                                to: None,
                                prev,
                                entries: entries.clone(),
                                commit,
                            },
                        });
                    }
                }
                self.follow(prev, entries, commit, out);
            }
            PlaneMessage::Ack {
                from: node, seq, ..
            } => match self.writer {
                Some(_) => self.acked(node, seq, out),
                None => self.up(
                    PlaneMessage::Ack {
                        epoch,
                        from: node,
                        seq,
                    },
                    out,
                ),
            },
            PlaneMessage::Nack {
                from: node,
                last,
                applied,
                diverged,
                ..
            } => match self.writer {
                Some(_) => self.repair(node, last, applied, diverged, out),
                None => self.up(
                    PlaneMessage::Nack {
                        epoch,
                        from: node,
                        last,
                        applied,
                        diverged,
                    },
                    out,
                ),
            },
            PlaneMessage::Snapshot { to, base, body, .. } => {
                if to == self.config.id {
                    if self.restoring.is_some() {
                        // One restore at a time (see `restore`): this is a second copy of a
                        // repair; once the first is restored we tell the writer where we are.
                        return;
                    }
                    self.restore(base, body, out);
                } else {
                    self.send_toward(
                        to,
                        PlaneMessage::Snapshot {
                            epoch,
                            to,
                            base,
                            body,
                        },
                        out,
                    );
                }
            }
            PlaneMessage::FetchLog { to, after, .. } => {
                if to == self.config.id {
                    self.send_tail(after, out);
                } else {
                    self.send_toward(to, PlaneMessage::FetchLog { epoch, to, after }, out);
                }
            }
            PlaneMessage::TailSnapshot { base, body, .. } => match &self.writer {
                // Not fetching: the view change is over, and this is a late copy.
                Some(w) if w.fetching.is_none() => {}
                // A copy of the snapshot being restored (the member answered a fetch twice):
                // one restore at a time, see `restore`. Its report fetches what follows.
                Some(_) if self.restoring.is_some() => {}
                // A copy of the snapshot we restored already. It is never the answer to our
                // current fetch: a member that holds our applied entry sends the entries after
                // it, not its state. Restoring it again would only throw away what we have
                // taken since.
                Some(_) if base == self.applied_pos() => {}
                Some(_) if base.seq > self.applied => self.restore(base, body, out),
                Some(_) if self.config.durability != Durability::Majority => {
                    // The most advanced log does not extend our applied state: an old writer's
                    // writes were lost (what `replicas` and `writer` may do, SPEC §4).
                    out.push(PlaneOutput::Note(format!(
                        "view change: the most advanced log does not hold our applied entry {}; \
                         taking its state whole (durability {} may lose writes)",
                        self.applied, self.config.durability
                    )));
                    self.restore(base, body, out);
                }
                Some(_) => {}
                None => self.up(PlaneMessage::TailSnapshot { epoch, base, body }, out),
            },
            PlaneMessage::Tail {
                prev,
                entries,
                more,
                ..
            } => match self.writer {
                Some(_) => self.adopt_tail(prev, entries, more, out),
                None => self.up(
                    PlaneMessage::Tail {
                        epoch,
                        prev,
                        entries,
                        more,
                    },
                    out,
                ),
            },
        }
    }

    /// Pass a message to the parent.
    fn up(&mut self, message: PlaneMessage, out: &mut Vec<PlaneOutput>) {
        if let Some(parent) = self.tree.as_ref().and_then(|t| t.parent) {
            out.push(PlaneOutput::Send {
                to: parent,
                message,
            });
        }
    }

    /// The children the log flows to: all of them with `majority`; with `replicas` and `writer`,
    /// the writer's persistence replicas only (its children with children), and nobody below.
    fn log_children(&self) -> Vec<NodeId> {
        let Some(tree) = &self.tree else {
            return Vec::new();
        };
        match self.config.durability {
            Durability::Majority => tree.children.keys().copied().collect(),
            Durability::Replicas | Durability::Writer if tree.parent.is_none() => tree
                .children
                .iter()
                .filter(|(_, &size)| size > 1)
                .map(|(&c, _)| c)
                .collect(),
            Durability::Replicas | Durability::Writer => Vec::new(),
        }
    }

    // ------------------------------------------------------------------------------- the log

    /// The writer puts writes in its log, together, each to be answered once it commits.
    ///
    /// **Group commit.** A write that comes while the writer's log holds entries not yet
    /// committed waits (`Writer::batch`) until they commit, and then goes with every other write
    /// that came meanwhile: one append to the writer's store and one `Append` to each child for
    /// all of them, so every node of the tree stores, syncs, applies and acknowledges them once,
    /// not once each. Under load the writes that arrive during one commit share the next (in
    /// ring6 under 8 write-only clients, about three a batch; under a 20 % write mix the nodes'
    /// CPU per request falls by a few per cent); alone, a write goes at once. Nothing is
    /// answered sooner: each write is answered once committed and applied, as before. At most
    /// [`BATCH`] wait; past them a write goes at once. A writer with no child to ship its log to
    /// (a lab of one) batches nothing here: its store's own group commit already takes every
    /// append queued while it syncs, and waiting for the report first would only add a trip to
    /// the store and back.
    fn propose(
        &mut self,
        writes: Vec<(RequestId, Option<String>, String)>,
        out: &mut Vec<PlaneOutput>,
    ) {
        for (id, ..) in &writes {
            self.forwarded(*id);
        }
        let (ids, entries): (Vec<RequestId>, Vec<(Option<String>, String)>) = writes
            .into_iter()
            .map(|(id, key, body)| (id, (key, body)))
            .unzip();
        let first = self.append_entries(entries, out);
        let w = self.writer.as_mut().expect("a writer");
        for (seq, id) in (first..).zip(ids) {
            w.proposals.insert(seq, id);
        }
    }

    /// The commit index moved: once the writer's log is committed to its end, the writes that
    /// waited go into the log.
    fn propose_batch(&mut self, out: &mut Vec<PlaneOutput>) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if w.batch.is_empty() || self.commit < self.shape.last_seq() {
            return;
        }
        let batch = std::mem::take(&mut w.batch);
        let writes = batch.into_iter().map(|w| (w.id, w.key, w.body)).collect();
        self.propose(writes, out);
    }

    /// The writer appends entries of its epoch and ships them. Returns the first one's seq.
    fn append_entries(
        &mut self,
        writes: Vec<(Option<String>, String)>,
        out: &mut Vec<PlaneOutput>,
    ) -> u64 {
        let prev = self.shape.last();
        let first = prev.seq + 1;
        let entries: Vec<WireEntry> = (first..)
            .zip(writes)
            .map(|(seq, (key, body))| WireEntry {
                epoch: self.epoch,
                seq,
                key,
                body,
            })
            .collect();
        for entry in &entries {
            self.shape.push(self.epoch, entry.seq);
        }
        let last = self.shape.last_seq();
        self.matched = last;
        out.push(PlaneOutput::Store(StoreJob::Append {
            after: prev.seq,
            entries: entries.clone(),
        }));
        // A lab of one node commits an entry of its epoch the moment the writer's own append is
        // durable (every durability mode counts the writer, and nobody else is there), so the
        // apply is asked for at once, behind the append. The store runs jobs in order, and an
        // apply that shares the append's transaction (group commit) is durable with it and
        // reported after it: one trip to the store and one transaction per append, not two. If
        // the append fails, the apply finds nothing to apply.
        if self.config.lab_size == 1 {
            self.applying = last;
            out.push(PlaneOutput::Store(StoreJob::Apply { up_to: last }));
        }
        let epoch = self.epoch;
        let commit = self.commit;
        for child in self.log_children() {
            out.push(PlaneOutput::Send {
                to: child,
                message: PlaneMessage::Append {
                    epoch,
                    to: None,
                    prev,
                    entries: entries.clone(),
                    commit,
                },
            });
        }
        if let Some(w) = self.writer.as_mut() {
            w.beat = (self.now, commit);
        }
        first
    }

    /// Take the writer's entries after `prev` (log matching), and its commit index.
    fn follow(
        &mut self,
        prev: Pos,
        entries: Vec<WireEntry>,
        commit: u64,
        out: &mut Vec<PlaneOutput>,
    ) {
        if self.restoring.is_some() {
            // The log is about to be replaced whole (see `restore`): the writer's next beat
            // finds where it then ends.
            return;
        }
        // Entries up to our base were replaced by a snapshot of committed state: they match.
        let base = self.shape.base();
        let (prev, entries) = if prev.seq < base.seq {
            let rest: Vec<WireEntry> = entries.into_iter().filter(|e| e.seq > base.seq).collect();
            (base, rest)
        } else {
            (prev, entries)
        };
        if !self.shape.holds(prev) {
            // Log matching fails: say where our log is; the writer sends what we lack.
            let message = PlaneMessage::Nack {
                epoch: self.epoch,
                from: self.config.id,
                last: self.shape.last(),
                applied: self.applied_pos(),
                diverged: false,
            };
            return self.up(message, out);
        }
        let reach = entries.last().map_or(prev.seq, |e| e.seq);
        // Skip what we hold already; at the first entry that differs, our tail is an old
        // writer's: discard it and take the writer's.
        let first_new = entries
            .iter()
            .position(|e| self.shape.epoch_at(e.seq) != Some(e.epoch));
        if let Some(i) = first_new {
            let after = entries[i].seq - 1;
            if after < self.applied {
                if self.config.durability == Durability::Majority {
                    // A committed entry differs from the writer's: with `majority` this never
                    // happens (every writer holds every committed entry). Refuse rather than
                    // lose committed data.
                    out.push(PlaneOutput::Note(format!(
                        "refused entries from {}: they differ from committed entry {}",
                        entries[i].seq, self.applied
                    )));
                    return;
                }
                // With `replicas` or `writer`, a new writer may lack what an old one committed
                // (the price of those modes, SPEC §4): this node takes the writer's state whole.
                out.push(PlaneOutput::Note(format!(
                    "the writer's log differs from our committed entry {}: an old writer's \
                     writes were lost with it (durability {}); asking for the writer's state",
                    after + 1,
                    self.config.durability
                )));
                let message = PlaneMessage::Nack {
                    epoch: self.epoch,
                    from: self.config.id,
                    last: self.shape.last(),
                    applied: self.applied_pos(),
                    diverged: true,
                };
                return self.up(message, out);
            }
            if after < self.shape.last_seq() {
                out.push(PlaneOutput::Note(format!(
                    "discarding entries {}..={} of an old writer's tail",
                    after + 1,
                    self.shape.last_seq()
                )));
            }
            self.shape.truncate(after);
            self.durable = self.durable.min(after);
            let new: Vec<WireEntry> = entries[i..].to_vec();
            for e in &new {
                self.shape.push(e.epoch, e.seq);
            }
            out.push(PlaneOutput::Store(StoreJob::Append {
                after,
                entries: new,
            }));
        }
        self.matched = self.matched.max(reach);
        self.commit = self.commit.max(commit);
        self.apply(out);
        // Acknowledge now if nothing new needs storing; else once stored.
        if first_new.is_none() {
            self.ack(out);
        }
    }

    /// Tell the writer (up the tree) how far our log equals its own, durably.
    fn ack(&mut self, out: &mut Vec<PlaneOutput>) {
        if self.writer.is_some() {
            return self.recompute_commit(out);
        }
        let seq = self.durable.min(self.matched);
        let message = PlaneMessage::Ack {
            epoch: self.epoch,
            from: self.config.id,
            seq,
        };
        self.up(message, out);
    }

    fn stored(&mut self, seq: u64, out: &mut Vec<PlaneOutput>) {
        self.durable = seq.min(self.shape.last_seq());
        if self.tree.is_some() {
            self.ack(out);
        }
    }

    /// Have the store replace our state and log by a snapshot ending at `base`.
    ///
    /// **One restore at a time, and nothing else touches the log until it is reported.** Every
    /// other change to the log is recorded in [`Shape`] when its job is *asked* (an append
    /// pushes its entries at once), because the store runs jobs in the order asked. A restore
    /// cannot work that way: what it leaves (the applied state, the base) is only known for sure
    /// once it ran, so the shape is reset when [`PlaneInput::Restored`] comes in. Anything the
    /// plane appended in between would then be wiped from the shape while the store, which ran
    /// the append after the restore, still holds it: the plane and its store would disagree on
    /// the log, and a new writer whose epoch-start entry vanished that way waits for it to
    /// commit forever. So while a restore runs, appends from the writer wait (its next beat or
    /// repair brings them again), a new writer's view change waits, and a second snapshot (a
    /// duplicate sent in answer to a repeated request) is dropped: the first one's report asks
    /// for whatever is still missing.
    fn restore(&mut self, base: Pos, body: String, out: &mut Vec<PlaneOutput>) {
        self.restoring = Some(base);
        out.push(PlaneOutput::Store(StoreJob::Restore { base, body }));
    }

    /// The store restored a snapshot ending at `base`: the log starts there.
    fn restored(&mut self, base: Pos, out: &mut Vec<PlaneOutput>) {
        self.restoring = None;
        // The snapshot holds committed state up to its base: the log starts there.
        self.shape.reset(base);
        self.durable = base.seq;
        self.applied = base.seq;
        self.applying = base.seq;
        // What the snapshot holds is committed; anything more is learned from the writer's next
        // append (a commit index known before may be an old writer's).
        self.commit = base.seq;
        self.matched = base.seq;
        self.unpark(out);
        match self.writer.as_ref().map(|w| (w.start, w.fetching)) {
            // The new writer took the most advanced member's snapshot: now its tail.
            Some((None, Some((from, _)))) => self.fetch(from, out),
            // We became writer while the restore ran: our view change begins now, from the
            // restored log.
            Some((None, None)) => {
                let best = self.tree.as_ref().and_then(|t| t.best);
                self.begin_view_change(best, out);
            }
            _ => self.ack(out),
        }
    }

    /// The store failed an append. At a writer whose epoch has begun, the entries lost may be
    /// this epoch's own, already sent down the tree: the log is cut back to what the store holds
    /// (as at any node), but the positions cut must never hold other entries, or two entries
    /// would share an (epoch, seq), and log matching, which compares positions, would count a
    /// child holding the first as holding the second. So the writer takes no more writes in
    /// this epoch (the next election brings a writer with a whole log; the entries may live on
    /// in its children's logs), and the writes it had proposed are answered "outcome unknown".
    fn writer_append_failed(&mut self, reason: &str, out: &mut Vec<PlaneOutput>) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if w.start.is_none() || w.broken.is_some() {
            return; // the view change appends no entry of its own epoch before its start
        }
        w.broken = Some(reason.to_string());
        let proposals = std::mem::take(&mut w.proposals);
        let batch = std::mem::take(&mut w.batch);
        out.push(PlaneOutput::Note(format!(
            "the store failed to append this epoch's entries: this writer takes no more writes \
             until a new election ({reason})"
        )));
        for (_, id) in proposals {
            let reason = format!(
                "the writer's store failed ({reason}); the write went down the tree and may yet \
                 be kept: check before you retry, or retry with the same Idempotency-Key"
            );
            self.answer(id, Answer::Unknown { reason }, out);
        }
        // The writes that waited for a commit are in no log: refused as any write now is.
        for w in batch {
            self.route(w.id, w.need, w.key, w.body, out);
        }
    }

    /// An answer served up the tree names a committed position: the writer answers a write
    /// once it commits, and a read is served from applied state, which is committed. With
    /// `majority`, a node whose log holds that very entry holds the writer's log up to it (log
    /// matching: entries are taken only after the one before them matched), and every committed
    /// entry is in every later writer's log, so it may commit up to there at once instead of
    /// waiting for the writer's next `Append` to bring the index. The answer passes the nodes
    /// between the writer and its input node, which then apply the write right away: the
    /// client's next read, which must see that write, is served where it comes in.
    fn learn_commit(&mut self, answer: &Answer, out: &mut Vec<PlaneOutput>) {
        let Answer::Served { pos, .. } = answer else {
            return;
        };
        if self.config.durability == Durability::Majority
            && self.tree.is_some()
            && self.restoring.is_none()
            && pos.seq > self.commit
            && self.shape.holds(*pos)
        {
            self.commit = pos.seq;
            self.apply(out);
        }
    }

    /// Apply what is committed and known to match the writer's log.
    fn apply(&mut self, out: &mut Vec<PlaneOutput>) {
        let limit = self.commit.min(self.matched).min(self.shape.last_seq());
        if limit > self.applying {
            self.applying = limit;
            out.push(PlaneOutput::Store(StoreJob::Apply { up_to: limit }));
        }
    }

    fn applied_entries(&mut self, results: Vec<(u64, String)>, out: &mut Vec<PlaneOutput>) {
        for (seq, body) in results {
            self.applied = self.applied.max(seq);
            let proposal = self.writer.as_mut().and_then(|w| w.proposals.remove(&seq));
            if let Some(id) = proposal {
                let pos = Pos::new(self.shape.epoch_at(seq).unwrap_or(self.epoch), seq);
                self.answer(id, Answer::Served { body, pos }, out);
            }
        }
        if !self.parked.is_empty() {
            self.unpark(out);
        }
        // The writer is ready once its epoch-start entry is applied: what waited goes now.
        if self.ready_writer() {
            let waiting = std::mem::take(&mut self.writer.as_mut().expect("a writer").waiting);
            for w in waiting {
                self.route(w.id, w.need, w.key, w.body, out);
            }
        }
    }

    // ------------------------------------------------------------------------------- the writer

    fn acked(&mut self, node: NodeId, seq: u64, out: &mut Vec<PlaneOutput>) {
        let seq = seq.min(self.shape.last_seq());
        let w = self.writer.as_mut().expect("a writer");
        let known = w.matches.entry(node).or_insert(0);
        *known = (*known).max(seq);
        self.recompute_commit(out);
    }

    /// Commit (Raft §5.4): the newest entry of this epoch durable where the durability asks.
    fn recompute_commit(&mut self, out: &mut Vec<PlaneOutput>) {
        let Some(w) = &self.writer else {
            return;
        };
        let Some(start) = w.start else {
            return; // still adopting the most advanced log
        };
        let own = self.durable.min(self.shape.last_seq());
        let candidate = match self.config.durability {
            Durability::Majority => {
                // The largest N held by a strict majority (the writer counting itself).
                let mut held: Vec<u64> = w.matches.values().copied().collect();
                held.push(own);
                held.sort_unstable_by(|a, b| b.cmp(a));
                let need = (self.config.lab_size / 2 + 1) as usize;
                held.get(need - 1).copied().unwrap_or(0)
            }
            Durability::Replicas => self
                .log_children()
                .iter()
                .map(|c| w.matches.get(c).copied().unwrap_or(0))
                .fold(own, u64::min),
            Durability::Writer => own,
        };
        // Only an entry of the writer's own epoch commits by counting (Raft §5.4.2).
        if candidate >= start && candidate > self.commit {
            self.commit = candidate;
            self.apply(out);
            self.propose_batch(out);
        }
    }

    /// A node's log did not match: send it what it lacks, from where our logs agree (or its
    /// committed prefix), or a snapshot if our log no longer goes back that far.
    fn repair(
        &mut self,
        node: NodeId,
        last: Pos,
        applied: Pos,
        diverged: bool,
        out: &mut Vec<PlaneOutput>,
    ) {
        let w = self.writer.as_mut().expect("a writer");
        if w.repairs
            .get(&node)
            .is_some_and(|&at| self.now < at + RETRY_MS)
        {
            return; // one repair at a time
        }
        w.repairs.insert(node, self.now);
        // Its applied state is not a prefix of our log: an old writer's writes that we lack
        // (only with `replicas` or `writer`, SPEC §4). Only our whole state mends that.
        let base = self.shape.base();
        let diverged = diverged
            || applied.seq > self.shape.last_seq()
            || (applied.seq >= base.seq && !self.shape.holds(applied));
        let after = if self.shape.holds(last) {
            last.seq
        } else {
            applied.seq
        };
        if diverged || after < base.seq {
            out.push(PlaneOutput::Store(StoreJob::Snapshot {
                purpose: Purpose::Repair { to: node },
            }));
        } else {
            out.push(PlaneOutput::Store(StoreJob::ReadEntries {
                after,
                limit: BATCH,
                purpose: Purpose::Repair { to: node },
            }));
        }
    }

    fn entries_read(
        &mut self,
        purpose: Purpose,
        prev: Pos,
        entries: Vec<WireEntry>,
        out: &mut Vec<PlaneOutput>,
    ) {
        let epoch = self.epoch;
        match purpose {
            Purpose::Repair { to } => {
                if self.writer.is_none() {
                    return;
                }
                let more = entries.len() == BATCH;
                let commit = self.commit;
                self.send_toward(
                    to,
                    PlaneMessage::Append {
                        epoch,
                        to: Some(to),
                        prev,
                        entries,
                        commit,
                    },
                    out,
                );
                if more {
                    // The next batch after this one: its ack or nack asks for more.
                    if let Some(w) = self.writer.as_mut() {
                        w.repairs.remove(&to);
                    }
                }
            }
            Purpose::Tail => {
                let more = entries.len() == BATCH;
                self.up(
                    PlaneMessage::Tail {
                        epoch,
                        prev,
                        entries,
                        more,
                    },
                    out,
                );
            }
        }
    }

    /// The most advanced member sends its log after `after` up to the new writer (its applied
    /// state first, if its log no longer goes back that far).
    fn send_tail(&mut self, after: Pos, out: &mut Vec<PlaneOutput>) {
        // With `majority` our log always holds the writer's applied prefix (committed entries
        // are in every most advanced log); with the other modes it may not: then our state goes
        // whole.
        if after.seq < self.shape.base().seq || !self.shape.holds(after) {
            out.push(PlaneOutput::Store(StoreJob::Snapshot {
                purpose: Purpose::Tail,
            }));
        } else {
            out.push(PlaneOutput::Store(StoreJob::ReadEntries {
                after: after.seq,
                limit: BATCH,
                purpose: Purpose::Tail,
            }));
        }
    }

    /// The new writer adopts the most advanced member's log: its own tail after `prev` goes.
    fn adopt_tail(
        &mut self,
        prev: Pos,
        entries: Vec<WireEntry>,
        more: bool,
        out: &mut Vec<PlaneOutput>,
    ) {
        let Some((from, _)) = self.writer.as_ref().and_then(|w| w.fetching) else {
            return; // not fetching (a late batch)
        };
        if self.restoring.is_some() {
            // An answer to a fetch made before the snapshot being restored: it follows a log
            // about to be replaced. The restore's report fetches again, from its base.
            return;
        }
        if !self.shape.holds(prev) || prev.seq < self.applied {
            out.push(PlaneOutput::Note(format!(
                "the tail from node {from} starts at {prev}, which our log does not hold; \
                 asking again from our applied prefix"
            )));
            return self.fetch(from, out);
        }
        if prev.seq < self.shape.last_seq() {
            out.push(PlaneOutput::Note(format!(
                "view change: our entries {}..={} are an old writer's tail; taking node {from}'s",
                prev.seq + 1,
                self.shape.last_seq()
            )));
        }
        self.shape.truncate(prev.seq);
        self.durable = self.durable.min(prev.seq);
        for e in &entries {
            self.shape.push(e.epoch, e.seq);
        }
        if !entries.is_empty() {
            out.push(PlaneOutput::Store(StoreJob::Append {
                after: prev.seq,
                entries,
            }));
        }
        if more {
            let epoch = self.epoch;
            if let Some(w) = self.writer.as_mut() {
                w.fetching = Some((from, self.now));
            }
            self.send_toward(
                from,
                PlaneMessage::FetchLog {
                    epoch,
                    to: from,
                    after: self.shape.last(),
                },
                out,
            );
        } else {
            self.start_epoch(out);
        }
    }

    // ------------------------------------------------------------------------------- time

    fn tick(&mut self, out: &mut Vec<PlaneOutput>) {
        // Parked reads whose apply has not come within a tick (the store is slow, or failed
        // without a word) go their way.
        let now = self.now;
        if !self.parked.is_empty() {
            self.unpark_stale(now.saturating_sub(TICK_MS), out);
        }
        // Requests that waited too long at this input node.
        let late: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(pending) = self.pending.remove(&id) {
                let why = format!(
                    "no answer from the cluster within {} s: the writer may be unreachable",
                    REQUEST_TIMEOUT_MS / 1000
                );
                out.push(PlaneOutput::Answer {
                    id,
                    answer: give_up(pending, &why),
                });
            }
        }
        let Some(w) = &self.writer else {
            return;
        };
        if w.start.is_none() {
            // The view change is not done: a fetch that got no answer is asked again (not while
            // a snapshot is restored: its report asks), and no beat goes out (our log may yet
            // change).
            if let Some((from, at)) = w.fetching {
                if self.restoring.is_none() && now >= at + RETRY_MS {
                    self.fetch(from, out);
                }
            }
            return;
        }
        // The beat: our last position and commit, so that a node that missed an Append asks for
        // it and one that missed the commit learns it.
        let (at, commit) = w.beat;
        let behind = self.commit < self.shape.last_seq() || commit < self.commit;
        if (behind && now >= at + BEAT_MS) || now >= at + 5 * BEAT_MS {
            let epoch = self.epoch;
            let prev = self.shape.last();
            let commit = self.commit;
            for child in self.log_children() {
                out.push(PlaneOutput::Send {
                    to: child,
                    message: PlaneMessage::Append {
                        epoch,
                        to: None,
                        prev,
                        entries: Vec::new(),
                        commit,
                    },
                });
            }
            if let Some(w) = self.writer.as_mut() {
                w.beat = (now, commit);
            }
        }
    }
}

/// A pending request given up on: 504 if it had left the node, 503 if not.
fn give_up(pending: Pending, why: &str) -> Answer {
    if pending.forwarded {
        Answer::Unknown {
            reason: format!(
                "{why}; the request had gone to the cluster, so it may yet be done: check before \
                 you retry, or retry with the same Idempotency-Key"
            ),
        }
    } else {
        Answer::NotDone {
            reason: format!("{why}; nothing was done"),
        }
    }
}

fn kind(message: &PlaneMessage) -> &'static str {
    match message {
        PlaneMessage::Announce { .. } => "announce",
        PlaneMessage::Request { .. } => "request",
        PlaneMessage::Response { .. } => "response",
        PlaneMessage::Append { .. } => "append",
        PlaneMessage::Ack { .. } => "ack",
        PlaneMessage::Nack { .. } => "nack",
        PlaneMessage::Snapshot { .. } => "snapshot",
        PlaneMessage::FetchLog { .. } => "fetch",
        PlaneMessage::TailSnapshot { .. } => "tail snapshot",
        PlaneMessage::Tail { .. } => "tail",
    }
}

pub mod model;

#[cfg(test)]
mod tests;
