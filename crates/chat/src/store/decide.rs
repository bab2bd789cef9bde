//! The writer's decisions: a [`Write`] checked against the database becomes a [`Change`] (applied
//! by [`super::apply`]). Every node decides every committed entry, in log order: same entries,
//! same database.

use rusqlite::Connection;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use super::rows::{
    acting_user, existing_group, generation_of, is_member, member_only, named_user, no_user_id,
    user_by_id, user_by_name,
};
use crate::ops::{AppError, Change, ChatMessage, Group, Reply, User, Write};
use crate::{password, validate};

/// Checks `write` against the database and decides its reply and its change, without changing
/// anything.
pub(super) fn decide(
    conn: &Connection,
    write: &Write,
    sent_at: &str,
    ids: &Ids,
) -> Result<(Reply, Change), AppError> {
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
                uuid: ids.next(),
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
            let message = new_message(&author, content, sent_at, ids);
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
                uuid: ids.next(),
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
            let message = new_message(&author, content, sent_at, ids);
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
        Write::EndSessions { user } => {
            let user = acting_user(conn, user)?;
            let generation = generation_of(conn, &user.uuid)?.saturating_add(1);
            Ok((
                Reply::Generation { generation },
                Change::SessionsEnded {
                    user: user.uuid,
                    generation,
                },
            ))
        }
    }
}

/// The ids a log entry hands out, derived from its position: every node that applies entry
/// `(epoch, seq)` gives its new rows the same ids, so the copies agree row for row.
///
/// A version 8 UUID (RFC 9562's "custom" layout): 48 bits of epoch, 12 bits numbering the ids of
/// one entry, 62 bits of seq. Positions never repeat, so neither do ids.
pub(super) struct Ids {
    epoch: u64,
    seq: u64,
    next: std::cell::Cell<u16>,
}

impl Ids {
    /// The ids of entry `(epoch, seq)`.
    pub(super) fn new(epoch: u64, seq: u64) -> Ids {
        Ids {
            epoch,
            seq,
            next: std::cell::Cell::new(0),
        }
    }

    /// The next id, hyphenated, lowercase.
    pub(super) fn next(&self) -> String {
        let k = self.next.get();
        self.next.set(k.wrapping_add(1));
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&self.epoch.to_be_bytes()[2..]);
        bytes[6..8].copy_from_slice(&(k & 0x0fff).to_be_bytes());
        bytes[8..].copy_from_slice(&(self.seq & 0x3fff_ffff_ffff_ffff).to_be_bytes());
        // `new_v8` sets the version nibble (byte 6) and the variant bits (byte 8).
        uuid::Uuid::new_v8(bytes).to_string()
    }
}

/// A new message by `author`.
fn new_message(author: &User, content: &str, sent_at: &str, ids: &Ids) -> ChatMessage {
    ChatMessage {
        uuid: ids.next(),
        author: author.uuid.clone(),
        content: content.to_string(),
        sent_at: sent_at.to_string(),
    }
}

/// `now` as RFC 3339 in UTC with milliseconds, fixed width (`2024-05-01T12:00:00.000Z`).
pub fn timestamp(now: OffsetDateTime) -> Result<String, AppError> {
    let out_of_range = || AppError::Unavailable(format!("the clock is out of range: {now}"));
    let utc = now
        .checked_to_offset(UtcOffset::UTC)
        .filter(|utc| (0..=9999).contains(&utc.year()))
        .ok_or_else(out_of_range)?;
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

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
