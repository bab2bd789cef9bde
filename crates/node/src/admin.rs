//! The node's admin API for labctl (gRPC, `proto/node.proto`): status, a live trace, shutdown,
//! and the transport's fault filter.
//!
//! Handlers never touch the node's state: they ask the driver by command and await its reply.

use std::pin::Pin;

use labctl_core::{NodeId, Role};
use labctl_proto::node::node_admin_server::NodeAdmin;
use labctl_proto::node::{
    Counters, LinkFilter as ProtoFilter, LinkFilters, NodeStatus, SetLinkFiltersReply,
    ShutdownReply, ShutdownRequest, StatusRequest, TraceEvent, TraceRequest,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::driver::{Command, Snapshot};
use labctl_core::event::TraceLine;

/// Where the node is in its start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Registering with the bootstrap and waiting for the neighbours' addresses.
    Joining,
    /// The driver runs.
    Running,
}

/// The admin service.
pub struct Admin {
    pub(crate) id: NodeId,
    pub(crate) control_address: String,
    pub(crate) admin_address: String,
    pub(crate) stage: watch::Receiver<Stage>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) trace: broadcast::Sender<TraceLine>,
    /// When the driver's clock started (Unix ms), once it runs.
    pub(crate) start_unix_ms: std::sync::Arc<std::sync::OnceLock<u64>>,
    pub(crate) stop: watch::Sender<bool>,
    /// The chat's HTTP address while this node serves it.
    pub(crate) http_address: watch::Receiver<Option<String>>,
}

impl Admin {
    fn base(&self) -> NodeStatus {
        NodeStatus {
            id: self.id,
            election: "joining".into(),
            control_address: self.control_address.clone(),
            admin_address: self.admin_address.clone(),
            pid: std::process::id(),
            http_address: self.http_address.borrow().clone().unwrap_or_default(),
            ..NodeStatus::default()
        }
    }
}

/// The proto status of a driver snapshot.
fn to_proto(base: NodeStatus, snapshot: Snapshot) -> NodeStatus {
    let s = snapshot.status;
    let election = serde_json::to_value(s.election)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    NodeStatus {
        epoch: s.epoch,
        election,
        leader: s.leader,
        parent: s.parent,
        depth: s.depth,
        children: s.children,
        subtree: s.subtree,
        roles: s.roles.iter().map(Role::to_string).collect(),
        neighbors: snapshot.neighbors,
        alive_neighbors: snapshot.alive.into_iter().collect(),
        counters: Some(Counters {
            setup: s.counters.setup,
            yo_down: s.counters.yo_down,
            yo_up: s.counters.yo_up,
            q: s.counters.q,
            yes: s.counters.yes,
            iterations: s.counters.iterations,
            out_degrees: s.counters.out_degrees.iter().map(|&d| d as u64).collect(),
            dropped: s.counters.dropped,
        }),
        uptime_ms: snapshot.uptime.as_millis() as u64,
        applied: snapshot.applied,
        suspected: s.suspected,
        members: s.members,
        pending: s.pending,
        lab_size: snapshot.lab_size,
        incarnation: snapshot.incarnation,
        filters: proto_filters(&snapshot.filters),
        ..base
    }
}

/// A link filter as the admin API carries it (`SetLinkFilters`, `NodeStatus.filters`).
pub fn proto_filters(
    filters: &std::collections::BTreeMap<labctl_core::NodeId, labctl_fault::LinkFilter>,
) -> Vec<ProtoFilter> {
    filters
        .iter()
        .map(|(&peer, f)| ProtoFilter {
            peer,
            cut: f.cut,
            delay_ms: f.delay_ms,
            loss_percent: f.loss_percent,
        })
        .collect()
}

/// Resolves once the stop switch is on (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

type TraceStream = Pin<Box<dyn Stream<Item = Result<TraceEvent, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAdmin for Admin {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<NodeStatus>, Status> {
        if *self.stage.borrow() == Stage::Joining {
            return Ok(Response::new(self.base()));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        let snapshot = answer
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        Ok(Response::new(to_proto(self.base(), snapshot)))
    }

    type TraceStream = TraceStream;

    async fn trace(&self, request: Request<TraceRequest>) -> Result<Response<TraceStream>, Status> {
        let request = request.into_inner();
        // The record comes from the driver with a subscription that starts right after it; a
        // joining node has recorded nothing yet.
        let (recorded, source) = if request.recorded && *self.stage.borrow() != Stage::Joining {
            let (reply, answer) = oneshot::channel();
            self.commands
                .send(Command::Trace(reply))
                .await
                .map_err(|_| Status::unavailable("the node is shutting down"))?;
            let r = answer
                .await
                .map_err(|_| Status::unavailable("the node is shutting down"))?;
            (r.lines, r.live)
        } else {
            (Vec::new(), self.trace.subscribe())
        };
        let follow = !request.recorded_only;
        // The stream ends when the node stops: a reader must not hold the node's shutdown up.
        let (tx, rx) = mpsc::channel(1024);
        let mut source = BroadcastStream::new(source);
        let stopped = stopped(self.stop.subscribe());
        tokio::spawn(async move {
            for line in recorded {
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    line = source.next() => match line {
                        Some(line) => if tx.send(line).await.is_err() { return },
                        None => return,
                    },
                    () = &mut stopped => return,
                }
            }
        });
        // Lines carry time since the node's driver started (a line exists only once it runs);
        // the wall clock is that start plus it.
        let start_unix_ms = self.start_unix_ms.clone();
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |line| match line {
            Ok(line) => Ok(TraceEvent {
                t_ms: line.t,
                node: line.node,
                json: serde_json::to_string(&line).expect("trace lines serialize"),
                unix_ms: start_unix_ms.get().copied().unwrap_or_default() + line.t,
            }),
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::resource_exhausted(format!(
                "the trace reader fell behind and {n} events were skipped"
            ))),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_link_filters(
        &self,
        request: Request<LinkFilters>,
    ) -> Result<Response<SetLinkFiltersReply>, Status> {
        if *self.stage.borrow() == Stage::Joining {
            return Err(Status::unavailable(
                "the node is still joining its lab; set its filters once it runs",
            ));
        }
        let mut filters = std::collections::BTreeMap::new();
        for f in request.into_inner().filters {
            if f.loss_percent > labctl_fault::MAX_LOSS_PERCENT
                || f.delay_ms > labctl_fault::MAX_DELAY_MS
            {
                return Err(Status::invalid_argument(format!(
                    "link to {}: a loss of at most {} % and a delay of at most {} ms",
                    f.peer,
                    labctl_fault::MAX_LOSS_PERCENT,
                    labctl_fault::MAX_DELAY_MS
                )));
            }
            let filter = labctl_fault::LinkFilter {
                cut: f.cut,
                delay_ms: f.delay_ms,
                loss_percent: f.loss_percent,
            };
            if filters.insert(f.peer, filter).is_some() {
                return Err(Status::invalid_argument(format!(
                    "link to {} is listed twice",
                    f.peer
                )));
            }
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::SetFilters(filters, reply))
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?;
        Ok(Response::new(SetLinkFiltersReply {}))
    }

    async fn shutdown(
        &self,
        _: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownReply>, Status> {
        let _ = self.stop.send(true);
        Ok(Response::new(ShutdownReply {}))
    }
}
