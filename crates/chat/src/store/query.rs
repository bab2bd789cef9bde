//! Reads: a [`Read`] answered from the applied state, by the store's own connection or by a
//! [`Reader`]'s.

use std::path::{Path, PathBuf};

use labctl_core::log::Pos;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::apply::epoch_at;
use super::rows::{
    acting_user, existing_group, generation_of, group_from_row, member_only, messages, named_user,
    no_user_id, unavailable, user_by_id, users,
};
use super::schema::{meta_u64, BUSY_TIMEOUT, STATEMENT_CACHE};
use super::tx::Tx;
use super::{Store, StoreError};
use crate::ops::{AppError, ChatMessage, Read, Reply, Window};
use crate::validate;

impl Store {
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
        answer(&self.conn, read)
    }
}

/// A read-only connection to a store's file, answering reads beside the store's own (writing)
/// connection: in WAL mode SQLite serves readers concurrently with the one writer, so a read
/// never waits for a write's fsync.
///
/// **What a reader sees.** Each [`Reader::query`] runs in one read transaction: it sees the
/// database as of the last commit before the transaction's first statement, whole, and nothing
/// committed after it, even if a write commits between two of its statements. The tables only
/// ever hold applied (committed) entries, so a reader sees committed state only, exactly as the
/// store's own connection would (SPEC §4). A read issued after the store reported an apply sees
/// that apply: its transaction begins after the commit.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    /// A reader of the store at `path`, which [`Store::open`] has opened (and migrated) before:
    /// a reader never creates or changes the file.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if the file cannot be opened read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sqlite = super::rows::sqlite_error(&path);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Reader { conn, path })
    }

    /// Makes this connection give up at once, rather than wait for the busy timeout, when the
    /// file is locked against readers (for a caller that must not block, such as an async task:
    /// the read then fails as unavailable, and can take another way).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] if SQLite refuses the setting.
    pub fn never_wait(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(super::rows::sqlite_error(&self.path))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers `read` if this copy's committed state holds `min`, the reader's last write
    /// (read-your-writes, SPEC §4): its applied log reaches `min.seq`, and the entry there (or
    /// the snapshot's base) is of `min.epoch`. That is the data plane's own rule for serving a
    /// read ([`labctl_core::plane`]), checked here on the very state the read sees, in the same
    /// read transaction. `None`: this copy does not hold it (or could not tell); the data plane
    /// must route the read.
    ///
    /// Whether this node may serve reads at all (its role in the tree) is the caller's to know.
    pub fn query_at(&self, read: &Read, min: Pos) -> Option<Result<Reply, AppError>> {
        let tx = Tx::read(&self.conn).ok()?;
        if !holds(&tx, min).ok()? {
            return None;
        }
        let reply = answer(&tx, read);
        tx.rollback().ok()?;
        Some(reply)
    }

    /// Answers a read, as [`Store::query`] does, in one read transaction (see [`Reader`]).
    ///
    /// # Errors
    /// The refusal, or [`AppError::Unavailable`] if the database fails.
    pub fn query(&self, read: &Read) -> Result<Reply, AppError> {
        // A deferred transaction takes its snapshot at the first statement and keeps it to the
        // end. (The reader is used by one thread at a time: it is `Send`, not `Sync`.)
        let tx = Tx::read(&self.conn).map_err(unavailable)?;
        let reply = answer(&tx, read);
        // Nothing was written: ending the transaction only lets the WAL be checkpointed past it.
        tx.rollback().map_err(unavailable)?;
        reply
    }
}

/// A private conversation's messages after `seq` ?3, the most recent ?4 (-1: all), newest
/// first: two range scans of the (author, recipient[, seq]) indexes, one per direction (the
/// second left out for a conversation with oneself), merged by seq. The limit is `?4 + 0`:
/// SQLite's planner looks at a bare bound limit, and so prepares the statement again at each
/// read; an expression it does not look into.
pub(super) const PRIVATE_CHAT: &str = "SELECT uuid, author, content, sent_at FROM (
         SELECT seq, uuid, author, content, sent_at FROM private_messages
         WHERE author = ?1 AND recipient = ?2 AND seq > ?3
         UNION ALL
         SELECT seq, uuid, author, content, sent_at FROM private_messages
         WHERE author = ?2 AND recipient = ?1 AND seq > ?3 AND ?1 <> ?2)
     ORDER BY seq DESC LIMIT ?4 + 0";

/// A group's messages after `seq` ?2, the most recent ?3 (-1: all), newest first, on the
/// (group_uuid, seq) index. The limit as in [`PRIVATE_CHAT`], and the group as `+?1`: with a
/// bare `?1` the planner estimates the rows of that very group (SQLite is built with STAT4), and
/// prepares the statement again for each group; the plan is the same either way.
pub(super) const GROUP_CHAT: &str = "SELECT uuid, author, content, sent_at FROM group_messages
     WHERE group_uuid = +?1 AND seq > ?2
     ORDER BY seq DESC LIMIT ?3 + 0";

/// Whether the state `conn` sees holds `min` (see [`Reader::query_at`]): the plane's rule for
/// serving a read, on the applied position and the log this transaction sees.
fn holds(conn: &Connection, min: Pos) -> rusqlite::Result<bool> {
    if min.seq == 0 {
        return Ok(true);
    }
    if meta_u64(conn, "applied")? < min.seq {
        return Ok(false);
    }
    if min.epoch == 0 {
        return Ok(true);
    }
    let base = Pos::new(meta_u64(conn, "base_epoch")?, meta_u64(conn, "base_seq")?);
    Ok(epoch_at(conn, base, min.seq)? == Some(min.epoch))
}

/// Answers `read` from the tables `conn` sees.
fn answer(conn: &Connection, read: &Read) -> Result<Reply, AppError> {
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
        Read::PrivateChat {
            me,
            username,
            tag,
            window,
        } => {
            let me = acting_user(conn, me)?;
            let (other, _) = named_user(conn, username, tag)?;
            let after = match &window.after {
                None => 0,
                Some(after) => conversation_seq(
                    conn,
                    "SELECT seq FROM private_messages WHERE uuid = ?1
                     AND ((author = ?2 AND recipient = ?3) OR (author = ?3 AND recipient = ?2))",
                    params![after, me.uuid, other.uuid],
                    after,
                )?,
            };
            let messages = windowed(messages(
                conn,
                PRIVATE_CHAT,
                params![me.uuid, other.uuid, after, limit(window)?],
            )?);
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
        Read::GroupChat {
            group,
            requester,
            window,
        } => {
            let requester = acting_user(conn, requester)?;
            let group = existing_group(conn, group)?;
            member_only(conn, &group, &requester, "read its conversation")?;
            let after = match &window.after {
                None => 0,
                Some(after) => conversation_seq(
                    conn,
                    "SELECT seq FROM group_messages WHERE uuid = ?1 AND group_uuid = ?2",
                    params![after, group.uuid],
                    after,
                )?,
            };
            let messages = windowed(messages(
                conn,
                GROUP_CHAT,
                params![group.uuid, after, limit(window)?],
            )?);
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

/// The position of message `after` in its conversation (the query finds it there), or 404.
fn conversation_seq(
    conn: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    after: &str,
) -> Result<i64, AppError> {
    validate::uuid(after)?;
    conn.query_row(sql, parameters, |row| row.get(0))
        .optional()
        .map_err(unavailable)?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no message {after} in this conversation (after= names the last message you have)"
            ))
        })
}

/// SQLite's `LIMIT` for a window: its `last`, or none (-1).
fn limit(window: &Window) -> Result<i64, AppError> {
    match window.last {
        None => Ok(-1),
        Some(last) if (1..=Window::MAX_LAST).contains(&last) => Ok(i64::from(last)),
        Some(last) => Err(AppError::Invalid(format!(
            "last={last}: ask for 1 to {} messages",
            Window::MAX_LAST
        ))),
    }
}

/// Messages read newest first (to take the most recent), put back oldest first.
fn windowed(mut messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    messages.reverse();
    messages
}
