//! The node's store threads with real SQLite files: reads never wait on the writer, and group
//! commit never reports a write before it is durable.
//!
//! The instrument is a second connection to the same file that takes SQLite's write lock
//! (`BEGIN IMMEDIATE`) and holds it: the store's writer then cannot commit (it waits in its busy
//! handler), exactly as if its transaction were taking long to reach the disk. A third
//! connection checks, each time the store reports an append durable, that the entries are
//! committed. With `synchronous=FULL` in WAL mode (asserted in the chat crate's tests), SQLite
//! syncs the log's frames before it publishes the commit to other connections, so what that
//! connection sees is on disk.

use std::path::Path;
use std::time::Duration;

use labctl_chat::ops::{Command, Outcome, Read, Reply, Write};
use labctl_chat::store::timestamp;
use labctl_core::log::WireEntry;
use labctl_core::plane::{PlaneInput, RequestId, StoreJob};
use labctl_node::store::StoreThread;
use rusqlite::Connection;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// How long the tests wait for a report that must come (generous: a bound, not a speed).
const REPORT: Duration = Duration::from_secs(30);

/// An entry registering `username#1234`.
fn register(seq: u64, username: &str, hash: &str) -> WireEntry {
    let command = Command {
        write: Write::Register {
            username: username.into(),
            tag: "1234".into(),
            password_hash: hash.into(),
        },
        sent_at: timestamp(time::OffsetDateTime::now_utc()).unwrap(),
    };
    WireEntry {
        epoch: 1,
        seq,
        key: None,
        body: serde_json::to_string(&command).unwrap(),
    }
}

/// A store with two readers in a new temporary folder (kept while the guard lives), and its
/// reports.
fn open_store() -> (
    tempfile::TempDir,
    StoreThread,
    UnboundedReceiver<PlaneInput>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (done, reports) = unbounded_channel();
    let opened = StoreThread::open_with_readers(&dir.path().join("chat.sqlite"), done, 2);
    (dir, opened.unwrap().thread, reports)
}

/// The next report, waiting at most [`REPORT`].
fn next(reports: &mut UnboundedReceiver<PlaneInput>) -> PlaneInput {
    let deadline = std::time::Instant::now() + REPORT;
    loop {
        match reports.try_recv() {
            Ok(report) => return report,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("no report from the store within {REPORT:?}: {e}"),
        }
    }
}

/// Nothing reported within `wait`.
fn quiet(reports: &mut UnboundedReceiver<PlaneInput>, wait: Duration) {
    std::thread::sleep(wait);
    if let Ok(report) = reports.try_recv() {
        panic!("the store reported {report:?} while its writer could not commit");
    }
}

/// A connection that holds the file's write lock until dropped or rolled back.
fn hold_write_lock(path: &Path) -> Connection {
    let blocker = Connection::open(path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    blocker
}

/// The last log entry committed, as another connection sees it.
fn committed_last(checker: &Connection) -> u64 {
    checker
        .query_row("SELECT coalesce(max(seq), 0) FROM log", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap() as u64
}

/// A read sent while the writer cannot commit is answered at once, from the state before the
/// write it waits on (the old single store thread answered it only after that write).
#[test]
fn a_read_is_answered_while_the_writer_waits_and_sees_the_state_before_it() {
    let (dir, store, mut reports) = open_store();
    let path = dir.path().join("chat.sqlite");
    let hash = labctl_chat::password::hash("long enough password");

    store.submit(StoreJob::Append {
        after: 0,
        entries: vec![register(1, "alice", &hash)],
    });
    store.submit(StoreJob::Apply { up_to: 1 });
    assert_eq!(next(&mut reports), PlaneInput::Stored { seq: 1 });
    assert!(matches!(next(&mut reports), PlaneInput::Applied { results } if results.len() == 1));

    let blocker = hold_write_lock(&path);
    // bob's registration waits behind the lock; then a read of the users, in that order.
    store.submit(StoreJob::Append {
        after: 1,
        entries: vec![register(2, "bob", &hash)],
    });
    store.submit(StoreJob::Apply { up_to: 2 });
    let id = RequestId { origin: 1, n: 7 };
    for username in ["alice", "bob"] {
        let read = Read::UsersByName {
            username: username.into(),
        };
        store.submit(StoreJob::Query {
            id,
            body: serde_json::to_string(&read).unwrap(),
        });
        // The first report is the read's, while the writer still waits.
        let PlaneInput::Queried { id: answered, body } = next(&mut reports) else {
            panic!("the writer reported while it could not commit")
        };
        assert_eq!(answered, id);
        let outcome: Outcome = serde_json::from_str(&body).unwrap();
        let Ok(Reply::Users { users }) = outcome else {
            panic!("a users read answered {outcome:?}")
        };
        let expected = usize::from(username == "alice");
        assert_eq!(users.len(), expected, "{username}: the state before bob");
    }
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(next(&mut reports), PlaneInput::Stored { seq: 2 });
    assert!(matches!(next(&mut reports), PlaneInput::Applied { results } if results.len() == 1));
    let pool_reads = store
        .stats()
        .pool_reads
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(pool_reads, 2, "the reads went to the pool");
}

/// Appends queued while the writer waits go into one transaction, and no append is reported
/// durable before another connection sees it committed; while the lock is held, nothing at all
/// is reported.
#[test]
fn group_commit_never_reports_an_append_before_it_is_durable() {
    let (dir, store, mut reports) = open_store();
    let path = dir.path().join("chat.sqlite");
    let checker = Connection::open(&path).unwrap();
    const APPENDS: u64 = 50;

    let blocker = hold_write_lock(&path);
    for seq in 1..=APPENDS {
        store.submit(StoreJob::Append {
            after: seq - 1,
            entries: vec![WireEntry {
                epoch: 1,
                seq,
                key: None,
                body: format!("entry {seq}"),
            }],
        });
    }
    // The writer cannot commit: no append may be reported, none is visible.
    quiet(&mut reports, Duration::from_millis(300));
    assert_eq!(committed_last(&checker), 0);
    blocker.execute_batch("ROLLBACK").unwrap();

    let mut reported = 0;
    while reported < APPENDS {
        match next(&mut reports) {
            PlaneInput::Stored { seq } => {
                assert!(seq > reported, "reports go forward: {seq} after {reported}");
                let committed = committed_last(&checker);
                assert!(
                    committed >= seq,
                    "append {seq} reported durable while the file holds entries up to {committed}"
                );
                reported = seq;
            }
            other => panic!("an append answered {other:?}"),
        }
    }
    let stats = store.stats();
    let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let jobs = stats
        .grouped_jobs
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(jobs, APPENDS);
    // The first append may be taken alone before the others queue; the rest wait together.
    assert!(
        commits <= 2,
        "{APPENDS} appends queued behind one lock took {commits} commits"
    );
}

/// Local reads: only while the driver says the node serves reads, and only when the store's
/// committed state holds the reader's last write (its seq applied, of its epoch); otherwise the
/// read goes to the data plane (`None`).
#[test]
fn a_local_read_is_served_only_by_a_serving_node_holding_the_readers_last_write() {
    use labctl_core::log::Pos;
    let (_dir, store, mut reports) = open_store();
    let hash = labctl_chat::password::hash("long enough password");
    store.submit(StoreJob::Append {
        after: 0,
        entries: vec![register(1, "alice", &hash), register(2, "bob", &hash)],
    });
    store.submit(StoreJob::Apply { up_to: 1 });
    assert_eq!(next(&mut reports), PlaneInput::Stored { seq: 2 });
    assert!(matches!(next(&mut reports), PlaneInput::Applied { .. }));

    let local = store.local_reads();
    let read = Read::UsersByName {
        username: "alice".into(),
    };
    let users = |outcome: Option<Outcome>| match outcome {
        Some(Ok(Reply::Users { users })) => Some(users.len()),
        None => None,
        Some(other) => panic!("a users read answered {other:?}"),
    };
    // Not serving (the driver has not said so): the plane's way.
    assert_eq!(users(local.try_read(&read, Pos::START)), None);
    local.set_serves(true);
    assert_eq!(users(local.try_read(&read, Pos::START)), Some(1));
    assert_eq!(users(local.try_read(&read, Pos::new(1, 1))), Some(1));
    // Entry 2 is stored but not applied; entry 1 is of epoch 1, not 2.
    assert_eq!(users(local.try_read(&read, Pos::new(1, 2))), None);
    assert_eq!(users(local.try_read(&read, Pos::new(2, 1))), None);
    store.submit(StoreJob::Apply { up_to: 2 });
    assert!(matches!(next(&mut reports), PlaneInput::Applied { .. }));
    assert_eq!(users(local.try_read(&read, Pos::new(1, 2))), Some(1));
    local.set_serves(false);
    assert_eq!(users(local.try_read(&read, Pos::new(1, 2))), None);
    let served = store
        .stats()
        .local_reads
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(served, 3);
}
