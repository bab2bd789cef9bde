//! The writer's path: every write's success and every way it is refused (401, 403, 404, 409, 422),
//! with nothing stored on refusal (`Chat::refused` compares `dump()` and `last_seq()` before and
//! after).

mod common;

use common::{groups, hash, messages, status, users, Chat, GHOST};
use labctl_chat::{AppError, Read, Reply, User, Write};

fn register(username: &str, tag: &str) -> Write {
    Write::Register {
        username: username.into(),
        tag: tag.into(),
        password_hash: hash(),
    }
}

/// A dump without the log's rows.
fn tables_only(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("log "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn register_creates_a_user_with_its_hash() {
    let mut chat = Chat::new();
    let (reply, entry) = chat.run(register("alice", "1234")).unwrap();
    let Reply::User { user } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        (user.username.as_str(), user.tag.as_str()),
        ("alice", "1234")
    );
    assert!(uuid::Uuid::try_parse(&user.uuid).is_ok());
    assert_eq!(entry.seq, 1);
    let logged = common::logged(&entry);
    assert!(matches!(logged.write, Write::Register { .. }), "{logged:?}");
    assert_eq!(
        chat.read(Read::Credentials {
            username: "alice".into(),
            tag: "1234".into()
        }),
        Ok(Reply::Credentials {
            user: user.clone(),
            password_hash: hash(),
            generation: 0,
        })
    );
    assert!(labctl_chat::password::verify(
        "correct horse battery",
        &hash()
    ));
    assert_eq!(
        chat.read(Read::UserById {
            uuid: user.uuid.clone()
        }),
        Ok(Reply::User { user })
    );
    // The same name with another tag, and a Unicode name, are other users.
    chat.register("alice", "123456");
    chat.register("Zoë", "000");
    assert_eq!(chat.store.last_seq(), 3);
}

#[test]
fn register_refusals() {
    let mut chat = Chat::new();
    chat.register("alice", "1234");

    let message = chat.refused(register("alice", "1234"), 409);
    assert_eq!(message, "user alice#1234 already exists");

    let message = chat.refused(register("alice", "12"), 422);
    assert_eq!(message, "tag must be 3 to 6 digits, got \"12\"");
    chat.refused(register("alice", "1234567"), 422);
    chat.refused(register("alice", "12a4"), 422);
    let message = chat.refused(register("al ice", "1234"), 422);
    assert!(message.contains("\"al ice\""), "{message}");
    chat.refused(register("", "1234"), 422);
    chat.refused(register(&"a".repeat(33), "1234"), 422);

    // A plain password instead of a hash is a bug at the input node, refused outright.
    let message = chat.refused(
        Write::Register {
            username: "bob".into(),
            tag: "1234".into(),
            password_hash: "hunter22".into(),
        },
        400,
    );
    assert!(message.contains("PHC"), "{message}");
}

#[test]
fn delete_user_removes_it_its_memberships_and_its_groups_but_keeps_its_messages() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let carol = chat.register("carol", "999");

    // alice's own group, with bob in it and a message.
    let mine = chat.group(&alice, "alice's");
    chat.add(&mine, &bob);
    chat.say_to_group(&bob, &mine, "in alice's group");
    // bob's group, with alice in it and a message by alice.
    let theirs = chat.group(&bob, "bob's");
    chat.add(&theirs, &alice);
    let kept = chat.say_to_group(&alice, &theirs, "alice was here");
    // A private message each way.
    let to_bob = chat.say(&alice, &bob, "hi bob");
    let to_alice = chat.say(&bob, &alice, "hi alice");
    chat.say(&carol, &bob, "hi from carol");

    let reply = chat.ok(Write::DeleteUser {
        uuid: alice.uuid.clone(),
        requester: alice.uuid.clone(),
    });
    assert_eq!(reply, Reply::Deleted);

    assert_eq!(
        status(chat.read(Read::UserById {
            uuid: alice.uuid.clone()
        })),
        404
    );
    // Her group went, with its members and messages.
    assert_eq!(
        status(chat.read(Read::Group {
            uuid: mine.uuid.clone()
        })),
        404
    );
    assert_eq!(
        groups(chat.read(Read::GroupsOf {
            user: bob.uuid.clone()
        })),
        vec![theirs.clone()]
    );
    // The log remembers everything; the tables must not.
    let dump = tables_only(&chat.store.dump().unwrap());
    assert!(
        !dump.contains(&mine.uuid),
        "nothing of alice's group is left:\n{dump}"
    );
    assert!(!dump.contains("in alice's group"));
    // Her membership in bob's group went; her message there stays, attributed to her uuid.
    assert_eq!(
        users(chat.read(Read::Members {
            group: theirs.uuid.clone(),
            requester: bob.uuid.clone()
        })),
        vec![bob.clone()]
    );
    assert_eq!(
        messages(chat.read(Read::GroupChat {
            window: Default::default(),
            group: theirs.uuid.clone(),
            requester: bob.uuid.clone()
        })),
        vec![kept]
    );
    // Her private messages stay in the database, but she is no longer anyone's contact.
    assert!(dump.contains(&to_bob.uuid) && dump.contains(&to_alice.uuid));
    assert_eq!(
        users(chat.read(Read::ContactsOf {
            user: bob.uuid.clone()
        })),
        vec![carol]
    );
    // Deleted users can no longer act.
    let message = chat.refused(
        Write::CreateGroup {
            name: "again".into(),
            creator: alice.uuid.clone(),
        },
        401,
    );
    assert_eq!(message, "your user no longer exists");
    // The name is free again.
    chat.register("alice", "1234");
}

#[test]
fn delete_user_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let delete = |uuid: &str, requester: &str| Write::DeleteUser {
        uuid: uuid.into(),
        requester: requester.into(),
    };
    chat.refused(delete(&alice.uuid, &bob.uuid), 403);
    chat.refused(delete(&alice.uuid, GHOST), 401);
    chat.refused(delete(GHOST, &alice.uuid), 404);
    chat.refused(delete("not-a-uuid", &alice.uuid), 404);
}

#[test]
fn send_private_and_to_oneself() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let (reply, entry) = chat
        .run(Write::SendPrivate {
            from: alice.uuid.clone(),
            username: "bob".into(),
            tag: "5678".into(),
            content: "  hello, bob  ".into(),
        })
        .unwrap();
    let Reply::Message { message } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(message.author, alice.uuid);
    assert_eq!(
        message.content, "  hello, bob  ",
        "content is stored as sent"
    );
    assert!(uuid::Uuid::try_parse(&message.uuid).is_ok());
    let logged = common::logged(&entry);
    assert!(
        matches!(logged.write, Write::SendPrivate { .. }),
        "{logged:?}"
    );
    assert_eq!(
        logged.sent_at, message.sent_at,
        "the time the input node took it"
    );
    let note = chat.say(&alice, &alice, "note to self");
    assert_eq!(
        messages(chat.read(Read::PrivateChat {
            window: Default::default(),
            me: alice.uuid.clone(),
            username: "alice".into(),
            tag: "1234".into()
        })),
        vec![note]
    );
    assert_eq!(
        messages(chat.read(Read::PrivateChat {
            window: Default::default(),
            me: bob.uuid.clone(),
            username: "alice".into(),
            tag: "1234".into()
        })),
        vec![message]
    );
}

#[test]
fn send_private_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    chat.register("bob", "5678");
    let send = |from: &str, username: &str, tag: &str, content: &str| Write::SendPrivate {
        from: from.into(),
        username: username.into(),
        tag: tag.into(),
        content: content.into(),
    };
    chat.refused(send(GHOST, "bob", "5678", "hi"), 401);
    chat.refused(send(&alice.uuid, "bob", "9999", "hi"), 404);
    chat.refused(send(&alice.uuid, "nobody", "5678", "hi"), 404);
    chat.refused(send(&alice.uuid, "bob", "56", "hi"), 422);
    chat.refused(send(&alice.uuid, "bob", "5678", ""), 422);
    chat.refused(send(&alice.uuid, "bob", "5678", " \n\t "), 422);
    chat.refused(send(&alice.uuid, "bob", "5678", &"x".repeat(4001)), 422);
    chat.ok(send(&alice.uuid, "bob", "5678", &"x".repeat(4000)));
}

#[test]
fn create_group_makes_its_creator_the_first_member() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let group = chat.group(&alice, "  lab 7  ");
    assert_eq!(group.name, "lab 7", "the name is stored trimmed");
    assert_eq!(group.creator, alice.uuid);
    assert_eq!(
        chat.read(Read::Group {
            uuid: group.uuid.clone()
        }),
        Ok(Reply::Group {
            group: group.clone()
        })
    );
    assert_eq!(
        users(chat.read(Read::Members {
            group: group.uuid.clone(),
            requester: alice.uuid.clone()
        })),
        vec![alice.clone()]
    );
    assert_eq!(
        groups(chat.read(Read::GroupsOf { user: alice.uuid })),
        vec![group]
    );
}

#[test]
fn create_group_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let create = |name: &str, creator: &str| Write::CreateGroup {
        name: name.into(),
        creator: creator.into(),
    };
    chat.refused(create("lab", GHOST), 401);
    chat.refused(create("", &alice.uuid), 422);
    chat.refused(create("   ", &alice.uuid), 422);
    chat.refused(create(&"g".repeat(65), &alice.uuid), 422);
}

#[test]
fn delete_group_removes_its_members_and_messages() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    let other = chat.group(&alice, "other");
    chat.add(&group, &bob);
    chat.say_to_group(&bob, &group, "bye soon");
    let kept = chat.say_to_group(&alice, &other, "still here");

    let reply = chat.ok(Write::DeleteGroup {
        group: group.uuid.clone(),
        requester: alice.uuid.clone(),
    });
    assert_eq!(reply, Reply::Deleted);
    assert_eq!(
        status(chat.read(Read::Group {
            uuid: group.uuid.clone()
        })),
        404
    );
    assert_eq!(
        groups(chat.read(Read::GroupsOf {
            user: bob.uuid.clone()
        })),
        vec![]
    );
    let dump = tables_only(&chat.store.dump().unwrap());
    assert!(
        !dump.contains(&group.uuid),
        "rows left of the deleted group:\n{dump}"
    );
    assert_eq!(
        messages(chat.read(Read::GroupChat {
            window: Default::default(),
            group: other.uuid.clone(),
            requester: alice.uuid.clone()
        })),
        vec![kept]
    );
}

#[test]
fn delete_group_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    let delete = |group: &str, requester: &str| Write::DeleteGroup {
        group: group.into(),
        requester: requester.into(),
    };
    let message = chat.refused(delete(&group.uuid, &bob.uuid), 403);
    assert!(message.contains("creator"), "{message}");
    chat.refused(delete(&group.uuid, GHOST), 401);
    chat.refused(delete(GHOST, &alice.uuid), 404);
    chat.refused(delete("../etc/passwd", &alice.uuid), 404);
}

#[test]
fn add_member() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    let (reply, entry) = chat
        .run(Write::AddMember {
            group: group.uuid.clone(),
            username: "bob".into(),
            tag: "5678".into(),
            requester: alice.uuid.clone(),
        })
        .unwrap();
    assert_eq!(reply, Reply::User { user: bob.clone() });
    let logged = common::logged(&entry);
    assert!(
        matches!(logged.write, Write::AddMember { .. }),
        "{logged:?}"
    );
    assert_eq!(
        users(chat.read(Read::Members {
            group: group.uuid.clone(),
            requester: bob.uuid.clone()
        })),
        vec![alice, bob]
    );
}

#[test]
fn add_member_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    chat.register("carol", "999");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    let add = |group: &str, username: &str, tag: &str, requester: &str| Write::AddMember {
        group: group.into(),
        username: username.into(),
        tag: tag.into(),
        requester: requester.into(),
    };
    // Only the creator adds, even a member may not.
    chat.refused(add(&group.uuid, "carol", "999", &bob.uuid), 403);
    chat.refused(add(&group.uuid, "carol", "999", GHOST), 401);
    chat.refused(add(GHOST, "carol", "999", &alice.uuid), 404);
    chat.refused(add("nope", "carol", "999", &alice.uuid), 404);
    chat.refused(add(&group.uuid, "dave", "999", &alice.uuid), 404);
    chat.refused(add(&group.uuid, "carol", "99", &alice.uuid), 422);
    let message = chat.refused(add(&group.uuid, "bob", "5678", &alice.uuid), 409);
    assert_eq!(message, "bob#5678 is already a member of group \"lab\"");
    chat.refused(add(&group.uuid, "alice", "1234", &alice.uuid), 409);
}

#[test]
fn remove_member_by_the_creator_or_the_member_itself() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let carol = chat.register("carol", "999");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    chat.add(&group, &carol);
    let remove = |user: &str, requester: &str| Write::RemoveMember {
        group: group.uuid.clone(),
        user: user.into(),
        requester: requester.into(),
    };
    assert_eq!(chat.ok(remove(&bob.uuid, &alice.uuid)), Reply::Deleted);
    assert_eq!(chat.ok(remove(&carol.uuid, &carol.uuid)), Reply::Deleted);
    assert_eq!(
        users(chat.read(Read::Members {
            group: group.uuid.clone(),
            requester: alice.uuid.clone()
        })),
        vec![alice.clone()]
    );
    // Removed members lose access.
    assert_eq!(
        status(chat.read(Read::GroupChat {
            window: Default::default(),
            group: group.uuid.clone(),
            requester: bob.uuid.clone()
        })),
        403
    );
}

#[test]
fn remove_member_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let carol = chat.register("carol", "999");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    chat.add(&group, &carol);
    let remove = |group: &str, user: &str, requester: &str| Write::RemoveMember {
        group: group.into(),
        user: user.into(),
        requester: requester.into(),
    };
    // A member may leave, not remove another.
    chat.refused(remove(&group.uuid, &bob.uuid, &carol.uuid), 403);
    chat.refused(remove(&group.uuid, &bob.uuid, GHOST), 401);
    chat.refused(remove(GHOST, &bob.uuid, &alice.uuid), 404);
    chat.refused(remove(&group.uuid, GHOST, &alice.uuid), 404);
    chat.refused(remove(&group.uuid, "bob", &alice.uuid), 404);
    let outsider = chat.register("dave", "111");
    chat.refused(remove(&group.uuid, &outsider.uuid, &alice.uuid), 404);
    chat.refused(remove(&group.uuid, &outsider.uuid, &outsider.uuid), 404);
}

#[test]
fn send_group() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    let (reply, entry) = chat
        .run(Write::SendGroup {
            group: group.uuid.clone(),
            from: bob.uuid.clone(),
            content: "hello, lab".into(),
        })
        .unwrap();
    let Reply::Message { message } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(message.author, bob.uuid);
    let logged = common::logged(&entry);
    assert!(
        matches!(logged.write, Write::SendGroup { .. }),
        "{logged:?}"
    );
    assert_eq!(
        logged.sent_at, message.sent_at,
        "the time the input node took it"
    );
    assert_eq!(
        messages(chat.read(Read::GroupChat {
            window: Default::default(),
            group: group.uuid,
            requester: alice.uuid
        })),
        vec![message]
    );
}

#[test]
fn send_group_refusals() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let outsider = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    let send = |group: &str, from: &str, content: &str| Write::SendGroup {
        group: group.into(),
        from: from.into(),
        content: content.into(),
    };
    let message = chat.refused(send(&group.uuid, &outsider.uuid, "hi"), 403);
    assert!(message.contains("members"), "{message}");
    chat.refused(send(&group.uuid, GHOST, "hi"), 401);
    chat.refused(send(GHOST, &alice.uuid, "hi"), 404);
    chat.refused(send("12", &alice.uuid, "hi"), 404);
    chat.refused(send(&group.uuid, &alice.uuid, "  "), 422);
    chat.refused(send(&group.uuid, &alice.uuid, &"y".repeat(4001)), 422);
}

#[test]
fn a_clock_out_of_range_is_unavailable_not_a_panic() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    // 9999-12-31T23:00:00-10:00 is in the year 10000 in UTC: not representable in RFC 3339.
    let late = time::Date::from_calendar_date(9999, time::Month::December, 31)
        .unwrap()
        .with_hms(23, 0, 0)
        .unwrap()
        .assume_offset(time::UtcOffset::from_hms(-10, 0, 0).unwrap());
    let before = chat.store.dump().unwrap();
    let error = chat
        .store
        .execute(
            &Write::SendPrivate {
                from: alice.uuid.clone(),
                username: "alice".into(),
                tag: "1234".into(),
                content: "hi".into(),
            },
            common::EPOCH,
            late,
        )
        .unwrap_err();
    assert!(matches!(error, AppError::Unavailable(_)), "{error:?}");
    assert_eq!(chat.store.dump().unwrap(), before);
}

#[test]
fn logging_out_raises_the_session_generation_on_every_copy() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let generation = |store: &labctl_chat::Store, user: &User| {
        store.query(&Read::Generation {
            user: user.uuid.clone(),
        })
    };
    assert_eq!(
        generation(&chat.store, &alice),
        Ok(Reply::Generation { generation: 0 })
    );
    for expected in [1, 2] {
        let end = Write::EndSessions {
            user: alice.uuid.clone(),
        };
        assert_eq!(
            chat.ok(end),
            Reply::Generation {
                generation: expected
            }
        );
    }
    assert_eq!(
        generation(&chat.store, &alice),
        Ok(Reply::Generation { generation: 2 })
    );
    assert_eq!(
        generation(&chat.store, &bob),
        Ok(Reply::Generation { generation: 0 }),
        "another user's sessions go on"
    );
    // A login reads the generation with the credentials, for the token it issues.
    let Ok(Reply::Credentials { generation: 2, .. }) = chat.read(Read::Credentials {
        username: "alice".into(),
        tag: "1234".into(),
    }) else {
        panic!("alice's credentials carry generation 2")
    };

    // A replica applying the same log, and a node restored from a snapshot, agree.
    let mut replica = chat.sibling("replica.sqlite");
    replica
        .append(0, &chat.store.entries_since(0, 100).unwrap())
        .unwrap();
    replica.apply_committed(chat.store.last_seq()).unwrap();
    let mut fresh = chat.sibling("fresh.sqlite");
    fresh.restore(&chat.store.snapshot().unwrap()).unwrap();
    for copy in [&replica, &fresh] {
        assert_eq!(copy.dump().unwrap(), chat.store.dump().unwrap());
        assert_eq!(
            generation(copy, &alice),
            Ok(Reply::Generation { generation: 2 })
        );
    }

    // A user that no longer exists is not logged in.
    chat.refused(Write::EndSessions { user: GHOST.into() }, 401);
    assert_eq!(
        status(chat.read(Read::Generation { user: GHOST.into() })),
        401
    );
}
