//! End-to-end tests of the chat service (SPEC §4, §5) on real live labs: `labctl up` starts the
//! daemons, and these tests talk HTTP to its input nodes, directly and through the nameserver's
//! 307 redirects, as a program would (`Accept: application/json`, JSON bodies, one cookie jar per
//! user). What the service stored is read back from the nodes' own databases
//! (`<folder>/nodes/<id>/node.db`) with `labctl_chat::Store::dump`, and what each node applied
//! from `labctl status --json`.
//!
//! Routes, JSON shapes and status codes are SPEC §5's contract: every expectation is written here
//! from the SPEC, never copied from the program's answers. Every test owns its lab in a private
//! `LABCTL_HOME` whose guard runs `labctl down --all` (and SIGKILLs any daemon left) when the test
//! ends, pass or fail.
//!
//! The scenarios are functions of a [`Lab`], so the same code runs on a process-runtime lab (one
//! test each) and, all in a row, on a Docker lab reached through the nameserver's port published
//! on the host's loopback (`docker_lab_serves_the_chat_through_the_published_nameserver`). A
//! user's cookies live in one plain jar, as in one browser: under either runtime every input node
//! is 127.0.0.1 to the host (the Docker runtime publishes each node's chat port there), and
//! cookies ignore ports, so a session set at one input node goes with the user to every other.

mod common;
// The live-lab helpers; this file uses only part of them.
#[allow(dead_code)]
mod live_util;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{expected_roles, parents, parse_one_line, role_sets, topology_file};
use labctl_chat::Store;
use labctl_core::plane::Durability;
use labctl_core::{Report, Role};
use live_util::{labelled_in_engine, Home};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::redirect::Policy;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long a lab may take, once `up` has returned, until every input node serves HTTP and the
/// nameserver redirects to each of them.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long the persistence replicas may take to apply what the writer has.
const REPLICATION_DEADLINE: Duration = Duration::from_secs(10);

/// How often to ask again while polling `labctl status` or the nameserver.
const POLL: Duration = Duration::from_millis(50);

/// The largest request body the service takes (SPEC §5 says only "bad input gets a 4xx").
const BODY_LIMIT: usize = 64 * 1024;

/// A password that passes the rules (8 to 128 characters).
const PASSWORD: &str = "correct horse battery";

// --- the lab -----------------------------------------------------------------------------------

/// What `labctl status --json` prints, with the fields these tests read.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(flatten)]
    report: Report,
    nameserver: String,
    addresses: BTreeMap<String, NodeState>,
    durability: Durability,
    folder: PathBuf,
}

/// One node's entry in a live report's `addresses`.
#[derive(Debug, Deserialize)]
struct NodeState {
    state: String,
    /// The chat's HTTP address, while the node is an input node that serves.
    http: Option<String>,
    /// The last replication-log entry its database holds.
    applied: u64,
}

/// What the nameserver's `GET /_nameserver/inputs` answers.
#[derive(Debug, Deserialize)]
struct LiveInputs {
    live: Vec<LiveInput>,
}

#[derive(Debug, Deserialize)]
struct LiveInput {
    id: u64,
    http_address: String,
}

/// An input node: its id and its HTTP base URL (`http://127.0.0.1:PORT`).
#[derive(Clone, Debug)]
struct Input {
    id: u64,
    base: String,
}

/// Where a lab's daemons run (`labctl up --runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    /// Local processes: the input nodes serve HTTP on the host's loopback.
    Process,
    /// One container each: the input nodes serve HTTP at their containers' addresses on Docker
    /// bridge networks, which the host reaches directly; the nameserver's port is published on
    /// the host's loopback.
    Docker,
}

impl Runtime {
    /// The `--runtime` value.
    fn name(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Docker => "docker",
        }
    }

    /// Insists that node `id`'s `http` address is one the host reaches under this runtime.
    fn check_http_address(self, id: u64, http: &str) {
        let address: SocketAddr = http
            .parse()
            .unwrap_or_else(|e| panic!("node {id}'s `http` {http:?} is not IP:port: {e}"));
        // Both runtimes show every input node to the host as 127.0.0.1 (Docker: a port published
        // from the node's container), so one browser's cookies hold at all of them.
        assert!(
            address.ip().is_loopback() && address.port() != 0,
            "node {id} ({}) serves HTTP at 127.0.0.1:PORT, not {http:?}",
            self.name()
        );
    }
}

/// A running lab, its nodes by role, and the guard that removes it.
struct Lab {
    name: String,
    nameserver: String,
    folder: PathBuf,
    writer: u64,
    persistence: Vec<u64>,
    /// The input nodes, by id.
    inputs: Vec<Input>,
    /// Every node that is neither writer nor persistence (input and forwarder nodes).
    stateless: Vec<u64>,
    /// The nodes that hold the log and serve reads from their own state: with `majority`
    /// durability (the default) every node, else the writer and the persistence replicas.
    serving: Vec<u64>,
    home: Home,
}

impl Lab {
    /// A lab on `topologies/ring6.toml` (plus `extra` for `up`) with two input nodes.
    ///
    /// SHOUT's tree depends on which message arrives first, so ring6's spanning tree is not
    /// always SPEC §7's example (inputs 4 and 5, persistence 2 and 6): it may be the path
    /// 1-2-3-4-5 plus 1-6 (one persistence node, inputs 5 and 6), or, in principle, a single
    /// path with one leaf, hence one input node. These tests need two input nodes, so a lab
    /// with one is taken down and started again (a few times at most); every test reads the
    /// roles from the report rather than assuming them.
    async fn ring6(extra: &[&str]) -> Lab {
        Lab::ring6_on(Runtime::Process, extra).await
    }

    /// As [`Lab::ring6`], with the daemons in `runtime`. Each attempt's lab is taken down (its
    /// guard dropped) before the next starts, so a fixed `--name` can be given again.
    async fn ring6_on(runtime: Runtime, extra: &[&str]) -> Lab {
        const ATTEMPTS: usize = 4;
        for attempt in 1..=ATTEMPTS {
            let lab = Lab::up_on(runtime, "ring6.toml", extra).await;
            if lab.inputs.len() >= 2 {
                return lab;
            }
            eprintln!(
                "attempt {attempt}: ring6's tree has input nodes {:?} only; starting it again",
                lab.inputs
            );
        }
        panic!("ring6 came up with fewer than two input nodes {ATTEMPTS} times in a row")
    }

    /// `labctl up TOPOLOGY --json --runtime process` plus `extra`; see [`Lab::up_on`].
    async fn up(topology: &str, extra: &[&str]) -> Lab {
        Lab::up_on(Runtime::Process, topology, extra).await
    }

    /// `labctl up TOPOLOGY --json --runtime RUNTIME` plus `extra`, then waits (polling, no
    /// sleeps) until every input node serves HTTP and the nameserver lists exactly those nodes
    /// as live.
    async fn up_on(runtime: Runtime, topology: &str, extra: &[&str]) -> Lab {
        let home = Home::with_runtime(runtime.name());
        let name = home.up(&topology_file(topology), extra).report.lab;
        let status = poll(READY_DEADLINE, "every input node serves HTTP", || {
            let status = status_of(&home, &name);
            let waiting: Vec<&String> = status
                .report
                .roles
                .iter()
                .filter(|(id, roles)| {
                    roles.contains(&Role::Input) && status.addresses[*id].http.is_none()
                })
                .map(|(id, _)| id)
                .collect();
            if waiting.is_empty() {
                Ok(status)
            } else {
                Err(format!("input nodes without `http`: {waiting:?}"))
            }
        });
        assert_eq!(status.report.runtime, runtime.name(), "lab {name}");
        assert_eq!(
            role_sets(&status.report, &name),
            expected_roles(&parents(&status.report)),
            "lab {name}: the roles follow SPEC §3.4 on the tree it built"
        );
        let node = |id: &String| -> u64 { id.parse().expect("ids are numbers") };
        let with_role = |role: Role| -> Vec<u64> {
            status
                .report
                .roles
                .iter()
                .filter(|(_, roles)| roles.contains(&role))
                .map(|(id, _)| node(id))
                .collect()
        };
        let writers = with_role(Role::Writer);
        assert_eq!(writers.len(), 1, "one writer: {:?}", status.report.roles);
        let inputs: Vec<Input> = with_role(Role::Input)
            .into_iter()
            .map(|id| {
                let http = status.addresses[&id.to_string()].http.clone().unwrap();
                runtime.check_http_address(id, &http);
                Input {
                    id,
                    base: format!("http://{http}"),
                }
            })
            .collect();
        assert!(
            !inputs.is_empty(),
            "no input node: {:?}",
            status.report.roles
        );
        let persistence = with_role(Role::Persistence);
        let stateless = status
            .report
            .roles
            .keys()
            .map(node)
            .filter(|id| *id != writers[0] && !persistence.contains(id))
            .collect();
        assert!(
            status.nameserver.starts_with("http://127.0.0.1:"),
            "the nameserver is on loopback: {:?}",
            status.nameserver
        );
        let serving = if status.durability == Durability::Majority {
            status.report.roles.keys().map(node).collect()
        } else {
            std::iter::once(writers[0])
                .chain(persistence.iter().copied())
                .collect()
        };
        let lab = Lab {
            name,
            nameserver: status.nameserver.clone(),
            folder: status.folder.clone(),
            writer: writers[0],
            persistence,
            inputs,
            stateless,
            serving,
            home,
        };
        lab.wait_for_nameserver().await;
        lab
    }

    /// Polls the nameserver until it lists exactly the input nodes, at the addresses `status`
    /// gave.
    async fn wait_for_nameserver(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/_nameserver/inputs", self.nameserver);
        let wanted: BTreeMap<u64, String> = self
            .inputs
            .iter()
            .map(|input| {
                (
                    input.id,
                    input.base.trim_start_matches("http://").to_string(),
                )
            })
            .collect();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let seen = match client.get(&url).send().await {
                Ok(response) => match response.json::<LiveInputs>().await {
                    Ok(inputs) => Ok(inputs
                        .live
                        .into_iter()
                        .map(|node| (node.id, node.http_address))
                        .collect::<BTreeMap<_, _>>()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if seen.as_ref() == Ok(&wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the nameserver should list the input nodes {wanted:?} within \
                 {READY_DEADLINE:?}; it answers {seen:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// `labctl status NAME --json`.
    fn status(&self) -> Status {
        status_of(&self.home, &self.name)
    }

    /// Every node's `applied`, from `labctl status`.
    fn applied(&self) -> BTreeMap<u64, u64> {
        self.status()
            .addresses
            .iter()
            .map(|(id, node)| {
                assert_eq!(node.state, "running", "node {id}: {node:?}");
                (id.parse().expect("ids are numbers"), node.applied)
            })
            .collect()
    }

    /// The `i`-th input node (by id).
    fn input(&self, i: usize) -> Input {
        self.inputs[i].clone()
    }

    /// Node `id`'s database file.
    fn database(&self, id: u64) -> PathBuf {
        self.folder
            .join("nodes")
            .join(id.to_string())
            .join("node.db")
    }

    /// Node `id`'s database, every row, as `Store::dump` writes it.
    fn dump(&self, id: u64) -> String {
        let path = self.database(id);
        assert!(path.is_file(), "node {id} has no database at {path:?}");
        Store::open(&path)
            .and_then(|store| store.dump())
            .unwrap_or_else(|e| panic!("dumping node {id}'s database {path:?}: {e}"))
    }

    /// Polls `status` until every node that serves reads from its own state (the writer and
    /// the persistence replicas; with `majority`, every node) has applied what the writer has;
    /// returns that figure. Another user's write is visible everywhere after it (SPEC §4
    /// promises only a client's own writes sooner).
    fn wait_replicated(&self) -> u64 {
        poll(
            REPLICATION_DEADLINE,
            "every node serving reads applies what the writer has",
            || {
                let applied = self.applied();
                let figures: BTreeSet<u64> = self.serving.iter().map(|id| applied[id]).collect();
                if figures.len() == 1 {
                    Ok(applied[&self.writer])
                } else {
                    Err(format!("applied: {applied:?}"))
                }
            },
        )
    }

    /// What a refused request must leave as it was: the rows of the writer's database. (A
    /// refused write that reached the writer does take a log position, SPEC §4: it is a command
    /// whose answer is its refusal, and it changes no row.)
    fn state(&self) -> State {
        State {
            writer: chat_rows(&self.dump(self.writer)),
        }
    }

    /// Insists that the lab's rows are still `before`, after `what`: at the writer, and at every
    /// persistence replica once it has applied what the writer has.
    fn assert_unchanged(&self, before: &State, what: &str) {
        self.wait_replicated();
        for id in std::iter::once(self.writer).chain(self.persistence.iter().copied()) {
            let after = chat_rows(&self.dump(id));
            assert_same_dump(&before.writer, &after, &format!("node {id} after {what}"));
        }
    }

    /// How many entries node `id`'s log holds, and how many of them are epoch-start entries
    /// (one per writer epoch, SPEC §4: a new writer's first entry, no write).
    fn log_entries(&self, id: u64) -> (u64, u64) {
        let path = self.database(id);
        let entries = Store::open(&path)
            .and_then(|store| store.entries_since(0, usize::MAX))
            .unwrap_or_else(|e| panic!("reading node {id}'s log {path:?}: {e}"));
        let starts = entries.iter().filter(|e| e.body.is_empty()).count();
        (entries.len() as u64, starts as u64)
    }

    /// Sends `method path` through the nameserver: insists on a 307 to a live input node with
    /// the path and query kept exactly, then sends the same request there. With `land_at`, asks
    /// the nameserver again (round robin) until it redirects to that input node. Returns the
    /// input node's answer.
    async fn via_nameserver(
        &self,
        agent: &Agent,
        method: Method,
        path: &str,
        body: Body,
        land_at: Option<u64>,
    ) -> Answer {
        for _ in 0..=2 * self.inputs.len() {
            let url = format!("{}{path}", self.nameserver);
            let hop = agent.send(method.clone(), &url, &body).await;
            assert_eq!(hop.status, 307, "{hop}");
            let location = hop
                .location
                .clone()
                .unwrap_or_else(|| panic!("a 307 without Location: {hop}"));
            let input = self
                .inputs
                .iter()
                .find(|input| location == format!("{}{path}", input.base))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: Location {location:?} is not an input node with the path kept; \
                         inputs: {:?}",
                        hop.request, self.inputs
                    )
                });
            if land_at.is_some_and(|id| id != input.id) {
                continue;
            }
            let answer = agent.send(method, &location, &body).await;
            assert_eq!(answer.node, Some(input.id), "{answer}");
            return answer;
        }
        panic!(
            "the nameserver never redirected {method} {path} to node {land_at:?} in {} tries \
             (round robin over {:?})",
            2 * self.inputs.len() + 1,
            self.inputs
        )
    }
}

/// `labctl status NAME --json` under `home`.
fn status_of(home: &Home, name: &str) -> Status {
    parse_one_line(&home.labctl(&["status", name, "--json"]).expect_success())
}

/// Calls `check` until it gives a value or `deadline` passes (then panics, saying what was
/// awaited and what `check` last saw).
fn poll<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + deadline;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= end => {
                panic!("{what}: not within {deadline:?}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The part of a lab a refused request must leave unchanged.
struct State {
    writer: String,
}

/// Insists that two dumps are equal, showing the first line that differs.
fn assert_same_dump(expected: &str, actual: &str, context: &str) {
    if expected == actual {
        return;
    }
    let (mut left, mut right) = (expected.lines(), actual.lines());
    let mut line = 1;
    loop {
        match (left.next(), right.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => panic!(
                "{context}: the databases differ at line {line}:\n  expected {a:?}\n  actual   \
                 {b:?}\nexpected dump:\n{expected}\nactual dump:\n{actual}"
            ),
        }
    }
}

/// The data rows of a dump (header lines start with `#`).
fn rows(dump: &str) -> Vec<&str> {
    dump.lines().filter(|line| !line.starts_with('#')).collect()
}

/// The `users` rows of a dump.
fn user_rows(dump: &str) -> Vec<&str> {
    rows(dump)
        .into_iter()
        .filter(|row| row.starts_with("users "))
        .collect()
}

/// A dump without its `meta` rows (the applied position): the chat's rows and stored answers.
fn chat_rows(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("meta "))
        .map(|line| format!("{line}\n"))
        .collect()
}

// --- HTTP clients ------------------------------------------------------------------------------

/// A request body.
#[derive(Clone, Debug)]
enum Body {
    /// No body, and no `Content-Type` (SPEC §5: a program's DELETE with its session cookie and
    /// no body works).
    Empty,
    /// A JSON value.
    Json(Value),
    /// Raw bytes with this content type.
    Raw(&'static str, Vec<u8>),
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    /// `METHOD URL`, for assertion messages.
    request: String,
    status: u16,
    /// `X-Labctl-Node`: the input node that answered.
    node: Option<u64>,
    location: Option<String>,
    /// `X-CSRF-Token`.
    csrf: Option<String>,
    text: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answered {} (node {:?}): {}",
            self.request, self.status, self.node, self.text
        )
    }
}

impl Answer {
    /// Insists on `status`; returns the body as JSON.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self}");
        if self.text.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{self}: not JSON: {e}"))
    }

    /// Insists on a refusal with `status` and a body of exactly `{"error": "<a sentence>"}`;
    /// returns the sentence.
    fn refused(&self, status: u16) -> String {
        let body = self.expect(status);
        let message = body["error"].as_str().unwrap_or_default().to_string();
        assert!(
            keys(&body) == ["error"] && !message.trim().is_empty(),
            "{self}: a refusal's body is {{\"error\": \"…\"}}"
        );
        message
    }
}

/// One user's HTTP client: a cookie jar shared by a client that never follows redirects (to see
/// the nameserver's 307) and one that follows them as reqwest does by default (re-sending the
/// body on a 307).
struct Agent {
    jar: Arc<Jar>,
    direct: reqwest::Client,
    follow: reqwest::Client,
}

impl Agent {
    fn new() -> Agent {
        let jar = Arc::new(Jar::default());
        let client = |policy| {
            reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(policy)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client")
        };
        Agent {
            direct: client(Policy::none()),
            follow: client(Policy::default()),
            jar,
        }
    }

    /// An agent whose jar holds only the session cookie `token`, valid for `base` (and, as every
    /// cookie, for every port of that host).
    fn with_session(base: &str, token: &str) -> Agent {
        let agent = Agent::new();
        let url: Url = base.parse().expect("a URL");
        agent
            .jar
            .add_cookie_str(&format!("labctl_session={token}; Path=/"), &url);
        agent
    }

    /// The value of cookie `name` this agent would send to `base`.
    fn cookie(&self, base: &str, name: &str) -> Option<String> {
        let url: Url = base.parse().expect("a URL");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .expect("cookies are ASCII")
            .split("; ")
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }

    /// Sends one request (no redirect followed) with `Accept: application/json`.
    async fn send(&self, method: Method, url: &str, body: &Body) -> Answer {
        self.send_with(&self.direct, method, url, body).await
    }

    /// Sends one request, following redirects as reqwest does by default.
    async fn send_following(&self, method: Method, url: &str, body: &Body) -> Answer {
        self.send_with(&self.follow, method, url, body).await
    }

    async fn send_with(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &str,
        body: &Body,
    ) -> Answer {
        let request = format!("{method} {url}");
        let mut builder = client
            .request(method.clone(), url)
            .header(ACCEPT, "application/json");
        builder = match body {
            Body::Empty => builder,
            Body::Json(value) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(value.to_string()),
            Body::Raw(kind, bytes) => builder.header(CONTENT_TYPE, *kind).body(bytes.clone()),
        };
        let response = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{request}: {e:?}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().expect("an ASCII header").to_string())
        };
        let node = header("x-labctl-node").map(|node| {
            node.parse()
                .unwrap_or_else(|_| panic!("{request}: X-Labctl-Node {node:?}"))
        });
        let (location, csrf) = (header("location"), header("x-csrf-token"));
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{request}: reading the body: {e}"));
        Answer {
            request,
            status,
            node,
            location,
            csrf,
            text,
        }
    }

    /// Sends `method path` to `input` directly; insists that `input` answered.
    async fn at(&self, input: &Input, method: Method, path: &str, body: Body) -> Answer {
        let answer = self
            .send(method, &format!("{}{path}", input.base), &body)
            .await;
        assert_eq!(answer.node, Some(input.id), "{answer}");
        answer
    }
}

/// A registered user with its own cookie jar.
struct Person {
    agent: Agent,
    username: String,
    tag: String,
    uuid: String,
}

impl Person {
    /// Registers `username#tag` at `input` (201, a user of exactly `{"uuid", "username", "tag"}`).
    async fn register(input: &Input, username: &str, tag: &str) -> Person {
        let agent = Agent::new();
        let answer = agent
            .at(
                input,
                Method::POST,
                "/register",
                credentials(username, tag, PASSWORD),
            )
            .await;
        let user = answer.expect(201);
        let uuid = check_user(&user, username, tag, &answer.to_string());
        Person {
            agent,
            username: username.to_string(),
            tag: tag.to_string(),
            uuid,
        }
    }

    /// The user, as the API shows it.
    fn user(&self) -> Value {
        json!({"uuid": self.uuid, "username": self.username, "tag": self.tag})
    }

    /// `/users/{username}/{tag}`.
    fn path(&self) -> String {
        format!("/users/{}/{}", self.username, self.tag)
    }

    /// `/users/{username}/{tag}/chat`: the private conversation with this user.
    fn chat(&self) -> String {
        format!("{}/chat", self.path())
    }

    /// Logs in at `input`: 200, the user, a session cookie and a CSRF token.
    async fn login(&self, input: &Input) {
        let answer = self
            .agent
            .at(
                input,
                Method::POST,
                "/login",
                credentials(&self.username, &self.tag, PASSWORD),
            )
            .await;
        assert_eq!(answer.expect(200), self.user(), "{answer}");
        assert!(answer.csrf.is_some(), "{answer}: no X-CSRF-Token");
        assert!(
            self.session(input).is_some(),
            "{answer}: no session cookie set"
        );
    }

    /// The session token this user's jar holds for `input`.
    fn session(&self, input: &Input) -> Option<String> {
        self.agent.cookie(&input.base, "labctl_session")
    }

    async fn get(&self, input: &Input, path: &str) -> Answer {
        self.agent.at(input, Method::GET, path, Body::Empty).await
    }

    async fn post(&self, input: &Input, path: &str, body: Value) -> Answer {
        self.agent
            .at(input, Method::POST, path, Body::Json(body))
            .await
    }

    async fn delete(&self, input: &Input, path: &str) -> Answer {
        self.agent
            .at(input, Method::DELETE, path, Body::Empty)
            .await
    }

    /// Sends `content` to `path` (a conversation): 201 and the message, checked.
    async fn send(&self, input: &Input, path: &str, content: &str) -> Value {
        let answer = self.post(input, path, json!({ "content": content })).await;
        let message = answer.expect(201);
        check_message(&message, &self.uuid, content, &answer.to_string());
        message
    }
}

/// A register or login body.
fn credentials(username: &str, tag: &str, password: &str) -> Body {
    Body::Json(json!({"username": username, "tag": tag, "password": password}))
}

// --- the JSON shapes of SPEC §5 ----------------------------------------------------------------

/// An object's keys, sorted.
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|object| {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys
        })
        .unwrap_or_default()
}

/// Whether `text` is a UUID in its hyphenated lowercase form.
fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// Checks a user: exactly `{"uuid", "username", "tag"}`; returns its uuid.
fn check_user(user: &Value, username: &str, tag: &str, context: &str) -> String {
    assert_eq!(keys(user), ["tag", "username", "uuid"], "{context}");
    assert_eq!(user["username"], username, "{context}");
    assert_eq!(user["tag"], tag, "{context}");
    let uuid = user["uuid"].as_str().unwrap_or_default();
    assert!(is_uuid(uuid), "{context}: uuid {uuid:?}");
    uuid.to_string()
}

/// Checks a group: exactly `{"uuid", "name", "creator"}`; returns its uuid.
fn check_group(group: &Value, name: &str, creator: &str, context: &str) -> String {
    assert_eq!(keys(group), ["creator", "name", "uuid"], "{context}");
    assert_eq!(group["name"], name, "{context}");
    assert_eq!(group["creator"], creator, "{context}");
    let uuid = group["uuid"].as_str().unwrap_or_default();
    assert!(is_uuid(uuid), "{context}: uuid {uuid:?}");
    uuid.to_string()
}

/// Checks a message: exactly `{"uuid", "author", "content", "sent_at"}`, sent_at RFC 3339 and
/// within a day of now.
fn check_message(message: &Value, author: &str, content: &str, context: &str) {
    assert_eq!(
        keys(message),
        ["author", "content", "sent_at", "uuid"],
        "{context}"
    );
    assert_eq!(message["author"], author, "{context}");
    assert_eq!(message["content"], content, "{context}");
    assert!(
        is_uuid(message["uuid"].as_str().unwrap_or_default()),
        "{context}"
    );
    let sent_at = message["sent_at"].as_str().unwrap_or_default();
    let ms = rfc3339_ms(sent_at)
        .unwrap_or_else(|| panic!("{context}: sent_at {sent_at:?} is not RFC 3339"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    assert!(
        (ms - now).abs() < 24 * 3600 * 1000,
        "{context}: sent_at {sent_at:?} is not today"
    );
}

/// Checks a conversation: a JSON array equal to `sent` (so oldest first), every message of the
/// contract's shape, `sent_at` never going back.
fn check_conversation(answer: &Answer, sent: &[Value]) {
    let list = answer.expect(200);
    let messages = list
        .as_array()
        .unwrap_or_else(|| panic!("{answer}: a conversation is a JSON array"));
    let contents = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        contents(messages),
        contents(sent),
        "{}: the messages, oldest first",
        answer.request
    );
    assert_eq!(messages, sent, "{}", answer.request);
    let times: Vec<i64> = messages
        .iter()
        .map(|m| rfc3339_ms(m["sent_at"].as_str().unwrap_or_default()).expect("RFC 3339"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{}: sent_at goes back: {times:?}",
        answer.request
    );
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time (`2024-05-01T12:00:00.123Z`,
/// `…+02:00`), or `None` if `text` is not one.
fn rfc3339_ms(text: &str) -> Option<i64> {
    // RFC 3339 lets any character part the date from the time; the chat writes `T`.
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let instant =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).ok()
}

/// base64url without padding, as the session tokens are written.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

#[test]
fn the_test_helpers_read_what_they_should() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(rfc3339_ms("1970-01-01T01:00:00.5+01:00"), Some(500));
    assert_eq!(
        rfc3339_ms("2000-03-01T00:00:00.000Z"),
        Some(951_868_800_000)
    );
    for bad in [
        "",
        "2024-05-01 12:00:00Z",
        "2024-05-01T12:00:00",
        "2024-13-01T00:00:00Z",
    ] {
        assert_eq!(rfc3339_ms(bad), None, "{bad:?}");
    }
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    assert!(is_uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"));
    assert!(!is_uuid("67E55044-10B1-426F-9247-BB680E5FE0C8"));
}

// --- the tests ---------------------------------------------------------------------------------

/// SPEC §5: "A session logged in at one input node is valid at every input node", and the
/// nameserver redirects (307, path and query kept, round robin) to every input node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_one_input_node_works_at_the_other() {
    sessions_hold_at_every_input_node(&Lab::ring6(&[]).await).await;
}

/// The scenario of [`a_session_from_one_input_node_works_at_the_other`], on any lab with two
/// input nodes where alice#1234 and bob#567 are not registered yet.
async fn sessions_hold_at_every_input_node(lab: &Lab) {
    let (a, b) = (lab.input(0), lab.input(1));

    // The nameserver sends each new request to the next input node, keeping path and query.
    let anonymous = Agent::new();
    let mut landed = BTreeSet::new();
    for _ in 0..2 * lab.inputs.len() {
        let answer = lab
            .via_nameserver(
                &anonymous,
                Method::GET,
                "/users?username=nobody",
                Body::Empty,
                None,
            )
            .await;
        assert_eq!(answer.expect(200), json!([]), "{answer}");
        landed.insert(answer.node.expect("a node"));
    }
    assert_eq!(
        landed,
        lab.inputs.iter().map(|i| i.id).collect::<BTreeSet<u64>>(),
        "round robin reaches every input node"
    );

    // Register at input A directly, log in at input B through the nameserver.
    let alice = Person::register(&a, "alice", "1234").await;
    let login = lab
        .via_nameserver(
            &alice.agent,
            Method::POST,
            "/login",
            credentials("alice", "1234", PASSWORD),
            Some(b.id),
        )
        .await;
    assert_eq!(login.expect(200), alice.user(), "{login}");
    eprintln!(
        "registered at node {}, logged in at node {} through the nameserver",
        a.id,
        login.node.expect("a node")
    );
    let token = alice.session(&b).expect("a session cookie from node B");

    // A page that needs a login: 401 without the cookie, 200 with it, at both input nodes.
    for input in [&a, &b] {
        assert_eq!(alice.get(input, "/groups").await.expect(200), json!([]));
        let fresh = Agent::with_session(&input.base, &token);
        let answer = fresh.at(input, Method::GET, "/groups", Body::Empty).await;
        assert_eq!(
            answer.expect(200),
            json!([]),
            "B's cookie at node {}",
            input.id
        );
        anonymous
            .at(input, Method::GET, "/groups", Body::Empty)
            .await
            .refused(401);
    }
    // The session is alice's at A too: she writes at A with B's cookie, and reads it back at B.
    let fresh = Agent::with_session(&a.base, &token);
    let answer = fresh
        .at(
            &a,
            Method::POST,
            "/groups",
            Body::Json(json!({"name": "from B's cookie"})),
        )
        .await;
    let group = check_group(
        &answer.expect(201),
        "from B's cookie",
        &alice.uuid,
        &answer.to_string(),
    );
    let groups = fresh.at(&b, Method::GET, "/groups", Body::Empty).await;
    assert_eq!(groups.expect(200)[0]["uuid"], group.as_str(), "{groups}");

    // reqwest's own redirect policy through the nameserver: the 307 keeps the method and body.
    let bob = Person::register(&b, "bob", "567").await;
    let url = format!("{}/login", lab.nameserver);
    let answer = bob
        .agent
        .send_following(Method::POST, &url, &credentials("bob", "567", PASSWORD))
        .await;
    assert_eq!(answer.expect(200), bob.user(), "{answer}");
    let node = answer.node.expect("an input node answered");
    assert!(
        lab.inputs.iter().any(|i| i.id == node),
        "answered by node {node}, not an input node"
    );
    for input in [&a, &b] {
        assert_eq!(bob.get(input, "/groups").await.expect(200), json!([]));
    }
}

/// SPEC §4–§5: private messages, oldest first, of the contract's shape; a user who wrote at one
/// input node always reads it at the other right after (read-your-writes), and the other user
/// reads it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_are_read_your_writes_across_input_nodes() {
    private_messages_read_your_writes(&Lab::ring6(&[]).await).await;
}

/// The scenario of [`private_messages_are_read_your_writes_across_input_nodes`], on any lab with
/// two input nodes where alice#1001, bob#2002, carol#3003 and dave#4004 are not registered yet.
async fn private_messages_read_your_writes(lab: &Lab) {
    let (a, b) = (lab.input(0), lab.input(1));
    let alice = Person::register(&a, "alice", "1001").await;
    let bob = Person::register(&b, "bob", "2002").await;
    alice.login(&a).await;
    bob.login(&b).await;

    let first = alice.send(&a, &bob.chat(), "hello bob").await;
    let mut sent = vec![first];
    // Bob, logged in at B, reads what alice wrote at A (once the replicas have applied it: his
    // session holds no position of hers; only one's own writes are read-your-writes, SPEC §4).
    lab.wait_replicated();
    check_conversation(&bob.get(&b, &alice.chat()).await, &sent);

    // Read-your-writes: each read at the other input node right after the write, while dave
    // writes without pause at A (the stores' writers busy, reads served beside them: at an input
    // node from its own store when it holds the reader's last write, else up the tree).
    let dave = Person::register(&a, "dave", "4004").await;
    dave.login(&a).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let background = async {
        let mut written = 0;
        // Bounded: at most 500 writes, and it stops when the checks are done.
        while written < 500 && !done.load(std::sync::atomic::Ordering::Acquire) {
            dave.send(&a, &dave.chat(), &format!("load {written}"))
                .await;
            written += 1;
        }
        written
    };
    let checks = async {
        for i in 0..20 {
            let (write_at, read_at) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let content = format!("message {i}: written at node {}", write_at.id);
            let message = alice.send(write_at, &bob.chat(), &content).await;
            let read = alice.get(read_at, &bob.chat()).await;
            let list = read.expect(200);
            assert!(
                list.as_array().is_some_and(|l| l.contains(&message)),
                "read-your-writes: {content:?} was acknowledged at node {} but node {} does not \
                 show it right after: {read}",
                write_at.id,
                read_at.id
            );
            sent.push(message);
            if i % 5 == 4 {
                sent.push(
                    bob.send(read_at, &alice.chat(), &format!("bob's answer to {i}"))
                        .await,
                );
            }
        }
        done.store(true, std::sync::atomic::Ordering::Release);
    };
    let (written, ()) = tokio::join!(background, checks);
    assert!(written > 0, "the background writer wrote nothing");

    // The whole conversation, the same from both sides at both input nodes, oldest first.
    lab.wait_replicated();
    for input in [&a, &b] {
        check_conversation(&alice.get(input, &bob.chat()).await, &sent);
        check_conversation(&bob.get(input, &alice.chat()).await, &sent);
    }
    let authors: BTreeSet<&str> = sent.iter().filter_map(|m| m["author"].as_str()).collect();
    assert_eq!(
        authors,
        BTreeSet::from([alice.uuid.as_str(), bob.uuid.as_str()])
    );
    // A third user's conversation with alice is empty: nobody reads others' messages.
    let carol = Person::register(&a, "carol", "3003").await;
    carol.login(&b).await;
    check_conversation(&carol.get(&b, &alice.chat()).await, &[]);
}

/// SPEC §5: groups and every permission rule on them, and deleting users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_chats_follow_every_permission_rule() {
    group_chat_permissions(&Lab::ring6(&[]).await).await;
}

/// The scenario of [`group_chats_follow_every_permission_rule`], on any lab with two input nodes
/// where alice#111, bob#222 and carol#333 are not registered yet.
async fn group_chat_permissions(lab: &Lab) {
    let (a, b) = (lab.input(0), lab.input(1));
    let users_before = user_rows(&lab.dump(lab.writer)).len();
    let alice = Person::register(&a, "alice", "111").await;
    let bob = Person::register(&b, "bob", "222").await;
    let carol = Person::register(&a, "carol", "333").await;
    alice.login(&a).await;
    bob.login(&b).await;
    carol.login(&a).await;

    // alice creates a group (the name is kept trimmed) and adds bob.
    let answer = alice
        .post(&a, "/groups", json!({"name": "  lab seven  "}))
        .await;
    let created = answer.expect(201);
    let group = check_group(&created, "lab seven", &alice.uuid, &answer.to_string());
    let (page, members, chat) = (
        format!("/groups/{group}"),
        format!("/groups/{group}/members"),
        format!("/groups/{group}/chat"),
    );
    // Reads of another user's writes: once the replicas have applied them (SPEC §4).
    lab.wait_replicated();
    assert_eq!(bob.get(&b, &page).await.expect(200), created);
    let answer = alice
        .post(&a, &members, json!({"username": "bob", "tag": "222"}))
        .await;
    assert_eq!(answer.expect(201), bob.user(), "{answer}");
    lab.wait_replicated();
    for (who, input) in [(&alice, &b), (&bob, &a)] {
        assert_eq!(
            who.get(input, &members).await.expect(200),
            json!([alice.user(), bob.user()]),
            "members, by username"
        );
        assert_eq!(
            who.get(input, "/groups").await.expect(200),
            json!([created])
        );
    }

    // Members post and read at different input nodes.
    let mut sent = vec![bob.send(&b, &chat, "hi from bob at B").await];
    sent.push(alice.send(&a, &chat, "hi from alice at A").await);
    sent.push(bob.send(&a, &chat, "bob again, at A").await);
    lab.wait_replicated();
    for (who, input) in [(&alice, &b), (&bob, &b), (&alice, &a), (&bob, &a)] {
        check_conversation(&who.get(input, &chat).await, &sent);
    }

    // A non-member can neither read, post, nor list the members.
    for input in [&a, &b] {
        carol.get(input, &chat).await.refused(403);
        carol
            .post(input, &chat, json!({"content": "let me in"}))
            .await
            .refused(403);
        carol.get(input, &members).await.refused(403);
    }
    // Only the creator adds members, deletes the group and removes others.
    bob.post(&b, &members, json!({"username": "carol", "tag": "333"}))
        .await
        .refused(403);
    bob.delete(&b, &page).await.refused(403);
    carol.delete(&a, &page).await.refused(403);
    bob.delete(&b, &format!("{members}/{}", alice.uuid))
        .await
        .refused(403);
    carol
        .delete(&a, &format!("{members}/{}", bob.uuid))
        .await
        .refused(403);
    for input in [&a, &b] {
        check_conversation(&alice.get(input, &chat).await, &sent);
        assert_eq!(
            alice.get(input, &members).await.expect(200),
            json!([alice.user(), bob.user()])
        );
    }

    // A member may remove itself (leave): then it can no longer read.
    assert_eq!(
        bob.delete(&b, &format!("{members}/{}", bob.uuid))
            .await
            .expect(204),
        Value::Null
    );
    bob.get(&a, &chat).await.refused(403);
    assert_eq!(bob.get(&a, "/groups").await.expect(200), json!([]));
    // The creator removes a member.
    let answer = alice
        .post(&b, &members, json!({"username": "carol", "tag": "333"}))
        .await;
    assert_eq!(answer.expect(201), carol.user(), "{answer}");
    lab.wait_replicated();
    check_conversation(&carol.get(&b, &chat).await, &sent);
    alice
        .delete(&a, &format!("{members}/{}", carol.uuid))
        .await
        .expect(204);
    lab.wait_replicated();
    carol.get(&b, &chat).await.refused(403);
    assert_eq!(
        alice.get(&b, &members).await.expect(200),
        json!([alice.user()])
    );

    // The creator deletes the group: it is gone everywhere.
    alice.delete(&b, &page).await.expect(204);
    for input in [&a, &b] {
        alice.get(input, &page).await.refused(404);
        alice.get(input, &chat).await.refused(404);
        assert_eq!(alice.get(input, "/groups").await.expect(200), json!([]));
    }

    // A user deletes only itself.
    bob.delete(&b, &format!("/users/{}", alice.uuid))
        .await
        .refused(403);
    alice.get(&b, &alice.path()).await.expect(200);
    let token = bob.session(&b).expect("bob's session");
    bob.delete(&a, &format!("/users/{}", bob.uuid))
        .await
        .expect(204);
    lab.wait_replicated();
    // Its session ends: the cookie is cleared, so pages that need a login answer 401; the old
    // token, replayed, cannot write (every route: the test after this one); logging in is over.
    for input in [&a, &b] {
        assert_eq!(bob.session(input), None, "the session cookie is cleared");
        bob.get(input, "/groups").await.refused(401);
        bob.get(input, &alice.chat()).await.refused(401);
        alice.get(input, &bob.path()).await.refused(404);
        Agent::with_session(&input.base, &token)
            .at(
                input,
                Method::POST,
                &alice.chat(),
                Body::Json(json!({"content": "from beyond"})),
            )
            .await
            .refused(401);
        Agent::new()
            .at(
                input,
                Method::POST,
                "/login",
                credentials("bob", "222", PASSWORD),
            )
            .await
            .refused(401);
    }
    // The writer holds alice and carol, not bob.
    let dump = lab.dump(lab.writer);
    let users = user_rows(&dump);
    assert_eq!(users.len(), users_before + 2, "{dump}");
    for person in [&alice, &carol] {
        assert!(users.iter().any(|row| row.contains(&person.uuid)), "{dump}");
    }
    assert!(users.iter().all(|row| !row.contains(&bob.uuid)), "{dump}");
}

/// SPEC §5: 401 is "not logged in". A session that outlives its user (deleted from another
/// browser: the signed token is still intact) is refused with 401 by every route that needs a
/// login, reads and writes alike, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_replayed_session_is_401_everywhere() {
    let lab = Lab::up("single.toml", &[]).await;
    let node = lab.input(0);
    let alice = Person::register(&node, "alice", "100").await;
    let bob = Person::register(&node, "bob", "200").await;
    alice.login(&node).await;
    bob.login(&node).await;
    let group = alice
        .post(&node, "/groups", json!({"name": "g"}))
        .await
        .expect(201)["uuid"]
        .as_str()
        .expect("a uuid")
        .to_string();
    alice
        .post(
            &node,
            &format!("/groups/{group}/members"),
            json!({"username": "bob", "tag": "200"}),
        )
        .await
        .expect(201);
    bob.send(&node, &alice.chat(), "still here").await;
    let token = bob.session(&node).expect("bob's session");
    bob.delete(&node, &format!("/users/{}", bob.uuid))
        .await
        .expect(204);
    let before = lab.state();

    let replay = Agent::with_session(&node.base, &token);
    let (members, chat) = (
        format!("/groups/{group}/members"),
        format!("/groups/{group}/chat"),
    );
    let message = || Body::Json(json!({"content": "from beyond"}));
    let mut wrong = Vec::new();
    for (method, path, body) in [
        (Method::GET, "/groups".to_string(), Body::Empty),
        (
            Method::POST,
            "/groups".to_string(),
            Body::Json(json!({"name": "ghosts"})),
        ),
        (Method::GET, alice.chat(), Body::Empty),
        (Method::POST, alice.chat(), message()),
        (Method::GET, members.clone(), Body::Empty),
        (
            Method::POST,
            members,
            Body::Json(json!({"username": "alice", "tag": "100"})),
        ),
        (Method::GET, chat.clone(), Body::Empty),
        (Method::POST, chat, message()),
        (Method::DELETE, format!("/users/{}", bob.uuid), Body::Empty),
    ] {
        let answer = replay.at(&node, method, &path, body).await;
        if answer.status != 401 {
            wrong.push(answer.to_string());
        }
        lab.assert_unchanged(&before, &answer.request);
    }
    assert!(
        wrong.is_empty(),
        "a deleted user's session should be refused with 401 (\"not logged in\"), as the \
         other routes do; these answered otherwise:\n{}",
        wrong.join("\n")
    );
}

/// Issue 13, item 8 (SPEC §5): logging out ends the session token itself, at every input node:
/// the user's session generation, raised by the logout through the replicated log, reaches the
/// nodes that check tokens for the other input node. A copy of the old cookie is refused there
/// (within the time replication takes) and at the node that logged out, for reads and writes;
/// a second login works at both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_token_is_refused_at_every_input_node() {
    let lab = Lab::ring6(&[]).await;
    let (a, b) = (lab.input(0), lab.input(1));
    let alice = Person::register(&a, "alice", "100").await;
    alice.login(&a).await;
    let token = alice.session(&a).expect("alice's session");
    alice.get(&b, "/groups").await.expect(200);

    alice.get(&a, "/logout").await.expect(204);
    assert_eq!(alice.session(&a), None, "the cookie is cleared");
    let replay = Agent::with_session(&b.base, &token);
    let started = Instant::now();
    loop {
        let answer = replay.at(&b, Method::GET, "/groups", Body::Empty).await;
        if answer.status == 401 {
            break;
        }
        assert_eq!(answer.status, 200, "{answer}");
        assert!(
            started.elapsed() < REPLICATION_DEADLINE,
            "the logged-out token still works at input node {} after {REPLICATION_DEADLINE:?}",
            b.id
        );
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "the logout at node {} reached node {}'s checks within {:?}",
        a.id,
        b.id,
        started.elapsed()
    );
    let before = lab.state();
    for input in [&a, &b] {
        replay
            .at(input, Method::GET, "/groups", Body::Empty)
            .await
            .refused(401);
        let answer = replay
            .at(
                input,
                Method::POST,
                "/groups",
                Body::Json(json!({"name": "after logout"})),
            )
            .await;
        answer.refused(401);
        lab.assert_unchanged(&before, &answer.request);
    }

    alice.login(&b).await;
    for input in [&a, &b] {
        alice.get(input, "/groups").await.expect(200);
    }
}

/// A process's resident memory now (`VmRSS`) and at its highest so far (`VmHWM`), in KiB.
fn resident_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Issue 13, item 8: password hashing (argon2, 19 MiB a hash) runs on a fixed number of threads
/// that reuse their memory, behind a bounded queue. 64 wrong-password logins at once used to take
/// an input node from 19 MiB to 1.2 GiB, kept; now its peak stays under 200 MiB, each login is
/// answered 401 or, past the queue, 503 "busy" (nothing done), and a right password still works
/// after the burst. The nodes' database files are private to their user (mode 0600).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_password_logins_keeps_an_input_node_under_200_mib() {
    const BURST: usize = 64;
    const BOUND_KIB: u64 = 200 * 1024;
    let lab = Lab::up("ring6.toml", &[]).await;
    let input = lab.input(0);
    let alice = Person::register(&input, "alice", "100").await;
    let pid = live_util::status_of(&lab.home, &lab.name).addresses[&input.id.to_string()].pid;
    let (before, _) = resident_kib(pid);

    let logins: Vec<_> = (0..BURST)
        .map(|k| {
            let input = input.clone();
            tokio::spawn(async move {
                let body = credentials("alice", "100", &format!("wrong password {k}"));
                Agent::new().at(&input, Method::POST, "/login", body).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.expect("a login task"));
    }
    let (after, peak) = resident_kib(pid);
    let (mut wrong, mut busy) = (0, 0);
    for answer in &answers {
        match answer.status {
            401 => wrong += 1,
            503 => {
                busy += 1;
                let message = answer.refused(503);
                assert!(message.contains("busy"), "{answer}");
            }
            _ => panic!("a wrong password is 401, or 503 while the hashers are busy: {answer}"),
        }
    }
    eprintln!(
        "input node {} (pid {pid}): VmRSS {before} KiB before {BURST} concurrent wrong-password \
         logins ({wrong} answered 401, {busy} 503 busy), {after} KiB after, peak (VmHWM) {peak} KiB",
        input.id
    );
    assert!(
        wrong >= 1,
        "some logins were checked: {wrong} 401, {busy} 503"
    );
    assert!(
        peak <= BOUND_KIB,
        "input node {}'s resident memory peaked at {peak} KiB (> {BOUND_KIB} KiB) under \
         {BURST} concurrent logins ({before} KiB before, {after} KiB after)",
        input.id
    );
    alice.login(&input).await;

    // node.db and its companions: this user's only.
    for id in lab.status().addresses.keys() {
        let id: u64 = id.parse().expect("ids are numbers");
        let db = lab.database(id);
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", db.display()));
            if suffix.is_empty() || file.exists() {
                let mode = std::fs::metadata(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                    .permissions();
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(mode.mode() & 0o777, 0o600, "{}", file.display());
            }
        }
    }
}

/// SPEC §5: every status code a client can cause, through the lab; a refused request changes
/// nothing (the writer's rows, every node's `applied`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_changes_nothing() {
    let lab = Lab::ring6(&[]).await;
    let (a, b) = (lab.input(0), lab.input(1));
    let alice = Person::register(&a, "alice", "1234").await;
    let bob = Person::register(&b, "bob", "5678").await;
    let carol = Person::register(&a, "carol", "9012").await;
    alice.login(&b).await;
    bob.login(&a).await;
    carol.login(&b).await;
    let group = alice
        .post(&a, "/groups", json!({"name": "g"}))
        .await
        .expect(201)["uuid"]
        .as_str()
        .expect("a uuid")
        .to_string();
    let (members, chat) = (
        format!("/groups/{group}/members"),
        format!("/groups/{group}/chat"),
    );
    alice
        .post(&a, &members, json!({"username": "bob", "tag": "5678"}))
        .await
        .expect(201);
    alice.send(&b, &bob.chat(), "a first message").await;
    lab.wait_replicated();
    let before = lab.state();
    assert!(
        rows(&before.writer).len() > 5,
        "the writer holds what was written: {}",
        before.writer
    );
    let anonymous = Agent::new();
    let unknown = "0b7f3c52-5a7e-4d2b-9a51-4f6f0c1e2d3a";
    let json_raw = |text: &str| Body::Raw("application/json", text.as_bytes().to_vec());

    // Each case: what it is, who sends it, to which input node, the request, the status.
    #[rustfmt::skip]
    let cases: Vec<(&str, &Agent, &Input, Method, String, Body, u16)> = vec![
        // 400: malformed JSON, wrong types, not an object, a field missing.
        ("register, malformed JSON", &anonymous, &a, Method::POST, "/register".into(), json_raw("{\"username\": \"dave\","), 400),
        ("register, a number for username", &anonymous, &b, Method::POST, "/register".into(), Body::Json(json!({"username": 7, "tag": "123", "password": PASSWORD})), 400),
        ("register, a number for tag", &anonymous, &a, Method::POST, "/register".into(), Body::Json(json!({"username": "dave", "tag": 123, "password": PASSWORD})), 400),
        ("register, a field missing", &anonymous, &a, Method::POST, "/register".into(), Body::Json(json!({"username": "dave", "tag": "123"})), 400),
        ("register, an array", &anonymous, &b, Method::POST, "/register".into(), json_raw("[\"dave\", \"123\"]"), 400),
        ("login, malformed JSON", &anonymous, &b, Method::POST, "/login".into(), json_raw("{username: alice}"), 400),
        ("message, malformed JSON", &alice.agent, &a, Method::POST, bob.chat(), json_raw("{\"content\": \"unterminated}"), 400),
        ("message, a number for content", &alice.agent, &b, Method::POST, bob.chat(), Body::Json(json!({"content": 42})), 400),
        ("group, a boolean for name", &alice.agent, &a, Method::POST, "/groups".into(), Body::Json(json!({"name": true})), 400),
        ("member, a number for tag", &alice.agent, &b, Method::POST, members.clone(), Body::Json(json!({"username": "carol", "tag": 9012})), 400),
        // 401: no session, a wrong password, an unknown user at login.
        ("groups without a session", &anonymous, &a, Method::GET, "/groups".into(), Body::Empty, 401),
        ("message without a session", &anonymous, &b, Method::POST, bob.chat(), Body::Json(json!({"content": "hi"})), 401),
        ("group without a session", &anonymous, &a, Method::POST, "/groups".into(), Body::Json(json!({"name": "x"})), 401),
        ("delete a user without a session", &anonymous, &b, Method::DELETE, format!("/users/{}", bob.uuid), Body::Empty, 401),
        ("login, wrong password", &anonymous, &a, Method::POST, "/login".into(), credentials("alice", "1234", "wrong password"), 401),
        ("login, unknown user", &anonymous, &b, Method::POST, "/login".into(), credentials("nobody", "1234", PASSWORD), 401),
        // 403: not a member, not the owner, not from our own pages.
        ("a non-member posts", &carol.agent, &a, Method::POST, chat.clone(), Body::Json(json!({"content": "hi"})), 403),
        ("a non-member reads", &carol.agent, &b, Method::GET, chat.clone(), Body::Empty, 403),
        ("a non-member lists members", &carol.agent, &a, Method::GET, members.clone(), Body::Empty, 403),
        ("a member adds a member", &bob.agent, &a, Method::POST, members.clone(), Body::Json(json!({"username": "carol", "tag": "9012"})), 403),
        ("a member deletes the group", &bob.agent, &b, Method::DELETE, format!("/groups/{group}"), Body::Empty, 403),
        ("a member removes the creator", &bob.agent, &a, Method::DELETE, format!("{members}/{}", alice.uuid), Body::Empty, 403),
        ("deleting another user", &carol.agent, &b, Method::DELETE, format!("/users/{}", alice.uuid), Body::Empty, 403),
        ("a session's write neither JSON nor with a CSRF token", &alice.agent, &a, Method::POST, bob.chat(), Body::Raw("text/plain", b"hello".to_vec()), 403),
        ("a session's form without a CSRF token", &alice.agent, &b, Method::POST, bob.chat(), Body::Raw("application/x-www-form-urlencoded", b"content=hello".to_vec()), 403),
        // 404: unknown user, group, route.
        ("an unknown user", &anonymous, &a, Method::GET, "/users/nobody/999".into(), Body::Empty, 404),
        ("a message to an unknown user", &alice.agent, &b, Method::POST, "/users/nobody/999/chat".into(), Body::Json(json!({"content": "hi"})), 404),
        ("the chat with an unknown user", &alice.agent, &a, Method::GET, "/users/nobody/999/chat".into(), Body::Empty, 404),
        ("an unknown group", &alice.agent, &b, Method::GET, format!("/groups/{unknown}"), Body::Empty, 404),
        ("posting to an unknown group", &alice.agent, &a, Method::POST, format!("/groups/{unknown}/chat"), Body::Json(json!({"content": "hi"})), 404),
        ("adding to an unknown group", &alice.agent, &b, Method::POST, format!("/groups/{unknown}/members"), Body::Json(json!({"username": "bob", "tag": "5678"})), 404),
        ("deleting an unknown group", &alice.agent, &a, Method::DELETE, format!("/groups/{unknown}"), Body::Empty, 404),
        ("adding an unknown user", &alice.agent, &b, Method::POST, members.clone(), Body::Json(json!({"username": "nobody", "tag": "999"})), 404),
        ("a group id that is no uuid", &alice.agent, &a, Method::GET, "/groups/not-a-uuid".into(), Body::Empty, 404),
        ("an unknown route", &anonymous, &b, Method::GET, "/no/such/page".into(), Body::Empty, 404),
        ("an unknown route, posted with a session", &alice.agent, &a, Method::POST, "/no/such/page".into(), Body::Json(json!({"content": "hi"})), 404),
        // 409: already exists.
        ("a duplicate registration", &anonymous, &b, Method::POST, "/register".into(), credentials("alice", "1234", "another password"), 409),
        ("a duplicate member", &alice.agent, &a, Method::POST, members.clone(), Body::Json(json!({"username": "bob", "tag": "5678"})), 409),
        ("the creator added again", &alice.agent, &b, Method::POST, members.clone(), Body::Json(json!({"username": "alice", "tag": "1234"})), 409),
        // 422: invalid values.
        ("a two-digit tag", &anonymous, &a, Method::POST, "/register".into(), credentials("dave", "12", PASSWORD), 422),
        ("a seven-digit tag", &anonymous, &b, Method::POST, "/register".into(), credentials("dave", "1234567", PASSWORD), 422),
        ("a username with a space", &anonymous, &a, Method::POST, "/register".into(), credentials("da ve", "123", PASSWORD), 422),
        ("a short password", &anonymous, &b, Method::POST, "/register".into(), credentials("dave", "123", "short"), 422),
        ("an empty message", &alice.agent, &a, Method::POST, bob.chat(), Body::Json(json!({"content": ""})), 422),
        ("a blank message", &alice.agent, &b, Method::POST, bob.chat(), Body::Json(json!({"content": "  \n "})), 422),
        ("an empty group message", &bob.agent, &a, Method::POST, chat.clone(), Body::Json(json!({"content": ""})), 422),
        ("an empty group name", &alice.agent, &b, Method::POST, "/groups".into(), Body::Json(json!({"name": "   "})), 422),
        ("a member with a two-digit tag", &alice.agent, &a, Method::POST, members.clone(), Body::Json(json!({"username": "bob", "tag": "56"})), 422),
    ];
    for (what, agent, input, method, path, body, status) in cases {
        let answer = agent.at(input, method, &path, body).await;
        let message = answer.refused(status);
        eprintln!("{what}: {status} {message}");
        lab.assert_unchanged(&before, &format!("{what} ({answer})"));
    }

    // The same through the nameserver.
    let answer = lab
        .via_nameserver(
            &anonymous,
            Method::POST,
            "/register",
            credentials("alice", "1234", PASSWORD),
            None,
        )
        .await;
    answer.refused(409);
    let answer = lab
        .via_nameserver(
            &alice.agent,
            Method::POST,
            &bob.chat(),
            Body::Json(json!({"content": ""})),
            None,
        )
        .await;
    answer.refused(422);
    lab.assert_unchanged(&before, "refusals through the nameserver");

    // And what was there is still served.
    for input in [&a, &b] {
        assert_eq!(
            bob.get(input, &members).await.expect(200),
            json!([alice.user(), bob.user()])
        );
        assert_eq!(
            bob.get(input, &alice.chat()).await.expect(200)[0]["content"],
            "a first message"
        );
    }
}

/// SPEC §4: every write reaches every persistence replica, in the same order, so their
/// databases are the writer's row for row; input and forwarder nodes never hold data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_both_inputs_replicate_to_identical_databases() {
    writes_replicate_to_identical_databases(&Lab::ring6(&[]).await).await;
}

/// The scenario of [`writes_through_both_inputs_replicate_to_identical_databases`], on any lab with
/// two input nodes and a persistence node where user0#100 to user3#400 and leaver#999 are not
/// registered yet. What the lab held before counts as a baseline: the writes here add exactly
/// their own log entries, and every replica still ends up the writer's row for row.
async fn writes_replicate_to_identical_databases(lab: &Lab) {
    assert!(
        !lab.persistence.is_empty(),
        "ring6: the root has a child with children: {:?}",
        lab.status().report.roles
    );
    let inputs = [lab.input(0), lab.input(1)];
    let at = |i: usize| &inputs[i % 2];
    let mut writes = 0u64;
    let applied_before = lab.wait_replicated();
    let (logged_before, _) = lab.log_entries(lab.writer);

    let mut people = Vec::new();
    for i in 0..4 {
        people.push(Person::register(at(i), &format!("user{i}"), &format!("{}00", i + 1)).await);
        writes += 1;
    }
    for (i, person) in people.iter().enumerate() {
        person.login(at(i + 1)).await;
    }
    let mut groups = Vec::new();
    for (creator, name) in [(0, "one"), (1, "two")] {
        let answer = people[creator]
            .post(at(creator), "/groups", json!({ "name": name }))
            .await;
        groups.push(check_group(
            &answer.expect(201),
            name,
            &people[creator].uuid,
            &answer.to_string(),
        ));
        writes += 1;
    }
    for (group, creator, member) in [(0, 0, 1), (0, 0, 2), (0, 0, 3), (1, 1, 0)] {
        let path = format!("/groups/{}/members", groups[group]);
        let body = json!({"username": people[member].username, "tag": people[member].tag});
        people[creator]
            .post(at(member), &path, body)
            .await
            .expect(201);
        writes += 1;
    }
    for i in 0..31 {
        let from = &people[i % 4];
        match i % 3 {
            0 => {
                let to = &people[(i + 1) % 4];
                from.send(at(i), &to.chat(), &format!("private {i}")).await;
            }
            1 => {
                let path = format!("/groups/{}/chat", groups[0]);
                from.send(at(i), &path, &format!("group one {i}")).await;
            }
            _ => {
                let from = &people[i % 2];
                let path = format!("/groups/{}/chat", groups[1]);
                from.send(at(i), &path, &format!("group two {i}")).await;
            }
        }
        writes += 1;
    }
    // Removals and deletions replicate too.
    let one = format!("/groups/{}/members", groups[0]);
    people[0]
        .delete(at(0), &format!("{one}/{}", people[3].uuid))
        .await
        .expect(204);
    people[2]
        .delete(at(1), &format!("{one}/{}", people[2].uuid))
        .await
        .expect(204);
    people[1]
        .delete(at(0), &format!("/groups/{}", groups[1]))
        .await
        .expect(204);
    writes += 3;
    // A user who created a group, wrote, then deleted itself (its group goes with it).
    let leaver = Person::register(at(1), "leaver", "999").await;
    leaver.login(at(0)).await;
    let answer = leaver
        .post(at(1), "/groups", json!({"name": "short-lived"}))
        .await;
    let short_lived = check_group(
        &answer.expect(201),
        "short-lived",
        &leaver.uuid,
        &answer.to_string(),
    );
    let path = format!("/groups/{short_lived}/members");
    let body = json!({"username": people[0].username, "tag": people[0].tag});
    leaver.post(at(0), &path, body).await.expect(201);
    leaver
        .send(at(1), &format!("/groups/{short_lived}/chat"), "bye all")
        .await;
    leaver.send(at(0), &people[1].chat(), "bye you").await;
    leaver
        .delete(at(1), &format!("/users/{}", leaver.uuid))
        .await
        .expect(204);
    lab.wait_replicated();
    people[0]
        .get(at(0), &format!("/groups/{short_lived}"))
        .await
        .refused(404);
    writes += 6;
    assert_eq!(writes, 50);

    // Every acknowledged write is one log entry at the writer and at every replica.
    let applied = lab.wait_replicated();
    assert_eq!(
        applied - applied_before,
        writes,
        "one log entry per acknowledged write (from {applied_before})"
    );
    let writer = lab.dump(lab.writer);
    for person in &people {
        assert!(
            rows(&writer)
                .iter()
                .any(|row| row.starts_with("users ") && row.contains(&person.uuid)),
            "the writer holds {}: {writer}",
            person.username
        );
    }
    assert!(
        !rows(&writer)
            .iter()
            .any(|row| row.starts_with("users ") && row.contains(&leaver.uuid)),
        "the writer still holds the deleted user: {writer}"
    );
    assert!(
        !rows(&writer).iter().any(|row| row.contains(&short_lived)),
        "its group, members and messages are gone: {writer}"
    );
    assert_eq!(
        lab.log_entries(lab.writer).0 - logged_before,
        writes,
        "{writer}"
    );
    // With `majority` (the default) the log flows down the whole tree (SPEC §4): every node,
    // replica, input node or forwarder, stores and applies it, so any majority holds every
    // acknowledged write. Every database is the writer's, row for row.
    for node in lab.persistence.iter().chain(&lab.stateless).copied() {
        poll(
            REPLICATION_DEADLINE,
            &format!("node {node} applies what the writer has"),
            || {
                let applied = lab.applied();
                (applied[&node] == applied[&lab.writer])
                    .then_some(())
                    .ok_or(format!("{applied:?}"))
            },
        );
        assert_same_dump(
            &writer,
            &lab.dump(node),
            &format!("node {node} against writer {}", lab.writer),
        );
    }
}

/// `up --durability writer`: a write is acknowledged once durable at the writer, and a user still
/// reads its own writes at every input node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_writer_acknowledges_and_serves_reads() {
    let lab = Lab::ring6(&["--durability", "writer"]).await;
    let (a, b) = (lab.input(0), lab.input(1));
    let alice = Person::register(&a, "alice", "4242").await;
    let bob = Person::register(&b, "bob", "4343").await;
    alice.login(&b).await;
    bob.login(&a).await;

    // Two other users keep writing through both input nodes meanwhile, so the replicas have a
    // queue to work through while alice reads right after each of her writes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for (k, name) in ["carol", "dave"].into_iter().enumerate() {
        let person = Person::register(&lab.input(k), name, &format!("{}00", k + 5)).await;
        person.login(&lab.input((k + 1) % 2)).await;
        let (stop, inputs, to) = (stop.clone(), [a.clone(), b.clone()], alice.chat());
        load.push(tokio::spawn(async move {
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let at = &inputs[(written as usize + k) % 2];
                person
                    .send(at, &to, &format!("{name}'s load {written}"))
                    .await;
                written += 1;
            }
            written
        }));
    }

    let mut sent = Vec::new();
    for i in 0..20 {
        let (write_at, read_at) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let content = format!("durable at the writer {i}");
        let message = alice.send(write_at, &bob.chat(), &content).await;
        let list = alice.get(read_at, &bob.chat()).await.expect(200);
        assert!(
            list.as_array().is_some_and(|l| l.contains(&message)),
            "read-your-writes with durability writer: {content:?} acknowledged at node {}, not \
             shown at node {}: {list}",
            write_at.id,
            read_at.id
        );
        sent.push(message);
    }
    stop.store(true, Ordering::Relaxed);
    let mut background = 0;
    for task in load {
        background += task.await.expect("a load task");
    }
    assert!(background > 0, "the load wrote nothing");

    // Everything acknowledged reaches the replicas, identically.
    let applied = lab.wait_replicated();
    let (_, starts) = lab.log_entries(lab.writer);
    assert_eq!(
        applied,
        4 + 20 + background + starts,
        "4 registrations, 20 messages, {background} of load and {starts} epoch-start entries"
    );
    for input in [&a, &b] {
        check_conversation(&bob.get(input, &alice.chat()).await, &sent);
    }
    let writer = lab.dump(lab.writer);
    for &replica in &lab.persistence {
        assert_same_dump(&writer, &lab.dump(replica), &format!("replica {replica}"));
    }
}

/// SPEC §8: the original "could not serve requests in a one-node cluster". One node is writer
/// and input node at once and serves everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_lab_serves_everything_itself() {
    let lab = Lab::up("single.toml", &[]).await;
    assert_eq!(lab.writer, 1);
    assert_eq!(lab.inputs.iter().map(|i| i.id).collect::<Vec<_>>(), [1]);
    let node = lab.input(0);
    let alice = Person::register(&node, "alice", "100").await;
    // Bob registers and logs in through the nameserver.
    let bob_agent = Agent::new();
    let answer = lab
        .via_nameserver(
            &bob_agent,
            Method::POST,
            "/register",
            credentials("bob", "200", PASSWORD),
            None,
        )
        .await;
    let bob = Person {
        uuid: check_user(&answer.expect(201), "bob", "200", &answer.to_string()),
        agent: bob_agent,
        username: "bob".into(),
        tag: "200".into(),
    };
    let answer = lab
        .via_nameserver(
            &bob.agent,
            Method::POST,
            "/login",
            credentials("bob", "200", PASSWORD),
            None,
        )
        .await;
    assert_eq!(answer.expect(200), bob.user());
    alice.login(&node).await;

    let mut sent = vec![
        alice
            .send(&node, &bob.chat(), "hello from a lab of one")
            .await,
    ];
    sent.push(bob.send(&node, &alice.chat(), "hello back").await);
    check_conversation(&bob.get(&node, &alice.chat()).await, &sent);
    let answer = lab
        .via_nameserver(&alice.agent, Method::GET, &bob.chat(), Body::Empty, None)
        .await;
    check_conversation(&answer, &sent);

    let answer = alice.post(&node, "/groups", json!({"name": "solo"})).await;
    let group = check_group(
        &answer.expect(201),
        "solo",
        &alice.uuid,
        &answer.to_string(),
    );
    alice
        .post(
            &node,
            &format!("/groups/{group}/members"),
            json!({"username": "bob", "tag": "200"}),
        )
        .await
        .expect(201);
    let chat = format!("/groups/{group}/chat");
    let in_group = vec![bob.send(&node, &chat, "in the group").await];
    check_conversation(&alice.get(&node, &chat).await, &in_group);
    assert_eq!(
        bob.get(&node, &alice.path()).await.expect(200),
        alice.user()
    );

    let applied = lab.applied();
    let (_, starts) = lab.log_entries(1);
    assert!(
        starts >= 1,
        "the writer starts its epoch's log with an epoch-start entry"
    );
    assert_eq!(
        applied,
        BTreeMap::from([(1, 7 + starts)]),
        "2 registrations, 2 messages, a group, a member, a group message, and {starts} \
         epoch-start entries"
    );
    let dump = lab.dump(1);
    for person in [&alice, &bob] {
        assert!(dump.contains(&person.uuid), "{dump}");
    }
}

/// SPEC §5: "Bad input gets a 4xx with a clear message, never a 5xx": an oversized body, a
/// forged session, an unknown route; none of them stores anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_stores_nothing() {
    let lab = Lab::ring6(&[]).await;
    let (a, b) = (lab.input(0), lab.input(1));
    let alice = Person::register(&a, "alice", "1111").await;
    let bob = Person::register(&b, "bob", "2222").await;
    alice.login(&a).await;
    bob.login(&b).await;
    alice.send(&a, &bob.chat(), "before the bad input").await;
    lab.wait_replicated();
    let before = lab.state();
    let anonymous = Agent::new();
    let too_big = "x".repeat(BODY_LIMIT + 1024);

    // Bodies over the limit: 413 (a 400 would do), whoever sends them, wherever.
    let oversized = [
        (
            &anonymous,
            "/register".to_string(),
            json!({"username": "big", "tag": "123", "password": too_big}),
        ),
        (&alice.agent, bob.chat(), json!({ "content": too_big })),
        (
            &alice.agent,
            "/groups".to_string(),
            json!({ "name": too_big }),
        ),
    ];
    for (agent, path, body) in &oversized {
        for input in [&a, &b] {
            let answer = agent
                .at(input, Method::POST, path, Body::Json(body.clone()))
                .await;
            let status = answer.status;
            assert!(
                status == 413 || status == 400,
                "{}: {status} for a body over {BODY_LIMIT} bytes",
                answer.request
            );
            answer.refused(status);
            lab.assert_unchanged(&before, &answer.request);
        }
        let answer = lab
            .via_nameserver(agent, Method::POST, path, Body::Json(body.clone()), None)
            .await;
        assert!(answer.status == 413 || answer.status == 400, "{answer}");
        lab.assert_unchanged(&before, &answer.request);
    }

    // A forged session: bob's identity under alice's signature, garbage, a cut signature.
    let token = alice.session(&a).expect("alice's session");
    let (_, mac) = token.split_once('.').expect("payload.mac");
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
        + 3_600_000;
    let claim = json!({"uuid": bob.uuid, "username": "bob", "tag": "2222", "exp": exp, "seq": 0});
    let forgeries = [
        format!("{}.{mac}", base64url(claim.to_string().as_bytes())),
        format!("{}.{}", &token[..token.len() - 4], "AAAA"),
        "abc.def".to_string(),
        "not a token".replace(' ', "-"),
    ];
    for forged in &forgeries {
        for input in [&a, &b] {
            let agent = Agent::with_session(&input.base, forged);
            agent
                .at(input, Method::GET, "/groups", Body::Empty)
                .await
                .refused(401);
            agent
                .at(input, Method::GET, &alice.chat(), Body::Empty)
                .await
                .refused(401);
            agent
                .at(
                    input,
                    Method::POST,
                    &alice.chat(),
                    Body::Json(json!({"content": "forged"})),
                )
                .await
                .refused(401);
            agent
                .at(
                    input,
                    Method::DELETE,
                    &format!("/users/{}", bob.uuid),
                    Body::Empty,
                )
                .await
                .refused(401);
            lab.assert_unchanged(&before, &format!("forged session {forged:?}"));
        }
    }
    // The genuine token still works.
    let genuine = Agent::with_session(&b.base, &token);
    let answer = genuine.at(&b, Method::GET, &bob.chat(), Body::Empty).await;
    assert_eq!(answer.expect(200)[0]["content"], "before the bad input");

    // Unknown routes and methods.
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::GET, "/users/alice/1111/chat/more"),
        (Method::GET, "/users/alice/12"),
        (Method::DELETE, "/groups/x/members/y/z"),
    ] {
        for input in [&a, &b] {
            alice
                .agent
                .at(input, method.clone(), path, Body::Json(json!({})))
                .await
                .refused(404);
        }
    }
    lab.assert_unchanged(&before, "the unknown routes");
    let dump = lab.dump(lab.writer);
    assert!(!dump.contains("forged") && !dump.contains("xxxxxxxx"));
}

/// The writer dies under a write. The input node had forwarded it toward the writer, so when the
/// lab re-elects it answers at once 504, outcome unknown (SPEC §6), saying so, well before its
/// own timeout. Once the survivors have elected a new writer, writes go on through it: a new user
/// registers, logs in and posts. (Whether alice's data survived depends on whether the new writer
/// held a copy: with `replicas` durability only the persistence replicas do; keeping every
/// acknowledged write across a failover is the view change's work, SPEC §6.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_when_the_writer_dies_is_504_then_the_new_writer_takes_writes() {
    let lab = Lab::up("ring6.toml", &[]).await;
    let input = lab.input(0);
    let alice = Person::register(&input, "alice", "100").await;
    alice.login(&input).await;
    alice
        .post(&input, &alice.chat(), json!({"content": "before"}))
        .await
        .expect(201);

    // The input node holds alice's last write before the writer dies, so it checks her
    // session from its own copy and forwards the write to the writer: the path under test. (A
    // session it could only check at the dead writer would be a read that never reached it:
    // 503, as it should be.)
    let status = poll(Duration::from_secs(10), "the input node caught up", || {
        let status = lab.home.status(&lab.name);
        let applied = |id: u64| status.addresses[&id.to_string()].applied;
        if applied(input.id) >= applied(lab.writer) && applied(lab.writer) > 0 {
            Ok(status)
        } else {
            Err(format!(
                "input {} applied {}, writer {} applied {}",
                input.id,
                applied(input.id),
                lab.writer,
                applied(lab.writer)
            ))
        }
    });
    let writer_pid = status.node_pids()[&lab.writer];
    live_util::sigkill(writer_pid);
    lab.home.remember([writer_pid]);

    let started = Instant::now();
    let answer = alice
        .post(&input, &alice.chat(), json!({"content": "anyone there?"}))
        .await;
    // SPEC §6: a write held when the epoch changes is answered at once: 504 (outcome unknown)
    // if it was forwarded toward the writer, 503 if it never was (the input node first checks
    // the session; on a busy machine the epoch may change before the write leaves). A 503 is
    // never followed by the write appearing: checked after the failover.
    let never_sent = answer.status == 503;
    if never_sent {
        let message = answer.refused(503);
        assert!(message.contains("electing"), "{answer}");
    } else {
        let message = answer.refused(504);
        assert!(
            message.contains("may yet be done"),
            "{answer}: the 504 should say the outcome is unknown"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the answer came only after {:?}: the epoch change should answer it at once",
        started.elapsed()
    );

    // The survivors elect the next smallest id; writes go through the new writer.
    let status = poll(
        READY_DEADLINE,
        "a new writer and its input nodes serving",
        || {
            // `status` exits 1 while the lab re-elects: read its report all the same.
            let run = lab.home.labctl(&["status", &lab.name, "--json"]);
            let status: Status = parse_one_line(&run);
            let serving = status.report.roles.iter().all(|(id, roles)| {
                !roles.contains(&Role::Input) || status.addresses[id].http.is_some()
            });
            match status.report.leader {
                Some(leader) if status.report.converged && serving && leader != lab.writer => {
                    Ok(status)
                }
                other => Err(format!(
                    "leader {other:?}, converged {}",
                    status.report.converged
                )),
            }
        },
    );
    let (id, address) = status
        .addresses
        .iter()
        .find(|(id, _)| {
            status
                .report
                .roles
                .get(*id)
                .is_some_and(|r| r.contains(&Role::Input))
        })
        .expect("an input node");
    let input = Input {
        id: id.parse().unwrap(),
        base: format!("http://{}", address.http.clone().unwrap()),
    };
    let bob = Person::register(&input, "bob", "200").await;
    bob.login(&input).await;
    bob.post(
        &input,
        &bob.chat(),
        json!({"content": "after the failover"}),
    )
    .await
    .expect(201);
    if never_sent {
        let chat = alice.get(&input, &alice.chat()).await;
        assert_eq!(chat.status, 200, "{chat}");
        assert!(chat.text.contains("before"), "{chat}");
        assert!(
            !chat.text.contains("anyone there?"),
            "a write answered 503 appeared after all: {chat}"
        );
    }
}

/// The chat end to end on a Docker lab: ring6 with every daemon in its own container, reached as
/// a program on the host would reach it, through the nameserver's port published on the host's
/// loopback and the input nodes' container addresses it redirects to. The most representative
/// scenarios above run on it in a row (each registers users of its own, so they share the lab):
/// registering and logging in through the nameserver, a session from one input node valid at the
/// other, private messages read-your-writes across input nodes, a group chat, then the writer's
/// and the persistence replicas' databases (bind-mounted at `<folder>/nodes/<id>/node.db`)
/// identical row for row. Once the lab's guard has run `labctl down --all`, nothing labelled
/// with the lab is left in the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_lab_serves_the_chat_through_the_published_nameserver() {
    common::lab_image();
    // Container and network names are global to the engine: the name carries this process's id.
    let name = format!("t{}-chat", std::process::id());
    let lab = Lab::ring6_on(Runtime::Docker, &["--name", &name]).await;
    assert_eq!(lab.name, name);
    let engine = labelled_in_engine(&name).await;
    assert!(
        engine.containers.contains(&format!("{name}-nameserver")),
        "the lab runs in the engine, labelled labctl.lab={name}: {engine:?}"
    );

    let started = Instant::now();
    sessions_hold_at_every_input_node(&lab).await;
    private_messages_read_your_writes(&lab).await;
    group_chat_permissions(&lab).await;
    writes_replicate_to_identical_databases(&lab).await;
    eprintln!(
        "docker lab {name}: the scenarios took {:?}",
        started.elapsed()
    );

    let folder = lab.folder.clone();
    drop(lab);
    let left = labelled_in_engine(&name).await;
    assert!(
        left.is_empty(),
        "after `labctl down --all`, the engine still holds {left:?}"
    );
    assert!(!folder.exists(), "the lab's folder {folder:?} is removed");
}
