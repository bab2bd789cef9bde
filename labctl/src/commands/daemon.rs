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
use crate::lab::ServiceReady;
use crate::Outcome;

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
                if let Some(text) = &a.topology_toml {
                    preload(&a.state_dir, text).await?;
                }
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
            DaemonCommand::Probe(a) => probe(&a).await?,
            DaemonCommand::Node(a) => {
                init_logging(a.log_file.as_deref(), &format!("node-{}", a.id))?;
                let session_secret = session_secret(
                    a.session_secret_file.as_deref(),
                    std::env::var_os(SESSION_SECRET_ENV),
                )?;
                let durability = a.durability;
                if let Some(interface) = &a.await_interface {
                    await_interface(interface, Duration::from_secs(a.join_timeout_secs)).await?;
                }
                let advertise_host = a.advertise.clone().unwrap_or_else(|| a.listen.clone());
                let advertise_http_host = match a.advertise_http.as_deref() {
                    None => advertise_host.clone(),
                    Some("auto") => facing(a.nameserver.as_deref()).await?,
                    Some(host) => host.to_string(),
                };
                let config = labctl_node::Config {
                    id: a.id,
                    lab: a.lab,
                    bootstrap: a.bootstrap,
                    advertise_host,
                    advertise_http_host,
                    public_http: a.public_http,
                    listen_host: a.listen,
                    control_port: a.control_port,
                    admin_port: a.admin_port,
                    timing: labctl_core::Timing {
                        heartbeat_ms: a.heartbeat_ms,
                        suspicion_ms: a.suspicion_ms,
                    },
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

/// Wait until network interface `name` is up (its operstate, which a veth has only when both
/// ends are up), checking every 10 ms for at most `limit`.
async fn await_interface(name: &str, limit: Duration) -> Result<()> {
    let state = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("operstate");
    let what = format!(
        "network interface {name} up (labctl makes it after the container starts: look at its \
         output)"
    );
    crate::poll::poll_until(&what, Duration::from_millis(10), limit, || async {
        Ok(std::fs::read_to_string(&state)
            .is_ok_and(|s| s.trim() == "up")
            .then_some(()))
    })
    .await?;
    tracing::info!("interface {name} is up");
    Ok(())
}

/// The environment variable a node reads its session key from without --session-secret-file.
pub const SESSION_SECRET_ENV: &str = "LABCTL_SESSION_SECRET";

/// The shortest session key taken from [`SESSION_SECRET_ENV`], in bytes.
pub const MIN_SESSION_SECRET: usize = 16;

/// The lab-wide session key: the contents of `file` when given, else the UTF-8 bytes of `env`
/// (the value of [`SESSION_SECRET_ENV`]), which must hold at least [`MIN_SESSION_SECRET`] bytes.
fn session_secret(file: Option<&Path>, env: Option<std::ffi::OsString>) -> Result<Vec<u8>> {
    if let Some(file) = file {
        return std::fs::read(file)
            .with_context(|| format!("reading the session key {}", file.display()));
    }
    let Some(value) = env else {
        anyhow::bail!(
            "no session key: pass --session-secret-file FILE or set {SESSION_SECRET_ENV} \
             (e.g. {SESSION_SECRET_ENV}=$(openssl rand -hex 32)); every node of a lab needs the \
             same one"
        );
    };
    let Ok(value) = value.into_string() else {
        anyhow::bail!(
            "{SESSION_SECRET_ENV} is not UTF-8: use printable characters, e.g. \
             $(openssl rand -hex 32)"
        );
    };
    if value.len() < MIN_SESSION_SECRET {
        anyhow::bail!(
            "{SESSION_SECRET_ENV} holds {} bytes, fewer than the {MIN_SESSION_SECRET} a session \
             key needs: use e.g. $(openssl rand -hex 32), or pass --session-secret-file FILE",
            value.len()
        );
    }
    Ok(value.into_bytes())
}

/// `--topology-toml`: parses `text` as a topology file and loads it into the bootstrap's state in
/// `state_dir`, as `labctl up`'s LoadTopology call would.
async fn preload(state_dir: &Path, text: &str) -> Result<()> {
    let topology = labctl_topology::Topology::from_toml(text, "--topology-toml")?;
    let message = labctl_proto::bootstrap::Topology {
        lab: topology.name.clone(),
        nodes: topology.ids(),
        links: topology
            .links()
            .into_iter()
            .map(|(a, b)| labctl_proto::bootstrap::Link { a, b })
            .collect(),
    };
    labctl_bootstrap::preload_topology(state_dir, &message)
        .await
        .with_context(|| format!("--topology-toml: loading lab {}'s topology", topology.name))?;
    Ok(())
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
///
/// With `LABCTL_HOPS=SECS` in its environment, the daemon also times each hop of every request
/// ([`labctl_node::hops`]) and logs the times of the last `SECS` seconds (5 if not a number) every
/// `SECS` seconds, as lines beginning `hop times`.
fn init_logging(file: Option<&Path>, name: &str) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let hops = std::env::var("LABCTL_HOPS").ok().map(|secs| {
        let every = secs.parse::<u64>().unwrap_or(5).clamp(1, 3600);
        (labctl_node::hops::HopTimes::new(), every)
    });
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let fmt = match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            fmt.with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .boxed()
        }
        None => fmt.with_writer(std::io::stderr).boxed(),
    };
    let hop_layer = hops.as_ref().map(|(layer, _)| {
        layer.clone().with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(labctl_node::hops::TARGET, tracing::Level::TRACE),
        )
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(hop_layer)
        .init();
    tracing::info!("{name} starting, pid {}", std::process::id());
    if let Some((hops, every)) = hops {
        tracing::info!("timing each hop of every request: hop times every {every} s");
        std::thread::Builder::new()
            .name("hop-times".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(every));
                let summary = hops.summary();
                if !summary.is_empty() {
                    tracing::info!("hop times of the last {every} s:\n{summary}");
                }
            })
            .context("starting the hop timer's thread")?;
    }
    Ok(())
}

/// This host's address on the interface that routes to `nameserver` (`host:port`): what the
/// nameserver and, in a container lab, the host see this node as. Nothing is sent: connecting a
/// UDP socket only picks the route.
async fn facing(nameserver: Option<&str>) -> Result<String> {
    let nameserver = nameserver
        .context("--advertise-http auto needs --nameserver, to find the interface facing it")?;
    // The nameserver may start a moment after this node: give its name time to appear in DNS.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let target = loop {
        match tokio::net::lookup_host(nameserver).await {
            Ok(mut found) => {
                if let Some(address) = found.next() {
                    break address;
                }
            }
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(e).with_context(|| {
                    format!("--advertise-http auto: resolving the nameserver {nameserver}")
                })
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket
        .connect(target)
        .await
        .with_context(|| format!("--advertise-http auto: finding the route to {target}"))?;
    Ok(socket.local_addr()?.ip().to_string())
}

/// One target's outcome, as `labctl daemon probe` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The `host:port` tried.
    pub target: String,
    /// Whether a TCP connection opened.
    pub open: bool,
    /// Why not: the lookup or connect error, or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Try every target at once; print one [`ProbeResult`] per line, in the order given.
async fn probe(args: &crate::cli::ProbeArgs) -> Result<()> {
    use std::io::Write;
    let limit = Duration::from_millis(args.timeout_ms);
    let attempts = args.targets.iter().map(|target| async move {
        let outcome =
            tokio::time::timeout(limit, tokio::net::TcpStream::connect(target.as_str())).await;
        let (open, error) = match outcome {
            Ok(Ok(_stream)) => (true, None),
            Ok(Err(e)) => (false, Some(e.to_string())),
            Err(_) => (false, Some("timeout".to_string())),
        };
        ProbeResult {
            target: target.clone(),
            open,
            error,
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut out = std::io::stdout().lock();
    for result in results {
        serde_json::to_writer(&mut out, &result)?;
        writeln!(out)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_key_comes_from_the_file_first_then_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("session.key");
        std::fs::write(&file, b"from the file").unwrap();
        let env = || Some(std::ffi::OsString::from("0123456789abcdef-from-env"));
        assert_eq!(
            session_secret(Some(&file), env()).unwrap(),
            b"from the file"
        );
        assert_eq!(
            session_secret(None, env()).unwrap(),
            b"0123456789abcdef-from-env"
        );
        let missing = session_secret(Some(&dir.path().join("nope")), env()).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }

    #[test]
    fn no_key_or_a_short_one_is_refused_naming_both_ways() {
        let none = session_secret(None, None).unwrap_err().to_string();
        assert!(
            none.contains("--session-secret-file") && none.contains(SESSION_SECRET_ENV),
            "{none}"
        );
        let short = session_secret(None, Some("fifteen bytes!!".into()))
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("15 bytes") && short.contains("16"),
            "{short}"
        );
        assert_eq!(
            session_secret(None, Some("sixteen bytes!!!".into())).unwrap(),
            b"sixteen bytes!!!"
        );
    }
}
