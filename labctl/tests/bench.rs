//! End-to-end tests of `labctl bench http`: the real binary loading a real one-node lab, and its
//! errors (no lab, no nameserver, no live input node, a failing registration) against records
//! and a stand-in nameserver made here; and of `labctl bench failover` on a real ring6.
//!
//! Every command runs with `LABCTL_HOME` set to the test's own temporary folder, whose guard
//! runs `labctl down --all` (and SIGKILLs any daemon left) when the test ends, pass or fail.

mod common;
// The live-lab helpers; this file uses only part of them.
#[allow(dead_code)]
mod live_util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use common::{parse_one_line, topology_file};
use live_util::Home;
use serde::Deserialize;

/// How many tags one registration tries (`chat_client::TAG_ATTEMPTS`).
const TAG_ATTEMPTS: usize = 20;

/// What `labctl bench http --json` prints (the fields these tests read).
#[derive(Debug, Deserialize)]
struct BenchReport {
    lab: String,
    via: String,
    clients: u32,
    duration_s: f64,
    reads: Kind,
    writes: Kind,
    errors: BTreeMap<String, u64>,
    failed: u64,
    requests: u64,
    passed: bool,
    live_inputs: usize,
    inputs: Vec<InputUse>,
    target_rate: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Kind {
    count: u64,
    per_s: f64,
    p50_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct InputUse {
    id: Option<u64>,
    http_address: String,
    requests: u64,
    errors: u64,
}

/// Checks one kind's figures: some requests, ordered percentiles, the rate the count gives.
fn check_kind(kind: &Kind, duration_s: f64, context: &str) {
    assert!(kind.count > 0, "{context}: no successful request: {kind:?}");
    let [p50, p90, p99, max] = [kind.p50_ms, kind.p90_ms, kind.p99_ms, kind.max_ms]
        .map(|p| p.unwrap_or_else(|| panic!("{context}: a percentile is missing: {kind:?}")));
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{context}: percentiles out of order: {kind:?}"
    );
    let rate = kind.count as f64 / duration_s;
    assert!(
        (kind.per_s - rate).abs() <= 1e-6 * rate.max(1.0),
        "{context}: per_s {} but count / duration_s = {rate}",
        kind.per_s
    );
}

/// Checks a run of `bench http --clients 2 --duration 2 --json` on a one-node lab.
fn check_run(report: &BenchReport, via: &str) {
    let context = format!("bench --via {via}");
    assert_eq!(report.lab, "single", "{context}");
    assert_eq!(report.via, via, "{context}");
    assert_eq!(report.clients, 2, "{context}");
    // The load runs for the duration asked, plus at most the requests in flight at the deadline.
    assert!(
        (2.0..15.0).contains(&report.duration_s),
        "{context}: duration_s {}",
        report.duration_s
    );
    assert!(report.errors.is_empty(), "{context}: errors: {report:?}");
    assert_eq!(report.failed, 0, "{context}");
    assert!(report.passed, "{context}");
    check_kind(
        &report.reads,
        report.duration_s,
        &format!("{context}: reads"),
    );
    check_kind(
        &report.writes,
        report.duration_s,
        &format!("{context}: writes"),
    );
    assert_eq!(
        report.requests,
        report.reads.count + report.writes.count,
        "{context}: requests"
    );
    // One node, so one input node, and it answered every request.
    assert_eq!(report.live_inputs, 1, "{context}: {report:?}");
    assert_eq!(report.inputs.len(), 1, "{context}: {report:?}");
    let input = &report.inputs[0];
    assert_eq!(input.id, Some(1), "{context}: {input:?}");
    assert!(
        input.http_address.starts_with("127.0.0.1:"),
        "{context}: {input:?}"
    );
    assert_eq!(input.requests, report.requests, "{context}: {input:?}");
    assert_eq!(input.errors, 0, "{context}: {input:?}");
}

/// `labctl bench http --clients 2 --duration 2 --json` with `more` arguments: its report.
fn bench_json(home: &Home, more: &[&str]) -> BenchReport {
    let mut args = vec![
        "bench",
        "http",
        "--clients",
        "2",
        "--duration",
        "2",
        "--json",
    ];
    args.extend_from_slice(more);
    parse_one_line(&home.labctl(&args).expect_success())
}

#[test]
fn bench_http_loads_a_one_node_lab_through_its_input_node() {
    let home = Home::new();
    home.up(&topology_file("single.toml"), &[]);

    check_run(&bench_json(&home, &[]), "inputs");

    // Again through the nameserver's redirects; the users of the first run keep their tags, so
    // this run's registrations also meet (and step around) taken tags.
    check_run(
        &bench_json(&home, &["single", "--via", "nameserver"]),
        "nameserver",
    );

    // The open loop: 100 requests a second for 2 s leave on schedule whatever the answers, so the
    // count is the schedule's (request i at i × 10 ms, before the deadline), not the service's.
    let report = bench_json(&home, &["--rate", "100"]);
    check_run(&report, "inputs");
    assert_eq!(report.target_rate, Some(100), "{report:?}");
    assert!(
        (199..=200).contains(&report.requests),
        "100 requests/s for 2 s sent {} requests: {report:?}",
        report.requests
    );
    // The human report says which loop ran.
    let run = home
        .labctl(&[
            "bench",
            "http",
            "--clients",
            "1",
            "--duration",
            "1",
            "--rate",
            "20",
        ])
        .expect_success();
    assert!(
        run.stdout.contains("open loop: 20 requests/s scheduled"),
        "{}",
        run.stdout
    );
}

/// The same seed on the same lab, run after run: each run's users find free tags, long after
/// the seed's own first tags (one per run) are taken.
#[test]
fn bench_http_runs_again_and_again_on_one_lab() {
    let home = Home::new();
    home.up(&topology_file("single.toml"), &[]);
    // One more run than a registration tries tags: with the seed's tags alone, the last would
    // find every one of its tries taken.
    for run in 0..=TAG_ATTEMPTS {
        let report = parse_one_line::<BenchReport>(
            &home
                .labctl(&[
                    "bench",
                    "http",
                    "--clients",
                    "1",
                    "--duration",
                    "1",
                    "--rate",
                    "5",
                    "--json",
                ])
                .expect_success(),
        );
        assert!(report.requests > 0, "run {run}: {report:?}");
        assert!(report.errors.is_empty(), "run {run}: {report:?}");
    }
}

#[test]
fn bench_http_without_a_lab_says_so() {
    let home = Home::new();
    home.labctl(&["bench", "http"]).expect_error(&["no lab"]);
}

/// A pid no process can have (above Linux's largest `pid_max`), so cleaning up the fake labs
/// below can never signal anything.
const NO_PID: u32 = 4_194_305;

/// Writes a lab record named `name` whose nameserver serves HTTP at `http` (or has none).
fn fake_lab(home: &Home, name: &str, http: Option<&str>) {
    let folder = home.lab_folder(name);
    std::fs::create_dir_all(&folder).expect("the lab's folder");
    let nameserver =
        http.map(|http| serde_json::json!({"pid": NO_PID, "grpc": "127.0.0.1:1", "http": http}));
    let record = serde_json::json!({
        "name": name,
        "runtime": "process",
        "topology_file": "single.toml",
        "topology": "name = \"single\"\nnodes = [1]\nlinks = []\n",
        "created_unix": 0,
        "bootstrap": null,
        "nameserver": nameserver,
        "nodes": {},
    });
    std::fs::write(folder.join("lab.json"), record.to_string()).expect("the lab's record");
}

#[test]
fn bench_http_on_a_lab_without_nameserver_says_so() {
    let home = Home::new();
    fake_lab(&home, "half", None);
    home.labctl(&["bench", "http", "half"])
        .expect_error(&["lab half has no nameserver"]);
}

/// A stand-in for a nameserver (and input node) on a loopback port: answers each request, one
/// per connection, with `answer(method, path)` = (status line, JSON body).
fn stand_in(answer: fn(&str, &str) -> (&'static str, String)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, body) = answer(method, path);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

#[test]
fn bench_http_with_no_live_input_node_quotes_the_nameserver() {
    let home = Home::new();
    let nameserver = stand_in(|_, path| match path {
        "/_nameserver/inputs" => ("200 OK", r#"{"live": []}"#.to_string()),
        _ => (
            "503 Service Unavailable",
            r#"{"error": "no input node is live: every input node is down"}"#.to_string(),
        ),
    });
    fake_lab(&home, "quiet", Some(&nameserver));
    home.labctl(&["bench", "http", "--wait", "0"])
        .expect_error(&[
            "lab quiet: no live input node",
            "answered 503: no input node is live: every input node is down",
        ]);
}

#[test]
fn bench_http_shows_a_failing_registration() {
    let home = Home::new();
    // The stand-in lists itself as the input node; every registration gets a 503.
    static ADDRESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let address = stand_in(|method, path| match (method, path) {
        ("GET", "/_nameserver/inputs") => (
            "200 OK",
            format!(
                r#"{{"live": [{{"id": 4, "http_address": "{}"}}]}}"#,
                ADDRESS.get().expect("set before any request")
            ),
        ),
        _ => (
            "503 Service Unavailable",
            r#"{"error": "no writer reachable: the tree is being rebuilt"}"#.to_string(),
        ),
    });
    ADDRESS.set(address.clone()).expect("set once");
    fake_lab(&home, "nowriter", Some(&address));
    home.labctl(&["bench", "http", "--clients", "1"])
        .expect_error(&[
            "registering user bench0#",
            "/register answered 503 Service Unavailable: no writer reachable: the tree is being \
             rebuilt",
        ]);
}

/// `labctl bench failover --runs 2`: each run kills the writer, times a neighbour's suspicion,
/// the survivors' convergence and the first write acknowledged after the kill (by the new
/// writer: the old one is dead), restarts it, and leaves the lab whole.
#[test]
fn bench_failover_times_the_first_write_acknowledged_by_the_new_writer() {
    let home = Home::new();
    home.up(&topology_file("ring6.toml"), &[]);
    let run = home
        .labctl(&["bench", "failover", "--runs", "2", "--rest", "1", "--json"])
        .expect_success();
    let report: serde_json::Value = parse_one_line(&run);
    assert_eq!(report["error"], serde_json::Value::Null, "{report}");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    for run in runs {
        let ms = |name: &str| {
            run[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {run}"))
        };
        assert_eq!(run["writer"], 1, "ring6's writer is node 1: {run}");
        assert!(ms("suspected_ms") > 0, "{run}");
        // No new writer before anyone suspected the old one; the lab converges, and writes,
        // within the run's timeout.
        assert!(ms("written_ms") >= ms("suspected_ms"), "{run}");
        assert!(
            ms("written_ms") < 15_000 && ms("converged_ms") < 15_000,
            "{run}"
        );
    }
    for figure in ["suspected_ms", "converged_ms", "written_ms", "rejoined_ms"] {
        let summary = &report[figure];
        let (median, worst) = (summary["median"].as_u64(), summary["worst"].as_u64());
        assert!(median.is_some() && median <= worst, "{figure}: {summary}");
    }
    let status = home.status("ring6");
    assert_eq!(
        status.report.leader,
        Some(1),
        "node 1 is back, and the writer"
    );
    assert!(status.report.converged);
}

/// `LABCTL_HOPS=1`: each node of the lab logs, every second, the times of the hops its requests
/// crossed (the breakdown of BENCHMARKS.md comes from these lines): a load through a one-node lab
/// shows its HTTP requests, its local reads, its trips through the data plane and its commits.
#[test]
fn with_labctl_hops_a_node_logs_where_its_requests_time_goes() {
    let home = Home::new().with_env("LABCTL_HOPS", "1");
    home.up(&topology_file("single.toml"), &[]);
    bench_json(&home, &[]);
    let log = home.lab_folder("single").join("logs").join("node-1.log");
    let wanted = [
        "http.get",
        "http.post",
        "ask.read.local",
        "ask.write",
        "plane",
        "store.commit",
    ];
    // Bounded: the summary comes every second; 20 s is a backstop, not a speed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let timed: BTreeSet<&str> = text
            .split("hop times of the last 1 s:")
            .skip(1)
            .flat_map(|block| block.lines().skip(1).take_while(|line| !line.is_empty()))
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        let missing: Vec<&&str> = wanted.iter().filter(|w| !timed.contains(**w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: no hop times for {missing:?} (timed: {timed:?})",
            log.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
