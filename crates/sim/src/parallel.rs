//! Delivering one time's messages on two threads, the same run as on one.
//!
//! Every message of time `t` is known before the first of them is delivered: a send takes at
//! least one unit of time, so nothing sent at `t` arrives at `t`. And a delivery changes only its
//! receiver. So the messages of one time can be delivered in any order across receivers, as long
//! as each receiver takes its own in order: this thread delivers those to the first half of the
//! nodes, a helper those to the second half, each in the time's order, and each keeps what its
//! nodes sent. Then this thread carries out the sends in the order one thread would have: message
//! by message, each message's sends in the order its node made them, drawing each delay from the
//! one random stream and pushing each onto its link in that order. Same deliveries, same sends,
//! same draws: the same run, message for message (a test compares the two). The helper hands its
//! deliveries back in chunks as it goes, so this thread, done with its own half, schedules the
//! sends of the helper's first chunks while the helper delivers the rest.

use labctl_core::{Input, Message, Node, NodeId, Output, Spare};

use super::{
    link_slot, prefetch, prefetch_bytes, prefetch_node, InFlight, Packed, Progress, SimError,
    Simulation, PREFETCH_FAR, PREFETCH_NEAR, PROGRESS_EVERY,
};

/// Runs of at least this many nodes deliver on two threads.
pub(crate) const TWO_THREADS: usize = 50_000;

/// At most this many messages of one time are delivered in one round (the rest of that time's in
/// the next): it bounds the round's buffers.
const ROUND: usize = 1 << 15;

/// A time of fewer messages than this is delivered on this thread alone (in the same order).
const ALONE: usize = 1024;

/// One half's deliveries of a round, and what its nodes sent.
#[derive(Default)]
struct Half {
    /// The messages, in the time's order.
    items: Vec<InFlight>,
    /// What the deliveries sent.
    sent: Sent,
    /// The buffers a node borrows for a call, and its outputs.
    spare: Spare,
    out: Vec<Output>,
}

impl Half {
    /// Deliver the items to `nodes` (the half that starts at index `base`), in order, at `now`.
    fn deliver(&mut self, nodes: &mut [Node], base: usize, row: &[u32], now: u64) {
        self.sent.made.clear();
        self.sent.sends.clear();
        self.deliver_some(0..self.items.len(), nodes, base, row, now);
        self.items.clear();
    }

    /// Deliver the items to `nodes` in chunks of [`CHUNK`], handing each chunk's sends to
    /// `done` as soon as it is delivered (the helper's part of a round: this thread schedules a
    /// chunk's sends while the helper delivers the next).
    fn deliver_in_chunks(
        &mut self,
        nodes: &mut [Node],
        base: usize,
        row: &[u32],
        now: u64,
        done: &std::sync::mpsc::Sender<Sent>,
    ) {
        for start in (0..self.items.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(self.items.len());
            self.deliver_some(start..end, nodes, base, row, now);
            if done.send(std::mem::take(&mut self.sent)).is_err() {
                break;
            }
        }
        self.items.clear();
    }

    /// Deliver `items[range]` in order, adding what they sent to `sent`.
    fn deliver_some(
        &mut self,
        range: std::ops::Range<usize>,
        nodes: &mut [Node],
        base: usize,
        row: &[u32],
        now: u64,
    ) {
        let Half {
            items,
            sent: Sent { made, sends },
            spare,
            out,
        } = self;
        for k in range {
            if let Some(far) = items.get(k + PREFETCH_FAR) {
                prefetch_node(&nodes[far.to - base]);
                prefetch(&row[far.to]);
            }
            if let Some(near) = items.get(k + PREFETCH_NEAR) {
                for (start, len) in nodes[near.to - base].hot_blocks() {
                    prefetch_bytes(start, len);
                }
            }
            let flight = &items[k];
            let i = flight.to;
            let input = Input::Receive {
                from: flight.from,
                message: flight.message.clone(),
            };
            let node = &mut nodes[i - base];
            node.handle_lent(spare, now, input, out);
            let me = node.id();
            let before = sends.len();
            for output in out.drain(..) {
                if let Output::Send { to, message } = output {
                    let slot = link_slot(row, i, node, to);
                    sends.push((slot as u32, message));
                }
            }
            made.push((me, (sends.len() - before) as u32));
        }
    }
}

/// What some deliveries sent (a half's in a round, or one chunk of the helper's).
#[derive(Default)]
struct Sent {
    /// Per delivery, in order: the receiver's id and how many sends it made.
    made: Vec<(NodeId, u32)>,
    /// The sends, delivery after delivery: the link's slot and the message.
    sends: Vec<(u32, Message)>,
}

/// The helper hands back its deliveries in chunks of this many.
const CHUNK: usize = 1024;

impl Simulation {
    /// Schedule the sends of a round's deliveries in one thread's order: item by item (`side`
    /// says whose), each item's sends in the order its node made them. `mine` holds this
    /// thread's part; the helper's comes in `chunks`, in order.
    fn schedule_round(
        &mut self,
        side: &[bool],
        mine: &mut Half,
        mut chunks: impl Iterator<Item = Sent>,
    ) {
        let mut made = mine.sent.made.iter();
        let mut sends = mine.sent.sends.drain(..);
        let mut their_made = Vec::new().into_iter();
        let mut their_sends = Vec::new().into_iter();
        for &ours in side {
            if ours {
                let &(me, count) = made.next().expect("each delivery's sends counted");
                for (slot, message) in sends.by_ref().take(count as usize) {
                    self.schedule(me, slot as usize, message);
                }
            } else {
                let (me, count) = match their_made.next() {
                    Some(item) => item,
                    None => {
                        let chunk = chunks.next().expect("the helper delivers all its part");
                        their_made = chunk.made.into_iter();
                        their_sends = chunk.sends.into_iter();
                        their_made.next().expect("a chunk is never empty")
                    }
                };
                for (slot, message) in their_sends.by_ref().take(count as usize) {
                    self.schedule(me, slot as usize, message);
                }
            }
        }
    }

    /// [`Simulation::run_until_quiet_observed`] on two threads (see the module documentation),
    /// for a run without a trace. Near the budget it hands over to the one-thread loop, which
    /// fails exactly where it would have.
    pub(crate) fn run_in_two(
        &mut self,
        budget: u64,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<(), SimError> {
        let half = self.nodes.len() / 2;
        let mut mine = Half::default();
        let mut theirs = Half::default();
        let mut packed: Vec<Packed> = Vec::with_capacity(ROUND);
        let mut side: Vec<bool> = Vec::with_capacity(ROUND);
        while self.delivered + (ROUND as u64) < budget {
            let Some(at) = self.queue.take_time(self.now, ROUND, &mut packed) else {
                break;
            };
            if self.delivered / PROGRESS_EVERY
                != (self.delivered + packed.len() as u64) / PROGRESS_EVERY
                || self.delivered == 0
            {
                observe(&Progress {
                    in_flight: self.queue.len + packed.len(),
                    ..self.progress()
                });
            }
            self.now = at;
            self.delivered += packed.len() as u64;
            side.clear();
            for p in packed.drain(..) {
                let flight = self.queue.unpack(p);
                let ours = flight.to < half;
                side.push(ours);
                if ours {
                    mine.items.push(flight);
                } else {
                    theirs.items.push(flight);
                }
            }
            // The nodes are lent out for the round (scheduling never looks at them without a
            // trace, and a run with one never comes here).
            let mut nodes = std::mem::take(&mut self.nodes);
            let (lo, hi) = nodes.split_at_mut(half);
            let row = std::mem::take(&mut self.row);
            if side.len() < ALONE {
                // A time of few messages is not worth the helper.
                mine.deliver(lo, 0, &row, at);
                theirs.deliver(hi, half, &row, at);
                let chunks = std::iter::once(std::mem::take(&mut theirs.sent));
                self.schedule_round(&side, &mut mine, chunks);
            } else {
                // The helper delivers the second part in chunks while this thread delivers the
                // first, then schedules every send in one thread's order, each chunk of the
                // helper's as soon as it comes.
                std::thread::scope(|scope| {
                    let (done, chunks) = std::sync::mpsc::channel();
                    let helper = {
                        let (theirs, row) = (&mut theirs, &row);
                        scope.spawn(move || theirs.deliver_in_chunks(hi, half, row, at, &done))
                    };
                    mine.deliver(lo, 0, &row, at);
                    self.schedule_round(&side, &mut mine, chunks.iter());
                    if let Err(panic) = helper.join() {
                        std::panic::resume_unwind(panic);
                    }
                });
            }
            self.nodes = nodes;
            self.row = row;
        }
        self.run_until_quiet_one(budget, observe)
    }
}
