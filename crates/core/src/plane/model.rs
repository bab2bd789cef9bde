//! An in-memory model of a node's store, for the simulator and the core's tests: a log of entries
//! and an applied state that is the list of texts written, in the order they committed.
//!
//! It follows the same contract as the chat's SQLite store: entries are kept durably as they come
//! (and an uncommitted tail can be dropped), and applied, in order, only once committed; applying
//! an entry whose idempotency key was applied before has no effect and answers as the first did.
//! Bodies: `w:<text>` writes a text, `r` reads every text, the empty body is a new writer's
//! epoch-start entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PlaneInput, StoreJob};
use crate::log::{Pos, Shape, WireEntry};

/// The body of a write of `text`.
pub fn write(text: &str) -> String {
    format!("w:{text}")
}

/// The body of a read.
pub const READ: &str = "r";

/// What applying a write answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrote {
    /// The text.
    pub wrote: String,
}

/// The model's state in a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    texts: Vec<String>,
    keys: BTreeMap<String, String>,
}

/// One node's store.
#[derive(Clone, Debug, Default)]
pub struct ModelStore {
    /// Where the log starts (a snapshot's last entry).
    base: Pos,
    /// The entries after `base`, in order.
    log: Vec<WireEntry>,
    /// Applied up to here.
    applied: u64,
    state: State,
}

impl ModelStore {
    /// An empty store.
    pub fn new() -> Self {
        ModelStore::default()
    }

    /// The log's shape, for the data plane's [`super::PlaneConfig`].
    pub fn shape(&self) -> Shape {
        let mut shape = Shape::new(self.base, Vec::new(), self.base.seq);
        for e in &self.log {
            shape.push(e.epoch, e.seq);
        }
        shape
    }

    /// The applied prefix.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The texts written, in the order they were applied.
    pub fn texts(&self) -> &[String] {
        &self.state.texts
    }

    /// The log's entries (after the base).
    pub fn entries(&self) -> &[WireEntry] {
        &self.log
    }

    /// The entry at `seq`, if the log still holds it.
    pub fn entry(&self, seq: u64) -> Option<&WireEntry> {
        let i = seq.checked_sub(self.base.seq + 1)?;
        self.log.get(i as usize)
    }

    fn last_seq(&self) -> u64 {
        self.base.seq + self.log.len() as u64
    }

    fn epoch_at(&self, seq: u64) -> u64 {
        if seq <= self.base.seq {
            return self.base.epoch;
        }
        self.log[(seq - self.base.seq - 1) as usize].epoch
    }

    /// Carry out `job`; returns what the store reports back.
    pub fn run(&mut self, job: StoreJob) -> PlaneInput {
        match job {
            StoreJob::Append { after, entries } => {
                assert!(
                    after >= self.applied,
                    "a committed entry ({}) was about to be discarded (append after {after})",
                    self.applied
                );
                self.log.truncate((after - self.base.seq) as usize);
                for e in entries {
                    assert_eq!(e.seq, self.last_seq() + 1, "entries follow each other");
                    self.log.push(e);
                }
                PlaneInput::Stored {
                    seq: self.last_seq(),
                }
            }
            StoreJob::Apply { up_to } => {
                let mut results = Vec::new();
                while self.applied < up_to.min(self.last_seq()) {
                    let seq = self.applied + 1;
                    let entry = self.log[(seq - self.base.seq - 1) as usize].clone();
                    results.push((seq, self.apply(&entry)));
                    self.applied = seq;
                }
                PlaneInput::Applied { results }
            }
            StoreJob::Query { id, .. } => PlaneInput::Queried {
                id,
                body: serde_json::to_string(&self.state.texts).expect("texts serialize"),
            },
            StoreJob::ReadEntries {
                after,
                limit,
                purpose,
            } => {
                let after = after.max(self.base.seq);
                let from = (after - self.base.seq) as usize;
                let entries: Vec<WireEntry> = self.log[from.min(self.log.len())..]
                    .iter()
                    .take(limit)
                    .cloned()
                    .collect();
                PlaneInput::EntriesRead {
                    purpose,
                    prev: Pos::new(self.epoch_at(after), after),
                    entries,
                }
            }
            StoreJob::Snapshot { purpose } => PlaneInput::Snapshotted {
                purpose,
                base: Pos::new(self.epoch_at(self.applied), self.applied),
                body: serde_json::to_string(&self.state).expect("state serializes"),
            },
            StoreJob::Restore { base, body } => {
                self.state = serde_json::from_str(&body).expect("a model snapshot");
                self.base = base;
                self.log.clear();
                self.applied = base.seq;
                PlaneInput::Restored { base }
            }
        }
    }

    /// Apply one committed entry; its answer.
    fn apply(&mut self, entry: &WireEntry) -> String {
        if let Some(answer) = entry.key.as_ref().and_then(|k| self.state.keys.get(k)) {
            return answer.clone(); // a retry: the first attempt's answer, no second effect
        }
        let answer = match entry.body.strip_prefix("w:") {
            Some(text) => {
                self.state.texts.push(text.to_string());
                serde_json::to_string(&Wrote {
                    wrote: text.to_string(),
                })
                .expect("answers serialize")
            }
            None => "null".to_string(),
        };
        if let Some(key) = &entry.key {
            self.state.keys.insert(key.clone(), answer.clone());
        }
        answer
    }
}
