//! The nameserver: a registry of live input nodes behind an HTTP endpoint that redirects each client
//! to one of them.
//!
//! Input nodes (the leaves of the spanning tree, SPEC §3.4) register their HTTP address over gRPC
//! (`proto/nameserver.proto`). Browsers and programs talk to the nameserver's HTTP address only: every
//! request is answered with `307 Temporary Redirect` to a live input node, chosen round robin, keeping
//! the method, the path and the query exactly as sent. A background checker asks every registered node
//! for `GET /healthz` and drops the ones that stop answering, so clients are never sent to a dead node.
//! A node may also register a public address (a port published on the host, in a container lab):
//! clients are then sent there, while health checks keep going to its HTTP address.
//!
//! Driving one nameserver:
//!
//! ```no_run
//! # async fn example() -> Result<(), labctl_nameserver::Error> {
//! use tokio::net::TcpListener;
//!
//! // The caller binds the sockets, so tests and labs can use port 0.
//! let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
//! let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! // Serves until `shutdown` resolves; input nodes then call `Register { id, http_address }` on
//! // `grpc`, and clients are redirected from `http`.
//! labctl_nameserver::run(labctl_nameserver::Config::default(), grpc, http, shutdown).await
//! # }
//! ```
//!
//! Endpoints of the HTTP side besides the redirect: `GET /healthz` (the nameserver's own health,
//! `200 ok`) and `GET /_nameserver/inputs` (the live input nodes as JSON). When no input node is live
//! every other request gets `503 Service Unavailable` with a sentence saying why, and `Retry-After`.

mod address;
mod grpc;
mod health;
mod redirect;
mod registry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use labctl_proto::nameserver::nameserver_server::NameserverServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::registry::Registry;

/// How the nameserver checks the health of its input nodes.
#[derive(Clone, Debug)]
pub struct Config {
    /// Time between two rounds of health checks (every registered node is checked in each round).
    pub health_interval: Duration,
    /// How long one `GET /healthz` may take before it counts as a failure.
    pub health_timeout: Duration,
    /// Consecutive failed checks after which a node is dropped from the registry.
    pub health_failures: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_millis(250),
            health_timeout: Duration::from_millis(500),
            health_failures: 3,
        }
    }
}

/// Why the nameserver could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid nameserver configuration: {0}")]
    Config(&'static str),
    /// The gRPC registry server failed.
    #[error("the nameserver's gRPC registry failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The HTTP redirector failed.
    #[error("the nameserver's HTTP redirector failed")]
    Http(#[source] std::io::Error),
}

/// Serve the gRPC registry on `grpc` and the HTTP redirector on `http` until `shutdown` resolves.
///
/// Both servers and the health checker share one registry. After `shutdown` resolves the servers
/// stop accepting, finish the requests in flight, and `run` returns `Ok(())`. If either server fails,
/// the other one and the checker are stopped and the error is returned.
pub async fn run(
    config: Config,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if config.health_interval.is_zero() {
        return Err(Error::Config("health_interval must be longer than zero"));
    }
    if config.health_timeout.is_zero() {
        return Err(Error::Config("health_timeout must be longer than zero"));
    }
    if config.health_failures == 0 {
        return Err(Error::Config("health_failures must be at least 1"));
    }

    let registry = Arc::new(Registry::default());
    tracing::info!(
        grpc = %display_addr(&grpc),
        http = %display_addr(&http),
        ?config,
        "nameserver serving"
    );

    // One shutdown future, three parties that must stop: fan it out through a watch channel.
    let (stop, stopped) = watch::channel(false);
    let wait_for_stop = |mut stopped: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which only happens once `run` is over anyway.
        let _ = stopped.wait_for(|&stop| stop).await;
    };

    let trigger = async move {
        shutdown.await;
        tracing::info!("nameserver shutting down");
        let _ = stop.send(true);
        Ok(())
    };
    let grpc_server = tonic::transport::Server::builder()
        .add_service(NameserverServer::new(grpc::Service::new(registry.clone())))
        .serve_with_incoming_shutdown(
            // No Nagle: a small answer would wait for the client's delayed ACK (40 ms).
            tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
            wait_for_stop(stopped.clone()),
        );
    let grpc_server = async move { grpc_server.await.map_err(Error::Grpc) };
    let http_server = axum::serve(http, redirect::router(registry.clone()))
        .with_graceful_shutdown(wait_for_stop(stopped.clone()));
    let http_server = async move { http_server.await.map_err(Error::Http) };
    let checker = async move {
        tokio::select! {
            () = health::run(config, registry) => {}
            () = wait_for_stop(stopped) => {}
        }
        Ok(())
    };

    tokio::try_join!(trigger, grpc_server, http_server, checker)?;
    tracing::info!("nameserver stopped");
    Ok(())
}

/// A listener's local address for the logs, or why it has none.
fn display_addr(listener: &TcpListener) -> String {
    match listener.local_addr() {
        Ok(addr) => addr.to_string(),
        Err(err) => format!("unknown ({err})"),
    }
}
