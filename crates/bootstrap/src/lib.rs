//! The bootstrap daemon: tells each joining node who its neighbours are and where they listen.
//!
//! labctl loads the lab's topology (LoadTopology; a runner without labctl, such as a compose
//! file, hands it over at start with [`preload_topology`] instead); each node then registers its
//! control-plane address (Register) and gets its neighbours back, each with its address once that
//! neighbour has registered too; a node still missing addresses long-polls Neighbors, which
//! answers as soon as the last one registers. Without a topology the bootstrap links nodes in join order, as the
//! original system did: every id registering for the first time is linked to the one that first
//! registered just before it, so the nodes form a line; leaving keeps one's place in it.
//!
//! # Running one
//!
//! ```no_run
//! # async fn example() -> Result<(), labctl_bootstrap::Error> {
//! use labctl_bootstrap::{run, Config};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = Config { state_dir: "/tmp/lab/bootstrap".into() };
//! // Serves until the future resolves (here: Ctrl-C), then finishes the calls in flight.
//! run(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Durability
//! Every change is written to `state_dir/bootstrap.json` (atomically: a temporary file, fsync,
//! rename) **before** it is acknowledged, and `run` reads it back at start, so a restarted
//! bootstrap keeps the topology and the registrations. A file it cannot read or make sense of
//! stops it with an [`Error`] naming the file; it never silently starts empty.
//!
//! # Modules
//! - `state`: the state and its rules (validation, neighbours, join order), without I/O.
//! - `store`: the state file.
//! - `driver`: the single task that changes the state, saves it and publishes it.
//! - `service`: the gRPC handlers.

use std::future::Future;
use std::path::{Path, PathBuf};

use labctl_proto::bootstrap::bootstrap_server::BootstrapServer;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

mod driver;
mod service;
mod state;
mod store;

/// How many changes may queue for the driver before handlers wait.
const COMMAND_QUEUE: usize = 64;

/// Where and how the bootstrap runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory of the state file `bootstrap.json` (created if missing).
    pub state_dir: PathBuf,
}

/// Why the bootstrap could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state file exists but could not be read.
    #[error("cannot read the bootstrap state file {}: {source}; fix its permissions or delete it to start with an empty state", path.display())]
    ReadState {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state file is not valid bootstrap state (bad JSON or inconsistent contents).
    #[error("the bootstrap state file {} is corrupt: {detail}; fix it or delete it to start with an empty state", path.display())]
    CorruptState { path: PathBuf, detail: String },
    /// The state file could not be written.
    #[error("cannot write the bootstrap state file {}: {source}", path.display())]
    WriteState {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create the bootstrap state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The topology given to [`preload_topology`] is one LoadTopology would refuse.
    #[error("the bootstrap cannot load the topology: {0}")]
    InvalidTopology(String),
    /// Another I/O failure (such as reading the listener's address).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("the bootstrap gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serve the Bootstrap gRPC service on `listener` until `shutdown` resolves. Loads persisted
/// state from `state_dir/bootstrap.json` at start (a restart keeps the topology and
/// registrations).
///
/// Before serving it rewrites the state file, so a state directory it cannot write is reported
/// here rather than at the first registration. When `shutdown` resolves it stops accepting
/// connections, answers waiting Neighbors calls with what it knows, finishes the calls in flight
/// and returns once every change they made is on disk.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (store, state) = open(&config.state_dir).await?;
    save(&store, &state).await?;

    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let (driver, snapshots) = driver::Driver::new(store, state, inbox);
    let driver = tokio::spawn(driver.run());
    let stopping = CancellationToken::new();
    let service = service::Service::new(commands, snapshots, stopping.clone());

    info!(address = %listener.local_addr()?, "bootstrap serving");
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            info!("bootstrap shutting down");
            stopping.cancel();
        }
    };
    tonic::transport::Server::builder()
        .add_service(BootstrapServer::new(service))
        .serve_with_incoming_shutdown(
            // No Nagle: a small answer would wait for the client's delayed ACK (40 ms).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )
        .await?;
    // Every connection is closed, so every command sender is gone: the driver ends once it has
    // finished (and saved) the last change.
    driver
        .await
        .map_err(|err| Error::Io(std::io::Error::other(err)))?;
    info!("bootstrap stopped");
    Ok(())
}

/// Loads `topology` into the state in `state_dir` before [`run`] starts, exactly as a
/// LoadTopology call would: the topology replaces whatever was loaded (or the join order),
/// registrations of ids that are still nodes are kept (a restarted bootstrap given the same
/// topology again keeps every registration), the others are dropped and returned. The state is
/// saved before this returns, so the `run` that follows starts from it.
///
/// For runners with no labctl to call LoadTopology (a compose file passes the topology on the
/// bootstrap's command line). A topology LoadTopology would refuse is an
/// [`Error::InvalidTopology`], and the state on disk is left as it was.
pub async fn preload_topology(
    state_dir: &Path,
    topology: &labctl_proto::bootstrap::Topology,
) -> Result<Vec<u64>, Error> {
    let (store, mut state) = open(state_dir).await?;
    let dropped = state
        .load_topology(topology)
        .map_err(|refusal| Error::InvalidTopology(refusal.to_string()))?;
    save(&store, &state).await?;
    info!(
        lab = %topology.lab,
        nodes = topology.nodes.len(),
        links = topology.links.len(),
        ?dropped,
        "topology preloaded"
    );
    Ok(dropped)
}

/// Creates `state_dir` if needed and reads the state saved there (empty when there is none).
async fn open(state_dir: &Path) -> Result<(store::Store, state::State), Error> {
    tokio::fs::create_dir_all(state_dir)
        .await
        .map_err(|source| Error::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
    let store = store::Store::new(state_dir);
    let loaded = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|err| Error::Io(std::io::Error::other(err)))??
    };
    let state = match loaded {
        Some(state) => {
            let described = state.describe();
            info!(
                path = %store.path().display(),
                lab = %described.lab,
                nodes = described.nodes.len(),
                registered = described.registered.len(),
                "bootstrap state loaded"
            );
            state
        }
        None => {
            info!(path = %store.path().display(), "no bootstrap state yet: starting empty");
            state::State::default()
        }
    };
    Ok((store, state))
}

/// Writes `state` to the state file (atomically, on a blocking thread).
async fn save(store: &store::Store, state: &state::State) -> Result<(), Error> {
    let store = store.clone();
    let bytes = store::Store::encode(state);
    tokio::task::spawn_blocking(move || store.write(&bytes))
        .await
        .map_err(|err| Error::Io(std::io::Error::other(err)))?
}
