//! The node's database, owned by its own thread.
//!
//! SQLite calls block, so the store lives in a thread of its own and the driver talks to it by
//! message: a [`Job`] in, a [`Done`] back on the driver's event channel. Jobs run one at a time, in
//! the order sent, which is exactly the order the replication log needs.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use labctl_chat::ops::{AppError, Entry, Read, Reply, Write};
use labctl_chat::store::{Snapshot, Store, StoreError};
use labctl_core::dataplane::RequestId;
use labctl_core::NodeId;
use tokio::sync::mpsc::UnboundedSender;

/// Work for the store.
#[derive(Debug)]
pub enum Job {
    /// The writer runs a write and appends it to the log.
    Execute {
        /// The write.
        write: Write,
        /// The writer's epoch.
        epoch: u64,
        /// The request it answers.
        id: RequestId,
    },
    /// Answer a read.
    Query {
        /// The read.
        read: Read,
        /// The request it answers.
        id: RequestId,
    },
    /// A replica applies the next log entry.
    Apply {
        /// The entry.
        entry: Entry,
    },
    /// The writer reads the entries a replica is missing.
    EntriesSince {
        /// The replica's last entry.
        after: u64,
        /// The replica.
        to: NodeId,
    },
    /// The writer copies its whole database for a replica that has nothing.
    Snapshot {
        /// The replica.
        to: NodeId,
    },
    /// A replica replaces its database with the writer's copy.
    Restore {
        /// The copy.
        snapshot: Box<Snapshot>,
    },
}

/// A finished job.
#[derive(Debug)]
pub enum Done {
    /// A write ran (or was refused).
    Executed {
        /// The request.
        id: RequestId,
        /// The reply and the log entry, or why not.
        result: Result<(Reply, Entry), AppError>,
    },
    /// A read ran.
    Queried {
        /// The request.
        id: RequestId,
        /// The reply, or why not.
        result: Result<Reply, AppError>,
    },
    /// An entry was applied, or was already there identically (or not).
    Applied {
        /// The entry's number.
        seq: u64,
        /// Why not, if not.
        result: Result<(), ApplyError>,
    },
    /// Entries for a replica.
    Entries {
        /// The replica.
        to: NodeId,
        /// The entries, in order.
        entries: Vec<Entry>,
    },
    /// A snapshot for a replica.
    Snapshotted {
        /// The replica.
        to: NodeId,
        /// The snapshot, or why not.
        result: Result<(u64, Box<Snapshot>), String>,
    },
    /// A snapshot was restored.
    Restored {
        /// The last entry it holds, or why it failed.
        result: Result<u64, String>,
    },
}

/// Why a replica could not apply an entry.
#[derive(Debug)]
pub enum ApplyError {
    /// Not the next entry (an earlier one failed or is missing).
    Gap,
    /// The database holds a different entry at this number: this copy diverged from the writer's
    /// and must be replaced by a snapshot.
    Diverged,
    /// Anything else (storage trouble, an entry that does not fit the data).
    Other(String),
}

/// The handle the driver holds.
pub struct StoreThread {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// How many entries one catch-up batch carries at most (the writer sends batch after batch).
pub const CATCH_UP_BATCH: usize = 512;

impl StoreThread {
    /// Open (or create) the database at `path` and start its thread. Returns the handle and the
    /// last log entry the database holds.
    pub fn open(
        path: &Path,
        done: UnboundedSender<Done>,
    ) -> Result<(StoreThread, u64), StoreError> {
        let mut store = Store::open(path)?;
        let last = store.last_seq();
        let (jobs, inbox) = std_mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    let result = run(&mut store, job);
                    if done.send(result).is_err() {
                        return; // the driver is gone
                    }
                }
            })
            .expect("spawning the store thread");
        Ok((
            StoreThread {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            last,
        ))
    }

    /// Queue a job.
    pub fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        self.jobs.take(); // closing the channel ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(store: &mut Store, job: Job) -> Done {
    match job {
        Job::Execute { write, epoch, id } => Done::Executed {
            id,
            result: store.execute(&write, epoch, time::OffsetDateTime::now_utc()),
        },
        Job::Query { read, id } => Done::Queried {
            id,
            result: store.query(&read),
        },
        Job::Apply { entry } => Done::Applied {
            seq: entry.seq,
            result: store.apply(&entry).map_err(|e| match e {
                StoreError::Gap { .. } => ApplyError::Gap,
                StoreError::Diverged { .. } => ApplyError::Diverged,
                other => ApplyError::Other(other.to_string()),
            }),
        },
        Job::EntriesSince { after, to } => Done::Entries {
            to,
            entries: store
                .entries_since(after, CATCH_UP_BATCH)
                .unwrap_or_default(),
        },
        Job::Snapshot { to } => Done::Snapshotted {
            to,
            result: store
                .snapshot()
                .map(|s| (store.last_seq(), Box::new(s)))
                .map_err(|e| e.to_string()),
        },
        Job::Restore { snapshot } => Done::Restored {
            result: store
                .restore(&snapshot)
                .map(|()| store.last_seq())
                .map_err(|e| e.to_string()),
        },
    }
}
