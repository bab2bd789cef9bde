//! The database file: its schema, one migration per version, and opening it (private to this
//! user, durable, its log checked).

use std::path::{Path, PathBuf};
use std::time::Duration;

use labctl_core::log::Pos;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::sqlite_error;
use super::{Store, StoreError};

/// Prepared statements each connection keeps: every statement of the chat's reads and writes.
pub(super) const STATEMENT_CACHE: usize = 64;

/// How long a statement waits for a lock held by another connection before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per version: `MIGRATIONS[i]` takes a file from `user_version` `i` to
/// `i + 1`. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// The schema version this program writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the chat's tables, a replication log of changes and a key-value table.
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

/// Version 2: a log of commands (applied once committed), the answers kept for idempotency keys,
/// and in `meta` where the log starts (`base_epoch`, `base_seq`: what a snapshot replaced) and how
/// far it is applied (`applied`). A version 1 log was all applied: it becomes the base.
const SCHEMA_V2: &str = "
CREATE TABLE replies (
    key TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL,
    answer TEXT NOT NULL
);
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'base_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM log;
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'base_epoch', CAST(coalesce((SELECT epoch FROM log ORDER BY seq DESC LIMIT 1), 0) AS TEXT);
INSERT OR REPLACE INTO meta (key, value) SELECT 'applied', value FROM meta WHERE key = 'base_seq';
DROP TABLE log;
CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    key TEXT,
    body TEXT NOT NULL
);
";

/// Version 3: each user's session generation (SPEC §5, logging out): a session token carries
/// the generation it was issued in, and one older than its user's is refused. Logging out raises
/// it, through the log like any write, so every node that checks tokens learns it.
const SCHEMA_V3: &str = "
ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
";

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to
    /// [`SCHEMA_VERSION`].
    ///
    /// The file and SQLite's companions (`-wal`, `-shm`, `-journal`) are readable and writable by
    /// this user only (mode 0600: they hold password hashes and private messages): a new file is
    /// created so, and an existing one is narrowed to it. SQLite creates its companions with the
    /// database file's mode.
    ///
    /// The connection uses WAL journaling (readers never block the writer), `synchronous=FULL`
    /// (a commit returns only once it is on disk: a write is acknowledged only when durable),
    /// foreign keys, and a busy timeout.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if the file comes from a newer program (it is left untouched),
    /// [`StoreError::Private`] if its mode cannot be set,
    /// [`StoreError::Sqlite`] if it cannot be opened or is not a database,
    /// [`StoreError::Corrupt`] if its log has holes.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sqlite = sqlite_error(&path);
        private_files(&path).map_err(|source| StoreError::Private {
            path: path.clone(),
            source,
        })?;
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

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

        let corrupt = |what: String| StoreError::Corrupt(format!("{}: {what}", path.display()));
        let base = Pos::new(
            meta_u64(&conn, "base_epoch").map_err(sqlite)?,
            meta_u64(&conn, "base_seq").map_err(sqlite)?,
        );
        let applied = meta_u64(&conn, "applied").map_err(sqlite)?;
        // Entries follow the base without gaps; anything else is not our log.
        let (count, first, last): (i64, i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM log",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(sqlite)?;
        let (count, first, last) = (count as u64, first as u64, last as u64);
        if count > 0 && (first != base.seq + 1 || last - first + 1 != count) {
            return Err(corrupt(format!(
                "the log holds {count} entries from {first} to {last}, after a base at {}",
                base.seq
            )));
        }
        let last = if count == 0 { base.seq } else { last };
        if applied < base.seq || applied > last {
            return Err(corrupt(format!(
                "applied up to {applied}, outside the log ({}..={last})",
                base.seq
            )));
        }
        Ok(Store {
            conn,
            path,
            base,
            last,
            applied,
            synced: true,
        })
    }
}

/// The mode of the database and its companions: read and write for this user only.
const PRIVATE_MODE: u32 = 0o600;

/// Creates the database file at `path` with mode [`PRIVATE_MODE`] if it does not exist (SQLite
/// then gives its `-wal`, `-shm` and `-journal` files the same mode), and narrows the file and
/// any companion already there to it (a file of an older version of this program).
fn private_files(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(PRIVATE_MODE)
            .open(path)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            let file = PathBuf::from(name);
            match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o777 != PRIVATE_MODE => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(PRIVATE_MODE))?
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A number kept in `meta` (0 when absent).
pub(super) fn meta_u64(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Keep a number in `meta`.
pub(super) fn set_meta(conn: &Connection, key: &str, value: u64) -> rusqlite::Result<()> {
    super::rows::exec(
        conn,
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value.to_string()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Write;
    use time::OffsetDateTime;

    /// The database and its companions hold password hashes and private messages: this user's
    /// only (the usual umask, 022, would leave them world-readable), and a file left readable
    /// by an older version is narrowed.
    #[cfg(unix)]
    #[test]
    fn database_files_are_private_to_their_user() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("node.db");
        let mut store = Store::open(&db).unwrap();
        let write = Write::Register {
            username: "alice".into(),
            tag: "123".into(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        };
        store.execute(&write, 1, OffsetDateTime::now_utc()).unwrap();
        let files = ["node.db", "node.db-wal", "node.db-shm"].map(|name| dir.path().join(name));
        for file in &files {
            assert!(
                file.exists(),
                "{} exists while the store is open",
                file.display()
            );
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        drop(store);

        // A database from before: world-readable files are narrowed when it is opened.
        for file in &files {
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let store = Store::open(&db).unwrap();
        assert_eq!(store.last_seq(), 1);
        for file in files.iter().filter(|file| file.exists()) {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }
}
