//! Readers beside the writer: the same answers as the store's own connection, and, under a
//! concurrent write load, whole transactions only.

mod common;

use common::{at, messages, users, Chat, EPOCH};
use labctl_chat::store::timestamp;
use labctl_chat::{Command, Read, Reader, Write};
use labctl_core::log::WireEntry;
use labctl_core::plane::{PlaneInput, StoreJob};

/// Every kind of read a reader answers as the store's own connection does, refusals included.
#[test]
fn a_reader_answers_as_the_store_does() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    chat.say(&alice, &bob, "hello");
    let group = chat.group(&alice, "friends");
    let reader = Reader::open(chat.store.path()).expect("open a reader");
    let reads = [
        Read::UserById {
            uuid: alice.uuid.clone(),
        },
        Read::UsersByName {
            username: "bob".into(),
        },
        Read::User {
            username: "nobody".into(),
            tag: "111".into(),
        },
        Read::Generation {
            user: bob.uuid.clone(),
        },
        Read::PrivateChat {
            window: Default::default(),
            me: bob.uuid.clone(),
            username: "alice".into(),
            tag: "1234".into(),
        },
        Read::Members {
            group: group.uuid.clone(),
            requester: bob.uuid.clone(),
        },
        Read::GroupChat {
            window: Default::default(),
            group: group.uuid.clone(),
            requester: alice.uuid.clone(),
        },
        Read::GroupsOf {
            user: alice.uuid.clone(),
        },
        Read::ContactsOf {
            user: alice.uuid.clone(),
        },
    ];
    for read in reads {
        assert_eq!(reader.query(&read), chat.read(read.clone()), "{read:?}");
    }
}

/// A reader only reads: the file opened read-only refuses any change, whatever a bug would ask.
#[test]
fn a_reader_cannot_write() {
    let chat = Chat::new();
    let reader = Reader::open(chat.store.path()).expect("open a reader");
    assert_eq!(
        users(reader.query(&Read::UsersByName {
            username: "alice".into()
        })),
        vec![]
    );
    // A reader of a file that does not exist is an error, not a new empty database.
    let missing = chat.dir.path().join("missing.sqlite");
    assert!(Reader::open(&missing).is_err());
    assert!(!missing.exists());
}

/// While the writer applies 200 messages in 20 group commits of ten, readers on two threads read
/// the conversation as fast as they can: every read sees a whole number of groups (a multiple of
/// ten messages), never a part of one, and the counts they see never go back.
#[test]
fn reads_under_a_write_load_see_whole_transactions() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let path = chat.store.path().to_path_buf();
    let sent_at = timestamp(at(100)).expect("a time");
    let entry = |seq: u64, i: u64| WireEntry {
        epoch: EPOCH,
        seq,
        key: None,
        body: serde_json::to_string(&Command {
            write: Write::SendPrivate {
                from: alice.uuid.clone(),
                username: "bob".into(),
                tag: "5678".into(),
                content: format!("message {i}"),
            },
            sent_at: sent_at.clone(),
        })
        .expect("commands serialize"),
    };
    let conversation = Read::PrivateChat {
        window: Default::default(),
        me: bob.uuid.clone(),
        username: "alice".into(),
        tag: "1234".into(),
    };

    let done = std::sync::atomic::AtomicBool::new(false);
    // The writer starts once both readers are reading: the load and the reads overlap.
    let reading = std::sync::Barrier::new(3);
    let seen = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (path, conversation, done, reading) = (&path, &conversation, &done, &reading);
                scope.spawn(move || {
                    let reader = Reader::open(path).expect("open a reader");
                    let mut seen = vec![messages(reader.query(conversation)).len()];
                    reading.wait();
                    // Bounded: the writer's 20 groups take well under this many reads' time.
                    for _ in 0..200_000 {
                        if done.load(std::sync::atomic::Ordering::Acquire) {
                            break;
                        }
                        seen.push(messages(reader.query(conversation)).len());
                    }
                    seen
                })
            })
            .collect();
        reading.wait();
        for group in 0..20u64 {
            let after = chat.store.last_seq();
            let jobs: Vec<StoreJob> = (1..=10)
                .map(|i| StoreJob::Append {
                    after: after + i - 1,
                    entries: vec![entry(after + i, group * 10 + i)],
                })
                .chain([StoreJob::Apply { up_to: after + 10 }])
                .collect();
            let reports = chat.store.run_group(jobs);
            assert!(
                matches!(reports[0], PlaneInput::Stored { seq } if seq == after + 10),
                "the appends' reports are merged into one: {reports:?}"
            );
            assert!(
                matches!(&reports[1], PlaneInput::Applied { results } if results.len() == 10),
                "{reports:?}"
            );
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        readers
            .into_iter()
            .map(|r| r.join().expect("a reader thread"))
            .collect::<Vec<_>>()
    });
    for counts in seen {
        assert!(!counts.is_empty());
        for count in &counts {
            assert!(
                count % 10 == 0,
                "a read saw {count} messages: part of a group"
            );
        }
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "reads went back");
    }
    assert_eq!(
        messages(Reader::open(&path).unwrap().query(&conversation)).len(),
        200
    );
}

/// A group with a job that fails is rolled back and its jobs run one by one: each succeeds or
/// fails as it would have alone.
#[test]
fn a_failing_job_does_not_sink_its_group() {
    let mut chat = Chat::new();
    chat.register("alice", "1234");
    let last = chat.store.last_seq();
    let entry = |seq: u64| WireEntry {
        epoch: EPOCH,
        seq,
        key: None,
        body: String::new(),
    };
    let reports = chat.store.run_group(vec![
        StoreJob::Append {
            after: last,
            entries: vec![entry(last + 1)],
        },
        // A gap: entry last + 5 does not follow last + 1.
        StoreJob::Append {
            after: last + 4,
            entries: vec![entry(last + 5)],
        },
        StoreJob::Append {
            after: last + 1,
            entries: vec![entry(last + 2)],
        },
    ]);
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(reports[0], PlaneInput::Stored { seq: last + 1 });
    assert!(
        matches!(&reports[1], PlaneInput::StoreFailed { append: true, restore: false, reason } if reason.contains("gap")),
        "{reports:?}"
    );
    assert_eq!(reports[2], PlaneInput::Stored { seq: last + 2 });
    assert_eq!(chat.store.last_seq(), last + 2);
}

/// A reader told never to wait gives up at once on a file locked against readers (a local read
/// on an async task then takes the data plane's way), where a reader as opened waits for the
/// lock (SQLite's busy timeout). The lock here is a rollback-journal writer's exclusive one: in
/// WAL mode, the store's own, a reader is almost never locked out.
#[test]
fn a_reader_that_never_waits_gives_up_at_once_on_a_locked_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.sqlite");
    drop(labctl_chat::store::Store::open(&path).unwrap());
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker
        .execute_batch("PRAGMA journal_mode = DELETE; BEGIN EXCLUSIVE;")
        .unwrap();
    let reader = Reader::open(&path).unwrap();
    reader.never_wait().unwrap();
    let read = Read::UsersByName {
        username: "alice".into(),
    };
    let asked = std::time::Instant::now();
    let answer = reader.query_at(&read, labctl_core::log::Pos::START);
    assert!(
        matches!(answer, Some(Err(labctl_chat::AppError::Unavailable(_)))),
        "{answer:?}"
    );
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        reader.query(&read).is_err(),
        "locked out, it answers nothing"
    );
    blocker.execute_batch("COMMIT").unwrap();
    assert!(reader.query(&read).is_ok());
}
