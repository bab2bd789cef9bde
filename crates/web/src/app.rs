//! The service's shared state and the helpers every handler answers with.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use labctl_chat::ops::{Read, Reply, User, Write};
use labctl_core::log::Pos;
use serde::Serialize;

use crate::backend::Backend;
use crate::config::WebConfig;
use crate::cookies;
use crate::error::Failure;
use crate::pages::Pages;
use crate::request::Ctx;
use crate::session::{self, now_ms, Keys, Session};

/// Everything a handler may use: settings, keys, templates and the backend.
pub(crate) struct App {
    /// The settings.
    pub config: WebConfig,
    /// The signing keys.
    pub keys: Keys,
    /// The templates.
    pub pages: Pages,
    /// The data plane.
    pub backend: Arc<dyn Backend>,
}

impl App {
    /// A read, at least as new as this client's last write.
    pub async fn read(&self, ctx: &Ctx, read: Read) -> Result<Reply, Failure> {
        Ok(self.backend.read(read, ctx.min_pos()).await?)
    }

    /// A write, with the request's `Idempotency-Key` scoped to the user acting; returns the reply
    /// and the newest log position this client has written, for [`App::after_write`].
    pub async fn write(&self, ctx: &Ctx, write: Write) -> Result<(Reply, Pos), Failure> {
        let key = match &ctx.idempotency_key {
            Ok(key) => key.as_ref().map(|key| format!("{}/{key}", actor(&write))),
            Err(why) => return Err(Failure::new(StatusCode::BAD_REQUEST, why.clone())),
        };
        let (reply, pos) = self.backend.write(write, key).await?;
        Ok((reply, pos.max(ctx.min_pos())))
    }

    /// The cookie that records a write at `pos`, for the next reads to pass on: the session
    /// re-issued with the new position, or the signed `labctl_pos` without a session.
    pub fn after_write(&self, ctx: &Ctx, pos: Pos) -> HeaderValue {
        match &ctx.session {
            Some(session) => self.session_cookie(&Session {
                pos,
                ..session.clone()
            }),
            None => self.seen_cookie(pos),
        }
    }

    /// The signed `labctl_pos` cookie for a browser without a session.
    pub fn seen_cookie(&self, pos: Pos) -> HeaderValue {
        cookies::set(cookies::SEEN, &self.keys.sign_pos(pos), None)
    }

    /// The answer to a write at `pos` (see [`json_or_see_other`]), with the cookie that records
    /// it ([`App::after_write`]).
    pub fn written(
        &self,
        ctx: &Ctx,
        pos: Pos,
        for_program: impl FnOnce() -> Response,
        location: &str,
    ) -> Response {
        with_cookie(
            json_or_see_other(ctx, for_program, location),
            self.after_write(ctx, pos),
        )
    }

    /// The `Set-Cookie` for `session`, living as long as the session.
    pub fn session_cookie(&self, session: &Session) -> HeaderValue {
        let left = session.exp.saturating_sub(now_ms()).div_ceil(1000).max(1);
        cookies::set(cookies::SESSION, &self.keys.sign(session), Some(left))
    }

    /// The page `template` with `context`, plus what every page shows (the lab, the node, the
    /// logged-in user and the CSRF token for its forms).
    pub fn page(
        &self,
        ctx: &Ctx,
        status: StatusCode,
        template: &str,
        mut context: tera::Context,
    ) -> Response {
        let mut new_nonce = None;
        let csrf = match (&ctx.session, &ctx.nonce) {
            (Some(session), _) => self.keys.csrf_for_session(session),
            (None, Some(nonce)) => self.keys.csrf_for_cookie(nonce),
            (None, None) => match session::nonce() {
                Some(nonce) => {
                    let token = self.keys.csrf_for_cookie(&nonce);
                    new_nonce = Some(nonce);
                    token
                }
                None => String::new(),
            },
        };
        context.insert("lab", &self.config.lab);
        context.insert("node", &self.config.node);
        context.insert("me", &ctx.session.as_ref().map(Session::user));
        context.insert("csrf", &csrf);
        let html = match self.pages.render(template, &context) {
            Ok(html) => html,
            Err(error) => {
                tracing::error!(template, error = %crate::error::chain(&error), "a page failed to render");
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "This page could not be rendered (a fault of the service, logged).",
                );
            }
        };
        let mut response =
            (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
        if let Some(nonce) = new_nonce {
            response
                .headers_mut()
                .append(SET_COOKIE, cookies::set(cookies::CSRF, &nonce, None));
        }
        response
    }

    /// Renders the [`Failure`] a handler (or the guard) answered with, if any, for this client;
    /// other error responses without a sentence (axum's own rejections) get one too.
    pub async fn finish(&self, ctx: &Ctx, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        let failure = match parts.extensions.remove::<Failure>() {
            Some(failure) => failure,
            // An error without a sentence and not already a page (axum's own rejections,
            // in plain text or empty): give it one.
            None if (parts.status.is_client_error() || parts.status.is_server_error())
                && !is_rendered(&parts.headers) =>
            {
                let text = to_bytes(body, 16 * 1024).await.unwrap_or_default();
                let text = String::from_utf8_lossy(&text).trim().to_string();
                let message = if text.is_empty() {
                    parts
                        .status
                        .canonical_reason()
                        .unwrap_or("The request failed")
                        .to_string()
                } else {
                    text
                };
                Failure::new(parts.status, message)
            }
            None => return Response::from_parts(parts, body),
        };
        let page = if ctx.json {
            json(
                failure.status,
                &serde_json::json!({ "error": failure.message }),
            )
        } else {
            let mut context = tera::Context::new();
            context.insert("status", &failure.status.as_u16());
            context.insert(
                "reason",
                failure.status.canonical_reason().unwrap_or("Error"),
            );
            context.insert("message", &failure.message);
            self.page(ctx, failure.status, "error.html", context)
        };
        let (page_parts, page_body) = page.into_parts();
        parts.status = failure.status;
        parts.headers.remove(CONTENT_LENGTH);
        for (name, value) in &page_parts.headers {
            if name == SET_COOKIE {
                parts.headers.append(name, value.clone());
            } else {
                parts.headers.insert(name, value.clone());
            }
        }
        Response::from_parts(parts, page_body)
    }
}

/// Who an idempotency key belongs to: the user acting (a registration: the name it claims), so
/// one user's key never answers another's request.
fn actor(write: &Write) -> String {
    match write {
        Write::Register { username, tag, .. } => format!("register:{username}#{tag}"),
        Write::DeleteUser { requester, .. }
        | Write::DeleteGroup { requester, .. }
        | Write::AddMember { requester, .. }
        | Write::RemoveMember { requester, .. } => requester.clone(),
        Write::SendPrivate { from, .. } | Write::SendGroup { from, .. } => from.clone(),
        Write::CreateGroup { creator, .. } => creator.clone(),
        Write::EndSessions { user } => user.clone(),
    }
}

/// Whether a response is already HTML or JSON (rendered by this service).
fn is_rendered(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("text/html") || kind.starts_with("application/json"))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\": \"The answer could not be encoded as JSON.\"}",
        ),
    }
}

/// A plain-text response.
fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(text),
    )
        .into_response()
}

/// 303 See Other to `location` (after a form post: the browser then GETs it).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The answer to an action: `for_program()` to a JSON client, 303 to `location` for a browser
/// (which then GETs the page to show).
pub(crate) fn json_or_see_other(
    ctx: &Ctx,
    for_program: impl FnOnce() -> Response,
    location: &str,
) -> Response {
    if ctx.json {
        for_program()
    } else {
        see_other(location)
    }
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `response` with one more `Set-Cookie`.
pub(crate) fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// `/users/{username}/{tag}`, encoded for a URL.
pub(crate) fn user_path(user: &User) -> String {
    format!("/users/{}/{}", segment(&user.username), segment(&user.tag))
}

/// One path segment, percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Unwraps a [`Reply`] of the expected kind (any other is a fault of the data plane).
macro_rules! expect_reply {
    ($reply:expr, $variant:ident) => {
        match $reply {
            ::labctl_chat::ops::Reply::$variant => Ok(()),
            other => Err($crate::app::unexpected(&other, stringify!($variant))),
        }
    };
    ($reply:expr, $variant:ident { $field:ident }) => {
        match $reply {
            ::labctl_chat::ops::Reply::$variant { $field } => Ok($field),
            other => Err($crate::app::unexpected(&other, stringify!($variant))),
        }
    };
}
pub(crate) use expect_reply;

/// The failure for a reply of the wrong kind.
pub(crate) fn unexpected(reply: &Reply, wanted: &str) -> Failure {
    tracing::error!(
        ?reply,
        wanted,
        "the backend answered with the wrong kind of reply"
    );
    Failure::internal(format!(
        "The data plane answered with the wrong kind of reply (expected {wanted})."
    ))
}
