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
//! same draws: the same run, message for message (a test compares the two).

use labctl_core::{Input, Message, Node, NodeId, Output, Spare};

use super::{
    link_slot, prefetch, prefetch_bytes, InFlight, Packed, Progress, SimError, Simulation,
    PREFETCH_FAR, PREFETCH_NEAR, PROGRESS_EVERY,
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
pub(crate) struct Half {
    /// The messages, in the time's order.
    items: Vec<InFlight>,
    /// Per item, in order: the receiver's id and how many sends it made.
    made: Vec<(NodeId, u32)>,
    /// The sends, item after item: the link's slot and the message.
    sends: Vec<(u32, Message)>,
    /// The buffers a node borrows for a call, and its outputs.
    spare: Spare,
    out: Vec<Output>,
}

impl Half {
    /// Deliver the items to `nodes` (the half that starts at index `base`), in order, at `now`.
    fn deliver(&mut self, nodes: &mut [Node], base: usize, row: &[u32], now: u64) {
        let Half {
            items,
            made,
            sends,
            spare,
            out,
        } = self;
        made.clear();
        sends.clear();
        for k in 0..items.len() {
            if let Some(far) = items.get(k + PREFETCH_FAR) {
                prefetch(&nodes[far.to - base]);
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
        items.clear();
    }
}

impl Simulation {
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
            // Both halves at once, the helper taking the second; a time of few messages is not
            // worth starting it.
            let (lo, hi) = self.nodes.split_at_mut(half);
            let row = &self.row[..];
            if side.len() < ALONE {
                mine.deliver(lo, 0, row, at);
                theirs.deliver(hi, half, row, at);
            } else {
                std::thread::scope(|scope| {
                    let helper = scope.spawn(|| theirs.deliver(hi, half, row, at));
                    mine.deliver(lo, 0, row, at);
                    if let Err(panic) = helper.join() {
                        std::panic::resume_unwind(panic);
                    }
                });
            }
            // The sends, in one thread's order.
            let mut made = (mine.made.iter(), theirs.made.iter());
            let mut sends = (mine.sends.drain(..), theirs.sends.drain(..));
            for &ours in &side {
                let (made, sends) = if ours {
                    (&mut made.0, &mut sends.0)
                } else {
                    (&mut made.1, &mut sends.1)
                };
                let &(me, count) = made.next().expect("each delivery's sends counted");
                for (slot, message) in sends.by_ref().take(count as usize) {
                    self.schedule(me, slot as usize, message);
                }
            }
        }
        self.run_until_quiet_one(budget, observe)
    }
}
