//! Loading a running lab's chat service (SPEC §5), for `labctl bench http`: throughput, latency
//! percentiles and errors, as a [`BenchResult`].
//!
//! The run has three phases:
//! 1. **Find the input nodes.** The lab's record names its nameserver; `GET /_nameserver/inputs`
//!    lists the live input nodes (waiting up to `--wait` for one to appear).
//! 2. **Setup (not measured).** Client k registers user `bench<k>` with a tag drawn from the seed
//!    (another on 409), logs in and keeps the session cookie in its own jar; then each waits
//!    until its input node knows the user it will write to (registered, maybe, at another).
//! 3. **Load.** Until the deadline, each client either sends a private message to the next
//!    client's user (k → (k+1) mod N) or reads that conversation, choosing with its own seeded
//!    [`SplitMix64`]. A read asks for the messages after the last one the client read
//!    (`GET …/chat?after=<uuid>`, as the conversation page polls), or with `--reads whole` for
//!    the whole conversation, which grows through the run (so does each read's cost). In a **closed loop** (the default) each client sends its next request when
//!    the last is answered: the figures are the service's saturation throughput. In an **open
//!    loop** (`--rate N`) requests leave on a fixed schedule, N per second over all clients,
//!    answered or not, and latencies count from the schedule: the latency under a given load. Every response is counted: the expected status (201 for a send, 200 for a
//!    read) goes into that kind's latency histogram, anything else (another status, a timeout, a
//!    refused connection) into the error counts. Nothing is retried.
//!
//! With `--via inputs` each client talks directly to one input node (client k to input k mod
//! the number of inputs); with `--via nameserver` every request goes to the nameserver and
//! follows its 307 redirect. Either way the input node that answered is read from the response's
//! final URL, so the report says which input nodes served how many requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use labctl_core::NodeId;
use labctl_topology::rng::SplitMix64;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use super::report::{BenchResult, InputUse, Kind, Lag, MAX_FAILED_PERCENT};
use crate::chat_client::{
    chain, error_text, json_headers, shorten, user, CONNECT_TIMEOUT, REQUEST_TIMEOUT,
};
use crate::cli::{BenchHttpArgs, BenchReads, BenchVia};
use crate::lab::LabDir;
use crate::poll::{poll_until, TimedOut};

/// The most requests one run sends, whatever the duration: a bound on the load and on memory.
pub const MAX_REQUESTS: u64 = 1_000_000;
/// The most requests the open loop (`--rate`) keeps outstanding at once.
pub const MAX_IN_FLIGHT: usize = 1024;
/// How often to ask the nameserver again while no input node is live.
const INPUT_POLL: Duration = Duration::from_millis(100);
/// Latencies are recorded in microseconds, from 1 µs to this, at 3 significant digits.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A live input node, as `GET /_nameserver/inputs` lists it.
#[derive(Clone, Debug, Deserialize)]
struct LiveInput {
    id: NodeId,
    http_address: String,
}

#[derive(Debug, Deserialize)]
struct InputList {
    live: Vec<LiveInput>,
}

/// What the load sends: the share of writes, and what a read asks for.
#[derive(Clone, Copy)]
struct Mix {
    writes_percent: u8,
    reads: BenchReads,
}

/// A registered, logged-in client ready to load the lab.
struct Client {
    /// `bench<k>`.
    username: String,
    tag: String,
    /// Where its requests go: one input node, or the nameserver.
    base: Url,
    http: reqwest::Client,
    /// The seed of its read/write choices.
    seed: u64,
}

/// What one client measured during the load.
struct Tally {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
    /// Requests per input node (`host:port`).
    inputs: BTreeMap<String, InputCounts>,
}

/// Requests sent to one input node, and how many of them failed.
#[derive(Default)]
struct InputCounts {
    requests: u64,
    errors: u64,
}

impl Tally {
    fn new() -> Tally {
        let histogram =
            || Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds");
        Tally {
            reads: histogram(),
            writes: histogram(),
            errors: BTreeMap::new(),
            examples: BTreeMap::new(),
            inputs: BTreeMap::new(),
        }
    }

    /// Counts one failure of `kind`, keeping the first `example` of each kind.
    fn error(&mut self, kind: String, example: String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.examples
            .entry(kind)
            .or_insert_with(|| shorten(&example));
    }

    /// Counts one request begun at `begun` (sent, or scheduled): its latency if it succeeded,
    /// its failure if not, and the input node it reached (`nameserver`, its `host:port`, is
    /// none: a failure to reach the nameserver itself belongs to no input node).
    fn record(
        &mut self,
        write: bool,
        begun: Instant,
        input: Option<String>,
        failure: Option<(String, String)>,
        nameserver: &str,
    ) {
        if failure.is_none() {
            let us = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
            let histogram = if write {
                &mut self.writes
            } else {
                &mut self.reads
            };
            histogram.saturating_record(us.max(1));
        }
        if let Some(input) = input.filter(|input| *input != nameserver) {
            let counts = self.inputs.entry(input).or_default();
            counts.requests += 1;
            counts.errors += u64::from(failure.is_some());
        }
        if let Some((kind, example)) = failure {
            self.error(kind, example);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.reads.add(&other.reads).expect("same histogram bounds");
        self.writes
            .add(&other.writes)
            .expect("same histogram bounds");
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (kind, example) in other.examples {
            self.examples.entry(kind).or_insert(example);
        }
        for (input, counts) in other.inputs {
            let mine = self.inputs.entry(input).or_default();
            mine.requests += counts.requests;
            mine.errors += counts.errors;
        }
    }
}

/// Load `lab`'s chat service as `args` say, telling `progress` how far it is (its length is the
/// load's seconds); what it measured.
pub async fn run(
    lab: &LabDir,
    args: &BenchHttpArgs,
    progress: &ProgressBar,
) -> Result<BenchResult> {
    let record = lab.load()?;
    let Some(nameserver) = record.nameserver.as_ref().and_then(|p| p.http.clone()) else {
        bail!(
            "lab {} has no nameserver (its `labctl up` did not get that far); \
             `labctl down {}` and start it again",
            lab.name,
            lab.name
        );
    };
    let lab = lab.name.as_str();
    let nameserver_url = Url::parse(&format!("http://{nameserver}/")).with_context(|| {
        format!("lab {lab}: the nameserver's address {nameserver:?} is not host:port")
    })?;
    // 1. The live input nodes.
    progress.set_prefix("inputs");
    progress.set_message(format!("asking the nameserver at {nameserver_url}"));
    let live = live_inputs(lab, &nameserver_url, Duration::from_secs(args.wait)).await?;

    // 2. Setup: one user, one session per client, all clients at once.
    progress.set_prefix("setup");
    progress.set_message(format!("registering and logging in {} users", args.clients));
    let setup_started = Instant::now();
    let mut seeder = SplitMix64::new(args.seed);
    let mut setups = tokio::task::JoinSet::new();
    for k in 0..args.clients {
        let base = match args.via {
            BenchVia::Inputs => {
                let input = &live[k as usize % live.len()];
                Url::parse(&format!("http://{}/", input.http_address)).with_context(|| {
                    format!(
                        "the nameserver lists input node {} at {:?}, which is not host:port",
                        input.id, input.http_address
                    )
                })?
            }
            BenchVia::Nameserver => nameserver_url.clone(),
        };
        let (tag_seed, seed) = (seeder.next_u64(), seeder.next_u64());
        setups.spawn(setup(k, base, tag_seed, seed));
    }
    let mut clients = BTreeMap::new();
    while let Some(joined) = setups.join_next().await {
        let (k, client) = joined.context("a setup task failed")??;
        clients.insert(k, client);
    }
    let clients: Vec<Client> = clients.into_values().collect();
    let partners: Vec<(String, String)> = clients
        .iter()
        .map(|c| (c.username.clone(), c.tag.clone()))
        .collect();
    // A client's partner may have registered at another input node, which this client's node
    // learns a moment later (only one's own writes are read-your-writes, SPEC §4): wait until
    // every client sees its partner, so the load does not count that moment as errors.
    progress.set_message("waiting until every client's node knows its partner");
    for (k, client) in clients.iter().enumerate() {
        let (username, tag) = &partners[(k + 1) % partners.len()];
        let url = client
            .base
            .join(&format!("users/{username}/{tag}"))
            .expect("usernames and tags are URL-safe");
        let what = format!("{} to see user {username}#{tag}", client.username);
        poll_until(
            &what,
            INPUT_POLL,
            Duration::from_secs(args.wait),
            || async {
                let response = client.http.get(url.clone()).send().await;
                Ok(response
                    .ok()
                    .filter(|r| r.status() == StatusCode::OK)
                    .map(|_| ()))
            },
        )
        .await?;
    }
    let setup_s = setup_started.elapsed().as_secs_f64();

    // 3. Load, until the deadline or the request cap.
    progress.set_prefix("load");
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut workers = tokio::task::JoinSet::new();
    let nameserver_host = host_port(&nameserver_url).unwrap_or_default();
    let mix = Mix {
        writes_percent: args.writes,
        reads: args.reads,
    };
    let mut open = None;
    match args.rate {
        Some(rate) => {
            open = Some(tokio::spawn(load_open(
                clients,
                nameserver_host,
                partners,
                mix,
                rate,
                deadline,
                Arc::clone(&sent),
            )));
        }
        None => {
            for (k, client) in clients.into_iter().enumerate() {
                let partner = partners[(k + 1) % partners.len()].clone();
                workers.spawn(load(
                    client,
                    nameserver_host.clone(),
                    partner,
                    mix,
                    deadline,
                    Arc::clone(&sent),
                ));
            }
        }
    }
    let ticker = {
        let (progress, sent) = (progress.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            loop {
                progress.set_position(started.elapsed().as_secs());
                progress.set_message(format!("{} requests", sent.load(Ordering::Relaxed)));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut tally = Tally::new();
    while let Some(joined) = workers.join_next().await {
        tally.merge(joined.context("a client task failed")?);
    }
    let mut schedule_lag = None;
    if let Some(open) = open {
        let (open_tally, lag) = open.await.context("the open loop's task failed")?;
        tally.merge(open_tally);
        schedule_lag = Some(Lag::new(&lag));
    }
    let duration_s = started.elapsed().as_secs_f64();
    ticker.abort();

    let failed: u64 = tally.errors.values().sum();
    let requests = tally.reads.len() + tally.writes.len() + failed;
    let passed = requests > 0 && (failed as f64) * 100.0 <= MAX_FAILED_PERCENT * requests as f64;
    let ids: BTreeMap<&str, NodeId> = live
        .iter()
        .map(|input| (input.http_address.as_str(), input.id))
        .collect();
    let mut inputs: Vec<InputUse> = tally
        .inputs
        .iter()
        .map(|(address, counts)| InputUse {
            id: ids.get(address.as_str()).copied(),
            http_address: address.clone(),
            requests: counts.requests,
            errors: counts.errors,
        })
        .collect();
    // By node id; an address the nameserver did not list goes last (stable: by address).
    inputs.sort_by_key(|input| (input.id.is_none(), input.id));
    Ok(BenchResult {
        lab: lab.to_string(),
        nameserver: nameserver_url.as_str().trim_end_matches('/').to_string(),
        via: match args.via {
            BenchVia::Inputs => "inputs",
            BenchVia::Nameserver => "nameserver",
        },
        clients: args.clients,
        writes_percent: args.writes,
        seed: args.seed,
        setup_s,
        duration_s,
        reads: Kind::new(&tally.reads, duration_s),
        writes: Kind::new(&tally.writes, duration_s),
        errors: tally.errors,
        error_examples: tally.examples,
        failed,
        requests,
        passed,
        capped: sent.load(Ordering::Relaxed) >= MAX_REQUESTS,
        target_rate: args.rate,
        schedule_lag,
        reads_mode: match args.reads {
            BenchReads::New => "new",
            BenchReads::Whole => "whole",
        },
        live_inputs: live.len(),
        inputs,
    })
}

/// The live input nodes, asking the nameserver until it lists one or `wait` has passed.
async fn live_inputs(lab: &str, nameserver: &Url, wait: Duration) -> Result<Vec<LiveInput>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .default_headers(json_headers())
        .build()
        .context("building the HTTP client")?;
    let url = nameserver.join("_nameserver/inputs").expect("a valid path");
    let what = format!("lab {lab}: a live input node listed by the nameserver");
    let listed = poll_until(&what, INPUT_POLL, wait, || async {
        let response = http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("lab {lab}: cannot reach the nameserver at {url}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            bail!(
                "lab {lab}: the nameserver answered GET {url} with {status}: {}",
                shorten(&body)
            );
        }
        let list: InputList = serde_json::from_str(&body).with_context(|| {
            format!(
                "lab {lab}: the nameserver's answer to GET {url} is not {{\"live\": [...]}}: {}",
                shorten(&body)
            )
        })?;
        Ok((!list.live.is_empty()).then_some(list.live))
    })
    .await;
    match listed {
        Err(error) if error.is::<TimedOut>() => {}
        listed => return listed,
    }
    // Nothing live: let the nameserver say why, as a client would hear it.
    let probe = http.get(nameserver.clone()).send().await;
    match probe {
        Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
            let body = response.text().await.unwrap_or_default();
            bail!(
                "lab {lab}: no live input node after {} s: the nameserver at {nameserver} \
                 answered 503: {}",
                wait.as_secs(),
                shorten(&error_text(&body))
            )
        }
        _ => bail!(
            "lab {lab}: no live input node after {} s: the nameserver at {nameserver} lists none",
            wait.as_secs()
        ),
    }
}

/// Registers and logs in client `k`'s user at `base`.
async fn setup(k: u32, base: Url, tag_seed: u64, seed: u64) -> Result<(u32, Client)> {
    let username = format!("bench{k}");
    let (http, tag) = user(&username, &base, tag_seed).await?;
    Ok((
        k,
        Client {
            username,
            tag,
            base,
            http,
            seed,
        },
    ))
}

/// Client `client`'s closed loop: reads and writes of the conversation with `partner`, one
/// after the other, until the deadline (or the shared request cap). `nameserver` is its
/// `host:port`.
async fn load(
    client: Client,
    nameserver: String,
    partner: (String, String),
    Mix {
        writes_percent,
        reads,
    }: Mix,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut choices = SplitMix64::new(client.seed);
    let chat = chat_url(&client, &partner);
    let mut message = 0u64;
    let cursor = std::sync::Mutex::new(None);
    while Instant::now() < deadline {
        if sent.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            break;
        }
        let write = choices.below(100) < u64::from(writes_percent);
        let content = write.then(|| {
            message += 1;
            format!("bench message {message} from {}", client.username)
        });
        let begun = Instant::now();
        let (input, failure) = send_one(&client.http, &chat, content, reads, &cursor).await;
        tally.record(write, begun, input, failure, &nameserver);
    }
    tally
}

/// The open loop: requests leave at `rate` per second in all, on a fixed schedule (request i at
/// `i / rate` seconds), whether or not the earlier ones were answered, client after client round
/// robin, until the deadline (or the shared request cap). A slow service does not slow the
/// sending: requests pile up in flight instead (no coordinated omission), up to
/// [`MAX_IN_FLIGHT`]; past that the schedule waits. Each latency counts from the request's
/// scheduled time, so a late start counts too; how late each left against its schedule (the
/// timer's millisecond, a busy labctl, the in-flight cap) is also kept apart, in the returned
/// lag histogram (µs), to tell the sender's delay from the service's.
async fn load_open(
    clients: Vec<Client>,
    nameserver: String,
    partners: Vec<(String, String)>,
    Mix {
        writes_percent,
        reads,
    }: Mix,
    rate: u32,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> (Tally, Histogram<u64>) {
    let n = clients.len();
    let mut lag = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds");
    let chats: Vec<Url> = clients
        .iter()
        .enumerate()
        .map(|(k, client)| chat_url(client, &partners[(k + 1) % n]))
        .collect();
    let mut choices: Vec<SplitMix64> = clients.iter().map(|c| SplitMix64::new(c.seed)).collect();
    let mut messages = vec![0u64; n];
    let cursors: Arc<Vec<std::sync::Mutex<Option<String>>>> =
        Arc::new((0..n).map(|_| std::sync::Mutex::new(None)).collect());
    let tally = Arc::new(std::sync::Mutex::new(Tally::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0u64.. {
        let scheduled = started + interval.mul_f64(i as f64);
        if scheduled >= deadline || sent.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let begun = Instant::now();
        let late = u64::try_from(begun.duration_since(scheduled).as_micros()).unwrap_or(u64::MAX);
        lag.saturating_record(late.max(1));
        let k = (i % n as u64) as usize;
        let write = choices[k].below(100) < u64::from(writes_percent);
        let content = write.then(|| {
            messages[k] += 1;
            format!("bench message {} from {}", messages[k], clients[k].username)
        });
        let (http, chat) = (clients[k].http.clone(), chats[k].clone());
        let (tally, nameserver) = (Arc::clone(&tally), nameserver.clone());
        let cursors = Arc::clone(&cursors);
        tasks.spawn(async move {
            let (input, failure) = send_one(&http, &chat, content, reads, &cursors[k]).await;
            drop(permit);
            tally.lock().expect("no tally lock is poisoned").record(
                write,
                scheduled,
                input,
                failure,
                &nameserver,
            );
        });
        // Reap the finished ones as we go: the set holds the in-flight requests only.
        while tasks.try_join_next().is_some() {}
    }
    // The schedule runs to the deadline: the rates count over the whole duration asked.
    tokio::time::sleep_until(deadline.into()).await;
    while tasks.join_next().await.is_some() {}
    let tally = Arc::try_unwrap(tally)
        .map(|tally| tally.into_inner().expect("no tally lock is poisoned"))
        .unwrap_or_else(|_| unreachable!("every request task has finished"));
    (tally, lag)
}

/// The conversation `client` loads: its private chat with `partner`.
fn chat_url(client: &Client, partner: &(String, String)) -> Url {
    client
        .base
        .join(&format!("users/{}/{}/chat", partner.0, partner.1))
        .expect("usernames and tags are URL-safe")
}

/// Which input node a request reached (the final URL, after any redirect), and how it failed
/// (its kind and an example), if it did.
type Sent = (Option<String>, Option<(String, String)>);

/// Send one request of the load: a message (`content`) or a read of the conversation at `chat`:
/// all of it, or with [`BenchReads::New`] the messages after `cursor` (the last message this
/// client read), which the answer then moves on. (In the open loop a client's reads may overlap,
/// and one may move the cursor back over messages another just read: they are read again.)
async fn send_one(
    http: &reqwest::Client,
    chat: &Url,
    content: Option<String>,
    reads: BenchReads,
    cursor: &std::sync::Mutex<Option<String>>,
) -> Sent {
    let write = content.is_some();
    let request = match content {
        Some(content) => http.post(chat.clone()).json(&json!({ "content": content })),
        None => {
            let after = match reads {
                BenchReads::New => cursor.lock().expect("no cursor lock is poisoned").clone(),
                BenchReads::Whole => None,
            };
            let mut url = chat.clone();
            if let Some(after) = after {
                url.query_pairs_mut().append_pair("after", &after);
            }
            http.get(url)
        }
    };
    let expected = if write {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match request.send().await {
        Err(e) => (
            e.url().and_then(host_port),
            Some((transport_kind(&e).to_string(), chain(&e))),
        ),
        Ok(response) => {
            let status = response.status();
            let input = host_port(response.url());
            match response.bytes().await {
                Err(e) => (input, Some((transport_kind(&e).to_string(), chain(&e)))),
                Ok(body) if status == expected => {
                    if !write && reads == BenchReads::New {
                        if let Some(last) = last_message(&body) {
                            *cursor.lock().expect("no cursor lock is poisoned") = Some(last);
                        }
                    }
                    (input, None)
                }
                Ok(body) => {
                    let method = if write { "POST" } else { "GET" };
                    let example = format!(
                        "{method} {}: {}",
                        chat.path(),
                        error_text(&String::from_utf8_lossy(&body))
                    );
                    (input, Some((status.as_u16().to_string(), example)))
                }
            }
        }
    }
}

/// The id of the last message of a conversation's JSON, if it has any.
fn last_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Message {
        uuid: String,
    }
    serde_json::from_slice::<Vec<Message>>(body)
        .ok()?
        .pop()
        .map(|m| m.uuid)
}

/// `host:port` of a URL.
fn host_port(url: &Url) -> Option<String> {
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

/// The error kind of a failed request, for the error counts.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}
