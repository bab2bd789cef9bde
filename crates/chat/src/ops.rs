//! The chat's operations, as they travel up the spanning tree from an input node to a node able to
//! serve them, and the answers that travel back down (SPEC §4, §5).
//!
//! A [`Read`] is served by the first `persistence` replica (or the writer) on the way up; a
//! [`Write`] only by the writer, which turns it into a [`Change`]: the concrete effect, with every
//! id and timestamp chosen, that the replication log carries to the replicas. Replicas apply
//! changes, never re-run writes, so every copy of the database ends up identical.
//!
//! Everything here is plain data (serde, JSON on the wire). Users are named by `uuid` once logged
//! in; the input node checks the session and the password hash, the serving node checks
//! permissions and existence against its database.

use serde::{Deserialize, Serialize};

/// A user id: a UUID in its hyphenated text form.
pub type UserId = String;
/// A group id: a UUID in its hyphenated text form.
pub type GroupId = String;

/// A user, as the API shows it (contract: `{"uuid", "username", "tag"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub uuid: UserId,
    /// The chosen name (not unique on its own).
    pub username: String,
    /// 3 to 6 digits; `username` + `tag` is unique.
    pub tag: String,
}

/// A group (contract: `{"uuid", "name", "creator"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's id.
    pub uuid: GroupId,
    /// Its name.
    pub name: String,
    /// The user who created it: the only one who may delete it or remove members.
    pub creator: UserId,
}

/// A message (contract: `{"uuid", "author", "content", "sent_at"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The message's id.
    pub uuid: String,
    /// Its author's user id.
    pub author: UserId,
    /// The text.
    pub content: String,
    /// When the writer accepted it, RFC 3339 (UTC).
    pub sent_at: String,
}

/// The part of a conversation a read wants (the `after` and `last` query parameters of
/// `GET …/chat`): the messages after the message `after` (the last one a client has: a page's
/// poll for new messages), and of those the `last` most recent; still oldest first. The default
/// is the whole conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Only the messages after this one, which must be in the conversation (404 if not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// At most this many: the most recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
}

impl Window {
    /// The most messages `last` may ask for.
    pub const MAX_LAST: u32 = 10_000;

    /// Whether this is the whole conversation.
    pub fn is_whole(&self) -> bool {
        self.after.is_none() && self.last.is_none()
    }
}

/// A read: served by a persistence replica or the writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "read", rename_all = "snake_case")]
pub enum Read {
    /// One user by id. → [`Reply::User`]
    UserById { uuid: UserId },
    /// Every user with this username, by tag; an empty list if there is none. → [`Reply::Users`]
    UsersByName { username: String },
    /// The user with this username and tag. → [`Reply::User`]
    User { username: String, tag: String },
    /// For logging in: the user and its password hash (verified at the input node). → [`Reply::Credentials`]
    Credentials { username: String, tag: String },
    /// The private conversation between `me` and another user, oldest first, or the part of it
    /// `window` says. → [`Reply::Messages`]
    PrivateChat {
        me: UserId,
        username: String,
        tag: String,
        #[serde(default, skip_serializing_if = "Window::is_whole")]
        window: Window,
    },
    /// One group. → [`Reply::Group`]
    Group { uuid: GroupId },
    /// A group's members; only members may ask. → [`Reply::Users`]
    Members { group: GroupId, requester: UserId },
    /// A group's conversation, oldest first, or the part of it `window` says; only members may
    /// ask. → [`Reply::Messages`]
    GroupChat {
        group: GroupId,
        requester: UserId,
        #[serde(default, skip_serializing_if = "Window::is_whole")]
        window: Window,
    },
    /// The groups a user belongs to (the main page). → [`Reply::Groups`]
    GroupsOf { user: UserId },
    /// The users a user has a private conversation with (the main page). → [`Reply::Users`]
    ContactsOf { user: UserId },
    /// A user's session generation, to check a session token against (a token of an older
    /// generation was logged out); 401 if the user no longer exists. → [`Reply::Generation`]
    Generation { user: UserId },
}

/// A write: served by the writer only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum Write {
    /// Create a user; 409 if `username`+`tag` is taken; 400 if `password_hash` is not a PHC
    /// string (the input node hashes with [`crate::password::hash`]). → [`Reply::User`]
    Register {
        username: String,
        tag: String,
        password_hash: String,
    },
    /// Delete a user; only the user itself (403 otherwise). → [`Reply::Deleted`]
    DeleteUser { uuid: UserId, requester: UserId },
    /// Send a private message to `username`+`tag`. → [`Reply::Message`]
    SendPrivate {
        from: UserId,
        username: String,
        tag: String,
        content: String,
    },
    /// Create a group; its creator becomes its first member. → [`Reply::Group`]
    CreateGroup { name: String, creator: UserId },
    /// Delete a group; only its creator. → [`Reply::Deleted`]
    DeleteGroup { group: GroupId, requester: UserId },
    /// Add `username`+`tag` to a group; only its creator; 409 if already a member. → [`Reply::User`]
    AddMember {
        group: GroupId,
        username: String,
        tag: String,
        requester: UserId,
    },
    /// Remove a member; its creator, or the member itself (leaving). → [`Reply::Deleted`]
    RemoveMember {
        group: GroupId,
        user: UserId,
        requester: UserId,
    },
    /// Send to a group; members only. → [`Reply::Message`]
    SendGroup {
        group: GroupId,
        from: UserId,
        content: String,
    },
    /// Log out: end every session of `user` issued so far (its session generation goes up by
    /// one; tokens carry the generation they were issued in). → [`Reply::Generation`]
    EndSessions { user: UserId },
}

/// What a served operation returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// One user.
    User { user: User },
    /// Several users.
    Users { users: Vec<User> },
    /// A user, its password hash and its session generation (for the token a login issues).
    Credentials {
        user: User,
        password_hash: String,
        #[serde(default)]
        generation: u64,
    },
    /// A user's session generation: tokens issued in an older one are logged out.
    Generation { generation: u64 },
    /// One group.
    Group { group: Group },
    /// Several groups.
    Groups { groups: Vec<Group> },
    /// One message (just sent).
    Message { message: ChatMessage },
    /// Several messages, oldest first.
    Messages { messages: Vec<ChatMessage> },
    /// Something was deleted.
    Deleted,
}

/// Why an operation failed, with the HTTP status it maps to (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "message", rename_all = "snake_case")]
pub enum AppError {
    /// 400: the request itself is malformed.
    #[error("{0}")]
    Malformed(String),
    /// 401: not logged in, or a wrong password.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: logged in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such user, group or page.
    #[error("{0}")]
    NotFound(String),
    /// 409: already exists.
    #[error("{0}")]
    Conflict(String),
    /// 422: a value out of its rules (a two-digit tag, an empty message).
    #[error("{0}")]
    Invalid(String),
    /// 503: not done, and it will not be: no writer reachable, no majority here, the tree is
    /// being rebuilt (say why).
    #[error("{0}")]
    Unavailable(String),
    /// 504: the outcome is unknown: the request went toward the writer and its answer did not
    /// come back in time (it may yet be stored; say so).
    #[error("{0}")]
    OutcomeUnknown(String),
}

impl AppError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Malformed(_) => 400,
            AppError::Unauthorized(_) => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::Invalid(_) => 422,
            AppError::Unavailable(_) => 503,
            AppError::OutcomeUnknown(_) => 504,
        }
    }
}

/// The concrete effect of a write, as the replication log carries it. Applying the same changes in
/// the same order to an empty database gives the writer's database, row for row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A user registered.
    UserAdded { user: User, password_hash: String },
    /// A user was deleted, with its memberships and the groups it created (and their messages);
    /// its messages stay, attributed to its uuid.
    UserDeleted { uuid: UserId },
    /// A private message.
    PrivateMessageAdded { to: UserId, message: ChatMessage },
    /// A group was created (its creator is its first member).
    GroupAdded { group: Group },
    /// A group was deleted, with its members and messages.
    GroupDeleted { uuid: GroupId },
    /// A member joined a group.
    MemberAdded { group: GroupId, user: UserId },
    /// A member left a group.
    MemberRemoved { group: GroupId, user: UserId },
    /// A group message.
    GroupMessageAdded {
        group: GroupId,
        message: ChatMessage,
    },
    /// A user logged out: its session generation is now `generation`.
    SessionsEnded { user: UserId, generation: u64 },
}

/// What a log entry carries (SPEC §4): a write, and what its input node fixed when it took it.
/// Every node applies it the same way once it commits; the ids it creates follow from the
/// entry's position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The write.
    pub write: Write,
    /// When it was taken (RFC 3339, UTC, milliseconds): a message's `sent_at`.
    pub sent_at: String,
}

/// What applying an entry, or serving a read, answers: the reply, or why not. It travels down
/// the tree to the input node as JSON.
pub type Outcome = Result<Reply, AppError>;
