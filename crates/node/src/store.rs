//! The node's database, owned by its own thread.
//!
//! SQLite calls block, so the store lives in a thread of its own and the driver talks to it by
//! message: a [`StoreJob`] of the data plane in, what the plane must hear back
//! ([`PlaneInput`]) on the driver's event channel. Jobs run one at a time, in the order sent,
//! which is exactly the order the replicated log needs (an append before the apply it allows).

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use labctl_chat::store::{Store, StoreError};
use labctl_core::log::Shape;
use labctl_core::plane::{PlaneInput, StoreJob};
use tokio::sync::mpsc::UnboundedSender;
use tracing::error;

/// The handle the driver holds.
pub struct StoreThread {
    jobs: Option<std_mpsc::Sender<StoreJob>>,
    thread: Option<JoinHandle<()>>,
}

/// What the database holds when the node starts: its log's shape and how far it is applied.
pub struct Opened {
    /// The store's thread.
    pub thread: StoreThread,
    /// The log.
    pub shape: Shape,
    /// Applied up to here.
    pub applied: u64,
}

impl StoreThread {
    /// Open (or create) the database at `path` and start its thread; its reports go to `done`.
    pub fn open(path: &Path, done: UnboundedSender<PlaneInput>) -> Result<Opened, StoreError> {
        let mut store = Store::open(path)?;
        let shape = store.shape()?;
        let applied = store.applied();
        let (jobs, inbox) = std_mpsc::channel::<StoreJob>();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    let append = matches!(job, StoreJob::Append { .. });
                    let restore = matches!(job, StoreJob::Restore { .. });
                    let report = store.run(job).unwrap_or_else(|e| {
                        error!("store: {e}");
                        PlaneInput::StoreFailed {
                            append,
                            restore,
                            reason: e.to_string(),
                        }
                    });
                    if done.send(report).is_err() {
                        return; // the driver is gone
                    }
                }
            })
            .expect("spawning the store thread");
        Ok(Opened {
            thread: StoreThread {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            shape,
            applied,
        })
    }

    /// Queue a job.
    pub fn submit(&self, job: StoreJob) {
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
