//! The failure detector: which neighbours are alive, which links misbehave, and when a node may
//! take a link back into an election (SPEC §3.1, §6).
//!
//! Like the rest of the core this is pure: time comes in as [`Millis`] from the driver (wall
//! clock milliseconds in a node daemon, virtual time in the simulator), and the module answers
//! with what changed and when it next needs to be woken. Nothing here sends anything: the node
//! ([`crate::node`]) turns these answers into heartbeats and epochs.
//!
//! # Heartbeats and suspicion
//! Every node sends a heartbeat on every link every `heartbeat_ms`. Anything that arrives from a
//! neighbour (a heartbeat, an election message, a data-plane frame) proves it alive. A neighbour
//! silent for longer than `suspicion_ms` is **suspected**; one that speaks again **comes back**.
//! A neighbour never heard at all is given a start-up grace ([`Timing::join_grace_ms`]) before it
//! is suspected: the lab's nodes start at slightly different times.
//!
//! # A node that was itself frozen
//! A node that was paused (SIGSTOP, a long scheduling stall) has heard nothing while it was
//! frozen, through no fault of its neighbours. When the gap between two of its own inputs is
//! longer than half the suspicion timeout, it does not blame them: every live link's silence is
//! counted from now ([`Liveness::wake`]).
//!
//! # Lost frames and restarts
//! Links are FIFO but not lossless: a cut link or a broken connection loses what was in flight.
//! Each heartbeat carries how many election messages the sender has sent on the link
//! ([`Beat::sent`]) and which incarnation of the sender it is. Because the heartbeat travels
//! behind those messages, a receiver that counted fewer knows some were lost; one that sees a new
//! incarnation knows its neighbour restarted and forgot everything. Either way the link is
//! **reset**: whatever election ran on it may be stuck, so the node will start a new one.
//!
//! # Damping a flapping link
//! A link that comes back (or is reset) is not taken into a new election at once: it is **held**
//! for a while, and the hold doubles each time the link misbehaves again (route-flap damping, as
//! BGP does it). A link that fails again before its hold runs out causes nothing, so a flapping
//! link costs a few epochs, not an election storm. The penalty halves every
//! [`Timing::half_life_ms`], so a link that settles down is soon trusted again.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Time, in milliseconds since an origin of the driver's choosing.
pub type Millis = u64;

/// The failure detector's settings: the `[timing]` table of a topology file (SPEC §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Interval between heartbeats on every link, in milliseconds.
    pub heartbeat_ms: Millis,
    /// Silence after which a neighbour is suspected, in milliseconds.
    pub suspicion_ms: Millis,
}

impl Default for Timing {
    /// Classroom defaults like etcd's: a heartbeat every 100 ms, suspicion after 1 s of silence.
    fn default() -> Self {
        Timing {
            heartbeat_ms: 100,
            suspicion_ms: 1000,
        }
    }
}

/// The most times a hold doubles: 2⁷ × the settle time (12.8 s with the defaults).
pub const MAX_HOLD_DOUBLINGS: u32 = 7;

impl Timing {
    /// How long a node waits after a link fails before it starts a new epoch, so that a burst of
    /// failures (a partition cuts several links at once) settles into one epoch: one heartbeat.
    pub fn settle_ms(&self) -> Millis {
        self.heartbeat_ms.max(1)
    }

    /// How long a neighbour never heard from is waited for at start-up before it is suspected.
    pub fn join_grace_ms(&self) -> Millis {
        3 * self.suspicion_ms
    }

    /// How long a node waits for an invited neighbour's setup before it leaves the link out of
    /// the election and goes on without it.
    pub fn setup_timeout_ms(&self) -> Millis {
        self.suspicion_ms
    }

    /// The hold of a link with `penalty` (≥ 1): the settle time, doubled for every earlier
    /// misbehaviour still remembered.
    pub fn hold_ms(&self, penalty: u32) -> Millis {
        self.settle_ms() << penalty.saturating_sub(1).min(MAX_HOLD_DOUBLINGS)
    }

    /// How long it takes a link's penalty to halve.
    pub fn half_life_ms(&self) -> Millis {
        5 * self.suspicion_ms
    }

    /// A gap between two of a node's own inputs longer than this means the node itself was
    /// frozen (see the module docs): halfway between a heartbeat (a node idle but for its own
    /// heartbeats wakes every heartbeat) and the suspicion timeout.
    pub fn stall_ms(&self) -> Millis {
        self.heartbeat_ms + self.suspicion_ms.saturating_sub(self.heartbeat_ms) / 2
    }

    /// How long an election may run here before the node gives up on it and starts a new epoch
    /// (a safety net: every known way to lose an election is caught sooner). It doubles each time
    /// it runs out in a row.
    pub fn watchdog_ms(&self) -> Millis {
        5 * self.suspicion_ms
    }
}

/// What a heartbeat says, besides "I am alive".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// Which run of the sender this is: a new value means it restarted.
    pub incarnation: u64,
    /// Election messages the sender has sent on this link in this incarnation.
    pub sent: u64,
}

/// How a link's state changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A suspected neighbour spoke again; the link is held for `hold_ms` before it may start an
    /// election.
    CameBack {
        /// The neighbour.
        neighbor: NodeId,
        /// The hold.
        hold_ms: Millis,
    },
    /// The link lost election messages, or the neighbour restarted; held for `hold_ms`.
    Reset {
        /// The neighbour.
        neighbor: NodeId,
        /// What happened.
        reason: String,
        /// The hold.
        hold_ms: Millis,
    },
}

/// One link, seen from this end.
#[derive(Clone, Debug, Default)]
struct Link {
    /// When anything last arrived from the neighbour (None: never).
    heard: Option<Millis>,
    /// Silent for longer than the suspicion timeout (or never heard within the start-up grace).
    suspected: bool,
    /// Misbehaviours remembered (comes-back, resets, unanswered setups), halving with time.
    penalty: u32,
    /// When the penalty was last brought up to date.
    penalty_at: Millis,
    /// Held until then before it may start an election; None: not held.
    hold_until: Option<Millis>,
    /// Election messages sent on this link in this incarnation.
    sent: u64,
    /// Election messages received from the neighbour's current incarnation.
    received: u64,
    /// The neighbour's incarnation, from its last heartbeat.
    peer_incarnation: Option<u64>,
}

/// Every link of one node, and the node's own heartbeat schedule.
#[derive(Clone, Debug)]
pub struct Liveness {
    timing: Timing,
    incarnation: u64,
    /// When this incarnation started (the start-up grace counts from here).
    booted: Millis,
    /// When the node last handled an input (to notice it was frozen itself).
    last_input: Millis,
    /// When the next heartbeats are due.
    next_heartbeat: Millis,
    links: BTreeMap<NodeId, Link>,
}

impl Liveness {
    /// A node in incarnation `incarnation`, started at `now`, with links to `neighbors`, none of
    /// them heard yet.
    pub fn new(
        timing: Timing,
        incarnation: u64,
        neighbors: impl IntoIterator<Item = NodeId>,
        now: Millis,
    ) -> Self {
        Liveness {
            timing,
            incarnation,
            booted: now,
            last_input: now,
            next_heartbeat: now,
            links: neighbors
                .into_iter()
                .map(|n| {
                    let link = Link {
                        penalty_at: now,
                        ..Link::default()
                    };
                    (n, link)
                })
                .collect(),
        }
    }

    /// The settings.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Called first for every input. If the node itself was frozen for longer than
    /// [`Timing::stall_ms`], every live link's silence counts from now; returns how long the
    /// node was frozen.
    pub fn wake(&mut self, now: Millis) -> Option<Millis> {
        let gap = now.saturating_sub(self.last_input);
        self.last_input = now;
        if gap <= self.timing.stall_ms() {
            return None;
        }
        for link in self.links.values_mut() {
            if link.heard.is_some() && !link.suspected {
                link.heard = Some(now);
            }
        }
        // Heartbeats are overdue too: send them now.
        self.next_heartbeat = self.next_heartbeat.min(now);
        Some(gap)
    }

    /// Something arrived from `neighbor` at `now`. Returns [`Change::CameBack`] if it was
    /// suspected.
    pub fn heard(&mut self, neighbor: NodeId, now: Millis) -> Option<Change> {
        let timing = self.timing;
        let link = self.links.get_mut(&neighbor)?;
        link.heard = Some(now);
        if !link.suspected {
            return None;
        }
        link.suspected = false;
        let hold_ms = penalize(link, &timing, now);
        Some(Change::CameBack { neighbor, hold_ms })
    }

    /// A heartbeat from `neighbor`: it is alive, and the link may have lost messages or the
    /// neighbour restarted (see the module docs).
    pub fn beat(&mut self, neighbor: NodeId, beat: Beat, now: Millis) -> Option<Change> {
        let came_back = self.heard(neighbor, now);
        let timing = self.timing;
        let link = self.links.get_mut(&neighbor)?;
        let reason = match link.peer_incarnation {
            Some(known) if known != beat.incarnation => Some(format!("node {neighbor} restarted")),
            Some(_) if beat.sent > link.received => Some(format!(
                "{} election message(s) from node {neighbor} were lost",
                beat.sent - link.received
            )),
            _ => None,
        };
        // From now on, count against what the neighbour says it sent.
        link.peer_incarnation = Some(beat.incarnation);
        link.received = beat.sent;
        match (came_back, reason) {
            (Some(change), _) => Some(change),
            (None, Some(reason)) => {
                let hold_ms = penalize(link, &timing, now);
                Some(Change::Reset {
                    neighbor,
                    reason,
                    hold_ms,
                })
            }
            (None, None) => None,
        }
    }

    /// An election message arrived from `neighbor` (counted against its heartbeats).
    pub fn received(&mut self, neighbor: NodeId) {
        if let Some(link) = self.links.get_mut(&neighbor) {
            link.received += 1;
        }
    }

    /// An election message leaves for `neighbor` (its heartbeats will count it).
    pub fn sent(&mut self, neighbor: NodeId) {
        if let Some(link) = self.links.get_mut(&neighbor) {
            link.sent += 1;
        }
    }

    /// The link to `neighbor` misbehaved (an invited neighbour did not answer, or spoke out of
    /// turn): hold it, longer each time, before it may start an election. A link already held
    /// keeps its hold. Returns the hold.
    pub fn penalize(&mut self, neighbor: NodeId, now: Millis) -> Option<Millis> {
        let timing = self.timing;
        let link = self.links.get_mut(&neighbor)?;
        match link.hold_until {
            Some(until) if until > now => Some(until - now),
            _ => Some(penalize(link, &timing, now)),
        }
    }

    /// Suspect every neighbour silent for longer than the suspicion timeout, and every one never
    /// heard within the start-up grace. Returns those newly suspected.
    pub fn expire(&mut self, now: Millis) -> Vec<NodeId> {
        let (suspicion, grace) = (self.timing.suspicion_ms, self.timing.join_grace_ms());
        let booted = self.booted;
        let mut newly = Vec::new();
        for (&id, link) in &mut self.links {
            let silent = match link.heard {
                Some(heard) => now.saturating_sub(heard) > suspicion,
                None => now.saturating_sub(booted) >= grace,
            };
            if silent && !link.suspected {
                link.suspected = true;
                // A failed link has nothing to come back to yet.
                link.hold_until = None;
                newly.push(id);
            }
        }
        newly
    }

    /// Links whose hold ran out while they are alive: each may now start an election. Their
    /// holds are cleared.
    pub fn holds_due(&mut self, now: Millis) -> Vec<NodeId> {
        let mut due = Vec::new();
        for (&id, link) in &mut self.links {
            if link.hold_until.is_some_and(|until| until <= now) {
                link.hold_until = None;
                if !link.suspected {
                    due.push(id);
                }
            }
        }
        due
    }

    /// Whether the link to `neighbor` is held now.
    pub fn held(&self, neighbor: NodeId) -> bool {
        self.links
            .get(&neighbor)
            .is_some_and(|l| l.hold_until.is_some())
    }

    /// Whether some live link is held (it will want an epoch when its hold runs out).
    pub fn holding(&self) -> bool {
        self.links
            .values()
            .any(|l| l.hold_until.is_some() && !l.suspected)
    }

    /// The link is taken into an election: whatever hold it had is served.
    pub fn clear_hold(&mut self, neighbor: NodeId) {
        if let Some(link) = self.links.get_mut(&neighbor) {
            link.hold_until = None;
        }
    }

    /// Heartbeats to send now, if they are due: one per neighbour (suspected ones too, so that
    /// they learn this node is alive), each with what this node sent on that link.
    pub fn heartbeats(&mut self, now: Millis) -> Vec<(NodeId, Beat)> {
        if now < self.next_heartbeat {
            return Vec::new();
        }
        self.next_heartbeat = now + self.timing.heartbeat_ms.max(1);
        let incarnation = self.incarnation;
        self.links
            .iter()
            .map(|(&id, link)| {
                let beat = Beat {
                    incarnation,
                    sent: link.sent,
                };
                (id, beat)
            })
            .collect()
    }

    /// When this node next needs to be woken: the next heartbeat, the next suspicion or start-up
    /// grace to run out, the next hold to end.
    pub fn deadline(&self) -> Millis {
        let suspicion = self.timing.suspicion_ms;
        let grace = self.booted + self.timing.join_grace_ms();
        self.links
            .values()
            .flat_map(|link| {
                let silence = match (link.suspected, link.heard) {
                    (true, _) => None,
                    (false, Some(heard)) => Some(heard + suspicion + 1),
                    (false, None) => Some(grace),
                };
                [silence, link.hold_until]
            })
            .flatten()
            .fold(self.next_heartbeat, Millis::min)
    }

    /// Whether `neighbor` may be invited into an election: not suspected (a neighbour not heard
    /// yet but still within the start-up grace counts).
    pub fn invitable(&self, neighbor: NodeId) -> bool {
        self.links.get(&neighbor).is_some_and(|l| !l.suspected)
    }

    /// Whether `neighbor` has been heard from and is not suspected.
    pub fn alive(&self, neighbor: NodeId) -> bool {
        self.links
            .get(&neighbor)
            .is_some_and(|l| l.heard.is_some() && !l.suspected)
    }

    /// Whether every neighbour has been heard from at least once.
    pub fn all_heard(&self) -> bool {
        self.links.values().all(|l| l.heard.is_some())
    }

    /// When the start-up grace runs out.
    pub fn grace_ends(&self) -> Millis {
        self.booted + self.timing.join_grace_ms()
    }

    /// The neighbours suspected now.
    pub fn suspected(&self) -> BTreeSet<NodeId> {
        self.links
            .iter()
            .filter(|(_, l)| l.suspected)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The neighbours heard from and not suspected.
    pub fn alive_set(&self) -> BTreeSet<NodeId> {
        self.links
            .iter()
            .filter(|(_, l)| l.heard.is_some() && !l.suspected)
            .map(|(&id, _)| id)
            .collect()
    }
}

/// Count one more misbehaviour of `link` (after letting the old ones decay) and hold it.
fn penalize(link: &mut Link, timing: &Timing, now: Millis) -> Millis {
    let halvings = now.saturating_sub(link.penalty_at) / timing.half_life_ms().max(1);
    link.penalty = link.penalty.checked_shr(halvings as u32).unwrap_or(0);
    link.penalty_at = now;
    link.penalty = (link.penalty + 1).min(MAX_HOLD_DOUBLINGS + 1);
    let hold = timing.hold_ms(link.penalty);
    link.hold_until = Some(now + hold);
    hold
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        heartbeat_ms: 100,
        suspicion_ms: 1000,
    };

    fn two_links() -> Liveness {
        let mut live = Liveness::new(T, 7, [2, 3], 0);
        live.heard(2, 0);
        live.heard(3, 0);
        live
    }

    #[test]
    fn a_neighbour_silent_past_the_timeout_is_suspected_once() {
        let mut live = two_links();
        live.heard(3, 900);
        assert!(
            live.expire(1000).is_empty(),
            "1000 ms of silence is not more than 1000"
        );
        assert_eq!(live.expire(1001), vec![2]);
        assert!(live.expire(1500).is_empty(), "reported once");
        assert_eq!(live.suspected(), BTreeSet::from([2]));
        assert!(!live.invitable(2) && live.invitable(3));
    }

    #[test]
    fn a_neighbour_never_heard_is_suspected_after_the_start_up_grace() {
        let mut live = Liveness::new(T, 1, [2], 0);
        assert!(live.invitable(2), "within the grace it is still expected");
        assert!(live.expire(T.join_grace_ms() - 1).is_empty());
        assert_eq!(live.expire(T.join_grace_ms()), vec![2]);
    }

    #[test]
    fn a_suspected_neighbour_that_speaks_comes_back_held() {
        let mut live = two_links();
        live.expire(2000);
        let change = live.heard(2, 2100);
        assert_eq!(
            change,
            Some(Change::CameBack {
                neighbor: 2,
                hold_ms: T.settle_ms()
            })
        );
        assert!(live.holds_due(2150).is_empty());
        assert_eq!(live.holds_due(2200), vec![2]);
        assert!(live.holds_due(2300).is_empty(), "served once");
    }

    #[test]
    fn a_link_that_flaps_is_held_longer_each_time_and_forgiven_with_time() {
        let mut live = two_links();
        let mut holds = Vec::new();
        let mut now = 0;
        for _ in 0..4 {
            now += 1500;
            live.expire(now);
            if let Some(Change::CameBack { hold_ms, .. }) = live.heard(2, now + 10) {
                holds.push(hold_ms);
            }
            live.heard(3, now + 10);
        }
        assert_eq!(holds, vec![100, 200, 400, 800]);
        // Quiet for a long time: the penalty decays, and the next hold is short again.
        now += 20 * T.half_life_ms();
        live.heard(2, now);
        live.heard(3, now);
        live.expire(now + 1001);
        let Some(Change::CameBack { hold_ms, .. }) = live.heard(2, now + 1100) else {
            panic!("came back")
        };
        assert_eq!(hold_ms, 100);
    }

    #[test]
    fn a_heartbeat_counting_more_than_arrived_resets_the_link() {
        let mut live = two_links();
        live.beat(
            2,
            Beat {
                incarnation: 5,
                sent: 0,
            },
            10,
        );
        live.received(2);
        assert_eq!(
            live.beat(
                2,
                Beat {
                    incarnation: 5,
                    sent: 1
                },
                100
            ),
            None
        );
        let change = live.beat(
            2,
            Beat {
                incarnation: 5,
                sent: 3,
            },
            200,
        );
        assert!(
            matches!(&change, Some(Change::Reset { neighbor: 2, reason, .. }) if reason.contains("2 election message")),
            "{change:?}"
        );
        assert_eq!(
            live.beat(
                2,
                Beat {
                    incarnation: 5,
                    sent: 3
                },
                300
            ),
            None,
            "counted from there"
        );
    }

    #[test]
    fn a_new_incarnation_resets_the_link() {
        let mut live = two_links();
        live.beat(
            2,
            Beat {
                incarnation: 5,
                sent: 0,
            },
            10,
        );
        let change = live.beat(
            2,
            Beat {
                incarnation: 6,
                sent: 4,
            },
            20,
        );
        assert!(
            matches!(&change, Some(Change::Reset { reason, .. }) if reason.contains("restarted"))
        );
    }

    #[test]
    fn ticks_a_heartbeat_apart_are_no_stall_whatever_the_timings() {
        // The topology file allows suspicion down to twice the heartbeat.
        let slow = Timing {
            heartbeat_ms: 500,
            suspicion_ms: 1000,
        };
        let mut live = Liveness::new(slow, 1, [2], 0);
        live.heard(2, 0);
        for t in (501..=1501).step_by(500) {
            assert_eq!(
                live.wake(t),
                None,
                "a tick 500 ms after the last is no stall"
            );
        }
        assert_eq!(live.expire(1501), vec![2], "silent for 1501 ms: suspected");
    }

    #[test]
    fn a_node_that_was_frozen_does_not_blame_its_neighbours() {
        let mut live = two_links();
        live.wake(50);
        assert_eq!(live.wake(5000), Some(4950));
        assert!(
            live.expire(5000).is_empty(),
            "silence counts from the wake-up"
        );
        assert_eq!(live.expire(6001), vec![2, 3]);
    }

    #[test]
    fn heartbeats_go_every_interval_to_every_neighbour_with_the_count_sent() {
        let mut live = two_links();
        live.sent(3);
        let beats = live.heartbeats(0);
        assert_eq!(
            beats,
            vec![
                (
                    2,
                    Beat {
                        incarnation: 7,
                        sent: 0
                    }
                ),
                (
                    3,
                    Beat {
                        incarnation: 7,
                        sent: 1
                    }
                )
            ]
        );
        assert!(live.heartbeats(99).is_empty());
        assert_eq!(live.heartbeats(100).len(), 2);
        assert_eq!(live.deadline(), 200);
    }
}
