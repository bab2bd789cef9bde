//! The chat's database: one SQLite file holding the chat's tables and the replication log
//! (SPEC §4).
//!
//! Two ways in, one for each role:
//!
//! - the **writer** calls [`Store::execute`]: it checks a [`Write`] against the database, turns it
//!   into a concrete [`Change`] (fresh uuids, the acceptance time), applies it and appends it to the
//!   log as the next [`Entry`], all in one transaction;
//! - a **persistence** replica calls [`Store::apply`] with the writer's entries, in order: the same
//!   change applied by the same code, appended under the same sequence number.
//!
//! Ordering contract: `execute` and `apply` return only after the transaction has committed with
//! `synchronous=FULL`, so an entry they report is durable on this node; the caller may acknowledge
//! it (or report it to the writer) from then on, never before.
//!
//! Since both roles run the same `apply_change` on the same sequence of changes, every copy of the
//! database holds the same rows ([`Store::dump`] makes that checkable). A replica that starts from
//! nothing copies a [`Snapshot`] instead of replaying the whole history one entry at a time.
//!
//! One [`Store`] owns its file: two stores on the same file are not supported.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

use crate::ops::{
    AppError, Change, ChatMessage, Entry, Group, GroupId, Read, Reply, User, UserId, Write,
};
use crate::{password, validate};

/// How long a statement waits for a lock held by another connection before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version: `MIGRATIONS[i]` takes a file from `user_version` `i` to
/// `i + 1`. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1];

/// The schema version this program writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the chat's tables, the replication log and a key-value table.
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

/// Every table with the columns that order its rows (its primary key), for [`Store::dump`].
const TABLES: &[(&str, &str)] = &[
    ("users", "uuid"),
    ("groups", "uuid"),
    ("members", "group_uuid, user_uuid"),
    ("private_messages", "seq"),
    ("group_messages", "seq"),
    ("log", "seq"),
    ("meta", "key"),
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
    /// An entry arrived out of order: the log holds entries up to `expected - 1`, not `got - 1`.
    #[error("replication log gap: expected entry {expected}, got entry {got}")]
    Gap {
        /// The sequence number due next (`last_seq() + 1`).
        expected: u64,
        /// The sequence number that arrived.
        got: u64,
    },
    /// A different entry is already stored at `seq`: this copy and the entry's source disagree.
    #[error("replication log diverged at entry {seq}: a different change is stored there")]
    Diverged {
        /// The sequence number where the logs differ.
        seq: u64,
    },
    /// A stored change, a stored row or a snapshot could not be read back.
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

/// Every row of every table, the log included: enough to start a replica from nothing.
///
/// Rows are listed in primary-key order, as [`Store::snapshot`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
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
    /// The whole replication log, from entry 1.
    pub log: Vec<Entry>,
    /// The `meta` table.
    pub meta: BTreeMap<String, String>,
}

impl Snapshot {
    /// The sequence number of the last entry in the snapshot's log (0 if empty).
    pub fn last_seq(&self) -> u64 {
        self.log.last().map_or(0, |entry| entry.seq)
    }
}

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// The user.
    pub user: User,
    /// Its password hash (PHC string).
    pub password_hash: String,
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

/// The chat's database and replication log in one SQLite file.
#[derive(Debug)]
pub struct Store {
    /// The open connection (WAL, `synchronous=FULL`, foreign keys on).
    conn: Connection,
    /// The file, for error messages.
    path: PathBuf,
    /// The sequence number of the last entry in the log (0 if empty), kept in step with each
    /// commit.
    last_seq: u64,
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// [`SCHEMA_VERSION`].
    ///
    /// The connection uses WAL journaling (readers never block the writer), `synchronous=FULL`
    /// (a commit returns only once it is on disk: a write is acknowledged only when durable),
    /// foreign keys, and a busy timeout.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if the file comes from a newer program (it is left untouched),
    /// [`StoreError::Sqlite`] if it cannot be opened or is not a database,
    /// [`StoreError::Corrupt`] if its log has holes.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sqlite = sqlite_error(&path);
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

        // Sequence numbers start at 1 and have no gaps; anything else is not our log.
        let (count, last): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(max(seq), 0) FROM log",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(sqlite)?;
        if count != last {
            return Err(StoreError::Corrupt(format!(
                "{}: the log holds {count} entries but ends at entry {last}",
                path.display()
            )));
        }
        let last_seq = u64::try_from(last)
            .map_err(|_| StoreError::Corrupt(format!("negative log sequence {last}")))?;
        Ok(Store {
            conn,
            path,
            last_seq,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence number of the last entry in the log; 0 for an empty log.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The writer's path: checks `write`, turns it into a [`Change`], applies it and appends it to
    /// the log as entry `last_seq() + 1` of `epoch`, in one transaction. Messages get
    /// `sent_at = now` (RFC 3339, UTC, milliseconds).
    ///
    /// Checks come in this order: the acting user exists (401), the values follow their rules
    /// (422; 404 for an id that is not a UUID), the target exists (404), the acting user may do
    /// this (403), it does not exist yet (409). A refused write changes nothing and appends
    /// nothing.
    ///
    /// Returns once the transaction is durable (see the module's ordering contract).
    ///
    /// # Errors
    /// The refusal, or [`AppError::Unavailable`] if the database fails.
    pub fn execute(
        &mut self,
        write: &Write,
        epoch: u64,
        now: OffsetDateTime,
    ) -> Result<(Reply, Entry), AppError> {
        let sent_at = timestamp(now)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        // Deciding inside the transaction means the checks and the change see the same database.
        // Returning early drops `tx`, which rolls it back.
        let (reply, change) = decide(&tx, write, &sent_at)?;
        let seq = last_seq_in(&tx).map_err(unavailable)? + 1;
        let entry = Entry { epoch, seq, change };
        apply_change(&tx, seq, &entry.change).map_err(|error| match write {
            // The check in `decide` already saw no such user; this is the same answer, should the
            // index disagree.
            Write::Register { username, tag, .. }
                if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
            {
                AppError::Conflict(format!("user {username}#{tag} already exists"))
            }
            _ => unavailable(error),
        })?;
        append(&tx, &entry).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        self.last_seq = seq;
        Ok((reply, entry))
    }

    /// The replica's path: applies the writer's `entry` and appends it, in one transaction.
    ///
    /// The entry must be the next one (`entry.seq == last_seq() + 1`). An entry already in the
    /// log, with the same epoch and change, is a harmless duplicate (a resend) and changes
    /// nothing.
    ///
    /// # Errors
    /// [`StoreError::Gap`] if entries are missing before this one (nothing changes; fetch them
    /// with the writer's [`Store::entries_since`]), [`StoreError::Diverged`] if a different entry
    /// is stored at its seq, [`StoreError::Sqlite`] if the change does not apply (for example a
    /// member added to a group this database does not hold).
    pub fn apply(&mut self, entry: &Entry) -> Result<(), StoreError> {
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let last = last_seq_in(&tx).map_err(sqlite)?;
        if (1..=last).contains(&entry.seq) {
            let stored = entry_at(&tx, entry.seq).map_err(sqlite)??;
            return if stored.as_ref() == Some(entry) {
                Ok(())
            } else {
                Err(StoreError::Diverged { seq: entry.seq })
            };
        }
        if entry.seq != last + 1 {
            return Err(StoreError::Gap {
                expected: last + 1,
                got: entry.seq,
            });
        }
        apply_change(&tx, entry.seq, &entry.change).map_err(sqlite)?;
        append(&tx, entry).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        self.last_seq = entry.seq;
        Ok(())
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
                Ok(Reply::Credentials {
                    user,
                    password_hash,
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

    /// Up to `limit` log entries with `seq > after`, oldest first: what a replica that holds
    /// entries up to `after` is missing.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for a stored change that does not parse.
    pub fn entries_since(&self, after: u64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sqlite = sqlite_error(&self.path);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT seq, epoch, change FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sqlite)?;
        let rows = statement
            .query_map(params![after, limit], raw_entry)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(sqlite)?;
        rows.into_iter().map(parse_entry).collect()
    }

    /// Every row of every table and the whole log, read in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for a row that does not read back.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let sqlite = sqlite_error(&self.path);
        // A read transaction: every table from the same moment.
        let tx = self.conn.unchecked_transaction().map_err(sqlite)?;

        let users = collect(
            &tx,
            "SELECT uuid, username, tag, password_hash FROM users ORDER BY uuid",
            |row| {
                Ok(UserRow {
                    user: user_from_row(row)?,
                    password_hash: row.get(3)?,
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
        .map_err(sqlite)??
        .into_iter()
        .map(|(seq, to, message)| PrivateMessageRow { seq, to, message })
        .collect();
        let group_messages = message_rows(
            &tx,
            "SELECT seq, group_uuid, uuid, author, content, sent_at
             FROM group_messages ORDER BY seq",
        )
        .map_err(sqlite)??
        .into_iter()
        .map(|(seq, group, message)| GroupMessageRow {
            seq,
            group,
            message,
        })
        .collect();
        let log = collect(
            &tx,
            "SELECT seq, epoch, change FROM log ORDER BY seq",
            raw_entry,
        )
        .map_err(sqlite)?
        .into_iter()
        .map(parse_entry)
        .collect::<Result<_, _>>()?;
        let meta = collect(&tx, "SELECT key, value FROM meta ORDER BY key", |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(sqlite)?
        .into_iter()
        .collect();
        Ok(Snapshot {
            users,
            groups,
            members,
            private_messages,
            group_messages,
            log,
            meta,
        })
    }

    /// Replaces the whole content of this database with `snapshot`, in one transaction: after
    /// it, `last_seq()` is the snapshot's and every query answers as on the snapshot's source.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the snapshot's log does not run 1, 2, 3… (nothing changes),
    /// [`StoreError::Sqlite`] if its rows do not fit the schema (nothing changes).
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        for (position, entry) in snapshot.log.iter().enumerate() {
            if entry.seq != position as u64 + 1 {
                return Err(StoreError::Corrupt(format!(
                    "snapshot log holds entry {} at position {}",
                    entry.seq,
                    position + 1
                )));
            }
        }
        let int = |value: u64| {
            i64::try_from(value)
                .map_err(|_| StoreError::Corrupt(format!("seq {value} out of range")))
        };
        let sqlite = sqlite_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        // Children before parents, so the foreign keys hold at every step.
        tx.execute_batch(
            "DELETE FROM group_messages; DELETE FROM members; DELETE FROM private_messages;
             DELETE FROM groups; DELETE FROM users; DELETE FROM log; DELETE FROM meta;",
        )
        .map_err(sqlite)?;
        for row in &snapshot.users {
            insert_user(&tx, &row.user, &row.password_hash).map_err(sqlite)?;
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
        for entry in &snapshot.log {
            append(&tx, entry).map_err(sqlite)?;
        }
        for (key, value) in &snapshot.meta {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map_err(sqlite)?;
        }
        tx.commit().map_err(sqlite)?;
        self.last_seq = snapshot.last_seq();
        Ok(())
    }

    /// A canonical text of every row of every table (the log included), each table in
    /// primary-key order: two databases hold the same rows exactly when their dumps are equal.
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
            out.push_str(&format!("# {table}: {columns}\n"));
            let width = statement.column_count();
            let mut rows = statement.query([]).map_err(sqlite)?;
            while let Some(row) = rows.next().map_err(sqlite)? {
                let values = (0..width)
                    .map(|i| row.get_ref(i).map(json_value))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sqlite)?;
                out.push_str(table);
                out.push(' ');
                out.push_str(&serde_json::Value::Array(values).to_string());
                out.push('\n');
            }
        }
        Ok(out)
    }
}

// ----------------------------------------------------------------------------------------------
// The writer's decisions: a `Write` checked against the database becomes a `Change`.
// ----------------------------------------------------------------------------------------------

/// Checks `write` against the database and decides its reply and its change, without changing
/// anything.
fn decide(conn: &Connection, write: &Write, sent_at: &str) -> Result<(Reply, Change), AppError> {
    match write {
        Write::Register {
            username,
            tag,
            password_hash,
        } => {
            validate::username(username)?;
            validate::tag(tag)?;
            // The input node hashes; a plain password must never be stored by mistake.
            if !password::is_phc(password_hash) {
                return Err(AppError::Malformed(
                    "password_hash must be a PHC string (see labctl_chat::password::hash)"
                        .to_string(),
                ));
            }
            if user_by_name(conn, username, tag)?.is_some() {
                return Err(AppError::Conflict(format!(
                    "user {username}#{tag} already exists"
                )));
            }
            let user = User {
                uuid: new_id(),
                username: username.clone(),
                tag: tag.clone(),
            };
            Ok((
                Reply::User { user: user.clone() },
                Change::UserAdded {
                    user,
                    password_hash: password_hash.clone(),
                },
            ))
        }
        Write::DeleteUser { uuid, requester } => {
            let requester = acting_user(conn, requester)?;
            validate::uuid(uuid)?;
            let user = user_by_id(conn, uuid)?.ok_or_else(|| no_user_id(uuid))?;
            if user.uuid != requester.uuid {
                return Err(AppError::Forbidden(format!(
                    "only {}#{} may delete their user",
                    user.username, user.tag
                )));
            }
            Ok((Reply::Deleted, Change::UserDeleted { uuid: user.uuid }))
        }
        Write::SendPrivate {
            from,
            username,
            tag,
            content,
        } => {
            let author = acting_user(conn, from)?;
            validate::content(content)?;
            // Sending to oneself is allowed (notes to self).
            let (recipient, _) = named_user(conn, username, tag)?;
            let message = new_message(&author, content, sent_at);
            Ok((
                Reply::Message {
                    message: message.clone(),
                },
                Change::PrivateMessageAdded {
                    to: recipient.uuid,
                    message,
                },
            ))
        }
        Write::CreateGroup { name, creator } => {
            let creator = acting_user(conn, creator)?;
            validate::group_name(name)?;
            let group = Group {
                uuid: new_id(),
                name: name.trim().to_string(),
                creator: creator.uuid,
            };
            Ok((
                Reply::Group {
                    group: group.clone(),
                },
                Change::GroupAdded { group },
            ))
        }
        Write::DeleteGroup { group, requester } => {
            let requester = acting_user(conn, requester)?;
            let group = existing_group(conn, group)?;
            if group.creator != requester.uuid {
                return Err(AppError::Forbidden(format!(
                    "only the creator of group {:?} may delete it",
                    group.name
                )));
            }
            Ok((Reply::Deleted, Change::GroupDeleted { uuid: group.uuid }))
        }
        Write::AddMember {
            group,
            username,
            tag,
            requester,
        } => {
            let requester = acting_user(conn, requester)?;
            validate::uuid(group)?;
            validate::username(username)?;
            validate::tag(tag)?;
            let group = existing_group(conn, group)?;
            if group.creator != requester.uuid {
                return Err(AppError::Forbidden(format!(
                    "only the creator of group {:?} may add members",
                    group.name
                )));
            }
            let (user, _) = named_user(conn, username, tag)?;
            if is_member(conn, &group.uuid, &user.uuid)? {
                return Err(AppError::Conflict(format!(
                    "{username}#{tag} is already a member of group {:?}",
                    group.name
                )));
            }
            Ok((
                Reply::User { user: user.clone() },
                Change::MemberAdded {
                    group: group.uuid,
                    user: user.uuid,
                },
            ))
        }
        Write::RemoveMember {
            group,
            user,
            requester,
        } => {
            let requester = acting_user(conn, requester)?;
            validate::uuid(group)?;
            validate::uuid(user)?;
            let group = existing_group(conn, group)?;
            if requester.uuid != group.creator && requester.uuid != *user {
                return Err(AppError::Forbidden(format!(
                    "only the creator of group {:?} or the member itself may remove a member",
                    group.name
                )));
            }
            if !is_member(conn, &group.uuid, user)? {
                return Err(AppError::NotFound(format!(
                    "user {user} is not a member of group {:?}",
                    group.name
                )));
            }
            Ok((
                Reply::Deleted,
                Change::MemberRemoved {
                    group: group.uuid,
                    user: user.clone(),
                },
            ))
        }
        Write::SendGroup {
            group,
            from,
            content,
        } => {
            let author = acting_user(conn, from)?;
            validate::uuid(group)?;
            validate::content(content)?;
            let group = existing_group(conn, group)?;
            member_only(conn, &group, &author, "send to it")?;
            let message = new_message(&author, content, sent_at);
            Ok((
                Reply::Message {
                    message: message.clone(),
                },
                Change::GroupMessageAdded {
                    group: group.uuid,
                    message,
                },
            ))
        }
    }
}

/// A fresh id: a random (v4) UUID, hyphenated, lowercase.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new message by `author`.
fn new_message(author: &User, content: &str, sent_at: &str) -> ChatMessage {
    ChatMessage {
        uuid: new_id(),
        author: author.uuid.clone(),
        content: content.to_string(),
        sent_at: sent_at.to_string(),
    }
}

/// `now` as RFC 3339 in UTC with milliseconds, fixed width (`2024-05-01T12:00:00.000Z`).
fn timestamp(now: OffsetDateTime) -> Result<String, AppError> {
    let utc = now
        .checked_to_offset(UtcOffset::UTC)
        .filter(|utc| (0..=9999).contains(&utc.year()))
        .ok_or_else(|| AppError::Unavailable(format!("the clock is out of range: {now}")))?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    ))
}

// ----------------------------------------------------------------------------------------------
// Applying changes: the one code path shared by the writer and the replicas.
// ----------------------------------------------------------------------------------------------

/// Applies `change`, made by log entry `seq`, to the tables (not the log). Deletions cascade by
/// hand, children first, as `Change`'s documentation says.
fn apply_change(conn: &Connection, seq: u64, change: &Change) -> rusqlite::Result<()> {
    let seq = i64::try_from(seq).map_err(|_| out_of_range(seq))?;
    match change {
        Change::UserAdded {
            user,
            password_hash,
        } => {
            insert_user(conn, user, password_hash)?;
        }
        Change::UserDeleted { uuid } => {
            // The groups it created go, with their members and messages; its memberships
            // elsewhere go; its messages elsewhere stay.
            conn.execute(
                "DELETE FROM group_messages
                 WHERE group_uuid IN (SELECT uuid FROM groups WHERE creator = ?1)",
                [uuid],
            )?;
            conn.execute(
                "DELETE FROM members
                 WHERE group_uuid IN (SELECT uuid FROM groups WHERE creator = ?1)
                    OR user_uuid = ?1",
                [uuid],
            )?;
            conn.execute("DELETE FROM groups WHERE creator = ?1", [uuid])?;
            conn.execute("DELETE FROM users WHERE uuid = ?1", [uuid])?;
        }
        Change::PrivateMessageAdded { to, message } => {
            insert_private_message(conn, seq, to, message)?;
        }
        Change::GroupAdded { group } => {
            insert_group(conn, group)?;
            // The creator is the first member.
            insert_member(conn, &group.uuid, &group.creator)?;
        }
        Change::GroupDeleted { uuid } => {
            conn.execute("DELETE FROM group_messages WHERE group_uuid = ?1", [uuid])?;
            conn.execute("DELETE FROM members WHERE group_uuid = ?1", [uuid])?;
            conn.execute("DELETE FROM groups WHERE uuid = ?1", [uuid])?;
        }
        Change::MemberAdded { group, user } => {
            insert_member(conn, group, user)?;
        }
        Change::MemberRemoved { group, user } => {
            conn.execute(
                "DELETE FROM members WHERE group_uuid = ?1 AND user_uuid = ?2",
                params![group, user],
            )?;
        }
        Change::GroupMessageAdded { group, message } => {
            insert_group_message(conn, seq, group, message)?;
        }
    }
    Ok(())
}

/// Appends `entry` to the log, its change as JSON.
fn append(conn: &Connection, entry: &Entry) -> rusqlite::Result<()> {
    let seq = i64::try_from(entry.seq).map_err(|_| out_of_range(entry.seq))?;
    let epoch = i64::try_from(entry.epoch).map_err(|_| out_of_range(entry.epoch))?;
    let change = serde_json::to_string(&entry.change)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    conn.execute(
        "INSERT INTO log (seq, epoch, change) VALUES (?1, ?2, ?3)",
        params![seq, epoch, change],
    )?;
    Ok(())
}

/// The error for a `u64` that SQLite's signed integers cannot hold.
fn out_of_range(value: u64) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(format!("{value} does not fit in an i64").into())
}

/// Inserts a row of `users`.
fn insert_user(conn: &Connection, user: &User, password_hash: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO users (uuid, username, tag, password_hash) VALUES (?1, ?2, ?3, ?4)",
        params![user.uuid, user.username, user.tag, password_hash],
    )?;
    Ok(())
}

/// Inserts a row of `groups` (not its creator's membership).
fn insert_group(conn: &Connection, group: &Group) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO groups (uuid, name, creator) VALUES (?1, ?2, ?3)",
        params![group.uuid, group.name, group.creator],
    )?;
    Ok(())
}

/// Inserts a row of `members`.
fn insert_member(conn: &Connection, group: &str, user: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO members (group_uuid, user_uuid) VALUES (?1, ?2)",
        params![group, user],
    )?;
    Ok(())
}

/// Inserts a row of `private_messages`.
fn insert_private_message(
    conn: &Connection,
    seq: i64,
    to: &str,
    message: &ChatMessage,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO private_messages (seq, uuid, author, recipient, content, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            seq,
            message.uuid,
            message.author,
            to,
            message.content,
            message.sent_at
        ],
    )?;
    Ok(())
}

/// Inserts a row of `group_messages`.
fn insert_group_message(
    conn: &Connection,
    seq: i64,
    group: &str,
    message: &ChatMessage,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO group_messages (seq, uuid, group_uuid, author, content, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            seq,
            message.uuid,
            group,
            message.author,
            message.content,
            message.sent_at
        ],
    )?;
    Ok(())
}

/// The last sequence number in the log, read inside the current transaction.
fn last_seq_in(conn: &Connection) -> rusqlite::Result<u64> {
    let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM log", [], |row| {
        row.get(0)
    })?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// A log row as stored: seq, epoch, change JSON.
type RawEntry = (i64, i64, String);

/// Reads a log row.
fn raw_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEntry> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

/// Turns a stored log row back into an [`Entry`].
fn parse_entry((seq, epoch, change): RawEntry) -> Result<Entry, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("log entry {seq}: {what}"));
    Ok(Entry {
        seq: u64::try_from(seq).map_err(|_| corrupt("negative seq".to_string()))?,
        epoch: u64::try_from(epoch).map_err(|_| corrupt(format!("negative epoch {epoch}")))?,
        change: serde_json::from_str(&change)
            .map_err(|error| corrupt(format!("unreadable change: {error}")))?,
    })
}

/// The stored entry at `seq`, if any.
fn entry_at(conn: &Connection, seq: u64) -> rusqlite::Result<Result<Option<Entry>, StoreError>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(Ok(None));
    };
    let raw = conn
        .query_row(
            "SELECT seq, epoch, change FROM log WHERE seq = ?1",
            [seq],
            raw_entry,
        )
        .optional()?;
    Ok(raw.map(parse_entry).transpose())
}

/// Wraps a SQLite error with the store's file, `path`.
fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Collects every row of `sql` (no parameters).
fn collect<T>(
    conn: &Connection,
    sql: &str,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], read)?;
    rows.collect()
}

/// A row of a message table: its log entry, the conversation it belongs to (the recipient or
/// the group) and the message.
type MessageRow = (u64, String, ChatMessage);

/// Every row of a message table, for [`Store::snapshot`]: `sql` selects the row's `seq`, the
/// conversation, then the message's four columns.
fn message_rows(
    conn: &Connection,
    sql: &str,
) -> rusqlite::Result<Result<Vec<MessageRow>, StoreError>> {
    let rows = collect(conn, sql, |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get(1)?,
            message_from_row(row, 2)?,
        ))
    })?;
    Ok(rows
        .into_iter()
        .map(|(seq, conversation, message)| {
            let seq = u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("negative seq {seq}")))?;
            Ok((seq, conversation, message))
        })
        .collect())
}

/// A column value as JSON, for [`Store::dump`].
fn json_value(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => f.into(),
        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned().into(),
        ValueRef::Blob(blob) => blob
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
            .into(),
    }
}

// ----------------------------------------------------------------------------------------------
// Lookups shared by the checks and the reads. Their errors are `AppError`s, ready to answer.
// ----------------------------------------------------------------------------------------------

/// A database error, as a client sees it.
fn unavailable(error: impl Display) -> AppError {
    AppError::Unavailable(format!("storage error: {error}"))
}

/// Reads a `User` from columns uuid, username, tag.
fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        uuid: row.get(0)?,
        username: row.get(1)?,
        tag: row.get(2)?,
    })
}

/// Reads a `Group` from columns uuid, name, creator.
fn group_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        uuid: row.get(0)?,
        name: row.get(1)?,
        creator: row.get(2)?,
    })
}

/// Reads a `ChatMessage` from columns uuid, author, content, sent_at starting at `first`.
fn message_from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        uuid: row.get(first)?,
        author: row.get(first + 1)?,
        content: row.get(first + 2)?,
        sent_at: row.get(first + 3)?,
    })
}

/// The user with id `uuid`, if any.
fn user_by_id(conn: &Connection, uuid: &str) -> Result<Option<User>, AppError> {
    conn.prepare_cached("SELECT uuid, username, tag FROM users WHERE uuid = ?1")
        .and_then(|mut statement| statement.query_row([uuid], user_from_row).optional())
        .map_err(unavailable)
}

/// The user `username#tag` and its password hash, if any.
fn user_by_name(
    conn: &Connection,
    username: &str,
    tag: &str,
) -> Result<Option<(User, String)>, AppError> {
    conn.prepare_cached(
        "SELECT uuid, username, tag, password_hash FROM users WHERE username = ?1 AND tag = ?2",
    )
    .and_then(|mut statement| {
        statement
            .query_row([username, tag], |row| {
                Ok((user_from_row(row)?, row.get(3)?))
            })
            .optional()
    })
    .map_err(unavailable)
}

/// The user `username#tag` (validated first) and its password hash, or 404.
fn named_user(conn: &Connection, username: &str, tag: &str) -> Result<(User, String), AppError> {
    validate::username(username)?;
    validate::tag(tag)?;
    user_by_name(conn, username, tag)?
        .ok_or_else(|| AppError::NotFound(format!("no user {username}#{tag}")))
}

/// The user doing something (the logged-in user), or 401: a session can outlive its user.
fn acting_user(conn: &Connection, uuid: &str) -> Result<User, AppError> {
    user_by_id(conn, uuid)?
        .ok_or_else(|| AppError::Unauthorized("your user no longer exists".to_string()))
}

/// The 404 for an unknown user id.
fn no_user_id(uuid: &str) -> AppError {
    AppError::NotFound(format!("no user with id {uuid}"))
}

/// The group `uuid` (validated first), or 404.
fn existing_group(conn: &Connection, uuid: &str) -> Result<Group, AppError> {
    validate::uuid(uuid)?;
    conn.prepare_cached("SELECT uuid, name, creator FROM groups WHERE uuid = ?1")
        .and_then(|mut statement| statement.query_row([uuid], group_from_row).optional())
        .map_err(unavailable)?
        .ok_or_else(|| AppError::NotFound(format!("no group with id {uuid}")))
}

/// Whether `user` is a member of `group`.
fn is_member(conn: &Connection, group: &str, user: &str) -> Result<bool, AppError> {
    conn.prepare_cached("SELECT 1 FROM members WHERE group_uuid = ?1 AND user_uuid = ?2")
        .and_then(|mut statement| statement.exists([group, user]))
        .map_err(unavailable)
}

/// 403 unless `user` is a member of `group`; `action` completes "only members may …".
fn member_only(
    conn: &Connection,
    group: &Group,
    user: &User,
    action: &str,
) -> Result<(), AppError> {
    if is_member(conn, &group.uuid, &user.uuid)? {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "only members of group {:?} may {action}",
            group.name
        )))
    }
}

/// The users selected by `sql`, a query of uuid, username, tag with one parameter.
fn users(conn: &Connection, sql: &str, parameter: &str) -> Result<Vec<User>, AppError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.query_map([parameter], user_from_row)?.collect())
        .map_err(unavailable)
}

/// The messages selected by `sql`, a query of uuid, author, content, sent_at.
fn messages(
    conn: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<ChatMessage>, AppError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map(parameters, |row| message_from_row(row, 0))?
                .collect()
        })
        .map_err(unavailable)
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

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let instant = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(timestamp(instant).unwrap(), "1970-01-01T00:00:00.000Z");
        let instant = instant + time::Duration::milliseconds(1_700_000_000_042);
        assert_eq!(timestamp(instant).unwrap(), "2023-11-14T22:13:20.042Z");
    }
}
