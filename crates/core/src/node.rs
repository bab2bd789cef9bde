//! One node of the control plane: epochs around a Yo-Yo election followed by a SHOUT+ tree, and
//! re-election when links fail or come back (SPEC §3.5, §6).
//!
//! [`Node`] is what a driver owns: it feeds [`Input`]s in, with the time, and executes the
//! [`Output`]s that come back (send a message or a heartbeat, make an epoch durable, wake the node
//! at a deadline, record an event). It never touches a socket, a clock or a random number
//! generator, so the simulator, the property tests and the real node daemon all run this same code.
//!
//! # Two ways to run a node
//! - **Plain** ([`Node::new`]): one clean election, as `labctl sim` runs it. Every link takes part,
//!   nothing fails, no time passes; [`Input::Start`] begins an epoch.
//! - **Live** ([`Node::live`]): with a failure detector ([`crate::liveness`]), as a node daemon and
//!   the simulator's fault mode run it. The node starts its first epoch by itself once it has
//!   heard from every neighbour (or the start-up grace ran out), and re-elects whenever the
//!   lab changes.
//!
//! # Re-election, step by step
//! 1. **Detection.** A neighbour silent for `suspicion_ms` is suspected. If its link took part in
//!    the current epoch, the tree may be broken: the node wants a new epoch, one settle time
//!    (a heartbeat) later, so that a burst of failures settles into one epoch. A link that comes
//!    back (or lost messages, or whose neighbour restarted) wants a new epoch too, after its hold
//!    (see the damping in [`crate::liveness`]).
//! 2. **A new epoch.** The node takes the next epoch number, makes it **durable** ([`Output::Persist`],
//!    before anything is sent in it, so that a restarted node never reuses an epoch), and sends its
//!    Yo-Yo setup on every link it does not suspect: those are the links it **invites**.
//! 3. **Joining.** A message of a newer epoch from a neighbour makes the node join that epoch the
//!    same way (it invites its own live links), then handle the message. So one node's new epoch
//!    spreads over the whole component.
//! 4. **Who takes part.** An epoch's election runs on the links where both ends sent their setup.
//!    An invited neighbour whose setup does not come within the setup timeout (or that becomes
//!    suspected first) is **left out**, and the election goes on without it. A message of the
//!    current epoch on a link that is not in its election means the two ends disagree: the node
//!    wants another epoch, which both will take that link into.
//! 5. **The result.** Yo-Yo elects the minimum id of the component; SHOUT+ builds its tree, and its
//!    convergecast tells the root how many nodes the tree spans. The root takes `writer` only if
//!    that is a strict majority of the lab (`leader` otherwise, SPEC §3.4).
//! 6. **Nobody waits forever.** A live link outside the current election with nothing pending for
//!    it (left out before it was ever heard, say) is held like any link that misbehaved, then
//!    taken into a new epoch. And as a last resort, an election that has not ended here within
//!    five suspicion timeouts is given up for a new epoch (that span doubles while it keeps
//!    happening). The simulator's fault mode found the case that needed the first rule; none is
//!    known that needs the second.
//!
//! Epoch numbers only grow: a node starts above the newest epoch it has seen or persisted. Two
//! components may use the same number at once; a term is named by (epoch, root).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::neighbor_set::Universe;

use crate::counters::{Counters, Sent};
use crate::event::Event;
use crate::liveness::{Beat, Change, Liveness, Millis, Timing};
use crate::log::Pos;
use crate::message::{Body, Message};
use crate::neighbor_set::NeighborSet;
use crate::plane::Best;
use crate::roles::{roles, Place, Role};
use crate::shout::Shout;
use crate::yoyo::{Phase, YoYo};
use crate::{Epoch, NodeId};

/// Something that happens to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start an election of `epoch` (ignored unless newer than the node's current epoch). Plain
    /// nodes start this way; live nodes start by themselves.
    Start {
        /// The epoch to start.
        epoch: Epoch,
    },
    /// An election message arrived from neighbour `from`.
    Receive {
        /// The sender's identity on the link.
        from: NodeId,
        /// What it said.
        message: Message,
    },
    /// A heartbeat arrived from neighbour `from`.
    Heartbeat {
        /// The sender.
        from: NodeId,
        /// What it counted.
        beat: Beat,
    },
    /// Other traffic (the data plane) arrived from neighbour `from`: it is alive.
    Heard {
        /// The sender.
        from: NodeId,
    },
    /// Time passed: the deadline of the last [`Output::Wake`] came (or any other moment).
    Tick,
}

/// Something a node asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to neighbour `to`.
    Send {
        /// The neighbour.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Send a heartbeat to neighbour `to` (droppable: a lost one costs nothing).
    Heartbeat {
        /// The neighbour.
        to: NodeId,
        /// What it carries.
        beat: Beat,
    },
    /// Make `epoch` durable (fsync) before carrying out any output after this one: a restarted
    /// node must never send in an epoch it sent in before it crashed.
    Persist {
        /// The epoch.
        epoch: Epoch,
    },
    /// Give the node [`Input::Tick`] at time `at` (replaces any earlier request). Live nodes only.
    Wake {
        /// When.
        at: Millis,
    },
    /// Record what happened (trace, log, teaching view).
    Event(Event),
}

/// A live node's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveConfig {
    /// The failure detector's timings.
    pub timing: Timing,
    /// How many nodes the lab has (the topology file's count): the quorum is a strict majority.
    pub lab_size: u64,
    /// Which run of this node this is (a new value after every restart).
    pub incarnation: u64,
    /// The newest epoch this node made durable before it (re)started; 0 for a new node.
    pub persisted_epoch: Epoch,
}

/// A snapshot of a node's view, as its admin API and the simulator report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// The current epoch (0 before any election).
    pub epoch: Epoch,
    /// Where the node is in the election.
    pub election: Phase,
    /// The leader, once known.
    pub leader: Option<NodeId>,
    /// The parent in the spanning tree (None at the root and before joining).
    pub parent: Option<NodeId>,
    /// The depth in the tree, once joined.
    pub depth: Option<u32>,
    /// The children (complete once `subtree` is known).
    pub children: Vec<NodeId>,
    /// The size of this node's subtree, once complete.
    pub subtree: Option<u64>,
    /// The roles, once the node's subtree is complete.
    pub roles: Vec<Role>,
    /// What this node sent in the current epoch.
    pub counters: Counters,
    /// The links the current epoch's election runs on (during setup: those still expected).
    #[serde(default)]
    pub members: Vec<NodeId>,
    /// Neighbours the failure detector suspects now (live nodes).
    #[serde(default)]
    pub suspected: Vec<NodeId>,
    /// A new epoch is wanted, or a link is held before it may start one (live nodes): the node
    /// has not settled yet.
    #[serde(default)]
    pub pending: bool,
}

/// A live node's re-election state (see the module docs).
#[derive(Clone, Debug)]
struct Live {
    detector: Liveness,
    lab_size: u64,
    /// The newest epoch made durable.
    durable: Epoch,
    /// The newest epoch seen in any message, even a stale one's sender's: new epochs go above it.
    highest_seen: Epoch,
    /// Whether this incarnation has begun an epoch yet.
    started: bool,
    /// When this epoch's setups went out (the setup timeout counts from here).
    invited_at: Millis,
    /// A new epoch wanted at this time.
    wanted: Option<Millis>,
    /// The election of this epoch is given up on here at this time, unless it ends before.
    watchdog_at: Millis,
    /// The watchdog's current span (it doubles while elections keep failing).
    watchdog_ms: Millis,
}

/// Buffers a driver lends its nodes for one call at a time ([`Node::handle_lent`]): the
/// algorithms' sends and the events. A million simulated nodes then keep no buffers of their own
/// between messages, and share one pair that stays warm in the cache.
#[derive(Debug, Default)]
pub struct Spare {
    send: Vec<(NodeId, Body)>,
    events: Vec<Event>,
}

thread_local! {
    /// The buffers [`Node::handle`] lends its node for one call (see there).
    static SPARE: std::cell::Cell<Spare> = const {
        std::cell::Cell::new(Spare { send: Vec::new(), events: Vec::new() })
    };
}

/// One node's control-plane state. One owner (a driver task, or the simulator) calls
/// [`Node::handle`] for each input, in order.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct Node {
    id: NodeId,
    /// The topology neighbours, sorted; shared with the election's and the tree's sets.
    neighbors: Universe,
    epoch: Epoch,
    election: YoYo,
    tree: Shout,
    /// What it has sent this epoch.
    sent: Sent,
    /// Where it stands in the tree, once its subtree is complete: its roles follow.
    place: Option<Place>,
    /// A live node's state (boxed: a simulated plain node has none, and stays small).
    live: Option<Box<Live>>,
    now: Millis,
    /// The last position of this node's replication log, when it keeps one: SHOUT+'s convergecast
    /// carries the most advanced to the root (the view change, SPEC §6).
    log: Option<Box<Pos>>,
}

impl Node {
    /// A plain node with id `id` and these topology neighbours, idle until [`Input::Start`] or a
    /// message of some epoch arrives. Every link always takes part; nothing ever fails.
    pub fn new(id: NodeId, neighbors: impl IntoIterator<Item = NodeId>) -> Self {
        let neighbors = NeighborSet::universe(neighbors);
        Node {
            id,
            election: YoYo::among(id, &neighbors, neighbors.iter().copied()),
            tree: Shout::among(&neighbors, neighbors.iter().copied()),
            neighbors,
            epoch: 0,
            sent: Sent::default(),
            place: None,
            live: None,
            now: 0,
            log: None,
        }
    }

    /// A live node, (re)started at `now`: it starts an epoch above `config.persisted_epoch` once
    /// it has heard from every neighbour, and re-elects whenever its links change. Feed it an
    /// [`Input::Tick`] right away and at every [`Output::Wake`].
    pub fn live(
        id: NodeId,
        neighbors: impl IntoIterator<Item = NodeId>,
        config: LiveConfig,
        now: Millis,
    ) -> Self {
        let mut node = Node::new(id, neighbors);
        node.epoch = config.persisted_epoch;
        node.now = now;
        node.live = Some(Box::new(Live {
            detector: Liveness::new(
                config.timing,
                config.incarnation,
                node.neighbors.iter().copied(),
                now,
            ),
            lab_size: config.lab_size,
            durable: config.persisted_epoch,
            highest_seen: config.persisted_epoch,
            started: false,
            invited_at: now,
            wanted: None,
            watchdog_at: Millis::MAX,
            watchdog_ms: config.timing.watchdog_ms(),
        }));
        node
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's topology neighbours.
    pub fn neighbors(&self) -> &[NodeId] {
        &self.neighbors
    }

    /// The heap blocks a message to this node reads first, as (address, length in bytes): its
    /// sorted neighbour ids and Yo-Yo's slot per neighbour. A driver that knows which node comes
    /// next may ask the memory for them early: the simulator does, as at a million nodes every
    /// delivery goes to a node far from the last one. A hint only: nothing is read through them.
    pub fn hot_blocks(&self) -> [(*const u8, usize); 2] {
        // The degree from Yo-Yo's slots, whose length is kept beside their address in the node:
        // the ids' own length is on the heap, in the block being asked for.
        [
            self.neighbors.block(self.election.degree()),
            self.election.hot_block(),
        ]
    }

    /// The bytes of the heap blocks a new plain node of `degree` neighbours allocates (its
    /// neighbours' ids and Yo-Yo's slots), without the allocator's own: a simulator that builds
    /// a million nodes makes their memory ready ahead.
    pub fn heap_bytes(degree: usize) -> [usize; 2] {
        [
            Universe::HEADER + degree * std::mem::size_of::<NodeId>(),
            YoYo::slot_bytes(degree),
        ]
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Handle one input at time `now` (plain nodes: any value); append what to do to `out`.
    pub fn handle(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        // The buffers for sends and events are lent by the thread for the call.
        let mut spare = SPARE.take();
        self.handle_lent(&mut spare, now, input, out);
        SPARE.set(spare);
    }

    /// [`Node::handle`] with buffers the caller lends for the call (a driver of many nodes, like
    /// the simulator, keeps one [`Spare`] for all of them, without a thread-local's cost).
    pub fn handle_lent(
        &mut self,
        spare: &mut Spare,
        now: Millis,
        input: Input,
        out: &mut Vec<Output>,
    ) {
        // Every call flushes what it produced (`handle_input`), so the spare leaves each call
        // as empty as it came.
        self.handle_input(now, input, out, spare);
        debug_assert!(spare.send.is_empty() && spare.events.is_empty());
    }

    fn handle_input(&mut self, now: Millis, input: Input, out: &mut Vec<Output>, lent: &mut Spare) {
        self.now = self.now.max(now);
        if let Some(live) = self.live.as_mut() {
            if let Some(ms) = live.detector.wake(self.now) {
                // Frozen: nobody had a chance to answer, so the waits start again from now.
                live.invited_at = live.invited_at.saturating_add(ms);
                live.watchdog_at = live.watchdog_at.saturating_add(ms);
                lent.events.push(Event::Stalled { ms });
            }
        }
        match input {
            Input::Start { epoch } => {
                if epoch > self.epoch {
                    self.begin_epoch(epoch, out, lent);
                }
            }
            Input::Receive { from, message } => {
                if let Some(live) = self.live.as_mut() {
                    live.detector.received(from);
                }
                self.hear(from, lent);
                self.receive(from, message, out, lent);
            }
            Input::Heartbeat { from, beat } => {
                let now = self.now;
                let change = self
                    .live
                    .as_mut()
                    .and_then(|l| l.detector.beat(from, beat, now));
                self.link_changed(change, lent);
            }
            Input::Heard { from } => self.hear(from, lent),
            Input::Tick => {}
        }
        if self.live.is_some() {
            self.run_timers(out, lent);
        }
        // What is left to go out (the detector's comes-backs, resets and stalls; a wanted
        // epoch's event) goes now.
        if !lent.send.is_empty() || !lent.events.is_empty() {
            let send = std::mem::take(&mut lent.send);
            self.flush(send, out, lent);
        }
        if self.live.is_some() {
            out.push(Output::Wake {
                at: self.deadline(),
            });
        }
    }

    /// Anything from `from` proves it alive.
    fn hear(&mut self, from: NodeId, lent: &mut Spare) {
        let now = self.now;
        let change = self.live.as_mut().and_then(|l| l.detector.heard(from, now));
        self.link_changed(change, lent);
    }

    /// Record a link's come-back or reset: its hold ends in a wanted epoch ([`Node::run_timers`]).
    fn link_changed(&mut self, change: Option<Change>, lent: &mut Spare) {
        match change {
            Some(Change::CameBack { neighbor, hold_ms }) => {
                lent.events.push(Event::CameBack { neighbor, hold_ms })
            }
            Some(Change::Reset {
                neighbor,
                reason,
                hold_ms,
            }) => lent.events.push(Event::LinkReset {
                neighbor,
                reason,
                hold_ms,
            }),
            None => {}
        }
    }

    fn receive(&mut self, from: NodeId, message: Message, out: &mut Vec<Output>, lent: &mut Spare) {
        if self.neighbors.binary_search(&from).is_err() {
            return self.drop_message(from, "sender is not a neighbour".into(), out);
        }
        if let Some(live) = self.live.as_mut() {
            live.highest_seen = live.highest_seen.max(message.epoch);
        }
        // Epochs (SPEC §3.5): an older epoch's message is stale; a newer one means another node
        // started a new election, and we join it before handling the message.
        if message.epoch < self.epoch {
            return self.drop_message(
                from,
                format!("stale epoch {} (current {})", message.epoch, self.epoch),
                out,
            );
        }
        let restarted = self.live.as_ref().is_some_and(|l| !l.started);
        if message.epoch == self.epoch && restarted {
            // A neighbour still in the epoch this node was in before it restarted: that state is
            // gone. The node starts a newer epoch shortly, which the neighbour will join.
            return self.drop_message(
                from,
                format!(
                    "epoch {} is the one this node was in before it restarted",
                    message.epoch
                ),
                out,
            );
        }
        if message.epoch > self.epoch {
            self.begin_epoch(message.epoch, out, lent);
        }
        if !self.election.neighbors().contains(&from) {
            // The sender takes our link into this epoch's election, and we do not (we suspected
            // it, or left it out): the ends disagree, so run another epoch that both take it into.
            let reason = format!(
                "{} of epoch {} on the link to {from}, which this epoch's election does not run on",
                message.body.kind(),
                message.epoch
            );
            self.drop_message(from, reason.clone(), out);
            return self.want_epoch_for(from, reason, lent);
        }
        let mut send = std::mem::take(&mut lent.send);
        let refusal = if message.body.kind().is_election() {
            let was_leader = self.election.phase() == Phase::Leader;
            let result = self
                .election
                .receive(from, &message.body, &mut send, &mut lent.events)
                .map_err(|r| r.to_string());
            if result.is_ok() && matches!(message.body, Body::Setup { .. }) {
                // The link works in this epoch, both ends took it in: whatever made it held
                // (a restart of the neighbour, a loss) is behind it.
                if let Some(live) = self.live.as_mut() {
                    live.detector.clear_hold(from);
                }
            }
            self.after_election_step(was_leader, &mut send, lent);
            result
        } else {
            self.tree
                .receive(from, &message.body, &mut send, &mut lent.events)
                .map_err(|r| r.to_string())
        };
        if let Err(reason) = refusal {
            lent.events.push(Event::Dropped { from, reason });
        }
        self.flush(send, out, lent);
    }

    /// If Yo-Yo just elected this node, it starts SHOUT+, whose Q announces it.
    fn after_election_step(
        &mut self,
        was_leader: bool,
        send: &mut Vec<(NodeId, Body)>,
        lent: &mut Spare,
    ) {
        if !was_leader && self.election.phase() == Phase::Leader {
            self.tree.initiate(self.id, send, &mut lent.events);
        }
    }

    /// Begin `epoch`: make it durable, invite every link not suspected, send the setups.
    fn begin_epoch(&mut self, epoch: Epoch, out: &mut Vec<Output>, lent: &mut Spare) {
        self.epoch = epoch;
        // In id order, as the neighbours are.
        let invited: Option<Vec<NodeId>> = match self.live.as_mut() {
            Some(live) => {
                live.started = true;
                live.wanted = None;
                live.invited_at = self.now;
                live.watchdog_at = self.now.saturating_add(live.watchdog_ms);
                live.highest_seen = live.highest_seen.max(epoch);
                if epoch > live.durable {
                    // Durable before the first send in it (the outputs are carried out in order).
                    live.durable = epoch;
                    out.push(Output::Persist { epoch });
                }
                let invited: Vec<NodeId> = self
                    .neighbors
                    .iter()
                    .copied()
                    .filter(|&n| live.detector.invitable(n))
                    .collect();
                for &n in &invited {
                    // Taken in: whatever hold the link served is over.
                    live.detector.clear_hold(n);
                }
                Some(invited)
            }
            // A plain node takes every neighbour in.
            None => None,
        };
        let invited: &[NodeId] = invited.as_deref().unwrap_or(&self.neighbors);
        // The election keeps its slots: a start allocates nothing.
        self.election
            .restart_among(self.id, &self.neighbors, invited.iter().copied());
        self.tree = Shout::among(&self.neighbors, invited.iter().copied());
        if let Some(pos) = self.log.as_deref().copied() {
            self.tree.set_own_log(Best { pos, node: self.id });
        }
        self.sent = Sent::default();
        self.place = None;
        lent.events.push(Event::EpochStarted { epoch });
        let mut send = std::mem::take(&mut lent.send);
        self.election.start(&mut send, &mut lent.events);
        // A node with no link to invite is elected at once, and the tree is just itself.
        self.after_election_step(false, &mut send, lent);
        self.flush(send, out, lent);
    }

    /// The timers of a live node, in order: heartbeats, suspicion, the setup timeout, holds that
    /// ran out, live links outside the election, the watchdog, the first start, the wanted epoch.
    fn run_timers(&mut self, out: &mut Vec<Output>, lent: &mut Spare) {
        let now = self.now;
        let Some(live) = self.live.as_mut() else {
            return;
        };

        // Heartbeats first: a node that just (re)started announces itself, with its new
        // incarnation, before anything it says in an epoch.
        for (to, beat) in live.detector.heartbeats(now) {
            out.push(Output::Heartbeat { to, beat });
        }

        // Detection: a failed link that took part in this epoch breaks it; one that was only
        // invited is left out and the election goes on.
        let suspected = live.detector.expire(now);
        for neighbor in suspected {
            lent.events.push(Event::Suspected { neighbor });
            if !self.started() || !self.election.neighbors().contains(&neighbor) {
                continue;
            }
            if !self.leave_out(neighbor, "suspected before its setup came", out, lent) {
                let at = now + self.timing().settle_ms();
                self.want_epoch(at, format!("the link to {neighbor} failed"), lent);
            }
        }

        // The setup timeout: whoever has not answered is left out. One that is alive all the
        // same (it is in another epoch) is tried again after its hold.
        let setup_over = self
            .live
            .as_ref()
            .is_some_and(|l| now >= l.invited_at + l.detector.timing().setup_timeout_ms());
        if self.started() && self.election.phase() == Phase::Setup && setup_over {
            let silent: Vec<NodeId> = self
                .election
                .neighbors()
                .iter()
                .copied()
                .filter(|&n| !self.election.introduced(n))
                .collect();
            for neighbor in silent {
                self.leave_out(neighbor, "its setup did not come in time", out, lent);
                let live = self.live.as_mut().expect("live");
                if live.detector.alive(neighbor) {
                    live.detector.penalize(neighbor, now);
                }
            }
        }

        // Links whose hold ran out while alive: a link that came back, was reset, or whose ends
        // disagreed. Take it into a new epoch (a link taken into an epoch meanwhile has no hold
        // left: beginning an epoch serves the holds of every link it invites).
        let live = self.live.as_mut().expect("live");
        for neighbor in live.detector.holds_due(now) {
            self.want_epoch(
                now,
                format!("the link to {neighbor} is ready to be taken in"),
                lent,
            );
        }

        // A live link outside this epoch's election (left out before it was ever heard, say)
        // gets its turn too: held like any link that misbehaved, then taken in. Otherwise a
        // neighbour stuck waiting on it would wait forever. (An epoch already wanted will take
        // it in anyway.)
        let quiet = self.live.as_ref().is_some_and(|l| l.wanted.is_none());
        if self.started() && self.election.phase() != Phase::Setup && quiet {
            let live = self.live.as_mut().expect("live");
            let outside: Vec<NodeId> = self
                .neighbors
                .iter()
                .copied()
                .filter(|&n| {
                    live.detector.alive(n)
                        && !live.detector.held(n)
                        && !self.election.neighbors().contains(&n)
                })
                .collect();
            for neighbor in outside {
                let hold = live.detector.penalize(neighbor, now).unwrap_or(0);
                lent.events.push(Event::LinkReset {
                    neighbor,
                    reason: format!("node {neighbor} is alive, but outside this epoch's election"),
                    hold_ms: hold,
                });
            }
        }

        // The safety net: an election that has not ended here within the watchdog is given up
        // on, and the watchdog doubles (it is back to its first span once roles are taken).
        let live = self.live.as_mut().expect("live");
        if live.started && self.place.is_none() && now >= live.watchdog_at {
            let span = live.watchdog_ms;
            live.watchdog_ms = span
                .saturating_mul(2)
                .min(64 * live.detector.timing().suspicion_ms);
            live.watchdog_at = now.saturating_add(live.watchdog_ms);
            let epoch = self.epoch;
            self.want_epoch(
                now,
                format!("the election of epoch {epoch} did not end here within {span} ms"),
                lent,
            );
        }

        // The first epoch of this incarnation: once every neighbour has been heard from, or the
        // start-up grace is over (those never heard are suspected by now, and left out).
        let live = self.live.as_mut().expect("live");
        if !live.started && (live.detector.all_heard() || now >= live.detector.grace_ends()) {
            live.wanted = Some(now);
        }

        let live = self.live.as_mut().expect("live");
        if live.wanted.is_some_and(|at| at <= now) {
            let epoch = self.epoch.max(live.highest_seen) + 1;
            self.begin_epoch(epoch, out, lent);
        }
    }

    /// During setup, run this epoch's election without `neighbor`. Returns false if its link is
    /// already part of the election (its setup came). What the election can do now goes out at
    /// once, in this epoch.
    fn leave_out(
        &mut self,
        neighbor: NodeId,
        reason: &str,
        out: &mut Vec<Output>,
        lent: &mut Spare,
    ) -> bool {
        let mut send = std::mem::take(&mut lent.send);
        let was_leader = self.election.phase() == Phase::Leader;
        let left = self
            .election
            .leave_out(neighbor, &mut send, &mut lent.events);
        if left {
            self.tree.remove_neighbor(neighbor);
            lent.events.push(Event::LeftOut {
                neighbor,
                reason: reason.to_string(),
            });
            self.after_election_step(was_leader, &mut send, lent);
        }
        self.flush(send, out, lent);
        left
    }

    /// Want a new epoch because of `neighbor`'s link: after its hold (the link misbehaved).
    fn want_epoch_for(&mut self, neighbor: NodeId, reason: String, lent: &mut Spare) {
        let now = self.now;
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let hold = live.detector.penalize(neighbor, now).unwrap_or(0);
        let at = now + hold.max(live.detector.timing().settle_ms());
        self.want_epoch(at, reason, lent);
    }

    /// Start a new epoch at `at`, unless one is wanted sooner (or starts before, by joining).
    fn want_epoch(&mut self, at: Millis, reason: String, lent: &mut Spare) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.wanted.is_some_and(|w| w <= at) {
            return;
        }
        live.wanted = Some(at);
        lent.events.push(Event::EpochWanted { at, reason });
    }

    fn started(&self) -> bool {
        self.live.as_ref().is_none_or(|l| l.started)
    }

    fn timing(&self) -> Timing {
        self.live
            .as_ref()
            .map(|l| l.detector.timing())
            .unwrap_or_default()
    }

    /// When this node next needs a [`Input::Tick`] (live nodes).
    pub fn deadline(&self) -> Millis {
        let Some(live) = &self.live else {
            return Millis::MAX;
        };
        let mut at = live.detector.deadline();
        if let Some(wanted) = live.wanted {
            at = at.min(wanted);
        }
        if live.started && self.election.phase() == Phase::Setup {
            at = at.min(live.invited_at + live.detector.timing().setup_timeout_ms());
        }
        if !live.started {
            at = at.min(live.detector.grace_ends());
        }
        if live.started && self.place.is_none() {
            at = at.min(live.watchdog_at);
        }
        at.max(self.now)
    }

    fn drop_message(&mut self, from: NodeId, reason: String, out: &mut Vec<Output>) {
        self.sent.dropped();
        out.push(Output::Event(Event::Dropped { from, reason }));
    }

    /// Stamp the algorithms' sends with the epoch, count them, take roles when the subtree just
    /// completed, and hand everything to the driver.
    fn flush(&mut self, mut send: Vec<(NodeId, Body)>, out: &mut Vec<Output>, lent: &mut Spare) {
        for (to, body) in send.drain(..) {
            self.sent.count(body.kind());
            if let Some(live) = self.live.as_mut() {
                live.detector.sent(to);
            }
            out.push(Output::Send {
                to,
                message: Message {
                    epoch: self.epoch,
                    body,
                },
            });
        }
        lent.send = send;
        for event in lent.events.drain(..) {
            if matches!(event, Event::Dropped { .. }) {
                self.sent.dropped();
            }
            let completed = match event {
                Event::Complete { size } => Some(size),
                _ => None,
            };
            out.push(Output::Event(event));
            if let Some(size) = completed {
                let is_root = self.tree.parent().is_none();
                // The quorum rule (SPEC §3.4): only the root of a strict majority writes.
                let quorum = self.live.as_ref().is_none_or(|l| 2 * size > l.lab_size);
                let place = Place {
                    is_root,
                    parent_is_root: self.tree.parent().is_some()
                        && self.tree.parent() == self.tree.leader(),
                    has_children: self.tree.children().next().is_some(),
                    quorum,
                };
                self.place = Some(place);
                out.push(Output::Event(Event::Roles {
                    roles: roles(place),
                }));
                if let Some(live) = self.live.as_mut() {
                    // The election ended here: the watchdog is back to its first span.
                    live.watchdog_ms = live.detector.timing().watchdog_ms();
                    live.watchdog_at = Millis::MAX;
                }
            }
        }
    }

    /// Tell the node where its replication log ends (call it whenever that changes): the
    /// convergecast of its next tree reports it.
    pub fn set_log_position(&mut self, pos: Pos) {
        // (Boxed: a plain simulated node keeps no log, and a million of them stay small.)
        self.log = Some(Box::new(pos));
        self.tree.set_own_log(Best { pos, node: self.id });
    }

    /// The most advanced log in this node's subtree, and a node holding it (at the root, once
    /// the tree is complete: the component's).
    pub fn best_log(&self) -> Option<Best> {
        self.tree.best()
    }

    /// The node's current view.
    pub fn status(&self) -> Status {
        let counters = self
            .sent
            .counters(self.election.iterations(), self.election.out_degrees());
        let roles = self.place.map(roles).unwrap_or_default();
        Status {
            id: self.id,
            epoch: self.epoch,
            election: self.election.phase(),
            leader: self.tree.leader(),
            parent: self.tree.parent(),
            depth: self.tree.depth(),
            children: self.tree.children().collect(),
            subtree: self.tree.complete(),
            roles,
            counters,
            members: self.election.neighbors().iter().copied().collect(),
            suspected: self
                .live
                .as_ref()
                .map(|l| l.detector.suspected().into_iter().collect())
                .unwrap_or_default(),
            pending: self
                .live
                .as_ref()
                .is_some_and(|l| l.wanted.is_some() || l.detector.holding()),
        }
    }

    /// Neighbours heard from and not suspected (live nodes; every neighbour for plain ones).
    pub fn alive(&self) -> BTreeSet<NodeId> {
        match &self.live {
            Some(live) => live.detector.alive_set(),
            None => self.neighbors.iter().copied().collect(),
        }
    }

    /// The lab's size this node counts its quorum against (live nodes).
    pub fn lab_size(&self) -> Option<u64> {
        self.live.as_ref().map(|l| l.lab_size)
    }

    /// Each child in the spanning tree with the size of its subtree (complete once the node's own
    /// subtree is).
    pub fn child_sizes(&self) -> std::collections::BTreeMap<NodeId, u64> {
        self.tree.child_sizes()
    }
}

#[cfg(test)]
mod tests;
