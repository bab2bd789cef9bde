//! What every request goes through before and after its handler: the session, the response
//! format, the CSRF guard, body parsing, and the rendering of failures.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use labctl_chat::ops::{AppError, Read, Reply};
use labctl_core::log::Pos;
use serde::de::DeserializeOwned;

use crate::app::{unexpected, App};
use crate::cookies;
use crate::error::Failure;
use crate::session::{now_ms, Session};

/// The largest request body accepted, in bytes.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// The header a script may carry a CSRF token in (forms use the field `csrf`).
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// The header that makes a write safe to retry (SPEC §5).
pub(crate) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The longest `Idempotency-Key` accepted.
pub(crate) const MAX_KEY_LEN: usize = 128;

/// How a request body is encoded, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else, or no body type at all.
    Other,
}

/// What the middleware learnt about a request, for its handler.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// Answer in JSON (`Accept` names `application/json`), else HTML.
    pub json: bool,
    /// The session, if the request carries a valid one.
    pub session: Option<Session>,
    /// The signed `labctl_pos` cookie: the last write of this browser without a session.
    pub seen: Pos,
    /// The `Idempotency-Key` header, if any (or why it is not acceptable).
    pub idempotency_key: Result<Option<String>, String>,
    /// The CSRF cookie's random value, if the browser has one.
    pub nonce: Option<String>,
    /// How the body is encoded.
    pub body: BodyKind,
    /// The request carried a session token that was logged out (or whose user is gone): the
    /// answer clears the cookie.
    pub ended: bool,
    /// Why the session could not be checked (no node holding its position answered): what a
    /// handler that needs the session answers instead of serving it unchecked.
    pub unchecked: Option<Failure>,
}

impl Ctx {
    /// Reads the request's headers.
    fn new(app: &App, headers: &HeaderMap) -> Self {
        let session =
            cookies::get(headers, cookies::SESSION).and_then(|t| app.keys.verify(&t, now_ms()));
        // An unsigned or forged position is ignored (SPEC §4).
        let seen = cookies::get(headers, cookies::SEEN)
            .and_then(|value| app.keys.verify_pos(&value))
            .unwrap_or(Pos::START);
        let nonce = cookies::get(headers, cookies::CSRF).filter(|value| {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        Ctx {
            json: wants_json(headers),
            session,
            seen,
            idempotency_key: idempotency_key(headers),
            nonce,
            body: body_kind(headers),
            ended: false,
            unchecked: None,
        }
    }

    /// Checks the session's generation against the user's in the store, read at a node that
    /// holds the session's position (SPEC §5, logging out): a token of an older generation, or
    /// of a user that no longer exists, is no session (and its cookie is cleared); one that cannot
    /// be checked is not served either ([`Ctx::unchecked`]). Either way, the position it carried
    /// (signed) still counts for what this client may be shown.
    ///
    /// A write (`writes`) whose session cannot be checked goes on to the writer with it, whose
    /// answer is the one that counts: in a part of the lab without a quorum, the 503 that says
    /// so (SPEC §6), not this check's. The writer holds every user's data, so where it takes
    /// writes the check is served too, except for a moment around an epoch change: only then
    /// could a logged-out token's write get through (the writer does not check generations).
    async fn check_session(&mut self, app: &App, writes: bool) {
        let Some(session) = &self.session else {
            return;
        };
        let read = Read::Generation {
            user: session.uuid.clone(),
        };
        let current = match app.backend.read(read, self.min_pos()).await {
            Ok(Reply::Generation { generation }) => Ok(generation),
            Ok(other) => Err(unexpected(&other, "Generation")),
            Err(AppError::Unauthorized(_)) => Ok(u64::MAX), // the user is gone
            Err(error) => Err(Failure::from(error)),
        };
        match current {
            Ok(generation) if session.generation >= generation => return,
            Ok(_) => self.ended = true,
            Err(_) if writes => return,
            Err(failure) => {
                self.unchecked = Some(Failure {
                    message: format!(
                        "Your session could not be checked (no node holding your data \
                         answered): {}",
                        failure.message
                    ),
                    ..failure
                })
            }
        }
        self.seen = self.seen.max(session.pos);
        self.session = None;
    }

    /// The logged-in user's session, or 401 (or why it could not be checked).
    pub fn login(&self) -> Result<&Session, Failure> {
        self.session.as_ref().ok_or_else(|| {
            self.unchecked
                .clone()
                .unwrap_or_else(Failure::not_logged_in)
        })
    }

    /// The oldest state this client may be shown: its last write.
    pub fn min_pos(&self) -> Pos {
        self.session
            .as_ref()
            .map_or(Pos::START, |session| session.pos)
            .max(self.seen)
    }
}

/// The `Idempotency-Key` header: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(IDEMPOTENCY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("send one Idempotency-Key header, not several".into());
    }
    let key = value.to_str().unwrap_or("");
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID does)"
        ));
    }
    Ok(Some(key.to_string()))
}

/// Whether the client asked for JSON: `application/json` anywhere in `Accept` wins.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("application/json"))
}

/// The body's encoding, from its media type without parameters.
fn body_kind(headers: &HeaderMap) -> BodyKind {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return BodyKind::Other;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        BodyKind::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// The middleware around every route: builds the [`Ctx`], applies the CSRF guard, runs the
/// handler, then renders a [`Failure`] for the client and stamps the node's id.
pub(crate) async fn prepare(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    // The request's hop (see `labctl_node::hops`): timed only where a node asks for it.
    let span = match *request.method() {
        Method::GET | Method::HEAD => tracing::debug_span!(target: "hop", "http.get"),
        Method::POST => tracing::debug_span!(target: "hop", "http.post"),
        _ => tracing::debug_span!(target: "hop", "http.other"),
    };
    tracing::Instrument::instrument(serve(app, request, next), span).await
}

/// [`prepare`]'s work.
async fn serve(app: Arc<App>, request: Request, next: Next) -> Response {
    let mut ctx = Ctx::new(&app, request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = match whole_body(&app, request).await {
        Err(failure) => failure.into_response(),
        Ok(request) => {
            let writes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
            ctx.check_session(&app, writes).await;
            match guard(&app, &ctx, request).await {
                Ok(mut request) => {
                    request.extensions_mut().insert(ctx.clone());
                    next.run(request).await
                }
                Err(failure) => failure.into_response(),
            }
        }
    };
    let mut response = app.finish(&ctx, response).await;
    if ctx.ended && !sets_cookie(&response, cookies::SESSION) {
        response
            .headers_mut()
            .append(SET_COOKIE, cookies::clear(cookies::SESSION));
    }
    if let Ok(node) = HeaderValue::from_str(&app.config.node.to_string()) {
        response.headers_mut().insert("x-labctl-node", node);
    }
    tracing::debug!(node = app.config.node, %method, path, status = response.status().as_u16(), "http");
    response
}

/// The request with its body read whole, within the body timeout: a client that announces a
/// body and does not send it all (a `Content-Length` larger than what comes, then silence; or a
/// trickle) gets 408 after [`crate::WebConfig::body_timeout`], and the connection is closed
/// (`Connection: close`: what is left of its body is never read). A body past [`BODY_LIMIT`] is
/// 413, as the handlers would say.
async fn whole_body(app: &App, request: Request) -> Result<Request, Failure> {
    let (parts, body) = request.into_parts();
    // `parts` carries the body limit the router set; the probe reads under it.
    let probe = Request::from_parts(parts.clone(), body);
    let timeout = app.config.body_timeout;
    match tokio::time::timeout(timeout, Bytes::from_request(probe, &())).await {
        Ok(bytes) => Ok(Request::from_parts(parts, Body::from(read_body(bytes)?))),
        Err(_) => Err(Failure {
            closes: true,
            ..Failure::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} ms: send the whole body (as \
                     long as its Content-Length says) at once.",
                    timeout.as_millis()
                ),
            )
        }),
    }
}

/// Whether `response` sets cookie `name` (a login's new session, a logout's clearing).
fn sets_cookie(response: &Response, name: &str) -> bool {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|line| line.split_once('=').is_some_and(|(key, _)| key == name))
}

/// The CSRF guard (SPEC §5: "state-changing browser forms are protected against cross-site
/// requests").
///
/// A POST that carries a session, and every POST to `/register` or `/login`, passes only if its
/// body is JSON (a cross-site form cannot send `application/json` without a CORS preflight, and
/// this service answers none) or if it carries our CSRF token, in the header `X-CSRF-Token` or
/// the form field `csrf`. A request without a session needs no guard: it can change nothing (the
/// handler answers 401).
///
/// A DELETE passes as it is, with or without a body (SPEC §5: a program's `DELETE` with its
/// session cookie and no body works): a page of another site can send no DELETE at all, neither
/// by a form (forms only GET and POST; ours POST `_method=delete`, which is guarded) nor by
/// `fetch` without a CORS preflight, and this service answers no preflight (an `OPTIONS` gets
/// 405 without any `Access-Control-Allow-*` header), so the browser never sends it.
async fn guard(app: &App, ctx: &Ctx, request: Request) -> Result<Request, Failure> {
    if request.method() != Method::POST {
        return Ok(request);
    }
    let path = request.uri().path();
    let guarded = ctx.session.is_some() || path == "/register" || path == "/login";
    if !guarded || ctx.body == BodyKind::Json {
        return Ok(request);
    }
    let valid = |token: &str| {
        app.keys
            .check_csrf(token, ctx.session.as_ref(), ctx.nonce.as_deref())
    };
    if let Some(token) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        if valid(token) {
            return Ok(request);
        }
    }
    if ctx.body == BodyKind::Form {
        // Read the form to find its `csrf` field, then hand the same bytes on to the handler.
        let (parts, body) = request.into_parts();
        let probe = Request::from_parts(parts.clone(), body);
        let bytes = read_body(Bytes::from_request(probe, &()).await)?;
        if form_field(&bytes, "csrf").is_some_and(|token| valid(&token)) {
            return Ok(Request::from_parts(parts, Body::from(bytes)));
        }
    }
    Err(Failure::forbidden(
        "This request did not come from one of this site's own pages (its CSRF token is missing \
         or out of date). Reload the page and try again; programs should send JSON.",
    ))
}

/// The field `name` of a form body.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The body, or why it could not be read (413 past [`BODY_LIMIT`]).
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Failure> {
    match body {
        Ok(bytes) => Ok(bytes),
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            Err(Failure::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The request body is larger than the limit of {} KiB.",
                    BODY_LIMIT / 1024
                ),
            ))
        }
        Err(other) => Err(Failure::malformed(format!(
            "The request body could not be read: {other}."
        ))),
    }
}

/// The body as a `T`, from JSON or a form with the same field names (400 when malformed: not
/// JSON, a field missing or of the wrong type).
pub(crate) fn parse<T: DeserializeOwned>(
    ctx: &Ctx,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Failure> {
    let bytes = read_body(body)?;
    match ctx.body {
        BodyKind::Json => {
            // Parsed straight into `T`, never through a map: a key given twice is refused
            // (a map would keep the last one silently).
            let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if !object {
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                        Err(error) => Failure::malformed(format!(
                            "The request body is not valid JSON: {error}."
                        )),
                        Ok(_) => Failure::malformed(
                            "The request body must be a JSON object of named fields.",
                        ),
                    },
                );
            }
            serde_json::from_slice(&bytes).map_err(|error| {
                if error.is_syntax() || error.is_eof() {
                    Failure::malformed(format!("The request body is not valid JSON: {error}."))
                } else {
                    Failure::malformed(format!(
                        "The request body does not have the expected fields: {error}."
                    ))
                }
            })
        }
        BodyKind::Form => serde_urlencoded::from_bytes(&bytes).map_err(|error| {
            Failure::malformed(format!(
                "The form is missing a field or has a malformed one: {error}."
            ))
        }),
        BodyKind::Other => Err(Failure::malformed(
            "Send the request body as JSON (Content-Type: application/json) or as a form \
             (Content-Type: application/x-www-form-urlencoded).",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::HeaderName;

    fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn json_wins_when_it_appears_in_accept() {
        assert!(wants_json(&headers(&[(ACCEPT, "application/json")])));
        assert!(wants_json(&headers(&[(
            ACCEPT,
            "text/html, Application/JSON;q=0.1"
        )])));
        assert!(!wants_json(&headers(&[(ACCEPT, "text/html,*/*")])));
        assert!(!wants_json(&HeaderMap::new()));
    }

    #[test]
    fn body_kinds() {
        let kind = |value| body_kind(&headers(&[(CONTENT_TYPE, value)]));
        assert_eq!(kind("application/json; charset=utf-8"), BodyKind::Json);
        assert_eq!(kind("application/x-www-form-urlencoded"), BodyKind::Form);
        assert_eq!(kind("text/plain"), BodyKind::Other);
        assert_eq!(kind("application/jsonx"), BodyKind::Other);
        assert_eq!(body_kind(&HeaderMap::new()), BodyKind::Other);
    }

    #[test]
    fn form_fields() {
        assert_eq!(
            form_field(b"content=hi&csrf=a%2Bb", "csrf").as_deref(),
            Some("a+b")
        );
        assert_eq!(form_field(b"content=hi", "csrf"), None);
    }
}
