//! The Bootstrap gRPC service: changes go to the [driver](crate::driver), reads use its
//! published snapshot.

use std::sync::Arc;
use std::time::Duration;

use labctl_proto::bootstrap as proto;
use labctl_proto::bootstrap::bootstrap_server::Bootstrap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::driver::{self, Command, Reply};
use crate::state::State;

/// The longest a Neighbors call waits, whatever `wait_ms` asks.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long a Neighbors call with `wait_ms` waits.
pub fn wait_for(wait_ms: u32) -> Duration {
    Duration::from_millis(u64::from(wait_ms)).min(MAX_WAIT)
}

/// The service handed to tonic; cheap to clone.
#[derive(Clone)]
pub struct Service {
    commands: mpsc::Sender<Command>,
    snapshots: watch::Receiver<Arc<State>>,
    /// Cancelled when the daemon shuts down, so waiting Neighbors calls answer at once and the
    /// graceful shutdown does not wait out their `wait_ms`.
    stopping: CancellationToken,
}

impl Service {
    /// A service talking to the driver through `commands` and reading `snapshots`.
    pub fn new(
        commands: mpsc::Sender<Command>,
        snapshots: watch::Receiver<Arc<State>>,
        stopping: CancellationToken,
    ) -> Self {
        Self {
            commands,
            snapshots,
            stopping,
        }
    }

    /// Sends a command built around a reply channel and awaits the driver's answer.
    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        let gone = || Status::unavailable("the bootstrap is shutting down");
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

#[tonic::async_trait]
impl Bootstrap for Service {
    async fn load_topology(
        &self,
        request: Request<proto::Topology>,
    ) -> Result<Response<proto::LoadTopologyReply>, Status> {
        let topology = request.into_inner();
        self.ask(|reply| Command::LoadTopology { topology, reply })
            .await?;
        Ok(Response::new(proto::LoadTopologyReply {}))
    }

    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::NeighborsReply>, Status> {
        let request = request.into_inner();
        let neighbors = self
            .ask(|reply| Command::Register { request, reply })
            .await?;
        let lab_size = self.snapshots.borrow().lab_size();
        Ok(Response::new(proto::NeighborsReply {
            neighbors,
            lab_size,
        }))
    }

    /// Long poll: re-reads the neighbours on every published change until all have an address,
    /// the wait runs out or the daemon stops; then answers what it has.
    async fn neighbors(
        &self,
        request: Request<proto::NeighborsRequest>,
    ) -> Result<Response<proto::NeighborsReply>, Status> {
        let proto::NeighborsRequest { id, wait_ms } = request.into_inner();
        let deadline = Instant::now() + wait_for(wait_ms);
        let mut snapshots = self.snapshots.clone();
        let mut last_look = false;
        loop {
            // Marking the snapshot seen before reading it means a change published after this
            // line wakes `changed()` below: no registration can slip between look and wait.
            let snapshot = Arc::clone(&snapshots.borrow_and_update());
            let neighbors = snapshot.neighbors(id).map_err(|refusal| {
                warn!(node = id, "neighbors refused: {refusal}");
                driver::status(refusal)
            })?;
            if last_look || neighbors.iter().all(|n| !n.address.is_empty()) {
                return Ok(Response::new(proto::NeighborsReply {
                    neighbors,
                    lab_size: snapshot.lab_size(),
                }));
            }
            tokio::select! {
                changed = snapshots.changed() => last_look = changed.is_err(),
                () = tokio::time::sleep_until(deadline) => last_look = true,
                () = self.stopping.cancelled() => last_look = true,
            }
        }
    }

    async fn deregister(
        &self,
        request: Request<proto::DeregisterRequest>,
    ) -> Result<Response<proto::DeregisterReply>, Status> {
        let proto::DeregisterRequest { id } = request.into_inner();
        self.ask(|reply| Command::Deregister { id, reply }).await?;
        Ok(Response::new(proto::DeregisterReply {}))
    }

    async fn describe(
        &self,
        _request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::Description>, Status> {
        Ok(Response::new(self.snapshots.borrow().describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_capped_at_thirty_seconds() {
        assert_eq!(wait_for(0), Duration::ZERO);
        assert_eq!(wait_for(1500), Duration::from_millis(1500));
        assert_eq!(wait_for(30_000), MAX_WAIT);
        assert_eq!(wait_for(u32::MAX), MAX_WAIT);
    }
}
