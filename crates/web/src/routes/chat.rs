//! Conversations: private (between two users) and in groups.
//!
//! A conversation page polls its own address with `Accept: application/json` every 2 s and
//! appends new messages; its form posts JSON with `fetch`. Without JavaScript the form posts as
//! usual and the answer is a 303 back to the conversation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use labctl_chat::ops::{ChatMessage, Read, User, Window, Write};
use labctl_chat::validate;
use serde::{Deserialize, Serialize};

use super::{id_in_path, tag_in_path};
use crate::app::{expect_reply, json, user_path, App};
use crate::error::Failure;
use crate::request::{parse, Ctx};

/// The body of a `POST …/chat`.
#[derive(Deserialize)]
struct NewMessage {
    content: String,
}

/// A message as a page shows it.
#[derive(Serialize)]
struct Shown<'a> {
    uuid: &'a str,
    author: &'a str,
    /// The author's name, or the start of its id if it is no longer known here.
    author_name: String,
    content: &'a str,
    sent_at: &'a str,
    /// `sent_at` for people: `YYYY-MM-DD HH:MM` (UTC; the page's script shows local time).
    when: String,
    /// Written by the logged-in user.
    mine: bool,
}

/// The messages of a page, each with its author's name.
fn shown<'a>(messages: &'a [ChatMessage], people: &[User], me: &str) -> Vec<Shown<'a>> {
    let names: BTreeMap<&str, &str> = people
        .iter()
        .map(|user| (user.uuid.as_str(), user.username.as_str()))
        .collect();
    messages
        .iter()
        .map(|message| Shown {
            uuid: &message.uuid,
            author: &message.author,
            author_name: names.get(message.author.as_str()).map_or_else(
                || message.author.chars().take(8).collect(),
                |name| name.to_string(),
            ),
            content: &message.content,
            sent_at: &message.sent_at,
            when: when(&message.sent_at),
            mine: message.author == me,
        })
        .collect()
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM`.
fn when(sent_at: &str) -> String {
    match (sent_at.get(..10), sent_at.get(11..16)) {
        (Some(day), Some(minute)) => format!("{day} {minute}"),
        _ => sent_at.to_string(),
    }
}

/// The part of a conversation a `GET …/chat` asks for, from its query: `after=<message uuid>`
/// (only the messages after that one: a poll for new messages) and `last=<n>` (at most the n
/// most recent). Other parameters are ignored; with neither, the whole conversation.
fn window(uri: &Uri) -> Result<Window, Failure> {
    #[derive(Deserialize)]
    struct Query {
        after: Option<String>,
        last: Option<String>,
    }
    let query: Query = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| Failure::malformed(format!("the query string is not a=b&c=d pairs: {e}")))?;
    let last = match query.last {
        None => None,
        Some(last) => Some(last.parse::<u32>().map_err(|_| {
            Failure::malformed(format!(
                "last={last:?} is not a number: last=N asks for the N most recent messages"
            ))
        })?),
    };
    Ok(Window {
        after: query.after,
        last,
    })
}

/// `GET /users/{username}/{tag}/chat`: your conversation with that user, oldest first (or the
/// part of it the query asks for: [`window`]).
pub(super) async fn private(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    Path((username, tag)): Path<(String, String)>,
) -> Result<Response, Failure> {
    tag_in_path(&uri, &tag)?;
    let session = ctx.login()?;
    let other = if ctx.json {
        None
    } else {
        let read = Read::User {
            username: username.clone(),
            tag: tag.clone(),
        };
        Some(expect_reply!(app.read(&ctx, read).await?, User { user })?)
    };
    let window = window(&uri)?;
    let read = Read::PrivateChat {
        window,
        me: session.uuid.clone(),
        username,
        tag,
    };
    let messages = expect_reply!(app.read(&ctx, read).await?, Messages { messages })?;
    let Some(other) = other else {
        return Ok(json(StatusCode::OK, &messages));
    };
    let people = vec![session.user(), other.clone()];
    let mut context = tera::Context::new();
    context.insert("other", &other);
    context.insert("other_path", &user_path(&other));
    context.insert("messages", &shown(&messages, &people, &session.uuid));
    context.insert("people", &people);
    Ok(app.page(&ctx, StatusCode::OK, "private_chat.html", context))
}

/// `POST /users/{username}/{tag}/chat`: sends a private message; 201 and the message, or 303
/// back to the conversation.
pub(super) async fn send_private(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    Path((username, tag)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    tag_in_path(&uri, &tag)?;
    let session = ctx.login()?;
    let new: NewMessage = parse(&ctx, body)?;
    validate::content(&new.content)?;
    let write = Write::SendPrivate {
        from: session.uuid.clone(),
        username,
        tag,
        content: new.content,
    };
    sent(&app, &ctx, &uri, write).await
}

/// `GET /groups/{group}/chat`: the group's conversation, oldest first (members only), or the
/// part of it the query asks for ([`window`]).
pub(super) async fn group(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    let read = Read::GroupChat {
        window: window(&uri)?,
        group: group.clone(),
        requester: session.uuid.clone(),
    };
    let messages = expect_reply!(app.read(&ctx, read).await?, Messages { messages })?;
    if ctx.json {
        return Ok(json(StatusCode::OK, &messages));
    }
    let read = Read::Group {
        uuid: group.clone(),
    };
    let group_info = expect_reply!(app.read(&ctx, read).await?, Group { group })?;
    let read = Read::Members {
        group,
        requester: session.uuid.clone(),
    };
    let people = expect_reply!(app.read(&ctx, read).await?, Users { users })?;
    let mut context = tera::Context::new();
    context.insert("group", &group_info);
    context.insert("messages", &shown(&messages, &people, &session.uuid));
    context.insert("people", &people);
    Ok(app.page(&ctx, StatusCode::OK, "group_chat.html", context))
}

/// `POST /groups/{group}/chat`: sends to the group (members only); 201 and the message, or 303
/// back to the conversation.
pub(super) async fn send_group(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    let new: NewMessage = parse(&ctx, body)?;
    validate::content(&new.content)?;
    let write = Write::SendGroup {
        group,
        from: session.uuid.clone(),
        content: new.content,
    };
    sent(&app, &ctx, &uri, write).await
}

/// Sends a message: 201 and the message (JSON), or 303 back to the conversation (HTML).
async fn sent(app: &App, ctx: &Ctx, uri: &Uri, write: Write) -> Result<Response, Failure> {
    let (reply, pos) = app.write(ctx, write).await?;
    let message = expect_reply!(reply, Message { message })?;
    Ok(app.written(ctx, pos, || json(StatusCode::CREATED, &message), uri.path()))
}
