//! The labctl node daemon: one vertex of the lab's topology, as a real process.
//!
//! A node binds its ZeroMQ control socket and its admin gRPC API, registers with the bootstrap,
//! waits until it knows where each topology neighbour listens, connects, and then hands control
//! to its [`driver`]: the one task that feeds the protocol core (`labctl-core`) with frames from
//! the neighbours and timer ticks, and carries out what the core asks. The election starts once
//! every link is up, so a clean start runs exactly one epoch.
//!
//! ```text
//! bootstrap ──register/neighbours──► node ◄──admin gRPC── labctl
//!                                     │
//!                     ZeroMQ ROUTER (identity node-<id>) ◄──► each neighbour
//! ```
//!
//! [`run`] is the whole daemon; `labctl daemon node` is a few lines around it.

pub mod admin;
pub mod driver;
pub mod frame;
pub mod hops;
pub mod links;
pub mod record;
pub mod store;
pub mod transport;
pub mod web;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use labctl_core::NodeId;
use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{DeregisterRequest, NeighborsRequest, RegisterRequest};
use labctl_proto::node::node_admin_server::NodeAdminServer;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{info, warn};

use crate::admin::{Admin, Stage};
use crate::driver::{Driver, DriverConfig};
use crate::transport::{Transport, ZmqTransport};

/// How to run one node.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's id (its election key).
    pub id: NodeId,
    /// The lab's name.
    pub lab: String,
    /// The bootstrap's gRPC address, `host:port`.
    pub bootstrap: String,
    /// Interface to bind the control socket and admin API to.
    pub listen_host: String,
    /// Host name or address neighbours and labctl use to reach this node.
    pub advertise_host: String,
    /// Host name or address browsers and the nameserver use to reach its chat service (in a
    /// container lab, the address on the network facing the nameserver).
    pub advertise_http_host: String,
    /// host:port where browsers reach this node's chat service when that differs from
    /// `advertise_http_host` and the HTTP port (a published port); None: the same.
    pub public_http: Option<String>,
    /// Control (ZeroMQ) port; 0 picks a free one.
    pub control_port: u16,
    /// Admin (gRPC) port; 0 picks a free one.
    pub admin_port: u16,
    /// Heartbeats and suspicion.
    pub timing: labctl_core::Timing,
    /// Where to write [`Ready`] once listening.
    pub ready_file: Option<PathBuf>,
    /// How long to keep trying to reach the bootstrap and learn the neighbours' addresses.
    pub join_timeout: Duration,
    /// Folder for the node's database (`node.db`) and its durable epoch (`epoch`).
    pub data_dir: PathBuf,
    /// The nameserver's gRPC address; input nodes register their HTTP address there.
    pub nameserver: Option<String>,
    /// HTTP port of the chat service when this node is an input node; 0 picks a free one.
    pub http_port: u16,
    /// The lab-wide key that signs sessions (so a login at one input node holds at all).
    pub session_secret: Vec<u8>,
    /// Page templates to load instead of the built-in ones.
    pub templates: Option<PathBuf>,
    /// When a write counts as done.
    pub durability: labctl_core::plane::Durability,
}

/// What a node writes to its ready file once it listens: how labctl finds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The node's id.
    pub id: NodeId,
    /// Its process id.
    pub pid: u32,
    /// `host:port` of the ZeroMQ control socket.
    pub control: String,
    /// `host:port` of the admin gRPC API.
    pub admin: String,
}

/// Run the node until `shutdown` resolves (or the admin API's Shutdown is called).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let id = config.id;
    let mut transport =
        ZmqTransport::bind(id, &config.listen_host, config.control_port, config.timing)
            .with_context(|| {
                format!(
                    "binding node {id}'s control socket on {}",
                    config.listen_host
                )
            })?;
    let control_address = format!("{}:{}", config.advertise_host, transport.port());
    let admin_listener = TcpListener::bind((config.listen_host.as_str(), config.admin_port))
        .await
        .with_context(|| format!("binding node {id}'s admin API on {}", config.listen_host))?;
    let admin_address = format!(
        "{}:{}",
        config.advertise_host,
        admin_listener.local_addr()?.port()
    );

    // One stop switch for everything: the caller's shutdown, or the admin API's Shutdown.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stop_on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_on_signal.send(true);
    });
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let (stage_tx, stage_rx) = watch::channel(Stage::Joining);
    let (command_tx, command_rx) = mpsc::channel(256);
    let command_tx_for_web = command_tx.clone();
    let (trace_tx, _) = broadcast::channel(4096);
    // Set once the driver runs: when its clock started, on the wall clock.
    let start_unix_ms = std::sync::Arc::new(std::sync::OnceLock::new());
    let (http_published, http_address) = watch::channel(None);
    let admin = Admin {
        http_address,
        id,
        control_address: control_address.clone(),
        admin_address: admin_address.clone(),
        stage: stage_rx,
        commands: command_tx,
        trace: trace_tx.clone(),
        start_unix_ms: start_unix_ms.clone(),
        stop: stop_tx,
    };
    let admin_server = tokio::spawn({
        let stopped = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        tonic::transport::Server::builder()
            .add_service(NodeAdminServer::new(admin))
            .serve_with_incoming_shutdown(
                // No Nagle: a small answer would wait for the client's delayed ACK (40 ms).
                tonic::transport::server::TcpIncoming::from(admin_listener)
                    .with_nodelay(Some(true)),
                stopped,
            )
    });

    if let Some(path) = &config.ready_file {
        let ready = Ready {
            id,
            pid: std::process::id(),
            control: control_address.clone(),
            admin: admin_address.clone(),
        };
        write_atomically(path, &serde_json::to_vec_pretty(&ready)?)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    info!(%control_address, %admin_address, "node {id} listening");

    // The database: open it (creating or migrating it) before joining, so a bad file stops the
    // node with a clear error instead of failing its first request.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
    let db = config.data_dir.join("node.db");
    let (store_done_tx, store_done) = mpsc::unbounded_channel();
    // Opening may migrate the schema and sync the file: not on an async worker.
    let opening = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || store::StoreThread::open(&db, store_done_tx))
    };
    let opened = opening
        .await
        .context("the database opening task failed")?
        .with_context(|| format!("opening the database {}", db.display()))?;
    let (store, shape, applied) = (opened.thread, opened.shape, opened.applied);
    info!(db = %db.display(), applied, log = %shape.last(), "database open");

    // The newest epoch this node made durable before (a restart starts above it), and a new
    // incarnation: its neighbours will see it restarted.
    let epoch_file = config.data_dir.join("epoch");
    let persisted_epoch = driver::read_epoch(&epoch_file).map_err(anyhow::Error::msg)?;
    let restarted = epoch_file.exists();
    let incarnation = incarnation();
    info!(persisted_epoch, incarnation, restarted, "epoch state read");

    // The chat's HTTP service follows the input role.
    let (web_role_tx, web_role_rx) = watch::channel(web::WebRole::default());
    let web_task = tokio::spawn(web::follow_role(
        web::WebSettings {
            id,
            lab: config.lab.clone(),
            listen_host: config.listen_host.clone(),
            advertise_host: config.advertise_http_host.clone(),
            public_address: config.public_http.clone(),
            port: config.http_port,
            secret: config.session_secret.clone(),
            templates: config.templates.clone(),
            nameserver: config.nameserver.clone(),
            published: http_published,
            hashing: labctl_web::HashPool::per_core(),
            local_reads: store.local_reads().clone(),
        },
        command_tx_for_web,
        web_role_rx,
        stop_rx.clone(),
    ));

    // Join: register, then learn every neighbour's address.
    let joined = tokio::select! {
        joined = join(&config, &control_address, restarted) => Some(joined?),
        () = stopped => None,
    };
    let Some((mut bootstrap, neighbors, lab_size)) = joined else {
        let _ = web_task.await;
        return Ok(());
    };
    for (neighbor, address) in &neighbors {
        // Of two neighbours, the smaller id connects: one connection per link.
        if *neighbor > id {
            transport
                .connect(&format!("tcp://{address}"))
                .with_context(|| format!("connecting to neighbour {neighbor} at {address}"))?;
        }
    }
    let _ = stage_tx.send(Stage::Running);
    let ids: Vec<String> = neighbors.iter().map(|(n, _)| n.to_string()).collect();
    info!("joined the lab; neighbours {}", ids.join(", "));

    let driver = Driver::new(
        DriverConfig {
            id,
            lab: config.lab.clone(),
            timing: config.timing,
            lab_size,
            incarnation,
            epoch_file,
            persisted_epoch,
            durability: config.durability,
        },
        neighbors.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>(),
        transport,
        trace_tx,
        store,
        (shape, applied),
        web_role_tx,
    );
    let _ = start_unix_ms.set(driver.start_unix_ms());
    // The driver runs here, on the thread that awaits `run` (the daemon's main thread, in its
    // `block_on`), not as a task on the runtime's workers, which also run the HTTP and admin
    // tasks. Spawned there it saved a sixth of a write's thread switches, but 30-node labs
    // starting side by side on two cores re-elected after converging (a missed heartbeat) in 4 of
    // 10 runs of the live tests, against 0 of 10 on its own thread.
    let result = driver
        .run(command_rx, store_done, async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await;
    let _ = web_task.await;

    // Leave cleanly: the bootstrap forgets us, the admin API stops.
    let leave = bootstrap.deregister(DeregisterRequest { id });
    if tokio::time::timeout(Duration::from_secs(1), leave)
        .await
        .is_err()
    {
        warn!("the bootstrap did not answer the deregistration in time");
    }
    let _ = admin_server.await;
    result.map_err(|reason| anyhow::anyhow!("node {id}'s transport failed: {reason}"))
}

/// This run's incarnation: the clock in microseconds, mixed with the process id, so a restarted
/// node never reuses one.
fn incarnation() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    micros ^ (u64::from(std::process::id()) << 48)
}

/// Register with the bootstrap (`rejoin` after a restart) and wait until every neighbour's
/// address is known. Returns the client, the neighbours and the lab's size.
async fn join(
    config: &Config,
    control_address: &str,
    rejoin: bool,
) -> Result<(
    BootstrapClient<tonic::transport::Channel>,
    Vec<(NodeId, String)>,
    u64,
)> {
    let deadline = Instant::now() + config.join_timeout;
    let url = format!("http://{}", config.bootstrap);
    // The bootstrap may still be starting: retry the connection until the deadline.
    let mut client = loop {
        match BootstrapClient::connect(url.clone()).await {
            Ok(client) => break client,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("bootstrap at {} not reachable yet: {e}", config.bootstrap);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => bail!(
                "cannot reach the bootstrap at {} within {:?}: {e}",
                config.bootstrap,
                config.join_timeout
            ),
        }
    };
    let request = RegisterRequest {
        id: config.id,
        address: control_address.to_string(),
        rejoin,
    };
    let reply = client
        .register(request)
        .await
        .map_err(|s| anyhow::anyhow!("the bootstrap refused node {}: {}", config.id, s.message()))?
        .into_inner();
    let lab_size = reply.lab_size.max(1);
    let mut neighbors = reply.neighbors;
    // Long-poll until every neighbour has registered.
    while neighbors.iter().any(|n| n.address.is_empty()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let missing: Vec<u64> = neighbors
                .iter()
                .filter(|n| n.address.is_empty())
                .map(|n| n.id)
                .collect();
            bail!(
                "node {}'s neighbours {missing:?} did not register with the bootstrap within {:?}",
                config.id,
                config.join_timeout
            );
        }
        let request = NeighborsRequest {
            id: config.id,
            wait_ms: left.min(Duration::from_secs(5)).as_millis() as u32,
        };
        neighbors = client
            .neighbors(request)
            .await
            .map_err(|s| anyhow::anyhow!("asking the bootstrap for neighbours: {}", s.message()))?
            .into_inner()
            .neighbors;
    }
    Ok((
        client,
        neighbors.into_iter().map(|n| (n.id, n.address)).collect(),
        lab_size,
    ))
}

/// Write a file so that readers see either nothing or all of it.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
