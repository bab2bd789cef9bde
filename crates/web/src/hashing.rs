//! The password hashers: a fixed number of threads, each with its own argon2 memory, behind a
//! bounded queue.
//!
//! An argon2 hash needs 19 MiB at once ([`password::Memory`]). Hashed on tokio's blocking pool
//! (up to 512 threads), 64 concurrent logins took 64 hashes' memory at once, and the allocator
//! kept it afterwards: a node grew from 19 MiB to 1.2 GiB and stayed there. Here `workers`
//! threads hash, each in one `Memory` allocated at its first hash and kept, so hashing never takes
//! more than `workers` × 19 MiB; requests beyond the threads wait in a queue of at most `queue`,
//! and one more is refused at once ([`Busy`]: 503 with `Retry-After`), before anything is done.
//!
//! The threads start at the first hash and end when the last handle to the pool is dropped.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use labctl_chat::password::{self, Memory};
use tokio::sync::oneshot;

/// A pool of password hashers, shared by every router built with it (cheap to clone).
///
/// A node keeps one for its whole life, across the times it stops and starts being an input
/// node, so the threads' memory is allocated once.
#[derive(Clone)]
pub struct HashPool {
    inner: Arc<Pool>,
}

/// The pool's settings and, once started, its queue.
struct Pool {
    /// How many threads hash.
    workers: usize,
    /// How many requests may wait for a thread.
    queue: usize,
    /// The queue's sending end (dropping it ends the threads).
    sender: OnceLock<SyncSender<Job>>,
}

/// A hash or a check, and where its answer goes.
struct Job {
    /// The work.
    task: Task,
    /// Where the answer goes (a closed channel: the client is gone, skip the work).
    answer: oneshot::Sender<Answer>,
}

/// The work of one [`Job`].
enum Task {
    /// Hash this password with a fresh salt.
    Hash { password: String },
    /// Check this password against this PHC string.
    Verify { password: String, phc: String },
}

/// The answer to one [`Job`].
enum Answer {
    /// The PHC string.
    Hashed(String),
    /// Whether the password matched.
    Verified(bool),
}

/// Refused: every thread is hashing and the queue is full (or the pool's threads are gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("every password hasher is busy and {queue} requests are waiting already")]
pub(crate) struct Busy {
    /// The queue's bound.
    pub queue: usize,
}

impl HashPool {
    /// How many requests may wait for a hasher by default, per hasher.
    pub const DEFAULT_QUEUE_PER_WORKER: usize = 16;

    /// A pool of `workers` threads (at least 1) and a queue of at most `queue` waiting requests.
    pub fn new(workers: usize, queue: usize) -> Self {
        HashPool {
            inner: Arc::new(Pool {
                workers: workers.max(1),
                queue,
                sender: OnceLock::new(),
            }),
        }
    }

    /// One thread per core the process may use (at most 8), and
    /// [`HashPool::DEFAULT_QUEUE_PER_WORKER`] waiting requests per thread.
    pub fn per_core() -> Self {
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(8);
        Self::new(workers, workers * Self::DEFAULT_QUEUE_PER_WORKER)
    }

    /// How many threads hash.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// How many requests may wait for a thread.
    pub fn queue(&self) -> usize {
        self.inner.queue
    }

    /// `password` hashed into a PHC string ([`password::hash_with`]).
    pub(crate) async fn hash(&self, password: String) -> Result<String, Busy> {
        match self.submit(Task::Hash { password }).await? {
            Answer::Hashed(phc) => Ok(phc),
            Answer::Verified(_) => unreachable!("a hash is answered with a hash"),
        }
    }

    /// Whether `password` matches `phc` ([`password::verify_with`]).
    pub(crate) async fn verify(&self, password: String, phc: String) -> Result<bool, Busy> {
        match self.submit(Task::Verify { password, phc }).await? {
            Answer::Verified(matches) => Ok(matches),
            Answer::Hashed(_) => unreachable!("a check is answered with a check"),
        }
    }

    /// Queue `task` if there is room, and wait for its answer.
    async fn submit(&self, task: Task) -> Result<Answer, Busy> {
        let busy = Busy {
            queue: self.inner.queue,
        };
        let (answer, answered) = oneshot::channel();
        match self.inner.sender().try_send(Job { task, answer }) {
            Ok(()) => answered.await.map_err(|_| busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(busy),
        }
    }
}

impl Pool {
    /// The queue, starting the threads the first time.
    fn sender(&self) -> &SyncSender<Job> {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::sync_channel(self.queue);
            let receiver = Arc::new(Mutex::new(receiver));
            for k in 0..self.workers {
                let receiver = Arc::clone(&receiver);
                let spawned = std::thread::Builder::new()
                    .name(format!("password-{k}"))
                    .spawn(move || work(&receiver));
                if let Err(error) = spawned {
                    tracing::error!(%error, "a password hashing thread could not start");
                }
            }
            sender
        })
    }
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("workers", &self.inner.workers)
            .field("queue", &self.inner.queue)
            .finish()
    }
}

/// One hashing thread: takes jobs until the pool is dropped, all in the same memory.
fn work(receiver: &Mutex<Receiver<Job>>) {
    let mut memory: Option<Memory> = None;
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(Job { task, answer }) = job else {
            return; // the pool is gone
        };
        if answer.is_closed() {
            continue; // the client went away while it waited
        }
        let memory = memory.get_or_insert_with(Memory::new);
        let _ = answer.send(match task {
            Task::Hash { password } => Answer::Hashed(password::hash_with(memory, &password)),
            Task::Verify { password, phc } => {
                Answer::Verified(password::verify_with(memory, &password, &phc))
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_checks_on_the_pool() {
        let pool = HashPool::new(1, 4);
        let phc = pool.hash("pool password".into()).await.unwrap();
        assert!(pool
            .verify("pool password".into(), phc.clone())
            .await
            .unwrap());
        assert!(!pool.verify("other password".into(), phc).await.unwrap());
    }

    #[tokio::test]
    async fn beyond_the_queue_a_request_is_refused_at_once() {
        // One thread, room for one waiting request: of four sent at once (`join!` polls each
        // once before any answer can come, and a request queues at its first poll), at most two
        // are taken (one hashing, one waiting; just one if the thread has not taken the first
        // yet) and the others are refused without waiting.
        let pool = HashPool::new(1, 1);
        let phc = password::hash("pool password");
        let check = || pool.verify("pool password".into(), phc.clone());
        let (a, b, c, d) = tokio::join!(check(), check(), check(), check());
        let answers = [a, b, c, d];
        let refused = answers
            .iter()
            .filter(|a| **a == Err(Busy { queue: 1 }))
            .count();
        let matched = answers.iter().filter(|a| **a == Ok(true)).count();
        assert_eq!(refused + matched, 4, "{answers:?}");
        assert!((1..=2).contains(&matched), "{answers:?}");
        // Once the queue has drained, the pool answers again.
        assert_eq!(pool.verify("pool password".into(), phc).await, Ok(true));
    }
}
