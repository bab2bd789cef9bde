//! Reading rows back, and the lookups the checks and the reads share (their errors are
//! [`AppError`]s, ready to answer).

use std::fmt::Display;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use crate::ops::{AppError, ChatMessage, Group, User};
use crate::validate;

/// Wraps a SQLite error with the store's file, `path`.
pub(super) fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `sql` with `parameters` through the connection's statement cache: the hot writes (a
/// message applied, the applied position) are parsed and planned once per connection, not at
/// every entry.
pub(super) fn exec(
    conn: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(parameters)
}

/// Collects every row of `sql` (no parameters).
pub(super) fn collect<T>(
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
pub(super) type MessageRow = (u64, String, ChatMessage);

/// Every row of a message table, for [`Store::snapshot`]: `sql` selects the row's `seq`, the
/// conversation, then the message's four columns.
pub(super) fn message_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<MessageRow>> {
    collect(conn, sql, |row| {
        Ok((column_u64(row, 0)?, row.get(1)?, message_from_row(row, 2)?))
    })
}

/// Column `i` as a count or position: a negative value (a corrupt row) is an error, not a wrap.
pub(super) fn column_u64(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(i)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, value))
}

/// A column value as JSON, for [`Store::dump`].
pub(super) fn json_value(value: ValueRef<'_>) -> serde_json::Value {
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
pub(super) fn unavailable(error: impl Display) -> AppError {
    AppError::Unavailable(format!("storage error: {error}"))
}

/// Reads a `User` from columns uuid, username, tag.
pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        uuid: row.get(0)?,
        username: row.get(1)?,
        tag: row.get(2)?,
    })
}

/// Reads a `Group` from columns uuid, name, creator.
pub(super) fn group_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        uuid: row.get(0)?,
        name: row.get(1)?,
        creator: row.get(2)?,
    })
}

/// Reads a `ChatMessage` from columns uuid, author, content, sent_at starting at `first`.
pub(super) fn message_from_row(
    row: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        uuid: row.get(first)?,
        author: row.get(first + 1)?,
        content: row.get(first + 2)?,
        sent_at: row.get(first + 3)?,
    })
}

/// The user with id `uuid`, if any.
pub(super) fn user_by_id(conn: &Connection, uuid: &str) -> Result<Option<User>, AppError> {
    conn.prepare_cached("SELECT uuid, username, tag FROM users WHERE uuid = ?1")
        .and_then(|mut statement| statement.query_row([uuid], user_from_row).optional())
        .map_err(unavailable)
}

/// The user `username#tag` and its password hash, if any.
pub(super) fn user_by_name(
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
pub(super) fn named_user(
    conn: &Connection,
    username: &str,
    tag: &str,
) -> Result<(User, String), AppError> {
    validate::username(username)?;
    validate::tag(tag)?;
    user_by_name(conn, username, tag)?
        .ok_or_else(|| AppError::NotFound(format!("no user {username}#{tag}")))
}

/// The user doing something (the logged-in user), or 401: a session can outlive its user.
pub(super) fn acting_user(conn: &Connection, uuid: &str) -> Result<User, AppError> {
    user_by_id(conn, uuid)?
        .ok_or_else(|| AppError::Unauthorized("your user no longer exists".to_string()))
}

/// The session generation of user `uuid` (who exists).
pub(super) fn generation_of(conn: &Connection, uuid: &str) -> Result<u64, AppError> {
    conn.prepare_cached("SELECT generation FROM users WHERE uuid = ?1")
        .and_then(|mut statement| statement.query_row([uuid], |row| column_u64(row, 0)))
        .map_err(unavailable)
}

/// The 404 for an unknown user id.
pub(super) fn no_user_id(uuid: &str) -> AppError {
    AppError::NotFound(format!("no user with id {uuid}"))
}

/// The group `uuid` (validated first), or 404.
pub(super) fn existing_group(conn: &Connection, uuid: &str) -> Result<Group, AppError> {
    validate::uuid(uuid)?;
    conn.prepare_cached("SELECT uuid, name, creator FROM groups WHERE uuid = ?1")
        .and_then(|mut statement| statement.query_row([uuid], group_from_row).optional())
        .map_err(unavailable)?
        .ok_or_else(|| AppError::NotFound(format!("no group with id {uuid}")))
}

/// Whether `user` is a member of `group`.
pub(super) fn is_member(conn: &Connection, group: &str, user: &str) -> Result<bool, AppError> {
    conn.prepare_cached("SELECT 1 FROM members WHERE group_uuid = ?1 AND user_uuid = ?2")
        .and_then(|mut statement| statement.exists([group, user]))
        .map_err(unavailable)
}

/// 403 unless `user` is a member of `group`; `action` completes "only members may …".
pub(super) fn member_only(
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
pub(super) fn users(conn: &Connection, sql: &str, parameter: &str) -> Result<Vec<User>, AppError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.query_map([parameter], user_from_row)?.collect())
        .map_err(unavailable)
}

/// The messages selected by `sql`, a query of uuid, author, content, sent_at.
pub(super) fn messages(
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
