//! The chat service's HTTP side (SPEC §5): what an input node serves to browsers and programs.
//!
//! From the client's side the cluster is one server. This crate turns each HTTP request into an
//! operation of [`labctl_chat::ops`] ([`Read`] or [`Write`]), hands it to a [`Backend`] (the node's
//! data plane, which carries it up the spanning tree; or, in tests and one-node labs, a store), and
//! turns the [`Reply`] or [`AppError`] into HTML (tera templates) or JSON (`Accept:
//! application/json`), with SPEC §5's status codes.
//!
//! Serving one input node:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use labctl_web::{router, serve, Backend, WebConfig};
//! # async fn run(backend: Arc<dyn Backend>) -> Result<(), Box<dyn std::error::Error>> {
//! // The secret is lab-wide: a session signed here verifies at every other input node.
//! let config = WebConfig::new(b"lab-wide secret".to_vec(), 4, "ring6");
//! let app = router(config, backend)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, app, async { /* the node stops being an input node */ }).await?;
//! # Ok(()) }
//! ```
//!
//! What happens to a request, in order (see `request.rs`):
//! 1. the session cookie is checked (HMAC-SHA256 with the lab's secret; a forged, tampered or
//!    expired token is no session at all), and the response format is chosen from `Accept`;
//! 2. the body is read whole, within [`WebConfig::body_timeout`] (408 and the connection closed
//!    past it; 413 past 64 KiB);
//! 3. a signed session is checked against its user's session generation in the store (read at
//!    a node that holds the session's position): logging out raises the generation, so a token
//!    of an older one is no session at any input node (401, and its cookie is cleared);
//! 4. a POST that carries a session (and every register or login form) must prove it comes from
//!    our own pages: a JSON body, or a CSRF token; a DELETE needs neither (no other site's page
//!    can send one without a CORS preflight, which this service refuses);
//! 5. the handler checks what it can locally (login, path shapes, values: `validate`), sends one
//!    or a few operations to the backend, and answers; every read passes the session's `seq` (the
//!    log position of the user's last write) as `min_seq`, so a user never reads an older state
//!    than one it wrote (read-your-writes across input nodes), and every write re-issues the
//!    cookie with the new `seq`; passwords are hashed and checked on the [`HashPool`] (a fixed
//!    number of threads reusing their argon2 memory; past its queue, 503 with `Retry-After`);
//! 6. a failure is rendered last, once, as `{"error": "…"}` or as a friendly HTML page.
//!
//! [`Read`]: labctl_chat::ops::Read
//! [`Write`]: labctl_chat::ops::Write
//! [`Reply`]: labctl_chat::ops::Reply
//! [`AppError`]: labctl_chat::ops::AppError

mod app;
mod backend;
mod config;
mod cookies;
mod error;
mod hashing;
mod pages;
mod request;
mod routes;
mod session;

use std::future::Future;
use std::sync::Arc;

pub use backend::Backend;
pub use config::WebConfig;
pub use error::WebError;
pub use hashing::HashPool;

/// Builds the chat service's routes (SPEC §5, plus `GET /healthz`) over `backend`.
///
/// # Errors
/// [`WebError`] if the secret is empty or the templates do not load (a missing file in
/// `config.templates`, a template that does not parse).
pub fn router(config: WebConfig, backend: Arc<dyn Backend>) -> Result<axum::Router, WebError> {
    routes::build(config, backend)
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight finish.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
