//! Reads: their answers, their order, and their refusals.

mod common;

use common::{at, groups, messages, status, users, Chat, GHOST};
use labctl_chat::{Read, Reply, Write};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[test]
fn conversations_are_oldest_first_with_rfc3339_times() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let carol = chat.register("carol", "999");
    let first = chat.say(&alice, &bob, "one");
    chat.say(&alice, &carol, "not in this conversation");
    let second = chat.say(&bob, &alice, "two");
    let third = chat.say(&alice, &bob, "three");

    let conversation = messages(chat.read(Read::PrivateChat {
        window: Default::default(),
        me: alice.uuid.clone(),
        username: "bob".into(),
        tag: "5678".into(),
    }));
    assert_eq!(conversation, vec![first.clone(), second, third]);
    // The same conversation from the other side.
    assert_eq!(
        messages(chat.read(Read::PrivateChat {
            window: Default::default(),
            me: bob.uuid.clone(),
            username: "alice".into(),
            tag: "1234".into(),
        })),
        conversation
    );
    let times: Vec<OffsetDateTime> = conversation
        .iter()
        .map(|message| OffsetDateTime::parse(&message.sent_at, &Rfc3339).unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
    // Messages 4 and 6 of the clock (registrations took ticks 1 to 3).
    assert_eq!(times[0], at(4));
    assert!(first.sent_at.ends_with('Z'), "{}", first.sent_at);

    // Group conversations too.
    let group = chat.group(&alice, "lab");
    chat.add(&group, &bob);
    let sent: Vec<_> = ["a", "b", "c"]
        .iter()
        .zip([&alice, &bob, &alice])
        .map(|(content, author)| chat.say_to_group(author, &group, content))
        .collect();
    assert_eq!(
        messages(chat.read(Read::GroupChat {
            window: Default::default(),
            group: group.uuid.clone(),
            requester: bob.uuid.clone()
        })),
        sent
    );
}

#[test]
fn sent_at_is_utc_with_milliseconds_whatever_the_offset_given() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let now = local_instant();
    let (reply, _) = chat
        .store
        .execute(
            &Write::SendPrivate {
                from: alice.uuid.clone(),
                username: "alice".into(),
                tag: "1234".into(),
                content: "hi".into(),
            },
            1,
            now,
        )
        .unwrap();
    let Reply::Message { message } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(message.sent_at, "2024-02-29T22:30:05.123Z");
    assert_eq!(
        OffsetDateTime::parse(&message.sent_at, &Rfc3339).unwrap(),
        now
    );
}

/// 2024-03-01T00:30:05.123+02:00: a local time in another day than its UTC time.
fn local_instant() -> OffsetDateTime {
    time::Date::from_calendar_date(2024, time::Month::March, 1)
        .unwrap()
        .with_hms_milli(0, 30, 5, 123)
        .unwrap()
        .assume_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
}

#[test]
fn users_by_name_sorted_by_tag() {
    let mut chat = Chat::new();
    let b = chat.register("sam", "500");
    let c = chat.register("sam", "900");
    let a = chat.register("sam", "100");
    chat.register("samuel", "100");
    assert_eq!(
        users(chat.read(Read::UsersByName {
            username: "sam".into()
        })),
        vec![a, b, c]
    );
    assert_eq!(
        users(chat.read(Read::UsersByName {
            username: "nobody".into()
        })),
        vec![],
        "a search that finds nothing is an empty list"
    );
    assert_eq!(
        status(chat.read(Read::UsersByName {
            username: "no body".into()
        })),
        422
    );
}

#[test]
fn single_user_lookups() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    assert_eq!(
        chat.read(Read::User {
            username: "alice".into(),
            tag: "1234".into()
        }),
        Ok(Reply::User { user: alice })
    );
    let missing = chat.read(Read::User {
        username: "alice".into(),
        tag: "4321".into(),
    });
    assert_eq!(missing.unwrap_err().to_string(), "no user alice#4321");
    assert_eq!(
        status(chat.read(Read::Credentials {
            username: "bob".into(),
            tag: "1234".into()
        })),
        404
    );
    assert_eq!(
        status(chat.read(Read::User {
            username: "alice".into(),
            tag: "12".into()
        })),
        422
    );
    assert_eq!(
        status(chat.read(Read::UserById { uuid: GHOST.into() })),
        404
    );
    assert_eq!(status(chat.read(Read::UserById { uuid: "x".into() })), 404);
    assert_eq!(status(chat.read(Read::Group { uuid: GHOST.into() })), 404);
    assert_eq!(status(chat.read(Read::Group { uuid: "x".into() })), 404);
}

#[test]
fn groups_of_sorted_by_name_then_uuid() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let zeta = chat.group(&alice, "zeta");
    let alpha_1 = chat.group(&alice, "alpha");
    let alpha_2 = chat.group(&bob, "alpha");
    chat.add(&alpha_2, &alice);
    chat.group(&bob, "bob only");
    let mut alphas = [alpha_1, alpha_2];
    alphas.sort_by(|x, y| x.uuid.cmp(&y.uuid));
    let expected = vec![alphas[0].clone(), alphas[1].clone(), zeta];
    assert_eq!(
        groups(chat.read(Read::GroupsOf {
            user: alice.uuid.clone()
        })),
        expected
    );
    assert_eq!(
        status(chat.read(Read::GroupsOf { user: GHOST.into() })),
        401,
        "the asking user no longer exists: not logged in"
    );
}

#[test]
fn contacts_both_directions_sorted_by_username_and_tag() {
    let mut chat = Chat::new();
    let me = chat.register("me", "100");
    let zed = chat.register("zed", "100");
    let amy_2 = chat.register("amy", "200");
    let amy_1 = chat.register("amy", "100");
    let stranger = chat.register("stranger", "100");
    chat.say(&me, &zed, "hi zed");
    chat.say(&amy_2, &me, "hi from amy");
    chat.say(&me, &amy_1, "hi amy");
    chat.say(&me, &amy_1, "again");
    chat.say(&zed, &stranger, "not mine");
    assert_eq!(
        users(chat.read(Read::ContactsOf {
            user: me.uuid.clone()
        })),
        vec![amy_1, amy_2, zed]
    );
    assert_eq!(
        users(chat.read(Read::ContactsOf {
            user: stranger.uuid
        })),
        vec![chat_user(&chat, "zed", "100")]
    );
    assert_eq!(
        status(chat.read(Read::ContactsOf { user: GHOST.into() })),
        401,
        "the asking user no longer exists: not logged in"
    );
}

fn chat_user(chat: &Chat, username: &str, tag: &str) -> labctl_chat::User {
    match chat.read(Read::User {
        username: username.into(),
        tag: tag.into(),
    }) {
        Ok(Reply::User { user }) => user,
        other => panic!("{other:?}"),
    }
}

#[test]
fn group_reads_are_for_members_only() {
    let mut chat = Chat::new();
    let alice = chat.register("alice", "1234");
    let bob = chat.register("bob", "5678");
    let group = chat.group(&alice, "lab");
    // A group's card is public; its members and conversation are not.
    assert_eq!(
        chat.read(Read::Group {
            uuid: group.uuid.clone()
        }),
        Ok(Reply::Group {
            group: group.clone()
        })
    );
    for read in [
        Read::Members {
            group: group.uuid.clone(),
            requester: bob.uuid.clone(),
        },
        Read::GroupChat {
            window: Default::default(),
            group: group.uuid.clone(),
            requester: bob.uuid.clone(),
        },
    ] {
        assert_eq!(status(chat.read(read)), 403);
    }
    for read in [
        Read::Members {
            group: group.uuid.clone(),
            requester: GHOST.into(),
        },
        Read::GroupChat {
            window: Default::default(),
            group: group.uuid.clone(),
            requester: GHOST.into(),
        },
        Read::PrivateChat {
            window: Default::default(),
            me: GHOST.into(),
            username: "alice".into(),
            tag: "1234".into(),
        },
    ] {
        assert_eq!(status(chat.read(read)), 401);
    }
    for read in [
        Read::Members {
            group: GHOST.into(),
            requester: alice.uuid.clone(),
        },
        Read::GroupChat {
            window: Default::default(),
            group: "nope".into(),
            requester: alice.uuid.clone(),
        },
        Read::PrivateChat {
            window: Default::default(),
            me: alice.uuid.clone(),
            username: "nobody".into(),
            tag: "1234".into(),
        },
    ] {
        assert_eq!(status(chat.read(read)), 404);
    }
}
