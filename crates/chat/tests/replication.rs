//! The replicated log: a node that appends the writer's entries and applies them once committed
//! holds exactly the writer's rows and answers every read the same (ids included: they follow
//! from each entry's position); an old writer's tail is discarded, an applied entry never is; a
//! key applied twice takes effect once; snapshots start a node from nothing.

mod common;

use common::{hash, Chat, EPOCH, GHOST};
use labctl_chat::{AppError, Command, Group, Read, Reply, Store, StoreError, User, Write};
use labctl_core::log::{Pos, WireEntry};
use proptest::prelude::*;

// ------------------------------------------------------------------------------------------------
// A random workload: operations name users and groups by index into what exists so far (deleted
// ones included, plus one that never existed), and draw names and contents from small pools that
// mix valid and invalid values, so that refusals of every kind are frequent.
// ------------------------------------------------------------------------------------------------

const NAMES: &[&str] = &["alice", "bob", "Zoë", "carol", "dave", "al ice", ""];
const TAGS: &[&str] = &["123", "4567", "890", "12"];
const CONTENTS: &[&str] = &["hi", "second message", "third", "  ", ""];
const GROUP_NAMES: &[&str] = &["lab", " ops ", "", "lab"];

#[derive(Clone, Debug)]
enum Op {
    Register {
        name: usize,
        tag: usize,
    },
    DeleteUser {
        target: usize,
        requester: usize,
    },
    SendPrivate {
        from: usize,
        to: usize,
        content: usize,
    },
    CreateGroup {
        creator: usize,
        name: usize,
    },
    DeleteGroup {
        group: usize,
        requester: usize,
    },
    AddMember {
        group: usize,
        user: usize,
        requester: usize,
    },
    RemoveMember {
        group: usize,
        user: usize,
        requester: usize,
    },
    SendGroup {
        group: usize,
        from: usize,
        content: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0..16usize;
    prop_oneof![
        4 => (i(), i()).prop_map(|(name, tag)| Op::Register { name, tag }),
        1 => (i(), i()).prop_map(|(target, requester)| Op::DeleteUser { target, requester }),
        3 => (i(), i(), i()).prop_map(|(from, to, content)| Op::SendPrivate { from, to, content }),
        2 => (i(), i()).prop_map(|(creator, name)| Op::CreateGroup { creator, name }),
        1 => (i(), i()).prop_map(|(group, requester)| Op::DeleteGroup { group, requester }),
        3 => (i(), i(), i()).prop_map(|(group, user, requester)| Op::AddMember { group, user, requester }),
        1 => (i(), i(), i()).prop_map(|(group, user, requester)| Op::RemoveMember { group, user, requester }),
        3 => (i(), i(), i()).prop_map(|(group, from, content)| Op::SendGroup { group, from, content }),
    ]
}

/// A workload: a few registrations to start with (most operations need someone to act), then
/// anything.
fn workload(length: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Op>> {
    let register = (0..16usize, 0..16usize).prop_map(|(name, tag)| Op::Register { name, tag });
    (
        proptest::collection::vec(register, 2..6),
        proptest::collection::vec(op(), length),
    )
        .prop_map(|(mut start, rest)| {
            start.extend(rest);
            start
        })
}

/// What the workload has created so far.
#[derive(Default)]
struct Known {
    /// Every user ever registered, deleted ones included.
    users: Vec<User>,
    /// Every group ever created, deleted ones included.
    groups: Vec<Group>,
    /// The users that still exist.
    live_users: Vec<User>,
    /// The groups that still exist.
    live_groups: Vec<Group>,
}

impl Known {
    /// The user `index` (drawn from `0..16`) points at: mostly one that exists, sometimes one
    /// that existed, and for the last index (or when there is nobody) a ghost.
    fn user(&self, index: usize) -> User {
        match index {
            0..=12 if !self.live_users.is_empty() => {
                self.live_users[index % self.live_users.len()].clone()
            }
            0..=14 if !self.users.is_empty() => self.users[index % self.users.len()].clone(),
            _ => User {
                uuid: GHOST.into(),
                username: "ghost".into(),
                tag: "999".into(),
            },
        }
    }

    /// The group `index` (drawn from `0..16`) points at, if any: mostly one that exists,
    /// sometimes one that existed.
    fn known_group(&self, index: usize) -> Option<&Group> {
        match index {
            0..=11 if !self.live_groups.is_empty() => {
                Some(&self.live_groups[index % self.live_groups.len()])
            }
            0..=13 if !self.groups.is_empty() => Some(&self.groups[index % self.groups.len()]),
            _ => None,
        }
    }

    /// The group id `index` points at: one that exists or existed, a ghost, or not a UUID.
    fn group(&self, index: usize) -> String {
        match self.known_group(index) {
            Some(group) => group.uuid.clone(),
            None if index == 15 => "not-a-uuid".into(),
            None => GHOST.into(),
        }
    }

    /// The concrete write for `op`.
    fn write(&self, op: &Op) -> Write {
        let pick = |pool: &[&str], index: usize| pool[index % pool.len()].to_string();
        match *op {
            Op::Register { name, tag } => Write::Register {
                username: pick(NAMES, name),
                tag: pick(TAGS, tag),
                password_hash: hash(),
            },
            Op::DeleteUser { target, requester } => Write::DeleteUser {
                uuid: self.user(target).uuid,
                // Mostly oneself, sometimes someone else.
                requester: self
                    .user(if requester < 5 { requester } else { target })
                    .uuid,
            },
            Op::SendPrivate { from, to, content } => {
                let to = self.user(to);
                Write::SendPrivate {
                    from: self.user(from).uuid,
                    username: to.username,
                    tag: to.tag,
                    content: pick(CONTENTS, content),
                }
            }
            Op::CreateGroup { creator, name } => Write::CreateGroup {
                name: pick(GROUP_NAMES, name),
                creator: self.user(creator).uuid,
            },
            Op::DeleteGroup { group, requester } => Write::DeleteGroup {
                group: self.group(group),
                requester: self.requester_for(group, requester),
            },
            Op::AddMember {
                group,
                user,
                requester,
            } => {
                let user = self.user(user);
                Write::AddMember {
                    group: self.group(group),
                    username: user.username,
                    tag: user.tag,
                    requester: self.requester_for(group, requester),
                }
            }
            Op::RemoveMember {
                group,
                user,
                requester,
            } => Write::RemoveMember {
                group: self.group(group),
                user: self.user(user).uuid,
                requester: self.requester_for(group, requester),
            },
            Op::SendGroup {
                group,
                from,
                content,
            } => Write::SendGroup {
                group: self.group(group),
                from: self.requester_for(group, from),
                content: pick(CONTENTS, content),
            },
        }
    }

    /// Mostly the group's creator (so that group writes often succeed), sometimes anyone.
    fn requester_for(&self, group: usize, requester: usize) -> String {
        match self.known_group(group) {
            Some(group) if requester >= 5 => group.creator.clone(),
            _ => self.user(requester).uuid,
        }
    }

    /// Remembers what a successful write created or deleted.
    fn learn(&mut self, write: &Write, reply: &Reply) {
        match (write, reply) {
            (Write::Register { .. }, Reply::User { user }) => {
                self.users.push(user.clone());
                self.live_users.push(user.clone());
            }
            (Write::DeleteUser { uuid, .. }, _) => {
                self.live_users.retain(|user| user.uuid != *uuid);
                self.live_groups.retain(|group| group.creator != *uuid);
            }
            (Write::CreateGroup { .. }, Reply::Group { group }) => {
                self.groups.push(group.clone());
                self.live_groups.push(group.clone());
            }
            (Write::DeleteGroup { group, .. }, _) => self.live_groups.retain(|g| g.uuid != *group),
            _ => {}
        }
    }

    /// Every read worth comparing between two stores, over everything known.
    fn reads(&self) -> Vec<Read> {
        let mut users = self.users.clone();
        users.push(self.user(15)); // the ghost
        let mut group_ids: Vec<String> = self.groups.iter().map(|g| g.uuid.clone()).collect();
        group_ids.push(GHOST.into());
        let mut reads = Vec::new();
        for name in NAMES {
            reads.push(Read::UsersByName {
                username: name.to_string(),
            });
            for tag in TAGS {
                reads.push(Read::User {
                    username: name.to_string(),
                    tag: tag.to_string(),
                });
                reads.push(Read::Credentials {
                    username: name.to_string(),
                    tag: tag.to_string(),
                });
            }
        }
        for user in &users {
            reads.push(Read::UserById {
                uuid: user.uuid.clone(),
            });
            reads.push(Read::GroupsOf {
                user: user.uuid.clone(),
            });
            reads.push(Read::ContactsOf {
                user: user.uuid.clone(),
            });
            for other in &users {
                reads.push(Read::PrivateChat {
                    window: Default::default(),
                    me: user.uuid.clone(),
                    username: other.username.clone(),
                    tag: other.tag.clone(),
                });
            }
            for group in &group_ids {
                reads.push(Read::Members {
                    group: group.clone(),
                    requester: user.uuid.clone(),
                });
                reads.push(Read::GroupChat {
                    window: Default::default(),
                    group: group.clone(),
                    requester: user.uuid.clone(),
                });
            }
        }
        for group in group_ids {
            reads.push(Read::Group { uuid: group });
        }
        reads
    }
}

/// Runs `ops` on `chat`'s writer; returns the entries appended and what was created. Checks on the
/// way that a refused write appends nothing.
fn run_workload(chat: &mut Chat, ops: &[Op]) -> (Vec<(WireEntry, Write)>, Known, Vec<AppError>) {
    let mut known = Known::default();
    let mut entries = Vec::new();
    let mut refusals = Vec::new();
    for op in ops {
        let write = known.write(op);
        let before = chat.store.last_seq();
        match chat.run(write.clone()) {
            Ok((reply, entry)) => {
                assert_eq!(entry.seq, before + 1);
                known.learn(&write, &reply);
                entries.push((entry, write));
            }
            Err(error) => {
                assert_ne!(error.status(), 503, "{error:?}");
                assert_eq!(chat.store.last_seq(), before, "refused: {error:?}");
                refusals.push(error);
            }
        }
    }
    (entries, known, refusals)
}

/// Both stores hold the same rows and answer every read the same.
fn assert_same(writer: &Store, replica: &Store, known: &Known) {
    assert_eq!(writer.applied(), replica.applied());
    assert_eq!(writer.dump().unwrap(), replica.dump().unwrap());
    for read in known.reads() {
        assert_eq!(writer.query(&read), replica.query(&read), "{read:?}");
    }
}

/// A follower takes `entries` (appended after its last) and applies them, committed.
fn follow(replica: &mut Store, entries: &[WireEntry]) {
    let last = replica.last_seq();
    replica.append(last, entries).unwrap();
    replica.apply_committed(replica.last_seq()).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Appending the writer's entries and applying them gives the writer's database; a snapshot
    /// taken halfway, restored into an empty store, plus the rest of the entries gives it too.
    #[test]
    fn replicas_converge(ops in workload(0..40), split in 0.0..1.0f64) {
        let mut chat = Chat::new();
        let (_, known, _) = run_workload(&mut chat, &ops);
        let entries = chat.store.entries_since(0, 10_000).unwrap();

        let mut replica = chat.sibling("replica.sqlite");
        let halfway = (entries.len() as f64 * split) as usize;
        follow(&mut replica, &entries[..halfway]);
        let mut late = chat.sibling("late.sqlite");
        late.restore(&replica.snapshot().unwrap()).unwrap();
        prop_assert_eq!(late.last_seq(), halfway as u64);
        follow(&mut replica, &entries[halfway..]);
        follow(&mut late, &entries[halfway..]);

        assert_same(&chat.store, &replica, &known);
        assert_same(&chat.store, &late, &known);
    }
}

/// A workload with a bit of everything, deterministic, for the tests below.
fn busy_writer() -> (Chat, Vec<WireEntry>, Known) {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let carol = chat.register("carol", "999");
    chat.say(&alice, &bob, "hi bob");
    chat.say(&bob, &alice, "hi alice");
    let lab = chat.group(&alice, "lab");
    chat.add(&lab, &bob);
    chat.add(&lab, &carol);
    chat.say_to_group(&carol, &lab, "hello lab");
    let doomed = chat.group(&bob, "doomed");
    chat.say_to_group(&bob, &doomed, "soon gone");
    chat.ok(Write::DeleteGroup {
        group: doomed.uuid.clone(),
        requester: bob.uuid.clone(),
    });
    chat.ok(Write::RemoveMember {
        group: lab.uuid.clone(),
        user: carol.uuid.clone(),
        requester: carol.uuid.clone(),
    });
    chat.ok(Write::DeleteUser {
        uuid: carol.uuid.clone(),
        requester: carol.uuid.clone(),
    });
    let entries = chat.store.entries_since(0, 1000).unwrap();
    assert_eq!(entries.len() as u64, chat.store.last_seq());
    let known = Known {
        users: vec![alice, bob, carol],
        groups: vec![lab, doomed],
        ..Known::default()
    };
    (chat, entries, known)
}

#[test]
fn in_order_application_matches_the_writer_ids_included() {
    let (chat, entries, known) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    follow(&mut replica, &entries);
    assert_same(&chat.store, &replica, &known);
}

#[test]
fn entries_are_applied_only_once_committed() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    let empty = replica.dump().unwrap();
    assert_eq!(replica.append(0, &entries).unwrap(), entries.len() as u64);
    assert_eq!(replica.dump().unwrap(), empty, "stored, not applied");
    let alice = Read::User {
        username: "alice".into(),
        tag: "1234".into(),
    };
    assert_eq!(replica.query(&alice).unwrap_err().status(), 404);
    // Committed up to 1: alice exists, bob not yet.
    let answers = replica.apply_committed(1).unwrap();
    assert_eq!(answers.len(), 1);
    let outcome: labctl_chat::Outcome = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(Ok(replica.query(&alice).unwrap()), outcome);
    assert_eq!(replica.applied(), 1);
    assert_eq!(replica.apply_committed(1).unwrap(), vec![], "nothing twice");
    // Reopened, the store knows both where its log ends and how far it applied.
    let path = replica.path().to_path_buf();
    drop(replica);
    let replica = Store::open(&path).unwrap();
    assert_eq!(
        (replica.applied(), replica.last_seq()),
        (1, entries.len() as u64)
    );
}

#[test]
fn entries_that_do_not_follow_the_log_are_a_gap_and_change_nothing() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    follow(&mut replica, &entries[..1]);
    let before = replica.dump().unwrap();
    // After an entry the log does not have.
    let error = replica.append(2, &entries[2..3]).unwrap_err();
    assert!(
        matches!(error, StoreError::Gap { last: 1, after: 2 }),
        "{error:?}"
    );
    // Numbered wrong.
    let error = replica.append(1, &entries[2..3]).unwrap_err();
    assert!(matches!(error, StoreError::Gap { .. }), "{error:?}");
    assert_eq!(replica.last_seq(), 1);
    assert_eq!(replica.dump().unwrap(), before);
}

#[test]
fn an_old_writers_tail_is_replaced_and_an_applied_entry_never_is() {
    let (chat, entries, known) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    follow(&mut replica, &entries[..3]);
    // An old writer's tail: two entries of another epoch, stored, not committed.
    let stale: Vec<WireEntry> = entries[3..5]
        .iter()
        .map(|e| WireEntry {
            epoch: e.epoch - 1,
            ..e.clone()
        })
        .collect();
    replica.append(3, &stale).unwrap();
    assert_eq!(replica.last_seq(), 5);
    // The new writer's log replaces it from entry 4 on.
    replica.append(3, &entries[3..]).unwrap();
    assert_eq!(replica.entries_since(3, 2).unwrap(), entries[3..5].to_vec());
    replica.apply_committed(replica.last_seq()).unwrap();
    assert_same(&chat.store, &replica, &known);
    // Applied entries are committed: discarding them is refused, and nothing changes.
    let before = replica.dump().unwrap();
    let error = replica.append(2, &stale).unwrap_err();
    assert!(
        matches!(error, StoreError::Committed { after: 2, .. }),
        "{error:?}"
    );
    assert_eq!(replica.dump().unwrap(), before);
    assert_eq!(replica.last_seq(), entries.len() as u64);
}

#[test]
fn a_key_applied_twice_takes_effect_once_and_answers_the_same() {
    let chat = Chat::new();
    let mut store = chat.sibling("keys.sqlite");
    let register = |name: &str| Command {
        write: Write::Register {
            username: name.into(),
            tag: "1234".into(),
            password_hash: hash(),
        },
        sent_at: "2023-11-14T22:13:20.000Z".into(),
    };
    let entry = |seq: u64, key: &str, command: &Command| WireEntry {
        epoch: EPOCH,
        seq,
        key: Some(key.into()),
        body: serde_json::to_string(command).unwrap(),
    };
    // A retry of alice's registration (same key), then the same key again with another body:
    // both answer as the first did; a different key is a new write.
    let entries = vec![
        entry(1, "u:k1", &register("alice")),
        entry(2, "u:k1", &register("alice")),
        entry(3, "u:k1", &register("mallory")),
        entry(4, "u:k2", &register("alice")),
    ];
    store.append(0, &entries).unwrap();
    let answers = store.apply_committed(4).unwrap();
    assert_eq!(answers[0].1, answers[1].1);
    assert_eq!(answers[0].1, answers[2].1);
    let fourth: labctl_chat::Outcome = serde_json::from_str(&answers[3].1).unwrap();
    assert_eq!(fourth.unwrap_err().status(), 409, "alice exists already");
    let mallory = Read::User {
        username: "mallory".into(),
        tag: "1234".into(),
    };
    assert_eq!(store.query(&mallory).unwrap_err().status(), 404);
    // The answers kept for keys travel with a snapshot.
    let mut copy = chat.sibling("copy.sqlite");
    copy.restore(&store.snapshot().unwrap()).unwrap();
    copy.append(4, &[entry(5, "u:k2", &register("bob"))])
        .unwrap();
    assert_eq!(copy.apply_committed(5).unwrap()[0].1, answers[3].1);
}

#[test]
fn an_entry_that_is_not_a_command_is_answered_400_everywhere_and_changes_nothing() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    follow(&mut replica, &entries[..1]);
    let before = replica.dump().unwrap();
    let bogus = WireEntry {
        epoch: EPOCH,
        seq: 2,
        key: None,
        body: "{\"not\": \"a command\"}".into(),
    };
    replica.append(1, &[bogus]).unwrap();
    let answers = replica.apply_committed(2).unwrap();
    let outcome: labctl_chat::Outcome = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(outcome.unwrap_err().status(), 400);
    assert_eq!(replica.applied(), 2);
    let meta = |dump: &str| {
        dump.lines()
            .filter(|l| !l.starts_with("meta "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(meta(&replica.dump().unwrap()), meta(&before));
}

#[test]
fn an_epoch_start_entry_applies_as_nothing() {
    let (chat, entries, known) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    follow(&mut replica, &entries);
    let marker = WireEntry {
        epoch: EPOCH + 1,
        seq: replica.last_seq() + 1,
        key: None,
        body: String::new(),
    };
    follow(&mut replica, &[marker]);
    assert_eq!(
        replica.applied_pos().unwrap(),
        Pos::new(EPOCH + 1, entries.len() as u64 + 1)
    );
    for read in known.reads() {
        assert_eq!(chat.store.query(&read), replica.query(&read), "{read:?}");
    }
}

#[test]
fn snapshot_restores_into_an_empty_store_and_entries_apply_on_top() {
    let (mut chat, _, mut known) = busy_writer();
    let snapshot = chat.store.snapshot().unwrap();
    assert_eq!(snapshot.base.seq, chat.store.applied());

    // Through JSON, as it would travel.
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: labctl_chat::Snapshot = serde_json::from_str(&json).unwrap();

    let mut fresh = chat.sibling("fresh.sqlite");
    fresh.restore(&snapshot).unwrap();
    assert_same(&chat.store, &fresh, &known);
    assert_eq!(
        fresh.last_seq(),
        snapshot.base.seq,
        "the log starts at the base"
    );
    let (prev, rest) = fresh.entries_after(0, 10).unwrap();
    assert_eq!((prev, rest), (snapshot.base, vec![]));

    // The writer goes on; the restored node follows.
    let after = chat.store.last_seq();
    let dave = chat.register("dave", "4242");
    let alice = known.users[0].clone();
    let lab = known.groups[0].clone();
    chat.add(&lab, &dave);
    chat.say_to_group(&dave, &lab, "hi, I'm new");
    chat.say(&dave, &alice, "hello alice");
    known.users.push(dave);
    follow(&mut fresh, &chat.store.entries_since(after, 100).unwrap());
    assert_same(&chat.store, &fresh, &known);
}

#[test]
fn restore_replaces_everything_that_was_there() {
    let (chat, _, known) = busy_writer();
    let mut other = Chat::new();
    let stale = other.register("stale", "000");
    other.say(&stale, &stale, "old data");
    other
        .store
        .restore(&chat.store.snapshot().unwrap())
        .unwrap();
    assert_same(&chat.store, &other.store, &known);
    assert!(!other.store.dump().unwrap().contains("stale"));

    // An empty snapshot empties the store.
    other.store.restore(&Default::default()).unwrap();
    assert_eq!(other.store.last_seq(), 0);
    assert_eq!(
        other.store.dump().unwrap(),
        Chat::new().store.dump().unwrap()
    );
}

/// The random workload is not vacuous: over a few fixed-seed workloads, every kind of write is
/// made and every kind of refusal happens.
#[test]
fn the_workload_exercises_every_change_and_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let workload = workload(40..41);
    let mut writes = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    for _ in 0..8 {
        let ops = workload.new_tree(&mut runner).unwrap().current();
        let mut chat = Chat::new();
        let (entries, _, refusals) = run_workload(&mut chat, &ops);
        for (_, write) in entries {
            let json = serde_json::to_value(&write).unwrap();
            writes.insert(json["write"].as_str().unwrap().to_string());
        }
        statuses.extend(refusals.iter().map(AppError::status));
    }
    assert_eq!(writes.len(), 8, "writes done: {writes:?}");
    assert_eq!(
        statuses,
        BTreeSet::from([401, 403, 404, 409, 422]),
        "refusals seen"
    );
}
