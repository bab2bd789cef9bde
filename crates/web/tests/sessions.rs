//! Sessions over real HTTP: valid at every input node that holds the lab's secret, refused when
//! forged, tampered with or expired, and carrying the seq of the user's last write
//! (read-your-writes).

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use labctl_chat::ops::{Group, Read, User, Write};
use labctl_core::log::Pos;
use labctl_web::WebConfig;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// Sends `request` with exactly `Cookie: labctl_session=<token>` and JSON `Accept`.
fn with_token(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request
        .header("cookie", format!("labctl_session={token}"))
        .header("accept", "application/json")
}

/// Logs in at `url` and returns the session token.
async fn token(url: &str, username: &str, tag: &str) -> String {
    let response = login(&client(true), url, username, tag).await;
    set_cookie(&response, "labctl_session").expect("login sets the session cookie")
}

/// Who `GET /` says is logged in.
async fn who(client: &Client, url: &str, token: &str) -> Value {
    let home: Value = with_token(client.get(format!("{url}/")), token)
        .json_of()
        .await;
    home["user"].clone()
}

#[tokio::test]
async fn a_session_signed_at_one_input_node_is_valid_at_every_other() {
    let data = Data::new();
    let alice = data.user("alice", "123").await;
    // Two input nodes of one lab: two routers, two backend handles on the same data.
    let first = start(
        WebConfig::new(SECRET.to_vec(), 1, "lab"),
        Arc::new(data.backend()),
    )
    .await;
    let second = start(
        WebConfig::new(SECRET.to_vec(), 2, "lab"),
        Arc::new(data.backend()),
    )
    .await;
    let response = login(&client(true), &first.url, "alice", "123").await;
    assert_eq!(response.headers()["x-labctl-node"], "1");
    let line = set_cookie_line(&response, "labctl_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=86400"] {
        assert!(line.contains(attribute), "{line}");
    }
    let token = set_cookie(&response, "labctl_session").unwrap();

    let other = bare_client();
    let response = with_token(other.get(format!("{}/", second.url)), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-labctl-node"], "2");
    let home: Value = response.json().await.unwrap();
    assert_eq!(home["user"], json!(alice));
    let created = with_token(other.post(format!("{}/groups", second.url)), &token)
        .json(&json!({"name": "made at node 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    // The re-issued cookie is valid back at the first node.
    let reissued = set_cookie(&created, "labctl_session").unwrap();
    let groups: Vec<Group> = with_token(other.get(format!("{}/groups", first.url)), &reissued)
        .json_of()
        .await;
    assert_eq!(groups.len(), 1);

    // Another lab's secret: not a session here, and the reverse.
    let elsewhere = start(
        WebConfig::new(b"another lab's secret".to_vec(), 3, "lab"),
        Arc::new(data.backend()),
    )
    .await;
    assert_eq!(who(&other, &elsewhere.url, &token).await, Value::Null);
    let foreign = token_at(&elsewhere.url, "alice", "123").await;
    assert_eq!(who(&other, &first.url, &foreign).await, Value::Null);
    let (status, _) = error(
        with_token(other.post(format!("{}/groups", first.url)), &foreign)
            .json(&json!({"name": "g"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A token from the router at `url`.
async fn token_at(url: &str, username: &str, tag: &str) -> String {
    token(url, username, tag).await
}

#[tokio::test]
async fn forged_tampered_and_expired_sessions_are_not_logged_in() {
    let data = Data::new();
    data.user("alice", "123").await;
    let bob = data.user("bob", "456").await;
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let token = token(url, "alice", "123").await;
    let other = bare_client();
    assert_eq!(who(&other, url, &token).await["username"], "alice");

    // Claim to be bob (or raise seq) with alice's MAC.
    let (payload, mac) = token.split_once('.').unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["uuid"] = json!(bob.uuid);
    claims["username"] = json!("bob");
    claims["tag"] = json!("456");
    let as_bob = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut later = payload_value(&token);
    later["exp"] = json!(later["exp"].as_u64().unwrap() + 1_000_000);
    let extended = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(later.to_string()));
    let mut flipped = mac.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let bad_mac = format!("{payload}.{}", String::from_utf8(flipped).unwrap());
    for forged in [as_bob.as_str(), &extended, &bad_mac, payload, "garbage", ""] {
        assert_eq!(who(&other, url, forged).await, Value::Null, "{forged}");
        let response = with_token(other.post(format!("{url}/groups")), forged)
            .json(&json!({"name": "g"}))
            .send()
            .await
            .unwrap();
        let (status, message) = error(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{forged}");
        assert!(message.contains("not logged in"), "{message}");
    }

    // A session past its time.
    let mut short = config();
    short.session_ttl = Duration::from_millis(300);
    let brief = start(short, Arc::new(data.backend())).await;
    let client = client(true);
    login(&client, &brief.url, "alice", "123").await;
    let groups = client
        .get(format!("{}/groups", brief.url))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The cookie (Max-Age=1) is still sent; the token inside has expired.
    let (status, _) = error(
        client
            .get(format!("{}/groups", brief.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = error(
        client
            .post(format!("{}/groups", brief.url))
            .json(&json!({"name": "late"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(data.last_seq().await, 2, "nothing stored");
}

/// The claims of a token.
fn payload_value(token: &str) -> Value {
    payload(token)
}

#[tokio::test]
async fn reads_pass_the_position_of_the_users_last_write() {
    let data = Data::new();
    data.user("alice", "123").await;
    data.user("bob", "456").await;
    let recording = Arc::new(Recording::new(Arc::new(data.backend())));
    let server = start(config(), recording.clone()).await;
    let url = &server.url;
    let carol = client(true);
    let last_read = || recording.reads.lock().unwrap().last().cloned().unwrap();

    // Registering (no session yet) leaves the write's position in a signed cookie; logging in
    // reads at least that state, and the session starts from it.
    let response = carol
        .post(format!("{url}/register"))
        .json(&json!({"username": "carol", "tag": "789", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let seen = set_cookie(&response, "labctl_pos").unwrap();
    assert!(
        seen.starts_with("1.3."),
        "epoch 1, entry 3, then the MAC: {seen}"
    );
    let response = login(&carol, url, "carol", "789").await;
    assert!(matches!(last_read(), (Read::Credentials { .. }, p) if p == Pos::new(1, 3)));
    let position = |token: &str| payload(token)["pos"]["seq"].as_u64().unwrap();
    let mut seq = position(&set_cookie(&response, "labctl_session").unwrap());
    assert_eq!(seq, 3);

    // Each write re-issues the cookie with its seq; each read passes it on.
    let writes: Vec<(&str, Value)> = vec![
        ("/groups", json!({"name": "g"})),
        ("/users/bob/456/chat", json!({"content": "one"})),
        ("/users/alice/123/chat", json!({"content": "two"})),
    ];
    for (path, body) in writes {
        let response = carol
            .post(format!("{url}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let token = set_cookie(&response, "labctl_session").expect("the cookie is re-issued");
        let new = position(&token);
        assert!(new > seq, "the position grows: {seq} then {new}");
        assert_eq!(new, recording.writes.lock().unwrap().last().unwrap().seq);
        seq = new;
        for path in ["/", "/groups", "/users/bob/456/chat"] {
            let response = carol.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                last_read().1,
                Pos::new(1, seq),
                "GET {path} passes the last write's"
            );
        }
    }
    assert_eq!(seq, 6);

    // Someone else's write does not move carol's seq.
    let bob = data_user(&data, "bob", "456").await;
    data.store
        .lock()
        .await
        .execute(
            &Write::SendPrivate {
                from: bob.uuid,
                username: "carol".into(),
                tag: "789".into(),
                content: "hi".into(),
            },
            1,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    carol.get(format!("{url}/groups")).send().await.unwrap();
    assert_eq!(last_read().1, Pos::new(1, 6));

    // Logging out is a write (entry 8, after bob's 7: it ends carol's sessions), and its
    // position is kept for the next login.
    let response = carol.get(format!("{url}/logout")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(recording.writes.lock().unwrap().last().unwrap().seq, 8);
    assert!(set_cookie(&response, "labctl_pos")
        .unwrap()
        .starts_with("1.8."));
    login(&carol, url, "carol", "789").await;
    assert!(matches!(last_read(), (Read::Credentials { .. }, p) if p == Pos::new(1, 8)));
}

#[tokio::test]
async fn logging_out_ends_the_token_at_every_input_node() {
    // Two input nodes of one lab: the same secret, the same data.
    let data = Data::new();
    data.user("alice", "123").await;
    data.user("bob", "456").await;
    let (a, b) = (
        start(config(), Arc::new(data.backend())).await,
        start(config(), Arc::new(data.backend())).await,
    );
    let alice = client(true);
    let token = set_cookie(
        &login(&alice, &a.url, "alice", "123").await,
        "labctl_session",
    )
    .unwrap();
    let bob = client(true);
    login(&bob, &b.url, "bob", "456").await;
    // The token works at both nodes; a copy of it too (another program, a stolen cookie).
    let copy = || {
        bare_client()
            .get(format!("{}/groups", b.url))
            .header("Accept", "application/json")
            .header("Cookie", format!("labctl_session={token}"))
    };
    for url in [&a.url, &b.url] {
        let response = alice.get(format!("{url}/groups")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
    }
    assert_eq!(copy().send().await.unwrap().status(), StatusCode::OK);

    // Logging out at A ends it everywhere: the copy is refused at B (and its cookie cleared),
    // and at A, and for a write too; nothing is stored.
    let response = alice.get(format!("{}/logout", a.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after_logout = data.last_seq().await;
    let response = copy().send().await.unwrap();
    assert_eq!(
        set_cookie(&response, "labctl_session").as_deref(),
        Some(""),
        "the ended token's cookie is cleared"
    );
    let (status, message) = error(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("not logged in"), "{message}");
    for url in [&a.url, &b.url] {
        let (status, _) = error(
            bare_client()
                .post(format!("{url}/groups"))
                .header("Accept", "application/json")
                .header("Cookie", format!("labctl_session={token}"))
                .json(&json!({"name": "after logout"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
    }
    assert_eq!(data.last_seq().await, after_logout, "nothing stored");
    // Bob's session goes on.
    let response = bob.get(format!("{}/groups", a.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A new login works, at either node, with a token of the new generation.
    let response = login(&alice, &b.url, "alice", "123").await;
    let fresh = set_cookie(&response, "labctl_session").unwrap();
    assert_eq!(payload(&fresh)["generation"], 1);
    assert_eq!(payload(&token)["generation"], 0);
    for url in [&a.url, &b.url] {
        let response = alice.get(format!("{url}/groups")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
    }
    // Logging out with an ended token changes nothing and just clears the cookie.
    let response = bare_client()
        .get(format!("{}/logout", a.url))
        .header("Accept", "application/json")
        .header("Cookie", format!("labctl_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        data.last_seq().await,
        after_logout,
        "no second logout stored"
    );
    let response = alice.get(format!("{}/groups", a.url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the new session goes on");
}

/// A user of the store, by name and tag.
async fn data_user(data: &Data, username: &str, tag: &str) -> User {
    match data
        .store
        .lock()
        .await
        .query(&Read::User {
            username: username.into(),
            tag: tag.into(),
        })
        .unwrap()
    {
        labctl_chat::ops::Reply::User { user } => user,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bodiless_delete_with_a_session_needs_no_csrf_token() {
    // SPEC §5: a program's DELETE with its session cookie and no body works (no page of another
    // site can send a DELETE without a CORS preflight, which this service refuses).
    let data = Data::new();
    data.user("alice", "123").await;
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let alice = client(true);
    login(&alice, url, "alice", "123").await;
    let mut groups = Vec::new();
    for name in ["g1", "g2"] {
        let group: Group = alice
            .post(format!("{url}/groups"))
            .json(&json!({ "name": name }))
            .json_of()
            .await;
        groups.push(group);
    }
    // No body, no Content-Type, no token: deleted.
    let path = format!("{url}/groups/{}", groups[0].uuid);
    let deleted = alice.delete(&path).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _) = error(alice.get(&path).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the group is gone");
    // A wrong token in the header changes nothing: a DELETE is not guarded.
    let path = format!("{url}/groups/{}", groups[1].uuid);
    let deleted = alice
        .delete(&path)
        .header("x-csrf-token", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // The preflight a cross-site fetch would need is refused, with no CORS header.
    let preflight = bare_client()
        .request(reqwest::Method::OPTIONS, &path)
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(preflight
        .headers()
        .keys()
        .all(|name| !name.as_str().starts_with("access-control-")));
}

#[tokio::test]
async fn a_post_with_a_session_still_needs_json_or_the_csrf_token() {
    let data = Data::new();
    data.user("alice", "123").await;
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let alice = client(true);
    let response = login(&alice, url, "alice", "123").await;
    let csrf = response.headers()["x-csrf-token"]
        .to_str()
        .unwrap()
        .to_string();
    let group: Group = alice
        .post(format!("{url}/groups"))
        .json(&json!({"name": "g"}))
        .json_of()
        .await;
    let path = format!("{url}/groups/{}", group.uuid);
    // The form stand-in for DELETE is a POST: guarded.
    let by_form = |token: Option<&str>| {
        let mut body = "_method=delete".to_string();
        if let Some(token) = token {
            body.push_str(&format!("&csrf={token}"));
        }
        alice
            .post(&path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let (status, message) = error(by_form(None).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.contains("CSRF"), "{message}");
    let (status, _) = error(by_form(Some("wrong")).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = error(alice.post(&path).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a bodiless POST is guarded");
    assert_eq!(
        alice.get(&path).send().await.unwrap().status(),
        StatusCode::OK,
        "still there"
    );
    let deleted = by_form(Some(&csrf)).await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}
