//! The file: reopening keeps everything, the schema version is checked, pragmas are set, and a
//! damaged log is reported rather than trusted.

mod common;

use common::Chat;
use labctl_chat::store::SCHEMA_VERSION;
use labctl_chat::{Store, StoreError};
use rusqlite::Connection;

#[test]
fn reopening_keeps_everything_and_the_log_goes_on() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    chat.say(&alice, &bob, "persist me");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    let dump = chat.store.dump().unwrap();
    let last = chat.store.last_seq();
    let path = chat.store.path().to_path_buf();

    chat.store = Store::open(&path).unwrap();
    assert_eq!(chat.store.last_seq(), last);
    assert_eq!(chat.store.dump().unwrap(), dump);
    chat.say(&bob, &alice, "after a restart");
    assert_eq!(chat.store.last_seq(), last + 1);
}

#[test]
fn a_new_file_gets_the_current_schema_in_wal_mode() {
    let chat = Chat::new();
    let conn = Connection::open(chat.store.path()).unwrap();
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(chat.store.last_seq(), 0);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let error = Store::open(&path).unwrap_err();
    match &error {
        StoreError::NewerSchema {
            path: named,
            found,
            known,
        } => {
            assert_eq!(named, &path);
            assert_eq!((*found, *known), (99, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("future.sqlite")
            && message.contains("99")
            && message.contains(&SCHEMA_VERSION.to_string()),
        "{message}"
    );
    // Untouched: same version, no tables, still in its original journal mode.
    let conn = Connection::open(&path).unwrap();
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 99);
    let tables: u32 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 0);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn a_file_that_is_not_a_database_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the tables you are looking for\n".repeat(50),
    )
    .unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Sqlite { .. }), "{error:?}");
    assert!(error.to_string().contains("notes.txt"), "{error}");
}

#[test]
fn a_version_1_file_keeps_its_data_and_its_log_becomes_the_base() {
    // A file as the previous version wrote it: a log of changes, all applied.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute_batch(
            "INSERT INTO users VALUES ('67e55044-10b1-426f-9247-bb680e5fe0c8', 'alice', '1234', 'x');
             INSERT INTO log VALUES (1, 3, '{\"change\":\"user_added\"}');
             INSERT INTO log VALUES (2, 4, '{\"change\":\"user_added\"}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!((store.last_seq(), store.applied()), (2, 2));
    assert_eq!(
        store.applied_pos().unwrap(),
        labctl_core::log::Pos::new(4, 2)
    );
    assert!(store.dump().unwrap().contains("alice"));
    assert_eq!(store.entries_since(0, 10).unwrap(), vec![]);
    let version: u32 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// The first schema, as released.
const V1: &str = "
CREATE TABLE users (uuid TEXT PRIMARY KEY NOT NULL, username TEXT NOT NULL, tag TEXT NOT NULL,
    password_hash TEXT NOT NULL, UNIQUE (username, tag));
CREATE TABLE groups (uuid TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, creator TEXT NOT NULL);
CREATE TABLE members (group_uuid TEXT NOT NULL REFERENCES groups (uuid),
    user_uuid TEXT NOT NULL REFERENCES users (uuid), PRIMARY KEY (group_uuid, user_uuid)) WITHOUT ROWID;
CREATE TABLE private_messages (seq INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,
    author TEXT NOT NULL, recipient TEXT NOT NULL, content TEXT NOT NULL, sent_at TEXT NOT NULL);
CREATE TABLE group_messages (seq INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,
    group_uuid TEXT NOT NULL REFERENCES groups (uuid), author TEXT NOT NULL,
    content TEXT NOT NULL, sent_at TEXT NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, change TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
";

#[test]
fn a_log_with_a_hole_is_corrupt() {
    let mut chat = Chat::new();
    chat.register("alice", "1234");
    chat.register("bob", "5678");
    chat.register("carol", "999");
    let path = chat.store.path().to_path_buf();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute("DELETE FROM log WHERE seq = 2", []).unwrap();
    }
    drop(chat.store);
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));
}
