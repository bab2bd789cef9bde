//! The health checker: every `health_interval`, `GET /healthz` on every registered input node at
//! once; a node that fails `health_failures` checks in a row is dropped from the registry.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Empty;
use hyper::header::USER_AGENT;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::registry::{Registry, Target};
use crate::Config;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Checks the registry's nodes forever; the caller stops it by dropping the future.
pub(crate) async fn run(config: Config, registry: Arc<Registry>) {
    // No connection pooling: each check opens a new connection, as a redirected client would, so
    // a node that stopped accepting is noticed even while an old connection to it lingers.
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    // The first round comes one interval after start: a node is live from its registration on.
    let first = tokio::time::Instant::now() + config.health_interval;
    let mut ticks = tokio::time::interval_at(first, config.health_interval);
    // A round that outlasts the interval (a slow node waits for the timeout) delays the next one
    // instead of being followed by a burst.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut checks = JoinSet::new();
        for target in registry.targets() {
            let client = client.clone();
            let timeout = config.health_timeout;
            checks.spawn(async move {
                let outcome = check(&client, &target.http_address, timeout).await;
                (target, outcome)
            });
        }
        while let Some(finished) = checks.join_next().await {
            let Ok((target, outcome)) = finished else {
                // A check task cannot panic; if one ever does, that round simply has no result.
                continue;
            };
            record(&registry, &config, &target, outcome);
        }
    }
}

fn record(registry: &Registry, config: &Config, target: &Target, outcome: Result<(), String>) {
    let Err(reason) = outcome else {
        registry.record_success(target);
        return;
    };
    match registry.record_failure(target, config.health_failures) {
        Some(failures) => tracing::warn!(
            "dropping input node {} at {}: {failures} failed health checks ({reason})",
            target.id,
            target.http_address,
        ),
        None => tracing::debug!(
            id = target.id,
            http_address = %target.http_address,
            %reason,
            "input node failed a health check"
        ),
    }
}

/// One `GET http://{address}/healthz`: `Ok` on a 2xx within `timeout`, else why not.
async fn check(client: &HttpClient, address: &str, timeout: Duration) -> Result<(), String> {
    let request = Request::get(format!("http://{address}/healthz"))
        .header(USER_AGENT, "labctl-nameserver")
        .body(Empty::new())
        .map_err(|err| format!("cannot build the request: {err}"))?;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(err)) => Err(describe(&err)),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("HTTP {}", response.status())),
    }
}

/// A short reason for a failed request: the underlying I/O error when there is one
/// ("connection refused"), else the whole chain of causes.
fn describe(err: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                _ => io.to_string(),
            };
        }
        source = cause.source();
    }
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
