//! The routes of SPEC §5 (plus `GET /healthz`), one file per area.
//!
//! | route | handler |
//! |---|---|
//! | `GET /` | [`home::index`] |
//! | `GET /healthz` | [`healthz`] |
//! | `GET POST /register`, `GET POST /login`, `GET /logout` | [`account`] |
//! | `GET /users`, `GET DELETE /users/{username}`, `GET /users/{username}/{tag}` | [`users`] |
//! | `GET POST /users/{username}/{tag}/chat`, `GET POST /groups/{group}/chat` | [`chat`] |
//! | `GET POST /groups`, `GET DELETE /groups/{group}`, `GET POST /groups/{group}/members`, `DELETE /groups/{group}/members/{user}` | [`groups`] |
//!
//! HTML forms cannot send DELETE: a form POSTs to the same address with the field
//! `_method=delete` instead.

mod account;
mod chat;
mod groups;
mod home;
mod users;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{delete, get};
use axum::{middleware, Router};
use labctl_chat::validate;

use crate::app::App;
use crate::backend::Backend;
use crate::config::WebConfig;
use crate::error::{Failure, WebError};
use crate::pages::Pages;
use crate::request::{self, BODY_LIMIT};
use crate::session::Keys;

/// Builds the router.
pub(crate) fn build(config: WebConfig, backend: Arc<dyn Backend>) -> Result<Router, WebError> {
    if config.secret.is_empty() {
        return Err(WebError::EmptySecret);
    }
    let pages = Pages::load(config.templates.as_deref())?;
    let app = Arc::new(App {
        keys: Keys::new(config.secret.clone()),
        config,
        pages,
        backend,
    });
    let router = Router::new()
        .route("/", get(home::index))
        .route("/healthz", get(healthz))
        .route(
            "/register",
            get(account::register_form).post(account::register),
        )
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", get(account::logout))
        .route("/users", get(users::search))
        .route(
            "/users/{username}",
            get(users::by_name)
                .delete(users::delete)
                .post(users::delete_by_form),
        )
        .route("/users/{username}/{tag}", get(users::one))
        .route(
            "/users/{username}/{tag}/chat",
            get(chat::private).post(chat::send_private),
        )
        .route("/groups", get(groups::list).post(groups::create))
        .route(
            "/groups/{group}",
            get(groups::show)
                .delete(groups::delete)
                .post(groups::delete_by_form),
        )
        .route(
            "/groups/{group}/members",
            get(groups::members).post(groups::add_member),
        )
        .route(
            "/groups/{group}/members/{user}",
            delete(groups::remove_member).post(groups::remove_member_by_form),
        )
        .route(
            "/groups/{group}/chat",
            get(chat::group).post(chat::send_group),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            request::prepare,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app);
    Ok(router)
}

/// `GET /healthz`: the nameserver's health check.
async fn healthz() -> &'static str {
    "ok"
}

/// No route here: 404.
async fn not_found(uri: Uri) -> Failure {
    route_miss(&uri)
}

/// The 404 of an address that names no page.
fn route_miss(uri: &Uri) -> Failure {
    Failure::not_found(format!("There is no page at {}.", uri.path()))
}

/// A known address, a method it does not take: 405.
async fn method_not_allowed(method: Method, uri: Uri) -> Failure {
    method_miss(&method, &uri)
}

/// The 405 of an address that does not take `method`.
fn method_miss(method: &Method, uri: &Uri) -> Failure {
    Failure::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method} requests.", uri.path()),
    )
}

/// A tag in a path must match `[0-9]{3,6}`, or the address names no page (404, like any
/// unknown route).
fn tag_in_path(uri: &Uri, tag: &str) -> Result<(), Failure> {
    validate::tag(tag).map_err(|_| route_miss(uri))
}

/// An id in a path must be a UUID, or it names nothing (404).
fn id_in_path(id: &str, what: &str) -> Result<(), Failure> {
    validate::uuid(id)
        .map_err(|_| Failure::not_found(format!("There is no {what} with id {id:?}.")))
}

/// A form asking to delete (the stand-in for DELETE in HTML), checked in this order: the client
/// must be logged in (401), the body must be read whole (413 past [`BODY_LIMIT`]), and its
/// `_method` must be `delete` (405 otherwise).
fn wants_delete(
    ctx: &request::Ctx,
    method: &Method,
    uri: &Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<(), Failure> {
    ctx.login()?;
    let body = request::read_body(body)?;
    let is_delete = ctx.body == request::BodyKind::Form
        && request::form_field(&body, "_method").is_some_and(|m| m.eq_ignore_ascii_case("delete"));
    if is_delete {
        Ok(())
    } else {
        Err(method_miss(method, uri))
    }
}
