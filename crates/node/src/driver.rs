//! The driver: the one task that owns a node's state.
//!
//! It waits on four things at once: frames from the transport, the heartbeat tick, commands from
//! the admin API, and shutdown. Each event goes to the protocol core ([`labctl_core::Node`]) or the
//! link table ([`Links`]); the core's outputs are carried out here (frames to send, events to log
//! and stream). No other task touches the state: the admin API asks by command and awaits a reply.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use labctl_core::event::{TraceEntry, TraceLine, Wire};
use labctl_core::{Event, Input, Node, NodeId, Output, Status};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::data::{Answer, DataState, Durability};
use crate::frame::Frame;
use crate::links::{Links, Route};
use crate::store::{Done, StoreThread};
use crate::transport::{Inbound, Transport};
use labctl_core::dataplane::Need;

/// What the admin API can ask the driver.
#[derive(Debug)]
pub enum Command {
    /// A snapshot of the node.
    Status(oneshot::Sender<Snapshot>),
    /// A client's request from this node's HTTP layer: route it and answer on `reply`.
    Request {
        /// Read or write.
        need: Need,
        /// The operation (JSON).
        body: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Answer>,
    },
}

/// Everything the admin API reports about a node.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The protocol core's view.
    pub status: Status,
    /// Topology neighbours.
    pub neighbors: Vec<NodeId>,
    /// Neighbours heard from and not suspected.
    pub alive: BTreeSet<NodeId>,
    /// Time since the node started.
    pub uptime: Duration,
    /// The last log entry the node's database holds.
    pub applied: u64,
}

/// The driver's settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// This node's id.
    pub id: NodeId,
    /// The lab's name (heartbeats carry it; frames of another lab are refused).
    pub lab: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Silence before a neighbour is suspected.
    pub suspicion: Duration,
    /// When a write counts as done.
    pub durability: Durability,
}

/// The driver task's state.
pub struct Driver<T: Transport> {
    pub(crate) config: DriverConfig,
    pub(crate) node: Node,
    links: Links,
    transport: T,
    started: Instant,
    election_started: bool,
    trace: broadcast::Sender<TraceLine>,
    out: Vec<Output>,
    pub(crate) data: DataState,
    pub(crate) store: StoreThread,
    /// Whether this node is an input node now: the HTTP server follows it.
    pub(crate) input_role: tokio::sync::watch::Sender<bool>,
}

impl<T: Transport> Driver<T> {
    /// A driver for node `config.id` with these neighbours, over `transport`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: DriverConfig,
        neighbors: BTreeSet<NodeId>,
        transport: T,
        trace: broadcast::Sender<TraceLine>,
        store: StoreThread,
        applied: u64,
        input_role: tokio::sync::watch::Sender<bool>,
    ) -> Self {
        Driver {
            node: Node::new(config.id, neighbors.iter().copied()),
            links: Links::new(neighbors, config.suspicion),
            data: DataState::new(config.id, applied, config.durability),
            config,
            transport,
            started: Instant::now(),
            election_started: false,
            trace,
            out: Vec::new(),
            store,
            input_role,
        }
    }

    /// Run until `shutdown` fires or the transport fails.
    pub async fn run(
        mut self,
        mut inbound: mpsc::UnboundedReceiver<Inbound>,
        mut commands: mpsc::Receiver<Command>,
        mut store_done: mpsc::UnboundedReceiver<Done>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        // A lone node has no links to wait for: it elects itself at once.
        self.maybe_start_election();
        loop {
            tokio::select! {
                event = inbound.recv() => match event {
                    Some(Inbound::Failed(reason)) => return Err(reason),
                    Some(event) => self.on_inbound(event),
                    None => return Err("the transport stopped".into()),
                },
                _ = tick.tick() => self.on_tick(),
                Some(command) = commands.recv() => self.on_command(command),
                Some(done) = store_done.recv() => self.on_store(done),
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    fn on_inbound(&mut self, event: Inbound) {
        match event {
            Inbound::Frame { from, payload } => self.on_frame(from, &payload),
            Inbound::Stranger { identity, len } => {
                warn!(%identity, len, "frame from an unknown identity dropped (not node-<id>)");
            }
            Inbound::Unroutable { to, seq, payload } => {
                // Heartbeats may be lost; control frames wait for the link to come back.
                if let Some(seq) = seq {
                    debug!(
                        to,
                        seq, "control frame unroutable; queued until the link is up"
                    );
                    self.links.unroutable(to, seq, payload);
                }
            }
            Inbound::Failed(_) => unreachable!("handled in run"),
        }
    }

    fn on_frame(&mut self, from: NodeId, payload: &[u8]) {
        if !self.links.contains(from) {
            warn!(
                from,
                "frame from node {from}, which is not a neighbour, dropped"
            );
            return;
        }
        let frame = match Frame::decode(payload) {
            Ok(frame) => frame,
            Err(e) => {
                warn!(from, "{e}; dropped");
                return;
            }
        };
        if let Frame::Heartbeat { lab } = &frame {
            if lab != &self.config.lab {
                warn!(from, %lab, "heartbeat from lab {lab:?}, not ours, dropped");
                return;
            }
        }
        // Anything from a neighbour proves the link; frames queued for it can go now.
        if let Some(flushed) = self.links.heard(from, Instant::now()) {
            info!(neighbor = from, "link up");
            let _ = self.transport.resume(from);
            for (seq, frame) in flushed {
                self.transmit(from, Some(seq), frame);
            }
            self.maybe_start_election();
        }
        match frame {
            Frame::Control { message } => {
                self.record(TraceEntry::Wire(Wire::Receive {
                    from,
                    message: message.clone(),
                }));
                self.feed(Input::Receive { from, message });
            }
            Frame::Data { message } => self.on_data(from, message),
            Frame::Heartbeat { .. } => {}
        }
    }

    fn on_tick(&mut self) {
        let heartbeat = Frame::Heartbeat {
            lab: self.config.lab.clone(),
        }
        .encode();
        let neighbors: Vec<NodeId> = self.links.neighbors().collect();
        for peer in neighbors {
            self.transmit(peer, None, heartbeat.clone());
        }
        self.expire(Instant::now());
        for suspect in self.links.suspect(Instant::now()) {
            warn!(
                neighbor = suspect,
                "neighbour suspected: silent for over {:?}", self.config.suspicion
            );
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(Snapshot {
                    status: self.node.status(),
                    neighbors: self.links.neighbors().collect(),
                    alive: self.links.alive(),
                    uptime: self.started.elapsed(),
                    applied: self.data.applied,
                });
            }
            Command::Request { need, body, reply } => self.originate(need, body, reply),
        }
    }

    /// The election starts once every link is up: no fixed sleep stands in for readiness.
    fn maybe_start_election(&mut self) {
        if !self.election_started && self.links.all_up() {
            self.election_started = true;
            info!(
                "all {} links up; starting the election",
                self.links.up_count()
            );
            self.feed(Input::Start { epoch: 1 });
        }
    }

    /// Hand one input to the protocol core and carry out what it asks.
    fn feed(&mut self, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.node.handle(input, &mut out);
        for output in out.drain(..) {
            match output {
                Output::Send { to, message } => {
                    self.record(TraceEntry::Wire(Wire::Send {
                        to,
                        message: message.clone(),
                    }));
                    self.send_frame(to, Frame::Control { message });
                }
                Output::Event(event) => {
                    log_event(&event);
                    let roles = matches!(event, Event::Roles { .. });
                    self.record(TraceEntry::Node(event));
                    if roles {
                        self.take_roles();
                    }
                }
            }
        }
        self.out = out;
    }

    /// Send a frame that must not be lost: numbered on its link, queued while the link is down.
    pub(crate) fn send_frame(&mut self, to: NodeId, frame: Frame) {
        if let (Route::Send(seq), Some(frame)) = self.links.route(to, frame.encode()) {
            self.transmit(to, Some(seq), frame);
        }
    }

    fn transmit(&mut self, to: NodeId, seq: Option<u64>, frame: Vec<u8>) {
        if let Err(e) = self.transport.send(to, seq, frame) {
            warn!(to, "transport: {e}");
        }
    }

    fn record(&self, what: TraceEntry) {
        // Only subscribers (labctl's trace view) pay for this; no subscriber, no work kept.
        if self.trace.receiver_count() > 0 {
            let _ = self.trace.send(TraceLine {
                t: self.started.elapsed().as_millis() as u64,
                node: self.config.id,
                what,
            });
        }
    }
}

fn log_event(event: &Event) {
    match event {
        Event::Dropped { from, reason } => warn!(from, "message dropped: {reason}"),
        Event::EpochStarted { .. }
        | Event::Elected { .. }
        | Event::Joined { .. }
        | Event::Complete { .. }
        | Event::Roles { .. } => info!(?event),
        _ => debug!(?event),
    }
}
