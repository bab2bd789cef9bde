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

use std::path::{Path, PathBuf};

use labctl_core::log::Pos;
use labctl_core::plane::{PlaneInput, StoreJob};
use rusqlite::Connection;

pub use self::decide::timestamp;
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
}

impl Store {
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

    /// A node's driver task owns the store and may be moved to another thread.
    #[test]
    fn store_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Store>();
        assert_send::<StoreError>();
    }
}
