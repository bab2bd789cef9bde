//! No acknowledged write lost (SPEC §4–§6), on live labs: a real HTTP client writes private
//! messages through the nameserver, each with its own `Idempotency-Key`, retrying a 504 or a
//! broken connection with the same key, while `labctl fault` kills the writer and restarts it,
//! partitions ring6 2|4, pauses and resumes the writer, and kills a persistence replica. After
//! each step, reading as the writing user (whose signed session holds the position of her last
//! write) at every input node that can serve her: every acknowledged message is there exactly
//! once, no refused message (a final 503) is there, and no message is there twice. During the
//! partition, a write sent straight to each input node is taken exactly on the side of four.
//! The Docker runtime runs the writer killed and the partition, with the same checks.

mod common;
#[allow(dead_code)]
mod live_util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use labctl_core::{NodeId, Role};
use live_util::{fault_on, inputs, settle_lab, status_of, Home, LiveReport, Part};
use reqwest::cookie::Jar;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long one write is retried (504s, broken connections) before its outcome stays unknown.
const WRITE_DEADLINE: Duration = Duration::from_secs(20);
/// How long a check waits for an input node to serve the reader (during a view change it
/// answers 503: the new writer answers nothing before its epoch-start entry commits).
const READ_DEADLINE: Duration = Duration::from_secs(20);
/// The most writes one client sends (a bound, far above what a test's minute takes).
const MAX_WRITES: u64 = 20_000;
/// A pause between two writes, so the client does not swamp two cores.
const GAP: Duration = Duration::from_millis(15);
const PASSWORD: &str = "a long password";

fn ring6() -> std::path::PathBuf {
    common::topology_file("ring6.toml")
}

fn whole() -> Vec<Part> {
    vec![((1..=6).collect(), Some(1), true)]
}

/// What the client was told about each of its writes, by content.
#[derive(Clone, Debug, Default)]
struct Ledger {
    /// Answered 201: must be stored, once.
    acked: BTreeSet<String>,
    /// Answered 503 at the first attempt: must never appear.
    refused: BTreeSet<String>,
    /// 504s and broken connections until the deadline: stored at most once.
    unknown: BTreeSet<String>,
    /// Anything else: a test failure, with the answer.
    wrong: Vec<String>,
}

/// alice's browser: a cookie jar (her session, with the position of her last write) and a
/// client that does not follow redirects (the nameserver's 307 is followed by hand, so the
/// test sees where each request lands).
#[derive(Clone)]
struct Browser {
    jar: Arc<Jar>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            jar: Arc::new(Jar::default()),
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_provider(self.jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client")
    }
}

/// Sends `method path` (JSON `body`, optional `Idempotency-Key`) to `base`; a 307 from the
/// nameserver is followed once. Returns the status and body, or the transport error.
async fn send(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Result<(StatusCode, String), String> {
    let mut url = format!("{base}{path}");
    for _ in 0..2 {
        let mut request = client
            .request(method.clone(), &url)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = answer.status();
        if status == StatusCode::TEMPORARY_REDIRECT {
            url = answer
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("{url}: a 307 without Location"))?
                .to_string();
            continue;
        }
        let text = answer.text().await.map_err(|e| format!("{url}: {e}"))?;
        return Ok((status, text));
    }
    Err(format!("{url}: redirected twice"))
}

/// The lab as the client reaches it: the nameserver's URL.
struct Chat {
    nameserver: String,
    browser: Browser,
    tokio: tokio::runtime::Runtime,
}

impl Chat {
    /// Registers alice#1111 and bob#2222 through the nameserver and logs alice in.
    fn new(report: &LiveReport) -> Chat {
        let chat = Chat {
            nameserver: report.nameserver.clone(),
            browser: Browser::new(),
            tokio: tokio::runtime::Runtime::new().expect("a tokio runtime"),
        };
        let client = chat.browser.client();
        let steps = [
            ("/register", "alice", "1111", StatusCode::CREATED),
            ("/register", "bob", "2222", StatusCode::CREATED),
            ("/login", "alice", "1111", StatusCode::OK),
        ];
        for (path, name, tag, want) in steps {
            let body = json!({"username": name, "tag": tag, "password": PASSWORD});
            let answer = chat.tokio.block_on(send(
                &client,
                &chat.nameserver,
                reqwest::Method::POST,
                path,
                Some(&body),
                None,
            ));
            assert!(
                matches!(&answer, Ok((status, _)) if *status == want),
                "{path} as {name}: {answer:?}"
            );
        }
        chat
    }

    /// Starts alice writing to bob through the nameserver, until [`Writer::stop`].
    fn start_writing(&self) -> Writer {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (browser, nameserver) = (self.browser.clone(), self.nameserver.clone());
        let thread = {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            std::thread::spawn(move || {
                let tokio = tokio::runtime::Runtime::new().expect("a tokio runtime");
                tokio.block_on(write_until(browser, nameserver, ledger, stop));
            })
        };
        Writer {
            ledger,
            stop,
            thread: Some(thread),
        }
    }

    /// One write of `content` straight to `base` (no retry); its status and body.
    fn write_at(&self, base: &str, content: &str) -> (StatusCode, String) {
        let client = self.browser.client();
        let body = json!({ "content": content });
        let key = format!("key-{content}");
        self.tokio
            .block_on(send(
                &client,
                base,
                reqwest::Method::POST,
                "/users/bob/2222/chat",
                Some(&body),
                Some(&key),
            ))
            .unwrap_or_else(|e| panic!("writing {content:?} at {base}: {e}"))
    }

    /// alice's conversation with bob as input node `base` serves it (retrying 503 and 504 while
    /// a view change is under way): the contents, oldest first.
    fn conversation_at(&self, base: &str) -> Vec<String> {
        let client = self.browser.client();
        let end = Instant::now() + READ_DEADLINE;
        loop {
            let answer = self.tokio.block_on(send(
                &client,
                base,
                reqwest::Method::GET,
                "/users/bob/2222/chat",
                None,
                None,
            ));
            match answer {
                Ok((StatusCode::OK, text)) => {
                    let list: Vec<Value> = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{base}: not a JSON list: {e}: {text}"));
                    return list
                        .iter()
                        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
                        .collect();
                }
                seen if Instant::now() > end => {
                    panic!(
                        "{base} did not serve alice's conversation in {READ_DEADLINE:?}: {seen:?}"
                    )
                }
                Ok((status, _))
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        || status == StatusCode::GATEWAY_TIMEOUT => {}
                Ok((status, text)) => panic!("{base}: reading answered {status}: {text}"),
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The checks of SPEC §6 at every input node of `report` that can serve alice (those whose
    /// component holds the quorum): every message of `ledger.acked` exactly once, none of
    /// `ledger.refused`, nothing twice. Returns how many messages each node showed.
    fn check(&self, report: &LiveReport, ledger: &Ledger, step: &str) -> BTreeMap<NodeId, usize> {
        assert!(ledger.wrong.is_empty(), "{step}: {:?}", ledger.wrong);
        let quorum: BTreeSet<NodeId> = report
            .report
            .components
            .iter()
            .filter(|c| c.quorum)
            .flat_map(|c| c.nodes.iter().copied())
            .collect();
        let mut shown = BTreeMap::new();
        for id in inputs(report).intersection(&quorum) {
            let http = report.addresses[&id.to_string()]
                .http
                .clone()
                .unwrap_or_else(|| panic!("{step}: input node {id} serves no HTTP"));
            let contents = self.conversation_at(&format!("http://{http}"));
            let mut seen = BTreeSet::new();
            for content in &contents {
                assert!(
                    seen.insert(content.clone()),
                    "{step}: node {id} shows {content:?} twice: stored twice"
                );
                assert!(
                    !ledger.refused.contains(content),
                    "{step}: node {id} shows {content:?}, which was refused with 503"
                );
            }
            let missing: Vec<&String> = ledger.acked.difference(&seen).collect();
            assert!(
                missing.is_empty(),
                "{step}: node {id} lacks acknowledged writes {missing:?} ({} acknowledged, {} \
                 shown)",
                ledger.acked.len(),
                contents.len()
            );
            shown.insert(*id, contents.len());
        }
        assert!(!shown.is_empty(), "{step}: no input node to read at");
        shown
    }
}

/// alice writes `w0`, `w1`, … to bob through the nameserver, each with key `key-wN`: 201 is
/// acknowledged; a 503 to the first attempt is refused (the next write takes a new key); a 504
/// or a broken connection is retried with the same key until [`WRITE_DEADLINE`], then unknown.
/// After a 504 a 503 speaks only for its own attempt (the earlier one may yet commit: a node
/// with no writer cannot know), so the write is retried on: its outcome is still unknown, and
/// only the writer that holds the entry, or takes it, can answer it (the simulator's workload
/// keeps the same rule).
async fn write_until(
    browser: Browser,
    nameserver: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let client = browser.client();
    for n in 0..MAX_WRITES {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let content = format!("w{n}");
        let (key, body) = (format!("key-{content}"), json!({ "content": content }));
        let end = Instant::now() + WRITE_DEADLINE;
        let mut maybe_done = false;
        let outcome = loop {
            let answer = send(
                &client,
                &nameserver,
                reqwest::Method::POST,
                "/users/bob/2222/chat",
                Some(&body),
                Some(&key),
            )
            .await;
            match answer {
                Ok((StatusCode::CREATED, _)) => break Some(true),
                Ok((StatusCode::SERVICE_UNAVAILABLE, _)) if !maybe_done => break Some(false),
                Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => {}
                Ok((StatusCode::GATEWAY_TIMEOUT, _)) | Err(_) => maybe_done = true,
                Ok((status, text)) => {
                    ledger
                        .lock()
                        .unwrap()
                        .wrong
                        .push(format!("{content}: {status} {text}"));
                    break None;
                }
            }
            if Instant::now() > end || stop.load(Ordering::Relaxed) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        {
            let mut ledger = ledger.lock().unwrap();
            match outcome {
                Some(true) => ledger.acked.insert(content),
                Some(false) => ledger.refused.insert(content),
                None => ledger.unknown.insert(content),
            };
        }
        tokio::time::sleep(GAP).await;
    }
}

/// The writing client, running on its own thread.
struct Writer {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn ledger(&self) -> Ledger {
        self.ledger.lock().unwrap().clone()
    }

    /// Waits until `more` writes beyond what was acknowledged so far are acknowledged: writes
    /// go on after the step. Returns the ledger then.
    fn more_acked(&self, more: usize, step: &str) -> Ledger {
        let want = self.ledger().acked.len() + more;
        let end = Instant::now() + WRITE_DEADLINE;
        loop {
            let ledger = self.ledger();
            if ledger.acked.len() >= want {
                return ledger;
            }
            assert!(
                Instant::now() < end && ledger.wrong.is_empty(),
                "{step}: writes do not go on: {} acknowledged, {} refused, {} unknown; {:?}",
                ledger.acked.len(),
                ledger.refused.len(),
                ledger.unknown.len(),
                ledger.wrong
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the client once its current write has an outcome; the final ledger.
    fn stop(mut self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writing client");
        }
        self.ledger()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One step: the fault, the components it settles into, then writes going on, then the checks.
fn step(home: &Home, lab: &str, chat: &Chat, writer: &Writer, fault: &[&str], expected: &[Part]) {
    let what = format!("after `labctl fault {}`", fault.join(" "));
    fault_on(home, lab, fault);
    let report = settle_lab(home, lab, expected);
    let ledger = writer.more_acked(3, &what);
    let shown = chat.check(&report, &ledger, &what);
    println!(
        "{what}: {} acknowledged, {} refused, {} unknown; shown {shown:?}",
        ledger.acked.len(),
        ledger.refused.len(),
        ledger.unknown.len()
    );
}

/// The 2|4 partition: a write straight to each input node is taken exactly on the side of four,
/// and refused with the counts on the side of two; then the partition heals.
fn partition(home: &Home, lab: &str, chat: &Chat, writer: &Writer, direct: &mut Ledger) {
    step(
        home,
        lab,
        chat,
        writer,
        &["partition", "1,2", "3,4,5,6"],
        &[
            (vec![1, 2], Some(1), false),
            (vec![3, 4, 5, 6], Some(3), true),
        ],
    );
    let report = status_of(home, lab);
    for id in inputs(&report) {
        let http = report.addresses[&id.to_string()].http.clone().unwrap();
        let content = format!("direct-to-{id}");
        let (status, body) = chat.write_at(&format!("http://{http}"), &content);
        if id >= 3 {
            assert_eq!(status, StatusCode::CREATED, "{content}: {body}");
            direct.acked.insert(content);
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{content}: {body}");
            assert!(
                body.contains("holds 2 of 6 nodes; writes need 4"),
                "{content}: {body}"
            );
            direct.refused.insert(content);
        }
    }
    assert!(
        !direct.acked.is_empty() && !direct.refused.is_empty(),
        "both sides have input nodes: {:?}",
        inputs(&report)
    );
    step(home, lab, chat, writer, &["heal", "--all"], &whole());
}

/// The final checks: the client stopped, every input node shows the same conversation, with
/// every acknowledged write (the client's and the direct ones) once and no refused one.
fn finish(home: &Home, lab: &str, chat: &Chat, writer: Writer, direct: &Ledger) {
    let mut ledger = writer.stop();
    ledger.acked.extend(direct.acked.iter().cloned());
    ledger.refused.extend(direct.refused.iter().cloned());
    let report = settle_lab(home, lab, &whole());
    let shown = chat.check(&report, &ledger, "at the end");
    let sizes: BTreeSet<usize> = shown.values().copied().collect();
    assert_eq!(sizes.len(), 1, "every input node shows the same: {shown:?}");
    println!(
        "at the end: {} acknowledged, {} refused, {} unknown; shown {shown:?}",
        ledger.acked.len(),
        ledger.refused.len(),
        ledger.unknown.len()
    );
    assert!(ledger.acked.len() >= 20, "{ledger:?}");
}

#[test]
fn no_acknowledged_write_is_lost_through_kill_partition_pause_and_a_replica_killed() {
    let home = Home::new();
    let up = home.up(&ring6(), &[]);
    assert_eq!(up.report.leader, Some(1));
    let chat = Chat::new(&up);
    let writer = chat.start_writing();
    writer.more_acked(5, "before any fault");
    let lab = "ring6";
    let survivors: Vec<Part> = vec![((2..=6).collect(), Some(2), true)];

    step(&home, lab, &chat, &writer, &["kill", "1"], &survivors);
    step(&home, lab, &chat, &writer, &["restart", "1"], &whole());
    let mut direct = Ledger::default();
    partition(&home, lab, &chat, &writer, &mut direct);
    step(&home, lab, &chat, &writer, &["pause", "1"], &survivors);
    step(&home, lab, &chat, &writer, &["resume", "1"], &whole());

    let report = status_of(&home, lab);
    let replica: NodeId = report
        .report
        .roles
        .iter()
        .find(|(_, roles)| roles.contains(&Role::Persistence))
        .map(|(id, _)| id.parse().unwrap())
        .expect("ring6 has persistence replicas");
    let rest: Vec<NodeId> = (1..=6).filter(|&n| n != replica).collect();
    let replica = replica.to_string();
    step(
        &home,
        lab,
        &chat,
        &writer,
        &["kill", &replica],
        &[(rest, Some(1), true)],
    );
    step(&home, lab, &chat, &writer, &["restart", &replica], &whole());
    finish(&home, lab, &chat, writer, &direct);
}

#[test]
fn docker_no_acknowledged_write_is_lost_when_the_writer_is_killed_or_partitioned() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    let lab = format!("t{}-durable", std::process::id());
    let up = home.up(&ring6(), &["--name", &lab]);
    let chat = Chat::new(&up);
    let writer = chat.start_writing();
    writer.more_acked(5, "before any fault");
    let survivors: Vec<Part> = vec![((2..=6).collect(), Some(2), true)];
    step(&home, &lab, &chat, &writer, &["kill", "1"], &survivors);
    step(&home, &lab, &chat, &writer, &["restart", "1"], &whole());
    let mut direct = Ledger::default();
    partition(&home, &lab, &chat, &writer, &mut direct);
    finish(&home, &lab, &chat, writer, &direct);
    home.labctl(&["down", &lab]).expect_success();
    assert!(live_util::labelled_in_engine_now(&lab).is_empty());
}
