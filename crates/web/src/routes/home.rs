//! `GET /`: the main page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use labctl_chat::ops::{Group, Read, User};
use serde_json::json;

use crate::app::{expect_reply, json, with_cookie, App};
use crate::cookies;
use crate::error::Failure;
use crate::request::Ctx;

/// Logged out: an introduction and links. Logged in: your groups and contacts, and forms to
/// start a chat and create a group. JSON: `{"user", "groups", "contacts", "lab", "node"}`
/// (`user` null and the lists empty when logged out).
pub(super) async fn index(
    State(app): State<Arc<App>>,
    Extension(mut ctx): Extension<Ctx>,
) -> Result<Response, Failure> {
    let mut forget = false;
    let (groups, contacts) = match lists(&app, &ctx).await {
        Ok(lists) => lists,
        // A session can outlive its user (deleted from another browser): show the page as to
        // anyone logged out, and drop the cookie.
        Err(failure)
            if failure.status == StatusCode::UNAUTHORIZED
                || failure.status == StatusCode::NOT_FOUND =>
        {
            ctx.session = None;
            forget = true;
            (Vec::new(), Vec::new())
        }
        Err(failure) => return Err(failure),
    };
    let response = if ctx.json {
        json(
            StatusCode::OK,
            &json!({
                "user": ctx.session.as_ref().map(|s| s.user()),
                "groups": groups,
                "contacts": contacts,
                "lab": app.config.lab,
                "node": app.config.node,
            }),
        )
    } else {
        let mut context = tera::Context::new();
        context.insert("groups", &groups);
        context.insert("contacts", &contacts);
        app.page(&ctx, StatusCode::OK, "index.html", context)
    };
    Ok(if forget {
        with_cookie(response, cookies::clear(cookies::SESSION))
    } else {
        response
    })
}

/// The logged-in user's groups and contacts (none when logged out).
async fn lists(app: &App, ctx: &Ctx) -> Result<(Vec<Group>, Vec<User>), Failure> {
    let Some(session) = &ctx.session else {
        return Ok((Vec::new(), Vec::new()));
    };
    let groups = app
        .read(
            ctx,
            Read::GroupsOf {
                user: session.uuid.clone(),
            },
        )
        .await?;
    let contacts = app
        .read(
            ctx,
            Read::ContactsOf {
                user: session.uuid.clone(),
            },
        )
        .await?;
    Ok((
        expect_reply!(groups, Groups { groups })?,
        expect_reply!(contacts, Users { users })?,
    ))
}
