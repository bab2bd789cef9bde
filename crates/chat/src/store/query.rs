//! Reads: a [`Read`] answered from the applied state.

use rusqlite::params;

use super::rows::{
    acting_user, existing_group, generation_of, group_from_row, member_only, messages, named_user,
    no_user_id, unavailable, user_by_id, users,
};
use super::Store;
use crate::ops::{AppError, Read, Reply};
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
}
