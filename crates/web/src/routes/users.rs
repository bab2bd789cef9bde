//! Users: search, lists, one user, deleting one's own account.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use labctl_chat::ops::{Read, Write};
use labctl_chat::validate;
use serde::Deserialize;

use super::{tag_in_path, wants_delete};
use crate::app::{
    expect_reply, json, json_or_see_other, no_content, see_other, segment, with_cookie, App,
};
use crate::cookies;
use crate::error::Failure;
use crate::request::Ctx;

/// The query of `GET /users`.
#[derive(Deserialize, Default)]
pub(super) struct Search {
    username: Option<String>,
    tag: Option<String>,
    /// Go straight to the conversation (the main page's "start a chat" form).
    chat: Option<String>,
}

/// `GET /users`: the search page; `?username=…` (HTML) goes to that name's list, or with a
/// `tag` to that user (or, with `chat`, to the conversation with them). JSON: the users with
/// that username.
pub(super) async fn search(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    query: Result<Query<Search>, QueryRejection>,
) -> Result<Response, Failure> {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let username = query.username.as_deref().map(str::trim).unwrap_or("");
    let tag = query.tag.as_deref().map(str::trim).unwrap_or("");
    if ctx.json {
        if username.is_empty() {
            return Err(Failure::malformed(
                "Say which username to look for: GET /users?username=NAME.",
            ));
        }
        return list(&app, &ctx, username).await;
    }
    if username.is_empty() {
        return Ok(app.page(&ctx, StatusCode::OK, "search.html", tera::Context::new()));
    }
    if tag.is_empty() {
        return Ok(see_other(&format!("/users/{}", segment(username))));
    }
    if let Err(error) = validate::tag(tag) {
        let failure = Failure::from(error);
        let mut context = tera::Context::new();
        context.insert("error", &failure.message);
        context.insert("username", username);
        context.insert("tag", tag);
        return Ok(app.page(&ctx, failure.status, "search.html", context));
    }
    let chat = if query.chat.is_some() { "/chat" } else { "" };
    Ok(see_other(&format!(
        "/users/{}/{}{chat}",
        segment(username),
        segment(tag)
    )))
}

/// `GET /users/{username}`: every user with that username (JSON: a list, maybe empty).
pub(super) async fn by_name(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(username): Path<String>,
) -> Result<Response, Failure> {
    list(&app, &ctx, &username).await
}

/// The users called `username`, as JSON or as a page.
async fn list(app: &App, ctx: &Ctx, username: &str) -> Result<Response, Failure> {
    let reply = app
        .read(
            ctx,
            Read::UsersByName {
                username: username.to_string(),
            },
        )
        .await?;
    let users = expect_reply!(reply, Users { users })?;
    if ctx.json {
        return Ok(json(StatusCode::OK, &users));
    }
    let mut context = tera::Context::new();
    context.insert("username", username);
    context.insert("users", &users);
    Ok(app.page(ctx, StatusCode::OK, "users.html", context))
}

/// `GET /users/{username}/{tag}`: one user.
pub(super) async fn one(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    uri: Uri,
    Path((username, tag)): Path<(String, String)>,
) -> Result<Response, Failure> {
    tag_in_path(&uri, &tag)?;
    let reply = app.read(&ctx, Read::User { username, tag }).await?;
    let user = expect_reply!(reply, User { user })?;
    if ctx.json {
        return Ok(json(StatusCode::OK, &user));
    }
    let mut context = tera::Context::new();
    context.insert(
        "is_me",
        &ctx.session.as_ref().is_some_and(|s| s.uuid == user.uuid),
    );
    context.insert("user", &user);
    Ok(app.page(&ctx, StatusCode::OK, "user.html", context))
}

/// `DELETE /users/{uuid}`: deletes the logged-in user's own account (403 for anyone else's).
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(uuid): Path<String>,
) -> Result<Response, Failure> {
    delete_account(&app, &ctx, uuid).await
}

/// `POST /users/{uuid}` with `_method=delete`: the same, from an HTML form.
pub(super) async fn delete_by_form(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    method: Method,
    uri: Uri,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    wants_delete(&ctx, &method, &uri, body)?;
    delete_account(&app, &ctx, uuid).await
}

/// Deletes the account and ends the session.
async fn delete_account(app: &App, ctx: &Ctx, uuid: String) -> Result<Response, Failure> {
    let session = ctx.login()?;
    // The writer checks this too; the input node refuses early.
    if uuid != session.uuid {
        return Err(Failure::forbidden("You can only delete your own account."));
    }
    let write = Write::DeleteUser {
        uuid,
        requester: session.uuid.clone(),
    };
    let (reply, pos) = app.write(ctx, write).await?;
    expect_reply!(reply, Deleted)?;
    let response = with_cookie(
        json_or_see_other(ctx, no_content, "/"),
        cookies::clear(cookies::SESSION),
    );
    Ok(with_cookie(response, app.seen_cookie(pos)))
}
