//! What the node's integration tests share: a readable log, a real bootstrap, node settings.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{Link, Topology};
use tokio::net::TcpListener;

/// A log sink the test can read: the nodes' `tracing` output lands here.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Install as the global subscriber (once per test binary) and return it.
    pub fn install() -> Captured {
        let log = Captured::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How often `needle` was logged.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

/// Retry a connection until it succeeds (10 s at most): the server may still be starting.
pub async fn connect_retrying<C, F, Fut>(connect: F) -> C
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<C, tonic::transport::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect().await {
            Ok(client) => return client,
            Err(e) if Instant::now() > deadline => panic!("cannot connect: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Start a real bootstrap in this process with lab `lab`'s topology; returns its address and a
/// client.
pub async fn bootstrap(
    dir: &Path,
    lab: &str,
    nodes: &[u64],
    links: &[(u64, u64)],
) -> (String, BootstrapClient<tonic::transport::Channel>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let config = labctl_bootstrap::Config {
        state_dir: dir.join("bootstrap"),
    };
    tokio::spawn(labctl_bootstrap::run(
        config,
        listener,
        std::future::pending(),
    ));
    let url = format!("http://{address}");
    let mut client = connect_retrying(|| BootstrapClient::connect(url.clone())).await;
    client
        .load_topology(Topology {
            lab: lab.into(),
            nodes: nodes.to_vec(),
            links: links.iter().map(|&(a, b)| Link { a, b }).collect(),
        })
        .await
        .unwrap();
    (address, client)
}

/// Settings for node `id` of `lab`, everything on loopback, data under `dir`.
pub fn config(id: u64, lab: &str, bootstrap: &str, dir: &Path) -> labctl_node::Config {
    labctl_node::Config {
        id,
        lab: lab.into(),
        bootstrap: bootstrap.to_string(),
        listen_host: "127.0.0.1".into(),
        advertise_host: "127.0.0.1".into(),
        advertise_http_host: "127.0.0.1".into(),
        public_http: None,
        control_port: 0,
        admin_port: 0,
        timing: labctl_core::Timing {
            heartbeat_ms: 50,
            suspicion_ms: 2000,
        },
        ready_file: Some(dir.join(format!("node-{id}.json"))),
        join_timeout: Duration::from_secs(10),
        data_dir: dir.join(format!("node-{id}")),
        nameserver: None,
        http_port: 0,
        session_secret: b"test secret".to_vec(),
        templates: None,
        durability: labctl_core::plane::Durability::Majority,
    }
}

/// Wait for a node's ready file (10 s at most) and read it.
pub async fn ready(path: &Path) -> labctl_node::Ready {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
