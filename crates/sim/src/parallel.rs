//! Delivering one time's messages on two threads, the same run as on one, under synchronous
//! delivery (asynchronous delivery goes by halves throughout: `lanes`).
//!
//! Every message of time `t` is known before the first of them is delivered: a send takes at
//! least one unit of time, so nothing sent at `t` arrives at `t`. And a delivery changes only its
//! receiver. So the messages of one time can be delivered in any order across receivers, as long
//! as each receiver takes its own in order: this thread delivers those to the first half of the
//! nodes, a helper those to the second, each in the time's order. A send changes only its own
//! link, which lies in its sender's row, and a link's delays depend on the link and how many
//! messages it has carried, not on the order of sends elsewhere (`link_delay`): so each thread
//! also puts its nodes' sends on their links, stamping their arrival times. Then this thread
//! queues the stamped sends in the order one thread would have: message by message, each
//! message's sends in the order its node made them. Same deliveries, same sends, same delays: the
//! same run, message for message (a test compares the two). The helper hands its deliveries back
//! in chunks as it goes, so this thread, done with its own half, queues the sends of the helper's
//! first chunks while the helper delivers the rest.

use labctl_core::{Input, Node, NodeId, Output, Spare};

use super::{
    link_slot, prefetch, prefetch_bytes, prefetch_node, Delivery, InFlight, LinkOut, Packed,
    Progress, SimError, Simulation, Stamped, PREFETCH_FAR, PREFETCH_NEAR, PROGRESS_EVERY,
};

/// Runs of at least this many nodes deliver on two threads.
pub(crate) const TWO_THREADS: usize = 50_000;

/// At most this many messages of one time are delivered in one round (the rest of that time's in
/// the next): it bounds the round's buffers.
const ROUND: usize = 1 << 15;

/// A time of fewer messages than this is delivered on this thread alone (in the same order).
const ALONE: usize = 1024;

/// What a half needs to deliver a round: its nodes and their links, and the run's clock.
struct Part<'a> {
    /// The half's nodes, the first of them node `base`.
    nodes: &'a mut [Node],
    base: usize,
    /// Every node's row bounds (see [`Simulation`]).
    row: &'a [u32],
    /// The half's nodes' links out, the first of them the link in slot `row[base]`.
    links: &'a mut [LinkOut],
    now: u64,
    delivery: Delivery,
    seed: u64,
}

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
    /// Deliver the items to the part's nodes, in order.
    fn deliver(&mut self, part: &mut Part) {
        self.sent.made.clear();
        self.sent.sends.clear();
        self.deliver_some(0..self.items.len(), part);
        self.items.clear();
    }

    /// Deliver the items to `nodes` in chunks of [`CHUNK`], handing each chunk's sends to
    /// `done` as soon as it is delivered (the helper's part of a round: this thread queues a
    /// chunk's sends while the helper delivers the next).
    fn deliver_in_chunks(&mut self, part: &mut Part, done: &std::sync::mpsc::Sender<Sent>) {
        for start in (0..self.items.len()).step_by(CHUNK) {
            let end = (start + CHUNK).min(self.items.len());
            self.deliver_some(start..end, part);
            if done.send(std::mem::take(&mut self.sent)).is_err() {
                break;
            }
        }
        self.items.clear();
    }

    /// Deliver `items[range]` in order, adding what they sent, put on their links, to `sent`.
    fn deliver_some(&mut self, range: std::ops::Range<usize>, part: &mut Part) {
        let Half {
            items,
            sent: Sent { made, sends },
            spare,
            out,
        } = self;
        let Part {
            nodes,
            base,
            row,
            links,
            now,
            delivery,
            seed,
        } = part;
        let (base, now) = (*base, *now);
        let first_link = row[base] as usize;
        for k in range {
            if let Some(far) = items.get(k + PREFETCH_FAR) {
                prefetch_node(&nodes[far.to - base]);
                prefetch(&row[far.to]);
            }
            if let Some(near) = items.get(k + PREFETCH_NEAR) {
                for (start, len) in nodes[near.to - base].hot_blocks() {
                    prefetch_bytes(start, len);
                }
                let out = &links
                    [row[near.to] as usize - first_link..row[near.to + 1] as usize - first_link];
                prefetch_bytes(out.as_ptr().cast(), std::mem::size_of_val(out));
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
                    let link = &mut links[slot - first_link];
                    let at = link.stamp(slot, now, *delivery, *seed);
                    sends.push(Stamped {
                        at,
                        to: link.index,
                        message,
                    });
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
    /// The sends, delivery after delivery, each on its link.
    sends: Vec<Stamped>,
}

/// The helper hands back its deliveries in chunks of this many.
const CHUNK: usize = 1024;

impl Simulation {
    /// Queue the sends of a round's deliveries in one thread's order: item by item (`side` says
    /// whose), each item's sends in the order its node made them. `mine` holds this thread's
    /// part; the helper's comes in `chunks`, in order.
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
                for stamped in sends.by_ref().take(count as usize) {
                    self.queue_stamped(me, stamped);
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
                for stamped in their_sends.by_ref().take(count as usize) {
                    self.queue_stamped(me, stamped);
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
            // The nodes and their links are lent out for the round (queueing never looks at them
            // without a trace, and a run with one never comes here).
            let mut nodes = std::mem::take(&mut self.nodes);
            let mut links = std::mem::take(&mut self.links);
            let row = std::mem::take(&mut self.row);
            let (delivery, seed) = (self.config.delivery, self.config.seed);
            {
                let (lo, hi) = nodes.split_at_mut(half);
                let (lo_links, hi_links) = links.split_at_mut(row[half] as usize);
                let part = |nodes, base, links| Part {
                    nodes,
                    base,
                    row: &row,
                    links,
                    now: at,
                    delivery,
                    seed,
                };
                let (mut lo, mut hi) = (part(lo, 0, lo_links), part(hi, half, hi_links));
                if side.len() < ALONE {
                    // A time of few messages is not worth the helper.
                    mine.deliver(&mut lo);
                    theirs.deliver(&mut hi);
                    let chunks = std::iter::once(std::mem::take(&mut theirs.sent));
                    self.schedule_round(&side, &mut mine, chunks);
                } else {
                    // The helper delivers the second part in chunks while this thread delivers
                    // the first, then queues every send in one thread's order, each chunk of the
                    // helper's as soon as it comes.
                    std::thread::scope(|scope| {
                        let (done, chunks) = std::sync::mpsc::channel();
                        let helper = {
                            let theirs = &mut theirs;
                            scope.spawn(move || theirs.deliver_in_chunks(&mut hi, &done))
                        };
                        mine.deliver(&mut lo);
                        self.schedule_round(&side, &mut mine, chunks.iter());
                        if let Err(panic) = helper.join() {
                            std::panic::resume_unwind(panic);
                        }
                    });
                }
            }
            self.nodes = nodes;
            self.links = links;
            self.row = row;
        }
        self.run_until_quiet_one(budget, observe)
    }
}
