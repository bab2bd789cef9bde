//! Test harness: a nameserver started in-process on 127.0.0.1:0, small axum servers playing the
//! input nodes, and an HTTP client that does not follow redirects.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use labctl_nameserver::Config;
use labctl_proto::nameserver::nameserver_client::NameserverClient;
use labctl_proto::nameserver::{DeregisterRequest, InputNode as ProtoInputNode, ListRequest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// How long a polled condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Short health-check timings, so dead nodes are dropped within a fraction of a second.
pub fn fast_config() -> Config {
    Config {
        health_interval: Duration::from_millis(50),
        health_timeout: Duration::from_millis(100),
        health_failures: 3,
    }
}

/// Logs go to the test's captured output (shown when a test fails).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_test_writer()
        .try_init();
}

/// An HTTP client that shows redirects instead of following them.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("build the HTTP client")
}

/// A nameserver running in this process.
pub struct Nameserver {
    pub grpc: NameserverClient<Channel>,
    /// `http://127.0.0.1:<port>`, the redirector.
    pub http: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), labctl_nameserver::Error>>,
}

impl Nameserver {
    pub async fn start(config: Config) -> Self {
        init_logs();
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
        let grpc_addr = grpc.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(labctl_nameserver::run(config, grpc, http, async {
            let _ = stopped.await;
        }));
        // The listeners are bound already, so the connection is accepted as soon as `run` polls.
        let grpc = NameserverClient::connect(format!("http://{grpc_addr}"))
            .await
            .expect("connect to the nameserver's gRPC");
        Self {
            grpc,
            http: format!("http://{http_addr}"),
            stop: Some(stop),
            task,
        }
    }

    pub async fn register(&mut self, id: u64, http_address: &str) -> Result<(), tonic::Status> {
        self.register_public(id, http_address, "").await
    }

    /// Registers node `id`, health-checked at `http_address`, with clients sent to
    /// `public_address` (empty: to `http_address`).
    pub async fn register_public(
        &mut self,
        id: u64,
        http_address: &str,
        public_address: &str,
    ) -> Result<(), tonic::Status> {
        self.grpc
            .register(ProtoInputNode {
                id,
                http_address: http_address.to_owned(),
                public_address: public_address.to_owned(),
            })
            .await
            .map(|_| ())
    }

    pub async fn deregister(&mut self, id: u64) -> Result<(), tonic::Status> {
        self.grpc
            .deregister(DeregisterRequest { id })
            .await
            .map(|_| ())
    }

    /// The live input nodes as `(id, http_address)`, in the order `List` gives them.
    pub async fn live(&mut self) -> Vec<(u64, String)> {
        self.grpc
            .list(ListRequest {})
            .await
            .expect("List")
            .into_inner()
            .live
            .into_iter()
            .map(|node| (node.id, node.http_address))
            .collect()
    }

    /// The live input nodes as `(id, http_address, public_address)`, in the order `List` gives
    /// them.
    pub async fn live_public(&mut self) -> Vec<(u64, String, String)> {
        self.grpc
            .list(ListRequest {})
            .await
            .expect("List")
            .into_inner()
            .live
            .into_iter()
            .map(|node| (node.id, node.http_address, node.public_address))
            .collect()
    }

    /// The ids of the live input nodes.
    pub async fn live_ids(&mut self) -> Vec<u64> {
        self.live().await.into_iter().map(|(id, _)| id).collect()
    }

    /// Polls `List` until exactly `ids` are live; returns how long that took. Fails after
    /// [`DEADLINE`].
    pub async fn wait_for_live(&mut self, ids: &[u64]) -> Duration {
        let start = Instant::now();
        loop {
            let live = self.live_ids().await;
            if live == ids {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "live input nodes are still {live:?} after {DEADLINE:?}, expected {ids:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the nameserver and checks that `run` returned `Ok`.
    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let result = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the nameserver stops after shutdown")
            .expect("the nameserver task does not panic");
        assert!(result.is_ok(), "run returned {result:?}");
    }
}

/// A small HTTP server playing an input node: `/healthz` answers with a status the test controls,
/// every other request is echoed back as `input <id> <method> <target>`.
pub struct InputNode {
    pub id: u64,
    pub address: SocketAddr,
    health: Arc<AtomicU16>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct InputState {
    id: u64,
    health: Arc<AtomicU16>,
}

impl InputNode {
    pub async fn start(id: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind input");
        let address = listener.local_addr().unwrap();
        let health = Arc::new(AtomicU16::new(200));
        let state = InputState {
            id,
            health: health.clone(),
        };
        let app = Router::new()
            .route("/healthz", get(healthz))
            .fallback(echo)
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("input node serves");
        });
        Self {
            id,
            address,
            health,
            stop: Some(stop),
            task,
        }
    }

    /// `host:port`, as the node registers it.
    pub fn http_address(&self) -> String {
        self.address.to_string()
    }

    /// Makes `/healthz` answer with `status` from now on.
    pub fn set_health(&self, status: StatusCode) {
        self.health.store(status.as_u16(), Ordering::SeqCst);
    }

    /// Shuts the server down and waits until its socket is closed.
    pub async fn kill(mut self) {
        let _ = self.stop.take().expect("killed once").send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the input node stops")
            .expect("the input node task does not panic");
    }
}

async fn healthz(State(state): State<InputState>) -> StatusCode {
    StatusCode::from_u16(state.health.load(Ordering::SeqCst)).expect("a valid status")
}

async fn echo(State(state): State<InputState>, request: Request) -> String {
    format!("input {} {} {}", state.id, request.method(), request.uri())
}

/// Sends `method path` to the redirector and returns the `Location` of its 307.
pub async fn redirected(client: &reqwest::Client, base: &str, method: &str, path: &str) -> String {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method.clone(), format!("{base}{path}"))
        .send()
        .await
        .expect("the nameserver answers");
    assert_eq!(
        response.status(),
        reqwest::StatusCode::TEMPORARY_REDIRECT,
        "{method} {path}"
    );
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("an ASCII Location")
        .to_owned()
}

/// Which input node (by address) a `Location` points at.
pub fn input_of<'a>(location: &str, inputs: &'a [InputNode]) -> &'a InputNode {
    inputs
        .iter()
        .find(|input| location.starts_with(&format!("http://{}/", input.address)))
        .unwrap_or_else(|| panic!("{location} points at none of the input nodes"))
}

/// A `127.0.0.1:<port>` address nothing listens on (a port bound, then released).
pub async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    listener.local_addr().unwrap().to_string()
}
