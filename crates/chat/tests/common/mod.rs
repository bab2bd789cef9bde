//! Helpers shared by the store's tests: a store in a temporary directory, a clock that ticks one
//! second per write, and shorthands for the common writes.

#![allow(dead_code)]

use std::sync::OnceLock;

use labctl_chat::{password, AppError, ChatMessage, Group, Read, Reply, Store, User, Write};
use labctl_core::log::WireEntry;
use tempfile::TempDir;
use time::OffsetDateTime;

/// The epoch the tests' writer runs in.
pub const EPOCH: u64 = 7;

/// A valid UUID that no store ever hands out.
pub const GHOST: &str = "00000000-0000-4000-8000-000000000000";

/// One real password hash, computed once per test binary (hashing is deliberately slow).
pub fn hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| password::hash("correct horse battery"))
        .clone()
}

/// The instant `second` seconds into the tests' day (2023-11-14T22:13:20Z + second).
pub fn at(second: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + second).expect("in range")
}

/// A writer's store in its own temporary directory, with a clock.
pub struct Chat {
    /// Keeps the directory alive as long as the store.
    pub dir: TempDir,
    /// The store under test.
    pub store: Store,
    /// Seconds since [`at`]'s origin; each write advances it by one.
    pub clock: i64,
}

impl Chat {
    /// An empty store in a fresh directory.
    pub fn new() -> Chat {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(dir.path().join("chat.sqlite")).expect("open a new store");
        Chat {
            dir,
            store,
            clock: 0,
        }
    }

    /// Another empty store in the same directory.
    pub fn sibling(&self, name: &str) -> Store {
        Store::open(self.dir.path().join(name)).expect("open a new store")
    }

    /// Executes `write` at the next tick.
    pub fn run(&mut self, write: Write) -> Result<(Reply, WireEntry), AppError> {
        self.clock += 1;
        self.store.execute(&write, EPOCH, at(self.clock))
    }

    /// Executes `write`, which must succeed, and checks the entry it appended.
    pub fn ok(&mut self, write: Write) -> Reply {
        let before = self.store.last_seq();
        let (reply, entry) = self
            .run(write.clone())
            .unwrap_or_else(|error| panic!("{write:?} refused: {error:?}"));
        assert_eq!(entry.seq, before + 1, "entries are numbered without gaps");
        assert_eq!(entry.epoch, EPOCH);
        assert_eq!(self.store.last_seq(), entry.seq);
        assert_eq!(
            self.store.entries_since(before, 10).expect("read the log"),
            vec![entry],
            "the entry returned is the entry logged"
        );
        reply
    }

    /// Executes `write`, which must be refused with `status`, and checks that nothing changed.
    pub fn refused(&mut self, write: Write, status: u16) -> String {
        let dump = self.store.dump().expect("dump");
        let last = self.store.last_seq();
        let error = match self.run(write.clone()) {
            Ok(reply) => panic!("{write:?} accepted: {reply:?}"),
            Err(error) => error,
        };
        assert_eq!(error.status(), status, "{write:?} → {error:?}");
        assert_eq!(
            self.store.last_seq(),
            last,
            "a refused write appends nothing"
        );
        assert_eq!(
            self.store.dump().expect("dump"),
            dump,
            "a refused write changes nothing"
        );
        error.to_string()
    }

    /// Answers `read`.
    pub fn read(&self, read: Read) -> Result<Reply, AppError> {
        self.store.query(&read)
    }

    /// Registers `username#tag`.
    pub fn register(&mut self, username: &str, tag: &str) -> User {
        match self.ok(Write::Register {
            username: username.into(),
            tag: tag.into(),
            password_hash: hash(),
        }) {
            Reply::User { user } => user,
            other => panic!("register answered {other:?}"),
        }
    }

    /// `creator` creates a group called `name`.
    pub fn group(&mut self, creator: &User, name: &str) -> Group {
        match self.ok(Write::CreateGroup {
            name: name.into(),
            creator: creator.uuid.clone(),
        }) {
            Reply::Group { group } => group,
            other => panic!("create group answered {other:?}"),
        }
    }

    /// `group`'s creator adds `user`.
    pub fn add(&mut self, group: &Group, user: &User) {
        self.ok(Write::AddMember {
            group: group.uuid.clone(),
            username: user.username.clone(),
            tag: user.tag.clone(),
            requester: group.creator.clone(),
        });
    }

    /// `from` sends `content` to `to`.
    pub fn say(&mut self, from: &User, to: &User, content: &str) -> ChatMessage {
        match self.ok(Write::SendPrivate {
            from: from.uuid.clone(),
            username: to.username.clone(),
            tag: to.tag.clone(),
            content: content.into(),
        }) {
            Reply::Message { message } => message,
            other => panic!("send answered {other:?}"),
        }
    }

    /// `from` sends `content` to `group`.
    pub fn say_to_group(&mut self, from: &User, group: &Group, content: &str) -> ChatMessage {
        match self.ok(Write::SendGroup {
            group: group.uuid.clone(),
            from: from.uuid.clone(),
            content: content.into(),
        }) {
            Reply::Message { message } => message,
            other => panic!("send answered {other:?}"),
        }
    }
}

/// The users of a `Reply::Users`.
pub fn users(reply: Result<Reply, AppError>) -> Vec<User> {
    match reply {
        Ok(Reply::Users { users }) => users,
        other => panic!("expected users, got {other:?}"),
    }
}

/// The groups of a `Reply::Groups`.
pub fn groups(reply: Result<Reply, AppError>) -> Vec<Group> {
    match reply {
        Ok(Reply::Groups { groups }) => groups,
        other => panic!("expected groups, got {other:?}"),
    }
}

/// The messages of a `Reply::Messages`.
pub fn messages(reply: Result<Reply, AppError>) -> Vec<ChatMessage> {
    match reply {
        Ok(Reply::Messages { messages }) => messages,
        other => panic!("expected messages, got {other:?}"),
    }
}

/// The status of a refused read.
pub fn status(reply: Result<Reply, AppError>) -> u16 {
    match reply {
        Err(error) => error.status(),
        Ok(reply) => panic!("expected an error, got {reply:?}"),
    }
}

/// The command a log entry carries.
pub fn logged(entry: &WireEntry) -> labctl_chat::Command {
    serde_json::from_str(&entry.body).expect("a chat command")
}
