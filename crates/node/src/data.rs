//! The driver's data plane: requests from the HTTP layer and from children, answers, and
//! replication, all handled by the one driver task (see `labctl_core::dataplane` for the rules).
//!
//! Ordering contract at the writer: a write is applied and appended to the log (durable in
//! SQLite) *before* it is shipped; it is answered only once every persistence replica has
//! acknowledged it (durability `replicas`), or at once (durability `writer`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use labctl_chat::ops::{AppError, Entry, Read, Reply, Write};
use labctl_core::dataplane::{
    self, Arrival, DataMessage, Down, Hop, Need, RequestId, Share, Shipper,
};
use labctl_core::{Epoch, NodeId, Role};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::driver::Driver;
use crate::frame::Frame;
use crate::store::{ApplyError, Done, Job, CATCH_UP_BATCH};
use crate::transport::Transport;

/// How long an input node waits for an answer before telling the client the cluster is unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the writer waits for the replicas' acknowledgements of a write.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// The most data messages kept while this node waits to take its place in a new tree.
pub const MAX_EARLY: usize = 10_000;
/// How long a replica waits for the entries it asked for before asking again.
pub const FETCH_RETRY: Duration = Duration::from_secs(1);

/// When a write counts as done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Durable at the writer and at every current persistence replica (the default).
    #[default]
    Replicas,
    /// Durable at the writer.
    Writer,
}

/// The answer to a request, as it travels down the tree (JSON) and reaches the HTTP layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// Served: the reply, and the log position it reflects (the write's own, for a write).
    Ok {
        /// The reply.
        reply: Reply,
        /// The log position.
        seq: u64,
    },
    /// Refused or failed.
    Err {
        /// Why.
        error: AppError,
    },
}

impl Answer {
    fn encode(&self) -> String {
        serde_json::to_string(self).expect("answers serialize")
    }
}

/// A request waiting at its input node for its answer.
pub(crate) struct Pending {
    pub reply: oneshot::Sender<Answer>,
    pub deadline: Instant,
    /// It went up the tree (or to this node's own store): its outcome is unknown until the
    /// answer comes. One never forwarded was not done, and will not be.
    pub forwarded: bool,
}

impl Pending {
    /// Answer it without its outcome: 504 if it was forwarded (it may yet be done), else 503.
    fn give_up(self, why: &str) {
        let error = if self.forwarded {
            AppError::OutcomeUnknown(format!(
                "{why}; the request had gone to the cluster, so it may yet be done: check \
                 before you retry"
            ))
        } else {
            AppError::Unavailable(format!("{why}; nothing was done"))
        };
        let _ = self.reply.send(Answer::Err { error });
    }
}

/// The data-plane half of the driver's state.
pub(crate) struct DataState {
    pub router: dataplane::Router,
    pub shipper: Shipper,
    pub durability: Durability,
    /// The last log entry this node's database holds.
    pub applied: u64,
    /// The last entry handed to the store to apply (≥ applied).
    pub queued: u64,
    /// When we last asked the writer for missing entries (one request in flight at a time; a
    /// request unanswered for [`FETCH_RETRY`] may be repeated).
    pub fetched_at: Option<Instant>,
    /// Requests from our HTTP layer, waiting for their answers.
    pub pending: BTreeMap<RequestId, Pending>,
    pub next_request: u64,
    /// Writer: answers held until the replicas acknowledge, with their deadline.
    pub held: BTreeMap<RequestId, (String, Instant, u64)>,
    /// Messages of a tree this node has not taken its place in yet (a child's announcement can
    /// arrive while we still wait for a sibling's subtree): replayed once we have.
    pub early: Vec<(NodeId, DataMessage)>,
}

impl DataState {
    pub fn new(id: NodeId, applied: u64, durability: Durability) -> Self {
        DataState {
            router: dataplane::Router::new(id),
            shipper: Shipper::new([]),
            durability,
            applied,
            queued: applied,
            fetched_at: None,
            pending: BTreeMap::new(),
            // Start from the clock (µs), so a restarted node never reuses an earlier run's ids.
            next_request: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            held: BTreeMap::new(),
            early: Vec::new(),
        }
    }
}

impl<T: Transport> Driver<T> {
    /// A new epoch began: the old tree's routes are gone. Every request this node holds is
    /// answered at once (SPEC §6), and data messages of the new tree wait for it.
    pub(crate) fn data_epoch_changed(&mut self, epoch: Epoch) {
        self.data.router.reset(epoch);
        self.data.shipper = Shipper::new([]);
        // The writer's held answers cannot travel the old tree back: their input nodes answer.
        self.data.held.clear();
        self.data.early.retain(|(_, m)| m.epoch() >= epoch);
        let why = format!("the lab began electing a new leader (epoch {epoch})");
        for (_, pending) in std::mem::take(&mut self.data.pending) {
            pending.give_up(&why);
        }
    }

    /// This node's tree is known (its subtree is complete): take up its data-plane roles.
    pub(crate) fn take_roles(&mut self) {
        let status = self.node.status();
        let roles = status.roles.clone();
        let share = Share {
            nodes: status.subtree.unwrap_or(0),
            lab: self.config.lab_size,
        };
        let announce = self
            .data
            .router
            .set_tree(status.epoch, status.parent, roles.clone(), share);
        if let Some((parent, message)) = announce {
            self.send_data(parent, message);
        }
        if roles.contains(&Role::Writer) {
            let replicas = dataplane::replicas_of(self.node.child_sizes());
            info!(
                ?replicas,
                "writer: replicating to {} persistence node(s)",
                replicas.len()
            );
            self.data.shipper = Shipper::new(replicas);
        }
        if roles.contains(&Role::Persistence) {
            // Catch up with the writer before serving reads: ask for whatever we lack.
            self.fetch();
        }
        // The HTTP service and the nameserver listing follow the input role.
        let input = roles.contains(&Role::Input);
        self.web_role.send_modify(|role| {
            role.serve = input;
            role.listed = input;
        });
        for (from, message) in std::mem::take(&mut self.data.early) {
            self.on_data(from, message);
        }
    }

    /// A request from our own HTTP layer.
    pub(crate) fn originate(&mut self, need: Need, body: String, reply: oneshot::Sender<Answer>) {
        self.data.next_request += 1;
        let id = RequestId {
            origin: self.config.id,
            n: self.data.next_request,
        };
        self.data.pending.insert(
            id,
            Pending {
                reply,
                deadline: Instant::now() + REQUEST_TIMEOUT,
                forwarded: false,
            },
        );
        self.route(id, need, body);
    }

    /// A request of ours left for the cluster (up the tree, or to our own store).
    fn forwarded(&mut self, id: RequestId) {
        if let Some(pending) = self.data.pending.get_mut(&id) {
            pending.forwarded = true;
        }
    }

    /// Serve a request here, or pass it up, or refuse it.
    fn route(&mut self, id: RequestId, need: Need, body: String) {
        match self.data.router.route_request(need, self.data.applied) {
            Hop::Serve => {
                self.forwarded(id);
                self.serve(id, need, &body)
            }
            Hop::Up(parent) => {
                self.forwarded(id);
                let epoch = self.data.router.epoch();
                self.send_data(
                    parent,
                    DataMessage::Request {
                        epoch,
                        id,
                        need,
                        body,
                    },
                );
            }
            Hop::Unroutable(reason) => self.answer(
                id,
                Answer::Err {
                    error: AppError::Unavailable(reason),
                },
            ),
        }
    }

    fn serve(&mut self, id: RequestId, need: Need, body: &str) {
        let malformed = |what: &str, e: serde_json::Error| Answer::Err {
            error: AppError::Malformed(format!("the {what} could not be read: {e}")),
        };
        match need {
            Need::Write => match serde_json::from_str::<Write>(body) {
                Ok(write) => self.store.submit(Job::Execute {
                    write,
                    epoch: self.data.router.epoch(),
                    id,
                }),
                Err(e) => self.answer(id, malformed("write", e)),
            },
            Need::Read { .. } => match serde_json::from_str::<Read>(body) {
                Ok(read) => self.store.submit(Job::Query { read, id }),
                Err(e) => self.answer(id, malformed("read", e)),
            },
        }
    }

    /// Send an answer towards its input node (or hand it to our HTTP layer).
    fn answer(&mut self, id: RequestId, answer: Answer) {
        self.forward_answer(id, answer.encode());
    }

    fn forward_answer(&mut self, id: RequestId, body: String) {
        match self.data.router.route_response(id) {
            Down::Deliver => match self.data.pending.remove(&id) {
                Some(pending) => {
                    let answer = serde_json::from_str(&body).unwrap_or_else(|e| Answer::Err {
                        error: AppError::Unavailable(format!(
                            "an unreadable answer came back: {e}"
                        )),
                    });
                    let _ = pending.reply.send(answer);
                }
                None => debug!(?id, "answer for a request that already timed out"),
            },
            Down::Child(child) => {
                let epoch = self.data.router.epoch();
                self.send_data(child, DataMessage::Response { epoch, id, body });
            }
            Down::Lost(reason) => warn!(?id, "answer dropped: {reason}"),
        }
    }

    /// A data-plane message from neighbour `from`.
    pub(crate) fn on_data(&mut self, from: NodeId, message: DataMessage) {
        let ours = self.data.router.epoch();
        if message.epoch() > ours || (message.epoch() == ours && !self.data.router.ready()) {
            // Our own subtree is not complete yet: keep it for when we take our roles (within
            // reason: a peer cannot make us hoard without bound).
            if self.data.early.len() < MAX_EARLY {
                self.data.early.push((from, message));
            } else {
                warn!(from, "too many early data messages; dropped");
            }
            return;
        }
        if message.epoch() < ours {
            warn!(
                from,
                epoch = message.epoch(),
                "data message of an older tree dropped"
            );
            return;
        }
        match message {
            DataMessage::Announce { input, .. } => {
                if let Some((parent, up)) = self.data.router.announced(from, input) {
                    self.send_data(parent, up);
                }
            }
            DataMessage::Request { id, need, body, .. } => self.route(id, need, body),
            DataMessage::Response { id, body, .. } => self.forward_answer(id, body),
            DataMessage::Append { seq, entry, .. } => {
                match dataplane::arrival(self.data.queued, seq) {
                    Arrival::Apply => match serde_json::from_str::<Entry>(&entry) {
                        Ok(entry) => {
                            self.data.queued = seq;
                            self.store.submit(Job::Apply { entry });
                        }
                        Err(e) => {
                            warn!(from, seq, "unreadable log entry dropped: {e}; asking again");
                            self.fetch();
                        }
                    },
                    // Already held: the store checks it is the very same entry (then we
                    // acknowledge) or reports that this copy diverged from the writer's.
                    Arrival::Duplicate => match serde_json::from_str::<Entry>(&entry) {
                        Ok(entry) => self.store.submit(Job::Apply { entry }),
                        Err(e) => warn!(from, seq, "unreadable log entry dropped: {e}"),
                    },
                    Arrival::Gap { after } => {
                        info!(
                            after,
                            got = seq,
                            "gap in the replication log; fetching what is missing"
                        );
                        self.fetch();
                    }
                }
            }
            DataMessage::Ack { seq, .. } => {
                // A replica cannot hold more than the writer wrote: never believe more.
                let done = self.data.shipper.ack(from, seq.min(self.data.applied));
                self.release(done);
            }
            DataMessage::Fetch { after, .. } => {
                if !self.data.router.is_writer() {
                    warn!(from, "fetch sent to a node that is not the writer; dropped");
                } else if (after == 0 && self.data.applied > 0) || after > self.data.applied {
                    // From nothing, or claiming more than the writer has (a copy that
                    // diverged): the whole database.
                    self.store.submit(Job::Snapshot { to: from });
                } else {
                    self.store.submit(Job::EntriesSince { after, to: from });
                }
            }
            DataMessage::Snapshot { seq, body, .. } => match serde_json::from_str(&body) {
                Ok(snapshot) => {
                    info!(seq, "restoring a snapshot from the writer");
                    self.data.queued = seq;
                    self.store.submit(Job::Restore {
                        snapshot: Box::new(snapshot),
                    });
                }
                Err(e) => warn!(from, "unreadable snapshot dropped: {e}"),
            },
        }
    }

    /// A store job finished.
    pub(crate) fn on_store(&mut self, done: Done) {
        let epoch = self.data.router.epoch();
        match done {
            Done::Executed {
                id,
                result: Ok((reply, entry)),
            } => {
                let seq = entry.seq;
                self.data.applied = seq;
                self.data.queued = seq;
                let body = serde_json::to_string(&entry).expect("entries serialize");
                for replica in self.data.shipper.replicas().collect::<Vec<_>>() {
                    self.send_data(
                        replica,
                        DataMessage::Append {
                            epoch,
                            seq,
                            entry: body.clone(),
                        },
                    );
                }
                let answer = Answer::Ok { reply, seq }.encode();
                if self.data.durability == Durability::Writer {
                    self.forward_answer(id, answer);
                    self.data.shipper.applied(seq, None);
                } else {
                    self.data
                        .held
                        .insert(id, (answer, Instant::now() + ACK_TIMEOUT, seq));
                    let done = self.data.shipper.applied(seq, Some(id));
                    self.release(done);
                }
            }
            Done::Executed {
                id,
                result: Err(error),
            } => self.answer(id, Answer::Err { error }),
            Done::Queried { id, result } => {
                let answer = match result {
                    Ok(reply) => Answer::Ok {
                        reply,
                        seq: self.data.applied,
                    },
                    Err(error) => Answer::Err { error },
                };
                self.answer(id, answer);
            }
            Done::Applied {
                seq,
                result: Ok(()),
            } => {
                self.data.applied = self.data.applied.max(seq);
                self.data.fetched_at = None;
                if let Some(writer) = self.data.router.parent() {
                    self.send_data(
                        writer,
                        DataMessage::Ack {
                            epoch,
                            seq: self.data.applied,
                        },
                    );
                }
            }
            // Entries queued behind a failed one fail as gaps: only the first failure counts,
            // and asking again goes through the same rate limit as every fetch (no storm).
            Done::Applied {
                result: Err(ApplyError::Gap),
                ..
            } => {}
            Done::Applied {
                seq,
                result: Err(ApplyError::Diverged),
            } => {
                warn!(
                    seq,
                    "this copy diverged from the writer's log; asking for a snapshot"
                );
                self.data.queued = self.data.applied;
                self.fetch_from(0);
            }
            Done::Applied {
                seq,
                result: Err(ApplyError::Other(reason)),
            } => {
                warn!(
                    seq,
                    "log entry not applied: {reason}; asking the writer again"
                );
                self.data.queued = self.data.applied;
                self.fetch();
            }
            Done::Entries { to, entries } => {
                // A full batch: there may be more. Store jobs finish in order, so the next batch
                // follows this one on the link.
                if entries.len() == CATCH_UP_BATCH {
                    let after = entries.last().map_or(0, |e| e.seq);
                    self.store.submit(Job::EntriesSince { after, to });
                }
                for entry in entries {
                    let seq = entry.seq;
                    let body = serde_json::to_string(&entry).expect("entries serialize");
                    self.send_data(
                        to,
                        DataMessage::Append {
                            epoch,
                            seq,
                            entry: body,
                        },
                    );
                }
            }
            Done::Snapshotted {
                to,
                result: Ok((seq, snapshot)),
            } => {
                let body = serde_json::to_string(&snapshot).expect("snapshots serialize");
                self.send_data(to, DataMessage::Snapshot { epoch, seq, body });
            }
            Done::Snapshotted {
                to,
                result: Err(reason),
            } => warn!(to, "snapshot failed: {reason}"),
            Done::Restored { result: Ok(seq) } => {
                // The database now holds exactly the snapshot (perhaps less than a diverged copy
                // held before); appends that came after the snapshot may already be queued.
                self.data.applied = seq;
                self.data.queued = self.data.queued.max(seq);
                self.data.fetched_at = None;
                if let Some(writer) = self.data.router.parent() {
                    self.send_data(writer, DataMessage::Ack { epoch, seq });
                }
            }
            Done::Restored {
                result: Err(reason),
            } => {
                warn!("snapshot not restored: {reason}");
                self.data.queued = self.data.applied;
            }
        }
    }

    /// Writes every replica has acknowledged: answer them.
    fn release(&mut self, done: Vec<(RequestId, u64)>) {
        for (id, seq) in done {
            // Only the answer of that very write: its log position must match.
            if self
                .data
                .held
                .get(&id)
                .is_some_and(|(_, _, held)| *held == seq)
            {
                if let Some((answer, _, _)) = self.data.held.remove(&id) {
                    self.forward_answer(id, answer);
                }
            }
        }
    }

    /// On every tick: answer what waited too long.
    pub(crate) fn expire(&mut self, now: Instant) {
        let late: Vec<RequestId> = self
            .data
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(pending) = self.data.pending.remove(&id) {
                pending.give_up(&format!(
                    "no answer from the cluster within {REQUEST_TIMEOUT:?}: the writer may be \
                     unreachable"
                ));
            }
        }
        let overdue: Vec<(RequestId, u64)> = self
            .data
            .held
            .iter()
            .filter(|(_, (_, deadline, _))| *deadline <= now)
            .map(|(id, (_, _, seq))| (*id, *seq))
            .collect();
        for (id, seq) in overdue {
            let missing = self.data.shipper.missing(seq);
            self.data.shipper.abandon(seq);
            self.data.held.remove(&id);
            // The writer stored it already: the outcome is unknown, not "not done".
            self.answer(
                id,
                Answer::Err {
                    error: AppError::OutcomeUnknown(format!(
                        "persistence replica(s) {missing:?} did not confirm the write within \
                         {ACK_TIMEOUT:?}; the writer holds it, so it may yet be done: check before \
                         you retry"
                    )),
                },
            );
        }
    }

    /// A replica asks the writer for everything after what it has queued, unless a request is
    /// already in flight.
    fn fetch(&mut self) {
        self.fetch_from(self.data.queued);
    }

    /// Ask the writer for everything after `after` (0: a whole snapshot), at most once per
    /// [`FETCH_RETRY`].
    fn fetch_from(&mut self, after: u64) {
        let recent = self
            .data
            .fetched_at
            .is_some_and(|at| at.elapsed() < FETCH_RETRY);
        let (Some(writer), false) = (self.data.router.parent(), recent) else {
            return;
        };
        self.data.fetched_at = Some(Instant::now());
        let epoch = self.data.router.epoch();
        self.send_data(writer, DataMessage::Fetch { epoch, after });
    }

    fn send_data(&mut self, to: NodeId, message: DataMessage) {
        self.send_frame(to, Frame::Data { message });
    }
}
