//! `labctl daemon bootstrap|nameserver|node`: the lab's daemons, run by labctl's runtimes.
//!
//! Hidden from `--help`: people run labs with `labctl up`, which starts these. Every daemon is a
//! library (`labctl-bootstrap`, `labctl-nameserver`, `labctl-node`) with a `run(config, listeners,
//! shutdown)`; this module only parses flags, sets up logging to a file, binds listeners, writes
//! the ready file labctl waits for, and stops on SIGTERM or Ctrl-C.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::cli::{DaemonArgs, DaemonCommand};
use crate::Outcome;

/// What the bootstrap and nameserver daemons write to their ready file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReady {
    /// The process id.
    pub pid: u32,
    /// `host:port` of the gRPC API.
    pub grpc: String,
    /// `host:port` of the HTTP endpoint (nameserver only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

pub fn run(args: DaemonArgs) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            DaemonCommand::Bootstrap(a) => {
                init_logging(a.log_file.as_deref(), "bootstrap")?;
                let listener = bind(&a.listen).await?;
                let grpc = listener.local_addr()?.to_string();
                ready(
                    a.ready_file.as_deref(),
                    &ServiceReady {
                        pid: std::process::id(),
                        grpc,
                        http: None,
                    },
                )?;
                let config = labctl_bootstrap::Config {
                    state_dir: a.state_dir,
                };
                labctl_bootstrap::run(config, listener, stop_signal()).await?;
            }
            DaemonCommand::Nameserver(a) => {
                init_logging(a.log_file.as_deref(), "nameserver")?;
                let grpc_listener = bind(&a.grpc).await?;
                let http_listener = bind(&a.http).await?;
                let info = ServiceReady {
                    pid: std::process::id(),
                    grpc: grpc_listener.local_addr()?.to_string(),
                    http: Some(http_listener.local_addr()?.to_string()),
                };
                ready(a.ready_file.as_deref(), &info)?;
                let config = labctl_nameserver::Config {
                    health_interval: Duration::from_millis(a.health_interval_ms),
                    ..labctl_nameserver::Config::default()
                };
                labctl_nameserver::run(config, grpc_listener, http_listener, stop_signal()).await?;
            }
            DaemonCommand::Node(a) => {
                init_logging(a.log_file.as_deref(), &format!("node-{}", a.id))?;
                let session_secret = std::fs::read(&a.session_secret_file).with_context(|| {
                    format!(
                        "reading the session key {}",
                        a.session_secret_file.display()
                    )
                })?;
                let durability = match a.durability.as_str() {
                    "replicas" => labctl_node::data::Durability::Replicas,
                    "writer" => labctl_node::data::Durability::Writer,
                    other => anyhow::bail!("--durability {other:?}: use replicas or writer"),
                };
                let config = labctl_node::Config {
                    id: a.id,
                    lab: a.lab,
                    bootstrap: a.bootstrap,
                    advertise_host: a.advertise.unwrap_or_else(|| a.listen.clone()),
                    listen_host: a.listen,
                    control_port: a.control_port,
                    admin_port: a.admin_port,
                    heartbeat: Duration::from_millis(a.heartbeat_ms),
                    suspicion: Duration::from_millis(a.suspicion_ms),
                    ready_file: a.ready_file,
                    join_timeout: Duration::from_secs(a.join_timeout_secs),
                    data_dir: a.data_dir,
                    nameserver: a.nameserver,
                    http_port: a.http_port,
                    session_secret,
                    templates: a.templates,
                    durability,
                };
                labctl_node::run(config, stop_signal()).await?;
            }
        }
        Ok(Outcome::Done)
    })
}

async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))
}

/// Write the ready file atomically: readers see nothing or all of it.
fn ready(path: Option<&Path>, info: &ServiceReady) -> Result<()> {
    if let Some(path) = path {
        labctl_node::write_atomically(path, &serde_json::to_vec_pretty(info)?)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    Ok(())
}

/// Log to `file` (or stderr), with the daemon's name on every line. `RUST_LOG` overrides the level.
fn init_logging(file: Option<&Path>, name: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    tracing::info!("{name} starting, pid {}", std::process::id());
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
    }
}
