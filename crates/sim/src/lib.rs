//! A deterministic simulator for the protocol core: N [`Node`]s over a topology, FIFO links, a
//! seeded clock.
//!
//! Every node of the topology is a [`labctl_core::Node`]; the simulator is their network. It keeps
//! the messages in flight in calendars by delivery time, in send order, so a run depends only on
//! the topology, the delivery model and the seed: **same seed, same run, bit for bit**.
//!
//! - [`Delivery::Sync`]: every message takes exactly one time unit: the network moves in
//!   synchronous rounds, and SHOUT+ builds a breadth-first tree. A time's messages are delivered
//!   in the order they were sent.
//! - [`Delivery::Async`]: every message takes a random 1..=[`ASYNC_MAX_DELAY`] units, but a link
//!   never overtakes itself (FIFO per link, as ZeroMQ guarantees). The delay of the k-th message
//!   on a link is drawn from the seed, the link and k alone (`link_delay`), not from one stream
//!   shared by every send: whichever thread puts a message on its link draws the same delay.
//!   A time's messages are delivered by halves of the nodes, even and odd indices (`lanes`): the
//!   first half's, those from the first half's senders and then the second's, each in send
//!   order; then the second half's likewise.
//!
//! A run stops when no message is left in flight. A step budget turns a livelock into a loud
//! [`SimError::BudgetExceeded`] naming the seed that reproduces it.
//!
//! A large run (50,000 nodes or more, no trace) delivers each time's messages on two threads,
//! each to its half of the nodes, each putting its nodes' sends on their links: under
//! asynchronous delivery each half keeps its own sends (`lanes`), under synchronous delivery this
//! thread queues them all in the order one thread would have (`parallel`). The same run, message
//! for message, in less time.
//!
//! ```
//! use labctl_sim::{Config, Delivery, Simulation};
//! use labctl_topology::Topology;
//!
//! let ring = Topology::from_toml(
//!     "name = \"ring4\"\nnodes = [4, 2, 3, 1]\nlinks = [[4, 2], [2, 3], [3, 1], [1, 4]]\n",
//!     "ring4.toml",
//! ).unwrap();
//! let run = Simulation::run(&ring, &Config { seed: 7, delivery: Delivery::Async, trace: false }).unwrap();
//! assert_eq!(run.report.leader, Some(1));
//! assert!(run.report.converged);
//! ```

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub mod faults;
mod lanes;
mod pages;
mod parallel;
pub mod scale;
mod statuses;
pub mod sweep;
pub mod workload;

pub use labctl_core::event::{TraceEntry, TraceLine, Wire};
use labctl_core::report::{Adjacency, Check};
use labctl_core::{Graph, Input, Message, Node, NodeId, Output, Report, Spare, Status};
use labctl_topology::rng::SplitMix64;
use labctl_topology::Topology;

/// The longest delay, in time units, a message can take under [`Delivery::Async`].
pub const ASYNC_MAX_DELAY: u64 = 16;

/// How the network delivers messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Unit delay: synchronous rounds.
    Sync,
    /// Random delays from the seed, FIFO per link.
    Async,
}

/// How to run a simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Seeds the delays of [`Delivery::Async`] (unused, but reported, under `Sync`).
    pub seed: u64,
    /// The delivery model.
    pub delivery: Delivery,
    /// Record a trace of every send, receive and state change.
    pub trace: bool,
}

/// Why a simulation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The run did not go quiet within its step budget: a livelock, or a bug.
    #[error(
        "the simulation did not go quiet within {budget} deliveries ({in_flight} messages still in \
         flight); rerun with --seed {seed} --delivery {delivery:?} --trace to see it"
    )]
    BudgetExceeded {
        /// The budget that ran out.
        budget: u64,
        /// Messages still queued.
        in_flight: usize,
        /// The seed that reproduces it.
        seed: u64,
        /// The delivery model.
        delivery: Delivery,
    },
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The report (SPEC §7), with `runtime = "sim"`.
    pub report: Report,
    /// Every node's final status, in id order.
    pub statuses: Vec<Status>,
    /// Messages delivered.
    pub delivered: u64,
    /// Virtual time when the last message arrived (rounds, under `Sync`).
    pub time: u64,
    /// Yo-Yo messages seen on the wire per iteration (index 0 = iteration 1), counted by the
    /// network independently of the nodes' own counters.
    pub wire_iterations: Vec<u64>,
    /// Setup messages seen on the wire.
    pub wire_setup: u64,
    /// The trace, when asked for.
    pub trace: Vec<TraceLine>,
}

/// How far a run has got, as a progress display shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Messages delivered so far.
    pub delivered: u64,
    /// Messages in flight.
    pub in_flight: usize,
    /// The furthest phase a delivered message belonged to.
    pub stage: Stage,
    /// Virtual time.
    pub time: u64,
}

/// A phase of the election, as the messages on the wire show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Yo-Yo's setup: every node tells its neighbours its id.
    Setup,
    /// Yo-Yo's iteration `i` (YO- and -YO).
    Iteration(u32),
    /// SHOUT+ builds the tree: the election is over.
    Tree,
    /// The network is quiet: the report is being built.
    Quiet,
}

/// How often (in deliveries) a run reports its [`Progress`].
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// A message in flight.
struct InFlight {
    from: NodeId,
    to: usize,
    message: Message,
}

/// A message in flight as the calendar keeps it: 24 bytes where an [`InFlight`] takes 64, for
/// setup alone puts 2m messages in flight at once (4M at a million nodes), and every delivery
/// reads one. The few messages that do not fit (a `Yes` carrying a log position, an epoch past
/// [`EPOCH_BITS`] bits, an iteration or depth past [`A_BITS`] bits: a path of a million nodes)
/// wait whole in a side map.
#[derive(Clone, Copy, Debug)]
struct Packed {
    from: NodeId,
    /// The body's 64-bit field: an id, a value, a leader, a size, (vote, prune), or the key of a
    /// message kept whole.
    b: u64,
    to: u32,
    /// The kind in the low [`KIND_BITS`] bits, the epoch in the next [`EPOCH_BITS`], and the
    /// body's 32-bit field (an iteration or a depth) in the top [`A_BITS`].
    meta: u32,
}

/// Bits of [`Packed::meta`] for the kind.
const KIND_BITS: u32 = 3;
/// Bits of [`Packed::meta`] for the epoch (a fault run starts a new epoch at every re-election:
/// hundreds are rare, and past them a message is kept whole).
const EPOCH_BITS: u32 = 9;
/// Bits of [`Packed::meta`] for an iteration or a depth.
const A_BITS: u32 = 32 - KIND_BITS - EPOCH_BITS;

impl Packed {
    /// `kind`, `epoch` and `a` in one word, if they fit.
    fn meta(kind: PackedKind, epoch: u64, a: u32) -> Option<u32> {
        if epoch >= 1 << EPOCH_BITS || a >= 1 << A_BITS {
            return None;
        }
        Some(kind as u32 | (epoch as u32) << KIND_BITS | a << (KIND_BITS + EPOCH_BITS))
    }

    fn kind(&self) -> PackedKind {
        match self.meta & ((1 << KIND_BITS) - 1) {
            0 => PackedKind::Setup,
            1 => PackedKind::YoDown,
            2 => PackedKind::YoUp,
            3 => PackedKind::Q,
            4 => PackedKind::Yes,
            _ => PackedKind::Whole,
        }
    }

    fn epoch(&self) -> u64 {
        u64::from(self.meta >> KIND_BITS & ((1 << EPOCH_BITS) - 1))
    }

    /// The body's 32-bit field.
    fn a(&self) -> u32 {
        self.meta >> (KIND_BITS + EPOCH_BITS)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum PackedKind {
    Setup = 0,
    YoDown = 1,
    YoUp = 2,
    Q = 3,
    Yes = 4,
    /// Kept whole in [`Calendar::whole`] under the key `b`.
    Whole = 5,
}

/// A calendar bucket's chunk: this many messages (96 KiB).
const CHUNK: usize = 4096;
/// Emptied chunks kept for reuse; the rest go back to the allocator at once.
const SPARE_CHUNKS: usize = 16;

/// One time's messages, in send order, in chunks that are given back as they empty.
#[derive(Default)]
struct Bucket {
    chunks: std::collections::VecDeque<Vec<Packed>>,
    /// The next message's place in the first chunk.
    head: usize,
}

impl Bucket {
    /// The messages left in the bucket.
    fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum::<usize>() - self.head
    }

    /// The first chunk is exhausted (pushes go to the last one): done with, kept for reuse if
    /// fewer than [`SPARE_CHUNKS`] are.
    fn retire_front(&mut self, spare: &mut Vec<Vec<Packed>>) {
        let mut chunk = self.chunks.pop_front().expect("the first chunk");
        self.head = 0;
        if spare.len() < SPARE_CHUNKS {
            chunk.clear();
            spare.push(chunk);
        }
    }
}

/// Messages in flight, delivered in (time, send order): a calendar queue. Every delay is at most
/// [`ASYNC_MAX_DELAY`], so the pending times span fewer than [`SLOTS`] consecutive units and each
/// slot holds the messages of one time only, in the order they were sent. Same order as a priority
/// queue on (time, sequence number), in O(1) per message. Its memory follows the messages in
/// flight (chunks are given back as they empty), not each bucket's peak.
struct Calendar {
    slots: Vec<Bucket>,
    spare: Vec<Vec<Packed>>,
    whole: std::collections::HashMap<u64, Message>,
    next_whole: u64,
    len: usize,
}

/// Calendar slots: more than the longest delay.
const SLOTS: usize = 2 * ASYNC_MAX_DELAY as usize;

impl Calendar {
    fn new() -> Self {
        Calendar::with_whole_keys_from(0)
    }

    /// A calendar whose messages kept whole take keys from `first` up (calendars whose
    /// messages meet in one place take keys that never meet).
    fn with_whole_keys_from(first: u64) -> Self {
        Calendar {
            slots: (0..SLOTS).map(|_| Bucket::default()).collect(),
            spare: Vec::new(),
            whole: std::collections::HashMap::new(),
            next_whole: first,
            len: 0,
        }
    }

    fn pack(&mut self, flight: InFlight) -> Packed {
        use labctl_core::{Body, Vote};
        let to = u32::try_from(flight.to).expect("node indices fit in 32 bits");
        let packed = match flight.message.body {
            Body::Setup { id } => Some((PackedKind::Setup, 0, id)),
            Body::YoDown { iteration, value } => Some((PackedKind::YoDown, iteration, value)),
            Body::YoUp {
                iteration,
                vote,
                prune,
            } => Some((
                PackedKind::YoUp,
                iteration,
                u64::from(vote == Vote::No) | u64::from(prune) << 1,
            )),
            Body::Q { leader, depth } => Some((PackedKind::Q, depth, leader)),
            Body::Yes { size, best: None } => Some((PackedKind::Yes, 0, size)),
            _ => None,
        };
        let fits =
            packed.and_then(|(kind, a, b)| Some((Packed::meta(kind, flight.message.epoch, a)?, b)));
        match fits {
            Some((meta, b)) => Packed {
                from: flight.from,
                b,
                to,
                meta,
            },
            None => {
                let key = self.next_whole;
                self.next_whole += 1;
                self.whole.insert(key, flight.message);
                // (The epoch and the body travel in the message kept whole.)
                Packed {
                    from: flight.from,
                    b: key,
                    to,
                    meta: PackedKind::Whole as u32,
                }
            }
        }
    }

    fn unpack(&mut self, p: Packed) -> InFlight {
        Calendar::unpack_with(p, &mut self.whole)
    }

    /// [`Calendar::unpack`], the messages kept whole taken from `whole`.
    fn unpack_with(p: Packed, whole: &mut std::collections::HashMap<u64, Message>) -> InFlight {
        use labctl_core::{Body, Vote};
        let body = match p.kind() {
            PackedKind::Setup => Body::Setup { id: p.b },
            PackedKind::YoDown => Body::YoDown {
                iteration: p.a(),
                value: p.b,
            },
            PackedKind::YoUp => Body::YoUp {
                iteration: p.a(),
                vote: if p.b & 1 == 1 { Vote::No } else { Vote::Yes },
                prune: p.b & 2 == 2,
            },
            PackedKind::Q => Body::Q {
                leader: p.b,
                depth: p.a(),
            },
            PackedKind::Yes => Body::Yes {
                size: p.b,
                best: None,
            },
            PackedKind::Whole => {
                let message = whole.remove(&p.b).expect("a message kept whole");
                return InFlight {
                    from: p.from,
                    to: p.to as usize,
                    message,
                };
            }
        };
        InFlight {
            from: p.from,
            to: p.to as usize,
            message: Message {
                epoch: p.epoch(),
                body,
            },
        }
    }

    fn push(&mut self, at: u64, flight: InFlight) {
        let packed = self.pack(flight);
        let bucket = &mut self.slots[at as usize % SLOTS];
        if bucket
            .chunks
            .back()
            .is_none_or(|chunk| chunk.len() == CHUNK)
        {
            let chunk = self
                .spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK));
            bucket.chunks.push_back(chunk);
        }
        bucket
            .chunks
            .back_mut()
            .expect("a chunk with room")
            .push(packed);
        self.len += 1;
    }

    /// The first time at or after `now` with messages, if any.
    fn next_time(&self, now: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        (now..now + SLOTS as u64).find(|&t| !self.slots[t as usize % SLOTS].chunks.is_empty())
    }

    /// The bucket of time `t` (the slot's, which holds only that time's messages), taken whole,
    /// with the messages kept whole among them moved to `whole`.
    fn take_bucket(
        &mut self,
        t: u64,
        whole: &mut std::collections::HashMap<u64, Message>,
    ) -> Bucket {
        let bucket = std::mem::take(&mut self.slots[t as usize % SLOTS]);
        self.len -= bucket.len();
        if !self.whole.is_empty() {
            let mut head = bucket.head;
            for chunk in &bucket.chunks {
                for p in chunk[head..]
                    .iter()
                    .filter(|p| p.kind() == PackedKind::Whole)
                {
                    let message = self.whole.remove(&p.b).expect("a message kept whole");
                    whole.insert(p.b, message);
                }
                head = 0;
            }
        }
        bucket
    }

    /// The messages of time `t`.
    fn len_at(&self, t: u64) -> usize {
        self.slots[t as usize % SLOTS].len()
    }

    /// Give the memory back; what is left in flight is only counted from here on.
    fn release(&mut self) {
        self.slots = Vec::new();
        self.spare = Vec::new();
        self.whole = Default::default();
    }

    /// The receiver of the message `ahead` places after the next one in the slot of `now`, if
    /// any (for prefetching).
    fn peek_receiver(&self, now: u64, ahead: usize) -> Option<usize> {
        let bucket = self.slots.get(now as usize % SLOTS)?;
        let mut at = bucket.head + ahead;
        for chunk in bucket.chunks.iter().take(2) {
            if at < chunk.len() {
                return Some(chunk[at].to as usize);
            }
            at -= chunk.len();
        }
        None
    }

    /// The next messages at or after `now`, all of one time, at most `limit` of them, into
    /// `into` in their order; their time.
    fn take_time(&mut self, now: u64, limit: usize, into: &mut Vec<Packed>) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        for t in now..now + SLOTS as u64 {
            let bucket = &mut self.slots[t as usize % SLOTS];
            if bucket.chunks.is_empty() {
                continue;
            }
            while into.len() < limit {
                let Some(front) = bucket.chunks.front() else {
                    break;
                };
                let take = (front.len() - bucket.head).min(limit - into.len());
                into.extend_from_slice(&front[bucket.head..bucket.head + take]);
                bucket.head += take;
                self.len -= take;
                if bucket.head == front.len() {
                    bucket.retire_front(&mut self.spare);
                }
            }
            return Some(t);
        }
        None
    }

    /// The next message at or after `now`, with its delivery time.
    fn pop(&mut self, now: u64) -> Option<(u64, InFlight)> {
        if self.len == 0 {
            return None;
        }
        for t in now..now + SLOTS as u64 {
            let bucket = &mut self.slots[t as usize % SLOTS];
            let Some(front) = bucket.chunks.front() else {
                continue;
            };
            let packed = front[bucket.head];
            bucket.head += 1;
            if bucket.head == front.len() {
                bucket.retire_front(&mut self.spare);
            }
            self.len -= 1;
            return Some((t, self.unpack(packed)));
        }
        None
    }
}

/// How many deliveries ahead a node and its row's bounds are asked for.
const PREFETCH_FAR: usize = 4;
/// How many deliveries ahead the node's heap blocks and links are asked for (by then the node
/// itself, which says where they are, is in cache).
const PREFETCH_NEAR: usize = 2;
/// The most bytes of one block asked for (a node of thousands of neighbours needs only a few of
/// its slots per message).
const PREFETCH_MAX_BYTES: usize = 256;

/// How much of a node is asked for ahead: its first six cache lines (where the compiler puts
/// Yo-Yo's and SHOUT's state; the node's own fields come in with the hint for its heap blocks,
/// which reads them). Asking for the whole node took longer at a million nodes when it was 552
/// bytes (BENCHMARKS.md, issue 14): a core has room for only so many lines on their way at once,
/// and at a million nodes most of a delivery's time is spent waiting for that room. At 456 bytes,
/// 256, 320, 384 and 512 bytes ran within the machine's noise of each other; at 312 bytes now,
/// laid on five whole lines, the hint covers the whole node.
const PREFETCH_NODE_BYTES: usize = 384;

/// Ask the memory for the part of `node` a delivery reads first (see [`PREFETCH_NODE_BYTES`]).
fn prefetch_node(node: &Node) {
    let bytes = PREFETCH_NODE_BYTES.min(std::mem::size_of::<Node>());
    prefetch_lines((node as *const Node).cast(), bytes);
}

/// Ask for `value`'s memory to be brought into the cache, without waiting for it (a hint: it
/// changes no result).
fn prefetch<T>(value: &T) {
    prefetch_lines((value as *const T).cast(), std::mem::size_of::<T>());
}

/// Ask for the cache lines of `len` bytes from `start`, at most [`PREFETCH_MAX_BYTES`] of them.
fn prefetch_bytes(start: *const u8, len: usize) {
    prefetch_lines(start, len.min(PREFETCH_MAX_BYTES));
}

/// Ask for the cache lines of `len` bytes from `start`.
fn prefetch_lines(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = start as usize & !63;
        let end = start as usize + len;
        for line in (first..end).step_by(64) {
            // SAFETY: a prefetch reads nothing and writes nothing: it cannot fault, even on an
            // address that is not mapped, and SSE is part of every x86-64 processor.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// The slot of the link from node `i` (`node`) to its neighbour `to`: its place in `i`'s row,
/// found among the node's sorted neighbour ids (in cache: the node just handled a message).
fn link_slot(row: &[u32], i: usize, node: &Node, to: NodeId) -> usize {
    let Ok(k) = node.neighbors().binary_search(&to) else {
        // The core only ever sends to its topology neighbours; anything else is a core bug.
        panic!(
            "node {} sent to {to}, which is not its neighbour in the topology",
            node.id()
        );
    };
    row[i] as usize + k
}

/// The buffers of a run's nodes and links, made before its graph's rows: a large run's pages
/// (about half a gigabyte at a million nodes, which this virtual machine's kernel clears at well
/// under a gigabyte a second) start to be made present on the other core at once, the nodes'
/// first, while this one builds the rows and then the nodes.
struct Buffers {
    nodes: Vec<Node>,
    links: Vec<LinkOut>,
    prefault: Option<pages::Prefault>,
}

impl Buffers {
    /// Room for `nodes` nodes and `links_out` directed links.
    fn new(nodes: usize, links_out: usize) -> Self {
        let node_buffer = Vec::with_capacity(nodes);
        pages::advise(&node_buffer);
        let links = Vec::with_capacity(links_out);
        pages::advise(&links);
        let prefault = (nodes >= pages::LARGE_RUN).then(|| {
            pages::prefault(vec![
                vec![pages::buffer(&node_buffer)],
                vec![pages::buffer(&links)],
            ])
        });
        Buffers {
            nodes: node_buffer,
            links,
            prefault,
        }
    }
}

/// A directed link as a sender's row holds it.
#[derive(Clone, Copy)]
struct LinkOut {
    /// The latest delivery time scheduled on the link, so a later message never arrives before
    /// an earlier one.
    clock: u64,
    /// The neighbour's index.
    index: u32,
    /// How many messages have been put on the link (the next one's draw; wraps after 2³²).
    sent: u32,
}

impl LinkOut {
    /// Put a message on this link, the one in `slot` of the rows, at `now`: its delivery time.
    /// Only the sender's handling ever calls this for a link, so each half of a two-thread run
    /// stamps its own nodes' links.
    fn stamp(&mut self, slot: usize, now: u64, delivery: Delivery, seed: u64) -> u64 {
        let delay = match delivery {
            Delivery::Sync => 1,
            Delivery::Async => link_delay(seed, slot, self.sent),
        };
        self.sent = self.sent.wrapping_add(1);
        let at = (now + delay).max(self.clock);
        self.clock = at;
        at
    }
}

/// The delay, 1..=[`ASYNC_MAX_DELAY`], of the `nth` message on the link in `slot` of a run with
/// `seed`: one SplitMix64 draw from a state made of the three, distinct for every (slot, nth),
/// so that a link's delays are a random sequence of their own. A run whose delays came from one
/// generator in send order could only be stamped one send after another, on one thread.
fn link_delay(seed: u64, slot: usize, nth: u32) -> u64 {
    let key = (slot as u64) << 32 | u64::from(nth);
    let state = seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    1 + SplitMix64::new(state).below(ASYNC_MAX_DELAY)
}

/// The messages that crossed the wire, by what they are.
#[derive(Clone, Debug, Default)]
struct WireCount {
    /// Yo-Yo's messages of each iteration (the first at 0).
    iterations: Vec<u64>,
    /// Yo-Yo's setup messages.
    setup: u64,
    /// A SHOUT+ message has been sent: the election is over somewhere.
    tree_seen: bool,
}

impl WireCount {
    fn count(&mut self, message: &Message) {
        match message.body.iteration() {
            Some(iteration) => {
                let slot = iteration as usize - 1;
                if self.iterations.len() <= slot {
                    self.iterations.resize(slot + 1, 0);
                }
                self.iterations[slot] += 1;
            }
            None if message.body.kind() == labctl_core::message::Kind::Setup => self.setup += 1,
            None => self.tree_seen = true,
        }
    }

    /// Add what `other` counted.
    fn absorb(&mut self, other: &WireCount) {
        if self.iterations.len() < other.iterations.len() {
            self.iterations.resize(other.iterations.len(), 0);
        }
        for (mine, theirs) in self.iterations.iter_mut().zip(&other.iterations) {
            *mine += theirs;
        }
        self.setup += other.setup;
        self.tree_seen |= other.tree_seen;
    }

    fn stage(&self) -> Stage {
        if self.tree_seen {
            Stage::Tree
        } else if self.iterations.is_empty() {
            Stage::Setup
        } else {
            Stage::Iteration(self.iterations.len() as u32)
        }
    }
}

/// A message put on its link: when it arrives, and at which node.
struct Stamped {
    at: u64,
    to: u32,
    message: Message,
}

/// The simulated network.
///
/// Its own state is laid out for a million nodes: nodes by dense index (their ids only at the
/// edges), and the graph in compressed sparse rows, each node's neighbours sorted by id side by side
/// with their indices and the clocks of the links to them. A send finds its link by a binary
/// search among the sender's few neighbours, memory the sender's handling already touched, instead
/// of a hash lookup in a table as large as the graph.
pub struct Simulation {
    nodes: Vec<Node>,
    /// Node `i`'s links are `links[row[i]..row[i + 1]]`.
    row: Vec<u32>,
    /// Every node's links out, row after row, each row in the order of the node's sorted
    /// neighbour ids ([`Node::neighbors`]): one array, so that a send reads one cache line of it.
    links: Vec<LinkOut>,
    queue: Calendar,
    /// Reused output buffer.
    out: Vec<Output>,
    /// The buffers every node borrows for a call.
    spare: Spare,
    config: Config,
    now: u64,
    delivered: u64,
    /// What has crossed the wire.
    wire: WireCount,
    /// Under asynchronous delivery, the messages in flight by the halves of the nodes that send
    /// and receive them ([`lanes`]); `queue` holds them under synchronous delivery.
    lanes: Option<lanes::Lanes>,
    trace: Vec<TraceLine>,
    /// A large run's heap, made ready for its nodes' blocks until they are all made.
    heap: Option<pages::HeapReservation>,
    /// Whether each time's messages are delivered on two threads ([`parallel`]); by default
    /// (None) a large run's are. Tests choose, to compare.
    two_threads: Option<bool>,
}

impl Simulation {
    /// A network of idle nodes over `adjacency`.
    pub fn new(adjacency: &Adjacency, config: Config) -> Self {
        Simulation::on(Graph::from_adjacency(adjacency), config)
    }

    /// A network of idle nodes over `graph`, which it keeps as its own rows.
    pub fn on(graph: Graph, config: Config) -> Self {
        let buffers = Buffers::new(graph.len(), 2 * graph.links());
        Simulation::on_buffers(graph, config, buffers)
    }

    /// [`Simulation::on`], into buffers made before the graph.
    fn on_buffers(graph: Graph, config: Config, buffers: Buffers) -> Self {
        let (ids, row, neighbors) = graph.into_rows();
        let Buffers {
            mut nodes,
            mut links,
            prefault: mut early,
        } = buffers;
        if nodes.capacity() < ids.len() || links.capacity() < neighbors.len() {
            // Buffers sized for another graph: their pages are left alone before they move.
            early = None;
            nodes.reserve_exact(ids.len());
            links.reserve_exact(neighbors.len());
        }
        // A large run's many small blocks go to a heap backed by huge pages.
        let heap = (ids.len() >= pages::LARGE_RUN)
            .then(|| pages::reserve_heap(ids.len() * pages::HEAP_PER_NODE));
        // The heap blocks' pages, made present on the other core as this one fills them.
        let prefault = heap.as_ref().map(|heap| {
            // Of the heap, only what the nodes' blocks take: the rest of the reservation fills
            // at its own pace, and pages made present but never used would count as used.
            let blocks = (0..ids.len())
                .map(|i| {
                    let degree = (row[i + 1] - row[i]) as usize;
                    Node::heap_bytes(degree)
                        .into_iter()
                        .map(pages::chunk)
                        .sum::<usize>()
                })
                .sum::<usize>();
            let (start, reserved) = heap.range();
            pages::prefault(vec![vec![(start, blocks.min(reserved))]])
        });
        nodes.extend((0..ids.len()).map(|i| {
            let row = row[i] as usize..row[i + 1] as usize;
            let neighbors = neighbors[row].iter().map(|&n| ids[n as usize]);
            Node::new(ids[i], neighbors)
        }));
        // A send finds its link at its neighbour's place in the node's own sorted list: the two
        // must line up (a graph's rows hold no repeats; `Graph` makes sure).
        debug_assert!(
            (0..ids.len()).all(|i| nodes[i].neighbors().len() == (row[i + 1] - row[i]) as usize)
        );
        links.extend(neighbors.into_iter().map(|index| LinkOut {
            clock: 0,
            index,
            sent: 0,
        }));
        drop(prefault);
        drop(early);
        let lanes = (config.delivery == Delivery::Async).then(lanes::Lanes::new);
        Simulation {
            nodes,
            row,
            links,
            queue: Calendar::new(),
            out: Vec::new(),
            spare: Spare::default(),
            config,
            now: 0,
            delivered: 0,
            wire: WireCount::default(),
            lanes,
            trace: Vec::new(),
            heap,
            two_threads: None,
        }
    }

    /// Simulate one election epoch on `topology` and report on it.
    pub fn run(topology: &Topology, config: &Config) -> Result<Run, SimError> {
        Self::run_rows(&topology.name, topology.rows(), config, &mut |_| {})
    }

    /// [`Simulation::run_rows`] on `topology`'s graph, the topology given up once its rows are
    /// built (a million nodes' run holds one copy of the graph). A large run's nodes' and links'
    /// pages start to be made present on the other core while this one builds the rows.
    pub fn run_topology(
        topology: Topology,
        config: &Config,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Run, SimError> {
        let started = Instant::now();
        let buffers = Buffers::new(topology.node_count(), 2 * topology.link_count());
        let name = topology.name.clone();
        let graph = topology.rows();
        drop(topology);
        Self::run_buffers(&name, graph, buffers, config, observe, started)
    }

    /// Simulate one election epoch on a graph given as adjacency (ids may be any non-zero u64).
    pub fn run_graph(lab: &str, adjacency: &Adjacency, config: &Config) -> Result<Run, SimError> {
        Self::run_graph_observed(lab, adjacency, config, &mut |_| {})
    }

    /// Simulate one election epoch on a graph in rows, which the simulator keeps as its own (a
    /// million nodes' run holds one copy of the graph), telling `observe` how far it has got
    /// every [`PROGRESS_EVERY`] deliveries.
    pub fn run_rows(
        lab: &str,
        graph: Graph,
        config: &Config,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Run, SimError> {
        let started = Instant::now();
        let buffers = Buffers::new(graph.len(), 2 * graph.links());
        Self::run_buffers(lab, graph, buffers, config, observe, started)
    }

    /// [`Simulation::run_rows`] into buffers made before the graph, timed from `started`.
    fn run_buffers(
        lab: &str,
        graph: Graph,
        buffers: Buffers,
        config: &Config,
        observe: &mut dyn FnMut(&Progress),
        started: Instant,
    ) -> Result<Run, SimError> {
        let budget = step_budget(graph.len() as u64, graph.links() as u64);
        let mut sim = Simulation::on_buffers(graph, config.clone(), buffers);
        let statuses = sim.drive(budget, observe)?;
        Ok(sim.finish(lab, statuses, started))
    }

    /// [`Simulation::run_graph`], telling `observe` how far it has got every
    /// [`PROGRESS_EVERY`] deliveries.
    pub fn run_graph_observed(
        lab: &str,
        adjacency: &Adjacency,
        config: &Config,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Run, SimError> {
        Self::run_rows(lab, Graph::from_adjacency(adjacency), config, observe)
    }

    /// Start every node, run until quiet, and make the statuses (giving the nodes back).
    fn drive(
        &mut self,
        budget: u64,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Vec<Status>, SimError> {
        self.start_all(1);
        // Every node's heap blocks are made: the heap may grow in small steps again.
        drop(self.heap.take());
        self.run_until_quiet_observed(budget, observe)?;
        observe(&Progress {
            stage: Stage::Quiet,
            ..self.progress()
        });
        self.queue.release();
        if let Some(lanes) = &mut self.lanes {
            lanes.release();
        }
        Ok(self.take_statuses())
    }

    /// The graph back from the simulator's rows (giving them up); `statuses` are the nodes', in
    /// index order.
    fn take_graph(&mut self, statuses: &[Status]) -> Graph {
        let ids = statuses.iter().map(|s| s.id).collect();
        let neighbors = std::mem::take(&mut self.links)
            .into_iter()
            .map(|l| l.index)
            .collect();
        Graph::from_rows(ids, std::mem::take(&mut self.row), neighbors)
    }

    /// The report and the run's figures.
    fn finish(mut self, lab: &str, statuses: Vec<Status>, started: Instant) -> Run {
        let graph = self.take_graph(&statuses);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let mut report = Report::build_rows(lab, "sim", &graph, &statuses, elapsed_ms);
        report.checks.extend(self.wire_checks(&report));
        Run {
            report,
            statuses,
            delivered: self.delivered,
            time: self.now,
            wire_iterations: self.wire.iterations,
            wire_setup: self.wire.setup,
            trace: self.trace,
        }
    }

    /// Give every node [`Input::Start`] for `epoch` at the current time: in id order, or under
    /// asynchronous delivery by halves (the even indices, then the odd; at once on two threads).
    pub fn start_all(&mut self, epoch: u64) {
        if self.lanes.is_some() {
            let two = self.two_threads();
            self.start_lanes(epoch, two);
            return;
        }
        for i in 0..self.nodes.len() {
            self.input(i, Input::Start { epoch });
        }
    }

    /// Whether this run's nodes take their messages on two threads: by default a large run's
    /// (tests choose, to compare); never a run that keeps a trace, which is in one order.
    fn two_threads(&self) -> bool {
        let two = self
            .two_threads
            .unwrap_or(self.nodes.len() >= parallel::TWO_THREADS);
        two && self.nodes.len() >= 2 && !self.config.trace
    }

    /// Deliver messages until none is left. Fails after `budget` deliveries.
    pub fn run_until_quiet(&mut self, budget: u64) -> Result<(), SimError> {
        self.run_until_quiet_observed(budget, &mut |_| {})
    }

    /// [`Simulation::run_until_quiet`], telling `observe` how far it has got every
    /// [`PROGRESS_EVERY`] deliveries.
    pub fn run_until_quiet_observed(
        &mut self,
        budget: u64,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<(), SimError> {
        let two = self.two_threads();
        if self.lanes.is_some() {
            return self.run_lanes(budget, two, observe);
        }
        if two {
            return self.run_in_two(budget, observe);
        }
        self.run_until_quiet_one(budget, observe)
    }

    /// [`Simulation::run_until_quiet_observed`] on this thread alone.
    fn run_until_quiet_one(
        &mut self,
        budget: u64,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<(), SimError> {
        while let Some((at, flight)) = self.queue.pop(self.now) {
            if self.delivered.is_multiple_of(PROGRESS_EVERY) {
                observe(&self.progress());
            }
            if self.delivered >= budget {
                return Err(SimError::BudgetExceeded {
                    budget,
                    in_flight: self.queue.len + 1,
                    seed: self.config.seed,
                    delivery: self.config.delivery,
                });
            }
            self.now = at;
            self.delivered += 1;
            self.prefetch_ahead(at);
            if self.config.trace {
                self.trace.push(TraceLine {
                    t: self.now,
                    node: self.nodes[flight.to].id(),
                    what: TraceEntry::Wire(Wire::Receive {
                        from: flight.from,
                        message: flight.message.clone(),
                    }),
                });
            }
            self.input(
                flight.to,
                Input::Receive {
                    from: flight.from,
                    message: flight.message,
                },
            );
        }
        Ok(())
    }

    /// Ask the memory now for what the deliveries a few places ahead will read, so that it is in
    /// cache by the time their messages come: at a million nodes every delivery goes to a node
    /// far from the last one, and waiting on memory is most of the run's time. In two stages, as
    /// the second needs addresses the first brings in: [`PREFETCH_FAR`] ahead, the node and its
    /// row's bounds; [`PREFETCH_NEAR`] ahead, the node's heap blocks and its links out.
    fn prefetch_ahead(&self, at: u64) {
        if let Some(far) = self.queue.peek_receiver(at, PREFETCH_FAR) {
            prefetch_node(&self.nodes[far]);
            prefetch(&self.row[far]);
        }
        if let Some(near) = self.queue.peek_receiver(at, PREFETCH_NEAR) {
            for (start, len) in self.nodes[near].hot_blocks() {
                prefetch_bytes(start, len);
            }
            let links = &self.links[self.row[near] as usize..self.row[near + 1] as usize];
            prefetch_bytes(links.as_ptr().cast(), std::mem::size_of_val(links));
        }
    }

    /// Feed one input to node `i` and carry out what it asks.
    fn input(&mut self, i: usize, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.nodes[i].handle_lent(&mut self.spare, self.now, input, &mut out);
        let me = self.nodes[i].id();
        for output in out.drain(..) {
            match output {
                Output::Send { to, message } => self.send(i, me, to, message),
                Output::Event(event) => {
                    if self.config.trace {
                        self.trace.push(TraceLine {
                            t: self.now,
                            node: me,
                            what: TraceEntry::Node(event),
                        });
                    }
                }
                // Plain nodes keep no time and persist nothing: these never come.
                Output::Heartbeat { .. } | Output::Persist { .. } | Output::Wake { .. } => {}
            }
        }
        self.out = out;
    }

    fn send(&mut self, from_index: usize, from: NodeId, to: NodeId, message: Message) {
        let slot = link_slot(&self.row, from_index, &self.nodes[from_index], to);
        self.schedule(from, slot, message);
    }

    /// Put `message` from `from` on the link in `slot` (the sender's row), after its delay.
    fn schedule(&mut self, from: NodeId, slot: usize, message: Message) {
        let link = &mut self.links[slot];
        let to = link.index;
        let at = link.stamp(slot, self.now, self.config.delivery, self.config.seed);
        self.queue_stamped(from, Stamped { at, to, message });
    }

    /// Queue a message `from` put on its link (counting it on the wire). Under synchronous
    /// delivery only: asynchronous delivery keeps its messages in lanes, which the halves fill
    /// themselves (`lanes`).
    fn queue_stamped(&mut self, from: NodeId, Stamped { at, to, message }: Stamped) {
        debug_assert!(self.lanes.is_none(), "async sends go to the lanes");
        self.wire.count(&message);
        if self.config.trace {
            self.trace.push(TraceLine {
                t: self.now,
                node: from,
                what: TraceEntry::Wire(Wire::Send {
                    to: self.nodes[to as usize].id(),
                    message: message.clone(),
                }),
            });
        }
        self.queue.push(
            at,
            InFlight {
                from,
                to: to as usize,
                message,
            },
        );
    }

    /// The messages in flight.
    fn in_flight(&self) -> usize {
        self.queue.len + self.lanes.as_ref().map_or(0, |l| l.len())
    }

    /// How far the run has got.
    pub fn progress(&self) -> Progress {
        Progress {
            delivered: self.delivered,
            in_flight: self.in_flight(),
            stage: self.wire.stage(),
            time: self.now,
        }
    }

    /// Every node's status, by id, giving up the nodes to make them. At a million nodes the
    /// report is built from these statuses alone.
    fn take_statuses(&mut self) -> Vec<Status> {
        statuses::take(std::mem::take(&mut self.nodes))
    }

    /// Checks only the network can make: the wire agrees with the nodes' own accounts.
    fn wire_checks(&self, report: &Report) -> Vec<Check> {
        // Exact per-iteration costs: what crossed the wire in iteration i equals twice the edges
        // alive at its start, as the nodes' out-degrees say.
        let mut wire = vec![self.wire.setup];
        wire.extend(&self.wire.iterations);
        let exact = wire == report.election_phases;
        vec![
            Check {
                name: "iteration_costs".into(),
                ok: exact,
                detail: format!(
                    "wire per phase (setup, iterations…) {wire:?}, 2 × live edges {:?}",
                    report.election_phases
                ),
            },
            Check {
                name: "quiet".into(),
                ok: self.in_flight() == 0,
                detail: format!("{} messages left in flight", self.in_flight()),
            },
        ]
    }
}

/// Memory a plain run ([`Simulation::run_graph`]) of a graph of `nodes` and `links` takes at
/// its peak, in bytes, with the topology it was read from: an estimate from the costs measured
/// per node and per link (BENCHMARKS.md, issue 14), rounded up, so that a run that cannot fit is
/// refused before anything is built.
pub fn estimate_peak_bytes(nodes: u64, links: u64) -> u64 {
    // Fitted above the peaks `labctl sim --delivery async` reached on 2026-12-07 (after the
    // morning's node of 312 bytes): 100k nodes with 200k and 1M links (84 and 192 MiB), 10k
    // nodes with 1M links (156 MiB), the complete graphs of 1,000 and 4,472 nodes (82 MiB,
    // 1,407 MiB), 1M nodes with 2M links (697 MiB): about 440 bytes a node and 141 a link, each
    // estimate 14-18 % above its measure.
    /// The process before any graph: code, buffers, the allocator's own.
    const BASE: u64 = 16 << 20;
    const PER_NODE: u64 = 520;
    const PER_LINK: u64 = 165;
    BASE.saturating_add(nodes.saturating_mul(PER_NODE))
        .saturating_add(links.saturating_mul(PER_LINK))
}

/// A generous budget of deliveries for a graph of `n` nodes and `m` links: far above the
/// algorithms' bounds, small enough to stop a livelock fast.
pub fn step_budget(n: u64, m: u64) -> u64 {
    let bounds = labctl_core::Bounds::new(n, m);
    8 * (bounds.election + bounds.tree) + 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use labctl_core::Body;

    /// One run of `topology` (its TOML), on one thread or two.
    fn run_with(topology: &str, seed: u64, delivery: Delivery, two: bool) -> Run {
        run_observed(topology, seed, delivery, two).0
    }

    /// [`run_with`], and what it told its observer.
    fn run_observed(
        topology: &str,
        seed: u64,
        delivery: Delivery,
        two: bool,
    ) -> (Run, Vec<Progress>) {
        let topology = labctl_topology::Topology::from_toml(topology, "t.toml").unwrap();
        let config = Config {
            seed,
            delivery,
            trace: false,
        };
        let mut sim = Simulation::on(topology.rows(), config);
        sim.two_threads = Some(two);
        let budget = step_budget(sim.nodes.len() as u64, sim.links.len() as u64);
        let mut seen = Vec::new();
        let statuses = sim.drive(budget, &mut |p| seen.push(*p)).unwrap();
        (sim.finish("t", statuses, Instant::now()), seen)
    }

    #[test]
    fn progress_under_async_delivery_is_the_same_on_one_thread_or_two() {
        // Every report the same: deliveries, messages in flight, the furthest stage of either
        // half (the helper's counted too), the time.
        let graph = "name = \"r\"\n[generate]\nshape = \"random\"\nn = 60000\ndegree = 4\nids = \"shuffle\"\nseed = 2\n";
        let (_, one) = run_observed(graph, 3, Delivery::Async, false);
        let (_, two) = run_observed(graph, 3, Delivery::Async, true);
        assert!(one.len() > 10, "{} reports", one.len());
        assert_eq!(one, two);
        let stages: Vec<Stage> = one.iter().map(|p| p.stage).collect();
        assert!(stages.windows(2).all(|w| w[0] <= w[1]), "{stages:?}");
        assert!(stages.contains(&Stage::Iteration(1)) && stages.contains(&Stage::Tree));
        assert_eq!(
            one.last().map(|p| (p.stage, p.in_flight)),
            Some((Stage::Quiet, 0))
        );
    }

    #[test]
    fn two_threads_make_the_same_run_as_one() {
        // A random graph of 20,000 nodes (its setup puts 80,000 messages in one time with sync
        // delivery: more than a round's; thousands a time with async, on two threads), a dense
        // graph and a ring (times too small to share: one thread); both deliveries, two seeds:
        // every node's state and every wire count the same.
        let graphs = [
            "name = \"r\"\n[generate]\nshape = \"random\"\nn = 20000\ndegree = 4\nids = \"shuffle\"\nseed = 3\n",
            "name = \"g\"\n[generate]\nshape = \"random\"\nn = 300\ndegree = 12\nseed = 5\n",
            "name = \"ring\"\n[generate]\nshape = \"ring\"\nn = 200\n",
        ];
        for graph in graphs {
            for (seed, delivery) in [
                (1, Delivery::Sync),
                (1, Delivery::Async),
                (7, Delivery::Async),
            ] {
                let one = run_with(graph, seed, delivery, false);
                let two = run_with(graph, seed, delivery, true);
                assert!(one.report.converged, "{graph}: converged");
                assert_eq!(
                    one.statuses, two.statuses,
                    "{graph} seed {seed}: the nodes' states"
                );
                assert_eq!(
                    (
                        one.delivered,
                        one.time,
                        &one.wire_iterations,
                        one.wire_setup
                    ),
                    (
                        two.delivered,
                        two.time,
                        &two.wire_iterations,
                        two.wire_setup
                    ),
                    "{graph} seed {seed}: the wire"
                );
                assert_eq!(one.report.checks, two.report.checks);
            }
        }
    }

    #[test]
    fn the_memory_estimate_fits_every_shipped_topology_in_a_gibibyte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let (n, m) = Topology::counts_from_path(&path).unwrap();
            let need = estimate_peak_bytes(n as u64, m as u64);
            assert!(need < 1 << 30, "{}: {need} bytes", path.display());
            checked += 1;
        }
        assert!(checked >= 10, "{checked} topologies");
        // And grows with the graph: the million-node goal, and a complete graph of 10M links.
        assert!(estimate_peak_bytes(1_000_000, 2_000_000) > estimate_peak_bytes(100_000, 200_000));
        assert!(estimate_peak_bytes(4472, 9_997_156) > estimate_peak_bytes(4472, 8944));
    }

    #[test]
    fn a_run_on_the_topology_rows_is_the_same_run_with_the_same_report() {
        for (n, seed) in [(1, 0), (5, 1), (30, 2), (300, 3)] {
            let topology = if n == 1 {
                Topology::from_toml("name = \"one\"\nnodes = [7]\n", "one.toml").unwrap()
            } else {
                scale::graph(n, 3.0).unwrap()
            };
            let adjacency = topology.adjacency();
            for delivery in [Delivery::Sync, Delivery::Async] {
                let config = Config {
                    seed,
                    delivery,
                    trace: false,
                };
                let on_map =
                    Simulation::run_graph_observed("g", &adjacency, &config, &mut |_| {}).unwrap();
                let on_rows =
                    Simulation::run_rows("g", topology.rows(), &config, &mut |_| {}).unwrap();
                let mut a = on_map.report;
                let mut b = on_rows.report;
                (a.elapsed_ms, b.elapsed_ms) = (0, 0);
                assert_eq!(a, b, "n = {n}, {delivery:?}");
                assert_eq!(on_map.statuses, on_rows.statuses);
                assert_eq!(
                    (on_map.delivered, on_map.time),
                    (on_rows.delivered, on_rows.time)
                );
            }
        }
    }

    #[test]
    fn a_run_on_the_topology_itself_is_the_run_on_its_rows() {
        // Large enough for the buffers made before the rows, with their pages made present on
        // a helper; and buffers made for a smaller graph, which grow before any node is built.
        let topology = scale::graph(pages::LARGE_RUN + 5, 3.0).unwrap();
        let config = Config {
            seed: 6,
            delivery: Delivery::Async,
            trace: false,
        };
        let name = topology.name.clone();
        let on_rows = Simulation::run_rows(&name, topology.rows(), &config, &mut |_| {}).unwrap();
        let on_topology = Simulation::run_topology(topology.clone(), &config, &mut |_| {}).unwrap();
        let small = Buffers::new(pages::LARGE_RUN, 10);
        let budget = step_budget(topology.node_count() as u64, topology.link_count() as u64);
        let mut sim = Simulation::on_buffers(topology.rows(), config.clone(), small);
        let statuses = sim.drive(budget, &mut |_| {}).unwrap();
        let in_small = sim.finish(&name, statuses, Instant::now());
        for (how, run) in [
            ("on the topology", on_topology),
            ("in small buffers", in_small),
        ] {
            // (Compared whole but not printed: a report of 50,000 nodes.)
            assert!(run.statuses == on_rows.statuses, "{how}: the statuses");
            assert_eq!((run.delivered, run.time), (on_rows.delivered, on_rows.time));
            let (mut a, mut b) = (run.report, on_rows.report.clone());
            (a.elapsed_ms, b.elapsed_ms) = (0, 0);
            assert!(a == b, "{how}: the report");
        }
    }

    #[test]
    fn the_report_on_rows_is_the_report_on_maps_whatever_the_statuses_say() {
        // The simulator's report (on rows, statuses by index) and a live lab's (on maps) judge
        // alike, passing or failing, with the same words: on a good run, and on the same run
        // with one thing wrong at a time.
        let topology = scale::graph(40, 3.0).unwrap();
        let adjacency = topology.adjacency();
        let graph = topology.rows();
        let config = Config {
            seed: 4,
            delivery: Delivery::Async,
            trace: false,
        };
        let good = Simulation::run_rows("g", graph.clone(), &config, &mut |_| {})
            .unwrap()
            .statuses;
        let leaf = good.iter().position(|s| s.children.is_empty()).unwrap();
        let inner = good
            .iter()
            .position(|s| s.parent.is_some() && !s.children.is_empty())
            .unwrap();
        let mut cases: Vec<(&str, Vec<Status>)> = vec![("good", good.clone())];
        let mut wrong = good.clone();
        wrong[leaf].parent = Some(wrong[leaf].id);
        cases.push(("a parent that is no neighbour", wrong));
        let mut wrong = good.clone();
        wrong[leaf].depth = Some(99);
        cases.push(("a wrong depth", wrong));
        let mut wrong = good.clone();
        wrong[inner].children.pop();
        cases.push(("a child missing", wrong));
        let mut wrong = good.clone();
        wrong[inner].epoch += 1;
        cases.push(("two epochs", wrong));
        let mut wrong = good.clone();
        wrong[leaf].roles.clear();
        cases.push(("roles", wrong));
        let mut wrong = good.clone();
        wrong.remove(leaf);
        cases.push(("a status missing", wrong));
        for (what, statuses) in cases {
            let map = statuses.iter().map(|s| (s.id, s.clone())).collect();
            let on_maps = Report::build("g", "sim", &adjacency, &map, 0);
            let on_rows = Report::build_rows("g", "sim", &graph, &statuses, 0);
            assert_eq!(on_rows, on_maps, "{what}");
            assert_eq!(on_rows.converged, what == "good", "{what}");
        }
        // A graph in two parts is judged part by part, as a live lab's would be.
        let mut split = adjacency.clone();
        split.insert(1_000_000, Default::default());
        let graph = Graph::from_adjacency(&split);
        let mut statuses = good;
        let mut lone = statuses[0].clone();
        lone.id = 1_000_000;
        statuses.push(lone);
        let map = statuses.iter().map(|s| (s.id, s.clone())).collect();
        assert_eq!(
            Report::build_rows("g", "sim", &graph, &statuses, 0),
            Report::build("g", "sim", &split, &map, 0)
        );
    }

    #[test]
    fn calendar_keeps_every_message_whole_and_in_order_across_chunks() {
        // Three chunks' worth at one time, every kind of body, some that only fit whole: each
        // comes back equal, in send order, and the chunks' memory is given back as they empty.
        use labctl_core::plane::Best;
        use labctl_core::Vote;
        let body = |i: u64| match i % 7 {
            0 => Body::Setup { id: i + 1 },
            1 => Body::YoDown {
                // At the edge of what fits beside the kind and the epoch, and past it.
                iteration: match i % 3 {
                    0 => (1 << A_BITS) - 1,
                    1 => 1 << A_BITS,
                    _ => (i % 40) as u32,
                },
                value: u64::MAX - i,
            },
            2 => Body::YoUp {
                iteration: 3,
                vote: if i.is_multiple_of(2) {
                    Vote::Yes
                } else {
                    Vote::No
                },
                prune: i.is_multiple_of(3),
            },
            3 => Body::Q {
                leader: i,
                depth: u32::MAX - 1,
            },
            4 => Body::Yes {
                size: i,
                best: None,
            },
            5 => Body::Yes {
                size: i,
                best: Some(Best {
                    pos: labctl_core::log::Pos { epoch: 2, seq: i },
                    node: 7,
                }),
            },
            _ => Body::Setup { id: i },
        };
        let message = |i: u64| Message {
            epoch: if i.is_multiple_of(11) {
                1 << 40
            } else if i.is_multiple_of(13) {
                (1 << EPOCH_BITS) - 1
            } else if i.is_multiple_of(17) {
                1 << EPOCH_BITS
            } else {
                i % 5 + 1
            },
            body: body(i),
        };
        // Kept whole: a Yes with a log position, and whatever has a number past its bits.
        let whole = |i: u64| {
            let m = message(i);
            let a = match m.body {
                Body::YoDown { iteration, .. } | Body::YoUp { iteration, .. } => iteration,
                Body::Q { depth, .. } => depth,
                _ => 0,
            };
            matches!(m.body, Body::Yes { best: Some(_), .. })
                || m.epoch >= 1 << EPOCH_BITS
                || a >= 1 << A_BITS
        };
        let mut calendar = Calendar::new();
        let total = 3 * CHUNK as u64 + 17;
        for i in 0..total {
            calendar.push(
                5,
                InFlight {
                    from: i,
                    to: (i % 1000) as usize,
                    message: message(i),
                },
            );
        }
        assert_eq!(std::mem::size_of::<Packed>(), 24);
        assert_eq!(
            calendar.whole.len() as u64,
            (0..total).filter(|&i| whole(i)).count() as u64,
            "only what does not fit is kept whole"
        );
        assert_eq!(calendar.slots[5].chunks.len(), 4);
        for i in 0..total {
            let (t, flight) = calendar.pop(0).unwrap();
            assert_eq!((t, flight.from, flight.to), (5, i, (i % 1000) as usize));
            assert_eq!(flight.message, message(i), "message {i}");
        }
        assert!(calendar.pop(0).is_none());
        assert!(calendar.slots[5].chunks.is_empty() && calendar.whole.is_empty());
        assert!(calendar.spare.len() <= SPARE_CHUNKS);
    }

    #[test]
    fn each_link_draws_its_own_delays_over_the_whole_range() {
        // A link's delays cover 1..=ASYNC_MAX_DELAY evenly; another link, or another seed, draws
        // another sequence; the same (seed, link, k) always the same delay.
        let mut seen = [0u32; ASYNC_MAX_DELAY as usize + 1];
        for k in 0..16_000 {
            seen[link_delay(5, 3, k) as usize] += 1;
        }
        assert_eq!(seen[0], 0, "no delay is zero");
        for (delay, &count) in seen.iter().enumerate().skip(1) {
            // 1,000 expected each; 800 is over six standard deviations away.
            assert!(
                (800..1200).contains(&count),
                "delay {delay} drawn {count} times"
            );
        }
        let sequence = |seed, slot| {
            (0..64)
                .map(|k| link_delay(seed, slot, k))
                .collect::<Vec<_>>()
        };
        assert_eq!(sequence(5, 3), sequence(5, 3));
        assert_ne!(sequence(5, 3), sequence(5, 4));
        assert_ne!(sequence(5, 3), sequence(6, 3));
        // Neighbouring slots are not the same sequence shifted by one message.
        assert_ne!(sequence(5, 3)[1..], sequence(5, 4)[..63]);
    }

    #[test]
    fn a_link_never_overtakes_itself() {
        let mut link = LinkOut {
            clock: 0,
            index: 0,
            sent: 0,
        };
        let mut last = 0;
        for now in 0..2_000 {
            // Several messages at each time, and a time's messages never before the time's end.
            for _ in 0..(now % 3) {
                let at = link.stamp(7, now, Delivery::Async, 11);
                assert!(
                    at > now && at >= last,
                    "sent at {now}, arrives at {at} after {last}"
                );
                assert!(at <= now + ASYNC_MAX_DELAY || at == last);
                last = at;
            }
        }
        assert_eq!(link.sent, (0..2_000u32).map(|n| n % 3).sum::<u32>());
    }

    #[test]
    fn calendar_delivers_in_time_then_send_order() {
        // Push messages with random delays the way `send` does, as time advances; the calendar
        // must pop them exactly as a sort on (time, send order) would.
        let mut rng = SplitMix64::new(99);
        let mut calendar = Calendar::new();
        let mut expected = Vec::new();
        let mut now = 0;
        let mut popped = Vec::new();
        for seq in 0..5_000u64 {
            let at = now + 1 + rng.below(ASYNC_MAX_DELAY);
            let message = Message {
                epoch: 1,
                body: Body::Setup { id: seq },
            };
            calendar.push(
                at,
                InFlight {
                    from: seq,
                    to: 0,
                    message,
                },
            );
            expected.push((at, seq));
            // Deliver now and then, as the simulator interleaves sends and deliveries.
            if rng.below(3) == 0 {
                let (t, flight) = calendar.pop(now).unwrap();
                now = t;
                popped.push((t, flight.from));
            }
        }
        while let Some((t, flight)) = calendar.pop(now) {
            now = t;
            popped.push((t, flight.from));
        }
        // Everything popped is in non-decreasing time, and equal times keep send order.
        assert!(popped.windows(2).all(|w| w[0] <= w[1]), "out of order");
        expected.sort();
        let mut got = popped.clone();
        got.sort();
        assert_eq!(got, expected, "every message delivered once");
    }
}
