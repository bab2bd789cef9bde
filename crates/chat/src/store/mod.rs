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

mod decide;
mod rows;

use std::path::{Path, PathBuf};
use std::time::Duration;

use labctl_core::log::{Pos, Shape, WireEntry};
use labctl_core::plane::{PlaneInput, StoreJob};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use self::decide::timestamp;
use self::decide::{
    apply_change, decide, insert_group, insert_group_message, insert_member,
    insert_private_message, insert_user, Ids,
};
use self::rows::{
    acting_user, collect, column_u64, existing_group, generation_of, group_from_row, json_value,
    member_only, message_rows, messages, named_user, no_user_id, sqlite_error, unavailable,
    user_by_id, user_from_row, users,
};
use crate::ops::{
    AppError, ChatMessage, Command, Group, GroupId, Outcome, Read, Reply, UserId, Write,
};
use crate::validate;

/// How long a statement waits for a lock held by another connection before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version: `MIGRATIONS[i]` takes a file from `user_version` `i` to
/// `i + 1`. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// The schema version this program writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the chat's tables, a replication log of changes and a key-value table.
///
/// Messages are keyed by the sequence number of the log entry that added them, so "order by seq"
/// is the order in which the writer accepted them. Authors and recipients carry no foreign key:
/// a deleted user's messages stay, attributed to its uuid. Memberships and group messages do, so a
/// change applied in the wrong order fails instead of leaving dangling rows.
const SCHEMA_V1: &str = "
CREATE TABLE users (
    uuid TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    tag TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    UNIQUE (username, tag)
);
CREATE TABLE groups (
    uuid TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX groups_by_creator ON groups (creator);
CREATE TABLE members (
    group_uuid TEXT NOT NULL REFERENCES groups (uuid),
    user_uuid TEXT NOT NULL REFERENCES users (uuid),
    PRIMARY KEY (group_uuid, user_uuid)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_uuid);
CREATE TABLE private_messages (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    author TEXT NOT NULL,
    recipient TEXT NOT NULL,
    content TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX private_messages_by_author ON private_messages (author, recipient);
CREATE INDEX private_messages_by_recipient ON private_messages (recipient, author);
CREATE TABLE group_messages (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    group_uuid TEXT NOT NULL REFERENCES groups (uuid),
    author TEXT NOT NULL,
    content TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX group_messages_by_group ON group_messages (group_uuid, seq);
CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    change TEXT NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
";

/// Version 2: a log of commands (applied once committed), the answers kept for idempotency keys,
/// and in `meta` where the log starts (`base_epoch`, `base_seq`: what a snapshot replaced) and how
/// far it is applied (`applied`). A version 1 log was all applied: it becomes the base.
const SCHEMA_V2: &str = "
CREATE TABLE replies (
    key TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    answer TEXT NOT NULL
);
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'base_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM log;
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'base_epoch', CAST(coalesce((SELECT epoch FROM log ORDER BY seq DESC LIMIT 1), 0) AS TEXT);
INSERT OR REPLACE INTO meta (key, value) SELECT 'applied', value FROM meta WHERE key = 'base_seq';
DROP TABLE log;
CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    key TEXT,
    body TEXT NOT NULL
);
";

/// Version 3: each user's session generation (SPEC §5, logging out): a session token carries
/// the generation it was issued in, and one older than its user's is refused. Logging out raises
/// it, through the log like any write, so every node that checks tokens learns it.
const SCHEMA_V3: &str = "
ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
";

/// The tables of the applied state with the columns that order their rows, for [`Store::dump`]
/// (`meta` without where this node's log starts, which differs from node to node).
const TABLES: &[(&str, &str)] = &[
    ("users", "uuid"),
    ("groups", "uuid"),
    ("members", "group_uuid, user_uuid"),
    ("private_messages", "seq"),
    ("group_messages", "seq"),
    ("replies", "key"),
    ("meta WHERE key NOT IN ('base_epoch', 'base_seq')", "key"),
];

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

/// The applied state, whole: enough to start a node from nothing (its log then starts at
/// `base`).
///
/// Rows are listed in primary-key order, as [`Store::snapshot`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last entry the state holds.
    pub base: Pos,
    /// The `users` table.
    pub users: Vec<UserRow>,
    /// The `groups` table.
    pub groups: Vec<Group>,
    /// The `members` table.
    pub members: Vec<MemberRow>,
    /// The `private_messages` table.
    pub private_messages: Vec<PrivateMessageRow>,
    /// The `group_messages` table.
    pub group_messages: Vec<GroupMessageRow>,
    /// The answers kept for idempotency keys.
    pub replies: Vec<ReplyRow>,
}

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// The user.
    pub user: crate::ops::User,
    /// Its password hash (PHC string).
    pub password_hash: String,
    /// Its session generation (0 until it first logs out).
    #[serde(default)]
    pub generation: u64,
}

/// A row of `members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    /// The group.
    pub group: GroupId,
    /// The member.
    pub user: UserId,
}

/// A row of `private_messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateMessageRow {
    /// The log entry that added it.
    pub seq: u64,
    /// The recipient.
    pub to: UserId,
    /// The message.
    pub message: ChatMessage,
}

/// A row of `group_messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessageRow {
    /// The log entry that added it.
    pub seq: u64,
    /// The group.
    pub group: GroupId,
    /// The message.
    pub message: ChatMessage,
}

/// A row of `replies`: the first answer to an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRow {
    /// The key, scoped to its user.
    pub key: String,
    /// The entry that was applied for it.
    pub seq: u64,
    /// Its answer (an [`Outcome`] as JSON).
    pub answer: String,
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
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// [`SCHEMA_VERSION`].
    ///
    /// The file and SQLite's companions (`-wal`, `-shm`, `-journal`) are readable and writable by
    /// this user only (mode 0600: they hold password hashes and private messages): a new file is
    /// created so, and an existing one is narrowed to it. SQLite creates its companions with the
    /// database file's mode.
    ///
    /// The connection uses WAL journaling (readers never block the writer), `synchronous=FULL`
    /// (a commit returns only once it is on disk: a write is acknowledged only when durable),
    /// foreign keys, and a busy timeout.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if the file comes from a newer program (it is left untouched),
    /// [`StoreError::Private`] if its mode cannot be set,
    /// [`StoreError::Sqlite`] if it cannot be opened or is not a database,
    /// [`StoreError::Corrupt`] if its log has holes.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sqlite = sqlite_error(&path);
        private_files(&path).map_err(|source| StoreError::Private {
            path: path.clone(),
            source,
        })?;
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;

        // Look at the version before changing anything, so a newer program's file stays as it was.
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sqlite)?;
        let found = u32::try_from(found).map_err(|_| {
            StoreError::Corrupt(format!(
                "{}: invalid schema version {found}",
                path.display()
            ))
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found,
                known: SCHEMA_VERSION,
            });
        }

        // WAL may be refused by some file systems (SQLite then keeps its rollback journal, which
        // is just as durable), so the answer is not checked.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sqlite)?;

        // Each migration and its version number commit together: a crash leaves either version.
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = conn.transaction().map_err(sqlite)?;
            tx.execute_batch(migration).map_err(sqlite)?;
            tx.pragma_update(None, "user_version", version as i64 + 1)
                .map_err(sqlite)?;
            tx.commit().map_err(sqlite)?;
        }

        let corrupt = |what: String| StoreError::Corrupt(format!("{}: {what}", path.display()));
        let base = Pos::new(
            meta_u64(&conn, "base_epoch").map_err(sqlite)?,
            meta_u64(&conn, "base_seq").map_err(sqlite)?,
        );
        let applied = meta_u64(&conn, "applied").map_err(sqlite)?;
        // Entries follow the base without gaps; anything else is not our log.
        let (count, first, last): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM log",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(sqlite)?;
        let (count, first, last) = (count as u64, first as u64, last as u64);
        if count > 0 && (first != base.seq + 1 || last - first + 1 != count) {
            return Err(corrupt(format!(
                "the log holds {count} entries from {first} to {last}, after a base at {}",
                base.seq
            )));
        }
        let last = if count == 0 { base.seq } else { last };
        if applied < base.seq || applied > last {
            return Err(corrupt(format!(
                "applied up to {applied}, outside the log ({}..={last})",
                base.seq
            )));
        }
        Ok(Store {
            conn,
            path,
            base,
            last,
            applied,
        })
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

    /// The log's shape (its base, and the epoch of every entry), for the data plane.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn shape(&self) -> Result<Shape, StoreError> {
        let sqlite = sqlite_error(&self.path);
        let mut shape = Shape::new(self.base, Vec::new(), self.base.seq);
        let mut statement = self
            .conn
            .prepare("SELECT seq, epoch FROM log ORDER BY seq")
            .map_err(sqlite)?;
        let mut rows = statement.query([]).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let seq = column_u64(row, 0).map_err(sqlite)?;
            let epoch = column_u64(row, 1).map_err(sqlite)?;
            shape.push(epoch, seq);
        }
        Ok(shape)
    }

    /// The epoch of entry `seq` (the base's, or a stored entry's).
    fn epoch_at(&self, seq: u64) -> Result<u64, StoreError> {
        if seq == self.base.seq {
            return Ok(self.base.epoch);
        }
        let epoch: Option<i64> = self
            .conn
            .query_row("SELECT epoch FROM log WHERE seq = ?1", [int(seq)?], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite_error(&self.path))?;
        epoch
            .map(|e| e as u64)
            .ok_or_else(|| StoreError::Corrupt(format!("no log entry {seq}")))
    }

    /// Keep the log up to entry `after`, drop what follows (an old writer's tail) and append
    /// `entries`, which must follow `after` one by one, in one durable transaction. Returns the
    /// new last entry.
    ///
    /// # Errors
    /// [`StoreError::Committed`] if `after` is below the applied prefix, [`StoreError::Gap`] if
    /// `after` is beyond the log or the entries do not follow it (nothing changes either way).
    pub fn append(&mut self, after: u64, entries: &[WireEntry]) -> Result<u64, StoreError> {
        if after < self.applied {
            return Err(StoreError::Committed {
                after,
                applied: self.applied,
            });
        }
        if after > self.last || entries.iter().zip(after + 1..).any(|(e, seq)| e.seq != seq) {
            return Err(StoreError::Gap {
                last: self.last,
                after,
            });
        }
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        tx.execute("DELETE FROM log WHERE seq > ?1", [int(after)?])
            .map_err(sqlite)?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO log (seq, epoch, key, body) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sqlite)?;
            for e in entries {
                insert
                    .execute(params![int(e.seq)?, int(e.epoch)?, e.key, e.body])
                    .map_err(sqlite)?;
            }
        }
        tx.commit().map_err(sqlite)?;
        self.last = after + entries.len() as u64;
        Ok(self.last)
    }

    /// Apply every entry up to `up_to` (committed, says the caller) not applied yet, in order, in
    /// one durable transaction. Returns each entry's answer: an [`Outcome`] as JSON, or `null`
    /// for a new writer's epoch-start entry.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`]: nothing is applied.
    pub fn apply_committed(&mut self, up_to: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let up_to = up_to.min(self.last);
        if up_to <= self.applied {
            return Ok(Vec::new());
        }
        let sqlite = sqlite_error(&self.path);
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let entries =
            read_entries(&tx, self.applied, (up_to - self.applied) as usize).map_err(sqlite)?;
        let mut results = Vec::with_capacity(entries.len());
        for entry in &entries {
            let answer = apply_entry(&mut tx, entry, &self.path)?;
            results.push((entry.seq, answer));
        }
        set_meta(&tx, "applied", up_to).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        self.applied = up_to;
        Ok(results)
    }
    /// Answers a read from this database.
    ///
    /// Unknown users and groups are 404, except the user asking (`me`, `requester`): if it no
    /// longer exists the answer is 401, as for writes. `Members` and `GroupChat` are 403 for a
    /// non-member. `UsersByName` with no match is an empty list, not a 404 (a search that finds
    /// nothing).
    ///
    /// # Errors
    /// The refusal, or [`AppError::Unavailable`] if the database fails.
    pub fn query(&self, read: &Read) -> Result<Reply, AppError> {
        let conn = &self.conn;
        match read {
            Read::UserById { uuid } => {
                validate::uuid(uuid)?;
                let user = user_by_id(conn, uuid)?.ok_or_else(|| no_user_id(uuid))?;
                Ok(Reply::User { user })
            }
            Read::UsersByName { username } => {
                validate::username(username)?;
                let users = users(
                    conn,
                    "SELECT uuid, username, tag FROM users WHERE username = ?1 ORDER BY tag",
                    username,
                )?;
                Ok(Reply::Users { users })
            }
            Read::User { username, tag } => {
                let (user, _) = named_user(conn, username, tag)?;
                Ok(Reply::User { user })
            }
            Read::Credentials { username, tag } => {
                let (user, password_hash) = named_user(conn, username, tag)?;
                let generation = generation_of(conn, &user.uuid)?;
                Ok(Reply::Credentials {
                    user,
                    password_hash,
                    generation,
                })
            }
            Read::Generation { user } => {
                validate::uuid(user)?;
                let user = acting_user(conn, user)?;
                Ok(Reply::Generation {
                    generation: generation_of(conn, &user.uuid)?,
                })
            }
            Read::PrivateChat { me, username, tag } => {
                let me = acting_user(conn, me)?;
                let (other, _) = named_user(conn, username, tag)?;
                let messages = messages(
                    conn,
                    "SELECT uuid, author, content, sent_at FROM private_messages
                     WHERE (author = ?1 AND recipient = ?2) OR (author = ?2 AND recipient = ?1)
                     ORDER BY seq",
                    params![me.uuid, other.uuid],
                )?;
                Ok(Reply::Messages { messages })
            }
            Read::Group { uuid } => Ok(Reply::Group {
                group: existing_group(conn, uuid)?,
            }),
            Read::Members { group, requester } => {
                let requester = acting_user(conn, requester)?;
                let group = existing_group(conn, group)?;
                member_only(conn, &group, &requester, "see its members")?;
                let users = users(
                    conn,
                    "SELECT u.uuid, u.username, u.tag
                     FROM members m JOIN users u ON u.uuid = m.user_uuid
                     WHERE m.group_uuid = ?1 ORDER BY u.username, u.tag",
                    &group.uuid,
                )?;
                Ok(Reply::Users { users })
            }
            Read::GroupChat { group, requester } => {
                let requester = acting_user(conn, requester)?;
                let group = existing_group(conn, group)?;
                member_only(conn, &group, &requester, "read its conversation")?;
                let messages = messages(
                    conn,
                    "SELECT uuid, author, content, sent_at FROM group_messages
                     WHERE group_uuid = ?1 ORDER BY seq",
                    params![group.uuid],
                )?;
                Ok(Reply::Messages { messages })
            }
            Read::GroupsOf { user } => {
                // `user` is the one asking (the main page of a session): like every acting user,
                // one that no longer exists is not logged in (401), not an unknown page.
                validate::uuid(user)?;
                acting_user(conn, user)?;
                let mut statement = conn
                    .prepare_cached(
                        "SELECT g.uuid, g.name, g.creator
                         FROM members m JOIN groups g ON g.uuid = m.group_uuid
                         WHERE m.user_uuid = ?1 ORDER BY g.name, g.uuid",
                    )
                    .map_err(unavailable)?;
                let groups = statement
                    .query_map([user], group_from_row)
                    .and_then(Iterator::collect)
                    .map_err(unavailable)?;
                Ok(Reply::Groups { groups })
            }
            Read::ContactsOf { user } => {
                validate::uuid(user)?;
                acting_user(conn, user)?;
                // Both directions; a user who wrote to itself is its own contact.
                let users = users(
                    conn,
                    "SELECT uuid, username, tag FROM users WHERE uuid IN (
                         SELECT recipient FROM private_messages WHERE author = ?1
                         UNION SELECT author FROM private_messages WHERE recipient = ?1)
                     ORDER BY username, tag",
                    user,
                )?;
                Ok(Reply::Users { users })
            }
        }
    }
    /// Up to `limit` log entries after entry `after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn entries_since(&self, after: u64, limit: usize) -> Result<Vec<WireEntry>, StoreError> {
        read_entries(&self.conn, after, limit).map_err(sqlite_error(&self.path))
    }

    /// [`Store::entries_since`], with the position of entry `after` (the log-matching check's
    /// `prev`). `after` is raised to the base if below it.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] if `after` is beyond the log.
    pub fn entries_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Pos, Vec<WireEntry>), StoreError> {
        let after = after.max(self.base.seq);
        let prev = Pos::new(self.epoch_at(after)?, after);
        Ok((prev, self.entries_since(after, limit)?))
    }

    /// The applied state, whole, read in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for a row that does not read back.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let sqlite = sqlite_error(&self.path);
        // A read transaction: every table from the same moment.
        let tx = self.conn.unchecked_transaction().map_err(sqlite)?;
        let users = collect(
            &tx,
            "SELECT uuid, username, tag, password_hash, generation FROM users ORDER BY uuid",
            |row| {
                Ok(UserRow {
                    user: user_from_row(row)?,
                    password_hash: row.get(3)?,
                    generation: column_u64(row, 4)?,
                })
            },
        )
        .map_err(sqlite)?;
        let groups = collect(
            &tx,
            "SELECT uuid, name, creator FROM groups ORDER BY uuid",
            group_from_row,
        )
        .map_err(sqlite)?;
        let members = collect(
            &tx,
            "SELECT group_uuid, user_uuid FROM members ORDER BY group_uuid, user_uuid",
            |row| {
                Ok(MemberRow {
                    group: row.get(0)?,
                    user: row.get(1)?,
                })
            },
        )
        .map_err(sqlite)?;
        let private_messages = message_rows(
            &tx,
            "SELECT seq, recipient, uuid, author, content, sent_at
             FROM private_messages ORDER BY seq",
        )
        .map_err(sqlite)?
        .into_iter()
        .map(|(seq, to, message)| PrivateMessageRow { seq, to, message })
        .collect();
        let group_messages = message_rows(
            &tx,
            "SELECT seq, group_uuid, uuid, author, content, sent_at
             FROM group_messages ORDER BY seq",
        )
        .map_err(sqlite)?
        .into_iter()
        .map(|(seq, group, message)| GroupMessageRow {
            seq,
            group,
            message,
        })
        .collect();
        let replies = collect(
            &tx,
            "SELECT key, seq, answer FROM replies ORDER BY key",
            |row| {
                Ok(ReplyRow {
                    key: row.get(0)?,
                    seq: column_u64(row, 1)?,
                    answer: row.get(2)?,
                })
            },
        )
        .map_err(sqlite)?;
        Ok(Snapshot {
            base: self.applied_pos()?,
            users,
            groups,
            members,
            private_messages,
            group_messages,
            replies,
        })
    }

    /// Replaces the applied state with `snapshot` and empties the log, which now starts at the
    /// snapshot's base, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if its rows do not fit the schema (nothing changes).
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        // Children before parents, so the foreign keys hold at every step.
        tx.execute_batch(
            "DELETE FROM group_messages; DELETE FROM members; DELETE FROM private_messages;
             DELETE FROM groups; DELETE FROM users; DELETE FROM replies; DELETE FROM log;",
        )
        .map_err(sqlite)?;
        for row in &snapshot.users {
            insert_user(&tx, &row.user, &row.password_hash, row.generation).map_err(sqlite)?;
        }
        for group in &snapshot.groups {
            insert_group(&tx, group).map_err(sqlite)?;
        }
        for row in &snapshot.members {
            insert_member(&tx, &row.group, &row.user).map_err(sqlite)?;
        }
        for row in &snapshot.private_messages {
            insert_private_message(&tx, int(row.seq)?, &row.to, &row.message).map_err(sqlite)?;
        }
        for row in &snapshot.group_messages {
            insert_group_message(&tx, int(row.seq)?, &row.group, &row.message).map_err(sqlite)?;
        }
        for row in &snapshot.replies {
            tx.execute(
                "INSERT INTO replies (key, seq, answer) VALUES (?1, ?2, ?3)",
                params![row.key, int(row.seq)?, row.answer],
            )
            .map_err(sqlite)?;
        }
        let base = snapshot.base;
        set_meta(&tx, "base_epoch", base.epoch).map_err(sqlite)?;
        set_meta(&tx, "base_seq", base.seq).map_err(sqlite)?;
        set_meta(&tx, "applied", base.seq).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        self.base = base;
        self.last = base.seq;
        self.applied = base.seq;
        Ok(())
    }

    /// The one-node shortcut: `write` becomes entry `last_seq() + 1` of `epoch` and is applied
    /// at once, in one transaction; a refused write leaves no entry. Returns the reply and the
    /// entry.
    ///
    /// Checks come in this order: the acting user exists (401), the values follow their rules
    /// (422; 404 for an id that is not a UUID), the target exists (404), the acting user may do
    /// this (403), it does not exist yet (409).
    ///
    /// # Errors
    /// The refusal, or [`AppError::Unavailable`] if the database fails or holds entries not
    /// applied yet (a node of a larger lab: its data plane decides what commits).
    pub fn execute(
        &mut self,
        write: &Write,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Result<(Reply, WireEntry), AppError> {
        self.execute_with_key(write, None, epoch, now)
    }

    /// [`Store::execute`] with an idempotency key: a key applied before answers as it did then,
    /// and nothing is appended.
    ///
    /// # Errors
    /// As [`Store::execute`].
    pub fn execute_with_key(
        &mut self,
        write: &Write,
        key: Option<&str>,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Result<(Reply, WireEntry), AppError> {
        if let Some(key) = key {
            let first: Option<(String, i64)> = self
                .conn
                .query_row(
                    "SELECT answer, seq FROM replies WHERE key = ?1",
                    [key],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            if let Some((answer, seq)) = first {
                let outcome: Outcome = serde_json::from_str(&answer).map_err(unavailable)?;
                let seq = u64::try_from(seq).map_err(unavailable)?;
                let entry = match self.entries_since(seq - 1, 1).map_err(unavailable)?.pop() {
                    Some(entry) if entry.seq == seq => entry,
                    // Below the base (a snapshot replaced that part of the log): the base holds
                    // the write, and is a later position.
                    _ => WireEntry {
                        epoch: self.base.epoch,
                        seq: self.base.seq,
                        key: Some(key.to_string()),
                        body: String::new(),
                    },
                };
                return outcome.map(|reply| (reply, entry));
            }
        }
        if self.applied != self.last {
            return Err(AppError::Unavailable(format!(
                "the log holds entries {}..={} not applied yet",
                self.applied + 1,
                self.last
            )));
        }
        let command = Command {
            write: write.clone(),
            sent_at: timestamp(now)?,
        };
        let seq = self.last + 1;
        let entry = WireEntry {
            epoch,
            seq,
            key: key.map(str::to_string),
            body: serde_json::to_string(&command).map_err(unavailable)?,
        };
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        tx.execute(
            "INSERT INTO log (seq, epoch, key, body) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, epoch as i64, entry.key, entry.body],
        )
        .map_err(unavailable)?;
        let answer = apply_entry(&mut tx, &entry, &self.path).map_err(unavailable)?;
        let outcome: Outcome = serde_json::from_str(&answer).map_err(unavailable)?;
        // A refusal returns here, and dropping `tx` rolls the entry back.
        let reply = outcome?;
        set_meta(&tx, "applied", seq).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        self.last = seq;
        self.applied = seq;
        Ok((reply, entry))
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

    /// A canonical text of every row of the applied state (the answers kept for keys and how far
    /// it is applied included; the log not: it may hold a tail not committed yet), each table in
    /// primary-key order: two databases hold the same state exactly when their dumps are equal.
    ///
    /// One header line per table (`# users: uuid, username, tag, password_hash`), then one line
    /// per row: the table's name and the row's values as a JSON array.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn dump(&self) -> Result<String, StoreError> {
        let sqlite = sqlite_error(&self.path);
        let mut out = String::new();
        for (table, order) in TABLES {
            let mut statement = self
                .conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
                .map_err(sqlite)?;
            let columns = statement.column_names().collect::<Vec<_>>().join(", ");
            let name = table.split(' ').next().unwrap_or(table);
            out.push_str(&format!("# {name}: {columns}\n"));
            let width = statement.column_count();
            let mut rows = statement.query([]).map_err(sqlite)?;
            while let Some(row) = rows.next().map_err(sqlite)? {
                let values = (0..width)
                    .map(|i| row.get_ref(i).map(json_value))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sqlite)?;
                out.push_str(name);
                out.push(' ');
                out.push_str(&serde_json::Value::Array(values).to_string());
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// Apply one committed entry inside `tx`; its answer. An entry whose key was applied before
/// answers as that one did; a refused write answers its refusal and changes nothing. Only a
/// storage failure is an error (and aborts the whole batch).
fn apply_entry(
    tx: &mut rusqlite::Transaction<'_>,
    entry: &WireEntry,
    path: &Path,
) -> Result<String, StoreError> {
    let sqlite = sqlite_error(path);
    if entry.body.is_empty() {
        return Ok("null".to_string()); // a new writer's epoch-start entry
    }
    if let Some(key) = &entry.key {
        let first: Option<String> = tx
            .query_row("SELECT answer FROM replies WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite)?;
        if let Some(answer) = first {
            return Ok(answer); // a retry: the first attempt's answer, no second effect
        }
    }
    let outcome: Outcome = match serde_json::from_str::<Command>(&entry.body) {
        Err(error) => Err(AppError::Malformed(format!(
            "log entry {} is not a chat command: {error}",
            entry.seq
        ))),
        Ok(command) => {
            // A savepoint per entry: a refused change rolls back alone.
            let savepoint = tx.savepoint().map_err(sqlite)?;
            let ids = Ids::new(entry.epoch, entry.seq);
            match decide(&savepoint, &command.write, &command.sent_at, &ids) {
                // Storage trouble is not an answer: the batch fails, to be tried again.
                Err(AppError::Unavailable(why)) => {
                    return Err(StoreError::Corrupt(format!(
                        "applying entry {}: {why}",
                        entry.seq
                    )))
                }
                Err(refusal) => Err(refusal),
                Ok((reply, change)) => match apply_change(&savepoint, entry.seq, &change) {
                    Ok(()) => {
                        savepoint.commit().map_err(sqlite)?;
                        Ok(reply)
                    }
                    // The same on every node: an answer, not a failure.
                    Err(error)
                        if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
                    {
                        Err(AppError::Conflict(format!(
                            "the change does not fit the data: {error}"
                        )))
                    }
                    Err(error) => return Err(sqlite(error)),
                },
            }
        }
    };
    let answer = serde_json::to_string(&outcome).expect("outcomes serialize");
    if let Some(key) = &entry.key {
        tx.execute(
            "INSERT INTO replies (key, seq, answer) VALUES (?1, ?2, ?3)",
            params![key, int(entry.seq)?, answer],
        )
        .map_err(sqlite)?;
    }
    Ok(answer)
}

/// The mode of the database and its companions: read and write for this user only.
const PRIVATE_MODE: u32 = 0o600;

/// Creates the database file at `path` with mode [`PRIVATE_MODE`] if it does not exist (SQLite
/// then gives its `-wal`, `-shm` and `-journal` files the same mode), and narrows the file and
/// any companion already there to it (a file of an older version of this program).
fn private_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(PRIVATE_MODE)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            let file = PathBuf::from(name);
            match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o777 != PRIVATE_MODE => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_MODE))?
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Up to `limit` entries after `after`, in order.
fn read_entries(conn: &Connection, after: u64, limit: usize) -> rusqlite::Result<Vec<WireEntry>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(
        "SELECT seq, epoch, key, body FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = statement
        .query_map(params![after, limit], |row| {
            Ok(WireEntry {
                seq: column_u64(row, 0)?,
                epoch: column_u64(row, 1)?,
                key: row.get(2)?,
                body: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A number kept in `meta` (0 when absent).
fn meta_u64(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Keep a number in `meta`.
fn set_meta(conn: &Connection, key: &str, value: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value.to_string()],
    )?;
    Ok(())
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

    /// The database and its companions hold password hashes and private messages: this user's
    /// only (the usual umask, 022, would leave them world-readable), and a file left readable
    /// by an older version is narrowed.
    #[cfg(unix)]
    #[test]
    fn database_files_are_private_to_their_user() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("node.db");
        let mut store = Store::open(&db).unwrap();
        let write = Write::Register {
            username: "alice".into(),
            tag: "123".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        };
        store.execute(&write, 1, OffsetDateTime::now_utc()).unwrap();
        let files = ["node.db", "node.db-wal", "node.db-shm"].map(|name| dir.path().join(name));
        for file in &files {
            assert!(
                file.exists(),
                "{} exists while the store is open",
                file.display()
            );
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        drop(store);

        // A database from before: world-readable files are narrowed when it is opened.
        for file in &files {
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let store = Store::open(&db).unwrap();
        assert_eq!(store.last_seq(), 1);
        for file in files.iter().filter(|file| file.exists()) {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }

    #[test]
    fn ids_follow_from_the_entry_and_never_repeat() {
        let a = Ids::new(3, 41);
        let (first, second) = (a.next(), a.next());
        assert_ne!(first, second);
        assert_eq!(
            Ids::new(3, 41).next(),
            first,
            "the same entry, the same ids"
        );
        assert_ne!(Ids::new(3, 42).next(), first);
        assert_ne!(Ids::new(4, 41).next(), first);
        let parsed = uuid::Uuid::parse_str(&first).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
        validate::uuid(&first).unwrap();
    }

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let instant = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(timestamp(instant).unwrap(), "1970-01-01T00:00:00.000Z");
        let instant = instant + time::Duration::milliseconds(1_700_000_000_042);
        assert_eq!(timestamp(instant).unwrap(), "2023-11-14T22:13:20.042Z");
    }
}
