//! A real browser against a live lab (SPEC §5): Debian's `chromium`, headless, driven over the
//! DevTools protocol (`headless_chrome`, never downloading a browser of its own), registers, logs
//! in and chats through the nameserver's URL, exactly as a person would, while a second user
//! answers through the JSON API.
//!
//! What it checks: the nameserver's 307 lands the browser on an input node; the register form
//! leads to the login form, the login form to the main page; the main page's "start a chat" form
//! opens the conversation; a message typed and sent appears at once; a reply sent by the other
//! user through the API appears without a reload (the page polls every 2 s); markup in a message
//! is shown as text, both when the script appends it and when the server renders it; the page
//! loads nothing but `127.0.0.1` and throws no script error. The final conversation is saved as
//! PNG screenshots (desktop and phone width) under `target/test-artifacts/`.
//!
//! Chromium is required, never skipped: without it the test fails and says how to install it
//! (`.ci/run` installs it on CI).

mod common;
// This test uses only part of the live-lab helpers.
#[allow(dead_code)]
mod live_util;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::topology_file;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Network, Page as Cdp};
use headless_chrome::{Browser, LaunchOptions, Tab};
use labctl_core::Role;
use live_util::Home;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long the lab may take, after `up`, until every input node serves HTTP and the nameserver
/// knows them all.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long one step in the browser (a page load, a message appearing) may take.
const STEP_DEADLINE: Duration = Duration::from_secs(15);

/// How long a message sent by someone else may take to appear: the page polls every 2 s.
const POLLED_DEADLINE: Duration = Duration::from_secs(10);

/// How often to look again at the lab or the page.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The PNG signature.
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The smallest screenshot taken as a real page rather than a blank or broken one.
const MIN_SCREENSHOT_BYTES: usize = 10 * 1024;

/// The two users: the one in the browser, and the one answering through the API.
const ALICE: (&str, &str) = ("alice", "1234");
const BOB: (&str, &str) = ("bob", "4242");
const PASSWORD: &str = "correct horse battery staple";

// --- the browser --------------------------------------------------------------------------------

/// Flags that keep the browser quiet on the network: no first-run, sync, component or other
/// background traffic, no proxy, and no name resolution except for loopback (the test only
/// ever loads `http://127.0.0.1:…`).
const BROWSER_FLAGS: [&str; 9] = [
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--hide-scrollbars",
];

/// The browser's own profile folder. On drop (after the browser's), it waits for every process
/// started with it (chromium's helpers may outlive the browser process by a moment), kills any
/// that stays, and only then lets the folder be removed.
struct Profile(tempfile::TempDir);

impl Profile {
    fn new() -> Profile {
        let dir = tempfile::Builder::new()
            .prefix("labctl-browser-profile-")
            .tempdir()
            .expect("a temporary browser profile");
        Profile(dir)
    }

    /// The live processes whose command line names this folder.
    fn users(&self) -> Vec<u32> {
        let needle = self.0.path().as_os_str().as_encoded_bytes();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| live_util::is_alive(pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|line| line.windows(needle.len()).any(|w| w == needle))
            })
            .collect()
    }

    /// Polls until no process names this folder; returns those still alive at the deadline.
    fn wait_unused(&self) -> Vec<u32> {
        let start = Instant::now();
        loop {
            let users = self.users();
            if users.is_empty() || start.elapsed() >= STEP_DEADLINE {
                return users;
            }
            std::thread::sleep(LOOK_AGAIN);
        }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let left = self.wait_unused();
        if !left.is_empty() {
            eprintln!("browser processes {left:?} outlived the browser: SIGKILLing them");
            left.into_iter().for_each(live_util::sigkill);
        }
    }
}

/// Starts headless chromium (no sandbox: CI runs as root) with the profile folder `profile`.
fn launch(chromium: PathBuf, profile: &Profile) -> Browser {
    let shown = chromium.display().to_string();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium))
        .user_data_dir(Some(profile.0.path().to_path_buf()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(BROWSER_FLAGS.iter().map(OsStr::new).collect())
        .build()
        .expect("launch options");
    Browser::new(options).unwrap_or_else(|e| panic!("cannot start {shown} headless: {e:#}"))
}

/// One tab, with what it saw: every URL it requested and every uncaught script error.
struct Page {
    tab: Arc<Tab>,
    requests: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Page {
    fn open(browser: &Browser) -> Page {
        let tab = browser.new_tab().expect("a new tab");
        tab.set_default_timeout(STEP_DEADLINE);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (seen, thrown) = (requests.clone(), errors.clone());
        tab.add_event_listener(Arc::new(move |event: &Event| match event {
            Event::NetworkRequestWillBeSent(sent) => {
                seen.lock().unwrap().push(sent.params.request.url.clone());
            }
            Event::RuntimeExceptionThrown(thrown_event) => {
                let details = &thrown_event.params.exception_details;
                let what = details
                    .exception
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or_else(|| details.text.clone());
                thrown.lock().unwrap().push(format!(
                    "{what} at {}:{}",
                    details.url.clone().unwrap_or_default(),
                    details.line_number
                ));
            }
            _ => {}
        }))
        .expect("an event listener");
        tab.call_method(Network::Enable {
            max_total_buffer_size: None,
            max_resource_buffer_size: None,
            max_post_data_size: None,
            report_direct_socket_traffic: None,
            enable_durable_messages: None,
        })
        .expect("Network.enable");
        tab.enable_runtime().expect("Runtime.enable");
        Page {
            tab,
            requests,
            errors,
        }
    }

    /// Evaluates `expression` in the page; `Err` while the page is between documents.
    fn eval(&self, expression: &str) -> Result<Value, String> {
        self.eval_with(expression, false)
    }

    /// As [`Page::eval`], waiting for the promise `expression` gives.
    fn eval_with(&self, expression: &str, await_promise: bool) -> Result<Value, String> {
        let object = self
            .tab
            .evaluate(expression, await_promise)
            .map_err(|e| format!("{e:#}"))?;
        Ok(object.value.unwrap_or(Value::Null))
    }

    /// Evaluates a JavaScript expression that returns a string of JSON, and reads it.
    fn eval_json<T: serde::de::DeserializeOwned>(&self, expression: &str) -> T {
        let text = self
            .eval(expression)
            .unwrap_or_else(|e| panic!("{}: {expression}: {e}", self.describe()));
        let text = text.as_str().unwrap_or_else(|| {
            panic!(
                "{}: {expression} gave {text}, not a string",
                self.describe()
            )
        });
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{}: {expression} gave {text:?}: {e}", self.describe()))
    }

    /// The address the page shows now.
    fn href(&self) -> String {
        match self.eval("location.href") {
            Ok(Value::String(href)) => href,
            _ => self.tab.get_url(),
        }
    }

    /// Where the page is and what it says, for failure messages.
    fn describe(&self) -> String {
        let text = match self.eval("document.body ? document.body.innerText : ''") {
            Ok(Value::String(text)) => text,
            other => format!("(no text: {other:?})"),
        };
        format!("page {} saying {text:?}", self.href())
    }

    /// Polls until the JavaScript `predicate` is `true`, up to `deadline`; panics saying `what`
    /// did not happen and showing the page otherwise.
    fn wait_until(&self, what: &str, predicate: &str, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.eval(predicate) == Ok(Value::Bool(true)) {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                panic!(
                    "{what}: not within {deadline:?}\n{}\n(waited for: {predicate})",
                    self.describe()
                );
            }
            std::thread::sleep(LOOK_AGAIN);
        }
    }

    /// Waits for the document at `path` to have finished loading and to show `selector`.
    fn wait_for_page(&self, what: &str, path: &str, selector: &str) {
        let predicate = format!(
            "location.pathname === {} && document.readyState === 'complete' \
             && document.querySelector({}) !== null",
            json!(path),
            json!(selector)
        );
        self.wait_until(what, &predicate, STEP_DEADLINE);
    }

    /// Loads `url` and waits for the document at `path` to show `selector`.
    fn go(&self, url: &str, path: &str, selector: &str) {
        self.tab
            .navigate_to(url)
            .unwrap_or_else(|e| panic!("cannot load {url}: {e:#}"));
        self.wait_for_page(&format!("loading {url}"), path, selector);
    }

    /// Replaces the value of the field `selector` by `text`, entered as the keyboard's input
    /// method enters text (`Input.insertText`: one `input` event, as a paste or an IME commit;
    /// typing key by key costs a DevTools round trip per key).
    fn fill(&self, selector: &str, text: &str) {
        let field = self
            .tab
            .wait_for_element(selector)
            .unwrap_or_else(|e| panic!("{}: no field {selector}: {e:#}", self.describe()));
        field
            .call_js_fn("function () { this.value = ''; }", vec![], false)
            .and_then(|_| field.click())
            .and_then(|_| self.tab.send_character(text))
            .unwrap_or_else(|e| panic!("cannot type into {selector}: {e:#}"));
        let value = self.eval(&format!(
            "document.querySelector({}).value",
            json!(selector)
        ));
        assert_eq!(
            value,
            Ok(json!(text)),
            "{}: {selector} should hold what was typed",
            self.describe()
        );
    }

    /// Clicks the element `selector` (the mouse, at its middle).
    fn click(&self, selector: &str) {
        self.tab
            .wait_for_element(selector)
            .and_then(|element| element.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("{}: cannot click {selector}: {e:#}", self.describe()));
    }

    /// The value of the field `selector`.
    fn value(&self, selector: &str) -> Value {
        self.eval(&format!(
            "document.querySelector({}).value",
            json!(selector)
        ))
        .unwrap_or_else(|e| panic!("{}: {e}", self.describe()))
    }

    /// The text of the first element `selector`.
    fn text(&self, selector: &str) -> String {
        let value = self.eval(&format!(
            "(document.querySelector({0}) || {{ innerText: '(no ' + {0} + ')' }}).innerText",
            json!(selector)
        ));
        match value {
            Ok(Value::String(text)) => text,
            other => panic!("{}: text of {selector}: {other:?}", self.describe()),
        }
    }

    /// The messages the conversation shows now, top to bottom.
    fn messages(&self) -> Vec<Shown> {
        self.eval_json(
            "JSON.stringify(Array.from(document.querySelectorAll('#messages li.msg'), li => ({ \
                author: li.querySelector('.meta strong').textContent, \
                time: li.querySelector('.meta time').textContent, \
                text: li.querySelector('p').textContent, \
                html: li.querySelector('p').innerHTML, \
                mine: li.classList.contains('mine') })))",
        )
    }

    /// Waits until the conversation shows a message with exactly `text`; returns how long it took.
    fn wait_for_message(&self, what: &str, text: &str, deadline: Duration) -> Duration {
        let predicate = format!(
            "Array.from(document.querySelectorAll('#messages li.msg p')) \
               .some(p => p.textContent === {})",
            json!(text)
        );
        self.wait_until(what, &predicate, deadline)
    }

    /// Sets the viewport (CSS pixels, device pixel ratio, phone or not).
    fn viewport(&self, width: u32, height: u32, scale: f64, mobile: bool) {
        self.tab
            .call_method(Emulation::SetDeviceMetricsOverride {
                width,
                height,
                device_scale_factor: scale,
                mobile,
                scale: None,
                screen_width: None,
                screen_height: None,
                position_x: None,
                position_y: None,
                dont_set_visible_size: None,
                screen_orientation: None,
                viewport: None,
                display_feature: None,
                device_posture: None,
            })
            .expect("Emulation.setDeviceMetricsOverride");
        // The layout follows on the next frame; wait for the page to have the new width.
        self.wait_until(
            &format!("the viewport to become {width}×{height}"),
            &format!("window.innerWidth === {width}"),
            STEP_DEADLINE,
        );
    }

    /// A PNG of the viewport, saved as `target/test-artifacts/{name}` and checked to be a real
    /// picture of `width`×`height` device pixels.
    fn screenshot(&self, name: &str, width: u32, height: u32) -> PathBuf {
        // Let the page settle: the newest message scrolled into view and one frame drawn.
        self.eval_with(
            "new Promise(done => { window.scrollTo(0, document.body.scrollHeight); \
             requestAnimationFrame(() => requestAnimationFrame(() => done(true))); })",
            true,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", self.describe()));
        let png = self
            .tab
            .capture_screenshot(Cdp::CaptureScreenshotFormatOption::Png, None, None, true)
            .unwrap_or_else(|e| panic!("{}: no screenshot: {e:#}", self.describe()));
        let path = common::artifacts().join(name);
        std::fs::write(&path, &png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        let saved = std::fs::read(&path).expect("the screenshot reads back");
        assert!(
            saved.starts_with(PNG_MAGIC),
            "{} is not a PNG",
            path.display()
        );
        assert!(
            saved.len() > MIN_SCREENSHOT_BYTES,
            "{} is only {} bytes: a blank or broken page?",
            path.display(),
            saved.len()
        );
        assert_eq!(
            png_size(&saved),
            Some((width, height)),
            "{}: the picture's size in pixels",
            path.display()
        );
        path
    }
}

/// One message as the page shows it.
#[derive(Debug, Deserialize)]
struct Shown {
    author: String,
    time: String,
    text: String,
    html: String,
    mine: bool,
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[12..16] != b"IHDR" {
        return None;
    }
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    Some((number(16), number(20)))
}

// --- the lab ------------------------------------------------------------------------------------

/// Polls `labctl status NAME --json` until every input node reports its HTTP address; returns
/// them (`127.0.0.1:PORT`).
fn input_http_addresses(home: &Home, lab: &str) -> BTreeSet<String> {
    let start = Instant::now();
    loop {
        let run = home.labctl(&["status", lab, "--json"]).expect_success();
        let status: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{}: {e}: {}", run.command, run.stdout));
        let report: labctl_core::Report = serde_json::from_value(status.clone())
            .unwrap_or_else(|e| panic!("{}: not a report: {e}", run.command));
        let inputs: Vec<&String> = report
            .roles
            .iter()
            .filter(|(_, roles)| roles.contains(&Role::Input))
            .map(|(id, _)| id)
            .collect();
        assert!(!inputs.is_empty(), "{}: no input node", run.command);
        let http: Vec<Option<&str>> = inputs
            .iter()
            .map(|id| status["addresses"][id.as_str()]["http"].as_str())
            .collect();
        if http.iter().all(Option::is_some) {
            return http.into_iter().flatten().map(str::to_string).collect();
        }
        assert!(
            start.elapsed() < READY_DEADLINE,
            "input nodes {inputs:?} still lack an HTTP address after {READY_DEADLINE:?}: {}",
            run.stdout
        );
        std::thread::sleep(LOOK_AGAIN);
    }
}

/// The body of `POST /register` and `POST /login` for `(username, tag)`.
fn credentials((username, tag): (&str, &str)) -> Value {
    json!({ "username": username, "tag": tag, "password": PASSWORD })
}

/// A program talking to the chat through the JSON API, with its own cookie jar.
struct Api {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Api {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .no_proxy()
            .timeout(STEP_DEADLINE)
            .build()
            .expect("an HTTP client");
        Api {
            runtime,
            client,
            base: base.to_string(),
        }
    }

    /// `method path` with a JSON body (or none) and `Accept: application/json`; the status and
    /// the JSON answer (the 307 of the nameserver followed, keeping the method and the body).
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self
                .client
                .request(method.clone(), &url)
                .header("accept", "application/json");
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e:#}"));
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, json)
        })
    }

    /// `call`, insisting on `expected`.
    fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.call(method.clone(), path, body);
        assert_eq!(
            status, expected,
            "{method} {}{path} answered {answer}",
            self.base
        );
        answer
    }
}

// --- the test -----------------------------------------------------------------------------------

#[test]
fn a_browser_registers_logs_in_and_chats_through_the_nameserver() {
    chats_in_a_browser(Home::new(), &[], "");
}

/// The same on a Docker lab: the nameserver and every input node's chat are ports published on
/// the host's loopback, so the browser's one session cookie holds at every input node.
#[test]
fn a_browser_chats_through_a_docker_labs_published_ports() {
    common::lab_image();
    let name = format!("t{}-browser", std::process::id());
    chats_in_a_browser(
        Home::with_runtime("docker"),
        &["--name", name.as_str()],
        "docker-",
    );
}

/// Registers, logs in and chats in a real browser on ring6 started in `home` (`up` plus
/// `extra`); screenshots are named with `prefix`.
fn chats_in_a_browser(home: Home, extra: &[&str], prefix: &str) {
    let chromium = common::chromium();

    // The lab, and its way in: the nameserver, once it redirects to every input node.
    let up = home.up(&topology_file("ring6.toml"), extra);
    let nameserver = up.nameserver.clone();
    assert!(
        nameserver.starts_with("http://127.0.0.1:"),
        "the nameserver is on loopback: {nameserver}"
    );
    let inputs = input_http_addresses(&home, &up.report.lab);
    let api = Api::new(&nameserver);
    let start = Instant::now();
    loop {
        let (status, answer) = api.call(Method::GET, "/_nameserver/inputs", None);
        let live: BTreeSet<String> = answer["live"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|node| node["http_address"].as_str().map(str::to_string))
            .collect();
        if status == StatusCode::OK && live == inputs {
            break;
        }
        assert!(
            start.elapsed() < READY_DEADLINE,
            "the nameserver lists {live:?} ({status}), not the input nodes {inputs:?}"
        );
        std::thread::sleep(LOOK_AGAIN);
    }

    // Bob registers and logs in through the API, before Alice exists.
    let (bob, bob_tag) = BOB;
    let (alice, alice_tag) = ALICE;
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        "/register",
        Some(credentials(BOB)),
    );
    api.expect(
        StatusCode::OK,
        Method::POST,
        "/login",
        Some(credentials(BOB)),
    );

    // Declared after `home`, so the browser is closed before the lab goes down, and after its
    // profile, so the browser is gone before its folder is removed.
    let profile = Profile::new();
    let browser = launch(chromium, &profile);
    let page = Page::open(&browser);

    // The nameserver's URL lands on an input node's register form.
    page.go(
        &format!("{nameserver}/register"),
        "/register",
        "form[action='/register']",
    );
    let href = page.href();
    let landed = href
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        inputs.contains(&landed),
        "the nameserver should redirect to an input node {inputs:?}, the browser is at {href}"
    );
    assert_eq!(page.text("h1"), "Create an account");

    // Register: the login form follows, saying so, with the name and tag filled in.
    page.fill("input[name=username]", alice);
    page.fill("input[name=tag]", alice_tag);
    page.fill("input[name=password]", PASSWORD);
    page.click("form[action='/register'] button[type=submit]");
    page.wait_for_page(
        "the login form after registering",
        "/login",
        "form[action='/login']",
    );
    assert_eq!(page.text("h1"), "Log in");
    assert!(
        page.text(".notice").contains("Your account is ready"),
        "{}",
        page.describe()
    );
    assert_eq!(page.value("input[name=username]"), json!(alice));
    assert_eq!(page.value("input[name=tag]"), json!(alice_tag));

    // Log in: the main page greets Alice.
    page.fill("input[name=password]", PASSWORD);
    page.click("form[action='/login'] button[type=submit]");
    page.wait_for_page("the main page after logging in", "/", "input[name=chat]");
    let greeting = page.text("h1");
    assert_eq!(greeting, format!("Hello, {alice}#{alice_tag}"));

    // Through the nameserver again: its round robin lands on every input node in turn, and Alice
    // is logged in at each (one browser, one session cookie for all of them).
    let mut visited = BTreeSet::new();
    for _ in 0..inputs.len() + 1 {
        page.go(&format!("{nameserver}/"), "/", "input[name=chat]");
        assert_eq!(page.text("h1"), greeting, "{}", page.describe());
        let host = page
            .href()
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string();
        visited.insert(host);
    }
    assert_eq!(
        visited, inputs,
        "the nameserver sent the browser to every input node"
    );

    // "Start a chat" with Bob opens the conversation, empty.
    let chat_path = format!("/users/{bob}/{bob_tag}/chat");
    page.fill("form[action='/users'] input[name=username]", bob);
    page.fill("form[action='/users'] input[name=tag]", bob_tag);
    page.click("form[action='/users'] button[type=submit]");
    page.wait_for_page("the conversation with Bob", &chat_path, "form#send");
    assert_eq!(page.text("h1"), format!("Chat with {bob}#{bob_tag}"));
    assert!(page.messages().is_empty(), "{}", page.describe());
    assert!(page.text("#empty").contains("No messages yet"));

    // Alice types and sends: her message appears, on her side, and the box empties.
    let hello = "Hello Bob, this comes from a real headless Chromium.";
    page.fill("#send textarea[name=content]", hello);
    page.click("#send button[type=submit]");
    page.wait_for_message("Alice's message after sending", hello, STEP_DEADLINE);
    page.wait_until(
        "the message box to empty after sending",
        "document.querySelector('#send textarea').value === '' \
         && document.getElementById('send-status').textContent === '' \
         && document.getElementById('empty') === null",
        STEP_DEADLINE,
    );

    // Bob answers through the API: the page shows it without a reload.
    let marked = page.eval("window.stillTheSamePage = true");
    assert_eq!(marked, Ok(json!(true)), "marking the page");
    let chat_with_alice = format!("/users/{alice}/{alice_tag}/chat");
    let reply = "Hi Alice! This reply went through the JSON API.";
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        &chat_with_alice,
        Some(json!({ "content": reply })),
    );
    let took = page.wait_for_message("Bob's reply, polled in", reply, POLLED_DEADLINE);
    eprintln!("Bob's reply appeared {took:?} after the API acknowledged it");

    // Markup is text: typed by Alice (sent with the Enter key, a real key press, and appended by
    // the script after sending) and sent by Bob (appended by the script after polling).
    let typed_markup = "Markup stays text: <b>bold</b> & <i>italic</i>";
    page.fill("#send textarea[name=content]", typed_markup);
    page.tab
        .press_key("Enter")
        .unwrap_or_else(|e| panic!("cannot press Enter: {e:#}"));
    page.wait_for_message("Alice's message with markup", typed_markup, STEP_DEADLINE);
    let sent_markup = "<b>bold</b> from Bob, as text";
    api.expect(
        StatusCode::CREATED,
        Method::POST,
        &chat_with_alice,
        Some(json!({ "content": sent_markup })),
    );
    page.wait_for_message("Bob's message with markup", sent_markup, POLLED_DEADLINE);
    assert_eq!(
        page.eval("window.stillTheSamePage === true"),
        Ok(json!(true)),
        "the page must not have reloaded"
    );

    // The conversation, as the script built it, then as the server renders it after a reload.
    let expected = [
        (alice, hello, true),
        (bob, reply, false),
        (alice, typed_markup, true),
        (bob, sent_markup, false),
    ];
    let check = |when: &str| {
        let shown = page.messages();
        let got: Vec<(&str, &str, bool)> = shown
            .iter()
            .map(|m| (m.author.as_str(), m.text.as_str(), m.mine))
            .collect();
        assert_eq!(got, expected, "{when}: the conversation, oldest first");
        for message in &shown {
            assert!(!message.time.is_empty(), "{when}: a time for {message:?}");
            if message.text.contains('<') {
                assert!(
                    message.html.contains("&lt;b&gt;bold&lt;/b&gt;"),
                    "{when}: markup is escaped: {message:?}"
                );
            }
        }
        assert_eq!(
            page.eval("document.querySelectorAll('#messages b, #messages i').length"),
            Ok(json!(0)),
            "{when}: a message's markup must not become elements"
        );
    };
    check("as the script built it");
    page.go(
        &format!("http://{landed}{chat_path}"),
        &chat_path,
        "form#send",
    );
    check("as the server rendered it");

    // The screenshots: desktop, then phone width.
    page.viewport(1280, 900, 1.0, false);
    let desktop = page.screenshot(&format!("{prefix}browser-conversation.png"), 1280, 900);
    page.viewport(390, 844, 3.0, true);
    let phone = page.screenshot(
        &format!("{prefix}browser-conversation-phone.png"),
        390 * 3,
        844 * 3,
    );
    eprintln!("screenshots: {} and {}", desktop.display(), phone.display());

    // Only loopback, and no script error.
    let requests = page.requests.lock().unwrap().clone();
    assert!(
        requests.len() >= 8,
        "the page's requests were recorded: {requests:?}"
    );
    let elsewhere: Vec<&String> = requests
        .iter()
        .filter(|url| !url.starts_with("http://127.0.0.1:"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the browser requested more than loopback: {elsewhere:?}"
    );
    let errors = page.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "script errors on the pages: {errors:?}");
    drop(browser);
    assert_eq!(
        profile.wait_unused(),
        Vec::<u32>::new(),
        "browser processes outlived the browser"
    );
}
