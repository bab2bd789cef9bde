//! The simulator's fault mode: live nodes (failure detector, re-election) over simulated links,
//! with faults applied on a schedule, the way FoundationDB's simulation and TigerBeetle's VOPR test
//! a whole system under a seed.
//!
//! Every node is a [`labctl_core::Node::live`]: it sends heartbeats, suspects silent neighbours,
//! re-elects. Faults are plain inputs to the network and the nodes, with the same fault objects as
//! `labctl fault` ([`labctl_fault::Fault`]):
//!
//! - **kill**: the node's state is gone; only what it made durable (its epoch) survives. Messages
//!   to it are lost.
//! - **restart**: a new incarnation starts from the persisted epoch.
//! - **pause** / **resume**: the node is frozen; messages to it wait (as in a socket's buffer) and
//!   its timers stop; on resume it handles the backlog, then its timers.
//! - **cut**, **partition** / **heal**: links drop every frame, both ways, while cut.
//! - **delay** / **loss**: frames on the link are held longer (loss as TCP makes it: a
//!   retransmission timeout of 200 ms, doubling, with that probability); FIFO is kept.
//!
//! One seed drives the start-up jitter, every message's delay, the losses and (with
//! [`random_schedule`]) the faults themselves: **same seed, same run**. A run that breaks a safety
//! rule or does not converge is an error naming the seed that replays it.
//!
//! While it runs, the simulator checks the safety rules of SPEC §6 at every role change:
//! `one_writer_per_epoch` (no two nodes ever take `writer` in the same epoch), `writer_has_quorum`
//! (a node takes `writer` only when its tree spans a strict majority) and `one_quorum_root` (at any
//! moment at most one writer is followed by a strict majority of the nodes). After the last fault
//! it waits for every component to converge (SPEC §6: one tree rooted at its minimum id, in one
//! epoch, with the roles of §3.4), then checks that it stays so, with no new epoch, for a while.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use labctl_core::event::{TraceEntry, TraceLine, Wire};
use labctl_core::plane::model::ModelStore;
use labctl_core::plane::{
    DataPlane, Durability, PlaneConfig, PlaneInput, PlaneMessage, PlaneOutput,
};
use labctl_core::report::Adjacency;
use labctl_core::{
    Beat, Epoch, Event, Input, LiveConfig, Message, Millis, Node, NodeId, Output, Replica, Report,
    Role, Status, Timing,
};
use labctl_fault::{Fault, InForce, LinkFilter, NodeAction, Target};
use labctl_topology::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::workload::{DataConfig, DataStats, Next, Workload};

/// The longest base delay of a message by default, in ms (each takes 1..=this, FIFO per link).
pub const MAX_DELAY_MS: Millis = 16;
/// The longest a node starts after the simulation does, in ms.
pub const START_JITTER_MS: Millis = 100;
/// How often convergence is checked after the last fault, in ms.
const CHECK_EVERY_MS: Millis = 50;
/// The retransmission timeout a lost frame waits for (doubling), as `loss` models TCP.
pub const RTO_MS: Millis = 200;
/// The most times one frame is lost in a row (then it goes through: 12.6 s of waiting at most).
pub const MAX_RETRANSMISSIONS: u32 = 6;
/// The longest a store takes to report a job done by default, in ms (reports keep their order).
pub const MAX_STORE_MS: Millis = 3;

/// One fault at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// When, in ms from the simulation's start.
    pub at_ms: Millis,
    /// What.
    #[serde(flatten)]
    pub fault: Fault,
}

/// How to run a simulation with faults.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Seeds start-up jitter, delays and losses.
    pub seed: u64,
    /// The failure detector's timings.
    pub timing: Timing,
    /// The faults, in time order.
    pub schedule: Vec<Step>,
    /// Undo every fault after the last step (`heal-all`), so the whole lab must converge.
    pub heal_at_end: bool,
    /// How long after the last step every component must have converged, in ms.
    pub converge_within_ms: Millis,
    /// How long convergence must then hold with no new epoch, in ms.
    pub stable_ms: Millis,
    /// Record a trace of every send, receive and state change (with the data plane: its
    /// messages, notes and store reports too).
    pub trace: bool,
    /// The longest base delay of a message, in ms (each takes 1..=this).
    pub max_delay_ms: Millis,
    /// The longest a store takes to report a job done, in ms (0..=this).
    pub max_store_ms: Millis,
    /// Run the data plane too, with this workload (None: the control plane alone).
    pub data: Option<DataConfig>,
}

impl FaultConfig {
    /// Defaults for `schedule` under `seed`: classroom timings, heal at the end, 60 s to converge,
    /// then stable for 3 suspicion timeouts.
    pub fn new(seed: u64, schedule: Vec<Step>) -> Self {
        let timing = Timing::default();
        FaultConfig {
            seed,
            timing,
            schedule,
            heal_at_end: true,
            converge_within_ms: 60_000,
            stable_ms: 3 * timing.suspicion_ms,
            trace: false,
            max_delay_ms: MAX_DELAY_MS,
            max_store_ms: MAX_STORE_MS,
            data: None,
        }
    }

    /// Timings like a live lab on one machine's loopback: a message takes about a millisecond,
    /// a store job up to `max_store_ms` (SQLite with fsync; a restore more). Each store job
    /// then outlasts a message, where the default timings (a message up to
    /// [`MAX_DELAY_MS`], a job up to [`MAX_STORE_MS`]) have it the other way round.
    pub fn live_like(mut self, max_store_ms: Millis) -> Self {
        self.max_delay_ms = 1;
        self.max_store_ms = max_store_ms;
        self
    }
}

/// What happened to one step of the schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The step (with `leader` resolved, when it could be).
    #[serde(flatten)]
    pub step: Step,
    /// None: applied; else why it was refused (the run goes on).
    pub refused: Option<String>,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct FaultRun {
    /// The lab's report at the end (with its components).
    pub report: Report,
    /// Every node's final status (nodes down at the end are missing).
    pub statuses: BTreeMap<NodeId, Status>,
    /// Each step as applied or refused.
    pub applied: Vec<Applied>,
    /// Time from the last fault to convergence, in ms.
    pub converged_after_ms: Millis,
    /// The newest epoch any node reached.
    pub max_epoch: Epoch,
    /// Epochs started, over all nodes (a node joining counts too).
    pub epochs_started: u64,
    /// The longest time an old writer still held its role after a newer one took it, in ms
    /// (it does not know yet; SPEC §6's epochs keep it harmless).
    pub stale_writer_ms: Millis,
    /// Messages and heartbeats delivered.
    pub delivered: u64,
    /// Virtual time at the end, in ms.
    pub time: Millis,
    /// The trace, when asked for.
    pub trace: Vec<TraceLine>,
    /// What the workload saw, with the data plane.
    pub data: Option<DataStats>,
}

/// Why a run with faults failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// A safety rule broke while the faults ran.
    #[error("{rule} broke at {at_ms} ms: {detail}; replay with seed {seed}")]
    Unsafe {
        /// The rule.
        rule: &'static str,
        /// When.
        at_ms: Millis,
        /// What was seen.
        detail: String,
        /// The seed that replays it.
        seed: u64,
    },
    /// The lab did not converge in time after the last fault, or did not stay converged.
    #[error("{what} (at {at_ms} ms); failed checks: {failed}; replay with seed {seed}")]
    NoConvergence {
        /// What went wrong.
        what: String,
        /// When it was noticed.
        at_ms: Millis,
        /// The report's failed checks.
        failed: String,
        /// The seed that replays it.
        seed: u64,
    },
    /// The step budget ran out: a livelock, or a bug.
    #[error("the simulation did not finish within {budget} events; replay with seed {seed}")]
    BudgetExceeded {
        /// The budget.
        budget: u64,
        /// The seed.
        seed: u64,
    },
}

impl FaultError {
    /// The seed that replays the failure.
    pub fn seed(&self) -> u64 {
        match self {
            FaultError::Unsafe { seed, .. }
            | FaultError::NoConvergence { seed, .. }
            | FaultError::BudgetExceeded { seed, .. } => *seed,
        }
    }
}

/// What is in flight, or due.
#[derive(Clone, Debug)]
enum Due {
    Message {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    Beat {
        from: NodeId,
        to: NodeId,
        beat: Beat,
    },
    Data {
        from: NodeId,
        to: NodeId,
        message: PlaneMessage,
    },
    /// A store's report on a job, for the incarnation that asked.
    Stored {
        node: NodeId,
        incarnation: u64,
        input: PlaneInput,
    },
    PlaneTick,
    Client(usize),
    ClientTimeout {
        client: usize,
        serial: u64,
    },
    Wake {
        node: NodeId,
    },
    Step(usize),
    Check,
}

/// One entry of the calendar, ordered by (time, order of scheduling).
struct Entry {
    at: Millis,
    seq: u64,
    due: Due,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A node's life in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// Not started yet: what is sent to it waits (the senders queue frames for a link that is
    /// not up yet), and it gets it all once it starts.
    Unborn,
    Up,
    Down,
    Paused,
}

struct SimNode {
    node: Option<Replica>,
    /// The node's store: it survives kills (its log and state are durable once stored).
    store: ModelStore,
    /// The latest time a store report is due (reports keep their order).
    store_clock: Millis,
    life: Life,
    /// The epoch it made durable: what survives a kill.
    persisted: Epoch,
    incarnation: u64,
    /// The wake-up asked for last.
    wake_at: Option<Millis>,
    /// What arrived while it was paused (or not started, or down, see below), in order.
    held: VecDeque<Due>,
    /// While down, keep what arrives for the next incarnation (frames a sender queued for a
    /// broken connection reach the restarted node) rather than lose it; drawn at each kill.
    keep_while_down: bool,
    /// Its epoch, tree size and roles as its events last announced them (its status may have
    /// moved on within the same input).
    announced_epoch: Epoch,
    announced_size: u64,
    roles: Vec<Role>,
}

/// The simulated lab.
struct FaultSim {
    adjacency: Adjacency,
    config: FaultConfig,
    nodes: BTreeMap<NodeId, SimNode>,
    faults: InForce,
    cut: BTreeSet<(NodeId, NodeId)>,
    filters: BTreeMap<(NodeId, NodeId), LinkFilter>,
    calendar: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// Per directed link, the latest delivery time scheduled (FIFO).
    link_clock: BTreeMap<(NodeId, NodeId), Millis>,
    rng: SplitMix64,
    now: Millis,
    delivered: u64,
    applied: Vec<Applied>,
    /// Epoch → the node that took `writer` in it.
    writers: BTreeMap<Epoch, NodeId>,
    /// Since when two or more nodes hold `writer`.
    overlap_since: Option<Millis>,
    stale_writer_ms: Millis,
    epochs_started: u64,
    /// When the last step ran (convergence is timed from there).
    last_step_at: Millis,
    /// When the lab was first seen converged after the last step, and how many epochs had
    /// started by then.
    converged: Option<(Millis, u64)>,
    failure: Option<FaultError>,
    trace: Vec<TraceLine>,
    out: Vec<Output>,
    workload: Option<Workload>,
    /// Every position some node applied, and what it applied there.
    committed: BTreeMap<u64, (Epoch, String)>,
    data_out: Vec<PlaneOutput>,
}

/// Run `adjacency` (a connected graph) as lab `lab` under `config`'s faults.
pub fn run(lab: &str, adjacency: &Adjacency, config: &FaultConfig) -> Result<FaultRun, FaultError> {
    run_traced(lab, adjacency, config).0
}

/// [`run`], and the trace so far (when `config.trace`), whether the run passed or failed: the
/// way to see what led to a failure.
pub fn run_traced(
    lab: &str,
    adjacency: &Adjacency,
    config: &FaultConfig,
) -> (Result<FaultRun, FaultError>, Vec<TraceLine>) {
    let mut sim = FaultSim::new(adjacency, config.clone());
    sim.start();
    let budget = event_budget(adjacency, config);
    let mut events = 0u64;
    while let Some(Reverse(entry)) = sim.calendar.pop() {
        events += 1;
        if events > budget {
            let error = FaultError::BudgetExceeded {
                budget,
                seed: config.seed,
            };
            return (Err(error), sim.trace);
        }
        sim.now = entry.at;
        let finished = sim.dispatch(entry.due);
        if let Some(failure) = sim.failure.take() {
            return (Err(failure), sim.trace);
        }
        if finished {
            break;
        }
    }
    let mut run = sim.finish(lab);
    let trace = run.trace.clone();
    if !config.trace {
        run.trace.clear();
    }
    (Ok(run), trace)
}

/// A generous budget of events: heartbeats over the whole run, and then some.
fn event_budget(adjacency: &Adjacency, config: &FaultConfig) -> u64 {
    let links: u64 = adjacency.values().map(|s| s.len() as u64).sum();
    let last = config.schedule.last().map_or(0, |s| s.at_ms);
    let span = last + config.converge_within_ms + config.stable_ms + 10_000;
    let beats = links * (span / config.timing.heartbeat_ms.max(1) + 1);
    50 * (beats + adjacency.len() as u64) + 1_000_000
}

impl FaultSim {
    fn new(adjacency: &Adjacency, config: FaultConfig) -> Self {
        let nodes = adjacency
            .keys()
            .map(|&id| {
                let sim_node = SimNode {
                    node: None,
                    store: ModelStore::new(),
                    store_clock: 0,
                    life: Life::Unborn,
                    persisted: 0,
                    incarnation: 0,
                    wake_at: None,
                    held: VecDeque::new(),
                    keep_while_down: false,
                    announced_epoch: 0,
                    announced_size: 0,
                    roles: Vec::new(),
                };
                (id, sim_node)
            })
            .collect();
        FaultSim {
            adjacency: adjacency.clone(),
            rng: SplitMix64::new(config.seed),
            workload: config.data.clone().map(Workload::new),
            committed: BTreeMap::new(),
            data_out: Vec::new(),
            config,
            nodes,
            faults: InForce::default(),
            cut: BTreeSet::new(),
            filters: BTreeMap::new(),
            calendar: BinaryHeap::new(),
            seq: 0,
            link_clock: BTreeMap::new(),
            now: 0,
            delivered: 0,
            applied: Vec::new(),
            writers: BTreeMap::new(),
            overlap_since: None,
            stale_writer_ms: 0,
            epochs_started: 0,
            last_step_at: 0,
            converged: None,
            failure: None,
            trace: Vec::new(),
            out: Vec::new(),
        }
    }

    fn schedule(&mut self, at: Millis, due: Due) {
        self.seq += 1;
        self.calendar.push(Reverse(Entry {
            at,
            seq: self.seq,
            due,
        }));
    }

    /// Every node starts within the jitter; the steps go on the calendar.
    fn start(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let at = self.rng.below(START_JITTER_MS + 1);
            // A node "restarting" from nothing is a node starting.
            self.schedule(at, Due::Wake { node: id });
            self.nodes.get_mut(&id).expect("node").wake_at = Some(at);
        }
        let steps: Vec<Millis> = self.config.schedule.iter().map(|s| s.at_ms).collect();
        for (i, at) in steps.into_iter().enumerate() {
            self.schedule(at.max(START_JITTER_MS + 1), Due::Step(i));
        }
        if self.config.schedule.is_empty() {
            self.last_step_at = START_JITTER_MS + 1;
            self.schedule(self.last_step_at, Due::Check);
        }
        if let Some(workload) = &self.workload {
            let clients = workload.clients();
            let duration = workload.config().duration_ms;
            let begin = workload.config().start_ms;
            for c in 0..clients {
                let at = begin + self.rng.below(500);
                self.schedule(at, Due::Client(c));
            }
            self.schedule(START_JITTER_MS + 1, Due::PlaneTick);
            if self.config.schedule.is_empty() {
                self.workload.as_mut().expect("a workload").stop(duration);
            }
        }
    }

    /// Carry out one calendar entry. Returns true when the run is over.
    fn dispatch(&mut self, due: Due) -> bool {
        match due {
            Due::Message { from, to, .. }
            | Due::Beat { from, to, .. }
            | Due::Data { from, to, .. } => {
                if self.cut.contains(&link(from, to)) {
                    return false; // lost on a cut link
                }
                let target = self.nodes.get_mut(&to).expect("a node of the lab");
                match target.life {
                    Life::Down if target.keep_while_down => target.held.push_back(due),
                    Life::Down => {}
                    Life::Paused | Life::Unborn => target.held.push_back(due),
                    Life::Up => self.deliver(due),
                }
                false
            }
            Due::Wake { node } => {
                let n = self.nodes.get_mut(&node).expect("node");
                if n.wake_at != Some(self.now) {
                    return false; // superseded
                }
                n.wake_at = None;
                match n.life {
                    Life::Up => self.input(node, Input::Tick),
                    // The very first wake-up starts the node.
                    Life::Unborn => self.boot(node),
                    Life::Down | Life::Paused => {}
                }
                false
            }
            Due::Step(i) => {
                self.step(i);
                if i + 1 == self.config.schedule.len() {
                    if self.config.heal_at_end {
                        self.apply(Fault::HealAll);
                    }
                    let now = self.now;
                    if let Some(workload) = self.workload.as_mut() {
                        workload.stop(now);
                    }
                    // The faults' aftermath lasts until every frame they held back has landed,
                    // and one detection period more: a silence a fault began is judged up to a
                    // suspicion timeout (and a heartbeat) after it began.
                    let landed = self.link_clock.values().copied().max().unwrap_or(0);
                    let timing = self.config.timing;
                    self.last_step_at =
                        self.now.max(landed) + timing.suspicion_ms + timing.heartbeat_ms;
                    self.schedule(self.last_step_at + CHECK_EVERY_MS, Due::Check);
                }
                false
            }
            Due::Check => self.check_convergence(),
            Due::Stored {
                node, incarnation, ..
            } => {
                let n = &mut self.nodes.get_mut(&node).expect("node");
                if n.incarnation == incarnation {
                    match n.life {
                        Life::Up => self.deliver(due),
                        Life::Paused => n.held.push_back(due),
                        Life::Down | Life::Unborn => {}
                    }
                }
                false
            }
            Due::PlaneTick => {
                let up: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.life == Life::Up)
                    .map(|(&id, _)| id)
                    .collect();
                for id in up {
                    self.data_input(id, PlaneInput::Tick);
                }
                self.schedule(self.now + labctl_core::plane::TICK_MS, Due::PlaneTick);
                false
            }
            Due::Client(c) => {
                self.client(c);
                false
            }
            Due::ClientTimeout { client, serial } => {
                let now = self.now;
                let workload = self.workload.as_mut().expect("a workload");
                if let Some(next) = workload.timed_out(client, serial, now, &mut self.rng) {
                    self.client_next(client, next);
                }
                false
            }
        }
    }

    /// Client `c` tries its next operation through a random running node.
    fn client(&mut self, c: usize) {
        let now = self.now;
        let up: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.life == Life::Up && n.node.is_some())
            .map(|(&id, _)| id)
            .collect();
        let workload = self.workload.as_mut().expect("a workload");
        let Some(attempt) = workload.attempt(c, now, &mut self.rng) else {
            return;
        };
        if up.is_empty() {
            let next = workload.no_node(c, now, &mut self.rng);
            return self.client_next(c, next);
        }
        let node = up[self.rng.below(up.len() as u64) as usize];
        let replica = self.nodes.get_mut(&node).expect("node");
        let plane = replica
            .node
            .as_mut()
            .and_then(Replica::plane_mut)
            .expect("a data plane");
        let id = plane.next_request();
        workload.sent(c, node, id);
        let timeout = workload.config().timeout_ms;
        self.schedule(
            now + timeout,
            Due::ClientTimeout {
                client: c,
                serial: attempt.serial,
            },
        );
        self.record(node, || {
            let note = format!(
                "client {c} asks {:?} {} (request {})",
                attempt.need, attempt.body, id.n
            );
            TraceEntry::Node(Event::Replication { note })
        });
        self.data_input(
            node,
            PlaneInput::Request {
                id,
                need: attempt.need,
                key: attempt.key,
                body: attempt.body,
            },
        );
    }

    fn client_next(&mut self, c: usize, next: Next) {
        if let Next::At(at) = next {
            self.schedule(at, Due::Client(c));
        }
    }

    /// Feed one input to a node's data plane and carry out what it asks.
    fn data_input(&mut self, id: NodeId, input: PlaneInput) {
        let mut out = std::mem::take(&mut self.data_out);
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(replica) = n.node.as_mut() else {
            return;
        };
        replica.data(self.now, input, &mut out);
        self.carry_out_data(id, &mut out);
        self.data_out = out;
    }

    /// Carry out what a node's data plane asked.
    fn carry_out_data(&mut self, id: NodeId, out: &mut Vec<PlaneOutput>) {
        for output in out.drain(..) {
            match output {
                PlaneOutput::Send { to, message } => {
                    self.record(id, || {
                        let note = format!("sends {} to {to}", data_summary(&message));
                        TraceEntry::Node(Event::Replication { note })
                    });
                    self.send(
                        id,
                        to,
                        Due::Data {
                            from: id,
                            to,
                            message,
                        },
                    );
                }
                PlaneOutput::Store(job) => {
                    let delay = self.rng.below(self.config.max_store_ms + 1);
                    let n = self.nodes.get_mut(&id).expect("node");
                    let input = n.store.run(job);
                    if let PlaneInput::Applied { results } = &input {
                        let applied: Vec<(u64, Epoch, String)> = results
                            .iter()
                            .filter_map(|(seq, _)| n.store.entry(*seq))
                            .map(|e| (e.seq, e.epoch, e.body.clone()))
                            .collect();
                        self.check_applied(id, applied);
                    }
                    let n = self.nodes.get_mut(&id).expect("node");
                    let at = (self.now + delay).max(n.store_clock);
                    n.store_clock = at;
                    let incarnation = n.incarnation;
                    self.schedule(
                        at,
                        Due::Stored {
                            node: id,
                            incarnation,
                            input,
                        },
                    );
                }
                PlaneOutput::Answer {
                    id: request,
                    answer,
                } => {
                    self.record(id, || {
                        let note = format!("answers request {}: {answer:?}", request.n);
                        TraceEntry::Node(Event::Replication { note })
                    });
                    let now = self.now;
                    let Some(workload) = self.workload.as_mut() else {
                        continue;
                    };
                    let next = workload.answered(id, request, &answer, now, &mut self.rng);
                    let violation = workload.violation().map(|v| (v.rule, v.detail.clone()));
                    if let Some((c, next)) = next {
                        self.client_next(c, next);
                    }
                    if let Some((rule, detail)) = violation {
                        self.unsafe_rule(rule, detail);
                    }
                }
                PlaneOutput::Note(note) => {
                    self.record(id, || TraceEntry::Node(Event::Replication { note }));
                }
            }
        }
    }

    fn deliver(&mut self, due: Due) {
        self.delivered += 1;
        match due {
            Due::Message { from, to, message } => {
                self.record(to, || {
                    TraceEntry::Wire(Wire::Receive {
                        from,
                        message: message.clone(),
                    })
                });
                self.input(to, Input::Receive { from, message })
            }
            Due::Beat { from, to, beat } => self.input(to, Input::Heartbeat { from, beat }),
            Due::Data { from, to, message } => {
                self.record(to, || {
                    let note = format!("receives {} from {from}", data_summary(&message));
                    TraceEntry::Node(Event::Replication { note })
                });
                self.data_input(to, PlaneInput::Message { from, message })
            }
            Due::Stored { node, input, .. } => {
                self.record(node, || {
                    let note = format!("store reports {}", stored_summary(&input));
                    TraceEntry::Node(Event::Replication { note })
                });
                self.data_input(node, input)
            }
            _ => unreachable!("only deliveries are delivered"),
        }
    }

    /// Start (or restart) a node from what it persisted.
    fn boot(&mut self, id: NodeId) {
        let neighbors = self.adjacency[&id].iter().copied();
        let n = self.nodes.get_mut(&id).expect("node");
        n.incarnation += 1;
        let config = LiveConfig {
            timing: self.config.timing,
            lab_size: self.adjacency.len() as u64,
            incarnation: n.incarnation,
            persisted_epoch: n.persisted,
        };
        let lab_size = config.lab_size;
        let node = Node::live(id, neighbors, config, self.now);
        let plane = self.config.data.as_ref().map(|data| {
            DataPlane::new(PlaneConfig {
                id,
                lab_size,
                durability: data.durability,
                first_request: n.incarnation << 32,
                shape: n.store.shape(),
                applied: n.store.applied(),
            })
        });
        n.node = Some(Replica::new(node, plane, lab_size));
        n.store_clock = self.now;
        n.life = Life::Up;
        n.roles.clear();
        let held = std::mem::take(&mut n.held);
        self.input(id, Input::Tick);
        for due in held {
            self.deliver(due);
        }
    }

    /// Feed one input to a node and carry out what it asks.
    fn input(&mut self, id: NodeId, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        let mut data = std::mem::take(&mut self.data_out);
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(replica) = n.node.as_mut() else {
            return;
        };
        replica.control(self.now, input, &mut out, &mut data);
        for output in out.drain(..) {
            match output {
                Output::Send { to, message } => {
                    self.record(id, || {
                        TraceEntry::Wire(Wire::Send {
                            to,
                            message: message.clone(),
                        })
                    });
                    self.send(
                        id,
                        to,
                        Due::Message {
                            from: id,
                            to,
                            message,
                        },
                    );
                }
                Output::Heartbeat { to, beat } => {
                    self.send(id, to, Due::Beat { from: id, to, beat })
                }
                Output::Persist { epoch } => {
                    self.nodes.get_mut(&id).expect("node").persisted = epoch;
                }
                Output::Wake { at } => {
                    let n = self.nodes.get_mut(&id).expect("node");
                    if n.wake_at != Some(at) {
                        n.wake_at = Some(at);
                        self.schedule(at, Due::Wake { node: id });
                    }
                }
                Output::Event(event) => self.observe(id, event),
            }
        }
        self.out = out;
        self.carry_out_data(id, &mut data);
        self.data_out = data;
    }

    /// Put a frame on the wire: its base delay, the link's faults, FIFO.
    fn send(&mut self, from: NodeId, to: NodeId, due: Due) {
        let l = link(from, to);
        if self.cut.contains(&l) {
            return;
        }
        let mut delay = 1 + self.rng.below(self.config.max_delay_ms.max(1));
        if let Some(filter) = self.filters.get(&l) {
            delay += filter.delay_ms;
            // Loss as TCP: each loss costs a retransmission timeout, doubling; nothing is lost.
            let mut rto = RTO_MS;
            for _ in 0..MAX_RETRANSMISSIONS {
                if self.rng.below(100) >= u64::from(filter.loss_percent) {
                    break;
                }
                delay += rto;
                rto *= 2;
            }
        }
        let clock = self.link_clock.entry((from, to)).or_insert(0);
        let at = (self.now + delay).max(*clock);
        *clock = at;
        self.schedule(at, due);
    }

    /// Watch what nodes say: epochs, roles, and the safety rules.
    fn observe(&mut self, id: NodeId, event: Event) {
        match &event {
            Event::EpochStarted { epoch } => {
                self.epochs_started += 1;
                let n = self.nodes.get_mut(&id).expect("node");
                n.roles.clear();
                n.announced_epoch = *epoch;
                n.announced_size = 0;
                self.writers_changed();
            }
            Event::Complete { size } => {
                self.nodes.get_mut(&id).expect("node").announced_size = *size;
            }
            Event::Roles { roles } => {
                self.nodes.get_mut(&id).expect("node").roles = roles.clone();
                if roles.contains(&Role::Writer) {
                    self.took_writer(id);
                }
                self.writers_changed();
            }
            _ => {}
        }
        self.record(id, || TraceEntry::Node(event));
    }

    /// Add a line to the trace, when one is kept (`what` is only made then).
    fn record(&mut self, node: NodeId, what: impl FnOnce() -> TraceEntry) {
        if self.config.trace {
            self.trace.push(TraceLine {
                t: self.now,
                node,
                what: what(),
            });
        }
    }

    fn status(&self, id: NodeId) -> Option<Status> {
        let n = &self.nodes[&id];
        match n.life {
            Life::Down | Life::Unborn => None,
            _ => n.node.as_ref().map(|r| r.node().status()),
        }
    }

    /// `id` just took `writer`: nobody else took it in this epoch, and its tree is a majority.
    fn took_writer(&mut self, id: NodeId) {
        let (epoch, spans) = {
            let n = &self.nodes[&id];
            (n.announced_epoch, n.announced_size)
        };
        let n = self.adjacency.len() as u64;
        if 2 * spans <= n {
            return self.unsafe_rule(
                "writer_has_quorum",
                format!(
                    "node {id} took writer in epoch {epoch} with a tree of {spans} of {n} nodes"
                ),
            );
        }
        if let Some(&other) = self.writers.get(&epoch) {
            if other != id {
                return self.unsafe_rule(
                    "one_writer_per_epoch",
                    format!("nodes {other} and {id} both took writer in epoch {epoch}"),
                );
            }
        }
        self.writers.insert(epoch, id);
    }

    /// After any role change: at most one writer is followed by a majority; time how long
    /// stale writers linger.
    fn writers_changed(&mut self) {
        let writers: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.life == Life::Up || n.life == Life::Paused)
            .filter(|(_, n)| n.roles.contains(&Role::Writer))
            .map(|(&id, _)| id)
            .collect();
        if writers.len() > 1 {
            let statuses: Vec<Status> = self
                .nodes
                .keys()
                .filter_map(|&id| self.status(id))
                .collect();
            let n = self.adjacency.len();
            let followed: Vec<NodeId> = writers
                .iter()
                .copied()
                .filter(|&w| {
                    let epoch = Some(self.nodes[&w].announced_epoch);
                    let followers = statuses
                        .iter()
                        .filter(|s| Some(s.epoch) == epoch && s.leader == Some(w))
                        .count();
                    2 * followers > n
                })
                .collect();
            if followed.len() > 1 {
                return self.unsafe_rule(
                    "one_quorum_root",
                    format!("writers {followed:?} are each followed by a majority"),
                );
            }
            self.overlap_since.get_or_insert(self.now);
        } else if let Some(since) = self.overlap_since.take() {
            self.stale_writer_ms = self.stale_writer_ms.max(self.now - since);
        }
    }

    fn unsafe_rule(&mut self, rule: &'static str, detail: String) {
        if self.failure.is_none() {
            self.failure = Some(FaultError::Unsafe {
                rule,
                at_ms: self.now,
                detail,
                seed: self.config.seed,
            });
        }
    }

    /// The quorum component's root now: the writer of the newest epoch.
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.life == Life::Up && n.roles.contains(&Role::Writer))
            .filter_map(|(&id, n)| n.node.as_ref().map(|r| (r.node().epoch(), id)))
            .max()
            .map(|(_, id)| id)
    }

    fn step(&mut self, i: usize) {
        let fault = self.config.schedule[i].fault.clone();
        let at_ms = self.config.schedule[i].at_ms;
        let resolved = fault.resolve(self.leader());
        let refused = match resolved {
            Ok(fault) => {
                let refused = self.apply(fault.clone());
                self.applied.push(Applied {
                    step: Step { at_ms, fault },
                    refused: refused.clone(),
                });
                return;
            }
            Err(e) => Some(e.to_string()),
        };
        self.applied.push(Applied {
            step: Step { at_ms, fault },
            refused,
        });
    }

    /// Apply one (resolved) fault; returns why it was refused, if it was.
    fn apply(&mut self, fault: Fault) -> Option<String> {
        let actions = match self.faults.apply(&fault, &self.adjacency, self.now) {
            Ok(actions) => actions,
            Err(e) => return Some(e.to_string()),
        };
        self.cut = self.faults.cut_links(&self.adjacency);
        self.filters.clear();
        for &id in self.adjacency.keys() {
            for (peer, filter) in self.faults.filter(id, &self.adjacency) {
                self.filters.insert(link(id, peer), filter);
            }
        }
        for (id, action) in actions {
            match action {
                NodeAction::Kill => self.kill(id),
                NodeAction::Pause => {
                    self.nodes.get_mut(&id).expect("node").life = Life::Paused;
                }
                NodeAction::Resume => self.resume(id),
                NodeAction::Restart => {
                    if self.nodes[&id].life != Life::Down {
                        self.kill(id);
                    }
                    self.boot(id);
                }
            }
        }
        self.writers_changed();
        None
    }

    fn kill(&mut self, id: NodeId) {
        let keep = self.rng.below(2) == 0;
        let n = self.nodes.get_mut(&id).expect("node");
        n.keep_while_down = keep;
        n.node = None;
        n.life = Life::Down;
        n.wake_at = None;
        n.held.clear();
        n.roles.clear();
        // The clients whose requests it held lose their connections: outcome unknown.
        let now = self.now;
        if let Some(workload) = self.workload.as_mut() {
            for (c, next) in workload.node_lost(id, now, &mut self.rng) {
                self.client_next(c, next);
            }
        }
    }

    /// Thaw a node: it handles what waited for it, in order, then its timers.
    fn resume(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node");
        n.life = Life::Up;
        let held = std::mem::take(&mut n.held);
        for due in held {
            self.deliver(due);
        }
        self.input(id, Input::Tick);
    }

    /// The report now: the lab as the faults leave it, judged component by component.
    fn report(&self, lab: &str) -> (Report, BTreeMap<NodeId, Status>) {
        let statuses: BTreeMap<NodeId, Status> = self
            .nodes
            .keys()
            .filter_map(|&id| self.status(id).map(|s| (id, s)))
            .collect();
        let live = self.faults.live_adjacency(&self.adjacency);
        let report = Report::build_live(lab, "sim", &self.adjacency, &live, &statuses, 0);
        (report, statuses)
    }

    /// Settled: every component converged, every live link taken into the election at both
    /// ends, and no node waiting to start an epoch: nothing is left to change.
    fn settled(report: &Report) -> bool {
        report.converged && report.components.iter().all(|c| c.settled)
    }

    /// After the last step: settled yet? Then: still converged, with no new epoch?
    fn check_convergence(&mut self) -> bool {
        let (report, _) = self.report("check");
        let deadline = self.last_step_at + self.config.converge_within_ms;
        match self.converged {
            None if Self::settled(&report) && self.data_settled() => {
                self.converged = Some((self.now, self.epochs_started));
            }
            None if self.now >= deadline => {
                let what = if Self::settled(&report) {
                    format!(
                        "the data plane did not settle {} ms after the last fault: {}",
                        self.config.converge_within_ms,
                        self.data_lag()
                    )
                } else {
                    format!(
                        "not settled {} ms after the last fault",
                        self.config.converge_within_ms
                    )
                };
                self.no_convergence(what, &report);
                return true;
            }
            None => {}
            Some((since, epochs)) => {
                if !report.converged || self.epochs_started != epochs {
                    let what = if report.converged {
                        "a new epoch started after the lab settled, with no fault".to_string()
                    } else {
                        "settled, then not converged any more, with no fault".to_string()
                    };
                    self.no_convergence(what, &report);
                    return true;
                }
                if self.now >= since + self.config.stable_ms {
                    self.check_data();
                    return true;
                }
            }
        }
        self.schedule(self.now + CHECK_EVERY_MS, Due::Check);
        false
    }

    /// State machine safety (Raft §5.4.3): every node applies the same entry at each position.
    /// With `replicas` and `writer` this may break (SPEC §4), so it is checked with `majority`.
    fn check_applied(&mut self, id: NodeId, applied: Vec<(u64, Epoch, String)>) {
        let majority = self
            .config
            .data
            .as_ref()
            .is_some_and(|d| d.durability == Durability::Majority);
        if !majority {
            return;
        }
        for (seq, epoch, body) in applied {
            match self.committed.get(&seq) {
                Some((e, b)) if (*e, b) != (epoch, &body) => {
                    let detail = format!(
                        "node {id} applied entry {seq} of epoch {epoch} ({body:?}); another node \
                         applied that of epoch {e} ({b:?})"
                    );
                    return self.unsafe_rule("applied_logs_diverge", detail);
                }
                Some(_) => {}
                None => {
                    self.committed.insert(seq, (epoch, body));
                }
            }
        }
    }

    /// With the data plane: the workload is over and, once healed, the writer is ready and every
    /// node applied its whole log (with `majority`; with the other modes, the writer alone).
    fn data_settled(&self) -> bool {
        let Some(workload) = &self.workload else {
            return true;
        };
        if !workload.over(self.now) || !self.config.heal_at_end {
            return workload.over(self.now);
        }
        let planes: Vec<&DataPlane> = self
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref().and_then(Replica::plane))
            .collect();
        let Some(writer) = planes.iter().find(|p| p.ready_writer()) else {
            return false;
        };
        let last = writer.shape().last();
        let done = |p: &&DataPlane| p.applied() == last.seq && p.shape().last() == last;
        match workload.config().durability {
            Durability::Majority => planes.len() == self.nodes.len() && planes.iter().all(done),
            Durability::Replicas | Durability::Writer => done(writer),
        }
    }

    /// Why the data plane has not settled, for the error.
    fn data_lag(&self) -> String {
        if let Some(w) = &self.workload {
            if !w.over(self.now) {
                return "the workload is still under way".into();
            }
        }
        let planes: Vec<(NodeId, &DataPlane)> = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().and_then(Replica::plane).map(|p| (id, p)))
            .collect();
        let Some((writer, w)) = planes.iter().find(|(_, p)| p.ready_writer()) else {
            return "no writer is ready".into();
        };
        let behind: Vec<String> = planes
            .iter()
            .filter(|(_, p)| {
                p.applied() != w.shape().last().seq || p.shape().last() != w.shape().last()
            })
            .map(|(id, p)| {
                format!(
                    "node {id} log to {}, applied {}",
                    p.shape().last(),
                    p.applied()
                )
            })
            .collect();
        format!(
            "writer {writer}'s log ends at {}, commit {}; behind: {}",
            w.shape().last(),
            w.commit(),
            behind.join(", ")
        )
    }

    /// The workload's checks on every node's final state.
    fn check_data(&mut self) {
        let Some(workload) = self.workload.as_mut() else {
            return;
        };
        let states: BTreeMap<NodeId, Vec<String>> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.node.is_some())
            .map(|(&id, n)| (id, n.store.texts().to_vec()))
            .collect();
        let writer = self
            .nodes
            .iter()
            .find(|(_, n)| {
                n.node
                    .as_ref()
                    .and_then(Replica::plane)
                    .is_some_and(DataPlane::ready_writer)
            })
            .map(|(_, n)| n.store.texts().to_vec());
        match writer {
            Some(writer) if self.config.heal_at_end => workload.check_final(&writer, &states),
            _ => {
                for (id, texts) in &states {
                    workload.check_state(&format!("node {id}'s final state"), texts);
                }
            }
        }
        if let Some(v) = workload.violation() {
            let (rule, detail) = (v.rule, v.detail.clone());
            self.unsafe_rule(rule, detail);
        }
    }

    fn no_convergence(&mut self, what: String, report: &Report) {
        let failed: Vec<String> = report
            .failed_checks()
            .filter(|c| labctl_core::report::CONVERGENCE.contains(&c.name.as_str()))
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        self.failure = Some(FaultError::NoConvergence {
            what,
            at_ms: self.now,
            failed: if failed.is_empty() {
                "none".into()
            } else {
                failed.join("; ")
            },
            seed: self.config.seed,
        });
    }

    fn finish(mut self, lab: &str) -> FaultRun {
        let (report, statuses) = self.report(lab);
        if let Some(since) = self.overlap_since.take() {
            self.stale_writer_ms = self.stale_writer_ms.max(self.now - since);
        }
        let max_epoch = statuses.values().map(|s| s.epoch).max().unwrap_or(0);
        FaultRun {
            report,
            statuses,
            applied: self.applied,
            converged_after_ms: self
                .converged
                .map_or(0, |(at, _)| at.saturating_sub(self.last_step_at)),
            max_epoch,
            epochs_started: self.epochs_started,
            stale_writer_ms: self.stale_writer_ms,
            delivered: self.delivered,
            time: self.now,
            trace: self.trace,
            data: self.workload.map(|w| w.stats().clone()),
        }
    }
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

/// The kinds of fault a random schedule draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Kill a running node; restarted after the hold.
    Kill,
    /// Pause a running node; resumed after the hold.
    Pause,
    /// Cut a link; healed after the hold.
    Cut,
    /// Split the lab in two at random; healed (with everything else) after the hold.
    Partition,
    /// Delay a link by up to 2 s; healed after the hold.
    Delay,
    /// Lose up to 50 % on a link; healed after the hold.
    Loss,
}

impl Action {
    /// Every kind.
    pub const ALL: [Action; 6] = [
        Action::Kill,
        Action::Pause,
        Action::Cut,
        Action::Partition,
        Action::Delay,
        Action::Loss,
    ];
}

/// How to draw a random schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomSpec {
    /// Faults are drawn until this time, in ms.
    pub duration_ms: Millis,
    /// The mean time between faults, in ms.
    pub every_ms: Millis,
    /// How long each fault lasts before it is undone, in ms.
    pub hold_ms: Millis,
    /// What to draw from.
    pub actions: Vec<Action>,
}

/// A random schedule of faults for `adjacency`, from `seed`: a fault about every `every_ms`
/// (uniformly between half and one and a half times it), each undone `hold_ms` later; targets
/// uniform among those the fault can apply to at that moment. Faults may overlap.
pub fn random_schedule(adjacency: &Adjacency, seed: u64, spec: &RandomSpec) -> Vec<Step> {
    let mut rng = SplitMix64::new(seed ^ 0x5eed_fa17);
    let mut scratch = InForce::default();
    let mut steps = Vec::new();
    let mut undos: BTreeMap<(Millis, u64), Fault> = BTreeMap::new();
    let ids: Vec<NodeId> = adjacency.keys().copied().collect();
    let links: Vec<(NodeId, NodeId)> = adjacency
        .iter()
        .flat_map(|(&a, ns)| ns.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
        .collect();
    let push = |steps: &mut Vec<Step>, scratch: &mut InForce, at: Millis, fault: Fault| {
        if scratch.apply(&fault, adjacency, at).is_ok() {
            steps.push(Step { at_ms: at, fault });
            true
        } else {
            false
        }
    };
    let every = spec.every_ms.max(1);
    let mut t = START_JITTER_MS + spec.every_ms;
    let mut n = 0u64;
    while t < spec.duration_ms && !spec.actions.is_empty() {
        // Undo what is due first, in time order.
        let due: Vec<(Millis, u64)> = undos.range(..=(t, u64::MAX)).map(|(k, _)| *k).collect();
        for key in due {
            let fault = undos.remove(&key).expect("due");
            push(&mut steps, &mut scratch, key.0, fault);
        }
        let action = spec.actions[rng.below(spec.actions.len() as u64) as usize];
        let down: BTreeSet<NodeId> = scratch.down().union(&scratch.paused()).copied().collect();
        let up: Vec<NodeId> = ids.iter().copied().filter(|i| !down.contains(i)).collect();
        let pick =
            |rng: &mut SplitMix64, from: &[NodeId]| from[rng.below(from.len() as u64) as usize];
        let (fault, undo) = match action {
            Action::Kill | Action::Pause if !up.is_empty() => {
                let node = Target::Id(pick(&mut rng, &up));
                if action == Action::Kill {
                    (Fault::Kill { node }, Fault::Restart { node })
                } else {
                    (Fault::Pause { node }, Fault::Resume { node })
                }
            }
            Action::Cut | Action::Delay | Action::Loss if !links.is_empty() => {
                let (a, b) = links[rng.below(links.len() as u64) as usize];
                let (a, b) = (Target::Id(a), Target::Id(b));
                let fault = match action {
                    Action::Cut => Fault::Cut { a, b },
                    Action::Delay => Fault::Delay {
                        a,
                        b,
                        ms: 1 + rng.below(2000),
                    },
                    _ => Fault::Loss {
                        a,
                        b,
                        percent: 1 + rng.below(50) as u32,
                    },
                };
                (fault, Fault::Heal { a, b })
            }
            Action::Partition if ids.len() > 1 => {
                let mut groups = vec![Vec::new(), Vec::new()];
                for &id in &ids {
                    groups[rng.below(2) as usize].push(id);
                }
                for (empty, full) in [(0, 1), (1, 0)] {
                    if groups[empty].is_empty() {
                        let moved = groups[full].pop().expect("two or more nodes");
                        groups[empty].push(moved);
                    }
                }
                (Fault::Partition { groups }, Fault::HealAll)
            }
            _ => {
                t += every;
                continue;
            }
        };
        if push(&mut steps, &mut scratch, t, fault) {
            n += 1;
            undos.insert((t + spec.hold_ms, n), undo);
        }
        t += every / 2 + rng.below(every + 1);
    }
    for ((at, _), fault) in undos {
        push(&mut steps, &mut scratch, at, fault);
    }
    steps
}

/// A data-plane message for a trace line: its fields, with the entries as positions only.
fn data_summary(message: &PlaneMessage) -> String {
    let positions =
        |entries: &[labctl_core::log::WireEntry]| match (entries.first(), entries.last()) {
            (Some(first), Some(last)) => format!("[{}..={}]", first.pos(), last.pos()),
            _ => "[]".to_string(),
        };
    match message {
        PlaneMessage::Append {
            epoch,
            to,
            prev,
            entries,
            commit,
        } => format!(
            "append (epoch {epoch}, to {to:?}, prev {prev}, entries {}, commit {commit})",
            positions(entries)
        ),
        PlaneMessage::Tail {
            epoch,
            prev,
            entries,
            more,
        } => format!(
            "tail (epoch {epoch}, prev {prev}, entries {}, more {more})",
            positions(entries)
        ),
        PlaneMessage::Snapshot {
            epoch, to, base, ..
        } => {
            format!("snapshot (epoch {epoch}, to {to}, base {base})")
        }
        PlaneMessage::TailSnapshot { epoch, base, .. } => {
            format!("tail snapshot (epoch {epoch}, base {base})")
        }
        other => format!("{other:?}"),
    }
}

/// A store's report for a trace line (entries and snapshots as positions only).
fn stored_summary(input: &PlaneInput) -> String {
    match input {
        PlaneInput::Applied { results } => format!(
            "applied {:?}..={:?}",
            results.first().map(|r| r.0),
            results.last().map(|r| r.0)
        ),
        PlaneInput::EntriesRead {
            purpose,
            prev,
            entries,
        } => format!(
            "entries read for {purpose:?}: prev {prev}, {} entries",
            entries.len()
        ),
        PlaneInput::Snapshotted { purpose, base, .. } => {
            format!("snapshotted for {purpose:?} at {base}")
        }
        other => format!("{other:?}"),
    }
}
