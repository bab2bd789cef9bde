//! The chat clients of a chaos run: each its own user, logged in through the nameserver, posting
//! unique texts to one shared group and reading the group back, at the scenario's rate; every
//! operation recorded as its `invoke` and its completion.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use labctl_chaos::history::{Process, Type, Value, F};
use labctl_chaos::scenario::Workload;
use labctl_core::NodeId;
use labctl_topology::rng::SplitMix64;
use reqwest::{StatusCode, Url};
use serde_json::json;
use tokio::sync::watch;

use super::recorder::Recorder;

/// How long one operation may take before its outcome is recorded as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Set-up requests (creating the group, adding members) are retried this often on a 503, a 504
/// or a broken connection: the same `Idempotency-Key` makes a retry safe.
const SETUP_ATTEMPTS: u32 = 20;

/// One logged-in client.
#[derive(Clone)]
pub struct Session {
    /// Its number (the history's `process`).
    pub n: u32,
    /// The HTTP client holding its session cookie.
    pub http: reqwest::Client,
}

/// The clients and their group.
pub struct Clients {
    /// The sessions, client 0 the group's creator.
    pub sessions: Vec<Session>,
    /// A member that never writes, for the final reads: a client's session carries the log
    /// position of its last acknowledged write, and a node asked to read below a position it
    /// does not hold (a write that was lost) refuses to, which would hide what it does hold.
    pub reader: reqwest::Client,
    /// The reader's tag (its name is `chaosreader`, its password `chat_client::password_of`'s).
    pub reader_tag: String,
    /// The group's uuid.
    pub group: String,
    /// The nameserver's base URL.
    pub base: Url,
}

/// Register and log in `count` users through the nameserver at `base`, and a reader, client 0
/// creating the group `chaos-<run>` and adding the others.
pub async fn setup(base: &Url, count: u32, run: &str, seed: u64) -> Result<Clients> {
    let mut sessions = Vec::new();
    let mut tags = Vec::new();
    for n in 0..count {
        let name = format!("chaos{n}");
        let (http, tag) = crate::chat_client::user(&name, base, seed.wrapping_add(u64::from(n)))
            .await
            .with_context(|| format!("setting up client {n}"))?;
        sessions.push(Session { n, http });
        tags.push((name, tag));
    }
    let (reader, reader_tag) = crate::chat_client::user("chaosreader", base, seed ^ 0x5eed)
        .await
        .context("setting up the final reads' user")?;
    tags.push(("chaosreader".to_string(), reader_tag.clone()));
    let creator = &sessions[0].http;
    let group = setup_post(
        creator,
        base.join("groups").expect("a valid path"),
        json!({ "name": format!("chaos-{run}") }),
        &format!("chaos-{run}-group"),
    )
    .await
    .context("creating the clients' group")?;
    let Some(group) = group["uuid"].as_str().map(str::to_string) else {
        bail!("creating the clients' group: the answer {group} has no uuid");
    };
    let members = base
        .join(&format!("groups/{group}/members"))
        .expect("a valid path");
    for (name, tag) in tags.iter().skip(1) {
        setup_post(
            creator,
            members.clone(),
            json!({ "username": name, "tag": tag }),
            &format!("chaos-{run}-member-{name}"),
        )
        .await
        .with_context(|| format!("adding {name}#{tag} to the group"))?;
    }
    Ok(Clients {
        sessions,
        reader,
        reader_tag,
        group,
        base: base.clone(),
    })
}

/// A set-up POST, retried while the lab cannot answer yet; its JSON answer.
async fn setup_post(
    http: &reqwest::Client,
    url: Url,
    body: serde_json::Value,
    key: &str,
) -> Result<serde_json::Value> {
    let mut last = String::new();
    for _ in 0..SETUP_ATTEMPTS {
        let answer = http
            .post(url.clone())
            .timeout(OP_TIMEOUT)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await;
        match answer {
            Ok(a) if a.status() == StatusCode::CREATED => {
                return a.json().await.context("reading the answer")
            }
            Ok(a) if a.status().is_client_error() => {
                let status = a.status();
                bail!(
                    "POST {url} answered {status}: {}",
                    a.text().await.unwrap_or_default()
                )
            }
            Ok(a) => last = format!("{}", a.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("POST {url} did not succeed in {SETUP_ATTEMPTS} attempts (last: {last})")
}

/// The node that served an answer (its `X-Labctl-Node` header).
fn served_by(response: &reqwest::Response) -> Option<NodeId> {
    response
        .headers()
        .get("x-labctl-node")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The texts of a conversation's JSON (messages oldest first).
pub fn texts(messages: &serde_json::Value) -> Option<Vec<String>> {
    messages
        .as_array()?
        .iter()
        .map(|m| m["content"].as_str().map(str::to_string))
        .collect()
}

/// Client `session`'s loop: an operation every `clients / rate` seconds (its share of the rate,
/// offset from the others) until `stop`, each a write with probability `writes` percent.
pub async fn run(
    session: Session,
    clients: &Clients,
    workload: Workload,
    run: String,
    seed: u64,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let chat = clients
        .base
        .join(&format!("groups/{}/chat", clients.group))
        .expect("a valid path");
    let period = Duration::from_secs_f64(f64::from(workload.clients) / f64::from(workload.rate));
    let offset = period.mul_f64(f64::from(session.n) / f64::from(workload.clients));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut choices =
        SplitMix64::new(seed ^ u64::from(session.n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let process = Process::Client(session.n);
    for k in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if choices.below(100) < u64::from(workload.writes) {
            // Unique across runs on the same lab: the run's stamp, the client, the count.
            let text = format!("{run}-c{}-{k}", session.n);
            recorder.record(
                process,
                Type::Invoke,
                F::Write,
                Value::Text(text.clone()),
                None,
            );
            let answer = session
                .http
                .post(chat.clone())
                .timeout(OP_TIMEOUT)
                .json(&json!({ "content": text }))
                .send()
                .await;
            let (kind, node) = match &answer {
                Ok(a) if a.status() == StatusCode::CREATED => (Type::Ok, served_by(a)),
                // 4xx and 503: not done, for certain (SPEC §5).
                Ok(a)
                    if a.status().is_client_error()
                        || a.status() == StatusCode::SERVICE_UNAVAILABLE =>
                {
                    (Type::Fail, served_by(a))
                }
                // 504 and any other answer: it may yet be stored.
                Ok(a) => (Type::Info, served_by(a)),
                // Never connected: the request never left.
                Err(e) if e.is_connect() => (Type::Fail, None),
                Err(_) => (Type::Info, None),
            };
            recorder.record(process, kind, F::Write, Value::Text(text), node);
        } else {
            recorder.record(process, Type::Invoke, F::Read, Value::None, None);
            let answer = session
                .http
                .get(chat.clone())
                .timeout(OP_TIMEOUT)
                .send()
                .await;
            let (kind, value, node) = match answer {
                Ok(a) if a.status() == StatusCode::OK => {
                    let node = served_by(&a);
                    match a
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .as_ref()
                        .and_then(texts)
                    {
                        Some(texts) => (Type::Ok, Value::Texts(texts), node),
                        None => (Type::Info, Value::Text("an unreadable answer".into()), node),
                    }
                }
                Ok(a) => {
                    let status = a.status();
                    let kind =
                        if status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE {
                            Type::Fail
                        } else {
                            Type::Info
                        };
                    (kind, Value::Text(status.to_string()), served_by(&a))
                }
                Err(e) if e.is_connect() => (Type::Fail, Value::Text("no connection".into()), None),
                Err(e) => (
                    Type::Info,
                    Value::Text(if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection broken".into()
                    }),
                    None,
                ),
            };
            recorder.record(process, kind, F::Read, value, node);
        }
    }
}

/// A new session at `input` for the final read when the reader's own cannot read any more: the
/// reader logged in again (a session without the log position of its registration, which a
/// lab that lost its data cannot serve reads above), else, when the lab lost the reader itself,
/// a new user: it can tell whether the group still exists (403: it does, 404: it is gone).
pub async fn fresh_reader(input: &Url, reader_tag: &str, seed: u64) -> Result<reqwest::Client> {
    use crate::chat_client;
    let (http, jar) = chat_client::session_client()?;
    if chat_client::login(&http, &jar, input, "chaosreader", reader_tag)
        .await
        .is_ok()
    {
        return Ok(http);
    }
    let (http, _) = chat_client::user("chaosprobe", input, seed)
        .await
        .context("the reader is gone from the lab, and a new user could not register")?;
    Ok(http)
}
