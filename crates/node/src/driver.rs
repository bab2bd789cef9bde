//! The driver: the one task that owns a node's state.
//!
//! It waits on six things at once: frames from the transport, the protocol core's next wake-up,
//! the data plane's tick, the store's reports, commands from the admin API and the HTTP layer, and
//! shutdown. Each event goes to the node's [`Replica`]: its control plane (a live
//! [`labctl_core::Node`]: it keeps the failure detector and re-elects) or its data plane
//! ([`labctl_core::plane::DataPlane`]: requests and the replicated log). What they ask is carried
//! out here, in order: frames and heartbeats to send, an epoch to make durable before anything is
//! sent in it, the next wake-up, store jobs, answers to the HTTP layer, events to log and stream.
//! Nothing is decided here. No other task touches the state: the admin API asks by command and
//! awaits a reply.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labctl_core::event::{TraceEntry, TraceLine, Wire};
use labctl_core::log::Shape;
use labctl_core::plane::RequestId;
use labctl_core::plane::{
    Answer, DataPlane, Durability, Need, PlaneConfig, PlaneInput, PlaneOutput,
};
use labctl_core::{
    Epoch, Event, Input, LiveConfig, Millis, Node, NodeId, Output, Replica, Role, Status, Timing,
};
use labctl_fault::LinkFilter;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::frame::Frame;
use crate::links::{Links, Route};
use crate::record::Record;
use crate::store::StoreThread;
use crate::transport::{Inbound, Transport};
use crate::web::WebRole;

/// What the admin API and the HTTP layer can ask the driver.
#[derive(Debug)]
pub enum Command {
    /// A snapshot of the node.
    Status(oneshot::Sender<Snapshot>),
    /// A client's request from this node's HTTP layer: route it and answer on `reply`.
    Request {
        /// Read (with the client's read position) or write.
        need: Need,
        /// The write's `Idempotency-Key`, scoped to its user.
        key: Option<String>,
        /// The operation (JSON).
        body: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Answer>,
    },
    /// Replace the transport's fault filter (labctl fault, process runtime).
    SetFilters(BTreeMap<NodeId, LinkFilter>, oneshot::Sender<()>),
    /// The recorded trace, and the live trace from the line after it (no gap, no repeat).
    Trace(oneshot::Sender<Recorded>),
}

/// A node's recorded trace and a subscription to what follows it.
#[derive(Debug)]
pub struct Recorded {
    /// The record: the lines of the node's last epochs, each from its start.
    pub lines: Vec<TraceLine>,
    /// Every line after them.
    pub live: broadcast::Receiver<TraceLine>,
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
    /// The node's database is applied up to here (committed entries).
    pub applied: u64,
    /// The lab's size, as the bootstrap said.
    pub lab_size: u64,
    /// This run of the node.
    pub incarnation: u64,
    /// The transport's fault filter in force.
    pub filters: BTreeMap<NodeId, LinkFilter>,
}

/// The driver's settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// This node's id.
    pub id: NodeId,
    /// The lab's name (heartbeats carry it; frames of another lab are refused).
    pub lab: String,
    /// Heartbeats and suspicion.
    pub timing: Timing,
    /// How many nodes the lab has (the quorum, and `majority` durability, count against it).
    pub lab_size: u64,
    /// This run of the node (a new value at every start).
    pub incarnation: u64,
    /// Where the node's epoch is made durable; its content when the node started (0: none).
    pub epoch_file: PathBuf,
    /// The epoch read from `epoch_file` at start.
    pub persisted_epoch: Epoch,
    /// When a write counts as done.
    pub durability: Durability,
}

/// The driver task's state.
pub struct Driver<T: Transport> {
    pub(crate) config: DriverConfig,
    replica: Replica,
    links: Links,
    transport: T,
    started: Instant,
    /// When the protocol core wants its next [`Input::Tick`].
    wake: Instant,
    /// The fault filter in force (as last set over the admin API).
    filters: BTreeMap<NodeId, LinkFilter>,
    /// Set when the node can no longer run safely (its epoch could not be made durable).
    fatal: Option<String>,
    /// The epoch the core's events speak of, as they are carried out (the node's own state may
    /// be ahead within one input).
    events_epoch: labctl_core::Epoch,
    trace: broadcast::Sender<TraceLine>,
    /// The trace of the node's last epochs (`labctl trace NAME`).
    record: Record,
    /// `started` on the wall clock, in Unix milliseconds: a lab's traces merge on it.
    start_unix_ms: u64,
    out: Vec<Output>,
    data_out: Vec<PlaneOutput>,
    /// Requests of this node's HTTP layer, waiting for the data plane's answer.
    http: BTreeMap<RequestId, oneshot::Sender<Answer>>,
    store: StoreThread,
    /// Whether this node serves HTTP and is listed at the nameserver: the web task follows it.
    pub(crate) web_role: watch::Sender<WebRole>,
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
        (shape, applied): (Shape, u64),
        web_role: watch::Sender<WebRole>,
    ) -> Self {
        let live = LiveConfig {
            timing: config.timing,
            lab_size: config.lab_size,
            incarnation: config.incarnation,
            persisted_epoch: config.persisted_epoch,
        };
        let started = Instant::now();
        let start_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let plane = DataPlane::new(PlaneConfig {
            id: config.id,
            lab_size: config.lab_size,
            durability: config.durability,
            // Request ids start from this run's incarnation (the clock in µs, mixed with the
            // pid): a restarted node never reuses a run's.
            first_request: config.incarnation,
            shape,
            applied,
        });
        let node = Node::live(config.id, neighbors.iter().copied(), live, 0);
        Driver {
            replica: Replica::new(node, Some(plane), config.lab_size),
            links: Links::new(neighbors),
            config,
            transport,
            started,
            wake: started,
            filters: BTreeMap::new(),
            fatal: None,
            events_epoch: live.persisted_epoch,
            trace,
            record: Record::default(),
            start_unix_ms,
            out: Vec::new(),
            data_out: Vec::new(),
            http: BTreeMap::new(),
            store,
            web_role,
        }
    }

    /// When the node started on the wall clock (Unix ms): its trace lines' `t` counts from it.
    pub fn start_unix_ms(&self) -> u64 {
        self.start_unix_ms
    }

    /// Run until `shutdown` fires or the node cannot go on (the transport failed, an epoch could
    /// not be made durable).
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut store_done: mpsc::UnboundedReceiver<PlaneInput>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        // The data plane's clock.
        let mut data_tick =
            tokio::time::interval(Duration::from_millis(labctl_core::plane::TICK_MS));
        data_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        // The first tick: heartbeats go out, and a lone node elects itself at once.
        self.feed(Input::Tick);
        loop {
            if let Some(reason) = self.fatal.take() {
                return Err(reason);
            }
            let wake = tokio::time::Instant::from_std(self.wake);
            tokio::select! {
                event = self.transport.recv() => match event {
                    Inbound::Failed(reason) => return Err(reason),
                    event => self.on_inbound(event),
                },
                () = tokio::time::sleep_until(wake) => self.feed(Input::Tick),
                _ = data_tick.tick() => self.data(PlaneInput::Tick),
                Some(command) = commands.recv() => self.on_command(command),
                Some(done) = store_done.recv() => self.data(done),
                () = &mut shutdown => return Ok(()),
            }
            // Whether the HTTP layer may answer reads from the store itself, as of this event.
            let serves = self.replica.plane().is_some_and(|p| p.serves_reads());
            self.store.local_reads().set_serves(serves);
        }
    }

    /// Milliseconds since the driver started: the protocol core's clock.
    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
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
        if let Frame::Heartbeat { lab, .. } = &frame {
            if lab != &self.config.lab {
                warn!(from, %lab, "heartbeat from lab {lab:?}, not ours, dropped");
                return;
            }
        }
        // Anything from a neighbour proves the link; frames queued for it can go now.
        if let Some(flushed) = self.links.heard(from) {
            info!(neighbor = from, "link up");
            self.transport.resume(from);
            for (seq, frame) in flushed {
                self.transmit(from, Some(seq), frame);
            }
        }
        match frame {
            Frame::Control { message } => {
                self.record(TraceEntry::Wire(Wire::Receive {
                    from,
                    message: message.clone(),
                }));
                self.feed(Input::Receive { from, message });
            }
            Frame::Data { message } => {
                self.feed(Input::Heard { from });
                self.data(PlaneInput::Message { from, message });
            }
            Frame::Heartbeat {
                incarnation, sent, ..
            } => {
                let beat = labctl_core::Beat { incarnation, sent };
                self.feed(Input::Heartbeat { from, beat });
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(reply) => {
                let node = self.replica.node();
                let plane = self.replica.plane().expect("a node serves data");
                let _ = reply.send(Snapshot {
                    status: node.status(),
                    neighbors: self.links.neighbors().collect(),
                    alive: node.alive(),
                    uptime: self.started.elapsed(),
                    applied: plane.applied(),
                    lab_size: self.config.lab_size,
                    incarnation: self.config.incarnation,
                    filters: self.filters.clone(),
                });
            }
            Command::Trace(reply) => {
                let _ = reply.send(Recorded {
                    lines: self.record.lines(),
                    live: self.trace.subscribe(),
                });
            }
            Command::Request {
                need,
                key,
                body,
                reply,
            } => {
                let id = self
                    .replica
                    .plane_mut()
                    .expect("a node serves data")
                    .next_request();
                self.http.insert(id, reply);
                self.data(PlaneInput::Request {
                    id,
                    need,
                    key,
                    body,
                });
            }
            Command::SetFilters(filters, reply) => {
                let links: Vec<String> = filters
                    .iter()
                    .map(|(neighbor, filter)| format!("link to {neighbor}: {filter}"))
                    .collect();
                if links.is_empty() {
                    info!("fault filter cleared");
                } else {
                    info!("fault filter set: {}", links.join("; "));
                }
                self.transport.set_filters(filters.clone());
                self.filters = filters;
                let _ = reply.send(());
            }
        }
    }

    /// Hand one input to the control plane and carry out what it asks (and what its data plane
    /// asks in turn), in order.
    fn feed(&mut self, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        let mut data = std::mem::take(&mut self.data_out);
        let now = self.now();
        self.replica.control(now, input, &mut out, &mut data);
        for output in out.drain(..) {
            if self.fatal.is_some() {
                // An epoch that is not durable must not be sent in: stop here.
                break;
            }
            match output {
                Output::Send { to, message } => {
                    self.record(TraceEntry::Wire(Wire::Send {
                        to,
                        message: message.clone(),
                    }));
                    self.send_frame(to, Frame::Control { message });
                }
                Output::Heartbeat { to, beat } => {
                    // The heartbeat counts what is on the wire before it: frames still queued
                    // for the link will follow it, not precede it.
                    let frame = Frame::Heartbeat {
                        lab: self.config.lab.clone(),
                        incarnation: beat.incarnation,
                        sent: beat.sent.saturating_sub(self.links.pending_on(to)),
                    };
                    self.transmit(to, None, frame.encode());
                }
                Output::Persist { epoch } => {
                    if let Err(e) = persist_epoch(&self.config.epoch_file, epoch) {
                        error!(epoch, "cannot make epoch {epoch} durable: {e}; stopping");
                        self.fatal = Some(format!(
                            "node {}: epoch {epoch} could not be made durable in {}: {e}",
                            self.config.id,
                            self.config.epoch_file.display()
                        ));
                    }
                }
                Output::Wake { at } => {
                    self.wake = self.started + Duration::from_millis(at);
                }
                Output::Event(event) => {
                    log_event(&event);
                    let epoch_started = match event {
                        Event::EpochStarted { epoch } => Some(epoch),
                        _ => None,
                    };
                    let roles = matches!(event, Event::Roles { .. });
                    self.record(TraceEntry::Node(event));
                    if let Some(epoch) = epoch_started {
                        // The old tree is gone: the node leaves the nameserver until it has a
                        // route again (its HTTP service keeps answering, 503 while the election
                        // runs).
                        self.events_epoch = epoch;
                        self.web_role.send_modify(|role| role.listed = false);
                    }
                    // Roles of an epoch this same input already left behind (its EpochStarted
                    // follows) are not taken: the node's state is the newer epoch's.
                    if roles && self.events_epoch == self.replica.node().epoch() {
                        self.follow_roles();
                    }
                }
            }
        }
        self.out = out;
        if self.fatal.is_none() {
            self.carry_out(&mut data);
        }
        self.data_out = data;
    }

    /// The HTTP service and the nameserver listing follow the input role.
    fn follow_roles(&mut self) {
        let roles = self.replica.node().status().roles;
        let input = roles.contains(&Role::Input);
        self.web_role.send_modify(|role| {
            role.serve = input;
            role.listed = input;
        });
    }

    /// Hand one input to the data plane and carry out what it asks.
    fn data(&mut self, input: PlaneInput) {
        let _hop = tracing::debug_span!(target: crate::hops::TARGET, "plane").entered();
        let mut data = std::mem::take(&mut self.data_out);
        let now = self.now();
        self.replica.data(now, input, &mut data);
        self.carry_out(&mut data);
        self.data_out = data;
    }

    /// Carry out what the data plane asked, in order.
    fn carry_out(&mut self, data: &mut Vec<PlaneOutput>) {
        for output in data.drain(..) {
            match output {
                PlaneOutput::Send { to, message } => self.send_frame(to, Frame::Data { message }),
                PlaneOutput::Store(job) => self.store.submit(job),
                PlaneOutput::Answer { id, answer } => {
                    if let Some(reply) = self.http.remove(&id) {
                        let _ = reply.send(answer);
                    }
                }
                PlaneOutput::Note(note) => {
                    info!("{note}");
                    self.record(TraceEntry::Node(Event::Replication { note }));
                }
            }
        }
    }

    /// Send a frame that must not be lost: numbered on its link, queued while the link is down.
    pub(crate) fn send_frame(&mut self, to: NodeId, frame: Frame) {
        if let (Route::Send(seq), Some(frame)) = self.links.route(to, frame.encode()) {
            self.transmit(to, Some(seq), frame);
        }
    }

    fn transmit(&mut self, to: NodeId, seq: Option<u64>, frame: Vec<u8>) {
        self.transport.send(to, seq, frame);
    }

    fn record(&mut self, what: TraceEntry) {
        let line = TraceLine {
            t: self.started.elapsed().as_millis() as u64,
            node: self.config.id,
            what,
        };
        if self.trace.receiver_count() > 0 {
            let _ = self.trace.send(line.clone());
        }
        self.record.keep(line);
    }
}

/// The epoch a node made durable before it stopped (0 for a node that never ran), from its
/// epoch file.
pub fn read_epoch(path: &Path) -> Result<Epoch, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            format!(
                "{} holds {:?}, not an epoch number; the node cannot tell which epochs it used \
                 (remove the file only if the node's state is gone too)",
                path.display(),
                text.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Make `epoch` durable in `path`: write a temporary file, sync it, rename it over the old one,
/// sync the folder. A crash leaves the old epoch or the new one, never a torn file.
pub fn persist_epoch(path: &Path, epoch: Epoch) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{epoch}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn log_event(event: &Event) {
    match event {
        Event::Dropped { from, reason } => warn!(from, "message dropped: {reason}"),
        Event::Suspected { neighbor } => warn!(neighbor, "neighbour suspected"),
        Event::EpochStarted { .. }
        | Event::Elected { .. }
        | Event::Joined { .. }
        | Event::Complete { .. }
        | Event::Roles { .. }
        | Event::CameBack { .. }
        | Event::LinkReset { .. }
        | Event::LeftOut { .. }
        | Event::EpochWanted { .. }
        | Event::Stalled { .. } => info!("{event}"),
        _ => debug!("{event}"),
    }
}
