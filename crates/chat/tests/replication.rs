//! The replica's path: a replica that applies the writer's entries in order holds exactly the
//! writer's rows and answers every read the same; gaps, duplicates and divergence are detected;
//! snapshots start a replica from nothing.

mod common;

use common::{hash, Chat, EPOCH, GHOST};
use labctl_chat::{AppError, Change, Entry, Group, Read, Store, StoreError, User, Write};
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
    fn learn(&mut self, change: &Change) {
        match change {
            Change::UserAdded { user, .. } => {
                self.users.push(user.clone());
                self.live_users.push(user.clone());
            }
            Change::UserDeleted { uuid } => {
                self.live_users.retain(|user| user.uuid != *uuid);
                self.live_groups.retain(|group| group.creator != *uuid);
            }
            Change::GroupAdded { group } => {
                self.groups.push(group.clone());
                self.live_groups.push(group.clone());
            }
            Change::GroupDeleted { uuid } => self.live_groups.retain(|group| group.uuid != *uuid),
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
fn run_workload(chat: &mut Chat, ops: &[Op]) -> (Vec<Entry>, Known, Vec<AppError>) {
    let mut known = Known::default();
    let mut entries = Vec::new();
    let mut refusals = Vec::new();
    for op in ops {
        let write = known.write(op);
        let before = chat.store.last_seq();
        match chat.run(write) {
            Ok((_, entry)) => {
                assert_eq!(entry.seq, before + 1);
                known.learn(&entry.change);
                entries.push(entry);
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
    assert_eq!(writer.last_seq(), replica.last_seq());
    assert_eq!(writer.dump().unwrap(), replica.dump().unwrap());
    for read in known.reads() {
        assert_eq!(writer.query(&read), replica.query(&read), "{read:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Applying the writer's entries in order gives the writer's database; a snapshot taken
    /// halfway, restored into an empty store, plus the rest of the entries gives it too.
    #[test]
    fn replicas_converge(ops in workload(0..40), split in 0.0..1.0f64) {
        let mut chat = Chat::new();
        let (entries, known, _) = run_workload(&mut chat, &ops);

        let mut replica = chat.sibling("replica.sqlite");
        let halfway = (entries.len() as f64 * split) as usize;
        for entry in &entries[..halfway] {
            replica.apply(entry).unwrap();
        }
        let mut late = chat.sibling("late.sqlite");
        late.restore(&replica.snapshot().unwrap()).unwrap();
        prop_assert_eq!(late.last_seq(), halfway as u64);
        for entry in &entries[halfway..] {
            replica.apply(entry).unwrap();
            late.apply(entry).unwrap();
        }

        assert_same(&chat.store, &replica, &known);
        assert_same(&chat.store, &late, &known);
    }
}

/// A workload with a bit of everything, deterministic, for the tests below.
fn busy_writer() -> (Chat, Vec<Entry>, Known) {
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
fn in_order_application_matches_the_writer() {
    let (chat, entries, known) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    for entry in &entries {
        replica.apply(entry).unwrap();
    }
    assert_same(&chat.store, &replica, &known);
}

#[test]
fn a_missing_entry_is_a_gap_and_changes_nothing() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    replica.apply(&entries[0]).unwrap();
    let before = replica.dump().unwrap();

    let error = replica.apply(&entries[2]).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Gap {
                expected: 2,
                got: 3
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "replication log gap: expected entry 2, got entry 3"
    );
    assert_eq!(replica.last_seq(), 1);
    assert_eq!(replica.dump().unwrap(), before);

    // Fetching what is missing from the writer fills the gap.
    for entry in chat.store.entries_since(replica.last_seq(), 2).unwrap() {
        replica.apply(&entry).unwrap();
    }
    assert_eq!(replica.last_seq(), 3);
    assert_eq!(
        chat.store.entries_since(1, 2).unwrap(),
        entries[1..3].to_vec()
    );
}

#[test]
fn a_duplicate_is_harmless() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    for entry in &entries[..5] {
        replica.apply(entry).unwrap();
    }
    let before = replica.dump().unwrap();
    replica.apply(&entries[4]).unwrap();
    replica.apply(&entries[0]).unwrap();
    assert_eq!(replica.last_seq(), 5);
    assert_eq!(replica.dump().unwrap(), before);
}

#[test]
fn a_different_entry_at_an_existing_seq_is_divergence() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    for entry in &entries[..3] {
        replica.apply(entry).unwrap();
    }
    let before = replica.dump().unwrap();
    let mut other = entries[1].clone();
    other.change = entries[2].change.clone();
    assert!(matches!(
        replica.apply(&other),
        Err(StoreError::Diverged { seq: 2 })
    ));
    // The same change made in another epoch is another entry.
    let mut other_epoch = entries[1].clone();
    other_epoch.epoch = EPOCH + 1;
    assert!(matches!(
        replica.apply(&other_epoch),
        Err(StoreError::Diverged { seq: 2 })
    ));
    assert_eq!(replica.dump().unwrap(), before);
}

#[test]
fn a_change_that_does_not_fit_is_refused_and_changes_nothing() {
    let (chat, entries, _) = busy_writer();
    let mut replica = chat.sibling("replica.sqlite");
    replica.apply(&entries[0]).unwrap();
    let before = replica.dump().unwrap();
    // Entry 2 registers bob; a member added to a group this replica does not hold cannot apply.
    let bogus = Entry {
        epoch: EPOCH,
        seq: 2,
        change: Change::MemberAdded {
            group: GHOST.into(),
            user: GHOST.into(),
        },
    };
    let error = replica.apply(&bogus).unwrap_err();
    assert!(matches!(error, StoreError::Sqlite { .. }), "{error:?}");
    assert!(
        error.to_string().contains("replica.sqlite"),
        "the file is named: {error}"
    );
    assert_eq!(replica.last_seq(), 1);
    assert_eq!(replica.dump().unwrap(), before);
}

#[test]
fn snapshot_restores_into_an_empty_store_and_entries_apply_on_top() {
    let (mut chat, _, mut known) = busy_writer();
    let snapshot = chat.store.snapshot().unwrap();
    assert_eq!(snapshot.last_seq(), chat.store.last_seq());

    // Through JSON, as it would travel.
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: labctl_chat::Snapshot = serde_json::from_str(&json).unwrap();

    let mut fresh = chat.sibling("fresh.sqlite");
    fresh.restore(&snapshot).unwrap();
    assert_same(&chat.store, &fresh, &known);

    // The writer goes on; the restored replica follows.
    let after = chat.store.last_seq();
    let dave = chat.register("dave", "4242");
    let alice = known.users[0].clone();
    let lab = known.groups[0].clone();
    chat.add(&lab, &dave);
    chat.say_to_group(&dave, &lab, "hi, I'm new");
    chat.say(&dave, &alice, "hello alice");
    known.users.push(dave);
    for entry in chat.store.entries_since(after, 100).unwrap() {
        fresh.apply(&entry).unwrap();
    }
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

#[test]
fn a_snapshot_with_a_broken_log_is_refused() {
    let (chat, _, _) = busy_writer();
    let mut snapshot = chat.store.snapshot().unwrap();
    snapshot.log.remove(1);
    let mut fresh = chat.sibling("fresh.sqlite");
    let before = fresh.dump().unwrap();
    assert!(matches!(
        fresh.restore(&snapshot),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(fresh.dump().unwrap(), before);
    assert_eq!(fresh.last_seq(), 0);
}

/// The random workload is not vacuous: over a few fixed-seed workloads, every kind of change is
/// made and every kind of refusal happens.
#[test]
fn the_workload_exercises_every_change_and_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let workload = workload(40..41);
    let mut changes = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    for _ in 0..8 {
        let ops = workload.new_tree(&mut runner).unwrap().current();
        let mut chat = Chat::new();
        let (entries, _, refusals) = run_workload(&mut chat, &ops);
        for entry in entries {
            let json = serde_json::to_value(&entry.change).unwrap();
            changes.insert(json["change"].as_str().unwrap().to_string());
        }
        statuses.extend(refusals.iter().map(AppError::status));
    }
    assert_eq!(changes.len(), 8, "changes made: {changes:?}");
    assert_eq!(
        statuses,
        BTreeSet::from([401, 403, 404, 409, 422]),
        "refusals seen"
    );
}
