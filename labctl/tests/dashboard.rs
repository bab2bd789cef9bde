//! `labctl dashboard` (SPEC §9) on a live process lab: its API against `labctl status --json` and
//! `labctl fault` (same report, same refusals), its server-sent events, and the page in a real
//! headless browser (Debian's `chromium`, never skipped): the leader and roles shown, "kill"
//! pressed on the writer, a new epoch and a new writer seen; screenshots under
//! `target/test-artifacts/`.

mod common;
#[allow(dead_code)]
mod live_util;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{topology_file, LABCTL};
use headless_chrome::protocol::cdp::Page as Cdp;
use live_util::Home;
use serde_json::Value;

/// A running `labctl dashboard`, stopped (by its pid, SIGINT then SIGKILL) when dropped.
struct Dashboard {
    child: Child,
    url: String,
}

impl Dashboard {
    fn start(home: &Home, lab: &str) -> Dashboard {
        let mut child = Command::new(LABCTL)
            .args(["dashboard", lab, "--port", "0"])
            .env("LABCTL_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("labctl dashboard starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("the dashboard says where it listens: {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Dashboard { child, url }
    }
}

impl Dashboard {
    /// Ctrl-C, as a teacher stops it: it exits 0 within 5 s, even with a browser still reading
    /// its events.
    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the dashboard exited {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not stop within 5 s of Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // stopped already (its pid may be another process's now)
        }
        // Ctrl-C stops it cleanly; it must be gone soon after.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server-sent event stream, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next `report` event's data (other events skipped), within 20 s.
    async fn next_report(&mut self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.strip_prefix("event: report\ndata: ") {
                    return serde_json::from_str(data.trim_end()).unwrap();
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("a report event within 20 s")
                .unwrap()
                .expect("the event stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A report without what changes at every ask (the dashboard's own rule).
fn steady(report: Value) -> Value {
    labctl_dashboard::server::steady(&report)
}

/// `labctl args` with this home: (exit code, stdout, stderr).
fn cli(home: &Home, args: &[&str]) -> (Option<i32>, String, String) {
    let run = home.labctl(args);
    (run.code, run.stdout, run.stderr)
}

#[test]
fn the_api_serves_the_status_report_events_and_the_clis_refusals() {
    let home = Home::new();
    home.up(&topology_file("ring6.toml"), &[]);
    let dashboard = Dashboard::start(&home, "ring6");
    let http = reqwest::Client::new();
    runtime().block_on(async {
        // GET /api/report is `labctl status --json`. Compared while the lab is quiet: the same
        // report from the API just before and just after the CLI's (an input node starts its
        // HTTP service a moment after `up` returns).
        let report = async || -> Value {
            http.get(format!("{}/api/report", dashboard.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        };
        let mut api = Value::Null;
        for attempt in 1.. {
            let before = report().await;
            let (code, stdout, _) = cli(&home, &["status", "ring6", "--json"]);
            assert_eq!(code, Some(0));
            let status: Value = serde_json::from_str(stdout.trim()).unwrap();
            api = report().await;
            if steady(before) == steady(api.clone()) {
                assert_eq!(steady(api.clone()), steady(status));
                break;
            }
            assert!(attempt < 50, "the lab never kept still for one status");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(api["leader"], 1);

        // A fault the lab refuses: 422 with the CLI's own message, and nothing changes.
        for (body, args) in [
            (
                r#"{"action":"kill","node":99}"#,
                &["fault", "kill", "99", "--lab", "ring6"][..],
            ),
            (
                r#"{"action":"cut","a":1,"b":3}"#,
                &["fault", "cut", "1", "3", "--lab", "ring6"][..],
            ),
            (
                r#"{"action":"heal","a":1,"b":2}"#,
                &["fault", "heal", "1", "2", "--lab", "ring6"][..],
            ),
        ] {
            let answer = http
                .post(format!("{}/api/faults", dashboard.url))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 422, "{body}");
            let error: Value = answer.json().await.unwrap();
            let (code, _, stderr) = cli(&home, args);
            assert_eq!(code, Some(2));
            assert_eq!(
                format!("labctl: {}\n", error["error"].as_str().unwrap()),
                stderr,
                "{body}"
            );
        }
        // Not a fault object at all: 400, saying what one looks like.
        for body in [
            "{",
            "[]",
            r#"{"action":"explode","node":1}"#,
            r#"{"action":"kill"}"#,
        ] {
            let answer = http
                .post(format!("{}/api/faults", dashboard.url))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 400, "{body}");
            let error: Value = answer.json().await.unwrap();
            assert!(
                error["error"].as_str().unwrap().contains("fault object"),
                "{error}"
            );
        }
        let (_, stdout, _) = cli(&home, &["status", "ring6", "--json"]);
        let status: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(status["faults"], serde_json::json!([]), "nothing changed");

        // The events: the report now, then a new one when a fault changes it.
        let response = http
            .get(format!("{}/api/events", dashboard.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut events = Events {
            response,
            buffer: String::new(),
        };
        let mut reports: Vec<Value> = Vec::new();
        let first = events.next_report().await;
        assert_eq!(first["leader"], 1);
        let applied: Value = http
            .post(format!("{}/api/faults", dashboard.url))
            .body(r#"{"action":"pause","node":4}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(applied["applied"]["action"], "pause");
        assert_eq!(applied["faults"][0]["action"], "pause");
        // Reports follow until the lab shows node 4 paused; each differs from the one before.
        loop {
            let report = events.next_report().await;
            if let Some(last) = reports.last() {
                assert_ne!(steady(last.clone()), steady(report.clone()));
            }
            let paused = report["addresses"]["4"]["state"] == "paused";
            reports.push(report);
            if paused {
                break;
            }
            assert!(reports.len() < 100, "no report showed node 4 paused");
        }
        drop(events);
        let healed = http
            .post(format!("{}/api/faults", dashboard.url))
            .body(r#"{"action":"heal-all"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(healed.status().as_u16(), 200);
    });
}

#[test]
fn the_page_shows_the_lab_and_kills_its_writer_with_a_click() {
    let home = Home::new();
    home.up(&topology_file("ring6.toml"), &[]);
    let dashboard = Dashboard::start(&home, "ring6");

    let profile = tempfile::tempdir().unwrap();
    let browser = common::headless_chromium(profile.path(), (1200, 900), &[]);
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(15));
    tab.navigate_to(&format!("{}/", dashboard.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let read = |script: &str| -> String {
        tab.evaluate(script, false)
            .unwrap()
            .value
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let wait_for = |what: &str, script: &str, want: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = read(script);
            if want(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {now:?} after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    let node = |id: u64, attribute: &str| {
        format!("document.getElementById('node-{id}').getAttribute('{attribute}')")
    };
    wait_for("the leader shown", &text("leader"), &|t| t == "1");
    let epoch: u64 = read(&text("epoch")).parse().unwrap();
    assert!(read(&node(1, "data-roles")).contains("writer"));
    for id in 2..=6 {
        assert!(
            !read(&node(id, "data-roles")).is_empty(),
            "node {id} shows its roles"
        );
    }
    assert_eq!(read(&text("converged")), "converged");
    assert!(read("document.getElementById('chat').getAttribute('href')")
        .starts_with("http://127.0.0.1:"));
    let before = tab
        .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(common::artifacts().join("dashboard-ring6.png"), before).unwrap();

    // Select the writer and press "kill".
    assert_eq!(
        read("document.getElementById('fault-kill').disabled"),
        "true"
    );
    tab.find_element("#node-1 circle").unwrap().click().unwrap();
    assert_eq!(read(&text("selection")), "node 1");
    tab.find_element("#fault-kill").unwrap().click().unwrap();
    wait_for("node 1 shown down", &node(1, "data-state"), &|s| {
        s == "down"
    });
    wait_for("a new writer", &text("leader"), &|t| t == "2");
    let after: u64 = read(&text("epoch")).parse().unwrap();
    assert!(after > epoch, "a new epoch: {after} after {epoch}");
    wait_for("converged again", &text("converged"), &|t| t == "converged");
    assert!(read(&node(2, "data-roles")).contains("writer"));
    assert!(read(&text("message")).starts_with("applied:"));
    // The history holds both epochs, the new one with its failover time.
    let rows = wait_for(
        "two epochs in the history",
        "document.querySelectorAll('#history tr').length",
        &|n| n == "3",
    );
    assert_eq!(rows, "3");
    let failover =
        read("document.querySelector('#history tr:nth-child(2) td:nth-child(4)').textContent");
    assert!(failover.ends_with(" ms"), "{failover}");
    let shot = tab
        .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(
        common::artifacts().join("dashboard-ring6-after-kill.png"),
        shot,
    )
    .unwrap();
    dashboard.stop();
}
