//! Registering, logging in and out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use labctl_chat::ops::{Read, Reply, User, Write};
use labctl_chat::validate;
use labctl_core::log::Pos;
use serde::Deserialize;
use serde_json::json;

use crate::app::{expect_reply, json, json_or_see_other, no_content, unexpected, with_cookie, App};
use crate::cookies;
use crate::error::Failure;
use crate::request::{parse, Ctx, CSRF_HEADER};
use crate::session::{now_ms, Session};

/// The body of `POST /register` and `POST /login`.
#[derive(Deserialize)]
pub(super) struct Credentials {
    username: String,
    tag: String,
    password: String,
}

/// The fields a program should send, for `GET /register` and `GET /login` in JSON.
fn fields() -> Response {
    json(
        StatusCode::OK,
        &json!({ "fields": ["username", "tag", "password"] }),
    )
}

/// A form page again, after a failure (HTML), with the sentence and the values typed so far; or
/// the failure itself (JSON).
fn again(
    app: &App,
    ctx: &Ctx,
    template: &str,
    failure: Failure,
    typed: Option<&Credentials>,
) -> Response {
    if ctx.json {
        return failure.into_response();
    }
    let mut context = tera::Context::new();
    context.insert("error", &failure.message);
    context.insert("username", &typed.map_or("", |c| c.username.as_str()));
    context.insert("tag", &typed.map_or("", |c| c.tag.as_str()));
    failure.stamp(app.page(ctx, failure.status, template, context))
}

/// `GET /register`: the form.
pub(super) async fn register_form(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    if ctx.json {
        return fields();
    }
    app.page(&ctx, StatusCode::OK, "register.html", tera::Context::new())
}

/// `POST /register`: 201 and the user (JSON), or 303 to the login form (HTML). The password is
/// hashed here, at the input node (on the pool of hashers: 503 with `Retry-After` when it is
/// full); only the hash travels to the writer.
pub(super) async fn register(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let credentials = match parse::<Credentials>(&ctx, body) {
        Ok(credentials) => credentials,
        Err(failure) => return again(&app, &ctx, "register.html", failure, None),
    };
    let (user, cookie) = match create_user(&app, &ctx, &credentials).await {
        Ok(created) => created,
        Err(failure) => return again(&app, &ctx, "register.html", failure, Some(&credentials)),
    };
    let query = serde_urlencoded::to_string([
        ("registered", "1"),
        ("username", &user.username),
        ("tag", &user.tag),
    ])
    .unwrap_or_default();
    let response = json_or_see_other(
        &ctx,
        || json(StatusCode::CREATED, &user),
        &format!("/login?{query}"),
    );
    with_cookie(response, cookie)
}

/// Checks the values, hashes the password and registers the user.
async fn create_user(
    app: &App,
    ctx: &Ctx,
    credentials: &Credentials,
) -> Result<(User, HeaderValue), Failure> {
    validate::username(&credentials.username)?;
    validate::tag(&credentials.tag)?;
    validate::password(&credentials.password)?;
    let password_hash = app
        .config
        .hashing
        .hash(credentials.password.clone())
        .await
        .map_err(Failure::busy)?;
    let write = Write::Register {
        username: credentials.username.clone(),
        tag: credentials.tag.clone(),
        password_hash,
    };
    let (reply, pos) = app.write(ctx, write).await?;
    Ok((
        expect_reply!(reply, User { user })?,
        app.after_write(ctx, pos),
    ))
}

/// What `GET /login` may be told (after registering).
#[derive(Deserialize, Default)]
pub(super) struct LoginQuery {
    registered: Option<String>,
    username: Option<String>,
    tag: Option<String>,
}

/// `GET /login`: the form.
pub(super) async fn login_form(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    if ctx.json {
        return fields();
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let mut context = tera::Context::new();
    if query.registered.is_some() {
        context.insert("notice", "Your account is ready: log in.");
    }
    context.insert("username", &query.username.unwrap_or_default());
    context.insert("tag", &query.tag.unwrap_or_default());
    app.page(&ctx, StatusCode::OK, "login.html", context)
}

/// `POST /login`: checks the password (argon2, on the pool of hashers) and sets the session
/// cookie; 200 and the user (JSON, with the session's CSRF token in `X-CSRF-Token`), or 303 to
/// the main page (HTML).
pub(super) async fn login(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let credentials = match parse::<Credentials>(&ctx, body) {
        Ok(credentials) => credentials,
        Err(failure) => return again(&app, &ctx, "login.html", failure, None),
    };
    let (user, generation) = match check_password(&app, &ctx, &credentials).await {
        Ok(user) => user,
        Err(failure) => return again(&app, &ctx, "login.html", failure, Some(&credentials)),
    };
    let session = Session::new(
        user,
        generation,
        now_ms(),
        app.config.session_ttl,
        ctx.min_pos(),
    );
    let cookie = app.session_cookie(&session);
    let for_program = || {
        let mut response = json(StatusCode::OK, &session.user());
        if let Ok(token) = HeaderValue::from_str(&app.keys.csrf_for_session(&session)) {
            response.headers_mut().insert(CSRF_HEADER, token);
        }
        response
    };
    with_cookie(json_or_see_other(&ctx, for_program, "/"), cookie)
}

/// The user and its session generation, if the password is right; 401 otherwise (the same
/// sentence whether the user is unknown or the password wrong).
async fn check_password(
    app: &App,
    ctx: &Ctx,
    credentials: &Credentials,
) -> Result<(User, u64), Failure> {
    let wrong = || Failure::new(StatusCode::UNAUTHORIZED, "Wrong username, tag or password.");
    let read = Read::Credentials {
        username: credentials.username.clone(),
        tag: credentials.tag.clone(),
    };
    let (user, password_hash, generation) = match app.read(ctx, read).await {
        Ok(Reply::Credentials {
            user,
            password_hash,
            generation,
        }) => (user, password_hash, generation),
        Ok(other) => return Err(unexpected(&other, "Credentials")),
        Err(failure) if failure.status == StatusCode::NOT_FOUND => return Err(wrong()),
        Err(failure) => return Err(failure),
    };
    let matches = app
        .config
        .hashing
        .verify(credentials.password.clone(), password_hash)
        .await
        .map_err(Failure::busy)?;
    if matches {
        Ok((user, generation))
    } else {
        Err(wrong())
    }
}

/// `GET /logout`: ends the session everywhere, not only in this browser (SPEC §5): the user's
/// session generation goes up in the replicated store, so this token, and every other token
/// issued to the user before, is refused at every input node from then on. Then clears the
/// cookie (204 JSON, 303 to `/` HTML). The browser keeps the log position of its last write,
/// the logout's included (signed), so logging in again reads at least that.
///
/// If the generation could not be raised (no writer reachable: 503; no answer in time: 504) the
/// cookie is still cleared, and the answer says that other copies of the token may still work.
pub(super) async fn logout(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    let mut seen = ctx.min_pos();
    let mut failure = None;
    if let Some(session) = &ctx.session {
        let end = Write::EndSessions {
            user: session.uuid.clone(),
        };
        match app.write(&ctx, end).await {
            Ok((_, pos)) => seen = seen.max(pos),
            Err(why) => {
                failure = Some(Failure {
                    message: format!(
                        "You are logged out in this browser, but your session could not be \
                         ended everywhere (a copy of its cookie may still work): {} Log out \
                         again to end it.",
                        why.message
                    ),
                    ..why
                })
            }
        }
    }
    let answer = match failure {
        None => json_or_see_other(&ctx, no_content, "/"),
        Some(failure) => failure.into_response(),
    };
    let mut response = with_cookie(answer, cookies::clear(cookies::SESSION));
    if seen > Pos::START {
        response = with_cookie(response, app.seen_cookie(seen));
    }
    response
}
