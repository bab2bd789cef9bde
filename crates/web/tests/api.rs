//! The JSON side of SPEC §5 over real HTTP: every route's happy path, every status code, and
//! nothing stored on any refusal.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use labctl_chat::ops::{ChatMessage, Group, User};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// The key set of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// A one-node lab and a logged-in JSON client for each of `users` (seeded in the store).
async fn lab(users: &[(&str, &str)]) -> (Data, Server, Vec<(Client, User)>) {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let mut clients = Vec::new();
    for (username, tag) in users {
        let user = data.user(username, tag).await;
        let client = client(true);
        login(&client, &server.url, username, tag).await;
        clients.push((client, user));
    }
    (data, server, clients)
}

#[tokio::test]
async fn every_route_answers_its_happy_path_in_json() {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let alice = client(true);

    assert_eq!(
        bare_client().get(format!("{url}/healthz")).text_of().await,
        "ok"
    );
    let home: Value = alice.get(format!("{url}/")).json_of().await;
    assert_eq!(home["user"], Value::Null);
    for form in ["register", "login"] {
        let response = alice.get(format!("{url}/{form}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let fields: Value = response.json().await.unwrap();
        assert_eq!(fields["fields"], json!(["username", "tag", "password"]));
    }

    // Register: 201 and the user, exactly {"uuid", "username", "tag"}.
    let response = alice
        .post(format!("{url}/register"))
        .json(&json!({"username": "alice", "tag": "1234", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(keys(&body), set(&["uuid", "username", "tag"]));
    let me: User = serde_json::from_value(body).unwrap();
    assert_eq!((me.username.as_str(), me.tag.as_str()), ("alice", "1234"));

    // Login: 200 and the same user.
    let response = login(&alice, url, "alice", "1234").await;
    assert!(response.headers().contains_key("x-csrf-token"));
    assert_eq!(response.json::<User>().await.unwrap(), me);
    let home: Value = alice.get(format!("{url}/")).json_of().await;
    assert_eq!(home["user"], json!(me));
    assert_eq!(home["node"], json!(7));

    let bob = data.user("bob", "456").await;
    let carol = data.user("carol", "789").await;

    // Users: search, by name, one.
    let found: Vec<User> = alice
        .get(format!("{url}/users?username=bob"))
        .json_of()
        .await;
    assert_eq!(found, vec![bob.clone()]);
    let found: Vec<User> = alice.get(format!("{url}/users/bob")).json_of().await;
    assert_eq!(found, vec![bob.clone()]);
    let nobody: Vec<User> = alice.get(format!("{url}/users/nobody")).json_of().await;
    assert!(
        nobody.is_empty(),
        "a search that finds nothing is an empty list"
    );
    let one = alice
        .get(format!("{url}/users/bob/456"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(one.json::<User>().await.unwrap(), bob);

    // A private conversation, oldest first, seen the same from both sides.
    for text in ["hello bob", "are you there?"] {
        let response = alice
            .post(format!("{url}/users/bob/456/chat"))
            .json(&json!({ "content": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(keys(&body), set(&["uuid", "author", "content", "sent_at"]));
        assert_eq!(body["author"], json!(me.uuid));
        assert_eq!(body["content"], json!(text));
        time::OffsetDateTime::parse(
            body["sent_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("sent_at is RFC 3339");
    }
    let conversation: Vec<ChatMessage> = alice
        .get(format!("{url}/users/bob/456/chat"))
        .json_of()
        .await;
    let texts: Vec<&str> = conversation.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["hello bob", "are you there?"]);
    let bob_client = client(true);
    login(&bob_client, url, "bob", "456").await;
    let seen_by_bob: Vec<ChatMessage> = bob_client
        .get(format!("{url}/users/alice/1234/chat"))
        .json_of()
        .await;
    assert_eq!(seen_by_bob, conversation);
    let home: Value = bob_client.get(format!("{url}/")).json_of().await;
    assert_eq!(home["contacts"], json!([me]));

    // Groups: create, list, show, members, add, chat, remove, delete.
    let response = alice
        .post(format!("{url}/groups"))
        .json(&json!({"name": "lab seven"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(keys(&body), set(&["uuid", "name", "creator"]));
    let group: Group = serde_json::from_value(body).unwrap();
    assert_eq!(group.creator, me.uuid);
    let g = &group.uuid;
    let mine: Vec<Group> = alice.get(format!("{url}/groups")).json_of().await;
    assert_eq!(mine, vec![group.clone()]);
    let shown: Group = alice.get(format!("{url}/groups/{g}")).json_of().await;
    assert_eq!(shown, group);
    for (username, tag, user) in [("bob", "456", &bob), ("carol", "789", &carol)] {
        let response = alice
            .post(format!("{url}/groups/{g}/members"))
            .json(&json!({"username": username, "tag": tag}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(&response.json::<User>().await.unwrap(), user);
    }
    let members: Vec<User> = bob_client
        .get(format!("{url}/groups/{g}/members"))
        .json_of()
        .await;
    let mut names: Vec<&str> = members.iter().map(|u| u.username.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob", "carol"]);
    for (sender, text) in [
        (&alice, "first"),
        (&bob_client, "second"),
        (&alice, "third"),
    ] {
        let response = sender
            .post(format!("{url}/groups/{g}/chat"))
            .json(&json!({ "content": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let conversation: Vec<ChatMessage> = bob_client
        .get(format!("{url}/groups/{g}/chat"))
        .json_of()
        .await;
    let texts: Vec<&str> = conversation.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    assert_eq!(conversation[1].author, bob.uuid);

    let removed = alice
        .delete(format!("{url}/groups/{g}/members/{}", carol.uuid))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let left = bob_client
        .delete(format!("{url}/groups/{g}/members/{}", bob.uuid))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), StatusCode::NO_CONTENT, "a member may leave");
    let deleted = alice
        .delete(format!("{url}/groups/{g}"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = alice.get(format!("{url}/groups/{g}")).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    // Delete one's own account (ends the session), then log out.
    let deleted = bob_client
        .delete(format!("{url}/users/{}", bob.uuid))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        set_cookie(&deleted, "labctl_session").as_deref(),
        Some(""),
        "the session cookie is cleared"
    );
    let gone = alice
        .get(format!("{url}/users/bob/456"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let logout = alice.get(format!("{url}/logout")).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let home: Value = alice.get(format!("{url}/")).json_of().await;
    assert_eq!(home["user"], Value::Null);
}

#[tokio::test]
async fn malformed_requests_are_400_and_store_nothing() {
    let (data, server, clients) = lab(&[("alice", "123"), ("bob", "456")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    let before = data.dump().await;
    let send = format!("{url}/users/bob/456/chat");

    let cases: Vec<(&str, &str, &str, &str)> = vec![
        // (path, content type, body, what the message says)
        (
            &send,
            "application/json",
            "{\"content\": ",
            "not valid JSON",
        ),
        (&send, "application/json", "", "not valid JSON"),
        (
            &send,
            "application/json",
            "{\"content\": 5}",
            "expected fields",
        ),
        (&send, "application/json", "[\"hi\"]", "JSON object"),
        (&send, "application/json", "\"hi\"", "JSON object"),
        (
            &send,
            "application/json",
            "{\"text\": \"hi\"}",
            "missing field",
        ),
        (
            "/groups",
            "application/json",
            "{\"name\": null}",
            "expected fields",
        ),
        (
            "/register",
            "application/json",
            "{\"username\": \"x\", \"tag\": 123, \"password\": \"12345678\"}",
            "expected fields",
        ),
        (
            "/login",
            "application/json",
            "{\"username\": \"alice\"}",
            "missing field",
        ),
        (&send, "text/plain", "hi", "Send the request body as JSON"),
        // A key given twice is refused, not settled by the last one.
        (
            &send,
            "application/json",
            "{\"content\": \"hi\", \"content\": \"bye\"}",
            "duplicate field `content`",
        ),
        (
            "/groups",
            "application/json",
            "{\"name\": \"a\", \"name\": \"b\"}",
            "duplicate field `name`",
        ),
    ];
    for (path, content_type, body, says) in cases {
        let target = if path.starts_with('/') {
            format!("{url}{path}")
        } else {
            path.to_string()
        };
        let response = alice
            .post(&target)
            .header("content-type", content_type)
            .header("x-csrf-token", "irrelevant for JSON")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        if content_type != "application/json" {
            // Not JSON and no valid CSRF token, with a session: the guard answers first.
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {body:?}");
            continue;
        }
        let (status, message) = error(response).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path} {body:?}: {message}"
        );
        assert!(message.contains(says), "{path} {body:?}: {message}");
    }

    // A form missing a field, or naming one twice (with a valid CSRF token, so the body is read).
    let token = login(alice, url, "alice", "123")
        .await
        .headers()
        .get("x-csrf-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for body in ["csrf=TOKEN", "content=a&content=b&csrf=TOKEN"] {
        let response = alice
            .post(&send)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.replace("TOKEN", &token))
            .send()
            .await
            .unwrap();
        let (status, message) = error(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(message.contains("form"), "{message}");
    }
    // A search without a name.
    let (status, _) = error(alice.get(format!("{url}/users")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn not_logged_in_or_wrong_password_is_401() {
    let (data, server, _) = lab(&[]).await;
    let url = &server.url;
    let bob = data.user("bob", "456").await;
    let before = data.dump().await;
    let anonymous = client(true);
    let group = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let requests = [
        anonymous
            .post(format!("{url}/users/bob/456/chat"))
            .json(&json!({"content": "hi"})),
        anonymous.get(format!("{url}/users/bob/456/chat")),
        anonymous.get(format!("{url}/groups")),
        anonymous
            .post(format!("{url}/groups"))
            .json(&json!({"name": "g"})),
        anonymous.get(format!("{url}/groups/{group}/members")),
        anonymous
            .post(format!("{url}/groups/{group}/members"))
            .json(&json!({"username": "bob", "tag": "456"})),
        anonymous.delete(format!("{url}/groups/{group}/members/{}", bob.uuid)),
        anonymous.get(format!("{url}/groups/{group}/chat")),
        anonymous
            .post(format!("{url}/groups/{group}/chat"))
            .json(&json!({"content": "hi"})),
        anonymous.delete(format!("{url}/groups/{group}")),
        anonymous.delete(format!("{url}/users/{}", bob.uuid)),
    ];
    for request in requests {
        let (status, message) = error(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
        assert!(message.contains("not logged in"), "{message}");
    }
    for (username, tag, password) in [
        ("bob", "456", "wrong password!"),
        ("bob", "457", PASSWORD),
        ("nobody", "456", PASSWORD),
    ] {
        let response = anonymous
            .post(format!("{url}/login"))
            .json(&json!({"username": username, "tag": tag, "password": password}))
            .send()
            .await
            .unwrap();
        assert!(set_cookie(&response, "labctl_session").is_none());
        let (status, message) = error(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(message, "Wrong username, tag or password.");
    }
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn not_allowed_is_403_and_stores_nothing() {
    let (data, server, clients) = lab(&[("alice", "123"), ("bob", "456")]).await;
    let url = &server.url;
    let (alice, alice_user) = &clients[0];
    let (bob, _) = &clients[1];
    let carol = data.user("carol", "789").await;
    let group: Group = alice
        .post(format!("{url}/groups"))
        .json(&json!({"name": "alice's"}))
        .json_of()
        .await;
    let g = &group.uuid;
    alice
        .post(format!("{url}/groups/{g}/members"))
        .json(&json!({"username": "carol", "tag": "789"}))
        .send()
        .await
        .unwrap();
    let before = data.dump().await;

    let json_type = ("content-type", "application/json");
    let requests = [
        // Not a member.
        bob.get(format!("{url}/groups/{g}/chat")),
        bob.post(format!("{url}/groups/{g}/chat"))
            .json(&json!({"content": "let me in"})),
        bob.get(format!("{url}/groups/{g}/members")),
        // Not the creator.
        bob.delete(format!("{url}/groups/{g}"))
            .header(json_type.0, json_type.1),
        bob.post(format!("{url}/groups/{g}/members"))
            .json(&json!({"username": "bob", "tag": "456"})),
        bob.delete(format!("{url}/groups/{g}/members/{}", carol.uuid))
            .header(json_type.0, json_type.1),
        // Not the owner of the account.
        bob.delete(format!("{url}/users/{}", alice_user.uuid))
            .header(json_type.0, json_type.1),
        bob.delete(format!("{url}/users/not-even-a-uuid"))
            .header(json_type.0, json_type.1),
    ];
    for request in requests {
        let (status, message) = error(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{message}");
        assert!(!message.is_empty());
    }
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn unknown_things_are_404() {
    let (data, server, clients) = lab(&[("alice", "123")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    data.user("bob", "456").await;
    let before = data.dump().await;
    let unknown = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let requests = [
        alice.get(format!("{url}/users/nobody/123")),
        alice.get(format!("{url}/users/nobody/123/chat")),
        alice
            .post(format!("{url}/users/nobody/123/chat"))
            .json(&json!({"content": "hi"})),
        alice.get(format!("{url}/groups/{unknown}")),
        alice.get(format!("{url}/groups/{unknown}/chat")),
        alice.get(format!("{url}/groups/{unknown}/members")),
        alice
            .post(format!("{url}/groups/{unknown}/chat"))
            .json(&json!({"content": "hi"})),
        alice.get(format!("{url}/groups/not-a-uuid")),
        alice
            .post(format!("{url}/groups/not-a-uuid/members"))
            .json(&json!({"username": "bob", "tag": "456"})),
        // Routes that do not exist, and tags that do not match [0-9]{3,6}: route misses.
        alice.get(format!("{url}/nowhere")),
        alice.get(format!("{url}/users/bob/456/elsewhere")),
        alice.get(format!("{url}/users/bob/12")),
        alice.get(format!("{url}/users/bob/1234567")),
        alice.get(format!("{url}/users/bob/45x")),
        alice.get(format!("{url}/users/bob/12/chat")),
        alice
            .post(format!("{url}/users/bob/12/chat"))
            .json(&json!({"content": "hi"})),
    ];
    for request in requests {
        let request = request.build().unwrap();
        let path = request.url().path().to_string();
        let (status, message) = error(alice.execute(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {message}");
    }
    // A known path, a method it does not take.
    let (status, message) = error(alice.put(format!("{url}/groups")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{message}");
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn existing_things_are_409_and_stored_once() {
    let (data, server, clients) = lab(&[("alice", "123")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    data.user("bob", "456").await;
    let group: Group = alice
        .post(format!("{url}/groups"))
        .json(&json!({"name": "g"}))
        .json_of()
        .await;
    let add = || {
        alice
            .post(format!("{url}/groups/{}/members", group.uuid))
            .json(&json!({"username": "bob", "tag": "456"}))
    };
    assert_eq!(add().send().await.unwrap().status(), StatusCode::CREATED);
    let before = data.dump().await;
    let (status, message) = error(add().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{message}");
    let response = client(true)
        .post(format!("{url}/register"))
        .json(&json!({"username": "bob", "tag": "456", "password": "another password"}))
        .send()
        .await
        .unwrap();
    let (status, message) = error(response).await;
    assert_eq!(status, StatusCode::CONFLICT, "{message}");
    assert!(message.contains("bob#456"), "{message}");
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn invalid_values_are_422_and_store_nothing() {
    let (data, server, clients) = lab(&[("alice", "123")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    data.user("bob", "456").await;
    let group: Group = alice
        .post(format!("{url}/groups"))
        .json(&json!({"name": "g"}))
        .json_of()
        .await;
    let g = &group.uuid;
    let before = data.dump().await;
    let anonymous = client(true);
    let too_long = "x".repeat(4001);
    let requests = [
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": "carol", "tag": "12", "password": PASSWORD})),
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": "carol", "tag": "1234567", "password": PASSWORD})),
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": "ca rol", "tag": "123", "password": PASSWORD})),
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": "..", "tag": "123", "password": PASSWORD})),
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": ".", "tag": "123", "password": PASSWORD})),
        anonymous
            .post(format!("{url}/register"))
            .json(&json!({"username": "carol", "tag": "123", "password": "short"})),
        alice
            .post(format!("{url}/users/bob/456/chat"))
            .json(&json!({"content": ""})),
        alice
            .post(format!("{url}/users/bob/456/chat"))
            .json(&json!({"content": "  \n "})),
        alice
            .post(format!("{url}/users/bob/456/chat"))
            .json(&json!({"content": too_long})),
        alice
            .post(format!("{url}/groups/{g}/chat"))
            .json(&json!({"content": ""})),
        alice
            .post(format!("{url}/groups"))
            .json(&json!({"name": "   "})),
        alice
            .post(format!("{url}/groups/{g}/members"))
            .json(&json!({"username": "bob", "tag": "45"})),
    ];
    for request in requests {
        let (status, message) = error(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    }
    let response = anonymous
        .post(format!("{url}/register"))
        .json(&json!({"username": "carol", "tag": "12", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (_, message) = error(response).await;
    assert_eq!(message, "tag must be 3 to 6 digits, got \"12\"");
    assert_eq!(data.dump().await, before, "nothing stored");
    // 4000 characters is the limit, not past it.
    let response = alice
        .post(format!("{url}/users/bob/456/chat"))
        .json(&json!({"content": "é".repeat(4000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bodies_over_64_kib_are_refused() {
    let (data, server, clients) = lab(&[("alice", "123"), ("bob", "456")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    let before = data.dump().await;
    let big = json!({ "content": "x".repeat(70 * 1024) });
    let response = alice
        .post(format!("{url}/users/bob/456/chat"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let (status, message) = error(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    assert!(message.contains("64 KiB"), "{message}");
    // A form too big to check for its CSRF token.
    let response = form(
        alice.post(format!("{url}/groups")),
        &[("name", "x".repeat(70 * 1024))],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = Data::new();
    let mut config = config();
    config.body_timeout = std::time::Duration::from_millis(300);
    let server = start(config, Arc::new(data.backend())).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let before = data.dump().await;
    for (path, body) in [("/register", r#"{"username": "alice", "#), ("/login", "")] {
        // Announce 100 bytes, send fewer, then go silent (the connection stays open).
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{body}"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        // The answer, then the end of the connection, both within a bound (the test's, not the
        // service's: it answers after 300 ms).
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tcp.read_to_end(&mut answer),
        )
        .await;
        assert!(
            matches!(read, Ok(Ok(_))),
            "{path}: the connection was held open: {read:?}"
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(answer.contains("did not arrive within 300 ms"), "{answer}");
    }
    assert_eq!(data.dump().await, before, "nothing stored");
    // A body sent whole is served as before.
    let response = client(true)
        .post(format!("{}/register", server.url))
        .json(&json!({"username": "alice", "tag": "123", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn logins_beyond_the_hashing_queue_are_503_busy_with_retry_after() {
    let data = Data::new();
    data.user("bob", "456").await;
    let mut config = config();
    // One hasher and room for one waiting login: of 12 at once, most are turned away.
    config.hashing = labctl_web::HashPool::new(1, 1);
    let server = start(config, Arc::new(data.backend())).await;
    let before = data.dump().await;
    let attempts = (0..12).map(|k| {
        let url = server.url.clone();
        tokio::spawn(async move {
            let response = client(true)
                .post(format!("{url}/login"))
                .json(&json!({"username": "bob", "tag": "456", "password": format!("wrong {k}")}))
                .send()
                .await
                .unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_string());
            let (status, message) = error(response).await;
            (status, message, retry_after)
        })
    });
    let mut answers = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        answers.push(attempt.await.unwrap());
    }
    let (mut wrong, mut busy) = (0, 0);
    for (status, message, retry_after) in &answers {
        match *status {
            StatusCode::UNAUTHORIZED => {
                wrong += 1;
                assert_eq!(message, "Wrong username, tag or password.");
                assert_eq!(retry_after, &None);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(
                    message.contains("busy") && message.contains("Try again"),
                    "{message}"
                );
                assert!(message.contains("nothing was done"), "{message}");
                assert_eq!(retry_after.as_deref(), Some("1"));
            }
            other => panic!("{other}: {message}"),
        }
    }
    assert!(wrong >= 1, "the pool checked some: {answers:?}");
    assert!(busy >= 1, "and turned the others away: {answers:?}");
    // Once the burst is over, the pool answers again.
    let response = client(true)
        .post(format!("{}/login", server.url))
        .json(&json!({"username": "bob", "tag": "456", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn no_writer_is_503_with_the_backends_reason() {
    let data = Data::new();
    data.user("alice", "123").await;
    let backend = NoWriter {
        inner: Arc::new(data.backend()),
    };
    let server = start(config(), Arc::new(backend)).await;
    let url = &server.url;
    let alice = client(true);
    login(&alice, url, "alice", "123").await;
    let before = data.dump().await;
    for request in [
        alice
            .post(format!("{url}/groups"))
            .json(&json!({"name": "g"})),
        alice
            .post(format!("{url}/register"))
            .json(&json!({"username": "bob", "tag": "456", "password": PASSWORD})),
    ] {
        let (status, message) = error(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(message, NO_WRITER);
    }
    // Reads still work.
    let home = alice.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert_eq!(data.dump().await, before, "nothing stored");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_stored_once_and_answered_the_same() {
    let data = Data::new();
    data.user("bob", "456").await; // the recipient
    let alice = data.user("alice", "123").await;
    let recording = Arc::new(Recording::new(Arc::new(data.backend())));
    let server = start(config(), recording.clone()).await;
    let url = &server.url;
    let client = client(true);
    login(&client, url, "alice", "123").await;
    let send = |key: &'static str| {
        client
            .post(format!("{url}/users/bob/456/chat"))
            .header("Idempotency-Key", key)
            .json(&json!({"content": "exactly once"}))
            .send()
    };
    let first: ChatMessage = send("7d3c4e1a").await.unwrap().json().await.unwrap();
    let before = data.dump().await;
    let retry = send("7d3c4e1a").await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let again: ChatMessage = retry.json().await.unwrap();
    assert_eq!(again, first, "the first attempt's answer");
    assert_eq!(data.dump().await, before, "stored once");
    // The key reaches the cluster scoped to the user acting: another user's key never collides.
    let keys = recording.keys.lock().unwrap().clone();
    assert_eq!(keys[0], Some(format!("{}/7d3c4e1a", alice.uuid)));
    // Another key is another write.
    let other: ChatMessage = send("9f00").await.unwrap().json().await.unwrap();
    assert_ne!(other.uuid, first.uuid);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_and_nothing_is_stored() {
    let (data, server, clients) = lab(&[("alice", "123"), ("bob", "456")]).await;
    let (alice, _) = &clients[0];
    let before = data.dump().await;
    let long = "k".repeat(129);
    for key in [long.as_str(), "two words", ""] {
        let response = alice
            .post(format!("{}/users/bob/456/chat", server.url))
            .header("Idempotency-Key", key)
            .json(&json!({"content": "hi"}))
            .send()
            .await
            .unwrap();
        let (status, message) = error(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}");
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    assert_eq!(data.dump().await, before);
}

#[tokio::test]
async fn an_unsigned_read_position_is_ignored() {
    let data = Data::new();
    data.user("alice", "123").await;
    let recording = Arc::new(Recording::new(Arc::new(data.backend())));
    let server = start(config(), recording.clone()).await;
    // A position left by hand (or by an earlier lab on 127.0.0.1) is no reason to refuse reads.
    for cookie in [
        "labctl_pos=1.999999",
        "labctl_pos=1.999999.AAAA",
        "labctl_seq=999999",
    ] {
        let response = bare_client()
            .get(format!("{}/users/alice", server.url))
            .header("Accept", "application/json")
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{cookie}");
        let (_, min) = recording.reads.lock().unwrap().last().cloned().unwrap();
        assert_eq!(min, labctl_core::log::Pos::START, "{cookie}");
    }

    // With a session, only the position inside it (under its MAC) counts: unsigned or forged
    // positions beside it, or in a token whose MAC does not match, are ignored.
    let alice = client(true);
    login(&alice, &server.url, "alice", "123").await;
    let response = alice
        .post(format!("{}/groups", server.url))
        .json(&json!({"name": "g"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = set_cookie(&response, "labctl_session").unwrap();
    let signed = labctl_core::log::Pos::new(1, payload(&token)["pos"]["seq"].as_u64().unwrap());
    assert_eq!(signed.seq, 2, "the group's entry");
    let (claims, mac) = token.split_once('.').unwrap();
    let mut forged = payload(&token);
    forged["pos"]["seq"] = json!(999999);
    let forged = format!(
        "{}.{mac}",
        base64_url(&serde_json::to_vec(&forged).unwrap())
    );
    assert_ne!(claims, forged.split_once('.').unwrap().0);
    for (cookie, min) in [
        (format!("labctl_session={token}; labctl_seq=999999"), signed),
        (
            format!("labctl_session={token}; labctl_pos=1.999999"),
            signed,
        ),
        (format!("labctl_seq=999999; labctl_session={token}"), signed),
        (
            format!("labctl_session={forged}"),
            labctl_core::log::Pos::START,
        ),
    ] {
        let response = bare_client()
            .get(format!("{}/users/alice", server.url))
            .header("Accept", "application/json")
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{cookie}");
        let (_, read_at) = recording.reads.lock().unwrap().last().cloned().unwrap();
        assert_eq!(read_at, min, "{cookie}");
    }
}

/// `bytes` in unpadded base64url (a token's claims).
fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET …/chat?after=<message>&last=<n>` (an extension of SPEC §5's routes): the messages after
/// one, and of those the most recent n, oldest first, for private and group conversations; a
/// bad window is a 4xx and the whole conversation stays the default.
#[tokio::test]
async fn a_conversation_read_takes_a_window_of_new_or_recent_messages() {
    let (_data, server, clients) = lab(&[("alice", "1234"), ("bob", "456")]).await;
    let url = &server.url;
    let (alice, _) = &clients[0];
    let (bob, _) = &clients[1];
    let mut sent = Vec::new();
    for i in 0..5 {
        let to_bob = format!("{url}/users/bob/456/chat");
        sent.push(post_json(alice, &to_bob, json!({ "content": format!("message {i}") })).await);
    }
    let chat = format!("{url}/users/alice/1234/chat");
    let whole: Vec<Value> = bob.get(&chat).json_of().await;
    assert_eq!(whole, sent);
    let after = read_after(bob, &chat, &sent[1], "").await;
    assert_eq!(after, sent[2..]);
    let last: Vec<Value> = bob.get(format!("{chat}?last=2")).json_of().await;
    assert_eq!(last, sent[3..]);
    let both = read_after(bob, &chat, &sent[0], "&last=2").await;
    assert_eq!(
        both,
        sent[3..],
        "the most recent two of those after the first"
    );
    let none = read_after(bob, &chat, &sent[4], "").await;
    assert!(none.is_empty(), "nothing after the last message");

    // The same on a group's conversation.
    let group = post_json(alice, &format!("{url}/groups"), json!({ "name": "window" })).await;
    let group_chat = format!("{url}/groups/{}/chat", group["uuid"].as_str().unwrap());
    let mut said = Vec::new();
    for i in 0..3 {
        let content = json!({ "content": format!("to the group {i}") });
        said.push(post_json(alice, &group_chat, content).await);
    }
    let after = read_after(alice, &group_chat, &said[0], "").await;
    assert_eq!(after, said[1..]);
    let last: Vec<Value> = alice.get(format!("{group_chat}?last=1")).json_of().await;
    assert_eq!(last, said[2..]);

    // Bad windows: a message of another conversation, an unknown one, not a UUID, a bad count.
    for (query, status, words) in [
        (
            format!("after={}", said[0]["uuid"].as_str().unwrap()),
            StatusCode::NOT_FOUND,
            "in this conversation",
        ),
        (
            "after=00000000-0000-4000-8000-000000000000".to_string(),
            StatusCode::NOT_FOUND,
            "in this conversation",
        ),
        (
            "after=nope".to_string(),
            StatusCode::NOT_FOUND,
            "not a UUID",
        ),
        (
            "last=abc".to_string(),
            StatusCode::BAD_REQUEST,
            "not a number",
        ),
        (
            "last=0".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "1 to",
        ),
        (
            "last=10001".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "1 to",
        ),
    ] {
        let response = bob.get(format!("{chat}?{query}")).send().await.unwrap();
        let (got, message) = error(response).await;
        assert_eq!(got, status, "?{query}: {message}");
        assert!(message.contains(words), "?{query}: {message}");
    }
}

/// POSTs `body` as JSON to `url`; the answer's JSON.
async fn post_json(client: &Client, url: &str, body: Value) -> Value {
    client
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The messages of the conversation at `chat` after `message`, with `more` of a query string.
async fn read_after(client: &Client, chat: &str, message: &Value, more: &str) -> Vec<Value> {
    let uuid = message["uuid"].as_str().unwrap();
    client
        .get(format!("{chat}?after={uuid}{more}"))
        .json_of()
        .await
}
