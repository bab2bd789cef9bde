//! Groups: creating, showing, deleting, and their members.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use labctl_chat::ops::{Read, Write};
use labctl_chat::validate;
use serde::Deserialize;

use super::{id_in_path, wants_delete};
use crate::app::{expect_reply, json, no_content, App};
use crate::error::Failure;
use crate::request::{parse, Ctx};

/// The body of `POST /groups`.
#[derive(Deserialize)]
struct NewGroup {
    name: String,
}

/// The body of `POST /groups/{group}/members`.
#[derive(Deserialize)]
struct NewMember {
    username: String,
    tag: String,
}

/// `GET /groups`: the groups you belong to (JSON: a list), and the form to create one.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    let reply = app
        .read(
            &ctx,
            Read::GroupsOf {
                user: session.uuid.clone(),
            },
        )
        .await?;
    let groups = expect_reply!(reply, Groups { groups })?;
    if ctx.json {
        return Ok(json(StatusCode::OK, &groups));
    }
    let mut context = tera::Context::new();
    context.insert("groups", &groups);
    Ok(app.page(&ctx, StatusCode::OK, "groups.html", context))
}

/// `POST /groups`: creates a group (you become its creator and first member); 201 and the group,
/// or 303 to its page.
pub(super) async fn create(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    let new: NewGroup = parse(&ctx, body)?;
    validate::group_name(&new.name)?;
    let write = Write::CreateGroup {
        name: new.name,
        creator: session.uuid.clone(),
    };
    let (reply, pos) = app.write(&ctx, write).await?;
    let group = expect_reply!(reply, Group { group })?;
    Ok(app.written(
        &ctx,
        pos,
        || json(StatusCode::CREATED, &group),
        &format!("/groups/{}", group.uuid),
    ))
}

/// `GET /groups/{group}`: the group (JSON). The page also lists its members and, for its
/// creator, the forms to add and remove members and to delete it.
pub(super) async fn show(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    id_in_path(&group, "group")?;
    if ctx.json {
        let reply = app.read(&ctx, Read::Group { uuid: group }).await?;
        return Ok(json(
            StatusCode::OK,
            &expect_reply!(reply, Group { group })?,
        ));
    }
    group_page(&app, &ctx, group).await
}

/// The group page: the group, and its members if you are one.
async fn group_page(app: &App, ctx: &Ctx, uuid: String) -> Result<Response, Failure> {
    let reply = app.read(ctx, Read::Group { uuid: uuid.clone() }).await?;
    let group = expect_reply!(reply, Group { group })?;
    let mut members = None;
    if let Some(session) = &ctx.session {
        let read = Read::Members {
            group: uuid,
            requester: session.uuid.clone(),
        };
        match app.read(ctx, read).await {
            Ok(reply) => members = Some(expect_reply!(reply, Users { users })?),
            Err(failure) if failure.status == StatusCode::FORBIDDEN => {}
            Err(failure) => return Err(failure),
        }
    }
    let creator = members
        .iter()
        .flatten()
        .find(|member| member.uuid == group.creator)
        .cloned();
    let mut context = tera::Context::new();
    context.insert(
        "is_creator",
        &ctx.session
            .as_ref()
            .is_some_and(|s| s.uuid == group.creator),
    );
    context.insert("group", &group);
    context.insert("creator", &creator);
    context.insert("members", &members);
    Ok(app.page(ctx, StatusCode::OK, "group.html", context))
}

/// `DELETE /groups/{group}`: deletes the group (its creator only).
pub(super) async fn delete(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    delete_group(&app, &ctx, group).await
}

/// `POST /groups/{group}` with `_method=delete`: the same, from an HTML form.
pub(super) async fn delete_by_form(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    method: Method,
    uri: Uri,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    wants_delete(&ctx, &method, &uri, body)?;
    delete_group(&app, &ctx, group).await
}

/// Deletes a group: 204, or 303 to the main page.
async fn delete_group(app: &App, ctx: &Ctx, group: String) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    let write = Write::DeleteGroup {
        group,
        requester: session.uuid.clone(),
    };
    let (reply, pos) = app.write(ctx, write).await?;
    expect_reply!(reply, Deleted)?;
    Ok(app.written(ctx, pos, no_content, "/"))
}

/// `GET /groups/{group}/members`: the members (members only; JSON: a list).
pub(super) async fn members(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(group): Path<String>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    if !ctx.json {
        return group_page(&app, &ctx, group).await;
    }
    let read = Read::Members {
        group,
        requester: session.uuid.clone(),
    };
    let reply = app.read(&ctx, read).await?;
    Ok(json(
        StatusCode::OK,
        &expect_reply!(reply, Users { users })?,
    ))
}

/// `POST /groups/{group}/members`: adds `username`+`tag` (the creator only); 201 and the user,
/// or 303 back to the group.
pub(super) async fn add_member(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(group): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    let new: NewMember = parse(&ctx, body)?;
    validate::username(&new.username)?;
    validate::tag(&new.tag)?;
    let write = Write::AddMember {
        group: group.clone(),
        username: new.username,
        tag: new.tag,
        requester: session.uuid.clone(),
    };
    let (reply, pos) = app.write(&ctx, write).await?;
    let user = expect_reply!(reply, User { user })?;
    Ok(app.written(
        &ctx,
        pos,
        || json(StatusCode::CREATED, &user),
        &format!("/groups/{group}"),
    ))
}

/// `DELETE /groups/{group}/members/{user}`: removes a member (the creator, or the member
/// itself: leaving).
pub(super) async fn remove_member(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path((group, user)): Path<(String, String)>,
) -> Result<Response, Failure> {
    remove(&app, &ctx, group, user).await
}

/// `POST /groups/{group}/members/{user}` with `_method=delete`: the same, from an HTML form.
pub(super) async fn remove_member_by_form(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    method: Method,
    uri: Uri,
    Path((group, user)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    wants_delete(&ctx, &method, &uri, body)?;
    remove(&app, &ctx, group, user).await
}

/// Removes a member: 204, or 303 to the group (to the main page after leaving it).
async fn remove(app: &App, ctx: &Ctx, group: String, user: String) -> Result<Response, Failure> {
    let session = ctx.login()?;
    id_in_path(&group, "group")?;
    id_in_path(&user, "user")?;
    let leaving = user == session.uuid;
    let write = Write::RemoveMember {
        group: group.clone(),
        user,
        requester: session.uuid.clone(),
    };
    let (reply, pos) = app.write(ctx, write).await?;
    expect_reply!(reply, Deleted)?;
    let location = if leaving {
        "/".to_string()
    } else {
        format!("/groups/{group}")
    };
    Ok(app.written(ctx, pos, no_content, &location))
}
