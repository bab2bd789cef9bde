//! The node's database: one writing thread and a pool of reading threads.
//!
//! SQLite calls block, so the store lives in threads of its own and the driver talks to them by
//! message: a [`StoreJob`] of the data plane in, what the plane must hear back ([`PlaneInput`])
//! on the driver's event channel.
//!
//! - **The writer** owns the one writing connection ([`Store`]). It runs every job but reads, in
//!   the order sent, which is exactly the order the replicated log needs (an append before the
//!   apply it allows). It **group-commits**: the appends and applies that queued up while it was
//!   syncing the last transaction go into the next one together ([`Store::run_group`]), one
//!   fsync for all of them, and each is reported only once that transaction is durable.
//! - **The readers** (one per core, at least two) each own a read-only connection
//!   ([`Reader`]) and answer [`StoreJob::Query`]s. In WAL mode SQLite lets them read while the
//!   writer writes, so a read never waits for a write's fsync. A query is sent only once the
//!   plane heard that the entries it must see are applied (their transaction committed), so the
//!   reader's transaction, begun later, sees them: read-your-writes holds as before.
//! - **Local reads** ([`LocalReads`]): a read that comes in at this node's own HTTP service,
//!   while the node serves reads (the driver says so after every event, from
//!   [`labctl_core::plane::DataPlane::serves_reads`]), is answered right there on a connection
//!   of its own, without the trip through the driver and a reader thread and back (four thread
//!   switches, on this machine most of a read's time). It checks the reader's position on the
//!   very state it reads ([`Reader::query_at`]); a read this copy cannot serve takes the plane's
//!   way.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use labctl_chat::ops::{AppError, Outcome, Read};
use labctl_chat::store::{groupable, Reader, Store, StoreError};
use labctl_core::log::{Pos, Shape};
use labctl_core::plane::{PlaneInput, RequestId, StoreJob};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, warn};

use crate::hops::TARGET;

/// The most jobs one group commit takes: a bound on one transaction's size (the rest wait for
/// the next).
pub const MAX_GROUP: usize = 512;

/// The handle the driver holds.
pub struct StoreThread {
    jobs: Option<std_mpsc::Sender<Job>>,
    queries: Option<std_mpsc::Sender<Query>>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<StoreStats>,
    local: LocalReads,
}

/// Reads answered where they come in, on connections of their own (see the module's notes).
/// Cheap to clone: the HTTP layer holds one, the driver another.
#[derive(Clone)]
pub struct LocalReads {
    inner: Arc<LocalInner>,
}

impl std::fmt::Debug for LocalReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalReads")
            .field("serves", &self.inner.serves.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct LocalInner {
    /// Whether the node serves reads now (its role), as the driver last said.
    serves: AtomicBool,
    /// Connections not in use.
    idle: Mutex<Vec<Reader>>,
    stats: Arc<StoreStats>,
}

impl LocalReads {
    /// No local reads: every read takes the plane's way.
    pub fn none() -> LocalReads {
        LocalReads::new(Vec::new(), Arc::new(StoreStats::default()))
    }

    fn new(readers: Vec<Reader>, stats: Arc<StoreStats>) -> LocalReads {
        LocalReads {
            inner: Arc::new(LocalInner {
                serves: AtomicBool::new(false),
                idle: Mutex::new(readers),
                stats,
            }),
        }
    }

    /// The driver says whether the node serves reads now.
    pub fn set_serves(&self, serves: bool) {
        self.inner.serves.store(serves, Ordering::Release);
    }

    /// Answers `read` here if the node serves reads and this copy holds `min` (the reader's
    /// last write); `None` if not, if every local connection is busy, or if the file is locked
    /// against readers: the caller routes it through the data plane. Runs SQLite on the calling
    /// thread (an async task, in the HTTP layer): a read of the committed state in the page
    /// cache, tens of microseconds, and never a wait for a lock (the connections give up at
    /// once, [`Reader::never_wait`]; the reader pool's threads are the ones that wait).
    pub fn try_read(&self, read: &Read, min: Pos) -> Option<Outcome> {
        if !self.inner.serves.load(Ordering::Acquire) {
            return None;
        }
        let reader = self.inner.idle.lock().ok()?.pop()?;
        let outcome = reader
            .query_at(read, min)
            .filter(|outcome| !matches!(outcome, Err(AppError::Unavailable(_))));
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.push(reader);
        }
        if outcome.is_some() {
            self.inner.stats.local_reads.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

/// A read for the pool.
struct Query {
    id: RequestId,
    body: String,
    /// Its wait in the pool's queue (`store.read.wait`), closed when a reader takes it.
    wait: tracing::Span,
}

/// A job for the writer.
struct Job {
    job: StoreJob,
    /// Its wait in the writer's queue (`store.write.wait`), closed when the writer takes it.
    wait: tracing::Span,
}

impl Job {
    /// The writer takes the job: its wait ends.
    fn take(self) -> StoreJob {
        drop(self.wait);
        self.job
    }
}

/// What the store's threads did, counted as they go (for benchmarks and tests).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Groups of appends and applies the writer took, each one transaction (one fsync) unless
    /// a job of it failed and its jobs ran one by one.
    pub commits: AtomicU64,
    /// Appends and applies carried out in those groups.
    pub grouped_jobs: AtomicU64,
    /// Reads answered by the reader pool.
    pub pool_reads: AtomicU64,
    /// Reads answered where they came in ([`LocalReads`]).
    pub local_reads: AtomicU64,
}

/// What the database holds when the node starts: its log's shape and how far it is applied.
pub struct Opened {
    /// The store's threads.
    pub thread: StoreThread,
    /// The log.
    pub shape: Shape,
    /// Applied up to here.
    pub applied: u64,
}

/// How many readers a node runs: one per core, at least two, at most eight.
pub fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

impl StoreThread {
    /// Open (or create) the database at `path` and start its threads, with [`reader_count`]
    /// readers; their reports go to `done`.
    pub fn open(path: &Path, done: UnboundedSender<PlaneInput>) -> Result<Opened, StoreError> {
        StoreThread::open_with_readers(path, done, reader_count())
    }

    /// [`StoreThread::open`] with `readers` reading threads (0: the writer answers reads too,
    /// in order with its other jobs).
    pub fn open_with_readers(
        path: &Path,
        done: UnboundedSender<PlaneInput>,
        readers: usize,
    ) -> Result<Opened, StoreError> {
        let store = Store::open(path)?;
        let shape = store.shape()?;
        let applied = store.applied();
        let stats = Arc::new(StoreStats::default());
        let mut threads = Vec::new();

        // Readers open after the store has created and migrated the file: `readers` for the
        // pool's threads, as many for local reads. Without them, reads take the writer's way.
        let open_readers = || {
            (0..readers)
                .map(|_| Reader::open(path))
                .collect::<Result<Vec<_>, _>>()
                .unwrap_or_else(|e| {
                    warn!("store: no read-only connections ({e}); the writer answers reads");
                    Vec::new()
                })
        };
        let connections = open_readers();
        let mut local_connections = open_readers();
        if let Err(e) = local_connections.iter().try_for_each(Reader::never_wait) {
            warn!("store: no local reads ({e}); reads take the data plane's way");
            local_connections.clear();
        }
        let queries = if connections.is_empty() {
            None
        } else {
            let (queries, inbox) = std_mpsc::channel::<Query>();
            let inbox = Arc::new(Mutex::new(inbox));
            for (k, reader) in connections.into_iter().enumerate() {
                let (inbox, done, stats) = (Arc::clone(&inbox), done.clone(), Arc::clone(&stats));
                let thread = std::thread::Builder::new()
                    .name(format!("store-read-{k}"))
                    .spawn(move || read_loop(&reader, &inbox, &done, &stats))
                    .expect("spawning a store reader thread");
                threads.push(thread);
            }
            Some(queries)
        };

        let (jobs, inbox) = std_mpsc::channel::<Job>();
        let writer_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || write_loop(store, &inbox, &done, &writer_stats))
            .expect("spawning the store thread");
        threads.push(thread);
        Ok(Opened {
            thread: StoreThread {
                jobs: Some(jobs),
                queries,
                threads,
                local: LocalReads::new(local_connections, Arc::clone(&stats)),
                stats,
            },
            shape,
            applied,
        })
    }

    /// Queue a job: a read to the reader pool (if there is one), anything else to the writer.
    pub fn submit(&self, job: StoreJob) {
        match (job, &self.queries) {
            (StoreJob::Query { id, body }, Some(queries)) => {
                let wait = tracing::debug_span!(target: TARGET, "store.read.wait");
                let _ = queries.send(Query { id, body, wait });
            }
            (job, _) => {
                if let Some(jobs) = &self.jobs {
                    let wait = tracing::debug_span!(target: TARGET, "store.write.wait");
                    let _ = jobs.send(Job { job, wait });
                }
            }
        }
    }

    /// What the threads did so far.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// The store's local reads, for the HTTP layer; the driver tells them whether the node
    /// serves reads.
    pub fn local_reads(&self) -> &LocalReads {
        &self.local
    }
}

/// The writer: each turn takes every job queued (up to [`MAX_GROUP`]) and runs them in order,
/// runs of appends and applies as one group commit.
fn write_loop(
    mut store: Store,
    inbox: &std_mpsc::Receiver<Job>,
    done: &UnboundedSender<PlaneInput>,
    stats: &StoreStats,
) {
    while let Ok(first) = inbox.recv() {
        let mut queued = vec![first.take()];
        while queued.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(next) => queued.push(next.take()),
                Err(_) => break,
            }
        }
        let mut queued = queued.into_iter().peekable();
        while let Some(job) = queued.next() {
            let mut group = vec![job];
            if groupable(&group[0]) {
                while let Some(next) = queued.next_if(groupable) {
                    group.push(next);
                }
            }
            let _hop = if groupable(&group[0]) {
                tracing::debug_span!(target: TARGET, "store.commit")
            } else {
                tracing::debug_span!(target: TARGET, "store.other")
            }
            .entered();
            if groupable(&group[0]) {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats
                    .grouped_jobs
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
            }
            for report in store.run_group(group) {
                if let PlaneInput::StoreFailed { reason, .. } = &report {
                    error!("store: {reason}");
                }
                if done.send(report).is_err() {
                    return; // the driver is gone
                }
            }
        }
    }
}

/// A reader: answers queries until the pool is closed.
fn read_loop(
    reader: &Reader,
    inbox: &Mutex<std_mpsc::Receiver<Query>>,
    done: &UnboundedSender<PlaneInput>,
    stats: &StoreStats,
) {
    loop {
        // Hold the lock only to take one query: the others take theirs meanwhile.
        let next = inbox.lock().map(|inbox| inbox.recv());
        let Ok(Ok(Query { id, body, wait })) = next else {
            return; // the pool is closed
        };
        drop(wait);
        let _hop = tracing::debug_span!(target: TARGET, "store.read").entered();
        let outcome: Outcome = match serde_json::from_str::<Read>(&body) {
            Ok(read) => reader.query(&read),
            Err(error) => Err(AppError::Malformed(format!("not a read: {error}"))),
        };
        stats.pool_reads.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_string(&outcome).expect("outcomes serialize");
        if done.send(PlaneInput::Queried { id, body }).is_err() {
            return; // the driver is gone
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        // Closing the channels ends the threads' loops.
        self.jobs.take();
        self.queries.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
