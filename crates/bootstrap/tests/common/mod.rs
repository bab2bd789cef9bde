//! A bootstrap daemon started in-process on a loopback port, with a real gRPC client.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use labctl_bootstrap::{run, Config, Error};
use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{Link, Neighbor, RegisterRequest, Topology};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub type Client = BootstrapClient<Channel>;

/// A running daemon: stop it with [`Daemon::stop`] to get `run`'s result.
pub struct Daemon {
    pub addr: SocketAddr,
    pub state_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl Daemon {
    /// Starts `run` on a fresh loopback port. The listener is bound before `run` starts, so a
    /// client can connect at once: the kernel queues the connection until the server accepts it.
    pub async fn start(state_dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = Config {
            state_dir: state_dir.to_owned(),
        };
        let task = tokio::spawn(run(config, listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state_dir: state_dir.to_owned(),
            stop: Some(stop),
            task,
        }
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        BootstrapClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// Resolves the shutdown future and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }
}

/// A topology from ids and link pairs.
pub fn topology(lab: &str, nodes: &[u64], links: &[(u64, u64)]) -> Topology {
    Topology {
        lab: lab.into(),
        nodes: nodes.to_vec(),
        links: links.iter().map(|&(a, b)| Link { a, b }).collect(),
    }
}

/// The ring of six: 1-2-3-4-5-6-1.
pub fn ring6() -> Topology {
    topology(
        "ring6",
        &[1, 2, 3, 4, 5, 6],
        &[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1)],
    )
}

/// Node `id`'s address in these tests.
pub fn address(id: u64) -> String {
    format!("127.0.0.1:{}", 4000 + id)
}

/// A registration request.
pub fn register(id: u64, address: &str, rejoin: bool) -> RegisterRequest {
    RegisterRequest {
        id,
        address: address.into(),
        rejoin,
    }
}

/// Neighbours as `(id, address)` pairs, for comparisons.
pub fn pairs(neighbors: &[Neighbor]) -> Vec<(u64, String)> {
    neighbors
        .iter()
        .map(|n| (n.id, n.address.clone()))
        .collect()
}
