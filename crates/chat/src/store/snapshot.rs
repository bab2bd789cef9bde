//! The applied state, whole: a [`Snapshot`] for a node too far behind, and a canonical dump
//! for comparing two copies.

use labctl_core::log::Pos;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::apply::{
    insert_group, insert_group_message, insert_member, insert_private_message, insert_user,
};
use super::rows::{
    collect, column_u64, group_from_row, json_value, message_rows, sqlite_error, user_from_row,
};
use super::schema::set_meta;
use super::tx::Tx;
use super::{int, Store, StoreError};
use crate::ops::{ChatMessage, Group, GroupId, UserId};

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
    /// Its answer (an [`Outcome`](crate::Outcome) as JSON).
    pub answer: String,
}
impl Store {
    /// The applied state, whole, read in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`], or [`StoreError::Corrupt`] for a row that does not read back.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let sqlite = sqlite_error(&self.path);
        // A read transaction: every table from the same moment.
        let tx = Tx::read(&self.conn).map_err(sqlite)?;
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
        self.sync_commits(true)?;
        let sqlite = sqlite_error(&self.path);
        let tx = Tx::write(&self.conn).map_err(sqlite)?;
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
