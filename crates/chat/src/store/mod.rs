//! The chat's database: one SQLite file holding the chat's tables and the node's replication log
//! (SPEC §4), as the store of the core's data plane ([`labctl_core::plane`]).
//!
//! The log is a log of **commands**: each entry holds a [`Command`] (a [`Write`] and the time its
//! input node took it) and its `Idempotency-Key`, if any. Entries are stored as they arrive,
//! durably, and may still be discarded (an old writer's tail); they are **applied** to the tables
//! only once committed, in order, by the same code on every node ([`Store::apply_committed`]):
//! the checks of the write, then its change, with ids derived from the entry's position. So every
//! copy holds the same rows, and a read never sees a write that may still be discarded.
//!
//! - [`Store::append`] keeps the log up to an entry and appends after it (the data plane's log
//!   matching decided which); it refuses to discard an applied entry.
//! - [`Store::apply_committed`] applies committed entries and answers each: the write's reply or
//!   its refusal, as JSON ([`Outcome`]). An entry whose key was applied before answers as that one
//!   did and changes nothing: a retry is applied at most once.
//! - [`Store::snapshot`] and [`Store::restore`] copy the applied state (with the answers kept for
//!   keys), for a node too far behind.
//! - [`Store::run`] carries out one [`StoreJob`] of the data plane and reports what the plane
//!   needs to hear.
//! - [`Store::run_group`] carries out a run of appends and applies in one transaction (group
//!   commit: one fsync for all of them).
//! - [`Reader`] answers reads on a read-only connection of its own, beside the store's, without
//!   waiting for its writes.
//! - [`Store::execute`] is the one-node shortcut (tests, examples): append one command and apply
//!   it at once; a refused write leaves no entry.
//!
//! Ordering contract: every method returns only after its transaction has committed with
//! `synchronous=FULL`: what it reports is durable on this node.
//!
//! One [`Store`] owns its file: two stores on the same file are not supported.
//!
//! The code is laid out by job: `schema` opens the file and migrates it, `decide` checks a
//! write against the tables, `apply` keeps the log and applies what commits, `query` answers
//! reads, `snapshot` copies the applied state whole; `rows` reads rows back for all of them.
//!
//! [`Command`]: crate::ops::Command
//! [`Write`]: crate::ops::Write

mod apply;
mod decide;
mod query;
mod rows;
mod schema;
mod snapshot;
mod tx;

use std::path::{Path, PathBuf};

use labctl_core::log::Pos;
use labctl_core::plane::{PlaneInput, StoreJob};
use rusqlite::Connection;

pub use self::apply::groupable;
pub use self::decide::timestamp;
pub use self::query::Reader;
pub use self::schema::SCHEMA_VERSION;
pub use self::snapshot::{
    GroupMessageRow, MemberRow, PrivateMessageRow, ReplyRow, Snapshot, UserRow,
};
use crate::ops::{AppError, Outcome, Read};

/// Why the store failed (as opposed to a refused operation, which is an [`AppError`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on the database file `path`.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file (or a companion) could not be made private to this user (mode 0600).
    #[error("{}: making the database private (mode 0600): {source}", path.display())]
    Private {
        /// The database file.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// Entries that do not follow the log: it ends at `last`, they were to go after `after`.
    #[error(
        "replication log gap: the log ends at entry {last}; entries after {after} do not follow it"
    )]
    Gap {
        /// The log's last entry.
        last: u64,
        /// Where the entries were to go.
        after: u64,
    },
    /// Appending after `after` would discard entries up to `applied`, which are committed.
    #[error("refusing to discard applied entries {}..={applied}", after + 1)]
    Committed {
        /// Where the append was to go.
        after: u64,
        /// The applied prefix.
        applied: u64,
    },
    /// A stored entry, a stored row or a snapshot could not be read back.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The file was written by a newer version of this program, with a schema it does not know.
    #[error(
        "{}: database schema version {found} is newer than the version {known} this program knows",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The file's schema version (`PRAGMA user_version`).
        found: u32,
        /// The newest version this program knows ([`SCHEMA_VERSION`]).
        known: u32,
    },
}
/// The chat's database and the node's replication log in one SQLite file.
#[derive(Debug)]
pub struct Store {
    /// The open connection (WAL, `synchronous=FULL`, foreign keys on).
    conn: Connection,
    /// The file, for error messages.
    path: PathBuf,
    /// Where the log starts: the state includes everything up to here.
    base: Pos,
    /// The last entry of the log.
    last: u64,
    /// Applied up to here.
    applied: u64,
    /// Whether the connection syncs its commits now (`synchronous=FULL`; else `NORMAL`): see
    /// [`Store::sync_commits`].
    synced: bool,
}

impl Store {
    /// Sets whether the next commits wait for the disk (`synchronous=FULL`) or not (`NORMAL`).
    ///
    /// **Why applying may skip the fsync.** What an apply writes (the tables, the applied
    /// position) is derived from log entries that are already durable: the same code applies the
    /// same entries to the same state on every node, with ids taken from the entries'
    /// positions. In WAL mode SQLite keeps commits in order, so a crash of the machine can only
    /// lose a suffix of the latest unsynced applies, never a synced append after them (its fsync
    /// carries everything written before it), and never a consistent state; a crash of the
    /// process loses nothing (the WAL is in the operating system's cache). After a lost apply
    /// the node restarts applied up to an earlier entry and applies the rest again, answering
    /// exactly as before. Whether a write is acknowledged depends on its log entry being durable
    /// where its durability mode says, which appends still sync. So a write costs one fsync, not
    /// two.
    pub(super) fn sync_commits(&mut self, full: bool) -> Result<(), StoreError> {
        if self.synced != full {
            self.conn
                .pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })
                .map_err(rows::sqlite_error(&self.path))?;
            self.synced = full;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last entry of the log; 0 for an empty log.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// Applied up to this entry (everything up to it is committed).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Where the applied prefix ends, with its entry's epoch.
    pub fn applied_pos(&self) -> Result<Pos, StoreError> {
        Ok(Pos::new(self.epoch_at(self.applied)?, self.applied))
    }

    /// Carry out one job of the data plane; returns what the plane must hear back.
    ///
    /// # Errors
    /// The store's failure; the job did nothing (a read's failure is its answer instead).
    pub fn run(&mut self, job: StoreJob) -> Result<PlaneInput, StoreError> {
        Ok(match job {
            StoreJob::Append { after, entries } => PlaneInput::Stored {
                seq: self.append(after, &entries)?,
            },
            StoreJob::Apply { up_to } => PlaneInput::Applied {
                results: self.apply_committed(up_to)?,
            },
            StoreJob::Query { id, body } => {
                let outcome: Outcome = match serde_json::from_str::<Read>(&body) {
                    Ok(read) => self.query(&read),
                    Err(error) => Err(AppError::Malformed(format!("not a read: {error}"))),
                };
                PlaneInput::Queried {
                    id,
                    body: serde_json::to_string(&outcome).expect("outcomes serialize"),
                }
            }
            StoreJob::ReadEntries {
                after,
                limit,
                purpose,
            } => {
                let (prev, entries) = self.entries_after(after, limit)?;
                PlaneInput::EntriesRead {
                    purpose,
                    prev,
                    entries,
                }
            }
            StoreJob::Snapshot { purpose } => {
                let snapshot = self.snapshot()?;
                PlaneInput::Snapshotted {
                    purpose,
                    base: snapshot.base,
                    body: serde_json::to_string(&snapshot).expect("snapshots serialize"),
                }
            }
            StoreJob::Restore { base, body } => {
                let snapshot: Snapshot = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Corrupt(format!("an unreadable snapshot: {e}")))?;
                if snapshot.base != base {
                    return Err(StoreError::Corrupt(format!(
                        "a snapshot said to end at {base} ends at {}",
                        snapshot.base
                    )));
                }
                self.restore(&snapshot)?;
                PlaneInput::Restored { base }
            }
        })
    }
}

/// A sequence number as SQLite's signed integer.
fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} does not fit in an i64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ops::{Command, Reply, Write};
    use labctl_core::log::WireEntry;

    /// A node's driver task owns the store and may be moved to another thread; so are readers,
    /// one per thread.
    #[test]
    fn store_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Store>();
        assert_send::<StoreError>();
        assert_send::<Reader>();
    }

    /// An append commits only once it is on disk (`synchronous=FULL`, the mode the store opens
    /// in); an apply, derived from durable entries, does not wait (`NORMAL`); the next append
    /// syncs again, alone or in a group with applies.
    #[test]
    fn appends_sync_and_applies_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("chat.sqlite")).unwrap();
        let synchronous = |store: &Store| -> i64 {
            store
                .conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(&store), 2, "PRAGMA synchronous is FULL (2)");
        let journal: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(
            journal, "wal",
            "readers read beside the writer only in WAL mode"
        );
        let entry = |seq: u64| WireEntry {
            epoch: 1,
            seq,
            key: None,
            body: String::new(), // a new writer's epoch-start marker: applies as nothing
        };
        store.append(0, &[entry(1)]).unwrap();
        assert_eq!(synchronous(&store), 2, "an append syncs");
        store.apply_committed(1).unwrap();
        assert_eq!(synchronous(&store), 1, "an apply does not wait: NORMAL (1)");
        store.append(1, &[entry(2)]).unwrap();
        assert_eq!(synchronous(&store), 2, "the next append syncs again");
        store.run_group(vec![
            StoreJob::Apply { up_to: 2 },
            StoreJob::Apply { up_to: 2 },
        ]);
        assert_eq!(synchronous(&store), 1, "a group of applies does not wait");
        let reports = store.run_group(vec![
            StoreJob::Append {
                after: 2,
                entries: vec![entry(3)],
            },
            StoreJob::Apply { up_to: 3 },
        ]);
        assert_eq!(reports[0], PlaneInput::Stored { seq: 3 }, "{reports:?}");
        assert_eq!(synchronous(&store), 2, "a group with an append syncs");
    }

    /// The statements run at every read and every apply are prepared once per connection: none
    /// is prepared again when bound to new values (SQLite does that for a statement whose plan
    /// depends on a bound value, such as a bare `LIMIT ?`: a parse and a plan each time).
    #[test]
    fn hot_statements_are_not_prepared_again() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("chat.sqlite")).unwrap();
        let uuid = "00000000-0000-4000-8000-000000000000";
        for (sql, parameters) in [
            (apply::READ_ENTRIES, 2),
            (query::PRIVATE_CHAT, 4),
            (query::GROUP_CHAT, 3),
        ] {
            for i in 0..4i64 {
                let mut statement = store.conn.prepare_cached(sql).unwrap();
                let values: Vec<rusqlite::types::Value> = match parameters {
                    2 => vec![i.into(), (i + 10).into()],
                    3 => vec![uuid.to_string().into(), i.into(), (i + 1).into()],
                    _ => vec![
                        uuid.to_string().into(),
                        uuid.to_string().into(),
                        i.into(),
                        (i + 1).into(),
                    ],
                };
                let mut rows = statement.query(rusqlite::params_from_iter(values)).unwrap();
                while rows.next().unwrap().is_some() {}
                drop(rows);
                assert_eq!(
                    statement.get_status(StatementStatus::RePrepare),
                    0,
                    "prepared again when bound anew: {sql}"
                );
            }
        }
    }

    /// Isolation (SPEC §4, committed-only visibility): a read that starts while a write is under
    /// way (its rows inserted, not yet committed) sees the state before the write, whole; once
    /// the write commits, the next read sees all of it. Never a part.
    #[test]
    fn a_read_during_a_write_sees_the_state_before_it_never_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite");
        let mut store = Store::open(&path).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let hash = crate::password::hash("correct horse battery");
        let mut users = Vec::new();
        for name in ["alice", "bob"] {
            let write = Write::Register {
                username: name.into(),
                tag: "1234".into(),
                password_hash: hash.clone(),
            };
            match store.execute(&write, 1, now).unwrap().0 {
                Reply::User { user } => users.push(user),
                other => panic!("register answered {other:?}"),
            }
        }
        // 100 messages from alice to bob, logged (durable) but not applied.
        let after = store.last_seq();
        let sent_at = timestamp(now).unwrap();
        let entries: Vec<WireEntry> = (1..=100)
            .map(|i| WireEntry {
                epoch: 1,
                seq: after + i,
                key: None,
                body: serde_json::to_string(&Command {
                    write: Write::SendPrivate {
                        from: users[0].uuid.clone(),
                        username: "bob".into(),
                        tag: "1234".into(),
                        content: format!("message {i}"),
                    },
                    sent_at: sent_at.clone(),
                })
                .unwrap(),
            })
            .collect();
        store.append(after, &entries).unwrap();

        let reader = Reader::open(&path).unwrap();
        let conversation = Read::PrivateChat {
            window: Default::default(),
            me: users[1].uuid.clone(),
            username: "alice".into(),
            tag: "1234".into(),
        };
        let count = |reader: &Reader| match reader.query(&conversation) {
            Ok(Reply::Messages { messages }) => messages.len(),
            other => panic!("the conversation read answered {other:?}"),
        };
        assert_eq!(count(&reader), 0);

        // The write: apply the 100 entries in one transaction, in two halves, reading between.
        let applied = store.applied();
        let tx = tx::Tx::write(&store.conn).unwrap();
        apply::apply_in(&tx, &path, applied, applied + 50).unwrap();
        assert_eq!(count(&reader), 0, "half a write is not seen");
        apply::apply_in(&tx, &path, applied + 50, applied + 100).unwrap();
        assert_eq!(count(&reader), 0, "an uncommitted write is not seen");
        // A reader that opens during the write sees the same.
        assert_eq!(count(&Reader::open(&path).unwrap()), 0);
        tx.commit().unwrap();
        assert_eq!(count(&reader), 100, "a committed write is seen whole");
    }
}
