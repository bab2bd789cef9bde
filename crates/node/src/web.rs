//! The chat's HTTP service on an input node: started when the node becomes an input node, stopped
//! (and taken off the nameserver) when it stops being one (SPEC §10: the original never did).
//!
//! Two signals from the driver, in [`WebRole`]: `serve` (run the HTTP service) and `listed` (be
//! in the nameserver's list). While the lab re-elects, an input node leaves the nameserver at once
//! (it has no route to a root) but keeps its service up, answering 503 with the reason, until its
//! place in the new tree says whether it is still an input node. The service keeps its port
//! across such restarts, and a registration the nameserver did not take is tried again.

use std::sync::Arc;

use labctl_chat::ops::{AppError, Command as ChatCommand, Outcome, Read, Reply, Write};
use labctl_core::log::Pos;
use labctl_core::plane::{Answer, Need};
use labctl_core::NodeId;
use labctl_proto::nameserver::nameserver_client::NameserverClient;
use labctl_proto::nameserver::{DeregisterRequest, InputNode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::driver::Command;
use crate::store::LocalReads;

/// The HTTP layer's way into the cluster: every operation becomes a request routed by the driver,
/// except a read this node can answer from its own store ([`LocalReads`]).
pub struct NodeBackend {
    commands: mpsc::Sender<Command>,
    local: LocalReads,
}

impl NodeBackend {
    /// Route a request through the driver's data plane and wait for its answer: served (the
    /// store's outcome, and its log position), not done (503), or outcome unknown (504).
    async fn ask(
        &self,
        need: Need,
        key: Option<String>,
        body: String,
    ) -> Result<(Reply, Pos), AppError> {
        let (reply, answer) = oneshot::channel();
        let gone = || AppError::Unavailable("this node is shutting down".into());
        let span = match need {
            Need::Read { .. } => tracing::debug_span!(target: crate::hops::TARGET, "ask.read"),
            Need::Write => tracing::debug_span!(target: crate::hops::TARGET, "ask.write"),
        };
        let answer = async {
            self.commands
                .send(Command::Request {
                    need,
                    key,
                    body,
                    reply,
                })
                .await
                .map_err(|_| gone())?;
            answer.await.map_err(|_| gone())
        };
        match tracing::Instrument::instrument(answer, span).await? {
            Answer::Served { body, pos } => {
                let outcome: Outcome = serde_json::from_str(&body).map_err(|e| {
                    AppError::OutcomeUnknown(format!("an unreadable answer came back: {e}"))
                })?;
                outcome.map(|reply| (reply, pos))
            }
            Answer::NotDone { reason } => Err(AppError::Unavailable(reason)),
            Answer::Unknown { reason } => Err(AppError::OutcomeUnknown(reason)),
        }
    }
}

#[async_trait::async_trait]
impl labctl_web::Backend for NodeBackend {
    async fn read(&self, read: Read, min: Pos) -> Result<Reply, AppError> {
        let local = tracing::debug_span!(target: crate::hops::TARGET, "ask.read.local");
        if let Some(outcome) = local.in_scope(|| self.local.try_read(&read, min)) {
            return outcome;
        }
        let body = serde_json::to_string(&read).expect("reads serialize");
        self.ask(Need::Read { min }, None, body)
            .await
            .map(|(reply, _)| reply)
    }

    async fn write(&self, write: Write, key: Option<String>) -> Result<(Reply, Pos), AppError> {
        // The time this input node took the write travels in the log entry: every node applies
        // the same message (SPEC §4).
        let command = ChatCommand {
            write,
            sent_at: labctl_chat::store::timestamp(time::OffsetDateTime::now_utc())?,
        };
        let body = serde_json::to_string(&command).expect("commands serialize");
        self.ask(Need::Write, key, body).await
    }
}

/// How the HTTP service runs on this node.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// The node's id.
    pub id: NodeId,
    /// The lab's name.
    pub lab: String,
    /// Interface to listen on.
    pub listen_host: String,
    /// Host name clients (through the nameserver) use to reach this node.
    pub advertise_host: String,
    /// `host:port` where browsers reach the service when that differs from `advertise_host` and
    /// the port (a published port); the nameserver sends clients there and the admin API reports
    /// it. None: the same.
    pub public_address: Option<String>,
    /// HTTP port; 0 picks a free one.
    pub port: u16,
    /// The lab-wide session key.
    pub secret: Vec<u8>,
    /// Where to load page templates from (None: the ones built in).
    pub templates: Option<std::path::PathBuf>,
    /// The nameserver's gRPC address, if there is one.
    pub nameserver: Option<String>,
    /// Where to publish the HTTP address while serving (the admin API reports it): the public
    /// address when there is one.
    pub published: watch::Sender<Option<String>>,
    /// The password hashers: one pool for the node's whole life, whenever it serves (their
    /// memory is allocated once, not again at each start of the service).
    pub hashing: labctl_web::HashPool,
    /// Reads this node answers from its own store.
    pub local_reads: LocalReads,
}

/// What the web task should do, as the driver says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebRole {
    /// Run the HTTP service (the node is, or until its new tree says otherwise was, an input).
    pub serve: bool,
    /// Be in the nameserver's list (an input node with a route to its root).
    pub listed: bool,
}

/// How often a registration the nameserver did not take is tried again.
const REGISTER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// A running HTTP service: its address, and how to stop it.
struct Running {
    address: String,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Follow the driver's [`WebRole`]: serve HTTP while asked to, be listed at the nameserver while
/// asked to.
pub async fn follow_role(
    settings: WebSettings,
    commands: mpsc::Sender<Command>,
    mut role: watch::Receiver<WebRole>,
    mut stop: watch::Receiver<bool>,
) {
    let backend: Arc<dyn labctl_web::Backend> = Arc::new(NodeBackend {
        commands,
        local: settings.local_reads.clone(),
    });
    let mut running: Option<Running> = None;
    let mut registered = false;
    // The port the service first got; it keeps it when it starts again.
    let mut port = settings.port;
    loop {
        let wanted = if *stop.borrow() {
            WebRole::default()
        } else {
            *role.borrow_and_update()
        };
        if (!wanted.listed || !wanted.serve) && registered {
            deregister(&settings).await;
            registered = false;
        }
        match (wanted.serve, running.is_some()) {
            (true, false) => match start_anywhere(&settings, port, backend.clone()).await {
                Ok(server) => {
                    port = server
                        .address
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(port);
                    let shown = settings
                        .public_address
                        .clone()
                        .unwrap_or(server.address.clone());
                    let _ = settings.published.send(Some(shown));
                    running = Some(server);
                }
                Err(e) => warn!("the HTTP service did not start: {e:#}"),
            },
            (false, true) => {
                if let Some(server) = running.take() {
                    let _ = settings.published.send(None);
                    let _ = server.shutdown.send(());
                    let _ = server.task.await;
                    info!("HTTP service stopped: no longer an input node");
                }
            }
            _ => {}
        }
        if wanted.listed && !registered {
            if let Some(server) = &running {
                registered = register(&settings, &server.address).await;
            }
        }
        if *stop.borrow() {
            return;
        }
        // Try again shortly: a registration the nameserver did not take, a service that could
        // not start.
        let retry = (wanted.listed && running.is_some() && !registered)
            || (wanted.serve && running.is_none());
        tokio::select! {
            changed = role.changed() => if changed.is_err() { break },
            _ = stop.changed() => {}
            () = tokio::time::sleep(REGISTER_RETRY), if retry => {}
        }
    }
    if registered {
        deregister(&settings).await;
    }
    if let Some(server) = running.take() {
        let _ = server.shutdown.send(());
        let _ = server.task.await;
    }
}

/// Start the service on `port` (the one it had before); if another process took that port since,
/// on the configured one (0: any free port).
async fn start_anywhere(
    settings: &WebSettings,
    port: u16,
    backend: Arc<dyn labctl_web::Backend>,
) -> anyhow::Result<Running> {
    match start(settings, port, backend.clone()).await {
        Err(e) if port != settings.port => {
            warn!("the HTTP service could not have port {port} back ({e:#}); taking another");
            start(settings, settings.port, backend).await
        }
        result => result,
    }
}

async fn start(
    settings: &WebSettings,
    port: u16,
    backend: Arc<dyn labctl_web::Backend>,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind((settings.listen_host.as_str(), port)).await?;
    let address = format!(
        "{}:{}",
        settings.advertise_host,
        listener.local_addr()?.port()
    );
    let config = labctl_web::WebConfig {
        templates: settings.templates.clone(),
        hashing: settings.hashing.clone(),
        ..labctl_web::WebConfig::new(settings.secret.clone(), settings.id, settings.lab.clone())
    };
    let router = labctl_web::router(config, backend)?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        if let Err(e) = labctl_web::serve(listener, router, stopped).await {
            warn!("the HTTP service failed: {e}");
        }
    });
    info!(
        %address,
        public = settings.public_address.as_deref().unwrap_or(&address),
        "HTTP service started: this node is an input node"
    );
    Ok(Running {
        address,
        shutdown,
        task,
    })
}

/// Join the nameserver's list; false if it did not answer (try again later). Without a
/// nameserver there is nothing to join.
async fn register(settings: &WebSettings, address: &str) -> bool {
    let Some(nameserver) = &settings.nameserver else {
        return true;
    };
    let register = async {
        let mut client = NameserverClient::connect(format!("http://{nameserver}")).await?;
        client.register(registration(settings, address)).await?;
        anyhow::Ok(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), register).await {
        Ok(Ok(())) => {
            info!("listed at the nameserver");
            true
        }
        Ok(Err(e)) => {
            warn!("could not register with the nameserver at {nameserver}: {e:#}");
            false
        }
        Err(_) => {
            warn!("the nameserver at {nameserver} did not answer the registration in time");
            false
        }
    }
}

/// What the node tells the nameserver: it health-checks `address`, and sends clients to the public
/// address when there is one.
fn registration(settings: &WebSettings, address: &str) -> InputNode {
    InputNode {
        id: settings.id,
        http_address: address.to_owned(),
        public_address: settings.public_address.clone().unwrap_or_default(),
    }
}

async fn deregister(settings: &WebSettings) {
    if let Some(nameserver) = &settings.nameserver {
        let leave = async {
            let mut client = NameserverClient::connect(format!("http://{nameserver}")).await?;
            client
                .deregister(DeregisterRequest { id: settings.id })
                .await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(1), leave).await {
            Ok(Ok(())) => info!("left the nameserver's list"),
            Ok(Err(e)) => warn!("could not deregister from the nameserver: {e:#}"),
            Err(_) => warn!("the nameserver did not answer the deregistration in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use labctl_proto::nameserver::nameserver_server::{Nameserver, NameserverServer};
    use labctl_proto::nameserver::{DeregisterReply, ListReply, ListRequest, RegisterReply};
    use tonic::{Request, Response, Status};

    use super::*;

    /// A nameserver that only passes on the registrations it gets.
    struct Recorder(mpsc::UnboundedSender<InputNode>);

    #[tonic::async_trait]
    impl Nameserver for Recorder {
        async fn register(
            &self,
            request: Request<InputNode>,
        ) -> Result<Response<RegisterReply>, Status> {
            let _ = self.0.send(request.into_inner());
            Ok(Response::new(RegisterReply {}))
        }

        async fn deregister(
            &self,
            _request: Request<DeregisterRequest>,
        ) -> Result<Response<DeregisterReply>, Status> {
            Ok(Response::new(DeregisterReply {}))
        }

        async fn list(
            &self,
            _request: Request<ListRequest>,
        ) -> Result<Response<ListReply>, Status> {
            Ok(Response::new(ListReply::default()))
        }
    }

    /// Runs the HTTP service of an input node with `public_address` against a recording
    /// nameserver; returns its registration and the address the admin API would report.
    async fn register(public_address: Option<String>) -> (InputNode, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nameserver = listener.local_addr().unwrap().to_string();
        let (registered, mut registrations) = mpsc::unbounded_channel();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NameserverServer::new(Recorder(registered)))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let (published, mut shown) = watch::channel(None);
        let settings = WebSettings {
            id: 4,
            lab: "web-test".into(),
            listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            public_address,
            port: 0,
            secret: b"test secret".to_vec(),
            templates: None,
            nameserver: Some(nameserver),
            published,
            hashing: labctl_web::HashPool::new(1, 1),
            local_reads: crate::store::LocalReads::none(),
        };
        let (commands, _requests) = mpsc::channel(1);
        let (_role_tx, role) = watch::channel(WebRole {
            serve: true,
            listed: true,
        });
        let (stop_tx, stop) = watch::channel(false);
        let web = tokio::spawn(follow_role(settings, commands, role, stop));

        let registration = tokio::time::timeout(Duration::from_secs(10), registrations.recv())
            .await
            .expect("the node registers within 10 s")
            .expect("a registration");
        let shown = shown
            .wait_for(Option::is_some)
            .await
            .expect("an address is published")
            .clone()
            .unwrap();
        let _ = stop_tx.send(true);
        web.await.unwrap();
        (registration, shown)
    }

    #[tokio::test]
    async fn the_public_address_is_registered_and_reported() {
        let (registration, shown) = register(Some("127.0.0.1:5004".into())).await;
        assert_eq!(registration.id, 4);
        // The nameserver health-checks the address the service listens on…
        assert!(
            registration.http_address.starts_with("127.0.0.1:")
                && registration.http_address != "127.0.0.1:5004",
            "{registration:?}"
        );
        // …and sends clients to the public one, which the admin API reports too.
        assert_eq!(registration.public_address, "127.0.0.1:5004");
        assert_eq!(shown, "127.0.0.1:5004");
    }

    #[tokio::test]
    async fn without_a_public_address_the_listening_address_is_used() {
        let (registration, shown) = register(None).await;
        assert_eq!(registration.public_address, "");
        assert_eq!(shown, registration.http_address);
    }
}
