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
        message.contains("future.sqlite") && message.contains("99") && message.contains('1'),
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
fn an_unreadable_change_is_corrupt() {
    let mut chat = Chat::new();
    chat.register("alice", "1234");
    chat.register("bob", "5678");
    {
        let conn = Connection::open(chat.store.path()).unwrap();
        conn.execute(
            "UPDATE log SET change = '{\"change\":\"nonsense\"}' WHERE seq = 2",
            [],
        )
        .unwrap();
    }
    assert!(matches!(
        chat.store.entries_since(0, 10),
        Err(StoreError::Corrupt(message)) if message.contains("log entry 2")
    ));
    assert!(matches!(chat.store.snapshot(), Err(StoreError::Corrupt(_))));
    // Entry 1 is still readable.
    assert_eq!(chat.store.entries_since(0, 1).unwrap().len(), 1);
}

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
