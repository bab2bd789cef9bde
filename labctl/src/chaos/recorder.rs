//! The history as it is recorded: each operation appended to `history.jsonl` the moment it
//! happens (a crash of labctl leaves what happened so far) and kept in memory for the checker.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use labctl_chaos::history::{self, Op, Process, Type, Value, F};
use labctl_chaos::report::OpCounts;
use labctl_core::NodeId;

/// Appends operations to the history, in time order.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    file: std::fs::File,
    ops: Vec<Op>,
    counts: OpCounts,
    /// The first failure to write the file (the run is then unknown).
    error: Option<String>,
}

impl Recorder {
    /// A new `history.jsonl` at `path`; times count from now.
    pub fn create(path: &Path) -> Result<Recorder> {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                file,
                ops: Vec::new(),
                counts: OpCounts::default(),
                error: None,
            }),
        })
    }

    /// Milliseconds since the run's start.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The instant the run's times count from.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Record one operation now; returns its time.
    pub fn record(
        &self,
        process: Process,
        kind: Type,
        f: F,
        value: Value,
        node: Option<NodeId>,
    ) -> u64 {
        let mut inner = self.inner.lock().expect("the recorder's lock");
        // Timed under the lock, so the lines are in time order.
        let op = Op {
            time_ms: self.now_ms(),
            process,
            kind,
            f,
            value,
            node,
        };
        if matches!(process, Process::Client(_)) {
            match kind {
                Type::Ok => inner.counts.ok += 1,
                Type::Fail => inner.counts.fail += 1,
                Type::Info => inner.counts.info += 1,
                Type::Invoke => {}
            }
        }
        let mut line = history::line(&op);
        line.push('\n');
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            inner
                .error
                .get_or_insert(format!("writing the history: {e}"));
        }
        let time = op.time_ms;
        inner.ops.push(op);
        time
    }

    /// Client operations by outcome so far.
    pub fn counts(&self) -> OpCounts {
        self.inner.lock().expect("the recorder's lock").counts
    }

    /// Every operation so far, and the first failure to write one, if any.
    pub fn finish(&self) -> (Vec<Op>, Option<String>) {
        let inner = self.inner.lock().expect("the recorder's lock");
        let _ = inner.file.sync_all();
        (inner.ops.clone(), inner.error.clone())
    }
}
