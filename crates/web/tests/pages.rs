//! The HTML side of SPEC §5 over real HTTP: every page, every form without JavaScript, the CSRF
//! guard, friendly error pages, and escaping.

mod common;

use std::sync::Arc;

use common::*;
use labctl_chat::ops::{ChatMessage, Group, Read, Reply};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode};
use serde_json::json;

/// GETs `path`, asserting `status`, and returns the page.
async fn page(client: &Client, url: &str, path: &str, status: StatusCode) -> String {
    let response = client.get(format!("{url}{path}")).send().await.unwrap();
    assert_eq!(response.status(), status, "GET {path}");
    let kind = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/html"), "GET {path}: {kind}");
    let html = response.text().await.unwrap();
    assert_every_post_form_has_a_token(path, &html);
    html
}

/// Every `<form method="post">` of a page carries the CSRF token.
fn assert_every_post_form_has_a_token(path: &str, html: &str) {
    for form in html.split("<form").skip(1) {
        let form = &form[..form.find("</form>").expect("a closed form")];
        if form.contains("method=\"post\"") {
            let token = hidden(form, "csrf").unwrap_or_default();
            assert!(
                token.len() > 20,
                "a POST form of {path} has no CSRF token: {form}"
            );
        }
    }
}

/// The `Location` of a 303.
fn see_other(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[LOCATION].to_str().unwrap().to_string()
}

/// POSTs a form, returning the response.
async fn post_form(client: &Client, url: &str, path: &str, pairs: &[(&str, &str)]) -> Response {
    form(client.post(format!("{url}{path}")), pairs)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_page_renders_and_every_form_works_without_javascript() {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let browser = client(false);

    // Logged out: an introduction, a phone-friendly layout, no external assets.
    let home = page(&browser, url, "/", StatusCode::OK).await;
    assert!(home.contains("<meta name=\"viewport\""));
    assert!(home.contains("href=\"/register\"") && home.contains("href=\"/login\""));
    assert!(home.contains("Served by node 7 of lab testlab"));
    assert!(!home.contains("http://") && !home.contains("https://") && !home.contains("<link"));

    // Register with the form: 303 to the login form, which says so.
    let register = page(&browser, url, "/register", StatusCode::OK).await;
    let token = hidden(&register, "csrf").unwrap();
    let response = post_form(
        &browser,
        url,
        "/register",
        &[
            ("username", "alice"),
            ("tag", "1234"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    let location = see_other(&response);
    assert!(location.starts_with("/login?"), "{location}");
    let login = page(&browser, url, &location, StatusCode::OK).await;
    assert!(login.contains("Your account is ready"));
    assert!(login.contains("value=\"alice\"") && login.contains("value=\"1234\""));

    // Log in with the form: 303 home, which now greets.
    let token = hidden(&login, "csrf").unwrap();
    let response = post_form(
        &browser,
        url,
        "/login",
        &[
            ("username", "alice"),
            ("tag", "1234"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(see_other(&response), "/");
    assert!(set_cookie(&response, "labctl_session").is_some());
    let home = page(&browser, url, "/", StatusCode::OK).await;
    assert!(home.contains("Hello, alice"));
    assert!(
        home.contains("action=\"/groups\""),
        "a form to create a group"
    );
    assert!(home.contains("action=\"/users\""), "a form to start a chat");
    let csrf = hidden(&home, "csrf").unwrap();
    let bob = data.user("bob", "456").await;

    // Users: search (redirects), lists, one user with a chat link.
    let search = page(&browser, url, "/users", StatusCode::OK).await;
    assert!(search.contains("name=\"username\""));
    for (query, to) in [
        ("?username=bob", "/users/bob"),
        ("?username=bob&tag=456", "/users/bob/456"),
        ("?username=bob&tag=456&chat=1", "/users/bob/456/chat"),
    ] {
        let response = browser
            .get(format!("{url}/users{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(see_other(&response), to);
    }
    let list = page(&browser, url, "/users/bob", StatusCode::OK).await;
    assert!(list.contains("href=\"/users/bob/456\""));
    let user = page(&browser, url, "/users/bob/456", StatusCode::OK).await;
    assert!(user.contains("href=\"/users/bob/456/chat\""));

    // A private conversation: the page polls and posts with fetch, the form works without.
    let chat = page(&browser, url, "/users/bob/456/chat", StatusCode::OK).await;
    assert!(chat.contains("id=\"send\"") && chat.contains("setInterval(poll, 2000)"));
    assert!(chat.contains("\"Content-Type\": \"application/json\""));
    assert!(chat.contains("textContent") && !chat.contains("innerHTML"));
    let response = post_form(
        &browser,
        url,
        "/users/bob/456/chat",
        &[("content", "hello bob"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), "/users/bob/456/chat");
    let chat = page(&browser, url, "/users/bob/456/chat", StatusCode::OK).await;
    assert!(chat.contains("<p>hello bob</p>"));
    let home = page(&browser, url, "/", StatusCode::OK).await;
    assert!(
        home.contains("href=\"/users/bob/456/chat\""),
        "bob is a contact now"
    );

    // Groups: the form, create, the page with its creator's forms, members, conversation.
    let groups = page(&browser, url, "/groups", StatusCode::OK).await;
    assert!(groups.contains("Create a group"));
    let response = post_form(
        &browser,
        url,
        "/groups",
        &[("name", "lab seven"), ("csrf", &csrf)],
    )
    .await;
    let location = see_other(&response);
    let g = location.strip_prefix("/groups/").unwrap().to_string();
    let group = page(&browser, url, &location, StatusCode::OK).await;
    assert!(group.contains("<h1>lab seven</h1>") && group.contains("Add a member"));
    let response = post_form(
        &browser,
        url,
        &format!("/groups/{g}/members"),
        &[("username", "bob"), ("tag", "456"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), location);
    let members = page(
        &browser,
        url,
        &format!("/groups/{g}/members"),
        StatusCode::OK,
    )
    .await;
    assert!(members.contains("href=\"/users/bob/456\""));
    assert!(members.contains(&format!("action=\"/groups/{g}/members/{}\"", bob.uuid)));
    let chat = page(&browser, url, &format!("/groups/{g}/chat"), StatusCode::OK).await;
    assert!(chat.contains("2 members") && chat.contains("setInterval(poll, 2000)"));
    let response = post_form(
        &browser,
        url,
        &format!("/groups/{g}/chat"),
        &[("content", "hi all"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), format!("/groups/{g}/chat"));
    let chat = page(&browser, url, &format!("/groups/{g}/chat"), StatusCode::OK).await;
    assert!(chat.contains("<p>hi all</p>"));

    // The page's script polls the same address for JSON, and posts JSON: both work.
    let messages: Vec<ChatMessage> = browser
        .get(format!("{url}/groups/{g}/chat"))
        .header("accept", "application/json")
        .json_of()
        .await;
    assert_eq!(messages.len(), 1);
    let posted = browser
        .post(format!("{url}/groups/{g}/chat"))
        .header("accept", "application/json")
        .json(&json!({"content": "from fetch"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::CREATED);

    // Deleting from forms (`_method=delete`): a member, the group, the account.
    let remove = format!("/groups/{g}/members/{}", bob.uuid);
    let response = post_form(
        &browser,
        url,
        &remove,
        &[("_method", "delete"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), location);
    let response = post_form(
        &browser,
        url,
        &location,
        &[("_method", "delete"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), "/");
    let gone = data
        .store
        .lock()
        .await
        .query(&Read::Group { uuid: g.clone() });
    assert_eq!(gone.unwrap_err().status(), 404);
    let me = page(&browser, url, "/users/alice/1234", StatusCode::OK).await;
    assert!(me.contains("Delete my account"));
    let alice_uuid = hidden(&me, "_method").map(|_| ()).and_then(|_| {
        let start = me.find("action=\"/users/")? + "action=\"/users/".len();
        Some(me[start..start + 36].to_string())
    });
    let response = post_form(
        &browser,
        url,
        &format!("/users/{}", alice_uuid.unwrap()),
        &[("_method", "delete"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(see_other(&response), "/");
    assert_eq!(set_cookie(&response, "labctl_session").as_deref(), Some(""));
    let users = data
        .store
        .lock()
        .await
        .query(&Read::UsersByName {
            username: "alice".into(),
        })
        .unwrap();
    assert_eq!(users, Reply::Users { users: vec![] });

    // Log out.
    let response = browser.get(format!("{url}/logout")).send().await.unwrap();
    assert_eq!(see_other(&response), "/");
}

#[tokio::test]
async fn errors_are_friendly_pages_with_the_right_status() {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    let browser = client(false);
    let missing = page(&browser, url, "/nowhere", StatusCode::NOT_FOUND).await;
    assert!(missing.contains("There is no page at &#x2F;nowhere."));
    assert!(missing.contains("<meta name=\"viewport\""));
    let missing = page(&browser, url, "/users/bob/12", StatusCode::NOT_FOUND).await;
    assert!(missing.contains("There is no page at &#x2F;users&#x2F;bob&#x2F;12."));
    let missing = page(&browser, url, "/users/bob/456", StatusCode::NOT_FOUND).await;
    assert!(missing.contains("no user bob#456"));
    let logged_out = page(&browser, url, "/groups", StatusCode::UNAUTHORIZED).await;
    assert!(logged_out.contains("You are not logged in"));
    assert!(logged_out.contains("href=\"/login\""));

    // A failed form comes back with the sentence and what was typed (not the password).
    let register = page(&browser, url, "/register", StatusCode::OK).await;
    let token = hidden(&register, "csrf").unwrap();
    let response = post_form(
        &browser,
        url,
        "/register",
        &[
            ("username", "carol"),
            ("tag", "12"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let again = response.text().await.unwrap();
    assert!(again.contains("tag must be 3 to 6 digits, got &quot;12&quot;"));
    assert!(again.contains("value=\"carol\"") && !again.contains(PASSWORD));
    let response = post_form(
        &browser,
        url,
        "/login",
        &[
            ("username", "carol"),
            ("tag", "123"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Wrong username, tag or password."));
    assert_eq!(data.last_seq().await, 0, "nothing stored");
}

#[tokio::test]
async fn user_data_is_escaped_in_html() {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    data.user("alice", "123").await;
    data.user("bob", "456").await;
    let browser = client(false);
    // Log in with JSON (no CSRF token needed), then browse as HTML.
    let response = browser
        .post(format!("{url}/login"))
        .json(&json!({"username": "alice", "tag": "123", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(see_other(&response), "/");
    let script = "<script>alert('x')</script>";

    // In a message: stored as sent (JSON gives it back verbatim), escaped in the page.
    let sent: ChatMessage = browser
        .post(format!("{url}/users/bob/456/chat"))
        .header("accept", "application/json")
        .json(&json!({ "content": script }))
        .json_of()
        .await;
    assert_eq!(sent.content, script);
    let chat = page(&browser, url, "/users/bob/456/chat", StatusCode::OK).await;
    assert!(
        chat.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt;"),
        "{chat}"
    );
    assert!(!chat.contains("<script>alert"));

    // In a group name.
    let group: Group = browser
        .post(format!("{url}/groups"))
        .header("accept", "application/json")
        .json(&json!({ "name": script }))
        .json_of()
        .await;
    for path in [
        "/",
        "/groups",
        &format!("/groups/{}", group.uuid),
        &format!("/groups/{}/chat", group.uuid),
    ] {
        let html = page(&browser, url, path, StatusCode::OK).await;
        assert!(html.contains("&lt;script&gt;alert("), "{path}");
        assert!(!html.contains("<script>alert"), "{path}");
    }

    // In a username: refused (422), and the page that says so shows it escaped.
    let register = page(&browser, url, "/register", StatusCode::OK).await;
    let token = hidden(&register, "csrf").unwrap();
    let response = post_form(
        &browser,
        url,
        "/register",
        &[
            ("username", script),
            ("tag", "123"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("value=\"&lt;script&gt;alert("), "{html}");
    assert!(!html.contains("<script>alert"));
    let path = format!("/users/{}", common::path_segment(script));
    let html = page(&browser, url, &path, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(html.contains("&lt;script&gt;alert("), "{html}");
    assert!(!html.contains("<script>alert"));
}

#[tokio::test]
async fn forms_need_a_valid_csrf_token() {
    let data = Data::new();
    let server = start(config(), Arc::new(data.backend())).await;
    let url = &server.url;
    data.user("alice", "123").await;
    data.user("mallory", "666").await;
    let browser = client(false);
    browser
        .post(format!("{url}/login"))
        .json(&json!({"username": "alice", "tag": "123", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let csrf = hidden(&page(&browser, url, "/", StatusCode::OK).await, "csrf").unwrap();
    let mallory = client(false);
    mallory
        .post(format!("{url}/login"))
        .json(&json!({"username": "mallory", "tag": "666", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let mallorys = hidden(&page(&mallory, url, "/", StatusCode::OK).await, "csrf").unwrap();
    let before = data.dump().await;

    // A cross-site form can send the cookie but not our token.
    for pairs in [
        vec![("name", "g")],
        vec![("name", "g"), ("csrf", "")],
        vec![("name", "g"), ("csrf", "forged-token")],
        vec![("name", "g"), ("csrf", mallorys.as_str())],
    ] {
        let response = post_form(&browser, url, "/groups", &pairs).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{pairs:?}");
        assert!(response.text().await.unwrap().contains("CSRF token"));
    }
    let text_plain = browser
        .post(format!("{url}/groups"))
        .header("content-type", "text/plain")
        .body("{\"name\": \"g\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(text_plain.status(), StatusCode::FORBIDDEN);
    // The form stand-in for DELETE (a POST with `_method=delete`) needs the token too.
    let alices = data
        .store
        .lock()
        .await
        .query(&Read::User {
            username: "alice".into(),
            tag: "123".into(),
        })
        .unwrap();
    let Reply::User { user: alice } = alices else {
        panic!()
    };
    let delete = post_form(
        &browser,
        url,
        &format!("/users/{}", alice.uuid),
        &[("_method", "delete")],
    )
    .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    // Login and register forms need the token of the browser's CSRF cookie.
    let stranger = client(false);
    for path in ["/login", "/register"] {
        let response = post_form(
            &stranger,
            url,
            path,
            &[
                ("username", "alice"),
                ("tag", "124"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(data.dump().await, before, "nothing stored");

    // The page's token works in the form and in the X-CSRF-Token header; JSON needs none.
    let response = post_form(
        &browser,
        url,
        "/groups",
        &[("name", "by form"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = form(
        browser.post(format!("{url}/groups")),
        &[("name", "by header")],
    )
    .header("x-csrf-token", &csrf)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = browser
        .post(format!("{url}/groups"))
        .json(&json!({"name": "by json"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // A write re-issues the session cookie (new seq): the page's token still holds.
    let response = post_form(
        &browser,
        url,
        "/groups",
        &[("name", "again"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let groups: Vec<Group> = browser
        .get(format!("{url}/groups"))
        .header("accept", "application/json")
        .json_of()
        .await;
    assert_eq!(groups.len(), 4);
}

#[tokio::test]
async fn templates_load_from_a_folder_when_configured() {
    let data = Data::new();
    let folder = tempfile::tempdir().unwrap();
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    for entry in std::fs::read_dir(&templates).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("Served by node", "Edited without rebuilding: node");
        std::fs::write(folder.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let mut edited = config();
    edited.templates = Some(folder.path().to_path_buf());
    let server = start(edited, Arc::new(data.backend())).await;
    let home = page(&client(false), &server.url, "/", StatusCode::OK).await;
    assert!(home.contains("Edited without rebuilding: node 7"));

    // A folder missing a template, a template that does not parse, an empty secret: errors.
    std::fs::remove_file(folder.path().join("group.html")).unwrap();
    let mut broken = config();
    broken.templates = Some(folder.path().to_path_buf());
    let error = labctl_web::router(broken.clone(), Arc::new(data.backend())).unwrap_err();
    assert!(error.to_string().contains("group.html"), "{error}");
    std::fs::write(folder.path().join("group.html"), "{% if %}").unwrap();
    let error = labctl_web::router(broken, Arc::new(data.backend())).unwrap_err();
    assert!(
        error.to_string().contains("templates do not load"),
        "{error}"
    );
    let mut no_secret = config();
    no_secret.secret.clear();
    assert!(labctl_web::router(no_secret, Arc::new(data.backend())).is_err());
}
