//! Asynchronous delivery by halves: each half of the nodes takes its messages on a thread of its
//! own, with no thread putting the other's sends in order.
//!
//! The nodes are cut in two halves by the parity of their index (halves by ranges of indices,
//! which follow the ids, would not share the work evenly: Yo-Yo's waves follow the ids). A message
//! in flight waits in one of four calendars, `lane[from][to]`, by the halves of its sender and its
//! receiver. At each time `t` with messages, each half is given its messages of `t`: those from the
//! first half's senders, then those from the second's, each lane in the order its messages were
//! sent (so a link, which lies in one lane, stays FIFO). A half delivers them in that order, and
//! puts its nodes' sends on their links (each link draws its own delays: `link_delay`) and in its
//! own two lanes. A delivery changes only its receiver, and nothing sent at `t` arrives at `t`: so
//! the two halves of time `t` can be delivered one after the other or at once, and the run is the
//! same, message for message (a test compares them). That order is the simulator's order under
//! asynchronous delivery, on one thread or two.
//!
//! On two threads the halves meet three times a time, at a [`SpinBarrier`]: this thread finds
//! the next time while the helper waits; each half takes its messages of that time out of the
//! lanes; each delivers them, its sends going only to its own lanes. A time's work is often a
//! few microseconds, less than a sleeping thread takes to wake. The nodes and links are shared
//! between the halves through raw pointers ([`Shared`]), each half touching only its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use labctl_core::{Input, Message, Node, Output, Spare};

use super::{
    link_slot, prefetch, prefetch_bytes, prefetch_node, Bucket, Calendar, Delivery, InFlight,
    LinkOut, Packed, Progress, SimError, Simulation, Stage, TraceEntry, TraceLine, Wire, WireCount,
    PREFETCH_FAR, PREFETCH_NEAR, PROGRESS_EVERY, SPARE_CHUNKS,
};

/// The messages in flight, by the halves of their sender and receiver.
pub(crate) struct Lanes {
    /// `lane[from][to]`.
    lane: [[Mutex<Calendar>; 2]; 2],
}

impl Lanes {
    /// Empty lanes.
    pub(crate) fn new() -> Self {
        // Each lane's messages kept whole take keys of their own: a half's messages of one time
        // come from two lanes.
        let lane = |k: u64| Mutex::new(Calendar::with_whole_keys_from(k << 56));
        Lanes {
            lane: [[lane(1), lane(2)], [lane(3), lane(4)]],
        }
    }

    /// The messages in flight.
    pub(crate) fn len(&self) -> usize {
        self.lane.iter().flatten().map(|l| lock(l).len).sum()
    }

    /// Give the memory back; what is left in flight is only counted from here on.
    pub(crate) fn release(&mut self) {
        self.lane
            .iter_mut()
            .flatten()
            .for_each(|l| lane(l).release());
    }

    /// The first time at or after `now` with messages in any lane.
    fn next_time(&self, now: u64) -> Option<u64> {
        self.lane
            .iter()
            .flatten()
            .filter_map(|l| lock(l).next_time(now))
            .min()
    }

    /// The messages of time `t` in every lane.
    fn len_at(&self, t: u64) -> usize {
        self.lane.iter().flatten().map(|l| lock(l).len_at(t)).sum()
    }
}

/// The half of node `index`: its index's parity. (Halves by ranges of indices, which are in id
/// order, would not share the work evenly: Yo-Yo's waves follow the ids.)
fn side(index: usize) -> usize {
    index % 2
}

/// A lane, which only one thread uses at a time (the halves meet at a barrier between times).
fn lane(lane: &mut Mutex<Calendar>) -> &mut Calendar {
    lane.get_mut().unwrap_or_else(|e| e.into_inner())
}

/// A lane (or the helper's stage), locked: the other half's thread never holds it then (see
/// [`Lanes`]).
fn lock<T>(lane: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lane.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every node and every link, which the two halves share: each touches only its own nodes (by
/// the parity of their index) and their links.
#[derive(Clone, Copy)]
struct Shared {
    nodes: *mut Node,
    count: usize,
    links: *mut LinkOut,
}

// SAFETY: the halves that hold a `Shared` touch disjoint nodes and links (see `Shared::node`),
// and the vectors behind it outlive them (`Simulation::with_halves`).
unsafe impl Send for Shared {}

impl Shared {
    /// Node `i`, which must be `side`'s (asserted: the other half never touches it).
    ///
    /// # Safety
    ///
    /// No other reference to node `i` may be alive while the one returned is: `Shared` is
    /// `Copy`, and another copy would lend the same node again. Each half borrows one node at a
    /// time, the borrow ending before the next.
    unsafe fn node(&mut self, side: usize, i: usize) -> &mut Node {
        assert!(
            i < self.count && i % 2 == side,
            "node {i} is not half {side}'s"
        );
        // SAFETY: in bounds and of `side`'s parity (the other half never touches it); the
        // caller holds no other reference to it.
        unsafe { &mut *self.nodes.add(i) }
    }

    /// The link in `slot`, which must lie in node `i`'s row, node `i` being `side`'s (asserted:
    /// the other half never touches its links).
    ///
    /// # Safety
    ///
    /// As for [`Shared::node`]: no other reference to that link may be alive.
    unsafe fn link(&mut self, row: &[u32], side: usize, i: usize, slot: usize) -> &mut LinkOut {
        assert!(i % 2 == side && (row[i] as usize..row[i + 1] as usize).contains(&slot));
        // SAFETY: in node `i`'s row (in bounds) and node `i` is `side`'s; the caller holds no
        // other reference to it.
        unsafe { &mut *self.links.add(slot) }
    }
}

/// One half's nodes and links, and what it keeps from time to time.
struct Half<'a> {
    /// 0 for the nodes of even index, 1 for the odd.
    side: usize,
    /// The nodes and links, of which this half's are its own.
    shared: Shared,
    /// Every node's row bounds.
    row: &'a [u32],
    delivery: Delivery,
    seed: u64,
    /// The messages of the time being delivered, in order (two lanes' buckets), and those of
    /// them kept whole.
    inbox: Vec<Bucket>,
    whole: HashMap<u64, Message>,
    spare: Spare,
    out: Vec<Output>,
    /// The half's sends, counted.
    wire: WireCount,
}

impl Half<'_> {
    /// Node `i`'s links out, to be read ahead.
    fn links_of(&self, i: usize) -> (*const u8, usize) {
        let (from, to) = (self.row[i] as usize, self.row[i + 1] as usize);
        // (An address only: nothing is read through it here.)
        (
            self.shared.links.wrapping_add(from).cast_const().cast(),
            (to - from) * std::mem::size_of::<LinkOut>(),
        )
    }

    /// Take this half's messages of time `t` from the lane of the first half's senders (`first`)
    /// and then from the second's (`second`).
    fn fill(&mut self, t: u64, first: &mut Calendar, second: &mut Calendar) {
        for lane in [first, second] {
            self.inbox.push(lane.take_bucket(t, &mut self.whole));
        }
    }

    /// Deliver the inbox at time `now` with no budget and no trace, this half's two lanes
    /// locked for the sends.
    fn deliver_unbounded(&mut self, now: u64, lanes: &[Mutex<Calendar>; 2]) {
        let done = into_locked(lanes, |sink| self.deliver(now, sink, &mut 0, u64::MAX));
        debug_assert!(done.is_ok(), "no budget to pass");
    }

    /// Deliver the inbox at time `now`, in order, into `sink`. With a budget (`delivered` and
    /// its limit), stops before the delivery past it: `Err` holds how many of the inbox were
    /// left.
    fn deliver(
        &mut self,
        now: u64,
        sink: &mut Sink,
        delivered: &mut u64,
        budget: u64,
    ) -> Result<(), usize> {
        let mut left: usize = self.inbox.iter().map(Bucket::len).sum();
        let mut inbox = std::mem::take(&mut self.inbox);
        for bucket in inbox.drain(..) {
            let mut head = bucket.head;
            for mut chunk in bucket.chunks {
                let items = &chunk[head..];
                head = 0;
                for (k, packed) in items.iter().enumerate() {
                    if *delivered >= budget {
                        return Err(left);
                    }
                    *delivered += 1;
                    left -= 1;
                    self.prefetch(items, k);
                    self.deliver_one(now, packed, sink);
                }
                // The chunk's room is used again by this half's sends.
                chunk.clear();
                let [to_first, to_second] = &mut sink.lanes;
                let lane = if to_first.spare.len() <= to_second.spare.len() {
                    to_first
                } else {
                    to_second
                };
                if lane.spare.len() < SPARE_CHUNKS {
                    lane.spare.push(chunk);
                }
            }
        }
        self.inbox = inbox;
        debug_assert!(self.whole.is_empty(), "every message kept whole delivered");
        Ok(())
    }

    /// Ask for what the deliveries a few places after `items[k]` will read, as the one-thread
    /// loop does (`Simulation::prefetch_ahead`): the node and its row's bounds
    /// [`PREFETCH_FAR`] ahead, its heap blocks and links out [`PREFETCH_NEAR`] ahead.
    fn prefetch(&mut self, items: &[Packed], k: usize) {
        if let Some(far) = items.get(k + PREFETCH_FAR) {
            let i = far.to as usize;
            // SAFETY: a borrow for the call alone.
            prefetch_node(unsafe { self.shared.node(self.side, i) });
            prefetch(&self.row[i]);
        }
        if let Some(near) = items.get(k + PREFETCH_NEAR) {
            let i = near.to as usize;
            // SAFETY: a borrow for the call alone.
            for (start, len) in unsafe { self.shared.node(self.side, i) }.hot_blocks() {
                prefetch_bytes(start, len);
            }
            let (start, len) = self.links_of(i);
            prefetch_bytes(start, len);
        }
    }

    /// Deliver one message at `now`, what its node asks for into `sink`.
    fn deliver_one(&mut self, now: u64, packed: &Packed, sink: &mut Sink) {
        let flight = Calendar::unpack_with(*packed, &mut self.whole);
        let i = flight.to;
        let mut shared = self.shared;
        // SAFETY: the only borrow of the node until `handle_lent` returns, before `carry_out`
        // borrows it again.
        let node = unsafe { shared.node(self.side, i) };
        if let Some(trace) = sink.trace.as_deref_mut() {
            trace.push(TraceLine {
                t: now,
                node: node.id(),
                what: TraceEntry::Wire(Wire::Receive {
                    from: flight.from,
                    message: flight.message.clone(),
                }),
            });
        }
        let input = Input::Receive {
            from: flight.from,
            message: flight.message,
        };
        node.handle_lent(&mut self.spare, now, input, &mut self.out);
        self.carry_out(i, now, sink);
    }

    /// Give each of this half's nodes [`Input::Start`] for `epoch` at `now`, in index order,
    /// this half's two lanes locked for the sends.
    fn start(&mut self, now: u64, epoch: u64, lanes: &[Mutex<Calendar>; 2]) {
        into_locked(lanes, |sink| self.start_each(now, epoch, sink));
    }

    /// [`Half::start`] into any sink (one with a trace, on one thread).
    fn start_each(&mut self, now: u64, epoch: u64, sink: &mut Sink) {
        let mut shared = self.shared;
        for i in (self.side..shared.count).step_by(2) {
            let input = Input::Start { epoch };
            // SAFETY: the only borrow of the node until `handle_lent` returns, before
            // `carry_out` borrows it again.
            let node = unsafe { shared.node(self.side, i) };
            node.handle_lent(&mut self.spare, now, input, &mut self.out);
            self.carry_out(i, now, sink);
        }
    }

    /// Carry out what node `i` asked for in its last call (in `out`): each send put on its
    /// link and in its lane, each step in the trace if there is one.
    fn carry_out(&mut self, i: usize, now: u64, sink: &mut Sink) {
        let (mut nodes, mut links) = (self.shared, self.shared);
        // SAFETY: the only borrow of the node here (its handling is done); the links borrowed
        // below are other memory, one at a time.
        let node = &*unsafe { nodes.node(self.side, i) };
        let me = node.id();
        for output in self.out.drain(..) {
            match output {
                Output::Send { to, message } => {
                    let slot = link_slot(self.row, i, node, to);
                    // SAFETY: the only borrow of this link, ended by the next send's.
                    let link = unsafe { links.link(self.row, self.side, i, slot) };
                    let at = link.stamp(slot, now, self.delivery, self.seed);
                    let index = link.index as usize;
                    self.wire.count(&message);
                    if let Some(trace) = sink.trace.as_deref_mut() {
                        trace.push(TraceLine {
                            t: now,
                            node: me,
                            what: TraceEntry::Wire(Wire::Send {
                                to,
                                message: message.clone(),
                            }),
                        });
                    }
                    let flight = InFlight {
                        from: me,
                        to: index,
                        message,
                    };
                    sink.lanes[side(index)].push(at, flight);
                }
                Output::Event(event) => {
                    if let Some(trace) = sink.trace.as_deref_mut() {
                        trace.push(TraceLine {
                            t: now,
                            node: me,
                            what: TraceEntry::Node(event),
                        });
                    }
                }
                // Plain nodes keep no time and persist nothing: these never come.
                Output::Heartbeat { .. } | Output::Persist { .. } | Output::Wake { .. } => {}
            }
        }
    }
}

/// Who watches a run: its budget of deliveries, and the progress reports, every
/// [`PROGRESS_EVERY`] deliveries from the first.
struct Watch<'o> {
    budget: u64,
    /// When the next report is due (in deliveries).
    next_report: u64,
    observe: &'o mut dyn FnMut(&Progress),
}

/// Where a half's deliveries put what their nodes ask for: the half's two lanes (to the first
/// half, to the second) and the trace, if the run keeps one.
struct Sink<'s> {
    lanes: [&'s mut Calendar; 2],
    trace: Option<&'s mut Vec<TraceLine>>,
}

/// Run `work` with a sink into a half's two lanes (to the first half, to the second), locked,
/// and no trace: a thread of two.
fn into_locked<R>(lanes: &[Mutex<Calendar>; 2], work: impl FnOnce(&mut Sink) -> R) -> R {
    let (mut to_first, mut to_second) = (lock(&lanes[0]), lock(&lanes[1]));
    work(&mut Sink {
        lanes: [&mut to_first, &mut to_second],
        trace: None,
    })
}

/// A barrier for two threads that spins, then yields, rather than sleeping: the halves meet
/// three times for every time of the run, thousands of times a second. If either thread panics, the
/// other panics at the barrier rather than waiting forever.
#[derive(Default)]
pub(crate) struct SpinBarrier {
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub(crate) fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) == 1 {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Relaxed),
                "the other delivery thread panicked"
            );
            if spins < 1 << 14 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Poisons the barrier if the thread holding the guard panics.
    fn guard(&self) -> PoisonOnPanic<'_> {
        PoisonOnPanic(self)
    }
}

struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

impl Simulation {
    /// Deliver until quiet under asynchronous delivery, by halves (see the module documentation),
    /// on two threads when `two`. Near the budget the two threads hand over to one, which fails
    /// exactly where it would have.
    pub(crate) fn run_lanes(
        &mut self,
        budget: u64,
        two: bool,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<(), SimError> {
        self.with_halves(|sim, lanes, halves| {
            let mut watch = Watch {
                budget,
                next_report: 0,
                observe,
            };
            if two {
                sim.lanes_in_two(lanes, halves, &mut watch);
            }
            sim.lanes_in_one(lanes, halves, &mut watch)
        })
    }

    /// Give every node [`Input::Start`] for `epoch` at the current time, in index order, the
    /// second half on a helper thread when `two`: each half's sends go to its own lanes, in the
    /// same order either way.
    pub(crate) fn start_lanes(&mut self, epoch: u64, two: bool) {
        self.with_halves(|sim, lanes, [first, second]| {
            let now = sim.now;
            if two {
                let [mine, theirs] = &lanes.lane;
                std::thread::scope(|scope| {
                    scope.spawn(|| second.start(now, epoch, theirs));
                    first.start(now, epoch, mine);
                });
            } else {
                let mut trace = sim.config.trace.then_some(&mut sim.trace);
                for (side, half) in [first, second].into_iter().enumerate() {
                    let [to_first, to_second] = &mut lanes.lane[side];
                    let mut sink = Sink {
                        lanes: [lane(to_first), lane(to_second)],
                        trace: trace.as_deref_mut(),
                    };
                    half.start_each(now, epoch, &mut sink);
                }
            }
        });
    }

    /// Lend the nodes, their links and the lanes out as two [`Half`]s to `work`, and count
    /// what the halves sent.
    fn with_halves<R>(
        &mut self,
        work: impl FnOnce(&mut Simulation, &mut Lanes, &mut [Half; 2]) -> R,
    ) -> R {
        let mut lanes = self
            .lanes
            .take()
            .expect("asynchronous delivery keeps lanes");
        let mut nodes = std::mem::take(&mut self.nodes);
        let mut links = std::mem::take(&mut self.links);
        let row = std::mem::take(&mut self.row);
        let result = {
            // From here until the halves are dropped, the nodes and links are reached through
            // `shared` alone.
            let shared = Shared {
                nodes: nodes.as_mut_ptr(),
                count: nodes.len(),
                links: links.as_mut_ptr(),
            };
            let (delivery, seed) = (self.config.delivery, self.config.seed);
            let half = |side| Half {
                side,
                shared,
                row: &row,
                delivery,
                seed,
                inbox: Vec::new(),
                whole: HashMap::new(),
                spare: Spare::default(),
                out: Vec::new(),
                wire: WireCount::default(),
            };
            let mut halves = [half(0), half(1)];
            let result = work(self, &mut lanes, &mut halves);
            for half in &halves {
                self.wire.absorb(&half.wire);
            }
            result
        };
        self.nodes = nodes;
        self.links = links;
        self.row = row;
        self.lanes = Some(lanes);
        result
    }

    /// Tell the watcher how far the run has got, once its next report is due. `stages` are the
    /// halves' (the run's is the furthest of them).
    fn report_progress(&self, in_flight: usize, stages: [Stage; 2], watch: &mut Watch) {
        if self.delivered < watch.next_report {
            return;
        }
        watch.next_report = (self.delivered / PROGRESS_EVERY + 1) * PROGRESS_EVERY;
        (watch.observe)(&Progress {
            delivered: self.delivered,
            in_flight,
            stage: stages.into_iter().fold(self.wire.stage(), Stage::max),
            time: self.now,
        });
    }

    /// The halves one after the other, on this thread.
    fn lanes_in_one(
        &mut self,
        lanes: &mut Lanes,
        halves: &mut [Half; 2],
        watch: &mut Watch,
    ) -> Result<(), SimError> {
        let budget = watch.budget;
        while let Some(t) = lanes.next_time(self.now) {
            let in_flight = lanes.len();
            self.report_progress(
                in_flight,
                [halves[0].wire.stage(), halves[1].wire.stage()],
                watch,
            );
            self.now = t;
            for (side, half) in halves.iter_mut().enumerate() {
                let [from_first, from_second] = &mut lanes.lane;
                half.fill(t, lane(&mut from_first[side]), lane(&mut from_second[side]));
                let [to_first, to_second] = &mut lanes.lane[side];
                let mut sink = Sink {
                    lanes: [lane(to_first), lane(to_second)],
                    trace: self.config.trace.then_some(&mut self.trace),
                };
                let sent = half.deliver(t, &mut sink, &mut self.delivered, budget);
                if let Err(left) = sent {
                    // The other half's messages of this time are still in their lanes.
                    return Err(SimError::BudgetExceeded {
                        budget,
                        in_flight: lanes.len() + left,
                        seed: self.config.seed,
                        delivery: self.config.delivery,
                    });
                }
            }
        }
        Ok(())
    }

    /// Both halves at once, the second on a helper thread, until quiet or until the next time's
    /// messages would pass the budget (then [`Simulation::lanes_in_one`] goes on).
    fn lanes_in_two(&mut self, lanes: &mut Lanes, halves: &mut [Half; 2], watch: &mut Watch) {
        let barrier = SpinBarrier::default();
        let stop = AtomicBool::new(false);
        // The time both halves deliver next, chosen by this thread while the helper waits; and
        // how far the helper's sends have got, for the progress reports.
        let next = AtomicU64::new(0);
        let helper_stage = Mutex::new(Stage::Setup);
        let [mine, theirs] = halves;
        let lanes: &Lanes = lanes;
        std::thread::scope(|scope| {
            let (barrier, stop, next, helper_stage) = (&barrier, &stop, &next, &helper_stage);
            scope.spawn(move || {
                let _poison = barrier.guard();
                loop {
                    barrier.wait(); // 1: the time is chosen
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let t = next.load(Ordering::Acquire);
                    let [from_first, from_second] = &lanes.lane;
                    theirs.fill(t, &mut lock(&from_first[1]), &mut lock(&from_second[1]));
                    barrier.wait(); // 2: both inboxes are full
                    theirs.deliver_unbounded(t, &lanes.lane[1]);
                    *lock(helper_stage) = theirs.wire.stage();
                    barrier.wait(); // 3: the time is delivered
                }
            });
            let _poison = barrier.guard();
            // The helper waits at the barrier whenever this thread looks at every lane.
            while let Some(t) = lanes.next_time(self.now) {
                let size = lanes.len_at(t);
                if self.delivered + size as u64 > watch.budget {
                    break;
                }
                let stages = [mine.wire.stage(), *lock(helper_stage)];
                self.report_progress(lanes.len(), stages, watch);
                self.now = t;
                self.delivered += size as u64;
                next.store(t, Ordering::Release);
                barrier.wait(); // 1
                let [from_first, from_second] = &lanes.lane;
                mine.fill(t, &mut lock(&from_first[0]), &mut lock(&from_second[0]));
                barrier.wait(); // 2
                mine.deliver_unbounded(t, &lanes.lane[0]);
                barrier.wait(); // 3
            }
            stop.store(true, Ordering::Release);
            barrier.wait(); // 1: the helper stops
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn two_halves_meet_at_every_time_in_step() {
        // Each thread writes its round number, meets the other, reads the other's: always the
        // same round, over thousands of rounds.
        let barrier = SpinBarrier::default();
        let rounds = [AtomicU64::new(0), AtomicU64::new(0)];
        std::thread::scope(|scope| {
            for me in 0..2 {
                let (barrier, rounds) = (&barrier, &rounds);
                scope.spawn(move || {
                    for round in 1..=5_000 {
                        rounds[me].store(round, Ordering::Relaxed);
                        barrier.wait();
                        assert_eq!(rounds[1 - me].load(Ordering::Relaxed), round);
                        barrier.wait();
                    }
                });
            }
        });
    }

    #[test]
    fn a_barrier_whose_other_thread_panicked_panics_rather_than_waits() {
        let barrier = SpinBarrier::default();
        let waited = std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let _poison = barrier.guard();
                panic!("a core bug on the helper");
            });
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| barrier.wait()));
            assert!(other.join().is_err());
            waited
        });
        let message = waited.expect_err("the barrier gives up");
        assert_eq!(
            message.downcast_ref::<&str>(),
            Some(&"the other delivery thread panicked")
        );
    }

    #[test]
    fn a_budget_passed_on_two_threads_fails_where_one_thread_fails() {
        // 20,000 nodes, async: the two threads hand over to one near the budget, which stops
        // at the same delivery, with the same messages left in flight.
        let topology = labctl_topology::Topology::from_toml(
            "name = \"r\"\n[generate]\nshape = \"random\"\nn = 20000\ndegree = 4\nseed = 3\n",
            "r.toml",
        )
        .unwrap();
        let fail = |two: bool, budget: u64| {
            let config = Config {
                seed: 4,
                delivery: Delivery::Async,
                trace: false,
            };
            let mut sim = Simulation::on(topology.rows(), config);
            sim.two_threads = Some(two);
            sim.start_all(1);
            let error = sim
                .run_until_quiet(budget)
                .expect_err("the budget is too small");
            let SimError::BudgetExceeded { in_flight, .. } = error;
            (error.to_string(), in_flight, sim.delivered)
        };
        // (The whole run delivers 240,000 messages.)
        for budget in [1, 40_000, 123_457, 239_999] {
            let one = fail(false, budget);
            assert_eq!(fail(true, budget), one, "budget {budget}");
            assert_eq!(one.2, budget);
            assert!(one.1 > 0);
        }
    }
}
