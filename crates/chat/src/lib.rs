//! The chat service's data (SPEC §4, §5): the operations that travel up and down the tree
//! ([`ops`]), the rules their values follow ([`validate`]), password hashing ([`password`]), and
//! the SQLite [`Store`] with the node's replication log ([`store`]).
//!
//! No networking here: the core's data plane decides what to append, apply and answer; the node's
//! driver has the store carry it out ([`Store::run`]).
//!
//! # Walkthrough
//!
//! Every node keeps a log of [`Command`]s (a [`Write`] and when its input node took it) and applies
//! an entry to its tables only once the data plane says it is committed: the same entries in the
//! same order give the same rows on every node, ids included. A [`Read`] is answered from the
//! applied state.
//!
//! ```
//! use labctl_chat::{password, Command, Outcome, Read, Reply, Store, Write};
//! use labctl_core::log::WireEntry;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut writer = Store::open(dir.path().join("writer.sqlite"))?;
//! let mut replica = Store::open(dir.path().join("replica.sqlite"))?;
//!
//! // The input node hashes the password; only the hash travels to the writer.
//! let register = Write::Register {
//!     username: "alice".into(),
//!     tag: "1234".into(),
//!     password_hash: password::hash("correct horse"),
//! };
//! let command = Command { write: register.clone(), sent_at: "2026-12-03T10:00:00.000Z".into() };
//! let entry = WireEntry {
//!     epoch: 1,
//!     seq: 1,
//!     key: Some("alice:retry-1".into()), // the client's Idempotency-Key, scoped to its user
//!     body: serde_json::to_string(&command)?,
//! };
//!
//! // Both store the entry; nothing shows before it commits.
//! writer.append(0, &[entry.clone()])?;
//! replica.append(0, &[entry])?;
//! let read = Read::User { username: "alice".into(), tag: "1234".into() };
//! assert_eq!(replica.query(&read).unwrap_err().status(), 404);
//!
//! // Committed (the data plane counted a majority): both apply it, and agree row for row.
//! let (seq, answer) = writer.apply_committed(1)?.remove(0);
//! replica.apply_committed(1)?;
//! let outcome: Outcome = serde_json::from_str(&answer)?;
//! let Ok(Reply::User { user: alice }) = outcome else { unreachable!() };
//! assert_eq!(seq, 1);
//! assert_eq!(replica.query(&read)?, Reply::User { user: alice });
//! assert_eq!(replica.dump()?, writer.dump()?);
//!
//! // A node that starts from nothing takes a snapshot of the applied state.
//! let mut fresh = Store::open(dir.path().join("fresh.sqlite"))?;
//! fresh.restore(&writer.snapshot()?)?;
//! assert_eq!(fresh.dump()?, writer.dump()?);
//!
//! // One node alone (tests, examples) may execute directly: a refused write leaves no entry.
//! let error = writer.execute(&register, 1, time::OffsetDateTime::now_utc()).unwrap_err();
//! assert_eq!(error.status(), 409);
//! assert_eq!(writer.last_seq(), 1);
//! # Ok(())
//! # }
//! ```

pub mod ops;
pub mod password;
pub mod store;
pub mod validate;

pub use ops::{
    AppError, Change, ChatMessage, Command, Group, GroupId, Outcome, Read, Reply, User, UserId,
    Window, Write,
};
pub use store::{Reader, Snapshot, Store, StoreError};
