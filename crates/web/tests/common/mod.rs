//! A one-node lab for the web tests: `router()` served on 127.0.0.1:0 over a real SQLite
//! [`Store`] in a temporary directory (what a one-node lab runs, not a mock), and HTTP clients.

#![allow(dead_code)]

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use labctl_chat::ops::{AppError, Read, Reply, User, Write};
use labctl_chat::{password, Store};
use labctl_core::log::Pos;
use labctl_web::{router, serve, Backend, WebConfig};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex};

/// The secret of the test labs.
pub const SECRET: &[u8] = b"the lab-wide secret of the tests";
/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// A store behind a lock: what a one-node lab's data plane does.
#[derive(Clone)]
pub struct StoreBackend {
    pub store: Arc<Mutex<Store>>,
}

#[async_trait::async_trait]
impl Backend for StoreBackend {
    async fn read(&self, read: Read, _min: Pos) -> Result<Reply, AppError> {
        // One node: the store holds every write, so any position is satisfied.
        self.store.lock().await.query(&read)
    }

    async fn write(&self, write: Write, key: Option<String>) -> Result<(Reply, Pos), AppError> {
        let (reply, entry) = self.store.lock().await.execute_with_key(
            &write,
            key.as_deref(),
            1,
            OffsetDateTime::now_utc(),
        )?;
        Ok((reply, entry.pos()))
    }
}

/// Records the read position of every read, and the key and position of every write, then
/// delegates.
pub struct Recording {
    pub inner: Arc<dyn Backend>,
    /// `(operation, min)` of each read, in order.
    pub reads: StdMutex<Vec<(Read, Pos)>>,
    /// The position of each successful write, in order.
    pub writes: StdMutex<Vec<Pos>>,
    /// The idempotency key of each write, in order.
    pub keys: StdMutex<Vec<Option<String>>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Recording {
            inner,
            reads: StdMutex::new(Vec::new()),
            writes: StdMutex::new(Vec::new()),
            keys: StdMutex::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Recording {
    async fn read(&self, read: Read, min: Pos) -> Result<Reply, AppError> {
        self.reads.lock().unwrap().push((read.clone(), min));
        self.inner.read(read, min).await
    }

    async fn write(&self, write: Write, key: Option<String>) -> Result<(Reply, Pos), AppError> {
        self.keys.lock().unwrap().push(key.clone());
        let written = self.inner.write(write, key).await?;
        self.writes.lock().unwrap().push(written.1);
        Ok(written)
    }
}

/// Writes fail as when no writer is reachable; reads go through.
pub struct NoWriter {
    pub inner: Arc<dyn Backend>,
}

/// What [`NoWriter`] answers writes with.
pub const NO_WRITER: &str = "no writer reachable: the spanning tree is being rebuilt (epoch 3)";

#[async_trait::async_trait]
impl Backend for NoWriter {
    async fn read(&self, read: Read, min: Pos) -> Result<Reply, AppError> {
        self.inner.read(read, min).await
    }

    async fn write(&self, _write: Write, _key: Option<String>) -> Result<(Reply, Pos), AppError> {
        Err(AppError::Unavailable(NO_WRITER.to_string()))
    }
}

/// A database in a temporary directory.
pub struct Data {
    pub dir: tempfile::TempDir,
    pub store: Arc<Mutex<Store>>,
}

impl Data {
    pub fn new() -> Data {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("chat.sqlite")).unwrap();
        Data {
            dir,
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// A backend handle on this database (each call a new one, sharing the store).
    pub fn backend(&self) -> StoreBackend {
        StoreBackend {
            store: self.store.clone(),
        }
    }

    /// The last log entry: what was stored.
    pub async fn last_seq(&self) -> u64 {
        self.store.lock().await.last_seq()
    }

    /// The whole database as text, to show that a refusal stored nothing.
    pub async fn dump(&self) -> String {
        self.store.lock().await.dump().unwrap()
    }

    /// Registers a user straight in the store (with [`PASSWORD`], hashed once for all tests).
    pub async fn user(&self, username: &str, tag: &str) -> User {
        static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let password_hash = HASH.get_or_init(|| password::hash(PASSWORD)).clone();
        let write = Write::Register {
            username: username.into(),
            tag: tag.into(),
            password_hash,
        };
        match self
            .store
            .lock()
            .await
            .execute(&write, 1, OffsetDateTime::now_utc())
            .unwrap()
            .0
        {
            Reply::User { user } => user,
            other => panic!("{other:?}"),
        }
    }
}

/// A served router.
pub struct Server {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The test lab's settings.
pub fn config() -> WebConfig {
    WebConfig::new(SECRET.to_vec(), 7, "testlab")
}

/// Serves `router(config, backend)` on 127.0.0.1:0.
pub async fn start(config: WebConfig, backend: Arc<dyn Backend>) -> Server {
    let app = router(config, backend).expect("the router builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));
    Server {
        url,
        stop: Some(stop),
    }
}

/// A client with a cookie store that follows no redirects; `json` adds
/// `Accept: application/json` to every request.
pub fn client(json: bool) -> Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static(if json {
            "application/json"
        } else {
            "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
        }),
    );
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Logs `username#tag` in with [`PASSWORD`] (JSON), asserting 200.
pub async fn login(client: &Client, url: &str, username: &str, tag: &str) -> Response {
    let response = client
        .post(format!("{url}/login"))
        .json(&serde_json::json!({"username": username, "tag": tag, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login {username}#{tag}");
    response
}

/// The value of cookie `name` that `response` sets, if any.
pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let first = line.split(';').next()?;
            let (key, value) = first.split_once('=')?;
            (key.trim() == name).then(|| value.to_string())
        })
}

/// The attributes of the `Set-Cookie` line for `name`.
pub fn set_cookie_line(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|line| line.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The payload of a session token (unverified: what the cookie carries).
pub fn payload(token: &str) -> Value {
    let (payload, _) = token.split_once('.').expect("a token has two parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A client that sends exactly this `Cookie` header (and JSON `Accept`), no cookie store.
pub fn bare_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The value of `name="…"` in the first `<input … name="{name}" value="…">` of a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// The JSON error sentence of a response.
pub async fn error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON error body: {text}"));
    (
        status,
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("an \"error\" sentence: {text}"))
            .to_string(),
    )
}

/// Sends `pairs` as a form body (`application/x-www-form-urlencoded`).
pub fn form<K: serde::Serialize, V: serde::Serialize>(
    request: reqwest::RequestBuilder,
    pairs: &[(K, V)],
) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).unwrap())
}

/// `text` percent-encoded as one path segment.
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sending a request and reading its answer in one step, for requests whose answer a test only
/// reads (a failure to send or to parse fails the test).
#[allow(async_fn_in_trait)]
pub trait Answer {
    /// The answer's JSON body.
    async fn json_of<T: serde::de::DeserializeOwned>(self) -> T;
    /// The answer's body as text.
    async fn text_of(self) -> String;
}

impl Answer for reqwest::RequestBuilder {
    async fn json_of<T: serde::de::DeserializeOwned>(self) -> T {
        self.send()
            .await
            .expect("the request is sent")
            .json()
            .await
            .expect("a JSON answer")
    }

    async fn text_of(self) -> String {
        self.send()
            .await
            .expect("the request is sent")
            .text()
            .await
            .expect("a text answer")
    }
}
