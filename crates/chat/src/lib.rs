//! The chat service's data (SPEC §4, §5): the operations that travel up and down the tree
//! ([`ops`]), the rules their values follow ([`validate`]), password hashing ([`password`]), and
//! the SQLite [`Store`] with its replication log ([`store`]).
//!
//! No networking here: a node's driver feeds operations in and ships entries out.
//!
//! # Walkthrough
//!
//! The **writer** executes a [`Write`]: the store checks it, turns it into a concrete [`Change`]
//! and appends it to its log as an [`Entry`], durably, before answering. A **persistence** replica
//! applies the writer's entries in order and then answers [`Read`]s exactly as the writer would.
//!
//! ```
//! use labctl_chat::{password, Read, Reply, Store, Write};
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
//! let epoch = 1;
//! let (reply, entry) = writer.execute(&register, epoch, time::OffsetDateTime::now_utc())?;
//! let Reply::User { user: alice } = reply else { unreachable!() };
//! assert_eq!(entry.seq, 1);
//!
//! // A replica applies the entry (the node ships it over the tree), then serves reads.
//! replica.apply(&entry)?;
//! let read = Read::User { username: "alice".into(), tag: "1234".into() };
//! assert_eq!(replica.query(&read)?, Reply::User { user: alice.clone() });
//! assert_eq!(replica.dump()?, writer.dump()?);
//!
//! // A refused write answers with its HTTP status and changes nothing.
//! let error = writer.execute(&register, epoch, time::OffsetDateTime::now_utc()).unwrap_err();
//! assert_eq!(error.status(), 409);
//! assert_eq!(writer.last_seq(), 1);
//!
//! // A replica that missed entries fetches them; one that starts from nothing takes a snapshot.
//! let missing = writer.entries_since(replica.last_seq(), 100)?;
//! assert!(missing.is_empty());
//! let mut fresh = Store::open(dir.path().join("fresh.sqlite"))?;
//! fresh.restore(&writer.snapshot()?)?;
//! assert_eq!(fresh.last_seq(), 1);
//! # Ok(())
//! # }
//! ```

pub mod ops;
pub mod password;
pub mod store;
pub mod validate;

pub use ops::{
    AppError, Change, ChatMessage, Entry, Group, GroupId, Read, Reply, User, UserId, Write,
};
pub use store::{Snapshot, Store, StoreError};
