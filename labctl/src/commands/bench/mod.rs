//! `labctl bench http [NAME]`: load a running lab's chat service (SPEC §5) and report throughput,
//! latency percentiles and errors.
//!
//! The run has three phases:
//! 1. **Find the input nodes.** The lab's record names its nameserver; `GET /_nameserver/inputs`
//!    lists the live input nodes (waiting up to `--wait` for one to appear).
//! 2. **Setup (not measured).** Client k registers user `bench<k>` with a tag drawn from the seed
//!    (another on 409), logs in and keeps the session cookie in its own jar.
//! 3. **Load.** Until the deadline, each client either sends a private message to the next
//!    client's user (k → (k+1) mod N) or reads that conversation, choosing with its own seeded
//!    [`SplitMix64`]. Every response is counted: the expected status (201 for a send, 200 for a
//!    read) goes into that kind's latency histogram, anything else (another status, a timeout, a
//!    refused connection) into the error counts. Nothing is retried.
//!
//! With `--via inputs` each client talks directly to one input node (client k to input k mod
//! the number of inputs); with `--via nameserver` every request goes to the nameserver and
//! follows its 307 redirect. Either way the input node that answered is read from the response's
//! final URL, so the report says which input nodes served how many requests.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use labctl_topology::rng::SplitMix64;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod dashboard;

use crate::chat_client::{
    chain, error_text, json_headers, shorten, user, CONNECT_TIMEOUT, REQUEST_TIMEOUT,
};
use crate::cli::{BenchArgs, BenchCommand, BenchHttpArgs, BenchVia};
use crate::lab::resolve;
use crate::Outcome;

/// The most requests one run sends, whatever the duration: a bound on the load and on memory.
const MAX_REQUESTS: u64 = 1_000_000;
/// How often to ask the nameserver again while no input node is live.
const INPUT_POLL: Duration = Duration::from_millis(100);
/// The share of failed requests above which the run fails (exit code 1), in percent.
const MAX_FAILED_PERCENT: f64 = 1.0;
/// Latencies are recorded in microseconds, from 1 µs to this, at 3 significant digits.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub fn run(args: &BenchArgs) -> Result<Outcome> {
    match &args.command {
        BenchCommand::Http(args) => http(args),
        BenchCommand::Failover(args) => failover(args),
        BenchCommand::Dashboard(args) => dashboard::run(args),
    }
}

/// `labctl bench failover`.
fn failover(args: &crate::cli::BenchFailoverArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    if !lab.exists() {
        bail!("no lab named {:?}; `labctl ls` lists labs", lab.name);
    }
    let timeout = Duration::from_secs(args.timeout);
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(u64::from(args.runs)),
        if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("failovers [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("registering the user whose writes time the failover");
    let prober = tokio.block_on(crate::failover::Prober::new(&lab))?;
    let mut runs = Vec::new();
    let mut failed = None;
    for run in 0..args.runs {
        if run > 0 {
            std::thread::sleep(Duration::from_secs(args.rest));
        }
        match tokio.block_on(crate::failover::once(&lab, &prober, timeout)) {
            Ok(run) => {
                bar.set_message(format!(
                    "last: converged in {} ms, a write acknowledged in {} ms",
                    run.converged_ms, run.written_ms
                ));
                runs.push(run);
                bar.inc(1);
            }
            Err(e) => {
                failed = Some(format!("{e:#}"));
                break;
            }
        }
    }
    bar.finish_and_clear();
    let record = lab.load()?;
    let mut stdout = std::io::stdout().lock();
    let figure =
        |f: fn(&crate::failover::Failover) -> u64| -> Vec<u64> { runs.iter().map(f).collect() };
    let (suspected, converged, written, rejoined) = (
        figure(|r| r.suspected_ms),
        figure(|r| r.converged_ms),
        figure(|r| r.written_ms),
        figure(|r| r.rejoined_ms),
    );
    if args.json {
        let summary = |f: &[u64]| (!f.is_empty()).then(|| crate::failover::summary(f));
        let value = json!({
            "lab": lab.name,
            "runtime": record.runtime,
            "runs": runs,
            "suspected_ms": summary(&suspected),
            "converged_ms": summary(&converged),
            "written_ms": summary(&written),
            "rejoined_ms": summary(&rejoined),
            "error": failed,
        });
        serde_json::to_writer(&mut stdout, &value)?;
        writeln!(stdout)?;
    } else if !runs.is_empty() {
        writeln!(
            stdout,
            "failover of the writer on {} ({} runtime), {} runs: from SIGKILL to …",
            lab.name,
            record.runtime,
            runs.len()
        )?;
        writeln!(stdout, "                          median      p90    worst")?;
        for (name, figures) in [
            ("a neighbour suspects it", &suspected),
            ("converged in a new epoch", &converged),
            ("a write acknowledged", &written),
        ] {
            let s = crate::failover::summary(figures);
            writeln!(
                stdout,
                "  {name:<24} {:>6} ms {:>6} ms {:>6} ms",
                s.median, s.p90, s.worst
            )?;
        }
        let s = crate::failover::summary(&rejoined);
        writeln!(
            stdout,
            "  {:<24} {:>6} ms {:>6} ms {:>6} ms   (from its restart)",
            "the lab whole again", s.median, s.p90, s.worst
        )?;
    }
    if let Some(e) = failed {
        writeln!(
            std::io::stderr(),
            "labctl: after {} run(s): {e}",
            runs.len()
        )?;
        return Ok(Outcome::ChecksFailed);
    }
    Ok(Outcome::Done)
}

/// `labctl bench http`.
fn http(args: &BenchHttpArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let record = lab.load()?;
    let Some(nameserver) = record.nameserver.as_ref().and_then(|p| p.http.clone()) else {
        bail!(
            "lab {} has no nameserver (its `labctl up` did not get that far); \
             `labctl down {}` and start it again",
            lab.name,
            lab.name
        );
    };
    let tty = std::io::stdout().is_terminal();
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = tokio.block_on(bench(&lab.name, &nameserver, args, tty))?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &result)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(render(&result).as_bytes())?;
    }
    stdout.flush()?;
    if result.passed {
        Ok(Outcome::Done)
    } else {
        let _ = writeln!(std::io::stderr(), "labctl: {}", failure_line(&result));
        Ok(Outcome::ChecksFailed)
    }
}

// --- the results -------------------------------------------------------------------------------

/// What one run measured: the `--json` object.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    /// The lab's name.
    pub lab: String,
    /// The nameserver's HTTP URL.
    pub nameserver: String,
    /// `inputs` (each client pinned to one input node) or `nameserver` (every request redirected).
    pub via: &'static str,
    /// Concurrent clients.
    pub clients: u32,
    /// The share of requests that were writes, in percent, as asked.
    pub writes_percent: u8,
    /// The seed of the clients' choices and tags.
    pub seed: u64,
    /// How long registering and logging in every client took, in seconds (not measured load).
    pub setup_s: f64,
    /// How long the load ran, in seconds, measured (the asked duration plus the requests still
    /// in flight at the deadline).
    pub duration_s: f64,
    /// Successful reads (`GET /users/{u}/{t}/chat` answered 200).
    pub reads: Kind,
    /// Successful writes (`POST /users/{u}/{t}/chat` answered 201).
    pub writes: Kind,
    /// Failed requests by HTTP status (`"503"`) or transport failure (`"timeout"`, `"connect"`,
    /// `"redirect"`, `"body"`, `"transport"`).
    pub errors: BTreeMap<String, u64>,
    /// The first answer (or error message) of each kind of failure, shortened.
    pub error_examples: BTreeMap<String, String>,
    /// Failed requests in all.
    pub failed: u64,
    /// Requests sent in all (successful and failed).
    pub requests: u64,
    /// Whether at most 1% of the requests failed.
    pub passed: bool,
    /// Whether the run stopped at the cap of 1,000,000 requests before the deadline.
    pub capped: bool,
    /// How many input nodes the nameserver listed as live.
    pub live_inputs: usize,
    /// The input nodes the clients used, with how many measured requests went to each.
    pub inputs: Vec<InputUse>,
}

/// Throughput and latency of one kind of request (successful ones only).
#[derive(Debug, Serialize)]
pub struct Kind {
    pub count: u64,
    pub per_s: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Kind {
    fn new(histogram: &Histogram<u64>, duration_s: f64) -> Kind {
        let count = histogram.len();
        let ms = |us: u64| (count > 0).then(|| us as f64 / 1000.0);
        Kind {
            count,
            per_s: if duration_s > 0.0 {
                count as f64 / duration_s
            } else {
                0.0
            },
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// One input node that served requests.
#[derive(Debug, Serialize)]
pub struct InputUse {
    /// Its node id, when the nameserver listed it.
    pub id: Option<u64>,
    /// `host:port` of its HTTP server.
    pub http_address: String,
    /// Measured requests that reached it (or were meant to: a refused connection counts).
    pub requests: u64,
    /// How many of those failed.
    pub errors: u64,
}

// --- the run -----------------------------------------------------------------------------------

/// A live input node, as `GET /_nameserver/inputs` lists it.
#[derive(Clone, Debug, Deserialize)]
struct LiveInput {
    id: u64,
    http_address: String,
}

#[derive(Debug, Deserialize)]
struct InputList {
    live: Vec<LiveInput>,
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

async fn bench(
    lab: &str,
    nameserver: &str,
    args: &BenchHttpArgs,
    tty: bool,
) -> Result<BenchResult> {
    let nameserver_url = Url::parse(&format!("http://{nameserver}/")).with_context(|| {
        format!("lab {lab}: the nameserver's address {nameserver:?} is not host:port")
    })?;
    let progress = ProgressBar::with_draw_target(
        Some(args.duration),
        if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    progress.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} s {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );

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
    let setup_s = setup_started.elapsed().as_secs_f64();
    let partners: Vec<(String, String)> = clients
        .iter()
        .map(|c| (c.username.clone(), c.tag.clone()))
        .collect();

    // 3. Load, until the deadline or the request cap.
    progress.set_prefix("load");
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut workers = tokio::task::JoinSet::new();
    for (k, client) in clients.into_iter().enumerate() {
        let partner = partners[(k + 1) % partners.len()].clone();
        workers.spawn(load(
            client,
            host_port(&nameserver_url).unwrap_or_default(),
            partner,
            args.writes,
            deadline,
            Arc::clone(&sent),
        ));
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
    let duration_s = started.elapsed().as_secs_f64();
    ticker.abort();
    progress.finish_and_clear();

    let failed: u64 = tally.errors.values().sum();
    let requests = tally.reads.len() + tally.writes.len() + failed;
    let passed = requests > 0 && (failed as f64) * 100.0 <= MAX_FAILED_PERCENT * requests as f64;
    let ids: BTreeMap<&str, u64> = live
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
    let deadline = Instant::now() + wait;
    loop {
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
        if !list.live.is_empty() {
            return Ok(list.live);
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(INPUT_POLL).await;
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

/// Client `client`'s load loop: reads and writes of the conversation with `partner` until the
/// deadline (or the shared request cap). `nameserver` is its `host:port`.
async fn load(
    client: Client,
    nameserver: String,
    partner: (String, String),
    writes_percent: u8,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::new();
    let mut choices = SplitMix64::new(client.seed);
    let chat = client
        .base
        .join(&format!("users/{}/{}/chat", partner.0, partner.1))
        .expect("usernames and tags are URL-safe");
    let mut message = 0u64;
    while Instant::now() < deadline {
        if sent.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            break;
        }
        let write = choices.below(100) < u64::from(writes_percent);
        let request = if write {
            message += 1;
            let content = format!("bench message {message} from {}", client.username);
            client
                .http
                .post(chat.clone())
                .json(&json!({ "content": content }))
        } else {
            client.http.get(chat.clone())
        };
        let expected = if write {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let begun = Instant::now();
        // Which input node the request reached (the final URL, after any redirect), and how it
        // failed, if it did.
        let (input, failure) = match request.send().await {
            Err(e) => (
                e.url().and_then(host_port),
                Some((transport_kind(&e).to_string(), chain(&e))),
            ),
            Ok(response) => {
                let status = response.status();
                let input = host_port(response.url());
                match response.bytes().await {
                    Err(e) => (input, Some((transport_kind(&e).to_string(), chain(&e)))),
                    Ok(_) if status == expected => {
                        let us = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let histogram = if write {
                            &mut tally.writes
                        } else {
                            &mut tally.reads
                        };
                        histogram.saturating_record(us.max(1));
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
        };
        // A failure to reach the nameserver itself belongs to no input node.
        if let Some(input) = input.filter(|input| *input != nameserver) {
            let counts = tally.inputs.entry(input).or_default();
            counts.requests += 1;
            counts.errors += u64::from(failure.is_some());
        }
        if let Some((kind, example)) = failure {
            tally.error(kind, example);
        }
    }
    tally
}

// --- helpers -----------------------------------------------------------------------------------

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

/// "N of M requests failed (x%), more than 1%".
fn failure_line(result: &BenchResult) -> String {
    if result.requests == 0 {
        return "no request was sent".to_string();
    }
    format!(
        "{} of {} requests failed ({:.2}%), more than {MAX_FAILED_PERCENT}%",
        result.failed,
        result.requests,
        100.0 * result.failed as f64 / result.requests as f64
    )
}

/// The human report.
fn render(result: &BenchResult) -> String {
    let mut out = String::new();
    let approach = match result.via {
        "inputs" => "each client pinned to one input node from the nameserver's list, round robin",
        _ => "every request sent to the nameserver and redirected (307) to an input node",
    };
    out.push_str(&format!(
        "lab {}: {} clients for {:.1} s (after {:.1} s of setup), {}% writes, seed {}\n",
        result.lab,
        result.clients,
        result.duration_s,
        result.setup_s,
        result.writes_percent,
        result.seed
    ));
    out.push_str(&format!("via {}: {approach}\n", result.via));
    out.push_str(&format!(
        "input nodes: {} used of {} live\n",
        result.inputs.len(),
        result.live_inputs
    ));
    for input in &result.inputs {
        let node = input
            .id
            .map_or("node ?".to_string(), |id| format!("node {id}"));
        let errors = match input.errors {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        out.push_str(&format!(
            "  {node:<10} {:<21} {:>9} requests{errors}\n",
            input.http_address, input.requests
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}\n",
        "", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    ));
    for (name, kind) in [("reads", &result.reads), ("writes", &result.writes)] {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        out.push_str(&format!(
            "{name:<8} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9}\n",
            kind.count,
            kind.per_s,
            ms(kind.p50_ms),
            ms(kind.p90_ms),
            ms(kind.p99_ms),
            ms(kind.max_ms)
        ));
    }
    out.push('\n');
    if result.errors.is_empty() {
        out.push_str(&format!("errors: none of {} requests\n", result.requests));
    } else {
        out.push_str(&format!(
            "errors: {} of {} requests ({:.2}%)\n",
            result.failed,
            result.requests,
            100.0 * result.failed as f64 / result.requests.max(1) as f64
        ));
        for (kind, count) in &result.errors {
            let example = result
                .error_examples
                .get(kind)
                .map_or(String::new(), |e| format!("  e.g. {e}"));
            out.push_str(&format!("  {kind:>9} ×{count}{example}\n"));
        }
    }
    if result.capped {
        out.push_str(&format!(
            "stopped at the cap of {MAX_REQUESTS} requests before the deadline\n"
        ));
    }
    if !result.passed {
        out.push_str(&format!("FAILED: {}\n", failure_line(result)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_empty_kinds_have_none() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
        let empty = Kind::new(&histogram, 2.0);
        assert_eq!((empty.count, empty.p50_ms, empty.max_ms), (0, None, None));
        for us in [100, 200, 300, 5_000, 90_000] {
            histogram.record(us).unwrap();
        }
        let kind = Kind::new(&histogram, 2.0);
        assert_eq!(kind.count, 5);
        assert_eq!(kind.per_s, 2.5);
        let [p50, p90, p99, max] =
            [kind.p50_ms, kind.p90_ms, kind.p99_ms, kind.max_ms].map(Option::unwrap);
        assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{kind:?}");
        assert!((max - 90.0).abs() < 0.1, "{kind:?}");
    }
}
