//! The one task that changes the state.
//!
//! gRPC handlers send a [`Command`] and await its oneshot reply. The driver applies the command
//! to a copy of the current state, **saves the copy before acknowledging**, then publishes it on
//! a `watch` channel, which wakes every waiting Neighbors call. Reads (Neighbors, Describe) use
//! the published snapshot and never reach the driver.
//!
//! Why a task rather than a mutex: writes are serialised by construction (one write of
//! `bootstrap.json.tmp` at a time), the fsync runs on a blocking thread without holding any lock
//! that an async handler could wait on, and a failed write leaves the published state untouched,
//! so memory and disk never disagree.

use std::sync::Arc;

use labctl_proto::bootstrap as proto;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use tracing::{info, warn};

use crate::state::{Refusal, Registered, State};
use crate::store::Store;

/// The reply channel of a command.
pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// A change asked of the driver.
#[derive(Debug)]
pub enum Command {
    /// LoadTopology.
    LoadTopology {
        topology: proto::Topology,
        reply: Reply<()>,
    },
    /// Register; answers the node's neighbours.
    Register {
        request: proto::RegisterRequest,
        reply: Reply<Vec<proto::Neighbor>>,
    },
    /// Deregister.
    Deregister { id: u64, reply: Reply<()> },
}

/// The driver: the state's single writer.
pub struct Driver {
    store: Store,
    published: watch::Sender<Arc<State>>,
    commands: mpsc::Receiver<Command>,
}

impl Driver {
    /// A driver starting from `state`, and the receiver that sees every state it publishes.
    pub fn new(
        store: Store,
        state: State,
        commands: mpsc::Receiver<Command>,
    ) -> (Self, watch::Receiver<Arc<State>>) {
        let (published, snapshots) = watch::channel(Arc::new(state));
        let driver = Self {
            store,
            published,
            commands,
        };
        (driver, snapshots)
    }

    /// Runs until every command sender is gone (the server has shut down).
    pub async fn run(mut self) {
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::LoadTopology { topology, reply } => {
                    let result = self.load_topology(topology).await;
                    let _ = reply.send(result);
                }
                Command::Register { request, reply } => {
                    let result = self.register(request).await;
                    let _ = reply.send(result);
                }
                Command::Deregister { id, reply } => {
                    let result = self.deregister(id).await;
                    let _ = reply.send(result);
                }
            }
        }
    }

    async fn load_topology(&mut self, topology: proto::Topology) -> Result<(), Status> {
        let mut next = self.current();
        let dropped = next.load_topology(&topology).map_err(|refusal| {
            warn!(lab = %topology.lab, "topology refused: {refusal}");
            status(refusal)
        })?;
        self.commit(next).await?;
        info!(
            lab = %topology.lab,
            nodes = topology.nodes.len(),
            links = topology.links.len(),
            ?dropped,
            "topology loaded"
        );
        Ok(())
    }

    async fn register(
        &mut self,
        request: proto::RegisterRequest,
    ) -> Result<Vec<proto::Neighbor>, Status> {
        let proto::RegisterRequest {
            id,
            address,
            rejoin,
        } = request;
        let mut next = self.current();
        let (outcome, neighbors) = next.register(id, &address, rejoin).map_err(|refusal| {
            warn!(node = id, %address, rejoin, "registration refused: {refusal}");
            status(refusal)
        })?;
        self.commit(next).await?;
        match outcome {
            Registered::New => info!(node = id, %address, "node registered"),
            Registered::Again => info!(node = id, %address, "node registered again"),
            Registered::Replaced { previous } => {
                info!(node = id, %address, %previous, "node rejoined at a new address")
            }
        }
        Ok(neighbors)
    }

    async fn deregister(&mut self, id: u64) -> Result<(), Status> {
        let mut next = self.current();
        if next.deregister(id) {
            self.commit(next).await?;
            info!(node = id, "node deregistered");
        } else {
            info!(
                node = id,
                "deregister of a node that was not registered: nothing to do"
            );
        }
        Ok(())
    }

    /// A copy of the current state to change.
    fn current(&self) -> State {
        State::clone(&self.published.borrow())
    }

    /// Saves `next` and makes it current. Nothing is saved or published when it equals the
    /// current state; when the save fails the current state stays.
    async fn commit(&mut self, next: State) -> Result<(), Status> {
        if **self.published.borrow() == next {
            return Ok(());
        }
        let bytes = Store::encode(&next);
        let store = self.store.clone();
        let saved = tokio::task::spawn_blocking(move || store.write(&bytes))
            .await
            .map_err(|err| Status::internal(format!("saving the bootstrap state failed: {err}")))?;
        if let Err(err) = saved {
            warn!("{err}");
            return Err(Status::internal(format!(
                "{err}; the change was not applied"
            )));
        }
        self.published.send_replace(Arc::new(next));
        Ok(())
    }
}

/// The gRPC status for a refusal.
pub fn status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Invalid(message) => Status::invalid_argument(message),
        Refusal::NotFound(message) => Status::not_found(message),
        Refusal::AlreadyExists(message) => Status::already_exists(message),
    }
}
