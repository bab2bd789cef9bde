//! The dashboard's HTTP side (SPEC §9): the page, and its API.
//!
//! - `GET /` — the page.
//! - `GET /api/report` — the live report, exactly as `labctl status --json` prints it.
//! - `GET /api/events` — server-sent events: a `report` event (its data the JSON report) now and
//!   each time the report changes, and a `history` event (the epochs seen, with failover times)
//!   now and each time it changes.
//! - `GET /api/history` — the epochs seen.
//! - `POST /api/faults` — one fault object of SPEC §7 as the JSON body; the same rules and
//!   errors as `labctl fault`: 200 with what was applied, 400 for a body that is no fault object,
//!   422 for a fault the lab refuses (nothing changed), 500 when carrying it out failed.
//!
//! One task watches the lab: it asks for a report whenever the lab says something may have
//! changed (a trace event of any node) and at least every `poll`, and publishes a report that
//! differs from the last one in anything but the time it took to gather.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use labctl_fault::Fault;
use serde_json::Value;
use tokio::sync::{broadcast, watch, Notify};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};

use crate::history::History;

/// Why a fault was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The lab refused it, as `labctl fault` would: nothing changed.
    Refused(String),
    /// Carrying it out failed part-way.
    Failed(String),
}

/// A running lab, as the dashboard needs it.
#[async_trait::async_trait]
pub trait Lab: Send + Sync + 'static {
    /// The live report, as `labctl status --json` prints it.
    async fn report(&self) -> Result<Value, String>;
    /// Apply one fault; what was applied, as `labctl fault --json` prints it.
    async fn fault(&self, fault: Fault) -> Result<Value, Refusal>;
}

/// How the dashboard runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The page itself ([`crate::page::page`]).
    pub page: String,
    /// Ask for a report at least this often.
    pub poll: Duration,
    /// Notified when something may have changed (ask now).
    pub wake: Arc<Notify>,
}

/// What the watcher publishes.
struct Shared<L> {
    lab: L,
    /// Set when the server shuts down: event streams end (a graceful shutdown waits for every
    /// connection, and an event stream would never end by itself).
    closing: watch::Receiver<bool>,
    page: String,
    wake: Arc<Notify>,
    report: watch::Receiver<Option<Arc<String>>>,
    history: watch::Receiver<Arc<String>>,
    events: broadcast::Sender<Published>,
}

/// One server-sent event's name and data.
#[derive(Clone, Debug)]
struct Published {
    name: &'static str,
    data: Arc<String>,
}

/// A report's JSON without what changes at every ask (the time it took, how long each fault has
/// been in force): two reports that differ only there are the same report, and make no event.
pub fn steady(report: &Value) -> Value {
    let mut report = report.clone();
    if let Some(map) = report.as_object_mut() {
        map.remove("elapsed_ms");
        if let Some(Value::Array(faults)) = map.get_mut("faults") {
            for fault in faults.iter_mut().filter_map(Value::as_object_mut) {
                fault.remove("since_ms");
            }
        }
    }
    report
}

/// Serve the dashboard of `lab` on `listener` until `shutdown` resolves.
pub async fn serve<L: Lab>(
    listener: tokio::net::TcpListener,
    lab: L,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (report_tx, report_rx) = watch::channel(None);
    let (history_tx, history_rx) = watch::channel(Arc::new(
        serde_json::to_string(&History::default()).expect("a history serializes"),
    ));
    let (events, _) = broadcast::channel(64);
    let (closing_tx, closing) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        closing_tx.send_replace(true);
    };
    let shared = Arc::new(Shared {
        lab,
        closing,
        page: options.page,
        wake: options.wake.clone(),
        report: report_rx,
        history: history_rx,
        events: events.clone(),
    });
    let watcher = tokio::spawn(watch_lab(
        shared.clone(),
        options.poll,
        report_tx,
        history_tx,
    ));
    let app = Router::new()
        .route("/", get(page::<L>))
        .route("/api/report", get(report::<L>))
        .route("/api/history", get(history::<L>))
        .route("/api/events", get(events_stream::<L>))
        .route("/api/faults", post(fault::<L>))
        .with_state(shared);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    served
}

/// Ask the lab for reports, publish the changes.
async fn watch_lab<L: Lab>(
    shared: Arc<Shared<L>>,
    poll: Duration,
    report_tx: watch::Sender<Option<Arc<String>>>,
    history_tx: watch::Sender<Arc<String>>,
) {
    let started = Instant::now();
    let mut last: Option<Value> = None;
    let mut history = History::default();
    loop {
        match shared.lab.report().await {
            Ok(report) => {
                let now = steady(&report);
                if last.as_ref() != Some(&now) {
                    last = Some(now);
                    let text = Arc::new(report.to_string());
                    report_tx.send_replace(Some(text.clone()));
                    let _ = shared.events.send(Published {
                        name: "report",
                        data: text,
                    });
                }
                if history.observe(started.elapsed().as_millis() as u64, &report) {
                    let text =
                        Arc::new(serde_json::to_string(&history).expect("a history serializes"));
                    history_tx.send_replace(text.clone());
                    let _ = shared.events.send(Published {
                        name: "history",
                        data: text,
                    });
                }
            }
            Err(e) => tracing::warn!("the lab did not report: {e}"),
        }
        tokio::select! {
            () = shared.wake.notified() => {
                // A burst of trace events (an election) is one change: gather it in one ask.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            () = tokio::time::sleep(poll) => {}
        }
    }
}

async fn page<L: Lab>(State(shared): State<Arc<Shared<L>>>) -> Html<String> {
    Html(shared.page.clone())
}

fn json_text(text: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}

/// The report, fresh from the lab (as `labctl status --json`).
async fn report<L: Lab>(State(shared): State<Arc<Shared<L>>>) -> Response {
    match shared.lab.report().await {
        Ok(report) => json_text(&report.to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(error(&e))).into_response(),
    }
}

async fn history<L: Lab>(State(shared): State<Arc<Shared<L>>>) -> Response {
    let text = shared.history.borrow().clone();
    json_text(&text)
}

/// The current report and history, then every change.
async fn events_stream<L: Lab>(
    State(shared): State<Arc<Shared<L>>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading the current values: a change in between is sent twice, never
    // lost.
    let changes = BroadcastStream::new(shared.events.subscribe())
        .filter_map(|e| e.ok())
        .map(|p| Some(Ok(Event::default().event(p.name).data(p.data.as_str()))));
    let closing = WatchStream::new(shared.closing.clone())
        .filter(|closing| *closing)
        .map(|_| None);
    let changes = changes
        .merge(closing)
        .take_while(Option::is_some)
        .map(|e| e.expect("taken while some"));
    let mut now = Vec::new();
    if let Some(report) = shared.report.borrow().clone() {
        now.push(Ok(Event::default().event("report").data(report.as_str())));
    }
    let history = shared.history.borrow().clone();
    now.push(Ok(Event::default().event("history").data(history.as_str())));
    Sse::new(tokio_stream::iter(now).chain(changes)).keep_alive(KeepAlive::default())
}

fn error(message: &str) -> Value {
    serde_json::json!({ "error": message })
}

/// One fault object; the lab applies it as `labctl fault` would.
async fn fault<L: Lab>(State(shared): State<Arc<Shared<L>>>, body: Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(fault) => fault,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(error(&format!(
                    "the body is not one fault object of SPEC §7 ({e}); e.g. \
                     {{\"action\":\"kill\",\"node\":3}} or \
                     {{\"action\":\"delay\",\"a\":1,\"b\":2,\"ms\":200}}"
                ))),
            )
                .into_response()
        }
    };
    let answer = shared.lab.fault(fault).await;
    // Whatever happened, look again now.
    shared.wake.notify_one();
    match answer {
        Ok(applied) => Json(applied).into_response(),
        Err(Refusal::Refused(e)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(error(&e))).into_response()
        }
        Err(Refusal::Failed(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(error(&e))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::steady;

    #[test]
    fn the_time_a_report_took_and_a_faults_age_are_no_change() {
        let at = |elapsed: u64, since: u64| {
            json!({ "epoch": 2, "elapsed_ms": elapsed,
                    "faults": [{ "action": "kill", "node": 1, "since_ms": since }] })
        };
        assert_eq!(steady(&at(3, 100)), steady(&at(9, 350)));
        let mut other = at(3, 100);
        other["epoch"] = json!(3);
        assert_ne!(steady(&at(3, 100)), steady(&other));
    }
}
