//! The HTTP redirector: every request is answered with `307 Temporary Redirect` to a live input
//! node, round robin, keeping the method (307 forbids changing it), the path and the query exactly.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

use crate::registry::Registry;

/// The nameserver's own health, answered locally.
const HEALTHZ: &str = "/healthz";
/// The live input nodes as JSON, answered locally.
const INPUTS: &str = "/_nameserver/inputs";
/// The body of the 503 sent when there is no node to redirect to.
const NO_INPUT: &str = "no input node is live: the lab has no elected tree yet, or every input \
                        node is down; try again shortly";

/// The HTTP service: one handler for every method and path.
pub(crate) fn router(registry: Arc<Registry>) -> Router {
    Router::new().fallback(handle).with_state(registry)
}

async fn handle(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        HEALTHZ if read => "ok".into_response(),
        INPUTS if read => inputs(&registry),
        _ => redirect(&registry, &request),
    }
}

/// `{"live": [{"id": 4, "http_address": "127.0.0.1:5004"}, …]}`, in round-robin order; each
/// address is the one clients are sent to (the public one when the node gave one).
fn inputs(registry: &Registry) -> Response {
    let live: Vec<_> = registry
        .live()
        .into_iter()
        .map(|node| json!({"id": node.id, "http_address": node.client_address()}))
        .collect();
    Json(json!({ "live": live })).into_response()
}

fn redirect(registry: &Registry, request: &Request) -> Response {
    let Some(node) = registry.next() else {
        tracing::debug!(method = %request.method(), uri = %request.uri(), "no input node is live");
        return unavailable(request.headers());
    };
    // The request target exactly as the client sent it (hyper keeps its percent-encoding); an
    // absolute-form target (`GET http://host/x`) keeps only its path and query.
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let location = format!("http://{}{target}", node.client_address());
    let Ok(value) = HeaderValue::from_str(&location) else {
        // Unreachable in practice: hyper accepts only visible ASCII in the target, and registered
        // addresses are validated; still, bad input gets a 4xx, never a panic.
        return (
            StatusCode::BAD_REQUEST,
            "the request target cannot be put in a Location header",
        )
            .into_response();
    };
    tracing::debug!(method = %request.method(), %location, input = node.id, "redirecting");
    (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, value)]).into_response()
}

/// `503 Service Unavailable` saying why, as JSON when the client asks for JSON, else plain text.
fn unavailable(headers: &HeaderMap) -> Response {
    let retry = [(RETRY_AFTER, HeaderValue::from_static("1"))];
    if wants_json(headers) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            retry,
            Json(json!({ "error": NO_INPUT })),
        )
            .into_response()
    } else {
        // A `String`/`&str` body is sent as `text/plain; charset=utf-8`.
        (StatusCode::SERVICE_UNAVAILABLE, retry, NO_INPUT).into_response()
    }
}

/// Whether an `Accept` header names `application/json` (parameters and quality ignored).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|range| range.split(';').next())
        .any(|media| media.trim().eq_ignore_ascii_case("application/json"))
}
